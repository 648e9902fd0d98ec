// The browser test of OHIF v3 against this server (`npm run test:e2e`). Like the unit tests it runs the
// compiled JavaScript; E2E_ROOT points at another build folder (default dist/).
module.exports = {
  testEnvironment: 'node',
  rootDir: __dirname,
  roots: [process.env.E2E_ROOT || '<rootDir>/dist/e2e'],
  testMatch: ['**/*.e2e.js'],
  testTimeout: 180000,
  maxWorkers: 1,
  // Never hang on a handle left open by the browser or a server: the run ends when the tests do.
  forceExit: true,
};

// Tests are compiled by `tsc` (npm pretest) and run from dist/, so worker threads and
// the server run exactly the JavaScript that `npm start` runs. conformance/ holds the suites that drive
// third-party clients (Orthanc) against this server.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test', '<rootDir>/dist/conformance'],
  testMatch: ['**/*.test.js'],
  testTimeout: 120000,
  maxWorkers: 2,
  setupFiles: ['<rootDir>/dist/test/helpers/quiet.js'],
};

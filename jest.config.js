// Tests are compiled by `tsc` (npm pretest) and run from dist/, so worker threads and
// the server run exactly the JavaScript that `npm start` runs.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/dist/test'],
  testMatch: ['**/*.test.js'],
  testTimeout: 120000,
  maxWorkers: 2,
};

/**
 * Jest setup (jest.config.js setupFiles): dcmjs logs through its own logger (loglevel) when test helpers read
 * corpus files with odd VRs ("Invalid vr type xs - using US"); those are facts of the files, already covered by
 * assertions, not output for a passing run.
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const dcmjs = require('dcmjs');
dcmjs.log?.setLevel?.('silent');
// its child loggers were made at load and keep the level they had then
for (const name of ['validation.dcmjs', 'AsyncDicomReader']) dcmjs.log?.getLogger?.(name)?.setLevel?.('silent');

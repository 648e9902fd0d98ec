/**
 * The server's log: JSON lines (pino) with time, level and message, plus what each call adds (request id,
 * method, path, status, duration, failure reason). On a terminal, or with LOG_FORMAT=pretty, the same records
 * are printed as readable lines (pino-pretty, synchronously, in this thread). LOG_LEVEL sets the level
 * (default info; `silent` turns logging off, as the tests' in-process servers do).
 *
 * The one module that reads the environment outside config.ts: the logger must exist before the
 * configuration is read, to report configuration errors.
 */
import pino from 'pino';

function makeLogger(): pino.Logger {
  const level = process.env.LOG_LEVEL || (process.env.JEST_WORKER_ID ? 'silent' : 'info');
  const pretty = process.env.LOG_FORMAT === 'pretty' || (process.env.LOG_FORMAT !== 'json' && process.stdout.isTTY);
  const opts: pino.LoggerOptions = { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime };
  if (pretty) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const pinoPretty = require('pino-pretty');
    return pino(opts, pinoPretty({ sync: true, translateTime: 'SYS:standard', ignore: 'pid,hostname' }));
  }
  // process.stdout, as console.log: a write to a pipe never blocks this thread (Node buffers it), where a
  // synchronous pino destination would freeze the server behind a reader that stopped reading.
  return pino(opts, process.stdout);
}

export const log = makeLogger();

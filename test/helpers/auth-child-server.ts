/**
 * The server as a separate process, exactly as `npm start` runs it: for tests that kill it (durability) or need
 * modules Jest's module loader cannot load (jose is an ES module; plain Node 20.19+ requires it, Jest does not).
 */
import { spawn, ChildProcess } from 'child_process';
import * as path from 'path';

/** main.js of the same build as the running test (tests run from the compiled output folder). */
export const MAIN_JS = path.join(__dirname, '..', '..', 'server', 'main.js');
export const VERIFY_JS = path.join(__dirname, '..', '..', 'server', 'verify.js');

export interface ChildServer {
  proc: ChildProcess;
  url: string;
  base: string;
  output(): string;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful), resolved once the process is gone. */
  stop(): Promise<void>;
}

export function spawnServer(dataDir: string, args: string[] = [], env: Record<string, string> = {}, timeoutMs = 20_000): Promise<ChildServer> {
  const proc = spawn(process.execPath, [MAIN_JS, '--port', '0', '--host', '127.0.0.1', '--data', dataDir, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const end = (signal: NodeJS.Signals) => async () => { if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal); await exited; };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`server did not start in time:\n${out}`)); }, timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /ready on (http:\/\/[^\s/]+)\/dicom-web/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1], base: `${m[1]}/dicom-web`, output: () => out, kill: end('SIGKILL'), stop: end('SIGTERM') });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    proc.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`server exited (${code ?? signal}) before it was ready:\n${out}`)); });
  });
}

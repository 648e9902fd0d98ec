/**
 * The servers under test, as child processes on 127.0.0.1: ours (dist/server/main.js next to this build) and,
 * when installed, Orthanc with its DICOMweb and GDCM plugins on a config file of our own. Every child is
 * killed when the bench ends, also on errors and signals. Memory is watched through /proc/PID/status.
 */
import { spawn, ChildProcess, execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';

const children = new Set<ChildProcess>();
function killAll() { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } }
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { killAll(); process.exit(130); });

export interface Running {
  name: string;
  base: string;          // http://127.0.0.1:PORT
  dicomWeb: string;      // base + DICOMweb root, no trailing slash
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

/** The repository: the nearest folder above `build` (dist/ or .out/NAME/) holding package.json. */
export function repoRoot(build: string): string {
  for (let d = build; d !== path.dirname(d); d = path.dirname(d)) if (fs.existsSync(path.join(d, 'package.json'))) return d;
  throw new Error(`no package.json above ${build}`);
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

async function stopChild(c: ChildProcess, graceMs = 8000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) { children.delete(c); return; }
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
  children.delete(c);
}

function track(c: ChildProcess) {
  children.add(c);
  c.once('exit', () => children.delete(c));
}

/** The glibc malloc settings and node flags `npm start` and the Dockerfile give the server (README, Memory). */
export const MALLOC_ENV = { MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '524288', MALLOC_TRIM_THRESHOLD_: '1048576' };
export const SERVER_NODE_ARGS = ['--max-semi-space-size=2'];

/**
 * Our server: `node server/main.js --port 0 --data DIR --host 127.0.0.1`; the port is read from its banner.
 * Environment: NODE_ARGS adds flags to its node (after SERVER_NODE_ARGS and opts.nodeArgs); SHOW_STDERR=1
 * passes its stderr through.
 */
export async function startOurs(repoBuild: string, dataDir: string, opts: { nodeArgs?: string[]; args?: string[] } = {}): Promise<Running> {
  const main = path.join(repoBuild, 'server', 'main.js');
  if (!fs.existsSync(main)) throw new Error(`${main} not found: build first`);
  const c = spawn(process.execPath, [...SERVER_NODE_ARGS, ...(opts.nodeArgs ?? []), ...(process.env.NODE_ARGS ?? '').split(' ').filter(Boolean), main, '--port', '0', '--data', dataDir, '--host', '127.0.0.1', ...(opts.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...MALLOC_ENV, ...process.env } });
  track(c);
  let err = '';
  c.stderr!.on('data', (d) => { if (process.env.SHOW_STDERR) process.stderr.write(d); err += d; if (err.length > 20_000) err = err.slice(-10_000); });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`our server did not start within 30 s: ${err}`)), 30_000);
    c.stdout!.on('data', (d) => {
      if (process.env.SHOW_STDOUT) process.stdout.write(d);
      out += d;
      const m = /ready on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    c.once('exit', (code) => { clearTimeout(t); reject(new Error(`our server exited (${code}): ${err}`)); });
  });
  c.stdout!.resume();
  const base = `http://127.0.0.1:${port}`;
  return { name: 'ours', base, dicomWeb: `${base}/dicom-web`, pid: c.pid!, dir: dataDir, stop: () => stopChild(c) };
}

/** Paths of the Orthanc plugins, from the Debian packages' file lists; undefined when not installed. */
export function orthancInstall(): { exe: string; dicomWeb: string; gdcm: string } | undefined {
  const which = (exe: string) => { try { return execFileSync('sh', ['-c', `command -v ${exe}`], { encoding: 'utf8' }).trim() || undefined; } catch { return undefined; } };
  const exe = which('Orthanc');
  if (!exe) return undefined;
  const soOf = (pkg: string, name: RegExp) => {
    try {
      const files = execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8' }).split('\n');
      return files.find((f) => name.test(f) && f.includes('/plugins/')) ?? files.find((f) => name.test(f));
    } catch { return undefined; }
  };
  const dicomWeb = soOf('orthanc-dicomweb', /libOrthancDicomWeb\.so/);
  const gdcm = soOf('orthanc-gdcm', /libOrthancGdcm\.so/);
  if (!dicomWeb || !gdcm) return undefined;
  return { exe, dicomWeb, gdcm };
}

function getJson(url: string): Promise<any> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let s = '';
      res.on('data', (d) => { s += d; });
      res.on('end', () => { try { resolve(JSON.parse(s)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}

/**
 * Orthanc on a config of our own: HTTP on a free port (Orthanc 1.10 cannot bind one address; it refuses
 * remote clients with RemoteAccessAllowed false), DICOM server disabled, storage and index in a temp folder,
 * the DICOMweb plugin at /dicom-web/ and the GDCM plugin (JPEG 2000). Durability options keep their defaults.
 */
export async function startOrthanc(install: NonNullable<ReturnType<typeof orthancInstall>>, dir: string,
  opts: { dicomWebServers?: Record<string, unknown> } = {}): Promise<Running & { version: string; dicomWebVersion?: string }> {
  const port = await freePort();
  const config = {
    Name: 'bench',
    StorageDirectory: path.join(dir, 'storage'),
    IndexDirectory: path.join(dir, 'index'),
    HttpServerEnabled: true,
    HttpPort: port,
    RemoteAccessAllowed: false,
    AuthenticationEnabled: false,
    DicomServerEnabled: false,
    DicomPort: await freePort(),
    Plugins: [install.dicomWeb, install.gdcm],
    // Servers: peers Orthanc acts as a DICOMweb client of (/dicom-web/servers/NAME/stow, qido, retrieve).
    DicomWeb: { Enable: true, Root: '/dicom-web/', EnableWado: false, Host: '127.0.0.1', Ssl: false, ...(opts.dicomWebServers ? { Servers: opts.dicomWebServers } : {}) },
    Gdcm: { Enable: true },
    SaveJobs: false,
    KeepAlive: true,
    TcpNoDelay: true,
  };
  const cfg = path.join(dir, 'orthanc.json');
  fs.writeFileSync(cfg, JSON.stringify(config, null, 2));
  const log = fs.openSync(path.join(dir, 'orthanc.log'), 'a');
  const c = spawn(install.exe, [cfg], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  track(c);
  const base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  let system: any;
  while (!system) {
    if (c.exitCode !== null) throw new Error(`Orthanc exited (${c.exitCode}); see ${path.join(dir, 'orthanc.log')}`);
    if (Date.now() - t0 > 30_000) { await stopChild(c); throw new Error('Orthanc did not start within 30 s'); }
    try { system = await getJson(`${base}/system`); } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  let dicomWebVersion: string | undefined;
  try { dicomWebVersion = (await getJson(`${base}/plugins/dicom-web`)).Version; } catch { /* older API */ }
  return {
    name: 'orthanc', base, dicomWeb: `${base}/dicom-web`, pid: c.pid!, dir, version: String(system.Version), dicomWebVersion,
    stop: () => stopChild(c),
  };
}

export function statusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch { return undefined; }
}

/** Polls a process's resident set every `everyMs`: overall peak, per-phase peaks, and the kernel's VmHWM. */
export class RssMonitor {
  private timer: NodeJS.Timeout;
  private peakKb = 0;
  private phaseName = 'start';
  readonly phases: Record<string, number> = {};
  constructor(readonly pid: number, everyMs = 20) {
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }
  sample() {
    const kb = statusKb(this.pid, 'VmRSS');
    if (kb === undefined) return;
    this.peakKb = Math.max(this.peakKb, kb);
    this.phases[this.phaseName] = Math.max(this.phases[this.phaseName] ?? 0, kb / 1024);
  }
  phase(name: string) { this.sample(); this.phaseName = name; this.sample(); }
  /** Peak RSS in MB: the larger of the polled peak and VmHWM (which catches spikes between polls). */
  peakMb(): number {
    this.sample();
    const hwm = statusKb(this.pid, 'VmHWM') ?? 0;
    return Math.max(this.peakKb, hwm) / 1024;
  }
  stop() { clearInterval(this.timer); }
}

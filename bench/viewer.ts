/**
 * The viewer rows of the bench alone (bench/lib/viewer-load.ts), ours and Orthanc in the same run:
 *   node dist/bench/viewer.js [--repeats N] [--only dx,series,stow] [--no-orthanc]
 * Prints medians, ranges and ratios (Orthanc's time over ours: above 1, ours is faster).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Client } from './lib/http';
import { startOurs, startOrthanc, orthancInstall, tempDir, RssMonitor, Running } from './lib/servers';
import { median, fmt } from './lib/stats';
import { viewerRows } from './lib/viewer-load';

const argv = process.argv.slice(2);
const arg = (f: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined);
const repeats = Number(arg('--repeats') ?? 3);
const only = arg('--only')?.split(',');
const parts = only ? { dx: only.includes('dx'), series: only.includes('series'), stow: only.includes('stow') } : undefined;

async function main() {
  const BUILD = path.resolve(__dirname, '..');
  const running: Running[] = [];
  const dirs: string[] = [];
  try {
    const ourDir = tempDir('bench-viewer-ours-'); dirs.push(ourDir);
    const ours = await startOurs(BUILD, ourDir); running.push(ours);
    const monitor = new RssMonitor(ours.pid);
    const both: Array<[string, Client, number]> = [['ours', new Client(ours.base), ours.pid]];
    const install = argv.includes('--no-orthanc') ? undefined : orthancInstall();
    if (install) {
      const dir = tempDir('bench-viewer-orthanc-'); dirs.push(dir);
      const theirs = await startOrthanc(install, dir); running.push(theirs);
      both.push(['orthanc', new Client(theirs.base), theirs.pid]);
    }
    const rows = await viewerRows(both, repeats, (s) => process.stdout.write(`${s}\n`), undefined, parts);
    const range = (xs: number[]) => (xs.length ? `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}` : '-');
    for (const r of rows) {
      const o = median(r.ours), t = r.orthanc.length ? median(r.orthanc) : NaN;
      const ratio = Number.isFinite(t) ? (r.lowerIsBetter ? t / o : o / t) : NaN;
      const oc = median(r.oursCpuMs), tcpu = r.orthancCpuMs.length ? median(r.orthancCpuMs) : NaN;
      process.stdout.write(`${r.group}: ${r.metric} [${r.unit}]  ours ${fmt(o)} (${range(r.ours)})  Orthanc ${fmt(t)} (${range(r.orthanc)})  ${Number.isFinite(ratio) ? `${fmt(ratio)}x` : ''}` +
        `  | server CPU ms: ours ${fmt(oc)} (${range(r.oursCpuMs)}) Orthanc ${fmt(tcpu)} (${range(r.orthancCpuMs)})${Number.isFinite(tcpu) ? ` ${fmt(tcpu / oc)}x` : ''}\n`);
    }
    process.stdout.write(`peak RSS ours ${fmt(monitor.peakMb())} MB\n`);
    monitor.stop();
    if (process.env.VIEWER_JSON) fs.writeFileSync(process.env.VIEWER_JSON, JSON.stringify(rows, null, 1));
    for (const [, c] of both) c.close();
  } finally {
    for (const s of running) await s.stop().catch(() => undefined);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => { console.error(`bench failed: ${e?.stack ?? e}`); process.exit(1); });

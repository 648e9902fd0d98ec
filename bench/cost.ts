/**
 * What one request costs in CPU, server and load generator apart (lib/proc.ts and process.cpuUsage), and the server's
 * threads apart: the ceiling a 2-core machine puts on throughput is 2000 ms / (server + client ms per request).
 *
 *   node dist/bench/cost.js render [ct|mr] [N=1500] [C=8]   uncached rendered frames (a new window= each),
 *                                                            then the same URL (our cache), then a 404
 *   node dist/bench/cost.js stow [N=600]                     STOW-RS of 512x512 CT instances, 25 per request,
 *                                                            2 requests in flight (as bench/run.ts)
 *   NODE_ARGS="..." passes flags to the server's node; SHOW_STDERR=1 shows its stderr (lib/servers.ts).
 */
import * as fs from 'fs';
import * as path from 'path';
import { Client, concurrent, storeAll, timedGet } from './lib/http';
import { startOurs, tempDir, repoRoot } from './lib/servers';
import { ctStowBatches } from './lib/dicom-synth';
import { cpuMs, threadCpuMs } from './lib/proc';
import { renderLoad, nthWindow } from './lib/render-load';

const BUILD = path.resolve(__dirname, '..');
const ROOT = repoRoot(BUILD);

async function measure(srvPid: number, n: number, run: () => Promise<number>): Promise<string> {
  const s0 = cpuMs(srvPid); const t0 = threadCpuMs(srvPid); const c0 = process.cpuUsage();
  const secs = await run();
  const server = (cpuMs(srvPid) - s0) / n; const cu = process.cpuUsage(c0); const client = (cu.user + cu.system) / 1e3 / n;
  // Per thread (ms per request), the busiest first: the main thread, render workers, libuv's pool, V8's helpers.
  const threads = [...threadCpuMs(srvPid)].map(([tid, t]) => ({ tid, name: t.name, ms: (t.ms - (t0.get(tid)?.ms ?? 0)) / n }))
    .filter((t) => t.ms >= 0.01).sort((a, b) => b.ms - a.ms).slice(0, 6).map((t) => `${t.name === 'main' ? 'main' : `${t.name}:${t.tid}`} ${t.ms.toFixed(2)}`);
  return `${(n / secs).toFixed(0)}/s; server CPU ${server.toFixed(2)} ms, client CPU ${client.toFixed(2)} ms each; 2-core ceiling ${(2000 / (server + client)).toFixed(0)}/s; by thread (ms): ${threads.join(', ')}`;
}

async function main() {
  const [what = 'render', ...rest] = process.argv.slice(2);
  const dataDir = tempDir('bench-cost-');
  const srv = await startOurs(BUILD, dataDir);
  const c = new Client(srv.base);
  try {
    if (what === 'stow') {
      const n = Number(rest[0] ?? 600);
      const bodies = ctStowBatches(n, 25);
      console.log(`STOW ${n} CT instances: ${await measure(srv.pid, n, () => concurrent(bodies.length, 2, async (i) => {
        const r = await c.request('POST', '/dicom-web/studies', { 'Content-Type': bodies[i].contentType }, bodies[i].body);
        if (r.status !== 200) throw new Error(`STOW answered ${r.status}`);
      }))}`);
      return;
    }
    const which = rest[0] ?? 'ct'; const n = Number(rest[1] ?? 1500); const conc = Number(rest[2] ?? 8);
    const { file, window: win } = renderLoad(which, ROOT);
    const [p] = await storeAll(c, [file]);
    const png = { Accept: 'image/png' };
    for (let i = 0; i < 50; i++) await timedGet(c, `${p}/frames/1/rendered?window=${win[0] - 1 - i},${win[1]},linear`, png);
    console.log(`${which} rendered, new window each, c=${conc}: ${await measure(srv.pid, n, () => concurrent(n, conc, (i) => timedGet(c, `${p}/frames/1/rendered?window=${nthWindow(win, i)}`, png)))}`);
    const same = `${p}/frames/1/rendered?window=${win[0]},${win[1]},linear`;
    console.log(`${which} rendered, same URL (cache), c=${conc}: ${await measure(srv.pid, n, () => concurrent(n, conc, () => timedGet(c, same, png)))}`);
    console.log(`404, c=${conc}: ${await measure(srv.pid, n, () => concurrent(n, conc, () => timedGet(c, '/dicom-web/nothing-here', png, 404)))}`);
  } finally {
    c.close(); await srv.stop(); fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

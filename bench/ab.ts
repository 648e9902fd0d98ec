/**
 * Two builds or settings of our server side by side, on the same rendered-frame load in alternating blocks, so
 * that the machine's noise falls on both alike: requests/s and server CPU per request (from /proc schedstat, in
 * ns, rather than the 10 ms ticks of /proc stat), medians over the blocks.
 *
 *   A="ENV=1 ..." B="ENV=2 ..." node .out/x/bench/ab.js [ct|mr] [blocks=16] [per block=300] [C=8]
 *   A_BUILD / B_BUILD: another build's root (a folder holding server/main.js), default this one.
 *   WARM=n: requests each server gets before the blocks (default 100; 0 shows a fresh server). VERBOSE=1: each block.
 */
import * as path from 'path';
import { Client, concurrent, storeAll, timedGet } from './lib/http';
import { startOurs, tempDir, repoRoot, Running } from './lib/servers';
import { median } from './lib/stats';
import { renderLoad, nthWindow } from './lib/render-load';
import { liveCpuMs } from './lib/proc';

const BUILD = path.resolve(__dirname, '..');
const ROOT = repoRoot(BUILD);

function parseEnv(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (s ?? '').split(/\s+/).filter(Boolean)) { const i = kv.indexOf('='); out[kv.slice(0, i)] = kv.slice(i + 1); }
  return out;
}

async function start(label: string): Promise<Running> {
  const env = parseEnv(process.env[label]);
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return await startOurs(process.env[`${label}_BUILD`] ?? BUILD, tempDir(`bench-ab-${label}-`));
  } finally {
    for (const k of Object.keys(env)) { if (saved[k] === undefined) delete process.env[k]; else process.env[k] = saved[k]; }
  }
}

async function main() {
  const [which = 'ct', blocksArg = '16', perArg = '300', concArg = '8'] = process.argv.slice(2);
  const blocks = Number(blocksArg); const per = Number(perArg); const conc = Number(concArg);
  const { file, frame, window: win } = renderLoad(which, ROOT);
  const servers = { A: await start('A'), B: await start('B') };
  const png = { Accept: 'image/png' };
  const res: Record<string, { rps: number[]; cpu: number[] }> = { A: { rps: [], cpu: [] }, B: { rps: [], cpu: [] } };
  try {
    const clients = { A: new Client(servers.A.base), B: new Client(servers.B.base) };
    const paths: Record<string, string> = {};
    for (const k of ['A', 'B'] as const) [paths[k]] = await storeAll(clients[k], [file]);
    // The same windows for both (nthWindow), request by request.
    const url = (k: 'A' | 'B', i: number) => `${paths[k]}/frames/${frame}/rendered?window=${nthWindow(win, i)}`;
    // WARM=0: no warm-up requests, so the first blocks show a fresh server.
    const warm = Number(process.env.WARM ?? 100);
    for (const k of ['A', 'B'] as const) if (warm) await concurrent(warm, conc, (i) => timedGet(clients[k], url(k, 1e6 + i), png));
    for (let b = 0; b < blocks; b++) {
      const base = b * per;
      for (const k of (b % 2 ? ['B', 'A'] : ['A', 'B']) as Array<'A' | 'B'>) {
        const c0 = liveCpuMs(servers[k].pid);
        const secs = await concurrent(per, conc, (i) => timedGet(clients[k], url(k, base + i), png));
        res[k].rps.push(per / secs); res[k].cpu.push((liveCpuMs(servers[k].pid) - c0) / per);
        if (process.env.VERBOSE) console.log(`block ${b} ${k}: ${(per / secs).toFixed(0)} req/s, ${res[k].cpu[b].toFixed(3)} ms`);
      }
    }
    for (const k of ['A', 'B'] as const) clients[k].close();
  } finally {
    await servers.A.stop(); await servers.B.stop();
  }
  for (const k of ['A', 'B'] as const) {
    console.log(`${k} (${process.env[k] ?? ''}${process.env[`${k}_BUILD`] ? ` build ${process.env[`${k}_BUILD`]}` : ''}): ${median(res[k].rps).toFixed(0)} req/s, server CPU ${median(res[k].cpu).toFixed(3)} ms/request (median of ${blocks} blocks)`);
  }
  const ratio = res.B.rps.map((r, i) => r / res.A.rps[i]);
  console.log(`B/A throughput, median of per-block ratios: ${median(ratio).toFixed(3)}; CPU B/A ${(median(res.B.cpu) / median(res.A.cpu)).toFixed(3)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });

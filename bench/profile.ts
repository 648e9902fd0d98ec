/**
 * Where our server spends its time on one rendered-frame load: starts it with `node --cpu-prof` (main thread and
 * render workers each write a profile), stores one object, sends N uncached rendered requests at concurrency C,
 * stops it, then prints the top functions by self time (file:line function, share of all samples) per thread.
 *
 *   node .out/bench/bench/profile.js [ct|mr|cr|mf] [N=200] [C=8]      (NOPROF=1: time only, no profiler)
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { median, p95 } from './lib/stats';
import { Client, concurrent, storeAll, timedGet } from './lib/http';
import { startOurs, tempDir, repoRoot } from './lib/servers';
import { renderLoad, nthWindow } from './lib/render-load';

const BUILD = path.resolve(__dirname, '..');
const ROOT = repoRoot(BUILD);

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export function summarise(file: string, top = 25): string[] {
  const p: Profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let total = 0;
  // time attributed to a sample is the delta to the next sample
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    const n = byId.get(p.samples[i])!;
    const f = n.callFrame;
    const where = f.url ? `${path.relative(ROOT, f.url.replace(/^file:\/\//, '')) || f.url}:${f.lineNumber + 1}` : '(native)';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
  }
  const idle = [...self.entries()].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
  const busy = total - idle;
  const lines = [`${path.basename(file)}: ${(total / 1e3).toFixed(0)} ms sampled, busy ${(busy / 1e3).toFixed(0)} ms (${(100 * busy / total).toFixed(0)}%)`];
  for (const [k, v] of [...self.entries()].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${(100 * v / busy).toFixed(1).padStart(5)}% of busy  ${(v / 1e3).toFixed(0).padStart(6)} ms  ${k}`);
  }
  return lines;
}

async function main() {
  const which = process.argv[2] ?? 'ct';
  const n = Number(process.argv[3] ?? 200);
  const conc = Number(process.argv[4] ?? 8);
  const profDir = tempDir('bench-prof-');
  const dataDir = tempDir('bench-prof-data-');
  const srv = await startOurs(BUILD, dataDir, { nodeArgs: process.env.NOPROF ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`] });
  try {
    const c = new Client(srv.base);
    const { file, frame, window: win } = renderLoad(which, ROOT);
    const [p] = await storeAll(c, [file]);
    const times: number[] = [];
    for (let i = 0; i < 5; i++) await timedGet(c, `${p}/frames/${frame}/rendered?window=${win[0] - 1 - i},${win[1]},linear`, { Accept: 'image/png' });
    const s = await concurrent(n, conc, async (i) => { times.push(await timedGet(c, `${p}/frames/${frame}/rendered?window=${nthWindow(win, i)}`, { Accept: 'image/png' })); });
    console.log(`${which}: ${n} requests at c=${conc}: ${(n / s).toFixed(1)} req/s, latency median ${median(times).toFixed(2)} ms, p95 ${p95(times).toFixed(2)} ms (load average ${os.loadavg()[0].toFixed(1)})`);
    c.close();
  } finally {
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  for (const f of fs.readdirSync(profDir).filter((x) => x.endsWith('.cpuprofile')).sort()) {
    for (const l of summarise(path.join(profDir, f), Number(process.env.TOP ?? 18))) console.log(l);
  }
  console.log(`profiles kept in ${profDir}`);
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });

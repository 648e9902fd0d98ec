/**
 * Where our server's memory goes under a render load: stores a CT, a 1024x1024 MR, the JPEG 2000 CR and a
 * 24-frame multi-frame object, renders each at concurrency 8 (a new window= each request), then STOWs 200 CT
 * instances; after each phase prints RSS, the high-water mark, and resident memory by kind of mapping from
 * /proc/PID/smaps: code (node and libraries), [heap] (malloc's main arena), anon<1MB (mostly V8 heap pages),
 * anon>=1MB (large buffers, shared frame cache, wasm memories), ~64MB arenas (other malloc arenas).
 *
 *   node dist/bench/memory.js [server args...]     e.g. --render-cache-mb 16
 *   ONLY=cr (phases to render; others only stored), BIG=1 (list large mappings), NODE_ARGS, MALLOC_* env
 */
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { Client, concurrent, storeAll, timedGet } from './lib/http';
import { startOurs, tempDir, repoRoot, RssMonitor, statusKb } from './lib/servers';
import { MR_SPEC, MF_SPEC, ctStowBatches, mrPixels, mfPixels, part10, uid } from './lib/dicom-synth';
const BUILD = path.resolve(__dirname, '..');
const ROOT = repoRoot(BUILD);
const corpus = (name: string) => fs.readFileSync(path.join(ROOT, 'test/fixtures/corpus/dicom', name));
interface Mapping { kind: string; sizeMb: number; rssMb: number }

/** The process's mappings from /proc/PID/smaps, each with its kind (see above), size and resident MB. */
function mappings(pid: number): Mapping[] {
  const out: Mapping[] = [];
  for (const l of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (m) {
      const sizeMb = (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1024 ** 2;
      const name = m[3];
      const kind = name.includes('/') ? (name.includes('.so') || name.includes('node') ? 'code' : 'file')
        : name || (sizeMb >= 1000 ? 'anon>=1GB(wasm/cage)' : sizeMb >= 60 && sizeMb <= 64.1 ? 'anon~64MB(arena)' : sizeMb >= 1 ? 'anon>=1MB' : 'anon<1MB');
      out.push({ kind, sizeMb, rssMb: 0 });
      continue;
    }
    const r = /^Rss:\s+(\d+)/.exec(l);
    if (r && out.length) out[out.length - 1].rssMb = Number(r[1]) / 1024;
  }
  return out;
}

/** resident MB by kind of mapping */
function byKind(pid: number): string {
  const groups: Record<string, number> = {};
  for (const m of mappings(pid)) groups[m.kind] = (groups[m.kind] ?? 0) + m.rssMb;
  return Object.entries(groups).filter(([, v]) => v > 1).map(([k, v]) => `${k}=${v.toFixed(0)}`).join(' ');
}

/** the anonymous mappings with more than 1 MB resident, as size:resident MB */
function bigMaps(pid: number): string {
  return mappings(pid).filter((m) => m.kind.startsWith('anon') && m.rssMb > 1).map((m) => `${m.sizeMb.toFixed(1)}:${m.rssMb.toFixed(1)}`).join(' ');
}

/**
 * glibc's malloc_stats() in the server, through gdb (MALLOC_STATS=1, with SHOW_STDERR=1 to see it): per arena,
 * the bytes taken from the system and those in use; the difference is free memory malloc keeps (fragmentation).
 */
function mallocStats(pid: number): void {
  spawnSync('gdb', ['-p', String(pid), '-batch', '-ex', 'call (void)malloc_stats()'], { stdio: 'ignore' });
}

const mb = (pid: number, field: string) => (statusKb(pid, field) ?? 0) / 1024;

async function main() {
  const args = process.argv.slice(2);
  const dataDir = tempDir('bench-memory-');
  const srv = await startOurs(BUILD, dataDir, { args });
  const c = new Client(srv.base);
  const monitor = new RssMonitor(srv.pid);
  const rep = (phase: string) => {
    monitor.phase(phase);
    console.log(`${phase.padEnd(8)} rss ${mb(srv.pid, 'VmRSS').toFixed(0)} hwm ${mb(srv.pid, 'VmHWM').toFixed(0)} | ${byKind(srv.pid)}`);
    if (process.env.MALLOC_STATS) mallocStats(srv.pid);
  };
  rep('start');
  const objs: Array<[string, Buffer, number, number[]]> = [
    ['ct', corpus('693_UNCR.dcm'), 1, [40, 400]],
    ['mr', part10(MR_SPEC, { study: uid(), series: uid(), sop: uid(), patientID: 'P' }, mrPixels()), 1, [1700, 3000]],
    ['cr', corpus('RG3_J2KR.dcm'), 1, [550, 1024]],
    ['mf', part10(MF_SPEC, { study: uid(), series: uid(), sop: uid(), patientID: 'P' }, mfPixels(MF_SPEC.frames!)), 12, [1700, 3000]],
  ];
  for (const [name, file, frame, win] of objs) {
    const [p] = await storeAll(c, [file]);
    const n = name === 'cr' ? 48 : 300;
    if (name === 'mf') for (let f = 1; f <= MF_SPEC.frames!; f++) await timedGet(c, `${p}/frames/${f}/rendered`, { Accept: 'image/png' });
    if (process.env.ONLY && !process.env.ONLY.includes(name)) continue;
    await concurrent(n, 8, (i) => timedGet(c, `${p}/frames/${frame}/rendered?window=${win[0] + i * 0.5},${win[1]},linear`, { Accept: 'image/png' }));
    rep(name);
    if (process.env.BIG) console.log('   big anon maps (size:rss MB):', bigMaps(srv.pid));
  }
  const bodies = ctStowBatches(200, 25);
  await concurrent(bodies.length, 2, async (i) => { await c.request('POST', '/dicom-web/studies', { 'Content-Type': bodies[i].contentType }, bodies[i].body); });
  rep('stow');
  monitor.stop();
  console.log(`peak ${monitor.peakMb().toFixed(0)} MB (polled, and VmHWM)  (${process.env.NODE_ARGS ?? ''} ${args.join(' ')})`);
  c.close(); await srv.stop(); fs.rmSync(dataDir, { recursive: true, force: true });
}
main().catch((e) => { console.error(e); process.exit(1); });

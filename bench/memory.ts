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
import { Client, concurrent, timedGet } from './lib/http';
import { startOurs, tempDir, repoRoot } from './lib/servers';
import { CT_SPEC, MR_SPEC, MF_SPEC, ctPixels, mrPixels, mfPixels, part10, uid, newMultipart, multipartBody } from './lib/dicom-synth';
const BUILD = path.resolve(__dirname, '..');
const ROOT = repoRoot(BUILD);
const corpus = (name: string) => fs.readFileSync(path.join(ROOT, 'test/fixtures/corpus/dicom', name));
/** a field of /proc/PID/status, in MB */
const st = (pid: number, k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
/** the large anonymous mappings, as size:resident MB */
function bigMaps(pid: number) {
  const txt = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n');
  const out: string[] = []; let size = 0; let named = false;
  for (const l of txt) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (m) { size = (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1024 ** 2; named = !!m[3]; continue; }
    const r = /^Rss:\s+(\d+)/.exec(l); if (r && !named && Number(r[1]) > 1024) out.push(`${size.toFixed(1)}:${(Number(r[1]) / 1024).toFixed(1)}`);
  }
  return out.join(' ');
}
/** resident MB by kind of mapping */
function smaps(pid: number) {
  const txt = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n');
  const groups: Record<string, number> = {};
  let name = '', size = 0;
  for (const l of txt) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
    if (m) { size = (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1024 ** 2; name = m[3] || (size >= 1000 ? 'anon>=1GB(wasm/cage)' : size >= 60 && size <= 64.1 ? 'anon~64MB(arena)' : size >= 1 ? 'anon>=1MB' : 'anon<1MB'); if (name.includes('/')) name = name.includes('.so') || name.includes('node') ? 'code' : 'file'; continue; }
    const r = /^Rss:\s+(\d+)/.exec(l); if (r) groups[name] = (groups[name] ?? 0) + Number(r[1]) / 1024;
  }
  return Object.entries(groups).filter(([, v]) => v > 1).map(([k, v]) => `${k}=${v.toFixed(0)}`).join(' ');
}
async function main() {
  const args = process.argv.slice(2);
  const dataDir = tempDir('bench-memory-');
  const srv = await startOurs(BUILD, dataDir, { nodeArgs: (process.env.NODE_ARGS ?? '').split(' ').filter(Boolean), args });
  const c = new Client(srv.base);
  const peak = { v: 0 }; const poll = setInterval(() => { try { peak.v = Math.max(peak.v, st(srv.pid, 'VmRSS')); } catch { /* */ } }, 20);
  const rep = (phase: string) => console.log(`${phase.padEnd(8)} rss ${st(srv.pid, 'VmRSS').toFixed(0)} hwm ${st(srv.pid, 'VmHWM').toFixed(0)} | ${smaps(srv.pid)}`);
  rep('start');
  const objs: Array<[string, Buffer, number, number[]]> = [
    ['ct', corpus('693_UNCR.dcm'), 1, [40, 400]],
    ['mr', part10(MR_SPEC, { study: uid(), series: uid(), sop: uid(), patientID: 'P' }, mrPixels()), 1, [1700, 3000]],
    ['cr', corpus('RG3_J2KR.dcm'), 1, [550, 1024]],
    ['mf', part10(MF_SPEC, { study: uid(), series: uid(), sop: uid(), patientID: 'P' }, mfPixels(MF_SPEC.frames!)), 12, [1700, 3000]],
  ];
  for (const [name, file, frame, win] of objs) {
    const m = newMultipart();
    const r = await c.request('POST', '/dicom-web/studies', { 'Content-Type': m.contentType }, multipartBody(m, [file]));
    const p = new URL(JSON.parse(r.body.toString())['00081199'].Value[0]['00081190'].Value[0]).pathname;
    const n = name === 'cr' ? 48 : 300;
    if (name === 'mf') for (let f = 1; f <= MF_SPEC.frames!; f++) await timedGet(c, `${p}/frames/${f}/rendered`, { Accept: 'image/png' });
    if (process.env.ONLY && !process.env.ONLY.includes(name)) continue;
    await concurrent(n, 8, (i) => timedGet(c, `${p}/frames/${frame}/rendered?window=${win[0] + i * 0.5},${win[1]},linear`, { Accept: 'image/png' }));
    rep(name);
    if (process.env.BIG) console.log('   big anon maps (size:rss MB):', bigMaps(srv.pid));
  }
  const pixels = ctPixels(); const study = uid();
  const bodies = Array.from({ length: 8 }, (_, k) => { const m = newMultipart(); return { m, b: multipartBody(m, Array.from({ length: 25 }, (_, j) => part10(CT_SPEC, { study, series: uid(), sop: uid(), patientID: 'S', instanceNumber: k * 25 + j + 1, seriesNumber: 1 }, pixels))) }; });
  await concurrent(bodies.length, 2, async (i) => { await c.request('POST', '/dicom-web/studies', { 'Content-Type': bodies[i].m.contentType }, bodies[i].b); });
  rep('stow');
  clearInterval(poll);
  console.log(`peak polled ${peak.v.toFixed(0)} MB, VmHWM ${st(srv.pid, 'VmHWM').toFixed(0)} MB  (${process.env.NODE_ARGS ?? ''} ${args.join(' ')})`);
  c.close(); await srv.stop(); fs.rmSync(dataDir, { recursive: true, force: true });
}
main().catch((e) => { console.error(e); process.exit(1); });

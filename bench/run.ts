/**
 * `npm run bench`: our server against Orthanc (DICOMweb + GDCM plugins, Debian packages) in the same run, on
 * loopback, alternating between the two so both see the same machine state. Prints medians, p95 and ratios,
 * and writes the table to bench/results/latest.json. Without Orthanc installed, it measures ours alone.
 *
 *   node dist/bench/run.js [--quick] [--no-orthanc] [--no-upload] [--no-viewer] [--cpu-prof DIR]
 */
import * as fs from 'fs';
import { execSync } from 'child_process';
import * as os from 'os';
import * as path from 'path';
import { Client, concurrent, sequential, timedGet } from './lib/http';
import { median, p95, round, fmt } from './lib/stats';
import { startOurs, startOrthanc, orthancInstall, tempDir, RssMonitor, Running, repoRoot } from './lib/servers';
import { loadSyntheticIndex, QIDO_QUERIES } from './lib/qido-load';
import { pngIdentity } from './lib/png-identity';
import { viewerRows } from './lib/viewer-load';
import {
  MR_SPEC, MF_SPEC, ctStowBatches, mrPixels, mfPixels, part10, uid, newMultipart, multipartBody, streamedStowBody,
} from './lib/dicom-synth';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { data: dcmjsData } = require('dcmjs');

const BUILD = path.resolve(__dirname, '..');            // dist/ or .out/bench/
const ROOT = repoRoot(BUILD);
const CORPUS = path.join(ROOT, 'test', 'fixtures', 'corpus', 'dicom');
const RESULTS = path.join(ROOT, 'bench', 'results', 'latest.json');

const argv = process.argv.slice(2);
const flag = (f: string) => argv.includes(f);
const QUICK = flag('--quick');
const CPU_PROF = argv.includes('--cpu-prof') ? argv[argv.indexOf('--cpu-prof') + 1] : undefined;
const Q = (full: number, quick: number) => (QUICK ? quick : full);

const COUNTS = {
  warmup: 3,
  concurrency: 8,
  cachedRepeats: Q(300, 50),
  stowInstances: Q(300, 60),
  stowBatch: 25,
  stowConcurrency: 2,
  qidoIndex: Q(100_000, 10_000),
  qidoRepeats: Q(25, 5),
  uploadBytes: Q(1024 ** 3, 128 * 1024 ** 2),
  viewerRepeats: Q(3, 1),
};

const log = (s: string) => process.stdout.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------
// What is stored and rendered

interface Obj { label: string; file: Buffer; study: string; series: string; sop: string }

function uidsOf(file: Buffer): { study: string; series: string; sop: string } {
  const d = dcmjsData.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.length), { untilTag: '7FE00010' });
  return { study: d.dict['0020000D'].Value[0], series: d.dict['0020000E'].Value[0], sop: d.dict['00080018'].Value[0] };
}

function corpusObj(label: string, name: string): Obj {
  const file = fs.readFileSync(path.join(CORPUS, name));
  return { label, file, ...uidsOf(file) };
}

function synthObj(label: string, spec: typeof MR_SPEC, pixels: Buffer): Obj {
  const ids = { study: uid(), series: uid(), sop: uid(), patientID: `BENCH-${label}` };
  return { label, file: part10(spec, ids, pixels), study: ids.study, series: ids.series, sop: ids.sop };
}

interface RenderCase { key: string; title: string; obj: Obj; frame: number; window: [number, number]; latencyN: number; throughputN: number }

// ---------------------------------------------------------------------------------------------
// The table

interface Row {
  group: string; metric: string; unit: string; ours?: number; orthanc?: number;
  /** the range over repeats, and the servers' CPU time per repeat (median), where a row has them */
  oursRange?: [number, number]; orthancRange?: [number, number]; oursCpuMs?: number; orthancCpuMs?: number; cpuBetter?: number;
  /** how many times better ours is (>1: ours better), from the direction of the metric */
  better?: number; target?: string; met?: boolean; note?: string;
}
const rows: Row[] = [];
const notes: string[] = [];
const raw: Record<string, unknown> = {};

function addRow(r: Omit<Row, 'better'>, lowerIsBetter: boolean, targetFn?: (r: Row) => boolean) {
  const row: Row = { ...r };
  if (r.ours !== undefined && r.orthanc !== undefined && r.ours > 0 && r.orthanc > 0) {
    row.better = round(lowerIsBetter ? r.orthanc / r.ours : r.ours / r.orthanc, 2);
  }
  if (row.ours !== undefined) row.ours = round(row.ours, row.ours < 10 ? 3 : 1);
  if (row.orthanc !== undefined) row.orthanc = round(row.orthanc, row.orthanc < 10 ? 3 : 1);
  if (targetFn && row.ours !== undefined) row.met = targetFn(row);
  rows.push(row);
}

function printTable() {
  const header = ['metric', 'unit', 'ours', 'Orthanc', 'ours ×better', 'CPU ms ours/Orthanc (×)', 'target', 'met'];
  const withRange = (v: number | undefined, r?: [number, number]) => (r ? `${fmt(v)} (${fmt(r[0])}-${fmt(r[1])})` : fmt(v));
  const lines = rows.map((r) => [`${r.group}: ${r.metric}`, r.unit, withRange(r.ours, r.oursRange), withRange(r.orthanc, r.orthancRange), r.better !== undefined ? `${fmt(r.better)}×` : '-',
    r.oursCpuMs !== undefined ? `${fmt(r.oursCpuMs)}/${fmt(r.orthancCpuMs)}${r.cpuBetter !== undefined ? ` (${fmt(r.cpuBetter)}×)` : ''}` : '',
    r.target ?? '', r.met === undefined ? '' : r.met ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 2 && i <= 5 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  log('');
  log(line(header));
  log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) log(line(l));
  log('');
  for (const n of notes) log(`note: ${n}`);
}

// ---------------------------------------------------------------------------------------------

async function stow(c: Client, body: Buffer, contentType: string): Promise<void> {
  const r = await c.request('POST', '/dicom-web/studies', { 'Content-Type': contentType, Accept: 'application/dicom+json' }, body);
  if (r.status !== 200) throw new Error(`STOW to ${c.base} answered ${r.status}: ${r.body.toString('utf8', 0, 400)}`);
}

function renderedPath(o: Obj, frame: number, window: [number, number] | undefined): string {
  const q = window ? `?window=${window[0]},${window[1]},linear` : ''; // Orthanc wants the function too
  return `/dicom-web/studies/${o.study}/series/${o.series}/instances/${o.sop}/frames/${frame}/rendered${q}`;
}

async function main() {
  const started = Date.now();
  const machine = {
    nproc: os.cpus().length,
    model: (/^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown').trim(),
    memTotalMb: Math.round(os.totalmem() / 1024 ** 2),
    kernel: os.release(),
  };
  log(`bench ${new Date().toISOString()} on ${machine.nproc} x ${machine.model}, node ${process.version}${QUICK ? ' (quick)' : ''}`);

  const png = pngIdentity();
  raw.pngIdentity = png;
  notes.push(png.ok ? `PNG writer check: on ${png.cases} random images the JavaScript writer gave pngjs's bytes, and the server's writer (${png.encoder}) decoded to the very pixels.`
    : `PNG writer check FAILED (server's writer: ${png.encoder}) on ${png.failures.join(', ')}.`);
  log(notes[notes.length - 1]);

  // Objects: three corpus files and two synthetic ones (no 1024x1024 16-bit MR nor large multi-frame in the corpus).
  const objs = {
    ct: corpusObj('CT', '693_UNCR.dcm'),
    cr: corpusObj('CR', 'RG3_J2KR.dcm'),
    emri: corpusObj('MF-small', 'emri_small.dcm'),
    mr: synthObj('MR', MR_SPEC, mrPixels()),
    mf: synthObj('MF', MF_SPEC, mfPixels(MF_SPEC.frames!)),
  };
  const cases: RenderCase[] = [
    { key: 'ct512', title: 'CT 512x512 (693_UNCR)', obj: objs.ct, frame: 1, window: [40, 400], latencyN: Q(60, 8), throughputN: Q(600, 32) },
    { key: 'mr1024', title: 'MR 1024x1024 16-bit (synthetic)', obj: objs.mr, frame: 1, window: [1700, 3000], latencyN: Q(40, 6), throughputN: Q(300, 16) },
    { key: 'cr1760j2k', title: 'CR 1760x1760 JPEG 2000 (RG3_J2KR)', obj: objs.cr, frame: 1, window: [550, 1024], latencyN: Q(16, 4), throughputN: Q(48, 8) },
    { key: 'mf64f2', title: 'multi-frame 64x64x10 frame 2 (emri_small)', obj: objs.emri, frame: 2, window: [300, 600], latencyN: Q(40, 8), throughputN: Q(400, 16) },
    { key: 'mf512f12', title: 'multi-frame 512x512x24 frame 12 (synthetic)', obj: objs.mf, frame: 12, window: [1700, 3000], latencyN: Q(30, 6), throughputN: Q(300, 16) },
  ];

  // Our data folder, with the synthetic QIDO index loaded before the server starts.
  const ourDir = tempDir('bench-ours-');
  const dirs = [ourDir];
  const running: Running[] = [];
  let monitor: RssMonitor | undefined;
  let theirMonitor: RssMonitor | undefined;
  try {
    log(`loading a synthetic index of ${COUNTS.qidoIndex} instances into ${ourDir} (SqliteIndex.insert, one transaction)...`);
    const loaded = loadSyntheticIndex(ourDir, COUNTS.qidoIndex);
    log(`  ${loaded.studies} studies in ${loaded.seconds.toFixed(1)} s`);
    notes.push(`QIDO at ${COUNTS.qidoIndex} instances: a synthetic index (${loaded.studies} studies x 2 series x 5 instances) written through SqliteIndex.insert before the server started; the server also holds what the bench stored.`);

    const ours = await startOurs(BUILD, ourDir, { nodeArgs: CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF}`] : [] });
    running.push(ours);
    monitor = new RssMonitor(ours.pid);
    log(`ours: ${ours.dicomWeb} (pid ${ours.pid})`);

    let theirs: (Running & { version: string; dicomWebVersion?: string }) | undefined;
    const install = flag('--no-orthanc') ? undefined : orthancInstall();
    if (!install) {
      notes.push(flag('--no-orthanc') ? 'Orthanc left out (--no-orthanc): our server alone.'
        : 'Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb orthanc-gdcm): our server alone, no ratios.');
      log(`Orthanc: not used — ${notes[notes.length - 1]}`);
    } else {
      const dir = tempDir('bench-orthanc-');
      dirs.push(dir);
      theirs = await startOrthanc(install, dir);
      running.push(theirs);
      theirMonitor = new RssMonitor(theirs.pid);
      log(`Orthanc ${theirs.version} (DICOMweb plugin ${theirs.dicomWebVersion ?? '?'}): ${theirs.dicomWeb} (pid ${theirs.pid})`);
      notes.push(`Orthanc ${theirs.version} with DICOMweb plugin ${theirs.dicomWebVersion ?? '?'} and GDCM plugin, default durability settings, HTTP on a free port (Orthanc 1.10 binds all interfaces; RemoteAccessAllowed=false refuses non-local clients), DICOM server disabled.`);
    }
    const oc = new Client(ours.base);
    const tc = theirs ? new Client(theirs.base) : undefined;
    const both: Array<[string, Client]> = [['ours', oc], ...(tc ? [['orthanc', tc] as [string, Client]] : [])];

    // Store the rendering objects in both.
    {
      const m = newMultipart();
      const body = multipartBody(m, Object.values(objs).map((o) => o.file));
      for (const [, c] of both) await stow(c, body, m.contentType);
      log(`stored ${Object.keys(objs).length} objects (${(body.length / 1024 ** 2).toFixed(1)} MB) in ${both.map((b) => b[0]).join(' and ')}`);
    }

    // Rendered frames: every uncached request carries its own window= so our cache never answers.
    notes.push('Rendered figures other than "first view": each request carries a different window= centre, so our rendered-image cache never answers, but the frame itself is in our frame cache after the first request (its stored bytes, or for JPEG 2000 its decoded samples): they measure a viewer changing the window on a frame. "First view" rows measure frames no cache of ours has seen. Orthanc has neither cache and gets the same URLs. Sequential latency alternates ours/Orthanc request by request; throughput alternates blocks.');
    let serial = 0;
    const pngAccept = { Accept: 'image/png' };

    // Cold frames: the first request for each frame of the synthetic multi-frame object (frame 12 excepted, used
    // below), so no cache of ours holds the frame or its image; then the first request for the JPEG 2000 CR
    // (one sample each: a full decode). Orthanc gets the same URLs, alternating.
    {
      monitor.phase('render cold');
      const lat: Record<string, number[]> = { ours: [], orthanc: [] };
      const frames = Array.from({ length: MF_SPEC.frames! }, (_, i) => i + 1).filter((f) => f !== 12);
      for (const f of frames) {
        for (const [name, c] of (f % 2 ? [...both].reverse() : both)) lat[name].push(await timedGet(c, renderedPath(objs.mf, f, [1700, 3000]), pngAccept));
      }
      const cr: Record<string, number> = {};
      for (const [name, c] of both) cr[name] = await timedGet(c, renderedPath(objs.cr, 1, [550, 1024]), pngAccept);
      raw.render_cold = { mf512Frames: lat, crFirst: cr };
      addRow({ group: `multi-frame 512x512x${MF_SPEC.frames} (synthetic), first view of each frame`, metric: 'PNG latency median', unit: 'ms',
        ours: median(lat.ours), orthanc: tc ? median(lat.orthanc) : undefined }, true);
      addRow({ group: 'CR 1760x1760 JPEG 2000 (RG3_J2KR), first view', metric: 'PNG latency, one request (full decode)', unit: 'ms',
        ours: cr.ours, orthanc: tc ? cr.orthanc : undefined }, true);
      log(`cold: MF frames ${fmt(median(lat.ours))} ms median${tc ? ` (Orthanc ${fmt(median(lat.orthanc))})` : ''}; CR first view ${fmt(cr.ours)} ms${tc ? ` (Orthanc ${fmt(cr.orthanc)})` : ''}`);
    }
    for (const rc of cases) {
      monitor.phase(`render ${rc.key}`);
      const win = (): [number, number] => { serial++; return [rc.window[0] + (serial % 997) * 0.5 + serial / 1e4, rc.window[1]]; };
      try {
        for (const [, c] of both) for (let i = 0; i < COUNTS.warmup; i++) await timedGet(c, renderedPath(rc.obj, rc.frame, win()), pngAccept);
        const lat: Record<string, number[]> = { ours: [], orthanc: [] };
        for (let i = 0; i < rc.latencyN; i++) {
          for (const [name, c] of (i % 2 ? [...both].reverse() : both)) lat[name].push(await timedGet(c, renderedPath(rc.obj, rc.frame, win()), pngAccept));
        }
        const rps: Record<string, { n: number; s: number }> = { ours: { n: 0, s: 0 }, orthanc: { n: 0, s: 0 } };
        const blocks = 2;
        for (let b = 0; b < blocks; b++) {
          for (const [name, c] of both) {
            const n = Math.ceil(rc.throughputN / blocks);
            const paths = Array.from({ length: n }, () => renderedPath(rc.obj, rc.frame, win()));
            const s = await concurrent(n, COUNTS.concurrency, (i) => timedGet(c, paths[i], pngAccept));
            rps[name].n += n; rps[name].s += s;
          }
        }
        raw[`render_${rc.key}`] = { latencyMs: lat, throughput: rps };
        const ratioTarget = rc.key === 'ct512' || rc.key === 'mr1024';
        addRow({ group: rc.title, metric: 'PNG latency median', unit: 'ms', ours: median(lat.ours), orthanc: tc ? median(lat.orthanc) : undefined,
          target: ratioTarget && tc ? '≤ 1/5 of Orthanc' : undefined }, true, ratioTarget && tc ? (r) => (r.better ?? 0) >= 5 : undefined);
        addRow({ group: rc.title, metric: 'PNG latency p95', unit: 'ms', ours: p95(lat.ours), orthanc: tc ? p95(lat.orthanc) : undefined }, true);
        addRow({ group: rc.title, metric: `throughput c=${COUNTS.concurrency}`, unit: 'req/s', ours: rps.ours.n / rps.ours.s,
          orthanc: tc ? rps.orthanc.n / rps.orthanc.s : undefined, target: ratioTarget && tc ? '≥ 5× Orthanc' : undefined },
        false, ratioTarget && tc ? (r) => (r.better ?? 0) >= 5 : undefined);
        log(`${rc.title}: ours ${fmt(median(lat.ours))} ms median, ${fmt(rps.ours.n / rps.ours.s)} req/s` +
          (tc ? `; Orthanc ${fmt(median(lat.orthanc))} ms, ${fmt(rps.orthanc.n / rps.orthanc.s)} req/s` : ''));
      } catch (e: any) {
        notes.push(`${rc.title}: failed: ${e?.message ?? e}`);
        log(`${rc.title}: FAILED ${e?.message ?? e}`);
      }
    }

    // Where viewers wait (bench/lib/viewer-load.ts): large JPEG 2000 first views, a 200-instance series opened as
    // OHIF does, STOW at 1, 4 and 8 in flight; medians and ranges over repeats, server CPU time beside wall time.
    if (!flag('--no-viewer')) {
      const vboth = both.map(([name, c]) => [name, c, name === 'ours' ? ours.pid : theirs!.pid] as [string, Client, number]);
      const vrows = await viewerRows(vboth, COUNTS.viewerRepeats, log, (p) => monitor!.phase(p));
      for (const v of vrows) {
        const range = (xs: number[]): [number, number] | undefined => (xs.length ? [round(Math.min(...xs), 1), round(Math.max(...xs), 1)] : undefined);
        const oc = v.oursCpuMs.length ? median(v.oursCpuMs) : undefined, tcpu = v.orthancCpuMs.length ? median(v.orthancCpuMs) : undefined;
        addRow({ group: v.group, metric: v.metric, unit: v.unit, ours: median(v.ours), orthanc: v.orthanc.length ? median(v.orthanc) : undefined,
          oursRange: range(v.ours), orthancRange: range(v.orthanc), oursCpuMs: oc && round(oc, 1), orthancCpuMs: tcpu && round(tcpu, 1),
          cpuBetter: oc && tcpu ? round(tcpu / oc, 2) : undefined, note: v.note }, v.lowerIsBetter);
      }
      raw.viewer = vrows;
      notes.push(`Viewer rows (bench/lib/viewer-load.ts): ${COUNTS.viewerRepeats} repeats each, ours and Orthanc alternating; the ratio is of medians of wall time; "CPU" is each server's own CPU time (all threads, /proc schedstat) per repeat, robust to a loaded machine.`);
    }

    // 16-bit grey PNG (bitdepth=16, issue 21) of the MR 1024 frame: ours alone (Orthanc has no such output),
    // against our 8-bit PNG of the same frame, alternating request by request and block by block; peak RSS per phase.
    {
      const win = (): [number, number] => { serial++; return [1700 + (serial % 997) * 0.5 + serial / 1e4, 3000]; };
      const path8 = () => renderedPath(objs.mr, 1, win());
      const path16 = () => `${renderedPath(objs.mr, 1, win())}&bitdepth=16`;
      try {
        for (let i = 0; i < COUNTS.warmup; i++) { await timedGet(oc, path8(), pngAccept); await timedGet(oc, path16(), pngAccept); }
        const lat: Record<'b8' | 'b16', number[]> = { b8: [], b16: [] };
        const rss: Record<'b8' | 'b16', number> = { b8: 0, b16: 0 };
        const rps: Record<'b8' | 'b16', { n: number; s: number }> = { b8: { n: 0, s: 0 }, b16: { n: 0, s: 0 } };
        const n = Q(40, 6), tn = Math.ceil(Q(300, 16) / 2);
        for (let i = 0; i < n; i++) {
          for (const k of (i % 2 ? ['b16', 'b8'] : ['b8', 'b16']) as Array<'b8' | 'b16'>) lat[k].push(await timedGet(oc, k === 'b8' ? path8() : path16(), pngAccept));
        }
        for (let b = 0; b < 2; b++) {
          for (const k of ['b8', 'b16'] as const) {
            monitor.phase(`render mr1024 ${k}`);
            const paths = Array.from({ length: tn }, () => (k === 'b8' ? path8() : path16()));
            rps[k].n += tn; rps[k].s += await concurrent(tn, COUNTS.concurrency, (i) => timedGet(oc, paths[i], pngAccept));
          }
        }
        monitor.phase('after mr1024 16-bit');
        rss.b8 = monitor.phases['render mr1024 b8'] ?? 0; rss.b16 = monitor.phases['render mr1024 b16'] ?? 0;
        const size = async (p: string) => (await oc.get(p, pngAccept)).body.length / 1024;
        const bytes = { b8: await size(path8()), b16: await size(path16()) };
        raw.render_mr1024_16bit = { latencyMs: lat, throughput: rps, rssMb: rss, pngKB: bytes };
        const g = 'MR 1024x1024 16-bit grey PNG (bitdepth=16), ours only';
        addRow({ group: g, metric: 'PNG latency median, 16-bit output', unit: 'ms', ours: median(lat.b16) }, true);
        addRow({ group: g, metric: 'PNG latency median, 8-bit output (same run)', unit: 'ms', ours: median(lat.b8) }, true);
        addRow({ group: g, metric: `throughput c=${COUNTS.concurrency}, 16-bit output`, unit: 'req/s', ours: rps.b16.n / rps.b16.s }, false);
        addRow({ group: g, metric: `throughput c=${COUNTS.concurrency}, 8-bit output (same run)`, unit: 'req/s', ours: rps.b8.n / rps.b8.s }, false);
        addRow({ group: g, metric: 'peak RSS while serving 16-bit', unit: 'MB', ours: rss.b16 }, true);
        addRow({ group: g, metric: 'peak RSS while serving 8-bit', unit: 'MB', ours: rss.b8 }, true);
        addRow({ group: g, metric: 'PNG size 16-bit', unit: 'KB', ours: bytes.b16 }, true);
        addRow({ group: g, metric: 'PNG size 8-bit', unit: 'KB', ours: bytes.b8 }, true);
        log(`MR 1024 16-bit: ${fmt(median(lat.b16))} ms median (8-bit ${fmt(median(lat.b8))}), ${fmt(rps.b16.n / rps.b16.s)} req/s (8-bit ${fmt(rps.b8.n / rps.b8.s)}), RSS ${fmt(rss.b16)} MB (8-bit ${fmt(rss.b8)}), ${fmt(bytes.b16)} KB (8-bit ${fmt(bytes.b8)})`);
      } catch (e: any) {
        notes.push(`MR 1024 16-bit: failed: ${e?.message ?? e}`);
        log(`MR 1024 16-bit: FAILED ${e?.message ?? e}`);
      }
    }

    // The same rendered frame again: our cache, then ETag revalidation (304).
    {
      monitor.phase('cached');
      const p = renderedPath(objs.ct, 1, [40, 400]);
      const first = await oc.get(p, pngAccept);
      const etag = String(first.headers.etag ?? '');
      const cached = await sequential(COUNTS.cachedRepeats, () => timedGet(oc, p, pngAccept));
      const revalidated = etag ? await sequential(COUNTS.cachedRepeats, () => timedGet(oc, p, { ...pngAccept, 'If-None-Match': etag }, 304)) : [];
      let theirsRepeat: number[] = [];
      if (tc) {
        await timedGet(tc, p, pngAccept);
        theirsRepeat = await sequential(Q(20, 5), () => timedGet(tc, p, pngAccept));
      }
      raw.cached = { ours: cached, oursIfNoneMatch: revalidated, orthancRepeat: theirsRepeat };
      addRow({ group: 'CT 512 same frame repeated', metric: 'median (our cache; Orthanc re-renders)', unit: 'ms', ours: median(cached),
        orthanc: tc ? median(theirsRepeat) : undefined, target: '< 2 ms' }, true, (r) => (r.ours ?? 99) < 2);
      addRow({ group: 'CT 512 same frame repeated', metric: 'median with If-None-Match (304)', unit: 'ms', ours: median(revalidated),
        target: '< 2 ms' }, true, (r) => (r.ours ?? 99) < 2);
      log(`cached repeat: ${fmt(median(cached))} ms, 304: ${fmt(median(revalidated))} ms`);
    }

    // STOW-RS: N distinct synthetic 512x512 CT instances in batches; the same bodies go to both, in alternating rounds.
    {
      monitor.phase('stow');
      const batches = ctStowBatches(COUNTS.stowInstances, COUNTS.stowBatch);
      const rounds = 3;
      const per = Math.ceil(batches.length / rounds);
      const secs: Record<string, number> = { ours: 0, orthanc: 0 };
      for (let r = 0; r < rounds; r++) {
        const mine = batches.slice(r * per, (r + 1) * per);
        for (const [name, c] of both) {
          // Each server starts from a clean page cache: with ext4's ordered journal, an fsync also waits for data
          // the other server wrote and left to the kernel's write-back (Orthanc does not sync by default).
          execSync('sync');
          secs[name] += await concurrent(mine.length, COUNTS.stowConcurrency, (i) => stow(c, mine[i].body, mine[i].contentType));
        }
      }
      raw.stow = { instances: COUNTS.stowInstances, batch: COUNTS.stowBatch, concurrency: COUNTS.stowConcurrency, seconds: secs };
      addRow({ group: `STOW-RS ${COUNTS.stowInstances} CT 512 instances`, metric: `batches of ${COUNTS.stowBatch}, ${COUNTS.stowConcurrency} in flight`, unit: 'inst/s',
        ours: COUNTS.stowInstances / secs.ours, orthanc: tc ? COUNTS.stowInstances / secs.orthanc : undefined, target: '≥ 200/s' }, false, (r) => (r.ours ?? 0) >= 200);
      log(`STOW: ours ${fmt(COUNTS.stowInstances / secs.ours)} inst/s${tc ? `, Orthanc ${fmt(COUNTS.stowInstances / secs.orthanc)} inst/s` : ''}`);
    }

    // QIDO-RS on what both hold (a few hundred instances), then ours at 100k.
    {
      monitor.phase('qido');
      const json = { Accept: 'application/dicom+json' };
      const small = ['PatientID=BENCH-STOW', 'PatientName=BENCH*', 'StudyDate=20240301'];
      const lat: Record<string, number[]> = { ours: [], orthanc: [] };
      for (const [, c] of both) await timedGet(c, `/dicom-web/studies?${small[0]}`, json);
      for (let i = 0; i < Q(20, 5) * small.length; i++) {
        for (const [name, c] of both) lat[name].push(await timedGet(c, `/dicom-web/studies?${small[i % small.length]}`, json));
      }
      addRow({ group: 'QIDO-RS study search', metric: 'median, both holding the bench objects', unit: 'ms', ours: median(lat.ours),
        orthanc: tc ? median(lat.orthanc) : undefined }, true);
      // Ours at 100k: our index also holds the synthetic rows (Orthanc does not: storing 100k instances in it is not cheap).
      const big: Record<string, number[]> = {};
      for (const q of QIDO_QUERIES) await oc.get(`/dicom-web/studies?${q}`, json);
      for (let i = 0; i < COUNTS.qidoRepeats; i++) {
        for (const q of QIDO_QUERIES) {
          const r = await oc.get(`/dicom-web/studies?${q}`, json);
          if (r.status !== 200 && r.status !== 204) throw new Error(`QIDO ${q}: ${r.status} ${r.body.toString('utf8', 0, 300)}`);
          (big[q] ??= []).push(r.ms);
        }
      }
      const all = Object.values(big).flat();
      raw.qido = { small: lat, big: Object.fromEntries(Object.entries(big).map(([q, xs]) => [q, { median: round(median(xs), 3), p95: round(p95(xs), 3) }])) };
      addRow({ group: `QIDO-RS study search, ${COUNTS.qidoIndex / 1000}k instances`, metric: `median over ${QIDO_QUERIES.length} queries (ours only)`, unit: 'ms',
        ours: median(all), target: '< 20 ms' }, true, (r) => (r.ours ?? 99) < 20);
      addRow({ group: `QIDO-RS study search, ${COUNTS.qidoIndex / 1000}k instances`, metric: 'p95', unit: 'ms', ours: p95(all) }, true);
      for (const [q, xs] of Object.entries(big)) log(`  QIDO 100k ${q}: ${fmt(median(xs))} ms median`);
      notes.push('QIDO at 100k is ours only: loading 100k instances into Orthanc is not cheap, so it is skipped there.');
    }

    // Memory over the whole run.
    const ourPeak = monitor.peakMb();
    raw.rssPhasesMb = Object.fromEntries(Object.entries(monitor.phases).map(([k, v]) => [k, round(v, 1)]));
    addRow({ group: 'Peak RSS', metric: 'server process over the run (VmHWM / polled VmRSS)', unit: 'MB', ours: ourPeak,
      orthanc: theirMonitor?.peakMb(), target: '< 300 MB' }, true, (r) => (r.ours ?? 1e9) < 300);
    monitor.stop(); theirMonitor?.stop();
    oc.close(); tc?.close();
    for (const s of running.splice(0)) await s.stop();

    // A 1 GB STOW-RS upload into a fresh server: RSS must stay bounded while the body streams.
    if (!flag('--no-upload')) {
      const dir = tempDir('bench-upload-');
      dirs.push(dir);
      const srv = await startOurs(BUILD, dir);
      running.push(srv);
      const mon = new RssMonitor(srv.pid);
      const c = new Client(srv.base);
      const pixels = mrPixels(29);
      const m = newMultipart();
      const perInstance = pixels.length + 1200;
      const count = Math.ceil(COUNTS.uploadBytes / perInstance);
      const { stream, bytes } = streamedStowBody(m, count, MR_SPEC, { study: uid(), series: uid(), patientID: 'BENCH-UPLOAD' }, pixels);
      const t0 = process.hrtime.bigint();
      const r = await c.request('POST', '/dicom-web/studies', { 'Content-Type': m.contentType, Accept: 'application/dicom+json' }, stream, 600_000);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 200) throw new Error(`1 GB upload answered ${r.status}: ${r.body.toString('utf8', 0, 300)}`);
      const peak = mon.peakMb();
      mon.stop(); c.close();
      raw.upload = { instances: count, bytes, seconds: s, peakRssMb: peak };
      addRow({ group: `STOW-RS ${(bytes / 1024 ** 3).toFixed(2)} GB in one request`, metric: `peak RSS (${count} MR 1024 instances, streamed)`, unit: 'MB',
        ours: peak, target: '< 300 MB' }, true, (rr) => (rr.ours ?? 1e9) < 300);
      addRow({ group: `STOW-RS ${(bytes / 1024 ** 3).toFixed(2)} GB in one request`, metric: 'ingest rate', unit: 'MB/s', ours: bytes / 1024 ** 2 / s }, false);
      log(`1 GB upload: ${fmt(bytes / 1024 ** 2 / s)} MB/s, peak RSS ${fmt(peak)} MB`);
      for (const x of running.splice(0)) await x.stop();
    }

    printTable();
    const result = {
      date: new Date().toISOString(), durationSeconds: round((Date.now() - started) / 1000, 1), quick: QUICK,
      machine, node: process.version,
      orthanc: theirs ? { version: theirs.version, dicomWebPlugin: theirs.dicomWebVersion ?? null } : null,
      counts: COUNTS, rows, notes, raw,
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(result, null, 2) + '\n');
    log(`written ${path.relative(ROOT, RESULTS)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  } finally {
    monitor?.stop(); theirMonitor?.stop();
    for (const s of running) await s.stop().catch(() => undefined);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => { console.error(`bench failed: ${e?.stack ?? e}`); process.exitCode = 1; process.exit(1); });

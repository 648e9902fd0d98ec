/**
 * The rows of the bench where a viewer waits (issue 18): large JPEG 2000 images (first thumbnail, window changes,
 * the thumbnail resource), a 200-instance series opened as OHIF does (frames with transfer-syntax=*, rendered
 * thumbnails, 6 in flight), and STOW-RS at 1, 4 and 8 in flight with batches of 1 and 25. Each figure is measured
 * `repeats` times, ours and Orthanc alternating (who goes first alternates too); rows carry the median and the
 * range. Used by bench/run.ts and, alone, by bench/viewer.ts.
 */
import { execFileSync, execSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Client, concurrent, storeAll, timedGet } from './http';
import { median } from './stats';
import { liveCpuMs } from './proc';
import { CT_SPEC, ImageSpec, ctPixels, multipartBody, newMultipart, part10, smoothFrame, uid } from './dicom-synth';

/**
 * One figure: wall time (or rate) per repeat, and the server process's CPU time over the same repeat (all its
 * threads, /proc schedstat): on a loaded machine the wall figures are noisy, the CPU ones much less.
 */
export interface ViewerRow {
  group: string; metric: string; unit: string; ours: number[]; orthanc: number[]; lowerIsBetter: boolean;
  oursCpuMs: number[]; orthancCpuMs: number[]; note?: string;
}

export const DX_SPEC: ImageSpec = {
  sopClass: '1.2.840.10008.5.1.4.1.1.1.1', modality: 'DX', rows: 2128, columns: 2000, bitsStored: 12, signed: false, window: [2048, 3500],
};

/**
 * `count` instances of one synthetic 2000x2128 12-bit DX, JPEG 2000 lossless (gdcmconv --j2k, the GDCM tools of
 * Debian; OpenJPEG inside), each its own study so that no cache of ours has seen it. Undefined without gdcmconv.
 */
export function dxJpeg2000(count: number): Array<{ file: Buffer; study: string; series: string; sop: string }> | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dx-'));
  try {
    const pixels = smoothFrame(DX_SPEC.rows, DX_SPEC.columns, 200, 3900, false, 29);
    const out = [];
    for (let i = 0; i < count; i++) {
      const ids = { study: uid(), series: uid(), sop: uid(), patientID: 'BENCH-DX' };
      const src = path.join(dir, `dx${i}.dcm`), dst = path.join(dir, `dx${i}.j2k.dcm`);
      fs.writeFileSync(src, part10(DX_SPEC, ids, pixels));
      execFileSync('gdcmconv', ['--j2k', src, dst], { stdio: 'ignore' });
      out.push({ file: fs.readFileSync(dst), ...ids });
    }
    return out;
  } catch {
    return undefined;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** [name, client, server pid] of each server measured */
type Both = Array<[string, Client, number]>;
const png = { Accept: 'image/png' };
const order = (both: Both, i: number) => (i % 2 ? [...both].reverse() : both);
const pathOf = (o: { study: string; series: string; sop: string }) => `/dicom-web/studies/${o.study}/series/${o.series}/instances/${o.sop}`;

async function stow(c: Client, body: Buffer, contentType: string): Promise<void> {
  const r = await c.request('POST', '/dicom-web/studies', { 'Content-Type': contentType, Accept: 'application/dicom+json' }, body);
  if (r.status !== 200) throw new Error(`STOW to ${c.base} answered ${r.status}: ${r.body.toString('utf8', 0, 300)}`);
}

export async function viewerRows(both: Both, repeats: number, log: (s: string) => void, phase: (name: string) => void = () => undefined,
  parts: { dx?: boolean; series?: boolean; stow?: boolean } = { dx: true, series: true, stow: true }): Promise<ViewerRow[]> {
  const rows: ViewerRow[] = [];
  const row = (group: string, metric: string, unit: string, lowerIsBetter: boolean, note?: string) => {
    const r: ViewerRow = { group, metric, unit, ours: [], orthanc: [], lowerIsBetter, oursCpuMs: [], orthancCpuMs: [], note };
    rows.push(r);
    return r;
  };
  const pidOf = (name: string) => both.find((b) => b[0] === name)![2];
  /** Runs `f` (its figure: ms, or a rate computed from its seconds) and records the figure and the server's CPU. */
  const add = async (r: ViewerRow, name: string, f: () => Promise<number>) => {
    const pid = pidOf(name);
    const c0 = liveCpuMs(pid);
    const v = await f();
    (name === 'ours' ? r.oursCpuMs : r.orthancCpuMs).push(liveCpuMs(pid) - c0);
    (name === 'ours' ? r.ours : r.orthanc).push(v);
  };

  // Large JPEG 2000: each repeat on an instance neither server has rendered.
  if (parts.dx) {
    phase('viewer dx');
    const dx = dxJpeg2000(repeats);
    if (!dx) log('viewer: gdcmconv failed or missing: no DX JPEG 2000 rows');
    else {
      const m = newMultipart();
      const body = multipartBody(m, dx.map((d) => d.file));
      for (const [, c] of both) await stow(c, body, m.contentType);
      const group = `DX 2000x2128 12-bit JPEG 2000 lossless (synthetic, gdcmconv)`;
      const thumbFirst = row(group, 'viewport=256,256 first view (no cache has the frame)', 'ms', true);
      const thumbWin = row(group, 'viewport=256,256 window change after it', 'ms', true);
      const fullFirst = row(group, 'full size, first full view (after the thumbnail)', 'ms', true);
      const fullWin = row(group, 'full size, window change after it', 'ms', true);
      const thumbRes = row(group, '/thumbnail of a fresh instance (ours; Orthanc: none)', 'ms', true);
      for (let i = 0; i < dx.length; i++) {
        const base = `${pathOf(dx[i])}/frames/1/rendered`;
        for (const [name, c] of order(both, i)) {
          await add(thumbFirst, name, () => timedGet(c, `${base}?viewport=256,256&window=2048,3500,linear`, png));
          await add(thumbWin, name, () => timedGet(c, `${base}?viewport=256,256&window=2100,3000,linear`, png));
          await add(fullFirst, name, () => timedGet(c, `${base}?window=2000,3500,linear`, png));
          await add(fullWin, name, () => timedGet(c, `${base}?window=1900,3300,linear`, png));
        }
      }
      // /thumbnail on fresh instances (ours only: Orthanc's DICOMweb plugin has no thumbnail resource)
      const fresh = dxJpeg2000(repeats)!;
      const m2 = newMultipart();
      await stow(both[0][1], multipartBody(m2, fresh.map((d) => d.file)), m2.contentType);
      for (const d of fresh) await add(thumbRes, 'ours', () => timedGet(both[0][1], `${pathOf(d)}/thumbnail`, png));
      log(`viewer DX: thumbnail ${median(thumbFirst.ours).toFixed(1)} ms (Orthanc ${median(thumbFirst.orthanc).toFixed(1)}), full ${median(fullFirst.ours).toFixed(1)} (${median(fullFirst.orthanc).toFixed(1)})`);
    }
  }

  // A 200-instance CT series, opened as OHIF does.
  if (parts.series) {
    phase('viewer series');
    const n = 200;
    const pixels = ctPixels(31);
    const study = uid(), series = uid();
    const files = Array.from({ length: n }, (_, j) => part10(CT_SPEC, { study, series, sop: uid(), patientID: 'BENCH-SERIES', instanceNumber: j + 1 }, pixels));
    const paths: Record<string, string[]> = {};
    for (const [name, c] of both) {
      paths[name] = [];
      for (let k = 0; k < n; k += 25) paths[name].push(...await storeAll(c, files.slice(k, k + 25)));
    }
    const group = `open a ${n}-instance CT 512 series as OHIF does, 6 in flight`;
    const frames = row(group, `${n} x frames/1 (multipart, transfer-syntax=*)`, 'ms', true);
    const thumbs = row(group, `${n} rendered thumbnails (viewport=128,128, a new window per open)`, 'ms', true);
    const frameAccept = { Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' };
    for (let i = 0; i < repeats; i++) {
      for (const [name, c] of order(both, i)) {
        const ps = paths[name];
        await add(frames, name, async () => 1000 * await concurrent(n, 6, (k) => timedGet(c, `${ps[k]}/frames/1`, frameAccept)));
      }
      for (const [name, c] of order(both, i)) {
        const ps = paths[name];
        await add(thumbs, name, async () => 1000 * await concurrent(n, 6, (k) => timedGet(c, `${ps[k]}/frames/1/rendered?viewport=128,128&window=${40 + i},400,linear`, png)));
      }
    }
    log(`viewer series: frames ${median(frames.ours).toFixed(0)} ms (Orthanc ${median(frames.orthanc).toFixed(0)}), thumbnails ${median(thumbs.ours).toFixed(0)} ms (${median(thumbs.orthanc).toFixed(0)})`);
  }

  // STOW-RS: 1, 4, 8 in flight, batches of 1 and 25.
  if (parts.stow) {
    phase('viewer stow');
    const perRun = 100;
    const pixels = ctPixels(37);
    for (const batch of [1, 25]) {
      for (const inFlight of [1, 4, 8]) {
        const r = row(`STOW-RS CT 512, batches of ${batch}`, `${inFlight} in flight (${perRun} instances a run)`, 'inst/s', false);
        for (let i = 0; i < repeats; i++) {
          for (const [name, c] of order(both, i)) {
            const study = uid(), series = uid();
            const bodies: Array<{ body: Buffer; contentType: string }> = [];
            for (let k = 0; k < perRun; k += batch) {
              const m = newMultipart();
              const fs1 = Array.from({ length: Math.min(batch, perRun - k) }, (_, j) => part10(CT_SPEC, { study, series, sop: uid(), patientID: 'BENCH-STOW2', instanceNumber: k + j + 1 }, pixels));
              bodies.push({ body: multipartBody(m, fs1), contentType: m.contentType });
            }
            execSync('sync'); // see run.ts: each server starts from a clean page cache
            c.agent.destroy(); // sockets idle through the sync may be closed by the server as they are reused
            await add(r, name, async () => perRun / await concurrent(bodies.length, inFlight, (k) => stow(c, bodies[k].body, bodies[k].contentType)));
          }
        }
        log(`viewer STOW batch ${batch} x${inFlight}: ${median(r.ours).toFixed(0)} inst/s (Orthanc ${median(r.orthanc).toFixed(0)})`);
      }
    }
  }
  return rows;
}

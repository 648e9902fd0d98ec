/**
 * Issue 16: every DCMTK reference of the SHARED corpus (DICOM_CORPUS, default ../shared/corpus from the repository
 * root, as CI lays it out) rendered through HTTP and compared pixel by pixel (a frame passes with >= 99.5% of
 * samples within +-1). Each file is stored by STOW-RS; files that share a SOP Instance UID (one image in several
 * transfer syntaxes) go to separate servers, since one server keeps only the first (duplicate rule).
 * Variants: default, ww (window=c,w,linear), sigmoid (window=c,w,sigmoid), ovl (overlays shown, the default),
 * noovl (overlays=false); voilut (the first VOI LUT Sequence item instead of the first window) has no query
 * parameter, so it is rendered through the library from the description the server recorded at ingest.
 * What cannot pass is listed in EXPECTED_REFUSALS with the status the server must answer and why.
 * Writes the per-reference table to test-output/shared-corpus-match.txt.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { startServer, TestServer, binaryParser, multipartBody } from './helpers/server';
import { compare, decodePng, referenceRows, Diff, ReferenceRow } from './helpers/png-compare';
import { parseDicom, inflatedDataset } from '../dicom/parse';
import { locateFrames } from '../dicom/frames';
import { describeImage, renderFrame } from '../render';
import { decodeFrame, initCodecs } from '../render/codecs';

const SHARED = process.env.DICOM_CORPUS || path.resolve(process.cwd(), '..', 'shared', 'corpus');
const present = fs.existsSync(path.join(SHARED, 'reference', 'commands.tsv')) && fs.existsSync(path.join(SHARED, 'uids.tsv'));

/**
 * References that cannot be served, with the answer the server must give instead.
 * - ct-8bit-rescale: its Study and Series Instance UIDs are "REM SAMPLES 1" (not a UID, PS3.5 9.1), which cannot be
 *   put in a WADO-RS URL; the store refuses the instance (CONFORMANCE.md, "UIDs").
 * - bad-huge-dimensions-65535: declares 65535 x 65535 16-bit pixels, but its Pixel Data holds 256 bytes; DCMTK renders
 *   a 4.3-gigapixel black image. The store refuses it (A900H, the pixel data cannot hold one frame: issue 14); a
 *   stored frame over MAX_RENDER_PIXELS would be 413 with the limit (test/limits.test.ts).
 */
const EXPECTED_REFUSALS: Record<string, { at: 'store' | 'render'; status: number; reason: RegExp; why: string }> = {
  'ct-8bit-rescale': { at: 'store', status: 409, reason: /not a valid UID/i, why: 'Study/Series Instance UID "REM SAMPLES 1" is not a UID' },
  'bad-huge-dimensions-65535': { at: 'store', status: 409, reason: /too few for 1 frame/, why: '65535x65535 frame in 256 bytes of Pixel Data' },
};

const rows: ReferenceRow[] = present ? referenceRows(SHARED) : [];
const servers: TestServer[] = [];
const stored = new Map<string, { srv: TestServer; url: string } | { status: number; body: any }>();
const results: Array<{ row: ReferenceRow; diff?: Diff; note?: string }> = [];

function uidsOf(): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of fs.readFileSync(path.join(SHARED, 'uids.tsv'), 'utf8').trim().split('\n').slice(1)) {
    const [file, , , instance] = l.split('\t');
    m.set(file, instance);
  }
  return m;
}

function query(row: ReferenceRow): string {
  switch (row.variant) {
    case 'ww': return `&window=${row.center},${row.width},linear`;
    case 'sigmoid': return `&window=${row.center},${row.width},sigmoid`;
    case 'noovl': return '&overlays=false';
    case 'ovl': return '&overlays=true';
    default: return '';
  }
}

/** voilut: the library, on the server's own parse of the file, with the windows dropped so the first VOI LUT applies. */
async function renderVoiLut(name: string, frame: number) {
  const buf = fs.readFileSync(path.join(SHARED, 'dicom', `${name}.dcm`));
  const p = parseDicom(buf);
  const desc = describeImage(p.dataset)!;
  const bytes = p.deflated ? inflatedDataset(buf, p.datasetOffset) : buf;
  const f = desc.frame;
  const locs = locateFrames(p, { rows: f.rows, columns: f.columns, samplesPerPixel: f.samplesPerPixel, bitsAllocated: f.bitsAllocated, numberOfFrames: desc.numberOfFrames, photometricInterpretation: f.photometricInterpretation },
    (o, l) => bytes.subarray(o, o + l));
  const loc = locs[frame - 1];
  await initCodecs();
  const decoded = await decodeFrame(p.transferSyntaxUID, { data: new Uint8Array(Buffer.concat(loc.ranges.map((r) => bytes.subarray(r.offset, r.offset + r.length)))) }, f);
  expect(desc.voi.luts.length).toBeGreaterThan(0);
  return renderFrame({ ...desc, voi: { ...desc.voi, windows: [] } }, frame, decoded, {});
}

if (!present) {
  test.skip(`shared corpus not found at ${SHARED} (set DICOM_CORPUS): every-reference check skipped`, () => undefined);
} else {
  beforeAll(async () => {
    const instanceOf = uidsOf();
    const twinIndex = new Map<string, number>();
    for (const name of [...new Set(rows.map((r) => r.name))].sort()) {
      const uid = instanceOf.get(name) ?? name;
      const k = twinIndex.get(uid) ?? 0;
      twinIndex.set(uid, k + 1);
      while (servers.length <= k) servers.push(await startServer());
      const srv = servers[k];
      const { body, contentType } = multipartBody([fs.readFileSync(path.join(SHARED, 'dicom', `${name}.dcm`))]);
      const res = await request(srv.app).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
      const url = res.body?.['00081199']?.Value?.[0]?.['00081190']?.Value?.[0];
      stored.set(name, (res.status === 200 || res.status === 202) && url ? { srv, url: url.replace(/^https?:\/\/[^/]+/, '') } : { status: res.status, body: res.body });
    }
  }, 900_000);

  afterAll(async () => {
    const lines = [`shared corpus ${SHARED}: ${results.filter((r) => r.diff && r.diff.within1 >= 99.5).length} of ${rows.length} references match, ${Object.keys(EXPECTED_REFUSALS).length} files refused as expected`,
      'file                                   frame variant   exact%  within1%  maxdiff'];
    for (const r of results) {
      const id = `${r.row.name.padEnd(38)} ${String(r.row.frame).padStart(5)} ${r.row.variant.padEnd(8)}`;
      lines.push(r.diff ? `${id} ${r.diff.exact.toFixed(2).padStart(7)} ${r.diff.within1.toFixed(2).padStart(9)} ${String(r.diff.maxDiff).padStart(8)}` : `${id}  ${r.note}`);
    }
    fs.mkdirSync(path.join(process.cwd(), 'test-output'), { recursive: true });
    fs.writeFileSync(path.join(process.cwd(), 'test-output', 'shared-corpus-match.txt'), lines.join('\n') + '\n');
    for (const s of servers) await s.stop();
  });

  test.each(rows.map((r) => [`${r.name} f${r.frame} ${r.variant}`, r] as const))('%s matches DCMTK through HTTP', async (_l, row) => {
    const refusal = EXPECTED_REFUSALS[row.name];
    const s = stored.get(row.name)!;
    if (refusal?.at === 'store') {
      results.push({ row, note: `refused at store (${refusal.why})` });
      expect('status' in s && s.status).toBe(refusal.status);
      expect(JSON.stringify(s)).toMatch(refusal.reason);
      return;
    }
    if ('status' in s) {
      results.push({ row, note: `store answered ${s.status}` });
      throw new Error(`${row.name}: STOW answered ${s.status}: ${JSON.stringify(s.body).slice(0, 400)}`);
    }
    if (row.variant === 'voilut') {
      const ours = await renderVoiLut(row.name, row.frame);
      const ref = decodePng(fs.readFileSync(path.join(SHARED, 'reference', `${row.name}.f${row.frame}.${row.variant}.png`)));
      const diff = compare(ours, ref);
      results.push({ row, diff });
      expect({ size: [ours.width, ours.height], within1: diff.within1 >= 99.5 }).toEqual({ size: [ref.width, ref.height], within1: true });
      return;
    }
    const res = await request(s.srv.app).get(`${s.url}/frames/${row.frame}/rendered?accept=image/png${query(row)}`).buffer(true).parse(binaryParser);
    if (refusal?.at === 'render') {
      results.push({ row, note: `refused with ${res.status} (${refusal.why})` });
      expect(res.status).toBe(refusal.status);
      expect(JSON.parse(res.body.toString()).error).toMatch(refusal.reason);
      return;
    }
    if (res.status !== 200) {
      results.push({ row, note: `rendered answered ${res.status} ${res.body.toString().slice(0, 200)}` });
      throw new Error(`${row.name} f${row.frame}: ${res.status} ${res.body.toString().slice(0, 300)}`);
    }
    expect(res.headers['content-type']).toBe('image/png');
    const ours = decodePng(res.body);
    const ref = decodePng(fs.readFileSync(path.join(SHARED, 'reference', `${row.name}.f${row.frame}.${row.variant}.png`)));
    const diff = compare(ours, ref);
    results.push({ row, diff });
    expect({ size: [ours.width, ours.height], within1: diff.within1 >= 99.5 }).toEqual({ size: [ref.width, ref.height], within1: true });
  }, 120_000);
}

/**
 * Issue 16: classes of files real equipment writes and DCMTK reads, one small fixture each (test/fixtures/issue16,
 * made by its make.sh from shared corpus files with DCMTK and pydicom; references by DCMTK 3.6.7 dcmj2pnm), stored
 * by STOW-RS and rendered through HTTP, compared pixel by pixel (>= 99.5% of samples within +-1; all are exact today):
 * - stray bytes after the JPEG end marker (FFD9 20 CC);
 * - encapsulated Pixel Data nested in an Icon Image Sequence item, beside the top-level JPEG frame that is rendered;
 * - palette LUT data (and 8-bit OW pixel data) in Explicit VR Big Endian;
 * - RGB JPEG baseline without JFIF or Adobe marker, component ids 0,1,2 and 'R','G','B': no YCbCr conversion;
 * - UIDs, window and rescale sent as UN in Explicit VR Little Endian, read with their dictionary VR;
 * - encapsulated Pixel Data under a native transfer syntax in the file meta;
 * - Pixel Padding Value left out of the automatic (min-max) window.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { binaryParser, serverWithFiles, startServer, storeFile } from './helpers/server';
import { compare, decodePng } from './helpers/png-compare';

const DIR = path.join(process.cwd(), 'test/fixtures/issue16');
const NAMES = ['jpeg-bytes-after-eoi', 'icon-sequence-encapsulated', 'palette-big-endian', 'rgb-jpeg-ids-012', 'rgb-jpeg-ids-RGB',
  'un-vr-explicit', 'encapsulated-native-syntax', 'pixel-padding-ct'];
const ctx = serverWithFiles(Object.fromEntries(NAMES.map((n) => [n, path.join(DIR, `${n}.dcm`)])));

async function rendered(url: string, query = '') {
  return request(ctx.srv.app).get(`${url}/frames/1/rendered?accept=image/png${query}`).buffer(true).parse(binaryParser);
}

test.each(NAMES)('%s renders as DCMTK does', async (name) => {
  const res = await rendered(ctx.urls.get(name)!);
  expect(res.status).toBe(200);
  const ours = decodePng(res.body);
  const ref = decodePng(fs.readFileSync(path.join(DIR, 'reference', `${name}.png`)));
  const diff = compare(ours, ref);
  expect({ size: [ours.width, ours.height], channels: ours.channels, within1: diff.within1 >= 99.5 })
    .toEqual({ size: [ref.width, ref.height], channels: ref.channels, within1: true });
});

test('the Icon Image Sequence keeps its encapsulated pixel data as a bulk value; the top-level frame is the one served', async () => {
  const url = ctx.urls.get('icon-sequence-encapsulated')!;
  const meta = await request(ctx.srv.app).get(`${url}/metadata`).set('Accept', 'application/dicom+json');
  expect(meta.status).toBe(200);
  const icon = meta.body[0]['00880200'];
  expect(icon.vr).toBe('SQ');
  expect(icon.Value[0]['7FE00010'].vr).toBe('OB');
  expect(icon.Value[0]['00280010'].Value).toEqual([512]);
  const frames = await request(ctx.srv.app).get(`${url}/frames/1`).set('Accept', 'multipart/related; type="application/octet-stream"; transfer-syntax=*')
    .buffer(true).parse(binaryParser);
  expect(frames.status).toBe(200);
  expect(frames.body.includes(Buffer.from([0xff, 0xd8, 0xff]))).toBe(true); // the JPEG frame, not the icon's items
});

test('attributes sent as UN are read with their dictionary VR: UIDs, window and rescale in the metadata', async () => {
  const meta = await request(ctx.srv.app).get(`${ctx.urls.get('un-vr-explicit')!}/metadata`).set('Accept', 'application/dicom+json');
  const ds = meta.body[0];
  expect(ds['0020000D']).toEqual({ vr: 'UI', Value: ['2.25.1660'] });
  expect(ds['00281050']).toEqual({ vr: 'DS', Value: [40] });
  expect(ds['00281052']).toEqual({ vr: 'DS', Value: [-1024] });
});

test('the RGB JPEG frames are not converted as YCbCr (the converted image would differ by far more than 1)', async () => {
  // the same frame with a JFIF-style reading (YCbCr -> RGB) is what we used to serve: guard against it coming back
  const a = decodePng((await rendered(ctx.urls.get('rgb-jpeg-ids-012')!)).body);
  const b = decodePng((await rendered(ctx.urls.get('rgb-jpeg-ids-RGB')!)).body);
  expect(compare(a, b).maxDiff).toBe(0);
  expect(a.channels).toBe(3);
});

test('a JPEG frame without its end marker is still refused (422), whatever follows it', async () => {
  const buf = Buffer.from(fs.readFileSync(path.join(DIR, 'jpeg-bytes-after-eoi.dcm')));
  const eoi = buf.lastIndexOf(Buffer.from([0xff, 0xd9, 0x20, 0xcc]));
  expect(eoi).toBeGreaterThan(0);
  buf.fill(0x20, eoi, eoi + 4); // EOI gone: a truncated stream followed by stray bytes
  const srv = await startServer();
  try {
    const url = await storeFile(srv, buf);
    const res = await request(srv.app).get(`${url}/frames/1/rendered?accept=image/png`);
    expect(res.status).toBe(422);
    expect(res.body.error).toMatch(/end marker/);
  } finally {
    await srv.stop();
  }
});

test('with Pixel Padding Value in the image, an explicit window still renders the padding pixels through it', async () => {
  // the padding is only left out of the automatic window's min-max; with window=... padding pixels are ordinary
  // values (-2000 stored, -3024 HU: black at 40/400)
  const res = await rendered(ctx.urls.get('pixel-padding-ct')!, '&window=40,400,linear');
  expect(res.status).toBe(200);
  const img = decodePng(res.body);
  expect(img.data.subarray(0, 16 * 128).every((v) => v === 0)).toBe(true);
});

/**
 * Rendered resources through HTTP: PS3.18 query parameters (window, viewport, quality, accept), media type
 * negotiation, multi-frame forms, thumbnails, caching headers and the 4xx answers for bad values.
 */
import * as fs from 'fs';
import request from 'supertest';
import { serverWithFiles, corpusFile, binaryParser, parseMultipartResponse } from './helpers/server';
import { decodePng } from './helpers/png-compare';

const stored = serverWithFiles(Object.fromEntries(['CT_small', 'emri_small', 'SC_rgb', 'MR-SIEMENS-DICOM-WithOverlays', 'rtplan'].map((n) => [n, corpusFile(n)])));
const { urls } = stored;

const get = (path: string, accept?: string) => {
  const r = request(stored.srv.app).get(path).buffer(true).parse(binaryParser);
  return accept ? r.set('Accept', accept) : r;
};

test('default media type is image/jpeg (PS3.18 8.7.4); png and gif on request; others 406', async () => {
  const ct = urls.get('CT_small')!;
  const jpeg = await get(`${ct}/frames/1/rendered`);
  expect(jpeg.status).toBe(200);
  expect(jpeg.headers['content-type']).toBe('image/jpeg');
  expect(jpeg.body.readUInt16BE(0)).toBe(0xffd8);
  const png = await get(`${ct}/frames/1/rendered`, 'image/png');
  expect(png.headers['content-type']).toBe('image/png');
  const q = await get(`${ct}/frames/1/rendered?accept=image/png`, 'image/jpeg');
  expect(q.headers['content-type']).toBe('image/png'); // the query parameter wins over the header
  expect((await get(`${ct}/frames/1/rendered`, 'image/gif')).headers['content-type']).toBe('image/gif');
  expect((await get(`${ct}/frames/1/rendered`, 'application/pdf')).status).toBe(406);
});

test('window overrides the VOI; quality changes JPEG size; grey PNG has one channel', async () => {
  const ct = urls.get('CT_small')!;
  const a = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&window=40,400`)).body);
  const b = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&window=40,80,linear`)).body);
  const c = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&window=40,400,sigmoid`)).body);
  expect(a.channels).toBe(1);
  expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(false);
  expect(Buffer.from(a.data).equals(Buffer.from(c.data))).toBe(false);
  const le = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&window=40,400,linear-exact`)).body);
  expect(le.width).toBe(128);
  const q10 = await get(`${ct}/frames/1/rendered?quality=10`);
  const q95 = await get(`${ct}/frames/1/rendered?quality=95`);
  expect(q10.body.length).toBeLessThan(q95.body.length);
});

test('viewport scales to fit keeping the aspect ratio, crops, and flips', async () => {
  const ct = urls.get('CT_small')!; // 128 x 128
  const fit = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&viewport=64,32`)).body);
  expect([fit.width, fit.height]).toEqual([32, 32]);
  const full = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png`)).body);
  const crop = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&viewport=32,32,0,0,32,32`)).body);
  expect([crop.width, crop.height]).toEqual([32, 32]);
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) expect(crop.data[y * 32 + x]).toBe(full.data[y * 128 + x]);
  const flip = decodePng((await get(`${ct}/frames/1/rendered?accept=image/png&viewport=128,128,0,0,-128,128`)).body);
  expect([flip.width, flip.height]).toEqual([128, 128]);
  let same = 0;
  for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) if (flip.data[y * 128 + x] === full.data[y * 128 + 127 - x]) same++;
  expect(same / (128 * 128)).toBeGreaterThan(0.99);
});

test('overlays are burned in by default, hidden or recoloured on request', async () => {
  const mr = urls.get('MR-SIEMENS-DICOM-WithOverlays')!;
  const on = decodePng((await get(`${mr}/frames/1/rendered?accept=image/png`)).body);
  const off = decodePng((await get(`${mr}/frames/1/rendered?accept=image/png&overlays=false`)).body);
  const red = decodePng((await get(`${mr}/frames/1/rendered?accept=image/png&overlaycolor=ff0000`)).body);
  expect(Buffer.from(on.data).equals(Buffer.from(off.data))).toBe(false);
  expect(red.channels).toBe(3);
});

test('multi-frame: frame lists and instance rendered give one part per frame; colour stays RGB', async () => {
  const mf = urls.get('emri_small')!;
  const three = await get(`${mf}/frames/1,2,3/rendered`, 'multipart/related; type="image/png"');
  expect(three.status).toBe(200);
  const parts = parseMultipartResponse(three.body, three.headers['content-type']);
  expect(parts).toHaveLength(3);
  expect(parts.every((p) => p.headers['content-type'] === 'image/png')).toBe(true);
  const all = await get(`${mf}/rendered`, 'multipart/related; type="image/png"');
  expect(parseMultipartResponse(all.body, all.headers['content-type'])).toHaveLength(10);
  const firstOnly = await get(`${mf}/rendered`, 'image/png');
  expect(firstOnly.headers['content-type']).toBe('image/png');
  const rgb = decodePng((await get(`${urls.get('SC_rgb')}/rendered`, 'image/png')).body);
  expect(rgb.channels).toBe(3);
});

test('thumbnails fit 128 pixels; series and study rendered/thumbnail work', async () => {
  const ct = urls.get('CT_small')!;
  const series = ct.replace(/\/instances\/.*/, '');
  const study = ct.replace(/\/series\/.*/, '');
  for (const u of [`${ct}/thumbnail`, `${series}/thumbnail`, `${study}/thumbnail`]) {
    const t = await get(u, 'image/png');
    expect(t.status).toBe(200);
    const img = decodePng(t.body);
    expect(Math.max(img.width, img.height)).toBeLessThanOrEqual(128);
  }
  const big = decodePng((await get(`${ct}/thumbnail?viewport=64,64`, 'image/png')).body);
  expect(big.width).toBe(64);
  const sr = await get(`${series}/rendered`, 'multipart/related; type="image/jpeg"');
  expect(parseMultipartResponse(sr.body, sr.headers['content-type'])).toHaveLength(1);
});

test('strong ETag, long-lived Cache-Control, 304 on If-None-Match; parameters change the ETag', async () => {
  const ct = urls.get('CT_small')!;
  const a = await get(`${ct}/frames/1/rendered?accept=image/png`);
  expect(a.headers.etag).toMatch(/^"[^"]+"$/);
  expect(a.headers['cache-control']).toMatch(/max-age=31536000/);
  const again = await request(stored.srv.app).get(`${ct}/frames/1/rendered?accept=image/png`).set('If-None-Match', a.headers.etag);
  expect(again.status).toBe(304);
  const other = await get(`${ct}/frames/1/rendered?accept=image/png&window=1,2`);
  expect(other.headers.etag).not.toBe(a.headers.etag);
  const repeat = await get(`${ct}/frames/1/rendered?accept=image/png`);
  expect(repeat.body.equals(a.body)).toBe(true);
});

test('parameters this server does not support are ignored (PS3.18 8.3), named in a Warning header', async () => {
  const ct = urls.get('CT_small')!;
  const plain = await request(stored.srv.app).get(`${ct}/frames/1/rendered?accept=image/png`).buffer(true).parse(binaryParser);
  const r = await request(stored.srv.app).get(`${ct}/frames/1/rendered?accept=image/png&bogus=1&annotations=x`).buffer(true).parse(binaryParser);
  expect(r.status).toBe(200);
  expect(r.headers.warning).toMatch(/^299 .*bogus, annotations/);
  expect(r.body.equals(plain.body)).toBe(true);
});

test('bad parameters are 400 with a reason; non-images 406; missing frames 404', async () => {
  const ct = urls.get('CT_small')!;
  for (const q of ['window=40', 'window=a,b', 'window=40,0', 'window=40,400,cubic', 'viewport=0,10', 'viewport=10', 'viewport=99999,10',
    'viewport=10,10,1,2', 'quality=0', 'quality=101', 'quality=x', 'annotation=everything', 'overlays=maybe', 'overlaycolor=red']) {
    const r = await request(stored.srv.app).get(`${ct}/frames/1/rendered?${q}`);
    expect([q, r.status]).toEqual([q, 400]);
    expect(typeof r.body.error).toBe('string');
  }
  expect((await request(stored.srv.app).get(`${ct}/frames/2/rendered`)).status).toBe(404);
  expect((await request(stored.srv.app).get(`${ct}/frames/0/rendered`)).status).toBe(400);
  expect((await request(stored.srv.app).get(`${urls.get('rtplan')}/rendered`)).status).toBe(406);
});

/**
 * Issue 21 through HTTP, beyond the DCMTK comparison of rendered-output.test.ts: invert=true on colour images
 * (each channel), overlays keeping their colour, thumbnails, signed links and ETags; bitdepth=16 with a viewport,
 * annotation, negotiation, and its refusals (JPEG, colour) with 400 and a reason.
 */
import request from 'supertest';
import { PNG } from 'pngjs';
import { startServer, storeFile, TestServer, corpusFile, binaryParser, parseMultipartResponse } from './helpers/server';
import { decodePng } from './helpers/png-compare';
import { signRenderedPath } from '../server/signed-links';
import * as fs from 'fs';

const LINK_KEY = 'signed-link-key-0123456789abcdef-0123456789';
let srv: TestServer;
const urls = new Map<string, string>();

beforeAll(async () => {
  srv = await startServer({}, ['--signed-link-key', LINK_KEY]);
  for (const n of ['CT_small', 'SC_rgb', 'OT-PAL-8-face', 'MR-SIEMENS-DICOM-WithOverlays', 'emri_small', 'MR_small']) {
    urls.set(n, await storeFile(srv, fs.readFileSync(corpusFile(n)), [200, 202]));
  }
}, 60_000);
afterAll(async () => { await srv.stop(); });

const get = (p: string, accept?: string) => {
  const r = request(srv.app).get(p).buffer(true).parse(binaryParser);
  return accept ? r.set('Accept', accept) : r;
};
const png16 = (buf: Buffer) => {
  const p = PNG.sync.read(buf, { skipRescale: true } as any) as any;
  const grey = new Uint16Array(p.width * p.height);
  for (let i = 0; i < grey.length; i++) grey[i] = p.data[4 * i];
  return { width: p.width as number, height: p.height as number, depth: p.depth as number, grey };
};

test('invert=true inverts colour images per channel (RGB and palette), and only when asked', async () => {
  for (const name of ['SC_rgb', 'OT-PAL-8-face']) {
    const u = urls.get(name)!;
    const plain = decodePng((await get(`${u}/frames/1/rendered?accept=image/png`)).body);
    const inv = decodePng((await get(`${u}/frames/1/rendered?accept=image/png&invert=true`)).body);
    const off = decodePng((await get(`${u}/frames/1/rendered?accept=image/png&invert=false`)).body);
    expect(plain.channels).toBe(3);
    expect(inv.data.every((v, i) => v === 255 - plain.data[i])).toBe(true);
    expect(Buffer.from(off.data).equals(Buffer.from(plain.data))).toBe(true);
  }
});

test('invert=true: overlays keep their colour; the image under them is inverted', async () => {
  const u = urls.get('MR-SIEMENS-DICOM-WithOverlays')!;
  const q = 'accept=image/png&overlaycolor=ff0000';
  const plain = decodePng((await get(`${u}/frames/1/rendered?${q}`)).body);
  const inv = decodePng((await get(`${u}/frames/1/rendered?${q}&invert=true`)).body);
  const bare = decodePng((await get(`${u}/frames/1/rendered?accept=image/png&overlays=false`)).body);
  const bareInv = decodePng((await get(`${u}/frames/1/rendered?accept=image/png&overlays=false&invert=true`)).body);
  let red = 0, redKept = 0, other = 0, otherInverted = 0;
  for (let i = 0; i < bare.width * bare.height; i++) {
    const isRed = plain.data[3 * i] === 255 && plain.data[3 * i + 1] === 0 && plain.data[3 * i + 2] === 0;
    if (isRed) { red++; if (inv.data[3 * i] === 255 && inv.data[3 * i + 1] === 0 && inv.data[3 * i + 2] === 0) redKept++; }
    else { other++; if (inv.data[3 * i] === bareInv.data[i]) otherInverted++; }
  }
  expect(red).toBeGreaterThan(100);
  expect(redKept).toBe(red);
  expect(otherInverted).toBe(other);
  // the inversion is folded into the window's output range (as DCMTK's +P): within one level of 255 - v
  expect(bareInv.data.every((v, i) => Math.abs(v - (255 - bare.data[i])) <= 1)).toBe(true);
});

test('invert=true with thumbnails, annotation, multipart and JPEG; the ETag reflects it', async () => {
  const u = urls.get('CT_small')!;
  const a = await get(`${u}/thumbnail?accept=image/png`);
  const b = await get(`${u}/thumbnail?accept=image/png&invert=true`);
  expect(b.status).toBe(200);
  expect(b.headers.etag).not.toBe(a.headers.etag);
  const ta = decodePng(a.body), tb = decodePng(b.body);
  expect(tb.width).toBe(ta.width);
  // resampling after inversion: each pixel within rounding of the inverted thumbnail
  expect(tb.data.every((v, i) => Math.abs(v - (255 - ta.data[i])) <= 1)).toBe(true);
  const f = await get(`${u}/frames/1/rendered?accept=image/png&invert=true`);
  expect(f.headers.etag).not.toBe((await get(`${u}/frames/1/rendered?accept=image/png`)).headers.etag);
  expect((await get(`${u}/frames/1/rendered?accept=image/png&invert=true`).set('If-None-Match', f.headers.etag)).status).toBe(304);
  const ann = decodePng((await get(`${u}/frames/1/rendered?accept=image/png&invert=true&annotation=patient`)).body);
  const inv = decodePng(f.body);
  // annotation text is white over a dark outline on the inverted image: some pixels changed, white text present
  let changed = 0, white = 0;
  for (let i = 0; i < inv.data.length; i++) { if (ann.data[i] !== inv.data[i]) { changed++; if (ann.data[i] === 255) white++; } }
  expect(changed).toBeGreaterThan(50);
  expect(white).toBeGreaterThan(0);
  const jpeg = await get(`${u}/frames/1/rendered?invert=true`);
  expect(jpeg.headers['content-type']).toBe('image/jpeg');
  const mf = urls.get('emri_small')!;
  const multi = await get(`${mf}/frames/1,2/rendered?invert=true`, 'multipart/related; type="image/png"');
  const parts = parseMultipartResponse(multi.body, multi.headers['content-type']);
  expect(parts.length).toBe(2);
  const single2 = await get(`${mf}/frames/2/rendered?invert=true&accept=image/png`);
  expect(parts[1].body.equals(single2.body)).toBe(true);
  expect((await get(`${u}/frames/1/rendered?invert=yes`)).status).toBe(400);
});

test('invert=true through a signed link; the signature covers it', async () => {
  const u = urls.get('CT_small')!;
  const exp = Math.floor(Date.now() / 1000) + 600;
  const link = signRenderedPath(Buffer.from(LINK_KEY), `${u}/frames/1/rendered?invert=true&accept=image/png`, exp);
  const r = await get(link);
  expect(r.status).toBe(200);
  const direct = await get(`${u}/frames/1/rendered?invert=true&accept=image/png`);
  expect(r.body.equals(direct.body)).toBe(true);
  expect((await get(link.replace('invert=true&', ''))).status).toBe(403);
});

test('bitdepth=16: a 16-bit grey PNG, with viewport and annotation; 8-bit equals its top byte under a linear window', async () => {
  const u = urls.get('MR_small')!;
  const r = await get(`${u}/frames/1/rendered?bitdepth=16&window=600,800`);
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toBe('image/png'); // the only type that carries it, though JPEG is the default
  const img = png16(r.body);
  expect(img.depth).toBe(16);
  const eight = decodePng((await get(`${u}/frames/1/rendered?accept=image/png&window=600,800`)).body);
  // more levels than the 8-bit image, and no 8-bit image scaled up (then every value would be a multiple of 257)
  expect(new Set(img.grey).size).toBeGreaterThan(new Set(eight.data).size);
  expect(img.grey.some((v) => v % 257 !== 0)).toBe(true);
  // with a linear window, the 16-bit value over 257 stays within one level of the 8-bit one
  expect(img.grey.every((v, i) => Math.abs(Math.floor(v / 257) - eight.data[i]) <= 1)).toBe(true);
  expect(r.headers.etag).not.toBe((await get(`${u}/frames/1/rendered?accept=image/png&window=600,800`)).headers.etag);
  const vp = png16((await get(`${u}/frames/1/rendered?accept=image/png&bitdepth=16&viewport=32,32`)).body);
  expect([vp.width, vp.height, vp.depth]).toEqual([32, 32, 16]);
  const thumb = png16((await get(`${u}/thumbnail?accept=image/png&bitdepth=16`)).body);
  expect(thumb.depth).toBe(16);
  const ann = await get(`${u}/frames/1/rendered?accept=image/png&bitdepth=16&annotation=technique`);
  expect(ann.status).toBe(200);
  expect(png16(ann.body).grey.some((v) => v === 65535)).toBe(true);
  const eightExplicit = await get(`${u}/frames/1/rendered?accept=image/png&bitdepth=8&window=600,800`);
  expect(decodePng(eightExplicit.body).data).toEqual(eight.data);
});

test('bitdepth=16 is refused with 400 and a reason for JPEG, colour images and bad values', async () => {
  const ct = urls.get('CT_small')!;
  for (const [p, accept, why] of [
    [`${ct}/frames/1/rendered?bitdepth=16&accept=image/jpeg`, undefined, /image\/png only/],
    [`${ct}/frames/1/rendered?bitdepth=16`, 'image/jpeg', /image\/png only/],
    [`${urls.get('SC_rgb')!}/frames/1/rendered?bitdepth=16&accept=image/png`, undefined, /grey/],
    [`${urls.get('OT-PAL-8-face')!}/rendered?bitdepth=16&accept=image/png`, undefined, /grey/],
    [`${ct}/frames/1/rendered?bitdepth=12&accept=image/png`, undefined, /8 or 16/],
    [`${urls.get('MR-SIEMENS-DICOM-WithOverlays')!}/frames/1/rendered?bitdepth=16&accept=image/png&overlaycolor=ff0000`, undefined, /grey/],
  ] as Array<[string, string | undefined, RegExp]>) {
    const r = await get(p, accept);
    expect({ p, status: r.status }).toEqual({ p, status: 400 });
    expect(JSON.parse(r.body.toString()).error).toMatch(why);
  }
});

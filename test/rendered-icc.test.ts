/**
 * iccprofile (PS3.18 8.3.5.1.2) through HTTP: the profile in PNG (iCCP) and JPEG (APP2 ICC_PROFILE) output of
 * colour images, pixels converted to the requested space, the instance's own ICC Profile (0028,2000) for `yes`,
 * grey images left alone, and refusals. Our generated profiles and conversions are checked against Little CMS
 * (`transicc`, Debian liblcms2-utils): its built-in sRGB, and its transforms through our profile files.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { execFileSync } from 'child_process';
import request from 'supertest';
import { startServer, storeFile, TestServer, corpusFile, binaryParser } from './helpers/server';
import { decodePng } from './helpers/png-compare';
import { iccProfile, type IccSpace } from '../render/icc';

let srv: TestServer;
const urls = new Map<string, string>();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'icc-test-'));
const profileFile = (space: IccSpace) => { const f = path.join(tmp, `${space}.icc`); fs.writeFileSync(f, iccProfile(space)); return f; };

/** A copy of a corpus file with its ICC Profile set from a file (dcmodify), under a new SOP Instance UID. */
function withProfile(name: string, profile: Buffer): Buffer {
  const icc = path.join(tmp, `p-${Math.random().toString(36).slice(2)}.icc`);
  fs.writeFileSync(icc, profile);
  const file = path.join(tmp, `${name}-${Math.random().toString(36).slice(2)}.dcm`);
  fs.copyFileSync(corpusFile(name), file);
  execFileSync('dcmodify', ['-nb', '-gin', '-if', `(0028,2000)=${icc}`, file], { stdio: 'ignore' });
  return fs.readFileSync(file);
}

/** Little CMS: RGB triples through input and output profiles (relative colorimetric), rounded. */
function transicc(input: string, output: string, rgb: number[][]): number[][] {
  const out = execFileSync('transicc', [`-i${input}`, `-o${output}`, '-t1', '-n'], { input: rgb.map((c) => c.join(' ')).join('\n') + '\n', stdio: ['pipe', 'pipe', 'ignore'] }).toString();
  return out.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number)).filter((v) => v.length === 3 && v.every(Number.isFinite))
    .map((v) => v.map((x) => Math.min(255, Math.max(0, Math.round(x)))));
}

beforeAll(async () => {
  srv = await startServer();
  for (const n of ['SC_rgb', 'US1_UNCR', 'CT_small', 'OT-PAL-8-face']) urls.set(n, await storeFile(srv, fs.readFileSync(corpusFile(n)), [200, 202]));
  urls.set('own-adobe', await storeFile(srv, withProfile('US1_UNCR', iccProfile('adobergb')), [200, 202]));
  // a profile that is not matrix/TRC: a header and a single A2B0 tag of an unknown type
  const lut = Buffer.from(iccProfile('srgb'));
  lut.writeUInt32BE(1, 128); lut.write('A2B0', 132, 'latin1');
  urls.set('own-lut', await storeFile(srv, withProfile('SC_rgb', lut), [200, 202]));
}, 60_000);
afterAll(async () => { await srv.stop(); fs.rmSync(tmp, { recursive: true, force: true }); });

const get = (p: string, accept?: string) => {
  const r = request(srv.app).get(p).buffer(true).parse(binaryParser);
  return accept ? r.set('Accept', accept) : r;
};

/** The profile of a PNG's iCCP chunk, or undefined. */
function pngProfile(png: Buffer): Buffer | undefined {
  for (let at = 8; at < png.length;) {
    const len = png.readUInt32BE(at), type = png.toString('latin1', at + 4, at + 8);
    if (type === 'iCCP') { const d = png.subarray(at + 8, at + 8 + len); return zlib.inflateSync(d.subarray(d.indexOf(0) + 2)); }
    if (type === 'IDAT') return undefined;
    at += 12 + len;
  }
  return undefined;
}
/** The profile of a JPEG's APP2 ICC_PROFILE segments, joined in order, or undefined. */
function jpegProfile(jpg: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  for (let at = 2; at + 4 < jpg.length && jpg[at] === 0xff && jpg[at + 1] !== 0xda;) {
    const len = jpg.readUInt16BE(at + 2);
    if (jpg[at + 1] === 0xe2 && jpg.toString('latin1', at + 4, at + 16) === 'ICC_PROFILE\0') parts[jpg[at + 16] - 1] = jpg.subarray(at + 18, at + 2 + len);
    at += 2 + len;
  }
  return parts.length ? Buffer.concat(parts) : undefined;
}

test('our generated sRGB profile is sRGB to Little CMS; our Adobe RGB and ROMM profiles load and invert', () => {
  const samples = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [128, 128, 128], [200, 100, 50], [13, 240, 77]];
  const same = transicc(profileFile('srgb'), '*sRGB', samples);
  same.forEach((c, i) => c.forEach((v, k) => expect(Math.abs(v - samples[i][k])).toBeLessThanOrEqual(1)));
  for (const space of ['adobergb', 'rommrgb', 'displayp3'] as IccSpace[]) {
    const mid = [[255, 255, 255], [128, 128, 128], [200, 100, 50], [180, 200, 90], [60, 90, 200]];
    const there = transicc('*sRGB', profileFile(space), mid);
    const back = transicc(profileFile(space), '*sRGB', there);
    // there and back through 8-bit values of the wider space: within 3 levels
    back.forEach((c, i) => c.forEach((v, k) => expect({ space, i, d: Math.abs(v - mid[i][k]) <= 3 }).toEqual({ space, i, d: true })));
    expect(there[0]).toEqual([255, 255, 255]); // white stays white (relative colorimetric)
  }
});

test('iccprofile=srgb / yes: the sRGB profile in PNG (iCCP) and JPEG (APP2); sRGB pixels unchanged', async () => {
  const u = `${urls.get('SC_rgb')!}/frames/1/rendered`;
  const plain = await get(`${u}?accept=image/png`);
  expect(pngProfile(plain.body)).toBeUndefined();
  for (const mode of ['srgb', 'yes']) {
    const png = await get(`${u}?accept=image/png&iccprofile=${mode}`);
    expect(png.status).toBe(200);
    expect(pngProfile(png.body)!.equals(iccProfile('srgb'))).toBe(true);
    expect(Buffer.from(decodePng(png.body).data).equals(Buffer.from(decodePng(plain.body).data))).toBe(true);
    expect(png.headers.etag).not.toBe(plain.headers.etag);
    const jpg = await get(`${u}?accept=image/jpeg&iccprofile=${mode}`);
    expect(jpg.status).toBe(200);
    expect(jpegProfile(jpg.body)!.equals(iccProfile('srgb'))).toBe(true);
    expect(jpegProfile((await get(`${u}?accept=image/jpeg`)).body)).toBeUndefined();
  }
  expect(pngProfile((await get(`${u}?accept=image/png&iccprofile=no`)).body)).toBeUndefined();
});

test('iccprofile=adobergb / rommrgb / displayp3: pixels converted as Little CMS converts them, and that profile embedded', async () => {
  for (const name of ['US1_UNCR', 'OT-PAL-8-face']) {
    const u = `${urls.get(name)!}/frames/1/rendered?accept=image/png`;
    const src = decodePng((await get(u)).body);
    for (const space of ['adobergb', 'rommrgb', 'displayp3'] as IccSpace[]) {
      const res = await get(`${u}&iccprofile=${space}`);
      expect(pngProfile(res.body)!.equals(iccProfile(space))).toBe(true);
      const ours = decodePng(res.body);
      // every distinct colour (at most 4000 of them) through Little CMS with our profile as output
      const seen = new Map<number, number>();
      for (let i = 0; i < src.data.length && seen.size < 4000; i += 3) seen.set((src.data[i] << 16) | (src.data[i + 1] << 8) | src.data[i + 2], i);
      const colours = [...seen.keys()].map((k) => [k >> 16, (k >> 8) & 255, k & 255]);
      const lcms = transicc('*sRGB', profileFile(space), colours);
      let worst = 0;
      [...seen.values()].forEach((i, j) => { for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(ours.data[i + k] - lcms[j][k])); });
      expect({ name, space, worst }).toEqual({ name, space, worst: Math.min(worst, 1) });
      expect(Buffer.from(ours.data).equals(Buffer.from(src.data))).toBe(false);
    }
  }
});

test("the instance's own profile: embedded for yes, converted from for a named space; a non-matrix profile is 406", async () => {
  const u = `${urls.get('own-adobe')!}/frames/1/rendered?accept=image/png`;
  const plain = decodePng((await get(u)).body);
  const yes = await get(`${u}&iccprofile=yes`);
  expect(pngProfile(yes.body)!.equals(iccProfile('adobergb'))).toBe(true);
  expect(Buffer.from(decodePng(yes.body).data).equals(Buffer.from(plain.data))).toBe(true);
  const srgb = await get(`${u}&iccprofile=srgb`);
  expect(pngProfile(srgb.body)!.equals(iccProfile('srgb'))).toBe(true);
  const ours = decodePng(srgb.body);
  const idx = [0, 3 * 1000, 3 * 5000, 3 * 20000, 3 * 40000].filter((i) => i < plain.data.length);
  const lcms = transicc(profileFile('adobergb'), '*sRGB', idx.map((i) => [plain.data[i], plain.data[i + 1], plain.data[i + 2]]));
  idx.forEach((i, j) => { for (let k = 0; k < 3; k++) expect(Math.abs(ours.data[i + k] - Math.min(255, Math.max(0, lcms[j][k])))).toBeLessThanOrEqual(1); });
  const lut = `${urls.get('own-lut')!}/frames/1/rendered?accept=image/png`;
  expect(pngProfile((await get(`${lut}&iccprofile=yes`)).body)!.readUInt32BE(128)).toBe(1); // its own profile, as stored
  const refused = await get(`${lut}&iccprofile=srgb`);
  expect(refused.status).toBe(406);
  expect(JSON.parse(refused.body.toString()).error).toMatch(/matrix\/TRC/);
});

test('grey images carry no profile and are not changed; GIF with a colour profile is 400; bad values 400', async () => {
  const ct = `${urls.get('CT_small')!}/frames/1/rendered?accept=image/png`;
  const plain = await get(ct);
  const asked = await get(`${ct}&iccprofile=srgb`);
  expect(asked.status).toBe(200);
  expect(pngProfile(asked.body)).toBeUndefined();
  expect(Buffer.from(decodePng(asked.body).data).equals(Buffer.from(decodePng(plain.body).data))).toBe(true);
  const gif = await get(`${urls.get('SC_rgb')!}/frames/1/rendered?iccprofile=srgb`, 'image/gif');
  expect(gif.status).toBe(400);
  expect((await get(`${ct}&iccprofile=cmyk`)).status).toBe(400);
});

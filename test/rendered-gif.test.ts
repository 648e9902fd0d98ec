/**
 * image/gif (PS3.18 Table 8.7.4-1): single-frame GIFs decoded (omggif) and compared with our PNG of the same
 * request: grey exact, colour exact up to 256 colours, else within half a step of the fixed 6x7x6 palette; animated
 * GIFs of multi-frame instances with their frame timing (Frame Time, Frame Time Vector, Cine Rate), and the bounds.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import request from 'supertest';
import { GifReader } from 'omggif';
import { startServer, storeFile, TestServer, corpusFile, binaryParser, parseMultipartResponse } from './helpers/server';
import { decodePng } from './helpers/png-compare';
import { encodeGif } from '../render/gif';
import { frameDelaysMs } from '../server/rendered';

let srv: TestServer;
const urls = new Map<string, string>();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gif-test-'));

/** A copy of a corpus file with attributes set by DCMTK's dcmodify (and a new SOP Instance UID). */
function modified(name: string, sets: string[]): Buffer {
  const file = path.join(tmp, `${name}-${sets.length}-${Math.random().toString(36).slice(2)}.dcm`);
  fs.copyFileSync(corpusFile(name), file);
  execFileSync('dcmodify', ['-nb', '-gin', ...sets.flatMap((s) => ['-i', s]), file], { stdio: 'ignore' });
  return fs.readFileSync(file);
}

beforeAll(async () => {
  srv = await startServer();
  for (const n of ['CT_small', 'SC_rgb', 'OT-PAL-8-face', 'US1_UNCR', 'emri_small', 'MR-SIEMENS-DICOM-WithOverlays']) {
    urls.set(n, await storeFile(srv, fs.readFileSync(corpusFile(n)), [200, 202]));
  }
  urls.set('ft', await storeFile(srv, modified('emri_small', ['(0018,1063)=50']), [200, 202]));
  urls.set('ftv', await storeFile(srv, modified('emri_small', ['(0018,1065)=0\\40\\40\\80\\80\\120\\120\\40\\40\\40']), [200, 202]));
  urls.set('cine', await storeFile(srv, modified('emri_small', ['(0018,0040)=25']), [200, 202]));
}, 60_000);
afterAll(async () => { await srv.stop(); fs.rmSync(tmp, { recursive: true, force: true }); });

const get = (p: string, accept?: string) => {
  const r = request(srv.app).get(p).buffer(true).parse(binaryParser);
  return accept ? r.set('Accept', accept) : r;
};

/** Every frame of a GIF as RGB, and its delays (hundredths of a second). */
function decodeGif(buf: Buffer): { width: number; height: number; frames: Uint8Array[]; delays: number[]; loops: number | null } {
  const g = new GifReader(new Uint8Array(buf));
  const frames: Uint8Array[] = [], delays: number[] = [];
  for (let i = 0; i < g.numFrames(); i++) {
    const rgba = new Uint8Array(g.width * g.height * 4);
    g.decodeAndBlitFrameRGBA(i, rgba);
    const rgb = new Uint8Array(g.width * g.height * 3);
    for (let p = 0; p < g.width * g.height; p++) for (let c = 0; c < 3; c++) rgb[3 * p + c] = rgba[4 * p + c];
    frames.push(rgb);
    delays.push(g.frameInfo(i).delay);
  }
  return { width: g.width, height: g.height, frames, delays, loops: g.loopCount() };
}
const asRgb = (png: ReturnType<typeof decodePng>) => {
  if (png.channels === 3) return png.data;
  const rgb = new Uint8Array(png.data.length * 3);
  for (let i = 0; i < png.data.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = png.data[i];
  return rgb;
};
const maxDiff = (a: Uint8Array, b: Uint8Array) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };

test('single-frame image/gif: grey and colour of up to 256 colours identical to our PNG', async () => {
  for (const [name, q] of [['CT_small', 'window=40,400'], ['CT_small', 'invert=true&annotation=patient'], ['SC_rgb', ''], ['OT-PAL-8-face', ''],
    ['MR-SIEMENS-DICOM-WithOverlays', 'overlaycolor=808080'], ['emri_small', 'viewport=32,32']]) {
    const u = `${urls.get(name)!}/frames/1/rendered?${q}`;
    const gif = await get(u, 'image/gif');
    expect({ name, status: gif.status, type: gif.headers['content-type'] }).toEqual({ name, status: 200, type: 'image/gif' });
    expect(gif.body.subarray(0, 6).toString('latin1')).toBe('GIF89a');
    const png = decodePng((await get(u, 'image/png')).body);
    const g = decodeGif(gif.body);
    expect([g.width, g.height, g.frames.length]).toEqual([png.width, png.height, 1]);
    expect({ name, q, max: maxDiff(g.frames[0], asRgb(png)) }).toEqual({ name, q, max: 0 });
    expect(gif.headers.etag).not.toBe((await get(u, 'image/png')).headers.etag);
  }
});

test.each([['US1_UNCR', ''], ['MR-SIEMENS-DICOM-WithOverlays', 'overlaycolor=ff0000']])('colour of more than 256 colours (%s %s): the 6x7x6 palette, within half a level step per channel', async (name, q) => {
  const u = `${urls.get(name)!}/frames/1/rendered?${q}`;
  const png = decodePng((await get(u, 'image/png')).body);
  expect(png.channels).toBe(3);
  const colours = new Set<number>();
  for (let i = 0; i < png.data.length; i += 3) colours.add((png.data[i] << 16) | (png.data[i + 1] << 8) | png.data[i + 2]);
  expect(colours.size).toBeGreaterThan(256);
  const g = decodeGif((await get(u, 'image/gif')).body);
  let r = 0, gr = 0, b = 0;
  for (let i = 0; i < png.data.length; i += 3) {
    r = Math.max(r, Math.abs(g.frames[0][i] - png.data[i]));
    gr = Math.max(gr, Math.abs(g.frames[0][i + 1] - png.data[i + 1]));
    b = Math.max(b, Math.abs(g.frames[0][i + 2] - png.data[i + 2]));
  }
  expect(r).toBeLessThanOrEqual(26); expect(b).toBeLessThanOrEqual(26); expect(gr).toBeLessThanOrEqual(22);
});

test('the LZW encoder round-trips noise, runs, a full code table and odd sizes', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 255;
  for (const [w, h, kind] of [[1, 1, 'noise'], [3, 5, 'noise'], [512, 512, 'noise'], [300, 200, 'runs'], [1024, 64, 'ramp'], [77, 91, 'two']] as const) {
    const data = new Uint8Array(w * h);
    for (let i = 0; i < data.length; i++) data[i] = kind === 'noise' ? rnd() : kind === 'runs' ? (i >> 7) & 255 : kind === 'ramp' ? i & 255 : (i % 3 === 0 ? 0 : 255);
    const g = decodeGif(encodeGif({ width: w, height: h, channels: 1, data }));
    const grey = new Uint8Array(w * h);
    for (let i = 0; i < grey.length; i++) grey[i] = g.frames[0][3 * i];
    expect({ w, h, kind, same: Buffer.from(grey).equals(Buffer.from(data)) }).toEqual({ w, h, kind, same: true });
  }
  const rgb = new Uint8Array(40 * 40 * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i % 7) * 30; // few colours: exact
  const g = decodeGif(encodeGif({ width: 40, height: 40, channels: 3, data: rgb }));
  expect(Buffer.from(g.frames[0]).equals(Buffer.from(rgb))).toBe(true);
});

test('a multi-frame instance as image/gif is an animation: every frame, looped, timed from the Cine module', async () => {
  for (const [key, delays] of [['emri_small', new Array(10).fill(10)], ['ft', new Array(10).fill(5)], ['cine', new Array(10).fill(4)],
    ['ftv', [4, 4, 8, 8, 12, 12, 4, 4, 4, 7]]] as Array<[string, number[]]>) {
    const u = urls.get(key)!;
    const res = await get(`${u}/rendered`, 'image/gif');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/gif');
    const g = decodeGif(res.body);
    expect({ key, delays: g.delays }).toEqual({ key, delays });
    expect(g.loops).toBe(0); // forever
    for (let f = 0; f < 10; f++) {
      const png = decodePng((await get(`${u}/frames/${f + 1}/rendered`, 'image/png')).body);
      expect(maxDiff(g.frames[f], asRgb(png))).toBe(0);
    }
    expect((await get(`${u}/rendered`, 'image/gif').set('If-None-Match', res.headers.etag)).status).toBe(304);
  }
  // frames/{list}/rendered with a multipart Accept: one GIF per frame
  const u = urls.get('emri_small')!;
  const multi = await get(`${u}/frames/2,3/rendered`, 'multipart/related; type="image/gif"');
  const parts = parseMultipartResponse(multi.body, multi.headers['content-type']);
  expect(parts.map((p) => p.headers['content-type'])).toEqual(['image/gif', 'image/gif']);
  expect(decodeGif(parts[1].body).frames.length).toBe(1);
});

test('frame timing rules, and gif refusals', async () => {
  expect(frameDelaysMs({ '00181065': { vr: 'DS', Value: [0, 30, 60] } }, 3)).toEqual([30, 60, 45]);
  expect(frameDelaysMs({ '00181063': { vr: 'DS', Value: [33.3] }, '00180040': { vr: 'IS', Value: [10] } }, 2)).toEqual([33.3, 33.3]);
  expect(frameDelaysMs({ '00082144': { vr: 'IS', Value: [20] } }, 1)).toEqual([50]);
  expect(frameDelaysMs({}, 2)).toEqual([100, 100]);
  const ct = urls.get('CT_small')!;
  const r = await get(`${ct}/frames/1/rendered?bitdepth=16`, 'image/gif');
  expect(r.status).toBe(400);
  expect(JSON.parse(r.body.toString()).error).toMatch(/image\/png only/);
});

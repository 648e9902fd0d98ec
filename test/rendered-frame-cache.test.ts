/**
 * The frame cache behind rendered resources (server/rendered.ts): a window change on a frame already viewed
 * renders from the frame's bytes or decoded samples kept in shared memory. The images must be the very bytes
 * a server without the cache (--frame-cache-mb 0) renders, for native, packed 14-bit and compressed frames,
 * single and multi-frame, and must stay so when the cache is too small to hold them. The reference server also
 * renders on its main thread only, so images from the worker threads (requests in flight together) and from
 * the main thread (small PNGs while the workers are idle, server/rendered.ts) are checked to be the same.
 */
import * as fs from 'fs';
import request from 'supertest';
import { startServer, TestServer, corpusFile, multipartBody, binaryParser, storeFile } from './helpers/server';
import { log } from '../server/log';

const FILES: Array<[string, number, [number, number]]> = [
  ['693_UNCR', 1, [40, 400]],              // native, BitsStored 14 signed: packed words
  ['JPEG2000', 1, [1000, 2000]],            // JPEG 2000: decoded samples kept
  ['MR_small_jpeg_ls_lossless', 1, [600, 1200]],
  ['JPEG-LL', 1, [1000, 2000]],
  ['emri_small_RLE', 3, [300, 600]],       // multi-frame, RLE
  ['SC_rgb_rle', 1, [128, 256]],           // colour: the window does not apply, the frame is still cached
];

let cached: TestServer;
let tiny: TestServer;
let none: TestServer;
const urls = new Map<string, string>();

beforeAll(async () => {
  cached = await startServer();
  tiny = await startServer({ frameCacheBytes: 4096, renderCacheBytes: 0 }); // holds nothing: everything evicted
  none = await startServer({ frameCacheBytes: 0, renderCacheBytes: 0, renderWorkers: 0 }); // no cache, no workers
  for (const [name] of FILES) {
    const file = fs.readFileSync(corpusFile(name));
    for (const s of [cached, tiny, none]) urls.set(name, await storeFile(s, file));
  }
}, 60_000);
afterAll(async () => { await Promise.all([cached, tiny, none].map((s) => s.stop())); });

const png = async (s: TestServer, path: string) => {
  const r = await request(s.app).get(path).set('Accept', 'image/png').buffer(true).parse(binaryParser);
  expect(r.status).toBe(200);
  return r.body as Buffer;
};

test.each(FILES)('%s frame %i: window changes on a cached frame give the uncached images', async (name, frame, [c, w]) => {
  const base = `${urls.get(name)}/frames/${frame}/rendered`;
  const windows = [`${c},${w}`, `${c + 17},${w}`, `${c - 5},${w / 2},linear-exact`, `${c},${w * 2},sigmoid`];
  const first = await png(cached, `${base}?window=${windows[0]}`);
  expect(first).toEqual(await png(none, `${base}?window=${windows[0]}`));
  for (const win of windows.slice(1)) {
    const expected = await png(none, `${base}?window=${win}`);
    expect(await png(cached, `${base}?window=${win}`)).toEqual(expected);
    expect(await png(tiny, `${base}?window=${win}`)).toEqual(expected);
  }
  // without a window (the file's own VOI or min-max) and a viewport, from the cached frame too
  expect(await png(cached, `${base}?viewport=64,64`)).toEqual(await png(none, `${base}?viewport=64,64`));
  expect(await png(cached, base)).toEqual(await png(none, base));
}, 60_000);

test('a frame that does not exist is 404 whether or not its neighbours are cached', async () => {
  const u = urls.get('emri_small_RLE')!;
  await png(cached, `${u}/frames/2/rendered`);
  expect((await request(cached.app).get(`${u}/frames/99/rendered`).set('Accept', 'image/png')).status).toBe(404);
});

test('a window change on a viewed frame reads nothing from the blob store', async () => {
  // Hide the stored files: renders of frames in the cache still succeed, others cannot.
  const path = await import('path');
  const blobs: string[] = [];
  const walk = (d: string) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) e.isDirectory() ? walk(path.join(d, e.name)) : blobs.push(path.join(d, e.name)); };
  walk(path.join(cached.dataDir, 'blobs'));
  const j2k = `${urls.get('JPEG2000')}/frames/1/rendered`;
  const ct = `${urls.get('693_UNCR')}/frames/1/rendered`;
  await png(cached, `${j2k}?window=1,100`);
  await png(cached, `${ct}?window=1,100`);
  for (const b of blobs) fs.renameSync(b, `${b}.hidden`);
  const errorLog = jest.fn();
  const errorSpy = jest.spyOn(log, 'error').mockImplementation(((a: unknown, b?: unknown) => { errorLog(typeof a === 'string' ? a : b); }) as any);
  try {
    expect((await png(cached, `${j2k}?window=2,100`)).length).toBeGreaterThan(100);
    expect((await png(cached, `${ct}?window=2,100`)).length).toBeGreaterThan(100);
    const uncached = await request(cached.app).get(`${urls.get('emri_small_RLE')}/frames/7/rendered?window=3,100`).set('Accept', 'image/png');
    // nothing in memory for it: the store is asked, and its file is missing (server/instances.ts checkBlob)
    expect(uncached.status).toBe(500);
    expect(uncached.body.error).toMatch(/stored bytes of this instance are missing/);
    expect(errorLog).toHaveBeenCalledWith(expect.stringMatching(/^fault blob-missing/));
  } finally {
    errorSpy.mockRestore();
    for (const b of blobs) fs.renameSync(`${b}.hidden`, b);
  }
});

test('requests in flight together (rendered by the workers) give the images the main thread renders', async () => {
  const base = `${urls.get('693_UNCR')}/frames/1/rendered`;
  const windows = Array.from({ length: 12 }, (_, i) => `${100 + i * 3},${350 + i}`);
  const together = await Promise.all(windows.map((w) => png(cached, `${base}?window=${w}`)));
  for (let i = 0; i < windows.length; i++) expect(together[i]).toEqual(await png(none, `${base}?window=${windows[i]}`));
});

test('first requests in flight together for one compressed frame all get their own window', async () => {
  // One of them decodes; the others wait for its decoded samples (server/rendered.ts) and render from them.
  const base = `${urls.get('JPEG2000')}/frames/1/rendered`;
  const fresh = await startServer();
  try {
    const { body, contentType } = multipartBody([fs.readFileSync(corpusFile('JPEG2000'))]);
    expect((await request(fresh.app).post('/dicom-web/studies').set('Content-Type', contentType).send(body)).status).toBe(200);
    const windows = Array.from({ length: 6 }, (_, i) => `${900 + i * 40},${1800 - i * 50}`);
    const together = await Promise.all(windows.map((w) => png(fresh, `${base}?window=${w}`)));
    for (let i = 0; i < windows.length; i++) expect(together[i]).toEqual(await png(none, `${base}?window=${windows[i]}`));
  } finally {
    await fresh.stop();
  }
});

/**
 * Resolution-aware decoding of JPEG 2000 and HTJ2K (DecodeOptions.reduce, DecodedFrame.reduction): a frame shown
 * through a viewport that shrinks it at least 2^r times is decoded without its r finest resolution levels, then
 * resampled from there. What it must give, against the full decode resampled as before:
 *   - codec level: each reduced sample is within 1% of the stored range, on average, of the mean of the
 *     2^r x 2^r block it stands for (centred on pixel 2^r*i, where the wavelet's low-pass filter is centred);
 *   - rendered (the CR's own window, viewports from 500 down to 64 pixels, r = 1..4): mean |difference| <= 1 grey
 *     level of 255, at least 85% of pixels within 1, none more than 24 (measured: 0.12-0.60, 89-99.8%, 14).
 * And it must not be used where the rendering is not per pixel (overlays, min-max window, palette) or where a window
 * narrow against the stored range would turn small averaging differences into large ones (CT soft tissue).
 */
import * as fs from 'fs';
import request from 'supertest';
import { decodeFrame, initCodecs } from '../render/codecs';
import { decompositionLevels } from '../render/codecs/jpeg2000';
import { openjphModule } from '../render/codecs/wasm';
import { maxReduction, renderFrame } from '../render';
import type { DecodedFrame, FrameBytes, ImageDescription, RenderOptions } from '../render';
import { loadFixture } from './helpers/render-fixture';
import { decodePng } from './helpers/png-compare';
import { binaryParser, corpusFile, startServer, storeFile, TestServer } from './helpers/server';

beforeAll(async () => { await initCodecs(['openjpeg', 'openjph']); });

const cr = loadFixture('RG3_J2KR'); // CR 1760x1760, 10 bits, JPEG 2000 lossless, window 550/1024 in the file
const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';
let full: DecodedFrame;
let htj2k: FrameBytes;

beforeAll(() => {
  full = decodeFrame(cr.transferSyntaxUID, cr.frames[0], cr.desc.frame);
  const encoder = new (openjphModule().HTJ2KEncoder)();
  try {
    const words = full.pixels as Uint16Array;
    encoder.getDecodedBuffer({ width: 1760, height: 1760, bitsPerSample: 10, componentCount: 1, isSigned: false, isUsingColorTransform: false })
      .set(new Uint8Array(words.buffer, words.byteOffset, words.byteLength));
    encoder.encode();
    htj2k = { data: encoder.getEncodedBuffer().slice() };
  } finally {
    encoder.delete();
  }
});

/** Mean |reduced - mean of the block it stands for| over the reduced image. */
function blockError(reduced: DecodedFrame, r: number): number {
  const f = 2 ** r, shift = f / 2 - 0.5;
  const src = full.pixels as Uint16Array, red = reduced.pixels as Uint16Array;
  let sum = 0;
  for (let y = 0; y < reduced.rows; y++) {
    for (let x = 0; x < reduced.columns; x++) {
      let acc = 0, n = 0;
      for (let j = Math.max(0, Math.ceil(y * f - shift)); j < Math.min(full.rows, Math.ceil((y + 1) * f - shift)); j++) {
        for (let i = Math.max(0, Math.ceil(x * f - shift)); i < Math.min(full.columns, Math.ceil((x + 1) * f - shift)); i++) { acc += src[j * full.columns + i]; n++; }
      }
      sum += Math.abs(acc / n - red[y * reduced.columns + x]);
    }
  }
  return sum / (reduced.rows * reduced.columns);
}

test('the codestream says how many levels may go: COD of RG3_J2KR', () => {
  const levels = decompositionLevels(cr.frames[0].data, 1);
  expect(levels).toBeGreaterThanOrEqual(4);
  // asking more than it has gives what it has
  const d = decodeFrame(cr.transferSyntaxUID, cr.frames[0], cr.desc.frame, { reduce: levels + 3 });
  expect(d.reduction).toBe(levels);
  expect(d.columns).toBe(Math.ceil(1760 / 2 ** levels));
});

test.each([
  ['JPEG 2000', 1], ['JPEG 2000', 3], ['HTJ2K', 2], ['HTJ2K', 4],
])('%s decoded %i levels down: the size rounded up, each sample its block\'s mean within 1%% of the range', (syntax, r) => {
  const d = syntax === 'HTJ2K' ? decodeFrame(HTJ2K_LOSSLESS, htj2k, cr.desc.frame, { reduce: r }) : decodeFrame(cr.transferSyntaxUID, cr.frames[0], cr.desc.frame, { reduce: r });
  expect(d.reduction).toBe(r);
  expect([d.columns, d.rows]).toEqual([Math.ceil(1760 / 2 ** r), Math.ceil(1760 / 2 ** r)]);
  expect(blockError(d, r)).toBeLessThan(1024 * 0.01);
});

test('other syntaxes ignore reduce; reduce 0 is the full decode', () => {
  const fx = loadFixture('693_UNCR');
  expect(decodeFrame(fx.transferSyntaxUID, fx.frames[0], fx.desc.frame, { reduce: 3 }).columns).toBe(512);
  const d = decodeFrame(cr.transferSyntaxUID, cr.frames[0], cr.desc.frame, { reduce: 0 });
  expect(d.reduction).toBeUndefined();
  expect(d.columns).toBe(1760);
});

function diff(a: Uint8Array, b: Uint8Array): { mean: number; within1: number; max: number } {
  let sum = 0, within = 0, max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    sum += d; if (d <= 1) within++; if (d > max) max = d;
  }
  return { mean: sum / a.length, within1: within / a.length, max };
}

const VIEWPORTS: Array<[string, RenderOptions['viewport'], number]> = [
  ['500x500', { vw: 500, vh: 500 }, 1],
  ['256x256', { vw: 256, vh: 256 }, 2],
  ['128x128', { vw: 128, vh: 128 }, 3],
  ['64x64', { vw: 64, vh: 64 }, 4],
  ['cropped and flipped', { vw: 256, vh: 256, sx: 100, sy: 200, sw: 900, sh: -700 }, 1],
  ['a 300x40 strip', { vw: 30, vh: 30, sx: 50, sy: 900, sw: 300, sh: 40 }, 3],
  ['a 1.9x shrink', { vw: 926, vh: 926 }, 0],
];

test.each(VIEWPORTS)('CR viewport %s: reduced by the level it allows, within tolerance of the full decode', (_name, viewport, r) => {
  for (const [syntax, frame] of [[cr.transferSyntaxUID, cr.frames[0]], [HTJ2K_LOSSLESS, htj2k]] as const) {
    const opts: RenderOptions = { viewport, window: { center: 550, width: 1024 } };
    expect(maxReduction(cr.desc, 1, opts)).toBe(r);
    const reduced = decodeFrame(syntax, frame, cr.desc.frame, { reduce: r });
    expect(reduced.reduction ?? 0).toBe(r);
    const a = renderFrame(cr.desc, 1, full, opts), b = renderFrame(cr.desc, 1, reduced, opts);
    expect([b.width, b.height]).toEqual([a.width, a.height]);
    const d = diff(a.data, b.data);
    expect(d.mean).toBeLessThanOrEqual(1);
    expect(d.within1).toBeGreaterThanOrEqual(0.85);
    expect(d.max).toBeLessThanOrEqual(24);
  }
});

test('no reduction where the rendering is not per pixel or the window is narrow', () => {
  const vp = { vw: 64, vh: 64 };
  const desc = cr.desc;
  expect(maxReduction(desc, 1, {})).toBe(0); // no viewport
  expect(maxReduction(desc, 1, { viewport: vp })).toBe(4); // the file's window
  const noVoi: ImageDescription = { ...desc, voi: { windows: [], function: 'LINEAR', luts: [] } };
  expect(maxReduction(noVoi, 1, { viewport: vp })).toBe(0); // min-max window
  expect(maxReduction({ ...desc, overlays: [{ group: 0x6000 } as ImageDescription['overlays'][0]] }, 1, { viewport: vp })).toBe(0);
  expect(maxReduction({ ...desc, overlays: [{ group: 0x6000 } as ImageDescription['overlays'][0]] }, 1, { viewport: vp, overlays: false })).toBe(4);
  expect(maxReduction({ ...desc, frame: { ...desc.frame, photometricInterpretation: 'PALETTE COLOR' } }, 1, { viewport: vp })).toBe(0);
  expect(maxReduction(desc, 1, { viewport: vp, window: { center: 550, width: 100 } })).toBe(0); // < 1/8 of 10 bits
  const ct = loadFixture('693_J2KR'); // 16 bits stored, soft-tissue window
  expect(maxReduction(ct.desc, 1, { viewport: { vw: 64, vh: 64 }, window: { center: 40, width: 400 } })).toBe(0);
});

test('renderFrame refuses a reduced frame for a rendering that shows more than it has', () => {
  const reduced = decodeFrame(cr.transferSyntaxUID, cr.frames[0], cr.desc.frame, { reduce: 3 });
  expect(() => renderFrame(cr.desc, 1, reduced, {})).toThrow(/lower resolution/);
  expect(() => renderFrame(cr.desc, 1, reduced, { viewport: { vw: 500, vh: 500 } })).toThrow(/lower resolution/);
  expect(renderFrame(cr.desc, 1, reduced, { viewport: { vw: 200, vh: 200 } }).width).toBe(200);
});

describe('through the rendered resources', () => {
  let srv: TestServer;
  let url: string;
  beforeAll(async () => {
    srv = await startServer();
    url = await storeFile(srv, fs.readFileSync(corpusFile('RG3_J2KR')));
  }, 60_000);
  afterAll(async () => { await srv.stop(); });
  const png = async (path: string) => {
    const r = await request(srv.app).get(path).set('Accept', 'image/png').buffer(true).parse(binaryParser);
    expect(r.status).toBe(200);
    return decodePng(r.body as Buffer);
  };

  test('a thumbnail, then a full-size window change, then the thumbnail again: each within tolerance or exact', async () => {
    const window = { center: 550, width: 1024 };
    const thumb = await png(`${url}/frames/1/rendered?viewport=128,128&window=550,1024`);
    const expectedThumb = renderFrame(cr.desc, 1, full, { viewport: { vw: 128, vh: 128 }, window });
    expect([thumb.width, thumb.height]).toEqual([128, 128]);
    const d = diff(thumb.data, expectedThumb.data);
    expect(d.mean).toBeLessThanOrEqual(1);
    expect(d.within1).toBeGreaterThanOrEqual(0.85);
    // a full-size image is never made from the reduced decode
    const big = await png(`${url}/frames/1/rendered?window=600,900`);
    expect(Buffer.from(big.data).equals(Buffer.from(renderFrame(cr.desc, 1, full, { window: { center: 600, width: 900 } }).data))).toBe(true);
    // with the full decode in the frame cache, thumbnails come from it: exact
    const again = await png(`${url}/frames/1/rendered?viewport=128,128&window=551,1024`);
    const exact = renderFrame(cr.desc, 1, full, { viewport: { vw: 128, vh: 128 }, window: { center: 551, width: 1024 } });
    expect(Buffer.from(again.data).equals(Buffer.from(exact.data))).toBe(true);
  }, 60_000);

  test('/thumbnail of the instance: within tolerance of the full decode resampled', async () => {
    const t = await png(`${url}/thumbnail`);
    const expected = renderFrame(cr.desc, 1, full, { viewport: { vw: 128, vh: 128 } });
    expect([t.width, t.height]).toEqual([expected.width, expected.height]);
    expect(diff(t.data, expected.data).mean).toBeLessThanOrEqual(1);
  }, 60_000);
});

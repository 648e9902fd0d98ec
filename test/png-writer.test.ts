/**
 * The PNG writers of render/encode.ts.
 * - The JavaScript writer (encodePngJs) gives the very bytes pngjs writes with the same settings, for grey and
 *   colour, odd shapes, aligned and unaligned input, and decodes back to the input.
 * - The C addon (render/native/fastpng.c) writes its own deflate stream: its bytes differ from zlib's, so each
 *   image is checked by decoding it (pngjs, i.e. zlib's inflate, which also checks the Adler-32 and the CRCs)
 *   and comparing every pixel: random noise, long runs across row ends and run-length limits, images of many
 *   blocks, and arbitrary images from fast-check. CI sets REQUIRE_NATIVE=1, so there the addon must be built.
 */
import * as crypto from 'crypto';
import * as zlib from 'zlib';
import fc from 'fast-check';
import { PNG } from 'pngjs';
import { encodePng, encodePng16, encodePngJs, encodePngWithPngjs } from '../render/encode';
import { fastPng } from '../render/native';

const SHAPES: Array<[number, number, number]> = [[512, 512, 1], [1024, 64, 1], [64, 64, 1], [7, 5, 1], [33, 9, 3], [64, 64, 3], [1, 1, 1], [511, 3, 1]];

function expectDecodesTo(png: Buffer, w: number, h: number, c: number, data: Uint8Array): void {
  const back = PNG.sync.read(png);
  expect([back.width, back.height]).toEqual([w, h]);
  for (let i = 0; i < w * h; i++) for (let k = 0; k < c; k++) if (back.data[i * 4 + k] !== data[i * c + k]) throw new Error(`pixel ${i} channel ${k}: ${back.data[i * 4 + k]} != ${data[i * c + k]}`);
}

test.each(SHAPES)('JavaScript writer: %ix%ix%i, the bytes pngjs writes', (w, h, c) => {
  for (const offset of [0, 1]) {
    const data = new Uint8Array(w * h * c + offset).subarray(offset);
    crypto.randomFillSync(data);
    const img = { width: w, height: h, channels: c as 1 | 3, data };
    const ours = encodePngJs(img);
    expect(ours.equals(encodePngWithPngjs(img))).toBe(true);
    expectDecodesTo(ours, w, h, c, data);
  }
});

test('the C addon is built where CI requires it', () => {
  if (process.env.REQUIRE_NATIVE === '1') expect(fastPng).toBeDefined();
  if (fastPng) expect(encodePng({ width: 2, height: 1, channels: 1, data: new Uint8Array([1, 2]) })).toEqual(fastPng.encodePng(new Uint8Array([1, 2]), 2, 1, 1));
});

const native = fastPng ? describe : describe.skip;

native('C addon PNG encoder', () => {
  const enc = (data: Uint8Array, w: number, h: number, c: number) => fastPng!.encodePng(data, w, h, c as 1 | 3);

  test.each(SHAPES)('noise %ix%ix%i decodes to its pixels', (w, h, c) => {
    for (const offset of [0, 1]) {
      const data = new Uint8Array(w * h * c + offset).subarray(offset);
      crypto.randomFillSync(data);
      expectDecodesTo(enc(data, w, h, c), w, h, c, data);
    }
  });

  test.each([[1, 1], [3, 2], [257, 3], [258, 2], [259, 2], [260, 4], [600, 5], [1000, 3], [4096, 2]])('runs: constant rows %ix%i, rows of runs, runs broken every 258 bytes', (w, h) => {
    const flat = new Uint8Array(w * h).fill(200);
    expectDecodesTo(enc(flat, w, h, 1), w, h, 1, flat);
    const bands = new Uint8Array(w * h).map((_, i) => Math.floor(i / 7) % 3 === 0 ? 9 : i % 5);
    expectDecodesTo(enc(bands, w, h, 1), w, h, 1, bands);
    const ramps = new Uint8Array(w * h).map((_, i) => Math.floor(i / 258) & 0xff); // runs ending just at 258
    expectDecodesTo(enc(ramps, w, h, 1), w, h, 1, ramps);
  });

  test('short repeats (windowed CT): runs of 1 to 6 and longer, starting at every offset of a 16-byte step', () => {
    // The SSE2 tokenizer takes sixteen bytes as literals unless a run of three repeats starts among them;
    // shorter repeats stay literals. Segments of every length up to 6, then 17 and 40, at every alignment.
    for (const w of [512, 100, 19, 18, 17]) {
      const h = 40;
      const data = new Uint8Array(w * h);
      const lens = [1, 2, 3, 4, 5, 6, 1, 1, 2, 17, 3, 40, 2, 4];
      let v = 0, i = 0, k = 0;
      while (i < data.length) {
        const len = lens[k % lens.length] + (k % 16 === 15 ? 1 : 0); // shift the pattern against the 16-byte steps
        v = (v + 1 + (k % 3)) % 7; // a small alphabet, as residuals of a smooth image are
        data.fill(v, i, i + len);
        i += len; k++;
      }
      expectDecodesTo(enc(data, w, h, 1), w, h, 1, data);
    }
  });

  test('a 2048x2048 CT-like image (many blocks): decodes, and is no larger than zlib Z_RLE level 3 by more than 2%', () => {
    const w = 2048, h = 2048;
    const data = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const r2 = ((x - 1024) / 900) ** 2 + ((y - 1024) / 800) ** 2;
      data[y * w + x] = r2 < 1 ? 120 + ((x * 31 + y * 17) % 23) + (Math.random() * 6 | 0) : 0; // air outside, noise inside
    }
    const png = enc(data, w, h, 1);
    expectDecodesTo(png, w, h, 1, data);
    const js = encodePngJs({ width: w, height: h, channels: 1, data });
    expect(png.length).toBeLessThan(js.length * 1.02);
  });

  test('arbitrary images (fast-check) decode to their pixels, and the zlib stream inflates by itself', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 20 }), fc.constantFrom(1, 3), fc.integer({ min: 1, max: 256 }), fc.integer(),
      (w, h, c, alphabet, seed) => {
        let s = seed | 0;
        const next = () => ((s = (Math.imul(s, 1103515245) + 12345) | 0) >>> 16);
        const data = new Uint8Array(w * h * c);
        let v = 0;
        for (let i = 0; i < data.length; i++) { if (next() % 4 === 0) v = next() % alphabet; data[i] = v; } // runs and changes
        const png = enc(data, w, h, c);
        expectDecodesTo(png, w, h, c, data);
        const idat = png.subarray(41, 41 + png.readUInt32BE(33));
        expect(zlib.inflateSync(idat).length).toBe((w * c + 1) * h);
      }), { numRuns: 300 });
  });

  test('refuses data that does not match the shape, and other arrays', () => {
    expect(() => enc(new Uint8Array(5), 2, 2, 1)).toThrow(/does not match/);
    expect(() => enc(new Uint8Array(8), 2, 2, 2)).toThrow(/shape/);
    expect(() => enc(new Uint8Array(0), 0, 0, 1)).toThrow(/shape/);
    expect(() => (fastPng!.encodePng as any)(new Uint16Array(4), 2, 2, 1)).toThrow(/Uint8Array/);
    expect(() => (fastPng!.encodePng as any)(new Uint8Array(4), 2)).toThrow();
  });
});

native('C addon lookup', () => {
  test.each([Uint8Array, Int8Array, Uint16Array, Int16Array])('%p words index the table by bit pattern', (Type) => {
    const n = 1001;
    const bits = Type.BYTES_PER_ELEMENT * 8;
    const words = new Type(n);
    crypto.randomFillSync(words);
    const table = new Uint8Array(1 << bits);
    crypto.randomFillSync(table);
    const out = new Uint8Array(n + 3);
    fastPng!.lookup(words as any, table, out, n);
    const pattern = new (bits === 16 ? Uint16Array : Uint8Array)(words.buffer);
    for (let i = 0; i < n; i++) expect(out[i]).toBe(table[pattern[i]]);
    expect([...out.subarray(n)]).toEqual([0, 0, 0]);
  });

  test('refuses a short table, a count beyond an array, and other arrays', () => {
    expect(() => fastPng!.lookup(new Uint16Array(4), new Uint8Array(256), new Uint8Array(4), 4)).toThrow(/65536/);
    expect(() => fastPng!.lookup(new Uint8Array(4), new Uint8Array(256), new Uint8Array(3), 4)).toThrow(/count/);
    expect(() => (fastPng!.lookup as any)(new Float32Array(4), new Uint8Array(256), new Uint8Array(4), 4)).toThrow(/words/);
  });
});

describe('16-bit grey PNG (bitdepth=16): encodePng16 with the C addon and with the JavaScript writer', () => {
  test.each([[512, 512], [7, 5], [1, 1], [300, 3]])('%ix%i noise and ramps decode to their 16-bit samples', (w, h) => {
    const data = new Uint16Array(w * h);
    crypto.randomFillSync(data);
    for (let i = 0; i < Math.min(data.length, 700); i++) data[i] = i * 93; // a ramp through both bytes
    const check = (png: Buffer) => {
      const back = PNG.sync.read(png, { skipRescale: true } as any) as any;
      expect([back.width, back.height, back.depth]).toEqual([w, h, 16]);
      for (let i = 0; i < w * h; i++) if (back.data[4 * i] !== data[i]) throw new Error(`pixel ${i}: ${back.data[4 * i]} != ${data[i]}`);
    };
    check(encodePng16({ width: w, height: h, channels: 1, data }));
    const be = Buffer.from(data.buffer, data.byteOffset, data.byteLength).subarray(0);
    const swapped = Buffer.from(be); swapped.swap16();
    check(encodePngJs({ width: w, height: h, channels: 1, data: swapped }, 16));
  });
});

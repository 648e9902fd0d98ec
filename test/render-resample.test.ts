/**
 * The viewport's resampling in the C addon (fastPng.resample) against the JavaScript it replaces
 * (render/viewport.ts resample): tolerance 0, the very bytes, for grey and RGB images, shrinking (area averaging),
 * enlarging (bilinear), cropped, flipped, and from a frame decoded at a lower resolution (reducedAxisWeights).
 * And the addon refuses weights that point outside the image instead of reading past it.
 */
import { fastPng } from '../render/native';
import { applyViewport, axisWeights, planViewport, reducedAxisWeights, resample } from '../render/viewport';
import type { RenderedImage, RenderOptions } from '../render/types';
import { prng } from './helpers/prng';

test('the addon is built where it is required', () => {
  if (process.env.REQUIRE_NATIVE === '1') expect(fastPng?.resample).toBeDefined();
});

const native = fastPng ? describe : describe.skip;

native('fastPng.resample gives the JavaScript resampler\'s bytes', () => {
  const rand = prng(18);
  const image = (w: number, h: number, c: 1 | 3): RenderedImage => {
    const data = new Uint8Array(w * h * c);
    // smooth areas, hard edges and noise: every rounding case shows up
    for (let i = 0; i < data.length; i++) data[i] = i % 7 === 0 ? Math.floor(rand() * 256) : ((i >> 4) & 1) * 255;
    return { width: w, height: h, channels: c, data };
  };
  const js = (img: RenderedImage, vp: NonNullable<RenderOptions['viewport']>, reduction = 0, fullW = img.width, fullH = img.height) => {
    const { region, outWidth, outHeight } = planViewport(vp, fullW, fullH);
    const wx = reduction ? reducedAxisWeights(region.w, outWidth, region.x, region.flipX, reduction, img.width) : axisWeights(region.w, outWidth, region.x, region.flipX);
    const wy = reduction ? reducedAxisWeights(region.h, outHeight, region.y, region.flipY, reduction, img.height) : axisWeights(region.h, outHeight, region.y, region.flipY);
    let y0 = img.height, y1 = 0;
    for (const y of wy.index) { y0 = Math.min(y0, y); y1 = Math.max(y1, y + 1); }
    return resample(img.data, img.width, img.channels, wx, wy, y0, y1 - y0, outWidth, outHeight);
  };

  test.each([1, 3] as const)('%i channel(s): 100 random images and viewports', (c) => {
    for (let n = 0; n < 100; n++) {
      const w = 1 + Math.floor(rand() * 300), h = 1 + Math.floor(rand() * 300);
      const img = image(w, h, c);
      const sx = Math.floor(rand() * w * 0.5), sy = Math.floor(rand() * h * 0.5);
      const sw = (1 + Math.floor(rand() * (w - sx))) * (rand() < 0.3 ? -1 : 1), sh = (1 + Math.floor(rand() * (h - sy))) * (rand() < 0.3 ? -1 : 1);
      const vp = rand() < 0.5 ? { vw: 1 + Math.floor(rand() * 400), vh: 1 + Math.floor(rand() * 400) }
        : { vw: 1 + Math.floor(rand() * 400), vh: 1 + Math.floor(rand() * 400), sx, sy, sw, sh };
      const out = applyViewport(img, planViewport(vp, w, h)); // the addon
      expect(Buffer.from(out.data).equals(Buffer.from(js(img, vp)))).toBe(true);
    }
  });

  test('from frames decoded 1 to 4 levels down', () => {
    for (let r = 1; r <= 4; r++) {
      const fullW = 1000 + r * 37, fullH = 900 + r * 11, f = 2 ** r;
      const img = image(Math.ceil(fullW / f), Math.ceil(fullH / f), 1);
      for (const vp of [{ vw: Math.floor(fullW / f / 1.3), vh: 1000 }, { vw: 60, vh: 60, sx: 100, sy: 50, sw: -700, sh: 600 }]) {
        const plan = planViewport(vp, fullW, fullH);
        const out = applyViewport(img, plan, r);
        expect([out.width, out.height]).toEqual([plan.outWidth, plan.outHeight]);
        expect(Buffer.from(out.data).equals(Buffer.from(js(img, vp, r, fullW, fullH)))).toBe(true);
      }
    }
  });

  test('weights pointing outside the image are refused, not followed', () => {
    const img = image(8, 8, 1);
    const wx = axisWeights(8, 4, 0, false), wy = axisWeights(8, 4, 0, false);
    const out = new Uint8Array(16);
    expect(() => fastPng!.resample(img.data, 8, 8, 1, wx, wy, 0, 8, out, 4, 4)).not.toThrow();
    const bad = { ...wx, index: wx.index.map((i) => i + 8) };
    expect(() => fastPng!.resample(img.data, 8, 8, 1, bad, wy, 0, 8, out, 4, 4)).toThrow(/weights/);
    expect(() => fastPng!.resample(img.data, 8, 8, 1, wx, wy, 4, 8, out, 4, 4)).toThrow(/rows/);
    expect(() => fastPng!.resample(img.data, 8, 8, 1, wx, wy, 0, 8, new Uint8Array(4), 4, 4)).toThrow(/smaller/);
    expect(() => fastPng!.resample(img.data, 8, 8, 1, { ...wx, start: new Int32Array([0, 0, 0, 100]) }, wy, 0, 8, out, 4, 4)).toThrow(/weights/);
  });
});

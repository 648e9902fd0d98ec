/**
 * Viewport (PS3.18 8.3.5.1.3, "viewport=vw,vh[,sx,sy,sw,sh]"): crop the source region (sx, sy, sw, sh in
 * source pixels; sx, sy default 0, sw, sh default to the rest of the image), flip it when sw or sh is
 * negative, and scale it to fit inside vw x vh keeping its aspect ratio. The returned image has the
 * scaled region's size (at most vw x vh), not padded to the viewport.
 *
 * Resampling is separable with weights precomputed per output row/column: area averaging (box filter
 * with fractional coverage) when shrinking, bilinear (pixel centres aligned) when enlarging.
 */
import { RenderError } from './errors';
import type { RenderedImage, RenderOptions } from './types';

export interface Region { x: number; y: number; w: number; h: number; flipX: boolean; flipY: boolean }

export interface ViewportPlan { region: Region; outWidth: number; outHeight: number }

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/** Validate the viewport against the image and compute the source region and the output size. */
export function planViewport(vp: NonNullable<RenderOptions['viewport']>, columns: number, rows: number): ViewportPlan {
  const { vw, vh } = vp;
  if (!isInt(vw) || !isInt(vh) || vw < 1 || vh < 1) throw new RenderError('BAD_VIEWPORT', 'viewport vw and vh must be positive integers');
  if (vw > 16384 || vh > 16384) throw new RenderError('BAD_VIEWPORT', 'viewport larger than 16384 pixels');
  const sx = vp.sx ?? 0;
  const sy = vp.sy ?? 0;
  if (!isInt(sx) || !isInt(sy) || sx < 0 || sy < 0 || sx >= columns || sy >= rows) {
    throw new RenderError('BAD_VIEWPORT', 'viewport sx, sy must be integers inside the image');
  }
  const sw = vp.sw ?? columns - sx;
  const sh = vp.sh ?? rows - sy;
  if (!isInt(sw) || !isInt(sh) || sw === 0 || sh === 0) throw new RenderError('BAD_VIEWPORT', 'viewport sw, sh must be non-zero integers');
  const w = Math.abs(sw), h = Math.abs(sh);
  if (sx + w > columns || sy + h > rows) throw new RenderError('BAD_VIEWPORT', 'viewport source region extends beyond the image');
  const scale = Math.min(vw / w, vh / h);
  const outWidth = Math.min(vw, Math.max(1, Math.round(w * scale)));
  const outHeight = Math.min(vh, Math.max(1, Math.round(h * scale)));
  return { region: { x: sx, y: sy, w, h, flipX: sw < 0, flipY: sh < 0 }, outWidth, outHeight };
}

/** Per output index: the contributing source indices and their weights (summing to 1). */
interface AxisWeights { start: Int32Array; count: Int32Array; index: Int32Array; weight: Float32Array }

export function axisWeights(nIn: number, nOut: number, offset: number, flip: boolean): AxisWeights {
  const start = new Int32Array(nOut), count = new Int32Array(nOut);
  const index: number[] = [], weight: number[] = [];
  const s = nIn / nOut;
  const src = (i: number) => offset + (flip ? nIn - 1 - i : i);
  for (let o = 0; o < nOut; o++) {
    start[o] = index.length;
    if (s > 1) {
      // area averaging over [o*s, (o+1)*s)
      const a = o * s, b = (o + 1) * s;
      for (let i = Math.floor(a); i < Math.min(nIn, Math.ceil(b)); i++) {
        const cover = Math.min(b, i + 1) - Math.max(a, i);
        if (cover > 0) { index.push(src(i)); weight.push(cover / s); }
      }
    } else {
      // bilinear, centres aligned
      let f = (o + 0.5) * s - 0.5;
      if (f < 0) f = 0;
      if (f > nIn - 1) f = nIn - 1;
      const i0 = Math.floor(f), t = f - i0;
      index.push(src(i0)); weight.push(1 - t);
      if (t > 0 && i0 + 1 < nIn) { index.push(src(i0 + 1)); weight.push(t); }
    }
    count[o] = index.length - start[o];
  }
  return { start, count, index: Int32Array.from(index), weight: Float32Array.from(weight) };
}

/** Crop, flip and resample an 8-bit image according to a plan. */
export function applyViewport(img: RenderedImage, plan: ViewportPlan): RenderedImage {
  const { region, outWidth, outHeight } = plan;
  const c = img.channels;
  const identity = !region.flipX && !region.flipY && region.x === 0 && region.y === 0 &&
    region.w === img.width && region.h === img.height && outWidth === img.width && outHeight === img.height;
  if (identity) return img;
  const wx = axisWeights(region.w, outWidth, region.x, region.flipX);
  const wy = axisWeights(region.h, outHeight, region.y, region.flipY);
  // horizontal pass over the needed source rows only
  const tmp = new Float32Array(outWidth * region.h * c);
  for (let r = 0; r < region.h; r++) {
    const srcRow = (region.y + r) * img.width * c;
    const dstRow = r * outWidth * c;
    for (let o = 0; o < outWidth; o++) {
      const s0 = wx.start[o], n = wx.count[o];
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += img.data[srcRow + wx.index[s0 + k] * c + ch] * wx.weight[s0 + k];
        tmp[dstRow + o * c + ch] = acc;
      }
    }
  }
  // vertical pass; indices of wy are absolute source rows, tmp starts at region.y
  const out = new Uint8Array(outWidth * outHeight * c);
  const rowLen = outWidth * c;
  for (let o = 0; o < outHeight; o++) {
    const s0 = wy.start[o], n = wy.count[o];
    const dst = o * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += tmp[(wy.index[s0 + k] - region.y) * rowLen + i] * wy.weight[s0 + k];
      const v = Math.round(acc);
      out[dst + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width: outWidth, height: outHeight, channels: c, data: out };
}

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
import type { RenderedImage, RenderedImage16, RenderOptions } from './types';
import { fastPng } from './native';

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

/**
 * The area-averaging weights of one axis when the source is the image reduced 2^reduction times (a JPEG 2000 frame
 * decoded at a lower resolution, DecodedFrame.reduction): output index o covers the full-resolution interval
 * [o*s, (o+1)*s) of the region (mirrored when flipped), which falls on reduced pixels [A, B) with A, B in units of
 * 2^reduction, reduced pixel i standing for the 2^reduction pixels centred on 2^reduction*i; each reduced pixel
 * weighs by the part of [A, B) it covers. `nAvail`: the reduced image's size on
 * this axis (its last pixel may stand for a partial block).
 */
export function reducedAxisWeights(nIn: number, nOut: number, offset: number, flip: boolean, reduction: number, nAvail: number): AxisWeights {
  const f = 2 ** reduction;
  // The low-pass sample i of level r is centred on full-resolution pixel 2^r*i (ISO/IEC 15444-1 F.3.2: the
  // filters are centred on even samples), half a reduced pixel before the centre of the block [2^r*i, 2^r*(i+1)).
  const shift = f / 2 - 0.5;
  const start = new Int32Array(nOut), count = new Int32Array(nOut);
  const index: number[] = [], weight: number[] = [];
  const s = nIn / nOut;
  for (let o = 0; o < nOut; o++) {
    start[o] = index.length;
    const a = o * s, b = (o + 1) * s;
    const A = Math.max(0, (offset + (flip ? nIn - b : a) + shift) / f), B = Math.min(nAvail, (offset + (flip ? nIn - a : b) + shift) / f);
    const first = Math.max(0, Math.floor(A)), end = Math.min(nAvail, Math.ceil(B));
    const covered: Array<[number, number]> = [];
    let total = 0;
    for (let i = first; i < end; i++) {
      const cover = Math.min(B, i + 1) - Math.max(A, i);
      if (cover > 0) { covered.push([i, cover]); total += cover; }
    }
    if (covered.length === 0) covered.push([Math.min(nAvail - 1, first), total = 1]);
    // flipped: the source order is reversed, as axisWeights lists it
    if (flip) covered.reverse();
    for (const [i, cover] of covered) { index.push(i); weight.push(cover / total); }
    count[o] = index.length - start[o];
  }
  return { start, count, index: Int32Array.from(index), weight: Float32Array.from(weight) };
}

/**
 * How many resolution levels a frame may lose before this viewport (2^r <= the shrink factor on both axes): the
 * reduced image still has at least as many pixels as the output shows, so area averaging from it sees every
 * detail the thumbnail can show. 0 when the viewport does not shrink at least twice.
 */
export function viewportReduction(plan: ViewportPlan): number {
  const shrink = Math.min(plan.region.w / plan.outWidth, plan.region.h / plan.outHeight);
  let r = 0;
  while (2 ** (r + 1) <= shrink && r < 16) r++;
  return r;
}

/**
 * The weights of recent axes: a series of thumbnails, or a viewer's stack at one size, asks for the same ones
 * again (~0.1 ms each to make for 512 -> 256). At most 32 axes, a few KB each.
 */
const weightCache = new Map<string, AxisWeights>();
function weightsOf(nIn: number, nOut: number, offset: number, flip: boolean, reduction: number, nAvail: number): AxisWeights {
  const key = `${nIn},${nOut},${offset},${flip ? 1 : 0},${reduction},${nAvail}`;
  let w = weightCache.get(key);
  if (w) return w;
  w = reduction ? reducedAxisWeights(nIn, nOut, offset, flip, reduction, nAvail) : axisWeights(nIn, nOut, offset, flip);
  if (weightCache.size >= 32) weightCache.delete(weightCache.keys().next().value as string);
  weightCache.set(key, w);
  return w;
}

/**
 * Crop, flip and resample an 8-bit image according to a plan. `reduction`: the image is the frame reduced
 * 2^reduction times (viewportReduction bounds it); the plan stays in full-resolution pixels.
 */
export function applyViewport<I extends RenderedImage | RenderedImage16>(img: I, plan: ViewportPlan, reduction = 0): I {
  const { region, outWidth, outHeight } = plan;
  const c = img.channels;
  const identity = reduction === 0 && !region.flipX && !region.flipY && region.x === 0 && region.y === 0 &&
    region.w === img.width && region.h === img.height && outWidth === img.width && outHeight === img.height;
  if (identity) return img;
  const wx = weightsOf(region.w, outWidth, region.x, region.flipX, reduction, img.width);
  const wy = weightsOf(region.h, outHeight, region.y, region.flipY, reduction, img.height);
  // the source rows the vertical weights use
  let y0 = img.height, y1 = 0;
  for (let k = 0; k < wy.index.length; k++) { const y = wy.index[k]; if (y < y0) y0 = y; if (y >= y1) y1 = y + 1; }
  let data: Uint8Array | Uint16Array;
  if (fastPng?.resample && img.data instanceof Uint8Array) {
    data = new Uint8Array(outWidth * outHeight * c);
    fastPng.resample(img.data, img.width, img.height, c, wx, wy, y0, y1 - y0, data, outWidth, outHeight);
  } else {
    // 16-bit grey (bitdepth=16) always here
    data = resample(img.data, img.width, c, wx, wy, y0, y1 - y0, outWidth, outHeight);
  }
  return { width: outWidth, height: outHeight, channels: c, data } as I;
}

/**
 * Separable resampling (the C addon's resample does the same, faster): a horizontal pass over source rows y0 .. y0+rows-1 into 32-bit floats, then a vertical
 * pass rounding to 8 bits.
 */
export function resample<T extends Uint8Array | Uint16Array>(data: T, width: number, c: number, wx: AxisWeights, wy: AxisWeights, y0: number, rows: number, outWidth: number, outHeight: number): T {
  const tmp = new Float32Array(outWidth * rows * c);
  for (let r = 0; r < rows; r++) {
    const srcRow = (y0 + r) * width * c;
    const dstRow = r * outWidth * c;
    for (let o = 0; o < outWidth; o++) {
      const s0 = wx.start[o], n = wx.count[o];
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += data[srcRow + wx.index[s0 + k] * c + ch] * wx.weight[s0 + k];
        tmp[dstRow + o * c + ch] = acc;
      }
    }
  }
  // vertical pass; indices of wy are absolute source rows, tmp starts at y0; 16-bit samples (bitdepth=16) stay 16-bit
  const wide = data instanceof Uint16Array;
  const out = wide ? new Uint16Array(outWidth * outHeight * c) : new Uint8Array(outWidth * outHeight * c);
  const top = wide ? 65535 : 255;
  const rowLen = outWidth * c;
  for (let o = 0; o < outHeight; o++) {
    const s0 = wy.start[o], n = wy.count[o];
    const dst = o * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0; k < n; k++) acc += tmp[(wy.index[s0 + k] - y0) * rowLen + i] * wy.weight[s0 + k];
      const v = Math.round(acc);
      out[dst + i] = v < 0 ? 0 : v > top ? top : v;
    }
  }
  return out as T;
}

/**
 * Colour to 8-bit RGB (PS3.3 C.7.6.3.1.2 Photometric Interpretation), as DCMTK dcmimage renders it:
 * RGB kept, YBR_FULL / YBR_FULL_422 converted with DCMTK's integer tables (diybrpxt.h), YBR_PARTIAL_*
 * with the partial-range equations, PALETTE COLOR looked up (C.7.6.3.1.5/6, dipalpxt.h), and samples
 * of more than 8 bits reduced by shifting (dicoopxt.h "reduce depth"), fewer expanded by scaling.
 */
import type { LutData, PixelArray } from './types';
import { RenderError } from './errors';

/** Reduce or expand `bits`-bit samples to 8 bits, DCMTK style (shift right, or multiply and truncate). */
export function depthTo8(bits: number): (v: number) => number {
  if (bits === 8) return (v) => v;
  if (bits > 8) {
    const shift = bits - 8;
    return (v) => v >> shift;
  }
  const gradient = 255 / (2 ** bits - 1);
  return (v) => Math.trunc(v * gradient);
}

/** Interleaved RGB samples of `bits` bits to 8-bit RGB. */
export function rgbTo8(pixels: PixelArray, count: number, bits: number): Uint8Array {
  const out = new Uint8Array(count * 3);
  if (bits === 8 && pixels instanceof Uint8Array) {
    out.set(pixels.subarray(0, count * 3));
    return out;
  }
  const f = depthTo8(bits);
  const max = 255;
  for (let i = 0; i < count * 3; i++) {
    const v = f(pixels[i]);
    out[i] = v < 0 ? 0 : v > max ? max : v;
  }
  return out;
}

/**
 * YBR_FULL (and YBR_FULL_422 once upsampled) to RGB, PS3.3 C.7.6.3.1.2:
 *   R = Y + 1.402 (Cr - 128), G = Y - 0.3441 (Cb - 128) - 0.7141 (Cr - 128), B = Y + 1.772 (Cb - 128)
 * For 8-bit samples DCMTK precomputes four Sint16 tables with C casts (truncation toward zero) and
 * clips the sum; we build the same tables.
 */
export function ybrFullToRgb(pixels: PixelArray, count: number, bits: number): Uint8Array {
  const maxvalue = 2 ** bits - 1;
  const out = new Uint8Array(count * 3);
  const to8 = depthTo8(bits);
  if (bits === 8) {
    const rcr = new Int16Array(256), gcb = new Int16Array(256), gcr = new Int16Array(256), bcb = new Int16Array(256);
    const rConst = 0.701 * maxvalue, gConst = 0.5291 * maxvalue, bConst = 0.8859 * maxvalue;
    for (let i = 0; i < 256; i++) {
      rcr[i] = Math.trunc(1.402 * i - rConst);
      gcb[i] = Math.trunc(0.3441 * i);
      gcr[i] = Math.trunc(0.7141 * i - gConst);
      bcb[i] = Math.trunc(1.772 * i - bConst);
    }
    for (let i = 0, j = 0; i < count; i++, j += 3) {
      const y = pixels[j], cb = pixels[j + 1], cr = pixels[j + 2];
      const r = y + rcr[cr], g = y - gcb[cb] - gcr[cr], b = y + bcb[cb];
      out[j] = r < 0 ? 0 : r > 255 ? 255 : r;
      out[j + 1] = g < 0 ? 0 : g > 255 ? 255 : g;
      out[j + 2] = b < 0 ? 0 : b > 255 ? 255 : b;
    }
    return out;
  }
  const half = 2 ** (bits - 1) - 1; // DCMTK's offset maxval(bits - 1)
  const clip = (v: number) => (v < 0 ? 0 : v > maxvalue ? maxvalue : Math.trunc(v));
  for (let i = 0, j = 0; i < count; i++, j += 3) {
    const y = pixels[j], cb = pixels[j + 1] - half, cr = pixels[j + 2] - half;
    out[j] = to8(clip(y + 1.402 * cr));
    out[j + 1] = to8(clip(y - 0.3441 * cb - 0.7141 * cr));
    out[j + 2] = to8(clip(y + 1.772 * cb));
  }
  return out;
}

/**
 * YBR_FULL_422 (PS3.3 C.7.6.3.1.2) after upsampling, as DCMTK's DiYBR422PixelTemplate converts it: the
 * C.7.6.3.1.2 equations evaluated in double precision and truncated once, per output component.
 */
export function ybrFull422ToRgb(pixels: PixelArray, count: number, bits: number): Uint8Array {
  const maxvalue = 2 ** bits - 1;
  const out = new Uint8Array(count * 3);
  const to8 = depthTo8(bits);
  const clip = (v: number) => (v < 0 ? 0 : v > maxvalue ? maxvalue : Math.trunc(v));
  for (let i = 0, j = 0; i < count; i++, j += 3) {
    const y = pixels[j], cb = pixels[j + 1], cr = pixels[j + 2];
    out[j] = to8(clip(y + 1.402 * cr - 0.701 * maxvalue));
    out[j + 1] = to8(clip(y - 0.3441 * cb - 0.7141 * cr + 0.5291 * maxvalue));
    out[j + 2] = to8(clip(y + 1.772 * cb - 0.8859 * maxvalue));
  }
  return out;
}

/**
 * YBR_PARTIAL_422 / YBR_PARTIAL_420 (PS3.3 C.7.6.3.1.2, ITU-R BT.601 partial range), 8 bits:
 *   R = 1.1644 (Y - 16) + 1.5960 (Cr - 128), G = 1.1644 (Y - 16) - 0.3918 (Cb - 128) - 0.8130 (Cr - 128),
 *   B = 1.1644 (Y - 16) + 2.0172 (Cb - 128)
 */
export function ybrPartialToRgb(pixels: PixelArray, count: number, bits: number): Uint8Array {
  const out = new Uint8Array(count * 3);
  const scale = 2 ** (bits - 8);
  const to8 = depthTo8(bits);
  const maxvalue = 2 ** bits - 1;
  const clip = (v: number) => (v < 0 ? 0 : v > maxvalue ? maxvalue : Math.trunc(v));
  for (let i = 0, j = 0; i < count; i++, j += 3) {
    const y = 1.1644 * (pixels[j] - 16 * scale), cb = pixels[j + 1] - 128 * scale, cr = pixels[j + 2] - 128 * scale;
    out[j] = to8(clip(y + 1.596 * cr));
    out[j + 1] = to8(clip(y - 0.3918 * cb - 0.813 * cr));
    out[j + 2] = to8(clip(y + 2.0172 * cb));
  }
  return out;
}

/**
 * PALETTE COLOR (PS3.3 C.7.6.3.1.5): each stored value indexes the three LUTs (values below the first
 * mapped value take the first entry, beyond the last the last entry); entries are reduced to 8 bits
 * from the largest Bits Per Entry of the three (DCMTK: the palette image has that many bits per sample).
 * Precomputed as one RGB table per stored value.
 */
export function paletteTable(red: LutData, green: LutData, blue: LutData, storedMin: number, storedMax: number): Uint8Array {
  const bits = Math.max(red.bits, green.bits, blue.bits);
  const to8 = depthTo8(bits);
  const n = storedMax - storedMin + 1;
  const table = new Uint8Array(n * 3);
  const luts = [red, green, blue];
  for (let c = 0; c < 3; c++) {
    const l = luts[c];
    const last = l.data.length - 1;
    for (let i = 0; i < n; i++) {
      const k = storedMin + i - l.firstMapped;
      const v = to8(l.data[k <= 0 ? 0 : k >= last ? last : k]);
      table[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return table;
}

export function applyPalette(pixels: PixelArray, count: number, table: Uint8Array, storedMin: number): Uint8Array {
  const out = new Uint8Array(count * 3);
  const maxIndex = table.length / 3 - 1;
  for (let i = 0, j = 0; i < count; i++, j += 3) {
    let k = pixels[i] - storedMin;
    if (k < 0) k = 0; else if (k > maxIndex) k = maxIndex;
    const t = k * 3;
    out[j] = table[t];
    out[j + 1] = table[t + 1];
    out[j + 2] = table[t + 2];
  }
  return out;
}

/** Dispatch on the photometric interpretation the decoded frame now has. */
export function colourTo8(photometric: string, pixels: PixelArray, count: number, bits: number): Uint8Array {
  switch (photometric) {
    case 'RGB':
    case 'YBR_RCT': // decoders return reversible/irreversible colour transformed data as RGB
    case 'YBR_ICT':
      return rgbTo8(pixels, count, bits);
    case 'YBR_FULL':
      return ybrFullToRgb(pixels, count, bits);
    case 'YBR_FULL_422':
      return ybrFull422ToRgb(pixels, count, bits);
    case 'YBR_PARTIAL_422':
    case 'YBR_PARTIAL_420':
      return ybrPartialToRgb(pixels, count, bits);
    default:
      throw new RenderError('BAD_PIXELS', `cannot render photometric interpretation ${photometric}`, 422);
  }
}

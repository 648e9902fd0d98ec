/**
 * The grey pipeline of PS3.3 C.11 / PS3.4 N.2 as small steps, one per section of the standard, each a
 * plain function from one value to the next. They are composed once per (description, frame, window) and
 * flattened into one Uint8Array indexed by (stored value - minimum stored value) (see flatten()).
 *
 * The arithmetic follows DCMTK 3.6.7 (dcmimgle dimoipxt.h, dimoopxt.h) so that our output matches
 * dcm2pnm pixel for pixel: intermediate (modality) values are integers, output values are truncated
 * (C cast), not rounded.
 */
import type { LutData, ModalityLutDescription, VoiLutFunction } from './types';

/** One step: a value in, a value out. */
export type Step = (x: number) => number;

/* ---------------------------------------------------------------------------------------------- */
/* C.11.1 Modality LUT                                                                            */
/* ---------------------------------------------------------------------------------------------- */

/**
 * PS3.3 C.11.1.2 Rescale Slope / Intercept: output units = m*SV + b.
 * DCMTK keeps the intermediate representation in an integer type, converting with a C cast
 * (truncation toward zero); we do the same so min-max windows and LUT indices agree with it.
 */
export function modalityRescale(slope: number, intercept: number): Step {
  if (slope === 1 && intercept === 0) return (x) => x;
  return (x) => Math.trunc(x * slope + intercept);
}

/**
 * PS3.3 C.11.1.1 Modality LUT Sequence: values below the first mapped value map to the first entry,
 * values beyond the last entry map to the last entry (C.11.1.1.1).
 */
export function modalityLutSequence(lut: LutData): Step {
  return lutLookup(lut);
}

export function modalityStep(m: ModalityLutDescription): Step {
  return m.kind === 'rescale' ? modalityRescale(m.slope, m.intercept) : modalityLutSequence(m.lut);
}

/** Table lookup with the clamping rule of C.11.1.1.1 / C.11.2.1.1. */
export function lutLookup(lut: LutData): Step {
  const first = lut.firstMapped;
  const data = lut.data;
  const last = data.length - 1;
  return (x) => {
    const i = x - first;
    return i <= 0 ? data[0] : i >= last ? data[last] : data[Math.trunc(i)];
  };
}

/* ---------------------------------------------------------------------------------------------- */
/* C.11.2 VOI LUT. Each step maps a modality value to an output value in [low, high]; low > high   */
/* means the output is inverted (MONOCHROME1 or Presentation LUT Shape INVERSE, C.11.6), which is   */
/* how DCMTK folds the inversion into the window arithmetic.                                       */
/* ---------------------------------------------------------------------------------------------- */

/**
 * PS3.3 C.11.2.1.2.1 LINEAR:
 *   if (x <= c - 0.5 - (w-1)/2), y = ymin
 *   else if (x > c - 0.5 + (w-1)/2), y = ymax
 *   else y = ((x - (c - 0.5)) / (w-1) + 0.5) * (ymax - ymin) + ymin
 * evaluated as DCMTK does (offset + x * gradient, truncated) for bit-exact agreement.
 */
export function voiLinear(center: number, width: number, low: number, high: number): Step {
  const width1 = width - 1;
  const left = center - 0.5 - width1 / 2;
  const right = center - 0.5 + width1 / 2;
  const outrange = high - low;
  const offset = width1 === 0 ? 0 : high - ((center - 0.5) / width1 + 0.5) * outrange;
  const gradient = width1 === 0 ? 0 : outrange / width1;
  return (x) => (x <= left ? low : x > right ? high : Math.trunc(offset + x * gradient));
}

/**
 * PS3.3 C.11.2.1.3.2 LINEAR_EXACT:
 *   if (x <= c - w/2), y = ymin
 *   else if (x > c + w/2), y = ymax
 *   else y = ((x - c) / w + 0.5) * (ymax - ymin) + ymin
 * (DCMTK 3.6.7 has no LINEAR_EXACT; output truncated like its other functions.)
 */
export function voiLinearExact(center: number, width: number, low: number, high: number): Step {
  const left = center - width / 2;
  const right = center + width / 2;
  const outrange = high - low;
  return (x) => (x <= left ? low : x > right ? high : Math.trunc(((x - center) / width + 0.5) * outrange + low));
}

/**
 * PS3.3 C.11.2.1.3.1 SIGMOID: y = (ymax - ymin) / (1 + exp(-4 (x - c) / w)) + ymin, truncated
 * (DCMTK dimoopxt.h sigmoid(): OFstatic_cast(T3, outrange / (1 + exp(-4 * (value - center) / width)))).
 */
export function voiSigmoid(center: number, width: number, low: number, high: number): Step {
  const outrange = high - low;
  return (x) => Math.trunc(low + outrange / (1 + Math.exp((-4 * (x - center)) / width)));
}

/**
 * PS3.3 C.11.2.1.1 VOI LUT Sequence: the modality value indexes the LUT (clamped to its first and last
 * entries), and the entry, of `bits` bits, is scaled to the output range as DCMTK does
 * (low + entry * (high - low + 1) / 2^bits, truncated).
 */
export function voiLutSequence(lut: LutData, low: number, high: number): Step {
  const lookup = lutLookup(lut);
  const gradient = (high - low + 1) / 2 ** lut.bits;
  return (x) => Math.trunc(low + lookup(x) * gradient);
}

export function voiWindowStep(fn: VoiLutFunction, center: number, width: number, low: number, high: number): Step {
  switch (fn) {
    case 'LINEAR_EXACT':
      return voiLinearExact(center, width, low, high);
    case 'SIGMOID':
      return voiSigmoid(center, width, low, high);
    default:
      return voiLinear(center, width, low, high);
  }
}

/**
 * DCMTK's "+Wm" automatic window from the frame's minimum and maximum modality values
 * (dimopxt.h getMinMaxWindow: center = (min + max + 1) / 2, width = max - min + 1), which per
 * C.11.2.1.2.1 maps exactly [min, max] onto the output range.
 */
export function minMaxWindow(min: number, max: number): { center: number; width: number } {
  return { center: (min + max + 1) / 2, width: max - min + 1 };
}

/* ---------------------------------------------------------------------------------------------- */
/* Flattening: one table per stored value (DCMTK "precompute, then loop").                         */
/* ---------------------------------------------------------------------------------------------- */

/** Compose steps left to right. */
export function compose(...steps: Step[]): Step {
  if (steps.length === 1) return steps[0];
  return (x) => {
    let v = x;
    for (const s of steps) v = s(v);
    return v;
  };
}

/** Output tables: 8-bit (the usual image) or 16-bit (bitdepth=16, PNG only). */
export type OutTable = Uint8Array | Uint16Array;

/**
 * Flatten a composed pipeline into a table indexed by (stored value - storedMin), clamped to 0..255 (or, with
 * bits 16, 0..65535). The hot loop is then out[i] = table[pixel[i] - storedMin].
 */
export function flatten(step: Step, storedMin: number, storedMax: number): Uint8Array;
export function flatten(step: Step, storedMin: number, storedMax: number, bits: 16): Uint16Array;
export function flatten(step: Step, storedMin: number, storedMax: number, bits: 8 | 16 = 8): OutTable {
  const n = storedMax - storedMin + 1;
  const top = bits === 16 ? 65535 : 255;
  const table = bits === 16 ? new Uint16Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const v = step(storedMin + i);
    table[i] = v <= 0 ? 0 : v >= top ? top : v;
  }
  return table;
}

/** Stored value range of BitsStored / PixelRepresentation (PS3.5 8.1.1). */
export function storedRange(bitsStored: number, signed: boolean): { min: number; max: number } {
  return signed
    ? { min: -(2 ** (bitsStored - 1)), max: 2 ** (bitsStored - 1) - 1 }
    : { min: 0, max: 2 ** bitsStored - 1 };
}

/**
 * flatten() for a step known to be monotone (non-decreasing or non-increasing) over the stored range, as
 * Rescale Slope/Intercept composed with a LINEAR or LINEAR_EXACT window is (every operation in them, IEEE
 * multiply and add, truncation and clamping, is monotone). Where the clamped output is equal at both ends of
 * an interval it is equal inside it, so the interval is filled without evaluating it; intervals are halved
 * until that holds. A window over 400 of 65536 stored values costs a few hundred evaluations instead of
 * 65536 (test/render-lut.test.ts checks it against flatten() on random windows).
 */
export function flattenMonotone(step: Step, storedMin: number, storedMax: number): Uint8Array;
export function flattenMonotone(step: Step, storedMin: number, storedMax: number, bits: 16): Uint16Array;
export function flattenMonotone(step: Step, storedMin: number, storedMax: number, bits: 8 | 16 = 8): OutTable {
  const n = storedMax - storedMin + 1;
  const top = bits === 16 ? 65535 : 255;
  const table = bits === 16 ? new Uint16Array(n) : new Uint8Array(n);
  const at = (i: number): number => {
    const v = step(storedMin + i);
    return v <= 0 ? 0 : v >= top ? top : v | 0; // as a typed array store: truncation, NaN -> 0
  };
  const fill = (lo: number, hi: number, vlo: number, vhi: number): void => {
    for (;;) {
      if (vlo === vhi) { table.fill(vlo, lo, hi + 1); return; }
      if (hi - lo <= 1) { table[lo] = vlo; table[hi] = vhi; return; }
      const mid = (lo + hi) >>> 1;
      const vm = at(mid);
      fill(lo, mid, vlo, vm);
      lo = mid; vlo = vm;
    }
  };
  fill(0, n - 1, at(0), at(n - 1));
  return table;
}

/**
 * A table indexed by the bit pattern of a sample of `patternBits` bits (8 or 16 for typed arrays), read as signed or unsigned,
 * from a table indexed by (stored value - storedMin): pattern[w] = table[clamp(value(w) - storedMin)]. The
 * per-pixel loop then needs no subtraction and no clamping, and reads every integer typed array the decoders
 * give (Int16Array, Uint8Array, ...) through one unsigned view. Built from block copies and fills.
 */
export function patternTable<T extends OutTable>(table: T, storedMin: number, patternBits: number, signed: boolean, reuse?: T): T {
  const size = 1 << patternBits;
  const pattern = reuse?.length === size ? reuse : newLike(table, size);
  const last = table.length - 1;
  // pattern[p0 + k] = table[clamp(s0 + k - storedMin)] for k in [0, n)
  const map = (p0: number, s0: number, n: number) => {
    let k = 0;
    const below = Math.min(n, Math.max(0, storedMin - s0));
    if (below > 0) { pattern.fill(table[0], p0, p0 + below); k = below; }
    const inEnd = Math.min(n, storedMin + last - s0 + 1);
    if (inEnd > k) { pattern.set(table.subarray(s0 + k - storedMin, s0 + inEnd - storedMin), p0 + k); k = inEnd; }
    if (k < n) pattern.fill(table[last], p0 + k, p0 + n);
  };
  if (!signed) map(0, 0, size);
  else { map(0, 0, size / 2); map(size / 2, -size / 2, size / 2); }
  return pattern;
}

/**
 * patternTable() for packed 16-bit words (DecodedFrame.packedShift): the stored value of word w is its bits
 * shift .. shift+bits-1, sign-extended when signed. With shift 0 the table is one block of 2^bits entries
 * repeated; otherwise every word is worked out. `reuse`, when it has the table's size, is overwritten and returned.
 */
export function packedPatternTable<T extends OutTable>(table: T, storedMin: number, bits: number, shift: number, signed: boolean, reuse?: T): T {
  if (reuse?.length !== 65536) reuse = undefined;
  if (shift === 0 && bits >= 1 && bits <= 16) {
    const block = patternTable(table, storedMin, bits, signed, bits === 16 ? reuse : undefined);
    if (bits === 16) return block;
    const pattern = reuse ?? newLike(table, 65536);
    pattern.set(block.subarray(0, 1 << bits));
    for (let filled = 1 << bits; filled < 65536; filled *= 2) pattern.copyWithin(filled, 0, filled);
    return pattern;
  }
  const pattern = reuse ?? newLike(table, 65536);
  const up = 32 - bits - shift, down = 32 - bits, mask = bits >= 32 ? -1 : (1 << bits) - 1;
  const last = table.length - 1;
  for (let w = 0; w < 65536; w++) {
    const v = signed ? (w << up) >> down : (w >>> shift) & mask;
    const k = v - storedMin;
    pattern[w] = table[k < 0 ? 0 : k > last ? last : k];
  }
  return pattern;
}

/** A new table of the same element type as `like`. */
function newLike<T extends OutTable>(like: T, size: number): T {
  return (like instanceof Uint16Array ? new Uint16Array(size) : new Uint8Array(size)) as T;
}

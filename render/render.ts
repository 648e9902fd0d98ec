/**
 * renderFrame: one decoded frame + its ImageDescription + request options -> 8-bit pixels.
 *
 * Grey (PS3.4 N.2, PS3.3 C.11): Modality LUT -> VOI LUT (requested window, else the file's first window,
 * else its first VOI LUT Sequence item, else DCMTK's "+Wm" min-max window over this frame) -> Presentation
 * LUT Shape / MONOCHROME1 inversion -> 8 bits, composed and flattened into ONE table indexed by stored value
 * (cached, bounded LRU); the per-pixel loop is a single indexed read. Float pixel data is computed directly.
 * Colour: see colour.ts. Then overlays (overlay.ts) and the viewport (viewport.ts).
 */
import { RenderError } from './errors';
import { compose, flatten, flattenMonotone, lutLookup, packedPatternTable, patternTable, minMaxWindow, modalityStep, storedRange, voiLutSequence, voiWindowStep, type Step } from './lut';
import { applyPalette, colourTo8, paletteTable } from './colour';
import { burnOverlays, type PixelWords } from './overlay';
import { LITTLE_ENDIAN_HOST, unpackSamples } from './codecs/samples';
import { applyViewport, planViewport, viewportReduction } from './viewport';
import { fastPng } from './native';
import { finishPresentation, presentedDescription } from './presentation-state';
import type {
  DecodedFrame, ImageDescription, LutData, ModalityLutDescription, RenderedImage, RenderedImage16, RenderOptions, VoiDescription, VoiLutFunction,
} from './types';

/* ---------------------------------------------------------------------------------------------- */
/* Bounded LRU of flattened tables                                                                 */
/* ---------------------------------------------------------------------------------------------- */

export class LruCache<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly capacity: number) {}
  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) { this.map.delete(key); this.map.set(key, v); }
    return v;
  }
  /** Adds `v` under `key`; returns the least recently used value if it was evicted to make room. */
  set(key: string, v: V): V | undefined {
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size <= this.capacity) return undefined;
    const [oldest, gone] = this.map.entries().next().value as [string, V];
    this.map.delete(oldest);
    return gone;
  }
  get size(): number { return this.map.size; }
  clear(): void { this.map.clear(); }
}

/**
 * At most 64 tables of at most 64 KiB (16-bit stored values or patterns): 4 MiB per thread. A table costs
 * 0.05-0.1 ms to build for a linear window (flattenMonotone), so more would buy little and cost memory.
 */
export const tableCache = new LruCache<Uint8Array>(64);

/**
 * The last pattern table evicted from tableCache, refilled for the next table of its size instead of a new one.
 * A viewer dragging the window makes a new table per image, so without this every image would leave a 64 KiB
 * table behind, and having outlived many minor collections in the cache it is garbage only a major collection
 * frees: ~20 MB per worker per few hundred images (bench/memory.ts).
 */
let spareTable: Uint8Array | undefined;

/* ---------------------------------------------------------------------------------------------- */
/* Per-frame parameters (PS3.3 C.7.6.16: Per-Frame overrides Shared overrides the image level)     */
/* ---------------------------------------------------------------------------------------------- */

export function frameModalityLut(desc: ImageDescription, frameNumber: number): ModalityLutDescription {
  return desc.perFrameGroups?.[frameNumber - 1]?.modalityLut ?? desc.sharedGroup?.modalityLut ?? desc.modalityLut;
}

export function frameVoi(desc: ImageDescription, frameNumber: number): VoiDescription {
  return desc.perFrameGroups?.[frameNumber - 1]?.voi ?? desc.sharedGroup?.voi ?? desc.voi;
}

/** PS3.3 C.11.6 / C.7.6.3.1.2: MONOCHROME1 shows minimum values white; Presentation LUT Shape, when the
 *  image has one, says explicitly whether the output is inverted. */
export function isInverted(desc: ImageDescription): boolean {
  if (desc.presentationLutShape) return desc.presentationLutShape === 'INVERSE';
  return desc.frame.photometricInterpretation === 'MONOCHROME1';
}

/** The VOI actually applied: a window, a VOI LUT item, or the automatic min-max window. */
export type ResolvedVoi =
  | { kind: 'window'; center: number; width: number; fn: VoiLutFunction }
  | { kind: 'lut'; index: number }
  | { kind: 'minmax' }
  /** a presentation state without Softcopy VOI LUT: no VOI transformation (DCMTK setNoVoiTransformation) */
  | { kind: 'none' };

export function resolveVoi(voi: VoiDescription, opts: RenderOptions): ResolvedVoi {
  if (opts.window) return { kind: 'window', center: opts.window.center, width: opts.window.width, fn: opts.window.function ?? 'LINEAR' };
  if (opts.presentation?.voi.kind === 'none') return { kind: 'none' };
  const w = voi.windows.find((x) => x.width >= 1 || (x.width > 0 && voi.function !== 'LINEAR'));
  if (w) return { kind: 'window', center: w.center, width: w.width, fn: voi.function };
  if (voi.luts.length > 0) return { kind: 'lut', index: 0 };
  return { kind: 'minmax' };
}

/* ---------------------------------------------------------------------------------------------- */
/* Validation                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

export function validateOptions(opts: RenderOptions): void {
  if (opts.window) {
    const { center, width } = opts.window;
    const fn = opts.window.function ?? 'LINEAR';
    if (fn !== 'LINEAR' && fn !== 'LINEAR_EXACT' && fn !== 'SIGMOID') throw new RenderError('BAD_WINDOW', `unknown VOI LUT function ${String(fn)}`);
    if (typeof center !== 'number' || !Number.isFinite(center)) throw new RenderError('BAD_WINDOW', 'window center must be a number');
    if (typeof width !== 'number' || !Number.isFinite(width)) throw new RenderError('BAD_WINDOW', 'window width must be a number');
    // C.11.2.1.2.1: LINEAR needs width >= 1; C.11.2.1.3: LINEAR_EXACT and SIGMOID need width > 0
    if (fn === 'LINEAR' ? width < 1 : width <= 0) throw new RenderError('BAD_WINDOW', `window width ${width} out of range for ${fn}`);
  }
  if (opts.overlayColor !== undefined) {
    const c = opts.overlayColor;
    if (!Array.isArray(c) || c.length !== 3 || !c.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
      throw new RenderError('BAD_OPTION', 'overlay colour must be three integers 0..255');
    }
  }
  if (opts.overlays !== undefined && typeof opts.overlays !== 'boolean') throw new RenderError('BAD_OPTION', 'overlays must be true or false');
  if (opts.invert !== undefined && typeof opts.invert !== 'boolean') throw new RenderError('BAD_OPTION', 'invert must be true or false');
}

/* ---------------------------------------------------------------------------------------------- */
/* Grey                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

function isFloatArray(p: unknown): p is Float32Array | Float64Array {
  return p instanceof Float32Array || p instanceof Float64Array;
}

/**
 * Stored values that are padding (PS3.3 C.7.5.1.1.2): Pixel Padding Value alone, or the range from it to Pixel Padding
 * Range Limit, inclusive, whichever way round they are given.
 */
export function paddingRange(desc: ImageDescription): { lo: number; hi: number } | undefined {
  const v = desc.pixelPaddingValue;
  if (v === undefined) return undefined;
  const l = desc.pixelPaddingRangeLimit ?? v;
  return { lo: Math.min(v, l), hi: Math.max(v, l) };
}

/**
 * Min and max modality value over the frame, the automatic window's input (DCMTK +Wm: this frame only). Pixels
 * whose stored value is padding (`pad`) are left out, as PS3.3 C.7.5.1.1.2 asks (DCMTK 3.6.7 counts them; our
 * fixture's reference is its +Wm of a copy without the padding, test/fixtures/issue16); a frame of padding only
 * falls back to all pixels.
 */
function modalityMinMax(pixels: ArrayLike<number>, count: number, modality: Step, pad?: { lo: number; hi: number }): { min: number; max: number } {
  let smin = Infinity, smax = -Infinity;
  if (pad) {
    const { lo, hi } = pad;
    for (let i = 0; i < count; i++) {
      const v = pixels[i];
      if (v >= lo && v <= hi) continue;
      if (v < smin) smin = v;
      if (v > smax) smax = v;
    }
  }
  if (smin === Infinity) {
    for (let i = 0; i < count; i++) {
      const v = pixels[i];
      if (v < smin) smin = v;
      if (v > smax) smax = v;
    }
  }
  // the modality step may be non-monotonic (a Modality LUT): scan the stored range present
  let min = Infinity, max = -Infinity;
  if (smax - smin <= 65536 && Number.isInteger(smin)) {
    for (let s = smin; s <= smax; s++) {
      const m = modality(s);
      if (m < min) min = m;
      if (m > max) max = m;
    }
  } else {
    const a = modality(smin), b = modality(smax);
    min = Math.min(a, b); max = Math.max(a, b);
  }
  return { min, max };
}

function voiStep(desc: ImageDescription, voi: VoiDescription, r: ResolvedVoi, low: number, high: number, mm: () => { min: number; max: number },
  abs: () => { min: number; max: number } = mm, plut?: LutData): Step {
  if (plut) return presentationLutStep(voi, r, plut, low, high, mm, abs);
  if (r.kind === 'none') {
    // DCMTK dimoopxt.h nowindow(): the whole range of possible modality values, linearly, truncated
    const { min, max } = abs();
    const gradient = max > min ? (high - low) / (max - min) : 0;
    return (x) => Math.trunc(low + (x - min) * gradient);
  }
  if (r.kind === 'window') return voiWindowStep(r.fn, r.center, r.width, low, high);
  if (r.kind === 'lut') return voiLutSequence(voi.luts[r.index], low, high);
  const { min, max } = mm();
  const w = minMaxWindow(min, max);
  return voiWindowStep('LINEAR', w.center, w.width, low, high);
}

/**
 * VOI followed by a Presentation LUT Sequence table (PS3.3 C.11.6), as DCMTK dimoopxt.h does with a presentation
 * LUT and no display function: the VOI output indexes the table (its count of entries spanning the window, the
 * VOI LUT's range or the whole modality range), and the entry, of `bits` bits, is scaled to the output range.
 * SIGMOID and LINEAR_EXACT windows index it through their own curve (DCMTK has only the linear case).
 */
function presentationLutStep(voi: VoiDescription, r: ResolvedVoi, plut: LutData, low: number, high: number,
  mm: () => { min: number; max: number }, abs: () => { min: number; max: number }): Step {
  const pcnt = plut.data.length;
  const entry = (i: number) => plut.data[i < 0 ? 0 : i >= pcnt ? pcnt - 1 : i];
  const outrange = high - low;
  const plutMax = 2 ** plut.bits;
  if (r.kind === 'lut') {
    const lut = voi.luts[r.index];
    const lookup = lutLookup(lut);
    const g1 = pcnt / 2 ** lut.bits, g2 = outrange / plutMax;
    return (x) => Math.trunc(low + entry(Math.trunc(lookup(x) * g1)) * g2);
  }
  if (r.kind === 'none') {
    const { min, max } = abs();
    const g1 = pcnt / (max - min + 1), g2 = outrange / (plutMax - 1);
    return (x) => Math.trunc(low + entry(Math.trunc((x - min) * g1)) * g2);
  }
  const w = r.kind === 'window' ? r : { ...minMaxWindow(mm().min, mm().max), fn: 'LINEAR' as VoiLutFunction };
  const g2 = outrange / (plutMax - 1);
  if (w.fn === 'LINEAR') {
    const width1 = w.width - 1;
    const left = w.center - 0.5 - width1 / 2, right = w.center - 0.5 + width1 / 2;
    const g1 = width1 === 0 ? 0 : (pcnt - 1) / width1;
    return (x) => Math.trunc(low + entry(x <= left ? 0 : x > right ? pcnt - 1 : Math.trunc((x - left) * g1)) * g2);
  }
  const curve = voiWindowStep(w.fn, w.center, w.width, 0, pcnt - 1);
  return (x) => Math.trunc(low + entry(curve(x)) * g2);
}

/**
 * The range of possible modality values (DCMTK dimomod.cc AbsMinimum / AbsMaximum): the stored range through
 * the rescale, or 0 .. 2^bits - 1 for a Modality LUT.
 */
function modalityAbsRange(m: ModalityLutDescription, range: { min: number; max: number }): { min: number; max: number } {
  if (m.kind === 'lut') return { min: 0, max: 2 ** m.lut.bits - 1 };
  const a = range.min * m.slope + m.intercept, b = range.max * m.slope + m.intercept;
  return { min: Math.min(a, b), max: Math.max(a, b) };
}

/** The VOI a grey rendering applies, for display (burnt-in annotations); undefined for colour. */
export type AppliedVoi =
  | { kind: 'window'; center: number; width: number; function: VoiLutFunction; auto: boolean }
  | { kind: 'lut'; explanation?: string };

/**
 * What renderGrey applies to this frame: the requested window, the image's, its VOI LUT, or the automatic
 * min-max window (computed again here over the frame, as renderGrey does, so its pixels stay untouched).
 */
export function appliedVoi(desc: ImageDescription, frameNumber: number, decoded: DecodedFrame, opts: RenderOptions = {}): AppliedVoi | undefined {
  if (decoded.samplesPerPixel !== 1 || decoded.photometricInterpretation.toUpperCase() === 'PALETTE COLOR') return undefined;
  if (opts.presentation) desc = presentedDescription(desc, opts.presentation);
  const voi = frameVoi(desc, frameNumber);
  const r = resolveVoi(voi, opts);
  if (r.kind === 'none') return undefined; // a presentation state without VOI: nothing to show
  if (r.kind === 'window') return { kind: 'window', center: r.center, width: r.width, function: r.fn, auto: false };
  if (r.kind === 'lut') return { kind: 'lut', explanation: voi.luts[r.index].explanation };
  const pixels = storedValues(decoded);
  const modality: Step = isFloatArray(pixels) ? (x) => x : modalityStep(frameModalityLut(desc, frameNumber));
  const { min, max } = modalityMinMax(pixels, decoded.rows * decoded.columns, modality, isFloatArray(pixels) ? undefined : paddingRange(desc));
  const w = minMaxWindow(min, max);
  return { kind: 'window', center: w.center, width: w.width, function: 'LINEAR', auto: true };
}

/** The frame's stored values: its pixels, or, for packed native words (DecodedFrame.packedShift), extracted. */
export function storedValues(decoded: DecodedFrame): DecodedFrame['pixels'] {
  const shift = decoded.packedShift;
  if (shift === undefined) return decoded.pixels;
  const words = decoded.pixels as Uint16Array;
  const n = decoded.rows * decoded.columns;
  return unpackSamples(new Uint8Array(words.buffer, words.byteOffset, n * 2), n, 16, false, shift, decoded.bitsStored, decoded.signed, false);
}

/**
 * Whether the grey output runs from white to black: the image's own polarity (isInverted) flipped by the
 * `invert` option (a server extension: the whole output after VOI and Presentation LUT, so MONOCHROME1 with
 * invert looks like MONOCHROME2). Folded into the VOI's output range as DCMTK folds its polarity (dcm2pnm +P).
 */
export function outputInverted(desc: ImageDescription, opts: RenderOptions): boolean {
  return isInverted(desc) !== (opts.invert === true);
}

export function renderGrey(desc: ImageDescription, frameNumber: number, decoded: DecodedFrame, opts: RenderOptions, into?: Uint8Array): Uint8Array {
  const count = decoded.rows * decoded.columns;
  const pixels = decoded.pixels;
  const plut = opts.presentation && 'lut' in opts.presentation.presentationLut ? opts.presentation.presentationLut.lut : undefined;
  // with a Presentation LUT table the inversion scales its entries (presentationLutStep): the output still flips
  const inverted = (!plut && isInverted(desc)) !== (opts.invert === true);
  const low = inverted ? 255 : 0, high = inverted ? 0 : 255;
  const voi = frameVoi(desc, frameNumber);
  const resolved = resolveVoi(voi, opts);
  const out = into && into.length >= count ? into.subarray(0, count) : new Uint8Array(count);

  if (isFloatArray(pixels)) {
    // Float / Double Float Pixel Data (C.7.6.24): values are already in output units; no table.
    const step = voiStep(desc, voi, resolved, low, high, () => modalityMinMax(pixels, count, (x) => x), undefined, plut);
    for (let i = 0; i < count; i++) {
      const v = step(pixels[i]);
      out[i] = v <= 0 ? 0 : v >= 255 ? 255 : v;
    }
    return out;
  }

  const modality = modalityStep(frameModalityLut(desc, frameNumber));
  const range = storedRange(decoded.bitsStored, decoded.signed);
  if (decoded.bitsStored > 16) {
    const step = compose(modality, voiStep(desc, voi, resolved, low, high, () => modalityMinMax(pixels, count, modality, paddingRange(desc)), () => modalityAbsRange(frameModalityLut(desc, frameNumber), range), plut));
    for (let i = 0; i < count; i++) {
      const v = step(pixels[i]);
      out[i] = v <= 0 ? 0 : v >= 255 ? 255 : v;
    }
    return out;
  }

  let mm: { min: number; max: number } | undefined;
  const getMinMax = () => (mm ??= modalityMinMax(storedValues(decoded), count, modality, paddingRange(desc)));
  const voiKey = resolved.kind === 'window' ? `w${resolved.center},${resolved.width},${resolved.fn}`
    : resolved.kind === 'lut' ? `l${resolved.index}` : resolved.kind === 'none' ? 'n' : `m${getMinMax().min},${getMinMax().max}`;
  const key = desc.sopInstanceUID ? `${desc.sopInstanceUID}|${frameNumber}|${voiKey}|${inverted ? 1 : 0}|${range.min}|${range.max}` : undefined;
  // Rescale composed with a linear window (or the min-max one) is monotone: flattenMonotone fills it in runs.
  const monotone = !plut && frameModalityLut(desc, frameNumber).kind === 'rescale' && (resolved.kind === 'minmax' || resolved.kind === 'none' || (resolved.kind === 'window' && resolved.fn !== 'SIGMOID'));
  const storedTable = () => (monotone ? flattenMonotone : flatten)(compose(modality, voiStep(desc, voi, resolved, low, high, getMinMax, () => modalityAbsRange(frameModalityLut(desc, frameNumber), range), plut)), range.min, range.max);

  const packed = decoded.packedShift !== undefined;
  const view = packed ? { words: pixels as Uint16Array, bits: 16 as const, signed: decoded.signed } : patternView(pixels, count);
  if (view) {
    // One table indexed by the sample's bit pattern (masking and sign extension of packed words folded in):
    // the loop is a single read per pixel, four pixels per step.
    const pkey = key && `${key}|p${view.bits}${view.signed ? 's' : 'u'}${packed ? `k${decoded.packedShift}` : ''}`;
    let pattern = pkey ? tableCache.get(pkey) : undefined;
    if (!pattern) {
      const reuse = spareTable;
      spareTable = undefined;
      pattern = packed ? packedPatternTable(storedTable(), range.min, decoded.bitsStored, decoded.packedShift!, decoded.signed, reuse)
        : patternTable(storedTable(), range.min, view.bits, view.signed, reuse);
      const evicted = pkey ? tableCache.set(pkey, pattern) : undefined;
      spareTable = evicted ?? (pattern === reuse ? undefined : reuse);
    }
    if (fastPng) fastPng.lookup(view.words, pattern, out, count);
    else if (view.bits === 16) lookup16(view.words as Uint16Array, pattern, out, count);
    else lookup8(view.words as Uint8Array, pattern, out, count);
    return out;
  }

  let table = key ? tableCache.get(key) : undefined;
  if (!table) {
    table = storedTable();
    if (key) tableCache.set(key, table);
  }
  const min = range.min;
  const last = table.length - 1;
  for (let i = 0; i < count; i++) {
    let k = pixels[i] - min;
    if (k > last) k = last; else if (k < 0) k = 0; // decoder gave values outside BitsStored
    out[i] = table[k];
  }
  return out;
}

/** 16-bit tables (128 KiB each for 16-bit stored values): few, as 16-bit output is a rare request. */
export const tableCache16 = new LruCache<Uint16Array>(8);

/**
 * The grey pipeline at 16-bit output precision (bitdepth=16): the same steps as renderGrey with the VOI output
 * range 0..65535 (PS3.3 C.11.2.1.2: ymin..ymax are the output range), so each step's arithmetic and truncation is
 * DCMTK's for 16-bit output (dcm2pnm +on2), not an 8-bit image scaled up.
 */
export function renderGrey16(desc: ImageDescription, frameNumber: number, decoded: DecodedFrame, opts: RenderOptions): Uint16Array {
  const count = decoded.rows * decoded.columns;
  const pixels = decoded.pixels;
  const inverted = outputInverted(desc, opts);
  const low = inverted ? 65535 : 0, high = inverted ? 0 : 65535;
  const voi = frameVoi(desc, frameNumber);
  const resolved = resolveVoi(voi, opts);
  const out = new Uint16Array(count);
  const clampLoop = (step: Step) => {
    for (let i = 0; i < count; i++) {
      const v = step(pixels[i]);
      out[i] = v <= 0 ? 0 : v >= 65535 ? 65535 : v;
    }
    return out;
  };
  if (isFloatArray(pixels)) return clampLoop(voiStep(desc, voi, resolved, low, high, () => modalityMinMax(pixels, count, (x) => x)));
  const modality = modalityStep(frameModalityLut(desc, frameNumber));
  const range = storedRange(decoded.bitsStored, decoded.signed);
  const abs = () => modalityAbsRange(frameModalityLut(desc, frameNumber), range);
  if (decoded.bitsStored > 16) return clampLoop(compose(modality, voiStep(desc, voi, resolved, low, high, () => modalityMinMax(pixels, count, modality), abs)));

  let mm: { min: number; max: number } | undefined;
  const getMinMax = () => (mm ??= modalityMinMax(storedValues(decoded), count, modality));
  const voiKey = resolved.kind === 'window' ? `w${resolved.center},${resolved.width},${resolved.fn}`
    : resolved.kind === 'lut' ? `l${resolved.index}` : resolved.kind === 'none' ? 'n' : `m${getMinMax().min},${getMinMax().max}`;
  const monotone = frameModalityLut(desc, frameNumber).kind === 'rescale' && (resolved.kind === 'minmax' || resolved.kind === 'none' || (resolved.kind === 'window' && resolved.fn !== 'SIGMOID'));
  const storedTable = () => {
    const step = compose(modality, voiStep(desc, voi, resolved, low, high, getMinMax, abs));
    return monotone ? flattenMonotone(step, range.min, range.max, 16) : flatten(step, range.min, range.max, 16);
  };
  const packed = decoded.packedShift !== undefined;
  const view = packed ? { words: pixels as Uint16Array, bits: 16 as const, signed: decoded.signed } : patternView(pixels, count);
  const key = desc.sopInstanceUID
    ? `${desc.sopInstanceUID}|${frameNumber}|${voiKey}|${inverted ? 1 : 0}|${range.min}|${range.max}|${view ? `p${view.bits}${view.signed ? 's' : 'u'}${packed ? `k${decoded.packedShift}` : ''}` : 's'}`
    : undefined;
  let table = key ? tableCache16.get(key) : undefined;
  if (view) {
    if (!table) {
      table = packed ? packedPatternTable(storedTable(), range.min, decoded.bitsStored, decoded.packedShift!, decoded.signed)
        : patternTable(storedTable(), range.min, view.bits, view.signed);
      if (key) tableCache16.set(key, table);
    }
    const words = view.words;
    for (let i = 0; i < count; i++) out[i] = table[words[i]];
    return out;
  }
  if (!table) {
    table = storedTable();
    if (key) tableCache16.set(key, table);
  }
  const min = range.min, last = table.length - 1;
  for (let i = 0; i < count; i++) {
    let k = pixels[i] - min;
    if (k > last) k = last; else if (k < 0) k = 0;
    out[i] = table[k];
  }
  return out;
}

/** An unsigned 8- or 16-bit view of an integer sample array, and whether its values are signed. */
function patternView(pixels: DecodedFrame['pixels'], count: number): { words: Uint8Array | Uint16Array; bits: 8 | 16; signed: boolean } | undefined {
  if (pixels instanceof Uint16Array || pixels instanceof Int16Array) {
    return { words: new Uint16Array(pixels.buffer, pixels.byteOffset, count), bits: 16, signed: pixels instanceof Int16Array };
  }
  if (pixels instanceof Uint8Array || pixels instanceof Int8Array || pixels instanceof Uint8ClampedArray) {
    return { words: new Uint8Array(pixels.buffer, pixels.byteOffset, count), bits: 8, signed: pixels instanceof Int8Array };
  }
  return undefined;
}

/** out[i] = table[words[i]]; with aligned input, two 32-bit reads and one 32-bit write per four pixels. */
function lookup16(words: Uint16Array, table: Uint8Array, out: Uint8Array, count: number): void {
  let i = 0;
  if (LITTLE_ENDIAN_HOST && words.byteOffset % 4 === 0 && out.byteOffset % 4 === 0) {
    const quads = count >>> 2;
    const w32 = new Uint32Array(words.buffer, words.byteOffset, quads * 2);
    const o32 = new Int32Array(out.buffer, out.byteOffset, quads);
    for (let q = 0, j = 0; q < quads; q++, j += 2) {
      const a = w32[j], b = w32[j + 1];
      // little-endian host (samples.ts checks it): the first pixel is the low half, and goes to the low byte
      o32[q] = table[a & 0xffff] | (table[a >>> 16] << 8) | (table[b & 0xffff] << 16) | (table[b >>> 16] << 24);
    }
    i = quads * 4;
  }
  for (; i < count; i++) out[i] = table[words[i]];
}

function lookup8(words: Uint8Array, table: Uint8Array, out: Uint8Array, count: number): void {
  let i = 0;
  if (LITTLE_ENDIAN_HOST && words.byteOffset % 4 === 0 && out.byteOffset % 4 === 0) {
    const quads = count >>> 2;
    const w32 = new Uint32Array(words.buffer, words.byteOffset, quads);
    const o32 = new Int32Array(out.buffer, out.byteOffset, quads);
    for (let q = 0; q < quads; q++) {
      const a = w32[q];
      o32[q] = table[a & 0xff] | (table[(a >>> 8) & 0xff] << 8) | (table[(a >>> 16) & 0xff] << 16) | (table[a >>> 24] << 24);
    }
    i = quads * 4;
  }
  for (; i < count; i++) out[i] = table[words[i]];
}

/* ---------------------------------------------------------------------------------------------- */
/* Colour                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

export function renderColour(desc: ImageDescription, decoded: DecodedFrame): Uint8Array {
  const count = decoded.rows * decoded.columns;
  const pi = decoded.photometricInterpretation.toUpperCase();
  if (pi === 'PALETTE COLOR') {
    const p = desc.palette;
    if (!p) throw new RenderError('BAD_PIXELS', 'PALETTE COLOR image without usable palette LUTs', 422);
    const range = storedRange(decoded.bitsStored, decoded.signed);
    const key = desc.sopInstanceUID ? `${desc.sopInstanceUID}|palette|${range.min}|${range.max}` : undefined;
    let table = key ? tableCache.get(key) : undefined;
    if (!table) {
      table = paletteTable(p.red, p.green, p.blue, range.min, range.max);
      if (key) tableCache.set(key, table);
    }
    return applyPalette(decoded.pixels, count, table, range.min);
  }
  // Native YBR_FULL_422 arrives upsampled as YBR_FULL; DCMTK converts 4:2:2 data with its exact (double)
  // formula rather than the per-component tables it uses for YBR_FULL, so we keep that distinction.
  const stored = desc.frame.photometricInterpretation === 'YBR_FULL_422' && pi === 'YBR_FULL' ? 'YBR_FULL_422' : pi;
  return colourTo8(stored, decoded.pixels, count, decoded.bitsStored || desc.frame.bitsStored);
}

/* ---------------------------------------------------------------------------------------------- */

/**
 * How many resolution levels a frame may be decoded without (DecodeOptions.reduce) for this rendering, showing the
 * same image: the viewport must shrink the frame at least 2^r times (viewportReduction), and every step before it
 * must work per pixel so that averaging first changes little: no overlay to burn in at full resolution, no
 * min-max window (it depends on the extremes, which averaging smooths away), no palette (indices do not average),
 * no window narrow against the stored range.
 */
export function maxReduction(desc: ImageDescription, frameNumber: number, opts: RenderOptions = {}): number {
  if (!opts.viewport || opts.presentation) return 0;
  if (opts.overlays !== false && desc.overlays.length > 0) return 0;
  const f = desc.frame;
  if (f.photometricInterpretation.toUpperCase() === 'PALETTE COLOR') return 0;
  if (f.samplesPerPixel === 1) {
    const voi = resolveVoi(frameVoi(desc, frameNumber), opts);
    if (voi.kind === 'minmax') return 0;
    // A window narrow against the stored range (a CT soft-tissue window over 12 bits) turns a sharp edge into
    // black against white: averaging before it (the low-pass image) and after it then differ by tens of levels
    // along every edge. Such frames are decoded in full; below 1/8 of the range, they are.
    const modality = frameModalityLut(desc, frameNumber);
    const slope = modality.kind === 'rescale' ? Math.abs(modality.slope) || 1 : 1;
    if (voi.kind === 'window' && voi.width / slope < 2 ** f.bitsStored / 8) return 0;
  }
  let plan;
  try { plan = planViewport(opts.viewport, f.columns, f.rows); } catch { return 0; }
  return viewportReduction(plan);
}

/**
 * `into`: a buffer the grey output may be written to when it is large enough (the returned image's data is then
 * a view on it). For a caller that renders one image at a time and lets go of it before the next (the render
 * worker), this saves an allocation per image; anyone keeping images must not pass it.
 */
/** Largest image a presentation state's displayed area (MAGNIFY) may make. */
const MAX_PRESENTED_PIXELS = 4096 * 4096;

export function renderFrame(desc: ImageDescription, frameNumber: number, decoded: DecodedFrame, opts: RenderOptions = {}, into?: Uint8Array): RenderedImage {
  if (!Number.isInteger(frameNumber) || frameNumber < 1 || frameNumber > desc.numberOfFrames) {
    throw new RenderError('BAD_FRAME', `frame ${frameNumber} out of range 1..${desc.numberOfFrames}`);
  }
  validateOptions(opts);
  const { rows, columns } = decoded;
  const reduction = decoded.reduction ?? 0;
  // with a presentation state, the viewport applies to its output (below), not to the frame
  const plan = opts.viewport && !opts.presentation ? planViewport(opts.viewport, desc.frame.columns, desc.frame.rows) : undefined;
  if (reduction > 0) {
    // A frame decoded at a lower resolution (DecodedFrame.reduction): only for what maxReduction allows.
    if (!plan || reduction > maxReduction(desc, frameNumber, opts)) {
      throw new RenderError('BAD_PIXELS', 'frame decoded at a lower resolution than this rendering shows', 500);
    }
    const f = 2 ** reduction;
    if (Math.abs(columns - desc.frame.columns / f) > 1 || Math.abs(rows - desc.frame.rows / f) > 1) {
      throw new RenderError('BAD_PIXELS', `decoded frame is ${columns}x${rows}, image reduced ${f} times is ${Math.ceil(desc.frame.columns / f)}x${Math.ceil(desc.frame.rows / f)}`, 422);
    }
  } else if (rows !== desc.frame.rows || columns !== desc.frame.columns) {
    throw new RenderError('BAD_PIXELS', `decoded frame is ${columns}x${rows}, image is ${desc.frame.columns}x${desc.frame.rows}`, 422);
  }
  const spp = decoded.samplesPerPixel;
  const pi = decoded.photometricInterpretation.toUpperCase();
  const grey = spp === 1 && pi !== 'PALETTE COLOR';
  if (decoded.pixels.length < rows * columns * (grey ? 1 : spp)) throw new RenderError('BAD_PIXELS', 'decoded frame has too few samples', 422);

  const presentation = opts.presentation;
  if (presentation) {
    if (!grey) throw new RenderError('BAD_PIXELS', 'a Grayscale Softcopy Presentation State applies to grayscale images only', 422);
    desc = presentedDescription(desc, presentation);
  }

  let img: RenderedImage;
  if (grey) {
    img = { width: columns, height: rows, channels: 1, data: renderGrey(desc, frameNumber, decoded, opts, into) };
  } else {
    const rgb = renderColour(desc, decoded);
    if (opts.invert === true) for (let i = 0; i < rgb.length; i++) rgb[i] = 255 - rgb[i]; // per channel; rgb is a new array
    img = { width: columns, height: rows, channels: 3, data: rgb };
  }

  // Overlays after the inversion: they keep their own colour (invert=true).
  if (opts.overlays !== false && desc.overlays.length > 0) {
    const colour = opts.overlayColor ?? [255, 255, 255];
    if (img.channels === 1 && !(colour[0] === colour[1] && colour[1] === colour[2])) img = toRgb(img);
    const words = grey && desc.overlays.some((o) => o.embedded) ? pixelWords(desc, decoded) : undefined;
    if (presentation && !opts.overlayColor) {
      // each in the grey of its activation layer (PS3.3 C.10.7.1.1)
      desc.overlays.forEach((o, i) => {
        const g = presentation.overlayGrey[i] ?? 255;
        burnOverlays([o], frameNumber, img.data, img.width, img.height, img.channels, [g, g, g], words);
      });
    } else burnOverlays(desc.overlays, frameNumber, img.data, img.width, img.height, img.channels, colour, words);
  }
  if (presentation) {
    // shutters, graphics, rotation and flip, displayed area, text; then the viewport applies to that result
    img = finishPresentation(img, presentation, frameNumber, MAX_PRESENTED_PIXELS);
    return opts.viewport ? applyViewport(img, planViewport(opts.viewport, img.width, img.height)) : img;
  }
  return plan ? applyViewport(img, plan, reduction) : img;
}

/**
 * renderFrame at 16 bits per sample (bitdepth=16): grey images only (PNG carries 16-bit grey; colour output
 * keeps 8 bits per channel, as the colour pipeline has no more precision to give). Overlays are drawn with
 * the full-scale value of their (grey) colour, ROI overlays darken by 8 bits (DCMTK shifts by half the output
 * depth); the viewport resamples the 16-bit samples.
 */
export function renderFrame16(desc: ImageDescription, frameNumber: number, decoded: DecodedFrame, opts: RenderOptions = {}): RenderedImage16 {
  if (!Number.isInteger(frameNumber) || frameNumber < 1 || frameNumber > desc.numberOfFrames) {
    throw new RenderError('BAD_FRAME', `frame ${frameNumber} out of range 1..${desc.numberOfFrames}`);
  }
  validateOptions(opts);
  const { rows, columns } = decoded;
  if (rows !== desc.frame.rows || columns !== desc.frame.columns) {
    throw new RenderError('BAD_PIXELS', `decoded frame is ${columns}x${rows}, image is ${desc.frame.columns}x${desc.frame.rows}`, 422);
  }
  if (opts.presentation) throw new RenderError('BAD_OPTION', 'bitdepth=16 is not available for presentation states');
  if (decoded.samplesPerPixel !== 1 || decoded.photometricInterpretation.toUpperCase() === 'PALETTE COLOR') {
    throw new RenderError('BAD_OPTION', 'bitdepth=16 is for grey (MONOCHROME1/2) images only: this image is colour');
  }
  const plan = opts.viewport ? planViewport(opts.viewport, columns, rows) : undefined;
  if (decoded.pixels.length < rows * columns) throw new RenderError('BAD_PIXELS', 'decoded frame has too few samples', 422);
  const img: RenderedImage16 = { width: columns, height: rows, channels: 1, data: renderGrey16(desc, frameNumber, decoded, opts) };
  if (opts.overlays !== false && desc.overlays.length > 0) {
    const colour = opts.overlayColor ?? [255, 255, 255];
    if (!(colour[0] === colour[1] && colour[1] === colour[2])) throw new RenderError('BAD_OPTION', 'bitdepth=16 output is grey: overlaycolor must be a grey (equal r, g, b)');
    const words = desc.overlays.some((o) => o.embedded) ? pixelWords(desc, decoded) : undefined;
    burnOverlays(desc.overlays, frameNumber, img.data, img.width, img.height, 1, [colour[0] * 257, colour[0] * 257, colour[0] * 257], words);
  }
  return plan ? applyViewport(img, plan) : img;
}

/**
 * The frame's stored words, unmasked and in host order, for overlays embedded in Pixel Data (overlay.ts): the
 * packed words themselves (DecodedFrame.packedShift), or the decoder's raw view (DecodedFrame.rawWords), swapped
 * or copied only when its byte order or alignment is not the host's. Undefined when the decoder kept neither.
 */
function pixelWords(desc: ImageDescription, decoded: DecodedFrame): PixelWords | undefined {
  const count = decoded.rows * decoded.columns;
  let words: Uint8Array | Uint16Array | undefined;
  if (decoded.packedShift !== undefined) {
    words = (decoded.pixels as Uint16Array).subarray(0, count);
  } else if (decoded.rawWords) {
    const { bytes, bitsAllocated, bigEndian } = decoded.rawWords;
    // All bits kept, unsigned: a view when already in host order, else swapped (or copied) by the decoders' own helper.
    if (bytes.length >= count * (bitsAllocated >>> 3)) {
      words = unpackSamples(bytes, count, bitsAllocated, bigEndian, 0, bitsAllocated, false, true) as Uint8Array | Uint16Array;
    }
  }
  if (!words || words.length < count) return undefined;
  return { words, bitsStored: desc.frame.bitsStored, highBit: desc.frame.highBit, numberOfFrames: desc.numberOfFrames };
}

function toRgb(img: RenderedImage): RenderedImage {
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 3) out[j] = out[j + 1] = out[j + 2] = img.data[i];
  return { width: img.width, height: img.height, channels: 3, data: out };
}

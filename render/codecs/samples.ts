/**
 * From sample bytes to stored values (PS3.5 Section 8.1.1 and Annex D; PS3.3 C.7.6.3 Image Pixel Module).
 *
 * Every decoder of this layer ends here: native frames directly, RLE after de-segmenting into native byte order,
 * the other codecs with their output buffer. Stored values are the BitsStored bits that end at HighBit, shifted
 * down to bit 0 and sign-extended when PixelRepresentation is 1, in the narrowest typed array that holds them.
 * Each loop is specialised outside the loop for byte order, sample size and signedness: no per-pixel branching on
 * attributes, no per-pixel allocation.
 */
import type { FrameInfo, PixelArray } from '../types';
import { CodecError } from './errors';

/** Largest decoded frame we allocate (bytes of output). A 65535 x 65535 RGB 32-bit header would ask for 51 GB. */
export const MAX_DECODED_BYTES = 1 << 30;

/** True on little-endian hosts (all we run on), where typed arrays read little-endian samples as they are. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** FrameInfo checked against the standard once per call, with the numbers every decoder needs. */
export interface PixelLayout {
  rows: number;
  columns: number;
  pixelCount: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  /** HighBit + 1 - BitsStored: where the stored bits start inside each sample (PS3.5 8.1.1). */
  shift: number;
  signed: boolean;
  format: 'int' | 'float32' | 'float64';
  photometricInterpretation: string;
  planar: boolean;
  /** Native YBR_FULL_422: two Y, then one Cb and one Cr per pair of pixels (PS3.3 C.7.6.3.1.2). */
  subsampled422: boolean;
}

function isInt(x: unknown, min: number, max: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max;
}

export function layoutOf(info: FrameInfo): PixelLayout {
  const { rows, columns, samplesPerPixel, bitsAllocated, bitsStored, highBit, pixelRepresentation } = info;
  const format = info.pixelFormat ?? 'int';
  // Rows and Columns are US (PS3.3 C.7.6.3.1): 1..65535.
  if (!isInt(rows, 1, 0xffff) || !isInt(columns, 1, 0xffff)) {
    throw new CodecError('INVALID_ATTRIBUTES', 'Rows and Columns must be 1..65535');
  }
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) {
    throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `SamplesPerPixel ${String(samplesPerPixel)} is not supported`);
  }
  const pi = String(info.photometricInterpretation ?? '').trim();
  let bits = 0;
  let shift = 0;
  let signed = false;
  if (format === 'float32' || format === 'float64') {
    // Float Pixel Data is 32-bit, Double Float Pixel Data 64-bit (PS3.3 C.7.6.3.1.x); IEEE 754 values are signed.
    const expected = format === 'float32' ? 32 : 64;
    if (bitsAllocated !== expected) {
      throw new CodecError('INVALID_ATTRIBUTES', `${format} pixel data needs BitsAllocated ${expected}`);
    }
    bits = expected;
    signed = true;
  } else if (format === 'int') {
    if (bitsAllocated !== 1 && bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32) {
      throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `BitsAllocated ${String(bitsAllocated)} is not supported`);
    }
    if (!isInt(bitsStored, 1, bitsAllocated) || !isInt(highBit, bitsStored - 1, bitsAllocated - 1)) {
      throw new CodecError('INVALID_ATTRIBUTES', 'BitsStored/HighBit do not fit BitsAllocated');
    }
    if (bitsAllocated === 1 && samplesPerPixel !== 1) {
      throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', 'BitsAllocated 1 is only defined for one sample per pixel');
    }
    bits = bitsStored;
    shift = highBit + 1 - bitsStored;
    signed = pixelRepresentation === 1 && bitsAllocated !== 1;
  } else {
    throw new CodecError('INVALID_ATTRIBUTES', 'unknown pixel format');
  }
  const pixelCount = rows * columns;
  if (pixelCount * samplesPerPixel * Math.max(1, bitsAllocated / 8) > MAX_DECODED_BYTES) {
    throw new CodecError('TOO_LARGE', 'the declared frame is larger than this server decodes');
  }
  const subsampled422 = samplesPerPixel === 3 && pi === 'YBR_FULL_422';
  return {
    rows,
    columns,
    pixelCount,
    samplesPerPixel,
    bitsAllocated,
    bitsStored: bits,
    shift,
    signed,
    format,
    photometricInterpretation: pi,
    planar: samplesPerPixel === 3 && info.planarConfiguration === 1,
    subsampled422,
  };
}

/** The narrowest typed array that holds `bits`-bit values of this signedness. */
export function storedArray(bits: number, signed: boolean, length: number): Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array {
  if (bits <= 8) return signed ? new Int8Array(length) : new Uint8Array(length);
  if (bits <= 16) return signed ? new Int16Array(length) : new Uint16Array(length);
  return signed ? new Int32Array(length) : new Uint32Array(length);
}

type IntArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array;

/**
 * `count` samples of `sampleBits` (8, 16 or 32) from `src`, each reduced to the `bits` stored bits starting at `shift`,
 * sign-extended if `signed`. When the samples already are the stored values (no masking, host byte order) the result
 * is a view on `src` if `mayAlias` (native frames), else one copy (codec output living in a wasm heap).
 */
export function unpackSamples(
  src: Uint8Array,
  count: number,
  sampleBits: 8 | 16 | 32,
  bigEndian: boolean,
  shift: number,
  bits: number,
  signed: boolean,
  mayAlias: boolean,
): IntArray {
  const byteLength = count * (sampleBits >>> 3);
  if (src.length < byteLength) {
    throw new CodecError('FRAME_TOO_SHORT', `frame has ${src.length} bytes, ${byteLength} needed`);
  }
  const identity = shift === 0 && bits === sampleBits && (sampleBits === 8 || bigEndian !== LITTLE_ENDIAN_HOST);
  if (identity && sampleBits === 8) {
    const bytes = mayAlias ? src : src.slice(0, byteLength);
    return signed ? new Int8Array(bytes.buffer, bytes.byteOffset, count) : bytes.subarray(0, count);
  }
  if (identity) {
    // Host order already: reinterpret. A typed array view needs an aligned offset; else (or when we may not alias) copy.
    const aligned = mayAlias && src.byteOffset % (sampleBits >>> 3) === 0;
    const bytes = aligned ? src : src.slice(0, byteLength);
    const { buffer, byteOffset } = bytes;
    if (sampleBits === 16) return signed ? new Int16Array(buffer, byteOffset, count) : new Uint16Array(buffer, byteOffset, count);
    return signed ? new Int32Array(buffer, byteOffset, count) : new Uint32Array(buffer, byteOffset, count);
  }
  const out = storedArray(bits, signed, count);
  if (sampleBits === 8) extract8(src, count, shift, bits, signed, out);
  else if (sampleBits === 16) extract16(src, count, bigEndian, shift, bits, signed, out);
  else extract32(src, count, bigEndian, shift, bits, signed, out);
  return out;
}

function extract8(src: Uint8Array, count: number, shift: number, bits: number, signed: boolean, out: IntArray): void {
  if (signed) {
    const up = 32 - bits - shift;
    const down = 32 - bits;
    for (let i = 0; i < count; i++) out[i] = (src[i] << up) >> down;
  } else {
    const mask = (1 << bits) - 1;
    for (let i = 0; i < count; i++) out[i] = (src[i] >>> shift) & mask;
  }
}

function extract16(src: Uint8Array, count: number, bigEndian: boolean, shift: number, bits: number, signed: boolean, out: IntArray): void {
  // `(v << up) >> down` moves the high stored bit to bit 31 and back: masking and sign extension in one step.
  const up = 32 - bits - shift;
  const down = 32 - bits;
  const mask = (1 << bits) - 1;
  if (!bigEndian && LITTLE_ENDIAN_HOST && src.byteOffset % 2 === 0) {
    // Aligned little-endian input: one 16-bit load per sample instead of two byte loads (about twice as fast).
    // Each loop in its own function, typed for the array storedArray() made, so each stays monomorphic (1.6x).
    const words = new Uint16Array(src.buffer, src.byteOffset, count);
    if (signed && out instanceof Int16Array) signExtend16(words, out, count, up, down);
    else if (!signed && out instanceof Uint16Array) mask16(words, out, count, shift, mask);
    else if (signed) for (let i = 0; i < count; i++) out[i] = (words[i] << up) >> down;
    else for (let i = 0; i < count; i++) out[i] = (words[i] >>> shift) & mask;
  } else if (!bigEndian) {
    if (signed) for (let i = 0, j = 0; i < count; i++, j += 2) out[i] = ((src[j] | (src[j + 1] << 8)) << up) >> down;
    else for (let i = 0, j = 0; i < count; i++, j += 2) out[i] = ((src[j] | (src[j + 1] << 8)) >>> shift) & mask;
  } else {
    if (signed) for (let i = 0, j = 0; i < count; i++, j += 2) out[i] = (((src[j] << 8) | src[j + 1]) << up) >> down;
    else for (let i = 0, j = 0; i < count; i++, j += 2) out[i] = (((src[j] << 8) | src[j + 1]) >>> shift) & mask;
  }
}

function signExtend16(words: Uint16Array, out: Int16Array, count: number, up: number, down: number): void {
  for (let i = 0; i < count; i++) out[i] = (words[i] << up) >> down;
}

function mask16(words: Uint16Array, out: Uint16Array, count: number, shift: number, mask: number): void {
  for (let i = 0; i < count; i++) out[i] = (words[i] >>> shift) & mask;
}

function extract32(src: Uint8Array, count: number, bigEndian: boolean, shift: number, bits: number, signed: boolean, out: IntArray): void {
  const up = 32 - bits - shift;
  const down = 32 - bits;
  // bits may be 32: `>>> 0` keeps the unsigned value, `(1 << 32) - 1` would be 0.
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  const b0 = bigEndian ? 3 : 0;
  const b1 = bigEndian ? 2 : 1;
  const b2 = bigEndian ? 1 : 2;
  const b3 = bigEndian ? 0 : 3;
  if (signed) {
    for (let i = 0, j = 0; i < count; i++, j += 4) {
      out[i] = ((src[j + b0] | (src[j + b1] << 8) | (src[j + b2] << 16) | (src[j + b3] << 24)) << up) >> down;
    }
  } else {
    for (let i = 0, j = 0; i < count; i++, j += 4) {
      out[i] = (((src[j + b0] | (src[j + b1] << 8) | (src[j + b2] << 16) | (src[j + b3] << 24)) >>> shift) & mask) >>> 0;
    }
  }
}

/** Float Pixel Data / Double Float Pixel Data: IEEE 754 little endian (or big endian in 1.2.840.10008.1.2.2). */
export function unpackFloats(src: Uint8Array, count: number, format: 'float32' | 'float64', bigEndian: boolean, mayAlias: boolean): Float32Array | Float64Array {
  const size = format === 'float32' ? 4 : 8;
  const byteLength = count * size;
  if (src.length < byteLength) {
    throw new CodecError('FRAME_TOO_SHORT', `frame has ${src.length} bytes, ${byteLength} needed`);
  }
  const hostOrder = bigEndian !== LITTLE_ENDIAN_HOST;
  let bytes: Uint8Array;
  if (hostOrder && mayAlias && src.byteOffset % size === 0) {
    bytes = src;
  } else if (hostOrder) {
    bytes = src.slice(0, byteLength);
  } else {
    bytes = new Uint8Array(byteLength);
    for (let j = 0; j < byteLength; j += size) for (let k = 0; k < size; k++) bytes[j + k] = src[j + size - 1 - k];
  }
  return format === 'float32' ? new Float32Array(bytes.buffer, bytes.byteOffset, count) : new Float64Array(bytes.buffer, bytes.byteOffset, count);
}

/**
 * BitsAllocated 1 (PS3.5 Annex D): pixels are packed eight to a byte, the first pixel in the least significant bit,
 * and frames follow each other without padding, so frame n starts at bit `bitOffset` of its first byte.
 */
export function unpackBits(src: Uint8Array, count: number, bitOffset: number): Uint8Array {
  if (!isInt(bitOffset, 0, 7)) throw new CodecError('INVALID_ATTRIBUTES', 'bitOffset must be 0..7');
  const needed = (bitOffset + count + 7) >>> 3;
  if (src.length < needed) throw new CodecError('FRAME_TOO_SHORT', `frame has ${src.length} bytes, ${needed} needed`);
  const out = new Uint8Array(count);
  let i = 0;
  // Leading partial byte, then whole bytes eight pixels at a time, then the tail.
  let bit = bitOffset;
  for (; bit !== 0 && bit < 8 && i < count; bit++, i++) out[i] = (src[0] >>> bit) & 1;
  let byte = bitOffset === 0 ? 0 : 1;
  for (; i + 8 <= count; byte++, i += 8) {
    const b = src[byte];
    out[i] = b & 1;
    out[i + 1] = (b >>> 1) & 1;
    out[i + 2] = (b >>> 2) & 1;
    out[i + 3] = (b >>> 3) & 1;
    out[i + 4] = (b >>> 4) & 1;
    out[i + 5] = (b >>> 5) & 1;
    out[i + 6] = (b >>> 6) & 1;
    out[i + 7] = b >>> 7;
  }
  for (let k = 0; i < count; k++, i++) out[i] = (src[byte] >>> k) & 1;
  return out;
}

function sameKind(a: PixelArray, length: number): PixelArray {
  return new (a.constructor as new (n: number) => PixelArray)(length);
}

/** Planar Configuration 1 (PS3.3 C.7.6.3.1.3): all R, then all G, then all B; we always hand out R,G,B,R,G,B. */
export function interleave(planes: PixelArray, pixelCount: number): PixelArray {
  const out = sameKind(planes, pixelCount * 3);
  for (let i = 0, g = pixelCount, b = 2 * pixelCount, o = 0; i < pixelCount; i++, g++, b++, o += 3) {
    out[o] = planes[i];
    out[o + 1] = planes[g];
    out[o + 2] = planes[b];
  }
  return out;
}

/**
 * YBR_FULL_422 (PS3.3 C.7.6.3.1.2): each pair of pixels is stored Y1 Y2 Cb Cr. Upsampled by repeating the chroma of
 * the pair for both pixels, as DCMTK does, giving YBR_FULL at full resolution.
 */
export function upsample422(packed: PixelArray, pixelCount: number): PixelArray {
  const out = sameKind(packed, pixelCount * 3);
  for (let s = 0, o = 0; o < pixelCount * 3; s += 4, o += 6) {
    const cb = packed[s + 2];
    const cr = packed[s + 3];
    out[o] = packed[s];
    out[o + 1] = cb;
    out[o + 2] = cr;
    out[o + 3] = packed[s + 1];
    out[o + 4] = cb;
    out[o + 5] = cr;
  }
  return out;
}

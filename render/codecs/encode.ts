/**
 * Frame encoders for transcoding on retrieve: decoded stored values (DecodedFrame) in, one compressed frame out.
 *
 *   RLE Lossless (.1.2.5)                  our own encoder (./encode-rle)
 *   JPEG Lossless SV1 (.4.70)              dcmjs-codecs (libjpeg, predictor 1)
 *   JPEG Baseline (.4.50), lossy           dcmjs-codecs (libjpeg-turbo), quality 90, 4:2:2 for colour
 *   JPEG-LS Lossless (.4.80)               dcmjs-codecs (CharLS)
 *   JPEG 2000 Lossless (.4.90)             dcmjs-codecs (OpenJPEG), reversible 5/3, no colour transform
 *   HTJ2K Lossless (.4.201)                dcmjs-codecs (OpenJPH), reversible, no colour transform
 *
 * dcmjs-codecs is the one wasm that carries all of these encoders (the cornerstone packages ship their encoders
 * in separate, larger builds); it is already loaded for 12-bit JPEG decoding.
 *
 * Samples are encoded as the stored values' bit patterns (Bits Stored wide, signed values masked to that width,
 * as PS3.5 8.2 asks of JPEG and JPEG-LS); JPEG 2000 and HTJ2K carry the sign in their header (PS3.5 8.2.4).
 * Colour samples are encoded as they are, without a colour transform, so the Photometric Interpretation stays
 * (RGB or YBR_FULL), except JPEG baseline, whose encoder turns RGB into YBR_FULL_422.
 */
import type { DecodedFrame } from '../types';
import { CodecError } from './errors';
import { encodeRle } from './encode-rle';
import { dcmjsCodecsFailed, dcmjsCodecsLibrary, initCodecs } from './wasm';

export const LOSSLESS_TARGETS = ['1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.201'];
export const LOSSY_TARGETS = ['1.2.840.10008.1.2.4.50'];

/** Transfer syntaxes whose frames we can encode. */
export function isEncodable(transferSyntaxUID: string): boolean {
  return LOSSLESS_TARGETS.includes(transferSyntaxUID) || LOSSY_TARGETS.includes(transferSyntaxUID);
}

export function isLossyTarget(transferSyntaxUID: string): boolean {
  return LOSSY_TARGETS.includes(transferSyntaxUID);
}

/** What the encoders need to know of the image (as in the dataset). */
export interface EncodeInfo {
  bitsAllocated: number;
  bitsStored: number;
  samplesPerPixel: number;
  signed: boolean;
  /** 'int' for Pixel Data */
  format: 'int' | 'float32' | 'float64';
}

/** Why frames of this image cannot be encoded in `target`, or undefined when they can. */
export function cannotEncode(target: string, info: EncodeInfo): string | undefined {
  if (!isEncodable(target)) return `no encoder for transfer syntax ${target}`;
  if (info.format !== 'int') return 'float pixel data has no compressed transfer syntax';
  if (info.samplesPerPixel !== 1 && info.samplesPerPixel !== 3) return `${info.samplesPerPixel} samples per pixel`;
  if (info.bitsAllocated === 1) return 'single-bit pixel data has no compressed transfer syntax';
  if (target === '1.2.840.10008.1.2.5') return info.bitsAllocated <= 32 ? undefined : `BitsAllocated ${info.bitsAllocated}`;
  if (info.bitsStored > 16 || info.bitsAllocated > 16) return `${info.bitsStored}-bit samples are beyond ${target}`;
  if (target === '1.2.840.10008.1.2.4.50' && (info.bitsStored > 8 || info.signed)) return 'JPEG baseline holds unsigned samples of 8 bits at most';
  if (target === '1.2.840.10008.1.2.4.80' && info.bitsStored < 2) return 'JPEG-LS needs at least 2 bits';
  return undefined;
}

export interface EncodedFrame {
  data: Uint8Array;
  /** Photometric Interpretation of the encoded samples */
  photometricInterpretation: string;
  /** Bits Stored of the encoded samples (JPEG baseline: 8) */
  bitsStored: number;
}

export async function initEncoders(target: string): Promise<void> {
  if (target !== '1.2.840.10008.1.2.5') await initCodecs(['dcmjs-codecs']);
}

/** The decoded frame's samples as bit patterns `bits` wide, in 8- or 16-bit words. */
function sampleWords(frame: DecodedFrame, bits: number, words: 8 | 16, keepSign: boolean): Uint8Array {
  const src = frame.pixels;
  const n = src.length;
  const mask = bits >= 32 ? 0xffffffff : (2 ** bits) - 1;
  if (words === 8) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (src[i] as number) & mask;
    return out;
  }
  const out = new Uint16Array(n);
  if (keepSign) for (let i = 0; i < n; i++) out[i] = (src[i] as number) & 0xffff;
  else for (let i = 0; i < n; i++) out[i] = (src[i] as number) & mask;
  return new Uint8Array(out.buffer);
}

/** YBR_FULL to RGB (PS3.3 C.7.6.3.1.2), for the JPEG baseline encoder, which takes RGB. */
function ybrFullToRgb(p: Uint8Array): Uint8Array {
  const out = new Uint8Array(p.length);
  const clamp = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
  for (let i = 0; i < p.length; i += 3) {
    const y = p[i], cb = p[i + 1] - 128, cr = p[i + 2] - 128;
    out[i] = clamp(y + 1.402 * cr);
    out[i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    out[i + 2] = clamp(y + 1.772 * cb);
  }
  return out;
}

/**
 * One frame in `target`. `info` as in the dataset; `frame` the decoded stored values (decodeFrame). Throws
 * CodecError when the frame cannot be encoded (see cannotEncode).
 */
export function encodeFrame(target: string, frame: DecodedFrame, info: EncodeInfo): EncodedFrame {
  const why = cannotEncode(target, info);
  if (why) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', why);
  const pi = frame.photometricInterpretation;
  const pixelCount = frame.rows * frame.columns;
  if (target === '1.2.840.10008.1.2.5') {
    const bytes = info.bitsAllocated <= 8 ? 1 : info.bitsAllocated <= 16 ? 2 : 4;
    const bits = bytes * 8;
    const mask = bits === 32 ? 0xffffffff : (2 ** bits) - 1;
    const src = frame.pixels;
    // Signed values go in as their two's complement pattern, BitsAllocated wide (sign-extended above Bits Stored,
    // as a native encoder writes them).
    const patterns = new Uint32Array(src.length);
    for (let i = 0; i < src.length; i++) patterns[i] = ((src[i] as number) & mask) >>> 0;
    return { data: encodeRle(patterns, pixelCount, frame.samplesPerPixel, bytes as 1 | 2 | 4), photometricInterpretation: pi, bitsStored: info.bitsStored };
  }
  const { Context, NativeCodecs } = dcmjsCodecsLibrary();
  const lossy = target === '1.2.840.10008.1.2.4.50';
  const eightBit = info.bitsStored <= 8;
  const j2k = target === '1.2.840.10008.1.2.4.90' || target === '1.2.840.10008.1.2.4.201';
  let samples = sampleWords(frame, info.bitsStored, eightBit ? 8 : 16, j2k && info.signed);
  let inputPi = pi;
  if (lossy && frame.samplesPerPixel === 3 && pi !== 'RGB') {
    if (pi !== 'YBR_FULL') throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `cannot JPEG-compress ${pi}`);
    samples = ybrFullToRgb(samples);
    inputPi = 'RGB';
  }
  let out: Uint8Array | undefined;
  try {
    const context = new Context({
      width: frame.columns, height: frame.rows,
      bitsAllocated: eightBit ? 8 : 16, bitsStored: lossy ? 8 : info.bitsStored,
      samplesPerPixel: frame.samplesPerPixel, pixelRepresentation: j2k && info.signed ? 1 : 0,
      planarConfiguration: 0, photometricInterpretation: inputPi, decodedBuffer: samples,
    });
    let encoded: any;
    switch (target) {
      case '1.2.840.10008.1.2.4.50': encoded = NativeCodecs.encodeJpeg(context, { lossy: true, quality: 90, sampleFactor: 1 }); break;
      case '1.2.840.10008.1.2.4.70': encoded = NativeCodecs.encodeJpeg(context, { lossy: false, predictor: 1, pointTransform: 0 }); break;
      case '1.2.840.10008.1.2.4.80': encoded = NativeCodecs.encodeJpegLs(context, { lossy: false }); break;
      case '1.2.840.10008.1.2.4.90': encoded = NativeCodecs.encodeJpeg2000(context, { lossy: false }); break;
      case '1.2.840.10008.1.2.4.201': encoded = NativeCodecs.encodeHtJpeg2000(context, { lossy: false }); break;
      default: throw new CodecError('UNSUPPORTED_TRANSFER_SYNTAX', `no encoder for ${target}`);
    }
    out = encoded.getEncodedBuffer() as Uint8Array | undefined;
    if (out) out = new Uint8Array(out); // off the wasm heap
  } catch (err) {
    if (err instanceof CodecError) throw err;
    dcmjsCodecsFailed();
    throw new CodecError('CORRUPT_BITSTREAM', `the encoder for ${target} failed: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
  }
  if (!out || out.length === 0) throw new CodecError('CORRUPT_BITSTREAM', `the encoder for ${target} produced nothing`);
  return {
    data: out,
    photometricInterpretation: lossy && frame.samplesPerPixel === 3 ? 'YBR_FULL_422' : pi,
    bitsStored: lossy ? 8 : info.bitsStored,
  };
}

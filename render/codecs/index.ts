/**
 * The codec layer of the rendering library: frame bytes of any supported Transfer Syntax in, stored values out
 * (see DecodedFrame in ../types). `initCodecs()` once per thread, then `decodeFrame` is synchronous.
 *
 * Which library decodes what:
 *   native (.1.2, .1.2.1, .1.2.1.99, .1.2.2) and RLE (.1.2.5)   our own loops (./native, ./rle)
 *   JPEG baseline / extended 8-bit (.4.50, .4.51)               @cornerstonejs/codec-libjpeg-turbo-8bit
 *   JPEG extended 12-bit (.4.51)                                dcmjs-codecs (libjpeg-turbo 12-bit build)
 *   JPEG lossless (.4.57, .4.70)                                jpeg-lossless-decoder-js
 *   JPEG-LS (.4.80, .4.81)                                      @cornerstonejs/codec-charls
 *   JPEG 2000 (.4.90, .4.91)                                    @cornerstonejs/codec-openjpeg
 *   HTJ2K (.4.201, .4.202, .4.203)                              @cornerstonejs/codec-openjph
 */
import type { DecodedFrame, FrameBytes, FrameInfo } from '../types';
import { CodecError } from './errors';
import { decodeJpeg } from './jpeg';
import { decodeJpeg2000 } from './jpeg2000';
import { decodeJpegLs } from './jpegls';
import { decodeNative } from './native';
import { decodeRle } from './rle';
import { layoutOf } from './samples';
import { syntaxFamily } from './syntaxes';

export { CodecError } from './errors';
export type { CodecErrorCode } from './errors';
export { TransferSyntax, detectEncapsulatedSyntax, isEncapsulated, isSupportedTransferSyntax, nativeMediaType } from './syntaxes';
export { initCodecs, trimCodecHeaps } from './wasm';
import { initCodecs, type CodecName } from './wasm';

/** The wasm codecs frames of this Transfer Syntax may need (native, RLE and JPEG Lossless need none). */
export function codecsFor(transferSyntaxUID: string): CodecName[] {
  switch (syntaxFamily(transferSyntaxUID)) {
    case 'jpeg': return ['libjpeg-turbo-8bit', 'dcmjs-codecs'];
    case 'jpeg-ls': return ['charls'];
    case 'jpeg2000': return ['openjpeg'];
    case 'htj2k': return ['openjph'];
    default: return [];
  }
}

/** Whether frames of this Transfer Syntax can be decoded at a lower resolution (DecodeOptions.reduce). */
export function decodesReduced(transferSyntaxUID: string): boolean {
  const family = syntaxFamily(transferSyntaxUID);
  return family === 'jpeg2000' || family === 'htj2k';
}

/** initCodecs() for one Transfer Syntax only. */
export function initCodecsFor(transferSyntaxUID: string): Promise<void> {
  return initCodecs(codecsFor(transferSyntaxUID));
}

/**
 * Decode one frame. Throws CodecError for anything it cannot turn into exactly the frame `info` describes.
 * For native frames that need no masking the returned pixels are a view on `frame.data` (no copy): callers that
 * recycle that buffer must copy first.
 */
export interface DecodeOptions {
  /** for the grey renderer only: native 16-bit grey words may stay packed (DecodedFrame.packedShift) */
  packed?: boolean;
  /**
   * JPEG 2000 and HTJ2K only: up to this many of the finest resolution levels may be left undecoded, each halving
   * rows and columns (rounded up). The result then says how many were (DecodedFrame.reduction, 0 or absent = full
   * size); other syntaxes ignore it. For callers that will shrink the frame by at least 2^reduce anyway.
   */
  reduce?: number;
}

export function decodeFrame(transferSyntaxUID: string, frame: FrameBytes, info: FrameInfo, options: DecodeOptions = {}): DecodedFrame {
  const family = syntaxFamily(transferSyntaxUID);
  if (family === undefined) {
    throw new CodecError('UNSUPPORTED_TRANSFER_SYNTAX', `Transfer Syntax ${String(transferSyntaxUID)} is not supported`);
  }
  if (!frame || !(frame.data instanceof Uint8Array)) {
    throw new CodecError('INVALID_ATTRIBUTES', 'frame bytes must be a Uint8Array');
  }
  const layout = layoutOf(info);
  switch (family) {
    case 'native':
      return decodeNative(frame, layout, false, options.packed === true, info.embeddedOverlays === true);
    case 'native-big-endian':
      if (info.bitsAllocated === 8 && info.pixelDataOW) {
        // 8-bit samples in OW words: swap each pair back into sample order (a copy; the caller's bytes stay as stored)
        const swapped = new Uint8Array(frame.data);
        for (let i = 0; i + 1 < swapped.length; i += 2) { const t = swapped[i]; swapped[i] = swapped[i + 1]; swapped[i + 1] = t; }
        return decodeNative({ ...frame, data: swapped }, layout, true, false, info.embeddedOverlays === true);
      }
      return decodeNative(frame, layout, true, false, info.embeddedOverlays === true);
    case 'rle':
      return decodeRle(frame, layout, info.embeddedOverlays === true);
    case 'jpeg':
      return decodeJpeg(frame, layout);
    case 'jpeg-ls':
      return decodeJpegLs(frame, layout);
    case 'jpeg2000':
      return decodeJpeg2000(frame, layout, false, reduceOption(options.reduce));
    case 'htj2k':
      return decodeJpeg2000(frame, layout, true, reduceOption(options.reduce));
  }
}

function reduceOption(r: number | undefined): number {
  return typeof r === 'number' && Number.isInteger(r) && r > 0 ? Math.min(r, 16) : 0;
}

export { encodeFrame, cannotEncode, isEncodable, isLossyTarget, initEncoders, LOSSLESS_TARGETS, LOSSY_TARGETS } from './encode';
export type { EncodeInfo, EncodedFrame } from './encode';

/**
 * Native (uncompressed) Pixel Data, PS3.5 Section 8.1.1 and Annex D: Implicit and Explicit VR Little Endian,
 * Deflated Explicit VR Little Endian (inflated by the caller), and Explicit VR Big Endian, where samples wider than
 * a byte are stored most significant byte first (PS3.5 7.3).
 */
import type { DecodedFrame, FrameBytes, PixelArray } from '../types';
import { CodecError } from './errors';
import { decodedFrame } from './frame';
import type { PixelLayout } from './samples';
import { interleave, LITTLE_ENDIAN_HOST, unpackBits, unpackFloats, unpackSamples, upsample422 } from './samples';

/** `keepWords`: the image has overlays in the unused bits of its samples (FrameInfo.embeddedOverlays). */
export function decodeNative(frame: FrameBytes, layout: PixelLayout, bigEndian: boolean, packed = false, keepWords = false): DecodedFrame {
  const { data } = frame;
  const { pixelCount, samplesPerPixel } = layout;
  if (packed && !bigEndian && LITTLE_ENDIAN_HOST && layout.format === 'int' && samplesPerPixel === 1 && layout.bitsAllocated === 16
    && (layout.photometricInterpretation === 'MONOCHROME1' || layout.photometricInterpretation === 'MONOCHROME2')
    && data.byteOffset % 2 === 0 && !(layout.shift === 0 && layout.bitsStored === 16)) {
    // Grey 16-bit words whose stored bits need masking: hand the words over as they are (DecodedFrame.packedShift).
    if (data.length < pixelCount * 2) throw new CodecError('FRAME_TOO_SHORT', `frame has ${data.length} bytes, ${pixelCount * 2} needed`);
    const f = decodedFrame(layout, new Uint16Array(data.buffer, data.byteOffset, pixelCount), layout.photometricInterpretation);
    f.packedShift = layout.shift;
    return f;
  }
  if (layout.bitsAllocated === 1) {
    return decodedFrame(layout, unpackBits(data, pixelCount, frame.bitOffset ?? 0), layout.photometricInterpretation);
  }
  let pixels: PixelArray;
  const pi = layout.photometricInterpretation;
  if (layout.format !== 'int') {
    pixels = unpackFloats(data, pixelCount * samplesPerPixel, layout.format, bigEndian, true);
  } else if (layout.subsampled422) {
    if (pixelCount % 2 !== 0) throw new CodecError('INVALID_ATTRIBUTES', 'YBR_FULL_422 needs an even number of pixels');
    const packed = unpackSamples(data, pixelCount * 2, layout.bitsAllocated as 8 | 16 | 32, bigEndian, layout.shift, layout.bitsStored, layout.signed, true);
    return decodedFrame(layout, upsample422(packed, pixelCount), 'YBR_FULL');
  } else {
    pixels = unpackSamples(data, pixelCount * samplesPerPixel, layout.bitsAllocated as 8 | 16 | 32, bigEndian, layout.shift, layout.bitsStored, layout.signed, true);
  }
  if (layout.planar) pixels = interleave(pixels, pixelCount);
  const f = decodedFrame(layout, pixels, pi);
  if (keepWords) keepRawWords(f, layout, data, bigEndian);
  return f;
}

/**
 * For overlays stored in the unused bits of Pixel Data (DecodedFrame.rawWords): a view on the frame's samples as
 * stored, for grey integer samples of 8 or 16 bits. `bytes` must outlive the DecodedFrame (our decoders' own output,
 * or the caller's frame bytes, which decodeFrame's callers already may not recycle while they use `pixels`).
 */
export function keepRawWords(f: DecodedFrame, layout: PixelLayout, bytes: Uint8Array, bigEndian: boolean): void {
  if (layout.samplesPerPixel !== 1 || layout.format !== 'int' || (layout.bitsAllocated !== 8 && layout.bitsAllocated !== 16)) return;
  const length = layout.pixelCount * (layout.bitsAllocated >>> 3);
  if (bytes.length < length) return;
  f.rawWords = { bytes: bytes.subarray(0, length), bitsAllocated: layout.bitsAllocated, bigEndian };
}

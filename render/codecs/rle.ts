/**
 * RLE Lossless, PS3.5 Annex G. A frame is a 64-byte header (segment count, then 15 segment offsets, all 32-bit
 * little endian) and up to 15 PackBits segments (G.3.1). Each segment is one byte plane: for every sample of the
 * pixel, its most significant byte first (G.2). We scatter each plane straight into a native little-endian,
 * interleaved buffer, which the native path then reduces to stored values.
 */
import type { DecodedFrame, FrameBytes } from '../types';
import { CodecError } from './errors';
import { decodedFrame, fullResolutionName, requireCompressible } from './frame';
import type { PixelLayout } from './samples';
import { unpackSamples } from './samples';
import { keepRawWords } from './native';

const HEADER_BYTES = 64;

/** `keepWords`: the image has overlays in the unused bits of its samples (FrameInfo.embeddedOverlays). */
export function decodeRle(frame: FrameBytes, layout: PixelLayout, keepWords = false): DecodedFrame {
  requireCompressible(layout, 'RLE');
  const src = frame.data;
  const { pixelCount, samplesPerPixel } = layout;
  const bytesPerSample = layout.bitsAllocated >>> 3;
  const segments = samplesPerPixel * bytesPerSample;
  if (src.length < HEADER_BYTES) throw new CodecError('FRAME_TOO_SHORT', 'RLE frame shorter than its header');
  const header = new DataView(src.buffer, src.byteOffset, HEADER_BYTES);
  const declared = header.getUint32(0, true);
  if (declared !== segments) {
    throw new CodecError('SIZE_MISMATCH', `RLE frame has ${declared} segments, the dataset needs ${segments}`);
  }
  const out = new Uint8Array(pixelCount * segments);
  const stride = segments;
  for (let s = 0; s < segments; s++) {
    const start = header.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? header.getUint32(8 + 4 * s, true) : src.length;
    if (start < HEADER_BYTES || end < start || end > src.length) {
      throw new CodecError('CORRUPT_BITSTREAM', `RLE segment ${s + 1} offsets are out of range`);
    }
    // Segment s is byte (s % bytesPerSample) of sample (s / bytesPerSample), counted from the most significant byte;
    // in the little-endian output that byte sits at the opposite end of the sample.
    const sample = Math.floor(s / bytesPerSample);
    const byteInSample = bytesPerSample - 1 - (s % bytesPerSample);
    const written = unpackBitsSegment(src, start, end, out, sample * bytesPerSample + byteInSample, stride, pixelCount);
    if (written !== pixelCount) {
      throw new CodecError('SIZE_MISMATCH', `RLE segment ${s + 1} holds ${written} bytes, ${pixelCount} expected`);
    }
  }
  const pixels = unpackSamples(out, pixelCount * samplesPerPixel, layout.bitsAllocated as 8 | 16 | 32, false, layout.shift, layout.bitsStored, layout.signed, true);
  const f = decodedFrame(layout, pixels, fullResolutionName(layout.photometricInterpretation));
  if (keepWords) keepRawWords(f, layout, out, false);
  return f;
}

/**
 * PackBits (PS3.5 G.3.1): header byte n as int8; 0..127 copies the next n+1 bytes, -1..-127 repeats the next byte
 * -n+1 times, -128 is a no-op. Output beyond `count` bytes (encoders pad segments to even length) is dropped.
 */
function unpackBitsSegment(src: Uint8Array, start: number, end: number, out: Uint8Array, first: number, stride: number, count: number): number {
  let i = start;
  let o = first;
  let written = 0;
  while (written < count && i < end) {
    const n = src[i++];
    if (n < 128) {
      const literalEnd = i + n + 1;
      let run = Math.min(n + 1, end - i, count - written);
      written += run;
      for (let k = i; run > 0; run--, k++, o += stride) out[o] = src[k];
      i = literalEnd;
    } else if (n > 128) {
      if (i >= end) break;
      const value = src[i++];
      let run = Math.min(257 - n, count - written);
      written += run;
      for (; run > 0; run--, o += stride) out[o] = value;
    }
  }
  return written;
}

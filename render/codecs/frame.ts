/** Assembling a DecodedFrame and the checks every compressed decoder shares. */
import type { DecodedFrame, PixelArray } from '../types';
import { CodecError } from './errors';
import type { PixelLayout } from './samples';
import { unpackSamples } from './samples';

export function decodedFrame(layout: PixelLayout, pixels: PixelArray, photometricInterpretation: string): DecodedFrame {
  return {
    pixels,
    rows: layout.rows,
    columns: layout.columns,
    samplesPerPixel: layout.samplesPerPixel,
    photometricInterpretation,
    bitsStored: layout.bitsAllocated === 1 ? 1 : layout.bitsStored,
    signed: layout.signed,
  };
}

/** Compressed syntaxes carry integer samples of 8 bits or more (PS3.5 8.2, A.4). */
export function requireCompressible(layout: PixelLayout, syntax: string): void {
  if (layout.format !== 'int' || layout.bitsAllocated === 1) {
    throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `${syntax} cannot carry this pixel format`);
  }
}

/** The header of a bitstream must describe the frame the dataset describes, before we let a codec allocate for it. */
export function requireDimensions(
  syntax: string,
  layout: PixelLayout,
  found: { columns: number; rows: number; components: number },
): void {
  if (found.columns !== layout.columns || found.rows !== layout.rows || found.components !== layout.samplesPerPixel) {
    throw new CodecError(
      'SIZE_MISMATCH',
      `${syntax} bitstream is ${found.columns}x${found.rows}x${found.components}, ` +
        `dataset says ${layout.columns}x${layout.rows}x${layout.samplesPerPixel}`,
    );
  }
}

/**
 * Codec output (little-endian samples of 1 or 2 bytes, interleaved) to stored values. The sample size is read off
 * the output length, since codecs emit 8-bit samples for precisions <= 8 whatever BitsAllocated says. Compressed
 * samples start at bit 0 (PS3.5 8.2: the codec, not HighBit, places them), so only masking to BitsStored and sign
 * extension remain.
 */
export function storedFromCodec(codec: string, layout: PixelLayout, codecOutput: Uint8Array, mayAlias: boolean): PixelArray {
  // embind hands out Uint8ClampedArray views; reinterpret (no copy) so the result is a plain Uint8Array.
  const output = codecOutput instanceof Uint8Array ? codecOutput : new Uint8Array((codecOutput as Uint8Array).buffer, (codecOutput as Uint8Array).byteOffset, (codecOutput as Uint8Array).length);
  const samples = layout.pixelCount * layout.samplesPerPixel;
  const bytesPerSample = output.length / samples;
  if (bytesPerSample !== 1 && bytesPerSample !== 2) {
    throw new CodecError('SIZE_MISMATCH', `${codec} produced ${output.length} bytes for ${samples} samples`);
  }
  const sampleBits = bytesPerSample === 1 ? 8 : 16;
  const bits = Math.min(layout.bitsStored, sampleBits);
  return unpackSamples(output, samples, sampleBits, false, 0, bits, layout.signed, mayAlias);
}

/** Once decompressed, a subsampled YBR_FULL_422 image is at full resolution: its samples are YBR_FULL. */
export function fullResolutionName(photometricInterpretation: string): string {
  return photometricInterpretation === 'YBR_FULL_422' ? 'YBR_FULL' : photometricInterpretation;
}

/**
 * JPEG, JPEG-LS and JPEG 2000 streams end with an EOI / EOC marker (FFD9 in all three: ISO/IEC 10918-1 B.2.1,
 * 14495-1 C.1.1, 15444-1 A.4.4). Real fragments often carry bytes after it: the byte that pads a fragment to even
 * length (PS3.5 A.4), or a few stray bytes some writers leave (0x20, 0xCC, ...). libjpeg, and so DCMTK, stops at
 * the marker and ignores what follows; so do we, and hand the codec the stream up to its end marker. FFD9 cannot
 * occur inside entropy-coded data (a coded FF is followed by 00 or a restart marker in JPEG, by a byte below 0x80
 * in JPEG-LS, by a byte below 0x90 in JPEG 2000 packets), so the last FFD9 after the first scan (SOS) or tile (SOT)
 * header is the end marker. A stream without one is truncated: codecs happily decode it into a partly grey image;
 * we refuse it instead.
 */
export function requireEndMarker(syntax: string, data: Uint8Array): Uint8Array {
  const scan = firstScanHeader(data);
  for (let i = data.length - 2; i > scan; i--) {
    if (data[i] === 0xff && data[i + 1] === 0xd9) return i + 2 === data.length ? data : data.subarray(0, i + 2);
  }
  throw new CodecError('FRAME_TOO_SHORT', `${syntax} frame ends without its end marker (truncated)`);
}

/** Offset of the first SOS (FFDA) or SOT (FF90) marker, walking the marker segments from SOI/SOC; 1 if none is found. */
function firstScanHeader(data: Uint8Array): number {
  let i = 2;
  while (i + 4 <= data.length && data[i] === 0xff) {
    const m = data[i + 1];
    if (m === 0xda || m === 0x90) return i;
    if (m === 0xff) { i++; continue; }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd9) || m === 0x4f) { i += 2; continue; }
    const length = (data[i + 2] << 8) | data[i + 3];
    if (length < 2) break;
    i += 2 + length;
  }
  return 1;
}

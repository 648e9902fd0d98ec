/**
 * JPEG 2000 (ISO/IEC 15444-1), PS3.5 8.2.4 and A.4.4, decoded by OpenJPEG; High-Throughput JPEG 2000
 * (ISO/IEC 15444-15), PS3.5 8.2.8 and A.4.7, decoded by OpenJPH. Both share the codestream syntax, so the SIZ
 * marker segment is read here, before the codec allocates anything, and checked against the dataset.
 *
 * A multiple-component transform (PhotometricInterpretation YBR_ICT / YBR_RCT, PS3.5 8.2.4) is undone by the codec,
 * so such frames come out as RGB.
 */
import type { DecodedFrame, FrameBytes } from '../types';
import { CodecError } from './errors';
import { decodedFrame, fullResolutionName, requireCompressible, requireDimensions, requireEndMarker, storedFromCodec } from './frame';
import type { PixelLayout } from './samples';
import type { EmscriptenCodec } from './wasm';
import { withDecoder } from './wasm';

export interface SizHeader {
  columns: number;
  rows: number;
  components: number;
  precision: number;
  signed: boolean;
  subsampled: boolean;
  /** image area offset (XOsiz, YOsiz): the reduced sizes depend on it (ISO/IEC 15444-1 B.5) */
  x0: number;
  y0: number;
}

/**
 * The codestream inside `data`. PS3.5 A.4.4 wants a bare codestream, but some writers store a JP2 file; we then
 * use the payload of its contiguous codestream box ('jp2c', ISO/IEC 15444-1 I.5.4) without copying.
 */
export function codestreamOf(data: Uint8Array): Uint8Array {
  const jp2Signature = data.length >= 12 && data[4] === 0x6a && data[5] === 0x50 && data[6] === 0x20 && data[7] === 0x20;
  if (!jp2Signature) return data;
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  let i = 0;
  while (i + 8 <= data.length) {
    let length = view.getUint32(i);
    const type = view.getUint32(i + 4);
    let header = 8;
    if (length === 1) {
      if (i + 16 > data.length) break;
      length = Number(view.getBigUint64(i + 8));
      header = 16;
    } else if (length === 0) {
      length = data.length - i;
    }
    if (length < header || i + length > data.length) break;
    if (type === 0x6a703263) return data.subarray(i + header, i + length); // 'jp2c'
    i += length;
  }
  throw new CodecError('CORRUPT_BITSTREAM', 'JP2 file without a codestream box');
}

/** SOC then SIZ (ISO/IEC 15444-1 A.5.1): image and component sizes. */
export function readSiz(codestream: Uint8Array, syntax: string): SizHeader {
  const c = codestream;
  if (c.length < 42 || c[0] !== 0xff || c[1] !== 0x4f || c[2] !== 0xff || c[3] !== 0x51) {
    throw new CodecError('CORRUPT_BITSTREAM', `${syntax} frame does not start with SOC, SIZ`);
  }
  const view = new DataView(c.buffer, c.byteOffset, c.length);
  const lsiz = view.getUint16(4);
  const components = view.getUint16(40);
  if (components < 1 || lsiz !== 38 + 3 * components || 4 + lsiz > c.length) {
    throw new CodecError('CORRUPT_BITSTREAM', `${syntax} SIZ marker segment is malformed`);
  }
  const columns = view.getUint32(8) - view.getUint32(16);
  const rows = view.getUint32(12) - view.getUint32(20);
  const ssiz = c[42];
  let subsampled = false;
  for (let k = 0; k < components; k++) {
    if (c[43 + 3 * k] !== 1 || c[44 + 3 * k] !== 1) subsampled = true;
  }
  return { columns, rows, components, precision: (ssiz & 0x7f) + 1, signed: (ssiz & 0x80) !== 0, subsampled,
    x0: view.getUint32(16), y0: view.getUint32(20) };
}

/**
 * The fewest wavelet decomposition levels any tile-component has (ISO/IEC 15444-1 A.6.1 COD, A.6.2 COC: the
 * number of decomposition levels, NL), over the main header and every tile-part header: discarding r resolution
 * levels needs r <= NL everywhere. 0 when a header cannot be walked (then only the full decode is attempted).
 */
export function decompositionLevels(codestream: Uint8Array, components: number): number {
  const c = codestream;
  const view = new DataView(c.buffer, c.byteOffset, c.length);
  let levels = 32;
  let found = false;
  const cocBytes = components < 257 ? 1 : 2;
  // One header: marker segments from `i` up to SOT (main header) or SOD (tile-part header).
  const header = (i: number, end: number): number => {
    while (i + 4 <= c.length && c[i] === 0xff) {
      const marker = c[i + 1];
      if (marker === end) return i;
      const length = view.getUint16(i + 2);
      if (length < 2 || i + 2 + length > c.length) return -1;
      if (marker === 0x52 && length >= 10) { levels = Math.min(levels, c[i + 9]); found = true; } // COD: Lcod Scod SGcod(4) NL
      if (marker === 0x53 && length >= 5 + cocBytes) { levels = Math.min(levels, c[i + 5 + cocBytes]); found = true; } // COC: Lcoc Ccoc Scoc NL
      i += 2 + length;
    }
    return -1;
  };
  let i = header(2, 0x90); // after SOC; SIZ is the first segment
  if (i < 0 || !found) return 0;
  // Tile-parts: SOT (Lsot 10, Isot, Psot, TPsot, TNsot), their header, SOD, data; Psot 0 = up to EOC.
  while (i + 12 <= c.length && c[i] === 0xff && c[i + 1] === 0x90) {
    const psot = view.getUint32(i + 6);
    if (header(i + 12, 0x93) < 0) return 0;
    if (psot === 0) break;
    if (psot < 14) return 0;
    i += psot;
  }
  return levels;
}

/** ceil(a / 2^r), as ISO/IEC 15444-1 B-5 computes reduced component bounds. */
const ceilShift = (a: number, r: number) => Math.ceil(a / 2 ** r);

/** The size of the image once `reduce` resolution levels are discarded (ISO/IEC 15444-1 B.5). */
export function reducedSize(siz: SizHeader, reduce: number): { columns: number; rows: number } {
  return {
    columns: ceilShift(siz.x0 + siz.columns, reduce) - ceilShift(siz.x0, reduce),
    rows: ceilShift(siz.y0 + siz.rows, reduce) - ceilShift(siz.y0, reduce),
  };
}

/**
 * The low-pass image overshoots at sharp edges (a value above the maximum next to a bright edge): OpenJPEG clamps
 * its output to the component's precision, OpenJPH to 16 bits only, so that masking to BitsStored would wrap
 * 1030 to 6. Clamp 16-bit codec output (little-endian) to the precision, in place.
 */
function clampToPrecision(bytes: Uint8Array, count: number, precision: number, signed: boolean): void {
  if (precision >= 16) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  const max = signed ? 2 ** (precision - 1) - 1 : 2 ** precision - 1, min = signed ? -(2 ** (precision - 1)) : 0;
  for (let i = 0; i < count; i++) {
    const v = signed ? view.getInt16(2 * i, true) : view.getUint16(2 * i, true);
    if (v > max) view.setInt16(2 * i, max, true);
    else if (v < min) view.setInt16(2 * i, min, true);
  }
}

/**
 * `reduce` (at most; 0 = full size): how many of the finest resolution levels may be left undecoded, each halving
 * the size (DecodeOptions.reduce). The codestream's own decomposition levels bound it. A reduced frame is the
 * wavelet's low-pass image (DecodedFrame.reduction), what a thumbnail needs at a fraction of the cost: OpenJPEG
 * and OpenJPH then skip the code-blocks of the finer levels altogether.
 */
export function decodeJpeg2000(frame: FrameBytes, layout: PixelLayout, high: boolean, reduce = 0): DecodedFrame {
  const syntax = high ? 'HTJ2K' : 'JPEG 2000';
  const codec: EmscriptenCodec = high ? 'openjph' : 'openjpeg';
  requireCompressible(layout, syntax);
  let codestream = codestreamOf(frame.data);
  const siz = readSiz(codestream, syntax);
  requireDimensions(syntax, layout, siz);
  codestream = requireEndMarker(syntax, codestream);
  if (siz.subsampled) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `${syntax} with subsampled components is not supported`);
  if (siz.precision > 16) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `${syntax} samples above 16 bits are not supported`);
  const level = reduce > 0 ? Math.min(reduce, decompositionLevels(codestream, siz.components)) : 0;
  const pi = layout.photometricInterpretation;
  const name = pi === 'YBR_ICT' || pi === 'YBR_RCT' ? 'RGB' : fullResolutionName(pi);
  if (level > 0) {
    const size = reducedSize(siz, level);
    const reduced: PixelLayout = { ...layout, ...size, pixelCount: size.columns * size.rows };
    let out: DecodedFrame | undefined;
    try {
      out = withDecoder(codec, (decoder) => {
        decoder.getEncodedBuffer(codestream.length).set(codestream);
        if (high) decoder.decodeSubResolution(level);
        else decoder.decodeSubResolution(level, 0); // 0: all quality layers
        const info = decoder.getFrameInfo();
        requireDimensions(syntax, layout, { columns: info.width, rows: info.height, components: info.componentCount });
        const bytes = decoder.getDecodedBuffer();
        // The codec's output must be the reduced size we expect; anything else is decoded again in full.
        const perSample = bytes.length / (reduced.pixelCount * reduced.samplesPerPixel);
        if (perSample !== 1 && perSample !== 2) return undefined;
        if (perSample === 2) clampToPrecision(bytes, reduced.pixelCount * reduced.samplesPerPixel, Math.min(layout.bitsStored, siz.precision), siz.signed);
        return { ...decodedFrame(reduced, storedFromCodec(codec, reduced, bytes, false), name), reduction: level };
      });
    } catch (e) {
      // e.g. a tile whose COD has fewer levels than the headers we read: the full decode decides
      if (!(e instanceof CodecError)) throw e;
    }
    if (out) return out;
  }
  return withDecoder(codec, (decoder) => {
    decoder.getEncodedBuffer(codestream.length).set(codestream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    requireDimensions(syntax, layout, { columns: info.width, rows: info.height, components: info.componentCount });
    const pixels = storedFromCodec(codec, layout, decoder.getDecodedBuffer(), false);
    return decodedFrame(layout, pixels, name);
  });
}

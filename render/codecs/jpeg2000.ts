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
  return { columns, rows, components, precision: (ssiz & 0x7f) + 1, signed: (ssiz & 0x80) !== 0, subsampled };
}

export function decodeJpeg2000(frame: FrameBytes, layout: PixelLayout, high: boolean): DecodedFrame {
  const syntax = high ? 'HTJ2K' : 'JPEG 2000';
  const codec: EmscriptenCodec = high ? 'openjph' : 'openjpeg';
  requireCompressible(layout, syntax);
  const codestream = codestreamOf(frame.data);
  const siz = readSiz(codestream, syntax);
  requireDimensions(syntax, layout, siz);
  requireEndMarker(syntax, codestream);
  if (siz.subsampled) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `${syntax} with subsampled components is not supported`);
  if (siz.precision > 16) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `${syntax} samples above 16 bits are not supported`);
  return withDecoder(codec, (decoder) => {
    decoder.getEncodedBuffer(codestream.length).set(codestream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    requireDimensions(syntax, layout, { columns: info.width, rows: info.height, components: info.componentCount });
    const pixels = storedFromCodec(codec, layout, decoder.getDecodedBuffer(), false);
    const pi = layout.photometricInterpretation;
    return decodedFrame(layout, pixels, pi === 'YBR_ICT' || pi === 'YBR_RCT' ? 'RGB' : fullResolutionName(pi));
  });
}

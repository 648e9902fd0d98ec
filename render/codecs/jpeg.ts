/**
 * JPEG (ISO/IEC 10918-1) in DICOM, PS3.5 8.2.1 and A.4.1. The frame header decides the decoder, not the Transfer
 * Syntax UID, because files are mislabelled in the wild (a lossless SOF3 stream under .4.50, 8-bit Process 2 under
 * .4.51):
 *   SOF3 (lossless, Huffman)            -> jpeg-lossless-decoder-js (pure JS; handles predictors 1..7, 2..16 bits)
 *   SOF0/1/2, 8-bit                     -> libjpeg-turbo 8-bit (cornerstone wasm); YCbCr is converted to RGB
 *   SOF1/2, 12-bit (Process 4)          -> libjpeg-turbo 12-bit inside dcmjs-codecs (cornerstone's own wasm is 8-bit
 *                                          only; its dicom-image-loader falls back to a vendored pdf.js decoder)
 *   SOF3 colour above 8 bits            -> libjpeg in dcmjs-codecs as well
 */
import type { DecodedFrame, FrameBytes } from '../types';
import { CodecError, codecFailure } from './errors';
import { decodedFrame, fullResolutionName, requireCompressible, requireDimensions, requireEndMarker, storedFromCodec } from './frame';
import type { PixelLayout } from './samples';
import { dcmjsCodecsFailed, dcmjsCodecsLibrary, withDecoder } from './wasm';

// The package ships no type declarations; this is the one call we make.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Decoder: LosslessDecoder } = require('jpeg-lossless-decoder-js') as {
  Decoder: new () => { decode(buffer: ArrayBufferLike, offset: number, length: number, numBytes: number): Uint8Array | Uint16Array };
};

export interface JpegFrameHeader {
  /** the SOFn marker's second byte, 0xc0..0xcf; 0xf7 is JPEG-LS SOF55 */
  marker: number;
  precision: number;
  rows: number;
  columns: number;
  components: number;
}

/** Markers without a length field (ISO/IEC 10918-1 B.1.1.3): TEM, RSTm, SOI, EOI. */
function standalone(marker: number): boolean {
  return marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9);
}

/**
 * Walk the marker segments up to the first frame header (SOFn, or SOF55 for JPEG-LS). Reads at most the header
 * bytes; throws CodecError if the stream ends or has no frame header before the first scan.
 */
export function readFrameHeader(data: Uint8Array, syntax: string): JpegFrameHeader {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) {
    throw new CodecError('CORRUPT_BITSTREAM', `${syntax} frame does not start with SOI`);
  }
  let i = 2;
  while (i + 4 <= data.length) {
    if (data[i] !== 0xff) throw new CodecError('CORRUPT_BITSTREAM', `${syntax} marker expected at byte ${i}`);
    const marker = data[i + 1];
    if (marker === 0xff) {
      i++; // fill byte (B.1.1.2)
      continue;
    }
    if (standalone(marker)) {
      i += 2;
      continue;
    }
    const length = (data[i + 2] << 8) | data[i + 3];
    const isSof = (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xf7;
    if (isSof) {
      if (length < 8 || i + 2 + length > data.length) break;
      return {
        marker,
        precision: data[i + 4],
        rows: (data[i + 5] << 8) | data[i + 6],
        columns: (data[i + 7] << 8) | data[i + 8],
        components: data[i + 9],
      };
    }
    if (marker === 0xda || length < 2) break; // a scan before any frame header, or a malformed length
    i += 2 + length;
  }
  throw new CodecError('CORRUPT_BITSTREAM', `${syntax} frame header not found`);
}

export function decodeJpeg(frame: FrameBytes, layout: PixelLayout): DecodedFrame {
  requireCompressible(layout, 'JPEG');
  const sof = readFrameHeader(frame.data, 'JPEG');
  requireDimensions('JPEG', layout, sof);
  const data = requireEndMarker('JPEG', frame.data);
  if (sof.marker === 0xc3) return decodeLossless(data, layout, sof);
  const huffmanDct = sof.marker === 0xc0 || sof.marker === 0xc1 || sof.marker === 0xc2;
  // Colour: libjpeg guesses the stream's colour space from JFIF / Adobe markers and component ids (1,2,3: YCbCr;
  // 'R','G','B': RGB; anything else, such as 0,1,2: YCbCr), and TurboJPEG converts whatever it takes for YCbCr.
  // DCMTK (dcmjpeg, default "+cp") converts only when the photometric interpretation says YBR: an RGB image is
  // taken as stored, whatever the markers say. So RGB frames go to libjpeg without colour conversion.
  if (huffmanDct && sof.precision === 8 && layout.samplesPerPixel === 3 && layout.photometricInterpretation === 'RGB') return decodeLibjpeg(data, layout, 8);
  if (huffmanDct && sof.precision === 8) return decodeTurbo8(data, layout);
  if ((sof.marker === 0xc1 || sof.marker === 0xc2) && sof.precision === 12) return decodeLibjpeg(data, layout, 12);
  throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', `JPEG process SOF${sof.marker - 0xc0} with ${sof.precision}-bit samples is not supported`);
}

function decodeTurbo8(data: Uint8Array, layout: PixelLayout): DecodedFrame {
  return withDecoder('libjpeg-turbo-8bit', (decoder) => {
    decoder.getEncodedBuffer(data.length).set(data);
    decoder.decode();
    const info = decoder.getFrameInfo();
    requireDimensions('JPEG', layout, { columns: info.width, rows: info.height, components: info.componentCount });
    const pixels = storedFromCodec('libjpeg-turbo', layout, decoder.getDecodedBuffer(), false);
    // TurboJPEG hands out RGB for any 3-component image: YCbCr (YBR_FULL, YBR_FULL_422) is converted by the codec.
    return decodedFrame(layout, pixels, layout.samplesPerPixel === 3 ? 'RGB' : layout.photometricInterpretation);
  });
}

/**
 * libjpeg-turbo's 12-bit build in dcmjs-codecs (it also decodes lossless SOF3 of any precision and component count,
 * which we use where the JS lossless decoder has no support: colour above 8 bits).
 */
function decodeLibjpeg(data: Uint8Array, layout: PixelLayout, precision: number): DecodedFrame {
  const { Context, NativeCodecs } = dcmjsCodecsLibrary();
  let output: Uint8Array | undefined;
  try {
    const context = new Context({
      width: layout.columns,
      height: layout.rows,
      bitsAllocated: precision > 8 ? 16 : 8,
      bitsStored: precision,
      samplesPerPixel: layout.samplesPerPixel,
      pixelRepresentation: layout.signed ? 1 : 0,
      planarConfiguration: 0,
      photometricInterpretation: layout.photometricInterpretation,
      encodedBuffer: data,
    });
    const lossy = precision === 12;
    const decoded = NativeCodecs.decodeJpeg(context, { convertColorspaceToRgb: lossy && layout.samplesPerPixel === 3 });
    output = decoded.getDecodedBuffer() as Uint8Array | undefined;
  } catch (err) {
    dcmjsCodecsFailed();
    throw codecFailure('libjpeg', err);
  }
  if (!output) throw new CodecError('CORRUPT_BITSTREAM', 'libjpeg produced no pixels');
  const pixels = storedFromCodec('libjpeg', layout, output, true);
  const converted = precision === 12 && layout.samplesPerPixel === 3;
  return decodedFrame(layout, pixels, converted ? 'RGB' : fullResolutionName(layout.photometricInterpretation));
}

function decodeLossless(data: Uint8Array, layout: PixelLayout, sof: JpegFrameHeader): DecodedFrame {
  if (sof.precision < 2 || sof.precision > 16) throw new CodecError('CORRUPT_BITSTREAM', 'JPEG lossless precision out of range');
  // The JS decoder only interleaves three components for 8-bit samples.
  if (layout.samplesPerPixel === 3 && sof.precision > 8) return decodeLibjpeg(data, layout, sof.precision);
  let output: Uint8Array | Uint16Array;
  try {
    output = new LosslessDecoder().decode(data.buffer, data.byteOffset, data.length, sof.precision > 8 ? 2 : 1);
  } catch (err) {
    throw codecFailure('JPEG lossless', err);
  }
  // The decoder stops at the end of data without complaint; a short frame shows as missing samples or zero rows.
  const bytes = new Uint8Array(output.buffer, output.byteOffset, output.byteLength);
  const pixels = storedFromCodec('JPEG lossless', layout, bytes, true);
  return decodedFrame(layout, pixels, fullResolutionName(layout.photometricInterpretation));
}

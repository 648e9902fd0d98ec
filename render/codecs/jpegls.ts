/**
 * JPEG-LS (ISO/IEC 14495-1), PS3.5 8.2.3 and A.4.3, decoded by CharLS (cornerstone wasm). CharLS writes the samples
 * in the stream's interleave mode: by pixel or by line come out interleaved, "none" (ILV 0) comes out as one plane
 * per component, which we interleave. Near-lossless streams (.4.81) decode the same way.
 */
import type { DecodedFrame, FrameBytes } from '../types';
import { CodecError } from './errors';
import { decodedFrame, fullResolutionName, requireCompressible, requireDimensions, requireEndMarker, storedFromCodec } from './frame';
import { readFrameHeader } from './jpeg';
import type { PixelLayout } from './samples';
import { interleave } from './samples';
import { withDecoder } from './wasm';

const INTERLEAVE_NONE = 0;

export function decodeJpegLs(frame: FrameBytes, layout: PixelLayout): DecodedFrame {
  requireCompressible(layout, 'JPEG-LS');
  const sof = readFrameHeader(frame.data, 'JPEG-LS');
  if (sof.marker !== 0xf7) throw new CodecError('CORRUPT_BITSTREAM', 'JPEG-LS frame has no SOF55 header');
  requireDimensions('JPEG-LS', layout, sof);
  const data = requireEndMarker('JPEG-LS', frame.data);
  if (sof.precision < 2 || sof.precision > 16) throw new CodecError('CORRUPT_BITSTREAM', 'JPEG-LS precision out of range');
  return withDecoder('charls', (decoder) => {
    decoder.getEncodedBuffer(data.length).set(data);
    decoder.decode();
    const info = decoder.getFrameInfo();
    requireDimensions('JPEG-LS', layout, { columns: info.width, rows: info.height, components: info.componentCount });
    let pixels = storedFromCodec('CharLS', layout, decoder.getDecodedBuffer(), false);
    if (layout.samplesPerPixel === 3 && decoder.getInterleaveMode() === INTERLEAVE_NONE) {
      pixels = interleave(pixels, layout.pixelCount);
    }
    return decodedFrame(layout, pixels, fullResolutionName(layout.photometricInterpretation));
  });
}

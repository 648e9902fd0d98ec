/**
 * Contracts of the rendering library. The library knows nothing of HTTP or storage:
 * frame bytes + an ImageDescription + options in, pixels (and encoded images) out.
 */

/** What a decoder needs to know about one frame (PS3.3 C.7.6.3 Image Pixel Module). */
export interface FrameInfo {
  rows: number;
  columns: number;
  bitsAllocated: number; // 1, 8, 16, 32, 64
  bitsStored: number;
  highBit: number;
  pixelRepresentation: number; // 0 unsigned, 1 two's complement
  samplesPerPixel: number; // 1 or 3
  photometricInterpretation: string; // as stored in the file
  planarConfiguration: number; // 0 interleaved, 1 planar (native colour only)
  /** 'int' for Pixel Data, 'float32' for Float Pixel Data, 'float64' for Double Float Pixel Data */
  pixelFormat?: 'int' | 'float32' | 'float64';
}

export type PixelArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/**
 * A decoded frame. Grey: one value per pixel, already masked to BitsStored and sign-extended when
 * PixelRepresentation is 1 ("stored values"). Colour: always interleaved (R,G,B,R,G,B...), and
 * photometricInterpretation tells what the samples now are (e.g. a JPEG baseline YBR_FULL_422 frame decoded
 * by libjpeg-turbo comes back as RGB; an uncompressed YBR_FULL frame stays YBR_FULL).
 */
export interface DecodedFrame {
  pixels: PixelArray;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  /** bits of the stored values after decode (grey) */
  bitsStored: number;
  signed: boolean;
}

/** Where one frame's bytes are handed to the decoder. */
export interface FrameBytes {
  /** native: the frame's bytes; encapsulated: the frame's compressed bitstream (fragments joined) */
  data: Uint8Array;
  /** BitsAllocated 1 only: the bit at which this frame starts within data[0] (frames are not byte aligned) */
  bitOffset?: number;
}

/**
 * Contracts of the rendering library. The library knows nothing of HTTP or storage:
 * frame bytes + an ImageDescription + options in, pixels (and encoded images) out.
 */
import type { AppliedPresentation } from './presentation-state';

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
  /**
   * 8-bit samples in Pixel Data of VR OW. In Explicit VR Big Endian, OW is a string of 16-bit words, so each pair of
   * 8-bit samples is stored swapped (PS3.5 7.3, Annex D); DCMTK writes 8-bit images so. Little endian: no effect.
   */
  pixelDataOW?: boolean;
  /** 'int' for Pixel Data, 'float32' for Float Pixel Data, 'float64' for Double Float Pixel Data */
  pixelFormat?: 'int' | 'float32' | 'float64';
  /**
   * Set by describeImage when an overlay plane lives in the unused bits of Pixel Data (OverlayDescription.embedded):
   * the native and RLE decoders then keep the frame's unmasked words (DecodedFrame.rawWords) for the overlay step.
   */
  embeddedOverlays?: boolean;
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
  /**
   * Set only when decodeFrame was asked to keep native samples packed (DecodeOptions.packed): `pixels` are then
   * the frame's own 16-bit words, unmasked, and each stored value is bits packedShift .. packedShift+bitsStored-1
   * of its word, sign-extended when `signed`. The grey renderer folds that into its table (no extraction pass);
   * storedValues() in render.ts extracts them for anything else.
   */
  packedShift?: number;
  /**
   * Grey native and RLE frames of an image with embedded overlays (FrameInfo.embeddedOverlays), when `pixels` are not
   * the words themselves (packedShift): the frame's samples as stored, unmasked, BitsAllocated 8 or 16 each, in the
   * byte order given. A view on the decoder's input or output, not a copy. The overlay step reads the planes that
   * retired overlays (PS3.3-2004 C.9.2, Overlay Bit Position above High Bit) keep in the bits masked off `pixels`.
   */
  rawWords?: { bytes: Uint8Array; bitsAllocated: 8 | 16; bigEndian: boolean };
  /**
   * JPEG 2000 / HTJ2K decoded at a lower resolution (DecodeOptions.reduce): this many resolution levels were left
   * out, so `rows` and `columns` are the image's divided by 2^reduction, rounded up, and each sample is the wavelet's
   * low-pass value over a 2^reduction square. Only renderFrame with a viewport that shrinks at least that much takes it.
   */
  reduction?: number;
}

/** Where one frame's bytes are handed to the decoder. */
export interface FrameBytes {
  /** native: the frame's bytes; encapsulated: the frame's compressed bitstream (fragments joined) */
  data: Uint8Array;
  /** BitsAllocated 1 only: the bit at which this frame starts within data[0] (frames are not byte aligned) */
  bitOffset?: number;
}

/* ------------------------------------------------------------------------------------------------
 * Rendering pipeline contracts (render/index.ts). An ImageDescription is plain JSON: it is recorded
 * once at ingest (describeImage) and loaded per request.
 * ---------------------------------------------------------------------------------------------- */

/** A LUT as described by a LUT Descriptor (PS3.3 C.11.1.1.1 / C.7.6.3.1.5), descriptor quirks resolved. */
export interface LutData {
  /** first stored (or input) value mapped, already read as signed when the input is signed */
  firstMapped: number;
  /** bits per entry (8..16) */
  bits: number;
  /** one output value per entry; data.length is the number of entries (0 in the descriptor means 65536) */
  data: number[];
  explanation?: string;
}

/** PS3.3 C.11.1 Modality LUT: either Rescale Slope/Intercept or a Modality LUT Sequence item. */
export type ModalityLutDescription =
  | { kind: 'rescale'; slope: number; intercept: number; type?: string }
  | { kind: 'lut'; lut: LutData; type?: string };

export type VoiLutFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface WindowDescription { center: number; width: number; explanation?: string }

/** PS3.3 C.11.2 VOI LUT: all window pairs, the VOI LUT Function and the VOI LUT Sequence items. */
export interface VoiDescription {
  windows: WindowDescription[];
  function: VoiLutFunction;
  luts: LutData[];
}

/** One Overlay Plane (PS3.3 C.9.2), group 60xx. */
export interface OverlayDescription {
  group: number; // 0x6000..0x601E
  rows: number;
  columns: number;
  /** Overlay Origin (60xx,0050), 1-based row and column of the overlay's top left pixel */
  originRow: number;
  originColumn: number;
  type: 'G' | 'R';
  bitsAllocated: number;
  bitPosition: number;
  /** Image Frame Origin (60xx,0051), 1-based */
  imageFrameOrigin: number;
  /** Number of Frames in Overlay (60xx,0015) */
  numberOfFrames: number;
  /** Overlay Data (60xx,3000), bit-packed, base64; absent for overlays embedded in Pixel Data high bits */
  data?: string;
  /** overlay stored in unused bits of Pixel Data (retired, PS3.3-2004 C.9.2): bit `bitPosition` of each stored word */
  embedded?: boolean;
  label?: string;
  description?: string;
}

export interface PaletteDescription { red: LutData; green: LutData; blue: LutData }

/** Per-frame values of an Enhanced multi-frame object (PS3.3 C.7.6.16): Pixel Value Transformation, Frame VOI LUT. */
export interface FrameGroupDescription {
  modalityLut?: ModalityLutDescription;
  voi?: VoiDescription;
}

export interface ImageDescription {
  frame: FrameInfo;
  numberOfFrames: number;
  modality?: string;
  sopInstanceUID?: string;
  modalityLut: ModalityLutDescription;
  voi: VoiDescription;
  /** Presentation LUT Shape (2050,0020) when present in the image */
  presentationLutShape?: 'IDENTITY' | 'INVERSE';
  pixelPaddingValue?: number;
  pixelPaddingRangeLimit?: number;
  palette?: PaletteDescription;
  overlays: OverlayDescription[];
  /**
   * Set at ingest when Pixel Data is encapsulated (undefined length, items) under a native transfer syntax in the
   * file meta, a gateway bug DCMTK's parser reads through: the syntax the fragments are in, told from their content
   * (detectEncapsulatedSyntax). Frames are decoded with it instead of the file's syntax.
   */
  encapsulatedSyntaxUID?: string;
  /** Shared (5200,9229) and Per-Frame (5200,9230) Functional Groups, when the object has them */
  sharedGroup?: FrameGroupDescription;
  perFrameGroups?: Array<FrameGroupDescription | null>;
}

export interface RenderOptions {
  window?: { center: number; width: number; function?: VoiLutFunction };
  /** PS3.18 8.3.5.1.3: viewport=vw,vh[,sx,sy,sw,sh] */
  viewport?: { vw: number; vh: number; sx?: number; sy?: number; sw?: number; sh?: number };
  /** burn in overlays (default true) */
  overlays?: boolean;
  /** overlay colour (default white) */
  overlayColor?: [number, number, number];
  /** a Grayscale Softcopy Presentation State applied to this frame (presentation-state.ts presentationFor) */
  presentation?: AppliedPresentation;
  /**
   * Server extension: flip the output after the VOI and Presentation LUT (grey: white <-> black, so MONOCHROME1
   * looks like MONOCHROME2; colour: each channel). Overlays and annotation keep their colour.
   */
  invert?: boolean;
}

export interface RenderedImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** A grey image of 16 bits per sample (renderFrame16: bitdepth=16), samples in host order. */
export interface RenderedImage16 {
  width: number;
  height: number;
  channels: 1;
  data: Uint16Array;
}

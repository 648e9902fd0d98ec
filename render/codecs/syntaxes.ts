/**
 * Transfer Syntax UIDs we decode (PS3.5 Section 10 and Annex A.4) and the media type of their bulk data
 * (PS3.18 Section 8.7.3, Table 8.7.3-5 "Media Types and Transfer Syntax UIDs for Compressed Data in Bulkdata").
 */
export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JPEGBaseline8Bit: '1.2.840.10008.1.2.4.50',
  JPEGExtended12Bit: '1.2.840.10008.1.2.4.51',
  JPEGLossless: '1.2.840.10008.1.2.4.57',
  JPEGLosslessSV1: '1.2.840.10008.1.2.4.70',
  JPEGLSLossless: '1.2.840.10008.1.2.4.80',
  JPEGLSNearLossless: '1.2.840.10008.1.2.4.81',
  JPEG2000Lossless: '1.2.840.10008.1.2.4.90',
  JPEG2000: '1.2.840.10008.1.2.4.91',
  HTJ2KLossless: '1.2.840.10008.1.2.4.201',
  HTJ2KLosslessRPCL: '1.2.840.10008.1.2.4.202',
  HTJ2K: '1.2.840.10008.1.2.4.203',
  RLELossless: '1.2.840.10008.1.2.5',
} as const;

/** How the frame bytes of a syntax are to be decoded. */
export type SyntaxFamily = 'native' | 'native-big-endian' | 'rle' | 'jpeg' | 'jpeg-ls' | 'jpeg2000' | 'htj2k';

const FAMILY: Readonly<Record<string, SyntaxFamily>> = {
  [TransferSyntax.ImplicitVRLittleEndian]: 'native',
  [TransferSyntax.ExplicitVRLittleEndian]: 'native',
  // The caller inflates the whole dataset (PS3.5 A.5); the frame bytes are then Explicit VR Little Endian.
  [TransferSyntax.DeflatedExplicitVRLittleEndian]: 'native',
  [TransferSyntax.ExplicitVRBigEndian]: 'native-big-endian',
  [TransferSyntax.JPEGBaseline8Bit]: 'jpeg',
  [TransferSyntax.JPEGExtended12Bit]: 'jpeg',
  [TransferSyntax.JPEGLossless]: 'jpeg',
  [TransferSyntax.JPEGLosslessSV1]: 'jpeg',
  [TransferSyntax.JPEGLSLossless]: 'jpeg-ls',
  [TransferSyntax.JPEGLSNearLossless]: 'jpeg-ls',
  [TransferSyntax.JPEG2000Lossless]: 'jpeg2000',
  [TransferSyntax.JPEG2000]: 'jpeg2000',
  [TransferSyntax.HTJ2KLossless]: 'htj2k',
  [TransferSyntax.HTJ2KLosslessRPCL]: 'htj2k',
  [TransferSyntax.HTJ2K]: 'htj2k',
  [TransferSyntax.RLELossless]: 'rle',
};

/**
 * PS3.18 Table 8.7.3-5. Note the current standard spells the RLE type `image/dicom-rle` (older drafts and PS3.2
 * conformance templates use `image/x-dicom-rle`) and JPEG-LS `image/jls`; HTJ2K bitstreams are `image/jphc`
 * (a codestream without the JP2 box, unlike the rendered `image/jph`).
 */
const MEDIA_TYPE: Readonly<Record<SyntaxFamily, string>> = {
  native: 'application/octet-stream',
  'native-big-endian': 'application/octet-stream',
  rle: 'image/dicom-rle',
  jpeg: 'image/jpeg',
  'jpeg-ls': 'image/jls',
  jpeg2000: 'image/jp2',
  htj2k: 'image/jphc',
};

export function syntaxFamily(transferSyntaxUID: string): SyntaxFamily | undefined {
  return Object.prototype.hasOwnProperty.call(FAMILY, transferSyntaxUID) ? FAMILY[transferSyntaxUID] : undefined;
}

export function isSupportedTransferSyntax(transferSyntaxUID: string): boolean {
  return syntaxFamily(transferSyntaxUID) !== undefined;
}

/** True for syntaxes whose Pixel Data is encapsulated (PS3.5 A.4): one compressed bitstream per frame. */
export function isEncapsulated(transferSyntaxUID: string): boolean {
  const family = syntaxFamily(transferSyntaxUID);
  return family !== undefined && family !== 'native' && family !== 'native-big-endian';
}

/**
 * Media type of a frame's bytes as stored, for WADO-RS frame retrieval without transcoding
 * (PS3.18 8.7.3.3.2); undefined for a syntax we do not know.
 */
export function nativeMediaType(transferSyntaxUID: string): string | undefined {
  const family = syntaxFamily(transferSyntaxUID);
  return family === undefined ? undefined : MEDIA_TYPE[family];
}

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

/**
 * The transfer syntax a compressed frame is in, told from its first bytes, for encapsulated Pixel Data found under a
 * native syntax: JPEG by its frame header (SOF3 lossless; SOF0 8-bit baseline; SOF1/SOF2 extended), JPEG-LS by
 * SOF55, JPEG 2000 by its codestream (SOC, SIZ) or JP2 signature box, RLE by its 64-byte header (PS3.5 G.3.1:
 * 1 to 15 segments, the first at offset 64). Undefined when none fits.
 */
export function detectEncapsulatedSyntax(head: Uint8Array): string | undefined {
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0xd8) {
    let i = 2;
    while (i + 4 <= head.length && head[i] === 0xff) {
      const m = head[i + 1];
      if (m === 0xff) { i++; continue; }
      if (m === 0x01 || (m >= 0xd0 && m <= 0xd9)) { i += 2; continue; }
      if (m === 0xf7) return TransferSyntax.JPEGLSLossless;
      if (m === 0xc3) return TransferSyntax.JPEGLosslessSV1;
      if (m === 0xc0) return TransferSyntax.JPEGBaseline8Bit;
      if (m === 0xc1 || m === 0xc2) return TransferSyntax.JPEGExtended12Bit;
      if (m === 0xda) return undefined;
      i += 2 + ((head[i + 2] << 8) | head[i + 3]);
    }
    return undefined;
  }
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0x4f && head[2] === 0xff && head[3] === 0x51) return TransferSyntax.JPEG2000;
  if (head.length >= 12 && head[4] === 0x6a && head[5] === 0x50 && head[6] === 0x20 && head[7] === 0x20) return TransferSyntax.JPEG2000;
  if (head.length >= 64) {
    const v = new DataView(head.buffer, head.byteOffset, 64);
    const n = v.getUint32(0, true);
    if (n >= 1 && n <= 15 && v.getUint32(4, true) === 64) {
      let ok = true;
      for (let k = 1; k < n; k++) if (v.getUint32(4 + 4 * k, true) <= v.getUint32(4 * k, true)) ok = false;
      for (let k = n; k < 15; k++) if (v.getUint32(4 + 4 * k, true) !== 0) ok = false;
      if (ok) return TransferSyntax.RLELossless;
    }
  }
  return undefined;
}

/**
 * Transcoding on retrieve (PS3.18 8.7.3): a stored instance as a Part 10 file in another transfer syntax, and single
 * frames in another compressed syntax. Everything is streamed: the dataset is re-serialised element by element
 * (dicom/write.ts) and Pixel Data frame by frame, so memory stays at a few frames whatever the instance's size.
 *
 * Rules (also in conformance/CONFORMANCE.md):
 * - Any stored syntax we decode → Explicit VR Little Endian. Native sources are re-serialised without decoding
 *   (their pixel bytes copied, byte-swapped for big endian); encapsulated ones are decoded frame by frame.
 * - → RLE, JPEG Lossless SV1, JPEG-LS lossless, JPEG 2000 lossless, HTJ2K lossless: from any source that is not
 *   lossy. A lossy source (lossy transfer syntax, or Lossy Image Compression "01") is never re-encoded into a
 *   lossless syntax, which would claim a fidelity the pixels no longer have: no path (406).
 * - → JPEG baseline (lossy): only when that syntax is named; Lossy Image Compression "01", the ratio (of the first
 *   frame: the value is written before the frames are) and the method ISO_10918_1 are added to any earlier ones.
 *   The SOP Instance UID is kept: the response is a representation of the instance the URL names, as a lossy
 *   transfer syntax negotiated over DIMSE is (PS3.3 C.7.6.1.1.5's new UID is for a new, derived image that is
 *   stored as such).
 * - Instances without Pixel Data asked for in a compressed syntax come in Explicit VR Little Endian (there is
 *   nothing to compress), and say so in their part's Content-Type.
 */
import * as zlib from 'zlib';
import { ServerContext } from './context';
import { InstanceInfo } from './instances';
import { frameAt } from '../dicom/frames';
import { MAX_INFLATED_BYTES } from './ingest';
import {
  AsyncByteSource, BufferByteSource, WindowedSource, PixelElement, SourceSyntax, UNDEFINED_LENGTH,
  elementHeader, fileMeta, stringElement, usElement, writeExplicitLittle,
} from '../dicom/write';
import {
  cannotEncode, isEncapsulated, isEncodable, isLossyTarget, isSupportedTransferSyntax, CodecError,
} from '../render/codecs';
import type { FrameInfo } from '../render/types';
import { encodeInfo, frameOut, FrameCoder, EXPLICIT_LE } from './transcode-frame';

export { EXPLICIT_LE };
export const IMPLICIT_LE = '1.2.840.10008.1.2';
export const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DEFLATED = '1.2.840.10008.1.2.1.99';
const LOSSY_SYNTAXES = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.93', '1.2.840.10008.1.2.4.203']);
const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1417.1';
const IMPLEMENTATION_VERSION = 'DICOMWEB-RENDER';

function attr(info: InstanceInfo, tag: string): any[] | undefined {
  // The metadata holds only a placeholder for the base URL; the attributes we read are plain values.
  const ds = parsedMetadata(info);
  return ds?.[tag]?.Value;
}
const metadataCache = new WeakMap<InstanceInfo, any>();
function parsedMetadata(info: InstanceInfo): any {
  let m = metadataCache.get(info);
  if (m === undefined) {
    try { m = JSON.parse(info.metadata); } catch { m = null; }
    metadataCache.set(info, m);
  }
  return m;
}

/** True when the stored pixels have been through lossy compression (syntax, or Lossy Image Compression 01). */
export function storedIsLossy(info: InstanceInfo): boolean {
  return LOSSY_SYNTAXES.has(info.transferSyntaxUID) || String(attr(info, '00282110')?.[0] ?? '').trim() === '01';
}

function pixelRef(info: InstanceInfo) {
  return info.bulk.refs.find((r) => r.path === '7FE00010' || r.path === '7FE00008' || r.path === '7FE00009');
}

/**
 * The transfer syntax the instance will be written in when `target` is asked for, or a reason why there is no
 * path (→ 406). `target` is never Implicit VR Little Endian or Big Endian (PS3.18 8.7.3: not used by web services).
 */
export function instanceTarget(ctx: ServerContext, info: InstanceInfo, target: string): { syntax: string } | { reason: string } {
  const stored = info.transferSyntaxUID;
  if (target === stored) return { syntax: stored };
  if (target !== EXPLICIT_LE && !isEncodable(target)) return { reason: `we do not encode transfer syntax ${target}` };
  const ref = pixelRef(info);
  if (!ref) return { syntax: EXPLICIT_LE }; // nothing to compress: the dataset in Explicit VR Little Endian
  const storedEncapsulated = isEncapsulated(stored);
  if (target === EXPLICIT_LE && !storedEncapsulated && isSupportedTransferSyntax(stored)) return { syntax: EXPLICIT_LE };
  if (!isSupportedTransferSyntax(stored)) return { reason: `stored transfer syntax ${stored} is not one we decode` };
  const f: FrameInfo | undefined = info.render?.frame;
  if (!f) return { reason: 'the stored pixel data cannot be decoded' };
  if (info.frameCount !== Math.max(1, info.numberOfFrames)) return { reason: 'not every frame of the stored pixel data could be located' };
  if (f.rows * f.columns > ctx.config.limits.maxRenderPixels) return { reason: 'frames larger than the decoding pixel limit' };
  if (target === EXPLICIT_LE) {
    // A native Pixel Data value has a 32-bit length (PS3.5 7.1.2): larger pixels stay compressed (PS3.18 8.7.3).
    const bytes = f.rows * f.columns * f.samplesPerPixel * Math.ceil(f.bitsAllocated / 8) * info.frameCount;
    return bytes >= 0xfffffffe ? { reason: 'the decoded pixel data would not fit a 32-bit length' } : { syntax: EXPLICIT_LE };
  }
  if (storedIsLossy(info) && !isLossyTarget(target)) return { reason: 'lossy compressed pixels are not re-encoded in a lossless transfer syntax' };
  const why = cannotEncode(target, encodeInfo(f));
  return why ? { reason: why } : { syntax: target };
}

/** Frame `n` (1-based) as stored: native bytes or the compressed bitstream (fragments joined). */
async function storedFrame(src: AsyncByteSource, info: InstanceInfo, n: number): Promise<{ data: Buffer; bitOffset?: number }> {
  const loc = frameAt(info.frames, n)!;
  const parts = await Promise.all(loc.ranges.map((r) => src.read(r.offset, r.length)));
  return { data: parts.length === 1 ? parts[0] : Buffer.concat(parts), bitOffset: loc.bitOffset };
}

async function openSource(ctx: ServerContext, info: InstanceInfo): Promise<{ src: AsyncByteSource; start: number; syntax: SourceSyntax }> {
  const stored = info.transferSyntaxUID;
  if (info.bulk.deflated || stored === DEFLATED) {
    // PS3.5 A.5: the dataset is one deflate stream; offsets recorded at ingest are into its inflated form.
    // In zlib's thread pool, not on the event loop; at most what ingest accepted (256 MiB, server/ingest.ts).
    const file = await ctx.blobs.readAll(info.blobKey);
    const inflated = await new Promise<Buffer>((resolve, reject) => zlib.inflateRaw(file.subarray(info.bulk.datasetOffset),
      { maxOutputLength: MAX_INFLATED_BYTES }, (err, out) => (err ? reject(new CodecError('CORRUPT_BITSTREAM', 'the stored deflated dataset does not inflate')) : resolve(out))));
    return { src: new BufferByteSource(inflated), start: 0, syntax: { little: true, explicit: true } };
  }
  const src = new WindowedSource((o, l) => ctx.blobs.read(info.blobKey, o, l), info.size);
  const syntax = stored === IMPLICIT_LE ? { little: true, explicit: false } : stored === EXPLICIT_BE ? { little: false, explicit: true } : { little: true, explicit: true };
  return { src, start: info.bulk.datasetOffset, syntax };
}

function item(data: Buffer): Buffer[] {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0xfffe, 0); h.writeUInt16LE(0xe000, 2); h.writeUInt32LE(data.length + (data.length % 2), 4);
  return data.length % 2 ? [h, data, Buffer.from([0])] : [h, data];
}

/** DS value of at most 16 characters (PS3.5 6.2). */
function ds(n: number): string {
  for (let d = 3; d >= 0; d--) { const s = n.toFixed(d); if (s.length <= 16) return s; }
  return n.toExponential(6);
}

/**
 * The instance as a Part 10 file in `syntax` (as instanceTarget answered), chunk by chunk. Chunks are written
 * before the next frame is decoded: the caller waits for the socket to drain, so memory stays bounded.
 */
export async function* instanceIn(ctx: ServerContext, info: InstanceInfo, syntax: string, coder: FrameCoder = frameOut): AsyncGenerator<Buffer> {
  const stored = info.transferSyntaxUID;
  if (syntax === stored) {
    for await (const chunk of ctx.blobs.stream(info.blobKey)) yield chunk as Buffer;
    return;
  }
  const { src, start, syntax: srcSyntax } = await openSource(ctx, info);
  const ref = pixelRef(info);
  const f: FrameInfo | undefined = info.render?.frame;
  const replace = new Map<string, Buffer | null>();
  const decode = !!ref && (isEncapsulated(stored) || syntax !== EXPLICIT_LE);
  let pixel: ((e: PixelElement) => AsyncIterable<Buffer>) | undefined;

  if (decode) {
    if (!f) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', 'the stored pixel data cannot be decoded');
    const frames = info.frameCount;
    // The first frame before anything is written: its output tells Photometric Interpretation, Bits Stored and the ratio.
    const first = await coder(stored, syntax, await storedFrame(src, info, 1), f);
    replace.set('00280004', stringElement('00280004', 'CS', [first.photometricInterpretation]));
    if (f.samplesPerPixel > 1) replace.set('00280006', usElement('00280006', 0));
    if (first.bitsStored !== f.bitsStored || f.highBit !== f.bitsStored - 1) {
      replace.set('00280101', usElement('00280101', first.bitsStored));
      replace.set('00280102', usElement('00280102', first.bitsStored - 1));
    }
    replace.set('7FE00001', null); // Extended Offset Table and its lengths describe the stored fragments
    replace.set('7FE00002', null);
    const lossyNow = isLossyTarget(syntax);
    if (lossyNow || storedIsLossy(info)) replace.set('00282110', stringElement('00282110', 'CS', ['01']));
    if (lossyNow) {
      const ratios = (attr(info, '00282112') ?? []).map(String);
      const methods = (attr(info, '00282114') ?? []).map(String);
      const ratio = first.decodedBytes / Math.max(1, first.bytes.length);
      replace.set('00282112', stringElement('00282112', 'DS', [...ratios, ds(ratio)]));
      replace.set('00282114', stringElement('00282114', 'CS', [...methods, 'ISO_10918_1']));
    }
    const native = syntax === EXPLICIT_LE;
    pixel = async function* () {
      if (native) {
        const total = first.bytes.length * frames;
        yield elementHeader('7FE00010', f.bitsAllocated > 8 ? 'OW' : 'OB', total + (total % 2));
        yield first.bytes;
      } else {
        yield Buffer.concat([elementHeader('7FE00010', 'OB', UNDEFINED_LENGTH), ...item(Buffer.alloc(0)), ...item(first.bytes)]);
      }
      for (let n = 2; n <= frames; n++) {
        const out = await coder(stored, syntax, await storedFrame(src, info, n), f);
        if (native && out.bytes.length !== first.bytes.length) throw new CodecError('SIZE_MISMATCH', `frame ${n} decodes to another size`);
        yield native ? out.bytes : Buffer.concat(item(out.bytes));
      }
      if (native) { if ((first.bytes.length * frames) % 2) yield Buffer.from([0]); }
      else { const end = Buffer.alloc(8); end.writeUInt16LE(0xfffe, 0); end.writeUInt16LE(0xe0dd, 2); yield end; }
    };
  }
  const outSyntax = ref ? syntax : EXPLICIT_LE;
  yield fileMeta({ sopClassUID: info.sopClassUID, sopInstanceUID: info.sopInstanceUID, transferSyntaxUID: outSyntax,
    implementationClassUID: IMPLEMENTATION_CLASS_UID, implementationVersionName: IMPLEMENTATION_VERSION });
  yield* writeExplicitLittle(src, {
    syntax: srcSyntax, start, end: src.size,
    pixelDataEnd: ref ? ref.offset + ref.length : undefined,
    replace, pixel, pixelRepresentation: f?.pixelRepresentation ?? attr(info, '00280103')?.[0],
  });
}



/**
 * One frame decoded and, for a compressed target, encoded: the step of transcoding that costs CPU. It runs in a
 * render worker (server/render-worker.ts), never on the event loop: a JPEG 2000 or HTJ2K frame takes tens to
 * hundreds of milliseconds. Only the rendering library's codecs here, so a worker loads nothing of storage.
 */
import { decodeFrame, encodeFrame, initCodecsFor, initEncoders, EncodeInfo } from '../render/codecs';
import type { DecodedFrame, FrameInfo } from '../render/types';

export const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export function encodeInfo(f: FrameInfo): EncodeInfo {
  return { bitsAllocated: f.bitsAllocated, bitsStored: f.bitsStored, samplesPerPixel: f.samplesPerPixel,
    signed: f.pixelRepresentation === 1, format: f.pixelFormat ?? 'int' };
}

/** Decoded stored values as native little-endian bytes of BitsAllocated each (PS3.5 8.1.1; High Bit = Bits Stored - 1). */
function nativeBytes(d: DecodedFrame, bitsAllocated: number): Buffer {
  const n = d.pixels.length;
  if (bitsAllocated === 8) { const o = new Uint8Array(n); for (let i = 0; i < n; i++) o[i] = (d.pixels[i] as number) & 0xff; return Buffer.from(o.buffer); }
  if (bitsAllocated === 16) { const o = new Uint16Array(n); for (let i = 0; i < n; i++) o[i] = (d.pixels[i] as number) & 0xffff; return Buffer.from(o.buffer); }
  const o = new Uint32Array(n); for (let i = 0; i < n; i++) o[i] = (d.pixels[i] as number) >>> 0;
  return Buffer.from(o.buffer);
}

/** One frame, decoded and (for a compressed target) encoded; runs synchronously between awaits. */
export interface FrameOut { bytes: Buffer; photometricInterpretation: string; bitsStored: number; decodedBytes: number }

function frameOutSync(stored: string, target: string, frame: { data: Buffer; bitOffset?: number }, f: FrameInfo): FrameOut {
  const decoded = decodeFrame(stored, { data: frame.data, bitOffset: frame.bitOffset }, f);
  const decodedBytes = decoded.pixels.length * Math.max(1, f.bitsAllocated / 8);
  if (target === EXPLICIT_LE) {
    return { bytes: nativeBytes(decoded, f.bitsAllocated), photometricInterpretation: decoded.photometricInterpretation, bitsStored: decoded.bitsStored, decodedBytes };
  }
  const e = encodeFrame(target, decoded, encodeInfo(f));
  return { bytes: Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength), photometricInterpretation: e.photometricInterpretation, bitsStored: e.bitsStored, decodedBytes };
}

/** A frame in `target`: decoded to native bytes (Explicit VR Little Endian) or encoded; codecs loaded first. */
export async function frameOut(stored: string, target: string, frame: { data: Buffer; bitOffset?: number }, f: FrameInfo): Promise<FrameOut> {
  await initCodecsFor(stored);
  if (target !== EXPLICIT_LE) await initEncoders(target);
  return frameOutSync(stored, target, frame, f);
}

/** Where frames are decoded and encoded: a render worker (RenderService.transcodeFrame), or this thread. */
export type FrameCoder = (stored: string, target: string, frame: { data: Buffer; bitOffset?: number }, f: FrameInfo) => Promise<FrameOut>;

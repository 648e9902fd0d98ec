/**
 * One rendering task: decode a frame, run the pipeline, encode. Runs in a worker thread (piscina) or, with
 * RENDER_WORKERS=0, on the main thread. Errors cross the thread boundary as { status, reason }; an image
 * crosses it by transfer, not copy.
 */
import { isMainThread } from 'worker_threads';
import { move } from 'piscina';
import { decodeFrame, initCodecs, initCodecsFor, isEncapsulated, trimCodecHeaps, CodecError } from '../render/codecs';
import { renderFrame, renderFrame16, encodeImage, encodePng16, RenderError, annotate, annotationText, appliedVoi, describeImage } from '../render';
import { tableCache } from '../render/render';
import { applyIccProfile, embedJpeg, embedPng, IccError, type IccSpace } from '../render/icc';
import { collectGarbage, GarbageBudget } from './gc';
import { frameOut, type FrameOut } from './transcode-frame';
import type { DecodedFrame, ImageDescription, RenderOptions, RenderedMediaType } from '../render';

export interface RenderTask {
  transferSyntaxUID: string;
  /** the frame's stored bytes (native) or bitstream (encapsulated); not needed when `decoded` is given */
  data?: Uint8Array;
  /** the frame already decoded by an earlier task (its samples in shared memory) */
  decoded?: DecodedFrame;
  bitOffset?: number;
  /** JPEG 2000 / HTJ2K: resolution levels the decode may leave out (DecodeOptions.reduce, bounded by maxReduction) */
  reduce?: number;
  desc: ImageDescription;
  frameNumber: number;
  options: RenderOptions;
  mediaType: RenderedMediaType;
  quality?: number;
  /** iccprofile (PS3.18 8.3.5.1.2) other than no, for a colour image; `own`: the instance's ICC Profile */
  icc?: { mode: 'yes' | IccSpace; own?: Uint8Array };
  /** 16: a 16-bit grey PNG (bitdepth=16; the server has checked the media type) */
  bitDepth?: 8 | 16;
  /** PS3.18 8.3.5.1.2 annotation: the kinds asked for and the instance's DICOM JSON to take the text from */
  annotation?: { kinds: string[]; metadata: string };
  /** decode only (WADO-RS frames as native bytes): the result's body is the samples, little endian */
  decodeOnly?: boolean;
  /** transcoding (WADO-RS in another transfer syntax): the frame decoded and, unless Explicit VR LE, encoded */
  transcodeTo?: string;
}

/** `decoded`: a compressed frame's samples, in shared memory, for the caller to keep for the next window. */
export type RenderResult = { ok: true; body: Uint8Array; decoded?: DecodedFrame; frame?: Omit<FrameOut, 'bytes'> } | { ok: false; status: number; reason: string };

/** True when `b` is the whole of its ArrayBuffer, so transferring that buffer moves `b` and nothing else. */
export const ownsBuffer = (b: Uint8Array) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;

let greyScratch: Uint8Array | undefined;

export async function renderTask(t: RenderTask): Promise<RenderResult> {
  // Only the codecs this frame and this output need: each wasm heap is memory the thread keeps.
  await Promise.all([t.decoded ? undefined : initCodecsFor(t.transferSyntaxUID), t.mediaType === 'image/jpeg' ? initCodecs(['dcmjs-codecs']) : undefined]);
  try {
    if (t.transcodeTo) {
      if (!t.data) return { ok: false, status: 500, reason: 'transcoding failed' };
      const { bytes, ...frame } = await frameOut(t.transferSyntaxUID, t.transcodeTo, { data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), bitOffset: t.bitOffset }, t.desc.frame);
      return { ok: true, body: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), frame };
    }
    if (t.decodeOnly) {
      if (!t.data) return { ok: false, status: 500, reason: 'decoding failed' };
      await initCodecsFor(t.transferSyntaxUID);
      const px = decodeFrame(t.transferSyntaxUID, { data: t.data, bitOffset: t.bitOffset }, t.desc.frame).pixels;
      return { ok: true, body: new Uint8Array(px.buffer, px.byteOffset, px.byteLength) };
    }
    let decoded = t.decoded;
    let keep: DecodedFrame | undefined;
    if (!decoded) {
      if (!t.data) return { ok: false, status: 500, reason: 'rendering failed' };
      decoded = decodeFrame(t.transferSyntaxUID, { data: t.data, bitOffset: t.bitOffset }, t.desc.frame, { packed: true, reduce: t.reduce });
      // Decoding a compressed frame is the expensive step (JPEG 2000: a hundred times the rest): hand its samples back.
      if (isEncapsulated(t.transferSyntaxUID)) {
        decoded = keep = { ...decoded, pixels: sharedCopy(decoded.pixels) };
        scheduleTrim();
      }
    }
    const annotationLines = () => {
      const voi = appliedVoi(t.desc, t.frameNumber, decoded!, t.options);
      return annotationText(JSON.parse(t.annotation!.metadata), t.annotation!.kinds,
        { voi, frameNumber: t.frameNumber, numberOfFrames: t.desc.numberOfFrames });
    };
    if (t.bitDepth === 16) {
      if (t.mediaType !== 'image/png') return { ok: false, status: 400, reason: 'bitdepth=16 is for image/png only' };
      let image16 = renderFrame16(t.desc, t.frameNumber, decoded, t.options);
      if (t.annotation && t.annotation.kinds.length > 0) image16 = annotate(image16, annotationLines());
      const body = encodePng16(image16);
      garbage.add(2 * body.byteLength + image16.data.byteLength);
      return { ok: true, body, decoded: keep };
    }
    const pixels = t.desc.frame.rows * t.desc.frame.columns;
    if (pixels <= 64 * 1024 * 1024 && (!greyScratch || greyScratch.length < pixels)) greyScratch = new Uint8Array(Math.max(pixels, 1 << 20));
    // One grey buffer per thread: the image is encoded (copied) before this task ends and the next begins.
    let image = renderFrame(t.desc, t.frameNumber, decoded, t.options, greyScratch);
    if (t.annotation && t.annotation.kinds.length > 0) image = annotate(image, annotationLines());
    let profile: Uint8Array | undefined;
    if (t.icc && image.channels === 3) {
      if (image.data === greyScratch) image = { ...image, data: image.data.slice() };
      profile = applyIccProfile(image.data, t.icc.mode, t.icc.own);
    }
    let body = encodeImage(image, t.mediaType, { quality: t.quality });
    if (profile) body = t.mediaType === 'image/png' ? embedPng(body, profile) : embedJpeg(body, profile);
    garbage.add(2 * body.byteLength);
    return { ok: true, body, decoded: keep };
  } catch (e) {
    if (e instanceof RenderError) return { ok: false, status: e.status, reason: e.message };
    if (e instanceof IccError) return { ok: false, status: 406, reason: e.message };
    if (e instanceof CodecError) {
      const status = e.code === 'UNSUPPORTED_TRANSFER_SYNTAX' || e.code === 'UNSUPPORTED_PIXEL_FORMAT' ? 406 : 422;
      return { ok: false, status, reason: `cannot decode this frame: ${e.reason}` };
    }
    return { ok: false, status: 500, reason: 'rendering failed' };
  }
}

/**
 * After a compressed frame, give back codec heap beyond what a thread keeps (trimCodecHeaps), once the task has
 * answered. A full collection frees the old heap at once; an idle worker would otherwise hold it until its next GC.
 */
let trimming = false;
function scheduleTrim(): void {
  if (trimming) return;
  trimming = true;
  setImmediate(() => {
    trimCodecHeaps().then((replaced) => { if (replaced) collectGarbage(); }, () => undefined).finally(() => { trimming = false; });
  });
}

/**
 * Each image leaves about twice its size of garbage in the thread that made it (deflate's output chunks and
 * their join), all of it young: a minor collection every 8 MB of images frees it for well under a millisecond.
 * On the main thread (inline renders) this runs beside RenderService's own major-collection budget.
 */
const garbage = new GarbageBudget(8 * 1024 * 1024, 'minor');

/** A copy of `a` in shared memory: other threads then read it in place, and it is never copied again. */
export function sharedCopy<T extends DecodedFrame['pixels']>(a: T): T {
  const copy = new (a.constructor as new (b: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
  copy.set(a as any);
  return copy;
}

/**
 * piscina calls the default export: the image alone goes back by transfer when it owns its buffer (the usual
 * case); with decoded samples to keep, the result goes back whole, the image copied.
 */
export default async function renderInWorker(t: RenderTask): Promise<RenderResult | ReturnType<typeof move>> {
  const r = await renderTask(t);
  return r.ok && !r.decoded && !r.frame && ownsBuffer(r.body) ? move(r.body) : r;
}

/**
 * A new render worker first renders a few hundred small synthetic frames, signed and unsigned 16-bit, through
 * the path a request takes (decode, a new window's table, lookup, PNG), so that its first real requests run
 * optimised code rather than warming V8's compilers: without this, a fresh server's first ~300 CT requests at
 * concurrency 8 cost ~1.4 ms of server CPU each, against ~1.05 ms warm (bench/ab.ts). It takes ~18 ms of the
 * worker's time, before piscina hands it a task; the tables it made are then dropped and its garbage collected.
 * What stays is the compiled code and type feedback a worker grows in its first few hundred requests anyway:
 * an idle server holds 110-115 MB instead of 99.
 */
export function warmUp(rounds = 150): void {
  const size = 64;
  const words = new Uint16Array(size * size);
  for (let i = 0; i < words.length; i++) words[i] = (i * 2654435761) >>> 20 & 0xfff; // 12-bit values, no runs
  const data = new Uint8Array(words.buffer);
  for (const pr of [1, 0]) {
    const desc = describeImage({
      '00080018': { vr: 'UI', Value: [`2.25.${pr}`] }, '00280002': { vr: 'US', Value: [1] }, '00280004': { vr: 'CS', Value: ['MONOCHROME2'] },
      '00280010': { vr: 'US', Value: [size] }, '00280011': { vr: 'US', Value: [size] }, '00280100': { vr: 'US', Value: [16] },
      '00280101': { vr: 'US', Value: [12] }, '00280102': { vr: 'US', Value: [11] }, '00280103': { vr: 'US', Value: [pr] },
      '00281052': { vr: 'DS', Value: [pr ? -1024 : 0] }, '00281053': { vr: 'DS', Value: [1] },
    })!;
    for (let i = 0; i < rounds; i++) {
      const decoded = decodeFrame('1.2.840.10008.1.2.1', { data }, desc.frame, { packed: true });
      const image = renderFrame(desc, 1, decoded, { window: { center: 40 + i, width: 400, function: 'LINEAR' } });
      encodeImage(image, 'image/png');
    }
  }
  tableCache.clear();
}

if (!isMainThread) {
  try { warmUp(); } catch { tableCache.clear(); /* only a missed speed-up: the worker renders as it would have */ }
  collectGarbage(); // the warm-up's images and tables: else ~9 MB per worker of garbage until its first collection
}

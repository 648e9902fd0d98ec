/**
 * Rendered resources (PS3.18 8.3.5, 9.5 / 10.4.1.1.4): frames/{list}/rendered, instance, series and study
 * rendered, and thumbnail, with the query parameters `accept`, `window`, `viewport`, `quality`, `annotation`
 * (PS3.18 8.3.5.1) and this server's overlay switches. Rendering runs in worker threads; results are cached
 * in memory (bounded in bytes) and carry a strong ETag with long-lived Cache-Control, since stored instances
 * never change.
 */
import express, { Request, Response } from 'express';
import * as crypto from 'crypto';
import * as path from 'path';
import { Piscina } from 'piscina';
import { cacheLookups, renderDuration, setProbe } from './metrics';
import { ServerContext } from './context';
import { badRequest, HttpError, notAcceptable, notFound, payloadTooLarge } from './errors';
import { requestAccept, mediaMatches } from './accept';
import { getInstance, instancesOf, readFrame, readBulk, InstanceInfo } from './instances';
import { parseFrameList } from './wado';
import { ClientGone, MultipartStream, onClientGone, wrap } from './http';
import { renderTask, sharedCopy, RenderTask, RenderResult } from './render-worker';
import { maxReduction } from '../render';
import { decodesReduced, isEncapsulated } from '../render/codecs';
import { GarbageBudget } from './gc';
import { GSPS_SOP_CLASS, loadPresentationState, referencedImage } from './presentation';
import { presentationFor, referencedFrames } from '../render/presentation-state';
import { animateGifs } from '../render/gif';
import type { DecodedFrame, RenderOptions, RenderedMediaType, ImageDescription } from '../render';
import type { FrameInfo } from '../render/types';
import type { FrameOut } from './transcode-frame';

/**
 * Whether an instance's frames can be rendered, else the refusal: 406 for an instance without image pixel data (no
 * image media type can represent it); 413 for a frame over the server's pixel limit (MAX_RENDER_PIXELS), with the
 * limit in the reason, checked before anything is read or allocated; 422 for Pixel Data shorter than one frame.
 */
export function requireRenderable(info: InstanceInfo, maxPixels: number): void {
  if (!info.render) throw new HttpError(406, 'this instance has no renderable pixel data');
  const f = info.render.frame;
  if (f.rows * f.columns > maxPixels) {
    throw payloadTooLarge(`frame of ${f.columns}x${f.rows} = ${f.rows * f.columns} pixels is over this server's rendering limit of ${maxPixels} pixels (MAX_RENDER_PIXELS)`);
  }
  if (info.frameCount === 0) throw new HttpError(422, 'Pixel Data is shorter than one frame');
}

/** Bumped whenever rendering output changes, so ETags change with it. */
export const RENDER_VERSION = '3';
/** Bumped whenever burnt-in annotation changes; only annotated images' ETags carry it. */
export const ANNOTATION_VERSION = '1';

// ---------------------------------------------------------------------------------------------
// Query parameters (PS3.18 8.3.5.1)

export interface RenderedParams {
  options: RenderOptions;
  quality?: number;
  annotation: string[];
  /** bitdepth=16 (server extension): a 16-bit grey PNG */
  bitDepth?: 16;
  /** iccprofile (PS3.18 8.3.5.1.2) other than `no` */
  icc?: 'yes' | 'srgb' | 'adobergb' | 'rommrgb' | 'displayp3';
  /** query parameters this server does not support, ignored (PS3.18 8.3) */
  ignored: string[];
}

const num = (s: string, what: string) => {
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s.trim())) throw badRequest(`${what} must be a number`);
  return Number(s);
};
const single = (v: unknown, name: string): string | undefined => {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) { if (v.length !== 1) throw badRequest(`${name} given more than once`); v = v[0]; }
  if (typeof v !== 'string') throw badRequest(`malformed ${name}`);
  return v;
};

export function parseRenderedParams(query: Record<string, unknown>, maxViewport: number, defaults: Partial<RenderOptions> = {}): RenderedParams {
  const known = new Set(['accept', 'window', 'viewport', 'quality', 'annotation', 'iccprofile', 'overlays', 'overlaycolor', 'charset', 'invert', 'bitdepth',
    'expires', 'signature']); // the last two: a signed link's (server/signed-links.ts), checked before routing
  // PS3.18 8.3: parameters a server does not support are ignored; named in a Warning header by the caller.
  const ignored = Object.keys(query).filter((k) => !known.has(k));
  const options: RenderOptions = { ...defaults };

  const w = single(query.window, 'window');
  if (w !== undefined) {
    // window=center,width,function (function: linear | linear-exact | sigmoid; PS3.18 8.3.5.1.4)
    const parts = w.split(',');
    if (parts.length < 2 || parts.length > 3) throw badRequest('window must be center,width[,function]');
    const center = num(parts[0], 'window center');
    const width = num(parts[1], 'window width');
    if (!Number.isFinite(center) || !Number.isFinite(width) || Math.abs(center) > 1e9 || width > 1e9) throw badRequest('window center/width out of range');
    const fn = (parts[2] ?? 'linear').trim().toUpperCase().replace('-', '_');
    if (fn !== 'LINEAR' && fn !== 'LINEAR_EXACT' && fn !== 'SIGMOID') throw badRequest('window function must be linear, linear-exact or sigmoid');
    if (fn === 'LINEAR' ? width < 1 : width <= 0) throw badRequest(fn === 'LINEAR' ? 'window width must be at least 1 for linear' : 'window width must be above 0');
    options.window = { center, width, function: fn };
  }

  const v = single(query.viewport, 'viewport');
  if (v !== undefined) {
    // viewport=vw,vh[,sx,sy,sw,sh] (PS3.18 8.3.5.1.3); empty sx..sh fields take their defaults
    const parts = v.split(',');
    if (parts.length !== 2 && parts.length !== 6) throw badRequest('viewport must be vw,vh or vw,vh,sx,sy,sw,sh');
    const vw = num(parts[0], 'viewport width');
    const vh = num(parts[1], 'viewport height');
    if (!Number.isInteger(vw) || !Number.isInteger(vh) || vw < 1 || vh < 1) throw badRequest('viewport width and height must be positive integers');
    if (vw > maxViewport || vh > maxViewport) throw badRequest(`viewport larger than the ${maxViewport}-pixel limit`);
    const vp: RenderOptions['viewport'] = { vw, vh };
    if (parts.length === 6) {
      const opt = (s: string, what: string) => (s.trim() === '' ? undefined : num(s, what));
      vp.sx = opt(parts[2], 'viewport sx'); vp.sy = opt(parts[3], 'viewport sy');
      vp.sw = opt(parts[4], 'viewport sw'); vp.sh = opt(parts[5], 'viewport sh');
      for (const x of [vp.sx, vp.sy, vp.sw, vp.sh]) if (x !== undefined && (!Number.isFinite(x) || Math.abs(x) > 1e7)) throw badRequest('viewport region out of range');
    }
    options.viewport = vp;
  }

  let quality: number | undefined;
  const q = single(query.quality, 'quality');
  if (q !== undefined) {
    quality = num(q, 'quality');
    if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw badRequest('quality must be an integer from 1 to 100');
  }

  const annotation: string[] = [];
  const a = single(query.annotation, 'annotation');
  if (a !== undefined) {
    for (const x of a.split(',')) {
      const t = x.trim().toLowerCase();
      if (t !== 'patient' && t !== 'technique') throw badRequest('annotation must be patient and/or technique');
      annotation.push(t);
    }
  }
  const iccValue = single(query.iccprofile, 'iccprofile')?.toLowerCase();
  if (iccValue !== undefined && !['no', 'yes', 'srgb', 'adobergb', 'rommrgb', 'displayp3'].includes(iccValue)) throw badRequest('iccprofile must be no, yes, srgb, adobergb, rommrgb or displayp3');
  const icc = iccValue === undefined || iccValue === 'no' ? undefined : iccValue as NonNullable<RenderedParams['icc']>;

  const o = single(query.overlays, 'overlays');
  if (o !== undefined) {
    if (o !== 'true' && o !== 'false') throw badRequest('overlays must be true or false');
    options.overlays = o === 'true';
  }
  const oc = single(query.overlaycolor, 'overlaycolor');
  if (oc !== undefined) {
    const m = /^#?([0-9a-fA-F]{6})$/.exec(oc);
    if (!m) throw badRequest('overlaycolor must be six hex digits, e.g. ff0000');
    const n = parseInt(m[1], 16);
    options.overlayColor = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  // Server extensions (CONFORMANCE.md): invert=true flips the output after VOI and Presentation LUT; bitdepth=16
  // asks for a 16-bit grey PNG.
  const inv = single(query.invert, 'invert');
  if (inv !== undefined) {
    if (inv !== 'true' && inv !== 'false') throw badRequest('invert must be true or false');
    if (inv === 'true') options.invert = true;
  }
  let bitDepth: 16 | undefined;
  const bd = single(query.bitdepth, 'bitdepth');
  if (bd !== undefined) {
    if (bd !== '8' && bd !== '16') throw badRequest('bitdepth must be 8 or 16');
    if (bd === '16') bitDepth = 16;
  }
  const params: RenderedParams = { options, quality, annotation, ignored };
  if (bitDepth) params.bitDepth = bitDepth;
  if (icc) params.icc = icc;
  return params;
}

/** parseRenderedParams, naming the ignored parameters in a Warning header (RFC 7234 5.5, code 299). */
function paramsOf(req: Request, res: Response, maxViewport: number, defaults: Partial<RenderOptions> = {}): RenderedParams {
  const p = parseRenderedParams(req.query as Record<string, unknown>, maxViewport, defaults);
  if (p.ignored.length) {
    const named = p.ignored.slice(0, 8).map((k) => k.slice(0, 40).replace(/[^\x20-\x7e]/g, '?')).join(', ');
    const more = p.ignored.length > 8 ? ` and ${p.ignored.length - 8} more` : '';
    res.set('Warning', `299 ${req.hostname || 'dicom-web'}: unsupported query parameters ignored: ${named}${more}`);
  }
  return p;
}

/**
 * PS3.18 8.7.4: rendered media types; image/jpeg is the default, image/png is lossless. With bitdepth=16 only PNG
 * can carry the image, so it goes first; a request that accepts no PNG then gets 400 (checkBitDepth).
 */
export function chooseRenderedType(req: Request, params?: RenderedParams): RenderedMediaType {
  const offered: RenderedMediaType[] = params?.bitDepth === 16 ? ['image/png', 'image/jpeg', 'image/gif'] : ['image/jpeg', 'image/png', 'image/gif'];
  for (const a of requestAccept(req)) {
    if (a.type === 'multipart/related') {
      const t = a.params.type;
      const hit = offered.find((o) => !t || mediaMatches(t, o));
      if (hit) return hit;
      continue;
    }
    const hit = offered.find((o) => mediaMatches(a.type, o));
    if (hit) return hit;
  }
  throw notAcceptable('rendered images are available as image/jpeg, image/png and image/gif');
}

// ---------------------------------------------------------------------------------------------
// The service: worker pool + byte-bounded cache

/**
 * Frames up to this size may be rendered on the main thread when the workers are idle (RenderService.render).
 * A 1024x1024 frame holds the main thread ~6 ms; raised from 512x512, it took a sequential MR 1024 request
 * from ~7.8 to ~6.6 ms (bench/profile.ts mr 200 1), and changed nothing at concurrency 8, where all goes to
 * the workers.
 */
const INLINE_MAX_PIXELS = 1024 * 1024;

/** Pixels of the image a render makes: the viewport's when one is asked for (a 128x128 frame may become 8192x8192). */
function outputPixels(options: RenderOptions, f: { rows: number; columns: number }): number {
  return options.viewport ? options.viewport.vw * options.viewport.vh : f.rows * f.columns;
}

/**
 * A map bounded by the bytes of its values, least recently used first out. A value above `maxEntry` bytes is not
 * kept (by default a quarter of the bound: one value never evicts most of the cache).
 */
export class ByteLru<V> {
  private map = new Map<string, { v: V; size: number }>();
  private bytes = 0;
  constructor(private readonly max: number, private readonly maxEntry = max / 4) {}
  get(k: string): V | undefined {
    const e = this.map.get(k);
    if (e) { this.map.delete(k); this.map.set(k, e); }
    return e?.v;
  }
  /** Adds `v`; returns the bytes of the values it dropped (replaced or evicted) or did not keep (too big). */
  set(k: string, v: V, size: number): number {
    let dropped = 0;
    const old = this.map.get(k);
    if (old) { this.bytes -= old.size; this.map.delete(k); dropped += old.size; }
    if (size > this.maxEntry) return dropped + size;
    this.map.set(k, { v, size }); this.bytes += size;
    while (this.bytes > this.max) {
      const [fk, fe] = this.map.entries().next().value as [string, { size: number }];
      this.map.delete(fk); this.bytes -= fe.size; dropped += fe.size;
    }
    return dropped;
  }
}

/** A frame as the renderer gets it: stored bytes, or (compressed frames, once decoded) its decoded samples. */
type CachedFrame = { data: Uint8Array; bitOffset?: number; decoded?: undefined } | { decoded: DecodedFrame; data?: undefined; bitOffset?: undefined };

export class RenderService {
  private pool?: Piscina;
  private cache: ByteLru<Buffer>;
  /** Frames recently rendered (key: SOP Instance UID, content hash, frame number), in shared memory. */
  private frames: ByteLru<CachedFrame>;
  /** Compressed frames being decoded now: concurrent requests for one frame wait for the first decode. */
  private decoding = new Map<string, Promise<void>>();
  /** Tasks handed to the worker pool and not yet answered. */
  private inFlight = 0;
  /** Calls of render() under way (not answered from the image cache). */
  private active = 0;
  /**
   * Every image made here and every frame read ends up as garbage outside the heap, and V8 would let ~64 MB of it
   * pile up (gc.ts). What dies young (a frame's read buffer, copied to shared memory; an image too big to cache)
   * goes in a minor collection every 8 MB; what the caches drop has outlived many minor collections, and goes in
   * an incremental major one every 32 MB. Before, one major collection every 16 MB of both cost this thread
   * 2-5% of CT throughput (bench/profile.ts ct 3000 8) and kept no less memory (bench/memory.ts).
   */
  private youngGarbage = new GarbageBudget(8 * 1024 * 1024, 'minor');
  private oldGarbage = new GarbageBudget(32 * 1024 * 1024, 'major', 'async');
  constructor(private readonly ctx: ServerContext) {
    this.cache = new ByteLru(ctx.config.renderCacheBytes);
    // Any frame up to the whole bound is kept: decoding a large compressed frame again costs far more (a 2000x2128
    // JPEG 2000 frame ~0.8 s) than the frames it evicts, and a viewer changing the window asks for it again.
    this.frames = new ByteLru(ctx.config.frameCacheBytes, ctx.config.frameCacheBytes);
  }

  async start() {
    setProbe('renderInFlight', () => this.inFlight);
    setProbe('renderQueue', () => this.pool?.queueSize ?? 0);
    if (this.ctx.config.renderWorkers > 0) {
      this.pool = new Piscina({
        filename: path.join(__dirname, 'render-worker.js'),
        minThreads: this.ctx.config.renderWorkers,
        maxThreads: this.ctx.config.renderWorkers,
        idleTimeout: 60_000,
      });
    }
  }

  async stop() { await this.pool?.destroy(); }

  /** Tasks in the workers or waiting for one, and tasks the workers finished (for tests and monitoring). */
  stats(): { inFlight: number; queued: number; completed: number } {
    return { inFlight: this.inFlight, queued: this.pool?.queueSize ?? 0, completed: this.pool?.completed ?? 0 };
  }

  /** Renders one frame, or answers from the cache. */
  async render(info: InstanceInfo, frameNumber: number, params: RenderedParams, mediaType: RenderedMediaType,
    key = etagOf(info, frameNumber, params, mediaType), signal?: AbortSignal): Promise<Buffer> {
    const hit = this.cache.get(key);
    cacheLookups.inc({ cache: 'rendered', result: hit ? 'hit' : 'miss' });
    if (hit) return hit;
    if (signal?.aborted) throw new ClientGone();
    this.active++;
    try {
      return await this.renderUncached(info, frameNumber, params, mediaType, key, signal);
    } finally {
      this.active--;
    }
  }

  /**
   * A stored frame decoded to native little-endian samples (WADO-RS frames without transfer-syntax=*), in a worker:
   * a large or hostile compressed frame may take seconds to decode, which must not be the event loop's seconds.
   * `signal`: the client has gone; a queued task is dropped, a running one ends with its worker.
   */
  async decodeToBytes(info: InstanceInfo, data: Buffer, bitOffset: number | undefined, signal?: AbortSignal): Promise<Buffer> {
    const r = await this.runCoding(info.transferSyntaxUID, info.render, data, bitOffset, { decodeOnly: true }, signal);
    return Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength);
  }

  /**
   * One frame transcoded (server/transcode-frame.ts) in a render worker: decoding and encoding JPEG 2000 or HTJ2K
   * takes tens to hundreds of milliseconds a frame, which must not hold the event loop.
   */
  async transcodeFrame(stored: string, target: string, frame: { data: Buffer; bitOffset?: number }, f: FrameInfo, signal?: AbortSignal): Promise<FrameOut> {
    const desc = { frame: f } as ImageDescription; // the worker's transcoding reads only the frame's description
    const r = await this.runCoding(stored, desc, frame.data, frame.bitOffset, { transcodeTo: target }, signal);
    return { bytes: Buffer.from(r.body.buffer, r.body.byteOffset, r.body.byteLength), ...r.frame! };
  }

  private async runCoding(syntax: string, desc: ImageDescription, data: Buffer, bitOffset: number | undefined,
    kind: { decodeOnly: true } | { transcodeTo: string }, signal?: AbortSignal): Promise<{ body: Uint8Array; frame?: Omit<FrameOut, 'bytes'> }> {
    if (signal?.aborted) throw new ClientGone();
    const task: RenderTask = {
      transferSyntaxUID: syntax, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), bitOffset,
      desc, frameNumber: 1, options: {}, mediaType: 'image/png', ...kind,
    };
    let result: RenderResult | Uint8Array;
    if (!this.pool) result = await renderTask(task);
    else {
      this.inFlight++;
      try {
        result = await (this.pool.run(task, { signal }) as Promise<RenderResult | Uint8Array>);
      } catch (e) {
        if (signal?.aborted) throw new ClientGone();
        throw e;
      } finally { this.inFlight--; }
    }
    if (ArrayBuffer.isView(result)) return { body: result };
    if (!result.ok) throw new HttpError(result.status, result.reason);
    return result;
  }

  private async renderUncached(info: InstanceInfo, frameNumber: number, params: RenderedParams, mediaType: RenderedMediaType, key: string, signal?: AbortSignal): Promise<Buffer> {
    requireRenderable(info, this.ctx.config.limits.maxRenderPixels);
    const f = info.render.frame;
    // A viewer changing the window re-renders the same frame: its bytes (or decoded samples) come from memory.
    const frameKey = `${info.sopInstanceUID}|${info.sha256}|${frameNumber}`;
    const syntax: string = info.render.encapsulatedSyntaxUID ?? info.transferSyntaxUID;
    const compressed = isEncapsulated(syntax);
    // JPEG 2000 for a viewport that shrinks it: decoded at the resolution the output shows (maxReduction), kept
    // under its own key; the full decode, when cached, serves every request.
    // 16-bit output (bitdepth=16) resamples full-resolution samples only
    const reduce = compressed && params.bitDepth !== 16 && decodesReduced(syntax) ? maxReduction(info.render, frameNumber, params.options) : 0;
    const decodedKey = reduce > 0 ? `${frameKey}|r${reduce}` : frameKey;
    const lookup = (): CachedFrame | undefined => {
      const full = this.frames.get(frameKey);
      return reduce === 0 || full?.decoded ? full : this.frames.get(decodedKey) ?? full;
    };
    let frame = lookup();
    cacheLookups.inc({ cache: 'frame', result: frame ? 'hit' : 'miss' });
    const pending = compressed && !frame?.decoded ? this.decoding.get(decodedKey) : undefined;
    if (pending) {
      // Another request is decoding this compressed frame: wait for its samples rather than decode it again.
      await pending;
      frame = lookup();
    }
    // This request decodes the frame: later ones wait for it from here on, before the frame is even read.
    let decoded: (() => void) | undefined;
    if (compressed && !frame?.decoded && !this.decoding.has(decodedKey)) {
      this.decoding.set(decodedKey, new Promise<void>((resolve) => { decoded = resolve; }));
    }
    try {
      if (!frame) {
        const read = await readFrame(this.ctx, info, frameNumber);
        frame = { data: sharedCopy(new Uint8Array(read.data.buffer, read.data.byteOffset, read.data.byteLength)), bitOffset: read.bitOffset };
        this.youngGarbage.add(read.data.byteLength);
        this.oldGarbage.add(this.frames.set(frameKey, frame, read.data.byteLength));
      }
      const icc = params.icc && isColour(info) ? { mode: params.icc, own: await instanceIccProfile(this.ctx, info) } : undefined;
      const task: RenderTask = {
        icc,
        transferSyntaxUID: syntax, data: frame.data, bitOffset: frame.bitOffset, decoded: frame.decoded,
        reduce: frame.decoded ? undefined : reduce,
        desc: info.render, frameNumber, options: params.options, mediaType, quality: params.quality, bitDepth: params.bitDepth,
        annotation: params.annotation.length ? { kinds: params.annotation, metadata: info.metadata } : undefined,
      };
      // Shared memory crosses to the worker without a copy; the image comes back by transfer (render-worker.ts).
      // Handing a task to a worker and back costs ~0.5 ms here (two thread wake-ups), a third of a CT frame's
      // render. With no task in flight, a small PNG from a frame that needs no decoding is rendered right here
      // (at most ~6 ms of this thread, for 1024x1024); with tasks in flight, everything goes to the workers.
      // "No task in flight" is judged after one turn of the event loop, so that requests already received are
      // counted (this.active): else, at concurrency, each inline render would find the workers idle again and the
      // main thread would end up rendering everything.
      let inline = !this.pool;
      if (!inline && this.inFlight === 0 && mediaType === 'image/png' && !task.annotation
        && f.rows * f.columns <= INLINE_MAX_PIXELS && outputPixels(params.options, f) <= INLINE_MAX_PIXELS && (task.decoded !== undefined || !compressed)) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        inline = this.active === 1 && this.inFlight === 0;
      }
      let run: Promise<RenderResult | Uint8Array>;
      if (signal?.aborted) throw new ClientGone();
      const timer = renderDuration.startTimer({ where: inline ? 'inline' : 'worker' });
      if (inline) run = renderTask(task).finally(timer);
      else {
        this.inFlight++;
        run = (this.pool!.run(task, { signal }) as Promise<RenderResult | Uint8Array>).finally(() => { this.inFlight--; timer(); });
      }
      let result: RenderResult | Uint8Array;
      try {
        result = await run;
      } catch (e) {
        if (signal?.aborted) throw new ClientGone(); // the client left: piscina dropped or ended the task
        throw e;
      }
      let image: Uint8Array;
      if (ArrayBuffer.isView(result)) image = result;
      else if (!result.ok) throw new HttpError(result.status, result.reason);
      else {
        image = result.body;
        if (result.decoded) this.oldGarbage.add(this.frames.set(decodedKey, { decoded: result.decoded }, result.decoded.pixels.byteLength));
      }
      const body = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
      this.oldGarbage.add(this.cache.set(key, body, body.length));
      return body;
    } finally {
      if (decoded) { this.decoding.delete(decodedKey); decoded(); }
    }
  }
}

/** Strong validator: same stored bytes + frame + parameters + output type + renderer version = same image. */
export function etagOf(info: InstanceInfo, frame: number, params: RenderedParams, mediaType: string): string {
  const h = crypto.createHash('sha256');
  const version = params.annotation.length ? `${RENDER_VERSION}+a${ANNOTATION_VERSION}` : RENDER_VERSION;
  h.update(`${version}|${info.sha256}|${frame}|${mediaType}|${JSON.stringify(params)}`);
  return `"${h.digest('base64url').slice(0, 32)}"`;
}

function notModified(req: Request, etag: string): boolean {
  const inm = req.get('if-none-match');
  if (!inm) return false;
  return inm.split(',').map((s) => s.trim().replace(/^W\//, '')).some((t) => t === etag || t === '*');
}

// ---------------------------------------------------------------------------------------------
// ICC profiles

/** A colour image (RGB, YBR, PALETTE COLOR): the only kind an ICC profile is embedded in. */
export function isColour(info: InstanceInfo): boolean {
  const f = info.render?.frame;
  return !!f && (f.samplesPerPixel !== 1 || f.photometricInterpretation.toUpperCase() === 'PALETTE COLOR');
}

/** The instance's ICC Profile (0028,2000), top level: bulk data or InlineBinary. */
export async function instanceIccProfile(ctx: ServerContext, info: InstanceInfo): Promise<Uint8Array | undefined> {
  const ref = info.bulk.refs.find((b) => b.path.toUpperCase() === '00282000');
  if (ref) return new Uint8Array(await readBulk(ctx, info, ref));
  const inline = JSON.parse(info.metadata)['00282000']?.InlineBinary;
  return typeof inline === 'string' ? Buffer.from(inline, 'base64') : undefined;
}

// ---------------------------------------------------------------------------------------------
// Animated GIF of a multi-frame instance

/** Bounds of an animated GIF: frames, and pixels over all frames (after the viewport): ~64 MB of indices. */
export const ANIMATED_GIF_MAX_FRAMES = 1000;
export const ANIMATED_GIF_MAX_PIXELS = 64 * 1024 * 1024;
/** Frame delay when the instance gives no timing: 100 ms (10 frames per second). */
export const DEFAULT_FRAME_MS = 100;

/**
 * Milliseconds each frame stays on screen, from the Cine module (PS3.3 C.7.6.5) or the Multi-frame module:
 * Frame Time Vector (0018,1065; increments between frames, so frame i shows for the increment of frame i+1, the
 * last for the mean increment), else Frame Time (0018,1063), else Cine Rate (0018,0040) or Recommended Display
 * Frame Rate (0008,2144) in frames per second, else DEFAULT_FRAME_MS.
 */
export function frameDelaysMs(metadata: Record<string, any>, frames: number): number[] {
  const nums = (tag: string): number[] => (metadata[tag]?.Value ?? []).map(Number).filter((v: number) => Number.isFinite(v));
  const ftv = nums('00181065');
  if (ftv.length >= frames && frames > 1) {
    const incr = ftv.slice(1, frames).filter((v) => v > 0);
    const mean = incr.length ? incr.reduce((a, b) => a + b, 0) / incr.length : DEFAULT_FRAME_MS;
    return Array.from({ length: frames }, (_, i) => (i + 1 < frames && ftv[i + 1] > 0 ? ftv[i + 1] : mean));
  }
  const ft = nums('00181063')[0];
  if (ft !== undefined && ft > 0) return new Array(frames).fill(ft);
  const rate = nums('00180040')[0] ?? nums('00082144')[0];
  if (rate !== undefined && rate > 0) return new Array(frames).fill(1000 / rate);
  return new Array(frames).fill(DEFAULT_FRAME_MS);
}

/** GIF delays are hundredths of a second; under 2 most viewers show 10, so 2 (20 ms, 50 fps) is the floor. */
export const gifDelayCs = (ms: number) => Math.max(2, Math.min(65535, Math.round(ms / 10)));

// ---------------------------------------------------------------------------------------------
// Routes

const THUMBNAIL_SIZE = 128;

export function renderedRouter(ctx: ServerContext, service: RenderService): express.Router {
  const r = express.Router();
  const maxViewport = ctx.config.limits.maxViewport;
  // With authentication on, shared caches must not hand an image to someone else.
  const cacheControl = `${ctx.config.auth?.enabled ? 'private' : 'public'}, max-age=31536000, immutable`;

  /** Aborted when the client disconnects before its answer is complete: renders not yet run are skipped. */
  const clientSignal = (req: Request, res: Response) => {
    const ac = new AbortController();
    onClientGone(req, res, () => ac.abort());
    return ac.signal;
  };

  /** bitdepth=16: PNG of a grey image only (400 with the reason otherwise). */
  const checkBitDepth = (params: RenderedParams, type: RenderedMediaType, infos: InstanceInfo[]) => {
    if (params.icc && type === 'image/gif' && infos.some((i) => isColour(i))) {
      throw badRequest('ICC profiles are embedded in image/png and image/jpeg only: ask one of them, or iccprofile=no');
    }
    if (params.bitDepth !== 16) return;
    if (type !== 'image/png') throw badRequest(`bitdepth=16 is available for image/png only, not ${type}`);
    for (const info of infos) {
      const f = info.render?.frame;
      if (f && (f.samplesPerPixel !== 1 || f.photometricInterpretation.toUpperCase() === 'PALETTE COLOR')) {
        throw badRequest('bitdepth=16 is for grey (MONOCHROME1/2) images only: this image is colour');
      }
    }
  };

  const sendOne = async (req: Request, res: Response, info: InstanceInfo, frame: number, params: RenderedParams) => {
    const type = chooseRenderedType(req, params);
    checkBitDepth(params, type, [info]);
    const etag = etagOf(info, frame, params, type);
    res.set('ETag', etag);
    res.set('Cache-Control', cacheControl);
    if (notModified(req, etag)) { res.status(304).end(); return; }
    const body = await service.render(info, frame, params, type, etag, clientSignal(req, res));
    res.status(200).type(type).send(body);
  };

  /** A multi-frame instance as one animated GIF: every frame rendered (and cached) as a GIF, then assembled. */
  const sendAnimatedGif = async (req: Request, res: Response, info: InstanceInfo, params: RenderedParams) => {
    const n = info.frameCount;
    const f = info.render!.frame;
    const vp = params.options.viewport;
    const perFrame = vp ? Math.min(vp.vw * vp.vh, f.rows * f.columns) : f.rows * f.columns;
    if (n > ANIMATED_GIF_MAX_FRAMES || n * perFrame > ANIMATED_GIF_MAX_PIXELS) {
      throw badRequest(`animated GIF limited to ${ANIMATED_GIF_MAX_FRAMES} frames and ${ANIMATED_GIF_MAX_PIXELS} pixels in all: ask for a viewport, or frames/{list}/rendered`);
    }
    const etag = etagOf(info, 0, params, 'image/gif;animated');
    res.set('ETag', etag);
    res.set('Cache-Control', cacheControl);
    if (notModified(req, etag)) { res.status(304).end(); return; }
    const delays = frameDelaysMs(JSON.parse(info.metadata), n).map(gifDelayCs);
    const gifs: Buffer[] = new Array(n);
    let next = 0;
    // two frames at a time: both render workers busy, and no more frames held than that before they are cached
    const signal = clientSignal(req, res);
    const worker = async () => { for (let i = next++; i < n; i = next++) gifs[i] = await service.render(info, i + 1, params, 'image/gif', undefined, signal); };
    await Promise.all([worker(), worker()]);
    res.status(200).type('image/gif').send(animateGifs(gifs, delays));
  };

  // One image at a time: rendered, written, then the next; memory is one image whatever the count.
  const sendMany = async (req: Request, res: Response, items: Array<{ info: InstanceInfo; frame: number }>, params: RenderedParams) => {
    const type = chooseRenderedType(req, params);
    checkBitDepth(params, type, items.map((it) => it.info));
    const signal = clientSignal(req, res);
    res.set('Cache-Control', cacheControl);
    const out = new MultipartStream(req, res, type);
    for (const it of items) await out.part(type, await service.render(it.info, it.frame, params, type, undefined, signal));
    out.end();
  };

  const maxPixels = ctx.config.limits.maxRenderPixels;
  const inst = (req: Request) => getInstance(ctx, String(req.params.study), String(req.params.series), String(req.params.sop));
  const renderable = (list: InstanceInfo[]) => {
    const ok = list.filter((i) => i.render && i.frameCount > 0);
    if (ok.length === 0) throw notFound('no renderable instance here');
    return ok;
  };

  r.get('/studies/:study/series/:series/instances/:sop/frames/:frames/rendered', wrap(async (req, res) => {
    const info = inst(req);
    requireRenderable(info, maxPixels);
    const frames = parseFrameList(String(req.params.frames), info.frameCount);
    const params = paramsOf(req, res, maxViewport);
    if (frames.length === 1) return sendOne(req, res, info, frames[0], params);
    return sendMany(req, res, frames.map((frame) => ({ info, frame })), params);
  }));

  // Instance rendered: a single-frame instance is one image; a multi-frame one is one image per frame, as
  // multipart/related, when the client accepts multipart, else its first frame.
  r.get('/studies/:study/series/:series/instances/:sop/rendered', wrap(async (req, res) => {
    const info = inst(req);
    if (info.sopClassUID === GSPS_SOP_CLASS) return sendPresentation(req, res, info);
    requireRenderable(info, maxPixels);
    const params = paramsOf(req, res, maxViewport);
    const multipart = requestAccept(req).some((a) => a.type === 'multipart/related');
    if (info.frameCount > 1 && multipart) return sendMany(req, res, Array.from({ length: info.frameCount }, (_, i) => ({ info, frame: i + 1 })), params);
    // PS3.18 Table 8.7.4-1: a multi-frame instance as image/gif is an animation of its frames
    if (info.frameCount > 1 && chooseRenderedType(req, params) === 'image/gif') return sendAnimatedGif(req, res, info, params);
    return sendOne(req, res, info, 1, params);
  }));

  // A Grayscale Softcopy Presentation State: its referenced images (or frames) rendered with it applied, the
  // first one alone, or all of them as multipart/related when the client accepts multipart. Query parameters
  // apply after the presentation state (PS3.18 8.3.5); a window parameter replaces its VOI.
  const sendPresentation = async (req: Request, res: Response, info: InstanceInfo, thumbnail = false) => {
    const params = paramsOf(req, res, maxViewport, thumbnail ? { viewport: { vw: THUMBNAIL_SIZE, vh: THUMBNAIL_SIZE } } : {});
    const ps = await loadPresentationState(ctx, info);
    const targets = referencedFrames(ps, (sop) => referencedImage(ctx, ps, sop).frameCount);
    if (targets.length === 0) throw new HttpError(422, 'the presentation state references no frame of its images');
    const item = (t: { sopInstanceUID: string; frame: number }) => {
      const image = referencedImage(ctx, ps, t.sopInstanceUID);
      const presentation = presentationFor(ps, image.render, t.frame);
      return { info: image, frame: t.frame, params: { ...params, options: { ...params.options, presentation } } };
    };
    const multipart = requestAccept(req).some((a) => a.type === 'multipart/related');
    if (targets.length > 1 && multipart && !thumbnail) {
      const type = chooseRenderedType(req);
      const signal = clientSignal(req, res);
      res.set('Cache-Control', cacheControl);
      const out = new MultipartStream(req, res, type);
      for (const t of targets) {
        const it = item(t);
        await out.part(type, await service.render(it.info, it.frame, it.params, type, undefined, signal));
      }
      return out.end();
    }
    const first = item(targets[0]);
    return sendOne(req, res, first.info, first.frame, first.params);
  };

  // Series and study rendered: the first frame of each renderable instance, as multipart/related.
  r.get('/studies/:study/series/:series/rendered', wrap(async (req, res) => {
    const list = renderable(instancesOf(ctx, String(req.params.study), String(req.params.series)));
    await sendMany(req, res, list.map((info) => ({ info, frame: 1 })), paramsOf(req, res, maxViewport));
  }));
  r.get('/studies/:study/rendered', wrap(async (req, res) => {
    const list = renderable(instancesOf(ctx, String(req.params.study)));
    await sendMany(req, res, list.map((info) => ({ info, frame: 1 })), paramsOf(req, res, maxViewport));
  }));

  // Thumbnails (PS3.18 10.4.1.1.5 / 9.5): a representative image fitted in 128x128 unless a viewport is given.
  // Representative: the middle frame of the middle renderable instance (instances ordered by Instance Number).
  const thumb = async (req: Request, res: Response, list: InstanceInfo[]) => {
    const ok = renderable(list);
    const info = ok[Math.floor((ok.length - 1) / 2)];
    const params = paramsOf(req, res, maxViewport, { viewport: { vw: THUMBNAIL_SIZE, vh: THUMBNAIL_SIZE } });
    await sendOne(req, res, info, Math.floor((info.frameCount - 1) / 2) + 1, params);
  };
  r.get('/studies/:study/thumbnail', wrap(async (req, res) => thumb(req, res, instancesOf(ctx, String(req.params.study)))));
  r.get('/studies/:study/series/:series/thumbnail', wrap(async (req, res) =>
    thumb(req, res, instancesOf(ctx, String(req.params.study), String(req.params.series)))));
  r.get('/studies/:study/series/:series/instances/:sop/thumbnail', wrap(async (req, res) => {
    const info = inst(req);
    // a presentation state's thumbnail: its first referenced frame, as it presents it
    if (info.sopClassUID === GSPS_SOP_CLASS) return sendPresentation(req, res, info, true);
    return thumb(req, res, [info]);
  }));
  r.get('/studies/:study/series/:series/instances/:sop/frames/:frames/thumbnail', wrap(async (req, res) => {
    const info = inst(req);
    const frames = parseFrameList(String(req.params.frames), info.frameCount);
    const params = paramsOf(req, res, maxViewport, { viewport: { vw: THUMBNAIL_SIZE, vh: THUMBNAIL_SIZE } });
    await sendOne(req, res, info, frames[0], params);
  }));
  return r;
}

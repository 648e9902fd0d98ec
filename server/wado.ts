/**
 * WADO-RS (PS3.18 10.4): studies, series and instances (original bytes), metadata (DICOM JSON), bulkdata and
 * frames, with media type and transfer syntax negotiation per PS3.18 8.7.
 */
import express, { Request, Response } from 'express';
import { ServerContext } from './context';
import { badRequest, notAcceptable, notFound, payloadTooLarge } from './errors';
import { requestAccept, AcceptEntry, mediaMatches } from './accept';
import { getInstance, instancesOf, readFrame, readBulk, metadataWithBase, InstanceInfo, checkBlob, damagedBlob } from './instances';
import * as crypto from 'crypto';
import { baseUrl, boundary, MultipartStream, onClientGone, sendDicomJson, sendMultipart, wrap } from './http';
import type { RenderService } from './rendered';
import { BASE_TOKEN } from './ingest';
import { isEncapsulated, nativeMediaType } from '../render/codecs';
import { EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE, instanceIn, instanceTarget, storedIsLossy } from './transcode';

export { EXPLICIT_LE };
const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99']);

// ---------------------------------------------------------------------------------------------
// Instances (PS3.18 10.4.1.1.1): stored bytes, or transcoded (server/transcode.ts), streamed.

/**
 * The transfer syntax of each instance (PS3.18 8.7.3.5): the first acceptable media range, by q, that gives
 * every instance a path. No transfer-syntax parameter: Explicit VR Little Endian (Table 8.7.3-2), except for
 * pixels we hold only in lossy form, or cannot decode, which come as stored (8.7.3's exception). `*`: as stored,
 * except that Implicit VR Little Endian and Big Endian, which web services do not use (8.7.3), become Explicit VR
 * Little Endian. A named syntax: as stored, or transcoded where instanceTarget finds a path; Implicit VR Little
 * Endian and Big Endian are never sent.
 */
function negotiateInstances(ctx: ServerContext, accept: AcceptEntry[], list: InstanceInfo[]): { syntaxes: string[]; entry: AcceptEntry } {
  let reason: string | undefined;
  for (const a of accept) {
    const partType = a.params.type ?? (a.type === 'multipart/related' ? 'application/dicom' : undefined);
    const ok = (a.type === 'multipart/related' && (partType === 'application/dicom' || partType === '*/*'))
      || a.type === '*/*' || a.type === 'multipart/*' || a.type === 'application/dicom';
    if (!ok) continue;
    const want = a.params['transfer-syntax'];
    if (want === IMPLICIT_LE || want === EXPLICIT_BE) { reason = `transfer syntax ${want} is not used by web services (PS3.18 8.7.3)`; continue; }
    const out: string[] = [];
    for (const info of list) {
      const stored = info.transferSyntaxUID;
      const webStored = stored === IMPLICIT_LE || stored === EXPLICIT_BE ? EXPLICIT_LE : stored;
      let r: { syntax: string } | { reason: string };
      if (want === '*') r = instanceTarget(ctx, info, webStored);
      else if (!want) {
        r = storedIsLossy(info) && isEncapsulated(stored) ? { syntax: stored } : instanceTarget(ctx, info, EXPLICIT_LE);
        if ('reason' in r && webStored === stored) r = { syntax: stored };
      } else r = instanceTarget(ctx, info, want);
      if ('reason' in r) { reason = `instance ${info.sopInstanceUID}: ${r.reason}`; break; }
      out.push(r.syntax);
    }
    if (out.length === list.length) return { syntaxes: out, entry: a };
  }
  throw notAcceptable(reason ?? 'instances are available as multipart/related; type="application/dicom"');
}

/** Resolves when `res` can take more, or when it closed (then `res.destroyed`). */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
    res.on('drain', done); res.on('close', done);
  });
}

/**
 * Streams whole instances. Integrity: before the headers, each blob must exist with its recorded size (else 500
 * with the reason); while streaming, each is hashed, and one whose SHA-256 differs from the recorded one ends the
 * response before its closing boundary (the connection is reset), so a client never takes damaged bytes for whole.
 */
async function sendInstances(ctx: ServerContext, renderer: RenderService, req: Request, res: Response, list: InstanceInfo[]): Promise<void> {
  const { syntaxes, entry } = negotiateInstances(ctx, requestAccept(req), list);
  for (const info of list) await checkBlob(ctx, info);
  // A single-part Accept on one instance (PS3.18 8.7.3.5.2): the Part 10 file as the whole body.
  const single = entry.type === 'application/dicom' && list.length === 1;
  const b = boundary();
  for (let i = 0; i < list.length; i++) {
    const info = list[i];
    const syntax = syntaxes[i];
    // frames decoded and encoded in the render workers, one at a time, as the socket drains
    const chunks = instanceIn(ctx, info, syntax, (stored, target, frame, f) => renderer.transcodeFrame(stored, target, frame, f));
    // The first chunk before the part starts: a first frame that cannot be decoded is still a clean 4xx.
    let next = await chunks.next();
    const asStored = syntax === info.transferSyntaxUID;
    if (single) {
      res.status(200).set('Content-Type', `application/dicom; transfer-syntax=${syntax}`);
      if (asStored) res.set('Content-Length', String(info.size));
    } else {
      if (!res.headersSent) res.status(200).set('Content-Type', `multipart/related; type="application/dicom"; boundary=${b}`);
      const length = asStored ? `Content-Length: ${info.size}\r\n` : '';
      res.write(`--${b}\r\nContent-Type: application/dicom; transfer-syntax=${syntax}\r\n${length}\r\n`);
    }
    // Single part: the last chunk is held back until the hash is checked, so a damaged blob never arrives whole.
    let held: Buffer | undefined;
    // Stored bytes sent as they are: hashed on the way, checked against the recorded SHA-256 before the part ends.
    const hash = asStored ? crypto.createHash('sha256') : undefined;
    let sent = 0;
    while (!next.done) {
      if (res.destroyed) { await chunks.return(undefined); return; }
      hash?.update(next.value);
      sent += next.value.length;
      const out = single ? held : next.value;
      if (single) held = next.value;
      if (out && !res.write(out)) await drained(res);
      next = await chunks.next();
    }
    if (hash) {
      const digest = hash.digest('hex');
      if (sent !== info.size || digest !== info.sha256) {
        throw damagedBlob(info, 'blob-corrupt', sent !== info.size ? `${sent} bytes streamed, ${info.size} recorded` : `SHA-256 ${digest.slice(0, 16)}…, recorded ${info.sha256.slice(0, 16)}…`);
      }
    }
    if (single) { res.end(held); return; }
    res.write('\r\n');
  }
  res.end(`--${b}--\r\n`);
}

// ---------------------------------------------------------------------------------------------
// Frames (PS3.18 10.4.1.1.3, 8.7.3.3): compressed as stored, decoded to Explicit VR Little Endian, or transcoded
// into another compressed syntax.

/** target: undefined = the stored bytes as they are; EXPLICIT_LE = decoded; else a compressed syntax to encode. */
interface FrameChoice { target?: string; contentType: string }

/** PS3.18 Table 8.7.3-5: the syntaxes of each compressed bulk data media type, the default first. */
const MEDIA_SYNTAXES: Record<string, string[]> = {
  'image/jpeg': ['1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57'],
  'image/dicom-rle': ['1.2.840.10008.1.2.5'],
  'image/jls': ['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81'],
  'image/jp2': ['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91'],
  'image/jpx': ['1.2.840.10008.1.2.4.92', '1.2.840.10008.1.2.4.93'],
  'image/jphc': ['1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203'],
};

function chooseFrameRepresentation(ctx: ServerContext, accept: AcceptEntry[], info: InstanceInfo, single: boolean): FrameChoice {
  const ts = info.transferSyntaxUID;
  const encapsulated = !NATIVE.has(ts);
  const stored = (encapsulated ? nativeMediaType(ts) : undefined) ?? 'application/octet-stream';
  const raw: FrameChoice = { target: encapsulated || ts === EXPLICIT_BE ? EXPLICIT_LE : undefined, contentType: `application/octet-stream; transfer-syntax=${EXPLICIT_LE}` };
  const asStored: FrameChoice = { contentType: `${stored}; transfer-syntax=${ts}` };
  // A compressed syntax other than the stored one, when a path exists (the instance rules: no lossy to lossless).
  const transcoded = (target: string, media: string): FrameChoice | undefined => {
    if (target === ts) return { contentType: `${media}; transfer-syntax=${ts}` };
    const r = instanceTarget(ctx, info, target);
    return 'reason' in r || r.syntax !== target ? undefined : { target, contentType: `${media}; transfer-syntax=${target}` };
  };
  let reason = `frames of this instance are available as ${stored} (transfer syntax ${ts}), decoded as application/octet-stream, or in the compressed syntaxes we encode`;
  for (const a of accept) {
    let part: string | undefined;
    if (a.type === 'multipart/related') part = a.params.type ?? 'application/octet-stream';
    else if (single && a.type !== '*/*' && a.type !== 'multipart/*') part = a.type; // single-part media types
    else if (a.type === '*/*' || a.type === 'multipart/*') part = '*/*';
    if (!part) continue;
    const want = a.params['transfer-syntax'];
    if (part === 'application/octet-stream') {
      if (want === '*') return encapsulated ? { contentType: `application/octet-stream; transfer-syntax=${ts}` } : raw;
      if (!want || want === EXPLICIT_LE) return raw;
      if (want === ts) return { contentType: `application/octet-stream; transfer-syntax=${ts}` };
      const t = transcoded(want, 'application/octet-stream');
      if (t) return t;
      continue;
    }
    if (part === '*/*') return encapsulated ? asStored : raw;
    const media = Object.keys(MEDIA_SYNTAXES).find((m) => mediaMatches(part!, m) && !part!.endsWith('/*'));
    if (media) {
      const syntaxes = MEDIA_SYNTAXES[media];
      if (want && want !== '*' && !syntaxes.includes(want)) { reason = `transfer syntax ${want} is not one of ${media}`; continue; }
      if (encapsulated && syntaxes.includes(ts) && (!want || want === '*' || want === ts)) return asStored;
      const t = transcoded(want && want !== '*' ? want : syntaxes[0], media);
      if (t) return t;
      continue;
    }
    if (encapsulated && mediaMatches(part, stored) && (!want || want === '*' || want === ts)) return asStored;
  }
  throw notAcceptable(reason);
}

export function parseFrameList(s: string, max: number): number[] {
  if (!/^\d{1,9}(,\d{1,9})*$/.test(s)) throw badRequest('frame list must be comma-separated frame numbers from 1');
  const list = s.split(',').map(Number);
  if (list.length > 10000) throw badRequest('too many frames in one request');
  const seen = new Set<number>();
  for (const n of list) {
    if (n < 1) throw badRequest('frame numbers start at 1');
    if (n > max) throw notFound(`frame ${n} does not exist (the instance has ${max})`);
    // PS3.18 defines {frames} as a list of non-duplicate frame numbers; a repeat would only multiply the response
    if (seen.has(n)) throw badRequest(`frame ${n} is listed twice (PS3.18: a frame list has no duplicates)`);
    seen.add(n);
  }
  return list;
}

/** Frame `n` as `choice` says: the stored bytes, decoded to Explicit VR Little Endian (in a render worker), or transcoded. */
async function frameBody(ctx: ServerContext, renderer: RenderService, info: InstanceInfo, choice: FrameChoice, n: number, signal: AbortSignal): Promise<Buffer> {
  const frame = await readFrame(ctx, info, n);
  if (!choice.target) return frame.data;
  if (!info.render) throw notAcceptable('this instance cannot be decoded; request transfer-syntax=*');
  const f = info.render.frame;
  if (choice.target !== EXPLICIT_LE) return (await renderer.transcodeFrame(info.transferSyntaxUID, choice.target, frame, f, signal)).bytes;
  if (f.rows * f.columns > ctx.config.limits.maxRenderPixels) {
    throw payloadTooLarge(`frame of ${f.columns}x${f.rows} pixels is over this server's decoding limit of ${ctx.config.limits.maxRenderPixels} pixels (MAX_RENDER_PIXELS); request transfer-syntax=*`);
  }
  return renderer.decodeToBytes(info, frame.data, frame.bitOffset, signal); // in a worker; CodecError: 4xx
}

/** True when the first acceptable entry is a single-part media type (not multipart/*, not a wildcard). */
function isSinglePartRequest(accept: AcceptEntry[], choice: FrameChoice): boolean {
  const want = choice.contentType.split(';')[0];
  const a = accept.find((e) => e.type !== 'multipart/related' && e.type !== '*/*' && e.type !== 'multipart/*' && mediaMatches(e.type, want));
  const firstMultipart = accept.findIndex((e) => e.type === 'multipart/related' || e.type === '*/*' || e.type === 'multipart/*');
  return a !== undefined && (firstMultipart < 0 || accept.indexOf(a) < firstMultipart);
}

export function wadoRouter(ctx: ServerContext, renderer: RenderService): express.Router {
  const r = express.Router();

  r.get('/studies/:study', wrap(async (req, res) => sendInstances(ctx, renderer, req, res, instancesOf(ctx, String(req.params.study)))));
  r.get('/studies/:study/series/:series', wrap(async (req, res) =>
    sendInstances(ctx, renderer, req, res, instancesOf(ctx, String(req.params.study), String(req.params.series)))));
  r.get('/studies/:study/series/:series/instances/:sop', wrap(async (req, res) =>
    sendInstances(ctx, renderer, req, res, [getInstance(ctx, String(req.params.study), String(req.params.series), String(req.params.sop))])));

  // Metadata (PS3.18 10.4.1.1.2): DICOM JSON with BulkDataURIs, built at ingest.
  const metadata = (list: InstanceInfo[], req: Request, res: Response) => {
    const accept = requestAccept(req);
    if (!accept.some((a) => mediaMatches(a.type, 'application/dicom+json') || a.type === 'application/json')) {
      throw notAcceptable('metadata is available as application/dicom+json');
    }
    const base = baseUrl(req, ctx);
    sendDicomJson(res, `[${list.map((i) => metadataWithBase(i, base, BASE_TOKEN)).join(',')}]`);
  };
  r.get('/studies/:study/metadata', wrap(async (req, res) => metadata(instancesOf(ctx, String(req.params.study)), req, res)));
  r.get('/studies/:study/series/:series/metadata', wrap(async (req, res) =>
    metadata(instancesOf(ctx, String(req.params.study), String(req.params.series)), req, res)));
  r.get('/studies/:study/series/:series/instances/:sop/metadata', wrap(async (req, res) =>
    metadata([getInstance(ctx, String(req.params.study), String(req.params.series), String(req.params.sop))], req, res)));

  // Bulk data (PS3.18 10.4.1.1.5): the value behind each BulkDataURI, by its recorded byte range.
  r.get(/^\/studies\/([^/]+)\/series\/([^/]+)\/instances\/([^/]+)\/bulkdata\/(.+)$/, wrap(async (req, res) => {
    const [study, series, sop, path] = [0, 1, 2, 3].map((i) => String((req.params as any)[i]));
    const info = getInstance(ctx, study, series, sop);
    if (!/^[0-9A-F]{8}(\/\d+\/[0-9A-F]{8})*$/i.test(path)) throw badRequest('malformed bulk data path');
    const ref = info.bulk.refs.find((b) => b.path.toUpperCase() === path.toUpperCase());
    if (!ref) throw notFound('no bulk data at that path');
    const accept = requestAccept(req);
    const isPixel = ref.path.toUpperCase().startsWith('7FE0');
    const encapsulated = isPixel && !NATIVE.has(info.transferSyntaxUID);
    if (encapsulated) {
      // Encapsulated Pixel Data: one part per frame, negotiated as frames are (PS3.18 8.7.3.3): as stored,
      // decoded to Explicit VR Little Endian (application/octet-stream without a syntax), or transcoded.
      const choice = chooseFrameRepresentation(ctx, accept, info, true);
      const ac = new AbortController();
      onClientGone(req, res, () => ac.abort());
      if (info.frameCount === 1 && isSinglePartRequest(accept, choice)) {
        // a single-frame instance asked for with a single-part Accept: the frame as the whole body
        res.status(200).set('Content-Type', choice.contentType).send(await frameBody(ctx, renderer, info, choice, 1, ac.signal));
        return;
      }
      const out = new MultipartStream(req, res, choice.contentType.split(';')[0]);
      for (let n = 1; n <= info.frameCount; n++) await out.part(choice.contentType, await frameBody(ctx, renderer, info, choice, n, ac.signal));
      out.end();
      return;
    }
    const body = await readBulk(ctx, info, ref);
    const wantsMultipart = accept.find((a) => a.type === 'multipart/related' || a.type === '*/*' || a.type === 'application/octet-stream');
    if (!wantsMultipart) throw notAcceptable('bulk data is available as multipart/related; type="application/octet-stream" or application/octet-stream');
    if (wantsMultipart.type === 'application/octet-stream') {
      res.status(200).type('application/octet-stream').send(body);
      return;
    }
    sendMultipart(res, 'application/octet-stream', [{ contentType: 'application/octet-stream', body }]);
  }));

  r.get('/studies/:study/series/:series/instances/:sop/frames/:frames', wrap(async (req, res) => {
    const info = getInstance(ctx, String(req.params.study), String(req.params.series), String(req.params.sop));
    if (info.frameCount === 0) throw notFound('the instance has no pixel data frames');
    const list = parseFrameList(String(req.params.frames), info.frameCount);
    const choice = chooseFrameRepresentation(ctx, requestAccept(req), info, list.length === 1);
    const ac = new AbortController();
    onClientGone(req, res, () => ac.abort());
    if (list.length === 1 && isSinglePartRequest(requestAccept(req), choice)) {
      // a single-part Accept (PS3.18 8.7.5): the frame as the whole body
      res.status(200).set('Content-Type', choice.contentType).send(await frameBody(ctx, renderer, info, choice, list[0], ac.signal));
      return;
    }
    const partType = choice.contentType.split(';')[0];
    const out = new MultipartStream(req, res, partType);
    const base = `${req.baseUrl}${req.path.replace(/frames\/.*/, '')}frames/`;
    for (const n of list) await out.part(choice.contentType, await frameBody(ctx, renderer, info, choice, n, ac.signal), `${base}${n}`);
    out.end();
  }));

  return r;
}

/**
 * WADO-RS (PS3.18 10.4): studies, series and instances (original bytes), metadata (DICOM JSON), bulkdata and
 * frames, with media type and transfer syntax negotiation per PS3.18 8.7.
 */
import express, { Request, Response } from 'express';
import { ServerContext } from './context';
import { badRequest, notAcceptable, notFound } from './errors';
import { requestAccept, AcceptEntry, mediaMatches } from './accept';
import { getInstance, instancesOf, readFrame, readBulk, metadataWithBase, InstanceInfo } from './instances';
import { baseUrl, boundary, sendDicomJson, sendMultipart, wrap } from './http';
import { BASE_TOKEN } from './ingest';
import { decodeFrame, initCodecsFor, nativeMediaType } from '../render/codecs';

export const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99']);

// ---------------------------------------------------------------------------------------------
// Instances (PS3.18 10.4.1.1.1): original bytes, streamed.

function acceptsDicom(accept: AcceptEntry[], ts: string[]): void {
  for (const a of accept) {
    const partType = a.params.type ?? (a.type === 'multipart/related' ? 'application/dicom' : undefined);
    const ok = (a.type === 'multipart/related' && (partType === 'application/dicom' || partType === '*/*'))
      || a.type === '*/*' || a.type === 'multipart/*' || a.type === 'application/dicom';
    if (!ok) continue;
    const want = a.params['transfer-syntax'];
    // We serve what was stored; no transcoding. '*' or no parameter accepts it; a named syntax must match.
    if (!want || want === '*' || ts.every((t) => t === want)) return;
  }
  throw notAcceptable('instances are served in their stored transfer syntax (use transfer-syntax=* or the stored one)');
}

async function sendInstances(ctx: ServerContext, req: Request, res: Response, list: InstanceInfo[]): Promise<void> {
  acceptsDicom(requestAccept(req), list.map((i) => i.transferSyntaxUID));
  const b = boundary();
  res.status(200).set('Content-Type', `multipart/related; type="application/dicom"; boundary=${b}`);
  for (const info of list) {
    res.write(`--${b}\r\nContent-Type: application/dicom; transfer-syntax=${info.transferSyntaxUID}\r\nContent-Length: ${info.size}\r\n\r\n`);
    await new Promise<void>((resolve, reject) => {
      const s = ctx.blobs.stream(info.blobKey);
      s.on('error', reject);
      s.on('end', () => resolve());
      s.pipe(res, { end: false });
    });
    res.write('\r\n');
  }
  res.end(`--${b}--\r\n`);
}

// ---------------------------------------------------------------------------------------------
// Frames (PS3.18 10.4.1.1.3, 8.7.3.3): compressed as stored, or decoded to Explicit VR Little Endian.

interface FrameChoice { decode: boolean; contentType: string }

function chooseFrameRepresentation(accept: AcceptEntry[], ts: string, single: boolean): FrameChoice {
  const encapsulated = !NATIVE.has(ts);
  const stored = (encapsulated ? nativeMediaType(ts) : undefined) ?? 'application/octet-stream';
  const raw: FrameChoice = { decode: encapsulated || ts === '1.2.840.10008.1.2.2', contentType: `application/octet-stream; transfer-syntax=${EXPLICIT_LE}` };
  const asStored: FrameChoice = { decode: false, contentType: `${stored}; transfer-syntax=${ts}` };
  for (const a of accept) {
    let part: string | undefined;
    if (a.type === 'multipart/related') part = a.params.type ?? 'application/octet-stream';
    else if (single && a.type !== '*/*' && a.type !== 'multipart/*') part = a.type; // single-part media types
    else if (a.type === '*/*' || a.type === 'multipart/*') part = '*/*';
    if (!part) continue;
    const want = a.params['transfer-syntax'];
    if (part === 'application/octet-stream') {
      if (want === '*') return encapsulated ? { decode: false, contentType: `application/octet-stream; transfer-syntax=${ts}` } : raw;
      if (!want || want === EXPLICIT_LE) return raw;
      if (want === ts) return { decode: false, contentType: `application/octet-stream; transfer-syntax=${ts}` };
      continue;
    }
    if (part === '*/*') return encapsulated ? asStored : raw;
    if (encapsulated && mediaMatches(part, stored) && (!want || want === '*' || want === ts)) return asStored;
  }
  throw notAcceptable(`frames of this instance are available as ${stored} (transfer syntax ${ts}) or decoded as application/octet-stream`);
}

/** Decoded pixels as Explicit VR Little Endian native bytes (PS3.5 8.2). */
function toLittleEndianBytes(pixels: ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number; BYTES_PER_ELEMENT: number }): Buffer {
  // Typed arrays are little endian on every platform Node supports (x86, ARM little endian).
  return Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
}

export function parseFrameList(s: string, max: number): number[] {
  if (!/^\d{1,9}(,\d{1,9})*$/.test(s)) throw badRequest('frame list must be comma-separated frame numbers from 1');
  const list = s.split(',').map(Number);
  if (list.length > 10000) throw badRequest('too many frames in one request');
  for (const n of list) {
    if (n < 1) throw badRequest('frame numbers start at 1');
    if (n > max) throw notFound(`frame ${n} does not exist (the instance has ${max})`);
  }
  return list;
}

export function wadoRouter(ctx: ServerContext): express.Router {
  const r = express.Router();

  r.get('/studies/:study', wrap(async (req, res) => sendInstances(ctx, req, res, instancesOf(ctx, String(req.params.study)))));
  r.get('/studies/:study/series/:series', wrap(async (req, res) =>
    sendInstances(ctx, req, res, instancesOf(ctx, String(req.params.study), String(req.params.series)))));
  r.get('/studies/:study/series/:series/instances/:sop', wrap(async (req, res) =>
    sendInstances(ctx, req, res, [getInstance(ctx, String(req.params.study), String(req.params.series), String(req.params.sop))])));

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
      // Encapsulated Pixel Data: one part per frame, in its compressed form.
      const media = nativeMediaType(info.transferSyntaxUID) ?? 'application/octet-stream';
      const parts = [];
      for (let n = 1; n <= info.frames.length; n++) {
        parts.push({ contentType: `${media}; transfer-syntax=${info.transferSyntaxUID}`, body: (await readFrame(ctx, info, n)).data });
      }
      sendMultipart(res, media, parts);
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
    if (info.frames.length === 0) throw notFound('the instance has no pixel data frames');
    const list = parseFrameList(String(req.params.frames), info.frames.length);
    const choice = chooseFrameRepresentation(requestAccept(req), info.transferSyntaxUID, list.length === 1);
    const parts: Array<{ contentType: string; body: Buffer }> = [];
    for (const n of list) {
      const frame = await readFrame(ctx, info, n);
      let body = frame.data;
      if (choice.decode) {
        if (!info.render) throw notAcceptable('this instance cannot be decoded; request transfer-syntax=*');
        const f = info.render.frame;
        if (f.rows * f.columns > ctx.config.limits.maxRenderPixels) throw badRequest('frame larger than the decoding pixel limit; request transfer-syntax=*');
        await initCodecsFor(info.transferSyntaxUID); // only this syntax's codec: each wasm heap stays in this thread
        const decoded = decodeFrame(info.transferSyntaxUID, { data: frame.data, bitOffset: frame.bitOffset }, f); // CodecError: 4xx in app.ts
        body = toLittleEndianBytes(decoded.pixels as any);
      }
      parts.push({ contentType: choice.contentType, body });
    }
    const partType = choice.contentType.split(';')[0];
    sendMultipart(res, partType, parts.map((p, i) => ({ ...p, location: `${req.baseUrl}${req.path.replace(/frames\/.*/, '')}frames/${list[i]}` })));
  }));

  return r;
}

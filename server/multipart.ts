/**
 * Streaming reader of multipart/related bodies (RFC 2046 5.1, RFC 2387) for STOW-RS. Each part's body is
 * written to a staging file as it arrives, so memory stays bounded by one chunk whatever the upload size.
 * Only parts closed by a delimiter are handed on; a truncated last part is dropped.
 */
import * as fs from 'fs';
import * as crypto from 'crypto';
import { Readable } from 'stream';
import { badRequest, HttpError, payloadTooLarge } from './errors';

export interface MediaType { type: string; params: Record<string, string> }

/** Parses `type/subtype; a=b; c="d"` (RFC 7231 3.1.1.1). */
export function parseMediaType(value: string | undefined): MediaType | undefined {
  if (!value) return undefined;
  const m = /^\s*([^\s;]+)\s*(.*)$/.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /;\s*([^=\s;]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^;\s]*)/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]))) params[p[1].toLowerCase()] = p[3] !== undefined ? p[3].replace(/\\(.)/g, '$1') : p[2];
  return { type: m[1].toLowerCase(), params };
}

export interface StagedPart {
  headers: Record<string, string>;
  /** staging file holding the body; undefined when the part was refused */
  path?: string;
  size: number;
  /** why the part was not kept (too large) */
  refused?: string;
  /** SHA-256 of the body, computed as it streamed in (so ingest need not read the file again) */
  sha256?: string;
}

export interface MultipartLimits { maxBodyBytes: number; maxPartBytes: number }

const CRLF = Buffer.from('\r\n');
/** Longest boundary accepted (RFC 2046 says 70; Orthanc sends 73; 200 leaves room for other senders). */
export const MAX_BOUNDARY = 200;

/**
 * Reads `body` and calls `onPart` for every complete part, in order, awaiting it before reading further
 * (back-pressure reaches the client). `stagingPath()` names a file for each part.
 */
export async function readMultipart(body: Readable, boundary: string, limits: MultipartLimits, stagingPath: () => string,
  onPart: (part: StagedPart) => Promise<void>): Promise<number> {
  // RFC 2046 allows 70 characters; real senders exceed it (Orthanc 1.10: 73), so up to MAX_BOUNDARY are taken.
  if (!boundary || boundary.length > MAX_BOUNDARY) throw badRequest(`multipart boundary missing or longer than ${MAX_BOUNDARY} characters`);
  const dashBoundary = Buffer.from(`--${boundary}`, 'latin1');
  const delimiter = Buffer.concat([CRLF, dashBoundary]);
  let buf: Buffer = Buffer.alloc(0);
  let state: 'preamble' | 'afterDelimiter' | 'headers' | 'body' | 'done' = 'preamble';
  let total = 0;
  let count = 0;
  let part: { headers: Record<string, string>; path?: string; out?: fs.WriteStream; size: number; refused?: string; hash: crypto.Hash } | undefined;

  const write = (data: Buffer) => new Promise<void>((resolve, reject) => {
    if (!part) return resolve();
    part.size += data.length;
    if (part.size > limits.maxPartBytes && !part.refused) {
      part.refused = `part larger than the ${limits.maxPartBytes}-byte limit`;
      const out = part.out; part.out = undefined;
      if (out) out.destroy();
      if (part.path) fs.rm(part.path, { force: true }, () => undefined);
      part.path = undefined;
    }
    if (!part.out || data.length === 0) return resolve();
    part.hash.update(data);
    part.out.write(data, (err) => (err ? reject(err) : resolve()));
  });
  const closePart = async () => {
    if (!part) return;
    const p = part;
    part = undefined;
    if (p.out) await new Promise<void>((resolve, reject) => p.out!.end((err?: Error | null) => (err ? reject(err) : resolve())));
    count++;
    await onPart({ headers: p.headers, path: p.path, size: p.size, refused: p.refused, sha256: p.refused ? undefined : p.hash.digest('hex') });
  };
  const abandon = () => {
    if (part?.out) part.out.destroy();
    if (part?.path) fs.rm(part.path, { force: true }, () => undefined);
    part = undefined;
  };

  try {
    for await (const chunk of body) {
      total += chunk.length;
      if (total > limits.maxBodyBytes) throw payloadTooLarge(`request body larger than the ${limits.maxBodyBytes}-byte limit`);
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (state === 'preamble') {
          // The first delimiter may open the body without a preceding CRLF.
          const i = buf.indexOf(dashBoundary);
          if (i < 0) { buf = buf.subarray(Math.max(0, buf.length - dashBoundary.length)); break; }
          buf = buf.subarray(i + dashBoundary.length);
          state = 'afterDelimiter';
        } else if (state === 'afterDelimiter') {
          if (buf.length < 2) break;
          if (buf[0] === 0x2d && buf[1] === 0x2d) { state = 'done'; buf = Buffer.alloc(0); break; }
          const eol = buf.indexOf(CRLF);
          if (eol < 0) { if (buf.length > 1024) throw badRequest('malformed multipart delimiter line'); break; }
          if (buf.subarray(0, eol).toString('latin1').trim() !== '') throw badRequest('malformed multipart delimiter line');
          buf = buf.subarray(eol + 2);
          state = 'headers';
        } else if (state === 'headers') {
          let end = buf.indexOf('\r\n\r\n');
          let headerText: string;
          if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) { headerText = ''; end = -2; } else if (end < 0) {
            if (buf.length > 16 * 1024) throw badRequest('multipart part headers too long');
            break;
          } else headerText = buf.subarray(0, end).toString('latin1');
          const headers: Record<string, string> = {};
          for (const line of headerText.split('\r\n')) {
            const c = line.indexOf(':');
            if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
          }
          buf = buf.subarray(end + 4);
          const path = stagingPath();
          part = { headers, path, out: fs.createWriteStream(path), size: 0, hash: crypto.createHash('sha256') };
          state = 'body';
        } else if (state === 'body') {
          const i = buf.indexOf(delimiter);
          if (i < 0) {
            // Keep enough to recognise a delimiter split across chunks.
            const keep = delimiter.length - 1;
            if (buf.length > keep) { await write(buf.subarray(0, buf.length - keep)); buf = Buffer.from(buf.subarray(buf.length - keep)); }
            break;
          }
          await write(buf.subarray(0, i));
          buf = buf.subarray(i + delimiter.length);
          await closePart();
          state = 'afterDelimiter';
        } else {
          break;
        }
      }
      if (state === 'done') break;
    }
  } catch (e) {
    abandon();
    if (e instanceof HttpError) throw e;
    throw badRequest('the request body could not be read to its end');
  }
  abandon();
  if (state === 'preamble') throw badRequest('no multipart boundary found in the body');
  if (count === 0) throw badRequest('the multipart body holds no complete part');
  return count;
}

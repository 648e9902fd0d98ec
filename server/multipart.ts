/**
 * Streaming reader of multipart/related bodies (RFC 2046 5.1, RFC 2387) for STOW-RS. Each part's body is
 * written to a staging file as it arrives, so memory stays bounded by one chunk whatever the upload size.
 * A part is handed on as refused (never silently dropped) when it is too large, when the body ends before its
 * closing delimiter, or when its staging file cannot be written (disk full, I/O error): the rest of the body is
 * still read, so the client gets the store response.
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as crypto from 'crypto';
import { Readable } from 'stream';
import { badRequest, HttpError, payloadTooLarge } from './errors';
import { classifyStorageError, FaultError, recordFault } from './faults';

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
  /** why the part was not kept (too large, not terminated, not writable) */
  refused?: string;
  /** set when the part was refused because the staging file could not be written */
  fault?: FaultError;
  /** set when the body ended inside this part (no closing delimiter) */
  unterminated?: boolean;
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
  type Open = { headers: Record<string, string>; path?: string; out?: fs.WriteStream; size: number; refused?: string; fault?: FaultError; hash: crypto.Hash };
  let part: Open | undefined;
  // Staging files being removed; all are gone before this function returns.
  const removals: Array<Promise<unknown>> = [];

  /** Stops writing `p`: its staging file is removed, the rest of its body is read and dropped. */
  const refuse = (p: Open, reason: string, fault?: FaultError) => {
    if (p.refused) return;
    p.refused = reason;
    p.fault = fault;
    const out = p.out; p.out = undefined;
    const file = p.path;
    p.path = undefined;
    // The file is removed once its stream has closed: a stream destroyed before its open completed still
    // creates the file, and a removal made before that would leave it behind.
    const closed = out && !out.closed ? new Promise<void>((resolve) => { out.once('close', () => resolve()); out.destroy(); }) : Promise.resolve();
    if (file) removals.push(closed.then(() => fsp.rm(file, { force: true })).catch(() => undefined));
  };
  /** The staging file of `p` could not be written: a fault of the server, reported on this part. */
  const writeFailed = (p: Open, out: fs.WriteStream, err: unknown) => {
    if (p.out !== out) return; // already refused (the stream reports one error twice: callback and event)
    const f = classifyStorageError(err) ?? new FaultError(503, 'the upload could not be staged on the server; try again later', 'storage-unavailable');
    recordFault(f.kind, `staging ${p.path}: ${(err as Error)?.message ?? err}`);
    refuse(p, f.message, f);
  };
  const write = (data: Buffer) => new Promise<void>((resolve) => {
    const p = part;
    if (!p) return resolve();
    p.size += data.length;
    if (p.size > limits.maxPartBytes) refuse(p, `part larger than the ${limits.maxPartBytes}-byte limit`);
    const out = p.out;
    if (!out || data.length === 0) return resolve();
    p.hash.update(data);
    out.write(data, (err) => { if (err) writeFailed(p, out, err); resolve(); });
  });
  const handOn = async (p: Open, unterminated = false) => {
    const out = p.out;
    if (out) await new Promise<void>((resolve) => out.end((err?: Error | null) => { if (err) writeFailed(p, out, err); resolve(); }));
    count++;
    await Promise.all(removals);
    await onPart({ headers: p.headers, path: p.path, size: p.size, refused: p.refused, fault: p.fault, unterminated: unterminated || undefined,
      sha256: p.refused ? undefined : p.hash.digest('hex') });
  };
  const closePart = async () => {
    if (!part) return;
    const p = part;
    part = undefined;
    await handOn(p);
  };
  const openPart = (headers: Record<string, string>): Open => {
    const path = stagingPath();
    const out = fs.createWriteStream(path);
    const p: Open = { headers, path, out, size: 0, hash: crypto.createHash('sha256') };
    out.on('error', (err) => writeFailed(p, out, err)); // e.g. the file cannot be created: never an unhandled 'error'
    return p;
  };
  const abandon = () => {
    if (part) refuse(part, 'abandoned');
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
          part = openPart(headers);
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
    if (state === 'body' || state === 'headers') {
      // The body ended inside a part, without its closing delimiter (RFC 2046 5.1.1): the part is incomplete.
      // It is handed on as refused, so the store response reports it, never stored and never silently dropped.
      const reason = 'the body ended before this part\'s closing boundary';
      const p = part ?? { headers: {}, size: 0, hash: crypto.createHash('sha256') };
      part = undefined;
      refuse(p, reason);
      await handOn(p, true);
    }
  } catch (e) {
    abandon();
    await Promise.all(removals);
    if (e instanceof HttpError) throw e;
    // A fault of the server's storage is not the client's: it keeps its status (507, 503).
    const fault = classifyStorageError(e);
    if (fault) { recordFault(fault.kind, `multipart body: ${(e as Error)?.message ?? e}`); throw fault; }
    throw badRequest('the request body could not be read to its end');
  }
  abandon();
  await Promise.all(removals);
  if (state === 'preamble') throw badRequest('no multipart boundary found in the body');
  if (count === 0) throw badRequest('the multipart body holds no complete part');
  return count;
}

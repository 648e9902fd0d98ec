/**
 * Small HTTP helpers shared by the service modules.
 */
import { NextFunction, Request, Response } from 'express';
import { HttpError } from './errors';
import * as crypto from 'crypto';
import { ServerContext } from './context';

/**
 * A Host header value we are willing to put into a URL: a DNS name, an IPv4 address or a bracketed IPv6 literal,
 * optionally with a port (RFC 7230 5.4, RFC 3986 3.2.2). Anything else (userinfo, paths, spaces, several hosts)
 * is refused, so a forged Host cannot smuggle another origin or a path into the URIs we hand out.
 */
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?)(?::(\d{1,5}))?$/;

/**
 * The DICOMweb root as clients reach it: the configured public URL; else scheme://host[:port]/dicom-web built
 * from the request. The host is the Host header's when it is a well-formed host (else the address the client
 * connected to). The port is the Host header's; when the header carries none (dicomweb-client for Python sends
 * `Host: name` without the port on STOW), the port the connection actually arrived on, unless that is the
 * scheme's default. See conformance/CONFORMANCE.md, "URIs".
 */
export function baseUrl(req: Request, ctx: ServerContext): string {
  if (ctx.config.publicUrl) return ctx.config.publicUrl;
  const proto = (req.socket as any)?.encrypted ? 'https' : 'http';
  const defaultPort = proto === 'https' ? 443 : 80;
  const localPort = req.socket?.localPort ?? ctx.config.port;
  const header = req.get('host');
  const m = header !== undefined && header.length <= 260 ? HOST_RE.exec(header) : null;
  let hostPort: string;
  if (m && (m[1] === undefined || Number(m[1]) <= 65535)) {
    hostPort = m[1] !== undefined || !localPort || localPort === defaultPort ? header! : `${header!.replace(/\.$/, '')}:${localPort}`;
  } else {
    let addr = req.socket?.localAddress ?? '127.0.0.1';
    if (addr.startsWith('::ffff:')) addr = addr.slice(7);
    if (addr.includes(':')) addr = `[${addr}]`;
    hostPort = localPort === defaultPort ? addr : `${addr}:${localPort}`;
  }
  return `${proto}://${hostPort}/dicom-web`;
}

/**
 * PS3.18 8.7.3.5: DICOM JSON is sent as application/dicom+json, with no parameters (JSON is always UTF-8,
 * RFC 8259; dicomweb-client for Python compares the media type exactly and drops a response with `charset`).
 */
export function sendDicomJson(res: Response, body: unknown, status = 200): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.status(status).set('Content-Type', 'application/dicom+json').send(Buffer.from(text, 'utf8'));
}

/** An async route handler whose failures reach the one error handler (server/app.ts). */
export const wrap = (h: (req: Request, res: Response) => Promise<void>) =>
  (req: Request, res: Response, next: NextFunction) => { h(req, res).catch(next); };

export function boundary(): string { return crypto.randomBytes(16).toString('hex'); }

/** Writes parts as multipart/related (RFC 2387), each with its Content-Type and optional Content-Location. */
/**
 * The bodies are handed to the socket as they are (one writev with the part headers, corked), never joined into
 * one buffer: a frame is read once and copied by nobody before the kernel. Content-Length is the sum.
 */
export function sendMultipart(res: Response, type: string, parts: Array<{ contentType: string; body: Buffer; location?: string }>): void {
  const b = boundary();
  const chunks: Buffer[] = [];
  const crlf = Buffer.from('\r\n');
  for (const p of parts) {
    chunks.push(Buffer.from(`--${b}\r\nContent-Type: ${p.contentType}\r\n${p.location ? `Content-Location: ${p.location}\r\n` : ''}\r\n`, 'latin1'));
    chunks.push(p.body, crlf);
  }
  chunks.push(Buffer.from(`--${b}--\r\n`));
  let length = 0;
  for (const c of chunks) length += c.length;
  res.status(200).set('Content-Type', `multipart/related; type="${type}"; boundary=${b}`).set('Content-Length', String(length));
  if (res.req?.method === 'HEAD') { res.end(); return; }
  res.cork();
  for (const c of chunks) res.write(c);
  res.end(); // uncorks: the whole response in one writev
}

/** Bytes of parts a MultipartStream holds before it sends the headers: an error up to there is still a clean 4xx. */
export const MULTIPART_BUFFER_BYTES = 8 * 1024 * 1024;

/** Thrown by MultipartStream.part when the client has gone: the producer stops, nothing is logged. */
export class ClientGone extends HttpError {
  constructor() { super(499, 'client closed the connection'); }
}

/**
 * A multipart/related response (RFC 2387) written part by part, so that memory per request is one part (plus up to
 * MULTIPART_BUFFER_BYTES held back at the start), whatever the number of parts. `part` waits while the socket is
 * full (back-pressure reaches the producer) and throws ClientGone once the client has disconnected, which stops
 * the reads, decodes and renders still to come. An error after the headers went out ends the connection without
 * the closing delimiter: the client sees a truncated body, never a complete-looking one.
 */
export class MultipartStream {
  private readonly b = boundary();
  private held: Buffer[] = [];
  private heldBytes = 0;
  private started = false;
  private gone = false;
  constructor(private readonly req: Request, private readonly res: Response, private readonly type: string) {
    void req;
    res.on('close', () => { if (!res.writableFinished) this.gone = true; });
  }

  /** False once the client has disconnected. */
  get open(): boolean { return !this.gone && !this.res.destroyed; }

  async part(contentType: string, body: Buffer, location?: string): Promise<void> {
    if (!this.open) throw new ClientGone();
    const head = Buffer.from(`--${this.b}\r\nContent-Type: ${contentType}\r\n${location ? `Content-Location: ${location}\r\n` : ''}\r\n`, 'latin1');
    if (!this.started) {
      this.held.push(head, body, CRLF_BUF);
      this.heldBytes += head.length + body.length + 2;
      if (this.heldBytes <= MULTIPART_BUFFER_BYTES) return;
      this.start();
      const chunks = this.held; this.held = []; this.heldBytes = 0;
      for (const c of chunks) this.res.write(c);
    } else {
      this.res.write(head);
      this.res.write(body);
      this.res.write(CRLF_BUF);
    }
    await this.drained();
  }

  /** Sends what is held and the closing delimiter. */
  end(): void {
    if (!this.open) return;
    if (!this.started) {
      this.held.push(Buffer.from(`--${this.b}--\r\n`));
      const body = Buffer.concat(this.held);
      this.held = [];
      this.res.status(200).set('Content-Type', this.contentType()).send(body);
      return;
    }
    this.res.end(`--${this.b}--\r\n`);
  }

  private contentType() { return `multipart/related; type="${this.type}"; boundary=${this.b}`; }

  private start() {
    this.started = true;
    this.res.status(200).set('Content-Type', this.contentType());
  }

  /** Resolves when the socket has room again (or at once); throws ClientGone if the client leaves meanwhile. */
  private drained(): Promise<void> {
    if (!this.started || !this.res.writableNeedDrain) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => { this.res.off('drain', done); this.res.off('close', done); if (this.open) resolve(); else reject(new ClientGone()); };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }
}

const CRLF_BUF = Buffer.from('\r\n');

/** Calls `onGone` once if the client disconnects before the response is complete; returns a function that stops listening. */
export function onClientGone(req: Request, res: Response, onGone: () => void): () => void {
  let fired = false;
  const check = () => { if (!fired && !res.writableFinished) { fired = true; onGone(); } };
  res.on('close', check);
  return () => res.off('close', check);
}

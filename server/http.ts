/**
 * Small HTTP helpers shared by the service modules.
 */
import { NextFunction, Request, Response } from 'express';
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
export function sendMultipart(res: Response, type: string, parts: Array<{ contentType: string; body: Buffer; location?: string }>): void {
  const b = boundary();
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${b}\r\nContent-Type: ${p.contentType}\r\n${p.location ? `Content-Location: ${p.location}\r\n` : ''}\r\n`, 'latin1'));
    chunks.push(p.body, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${b}--\r\n`));
  res.status(200).set('Content-Type', `multipart/related; type="${type}"; boundary=${b}`).send(Buffer.concat(chunks));
}

/**
 * Small HTTP helpers shared by the service modules.
 */
import { NextFunction, Request, Response } from 'express';
import * as crypto from 'crypto';
import { ServerContext } from './context';

/** The DICOMweb root as clients reach it: the configured public URL, else scheme://host/dicom-web of the request. */
export function baseUrl(req: Request, ctx: ServerContext): string {
  if (ctx.config.publicUrl) return ctx.config.publicUrl;
  const host = req.get('host') ?? `127.0.0.1:${ctx.config.port}`;
  const proto = (req.socket as any)?.encrypted ? 'https' : 'http';
  return `${proto}://${host}/dicom-web`;
}

/** PS3.18 8.7.3.5: DICOM JSON is sent as application/dicom+json. */
export function sendDicomJson(res: Response, body: unknown, status = 200): void {
  res.status(status).type('application/dicom+json').send(typeof body === 'string' ? body : JSON.stringify(body));
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

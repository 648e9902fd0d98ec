/**
 * Small HTTP helpers shared by the service modules.
 */
import { Request, Response } from 'express';
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

/**
 * The front page at `/`: plain HTML, CSS and a JavaScript module from server/public (no build step), served
 * with a strict Content-Security-Policy, and `/ui-config.json`, which tells the page what this server has
 * enabled (authentication, signed links, the viewer). The page itself only uses the public DICOMweb API.
 */
import express, { Request, Response, NextFunction } from 'express';
import * as fs from 'fs';
import * as path from 'path';
import { Config } from './config';

/** server/public in the source tree; this module runs from dist/server. */
export const PUBLIC_DIR = [path.resolve(__dirname, 'public'), path.resolve(__dirname, '../../server/public')]
  .find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? path.resolve(__dirname, '../../server/public');

/** Only this origin's scripts, styles, images (and blob: thumbnails fetched with the token) and requests. */
export const FRONT_PAGE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'", "object-src 'none'",
].join('; ');

const FILES: Record<string, string> = {
  '/': 'index.html', '/index.html': 'index.html', '/ui/app.js': 'app.js', '/ui/style.css': 'style.css',
};
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

export function uiRouter(config: Config): express.Router {
  const r = express.Router();
  r.get('/ui-config.json', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({
      dicomWebRoot: '/dicom-web',
      auth: config.auth.enabled,
      signedLinks: Boolean(config.auth.signedLinkKey),
      viewer: Boolean(config.viewer) ? '/viewer/' : null,
    });
  });
  r.get(Object.keys(FILES), (req: Request, res: Response, next: NextFunction) => {
    const file = FILES[req.path];
    fs.readFile(path.join(PUBLIC_DIR, file), (err, data) => {
      if (err) { next(err); return; }
      res.set({
        'Content-Type': TYPES[path.extname(file)],
        'Content-Security-Policy': FRONT_PAGE_CSP,
        'X-Content-Type-Options': 'nosniff',
        'Referrer-Policy': 'no-referrer',
        'Cache-Control': 'no-cache',
      }).send(data);
    });
  });
  return r;
}

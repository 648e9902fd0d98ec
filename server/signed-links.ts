/**
 * Signed links to rendered images, for reports and e-mails that cannot carry a bearer token: the URL itself is
 * the credential, for exactly one rendered resource (its path and query) until it expires.
 *
 *   signature = BASE64URL( HMAC-SHA256( key, METHOD "\n" PATH "\n" CANONICAL-QUERY "\n" EXPIRES ) )
 *
 * PATH is the path as the server receives it (starting /dicom-web/), CANONICAL-QUERY the query parameters other
 * than `expires` and `signature`, decoded, sorted by name then value and re-encoded with encodeURIComponent,
 * joined with `&`; EXPIRES is the UNIX time (seconds) after which the link is refused.
 *
 * A link binds what it renders, media type included: its query carries exactly one `accept` parameter naming
 * image/jpeg or image/png (added at signing when absent: image/jpeg, PS3.18's default for rendered images).
 * The `accept` query parameter takes precedence over the Accept header (PS3.18 8.3.3.1), so whatever Accept a
 * request with the link sends, it gets that one image type: never multipart, never every frame.
 */
import * as crypto from 'crypto';
import express, { Request, Response, NextFunction } from 'express';
import { ServerContext } from './context';
import { badRequest, HttpError } from './errors';
import { baseUrl } from './http';

export const SIGNATURE_PARAMS = ['expires', 'signature'] as const;

/** The rendered resources a link may point at (thumbnails are rendered images too). */
const RENDERED_PATH = /^\/dicom-web\/studies\/[0-9.]{1,64}(\/series\/[0-9.]{1,64}(\/instances\/[0-9.]{1,64}(\/frames\/[0-9,]{1,200})?)?)?\/(rendered|thumbnail)$/;

export const forbidden = (reason: string) => new HttpError(403, reason);

/** The media types a signed link may bind (single images). */
export const SIGNED_MEDIA_TYPES = ['image/jpeg', 'image/png'] as const;

const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));

/** Splits a raw query string into decoded pairs; malformed percent-encoding is a 400. */
function pairs(rawQuery: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const p of rawQuery.split('&')) {
    if (!p) continue;
    const eq = p.indexOf('=');
    try {
      out.push(eq < 0 ? [decode(p), ''] : [decode(p.slice(0, eq)), decode(p.slice(eq + 1))]);
    } catch {
      throw badRequest('malformed URL encoding');
    }
  }
  return out;
}

export function canonicalQuery(rawQuery: string): string {
  return pairs(rawQuery)
    .filter(([k]) => !(SIGNATURE_PARAMS as readonly string[]).includes(k))
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

function mac(key: Buffer, method: string, path: string, rawQuery: string, expires: number): Buffer {
  return crypto.createHmac('sha256', key).update(`${method.toUpperCase()}\n${path}\n${canonicalQuery(rawQuery)}\n${expires}`).digest();
}

/**
 * Signs `pathAndQuery` (e.g. `/dicom-web/studies/1.2/series/3.4/instances/5.6/rendered?window=40,400`) for GET
 * until `expires` (UNIX seconds); returns the same path and query with `expires` and `signature` appended.
 */
export function signRenderedPath(key: Buffer, pathAndQuery: string, expires: number): string {
  const q = pathAndQuery.indexOf('?');
  const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const rawQuery = q < 0 ? '' : pathAndQuery.slice(q + 1);
  if (!RENDERED_PATH.test(path)) throw badRequest('only rendered and thumbnail resources under /dicom-web/studies can be signed');
  const given = pairs(rawQuery);
  if (given.some(([k]) => (SIGNATURE_PARAMS as readonly string[]).includes(k))) throw badRequest('the query already holds expires or signature');
  if (!Number.isInteger(expires) || expires <= 0) throw badRequest('expires must be a UNIX time in seconds');
  const accepts = given.filter(([k]) => k === 'accept').map(([, v]) => v.trim().toLowerCase());
  if (accepts.length > 1 || (accepts.length === 1 && !(SIGNED_MEDIA_TYPES as readonly string[]).includes(accepts[0]))) {
    throw badRequest(`a signed link renders one media type: accept must be one of ${SIGNED_MEDIA_TYPES.join(', ')}`);
  }
  const query = accepts.length ? rawQuery : `${rawQuery ? `${rawQuery}&` : ''}accept=${encodeURIComponent('image/jpeg')}`;
  const signature = mac(key, 'GET', path, query, expires).toString('base64url');
  return `${path}?${query}&expires=${expires}&signature=${signature}`;
}

/** True when the request carries signature parameters (it then stands or falls by them alone). */
export function hasSignature(req: Request): boolean {
  const q = req.originalUrl.indexOf('?');
  if (q < 0) return false;
  return pairs(req.originalUrl.slice(q + 1)).some(([k]) => (SIGNATURE_PARAMS as readonly string[]).includes(k));
}

/**
 * Checks a signed request: a GET/HEAD of a rendered resource, signed with `key` for this exact path and query,
 * not expired. Throws 403 otherwise.
 */
export function verifySignedRequest(key: Buffer | undefined, req: Request, now = Date.now()): void {
  if (!key) throw forbidden('signed links are not enabled on this server');
  const url = req.originalUrl;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? '' : url.slice(q + 1);
  const all = pairs(rawQuery);
  const expiresValues = all.filter(([k]) => k === 'expires').map(([, v]) => v);
  const signatures = all.filter(([k]) => k === 'signature').map(([, v]) => v);
  if (expiresValues.length !== 1 || signatures.length !== 1) throw forbidden('a signed link needs exactly one expires and one signature');
  if (!/^\d{1,12}$/.test(expiresValues[0])) throw forbidden('malformed expires');
  const expires = Number(expiresValues[0]);
  if (req.method !== 'GET' && req.method !== 'HEAD') throw forbidden('a signed link grants GET only');
  if (!RENDERED_PATH.test(path)) throw forbidden('a signed link grants a rendered image only');
  const given = Buffer.from(signatures[0], 'base64url');
  const expected = mac(key, 'GET', path, rawQuery, expires);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) throw forbidden('the signature does not match this URL');
  if (expires * 1000 <= now) throw forbidden('the signed link has expired');
  const accepts = all.filter(([k]) => k === 'accept').map(([, v]) => v.trim().toLowerCase());
  if (accepts.length !== 1 || !(SIGNED_MEDIA_TYPES as readonly string[]).includes(accepts[0])) {
    // Signed before links bound their media type (or by hand without it): what it renders is not fixed.
    throw forbidden(`a signed link must name its media type (accept=${SIGNED_MEDIA_TYPES.join(' or ')}); mint it again`);
  }
}

/**
 * POST /dicom-web/signed-links with JSON `{ "path": "/dicom-web/studies/.../rendered?...", "expiresIn": 3600 }`
 * (path may also be given relative to the DICOMweb root, `/studies/...`): answers `{ "url", "expires" }`.
 * The caller is authenticated by the auth middleware and needs the read scope (it can read the image already).
 */
export function signedLinksRouter(ctx: ServerContext): express.Router {
  const r = express.Router();
  r.post('/signed-links', express.json({ limit: '16kb', type: () => true }), (req: Request, res: Response, next: NextFunction) => {
    try {
      const key = ctx.config.auth.signedLinkKey;
      if (!key) throw new HttpError(404, 'signed links are not enabled on this server (no signed-link-key)');
      const body = req.body;
      if (!body || typeof body !== 'object' || typeof body.path !== 'string') throw badRequest('body must be JSON {"path": "...", "expiresIn": seconds, "accept": "image/png"}');
      let p: string = body.path;
      if (p.length > 4096) throw badRequest('path too long');
      if (p.startsWith('/studies/')) p = `/dicom-web${p}`;
      if (body.accept !== undefined) {
        // The media type the link renders, given beside the path (or as accept= in its query; not both).
        if (typeof body.accept !== 'string' || !(SIGNED_MEDIA_TYPES as readonly string[]).includes(body.accept.trim().toLowerCase())) {
          throw badRequest(`accept must be one of ${SIGNED_MEDIA_TYPES.join(', ')}`);
        }
        if (/[?&]accept=/.test(p)) throw badRequest('give the media type in accept or in the path\'s query, not both');
        p = `${p}${p.includes('?') ? '&' : '?'}accept=${encodeURIComponent(body.accept.trim().toLowerCase())}`;
      }
      const maxSeconds = ctx.config.auth.signedLinkMaxSeconds;
      const lifetime = body.expiresIn === undefined ? Math.min(3600, maxSeconds) : body.expiresIn;
      if (!Number.isInteger(lifetime) || lifetime < 1 || lifetime > maxSeconds) throw badRequest(`expiresIn must be an integer from 1 to ${maxSeconds} seconds`);
      const expires = Math.floor(Date.now() / 1000) + lifetime;
      const signed = signRenderedPath(key, p, expires);
      // The signature covers the path the server sees; the public URL may carry another prefix before /dicom-web.
      res.status(200).json({ url: `${baseUrl(req, ctx)}${signed.slice('/dicom-web'.length)}`, expires });
    } catch (e) {
      next(e);
    }
  });
  return r;
}

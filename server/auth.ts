/**
 * Authentication and authorisation (off unless configured): every request under /dicom-web carries
 * `Authorization: Bearer <token>`, where the token is an OpenID Connect access token (a JWT verified against the
 * issuer's JWKS, with its issuer, audience and expiry: RFC 7519, RFC 9068) or one of the configured static API
 * keys. STOW-RS needs the write scope, everything else the read scope. A signed link (server/signed-links.ts)
 * stands in for credentials on the one rendered image it names.
 *
 * Failures follow RFC 6750 3: 401 with `WWW-Authenticate: Bearer` when the token is missing, invalid or expired,
 * 403 when it lacks the scope.
 */
import * as crypto from 'crypto';
import { Request, Response, NextFunction, RequestHandler } from 'express';
import type * as Jose from 'jose';
import { AuthConfig } from './config';
import { HttpError } from './errors';
import { hasSignature, verifySignedRequest } from './signed-links';

const REALM = 'dicom-web';

export interface Principal { subject: string; scopes: Set<string>; via: 'jwt' | 'api-key' | 'signed-link' }

// jose is an ES module; Node 20.19+ loads it through require. Loaded only when OIDC is configured.
let josePromise: Promise<typeof Jose> | undefined;
const loadJose = () => (josePromise ??= import('jose'));

type KeySet = Parameters<typeof Jose.jwtVerify>[1];

/** Which scope a request needs: STOW-RS (POST /studies...) writes; reading and minting signed links read. */
export function requiredScope(cfg: AuthConfig, req: Request): string {
  if (req.method === 'GET' || req.method === 'HEAD') return cfg.readScope;
  if (req.method === 'POST' && req.path === '/signed-links') return cfg.readScope;
  return cfg.writeScope;
}

function unauthorized(res: Response, reason: string, tokenGiven: boolean): HttpError {
  // RFC 6750 3.1: no error code when no credentials were sent, invalid_token when they were.
  res.set('WWW-Authenticate', tokenGiven
    ? `Bearer realm="${REALM}", error="invalid_token", error_description="${reason.replace(/"/g, "'")}"`
    : `Bearer realm="${REALM}"`);
  return new HttpError(401, reason);
}

const hashKey = (k: string) => crypto.createHash('sha256').update(k, 'utf8').digest('hex');

/** OAuth 2.0 scopes: `scope` (RFC 8693 4.2, space-separated) or `scp` (a list, as some issuers write it). */
function scopesOf(payload: Jose.JWTPayload): Set<string> {
  const out = new Set<string>();
  const add = (v: unknown) => {
    if (typeof v === 'string') v.split(/\s+/).filter(Boolean).forEach((s) => out.add(s));
    else if (Array.isArray(v)) v.filter((s) => typeof s === 'string').forEach((s) => out.add(s as string));
  };
  add(payload.scope);
  add((payload as any).scp);
  return out;
}

/**
 * The middleware, mounted before the routers. With auth off it only checks signed links that a request
 * carries (when a signing key is configured), so a bad signature is refused the same way either way.
 */
export function authMiddleware(cfg: AuthConfig): RequestHandler {
  // Keys are compared by their SHA-256, so the lookup time does not depend on how much of a guess matches.
  const apiKeys = new Map([...cfg.apiKeys].map(([k, scopes]) => [hashKey(k), { scopes: new Set(scopes), name: `api-key:${hashKey(k).slice(0, 8)}` }]));
  let keySet: Promise<KeySet> | undefined;
  const getKeySet = () => (keySet ??= loadJose().then((jose) => (cfg.oidc!.jwksUrl
    ? jose.createRemoteJWKSet(new URL(cfg.oidc!.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 })
    : jose.createLocalJWKSet(cfg.oidc!.jwks as Jose.JSONWebKeySet))));

  const verifyJwt = async (token: string, res: Response): Promise<Principal> => {
    const jose = await loadJose();
    try {
      const { payload } = await jose.jwtVerify(token, await getKeySet(), {
        issuer: cfg.oidc!.issuer, audience: cfg.oidc!.audience, clockTolerance: cfg.clockSkewSeconds, requiredClaims: ['exp'],
      });
      // RFC 7519 4.1.6: a token issued in the future (beyond the allowed clock skew) is not one the issuer made now.
      if (payload.iat !== undefined && payload.iat > Date.now() / 1000 + cfg.clockSkewSeconds) {
        throw unauthorized(res, 'the token\'s iat claim is in the future', true);
      }
      return { subject: String(payload.sub ?? ''), scopes: scopesOf(payload), via: 'jwt' };
    } catch (e: any) {
      if (e instanceof HttpError) throw e;
      if (e instanceof jose.errors.JWTExpired) throw unauthorized(res, 'the token has expired', true);
      if (e instanceof jose.errors.JWTClaimValidationFailed) throw unauthorized(res, `the token's ${e.claim} claim is not accepted`, true);
      if (e instanceof jose.errors.JWKSTimeout || (e instanceof jose.errors.JOSEError && e.code === 'ERR_JOSE_GENERIC') || !(e instanceof jose.errors.JOSEError)) {
        // The issuer's keys could not be fetched (unreachable, timed out, not a 200 or not JSON): no verdict on
        // the token can be given, and it is not the client's fault. jose passes a failed fetch on as is (a
        // TypeError), not as one of its errors: anything that is not a JOSE verdict is this case.
        console.error(`auth: the JWKS at ${cfg.oidc!.jwksUrl ?? 'the configured file'} is unavailable: ${e?.message ?? e}${e?.cause ? ` (${e.cause?.code ?? e.cause?.message ?? e.cause})` : ''}`);
        throw new HttpError(503, 'the token issuer\'s keys are unavailable; try again later');
      }
      throw unauthorized(res, 'the token is not valid', true);
    }
  };

  return (req: Request, res: Response, next: NextFunction) => {
    // CORS preflight carries no credentials (Fetch standard, CORS-preflight request).
    if (req.method === 'OPTIONS') { next(); return; }
    const run = async () => {
      if (hasSignature(req)) {
        if (cfg.signedLinkKey || cfg.enabled) {
          verifySignedRequest(cfg.signedLinkKey, req);
          (req as any).principal = { subject: 'signed-link', scopes: new Set(), via: 'signed-link' } satisfies Principal;
          return;
        }
      }
      if (!cfg.enabled) return;
      const header = req.get('authorization');
      if (!header) throw unauthorized(res, 'authentication required: send Authorization: Bearer <token>', false);
      const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
      if (!m) throw unauthorized(res, 'the Authorization header must be Bearer <token>', true);
      const token = m[1];
      let principal: Principal;
      const key = apiKeys.get(hashKey(token));
      if (key) principal = { subject: key.name, scopes: key.scopes, via: 'api-key' };
      else if (cfg.oidc && token.split('.').length === 3) principal = await verifyJwt(token, res);
      else throw unauthorized(res, 'the token is not valid', true);
      const scope = requiredScope(cfg, req);
      if (!principal.scopes.has(scope)) {
        res.set('WWW-Authenticate', `Bearer realm="${REALM}", error="insufficient_scope", scope="${scope}"`);
        throw new HttpError(403, `the token lacks the ${scope} scope`);
      }
      (req as any).principal = principal;
    };
    run().then(() => next(), (e) => drainThen(req, res, () => next(e)));
  };
}

/** Most of a refused request's body read (and dropped) so the client, still sending, sees the answer. */
const DRAIN_MAX = 16 * 1024 * 1024;

/**
 * Answering before the body is read makes a client that is still writing fail on a reset connection (EPIPE)
 * instead of reading the 401. Small bodies are read to their end first; a large one gets `Connection: close`.
 */
function drainThen(req: Request, res: Response, respond: () => void): void {
  const length = Number(req.get('content-length') ?? (req.get('transfer-encoding') ? NaN : 0));
  if (req.complete || length === 0) { respond(); return; }
  if (length > DRAIN_MAX) { res.set('Connection', 'close'); respond(); return; }
  let seen = 0;
  let done = false;
  const finish = () => { if (done) return; done = true; clearTimeout(timer); respond(); };
  const timer = setTimeout(() => { res.set('Connection', 'close'); finish(); }, 5000);
  req.on('data', (d: Buffer) => { seen += d.length; if (seen > DRAIN_MAX) { res.set('Connection', 'close'); finish(); } });
  req.once('end', finish);
  req.once('error', finish);
  req.once('close', finish);
  req.resume();
}

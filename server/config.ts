/**
 * Configuration is read once, here, from command-line flags and environment variables (flags win), validated,
 * and passed down. Nothing else reads process.env.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { DimseConfig } from './dimse';

export interface Limits {
  /** Largest STOW-RS request body, bytes. */
  maxBodyBytes: number;
  /** Largest single part (instance) of a STOW-RS body, bytes. */
  maxPartBytes: number;
  /** Largest frame (rows x columns) the renderer accepts. */
  maxRenderPixels: number;
  /** Largest viewport side (pixels) a rendered request may ask for. */
  maxViewport: number;
  /**
   * Time a request may take before it is answered 503, milliseconds: from its arrival (or, with a body, from the
   * body's end) to the start of the response; a response that then stalls this long is cut.
   */
  requestTimeoutMs: number;
  /** Longest time a request body (an upload) may take to arrive, milliseconds (408 after). */
  uploadTimeoutMs: number;
  /** Slowest a request body may arrive, bytes per second over each window (408 below it; 0: no minimum). */
  minUploadRate: number;
  /** The window the upload rate is measured over, milliseconds. */
  uploadRateWindowMs: number;
}

/** OpenID Connect bearer tokens (JWTs), verified against the issuer's JWKS. */
export interface OidcConfig {
  issuer: string;
  audience: string;
  /** the JWKS fetched (and cached) from this URL... */
  jwksUrl?: string;
  /** ...or read once from a local file */
  jwks?: { keys: object[] };
}

export interface AuthConfig {
  /** true when OIDC or API keys are configured; off by default */
  enabled: boolean;
  oidc?: OidcConfig;
  /** static API keys (sent as `Authorization: Bearer <key>`) -> the scopes they grant */
  apiKeys: Map<string, string[]>;
  /** scope needed to read (QIDO, WADO, rendered) */
  readScope: string;
  /** scope needed to store (STOW) */
  writeScope: string;
  /** HMAC-SHA256 key of signed rendered links; undefined: signed links off */
  signedLinkKey?: Buffer;
  /** longest lifetime a signed link may be minted with, seconds */
  signedLinkMaxSeconds: number;
  /** clock difference allowed with the token issuer for exp, nbf and iat (a token issued further in the future is refused), seconds */
  clockSkewSeconds: number;
}

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  /** Public base URL of the DICOMweb root, if the server runs behind a proxy (else derived per request). */
  publicUrl?: string;
  /** Origins allowed by CORS ('*' for any); empty: CORS off. */
  corsOrigins: string[];
  limits: Limits;
  /** Bytes of rendered images kept in memory. */
  renderCacheBytes: number;
  /** Bytes of frames kept in memory for rendering (stored bytes, or decoded samples of compressed frames). */
  frameCacheBytes: number;
  /** Render worker threads (0: render on the main thread). */
  renderWorkers: number;
  /** Log one line per request. */
  logRequests: boolean;
  /** Serve the pinned OHIF viewer at /viewer (fetched once with npm pack if missing). */
  viewer: boolean;
  /** A folder holding an OHIF build (index.html, app-config.js) to serve instead of fetching one. */
  viewerDist?: string;
  auth: AuthConfig;
  /** DICOM C-ECHO / C-STORE listener (off unless a port is set). */
  dimse: DimseConfig;
}

export class ConfigError extends Error {}

/** What tests and embedders may set over the flags: any field, and any subset of the limits. */
export type ConfigOverrides = Partial<Omit<Config, 'limits'>> & { limits?: Partial<Limits> };

const DEFAULTS: Config = {
  port: 8042,
  host: '0.0.0.0',
  dataDir: './data',
  corsOrigins: [],
  limits: {
    maxBodyBytes: 8 * 1024 ** 3,
    maxPartBytes: 4 * 1024 ** 3,
    maxRenderPixels: 100_000_000,
    maxViewport: 8192,
    requestTimeoutMs: 120_000,
    uploadTimeoutMs: 3_600_000,
    minUploadRate: 1024,
    uploadRateWindowMs: 10_000,
  },
  renderCacheBytes: 16 * 1024 * 1024,
  frameCacheBytes: 32 * 1024 * 1024,
  renderWorkers: 2,
  logRequests: false,
  viewer: false,
  auth: { enabled: false, apiKeys: new Map(), readScope: 'dicomweb.read', writeScope: 'dicomweb.write', signedLinkMaxSeconds: 7 * 24 * 3600, clockSkewSeconds: 60 },
  dimse: { aeTitle: 'DICOMWEB', allowedAeTitles: [], idleTimeoutMs: 300_000 },
};

/** AE titles (PS3.5 Table 6.2-1, AE): 1 to 16 characters of the default repertoire, no backslash or control characters. */
const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;
function aeTitle(name: string, s: string): string {
  const t = s.trim();
  if (!AE_TITLE.test(t)) throw new ConfigError(`${name}: "${s}" is not an AE title (1 to 16 characters, no backslash)`);
  return t;
}

/**
 * An optional configuration file (JSON, or YAML by its .yaml/.yml ending) whose keys are the flags' names
 * without the dashes in front, e.g. {"port": 8042, "dimse-port": 11112}. Lists may be arrays.
 */
function readConfigFile(file: string, known: Set<string>): Record<string, string> {
  const text = readFile('config', file);
  let obj: unknown;
  try { obj = /\.ya?ml$/i.test(file) ? require('yaml').parse(text) : JSON.parse(text); } catch (e: any) {
    throw new ConfigError(`config ${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'} (${String(e?.message ?? e).split('\n')[0]})`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new ConfigError(`config ${file}: must hold an object of settings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    if (!known.has(k) || k === 'config') throw new ConfigError(`config ${file}: unknown setting "${k}"`);
    if (v === null || v === undefined) continue;
    if (Array.isArray(v)) out[k] = v.map(String).join(',');
    else if (typeof v === 'object') throw new ConfigError(`config ${file}: "${k}" must be a string, a number, a boolean or a list`);
    else out[k] = String(v);
  }
  return out;
}

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

/** Flags: --port N --host H --data DIR --public-url URL --cors-origins a,b --render-workers N ... */
export function loadConfig(argv: string[] = [], env: Record<string, string | undefined> = {}, overrides: ConfigOverrides = {}): Config {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new ConfigError(`unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    if (eq > 0) flags[a.slice(2, eq)] = a.slice(eq + 1);
    else {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith('--')) flags[a.slice(2)] = 'true';
      else { flags[a.slice(2)] = v; i++; }
    }
  }
  const known = new Set(['config', 'port', 'host', 'data', 'public-url', 'cors-origins', 'render-workers', 'render-cache-mb', 'frame-cache-mb', 'max-body-mb',
    'max-part-mb', 'max-render-pixels', 'max-viewport', 'request-timeout-ms', 'upload-timeout-ms', 'min-upload-rate', 'upload-rate-window-ms', 'log-requests',
    'auth-issuer', 'auth-audience', 'auth-jwks-url', 'auth-jwks-file', 'auth-read-scope', 'auth-write-scope', 'api-keys', 'api-keys-file',
    'signed-link-key', 'signed-link-max-seconds', 'auth-clock-skew-seconds', 'viewer', 'viewer-dist',
    'dimse-port', 'dimse-ae-title', 'dimse-allowed-aes', 'dimse-idle-timeout-ms']);
  for (const f of Object.keys(flags)) if (!known.has(f)) throw new ConfigError(`unknown option --${f}`);
  // Precedence: flags, then the environment, then the configuration file, then the defaults.
  const configFile = flags.config ?? env.CONFIG_FILE;
  const fromFile = configFile ? readConfigFile(configFile, known) : {};
  const get = (flag: string, envName: string) => flags[flag] ?? env[envName] ?? fromFile[flag];

  const c: Config = { ...DEFAULTS, limits: { ...DEFAULTS.limits }, corsOrigins: [], auth: { ...DEFAULTS.auth, apiKeys: new Map() }, dimse: { ...DEFAULTS.dimse, allowedAeTitles: [] } };
  const v = (flag: string, envName: string, apply: (s: string) => void) => { const s = get(flag, envName); if (s !== undefined && s !== '') apply(s); };
  v('port', 'PORT', (s) => { c.port = int('port', s, 0, 65535); });
  v('host', 'HOST', (s) => { c.host = s; });
  v('data', 'DATA_DIR', (s) => { c.dataDir = s; });
  v('public-url', 'PUBLIC_URL', (s) => {
    if (!/^https?:\/\/[^\s]+$/.test(s)) throw new ConfigError('public-url must be an http(s) URL');
    c.publicUrl = s.replace(/\/+$/, '');
  });
  v('cors-origins', 'CORS_ORIGINS', (s) => { c.corsOrigins = s.split(',').map((o) => o.trim()).filter(Boolean); });
  v('render-workers', 'RENDER_WORKERS', (s) => { c.renderWorkers = int('render-workers', s, 0, 64); });
  v('render-cache-mb', 'RENDER_CACHE_MB', (s) => { c.renderCacheBytes = int('render-cache-mb', s, 0, 65536) * 1024 * 1024; });
  v('frame-cache-mb', 'FRAME_CACHE_MB', (s) => { c.frameCacheBytes = int('frame-cache-mb', s, 0, 65536) * 1024 * 1024; });
  v('max-body-mb', 'MAX_BODY_MB', (s) => { c.limits.maxBodyBytes = int('max-body-mb', s, 1, 1 << 22) * 1024 * 1024; });
  v('max-part-mb', 'MAX_PART_MB', (s) => { c.limits.maxPartBytes = int('max-part-mb', s, 1, 1 << 22) * 1024 * 1024; });
  v('max-render-pixels', 'MAX_RENDER_PIXELS', (s) => { c.limits.maxRenderPixels = int('max-render-pixels', s, 1, 2 ** 31 - 1); });
  v('max-viewport', 'MAX_VIEWPORT', (s) => { c.limits.maxViewport = int('max-viewport', s, 1, 65535); });
  v('request-timeout-ms', 'REQUEST_TIMEOUT_MS', (s) => { c.limits.requestTimeoutMs = int('request-timeout-ms', s, 100, 3_600_000); });
  v('upload-timeout-ms', 'UPLOAD_TIMEOUT_MS', (s) => { c.limits.uploadTimeoutMs = int('upload-timeout-ms', s, 1000, 7 * 24 * 3_600_000); });
  v('min-upload-rate', 'MIN_UPLOAD_RATE', (s) => { c.limits.minUploadRate = int('min-upload-rate', s, 0, 2 ** 31 - 1); });
  v('upload-rate-window-ms', 'UPLOAD_RATE_WINDOW_MS', (s) => { c.limits.uploadRateWindowMs = int('upload-rate-window-ms', s, 500, 3_600_000); });
  v('log-requests', 'LOG_REQUESTS', (s) => { c.logRequests = s === 'true' || s === '1'; });
  v('viewer', 'VIEWER', (s) => { c.viewer = s === 'true' || s === '1'; });
  v('viewer-dist', 'OHIF_DIST', (s) => { c.viewerDist = s; });
  v('dimse-port', 'DIMSE_PORT', (s) => { c.dimse.port = int('dimse-port', s, 0, 65535); });
  v('dimse-ae-title', 'DIMSE_AE_TITLE', (s) => { c.dimse.aeTitle = aeTitle('dimse-ae-title', s); });
  v('dimse-allowed-aes', 'DIMSE_ALLOWED_AES', (s) => { c.dimse.allowedAeTitles = s.split(',').filter((t) => t.trim()).map((t) => aeTitle('dimse-allowed-aes', t)); });
  v('dimse-idle-timeout-ms', 'DIMSE_IDLE_TIMEOUT_MS', (s) => { c.dimse.idleTimeoutMs = int('dimse-idle-timeout-ms', s, 1000, 86_400_000); });
  readAuth(c.auth, get);
  const merged: Config = { ...c, ...overrides, limits: { ...c.limits, ...(overrides.limits ?? {}) } };
  merged.auth.enabled = Boolean(merged.auth.oidc) || merged.auth.apiKeys.size > 0;
  merged.dataDir = path.resolve(merged.dataDir);
  return merged;
}

/** Scopes are names without spaces; an API key entry is `key:scope scope`. */
function parseApiKeys(text: string, into: Map<string, string[]>, where: string): void {
  const t = text.trim();
  if (t.startsWith('{')) {
    // JSON file: { "key": ["scope", ...] | "scope scope" }
    let obj: Record<string, unknown>;
    try { obj = JSON.parse(t); } catch { throw new ConfigError(`${where}: not valid JSON`); }
    for (const [k, v] of Object.entries(obj)) {
      const scopes = Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(/\s+/) : undefined;
      if (!scopes) throw new ConfigError(`${where}: scopes of a key must be a list or a space-separated string`);
      addKey(into, k, scopes, where);
    }
    return;
  }
  // env list or text file: entries separated by commas or new lines, each `key:scope scope`
  for (const entry of t.split(/[,\n]/).map((e) => e.trim()).filter((e) => e && !e.startsWith('#'))) {
    const colon = entry.indexOf(':');
    if (colon <= 0) throw new ConfigError(`${where}: each entry must be key:scope[ scope...]`);
    addKey(into, entry.slice(0, colon).trim(), entry.slice(colon + 1).trim().split(/\s+/), where);
  }
}

function addKey(into: Map<string, string[]>, key: string, scopes: string[], where: string) {
  // Short keys are guessable; a key is a secret like a password.
  if (key.length < 16 || /\s/.test(key)) throw new ConfigError(`${where}: API keys must be at least 16 characters without spaces`);
  into.set(key, scopes.filter(Boolean));
}

function readFile(what: string, file: string): string {
  try { return fs.readFileSync(file, 'utf8'); } catch (e: any) { throw new ConfigError(`${what}: cannot read ${file} (${e?.code ?? e})`); }
}

function readAuth(a: AuthConfig, get: (flag: string, envName: string) => string | undefined): void {
  const val = (flag: string, envName: string) => { const s = get(flag, envName); return s === undefined || s === '' ? undefined : s; };
  const issuer = val('auth-issuer', 'AUTH_ISSUER');
  const audience = val('auth-audience', 'AUTH_AUDIENCE');
  const jwksUrl = val('auth-jwks-url', 'AUTH_JWKS_URL');
  const jwksFile = val('auth-jwks-file', 'AUTH_JWKS_FILE');
  if (issuer || audience || jwksUrl || jwksFile) {
    if (!issuer || !audience) throw new ConfigError('OpenID Connect needs both auth-issuer and auth-audience');
    if (!jwksUrl === !jwksFile) throw new ConfigError('OpenID Connect needs exactly one of auth-jwks-url and auth-jwks-file');
    const oidc: OidcConfig = { issuer, audience };
    if (jwksUrl) {
      if (!/^https?:\/\/\S+$/.test(jwksUrl)) throw new ConfigError('auth-jwks-url must be an http(s) URL');
      oidc.jwksUrl = jwksUrl;
    } else {
      let jwks: any;
      try { jwks = JSON.parse(readFile('auth-jwks-file', jwksFile!)); } catch (e) { if (e instanceof ConfigError) throw e; throw new ConfigError('auth-jwks-file is not valid JSON'); }
      if (!jwks || !Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new ConfigError('auth-jwks-file must hold a JWKS: { "keys": [...] }');
      oidc.jwks = jwks;
    }
    a.oidc = oidc;
  }
  const keys = val('api-keys', 'API_KEYS');
  if (keys) parseApiKeys(keys, a.apiKeys, 'api-keys');
  const keysFile = val('api-keys-file', 'API_KEYS_FILE');
  if (keysFile) parseApiKeys(readFile('api-keys-file', keysFile), a.apiKeys, `api-keys-file ${keysFile}`);
  const rs = val('auth-read-scope', 'AUTH_READ_SCOPE'); if (rs) a.readScope = rs;
  const ws = val('auth-write-scope', 'AUTH_WRITE_SCOPE'); if (ws) a.writeScope = ws;
  const sk = val('signed-link-key', 'SIGNED_LINK_KEY');
  if (sk) {
    if (sk.length < 32) throw new ConfigError('signed-link-key must be at least 32 characters');
    a.signedLinkKey = Buffer.from(sk, 'utf8');
  }
  const sm = val('signed-link-max-seconds', 'SIGNED_LINK_MAX_SECONDS');
  if (sm) a.signedLinkMaxSeconds = int('signed-link-max-seconds', sm, 1, 366 * 24 * 3600);
  const skew = val('auth-clock-skew-seconds', 'AUTH_CLOCK_SKEW_SECONDS');
  if (skew) a.clockSkewSeconds = int('auth-clock-skew-seconds', skew, 0, 3600);
}

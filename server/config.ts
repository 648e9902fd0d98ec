/**
 * Configuration is read once, here, from command-line flags and environment variables (flags win), validated,
 * and passed down. Nothing else reads process.env.
 */
import * as path from 'path';

export interface Limits {
  /** Largest STOW-RS request body, bytes. */
  maxBodyBytes: number;
  /** Largest single part (instance) of a STOW-RS body, bytes. */
  maxPartBytes: number;
  /** Largest frame (rows x columns) the renderer accepts. */
  maxRenderPixels: number;
  /** Largest viewport side (pixels) a rendered request may ask for. */
  maxViewport: number;
  /** Time a request may take before it is answered 503, milliseconds. */
  requestTimeoutMs: number;
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
  /** Render worker threads (0: render on the main thread). */
  renderWorkers: number;
  /** Log one line per request. */
  logRequests: boolean;
}

export class ConfigError extends Error {}

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
  },
  renderCacheBytes: 256 * 1024 * 1024,
  renderWorkers: 2,
  logRequests: false,
};

function int(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return n;
}

/** Flags: --port N --host H --data DIR --public-url URL --cors-origins a,b --render-workers N ... */
export function loadConfig(argv: string[] = [], env: Record<string, string | undefined> = {}, overrides: Partial<Config> = {}): Config {
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
  const get = (flag: string, envName: string) => flags[flag] ?? env[envName];
  const known = new Set(['port', 'host', 'data', 'public-url', 'cors-origins', 'render-workers', 'render-cache-mb', 'max-body-mb',
    'max-part-mb', 'max-render-pixels', 'max-viewport', 'request-timeout-ms', 'log-requests']);
  for (const f of Object.keys(flags)) if (!known.has(f)) throw new ConfigError(`unknown option --${f}`);

  const c: Config = { ...DEFAULTS, limits: { ...DEFAULTS.limits }, corsOrigins: [] };
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
  v('max-body-mb', 'MAX_BODY_MB', (s) => { c.limits.maxBodyBytes = int('max-body-mb', s, 1, 1 << 22) * 1024 * 1024; });
  v('max-part-mb', 'MAX_PART_MB', (s) => { c.limits.maxPartBytes = int('max-part-mb', s, 1, 1 << 22) * 1024 * 1024; });
  v('max-render-pixels', 'MAX_RENDER_PIXELS', (s) => { c.limits.maxRenderPixels = int('max-render-pixels', s, 1, 2 ** 31 - 1); });
  v('max-viewport', 'MAX_VIEWPORT', (s) => { c.limits.maxViewport = int('max-viewport', s, 1, 65535); });
  v('request-timeout-ms', 'REQUEST_TIMEOUT_MS', (s) => { c.limits.requestTimeoutMs = int('request-timeout-ms', s, 100, 3_600_000); });
  v('log-requests', 'LOG_REQUESTS', (s) => { c.logRequests = s === 'true' || s === '1'; });
  const merged: Config = { ...c, ...overrides, limits: { ...c.limits, ...(overrides.limits ?? {}) } };
  merged.dataDir = path.resolve(merged.dataDir);
  return merged;
}

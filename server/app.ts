/**
 * The HTTP application: one router per DICOMweb service under /dicom-web, CORS, request time limit, and the
 * single error handler that turns every failure into a status and a short reason (never a stack trace).
 */
import express, { NextFunction, Request, Response } from 'express';
import * as http from 'http';
import * as crypto from 'crypto';
import * as fsp from 'fs/promises';
import { Config } from './config';
import { ServerContext } from './context';
import { HttpError } from './errors';
import { classifyStorageError, FaultError, recordFault } from './faults';
import { CodecError } from '../render/codecs';
import { FileBlobStore } from '../storage/blobstore';
import { SqliteIndex } from '../storage/index-sqlite';
import { stowRouter } from './stow';
import { qidoRouter } from './qido';
import { wadoRouter } from './wado';
import { renderedRouter, RenderService } from './rendered';
import { authMiddleware } from './auth';
import { signedLinksRouter } from './signed-links';
import { deadlines } from './deadlines';
import { uiRouter } from './ui';
import { ohifDist } from './ohif-dist';
import { viewerRouter, VIEWER_PATH } from './viewer';
import { log } from './log';
import { registry, httpRequests, httpDuration, resourceOf, setProbe } from './metrics';
import { startDimse, DimseListener } from './dimse';
import { deleteRouter, finishTrash } from './delete';
import { methodGuard, rootAndOptionsRouter } from './resources';

export interface App {
  app: express.Express;
  ctx: ServerContext;
  /** the rendering service (its `stats` show work queued and done) */
  renderer: RenderService;
  /** the DICOM C-STORE listener, when configured */
  dimse?: DimseListener;
  close(): Promise<void>;
}

/** A client's X-Request-Id is kept if it is short and plain; otherwise one is made. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * One log record per request (with --log-requests), and always one for a server error or a failed store:
 * the request id (also sent back as X-Request-Id), method, path, status, duration and the failure reason.
 * Every request also counts in /metrics.
 */
function requestLog(config: Config) {
  return (req: Request, res: Response, next: NextFunction) => {
    const t = process.hrtime.bigint();
    const given = req.get('x-request-id');
    const id = given && REQUEST_ID.test(given) ? given : crypto.randomBytes(6).toString('hex');
    res.locals.requestId = id;
    res.set('X-Request-Id', id);
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      const resource = resourceOf(req.originalUrl);
      httpRequests.inc({ resource, method: req.method, status: String(res.statusCode) });
      httpDuration.observe({ resource, method: req.method }, seconds);
      const reason: string | undefined = res.locals.reason;
      const storeFailed = req.method === 'POST' && (res.statusCode >= 400 || reason !== undefined);
      if (!config.logRequests && res.statusCode < 500 && !storeFailed) return;
      const level = res.statusCode >= 500 ? 'error' : res.statusCode >= 400 || reason ? 'warn' : 'info';
      log[level]({ reqId: id, method: req.method, path: req.originalUrl, status: res.statusCode, ms: Math.round(seconds * 1e4) / 10, reason }, 'request');
    });
    next();
  };
}

function cors(config: Config) {
  const origins = new Set(config.corsOrigins);
  return (req: Request, res: Response, next: NextFunction) => {
    const origin = req.get('origin');
    if (origin && origins.size && (origins.has('*') || origins.has(origin))) {
      res.set('Access-Control-Allow-Origin', origins.has('*') ? '*' : origin);
      res.set('Vary', 'Origin');
      res.set('Access-Control-Expose-Headers', 'Content-Type, Content-Length, ETag, Warning, Content-Location');
      if (req.method === 'OPTIONS') {
        res.set('Access-Control-Allow-Methods', 'GET, HEAD, POST, DELETE, OPTIONS');
        res.set('Access-Control-Allow-Headers', req.get('access-control-request-headers') ?? 'Accept, Content-Type, Authorization, If-None-Match');
        res.set('Access-Control-Max-Age', '600');
        res.status(204).end();
        return;
      }
    }
    next();
  };
}

export async function createApp(config: Config): Promise<App> {
  const blobs = new FileBlobStore(config.dataDir);
  await blobs.cleanStaging(); // staged files of an interrupted upload were never acknowledged: drop them
  const index = new SqliteIndex(config.dataDir);
  const ctx: ServerContext = { config, blobs, index };
  await finishTrash(ctx); // a delete interrupted by a crash is completed, never undone (server/delete.ts)
  const renderer = new RenderService(ctx);
  await renderer.start();

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'extended');
  app.use(requestLog(config));
  app.use(deadlines(config.limits));
  app.locals.limits = config.limits; // for listen(): Node's own whole-request timer must not cut uploads first
  app.use(cors(config));
  const root = express.Router();
  // The root page and OPTIONS (capabilities, PS3.18 Annex H) before authentication: they reveal nothing stored.
  root.use(rootAndOptionsRouter(ctx));
  root.use(authMiddleware(config.auth)); // after CORS, so preflights are answered without credentials
  root.use(methodGuard()); // 405 with a true Allow
  root.use(signedLinksRouter(ctx));
  root.use(stowRouter(ctx));
  root.use(qidoRouter(ctx));
  root.use(renderedRouter(ctx, renderer));
  root.use(wadoRouter(ctx, renderer));
  root.use(deleteRouter(ctx));
  app.use('/dicom-web', root);
  app.get('/health', (_req, res) => {
    // Up, and able to use its index (a read-only or broken index is reported, the process stays up).
    try { index.check(); } catch (e: any) { res.status(503).json({ status: 'unavailable', reason: e?.message ?? String(e) }); return; }
    res.json({ status: 'ok' });
  });
  app.get('/ready', async (_req, res) => {
    const checks: Record<string, string> = {};
    try { ctx.index.stats(); checks.index = 'ok'; } catch (e: any) { checks.index = `failed: ${e?.code ?? e?.message ?? e}`; }
    const probe = blobs.stagingPath();
    try { await fsp.writeFile(probe, ''); await fsp.rm(probe, { force: true }); checks.store = 'ok'; } catch (e: any) { checks.store = `failed: ${e?.code ?? e?.message ?? e}`; }
    const ready = Object.values(checks).every((v) => v === 'ok');
    if (!ready) res.locals.reason = JSON.stringify(checks);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  setProbe('indexInstances', () => ctx.index.stats().instances);
  setProbe('indexBytes', () => ctx.index.stats().bytes);
  app.get('/metrics', async (_req, res, next) => {
    try { res.type(registry.contentType).send(await registry.metrics()); } catch (e) { next(e); }
  });
  app.use(uiRouter(config));
  // --viewer: OHIF on this origin (server/viewer.ts); the build is found or fetched before the server listens
  const viewer = config.viewer ? viewerRouter(ctx, ohifDist(config.viewerDist)) : undefined;
  if (viewer) app.use(VIEWER_PATH, viewer.router);
  app.use((_req, _res, next) => next(new HttpError(404, 'no such resource')));
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  app.use((err: any, req: Request, res: Response, _next: NextFunction) => {
    let status = 500;
    let reason = 'internal error';
    const fault = err instanceof HttpError && !(err instanceof FaultError) ? undefined : classifyStorageError(err);
    if (fault) {
      // A fault of storage, not of the request: its status and reason, logged and counted once (where it was
      // first met, a FaultError is already counted).
      status = fault.status; reason = fault.message;
      if (fault !== err) recordFault(fault.kind, `${req.method} ${req.originalUrl}: ${err?.message ?? err}`);
    } else if (err instanceof HttpError) { status = err.status; reason = err.message; }
    else if (err instanceof URIError) { status = 400; reason = 'malformed URL encoding'; }
    else if (err instanceof CodecError) {
      // Stored pixel data that does not decode as described is the instance's fault, not the server's.
      status = err.code === 'NOT_INITIALIZED' ? 503 : err.code === 'UNSUPPORTED_TRANSFER_SYNTAX' || err.code === 'UNSUPPORTED_PIXEL_FORMAT' ? 406 : 422;
      reason = `cannot decode this frame: ${err.reason}`;
    }
    else if (err && typeof err.status === 'number' && err.status >= 400 && err.status < 500) { status = err.status; reason = err.expose ? String(err.message) : 'bad request'; }
    else log.error({ reqId: res.locals.requestId, method: req.method, path: req.originalUrl, err: err?.stack ?? String(err) }, 'unexpected error');
    res.locals.reason = reason;
    if (res.headersSent) { res.destroy(); return; }
    res.status(status).type('application/json').send(JSON.stringify({ error: reason }));
  });

  let dimse: DimseListener | undefined;
  if (config.dimse.port !== undefined) {
    try {
      dimse = await startDimse(ctx, config.dimse, config.host);
    } catch (e) {
      await renderer.stop(); index.close();
      throw e;
    }
  }

  return {
    app, ctx, renderer, dimse,
    async close() {
      await dimse?.close();
      await renderer.stop();
      index.close();
      viewer?.close();
    },
  };
}

/** Starts listening; resolves with the bound port. */
export function listen(app: express.Express, port: number, host: string): Promise<http.Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    // Node's requestTimeout (300 s by default) would cut any upload longer than that; server/deadlines.ts
    // bounds uploads by their own limits, this stays only as a backstop past them.
    const limits = app.locals.limits as Config['limits'] | undefined;
    if (limits) server.requestTimeout = limits.uploadTimeoutMs + 60_000;
    // Requests Node's parser refuses (oversized headers or URL, malformed request line) get a JSON reason too.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable || (err as any).code === 'ECONNRESET') { socket.destroy(); return; }
      const [status, reason] = err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request header fields or URL too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request not received in time'] : [400, 'malformed HTTP request'];
      const body = JSON.stringify({ error: reason });
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    });
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

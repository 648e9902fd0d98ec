/**
 * QIDO-RS (PS3.18 10.6): the six search resources of Table 10.6.1-2. HTTP only: content negotiation, path UIDs,
 * status codes and headers; parsing and matching are storage/qido.ts.
 */
import express, { Request, Response } from 'express';
import { ServerContext } from './context';
import { badRequest, checkUID, notAcceptable } from './errors';
import { baseUrl, sendDicomJson } from './http';
import { mediaMatches, requestAccept } from './accept';
import {
  countMatches, parseQidoQuery, QidoLevel, QidoQuery, QidoQueryError, Scope, searchInstances, searchSeries, searchStudies,
} from '../storage/qido';

/** Ignored query parameters named one by one in Warning headers; the rest are counted. */
const MAX_NAMED_WARNINGS = 8;

/**
 * Most results one response carries when the request asks for more, or for no limit (PS3.18 8.3.4.4 lets the
 * origin server cap them; the Warning header then says how many more there are).
 */
export const QIDO_MAX_RESULTS = 10_000;

/** PS3.18 8.7.3.5 / 10.6.3.2: search results are DICOM JSON; application/json is its generic equivalent. */
const RESULT_TYPES = ['application/dicom+json', 'application/json'];

function negotiate(req: Request): void {
  const accepted = requestAccept(req);
  if (!accepted.some((a) => RESULT_TYPES.some((t) => mediaMatches(a.type.toLowerCase(), t)))) {
    throw notAcceptable('search results are available as application/dicom+json only');
  }
}

function parse(level: QidoLevel, req: Request): QidoQuery {
  try {
    return parseQidoQuery(level, req.query as Record<string, unknown>);
  } catch (e) {
    if (e instanceof QidoQueryError) throw badRequest(e.reason);
    throw e;
  }
}

function search(ctx: ServerContext, req: Request, res: Response, level: QidoLevel, scope: Scope): void {
  negotiate(req);
  const query = parse(level, req);
  const db = ctx.index.db;
  const cap = query.limit === undefined || query.limit > QIDO_MAX_RESULTS;
  // One row past the cap tells whether there is more, without counting when there is not.
  const asked: QidoQuery = cap ? { ...query, limit: QIDO_MAX_RESULTS + 1 } : query;
  const opts = { baseUrl: baseUrl(req, ctx) };
  let results = level === 'study' ? searchStudies(db, asked, opts)
    : level === 'series' ? searchSeries(db, asked, scope.studyUID, opts)
      : searchInstances(db, asked, scope.studyUID, scope.seriesUID, opts);
  // Each ignored parameter is named, up to a few: a request with hundreds must not get a header larger than
  // clients parse (Node's limit is 16 KB).
  const warnings = query.ignored.length > MAX_NAMED_WARNINGS
    ? [...query.ignored.slice(0, MAX_NAMED_WARNINGS), `${query.ignored.length - MAX_NAMED_WARNINGS} more unsupported parameters ignored`]
    : [...query.ignored];
  if (cap && results.length > QIDO_MAX_RESULTS) {
    results = results.slice(0, QIDO_MAX_RESULTS);
    const more = countMatches(db, query, scope) - query.offset - QIDO_MAX_RESULTS;
    // PS3.18 8.3.4.4
    warnings.push(`There are ${more} additional results that can be requested.`);
  }
  // PS3.18 8.4 / RFC 7234 5.5: "299 <service>: <text>", one header field per warning
  if (warnings.length) res.set('Warning', warnings.map((w) => `299 ${req.hostname || 'dicom-web'}: ${w}`));
  if (results.length === 0) {
    // PS3.18 Table 10.6.3-1: "204 (No Content) The search completed successfully, but there were zero results."
    res.status(204).end();
    return;
  }
  sendDicomJson(res, results);
}

export function qidoRouter(ctx: ServerContext): express.Router {
  const router = express.Router();
  const study = (req: Request) => checkUID(String(req.params.study), 'Study Instance UID');
  const series = (req: Request) => checkUID(String(req.params.series), 'Series Instance UID');
  // PS3.18 Table 10.6.1-2: the resources of Search for Studies, Series and Instances
  router.get('/studies', (req, res) => search(ctx, req, res, 'study', {}));
  router.get('/series', (req, res) => search(ctx, req, res, 'series', {}));
  router.get('/instances', (req, res) => search(ctx, req, res, 'instance', {}));
  router.get('/studies/:study/series', (req, res) => search(ctx, req, res, 'series', { studyUID: study(req) }));
  router.get('/studies/:study/instances', (req, res) => search(ctx, req, res, 'instance', { studyUID: study(req) }));
  router.get('/studies/:study/series/:series/instances', (req, res) =>
    search(ctx, req, res, 'instance', { studyUID: study(req), seriesUID: series(req) }));
  return router;
}

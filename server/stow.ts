/**
 * STOW-RS (PS3.18 10.5): POST /studies and /studies/{study} with multipart/related; type="application/dicom".
 * Each part is staged to disk as it streams in, then ingested (server/ingest.ts). The store response lists
 * what was stored (ReferencedSOPSequence) and what failed (FailedSOPSequence).
 */
import express, { Request, Response, NextFunction } from 'express';
import { ServerContext } from './context';
import { checkUID, notAcceptable, unsupportedMediaType } from './errors';
import { parseMediaType, readMultipart } from './multipart';
import { ingestStagedFile, IngestResult, FailureReason, countIngest } from './ingest';
import { baseUrl, sendDicomJson } from './http';
import { JsonDataset } from '../dicom/json';

const ReferencedSOPClassUID = '00081150';
const ReferencedSOPInstanceUID = '00081155';
const RetrieveURL = '00081190';
const FailureReasonTag = '00081197';
const WarningReasonTag = '00081196';
const FailedSOPSequence = '00081198';
const ReferencedSOPSequence = '00081199';
const ErrorComment = '00000902'; // LO: a readable reason beside the code (64 characters at most)

/** Parts of one request being ingested at once (their fsyncs overlap the rest of the body streaming in). */
const INGESTS_PER_REQUEST = 4;

export function stowRouter(ctx: ServerContext): express.Router {
  const router = express.Router();
  const handler = async (req: Request, res: Response, next: NextFunction) => {
    try {
      const study = req.params.study !== undefined ? checkUID(String(req.params.study), 'Study Instance UID') : undefined;
      const accept = req.get('accept');
      if (accept && !/application\/dicom\+json|application\/json|\*\/\*|application\/\*/i.test(accept)) {
        throw notAcceptable('the store response is available as application/dicom+json only');
      }
      const ct = parseMediaType(req.get('content-type'));
      if (!ct || ct.type !== 'multipart/related') throw unsupportedMediaType('STOW-RS takes multipart/related; type="application/dicom"');
      const partType = (ct.params.type ?? '').toLowerCase();
      if (partType && partType !== 'application/dicom') {
        throw unsupportedMediaType(`multipart/related type "${partType}" is not supported; send type="application/dicom"`);
      }
      const base = baseUrl(req, ctx); // before the body is read: the socket may be gone after
      // Parts are ingested while the next ones stream in: a part's ingest is mostly waiting on fsync (its
      // file, its folder, the index), so overlapping it with reading the body keeps the disk and the CPU busy.
      // At most INGESTS_PER_REQUEST at once; results keep the order of the parts.
      const pending: Array<Promise<IngestResult>> = [];
      const running = new Set<Promise<unknown>>();
      try {
        await readMultipart(req, ct.params.boundary ?? '', ctx.config.limits, () => ctx.blobs.stagingPath(), async (part) => {
          const type = parseMediaType(part.headers['content-type'])?.type ?? partType ?? 'application/dicom';
          if (part.refused) {
            // Too large or not writable (disk full): out of resources; cut short by the body's end: not understood.
            pending.push(Promise.resolve({ ok: false, failureReason: part.unterminated ? FailureReason.CannotUnderstand : FailureReason.OutOfResources,
              reason: part.refused, fault: part.fault }));
            return;
          }
          if (type && type !== 'application/dicom') {
            if (part.path) await ctx.blobs.discard(part.path);
            pending.push(Promise.resolve({ ok: false, failureReason: FailureReason.CannotUnderstand, reason: `part of type ${type} is not application/dicom` }));
            return;
          }
          const ingest = ingestStagedFile(ctx, part.path!, study, part.sha256);
          pending.push(ingest);
          const done: Promise<unknown> = ingest.catch(() => undefined).finally(() => running.delete(done));
          running.add(done);
          while (running.size >= INGESTS_PER_REQUEST) await Promise.race(running);
        });
      } finally {
        await Promise.allSettled(pending); // nothing is left running behind a failed request
      }
      const results = await Promise.all(pending);
      countIngest('stow', results);
      const response: JsonDataset = {};
      const stored = results.filter((r) => r.ok);
      const failed = results.filter((r) => !r.ok);
      if (study) response[RetrieveURL] = { vr: 'UR', Value: [`${base}/studies/${study}`] };
      else {
        const studies = new Set(stored.map((r) => (r.ok ? r.studyUID : '')));
        if (studies.size === 1) response[RetrieveURL] = { vr: 'UR', Value: [`${base}/studies/${[...studies][0]}`] };
      }
      if (failed.length) {
        response[FailedSOPSequence] = {
          vr: 'SQ',
          Value: failed.map((r) => {
            const item: JsonDataset = {};
            if (!r.ok) {
              if (r.sopClassUID) item[ReferencedSOPClassUID] = { vr: 'UI', Value: [r.sopClassUID] };
              if (r.sopInstanceUID) item[ReferencedSOPInstanceUID] = { vr: 'UI', Value: [r.sopInstanceUID] };
              item[FailureReasonTag] = { vr: 'US', Value: [r.failureReason] };
              item[ErrorComment] = { vr: 'LO', Value: [r.reason.slice(0, 64)] };
            }
            return item;
          }),
        };
      }
      if (stored.length) {
        response[ReferencedSOPSequence] = {
          vr: 'SQ',
          Value: stored.map((r) => {
            const item: JsonDataset = {};
            if (r.ok) {
              item[ReferencedSOPClassUID] = { vr: 'UI', Value: [r.sopClassUID] };
              item[ReferencedSOPInstanceUID] = { vr: 'UI', Value: [r.sopInstanceUID] };
              item[RetrieveURL] = { vr: 'UR', Value: [`${base}/studies/${r.studyUID}/series/${r.seriesUID}/instances/${r.sopInstanceUID}`] };
              if (r.warning) {
                item[WarningReasonTag] = { vr: 'US', Value: [r.warning] };
                if (r.warningText) item[ErrorComment] = { vr: 'LO', Value: [r.warningText.slice(0, 64)] };
              }
            }
            return item;
          }),
        };
      }
      // PS3.18 10.5.3: 200 all stored, 202 some stored (or stored with warnings), 409 none stored. Nothing stored
      // because of the server (disk full, storage or index unusable) is the server's fault, not a conflict:
      // 507 Insufficient Storage (RFC 4918 11.5) or 503, with the reason, and the store response all the same.
      const warned = stored.some((r) => r.ok && r.warning);
      const faults = failed.map((r) => (r.ok ? undefined : r.fault)).filter((f) => f !== undefined);
      const status = stored.length === 0 && faults.length
        ? (faults.some((f) => f.status === 507) ? 507 : 503)
        : stored.length === 0 ? 409 : failed.length || warned ? 202 : 200;
      if (status >= 500) res.set('Retry-After', '60');
      // The request log names why parts failed: what a gateway's operator needs to see (server/app.ts).
      if (failed.length) {
        const first = failed[0];
        res.locals.reason = `${failed.length} of ${results.length} instances failed; first: ${!first.ok ? `0x${first.failureReason.toString(16).toUpperCase()} ${first.reason}` : ''}`;
      }
      sendDicomJson(res, response, status);
    } catch (e) {
      next(e);
    }
  };
  router.post('/studies', handler);
  router.post('/studies/:study', handler);
  return router;
}

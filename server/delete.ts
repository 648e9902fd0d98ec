/**
 * DELETE of a study, series or instance: the conventional, non-standard operation Orthanc, dcm4chee and Google
 * Cloud offer (PS3.18 defines none). It needs the write scope (server/auth.ts: every method but GET/HEAD does).
 *
 * Order, so that no reader sees half an instance and a crash at any point leaves a state the next start (or
 * `npm run verify --repair`) completes:
 * 1. each blob is renamed into trash/ (atomic; the blob store keeps the key in the name), durably;
 * 2. the index rows of all the instances go in one transaction (readers see all or none of them);
 * 3. the trash files are unlinked. A reader that opened a blob before step 1 reads it whole (POSIX unlink).
 * A crash after 1 leaves trash entries whose rows may still exist: `finishTrash` removes those rows and the
 * files, so the delete completes rather than being undone. The same instance can then be stored again.
 * Emptied folders are left in place (a concurrent store of the same instance may be creating them).
 */
import express from 'express';
import * as fsp from 'fs/promises';
import { ServerContext } from './context';
import { checkUID, notFound } from './errors';
import { forgetInstance } from './instances';
import { wrap } from './http';

/** Completes deletes interrupted by a crash (called at start and by verify). Returns the number completed. */
export async function finishTrash(ctx: Pick<ServerContext, 'blobs' | 'index'>): Promise<number> {
  const entries = await ctx.blobs.trashed();
  for (const e of entries) {
    const sop = ctx.index.instanceByBlobKey(e.key);
    if (sop) ctx.index.removeInstances([sop]);
    await fsp.rm(e.file, { force: true });
  }
  return entries.length;
}

async function deleteInstances(ctx: ServerContext, rows: Array<{ sop_instance_uid: string; blob_key: string }>): Promise<void> {
  const trashed: string[] = [];
  for (const r of rows) {
    const f = await ctx.blobs.moveToTrash(r.blob_key);
    if (f) trashed.push(f);
  }
  ctx.index.removeInstances(rows.map((r) => r.sop_instance_uid));
  for (const r of rows) forgetInstance(ctx, r.sop_instance_uid);
  for (const f of trashed) await fsp.rm(f, { force: true });
}

export function deleteRouter(ctx: ServerContext): express.Router {
  const r = express.Router();
  r.delete('/studies/:study', wrap(async (req, res) => {
    const study = checkUID(String(req.params.study), 'Study Instance UID');
    const rows = ctx.index.instancesOfStudy(study);
    if (rows.length === 0) throw notFound('study not found');
    await deleteInstances(ctx, rows);
    res.status(204).end();
  }));
  r.delete('/studies/:study/series/:series', wrap(async (req, res) => {
    const study = checkUID(String(req.params.study), 'Study Instance UID');
    const series = checkUID(String(req.params.series), 'Series Instance UID');
    const rows = ctx.index.instancesOfSeries(study, series);
    if (rows.length === 0) throw notFound('series not found');
    await deleteInstances(ctx, rows);
    res.status(204).end();
  }));
  r.delete('/studies/:study/series/:series/instances/:sop', wrap(async (req, res) => {
    const study = checkUID(String(req.params.study), 'Study Instance UID');
    const series = checkUID(String(req.params.series), 'Series Instance UID');
    const sop = checkUID(String(req.params.sop), 'SOP Instance UID');
    const row = ctx.index.getInstance(sop);
    if (!row || row.study_uid !== study || row.series_uid !== series) throw notFound('instance not found');
    await deleteInstances(ctx, [row]);
    res.status(204).end();
  }));
  return r;
}

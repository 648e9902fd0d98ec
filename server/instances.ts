/**
 * Access to stored instances for the retrieve services: the index row with what ingest recorded (parsed once
 * and kept in a small LRU, since stored instances never change), and the bytes of one frame or bulk value,
 * read by offset.
 */
import * as zlib from 'zlib';
import { ServerContext } from './context';
import { checkUID, HttpError, notFound } from './errors';
import { FaultError, recordFault } from './faults';
import { FrameTable, frameAt, frameCount } from '../dicom/frames';
import { BulkRef } from '../dicom/parse';

export interface InstanceInfo {
  studyUID: string;
  seriesUID: string;
  sopInstanceUID: string;
  sopClassUID: string;
  transferSyntaxUID: string;
  numberOfFrames: number;
  blobKey: string;
  size: number;
  sha256: string;
  /** the frame table ingest recorded (dicom/frames.ts), parsed on first use: metadata and QIDO never need it */
  readonly frames: FrameTable;
  /** number of frames that can be served */
  readonly frameCount: number;
  bulk: { deflated: boolean; datasetOffset: number; refs: BulkRef[] };
  render: any | null;
  metadata: string;
}

// Per server (several may share a process, e.g. in tests): SOP Instance UID -> parsed row.
const caches = new WeakMap<ServerContext, Map<string, InstanceInfo>>();
const CACHE_MAX = 5000;
function cacheOf(ctx: ServerContext) {
  let c = caches.get(ctx);
  if (!c) { c = new Map(); caches.set(ctx, c); }
  return c;
}

function fromRow(row: any): InstanceInfo {
  let frames: FrameTable | undefined;
  const table = () => (frames ??= JSON.parse(row.frames) as FrameTable);
  return {
    studyUID: row.study_uid, seriesUID: row.series_uid, sopInstanceUID: row.sop_instance_uid, sopClassUID: row.sop_class_uid,
    transferSyntaxUID: row.transfer_syntax_uid, numberOfFrames: row.number_of_frames, blobKey: row.blob_key, size: row.size,
    sha256: row.sha256, bulk: JSON.parse(row.bulk), render: row.render ? JSON.parse(row.render) : null,
    metadata: row.metadata,
    get frames() { return table(); },
    get frameCount() { return frameCount(table()); },
  };
}

/** The instance named by the URL; 404 when it is not stored under that study and series. */
export function getInstance(ctx: ServerContext, study: string, series: string, sop: string): InstanceInfo {
  checkUID(study, 'Study Instance UID');
  checkUID(series, 'Series Instance UID');
  checkUID(sop, 'SOP Instance UID');
  const cache = cacheOf(ctx);
  let info = cache.get(sop);
  if (!info) {
    const row = ctx.index.getInstance(sop);
    if (!row) throw notFound('instance not found');
    info = fromRow(row);
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(sop, info);
  }
  if (info.studyUID !== study || info.seriesUID !== series) throw notFound('instance not found in this study and series');
  return info;
}

export function instancesOf(ctx: ServerContext, study: string, series?: string): InstanceInfo[] {
  checkUID(study, 'Study Instance UID');
  if (series !== undefined) checkUID(series, 'Series Instance UID');
  const rows = series === undefined ? ctx.index.instancesOfStudy(study) : ctx.index.instancesOfSeries(study, series);
  if (rows.length === 0) throw notFound(series === undefined ? 'study not found' : 'series not found');
  return rows.map(fromRow);
}

/** Forget one instance's cached row (after a delete). */
export function forgetInstance(ctx: ServerContext, sop: string): void { caches.get(ctx)?.delete(sop); }

/** Forget cached rows (used by `verify --repair`). */
export function clearInstanceCache(ctx: ServerContext): void { caches.delete(ctx); }

/** A stored instance whose blob is missing or damaged: 500 with the reason, logged and counted. */
export function damagedBlob(info: InstanceInfo, kind: 'blob-missing' | 'blob-corrupt', detail: string): FaultError {
  recordFault(kind, `instance ${info.sopInstanceUID}, blob ${info.blobKey}: ${detail}`);
  return new FaultError(500, kind === 'blob-missing'
    ? 'the stored bytes of this instance are missing'
    : 'the stored bytes of this instance do not match what was stored', kind);
}

/** Before reading a stored instance: its blob exists with its recorded size (one stat), else a damagedBlob error. */
export async function checkBlob(ctx: ServerContext, info: InstanceInfo): Promise<void> {
  const size = await ctx.blobs.size(info.blobKey);
  if (size === undefined) throw damagedBlob(info, 'blob-missing', 'not found');
  if (size !== info.size) throw damagedBlob(info, 'blob-corrupt', `${size} bytes, ${info.size} recorded`);
}

async function readRanges(ctx: ServerContext, info: InstanceInfo, ranges: { offset: number; length: number }[]): Promise<Buffer> {
  await checkBlob(ctx, info);
  try {
    return await readRangesUnchecked(ctx, info, ranges);
  } catch (e: any) {
    if (e?.code === 'ENOENT') throw damagedBlob(info, 'blob-missing', 'removed while being read');
    if (/shorter than the index says/.test(String(e?.message))) throw damagedBlob(info, 'blob-corrupt', 'shorter than recorded');
    throw e;
  }
}

async function readRangesUnchecked(ctx: ServerContext, info: InstanceInfo, ranges: { offset: number; length: number }[]): Promise<Buffer> {
  if (info.bulk.deflated) return readInflatedRanges(ctx, info, ranges);
  if (ranges.length === 1) return ctx.blobs.read(info.blobKey, ranges[0].offset, ranges[0].length);
  // Contiguous fragments are read in one go, then their item headers are cut out.
  const start = ranges[0].offset;
  const end = ranges[ranges.length - 1].offset + ranges[ranges.length - 1].length;
  const all = await ctx.blobs.read(info.blobKey, start, end - start);
  return Buffer.concat(ranges.map((r) => all.subarray(r.offset - start, r.offset - start + r.length)));
}

/** Largest inflated offset read from a deflated instance: ingest refuses datasets that inflate beyond it (dicom/parse.ts). */
export const MAX_INFLATED_BYTES = 256 * 1024 * 1024;

/**
 * Deflated transfer syntax (PS3.5 A.5): offsets are into the inflated dataset. The stored file is inflated as a
 * stream, in zlib's thread pool, only as far as the last byte wanted, keeping only the wanted bytes: memory per
 * read is the value asked for (never the whole inflated dataset: a 204 KB file may inflate to 200 MB), and the
 * event loop does none of the inflating.
 */
async function readInflatedRanges(ctx: ServerContext, info: InstanceInfo, ranges: { offset: number; length: number }[]): Promise<Buffer> {
  const end = Math.max(...ranges.map((r) => r.offset + r.length));
  if (end > MAX_INFLATED_BYTES) throw new HttpError(422, 'the deflated dataset is larger than the inflation limit');
  const out = ranges.map((r) => Buffer.allocUnsafe(r.length));
  const src = ctx.blobs.stream(info.blobKey, { start: info.bulk.datasetOffset, end: info.size - 1 });
  const inflate = zlib.createInflateRaw();
  let pos = 0; // inflated bytes seen so far
  await new Promise<void>((resolve, reject) => {
    const finish = (err?: Error) => { src.destroy(); inflate.destroy(); if (err) reject(err); else resolve(); };
    src.on('error', finish);
    inflate.on('error', () => finish(new HttpError(422, 'the stored deflated dataset does not inflate')));
    inflate.on('data', (chunk: Buffer) => {
      const from = pos;
      pos += chunk.length;
      ranges.forEach((r, i) => {
        const a = Math.max(r.offset, from);
        const b = Math.min(r.offset + r.length, pos);
        if (b > a) { chunk.copy(out[i], a - r.offset, a - from, b - from); }
      });
      if (pos >= end) finish();
    });
    inflate.on('end', () => finish(pos >= end ? undefined : new HttpError(422, 'the stored deflated dataset ends before the value')));
    src.pipe(inflate);
  });
  return out.length === 1 ? out[0] : Buffer.concat(out);
}

/** The bytes of frame `n` (1-based): native pixels or the compressed bitstream (fragments joined). */
export async function readFrame(ctx: ServerContext, info: InstanceInfo, n: number): Promise<{ data: Buffer; bitOffset?: number }> {
  const loc = frameAt(info.frames, n);
  if (!loc) throw notFound(`frame ${n} does not exist (the instance has ${info.frameCount})`);
  const data = await readRanges(ctx, info, loc.ranges);
  return { data, bitOffset: loc.bitOffset };
}

export async function readBulk(ctx: ServerContext, info: InstanceInfo, ref: BulkRef): Promise<Buffer> {
  return readRanges(ctx, info, [{ offset: ref.offset, length: ref.length }]);
}

/** Replaces the base-URL placeholder that ingest wrote into the metadata. */
export function metadataWithBase(info: InstanceInfo, base: string, token: string): string {
  return info.metadata.split(token).join(base);
}

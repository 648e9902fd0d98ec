/**
 * Ingest of one staged instance: parse once, validate, record what later requests need (metadata JSON with
 * BulkDataURIs, frame byte ranges, bulk ranges, the rendering description, the QIDO attributes), then make the
 * file durable and index it in one transaction. An instance is either fully stored and indexed or not at all.
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as crypto from 'crypto';
import * as zlib from 'zlib';
import { Transform } from 'stream';
import { pipeline } from 'stream/promises';
import { parseDicomFile, ParsedInstance, DicomParseError, deflatedStart, FileSource } from '../dicom/parse';
import { frameTable, FrameTable, geometryProblem } from '../dicom/frames';
import { JsonDataset, num } from '../dicom/json';
import { pick, searchable, STUDY_LEVEL, SERIES_LEVEL, INSTANCE_LEVEL } from '../storage/levels';
import { IndexConflict } from '../storage/index-sqlite';
import { describeImage } from '../render';
import { detectEncapsulatedSyntax, isEncapsulated } from '../render/codecs';
import { ServerContext } from './context';
import { UID_PATTERN } from './errors';
import { classifyStorageError, FaultError, recordFault } from './faults';
import { storedInstances, storedBytes } from './metrics';
import { log } from './log';

/** PS3.4 Annex B / PS3.18 10.5.3 status codes used in the store response. */
export const FailureReason = {
  ProcessingFailure: 0x0110,
  DuplicateSOPInstance: 0x0111,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSOPClass: 0xa900,
  CannotUnderstand: 0xc000,
} as const;
export const WarningReason = { CoercionOfDataElements: 0xb000 } as const;

export type IngestResult =
  | { ok: true; status: 'stored' | 'identical'; studyUID: string; seriesUID: string; sopInstanceUID: string; sopClassUID: string; bytes: number; warning?: number; warningText?: string }
  | { ok: false; failureReason: number; reason: string; sopInstanceUID?: string; sopClassUID?: string; fault?: FaultError };

/** Placeholder for the DICOMweb root in stored metadata; replaced per response (PS3.18 F.2.6 BulkDataURI). */
export const BASE_TOKEN = '@@BASE@@';
/** Binary values up to this size stay InlineBinary in metadata; larger ones become BulkDataURI. */
const INLINE_IN_METADATA = 256;

const validUID = (u: unknown): u is string => typeof u === 'string' && u.length > 0 && u.length <= 64 && UID_PATTERN.test(u);

// One ingest at a time per SOP Instance UID in this process; across processes the index's primary key decides.
const inFlight = new Map<string, Promise<unknown>>();
async function exclusive<T>(key: string, fn: () => Promise<T>): Promise<T> {
  while (inFlight.has(key)) await inFlight.get(key)!.catch(() => undefined);
  const p = fn();
  inFlight.set(key, p);
  try { return await p; } finally { inFlight.delete(key); }
}

function fail(failureReason: number, reason: string, p?: Partial<ParsedInstance>): IngestResult {
  return { ok: false, failureReason, reason, sopInstanceUID: validUID(p?.sopInstanceUID) ? p!.sopInstanceUID : undefined, sopClassUID: validUID(p?.sopClassUID) ? p!.sopClassUID : undefined };
}

/**
 * A File Meta Information header (PS3.10 7.1): preamble, DICM, group 0002 naming the SOP Class and Instance, the
 * transfer syntax of the data set that follows and this implementation. Used where a data set arrives without
 * one (a bare data set over STOW-RS, every data set over DIMSE C-STORE).
 */
export function part10Header(m: { sopClassUID: string; sopInstanceUID: string; transferSyntaxUID: string; sourceAeTitle?: string }): Buffer {
  const el = (tag: number, vr: string, value: Buffer) => {
    const long = vr === 'OB';
    const h = Buffer.alloc(long ? 12 : 8);
    h.writeUInt16LE(0x0002, 0); h.writeUInt16LE(tag, 2); h.write(vr, 4, 'latin1');
    if (long) h.writeUInt32LE(value.length, 8); else h.writeUInt16LE(value.length, 6);
    return Buffer.concat([h, value]);
  };
  const padded = (s: string, pad: number) => { const b = Buffer.from(s, 'latin1'); return b.length % 2 ? Buffer.concat([b, Buffer.from([pad])]) : b; };
  const body = Buffer.concat([
    el(0x0001, 'OB', Buffer.from([0, 1])),
    el(0x0002, 'UI', padded(m.sopClassUID, 0)),
    el(0x0003, 'UI', padded(m.sopInstanceUID, 0)),
    el(0x0010, 'UI', padded(m.transferSyntaxUID, 0)),
    el(0x0012, 'UI', padded('1.2.826.0.1.3680043.10.1417.1', 0)),
    ...(m.sourceAeTitle ? [el(0x0016, 'AE', padded(m.sourceAeTitle, 0x20))] : []),
  ]);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0); groupLength.writeUInt16LE(0x0000, 2); groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6); groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, body]);
}

/**
 * Writes a Part 10 header in front of a bare dataset (or of a meta group without preamble), so that what is
 * stored and served is a proper Part 10 file. The dataset bytes themselves are kept unchanged.
 */
async function wrapAsPart10(staged: string, p: ParsedInstance, out: string): Promise<void> {
  const header = part10Header(p);
  const src = fs.createReadStream(staged, { start: p.datasetOffset });
  const dst = fs.createWriteStream(out);
  await new Promise<void>((resolve, reject) => {
    dst.on('error', reject); src.on('error', reject);
    dst.write(header);
    src.pipe(dst);
    dst.on('finish', () => resolve());
  });
}

/**
 * What is wrong with a stored blob, against its index row: 'missing', 'size …' or 'content …'; undefined when
 * it is whole. Reads the blob through (a SHA-256 of it).
 */
export async function blobDamage(ctx: ServerContext, key: string, size: number, sha256: string): Promise<string | undefined> {
  const actual = await ctx.blobs.size(key);
  if (actual === undefined) return 'missing';
  if (actual !== size) return `size ${actual}, recorded ${size}`;
  const h = crypto.createHash('sha256');
  for await (const chunk of ctx.blobs.stream(key)) h.update(chunk as Buffer);
  const got = h.digest('hex');
  return got === sha256 ? undefined : `content SHA-256 ${got.slice(0, 16)}…, recorded ${sha256.slice(0, 16)}…`;
}

export async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Turns binary values into BulkDataURIs (nested ones too), leaving small ones inline. */
function metadataJson(ds: JsonDataset, p: ParsedInstance, instanceUrl: string): JsonDataset {
  const md: JsonDataset = structuredClone(ds);
  for (const ref of p.bulk) {
    const parts = ref.path.split('/');
    let node: any = md;
    for (let i = 0; i < parts.length - 1 && node; i += 2) {
      node = node[parts[i]]?.Value?.[Number(parts[i + 1])];
    }
    const attr = node?.[parts[parts.length - 1]];
    if (!attr) continue;
    if (ref.length > INLINE_IN_METADATA || parts[parts.length - 1].startsWith('7FE0')) {
      delete attr.InlineBinary;
      attr.BulkDataURI = `${instanceUrl}/bulkdata/${ref.path}`;
    }
  }
  return md;
}

/** Largest inflated dataset of a deflated instance (the parser's own default limit). */
export const MAX_INFLATED_BYTES = 256 * 1024 * 1024;

/**
 * Parses a staged file. A deflated one (PS3.5 A.5) is first inflated as a stream into another staging file, in
 * zlib's thread pool and stopped at MAX_INFLATED_BYTES: a 204 KB deflate bomb costs the event loop nothing and
 * memory one chunk, where inflating it in one call held the loop and 200 MB.
 */
async function parseStaged(ctx: ServerContext, file: string, cleanup: string[]): Promise<ParsedInstance> {
  const start = deflatedStart(file);
  if (start === undefined) return parseDicomFile(file);
  const inflated = ctx.blobs.stagingPath();
  cleanup.push(inflated);
  let total = 0;
  const limit = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      if (total > MAX_INFLATED_BYTES) cb(new DicomParseError('deflated dataset inflates beyond the size limit'));
      else cb(null, chunk);
    },
  });
  try {
    await pipeline(fs.createReadStream(file, { start }), zlib.createInflateRaw(), limit, fs.createWriteStream(inflated));
  } catch (e: any) {
    if (e instanceof DicomParseError) throw e;
    if (typeof e?.code === 'string' && e.code.startsWith('Z_')) throw new DicomParseError('deflated dataset is not a valid deflate stream');
    throw e;
  }
  const fd = fs.openSync(inflated, 'r');
  try {
    return parseDicomFile(file, { inflated: new FileSource(fd) });
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses, validates, stores and indexes the staged file. Always consumes the staged file. */
export async function ingestStagedFile(ctx: ServerContext, staged: string, expectedStudyUID?: string, stagedSha256?: string): Promise<IngestResult> {
  const cleanup: string[] = [staged];
  try {
    let p: ParsedInstance;
    try {
      p = await parseStaged(ctx, staged, cleanup);
    } catch (e) {
      if (e instanceof DicomParseError) return fail(FailureReason.CannotUnderstand, e.message);
      throw e;
    }
    let file = staged;
    let warning: number | undefined;
    let warningText: string | undefined;
    if (p.layout !== 'part10') {
      const wrapped = ctx.blobs.stagingPath();
      cleanup.push(wrapped);
      await wrapAsPart10(staged, p, wrapped);
      file = wrapped;
      try { p = await parseStaged(ctx, wrapped, cleanup); } catch (e) {
        if (e instanceof DicomParseError) return fail(FailureReason.CannotUnderstand, e.message);
        throw e;
      }
      warning = WarningReason.CoercionOfDataElements;
      warningText = 'no File Meta Information: a Part 10 header was added, the dataset is unchanged';
    }
    const ds = p.dataset;
    const studyUID = ds['0020000D']?.Value?.[0];
    const seriesUID = ds['0020000E']?.Value?.[0];
    for (const [v, name] of [[p.sopClassUID, 'SOP Class UID'], [p.sopInstanceUID, 'SOP Instance UID'], [studyUID, 'Study Instance UID'], [seriesUID, 'Series Instance UID']] as const) {
      if (!validUID(v)) return fail(FailureReason.DataSetDoesNotMatchSOPClass, `${name} is missing or not a valid UID`, p);
    }
    // A Media Storage SOP Instance UID (0002,0003) that differs from the dataset's is common in the wild; the
    // dataset's SOP Instance UID is the identity that counts (PS3.10 7.1 asks them to be equal).
    if (expectedStudyUID && studyUID !== expectedStudyUID) {
      return fail(FailureReason.DataSetDoesNotMatchSOPClass, `Study Instance UID ${studyUID} does not match the study in the request URL`, p);
    }
    const study = studyUID as string;
    const series = seriesUID as string;

    const numberOfFrames = Math.max(1, Math.trunc(num(ds, '00280008') ?? 1));
    const rows = num(ds, '00280010') ?? 0;
    const columns = num(ds, '00280011') ?? 0;
    let frames: FrameTable = [];
    if (p.pixelData) {
      const geometry = {
        rows, columns, numberOfFrames,
        samplesPerPixel: num(ds, '00280002') ?? 1,
        photometricInterpretation: String(ds['00280004']?.Value?.[0] ?? ''),
        bitsAllocated: p.pixelData.tag === '7FE00008' ? 32 : p.pixelData.tag === '7FE00009' ? 64 : num(ds, '00280100') ?? 8,
      };
      // Geometry from the file is checked against the bytes the file has before anything is sized by it.
      const problem = geometryProblem(p, geometry, { numberOfFrames: num(ds, '00280008'), bitsAllocated: num(ds, '00280100'), samplesPerPixel: num(ds, '00280002') });
      if (problem) return fail(FailureReason.DataSetDoesNotMatchSOPClass, problem, p);
      const fd = fs.openSync(file, 'r');
      try {
        const readHead = (offset: number, length: number) => {
          const b = Buffer.alloc(length);
          fs.readSync(fd, b, 0, length, offset);
          return b;
        };
        const eotB64 = ds['7FE00001']?.InlineBinary;
        const eotLenB64 = ds['7FE00002']?.InlineBinary;
        const u64 = (b64: string) => { const b = Buffer.from(b64, 'base64'); const out: number[] = []; for (let i = 0; i + 8 <= b.length; i += 8) out.push(Number(b.readBigUInt64LE(i))); return out; };
        frames = frameTable(p, geometry, p.deflated ? () => Buffer.alloc(2) : readHead, eotB64 && eotLenB64 ? { offsets: u64(eotB64), lengths: u64(eotLenB64) } : undefined);
      } finally {
        fs.closeSync(fd);
      }
    }
    let render: string | null = null;
    try {
      const d = p.pixelData ? describeImage(ds) : null;
      if (d && p.pixelData?.encapsulated && !isEncapsulated(p.transferSyntaxUID) && p.pixelData.fragments.length > 0 && !p.deflated) {
        // Encapsulated Pixel Data under a native syntax in the meta: decode by what the fragments hold.
        const first = p.pixelData.fragments[0];
        const head = Buffer.alloc(Math.min(first.length, 65536));
        const fd = fs.openSync(file, 'r');
        try { fs.readSync(fd, head, 0, head.length, first.offset); } finally { fs.closeSync(fd); }
        const detected = detectEncapsulatedSyntax(head);
        if (detected) d.encapsulatedSyntaxUID = detected;
      }
      render = d ? JSON.stringify(d) : null;
    } catch {
      render = null; // stored all the same: an archive keeps what it cannot render; rendering answers 4xx
    }

    // The hash computed while the upload streamed in is the file's, unless a header had to be added.
    const sha256 = file === staged && stagedSha256 ? stagedSha256 : await sha256File(file);
    const size = (await fsp.stat(file)).size;
    const instanceUrl = `${BASE_TOKEN}/studies/${study}/series/${series}/instances/${p.sopInstanceUID}`;
    const metadata = JSON.stringify(metadataJson(ds, p, instanceUrl));
    const blobKey = `${study}/${series}/${p.sopInstanceUID}/${sha256.slice(0, 32)}.dcm`;

    return await exclusive(p.sopInstanceUID, async (): Promise<IngestResult> => {
      const existing = ctx.index.getInstance(p.sopInstanceUID);
      const ok = (status: 'stored' | 'identical'): IngestResult => ({ ok: true, status, studyUID: study, seriesUID: series, sopInstanceUID: p.sopInstanceUID, sopClassUID: p.sopClassUID, bytes: size, warning, warningText });
      if (existing) {
        if (existing.sha256 !== sha256) return fail(FailureReason.DuplicateSOPInstance, 'an instance with this SOP Instance UID is already stored with different content', p);
        // The same bytes again. The row is trusted only if its blob is still there, whole: a blob lost or damaged
        // since is restored from these bytes (the blob key is the content's, so the row stays as it is).
        const damage = await blobDamage(ctx, existing.blob_key, existing.size, existing.sha256);
        if (!damage) return ok('identical');
        await ctx.blobs.commit(file, existing.blob_key);
        cleanup.splice(cleanup.indexOf(file), 1);
        log.error(`restored blob ${existing.blob_key} (${damage}) from identical bytes re-sent for ${p.sopInstanceUID}`);
        return ok('stored');
      }
      try {
        await ctx.blobs.commit(file, blobKey);
      } catch (e) {
        await ctx.blobs.remove(blobKey).catch(() => undefined); // renamed before the failing folder sync: not indexed
        throw e;
      }
      cleanup.splice(cleanup.indexOf(file), 1);
      let outcome;
      try {
        outcome = ctx.index.insert({
          studyUID: study, seriesUID: series, sopInstanceUID: p.sopInstanceUID, sopClassUID: p.sopClassUID,
          transferSyntaxUID: p.transferSyntaxUID, instanceNumber: num(ds, '00200013') ?? null, numberOfFrames,
          rows: rows || null, columns: columns || null, blobKey, size, sha256,
          studyAttrs: pick(ds, STUDY_LEVEL), seriesAttrs: pick(ds, SERIES_LEVEL),
          instanceAttrs: { ...searchable(ds), ...pick(ds, INSTANCE_LEVEL) },
          metadata, frames: JSON.stringify(frames),
          bulk: JSON.stringify({ deflated: p.deflated, datasetOffset: p.datasetOffset, refs: p.bulk }), render,
        });
      } catch (e) {
        await ctx.blobs.remove(blobKey);
        if (e instanceof IndexConflict) return fail(FailureReason.DataSetDoesNotMatchSOPClass, e.message, p);
        throw e;
      }
      if (outcome === 'stored') return ok('stored');
      // Another process indexed the same SOP Instance UID between our check and our insert. Identical content
      // has the same blob key, so the file just written is the indexed one and stays.
      if (outcome === 'identical') return ok('identical');
      await ctx.blobs.remove(blobKey);
      return fail(FailureReason.DuplicateSOPInstance, 'an instance with this SOP Instance UID is already stored with different content', p);
    });
  } catch (e) {
    // Disk full, storage or index unusable: this part fails with the server's reason (507/503 when nothing is
    // stored); nothing of it stays (the staged files go below, a committed blob was removed above).
    const fault = classifyStorageError(e);
    if (!fault) throw e;
    recordFault(fault.kind, `ingest: ${(e as Error)?.message ?? e}`);
    return { ok: false, failureReason: FailureReason.OutOfResources, reason: fault.message, fault };
  } finally {
    await Promise.all(cleanup.map((f) => ctx.blobs.discard(f)));
  }
}

/** Counts what a store request (STOW-RS or C-STORE) ended with, for /metrics. */
export function countIngest(protocol: 'stow' | 'dimse', results: IngestResult[]): void {
  for (const r of results) {
    storedInstances.inc({ protocol, outcome: r.ok ? r.status : 'failed' });
    if (r.ok && r.status === 'stored') storedBytes.inc({ protocol }, r.bytes);
  }
}

/** Ingests a file from disk (tests, the `import` command): copied to staging first, the source is kept. */
export async function ingestFile(ctx: ServerContext, path: string, expectedStudyUID?: string): Promise<IngestResult> {
  const staged = ctx.blobs.stagingPath();
  await fsp.copyFile(path, staged);
  return ingestStagedFile(ctx, staged, expectedStudyUID);
}


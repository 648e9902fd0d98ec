/**
 * The SQLite index: one row per study, series and instance, written in one transaction per instance.
 * Besides the QIDO columns it keeps, per instance, what ingest computed so requests never re-parse the file:
 * the DICOM JSON metadata, frame byte ranges, bulk data ranges and the rendering description.
 */
import Database from 'better-sqlite3';
import * as path from 'path';
import * as fs from 'fs';
import { JsonDataset } from '../dicom/json';

export interface InstanceRecord {
  studyUID: string;
  seriesUID: string;
  sopInstanceUID: string;
  sopClassUID: string;
  transferSyntaxUID: string;
  instanceNumber: number | null;
  numberOfFrames: number;
  rows: number | null;
  columns: number | null;
  blobKey: string;
  size: number;
  sha256: string;
  /** study / series / instance level attributes (DICOM JSON) */
  studyAttrs: JsonDataset;
  seriesAttrs: JsonDataset;
  instanceAttrs: JsonDataset;
  /** JSON text of the full metadata with BulkDataURI placeholders */
  metadata: string;
  /** JSON text: FrameTable of dicom/frames.ts (native frames computed, encapsulated ones listed) */
  frames: string;
  /** JSON text: BulkRef[] (+ deflated flag) */
  bulk: string;
  /** JSON text: the rendering library's ImageDescription, or null */
  render: string | null;
}

export interface StoredInstance {
  study_uid: string;
  series_uid: string;
  sop_instance_uid: string;
  sop_class_uid: string;
  transfer_syntax_uid: string;
  number_of_frames: number;
  blob_key: string;
  size: number;
  sha256: string;
}

export type InsertOutcome = 'stored' | 'identical' | 'conflict';

/** Normalised person name for fuzzy matching: upper case, accents removed, components space separated. */
export function fuzzyName(pn: string | undefined): string {
  if (!pn) return '';
  return pn.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toUpperCase().replace(/[\^=,]+/g, ' ').replace(/\s+/g, ' ').trim();
}

/**
 * The first value of an indexed attribute as text. A file may carry a wrong VR (PatientName as FD, say): a number
 * becomes its text, and anything else that is not text (a person name without an alphabetic group) is no value.
 */
function first(ds: JsonDataset, tag: string): string | null {
  let v = ds[tag]?.Value?.[0];
  if (v && typeof v === 'object' && 'Alphabetic' in (v as any)) v = (v as any).Alphabetic;
  if (typeof v === 'number' || typeof v === 'bigint') return String(v);
  return typeof v === 'string' ? v : null;
}

function multi(ds: JsonDataset, tag: string): string | null {
  const v = ds[tag]?.Value;
  return v && v.length ? v.map((x) => (x && typeof x === 'object' ? (x as any).Alphabetic ?? '' : x ?? '')).join('\\') : null;
}

const SCHEMA = `
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS studies (
  study_uid TEXT PRIMARY KEY,
  patient_name TEXT, patient_name_fuzzy TEXT, patient_id TEXT, patient_birth_date TEXT, patient_sex TEXT,
  study_date TEXT, study_time TEXT, accession_number TEXT, study_id TEXT, study_description TEXT,
  referring_physician_name TEXT, referring_physician_name_fuzzy TEXT,
  modalities TEXT, sop_classes TEXT,
  num_series INTEGER NOT NULL DEFAULT 0, num_instances INTEGER NOT NULL DEFAULT 0,
  attrs TEXT NOT NULL, updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_patient_name ON studies(patient_name_fuzzy);
CREATE INDEX IF NOT EXISTS studies_referring ON studies(referring_physician_name_fuzzy);
CREATE INDEX IF NOT EXISTS studies_patient_id ON studies(patient_id);
CREATE INDEX IF NOT EXISTS studies_study_date ON studies(study_date, study_time);
CREATE INDEX IF NOT EXISTS studies_accession ON studies(accession_number);
CREATE INDEX IF NOT EXISTS studies_updated ON studies(updated_at);
CREATE TABLE IF NOT EXISTS series (
  series_uid TEXT PRIMARY KEY,
  study_uid TEXT NOT NULL REFERENCES studies(study_uid),
  modality TEXT, series_number INTEGER, series_description TEXT, series_date TEXT, series_time TEXT,
  body_part_examined TEXT, pps_start_date TEXT, pps_start_time TEXT,
  num_instances INTEGER NOT NULL DEFAULT 0,
  attrs TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE INDEX IF NOT EXISTS series_modality ON series(modality);
CREATE TABLE IF NOT EXISTS instances (
  sop_instance_uid TEXT PRIMARY KEY,
  series_uid TEXT NOT NULL REFERENCES series(series_uid),
  study_uid TEXT NOT NULL REFERENCES studies(study_uid),
  sop_class_uid TEXT NOT NULL, transfer_syntax_uid TEXT NOT NULL,
  instance_number INTEGER, number_of_frames INTEGER NOT NULL, rows INTEGER, columns INTEGER,
  blob_key TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, sha256 TEXT NOT NULL, stored_at INTEGER NOT NULL,
  attrs TEXT NOT NULL, metadata TEXT NOT NULL, frames TEXT NOT NULL, bulk TEXT NOT NULL, render TEXT
);
CREATE INDEX IF NOT EXISTS instances_series ON instances(series_uid, instance_number);
CREATE INDEX IF NOT EXISTS instances_study ON instances(study_uid);
CREATE INDEX IF NOT EXISTS instances_sop_class ON instances(sop_class_uid);
`;

/**
 * The index cannot be used safely now (its files are not writable, or it could not be opened): every use throws
 * this until the cause is gone. The server answers 503 with the reason.
 */
export class IndexUnavailable extends Error {
  readonly code = 'INDEX_UNAVAILABLE';
}

export class SqliteIndex {
  private readonly database!: Database.Database;
  private readonly stmts!: Record<string, Database.Statement>;
  private readonly shmPath?: string;
  /** Why the index could not be opened at all (the server still starts, and answers 503). */
  private readonly broken?: string;

  constructor(dataDir: string | ':memory:') {
    if (dataDir !== ':memory:') fs.mkdirSync(dataDir, { recursive: true });
    const file = dataDir === ':memory:' ? ':memory:' : path.join(dataDir, 'index.sqlite');
    if (file !== ':memory:') this.shmPath = `${file}-shm`;
    try {
      this.database = new Database(file);
      this.database.exec(SCHEMA);
      this.stmts = this.prepare();
    } catch (e: any) {
      if (file === ':memory:') throw e;
      try { this.database?.close(); } catch { /* already unusable */ }
      this.broken = `the index ${file} cannot be opened (${e?.code ?? 'error'}: ${e?.message ?? e})`;
    }
  }

  /**
   * SQLite in WAL mode maps the -shm file into memory shared with other processes. If that file stops being
   * writable (immutable attribute, read-only remount, permissions), the next write through the mapping kills the
   * process with SIGBUS; SQLite cannot report it. So before each use the file's writability is checked with
   * access(2) (never open+close: closing a descriptor would drop SQLite's POSIX locks on it), and the index is
   * refused with a reason instead.
   */
  private guard(): void {
    if (this.broken) throw new IndexUnavailable(this.broken);
    if (!this.shmPath) return;
    try {
      fs.accessSync(this.shmPath, fs.constants.W_OK);
    } catch (e: any) {
      if (e?.code === 'ENOENT') return;
      throw new IndexUnavailable(`the index is not writable (-shm: ${e?.code ?? e})`);
    }
  }

  /** The database, for queries built elsewhere (QIDO); checked like every other use. */
  get db(): Database.Database { this.guard(); return this.database; }

  /** Throws IndexUnavailable when the index cannot be used now (for /health). */
  check(): void { this.guard(); }

  private prepare(): Record<string, Database.Statement> {
    const p = (sql: string) => this.database.prepare(sql);
    return {
      getInstance: p('SELECT * FROM instances WHERE sop_instance_uid = ?'),
      instanceHash: p('SELECT sha256 FROM instances WHERE sop_instance_uid = ?'),
      studyLists: p('SELECT modalities, sop_classes FROM studies WHERE study_uid = ?'),
      addToSeries: p('UPDATE series SET num_instances = num_instances + 1 WHERE series_uid = @series'),
      addToStudy: p(`UPDATE studies SET num_instances = num_instances + 1, num_series = num_series + @newSeries,
        modalities = @modalities, sop_classes = @sopClasses WHERE study_uid = @study`),
      insertInstance: p(`INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax_uid,
        instance_number, number_of_frames, rows, columns, blob_key, size, sha256, stored_at, attrs, metadata, frames, bulk, render)
        VALUES (@sop, @series, @study, @sopClass, @ts, @instanceNumber, @frames_n, @rows, @columns, @blobKey, @size, @sha256,
        @storedAt, @attrs, @metadata, @frames, @bulk, @render)`),
      upsertStudy: p(`INSERT INTO studies (study_uid, patient_name, patient_name_fuzzy, patient_id, patient_birth_date, patient_sex,
        study_date, study_time, accession_number, study_id, study_description, referring_physician_name,
        referring_physician_name_fuzzy, attrs, updated_at)
        VALUES (@study, @patientName, @patientNameFuzzy, @patientId, @birthDate, @sex, @studyDate, @studyTime, @accession,
        @studyId, @studyDescription, @referring, @referringFuzzy, @attrs, @now)
        ON CONFLICT(study_uid) DO UPDATE SET updated_at = excluded.updated_at`),
      upsertSeries: p(`INSERT INTO series (series_uid, study_uid, modality, series_number, series_description, series_date,
        series_time, body_part_examined, pps_start_date, pps_start_time, attrs)
        VALUES (@series, @study, @modality, @seriesNumber, @seriesDescription, @seriesDate, @seriesTime, @bodyPart, @ppsDate,
        @ppsTime, @attrs)
        ON CONFLICT(series_uid) DO NOTHING`),
      countSeries: p(`UPDATE series SET num_instances = (SELECT count(*) FROM instances WHERE series_uid = @series) WHERE series_uid = @series`),
      countStudy: p(`UPDATE studies SET
        num_instances = (SELECT count(*) FROM instances WHERE study_uid = @study),
        num_series = (SELECT count(*) FROM series WHERE study_uid = @study),
        modalities = (SELECT group_concat(m, '\\') FROM (SELECT DISTINCT modality AS m FROM series WHERE study_uid = @study AND modality IS NOT NULL ORDER BY modality)),
        sop_classes = (SELECT group_concat(c, '\\') FROM (SELECT DISTINCT sop_class_uid AS c FROM instances WHERE study_uid = @study ORDER BY c))
        WHERE study_uid = @study`),
      getSeries: p('SELECT * FROM series WHERE series_uid = ?'),
      getStudy: p('SELECT * FROM studies WHERE study_uid = ?'),
      instancesOfStudy: p('SELECT * FROM instances WHERE study_uid = ? ORDER BY series_uid, instance_number, sop_instance_uid'),
      instancesOfSeries: p('SELECT * FROM instances WHERE study_uid = ? AND series_uid = ? ORDER BY instance_number, sop_instance_uid'),
      allBlobKeys: p('SELECT sop_instance_uid, blob_key, size, sha256 FROM instances'),
      deleteInstance: p('DELETE FROM instances WHERE sop_instance_uid = ?'),
      deleteEmptySeries: p('DELETE FROM series WHERE series_uid = ? AND NOT EXISTS (SELECT 1 FROM instances WHERE series_uid = ?)'),
      deleteEmptyStudy: p('DELETE FROM studies WHERE study_uid = ? AND NOT EXISTS (SELECT 1 FROM series WHERE study_uid = ?)'),
    };
  }

  close() { if (!this.broken) this.database.close(); }

  /** Instances indexed and the database's size on disk (for /metrics and /ready); a read of the index. */
  stats(): { instances: number; bytes: number } {
    this.guard();
    const instances = (this.db.prepare('SELECT count(*) AS n FROM instances').get() as { n: number }).n;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    return { instances, bytes: pages * pageSize };
  }

  getInstance(sop: string): any { this.guard(); return this.stmts.getInstance.get(sop); }
  getSeries(series: string): any { this.guard(); return this.stmts.getSeries.get(series); }
  getStudy(study: string): any { this.guard(); return this.stmts.getStudy.get(study); }
  instancesOfStudy(study: string): any[] { this.guard(); return this.stmts.instancesOfStudy.all(study); }
  instancesOfSeries(study: string, series: string): any[] { this.guard(); return this.stmts.instancesOfSeries.all(study, series); }
  allBlobKeys(): Array<{ sop_instance_uid: string; blob_key: string; size: number; sha256: string }> {
    this.guard();
    return this.stmts.allBlobKeys.all() as any;
  }

  /**
   * Indexes one instance in a single transaction. The duplicate rule: an instance whose SOP Instance UID is
   * already indexed is not written again; the same bytes (same SHA-256) count as stored ('identical'),
   * different bytes are refused ('conflict') and the stored instance is kept.
   */
  insert(r: InstanceRecord): InsertOutcome {
    const tx = this.db.transaction((): InsertOutcome => {
      const existing = this.stmts.instanceHash.get(r.sopInstanceUID) as any;
      if (existing) return existing.sha256 === r.sha256 ? 'identical' : 'conflict';
      const s = r.studyAttrs;
      const now = Date.now();
      this.stmts.upsertStudy.run({
        study: r.studyUID, patientName: first(s, '00100010'), patientNameFuzzy: fuzzyName(first(s, '00100010') ?? undefined),
        patientId: first(s, '00100020'), birthDate: first(s, '00100030'), sex: first(s, '00100040'),
        studyDate: first(s, '00080020'), studyTime: first(s, '00080030'), accession: first(s, '00080050'),
        studyId: first(s, '00200010'), studyDescription: first(s, '00081030'), referring: first(s, '00080090'),
        referringFuzzy: fuzzyName(first(s, '00080090') ?? undefined), attrs: JSON.stringify(s), now,
      });
      const se = r.seriesAttrs;
      const modality = first(se, '00080060');
      const newSeries = this.stmts.upsertSeries.run({
        series: r.seriesUID, study: r.studyUID, modality, seriesNumber: numOrNull(first(se, '00200011')),
        seriesDescription: first(se, '0008103E'), seriesDate: first(se, '00080021'), seriesTime: first(se, '00080031'),
        bodyPart: first(se, '00180015'), ppsDate: first(se, '00400244'), ppsTime: first(se, '00400245'), attrs: JSON.stringify(se),
      }).changes;
      const seriesRow = this.stmts.getSeries.get(r.seriesUID) as any;
      if (seriesRow.study_uid !== r.studyUID) throw new IndexConflict('Series Instance UID already belongs to another study');
      this.stmts.insertInstance.run({
        sop: r.sopInstanceUID, series: r.seriesUID, study: r.studyUID, sopClass: r.sopClassUID, ts: r.transferSyntaxUID,
        instanceNumber: r.instanceNumber, frames_n: r.numberOfFrames, rows: r.rows, columns: r.columns, blobKey: r.blobKey,
        size: r.size, sha256: r.sha256, storedAt: now, attrs: JSON.stringify(r.instanceAttrs), metadata: r.metadata,
        frames: r.frames, bulk: r.bulk, render: r.render,
      });
      // The counts and lists grow by this instance (and its series, if new): what countSeries and countStudy
      // would recount, without reading every instance of the study, which made each insert O(study size).
      this.stmts.addToSeries.run({ series: r.seriesUID });
      const lists = this.stmts.studyLists.get(r.studyUID) as { modalities: string | null; sop_classes: string | null };
      this.stmts.addToStudy.run({
        study: r.studyUID, newSeries,
        modalities: newSeries && modality !== null ? withValue(lists.modalities, modality) : lists.modalities,
        sopClasses: withValue(lists.sop_classes, r.sopClassUID),
      });
      return 'stored';
    });
    return tx.immediate();
  }

  /** Removes an instance's index rows (used by `verify --repair` for rows whose blob is gone). */
  removeInstance(sop: string): void {
    this.removeInstances([sop]);
  }

  /**
   * Removes instances' index rows in one transaction (DELETE of a study, series or instance): readers see all of
   * them or none. Emptied series and studies go; counts and lists of the rest are recounted.
   */
  removeInstances(sops: string[]): void {
    const tx = this.db.transaction(() => {
      const series = new Set<string>();
      const studies = new Set<string>();
      for (const sop of sops) {
        const row = this.stmts.getInstance.get(sop) as any;
        if (!row) continue;
        this.stmts.deleteInstance.run(sop);
        series.add(row.series_uid);
        studies.add(row.study_uid);
      }
      for (const s of series) {
        this.stmts.deleteEmptySeries.run(s, s);
        this.stmts.countSeries.run({ series: s });
      }
      for (const s of studies) {
        this.stmts.deleteEmptyStudy.run(s, s);
        this.stmts.countStudy.run({ study: s });
      }
    });
    tx.immediate();
  }

  /** The SOP Instance UID indexed with this blob key, if any. */
  instanceByBlobKey(key: string): string | undefined {
    return (this.db.prepare('SELECT sop_instance_uid FROM instances WHERE blob_key = ?').get(key) as any)?.sop_instance_uid;
  }
}

/** A backslash-separated list of distinct values in SQLite's order (as group_concat over ORDER BY), with `v` in it. */
function withValue(list: string | null, v: string): string {
  const values = list === null ? [] : list.split('\\');
  if (values.includes(v)) return list!;
  values.push(v);
  values.sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
  return values.join('\\');
}

export class IndexConflict extends Error {}

function numOrNull(v: any): number | null {
  const n = typeof v === 'number' ? v : Number(v);
  return v === null || v === undefined || !Number.isFinite(n) ? null : n;
}

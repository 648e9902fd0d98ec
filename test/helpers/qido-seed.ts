/**
 * Seeding the index for QIDO tests without the ingest path: InstanceRecords built from the parsed corpus files
 * with the same level split ingest uses (storage/levels.ts), synthetic records for cases the corpus lacks, and a
 * 100,000-instance synthetic index written with plain SQL in one transaction.
 * QIDO reads only the index rows, so blob, frame and rendering fields are placeholders (blob keys unique).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as crypto from 'crypto';
import type Database from 'better-sqlite3';
import { parseDicomFile } from '../../dicom/parse';
import { JsonDataset, num } from '../../dicom/json';
import { INSTANCE_LEVEL, pick, searchable, SERIES_LEVEL, STUDY_LEVEL } from '../../storage/levels';
import { fuzzyName, InstanceRecord, SqliteIndex } from '../../storage/index-sqlite';
import { prng } from './prng';

export const CORPUS = path.join(process.cwd(), 'test', 'fixtures', 'corpus');

/** uids.tsv: file name -> { study, series, instance } (blank where the file has none). */
export function corpusUIDs(): Map<string, { study: string; series: string; instance: string }> {
  const lines = fs.readFileSync(path.join(CORPUS, 'uids.tsv'), 'utf8').trim().split('\n').slice(1);
  return new Map(lines.map((l) => { const [file, study, series, instance] = l.split('\t'); return [file, { study, series, instance }]; }));
}

export function recordFromDataset(ds: JsonDataset, blobKey: string, sha256: string, transferSyntaxUID = '1.2.840.10008.1.2.1'): InstanceRecord {
  const uid = (tag: string) => ds[tag]?.Value?.[0] as string;
  return {
    studyUID: uid('0020000D'), seriesUID: uid('0020000E'), sopInstanceUID: uid('00080018'), sopClassUID: uid('00080016'),
    transferSyntaxUID, instanceNumber: num(ds, '00200013') ?? null, numberOfFrames: num(ds, '00280008') ?? 1,
    rows: num(ds, '00280010') ?? null, columns: num(ds, '00280011') ?? null, blobKey, size: 0, sha256,
    // the same split as server/ingest.ts
    studyAttrs: pick(ds, STUDY_LEVEL), seriesAttrs: pick(ds, SERIES_LEVEL),
    instanceAttrs: { ...searchable(ds), ...pick(ds, INSTANCE_LEVEL) },
    metadata: '{}', frames: '[]', bulk: '{}', render: null,
  };
}

export interface SeededFile { file: string; study: string; series: string; instance: string }

/**
 * Indexes every corpus file that parses and has its three UIDs; returns those indexed as 'stored' (a SOP Instance
 * UID met again in another file is refused by the index), with the UIDs read from the files.
 */
export function seedCorpus(index: SqliteIndex): SeededFile[] {
  const stored: SeededFile[] = [];
  const dir = path.join(CORPUS, 'dicom');
  for (const name of fs.readdirSync(dir).sort()) {
    let p;
    try { p = parseDicomFile(path.join(dir, name)); } catch { continue; }
    const ds = p.dataset;
    if (!ds['0020000D'] || !ds['0020000E'] || !ds['00080018']) continue;
    const sha = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest('hex');
    if (index.insert(recordFromDataset(ds, `qido-test/${name}`, sha, p.transferSyntaxUID)) === 'stored') {
      const uid = (tag: string) => ds[tag].Value![0] as string;
      stored.push({ file: name.replace(/\.dcm$/, ''), study: uid('0020000D'), series: uid('0020000E'), instance: uid('00080018') });
    }
  }
  return stored;
}

export interface Synthetic {
  study: string; series: string; sop: string; patientName?: string; patientID?: string; studyDate?: string;
  studyTime?: string; modality?: string; seriesNumber?: number; instanceNumber?: number; sopClass?: string;
  referring?: string; accession?: string; studyDescription?: string; bodyPart?: string; imageType?: string[];
}

export function syntheticDataset(s: Synthetic): JsonDataset {
  const ds: JsonDataset = {
    '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
    '00080016': { vr: 'UI', Value: [s.sopClass ?? '1.2.840.10008.5.1.4.1.1.7'] },
    '00080018': { vr: 'UI', Value: [s.sop] },
    '00080060': { vr: 'CS', Value: [s.modality ?? 'OT'] },
    '0020000D': { vr: 'UI', Value: [s.study] },
    '0020000E': { vr: 'UI', Value: [s.series] },
  };
  if (s.patientName !== undefined) ds['00100010'] = { vr: 'PN', Value: [{ Alphabetic: s.patientName }] };
  if (s.patientID !== undefined) ds['00100020'] = { vr: 'LO', Value: [s.patientID] };
  if (s.studyDate !== undefined) ds['00080020'] = { vr: 'DA', Value: [s.studyDate] };
  if (s.studyTime !== undefined) ds['00080030'] = { vr: 'TM', Value: [s.studyTime] };
  if (s.referring !== undefined) ds['00080090'] = { vr: 'PN', Value: [{ Alphabetic: s.referring }] };
  if (s.accession !== undefined) ds['00080050'] = { vr: 'SH', Value: [s.accession] };
  if (s.studyDescription !== undefined) ds['00081030'] = { vr: 'LO', Value: [s.studyDescription] };
  if (s.seriesNumber !== undefined) ds['00200011'] = { vr: 'IS', Value: [s.seriesNumber] };
  if (s.instanceNumber !== undefined) ds['00200013'] = { vr: 'IS', Value: [s.instanceNumber] };
  if (s.bodyPart !== undefined) ds['00180015'] = { vr: 'CS', Value: [s.bodyPart] };
  if (s.imageType !== undefined) ds['00080008'] = { vr: 'CS', Value: s.imageType };
  return ds;
}

export function insertSynthetic(index: SqliteIndex, s: Synthetic): void {
  const outcome = index.insert(recordFromDataset(syntheticDataset(s), `qido-synthetic/${s.sop}`, s.sop));
  if (outcome !== 'stored') throw new Error(`synthetic ${s.sop}: ${outcome}`);
}

// ---------------------------------------------------------------------------------------------
// The 100,000-instance index

export const SURNAMES = ['SMITH', 'JONES', 'TAYLOR', 'BROWN', 'WILLIAMS', 'WILSON', 'JOHNSON', 'DAVIES', 'ROBINSON', 'WRIGHT',
  'THOMPSON', 'EVANS', 'WALKER', 'WHITE', 'ROBERTS', 'GREEN', 'HALL', 'WOOD', 'JACKSON', 'CLARKE', 'MÜLLER', 'GARCÍA',
  'SMITHSON', 'NGUYEN', 'KOWALSKI'];
export const GIVEN = ['JOHN', 'MARY', 'JAMES', 'ANNA', 'PETER', 'LUCY', 'JOSÉ', 'ZOË', 'DAVID', 'EMMA'];
export const MODALITIES = ['CT', 'MR', 'US', 'CR', 'DX', 'NM', 'PT', 'XA'];

export interface BigStudy {
  uid: string; patientName: string; patientID: string; studyDate: string; studyTime: string; accession: string;
  modalities: string[]; series: number; instances: number;
}


/** The plan of the big index: `studies` studies of 2 series of `perSeries` instances each. */
export function bigPlan(studies = 10_000, perSeries = 5): BigStudy[] {
  const rnd = prng(20240229);
  const pickOne = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
  const plan: BigStudy[] = [];
  for (let k = 0; k < studies; k++) {
    const year = 2010 + Math.floor(rnd() * 15);
    const month = 1 + Math.floor(rnd() * 12);
    const day = 1 + Math.floor(rnd() * 28);
    const time = `${String(Math.floor(rnd() * 24)).padStart(2, '0')}${String(Math.floor(rnd() * 60)).padStart(2, '0')}00`;
    const m1 = pickOne(MODALITIES);
    const m2 = rnd() < 0.3 ? pickOne(MODALITIES) : m1;
    plan.push({
      uid: `2.25.1000.${k + 1}`, patientName: `${pickOne(SURNAMES)}^${pickOne(GIVEN)}`, patientID: `P${String(Math.floor(k / 3)).padStart(6, '0')}`,
      studyDate: `${year}${String(month).padStart(2, '0')}${String(day).padStart(2, '0')}`, studyTime: time,
      accession: `A${k + 1}`, modalities: [m1, m2], series: 2, instances: 2 * perSeries,
    });
  }
  return plan;
}

/**
 * Writes the plan straight into the index tables in one transaction (the rows index-sqlite.ts would write,
 * counts and modalities included). Returns the number of instances.
 */
export function buildBigIndex(db: Database.Database, plan: BigStudy[], perSeries = 5): number {
  const study = db.prepare(`INSERT INTO studies (study_uid, patient_name, patient_name_fuzzy, patient_id, patient_birth_date, patient_sex,
    study_date, study_time, accession_number, study_id, study_description, referring_physician_name, referring_physician_name_fuzzy,
    modalities, sop_classes, num_series, num_instances, attrs, updated_at) VALUES (?, ?, ?, ?, NULL, 'O', ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?, ?, ?, 0)`);
  const series = db.prepare(`INSERT INTO series (series_uid, study_uid, modality, series_number, series_description, series_date, series_time,
    body_part_examined, pps_start_date, pps_start_time, num_instances, attrs) VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL, ?, ?)`);
  const instance = db.prepare(`INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, transfer_syntax_uid,
    instance_number, number_of_frames, rows, columns, blob_key, size, sha256, stored_at, attrs, metadata, frames, bulk, render)
    VALUES (?, ?, ?, ?, '1.2.840.10008.1.2.1', ?, 1, 512, 512, ?, 0, '', 0, ?, '{}', '[]', '{}', NULL)`);
  const sopClass = '1.2.840.10008.5.1.4.1.1.2';
  let n = 0;
  db.transaction(() => {
    for (const s of plan) {
      const studyAttrs = JSON.stringify({
        '00080005': { vr: 'CS', Value: ['ISO_IR 192'] }, '00080020': { vr: 'DA', Value: [s.studyDate] },
        '00080030': { vr: 'TM', Value: [s.studyTime] }, '00080050': { vr: 'SH', Value: [s.accession] },
        '00100010': { vr: 'PN', Value: [{ Alphabetic: s.patientName }] }, '00100020': { vr: 'LO', Value: [s.patientID] },
        '00100040': { vr: 'CS', Value: ['O'] }, '0020000D': { vr: 'UI', Value: [s.uid] }, '00200010': { vr: 'SH', Value: [s.accession] },
      });
      const mods = [...new Set(s.modalities)].sort().join('\\');
      study.run(s.uid, s.patientName, fuzzyName(s.patientName), s.patientID, s.studyDate, s.studyTime, s.accession, s.accession,
        mods, sopClass, s.series, s.instances, studyAttrs);
      for (let k = 0; k < s.series; k++) {
        const seriesUID = `${s.uid}.${k + 1}`;
        series.run(seriesUID, s.uid, s.modalities[k], k + 1, perSeries, JSON.stringify({
          '00080060': { vr: 'CS', Value: [s.modalities[k]] }, '0020000E': { vr: 'UI', Value: [seriesUID] },
          '00200011': { vr: 'IS', Value: [k + 1] },
        }));
        for (let j = 0; j < perSeries; j++) {
          const sop = `${seriesUID}.${j + 1}`;
          instance.run(sop, seriesUID, s.uid, sopClass, j + 1, `big/${sop}`, JSON.stringify({
            '00080016': { vr: 'UI', Value: [sopClass] }, '00080018': { vr: 'UI', Value: [sop] },
            '00200013': { vr: 'IS', Value: [j + 1] }, '00280010': { vr: 'US', Value: [512] }, '00280011': { vr: 'US', Value: [512] },
            '00280100': { vr: 'US', Value: [16] }, '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', j === 0 ? 'LOCALIZER' : 'AXIAL'] },
          }));
          n++;
        }
      }
    }
  })();
  return n;
}

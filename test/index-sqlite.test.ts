/**
 * The SQLite index's study and series summaries (counts, ModalitiesInStudy, SOPClassesInStudy) kept up to date by
 * each insert, checked against a recount of the rows after every step, duplicates and conflicts included.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SqliteIndex, InstanceRecord } from '../storage/index-sqlite';

function record(study: string, series: string, sop: string, modality: string | null, sopClass: string, sha = 'h-' + sop): InstanceRecord {
  return {
    studyUID: study, seriesUID: series, sopInstanceUID: sop, sopClassUID: sopClass, transferSyntaxUID: '1.2.840.10008.1.2.1',
    instanceNumber: 1, numberOfFrames: 1, rows: 1, columns: 1, blobKey: `k/${sop}`, size: 1, sha256: sha,
    studyAttrs: { '0020000D': { vr: 'UI', Value: [study] } },
    seriesAttrs: modality === null ? {} : { '00080060': { vr: 'CS', Value: [modality] } },
    instanceAttrs: {}, metadata: '{}', frames: '[]', bulk: '[]', render: null,
  } as InstanceRecord;
}

/** What the summaries must be: recounted from the instance and series rows, as SQLite orders them. */
function recount(index: SqliteIndex) {
  return index.db.prepare(`SELECT study_uid,
      (SELECT count(*) FROM instances i WHERE i.study_uid = s.study_uid) AS num_instances,
      (SELECT count(*) FROM series e WHERE e.study_uid = s.study_uid) AS num_series,
      (SELECT group_concat(m, '\\') FROM (SELECT DISTINCT modality AS m FROM series e WHERE e.study_uid = s.study_uid AND modality IS NOT NULL ORDER BY modality)) AS modalities,
      (SELECT group_concat(c, '\\') FROM (SELECT DISTINCT sop_class_uid AS c FROM instances i WHERE i.study_uid = s.study_uid ORDER BY c)) AS sop_classes
    FROM studies s ORDER BY study_uid`).all();
}
const kept = (index: SqliteIndex) => index.db.prepare('SELECT study_uid, num_instances, num_series, modalities, sop_classes FROM studies ORDER BY study_uid').all();
const seriesCounts = (index: SqliteIndex) => index.db.prepare('SELECT series_uid, num_instances FROM series ORDER BY series_uid').all();
const seriesRecount = (index: SqliteIndex) => index.db.prepare('SELECT series_uid, (SELECT count(*) FROM instances i WHERE i.series_uid = e.series_uid) AS num_instances FROM series e ORDER BY series_uid').all();

test('each insert keeps study and series counts, modalities and SOP classes equal to a recount', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'index-'));
  const index = new SqliteIndex(dir);
  try {
    const steps: Array<[InstanceRecord, string]> = [
      [record('1.1', '1.1.1', '1.1.1.1', 'MR', '1.2.840.10008.5.1.4.1.1.4'), 'stored'],
      [record('1.1', '1.1.1', '1.1.1.2', 'MR', '1.2.840.10008.5.1.4.1.1.4'), 'stored'],
      [record('1.1', '1.1.2', '1.1.2.1', 'CT', '1.2.840.10008.5.1.4.1.1.2'), 'stored'], // new series, modality sorts first
      [record('1.1', '1.1.3', '1.1.3.1', null, '1.2.840.10008.5.1.4.1.1.7'), 'stored'], // no modality
      [record('1.1', '1.1.4', '1.1.4.1', 'CT', '1.2.840.10008.5.1.4.1.1.88.11'), 'stored'], // modality already listed
      [record('1.1', '1.1.1', '1.1.1.1', 'MR', '1.2.840.10008.5.1.4.1.1.4'), 'identical'],
      [record('1.1', '1.1.1', '1.1.1.2', 'MR', '1.2.840.10008.5.1.4.1.1.4', 'other bytes'), 'conflict'],
      [record('1.2', '1.2.1', '1.2.1.1', 'SR', '1.2.840.10008.5.1.4.1.1.88.22'), 'stored'],
      [record('1.1', '1.1.5', '1.1.5.1', 'SEG', '1.2.840.10008.5.1.4.1.1.66.4'), 'stored'],
      [record('1.1', '1.1.1', '1.1.1.3', 'MR', '1.2.840.10008.5.1.4.1.1.4'), 'stored'],
    ];
    for (const [r, outcome] of steps) {
      expect(index.insert(r)).toBe(outcome);
      expect(kept(index)).toEqual(recount(index));
      expect(seriesCounts(index)).toEqual(seriesRecount(index));
    }
    // a series of another study is refused, and changes nothing
    const before = kept(index);
    expect(() => index.insert(record('1.2', '1.1.1', '1.2.9.9', 'MR', '1.2.840.10008.5.1.4.1.1.4'))).toThrow(/another study/);
    expect(kept(index)).toEqual(before);
    expect(kept(index)[0]).toEqual({ study_uid: '1.1', num_instances: 7, num_series: 5, modalities: 'CT\\MR\\SEG',
      sop_classes: '1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.4\\1.2.840.10008.5.1.4.1.1.66.4\\1.2.840.10008.5.1.4.1.1.7\\1.2.840.10008.5.1.4.1.1.88.11' });
  } finally {
    index.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('indexed attributes with a wrong VR (a person name stored as FD, a name without an alphabetic group) index as text or as no value', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'index-vr-'));
  const index = new SqliteIndex(dir);
  try {
    const r = record('1.2.3', '1.2.3.1', '1.2.3.1.1', 'CT', '1.2.840.10008.5.1.4.1.1.2');
    r.studyAttrs = {
      ...r.studyAttrs,
      '00100010': { vr: 'FD', Value: [12.5] } as any, // PatientName
      '00080090': { vr: 'PN', Value: [{ Ideographic: '山田' }] } as any, // ReferringPhysicianName
      '00100020': { vr: 'LO', Value: [{ nested: true }] } as any, // PatientID
    };
    expect(index.insert(r)).toBe('stored');
    expect(index.db.prepare('SELECT patient_name, patient_name_fuzzy, referring_physician_name, patient_id FROM studies').get())
      .toEqual({ patient_name: '12.5', patient_name_fuzzy: '12.5', referring_physician_name: null, patient_id: null });
  } finally {
    index.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * QIDO-RS (PS3.18 10.6) through HTTP, on the real corpus indexed by test/helpers/qido-seed.ts plus a few synthetic
 * records (an accented name, a study with two modalities), and on a 100,000-instance synthetic index.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import express, { NextFunction, Request, Response } from 'express';
import request from 'supertest';
import { QIDO_MAX_RESULTS, qidoRouter } from '../server/qido';
import { ServerContext } from '../server/context';
import { HttpError } from '../server/errors';
import { loadConfig } from '../server/config';
import { SqliteIndex } from '../storage/index-sqlite';
import { JsonDataset } from '../dicom/json';
import { parseDicomFile } from '../dicom/parse';
import { searchable } from '../storage/levels';
import {
  countMatches, ensureQidoIndexes, explainSearch, parseQidoQuery, personNameMatches, QidoQueryError, searchStudies,
} from '../storage/qido';
import { bigPlan, buildBigIndex, BigStudy, CORPUS, corpusUIDs, insertSynthetic, SeededFile, seedCorpus } from './helpers/qido-seed';

const PUBLIC = 'http://qido.test/dicom-web';

/** The app as server/app.ts builds it, reduced to QIDO: extended query parser, one error handler. */
function makeApp(index: SqliteIndex) {
  const config = loadConfig([], {}, { publicUrl: PUBLIC, dataDir: os.tmpdir() });
  const ctx = { config, index, blobs: undefined as any } as ServerContext;
  const app = express();
  app.set('query parser', 'extended');
  app.use('/dicom-web', qidoRouter(ctx));
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  app.use((err: any, _req: Request, res: Response, _next: NextFunction) => {
    const status = err instanceof HttpError ? err.status : 500;
    res.status(status).type('application/json').send(JSON.stringify({ error: status === 500 ? String(err?.stack ?? err) : err.message }));
  });
  return app;
}

const v = (ds: JsonDataset, tag: string) => ds[tag]?.Value?.[0] as any;
const vals = (ds: JsonDataset, tag: string) => (ds[tag]?.Value ?? []) as any[];
const uidsOf = (list: JsonDataset[], tag = '0020000D') => list.map((d) => v(d, tag) as string);

const U = corpusUIDs();
const CT = U.get('CT_small')!;
const NM = U.get('JPEG-LL')!; // one NM series of three instances (JPEG2000 #3, JPEG-LL #4, JPGExtended #5)
const RG3 = U.get('RG3_J2KR')!;
const ACCENTED = { study: '2.25.900.1', series: '2.25.900.1.1', sop: '2.25.900.1.1.1' };
const SR = { series: '2.25.900.2.1', sop: '2.25.900.2.1.1' };
const LOWER = { study: '2.25.900.3', series: '2.25.900.3.1', sop: '2.25.900.3.1.1' };

describe('QIDO-RS on the corpus', () => {
  let dir: string;
  let index: SqliteIndex;
  let app: express.Express;
  let stored: SeededFile[];
  let allStudies: Set<string>;
  let allSeries: Set<string>;
  let allInstances: Set<string>;

  const get = (url: string, accept?: string) => {
    const r = request(app).get(`/dicom-web${url}`);
    return accept === undefined ? r : r.set('Accept', accept);
  };
  const json = async (url: string, status = 200): Promise<JsonDataset[]> => {
    const res = await get(url);
    if (res.status !== status) throw new Error(`${url}: ${res.status} ${res.text}`);
    if (status === 204) { expect(res.text).toBe(''); return []; }
    expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
    return JSON.parse(res.text);
  };
  const studies = (q: string) => json(`/studies?${q}`);

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qido-test-'));
    index = new SqliteIndex(dir);
    stored = seedCorpus(index);
    insertSynthetic(index, {
      ...ACCENTED, patientName: 'Müller^José', patientID: 'ACC1', studyDate: '20210315', studyTime: '101500',
      modality: 'MR', seriesNumber: 1, instanceNumber: 1, referring: 'Ñúñez^Zoë', accession: 'X-1',
    });
    // A second series (another modality) in CT_small's study: ModalitiesInStudy and the counts see both.
    insertSynthetic(index, {
      study: CT.study, series: SR.series, sop: SR.sop, modality: 'SR', seriesNumber: 2, instanceNumber: 1,
      sopClass: '1.2.840.10008.5.1.4.1.1.88.22',
    });
    insertSynthetic(index, { ...LOWER, patientName: 'smith^john', patientID: 'abc123', studyDate: '20220101', modality: 'OT' });
    app = makeApp(index);
    const files = stored; // UIDs as read from the files
    allStudies = new Set([...files.map((f) => f.study), ACCENTED.study, LOWER.study]);
    allSeries = new Set([...files.map((f) => f.series), ACCENTED.series, SR.series, LOWER.series]);
    allInstances = new Set([...files.map((f) => f.instance), ACCENTED.sop, SR.sop, LOWER.sop]);
  });
  afterAll(() => {
    index.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the corpus was indexed (each distinct SOP Instance UID once)', () => {
    expect(stored.length).toBeGreaterThan(20);
    const names = stored.map((f) => f.file);
    expect(names).toEqual(expect.arrayContaining(['CT_small', 'JPEG-LL', 'JPEG2000', 'JPGExtended', 'RG3_J2KR', 'test-SR']));
    // uids.tsv agrees with the files for those the tests name
    for (const n of ['CT_small', 'JPEG-LL', 'JPEG2000', 'JPGExtended', 'RG3_J2KR', 'MR_small', 'US1_UNCR', 'test-SR']) {
      const f = stored.find((x) => x.file === n)!;
      expect(U.get(n)).toEqual({ study: f.study, series: f.series, instance: f.instance });
    }
  });

  describe('resources and returned attributes', () => {
    test('GET /studies returns every study, newest first', async () => {
      const list = await json('/studies');
      expect(new Set(uidsOf(list))).toEqual(allStudies);
      expect(list.length).toBe(allStudies.size);
      // StudyDate desc, StudyTime desc; studies without a date last
      const keys = list.map((d) => `${v(d, '00080020') ?? ''}|${v(d, '00080030') ?? ''}`);
      // descending, with the empty key (no date) last
      const sorted = [...keys].sort((a, b) => (a === b ? 0 : a === '|' ? 1 : b === '|' ? -1 : a < b ? 1 : -1));
      expect(keys[keys.length - 1]).toBe('|');
      expect(keys).toEqual(sorted);
    });

    test('study attributes (Table 10.6.3-3) with typed DICOM JSON values', async () => {
      const [ct] = await studies(`StudyInstanceUID=${CT.study}`);
      expect(v(ct, '0020000D')).toBe(CT.study);
      expect(ct['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'CompressedSamples^CT1' }] });
      expect(ct['00100020']).toEqual({ vr: 'LO', Value: ['1CT1'] });
      expect(ct['00080020']).toEqual({ vr: 'DA', Value: ['20040119'] });
      expect(ct['00080030']).toEqual({ vr: 'TM', Value: ['072730'] });
      expect(ct['00081030']).toEqual({ vr: 'LO', Value: ['e+1'] });
      expect(ct['00200010']).toEqual({ vr: 'SH', Value: ['1CT1'] });
      expect(ct['00080056']).toEqual({ vr: 'CS', Value: ['ONLINE'] });
      expect(ct['00081190']).toEqual({ vr: 'UR', Value: [`${PUBLIC}/studies/${CT.study}`] });
      // two modalities: the file's CT series and the synthetic SR series
      expect(ct['00080061']).toEqual({ vr: 'CS', Value: ['CT', 'SR'] });
      expect(ct['00201206']).toEqual({ vr: 'IS', Value: [2] });
      expect(ct['00201208']).toEqual({ vr: 'IS', Value: [2] });
      // required but without a value in the file: present, zero length
      expect(ct['00080090']).toEqual({ vr: 'PN' });
      expect(ct['00100030']).toEqual({ vr: 'DA' });
      // not a study attribute
      expect(ct['00080060']).toBeUndefined();
      expect(ct['00280010']).toBeUndefined();
    });

    test('counts of a study of one series and three instances', async () => {
      const [nm] = await studies(`StudyInstanceUID=${NM.study}`);
      expect(v(nm, '00201206')).toBe(1);
      expect(v(nm, '00201208')).toBe(3);
      expect(vals(nm, '00080061')).toEqual(['NM']);
    });

    test('GET /studies/{study}/series: series attributes (Table 10.6.3-4), by Series Number', async () => {
      const list = await json(`/studies/${CT.study}/series`);
      expect(uidsOf(list, '0020000E')).toEqual([CT.series, SR.series]);
      expect(list.map((d) => v(d, '00080060'))).toEqual(['CT', 'SR']);
      expect(list.map((d) => v(d, '00200011'))).toEqual([1, 2]);
      expect(list[0]['00201209']).toEqual({ vr: 'IS', Value: [1] });
      expect(list[0]['00081190']).toEqual({ vr: 'UR', Value: [`${PUBLIC}/studies/${CT.study}/series/${CT.series}`] });
      expect(v(list[0], '0020000D')).toBe(CT.study);
      // the study is in the path: its attributes are not repeated
      expect(list[0]['00100010']).toBeUndefined();
      expect(list[0]['00080061']).toBeUndefined();
    });

    test('GET /series: every series, with the study attributes', async () => {
      const list = await json('/series');
      expect(new Set(uidsOf(list, '0020000E'))).toEqual(allSeries);
      const ct = list.find((d) => v(d, '0020000E') === CT.series)!;
      expect(v(ct, '00100010')).toEqual({ Alphabetic: 'CompressedSamples^CT1' });
      expect(vals(ct, '00080061')).toEqual(['CT', 'SR']);
      expect(v(ct, '00201208')).toBe(2);
      expect(v(ct, '00081190')).toBe(`${PUBLIC}/studies/${CT.study}/series/${CT.series}`);
    });

    test('GET /instances: every instance, with series and study attributes', async () => {
      const list = await json('/instances');
      expect(new Set(uidsOf(list, '00080018'))).toEqual(allInstances);
      expect(list.length).toBe(allInstances.size);
      const ct = list.find((d) => v(d, '00080018') === CT.instance)!;
      expect(ct['00080016']).toEqual({ vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] });
      expect(ct['00280010']).toEqual({ vr: 'US', Value: [128] });
      expect(ct['00280011']).toEqual({ vr: 'US', Value: [128] });
      expect(ct['00280100']).toEqual({ vr: 'US', Value: [16] });
      expect(ct['00200013']).toEqual({ vr: 'IS', Value: [1] });
      expect(v(ct, '00080056')).toBe('ONLINE');
      expect(v(ct, '00081190')).toBe(`${PUBLIC}/studies/${CT.study}/series/${CT.series}/instances/${CT.instance}`);
      expect(v(ct, '00080060')).toBe('CT');
      expect(v(ct, '00100020')).toBe('1CT1');
      expect(v(ct, '0020000E')).toBe(CT.series);
    });

    test('GET /studies/{study}/instances: by series then Instance Number, series attributes, no study ones', async () => {
      const list = await json(`/studies/${NM.study}/instances`);
      expect(list.map((d) => v(d, '00200013'))).toEqual([3, 4, 5]);
      expect(uidsOf(list, '00080018')).toEqual([U.get('JPEG2000')!.instance, NM.instance, U.get('JPGExtended')!.instance]);
      expect(v(list[0], '00080060')).toBe('NM');
      expect(list[0]['00100010']).toBeUndefined();
      const ct = await json(`/studies/${CT.study}/instances`);
      expect(uidsOf(ct, '00080018')).toEqual([CT.instance, SR.sop]);
    });

    test('GET /studies/{study}/series/{series}/instances: instance attributes only', async () => {
      const list = await json(`/studies/${NM.study}/series/${NM.series}/instances`);
      expect(list.map((d) => v(d, '00200013'))).toEqual([3, 4, 5]);
      expect(v(list[0], '0020000E')).toBe(NM.series);
      expect(list[0]['00080060']).toBeUndefined();
      expect(v(list[0], '00280008')).toBe(1); // NumberOfFrames, present in these files
      // a series that is not in that study
      await json(`/studies/${NM.study}/series/${CT.series}/instances`, 204);
    });

    test('an unknown study has no series: 204', async () => {
      await json('/studies/1.2.3.4.5/series', 204);
      await json('/studies/1.2.3.4.5/instances', 204);
    });
  });

  describe('matching (PS3.4 C.2.2.2)', () => {
    test('single value: case-sensitive except for person names', async () => {
      expect(uidsOf(await studies('PatientID=1CT1'))).toEqual([CT.study]);
      await json('/studies?PatientID=1ct1', 204);
      expect(uidsOf(await studies('PatientID=abc123'))).toEqual([LOWER.study]);
      await json('/studies?PatientID=ABC123', 204);
      // PN: case-insensitive (C.2.2.2.1 allows it), whole value
      expect(uidsOf(await studies('PatientName=compressedsamples%5Ect1'))).toEqual([CT.study]);
      expect(uidsOf(await studies('PatientName=SMITH%5EJOHN'))).toEqual([LOWER.study]);
      await json('/studies?PatientName=CompressedSamples%5ECT', 204);
      // trailing empty components are not significant: "OB^^^^"
      expect(uidsOf(await studies('PatientName=ob'))).toEqual([U.get('OBXXXX1A')!.study]);
      // keys as tags
      expect(uidsOf(await studies('00100020=1CT1'))).toEqual([CT.study]);
      expect(uidsOf(await studies('00100020=1CT1&0020000d=' + CT.study))).toEqual([CT.study]);
    });

    test('universal matching: an empty value matches all and returns the attribute', async () => {
      const list = await studies('PatientName=&StudyDescription=');
      expect(list.length).toBe(allStudies.size);
      const emri = list.find((d) => v(d, '0020000D') === U.get('emri_small')!.study)!;
      expect(emri['00100010']).toEqual({ vr: 'PN' }); // no Patient Name in that file
      expect((await studies('PatientName=*')).length).toBe(allStudies.size);
    });

    test('wildcards * and ?', async () => {
      const compressed = [CT, NM, RG3, U.get('MR_small')!, U.get('US1_UNCR')!].map((f) => f.study).sort();
      expect(uidsOf(await studies('PatientName=Compressed*')).sort()).toEqual(compressed);
      expect(uidsOf(await studies('PatientName=compressedsamples%5E%3FR1'))).toEqual([U.get('MR_small')!.study]);
      expect(uidsOf(await studies('PatientName=*%5ECT%3F'))).toEqual([CT.study]);
      await json('/studies?PatientName=Compressed%3F', 204);
      // non-PN wildcards are case-sensitive
      expect(uidsOf(await studies('AccessionNumber=FUJI*'))).toEqual([RG3.study]);
      await json('/studies?AccessionNumber=fuji*', 204);
      expect(uidsOf(await studies('StudyDescription=*fibroma*'))).toEqual([RG3.study]);
      await json('/studies?StudyDescription=*Fibroma*', 204);
    });

    test('date and time ranges', async () => {
      const in2004 = [CT, NM, RG3, U.get('MR_small')!, U.get('US1_UNCR')!].map((f) => f.study).sort();
      expect(uidsOf(await studies('StudyDate=20040101-20041231')).sort()).toEqual(in2004);
      expect(uidsOf(await studies('StudyDate=2004')).sort()).toEqual(in2004);
      expect(uidsOf(await studies('StudyDate=20040826')).length).toBe(4);
      await json('/studies?StudyDate=20040827', 204);
      expect(uidsOf(await studies('StudyDate=20040120-20040826')).sort()).toEqual(in2004.filter((u) => u !== CT.study));
      const since2005 = await studies('StudyDate=2005-');
      expect(since2005.map((d) => v(d, '00080020'))).toEqual(['20220101', '20210315', '20190124', '20170101', '20110525', '20061219', '20051130']);
      const upTo = await studies('StudyDate=-20030731');
      expect(upTo.every((d) => v(d, '00080020') <= '20030731')).toBe(true);
      expect(uidsOf(upTo)).toEqual(expect.arrayContaining([U.get('rtplan')!.study, U.get('liver_1frame')!.study, U.get('emri_small')!.study]));
      expect(uidsOf(upTo)).not.toContain(U.get('badVR')!.study); // 20030805
      // TM: 18:00 to 19:00 covers the four 185059 studies only
      expect((await studies('StudyTime=1800-1900')).length).toBe(4);
      expect(uidsOf(await studies('StudyTime=0727'))).toEqual([CT.study]);
      await json('/studies?StudyTime=0728-0800', 204);
      // date and time together (each matched on its own)
      expect(uidsOf(await studies('StudyDate=20040119&StudyTime=07-08'))).toEqual([CT.study]);
    });

    test('list of UID matching: comma, backslash, repeated parameter', async () => {
      const two = [CT.study, RG3.study].sort();
      expect(uidsOf(await studies(`StudyInstanceUID=${CT.study},${RG3.study}`)).sort()).toEqual(two);
      expect(uidsOf(await studies(`StudyInstanceUID=${CT.study}%5C${RG3.study}`)).sort()).toEqual(two);
      expect(uidsOf(await studies(`StudyInstanceUID=${CT.study}&StudyInstanceUID=${RG3.study}`)).sort()).toEqual(two);
      await json('/studies?StudyInstanceUID=1.2.3.4,1.2.3.5', 204);
      const inst = await json(`/instances?SOPInstanceUID=${CT.instance},${NM.instance}`);
      expect(uidsOf(inst, '00080018').sort()).toEqual([CT.instance, NM.instance].sort());
    });

    test('keys of lower levels at the study level match through the series / instances', async () => {
      expect(uidsOf(await studies('Modality=SR')).sort()).toEqual([CT.study, U.get('test-SR')!.study].sort());
      await json('/studies?Modality=PT', 204);
      expect(uidsOf(await studies(`SOPInstanceUID=${NM.instance}`))).toEqual([NM.study]);
      expect(uidsOf(await studies('SOPClassUID=1.2.840.10008.5.1.4.1.1.88.22'))).toEqual([CT.study]);
      // an attribute kept only on instances (json_each over the instance attrs)
      const manufacturer = v(parseDicomFile(path.join(CORPUS, 'dicom', 'CT_small.dcm')).dataset, '00080070') as string;
      expect(uidsOf(await studies(`Manufacturer=${encodeURIComponent(manufacturer)}`))).toContain(CT.study);
      await json('/studies?Manufacturer=NoSuchMaker', 204);
      // ImageType is multi-valued: any value matches
      expect(uidsOf(await json('/instances?ImageType=AXIAL'), '00080018')).toContain(CT.instance);
    });

    test('ModalitiesInStudy matches any modality of the study', async () => {
      expect(uidsOf(await studies('ModalitiesInStudy=SR')).sort()).toEqual([CT.study, U.get('test-SR')!.study].sort());
      const ct = uidsOf(await studies('ModalitiesInStudy=CT'));
      expect(ct).toEqual(expect.arrayContaining([CT.study, U.get('693_J2KR')!.study, U.get('eCT_Supplemental')!.study]));
      expect(ct).not.toContain(NM.study);
      expect(uidsOf(await studies('ModalitiesInStudy=SR,NM')).sort()).toEqual([CT.study, NM.study, U.get('test-SR')!.study].sort());
      expect(uidsOf(await studies('ModalitiesInStudy=S*'))).toEqual(expect.arrayContaining([CT.study, U.get('liver_1frame')!.study]));
      await json('/studies?ModalitiesInStudy=PT', 204);
    });

    test('series and instance keys', async () => {
      const series = await json('/series?Modality=NM');
      expect(uidsOf(series, '0020000E')).toEqual([NM.series]);
      expect(uidsOf(await json(`/series?PatientID=1CT1`), '0020000E')).toEqual([CT.series, SR.series]);
      expect(uidsOf(await json(`/studies/${CT.study}/series?Modality=SR`), '0020000E')).toEqual([SR.series]);
      await json(`/studies/${CT.study}/series?Modality=NM`, 204);
      expect((await json(`/studies/${NM.study}/instances?InstanceNumber=4`)).map((d) => v(d, '00080018'))).toEqual([NM.instance]);
      await json(`/studies/${NM.study}/instances?InstanceNumber=7`, 204);
      expect(uidsOf(await json('/series?SeriesNumber=2'), '0020000E')).toContain(SR.series);
      expect(uidsOf(await json('/instances?Rows=128&Columns=128'), '00080018')).toContain(CT.instance);
    });

    test('fuzzymatching: case and accents ignored, name components matched by prefix', async () => {
      await json('/studies?PatientName=muller', 204);
      await json('/studies?PatientName=MULLER*', 204); // literal matching keeps accents
      expect(uidsOf(await studies('PatientName=m%C3%BCller*'))).toEqual([ACCENTED.study]); // and ignores case
      expect(uidsOf(await studies('PatientName=muller&fuzzymatching=true'))).toEqual([ACCENTED.study]);
      expect(uidsOf(await studies('PatientName=jose&fuzzymatching=true'))).toEqual([ACCENTED.study]);
      expect(uidsOf(await studies('PatientName=jos%20mul&fuzzymatching=true'))).toEqual([ACCENTED.study]);
      expect(uidsOf(await studies('ReferringPhysicianName=zoe&fuzzymatching=true'))).toEqual([ACCENTED.study]);
      expect(uidsOf(await studies('ReferringPhysicianName=NUNEZ%5EZOE&fuzzymatching=true'))).toEqual([ACCENTED.study]);
      // "firstn" begins the second component of "Lastname^Firstname"
      expect(uidsOf(await studies('PatientName=firstn&fuzzymatching=true'))).toEqual([U.get('badVR')!.study]);
      await json('/studies?PatientName=irstname&fuzzymatching=true', 204);
      await json('/studies?PatientName=mullerx&fuzzymatching=true', 204);
      const jo = uidsOf(await studies('PatientName=jo&fuzzymatching=true'));
      expect(jo).toEqual(expect.arrayContaining([ACCENTED.study, LOWER.study]));
      expect(jo).not.toContain(CT.study);
    });
  });

  describe('includefield, limit and offset', () => {
    test('includefield adds stored attributes: comma list, repeated, tags', async () => {
      const q = `StudyInstanceUID=${CT.study}`;
      const [plain] = await studies(q);
      expect(plain['00101010']).toBeUndefined();
      const [a] = await studies(`${q}&includefield=PatientAge,PatientWeight`);
      expect(a['00101010']).toEqual({ vr: 'AS', Value: ['000Y'] });
      expect(a['00101030']).toEqual({ vr: 'DS', Value: [0] });
      const [b] = await studies(`${q}&includefield=00101010&includefield=PatientWeight`);
      expect(b['00101010']).toEqual(a['00101010']);
      expect(b['00101030']).toEqual(a['00101030']);
      // an attribute the study does not have: zero length, as a C-FIND response would return it
      const [c] = await studies(`${q}&includefield=IssuerOfPatientID`);
      expect(c['00100021']).toEqual({ vr: 'LO' });
      const [inst] = await json(`/studies/${CT.study}/series/${CT.series}/instances?includefield=ImageType`);
      expect(vals(inst, '00080008')).toEqual(['ORIGINAL', 'PRIMARY', 'AXIAL']);
    });

    test('includefield=all returns everything stored for the level', async () => {
      const ds = parseDicomFile(path.join(CORPUS, 'dicom', 'CT_small.dcm')).dataset;
      const [inst] = await json(`/studies/${CT.study}/series/${CT.series}/instances?includefield=all`);
      for (const tag of Object.keys(searchable(ds))) expect(inst[tag]).toEqual(ds[tag]);
      expect(inst['7FE00010']).toBeUndefined();
      expect(v(inst, '00081190')).toBe(`${PUBLIC}/studies/${CT.study}/series/${CT.series}/instances/${CT.instance}`);
      const [study] = await studies(`StudyInstanceUID=${CT.study}&includefield=all`);
      expect(study['00101010']).toEqual({ vr: 'AS', Value: ['000Y'] });
      expect(study['00280010']).toBeUndefined(); // an instance attribute
    });

    test('limit and offset page through the same order', async () => {
      const all = uidsOf(await json('/studies'));
      const pages: string[] = [];
      for (let offset = 0; offset < all.length; offset += 7) {
        const page = uidsOf(await studies(`limit=7&offset=${offset}`));
        expect(page.length).toBe(Math.min(7, all.length - offset));
        pages.push(...page);
      }
      expect(pages).toEqual(all);
      await json(`/studies?offset=${all.length}`, 204);
      expect(uidsOf(await studies('limit=1'))).toEqual([all[0]]);
      await json('/studies?limit=0', 204);
    });
  });

  describe('errors and negotiation', () => {
    test.each([
      ['StudyDate=20201301', /StudyDate/],
      ['StudyDate=2020-01-01', /StudyDate/],
      ['StudyDate=2020*', /StudyDate/],
      ['StudyTime=2500', /StudyTime/],
      ['StudyInstanceUID=1.2.abc', /not a valid UID/],
      ['StudyInstanceUID=1.2.*', /wildcards/],
      ['NumberOfStudyRelatedInstances=many', /whole number/],
      ['PatientID=1&PatientID=2', /more than once/],
      ['PatientID=1&00100020=2', /more than once/],
      ['limit=-1', /limit/], ['limit=abc', /limit/], ['limit=1.5', /limit/], ['offset=x', /offset/],
      ['limit=1&limit=2', /limit/],
      ['fuzzymatching=yes', /fuzzymatching/],
      ['includefield=', /includefield/],
      ['PatientName[x]=1', /malformed/],
    ])('400 for %s', async (q, reason) => {
      const res = await get(`/studies?${q}`);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text).error).toMatch(reason);
    });

    // PS3.18 8.3: parameters the server does not support are ignored, and named in a Warning header.
    test.each([
      ['Foo=1', /Foo/], ['0010001G=1', /0010001G/], ['00990010=1', /unknown attribute tag/],
      ['ReferencedSeriesSequence.SeriesInstanceUID=1.2', /sequence/], ['ReferencedSeriesSequence=1', /sequence matching/],
      ['includefield=NoSuchAttribute', /NoSuchAttribute/],
    ])('ignored with a Warning: %s', async (q, warning) => {
      const all = await get('/studies');
      const res = await get(`/studies?${q}`);
      expect(res.status).toBe(200);
      expect(res.headers.warning).toMatch(/^299 /);
      expect(res.headers.warning).toMatch(warning);
      expect(JSON.parse(res.text).length).toBe(JSON.parse(all.text).length);
    });

    test('400 for malformed UIDs in the path', async () => {
      expect((await get('/studies/1.2.x/series')).status).toBe(400);
      expect((await get(`/studies/${CT.study}/series/abc/instances`)).status).toBe(400);
    });

    test('406 unless DICOM JSON (or JSON, or anything) is acceptable', async () => {
      expect((await get('/studies?limit=1', 'application/dicom+xml')).status).toBe(406);
      expect((await get('/studies?limit=1', 'multipart/related; type="application/dicom+xml"')).status).toBe(406);
      expect((await get('/series?limit=1', 'image/png')).status).toBe(406);
      for (const a of ['application/dicom+json', 'application/json', '*/*', 'application/*', 'image/png, application/dicom+json;q=0.5']) {
        expect((await get('/studies?limit=1', a)).status).toBe(200);
      }
      expect((await get('/studies?limit=1')).status).toBe(200);
      // PS3.18 8.3.3.1: the accept query parameter
      expect((await get('/studies?limit=1&accept=application/dicom%2Bxml')).status).toBe(406);
      expect((await get('/studies?limit=1&accept=application/dicom%2Bjson', 'image/png')).status).toBe(200);
    });

    test('keys accepted but not acted on are named in a Warning header', async () => {
      const res = await get('/studies?limit=1&RetrieveURL=x&emptyvaluematching=true');
      expect(res.status).toBe(200);
      const warning = String(res.headers.warning);
      expect(warning).toMatch(/^299 [^:]+: The RetrieveURL query key is not supported\./);
      expect(warning).toMatch(/The emptyvaluematching parameter is not supported\./);
      expect((await get('/studies?limit=1')).headers.warning).toBeUndefined();
    });
  });
});

describe('parseQidoQuery', () => {
  const parse = (raw: Record<string, unknown>) => parseQidoQuery('study', raw);
  test.each([
    ['StudyDate', '20200101-20201231', { kind: 'range', from: '20200101', to: '20201231' }],
    ['StudyDate', '-2020', { kind: 'range', from: undefined, to: '20209999' }],
    ['StudyDate', '2020-', { kind: 'range', from: '2020', to: undefined }],
    ['StudyDate', '20200102', { kind: 'single', value: '20200102' }],
    ['StudyTime', '1015', { kind: 'range', from: '1015', to: '101599.999999' }],
    ['StudyTime', '101500.25-', { kind: 'range', from: '101500.25', to: undefined }],
    ['AcquisitionDateTime', '2020-2021', { kind: 'range', from: '2020', to: '20219999999999.999999' }],
    ['AcquisitionDateTime', '20200101120000-0500-', { kind: 'range', from: '20200101120000', to: undefined }],
    ['AcquisitionDateTime', '-20200101120000+0100', { kind: 'range', from: undefined, to: '20200101120000.999999' }],
    ['PatientName', 'SMITH*', { kind: 'wildcard', pattern: 'SMITH*' }],
    ['PatientName', '*', { kind: 'universal' }],
    ['StudyInstanceUID', '1.2,1.3\\1.4', { kind: 'list', values: ['1.2', '1.3', '1.4'] }],
    ['NumberOfStudyRelatedSeries', '3', { kind: 'single', value: 3 }],
  ])('%s=%s', (key, value, matcher) => {
    expect(parse({ [key]: value }).match[0].matcher).toEqual(matcher);
  });

  test('parameters', () => {
    const q = parse({ limit: '10', offset: '20', fuzzymatching: 'true', includefield: ['PatientAge,00101030', 'all'] });
    expect(q).toMatchObject({ limit: 10, offset: 20, fuzzymatching: true, includefield: 'all', match: [] });
    expect(parse({ includefield: 'PatientAge,00101030' }).includefield).toEqual(['00101010', '00101030']);
    expect(() => parse({ StudyDate: '20200230x' })).toThrow(QidoQueryError);
  });

  test('person name rule', () => {
    expect(personNameMatches('Smith^John', 'smith^john', false)).toBe(true);
    expect(personNameMatches('Smith^John', 'smith', false)).toBe(false);
    expect(personNameMatches('Smith^John^^', 'SMITH^JOHN', false)).toBe(true);
    expect(personNameMatches('Smith^John', 'jo', true)).toBe(true);
    expect(personNameMatches('Smith^John', 'oh', true)).toBe(false);
    expect(personNameMatches('Ærø^Ångström', 'angstr', true)).toBe(true);
    expect(personNameMatches(null, '*', false)).toBe(false);
  });
});

describe('QIDO-RS on 100,000 instances', () => {
  let dir: string;
  let index: SqliteIndex;
  let app: express.Express;
  let plan: BigStudy[];
  const order = (a: BigStudy, b: BigStudy) =>
    (a.studyDate !== b.studyDate ? (a.studyDate < b.studyDate ? 1 : -1) : 0)
    || (a.studyTime !== b.studyTime ? (a.studyTime < b.studyTime ? 1 : -1) : 0)
    || (a.uid < b.uid ? -1 : a.uid > b.uid ? 1 : 0);

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qido-big-'));
    index = new SqliteIndex(dir);
    plan = bigPlan();
    expect(buildBigIndex(index.db, plan)).toBe(100_000);
    app = makeApp(index);
  });
  afterAll(() => {
    index.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const page = async (q: string) => {
    const res = await request(app).get(`/dicom-web/studies?${q}`);
    expect(res.status).toBe(200);
    return JSON.parse(res.text) as JsonDataset[];
  };

  test('PatientName=SMITH* (limit 100): the first hundred of the expected set, in order', async () => {
    const expected = plan.filter((s) => s.patientName.startsWith('SMITH')).sort(order);
    expect(expected.length).toBeGreaterThan(300);
    const got = await page('PatientName=SMITH*&limit=100');
    expect(uidsOf(got)).toEqual(expected.slice(0, 100).map((s) => s.uid));
    const second = await page('PatientName=SMITH*&limit=100&offset=100');
    expect(uidsOf(second)).toEqual(expected.slice(100, 200).map((s) => s.uid));
    const all = searchStudies(index.db, parseQidoQuery('study', { PatientName: 'SMITH*' }));
    expect(uidsOf(all)).toEqual(expected.map((s) => s.uid));
  });

  test('StudyDate=20200101-20201231 (limit 100)', async () => {
    const expected = plan.filter((s) => s.studyDate >= '20200101' && s.studyDate <= '20201231').sort(order);
    const got = await page('StudyDate=20200101-20201231&limit=100');
    expect(uidsOf(got)).toEqual(expected.slice(0, 100).map((s) => s.uid));
    expect(got.every((d) => v(d, '00201208') === 10 && v(d, '00201206') === 2)).toBe(true);
    expect(countMatches(index.db, parseQidoQuery('study', { StudyDate: '20200101-20201231' }))).toBe(expected.length);
  });

  test('no keys, ModalitiesInStudy, fuzzy names, patient ID', async () => {
    expect(uidsOf(await page('limit=100'))).toEqual([...plan].sort(order).slice(0, 100).map((s) => s.uid));
    const pt = plan.filter((s) => s.modalities.includes('PT')).sort(order);
    expect(uidsOf(await page('ModalitiesInStudy=PT&limit=100'))).toEqual(pt.slice(0, 100).map((s) => s.uid));
    const jose = plan.filter((s) => s.patientName.endsWith('^JOSÉ')).sort(order);
    expect(uidsOf(await page('PatientName=jose&fuzzymatching=true&limit=100'))).toEqual(jose.slice(0, 100).map((s) => s.uid));
    const p = plan.filter((s) => s.patientID === 'P001234').sort(order);
    expect(uidsOf(await page('PatientID=P001234'))).toEqual(p.map((s) => s.uid));
    expect(countMatches(index.db, parseQidoQuery('study', {}))).toBe(10_000);
  });

  test('more results than the server returns at once: capped, with a Warning (PS3.18 8.3.4.4)', async () => {
    const res = await request(app).get('/dicom-web/series');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).length).toBe(QIDO_MAX_RESULTS);
    expect(res.headers.warning).toMatch(new RegExp(`^299 [^:]+: There are ${20_000 - QIDO_MAX_RESULTS} additional results that can be requested\\.$`));
    const rest = await request(app).get(`/dicom-web/series?offset=${QIDO_MAX_RESULTS + 5000}`);
    expect(JSON.parse(rest.text).length).toBe(20_000 - QIDO_MAX_RESULTS - 5000);
    expect(rest.headers.warning).toBeUndefined();
  });

  test('ensureQidoIndexes: Referring Physician Name prefix searches use the new index', () => {
    const q = parseQidoQuery('study', { ReferringPhysicianName: 'NUNEZ*' });
    expect(explainSearch(index.db, q).join('\n')).not.toMatch(/qido_studies_referring/);
    ensureQidoIndexes(index.db);
    ensureQidoIndexes(index.db); // idempotent
    expect(explainSearch(index.db, q).join('\n')).toMatch(/USING INDEX studies_referring/);
    expect(searchStudies(index.db, q)).toEqual([]);
  });

  test('series and instances of one study', async () => {
    const s = plan[4321];
    const series = JSON.parse((await request(app).get(`/dicom-web/studies/${s.uid}/series`)).text) as JsonDataset[];
    expect(series.map((d) => v(d, '00080060'))).toEqual(s.modalities);
    expect(series.map((d) => v(d, '00201209'))).toEqual([5, 5]);
    const inst = JSON.parse((await request(app).get(`/dicom-web/studies/${s.uid}/instances?ImageType=LOCALIZER`)).text) as JsonDataset[];
    expect(uidsOf(inst, '00080018')).toEqual([`${s.uid}.1.1`, `${s.uid}.2.1`]);
  });
});

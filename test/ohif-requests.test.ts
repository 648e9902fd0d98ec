/**
 * The requests OHIF v3 (@ohif/app 3.13, DICOMweb data source, imageRendering 'wadors', thumbnailRendering
 * 'rendered') makes, byte for byte as e2e/ohif.e2e.ts recorded them in test-output/e2e/requests.log, replayed
 * with supertest so that a server change that would break the viewer fails here without a browser. Plus the
 * Accept variants OHIF's generateAcceptHeader produces with other settings (quoted parameters when
 * omitQuotationForMultipartRequest is false, a named requestTransferSyntaxUID), and CORS as the viewer, served
 * from another origin, needs it.
 */
import * as fs from 'fs';
import request from 'supertest';
import { startServer, TestServer, corpusFile, multipartBody, parseMultipartResponse, binaryParser } from './helpers/server';

const VIEWER = 'http://127.0.0.1:3000';
const CT = { study: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322', series: '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322', sop: '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322' };
const J2K = { study: '1.2.276.0.7230010.3.1.2.296485376.1.1521713414.1800996', series: '1.2.276.0.7230010.3.1.3.296485376.1.1521713419.1802493', sop: '1.2.276.0.7230010.3.1.4.296485376.1.1521713419.1802510' };
const EMRI = { study: '1.2.826.0.1.3680043.2.1143.3365540476747857567072393009509418480', series: '1.2.826.0.1.3680043.2.1143.3712364435022872412969836992152438492', sop: '1.2.826.0.1.3680043.2.1143.6455556726214900995651753669640998622' };
const PAL = { study: '1.2.999999.9.1.4.2', series: '1.2.999999.9.1.5.2', sop: '1.2.999999.9.1.6.2' };
const instanceUrl = (u: { study: string; series: string; sop: string }) => `/dicom-web/studies/${u.study}/series/${u.series}/instances/${u.sop}`;
/** The study list's includefield: StudyDescription, ModalitiesInStudy, ReferringPhysicianName, PatientBirthDate. */
const LIST = 'limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060%2C00080090%2C00100030';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({ corsOrigins: [VIEWER] });
  const { body, contentType } = multipartBody(['CT_small', 'MR_small', 'emri_small', '693_J2KR', 'OT-PAL-8-face', 'SC_rgb']
    .map((f) => fs.readFileSync(corpusFile(f))));
  const res = await request(srv.app).post('/dicom-web/studies').set('Content-Type', contentType).set('Accept', 'application/dicom+json').send(body);
  expect([200, 202]).toContain(res.status);
  expect(res.body['00081198']).toBeUndefined();
});
afterAll(async () => { await srv.stop(); });

const get = (url: string, accept: string) => request(srv.app).get(url).set('Accept', accept).set('Origin', VIEWER).buffer(true).parse(binaryParser);
const json = (res: { body: Buffer }) => JSON.parse(res.body.toString('utf8'));
const names = (studies: any[]) => studies.map((s) => s['00100010']?.Value?.[0]?.Alphabetic ?? '').sort();

describe('QIDO-RS as the OHIF study list sends it', () => {
  test('the study list: limit, offset, fuzzymatching=false, includefield', async () => {
    const res = await get(`/dicom-web/studies?${LIST}`, 'application/dicom+json');
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(VIEWER);
    const studies = json(res);
    expect(studies).toHaveLength(6);
    const ct = studies.find((s: any) => s['0020000D'].Value[0] === CT.study);
    expect(ct['00081030'].Value).toEqual(['e+1']);
    expect(ct['00080061'].Value).toEqual(['CT']);
    expect(ct['00201208'].Value).toEqual([1]); // NumberOfStudyRelatedInstances: the list's instance column
    expect(ct['00080020'].Value).toEqual(['20040119']);
  });

  test.each([
    // URL filters of the study list (?patientName=compressedsamples&modalities=CT ...) as OHIF's mapParams sends them
    ['PatientName=*compressedsamples*&ModalitiesInStudy=CT', ['CompressedSamples^CT1']],
    ['00100020=*4MR1*', ['CompressedSamples^MR1']],
    ['00100020=ID1', ['Lestrade^G']],
    ['ModalitiesInStudy=MR&StudyDate=20000101-20041231', ['', 'CompressedSamples^MR1']],
    ['ModalitiesInStudy=OT%2CCT', ['Anonymized', 'CQ500-CT-310', 'CompressedSamples^CT1', 'Lestrade^G']],
    ['StudyDescription=*e%2B1*', ['CompressedSamples^CT1']],
    [`StudyInstanceUID=${CT.study}`, ['CompressedSamples^CT1']],
  ])('filter %s', async (filter, expected) => {
    const res = await get(`/dicom-web/studies?${filter}&${LIST}`, 'application/dicom+json');
    expect(res.status).toBe(200);
    expect(names(json(res))).toEqual(expected);
  });

  test('no match: 204, which OHIF shows as an empty list', async () => {
    const res = await get(`/dicom-web/studies?PatientName=*nobody*&${LIST}`, 'application/dicom+json');
    expect(res.status).toBe(204);
  });

  test('series of a study, with the includefields of the study panel and of the viewer', async () => {
    for (const fields of ['0008103E%2C00080021', '00080021%2C00080031%2C0008103E%2C00200011']) {
      const res = await get(`/dicom-web/studies/${EMRI.study}/series?includefield=${fields}`, 'application/dicom+json');
      expect(res.status).toBe(200);
      const [series] = json(res);
      expect(series['0020000E'].Value).toEqual([EMRI.series]);
      expect(series['00080060'].Value).toEqual(['MR']);
      expect(series['00201209'].Value).toEqual([1]);
    }
  });
});

describe('WADO-RS as the OHIF viewer sends it', () => {
  test('series metadata, with BulkDataURIs the viewer can fetch from its origin', async () => {
    const res = await get(`/dicom-web/studies/${PAL.study}/series/${PAL.series}/metadata`, 'application/dicom+json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/dicom\+json/);
    const [md] = json(res);
    expect(md['00281201'].BulkDataURI).toMatch(new RegExp(`^http://[^/]+${instanceUrl(PAL)}/bulkdata/00281201$`));
  });

  test('palette LUT bulk data: Accept multipart/related; type="application/octet-stream"', async () => {
    const res = await get(`${instanceUrl(PAL)}/bulkdata/00281201`, 'multipart/related; type="application/octet-stream"');
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts).toHaveLength(1);
    expect(parts[0].body.length).toBe(400); // LUT Descriptor 200\0\16: 200 entries of 16 bits
  });

  // generateAcceptHeader(): omitQuotationForMultipartRequest true (our app-config) and false (OHIF's default),
  // with and without a named requestTransferSyntaxUID.
  const ANY_TS = [
    'multipart/related; type=application/octet-stream; transfer-syntax=*',
    'multipart/related; type="application/octet-stream"; transfer-syntax="*"',
  ];

  test.each(ANY_TS)('native frame, Accept %s: the stored bytes, little endian', async (accept) => {
    const res = await get(`${instanceUrl(CT)}/frames/1`, accept);
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts).toHaveLength(1);
    expect(parts[0].headers['content-type']).toMatch(/^application\/octet-stream; transfer-syntax=1\.2\.840\.10008\.1\.2\.1$/);
    expect(parts[0].body.length).toBe(128 * 128 * 2);
  });

  test.each(ANY_TS)('JPEG 2000 frame, Accept %s: the compressed frame as stored, its transfer syntax named', async (accept) => {
    const res = await get(`${instanceUrl(J2K)}/frames/1`, accept);
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts[0].headers['content-type']).toBe('application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.90');
    expect(parts[0].body.subarray(0, 4).toString('hex')).toBe('ff4fff51'); // J2K codestream: SOC, SIZ
  });

  test.each([
    ['multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1', 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1'],
    ['multipart/related; type="image/jp2"; transfer-syntax="1.2.840.10008.1.2.4.90"', 'image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90'],
  ])('JPEG 2000 frame with a named transfer syntax, Accept %s', async (accept, partType) => {
    const res = await get(`${instanceUrl(J2K)}/frames/1`, accept);
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts[0].headers['content-type']).toBe(partType);
  });

  test('every frame of a multi-frame instance, one request each', async () => {
    for (let n = 1; n <= 10; n++) {
      const res = await get(`${instanceUrl(EMRI)}/frames/${n}`, ANY_TS[0]);
      expect(res.status).toBe(200);
      expect(parseMultipartResponse(res.body, res.headers['content-type'])[0].body.length).toBe(64 * 64 * 2);
    }
  });

  // thumbnailRendering 'rendered': retrieve.bulkDataURI with ?accept=image/jpeg and the bulk data Accept header;
  // the query parameter wins (PS3.18 8.3.3.1).
  test('instance rendered thumbnail: ?accept=image/jpeg with Accept multipart/related; type="application/octet-stream"', async () => {
    const res = await get(`${instanceUrl(CT)}/rendered?accept=image%2Fjpeg`, 'multipart/related; type="application/octet-stream"');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^image\/jpeg/);
    expect(res.body.subarray(0, 2).toString('hex')).toBe('ffd8');
  });

  test('series rendered thumbnail, same request', async () => {
    const res = await get(`/dicom-web/studies/${CT.study}/series/${CT.series}/rendered?accept=image%2Fjpeg`, 'multipart/related; type="application/octet-stream"');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/image\/jpeg/);
  });
});

describe('CORS for a viewer served from another origin', () => {
  const preflight = (app: any, origin: string) => request(app)
    .options(`${instanceUrl(CT)}/frames/1`)
    .set('Origin', origin)
    .set('Access-Control-Request-Method', 'GET')
    .set('Access-Control-Request-Headers', 'accept');

  test('a preflight from an allowed origin succeeds and names the origin, methods and headers', async () => {
    const res = await preflight(srv.app, VIEWER);
    expect(res.status).toBeLessThan(300);
    expect(res.headers['access-control-allow-origin']).toBe(VIEWER);
    expect(res.headers['access-control-allow-methods']).toMatch(/GET/);
    expect(res.headers['access-control-allow-headers']).toMatch(/accept/i);
  });

  test('a preflight from another origin gets no CORS headers', async () => {
    const res = await preflight(srv.app, 'http://evil.example');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect(res.headers['access-control-allow-methods']).toBeUndefined();
  });

  test('by default no origin is allowed', async () => {
    const plain = await startServer();
    try {
      const res = await preflight(plain.app, VIEWER);
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      const get = await request(plain.app).get('/dicom-web/studies').set('Origin', VIEWER).set('Accept', 'application/dicom+json');
      expect(get.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await plain.stop();
    }
  });

  test('--cors-origins on the command line allows exactly those origins', async () => {
    const flagged = await startServer({}, ['--cors-origins', `${VIEWER},http://other.example`]);
    try {
      expect((await preflight(flagged.app, 'http://other.example')).headers['access-control-allow-origin']).toBe('http://other.example');
      expect((await preflight(flagged.app, 'http://third.example')).headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await flagged.stop();
    }
  });
});

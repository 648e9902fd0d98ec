/**
 * STOW-RS and WADO-RS through real HTTP with the real corpus: store every file, then read metadata, retrieve
 * instances byte-identical, fetch bulk data and every frame; plus the duplicate rule and the error statuses.
 */
import * as fs from 'fs';
import request from 'supertest';
import { startServer, TestServer, corpusFile, multipartBody, parseMultipartResponse, binaryParser, readUids, CORPUS } from './helpers/server';
import { parseDicomFile } from '../dicom/parse';

let srv: TestServer;
beforeAll(async () => { srv = await startServer(); });
afterAll(async () => { await srv.stop(); });

const stow = (files: Buffer[], url = '/dicom-web/studies') => {
  const { body, contentType } = multipartBody(files);
  return request(srv.app).post(url).set('Content-Type', contentType).set('Accept', 'application/dicom+json').send(body);
};

const uidsByFile = new Map(readUids().map((u) => [u.file, u]));
const files = fs.readdirSync(`${CORPUS}/dicom`).filter((f) => f.endsWith('.dcm')).sort();

describe('STOW-RS', () => {
  const stored = new Map<string, string>(); // SOP Instance UID -> file stored first

  test('stores every corpus file once; twins with other bytes are refused by the duplicate rule', async () => {
    for (const f of files) {
      const name = f.replace(/\.dcm$/, '');
      const res = await stow([fs.readFileSync(corpusFile(f))]);
      const u = uidsByFile.get(name)!;
      const failed = res.body['00081198']?.Value ?? [];
      const ok = res.body['00081199']?.Value ?? [];
      if (['MR_truncated', 'no_meta'].includes(name)) { // truncated; no meta and no valid dataset start
        expect(res.status).toBe(409);
        expect(failed[0]['00081197'].Value[0]).toBe(0xc000);
        continue;
      }
      if (!u.study || !u.instance) {
        // JLSL_*: no Study/SOP Instance UID in the file: cannot be indexed
        expect(res.status).toBe(409);
        expect(failed[0]['00081197'].Value[0]).toBe(0xa900);
        continue;
      }
      if (stored.has(u.instance)) {
        expect(res.status).toBe(409);
        expect(failed[0]['00081197'].Value[0]).toBe(0x0111);
        expect(failed[0]['00081155'].Value[0]).toBe(u.instance);
        continue;
      }
      expect([200, 202]).toContain(res.status);
      expect(ok).toHaveLength(1);
      expect(ok[0]['00081155'].Value[0]).toBe(u.instance);
      expect(ok[0]['00081190'].Value[0]).toMatch(new RegExp(`/dicom-web/studies/${u.study}/series/${u.series}/instances/${u.instance}$`));
      if (name === 'OT-PAL-8-face') expect(ok[0]['00081196'].Value[0]).toBe(0xb000); // header added: coercion warning
      stored.set(u.instance, name);
    }
    expect(stored.size).toBeGreaterThan(20);
  });

  test('the whole corpus in one request (parts ingested while the body streams) gives each part the outcome it gets alone, in order', async () => {
    const fresh = await startServer();
    try {
      const { body, contentType } = multipartBody(files.map((f) => fs.readFileSync(corpusFile(f))));
      const res = await request(fresh.app).post('/dicom-web/studies').set('Content-Type', contentType).set('Accept', 'application/dicom+json').send(body);
      expect(res.status).toBe(202);
      const ok: string[] = (res.body['00081199']?.Value ?? []).map((i: any) => i['00081155'].Value[0]);
      // stored (above, one request per file, in this order) is exactly what the single request stored, in part order
      expect(ok).toEqual([...stored.keys()]);
      const failed = res.body['00081198'].Value as any[];
      expect(failed).toHaveLength(files.length - stored.size);
      const twins = failed.filter((i) => i['00081197'].Value[0] === 0x0111).map((i) => i['00081155'].Value[0]);
      for (const t of twins) expect(stored.has(t)).toBe(true); // the later twin is refused, the first part kept
      for (const [sop, name] of stored) {
        const r = await request(fresh.app).get(`/dicom-web/studies/${uidsByFile.get(name)!.study}/series/${uidsByFile.get(name)!.series}/instances/${sop}`)
          .set('Accept', 'multipart/related; type="application/dicom"; transfer-syntax=*').buffer(true).parse(binaryParser);
        expect(r.status).toBe(200);
        const parts = parseMultipartResponse(r.body, r.headers['content-type']);
        // Implicit VR Little Endian and Big Endian are not used by web services (PS3.18 8.7.3): `*` gives Explicit VR Little Endian.
        const webSyntax = !['1.2.840.10008.1.2', '1.2.840.10008.1.2.2'].includes(parseDicomFile(corpusFile(`${name}.dcm`)).transferSyntaxUID);
        expect(parts[0].body.equals(fs.readFileSync(corpusFile(`${name}.dcm`)))).toBe(name !== 'OT-PAL-8-face' && webSyntax); // that one gets a header added
      }
    } finally {
      await fresh.stop();
    }
  });

  test('re-sending identical bytes is a success, not a duplicate', async () => {
    const res = await stow([fs.readFileSync(corpusFile('CT_small'))]);
    expect(res.status).toBe(200);
  });

  test('several parts: 202 when some fail, with both sequences', async () => {
    const res = await stow([fs.readFileSync(corpusFile('CT_small')), Buffer.from('not dicom at all, just text')]);
    expect(res.status).toBe(202);
    expect(res.body['00081199'].Value).toHaveLength(1);
    expect(res.body['00081198'].Value).toHaveLength(1);
  });

  test('study in the URL must match the instance', async () => {
    const res = await stow([fs.readFileSync(corpusFile('CT_small'))], '/dicom-web/studies/1.2.3.4');
    expect(res.status).toBe(409);
    expect(res.body['00081198'].Value[0]['00081197'].Value[0]).toBe(0xa900);
  });

  test('wrong content type is 415, a body without a boundary 400, a bad study UID 400', async () => {
    const a = await request(srv.app).post('/dicom-web/studies').set('Content-Type', 'application/json').send('{}');
    expect(a.status).toBe(415);
    const b = await request(srv.app).post('/dicom-web/studies').set('Content-Type', 'multipart/related; type="application/dicom"; boundary=xyz').send('garbage without delimiter');
    expect(b.status).toBe(400);
    expect(b.body.error).toMatch(/boundary/);
    const c = await request(srv.app).post('/dicom-web/studies/1.2.abc').set('Content-Type', 'multipart/related; type="application/dicom"; boundary=xyz').send('--xyz--');
    expect(c.status).toBe(400);
    const d = await request(srv.app).post('/dicom-web/studies').set('Content-Type', 'multipart/related; type="application/dicom+xml"; boundary=xyz').send('--xyz--');
    expect(d.status).toBe(415);
  });

  test('unquoted type parameter and an odd boundary are accepted', async () => {
    const file = fs.readFileSync(corpusFile('CT_small'));
    const body = Buffer.concat([Buffer.from('preamble text\r\n--a\'b(c)\r\nContent-Type: application/dicom\r\n\r\n'), file, Buffer.from('\r\n--a\'b(c)--\r\n')]);
    const res = await request(srv.app).post('/dicom-web/studies').set('Content-Type', 'multipart/related; type=application/dicom; boundary="a\'b(c)"').send(body);
    expect(res.status).toBe(200);
  });
});

describe('WADO-RS', () => {
  const ct = uidsByFile.get('CT_small')!;
  const instanceUrl = (u: { study: string; series: string; instance: string }) => `/dicom-web/studies/${u.study}/series/${u.series}/instances/${u.instance}`;

  test('instance retrieve returns the stored bytes unchanged', async () => {
    for (const name of ['CT_small', 'MR_small', 'JPEG2000', 'image_dfl', 'emri_small', 'rtplan']) {
      const u = uidsByFile.get(name)!;
      const res = await request(srv.app).get(instanceUrl(u)).set('Accept', 'multipart/related; type="application/dicom"; transfer-syntax=*').buffer(true).parse(binaryParser);
      expect(res.status).toBe(200);
      const parts = parseMultipartResponse(res.body, res.headers['content-type']);
      expect(parts).toHaveLength(1);
      // rtplan is Implicit VR Little Endian, which web services do not use (PS3.18 8.7.3): re-serialised
      expect(parts[0].body.equals(fs.readFileSync(corpusFile(name)))).toBe(name !== 'rtplan');
      if (name === 'rtplan') expect(parts[0].headers['content-type']).toBe('application/dicom; transfer-syntax=1.2.840.10008.1.2.1');
    }
  });

  test('series and study retrieve return every instance', async () => {
    const nm = uidsByFile.get('JPEG2000')!; // JPEG-LL, JPEG2000, JPGExtended share study and series
    const res = await request(srv.app).get(`/dicom-web/studies/${nm.study}/series/${nm.series}`).buffer(true).parse(binaryParser);
    expect(res.status).toBe(200);
    expect(parseMultipartResponse(res.body, res.headers['content-type'])).toHaveLength(3);
    const st = await request(srv.app).get(`/dicom-web/studies/${nm.study}`).buffer(true).parse(binaryParser);
    expect(parseMultipartResponse(st.body, st.headers['content-type'])).toHaveLength(3);
  });

  test('a transfer syntax without a path is 406 (transcoding itself: transcode.test.ts)', async () => {
    // JPEG2000.dcm is lossy (.91): decompressing it is a path, re-encoding it losslessly is not
    const u = instanceUrl(uidsByFile.get('JPEG2000')!);
    expect((await request(srv.app).get(u).set('Accept', 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1')).status).toBe(200);
    expect((await request(srv.app).get(u).set('Accept', 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80')).status).toBe(406);
  });

  test('metadata is DICOM JSON with BulkDataURIs that resolve to the bytes', async () => {
    const res = await request(srv.app).get(`${instanceUrl(ct)}/metadata`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/dicom\+json/);
    const [md] = res.body;
    expect(md['00100010'].Value[0].Alphabetic).toBe('CompressedSamples^CT1');
    expect(md['00280010'].Value[0]).toBe(128);
    const uri: string = md['7FE00010'].BulkDataURI;
    expect(uri).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/dicom-web/studies/${ct.study}/series/${ct.series}/instances/${ct.instance}/bulkdata/7FE00010$`));
    const path = uri.replace(/^https?:\/\/[^/]+/, '');
    const bulk = await request(srv.app).get(path).set('Accept', 'multipart/related; type="application/octet-stream"').buffer(true).parse(binaryParser);
    expect(bulk.status).toBe(200);
    const parts = parseMultipartResponse(bulk.body, bulk.headers['content-type']);
    const p = parseDicomFile(corpusFile('CT_small'));
    const file = fs.readFileSync(corpusFile('CT_small'));
    expect(parts[0].body.equals(file.subarray(p.pixelData!.offset, p.pixelData!.offset + p.pixelData!.length))).toBe(true);
    const series = await request(srv.app).get(`/dicom-web/studies/${ct.study}/series/${ct.series}/metadata`);
    expect(series.body).toHaveLength(1);
    const study = await request(srv.app).get(`/dicom-web/studies/${ct.study}/metadata`);
    expect(study.body).toHaveLength(1);
  });

  test('native frames come back as the stored pixel bytes', async () => {
    const p = parseDicomFile(corpusFile('emri_small'));
    const file = fs.readFileSync(corpusFile('emri_small'));
    const u = uidsByFile.get('emri_small')!;
    const frameBytes = 64 * 64 * 2;
    const res = await request(srv.app).get(`${instanceUrl(u)}/frames/1,3,10`).set('Accept', 'multipart/related; type="application/octet-stream"').buffer(true).parse(binaryParser);
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts.map((x) => x.body.length)).toEqual([frameBytes, frameBytes, frameBytes]);
    [1, 3, 10].forEach((n, i) => {
      const start = p.pixelData!.offset + (n - 1) * frameBytes;
      expect(parts[i].body.equals(file.subarray(start, start + frameBytes))).toBe(true);
    });
  });

  test('compressed frames: as stored when accepted, decoded to octet-stream otherwise', async () => {
    const nm = uidsByFile.get('JPEG2000')!;
    const asStored = await request(srv.app).get(`${instanceUrl(nm)}/frames/1`).set('Accept', 'multipart/related; type="application/octet-stream"; transfer-syntax=*').buffer(true).parse(binaryParser);
    expect(asStored.status).toBe(200);
    const part = parseMultipartResponse(asStored.body, asStored.headers['content-type'])[0];
    expect(part.headers['content-type']).toContain('transfer-syntax=1.2.840.10008.1.2.4.91');
    expect(part.body.readUInt16BE(0)).toBe(0xff4f); // J2K codestream
    const jp2 = await request(srv.app).get(`${instanceUrl(nm)}/frames/1`).set('Accept', 'multipart/related; type="image/jp2"').buffer(true).parse(binaryParser);
    expect(jp2.status).toBe(200);
    expect(jp2.headers['content-type']).toMatch(/type="image\/jp2"/);
    const raw = await request(srv.app).get(`${instanceUrl(nm)}/frames/1`).set('Accept', 'multipart/related; type="application/octet-stream"').buffer(true).parse(binaryParser);
    expect(raw.status).toBe(200);
    const rawPart = parseMultipartResponse(raw.body, raw.headers['content-type'])[0];
    expect(rawPart.headers['content-type']).toContain('transfer-syntax=1.2.840.10008.1.2.1');
    expect(rawPart.body.length).toBe(1024 * 256 * 2);
    const jls = await request(srv.app).get(`${instanceUrl(nm)}/frames/1`).set('Accept', 'multipart/related; type="image/jls"');
    expect(jls.status).toBe(406);
  });

  test('missing resources are 404, malformed ones 400', async () => {
    expect((await request(srv.app).get(`/dicom-web/studies/${ct.study}/series/${ct.series}/instances/1.2.3/metadata`)).status).toBe(404);
    expect((await request(srv.app).get(`/dicom-web/studies/1.2.3/metadata`)).status).toBe(404);
    expect((await request(srv.app).get(`${instanceUrl(ct)}/frames/2`)).status).toBe(404);
    expect((await request(srv.app).get(`${instanceUrl(ct)}/frames/0`)).status).toBe(400);
    expect((await request(srv.app).get(`${instanceUrl(ct)}/frames/x`)).status).toBe(400);
    const bad = await request(srv.app).get(`/dicom-web/studies/..%2F..%2Fetc/metadata`);
    expect(bad.status).toBe(400);
    expect(bad.text).not.toMatch(/at .*\.js/);
    expect((await request(srv.app).get(`${instanceUrl(ct)}/bulkdata/7FE00011`)).status).toBe(404);
  });
});

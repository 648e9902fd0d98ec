/**
 * Lifecycle and resource semantics (issue 15): DELETE of a study, series and instance (index and blob both go,
 * behind the write scope; a reader never sees half an instance; a crash between the steps is completed at start
 * and by `verify --repair`; the instance can be stored again), 405 with a true Allow, OPTIONS capabilities
 * (PS3.18 Annex H WADL) and the root page.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import request from 'supertest';
import { startServer, TestServer, corpusFile, multipartBody, binaryParser, parseMultipartResponse } from './helpers/server';
import { createApp } from '../server/app';
import { loadConfig } from '../server/config';
import { verifyStore } from '../server/verify';
import { RESOURCES } from '../server/resources';

const CT = fs.readFileSync(corpusFile('CT_small'));
const MR = fs.readFileSync(corpusFile('MR_small'));
const JPEG = fs.readFileSync(corpusFile('JPEG2000')); // same study and series as JPGExtended
const JPGX = fs.readFileSync(corpusFile('JPGExtended'));

async function store(app: any, files: Buffer[], status = 200): Promise<string[]> {
  const { body, contentType } = multipartBody(files);
  const res = await request(app).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
  expect(res.status).toBe(status);
  return res.body['00081199'].Value.map((v: any) => new URL(v['00081190'].Value[0]).pathname);
}
const blobFiles = (dataDir: string): string[] => {
  const out: string[] = [];
  const walk = (d: string) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else out.push(p); } };
  walk(path.join(dataDir, 'blobs'));
  return out;
};
const studyOf = (u: string) => u.split('/').slice(0, 4).join('/');
const seriesOf = (u: string) => u.split('/').slice(0, 6).join('/');

describe('DELETE', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer(); });
  afterAll(async () => { await srv.stop(); });

  test('instance: 204; metadata, retrieve and search no longer find it; its blob is gone; it can be stored again', async () => {
    const [url] = await store(srv.app, [CT]);
    expect(blobFiles(srv.dataDir)).toHaveLength(1);
    const del = await request(srv.app).delete(url);
    expect(del.status).toBe(204);
    expect((await request(srv.app).get(`${url}/metadata`)).status).toBe(404);
    expect((await request(srv.app).get(url)).status).toBe(404);
    expect((await request(srv.app).get('/dicom-web/instances').query({ SOPInstanceUID: url.split('/').pop()! })).status).toBe(204);
    expect((await request(srv.app).get(studyOf(url))).status).toBe(404);
    expect(blobFiles(srv.dataDir)).toHaveLength(0);
    expect(fs.readdirSync(path.join(srv.dataDir, 'trash'))).toHaveLength(0);
    expect((await request(srv.app).delete(url)).status).toBe(404);
    // Stored again (a corrected object replacing a deleted one goes this way): byte-identical retrieve.
    const [again] = await store(srv.app, [CT]);
    expect(again).toBe(url);
    const res = await request(srv.app).get(url).set('Accept', 'multipart/related; type="application/dicom"').buffer(true).parse(binaryParser);
    expect(parseMultipartResponse(res.body, res.headers['content-type'])[0].body.equals(CT)).toBe(true);
    await request(srv.app).delete(url).expect(204);
  });

  test('series and study: every instance goes; counts of what remains are recounted', async () => {
    const [a, b] = await store(srv.app, [JPEG, JPGX]);
    expect(studyOf(a)).toBe(studyOf(b));
    const sameSeries = seriesOf(a) === seriesOf(b);
    expect((await request(srv.app).delete(seriesOf(a))).status).toBe(204);
    expect((await request(srv.app).get(`${a}/metadata`)).status).toBe(404);
    const studies = await request(srv.app).get('/dicom-web/studies').query({ StudyInstanceUID: studyOf(a).split('/').pop()! });
    if (sameSeries) expect(studies.status).toBe(204);
    else expect(studies.body[0]['00201208'].Value[0]).toBe(1);
    const [c] = await store(srv.app, [JPEG]);
    expect((await request(srv.app).delete(studyOf(c))).status).toBe(204);
    for (const u of [a, b, c]) expect((await request(srv.app).get(`${u}/metadata`)).status).toBe(404);
    expect((await request(srv.app).get(studyOf(c))).status).toBe(404);
    expect(blobFiles(srv.dataDir)).toHaveLength(0);
    expect((await request(srv.app).delete(studyOf(c))).status).toBe(404);
    expect((await request(srv.app).delete('/dicom-web/studies/1..2')).status).toBe(400);
  });

  test('a reader never sees half an instance: concurrent retrieves get the whole file or 404', async () => {
    const big = fs.readFileSync(corpusFile('emri_small'));
    for (let round = 0; round < 5; round++) {
      const [url] = await store(srv.app, [big]);
      const reads = Array.from({ length: 6 }, () => new Promise<{ status: number; body: Buffer; ct?: string }>((resolve, reject) => {
        http.get(`${srv.url}${url}`, { headers: { Accept: 'multipart/related; type="application/dicom"' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), ct: res.headers['content-type'] }));
          res.on('error', reject);
        }).on('error', reject);
      }));
      const del = request(srv.app).delete(url);
      const results = await Promise.all(reads);
      expect((await del).status).toBe(204);
      for (const r of results) {
        if (r.status === 404) continue;
        expect(r.status).toBe(200);
        expect(parseMultipartResponse(r.body, r.ct!)[0].body.equals(big)).toBe(true);
      }
    }
  });

  test('needs the write scope when authentication is on', async () => {
    const auth = await startServer({}, ['--api-keys', JSON.stringify({ 'reader-key-0123456789': ['dicomweb.read'], 'writer-key-0123456789': ['dicomweb.read', 'dicomweb.write'] })]);
    try {
      const { body, contentType } = multipartBody([MR]);
      const stow = await request(auth.app).post('/dicom-web/studies').set('Authorization', 'Bearer writer-key-0123456789').set('Content-Type', contentType).send(body);
      expect(stow.status).toBe(200);
      const url = new URL(stow.body['00081199'].Value[0]['00081190'].Value[0]).pathname;
      expect((await request(auth.app).delete(url)).status).toBe(401);
      expect((await request(auth.app).delete(url).set('Authorization', 'Bearer reader-key-0123456789')).status).toBe(403);
      expect((await request(auth.app).get(`${url}/metadata`).set('Authorization', 'Bearer reader-key-0123456789')).status).toBe(200);
      expect((await request(auth.app).delete(url).set('Authorization', 'Bearer writer-key-0123456789')).status).toBe(204);
    } finally { await auth.stop(); }
  });
});

describe('a delete interrupted by a crash', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
  const open = async (dataDir: string) => createApp(loadConfig(['--data', dataDir, '--port', '0', '--host', '127.0.0.1'], {}, {}));

  for (const when of ['after the blob moved to trash', 'after the index rows went'] as const) {
    test(`${when}: verify reports it, --repair completes it, the next start completes it, and the instance can be stored again`, async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-delete-crash-'));
      dirs.push(dataDir);
      let a = await open(dataDir);
      const [url] = await store(a.app, [CT]);
      const sop = url.split('/').pop()!;
      const row = a.ctx.index.getInstance(sop);
      // The steps of server/delete.ts, stopped where a crash would stop them.
      await a.ctx.blobs.moveToTrash(row.blob_key);
      if (when === 'after the index rows went') a.ctx.index.removeInstances([sop]);
      await a.close();

      const config = loadConfig(['--data', dataDir], {}, {});
      const report = await verifyStore(config, false);
      expect(report.problems.map((p) => p.kind)).toContain('interrupted-delete');
      const repaired = await verifyStore(config, true);
      expect(repaired.unrepaired).toBe(0);
      expect((await verifyStore(config, false)).problems).toEqual([]);

      a = await open(dataDir);
      expect((await request(a.app).get(`${url}/metadata`)).status).toBe(404);
      await store(a.app, [CT]);
      expect((await request(a.app).get(`${url}/metadata`)).status).toBe(200);
      await a.close();
    });
  }

  test('the next start alone completes it (no verify run)', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-delete-crash-'));
    dirs.push(dataDir);
    let a = await open(dataDir);
    const [url] = await store(a.app, [CT]);
    await a.ctx.blobs.moveToTrash(a.ctx.index.getInstance(url.split('/').pop()!).blob_key);
    await a.close();
    a = await open(dataDir);
    expect((await request(a.app).get(`${url}/metadata`)).status).toBe(404);
    expect((await request(a.app).get('/dicom-web/studies')).status).toBe(204);
    await a.close();
    expect((await verifyStore(loadConfig(['--data', dataDir], {}, {}), false)).problems).toEqual([]);
  });
});

describe('methods, OPTIONS and the root', () => {
  let srv: TestServer;
  let url: string;
  beforeAll(async () => {
    srv = await startServer();
    [url] = await store(srv.app, [CT]);
  });
  afterAll(async () => { await srv.stop(); });

  test('OPTIONS /studies lists GET and POST', async () => {
    const res = await request(srv.app).options('/dicom-web/studies');
    expect(res.status).toBe(200);
    expect(res.headers.allow).toBe('GET, HEAD, POST, OPTIONS');
  });

  test('a method a resource does not offer: 405 with a true Allow', async () => {
    const cases: Array<[string, string, string]> = [
      ['delete', '/dicom-web/studies', 'GET, HEAD, POST, OPTIONS'],
      ['put', url, 'GET, HEAD, DELETE, OPTIONS'],
      ['post', `${url}/metadata`, 'GET, HEAD, OPTIONS'],
      ['delete', `${url}/frames/1`, 'GET, HEAD, OPTIONS'],
      ['patch', studyOf(url), 'GET, HEAD, POST, DELETE, OPTIONS'],
      ['post', '/dicom-web/series', 'GET, HEAD, OPTIONS'],
    ];
    for (const [method, p, allow] of cases) {
      const res = await (request(srv.app) as any)[method](p);
      expect([p, method, res.status]).toEqual([p, method, 405]);
      expect(res.headers.allow).toBe(allow);
      expect(res.body.error).toMatch(/not offered/);
      // Every method named in Allow is really served (not 405).
      for (const m of allow.split(', ')) {
        if (m === 'POST' || m === 'DELETE') continue; // would store or delete; covered above
        const r = await (request(srv.app) as any)[m.toLowerCase()](p);
        expect(r.status).not.toBe(405);
      }
    }
  });

  test('OPTIONS /dicom-web: the PS3.18 Annex H capabilities description (WADL) of every resource', async () => {
    const res = await request(srv.app).options('/dicom-web').buffer(true).parse(binaryParser);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/vnd.sun.wadl+xml');
    const xml = res.body.toString();
    expect(xml).toMatch(/^<\?xml/);
    expect(xml).toContain('<application xmlns="http://wadl.dev.java.net/2009/02"');
    expect(xml).toMatch(new RegExp(`<resources base="http://127\\.0\\.0\\.1:\\d+/dicom-web/">`));
    for (const id of ['SearchForStudies', 'StoreInstances', 'RetrieveInstance', 'RetrieveFrames', 'RetrieveBulkdata', 'RetrieveRenderedInstance', 'DeleteStudy', 'RetrieveStudyMetadata']) {
      expect(xml).toContain(`id="${id}"`);
    }
    // Balanced: every opened resource/method is closed.
    expect((xml.match(/<resource /g) ?? []).length).toBe((xml.match(/<\/resource>/g) ?? []).length);
    expect((xml.match(/<method /g) ?? []).length).toBe((xml.match(/<\/method>/g) ?? []).length);
  });

  test('every GET the capabilities name is served (the table is true)', async () => {
    const [, , , study, , series, , sop] = url.split('/');
    const fill = (p: string) => p.replace('{study}', study).replace('{series}', series).replace('{instance}', sop).replace('{frames}', '1').replace('{tagPath}', '7FE00010');
    for (const r of RESOURCES) {
      for (const m of r.methods) {
        if (m.name !== 'GET') continue;
        const res = await request(srv.app).get(`/dicom-web/${fill(r.path)}`).buffer(true).parse(binaryParser);
        expect([r.path, res.status]).toEqual([r.path, expect.any(Number)]);
        expect([r.path, res.status < 300]).toEqual([r.path, true]);
      }
    }
  });

  test('GET /dicom-web: a page for a person (HTML), or JSON when asked', async () => {
    const html = await request(srv.app).get('/dicom-web').set('Accept', 'text/html,application/xhtml+xml,*/*;q=0.8');
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.text).toContain('QIDO-RS');
    expect(html.text).toContain('/dicom-web');
    const json = await request(srv.app).get('/dicom-web/').set('Accept', 'application/json');
    expect(json.status).toBe(200);
    expect(json.body.services.length).toBeGreaterThan(3);
    expect((await request(srv.app).delete('/dicom-web')).status).toBe(405);
  });
});

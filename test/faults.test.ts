/**
 * Faults of the machine are survived and answered truthfully (issue 14):
 *
 * - a full disk (a real one: a small tmpfs mounted for the test, when this process may mount) gives 507 with the
 *   reason in the store response, leaves nothing partial (no staged file, no blob, no index row), the process
 *   stays up and stores again once space is freed;
 * - an index whose files are not writable, or that cannot be opened, gives 503 with a reason (never SIGBUS: the
 *   -shm file SQLite maps is checked before each use) and the process stays up;
 * - a body that ends before a part's closing boundary reports that part as failed, never drops it silently.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import { execFileSync } from 'child_process';
import request from 'supertest';
import { canMount, mountTmpfs, unmount, freeBytes as free } from './helpers/tmpfs';
import { startServer, TestServer, corpusFile, multipartBody, readUids, binaryParser, parseMultipartResponse } from './helpers/server';
import { faultCounts } from '../server/faults';
import { verifyStore } from '../server/verify';
import { log } from '../server/log';

const uids = (() => { // dcmjs warns on some corpus files
  const quiet = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  try { return new Map(readUids().map((u) => [u.file, u])); } finally { quiet.mockRestore(); }
})();
const ct = uids.get('CT_small')!;
const mr = uids.get('MR_small')!;
const uncr = uids.get('693_UNCR')!;
const ctBytes = fs.readFileSync(corpusFile('CT_small')); // 39 KB
const mrBytes = fs.readFileSync(corpusFile('MR_small'));
const uncrBytes = fs.readFileSync(corpusFile('693_UNCR')); // 526 KB

const stow = (srv: TestServer, files: Buffer[]) => {
  const { body, contentType } = multipartBody(files);
  return request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
};
const instanceUrl = (u: { study: string; series: string; instance: string }) => `/dicom-web/studies/${u.study}/series/${u.series}/instances/${u.instance}`;
const failures = (res: request.Response) => (res.body['00081198']?.Value ?? []).map((f: any) => ({ code: f['00081197'].Value[0], reason: f['00000902']?.Value?.[0] }));
const storedUids = (res: request.Response) => (res.body['00081199']?.Value ?? []).map((r: any) => r['00081155'].Value[0]);
const files = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name) : []);

const isRoot = process.getuid?.() === 0;
const canChattr = isRoot && (() => {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-chattr-')), 'x');
  fs.writeFileSync(f, '');
  try { execFileSync('chattr', ['+i', f], { stdio: 'ignore' }); execFileSync('chattr', ['-i', f], { stdio: 'ignore' }); return true; } catch { return false; } finally { fs.rmSync(path.dirname(f), { recursive: true, force: true }); }
})();

/** Makes `file` not writable for this process, really: immutable for root (who ignores modes), mode 0444 otherwise. */
function lock(file: string) { if (isRoot) execFileSync('chattr', ['+i', file]); else fs.chmodSync(file, 0o444); }
function unlock(file: string) { if (isRoot) execFileSync('chattr', ['-i', file]); else fs.chmodSync(file, 0o644); }

// What the server logs as errors (pino's log.error(fields, message)): the messages, in order.
let errorLog: jest.Mock;
let errorSpy: jest.SpyInstance;
beforeEach(() => {
  errorLog = jest.fn();
  errorSpy = jest.spyOn(log, 'error').mockImplementation(((a: unknown, b?: unknown) => { errorLog(typeof a === 'string' ? a : b); }) as any);
});
afterEach(() => { errorSpy.mockRestore(); });

(canMount ? describe : describe.skip)('a full disk (a real tmpfs)', () => {
  let mount: string;
  let srv: TestServer;
  let filler: string;
  beforeAll(async () => {
    mount = mountTmpfs(6 * 1024 * 1024)!;
    srv = await startServer({ dataDir: path.join(mount, 'data'), renderWorkers: 0 });
    filler = path.join(mount, 'filler');
  });
  afterAll(async () => { await srv?.stop(); unmount(mount); });
  /** Fills the disk so that `room` bytes stay free. */
  const leave = (room: number) => {
    fs.writeFileSync(filler, '');
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free(mount) - room)));
  };
  beforeEach(() => { fs.writeFileSync(filler, ''); });

  test('STOW with no room: 507 with the reason; nothing staged, stored or indexed; the server stays up', async () => {
    const before = faultCounts()['storage-full'];
    leave(200 * 1024);
    const res = await stow(srv, [uncrBytes]);
    expect(res.status).toBe(507);
    expect(res.headers['content-type']).toMatch(/application\/dicom\+json/);
    expect(failures(res)).toEqual([{ code: 0xa700, reason: expect.stringMatching(/insufficient storage: .*disk is full/) }]);
    expect(faultCounts()['storage-full']).toBeGreaterThan(before);
    expect(errorLog).toHaveBeenCalledWith(expect.stringMatching(/fault storage-full/));
    expect(files(path.join(srv.dataDir, 'staging'))).toEqual([]);
    expect(files(path.join(srv.dataDir, 'blobs'))).toEqual([]);
    expect((await request(srv.url).get(`/dicom-web/studies?StudyInstanceUID=${uncr.study}`)).status).toBe(204);
    expect((await request(srv.url).get('/health')).body).toEqual({ status: 'ok' });
  });

  test('room for one part of two: the first is stored, the second fails 0xA700 (202)', async () => {
    leave(200 * 1024);
    const res = await stow(srv, [ctBytes, uncrBytes]);
    expect(res.status).toBe(202);
    expect(storedUids(res)).toEqual([ct.instance]);
    expect(failures(res)).toEqual([{ code: 0xa700, reason: expect.stringMatching(/disk is full/) }]);
    expect(files(path.join(srv.dataDir, 'staging'))).toEqual([]);
    expect((await request(srv.url).get(`${instanceUrl(ct)}/metadata`)).status).toBe(200);
  });

  test('room to stage the file but not to index it: 507, the blob is removed, no row', async () => {
    // The staged file takes its pages; the index's write-ahead log then finds no room (SQLITE_FULL).
    let answered: number | undefined;
    for (const slack of [0, 4096, 8192, 16384]) {
      leave(Math.ceil(mrBytes.length / 4096) * 4096 + slack);
      errorLog.mockClear();
      const res = await stow(srv, [mrBytes]);
      answered = res.status;
      if (res.status === 200) break; // enough room after all: the instance is whole, as the next checks show
      expect(res.status).toBe(507);
      expect(files(path.join(srv.dataDir, 'staging'))).toEqual([]);
      expect(files(path.join(srv.dataDir, 'blobs', mr.study))).toEqual([]);
      expect((await request(srv.url).get(`${instanceUrl(mr)}/metadata`)).status).toBe(404);
      if (errorLog.mock.calls.some((c) => /fault storage-full: ingest/.test(String(c[0])))) return; // the index stage failed, as meant
    }
    throw new Error(`the index stage never met a full disk (last answer ${answered})`);
  });

  test('space freed: storing works again, and what was stored is whole', async () => {
    fs.writeFileSync(filler, '');
    const res = await stow(srv, [uncrBytes, mrBytes]);
    expect(res.status).toBe(200);
    for (const [u, bytes] of [[uncr, uncrBytes], [mr, mrBytes], [ct, ctBytes]] as const) {
      const got = await request(srv.url).get(instanceUrl(u)).set('Accept', 'multipart/related; type="application/dicom"').buffer(true).parse(binaryParser);
      expect(got.status).toBe(200);
      expect(parseMultipartResponse(got.body, got.headers['content-type'])[0].body.equals(bytes)).toBe(true);
    }
  });
});

(isRoot && !canChattr ? describe.skip : describe)('a read-only or broken index', () => {
  let srv: TestServer;
  afterEach(async () => { await srv?.stop(); });

  test('-shm not writable while running: 503 with a reason for STOW, QIDO and /health; no SIGBUS; back when writable', async () => {
    srv = await startServer({ renderWorkers: 0 });
    expect((await stow(srv, [ctBytes])).status).toBe(200);
    const shm = path.join(srv.dataDir, 'index.sqlite-shm');
    expect(fs.existsSync(shm)).toBe(true);
    lock(shm);
    try {
      const res = await stow(srv, [mrBytes]);
      expect(res.status).toBe(503);
      expect(failures(res)).toEqual([{ code: 0xa700, reason: expect.stringMatching(/index is not writable/) }]);
      expect(res.headers['retry-after']).toBeDefined();
      const q = await request(srv.url).get('/dicom-web/studies');
      expect(q.status).toBe(503);
      expect(q.body.error).toMatch(/index is not writable/);
      expect((await request(srv.url).get(`${instanceUrl(mr)}/metadata`)).status).toBe(503);
      const h = await request(srv.url).get('/health');
      expect(h.status).toBe(503);
      expect(h.body.reason).toMatch(/not writable/);
      expect(files(path.join(srv.dataDir, 'staging'))).toEqual([]);
      expect(files(path.join(srv.dataDir, 'blobs', mr.study))).toEqual([]);
    } finally {
      unlock(shm);
    }
    expect((await request(srv.url).get('/health')).status).toBe(200);
    expect((await stow(srv, [mrBytes])).status).toBe(200);
  });

  test('the index and its log read-only: STOW 503 with the reason, nothing left behind, reads still work', async () => {
    srv = await startServer({ renderWorkers: 0 });
    expect((await stow(srv, [ctBytes])).status).toBe(200);
    const locked = ['index.sqlite', 'index.sqlite-wal'].map((f) => path.join(srv.dataDir, f));
    locked.forEach(lock);
    try {
      const res = await stow(srv, [mrBytes]);
      expect(res.status).toBe(503);
      expect(failures(res)).toEqual([{ code: 0xa700, reason: expect.stringMatching(/index is read-only|index I\/O error/) }]);
      expect(files(path.join(srv.dataDir, 'blobs', mr.study))).toEqual([]);
      expect((await request(srv.url).get(`${instanceUrl(ct)}/metadata`)).status).toBe(200);
    } finally {
      locked.forEach(unlock);
    }
    expect((await stow(srv, [mrBytes])).status).toBe(200);
  });

  test('an index that cannot be opened: the server starts, answers 503 with the reason, /health says why', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-broken-'));
    fs.writeFileSync(path.join(dataDir, 'index.sqlite'), Buffer.alloc(8192, 0x5a)); // not a database
    srv = await startServer({ dataDir, renderWorkers: 0 });
    try {
      const q = await request(srv.url).get('/dicom-web/studies');
      expect(q.status).toBe(503);
      expect(q.body.error).toMatch(/index .* cannot be opened/);
      const res = await stow(srv, [ctBytes]);
      expect(res.status).toBe(503);
      const h = await request(srv.url).get('/health');
      expect(h.status).toBe(503);
      expect(h.body.reason).toMatch(/cannot be opened/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a body that ends before a closing boundary', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer({ renderWorkers: 0 }); });
  afterAll(async () => { await srv?.stop(); });

  const cut = (files: Buffer[], drop: number) => {
    const { body, contentType } = multipartBody(files);
    const close = body.lastIndexOf(Buffer.from('\r\n--'));
    return { body: body.subarray(0, close - drop), contentType };
  };

  test.each([
    ['the last part whole, only the close delimiter missing', 0],
    ['the last part cut short', 1000],
  ])('%s: that part is reported failed (0xC000), the others stored (202)', async (_name, drop) => {
    const { body, contentType } = cut([ctBytes, mrBytes], drop);
    const res = await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
    expect(res.status).toBe(202);
    expect(storedUids(res)).toEqual([ct.instance]);
    expect(failures(res)).toEqual([{ code: 0xc000, reason: expect.stringMatching(/body ended before this part's closing boundary/) }]);
    expect((await request(srv.url).get(`${instanceUrl(mr)}/metadata`)).status).toBe(404);
    expect(files(path.join(srv.dataDir, 'staging'))).toEqual([]);
  });

  test('a single unterminated part: 409, reported, not stored', async () => {
    const { body, contentType } = cut([mrBytes], 0);
    const res = await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
    expect(res.status).toBe(409);
    expect(failures(res)).toEqual([{ code: 0xc000, reason: expect.stringMatching(/closing boundary/) }]);
    expect((await request(srv.url).get(`${instanceUrl(mr)}/metadata`)).status).toBe(404);
  });

  test('a body cut inside the part headers: reported too', async () => {
    const { body, contentType } = multipartBody([ctBytes, mrBytes]);
    const second = body.indexOf(Buffer.from('\r\n--'), 10);
    const res = await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body.subarray(0, second + 30));
    expect(res.status).toBe(202);
    expect(failures(res)).toEqual([{ code: 0xc000, reason: expect.stringMatching(/closing boundary/) }]);
  });
});

describe('integrity on read: a missing or damaged blob', () => {
  let srv: TestServer;
  beforeEach(async () => {
    srv = await startServer({ renderWorkers: 0 });
    expect((await stow(srv, [ctBytes, mrBytes])).status).toBe(200);
  });
  afterEach(async () => { await srv?.stop(); });
  const blobOf = (u: { instance: string }) => path.join(srv.dataDir, 'blobs', srv.ctx.index.getInstance(u.instance).blob_key);
  /** A retrieve over a plain connection: what arrived, and whether it ended with the closing boundary. */
  const retrieveRaw = (url: string) => new Promise<{ status: number; body: Buffer; complete: boolean }>((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    const done = () => {
      const body = Buffer.concat(chunks);
      resolve({ status, body, complete: /--[0-9a-f]+--\r\n$/.test(body.subarray(-80).toString('latin1')) });
    };
    const req = http.get(`${srv.url}${url}`, { headers: { Accept: 'multipart/related; type="application/dicom"' }, agent: false }, (res) => {
      status = res.statusCode!;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', () => undefined);
    });
    req.on('error', done);
  });
  const reads = (u: typeof ct) => [
    ['retrieve', instanceUrl(u), 'multipart/related; type="application/dicom"'],
    ['frames', `${instanceUrl(u)}/frames/1`, 'multipart/related; type="application/octet-stream"'],
    ['bulkdata', `${instanceUrl(u)}/bulkdata/7FE00010`, 'application/octet-stream'],
    ['rendered', `${instanceUrl(u)}/rendered`, 'image/png'],
  ];

  test('a missing blob: 500 with the reason for retrieve, frames, bulkdata and rendered, before any header; logged, counted', async () => {
    fs.rmSync(blobOf(ct));
    const before = faultCounts()['blob-missing'];
    for (const [what, url, accept] of reads(ct)) {
      const r = await request(srv.url).get(url).set('Accept', accept);
      expect({ what, status: r.status }).toEqual({ what, status: 500 });
      expect(r.body.error).toMatch(/stored bytes of this instance are missing/);
    }
    expect(faultCounts()['blob-missing']).toBe(before + 4);
    expect(errorLog).toHaveBeenCalledWith(expect.stringMatching(new RegExp(`fault blob-missing: instance ${ct.instance.replace(/\./g, '\\.')}`)));
    // metadata and search come from the index: the instance is still listed (verify reports it; see CONFORMANCE.md)
    expect((await request(srv.url).get(`${instanceUrl(ct)}/metadata`)).status).toBe(200);
    // the other instance is untouched
    expect((await request(srv.url).get(`${instanceUrl(mr)}/rendered`).set('Accept', 'image/png')).status).toBe(200);
  });

  test('a truncated blob: 500 "do not match" before any header, for every read', async () => {
    const f = blobOf(ct);
    fs.truncateSync(f, fs.statSync(f).size - 100);
    for (const [what, url, accept] of reads(ct)) {
      const r = await request(srv.url).get(url).set('Accept', accept);
      expect({ what, status: r.status }).toEqual({ what, status: 500 });
      expect(r.body.error).toMatch(/do not match what was stored/);
    }
  });

  test('a blob altered in place (same size): retrieve ends before its closing boundary; the client sees it incomplete', async () => {
    const f = blobOf(ct);
    const b = fs.readFileSync(f);
    b[b.length - 5] ^= 0xff; // a pixel
    fs.writeFileSync(f, b);
    const before = faultCounts()['blob-corrupt'];
    const r = await retrieveRaw(instanceUrl(ct));
    expect(r.complete).toBe(false);
    expect(faultCounts()['blob-corrupt']).toBe(before + 1);
    // whole instances still arrive whole
    expect((await retrieveRaw(instanceUrl(mr))).complete).toBe(true);
  });

  test('the duplicate rule does not trust a row whose blob is gone or altered: identical bytes re-sent restore it', async () => {
    fs.rmSync(blobOf(ct));
    const f = blobOf(mr);
    const b = fs.readFileSync(f);
    b[b.length - 5] ^= 0xff;
    fs.writeFileSync(f, b);
    const res = await stow(srv, [ctBytes, mrBytes]);
    expect(res.status).toBe(200);
    expect(storedUids(res)).toEqual([ct.instance, mr.instance]);
    for (const [u, bytes] of [[ct, ctBytes], [mr, mrBytes]] as const) {
      const got = await request(srv.url).get(instanceUrl(u)).set('Accept', 'multipart/related; type="application/dicom"').buffer(true).parse(binaryParser);
      expect(got.status).toBe(200);
      expect(parseMultipartResponse(got.body, got.headers['content-type'])[0].body.equals(bytes)).toBe(true);
    }
    expect(errorLog).toHaveBeenCalledWith(expect.stringMatching(/restored blob .* \(missing\)/));
    expect(errorLog).toHaveBeenCalledWith(expect.stringMatching(/restored blob .* \(content SHA-256/));
  });

  test('verify reports the same cases: missing, wrong size, wrong hash', async () => {
    const u = uncr;
    expect((await stow(srv, [uncrBytes])).status).toBe(200);
    fs.rmSync(blobOf(ct));
    fs.truncateSync(blobOf(mr), 100);
    const f = blobOf(u);
    const b = fs.readFileSync(f);
    b[b.length - 5] ^= 0xff;
    fs.writeFileSync(f, b);
    const report = await verifyStore(srv.ctx.config, false);
    const kinds = Object.fromEntries(report.problems.map((p) => [p.sopInstanceUID, p.kind]));
    expect(kinds).toEqual({ [ct.instance]: 'missing-blob', [mr.instance]: 'size-mismatch', [u.instance]: 'hash-mismatch' });
  });
});

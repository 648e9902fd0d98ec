/**
 * Limits (server/config.ts Limits), each enforced with a clear answer: a STOW-RS body above the limit is 413; a part
 * above the part limit is a FailedSOPSequence item (0xA700, Out of Resources) while the other parts are stored;
 * frames above the pixel limit are not rendered or decoded (413, with the limit); viewports above the limit are 400; a request that
 * stalls past the time limit is 503. And the configuration: flags and environment, defaults, refusals.
 */
import * as fs from 'fs';
import * as http from 'http';
import request from 'supertest';
import { startServer, TestServer, corpusFile, multipartBody, readUids } from './helpers/server';
import { loadConfig, ConfigError } from '../server/config';

const uids = new Map(readUids().map((u) => [u.file, u]));
const ct = uids.get('CT_small')!;
const ctBytes = fs.readFileSync(corpusFile('CT_small')); // 39 KB, 128x128
const big = fs.readFileSync(corpusFile('693_UNCR')); // 526 KB
const ctUrl = `/dicom-web/studies/${ct.study}/series/${ct.series}/instances/${ct.instance}`;

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({ renderWorkers: 0, limits: { maxBodyBytes: 1024 * 1024, maxPartBytes: 200 * 1024, maxRenderPixels: 10_000, maxViewport: 256, requestTimeoutMs: 400 } });
  const { body, contentType } = multipartBody([ctBytes]);
  expect((await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body)).status).toBe(200);
});
afterAll(async () => { await srv?.stop(); });

describe('request body and part size', () => {
  test('a body above the limit is 413 with a JSON reason', async () => {
    const { body, contentType } = multipartBody([big, big, big]); // ~1.6 MB
    const res = await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/larger than the 1048576-byte limit/);
  });

  test('a part above the part limit fails alone (0xA700); the other parts are stored (202)', async () => {
    const { body, contentType } = multipartBody([big, ctBytes]);
    const res = await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
    expect(res.status).toBe(202);
    const failed = res.body['00081198'].Value;
    expect(failed).toHaveLength(1);
    expect(failed[0]['00081197'].Value[0]).toBe(0xa700);
    expect(failed[0]['00000902'].Value[0]).toMatch(/part larger than/);
    expect(res.body['00081199'].Value[0]['00081155'].Value[0]).toBe(ct.instance);
    expect(fs.readdirSync(`${srv.dataDir}/staging`)).toEqual([]); // nothing of the refused part is left
  });
});

describe('rendering limits', () => {
  test('a frame above the pixel limit is not rendered, nor decoded for frames', async () => {
    const r = await request(srv.url).get(`${ctUrl}/rendered`).set('Accept', 'image/png');
    expect(r.status).toBe(413); // not 406: the media type is fine, the frame is too large (issue 16)
    expect(r.body.error).toMatch(/128x128 = 16384 pixels is over this server's rendering limit of 10000 pixels/);
    const j = uids.get('JPEG2000')!;
    const { body, contentType } = multipartBody([fs.readFileSync(corpusFile('JPEG2000'))]); // 1024x256
    expect((await request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).send(body)).status).toBe(200);
    const frames = await request(srv.url).get(`/dicom-web/studies/${j.study}/series/${j.series}/instances/${j.instance}/frames/1`)
      .set('Accept', 'multipart/related; type="application/octet-stream"');
    expect(frames.status).toBe(413);
    expect(frames.body.error).toMatch(/decoding limit of 10000 pixels/);
    // as stored, without decoding, it is served
    const stored = await request(srv.url).get(`/dicom-web/studies/${j.study}/series/${j.series}/instances/${j.instance}/frames/1`)
      .set('Accept', 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
    expect(stored.status).toBe(200);
  });

  test('a viewport above the limit is 400', async () => {
    for (const v of ['257,10', '10,257', '100000,100000']) {
      const r = await request(srv.url).get(`${ctUrl}/thumbnail?viewport=${v}`).set('Accept', 'image/png');
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(/viewport larger than the 256-pixel limit/);
    }
  });
});

describe('request time', () => {
  test('an upload that stalls past the time limit is answered 503, and the server serves others meanwhile', async () => {
    const port = Number(new URL(srv.url).port);
    const { body, contentType } = multipartBody([ctBytes]);
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/dicom-web/studies', headers: { 'Content-Type': contentType, 'Content-Length': body.length } }, (res) => {
        let b = '';
        res.on('data', (d) => { b += d; });
        res.on('end', () => resolve({ status: res.statusCode!, body: b }));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 1000)); // and then nothing more
    });
    expect((await request(srv.url).get('/health')).status).toBe(200);
    const res = await answer;
    expect(res.status).toBe(503);
    expect(JSON.parse(res.body).error).toMatch(/time limit/);
    expect((await request(srv.url).get(`${ctUrl}/metadata`).set('Accept', 'application/dicom+json')).status).toBe(200);
  });
});

describe('slow senders: a minimum upload rate and a total upload deadline', () => {
  let slow: TestServer;
  beforeAll(async () => {
    slow = await startServer({ renderWorkers: 0, limits: { minUploadRate: 200, uploadRateWindowMs: 1000, uploadTimeoutMs: 4000 } });
  });
  afterAll(async () => { await slow?.stop(); });

  /** POSTs `body` in pieces of `piece` bytes every `everyMs`; resolves with the answer (or the reset). */
  const trickle = (body: Buffer, contentType: string, piece: number, everyMs: number) => new Promise<{ status?: number; body: string; ms: number; sent: number }>((resolve) => {
    const t0 = Date.now();
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const req = http.request({ port: Number(new URL(slow.url).port), host: '127.0.0.1', method: 'POST', path: '/dicom-web/studies',
      headers: { 'Content-Type': contentType, 'Content-Length': body.length } }, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => { clearInterval(timer); resolve({ status: res.statusCode!, body: b, ms: Date.now() - t0, sent }); });
      res.on('error', () => undefined);
    });
    req.on('error', () => { clearInterval(timer); resolve({ body: '', ms: Date.now() - t0, sent }); });
    timer = setInterval(() => {
      if (sent >= body.length) { clearInterval(timer); return; }
      req.write(body.subarray(sent, sent + piece));
      sent += piece;
    }, everyMs);
  });

  test('an upload trickling a byte at a time is cut off with 408 and its reason; nothing is left staged', async () => {
    const { body, contentType } = multipartBody([ctBytes]);
    const res = await trickle(body, contentType, 1, 250); // 4 bytes/s, far below 200
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body).error).toMatch(/arrived slower than 200 bytes\/s/);
    expect(res.ms).toBeLessThan(10_000); // cut within a few windows, not after the idle timer or Node's 300 s
    await new Promise((r) => setTimeout(r, 200)); // the handler sees the connection end, and removes its staged file
    expect(fs.readdirSync(`${slow.dataDir}/staging`)).toEqual([]);
    expect((await request(slow.url).get('/health')).status).toBe(200);
  });

  test('an upload fast enough but longer than the upload deadline is cut off with 408', async () => {
    const { body, contentType } = multipartBody([big]); // 526 KB at 2.5 KB/s: 200 s, far past the 4 s deadline
    const res = await trickle(body, contentType, 500, 200);
    expect(res.status).toBe(408);
    expect(JSON.parse(res.body).error).toMatch(/took longer than 4 s/);
    expect(res.ms).toBeLessThan(15_000);
    await new Promise((r) => setTimeout(r, 200));
    expect(fs.readdirSync(`${slow.dataDir}/staging`)).toEqual([]);
  });

  test('an upload at an ordinary pace is stored', async () => {
    const { body, contentType } = multipartBody([ctBytes]);
    const res = await trickle(body, contentType, 16 * 1024, 100);
    expect(res.status).toBe(200);
  });
});

describe('configuration', () => {
  test('defaults are sane and auth is off', () => {
    const c = loadConfig([], {});
    expect(c.limits).toEqual({ maxBodyBytes: 8 * 1024 ** 3, maxPartBytes: 4 * 1024 ** 3, maxRenderPixels: 100_000_000, maxViewport: 8192, requestTimeoutMs: 120_000,
      uploadTimeoutMs: 3_600_000, minUploadRate: 1024, uploadRateWindowMs: 10_000 });
    expect(c.auth.enabled).toBe(false);
    expect(c.auth.readScope).toBe('dicomweb.read');
    expect(c.auth.writeScope).toBe('dicomweb.write');
  });

  test('flags and environment set the limits and auth; flags win', () => {
    const c = loadConfig(['--max-body-mb', '3', '--max-viewport=512'], {
      MAX_BODY_MB: '9', MAX_PART_MB: '2', MAX_RENDER_PIXELS: '1000', REQUEST_TIMEOUT_MS: '5000', UPLOAD_TIMEOUT_MS: '60000', MIN_UPLOAD_RATE: '0', UPLOAD_RATE_WINDOW_MS: '2000',
      API_KEYS: 'k0123456789abcdef0:dicomweb.read', AUTH_READ_SCOPE: 'read', SIGNED_LINK_KEY: 'x'.repeat(32), SIGNED_LINK_MAX_SECONDS: '60',
    });
    expect(c.limits).toEqual({ maxBodyBytes: 3 * 1024 * 1024, maxPartBytes: 2 * 1024 * 1024, maxRenderPixels: 1000, maxViewport: 512, requestTimeoutMs: 5000,
      uploadTimeoutMs: 60_000, minUploadRate: 0, uploadRateWindowMs: 2000 });
    expect(c.auth.enabled).toBe(true);
    expect(c.auth.apiKeys.get('k0123456789abcdef0')).toEqual(['dicomweb.read']);
    expect(c.auth.readScope).toBe('read');
    expect(c.auth.signedLinkMaxSeconds).toBe(60);
  });

  test('bad values are refused at start-up', () => {
    for (const [argv, env] of [
      [['--max-body-mb', '0'], {}], [['--max-viewport', 'big'], {}], [[], { REQUEST_TIMEOUT_MS: '5' }],
      [[], { API_KEYS: 'short:dicomweb.read' }], [[], { API_KEYS: 'no-colon-in-this-entry' }], [[], { SIGNED_LINK_KEY: 'too short' }],
      [[], { MIN_UPLOAD_RATE: '-1' }], [[], { UPLOAD_RATE_WINDOW_MS: '10' }], [[], { UPLOAD_TIMEOUT_MS: 'soon' }],
      [[], { AUTH_ISSUER: 'https://x' }], [[], { AUTH_ISSUER: 'https://x', AUTH_AUDIENCE: 'a' }],
      [[], { AUTH_ISSUER: 'https://x', AUTH_AUDIENCE: 'a', AUTH_JWKS_FILE: '/nonexistent.json' }],
    ] as Array<[string[], Record<string, string>]>) {
      expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    }
  });
});

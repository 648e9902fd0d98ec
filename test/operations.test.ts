/**
 * What an operator sees: structured logs of a real server process (JSON lines with request id, status, duration
 * and the failure reason of a refused store), /metrics in Prometheus format, /health and /ready, and a
 * configuration file whose settings flags and the environment override.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, ChildProcess } from 'child_process';
import request from 'supertest';
import { startServer, corpusFile, multipartBody } from './helpers/server';
import { loadConfig, ConfigError } from '../server/config';
import { resourceOf } from '../server/metrics';

const MAIN = path.join(__dirname, '..', 'server', 'main.js');

/** Starts `node dist/server/main.js` with its log on stdout; resolves once it is ready. */
function spawnServer(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; base: string; lines: () => any[] }> {
  const data = fs.mkdtempSync(path.join(os.tmpdir(), 'ops-'));
  const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--data', data, '--render-workers', '0', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => { out += d; });
  child.stderr!.on('data', (d) => { out += d; });
  const lines = () => out.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch { return { unparsed: l }; } });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line: ${out}`)), 30_000);
    child.stdout!.on('data', () => {
      const m = /ready on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ child, base: m[1], lines }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}: ${out}`)); });
  });
}
const stop = (c: ChildProcess) => new Promise<void>((r) => { c.removeAllListeners('exit'); c.on('exit', () => r()); c.kill('SIGTERM'); });

describe('structured logs of a server process', () => {
  test('JSON lines: the ready line, and a failed store with request id, status, duration and reason', async () => {
    const s = await spawnServer([]);
    try {
      const ready = s.lines().find((l) => /ready on/.test(l.msg ?? ''));
      expect(ready).toMatchObject({ level: 30, port: expect.any(Number) });
      expect(new Date(ready.time).getTime()).toBeGreaterThan(Date.now() - 120_000);
      // A bare instance body (no multipart) is refused 415; a multipart with a non-DICOM part is a 409 with a reason.
      const bad = multipartBody([Buffer.from('not a DICOM file at all, just text')]);
      const res = await fetch(`${s.base}/dicom-web/studies`, { method: 'POST', headers: { 'Content-Type': bad.contentType, 'X-Request-Id': 'gateway-42' }, body: bad.body });
      expect(res.status).toBe(409);
      expect(res.headers.get('x-request-id')).toBe('gateway-42');
      await new Promise((r) => setTimeout(r, 100));
      const line = s.lines().find((l) => l.reqId === 'gateway-42');
      expect(line).toMatchObject({ level: 40, method: 'POST', path: '/dicom-web/studies', status: 409, ms: expect.any(Number) });
      expect(line.reason).toMatch(/1 of 1 instances failed; first: 0xC000/);
      // Without --log-requests, a successful GET is not logged; a 404 is not either (only server errors and stores).
      await fetch(`${s.base}/dicom-web/studies`);
      expect(s.lines().filter((l) => l.path === '/dicom-web/studies' && l.method === 'GET')).toEqual([]);
    } finally { await stop(s.child); }
  });

  test('--log-requests logs every request; a made-up request id is not trusted', async () => {
    const s = await spawnServer(['--log-requests']);
    try {
      const r = await fetch(`${s.base}/dicom-web/studies?PatientID=1`, { headers: { 'X-Request-Id': 'has spaces and {json}' } });
      expect([200, 204]).toContain(r.status);
      const id = r.headers.get('x-request-id')!;
      expect(id).toMatch(/^[0-9a-f]{12}$/);
      await new Promise((res) => setTimeout(res, 100));
      expect(s.lines().find((l) => l.reqId === id)).toMatchObject({ level: 30, method: 'GET', status: r.status });
    } finally { await stop(s.child); }
  });

  test('a configuration error is one fatal line and exit code 2', async () => {
    await expect(spawnServer(['--dimse-ae-title', 'WAY_TOO_LONG_FOR_AN_AE'])).rejects.toThrow(/server exited 2.*dimse-ae-title/s);
  });
});

describe('/metrics, /health, /ready', () => {
  test('requests, stores, caches and the index are counted in Prometheus text format', async () => {
    const srv = await startServer({ renderWorkers: 0 });
    try {
      const { body, contentType } = multipartBody([fs.readFileSync(corpusFile('CT_small'))]);
      const stow = await request(srv.app).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
      expect(stow.status).toBe(200);
      const url = stow.body['00081199'].Value[0]['00081190'].Value[0].replace(/^https?:\/\/[^/]+/, '');
      for (let i = 0; i < 2; i++) expect((await request(srv.app).get(`${url}/frames/1/rendered`)).status).toBe(200);
      const m = await request(srv.app).get('/metrics');
      expect(m.status).toBe(200);
      expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      const value = (re: RegExp) => Number(re.exec(m.text)?.[1] ?? NaN);
      expect(value(/dicomweb_http_requests_total\{resource="studies",method="POST",status="200"\} (\d+)/)).toBeGreaterThanOrEqual(1);
      expect(value(/dicomweb_http_requests_total\{resource="studies\/\{\}\/series\/\{\}\/instances\/\{\}\/frames\/\{\}\/rendered",method="GET",status="200"\} (\d+)/)).toBeGreaterThanOrEqual(2);
      expect(m.text).toMatch(/dicomweb_http_request_duration_seconds_bucket\{le="0.005",resource="studies\/\{\}\/series\/\{\}\/instances\/\{\}\/frames\/\{\}\/rendered",method="GET"\} \d+/);
      expect(value(/dicomweb_store_instances_total\{protocol="stow",outcome="stored"\} (\d+)/)).toBeGreaterThanOrEqual(1);
      expect(value(/dicomweb_store_bytes_total\{protocol="stow"\} (\d+)/)).toBeGreaterThanOrEqual(fs.statSync(corpusFile('CT_small')).size - 200);
      expect(value(/dicomweb_cache_lookups_total\{cache="rendered",result="hit"\} (\d+)/)).toBeGreaterThanOrEqual(1);
      expect(value(/dicomweb_cache_lookups_total\{cache="rendered",result="miss"\} (\d+)/)).toBeGreaterThanOrEqual(1);
      expect(m.text).toMatch(/dicomweb_render_duration_seconds_count\{where="inline"\} \d+/);
      expect(value(/dicomweb_index_instances (\d+)/)).toBe(1);
      expect(value(/dicomweb_index_bytes (\d+)/)).toBeGreaterThan(4096);
      expect(m.text).toMatch(/dicomweb_render_queue_depth 0/);
      expect(m.text).toMatch(/process_resident_memory_bytes \d+/);
    } finally { await srv.stop(); }
  });

  test('resources are labelled by kind, never by UID', () => {
    expect(resourceOf('/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames/1,2/rendered?window=1,2')).toBe('studies/{}/series/{}/instances/{}/frames/{}/rendered');
    expect(resourceOf('/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames/3')).toBe('studies/{}/series/{}/instances/{}/frames/{}');
    expect(resourceOf('/dicom-web/studies/1.2.3/series/4.5/metadata')).toBe('studies/{}/series/{}/metadata');
    expect(resourceOf('/dicom-web/studies/1.2.3/thumbnail')).toBe('studies/{}/thumbnail');
    expect(resourceOf('/dicom-web/studies/1.2.3/series/4.5/instances/6.7/bulkdata/7FE00010/0/00091001')).toBe('studies/{}/series/{}/instances/{}/bulkdata');
    expect(resourceOf('/dicom-web/studies/1.2.3/series')).toBe('studies/{}/series');
    expect(resourceOf('/dicom-web/studies')).toBe('studies');
    expect(resourceOf('/dicom-web/instances')).toBe('instances');
    expect(resourceOf('/dicom-web')).toBe('root');
    expect(resourceOf('/dicom-web/studies/1.2.3/whatever/x')).toBe('other');
    expect(resourceOf('/anything/else')).toBe('other');
  });

  test('/ready checks the index and the store: 200 when both answer, 503 with the failing check otherwise', async () => {
    const srv = await startServer({ renderWorkers: 0 });
    try {
      expect((await request(srv.app).get('/health')).body).toEqual({ status: 'ok' });
      const ok = await request(srv.app).get('/ready');
      expect(ok.status).toBe(200);
      expect(ok.body).toEqual({ status: 'ready', checks: { index: 'ok', store: 'ok' } });
      // The staging folder made unusable (a file where the folder was): the store check fails.
      const staging = path.join(srv.dataDir, 'staging');
      fs.rmSync(staging, { recursive: true, force: true });
      fs.writeFileSync(staging, 'not a folder');
      const bad = await request(srv.app).get('/ready');
      expect(bad.status).toBe(503);
      expect(bad.body.checks.index).toBe('ok');
      expect(bad.body.checks.store).toMatch(/^failed: ENOTDIR/);
      fs.rmSync(staging); fs.mkdirSync(staging);
      expect((await request(srv.app).get('/ready')).status).toBe(200);
    } finally { await srv.stop(); }
  });
});

describe('configuration file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('JSON and YAML files set the same keys as the flags; the environment and flags override them', () => {
    const json = path.join(dir, 'server.json');
    fs.writeFileSync(json, JSON.stringify({ port: 9000, 'render-cache-mb': 64, 'dimse-port': 11112, 'dimse-allowed-aes': ['CT1', 'MR1'], 'log-requests': true }));
    const c = loadConfig(['--config', json]);
    expect(c.port).toBe(9000);
    expect(c.renderCacheBytes).toBe(64 * 1024 * 1024);
    expect(c.dimse).toMatchObject({ port: 11112, allowedAeTitles: ['CT1', 'MR1'], aeTitle: 'DICOMWEB' });
    expect(c.logRequests).toBe(true);
    expect(loadConfig(['--config', json], { PORT: '9100' }).port).toBe(9100);
    expect(loadConfig(['--config', json, '--port', '9200'], { PORT: '9100' }).port).toBe(9200);
    const yaml = path.join(dir, 'server.yaml');
    fs.writeFileSync(yaml, 'port: 9300\ncors-origins:\n  - https://viewer.example\n  - https://ris.example\n');
    expect(loadConfig([], { CONFIG_FILE: yaml })).toMatchObject({ port: 9300, corsOrigins: ['https://viewer.example', 'https://ris.example'] });
  });

  test('unknown keys, bad values and unreadable files are configuration errors with a reason', () => {
    const f = path.join(dir, 'bad.json');
    fs.writeFileSync(f, JSON.stringify({ prot: 1 }));
    expect(() => loadConfig(['--config', f])).toThrow(new ConfigError(`config ${f}: unknown setting "prot"`));
    fs.writeFileSync(f, JSON.stringify({ port: 'eighty' }));
    expect(() => loadConfig(['--config', f])).toThrow(/port must be an integer/);
    fs.writeFileSync(f, '{ not json');
    expect(() => loadConfig(['--config', f])).toThrow(/not valid JSON/);
    expect(() => loadConfig(['--config', path.join(dir, 'missing.json')])).toThrow(/cannot read/);
    expect(() => loadConfig(['--dimse-allowed-aes', 'OK,BAD\\AE'])).toThrow(/not an AE title/);
  });
});

/**
 * `--viewer` (server/viewer.ts) with a stand-in build laid out like @ohif/app's dist/: index.html and the
 * bundles' root-relative references are served rewritten under /viewer, app-config.js is generated for this
 * server, the app's routes fall back to index.html, a missing asset is a 404. The real OHIF build at /viewer
 * is driven in Chromium by e2e/ohif.e2e.ts.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import request from 'supertest';
import { startServer, TestServer } from './helpers/server';
import { loadConfig } from '../server/config';
import { OHIF_INTEGRITY, integrityOf } from '../server/ohif-dist';

const INDEX = '<!doctype html><html><head><link rel="manifest" href="/manifest.json"><script>window.PUBLIC_URL="/"</script>'
  + '<script src="/app-config.js"></script><script defer src="/app.bundle.abc.js"></script><link href="/app.bundle.css" rel="stylesheet">'
  + '<a href="https://ohif.org/">x</a></head><body><div id="root"></div></body></html>';

describe('--viewer', () => {
  let srv: TestServer;
  let dist: string;
  beforeAll(async () => {
    dist = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-ohif-'));
    fs.writeFileSync(path.join(dist, 'index.html'), INDEX);
    fs.writeFileSync(path.join(dist, 'app-config.js'), 'window.config = {};');
    fs.writeFileSync(path.join(dist, 'app.bundle.abc.js'), '/******/ (() => {\n__webpack_require__.p = "/";\nfetch("/x");\n})();');
    fs.writeFileSync(path.join(dist, '12.bundle.def.js'), 'console.log("nothing to rewrite")');
    fs.writeFileSync(path.join(dist, 'app.bundle.css'), '@font-face{src:url(/a.woff2)} .x{background:url(//cdn.example/b.png)}');
    srv = await startServer({ viewer: true, viewerDist: dist });
  });
  afterAll(async () => { await srv?.stop(); fs.rmSync(dist, { recursive: true, force: true }); });

  const text = (r: any, cb: any) => { let s = ''; r.setEncoding('utf8'); r.on('data', (c: string) => { s += c; }); r.on('end', () => cb(null, s)); };

  test('index.html names its assets and PUBLIC_URL under /viewer/, for / and any app route', async () => {
    for (const url of ['/viewer/', '/viewer/index.html', '/viewer/viewer', '/viewer/viewer/dicomweb?StudyInstanceUIDs=1.2.3']) {
      const res = await request(srv.app).get(url).buffer(true).parse(text);
      expect({ url, status: res.status }).toEqual({ url, status: 200 });
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('href="/viewer/manifest.json"');
      expect(res.body).toContain('window.PUBLIC_URL="/viewer/"');
      expect(res.body).toContain('src="/viewer/app-config.js"');
      expect(res.body).toContain('src="/viewer/app.bundle.abc.js"');
      expect(res.body).toContain('href="https://ohif.org/"'); // absolute URLs untouched
    }
  });

  test('webpack\'s public path and CSS url()s are rewritten, other bundles served as built', async () => {
    const js = await request(srv.app).get('/viewer/app.bundle.abc.js').buffer(true).parse(text);
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/javascript/);
    expect(js.body).toContain('__webpack_require__.p = "/viewer/";');
    expect(js.body).toContain('fetch("/x")'); // only the public path is touched
    const css = await request(srv.app).get('/viewer/app.bundle.css').buffer(true).parse(text);
    expect(css.body).toBe('@font-face{src:url(/viewer/a.woff2)} .x{background:url(//cdn.example/b.png)}');
    const other = await request(srv.app).get('/viewer/12.bundle.def.js').buffer(true).parse(text);
    expect(other.body).toBe('console.log("nothing to rewrite")');
  });

  test('app-config.js is generated for this server: same-origin DICOMweb root, router under /viewer', async () => {
    const res = await request(srv.app).get('/viewer/app-config.js').set('Host', 'pacs.example:8042').buffer(true).parse(text);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/javascript/);
    expect(res.body).toContain('"routerBasename": "/viewer"');
    expect(res.body).toContain('"qidoRoot": "http://pacs.example:8042/dicom-web"');
    expect(res.body).toContain('"wadoRoot": "http://pacs.example:8042/dicom-web"');
  });

  test('a missing asset is a 404, the front page learns where the viewer is', async () => {
    expect((await request(srv.app).get('/viewer/nothing.bundle.js')).status).toBe(404);
    expect((await request(srv.app).get('/ui-config.json')).body.viewer).toBe('/viewer/');
  });

  test('flags and environment; a folder without a build is refused at start', async () => {
    expect(loadConfig(['--viewer']).viewer).toBe(true);
    expect(loadConfig([], { VIEWER: '1', OHIF_DIST: '/x' })).toMatchObject({ viewer: true, viewerDist: '/x' });
    expect(loadConfig([]).viewer).toBe(false);
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'no-ohif-'));
    await expect(startServer({ viewer: true, viewerDist: empty })).rejects.toThrow(/holds no index.html/);
    fs.rmSync(empty, { recursive: true, force: true });
  });

  test('the integrity check is the registry\'s sha512 form', () => {
    const f = path.join(dist, 'index.html');
    expect(integrityOf(f)).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
    expect(OHIF_INTEGRITY).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
  });
});

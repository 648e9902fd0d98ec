/**
 * The front page at `/` and its assets: served by the server itself with the right media types, a strict
 * Content-Security-Policy, no data in the HTML, and /ui-config.json telling the page what is enabled. What the
 * page does in a browser is driven by e2e/front-page.e2e.ts (Chromium).
 */
import request from 'supertest';
import { startServer, TestServer } from './helpers/server';

describe('front page', () => {
  let srv: TestServer;
  let withAuth: TestServer;
  beforeAll(async () => {
    srv = await startServer();
    withAuth = await startServer({}, ['--api-keys', 'front-page-test-key-0123456789:dicomweb.read dicomweb.write', '--signed-link-key', 'k'.repeat(40)]);
  });
  afterAll(async () => { await srv?.stop(); await withAuth?.stop(); });

  const csp = (v: string | undefined) => {
    expect(v).toBeDefined();
    const d = new Map(v!.split(';').map((s) => s.trim().split(/\s+/)).map(([k, ...rest]) => [k, rest]));
    expect(d.get('default-src')).toEqual(["'none'"]);
    expect(d.get('script-src')).toEqual(["'self'"]); // no inline script, no eval
    expect(d.get('style-src')).toEqual(["'self'"]);
    expect(d.get('connect-src')).toEqual(["'self'"]);
    expect(d.get('frame-ancestors')).toEqual(["'none'"]);
  };

  test.each([
    ['/', /^text\/html; charset=utf-8/, /<script type="module" src="\/ui\/app.js">/],
    ['/index.html', /^text\/html/, /<table id="studies">/],
    ['/ui/app.js', /^text\/javascript; charset=utf-8/, /\/ui-config.json/],
    ['/ui/style.css', /^text\/css; charset=utf-8/, /#drop/],
  ])('%s is served with its type, a strict CSP and nosniff', async (url, type, body) => {
    const res = await request(srv.app).get(url).buffer(true).parse((r, cb) => { let s = ''; r.setEncoding('utf8'); r.on('data', (c: string) => { s += c; }); r.on('end', () => cb(null, s)); });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(type);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    csp(res.headers['content-security-policy']);
    expect(res.body).toMatch(body);
  });

  test('the page script never writes server data as HTML', async () => {
    const res = await request(srv.app).get('/ui/app.js').buffer(true).parse((r, cb) => { let s = ''; r.setEncoding('utf8'); r.on('data', (c: string) => { s += c; }); r.on('end', () => cb(null, s)); });
    expect(res.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write\(/);
  });

  test('an unknown asset is a JSON 404, not the page', async () => {
    const res = await request(srv.app).get('/ui/nothing.js');
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: 'no such resource' });
  });

  test('/ui-config.json says what is enabled, without auth or secrets', async () => {
    const off = await request(srv.app).get('/ui-config.json');
    expect(off.status).toBe(200);
    expect(off.body).toEqual({ dicomWebRoot: '/dicom-web', auth: false, signedLinks: false, viewer: null });
    const on = await request(withAuth.app).get('/ui-config.json'); // no token: the page must load to ask for one
    expect(on.status).toBe(200);
    expect(on.body).toEqual({ dicomWebRoot: '/dicom-web', auth: true, signedLinks: true, viewer: null });
    expect(JSON.stringify(on.body)).not.toContain('front-page-test-key');
    // the page is public, the data is not
    expect((await request(withAuth.app).get('/')).status).toBe(200);
    expect((await request(withAuth.app).get('/dicom-web/studies')).status).toBe(401);
  });
});

/**
 * Authentication and authorisation through the real server process: OpenID Connect JWTs checked against a JWKS
 * served over HTTP (and one read from a file), static API keys, scopes per route, CORS preflight, private
 * caching, and signed links to rendered images.
 *
 * Tokens are made here with node:crypto (RS256 per RFC 7518 3.3), independently of the jose library the server
 * verifies them with.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import * as crypto from 'crypto';
import request from 'supertest';
import { spawnServer, ChildServer } from './helpers/auth-child-server';
import { corpusFile, multipartBody, readUids } from './helpers/server';
import { signRenderedPath } from '../server/signed-links';

const ISSUER = 'https://issuer.example.test/realms/dicom';
const AUDIENCE = 'dicomweb-api';
const READ = 'dicomweb.read';
const WRITE = 'dicomweb.write';
const READER_KEY = 'reader-key-0123456789abcdef';
const WRITER_KEY = 'writer-key-0123456789abcdef';
const LINK_KEY = 'signed-link-key-0123456789abcdef-0123456789';

const rsa = () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const good = rsa();
const other = rsa(); // same kid, different key: a forged signature
const KID = 'test-key-1';
const jwk = { ...(good.publicKey.export({ format: 'jwk' }) as object), kid: KID, alg: 'RS256', use: 'sig' };

function jwt(claims: Record<string, unknown>, key: crypto.KeyObject = good.privateKey): string {
  const now = Math.floor(Date.now() / 1000);
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: KID })).toString('base64url');
  const payload = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'user-1', iat: now, exp: now + 600, ...claims })).toString('base64url');
  const sig = crypto.sign('sha256', Buffer.from(`${header}.${payload}`), key).toString('base64url');
  return `${header}.${payload}.${sig}`;
}

const now = () => Math.floor(Date.now() / 1000);
const tokens = {
  read: () => jwt({ scope: READ }),
  write: () => jwt({ scope: `${READ} ${WRITE}` }),
  expired: () => jwt({ scope: `${READ} ${WRITE}`, iat: now() - 7200, exp: now() - 3600 }),
  wrongAudience: () => jwt({ scope: `${READ} ${WRITE}`, aud: 'someone-else' }),
  wrongIssuer: () => jwt({ scope: `${READ} ${WRITE}`, iss: 'https://evil.example.test' }),
  wrongSignature: () => jwt({ scope: `${READ} ${WRITE}` }, other.privateKey),
  garbage: () => 'not.a.jwt',
};

let jwks: http.Server;
let jwksUrl: string;
let srv: ChildServer;
let dataDir: string;
const ct = readUids().find((u) => u.file === 'CT_small')!;
const ctBytes = fs.readFileSync(corpusFile('CT_small'));
const inst = `/dicom-web/studies/${ct.study}/series/${ct.series}/instances/${ct.instance}`;

beforeAll(async () => {
  jwks = http.createServer((req, res) => {
    if (req.url === '/jwks') { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ keys: [jwk] })); return; }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as any).port}/jwks`;
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-auth-'));
  srv = await spawnServer(dataDir, ['--render-workers', '1', '--cors-origins', '*'], {
    AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_JWKS_URL: jwksUrl,
    API_KEYS: `${READER_KEY}:${READ},${WRITER_KEY}:${READ} ${WRITE}`, SIGNED_LINK_KEY: LINK_KEY,
  });
  const { body, contentType } = multipartBody([ctBytes]);
  const res = await request(srv.url).post('/dicom-web/studies').set('Authorization', `Bearer ${tokens.write()}`).set('Content-Type', contentType).send(body);
  expect(res.status).toBe(200);
});

afterAll(async () => {
  await srv?.stop();
  await new Promise<void>((r) => jwks.close(() => r()));
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Every route of the service, with the Accept header a client would send. */
const READ_ROUTES: Array<[string, string]> = [
  ['/dicom-web/studies', 'application/dicom+json'],
  ['/dicom-web/series', 'application/dicom+json'],
  ['/dicom-web/instances', 'application/dicom+json'],
  [`/dicom-web/studies/${ct.study}/series`, 'application/dicom+json'],
  [`/dicom-web/studies/${ct.study}/instances`, 'application/dicom+json'],
  [`/dicom-web/studies/${ct.study}/series/${ct.series}/instances`, 'application/dicom+json'],
  [`/dicom-web/studies/${ct.study}`, 'multipart/related; type="application/dicom"'],
  [`/dicom-web/studies/${ct.study}/series/${ct.series}`, 'multipart/related; type="application/dicom"'],
  [inst, 'multipart/related; type="application/dicom"'],
  [`/dicom-web/studies/${ct.study}/metadata`, 'application/dicom+json'],
  [`/dicom-web/studies/${ct.study}/series/${ct.series}/metadata`, 'application/dicom+json'],
  [`${inst}/metadata`, 'application/dicom+json'],
  [`${inst}/frames/1`, 'multipart/related; type="application/octet-stream"'],
  [`${inst}/bulkdata/7FE00010`, 'multipart/related; type="application/octet-stream"'],
  [`${inst}/rendered`, 'image/png'],
  [`${inst}/frames/1/rendered`, 'image/png'],
  [`/dicom-web/studies/${ct.study}/series/${ct.series}/rendered`, 'multipart/related; type="image/png"'],
  [`/dicom-web/studies/${ct.study}/rendered`, 'multipart/related; type="image/png"'],
  [`${inst}/thumbnail`, 'image/png'],
  [`${inst}/frames/1/thumbnail`, 'image/png'],
  [`/dicom-web/studies/${ct.study}/series/${ct.series}/thumbnail`, 'image/png'],
  [`/dicom-web/studies/${ct.study}/thumbnail`, 'image/png'],
];

type Call = (auth?: string) => request.Test;
const calls: Array<[string, Call, 'read' | 'write']> = [
  ...READ_ROUTES.map(([p, accept]): [string, Call, 'read'] => [`GET ${p}`, (auth) => {
    const r = request(srv.url).get(p).set('Accept', accept);
    return auth ? r.set('Authorization', auth) : r;
  }, 'read']),
  ...['/dicom-web/studies', `/dicom-web/studies/${ct.study}`].map((p): [string, Call, 'write'] => [`POST ${p}`, (auth) => {
    const { body, contentType } = multipartBody([ctBytes]);
    const r = request(srv.url).post(p).set('Content-Type', contentType).set('Accept', 'application/dicom+json');
    return (auth ? r.set('Authorization', auth) : r).send(body);
  }, 'write']),
  ['POST /dicom-web/signed-links', (auth) => {
    const r = request(srv.url).post('/dicom-web/signed-links').set('Content-Type', 'application/json');
    return (auth ? r.set('Authorization', auth) : r).send({ path: `${inst}/rendered` });
  }, 'read'],
];

describe('bearer tokens (OpenID Connect, JWKS over HTTP)', () => {
  test.each(calls)('%s: refused without a valid token, served with one', async (_name, call, needs) => {
    const missing = await call();
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer realm=/);
    expect(missing.body.error).toMatch(/authentication required/);
    for (const [kind, make] of Object.entries(tokens)) {
      if (kind === 'read' || kind === 'write') continue;
      const res = await call(`Bearer ${make()}`);
      expect({ kind, status: res.status }).toEqual({ kind, status: 401 });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
      expect(typeof res.body.error).toBe('string');
    }
    const read = await call(`Bearer ${tokens.read()}`);
    if (needs === 'write') {
      expect(read.status).toBe(403);
      expect(read.headers['www-authenticate']).toMatch(/insufficient_scope/);
    } else {
      expect(read.status).toBe(200);
    }
    const write = await call(`Bearer ${tokens.write()}`);
    expect(write.status).toBe(200);
  });

  test('a token without the scope claim, or with scp as a list, is judged by its scopes', async () => {
    const none = await request(srv.url).get('/dicom-web/studies').set('Authorization', `Bearer ${jwt({})}`);
    expect(none.status).toBe(403);
    const scp = await request(srv.url).get('/dicom-web/studies').set('Authorization', `Bearer ${jwt({ scp: [READ] })}`);
    expect(scp.status).toBe(200);
  });

  test('a token issued in the future beyond the clock skew (60 s) is 401; within it, accepted', async () => {
    const future = await request(srv.url).get('/dicom-web/studies').set('Authorization', `Bearer ${jwt({ scope: READ, iat: now() + 3600 })}`);
    expect(future.status).toBe(401);
    expect(future.headers['www-authenticate']).toMatch(/invalid_token/);
    expect(future.body.error).toMatch(/iat claim is in the future/);
    expect((await request(srv.url).get('/dicom-web/studies').set('Authorization', `Bearer ${jwt({ scope: READ, iat: now() + 20 })}`)).status).toBe(200);
  });

  test('malformed Authorization headers are 401', async () => {
    for (const h of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', `Bearer ${'x'.repeat(5000)}`, `Token ${tokens.read()}`]) {
      const res = await request(srv.url).get('/dicom-web/studies').set('Authorization', h);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
  });

  test('/health needs no credentials; CORS preflight passes without them', async () => {
    expect((await request(srv.url).get('/health')).status).toBe(200);
    const pre = await request(srv.url).options('/dicom-web/studies').set('Origin', 'https://viewer.example.test')
      .set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'authorization, content-type');
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('*');
  });

  test('rendered responses are private when authentication is on', async () => {
    const res = await request(srv.url).get(`${inst}/rendered`).set('Accept', 'image/png').set('Authorization', `Bearer ${tokens.read()}`);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toMatch(/^private/);
  });
});

describe('static API keys', () => {
  test('a read key reads but cannot store; a write key stores; an unknown key is 401', async () => {
    const { body, contentType } = multipartBody([ctBytes]);
    const stow = (key: string) => request(srv.url).post('/dicom-web/studies').set('Authorization', `Bearer ${key}`).set('Content-Type', contentType).send(body);
    expect((await request(srv.url).get(`${inst}/metadata`).set('Authorization', `Bearer ${READER_KEY}`)).status).toBe(200);
    expect((await stow(READER_KEY)).status).toBe(403);
    expect((await stow(WRITER_KEY)).status).toBe(200);
    const unknown = await request(srv.url).get('/dicom-web/studies').set('Authorization', `Bearer ${READER_KEY}x`);
    expect(unknown.status).toBe(401);
    expect(unknown.headers['www-authenticate']).toMatch(/invalid_token/);
  });
});

describe('signed links to rendered images', () => {
  const mint = async (p: string, expiresIn?: number, accept?: string) => request(srv.url).post('/dicom-web/signed-links')
    .set('Authorization', `Bearer ${READER_KEY}`).send({ path: p, expiresIn, accept });

  test('a minted link serves exactly its image without credentials', async () => {
    const res = await mint(`${inst}/frames/1/rendered?window=40,400&viewport=64,64`, 600, 'image/png');
    expect(res.status).toBe(200);
    const url = new URL(res.body.url);
    expect(url.searchParams.get('expires')).toBe(String(res.body.expires));
    const own = url.pathname + url.search;
    const img = await request(srv.url).get(own).set('Accept', 'image/png');
    expect(img.status).toBe(200);
    expect(img.headers['content-type']).toBe('image/png');
    expect(img.headers['cache-control']).toMatch(/^private/);
    // parameters in another order are the same canonical query
    const reordered = `${url.pathname}?viewport=64,64&accept=image%2Fpng&signature=${url.searchParams.get('signature')}&window=40,400&expires=${res.body.expires}`;
    expect((await request(srv.url).get(reordered).set('Accept', 'image/png')).status).toBe(200);

    const refused = [
      own.replace('window=40%2C400', 'window=40%2C401').replace('window=40,400', 'window=40,401'), // other query
      own.replace('viewport=64,64&', '').replace('viewport=64%2C64&', ''), // query parameter removed
      `${own}&quality=90`, // query parameter added
      own.replace('/frames/1/rendered', '/rendered'), // other path
      own.replace('/frames/1/rendered', '/metadata'), // not a rendered resource
      own.replace(/signature=[^&]+/, 'signature=AAAA'), // tampered signature
      own.replace(/expires=\d+/, `expires=${res.body.expires + 1}`), // extended expiry
    ];
    for (const u of refused) {
      const r = await request(srv.url).get(u).set('Accept', 'image/png');
      expect({ u, status: r.status }).toEqual({ u, status: 403 });
      expect(typeof r.body.error).toBe('string');
    }
    // the signature does not turn into a credential for a POST either
    expect((await request(srv.url).post(own).send('x')).status).toBe(403);
  });

  test('an expired link is 403; links are signed by the exported function the same way', async () => {
    const key = Buffer.from(LINK_KEY);
    const past = signRenderedPath(key, `${inst}/rendered`, now() - 10);
    const r = await request(srv.url).get(past).set('Accept', 'image/png');
    expect(r.status).toBe(403);
    expect(r.body.error).toMatch(/expired/);
    const future = signRenderedPath(key, `${inst}/rendered?viewport=32,32`, now() + 60);
    expect((await request(srv.url).get(future).set('Accept', 'image/png')).status).toBe(200);
    const wrongKey = signRenderedPath(Buffer.from('another-key-0123456789abcdef-0123456789'), `${inst}/rendered`, now() + 60);
    expect((await request(srv.url).get(wrongKey).set('Accept', 'image/png')).status).toBe(403);
  });

  test('a link binds its media type: another Accept gets the signed type, never every frame as multipart', async () => {
    const mf = readUids().find((u) => u.file === 'SC_rgb_2frame')!;
    const { body, contentType } = multipartBody([fs.readFileSync(corpusFile('SC_rgb_2frame'))]);
    expect((await request(srv.url).post('/dicom-web/studies').set('Authorization', `Bearer ${WRITER_KEY}`).set('Content-Type', contentType).send(body)).status).toBe(200);
    const mfInst = `/dicom-web/studies/${mf.study}/series/${mf.series}/instances/${mf.instance}`;
    const minted = await mint(`${mfInst}/rendered`, 600, 'image/png');
    expect(minted.status).toBe(200);
    const u = new URL(minted.body.url);
    const own = u.pathname + u.search;
    expect(u.searchParams.get('accept')).toBe('image/png');
    for (const accept of ['multipart/related; type="image/png"', 'multipart/related; type="image/jpeg"', 'image/jpeg', '*/*']) {
      const r = await request(srv.url).get(own).set('Accept', accept);
      expect({ accept, status: r.status, type: r.headers['content-type'] }).toEqual({ accept, status: 200, type: 'image/png' });
    }
    // without a media type given, a link renders PS3.18's default, image/jpeg
    const dflt = new URL((await mint(`${mfInst}/rendered`, 600)).body.url);
    expect(dflt.searchParams.get('accept')).toBe('image/jpeg');
    const r = await request(srv.url).get(dflt.pathname + dflt.search).set('Accept', 'multipart/related; type="image/png"');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('image/jpeg');
    // another accept added to the link, or one taken out, breaks the signature
    expect((await request(srv.url).get(`${own}&accept=multipart%2Frelated`)).status).toBe(403);
    expect((await request(srv.url).get(own.replace(/accept=[^&]+&?/, ''))).status).toBe(403);
    // a link signed without a media type (by hand, or before links bound it) is refused with the reason
    const expires = now() + 60;
    const path = `${mfInst}/rendered`;
    const sig = crypto.createHmac('sha256', Buffer.from(LINK_KEY)).update(`GET\n${path}\n\n${expires}`).digest('base64url');
    const old = await request(srv.url).get(`${path}?expires=${expires}&signature=${sig}`).set('Accept', 'image/png');
    expect(old.status).toBe(403);
    expect(old.body.error).toMatch(/must name its media type/);
    // minting refuses a type a link cannot bind
    expect((await mint(`${mfInst}/rendered`, 600, 'multipart/related')).status).toBe(400);
    expect((await mint(`${mfInst}/rendered?accept=image/gif`, 600)).status).toBe(400);
  });

  test('minting: only rendered paths, bounded lifetime, authenticated', async () => {
    expect((await mint(`${inst}/metadata`)).status).toBe(400);
    expect((await mint(`${inst}/rendered`, 10 ** 9)).status).toBe(400);
    expect((await mint(`${inst}/rendered`, -1)).status).toBe(400);
    expect((await request(srv.url).post('/dicom-web/signed-links').send({ path: `${inst}/rendered` })).status).toBe(401);
    const rel = await mint(`/studies/${ct.study}/thumbnail`);
    expect(rel.status).toBe(200);
    expect(rel.body.url).toMatch(new RegExp(`^${srv.base}/studies/${ct.study}/thumbnail\\?accept=image%2Fjpeg&expires=\\d+&signature=`));
  });
});

describe('JWKS unreachable or failing', () => {
  test.each([
    ['nothing listening', async () => { const s = http.createServer(); await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r())); const port = (s.address() as any).port; await new Promise<void>((r) => s.close(() => r())); return { url: `http://127.0.0.1:${port}/jwks`, close: async () => undefined }; }],
    ['answering 500', async () => {
      const s = http.createServer((_q, r) => { r.writeHead(500).end('down'); });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      return { url: `http://127.0.0.1:${(s.address() as any).port}/jwks`, close: () => new Promise<void>((r) => s.close(() => r())) };
    }],
    ['answering not JSON', async () => {
      const s = http.createServer((_q, r) => { r.writeHead(200, { 'Content-Type': 'application/json' }).end('<html>'); });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      return { url: `http://127.0.0.1:${(s.address() as any).port}/jwks`, close: () => new Promise<void>((r) => s.close(() => r())) };
    }],
  ])('%s: a JWT gets 503 with the reason (not 401), API keys still work', async (_name, make) => {
    const keys = await make();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-auth-down-'));
    const s = await spawnServer(path.join(dir, 'data'), ['--render-workers', '0'], {
      AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_JWKS_URL: keys.url, API_KEYS: `${READER_KEY}:${READ}`,
    });
    try {
      const res = await request(s.url).get('/dicom-web/studies').set('Authorization', `Bearer ${tokens.read()}`);
      expect(res.status).toBe(503);
      expect(res.body.error).toMatch(/keys are unavailable/);
      expect(res.headers['www-authenticate']).toBeUndefined();
      expect((await request(s.url).get('/dicom-web/studies').set('Authorization', `Bearer ${READER_KEY}`)).status).toBe(204);
      expect(s.output()).toMatch(/auth: the JWKS at .* is unavailable/);
    } finally {
      await s.stop();
      await keys.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('JWKS from a local file', () => {
  test('valid tokens pass; forged, expired and wrong-audience ones are 401', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-auth-file-'));
    const file = path.join(dir, 'jwks.json');
    fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }));
    const s = await spawnServer(path.join(dir, 'data'), ['--render-workers', '0', '--auth-issuer', ISSUER, '--auth-audience', AUDIENCE, '--auth-jwks-file', file]);
    try {
      expect((await request(s.url).get('/dicom-web/studies').set('Authorization', `Bearer ${tokens.read()}`)).status).toBe(204);
      for (const bad of [tokens.wrongSignature(), tokens.expired(), tokens.wrongAudience(), tokens.wrongIssuer()]) {
        expect((await request(s.url).get('/dicom-web/studies').set('Authorization', `Bearer ${bad}`)).status).toBe(401);
      }
      expect((await request(s.url).get('/dicom-web/studies')).status).toBe(401);
    } finally {
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

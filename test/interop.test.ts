/**
 * What real clients failed on (issue 15), through HTTP on an ephemeral (non-default) port:
 * - multipart boundaries longer than RFC 2046's 70 characters (Orthanc 1.10 sends 73);
 * - `application/dicom+json` with no parameters (dicomweb-client for Python compares the media type exactly);
 * - RetrieveURL / BulkDataURI usable by a client whose Host header has no port (dicomweb-client for Python sends
 *   `Host: 127.0.0.1` on every non-streamed request), and never built from a malformed Host value.
 * The Python client cannot be installed here (no PyPI): its exact checks, read from ImagingDataCommons/
 * dicomweb-client src/dicomweb_client/web.py, are emulated below (see `python*` helpers).
 */
import * as fs from 'fs';
import * as http from 'http';
import { startServer, TestServer, corpusFile } from './helpers/server';

let srv: TestServer;
let port: number;
beforeAll(async () => {
  srv = await startServer();
  port = Number(new URL(srv.url).port);
});
afterAll(async () => { await srv.stop(); });

interface Raw { status: number; headers: http.IncomingHttpHeaders; body: Buffer }
/** A request with exactly the headers given (Host included), the way a client library sends it. */
function raw(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, setHost: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A multipart/related body the way the senders we know write it, with the given boundary. */
function stowBody(boundary: string, files: Buffer[]): Buffer {
  const chunks: Buffer[] = [];
  for (const f of files) chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/** dicomweb-client (Python) `_http_post_multipart_application_dicom`: the payload is decoded only on an exact match. */
function pythonAcceptsJsonResponse(contentType: string | undefined): boolean {
  return contentType === 'application/dicom+json' || contentType === 'application/json';
}

/** dicomweb-client (Python) `__init__`: the URL pattern it splits base URLs (and so the URIs it is given) with. */
function pythonUrlParts(url: string): { scheme: string; host: string; port: number } {
  const m = /^(?<scheme>[https]+):\/\/(?<host>[^/:]+)(?::(?<port>\d+))?(?:(?<prefix>\/[\w/]+))?/.exec(url);
  if (!m) throw new Error(`Malformed URL: ${url}`);
  return { scheme: m.groups!.scheme, host: m.groups!.host, port: m.groups!.port ? Number(m.groups!.port) : m.groups!.scheme === 'https' ? 443 : 80 };
}

/** dicomweb-client (Python) `_decode_multipart_message` + `_extract_part_content`. */
function pythonDecodeMultipart(contentType: string, data: Buffer): Buffer[] {
  const [mediaType, ...info] = contentType.split(';').map((s) => s.trim());
  if (mediaType.toLowerCase() !== 'multipart/related') throw new Error(`Unexpected media type: "${mediaType}"`);
  const b = info.map((i) => i.split('=')).find(([k]) => k.toLowerCase() === 'boundary');
  if (!b) return [data];
  const delimiter = Buffer.from(`\r\n--${b.slice(1).join('=').replace(/^"|"$/g, '')}`);
  const out: Buffer[] = [];
  const extract = (part: Buffer) => {
    if (part.length === 0 || part.equals(Buffer.from('--')) || part.equals(Buffer.from('\r\n')) || part.subarray(0, 4).equals(Buffer.from('--\r\n'))) return;
    const idx = part.indexOf('\r\n\r\n');
    if (idx < 0) throw new Error('Message part does not contain CRLF CRLF');
    out.push(part.subarray(idx + 4));
  };
  let prev = 0;
  for (;;) {
    const i = data.indexOf(delimiter, prev);
    if (i < 0) break;
    extract(data.subarray(prev, i));
    prev = i + delimiter.length;
  }
  extract(data.subarray(prev));
  return out;
}

const MR = fs.readFileSync(corpusFile('MR_small'));
const CT = fs.readFileSync(corpusFile('CT_small'));

describe('multipart boundaries of real senders', () => {
  // Orthanc 1.10 (73 characters), dicomweb-client Python (a quoted UUID), dcm4che stowrs ("myboundary"-style),
  // and the longest we take.
  const orthanc73 = `${'-'.repeat(9)}${'a1b2c3d4e5f6'.repeat(6)}`.slice(0, 73);
  for (const [who, boundary, quoted] of [
    ['Orthanc 1.10 (73 characters)', orthanc73, false],
    ['dicomweb-client Python (quoted)', '0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1', true],
    ['200 characters', 'x'.repeat(200), false],
  ] as Array<[string, string, boolean]>) {
    test(`accepts ${who}`, async () => {
      expect(boundary.length).toBeGreaterThan(0);
      const ct = `multipart/related; type="application/dicom"; boundary=${quoted ? `"${boundary}"` : boundary}`;
      const res = await raw('POST', '/dicom-web/studies', { Host: `127.0.0.1:${port}`, 'Content-Type': ct, Accept: 'application/dicom+json' }, stowBody(boundary, [MR]));
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())['00081199'].Value).toHaveLength(1);
    });
  }
  test('refuses a boundary over 200 characters with a reason', async () => {
    const boundary = 'y'.repeat(201);
    const res = await raw('POST', '/dicom-web/studies', { Host: `127.0.0.1:${port}`, 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` }, stowBody(boundary, [MR]));
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).error).toMatch(/200/);
  });
});

describe('application/dicom+json carries no parameters', () => {
  test('STOW, QIDO at each level and metadata: the exact media type the Python client compares', async () => {
    const boundary = '0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1';
    const stow = await raw('POST', '/dicom-web/studies', { Host: '127.0.0.1', 'Content-Type': `multipart/related; type="application/dicom"; boundary="${boundary}"` }, stowBody(boundary, [CT]));
    expect(stow.status).toBe(200);
    expect(stow.headers['content-type']).toBe('application/dicom+json');
    expect(pythonAcceptsJsonResponse(stow.headers['content-type'])).toBe(true);
    const sop = JSON.parse(stow.body.toString())['00081199'].Value[0]['00081155'].Value[0];
    for (const path of ['/dicom-web/studies', '/dicom-web/series', `/dicom-web/instances?SOPInstanceUID=${sop}`]) {
      const res = await raw('GET', path, { Host: `127.0.0.1:${port}`, Accept: 'application/dicom+json' });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/dicom+json');
    }
    const instanceUrl = JSON.parse(stow.body.toString())['00081199'].Value[0]['00081190'].Value[0];
    const md = await raw('GET', `${new URL(instanceUrl).pathname}/metadata`, { Host: `127.0.0.1:${port}`, Accept: 'application/dicom+json' });
    expect(md.status).toBe(200);
    expect(md.headers['content-type']).toBe('application/dicom+json');
  });
});

describe('URIs a client on a non-default port can use without --public-url', () => {
  let stowJson: any;
  beforeAll(async () => {
    // The Python client's STOW: Host without the port, a quoted boundary.
    const boundary = '0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1';
    const res = await raw('POST', '/dicom-web/studies', { Host: '127.0.0.1', 'Content-Type': `multipart/related; type="application/dicom"; boundary="${boundary}"` }, stowBody(boundary, [MR]));
    expect(res.status).toBe(200);
    stowJson = JSON.parse(res.body.toString());
  });

  test('STOW RetrieveURLs from a Host header without a port carry the port the client connected to', async () => {
    const urls = [stowJson['00081190'].Value[0], stowJson['00081199'].Value[0]['00081190'].Value[0]];
    for (const u of urls) {
      expect(pythonUrlParts(u)).toEqual({ scheme: 'http', host: '127.0.0.1', port });
      const res = await raw('GET', new URL(u).pathname, { Host: '127.0.0.1' });
      expect(res.status).toBe(200);
    }
  });

  test('metadata BulkDataURI from a Host header without a port: retrieve_bulkdata gets the pixel data', async () => {
    const instanceUrl: string = stowJson['00081199'].Value[0]['00081190'].Value[0];
    const md = await raw('GET', `${new URL(instanceUrl).pathname}/metadata`, { Host: '127.0.0.1', Accept: 'application/dicom+json' });
    expect(md.status).toBe(200);
    const uri: string = JSON.parse(md.body.toString())[0]['7FE00010'].BulkDataURI;
    const parts = pythonUrlParts(uri);
    expect(parts).toEqual({ scheme: 'http', host: '127.0.0.1', port });
    // retrieve_bulkdata(uri) with no media types: Accept multipart/related; type="*/*", Host without port.
    const res = await raw('GET', new URL(uri).pathname, { Host: '127.0.0.1', Accept: 'multipart/related; type="*/*"' });
    expect(res.status).toBe(200);
    const [pixels] = pythonDecodeMultipart(res.headers['content-type']!, res.body);
    expect(pixels.length).toBe(64 * 64 * 2);
  });

  test('QIDO RetrieveURL keeps the Host header port when there is one (port mapping by a proxy)', async () => {
    const res = await raw('GET', '/dicom-web/studies', { Host: 'viewer.example:8443', Accept: 'application/dicom+json' });
    const url: string = JSON.parse(res.body.toString())[0]['00081190'].Value[0];
    expect(url.startsWith('http://viewer.example:8443/dicom-web/studies/')).toBe(true);
  });

  test('a malformed Host value never reaches a URI: the address connected to is used instead', async () => {
    for (const host of ['evil.example/phish?', 'a@evil.example', 'x y', 'evil.example:99999', '"><script>']) {
      const res = await raw('GET', '/dicom-web/studies', { Host: host, Accept: 'application/dicom+json' });
      expect(res.status).toBe(200);
      const url: string = JSON.parse(res.body.toString())[0]['00081190'].Value[0];
      expect(url.startsWith(`http://127.0.0.1:${port}/dicom-web/studies/`)).toBe(true);
    }
  });
});

describe('Accept and parameters (PS3.18 8.3, 8.7)', () => {
  let instancePath: string;
  beforeAll(async () => {
    const boundary = 'b-accept-params';
    const res = await raw('POST', '/dicom-web/studies', { Host: `127.0.0.1:${port}`, 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` }, stowBody(boundary, [CT]));
    expect(res.status).toBe(200);
    instancePath = new URL(JSON.parse(res.body.toString())['00081199'].Value[0]['00081190'].Value[0]).pathname;
  });

  test('Accept: application/dicom (single part) on an instance: the Part 10 file as the whole body', async () => {
    const res = await raw('GET', instancePath, { Host: `127.0.0.1:${port}`, Accept: 'application/dicom' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/dicom; transfer-syntax=1.2.840.10008.1.2.1');
    expect(res.body.equals(CT)).toBe(true);
    const multi = await raw('GET', instancePath, { Host: `127.0.0.1:${port}`, Accept: 'multipart/related; type="application/dicom"' });
    expect(multi.headers['content-type']).toMatch(/^multipart\/related/);
  });

  test('unknown QIDO parameters are ignored with a Warning; invalid values of supported ones stay 400', async () => {
    const ok = await raw('GET', '/dicom-web/studies?NoSuchKey=1&PatientID=*', { Host: `127.0.0.1:${port}`, Accept: 'application/dicom+json' });
    expect(ok.status).toBe(200);
    expect(String(ok.headers.warning)).toMatch(/NoSuchKey/);
    for (const q of ['limit=-1', 'StudyDate=2020-13-45', 'fuzzymatching=maybe', 'StudyInstanceUID=1.2.x']) {
      const bad = await raw('GET', `/dicom-web/studies?${q}`, { Host: `127.0.0.1:${port}`, Accept: 'application/dicom+json' });
      expect([q, bad.status]).toEqual([q, 400]);
    }
  });
});

describe('a study whose instances lack Modality (OHIF 3.13 study list)', () => {
  /** OHIF 3.13.2 @ohif/core DICOMWeb/getModalities, as its app bundle has it: what the study list runs per study. */
  function ohifGetModalities(Modality: any, ModalitiesInStudy: any): any {
    if (!Modality && !ModalitiesInStudy) return {};
    const modalities = Modality || { vr: 'CS', Value: [] };
    modalities.Value = modalities.Value || [];
    if (ModalitiesInStudy) {
      if (modalities.vr && modalities.vr === ModalitiesInStudy.vr) {
        for (let i = 0; i < ModalitiesInStudy.Value.length; i++) {
          const value = ModalitiesInStudy.Value[i];
          if (modalities.Value.indexOf(value) === -1) modalities.Value.push(value);
        }
      } else {
        return ModalitiesInStudy;
      }
    }
    return modalities;
  }
  const NOMOD = fs.readFileSync(`${__dirname}/../../test/fixtures/derived/CT_small_no_modality.dcm`);

  test('the study list query OHIF sends: every study passes its getModalities; ModalitiesInStudy is left out only when empty', async () => {
    const boundary = 'b-no-modality';
    const stored = await raw('POST', '/dicom-web/studies', { Host: `127.0.0.1:${port}`, 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` }, stowBody(boundary, [NOMOD]));
    expect(stored.status).toBe(200);
    const q = '/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030%2C00080060%2C00080090%2C00100030';
    const res = await raw('GET', q, { Host: `127.0.0.1:${port}`, Accept: 'application/dicom+json' });
    expect(res.status).toBe(200);
    const studies = JSON.parse(res.body.toString());
    const nomod = studies.find((s: any) => s['0020000D'].Value[0] === '2.25.1500');
    expect(nomod).toBeDefined();
    expect(nomod['00080061']).toBeUndefined();
    for (const s of studies) expect(() => ohifGetModalities(s['00080060'], s['00080061'])).not.toThrow();
    const other = studies.find((s: any) => s['0020000D'].Value[0] !== '2.25.1500');
    expect(other['00080061'].Value.length).toBeGreaterThan(0);
    // The zero-length form that OHIF fails on, as Orthanc sends it, really throws there (this is what was fixed).
    expect(() => ohifGetModalities(undefined, { vr: 'CS' })).toThrow(/length/);
    // Asked for by name, it is returned zero-length, as PS3.18 F.2.5 encodes an empty attribute.
    const named = await raw('GET', '/dicom-web/studies?StudyInstanceUID=2.25.1500&includefield=ModalitiesInStudy', { Host: `127.0.0.1:${port}`, Accept: 'application/dicom+json' });
    expect(JSON.parse(named.body.toString())[0]['00080061']).toEqual({ vr: 'CS' });
  });
});

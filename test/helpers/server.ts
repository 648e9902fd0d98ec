/**
 * Test helpers: a real server on an ephemeral port over a temporary data folder, corpus paths, and
 * multipart bodies built and read the way DICOMweb clients do.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import * as crypto from 'crypto';
import request from 'supertest';
import { createApp, listen, App } from '../../server/app';
import { loadConfig, ConfigOverrides } from '../../server/config';

export const CORPUS = process.env.DICOM_CORPUS || path.join(process.cwd(), 'test/fixtures/corpus');
export const corpusFile = (name: string) => path.join(CORPUS, 'dicom', name.endsWith('.dcm') ? name : `${name}.dcm`);

export interface TestServer extends App {
  url: string;
  base: string;
  dataDir: string;
  server: http.Server;
  stop(): Promise<void>;
}

export async function startServer(overrides: ConfigOverrides = {}, argv: string[] = []): Promise<TestServer> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-test-'));
  const config = loadConfig(['--data', dataDir, '--port', '0', '--host', '127.0.0.1', ...argv], {}, overrides);
  const app = await createApp(config);
  const server = await listen(app.app, 0, '127.0.0.1');
  const port = (server.address() as any).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    ...app, url, base: `${url}/dicom-web`, dataDir, server,
    async stop() {
      await new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections?.(); });
      await app.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function multipartBody(parts: Buffer[], type = 'application/dicom'): { body: Buffer; contentType: string } {
  const boundary = `b${crypto.randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${type}\r\n\r\n`), p, Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="${type}"; boundary=${boundary}` };
}

/**
 * STOW-RS of one file through `srv`'s app; the path of its instance's RetrieveURL (scheme and host cut off).
 * Throws unless the store answers one of `ok`.
 */
export async function storeFile(srv: Pick<TestServer, 'app'>, file: Buffer, ok: number[] = [200]): Promise<string> {
  const { body, contentType } = multipartBody([file]);
  const res = await request(srv.app).post('/dicom-web/studies').set('Content-Type', contentType).send(body);
  if (!ok.includes(res.status)) throw new Error(`STOW answered ${res.status}: ${JSON.stringify(res.body)}`);
  return res.body['00081199'].Value[0]['00081190'].Value[0].replace(/^https?:\/\/[^/]+/, '');
}

/**
 * For a test file or describe block: a server started before its tests and stopped after them, holding
 * `files` (name -> path), each stored by STOW-RS; `urls` maps each name to its instance's URL path.
 */
export function serverWithFiles(files: Record<string, string>): { readonly srv: TestServer; urls: Map<string, string> } {
  const urls = new Map<string, string>();
  let srv: TestServer | undefined;
  beforeAll(async () => {
    srv = await startServer();
    for (const [name, file] of Object.entries(files)) urls.set(name, await storeFile(srv, fs.readFileSync(file)));
  });
  afterAll(async () => { await srv?.stop(); });
  return { get srv() { if (!srv) throw new Error('the server has not started'); return srv; }, urls };
}

export interface Part { headers: Record<string, string>; body: Buffer }

/** Splits a multipart/related response body into its parts. */
export function parseMultipartResponse(body: Buffer, contentType: string): Part[] {
  const m = /boundary="?([^";]+)"?/.exec(contentType);
  if (!m) throw new Error(`no boundary in ${contentType}`);
  const delim = Buffer.from(`--${m[1]}`);
  const parts: Part[] = [];
  let pos = body.indexOf(delim);
  while (pos >= 0) {
    pos += delim.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) break;
    pos += 2; // CRLF
    const headerEnd = body.indexOf('\r\n\r\n', pos);
    const headers: Record<string, string> = {};
    for (const line of body.subarray(pos, headerEnd).toString('latin1').split('\r\n')) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delim]), headerEnd + 4);
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    pos = next + 2;
  }
  return parts;
}

/** Collects a supertest response body as a Buffer whatever its type. */
export function binaryParser(res: any, cb: (err: Error | null, body: Buffer) => void) {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
}

/**
 * Study / Series / SOP Instance UID of each corpus file from the corpus' uids.tsv. Its Series UID column was
 * taken from the first match anywhere in the file (liver_1frame has a nested one first), so the series is
 * checked against the top-level attribute that dcmjs reads.
 */
export function readUids(): Array<{ file: string; study: string; series: string; instance: string }> {
  const { data } = require('dcmjs');
  const lines = fs.readFileSync(path.join(CORPUS, 'uids.tsv'), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => {
    const [file, study, series, instance] = l.split('\t');
    let top = series;
    try {
      const buf = fs.readFileSync(corpusFile(file));
      const ds = data.DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), { untilTag: '7FE00010' }).dict;
      top = ds['0020000E']?.Value?.[0] ?? series;
    } catch { /* files without a Part 10 header: keep the table's value */ }
    return { file, study, series: top, instance };
  });
}

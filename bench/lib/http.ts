/**
 * The load generator: GETs on keep-alive sockets of our own (LeanConnection), other methods through Node's http
 * module; sequential timings and a fixed number of requests at a fixed concurrency. Loopback only.
 */
import * as http from 'http';
import * as net from 'net';
import { Readable } from 'stream';
import { newMultipart, multipartBody } from './dicom-synth';

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer; ms: number }

/**
 * One keep-alive HTTP/1.1 connection for GETs: the request goes out as one string and the response is read
 * from its status line, headers and Content-Length or chunked body, with none of the http module's objects
 * and streams. The load generator shares the server's two cores, so its CPU is taken from the server being
 * measured: through the http module a rendered-frame GET cost the client 0.29 ms of CPU, through this
 * connection 0.1 ms (bench/cost.ts).
 */
class LeanConnection {
  private socket: net.Socket;
  private chunks: Buffer[] = [];
  private waiting?: { resolve: (r: Reply) => void; reject: (e: Error) => void; t0: bigint };
  closed = false;
  constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    this.socket.on('data', (d: Buffer) => { this.chunks.push(d); this.parse(); });
    const fail = (e: Error) => { this.closed = true; const w = this.waiting; this.waiting = undefined; w?.reject(e); };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('connection closed before the response ended')));
  }

  get(path: string, host: string, headers: Record<string, string>): Promise<Reply> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, t0: process.hrtime.bigint() };
      let head = `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      this.socket.write(head + '\r\n', 'latin1');
    });
  }

  /** Bytes received since the last response ended, and what its head said (once it has arrived). */
  private received = 0;
  private head?: { status: number; headers: http.IncomingHttpHeaders; bodyStart: number; length?: number };

  /**
   * Answers the waiting GET once its whole response has arrived. The chunks are joined once: when the head has
   * arrived, and when the body is complete (Content-Length reached, or a chunked body's last chunk seen).
   */
  private parse(): void {
    this.received += this.chunks[this.chunks.length - 1].length;
    if (!this.waiting) return;
    if (!this.head) {
      const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.chunks = [data];
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = data.toString('latin1', 0, end).split('\r\n');
      const headers: http.IncomingHttpHeaders = {};
      for (const l of lines.slice(1)) { const i = l.indexOf(':'); headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim(); }
      const chunked = /chunked/i.test(String(headers['transfer-encoding'] ?? ''));
      this.head = { status: Number(lines[0].split(' ')[1]), headers, bodyStart: end + 4, length: chunked ? undefined : Number(headers['content-length'] ?? 0) };
    }
    const { status, headers, bodyStart, length } = this.head;
    let body: Buffer;
    let used: number;
    if (length !== undefined) {
      if (this.received < bodyStart + length) return;
      const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      body = data.subarray(bodyStart, bodyStart + length);
      used = bodyStart + length;
      this.chunks = [data];
    } else {
      // chunked: the body ends with the zero-size chunk, "0\r\n\r\n" (no trailers from the servers we measure)
      const tail = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks.slice(-2));
      if (tail.length < 5 || tail.toString('latin1', tail.length - 5) !== '0\r\n\r\n') return;
      const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      this.chunks = [data];
      const parts: Buffer[] = [];
      let p = bodyStart;
      for (;;) {
        const eol = data.indexOf('\r\n', p);
        if (eol < 0) return;
        const size = parseInt(data.toString('latin1', p, eol), 16);
        if (data.length < eol + 2 + size + 2) return;
        if (size === 0) { used = eol + 4; break; }
        parts.push(data.subarray(eol + 2, eol + 2 + size));
        p = eol + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    }
    const data = this.chunks[0];
    this.chunks = data.length > used ? [data.subarray(used)] : [];
    this.received = data.length - used;
    this.head = undefined;
    const w = this.waiting;
    this.waiting = undefined;
    if (/close/i.test(String(headers.connection ?? ''))) { this.closed = true; this.socket.destroy(); }
    w.resolve({ status, headers, body, ms: Number(process.hrtime.bigint() - w.t0) / 1e6 });
  }

  close(): void { this.closed = true; this.socket.destroy(); }
}

export class Client {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly idle: LeanConnection[] = [];
  private readonly all = new Set<LeanConnection>();
  private readonly host: string;
  private readonly port: number;
  constructor(readonly base: string) {
    const u = new URL(base);
    if (u.hostname !== '127.0.0.1') throw new Error(`the bench talks to 127.0.0.1 only, not ${u.hostname}`);
    this.host = u.host;
    this.port = Number(u.port || 80);
  }

  request(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | Readable, timeoutMs = 120_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.request(this.base + path, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      if (body instanceof Readable) { body.on('error', (e) => req.destroy(e)); body.pipe(req); }
      else req.end(body);
    });
  }

  /** A GET on an idle keep-alive connection of ours (a new one if none is idle). */
  async get(path: string, headers: Record<string, string> = {}): Promise<Reply> {
    let conn = this.idle.pop();
    while (conn?.closed) conn = this.idle.pop();
    if (!conn) { conn = new LeanConnection(this.port); this.all.add(conn); }
    try {
      const u = new URL(this.base + path);
      const r = await conn.get(u.pathname + u.search, this.host, headers);
      if (!conn.closed) this.idle.push(conn);
      return r;
    } catch (e) {
      this.all.delete(conn);
      conn.close();
      throw e;
    }
  }

  close() { this.agent.destroy(); for (const c of this.all) c.close(); this.all.clear(); this.idle.length = 0; }
}

/** STOW-RS of `files` in one request that must answer 200; each instance's URL path, in order. */
export async function storeAll(c: Client, files: Buffer[]): Promise<string[]> {
  const m = newMultipart();
  const r = await c.request('POST', '/dicom-web/studies', { 'Content-Type': m.contentType, Accept: 'application/dicom+json' }, multipartBody(m, files));
  if (r.status !== 200) throw new Error(`STOW to ${c.base} answered ${r.status}: ${r.body.toString('utf8', 0, 400)}`);
  return JSON.parse(r.body.toString())['00081199'].Value.map((i: any) => new URL(i['00081190'].Value[0]).pathname);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A GET that must answer `status` (and, for 200 with an image/png accept, a PNG); returns its time in ms. */
export async function timedGet(c: Client, path: string, headers: Record<string, string>, status = 200): Promise<number> {
  const r = await c.get(path, headers);
  if (r.status !== status) throw new Error(`GET ${path} answered ${r.status}, expected ${status}: ${r.body.toString('utf8', 0, 200)}`);
  if (status === 200 && headers.Accept === 'image/png' && !r.body.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error(`GET ${path}: not a PNG`);
  return r.ms;
}

/** `n` requests in a row; each one's time in ms. */
export async function sequential(n: number, fn: (i: number) => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}

/** `n` requests, `concurrency` at a time; elapsed wall time in seconds. */
export async function concurrent(n: number, concurrency: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  const lane = async () => { while (next < n) { const i = next++; await fn(i); } };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane));
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

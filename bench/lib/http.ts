/**
 * The load generator: Node's http module with one keep-alive agent per server, sequential timings and a fixed
 * number of requests at a fixed concurrency. Loopback only.
 */
import * as http from 'http';
import { Readable } from 'stream';
import { newMultipart, multipartBody } from './dicom-synth';

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: Buffer; ms: number }

export class Client {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  constructor(readonly base: string) {
    const u = new URL(base);
    if (u.hostname !== '127.0.0.1') throw new Error(`the bench talks to 127.0.0.1 only, not ${u.hostname}`);
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

  get(path: string, headers: Record<string, string> = {}) { return this.request('GET', path, headers); }

  close() { this.agent.destroy(); }
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

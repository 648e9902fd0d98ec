/**
 * Issue 14: no small request freezes, crashes or exhausts the server. Each class of attack is sent through HTTP
 * while the event loop (perf_hooks delay, and the latency of /health requests sent meanwhile) and RSS are watched:
 * wildcard patterns that make a backtracking matcher exponential, on every key that takes wildcards; pixel geometry
 * claiming millions of frames in a few hundred bytes; frame lists, includefield lists, key lists; deflated instances
 * that inflate to hundreds of MB; compressed frames whose headers claim 65535x65535; clients that leave mid-request.
 * The bounds are about hangs (the machine is shared and noisy): LOOP_MAX_MS (default 1000) for any single stall
 * and for /health; each class's figures go to test-output/hardening.txt.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import fc from 'fast-check';
import request from 'supertest';
import { startServer, TestServer, multipartBody, binaryParser, corpusFile } from './helpers/server';
import {
  compressionBombs, deflatedFile, encapsulatedFile, geometryFile, longValuesInstance, newUid, patternBombs, watchLoop, WILDCARD_KEYS, LoopReport,
} from './helpers/bombs';
import { wildcardMatches } from '../storage/qido';

const LOOP_MAX_MS = Number(process.env.LOOP_MAX_MS ?? 1000);
const report: string[] = [];
let srv: TestServer;

beforeAll(async () => { srv = await startServer(); });
afterAll(async () => {
  await srv?.stop();
  fs.mkdirSync(path.join(process.cwd(), 'test-output'), { recursive: true });
  fs.writeFileSync(path.join(process.cwd(), 'test-output', 'hardening.txt'), `${report.join('\n')}\n`);
});

/** Runs `load` while watching the loop; fails past the bounds; records the figures. */
async function bounded(what: string, load: () => Promise<void>, rssGrowthMB = 400): Promise<LoopReport> {
  const rssBefore = process.memoryUsage.rss() / 1048576;
  const w = watchLoop(srv.url);
  const t = Date.now();
  try { await load(); } finally {
    const r = await w.stop();
    report.push(`${what}: ${Date.now() - t} ms; loop delay p50 ${r.p50} p99 ${r.p99} max ${r.max} ms; /health ${r.health}x, slowest ${r.healthMax} ms; RSS max ${r.rssMaxMB} MB (+${Math.round(r.rssMaxMB - rssBefore)})`);
    if (r.max > LOOP_MAX_MS) throw new Error(`${what}: the event loop stalled ${r.max} ms (bound ${LOOP_MAX_MS})`);
    if (r.healthMax > 2 * LOOP_MAX_MS) throw new Error(`${what}: /health took ${r.healthMax} ms`);
    if (r.rssMaxMB - rssBefore > rssGrowthMB) throw new Error(`${what}: RSS grew ${Math.round(r.rssMaxMB - rssBefore)} MB (bound ${rssGrowthMB})`);
    return r;
  }
}

const stow = (files: Buffer[]) => {
  const { body, contentType } = multipartBody(files);
  return request(srv.url).post('/dicom-web/studies').set('Content-Type', contentType).set('Accept', 'application/dicom+json').send(body);
};
/** GET through a plain client that only counts what it receives. */
const countBytes = (p: string, accept: string) => new Promise<{ status: number; bytes: number }>((resolve, reject) => {
  http.get(`${srv.url}${p}`, { headers: { Accept: accept } }, (res) => {
    let bytes = 0;
    res.on('data', (c: Buffer) => { bytes += c.length; });
    res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
  }).on('error', reject);
});
const failure = (res: request.Response) => ({ code: res.body['00081198']?.Value?.[0]?.['00081197']?.Value?.[0], reason: String(res.body['00081198']?.Value?.[0]?.['00000902']?.Value?.[0] ?? '') });
const retrieveUrl = (res: request.Response) => new URL(res.body['00081199'].Value[0]['00081190'].Value[0]).pathname;

describe('wildcard matching (PS3.4 C.2.2.2.4) is linear', () => {
  test('the matcher agrees with a regular expression on small inputs', () => {
    const ch = fc.constantFrom('A', 'B', '*', '?', '^', '\u00c5', '\ud83d\ude00');
    fc.assert(fc.property(fc.array(ch, { maxLength: 8 }), fc.array(fc.constantFrom('A', 'B', '^', '\u00c5', '\ud83d\ude00'), { maxLength: 10 }), fc.boolean(), (p, v, prefix) => {
      const pattern = p.join('');
      const value = v.join('');
      const body = Array.from(pattern).map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
      const expected = new RegExp(`^${body}${prefix ? '' : '$'}`, 'su').test(value);
      if (wildcardMatches(pattern, value, prefix) !== expected) throw new Error(`${JSON.stringify(pattern)} ~ ${JSON.stringify(value)} prefix ${prefix}`);
    }), { numRuns: 5000 });
  });

  test('pattern bombs on every key that takes wildcards, fuzzy or not: answered at once, the loop never held', async () => {
    for (let i = 0; i < 3; i++) expect((await stow([longValuesInstance().file])).status).toBe(200);
    let n = 0;
    await bounded(`QIDO pattern bombs (${WILDCARD_KEYS.length} keys x ${patternBombs().length} patterns x fuzzy on/off)`, async () => {
      for (const { key, level } of WILDCARD_KEYS) {
        for (const pattern of patternBombs()) {
          for (const fuzzy of ['false', 'true']) {
            const t = Date.now();
            const res = await request(srv.url).get(`/dicom-web/${level}`).query({ [key]: pattern, fuzzymatching: fuzzy }).set('Accept', 'application/dicom+json');
            n++;
            if (![200, 204, 400].includes(res.status)) throw new Error(`${level}?${key}=${pattern.slice(0, 40)}: ${res.status} ${res.text.slice(0, 200)}`);
            if (res.status === 400) expect(res.body.error).toMatch(/longer than|wildcards are not allowed|list/);
            if (Date.now() - t > 2 * LOOP_MAX_MS) throw new Error(`${level}?${key}=${pattern.slice(0, 40)} took ${Date.now() - t} ms`);
          }
        }
      }
    });
    expect(n).toBe(WILDCARD_KEYS.length * patternBombs().length * 2);
    // and wildcards still find what they should
    const hit = await request(srv.url).get('/dicom-web/studies').query({ PatientName: `${'*A'.repeat(30)}*`, StudyDescription: 'A*A?A' }).set('Accept', 'application/dicom+json');
    expect(hit.status).toBe(200);
    expect(hit.body.length).toBe(3);
  });

  test('list bombs: many keys, long UID lists, long includefield lists', async () => {
    await bounded('QIDO list bombs', async () => {
      const keys = Object.fromEntries(WILDCARD_KEYS.map((k, i) => [k.key === 'PatientName' ? `0010001${i % 10}` : k.key, '*A*']));
      const many = await request(srv.url).get('/dicom-web/studies').query(keys).set('Accept', 'application/dicom+json');
      expect([200, 204, 400]).toContain(many.status);
      const tooMany = Array.from({ length: 70 }, (_, i) => `0009${(0x1000 + i).toString(16).toUpperCase()}=x`).join('&');
      const r1 = await request(srv.url).get(`/dicom-web/studies?${tooMany}`).set('Accept', 'application/dicom+json');
      expect(r1.status).toBe(400);
      const uids = Array.from({ length: 1001 }, () => newUid()).join(',');
      const r2 = await request(srv.url).get(`/dicom-web/studies?StudyInstanceUID=${uids}`).set('Accept', 'application/dicom+json');
      expect(r2.status).toBe(400);
      expect(r2.body.error).toMatch(/more than 1000 values/);
      const okList = Array.from({ length: 300 }, () => newUid()).join(',');
      expect((await request(srv.url).get(`/dicom-web/studies?StudyInstanceUID=${okList}`).set('Accept', 'application/dicom+json')).status).toBe(204);
      const include = Array.from({ length: 2000 }, (_, i) => (i % 2 ? 'PatientAge' : '00081030')).join(',');
      const r3 = await request(srv.url).get(`/dicom-web/studies?includefield=${include}`).set('Accept', 'application/dicom+json');
      expect(r3.status).toBe(200);
    });
  });
});

describe('pixel geometry from the file is checked against the file', () => {
  test('BitsAllocated or SamplesPerPixel 0, millions of frames in a few hundred bytes: refused with a reason, at once', async () => {
    const cases: Array<[string, Buffer, RegExp]> = [
      ['BitsAllocated 0, 3 million frames', geometryFile({ rows: 512, columns: 512, bitsAllocated: 0, frames: 3_000_000, pixelBytes: 16 }), /Bits Allocated/],
      ['SamplesPerPixel 0, 3 million frames', geometryFile({ rows: 512, columns: 512, bitsAllocated: 8, samplesPerPixel: 0, frames: 3_000_000, pixelBytes: 16 }), /Samples per Pixel/],
      ['1x1 8-bit, 3 million frames in 16 bytes', geometryFile({ rows: 1, columns: 1, bitsAllocated: 8, frames: 3_000_000, pixelBytes: 16 }), /too few for 3000000 frame/],
      ['1x1 1-bit, 999999999 frames', geometryFile({ rows: 1, columns: 1, bitsAllocated: 1, frames: 999_999_999, pixelBytes: 16 }), /too few/],
      ['65535x65535 16-bit in 16 bytes', geometryFile({ rows: 65535, columns: 65535, bitsAllocated: 16, pixelBytes: 16 }), /too few/],
      ['negative NumberOfFrames', geometryFile({ rows: 1, columns: 1, bitsAllocated: 8, frames: -5, pixelBytes: 16 }), /Number of Frames/],
      ['JPEG, 3 million frames in one fragment', encapsulatedFile('1.2.840.10008.1.2.4.50', Buffer.from([0xff, 0xd8, 0xff, 0xd9]), { rows: 8, columns: 8, frames: 3_000_000 }), /fragment/],
    ];
    await bounded('STOW geometry bombs', async () => {
      for (const [what, file, reason] of cases) {
        expect(file.length).toBeLessThan(1000);
        const res = await stow([file]);
        expect({ what, status: res.status }).toEqual({ what, status: 409 });
        expect(failure(res).code).toBe(0xa900);
        expect(failure(res).reason).toMatch(reason);
      }
    });
  });

  test('a real many-frame instance (200,000 frames of 1x1) costs no more than its bytes: stored, listed, served', async () => {
    const u = { study: newUid(), series: newUid(), sop: newUid() };
    const file = geometryFile({ rows: 1, columns: 1, bitsAllocated: 8, frames: 200_000, pixelBytes: 200_000 }, u);
    let url = '';
    await bounded('200,000-frame instance: store, metadata x20, frames, rendered', async () => {
      const res = await stow([file]);
      expect(res.status).toBe(200);
      url = retrieveUrl(res);
      for (let i = 0; i < 20; i++) {
        const md = await request(srv.url).get(`/dicom-web/studies/${u.study}/metadata`).set('Accept', 'application/dicom+json');
        expect(md.status).toBe(200);
        expect(md.body[0]['00280008'].Value[0]).toBe(200000);
      }
      const f = await request(srv.url).get(`${url}/frames/200000,1,77777`).set('Accept', 'multipart/related; type="application/octet-stream"').buffer(true).parse(binaryParser);
      expect(f.status).toBe(200);
      expect((await request(srv.url).get(`${url}/frames/200001`).set('Accept', 'multipart/related; type="application/octet-stream"')).status).toBe(404);
      const list = Array.from({ length: 10000 }, (_, i) => i * 20 + 1).join(',');
      const many = await request(srv.url).get(`${url}/frames/${list}`).set('Accept', 'multipart/related; type="application/octet-stream"').buffer(true).parse(binaryParser);
      expect(many.status).toBe(200);
      expect((await request(srv.url).get(`${url}/frames/150000/rendered`).set('Accept', 'image/png')).status).toBe(200);
      const q = await request(srv.url).get(`/dicom-web/studies/${u.study}/instances`).set('Accept', 'application/dicom+json');
      expect(q.status).toBe(200);
    });
  });
});

describe('memory per request', () => {
  test('a frame list repeating a frame is refused (PS3.18: non-duplicate frame numbers)', async () => {
    const base = retrieveUrl(await stow([fs.readFileSync(corpusFile('CT_small'))]));
    await bounded('frame list 1,1,...x1000', async () => {
      for (const path of [`${base}/frames/${Array(1000).fill(1).join(',')}`, `${base}/frames/${Array(1000).fill(1).join(',')}/rendered`]) {
        const res = await request(srv.url).get(path).set('Accept', 'multipart/related; type="application/octet-stream"');
        expect(res.status).toBe(400);
        expect(res.body.error).toMatch(/listed twice/);
      }
    });
  });

  test('a deflated instance inflating to 64 MB: stored without holding it in memory; metadata and frame reads stay off the loop', async () => {
    const u = { study: newUid(), series: newUid(), sop: newUid() };
    const file = deflatedFile(64, u);
    expect(file.length).toBeLessThan(200_000);
    let url = '';
    await bounded('deflated 64 MB instance: STOW', async () => {
      const res = await stow([file]);
      expect(res.status).toBe(200);
      url = retrieveUrl(res);
    });
    await bounded('deflated 64 MB instance: 8 concurrent metadata + frame reads', async () => {
      const gets = Array.from({ length: 8 }, () => request(srv.url).get(`${url}/metadata`).set('Accept', 'application/dicom+json'));
      for (const r of await Promise.all(gets)) expect(r.status).toBe(200);
      // read with a plain client that counts the bytes: supertest would hold (and copy) all 64 MB in this process
      const frame = await countBytes(`${url}/frames/1`, 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
      expect(frame.status).toBe(200);
      expect(frame.bytes).toBeGreaterThan(64 * 1024 * 1024 - 1024 * 1024);
    }, 600);
  });

  test('compressed frames whose headers claim huge images, in every codec: clean 4xx, decoded off the loop', async () => {
    await bounded('compression bombs (JPEG, JPEG lossless, JPEG-LS, J2K, HTJ2K, RLE)', async () => {
      for (const b of compressionBombs()) {
        const res = await stow([encapsulatedFile(b.ts, b.bitstream, { rows: b.rows, columns: b.columns, bitsAllocated: b.bits })]);
        expect({ name: b.name, status: res.status }).toEqual({ name: b.name, status: 200 });
        const url = retrieveUrl(res);
        for (const [p, accept] of [[`${url}/frames/1`, 'multipart/related; type="application/octet-stream"'], [`${url}/frames/1/rendered`, 'image/png'], [`${url}/rendered`, 'image/jpeg'], [`${url}/thumbnail`, 'image/jpeg']]) {
          const r = await request(srv.url).get(p).set('Accept', accept).buffer(true).parse(binaryParser);
          if (r.status < 400 || r.status >= 500) throw new Error(`${b.name} ${p}: ${r.status}`);
        }
      }
    });
  });

  test('transcoding to JPEG 2000 runs in the render workers: a large frame encoded while the loop keeps answering', async () => {
    // 2048 x 2048 16-bit noise: several hundred ms to seconds of OpenJPEG per frame, which once ran on the event loop
    const rows = 2048, columns = 2048;
    const u = { study: newUid(), series: newUid(), sop: newUid() };
    const file = geometryFile({ rows, columns, bitsAllocated: 16, samplesPerPixel: 1, pixelBytes: rows * columns * 2 }, u);
    const px = file.subarray(file.length - rows * columns * 2);
    for (let i = 0; i < px.length; i += 4) px.writeUInt32LE((Math.imul(i, 2654435761) >>> 0) & 0x0fff0fff, i); // 12 bits of hash noise per sample
    expect((await stow([file])).status).toBe(200);
    const url = `/dicom-web/studies/${u.study}/series/${u.series}/instances/${u.sop}`;
    const r = await bounded('transcoding a 2048x2048 frame to JPEG 2000 lossless (frames and instance)', async () => {
      const frame = await request(srv.url).get(`${url}/frames/1`).set('Accept', 'multipart/related; type="image/jp2"').buffer(true).parse(binaryParser);
      expect(frame.status).toBe(200);
      const inst = await request(srv.url).get(url).set('Accept', 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90').buffer(true).parse(binaryParser);
      expect(inst.status).toBe(200);
    });
    expect(r.health).toBeGreaterThan(0);
  });

  test('renders abandoned by their clients are skipped or stopped', async () => {
    const base = retrieveUrl(await stow([fs.readFileSync(corpusFile('CT_small'))])); // stored already: identical, 200
    const port = (srv.server.address() as any).port;
    const before = srv.renderer.stats().completed;
    await bounded('20 abandoned 8192x8192 renders', async () => {
      const reqs = Array.from({ length: 20 }, (_, i) => new Promise<void>((resolve) => {
        const req = http.get({ port, host: '127.0.0.1', path: `${base}/rendered?viewport=8192,8192&window=${i},400`, headers: { Accept: 'image/png' } });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        setTimeout(() => req.destroy(), 100);
      }));
      await Promise.all(reqs);
      const t = Date.now();
      while (Date.now() - t < 20_000) {
        const s = srv.renderer.stats();
        if (s.inFlight === 0 && s.queued === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const s = srv.renderer.stats();
      expect(s.inFlight + s.queued).toBe(0);
      report.push(`  abandoned renders: ${s.completed - before} of 20 completed; idle again ${Date.now() - t} ms after the clients left`);
      expect(s.completed - before).toBeLessThan(20);
    });
    // the pool still renders
    expect((await request(srv.url).get(`${base}/rendered?window=40,400`).set('Accept', 'image/png')).status).toBe(200);
  });
});

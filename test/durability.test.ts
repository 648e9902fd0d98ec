/**
 * Never lose an instance, never let the wrong one in.
 *
 * Crashes: the server process is killed with SIGKILL at a random moment while several clients upload; after a
 * restart, every instance whose STOW-RS was answered 2xx is retrieved byte-identical, and `verify` finds the
 * index and the file store in agreement (the only thing a crash may leave is an unacknowledged blob that was
 * renamed into place but not yet indexed, plus staged files; `verify --repair` settles both).
 *
 * Concurrency: the same SOP Instance UID sent by several clients at once, with identical and with different
 * bytes, ends as the duplicate rule of server/ingest.ts says: identical bytes succeed, different bytes fail with
 * 0x0111, and the first stored wins.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import * as crypto from 'crypto';
import { execFile } from 'child_process';
import request from 'supertest';
import { spawnServer, ChildServer, VERIFY_JS } from './helpers/auth-child-server';
import { corpusFile, multipartBody, parseMultipartResponse, binaryParser, readUids } from './helpers/server';
import { canMount, mountTmpfs, unmount } from './helpers/tmpfs';
import { report } from './helpers/report';

const uids = new Map(readUids().map((u) => [u.file, u]));
const TEMPLATES = ['CT_small', 'MR_small', '693_UNCR'].map((name) => ({ name, bytes: fs.readFileSync(corpusFile(name)), ...uids.get(name)! }));

/** A new UID of exactly `length` characters (2.25 root: a UUID-derived decimal, PS3.5 B.2). */
function newUid(length: number): string {
  let digits = '';
  while (digits.length < length) digits += BigInt(`0x${crypto.randomBytes(16).toString('hex')}`).toString();
  const uid = `2.25.${digits.replace(/^0+/, '')}`.slice(0, length);
  return uid.endsWith('.') || /\.0\d/.test(uid) ? newUid(length) : uid;
}

/** The template with its SOP Instance UID replaced everywhere by a fresh one of the same length (structure unchanged). */
function variant(t: typeof TEMPLATES[number], sop = newUid(t.instance.length), tweak = false): { sop: string; bytes: Buffer } {
  const from = Buffer.from(t.instance, 'latin1');
  const to = Buffer.from(sop, 'latin1');
  const out = Buffer.from(t.bytes);
  for (let i = out.indexOf(from); i >= 0; i = out.indexOf(from, i + to.length)) to.copy(out, i);
  if (tweak) out[out.length - 1 - crypto.randomInt(64)] ^= 1 + crypto.randomInt(255); // a pixel value: same UID, other bytes
  return { sop, bytes: out };
}

interface StowOutcome { status: number; body: any }
/** STOW-RS over a plain http request (the server may die mid-way: the promise then rejects). */
function stowRaw(base: string, files: Buffer[]): Promise<StowOutcome> {
  const { body, contentType } = multipartBody(files);
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/studies`, { method: 'POST', agent: false, headers: { 'Content-Type': contentType, 'Content-Length': body.length, Accept: 'application/dicom+json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        try { resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString()) }); } catch (e) { reject(e); }
      });
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

async function retrieve(srv: ChildServer, t: { study: string; series: string }, sop: string): Promise<{ status: number; bytes?: Buffer }> {
  const res = await request(srv.url).get(`/dicom-web/studies/${t.study}/series/${t.series}/instances/${sop}`)
    .set('Accept', 'multipart/related; type="application/dicom"').buffer(true).parse(binaryParser);
  if (res.status !== 200) return { status: res.status };
  const parts = parseMultipartResponse(res.body, res.headers['content-type']);
  return { status: 200, bytes: parts[0]?.body };
}

function runVerify(dataDir: string, ...args: string[]): Promise<{ code: number; report: any; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [VERIFY_JS, '--data', dataDir, '--json', ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as any).code === 'number' ? (err as any).code : 99) : 0;
      let report: any;
      try { report = JSON.parse(stdout); } catch { report = undefined; }
      resolve({ code, report, out: stdout + stderr });
    });
  });
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-durability-'));

describe('crashes: SIGKILL during concurrent uploads', () => {
  const ROUNDS = 8;
  const CLIENTS = 4;
  let dataDir: string;
  beforeAll(() => { dataDir = tmp(); });
  afterAll(() => { fs.rmSync(dataDir, { recursive: true, force: true }); });

  test(`${ROUNDS} kill rounds: every acknowledged instance survives byte-identical; index and store agree`, async () => {
    const acked = new Map<string, { t: typeof TEMPLATES[number]; bytes: Buffer }>();
    let attempts = 0;
    let crashLeftovers = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const srv = await spawnServer(dataDir, ['--render-workers', '0']);
      // Every instance acknowledged so far, in any earlier round, is here and unchanged.
      for (const [sop, a] of acked) {
        const got = await retrieve(srv, a.t, sop);
        expect({ sop, status: got.status }).toEqual({ sop, status: 200 });
        expect(got.bytes!.equals(a.bytes)).toBe(true);
      }
      let killed = false;
      const client = async (c: number) => {
        for (let i = 0; !killed; i++) {
          const t = TEMPLATES[(c + i) % TEMPLATES.length];
          // Some requests carry two instances: a crash between them must not lose the first if it was acknowledged.
          const items = [variant(t), ...(i % 3 === 2 ? [variant(TEMPLATES[0])] : [])];
          attempts += items.length;
          let res: StowOutcome;
          try { res = await stowRaw(srv.base, items.map((x) => x.bytes)); } catch { return; } // the server died
          expect([200, 202]).toContain(res.status);
          for (const ref of res.body['00081199']?.Value ?? []) {
            const sop = ref['00081155'].Value[0];
            const item = items.find((x) => x.sop === sop)!;
            acked.set(sop, { t: sop === items[0].sop ? t : TEMPLATES[0], bytes: item.bytes });
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
      await new Promise((r) => setTimeout(r, 80 + crypto.randomInt(600)));
      killed = true;
      await srv.kill();
      await Promise.all(clients);

      // With the server dead: only what a crash can legitimately leave, never a damaged or missing blob.
      const check = await runVerify(dataDir);
      expect(check.report).toBeDefined();
      const kinds = new Set<string>(check.report.problems.map((p: any) => p.kind));
      for (const k of kinds) expect(['orphan-blob', 'staging-leftover']).toContain(k);
      crashLeftovers += check.report.problems.length;
      if (round % 2 === 1) {
        // Alternate rounds repair (re-index orphans, delete staged files); the others leave it to the restart.
        const repaired = await runVerify(dataDir, '--repair');
        expect(repaired.code).toBe(0);
      }
    }
    const srv = await spawnServer(dataDir, ['--render-workers', '0']);
    try {
      for (const [sop, a] of acked) {
        const got = await retrieve(srv, a.t, sop);
        expect(got.status).toBe(200);
        expect(got.bytes!.equals(a.bytes)).toBe(true);
      }
    } finally {
      await srv.stop();
    }
    expect((await runVerify(dataDir, '--repair')).code).toBe(0);
    const final = await runVerify(dataDir);
    expect(final.code).toBe(0);
    expect(final.report.problems).toEqual([]);
    expect(final.report.indexed).toBeGreaterThanOrEqual(acked.size);
    expect(final.report.indexed).toBe(final.report.blobs);
    report('durability', `durability: ${ROUNDS} kills, ${attempts} instances sent, ${acked.size} acknowledged and all retrieved intact; ${crashLeftovers} crash leftovers found by verify`);
    expect(acked.size).toBeGreaterThan(0);
  }, 300_000); // 9 server starts and 12 verify runs: ~75 s alone on 2 shared cores, past 120 s under a full parallel suite
});

// A real full disk (a small tmpfs; skipped where this process may not mount): uploads fill it, the server keeps
// answering (507 once full, never a crash or a 4xx), is SIGKILLed, restarts on the full disk, and every instance
// acknowledged before is still there, byte-identical.
(canMount ? describe : describe.skip)('a full disk: uploads fill it, SIGKILL, restart', () => {
  test('every acknowledged instance survives; a full disk answers 507 and the process stays up', async () => {
    const mount = mountTmpfs(10 * 1024 * 1024)!;
    const dataDir = path.join(mount, 'data');
    const acked = new Map<string, { t: typeof TEMPLATES[number]; bytes: Buffer }>();
    let full = 0;
    try {
      for (let round = 0; round < 3; round++) {
        const srv = await spawnServer(dataDir, ['--render-workers', '0']);
        for (const [sop, a] of acked) {
          const got = await retrieve(srv, a.t, sop);
          expect({ sop, status: got.status }).toEqual({ sop, status: 200 });
          expect(got.bytes!.equals(a.bytes)).toBe(true);
        }
        let stop = false;
        let fullThisRound = 0;
        const client = async (c: number) => {
          for (let i = 0; !stop; i++) {
            const t = TEMPLATES[(c + i + round) % TEMPLATES.length];
            const items = [variant(t), ...(i % 2 ? [variant(TEMPLATES[0])] : [])];
            let res: StowOutcome;
            try { res = await stowRaw(srv.base, items.map((x) => x.bytes)); } catch { return; } // killed
            expect([200, 202, 507]).toContain(res.status);
            if (res.status === 507) { full++; fullThisRound++; }
            for (const f of res.body['00081198']?.Value ?? []) expect(f['00081197'].Value[0]).toBe(0xa700);
            for (const ref of res.body['00081199']?.Value ?? []) {
              const sop = ref['00081155'].Value[0];
              const item = items.find((x) => x.sop === sop)!;
              acked.set(sop, { t: sop === items[0].sop ? t : TEMPLATES[0], bytes: item.bytes });
            }
          }
        };
        const clients = Array.from({ length: 3 }, (_, c) => client(c));
        const until = Date.now() + 20_000;
        while (fullThisRound < 6 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
        expect(fullThisRound).toBeGreaterThan(0); // the disk did fill, and the server answered it
        expect((await request(srv.url).get('/health')).status).toBe(200); // and is still up
        await new Promise((r) => setTimeout(r, crypto.randomInt(300)));
        stop = true;
        await srv.kill();
        await Promise.all(clients);
        const check = await runVerify(dataDir);
        for (const p of check.report.problems) expect(['orphan-blob', 'staging-leftover']).toContain(p.kind);
      }
      const srv = await spawnServer(dataDir, ['--render-workers', '0']);
      try {
        for (const [sop, a] of acked) {
          const got = await retrieve(srv, a.t, sop);
          expect({ sop, status: got.status }).toEqual({ sop, status: 200 });
          expect(got.bytes!.equals(a.bytes)).toBe(true);
        }
      } finally {
        await srv.stop();
      }
      expect(acked.size).toBeGreaterThan(0);
      expect(full).toBeGreaterThan(0);
    } finally {
      unmount(mount);
    }
  }, 300_000);
});

describe('concurrency and the duplicate rule', () => {
  let srv: ChildServer;
  let dataDir: string;
  beforeAll(async () => { dataDir = tmp(); srv = await spawnServer(dataDir, ['--render-workers', '0']); });
  afterAll(async () => { await srv?.stop(); fs.rmSync(dataDir, { recursive: true, force: true }); });
  const t = TEMPLATES[0];

  test('the same instance from 8 clients at once: all succeed, stored once', async () => {
    const v = variant(t);
    const results = await Promise.all(Array.from({ length: 8 }, () => stowRaw(srv.base, [v.bytes])));
    for (const r of results) expect(r.status).toBe(200);
    const got = await retrieve(srv, t, v.sop);
    expect(got.bytes!.equals(v.bytes)).toBe(true);
  });

  test('the same SOP Instance UID with different bytes from 9 clients at once: one content wins, the rest get 0x0111', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const sop = newUid(t.instance.length);
      const contents = [variant(t, sop, true), variant(t, sop, true), variant(t, sop, true)];
      expect(contents[0].bytes.equals(contents[1].bytes)).toBe(false);
      const sent = Array.from({ length: 9 }, (_, i) => contents[i % 3]);
      const results = await Promise.all(sent.map((c) => stowRaw(srv.base, [c.bytes])));
      const winners = new Set<Buffer>();
      results.forEach((r, i) => {
        if (r.status === 200) winners.add(sent[i].bytes);
        else {
          expect(r.status).toBe(409);
          const f = r.body['00081198'].Value[0];
          expect(f['00081197'].Value[0]).toBe(0x0111);
          expect(f['00081155'].Value[0]).toBe(sop);
        }
      });
      expect(winners.size).toBe(1); // every success carried the same bytes: the first stored
      const [won] = [...winners];
      expect(results.filter((r) => r.status === 200).length).toBe(3);
      const got = await retrieve(srv, t, sop);
      expect(got.bytes!.equals(won)).toBe(true);
      // Later senders of other bytes are refused, of the same bytes accepted.
      const loser = contents.find((c) => c.bytes !== won)!;
      expect((await stowRaw(srv.base, [loser.bytes])).status).toBe(409);
      expect((await stowRaw(srv.base, [won])).status).toBe(200);
    }
  });

  test('different instances from many clients at once, and a mixed request: all stored, nothing extra on disk', async () => {
    const items = Array.from({ length: 16 }, (_, i) => variant(TEMPLATES[i % TEMPLATES.length]));
    const results = await Promise.all(items.map((v) => stowRaw(srv.base, [v.bytes])));
    for (const r of results) expect(r.status).toBe(200);
    for (let i = 0; i < items.length; i++) {
      const got = await retrieve(srv, TEMPLATES[i % TEMPLATES.length], items[i].sop);
      expect(got.bytes!.equals(items[i].bytes)).toBe(true);
    }
    // one request holding an instance twice with other bytes: the first part wins within the request too
    const sop = newUid(t.instance.length);
    const a = variant(t, sop, true);
    const b = variant(t, sop, true);
    const mixed = await stowRaw(srv.base, [a.bytes, b.bytes, a.bytes]);
    expect(mixed.status).toBe(202);
    expect(mixed.body['00081199'].Value).toHaveLength(2);
    expect(mixed.body['00081198'].Value[0]['00081197'].Value[0]).toBe(0x0111);
    expect((await retrieve(srv, t, sop)).bytes!.equals(a.bytes)).toBe(true);
  });

  test('verify after the concurrent uploads: the index and the store agree', async () => {
    await srv.stop();
    const v = await runVerify(dataDir);
    expect(v.out).toBeDefined();
    expect(v.code).toBe(0);
    expect(v.report.problems).toEqual([]);
    expect(v.report.indexed).toBe(v.report.blobs);
    srv = await spawnServer(dataDir, ['--render-workers', '0']);
  });
});

describe('verify', () => {
  test('reports and repairs: missing blob, altered blob, orphan, staging leftover; exit codes 1 then 0', async () => {
    const dataDir = tmp();
    const srv = await spawnServer(dataDir, ['--render-workers', '0']);
    const items = [variant(TEMPLATES[0]), variant(TEMPLATES[0]), variant(TEMPLATES[0]), variant(TEMPLATES[1])];
    for (const v of items) expect((await stowRaw(srv.base, [v.bytes])).status).toBe(200);
    await srv.stop();
    expect((await runVerify(dataDir)).code).toBe(0);

    const Database = require('better-sqlite3');
    const db = new Database(path.join(dataDir, 'index.sqlite'));
    const row = (sop: string) => db.prepare('SELECT blob_key FROM instances WHERE sop_instance_uid = ?').get(sop) as { blob_key: string };
    const blob = (sop: string) => path.join(dataDir, 'blobs', row(sop).blob_key);
    fs.rmSync(blob(items[0].sop)); // lost blob
    const altered = fs.readFileSync(blob(items[1].sop)); altered[altered.length - 1] ^= 0xff; fs.writeFileSync(blob(items[1].sop), altered); // bit rot
    const orphanKey = row(items[2].sop).blob_key;
    db.prepare('DELETE FROM instances WHERE sop_instance_uid = ?').run(items[2].sop); // crash before the index transaction
    db.close();
    fs.writeFileSync(path.join(dataDir, 'staging', 'leftover.part'), 'half an upload');

    const found = await runVerify(dataDir);
    expect(found.code).toBe(1);
    expect(found.report.problems.map((p: any) => p.kind).sort()).toEqual(['hash-mismatch', 'missing-blob', 'orphan-blob', 'staging-leftover']);
    expect(found.report.problems.find((p: any) => p.kind === 'orphan-blob').key).toBe(orphanKey);

    const repaired = await runVerify(dataDir, '--repair');
    expect(repaired.code).toBe(0);
    expect(fs.readdirSync(path.join(dataDir, 'quarantine'))).toHaveLength(1); // the altered blob is kept aside, not deleted
    const clean = await runVerify(dataDir);
    expect(clean.code).toBe(0);
    expect(clean.report.problems).toEqual([]);

    const after = await spawnServer(dataDir, ['--render-workers', '0']);
    try {
      expect((await retrieve(after, TEMPLATES[0], items[0].sop)).status).toBe(404);
      expect((await retrieve(after, TEMPLATES[0], items[1].sop)).status).toBe(404);
      expect((await retrieve(after, TEMPLATES[0], items[2].sop)).bytes!.equals(items[2].bytes)).toBe(true); // re-indexed
      expect((await retrieve(after, TEMPLATES[1], items[3].sop)).bytes!.equals(items[3].bytes)).toBe(true);
    } finally {
      await after.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    const usage = await runVerify('/nonexistent/dir');
    expect(usage.code).toBe(2);
  });
});

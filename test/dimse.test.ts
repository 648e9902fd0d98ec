/**
 * The DICOM C-ECHO / C-STORE SCP (server/dimse.ts), driven by DCMTK's echoscu and storescu (Debian `dcmtk`, as a
 * modality or gateway would): every transfer syntax we store, arriving as the modality proposes it; the same
 * ingest as STOW-RS (duplicate rule, bytes kept as sent); the AE title allow-list; concurrent associations;
 * protocol garbage. Skipped, with a message, where DCMTK is not installed.
 */
import * as fs from 'fs';
import * as net from 'net';
import { execFile, execFileSync } from 'child_process';
import request from 'supertest';
import { startServer, TestServer, corpusFile } from './helpers/server';
import { parseDicomFile } from '../dicom/parse';

const haveDcmtk = (() => { try { require('child_process').execFileSync('storescu', ['--version'], { stdio: 'ignore' }); return true; } catch { return false; } })();
const SHARED = process.env.DICOM_SHARED_CORPUS || `${process.cwd()}/../shared/corpus/dicom`;

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as any).code === 'number' ? (err as any).code : 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}
const storescu = (port: number, files: string[], opts: string[] = [], aet = 'MODALITY1') =>
  run('storescu', ['-aet', aet, '-aec', 'DICOMWEB', ...opts, '127.0.0.1', String(port), ...files]);

/** What is stored for `sop`: the blob's bytes, read back through the store. */
async function storedBytes(srv: TestServer, sop: string): Promise<Buffer> {
  const row = srv.ctx.index.getInstance(sop);
  if (!row) throw new Error(`${sop} is not indexed`);
  return srv.ctx.blobs.readAll(row.blob_key);
}

/** The data set of a Part 10 file (what follows its File Meta Information) and its transfer syntax. */
function dataset(bytes: Buffer, tmpName: string): { ts: string; body: Buffer; sop: string } {
  const f = `${fs.mkdtempSync('/tmp/dimse-')}/${tmpName}`;
  fs.writeFileSync(f, bytes);
  try {
    const p = parseDicomFile(f);
    return { ts: p.transferSyntaxUID, body: bytes.subarray(p.datasetOffset), sop: p.sopInstanceUID };
  } finally { fs.rmSync(f, { force: true }); }
}

/**
 * The data set as DCMTK's dcmdump reads it, without what a sender may legitimately re-encode: storescu writes
 * the data set from its own memory, so sequences get explicit lengths, delimitation items go, group lengths
 * and trailing padding are dropped. Every value (pixel data fragments included) must be the same.
 */
function dump(bytes: Buffer): string[] {
  const f = `${fs.mkdtempSync('/tmp/dimse-')}/x.dcm`;
  fs.writeFileSync(f, bytes);
  try {
    return execFileSync('dcmdump', ['-q', '+L', f], { encoding: 'latin1', maxBuffer: 64 << 20 }).split('\n')
      .filter((l) => l.trim() && !l.startsWith('#') && !/^\s*\((0002,|fffe,e00d|fffe,e0dd|fffc,fffc|\w{4},0000)/.test(l))
      .map((l) => l.replace(/^(\s*\(\w{4},\w{4}\) (SQ|na)) .*$/, '$1'));
  } finally { fs.rmSync(f, { force: true }); }
}

const d = haveDcmtk ? describe : describe.skip;
if (!haveDcmtk) test.skip('DCMTK (storescu, echoscu) is not installed: apt-get install dcmtk', () => undefined);

d('DIMSE C-ECHO and C-STORE with DCMTK', () => {
  // One case per transfer syntax: the file, and the storescu option that proposes exactly its syntax, so that
  // the data set arrives as the modality holds it (storescu would otherwise convert to Explicit VR LE).
  const cases: Array<[string, string, string[]]> = [
    ['Implicit VR Little Endian', corpusFile('MR_small_implicit'), ['-xi']],
    ['Explicit VR Little Endian', corpusFile('CT_small'), ['-xe']],
    ['Explicit VR Big Endian', corpusFile('MR_small_bigendian'), ['-xb']],
    ['Deflated Explicit VR Little Endian', corpusFile('image_dfl'), ['-xd']],
    ['RLE Lossless', corpusFile('MR_small_RLE'), ['-xr', '-R']],
    ['JPEG Baseline', corpusFile('SC_rgb_jpeg_dcmtk'), ['-xy', '-R']],
    ['JPEG Extended 12-bit', corpusFile('JPGExtended'), ['-xx', '-R']],
    ['JPEG Lossless SV1', corpusFile('JPEG-LL'), ['-xs', '-R']],
    ['JPEG-LS Lossless', corpusFile('MR_small_jpeg_ls_lossless'), ['-xt', '-R']],
    ['JPEG 2000 Lossless', corpusFile('MR_small_jp2klossless'), ['-xv', '-R']],
    ['JPEG 2000', corpusFile('JPEG2000'), ['-xw', '-R']],
  ];
  // JPEG-LS near-lossless from the shared corpus (storescu -xu proposes exactly that syntax). JPEG lossless
  // process 14 (.57) has no storescu option of its own (-xs is SV1, .70), so storescu cannot send it as it is.
  const nearLossless = `${SHARED}/ct-jpegls-near-lossless-81.dcm`;
  if (fs.existsSync(nearLossless)) cases.push(['JPEG-LS near-lossless', nearLossless, ['-xu', '-R']]);

  test.each(cases)('%s: stored in the syntax sent, every value kept, and served', async (_name, file, opts) => {
    // A server each: several of these files are one image in several syntaxes (one SOP Instance UID).
    const srv = await startServer({ renderWorkers: 0 }, ['--dimse-port', '0']);
    try {
      const r = await storescu(srv.dimse!.port, [file], opts);
      expect({ code: r.code, errors: r.out.split('\n').filter((l) => /^[EF]:/.test(l)) }).toEqual({ code: 0, errors: [] });
      const original = dataset(fs.readFileSync(file), 'orig.dcm');
      const stored = dataset(await storedBytes(srv, original.sop), 'stored.dcm');
      expect(stored.ts).toBe(original.ts);
      expect(dump(await storedBytes(srv, original.sop))).toEqual(dump(fs.readFileSync(file)));
      // ...and served like a STOW-RS upload: metadata, and the first frame rendered.
      const row = srv.ctx.index.getInstance(original.sop);
      const base = `/dicom-web/studies/${row.study_uid}/series/${row.series_uid}/instances/${original.sop}`;
      const md = await request(srv.app).get(`${base}/metadata`);
      expect(md.status).toBe(200);
      expect(md.body[0]['00080018'].Value[0]).toBe(original.sop);
      const png = await request(srv.app).get(`${base}/frames/1/rendered`).set('Accept', 'image/png');
      expect(png.status).toBe(200);
      expect(srv.dimse!.stats).toMatchObject({ stored: 1, failed: 0 });
    } finally { await srv.stop(); }
  });

  describe('one server', () => {
    let srv: TestServer;
    beforeAll(async () => { srv = await startServer({ renderWorkers: 0 }, ['--dimse-port', '0', '--dimse-allowed-aes', 'MODALITY1,MODALITY2,GW']); });
    afterAll(async () => { await srv?.stop(); });

    test('C-ECHO from an allowed AE title succeeds; another AE title is rejected at association', async () => {
      expect((await run('echoscu', ['-aet', 'MODALITY1', '-aec', 'DICOMWEB', '127.0.0.1', String(srv.dimse!.port)])).code).toBe(0);
      const refused = await run('echoscu', ['-aet', 'INTRUDER', '-aec', 'DICOMWEB', '127.0.0.1', String(srv.dimse!.port)]);
      expect(refused.code).not.toBe(0);
      expect(refused.out).toMatch(/Association Rejected|Calling AE Title Not Recognized/i);
      expect(srv.dimse!.stats.rejected).toBeGreaterThanOrEqual(1);
    });

    test('concurrent associations each store their instances', async () => {
      const sets = [
        ['MODALITY1', [corpusFile('CT_small'), corpusFile('SC_rgb')]],
        ['MODALITY2', [corpusFile('MR-SIEMENS-DICOM-WithOverlays'), corpusFile('rtdose')]],
        ['GW', [corpusFile('emri_small'), corpusFile('693_UNCR'), corpusFile('vlut_04')]],
        ['MODALITY1', [corpusFile('rtplan'), corpusFile('test-SR')]],
      ] as const;
      const results = await Promise.all(sets.map(([aet, files]) => storescu(srv.dimse!.port, [...files], [], aet)));
      expect(results.map((r) => `${r.code} ${r.out}`)).toEqual(['0 ', '0 ', '0 ', '0 ']);
      for (const [, files] of sets) {
        for (const f of files) {
          const sop = dataset(fs.readFileSync(f), 'x.dcm').sop;
          expect(srv.ctx.index.getInstance(sop)).toBeTruthy();
        }
      }
      const studies = await request(srv.app).get('/dicom-web/studies');
      expect(studies.status).toBe(200);
      expect(studies.body.length).toBeGreaterThanOrEqual(5);
    });

    test('the duplicate rule: identical bytes succeed again, other bytes under the same UID fail with 0111', async () => {
      expect((await storescu(srv.dimse!.port, [corpusFile('MR_small')], ['-xe'])).code).toBe(0);
      expect((await storescu(srv.dimse!.port, [corpusFile('MR_small')], ['-xe'])).code).toBe(0);
      const other = await storescu(srv.dimse!.port, [corpusFile('MR_small_RLE')], ['-xr', '-R', '-v']);
      expect(other.code).not.toBe(0);
      expect(other.out).toMatch(/Received Store Response \(.*0x0?111\)/i);
      const sop = dataset(fs.readFileSync(corpusFile('MR_small')), 'x.dcm').sop;
      const kept = dataset(await storedBytes(srv, sop), 'kept.dcm');
      expect(kept.ts).toBe('1.2.840.10008.1.2.1');
    });

    test('protocol garbage and an oversized PDU close the connection; the server keeps serving', async () => {
      for (const bytes of [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from([1, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]), Buffer.from([4, 0, 0, 0, 0, 10, 0, 0, 0, 6, 1, 3, 0, 0, 0, 0])]) {
        const closed = await new Promise<boolean>((resolve) => {
          const s = net.connect(srv.dimse!.port, '127.0.0.1', () => s.write(bytes));
          s.on('data', () => undefined);
          const timer = setTimeout(() => { s.destroy(); resolve(false); }, 5000);
          s.on('close', () => { clearTimeout(timer); resolve(true); });
          s.on('error', () => undefined);
        });
        expect(closed).toBe(true);
      }
      expect((await request(srv.app).get('/health')).status).toBe(200);
      expect((await run('echoscu', ['-aet', 'MODALITY1', '-aec', 'DICOMWEB', '127.0.0.1', String(srv.dimse!.port)])).code).toBe(0);
    });

    test('/metrics counts what C-STORE stored', async () => {
      const m = await request(srv.app).get('/metrics');
      expect(m.status).toBe(200);
      expect(m.text).toMatch(/dicomweb_store_instances_total\{protocol="dimse",outcome="stored"\} \d+/);
    });
  });
});

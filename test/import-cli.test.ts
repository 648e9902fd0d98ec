/**
 * `dicomweb-render-server import` (cli/import.ts) as a user runs it: a real process uploading a folder tree and
 * a zip archive to a real server, with non-DICOM files skipped, failures reported with their reasons, and a
 * second run resumed from the journal.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFile, execFileSync } from 'child_process';
import request from 'supertest';
import { startServer, TestServer, corpusFile } from './helpers/server';
import { looksLikeDicom } from '../cli/import';
import { parseDicomFile } from '../dicom/parse';
import { freePort } from '../bench/lib/servers';

const CLI = path.join(__dirname, '..', 'cli', 'main.js');
const cli = (args: string[], cwd: string) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
  execFile(process.execPath, [CLI, ...args], { cwd, timeout: 120_000 }, (err, stdout, stderr) => {
    resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr });
  });
});

let srv: TestServer;
let dir: string;
beforeAll(async () => {
  srv = await startServer({ renderWorkers: 0 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'import-'));
  // A folder tree: DICOM files at two depths, one without an extension, a text file, a truncated instance.
  fs.mkdirSync(path.join(dir, 'tree', 'series1', 'deeper'), { recursive: true });
  fs.copyFileSync(corpusFile('CT_small'), path.join(dir, 'tree', 'series1', 'ct.dcm'));
  fs.copyFileSync(corpusFile('SC_rgb'), path.join(dir, 'tree', 'series1', 'deeper', 'IM0001'));
  // a bare data set (no preamble, no File Meta): stored with a generated header and a warning (202)
  const rtdose = fs.readFileSync(corpusFile('rtdose'));
  fs.writeFileSync(path.join(dir, 'tree', 'bare-dataset'), rtdose.subarray(parseDicomFile(corpusFile('rtdose')).datasetOffset));
  fs.copyFileSync(corpusFile('MR_truncated'), path.join(dir, 'tree', 'truncated.dcm'));
  fs.writeFileSync(path.join(dir, 'tree', 'README.txt'), 'not a DICOM file\n');
  fs.writeFileSync(path.join(dir, 'tree', 'DICOMDIR-like.bin'), Buffer.alloc(300, 0xab));
  // A zip archive made with Python's zipfile (deflated entries, one folder inside).
  const zipSrc = path.join(dir, 'zsrc');
  fs.mkdirSync(path.join(zipSrc, 'a'), { recursive: true });
  fs.copyFileSync(corpusFile('MR_small'), path.join(zipSrc, 'a', 'mr.dcm'));
  fs.copyFileSync(corpusFile('emri_small'), path.join(zipSrc, 'emri.dcm'));
  fs.writeFileSync(path.join(zipSrc, 'notes.txt'), 'hello');
  execFileSync('python3', ['-c', `import zipfile,os,sys
z=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)
for root,_,files in os.walk(sys.argv[2]):
  for f in files:
    p=os.path.join(root,f); z.write(p, os.path.relpath(p, sys.argv[2]))
z.close()`, path.join(dir, 'archive.zip'), zipSrc]);
});
afterAll(async () => { await srv?.stop(); fs.rmSync(dir, { recursive: true, force: true }); });

test('a folder tree and a zip are uploaded; non-DICOM files skipped; a bad instance reported with its reason', async () => {
  const r = await cli(['import', 'tree', 'archive.zip', '--url', `${srv.url}/dicom-web`, '--concurrency', '3'], dir);
  expect(r.stdout).toMatch(/^stored 5 \([\d.]+ MB in [\d.]+ s\), already stored by an earlier run 0, not DICOM 3, failed 1$/m);
  expect(r.stdout).toMatch(/^FAILED .*truncated\.dcm: 409 0xC000 /m);
  expect(r.code).toBe(1);
  // progress lines (stderr is not a terminal here: one line per few seconds, and a final one)
  expect(r.stderr).toMatch(/9\/9 files, [\d.]+\/[\d.]+ MB, [\d.]+ MB\/s, ETA [\d-]+:[\d-]+ \| stored 5, done before 0, skipped 3, failed 1/);
  const studies = await request(srv.app).get('/dicom-web/studies');
  expect(studies.body).toHaveLength(5);
});

test('a second run resumes from the journal: nothing is sent again', async () => {
  const r = await cli(['import', 'tree', 'archive.zip', '--url', `${srv.url}/dicom-web`], dir);
  expect(r.stdout).toMatch(/^stored 0 .*already stored by an earlier run 5, not DICOM 3, failed 1$/m);
});

test('usage errors and an unreachable server are reported, with exit codes', async () => {
  const noUrl = await cli(['import', 'tree'], dir);
  expect(noUrl.code).toBe(2);
  expect(noUrl.stderr).toMatch(/--url must be/);
  const missing = await cli(['import', 'nowhere', '--url', `${srv.url}/dicom-web`], dir);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toMatch(/nowhere: no such file or folder/);
  const closed = await freePort(); // nothing listens there
  const down = await cli(['import', 'tree', '--url', `http://127.0.0.1:${closed}/dicom-web`, '--journal', 'other.journal'], dir);
  expect(down.code).toBe(1);
  expect(down.stdout).toContain(`ct.dcm: cannot reach http://127.0.0.1:${closed}/dicom-web: ECONNREFUSED`);
});

test('DICOM is recognised by its first bytes', () => {
  expect(looksLikeDicom(fs.readFileSync(corpusFile('CT_small')).subarray(0, 132))).toBe(true);
  expect(looksLikeDicom(fs.readFileSync(path.join(dir, 'tree', 'bare-dataset')).subarray(0, 132))).toBe(true);
  expect(looksLikeDicom(Buffer.from('%PDF-1.4 hello world, a document that is not an image'))).toBe(false);
  expect(looksLikeDicom(Buffer.alloc(132))).toBe(false);
});

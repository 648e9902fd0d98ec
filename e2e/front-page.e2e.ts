/**
 * The front page (`/`, server/public) in headless Chromium against a real server with authentication and
 * signed links on: paste a token, the study list with rendered thumbnails, search by patient ID, name,
 * modality and date range, an upload through the file picker and one by a drop of files (a synthetic drop
 * event whose DataTransfer holds File objects), with the progress bar and a per-file result (a non-DICOM file
 * fails with the server's reason), then a study's rendered URL and signed link, each fetched. Screenshots go
 * to test-output/e2e/front-*.png.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Page } from 'playwright-core';
import { startServer, TestServer, corpusFile, multipartBody } from '../test/helpers/server';
import { launchChromium } from './chromium';

declare const document: any;
declare const DataTransfer: any;
declare const File: any;
declare const DragEvent: any;

const OUT = path.join(process.cwd(), 'test-output/e2e');
const KEY = 'front-page-e2e-key-0123456789abcdef';
const CT = { file: 'CT_small', study: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322', patientId: '1CT1' };
const MR = { file: 'MR_small', study: '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457', patientId: '4MR1' };
const SC = { file: 'SC_rgb', study: '1.2.826.0.1.3680043.8.498.12406831542731051035295345080039845114' };
const OW = { file: 'OBXXXX1A' };

let srv: TestServer;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let page: Page;
const pageErrors: string[] = [];

const shot = (name: string) => page.screenshot({ path: path.join(OUT, `front-${name}.png`), fullPage: true, timeout: 15_000 });
const rowStudies = () => page.evaluate(() => Array.from(document.querySelectorAll('tr.study')).map((tr: any) => tr.dataset.study as string));
async function rowsAre(expected: string[]): Promise<void> {
  await page.waitForFunction((n) => document.querySelectorAll('tr.study').length === n && /stud/.test(document.querySelector('#status').textContent), expected.length);
  expect((await rowStudies()).sort()).toEqual([...expected].sort());
}
async function submitSearch(fields: Record<string, string>): Promise<void> {
  for (const name of ['PatientName', 'PatientID', 'from', 'to', 'ModalitiesInStudy']) await page.fill(`#search-form [name=${name}]`, fields[name] ?? '');
  await page.evaluate(() => { document.querySelector('#status').textContent = ''; });
  await page.click('#search-form button[type=submit]');
}

beforeAll(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  srv = await startServer({}, ['--api-keys', `${KEY}:dicomweb.read dicomweb.write`, '--signed-link-key', 's'.repeat(40)]);
  const { body, contentType } = multipartBody([CT, MR].map((s) => fs.readFileSync(corpusFile(s.file))));
  const res = await fetch(`${srv.base}/studies`, { method: 'POST', body, headers: { 'Content-Type': contentType, Authorization: `Bearer ${KEY}` } });
  if (res.status !== 200) throw new Error(`STOW-RS answered ${res.status}: ${await res.text()}`);
  browser = await launchChromium({ width: 1280, height: 900 });
  page = browser.context.pages()[0] ?? await browser.context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // the browser logs every 4xx as a console error (401 before the token, 409 of the refused file, favicon): only script errors count
  page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) pageErrors.push(m.text()); });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await srv?.stop();
});

test('without a token the page says why; with one it lists the studies with rendered thumbnails', async () => {
  await page.goto(`${srv.url}/`);
  await page.waitForSelector('#auth:not([hidden])');
  await page.waitForFunction(() => /401/.test(document.querySelector('#status').textContent));
  await page.fill('#token', `Bearer ${KEY}`);
  await page.click('#token-save');
  await rowsAre([CT.study, MR.study]);
  // every thumbnail is a decoded image (fetched with the token, shown from a blob: URL the CSP allows)
  await page.waitForFunction(() => Array.from(document.querySelectorAll('tr.study img.thumb')).every((i: any) => i.complete && i.naturalWidth > 0));
  const sizes = await page.evaluate(() => Array.from(document.querySelectorAll('tr.study img.thumb')).map((i: any) => [i.naturalWidth, i.naturalHeight, i.src.slice(0, 5)]));
  for (const [w, h, scheme] of sizes) { expect(Math.max(w as number, h as number)).toBeGreaterThan(32); expect(scheme).toBe('blob:'); }
  const text = await page.textContent('#studies');
  expect(text).toContain('CompressedSamples^CT1');
  expect(text).toContain('2004-01-19');
  await shot('list');
  // the token survives a reload in this tab (sessionStorage)
  await page.reload();
  await rowsAre([CT.study, MR.study]);
});

test('search by patient ID, name, modality and date range', async () => {
  await submitSearch({ PatientID: CT.patientId });
  await rowsAre([CT.study]);
  await submitSearch({ PatientName: 'compressedsamples^m' }); // prefix, case-insensitive as PN matching is here
  await rowsAre([MR.study]);
  await submitSearch({ ModalitiesInStudy: 'mr' });
  await rowsAre([MR.study]);
  await submitSearch({ from: '2004-01-01', to: '2004-02-01' });
  await rowsAre([CT.study]);
  await shot('search-date');
  await submitSearch({ from: '2004-08-26' }); // open-ended range
  await rowsAre([MR.study]);
  await submitSearch({ PatientID: 'nobody' });
  await rowsAre([]);
  await submitSearch({});
  await rowsAre([CT.study, MR.study]);
});

test('upload with the file picker: progress and a result per file, a non-DICOM file refused with its reason', async () => {
  const notDicom = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'front-e2e-')), 'not-dicom.txt');
  fs.writeFileSync(notDicom, 'this is not a DICOM file\n'.repeat(20));
  await page.setInputFiles('#files', [corpusFile(SC.file), notDicom]);
  await page.waitForFunction(() => /done$/.test(document.querySelector('#progress-text').textContent));
  const results = await page.evaluate(() => Array.from(document.querySelectorAll('#results li')).map((li: any) => [li.className, li.textContent]));
  expect(results).toHaveLength(2);
  const byName = new Map(results.map(([c, t]) => [t.split(':')[0], [c, t]]));
  expect(byName.get('SC_rgb.dcm')).toEqual(['stored', 'SC_rgb.dcm: stored']);
  const [cls, msg] = byName.get('not-dicom.txt')!;
  expect(cls).toBe('failed');
  expect(msg).toMatch(/^not-dicom.txt: failed \(\d{3}.*\): \S+/);
  expect(await page.evaluate(() => { const p = document.querySelector('#progress'); return p.value === p.max; })).toBe(true);
  expect(await page.textContent('#progress-text')).toMatch(/^2\/2 files, 1 stored, 1 failed/);
  await rowsAre([CT.study, MR.study, SC.study]);
  await shot('upload-picker');
});

test('upload by dropping files', async () => {
  const files = [CT.file, OW.file].map((f) => ({ name: `${f}.dcm`, b64: fs.readFileSync(corpusFile(f)).toString('base64') }));
  await page.evaluate((list) => {
    const dt = new DataTransfer();
    for (const f of list) {
      const bin = atob(f.b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      dt.items.add(new File([bytes], f.name, { type: 'application/dicom' }));
    }
    document.querySelector('#results').replaceChildren();
    const drop = document.querySelector('#drop');
    drop.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    drop.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files);
  await page.waitForFunction(() => document.querySelectorAll('#results li').length === 2 && /done$/.test(document.querySelector('#progress-text').textContent));
  const results = await page.evaluate(() => Array.from(document.querySelectorAll('#results li')).map((li: any) => li.textContent).sort());
  // CT_small is there already with the same content: stored again (the duplicate rule), not an error
  expect(results).toEqual([`${CT.file}.dcm: stored`, `${OW.file}.dcm: stored`]);
  await page.waitForFunction(() => document.querySelectorAll('tr.study').length === 4);
  await shot('upload-drop');
});

test('a study\'s rendered URL and its signed link both give the image', async () => {
  await submitSearch({ PatientID: CT.patientId });
  await rowsAre([CT.study]);
  await page.click(`tr.study[data-study="${CT.study}"] button.more`);
  const input = page.locator('tr.details input.rendered-url').first();
  await input.waitFor();
  const url = await input.inputValue();
  expect(url).toMatch(new RegExp(`^${srv.url}/dicom-web/studies/${CT.study.replace(/\./g, '\\.')}/series/[0-9.]+/instances/[0-9.]+/frames/1/rendered$`));
  expect((await fetch(url)).status).toBe(401); // auth is on: the plain URL needs the token
  const withToken = await fetch(url, { headers: { Authorization: `Bearer ${KEY}`, Accept: 'image/png' } });
  expect(withToken.status).toBe(200);
  expect(withToken.headers.get('content-type')).toBe('image/png');
  const png = Buffer.from(await withToken.arrayBuffer());
  expect(png.subarray(1, 4).toString()).toBe('PNG');

  await page.click('tr.details button.sign');
  const signed = page.locator('tr.details input.signed-url').first();
  await signed.waitFor();
  const signedUrl = await signed.inputValue();
  expect(signedUrl).toContain('signature=');
  const res = await fetch(signedUrl); // no credentials: the link is the credential
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('image/jpeg');
  expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(1000);
  await shot('rendered-url');
  expect(pageErrors).toEqual([]);
});

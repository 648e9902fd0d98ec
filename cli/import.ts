/**
 * `dicomweb-render-server import DIR|ZIP... --url URL`: uploads a folder tree or zip archives of DICOM files to
 * any DICOMweb server through STOW-RS, in parallel, with a progress line (files, MB, rate, ETA), a journal that
 * makes a second run skip what was stored, and a summary of failures with their reasons. Files that are not
 * DICOM are skipped (a Part 10 preamble, or a bare data set that starts with a group 0002/0008 element).
 *
 * A client of the HTTP interface only: it imports nothing from the server.
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import * as crypto from 'crypto';
import yauzl from 'yauzl';

export interface ImportOptions {
  url: string;
  sources: string[];
  concurrency: number;
  token?: string;
  /** journal of what was stored; a re-run skips those entries */
  journal: string;
  /** progress output (stderr); null: none */
  progress: NodeJS.WritableStream | null;
}

export interface ImportSummary {
  stored: number;
  /** stored before, by an earlier run (journal) */
  alreadyDone: number;
  skipped: number;
  failed: Array<{ file: string; reason: string }>;
  bytes: number;
  seconds: number;
}

/** One file to upload: from disk, or an entry of a zip archive. */
interface Item { id: string; size: number; read(): Promise<Buffer> }

const USAGE = `usage: dicomweb-render-server import <folder|file.zip>... --url <DICOMweb root> [--concurrency N] [--token T] [--journal FILE]
  --url          the DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web
  --concurrency  uploads in flight (default 4)
  --token        sent as Authorization: Bearer (a write-scoped token or API key)
  --journal      what was stored, so that a re-run skips it (default .dicomweb-import.journal in the current folder)`;

export class UsageError extends Error {}

export function parseImportArgs(argv: string[], stderr: NodeJS.WritableStream | null): ImportOptions {
  const o: Partial<ImportOptions> & { sources: string[] } = { sources: [], concurrency: 4 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => { const v = argv[++i]; if (v === undefined) throw new UsageError(`${a} needs a value\n${USAGE}`); return v; };
    if (a === '--url') o.url = value().replace(/\/+$/, '');
    else if (a === '--concurrency') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError('--concurrency must be an integer from 1 to 64');
      o.concurrency = n;
    } else if (a === '--token') o.token = value();
    else if (a === '--journal') o.journal = value();
    else if (a === '--help' || a === '-h') throw new UsageError(USAGE);
    else if (a.startsWith('--')) throw new UsageError(`unknown option ${a}\n${USAGE}`);
    else o.sources.push(a);
  }
  if (!o.url || !/^https?:\/\/\S+$/.test(o.url)) throw new UsageError(`--url must be the http(s) URL of a DICOMweb root\n${USAGE}`);
  if (o.sources.length === 0) throw new UsageError(`name a folder or a zip file to import\n${USAGE}`);
  return { url: o.url, sources: o.sources, concurrency: o.concurrency ?? 4, token: o.token, journal: o.journal ?? '.dicomweb-import.journal', progress: stderr };
}

/** DICOM by its first bytes: "DICM" after a 128-byte preamble, or a data set starting with a (0002|0008,xxxx) tag. */
export function looksLikeDicom(head: Buffer): boolean {
  if (head.length >= 132 && head.toString('latin1', 128, 132) === 'DICM') return true;
  if (head.length >= 4 && head.toString('latin1', 0, 4) === 'DICM') return true; // meta without preamble
  if (head.length < 8) return false;
  const group = head.readUInt16LE(0);
  if (group !== 0x0002 && group !== 0x0008) return false;
  // explicit VR: two upper-case letters; implicit: a 4-byte length that fits the data
  const vr = head.toString('latin1', 4, 6);
  return /^[A-Z]{2}$/.test(vr) || head.readUInt32LE(4) < 1 << 24;
}

async function* walk(dir: string): AsyncGenerator<string> {
  const entries = await fsp.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

const openZip = (file: string) => new Promise<yauzl.ZipFile>((resolve, reject) => yauzl.open(file, { lazyEntries: true, autoClose: false }, (e: Error | null, z?: yauzl.ZipFile) => (e ? reject(e) : resolve(z!))));

function zipEntryBytes(zip: yauzl.ZipFile, entry: yauzl.Entry, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(entry, (e: Error | null, stream?: NodeJS.ReadableStream & { destroy(e?: Error): void }) => {
      if (e || !stream) { reject(e ?? new Error('cannot read zip entry')); return; }
      const chunks: Buffer[] = [];
      let n = 0;
      stream.on('data', (c: Buffer) => { n += c.length; if (n > limit) stream.destroy(new Error(`entry inflates past ${limit} bytes`)); else chunks.push(c); });
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    });
  });
}

/** Every file of the sources: folders walked, zip archives (on disk or inside folders) opened entry by entry. */
async function* items(sources: string[], zips: yauzl.ZipFile[]): AsyncGenerator<Item> {
  for (const src of sources) {
    const st = await fsp.stat(src).catch(() => undefined);
    if (!st) throw new UsageError(`${src}: no such file or folder`);
    const files = st.isDirectory() ? walk(src) : (async function* () { yield src; })();
    for await (const f of files) {
      if (/\.zip$/i.test(f)) {
        const zip = await openZip(f);
        zips.push(zip);
        const entries: yauzl.Entry[] = await new Promise((resolve, reject) => {
          const all: yauzl.Entry[] = [];
          zip.on('entry', (e: yauzl.Entry) => { if (!e.fileName.endsWith('/')) all.push(e); zip.readEntry(); });
          zip.on('end', () => resolve(all));
          zip.on('error', reject);
          zip.readEntry();
        });
        for (const e of entries) {
          yield { id: `${path.resolve(f)}!${e.fileName}`, size: e.uncompressedSize, read: () => zipEntryBytes(zip, e, Math.max(e.uncompressedSize, 1) * 1.01 + 1024) };
        }
      } else {
        const size = (await fsp.stat(f)).size;
        yield { id: path.resolve(f), size, read: () => fsp.readFile(f) };
      }
    }
  }
}

/** The reason a STOW-RS response gives for its first failed instance, or its error text. */
function failureReason(status: number, body: string): string {
  try {
    const j = JSON.parse(body);
    const failed = j?.['00081198']?.Value?.[0];
    if (failed) {
      const code = failed['00081197']?.Value?.[0];
      const comment = failed['00000902']?.Value?.[0];
      return `${status}${code !== undefined ? ` 0x${Number(code).toString(16).toUpperCase().padStart(4, '0')}` : ''}${comment ? ` ${comment}` : ''}`;
    }
    if (typeof j?.error === 'string') return `${status} ${j.error}`;
  } catch { /* not JSON */ }
  return `${status} ${body.slice(0, 200)}`;
}

async function stow(opts: ImportOptions, bytes: Buffer): Promise<{ ok: boolean; reason?: string }> {
  const boundary = `import-${crypto.randomBytes(12).toString('hex')}`;
  const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const headers: Record<string, string> = { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, Accept: 'application/dicom+json' };
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(`${opts.url}/studies`, { method: 'POST', headers, body });
    } catch (e: any) {
      if (attempt < 3) { await new Promise((r) => setTimeout(r, 500 * attempt)); continue; }
      const cause = e?.cause;
      return { ok: false, reason: `cannot reach ${opts.url}: ${cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? e?.message ?? e}` };
    }
    const text = await res.text();
    if (res.status === 200) return { ok: true };
    // 503 (busy, index unavailable) and 507 (disk full) may pass: retried a little, then reported.
    if ((res.status === 503 || res.status === 429) && attempt < 3) { await new Promise((r) => setTimeout(r, 1000 * attempt)); continue; }
    if (res.status === 202) {
      // stored with a warning (e.g. coercion), or a failure: the response says which
      if (!text.includes('"00081198"')) return { ok: true };
    }
    return { ok: false, reason: failureReason(res.status, text) };
  }
}

const mb = (n: number) => (n / 1048576).toFixed(1);
function eta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export async function runImport(opts: ImportOptions): Promise<ImportSummary> {
  const done = new Set<string>();
  if (fs.existsSync(opts.journal)) for (const l of fs.readFileSync(opts.journal, 'utf8').split('\n')) if (l) done.add(l);
  const journal = fs.openSync(opts.journal, 'a');
  const zips: yauzl.ZipFile[] = [];
  const t0 = Date.now();
  const s: ImportSummary = { stored: 0, alreadyDone: 0, skipped: 0, failed: [], bytes: 0, seconds: 0 };
  // The total is counted first (sizes only), so the progress line can give an ETA.
  let totalFiles = 0, totalBytes = 0;
  for await (const it of items(opts.sources, zips)) { totalFiles++; totalBytes += it.size; }
  let seenFiles = 0, seenBytes = 0;
  const tty = Boolean((opts.progress as any)?.isTTY);
  let lastPrint = 0;
  const show = (final = false) => {
    if (!opts.progress) return;
    const now = Date.now();
    if (!final && now - lastPrint < (tty ? 200 : 5000)) return;
    lastPrint = now;
    const secs = (now - t0) / 1000;
    const rate = s.bytes / Math.max(secs, 0.001);
    const left = totalBytes - seenBytes;
    const line = `${seenFiles}/${totalFiles} files, ${mb(seenBytes)}/${mb(totalBytes)} MB, ${mb(rate)} MB/s, ETA ${eta(left / rate)} | stored ${s.stored}, done before ${s.alreadyDone}, skipped ${s.skipped}, failed ${s.failed.length}`;
    opts.progress.write(tty ? `\r${line}\x1b[K${final ? '\n' : ''}` : `${line}\n`);
  };
  const running = new Set<Promise<void>>();
  try {
    for await (const it of items(opts.sources, zips)) {
      const task = (async () => {
        try {
          if (done.has(it.id)) { s.alreadyDone++; return; }
          let bytes: Buffer;
          try { bytes = await it.read(); } catch (e: any) { s.failed.push({ file: it.id, reason: `cannot read: ${e?.message ?? e}` }); return; }
          if (!looksLikeDicom(bytes.subarray(0, 132))) { s.skipped++; return; }
          const r = await stow(opts, bytes);
          if (r.ok) {
            s.stored++; s.bytes += bytes.length;
            fs.writeSync(journal, `${it.id}\n`);
          } else s.failed.push({ file: it.id, reason: r.reason! });
        } finally {
          seenFiles++; seenBytes += it.size;
          show();
        }
      })();
      running.add(task);
      task.finally(() => running.delete(task));
      while (running.size >= opts.concurrency) await Promise.race(running);
    }
    await Promise.all(running);
  } finally {
    fs.closeSync(journal);
    for (const z of zips) z.close();
  }
  s.seconds = (Date.now() - t0) / 1000;
  show(true);
  return s;
}

/** Entry point of `dicomweb-render-server import`; returns the process exit code. */
export async function importMain(argv: string[]): Promise<number> {
  let opts: ImportOptions;
  try { opts = parseImportArgs(argv, process.stderr); } catch (e) {
    if (e instanceof UsageError) { process.stderr.write(`${e.message}\n`); return 2; }
    throw e;
  }
  let s: ImportSummary;
  try { s = await runImport(opts); } catch (e: any) {
    process.stderr.write(`import failed: ${e instanceof UsageError ? e.message : e?.message ?? e}\n`);
    return 2;
  }
  const out = process.stdout;
  out.write(`stored ${s.stored} (${mb(s.bytes)} MB in ${s.seconds.toFixed(1)} s), already stored by an earlier run ${s.alreadyDone}, not DICOM ${s.skipped}, failed ${s.failed.length}\n`);
  for (const f of s.failed) out.write(`FAILED ${f.file}: ${f.reason}\n`);
  return s.failed.length ? 1 : 0;
}

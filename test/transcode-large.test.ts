/**
 * Transcoding a 500 MB multi-frame instance keeps memory bounded: the instance (made here: 1000 frames of 512×512
 * 16-bit, Implicit VR Little Endian) is stored by a streamed STOW-RS, then retrieved (1) in Explicit VR Little
 * Endian, which re-serialises the dataset and copies the pixels in chunks, and (2) in RLE Lossless, which decodes
 * and encodes frame by frame. The responses stream to disk; the server's process (this one) is sampled every
 * 20 ms and its resident memory may grow by at most 150 MB over what it held before the request (the whole
 * instance would be 500 MB, twice that if it were buffered). Figures go to test-output/transcode-memory.txt.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import { execFileSync } from 'child_process';
import { startServer, TestServer } from './helpers/server';
import { parseDicomFile } from '../dicom/parse';
import { decodeFrame, initCodecs } from '../render/codecs';
import { part10Header } from '../server/ingest';

jest.setTimeout(600_000);

const ROWS = 512, COLS = 512, FRAMES = Number(process.env.TRANSCODE_LARGE_FRAMES ?? 1000);
const FRAME_BYTES = ROWS * COLS * 2;
const STUDY = '2.25.1700000000000000000000001', SERIES = '2.25.1700000000000000000000002', SOP = '2.25.1700000000000000000000003';

/** Frame n (1-based): a ramp with a per-frame offset, so frames differ and compress. */
function frame(n: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_BYTES);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) b.writeUInt16LE(((r >> 2) * 7 + (c >> 3) + n * 13) & 0xfff, (r * COLS + c) * 2);
  return b;
}

function implicitElement(tag: number, value: Buffer): Buffer {
  const v = value.length % 2 ? Buffer.concat([value, Buffer.from([0x20])]) : value;
  const h = Buffer.alloc(8);
  h.writeUInt16LE(tag >>> 16, 0); h.writeUInt16LE(tag & 0xffff, 2); h.writeUInt32LE(v.length, 4);
  return Buffer.concat([h, v]);
}
const str = (s: string, pad = 0x20) => { const b = Buffer.from(s, 'latin1'); return b.length % 2 ? Buffer.concat([b, Buffer.from([pad])]) : b; };
const us = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(n); return b; };

function writeInstance(file: string): number {
  const head = Buffer.concat([
    part10Header({ sopClassUID: '1.2.840.10008.5.1.4.1.1.7.3', sopInstanceUID: SOP, transferSyntaxUID: '1.2.840.10008.1.2' }),
    implicitElement(0x00080016, str('1.2.840.10008.5.1.4.1.1.7.3', 0)),
    implicitElement(0x00080018, str(SOP, 0)),
    implicitElement(0x00080060, str('OT')),
    implicitElement(0x00100010, str('Large^Multiframe')),
    implicitElement(0x0020000d, str(STUDY, 0)),
    implicitElement(0x0020000e, str(SERIES, 0)),
    implicitElement(0x00280002, us(1)),
    implicitElement(0x00280004, str('MONOCHROME2')),
    implicitElement(0x00280008, str(String(FRAMES))),
    implicitElement(0x00280010, us(ROWS)),
    implicitElement(0x00280011, us(COLS)),
    implicitElement(0x00280100, us(16)),
    implicitElement(0x00280101, us(12)),
    implicitElement(0x00280102, us(11)),
    implicitElement(0x00280103, us(0)),
  ]);
  const px = Buffer.alloc(8); px.writeUInt16LE(0x7fe0, 0); px.writeUInt16LE(0x0010, 2); px.writeUInt32LE(FRAME_BYTES * FRAMES, 4);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, Buffer.concat([head, px]));
  for (let n = 1; n <= FRAMES; n++) fs.writeSync(fd, frame(n));
  fs.closeSync(fd);
  return fs.statSync(file).size;
}

/** Streamed STOW-RS of one file. */
function stow(srv: TestServer, file: string): Promise<number> {
  const boundary = 'largeboundary0123456789';
  const head = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return new Promise((resolve, reject) => {
    const req = http.request(`${srv.base}/studies`, { method: 'POST', headers: {
      'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
      'Content-Length': head.length + fs.statSync(file).size + tail.length, Accept: 'application/dicom+json' } }, (res) => {
      res.resume(); res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write(head);
    const s = fs.createReadStream(file);
    s.on('error', reject);
    s.on('end', () => req.end(tail));
    s.pipe(req, { end: false });
  });
}

/** GET streamed to `out` (the first part's body, cut out afterwards by offsets); peak RSS growth while it ran. */
async function retrieveToFile(srv: TestServer, url: string, accept: string, out: string): Promise<{ status: number; growthMB: number; seconds: number; contentType: string }> {
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
  const t0 = Date.now();
  try {
    return await new Promise((resolve, reject) => {
      http.get(`${srv.base}${url}`, { headers: { Accept: accept }, agent: false }, (res) => {
        const w = fs.createWriteStream(out);
        res.pipe(w);
        w.on('finish', () => resolve({ status: res.statusCode ?? 0, growthMB: (peak - base) / 2 ** 20, seconds: (Date.now() - t0) / 1000, contentType: String(res.headers['content-type']) }));
        w.on('error', reject);
      }).on('error', reject);
    });
  } finally {
    clearInterval(timer);
  }
}

/** The first part of a multipart file, written to `part` (headers and boundaries cut off, read in chunks). */
function firstPart(file: string, contentType: string, part: string): string {
  const boundary = /boundary=([^;]+)/.exec(contentType)![1];
  const fd = fs.openSync(file, 'r');
  const head = Buffer.alloc(4096);
  fs.readSync(fd, head, 0, head.length, 0);
  const start = head.indexOf('\r\n\r\n') + 4;
  const headers = head.subarray(0, start).toString('latin1');
  const size = fs.statSync(file).size;
  const end = size - Buffer.byteLength(`\r\n--${boundary}--\r\n`);
  const out = fs.openSync(part, 'w');
  const buf = Buffer.alloc(8 * 1024 * 1024);
  for (let at = start; at < end;) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - at), at);
    fs.writeSync(out, buf, 0, n);
    at += n;
  }
  fs.closeSync(fd); fs.closeSync(out);
  return headers;
}

describe('a 500 MB multi-frame instance', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'transcode-large-'));
  let srv: TestServer;
  const url = `/studies/${STUDY}/series/${SERIES}/instances/${SOP}`;
  const figures: string[] = [];
  beforeAll(async () => {
    srv = await startServer({ renderWorkers: 0 });
    const src = path.join(dir, 'large.dcm');
    const size = writeInstance(src);
    expect(size).toBeGreaterThan(FRAMES * FRAME_BYTES);
    expect(await stow(srv, src)).toBe(200);
    fs.rmSync(src);
    await initCodecs(['dcmjs-codecs']);
  });
  afterAll(async () => {
    await srv?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync('test-output', { recursive: true });
    fs.writeFileSync(path.join('test-output', 'transcode-memory.txt'), `${figures.join('\n')}\n`);
  });

  test('Implicit VR LE → Explicit VR LE: streamed, memory bounded, every frame intact', async () => {
    const out = path.join(dir, 'explicit.multipart');
    const r = await retrieveToFile(srv, url, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1', out);
    figures.push(`implicit LE -> explicit LE, ${FRAMES} frames of ${ROWS}x${COLS}x16: ${r.seconds.toFixed(1)} s, RSS growth ${r.growthMB.toFixed(1)} MB`);
    expect(r.status).toBe(200);
    const part = path.join(dir, 'explicit.dcm');
    expect(firstPart(out, r.contentType, part)).toContain('transfer-syntax=1.2.840.10008.1.2.1');
    fs.rmSync(out);
    const p = parseDicomFile(part);
    expect(p.transferSyntaxUID).toBe('1.2.840.10008.1.2.1');
    expect(p.pixelData!.length).toBe(FRAME_BYTES * FRAMES);
    const fd = fs.openSync(part, 'r');
    for (const n of [1, Math.ceil(FRAMES / 2), FRAMES]) {
      const b = Buffer.alloc(FRAME_BYTES);
      fs.readSync(fd, b, 0, FRAME_BYTES, p.pixelData!.offset + (n - 1) * FRAME_BYTES);
      expect(b.equals(frame(n))).toBe(true);
    }
    fs.closeSync(fd);
    execFileSync('dcmdump', ['-q', '+P', '0028,0008', part], { stdio: ['ignore', 'pipe', 'pipe'] });
    fs.rmSync(part);
    expect(r.growthMB).toBeLessThan(150);
  });

  test('→ RLE Lossless frame by frame: memory bounded, frames decode to the originals, dcmdump reads it', async () => {
    const out = path.join(dir, 'rle.multipart');
    const r = await retrieveToFile(srv, url, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.5', out);
    figures.push(`implicit LE -> RLE, ${FRAMES} frames: ${r.seconds.toFixed(1)} s, RSS growth ${r.growthMB.toFixed(1)} MB`);
    expect(r.status).toBe(200);
    const part = path.join(dir, 'rle.dcm');
    firstPart(out, r.contentType, part);
    fs.rmSync(out);
    const p = parseDicomFile(part);
    expect(p.transferSyntaxUID).toBe('1.2.840.10008.1.2.5');
    expect(p.pixelData!.fragments).toHaveLength(FRAMES);
    const fd = fs.openSync(part, 'r');
    const info = { rows: ROWS, columns: COLS, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0 };
    for (const n of [1, Math.ceil(FRAMES / 2), FRAMES]) {
      const f = p.pixelData!.fragments[n - 1];
      const b = Buffer.alloc(f.length);
      fs.readSync(fd, b, 0, f.length, f.offset);
      const d = decodeFrame('1.2.840.10008.1.2.5', { data: b }, info);
      expect(Buffer.from((d.pixels as Uint16Array).buffer, (d.pixels as Uint16Array).byteOffset, FRAME_BYTES).equals(frame(n))).toBe(true);
    }
    fs.closeSync(fd);
    execFileSync('dcmdump', ['-q', '+P', '0028,0008', part], { stdio: ['ignore', 'pipe', 'pipe'] });
    fs.rmSync(part);
    expect(r.growthMB).toBeLessThan(150);
  });
});

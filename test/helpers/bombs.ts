/**
 * Small hand-built files and requests that attack the server's loops and memory (issue 14): instances whose text
 * values invite backtracking, pixel geometry that claims far more than the file holds, deflated and compressed
 * frames whose headers claim huge sizes, and a watcher of the event loop (delay and /health latency) and of RSS.
 */
import * as crypto from 'crypto';
import * as http from 'http';
import * as zlib from 'zlib';
import { monitorEventLoopDelay, performance } from 'perf_hooks';
import { part10Header } from '../../server/ingest';

/** One explicit VR little endian element. */
export function element(group: number, el: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'OD', 'OF', 'OL', 'OV', 'SQ', 'UN', 'UT', 'UC', 'UR'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0); h.writeUInt16LE(el, 2); h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8); else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
export const ui = (s: string) => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
export const text = (s: string) => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');
export const us = (v: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
export const newUid = () => `2.25.${BigInt(`0x${crypto.randomBytes(14).toString('hex')}`).toString()}`;

export interface Uids { study: string; series: string; sop: string }

/** A Part 10 file (explicit VR little endian meta) around `dataset`, written in transfer syntax `ts`. */
export function part10(ts: string, sopClass: string, sop: string, dataset: Buffer): Buffer {
  return Buffer.concat([part10Header({ sopClassUID: sopClass, sopInstanceUID: sop, transferSyntaxUID: ts }), dataset]);
}

/** Elements as [tag, vr, value], sorted by tag and joined. */
function dataset(els: Array<[number, string, Buffer]>): Buffer {
  return Buffer.concat(els.sort((a, b) => a[0] - b[0]).map(([t, vr, v]) => element(t >>> 16, t & 0xffff, vr, v)));
}

const SC = '1.2.840.10008.5.1.4.1.1.7';

/**
 * An image whose every text key is a run of one letter (the worst case for a backtracking matcher given a
 * pattern like *A*A*A...*B): study, series and instance level, indexed columns and attributes matched in JSON.
 */
export function longValuesInstance(u: Uids = { study: newUid(), series: newUid(), sop: newUid() }): { file: Buffer; uids: Uids } {
  const a = (n: number) => text('A'.repeat(n));
  const file = part10('1.2.840.10008.1.2.1', SC, u.sop, dataset([
    [0x00080016, 'UI', ui(SC)], [0x00080018, 'UI', ui(u.sop)], [0x00080020, 'DA', text('20200101')],
    [0x00080050, 'SH', a(16)], [0x00080060, 'CS', a(16)], [0x00080070, 'LO', a(64)], [0x00080080, 'LO', a(64)],
    [0x00080090, 'PN', a(64)], [0x00081010, 'SH', a(16)], [0x00081030, 'LO', a(64)], [0x0008103e, 'LO', a(64)],
    [0x00100010, 'PN', Buffer.from(`${'A'.repeat(60)}^${'A'.repeat(59)}`)], [0x00100020, 'LO', a(64)], [0x00180015, 'CS', a(16)],
    [0x0020000d, 'UI', ui(u.study)], [0x0020000e, 'UI', ui(u.series)], [0x00200010, 'SH', a(16)], [0x00204000, 'LT', a(1024)],
    [0x00280002, 'US', us(1)], [0x00280004, 'CS', text('MONOCHROME2')], [0x00280010, 'US', us(2)], [0x00280011, 'US', us(2)],
    [0x00280100, 'US', us(8)], [0x00280101, 'US', us(8)], [0x00280102, 'US', us(7)], [0x00280103, 'US', us(0)],
    [0x7fe00010, 'OB', Buffer.from([1, 2, 3, 4])],
  ]));
  return { file, uids: u };
}

/** Keys that take wildcards (PS3.4 C.2.2.2.4: AE CS LO LT PN SH ST UC UR UT), with the level each is searched at. */
export const WILDCARD_KEYS: Array<{ key: string; level: 'studies' | 'series' | 'instances' }> = [
  { key: 'PatientName', level: 'studies' }, { key: 'PatientID', level: 'studies' }, { key: 'AccessionNumber', level: 'studies' },
  { key: 'StudyDescription', level: 'studies' }, { key: 'ReferringPhysicianName', level: 'studies' }, { key: 'StudyID', level: 'studies' },
  { key: 'ModalitiesInStudy', level: 'studies' }, { key: 'InstitutionName', level: 'studies' }, { key: 'Modality', level: 'studies' },
  { key: 'Modality', level: 'series' }, { key: 'SeriesDescription', level: 'series' }, { key: 'StationName', level: 'series' },
  { key: 'BodyPartExamined', level: 'series' }, { key: 'PatientName', level: 'series' }, { key: 'Manufacturer', level: 'instances' },
  { key: 'ImageComments', level: 'instances' }, { key: 'PatientName', level: 'instances' }, { key: 'StudyDescription', level: 'instances' },
];

/** Patterns that make a backtracking matcher exponential or quadratic, and long ones. */
export function patternBombs(): string[] {
  return [
    `${'*A'.repeat(30)}*B`, `${'A*'.repeat(40)}B`, `${'?*'.repeat(40)}B`, `${'*?'.repeat(60)}`, `${'*'.repeat(1000)}B`,
    `A${'*'.repeat(500)}A${'?'.repeat(100)}B`, 'A'.repeat(1024), `${'*A'.repeat(512)}`, '*A'.repeat(513), // the last: too long
    `${'^*'.repeat(40)}B`, `${'=*'.repeat(40)}B`, `*${'\u00c5*'.repeat(40)}`,
  ];
}

/**
 * A native image (explicit VR little endian) with the geometry given and `pixelBytes` bytes of pixel data; values
 * left undefined are not written. Small whatever NumberOfFrames says.
 */
export function geometryFile(g: { rows?: number; columns?: number; bitsAllocated?: number; samplesPerPixel?: number; frames?: number; pixelBytes: number },
  u: Uids = { study: newUid(), series: newUid(), sop: newUid() }): Buffer {
  const els: Array<[number, string, Buffer]> = [
    [0x00080016, 'UI', ui(SC)], [0x00080018, 'UI', ui(u.sop)], [0x00080060, 'CS', text('OT')],
    [0x0020000d, 'UI', ui(u.study)], [0x0020000e, 'UI', ui(u.series)], [0x00280004, 'CS', text('MONOCHROME2')],
    [0x00280101, 'US', us(Math.max(1, Math.min(16, g.bitsAllocated ?? 8)))], [0x00280102, 'US', us(Math.max(0, Math.min(15, (g.bitsAllocated ?? 8) - 1)))],
    [0x00280103, 'US', us(0)], [0x7fe00010, 'OB', Buffer.alloc(g.pixelBytes + (g.pixelBytes % 2), 0x55)],
  ];
  if (g.rows !== undefined) els.push([0x00280010, 'US', us(g.rows)]);
  if (g.columns !== undefined) els.push([0x00280011, 'US', us(g.columns)]);
  if (g.bitsAllocated !== undefined) els.push([0x00280100, 'US', us(g.bitsAllocated)]);
  if (g.samplesPerPixel !== undefined) els.push([0x00280002, 'US', us(g.samplesPerPixel)]);
  if (g.frames !== undefined) els.push([0x00280008, 'IS', text(String(g.frames))]);
  return part10('1.2.840.10008.1.2.1', SC, u.sop, dataset(els));
}

/**
 * An encapsulated image in transfer syntax `ts` with one fragment holding `bitstream`, and a description that says
 * `rows` x `columns` and `frames` frames.
 */
export function encapsulatedFile(ts: string, bitstream: Buffer, g: { rows: number; columns: number; frames?: number; bitsAllocated?: number; samples?: number },
  u: Uids = { study: newUid(), series: newUid(), sop: newUid() }): Buffer {
  const item = (b: Buffer) => { const h = Buffer.alloc(8); h.writeUInt16LE(0xfffe, 0); h.writeUInt16LE(0xe000, 2); h.writeUInt32LE(b.length, 4); return Buffer.concat([h, b]); };
  const even = bitstream.length % 2 ? Buffer.concat([bitstream, Buffer.from([0])]) : bitstream;
  const px = Buffer.concat([item(Buffer.alloc(0)), item(even), Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0])]);
  const head = Buffer.alloc(12); head.writeUInt16LE(0x7fe0, 0); head.writeUInt16LE(0x0010, 2); head.write('OB', 4, 'latin1'); head.writeUInt32LE(0xffffffff, 8);
  const bits = g.bitsAllocated ?? 8;
  const samples = g.samples ?? 1;
  const els: Array<[number, string, Buffer]> = [
    [0x00080016, 'UI', ui(SC)], [0x00080018, 'UI', ui(u.sop)], [0x00080060, 'CS', text('OT')],
    [0x0020000d, 'UI', ui(u.study)], [0x0020000e, 'UI', ui(u.series)], [0x00280002, 'US', us(samples)],
    [0x00280004, 'CS', text(samples === 3 ? 'RGB' : 'MONOCHROME2')], [0x00280010, 'US', us(g.rows)], [0x00280011, 'US', us(g.columns)],
    [0x00280100, 'US', us(bits)], [0x00280101, 'US', us(bits)], [0x00280102, 'US', us(bits - 1)], [0x00280103, 'US', us(0)],
  ];
  if (samples === 3) els.push([0x00280006, 'US', us(0)]);
  if (g.frames !== undefined) els.push([0x00280008, 'IS', text(String(g.frames))]);
  return part10(ts, SC, u.sop, Buffer.concat([dataset(els), head, px]));
}

/** Bitstreams whose headers claim a 65535 x 65535 (or larger) image, one per codec family. */
export function compressionBombs(): Array<{ name: string; ts: string; bitstream: Buffer; rows: number; columns: number; bits?: number }> {
  // JPEG baseline: SOI, SOF0 65535 x 65535 x 1, then nothing decodable
  const sof = (marker: number, p: number) => Buffer.from([0xff, 0xd8, 0xff, marker, 0, 11, p, 0xff, 0xff, 0xff, 0xff, 1, 1, 0x11, 0, 0xff, 0xd9]);
  // JPEG-LS: SOI, SOF55 65535 x 65535
  const jls = Buffer.from([0xff, 0xd8, 0xff, 0xf7, 0, 11, 8, 0xff, 0xff, 0xff, 0xff, 1, 1, 0x11, 0, 0xff, 0xd9]);
  // JPEG 2000 codestream: SOC, SIZ claiming 65535 x 65535
  const siz = Buffer.alloc(2 + 2 + 2 + 36 + 3 + 2);
  let o = 0;
  siz.writeUInt16BE(0xff4f, o); o += 2; siz.writeUInt16BE(0xff51, o); o += 2; siz.writeUInt16BE(41, o); o += 2;
  siz.writeUInt16BE(0, o); o += 2; siz.writeUInt32BE(65535, o); o += 4; siz.writeUInt32BE(65535, o); o += 4; siz.writeUInt32BE(0, o); o += 4; siz.writeUInt32BE(0, o); o += 4;
  siz.writeUInt32BE(65535, o); o += 4; siz.writeUInt32BE(65535, o); o += 4; siz.writeUInt32BE(0, o); o += 4; siz.writeUInt32BE(0, o); o += 4;
  siz.writeUInt16BE(1, o); o += 2; siz[o++] = 7; siz[o++] = 1; siz[o++] = 1; siz.writeUInt16BE(0xffd9, o);
  // RLE: a header with one segment whose run fills far more than the frame
  const rle = Buffer.alloc(64 + 4 * 200);
  rle.writeUInt32LE(1, 0); rle.writeUInt32LE(64, 4);
  for (let i = 64; i < rle.length; i += 2) { rle[i] = 0x81; rle[i + 1] = 7; } // -127: repeat the next byte 128 times
  return [
    { name: 'JPEG baseline', ts: '1.2.840.10008.1.2.4.50', bitstream: sof(0xc0, 8), rows: 65535, columns: 65535 },
    { name: 'JPEG lossless', ts: '1.2.840.10008.1.2.4.70', bitstream: sof(0xc3, 16), rows: 65535, columns: 65535, bits: 16 },
    { name: 'JPEG-LS', ts: '1.2.840.10008.1.2.4.80', bitstream: jls, rows: 65535, columns: 65535 },
    { name: 'JPEG 2000', ts: '1.2.840.10008.1.2.4.90', bitstream: siz, rows: 65535, columns: 65535 },
    { name: 'HTJ2K', ts: '1.2.840.10008.1.2.4.201', bitstream: siz, rows: 65535, columns: 65535 },
    { name: 'RLE', ts: '1.2.840.10008.1.2.5', bitstream: rle, rows: 4096, columns: 4096 },
    // small headers that claim what the pixel limit allows: decodes that must not run on the event loop
    { name: 'JPEG 2000 at the limit', ts: '1.2.840.10008.1.2.4.90', bitstream: siz, rows: 8000, columns: 8000 },
  ];
}

/** A deflated image whose dataset inflates to `mb` MB (one long native frame of zeros), from a few hundred KB. */
export function deflatedFile(mb: number, u: Uids = { study: newUid(), series: newUid(), sop: newUid() }): Buffer {
  const side = Math.floor(Math.sqrt((mb * 1024 * 1024) / 2));
  const pixelBytes = side * side * 2;
  const head = dataset([
    [0x00080016, 'UI', ui(SC)], [0x00080018, 'UI', ui(u.sop)], [0x00080060, 'CS', text('OT')],
    [0x0020000d, 'UI', ui(u.study)], [0x0020000e, 'UI', ui(u.series)], [0x00280002, 'US', us(1)],
    [0x00280004, 'CS', text('MONOCHROME2')], [0x00280010, 'US', us(side)], [0x00280011, 'US', us(side)],
    [0x00280100, 'US', us(16)], [0x00280101, 'US', us(16)], [0x00280102, 'US', us(15)], [0x00280103, 'US', us(0)],
  ]);
  const pxHead = Buffer.alloc(12); pxHead.writeUInt16LE(0x7fe0, 0); pxHead.writeUInt16LE(0x0010, 2); pxHead.write('OW', 4, 'latin1'); pxHead.writeUInt32LE(pixelBytes, 8);
  const d = zlib.deflateRawSync(Buffer.concat([head, pxHead, Buffer.alloc(pixelBytes)]), { level: 9 });
  return part10('1.2.840.10008.1.2.1.99', SC, u.sop, d);
}

export interface LoopReport {
  /** event-loop delay, ms (perf_hooks.monitorEventLoopDelay, 10 ms resolution) */
  p50: number; p99: number; max: number;
  /** /health answered by the server while the load ran: count and slowest, ms */
  health: number; healthMax: number;
  /** highest RSS seen, MB */
  rssMaxMB: number;
}

/**
 * Watches the event loop of this process (the test server runs in it) while a load runs: its delay, the latency of
 * /health requests sent every 20 ms, and RSS.
 */
export function watchLoop(url: string): { stop(): Promise<LoopReport> } {
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  let healthMax = 0;
  let health = 0;
  let rssMax = process.memoryUsage.rss();
  let running = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = () => new Promise<void>((resolve) => {
    const t = performance.now();
    const req = http.get(`${url}/health`, { agent }, (res) => {
      res.resume();
      res.on('end', () => { healthMax = Math.max(healthMax, performance.now() - t); health++; resolve(); });
    });
    req.on('error', () => resolve());
  });
  const sampler = setInterval(() => { rssMax = Math.max(rssMax, process.memoryUsage.rss()); }, 20);
  const poll = (async () => {
    while (running) {
      await once();
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      running = false;
      await poll;
      clearInterval(sampler);
      h.disable();
      agent.destroy();
      const ms = (ns: number) => Math.round(ns / 1e5) / 10;
      return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), health, healthMax: Math.round(healthMax * 10) / 10, rssMaxMB: Math.round(rssMax / 1048576) };
    },
  };
}

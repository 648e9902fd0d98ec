/**
 * Synthetic Part 10 files for the bench, written here in Explicit VR Little Endian (PS3.5 7.1.2, PS3.10 7.1):
 * 512x512 CT slices (STOW throughput), a 1024x1024 16-bit MR frame (none in the corpus), a larger multi-frame
 * object, and the multipart/related bodies that carry them, generated as a stream for the 1 GB upload.
 */
import * as crypto from 'crypto';
import { Readable } from 'stream';
import { prng } from '../../test/helpers/prng';

export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const MR_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.4';
/** Multi-frame Grayscale Word Secondary Capture Image Storage: a multi-frame 16-bit object with few requirements. */
export const MF_GRAY_WORD_SC = '1.2.840.10008.5.1.4.1.1.7.3';

type Value = string | number | Array<string | number> | Buffer;
interface El { tag: number; vr: string; value: Value }

/** PS3.5 Table 7.1-1: these VRs have a 4-byte length after two reserved bytes. */
const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);

function encodeValue(vr: string, v: Value): Buffer {
  if (Buffer.isBuffer(v)) return v.length % 2 ? Buffer.concat([v, Buffer.from([0])]) : v;
  if (vr === 'US') {
    const xs = Array.isArray(v) ? v : [Number(v)];
    const b = Buffer.alloc(2 * xs.length);
    xs.forEach((x, i) => b.writeUInt16LE(Number(x), 2 * i));
    return b;
  }
  if (vr === 'UL') {
    const xs = Array.isArray(v) ? v : [Number(v)];
    const b = Buffer.alloc(4 * xs.length);
    xs.forEach((x, i) => b.writeUInt32LE(Number(x), 4 * i));
    return b;
  }
  const s = Array.isArray(v) ? v.join('\\') : String(v);
  const b = Buffer.from(s, 'latin1');
  // PS3.5 6.2: UI values are padded with NUL, other strings with a space
  return b.length % 2 ? Buffer.concat([b, Buffer.from([vr === 'UI' ? 0 : 0x20])]) : b;
}

function encodeElement(e: El): Buffer {
  const value = encodeValue(e.vr, e.value);
  const long = LONG.has(e.vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(e.tag >>> 16, 0);
  h.writeUInt16LE(e.tag & 0xffff, 2);
  h.write(e.vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8); else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}

/** The bytes before the pixel data value: preamble, meta group, dataset, and the Pixel Data element header. */
function part10Header(sopClass: string, sop: string, dataset: El[], pixelBytes: number): Buffer {
  const meta = Buffer.concat([
    encodeElement({ tag: 0x00020001, vr: 'OB', value: Buffer.from([0, 1]) }),
    encodeElement({ tag: 0x00020002, vr: 'UI', value: sopClass }),
    encodeElement({ tag: 0x00020003, vr: 'UI', value: sop }),
    encodeElement({ tag: 0x00020010, vr: 'UI', value: EXPLICIT_VR_LE }),
    encodeElement({ tag: 0x00020012, vr: 'UI', value: '1.2.826.0.1.3680043.10.1417.99' }),
  ]);
  const groupLength = encodeElement({ tag: 0x00020000, vr: 'UL', value: meta.length });
  const body = [...dataset].sort((a, b) => a.tag - b.tag).map(encodeElement);
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0); pixelHeader.writeUInt16LE(0x0010, 2); pixelHeader.write('OW', 4, 'latin1');
  pixelHeader.writeUInt32LE(pixelBytes, 8);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, meta, ...body, pixelHeader]);
}

export interface SynthIds { study: string; series: string; sop: string; patientID: string; instanceNumber?: number; seriesNumber?: number }

export interface ImageSpec {
  sopClass: string; modality: string; rows: number; columns: number; frames?: number;
  bitsStored: number; signed: boolean; rescale?: [number, number]; window: [number, number];
}

export function datasetOf(spec: ImageSpec, ids: SynthIds): El[] {
  const els: El[] = [
    { tag: 0x00080005, vr: 'CS', value: 'ISO_IR 100' },
    { tag: 0x00080008, vr: 'CS', value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
    { tag: 0x00080016, vr: 'UI', value: spec.sopClass },
    { tag: 0x00080018, vr: 'UI', value: ids.sop },
    { tag: 0x00080020, vr: 'DA', value: '20240301' },
    { tag: 0x00080030, vr: 'TM', value: '101500' },
    { tag: 0x00080050, vr: 'SH', value: 'BENCH' },
    { tag: 0x00080060, vr: 'CS', value: spec.modality },
    { tag: 0x00080090, vr: 'PN', value: '' },
    { tag: 0x00100010, vr: 'PN', value: 'BENCH^SYNTHETIC' },
    { tag: 0x00100020, vr: 'LO', value: ids.patientID },
    { tag: 0x00100030, vr: 'DA', value: '19700101' },
    { tag: 0x00100040, vr: 'CS', value: 'O' },
    { tag: 0x0020000d, vr: 'UI', value: ids.study },
    { tag: 0x0020000e, vr: 'UI', value: ids.series },
    { tag: 0x00200010, vr: 'SH', value: '1' },
    { tag: 0x00200011, vr: 'IS', value: String(ids.seriesNumber ?? 1) },
    { tag: 0x00200013, vr: 'IS', value: String(ids.instanceNumber ?? 1) },
    { tag: 0x00280002, vr: 'US', value: 1 },
    { tag: 0x00280004, vr: 'CS', value: 'MONOCHROME2' },
    { tag: 0x00280010, vr: 'US', value: spec.rows },
    { tag: 0x00280011, vr: 'US', value: spec.columns },
    { tag: 0x00280100, vr: 'US', value: 16 },
    { tag: 0x00280101, vr: 'US', value: spec.bitsStored },
    { tag: 0x00280102, vr: 'US', value: spec.bitsStored - 1 },
    { tag: 0x00280103, vr: 'US', value: spec.signed ? 1 : 0 },
    { tag: 0x00281050, vr: 'DS', value: String(spec.window[0]) },
    { tag: 0x00281051, vr: 'DS', value: String(spec.window[1]) },
  ];
  if (spec.frames && spec.frames > 1) els.push({ tag: 0x00280008, vr: 'IS', value: String(spec.frames) });
  if (spec.rescale) {
    els.push({ tag: 0x00281052, vr: 'DS', value: String(spec.rescale[0]) });
    els.push({ tag: 0x00281053, vr: 'DS', value: String(spec.rescale[1]) });
  }
  return els;
}


/**
 * Smooth anatomy-like content plus noise: an elliptical body with slowly varying tissue, a bright rim and a
 * few round structures, values in [lo, hi] of the stored range. `phase` shifts the pattern (frames, slices).
 */
export function smoothFrame(rows: number, columns: number, lo: number, hi: number, signed: boolean, seed: number, phase = 0): Buffer {
  const rnd = prng(seed);
  const buf = Buffer.alloc(rows * columns * 2);
  const span = hi - lo;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++) {
      const dx = (x - columns / 2) / (columns * 0.42), dy = (y - rows / 2) / (rows * 0.46);
      const r2 = dx * dx + dy * dy;
      let v: number;
      if (r2 >= 1) v = 0.02;
      else if (r2 > 0.88) v = 0.85;
      else {
        v = 0.45 + 0.18 * Math.cos(6 * dx + phase) * Math.sin(5 * dy - phase) + 0.08 * Math.cos(17 * dx * dy);
        const ox = dx - 0.3 * Math.cos(phase), oy = dy + 0.2;
        if (ox * ox + oy * oy < 0.02) v = 0.95;
        const px = dx + 0.35, py = dy - 0.25 * Math.sin(phase + 1);
        if (px * px + py * py < 0.03) v = 0.25;
      }
      let s = Math.round(lo + span * v + span * 0.02 * (rnd() - 0.5) * 2);
      s = Math.max(lo, Math.min(hi, s));
      const o = 2 * (y * columns + x);
      if (signed) buf.writeInt16LE(s, o); else buf.writeUInt16LE(s, o);
    }
  }
  return buf;
}

export const CT_SPEC: ImageSpec = {
  sopClass: CT_IMAGE_STORAGE, modality: 'CT', rows: 512, columns: 512, bitsStored: 12, signed: true,
  rescale: [-1024, 1], window: [40, 400],
};
export const MR_SPEC: ImageSpec = {
  sopClass: MR_IMAGE_STORAGE, modality: 'MR', rows: 1024, columns: 1024, bitsStored: 16, signed: false, window: [1700, 3000],
};
export const MF_SPEC: ImageSpec = {
  sopClass: MF_GRAY_WORD_SC, modality: 'OT', rows: 512, columns: 512, frames: 24, bitsStored: 16, signed: false, window: [1700, 3000],
};

/** A whole Part 10 file: header + pixel data (shared pixel buffers are fine: UIDs differ, hence content). */
export function part10(spec: ImageSpec, ids: SynthIds, pixels: Buffer): Buffer {
  return Buffer.concat([part10Header(spec.sopClass, ids.sop, datasetOf(spec, ids), pixels.length), pixels]);
}

export function ctPixels(seed = 7) { return smoothFrame(512, 512, 0, 2400, true, seed); }
export function mrPixels(seed = 11) { return smoothFrame(1024, 1024, 0, 4000, false, seed); }
export function mfPixels(frames: number, seed = 13) {
  return Buffer.concat(Array.from({ length: frames }, (_, f) => smoothFrame(512, 512, 0, 4000, false, seed + f, f * 0.15)));
}

/** A fresh UID under the UUID-derived root 2.25 (PS3.5 B.2). */
export function uid(): string {
  return `2.25.${BigInt('0x' + crypto.randomBytes(16).toString('hex')).toString()}`;
}

export interface Multipart { contentType: string; boundary: string }
export function newMultipart(): Multipart {
  const boundary = `bench${crypto.randomBytes(12).toString('hex')}`;
  return { boundary, contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

export function multipartBody(m: Multipart, files: Buffer[]): Buffer {
  const chunks: Buffer[] = [];
  for (const f of files) chunks.push(Buffer.from(`--${m.boundary}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${m.boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/**
 * `count` distinct 512x512 CT instances of one study (three series, patient BENCH-STOW) as STOW-RS bodies of
 * `per` parts each: the STOW load of every bench.
 */
export function ctStowBatches(count: number, per: number): Array<{ body: Buffer; contentType: string }> {
  const pixels = ctPixels();
  const study = uid();
  const series = [uid(), uid(), uid()];
  const batches: Array<{ body: Buffer; contentType: string }> = [];
  for (let k = 0; k < count; k += per) {
    const m = newMultipart();
    const files = [];
    for (let j = k; j < Math.min(count, k + per); j++) {
      files.push(part10(CT_SPEC, { study, series: series[j % 3], sop: uid(), patientID: 'BENCH-STOW', instanceNumber: j + 1, seriesNumber: (j % 3) + 1 }, pixels));
    }
    batches.push({ body: multipartBody(m, files), contentType: m.contentType });
  }
  return batches;
}

/**
 * A STOW-RS body of `count` instances made on demand (never held whole in memory): each part is a fresh
 * header (new SOP Instance UID) followed by one shared pixel buffer. Respects back-pressure.
 */
export function streamedStowBody(m: Multipart, count: number, spec: ImageSpec, ids: Omit<SynthIds, 'sop'>, pixels: Buffer): { stream: Readable; bytes: number } {
  const sampleHeader = part10Header(spec.sopClass, uid(), datasetOf(spec, { ...ids, sop: uid() }), pixels.length);
  let i = 0;
  const stream = new Readable({
    read() {
      while (i < count) {
        const sop = uid();
        const head = part10Header(spec.sopClass, sop, datasetOf(spec, { ...ids, sop, instanceNumber: i + 1 }), pixels.length);
        i++;
        this.push(Buffer.from(`--${m.boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
        this.push(head);
        this.push(pixels);
        if (!this.push(Buffer.from('\r\n'))) return;
      }
      if (i === count) { i++; this.push(Buffer.from(`--${m.boundary}--\r\n`)); this.push(null); }
    },
  });
  return { stream, bytes: count * (sampleHeader.length + pixels.length) };
}

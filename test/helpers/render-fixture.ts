/**
 * Test-only: load a corpus file into what the renderer receives in production: the dataset as DICOM JSON
 * (via the project's parser dicom/parse.ts), its ImageDescription, and decoded frames (render/codecs
 * decodeFrame when that module is present; otherwise native data decoded here, compressed data = null).
 */
import * as fs from 'fs';
import * as path from 'path';
import { inflatedDataset, parseDicom } from '../../dicom/parse';
import { locateFrames } from '../../dicom/frames';
import { describeImage } from '../../render/describe';
import type { DecodedFrame, FrameBytes, ImageDescription, PixelArray } from '../../render/types';

export const corpusDir = process.env.DICOM_CORPUS ?? path.join(process.cwd(), 'test/fixtures/corpus');

export interface Fixture {
  name: string;
  transferSyntaxUID: string;
  desc: ImageDescription;
  frames: FrameBytes[];
}

export function loadFixture(name: string): Fixture {
  const buf = fs.readFileSync(path.join(corpusDir, 'dicom', name + '.dcm'));
  const p = parseDicom(buf);
  const desc = describeImage(p.dataset);
  if (!desc) throw new Error(`${name}: not an image`);
  const f = desc.frame;
  // deflated transfer syntax: offsets refer to the inflated dataset
  const bytes = p.deflated ? inflatedDataset(buf, p.datasetOffset) : buf;
  const locs = locateFrames(p, { rows: f.rows, columns: f.columns, samplesPerPixel: f.samplesPerPixel, bitsAllocated: f.bitsAllocated, numberOfFrames: desc.numberOfFrames },
    (o, l) => bytes.subarray(o, o + l));
  const frames = locs.map((loc) => ({
    data: new Uint8Array(Buffer.concat(loc.ranges.map((r) => bytes.subarray(r.offset, r.offset + r.length)))),
    ...(loc.bitOffset !== undefined ? { bitOffset: loc.bitOffset } : {}),
  }));
  return { name, transferSyntaxUID: p.transferSyntaxUID, desc, frames };
}

type Decoder = (ts: string, fb: FrameBytes, info: ImageDescription['frame']) => DecodedFrame;
let codecs: { decodeFrame: Decoder; initCodecs: () => Promise<void> } | null | undefined;

/** render/codecs, when it exists and exports decodeFrame. */
export async function codecModule(): Promise<typeof codecs> {
  if (codecs !== undefined) return codecs;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const m = require('../../render/codecs');
    if (typeof m.decodeFrame === 'function') {
      if (typeof m.initCodecs === 'function') await m.initCodecs();
      codecs = m;
    } else codecs = null;
  } catch {
    codecs = null;
  }
  return codecs;
}

const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1.99']);

/** Decode frame `n` (1-based); null when compressed and no codec module is available yet. */
export async function decodeFixtureFrame(fx: Fixture, n: number): Promise<DecodedFrame | null> {
  const c = await codecModule();
  if (c) return c.decodeFrame(fx.transferSyntaxUID, fx.frames[n - 1], fx.desc.frame);
  if (!NATIVE.has(fx.transferSyntaxUID)) return null;
  return decodeNative(fx.frames[n - 1].data, fx.desc.frame, fx.transferSyntaxUID === '1.2.840.10008.1.2.2');
}

/** PS3.5 8.1/8.2 native pixel data: stored values masked to BitsStored, sign-extended, colour interleaved. */
export function decodeNative(data: Uint8Array, f: ImageDescription['frame'], bigEndian: boolean): DecodedFrame {
  const spp = f.samplesPerPixel;
  const n = f.rows * f.columns;
  const pi = f.photometricInterpretation;
  const sub422 = spp === 3 && (pi === 'YBR_FULL_422' || pi === 'YBR_PARTIAL_422');
  const samples = sub422 ? n * 2 : n * spp;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const raw = new Float64Array(samples);
  for (let i = 0; i < samples; i++) {
    raw[i] = f.bitsAllocated === 8 ? data[i] : f.bitsAllocated === 16 ? dv.getUint16(2 * i, !bigEndian) : dv.getUint32(4 * i, !bigEndian);
  }
  const signed = f.pixelRepresentation === 1;
  const shift = f.highBit + 1 - f.bitsStored;
  const mask = 2 ** f.bitsStored - 1;
  const out: PixelArray = spp === 1
    ? (signed ? new Int32Array(n) : f.bitsStored <= 8 ? new Uint8Array(n) : new Uint16Array(n))
    : (f.bitsStored <= 8 ? new Uint8Array(n * 3) : new Uint16Array(n * 3));
  const val = (v: number) => {
    let s = Math.floor(v / 2 ** shift) % (mask + 1);
    if (signed && s >= 2 ** (f.bitsStored - 1)) s -= mask + 1;
    return s;
  };
  if (spp === 1) for (let i = 0; i < n; i++) out[i] = val(raw[i]);
  else if (sub422) {
    // Y0 Y1 Cb Cr -> two pixels sharing Cb Cr
    for (let i = 0; i < n; i += 2) {
      const b = i * 2;
      out[i * 3] = raw[b]; out[i * 3 + 1] = raw[b + 2]; out[i * 3 + 2] = raw[b + 3];
      out[i * 3 + 3] = raw[b + 1]; out[i * 3 + 4] = raw[b + 2]; out[i * 3 + 5] = raw[b + 3];
    }
  } else if (f.planarConfiguration === 1) {
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[i * 3 + c] = raw[c * n + i];
  } else for (let i = 0; i < n * 3; i++) out[i] = raw[i];
  return {
    pixels: out, rows: f.rows, columns: f.columns, samplesPerPixel: spp,
    photometricInterpretation: sub422 ? pi.replace('_422', '') : pi,
    bitsStored: f.bitsStored, signed,
  };
}

/** Reference rows of reference/commands.tsv. */
export interface ReferenceRow { name: string; frame: number; variant: string; center?: number; width?: number; command: string }

export function referenceRows(): ReferenceRow[] {
  const text = fs.readFileSync(path.join(corpusDir, 'reference', 'commands.tsv'), 'utf8');
  return text.trim().split('\n').slice(1).map((line) => {
    const [name, frame, variant, center, width, command] = line.split('\t');
    return { name, frame: Number(frame), variant, center: center ? Number(center) : undefined, width: width ? Number(width) : undefined, command };
  });
}

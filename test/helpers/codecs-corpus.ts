/**
 * Test-only access to the corpus for the codec tests: frames and Image Pixel attributes read with dcmjs, so these
 * tests do not depend on the project's own Part 10 parser.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FrameBytes, FrameInfo } from '../../render/types';
import { decodePng } from './png-compare';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dcmjs = require('dcmjs');

export const CORPUS = process.env.DICOM_CORPUS ?? path.join(process.cwd(), 'test/fixtures/corpus');

export interface CorpusImage {
  transferSyntaxUID: string;
  info: FrameInfo;
  numberOfFrames: number;
  frames: FrameBytes[];
}

/**
 * Files written without preamble or File Meta Information Group Length (JLSL_* are such) are patched so that
 * dcmjs accepts them: a 128-byte preamble, 'DICM', and a computed (0002,0000).
 */
function asPart10(bytes: Buffer): Buffer {
  if (bytes.length > 132 && bytes.toString('latin1', 128, 132) === 'DICM') return bytes;
  let i = 0;
  const longVRs = new Set(['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV']);
  while (i + 8 <= bytes.length && bytes.readUInt16LE(i) === 0x0002) {
    const vr = bytes.toString('latin1', i + 4, i + 6);
    i += longVRs.has(vr) ? 12 + bytes.readUInt32LE(i + 8) : 8 + bytes.readUInt16LE(i + 6);
  }
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(0x0002, 0);
  groupLength.writeUInt16LE(0x0000, 2);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(i, 8);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), groupLength, bytes]);
}

function joinFragments(fragments: Uint8Array[]): Uint8Array {
  if (fragments.length === 1) return fragments[0];
  const out = new Uint8Array(fragments.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of fragments) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

export function readCorpusImage(name: string): CorpusImage {
  const file = asPart10(fs.readFileSync(path.join(CORPUS, 'dicom', name)));
  const data = dcmjs.data.DicomMessage.readFile(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength));
  const dict = data.dict as Record<string, { Value?: unknown[] } | undefined>;
  const value = (tag: string): unknown => dict[tag]?.Value?.[0];
  const num = (tag: string, fallback?: number): number => {
    const v = value(tag);
    if (v === undefined || v === null || v === '') {
      if (fallback === undefined) throw new Error(`${name}: ${tag} missing`);
      return fallback;
    }
    return Number(v);
  };
  const transferSyntaxUID = String(data.meta['00020010'].Value[0]).replace(/\0/g, '').trim();
  const pixelTag = dict['7FE00010'] ? '7FE00010' : dict['7FE00008'] ? '7FE00008' : '7FE00009';
  const info: FrameInfo = {
    rows: num('00280010'),
    columns: num('00280011'),
    bitsAllocated: num('00280100'),
    bitsStored: num('00280101', pixelTag === '7FE00010' ? undefined : num('00280100')),
    highBit: num('00280102', pixelTag === '7FE00010' ? undefined : num('00280100') - 1),
    pixelRepresentation: num('00280103', 0),
    samplesPerPixel: num('00280002'),
    photometricInterpretation: String(value('00280004')).trim(),
    planarConfiguration: num('00280006', 0),
    pixelFormat: pixelTag === '7FE00008' ? 'float32' : pixelTag === '7FE00009' ? 'float64' : 'int',
  };
  const numberOfFrames = num('00280008', 1);
  const values = (dict[pixelTag]?.Value ?? []) as ArrayBuffer[];
  const parts = values.map((b) => new Uint8Array(b));
  const encapsulated = !['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2'].includes(transferSyntaxUID);
  const frames: FrameBytes[] = [];
  if (encapsulated) {
    if (parts.length === numberOfFrames) parts.forEach((p) => frames.push({ data: p }));
    else if (numberOfFrames === 1) frames.push({ data: joinFragments(parts) });
    else throw new Error(`${name}: ${parts.length} fragments for ${numberOfFrames} frames`);
  } else {
    const all = joinFragments(parts);
    const samples = info.photometricInterpretation === 'YBR_FULL_422' ? 2 : info.samplesPerPixel;
    const frameBits = info.rows * info.columns * samples * info.bitsAllocated;
    for (let f = 0; f < numberOfFrames; f++) {
      const firstBit = f * frameBits;
      const start = firstBit >>> 3;
      const end = Math.ceil((firstBit + frameBits) / 8);
      frames.push({ data: all.subarray(start, end), bitOffset: firstBit & 7 });
    }
  }
  return { transferSyntaxUID, info, numberOfFrames, frames };
}

/** A DCMTK reference rendering from corpus/reference, as 8-bit samples (1 or 3 per pixel). */
export function readReferencePng(name: string): { width: number; height: number; channels: number; data: Uint8Array } | undefined {
  const file = path.join(CORPUS, 'reference', name);
  return fs.existsSync(file) ? decodePng(fs.readFileSync(file)) : undefined;
}

/** Index of the first differing element, or -1 when equal in length and values. */
export function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Peak signal-to-noise ratio in dB for values spanning `peak`. */
export function psnr(a: ArrayLike<number>, b: ArrayLike<number>, peak: number): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  const mse = sum / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((peak * peak) / mse);
}

export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

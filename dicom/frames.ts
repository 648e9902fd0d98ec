/**
 * Frame locations, computed once at ingest from the parse (PS3.5 8.2 native, A.4 encapsulated), so that a
 * frame request reads just that frame's bytes.
 */
import { ParsedInstance, Range } from './parse';

export interface FrameLocation {
  /** byte ranges that, joined, are the frame (native: one range; encapsulated: its fragments) */
  ranges: Range[];
  /** BitsAllocated 1: the bit within the first byte where the frame starts */
  bitOffset?: number;
}

export interface FrameGeometry {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  numberOfFrames: number;
  photometricInterpretation?: string;
}

const SOI_JPEG = 0xffd8;
const SOC_J2K = 0xff4f;

/**
 * Locates each frame. Native data: frames follow each other (bit-packed for BitsAllocated 1, so a frame may
 * start mid-byte). Encapsulated data, in order of preference: the Extended Offset Table (7FE0,0001/0002), one
 * frame = all fragments when there is a single frame, one fragment per frame when the counts agree, the Basic
 * Offset Table, and last the start-of-image markers of the fragments (JPEG SOI, JPEG 2000 SOC).
 */
export function locateFrames(p: ParsedInstance, g: FrameGeometry, readHead: (offset: number, length: number) => Buffer,
  extendedOffsets?: { offsets: number[]; lengths: number[] }): FrameLocation[] {
  const px = p.pixelData;
  if (!px || g.rows <= 0 || g.columns <= 0) return [];
  const n = Math.max(1, g.numberOfFrames);
  if (!px.encapsulated) {
    // Native YBR_FULL_422 keeps two samples per pixel: Y Y Cb Cr per pair of pixels (PS3.3 C.7.6.3.1.2).
    const samples = g.photometricInterpretation === 'YBR_FULL_422' && g.samplesPerPixel === 3 ? 2 : g.samplesPerPixel;
    const bitsPerFrame = g.rows * g.columns * samples * g.bitsAllocated;
    const frames: FrameLocation[] = [];
    for (let i = 0; i < n; i++) {
      const bitStart = i * bitsPerFrame;
      const startByte = Math.floor(bitStart / 8);
      const bitOffset = bitStart % 8;
      const length = Math.ceil((bitOffset + bitsPerFrame) / 8);
      if (startByte + length > px.length) break; // short pixel data: only whole frames are served
      frames.push({ ranges: [{ offset: px.offset + startByte, length }], ...(g.bitsAllocated === 1 ? { bitOffset } : {}) });
    }
    return frames;
  }
  const frags = px.fragments;
  if (frags.length === 0) return [];
  // Item tag offset of each fragment, relative to the first fragment's item (the origin of both tables).
  const rel = frags.map((f) => f.offset - 8 - px.firstFragmentItemOffset);
  const groupByStarts = (starts: number[]): FrameLocation[] => {
    const out: FrameLocation[] = [];
    for (let i = 0; i < starts.length; i++) {
      const from = rel.indexOf(starts[i]);
      if (from < 0) return [];
      const to = i + 1 < starts.length ? rel.indexOf(starts[i + 1]) : frags.length;
      if (to <= from) return [];
      out.push({ ranges: frags.slice(from, to) });
    }
    return out;
  };
  if (extendedOffsets && extendedOffsets.offsets.length === n) {
    const byEot = groupByStarts(extendedOffsets.offsets);
    if (byEot.length === n) return byEot;
  }
  if (n === 1) return [{ ranges: frags.slice() }];
  if (frags.length === n) return frags.map((f) => ({ ranges: [f] }));
  if (px.basicOffsetTable.length === n) {
    const byBot = groupByStarts(px.basicOffsetTable);
    if (byBot.length === n) return byBot;
  }
  // No usable table: a fragment that opens with a start-of-image marker opens a frame.
  const starts: number[] = [];
  frags.forEach((f, i) => {
    if (f.length < 2) return;
    const m = readHead(f.offset, 2).readUInt16BE(0);
    if (m === SOI_JPEG || m === SOC_J2K) starts.push(rel[i]);
  });
  if (starts.length > 0 && starts[0] === 0) return groupByStarts(starts).slice(0, n);
  return [];
}

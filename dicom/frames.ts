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
  if (px.encapsulated && n > px.fragments.length) return []; // each frame takes one fragment at least (PS3.5 A.4)
  if (!px.encapsulated) {
    const t = nativeFrames(px.offset, px.length, g);
    const frames: FrameLocation[] = [];
    for (let i = 1; i <= frameCount(t); i++) frames.push(frameAt(t, i)!);
    return frames;
  }
  const frags = px.fragments;
  if (frags.length === 0) return [];
  // Item tag offset of each fragment, relative to the first fragment's item (the origin of both tables).
  const rel = frags.map((f) => f.offset - 8 - px.firstFragmentItemOffset);
  const fragmentAt = new Map(rel.map((r, i) => [r, i])); // a lookup, not indexOf: tables may have 100k entries
  const indexOf = (r: number) => fragmentAt.get(r) ?? -1;
  const groupByStarts = (starts: number[]): FrameLocation[] => {
    const out: FrameLocation[] = [];
    for (let i = 0; i < starts.length; i++) {
      const from = indexOf(starts[i]);
      if (from < 0) return [];
      const to = i + 1 < starts.length ? indexOf(starts[i + 1]) : frags.length;
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

// ---------------------------------------------------------------------------------------------
// Frame tables as stored in the index: a native instance's frames are computed from its geometry (no row per
// frame, so a million frames cost a few bytes), an encapsulated one's listed (at most one per fragment, and a
// fragment takes 8 bytes of the file at least).

/** Native frames: frame i (1-based) is bits [(i-1)·bitsPerFrame, i·bitsPerFrame) of the value at `offset`. */
export interface NativeFrameTable { native: { offset: number; bitsPerFrame: number; count: number; packed: boolean } }
export type FrameTable = FrameLocation[] | NativeFrameTable;

const isNative = (t: FrameTable): t is NativeFrameTable => !Array.isArray(t) && typeof (t as NativeFrameTable).native === 'object';

/** Bits of one native frame; 0 when the geometry gives none. YBR_FULL_422 keeps two samples per pixel (PS3.3 C.7.6.3.1.2). */
export function bitsPerNativeFrame(g: FrameGeometry): number {
  const samples = g.photometricInterpretation === 'YBR_FULL_422' && g.samplesPerPixel === 3 ? 2 : g.samplesPerPixel;
  const bits = g.rows * g.columns * samples * g.bitsAllocated;
  return Number.isSafeInteger(bits) && bits > 0 ? bits : 0;
}

/** The native frames of a value of `length` bytes: only whole frames, never more than NumberOfFrames. */
export function nativeFrames(offset: number, length: number, g: FrameGeometry): NativeFrameTable {
  const bitsPerFrame = bitsPerNativeFrame(g);
  const fit = bitsPerFrame > 0 ? Math.floor((length * 8) / bitsPerFrame) : 0;
  const count = g.rows > 0 && g.columns > 0 ? Math.min(Math.max(1, g.numberOfFrames), fit) : 0;
  return { native: { offset, bitsPerFrame, count, packed: g.bitsAllocated === 1 } };
}

/** What ingest stores: computed native frames, or the list of encapsulated ones. */
export function frameTable(p: ParsedInstance, g: FrameGeometry, readHead: (offset: number, length: number) => Buffer,
  extendedOffsets?: { offsets: number[]; lengths: number[] }): FrameTable {
  const px = p.pixelData;
  if (px && !px.encapsulated) return nativeFrames(px.offset, px.length, g);
  return locateFrames(p, g, readHead, extendedOffsets);
}

export function frameCount(t: FrameTable): number {
  return isNative(t) ? t.native.count : t.length;
}

/** Frame `n` (1-based), or undefined past the last. */
export function frameAt(t: FrameTable, n: number): FrameLocation | undefined {
  if (!Number.isInteger(n) || n < 1 || n > frameCount(t)) return undefined;
  if (!isNative(t)) return t[n - 1];
  const { offset, bitsPerFrame, packed } = t.native;
  const bitStart = (n - 1) * bitsPerFrame;
  const startByte = Math.floor(bitStart / 8);
  const bitOffset = bitStart % 8;
  const length = Math.ceil((bitOffset + bitsPerFrame) / 8);
  return { ranges: [{ offset: offset + startByte, length }], ...(packed ? { bitOffset } : {}) };
}

/**
 * Why the pixel data of an instance cannot be what its attributes say (PS3.3 C.7.6.3), or null. Checked at ingest,
 * where a failure refuses the instance: values of 0 (or absurd) for the geometry, more frames than the native value
 * holds, or more frames than the encapsulated value has fragments.
 */
export function geometryProblem(p: ParsedInstance, g: FrameGeometry, declared: { numberOfFrames?: number; bitsAllocated?: number; samplesPerPixel?: number }): string | null {
  const px = p.pixelData;
  if (!px) return null;
  const nf = declared.numberOfFrames;
  // 0 is read as 1, as DCMTK does; a negative or fractional count is no count
  if (nf !== undefined && (!Number.isInteger(nf) || nf < 0)) return `Number of Frames (0028,0008) is ${nf}: it must be a whole number from 1`;
  const ba = declared.bitsAllocated;
  if (ba !== undefined && px.tag === '7FE00010' && !(ba === 1 || (Number.isInteger(ba) && ba >= 8 && ba <= 64 && ba % 8 === 0))) {
    return `Bits Allocated (0028,0100) is ${ba}: it must be 1 or a multiple of 8 up to 64`;
  }
  const spp = declared.samplesPerPixel;
  if (spp !== undefined && !(Number.isInteger(spp) && spp >= 1 && spp <= 4)) return `Samples per Pixel (0028,0002) is ${spp}: it must be 1 to 4`;
  if (g.rows <= 0 || g.columns <= 0) return null; // no image geometry at all: stored as data, with no frames
  const n = Math.max(1, g.numberOfFrames);
  if (!px.encapsulated) {
    const bits = bitsPerNativeFrame(g);
    const need = bits * n;
    if (!Number.isSafeInteger(need) || need > px.length * 8) {
      return `Pixel Data holds ${px.length} bytes, too few for ${n} frame(s) of ${g.rows}x${g.columns}, ${g.samplesPerPixel} sample(s) of ${g.bitsAllocated} bits`;
    }
    return null;
  }
  if (n > px.fragments.length) return `Number of Frames is ${n} but the encapsulated Pixel Data has ${px.fragments.length} fragment(s)`;
  return null;
}

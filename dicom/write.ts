/**
 * Re-serialising a stored dataset in Explicit VR Little Endian (PS3.5 A.2), element by element and as a stream,
 * for transcoding on retrieve (PS3.18 8.7.3). The source is read through an async byte source (the blob store's
 * ranged reads), so a 500 MB instance never sits in memory: small elements go through a read window, large values
 * in chunks, and Pixel Data is handed to the caller, who writes it frame by frame.
 *
 * What changes on the way (source syntax → Explicit VR Little Endian):
 * - Implicit VR: each element gets its VR from the data dictionary (implicitVR: PS3.5 A.1 for the ambiguous ones;
 *   private data UN, private creators LO); a value longer than a 16-bit length field allows becomes UN.
 * - Big Endian: values are byte-swapped by VR (US/SS/OW/AT by 2, UL/SL/FL/OF/OL by 4, FD/OD/SV/UV/OV by 8).
 * - Sequences of a syntax other than Explicit VR Little Endian are rewritten with undefined lengths (items
 *   and sequences closed by delimiters), so that no length has to be known before the content is written; in an
 *   Explicit VR Little Endian source they are copied as they are. A UN element of undefined length holds a
 *   sequence in Implicit VR Little Endian (PS3.5 6.2.2) and comes out as SQ.
 * - Group lengths (gggg,0000) and Data Set Trailing Padding (FFFC,FFFC) are dropped: lengths change.
 * - The caller may replace, remove or add top-level elements (Photometric Interpretation, Lossy Image
 *   Compression, ...): `replace`, kept in tag order.
 */
import { implicitVR } from './dictionary';

export const UNDEFINED_LENGTH = 0xffffffff;

export interface AsyncByteSource {
  readonly size: number;
  /** `length` bytes at `offset`; the buffer stays valid (it is never reused by later reads). */
  read(offset: number, length: number): Promise<Buffer>;
}

/** Windowed reads over ranged reads: headers and small values come from one window. */
export class WindowedSource implements AsyncByteSource {
  private window: Buffer = Buffer.alloc(0);
  private windowStart = 0;
  constructor(private readonly readAt: (offset: number, length: number) => Promise<Buffer>, readonly size: number,
    private readonly windowSize = 256 * 1024) {}
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new DatasetWriteError('unexpected end of data');
    if (offset >= this.windowStart && offset + length <= this.windowStart + this.window.length) {
      return this.window.subarray(offset - this.windowStart, offset - this.windowStart + length);
    }
    if (length > this.windowSize) return this.readAt(offset, length);
    const size = Math.min(this.windowSize, this.size - offset);
    this.window = await this.readAt(offset, size);
    this.windowStart = offset;
    return this.window.subarray(0, length);
  }
}

export class BufferByteSource implements AsyncByteSource {
  constructor(private readonly buf: Buffer) {}
  get size() { return this.buf.length; }
  async read(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.buf.length) throw new DatasetWriteError('unexpected end of data');
    return this.buf.subarray(offset, offset + length);
  }
}

export class DatasetWriteError extends Error {
  constructor(reason: string) { super(reason); this.name = 'DatasetWriteError'; }
}

export interface SourceSyntax { little: boolean; explicit: boolean }

export interface PixelElement {
  tag: string;
  vr: string;
  valueOffset: number;
  /** UNDEFINED_LENGTH for encapsulated Pixel Data */
  length: number;
}

export interface WriteOptions {
  syntax: SourceSyntax;
  /** the dataset's range in the source */
  start: number;
  end: number;
  /** where the top-level Pixel Data element ends (needed for encapsulated Pixel Data, whose items are not walked) */
  pixelDataEnd?: number;
  /** top-level tag (8 hex digits, upper case) → the whole new element in Explicit VR Little Endian, or null to drop it */
  replace?: Map<string, Buffer | null>;
  /** writes the whole top-level Pixel Data element (header and value); default: as the other values */
  pixel?: (element: PixelElement) => AsyncIterable<Buffer>;
  /** Pixel Representation, for the VR of US/SS elements in Implicit VR (PS3.5 A.1) */
  pixelRepresentation?: number;
  maxDepth?: number;
}

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);
const KNOWN_VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV',
  'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);
const SWAP: Record<string, number> = { US: 2, SS: 2, OW: 2, AT: 2, UL: 4, SL: 4, FL: 4, OF: 4, OL: 4, FD: 8, OD: 8, SV: 8, UV: 8, OV: 8 };
const CHUNK = 1024 * 1024;

const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');

/** Header of an element in Explicit VR Little Endian (PS3.5 7.1.2). */
export function elementHeader(tag: string, vr: string, length: number): Buffer {
  const g = parseInt(tag.slice(0, 4), 16);
  const e = parseInt(tag.slice(4, 8), 16);
  if (LONG_VRS.has(vr)) {
    const b = Buffer.alloc(12);
    b.writeUInt16LE(g, 0); b.writeUInt16LE(e, 2); b.write(vr, 4, 'latin1'); b.writeUInt32LE(length >>> 0, 8);
    return b;
  }
  if (length > 0xffff) throw new DatasetWriteError(`value of (${tag.slice(0, 4)},${tag.slice(4)}) too long for ${vr}`);
  const b = Buffer.alloc(8);
  b.writeUInt16LE(g, 0); b.writeUInt16LE(e, 2); b.write(vr, 4, 'latin1'); b.writeUInt16LE(length, 6);
  return b;
}

/** A whole element in Explicit VR Little Endian; the value padded to even length (PS3.5 6.2: UI and OB with 0, text with a space). */
export function element(tag: string, vr: string, value: Buffer): Buffer {
  if (value.length % 2 === 1) value = Buffer.concat([value, Buffer.from([vr === 'UI' || vr === 'OB' || vr === 'UN' ? 0 : 0x20])]);
  return Buffer.concat([elementHeader(tag, vr, value.length), value]);
}

export function stringElement(tag: string, vr: string, values: string[]): Buffer {
  return element(tag, vr, Buffer.from(values.join('\\'), 'latin1'));
}

export function usElement(tag: string, value: number): Buffer {
  const b = Buffer.alloc(2); b.writeUInt16LE(value, 0);
  return element(tag, 'US', b);
}

function itemHeader(element: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16LE(0xfffe, 0); b.writeUInt16LE(element, 2); b.writeUInt32LE(length >>> 0, 4);
  return b;
}
const ITEM_UNDEFINED = () => itemHeader(0xe000, UNDEFINED_LENGTH);
const ITEM_END = () => itemHeader(0xe00d, 0);
const SEQUENCE_END = () => itemHeader(0xe0dd, 0);

function swapped(b: Buffer, size: number): Buffer {
  const out = Buffer.from(b); // never swap the source window in place
  const whole = out.length - (out.length % size);
  const view = out.subarray(0, whole);
  if (size === 2) view.swap16(); else if (size === 4) view.swap32(); else view.swap64();
  return out;
}

class Writer {
  private pending: Array<[string, Buffer]>;
  constructor(private readonly src: AsyncByteSource, private readonly o: WriteOptions) {
    this.pending = [...(o.replace ?? new Map()).entries()]
      .filter((e): e is [string, Buffer] => e[1] !== null).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  private async u16(off: number, little: boolean) { const b = await this.src.read(off, 2); return little ? b.readUInt16LE(0) : b.readUInt16BE(0); }
  private async u32(off: number, little: boolean) { const b = await this.src.read(off, 4); return little ? b.readUInt32LE(0) : b.readUInt32BE(0); }

  /** The elements from `start` to `end` or to a delimiter; returns where it stopped. */
  async *dataset(start: number, end: number, syntax: SourceSyntax, depth: number): AsyncGenerator<Buffer, number> {
    if (depth > (this.o.maxDepth ?? 32)) throw new DatasetWriteError('sequences nested too deeply');
    const top = depth === 0;
    let off = start;
    while (off < end) {
      if (end - off < 8) {
        const rest = await this.src.read(off, end - off);
        if (rest.every((x) => x === 0)) return end;
        throw new DatasetWriteError('truncated element header');
      }
      const group = await this.u16(off, syntax.little);
      const el = await this.u16(off + 2, syntax.little);
      if (group === 0xfffe) {
        if (el === 0xe00d || el === 0xe0dd) return off;
        throw new DatasetWriteError(`unexpected item tag (FFFE,${hex4(el)}) in a dataset`);
      }
      const tag = hex4(group) + hex4(el);
      let vr: string;
      let length: number;
      let valueOffset: number;
      if (syntax.explicit) {
        vr = (await this.src.read(off + 4, 2)).toString('latin1');
        if (!KNOWN_VRS.has(vr)) {
          if (!/^[A-Z]{2}$/.test(vr)) throw new DatasetWriteError(`invalid VR at offset ${off}`);
          vr = 'UN'; length = await this.u16(off + 6, syntax.little); valueOffset = off + 8;
        } else if (LONG_VRS.has(vr)) {
          length = await this.u32(off + 8, syntax.little); valueOffset = off + 12;
        } else {
          length = await this.u16(off + 6, syntax.little); valueOffset = off + 8;
        }
      } else {
        vr = implicitVR(tag, this.o.pixelRepresentation);
        length = await this.u32(off + 4, syntax.little);
        valueOffset = off + 8;
        if (length === UNDEFINED_LENGTH && tag !== '7FE00010') vr = 'SQ';
      }
      if (top) yield* this.flushBefore(tag);
      const dropped = el === 0x0000 || tag === 'FFFCFFFC' || (top && this.o.replace?.has(tag));
      const isPixel = top && (tag === '7FE00010' || tag === '7FE00008' || tag === '7FE00009');

      if (length === UNDEFINED_LENGTH) {
        if (isPixel) {
          if (this.o.pixelDataEnd === undefined) throw new DatasetWriteError('encapsulated pixel data without its end');
          if (!dropped) {
            if (!this.o.pixel) throw new DatasetWriteError('encapsulated pixel data cannot be copied');
            yield* this.o.pixel({ tag, vr, valueOffset, length });
          }
          off = this.o.pixelDataEnd;
          continue;
        }
        if (vr !== 'SQ' && vr !== 'UN') throw new DatasetWriteError(`undefined length on a ${vr} element (${tag})`);
        const inner = vr === 'UN' ? { little: true, explicit: false } : syntax;
        if (!dropped) yield elementHeader(tag, 'SQ', UNDEFINED_LENGTH);
        off = yield* this.sequence(valueOffset, UNDEFINED_LENGTH, inner, depth, !dropped);
        continue;
      }
      const valueEnd = valueOffset + length;
      if (valueEnd > end || valueEnd > this.src.size) throw new DatasetWriteError(`element (${tag.slice(0, 4)},${tag.slice(4)}) runs past the end of the data`);
      off = valueEnd;
      if (dropped) continue;
      if (isPixel && this.o.pixel) { yield* this.o.pixel({ tag, vr, valueOffset, length }); continue; }
      if (vr === 'SQ') {
        if (syntax.little && syntax.explicit) { yield* this.copy(elementHeader(tag, 'SQ', length), valueOffset, length, 0); continue; }
        yield elementHeader(tag, 'SQ', UNDEFINED_LENGTH);
        yield* this.sequence(valueOffset, length, syntax, depth, true);
        continue;
      }
      if (!LONG_VRS.has(vr) && length > 0xffff) vr = 'UN';
      const swap = syntax.little ? 0 : (SWAP[vr] ?? 0);
      yield* this.copy(elementHeader(tag, vr, length), valueOffset, length, swap);
    }
    return off;
  }

  /** Items of a sequence, rewritten with undefined lengths when `emit`; returns the offset after the sequence. */
  private async *sequence(start: number, length: number, syntax: SourceSyntax, depth: number, emit: boolean): AsyncGenerator<Buffer, number> {
    const end = length === UNDEFINED_LENGTH ? this.src.size : start + length;
    let off = start;
    while (off < end) {
      if (end - off < 8) throw new DatasetWriteError('truncated sequence');
      const group = await this.u16(off, syntax.little);
      const el = await this.u16(off + 2, syntax.little);
      const itemLength = await this.u32(off + 4, syntax.little);
      if (group !== 0xfffe) throw new DatasetWriteError('expected an item in a sequence');
      if (el === 0xe0dd) { if (emit) yield SEQUENCE_END(); return off + 8; }
      if (el !== 0xe000) throw new DatasetWriteError(`unexpected (FFFE,${hex4(el)}) in a sequence`);
      if (emit) yield ITEM_UNDEFINED();
      const itemEnd = itemLength === UNDEFINED_LENGTH ? end : off + 8 + itemLength;
      if (itemEnd > end) throw new DatasetWriteError('item runs past its sequence');
      const inner = emit ? this.dataset(off + 8, itemEnd, syntax, depth + 1) : this.skip(this.dataset(off + 8, itemEnd, syntax, depth + 1));
      const stop = yield* inner;
      if (itemLength === UNDEFINED_LENGTH) {
        if (end - stop < 8 || (await this.u16(stop, syntax.little)) !== 0xfffe || (await this.u16(stop + 2, syntax.little)) !== 0xe00d) {
          throw new DatasetWriteError('item without delimitation');
        }
        off = stop + 8;
      } else {
        if (stop !== itemEnd) throw new DatasetWriteError('item holds a stray delimiter');
        off = itemEnd;
      }
      if (emit) yield ITEM_END();
    }
    if (length === UNDEFINED_LENGTH) throw new DatasetWriteError('sequence has no delimitation');
    if (emit) yield SEQUENCE_END();
    return off;
  }

  private async *skip(g: AsyncGenerator<Buffer, number>): AsyncGenerator<Buffer, number> {
    for (;;) {
      const r = await g.next();
      if (r.done) return r.value;
    }
  }

  /** `head` then the value at `offset`, in chunks, byte-swapped in units of `swap` bytes when non-zero. */
  private async *copy(head: Buffer, offset: number, length: number, swap: number): AsyncGenerator<Buffer> {
    if (length <= CHUNK) {
      const v = await this.src.read(offset, length);
      yield Buffer.concat([head, swap ? swapped(v, swap) : v]);
      return;
    }
    yield head;
    for (let at = 0; at < length; at += CHUNK) {
      const v = await this.src.read(offset + at, Math.min(CHUNK, length - at));
      yield swap ? swapped(v, swap) : Buffer.from(v);
    }
  }

  private *flushBefore(tag: string | null): Generator<Buffer> {
    while (this.pending.length > 0 && (tag === null || this.pending[0][0] < tag)) yield this.pending.shift()![1];
    if (tag !== null && this.pending.length > 0 && this.pending[0][0] === tag) yield this.pending.shift()![1];
  }

  async *all(): AsyncGenerator<Buffer> {
    const stop = yield* this.dataset(this.o.start, this.o.end, this.o.syntax, 0);
    if (stop !== this.o.end) throw new DatasetWriteError('stray delimiter at the top level of the dataset');
    yield* this.flushBefore(null);
  }
}

/** The dataset in Explicit VR Little Endian, as a stream of chunks (see the file comment). */
export function writeExplicitLittle(src: AsyncByteSource, options: WriteOptions): AsyncGenerator<Buffer> {
  return new Writer(src, options).all();
}

/**
 * Preamble, "DICM" and File Meta Information (PS3.10 7.1) for a dataset in `transferSyntaxUID`, with its group
 * length. `extra` are further meta elements (e.g. Source Application Entity Title), already encoded.
 */
export function fileMeta(m: { sopClassUID: string; sopInstanceUID: string; transferSyntaxUID: string;
  implementationClassUID: string; implementationVersionName: string; extra?: Buffer[] }): Buffer {
  const body = Buffer.concat([
    element('00020001', 'OB', Buffer.from([0, 1])),
    stringElement('00020002', 'UI', [m.sopClassUID]),
    stringElement('00020003', 'UI', [m.sopInstanceUID]),
    stringElement('00020010', 'UI', [m.transferSyntaxUID]),
    stringElement('00020012', 'UI', [m.implementationClassUID]),
    stringElement('00020013', 'SH', [m.implementationVersionName]),
    ...(m.extra ?? []),
  ]);
  const gl = Buffer.alloc(4); gl.writeUInt32LE(body.length, 0);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), element('00020000', 'UL', gl), body]);
}

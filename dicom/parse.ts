/**
 * DICOM Part 10 parser (PS3.10 7.1, PS3.5 7). Run once per instance at ingest: it returns the dataset as
 * DICOM JSON (PS3.18 Annex F) and the byte ranges of every binary value and of the pixel data (or its
 * fragments), so that later requests read only the bytes they need and never parse the file again.
 *
 * It reads through a ByteSource, so a 500 MB instance on disk is parsed without being loaded: bulk values
 * are skipped by their length.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { JsonAttribute, JsonDataset, PersonName } from './json';
import { implicitVR } from './dictionary';

export class DicomParseError extends Error {
  constructor(reason: string) { super(reason); this.name = 'DicomParseError'; }
}

export const TS = {
  ImplicitLittle: '1.2.840.10008.1.2',
  ExplicitLittle: '1.2.840.10008.1.2.1',
  DeflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  ExplicitBig: '1.2.840.10008.1.2.2',
} as const;

// ---------------------------------------------------------------------------------------------
// Byte sources

export interface ByteSource {
  readonly size: number;
  /** `length` bytes at `offset`; the returned buffer may be a view that is only valid until the next read. */
  read(offset: number, length: number): Buffer;
}

export class BufferSource implements ByteSource {
  constructor(private readonly buf: Buffer) {}
  get size() { return this.buf.length; }
  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.buf.length) throw new DicomParseError('unexpected end of data');
    return this.buf.subarray(offset, offset + length);
  }
}

/** Windowed reads of a file: headers and small values come from one 256 KiB window. */
export class FileSource implements ByteSource {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  readonly size: number;
  constructor(private readonly fd: number) { this.size = fs.fstatSync(fd).size; }
  read(offset: number, length: number): Buffer {
    if (offset < 0 || length < 0 || offset + length > this.size) throw new DicomParseError('unexpected end of data');
    if (offset >= this.windowStart && offset + length <= this.windowStart + this.window.length) {
      return this.window.subarray(offset - this.windowStart, offset - this.windowStart + length);
    }
    const want = Math.max(length, 256 * 1024);
    const size = Math.min(want, this.size - offset);
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(this.fd, buf, got, size - got, offset + got);
      if (n <= 0) throw new DicomParseError('unexpected end of file');
      got += n;
    }
    this.window = buf; this.windowStart = offset;
    return buf.subarray(0, length);
  }
}

// ---------------------------------------------------------------------------------------------
// Result

/** A binary value's place: `path` names it as the bulkdata resource does ("7FE00010", "00283010/0/00283006"). */
export interface BulkRef { path: string; vr: string; offset: number; length: number }

export interface Range { offset: number; length: number }

export interface PixelDataRef {
  tag: string; // 7FE00010, 7FE00008 (float), 7FE00009 (double)
  vr: string;
  encapsulated: boolean;
  /** native: the value's range */
  offset: number;
  length: number;
  /** encapsulated: fragment value ranges (the Basic Offset Table item excluded) */
  fragments: Range[];
  /** encapsulated: Basic Offset Table entries (relative to the first fragment's item tag) */
  basicOffsetTable: number[];
  /** encapsulated: the first fragment's item tag offset, origin of the offset tables */
  firstFragmentItemOffset: number;
}

export interface ParsedInstance {
  /** File Meta Information (group 0002) */
  meta: JsonDataset;
  transferSyntaxUID: string;
  sopClassUID: string;
  sopInstanceUID: string;
  /** Dataset as DICOM JSON: binary values up to `inlineLimit` bytes are InlineBinary, larger ones carry
   *  no value (see `bulk`); Pixel Data is never inline. */
  dataset: JsonDataset;
  bulk: BulkRef[];
  pixelData?: PixelDataRef;
  /** Deflated transfer syntax: offsets refer to the inflated dataset, not to the file. */
  deflated: boolean;
  /** Where the dataset (after the meta) starts in the file; for a deflated file, where the deflate stream starts. */
  datasetOffset: number;
  /** 'part10': preamble, DICM, meta. 'no-preamble': meta at byte 0. 'no-meta': a bare dataset (syntax guessed). */
  layout: 'part10' | 'no-preamble' | 'no-meta';
}

export interface ParseOptions {
  /** Largest binary value kept inline (default 4 MiB). */
  inlineLimit?: number;
  /** Largest inflated size accepted for a deflated dataset (default 256 MiB), against deflate bombs. */
  maxInflatedSize?: number;
  /** Deepest sequence nesting accepted (default 32). */
  maxDepth?: number;
  /** Deflated files: the dataset already inflated (see `deflatedStart`), so that parsing inflates nothing itself. */
  inflated?: ByteSource;
}

const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const LONG_HEADER_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT']);
const SINGLE_VALUE_TEXT = new Set(['LT', 'ST', 'UT', 'UR']);
const KNOWN_VRS = new Set(['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV',
  'OW', 'PN', 'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// Character sets (PS3.3 C.12.1.1.2, PS3.5 6.1)

const CHARSETS: Record<string, string> = {
  'ISO_IR 100': 'latin1', 'ISO 2022 IR 100': 'latin1',
  'ISO_IR 101': 'iso-8859-2', 'ISO 2022 IR 101': 'iso-8859-2',
  'ISO_IR 109': 'iso-8859-3', 'ISO 2022 IR 109': 'iso-8859-3',
  'ISO_IR 110': 'iso-8859-4', 'ISO 2022 IR 110': 'iso-8859-4',
  'ISO_IR 144': 'iso-8859-5', 'ISO 2022 IR 144': 'iso-8859-5',
  'ISO_IR 127': 'iso-8859-6', 'ISO 2022 IR 127': 'iso-8859-6',
  'ISO_IR 126': 'iso-8859-7', 'ISO 2022 IR 126': 'iso-8859-7',
  'ISO_IR 138': 'iso-8859-8', 'ISO 2022 IR 138': 'iso-8859-8',
  'ISO_IR 148': 'iso-8859-9', 'ISO 2022 IR 148': 'iso-8859-9',
  'ISO_IR 203': 'iso-8859-15', 'ISO 2022 IR 203': 'iso-8859-15',
  'ISO_IR 13': 'shift_jis', 'ISO 2022 IR 13': 'shift_jis',
  'ISO_IR 166': 'tis-620', 'ISO 2022 IR 166': 'tis-620',
  'ISO_IR 192': 'utf-8', 'GB18030': 'gb18030', 'GBK': 'gbk',
  'ISO 2022 IR 87': 'iso-2022-jp', 'ISO 2022 IR 159': 'iso-2022-jp', 'ISO 2022 IR 149': 'euc-kr', 'ISO 2022 IR 58': 'gb2312',
};

type Decoder = (b: Buffer) => string;
const latin1: Decoder = (b) => b.toString('latin1');

function decoderFor(specificCharacterSet: string[]): Decoder {
  // With code extensions the last named set is usually the one that matters for names; the first for the rest.
  const names = specificCharacterSet.map((s) => String(s ?? '').trim()).filter(Boolean); // a bogus VR may make them numbers
  const label = names.map((n) => CHARSETS[n]).filter(Boolean).pop();
  if (!label || label === 'latin1') return latin1;
  if (label === 'utf-8') return (b) => b.toString('utf8');
  try {
    const td = new TextDecoder(label);
    return (b) => td.decode(b);
  } catch {
    return latin1;
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

interface Syntax { little: boolean; explicit: boolean }

class Parser {
  bulk: BulkRef[] = [];
  pixelData?: PixelDataRef;
  decode: Decoder = latin1;
  pixelRepresentation: number | undefined;

  constructor(readonly src: ByteSource, readonly inlineLimit: number, readonly maxDepth: number) {}

  u16(off: number, little: boolean) { const b = this.src.read(off, 2); return little ? b.readUInt16LE(0) : b.readUInt16BE(0); }
  u32(off: number, little: boolean) { const b = this.src.read(off, 4); return little ? b.readUInt32LE(0) : b.readUInt32BE(0); }

  /** Parses elements from `start` until `end` (defined length) or an item/sequence delimiter (undefined). */
  parseDataset(start: number, end: number, syntax: Syntax, path: string, depth: number, ds: JsonDataset,
    stopAtGroup?: number): number {
    if (depth > this.maxDepth) throw new DicomParseError('sequences nested too deeply');
    let off = start;
    while (off < end) {
      if (end - off < 8) {
        // Trailing padding shorter than an element header: tolerate zero bytes, reject anything else.
        if (this.src.read(off, end - off).every((b) => b === 0)) return end;
        throw new DicomParseError('truncated element header');
      }
      const group = this.u16(off, syntax.little);
      const element = this.u16(off + 2, syntax.little);
      if (stopAtGroup !== undefined && group !== stopAtGroup) return off;
      const tag = hex4(group) + hex4(element);
      if (group === 0xfffe) {
        // Item delimitation (E00D) ends an undefined-length item; sequence delimitation (E0DD) a sequence.
        if (element === 0xe00d || element === 0xe0dd) return off;
        throw new DicomParseError(`unexpected item tag (FFFE,${hex4(element)}) in a dataset`);
      }
      let vr: string;
      let length: number;
      let valueOffset: number;
      if (syntax.explicit) {
        vr = this.src.read(off + 4, 2).toString('latin1');
        if (!KNOWN_VRS.has(vr)) {
          // Some writers emit bogus VRs; fall back to the dictionary with an implicit length is not safe,
          // so treat the element as explicit with a 2-byte length if the VR is letters, else reject.
          if (!/^[A-Z]{2}$/.test(vr)) throw new DicomParseError(`invalid VR at offset ${off}`);
          vr = 'UN';
          length = this.u16(off + 6, syntax.little);
          valueOffset = off + 8;
        } else if (LONG_HEADER_VRS.has(vr)) {
          length = this.u32(off + 8, syntax.little);
          valueOffset = off + 12;
        } else {
          length = this.u16(off + 6, syntax.little);
          valueOffset = off + 8;
        }
      } else {
        vr = implicitVR(tag, this.pixelRepresentation);
        length = this.u32(off + 4, syntax.little);
        valueOffset = off + 8;
        if (length === UNDEFINED && tag !== '7FE00010') vr = 'SQ';
      }
      let unknownVR = false;
      if (vr === 'UN' && syntax.explicit && syntax.little) {
        // PS3.5 6.2.2: an element a writer did not know, sent as UN, is read with its dictionary VR (its value
        // is in Implicit VR Little Endian, which for a defined length is the same bytes). DCMTK does the same.
        const known = implicitVR(tag, this.pixelRepresentation);
        if (known !== 'UN' && (length !== UNDEFINED || known === 'OB' || known === 'OW')) { vr = known; unknownVR = true; }
      }

      const elementPath = path ? `${path}/${tag}` : tag;
      const isPixel = depth === 0 && (tag === '7FE00010' || tag === '7FE00008' || tag === '7FE00009');

      if (length === UNDEFINED) {
        // Encapsulated (PS3.5 A.4): Pixel Data at the top level, and also nested, e.g. the Icon Image Sequence
        // (0088,0200) of a compressed CR/MG/MR, or any OB/OW of undefined length. Only the top level is rendered.
        if ((syntax.explicit && (vr === 'OB' || vr === 'OW')) || tag === '7FE00010') {
          off = this.parseEncapsulated(tag, vr, valueOffset, isPixel, elementPath);
          ds[tag] = { vr: syntax.explicit ? vr : 'OB' }; // in metadata with its BulkDataURI, Pixel Data included
          continue;
        }
        if (vr === 'SQ' || vr === 'UN') {
          // UN of undefined length is a sequence in implicit VR little endian (PS3.5 6.2.2 note, CP-246).
          const inner = vr === 'UN' ? { little: true, explicit: false } : syntax;
          const items: JsonDataset[] = [];
          off = this.parseSequence(valueOffset, UNDEFINED, inner, elementPath, depth, items);
          ds[tag] = { vr: 'SQ', Value: items };
          continue;
        }
        throw new DicomParseError(`undefined length on a ${vr} element (${tag})`);
      }

      const valueEnd = valueOffset + length;
      if (valueEnd > end || valueEnd > this.src.size) throw new DicomParseError(`element (${tag.slice(0, 4)},${tag.slice(4)}) runs past the end of the data`);

      if (vr === 'SQ') {
        const items: JsonDataset[] = [];
        this.parseSequence(valueOffset, length, unknownVR ? { little: true, explicit: false } : syntax, elementPath, depth, items);
        ds[tag] = { vr: 'SQ', Value: items };
      } else if (isPixel) {
        this.pixelData = { tag, vr, encapsulated: false, offset: valueOffset, length, fragments: [], basicOffsetTable: [], firstFragmentItemOffset: 0 };
        this.bulk.push({ path: elementPath, vr, offset: valueOffset, length });
        ds[tag] = { vr };
      } else if (BINARY_VRS.has(vr)) {
        this.bulk.push({ path: elementPath, vr, offset: valueOffset, length });
        const attr: JsonAttribute = { vr };
        if (length > 0 && length <= this.inlineLimit) {
          const bytes = this.src.read(valueOffset, length);
          // DICOM JSON carries binary values in little endian (PS3.18 F.2.7): a big endian file's OW, OL, OF, OD,
          // OV words (palette and LUT data, overlay data) are swapped here, so readers need not know the syntax.
          const word = syntax.little ? 1 : vr === 'OW' ? 2 : vr === 'OL' || vr === 'OF' ? 4 : vr === 'OD' || vr === 'OV' ? 8 : 1;
          attr.InlineBinary = (word === 1 ? bytes : swapWords(bytes, word)).toString('base64');
        }
        ds[tag] = attr;
      } else {
        ds[tag] = this.value(tag, vr, this.src.read(valueOffset, length), syntax.little);
        if (tag === '00080005') this.decode = decoderFor((ds[tag].Value as string[]) ?? []);
        if (tag === '00280103' && depth === 0) this.pixelRepresentation = ds[tag].Value?.[0] as number;
      }
      off = valueEnd;
    }
    return off;
  }

  parseSequence(start: number, length: number, syntax: Syntax, path: string, depth: number, items: JsonDataset[]): number {
    const end = length === UNDEFINED ? this.src.size : start + length;
    let off = start;
    while (off < end) {
      if (end - off < 8) throw new DicomParseError('truncated sequence');
      const group = this.u16(off, syntax.little);
      const element = this.u16(off + 2, syntax.little);
      const itemLength = this.u32(off + 4, syntax.little);
      if (group !== 0xfffe) throw new DicomParseError(`expected an item in sequence ${path}`);
      if (element === 0xe0dd) return off + 8; // sequence delimitation
      if (element !== 0xe000) throw new DicomParseError(`unexpected (FFFE,${hex4(element)}) in sequence ${path}`);
      const item: JsonDataset = {};
      const itemPath = `${path}/${items.length}`;
      if (itemLength === UNDEFINED) {
        off = this.parseDataset(off + 8, end, syntax, itemPath, depth + 1, item);
        if (end - off < 8) throw new DicomParseError('item without delimitation');
        if (this.u16(off, syntax.little) !== 0xfffe || this.u16(off + 2, syntax.little) !== 0xe00d) {
          throw new DicomParseError(`item in ${path} ended by an unexpected tag`);
        }
        off += 8;
      } else {
        const itemEnd = off + 8 + itemLength;
        if (itemEnd > end) throw new DicomParseError(`item in ${path} runs past its sequence`);
        const stop = this.parseDataset(off + 8, itemEnd, syntax, itemPath, depth + 1, item);
        if (stop !== itemEnd) throw new DicomParseError(`item in ${path} holds a stray delimiter`);
        off = itemEnd;
      }
      items.push(item);
    }
    if (length === UNDEFINED) throw new DicomParseError(`sequence ${path} has no delimitation`);
    return off;
  }

  /**
   * Encapsulated Pixel Data (PS3.5 A.4): Basic Offset Table item, fragment items, sequence delimiter. Items are
   * always little endian. `pixel`: the top-level Pixel Data, whose fragments are recorded for rendering; any
   * other (nested) encapsulated value is only skipped and kept as a bulk value.
   */
  parseEncapsulated(tag: string, vr: string, start: number, pixel: boolean, path: string): number {
    let off = start;
    const fragments: Range[] = [];
    let bot: number[] | undefined;
    let firstFragmentItemOffset = 0;
    for (;;) {
      if (this.src.size - off < 8) throw new DicomParseError('encapsulated pixel data has no sequence delimiter');
      const group = this.u16(off, true);
      const element = this.u16(off + 2, true);
      const len = this.u32(off + 4, true);
      if (group !== 0xfffe) throw new DicomParseError('encapsulated pixel data holds a non-item element');
      if (element === 0xe0dd) { off += 8; break; }
      if (element !== 0xe000 || len === UNDEFINED) throw new DicomParseError('malformed pixel data item');
      if (off + 8 + len > this.src.size) throw new DicomParseError('pixel data fragment runs past the end of the data');
      if (bot === undefined) {
        if (len % 4 !== 0) throw new DicomParseError('basic offset table length is not a multiple of 4');
        bot = [];
        const b = this.src.read(off + 8, len);
        for (let i = 0; i < len; i += 4) bot.push(b.readUInt32LE(i));
      } else {
        if (fragments.length === 0) firstFragmentItemOffset = off;
        fragments.push({ offset: off + 8, length: len });
      }
      off += 8 + len;
    }
    if (pixel) {
      this.pixelData = {
        tag, vr, encapsulated: true, offset: start, length: off - start, fragments,
        basicOffsetTable: bot ?? [], firstFragmentItemOffset,
      };
    }
    this.bulk.push({ path, vr, offset: start, length: off - start });
    return off;
  }

  /** One non-binary, non-sequence value as DICOM JSON (PS3.18 F.2.3). */
  value(tag: string, vr: string, b: Buffer, little: boolean): JsonAttribute {
    const attr: JsonAttribute = { vr };
    if (b.length === 0) return attr;
    const numbers = (size: number, read: (o: number) => number) => {
      const out: number[] = [];
      for (let o = 0; o + size <= b.length; o += size) out.push(read(o));
      return out;
    };
    switch (vr) {
      case 'US': attr.Value = numbers(2, (o) => (little ? b.readUInt16LE(o) : b.readUInt16BE(o))); break;
      case 'SS': attr.Value = numbers(2, (o) => (little ? b.readInt16LE(o) : b.readInt16BE(o))); break;
      case 'UL': attr.Value = numbers(4, (o) => (little ? b.readUInt32LE(o) : b.readUInt32BE(o))); break;
      case 'SL': attr.Value = numbers(4, (o) => (little ? b.readInt32LE(o) : b.readInt32BE(o))); break;
      case 'FL': attr.Value = numbers(4, (o) => (little ? b.readFloatLE(o) : b.readFloatBE(o))).map(finiteOrNull) as any; break;
      case 'FD': attr.Value = numbers(8, (o) => (little ? b.readDoubleLE(o) : b.readDoubleBE(o))).map(finiteOrNull) as any; break;
      case 'UV': attr.Value = numbers(8, (o) => Number(little ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o))); break;
      case 'SV': attr.Value = numbers(8, (o) => Number(little ? b.readBigInt64LE(o) : b.readBigInt64BE(o))); break;
      case 'AT': attr.Value = numbers(4, (o) => {
        const g = little ? b.readUInt16LE(o) : b.readUInt16BE(o);
        const e = little ? b.readUInt16LE(o + 2) : b.readUInt16BE(o + 2);
        return hex4(g) + hex4(e) as any;
      }); break;
      default: {
        const text = vr === 'UI' || vr === 'AE' || vr === 'CS' || vr === 'DA' || vr === 'TM' || vr === 'DT' || vr === 'AS' || vr === 'IS' || vr === 'DS'
          ? b.toString('latin1') : this.decode(b);
        const parts = SINGLE_VALUE_TEXT.has(vr) ? [text] : text.split('\\');
        const values = parts.map((p) => {
          const t = vr === 'UI' ? p.replace(/[\0 ]+$/, '') : SINGLE_VALUE_TEXT.has(vr) || vr === 'PN' ? p.replace(/[\0 ]+$/, '') : p.replace(/^[ ]+|[\0 ]+$/g, '');
          if (t === '') return null;
          if (vr === 'PN') return personName(t);
          if (vr === 'IS' || vr === 'DS') { const n = Number(t); return Number.isFinite(n) ? n : t; }
          return t;
        });
        if (values.every((v) => v === null)) return attr;
        attr.Value = values as any;
      }
    }
    void tag;
    return attr;
  }
}

function swapWords(b: Buffer, size: number): Buffer {
  const out = Buffer.from(b);
  const n = out.length - (out.length % size);
  if (size === 2) out.subarray(0, n).swap16();
  else if (size === 4) out.subarray(0, n).swap32();
  else out.subarray(0, n).swap64();
  return out;
}

function finiteOrNull(n: number) { return Number.isFinite(n) ? n : null; }

function personName(s: string): PersonName {
  const [a, i, p] = s.split('=');
  const pn: PersonName = {};
  if (a) pn.Alphabetic = a;
  if (i) pn.Ideographic = i;
  if (p) pn.Phonetic = p;
  return pn;
}

function hex4(n: number) { return n.toString(16).toUpperCase().padStart(4, '0'); }

/**
 * Parses a Part 10 file: 128-byte preamble, "DICM", File Meta Information in explicit VR little endian, then
 * the dataset in the transfer syntax the meta names.
 */
export function parseDicom(src: ByteSource | Buffer, options: ParseOptions = {}): ParsedInstance {
  const source: ByteSource = Buffer.isBuffer(src) ? new BufferSource(src) : src;
  const inlineLimit = options.inlineLimit ?? 4 * 1024 * 1024;
  const maxDepth = options.maxDepth ?? 32;
  const layout = detectLayout(source);
  const metaParser = new Parser(source, inlineLimit, maxDepth);
  const meta: JsonDataset = {};
  let metaEnd = layout.datasetOffset;
  if (layout.kind !== 'no-meta') {
    metaEnd = metaParser.parseDataset(layout.metaOffset, source.size, { little: true, explicit: true }, '', 0, meta, 0x0002);
  }
  const tsAttr = layout.kind === 'no-meta' ? layout.transferSyntaxUID : meta['00020010']?.Value?.[0];
  if (typeof tsAttr !== 'string' || !tsAttr) throw new DicomParseError('file meta information has no Transfer Syntax UID');
  const transferSyntaxUID = tsAttr;

  let dataSource = source;
  let start = metaEnd;
  let deflated = false;
  if (transferSyntaxUID === TS.DeflatedExplicitLittle && options.inflated) {
    dataSource = options.inflated;
    start = 0;
    deflated = true;
  } else if (transferSyntaxUID === TS.DeflatedExplicitLittle) {
    // PS3.5 A.5: the dataset after the meta is a raw deflate stream.
    const maxOut = options.maxInflatedSize ?? 256 * 1024 * 1024;
    let inflated: Buffer;
    try {
      inflated = zlib.inflateRawSync(source.read(metaEnd, source.size - metaEnd), { maxOutputLength: maxOut });
    } catch (e: any) {
      throw new DicomParseError(e?.code === 'ERR_BUFFER_TOO_LARGE' ? 'deflated dataset inflates beyond the size limit' : 'deflated dataset is not a valid deflate stream');
    }
    dataSource = new BufferSource(inflated);
    start = 0;
    deflated = true;
  }
  const syntax: Syntax = transferSyntaxUID === TS.ImplicitLittle ? { little: true, explicit: false }
    : transferSyntaxUID === TS.ExplicitBig ? { little: false, explicit: true }
      : { little: true, explicit: true };

  const parser = new Parser(dataSource, inlineLimit, maxDepth);
  const dataset: JsonDataset = {};
  const stop = parser.parseDataset(start, dataSource.size, syntax, '', 0, dataset);
  if (stop !== dataSource.size) throw new DicomParseError('stray delimiter at the top level of the dataset');

  // Missing UIDs are reported as '' and judged by the caller (a store refuses them, a reader may not care).
  const sopClassUID = String(dataset['00080016']?.Value?.[0] ?? meta['00020002']?.Value?.[0] ?? '');
  const sopInstanceUID = String(dataset['00080018']?.Value?.[0] ?? meta['00020003']?.Value?.[0] ?? '');
  return {
    meta, transferSyntaxUID, sopClassUID, sopInstanceUID, dataset, bulk: parser.bulk, pixelData: parser.pixelData,
    deflated, datasetOffset: metaEnd, layout: layout.kind,
  };
}

/**
 * Where the meta and dataset start. Besides proper Part 10 files (PS3.10 7.1), two older layouts are met in real
 * archives and read by DCMTK: the meta without the 128-byte preamble, and a bare dataset in implicit or
 * explicit VR little endian (told apart by whether bytes 4-5 spell a VR).
 */
function detectLayout(src: ByteSource): { kind: ParsedInstance['layout']; metaOffset: number; datasetOffset: number; transferSyntaxUID?: string } {
  if (src.size >= 132 && src.read(128, 4).toString('latin1') === 'DICM') return { kind: 'part10', metaOffset: 132, datasetOffset: 132 };
  if (src.size < 8) throw new DicomParseError('not a DICOM file (too short)');
  const head = src.read(0, 8);
  const group = head.readUInt16LE(0);
  if (group === 0x0002 && KNOWN_VRS.has(head.toString('latin1', 4, 6))) return { kind: 'no-preamble', metaOffset: 0, datasetOffset: 0 };
  if (group >= 0x0004 && group <= 0x0010) {
    const explicit = KNOWN_VRS.has(head.toString('latin1', 4, 6));
    return { kind: 'no-meta', metaOffset: 0, datasetOffset: 0, transferSyntaxUID: explicit ? TS.ExplicitLittle : TS.ImplicitLittle };
  }
  throw new DicomParseError('not a DICOM Part 10 file (no DICM prefix after the 128-byte preamble)');
}

/**
 * Where the deflate stream of a Deflated Explicit VR Little Endian file starts (after its meta), or undefined for
 * any other file: lets a caller inflate it as a stream, off the event loop, and pass the result as `inflated`.
 */
export function deflatedStart(path: string): number | undefined {
  const fd = fs.openSync(path, 'r');
  try {
    const source = new FileSource(fd);
    const layout = detectLayout(source);
    if (layout.kind === 'no-meta') return undefined;
    const meta: JsonDataset = {};
    const end = new Parser(source, 4096, 4).parseDataset(layout.metaOffset, source.size, { little: true, explicit: true }, '', 0, meta, 0x0002);
    return meta['00020010']?.Value?.[0] === TS.DeflatedExplicitLittle ? end : undefined;
  } catch (e) {
    if (e instanceof DicomParseError) return undefined; // parseDicomFile reports it
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Parses a file on disk without loading it whole. */
export function parseDicomFile(path: string, options: ParseOptions = {}): ParsedInstance {
  const fd = fs.openSync(path, 'r');
  try {
    return parseDicom(new FileSource(fd), options);
  } finally {
    fs.closeSync(fd);
  }
}

/** The inflated dataset of a deflated file (for reading values at the offsets parseDicom reported). */
export function inflatedDataset(file: Buffer, datasetOffsetInFile: number, maxInflatedSize = 256 * 1024 * 1024): Buffer {
  return zlib.inflateRawSync(file.subarray(datasetOffsetInFile), { maxOutputLength: maxInflatedSize });
}

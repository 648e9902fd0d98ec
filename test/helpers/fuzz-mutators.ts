/**
 * Hostile inputs for the fuzz tests: corpus files mutated the ways broken writers and attackers break them,
 * and hand-built files that attack particular limits (nesting, deflate bombs, claimed frame sizes).
 */
import * as zlib from 'zlib';
import * as crypto from 'crypto';
import fc from 'fast-check';

export type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; positions: number[]; values: number[] }
  | { kind: 'length'; at: number; value: number }
  | { kind: 'vr'; nth: number; vr: string }
  | { kind: 'dimensions'; rows: number; columns: number; frames?: number };

/** A mutation as fast-check values (positions are fractions of the file, so one arbitrary fits every file). */
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }).map((m) => m as Mutation),
  fc.record({
    kind: fc.constant('flip' as const),
    positions: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 }),
    values: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }),
  }).map((m) => m as Mutation),
  fc.record({
    kind: fc.constant('length' as const), at: fc.double({ min: 0, max: 1, noNaN: true }),
    value: fc.constantFrom(0xffffffff, 0xfffffffe, 0x7fffffff, 0x80000000, 0xffff, 0xfffe, 1, 3, 0),
  }).map((m) => m as Mutation),
  fc.record({ kind: fc.constant('vr' as const), nth: fc.nat(200), vr: fc.constantFrom('ZZ', 'SQ', 'UN', 'OB', 'UT', '\0\0', 'xs', 'OW', 'FD', 'AT') })
    .map((m) => m as Mutation),
  fc.record({
    kind: fc.constant('dimensions' as const),
    rows: fc.constantFrom(0, 1, 3, 9000, 32768, 65535), columns: fc.constantFrom(0, 1, 7, 9000, 40000, 65535),
    frames: fc.option(fc.constantFrom(0, 2, 1000, 999999999), { nil: undefined }),
  }).map((m) => m as Mutation),
);

const pos = (f: number, len: number) => Math.min(len - 1, Math.max(0, Math.floor(f * len)));

/** Where explicit-VR element headers are: a tag followed by two capital letters (approximate, good enough to aim). */
function vrPositions(buf: Buffer): number[] {
  const out: number[] = [];
  for (let i = 132; i + 6 < buf.length && out.length < 400; i += 2) {
    const a = buf[i + 4], b = buf[i + 5];
    if (a >= 65 && a <= 90 && b >= 65 && b <= 90 && buf[i + 1] === 0x00 && buf[i] % 2 === 0) out.push(i + 4);
  }
  return out;
}

/** Writes US value `v` into every explicit-LE (gggg,eeee) US element found. */
function patchUS(buf: Buffer, group: number, element: number, v: number) {
  const tag = Buffer.from([group & 255, group >> 8, element & 255, element >> 8, 0x55, 0x53, 2, 0]);
  for (let i = buf.indexOf(tag); i >= 0; i = buf.indexOf(tag, i + 1)) buf.writeUInt16LE(v, i + 8);
}

export function mutate(src: Buffer, m: Mutation): Buffer {
  const buf = Buffer.from(src);
  switch (m.kind) {
    case 'truncate': return buf.subarray(0, pos(m.at, buf.length));
    case 'flip': m.positions.forEach((p, i) => { buf[pos(p, buf.length)] = m.values[i % m.values.length]; }); return buf;
    case 'length': {
      // aim at an element header's length field when one is near, else anywhere
      const vrs = vrPositions(buf);
      const at = vrs.length ? vrs[pos(m.at, vrs.length)] + 2 : pos(m.at, buf.length - 4);
      if (m.value > 0xffff || !vrs.length) { if (at + 4 <= buf.length) buf.writeUInt32LE(m.value, Math.min(at, buf.length - 4)); } else buf.writeUInt16LE(m.value, at);
      return buf;
    }
    case 'vr': {
      const vrs = vrPositions(buf);
      if (vrs.length) buf.write(m.vr, vrs[m.nth % vrs.length], 'latin1');
      return buf;
    }
    case 'dimensions': {
      patchUS(buf, 0x0028, 0x0010, m.rows);
      patchUS(buf, 0x0028, 0x0011, m.columns);
      if (m.frames !== undefined) {
        // NumberOfFrames (0028,0008) IS: rewrite its value in place, padded to its length
        const tag = Buffer.from([0x28, 0x00, 0x08, 0x00, 0x49, 0x53]);
        const i = buf.indexOf(tag);
        if (i >= 0) { const len = buf.readUInt16LE(i + 6); buf.write(String(m.frames).slice(0, len).padEnd(len, ' '), i + 8, 'latin1'); }
      }
      return buf;
    }
  }
}

/** Replaces `uid` everywhere by a fresh UID of the same length, so a mutated copy is a new instance. */
export function renameInstance(buf: Buffer, uid: string): Buffer {
  if (!uid) return buf;
  const fresh = `2.25.${BigInt(`0x${crypto.randomBytes(24).toString('hex')}`).toString()}`.slice(0, uid.length).replace(/\.$/, '1');
  const from = Buffer.from(uid, 'latin1');
  const to = Buffer.from(fresh.padEnd(uid.length, '1'), 'latin1');
  const out = Buffer.from(buf);
  for (let i = out.indexOf(from); i >= 0; i = out.indexOf(from, i + to.length)) to.copy(out, i);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hand-built attacks

function el(group: number, element: number, vr: string, value: Buffer): Buffer {
  const long = ['OB', 'OW', 'SQ', 'UN', 'UT'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0); h.writeUInt16LE(element, 2); h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(value.length, 8); else h.writeUInt16LE(value.length, 6);
  return Buffer.concat([h, value]);
}
const ui = (s: string) => Buffer.from(s.length % 2 ? `${s}\0` : s, 'latin1');
const text = (s: string) => Buffer.from(s.length % 2 ? `${s} ` : s, 'latin1');

export function part10(ts: string, dataset: Buffer, sop = `2.25.${crypto.randomInt(1, 2 ** 47)}`): Buffer {
  const meta = Buffer.concat([
    el(0x0002, 0x0001, 'OB', Buffer.from([0, 1])), el(0x0002, 0x0002, 'UI', ui('1.2.840.10008.5.1.4.1.1.7')),
    el(0x0002, 0x0003, 'UI', ui(sop)), el(0x0002, 0x0010, 'UI', ui(ts)),
  ]);
  const gl = Buffer.alloc(12); gl.writeUInt16LE(2, 0); gl.write('UL', 4, 'latin1'); gl.writeUInt16LE(4, 6); gl.writeUInt32LE(meta.length, 8);
  return Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), gl, meta, dataset]);
}

export function basicDataset(sop: string, extra: Buffer[] = []): Buffer {
  return Buffer.concat([
    el(0x0008, 0x0016, 'UI', ui('1.2.840.10008.5.1.4.1.1.7')), el(0x0008, 0x0018, 'UI', ui(sop)),
    el(0x0010, 0x0010, 'PN', text('Fuzz^Test')),
    el(0x0020, 0x000d, 'UI', ui('2.25.1111')), el(0x0020, 0x000e, 'UI', ui('2.25.2222')), ...extra,
  ]);
}

/** Sequences nested `depth` deep with undefined lengths, never closed. */
export function unendingSequences(depth: number): Buffer {
  const sop = `2.25.${crypto.randomInt(1, 2 ** 47)}`;
  const open = Buffer.alloc(12 + 8);
  open.writeUInt16LE(0x0040, 0); open.writeUInt16LE(0xa730, 2); open.write('SQ', 4, 'latin1'); open.writeUInt32LE(0xffffffff, 8);
  open.writeUInt16LE(0xfffe, 12); open.writeUInt16LE(0xe000, 14); open.writeUInt32LE(0xffffffff, 16);
  return part10('1.2.840.10008.1.2.1', Buffer.concat([basicDataset(sop), ...Array.from({ length: depth }, () => open)]), sop);
}

let bomb: Buffer | undefined;
/** Deflated Explicit VR Little Endian whose dataset inflates to ~300 MB (above the 256 MiB parse limit). */
export async function deflateBomb(): Promise<Buffer> {
  if (!bomb) {
    const sop = `2.25.${crypto.randomInt(1, 2 ** 47)}`;
    // a real dataset start, then one OB value of 300 MB zeros, compressed as a stream (never held inflated)
    const ob = Buffer.alloc(12); ob.writeUInt16LE(0x0009, 0); ob.writeUInt16LE(0x1010, 2); ob.write('OB', 4, 'latin1'); ob.writeUInt32LE(300 * 1024 * 1024, 8);
    const d = zlib.createDeflateRaw({ level: 9 });
    const chunks: Buffer[] = [];
    d.on('data', (c: Buffer) => chunks.push(c));
    const done = new Promise((r) => d.on('end', r));
    d.write(Buffer.concat([basicDataset(sop), ob]));
    const zero = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 300; i++) if (!d.write(zero)) await new Promise((r) => d.once('drain', r));
    d.end();
    await done;
    bomb = part10('1.2.840.10008.1.2.1.99', Buffer.concat(chunks), sop);
  }
  return bomb;
}

/** A deflated dataset of modest size with a pixel description claiming a huge frame. */
export function deflatedHugeFrame(): Buffer {
  const sop = `2.25.${crypto.randomInt(1, 2 ** 47)}`;
  const us = (e: number, v: number) => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return el(0x0028, e, 'US', b); };
  const ds = basicDataset(sop, [
    el(0x0028, 0x0002, 'US', Buffer.from([1, 0])), el(0x0028, 0x0004, 'CS', text('MONOCHROME2')),
    us(0x0010, 65535), us(0x0011, 65535), us(0x0100, 16), us(0x0101, 16), us(0x0102, 15), us(0x0103, 0),
    el(0x7fe0, 0x0010, 'OW', Buffer.alloc(64)),
  ]);
  return part10('1.2.840.10008.1.2.1.99', zlib.deflateRawSync(ds), sop);
}

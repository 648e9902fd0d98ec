/**
 * ICC profiles for rendered colour images (PS3.18 8.3.5.1.2 `iccprofile`): the standard RGB colour spaces as
 * ICC v2 matrix/TRC display profiles written here from their published definitions, the conversion of 8-bit
 * RGB pixels between matrix/TRC profiles (relative colorimetric, through the D50 PCS), and the embedding of a
 * profile in PNG (iCCP, PNG 11.3.3.3) and JPEG (APP2 "ICC_PROFILE", ICC.1 Annex B.4).
 *
 * The profiles (generated, so no third-party profile file and no licence question):
 * - sRGB: IEC 61966-2-1 primaries and D65 white, its piecewise curve (a 1024-entry table);
 * - Adobe RGB (1998) compatible: primaries R 0.64/0.33, G 0.21/0.71, B 0.15/0.06, D65, gamma 563/256;
 * - ROMM RGB (ISO 22028-2): primaries R 0.7347/0.2653, G 0.1596/0.8404, B 0.0366/0.0001, D50, gamma 1.8 with its
 *   linear segment below 1/512 (a table);
 * - Display P3: primaries R 0.680/0.320, G 0.265/0.690, B 0.150/0.060, D65, the sRGB curve.
 * Primaries are adapted to D50 with the Bradford transform (ICC.1 Annex E), as the PCS requires.
 */

import * as zlib from 'zlib';

export type IccSpace = 'srgb' | 'adobergb' | 'rommrgb' | 'displayp3';

type Vec3 = [number, number, number];
type Mat3 = [Vec3, Vec3, Vec3];

const D50: Vec3 = [0.9642, 1.0, 0.8249];

const mul = (m: Mat3, v: Vec3): Vec3 => [
  m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
  m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
  m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
];
const mulM = (a: Mat3, b: Mat3): Mat3 => [0, 1, 2].map((i) => [0, 1, 2].map((j) => a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j])) as Mat3;
function inv(m: Mat3): Mat3 {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  if (Math.abs(det) < 1e-12) throw new RangeError('singular colour matrix');
  return [
    [A / det, -(b * i - c * h) / det, (b * f - c * e) / det],
    [B / det, (a * i - c * g) / det, -(a * f - c * d) / det],
    [C / det, -(a * h - b * g) / det, (a * e - b * d) / det],
  ];
}
const xyY = (x: number, y: number): Vec3 => [x / y, 1, (1 - x - y) / y];

/** RGB -> XYZ (columns: the primaries scaled so that RGB 1,1,1 is the white), PCS-adapted to D50 (Bradford). */
function rgbToXyzD50(prim: [[number, number], [number, number], [number, number]], white: [number, number]): Mat3 {
  const P: Mat3 = [0, 1, 2].map((r) => prim.map((p) => xyY(p[0], p[1])[r])) as Mat3;
  const W = xyY(white[0], white[1]);
  const S = mul(inv(P), W);
  const M: Mat3 = P.map((row) => row.map((v, j) => v * S[j])) as Mat3;
  const brad: Mat3 = [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]];
  const cs = mul(brad, W), cd = mul(brad, D50);
  const scale: Mat3 = [[cd[0] / cs[0], 0, 0], [0, cd[1] / cs[1], 0], [0, 0, cd[2] / cs[2]]];
  return mulM(mulM(mulM(inv(brad), scale), brad), M);
}

/** A tone curve: decode (encoded 0..1 -> linear 0..1), as a table or a gamma. */
interface Trc { gamma?: number; table?: Float64Array }

const curveTable = (f: (v: number) => number, n = 1024): Float64Array => Float64Array.from({ length: n }, (_, i) => f(i / (n - 1)));

const SPACES: Record<IccSpace, { name: string; matrix: Mat3; trc: Trc }> = {
  srgb: {
    name: 'sRGB IEC61966-2.1 (generated)',
    matrix: rgbToXyzD50([[0.64, 0.33], [0.30, 0.60], [0.15, 0.06]], [0.3127, 0.3290]),
    trc: { table: curveTable((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)) },
  },
  adobergb: {
    name: 'Adobe RGB (1998) compatible (generated)',
    matrix: rgbToXyzD50([[0.64, 0.33], [0.21, 0.71], [0.15, 0.06]], [0.3127, 0.3290]),
    trc: { gamma: 563 / 256 },
  },
  displayp3: {
    name: 'Display P3 (generated)',
    matrix: rgbToXyzD50([[0.680, 0.320], [0.265, 0.690], [0.150, 0.060]], [0.3127, 0.3290]),
    trc: { table: curveTable((v) => (v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)) },
  },
  rommrgb: {
    name: 'ROMM RGB ISO 22028-2 (generated)',
    matrix: rgbToXyzD50([[0.7347, 0.2653], [0.1596, 0.8404], [0.0366, 0.0001]], [0.3457, 0.3585]),
    trc: { table: curveTable((v) => (v < 16 / 512 ? v / 16 : v ** 1.8)) },
  },
};

/* ---------------------------------------------------------------------------------------------- */
/* Writing profiles                                                                                */

const s15 = (v: number) => Math.round(v * 65536) | 0;

function tagXyz(v: Vec3): Buffer {
  const b = Buffer.alloc(20);
  b.write('XYZ ', 0, 'latin1');
  v.forEach((x, i) => b.writeInt32BE(s15(x), 8 + 4 * i));
  return b;
}
function tagCurve(t: Trc): Buffer {
  if (t.gamma !== undefined) {
    const b = Buffer.alloc(14);
    b.write('curv', 0, 'latin1'); b.writeUInt32BE(1, 8); b.writeUInt16BE(Math.round(t.gamma * 256), 12);
    return b;
  }
  const table = t.table!;
  const b = Buffer.alloc(12 + 2 * table.length);
  b.write('curv', 0, 'latin1'); b.writeUInt32BE(table.length, 8);
  table.forEach((v, i) => b.writeUInt16BE(Math.round(Math.min(1, Math.max(0, v)) * 65535), 12 + 2 * i));
  return b;
}
function tagDesc(text: string): Buffer {
  const ascii = Buffer.from(`${text}\0`, 'latin1');
  const b = Buffer.alloc(12 + ascii.length + 4 + 4 + 2 + 1 + 67);
  b.write('desc', 0, 'latin1'); b.writeUInt32BE(ascii.length, 8); ascii.copy(b, 12);
  return b; // no Unicode or ScriptCode description (counts 0)
}
function tagText(text: string): Buffer {
  const ascii = Buffer.from(`${text}\0`, 'latin1');
  const b = Buffer.alloc(8 + ascii.length);
  b.write('text', 0, 'latin1'); ascii.copy(b, 8);
  return b;
}

/** An ICC v2.1 display profile from its tags (tags with the same data share it). */
function profile(space: 'RGB ' | 'GRAY', tags: Array<[string, Buffer]>): Buffer {
  const headerAndTable = 128 + 4 + 12 * tags.length;
  const offsets = new Map<Buffer, number>();
  const chunks: Buffer[] = [];
  let at = headerAndTable;
  const pad = (n: number) => (4 - (n % 4)) % 4;
  const entries = tags.map(([sig, data]) => {
    let off = offsets.get(data);
    if (off === undefined) {
      off = at; offsets.set(data, off);
      chunks.push(data, Buffer.alloc(pad(data.length)));
      at += data.length + pad(data.length);
    }
    return { sig, off, size: data.length };
  });
  const h = Buffer.alloc(headerAndTable);
  h.writeUInt32BE(at, 0);
  h.writeUInt32BE(0x02100000, 8); // version 2.1
  h.write('mntr', 12, 'latin1'); h.write(space, 16, 'latin1'); h.write('XYZ ', 20, 'latin1');
  [2024, 1, 1, 0, 0, 0].forEach((v, i) => h.writeUInt16BE(v, 24 + 2 * i)); // fixed date: the same bytes every time
  h.write('acsp', 36, 'latin1');
  D50.forEach((x, i) => h.writeInt32BE(s15(x), 68 + 4 * i)); // PCS illuminant
  h.writeUInt32BE(tags.length, 128);
  entries.forEach((e, i) => { h.write(e.sig, 132 + 12 * i, 'latin1'); h.writeUInt32BE(e.off, 136 + 12 * i); h.writeUInt32BE(e.size, 140 + 12 * i); });
  return Buffer.concat([h, ...chunks]);
}

const built = new Map<IccSpace, Buffer>();

/** The ICC profile of a standard RGB space (built once per thread). */
export function iccProfile(space: IccSpace): Buffer {
  let p = built.get(space);
  if (!p) {
    const s = SPACES[space];
    const trc = tagCurve(s.trc);
    const col = (j: number): Vec3 => [s.matrix[0][j], s.matrix[1][j], s.matrix[2][j]];
    p = profile('RGB ', [
      ['desc', tagDesc(s.name)], ['cprt', tagText('No copyright: generated from the published colour space definition')],
      ['wtpt', tagXyz(D50)], ['rXYZ', tagXyz(col(0))], ['gXYZ', tagXyz(col(1))], ['bXYZ', tagXyz(col(2))],
      ['rTRC', trc], ['gTRC', trc], ['bTRC', trc],
    ]);
    built.set(space, p);
  }
  return p;
}

/* ---------------------------------------------------------------------------------------------- */
/* Reading matrix/TRC profiles                                                                     */

export interface MatrixTrcProfile { matrix: Mat3; trcs: [Trc, Trc, Trc] }

/** The matrix and curves of an RGB matrix/TRC profile; undefined for any other kind (LUT-based, grey, CMYK...). */
export function readMatrixTrc(p: Uint8Array): MatrixTrcProfile | undefined {
  if (p.length < 132) return undefined;
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  if (b.toString('latin1', 36, 40) !== 'acsp' || b.toString('latin1', 16, 20) !== 'RGB ') return undefined;
  const n = b.readUInt32BE(128);
  if (n > 1000 || 132 + 12 * n > b.length) return undefined;
  const tags = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const sig = b.toString('latin1', 132 + 12 * i, 136 + 12 * i);
    const off = b.readUInt32BE(136 + 12 * i), size = b.readUInt32BE(140 + 12 * i);
    if (off + size <= b.length && size >= 8) tags.set(sig, b.subarray(off, off + size));
  }
  const xyz = (sig: string): Vec3 | undefined => {
    const t = tags.get(sig);
    if (!t || t.length < 20 || t.toString('latin1', 0, 4) !== 'XYZ ') return undefined;
    return [t.readInt32BE(8) / 65536, t.readInt32BE(12) / 65536, t.readInt32BE(16) / 65536];
  };
  const curve = (sig: string): Trc | undefined => {
    const t = tags.get(sig);
    if (!t || t.length < 12) return undefined;
    const type = t.toString('latin1', 0, 4);
    if (type === 'curv') {
      const count = t.readUInt32BE(8);
      if (t.length < 12 + 2 * count) return undefined;
      if (count === 0) return { gamma: 1 };
      if (count === 1) return { gamma: t.readUInt16BE(12) / 256 };
      return { table: Float64Array.from({ length: count }, (_, i) => t.readUInt16BE(12 + 2 * i) / 65535) };
    }
    if (type === 'para') {
      // ICC.1 10.18 parametricCurveType, functions 0..4, sampled into a table
      const fn = t.readUInt16BE(8);
      const nParams = [1, 3, 4, 5, 7][fn];
      if (nParams === undefined || t.length < 12 + 4 * nParams) return undefined;
      const [g, a = 1, bb = 0, c = 0, d = 0, e = 0, f = 0] = Array.from({ length: nParams }, (_, i) => t.readInt32BE(12 + 4 * i) / 65536);
      const eval1 = (x: number): number => {
        switch (fn) {
          case 0: return x ** g;
          case 1: return x >= -bb / a ? (a * x + bb) ** g : 0;
          case 2: return x >= -bb / a ? (a * x + bb) ** g + c : c;
          case 3: return x >= d ? (a * x + bb) ** g : c * x;
          default: return x >= d ? (a * x + bb) ** g + e : c * x + f;
        }
      };
      return { table: curveTable(eval1, 4096) };
    }
    return undefined;
  };
  const r = xyz('rXYZ'), g = xyz('gXYZ'), bl = xyz('bXYZ');
  const tr = curve('rTRC'), tg = curve('gTRC'), tb = curve('bTRC');
  if (!r || !g || !bl || !tr || !tg || !tb) return undefined;
  return { matrix: [[r[0], g[0], bl[0]], [r[1], g[1], bl[1]], [r[2], g[2], bl[2]]], trcs: [tr, tg, tb] };
}

export const standardProfile = (space: IccSpace): MatrixTrcProfile => ({ matrix: SPACES[space].matrix, trcs: [SPACES[space].trc, SPACES[space].trc, SPACES[space].trc] });

/* ---------------------------------------------------------------------------------------------- */
/* Converting pixels                                                                               */

function decodeTable(t: Trc): Float64Array {
  const out = new Float64Array(256);
  for (let v = 0; v < 256; v++) {
    const x = v / 255;
    if (t.gamma !== undefined) out[v] = x ** t.gamma;
    else {
      const tb = t.table!, pos = x * (tb.length - 1), i = Math.min(tb.length - 2, Math.floor(pos));
      out[v] = tb.length === 1 ? tb[0] : tb[i] + (tb[i + 1] - tb[i]) * (pos - i);
    }
  }
  return out;
}

/**
 * The inverse of a tone curve, linear 0..1 -> 8-bit code, rounded in the encoded domain (as Little CMS rounds):
 * a gamma inverted exactly, a table by binary search and linear interpolation (tables are non-decreasing).
 */
function encoder(t: Trc): (y: number) => number {
  if (t.gamma !== undefined) { const g = 1 / t.gamma; return (y) => Math.round(255 * y ** g); }
  const tb = t.table!, n = tb.length;
  return (y) => {
    if (n < 2 || y <= tb[0]) return 0;
    if (y >= tb[n - 1]) return 255;
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (tb[mid] <= y) lo = mid; else hi = mid; }
    const f = tb[hi] === tb[lo] ? 0 : (y - tb[lo]) / (tb[hi] - tb[lo]);
    return Math.round((255 * (lo + f)) / (n - 1));
  };
}

/**
 * Converts interleaved 8-bit RGB in place from one matrix/TRC profile to another: decode each channel by its
 * curve, RGB -> XYZ (D50) -> RGB by the matrices, clip to 0..1, encode by the destination curves (relative
 * colorimetric). The same white point (the PCS's) stays white.
 */
export function convertRgb(data: Uint8Array, from: MatrixTrcProfile, to: MatrixTrcProfile): void {
  const m = mulM(inv(to.matrix), from.matrix);
  const dec = from.trcs.map(decodeTable);
  const enc = to.trcs.map(encoder);
  const cache = new Map<number, number>();
  for (let i = 0; i + 2 < data.length; i += 3) {
    const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    let outKey = cache.get(key);
    if (outKey === undefined) {
      const lin: Vec3 = [dec[0][data[i]], dec[1][data[i + 1]], dec[2][data[i + 2]]];
      const o = mul(m, lin).map((v) => (v <= 0 ? 0 : v >= 1 ? 1 : v));
      outKey = (enc[0](o[0]) << 16) | (enc[1](o[1]) << 8) | enc[2](o[2]);
      if (cache.size < 1 << 16) cache.set(key, outKey);
    }
    data[i] = outKey >> 16; data[i + 1] = (outKey >> 8) & 255; data[i + 2] = outKey & 255;
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Embedding                                                                                       */

/** A PNG with an iCCP chunk (name, compression 0, zlib stream) right after IHDR, before any PLTE or IDAT. */
export function embedPng(png: Buffer, profileBytes: Uint8Array, name = 'ICC profile'): Buffer {
  const data = Buffer.concat([Buffer.from(name, 'latin1'), Buffer.from([0, 0]), zlib.deflateSync(profileBytes)]);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0); head.write('iCCP', 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))) >>> 0, 0);
  const ihdrEnd = 8 + 8 + 13 + 4; // signature, IHDR length and type, its 13 bytes, CRC
  return Buffer.concat([png.subarray(0, ihdrEnd), head, data, crc, png.subarray(ihdrEnd)]);
}

/**
 * A JPEG with the profile in APP2 "ICC_PROFILE" segments (at most 65519 bytes of profile each, numbered from 1),
 * after SOI and the APP0 (JFIF) segment when there is one.
 */
export function embedJpeg(jpeg: Buffer, profileBytes: Uint8Array): Buffer {
  let at = 2;
  if (jpeg[2] === 0xff && jpeg[3] === 0xe0) at = 4 + jpeg.readUInt16BE(4);
  const max = 65519, count = Math.ceil(profileBytes.length / max);
  if (count > 255) throw new RangeError('ICC profile too large for JPEG');
  const segs: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const part = profileBytes.subarray(k * max, (k + 1) * max);
    const h = Buffer.alloc(4 + 12 + 2);
    h[0] = 0xff; h[1] = 0xe2; h.writeUInt16BE(2 + 12 + 2 + part.length, 2);
    h.write('ICC_PROFILE\0', 4, 'latin1'); h[16] = k + 1; h[17] = count;
    segs.push(h, Buffer.from(part));
  }
  return Buffer.concat([jpeg.subarray(0, at), ...segs, jpeg.subarray(at)]);
}

/**
 * What a rendered colour image gets for `iccprofile` (`no` is never passed here): the profile to embed, after
 * converting `rgb` in place where the requested space is not the image's. The image's space is its own ICC
 * Profile (0028,2000) when it has one, else sRGB (what DICOM presumes for colour without a profile).
 * `yes`: the image's own profile (or the sRGB one), pixels unchanged. A named space: pixels converted from the
 * image's space (which must then be a matrix/TRC RGB profile) and that space's profile.
 */
export function applyIccProfile(rgb: Uint8Array, mode: 'yes' | IccSpace, own?: Uint8Array): Uint8Array {
  if (mode === 'yes') return own ?? iccProfile('srgb');
  if (!own && mode === 'srgb') return iccProfile('srgb');
  const from = own ? readMatrixTrc(own) : standardProfile('srgb');
  if (!from) throw new IccError("this image's ICC profile is not an RGB matrix/TRC profile, so it cannot be converted: ask iccprofile=yes (its own profile) or no");
  convertRgb(rgb, from, standardProfile(mode));
  return iccProfile(mode);
}

export class IccError extends Error {}

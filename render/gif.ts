/**
 * GIF (image/gif, PS3.18 Table 8.7.4-1: required for single-frame rendered images; an animation for multi-frame).
 * GIF89a with one image, or an animation assembled from single-frame GIFs (animateGifs), written here: LZW
 * (GIF89a appendix F, variable-length codes up to 12 bits, a clear code when the table is full) is sixty lines,
 * and an npm encoder would bring its own quantiser and buffers for what is a lookup and a table here.
 *
 * Colours (GIF holds at most 256 per image):
 * - grey: a palette of the 256 greys, index = grey level: exact;
 * - colour with at most 256 distinct colours (palette colour images, graphics, most secondary captures): exact,
 *   the palette being those colours;
 * - colour with more: a fixed 6x7x6 palette (R, G, B levels evenly spaced over 0..255; 252 colours), each pixel
 *   mapped to the nearest level per channel, no dithering (a dither would put noise in a medical image). The
 *   largest error is half a level step: 25.5 for red and blue, 21.25 for green (test/rendered-gif.test.ts checks
 *   the bound).
 */
import type { RenderedImage } from './types';

const R_LEVELS = 6, G_LEVELS = 7, B_LEVELS = 6;

/** Index image + palette (RGB triples, 2^k entries) of an 8-bit image. */
interface Indexed { indices: Uint8Array; palette: Uint8Array; bits: number }

function indexGrey(img: RenderedImage): Indexed {
  const palette = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = i;
  return { indices: img.data.subarray(0, img.width * img.height), palette, bits: 8 };
}

function indexColour(img: RenderedImage): Indexed {
  const n = img.width * img.height, d = img.data;
  const indices = new Uint8Array(n);
  // exact when there are at most 256 colours
  const seen = new Map<number, number>();
  let exact = true;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const key = (d[j] << 16) | (d[j + 1] << 8) | d[j + 2];
    let k = seen.get(key);
    if (k === undefined) {
      if (seen.size === 256) { exact = false; break; }
      k = seen.size;
      seen.set(key, k);
    }
    indices[i] = k;
  }
  if (exact) {
    let bits = 1;
    while (1 << bits < seen.size) bits++;
    const palette = new Uint8Array((1 << bits) * 3);
    for (const [key, k] of seen) { palette[3 * k] = key >> 16; palette[3 * k + 1] = (key >> 8) & 255; palette[3 * k + 2] = key & 255; }
    return { indices, palette, bits };
  }
  // fixed 6x7x6 palette, nearest level per channel
  const level = (levels: number) => { const t = new Uint8Array(256); for (let v = 0; v < 256; v++) t[v] = Math.round((v * (levels - 1)) / 255); return t; };
  const rl = level(R_LEVELS), gl = level(G_LEVELS), bl = level(B_LEVELS);
  const palette = new Uint8Array(256 * 3);
  for (let r = 0; r < R_LEVELS; r++) for (let g = 0; g < G_LEVELS; g++) for (let b = 0; b < B_LEVELS; b++) {
    const k = (r * G_LEVELS + g) * B_LEVELS + b;
    palette[3 * k] = Math.round((r * 255) / (R_LEVELS - 1));
    palette[3 * k + 1] = Math.round((g * 255) / (G_LEVELS - 1));
    palette[3 * k + 2] = Math.round((b * 255) / (B_LEVELS - 1));
  }
  for (let i = 0, j = 0; i < n; i++, j += 3) indices[i] = (rl[d[j]] * G_LEVELS + gl[d[j + 1]]) * B_LEVELS + bl[d[j + 2]];
  return { indices, palette, bits: 8 };
}

/** Growable byte output. */
class Bytes {
  buf = Buffer.allocUnsafe(1 << 16);
  len = 0;
  private room(n: number) {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  byte(b: number) { this.room(1); this.buf[this.len++] = b; }
  u16(v: number) { this.room(2); this.buf[this.len++] = v & 255; this.buf[this.len++] = (v >> 8) & 255; }
  bytes(b: Uint8Array) { this.room(b.length); this.buf.set(b, this.len); this.len += b.length; }
  result() { return this.buf.subarray(0, this.len); }
}

/**
 * GIF LZW (GIF89a appendix F): codes of codeSize+1 bits growing to 12, clear code first and whenever the table
 * fills, end-of-information last, packed least significant bit first into sub-blocks of at most 255 bytes.
 * The string table is an open-addressing hash of (prefix code, next index).
 */
function lzw(indices: Uint8Array, minCodeSize: number, out: Bytes): void {
  const clear = 1 << minCodeSize, eoi = clear + 1;
  const HSIZE = 5003; // prime, > 4096 (as in the classic compress)
  const hkey = new Int32Array(HSIZE).fill(-1), hcode = new Int16Array(HSIZE);
  let next = eoi + 1, width = minCodeSize + 1;
  const block = new Uint8Array(255);
  let blen = 0, acc = 0, nbits = 0;
  const emit = (code: number) => {
    acc |= code << nbits;
    nbits += width;
    while (nbits >= 8) {
      block[blen++] = acc & 255;
      acc >>>= 8;
      nbits -= 8;
      if (blen === 255) { out.byte(255); out.bytes(block); blen = 0; }
    }
  };
  out.byte(minCodeSize);
  emit(clear);
  if (indices.length > 0) {
    let prefix = indices[0];
    for (let i = 1; i < indices.length; i++) {
      const c = indices[i];
      const key = (prefix << 8) | c;
      let h = ((c << 4) ^ prefix) % HSIZE;
      let found = -1;
      while (hkey[h] !== -1) {
        if (hkey[h] === key) { found = hcode[h]; break; }
        h = h === 0 ? HSIZE - 1 : h - 1;
      }
      if (found >= 0) { prefix = found; continue; }
      emit(prefix);
      if (next < 4096) {
        hkey[h] = key; hcode[h] = next++;
        // the decoder adds its entry one code later: widen once `next` no longer fits the current width
        if (next > 1 << width && width < 12) width++;
      } else {
        emit(clear);
        hkey.fill(-1);
        next = eoi + 1;
        width = minCodeSize + 1;
      }
      prefix = c;
    }
    emit(prefix);
  }
  emit(eoi);
  if (nbits > 0) { block[blen++] = acc & 255; if (blen === 255) { out.byte(255); out.bytes(block); blen = 0; } }
  if (blen > 0) { out.byte(blen); out.bytes(block.subarray(0, blen)); }
  out.byte(0); // block terminator
}

/** A single-image GIF89a: header, screen descriptor (no global table), image with a local colour table, trailer. */
export function encodeGif(img: RenderedImage): Buffer {
  if (img.width > 65535 || img.height > 65535) throw new RangeError('GIF images are at most 65535 pixels a side');
  const ix = img.channels === 1 ? indexGrey(img) : indexColour(img);
  const out = new Bytes();
  out.bytes(Buffer.from('GIF89a', 'latin1'));
  out.u16(img.width); out.u16(img.height);
  out.byte(0x00); out.byte(0); out.byte(0); // no global colour table, background 0, aspect ratio not given
  out.byte(0x2c); out.u16(0); out.u16(0); out.u16(img.width); out.u16(img.height);
  out.byte(0x80 | (ix.bits - 1)); // local colour table of 2^bits entries, not interlaced
  out.bytes(ix.palette);
  lzw(ix.indices, Math.max(2, ix.bits), out);
  out.byte(0x3b);
  return Buffer.from(out.result());
}

/**
 * An animated GIF from single-image GIFs of one size made by encodeGif: one screen, the NETSCAPE2.0 loop
 * extension (loop forever), and each image after a Graphic Control Extension with its delay in hundredths of a
 * second (GIF89a 23).
 */
export function animateGifs(frames: Uint8Array[], delaysCs: number[]): Buffer {
  if (frames.length === 0) throw new RangeError('no frames');
  const out = new Bytes();
  out.bytes(frames[0].subarray(0, 13)); // header and logical screen descriptor (no global table)
  out.bytes(Buffer.from([0x21, 0xff, 0x0b, ...Buffer.from('NETSCAPE2.0', 'latin1'), 0x03, 0x01, 0x00, 0x00, 0x00]));
  frames.forEach((f, i) => {
    if (f[0] !== 0x47 || f[10] !== 0x00 || f[13] !== 0x2c || f[f.length - 1] !== 0x3b) throw new RangeError('not a GIF of encodeGif');
    const d = Math.max(0, Math.min(65535, Math.round(delaysCs[i] ?? 10)));
    out.bytes(Buffer.from([0x21, 0xf9, 0x04, 0x00, d & 255, d >> 8, 0x00, 0x00])); // disposal unspecified, no transparency
    out.bytes(f.subarray(13, f.length - 1));
  });
  out.byte(0x3b);
  return Buffer.from(out.result());
}

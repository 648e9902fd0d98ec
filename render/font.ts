/**
 * Text to anti-aliased coverage masks: a TrueType font (DejaVu Sans, from the `dejavu-fonts-ttf` package)
 * read by opentype.js, which gives each glyph's outline; the outlines are flattened to line segments and
 * filled here with an exact-area accumulation rasteriser (the signed-area scheme of font-rs and
 * stb_truetype v2: each edge adds its covered area to the cells it crosses, a running sum along the row gives
 * the coverage, non-zero-ish fill by |winding|, clamped to 1).
 *
 * Layout is deliberately simple (one line, left to right, advance widths and pair kerning): opentype.js'
 * own shaping runs DejaVu's GSUB `ccmp` lookups, some of which it does not support yet, and annotation text
 * (names, numbers, dates) needs nothing more.
 */
import * as fs from 'fs';

/* Minimal typing of the part of opentype.js we use (the package ships no declarations). */
interface OtCommand { type: 'M' | 'L' | 'Q' | 'C' | 'Z'; x?: number; y?: number; x1?: number; y1?: number; x2?: number; y2?: number }
interface OtGlyph { index: number; advanceWidth?: number; getPath(x: number, y: number, size: number): { commands: OtCommand[] } }
interface OtFont {
  unitsPerEm: number;
  ascender: number;
  descender: number;
  charToGlyph(c: string): OtGlyph;
  getKerningValue(left: OtGlyph, right: OtGlyph): number;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const opentype: { parse(buf: ArrayBuffer, opts?: { lowMemory?: boolean }): OtFont } = require('opentype.js');

/** A glyph's outline in font units, y down, origin on the baseline: x0,y0 then per segment a tag and points. */
interface GlyphOutline { advance: number; commands: OtCommand[] }

export class Font {
  private readonly glyphs = new Map<string, { glyph: OtGlyph; outline: GlyphOutline }>();
  constructor(private readonly font: OtFont) {}

  get unitsPerEm(): number { return this.font.unitsPerEm; }
  /** hhea ascender / descender, in em (descender positive, below the baseline) */
  get ascent(): number { return this.font.ascender / this.font.unitsPerEm; }
  get descent(): number { return -this.font.descender / this.font.unitsPerEm; }

  private glyph(ch: string) {
    let g = this.glyphs.get(ch);
    if (!g) {
      const glyph = this.font.charToGlyph(ch);
      // at size = unitsPerEm, opentype.js returns font units (y flipped to point down)
      const commands = glyph.getPath(0, 0, this.font.unitsPerEm).commands;
      g = { glyph, outline: { advance: glyph.advanceWidth ?? 0, commands } };
      if (this.glyphs.size < 4096) this.glyphs.set(ch, g);
    }
    return g;
  }

  private kerning(a: OtGlyph, b: OtGlyph): number {
    try { return this.font.getKerningValue(a, b) || 0; } catch { return 0; }
  }

  /** Pen positions (font units) of each code point of `text`. */
  private layout(text: string): { outlines: GlyphOutline[]; xs: number[]; advance: number } {
    const outlines: GlyphOutline[] = [];
    const xs: number[] = [];
    let pen = 0;
    let prev: OtGlyph | undefined;
    for (const ch of text) {
      const g = this.glyph(ch);
      if (prev) pen += this.kerning(prev, g.glyph);
      outlines.push(g.outline);
      xs.push(pen);
      pen += g.outline.advance;
      prev = g.glyph;
    }
    return { outlines, xs, advance: pen };
  }

  /** Width in pixels of `text` at `size` pixels per em. */
  measure(text: string, size: number): number {
    return (this.layout(text).advance * size) / this.font.unitsPerEm;
  }

  /**
   * Rasterises `text` with its baseline origin at (x, y) (pixels, fractional allowed) at `size` pixels per em.
   * Returns the coverage (0..255) over the ink's bounding box padded by `pad` pixels, and where that box
   * lies (left, top) in the same coordinates as x, y.
   */
  rasterise(text: string, x: number, y: number, size: number, pad = 0): Mask {
    const { outlines, xs } = this.layout(text);
    const s = size / this.font.unitsPerEm;
    const segs: number[] = [];
    // pixels of flattening error: chords cut inside curves, and 0.1 px already darkens edge pixels by ~25
    // grey levels; 0.005 px keeps the fill within about one level of the exact outline
    const tol = 0.005;
    for (let i = 0; i < outlines.length; i++) {
      const ox = x + xs[i] * s;
      let cx = 0, cy = 0, sx = 0, sy = 0;
      const line = (x1: number, y1: number) => { segs.push(cx, cy, x1, y1); cx = x1; cy = y1; };
      for (const c of outlines[i].commands) {
        switch (c.type) {
          case 'M':
            if (cx !== sx || cy !== sy) line(sx, sy);
            cx = sx = ox + c.x! * s; cy = sy = y + c.y! * s;
            break;
          case 'L':
            line(ox + c.x! * s, y + c.y! * s);
            break;
          case 'Q': {
            const x1 = ox + c.x1! * s, y1 = y + c.y1! * s, x2 = ox + c.x! * s, y2 = y + c.y! * s;
            // error of n chords ~ |p0 - 2p1 + p2| / (8 n^2)
            const n = Math.max(1, Math.ceil(Math.sqrt(Math.hypot(cx - 2 * x1 + x2, cy - 2 * y1 + y2) / (8 * tol))));
            const x0 = cx, y0 = cy;
            for (let k = 1; k <= n; k++) {
              const t = k / n, u = 1 - t;
              line(u * u * x0 + 2 * u * t * x1 + t * t * x2, u * u * y0 + 2 * u * t * y1 + t * t * y2);
            }
            break;
          }
          case 'C': {
            const x1 = ox + c.x1! * s, y1 = y + c.y1! * s, x2 = ox + c.x2! * s, y2 = y + c.y2! * s, x3 = ox + c.x! * s, y3 = y + c.y! * s;
            const dd = Math.max(Math.hypot(cx - 2 * x1 + x2, cy - 2 * y1 + y2), Math.hypot(x1 - 2 * x2 + x3, y1 - 2 * y2 + y3));
            const n = Math.max(1, Math.ceil(Math.sqrt((0.75 * dd) / tol)));
            const x0 = cx, y0 = cy;
            for (let k = 1; k <= n; k++) {
              const t = k / n, u = 1 - t;
              const a = u * u * u, b = 3 * u * u * t, d = 3 * u * t * t, e = t * t * t;
              line(a * x0 + b * x1 + d * x2 + e * x3, a * y0 + b * y1 + d * y2 + e * y3);
            }
            break;
          }
          case 'Z':
            line(sx, sy);
            break;
        }
      }
      if (cx !== sx || cy !== sy) line(sx, sy);
    }
    return fillSegments(segs, pad);
  }
}

/** Coverage 0..255, row-major, `width` x `height`, whose top-left pixel is at (left, top). */
export interface Mask { left: number; top: number; width: number; height: number; data: Uint8Array }

/** Non-zero-ish fill of closed polygons given as segments (x0, y0, x1, y1, ...), exact area coverage. */
export function fillSegments(segs: number[], pad = 0): Mask {
  if (segs.length === 0) return { left: 0, top: 0, width: 0, height: 0, data: new Uint8Array(0) };
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (let i = 0; i < segs.length; i += 2) {
    const px = segs[i], py = segs[i + 1];
    if (px < minX) minX = px; if (px > maxX) maxX = px;
    if (py < minY) minY = py; if (py > maxY) maxY = py;
  }
  const left = Math.floor(minX) - pad, top = Math.floor(minY) - pad;
  // two spare columns: an edge deposits area into the cell right of its last one
  const width = Math.ceil(maxX) - left + pad + 2, height = Math.ceil(maxY) - top + pad;
  const acc = new Float32Array(width * height + 2);
  for (let i = 0; i < segs.length; i += 4) accumulate(acc, width, segs[i] - left, segs[i + 1] - top, segs[i + 2] - left, segs[i + 3] - top);
  const data = new Uint8Array(width * height);
  let sum = 0;
  for (let i = 0; i < data.length; i++) {
    sum += acc[i];
    const a = Math.abs(sum);
    data[i] = a >= 1 ? 255 : (a * 255 + 0.5) | 0;
  }
  return { left, top, width, height, data };
}

/** One edge into the signed-area accumulation buffer (font-rs `draw_line`); coordinates inside the buffer. */
function accumulate(acc: Float32Array, w: number, x0: number, y0: number, x1: number, y1: number): void {
  if (y0 === y1) return;
  let dir = 1;
  if (y0 > y1) { dir = -1; [x0, x1] = [x1, x0]; [y0, y1] = [y1, y0]; }
  const dxdy = (x1 - x0) / (y1 - y0);
  let x = x0;
  const yEnd = Math.ceil(y1);
  for (let y = Math.floor(y0); y < yEnd; y++) {
    const row = y * w;
    const dy = Math.min(y + 1, y1) - Math.max(y, y0);
    const xnext = x + dxdy * dy;
    const d = dy * dir;
    const xa = x < xnext ? x : xnext, xb = x < xnext ? xnext : x;
    const xaFloor = Math.floor(xa), xai = xaFloor;
    const xbCeil = Math.ceil(xb), xbi = xbCeil;
    if (xbi <= xai + 1) {
      // the edge stays within one cell on this row: split its area at its mid x
      const xmf = 0.5 * (x + xnext) - xaFloor;
      acc[row + xai] += d - d * xmf;
      acc[row + xai + 1] += d * xmf;
    } else {
      const inv = 1 / (xb - xa);
      const xaf = xa - xaFloor;
      const a0 = 0.5 * inv * (1 - xaf) * (1 - xaf);
      const xbf = xb - xbCeil + 1;
      const am = 0.5 * inv * xbf * xbf;
      acc[row + xai] += d * a0;
      if (xbi === xai + 2) {
        acc[row + xai + 1] += d * (1 - a0 - am);
      } else {
        const a1 = inv * (1.5 - xaf);
        acc[row + xai + 1] += d * (a1 - a0);
        for (let xi = xai + 2; xi < xbi - 1; xi++) acc[row + xi] += d * inv;
        const a2 = a1 + (xbi - xai - 3) * inv;
        acc[row + xbi - 1] += d * (1 - a2 - am);
      }
      acc[row + xbi] += d * am;
    }
    x = xnext;
  }
}

/* ---------------------------------------------------------------------------------------------- */

let dejavu: Font | undefined;

/** DejaVu Sans, loaded once per thread on first use (~70 ms; glyphs are parsed lazily). */
export function annotationFont(): Font {
  if (!dejavu) {
    const file = fs.readFileSync(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf'));
    const buf = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer;
    dejavu = new Font(opentype.parse(buf, { lowMemory: true }));
  }
  return dejavu;
}

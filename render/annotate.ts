/**
 * Burnt-in annotation of rendered images (PS3.18 8.3.5.1.2 `annotation=patient,technique`): the text is
 * built from the instance's DICOM JSON (annotationText) and drawn in the corners of the output image,
 * after the viewport, so its size follows the image the client sees (annotate).
 *
 * Drawing: white DejaVu Sans (font.ts), anti-aliased, over a dark outline (the glyph coverage dilated by a
 * disc) so it reads on any background. Grey images stay one channel, colour stays RGB.
 */
import { JsonDataset, str, num } from '../dicom/json';
import { annotationFont, Mask } from './font';
import type { AppliedVoi } from './render';
import type { RenderedImage, RenderedImage16 } from './types';

export interface AnnotationLines {
  topLeft?: string[];
  topRight?: string[];
  bottomLeft?: string[];
  bottomRight?: string[];
}

/** Smallest font size (pixels per em) drawn, whatever the image size: below this text stops being legible. */
export const MIN_FONT_PX = 11;
/** Font size as a fraction of the output image height (14 px on a 512-row image). */
export const FONT_PER_HEIGHT = 0.028;

export interface AnnotationLayout { fontSize: number; lineHeight: number; margin: number; outline: number }

/** Font size, line spacing, margin and outline radius for an image of this size and these lines. */
export function annotationLayout(width: number, height: number, lines: AnnotationLines): AnnotationLayout {
  const font = annotationFont();
  let size = Math.max(MIN_FONT_PX, Math.round(height * FONT_PER_HEIGHT));
  // Shrink (not below the minimum) when a left and a right block would collide on the same band.
  const widest = (l?: string[]) => Math.max(0, ...(l ?? []).map((t) => font.measure(t, size)));
  const need = Math.max(widest(lines.topLeft) + widest(lines.topRight), widest(lines.bottomLeft) + widest(lines.bottomRight));
  const room = width - 3 * Math.round(size * 0.5);
  if (need > room && room > 0) size = Math.max(MIN_FONT_PX, Math.floor((size * room) / need));
  return { fontSize: size, lineHeight: Math.round(size * 1.2), margin: Math.max(2, Math.round(size * 0.5)), outline: Math.max(1, Math.round(size / 12)) };
}

/** Draws `lines` into a copy of `img`, one block per corner. An image with no lines is returned as is. */
export function annotate<I extends RenderedImage | RenderedImage16>(img: I, lines: AnnotationLines): I {
  const blocks = [lines.topLeft, lines.topRight, lines.bottomLeft, lines.bottomRight].map((b) => (b ?? []).map(clean).filter((t) => t !== ''));
  if (blocks.every((b) => b.length === 0)) return img;
  const cleaned: AnnotationLines = { topLeft: blocks[0], topRight: blocks[1], bottomLeft: blocks[2], bottomRight: blocks[3] };
  const { fontSize, lineHeight, margin, outline } = annotationLayout(img.width, img.height, cleaned);
  const font = annotationFont();
  const ascent = Math.round(font.ascent * fontSize);
  const out = { width: img.width, height: img.height, channels: img.channels, data: img.data.slice() } as I;
  const disc = discOffsets(outline);

  const draw = (whole: string, right: boolean, baseline: number) => {
    const text = fit(whole, img.width - 2 * margin, fontSize);
    const x = right ? img.width - margin - font.measure(text, fontSize) : margin;
    const glyphs = font.rasterise(text, x, baseline, fontSize, outline);
    composite(out, dilate(glyphs, disc), glyphs);
  };
  for (const [k, block] of blocks.entries()) {
    const right = k === 1 || k === 3, bottom = k >= 2;
    block.forEach((text, i) => {
      // top blocks grow down from the top margin, bottom blocks grow up from the bottom margin
      const baseline = bottom
        ? img.height - margin - Math.round(font.descent * fontSize) - (block.length - 1 - i) * lineHeight
        : margin + ascent + i * lineHeight;
      draw(text, right, baseline);
    });
  }
  return out;
}

/** The text, cut and ended with an ellipsis when wider than `room` pixels (small images keep the minimum size). */
function fit(text: string, room: number, size: number): string {
  const font = annotationFont();
  if (font.measure(text, size) <= room) return text;
  const chars = [...text];
  while (chars.length > 1 && font.measure(`${chars.join('').trimEnd()}\u2026`, size) > room) chars.pop();
  return `${chars.join('').trimEnd()}\u2026`;
}

/** Printable text only: DICOM strings may carry control characters or trailing padding. */
function clean(t: string): string {
  return t.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').trim();
}

/** Half-widths of each row of a disc of radius r: row dy spans [-hw[dy + r], +hw[dy + r]]. */
function discOffsets(r: number): Int32Array {
  const hw = new Int32Array(2 * r + 1);
  for (let dy = -r; dy <= r; dy++) hw[dy + r] = Math.floor(Math.sqrt(r * r - dy * dy) + 0.5);
  return hw;
}

/**
 * Outline coverage: the maximum glyph coverage over a disc around each pixel (morphological dilation),
 * by running maxima: horizontal maxima of each half-width first, then a vertical pass over the disc's rows.
 */
function dilate(m: Mask, hw: Int32Array): Mask {
  const { width: w, height: h, data } = m;
  const r = (hw.length - 1) >> 1;
  const horiz: Uint8Array[] = [data];
  for (let k = 1; k <= r; k++) {
    const prev = horiz[k - 1], cur = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let x = 0; x < w; x++) {
        let v = prev[row + x];
        if (x > 0 && prev[row + x - 1] > v) v = prev[row + x - 1];
        if (x < w - 1 && prev[row + x + 1] > v) v = prev[row + x + 1];
        cur[row + x] = v;
      }
    }
    horiz.push(cur);
  }
  const out = new Uint8Array(w * h);
  for (let dy = -r; dy <= r; dy++) {
    const src = horiz[hw[dy + r]];
    const y0 = Math.max(0, -dy), y1 = Math.min(h, h - dy);
    for (let y = y0; y < y1; y++) {
      const o = y * w, i = (y + dy) * w;
      for (let x = 0; x < w; x++) if (src[i + x] > out[o + x]) out[o + x] = src[i + x];
    }
  }
  return { ...m, data: out };
}

/** Dark outline first, then white text, each alpha-blended with its coverage; clipped to the image. */
function composite(img: RenderedImage | RenderedImage16, outline: Mask, text: Mask): void {
  const { width: W, height: H, channels: c, data } = img;
  const white = data instanceof Uint16Array ? 65535 : 255; // a 16-bit grey image (bitdepth=16): white at full scale
  const { left, top, width: w, height: h } = text;
  const x0 = Math.max(0, left), x1 = Math.min(W, left + w);
  const y0 = Math.max(0, top), y1 = Math.min(H, top + h);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const m = (y - top) * w + (x - left);
      const o = outline.data[m], t = text.data[m];
      if (o === 0) continue;
      const p = (y * W + x) * c;
      for (let k = 0; k < c; k++) {
        const v = ((data[p + k] * (255 - o) + 127) / 255) | 0;
        data[p + k] = ((v * (255 - t) + white * t + 127) / 255) | 0;
      }
    }
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* The text                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

export type AnnotationKind = 'patient' | 'technique';

export interface AnnotationContext {
  /** the VOI the rendering applied (renderFrame's appliedVoi), shown with `technique` on grey images */
  voi?: AppliedVoi;
  frameNumber?: number;
  numberOfFrames?: number;
}

/**
 * The lines burnt in for each requested kind, from the instance's DICOM JSON:
 *  - patient (top left): Patient's Name, Patient ID, Birth Date, Sex (PS3.3 C.7.1.1);
 *  - technique (top right): Modality, Study Date/Time, Series / Instance Number (and frame);
 *    (bottom right): the window applied, KVP (0018,0060), Exposure in mAs (0018,1153 uAs / 1000, else
 *    0018,1152), Slice Thickness (0018,0050), each where present.
 */
export function annotationText(ds: JsonDataset, kinds: readonly string[], ctx: AnnotationContext = {}): AnnotationLines {
  const lines: AnnotationLines = {};
  if (kinds.includes('patient')) {
    const tl: string[] = [];
    const name = personName(str(ds, '00100010'));
    if (name) tl.push(name);
    const id = str(ds, '00100020');
    if (id) tl.push(`ID: ${id}`);
    const dob = date(str(ds, '00100030'));
    if (dob) tl.push(`DOB: ${dob}`);
    const sex = str(ds, '00100040');
    if (sex) tl.push(`Sex: ${sex}`);
    lines.topLeft = tl;
  }
  if (kinds.includes('technique')) {
    const tr: string[] = [];
    const modality = str(ds, '00080060');
    if (modality) tr.push(modality);
    const when = [date(str(ds, '00080020')), time(str(ds, '00080030'))].filter(Boolean).join(' ');
    if (when) tr.push(when);
    const se = num(ds, '00200011'), im = num(ds, '00200013');
    const ids = [se !== undefined ? `Se: ${se}` : '', im !== undefined ? `Im: ${im}` : ''];
    if (ctx.numberOfFrames && ctx.numberOfFrames > 1 && ctx.frameNumber) ids.push(`Fr: ${ctx.frameNumber}/${ctx.numberOfFrames}`);
    if (ids.some(Boolean)) tr.push(ids.filter(Boolean).join('  '));

    const br: string[] = [];
    const v = ctx.voi;
    if (v?.kind === 'window') {
      const fn = v.function === 'LINEAR' ? '' : ` ${v.function.toLowerCase().replace('_', '-')}`;
      br.push(`W: ${fmt(v.width)} C: ${fmt(v.center)}${fn}${v.auto ? ' (auto)' : ''}`);
    } else if (v?.kind === 'lut') {
      br.push(`VOI LUT${v.explanation ? `: ${v.explanation}` : ''}`);
    }
    const kvp = num(ds, '00180060');
    const uas = num(ds, '00181153'), mas = uas !== undefined ? uas / 1000 : num(ds, '00181152');
    const exposure = [kvp !== undefined ? `${fmt(kvp)} kVp` : '', mas !== undefined ? `${fmt(mas)} mAs` : ''].filter(Boolean).join('  ');
    if (exposure) br.push(exposure);
    const thick = num(ds, '00180050');
    if (thick !== undefined) br.push(`Thk: ${fmt(thick)} mm`);
    lines.topRight = tr;
    lines.bottomRight = br;
  }
  return lines;
}

const fmt = (n: number) => String(Number(n.toFixed(2)));

/** PN "Family^Given^Middle^Prefix^Suffix" (PS3.5 6.2.1) as "Family, Given Middle". */
function personName(pn?: string): string {
  if (!pn) return '';
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = pn.split('^').map((s) => s.trim());
  const rest = [prefix, given, middle].filter(Boolean).join(' ');
  return [family, rest].filter(Boolean).join(', ') + (suffix ? ` ${suffix}` : '');
}

/** DA YYYYMMDD (or the old YYYY.MM.DD) as YYYY-MM-DD. */
function date(da?: string): string {
  if (!da) return '';
  const d = da.replace(/\./g, '');
  return /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}` : da;
}

/** TM HHMMSS.FFFFFF (or the old HH:MM:SS) as HH:MM[:SS]. */
function time(tm?: string): string {
  if (!tm) return '';
  const t = tm.replace(/:/g, '').split('.')[0];
  if (!/^\d{2,6}$/.test(t)) return tm;
  return [t.slice(0, 2), t.slice(2, 4), t.slice(4, 6)].filter(Boolean).join(':');
}

/**
 * PS3.18 8.3.5.1.2 `annotation=patient,technique`: text burnt into rendered images, through the HTTP API on
 * real corpus files (CT_small: grey, automatic min-max window, kVp / mAs / slice thickness; MR_small: grey with
 * a window in the file; SC_rgb: colour), plus the rasteriser checked against an independent rasterisation of
 * the same font outlines. Sample images go to test-output/annotation/.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { serverWithFiles, binaryParser, corpusFile } from './helpers/server';
import { decodePng, Image8 } from './helpers/png-compare';
import { loadFixture, decodeFixtureFrame } from './helpers/render-fixture';
import { annotate, annotationLayout, annotationText, appliedVoi, encodeImage, initRender, renderFrame } from '../render';
import type { RenderedImage } from '../render';
import type { JsonDataset } from '../dicom/json';
import { report } from './helpers/report';

const OUT = path.join(process.cwd(), 'test-output', 'annotation');
const stored = serverWithFiles(Object.fromEntries(['CT_small', 'MR_small', 'SC_rgb', 'RG3_J2KR'].map((n) => [n, corpusFile(n)])));
const { urls } = stored;

beforeAll(() => { fs.mkdirSync(OUT, { recursive: true }); });

async function get(name: string, query: string, headers: Record<string, string> = {}) {
  let req = request(stored.srv.app).get(`${urls.get(name)}/rendered?accept=image/png${query ? `&${query}` : ''}`);
  for (const [k, v] of Object.entries(headers)) req = req.set(k, v);
  return req.buffer(true).parse(binaryParser);
}

async function png(name: string, query: string, save?: string): Promise<Image8 & { colorType: number }> {
  const res = await get(name, query);
  expect(res.status).toBe(200);
  if (save) fs.writeFileSync(path.join(OUT, save), res.body);
  const body = res.body as Buffer;
  return { ...decodePng(body), colorType: body[25] }; // IHDR colour type: 0 grey, 2 RGB
}

/** Pixels that differ between two images of the same size, and their bounding box. */
function changes(a: Image8, b: Image8) {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels]);
  const pts: Array<[number, number]> = [];
  for (let i = 0; i < a.width * a.height; i++) {
    for (let k = 0; k < a.channels; k++) {
      if (a.data[i * a.channels + k] !== b.data[i * b.channels + k]) { pts.push([i % a.width, Math.floor(i / a.width)]); break; }
    }
  }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  return { count: pts.length, pts, box: pts.length ? { x0: Math.min(...xs), x1: Math.max(...xs), y0: Math.min(...ys), y1: Math.max(...ys) } : undefined };
}

describe('annotation over HTTP', () => {
  test('without annotation the image is exactly the library rendering, with no text and no Warning', async () => {
    await initRender();
    const fx = loadFixture('CT_small');
    const plain = encodeImage(renderFrame(fx.desc, 1, await decodeFixtureFrame(fx, 1), {}), 'image/png');
    const res = await get('CT_small', '');
    expect(res.status).toBe(200);
    expect(Buffer.compare(res.body, Buffer.from(plain))).toBe(0);
    expect(res.headers.warning).toBeUndefined();
  });

  test('patient: text only in the top-left corner, most pixels untouched, grey stays grey', async () => {
    const plain = await png('CT_small', 'viewport=512,512', 'CT_small-plain-512.png');
    const ann = await png('CT_small', 'viewport=512,512&annotation=patient', 'CT_small-patient-512.png');
    expect(ann.colorType).toBe(0);
    const d = changes(plain, ann);
    expect(d.count).toBeGreaterThan(300); // four lines of text
    expect(d.count / (512 * 512)).toBeLessThan(0.08);
    expect(d.box!.x1).toBeLessThan(256);
    expect(d.box!.y1).toBeLessThan(160);
    // white text exists (not just the dark outline)
    expect(d.pts.some(([x, y]) => ann.data[y * 512 + x] >= 250)).toBe(true);
  });

  test('technique: text only on the right, top and bottom', async () => {
    const plain = await png('CT_small', 'viewport=512,512');
    const ann = await png('CT_small', 'viewport=512,512&annotation=technique', 'CT_small-technique-512.png');
    const d = changes(plain, ann);
    expect(d.count / (512 * 512)).toBeLessThan(0.08);
    expect(d.box!.x0).toBeGreaterThanOrEqual(256);
    expect(d.pts.some(([, y]) => y < 100)).toBe(true);
    expect(d.pts.some(([, y]) => y > 412)).toBe(true);
    expect(d.pts.every(([, y]) => y < 100 || y > 412)).toBe(true);
  });

  test('both kinds, the ETag and conditional requests', async () => {
    const plain = await get('CT_small', 'viewport=512,512');
    const both = await get('CT_small', 'viewport=512,512&annotation=patient,technique');
    fs.writeFileSync(path.join(OUT, 'CT_small-both-512.png'), both.body);
    expect(both.status).toBe(200);
    expect(both.headers.warning).toBeUndefined();
    expect(both.headers.etag).toBeDefined();
    expect(both.headers.etag).not.toBe(plain.headers.etag);
    const again = await get('CT_small', 'viewport=512,512&annotation=patient,technique', { 'If-None-Match': both.headers.etag });
    expect(again.status).toBe(304);
    const cached = await get('CT_small', 'viewport=512,512&annotation=patient,technique');
    expect(Buffer.compare(cached.body, both.body)).toBe(0);
  });

  test('a larger viewport draws larger text; a thumbnail-sized one keeps the legible minimum', async () => {
    const size = async (v: number) => {
      const plain = await png('CT_small', `viewport=${v},${v}`);
      const ann = await png('CT_small', `viewport=${v},${v}&annotation=patient`, `CT_small-patient-${v}.png`);
      const d = changes(plain, ann);
      // the text block: three lines (name, ID, sex) and their outline
      return { w: d.box!.x1 - d.box!.x0 + 1, h: d.box!.y1 - d.box!.y0 + 1, layout: annotationLayout(v, v, {}) };
    };
    const small = await size(128), mid = await size(256), large = await size(1024);
    expect(small.layout.fontSize).toBe(11); // the minimum
    expect(mid.layout.fontSize).toBe(11);
    expect(large.layout.fontSize).toBe(29);
    expect(small.h).toBe(mid.h); // same font size (the name is wider than 128 px: it ends in an ellipsis)
    expect(large.h / mid.h).toBeGreaterThan(2.2);
    expect(large.w / mid.w).toBeGreaterThan(2.2);
    expect(small.h).toBeGreaterThanOrEqual(2 * 13 + 8); // two line steps of 13 px + a capital (8 px at 11 px/em)
  });

  test('colour stays RGB and the text is white over a dark outline', async () => {
    const plain = await png('SC_rgb', 'viewport=400,400', 'SC_rgb-plain-400.png');
    const ann = await png('SC_rgb', 'viewport=400,400&annotation=patient,technique', 'SC_rgb-both-400.png');
    expect(ann.colorType).toBe(2);
    expect(ann.channels).toBe(3);
    const d = changes(plain, ann);
    expect(d.count / (400 * 400)).toBeLessThan(0.1);
    const px = (x: number, y: number) => [0, 1, 2].map((k) => ann.data[(y * 400 + x) * 3 + k]);
    expect(d.pts.some(([x, y]) => px(x, y).every((v) => v >= 250))).toBe(true);
    expect(d.pts.some(([x, y]) => px(x, y).every((v) => v <= 5))).toBe(true);
  });

  test('a large CR with its own window, scaled down by the viewport', async () => {
    const ann = await png('RG3_J2KR', 'viewport=600,600&annotation=patient,technique', 'RG3_J2KR-both-600.png');
    expect(ann.colorType).toBe(0);
    expect([ann.width, ann.height]).toEqual([600, 600]);
  });

  test('the annotation text comes from the metadata and shows the window actually applied', async () => {
    const md = async (name: string) => {
      const res = await request(stored.srv.app).get(`${urls.get(name)}/metadata`);
      return (res.body as JsonDataset[])[0];
    };
    // CT_small has no window: the automatic min-max one is shown, and it is the one applied
    const fx = loadFixture('CT_small');
    const voi = appliedVoi(fx.desc, 1, await decodeFixtureFrame(fx, 1));
    expect(voi).toMatchObject({ kind: 'window', auto: true });
    const ct = annotationText(await md('CT_small'), ['patient', 'technique'], { voi });
    const w = voi as { center: number; width: number };
    expect(ct.topLeft).toEqual(['CompressedSamples, CT1', 'ID: 1CT1', 'Sex: O']);
    expect(ct.topRight).toEqual(['CT', '2004-01-19 07:27:30', 'Se: 1  Im: 1']);
    expect(ct.bottomRight).toEqual([`W: ${w.width} C: ${w.center} (auto)`, '120 kVp  170 mAs', 'Thk: 5 mm']);
    const byDefault = await get('CT_small', '');
    const byWindow = await get('CT_small', `window=${w.center},${w.width},linear`);
    expect(Buffer.compare(byDefault.body, byWindow.body)).toBe(0);

    // MR_small's own window (C 600, W 1600), or the one the request gives
    const mfx = loadFixture('MR_small');
    const mr = await md('MR_small');
    const frame = await decodeFixtureFrame(mfx, 1);
    expect(annotationText(mr, ['technique'], { voi: appliedVoi(mfx.desc, 1, frame) }).bottomRight).toEqual(['W: 1600 C: 600', 'Thk: 0.8 mm']);
    const asked = appliedVoi(mfx.desc, 1, frame, { window: { center: 100.5, width: 50, function: 'SIGMOID' } });
    expect(annotationText(mr, ['technique'], { voi: asked }).bottomRight![0]).toBe('W: 50 C: 100.5 sigmoid');
    expect(annotationText(mr, ['patient'], {}).topRight).toBeUndefined();
    expect(annotationText(await md('SC_rgb'), ['technique'], {}).bottomRight).toEqual([]);
  });
});

/* ---------------------------------------------------------------------------------------------- */
/* Legibility: our glyphs against an independent rasterisation of the font's outlines            */
/* ---------------------------------------------------------------------------------------------- */

// eslint-disable-next-line @typescript-eslint/no-require-imports
const opentype = require('opentype.js');
const fontBytes = fs.readFileSync(require.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf'));
const font = opentype.parse(fontBytes.buffer.slice(fontBytes.byteOffset, fontBytes.byteOffset + fontBytes.byteLength));

/**
 * Reference coverage: opentype.js' own scaled glyph paths, curves cut into 64 chords, filled by non-zero
 * winding on 64 sub-scanlines per pixel with exact horizontal span overlap. Slow and simple on purpose.
 */
function referenceCoverage(text: string, x: number, baseline: number, size: number, W: number, H: number): Float64Array {
  const edges: number[][] = [];
  let pen = x;
  for (const ch of text) {
    const g = font.charToGlyph(ch);
    let cx = 0, cy = 0, sx = 0, sy = 0;
    const line = (x1: number, y1: number) => { edges.push([cx, cy, x1, y1]); cx = x1; cy = y1; };
    for (const c of g.getPath(pen, baseline, size).commands) {
      if (c.type === 'M') { if (cx !== sx || cy !== sy) line(sx, sy); cx = sx = c.x; cy = sy = c.y; }
      else if (c.type === 'L') line(c.x, c.y);
      else if (c.type === 'Q') { const x0 = cx, y0 = cy; for (let k = 1; k <= 64; k++) { const t = k / 64, u = 1 - t; line(u * u * x0 + 2 * u * t * c.x1 + t * t * c.x, u * u * y0 + 2 * u * t * c.y1 + t * t * c.y); } }
      else if (c.type === 'C') { const x0 = cx, y0 = cy; for (let k = 1; k <= 64; k++) { const t = k / 64, u = 1 - t; line(u * u * u * x0 + 3 * u * u * t * c.x1 + 3 * u * t * t * c.x2 + t * t * t * c.x, u * u * u * y0 + 3 * u * u * t * c.y1 + 3 * u * t * t * c.y2 + t * t * t * c.y); } }
      else if (c.type === 'Z') line(sx, sy);
    }
    if (cx !== sx || cy !== sy) line(sx, sy);
    pen += (g.advanceWidth * size) / font.unitsPerEm;
  }
  const cov = new Float64Array(W * H);
  const SUB = 64;
  for (let py = 0; py < H; py++) {
    for (let s = 0; s < SUB; s++) {
      const y = py + (s + 0.5) / SUB;
      const xs: Array<[number, number]> = [];
      for (const [x0, y0, x1, y1] of edges) {
        if ((y0 <= y && y < y1) || (y1 <= y && y < y0)) xs.push([x0 + ((y - y0) * (x1 - x0)) / (y1 - y0), y1 > y0 ? 1 : -1]);
      }
      xs.sort((a, b) => a[0] - b[0]);
      let wind = 0;
      for (let i = 0; i < xs.length - 1; i++) {
        wind += xs[i][1];
        if (wind === 0) continue;
        const a = xs[i][0], b = xs[i + 1][0];
        for (let px = Math.max(0, Math.floor(a)); px < Math.min(W, Math.ceil(b)); px++) {
          cov[py * W + px] += (Math.min(b, px + 1) - Math.max(a, px)) / SUB;
        }
      }
    }
  }
  return cov;
}

function black(W: number, H: number, channels: 1 | 3 = 1): RenderedImage {
  return { width: W, height: H, channels, data: new Uint8Array(W * H * channels) };
}

describe('glyphs are the font\'s glyphs', () => {
  test('coverage matches an independent rasterisation of the same outlines', () => {
    // on black the outline is invisible, so the image is exactly the text coverage
    const text = 'Hamburgefonstiv 0123456789 (W: 400 C: 40)';
    const W = 600, H = 400;
    const out = annotate(black(W, H), { topLeft: [text] });
    const { fontSize, margin } = annotationLayout(W, H, { topLeft: [text] });
    expect(fontSize).toBe(11);
    const baseline = margin + Math.round((font.ascender / font.unitsPerEm) * fontSize);
    const R = 40; // the text's rows; below them the image stays black
    for (let i = R * W; i < W * H; i++) if (out.data[i] !== 0) throw new Error(`ink at row ${Math.floor(i / W)}`);
    const ref = referenceCoverage(text, margin, baseline, fontSize, W, R);
    let sum = 0, far = 0, ink = 0;
    for (let i = 0; i < W * R; i++) {
      const d = Math.abs(out.data[i] - ref[i] * 255);
      sum += d;
      if (d > 16) far++;
      if (ref[i] > 0.5) ink++;
    }
    expect(ink).toBeGreaterThan(300);
    // mean error summed over every pixel, per ink pixel, in grey levels; and no pixel far off
    report('annotation', `annotation legibility: ${ink} ink pixels, mean error ${(sum / ink).toFixed(2)} grey levels`);
    expect(sum / ink).toBeLessThan(2.5);
    expect(far).toBe(0);
    // a text that is not the one drawn is far away from it
    const other = referenceCoverage('Hamburgefonstiv 9876543210 (W: 400 C: 40)', margin, baseline, fontSize, W, R);
    let diff = 0;
    for (let i = 0; i < W * R; i++) diff += Math.abs(out.data[i] - other[i] * 255);
    expect(diff / ink).toBeGreaterThan(5 * (sum / ink));
  });

  test('one ink column run per glyph, where the font puts it, at large and small sizes', () => {
    for (const H of [200, 2000]) {
      const text = '1 2 3 4 5 6 7 8';
      const W = 4000;
      const out = annotate(black(W, H), { topLeft: [text] });
      const { fontSize, margin } = annotationLayout(W, H, { topLeft: [text] });
      const cols: boolean[] = [];
      for (let x = 0; x < W; x++) { let any = false; for (let y = 0; y < H && !any; y++) any = out.data[y * W + x] > 127; cols.push(any); }
      const runs: Array<[number, number]> = [];
      cols.forEach((on, x) => { if (on && !cols[x - 1]) runs.push([x, x]); if (on) runs[runs.length - 1][1] = x; });
      expect(runs.length).toBe(8);
      // each run lies within the glyph's bounding box as the font gives it
      let pen = margin;
      let i = 0;
      for (const ch of text) {
        const g = font.charToGlyph(ch);
        if (ch !== ' ') {
          const bb = g.getBoundingBox();
          const s = fontSize / font.unitsPerEm;
          expect(Math.abs(runs[i][0] - (pen + bb.x1 * s))).toBeLessThanOrEqual(1.5);
          expect(Math.abs(runs[i][1] + 1 - (pen + bb.x2 * s))).toBeLessThanOrEqual(1.5);
          i++;
        }
        pen += (g.advanceWidth * fontSize) / font.unitsPerEm;
      }
    }
  });

  test('a line wider than the image ends in an ellipsis inside the margin', () => {
    const W = 120, H = 128;
    const out = annotate(black(W, H), { topLeft: ['CompressedSamples, CT1 and more'], topRight: [] });
    const { margin } = annotationLayout(W, H, {});
    let maxX = -1;
    for (let i = 0; i < W * H; i++) if (out.data[i] > 0 && i % W > maxX) maxX = i % W;
    expect(maxX).toBeGreaterThan(W / 2);
    expect(maxX).toBeLessThanOrEqual(W - margin);
  });

  test('annotate leaves the input untouched, keeps channels, and returns an image without lines as is', () => {
    const grey = black(64, 64);
    expect(annotate(grey, {})).toBe(grey);
    expect(annotate(grey, { topLeft: ['  ', '\u0000'] })).toBe(grey);
    const g = annotate(grey, { topLeft: ['X'] });
    expect(g.channels).toBe(1);
    expect(grey.data.every((v) => v === 0)).toBe(true);
    const rgb = annotate(black(64, 64, 3), { bottomRight: ['X'] });
    expect(rgb.channels).toBe(3);
    expect(rgb.data.length).toBe(64 * 64 * 3);
    // white text: R = G = B everywhere
    for (let i = 0; i < 64 * 64; i++) expect(rgb.data[3 * i] === rgb.data[3 * i + 1] && rgb.data[3 * i] === rgb.data[3 * i + 2]).toBe(true);
    // text taller than a tiny image is clipped, not an error
    expect(() => annotate(black(3, 3), { topLeft: ['Wide text'], bottomRight: ['more'] })).not.toThrow();
  });
});

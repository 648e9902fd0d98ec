/**
 * Rendering benchmark: renderFrame + encodeImage, median of N runs, for
 *  - a 512x512 CT frame (test/fixtures/corpus/dicom/693_UNCR.dcm), and
 *  - a 1024x1024 16-bit synthetic MR-like frame made here (smooth anatomy-like blobs + noise).
 * Reports the PNG filter/deflate settings tried (time and size), the chosen PNG_SETTINGS against pngjs's
 * defaults as the baseline (ratio), JPEG at quality 90, and the table cache's effect.
 * Run: npx tsc -p . --outDir .out/render && node .out/render/bench/render.js [N]
 */
import * as fs from 'fs';
import * as path from 'path';
import { describeImage, encodeImage, initRender, renderFrame, PNG_SETTINGS } from '../render';
import { encodePng, encodePngWithPngjs, type PngSettings } from '../render/encode';
import { tableCache } from '../render/render';
import { parseDicom } from '../dicom/parse';
import type { DecodedFrame, ImageDescription, RenderedImage } from '../render/types';

const N = Number(process.argv[2] ?? 25);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function time(fn: () => unknown, n = N): number {
  fn(); // warm-up
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(t);
}

function ctFrame(): { desc: ImageDescription; decoded: DecodedFrame } {
  const file = path.join(process.cwd(), 'test/fixtures/corpus/dicom/693_UNCR.dcm');
  const buf = fs.readFileSync(file);
  const p = parseDicom(buf);
  const desc = describeImage(p.dataset)!;
  const f = desc.frame;
  const px = p.pixelData!;
  const n = f.rows * f.columns;
  const pixels = f.pixelRepresentation ? new Int16Array(n) : new Uint16Array(n);
  for (let i = 0; i < n; i++) pixels[i] = f.pixelRepresentation ? buf.readInt16LE(px.offset + 2 * i) : buf.readUInt16LE(px.offset + 2 * i);
  return { desc, decoded: { pixels, rows: f.rows, columns: f.columns, samplesPerPixel: 1, photometricInterpretation: f.photometricInterpretation, bitsStored: f.bitsStored, signed: !!f.pixelRepresentation } };
}

function mrFrame(): { desc: ImageDescription; decoded: DecodedFrame } {
  const size = 1024;
  const pixels = new Uint16Array(size * size);
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = (x - 512) / 400, dy = (y - 512) / 460;
      const r2 = dx * dx + dy * dy;
      let v = r2 < 1 ? 1800 + 900 * Math.cos(6 * dx) * Math.sin(5 * dy) : 20;
      if (r2 < 1 && r2 > 0.85) v = 3500; // bright rim like fat
      pixels[y * size + x] = Math.max(0, Math.min(65535, Math.round(v + 60 * (rand() - 0.5))));
    }
  }
  const desc = describeImage({
    '00080018': { vr: 'UI', Value: ['2.25.1'] },
    '00080060': { vr: 'CS', Value: ['MR'] },
    '00280002': { vr: 'US', Value: [1] }, '00280004': { vr: 'CS', Value: ['MONOCHROME2'] },
    '00280010': { vr: 'US', Value: [size] }, '00280011': { vr: 'US', Value: [size] },
    '00280100': { vr: 'US', Value: [16] }, '00280101': { vr: 'US', Value: [16] }, '00280102': { vr: 'US', Value: [15] },
    '00280103': { vr: 'US', Value: [0] },
    '00281050': { vr: 'DS', Value: [1800] }, '00281051': { vr: 'DS', Value: [3600] },
  })!;
  return { desc, decoded: { pixels, rows: size, columns: size, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', bitsStored: 16, signed: false } };
}

// strategy 3 = Z_RLE (pngjs's default), 0 = Z_DEFAULT_STRATEGY
const PNG_TRIALS: Array<{ name: string; s: PngSettings }> = [
  { name: 'pngjs default (adaptive, 9, RLE)', s: { filterType: -1, deflateLevel: 9, deflateStrategy: 3 } },
  { name: 'none (0), 3, RLE', s: { filterType: 0, deflateLevel: 3, deflateStrategy: 3 } },
  { name: 'sub (1), 3, RLE', s: { filterType: 1, deflateLevel: 3, deflateStrategy: 3 } },
  { name: 'up (2), 3, RLE', s: { filterType: 2, deflateLevel: 3, deflateStrategy: 3 } },
  { name: 'paeth (4), 3, RLE', s: { filterType: 4, deflateLevel: 3, deflateStrategy: 3 } },
  { name: 'up (2), 1, default strategy', s: { filterType: 2, deflateLevel: 1, deflateStrategy: 0 } },
  { name: 'up (2), 6, default strategy', s: { filterType: 2, deflateLevel: 6, deflateStrategy: 0 } },
  { name: 'up (2), 9, default strategy', s: { filterType: 2, deflateLevel: 9, deflateStrategy: 0 } },
];

async function main(): Promise<void> {
  await initRender();
  console.log(`render bench, median of ${N} runs (ms), node ${process.version}`);
  for (const [label, make] of [['CT 512x512 (693_UNCR)', ctFrame], ['MR 1024x1024 16-bit synthetic', mrFrame]] as const) {
    const { desc, decoded } = make();
    console.log(`\n== ${label}`);
    tableCache.clear();
    const cold = time(() => { tableCache.clear(); renderFrame(desc, 1, decoded, {}); });
    const warm = time(() => renderFrame(desc, 1, decoded, {}));
    console.log(`renderFrame, table built each time: ${cold.toFixed(2)}   table cached: ${warm.toFixed(2)}   (x${(cold / warm).toFixed(2)})`);
    const vp = time(() => renderFrame(desc, 1, decoded, { viewport: { vw: 256, vh: 256 } }));
    console.log(`renderFrame + viewport 256x256 (area averaging): ${vp.toFixed(2)}`);
    const img: RenderedImage = renderFrame(desc, 1, decoded, {});
    console.log('PNG settings tried:            time     bytes');
    let base = 0;
    for (const t of PNG_TRIALS) {
      const ms = time(() => encodePngWithPngjs(img, t.s), Math.max(5, Math.floor(N / 2)));
      if (!base) base = ms;
      const bytes = encodePngWithPngjs(img, t.s).length;
      const chosen = t.s.filterType === PNG_SETTINGS.filterType && t.s.deflateLevel === PNG_SETTINGS.deflateLevel && t.s.deflateStrategy === PNG_SETTINGS.deflateStrategy ? '  <- PNG_SETTINGS' : '';
      console.log(`  ${t.name.padEnd(34)} ${ms.toFixed(2).padStart(7)} ${String(bytes).padStart(9)}  x${(base / ms).toFixed(2)} vs default${chosen}`);
    }
    const png = time(() => encodeImage(renderFrame(desc, 1, decoded, {}), 'image/png'));
    const jpg = time(() => encodeImage(renderFrame(desc, 1, decoded, {}), 'image/jpeg', { quality: 90 }));
    const jpgBytes = encodeImage(img, 'image/jpeg', { quality: 90 }).length;
    console.log(`renderFrame + encodeImage PNG: ${png.toFixed(2)}   JPEG q90: ${jpg.toFixed(2)} (${jpgBytes} bytes)`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

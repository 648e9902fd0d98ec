/**
 * The direct PNG writer (render/encode.ts encodePng) gives the very bytes pngjs writes with the same settings,
 * for grey and colour, odd shapes, aligned and unaligned input; and decodes back to the input (lossless).
 */
import * as crypto from 'crypto';
import { PNG } from 'pngjs';
import { encodePng, encodePngWithPngjs } from '../render/encode';

test.each([[512, 512, 1], [1024, 64, 1], [64, 64, 1], [7, 5, 1], [33, 9, 3], [64, 64, 3], [1, 1, 1], [511, 3, 1]])('%ix%ix%i', (w, h, c) => {
  for (const offset of [0, 1]) {
    const data = new Uint8Array(w * h * c + offset).subarray(offset);
    crypto.randomFillSync(data);
    const img = { width: w, height: h, channels: c as 1 | 3, data };
    const ours = encodePng(img);
    expect(ours.equals(encodePngWithPngjs(img))).toBe(true);
    const back = PNG.sync.read(ours);
    for (let i = 0; i < w * h; i++) for (let k = 0; k < c; k++) if (back.data[i * 4 + k] !== data[i * c + k]) throw new Error(`pixel ${i} differs`);
  }
});

/**
 * The PNG writers, checked on every bench run on random images of awkward shapes, grey and colour, aligned and
 * not: the JavaScript writer (render/encode.ts encodePngJs) must give the very bytes of pngjs with PNG_SETTINGS
 * (encodePngWithPngjs), and the writer the server uses (encodePng: the C addon when built) must decode to the
 * very pixels it was given.
 */
import * as crypto from 'crypto';
import { PNG } from 'pngjs';
import { encodePng, encodePngJs, encodePngWithPngjs } from '../../render/encode';
import { fastPng } from '../../render/native';

export function pngIdentity(): { ok: boolean; cases: number; failures: string[]; encoder: 'C addon' | 'JavaScript' } {
  const failures: string[] = [];
  let cases = 0;
  for (const [w, h, c] of [[512, 512, 1], [1024, 64, 1], [64, 64, 1], [7, 5, 1], [33, 9, 3], [64, 64, 3], [1, 1, 1], [511, 3, 1]]) {
    for (const offset of [0, 1]) {
      const data = new Uint8Array(w * h * c + offset).subarray(offset);
      crypto.randomFillSync(data);
      const img = { width: w, height: h, channels: c as 1 | 3, data };
      cases++;
      if (!encodePngWithPngjs(img).equals(encodePngJs(img))) failures.push(`${w}x${h}x${c}+${offset} (JavaScript writer's bytes)`);
      const back = PNG.sync.read(encodePng(img)).data;
      for (let i = 0; i < w * h * c; i++) {
        if (back[Math.floor(i / c) * 4 + (i % c)] !== data[i]) { failures.push(`${w}x${h}x${c}+${offset} (pixels)`); break; }
      }
    }
  }
  return { ok: failures.length === 0, cases, failures, encoder: fastPng ? 'C addon' : 'JavaScript' };
}

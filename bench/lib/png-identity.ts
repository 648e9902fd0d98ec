/**
 * The rendering library's direct PNG writer (render/encode.ts encodePng) must give the very bytes of pngjs with
 * PNG_SETTINGS (encodePngWithPngjs): checked on random images of awkward shapes,
 * grey and colour, aligned and not, on every bench run.
 */
import * as crypto from 'crypto';
import { encodePng, encodePngWithPngjs } from '../../render/encode';

export function pngIdentity(): { ok: boolean; cases: number; failures: string[] } {
  const failures: string[] = [];
  let cases = 0;
  for (const [w, h, c] of [[512, 512, 1], [1024, 64, 1], [64, 64, 1], [7, 5, 1], [33, 9, 3], [64, 64, 3], [1, 1, 1], [511, 3, 1]]) {
    for (const offset of [0, 1]) {
      const data = new Uint8Array(w * h * c + offset).subarray(offset);
      crypto.randomFillSync(data);
      cases++;
      if (!encodePngWithPngjs({ width: w, height: h, channels: c as 1 | 3, data }).equals(encodePng({ width: w, height: h, channels: c as 1 | 3, data }))) failures.push(`${w}x${h}x${c}+${offset}`);
    }
  }
  return { ok: failures.length === 0, cases, failures };
}

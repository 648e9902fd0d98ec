/**
 * The rendering library's optional C addon (render/native/fastpng.c, built by scripts/build-native.js): the grey
 * table lookup, the viewport's resampling, and a PNG encoder that writes zlib's Z_RLE kind of stream itself, 2-3x faster than zlib plus our
 * JavaScript filter. Absent (no compiler where it was installed) or turned off with RENDER_NATIVE=0, the
 * JavaScript path renders the same images.
 */
import * as fs from 'fs';
import * as path from 'path';

export interface FastPng {
  /**
   * A PNG of a grey (1) or RGB (3) image, every row filtered with "up", one IDAT; `depth` 8 (default) or 16, whose
   * samples come big endian (PNG byte order).
   */
  encodePng(data: Uint8Array, width: number, height: number, channels: 1 | 3, depth?: 8 | 16): Buffer;
  /** out[i] = table[words[i]] for i < count; the table has 256 (Uint8Array words) or 65536 (Uint16Array) entries. */
  lookup(words: Uint8Array | Uint16Array, table: Uint8Array, out: Uint8Array, count: number): void;
  /**
   * The viewport's separable resampling (render/viewport.ts resample): the same arithmetic in the same order, so the
   * same bytes. Weights: per output index, source indices and weights; wy's indices are rows y0 .. y0+rows-1.
   */
  resample(data: Uint8Array, width: number, height: number, channels: 1 | 3, wx: NativeAxis, wy: NativeAxis,
    y0: number, rows: number, out: Uint8Array, outWidth: number, outHeight: number): void;
}

export interface NativeAxis { start: Int32Array; count: Int32Array; index: Int32Array; weight: Float32Array }

const ADDON = path.join('render', 'native', 'build', 'Release', 'fastpng.node');

function load(): FastPng | undefined {
  if (process.env.RENDER_NATIVE === '0') return undefined;
  // From dist/render (or any build folder below the project root) up to the project root.
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const file = path.join(dir, ADDON);
    if (!fs.existsSync(file)) continue;
    try {
      return require(file) as FastPng;
    } catch {
      return undefined; // built for another Node ABI or platform: the JavaScript path
    }
  }
  return undefined;
}

export const fastPng: FastPng | undefined = load();

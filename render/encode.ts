/**
 * Encoding rendered pixels into the PS3.18 8.7.4 rendered media types.
 * - image/png: 8-bit; grey stays colour type 0, colour is type 2; lossless always; the "up" filter on every row.
 *   Written by the C addon (render/native.ts) when it is built, else by encodePngJs on zlib with PNG_SETTINGS,
 *   chosen by measurement (bench/render.ts).
 * - image/jpeg: libjpeg-turbo's encoder in dcmjs-codecs (see encodeJpeg); quality 1..100, default 90.
 *   Needs initRender() once.
 * - image/gif: gif.ts (grey exact through a grey palette; colour exact up to 256 colours, else a fixed 6x7x6 palette).
 */
import { PNG } from 'pngjs';
import * as zlib from 'zlib';
import { RenderError } from './errors';
import { initCodecs } from './codecs';
import { dcmjsCodecsLibrary, dcmjsCodecsFailed } from './codecs/wasm';
import type { RenderedImage, RenderedImage16 } from './types';
import { LITTLE_ENDIAN_HOST } from './codecs/samples';
import { fastPng } from './native';
import { encodeGif } from './gif';

export type RenderedMediaType = 'image/png' | 'image/jpeg' | 'image/gif';

/**
 * PNG settings measured on a 512x512 CT and a 1024x1024 MR frame (bench/render.ts): the "up" filter (2)
 * with zlib's Z_RLE strategy (3, pngjs's default strategy, which makes the level nearly irrelevant) is
 * 2.1-3.8x faster than pngjs's default adaptive filter at 2-3% more bytes; Z_DEFAULT_STRATEGY at level
 * 6 saves up to 16% (MR) but is 2.5-3.5x slower, and level 9 is 4-18x slower.
 */
export const PNG_SETTINGS: PngSettings = { filterType: 2, deflateLevel: 3, deflateStrategy: 3 };

export interface PngSettings { filterType: number; deflateLevel: number; deflateStrategy?: number }

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngChunk(type: string, data: Uint8Array): Buffer[] {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))) >>> 0, 0); // CRC over type and data (PNG 5.3)
  return [head, Buffer.from(data.buffer, data.byteOffset, data.byteLength), crc];
}

/**
 * PNG (8-bit grey or truecolour) with the "up" filter on every row, written directly: the same bytes as pngjs
 * with PNG_SETTINGS (encodePngWithPngjs; test/png-writer.test.ts checks the identity), 1.35-1.6x faster, because
 * pngjs's per-byte filter dispatch and JavaScript CRC were 40% of its encode time on a 512x512 CT
 * (bench/profile.ts). Lossless always.
 */
/**
 * The filtered rows are only read by deflateSync, within the call: one buffer per thread serves every call,
 * instead of a new one per image that lingers, unreferenced, until the isolate next collects (V8 lets up to
 * ~64 MB of such external memory pile up first; it was a third of a render worker's memory).
 */
let rawScratch: Buffer | undefined;
function scratch(bytes: number): Buffer {
  if (bytes > 64 * 1024 * 1024) return Buffer.allocUnsafe(bytes); // a huge image: not kept
  if (!rawScratch || rawScratch.length < bytes) rawScratch = Buffer.allocUnsafe(Math.max(bytes, 1 << 20));
  return rawScratch.subarray(0, bytes);
}

/**
 * The PNG of an 8-bit grey or RGB image: the C addon when it is built (render/native.ts; the same image, a
 * stream it writes itself, 2-3x faster), else the JavaScript writer below.
 */
export function encodePng(img: RenderedImage): Buffer {
  if (fastPng) return fastPng.encodePng(img.data, img.width, img.height, img.channels as 1 | 3);
  return encodePngJs(img);
}

/**
 * A 16-bit grey PNG (bitdepth=16): the samples put in PNG's big-endian order, then the same writer as 8-bit PNG
 * (the C addon or encodePngJs), since the "up" filter works on bytes whatever the depth (PNG 9.2).
 */
export function encodePng16(img: RenderedImage16): Buffer {
  const { width, height, data } = img;
  const be = Buffer.allocUnsafe(width * height * 2);
  be.set(new Uint8Array(data.buffer, data.byteOffset, width * height * 2));
  if (LITTLE_ENDIAN_HOST) be.swap16();
  if (fastPng) return fastPng.encodePng(be, width, height, 1, 16);
  return encodePngJs({ width, height, channels: 1, data: be }, 16);
}

export function encodePngJs(img: RenderedImage, depth: 8 | 16 = 8): Buffer {
  const { width, height, channels, data } = img;
  const stride = width * channels * (depth / 8);
  const raw = scratch((stride + 1) * height);
  // PNG 9.2 filter type 2 on every row: Up(x) = Raw(x) - Prior(x) modulo 256; the first row has no prior row.
  raw[0] = 2;
  raw.set(data.subarray(0, stride), 1);
  if (stride % 4 === 0 && data.byteOffset % 4 === 0) {
    // Four bytes per step (SWAR): per-byte subtraction without borrows across bytes, computed in a row buffer
    // aligned for 32-bit reads and then copied after the row's filter byte. 3.5x faster than a byte loop.
    const words = stride >>> 2;
    const w = new Uint32Array(data.buffer, data.byteOffset, words * height);
    const row = new Uint32Array(words);
    const rowBytes = new Uint8Array(row.buffer);
    const H = 0x80808080 | 0;
    for (let y = 1, s = words, o = stride + 1; y < height; y++, s += words, o += stride + 1) {
      for (let x = 0, p = s - words; x < words; x++) {
        const a = w[s + x], b = w[p + x];
        row[x] = ((a | H) - (b & ~H)) ^ ((a ^ ~b) & H);
      }
      raw[o] = 2;
      raw.set(rowBytes, o + 1);
    }
  } else {
    for (let y = 1, s = stride, o = stride + 1; y < height; y++, s += stride, o += stride + 1) {
      raw[o] = 2;
      for (let x = 0, p = s - stride, d = o + 1; x < stride; x++) raw[d + x] = data[s + x] - data[p + x];
    }
  }
  const idat = zlib.deflateSync(raw, { level: PNG_SETTINGS.deflateLevel, strategy: PNG_SETTINGS.deflateStrategy ?? zlib.constants.Z_RLE });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = depth; ihdr[9] = channels === 1 ? 0 : 2; // bit depth 8 or 16; grey or truecolour; deflate, adaptive filtering, no interlace
  return Buffer.concat([PNG_SIGNATURE, ...pngChunk('IHDR', ihdr), ...pngChunk('IDAT', idat), ...pngChunk('IEND', new Uint8Array(0))]);
}

/** The same PNG through pngjs: the reference the direct writer is checked against, and other settings for benches. */
export function encodePngWithPngjs(img: RenderedImage, settings: PngSettings = PNG_SETTINGS): Buffer {
  const colorType = img.channels === 1 ? 0 : 2;
  const png = new PNG({
    width: img.width,
    height: img.height,
    bitDepth: 8,
    colorType,
    inputColorType: colorType,
    inputHasAlpha: false,
    filterType: settings.filterType,
    deflateLevel: settings.deflateLevel,
    deflateStrategy: settings.deflateStrategy ?? 3, // Z_RLE
  } as any);
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return PNG.sync.write(png, {
    colorType,
    inputColorType: colorType,
    inputHasAlpha: false,
    bitDepth: 8,
    filterType: settings.filterType,
    deflateLevel: settings.deflateLevel,
    deflateStrategy: settings.deflateStrategy ?? 3,
  } as any);
}

/* ---------------------------------------------------------------------------------------------- */

/**
 * JPEG: libjpeg-turbo in dcmjs-codecs (the wasm our codec layer already loads for 12-bit JPEG). The encoder of
 * @cornerstonejs/codec-libjpeg-turbo-8bit was used first and dropped: its output buffer is the size of the raw
 * image, so any JPEG larger than its input (images under ~32x32, thin strips, noise at high quality) wrote out
 * of bounds and corrupted the wasm heap (found by fuzzing). dcmjs-codecs sizes its output properly and is as
 * fast (6 ms for a 512x512 grey frame at quality 90 on this machine).
 */
export function initRender(): Promise<void> {
  return initCodecs();
}

export function encodeJpeg(img: RenderedImage, quality = 90): Buffer {
  const { Context, NativeCodecs } = dcmjsCodecsLibrary();
  const context = new Context({
    width: img.width, height: img.height, bitsAllocated: 8, bitsStored: 8, samplesPerPixel: img.channels,
    pixelRepresentation: 0, planarConfiguration: 0, photometricInterpretation: img.channels === 3 ? 'RGB' : 'MONOCHROME2',
    decodedBuffer: img.data,
  });
  try {
    const out: Uint8Array = NativeCodecs.encodeJpeg(context, { lossy: true, quality }).getEncodedBuffer();
    return Buffer.from(out); // copy out of the wasm heap
  } catch {
    dcmjsCodecsFailed();
    throw new RenderError('BAD_PIXELS', 'JPEG encoding failed', 500);
  }
}

export function encodeImage(img: RenderedImage, mediaType: RenderedMediaType, opts: { quality?: number } = {}): Buffer {
  if (img.data.length !== img.width * img.height * img.channels) throw new RenderError('BAD_PIXELS', 'image data size does not match its dimensions', 500);
  switch (mediaType) {
    case 'image/png':
      return encodePng(img);
    case 'image/jpeg': {
      const q = opts.quality ?? 90;
      if (!Number.isInteger(q) || q < 1 || q > 100) throw new RenderError('BAD_OPTION', 'quality must be an integer 1..100');
      // ITU T.81 B.2.2 allows up to 65535 lines and columns, libjpeg 65500: beyond that only PNG can carry it.
      if (img.width > 65500 || img.height > 65500) throw new RenderError('UNSUPPORTED_MEDIA_TYPE', 'image too large for JPEG (over 65500 pixels a side): ask for image/png or a viewport');
      return encodeJpeg(img, q);
    }
    case 'image/gif':
      if (img.width > 65535 || img.height > 65535) throw new RenderError('UNSUPPORTED_MEDIA_TYPE', 'image too large for GIF (over 65535 pixels a side): ask for image/png or a viewport');
      return encodeGif(img);
    default:
      throw new RenderError('UNSUPPORTED_MEDIA_TYPE', `cannot render ${String(mediaType)}`);
  }
}

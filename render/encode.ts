/**
 * Encoding rendered pixels into the PS3.18 8.7.4 rendered media types.
 * - image/png: pngjs, 8-bit; grey stays colour type 0, colour is type 2; lossless always. The filter type
 *   and deflate level were chosen by measurement (bench/render.ts): see PNG_SETTINGS.
 * - image/jpeg: libjpeg-turbo's encoder in dcmjs-codecs (see encodeJpeg); quality 1..100, default 90.
 *   Needs initRender() once.
 * - image/gif: not produced (optional in PS3.18; colour would need quantisation): UNSUPPORTED_MEDIA_TYPE.
 */
import { PNG } from 'pngjs';
import { RenderError } from './errors';
import { initCodecs } from './codecs';
import { dcmjsCodecsLibrary, dcmjsCodecsFailed } from './codecs/wasm';
import type { RenderedImage } from './types';

export type RenderedMediaType = 'image/png' | 'image/jpeg' | 'image/gif';

/**
 * PNG settings measured on a 512x512 CT and a 1024x1024 MR frame (bench/render.ts): the "up" filter (2)
 * with zlib's Z_RLE strategy (3, pngjs's default strategy, which makes the level nearly irrelevant) is
 * 2.1-3.8x faster than pngjs's default adaptive filter at 2-3% more bytes; Z_DEFAULT_STRATEGY at level
 * 6 saves up to 16% (MR) but is 2.5-3.5x slower, and level 9 is 4-18x slower.
 */
export const PNG_SETTINGS: PngSettings = { filterType: 2, deflateLevel: 3, deflateStrategy: 3 };

export interface PngSettings { filterType: number; deflateLevel: number; deflateStrategy?: number }

export function encodePng(img: RenderedImage, settings: PngSettings = PNG_SETTINGS): Buffer {
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
      return encodeJpeg(img, q);
    }
    default:
      throw new RenderError('UNSUPPORTED_MEDIA_TYPE', `cannot render ${String(mediaType)}`);
  }
}

/**
 * One rendering task: decode a frame, run the pipeline, encode. Runs in a worker thread (piscina) or, with
 * RENDER_WORKERS=0, on the main thread. Errors cross the thread boundary as { status, reason }; an image
 * crosses it by transfer, not copy.
 */
import * as zlib from 'zlib';
import { move } from 'piscina';
import { decodeFrame, initCodecs, CodecError } from '../render/codecs';
import { renderFrame, encodeImage, initRender, RenderError, annotate, annotationText, appliedVoi } from '../render';
import { PNG_SETTINGS } from '../render';
import type { ImageDescription, RenderOptions, RenderedMediaType } from '../render';

export interface RenderTask {
  transferSyntaxUID: string;
  data: Uint8Array;
  bitOffset?: number;
  desc: ImageDescription;
  frameNumber: number;
  options: RenderOptions;
  mediaType: RenderedMediaType;
  quality?: number;
  /** PS3.18 8.3.5.1.2 annotation: the kinds asked for and the instance's DICOM JSON to take the text from */
  annotation?: { kinds: string[]; metadata: string };
}

export type RenderResult = { ok: true; body: Uint8Array } | { ok: false; status: number; reason: string };

/** True when `b` is the whole of its ArrayBuffer, so transferring that buffer moves `b` and nothing else. */
export const ownsBuffer = (b: Uint8Array) => b.byteOffset === 0 && b.byteLength === b.buffer.byteLength;

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
 * PNG with the "up" filter on every row, written directly: the same bytes as render/encode.ts encodePng with
 * PNG_SETTINGS (same filter bytes, zlib level and strategy, one IDAT; bench/run.ts checks the identity on every
 * run), 1.35-1.6x faster, because pngjs's per-byte filter dispatch and JavaScript CRC were 40% of its encode
 * time on a 512x512 CT (bench/profile.ts). It belongs in render/encode.ts; it lives here until that file's owner
 * takes it.
 */
export function encodePngUp(width: number, height: number, channels: number, data: Uint8Array): Buffer {
  const stride = width * channels;
  const raw = Buffer.allocUnsafe((stride + 1) * height);
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
  ihdr[8] = 8; ihdr[9] = channels === 1 ? 0 : 2; // bit depth 8; grey or truecolour; deflate, adaptive filtering, no interlace
  return Buffer.concat([PNG_SIGNATURE, ...pngChunk('IHDR', ihdr), ...pngChunk('IDAT', idat), ...pngChunk('IEND', new Uint8Array(0))]);
}

/** image/png through encodePngUp while PNG_SETTINGS asks for the up filter; anything else through encodeImage. */
export function encodeRendered(image: { width: number; height: number; channels: number; data: Uint8Array }, mediaType: RenderedMediaType, quality?: number): Uint8Array {
  if (mediaType === 'image/png' && PNG_SETTINGS.filterType === 2 && (image.channels === 1 || image.channels === 3)
    && image.data.length === image.width * image.height * image.channels) {
    return encodePngUp(image.width, image.height, image.channels, image.data);
  }
  return encodeImage(image as any, mediaType, { quality });
}

let ready: Promise<unknown> | undefined;

export async function renderTask(t: RenderTask): Promise<RenderResult> {
  if (!ready) ready = Promise.all([initCodecs(), initRender()]);
  await ready;
  try {
    const decoded = decodeFrame(t.transferSyntaxUID, { data: t.data, bitOffset: t.bitOffset }, t.desc.frame);
    let image = renderFrame(t.desc, t.frameNumber, decoded, t.options);
    if (t.annotation && t.annotation.kinds.length > 0) {
      const voi = appliedVoi(t.desc, t.frameNumber, decoded, t.options);
      const lines = annotationText(JSON.parse(t.annotation.metadata), t.annotation.kinds,
        { voi, frameNumber: t.frameNumber, numberOfFrames: t.desc.numberOfFrames });
      image = annotate(image, lines);
    }
    const body = encodeRendered(image, t.mediaType, t.quality);
    return { ok: true, body };
  } catch (e) {
    if (e instanceof RenderError) return { ok: false, status: e.status, reason: e.message };
    if (e instanceof CodecError) {
      const status = e.code === 'UNSUPPORTED_TRANSFER_SYNTAX' || e.code === 'UNSUPPORTED_PIXEL_FORMAT' ? 406 : 422;
      return { ok: false, status, reason: `cannot decode this frame: ${e.reason}` };
    }
    return { ok: false, status: 500, reason: 'rendering failed' };
  }
}

/** piscina calls the default export: the image goes back by transfer when it owns its buffer. */
export default async function renderInWorker(t: RenderTask): Promise<RenderResult | ReturnType<typeof move>> {
  const r = await renderTask(t);
  return r.ok && ownsBuffer(r.body) ? move(r.body) : r;
}

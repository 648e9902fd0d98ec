/**
 * RLE Lossless encoder (PS3.5 Annex G): one segment per byte of each sample, most significant byte first
 * (G.2), each segment PackBits-compressed (G.3.1) and padded to even length, after a 64-byte header of the
 * segment count and offsets (G.5).
 */
import { CodecError } from './errors';

/**
 * `samples`: the frame's samples interleaved (pixel by pixel), as the bit patterns to store in `bytesPerSample`
 * bytes each (the caller masks signed values to their width).
 */
export function encodeRle(samples: ArrayLike<number>, pixelCount: number, samplesPerPixel: number, bytesPerSample: 1 | 2 | 4): Uint8Array {
  const segments = samplesPerPixel * bytesPerSample;
  if (segments > 15) throw new CodecError('UNSUPPORTED_PIXEL_FORMAT', 'RLE holds at most 15 segments');
  const plane = new Uint8Array(pixelCount);
  const encoded: Uint8Array[] = [];
  for (let s = 0; s < samplesPerPixel; s++) {
    for (let b = bytesPerSample - 1; b >= 0; b--) {
      const shift = b * 8;
      for (let i = 0, j = s; i < pixelCount; i++, j += samplesPerPixel) plane[i] = (samples[j] >>> shift) & 0xff;
      encoded.push(packBits(plane));
    }
  }
  let total = 64;
  for (const e of encoded) total += e.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, segments, true);
  let at = 64;
  encoded.forEach((e, i) => { view.setUint32(4 + i * 4, at, true); out.set(e, at); at += e.length; });
  return out;
}

/** PackBits (G.3.1): runs of 2 to 128 equal bytes as (1 - n, byte), literals of 1 to 128 bytes as (n - 1, bytes). */
export function packBits(src: Uint8Array): Uint8Array {
  const n = src.length;
  // Worst case: one header byte per 128 literals, plus an even-length pad.
  const out = new Uint8Array(n + Math.ceil(n / 128) + 2);
  let o = 0;
  let i = 0;
  while (i < n) {
    // Length of the run starting at i.
    let run = 1;
    while (i + run < n && run < 128 && src[i + run] === src[i]) run++;
    if (run >= 2) {
      out[o++] = (257 - run) & 0xff; // -(run - 1) as a signed byte
      out[o++] = src[i];
      i += run;
      continue;
    }
    // Literals until a run of at least 3 starts (a run of 2 inside literals costs as much as it saves).
    const start = i;
    i++;
    while (i < n && i - start < 128) {
      if (i + 2 < n && src[i] === src[i + 1] && src[i] === src[i + 2]) break;
      i++;
    }
    const len = i - start;
    out[o++] = len - 1;
    out.set(src.subarray(start, i), o);
    o += len;
  }
  if (o % 2 === 1) out[o++] = 0; // segments are padded to even length (G.5); a 0 here is never read as a header
  return out.subarray(0, o);
}

/**
 * Overlay planes (PS3.3 C.9.2) burned into the 8-bit output after the VOI and presentation steps, as
 * DCMTK's default display shows them (dimoopxt.h overlay()):
 * - Graphic ('G') overlays replace the pixel with the foreground value (white by default);
 * - ROI ('R') overlays keep pixels inside the region and darken those outside it (DCMTK shifts them
 *   right by half the output bit depth, i.e. >> 4 for 8-bit output);
 * - Overlay Origin (60xx,0050) is 1-based (row, column) and may place the plane partly off the image;
 * - multi-frame overlays (C.9.2.1.1): overlay frame k applies to image frame Image Frame Origin + k, for
 *   Number of Frames in Overlay frames; other image frames show nothing of that plane.
 */
import type { OverlayDescription } from './types';

interface DecodedOverlay { bits: Uint8Array }
const decodedCache = new WeakMap<OverlayDescription, DecodedOverlay>();

function overlayBits(o: OverlayDescription): Uint8Array | undefined {
  if (!o.data) return undefined;
  let d = decodedCache.get(o);
  if (!d) {
    d = { bits: Buffer.from(o.data, 'base64') };
    decodedCache.set(o, d);
  }
  return d.bits;
}

/**
 * Draw the visible planes of `frameNumber` (1-based) into `img` (channels 1 or 3, width x height).
 * colour is [r,g,b]; for 1-channel images only colour[0] is used (callers pass grey when channels is 1).
 */
export function burnOverlays(
  overlays: OverlayDescription[], frameNumber: number, img: Uint8Array, width: number, height: number,
  channels: 1 | 3, colour: [number, number, number],
): void {
  for (const o of overlays) {
    const bits = overlayBits(o);
    if (!bits) continue; // embedded overlays: their bits are not in the decoded frame
    const k = frameNumber - o.imageFrameOrigin;
    if (k < 0 || k >= o.numberOfFrames) continue;
    const planeSize = o.rows * o.columns;
    const frameBit = k * planeSize;
    if ((frameBit + planeSize) > bits.length * 8) continue; // truncated Overlay Data: draw nothing
    const top = o.originRow - 1;
    const left = o.originColumn - 1;
    const y0 = Math.max(0, top), y1 = Math.min(height, top + o.rows);
    const x0 = Math.max(0, left), x1 = Math.min(width, left + o.columns);
    for (let y = y0; y < y1; y++) {
      let bit = frameBit + (y - top) * o.columns + (x0 - left);
      let p = (y * width + x0) * channels;
      for (let x = x0; x < x1; x++, bit++, p += channels) {
        // Overlay Data is OW, little endian: bit n is bit (n % 8) of byte (n / 8)
        const on = (bits[bit >> 3] >> (bit & 7)) & 1;
        if (o.type === 'G') {
          if (on) {
            img[p] = colour[0];
            if (channels === 3) { img[p + 1] = colour[1]; img[p + 2] = colour[2]; }
          }
        } else if (!on) {
          img[p] >>= 4;
          if (channels === 3) { img[p + 1] >>= 4; img[p + 2] >>= 4; }
        }
      }
    }
  }
}

/**
 * Overlay planes (PS3.3 C.9.2) burned into the 8-bit output after the VOI and presentation steps, as
 * DCMTK's default display shows them (dimoopxt.h overlay()):
 * - Graphic ('G') overlays replace the pixel with the foreground value (white by default);
 * - ROI ('R') overlays keep pixels inside the region and darken those outside it (DCMTK shifts them
 *   right by half the output bit depth, i.e. >> 4 for 8-bit output);
 * - Overlay Origin (60xx,0050) is 1-based (row, column) and may place the plane partly off the image;
 * - multi-frame overlays (C.9.2.1.1): overlay frame k applies to image frame Image Frame Origin + k, for
 *   Number of Frames in Overlay frames; other image frames show nothing of that plane.
 * - overlays in the unused bits of Pixel Data (retired, PS3.3-2004 C.9.2; OverlayDescription.embedded): the plane of
 *   image frame k is bit Overlay Bit Position of frame k's stored words (PixelWords), read as DCMTK does
 *   (diovpln.cc): Image Frame Origin is taken as 1 (Supplement 4), Overlay Bits Allocated as Bits Allocated
 *   (CP 87), a bit position past Bits Allocated as its last bit, and a plane whose bit lies among the stored bits,
 *   or whose frames would run past the end of Pixel Data, is not drawn.
 */
import type { OverlayDescription } from './types';

/** One frame's stored words, unmasked, in host order: where embedded overlays keep their planes. */
export interface PixelWords {
  words: Uint8Array | Uint16Array;
  bitsStored: number;
  highBit: number;
  /** Number of Frames of the image: a plane of more frames than that runs past Pixel Data */
  numberOfFrames: number;
}

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
 * colour is [r,g,b]; for 1-channel images only colour[0] is used (callers pass grey when channels is 1); for a 16-bit
 * image (Uint16Array) the colour is in 16-bit units.
 * `pixelWords`: the frame's stored words, for embedded overlays; without them those planes are skipped.
 */
export function burnOverlays(
  overlays: OverlayDescription[], frameNumber: number, img: Uint8Array | Uint16Array, width: number, height: number,
  channels: 1 | 3, colour: [number, number, number], pixelWords?: PixelWords,
): void {
  for (const o of overlays) {
    if (o.embedded) {
      const plane = pixelWords && embeddedPlane(o, frameNumber, pixelWords);
      if (plane) drawPlane(o, plane, 0, img, width, height, channels, colour);
      continue;
    }
    const bits = overlayBits(o);
    if (!bits) continue;
    const k = frameNumber - o.imageFrameOrigin;
    if (k < 0 || k >= o.numberOfFrames) continue;
    const planeSize = o.rows * o.columns;
    const frameBit = k * planeSize;
    if ((frameBit + planeSize) > bits.length * 8) continue; // truncated Overlay Data: draw nothing
    drawPlane(o, bits, frameBit, img, width, height, channels, colour);
  }
}

/**
 * The plane of an embedded overlay for image frame `frameNumber`, packed as Overlay Data is (bit n of byte n / 8),
 * or undefined when it draws nothing on this frame.
 */
function embeddedPlane(o: OverlayDescription, frameNumber: number, p: PixelWords): Uint8Array | undefined {
  const bitsAllocated = p.words instanceof Uint16Array ? 16 : 8;
  const bit = Math.min(o.bitPosition, bitsAllocated - 1);
  if (bit <= p.highBit && bit > p.highBit - p.bitsStored) return undefined; // a stored bit, not an overlay
  const k = frameNumber - 1;
  const planeSize = o.rows * o.columns;
  const frameSize = p.words.length;
  if (k >= o.numberOfFrames || o.numberOfFrames * planeSize > p.numberOfFrames * frameSize) return undefined;
  // DCMTK reads frame k's plane at word k * planeSize of Pixel Data: the frame's own words only when the plane
  // has the frame's size (and the first frame's words hold any smaller plane)
  if (planeSize > frameSize || (k > 0 && planeSize !== frameSize)) return undefined;
  const plane = new Uint8Array((planeSize + 7) >> 3);
  const words = p.words;
  for (let i = 0; i < planeSize; i++) plane[i >> 3] |= ((words[i] >> bit) & 1) << (i & 7);
  return plane;
}

function drawPlane(
  o: OverlayDescription, bits: Uint8Array, frameBit: number, img: Uint8Array | Uint16Array, width: number, height: number,
  channels: 1 | 3, colour: [number, number, number],
): void {
  const top = o.originRow - 1;
  const left = o.originColumn - 1;
  const y0 = Math.max(0, top), y1 = Math.min(height, top + o.rows);
  const x0 = Math.max(0, left), x1 = Math.min(width, left + o.columns);
  const roiShift = img instanceof Uint16Array ? 8 : 4; // half the output bit depth, as DCMTK
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
        img[p] >>= roiShift;
        if (channels === 3) { img[p + 1] >>= roiShift; img[p + 2] >>= roiShift; }
      }
    }
  }
}

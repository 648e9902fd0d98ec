/**
 * Overlays stored in the unused bits of Pixel Data (retired, PS3.3-2004 C.9.2: Overlay Bits Allocated = Bits
 * Allocated, Overlay Bit Position outside the stored bits, no Overlay Data), drawn as DCMTK draws them:
 * - describeImage records them and tells the decoders to keep the unmasked words (FrameInfo.embeddedOverlays);
 * - the decoders still give masked stored values: the overlay bits reach neither the grey values nor the window;
 * - rendering against DCMTK, exactly, for native little endian (packed words and unpacked), big endian and RLE,
 *   both frames (each frame's plane is in its own words), with and without overlays, through renderFrame and
 *   through the HTTP API (frames/N/rendered, ?overlays=false);
 * - the viewport scales the image with its overlays burnt in, as for Overlay Data.
 *
 * The fixtures in test/fixtures/overlay-bits were made with DCMTK 3.6.7 by its make-overlay-bits.py
 * (`cd test/fixtures/overlay-bits && python3 make-overlay-bits.py`), which runs
 *     dump2dcm +l 2000000 +te OVB-LE.dump OVB-LE.dcm
 *     dcmconv +tb OVB-LE.dcm OVB-BE.dcm
 *     dcmcrle OVB-LE.dcm OVB-RLE.dcm
 *     dcm2pnm +Wi 1 +on +Fa NAME.dcm NAME              (NAME.0.png, NAME.1.png: overlays shown)
 *     dcm2pnm +Wi 1 -O +on +Fa OVB-LE.dcm OVB-LE-O     (OVB-LE-O.0.png, OVB-LE-O.1.png: no overlays)
 * OVB-*: 2 frames of 32x24, Bits Stored 12, High Bit 11; bit 12 holds a Graphic plane (group 6000), bit 14 an ROI
 * plane at origin (3, 5) (group 6002), both with 2 frames in overlay; bits 13 and 15 hold noise; group 6004 names
 * bit 5, a stored bit, which DCMTK does not draw.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { describeImage } from '../render/describe';
import { renderFrame, encodeImage } from '../render';
import { storedValues } from '../render/render';
import { applyViewport, planViewport } from '../render/viewport';
import { parseDicom } from '../dicom/parse';
import { locateFrames } from '../dicom/frames';
import { decodeFrame, initCodecs } from '../render/codecs';
import { decodePng } from './helpers/png-compare';
import { serverWithFiles, binaryParser } from './helpers/server';
import type { DecodedFrame, ImageDescription, RenderedImage } from '../render/types';

const FIXTURES = path.join(process.cwd(), 'test/fixtures/overlay-bits');
const names = ['OVB-LE', 'OVB-BE', 'OVB-RLE'];
const frameNumbers = [1, 2];

interface Loaded { desc: ImageDescription; transferSyntaxUID: string; frames: Uint8Array[] }

function load(name: string): Loaded {
  const buf = fs.readFileSync(path.join(FIXTURES, `${name}.dcm`));
  const p = parseDicom(buf);
  const desc = describeImage(p.dataset)!;
  const f = desc.frame;
  const locs = locateFrames(p, { rows: f.rows, columns: f.columns, samplesPerPixel: 1, bitsAllocated: f.bitsAllocated, numberOfFrames: desc.numberOfFrames, photometricInterpretation: f.photometricInterpretation },
    (o, l) => buf.subarray(o, o + l));
  const frames = locs.map((loc) => new Uint8Array(Buffer.concat(loc.ranges.map((r) => buf.subarray(r.offset, r.offset + r.length)))));
  return { desc, transferSyntaxUID: p.transferSyntaxUID, frames };
}

function decode(l: Loaded, frameNumber: number, packed = false): DecodedFrame {
  return decodeFrame(l.transferSyntaxUID, { data: l.frames[frameNumber - 1] }, l.desc.frame, { packed });
}

/** The stored words of a frame, as the generator wrote them (from the little-endian file). */
function leWords(frameNumber: number): Uint16Array {
  const bytes = load('OVB-LE').frames[frameNumber - 1];
  return new Uint16Array(Uint8Array.from(bytes).buffer);
}

const reference = (file: string) => decodePng(fs.readFileSync(path.join(FIXTURES, file)));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

function expectImage(ours: RenderedImage, file: string): void {
  const ref = reference(file);
  expect(ref.channels).toBe(1);
  expect({ width: ours.width, height: ours.height, channels: ours.channels }).toEqual({ width: ref.width, height: ref.height, channels: 1 });
  expect(same(ours.data, ref.data)).toBe(true);
}

beforeAll(async () => { await initCodecs(); });

describe('describeImage: overlays in the unused bits of Pixel Data', () => {
  test.each(names)('%s: three embedded planes, and the decoders are told to keep the words', (name) => {
    const { desc } = load(name);
    expect(desc.frame.embeddedOverlays).toBe(true);
    expect(desc.overlays.map((o) => [o.group, o.type, o.bitPosition, o.numberOfFrames, o.embedded, o.data])).toEqual([
      [0x6000, 'G', 12, 2, true, undefined],
      [0x6002, 'R', 14, 2, true, undefined],
      [0x6004, 'G', 5, 1, true, undefined],
    ]);
  });
});

describe('the overlay bits do not reach the grey values', () => {
  const cases = names.flatMap((name) => frameNumbers.flatMap((n) => [[name, n, false], [name, n, true]] as const));
  test.each(cases)('%s frame %d (packed %s): stored values are the words masked to Bits Stored', (name, frameNumber, packed) => {
    const words = leWords(frameNumber);
    // the fixture does set bits 12..15: otherwise this test would prove nothing
    expect(words.some((w) => w & 0x1000) && words.some((w) => w & 0x4000) && words.some((w) => w & 0xa000)).toBe(true);
    const stored = storedValues(decode(load(name), frameNumber, packed));
    expect(Array.from(stored)).toEqual(Array.from(words, (w) => w & 0x0fff));
  });

  test.each(names.flatMap((name) => frameNumbers.map((n) => [name, n] as const)))('%s frame %d: overlays=false is DCMTK -O exactly', (name, frameNumber) => {
    const l = load(name);
    for (const packed of [false, true]) {
      expectImage(renderFrame(l.desc, frameNumber, decode(l, frameNumber, packed), { overlays: false }), `OVB-LE-O.${frameNumber - 1}.png`);
    }
  });
});

describe('embedded overlays render exactly as DCMTK renders them', () => {
  test.each(names.flatMap((name) => frameNumbers.map((n) => [name, n] as const)))('%s frame %d: renderFrame', (name, frameNumber) => {
    const l = load(name);
    // packed: what the render worker asks for (little endian: the words are the pixels); unpacked: DecodedFrame.rawWords
    for (const packed of [false, true]) {
      const decoded = decode(l, frameNumber, packed);
      if (name === 'OVB-LE' && packed) expect(decoded.packedShift).toBe(0);
      else expect(decoded.rawWords).toBeDefined();
      const ours = renderFrame(l.desc, frameNumber, decoded, {});
      expectImage(ours, `${name}.${frameNumber - 1}.png`);
      expect(same(decodePng(encodeImage(ours, 'image/png')).data, reference(`${name}.${frameNumber - 1}.png`).data)).toBe(true);
    }
  });

  test('the references do show the planes: both frames differ from DCMTK -O, and from each other', () => {
    for (const n of [0, 1]) expect(same(reference(`OVB-LE.${n}.png`).data, reference(`OVB-LE-O.${n}.png`).data)).toBe(false);
    const diff = (n: number) => Array.from(reference(`OVB-LE.${n}.png`).data, (v, i) => (v !== reference(`OVB-LE-O.${n}.png`).data[i] ? 1 : 0));
    expect(diff(0)).not.toEqual(diff(1));
  });

  test('a plane naming a stored bit is not drawn (group 6004, bit 5)', () => {
    const l = load('OVB-LE');
    const only6004 = { ...l.desc, overlays: l.desc.overlays.filter((o) => o.group === 0x6004) };
    const decoded = decode(l, 1);
    expect(same(renderFrame(only6004, 1, decoded, {}).data, renderFrame(only6004, 1, decoded, { overlays: false }).data)).toBe(true);
  });

  test('without the words (a decoder that kept none) embedded planes are skipped, not guessed', () => {
    const l = load('OVB-BE');
    const { rawWords: _gone, ...decoded } = decode(l, 1);
    expectImage(renderFrame(l.desc, 1, decoded as DecodedFrame, {}), 'OVB-LE-O.0.png');
  });

  test('viewport: the image is scaled with its planes burnt in, as for Overlay Data', () => {
    const l = load('OVB-RLE');
    const decoded = decode(l, 2);
    const viewport = { vw: 50, vh: 30, sx: 2, sy: 1, sw: 28, sh: 20 };
    const plan = planViewport(viewport, 32, 24);
    const full = renderFrame(l.desc, 2, decoded, {});
    const scaled = renderFrame(l.desc, 2, decoded, { viewport });
    expect(same(scaled.data, applyViewport(full, plan).data)).toBe(true);
    expect(same(scaled.data, renderFrame(l.desc, 2, decoded, { viewport, overlays: false }).data)).toBe(false);
  });

  test('overlay colour: Graphic plane pixels take it', () => {
    const l = load('OVB-LE');
    const decoded = decode(l, 1);
    const grey = renderFrame(l.desc, 1, decoded, {});
    const red = renderFrame(l.desc, 1, decoded, { overlayColor: [255, 0, 0] });
    expect(red.channels).toBe(3);
    const words = leWords(1);
    // a pixel of the Graphic plane (bit 12) inside the ROI plane (origin (3, 5): word (y - 2) * 32 + (x - 4))
    const y = 10, x = 9;
    expect(words[y * 32 + x] & 0x1000).toBeTruthy();
    expect(Array.from(red.data.subarray((y * 32 + x) * 3, (y * 32 + x) * 3 + 3))).toEqual([255, 0, 0]);
    expect(grey.data[y * 32 + x]).toBe(255);
  });
});

describe('through the HTTP API', () => {
  const stored = serverWithFiles(Object.fromEntries(names.map((n) => [n, path.join(FIXTURES, `${n}.dcm`)])));
  const { urls } = stored;

  const get = async (url: string) => {
    const res = await request(stored.srv.app).get(url).buffer(true).parse(binaryParser);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/png');
    return decodePng(res.body);
  };

  test.each(names.flatMap((name) => frameNumbers.map((n) => [name, n] as const)))('%s: frames/%d/rendered, with and without overlays', async (name, frameNumber) => {
    // twice: RLE frames come back from the worker decoded, and are rendered from that copy the second time
    for (let i = 0; i < 2; i++) {
      expectImage(await get(`${urls.get(name)}/frames/${frameNumber}/rendered?accept=image/png`), `${name}.${frameNumber - 1}.png`);
    }
    expectImage(await get(`${urls.get(name)}/frames/${frameNumber}/rendered?accept=image/png&overlays=false`), `OVB-LE-O.${frameNumber - 1}.png`);
  });
});

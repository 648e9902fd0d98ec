/**
 * Segmented Palette Color Lookup Table Data (PS3.3 C.7.9.2, with the descriptors of C.7.6.3.1.5):
 * - the segment expansion on hand-worked tables (discrete, linear, indirect; 16-bit words and byte-packed);
 * - describeImage reading segmented palettes from DICOM JSON (InlineBinary and Value);
 * - rendering against DCMTK, exactly, through renderFrame and through the HTTP API (frames/1/rendered).
 *
 * The fixtures in test/fixtures/palette were made with DCMTK 3.6.7 by its make-segmented.py
 * (`cd test/fixtures/palette && python3 make-segmented.py`), which for each NAME runs
 *     dump2dcm +l 2000000 +te NAME.dump NAME.dcm
 *     dump2dcm +l 2000000 +te NAME.twin.dump NAME.twin.dcm
 *     dcm2pnm +on NAME.twin.dcm NAME.png
 * DCMTK 3.6.7 ignores segmented palettes ("segmented palettes not yet supported"), so NAME.png is its rendering
 * of a twin file carrying the same palettes as ordinary Palette Color Lookup Table Data (0028,1201-1203),
 * expanded by that script independently of render/describe.ts. PAL-SEG-8: 8-bit stored values, 256 entries
 * of 16 bits, discrete, linear (up and down) and indirect segments (at byte offsets 12 and 0). PAL-SEG-16:
 * 16-bit stored values, descriptor (0, 0, 16), i.e. 65536 entries.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { expandSegmentedLut, readSegmentedLut, describeImage } from '../render/describe';
import { renderFrame, encodeImage } from '../render';
import { parseDicom } from '../dicom/parse';
import { locateFrames } from '../dicom/frames';
import { decodeFrame, initCodecs } from '../render/codecs';
import { decodePng } from './helpers/png-compare';
import { serverWithFiles, binaryParser } from './helpers/server';
import type { JsonDataset } from '../dicom/json';

const FIXTURES = path.join(process.cwd(), 'test/fixtures/palette');

describe('C.7.9.2 segment expansion (hand-worked)', () => {
  test.each([
    ['discrete (0): n entries as they are', [0, 3, 10, 20, 30], [10, 20, 30]],
    // from (X0, 10) to (X0 + 4, 20): 12.5 -> 13 (halves up), 15, 17.5 -> 18, 20
    ['linear (1) up from the previous end', [0, 1, 10, 1, 4, 20], [10, 13, 15, 18, 20]],
    // from 100 to 0 in 3: 66.67 -> 67, 33.33 -> 33, 0
    ['linear (1) down', [0, 1, 100, 1, 3, 0], [100, 67, 33, 0]],
    ['linear (1) flat', [0, 1, 7, 1, 2, 7], [7, 7, 7]],
    // [5, 6], then 8, 10; the indirect copies the two segments at byte 0: 5, 6 again, then 6 -> 10 again
    ['indirect (2) at byte 0', [0, 2, 5, 6, 1, 2, 10, 2, 2, 0, 0], [5, 6, 8, 10, 5, 6, 8, 10]],
    // byte offset 6 is the word at index 3: the discrete [1, 2] (read as a word index, 6 would be an opcode 2)
    ['indirect (2) at a byte offset', [0, 1, 7, 0, 2, 1, 2, 2, 1, 6, 0], [7, 1, 2, 1, 2]],
    ['a trailing pad word is ignored', [0, 2, 1, 2, 0], [1, 2]],
  ])('%s', (_label, codes, expected) => {
    // a count larger than the data gives: every case must end where its data ends
    expect(expandSegmentedLut(codes, 2, 65536)).toEqual(expected);
  });

  test('indirect offset is 32 bits, least significant word first', () => {
    // a discrete segment of 40000 entries (80004 bytes with its opcode and length), then [0, 1, 9] at byte
    // 80004 = 0x00013884, which the indirect segment copies: LSW 0x3884, MSW 0x0001
    const big = [0, 40000, ...Array.from({ length: 40000 }, (_, i) => i % 300)];
    const lut = expandSegmentedLut([...big, 0, 1, 9, 2, 1, 0x3884, 0x0001], 2, 40002)!;
    expect(lut.length).toBe(40002);
    expect(lut.slice(39998)).toEqual([98, 99, 9, 9]); // 39998 % 300, 39999 % 300, then 9 and its copy
  });

  test('byte-packed codes (8-bit entries): one byte per code, the offset in four bytes', () => {
    // [50], [10, 20], then the indirect copies the segment at byte 3
    expect(expandSegmentedLut(Uint8Array.from([0, 1, 50, 0, 2, 10, 20, 2, 1, 3, 0, 0, 0]), 1, 256)).toEqual([50, 10, 20, 10, 20]);
  });

  test('stops at the number of entries', () => {
    expect(expandSegmentedLut([0, 4, 1, 2, 3, 4], 2, 3)).toEqual([1, 2, 3]);
  });

  test.each([
    ['linear first', [1, 2, 10]],
    ['indirect first', [2, 1, 0, 0]],
    ['indirect to an indirect', [0, 1, 5, 2, 1, 6, 0, 2, 1, 6, 0]],
    ['reserved opcode 3', [0, 1, 5, 3, 1, 5]],
    ['discrete running past the data', [0, 5, 1, 2]],
    ['indirect copying past the data', [0, 1, 5, 2, 3, 0, 0]],
  ])('%s cannot be expanded', (_label, codes) => {
    expect(expandSegmentedLut(codes, 2, 16)).toBeNull();
  });
});

describe('describeImage: segmented palettes from DICOM JSON', () => {
  const words = (v: number[]) => ({ vr: 'OW', InlineBinary: Buffer.from(Uint16Array.from(v).buffer).toString('base64') });
  const image = (extra: JsonDataset): JsonDataset => ({
    '00080018': { vr: 'UI', Value: ['1.2.3'] },
    '00280002': { vr: 'US', Value: [1] }, '00280004': { vr: 'CS', Value: ['PALETTE COLOR'] },
    '00280010': { vr: 'US', Value: [2] }, '00280011': { vr: 'US', Value: [2] },
    '00280100': { vr: 'US', Value: [8] }, '00280101': { vr: 'US', Value: [8] }, '00280102': { vr: 'US', Value: [7] },
    '00280103': { vr: 'US', Value: [0] },
    ...extra,
  });

  test('16-bit entries from OW words; descriptor 0 entries means 65536', () => {
    const desc = { vr: 'US', Value: [0, 0, 16] };
    const ramp = words([0, 1, 0, 1, 65535, 65535]); // 0, then 1..65535
    const d = describeImage(image({
      '00281101': desc, '00281102': desc, '00281103': desc,
      '00281221': ramp, '00281222': ramp, '00281223': words([0, 2, 7, 8, 1, 65534, 8]),
    }))!;
    expect(d.palette).toBeDefined();
    expect(d.palette!.red).toMatchObject({ firstMapped: 0, bits: 16 });
    expect(d.palette!.red.data.length).toBe(65536);
    expect([d.palette!.red.data[0], d.palette!.red.data[1], d.palette!.red.data[65535]]).toEqual([0, 1, 65535]);
    expect(d.palette!.blue.data.slice(0, 3)).toEqual([7, 8, 8]);
  });

  test('8-bit entries, byte-packed (well-known palette style) or one per word, and Value numbers', () => {
    const desc = { vr: 'US', Value: [4, 0, 8] };
    const packed = { vr: 'OW', InlineBinary: Buffer.from([0, 1, 0, 1, 3, 255]).toString('base64') }; // 0, 85, 170, 255
    expect(readSegmentedLut(desc, packed, false)!.data).toEqual([0, 85, 170, 255]);
    expect(readSegmentedLut(desc, words([0, 1, 0, 1, 3, 255]), false)!.data).toEqual([0, 85, 170, 255]);
    expect(readSegmentedLut(desc, { vr: 'OW', Value: [0, 1, 0, 1, 3, 255] }, false)!.data).toEqual([0, 85, 170, 255]);
  });

  test('ordinary LUT Data wins over segmented data (as DCMTK reads them); segmented alone is enough', () => {
    const desc = { vr: 'US', Value: [2, 0, 16] };
    const both = describeImage(image({
      '00281101': desc, '00281102': desc, '00281103': desc,
      '00281201': words([1, 2]), '00281221': words([0, 2, 3, 4]),
      '00281222': words([0, 2, 3, 4]), '00281223': words([0, 2, 3, 4]),
    }))!;
    expect(both.palette!.red.data).toEqual([1, 2]);
    expect(both.palette!.green.data).toEqual([3, 4]);
    const broken = describeImage(image({
      '00281101': desc, '00281102': desc, '00281103': desc,
      '00281221': words([1, 2, 3]), '00281222': words([0, 2, 3, 4]), '00281223': words([0, 2, 3, 4]),
    }))!;
    expect(broken.palette).toBeUndefined();
  });
});

/* ---------------------------------------------------------------------------------------------- */

const names = ['PAL-SEG-8', 'PAL-SEG-16'];

async function renderFixture(name: string) {
  const buf = fs.readFileSync(path.join(FIXTURES, `${name}.dcm`));
  const p = parseDicom(buf);
  const desc = describeImage(p.dataset)!;
  const f = desc.frame;
  const [loc] = locateFrames(p, { rows: f.rows, columns: f.columns, samplesPerPixel: 1, bitsAllocated: f.bitsAllocated, numberOfFrames: 1, photometricInterpretation: f.photometricInterpretation },
    (o, l) => buf.subarray(o, o + l));
  const data = new Uint8Array(Buffer.concat(loc.ranges.map((r) => buf.subarray(r.offset, r.offset + r.length))));
  await initCodecs();
  return renderFrame(desc, 1, await decodeFrame(p.transferSyntaxUID, { data }, f), {});
}

const reference = (name: string) => decodePng(fs.readFileSync(path.join(FIXTURES, `${name}.png`)));

describe('segmented palettes render exactly as DCMTK renders the expanded palettes', () => {
  test.each(names)('%s: renderFrame', async (name) => {
    const ours = await renderFixture(name);
    const ref = reference(name);
    expect(ref.channels).toBe(3);
    expect({ width: ours.width, height: ours.height, channels: ours.channels }).toEqual({ width: ref.width, height: ref.height, channels: 3 });
    expect(Buffer.from(ours.data).equals(Buffer.from(ref.data))).toBe(true);
    // and the PNG we would send decodes to the same pixels
    expect(Buffer.from(decodePng(encodeImage(ours, 'image/png')).data).equals(Buffer.from(ref.data))).toBe(true);
  });

  describe('through the HTTP API', () => {
    const stored = serverWithFiles(Object.fromEntries(names.map((n) => [n, path.join(FIXTURES, `${n}.dcm`)])));
    const { urls } = stored;

    test.each(names)('%s: frames/1/rendered', async (name) => {
      const res = await request(stored.srv.app).get(`${urls.get(name)}/frames/1/rendered?accept=image/png`).buffer(true).parse(binaryParser);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('image/png');
      const ours = decodePng(res.body);
      const ref = reference(name);
      expect([ours.width, ours.height, ours.channels]).toEqual([ref.width, ref.height, 3]);
      expect(Buffer.from(ours.data).equals(Buffer.from(ref.data))).toBe(true);
    });
  });
});

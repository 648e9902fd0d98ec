/**
 * The fast table builders of render/lut.ts against the plain ones they replace: flattenMonotone against
 * flatten on random rescale + window pipelines, patternTable / packedPatternTable against a per-pattern
 * computation, and the grey renderer on packed native words against the unpacked decode, over random frames.
 */
import {
  compose, flatten, flattenMonotone, modalityRescale, packedPatternTable, patternTable, storedRange, voiWindowStep,
} from '../render/lut';
import { decodeFrame } from '../render/codecs';
import { describeImage, renderFrame } from '../render';
import type { VoiLutFunction } from '../render/types';
import { prng } from './helpers/prng';

const rand = prng(20261126);
const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];

describe('flattenMonotone', () => {
  test('equals flatten for 400 random rescale + LINEAR / LINEAR_EXACT windows, plain and inverted', () => {
    for (let n = 0; n < 400; n++) {
      const bits = pick([8, 10, 12, 14, 16]);
      const signed = rand() < 0.5;
      const r = storedRange(bits, signed);
      const slope = pick([1, 1, 0.5, 2.5, -1, 0.000123, 37.1]);
      const intercept = pick([0, -1024, 1000.5, -3.25]);
      const fn: VoiLutFunction = pick(['LINEAR', 'LINEAR_EXACT']);
      const span = (r.max - r.min) * Math.abs(slope);
      const center = (rand() - 0.3) * span + intercept;
      const width = fn === 'LINEAR' ? 1 + rand() * span * pick([0.001, 0.05, 1, 3]) : 0.01 + rand() * span * pick([0.001, 0.05, 1]);
      const [low, high] = rand() < 0.5 ? [0, 255] : [255, 0];
      const step = compose(modalityRescale(slope, intercept), voiWindowStep(fn, center, width, low, high));
      const a = flatten(step, r.min, r.max);
      const b = flattenMonotone(step, r.min, r.max);
      if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) {
        throw new Error(`differs: bits ${bits} signed ${signed} slope ${slope} intercept ${intercept} ${fn} c=${center} w=${width} ${low}->${high}`);
      }
    }
  });

  test('a width-1 window is a step; a constant table is one fill', () => {
    const step = voiWindowStep('LINEAR', 100, 1, 0, 255);
    expect(Array.from(flattenMonotone(step, 98, 102))).toEqual(Array.from(flatten(step, 98, 102)));
    expect(Array.from(flattenMonotone(() => 7, -5, 5))).toEqual(new Array(11).fill(7));
  });
});

describe('pattern tables', () => {
  const table = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 255);

  test.each([
    [8, false, 0, 255], [8, true, -128, 127], [16, false, 0, 4095], [16, true, -2048, 2047], [16, true, -32768, 32767],
    [16, false, 100, 200], [8, true, 0, 255],
  ])('patternTable %i-bit signed=%s over stored %i..%i', (bits, signed, min, max) => {
    const t = table(max - min + 1);
    const p = patternTable(t, min, bits, signed as boolean);
    const size = 1 << bits;
    for (let w = 0; w < size; w++) {
      const v = signed && w >= size / 2 ? w - size : w;
      const k = Math.min(t.length - 1, Math.max(0, v - min));
      if (p[w] !== t[k]) throw new Error(`pattern ${w}: ${p[w]} != ${t[k]}`);
    }
  });

  test.each([[12, 0, false], [12, 0, true], [14, 0, true], [10, 2, false], [10, 3, true], [15, 1, true], [1, 0, false]])(
    'packedPatternTable bits %i shift %i signed=%s', (bits, shift, signed) => {
      const r = storedRange(bits, signed as boolean);
      const t = table(r.max - r.min + 1);
      const p = packedPatternTable(t, r.min, bits, shift, signed as boolean);
      for (let w = 0; w < 65536; w++) {
        let v = (w >>> shift) & ((1 << bits) - 1);
        if (signed && v >= 1 << (bits - 1)) v -= 1 << bits;
        if (p[w] !== t[v - r.min]) throw new Error(`word ${w}: ${p[w]} != ${t[v - r.min]}`);
      }
    });
});

describe('grey rendering of packed native words', () => {
  test.each([[12, 11, 0], [12, 11, 1], [14, 13, 1], [10, 12, 0], [10, 12, 1], [16, 15, 1]])(
    'BitsStored %i HighBit %i PixelRepresentation %i, with junk in the unused bits: same image as the unpacked decode',
    (bitsStored, highBit, pr) => {
      const rows = 37, columns = 41; // odd sizes: the four-pixel loop's tail
      const words = new Uint16Array(rows * columns);
      for (let i = 0; i < words.length; i++) words[i] = Math.floor(rand() * 65536);
      const data = new Uint8Array(words.buffer);
      for (const window of [undefined, { center: 0, width: 300, function: 'LINEAR' as const }, { center: 100, width: 50, function: 'SIGMOID' as const }]) {
        for (const pi of ['MONOCHROME2', 'MONOCHROME1']) {
          const desc = describeImage({
            '00080018': { vr: 'UI', Value: [`2.25.${bitsStored}${highBit}${pr}${pi.length}${window?.function ?? ''}`.replace(/[A-Z_]/g, '1')] },
            '00280002': { vr: 'US', Value: [1] }, '00280004': { vr: 'CS', Value: [pi] },
            '00280010': { vr: 'US', Value: [rows] }, '00280011': { vr: 'US', Value: [columns] },
            '00280100': { vr: 'US', Value: [16] }, '00280101': { vr: 'US', Value: [bitsStored] }, '00280102': { vr: 'US', Value: [highBit] },
            '00280103': { vr: 'US', Value: [pr] }, '00281052': { vr: 'DS', Value: [-3] }, '00281053': { vr: 'DS', Value: [1.5] },
          })!;
          const packed = decodeFrame('1.2.840.10008.1.2.1', { data }, desc.frame, { packed: true });
          const plain = decodeFrame('1.2.840.10008.1.2.1', { data }, desc.frame);
          expect(packed.packedShift !== undefined).toBe(bitsStored !== 16);
          const opts = window ? { window } : {};
          expect(Buffer.from(renderFrame(desc, 1, packed, opts).data)).toEqual(Buffer.from(renderFrame(desc, 1, plain, opts).data));
        }
      }
    });
});

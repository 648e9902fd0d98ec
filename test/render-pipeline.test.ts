/**
 * Unit tests of each pipeline step, as tables of (attributes, input, expected) worked out by hand from the
 * standard's formulas, plus the viewport maths, overlays, validation and encoding.
 */
import { PNG } from 'pngjs';
import {
  minMaxWindow, modalityLutSequence, modalityRescale, voiLinear, voiLinearExact, voiLutSequence, voiSigmoid, flatten, compose, storedRange, patternTable,
} from '../render/lut';
import { readLut, describeImage } from '../render/describe';
import { ybrFullToRgb, paletteTable, depthTo8 } from '../render/colour';
import { planViewport, applyViewport, axisWeights } from '../render/viewport';
import { tableCache, LruCache } from '../render/render';
import { renderFrame, encodeImage, initRender, RenderError, ImageDescription, DecodedFrame } from '../render';
import type { JsonDataset } from '../dicom/json';

describe('C.11.1 Modality LUT', () => {
  test.each([
    // slope, intercept, stored, expected (DCMTK: integer intermediate, C cast truncation)
    [1, -1024, 0, -1024],
    [1, -1024, 1064, 40],
    [2, -1000, 600, 200],
    [0.5, 0, 3, 1],
    [0.5, 0, -3, -1],
  ])('rescale m=%p b=%p: %p -> %p', (m, b, x, y) => expect(modalityRescale(m, b)(x)).toBe(y));

  test.each([
    // C.11.1.1.1: first mapped 10, entries [100, 200, 300]: below first -> first entry, beyond -> last
    [5, 100], [10, 100], [11, 200], [12, 300], [40, 300],
  ])('LUT sequence first=10: %p -> %p', (x, y) => {
    expect(modalityLutSequence({ firstMapped: 10, bits: 16, data: [100, 200, 300] })(x)).toBe(y);
  });
});

describe('C.11.2 VOI', () => {
  test.each([
    // C.11.2.1.2.1 LINEAR, c=40 w=400: x <= c-0.5-(w-1)/2 = -160 -> 0; x > c-0.5+(w-1)/2 = 239 -> 255
    [40, 400, -160, 0],
    [40, 400, -159, 0], // ((-159-39.5)/399+0.5)*255 = 0.64 -> 0
    [40, 400, 40, 127], // ((0.5)/399+0.5)*255 = 127.82 -> 127
    [40, 400, 239, 255],
    [40, 400, 240, 255],
    [100, 1, 99, 0], // width 1: a threshold at c-0.5
    [100, 1, 100, 255],
  ])('LINEAR c=%p w=%p: %p -> %p', (c, w, x, y) => expect(voiLinear(c, w, 0, 255)(x)).toBe(y));

  test.each([
    // C.11.2.1.3.2 LINEAR_EXACT c=40 w=400: x <= -160 -> 0, x > 240 -> 255, else ((x-c)/w+0.5)*255
    [-160, 0], [-159, 0], [40, 127], [239, 254], [240, 255], [241, 255],
  ])('LINEAR_EXACT c=40 w=400: %p -> %p', (x, y) => expect(voiLinearExact(40, 400, 0, 255)(x)).toBe(y));

  test.each([
    // C.11.2.1.3.1 SIGMOID: 255 / (1 + exp(-4 (x - c) / w))
    [40, 127], [240, 224], [-160, 30], [10000, 255],
  ])('SIGMOID c=40 w=400: %p -> %p', (x, y) => expect(voiSigmoid(40, 400, 0, 255)(x)).toBe(y));

  test('inverted output range (MONOCHROME1 / INVERSE) swaps black and white', () => {
    const s = voiLinear(40, 400, 255, 0);
    expect([s(-1000), s(1000), s(40)]).toEqual([255, 0, 127]);
  });

  test.each([
    // VOI LUT Sequence item, 8-bit entries: output = entry * 256 / 2^8
    [{ firstMapped: 0, bits: 8, data: [0, 128, 255] }, -5, 0],
    [{ firstMapped: 0, bits: 8, data: [0, 128, 255] }, 1, 128],
    [{ firstMapped: 0, bits: 8, data: [0, 128, 255] }, 9, 255],
    // 16-bit entries: entry * 256 / 65536
    [{ firstMapped: -2, bits: 16, data: [0, 32768, 65535] }, -1, 128],
    [{ firstMapped: -2, bits: 16, data: [0, 32768, 65535] }, 0, 255],
  ])('VOI LUT %j: %p -> %p', (lut, x, y) => expect(voiLutSequence(lut, 0, 255)(x)).toBe(y));

  test('min-max window maps [min, max] exactly onto [0, 255] (DCMTK +Wm)', () => {
    const w = minMaxWindow(-100, 155);
    expect(w).toEqual({ center: 28, width: 256 });
    const s = voiLinear(w.center, w.width, 0, 255);
    expect(s(-100)).toBe(0);
    // DCMTK's offset + x * gradient lands a hair under 255 for the maximum here: 254, as dcm2pnm gives
    expect(s(155)).toBeGreaterThanOrEqual(254);
    expect(s(156)).toBe(255);
  });

  test('flatten builds one entry per stored value', () => {
    const r = storedRange(12, true);
    expect(r).toEqual({ min: -2048, max: 2047 });
    const t = flatten(compose(modalityRescale(1, 0), voiLinear(0, 4096, 0, 255)), r.min, r.max);
    expect(t.length).toBe(4096);
    expect([t[0], t[4095]]).toEqual([0, 255]);
  });
});

describe('LUT Descriptor quirks (C.11.1.1.1, C.7.6.3.1.5)', () => {
  const b64 = (bytes: number[]) => Buffer.from(bytes).toString('base64');
  test('0 entries means 65536', () => {
    const data = Buffer.alloc(65536 * 2);
    const lut = readLut({ vr: 'US', Value: [0, 0, 16] }, { vr: 'OW', InlineBinary: data.toString('base64') }, false)!;
    expect(lut.data.length).toBe(65536);
  });
  test('first mapped value encoded US is read as signed when pixel data is signed', () => {
    const lut = readLut({ vr: 'US', Value: [2, 65535, 16] }, { vr: 'US', Value: [1, 2] }, true)!;
    expect(lut.firstMapped).toBe(-1);
  });
  test('8-bit entries packed two per OW word', () => {
    const lut = readLut({ vr: 'US', Value: [4, 0, 8] }, { vr: 'OW', InlineBinary: b64([10, 20, 30, 40]) }, false)!;
    expect(lut.data).toEqual([10, 20, 30, 40]);
  });
  test('16-bit words, entries masked to bits per entry', () => {
    const lut = readLut({ vr: 'US', Value: [2, 0, 12] }, { vr: 'OW', InlineBinary: b64([0xff, 0xff, 0x00, 0x01]) }, false)!;
    expect(lut).toMatchObject({ bits: 12, data: [0x0fff, 0x0100] });
  });
  test('palette: 16-bit entries reduced to 8 bits by shifting (DCMTK)', () => {
    const l = { firstMapped: 0, bits: 16, data: [0, 0x8000, 0xffff] };
    const t = paletteTable(l, l, l, 0, 3);
    expect(Array.from(t)).toEqual([0, 0, 0, 128, 128, 128, 255, 255, 255, 255, 255, 255]);
    expect(depthTo8(12)(4095)).toBe(255);
  });
});

describe('colour', () => {
  test('YBR_FULL to RGB with DCMTK tables (PS3.3 C.7.6.3.1.2)', () => {
    // Cb = Cr = 128: R = 100 + trunc(1.402*128 - 0.701*255) = 100, G = 100 - trunc(0.3441*128)
    // - trunc(0.7141*128 - 0.5291*255) = 100 - 44 + 43 = 99 (DCMTK's truncated tables), B = 100 + 0.
    // Pure red is Y=76 Cb=85 Cr=255.
    const out = ybrFullToRgb(Uint8Array.from([100, 128, 128, 76, 85, 255]), 2, 8);
    expect(Array.from(out.subarray(0, 3))).toEqual([100, 99, 100]);
    expect(out[3]).toBeGreaterThanOrEqual(253);
    expect(out[4]).toBeLessThanOrEqual(1);
    expect(out[5]).toBeLessThanOrEqual(1);
  });
});

/* ---------------------------------------------------------------------------------------------- */

function greyDesc(extra: Partial<ImageDescription> = {}, rows = 4, columns = 4, frames = 1): ImageDescription {
  return {
    frame: { rows, columns, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0 },
    numberOfFrames: frames,
    modalityLut: { kind: 'rescale', slope: 1, intercept: 0 },
    voi: { windows: [], function: 'LINEAR', luts: [] },
    overlays: [],
    ...extra,
  };
}
function greyFrame(values: number[], rows = 4, columns = 4): DecodedFrame {
  return { pixels: Uint16Array.from(values), rows, columns, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', bitsStored: 12, signed: false };
}
const ramp = Array.from({ length: 16 }, (_, i) => i * 100); // 0..1500

describe('renderFrame (grey)', () => {
  test('default with no VOI is the min-max window over the frame', () => {
    const img = renderFrame(greyDesc(), 1, greyFrame(ramp), {});
    expect(img.channels).toBe(1);
    expect([img.data[0], img.data[15]]).toEqual([0, 255]);
  });
  test('file window first, then an explicit window overrides it', () => {
    const desc = greyDesc({ voi: { windows: [{ center: 500, width: 2 }], function: 'LINEAR', luts: [] } });
    expect(Array.from(renderFrame(desc, 1, greyFrame(ramp), {}).data.subarray(4, 6))).toEqual([0, 255]); // 400, 500
    const img = renderFrame(desc, 1, greyFrame(ramp), { window: { center: 750, width: 1501 } });
    expect(img.data[0]).toBe(0);
    expect(img.data[15]).toBe(255);
  });
  test('MONOCHROME1 is inverted; Presentation LUT Shape IDENTITY on it is not', () => {
    const d = greyDesc();
    d.frame.photometricInterpretation = 'MONOCHROME1';
    expect([renderFrame(d, 1, greyFrame(ramp)).data[0], renderFrame(d, 1, greyFrame(ramp)).data[15]]).toEqual([255, 0]);
    d.presentationLutShape = 'IDENTITY';
    expect(renderFrame(d, 1, greyFrame(ramp)).data[0]).toBe(0);
  });
  test('per-frame functional group VOI wins over shared and image level', () => {
    const d = greyDesc({
      sharedGroup: { voi: { windows: [{ center: 100, width: 2 }], function: 'LINEAR', luts: [] } },
      perFrameGroups: [null, { voi: { windows: [{ center: 1000, width: 2 }], function: 'LINEAR', luts: [] } }],
    }, 4, 4, 2);
    expect(renderFrame(d, 1, greyFrame(ramp)).data[5]).toBe(255); // 500 > 100
    expect(renderFrame(d, 2, greyFrame(ramp)).data[5]).toBe(0); // 500 < 1000
  });
  test('tables are cached per (instance, frame, window)', () => {
    tableCache.clear();
    const d = greyDesc({ sopInstanceUID: '1.2.3' });
    renderFrame(d, 1, greyFrame(ramp), { window: { center: 100, width: 200 } });
    renderFrame(d, 1, greyFrame(ramp), { window: { center: 100, width: 200 } });
    expect(tableCache.size).toBe(1);
    renderFrame(d, 1, greyFrame(ramp), { window: { center: 100, width: 300 } });
    expect(tableCache.size).toBe(2);
  });
  test('tables evicted from the full cache are refilled for later windows and leave no trace in their images', () => {
    // 16-bit words (65536-entry pattern tables, the ones refilled) interleaved with 8-bit ones (256 entries, not).
    const d16 = greyDesc({ sopInstanceUID: '1.2.3' });
    const d8 = greyDesc({ sopInstanceUID: '1.2.4' });
    d8.frame.bitsAllocated = 8; d8.frame.bitsStored = 8; d8.frame.highBit = 7;
    const f16 = greyFrame(ramp);
    const f8: DecodedFrame = { ...greyFrame([]), pixels: Uint8Array.from(ramp, (v) => v % 256), bitsStored: 8 };
    const windows = Array.from({ length: 150 }, (_, i) => ({ center: 40 + 11 * i, width: 30 + 9 * (i % 17) }));
    const render = (i: number) => Array.from(i % 3 ? renderFrame(d16, 1, f16, { window: windows[i] }).data : renderFrame(d8, 1, f8, { window: windows[i] }).data);
    tableCache.clear();
    const throughFullCache = windows.map((_, i) => render(i));
    expect(tableCache.size).toBe(64);
    const eachFresh = windows.map((_, i) => { tableCache.clear(); return render(i); });
    expect(throughFullCache).toEqual(eachFresh);
  });
  test('the cache hands back what it evicts, and pattern tables fill a given buffer of their size', () => {
    const c = new LruCache<string>(2);
    expect(c.set('a', 'A')).toBeUndefined();
    expect(c.set('b', 'B')).toBeUndefined();
    c.get('a');
    expect(c.set('c', 'C')).toBe('B');
    const reuse = new Uint8Array(65536).fill(7);
    const t = patternTable(flatten((x) => x >> 4, 0, 4095), 0, 16, false, reuse);
    expect(t).toBe(reuse);
    expect([t[0], t[4095], t[65535]]).toEqual([0, 255, 255]);
    expect(patternTable(flatten((x) => x, 0, 255), 0, 8, false, reuse)).not.toBe(reuse);
  });
  test('float pixel data is windowed without a table', () => {
    const d = greyDesc();
    d.frame.pixelFormat = 'float32';
    const f: DecodedFrame = { pixels: Float32Array.from([-1.5, 0, 0.25, 1.5]), rows: 2, columns: 2, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', bitsStored: 32, signed: true };
    d.frame.rows = 2; d.frame.columns = 2;
    const img = renderFrame(d, 1, f, { window: { center: 0, width: 2, function: 'LINEAR_EXACT' } });
    expect(Array.from(img.data)).toEqual([0, 127, 159, 255]); // ((0.25 - 0) / 2 + 0.5) * 255 = 159.4
  });

  test.each([
    [{ window: { center: 40, width: 0 } }, 'BAD_WINDOW'],
    [{ window: { center: 40, width: 0.5, function: 'LINEAR' as const } }, 'BAD_WINDOW'],
    [{ window: { center: NaN, width: 10 } }, 'BAD_WINDOW'],
    [{ window: { center: 1, width: 10, function: 'CUBIC' as any } }, 'BAD_WINDOW'],
    [{ viewport: { vw: 0, vh: 10 } }, 'BAD_VIEWPORT'],
    [{ viewport: { vw: 10, vh: 10, sx: 4 } }, 'BAD_VIEWPORT'],
    [{ viewport: { vw: 10, vh: 10, sx: 2, sw: 3 } }, 'BAD_VIEWPORT'],
    [{ overlayColor: [300, 0, 0] as [number, number, number] }, 'BAD_OPTION'],
  ])('impossible options %j throw RenderError %s (HTTP 400)', (opts, code) => {
    expect(() => renderFrame(greyDesc(), 1, greyFrame(ramp), opts)).toThrow(expect.objectContaining({ code, status: 400 }));
  });
  test('frame out of range throws BAD_FRAME', () => {
    expect(() => renderFrame(greyDesc(), 2, greyFrame(ramp), {})).toThrow(RenderError);
  });
});

describe('overlays (C.9.2)', () => {
  // 2x2 graphic overlay at row 2, column 3 (1-based), two overlay frames from image frame 2: bits 0-3 (LSB
  // first) are overlay frame 1 = 1,0,0,1 and bits 4-7 overlay frame 2 = 0,1,1,0, i.e. the byte 0x69
  const overlay = {
    group: 0x6000, rows: 2, columns: 2, originRow: 2, originColumn: 3, type: 'G' as const, bitsAllocated: 1, bitPosition: 0,
    imageFrameOrigin: 2, numberOfFrames: 2, data: Buffer.from([0x69]).toString('base64'),
  };
  const black = greyFrame(new Array(16).fill(0));
  const desc = greyDesc({ voi: { windows: [{ center: 2000, width: 10 }], function: 'LINEAR', luts: [] }, overlays: [overlay] }, 4, 4, 3);
  test('frame outside Image Frame Origin .. + Number of Frames shows nothing', () => {
    expect(renderFrame(desc, 1, black).data.every((v) => v === 0)).toBe(true);
  });
  test('origin and bit order; second overlay frame on image frame 3', () => {
    const f2 = renderFrame(desc, 2, black).data;
    expect([f2[1 * 4 + 2], f2[1 * 4 + 3], f2[2 * 4 + 2], f2[2 * 4 + 3]]).toEqual([255, 0, 0, 255]);
    const f3 = renderFrame(desc, 3, black).data;
    expect([f3[1 * 4 + 2], f3[1 * 4 + 3], f3[2 * 4 + 2], f3[2 * 4 + 3]]).toEqual([0, 255, 255, 0]);
  });
  test('hidden with overlays: false; coloured with overlayColor', () => {
    expect(renderFrame(desc, 2, black, { overlays: false }).data.every((v) => v === 0)).toBe(true);
    const c = renderFrame(desc, 2, black, { overlayColor: [255, 0, 0] });
    expect(c.channels).toBe(3);
    expect(Array.from(c.data.subarray((1 * 4 + 2) * 3, (1 * 4 + 2) * 3 + 3))).toEqual([255, 0, 0]);
  });
});

describe('describeImage', () => {
  test('non-images give null', () => {
    expect(describeImage({ '00080060': { vr: 'CS', Value: ['SR'] } })).toBeNull();
  });
  test('windows, explanations, function, padding, overlays, per-frame groups', () => {
    const ds: JsonDataset = {
      '00080018': { vr: 'UI', Value: ['1.2.3'] },
      '00280002': { vr: 'US', Value: [1] }, '00280004': { vr: 'CS', Value: ['MONOCHROME2'] },
      '00280008': { vr: 'IS', Value: [2] }, '00280010': { vr: 'US', Value: [8] }, '00280011': { vr: 'US', Value: [8] },
      '00280100': { vr: 'US', Value: [16] }, '00280101': { vr: 'US', Value: [12] }, '00280102': { vr: 'US', Value: [11] },
      '00280103': { vr: 'US', Value: [1] }, '00280120': { vr: 'SS', Value: [-2000] },
      '00281050': { vr: 'DS', Value: [40, 400] }, '00281051': { vr: 'DS', Value: [400, 2000] },
      '00281055': { vr: 'LO', Value: ['SOFT', 'BONE'] }, '00281056': { vr: 'CS', Value: ['SIGMOID'] },
      '60000010': { vr: 'US', Value: [8] }, '60000011': { vr: 'US', Value: [8] }, '60000050': { vr: 'SS', Value: [1, 1] },
      '60000040': { vr: 'CS', Value: ['R'] }, '60000100': { vr: 'US', Value: [1] }, '60000102': { vr: 'US', Value: [0] },
      '60003000': { vr: 'OW', InlineBinary: Buffer.alloc(8).toString('base64') },
      '52009230': { vr: 'SQ', Value: [
        { '00289145': { vr: 'SQ', Value: [{ '00281052': { vr: 'DS', Value: [-1024] }, '00281053': { vr: 'DS', Value: [1] } }] } },
        { '00289132': { vr: 'SQ', Value: [{ '00281050': { vr: 'DS', Value: [10] }, '00281051': { vr: 'DS', Value: [20] } }] } },
      ] },
    };
    const d = describeImage(ds)!;
    expect(JSON.parse(JSON.stringify(d))).toEqual(d); // plain JSON
    expect(d.voi).toEqual({ windows: [{ center: 40, width: 400, explanation: 'SOFT' }, { center: 400, width: 2000, explanation: 'BONE' }], function: 'SIGMOID', luts: [] });
    expect(d.pixelPaddingValue).toBe(-2000);
    expect(d.overlays[0]).toMatchObject({ group: 0x6000, type: 'R', rows: 8, imageFrameOrigin: 1, numberOfFrames: 1 });
    expect(d.perFrameGroups![0]!.modalityLut).toMatchObject({ kind: 'rescale', intercept: -1024 });
    expect(d.perFrameGroups![1]!.voi!.windows[0]).toEqual({ center: 10, width: 20 });
  });
});

describe('viewport (PS3.18 8.3.5.1.3)', () => {
  test.each([
    // image 512x512 into 256x128 keeps aspect ratio: 128x128
    [{ vw: 256, vh: 128 }, 512, 512, { x: 0, y: 0, w: 512, h: 512 }, 128, 128],
    // crop 100x50 region at (10,20), fit 400x400: scale 4 -> 400x200
    [{ vw: 400, vh: 400, sx: 10, sy: 20, sw: 100, sh: 50 }, 512, 512, { x: 10, y: 20, w: 100, h: 50 }, 400, 200],
    // sw, sh default to the rest of the image
    [{ vw: 100, vh: 100, sx: 256, sy: 0 }, 512, 512, { x: 256, y: 0, w: 256, h: 512 }, 50, 100],
  ])('%j of %ix%i', (vp, cols, rows, region, ow, oh) => {
    const p = planViewport(vp, cols, rows);
    expect(p.region).toMatchObject(region);
    expect([p.outWidth, p.outHeight]).toEqual([ow, oh]);
  });

  const img = { width: 4, height: 2, channels: 1 as const, data: Uint8Array.from([0, 2, 4, 6, 10, 12, 14, 16]) };
  test('negative sw flips horizontally, negative sh vertically', () => {
    const out = applyViewport(img, planViewport({ vw: 4, vh: 2, sw: -4, sh: -2 }, 4, 2));
    expect(Array.from(out.data)).toEqual([16, 14, 12, 10, 6, 4, 2, 0]);
  });
  test('downscale by 2 averages areas', () => {
    const out = applyViewport(img, planViewport({ vw: 2, vh: 1 }, 4, 2));
    expect(Array.from(out.data)).toEqual([6, 10]); // (0+2+10+12)/4, (4+6+14+16)/4
  });
  test('upscale is bilinear between pixel centres', () => {
    const w = axisWeights(2, 4, 0, false);
    // output centres map to source 0 (clamped), 0.25, 0.75, 1 (clamped)
    expect(Array.from(w.weight)).toEqual([1, 0.75, 0.25, 0.25, 0.75, 1]);
  });
});

describe('encodeImage', () => {
  beforeAll(() => initRender());
  const grey = { width: 3, height: 2, channels: 1 as const, data: Uint8Array.from([0, 50, 100, 150, 200, 255]) };
  test('PNG is lossless and stays greyscale (colour type 0)', () => {
    const buf = encodeImage(grey, 'image/png');
    expect(buf[25]).toBe(0); // IHDR colour type
    expect(buf[24]).toBe(8); // bit depth
    const back = PNG.sync.read(buf);
    expect(Array.from({ length: 6 }, (_, i) => back.data[i * 4])).toEqual(Array.from(grey.data));
  });
  test('JPEG has SOI/EOI and quality changes its size', () => {
    const big = { width: 64, height: 64, channels: 3 as const, data: Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 37) % 251) };
    const q10 = encodeImage(big, 'image/jpeg', { quality: 10 });
    const q95 = encodeImage(big, 'image/jpeg', { quality: 95 });
    expect([q10[0], q10[1], q10[q10.length - 2], q10[q10.length - 1]]).toEqual([0xff, 0xd8, 0xff, 0xd9]);
    expect(q95.length).toBeGreaterThan(q10.length);
    expect(() => encodeImage(big, 'image/jpeg', { quality: 0 })).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
  });
  test('GIF: a GIF89a with its trailer; an unknown type is 406', () => {
    const gif = encodeImage(grey, 'image/gif');
    expect([gif.subarray(0, 6).toString('latin1'), gif[gif.length - 1]]).toEqual(['GIF89a', 0x3b]);
    expect(() => encodeImage(grey, 'image/webp' as any)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_MEDIA_TYPE', status: 406 }));
  });
});

describe('render worker warm-up (server/render-worker.ts)', () => {
  test('renders its synthetic frames, then leaves no table behind to crowd out real ones', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { warmUp } = require('../server/render-worker') as typeof import('../server/render-worker');
    tableCache.clear();
    const made = jest.spyOn(tableCache, 'set');
    warmUp(3);
    expect(made.mock.calls.length).toBeGreaterThanOrEqual(6); // a table per window, signed and unsigned
    made.mockRestore();
    expect(tableCache.size).toBe(0);
  });
});

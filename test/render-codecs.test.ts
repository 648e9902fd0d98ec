/**
 * The codec layer against real files: every lossless syntax must reproduce its uncompressed twin exactly, lossy ones
 * must stay close to their relatives, and hostile input must end in a CodecError, never a crash or a hang.
 */
import {
  CodecError,
  TransferSyntax,
  decodeFrame,
  initCodecs,
  isSupportedTransferSyntax,
  nativeMediaType,
} from '../render/codecs';
import { openjphModule } from '../render/codecs/wasm';
import type { DecodedFrame, FrameInfo } from '../render/types';
import { firstDifference, psnr, readCorpusImage, readReferencePng } from './helpers/codecs-corpus';

beforeAll(async () => {
  await initCodecs();
});

function decodeFile(name: string, frame = 0): DecodedFrame {
  const image = readCorpusImage(name);
  return decodeFrame(image.transferSyntaxUID, image.frames[frame], image.info);
}

function expectIdentical(actual: DecodedFrame, expected: DecodedFrame, sameHeader = true): void {
  expect(actual.rows).toBe(expected.rows);
  expect(actual.columns).toBe(expected.columns);
  expect(actual.samplesPerPixel).toBe(expected.samplesPerPixel);
  expect(actual.pixels.constructor.name).toBe(expected.pixels.constructor.name);
  expect(actual.signed).toBe(expected.signed);
  if (sameHeader) expect(actual.bitsStored).toBe(expected.bitsStored);
  expect(firstDifference(actual.pixels, expected.pixels)).toBe(-1);
}

function range(values: ArrayLike<number>): number {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  return max - min;
}

function expectCodecError(fn: () => unknown, code?: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(CodecError);
  if (code) expect((thrown as CodecError).code).toBe(code);
  // The reason is for clients: short, and free of codec internals.
  expect((thrown as CodecError).reason.length).toBeLessThan(200);
}

const base: FrameInfo = {
  rows: 2,
  columns: 2,
  bitsAllocated: 16,
  bitsStored: 16,
  highBit: 15,
  pixelRepresentation: 0,
  samplesPerPixel: 1,
  photometricInterpretation: 'MONOCHROME2',
  planarConfiguration: 0,
};

describe('transfer syntax table', () => {
  test.each([
    [TransferSyntax.ImplicitVRLittleEndian, 'application/octet-stream'],
    [TransferSyntax.ExplicitVRLittleEndian, 'application/octet-stream'],
    [TransferSyntax.DeflatedExplicitVRLittleEndian, 'application/octet-stream'],
    [TransferSyntax.ExplicitVRBigEndian, 'application/octet-stream'],
    ['1.2.840.10008.1.2.4.50', 'image/jpeg'],
    ['1.2.840.10008.1.2.4.51', 'image/jpeg'],
    ['1.2.840.10008.1.2.4.57', 'image/jpeg'],
    ['1.2.840.10008.1.2.4.70', 'image/jpeg'],
    ['1.2.840.10008.1.2.4.80', 'image/jls'],
    ['1.2.840.10008.1.2.4.81', 'image/jls'],
    ['1.2.840.10008.1.2.4.90', 'image/jp2'],
    ['1.2.840.10008.1.2.4.91', 'image/jp2'],
    ['1.2.840.10008.1.2.4.201', 'image/jphc'],
    ['1.2.840.10008.1.2.4.202', 'image/jphc'],
    ['1.2.840.10008.1.2.4.203', 'image/jphc'],
    ['1.2.840.10008.1.2.5', 'image/dicom-rle'],
  ])('%s is supported, bulk data media type %s (PS3.18 Table 8.7.3-5)', (uid, mediaType) => {
    expect(isSupportedTransferSyntax(uid)).toBe(true);
    expect(nativeMediaType(uid)).toBe(mediaType);
  });

  test('unknown and unsupported syntaxes', () => {
    for (const uid of ['1.2.840.10008.1.2.4.100', '1.2.840.10008.1.2.4.92', 'toString', '__proto__', '']) {
      expect(isSupportedTransferSyntax(uid)).toBe(false);
      expect(nativeMediaType(uid)).toBeUndefined();
    }
    expectCodecError(() => decodeFrame('1.2.840.10008.1.2.4.100', { data: new Uint8Array(8) }, base), 'UNSUPPORTED_TRANSFER_SYNTAX');
  });

  test('initCodecs is idempotent and concurrent-safe', async () => {
    await Promise.all([initCodecs(), initCodecs(), initCodecs()]);
    expect(decodeFile('MR_small_jp2klossless.dcm').pixels.length).toBe(64 * 64);
  });
});

describe('lossless syntaxes reproduce the uncompressed twin exactly', () => {
  const mrSmall = () => decodeFile('MR_small.dcm');
  test.each(['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm', 'MR_small_bigendian.dcm', 'MR_small_implicit.dcm'])(
    '%s equals MR_small',
    (name) => {
      const expected = mrSmall();
      expect(expected.pixels).toBeInstanceOf(Int16Array);
      expect(expected.signed).toBe(true);
      expectIdentical(decodeFile(name), expected);
    },
  );

  test('emri_small_RLE equals emri_small, all 10 frames (BitsStored 12 in 16)', () => {
    const rle = readCorpusImage('emri_small_RLE.dcm');
    const native = readCorpusImage('emri_small.dcm');
    expect(rle.numberOfFrames).toBe(10);
    expect(native.frames).toHaveLength(10);
    for (let f = 0; f < 10; f++) {
      const a = decodeFrame(rle.transferSyntaxUID, rle.frames[f], rle.info);
      const b = decodeFrame(native.transferSyntaxUID, native.frames[f], native.info);
      expect(a.bitsStored).toBe(12);
      expect(a.pixels).toBeInstanceOf(Uint16Array);
      expectIdentical(a, b);
    }
  });

  test('693_J2KR equals 693_UNCR (their BitsStored differ, 16 vs 14; the values do not)', () => {
    expectIdentical(decodeFile('693_J2KR.dcm'), decodeFile('693_UNCR.dcm'), false);
  });

  test('SC_rgb_rle equals SC_rgb (colour RLE: three byte planes, interleaved output)', () => {
    const expected = decodeFile('SC_rgb.dcm');
    expect(expected.photometricInterpretation).toBe('RGB');
    const actual = decodeFile('SC_rgb_rle.dcm');
    expect(actual.photometricInterpretation).toBe('RGB');
    expectIdentical(actual, expected);
  });

  test('OBXXXX1A_rle_2frame frame 1 equals OBXXXX1A', () => {
    const actual = decodeFile('OBXXXX1A_rle_2frame.dcm', 0);
    expect(actual.photometricInterpretation).toBe('PALETTE COLOR');
    expectIdentical(actual, decodeFile('OBXXXX1A.dcm'));
  });

  test('JPEG lossless and JPEG-LS files decode to their declared size', () => {
    for (const name of ['JLSL_16_15_1_1F.dcm', 'JLSL_RGB_ILV0.dcm', 'JPGLosslessP14SV1_1s_1f_8b.dcm', 'JPEG-LL.dcm']) {
      const image = readCorpusImage(name);
      const decoded = decodeFrame(image.transferSyntaxUID, image.frames[0], image.info);
      expect(decoded.pixels.length).toBe(image.info.rows * image.info.columns * image.info.samplesPerPixel);
      expect(decoded.signed).toBe(image.info.pixelRepresentation === 1);
    }
  });

  test('JLSL_16_15_1_1F: 15-bit signed values are sign-extended into Int16', () => {
    const decoded = decodeFile('JLSL_16_15_1_1F.dcm');
    expect(decoded.pixels).toBeInstanceOf(Int16Array);
    expect(decoded.bitsStored).toBe(15);
    for (const v of decoded.pixels) {
      expect(v).toBeGreaterThanOrEqual(-(1 << 14));
      expect(v).toBeLessThan(1 << 14);
    }
  });

  test('JLSL_RGB_ILV0 (JPEG-LS, interleave mode none) equals the DCMTK rendering', () => {
    const decoded = decodeFile('JLSL_RGB_ILV0.dcm');
    const reference = readReferencePng('JLSL_RGB_ILV0.f1.default.png');
    expect(reference?.channels).toBe(3);
    expect(decoded.photometricInterpretation).toBe('RGB');
    expect(firstDifference(decoded.pixels, reference!.data)).toBe(-1);
  });

  test('color-pl (native, PlanarConfiguration 1) comes out interleaved, equal to the DCMTK rendering', () => {
    const decoded = decodeFile('color-pl.dcm');
    const reference = readReferencePng('color-pl.f1.default.png');
    expect(reference?.channels).toBe(3);
    expect(firstDifference(decoded.pixels, reference!.data)).toBe(-1);
  });

  test('SC_rgb_16bit keeps 16-bit colour samples', () => {
    const decoded = decodeFile('SC_rgb_16bit.dcm');
    expect(decoded.pixels).toBeInstanceOf(Uint16Array);
    expect(decoded.pixels.length).toBe(100 * 100 * 3);
  });

  test('liver_1frame (BitsAllocated 1) unpacks to 0/1 per pixel', () => {
    const decoded = decodeFile('liver_1frame.dcm');
    expect(decoded.pixels).toBeInstanceOf(Uint8Array);
    expect(decoded.bitsStored).toBe(1);
    expect(decoded.pixels.length).toBe(512 * 512);
    let ones = 0;
    for (const v of decoded.pixels) ones += v;
    expect(ones).toBeGreaterThan(0);
    expect(ones).toBeLessThan(512 * 512);
    expect(Array.from(decoded.pixels).every((v) => v === 0 || v === 1)).toBe(true);
  });

  test('image_dfl (deflated; dcmjs hands over inflated bytes) decodes like explicit LE', () => {
    const image = readCorpusImage('image_dfl.dcm');
    expect(image.transferSyntaxUID).toBe(TransferSyntax.DeflatedExplicitVRLittleEndian);
    const decoded = decodeFrame(image.transferSyntaxUID, image.frames[0], image.info);
    const asExplicit = decodeFrame(TransferSyntax.ExplicitVRLittleEndian, image.frames[0], image.info);
    expectIdentical(decoded, asExplicit);
  });
});

describe('lossy syntaxes stay close to their relatives', () => {
  // JPEG-LL (lossless), JPEG2000 (.4.91) and JPGExtended (12-bit, .4.51) are the same NM image.
  test('JPGExtended (12-bit JPEG) against JPEG-LL', () => {
    const lossless = decodeFile('JPEG-LL.dcm');
    const extended = decodeFile('JPGExtended.dcm');
    expect(extended.pixels).toBeInstanceOf(Uint16Array);
    expect(extended.bitsStored).toBe(12);
    const peak = range(lossless.pixels);
    expect(psnr(extended.pixels, lossless.pixels, peak)).toBeGreaterThan(30);
  });

  test('JPEG2000 (.4.91) against JPEG-LL', () => {
    const lossless = decodeFile('JPEG-LL.dcm');
    const j2k = decodeFile('JPEG2000.dcm');
    expect(j2k.pixels).toBeInstanceOf(Int16Array);
    const peak = range(lossless.pixels);
    expect(psnr(j2k.pixels, lossless.pixels, peak)).toBeGreaterThan(30);
  });

  test.each(['SC_rgb_jpeg_dcmtk.dcm', 'SC_rgb_dcmtk_+eb+cy+np.dcm'])('%s: libjpeg-turbo gives RGB close to SC_rgb', (name) => {
    const original = decodeFile('SC_rgb.dcm');
    const decoded = decodeFile(name);
    expect(decoded.photometricInterpretation).toBe('RGB');
    expect(decoded.pixels).toBeInstanceOf(Uint8Array);
    // +cy subsamples chroma 4:2:2, so the second file is further from the original.
    expect(psnr(decoded.pixels, original.pixels, 255)).toBeGreaterThan(27);
  });

  test.each(['SC_rgb_jpeg_dcmtk', 'SC_rgb_dcmtk_+eb+cy+np'])('%s: identical to the DCMTK decode (dcmj2pnm, no window)', (name) => {
    const decoded = decodeFile(`${name}.dcm`);
    const reference = readReferencePng(`${name}.f1.default.png`);
    expect(reference?.channels).toBe(3);
    expect(firstDifference(decoded.pixels, reference!.data)).toBe(-1);
  });

  test('native YBR_FULL_422 upsamples to YBR_FULL with the same luma as the YBR_FULL file', () => {
    const full = decodeFile('SC_ybr_full_uncompressed.dcm');
    const sub = decodeFile('SC_ybr_full_422_uncompressed.dcm');
    expect(sub.photometricInterpretation).toBe('YBR_FULL');
    expect(sub.pixels.length).toBe(full.pixels.length);
    const lumaFull = Array.from(full.pixels).filter((_, i) => i % 3 === 0);
    const lumaSub = Array.from(sub.pixels).filter((_, i) => i % 3 === 0);
    expect(firstDifference(lumaSub, lumaFull)).toBe(-1);
    expect(psnr(sub.pixels, full.pixels, 255)).toBeGreaterThan(30);
  });
});

describe('HTJ2K (no corpus file: encode MR_small with OpenJPH)', () => {
  test('lossless round trip of MR_small', () => {
    const image = readCorpusImage('MR_small.dcm');
    const original = decodeFrame(image.transferSyntaxUID, image.frames[0], image.info);
    const ojph = openjphModule();
    const encoder = new ojph.HTJ2KEncoder();
    let encoded: Uint8Array;
    try {
      const raw = new Uint8Array(original.pixels.buffer, original.pixels.byteOffset, original.pixels.byteLength);
      encoder.getDecodedBuffer({ width: 64, height: 64, bitsPerSample: 16, componentCount: 1, isSigned: true, isUsingColorTransform: false }).set(raw);
      encoder.encode();
      encoded = encoder.getEncodedBuffer().slice();
    } finally {
      encoder.delete();
    }
    expect(encoded.length).toBeGreaterThan(100);
    for (const uid of [TransferSyntax.HTJ2KLossless, TransferSyntax.HTJ2KLosslessRPCL, TransferSyntax.HTJ2K]) {
      expectIdentical(decodeFrame(uid, { data: encoded }, image.info), original);
    }
    expectCodecError(() => decodeFrame(TransferSyntax.HTJ2K, { data: encoded.subarray(0, 60) }, image.info));
  });

  test('colour with the reversible colour transform (YBR_RCT) comes back as the original RGB', () => {
    const image = readCorpusImage('SC_rgb.dcm');
    const original = decodeFrame(image.transferSyntaxUID, image.frames[0], image.info);
    const ojph = openjphModule();
    const encoder = new ojph.HTJ2KEncoder();
    let encoded: Uint8Array;
    try {
      encoder.getDecodedBuffer({ width: 100, height: 100, bitsPerSample: 8, componentCount: 3, isSigned: false, isUsingColorTransform: true }).set(original.pixels);
      encoder.encode();
      encoded = encoder.getEncodedBuffer().slice();
    } finally {
      encoder.delete();
    }
    const decoded = decodeFrame(TransferSyntax.HTJ2KLossless, { data: encoded }, { ...image.info, photometricInterpretation: 'YBR_RCT' });
    expect(decoded.photometricInterpretation).toBe('RGB');
    expectIdentical(decoded, original);
  });
});

describe('threads', () => {
  test('each worker thread loads its own codecs and decodes', async () => {
    const { Worker } = await import('node:worker_threads');
    const codecs = require.resolve('../render/codecs');
    const helper = require.resolve('./helpers/codecs-corpus');
    const source = `
      const { parentPort } = require('node:worker_threads');
      const { initCodecs, decodeFrame } = require(${JSON.stringify(codecs)});
      const { readCorpusImage } = require(${JSON.stringify(helper)});
      (async () => {
        await Promise.all([initCodecs(), initCodecs()]);
        const lengths = ['693_J2KR.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'JPGExtended.dcm', 'SC_rgb_jpeg_dcmtk.dcm'].map((name) => {
          const image = readCorpusImage(name);
          return decodeFrame(image.transferSyntaxUID, image.frames[0], image.info).pixels.length;
        });
        parentPort.postMessage(lengths);
      })().catch((err) => parentPort.postMessage(String(err)));`;
    const run = () =>
      new Promise<unknown>((resolve, reject) => {
        const worker = new Worker(source, { eval: true });
        worker.once('message', (message) => {
          void worker.terminate();
          resolve(message);
        });
        worker.once('error', reject);
      });
    const results = await Promise.all([run(), run()]);
    for (const lengths of results) expect(lengths).toEqual([512 * 512, 64 * 64, 256 * 1024, 100 * 100 * 3]);
  });
});

describe('native pixel formats', () => {
  const LE = TransferSyntax.ExplicitVRLittleEndian;

  test('BitsAllocated 1 with a bit offset (frames are not byte aligned, PS3.5 Annex D)', () => {
    // 3x3 = 9 pixels starting at bit 5 of byte 0: bits 5..13
    const pattern = [1, 0, 1, 1, 0, 0, 1, 0, 1];
    const data = new Uint8Array(2);
    pattern.forEach((bit, i) => {
      const at = 5 + i;
      data[at >> 3] |= bit << (at & 7);
    });
    data[0] |= 0b00011111; // the previous frame's bits, must be ignored
    const info = { ...base, rows: 3, columns: 3, bitsAllocated: 1, bitsStored: 1, highBit: 0 };
    const decoded = decodeFrame(LE, { data, bitOffset: 5 }, info);
    expect(Array.from(decoded.pixels)).toEqual(pattern);
    expect(decoded.pixels).toBeInstanceOf(Uint8Array);
    expect(decoded.bitsStored).toBe(1);
    expectCodecError(() => decodeFrame(LE, { data: data.subarray(0, 1), bitOffset: 5 }, info), 'FRAME_TOO_SHORT');
  });

  test('BitsAllocated 1 over many whole bytes', () => {
    const info = { ...base, rows: 4, columns: 10, bitsAllocated: 1, bitsStored: 1, highBit: 0 };
    const data = new Uint8Array([0xa5, 0x0f, 0xf0, 0x81, 0x7e, 0xff]);
    for (const offset of [0, 3]) {
      const decoded = decodeFrame(LE, { data, bitOffset: offset }, info);
      for (let i = 0; i < 40; i++) expect(decoded.pixels[i]).toBe((data[(i + offset) >> 3] >> ((i + offset) & 7)) & 1);
    }
  });

  test('sign extension with BitsStored 12 in 16, HighBit 11; bits above HighBit are ignored', () => {
    const info = { ...base, bitsStored: 12, highBit: 11, pixelRepresentation: 1 };
    const words = new Uint16Array([0x0fff, 0x0800, 0x07ff, 0xf001]); // -1, -2048, 2047, 1 (overlay bits set)
    const decoded = decodeFrame(LE, { data: new Uint8Array(words.buffer) }, info);
    expect(decoded.pixels).toBeInstanceOf(Int16Array);
    expect(Array.from(decoded.pixels)).toEqual([-1, -2048, 2047, 1]);
    expect(decoded.signed).toBe(true);
    expect(decoded.bitsStored).toBe(12);
  });

  test('HighBit above BitsStored-1: stored bits are shifted down (PS3.5 8.1.1)', () => {
    const info = { ...base, bitsStored: 12, highBit: 15, pixelRepresentation: 0 };
    const words = new Uint16Array([0xfff0, 0x0010, 0x800f, 0x1234]);
    const decoded = decodeFrame(LE, { data: new Uint8Array(words.buffer) }, info);
    expect(Array.from(decoded.pixels)).toEqual([0xfff, 0x001, 0x800, 0x123]);
    const signed = decodeFrame(LE, { data: new Uint8Array(words.buffer) }, { ...info, pixelRepresentation: 1 });
    expect(Array.from(signed.pixels)).toEqual([-1, 1, -2048, 0x123]);
  });

  test('narrowest array: BitsStored 8 in 16 gives Uint8Array / Int8Array', () => {
    const words = new Uint16Array([0xff80, 0x007f, 0x0001, 0x00ff]);
    const u = decodeFrame(LE, { data: new Uint8Array(words.buffer) }, { ...base, bitsStored: 8, highBit: 7 });
    expect(u.pixels).toBeInstanceOf(Uint8Array);
    expect(Array.from(u.pixels)).toEqual([0x80, 0x7f, 1, 0xff]);
    const s = decodeFrame(LE, { data: new Uint8Array(words.buffer) }, { ...base, bitsStored: 8, highBit: 7, pixelRepresentation: 1 });
    expect(s.pixels).toBeInstanceOf(Int8Array);
    expect(Array.from(s.pixels)).toEqual([-128, 127, 1, -1]);
  });

  test('16-bit, no masking: zero-copy view when aligned, copy when not', () => {
    const words = new Uint16Array([1, 2, 65535, 4]);
    const data = new Uint8Array(words.buffer);
    const view = decodeFrame(LE, { data }, base);
    expect(view.pixels.buffer).toBe(data.buffer);
    expect(Array.from(view.pixels)).toEqual([1, 2, 65535, 4]);
    const odd = new Uint8Array(9);
    odd.set(data, 1);
    const copied = decodeFrame(LE, { data: odd.subarray(1) }, base);
    expect(copied.pixels.buffer).not.toBe(odd.buffer);
    expect(Array.from(copied.pixels)).toEqual([1, 2, 65535, 4]);
    const signed = decodeFrame(LE, { data }, { ...base, pixelRepresentation: 1 });
    expect(Array.from(signed.pixels)).toEqual([1, 2, -1, 4]);
  });

  test('Explicit VR Big Endian swaps 16- and 32-bit samples and floats', () => {
    const BE = TransferSyntax.ExplicitVRBigEndian;
    const be16 = new Uint8Array([0x12, 0x34, 0xff, 0xfe, 0x00, 0x01, 0x80, 0x00]);
    expect(Array.from(decodeFrame(BE, { data: be16 }, base).pixels)).toEqual([0x1234, 0xfffe, 1, 0x8000]);
    expect(Array.from(decodeFrame(BE, { data: be16 }, { ...base, pixelRepresentation: 1 }).pixels)).toEqual([0x1234, -2, 1, -32768]);
    const be32 = new Uint8Array([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x56, 0x78, 0x80, 0, 0, 0]);
    const info32 = { ...base, bitsAllocated: 32, bitsStored: 32, highBit: 31 };
    const u32 = decodeFrame(BE, { data: be32 }, info32);
    expect(u32.pixels).toBeInstanceOf(Uint32Array);
    expect(Array.from(u32.pixels)).toEqual([1, 0xffffffff, 0x12345678, 0x80000000]);
    expect(Array.from(decodeFrame(BE, { data: be32 }, { ...info32, pixelRepresentation: 1 }).pixels)).toEqual([1, -1, 0x12345678, -0x80000000]);
    const f32 = new Float32Array([1.5, -2.25, 1e-3, 3e30]);
    const beFloat = new Uint8Array(16);
    new DataView(beFloat.buffer).setFloat32(0, f32[0]);
    new DataView(beFloat.buffer).setFloat32(4, f32[1]);
    new DataView(beFloat.buffer).setFloat32(8, f32[2]);
    new DataView(beFloat.buffer).setFloat32(12, f32[3]);
    const float = decodeFrame(BE, { data: beFloat }, { ...info32, pixelFormat: 'float32' });
    expect(float.pixels).toBeInstanceOf(Float32Array);
    expect(Array.from(float.pixels)).toEqual(Array.from(f32));
  });

  test('Float and Double Float Pixel Data', () => {
    const f64 = new Float64Array([-1.25, 0, 1e300, Math.PI]);
    const info = { ...base, bitsAllocated: 64, bitsStored: 64, highBit: 63, pixelFormat: 'float64' as const };
    const decoded = decodeFrame(TransferSyntax.ExplicitVRLittleEndian, { data: new Uint8Array(f64.buffer) }, info);
    expect(decoded.pixels).toBeInstanceOf(Float64Array);
    expect(Array.from(decoded.pixels)).toEqual(Array.from(f64));
    expect(decoded.signed).toBe(true);
    expectCodecError(() => decodeFrame(TransferSyntax.ExplicitVRLittleEndian, { data: new Uint8Array(31) }, info), 'FRAME_TOO_SHORT');
  });

  test('32-bit integers with BitsStored 16 come out as Int16Array', () => {
    const data = new Uint8Array(new Int32Array([-3, 70000, 5, -70000]).buffer);
    const decoded = decodeFrame(LE, { data }, { ...base, bitsAllocated: 32, bitsStored: 16, highBit: 15, pixelRepresentation: 1 });
    expect(decoded.pixels).toBeInstanceOf(Int16Array);
    expect(Array.from(decoded.pixels)).toEqual([-3, 70000 - 65536, 5, -70000 + 65536]);
  });

  test('PlanarConfiguration 1 to interleaved (8- and 16-bit)', () => {
    const info = { ...base, samplesPerPixel: 3, photometricInterpretation: 'RGB', planarConfiguration: 1, bitsAllocated: 8, bitsStored: 8, highBit: 7 };
    const planes = new Uint8Array([1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24]);
    const decoded = decodeFrame(LE, { data: planes }, info);
    expect(Array.from(decoded.pixels)).toEqual([1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 24]);
    const planes16 = new Uint8Array(new Uint16Array([1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 1000]).buffer);
    const decoded16 = decodeFrame(LE, { data: planes16 }, { ...info, bitsAllocated: 16, bitsStored: 16, highBit: 15 });
    expect(decoded16.pixels).toBeInstanceOf(Uint16Array);
    expect(Array.from(decoded16.pixels)).toEqual([1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 1000]);
  });

  test('YBR_FULL_422 (PS3.3 C.7.6.3.1.2): Y1 Y2 Cb Cr per pair, upsampled and reported YBR_FULL', () => {
    const info = { ...base, samplesPerPixel: 3, photometricInterpretation: 'YBR_FULL_422', bitsAllocated: 8, bitsStored: 8, highBit: 7 };
    const data = new Uint8Array([10, 20, 100, 200, 30, 40, 110, 210]);
    const decoded = decodeFrame(LE, { data }, info);
    expect(decoded.photometricInterpretation).toBe('YBR_FULL');
    expect(Array.from(decoded.pixels)).toEqual([10, 100, 200, 20, 100, 200, 30, 110, 210, 40, 110, 210]);
    expectCodecError(() => decodeFrame(LE, { data: data.subarray(0, 7) }, info), 'FRAME_TOO_SHORT');
  });
});

describe('hostile input ends in CodecError', () => {
  const LE = TransferSyntax.ExplicitVRLittleEndian;

  test('truncated native frame', () => {
    expectCodecError(() => decodeFrame(LE, { data: new Uint8Array(7) }, base), 'FRAME_TOO_SHORT');
    const image = readCorpusImage('MR_small.dcm');
    expectCodecError(() => decodeFrame(LE, { data: image.frames[0].data.subarray(0, 8191) }, image.info), 'FRAME_TOO_SHORT');
  });

  test.each(['MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm', '693_J2KR.dcm', 'JPEG-LL.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'JPGExtended.dcm', 'SC_rgb_rle.dcm'])(
    'truncated %s throws CodecError, and the codec still works afterwards',
    (name) => {
      const image = readCorpusImage(name);
      const data = image.frames[0].data;
      // data.length - 3 cuts the end marker even behind a padding byte.
      for (const length of [0, 3, 20, 70, Math.floor(data.length / 2), data.length - 3]) {
        expectCodecError(() => decodeFrame(image.transferSyntaxUID, { data: data.slice(0, length) }, image.info));
      }
      expect(decodeFrame(image.transferSyntaxUID, image.frames[0], image.info).pixels.length).toBe(
        image.info.rows * image.info.columns * image.info.samplesPerPixel,
      );
    },
  );

  test('dimensions that differ from the dataset are refused before decoding', () => {
    for (const name of ['MR_small_jp2klossless.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'JPEG-LL.dcm', 'MR_small_RLE.dcm']) {
      const image = readCorpusImage(name);
      expectCodecError(() => decodeFrame(image.transferSyntaxUID, image.frames[0], { ...image.info, rows: image.info.rows + 1 }));
      expectCodecError(() => decodeFrame(image.transferSyntaxUID, image.frames[0], { ...image.info, samplesPerPixel: image.info.samplesPerPixel === 1 ? 3 : 1 }));
    }
  });

  test('random bytes under every compressed syntax', () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 24) & 0xff;
    const info = { ...base, rows: 64, columns: 64 };
    for (const uid of ['1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.201']) {
      for (let n = 0; n < 20; n++) {
        const data = Uint8Array.from({ length: 200 + n * 37 }, random);
        expectCodecError(() => decodeFrame(uid, { data }, info));
      }
    }
  });

  test('a corrupted body inside valid headers', () => {
    for (const name of ['MR_small_jp2klossless.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'JPEG-LL.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'JPGExtended.dcm']) {
      const image = readCorpusImage(name);
      const data = image.frames[0].data.slice();
      for (let i = Math.floor(data.length / 3); i < data.length - 2; i += 7) data[i] ^= 0x5a;
      try {
        const decoded = decodeFrame(image.transferSyntaxUID, { data }, image.info);
        // Entropy-coded data may decode to garbage of the right size; that is acceptable, a crash is not.
        expect(decoded.pixels.length).toBe(image.info.rows * image.info.columns * image.info.samplesPerPixel);
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError);
      }
    }
  });

  test('impossible attributes', () => {
    const data = new Uint8Array(64);
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, rows: 0 }), 'INVALID_ATTRIBUTES');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, rows: 70000 }), 'INVALID_ATTRIBUTES');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, bitsStored: 17 }), 'INVALID_ATTRIBUTES');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, highBit: 16 }), 'INVALID_ATTRIBUTES');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, bitsAllocated: 12 }), 'UNSUPPORTED_PIXEL_FORMAT');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, samplesPerPixel: 4 }), 'UNSUPPORTED_PIXEL_FORMAT');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, pixelFormat: 'float32' }), 'INVALID_ATTRIBUTES');
    expectCodecError(() => decodeFrame(LE, { data }, { ...base, rows: 65535, columns: 65535, samplesPerPixel: 3 }), 'TOO_LARGE');
  });
});

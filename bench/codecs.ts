/**
 * Decode timings of the codec layer: median of N runs of decodeFrame per file, next to a baseline decoding the same
 * bitstream with the same codec family from another package (dcmjs-codecs, which builds OpenJPEG, CharLS and
 * libjpeg into one wasm), or, for native data, a bare copy of the frame bytes.
 *
 *   npx tsc -p . --outDir .out/codecs && node .out/codecs/bench/codecs.js [runs]
 */
import { performance } from 'node:perf_hooks';
import { decodeFrame, initCodecs } from '../render/codecs';
import { readCorpusImage } from '../test/helpers/codecs-corpus';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Context, NativeCodecs } = require('dcmjs-codecs');

function median(runs: number, fn: () => unknown): number {
  for (let i = 0; i < Math.max(5, runs >> 2); i++) fn(); // warm up: JIT and wasm heap growth
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

type Baseline = { name: string; run: (data: Uint8Array) => unknown };

function dcmjsCodecs(method: string, info: ReturnType<typeof readCorpusImage>['info']): Baseline {
  return {
    name: `dcmjs-codecs ${method}`,
    run: (data) =>
      NativeCodecs[method](
        new Context({
          width: info.columns,
          height: info.rows,
          bitsAllocated: info.bitsAllocated,
          bitsStored: info.bitsStored,
          samplesPerPixel: info.samplesPerPixel,
          pixelRepresentation: info.pixelRepresentation,
          planarConfiguration: info.planarConfiguration,
          photometricInterpretation: info.photometricInterpretation,
          encodedBuffer: data,
        }),
        {},
      ),
  };
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 21);
  await initCodecs();
  const cases: Array<{ file: string; label: string; baseline: (info: ReturnType<typeof readCorpusImage>['info']) => Baseline }> = [
    { file: '693_J2KR.dcm', label: 'JPEG 2000 lossless 512x512 16-bit', baseline: (i) => dcmjsCodecs('decodeJpeg2000', i) },
    { file: 'RG3_J2KR.dcm', label: 'JPEG 2000 lossless 1760x1760 10-bit', baseline: (i) => dcmjsCodecs('decodeJpeg2000', i) },
    { file: 'MR_small_jpeg_ls_lossless.dcm', label: 'JPEG-LS lossless 64x64 16-bit', baseline: (i) => dcmjsCodecs('decodeJpegLs', i) },
    { file: 'JPEG-LL.dcm', label: 'JPEG lossless SV1 256x1024 16-bit', baseline: (i) => dcmjsCodecs('decodeJpeg', i) },
    { file: 'JPGExtended.dcm', label: 'JPEG extended 12-bit 256x1024', baseline: (i) => dcmjsCodecs('decodeJpeg', i) },
    { file: 'SC_rgb_jpeg_dcmtk.dcm', label: 'JPEG baseline 8-bit RGB 100x100', baseline: (i) => dcmjsCodecs('decodeJpeg', i) },
    { file: '693_UNCR.dcm', label: 'native 512x512 14-in-16 signed (mask loop)', baseline: () => ({ name: 'copy of the bytes', run: (d) => d.slice() }) },
    { file: 'MR_small.dcm', label: 'native 64x64 16-bit (zero-copy view)', baseline: () => ({ name: 'copy of the bytes', run: (d) => d.slice() }) },
    { file: 'emri_small.dcm', label: 'native 64x64 12-in-16 (mask loop)', baseline: () => ({ name: 'copy of the bytes', run: (d) => d.slice() }) },
    { file: 'MR_small_RLE.dcm', label: 'RLE 64x64 16-bit', baseline: (i) => dcmjsCodecs('decodeRle', i) },
  ];
  console.log(`median of ${runs} runs, ms`);
  console.log(['case', 'decodeFrame', 'baseline', 'ratio', 'baseline is'].join('\t'));
  for (const c of cases) {
    const image = readCorpusImage(c.file);
    const frame = image.frames[0];
    const ours = median(runs, () => decodeFrame(image.transferSyntaxUID, frame, image.info));
    const baseline = c.baseline(image.info);
    let theirs = NaN;
    try {
      theirs = median(runs, () => baseline.run(frame.data));
    } catch {
      // a baseline that cannot decode this file is reported as n/a
    }
    console.log([c.label, ours.toFixed(3), Number.isNaN(theirs) ? 'n/a' : theirs.toFixed(3), Number.isNaN(theirs) ? '' : (ours / theirs).toFixed(2), baseline.name].join('\t'));
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

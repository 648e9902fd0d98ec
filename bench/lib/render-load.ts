/**
 * The rendered-frame loads of the measuring tools (profile.ts, cost.ts, ab.ts): the object, its frame and a
 * window, as bench/run.ts renders them, and the i-th request's window.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MR_SPEC, MF_SPEC, mrPixels, mfPixels, part10, uid } from './dicom-synth';

export type LoadKind = 'ct' | 'mr' | 'cr' | 'mf';

export function renderLoad(which: string, root: string): { file: Buffer; frame: number; window: [number, number] } {
  const corpus = (name: string) => fs.readFileSync(path.join(root, 'test/fixtures/corpus/dicom', name));
  const ids = () => ({ study: uid(), series: uid(), sop: uid(), patientID: 'LOAD' });
  switch (which) {
    case 'ct': return { file: corpus('693_UNCR.dcm'), frame: 1, window: [40, 400] };
    case 'cr': return { file: corpus('RG3_J2KR.dcm'), frame: 1, window: [550, 1024] };
    case 'mr': return { file: part10(MR_SPEC, ids(), mrPixels()), frame: 1, window: [1700, 3000] };
    case 'mf': return { file: part10(MF_SPEC, ids(), mfPixels(MF_SPEC.frames!)), frame: 12, window: [1700, 3000] };
    default: throw new Error(`unknown load "${which}": ct, mr, cr or mf`);
  }
}

/**
 * The `window=` of request i: centres over a fixed range (300 units, as bench/run.ts's), each one new, so that
 * no cache answers and the images stay as dark or as bright as the bench's whatever the request count.
 */
export const nthWindow = (w: [number, number], i: number) => `${w[0] + (i % 600) * 0.5 + i / 1e5},${w[1]},linear`;

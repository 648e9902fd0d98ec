/**
 * Test-only: load a corpus file into what the renderer receives in production: the dataset as DICOM JSON
 * (via the project's parser dicom/parse.ts), its ImageDescription, and decoded frames (render/codecs
 * decodeFrame when that module is present; otherwise native data decoded here, compressed data = null).
 */
import * as fs from 'fs';
import * as path from 'path';
import { inflatedDataset, parseDicom } from '../../dicom/parse';
import { locateFrames } from '../../dicom/frames';
import { describeImage } from '../../render/describe';
import type { DecodedFrame, FrameBytes, ImageDescription } from '../../render/types';
import { decodeFrame, initCodecs } from '../../render/codecs';

export const corpusDir = process.env.DICOM_CORPUS ?? path.join(process.cwd(), 'test/fixtures/corpus');

export interface Fixture {
  name: string;
  transferSyntaxUID: string;
  desc: ImageDescription;
  frames: FrameBytes[];
}

export function loadFixture(name: string): Fixture {
  const buf = fs.readFileSync(path.join(corpusDir, 'dicom', name + '.dcm'));
  const p = parseDicom(buf);
  const desc = describeImage(p.dataset);
  if (!desc) throw new Error(`${name}: not an image`);
  const f = desc.frame;
  // deflated transfer syntax: offsets refer to the inflated dataset
  const bytes = p.deflated ? inflatedDataset(buf, p.datasetOffset) : buf;
  const locs = locateFrames(p, { rows: f.rows, columns: f.columns, samplesPerPixel: f.samplesPerPixel, bitsAllocated: f.bitsAllocated, numberOfFrames: desc.numberOfFrames, photometricInterpretation: f.photometricInterpretation },
    (o, l) => bytes.subarray(o, o + l));
  const frames = locs.map((loc) => ({
    data: new Uint8Array(Buffer.concat(loc.ranges.map((r) => bytes.subarray(r.offset, r.offset + r.length)))),
    ...(loc.bitOffset !== undefined ? { bitOffset: loc.bitOffset } : {}),
  }));
  return { name, transferSyntaxUID: p.transferSyntaxUID, desc, frames };
}

/** Decode frame `n` (1-based) with the codec layer, as the server does. */
export async function decodeFixtureFrame(fx: Fixture, n: number): Promise<DecodedFrame> {
  await initCodecs();
  return decodeFrame(fx.transferSyntaxUID, fx.frames[n - 1], fx.desc.frame);
}

/** Reference rows of reference/commands.tsv. */
export interface ReferenceRow { name: string; frame: number; variant: string; center?: number; width?: number; command: string }

export function referenceRows(): ReferenceRow[] {
  const text = fs.readFileSync(path.join(corpusDir, 'reference', 'commands.tsv'), 'utf8');
  return text.trim().split('\n').slice(1).map((line) => {
    const [name, frame, variant, center, width, command] = line.split('\t');
    return { name, frame: Number(frame), variant, center: center ? Number(center) : undefined, width: width ? Number(width) : undefined, command };
  });
}

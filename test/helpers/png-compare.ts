/**
 * Reading PNGs (ours and DCMTK's) as 1 or 3 channels and comparing them pixel by pixel.
 */
import * as fs from 'fs';
import * as path from 'path';
import { PNG } from 'pngjs';

export interface Image8 { width: number; height: number; channels: 1 | 3; data: Uint8Array }
export interface Diff { exact: number; within1: number; maxDiff: number }

/** A PNG as grey (when every pixel has R=G=B) or RGB. */
export function decodePng(buf: Buffer): Image8 {
  const png = PNG.sync.read(buf);
  const n = png.width * png.height;
  const rgba = png.data;
  let grey = true;
  for (let i = 0; i < n && grey; i++) grey = rgba[4 * i] === rgba[4 * i + 1] && rgba[4 * i] === rgba[4 * i + 2];
  const channels = grey ? 1 : 3;
  const data = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) data[i * channels + c] = rgba[4 * i + c];
  return { width: png.width, height: png.height, channels, data };
}

export function compare(ours: Image8, ref: Image8): Diff {
  if (ours.width !== ref.width || ours.height !== ref.height) return { exact: 0, within1: 0, maxDiff: 255 };
  const n = ours.width * ours.height;
  const c = Math.max(ours.channels, ref.channels);
  let exact = 0, within = 0, max = 0;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < c; k++) {
      const a = ours.data[i * ours.channels + (ours.channels === 1 ? 0 : k)];
      const b = ref.data[i * ref.channels + (ref.channels === 1 ? 0 : k)];
      const d = Math.abs(a - b);
      if (d === 0) exact++;
      if (d <= 1) within++;
      if (d > max) max = d;
    }
  }
  return { exact: (100 * exact) / (n * c), within1: (100 * within) / (n * c), maxDiff: max };
}

export interface ReferenceRow { name: string; frame: number; variant: string; center?: number; width?: number }

export function referenceRows(corpus: string): ReferenceRow[] {
  const lines = fs.readFileSync(path.join(corpus, 'reference', 'commands.tsv'), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => {
    const [name, frame, variant, center, width] = l.split('\t');
    return { name, frame: Number(frame), variant, center: center ? Number(center) : undefined, width: width ? Number(width) : undefined };
  });
}

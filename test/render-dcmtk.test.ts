/**
 * Our renderings against DCMTK 3.6.7's (test/fixtures/corpus/reference, commands in commands.tsv):
 * every row must have >= 99.5% of its pixels (per channel for colour) within +-1 grey level.
 * Prints a per-row table (% exact, % within +-1, max difference) and writes our PNGs under .out/render-png.
 */
import * as fs from 'fs';
import * as path from 'path';
import { renderFrame, encodeImage, RenderOptions } from '../render';
import { compare, decodePng, Diff } from './helpers/png-compare';
import { corpusDir, decodeFixtureFrame, Fixture, loadFixture, referenceRows, ReferenceRow } from './helpers/render-fixture';
import { report } from './helpers/report';

const outDir = path.join(process.cwd(), '.out', 'render-png');
fs.mkdirSync(outDir, { recursive: true });

function optionsFor(row: ReferenceRow): RenderOptions {
  switch (row.variant) {
    case 'ww': return { window: { center: row.center!, width: row.width!, function: 'LINEAR' } };
    case 'sigmoid': return { window: { center: row.center!, width: row.width!, function: 'SIGMOID' } };
    case 'noovl': return { overlays: false };
    default: return {};
  }
}

const readReference = (file: string) => decodePng(fs.readFileSync(file));

const rows = referenceRows();
const fixtures = new Map<string, Fixture>();
const results: Array<{ row: ReferenceRow; diff?: Diff; note?: string }> = [];

describe('rendering matches DCMTK 3.6.7 (dcm2pnm) within +-1 on >= 99.5% of pixels', () => {
  afterAll(() => {
    const lines = ['file                               frame variant   exact%  within1%  maxdiff'];
    for (const r of results) {
      const id = `${r.row.name.padEnd(34)} ${String(r.row.frame).padStart(5)} ${r.row.variant.padEnd(8)}`;
      lines.push(r.diff ? `${id} ${r.diff.exact.toFixed(2).padStart(7)} ${r.diff.within1.toFixed(2).padStart(9)} ${String(r.diff.maxDiff).padStart(8)}` : `${id}  ${r.note}`);
    }
    // eslint-disable-next-line no-console
    report('render-dcmtk', lines.join('\n'));
  });

  test.each(rows.map((r) => [`${r.name} f${r.frame} ${r.variant}`, r] as const))('%s', async (_label, row) => {
    let fx = fixtures.get(row.name);
    if (!fx) { fx = loadFixture(row.name); fixtures.set(row.name, fx); }
    const decoded = await decodeFixtureFrame(fx, row.frame);
    const ours = renderFrame(fx.desc, row.frame, decoded, optionsFor(row));
    fs.writeFileSync(path.join(outDir, `${row.name}.f${row.frame}.${row.variant}.png`), encodeImage(ours, 'image/png'));
    const ref = readReference(path.join(corpusDir, 'reference', `${row.name}.f${row.frame}.${row.variant}.png`));
    const diff = compare(ours, ref);
    results.push({ row, diff });
    expect({ size: [ours.width, ours.height], within1: diff.within1 >= 99.5 }).toEqual({ size: [ref.width, ref.height], within1: true });
  });
});

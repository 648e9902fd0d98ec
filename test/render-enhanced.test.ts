/**
 * Enhanced multi-frame objects whose VOI lives in the functional groups (PS3.3 C.7.6.16.2.9 Pixel Value
 * Transformation, C.7.6.16.2.10 Frame VOI LUT). DCMTK 3.6.7 cannot render eCT_Supplemental's default view,
 * so the expectation is computed here, independently, from the stored values with the C.11.2.1.2.1 formula.
 */
import * as fs from 'fs';
import * as path from 'path';
import { encodeImage, renderFrame } from '../render';
import { decodeFixtureFrame, loadFixture } from './helpers/render-fixture';

describe('eCT_Supplemental default rendering uses the functional groups', () => {
  const fx = loadFixture('eCT_Supplemental');

  test('the description carries the Shared Functional Groups rescale and window', () => {
    const g = fx.desc.sharedGroup!;
    expect(g.modalityLut).toMatchObject({ kind: 'rescale', slope: 1, intercept: -1024 });
    expect(g.voi!.windows[0]).toEqual({ center: 49, width: 102 });
    expect(fx.desc.voi.windows).toHaveLength(0); // nothing at the top level: DCMTK sees no window
  });

  test.each([1, 2])('frame %i matches the standard formula with the frame window', async (n) => {
    const decoded = (await decodeFixtureFrame(fx, n))!;
    const img = renderFrame(fx.desc, n, decoded, {});
    fs.mkdirSync(path.join(process.cwd(), '.out', 'render-png'), { recursive: true });
    fs.writeFileSync(path.join(process.cwd(), '.out', 'render-png', `eCT_Supplemental.f${n}.default.png`), encodeImage(img, 'image/png'));
    const c = 49, w = 102; // from (5200,9229) > (0028,9132)
    let within = 0, exact = 0;
    for (let i = 0; i < decoded.pixels.length; i++) {
      const x = decoded.pixels[i] * 1 - 1024; // (5200,9229) > (0028,9145): slope 1, intercept -1024
      const y = x <= c - 0.5 - (w - 1) / 2 ? 0 : x > c - 0.5 + (w - 1) / 2 ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
      const d = Math.abs(img.data[i] - y);
      if (d < 1) exact++;
      if (d <= 1) within++;
    }
    expect(within / decoded.pixels.length).toBeGreaterThanOrEqual(0.995);
    expect(exact / decoded.pixels.length).toBeGreaterThanOrEqual(0.99);
    // a soft-tissue window on a CT: both black (air) and white (bone) pixels are present
    expect(img.data.includes(0) && img.data.includes(255)).toBe(true);
  });
});

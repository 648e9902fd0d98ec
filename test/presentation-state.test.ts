/**
 * Grayscale Softcopy Presentation States applied when rendering (issue 16 item 2), through HTTP: the Instance
 * Rendered resource of a stored GSPS renders its referenced image with the PS applied. Fixtures and references:
 * test/fixtures/gsps (README.md, make.py): each PS made by DCMTK dcmpsmk and edited with pydicom; references by
 * DCMTK dcmp2pgm (image + PS -> bitmap). dcmp2pgm draws neither geometric shutters, nor the displayed area, nor
 * graphic and text annotations: those cases are checked against the geometry of PS3.3 C.7.6.11 / C.10.4 /
 * C.10.5 on top of a dcmp2pgm reference of the same PS without them.
 */
import * as fs from 'fs';
import * as path from 'path';
import request from 'supertest';
import { startServer, TestServer, storeFile, binaryParser, corpusFile, parseMultipartResponse } from './helpers/server';
import { compare, decodePng, Image8 } from './helpers/png-compare';

const DIR = path.join(process.cwd(), 'test/fixtures/gsps');
const cases = fs.readFileSync(path.join(DIR, 'cases.tsv'), 'utf8').trim().split('\n').slice(1)
  .map((l) => { const [name, image, kind] = l.split('\t'); return { name, image, kind }; });
const reference = (name: string) => decodePng(fs.readFileSync(path.join(DIR, 'reference', `${name}.png`)));

let srv: TestServer;
const psUrl = new Map<string, string>();

beforeAll(async () => {
  srv = await startServer();
  for (const image of new Set(cases.map((c) => c.image))) await storeFile(srv, fs.readFileSync(corpusFile(image)));
  for (const c of cases) psUrl.set(c.name, await storeFile(srv, fs.readFileSync(path.join(DIR, 'ps', `${c.name}.dcm`))));
}, 60_000);
afterAll(async () => { await srv.stop(); });

async function rendered(name: string, query = 'accept=image/png'): Promise<Image8> {
  const res = await request(srv.app).get(`${psUrl.get(name)}/rendered?${query}`).buffer(true).parse(binaryParser);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^image\/png/);
  return decodePng(res.body);
}

describe('rendered presentation state matches DCMTK dcmp2pgm', () => {
  test.each(cases.filter((c) => c.kind === 'exact').map((c) => [c.name, c] as const))('%s', async (_n, c) => {
    const ours = await rendered(c.name);
    const ref = reference(c.name);
    expect([ours.width, ours.height]).toEqual([ref.width, ref.height]);
    const d = compare(ours, ref);
    expect(d.within1).toBeGreaterThanOrEqual(99.5);
  });
});

describe('the presentation state changes the rendering', () => {
  // guards against a reference that would equal the plain image: each case differs from its neighbour
  test('window, inversion, rotation and overlays each change the pixels', async () => {
    const w = await rendered('ct-window');
    for (const other of ['ct-novoi', 'ct-inverse', 'ct-rot90-flipN', 'ct-rot0-flipY', 'ct-voilut', 'ct-voi-per-image', 'ct-rescale', 'ct-plut-window']) {
      expect(compare(await rendered(other), w).exact).toBeLessThan(90);
    }
  });
});

/**
 * dcmp2pgm does not burn activated overlays into its bitmap (DCMTK's viewer draws them apart, through
 * DVPresentationState::getOverlayData); we do, in the activation layer's grey (white when it has none). So: the
 * overlay's pixels are 255, every other pixel is dcmp2pgm's.
 */
describe('activated overlays are burned in', () => {
  // the PS overlay of make.py: 40 rows x 60 columns at origin (row 20, column 30)
  const bit = (x: number, y: number, border: boolean) => (Math.floor(x / 6) + Math.floor(y / 5)) % 2 === 0 || (border && (y === 0 || x === 59));
  test.each([['ct-ps-overlay', false, true, 255], ['ct-ps-overlay-rot90-flip', true, false, 255], ['ct-ps-overlay-grey', false, true, 127]] as const)('%s', async (name, transposed, border, grey) => {
    const ours = await rendered(name);
    const ref = reference(name);
    let bad = 0, on = 0;
    for (let Y = 0; Y < 128; Y++) for (let X = 0; X < 128; X++) {
      // rotation by 90 then a horizontal flip is a transposition: image (column c, row r) shows at (r, c)
      const c = transposed ? Y : X, r = transposed ? X : Y;
      const ox = c - 29, oy = r - 19;
      const set = ox >= 0 && ox < 60 && oy >= 0 && oy < 40 && bit(ox, oy, border);
      if (set) on++;
      // the layer's Recommended Display Grayscale Value 32768 is 255 * 32768 / 65535, truncated
      const want = set ? grey : ref.data[Y * 128 + X];
      if (ours.data[Y * 128 + X] !== want) bad++;
    }
    expect(on).toBeGreaterThan(1000);
    expect(bad).toBe(0);
  });

  test("the image's own overlay, activated by the PS, differs from the PS that ignores it only in white pixels", async () => {
    const on = await rendered('mr-ovl-activated');
    const off = await rendered('mr-ovl-ignored');
    expect(compare(off, reference('mr-ovl-activated')).exact).toBe(100);
    let changed = 0, notWhite = 0;
    for (let i = 0; i < on.data.length; i++) if (on.data[i] !== off.data[i]) { changed++; if (on.data[i] !== 255) notWhite++; }
    expect(changed).toBeGreaterThan(100);
    expect(notWhite).toBe(0);
  });
});

/** The dcmp2pgm reference of the same PS without what dcmp2pgm does not draw. */
const base = (rotated = false) => reference(rotated ? 'ct-rot90-flipN' : 'ct-window');

describe('shutters, displayed area and annotations (PS3.3 geometry)', () => {
  test('rectangular + circular shutter: outside either shape is the Shutter Presentation Value', async () => {
    const ours = await rendered('ct-shutter-rect-circle');
    const ref = base();
    let bad = 0;
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) {
      const r = y + 1, c = x + 1;
      const open = c >= 10 && c <= 110 && r >= 20 && r <= 100 && (r - 64) ** 2 + (c - 60) ** 2 <= 45 ** 2;
      const want = open ? ref.data[y * 128 + x] : 255;
      if (Math.abs(ours.data[y * 128 + x] - want) > 1) bad++;
    }
    expect(bad).toBe(0);
  });

  test('polygonal shutter, then rotation by 90 degrees', async () => {
    const ours = await rendered('ct-shutter-polygon-rot90');
    const ref = base(true);
    // vertices (row, column): (10,10) (10,100) (120,64); pixel centres inside the triangle stay open
    const inside = (r: number, c: number) => {
      const v = [[10, 10], [10, 100], [120, 64]];
      let s = false;
      for (let i = 0, j = 2; i < 3; j = i++) {
        const [ri, ci] = v[i], [rj, cj] = v[j];
        if ((ri <= r && rj > r) || (rj <= r && ri > r)) { if (ci + ((r - ri) / (rj - ri)) * (cj - ci) <= c) s = !s; }
      }
      return s;
    };
    let bad = 0;
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) {
      // shown pixel (x, y) after a 90-degree clockwise rotation is image pixel (column y, row 127 - x)
      const r = 128 - x, c = y + 1;
      const want = inside(r, c) ? ref.data[y * 128 + x] : Math.trunc((255 * 32768) / 65535);
      if (Math.abs(ours.data[y * 128 + x] - want) > 1) bad++;
    }
    expect(bad).toBe(0);
  });

  test('displayed area SCALE TO FIT: the area, one output pixel per image pixel', async () => {
    const ours = await rendered('ct-displayed-area');
    const ref = base();
    expect([ours.width, ours.height]).toEqual([80, 60]);
    let bad = 0;
    for (let y = 0; y < 60; y++) for (let x = 0; x < 80; x++) if (ours.data[y * 80 + x] !== ref.data[(y + 10) * 128 + x + 20]) bad++;
    expect(bad).toBe(0);
    // the viewport parameter applies after the presentation state
    const vp = await rendered('ct-displayed-area', 'accept=image/png&viewport=40,30');
    expect([vp.width, vp.height]).toEqual([40, 30]);
  });

  test('displayed area MAGNIFY 2: the area enlarged twice', async () => {
    const ours = await rendered('ct-displayed-area-magnify');
    const ref = base();
    expect([ours.width, ours.height]).toEqual([128, 128]);
    let bad = 0;
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) {
      if (ours.data[y * 128 + x] !== ref.data[(32 + (y >> 1)) * 128 + 32 + (x >> 1)]) bad++;
    }
    expect(bad).toBe(0);
  });

  test('graphic and text annotations are burned in with the layer grey, and nothing else changes', async () => {
    const ours = await rendered('ct-annotations');
    const ref = base();
    const at = (img: Image8, x: number, y: number) => img.data[y * 128 + x];
    // inside the filled triangle (70,70) (110,70) (90,110), well away from its edges: the layer's grey (white)
    for (const [x, y] of [[90, 80], [88, 90], [92, 75]]) expect(at(ours, x, y)).toBe(255);
    // the open rectangle's edge x = 10 (pixel boundary) covers columns 9 and 10 by half each; its inside is untouched
    for (let y = 14; y < 36; y++) { expect(at(ours, 9, y)).toBeGreaterThan(at(ref, 9, y)); expect(at(ours, 50, y)).toBe(at(ref, 50, y)); }
    // the circle's ring (centre 32,90, radius 15) at its rightmost point
    expect(at(ours, 46, 89)).toBeGreaterThan(at(ref, 46, 89) + 40);
    // the DISPLAY-unit ellipse: major axis from (0.6, 0.2) to (0.95, 0.2) of the 128x128 area: its left end
    expect(at(ours, 77, 25)).toBeGreaterThan(at(ref, 77, 25) + 40);
    // the text in its box: some white glyph pixels between (12,12) and (58,38)
    let white = 0;
    for (let y = 12; y < 38; y++) for (let x = 12; x < 58; x++) if (at(ours, x, y) >= 250) white++;
    expect(white).toBeGreaterThan(20);
    // far from every graphic and the text box, the pixels are dcmp2pgm's
    let same = 0, total = 0;
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) {
      const near = (x >= 5 && x <= 65 && y >= 5 && y <= 45) || (x >= 65 && x <= 115 && y >= 65 && y <= 115)
        || (Math.hypot(x - 32, y - 90) <= 19) || (x >= 72 && x <= 126 && y >= 8 && y <= 44) || (Math.hypot(x - 100, y - 20) <= 5);
      if (near) continue;
      total++;
      if (at(ours, x, y) === at(ref, x, y)) same++;
    }
    expect(same).toBe(total);
  });
});

test('a layer with a CIELab colour turns the output to RGB and draws in that colour (sRGB red)', async () => {
  const res = await request(srv.app).get(`${psUrl.get('ct-cielab-layer')}/rendered?accept=image/png`).buffer(true).parse(binaryParser);
  const img = decodePng(res.body);
  expect(img.channels).toBe(3);
  const px = (x: number, y: number) => [...img.data.subarray((y * 128 + x) * 3, (y * 128 + x) * 3 + 3)];
  for (const [x, y] of [[90, 80], [88, 90]]) {
    const [r, g, b] = px(x, y);
    expect(r).toBeGreaterThan(245); expect(g).toBeLessThan(12); expect(b).toBeLessThan(12);
  }
  // away from the triangle, grey as dcmp2pgm renders it
  const ref = reference('ct-window');
  for (const [x, y] of [[20, 20], [64, 30], [10, 120]]) expect(px(x, y)).toEqual([0, 1, 2].map(() => ref.data[y * 128 + x]));
});

describe('resource form and refusals', () => {
  test('a window parameter replaces the VOI of the presentation state', async () => {
    const ours = await rendered('ct-novoi', 'accept=image/png&window=40,400');
    expect(compare(ours, reference('ct-window')).within1).toBeGreaterThanOrEqual(99.5);
  });

  test('a PS of two frames: multipart/related answers one part per referenced frame, each as dcmp2pgm -f n', async () => {
    const res = await request(srv.app).get(`${psUrl.get('ect-frames')}/rendered`)
      .set('Accept', 'multipart/related; type="image/png"').buffer(true).parse(binaryParser);
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts).toHaveLength(2);
    for (const [i, p] of parts.entries()) {
      expect(compare(decodePng(p.body), reference(`ect-frames-f${i + 1}`)).within1).toBeGreaterThanOrEqual(99.5);
    }
    // without multipart, the first referenced frame alone
    expect(compare(await rendered('ect-frames'), reference('ect-frames-f1')).within1).toBeGreaterThanOrEqual(99.5);
  });

  test('the thumbnail of a PS is its first referenced frame as presented, fitted in 128x128', async () => {
    const res = await request(srv.app).get(`${psUrl.get('ct-displayed-area')}/thumbnail?accept=image/png`).buffer(true).parse(binaryParser);
    expect(res.status).toBe(200);
    const img = decodePng(res.body);
    expect([img.width, img.height]).toEqual([128, 96]); // the 80x60 displayed area, scaled to fit
  });

  test('ETag differs between presentation states of one image and is honoured', async () => {
    const a = await request(srv.app).get(`${psUrl.get('ct-window')}/rendered?accept=image/png`);
    const b = await request(srv.app).get(`${psUrl.get('ct-inverse')}/rendered?accept=image/png`);
    expect(a.headers.etag).toBeDefined();
    expect(a.headers.etag).not.toBe(b.headers.etag);
    const again = await request(srv.app).get(`${psUrl.get('ct-window')}/rendered?accept=image/png`).set('If-None-Match', a.headers.etag);
    expect(again.status).toBe(304);
  });

  test('a PS whose referenced image is not stored: 404 with a reason', async () => {
    const other = await startServer();
    try {
      const url = await storeFile(other, fs.readFileSync(path.join(DIR, 'ps', 'ct-window.dcm')));
      const res = await request(other.app).get(`${url}/rendered?accept=image/png`);
      expect(res.status).toBe(404);
      expect(JSON.stringify(res.body)).toMatch(/referenced by the presentation state, is not stored/);
    } finally { await other.stop(); }
  });

  test('a PS of shapes a million pixels wide renders (clipped), a magnification past the output limit is 422', async () => {
    const t0 = Date.now();
    const img = await rendered('hostile-huge-shapes');
    expect([img.width, img.height]).toEqual([128, 128]);
    expect(Date.now() - t0).toBeLessThan(20_000); // a hang guard, not a timing claim
    const res = await request(srv.app).get(`${psUrl.get('hostile-magnify')}/rendered?accept=image/png`);
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.body)).toMatch(/displayed area/);
  });

  test('a PS applied to a colour image: 422', async () => {
    const res = await request(srv.app).get(`${psUrl.get('refused-colour')}/rendered?accept=image/png`);
    expect(res.status).toBe(422);
    expect(JSON.stringify(res.body)).toMatch(/grayscale/);
  });
});

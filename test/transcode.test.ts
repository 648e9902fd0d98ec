/**
 * Transcoding on retrieve (PS3.18 8.7.3) through HTTP: corpus files of every stored transfer syntax are asked
 * for in Explicit VR Little Endian and in each syntax we encode. Every output is read by DCMTK (`dcmdump`),
 * decoded by an independent decoder (DCMTK `dcmdrle`, `dcmdjpls`, `dcmdjpeg`; GDCM `gdcmconv --raw` for JPEG 2000;
 * GDCM 3.0.21 does not know HTJ2K, so those go through our OpenJPH decoder, another build than the encoder's),
 * and its pixels compared with the original's as DCMTK or GDCM decode it: lossless results must be identical.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';
import request from 'supertest';
import { startServer, TestServer, corpusFile, storeFile, parseMultipartResponse, binaryParser } from './helpers/server';
import { parseDicom } from '../dicom/parse';
import { decodeFrame, initCodecs } from '../render/codecs';

const TS = {
  implicit: '1.2.840.10008.1.2', explicit: '1.2.840.10008.1.2.1', big: '1.2.840.10008.1.2.2', rle: '1.2.840.10008.1.2.5',
  jls: '1.2.840.10008.1.2.4.80', j2k: '1.2.840.10008.1.2.4.90', htj2k: '1.2.840.10008.1.2.4.201', jpegLossless: '1.2.840.10008.1.2.4.70',
  baseline: '1.2.840.10008.1.2.4.50',
};
const LOSSLESS_TARGETS = [TS.rle, TS.jls, TS.j2k, TS.htj2k, TS.jpegLossless];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'transcode-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The file decoded to native pixels by DCMTK (or GDCM for JPEG 2000 / HTJ2K sources GDCM reads). */
function decodedByTools(file: string, name: string): Buffer {
  const ts = parseDicom(fs.readFileSync(file)).transferSyntaxUID;
  const out = path.join(tmp, `${name}-decoded.dcm`);
  if (ts === TS.rle) run('dcmdrle', [file, out]);
  else if (ts === TS.jls || ts === '1.2.840.10008.1.2.4.81') run('dcmdjpls', [file, out]);
  else if (/^1\.2\.840\.10008\.1\.2\.4\.(5\d|70)$/.test(ts)) run('dcmdjpeg', [file, out]);
  else if (ts === TS.j2k || ts === '1.2.840.10008.1.2.4.91') run('gdcmconv', ['--raw', file, out]);
  else run('dcmconv', ['+te', file, out]);
  return fs.readFileSync(out);
}

interface Pixels { values: number[]; pi: string; bitsStored: number; frames: number }

/** Stored values of a native Explicit VR Little Endian file, masked to Bits Stored. */
function nativePixels(buf: Buffer): Pixels {
  const p = parseDicom(buf);
  const n = (t: string) => Number(p.dataset[t]?.Value?.[0]);
  const ba = n('00280100'); const bs = n('00280101'); const hb = n('00280102');
  const px = p.pixelData!;
  expect(px.encapsulated).toBe(false);
  const raw = buf.subarray(px.offset, px.offset + px.length);
  const count = Math.floor((raw.length * 8) / ba);
  const values: number[] = new Array(count);
  const shift = hb + 1 - bs;
  const mask = bs >= 32 ? 0xffffffff : 2 ** bs - 1;
  for (let i = 0; i < count; i++) {
    const v = ba === 8 ? raw[i] : ba === 16 ? raw.readUInt16LE(i * 2) : raw.readUInt32LE(i * 4);
    values[i] = ((v >>> shift) & mask) >>> 0;
  }
  return { values, pi: String(p.dataset['00280004']?.Value?.[0]), bitsStored: bs, frames: n('00280008') || 1 };
}

function samePixels(a: Pixels, b: Pixels, tolerance = 0): { differing: number; maxDiff: number } {
  expect(b.values.length).toBeGreaterThanOrEqual(a.values.length - 1); // an odd byte count is padded
  let differing = 0; let maxDiff = 0;
  for (let i = 0; i < a.values.length; i++) {
    const d = Math.abs(a.values[i] - b.values[i]);
    if (d > tolerance) differing++;
    if (d > maxDiff) maxDiff = d;
  }
  return { differing, maxDiff };
}

const accept = (ts?: string, q?: number) => `multipart/related; type="application/dicom"${ts ? `; transfer-syntax=${ts}` : ''}${q !== undefined ? `; q=${q}` : ''}`;

async function retrieve(srv: TestServer, url: string, acceptHeader: string) {
  const res = await request(srv.app).get(url).set('Accept', acceptHeader).buffer(true).parse(binaryParser);
  const parts = res.status === 200 ? parseMultipartResponse(res.body, res.headers['content-type']) : [];
  return { res, parts };
}

/** Each file in its own server: several corpus files share a SOP Instance UID (the MR_small family). */
async function withStored<T>(name: string, use: (srv: TestServer, url: string) => Promise<T>): Promise<T> {
  const srv = await startServer({ renderWorkers: 0 }); // no rendering here: no worker threads to start
  try {
    const url = await storeFile(srv, fs.readFileSync(corpusFile(name)), [200, 202]);
    return await use(srv, url);
  } finally {
    await srv.stop();
  }
}

function dcmdumpReads(file: string): string {
  return execFileSync('dcmdump', ['-q', file], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'] });
}

// Stored syntaxes: explicit/implicit/big endian/deflated native, RLE, JPEG lossless .57 and .70, JPEG-LS, JPEG 2000.
const LOSSLESS_SOURCES = ['CT_small', 'MR_small_implicit', 'MR_small_bigendian', 'image_dfl', 'MR_small_RLE', 'JPEG-LL',
  'JPGLosslessP14SV1_1s_1f_8b', 'MR_small_jpeg_ls_lossless', 'MR_small_jp2klossless', 'SC_rgb', 'SC_rgb_rle', 'emri_small_RLE',
  'US1_UNCR', 'OBXXXX1A_rle_2frame', 'RG3_J2KR'];

describe('to Explicit VR Little Endian', () => {
  test.each([...LOSSLESS_SOURCES, 'rtdose', 'test-SR'])('%s: re-serialised, read by dcmdump, every pixel as DCMTK/GDCM decode the original', async (name) => {
    await withStored(name, async (srv, url) => {
      const { res, parts } = await retrieve(srv, url, accept(TS.explicit));
      expect(res.status).toBe(200);
      expect(parts).toHaveLength(1);
      expect(parts[0].headers['content-type']).toBe(`application/dicom; transfer-syntax=${TS.explicit}`);
      const out = path.join(tmp, `${name}-explicit.dcm`);
      fs.writeFileSync(out, parts[0].body);
      const ours = parseDicom(parts[0].body);
      expect(ours.transferSyntaxUID).toBe(TS.explicit);
      dcmdumpReads(out);
      const original = parseDicom(fs.readFileSync(corpusFile(name)));
      expect(ours.sopInstanceUID).toBe(original.sopInstanceUID);
      // Every attribute but the pixel description and Pixel Data keeps its value.
      const skip = new Set(['00280004', '00280006', '00280101', '00280102', '7FE00010', '7FE00001', '7FE00002', '00282110']);
      for (const [tag, a] of Object.entries(original.dataset)) {
        if (skip.has(tag) || tag.endsWith('0000') || tag === 'FFFCFFFC') continue;
        expect({ tag, value: ours.dataset[tag]?.Value ?? ours.dataset[tag]?.InlineBinary }).toEqual({ tag, value: a.Value ?? a.InlineBinary });
      }
      if (!original.pixelData) return;
      const reference = nativePixels(decodedByTools(corpusFile(name), name));
      const got = nativePixels(parts[0].body);
      expect(got.pi).toBe(reference.pi);
      expect(samePixels(reference, got)).toEqual({ differing: 0, maxDiff: 0 });
    });
  });

  test('a lossy source decompressed keeps Lossy Image Compression 01', async () => {
    await withStored('SC_rgb_jpeg_dcmtk', async (srv, url) => {
      const { res, parts } = await retrieve(srv, url, accept(TS.explicit));
      expect(res.status).toBe(200);
      const ours = parseDicom(parts[0].body);
      expect(ours.dataset['00282110'].Value).toEqual(['01']);
      const reference = nativePixels(decodedByTools(corpusFile('SC_rgb_jpeg_dcmtk'), 'SC_rgb_jpeg_dcmtk'));
      // Two JPEG decoders (libjpeg-turbo, DCMTK's IJG) may round the colour conversion differently.
      expect(samePixels(reference, nativePixels(parts[0].body), 2).differing).toBe(0);
    });
  });
});

describe('to the lossless compressed syntaxes', () => {
  beforeAll(() => initCodecs());
  const sources = ['CT_small', 'MR_small_bigendian', 'MR_small_jp2klossless', 'SC_rgb', 'emri_small', 'US1_UNCR', 'JPGLosslessP14SV1_1s_1f_8b', 'rtdose'];
  test.each(sources)('%s: every target decodes back to the original pixels', async (name) => {
    await withStored(name, async (srv, url) => {
      const reference = nativePixels(decodedByTools(corpusFile(name), name));
      for (const target of LOSSLESS_TARGETS) {
        const { res, parts } = await retrieve(srv, url, accept(target));
        if (name === 'rtdose' && target !== TS.rle) { // 32-bit samples: only RLE holds them
          expect({ target, status: res.status }).toEqual({ target, status: 406 });
          continue;
        }
        expect({ target, status: res.status }).toEqual({ target, status: 200 });
        expect(parts[0].headers['content-type']).toBe(`application/dicom; transfer-syntax=${target}`);
        const out = path.join(tmp, `${name}-${target}.dcm`);
        fs.writeFileSync(out, parts[0].body);
        dcmdumpReads(out);
        const ours = parseDicom(parts[0].body);
        expect(ours.transferSyntaxUID).toBe(target);
        expect(ours.pixelData!.encapsulated).toBe(true);
        expect(ours.dataset['00282110']?.Value?.[0]).not.toBe('01');
        let got: Pixels;
        if (target === TS.htj2k) {
          // GDCM 3.0.21 has no HTJ2K: our decoder (cornerstone's OpenJPH build) reads each fragment.
          const f = ours.dataset;
          const info = { rows: f['00280010'].Value![0] as number, columns: f['00280011'].Value![0] as number, bitsAllocated: f['00280100'].Value![0] as number,
            bitsStored: f['00280101'].Value![0] as number, highBit: f['00280102'].Value![0] as number, pixelRepresentation: f['00280103'].Value![0] as number,
            samplesPerPixel: f['00280002'].Value![0] as number, photometricInterpretation: String(f['00280004'].Value![0]), planarConfiguration: 0 };
          const values: number[] = [];
          const mask = 2 ** info.bitsStored - 1;
          for (const fr of ours.pixelData!.fragments) {
            const d = decodeFrame(target, { data: parts[0].body.subarray(fr.offset, fr.offset + fr.length) }, info);
            for (const v of d.pixels as any) values.push((v as number) & mask);
          }
          got = { values, pi: info.photometricInterpretation, bitsStored: info.bitsStored, frames: ours.pixelData!.fragments.length };
        } else {
          got = nativePixels(decodedByTools(out, `${name}-${target}`));
        }
        expect({ target, pi: got.pi }).toEqual({ target, pi: reference.pi });
        expect({ target, ...samePixels(reference, got) }).toEqual({ target, differing: 0, maxDiff: 0 });
      }
    });
  });
});

describe('to JPEG baseline (lossy, only when named)', () => {
  test('8-bit colour: YBR_FULL_422, lossy attributes, same SOP Instance UID, close to the original', async () => {
    await withStored('SC_rgb', async (srv, url) => {
      const { res, parts } = await retrieve(srv, url, accept(TS.baseline));
      expect(res.status).toBe(200);
      const out = path.join(tmp, 'SC_rgb-baseline.dcm');
      fs.writeFileSync(out, parts[0].body);
      const ours = parseDicom(parts[0].body);
      expect(ours.transferSyntaxUID).toBe(TS.baseline);
      expect(ours.dataset['00280004'].Value).toEqual(['YBR_FULL_422']);
      expect(ours.dataset['00282110'].Value).toEqual(['01']);
      expect(ours.dataset['00282114'].Value).toEqual(['ISO_10918_1']);
      expect(Number(ours.dataset['00282112'].Value![0])).toBeGreaterThan(1);
      expect(ours.sopInstanceUID).toBe(parseDicom(fs.readFileSync(corpusFile('SC_rgb'))).sopInstanceUID);
      const reference = nativePixels(decodedByTools(corpusFile('SC_rgb'), 'SC_rgb'));
      const got = nativePixels(decodedByTools(out, 'SC_rgb-baseline'));
      expect(got.pi).toBe('RGB');
      // Quality 90 on flat colour bars: every sample within a few levels.
      const mean = reference.values.reduce((s, v, i) => s + Math.abs(v - got.values[i]), 0) / reference.values.length;
      expect(mean).toBeLessThan(3);
    });
  });

  test('16-bit images have no JPEG baseline: 406; a lossy source is never re-encoded losslessly: 406', async () => {
    await withStored('CT_small', async (srv, url) => {
      expect((await retrieve(srv, url, accept(TS.baseline))).res.status).toBe(406);
    });
    await withStored('SC_rgb_jpeg_dcmtk', async (srv, url) => {
      for (const t of LOSSLESS_TARGETS) expect({ t, s: (await retrieve(srv, url, accept(t))).res.status }).toEqual({ t, s: 406 });
      const again = await retrieve(srv, url, accept(TS.baseline));
      expect(again.res.status).toBe(200);
      const ds = parseDicom(again.parts[0].body).dataset;
      // the stored bytes, as they are (the same syntax)
      expect(again.parts[0].body.equals(fs.readFileSync(corpusFile('SC_rgb_jpeg_dcmtk')))).toBe(true);
      expect(ds['00280004'].Value).toBeDefined();
    });
  });
});

describe('negotiation (PS3.18 8.7.3)', () => {
  let srv: TestServer;
  const urls = new Map<string, string>();
  beforeAll(async () => {
    srv = await startServer();
    for (const f of ['MR_small_jp2klossless', 'CT_small', 'SC_rgb_jpeg_dcmtk', 'emri_small', 'test-SR']) urls.set(f, await storeFile(srv, fs.readFileSync(corpusFile(f)), [200, 202]));
  });
  afterAll(async () => { await srv.stop(); });
  const tsOf = (p: { headers: Record<string, string> }) => /transfer-syntax=([0-9.]+)/.exec(p.headers['content-type'])?.[1];

  test('no transfer-syntax: Explicit VR Little Endian, except pixels held only in lossy form', async () => {
    const a = await retrieve(srv, urls.get('MR_small_jp2klossless')!, accept());
    expect(tsOf(a.parts[0])).toBe(TS.explicit);
    const b = await retrieve(srv, urls.get('SC_rgb_jpeg_dcmtk')!, accept());
    expect(tsOf(b.parts[0])).toBe(TS.baseline);
    const c = await retrieve(srv, urls.get('MR_small_jp2klossless')!, '*/*');
    expect(tsOf(c.parts[0])).toBe(TS.explicit);
  });

  test('transfer-syntax=* : as stored', async () => {
    const a = await retrieve(srv, urls.get('MR_small_jp2klossless')!, accept('*'));
    expect(tsOf(a.parts[0])).toBe(TS.j2k);
  });

  test('q-values: the highest acceptable wins; one without a path is passed over', async () => {
    const url = urls.get('SC_rgb_jpeg_dcmtk')!;
    const a = await retrieve(srv, url, `${accept(TS.jls, 0.9)}, ${accept(TS.explicit, 0.5)}`);
    expect(a.res.status).toBe(200);
    expect(tsOf(a.parts[0])).toBe(TS.explicit); // lossy → JPEG-LS lossless has no path
    const b = await retrieve(srv, urls.get('CT_small')!, `${accept(TS.rle, 0.4)}, ${accept(TS.jls, 0.8)}`);
    expect(tsOf(b.parts[0])).toBe(TS.jls);
  });

  test('Implicit VR Little Endian and Big Endian are not used by web services: 406', async () => {
    for (const t of [TS.implicit, TS.big]) {
      const r = await retrieve(srv, urls.get('CT_small')!, accept(t));
      expect(r.res.status).toBe(406);
      expect(JSON.parse(r.res.body.toString()).error).toMatch(/not used by web services/);
    }
    expect((await retrieve(srv, urls.get('CT_small')!, accept('1.2.840.10008.1.2.4.100'))).res.status).toBe(406);
  });

  test('a study: every instance in the asked syntax; one without pixels in Explicit VR Little Endian', async () => {
    const study = urls.get('CT_small')!.replace(/\/series\/.*/, '');
    const sr = urls.get('test-SR')!.replace(/\/series\/.*/, '');
    const r = await retrieve(srv, study, accept(TS.rle));
    expect(r.res.status).toBe(200);
    for (const p of r.parts) expect(tsOf(p)).toBe(TS.rle);
    const s = await retrieve(srv, sr, accept(TS.rle));
    expect(s.res.status).toBe(200);
    expect(s.parts.map(tsOf)).toEqual([TS.explicit]);
    expect(parseDicom(s.parts[0].body).transferSyntaxUID).toBe(TS.explicit);
  });

  test('bulk data of encapsulated Pixel Data: negotiated as frames (decoded, as stored, or transcoded)', async () => {
    await initCodecs();
    const bulk = `${urls.get('MR_small_jp2klossless')!}/bulkdata/7FE00010`;
    const get = (acc: string) => request(srv.app).get(bulk).set('Accept', acc).buffer(true).parse(binaryParser);
    const raw = await get('multipart/related; type="application/octet-stream"');
    expect(raw.status).toBe(200);
    const rawPart = parseMultipartResponse(raw.body, raw.headers['content-type'])[0];
    expect(rawPart.headers['content-type']).toBe(`application/octet-stream; transfer-syntax=${TS.explicit}`);
    const reference = nativePixels(decodedByTools(corpusFile('MR_small_jp2klossless'), 'MR_small_jp2klossless-bulk'));
    expect(Array.from(new Uint16Array(rawPart.body.buffer.slice(rawPart.body.byteOffset, rawPart.body.byteOffset + rawPart.body.length)))).toEqual(reference.values);
    const stored = await get('multipart/related; type="application/octet-stream"; transfer-syntax=*');
    expect(parseMultipartResponse(stored.body, stored.headers['content-type'])[0].headers['content-type']).toBe(`application/octet-stream; transfer-syntax=${TS.j2k}`);
    const jls = await get('multipart/related; type="image/jls"');
    expect(jls.status).toBe(200);
    const jlsPart = parseMultipartResponse(jls.body, jls.headers['content-type'])[0];
    expect(jlsPart.headers['content-type']).toBe(`image/jls; transfer-syntax=${TS.jls}`);
    const f = parseDicom(fs.readFileSync(corpusFile('MR_small_jp2klossless'))).dataset;
    const d = decodeFrame(TS.jls, { data: jlsPart.body }, { rows: 64, columns: 64, bitsAllocated: 16, bitsStored: f['00280101'].Value![0] as number,
      highBit: f['00280102'].Value![0] as number, pixelRepresentation: f['00280103'].Value![0] as number, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0 });
    const mask = 2 ** (f['00280101'].Value![0] as number) - 1;
    expect(Array.from(d.pixels as any).map((v) => (v as number) & mask)).toEqual(reference.values);
  });

  test('frames in another compressed syntax: image/jls, image/dicom-rle, application/octet-stream with a syntax', async () => {
    await initCodecs();
    const url = urls.get('emri_small')!;
    const original = parseDicom(fs.readFileSync(corpusFile('emri_small')));
    const file = fs.readFileSync(corpusFile('emri_small'));
    const frameBytes = 64 * 64 * 2;
    const info = { rows: 64, columns: 64, bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 0, samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', planarConfiguration: 0 };
    for (const [acc, ts, media] of [
      ['multipart/related; type="image/jls"', TS.jls, 'image/jls'],
      ['multipart/related; type="image/dicom-rle"', TS.rle, 'image/dicom-rle'],
      ['multipart/related; type="image/jp2"', TS.j2k, 'image/jp2'],
      ['multipart/related; type="image/jphc"', TS.htj2k, 'image/jphc'],
      [`multipart/related; type="application/octet-stream"; transfer-syntax=${TS.jls}`, TS.jls, 'application/octet-stream'],
    ]) {
      const res = await request(srv.app).get(`${url}/frames/2,5`).set('Accept', acc).buffer(true).parse(binaryParser);
      expect({ acc, status: res.status }).toEqual({ acc, status: 200 });
      const parts = parseMultipartResponse(res.body, res.headers['content-type']);
      expect(parts).toHaveLength(2);
      [2, 5].forEach((n, i) => {
        expect(parts[i].headers['content-type']).toBe(`${media}; transfer-syntax=${ts}`);
        const d = decodeFrame(ts, { data: parts[i].body }, info);
        const start = original.pixelData!.offset + (n - 1) * frameBytes;
        const want = new Uint16Array(file.buffer.slice(file.byteOffset + start, file.byteOffset + start + frameBytes));
        expect(Array.from(d.pixels as Uint16Array)).toEqual(Array.from(want).map((v) => v & 0xfff));
      });
    }
    // single part
    const one = await request(srv.app).get(`${url}/frames/1`).set('Accept', `image/jls`).buffer(true).parse(binaryParser);
    expect(one.status).toBe(200);
    expect(one.headers['content-type']).toMatch(/^multipart\/related|^image\/jls/);
    // lossy JPEG baseline from 16-bit: no path
    const lossy = await request(srv.app).get(`${url}/frames/1`).set('Accept', `multipart/related; type="image/jpeg"; transfer-syntax=${TS.baseline}`);
    expect(lossy.status).toBe(406);
    // the stored compressed syntax of a lossy instance is not re-encoded losslessly
    const jls = await request(srv.app).get(`${urls.get('SC_rgb_jpeg_dcmtk')!}/frames/1`).set('Accept', 'multipart/related; type="image/jls"');
    expect(jls.status).toBe(406);
  });
});

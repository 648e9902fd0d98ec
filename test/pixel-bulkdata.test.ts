/**
 * Pixel Data in every instance's metadata, encapsulated included (issue 15: `parseEncapsulated` never recorded
 * 7FE00010, so compressed instances had no BulkDataURI), and its BulkDataURI answering in the form PS3.18
 * prescribes for the Accept sent: the compressed bitstream of each frame in its own media type, or decoded to
 * Explicit VR Little Endian for `application/octet-stream` (that media type's default transfer syntax).
 * Driven through HTTP with several compressed corpus files, and through dicomweb-client JS for real.
 */
import request from 'supertest';
import { serverWithFiles, corpusFile, parseMultipartResponse, binaryParser } from './helpers/server';

(global as any).XMLHttpRequest = require('xhr2');
const { api } = require('dicomweb-client');

// Distinct SOP Instance UIDs, one server. [file, compressed media type, frames]
const FILES: Array<[string, string, number]> = [
  ['MR_small_RLE', 'image/dicom-rle', 1],
  ['JPEG2000', 'image/jp2', 1],
  ['JPGExtended', 'image/jpeg', 1],
  ['SC_rgb_jpeg_dcmtk', 'image/jpeg', 1],
  ['OBXXXX1A_rle_2frame', 'image/dicom-rle', 2],
];
const ctx = serverWithFiles(Object.fromEntries([...FILES.map(([f]) => [f, corpusFile(f)]), ['CT_small', corpusFile('CT_small')]]));

async function metadataOf(name: string): Promise<any> {
  const res = await request(ctx.srv.app).get(`${ctx.urls.get(name)}/metadata`).set('Accept', 'application/dicom+json');
  expect(res.status).toBe(200);
  return JSON.parse(res.text)[0];
}
const get = (path: string, accept: string) => request(ctx.srv.app).get(path).set('Accept', accept).buffer(true).parse(binaryParser);
const pathOf = (uri: string) => new URL(uri).pathname;

describe.each(FILES)('%s', (name, media, frames) => {
  let uri: string;
  let stored: Buffer[];
  let decodedBytes: number;
  beforeAll(async () => {
    const md = await metadataOf(name);
    const v = (t: string) => md[t].Value[0];
    decodedBytes = v('00280010') * v('00280011') * v('00280002') * (v('00280100') / 8);
    expect(Number(md['00280008']?.Value?.[0] ?? 1)).toBe(frames);
    expect(md['7FE00010']).toBeDefined();
    expect(md['7FE00010'].vr).toBe('OB');
    uri = md['7FE00010'].BulkDataURI;
    expect(uri).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+${ctx.urls.get(name)}/bulkdata/7FE00010$`));
    // The frames resource with transfer-syntax=* gives each stored bitstream: the reference.
    stored = [];
    for (let n = 1; n <= frames; n++) {
      const res = await get(`${ctx.urls.get(name)}/frames/${n}`, 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
      expect(res.status).toBe(200);
      stored.push(parseMultipartResponse(res.body, res.headers['content-type'])[0].body);
    }
  });

  test('Accept: multipart/related; type="*/*" (dicomweb-client Python default): each frame compressed, in its media type', async () => {
    const res = await get(pathOf(uri), 'multipart/related; type="*/*"');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(new RegExp(`^multipart/related; type="${media}"`));
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts.map((p) => p.body)).toEqual(stored);
    for (const p of parts) expect(p.headers['content-type']).toMatch(new RegExp(`^${media}; transfer-syntax=`));
  });

  test(`Accept: multipart/related; type="${media}": the same bitstreams`, async () => {
    const res = await get(pathOf(uri), `multipart/related; type="${media}"`);
    expect(res.status).toBe(200);
    expect(parseMultipartResponse(res.body, res.headers['content-type']).map((p) => p.body)).toEqual(stored);
  });

  test('Accept: multipart/related; type="application/octet-stream": decoded to Explicit VR Little Endian', async () => {
    const res = await get(pathOf(uri), 'multipart/related; type="application/octet-stream"');
    expect(res.status).toBe(200);
    const parts = parseMultipartResponse(res.body, res.headers['content-type']);
    expect(parts).toHaveLength(frames);
    for (const p of parts) {
      expect(p.headers['content-type']).toBe('application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1');
      expect(p.body.length).toBe(decodedBytes);
    }
  });

  test('transfer-syntax=* with application/octet-stream: compressed, labelled with the stored syntax', async () => {
    const res = await get(pathOf(uri), 'multipart/related; type="application/octet-stream"; transfer-syntax=*');
    expect(res.status).toBe(200);
    expect(parseMultipartResponse(res.body, res.headers['content-type']).map((p) => p.body)).toEqual(stored);
  });

  test('dicomweb-client JS retrieveBulkData with the BulkDataURI from metadata', async () => {
    const client = new api.DICOMwebClient({ url: ctx.srv.base });
    // The URI is absolute: the server is in-process here, so point the client at its real port.
    const base = ctx.srv.base.replace(/\/dicom-web$/, '');
    const absolute = `${base}${pathOf(uri)}`;
    const decoded: ArrayBuffer[] = await client.retrieveBulkData({ BulkDataURI: absolute });
    expect(decoded).toHaveLength(frames);
    expect(decoded[0].byteLength).toBe(decodedBytes);
    // dicomweb-client 0.11 builds the Accept of image/dicom-rle and image/jp2 itself with a ReferenceError
    // (acceptableMediaTypes) before any request: only its JPEG path can be driven.
    if (media !== 'image/jpeg') return;
    const compressed: ArrayBuffer[] = await client.retrieveBulkData({ BulkDataURI: absolute, mediaTypes: [{ mediaType: media }] });
    expect(compressed.map((b) => Buffer.from(b))).toEqual(stored);
  });
});

test('a single-frame compressed instance asked for with a single-part Accept is answered as a single part', async () => {
  const md = await metadataOf('SC_rgb_jpeg_dcmtk');
  const res = await get(pathOf(md['7FE00010'].BulkDataURI), 'image/jpeg');
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^image\/jpeg; transfer-syntax=1\.2\.840\.10008\.1\.2\.4\.50$/);
  expect(res.body.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
  // The same through the frames resource.
  const frame = await get(`${ctx.urls.get('SC_rgb_jpeg_dcmtk')}/frames/1`, 'image/jpeg');
  expect(frame.status).toBe(200);
  expect(frame.headers['content-type']).toMatch(/^image\/jpeg/);
  expect(frame.body).toEqual(res.body);
});

test('native Pixel Data keeps its BulkDataURI: single part or multipart octet-stream', async () => {
  const md = await metadataOf('CT_small');
  const p = pathOf(md['7FE00010'].BulkDataURI);
  const single = await get(p, 'application/octet-stream');
  expect(single.status).toBe(200);
  expect(single.body.length).toBe(128 * 128 * 2);
  const multi = await get(p, 'multipart/related; type="application/octet-stream"');
  expect(parseMultipartResponse(multi.body, multi.headers['content-type'])[0].body).toEqual(single.body);
});

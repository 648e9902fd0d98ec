/**
 * Conformance with a real gateway: Orthanc (Debian `orthanc` + `orthanc-dicomweb`) with this server in its
 * `DicomWeb.Servers`, driven as a DICOMweb client of ours. Orthanc stores corpus files, pushes them to us by
 * STOW-RS (`/dicom-web/servers/ours/stow`), searches us by QIDO-RS (`…/qido`), and, once its own copies are
 * deleted, retrieves them from us by WADO-RS (`…/retrieve`): the files it then holds must equal the originals
 * byte for byte. Orthanc runs on its own config, loopback, free ports and a temporary folder
 * (bench/lib/servers.ts). `.ci/deps.sh` installs it; without it this suite fails (it is not skipped), unless
 * SKIP_ORTHANC=1 says so explicitly.
 */
import * as fs from 'fs';
import { startServer, TestServer, corpusFile } from '../test/helpers/server';
import { orthancInstall, startOrthanc, tempDir } from '../bench/lib/servers';

// Distinct SOP Instance UIDs (Orthanc keeps the first of two files sharing one).
const FILES = [
  'CT_small',              // explicit VR little endian
  'MR_small_RLE',          // RLE
  'JPEG2000',              // JPEG 2000 (same study as the two below)
  'JPGExtended',           // JPEG extended 12-bit
  'SC_rgb_jpeg_dcmtk',     // JPEG baseline, colour
  'OBXXXX1A_rle_2frame',   // RLE, two frames
  'emri_small',            // multi-frame
  'image_dfl',             // deflated
];

const skip = process.env.SKIP_ORTHANC === '1';
(skip ? describe.skip : describe)('Orthanc 1.10 as a DICOMweb client of ours', () => {
  let ours: TestServer;
  let orthanc: Awaited<ReturnType<typeof startOrthanc>>;
  let dir: string;
  const orthancIds = new Map<string, { id: string; study: string; series: string; sop: string }>();

  const call = async (method: string, url: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${orthanc.base}${url}`, {
      method, body: body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body),
      headers: Buffer.isBuffer(body) ? { 'Content-Type': 'application/dicom' } : undefined,
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Orthanc ${method} ${url}: ${res.status} ${text.slice(0, 400)}`);
    return text ? JSON.parse(text) : undefined;
  };

  beforeAll(async () => {
    const install = orthancInstall();
    if (!install) throw new Error('Orthanc with its DICOMweb and GDCM plugins is not installed (see .ci/deps.sh); SKIP_ORTHANC=1 skips this suite');
    ours = await startServer();
    dir = tempDir('orthanc-conformance-');
    // Our server as Orthanc sees it: the URL exactly as a user would write it in orthanc.json.
    orthanc = await startOrthanc(install, dir, { dicomWebServers: { ours: [`${ours.base}/`] } });
    for (const f of FILES) {
      const r = await call('POST', '/instances', fs.readFileSync(corpusFile(f)));
      const tags = await call('GET', `/instances/${r.ID}/simplified-tags`);
      orthancIds.set(f, { id: r.ID, study: tags.StudyInstanceUID, series: tags.SeriesInstanceUID, sop: tags.SOPInstanceUID });
    }
  }, 120_000);

  afterAll(async () => {
    await orthanc?.stop();
    await ours?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('Orthanc pushes every file to us by STOW-RS (its 73-character boundary included)', async () => {
    const ids = [...orthancIds.values()].map((v) => v.id);
    const r = await call('POST', '/dicom-web/servers/ours/stow', { Resources: ids, Synchronous: true });
    expect(Number(r.InstancesCount)).toBe(ids.length);
    for (const [f, v] of orthancIds) {
      const res = await fetch(`${ours.base}/studies/${v.study}/series/${v.series}/instances/${v.sop}`, { headers: { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.includes(fs.readFileSync(corpusFile(f)))).toBe(true);
    }
  });

  // Orthanc's /qido answers a JSON of its own: each attribute's Value is a string, not an array.
  const value = (a: any) => (Array.isArray(a?.Value) ? a.Value[0] : a?.Value);

  test('Orthanc searches us by QIDO-RS at study, series and instance level', async () => {
    const studies = await call('POST', '/dicom-web/servers/ours/qido', { Uri: '/studies' });
    const wanted = new Set([...orthancIds.values()].map((v) => v.study));
    expect(new Set(studies.map((s: any) => value(s['0020000D'])))).toEqual(wanted);
    for (const v of orthancIds.values()) {
      const series = await call('POST', '/dicom-web/servers/ours/qido', { Uri: `/studies/${v.study}/series` });
      expect(series.map((s: any) => value(s['0020000E']))).toContain(v.series);
      const instances = await call('POST', '/dicom-web/servers/ours/qido', { Uri: '/instances', Arguments: { SOPInstanceUID: v.sop } });
      expect(instances).toHaveLength(1);
      expect(value(instances[0]['00080018'])).toBe(v.sop);
      // RetrieveURL points at us, on our port, whatever Host Orthanc sent.
      expect(String(value(instances[0]['00081190'])).startsWith(ours.base)).toBe(true);
    }
  });

  test('Orthanc reads our metadata through its client (…/get)', async () => {
    const v = orthancIds.get('CT_small')!;
    const md = await call('POST', '/dicom-web/servers/ours/get', { Uri: `/studies/${v.study}/series/${v.series}/instances/${v.sop}/metadata` });
    expect(md[0]['00080018'].Value[0]).toBe(v.sop);
    expect(md[0]['7FE00010'].BulkDataURI.startsWith(ours.base)).toBe(true);
  });

  test('Orthanc retrieves from us by WADO-RS into its own store: byte-identical files', async () => {
    for (const v of orthancIds.values()) await call('DELETE', `/instances/${v.id}`);
    expect(await call('GET', '/instances')).toEqual([]);
    const studies = [...new Set([...orthancIds.values()].map((v) => v.study))];
    await call('POST', '/dicom-web/servers/ours/retrieve', { Resources: studies.map((s) => ({ Study: s })), Synchronous: true });
    for (const [f, v] of orthancIds) {
      const res = await fetch(`${orthanc.base}/instances/${v.id}/file`);
      expect(res.status).toBe(200);
      const got = Buffer.from(await res.arrayBuffer());
      expect(got.equals(fs.readFileSync(corpusFile(f)))).toBe(true);
    }
  });
});

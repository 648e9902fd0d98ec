/**
 * A synthetic 100,000-instance index for the QIDO-RS latency figure, written before the server starts through
 * the index's own insert (storage/index-sqlite.ts SqliteIndex.insert, so the rows are what ingest would write),
 * all in one outer transaction with synchronous=OFF for speed. Blob, frame and rendering fields are
 * placeholders: QIDO reads only the index.
 */
import { SqliteIndex, InstanceRecord } from '../../storage/index-sqlite';
import type { JsonDataset } from '../../dicom/json';
import { prng } from '../../test/helpers/prng';

const SURNAMES = ['SMITH', 'JONES', 'TAYLOR', 'BROWN', 'WILLIAMS', 'WILSON', 'JOHNSON', 'DAVIES', 'ROBINSON', 'WRIGHT',
  'THOMPSON', 'EVANS', 'WALKER', 'WHITE', 'ROBERTS', 'GREEN', 'HALL', 'WOOD', 'JACKSON', 'CLARKE', 'MÜLLER', 'GARCÍA', 'NGUYEN'];
const GIVEN = ['JOHN', 'MARY', 'JAMES', 'ANNA', 'PETER', 'LUCY', 'JOSÉ', 'ZOË', 'DAVID', 'EMMA'];
const MODALITIES = ['CT', 'MR', 'US', 'CR', 'DX', 'NM', 'PT', 'XA'];
const CT = '1.2.840.10008.5.1.4.1.1.2';


const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** Loads `instances` instances (studies of 2 series x 5 instances) into the index of `dataDir`; returns seconds. */
export function loadSyntheticIndex(dataDir: string, instances = 100_000): { seconds: number; studies: number } {
  const t0 = process.hrtime.bigint();
  const index = new SqliteIndex(dataDir);
  const rnd = prng(20240301);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
  const studies = Math.ceil(instances / 10);
  index.db.pragma('synchronous = OFF');
  let n = 0;
  index.db.transaction(() => {
    for (let k = 0; k < studies && n < instances; k++) {
      const study = `2.25.777.${k + 1}`;
      const date = `${2010 + Math.floor(rnd() * 15)}${pad(1 + Math.floor(rnd() * 12), 2)}${pad(1 + Math.floor(rnd() * 28), 2)}`;
      const name = `${pick(SURNAMES)}^${pick(GIVEN)}`;
      const studyAttrs: JsonDataset = {
        '00080005': { vr: 'CS', Value: ['ISO_IR 192'] }, '00080020': { vr: 'DA', Value: [date] },
        '00080030': { vr: 'TM', Value: [`${pad(Math.floor(rnd() * 24), 2)}${pad(Math.floor(rnd() * 60), 2)}00`] },
        '00080050': { vr: 'SH', Value: [`A${k + 1}`] }, '00100010': { vr: 'PN', Value: [{ Alphabetic: name }] },
        '00100020': { vr: 'LO', Value: [`P${pad(Math.floor(k / 3), 6)}`] }, '00100040': { vr: 'CS', Value: ['O'] },
        '0020000D': { vr: 'UI', Value: [study] }, '00200010': { vr: 'SH', Value: [`S${k + 1}`] },
        '00081030': { vr: 'LO', Value: ['SYNTHETIC STUDY'] },
      } as JsonDataset;
      const mods = [pick(MODALITIES)];
      mods.push(rnd() < 0.3 ? pick(MODALITIES) : mods[0]);
      for (let s = 0; s < 2; s++) {
        const series = `${study}.${s + 1}`;
        const seriesAttrs: JsonDataset = {
          '00080060': { vr: 'CS', Value: [mods[s]] }, '0020000E': { vr: 'UI', Value: [series] }, '00200011': { vr: 'IS', Value: [s + 1] },
        } as JsonDataset;
        for (let i = 0; i < 5 && n < instances; i++, n++) {
          const sop = `${series}.${i + 1}`;
          const rec: InstanceRecord = {
            studyUID: study, seriesUID: series, sopInstanceUID: sop, sopClassUID: CT, transferSyntaxUID: '1.2.840.10008.1.2.1',
            instanceNumber: i + 1, numberOfFrames: 1, rows: 512, columns: 512, blobKey: `synthetic/${sop}`, size: 0, sha256: sop,
            studyAttrs, seriesAttrs,
            instanceAttrs: {
              '00080016': { vr: 'UI', Value: [CT] }, '00080018': { vr: 'UI', Value: [sop] }, '00200013': { vr: 'IS', Value: [i + 1] },
              '00280010': { vr: 'US', Value: [512] }, '00280011': { vr: 'US', Value: [512] },
            } as JsonDataset,
            metadata: '{}', frames: '[]', bulk: '{}', render: null,
          };
          if (index.insert(rec) !== 'stored') throw new Error(`synthetic ${sop} not stored`);
        }
      }
    }
  })();
  index.db.pragma('wal_checkpoint(TRUNCATE)');
  index.close();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, studies };
}

/** Study searches a viewer's worklist makes: exact IDs, name prefix, a date range, modality, plain paging. */
export const QIDO_QUERIES = [
  'PatientID=P001234',
  'AccessionNumber=A5000',
  'PatientName=SMI*&limit=25',
  'StudyDate=20150101-20150331&limit=25',
  'ModalitiesInStudy=CT&limit=25',
  'limit=25&offset=100',
];

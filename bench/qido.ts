/**
 * QIDO-RS latency on a 100,000-instance index (10,000 studies x 2 series x 5 instances, test/helpers/qido-seed.ts),
 * built in a temporary directory. For a few typical study searches it prints the median of N runs of
 *  - storage/qido.ts called directly,
 *  - the same search through HTTP (a real listening server, keep-alive connection),
 *  - a baseline in the same run: the naive way (read every study row, parse its attrs, filter and sort in JS),
 * and the ratio baseline / direct. Then the same for a few series and instance searches, and SQLite's plan of each.
 *
 *   npx tsc -p . --outDir .out/qido && node .out/qido/bench/qido.js [runs]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as http from 'http';
import { performance } from 'node:perf_hooks';
import express from 'express';
import { SqliteIndex } from '../storage/index-sqlite';
import { loadConfig } from '../server/config';
import { ServerContext } from '../server/context';
import { qidoRouter } from '../server/qido';
import { JsonDataset } from '../dicom/json';
import {
  explainSearch, parseQidoQuery, personNameMatches, QidoLevel, searchInstances, searchSeries, searchStudies,
} from '../storage/qido';
import { bigPlan, buildBigIndex } from '../test/helpers/qido-seed';

const RUNS = Number(process.argv[2] ?? 50);

function median(times: number[]): number {
  const s = [...times].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeSync(fn: () => unknown): number {
  for (let i = 0; i < 5; i++) fn();
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) { const t0 = performance.now(); fn(); t.push(performance.now() - t0); }
  return median(t);
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 5; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < RUNS; i++) { const t0 = performance.now(); await fn(); t.push(performance.now() - t0); }
  return median(t);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function httpGet(port: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: url, agent, headers: { accept: 'application/dicom+json' } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => { n += c.length; });
      res.on('end', () => (res.statusCode === 200 || res.statusCode === 204 ? resolve(n) : reject(new Error(`${url}: ${res.statusCode}`))));
    }).on('error', reject);
  });
}

/** The baseline: every study row read and filtered in JS, then sorted and paged. */
function naiveStudies(index: SqliteIndex, filter: (ds: JsonDataset) => boolean, limit: number): JsonDataset[] {
  const rows = index.db.prepare('SELECT attrs FROM studies').all() as Array<{ attrs: string }>;
  const key = (ds: JsonDataset) => `${ds['00080020']?.Value?.[0] ?? ''}${ds['00080030']?.Value?.[0] ?? ''}`;
  return rows.map((r) => JSON.parse(r.attrs) as JsonDataset).filter(filter)
    .sort((a, b) => (key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0)).slice(0, limit);
}

const str = (ds: JsonDataset, tag: string) => {
  const x = ds[tag]?.Value?.[0] as any;
  return x && typeof x === 'object' ? x.Alphabetic : x;
};

interface Case { name: string; level: QidoLevel; query: string; study?: boolean; naive?: (ds: JsonDataset) => boolean }

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qido-bench-'));
  const index = new SqliteIndex(dir);
  let server: http.Server | undefined;
  try {
    const t0 = performance.now();
    const plan = bigPlan();
    const n = buildBigIndex(index.db, plan);
    console.log(`index: ${n} instances, ${plan.length} studies, built in ${(performance.now() - t0).toFixed(0)} ms (${dir})`);
    const someStudy = plan[4321].uid;

    const config = loadConfig([], {}, { dataDir: dir });
    const ctx = { config, index, blobs: undefined as any } as ServerContext;
    const app = express();
    app.set('query parser', 'extended');
    app.use('/dicom-web', qidoRouter(ctx));
    server = await new Promise<http.Server>((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
    // the synchronous timings keep the event loop busy for seconds: idle keep-alive sockets must outlive them
    server.keepAliveTimeout = 120_000;
    const port = (server.address() as any).port as number;

    const cases: Case[] = [
      { name: 'PatientName=SMITH*', level: 'study', query: 'PatientName=SMITH*&limit=100',
        naive: (ds) => String(str(ds, '00100010') ?? '').toUpperCase().startsWith('SMITH') },
      { name: 'StudyDate=2020 range', level: 'study', query: 'StudyDate=20200101-20201231&limit=100',
        naive: (ds) => { const d = str(ds, '00080020') ?? ''; return d >= '20200101' && d <= '20201231'; } },
      { name: 'no keys', level: 'study', query: 'limit=100', naive: () => true },
      { name: 'PatientID=P001234', level: 'study', query: 'PatientID=P001234&limit=100', naive: (ds) => str(ds, '00100020') === 'P001234' },
      { name: 'fuzzy PatientName=jose', level: 'study', query: 'PatientName=jose&fuzzymatching=true&limit=100',
        naive: (ds) => personNameMatches(str(ds, '00100010') ?? null, 'jose', true) },
      { name: 'ModalitiesInStudy=PT', level: 'study', query: 'ModalitiesInStudy=PT&limit=100' },
      { name: 'Modality=PT (series key)', level: 'study', query: 'Modality=PT&limit=100' },
      { name: 'AccessionNumber=A12*', level: 'study', query: 'AccessionNumber=A12*&limit=100' },
      { name: '/series Modality=CT', level: 'series', query: 'Modality=CT&limit=100' },
      { name: '/studies/{uid}/series', level: 'series', query: '', study: true },
      { name: '/studies/{uid}/instances', level: 'instance', query: '', study: true },
      { name: '/instances limit=100', level: 'instance', query: 'limit=100' },
    ];

    const rows: string[][] = [['search', 'results', 'direct ms', 'HTTP ms', 'naive ms', 'naive/direct']];
    for (const c of cases) {
      const raw = Object.fromEntries(new URLSearchParams(c.query));
      const q = parseQidoQuery(c.level, raw);
      const scope = c.study ? someStudy : undefined;
      const run = () => (c.level === 'study' ? searchStudies(index.db, q, { baseUrl: 'http://x/dicom-web' })
        : c.level === 'series' ? searchSeries(index.db, q, scope, { baseUrl: 'http://x/dicom-web' })
          : searchInstances(index.db, q, scope, undefined, { baseUrl: 'http://x/dicom-web' }));
      const results = run().length;
      const direct = timeSync(run);
      const url = c.study ? `/dicom-web/studies/${someStudy}/${c.level === 'series' ? 'series' : 'instances'}?${c.query}`
        : `/dicom-web/${c.level === 'study' ? 'studies' : c.level === 'series' ? 'series' : 'instances'}?${c.query}`;
      const viaHttp = await timeAsync(() => httpGet(port, url));
      let naive = '';
      let ratio = '';
      if (c.naive) {
        const nv = timeSync(() => naiveStudies(index, c.naive!, 100));
        naive = nv.toFixed(2);
        ratio = `${(nv / direct).toFixed(1)}x`;
      }
      rows.push([c.name, String(results), direct.toFixed(2), viaHttp.toFixed(2), naive, ratio]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    console.log(`\nmedians of ${RUNS} runs (after 5 warm-up runs)`);
    for (const r of rows) console.log(r.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  '));

    // The plans, so that a regression to a full scan shows here first.
    console.log('\nquery plans of the study searches');
    for (const c of cases.filter((x) => x.level === 'study')) {
      console.log(`  ${c.name}:`);
      const q = parseQidoQuery('study', Object.fromEntries(new URLSearchParams(c.query)));
      for (const line of explainSearch(index.db, q)) console.log(`    ${line}`);
    }
  } finally {
    agent.destroy();
    if (server) await new Promise((r) => server!.close(r));
    index.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });

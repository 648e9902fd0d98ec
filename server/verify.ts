/**
 * `npm run verify -- --data DIR [--repair] [--json]`: checks the file store against the index.
 *
 * - every indexed instance's blob exists, with the recorded size and SHA-256;
 * - every blob file is indexed (an orphan is what a crash between the durable rename and the index
 *   transaction leaves: stored bytes never acknowledged to the client);
 * - no staged upload is left over.
 *
 * - no delete was left half done (a blob in trash/; --repair completes the delete, as the server does at start).
 *
 * With --repair: an orphan is re-indexed by ingesting it again (server/ingest.ts); an orphan the duplicate rule
 * refuses, and a blob that does not match its index row, are moved to DIR/quarantine (never deleted); index rows
 * whose blob is missing are dropped; staging leftovers are deleted. Run it while the server is stopped.
 *
 * Exit code: 0 consistent (or all repaired), 1 problems remain, 2 usage or configuration error.
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import { loadConfig, ConfigError, Config } from './config';
import { FileBlobStore, BLOB_KEY } from '../storage/blobstore';
import { SqliteIndex } from '../storage/index-sqlite';
import { ServerContext } from './context';
import { ingestFile, sha256File } from './ingest';
import { finishTrash } from './delete';

export type ProblemKind = 'interrupted-delete' | 'missing-blob' | 'size-mismatch' | 'hash-mismatch' | 'orphan-blob' | 'foreign-file' | 'staging-leftover';

export interface Problem { kind: ProblemKind; key: string; sopInstanceUID?: string; detail?: string; repaired?: string }

export interface VerifyReport { indexed: number; blobs: number; problems: Problem[]; repaired: number; unrepaired: number }


async function quarantine(dataDir: string, file: string, key: string): Promise<string> {
  const target = path.join(dataDir, 'quarantine', `${Date.now()}-${key.replace(/\//g, '_')}`);
  await fsp.mkdir(path.dirname(target), { recursive: true });
  await fsp.rename(file, target);
  return target;
}

export async function verifyStore(config: Config, repair: boolean): Promise<VerifyReport> {
  const blobs = new FileBlobStore(config.dataDir);
  const index = new SqliteIndex(config.dataDir);
  const ctx: ServerContext = { config, blobs, index };
  const problems: Problem[] = [];
  try {
    // 0. A delete interrupted by a crash (blob already in trash/): completed, as the server does at start.
    for (const t of await blobs.trashed()) {
      const p: Problem = { kind: 'interrupted-delete', key: t.key, sopInstanceUID: index.instanceByBlobKey(t.key) };
      problems.push(p);
    }
    if (repair && problems.length) {
      await finishTrash(ctx);
      for (const p of problems) p.repaired = 'delete completed (index rows and trashed blob removed)';
    }
    const rows = index.allBlobKeys();
    const indexedKeys = new Set(rows.map((r) => r.blob_key));

    // 1. Every index row has its blob, whole and unaltered.
    for (const r of rows) {
      const file = path.join(blobs.root, r.blob_key);
      const size = await blobs.size(r.blob_key);
      let p: Problem | undefined;
      if (size === undefined) p = { kind: 'missing-blob', key: r.blob_key, sopInstanceUID: r.sop_instance_uid };
      else if (size !== r.size) p = { kind: 'size-mismatch', key: r.blob_key, sopInstanceUID: r.sop_instance_uid, detail: `${size} bytes, index says ${r.size}` };
      else if (await sha256File(file) !== r.sha256) p = { kind: 'hash-mismatch', key: r.blob_key, sopInstanceUID: r.sop_instance_uid };
      if (!p) continue;
      problems.push(p);
      if (!repair) continue;
      if (p.kind !== 'missing-blob') p.repaired = `blob moved to ${await quarantine(config.dataDir, file, r.blob_key)}; `;
      index.removeInstance(r.sop_instance_uid);
      p.repaired = `${p.repaired ?? ''}index rows removed`;
    }

    // 2. Every blob is indexed.
    let blobCount = 0;
    const orphans: string[] = [];
    for await (const key of blobs.list()) {
      blobCount++;
      if (!BLOB_KEY.test(key)) { problems.push({ kind: 'foreign-file', key, detail: 'not a blob this server writes; left alone' }); continue; }
      if (!indexedKeys.has(key)) orphans.push(key);
    }
    for (const key of orphans) {
      const p: Problem = { kind: 'orphan-blob', key };
      problems.push(p);
      if (!repair) continue;
      const file = path.join(blobs.root, key);
      const result = await ingestFile(ctx, file, key.split('/')[0]);
      const row = result.ok ? index.getInstance(result.sopInstanceUID) : undefined;
      if (row && row.blob_key === key) p.repaired = `indexed as ${result.ok ? result.sopInstanceUID : ''}`;
      else {
        const why = result.ok ? 'its content is indexed under another key' : result.reason;
        p.repaired = `not indexable (${why}): moved to ${await quarantine(config.dataDir, file, key)}`;
      }
    }

    // 3. Staged uploads never acknowledged.
    const stagingDir = path.join(config.dataDir, 'staging');
    for (const n of await fsp.readdir(stagingDir)) {
      const p: Problem = { kind: 'staging-leftover', key: `staging/${n}` };
      problems.push(p);
      if (repair) { await fsp.rm(path.join(stagingDir, n), { force: true, recursive: true }); p.repaired = 'deleted'; }
    }

    const repaired = problems.filter((p) => p.repaired).length;
    const unrepaired = problems.filter((p) => !p.repaired && p.kind !== 'foreign-file').length;
    return { indexed: rows.length, blobs: blobCount, problems, repaired, unrepaired };
  } finally {
    index.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const repair = argv.includes('--repair');
  const json = argv.includes('--json');
  let config: Config;
  try {
    config = loadConfig(argv.filter((a) => a !== '--repair' && a !== '--json'), process.env);
  } catch (e) {
    if (e instanceof ConfigError) { console.error(`usage: verify --data DIR [--repair] [--json]\nconfiguration error: ${e.message}`); return 2; }
    throw e;
  }
  if (!fs.existsSync(path.join(config.dataDir, 'index.sqlite'))) { console.error(`no index in ${config.dataDir}`); return 2; }
  const report = await verifyStore(config, repair);
  if (json) console.log(JSON.stringify(report));
  else {
    console.log(`${report.indexed} indexed instances, ${report.blobs} blob files, ${report.problems.length} problems`);
    for (const p of report.problems) {
      console.log(`${p.kind} ${p.key}${p.sopInstanceUID ? ` (${p.sopInstanceUID})` : ''}${p.detail ? `: ${p.detail}` : ''}${p.repaired ? ` -> ${p.repaired}` : ''}`);
    }
    if (report.unrepaired) console.log(`${report.unrepaired} problems remain${repair ? '' : '; run with --repair to fix them'}`);
  }
  return report.unrepaired ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => { console.error(`verify failed: ${e?.stack ?? e}`); process.exitCode = 1; });
}

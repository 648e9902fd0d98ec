/**
 * The blob store holds every instance byte-for-byte. The interface is what an S3-compatible store can also
 * offer (whole-object put from a staged local file, ranged reads, listing); FileBlobStore is the embedded
 * default on a local folder.
 */
import * as fs from 'fs';
import * as fsp from 'fs/promises';
import * as path from 'path';
import * as crypto from 'crypto';
import { Readable } from 'stream';

export interface BlobStore {
  /** A new local path to stage an upload on (same file system as the store, so commit is a rename). */
  stagingPath(): string;
  /** Makes a staged file durable under `key`: fsync the file, rename into place, fsync the folder. */
  commit(stagingPath: string, key: string): Promise<void>;
  discard(stagingPath: string): Promise<void>;
  read(key: string, offset: number, length: number): Promise<Buffer>;
  readAll(key: string): Promise<Buffer>;
  stream(key: string, range?: { start: number; end: number }): Readable;
  size(key: string): Promise<number | undefined>;
  remove(key: string): Promise<void>;
  /** Every key in the store (for `verify`). */
  list(): AsyncIterable<string>;
  /** Staged files left by a crash, and their removal. */
  cleanStaging(): Promise<number>;
  /** Delete, step 1: the blob leaves the store atomically (see server/delete.ts); its trash file. */
  moveToTrash(key: string): Promise<string | undefined>;
  /** Trash entries a crash left. */
  trashed(): Promise<Array<{ key: string; file: string }>>;
}

/** Keys are relative paths made of validated UIDs and hex digests; anything else is refused. */
export const BLOB_KEY = /^[0-9.]+\/[0-9.]+\/[0-9.]+\/[0-9a-f]{16,64}\.dcm$/;

export class FileBlobStore implements BlobStore {
  readonly root: string;
  private readonly staging: string;
  /** Blobs of instances being deleted: moved here before their index rows go (see server/delete.ts). */
  readonly trash: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'blobs');
    this.staging = path.join(dataDir, 'staging');
    this.trash = path.join(dataDir, 'trash');
    fs.mkdirSync(this.root, { recursive: true });
    fs.mkdirSync(this.staging, { recursive: true });
    fs.mkdirSync(this.trash, { recursive: true });
  }

  /**
   * First step of a delete: the blob leaves the store by one atomic rename into trash/ (its key encoded in the
   * name), made durable. A crash after it leaves a trash entry that `finishTrash` (at start and in verify)
   * completes. Missing blobs are not an error (a repeated delete).
   */
  async moveToTrash(key: string): Promise<string | undefined> {
    const src = this.file(key);
    const dst = path.join(this.trash, encodeURIComponent(key));
    try { await fsp.rename(src, dst); } catch (e: any) { if (e?.code === 'ENOENT') return undefined; throw e; }
    const dh = await fsp.open(path.dirname(src), 'r');
    try { await dh.sync(); } finally { await dh.close(); }
    return dst;
  }

  /** Blob keys waiting in trash/ (a delete interrupted between its steps). */
  async trashed(): Promise<Array<{ key: string; file: string }>> {
    const names = await fsp.readdir(this.trash);
    return names.map((n) => ({ key: decodeURIComponent(n), file: path.join(this.trash, n) }));
  }

  private file(key: string): string {
    if (!BLOB_KEY.test(key) || key.includes('..')) throw new Error(`invalid blob key ${key}`);
    return path.join(this.root, key);
  }

  stagingPath(): string {
    return path.join(this.staging, `${Date.now()}-${crypto.randomBytes(8).toString('hex')}.part`);
  }

  async commit(stagingPath: string, key: string): Promise<void> {
    const target = this.file(key);
    const dir = path.dirname(target);
    // Folders made here (a new instance has its own) are durable only once their parent's entry is: their
    // parents are synced together with the file.
    const first = await fsp.mkdir(dir, { recursive: true });
    const parents: string[] = [];
    if (first) for (let d = dir; d.length >= first.length; d = path.dirname(d)) parents.push(path.dirname(d));
    const sync = async (p: string) => { const h = await fsp.open(p, 'r'); try { await h.sync(); } finally { await h.close(); } };
    await Promise.all([sync(stagingPath), ...parents.map(sync)]);
    await fsp.rename(stagingPath, target);
    // The rename is durable only once the folder entry is on disk.
    const dh = await fsp.open(dir, 'r');
    try { await dh.sync(); } finally { await dh.close(); }
  }

  async discard(stagingPath: string): Promise<void> {
    await fsp.rm(stagingPath, { force: true });
  }

  async read(key: string, offset: number, length: number): Promise<Buffer> {
    const fh = await fsp.open(this.file(key), 'r');
    try {
      const buf = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) throw new Error(`blob ${key} is shorter than the index says`);
        got += bytesRead;
      }
      return buf;
    } finally {
      await fh.close();
    }
  }

  readAll(key: string): Promise<Buffer> {
    return fsp.readFile(this.file(key));
  }

  stream(key: string, range?: { start: number; end: number }): Readable {
    return fs.createReadStream(this.file(key), range ? { start: range.start, end: range.end } : undefined);
  }

  async size(key: string): Promise<number | undefined> {
    try { return (await fsp.stat(this.file(key))).size; } catch { return undefined; }
  }

  async remove(key: string): Promise<void> {
    await fsp.rm(this.file(key), { force: true });
  }

  async *list(): AsyncIterable<string> {
    const walk = async function* (dir: string, rel: string): AsyncIterable<string> {
      let entries: fs.Dirent[];
      try { entries = await fsp.readdir(dir, { withFileTypes: true }); } catch { return; }
      for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) yield* walk(path.join(dir, e.name), r);
        else if (e.isFile()) yield r;
      }
    };
    yield* walk(this.root, '');
  }

  async cleanStaging(): Promise<number> {
    const names = await fsp.readdir(this.staging);
    await Promise.all(names.map((n) => fsp.rm(path.join(this.staging, n), { force: true })));
    return names.length;
  }
}

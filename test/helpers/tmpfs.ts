/**
 * A real small file system for tests of a full disk: a tmpfs mounted on a temporary folder. Mounting needs root
 * (CAP_SYS_ADMIN); where it is not allowed, `canMount` is false and those tests are skipped.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFileSync } from 'child_process';

/** A fresh tmpfs of `size` bytes, or undefined when this process may not mount. */
export function mountTmpfs(size: number): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomweb-fullfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return dir;
  } catch {
    fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
}

export function unmount(dir: string): void {
  try { execFileSync('umount', [dir], { stdio: 'ignore' }); } catch { /* already gone */ }
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Bytes free for this process on the file system of `dir`. */
export function freeBytes(dir: string): number { const s = fs.statfsSync(dir); return s.bavail * s.bsize; }

export const canMount = (() => { const d = mountTmpfs(1 << 20); if (d) unmount(d); return d !== undefined; })();

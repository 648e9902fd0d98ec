/**
 * Faults of the machine, not of the request: a full disk, a read-only or broken file system or index, a stored
 * blob that is missing or no longer matches what was stored. Each is answered truthfully (507 when there is no
 * room to store, 503 when storage cannot be used now, 500 with a reason when a stored instance is damaged),
 * logged once per occurrence, and counted here, in one place, for the metrics to expose.
 */
import { HttpError } from './errors';
import { IndexUnavailable } from '../storage/index-sqlite';
import { log } from './log';
import { faultsTotal } from './metrics';

export type FaultKind = 'storage-full' | 'storage-unavailable' | 'index-unavailable' | 'blob-missing' | 'blob-corrupt';

const counts: Record<FaultKind, number> = {
  'storage-full': 0, 'storage-unavailable': 0, 'index-unavailable': 0, 'blob-missing': 0, 'blob-corrupt': 0,
};

/** How many faults of each kind this process has met since it started. */
export function faultCounts(): Readonly<Record<FaultKind, number>> { return { ...counts }; }

/** Counts a fault and logs it (one line: what, where). */
export function recordFault(kind: FaultKind, detail: string): void {
  counts[kind]++;
  faultsTotal.inc({ kind });
  log.error({ fault: kind, detail }, `fault ${kind}: ${detail}`);
}

/** A fault answered with its status and reason; `kind` says what was counted. */
export class FaultError extends HttpError {
  constructor(status: number, reason: string, readonly kind: FaultKind) { super(status, reason); this.name = 'FaultError'; }
}

const INSUFFICIENT_STORAGE = 'insufficient storage: the server\'s disk is full; try again later';

/**
 * Classifies an error from the file system (errno codes) or SQLite (better-sqlite3 codes) as a fault of storage,
 * or undefined when it is not one. Nothing is counted or logged here.
 */
export function classifyStorageError(e: unknown): FaultError | undefined {
  if (e instanceof FaultError) return e;
  if (e instanceof IndexUnavailable) return new FaultError(503, e.message, 'index-unavailable');
  const code = typeof (e as any)?.code === 'string' ? String((e as any).code) : '';
  if (!code) return undefined;
  switch (code) {
    case 'ENOSPC': case 'EDQUOT': case 'EFBIG': case 'SQLITE_FULL':
      return new FaultError(507, INSUFFICIENT_STORAGE, 'storage-full');
    case 'EROFS': return new FaultError(503, 'storage is read-only; try again later', 'storage-unavailable');
    case 'EIO': return new FaultError(503, 'storage I/O error; try again later', 'storage-unavailable');
    case 'EACCES': case 'EPERM': return new FaultError(503, 'storage is not writable by the server', 'storage-unavailable');
    case 'EMFILE': case 'ENFILE': return new FaultError(503, 'too many open files; try again later', 'storage-unavailable');
    default: break;
  }
  if (code.startsWith('SQLITE_')) {
    if (code.startsWith('SQLITE_READONLY')) return new FaultError(503, 'the index is read-only; try again later', 'index-unavailable');
    if (code.startsWith('SQLITE_IOERR')) return new FaultError(503, 'index I/O error; try again later', 'index-unavailable');
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return new FaultError(503, 'the index is busy; try again later', 'index-unavailable');
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return new FaultError(503, 'the index is damaged', 'index-unavailable');
    if (code.startsWith('SQLITE_CANTOPEN')) return new FaultError(503, 'the index cannot be opened', 'index-unavailable');
  }
  return undefined;
}

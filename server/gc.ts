/**
 * Collecting garbage ArrayBuffers sooner than V8 would. Rendered images, deflate output and decoded frames live
 * outside the JavaScript heap; V8 lets such external memory pile up by ~64 MB per isolate before it collects,
 * and this server runs three isolates (main thread and two render workers). A collection after every few MB of
 * images keeps that garbage small (bench/run.ts, peak RSS).
 */
import * as v8 from 'v8';
import * as vm from 'vm';

type Gc = (opts?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;
let gc: Gc | undefined;

/** V8's gc(), without --expose-gc on the command line. 'minor' frees young buffers (well under a millisecond). */
export function collectGarbage(type: 'minor' | 'major' = 'major', execution: 'sync' | 'async' = 'sync'): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as Gc;
  }
  gc({ type, execution });
}

/** Counts bytes that become garbage; past `limit`, one collection of `type`, and the count starts again. */
export class GarbageBudget {
  private bytes = 0;
  constructor(private readonly limit: number, private readonly type: 'minor' | 'major', private readonly execution: 'sync' | 'async' = 'sync',
    private readonly collect: typeof collectGarbage = collectGarbage) {}
  add(n: number): void {
    this.bytes += n;
    if (this.bytes < this.limit) return;
    this.bytes = 0;
    this.collect(this.type, this.execution);
  }
}

/**
 * CPU time of our server's process and threads, read from /proc (Linux), for the measuring tools (cost.ts, ab.ts).
 */
import * as fs from 'fs';

/** CPU time of a process so far, in ms, its ended threads included (/proc stat: utime + stime, 10 ms ticks). */
export function cpuMs(pid: number): number {
  const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = raw.slice(raw.lastIndexOf(') ') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * CPU time of each live thread of a process so far, in ms (schedstat: ns on CPU), by thread id, with its name;
 * the main thread (id = pid) is named 'main'.
 */
export function threadCpuMs(pid: number): Map<string, { name: string; ms: number }> {
  const out = new Map<string, { name: string; ms: number }>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const ms = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
      const name = Number(tid) === pid ? 'main' : fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, { name, ms });
    } catch { /* the thread ended */ }
  }
  return out;
}

/** CPU time of the live threads of a process so far, in ms, ns-precise (threadCpuMs summed). */
export function liveCpuMs(pid: number): number {
  let ms = 0;
  for (const t of threadCpuMs(pid).values()) ms += t.ms;
  return ms;
}

/**
 * Prometheus metrics (prom-client), served at /metrics: requests by resource and status, latency histograms,
 * STOW and C-STORE instances and bytes, cache hit rates, render time, the render queue, the index's size.
 * One registry per process; counters are process-wide (a test's second server adds to the same ones).
 */
import * as client from 'prom-client';

export const registry = new client.Registry();
client.collectDefaultMetrics({ register: registry });

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const httpRequests = new client.Counter({
  name: 'dicomweb_http_requests_total', help: 'HTTP requests answered, by resource, method and status',
  labelNames: ['resource', 'method', 'status'] as const, registers: [registry],
});
export const httpDuration = new client.Histogram({
  name: 'dicomweb_http_request_duration_seconds', help: 'Time from request to the end of the response, by resource',
  labelNames: ['resource', 'method'] as const, buckets: LATENCY_BUCKETS, registers: [registry],
});
export const storedInstances = new client.Counter({
  name: 'dicomweb_store_instances_total', help: 'Instances received for storage, by protocol (stow, dimse) and outcome (stored, identical, failed)',
  labelNames: ['protocol', 'outcome'] as const, registers: [registry],
});
export const storedBytes = new client.Counter({
  name: 'dicomweb_store_bytes_total', help: 'Bytes of instances newly stored, by protocol',
  labelNames: ['protocol'] as const, registers: [registry],
});
export const cacheLookups = new client.Counter({
  name: 'dicomweb_cache_lookups_total', help: 'Cache lookups by cache (rendered image, frame) and result (hit, miss)',
  labelNames: ['cache', 'result'] as const, registers: [registry],
});
export const faultsTotal = new client.Counter({
  name: 'dicomweb_faults_total', help: 'Faults of storage met (server/faults.ts): storage-full, storage-unavailable, index-unavailable, blob-missing, blob-corrupt',
  labelNames: ['kind'] as const, registers: [registry],
});
export const renderDuration = new client.Histogram({
  name: 'dicomweb_render_duration_seconds', help: 'Decode + render + encode of one uncached image, by where it ran (worker, inline)',
  labelNames: ['where'] as const, buckets: LATENCY_BUCKETS, registers: [registry],
});

/** Probes set by the services that own the numbers; read at scrape time. */
const probes: { renderQueue?: () => number; renderInFlight?: () => number; indexInstances?: () => number; indexBytes?: () => number } = {};
export function setProbe<K extends keyof typeof probes>(name: K, fn: NonNullable<(typeof probes)[K]>): void { probes[name] = fn; }

new client.Gauge({
  name: 'dicomweb_render_queue_depth', help: 'Render tasks waiting for a worker thread', registers: [registry],
  collect() { this.set(probes.renderQueue?.() ?? 0); },
});
new client.Gauge({
  name: 'dicomweb_render_in_flight', help: 'Render tasks handed to worker threads and not yet answered', registers: [registry],
  collect() { this.set(probes.renderInFlight?.() ?? 0); },
});
new client.Gauge({
  name: 'dicomweb_index_instances', help: 'Instances in the index', registers: [registry],
  collect() { this.set(probes.indexInstances?.() ?? 0); },
});
new client.Gauge({
  name: 'dicomweb_index_bytes', help: 'Size of the index on disk, bytes', registers: [registry],
  collect() { this.set(probes.indexBytes?.() ?? 0); },
});

/**
 * The resource a request addressed: its path with every UID (and frame list) replaced by `{}`, e.g.
 * `studies/{}/series/{}/instances/{}/frames/{}/rendered`. A bounded set of labels whatever clients send.
 */
export function resourceOf(url: string): string {
  const p = url.split('?')[0];
  if (!p.startsWith('/dicom-web')) return p === '/health' || p === '/ready' || p === '/metrics' ? p.slice(1) : 'other';
  const s = p.slice('/dicom-web'.length).split('/').filter(Boolean);
  if (s.length === 0) return 'root';
  if (s[0] === 'signed-links') return s.length === 1 ? 'signed-links' : 'other';
  const out: string[] = [];
  for (let i = 0; i < s.length; i++) {
    const name = s[i];
    if (name === 'bulkdata') { out.push('bulkdata'); break; }
    if (!['studies', 'series', 'instances', 'frames', 'rendered', 'thumbnail', 'metadata'].includes(name)) return 'other';
    out.push(name);
    if (['studies', 'series', 'instances', 'frames'].includes(name) && i + 1 < s.length) { out.push('{}'); i++; }
  }
  return out.join('/');
}

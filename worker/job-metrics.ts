// What a worker tells Prometheus when a job ends, read from the job's final record (so the numbers are the ones
// the client sees): the ended-jobs counter, and the queue wait, sandbox set-up, run and end-to-end histograms.
// Tenant and image label values are bounded (common/metrics.ts); a job that never ran names no image, since the
// image it asked for may be any string a tenant made up.
import type { JobRecord } from '../common/job.js';
import { type LidMetrics, NO_IMAGE_LABEL } from '../common/metrics.js';

const seconds = (ms: unknown) => (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? ms / 1000 : null);

export function observeJobEnd(metrics: LidMetrics, record: JobRecord): void {
  const image = record.result ? metrics.imageLabel.value(record.image) : NO_IMAGE_LABEL;
  const tenant = metrics.tenantLabel.value(record.tenant);
  // A run's status (ok, timeout, ...) when it ran; otherwise the error code, or the state itself (cancelled).
  const status = record.result?.status ?? record.error?.code ?? record.state;
  metrics.jobsEnded.inc({ state: record.state, status, tenant, image });
  const observe = (h: LidMetrics['queueWait'], value: number | null) => {
    if (value !== null) h.observe({ image }, value);
  };
  observe(metrics.queueWait, seconds(record.queueMs));
  observe(metrics.setup, seconds(record.result?.usage.setupMs));
  observe(metrics.run, seconds(record.result?.usage.runMs));
  if (record.finishedAt) {
    observe(metrics.endToEnd, seconds(Date.parse(record.finishedAt) - Date.parse(record.createdAt)));
  }
}

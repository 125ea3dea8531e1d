// Lid's Prometheus metrics: every name, type and label set in one place, made into a prom-client Registry per
// process (never the library's global default registry, so tests can build several and `lid up` can hand one
// registry to both its gateway and its worker). Label values stay bounded, since every distinct value is a series
// that Prometheus keeps: states and statuses are finite sets, job ids never become labels, and the labels that come
// from tenants' input go through a BoundedLabel (at most MAX_TENANT_LABELS tenants and MAX_IMAGE_LABELS images per
// process, the rest counted together as "_other"). An image label names only an image a job actually ran on: a
// tenant that submits 10,000 bogus image names gets them counted under "_none", never as 10,000 series.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Queue wait and end-to-end time: from milliseconds (idle service) to minutes (a long backlog). */
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Sandbox set-up takes a few milliseconds; anything near a second means trouble worth seeing. */
const SETUP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Distinct tenant label values one process reports; later tenants are counted under OTHER_LABEL. */
export const MAX_TENANT_LABELS = 200;
/** Distinct image label values one process reports; later images are counted under OTHER_LABEL. */
export const MAX_IMAGE_LABELS = 100;
export const OTHER_LABEL = '_other';
/** The image label of a job that never ran on an image (not found, refused, cancelled while queued). */
export const NO_IMAGE_LABEL = '_none';
const MAX_LABEL_LENGTH = 128;

/** One label's values, kept to `max` distinct ones: the first `max` seen stand for themselves, the rest `_other`. */
export class BoundedLabel {
  private readonly seen = new Set<string>();

  constructor(readonly max: number) {}

  value(raw: string): string {
    const v = raw.slice(0, MAX_LABEL_LENGTH);
    if (this.seen.has(v)) return v;
    if (this.seen.size >= this.max) return OTHER_LABEL;
    this.seen.add(v);
    return v;
  }
}

export interface LidMetrics {
  registry: Registry;
  /** Every tenant label value goes through this. */
  tenantLabel: BoundedLabel;
  /** Every image label value goes through this. */
  imageLabel: BoundedLabel;
  /** Jobs accepted by the gateway. */
  jobsSubmitted: Counter<'tenant'>;
  /** Jobs that ended on a worker: state (completed, cancelled, error) and status (ok, timeout, ... or error code). */
  jobsEnded: Counter<'state' | 'status' | 'tenant' | 'image'>;
  queueWait: Histogram<'image'>;
  setup: Histogram<'image'>;
  run: Histogram<'image'>;
  endToEnd: Histogram<'image'>;
  running: Gauge<'worker'>;
  capacity: Gauge<'worker'>;
  freeSlots: Gauge<'worker'>;
  imageCacheHits: Counter;
  imageCacheMisses: Counter;
  /** Compressed bytes of the images in the node's store; set by whoever owns a store (see onImageBytes). */
  imageBytes: Gauge;
  redisErrors: Counter<'component'>;
  /** Lets the image owner supply the store size, read at scrape time (walking manifests is too costly per job). */
  onImageBytes(read: () => number): void;
}

/** Builds the metrics on a new registry (with Node's default process metrics, prefixed lid_). */
export function createMetrics(): LidMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'lid_' });
  const registers = [registry];
  const seconds = (name: string, help: string, buckets: number[]) =>
    new Histogram({ name, help, labelNames: ['image'] as const, buckets, registers });
  let readImageBytes: (() => number) | null = null;

  return {
    registry,
    tenantLabel: new BoundedLabel(MAX_TENANT_LABELS),
    imageLabel: new BoundedLabel(MAX_IMAGE_LABELS),
    jobsSubmitted: new Counter({
      name: 'lid_jobs_submitted_total',
      help: 'jobs accepted by the gateway',
      labelNames: ['tenant'] as const,
      registers,
    }),
    jobsEnded: new Counter({
      name: 'lid_jobs_total',
      help: 'jobs that ended, by final state, run status (or error code), tenant and image',
      labelNames: ['state', 'status', 'tenant', 'image'] as const,
      registers,
    }),
    queueWait: seconds('lid_job_queue_wait_seconds', 'time from submission to a worker starting the job', WAIT_BUCKETS),
    setup: seconds('lid_job_setup_seconds', 'time to set up the sandbox (namespaces, mounts, cgroups)', SETUP_BUCKETS),
    run: seconds('lid_job_run_seconds', "time the job's command ran", WAIT_BUCKETS),
    endToEnd: seconds('lid_job_end_to_end_seconds', 'time from submission to the stored result', WAIT_BUCKETS),
    running: new Gauge({
      name: 'lid_jobs_running',
      help: 'jobs running now',
      labelNames: ['worker'] as const,
      registers,
    }),
    capacity: new Gauge({
      name: 'lid_worker_capacity',
      help: 'jobs a worker runs at once',
      labelNames: ['worker'] as const,
      registers,
    }),
    freeSlots: new Gauge({
      name: 'lid_worker_free_slots',
      help: 'capacity minus running jobs',
      labelNames: ['worker'] as const,
      registers,
    }),
    imageCacheHits: new Counter({
      name: 'lid_image_cache_hits_total',
      help: "jobs whose image was already in the node's store",
      registers,
    }),
    imageCacheMisses: new Counter({
      name: 'lid_image_cache_misses_total',
      help: 'jobs whose image had to be built or pulled first',
      registers,
    }),
    imageBytes: new Gauge({
      name: 'lid_image_bytes',
      help: "compressed bytes of the distinct blobs of the images in the node's store",
      registers,
      collect() {
        if (readImageBytes) this.set(readImageBytes());
      },
    }),
    redisErrors: new Counter({
      name: 'lid_redis_errors_total',
      help: 'errors reported by Redis connections, by the component owning the connection',
      labelNames: ['component'] as const,
      registers,
    }),
    onImageBytes(read) {
      readImageBytes = read;
    },
  };
}

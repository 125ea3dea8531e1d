// Lid's Prometheus metrics: every name, type and label set in one place, made into a prom-client Registry per
// process (never the library's global default registry, so tests can build several and `lid up` can hand one
// registry to both its gateway and its worker). Label values stay bounded: tenants are created by admins, images
// come from the store, states and statuses are finite sets; job ids never become labels.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Queue wait and end-to-end time: from milliseconds (idle service) to minutes (a long backlog). */
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Sandbox set-up takes a few milliseconds; anything near a second means trouble worth seeing. */
const SETUP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface LidMetrics {
  registry: Registry;
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

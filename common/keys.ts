// Every name Lid uses in Redis -- keys, pub/sub channels, BullMQ queues, connection names -- in one place, as
// BullMQ's QueueKeys holds its own. The gateway, the workers, the CLI and queue-driven producers all read and write
// the same keys, so a key spelled in two files is a contract kept by hope; here each is spelled once, with what it
// holds, its Redis type and how long it lives. "result TTL" is LID_RESULT_TTL (config.resultTtlSeconds).
//
// Every key is `lid:<family>[:<id>[:<part>]]`. The ids put into keys never hold ":" (job ids job_<base64url>, batch
// ids bat_<base64url>, tenant names [a-z0-9-], hex hashes and trace ids; the gateway refuses an Idempotency-Key with
// ":"), so no key of one family can be spelled by another. BullMQ keeps its own keys under `lid:<queue>:...`
// (lid:lid-jobs:wait, ...), apart from Lid's because no family is named like a queue.

/** What every Lid key and channel starts with (`lid:`), and the prefix BullMQ puts before its queues' keys. */
export const PREFIX = 'lid';

/** The BullMQ queues; open each with `{ prefix: QUEUES.prefix }`. */
export const QUEUES = Object.freeze({
  prefix: PREFIX,
  /** QueuedJob entries (common/job.ts): the jobs to run. Kept by BullMQ: 1000 completed and 1000 failed entries. */
  jobs: 'lid-jobs',
  /** Callback deliveries (worker/callbacks.ts): one per job or batch, retried with backoff; 1000 kept after. */
  callbacks: 'lid-callbacks',
} as const);

/** Pub/sub channels. Each message is a job id; subscribers read the rest from the keys below. */
export const CHANNELS = Object.freeze({
  /** Jobs to cancel now: every worker listens and aborts the one it runs. */
  cancel: 'lid:cancel',
  /** Jobs whose final record was just stored (the gateway's ?wait and the end of /events listen). */
  final: 'lid:final',
  /** Jobs whose event stream just grew (wakes the gateway's /events followers). */
  events: 'lid:events',
} as const);

export const keys = Object.freeze({
  /** STRING, JSON JobRecord (common/job.ts). No TTL while queued or running; expires result TTL after it ends. */
  job: (jobId: string) => `lid:job:${jobId}`,
  /**
   * STREAM of JobEvent (field `event`, common/job-store.ts), capped near 10,000 entries; the final entry is a mark
   * that readers fill from the record. Expires result TTL after the final event.
   */
  jobEvents: (jobId: string) => `lid:job:${jobId}:events`,
  /** STRING "1": someone asked to cancel the job (a worker checks it before starting). Expires after result TTL. */
  jobCancel: (jobId: string) => `lid:job:${jobId}:cancel`,
  /**
   * STRING "1", SET NX: the job has been counted out of its tenant's queued counter (by the first worker to take it,
   * or by the gateway when it cancels it queued), so that it is never counted out twice. Expires after result TTL.
   */
  jobDequeued: (jobId: string) => `lid:job:${jobId}:dequeued`,
  /** STRING job id, SET NX: the job an Idempotency-Key of a tenant names. Expires after result TTL. */
  idempotency: (tenant: string, key: string) => `lid:idem:${tenant}:${key}`,
  /** STRING batch id, SET NX: the batch an Idempotency-Key names (apart from a job's same key). Expires likewise. */
  batchIdempotency: (tenant: string, key: string) => `lid:idem:${tenant}:batch:${key}`,
  /** STRING, JSON TenantRecord (common/tenant-record.ts). No TTL; kept after revoke. */
  tenant: (name: string) => `lid:tenant:${name}`,
  /** STRING integer: the tenant's jobs waiting in the queue (INCR at submit, DECR when they leave it). No TTL. */
  tenantQueued: (name: string) => `lid:tenant:${name}:queued`,
  /** HASH {tokens, at}: the tenant's request token bucket. Expires once it would be full again (plus 1 s). */
  tenantRate: (name: string) => `lid:tenant:${name}:rate`,
  /**
   * ZSET job id -> lease expiry (ms since the epoch): the tenant's running slots across all workers. Members are
   * dropped once their lease expired (a dead worker's); the key has no TTL.
   */
  tenantRunning: (name: string) => `lid:tenant:${name}:running`,
  /** STRING tenant name, keyed by the hex SHA-256 of an API key. No TTL; deleted when the key is revoked. */
  apiKey: (sha256: string) => `lid:apikey:${sha256}`,
  /** SET of every tenant name, for listing. No TTL. */
  tenants: 'lid:tenants',
  /** STRING, JSON BatchRecord (common/batch-record.ts). Expires result TTL after the batch was made. */
  batch: (batchId: string) => `lid:batch:${batchId}`,
  /** STRING integer: how many of the batch's jobs have ended (INCR by each). Expires result TTL after the last. */
  batchEnded: (batchId: string) => `lid:batch:${batchId}:ended`,
  /** LIST of JSON StoredSpan (common/trace-store.ts): a trace's job spans. Expires result TTL after its last span. */
  trace: (traceId: string) => `lid:trace:${traceId}`,
  /** SET of image names the workers offer ("python:latest"), each added by its worker's heartbeat. No TTL. */
  images: 'lid:images',
  /** ZSET worker id -> last heartbeat (ms since the epoch). A worker removes itself when it stops; no TTL. */
  workers: 'lid:workers',
  /** STRING, JSON WorkerInfo (common/activity.ts), rewritten by each heartbeat; expires 15 s after the last. */
  worker: (workerId: string) => `lid:worker:${workerId}`,
  /** SET of ids of the jobs running now, on any worker. No TTL. */
  running: 'lid:running',
  /** LIST of ids of the jobs that ended last, newest first, capped at 100. No TTL. */
  recent: 'lid:recent',
} as const);

/** Keys of BullMQ's own that Lid reads (never writes), spelled as BullMQ spells them under QUEUES.prefix. */
export const queueKeys = Object.freeze({
  /**
   * STRING, the lock token of the worker holding a queue entry (BullMQ's job id), set PX lockDuration when a worker
   * takes it and renewed while it works on it. A worker claims a job only while it holds this lock (worker/claim.ts).
   */
  lock: (queue: string, entryId: string) => `${QUEUES.prefix}:${queue}:${entryId}:lock`,
} as const);

/** The name a connection shows in CLIENT LIST: `lid:<purpose>` (lid:gateway, lid:worker-queue, ...). */
export const connectionName = (purpose: string) => `${PREFIX}:${purpose}`;

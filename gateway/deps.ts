// What the gateway is built from. createApp takes GatewayDeps (connections and stores made by its caller, so tests
// and `lid up` can share them) and derives Services, the bundle every route factory receives. GatewayEnv types
// what middleware leaves on the request context for the handlers (the authenticated tenant).
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BatchStore } from '../common/batch-store.js';
import type { LidConfig } from '../common/config.js';
import type { JobStore } from '../common/job-store.js';
import type { LidMetrics } from '../common/metrics.js';
import type { JobNotifier } from './job-notifier.js';
import type { ImageCatalog } from './image-names.js';
import type { Quota } from './quota.js';
import type { StreamCap } from './stream-cap.js';
import type { Tenant, TenantStore } from './tenants.js';

export interface GatewayDeps {
  redis: Redis;
  /** A fresh connection for the notifier's pub/sub subscription; whoever asks for one closes it. */
  blockingRedis: () => Redis;
  queue: Queue;
  jobs: JobStore;
  tenants: TenantStore;
  config: LidConfig;
  logger?: Logger;
  /** Shared wait for jobs to end or their events to grow; made from blockingRedis when absent (its owner closes it). */
  notifier?: JobNotifier;
  /** Open /events streams per tenant on this gateway; made from LID_MAX_STREAMS_PER_TENANT when absent. */
  streams?: StreamCap;
  /** Prometheus metrics served on /metrics; `lid up` shares one registry with its worker. Made when absent. */
  metrics?: LidMetrics;
}

export interface Services extends Required<GatewayDeps> {
  notifier: JobNotifier;
  streams: StreamCap;
  quota: Quota;
  images: ImageCatalog;
  batches: BatchStore;
}

export interface GatewayEnv {
  Variables: { tenant: Tenant };
}

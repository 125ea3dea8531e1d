// The package's entry, `import { LidClient, LidQueueClient } from 'lid'`: the two ways another program hands Lid
// jobs, over HTTP (LidClient, common/http-client.ts) or straight onto the queue (LidQueueClient,
// common/queue-client.ts), with the job contract and the errors both throw.
export { LidClient, isFinalRecord, type LidClientOptions, type LidJobEvent } from './http-client.js';
export { LidQueueClient } from './queue-client.js';
export { isLidApiError, LidApiError } from './lid-api-error.js';
export { isLidError, LidError, type ErrorCode } from './errors.js';
export { JobRequestSchema, type JobRecord, type JobRequest, type JobRequestInput, type JobState } from './job.js';
export type {
  ApiErrorCode,
  BatchCreated,
  BatchRequestInput,
  BatchView,
  ErrorEnvelope,
  JobStreamPayloads,
  JobTrace,
} from './http-api.js';

// The names /openapi.json gives the API's schemas (common/job.ts and common/http-api.ts hold the schemas, which the
// routes declare), with the examples the reference shows; and the ids that appear in paths. A schema registered
// here is a component of the document and every route that names it refers to it.
import crypto from 'node:crypto';
import { z } from 'zod';
import {
  BatchCreatedSchema,
  BatchRequestSchema,
  BatchViewSchema,
  ErrorEnvelopeSchema,
  HealthSchema,
  ImagesSchema,
  JobRecordSchema,
  JobTraceSchema,
  ReadySchema,
} from '../common/http-api.js';
import { JobRequestSchema } from '../common/job.js';
import { API_EXAMPLES } from './api-examples.js';

/** Job ids come from common/job-submitter.ts newJobId: `job_` + 20 base64url characters. */
export const JOB_ID = /^job_[A-Za-z0-9_-]{20}$/;
export const BATCH_ID = /^bat_[A-Za-z0-9_-]{20}$/;
export const newBatchId = () => `bat_${crypto.randomBytes(15).toString('base64url')}`;

/** Every schema /openapi.json names, under its component name. */
export const apiSchemas = z.registry<{ id: string; examples?: unknown[] }>();
apiSchemas.add(JobRequestSchema, { id: 'JobRequest', examples: [API_EXAMPLES.jobRequest] });
apiSchemas.add(JobRecordSchema, { id: 'JobRecord', examples: [API_EXAMPLES.jobRecord] });
apiSchemas.add(JobTraceSchema, { id: 'JobTrace' });
apiSchemas.add(BatchRequestSchema, { id: 'BatchRequest', examples: [API_EXAMPLES.batchRequest] });
apiSchemas.add(BatchCreatedSchema, { id: 'BatchCreated' });
apiSchemas.add(BatchViewSchema, { id: 'Batch' });
apiSchemas.add(ImagesSchema, { id: 'Images', examples: [{ images: ['python:latest', 'node:latest'] }] });
apiSchemas.add(ErrorEnvelopeSchema, { id: 'Error', examples: [API_EXAMPLES.error] });
apiSchemas.add(HealthSchema, { id: 'Health' });
apiSchemas.add(ReadySchema, { id: 'Ready' });

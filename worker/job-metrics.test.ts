// Label values fed by tenants' input stay bounded: 10,000 distinct tenants and image names (the bogus names a
// tenant can submit at will) make at most the bounded number of series, the first ones still under their own names
// (the control that labels are not simply thrown away), and an image no job ran on never becomes a label.
import { expect, it } from 'vitest';
import type { JobRecord } from '../common/job.js';
import { createMetrics, MAX_IMAGE_LABELS, MAX_TENANT_LABELS } from '../common/metrics.js';
import { observeJobEnd } from './job-metrics.js';

const at = new Date(0).toISOString();
const record = (tenant: string, image: string, ran: boolean): JobRecord => ({
  id: `job_${tenant}`,
  tenant,
  image,
  state: ran ? 'completed' : 'error',
  createdAt: at,
  startedAt: at,
  finishedAt: at,
  queueMs: 1,
  attempts: 1,
  traceId: null,
  ...(ran
    ? {
        result: {
          status: 'ok',
          exitCode: 0,
          signal: null,
          stdout: '',
          stderr: '',
          stdoutTruncated: false,
          stderrTruncated: false,
          usage: { setupMs: 1, runMs: 1 },
        },
      }
    : { error: { code: 'not_found', message: 'no such image' } }),
});

/** The label sets of one metric's samples in the registry's text. */
async function series(metrics: ReturnType<typeof createMetrics>, name: string): Promise<string[]> {
  const text = await metrics.registry.metrics();
  return text.split('\n').filter((line) => line.startsWith(`${name}{`));
}

it('keeps 10,000 distinct tenants and images to the bounded number of series', async () => {
  const metrics = createMetrics();
  for (let i = 0; i < 10_000; i++) observeJobEnd(metrics, record(`tenant-${i}`, `image-${i}:1`, true));
  const ended = await series(metrics, 'lid_jobs_total');
  const tenants = new Set(ended.map((l) => /tenant="([^"]*)"/.exec(l)![1]));
  const images = new Set(ended.map((l) => /image="([^"]*)"/.exec(l)![1]));
  expect(tenants.size).toBe(MAX_TENANT_LABELS + 1); // the first 200, and _other
  expect(images.size).toBe(MAX_IMAGE_LABELS + 1);
  expect(tenants).toContain('tenant-0');
  expect(tenants).toContain(`tenant-${MAX_TENANT_LABELS - 1}`);
  expect(tenants).not.toContain(`tenant-${MAX_TENANT_LABELS}`);
  expect(images).toContain('image-0:1');
  expect(images).toContain('_other');
  expect(ended.length).toBeLessThanOrEqual(MAX_TENANT_LABELS + 1);
  // Histograms carry the image only: at most one series set per bounded image.
  const counts = await series(metrics, 'lid_job_run_seconds_count');
  expect(counts.length).toBe(MAX_IMAGE_LABELS + 1);
});

it('never labels by an image name no job ran on', async () => {
  const metrics = createMetrics();
  for (let i = 0; i < 10_000; i++) observeJobEnd(metrics, record('tenant-a', `bogus-${i}/x:${i}`, false));
  const ended = await series(metrics, 'lid_jobs_total');
  expect(ended).toEqual([`lid_jobs_total{state="error",status="not_found",tenant="tenant-a",image="_none"} 10000`]);
  // The bogus names took none of the bounded slots: a real image afterwards keeps its own name.
  observeJobEnd(metrics, record('tenant-a', 'python:3', true));
  expect((await series(metrics, 'lid_jobs_total')).some((l) => l.includes('image="python:3"'))).toBe(true);
});

it("bounds the gateway's submissions counter by tenant the same way", async () => {
  const metrics = createMetrics();
  for (let i = 0; i < 10_000; i++) metrics.jobsSubmitted.inc({ tenant: metrics.tenantLabel.value(`t-${i}`) });
  expect((await series(metrics, 'lid_jobs_submitted_total')).length).toBe(MAX_TENANT_LABELS + 1);
});

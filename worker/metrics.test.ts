// A worker's own GET /metrics after a real job on a real worker (real Redis, sandbox and image store): the job's
// end is counted with its status, the timing histograms saw it, capacity and free slots are published, and the
// image came from the store (a cache hit) while an unknown one counts as a miss. Also the dashboard's bookkeeping:
// the job is in lid:recent, out of lid:running, and the worker's capacity record is there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { keys } from '../common/keys.js';
import { LidQueueClient } from '../common/queue-client.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { busyboxLayer, writeOciLayout } from '../test/oci-fixtures.js';
import { describePrivileged } from '../test/privileged.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { LidWorker } from './worker.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-worker-metrics-'));
const dataDir = path.join(tmp, 'data');
const IMAGE = 'busybox-metrics:1';

function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

describePrivileged('worker metrics', () => {
  let redis: TestRedis;
  let client: LidQueueClient;
  let worker: LidWorker | null = null;

  beforeAll(async () => {
    redis = await startTestRedis();
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: IMAGE });
    await importImage(ImageStore.open(dataDir), layout);
    client = new LidQueueClient(redis.url);
    const config = loadConfig({ LID_DATA_DIR: dataDir, LID_WORKER_CONCURRENCY: '3', LID_WORKER_METRICS_PORT: '0' });
    worker = await LidWorker.start(config, { redisUrl: redis.url, logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('serves the job counters, histograms, capacity and image cache numbers after a real job', async () => {
    expect(worker!.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const { id } = await client.submit('tenant-m', { image: IMAGE, command: ['echo', 'measured'] });
    expect(await client.wait(id, 20_000)).toMatchObject({ state: 'completed', attempts: 1, result: { status: 'ok' } });
    const missing = await client.submit('tenant-m', { image: 'absent:1', command: ['true'] });
    expect(await client.wait(missing.id, 20_000)).toMatchObject({ state: 'error' });

    // A job is observed once its final record is stored and it has left the worker: a moment after wait() sees it.
    const errorSample = `lid_jobs_total{state="error",status="not_found",tenant="tenant-m",image="_none"}`;
    let text = '';
    for (let tries = 0; tries < 50; tries++) {
      const res = await fetch(worker!.metricsUrl!);
      expect(res.status).toBe(200);
      text = await res.text();
      if (sample(text, errorSample) !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const labels = `image="${IMAGE}"`;
    expect(sample(text, `lid_jobs_total{state="completed",status="ok",tenant="tenant-m",${labels}}`)).toBe(1);
    // A job that never ran names no image (a tenant could make up any number of image names): "_none".
    expect(sample(text, `lid_jobs_total{state="error",status="not_found",tenant="tenant-m",image="_none"}`)).toBe(1);
    expect(text).not.toContain('absent:1');
    for (const h of ['queue_wait', 'setup', 'run', 'end_to_end'])
      expect(sample(text, `lid_job_${h}_seconds_count{${labels}}`), h).toBeGreaterThanOrEqual(1);
    const w = `worker="${worker!.id}"`;
    expect(sample(text, `lid_worker_capacity{${w}}`)).toBe(3);
    expect(sample(text, `lid_worker_free_slots{${w}}`)).toBe(3);
    expect(sample(text, `lid_jobs_running{${w}}`)).toBe(0);
    expect(sample(text, 'lid_image_cache_hits_total')).toBe(1);
    expect(sample(text, 'lid_image_cache_misses_total')).toBe(1);
    expect(sample(text, 'lid_image_bytes')).toBeGreaterThan(0);

    const r = new Redis(redis.url);
    try {
      expect(await r.lrange(keys.recent, 0, -1)).toEqual([missing.id, id]);
      expect(await r.smembers(keys.running)).toEqual([]);
      expect(JSON.parse((await r.get(keys.worker(worker!.id)))!)).toMatchObject({ concurrency: 3, running: 0 });
    } finally {
      r.disconnect();
    }
  });

  it('answers only GET /metrics', async () => {
    expect((await fetch(worker!.metricsUrl!.replace('/metrics', '/'))).status).toBe(404);
  });
});

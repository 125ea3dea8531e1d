// The dashboard in a real browser: a gateway (startGateway, port 0) and a worker against a private Redis with
// LID_ADMIN_TOKEN set, one job run over HTTP, then Debian's headless Chromium (driven by playwright-core, fresh
// profile) opens /dashboard?token=...: the queue and worker sections render, the job just run is among the recent
// jobs, and clicking it draws its timeline, one bar per span. Without the token the page is refused.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { connectRedis } from '../common/redis.js';
import { initTelemetry, type Telemetry } from '../common/telemetry.js';
import { type RunningGateway, startGateway } from '../gateway/server.js';
import { TenantStore } from '../gateway/tenants.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { LidWorker } from '../worker/worker.js';
import { busyboxLayer, writeOciLayout } from './oci-fixtures.js';
import { describePrivileged } from './privileged.js';
import { startTestRedis, type TestRedis } from './redis-server.js';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN = 'dashboard-e2e-admin-token-0123';
const IMAGE = 'busybox-dash:1';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-dashboard-'));
const dataDir = path.join(tmp, 'data');
export const SCREENSHOT = path.join(os.tmpdir(), 'lid-dashboard.png');

describePrivileged('dashboard in headless Chromium', () => {
  let redis: TestRedis;
  let gateway: RunningGateway;
  let worker: LidWorker;
  let browser: BrowserContext;
  let jobId: string;
  let telemetry: Telemetry;
  let telemetryRedis: Redis;

  beforeAll(async () => {
    redis = await startTestRedis();
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer()], refName: IMAGE });
    await importImage(ImageStore.open(dataDir), layout);
    const config = loadConfig({
      REDIS_URL: redis.url,
      LID_DATA_DIR: dataDir,
      LID_PORT: '0',
      LID_ADMIN_TOKEN: ADMIN,
      LID_WORKER_METRICS_PORT: 'off',
      LID_WORKER_CONCURRENCY: '2',
      LOG_LEVEL: 'silent',
    });
    const logger = pino({ level: 'silent' });
    // Traced as `lid up` is, so that the timeline is drawn from the job's recorded spans.
    telemetryRedis = connectRedis(redis.url, 'telemetry');
    telemetry = initTelemetry(config, 'lid', telemetryRedis);
    worker = await LidWorker.start(config, { redisUrl: redis.url, logger });
    gateway = await startGateway(config, { redisUrl: redis.url, logger });

    const r = connectRedis(redis.url, 'test');
    const { apiKey } = await new TenantStore(r).create('dash-tenant');
    await r.quit();
    const res = await fetch(`${gateway.url}/v1/jobs?wait=20`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ image: IMAGE, command: ['sh', '-c', 'echo drawn; sleep 0.05'] }),
    });
    const record = (await res.json()) as { id: string; state: string };
    expect(record.state).toBe('completed');
    jobId = record.id;

    browser = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1280, height: 900 },
    });
  });

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await worker?.close();
    await telemetry?.shutdown();
    telemetryRedis?.disconnect();
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('refuses /dashboard without the admin token', async () => {
    const page = await browser.newPage();
    const res = await page.goto(`${gateway.url}/dashboard`);
    expect(res?.status()).toBe(401);
    await page.close();
  });

  it('shows the queue, the worker and the job just run, and draws its timeline', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const res = await page.goto(`${gateway.url}/dashboard?token=${ADMIN}`);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${gateway.url}/dashboard`); // the token left the address bar

    await page.locator('#queue tr', { hasText: 'prioritized' }).waitFor();
    await page.locator('#workers tr', { hasText: worker.id }).waitFor();
    expect(await page.locator('#workers tr', { hasText: worker.id }).textContent()).toContain('alive');
    const row = page.locator(`#recent tr.job-row[data-id="${jobId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('completed');

    await row.click();
    await page.locator('#timeline .bar').first().waitFor();
    const trace = (await (await page.request.get(`${gateway.url}/dashboard/api/jobs/${jobId}/trace`)).json()) as {
      spans: { name: string }[];
      source: string;
    };
    expect(trace.source).toBe('trace');
    expect(trace.spans.map((sp) => sp.name)).toEqual(
      expect.arrayContaining(['queue.wait', 'job.process', 'sandbox.setup', 'sandbox.run']),
    );
    expect(await page.locator('#timeline-source').textContent()).toMatch(/^from trace /);
    expect(await page.locator('#timeline .bar').count()).toBe(trace.spans.length);
    expect(await page.locator('#timeline').textContent()).toContain(trace.spans[0]!.name);
    const width = await page
      .locator('#timeline .bar')
      .first()
      .evaluate((el) => el.getBoundingClientRect().width);
    expect(width).toBeGreaterThan(100); // the first (outermost) span spans the track
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});

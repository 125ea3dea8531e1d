// The worker's metrics listener binds loopback unless LID_METRICS_HOST says otherwise: the bound address as the
// kernel reports it, by default and (the control that the setting is obeyed) with 0.0.0.0.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import { serveMetrics } from './metrics-server.js';

const logger = pino({ level: 'silent' });

it('binds 127.0.0.1 by default, and serves the registry there', async () => {
  const config = loadConfig({});
  expect(config.metricsHost).toBe('127.0.0.1');
  const server = await serveMetrics(new Registry(), 0, { host: config.metricsHost, logger });
  try {
    expect(server!.address).toBe('127.0.0.1');
    expect(server!.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await fetch(server!.url)).status).toBe(200);
  } finally {
    await server?.close();
  }
  // Without a host at all (a caller that forgot), still loopback.
  const bare = await serveMetrics(new Registry(), 0, { logger });
  expect(bare!.address).toBe('127.0.0.1');
  await bare?.close();
});

it('binds the address LID_METRICS_HOST names (0.0.0.0 for a Prometheus elsewhere), and refuses a bad one', async () => {
  const config = loadConfig({ LID_METRICS_HOST: '0.0.0.0' });
  const server = await serveMetrics(new Registry(), 0, { host: config.metricsHost, logger });
  try {
    expect(server!.address).toBe('0.0.0.0');
  } finally {
    await server?.close();
  }
  expect(() => loadConfig({ LID_METRICS_HOST: 'every interface' })).toThrow(/LID_METRICS_HOST/);
});

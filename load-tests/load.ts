// Load test of the running service, over HTTP like any client: N trivial jobs (`true` in the busybox image), C in
// flight, each submitted with ?wait so that one request spans submit -> result (LidClient, as any TypeScript user
// would). It prints submit-to-result latency (p50/p95/p99), throughput and errors as a table, then one JSON object
// as the last line, and writes the report under load-tests/reports/. It finds the gateway like `lid run` does
// (LID_URL, LID_API_KEY, else the all-in-one). A 429 counts as an error: the client does not retry it here.
// Usage: npm run load -- --jobs 2000 --concurrency 32 [--image busybox] [--warmup 20]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { gatewayEndpoint } from '../cli/local/dev-tenant.js';
import { loadConfig } from '../common/config.js';
import { isFinalRecord, LidClient } from '../common/http-client.js';
import { isLidApiError } from '../common/lid-api-error.js';

const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '16' },
    image: { type: 'string', default: 'busybox' },
    warmup: { type: 'string', default: '20' },
  },
});
const JOBS = Number(args.jobs);
const CONCURRENCY = Number(args.concurrency);
const WARMUP = Number(args.warmup);
for (const [name, n] of Object.entries({ jobs: JOBS, concurrency: CONCURRENCY, warmup: WARMUP })) {
  if (!Number.isInteger(n) || n < 0 || (name !== 'warmup' && n < 1))
    throw new Error(`--${name} must be a positive integer`);
}

const { url, apiKey } = gatewayEndpoint(loadConfig());
const lid = new LidClient({ url, apiKey, rateLimitRetries: 0 });
const job = { image: args.image, command: ['true'] };

async function oneJob(): Promise<{ ms: number; ok: boolean; why?: string }> {
  const t = performance.now();
  try {
    let record = await lid.submit(job, { wait: 30 });
    if (!isFinalRecord(record)) record = await lid.wait(record.id);
    const ok = record.state === 'completed' && record.result?.status === 'ok';
    return {
      ms: performance.now() - t,
      ok,
      why: ok ? undefined : `${record.state} ${record.result?.status ?? record.error?.message}`,
    };
  } catch (e) {
    const why = isLidApiError(e) && e.status ? `HTTP ${e.status}: ${e.message}` : (e as Error).message;
    return { ms: performance.now() - t, ok: false, why };
  }
}

async function drive(total: number, concurrency: number) {
  const results: Awaited<ReturnType<typeof oneJob>>[] = [];
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next++ < total) results.push(await oneJob());
    }),
  );
  return { results, seconds: (performance.now() - t) / 1000 };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
const round = (x: number) => Math.round(x * 100) / 100;

if (WARMUP) await drive(WARMUP, Math.min(CONCURRENCY, WARMUP)); // first use builds or unpacks the image
const { results, seconds } = await drive(JOBS, CONCURRENCY);
const lat = results.map((r) => r.ms).sort((a, b) => a - b);
const errors = results.filter((r) => !r.ok);
const report = {
  jobs: JOBS,
  concurrency: CONCURRENCY,
  p50_ms: round(pct(lat, 0.5)),
  p95_ms: round(pct(lat, 0.95)),
  p99_ms: round(pct(lat, 0.99)),
  max_ms: round(lat.at(-1) ?? NaN),
  throughput_per_s: round(JOBS / seconds),
  errors: errors.length,
  gateway: url,
  at: new Date().toISOString(),
};
console.log(`${JOBS} jobs, ${CONCURRENCY} in flight, image ${args.image}, against ${url}`);
console.log('  p50 ms   p95 ms   p99 ms   max ms   jobs/s   errors');
console.log(
  `  ${[report.p50_ms, report.p95_ms, report.p99_ms, report.max_ms, report.throughput_per_s, report.errors].map((v) => String(v).padEnd(8)).join(' ')}`,
);
if (errors.length) console.log(`  first errors: ${[...new Set(errors.map((e) => e.why))].slice(0, 3).join(' | ')}`);
fs.mkdirSync(new URL('./reports/', import.meta.url), { recursive: true });
fs.writeFileSync(
  new URL(`./reports/load-${report.at.replace(/:/g, '-')}.json`, import.meta.url),
  JSON.stringify(report, null, 2),
);
console.log(JSON.stringify(report));

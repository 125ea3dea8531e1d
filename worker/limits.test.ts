// A worker holds queued jobs to its own caps and keeps output bounded, against real Redis, sandboxes and an image
// store. Jobs are put straight onto the queue (LidQueueClient), as a queue-driven producer does, so no gateway
// checked them: a job above the worker's caps must end `error`/invalid_spec without running (control: at the cap it
// runs), and a job writing output as fast as it can must end output_limit with the worker's memory and Redis's both
// growing by a bounded multiple of its output cap.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../common/config.js';
import type { JobRecord } from '../common/job.js';
import { keys } from '../common/keys.js';
import { LidQueueClient } from '../common/queue-client.js';
import { importImage } from '../images/import.js';
import { ImageStore } from '../images/store.js';
import { busyboxLayer, type LayerEntry, writeOciLayout } from '../test/oci-fixtures.js';
import { describePrivileged } from '../test/privileged.js';
import { startTestRedis, type TestRedis } from '../test/redis-server.js';
import { LidWorker } from './worker.js';

const MiB = 1024 * 1024;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-worker-limits-'));
const dataDir = path.join(tmp, 'data');
const IMAGE = 'busybox-limits:1';
const childScript = new URL('../test/worker-child.ts', import.meta.url).pathname;
const applets: LayerEntry[] = ['head', 'yes', 'wc'].map((a) => ({
  type: 'symlink',
  name: `bin/${a}`,
  linkname: 'busybox',
}));

describePrivileged('worker limits', () => {
  let redis: TestRedis;
  let client: LidQueueClient;
  let r: Redis;

  beforeAll(async () => {
    redis = await startTestRedis();
    const layout = path.join(tmp, 'layout');
    await writeOciLayout(layout, { layers: [busyboxLayer(applets)], refName: IMAGE });
    await importImage(ImageStore.open(dataDir), layout);
    client = new LidQueueClient(redis.url);
    r = new Redis(redis.url);
  });
  afterAll(async () => {
    r?.disconnect();
    await client?.close();
    await redis?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const outputEvents = async (id: string) =>
    (await r.xrange(keys.jobEvents(id), '-', '+')).filter(([, f]) => JSON.parse(f[1]!).type === 'output').length;

  it("refuses a queued job above the worker's caps before running it; at the caps it runs", async () => {
    const config = loadConfig({
      LID_DATA_DIR: dataDir,
      LID_WORKER_CONCURRENCY: '2',
      LID_WORKER_METRICS_PORT: 'off',
      LID_CAP_PIDS: '40',
      LID_CAP_MEMORY: '64m',
      LID_CAP_CPUS: '0.5',
      LID_CAP_TIMEOUT: '5s',
      LID_CAP_OUTPUT: '64k',
      LID_CAP_DISK: '16m',
    });
    const worker: LidWorker = await LidWorker.start(config, { redisUrl: redis.url, logger: pino({ level: 'silent' }) });
    try {
      const atCaps = {
        pids: 40,
        memoryBytes: 64 * MiB,
        cpus: 0.5,
        timeoutMs: 5000,
        outputBytes: 65536,
        diskBytes: 16 * MiB,
      };
      const caps = [
        { field: 'pids', over: 41, variable: 'LID_CAP_PIDS' },
        { field: 'memoryBytes', over: 64 * MiB + 1, variable: 'LID_CAP_MEMORY' },
        { field: 'cpus', over: 0.51, variable: 'LID_CAP_CPUS' },
        { field: 'timeoutMs', over: 5001, variable: 'LID_CAP_TIMEOUT' },
        { field: 'outputBytes', over: 65537, variable: 'LID_CAP_OUTPUT' },
        { field: 'diskBytes', over: 16 * MiB + 1, variable: 'LID_CAP_DISK' },
      ] as const;
      for (const { field, over, variable } of caps) {
        // The job would print "ran" and leave a mark in the events stream: neither may happen.
        const { id } = await client.submit('queue-tenant', {
          image: IMAGE,
          command: ['echo', 'ran'],
          limits: { ...atCaps, [field]: over },
        });
        const record = await client.wait(id, 20_000);
        expect(record).toMatchObject({
          state: 'error',
          attempts: 0,
          startedAt: null,
          error: {
            code: 'invalid_spec',
            message: expect.stringContaining(
              `limits.${field} ${over} is above this worker's cap of ${atCaps[field]} (${variable})`,
            ),
          },
        });
        expect(record.result).toBeUndefined();
        expect(await outputEvents(id)).toBe(0);
      }
      // Control: the same job at every cap at once runs, so the refusals above were about the values.
      const { id } = await client.submit('queue-tenant', { image: IMAGE, command: ['echo', 'ran'], limits: atCaps });
      expect(await client.wait(id, 20_000)).toMatchObject({
        state: 'completed',
        attempts: 1,
        result: { status: 'ok', stdout: 'ran\n' },
      });
      expect(await outputEvents(id)).toBe(1);
      // A job asking for nothing runs too: its defaults above the caps (128 pids, 256 MiB, 1 CPU, 10 s, 1 MiB of
      // output, 64 MiB of disk) are lowered to them, and the output cap shows: 64 KiB kept of a megabyte.
      const defaults = await client.submit('queue-tenant', {
        image: IMAGE,
        command: ['head', '-c', '1000000', '/dev/zero'],
      });
      expect(await client.wait(defaults.id, 20_000)).toMatchObject({
        state: 'completed',
        attempts: 1,
        result: { status: 'output_limit', stdout: null, stdoutBase64: Buffer.alloc(65536).toString('base64') },
      });
    } finally {
      await worker.close();
    }
  });

  /** A worker in its own process, so that its memory is its own to measure. */
  async function childWorker(): Promise<ChildProcess> {
    const c = spawn(process.execPath, ['--import', 'tsx', childScript, redis.url, dataDir, '300'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve, reject) => {
      c.stdout!.once('data', resolve);
      c.once('exit', (code) => reject(new Error(`worker child exited early (${code})`)));
    });
    return c;
  }

  const status = (pid: number, field: 'VmRSS' | 'VmHWM') =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
  const usedMemory = async () => Number(/^used_memory:(\d+)/m.exec(await r.info('memory'))![1]);
  const fmt = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

  it(
    'bounds an output flood in the worker and in Redis, for text and for bytes JSON would escape six times over',
    { timeout: 120_000 },
    async () => {
      const cap = 8 * MiB;
      const worker = await childWorker();
      try {
        // Warm up (image resolved, sandbox threads started, code paths compiled) before taking the baseline.
        await client.wait((await client.submit('flood', { image: IMAGE, command: ['echo', 'warm'] })).id, 20_000);
        const floods = [
          { name: 'NUL bytes', command: ['head', '-c', '500000000', '/dev/zero'], stdout: Buffer.alloc(cap) },
          { name: 'yes', command: ['yes'], stdout: Buffer.from('y\n'.repeat(cap / 2)) },
        ];
        for (const { name, command, stdout } of floods) {
          await new Promise((res) => setTimeout(res, 500));
          fs.writeFileSync(`/proc/${worker.pid}/clear_refs`, '5'); // resets the peak (VmHWM) to the current RSS
          const rssBefore = status(worker.pid!, 'VmRSS');
          const redisBefore = await usedMemory();
          const t = Date.now();
          const { id } = await client.submit('flood', { image: IMAGE, command, limits: { outputBytes: cap } });
          const record: JobRecord = await client.wait(id, 60_000);
          const seconds = (Date.now() - t) / 1000;
          const peak = status(worker.pid!, 'VmHWM');
          const redisAtEnd = (await usedMemory()) - redisBefore;
          await new Promise((res) => setTimeout(res, 3000)); // Redis trims idle clients' query buffers meanwhile
          const redisKept = (await usedMemory()) - redisBefore;
          console.log(
            `output flood (${name}, outputBytes ${fmt(cap)}): ${record.result?.status} after ${seconds.toFixed(1)} s; ` +
              `worker RSS ${fmt(rssBefore)}, peak ${fmt(peak)} (+${fmt(peak - rssBefore)} = ` +
              `${((peak - rssBefore) / cap).toFixed(1)}x the cap); Redis used_memory +${fmt(redisAtEnd)} at the end, ` +
              `+${fmt(redisKept)} (${(redisKept / cap).toFixed(1)}x) kept`,
          );
          expect(record).toMatchObject({
            state: 'completed',
            attempts: 1,
            result: { status: 'output_limit', stdoutTruncated: true },
          });
          // The job wrote past the cap (it was stopped for it), and exactly the cap was kept.
          const { stdout: text, stdoutBase64 } = record.result!;
          const kept = text !== null ? Buffer.from(text) : Buffer.from(stdoutBase64!, 'base64');
          expect(kept.equals(stdout)).toBe(true);
          // Redis keeps the output twice (streamed chunks, record), each at most 4/3 of the bytes (base64) or 1.5x
          // (this text, as JSON), in allocations jemalloc rounds up by up to 25%: < 4x. At the end add the query
          // buffer the record arrived in, which Redis trims once the client is idle.
          expect(redisKept).toBeLessThan(4 * cap + 2 * MiB);
          expect(redisAtEnd).toBeLessThan(6 * cap + 2 * MiB);
          // The worker's peak is mostly garbage not yet collected: the runtime's kept chunks, their concatenation
          // and the copy sent to the main thread (~3x), each streamed chunk's bytes, base64 and JSON, and the
          // record's base64, JSON and socket copies (~4x more). Measured 12-15x the cap here; a 500 MB flood with
          // unbounded output would be far above this.
          expect(peak - rssBefore).toBeLessThan(16 * cap + 64 * MiB);
          await r.del(keys.job(id), keys.jobEvents(id));
        }
      } finally {
        const exited = new Promise((res) => worker.once('exit', res));
        worker.kill('SIGTERM');
        await exited;
      }
    },
  );
});

// Issue 2, point 3: limits hold. Each hostile job runs under limits first seen to hold on a harmless case (the
// isolation and accounting tests), and with a short timeout.
import fs from 'node:fs';
import { expect, it } from 'vitest';
import { hostProcessesWith } from '../test/host-processes.js';
import { describePrivileged } from '../test/privileged.js';
import { useSandboxes } from '../test/sandbox-harness.js';

const MiB = 1024 * 1024;

describePrivileged('sandbox limits', () => {
  const h = useSandboxes();

  it('ends a memory bomb as oom', async () => {
    const r = await h.run({ argv: ['tail', '/dev/zero'], limits: { memoryBytes: 32 * MiB, timeoutMs: 10_000 } });
    expect(r.status).toBe('oom');
    expect(r.usage.oomKilled).toBe(true);
    expect(r.usage.memoryPeakBytes).toBeLessThanOrEqual(32 * MiB);
  });

  it('contains a fork bomb with the pids limit, and kills all of it at the end', async () => {
    const marker = `${2000 + (process.pid % 1000)}.321`;
    const running = h.run({
      argv: ['sh', '-c', `b() { sleep ${marker} | b & }; b; sleep 3`],
      limits: { pids: 24, timeoutMs: 5000 },
    });
    // The bomb really forked: its processes are seen from the host while it runs...
    let seen = 0;
    for (let waited = 0; seen < 10 && waited < 2500; waited += 50) {
      await new Promise((res) => setTimeout(res, 50));
      seen = Math.max(seen, hostProcessesWith(marker).length);
    }
    expect(seen).toBeGreaterThanOrEqual(10);
    const r = await running;
    expect(['ok', 'timeout']).toContain(r.status);
    expect(r.usage.pidsPeak).not.toBeNull();
    expect(r.usage.pidsPeak!).toBeLessThanOrEqual(24);
    expect(r.err).toMatch(/fork|resource/i);
    // ...and none is left once the job has ended.
    expect(hostProcessesWith(marker)).toEqual([]);
  });

  it('ends an endless loop as timeout within 10% of the limit', async () => {
    const r = await h.run({ argv: ['sh', '-c', 'while :; do :; done'], limits: { timeoutMs: 1000 } });
    expect(r.status).toBe('timeout');
    expect(r.usage.wallMs).toBeGreaterThanOrEqual(1000);
    expect(r.usage.wallMs).toBeLessThan(1100);
  });

  it('kills processes that double-fork or call setsid when the job ends', async () => {
    const marker = `${1000 + (process.pid % 1000)}.123`;
    const r = await h.run({
      argv: [
        'sh',
        '-c',
        `(sleep ${marker} &); setsid sleep ${marker} & sleep 0.2; ps -o args | grep -c "^sleep ${marker}"`,
      ],
      limits: { timeoutMs: 5000 },
    });
    // Both escapees were running when the job ended (seen from inside: two sleeps)...
    expect(r.out).toBe('2\n');
    // ...and neither survived it.
    expect(hostProcessesWith(marker)).toEqual([]);
  });

  it('ends an output flood as output_limit, keeping exactly the limit', async () => {
    const rssBefore = process.memoryUsage().rss;
    const r = await h.run({ argv: ['yes', 'flood'], limits: { outputBytes: 1 * MiB, timeoutMs: 10_000 } });
    expect(r.status).toBe('output_limit');
    expect(r.stdout.length).toBe(1 * MiB);
    expect(r.stdoutTruncated).toBe(true);
    expect(r.stderrTruncated).toBe(false);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(64 * MiB);
  });

  it('gives a job that fills its disk ENOSPC, at no cost to the host', async () => {
    const hostFree = fs.statfsSync('/tmp').bavail;
    const r = await h.run({
      argv: [
        'sh',
        '-c',
        'dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1; echo dd=$?; dd if=/dev/zero of=/dev/shm/fill bs=1M count=64 2>&1 | tail -1',
      ],
      limits: { diskBytes: 8 * MiB, memoryBytes: 256 * MiB },
    });
    expect(r.out).toMatch(/No space left on device/);
    expect(r.out).toMatch(/dd=1/);
    expect(Math.abs(fs.statfsSync('/tmp').bavail - hostFree) * fs.statfsSync('/tmp').bsize).toBeLessThan(4 * MiB);
  });
});

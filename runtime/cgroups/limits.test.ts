import { describe, expect, it } from 'vitest';
import { parseKeyValues, v1LimitWrites, v2LimitWrites } from './limits.js';

describe('cgroup limit translation', () => {
  const limits = { memoryBytes: 64 << 20, cpus: 0.5, pids: 32 };

  it('expresses limits in v2 files', () => {
    expect(v2LimitWrites(limits).map((w) => [w.file, w.value])).toEqual([
      ['memory.max', String(64 << 20)],
      ['memory.swap.max', '0'],
      ['pids.max', '32'],
      ['cpu.max', '50000 100000'],
    ]);
  });

  it('translates the same limits to v1, memory before memory+swap', () => {
    const writes = v1LimitWrites(limits);
    const files = writes.map((w) => w.file);
    expect(files.indexOf('memory.limit_in_bytes')).toBeLessThan(files.indexOf('memory.memsw.limit_in_bytes'));
    expect(writes.find((w) => w.file === 'cpu.cfs_quota_us')?.value).toBe('50000');
    expect(writes.find((w) => w.file === 'pids.max')?.value).toBe('32');
  });

  it('never asks for a CPU quota under the kernel minimum of 1 ms', () => {
    expect(v2LimitWrites({ ...limits, cpus: 0.001 }).at(-1)?.value).toBe('1000 100000');
  });

  it('parses key/value cgroup files', () => {
    const kv = parseKeyValues('usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n');
    expect(kv.get('user_usec')).toBe(1000);
    expect(parseKeyValues('oom_kill_disable 0\nunder_oom 0\noom_kill 2').get('oom_kill')).toBe(2);
  });
});

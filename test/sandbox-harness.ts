// Shared set-up for the runtime's integration tests: one runtime per test file, the busybox root, the probe.
import { afterAll, beforeAll } from 'vitest';
import type { RunResult, RunSpecInput } from '../common/run-spec.js';
import { SandboxRuntime } from '../runtime/index.js';
import { busyboxRootfs } from './busybox-rootfs.js';
import { probeBinary } from './probe-binary.js';

export interface Harness {
  runtime: SandboxRuntime;
  rootfs: string;
  probe: Buffer;
  /** Runs a spec on the busybox root; stdout and stderr come back as text. */
  run(
    spec: Partial<RunSpecInput> & { argv: string[] },
    signal?: AbortSignal,
  ): Promise<RunResult & { out: string; err: string }>;
  /** A spec file entry that puts the probe at /probe. */
  probeFile(): { path: string; content: Buffer; mode: number };
}

export function useSandboxes(): Harness {
  const h = {} as Harness;
  beforeAll(async () => {
    h.rootfs = busyboxRootfs();
    h.probe = probeBinary();
    h.runtime = await SandboxRuntime.start({ threads: 2 });
    h.probeFile = () => ({ path: '/probe', content: h.probe, mode: 0o755 });
    h.run = async (spec, signal) => {
      const result = await h.runtime.run({ rootfs: h.rootfs, ...spec }, { signal });
      return { ...result, out: Buffer.from(result.stdout).toString(), err: Buffer.from(result.stderr).toString() };
    };
  });
  afterAll(async () => {
    await h.runtime?.close();
  });
  return h;
}

// Messages between the runtime's public API (main thread, runtime.ts) and its spawner threads (sandbox-thread.ts).
import type { Limits, RunResult } from '../common/run-spec.js';
import type { CgroupLayout } from './cgroups/driver.js';
import type { SandboxNet } from './net/host-network.js';

/** A validated run, with everything resolved that needs async I/O or the host's view (layer paths, env defaults). */
export interface PreparedRun {
  layers: string[];
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  stdin: Uint8Array | null;
  files: { path: string; content: Uint8Array | string; mode: number }[];
  /** OCI "User" string for lid-init to resolve inside the sandbox ("" = 65534:65534). */
  user: string;
  /** The uid slot this sandbox alone has while it runs (runtime/uid-slots.ts); the fd is the process's. */
  slot: { base: number; usernsFd: number; maxId: number };
  hostname: string;
  /** A networked sandbox's addressing and veth (runtime/net/); null: loopback only. */
  net: SandboxNet | null;
  /** Files Lid places for itself (a networked sandbox's /etc/resolv.conf and /etc/hosts): root's, read-only. */
  systemFiles: { path: string; content: string }[];
  limits: Limits;
  rlimits: { nofile: number; stack: number };
  streamOutput: boolean;
}

export interface ThreadConfig {
  initPath: string;
  mountDir: string;
  /** Set up once by the runtime (runtime/cgroups/detect.ts); the thread only makes job cgroups under it. */
  cgroups: CgroupLayout;
}

export type ToThread = { type: 'run'; id: number; run: PreparedRun } | { type: 'cancel'; id: number };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  details?: Record<string, unknown>;
}

export type FromThread =
  | { type: 'ready' }
  | { type: 'result'; id: number; result: RunResult }
  | { type: 'cancelled'; id: number }
  | { type: 'error'; id: number; error: SerializedError }
  | { type: 'output'; id: number; stream: 'stdout' | 'stderr'; chunk: Uint8Array };

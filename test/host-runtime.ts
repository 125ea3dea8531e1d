// A process that hosts a runtime and one long job, for the crash test: it prints "started <instance dirs>" once the
// job is running, and is then SIGKILLed by the test.
import { SandboxRuntime } from '../runtime/index.js';

const [rootfs, marker] = process.argv.slice(2);
const runtime = await SandboxRuntime.start({ threads: 1 });
await runtime.run(
  { rootfs: rootfs!, argv: ['sh', '-c', `echo up; sleep ${marker}`], limits: { timeoutMs: 600_000 } },
  { onOutput: () => process.stdout.write(`started ${JSON.stringify(runtime.cgroupInstanceDirs)}\n`) },
);

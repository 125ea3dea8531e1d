// Privileged tests need root (namespaces, mounts, cgroups). Off CI they skip with a printed reason when not root;
// in CI they never skip: a missing privilege there is a failure, not a pass.
import { describe } from 'vitest';

const isRoot = process.getuid?.() === 0;

export function describePrivileged(name: string, body: () => void): void {
  if (isRoot) {
    describe(name, body);
    return;
  }
  if (process.env.CI) throw new Error(`${name}: privileged tests must run as root in CI`);
  console.warn(`SKIPPED "${name}": needs root (namespaces, mounts and cgroups); run the tests as root`);
  describe.skip(name, body);
}

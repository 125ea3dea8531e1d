import { defineConfig } from 'vitest/config';

// Privileged integration tests share the machine's cgroups and CPU: run files one at a time so timing-sensitive
// limits (timeouts, CPU accounting) are not skewed by a neighbour, while tests inside a file may still run in parallel.
export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**', '.proto/**'],
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});

#!/usr/bin/env bash
# The cgroup v2 subset: the development and CI machines mount cgroups in hybrid (v1) mode, while most production
# hosts are pure v2. This runs the cgroup driver contract and the sandbox tests that depend on the driver (limits,
# accounting, isolation, the crash sweep) inside a VM whose kernel offers only cgroup v2 (../shared/tools/v2vm).
# The VM emulates its CPU in software, so tests whose assertions are about speed (timeouts within 10%, cancellation
# within 100 ms, CPU shares, 1200-run soak) are left to the host run: they do not depend on the cgroup driver.
set -euo pipefail
cd "$(dirname "$0")/.."
v2vm=${V2VM:-../shared/tools/v2vm}
[ -x "$v2vm" ] || { echo "run-v2vm: $v2vm not found (set V2VM to the v2vm tool)" >&2; exit 2; }
exclude='within 10%|within 100 ms|CPU share|~1 s of CPU|1200 runs|32 sandboxes'
exec "$v2vm" -t "${V2VM_TIMEOUT:-2400}" -- npx vitest run --testTimeout=600000 --hookTimeout=600000 \
  --testNamePattern "^(?!.*($exclude))" \
  runtime/cgroups/driver.contract.test.ts \
  runtime/sandbox.isolation.test.ts \
  runtime/sandbox.limits.test.ts \
  runtime/sandbox.accounting.test.ts \
  runtime/sandbox.lifecycle.test.ts

#!/usr/bin/env bash
# The cgroup v2 subset: the development and CI machines mount cgroups in hybrid (v1) mode, while most production
# hosts are pure v2. This runs the cgroup driver contract and the sandbox tests that depend on the driver (limits,
# accounting, isolation, identity, the leak soak, the crash sweep) inside a VM whose kernel offers only cgroup v2
# (../shared/tools/v2vm), and LID_EXPECT_CGROUP=2 makes the contract test fail if the VM fell back to v1.
# The VM emulates its CPU in software, so tests whose assertions are about wall-clock speed (timeouts within 10%,
# cancellation within 100 ms, 32 at once) are left to the host run: they do not depend on the cgroup driver. CPU
# accounting does run (it measures CPU time, not wall time), and the leak soak runs 120 times instead of 1200 (the
# networked one 200 instead of 1000).
# Sandbox networking runs too (the VM's kernel is older, 6.1): the VM loads only its disk modules, so the nftables,
# conntrack, veth and bridge modules come from the same kernel package (test/v2vm-net-modules.sh) and load first.
set -euo pipefail
cd "$(dirname "$0")/.."
v2vm=${V2VM:-../shared/tools/v2vm}
[ -x "$v2vm" ] || { echo "run-v2vm: $v2vm not found (set V2VM to the v2vm tool)" >&2; exit 2; }
exclude='within 10% of the limit|within 100 ms|CPU share|32 sandboxes'
echo "v2 subset: speed-bound tests (${exclude//|/, }) run on the host only; they do not depend on the cgroup driver"
# The VM's root is copy-on-write, so it is also where the embedded Redis's apt install path is tested (after
# uninstalling redis-server there). The VM has no network: fetch the package here first.
# Child processes in the VM run from the build (see test/node-script.ts): make sure it is current.
npm run build >/dev/null
netmods=$(bash test/v2vm-net-modules.sh)
mkdir -p build/v2vm-debs
(cd build/v2vm-debs && rm -f ./*.deb && apt-get download -q redis-server >/dev/null)
exec "$v2vm" -t "${V2VM_TIMEOUT:-2400}" -- sh -c "for m in \$(cat $netmods/order); do busybox insmod $netmods/\$m.ko; done && \
  LID_EXPECT_CGROUP=2 LID_LEAK_RUNS=120 LID_NET_LEAK_RUNS=200 npx vitest run \
  --testTimeout=600000 --hookTimeout=600000 \
  --testNamePattern '^(?!.*($exclude))' \
  runtime/cgroups/driver.contract.test.ts \
  runtime/sandbox.isolation.test.ts \
  runtime/sandbox.limits.test.ts \
  runtime/sandbox.accounting.test.ts \
  runtime/sandbox.lifecycle.test.ts \
  runtime/sandbox.identity.test.ts \
  runtime/net/sandbox-network.test.ts \
  runtime/net/egress-firewall.test.ts && sh test/redis-install-in-vm.sh"

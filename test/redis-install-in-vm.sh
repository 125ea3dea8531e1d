#!/bin/sh
# Inside the v2 VM, whose root is copy-on-write over the host's (nothing here touches the host): uninstall
# redis-server, then check that the embedded Redis installs it with apt-get, saying so. The VM has no network, so
# run-v2vm.sh downloaded the package on the host beforehand; apt finds it in its archive cache.
set -eu
cp build/v2vm-debs/redis-server_*.deb /var/cache/apt/archives/
dpkg -r redis-server >/dev/null 2>&1
if command -v redis-server >/dev/null; then echo "redis-install: redis-server is still installed" >&2; exit 1; fi
if [ -f dist/test/redis-install-check.js ]; then node dist/test/redis-install-check.js; else node --import tsx test/redis-install-check.ts; fi

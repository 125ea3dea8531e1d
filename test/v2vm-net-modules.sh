#!/usr/bin/env bash
# The kernel modules sandbox networking needs (nf_tables and its expressions, conntrack and NAT, veth, bridge), taken
# from the same Debian kernel package the v2 VM boots (../shared/tools/v2vm loads only its disk and 9p modules), with
# their dependencies first. Run on the host, where the package can be downloaded; prints the directory that holds
# the .ko files and the `order` the VM loads them in (test/run-v2vm.sh does, with insmod).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/v2vm-net-modules
# crc32c_generic first: libcrc32c asks the crypto API for crc32c when it loads (a soft dependency, not in depends=).
roots=(crc32c_generic nf_tables nft_ct nft_masq nft_chain_nat nf_nat nf_conntrack veth bridge)
kernel_package() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
pkg=$(kernel_package)
[ -n "$pkg" ] || { apt-get update -qq >/dev/null; pkg=$(kernel_package); }
[ -n "$pkg" ] || { echo "v2vm-net-modules: no linux-image-amd64 package known to apt" >&2; exit 2; }
if [ ! -f "$out/$pkg.done" ]; then
  rm -rf "$out" && mkdir -p "$out/deb"
  (cd "$out/deb" && apt-get download -q "$pkg" >/dev/null 2>&1) || { echo "v2vm-net-modules: cannot download $pkg" >&2; exit 2; }
  dpkg -x "$out"/deb/*.deb "$out/x"
  mods=$(echo "$out"/x/lib/modules/*/kernel)
  # A module's dependencies are in its .modinfo section ("depends=a,b"): no kmod needed to read them.
  declare -A seen=()
  order=()
  visit() {
    local m=$1 f deps d
    [ -n "${seen[$m]:-}" ] && return
    seen[$m]=1
    f=$(find "$mods" -name "$m.ko" | head -1)
    [ -n "$f" ] || return 0 # built into the kernel
    deps=$(grep -a -o 'depends=[^[:cntrl:]]*' "$f" | head -1 | cut -d= -f2)
    for d in ${deps//,/ }; do visit "$d"; done
    cp "$f" "$out/$m.ko"
    order+=("$m")
  }
  for r in "${roots[@]}"; do visit "$r"; done
  printf '%s\n' "${order[@]}" > "$out/order"
  rm -rf "$out/x" "$out/deb"
  touch "$out/$pkg.done"
fi
echo "$out"

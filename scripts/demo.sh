#!/bin/bash
# The cowchain demo; runs inside the guest:
#
#   scripts/vm-run.sh -- scripts/demo.sh      (or: make demo)
#
# For now it shows the part that exists: the module loads on this kernel,
# registers the "cowchain" target and unloads.  The chain demo (root layer,
# differencing child, dmsetup, write, snapshot, read back) arrives with the
# kernel target.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
kver=$(uname -r)
ko="$top/build/kmod/$kver/dm-cowchain.ko"
export DM_DISABLE_UDEV=1

say() { printf '\n# %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "kernel $kver, module $ko"
[ -f "$ko" ] || { echo "demo: $ko is missing: run make first" >&2; exit 1; }
run modinfo -F version -F description "$ko" || true
say "load device-mapper, the modules dm-cowchain needs, and dm-cowchain"
for dep in dm-mod $(modinfo -F depends "$ko" | tr , ' '); do
	run modprobe "$dep"
done
run insmod "$ko"
say "the cowchain target is registered"
run dmsetup targets
say "unload"
run rmmod dm-cowchain
echo
echo "demo: dm-cowchain loaded and unloaded on $kver."
echo "demo: the chain demo (layers, snapshot, read back) arrives with the kernel target."

#!/bin/bash
# The cowchain demo; runs inside the guest:
#
#   scripts/vm-run.sh -- scripts/demo.sh      (or: make demo)
#
# Loads dm-cowchain, makes a root layer and a differencing child, attaches
# the chain with `cowchain attach` (loop devices + libdevmapper), writes
# through the device, takes a live snapshot, writes again, reads everything
# back through the chain, restores the snapshot, shows the tree, detaches.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
kver=$(uname -r)
ko="$top/build/kmod/$kver/dm-cowchain.ko"
cc="$top/userspace/cowchain"
export DM_DISABLE_UDEV=1

say() { printf '\n# %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
sum() { dd if="$1" bs=1M count="$3" skip="$2" iflag=direct status=none | sha256sum | cut -c1-16; }

say "kernel $kver, module $ko"
[ -f "$ko" ] || { echo "demo: $ko is missing: run make first" >&2; exit 1; }
[ -x "$cc" ] || { echo "demo: $cc is missing: run make first" >&2; exit 1; }
say "load device-mapper, loop, the modules dm-cowchain needs, and dm-cowchain"
for dep in dm-mod loop $(modinfo -F depends "$ko" | tr , ' '); do
	modprobe "$dep" 2>/dev/null || true
done
run insmod "$ko"
run dmsetup targets

d=$(mktemp -d /tmp/cowchain-demo.XXXXXX)
cleanup() {
	"$cc" detach demo 2>/dev/null || true
	rmmod dm-cowchain 2>/dev/null || true
	rm -rf "$d"
}
trap cleanup EXIT
cd "$d"

say "a 256 MiB root layer with 4 MiB of data, and a differencing child"
run "$cc" create base.cow --size 256M
head -c 4M /dev/urandom > data0
run "$cc" write base.cow --offset 0 --input data0
run "$cc" create vm.cow --parent base.cow
run "$cc" info vm.cow

say "attach the chain (loop devices, then the dm device via libdevmapper)"
dev=$(run "$cc" attach demo vm.cow | tail -1)
echo "$dev"
run dmsetup table demo
run dmsetup status demo
echo "first 4 MiB through the chain: $(sum "$dev" 0 4) (base.cow wrote $(sha256sum < data0 | cut -c1-16))"

say "write 2 MiB at 8 MiB through the device: it lands in vm.cow only"
head -c 2M /dev/urandom > data1
run dd if=data1 of="$dev" bs=1M seek=8 oflag=direct status=none
echo "8..10 MiB: $(sum "$dev" 8 2) (written: $(sha256sum < data1 | cut -c1-16))"

say "live snapshot: vm.cow is sealed, vm-snap1.cow becomes the top"
run "$cc" snapshot demo
run dmsetup table demo
head -c 1M /dev/urandom > data2
run dd if=data2 of="$dev" bs=1M seek=8 oflag=direct status=none
echo "8..9 MiB after the snapshot: $(sum "$dev" 8 1) (written: $(sha256sum < data2 | cut -c1-16))"

say "which layer serves what"
run dmsetup message demo 0 commit
"$cc" map vm-snap1.cow | head -8

say "restore the snapshot (live): the top's changes are gone"
run "$cc" restore demo
echo "8..10 MiB: $(sum "$dev" 8 2) (the snapshot had $(sha256sum < data1 | cut -c1-16))"
echo "0..4 MiB:  $(sum "$dev" 0 4) (base)"

say "the tree of layers"
run "$cc" tree .

say "detach, and read the same data back with the library alone"
run "$cc" detach demo
echo "library, 8..10 MiB: $("$cc" read vm-snap1.cow --offset 8M --length 2M | sha256sum | cut -c1-16)"
run "$cc" check vm-snap1.cow
run rmmod dm-cowchain
echo
echo "demo: root + child attached on $kver, written, snapshotted live, read back through"
echo "demo: the chain, restored, detached; the library reads what the device wrote."

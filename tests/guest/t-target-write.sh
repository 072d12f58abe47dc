#!/bin/bash
# Writes through the target land where the library reads them: aligned
# and unaligned writes (first writes, overwrites, single-sub-block
# copy-up), discards and write-zeroes, flushes; after removing the device
# the library reads back exactly what the device showed, and so does a new
# activation.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd blkdiscard

d=$TEST_TMP/c
mkdir -p "$d"
read -r -a files <<< "$(make_chain "$d" 3 2)"
dm_create cc-write "$(chain_table "${files[@]}")"
dev=/dev/mapper/cc-write
same_as_library "$dev" "${files[0]}" "before writes"

w() { # w SEEK_BYTES LENGTH_BYTES BYTE
	head -c "$2" /dev/zero | tr '\0' "\\$(printf %03o "$3")" > "$TEST_TMP/w"
	dd if="$TEST_TMP/w" of="$dev" bs=512 seek=$(($1 / 512)) oflag=direct \
		conv=notrunc status=none || fail "write $2 bytes at $1"
}
log "first writes, overwrites, partial sub-blocks"
w 0 65536 17			# whole cluster over parents' data
w 20480 4096 18			# one sub-block
w 20480 4096 19			# overwrite it
w 1536 512 20			# part of a sub-block: copy-up
w 8704 1536 21			# another part, crossing nothing
w 126976 8192 22		# crosses a cluster boundary
w 200704 12288 23		# fresh cluster, three sub-blocks
w 201216 1024 24		# part of a sub-block the top holds
log "flush"
sync
blockdev --flushbufs "$dev"
log "discard and write-zeroes"
blkdiscard -o 327680 -l 131072 "$dev" || fail "blkdiscard"
blkdiscard -o 65536 -l 8192 "$dev" || fail "blkdiscard in a cluster"
if blkdiscard -z -o $((4096 * 40 + 512)) -l 8192 "$dev" 2>/dev/null; then
	log "write-zeroes ok"
else
	log "write-zeroes not offered by the device; zeroes written instead"
fi
dmsetup message cc-write 0 commit || fail "commit message"
dd if="$dev" of="$TEST_TMP/shown" bs=1M iflag=direct status=none || fail "read back"
st=$(dmsetup status cc-write)
log "status: $st"
dm_remove cc-write

log "the library reads what the device showed"
size=$(vsize "${files[0]}")
"$CC" read "${files[0]}" --offset 0 --length "$size" --output "$TEST_TMP/lib" ||
	fail "cowchain read after the device went away"
cmp "$TEST_TMP/shown" "$TEST_TMP/lib" || fail "library reads differ from the device"
if "$CC" check --help >/dev/null 2>&1; then
	"$CC" check "${files[0]}" || fail "cowchain check after deactivation"
fi

log "a new activation reads the same"
dm_create cc-write2 "$(chain_table "${files[@]}")"
dd if=/dev/mapper/cc-write2 of="$TEST_TMP/again" bs=1M iflag=direct status=none
cmp "$TEST_TMP/shown" "$TEST_TMP/again" || fail "second activation differs"
dm_remove cc-write2

# A cluster the top holds entirely is packed into its xarray slot: once
# committed (and when loaded at activation) it has no entry in the
# cowchain_tent slab cache.  4 KiB clusters: 4096 clusters in 16 MiB.
# SLUB's active_objs is exact only to a few slabs, hence the margins.
log "full clusters packed: no entry object each once committed"
tents() { awk '$1 == "cowchain_tent" {print $2}' /proc/slabinfo; }
p=$TEST_TMP/pack
mkdir -p "$p"
"$CC" create "$p/root.cow" --size 32M --cluster-size 4K --subblock-size 4K >/dev/null ||
	fail "create the 4K-cluster root"
"$CC" create "$p/top.cow" --parent "$p/root.cow" >/dev/null || fail "create its child"
head -c 16777216 /dev/urandom > "$p/data"
t0=$(tents)
dm_create cc-pack "$(chain_table "$p/top.cow" "$p/root.cow")"
dev=/dev/mapper/cc-pack
dd if="$p/data" of="$dev" bs=1M oflag=direct conv=notrunc status=none || fail "write 16 MiB"
dmsetup message cc-pack 0 commit || fail "commit message"
t1=$(tents)
st=$(dmsetup status cc-pack)
log "16 MiB written: $((t1 - t0)) entry objects of $(cat /sys/kernel/slab/cowchain_tent/slab_size 2>/dev/null || echo '?') bytes; status: $st"
[ "$(echo "$st" | awk '{print $8}' | cut -d/ -f1)" = 4096 ] ||
	fail "the top should hold 4096 clusters: $st"
[ $((t1 - t0)) -lt 1024 ] || fail "$((t1 - t0)) entry objects for 4096 full clusters: not packed"
# discards into packed clusters unpack them: zero markers need entries
blkdiscard -o 4194304 -l 1048576 "$dev" || fail "blkdiscard over packed clusters"
dd if=/dev/zero of="$p/data" bs=1M seek=4 count=1 conv=notrunc status=none
w 8388608 1024 33		# part of a packed sub-block: an overwrite
printf '\041%.0s' $(seq 1024) | dd of="$p/data" bs=1 seek=8388608 conv=notrunc status=none
dmsetup message cc-pack 0 commit || fail "commit message"
t2=$(tents)
log "after discarding 256 of them: $((t2 - t0)) entry objects"
[ $((t2 - t1)) -ge 128 ] || fail "discarded clusters kept no entry: $t1 -> $t2"
cmp <(dd if="$dev" bs=1M count=16 iflag=direct status=none) "$p/data" || fail "packed clusters read back wrong"
dm_remove cc-pack
dm_create cc-pack "$(chain_table "$p/top.cow" "$p/root.cow")"
t3=$(tents)
log "activated again: $((t3 - t0)) entry objects"
[ $((t3 - t0)) -lt 1024 ] || fail "activation did not load full clusters packed: $((t3 - t0))"
cmp <(dd if=/dev/mapper/cc-pack bs=1M count=16 iflag=direct status=none) "$p/data" || fail "second activation reads back wrong"
dm_remove cc-pack
"$CC" check "$p/top.cow" >/dev/null || fail "cowchain check after packing"

# Partly written clusters of at most 16 sub-blocks pack too (their holes go
# in the value): 512 clusters of 64 KiB (what the top's file has room for)
# with one 4 KiB sub-block written in each, then a second sub-block in
# every other one (a first write into a packed cluster unpacks it), then a
# new activation.
log "partly written clusters packed"
"$CC" create "$p/root2.cow" --size 64M >/dev/null || fail "create the 64K-cluster root"
# the root holds data over the first half (its file has room for that)
{ head -c 33554432 /dev/urandom; head -c 33554432 /dev/zero; } > "$p/base2"
dm_create cc-pack2 "$(chain_table "$p/root2.cow")"
dd if="$p/base2" of=/dev/mapper/cc-pack2 bs=1M count=32 oflag=direct status=none ||
	fail "fill the root"
dm_remove cc-pack2
"$CC" create "$p/top2.cow" --parent "$p/root2.cow" >/dev/null || fail "create its child"
t0=$(tents)
dm_create cc-pack2 "$(chain_table "$p/top2.cow" "$p/root2.cow")"
dev=/dev/mapper/cc-pack2
cp "$p/base2" "$p/model2"
subwrite() {	# subwrite STEP SUB: sub-block SUB of every STEP-th cluster
	python3 - "$dev" "$p/model2" "$1" "$2" <<'PY' || fail "sub-block writes"
import mmap, os, sys
dev, model, step, sub = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = bytearray(open(model, "rb").read())
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for c in range(0, 512, step):
    off = c * 65536 + sub * 4096
    data = os.urandom(4096)
    buf[:] = data
    if os.pwritev(fd, [buf], off) != 4096:
        sys.exit(f"short write at {off}")
    m[off:off + 4096] = data
open(model, "wb").write(m)
PY
}
subwrite 1 3
dmsetup message cc-pack2 0 commit || fail "commit message"
t1=$(tents)
log "one sub-block in each of 512 clusters: $((t1 - t0)) entry objects"
[ $((t1 - t0)) -lt 128 ] || fail "$((t1 - t0)) entry objects for 512 partly written clusters: not packed"
subwrite 2 9
cmp <(dd if="$dev" bs=1M iflag=direct status=none) "$p/model2" ||
	fail "partly written packed clusters read back wrong before the commit"
dmsetup message cc-pack2 0 commit || fail "commit message"
t2=$(tents)
log "a second sub-block in 256 of them: $((t2 - t0)) entry objects"
[ $((t2 - t0)) -lt 128 ] || fail "$((t2 - t0)) entry objects after the second writes: not packed again"
cmp <(dd if="$dev" bs=1M iflag=direct status=none) "$p/model2" ||
	fail "partly written packed clusters read back wrong"
dm_remove cc-pack2
dm_create cc-pack2 "$(chain_table "$p/top2.cow" "$p/root2.cow")"
t3=$(tents)
log "activated again: $((t3 - t0)) entry objects"
[ $((t3 - t0)) -lt 128 ] || fail "activation did not load partly written clusters packed"
cmp <(dd if=/dev/mapper/cc-pack2 bs=1M iflag=direct status=none) "$p/model2" ||
	fail "second activation reads partly written clusters back wrong"
dm_remove cc-pack2
"$CC" read "$p/top2.cow" --offset 0 --length 67108864 --output "$p/lib2" || fail "library read"
cmp "$p/lib2" "$p/model2" || fail "the library reads other data"
"$CC" check "$p/top2.cow" >/dev/null || fail "cowchain check after partial packing"
log "ok"

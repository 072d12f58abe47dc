#!/bin/bash
# A deep chain: activation and reads at depth COWCHAIN_DEPTH, with data at
# the root, every 256th layer and the top, equal the library's reads;
# activation time is logged.  A table with more than 4096 layers is
# refused by its ancestor count.
#
# Long tier only (make stress): 1024 layers by default.  make check covers
# depth 64 in t-target-read.  Building the chain in the guest dominates the
# run time: every layer is a process start and a loop device (128 layers
# took 151 s to build and 93 s to attach on 6.1 under TCG, activation
# 3.3 s with slub debugging).  Data goes only into a few layers.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"

depth=${COWCHAIN_DEPTH:-1024}
# the tool holds every layer of the chain open: 1024 layers need more than
# the default 1024 descriptors
ulimit -n 8192
d=$TEST_TMP/c
mkdir -p "$d"

log "building a chain of depth $depth"
start=$SECONDS
files=()
for ((i = 0; i < depth; i++)); do
	f=$d/l$i.cow
	if ((i == 0)); then
		"$CC" create "$f" --size 8M --journal-size 64K >/dev/null || fail "create $f"
		"$CC" write "$f" --offset 0 --pattern 1 --length 1048576 >/dev/null || fail "write $f"
	else
		"$CC" create "$f" --parent "${files[0]}" --journal-size 64K >/dev/null ||
			fail "create $f"
	fi
	if ((i % 256 == 255 || i == depth - 1)); then
		# one sub-block per such layer, overlapping the root's data
		# every other time, and one zeroed sub-block over the root's data
		"$CC" write "$f" --offset $(( (i / 256) * 69632 )) \
			--pattern $(( i % 251 + 2 )) --length 4096 >/dev/null || fail "write $f"
		"$CC" write "$f" --offset $(( (i / 256) * 4096 + 8192 )) --zero --length 4096 \
			>/dev/null || fail "zero $f"
	fi
	files=("$f" "${files[@]}")
done
log "chain built in $((SECONDS - start))s"

loops=()
cleanup_loops() {
	local l
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
}
on_exit cleanup_loops
start=$SECONDS
loops+=("$(losetup -f --show "${files[0]}")") || fail "losetup top"
for ((i = 1; i < depth; i++)); do
	loops+=("$(losetup -f --show --read-only "${files[i]}")") || fail "losetup ${files[i]}"
done
log "$depth loop devices in $((SECONDS - start))s"

sectors=$(( $(vsize "${files[0]}") / 512 ))
table="0 $sectors cowchain ${loops[0]} $((depth - 1)) ${loops[*]:1} -"
t0=$(date +%s%N)
dm_create cc-depth "$table"
t1=$(date +%s%N)
log "activation at depth $depth: $(( (t1 - t0) / 1000000 )) ms"
# shellcheck disable=SC2046 # split into fields on purpose
set -- $(dmsetup status cc-depth)
assert_eq "$depth" "$5" "status depth"
t0=$(date +%s%N)
same_as_library /dev/mapper/cc-depth "${files[0]}" "depth $depth"
t1=$(date +%s%N)
log "reading and comparing 8 MiB: $(( (t1 - t0) / 1000000 )) ms"

# a write at depth still lands where the library reads it
write_removed_library cc-depth "${files[0]}" "depth $depth"

log "more than 4096 layers is refused"
assert_fails dmsetup create cc-deep --table "0 $sectors cowchain ${loops[0]} 4096 ${loops[*]:1} -"
dm_exists cc-deep && fail "cc-deep exists"
dmesg | tail -n 5 | grep -q "invalid number of ancestors" ||
	fail "no 'invalid number of ancestors' in the kernel log"
log "ok"

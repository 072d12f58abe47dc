#!/bin/bash
# Lifecycle and concurrency (quick tier; issue 7):
#  - four fio writers racing first writes into the same unallocated
#    clusters (each its own 4 KiB sub-blocks of every cluster), verified:
#    no data lost, each cluster allocated once (status and check agree);
#  - --noflush suspend/resume in a loop under fio verify;
#  - messages (commit, map) and status while suspended neither hang nor
#    change anything;
#  - remove of an open device under fio is refused, a deferred remove
#    waits for the last opener, and nothing fio wrote is lost.
# Every wait is bounded by timeout(1); the hung-task detector is on.
# (Merge refused on a layer under a live device: t-life-ext4.  Reload while
# live and resume, plain suspend loops under fio: t-target-suspend.)
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd fio timeout

d=$TEST_TMP
"$CC" create "$d/root.cow" --size 64M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --pattern 9 --length 16777216 >/dev/null ||
	fail "write root"
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
table=$(chain_table "$d/top.cow" "$d/root.cow")
dm_create cc-race "$table"
dev=/dev/mapper/cc-race
# shellcheck disable=SC2046 # split into fields on purpose
allocated() { set -- $(dmsetup status cc-race); echo "${8%/*}"; }

log "four writers racing first writes into the same clusters"
a0=$(allocated)
# job j writes sub-blocks j, j+4, j+8, ... of [32 MiB, 40 MiB): every one of
# the 128 clusters there gets its first four sub-blocks from four jobs at
# once, over the root's data at [0, 16 MiB) and empty space alike.
for off in 32M 8M; do
	timeout 300 fio --name=race --filename="$dev" --direct=1 --ioengine=libaio --iodepth=8 \
		--numjobs=4 --offset="$off" --offset_increment=4k --size=8M --bs=4k \
		--rw=write:12k --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--verify_state_save=0 --group_reporting --output="$d/race.out" ||
		{ cat "$d/race.out"; fail "racing first writes at $off: fio verify"; }
done
a1=$(allocated)
# 8 MiB at 64 KiB clusters, twice, each cluster touched by all four jobs
assert_eq 256 $((a1 - a0)) "clusters allocated by the racing writers"

log "--noflush suspend/resume under fio verify"
timeout 300 fio --name=nf --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
	--rw=randwrite --bssplit=4k/50:16k/25:64k/25 --offset=40M --size=16M \
	--verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
	--output="$d/nf.out" &
fio_pid=$!
for i in $(seq 1 10); do
	sleep 0.3
	timeout 60 dmsetup suspend --noflush cc-race || { kill "$fio_pid"; fail "suspend --noflush $i"; }
	timeout 60 dmsetup resume cc-race || { kill "$fio_pid"; fail "resume $i"; }
done
wait "$fio_pid" || { cat "$d/nf.out"; fail "fio verify under --noflush suspend/resume"; }

log "messages and status while suspended"
dd if="$dev" of="$d/before" bs=1M iflag=direct status=none || fail "read before"
timeout 60 dmsetup suspend cc-race || fail "suspend"
timeout 60 dmsetup message cc-race 0 commit || { dmsetup resume cc-race; fail "commit while suspended"; }
out=$(timeout 60 dmsetup message cc-race 0 map 0) || { dmsetup resume cc-race; fail "map while suspended"; }
log "map 0 while suspended: $out"
timeout 60 dmsetup status cc-race >/dev/null || { dmsetup resume cc-race; fail "status while suspended"; }
timeout 60 dmsetup resume cc-race || fail "resume"
dd if="$dev" of="$d/after" bs=1M iflag=direct status=none || fail "read after"
cmp "$d/before" "$d/after" || fail "contents changed across a suspended commit"

log "remove while the device is open and written"
# Without udev, dmsetup remove (deferred or not) deletes /dev/mapper/cc-race
# at once, and fio closes and reopens its file between the write and the
# verify pass: both go through a node of our own that outlives the name.
node=$d/cc-race.node
mknod "$node" b "$(dmsetup info -c --noheadings -o major cc-race)" \
	"$(dmsetup info -c --noheadings -o minor cc-race)" || fail "mknod"
exec 3<"$node"	# an opener that is surely there when remove comes
timeout 300 fio --name=rm --filename="$node" --direct=1 --ioengine=libaio --iodepth=8 \
	--rw=randwrite --bs=4k --offset=56M --size=8M --verify=crc32c --do_verify=1 \
	--verify_fatal=1 --verify_state_save=0 --output="$d/rm.out" &
fio_pid=$!
# fio must hold the device before the first remove below, so that the
# refusal is for fio's open and not only for fd 3
opens() { dmsetup info -c --noheadings -o open cc-race; }
for _ in $(seq 1 300); do [ "$(opens)" -ge 2 ] && break; sleep 0.1; done
[ "$(opens)" -ge 2 ] || { kill "$fio_pid"; fail "fio did not open the device in 30 s"; }
if dmsetup remove cc-race 2>"$d/rm.err"; then
	kill "$fio_pid" 2>/dev/null
	fail "remove of an open device was accepted"
fi
log "refused while open: $(head -n 1 "$d/rm.err")"
timeout 60 dmsetup remove --deferred cc-race || { kill "$fio_pid"; fail "deferred remove"; }
wait "$fio_pid" || { cat "$d/rm.out"; fail "fio verify with a deferred remove pending"; }
dm_exists cc-race || fail "the deferred remove happened while the device was still open"
exec 3<&-
for _ in $(seq 1 50); do dm_exists cc-race || break; sleep 0.2; done
dm_exists cc-race && fail "the deferred remove did not happen when the last opener closed"

log "the library reads what the device wrote; check is clean"
"$CC" read "$d/top.cow" --offset 0 --length "$(vsize "$d/top.cow")" --output "$d/lib" ||
	fail "library read"
cmp -n $((56 << 20)) "$d/after" "$d/lib" || fail "the library differs from the device"
"$CC" check "$d/top.cow" || fail "check after the races"
log "ok"

#!/bin/bash
# A cluster freed by a discard is not handed out again while a bio that
# looked it up before the discard is still in flight.  A read of a cluster
# the top holds is held back by dm-delay under the top's device; the
# cluster is discarded and the discard committed; a first write to another
# cluster then allocates.  The held read must return the cluster's old data
# (or the discard's zeros), never the other cluster's new data, which is
# what it read when a commit recycled freed clusters at once.  The same
# count (cowchain_md_io_begin) guards overwrites.  Afterwards both clusters
# read back as written and "cowchain check" passes.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd blkdiscard
modprobe dm-delay 2>/dev/null || true

C=$((64 * 1024))
DELAY_MS=10000
d=$TEST_TMP/reuse
mkdir -p "$d"
"$CC" create "$d/top.cow" --size 4M >/dev/null || fail "create"
loop=$(loop_attach "$d/top.cow")
n=$(size_sectors "$loop")
dm_create cc-reuse-delay "0 $n delay $loop 0 0 $loop 0 0"
dm_create cc-reuse "0 $((4 * 1024 * 1024 / 512)) cowchain /dev/mapper/cc-reuse-delay 0 -"
dev=/dev/mapper/cc-reuse

head -c $C /dev/urandom > "$d/old"
head -c $C /dev/urandom > "$d/new"
head -c $C /dev/zero > "$d/zero"
dd if="$d/old" of=$dev bs=$C count=1 oflag=direct status=none || fail "write cluster 0"
dmsetup message cc-reuse 0 commit || fail "commit"
log "cluster 0: $(dmsetup message cc-reuse 0 map 0)"

# reads through the delay device now take DELAY_MS; writes do not wait
dmsetup suspend cc-reuse-delay || fail "suspend delay"
dmsetup load cc-reuse-delay --table "0 $n delay $loop 0 $DELAY_MS $loop 0 0" ||
	fail "load delay"
dmsetup resume cc-reuse-delay || fail "resume delay"

t_read=$(date +%s%N)
dd if=$dev of="$d/got" bs=$C count=1 iflag=direct status=none &
reader=$!
on_exit wait "$reader"	# before the devices go
# dm-delay's status counts the reads it holds ("0 N delay READS ..."):
# wait for ours
for i in $(seq 100); do
	# shellcheck disable=SC2046 # split into fields on purpose
	set -- $(dmsetup status cc-reuse-delay)
	[ "${4:-0}" -ge 1 ] && break
	sleep 0.1
done
[ "${4:-0}" -ge 1 ] || fail "the read did not reach the delay device: $*"
blkdiscard -f -o 0 -l $C $dev || fail "discard cluster 0"
t0=$(date +%s%N)
dmsetup message cc-reuse 0 commit || fail "commit after the discard"
t1=$(date +%s%N)
# the commit hands cluster 0 out again only once the held read has ended
# shellcheck disable=SC2046 # split into fields on purpose
set -- $(dmsetup status cc-reuse-delay)
[ "${4:-}" = 0 ] || fail "the commit returned while the read of the freed cluster was held"
dd if="$d/new" of=$dev bs=$C seek=1 count=1 oflag=direct status=none ||
	fail "first write of cluster 1"
log "commit after the discard took $(((t1 - t0) / 1000000)) ms;" \
	"cluster 1: $(dmsetup message cc-reuse 0 map $((C / 512)))"
wait $reader || fail "the held read failed"
log "the read was held $((($(date +%s%N) - t_read) / 1000000)) ms;" \
	"the second write began $(((t1 - t_read) / 1000000)) ms after it"

for what in old new zero; do
	cmp -s "$d/got" "$d/$what" && log "the held read returned the $what data"
done
if cmp -s "$d/got" "$d/new"; then
	fail "the held read returned the data written later to another cluster"
fi
cmp -s "$d/got" "$d/old" || cmp -s "$d/got" "$d/zero" ||
	fail "the held read returned neither the old data nor zeros"

dd if=$dev of="$d/c1" bs=$C skip=1 count=1 iflag=direct status=none || fail "read cluster 1"
cmp -s "$d/c1" "$d/new" || fail "cluster 1 does not read back as written"
dd if=$dev of="$d/c0" bs=$C count=1 iflag=direct status=none || fail "read cluster 0"
cmp -s "$d/c0" "$d/zero" || fail "the discarded cluster 0 does not read zeros"
dm_remove cc-reuse
"$CC" read "$d/top.cow" --offset $C --length $C --output "$d/lib1" || fail "library read"
cmp -s "$d/lib1" "$d/new" || fail "the library reads other data for cluster 1"
"$CC" check "$d/top.cow" >/dev/null || fail "cowchain check"
log "ok"

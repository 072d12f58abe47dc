#!/bin/bash
# Bios that span clusters.  map() remaps a read, or an overwrite of what
# the top holds, as one bio across clusters while the next cluster is
# served by the same device at the next data cluster, and cuts it where
# that stops.  Over a chain of base, root and top laid out with contiguous
# and scrambled data clusters, zero markers, partial clusters and the
# base's end inside one 1 MiB bio: 1 MiB reads at many unaligned offsets
# equal the library; 1 MiB overwrites and first writes across those
# boundaries read back as written, from the device and from the library
# after removal; "cowchain check" passes.  A 1 MiB read of contiguous top
# data, of contiguous root data and a 1 MiB overwrite of contiguous top
# data are each one remap of 2048 sectors (block_bio_remap trace events),
# and a 1 MiB first write is cut per cluster.  (fio verify with 1 MiB
# blocks: t-target-random.)
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd python3

K=1024
M=$((1024 * K))
C=$((64 * K))
d=$TEST_TMP/span
mkdir -p "$d"
w() {	# w FILE OFFSET LENGTH PATTERN|zero
	if [ "$4" = zero ]; then
		"$CC" write "$1" --offset "$2" --length "$3" --zero >/dev/null || fail "zero $1 $2"
	else
		"$CC" write "$1" --offset "$2" --length "$3" --pattern "$4" >/dev/null ||
			fail "write $1 $2"
	fi
}

# the base ends at 3 MiB + 12 KiB: inside a cluster, inside a 1 MiB bio
head -c $((3 * M + 12 * K)) /dev/urandom > "$d/base.raw"
"$CC" create "$d/root.cow" --base "$d/base.raw" --size 8M >/dev/null || fail "create root"
w "$d/root.cow" $((1 * M)) "$M" 17			# clusters 16-31, one write
for c in 34 32 33; do w "$d/root.cow" $((c * C)) "$C" $((c + 1)); done	# scrambled
w "$d/root.cow" $((36 * C)) $((96 * K)) zero		# zero markers, 1.5 clusters
w "$d/root.cow" $((40 * C + 5000)) 3000 41		# partial sub-blocks
w "$d/root.cow" $((44 * C)) $((2 * C)) 45
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
w "$d/top.cow" $((5 * C)) "$C" 6			# over the base
w "$d/top.cow" $((38 * C)) $((32 * K)) 39		# half a cluster
w "$d/top.cow" $((45 * C)) "$C" 46			# over root data
w "$d/top.cow" $((44 * C + 8 * K)) $((8 * K)) zero	# zero over root data
w "$d/top.cow" $((4 * M)) "$M" 65			# clusters 64-79, one write
for c in 82 80 81; do w "$d/top.cow" $((c * C)) "$C" $((c + 1)); done	# scrambled
w "$d/top.cow" $((84 * C)) $((32 * K)) 85		# present run ends mid-cluster
w "$d/top.cow" $((85 * C)) "$C" 86

top=$(loop_attach "$d/top.cow")
root=$(loop_attach "$d/root.cow" ro)
base=$(loop_attach "$d/base.raw" ro)
dm_create cc-span "0 $((8 * M / 512)) cowchain $top 1 $root $base"
dev=/dev/mapper/cc-span
"$CC" read "$d/top.cow" --offset 0 --length $((8 * M)) --output "$d/model" ||
	fail "library read"

# map_of SECTOR: "top N", "layer 1 N", "base N" or "zero"
map_of() { dmsetup message cc-span 0 map "$1" || fail "map message"; }
# the test's premise: the library laid the single writes out contiguously
for v in $((4 * M / 512)) $((1 * M / 512)); do
	first=$(map_of "$v")
	last=$(map_of $((v + 2047)))
	p0=${first##* } p1=${last##* }
	if [ "${first% *}" != "${last% *}" ] || [ $((p1 - p0)) -ne 2047 ]; then
		fail "the library did not lay out sector $v contiguously: $first / $last"
	fi
done
log "contiguous: $(map_of $((4 * M / 512))), $(map_of $((1 * M / 512)))"

log "1 MiB reads at unaligned offsets"
python3 - "$dev" "$d/model" <<'PY' || fail "reads"
import mmap, os, sys
dev, model = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
n = 0
# every cluster boundary falls inside ~5 of these, at different phases
for step in ((192 << 10) + 512,):
    for off in range(0, len(model) - (1 << 20) + 1, step):
        if os.preadv(fd, [buf], off) != 1 << 20 or buf[:] != model[off:off + (1 << 20)]:
            sys.exit(f"read at {off} differs from the library")
        n += 1
print("reads:", n)
PY

# remaps SECTORS_PER_BIO CMD...: run CMD with block_bio_remap traced; print
# the remaps from the cowchain device, one "sectors" per line
tr=/sys/kernel/tracing
[ -d $tr/events ] || mount -t tracefs nodev $tr 2>/dev/null
traced=0
if [ -w $tr/events/block/block_bio_remap/enable ]; then
	traced=1
	dm=$(dmsetup info -c --noheadings -o major,minor cc-span | tr -d ' ' | tr : ,)
	on_exit sh -c "echo 0 > $tr/events/block/block_bio_remap/enable; echo > $tr/trace"
fi
remaps() {
	echo > $tr/trace
	echo 1 > $tr/events/block/block_bio_remap/enable
	"$@" || fail "$*"
	echo 0 > $tr/events/block/block_bio_remap/enable
	grep "<- ($dm)" $tr/trace | sed 's/.* + \([0-9]*\) <- .*/\1/'
}
one_remap() {	# one_remap WHAT CMD...
	local got
	got=$(remaps "${@:2}" | tr '\n' ' ')
	assert_eq "2048 " "$got" "$1: remaps"
}
if [ $traced = 1 ]; then
	log "one remap per 1 MiB bio where the placement is contiguous"
	one_remap "read of top data" dd if=$dev of=/dev/null bs=1M skip=4 count=1 \
		iflag=direct status=none
	one_remap "read of root data" dd if=$dev of=/dev/null bs=1M skip=1 count=1 \
		iflag=direct status=none
	head -c "$M" /dev/urandom > "$d/ow"
	one_remap "overwrite of top data" dd if="$d/ow" of=$dev bs=1M seek=4 count=1 \
		oflag=direct conv=notrunc status=none
	dd if="$d/ow" of="$d/model" bs=1M seek=4 count=1 conv=notrunc status=none
	got=$(remaps dd if="$d/ow" of=$dev bs=1M seek=6 count=1 oflag=direct \
		conv=notrunc status=none | tr '\n' ' ')
	assert_eq "$(printf '128 %.0s' $(seq 16))" "$got" "first write: one remap per cluster"
	dd if="$d/ow" of="$d/model" bs=1M seek=6 count=1 conv=notrunc status=none
else
	log "no tracefs: remap counts not checked"
fi

log "1 MiB writes across contiguous, scrambled, partial and empty clusters"
python3 - "$dev" "$d/model" <<'PY' || fail "writes"
import mmap, os, random, sys
dev, path = sys.argv[1], sys.argv[2]
model = bytearray(open(path, "rb").read())
rng = random.Random(7)
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
K, M, C = 1024, 1 << 20, 64 << 10
# top contiguous -> scrambled; scrambled -> partial -> first writes;
# top over base -> base; root -> top -> zeros -> root; past the base's end
offs = [4 * M + 512, 4 * M + 40 * K, 5 * M - 7 * 512, 5 * M + 3 * C + 4096,
        5 * M + 4 * C + 3072, 0, 4 * C + 1024, 2 * M + 4 * C - 512,
        37 * C, 3 * M - 512, 7 * M - 4096]
for off in offs:
    data = rng.randbytes(1 << 20)
    buf[:] = data
    if os.pwritev(fd, [buf], off) != 1 << 20:
        sys.exit(f"short write at {off}")
    model[off:off + M] = data
os.fsync(fd)
for step in (M,):
    for off in range(0, len(model) - M + 1, step):
        if os.preadv(fd, [buf], off) != M or buf[:] != model[off:off + M]:
            sys.exit(f"read at {off} after the writes differs from the model")
open(path, "wb").write(model)
PY
dm_remove cc-span
"$CC" read "$d/top.cow" --offset 0 --length $((8 * M)) --output "$d/after" ||
	fail "library read after removal"
cmp "$d/model" "$d/after" || fail "the library's read after removal differs"
"$CC" check "$d/top.cow" >/dev/null || fail "cowchain check"

log "ok"

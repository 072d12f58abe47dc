#!/bin/bash
# Space in the top layer:
#  - a root records no zero markers: discarding or zeroing a whole empty
#    root creates no metadata, and discarding its data frees it all;
#    a child still masks its parent with zero markers;
#  - free blocks of existing metadata clusters are reused across
#    activations (many activations each adding one leaf need no more
#    metadata clusters than the blocks require);
#  - clusters freed by discard are discarded on the top device after the
#    commit: the layer file gets its space back;
#  - a child holds its whole virtual disk: every cluster written through
#    the device (and again after a re-activation) with no error and no
#    out_of_space; the layout's capacity is all it needs (the allocator
#    once kept 4 clusters back and ran out a few clusters short).
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd blkdiscard du

d=$TEST_TMP
# field FILE KEY: a number from "cowchain info --json"
field() {
	"$CC" info "$1" --json | sed -n "s/^ *\"$2\":\([0-9]*\).*/\1/p"
}

log "discard and write-zeroes over a whole empty root"
"$CC" create "$d/root.cow" --size 64M >/dev/null || fail "create root"
dm_create cc-space "$(chain_table "$d/root.cow")"
blkdiscard /dev/mapper/cc-space || fail "blkdiscard"
blkdiscard -z /dev/mapper/cc-space 2>/dev/null || log "(write-zeroes not offered)"
dmsetup message cc-space 0 commit || fail "commit"
dm_remove cc-space
assert_eq 0 "$(field "$d/root.cow" leaf_blocks)" "root: leaf blocks after discard"
assert_eq 0 "$(field "$d/root.cow" metadata_clusters)" "root: metadata clusters after discard"
assert_eq 0 "$(field "$d/root.cow" zero_subblocks)" "root: zero markers after discard"

log "discarding a root's data frees it and sets no zero marker"
dm_create cc-space "$(chain_table "$d/root.cow")"
dd if=/dev/urandom of=/dev/mapper/cc-space bs=1M count=2 oflag=direct status=none ||
	fail "write"
blkdiscard -o 65536 -l 1048576 /dev/mapper/cc-space || fail "blkdiscard"
blkdiscard -o 1114112 -l 4096 /dev/mapper/cc-space || fail "blkdiscard one sub-block"
dd if=/dev/mapper/cc-space of="$d/shown" bs=1M iflag=direct status=none || fail "read"
dm_remove cc-space
assert_eq 0 "$(field "$d/root.cow" zero_subblocks)" "root: zero markers"
assert_eq 16 "$(field "$d/root.cow" allocated_clusters)" "root: clusters left"
same_as_library_file() {
	"$CC" read "$1" --offset 0 --length "$(vsize "$1")" --output "$d/ref" || fail "read"
	cmp "$d/ref" "$2" || fail "$3: library differs from the device"
}
same_as_library_file "$d/root.cow" "$d/shown" "root after discards"
"$CC" check "$d/root.cow" >/dev/null || fail "check root"

log "a child masks its parent with zero markers"
"$CC" create "$d/child.cow" --parent "$d/root.cow" >/dev/null || fail "create child"
dm_create cc-space "$(chain_table "$d/child.cow" "$d/root.cow")"
blkdiscard -o 0 -l 131072 /dev/mapper/cc-space || fail "blkdiscard child"
dd if=/dev/mapper/cc-space of="$d/shown" bs=1M iflag=direct status=none || fail "read"
dm_remove cc-space
assert_eq 32 "$(field "$d/child.cow" zero_subblocks)" "child: zero markers"
same_as_library_file "$d/child.cow" "$d/shown" "child after discard"

log "metadata clusters are reused across activations"
"$CC" create "$d/meta.cow" --size 256M >/dev/null || fail "create meta"
n=8
for ((i = 0; i < n; i++)); do
	dm_create cc-space "$(chain_table "$d/meta.cow")"
	# vcluster i*128: a new leaf block each time
	dd if=/dev/urandom of=/dev/mapper/cc-space bs=4096 count=1 \
		seek=$((i * 128 * 16)) oflag=direct status=none || fail "write $i"
	dm_remove cc-space
done
leaves=$(field "$d/meta.cow" leaf_blocks)
maps=$(field "$d/meta.cow" map_blocks)
mc=$(field "$d/meta.cow" metadata_clusters)
assert_eq "$n" "$leaves" "leaf blocks"
# 16 blocks per 64 KiB cluster
need=$(( (leaves + maps + 15) / 16 ))
log "$leaves leaves, $maps maps in $mc metadata clusters (need $need)"
[ "$mc" -le "$need" ] || fail "$mc metadata clusters for $((leaves + maps)) blocks"
"$CC" check "$d/meta.cow" >/dev/null || fail "check meta"

log "freed clusters are discarded on the top device after the commit"
"$CC" create "$d/pd.cow" --size 64M >/dev/null || fail "create pd"
dm_create cc-space "$(chain_table "$d/pd.cow")"
dd if=/dev/urandom of=/dev/mapper/cc-space bs=1M count=16 oflag=direct status=none ||
	fail "write 16M"
sync /dev/mapper/cc-space
before=$(du -k "$d/pd.cow" | cut -f1)
blkdiscard -o 1048576 -l 8388608 /dev/mapper/cc-space || fail "blkdiscard 8M"
sync /dev/mapper/cc-space
after=$(du -k "$d/pd.cow" | cut -f1)
log "file usage ${before}K before, ${after}K after discarding 8M"
[ $((before - after)) -ge 8000 ] || fail "the file did not shrink by 8M (${before}K -> ${after}K)"
dd if=/dev/mapper/cc-space of="$d/shown" bs=1M iflag=direct status=none || fail "read"
log "removing"
dm_remove cc-space
log "comparing"
same_as_library_file "$d/pd.cow" "$d/shown" "after passdown"
"$CC" check "$d/pd.cow" >/dev/null || fail "check pd"

log "a child holds its whole virtual disk"
"$CC" create "$d/fr.cow" --size 16M >/dev/null || fail "create fr"
"$CC" write "$d/fr.cow" --offset 0 --pattern 0x5a --length 4M >/dev/null || fail "write fr"
"$CC" create "$d/full.cow" --parent "$d/fr.cow" >/dev/null || fail "create full"
for pass in 1 2; do
	dm_create cc-space "$(chain_table "$d/full.cow" "$d/fr.cow")"
	# 512-byte writes at the start of every cluster (copy-up over the
	# parent's data, first writes after it), then the whole disk
	for ((c = 0; c < 256; c++)); do
		printf 'p%03d' "$c" | dd of=/dev/mapper/cc-space bs=512 seek=$((c * 128)) conv=sync \
			oflag=direct status=none || fail "pass $pass: 512-byte write into cluster $c"
	done
	dd if=/dev/urandom of="$d/full.ref" bs=1M count=16 status=none
	dd if="$d/full.ref" of=/dev/mapper/cc-space bs=1M oflag=direct status=none ||
		fail "pass $pass: writing the whole disk: $(dmsetup status cc-space)"
	sync /dev/mapper/cc-space || fail "pass $pass: fsync"
	st=$(dmsetup status cc-space)
	case $st in *out_of_space*|*" ro "*|*fail*) fail "pass $pass: status $st" ;; esac
	dm_remove cc-space
	same_as_library_file "$d/full.cow" "$d/full.ref" "the whole disk, pass $pass"
	log "pass $pass: $(field "$d/full.cow" allocated_clusters) clusters," \
		"$(field "$d/full.cow" metadata_clusters) metadata cluster(s); status was: $st"
done
assert_eq 256 "$(field "$d/full.cow" allocated_clusters)" "full: data clusters"
"$CC" check "$d/full.cow" >/dev/null || fail "check full"
log "ok"

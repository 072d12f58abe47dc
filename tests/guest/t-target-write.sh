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
log "ok"

#!/bin/bash
# Flush path: after a flush (or an O_DSYNC write) the layer file holds the
# data for the library while the device is still live; a flush with
# nothing dirty commits nothing; suspend commits and checkpoints.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"

"$CC" create "$TEST_TMP/top.cow" --size 2M >/dev/null || fail "create"
dm_create cc-flush "$(chain_table "$TEST_TMP/top.cow")"
dev=/dev/mapper/cc-flush
commits() { dmsetup status cc-flush | awk '{print $10}'; }
check_lib() { # check_lib OFFSET LENGTH BYTE WHAT
	"$CC" read "$TEST_TMP/top.cow" --offset "$1" --length "$2" --output "$TEST_TMP/r" ||
		fail "$4: cowchain read"
	head -c "$2" /dev/zero | tr '\0' "\\$(printf %03o "$3")" > "$TEST_TMP/x"
	cmp "$TEST_TMP/x" "$TEST_TMP/r" || fail "$4: the layer file does not hold the data"
}

log "write + flush: durable in the file"
head -c 8192 /dev/zero | tr '\0' '\101' > "$TEST_TMP/a"
dd if="$TEST_TMP/a" of="$dev" bs=8192 seek=3 oflag=direct status=none || fail "write"
sync "$dev" || fail "flush"
check_lib 24576 8192 65 "after flush"

log "a flush with nothing dirty commits nothing"
n1=$(commits)
sync "$dev"
sync "$dev"
assert_eq "$n1" "$(commits)" "commits after clean flushes"

log "O_DSYNC write into a new cluster"
head -c 4096 /dev/zero | tr '\0' '\102' > "$TEST_TMP/b"
dd if="$TEST_TMP/b" of="$dev" bs=4096 seek=100 oflag=direct,dsync status=none || fail "dsync write"
check_lib 409600 4096 66 "after O_DSYNC write"

log "suspend commits and checkpoints"
dd if="$TEST_TMP/b" of="$dev" bs=4096 seek=200 oflag=direct status=none || fail "write"
dmsetup suspend cc-flush || fail "suspend"
check_lib 819200 4096 66 "after suspend"
"$CC" info "$TEST_TMP/top.cow" | grep -E '^journal:' || true
dmsetup resume cc-flush || fail "resume"
dm_remove cc-flush
log "ok"

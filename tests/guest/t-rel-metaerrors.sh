#!/bin/bash
# Write errors on the metadata alone (quick tier; issue 7, device faults).
# t-rel-faults fails every write of the top's device; here only part of it
# fails, found from the layer's own layout (`cowchain info --json`), while
# the rest keeps working.  dm-error over the part where only writes matter
# (it fails reads too, and is sent no flush); dm-flakey's error_writes where
# data must still be read (it fails every flush sent to it too, so there a
# checkpoint fails at its first write):
#  1. the journal: a commit's journal write fails (a first write, then an
#     fsync that must report EIO);
#  2. every home location (root table, map and leaf blocks, data) but the
#     superblock slots and the journal: a checkpoint's home writes fail
#     after its transactions are durable in the journal;
#  3. the two superblock slots: a checkpoint's last step, the superblock
#     with the new journal head, fails after the home writes succeeded;
#  4. the one slot the next superblock write goes into: as 3, and the
#     NEEDS_CHECK write after the failed one must go into that slot again,
#     never over the last good superblock (a power cut during that write
#     would leave no valid slot): the good slot must read as before.
# In each: the device goes ro (or fail) and its status says so; NEEDS_CHECK
# is in the status and persisted wherever the superblock can still be
# written (cases 1 and 2; in cases 3 and 4 it cannot be); reads of data
# committed before the fault still work.  After the device is fixed:
# `cowchain check` finds no corruption and NEEDS_CHECK on disk exactly in
# cases 1 and 2; a persisted NEEDS_CHECK refuses a writable activation until `cowchain
# check --repair`; then the chain activates rw, everything committed before
# the fault reads back (case 2: replayed from the journal, as its homes were
# never written), the failed first write (case 1) reads as before or as
# written and nothing else, a new write with fsync works, and check is clean
# after deactivation.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd python3
modprobe dm-flakey 2>/dev/null || skip "no dm-flakey"
d=$TEST_TMP
flag_of() { dmsetup status "$1" | awk '{print $NF}'; }
pat() { head -c "$2" /dev/zero | tr '\0' "\\$(printf %03o "$1")"; }
# layout FILE KEY...: values from `cowchain info --json`
layout() {
	local f=$1
	shift
	"$CC" info --json "$f" | python3 -c 'import json, sys
d = json.load(sys.stdin)
print(" ".join(str(d[k]) for k in sys.argv[1:]))' "$@"
}
# fault_table DEV SECTORS error|flakey START LEN [START LEN...]: a table
# over DEV failing each [START, START+LEN) (sorted, disjoint) with dm-error
# or dm-flakey error_writes, linear elsewhere
fault_table() {
	local dev=$1 size=$2 kind=$3 at=0 s l
	shift 3
	while [ $# -ge 2 ]; do
		s=$1 l=$2
		shift 2
		[ "$s" -le "$at" ] || echo "$at $((s - at)) linear $dev $at"
		if [ "$kind" = error ]; then
			echo "$s $l error"
		else
			echo "$s $l flakey $dev $s 0 1 1 error_writes"
		fi
		at=$((s + l))
	done
	[ "$at" -ge "$size" ] || echo "$at $((size - at)) linear $dev $at"
}
# sb_seq DEV SLOT: the seq in superblock slot SLOT (its header's key,
# docs/FORMAT.md), read past the page cache
sb_seq() {
	dd if="$1" of="$d/sb" bs=4k skip="$2" count=1 iflag=direct status=none ||
		fail "read superblock slot $2"
	od -An -tu8 -j 32 -N 8 "$d/sb" | tr -d ' '
}
swap_table() {	# swap_table NAME TABLE
	dmsetup suspend "$1" || fail "suspend $1"
	dmsetup load "$1" --table "$2" || { dmsetup resume "$1"; fail "load $1: $2"; }
	dmsetup resume "$1" || fail "resume $1"
}

"$CC" create "$d/root.cow" --size 16M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --length 4M --pattern 0x11 >/dev/null || fail "write root"
rl=$(loop_attach "$d/root.cow" ro)
pat 0x22 1048576 > "$d/a"	# committed before the fault: over the root's data
pat 0x33 262144 > "$d/b"	# the first write the fault fails, over empty space
pat 0x44 65536 > "$d/c"		# after the repair
pat 0 262144 > "$d/z"

for case in journal homes superblock slot; do
	log "---- $case: writes to it fail, the rest of the top's device works"
	top=$d/top-$case.cow
	"$CC" create "$top" --parent "$d/root.cow" >/dev/null || fail "create top"
	read -r j0 jn <<< "$(layout "$top" journal_start journal_blocks)"
	bs=8	# sectors per 4 KiB metadata block (docs/FORMAT.md)
	tl=$(loop_attach "$top")
	ts=$(blockdev --getsz "$tl"); n=$(( $(vsize "$top") / 512 ))
	js=$((j0 * bs)) jl=$((jn * bs))
	dm_create cc-me-dev "0 $ts linear $tl 0"
	dm_create cc-me "0 $n cowchain /dev/mapper/cc-me-dev 1 $rl -"
	dd if="$d/a" of=/dev/mapper/cc-me bs=64k seek=16 oflag=direct conv=fsync status=none ||
		fail "$case: write before the fault"
	# the slot of the current superblock (the higher seq) after that commit
	cur=0
	[ "$(sb_seq "$tl" 1)" -le "$(sb_seq "$tl" 0)" ] || cur=1
	case $case in
	journal) ranges="error $js $jl" ;;
	homes) ranges="flakey $((2 * bs)) $((js - 2 * bs)) $((js + jl)) $((ts - js - jl))" ;;
	superblock) ranges="error 0 $((2 * bs))" ;;
	slot) ranges="error $(((1 - cur) * bs)) $bs" ;;
	esac
	dd if="$tl" of="$d/good" bs=4k skip="$cur" count=1 iflag=direct status=none ||
		fail "$case: read the current superblock"
	# shellcheck disable=SC2086 # the ranges are words
	swap_table cc-me-dev "$(fault_table "$tl" "$ts" $ranges)"
	if [ "$case" = journal ]; then
		# the data write works; the commit its fsync asks for does not
		assert_fails dd if="$d/b" of=/dev/mapper/cc-me bs=64k seek=128 oflag=direct conv=fsync status=none
		echo "$ASSERT_ERR" | grep -q "Input/output error" ||
			fail "$case: the fsync over a failing journal did not report EIO: $ASSERT_ERR"
	else
		# A's transaction is in the journal; its checkpoint fails
		dmsetup message cc-me 0 checkpoint 2>/dev/null &&
			fail "$case: a checkpoint that cannot write succeeded"
	fi
	await_failed cc-me "$case: "
	[ "$(flag_of cc-me)" = needs_check ] || fail "$case: the status does not say needs_check: $STATUS"
	if [ "$case" = slot ]; then
		# the NEEDS_CHECK write after the failed one must go where it
		# went, not over the last good superblock
		dd if="$tl" of="$d/r" bs=4k skip="$cur" count=1 iflag=direct status=none ||
			fail "$case: read the good slot"
		cmp -s "$d/good" "$d/r" ||
			fail "$case: after a failed superblock write the last good slot ($cur) was written"
	fi
	assert_fails dd if="$d/c" of=/dev/mapper/cc-me bs=64k seek=200 count=1 oflag=direct status=none
	dd if=/dev/mapper/cc-me of="$d/r" bs=64k skip=16 count=16 iflag=direct status=none ||
		fail "$case: reads fail after the fault"
	cmp -s "$d/a" "$d/r" || fail "$case: data committed before the fault reads back wrong"

	log "$case: fixing the device, deactivating"
	swap_table cc-me-dev "0 $ts linear $tl 0"
	dm_remove cc-me
	dm_remove cc-me-dev
	"$CC" check "$top" > "$d/check.out" 2>&1 || true
	! grep -q ': corruption: ' "$d/check.out" || { cat "$d/check.out"; fail "$case: corruption after the fault"; }
	nc=$(grep -c 'SB_NEEDS_CHECK' "$d/check.out" || true)
	log "$case: check: $(tail -n 1 "$d/check.out"); NEEDS_CHECK persisted: $nc"
	case $case in
	superblock | slot) [ "$nc" = 0 ] || fail "$case: NEEDS_CHECK on disk, but no superblock write could succeed" ;;
	*) [ "$nc" != 0 ] || fail "$case: NEEDS_CHECK not persisted though the superblock was writable" ;;
	esac
	if [ "$nc" != 0 ]; then
		assert_fails dmsetup create cc-me --table "0 $n cowchain $tl 1 $rl -"
		dmesg | tail -n 3 | grep -q "needs a check" ||
			fail "$case: a writable activation was refused, but not for NEEDS_CHECK: $(dmesg | tail -n 3)"
		rc=0
		"$CC" check --repair "$top" > "$d/repair.out" 2>&1 || rc=$?
		# fsck's exit codes (docs/check.md): 1 is "corrected"
		[ "$rc" -le 1 ] || { cat "$d/repair.out"; fail "$case: check --repair left problems (exit $rc)"; }
	fi
	dm_create cc-me "0 $n cowchain $tl 1 $rl -"
	[ "$(mode_of cc-me)" = rw ] || fail "$case: not rw after the repair: $(dmsetup status cc-me)"
	dd if=/dev/mapper/cc-me of="$d/r" bs=64k skip=16 count=16 iflag=direct status=none ||
		fail "$case: read after the repair"
	cmp -s "$d/a" "$d/r" || fail "$case: data committed before the fault lost"
	if [ "$case" = journal ]; then
		dd if=/dev/mapper/cc-me of="$d/r" bs=64k skip=128 count=4 iflag=direct status=none ||
			fail "$case: read the failed write's range"
		if cmp -s "$d/b" "$d/r"; then w="as written"
		elif cmp -s "$d/z" "$d/r"; then w="as before (zeros)"
		else fail "$case: the first write whose commit failed reads neither as before nor as written"
		fi
		log "$case: the failed first write reads $w"
	fi
	dd if="$d/c" of=/dev/mapper/cc-me bs=64k seek=200 oflag=direct conv=fsync status=none ||
		fail "$case: a write after the repair"
	dm_remove cc-me
	"$CC" check "$top" > "$d/check.out" 2>&1 || { cat "$d/check.out"; fail "$case: check after the repair"; }
	"$CC" read "$top" --offset $((200 * 65536)) --length 65536 --output "$d/r" >/dev/null ||
		fail "$case: read the new write with the library"
	cmp -s "$d/c" "$d/r" || fail "$case: the write after the repair is not where the library reads"
	log "$case: held"
done
log "ok"

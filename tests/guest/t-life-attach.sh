#!/bin/bash
# cowchain attach / table / detach / snapshot (live) / restore (live),
# multiattach of two siblings written at once, autoreset across
# detach/attach, and the refusals (attach twice, write to sealed, delete
# with children) with their messages.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"

d=$TEST_TMP/img
mkdir -p "$d"
cd "$d"
cc_detach() { "$CC" detach "$1" 2>/dev/null || dm_remove "$1"; }
nloops() { losetup -a | wc -l; }
loops0=$(nloops)

log "root + child, attach"
"$CC" create base.cow --size 64M >/dev/null || fail "create base"
"$CC" write base.cow --offset 0 --pattern 17 --length 1M >/dev/null || fail "write base"
"$CC" create vm.cow --parent base.cow >/dev/null || fail "create vm"
dev=$("$CC" attach vm vm.cow) || fail "attach vm"
on_exit cc_detach vm
assert_eq /dev/mapper/vm "$dev" "attach prints the device"
[ -b "$dev" ] || fail "$dev is not a block device"
assert_eq $((64 * 2048)) "$(size_sectors "$dev")" "device size"
same_as_library "$dev" vm.cow "fresh attach"

log "table for the attached chain matches the live one"
t=$("$CC" table vm.cow) || fail "cowchain table"
live=$(dmsetup table vm)
top_mm=$(echo "$live" | awk '{print $4}')
log "table: $t / live: $live"
assert_eq "0 131072 cowchain" "$(echo "$t" | awk '{print $1, $2, $3}')" "table head"
assert_eq "$top_mm" "$(stat -Lc '%Hr:%Lr' "$(echo "$t" | awk '{print $4}')")" "table top device"

log "refusals: attach twice, write to sealed, delete with children"
assert_fails "$CC" attach vm2 vm.cow
echo "$ASSERT_ERR" | grep -q "cannot attach 'vm.cow': already attached" || fail "attach twice: $ASSERT_ERR"
assert_fails "$CC" attach vm vm.cow
echo "$ASSERT_ERR" | grep -q "device 'vm' already exists" || fail "name twice: $ASSERT_ERR"
assert_fails "$CC" attach b base.cow
echo "$ASSERT_ERR" | grep -q "sealed" || fail "attach sealed: $ASSERT_ERR"
assert_fails "$CC" write base.cow --offset 0 --pattern 1 --length 4096
echo "$ASSERT_ERR" | grep -q "sealed" || fail "write to sealed: $ASSERT_ERR"
assert_fails "$CC" delete base.cow
echo "$ASSERT_ERR" | grep -q "cannot delete 'base.cow': it has 1 child" || fail "delete with child: $ASSERT_ERR"
assert_fails "$CC" delete vm.cow
echo "$ASSERT_ERR" | grep -q "attached" || fail "delete attached: $ASSERT_ERR"
assert_fails "$CC" set vm.cow --autoreset
echo "$ASSERT_ERR" | grep -q "attached" || fail "set on attached: $ASSERT_ERR"

log "write, live snapshot, write more, contents kept"
pattern_file "$TEST_TMP/p1" 2
write_verify "$dev" "$TEST_TMP/p1" 4
dd if="$dev" of="$TEST_TMP/before" bs=1M iflag=direct status=none
snap=$("$CC" snapshot vm) || fail "live snapshot"
assert_eq "$d/vm-snap1.cow" "$(readlink -f "$snap")" "snapshot name"
dd if="$dev" of="$TEST_TMP/after" bs=1M iflag=direct status=none
cmp -s "$TEST_TMP/before" "$TEST_TMP/after" || fail "contents changed across the snapshot"
dmsetup table vm | grep -q " 2 " || fail "the table does not have 2 ancestors: $(dmsetup table vm)"
# ancestors are read-only devices, the old top too (and the new top is not)
read -r -a tt <<< "$(dmsetup table vm)"
assert_eq 0 "$(cat "/sys/dev/block/${tt[3]}/ro")" "new top's device read-only flag"
for mm in "${tt[@]:5:2}"; do
	assert_eq 1 "$(cat "/sys/dev/block/$mm/ro")" "ancestor $mm ($(cat "/sys/dev/block/$mm/loop/backing_file" 2>/dev/null)) read-only flag"
done
"$CC" info vm.cow | grep -q sealed || fail "old top not sealed"
pattern_file "$TEST_TMP/p2" 1
write_verify "$dev" "$TEST_TMP/p2" 5
dd if="$dev" of="$TEST_TMP/changed" bs=1M iflag=direct status=none

log "live restore: back to the snapshot"
"$CC" restore vm || fail "live restore"
dd if="$dev" of="$TEST_TMP/restored" bs=1M iflag=direct status=none
cmp -s "$TEST_TMP/before" "$TEST_TMP/restored" || fail "restore did not bring the snapshot back"
for f in "$d"/* "$d"/.*; do
	case ${f##*/} in *restore-*) fail "restore left a temporary file: $f" ;; esac
done

log "detach: device and its loop devices go"
"$CC" detach vm || fail "detach"
dm_exists vm && fail "vm still exists"
for _ in 1 2 3 4 5 6 7 8 9 10; do [ "$(nloops)" -eq "$loops0" ] && break; sleep 0.3; done
assert_eq "$loops0" "$(nloops)" "loop devices left after detach"
"$CC" read vm-snap1.cow --offset 0 --length $((64 << 20)) --output "$TEST_TMP/lib" ||
	fail "library read after detach"
cmp -s "$TEST_TMP/before" "$TEST_TMP/lib" || fail "library reads differ after detach"
"$CC" check vm-snap1.cow >/dev/null || fail "check after detach"

log "multiattach: two siblings of one sealed parent, written at once"
"$CC" create s1.cow --parent vm-snap1.cow >/dev/null || fail "create s1"
"$CC" create s2.cow --parent vm-snap1.cow >/dev/null || fail "create s2"
d1=$("$CC" attach s1 s1.cow) || fail "attach s1"
on_exit cc_detach s1
d2=$("$CC" attach s2 s2.cow) || fail "attach s2"
on_exit cc_detach s2
pattern_file "$TEST_TMP/q1" 4
pattern_file "$TEST_TMP/q2" 4
dd if="$TEST_TMP/q1" of="$d1" bs=1M seek=8 oflag=direct conv=notrunc status=none &
dd if="$TEST_TMP/q2" of="$d2" bs=1M seek=8 oflag=direct conv=notrunc status=none &
wait
dd if="$d1" of="$TEST_TMP/r1" bs=1M skip=8 count=4 iflag=direct status=none
dd if="$d2" of="$TEST_TMP/r2" bs=1M skip=8 count=4 iflag=direct status=none
cmp -s "$TEST_TMP/q1" "$TEST_TMP/r1" || fail "sibling 1 reads back wrong"
cmp -s "$TEST_TMP/q2" "$TEST_TMP/r2" || fail "sibling 2 reads back wrong"
dd if="$d1" of="$TEST_TMP/d1" bs=1M count=8 iflag=direct status=none
"$CC" read s1.cow --offset 0 --length 8M --output "$TEST_TMP/s1lib" || fail "read s1.cow"
cmp "$TEST_TMP/d1" "$TEST_TMP/s1lib" || fail "sibling 1: device differs from the library"
cmp -n $((8 << 20)) "$TEST_TMP/d1" "$TEST_TMP/before" || fail "sibling 1 lost the shared parent's data"
# the sealed ancestors are shared through one read-only loop device each
n=$(losetup -j "$d/base.cow" | wc -l)
assert_eq 1 "$n" "loop devices of the shared base"
"$CC" tree "$d" > "$TEST_TMP/tree" || fail "tree"
grep -q "s1.cow.*attached: s1" "$TEST_TMP/tree" || fail "tree does not show s1 attached: $(cat "$TEST_TMP/tree")"
"$CC" detach s1 || fail "detach s1"
"$CC" detach s2 || fail "detach s2"

log "autoreset across detach/attach"
"$CC" create ar.cow --parent vm-snap1.cow --autoreset >/dev/null || fail "create autoreset"
da=$("$CC" attach ar ar.cow) || fail "attach ar"
on_exit cc_detach ar
pattern_file "$TEST_TMP/a1" 1
write_verify "$da" "$TEST_TMP/a1" 0
"$CC" detach ar || fail "detach ar"
"$CC" read ar.cow --offset 0 --length 1M --output "$TEST_TMP/ar-lib" || fail "read ar"
cmp -s "$TEST_TMP/a1" "$TEST_TMP/ar-lib" || fail "autoreset layer lost data before the next attach"
da=$("$CC" attach ar ar.cow 2>"$TEST_TMP/note") || fail "re-attach ar"
grep -q autoreset "$TEST_TMP/note" || fail "no autoreset note: $(cat "$TEST_TMP/note")"
# (files, not <(...): compare with what the snapshot holds at 0..1M)
head -c 1M "$TEST_TMP/before" > "$TEST_TMP/snap-1m"
dd if="$da" of="$TEST_TMP/ar-dev" bs=1M count=1 iflag=direct status=none || fail "read ar"
if ! cmp -s "$TEST_TMP/ar-dev" "$TEST_TMP/snap-1m"; then
	"$CC" read ar.cow --offset 0 --length 1M --output "$TEST_TMP/ar-lib2" || true
	log "device: table '$(dmsetup table ar)'; loops: $(losetup -a | tr '\n' ';')"
	log "ar.cow: $("$CC" info ar.cow 2>&1 | tr '\n' ';')"
	for f in a1 ar-lib2; do
		cmp -s "$TEST_TMP/ar-dev" "$TEST_TMP/$f" && log "the device reads what '$f' holds"
	done
	cmp -s "$TEST_TMP/ar-lib2" "$TEST_TMP/snap-1m" && log "the library reads ar.cow empty"
	log "first differences (device vs snapshot): $(cmp -l "$TEST_TMP/ar-dev" "$TEST_TMP/snap-1m" | head -3 | tr '\n' ';') ($(cmp -l "$TEST_TMP/ar-dev" "$TEST_TMP/snap-1m" | wc -l) bytes)"
	fail "autoreset layer not emptied at attach"
fi
"$CC" detach ar || fail "detach ar again"
"$CC" check ar.cow >/dev/null || fail "check ar"
log "ok"

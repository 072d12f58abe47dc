#!/bin/bash
# Device faults (quick tier):
#  1. write errors on the top's device (dm-flakey error_writes swapped in
#     under a live chain): the failing writes return EIO, the device goes
#     "ro" (or "fail") and says so in its status, data acknowledged before
#     the fault still reads back; after the device is fixed the image has
#     no corruption, keeps every flushed write, and activates again (after
#     "cowchain check --repair" if NEEDS_CHECK was persisted);
#  2. read errors in an ancestor (dm-error over one of its data clusters):
#     EIO for reads of that cluster only, never zeros; other data intact;
#  3. out of space: a top on
#     an 8 MiB RAM disk under a 64 MiB disk: first
#     writes past the capacity fail with ENOSPC, status says out_of_space,
#     overwrites still work, nothing is lost; a first write after discards
#     waits for the commit that frees their clusters and succeeds; check
#     clean afterwards.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
modprobe dm-flakey 2>/dev/null || skip "no dm-flakey"
d=$TEST_TMP
pat() { head -c "$2" /dev/zero | tr '\0' "\\$(printf %03o "$1")"; }

# ---- 1. write errors on the top
"$CC" create "$d/root.cow" --size 16M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --length 4M --pattern 0x11 >/dev/null
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
tl=$(loop_attach "$d/top.cow"); rl=$(loop_attach "$d/root.cow" ro)
ts=$(blockdev --getsz "$tl"); n=$(( $(vsize "$d/top.cow") / 512 ))
dm_create cc-ft-dev "0 $ts linear $tl 0"
dm_create cc-ft "0 $n cowchain /dev/mapper/cc-ft-dev 1 $rl -"
pat 0x22 1048576 > "$d/a"
# conv=fsync: fsync() on a block device sends a cache flush (REQ_PREFLUSH);
# sync(1) and blockdev --flushbufs do not
dd if="$d/a" of=/dev/mapper/cc-ft bs=64k seek=16 oflag=direct conv=fsync status=none ||
	fail "write before the fault"
log "fault: error_writes on the top's device"
dmsetup suspend cc-ft-dev
dmsetup load cc-ft-dev --table "0 $ts flakey $tl 0 0 1 1 error_writes" || fail "load flakey"
dmsetup resume cc-ft-dev
wrc=0
dd if="$d/a" of=/dev/mapper/cc-ft bs=64k seek=100 count=4 oflag=direct status=none 2>"$d/err" || wrc=$?
[ "$wrc" -ne 0 ] || fail "a first write onto a failing device succeeded"
grep -q "Input/output error" "$d/err" || fail "the failed write did not report EIO: $(cat "$d/err")"
# A data write error is only EIO (the mode may stay rw); a metadata write
# error switches the device to ro.  A discard dirties metadata without a
# data write; the commit that follows must fail.
blkdiscard -o $((40 * 65536)) -l 65536 /dev/mapper/cc-ft 2>/dev/null || true
dmsetup message cc-ft 0 commit 2>/dev/null || true
dd if=/dev/null of=/dev/mapper/cc-ft conv=fsync status=none 2>/dev/null || true
await_failed cc-ft ""
assert_fails dd if="$d/a" of=/dev/mapper/cc-ft bs=64k seek=16 count=1 oflag=direct status=none
dd if=/dev/mapper/cc-ft of="$d/b" bs=64k skip=16 count=16 iflag=direct status=none ||
	fail "reads fail in read-only mode"
cmp "$d/a" "$d/b" || fail "data acknowledged before the fault reads back wrong"
log "fixing the device, deactivating"
dmsetup suspend cc-ft-dev
dmsetup load cc-ft-dev --table "0 $ts linear $tl 0"
dmsetup resume cc-ft-dev
dm_remove cc-ft
dm_remove cc-ft-dev
"$CC" check "$d/top.cow" > "$d/c.out" 2>&1 || true
grep -q ': corruption: ' "$d/c.out" && { cat "$d/c.out"; fail "corruption after the fault"; }
nc=$(grep -c 'SB_NEEDS_CHECK' "$d/c.out" || true)
log "check after the fault: $(tail -n 1 "$d/c.out"); NEEDS_CHECK persisted: $nc"
if [ "$nc" != 0 ]; then
	rc=0
	"$CC" check --repair "$d/top.cow" > "$d/r.out" 2>&1 || rc=$?
	# 1: corrected (docs/check.md); more: problems left
	[ "$rc" -le 1 ] || { cat "$d/r.out"; fail "check --repair after the fault: exit $rc"; }
fi
dm_create cc-ft "0 $n cowchain $tl 1 $rl -"
dd if=/dev/mapper/cc-ft of="$d/b" bs=64k skip=16 count=16 iflag=direct status=none || fail "read after fix"
cmp "$d/a" "$d/b" || fail "flushed data lost after the fault"
[ "$(mode_of cc-ft)" = rw ] || fail "not rw after the repair"
dm_remove cc-ft

# ---- 2. read errors in an ancestor
log "fault: dm-error over one data cluster of the root"
rs=$(blockdev --getsz "$rl")
dm_create cc-fa "0 $rs linear $rl 0"
dm_create cc-ft "0 $n cowchain $tl 1 /dev/mapper/cc-fa -"
# virtual 2 MiB (root data, not overwritten by the top) -> the root's sector
m=$(dmsetup message cc-ft 0 map 4096) || fail "map message"
# shellcheck disable=SC2086 # split the reply into words
set -- $m
[ "$1" = layer ] || fail "sector 4096 should come from the root, got '$m'"
ps=$3; cs=128	# the root's 64 KiB cluster holding it
ps=$((ps / cs * cs))
dmsetup suspend cc-fa
dmsetup load cc-fa --table "0 $ps linear $rl 0
$ps $cs error
$((ps + cs)) $((rs - ps - cs)) linear $rl $((ps + cs))" || fail "load error table"
dmsetup resume cc-fa
assert_fails dd if=/dev/mapper/cc-ft of="$d/b" bs=4k skip=512 count=1 iflag=direct status=none
echo "$ASSERT_ERR" | grep -q "Input/output error" || fail "unreadable ancestor data: not EIO: $ASSERT_ERR"
dd if=/dev/mapper/cc-ft of="$d/b" bs=64k skip=16 count=16 iflag=direct status=none || fail "top data unreadable"
cmp "$d/a" "$d/b" || fail "top data wrong while the ancestor fails"
dd if=/dev/mapper/cc-ft of="$d/b" bs=64k skip=40 count=1 iflag=direct status=none || fail "other root data unreadable"
pat 0x11 65536 > "$d/p11"	# no /dev/fd in the guest: no <(...)
cmp "$d/p11" "$d/b" || fail "other root data wrong"
log "ancestor read error: EIO for the bad cluster, the rest intact"
dm_remove cc-ft
dm_remove cc-fa

# ---- 3. out of space
log "out of space: a 64 MiB disk on an 8 MiB RAM disk"
brd_setup 1 8
"$CC" create /dev/ram0 --size 64M --force >/dev/null || fail "create on ram0"
"$CC" info /dev/ram0 | grep -E '^capacity' || true
dm_create cc-oos "0 131072 cowchain /dev/ram0 0 -"
pat 0x33 65536 > "$d/c"
ok=0 enospc=0
for ((i = 0; i < 200; i++)); do
	if dd if="$d/c" of=/dev/mapper/cc-oos bs=64k seek=$((i * 3)) oflag=direct status=none 2>"$d/err"; then
		ok=$((ok + 1))
	else
		grep -q "No space left on device" "$d/err" || fail "first write $i failed with: $(cat "$d/err")"
		enospc=$((enospc + 1))
		[ "$enospc" -lt 3 ] || break
	fi
done
log "$ok first writes fitted, then ENOSPC; status: $(dmsetup status cc-oos)"
[ "$enospc" -gt 0 ] || fail "never ran out of space"
[ "$(mode_of cc-oos)" = out_of_space ] || fail "mode '$(mode_of cc-oos)', expected out_of_space"
dd if="$d/a" of=/dev/mapper/cc-oos bs=64k seek=0 count=1 oflag=direct conv=fsync status=none ||
	fail "overwrite refused"
# clusters a discard frees are free after the next commit: a first write
# that finds none free must wait for that commit, not fail
# (the target offers discard even where the top's device does not, as
# brd on 6.1: io_hints)
dmax=$(cat "/sys/block/$(dmsetup info -c --noheadings -o blkdevname cc-oos)/queue/discard_max_bytes") ||
	fail "no discard_max_bytes for cc-oos"
[ "$dmax" != 0 ] || fail "the target offers no discard over a top that has none (io_hints)"
for ((i = 1; i <= 4; i++)); do
	blkdiscard -o $((i * 3 * 65536)) -l 65536 /dev/mapper/cc-oos || fail "discard first write $i"
done
dd if="$d/c" of=/dev/mapper/cc-oos bs=64k seek=1 oflag=direct status=none 2>"$d/err" ||
	fail "a first write right after discards failed ($(cat "$d/err")): the freed clusters were not reused"
[ "$(mode_of cc-oos)" = rw ] || fail "mode '$(mode_of cc-oos)' after clusters were freed, expected rw"
log "a first write after four discards reused a freed cluster; status: $(dmsetup status cc-oos)"
dm_remove cc-oos
"$CC" check /dev/ram0 || fail "check after out of space"
"$CC" read /dev/ram0 --offset 65536 --length 65536 --output "$d/r" >/dev/null ||
	fail "read back the reuse"
cmp -s "$d/c" "$d/r" || fail "the first write into a reused cluster was lost"
# writes 1..4 were discarded above
for ((i = 5; i < ok; i++)); do
	"$CC" read /dev/ram0 --offset $((i * 3 * 65536)) --length 65536 --output "$d/r" >/dev/null ||
		fail "read back $i"
	cmp -s "$d/c" "$d/r" || fail "first write $i lost after out of space"
done
log "ok"

#!/bin/bash
# Attach, merge and snapshot while an offline merge runs (issue 7), with a
# real attach (tests/cli/merge-race.sh does the refusals on the host, for
# both merge directions and two children).  The merge (mid into root;
# chain root <- mid <- top) is stopped after its first copy step
# by the tool's test hook COWCHAIN_TEST_MERGE_PAUSE (userspace/cli/cmd_merge.c):
# mid and root are then marked MERGING and locked.  While it waits:
#   - `cowchain attach` of top, and --read-only of mid and root,
#     are refused (status 1) with a message naming the merged file, and
#     leave no loop device on any of the files and no dm device;
#   - a second merge and `snapshot` of mid and root are refused and change
#     no file (sha256 of every file before and after);
#   - a table made by hand over loop devices (past the tool's lock) is
#     refused by the target: "a layer of the chain is being merged".
# Then the merge ends (status 0), no file is locked (flock -n -x), the
# chain is root <- top; attach of top succeeds, the device reads what
# the library read before the merge (sha256), and after detach
# `check --chain` is clean and no loop device is left.
# Part 2, a crash at the merge's later steps (COWCHAIN_TEST_MERGE_PAUSE_AT,
# the merge killed with SIGKILL at its pause), on the same chain made anew:
#   - killed before its first relink: no lock is held, only the MERGING
#     marks refuse; attach of top is refused and the target refuses the
#     table by hand; running the merge again finishes it, and top attaches
#     and reads as before;
#   - killed before it deletes mid: top is already relinked to root, so it
#     attaches and reads as before; the merge run again while it is
#     attached is refused (root is attached) and changes neither mid nor
#     root; after detach it finishes: mid is gone, check is clean.
# Part 3, the merge paused (not killed) before its first relink and before
# it deletes mid, on the chain made anew each time: while it waits, attach
# of top and of root read-only and a second merge are refused with the
# file named and nothing left behind, (before the relink) the target
# refuses the table by hand, and no file changes; let go, the merge ends
# with status 0, nothing is locked, and top attaches and reads as before.
# Part 4, the other order: a merge that starts while an attach sets up.  The
# attach of top is paused by its test hook (COWCHAIN_TEST_ATTACH_PAUSE,
# userspace/cli/cmd_attach.c) with every layer locked, before its loop
# devices and (_AT=loops) after them, before the dm device: the merge of
# mid is refused ("in use"; after the loop devices it may see root
# attached first) and changes no file; let go, the attach
# completes and the device reads as before; after detach the merge runs.
# Killed at its pause after the loop devices, the attach leaves none
# behind (they are autoclear) and the merge runs.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd flock sha256sum

d=$TEST_TMP/img
mkdir -p "$d"
cd "$d"
size=$((16 << 20))
pause=$TEST_TMP/pause
apause=$TEST_TMP/apause
mpid=
apid=
stop_merge() {
	rm -f "$pause" "$apause"
	[ -z "$mpid" ] || wait "$mpid" 2>/dev/null || true
	[ -z "$apid" ] || wait "$apid" 2>/dev/null || true
}
on_exit stop_merge
cc_detach() { "$CC" detach "$1" 2>/dev/null || dm_remove "$1"; }
lib_sum() { "$CC" read "$1" --offset 0 --length "$size" | sha256sum | cut -d' ' -f1; }
files_sum() { sha256sum -- *.cow; }
loops_on() { losetup -a | grep -F "$d/" || true; }
# nothing_left WHAT: no loop device on our files, no dm device "vm"
nothing_left() {
	[ -z "$(loops_on)" ] || fail "$1: left loop devices: $(loops_on)"
	! dm_exists vm || fail "$1: left the device 'vm'"
}
# refused WHAT PATTERN CMD...: status 1, the message, nothing left
refused() {
	local what=$1 pat=$2 rc=0
	shift 2
	ASSERT_ERR=$("$@" 2>&1 >/dev/null) || rc=$?
	assert_eq 1 "$rc" "$what: exit status ($ASSERT_ERR)"
	echo "$ASSERT_ERR" | grep -Eq "$pat" || fail "$what: message '$ASSERT_ERR' does not match '$pat'"
	nothing_left "$what"
	log "$what: refused: $ASSERT_ERR"
}

# three_layers: root <- mid <- top in the current directory; sets want
three_layers() {
	log "chain root <- mid <- top"
	"$CC" create root.cow --size 16M >/dev/null || fail "create root"
	"$CC" write root.cow --offset 0 --pattern 0x11 --length 2M >/dev/null || fail "write root"
	"$CC" create mid.cow --parent root.cow >/dev/null || fail "create mid"
	"$CC" write mid.cow --offset 1M --pattern 0x21 --length 2M >/dev/null || fail "write mid"
	"$CC" write mid.cow --offset 10M --zero --length 2M >/dev/null || fail "zero mid"
	"$CC" create top.cow --parent mid.cow >/dev/null || fail "create top"
	"$CC" write top.cow --offset 2M --pattern 0x31 --length 512K >/dev/null || fail "write top"
	want=$(lib_sum top.cow)
}
# await_pause FILE PID WHAT OUT: the tool PID reached its test hook (FILE
# exists) within 30 s, or fail with its output
await_pause() {
	for ((i = 0; i < 600; i++)); do
		[ -e "$1" ] && return
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	[ -e "$1" ] || fail "$3 did not pause: $(cat "$4")"
}
# pause_merge AT: merge mid into root, stopped at AT (copy, relink, delete)
pause_merge() {
	COWCHAIN_TEST_MERGE_PAUSE=$pause COWCHAIN_TEST_MERGE_PAUSE_AT=$1 \
		"$CC" merge --direction parent --batch 256K mid.cow > "$TEST_TMP/merge.out" 2>&1 &
	mpid=$!
	await_pause "$pause" "$mpid" "the merge (at $1)" "$TEST_TMP/merge.out"
}
# kill_merge: SIGKILL, as a crash would stop it
kill_merge() {
	kill -KILL "$mpid"
	wait "$mpid" 2>/dev/null || true
	mpid=
	rm -f "$pause"
}
# target_refuses WHAT: a table made by hand over loop devices (past the
# tool's checks) is refused by the target, which says why
target_refuses() {
	local f l loops=()
	for f in top mid root; do
		if [ $f = top ]; then l=$(losetup -f --show "$f.cow"); else l=$(losetup -f --show --read-only "$f.cow"); fi ||
			fail "$1: losetup $f.cow"
		loops+=("$l")
	done
	if dmsetup create vm --table "0 $((size / 512)) cowchain ${loops[0]} 2 ${loops[1]} ${loops[2]} -" \
		2> "$TEST_TMP/dm.err"; then
		dm_remove vm
		fail "$1: the target took a merging chain"
	fi
	dmesg | tail -n 20 | grep -q "a layer of the chain is being merged" ||
		fail "$1: the target's refusal does not say why: $(cat "$TEST_TMP/dm.err"); dmesg: $(dmesg | tail -n 5)"
	for l in "${loops[@]}"; do losetup -d "$l" || fail "losetup -d $l"; done
	nothing_left "$1: the table by hand"
}
# let_go WHAT: the paused merge goes on and ends with status 0, mid gone,
# nothing locked
let_go() {
	local rc=0 f
	rm -f "$pause"
	wait "$mpid" || rc=$?
	mpid=
	assert_eq 0 "$rc" "$1: the merge's status ($(cat "$TEST_TMP/merge.out"))"
	for f in *.cow; do
		flock -n -x "$f" true || fail "$1: $f is still locked after the merge"
	done
	[ ! -e mid.cow ] || fail "$1: mid.cow is still there after the merge"
}
# attach_reads WHAT: attach top, it reads $want, detach
attach_reads() {
	local dev
	dev=$("$CC" attach vm top.cow) || fail "$1: attach"
	assert_eq "$want" "$(dd if="$dev" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
		"$1: the device vs the library before the merge"
	"$CC" detach vm || fail "$1: detach"
}

three_layers
log "merge mid into root, paused after its first step"
pause_merge copy
read -r _ ndone total < "$pause"
((ndone > 0 && ndone < total)) || fail "paused after $ndone of $total bytes: not in the middle"
log "paused after $ndone of $total bytes"
before=$(files_sum)
nothing_left "paused"

refused "attach top" "^cowchain: cannot attach 'top\.cow': .*mid\.cow.*merge" "$CC" attach vm top.cow
for f in mid root; do
	refused "attach $f read-only" "^cowchain: cannot attach '$f\.cow': .*$f\.cow.*merge" \
		"$CC" attach vm "$f.cow" --read-only
	refused "snapshot $f" "^cowchain: cannot snapshot '$f\.cow': .*$f\.cow.*(merge|in use)" \
		"$CC" snapshot "$f.cow" "new-$f.cow"
	[ ! -e "new-$f.cow" ] || fail "the refused snapshot of $f left new-$f.cow"
done
refused "second merge" "^cowchain: .*mid\.cow.*(merge|in use)" "$CC" merge --direction parent mid.cow
refused "merge of top" "^cowchain: .*(mid|top)\.cow.*(merge|in use)" "$CC" merge --direction parent top.cow

log "past the tool: the target refuses the merging chain"
target_refuses "paused"
assert_eq "$before" "$(files_sum)" "the files after the refusals"

log "the merge goes on"
let_go "part 1"
"$CC" info top.cow | grep -q "^parent: *root\.cow " || fail "top is not a child of root: $("$CC" info top.cow)"

log "attach after the merge"
on_exit cc_detach vm
attach_reads "after the merge"
"$CC" check --chain top.cow > "$TEST_TMP/check.out" 2>&1 ||
	fail "check --chain top.cow: $(cat "$TEST_TMP/check.out")"
nothing_left "after detach"
log "part 1 ok in ${SECONDS}s"

# ---- part 2: killed before the relink, killed before the delete
d=$TEST_TMP/img2
mkdir -p "$d"
cd "$d"
three_layers
log "merge killed before its first relink"
pause_merge relink
read -r _ ndone total < "$pause"
((ndone == total)) || fail "paused at relink after $ndone of $total bytes"
kill_merge
nothing_left "killed at relink"
before=$(files_sum)
refused "attach top, killed at relink" "^cowchain: cannot attach 'top\.cow': .*mid\.cow.*merge" \
	"$CC" attach vm top.cow
target_refuses "killed at relink"
assert_eq "$before" "$(files_sum)" "the files after the refusals (killed at relink)"
"$CC" merge --direction parent mid.cow > "$TEST_TMP/merge.out" 2>&1 ||
	fail "the merge run again after the kill at relink: $(cat "$TEST_TMP/merge.out")"
[ ! -e mid.cow ] || fail "mid.cow is still there after the merge was run again"
attach_reads "after the merge killed at relink was finished"

rm -f ./*.cow
three_layers
log "merge killed before it deletes mid"
pause_merge delete
kill_merge
"$CC" info top.cow | grep -q "^parent: *root\.cow " ||
	fail "top is not a child of root at the delete: $("$CC" info top.cow)"
dev=$("$CC" attach vm top.cow) || fail "attach top, killed at delete"
assert_eq "$want" "$(dd if="$dev" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
	"the device, killed at delete, vs the library before the merge"
before=$(sha256sum -- mid.cow root.cow)
rc=0
"$CC" merge --direction parent mid.cow > "$TEST_TMP/merge.out" 2>&1 || rc=$?
assert_eq 1 "$rc" "the merge run again while top is attached ($(cat "$TEST_TMP/merge.out"))"
grep -Eq "root\.cow.*is attached" "$TEST_TMP/merge.out" ||
	fail "the refused merge does not name the attached root: $(cat "$TEST_TMP/merge.out")"
assert_eq "$before" "$(sha256sum -- mid.cow root.cow)" "mid and root after the refused merge"
log "merge while top is attached: refused: $(cat "$TEST_TMP/merge.out")"
"$CC" detach vm || fail "detach, killed at delete"
"$CC" merge --direction parent mid.cow > "$TEST_TMP/merge.out" 2>&1 ||
	fail "the merge run again after detach: $(cat "$TEST_TMP/merge.out")"
[ ! -e mid.cow ] || fail "mid.cow is still there after the merge was run again"
attach_reads "after the merge killed at delete was finished"
"$CC" check --chain top.cow > "$TEST_TMP/check.out" 2>&1 ||
	fail "check --chain top.cow (part 2): $(cat "$TEST_TMP/check.out")"
nothing_left "part 2, after detach"
log "part 2 ok in ${SECONDS}s"

# ---- part 3: paused at relink and at delete while the others try
for at in relink delete; do
	d=$TEST_TMP/img3-$at
	mkdir -p "$d"
	cd "$d"
	three_layers
	log "merge paused before its $([ $at = relink ] && echo "first relink" || echo "delete of mid")"
	pause_merge "$at"
	before=$(files_sum)
	refused "attach top, paused at $at" "^cowchain: cannot attach 'top\.cow': .*(mid|root)\.cow.*(merge|in use)" \
		"$CC" attach vm top.cow
	refused "attach root read-only, paused at $at" "^cowchain: cannot attach 'root\.cow': .*root\.cow.*(merge|in use)" \
		"$CC" attach vm root.cow --read-only
	refused "second merge, paused at $at" "^cowchain: .*mid\.cow.*(merge|in use)" \
		"$CC" merge --direction parent mid.cow
	[ $at = relink ] && target_refuses "paused at relink"
	assert_eq "$before" "$(files_sum)" "the files after the refusals (paused at $at)"
	let_go "paused at $at"
	attach_reads "after the merge paused at $at"
	"$CC" check --chain top.cow > "$TEST_TMP/check.out" 2>&1 ||
		fail "check --chain top.cow (paused at $at): $(cat "$TEST_TMP/check.out")"
	nothing_left "part 3 ($at), after detach"
done
log "part 3 ok in ${SECONDS}s"

# ---- part 4: a merge while an attach sets up
for at in locked loops kill; do
	d=$TEST_TMP/img4-$at
	mkdir -p "$d"
	cd "$d"
	three_layers
	log "attach of top paused $([ $at = locked ] && echo "before its loop devices" || echo "after its loop devices")"
	COWCHAIN_TEST_ATTACH_PAUSE=$apause COWCHAIN_TEST_ATTACH_PAUSE_AT=${at/kill/loops} \
		"$CC" attach vm top.cow > "$TEST_TMP/attach.out" 2>&1 &
	apid=$!
	await_pause "$apause" "$apid" "the attach ($at)" "$TEST_TMP/attach.out"
	before=$(files_sum)
	rc=0
	"$CC" merge --direction parent mid.cow > "$TEST_TMP/merge.out" 2>&1 || rc=$?
	assert_eq 1 "$rc" "the merge while the attach sets up ($at): $(cat "$TEST_TMP/merge.out")"
	# the locks refuse it; once the loop devices exist the merge may see
	# them first
	if [ $at = locked ]; then pat="mid\.cow.*in use"; else pat="(mid\.cow.*in use|root\.cow.*is attached)"; fi
	grep -Eq "^cowchain: .*$pat" "$TEST_TMP/merge.out" ||
		fail "the refused merge ($at) does not say why: $(cat "$TEST_TMP/merge.out")"
	assert_eq "$before" "$(files_sum)" "the files after the refused merge ($at)"
	log "merge while the attach sets up ($at): refused: $(cat "$TEST_TMP/merge.out")"
	if [ $at = locked ]; then
		# a second attach of the same top: refused by the first's lock, not
		# left to fail at the target once both have set up
		refused "a second attach of top while the first sets up" \
			"^cowchain: cannot attach 'top\.cow': .*top\.cow.* is locked by another cowchain process" \
			"$CC" attach vm2 top.cow
		! dm_exists vm2 || fail "the refused second attach left the device vm2"
	fi
	if [ $at = kill ]; then
		[ -n "$(loops_on)" ] || fail "no loop device at the attach's pause after them"
		kill -KILL "$apid"
		wait "$apid" 2>/dev/null || true
		apid=
		rm -f "$apause"
		for ((i = 0; i < 50; i++)); do [ -z "$(loops_on)" ] && break; sleep 0.1; done
		nothing_left "the attach killed after its loop devices"
	else
		rm -f "$apause"
		rc=0
		wait "$apid" || rc=$?
		apid=
		assert_eq 0 "$rc" "the attach let go ($at): $(cat "$TEST_TMP/attach.out")"
		assert_eq "$want" "$(dd if=/dev/mapper/vm bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)" \
			"the device attached during the refused merge ($at)"
		"$CC" detach vm || fail "detach ($at)"
	fi
	"$CC" merge --direction parent mid.cow > "$TEST_TMP/merge.out" 2>&1 ||
		fail "the merge after the attach ($at): $(cat "$TEST_TMP/merge.out")"
	[ ! -e mid.cow ] || fail "mid.cow is still there after the merge ($at)"
	attach_reads "after the merge that followed the attach ($at)"
	nothing_left "part 4 ($at), after detach"
done
log "ok in ${SECONDS}s"

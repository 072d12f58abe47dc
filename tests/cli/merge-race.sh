#!/bin/bash
# Commands that start while an offline merge runs (issue 7), on the host:
# no kernel is needed, because every refusal must come before any loop or
# device-mapper work.  The merge is stopped by the tool's test hook
# (COWCHAIN_TEST_MERGE_PAUSE, COWCHAIN_TEST_MERGE_PAUSE_AT,
# userspace/cli/cmd_merge.c) at one of three points, for a merge into the
# parent (mid into root, chain root <- mid <- top, top2) and one into the
# children (mid into top and top2):
#   copy    after its first copy step: its files are marked MERGING and
#           locked;
#   relink  every byte copied, before the first child is relinked (a merge
#           into the children has let go of its children's locks by then:
#           only their MERGING marks refuse the others);
#   delete  every child relinked, before the merged file is deleted.
# At copy and relink, while the merge waits:
#   - `attach` of every leaf, and --read-only of every file the merge
#     changes, is refused (status 1) with a message naming a merged file; it
#     left no loop device on any of the files and no device-mapper device
#     (attach runs as an unprivileged user on the host, so a regression
#     cannot set up a loop device of the host: it would fail differently);
#   - a second merge of the same layer and a merge of the top are refused;
#   - `snapshot` (offline) of every file the merge changes, and `create
#     --parent` of a new child of each, is refused and creates no file;
# At delete the new chain is already whole: every leaf's chain leaves mid
# out, the library reads the same disk from it as before the merge and
# `check --chain` finds no corruption (the parent's journal may still be
# pending: the merge holds it open); a second merge, a snapshot or a new child of
# mid is refused.  At every point none of the chain's files changed
# (sha256) through the refusals.
# The same once the paused merge is killed (SIGKILL, as a crash would stop
# it): only the files' MERGING marks refuse the others then, with no lock
# held; running the merge again finishes it.
# Then the merge finishes (status 0), the chain is the expected one, the
# library reads the same virtual disk as before (sha256 of `cowchain
# read`), `check --chain` is clean and no lock is held (flock -n -x on every
# file).  Last, a merge that starts while an attach sets up (paused by
# its test hook with the layers locked) is refused and changes nothing; once
# the attach has gone on or been killed there, the merge runs.
#
# tests/guest/t-life-merge-race.sh does the same with a real attach.
#
#   tests/cli/merge-race.sh        (COWCHAIN= the tool, default userspace/cowchain)
#
# One "PASS merge-race/..." or "FAIL merge-race/..." line per check.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
COWCHAIN=${COWCHAIN:-$top/userspace/cowchain}
work=$(mktemp -d /tmp/cowchain-merge-race.XXXXXX)
chmod 755 "$work"
mpid=
cleanup() {
	rm -f "$work/pause"
	[ -n "$mpid" ] && wait "$mpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 2
pass=0 fail=0
result() {	# result NAME OK [details...]
	if [ "$2" = 1 ]; then
		pass=$((pass + 1)); echo "PASS merge-race/$1"
	else
		fail=$((fail + 1)); local n=$1; shift 2; echo "FAIL merge-race/$n: $*"
	fi
}
cc() { "$COWCHAIN" "$@"; }
# unprivileged, for attach (see above); files are world-readable
nobody=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi
size=$((64 << 20))
sums() { sha256sum -- *.cow 2>/dev/null; }
lib_sum() { cc read "$1" --offset 0 --length "$size" | sha256sum | cut -d' ' -f1; }
# loops_on: loop devices whose backing file is one of ours
loops_on() {
	local b
	for b in /sys/block/loop*/loop/backing_file; do
		[ -r "$b" ] || continue
		case $(cat "$b") in "$work"/*) echo "${b%/loop/backing_file}" ;; esac
	done
}
dm_left() { command -v dmsetup >/dev/null && dmsetup info race >/dev/null 2>&1; }

# refused WHAT PATTERN CMD...: CMD fails with status 1 and a message
# matching PATTERN, leaves no loop device and no dm device behind
refused() {
	local what=$1 pat=$2 st err
	shift 2
	"$@" > out 2> err; st=$?; err=$(cat err)
	if [ "$st" != 1 ]; then
		result "$what" 0 "status $st (want 1): $err"
	elif ! grep -Eq "$pat" err; then
		result "$what" 0 "message '$err' does not match '$pat'"
	elif [ -n "$(loops_on)" ]; then
		result "$what" 0 "left a loop device: $(loops_on)"
	elif dm_left; then
		result "$what" 0 "left the dm device 'race'"
	else
		result "$what" 1
	fi
}

# race DIR AT HOW MERGE-ARGS...: build the chain, pause a merge (DIR parent
# or children) at AT (copy, relink, delete), try the others while it waits
# (HOW wait) or once it is killed there (HOW kill), then let it finish or
# run it again; the merge changes mid and root (into the parent), or mid
# and its children
race() {
	local dir=$1 at=$2 how=$3 name before sum0 sum2 st info f leaf changed=(mid root)
	shift 3
	name=$dir-$at
	[ "$how" = kill ] && name=$name-killed
	[ "$dir" = children ] && changed=(mid top top2)
	rm -f ./*.cow
	if ! { cc create root.cow --size 64M &&
		cc write root.cow --offset 0 --pattern 0x11 --length 8M &&
		cc write root.cow --offset 40M --pattern 0x12 --length 4M &&
		cc create mid.cow --parent root.cow &&
		cc write mid.cow --offset 1M --pattern 0x21 --length 6M &&
		cc write mid.cow --offset 30M --zero --length 12M &&
		cc create top.cow --parent mid.cow &&
		cc write top.cow --offset 2M --pattern 0x31 --length 1M &&
		cc create top2.cow --parent mid.cow &&
		cc write top2.cow --offset 5M --pattern 0x41 --length 512K; } > /dev/null; then
		result "$name/setup" 0 "cannot build the chain"
		return
	fi
	chmod 666 ./*.cow	# attach runs unprivileged and opens a leaf read-write
	sum0=$(lib_sum top.cow)
	sum2=$(lib_sum top2.cow)

	rm -f pause
	COWCHAIN_TEST_MERGE_PAUSE=$work/pause COWCHAIN_TEST_MERGE_PAUSE_AT=$at \
		"$COWCHAIN" merge --batch 256K "$@" > merge.out 2>&1 &	# not cc: kill must reach the tool
	mpid=$!
	for ((i = 0; i < 3000; i++)); do [ -e pause ] && break; sleep 0.01; done
	if [ ! -e pause ]; then
		result "$name/paused" 0 "the merge did not reach its pause: $(cat merge.out)"
		wait "$mpid"; mpid=
		return
	fi
	read -r _ ndone total < pause
	if { [ "$at" = copy ] && ((ndone > 0 && ndone < total)); } ||
		{ [ "$at" != copy ] && ((ndone > 0 && ndone == total)); }; then
		result "$name/paused" 1
	else
		result "$name/paused" 0 "paused at $at after $ndone of $total bytes"
	fi
	if [ "$how" = kill ]; then
		kill -KILL "$mpid"; wait "$mpid" 2>/dev/null; mpid=
		rm -f pause
	fi
	before=$(sums)
	info=$(cc info mid.cow) || true
	if echo "$info" | grep -qi merg; then
		result "$name/marked" 1
	else
		result "$name/marked" 0 "mid.cow does not say it is merging: $info"
	fi

	if [ "$at" != delete ]; then
		# the leaves read-write, every file the merge changes read-only
		for f in top top2; do
			refused "$name/attach-$f" "^cowchain: cannot attach '$f\.cow': .*(mid|$f)\.cow.*merge" \
				"${nobody[@]}" "$COWCHAIN" attach race "$f.cow"
		done
		for f in "${changed[@]}"; do
			refused "$name/attach-$f-ro" "^cowchain: cannot attach '$f\.cow': .*(mid|$f)\.cow.*merge" \
				"${nobody[@]}" "$COWCHAIN" attach race "$f.cow" --read-only
		done
		refused "$name/merge-top" "^cowchain: .*(mid|top)\.cow.*(merge|in use)" \
			"$COWCHAIN" merge --direction parent top.cow
	else
		# the new chain is whole before mid is deleted
		for leaf in top top2; do
			if cc info --chain "$leaf.cow" > info.out 2>&1 && ! grep -q 'mid\.cow' info.out; then
				result "$name/chain-$leaf" 1
			else
				result "$name/chain-$leaf" 0 "$(cat info.out)"
			fi
			# no corruption; the parent's journal may be pending (harmless):
			# the merge still holds it open
			cc check --chain "$leaf.cow" > check.out 2>&1; st=$?
			if { [ "$st" = 0 ] || [ "$st" = 4 ]; } && ! grep -q ': corruption: ' check.out &&
				grep -q "^$leaf\.cow: \(clean\|0 corruption\)" check.out; then
				result "$name/check-$leaf" 1
			else
				result "$name/check-$leaf" 0 "$(cat check.out)"
			fi
		done
		if [ "$(lib_sum top.cow)" = "$sum0" ] && [ "$(lib_sum top2.cow)" = "$sum2" ]; then
			result "$name/same-disk-paused" 1
		else
			result "$name/same-disk-paused" 0 "the relinked leaves read another disk"
		fi
		changed=(mid)
	fi
	# (once killed, merging again is how the merge is finished)
	[ "$how" = wait ] && refused "$name/merge-again" "^cowchain: .*mid\.cow.*(merge|in use)" \
		"$COWCHAIN" merge "$@"
	for f in "${changed[@]}"; do
		refused "$name/snapshot-$f" "^cowchain: cannot snapshot '$f\.cow': .*$f\.cow.*(merge|in use)" \
			"$COWCHAIN" snapshot "$f.cow" "new-$f.cow"
		if [ -e "new-$f.cow" ]; then
			result "$name/snapshot-$f-nofile" 0 "the refused snapshot left new-$f.cow"
			rm -f "new-$f.cow"
		fi
		refused "$name/child-$f" "^cowchain: .*$f\.cow.*(merge|in use)" \
			"$COWCHAIN" create "child-$f.cow" --parent "$f.cow"
		if [ -e "child-$f.cow" ]; then
			result "$name/child-$f-nofile" 0 "the refused create left child-$f.cow"
			rm -f "child-$f.cow"
		fi
	done
	if [ "$before" = "$(sums)" ]; then
		result "$name/untouched" 1
	else
		result "$name/untouched" 0 "the refused commands changed a file"
	fi

	if [ "$how" = wait ]; then
		rm -f pause
		wait "$mpid"; st=$?; mpid=
	else
		cc merge --batch 256K "$@" > merge.out 2>&1; st=$?
	fi
	if [ "$st" = 0 ]; then
		result "$name/merge-done" 1
	else
		result "$name/merge-done" 0 "status $st: $(cat merge.out)"
		return
	fi
	if [ ! -e mid.cow ] && [ -e root.cow ] && [ -e top.cow ] && [ -e top2.cow ]; then
		result "$name/chain" 1
	else
		result "$name/chain" 0 "files left: $(echo ./*.cow)"
	fi
	if [ "$(lib_sum top.cow)" = "$sum0" ] && [ "$(lib_sum top2.cow)" = "$sum2" ]; then
		result "$name/same-disk" 1
	else
		result "$name/same-disk" 0 "the library reads another disk after the merge"
	fi
	for f in top.cow top2.cow; do
		if cc check --chain "$f" > check.out 2>&1; then
			result "$name/check-$f" 1
		else
			result "$name/check-$f" 0 "$(cat check.out)"
		fi
	done
	for f in ./*.cow; do
		if ! flock -n -x "$f" true; then
			result "$name/unlocked" 0 "$f is still locked"
			return
		fi
	done
	result "$name/unlocked" 1
}

for at in copy relink delete; do
	for how in wait kill; do
		race parent "$at" "$how" --direction parent mid.cow
		race children "$at" "$how" --into-children mid.cow
	done
done

# a merge that starts while an attach sets up: the attach paused by its
# test hook (COWCHAIN_TEST_ATTACH_PAUSE, cli/cmd_attach.c) with every layer
# locked, before any loop device; the merge of b must be refused and change
# nothing; once the attach has gone on (and, unprivileged, failed at its
# loop devices) or been killed there, the same merge runs
attach_race() {	# attach_race HOW (go or kill)
	local how=$1 apid st before
	rm -f ./*.cow
	if ! { cc create a.cow --size 16M && cc write a.cow --offset 0 --pattern 1 --length 1M &&
		cc create b.cow --parent a.cow && cc write b.cow --offset 0 --pattern 2 --length 64K &&
		cc create c.cow --parent b.cow; } > /dev/null; then
		result "attach-$how/setup" 0 "cannot build the chain"
		return
	fi
	chmod 666 ./*.cow
	mkdir -p -m 777 pauses
	rm -f pauses/attach
	COWCHAIN_TEST_ATTACH_PAUSE=$work/pauses/attach "${nobody[@]}" "$COWCHAIN" attach race c.cow \
		> attach.out 2>&1 &
	apid=$!
	for ((i = 0; i < 3000; i++)); do [ -e pauses/attach ] && break; sleep 0.01; done
	if [ ! -e pauses/attach ]; then
		result "attach-$how/paused" 0 "the attach did not reach its pause: $(cat attach.out)"
		wait "$apid"
		return
	fi
	result "attach-$how/paused" 1
	before=$(sums)
	refused "attach-$how/merge-refused" "^cowchain: .*b\.cow.*in use" \
		"$COWCHAIN" merge --direction parent b.cow
	# a second attach of the same top is refused by the first's lock
	refused "attach-$how/second-attach" "^cowchain: cannot attach 'c\.cow': .*c\.cow.* is locked by another" \
		"${nobody[@]}" "$COWCHAIN" attach race2 c.cow
	if [ "$(sums)" = "$before" ]; then
		result "attach-$how/unchanged" 1
	else
		result "attach-$how/unchanged" 0 "a file changed while the merge was refused"
	fi
	if [ "$how" = kill ]; then
		kill -KILL "$apid"
		wait "$apid" 2>/dev/null
	else
		rm -f pauses/attach
		wait "$apid"; st=$?
		# unprivileged on the host it cannot set up loop devices: any status
		# but a crash, and nothing left behind
		if [ "$st" -ge 128 ]; then
			result "attach-$how/attach-ended" 0 "attach ended by signal (status $st): $(cat attach.out)"
		elif [ -n "$(loops_on)" ] || dm_left; then
			result "attach-$how/attach-ended" 0 "attach left a device behind: $(loops_on)"
		else
			result "attach-$how/attach-ended" 1
		fi
	fi
	rm -f pauses/attach
	if cc merge --direction parent b.cow > merge.out 2>&1 && [ ! -e b.cow ]; then
		result "attach-$how/merge-after" 1
	else
		result "attach-$how/merge-after" 0 "the merge after the attach failed: $(cat merge.out)"
	fi
}
attach_race go
attach_race kill

echo "merge-race: $pass passed, $fail failed"
[ "$fail" = 0 ]

#!/bin/bash
# One replay point: run by replay-log --exec with CC_POINT and CC_MARK set.
# Copies the replayed image ($CP_CUR) to $CP_WORK and checks, in order:
#  1. cowchain check: no corruption (leaks allowed, counted);
#  2. the chain activates (dmsetup create) over the copy;
#  3. block mode: every sector reads as at the last mark or the next one
#     (crashload verify); fio mode: every fio job whose data the last mark
#     made durable and no later round touched verifies (fio --verify_only,
#     fio-round.sh); fs mode: fsck is clean after a mount (journal
#     replay) and every file synced before the last mark that the next
#     round left alone reads back exactly;
#  4. after deactivation, cowchain check again finds no corruption.
# Appends "point mark harmless_before corruption_after" to $CP_STATS.
# Environment: CP_CUR CP_WORK CP_BASEDEV CP_SECTORS CP_SNAP CP_STATS CP_CC
#   CP_LOAD CP_MODE (block|fio|ext4|xfs) CP_NAME (dm name); fio mode:
#   CP_ROUNDS CP_MIB CP_SEED (powercut_run's)
set -uo pipefail
SECONDS=0
if [ -n "${CP_TRACE:-}" ]; then	# step by step, with times, into CP_TRACE
	exec 2>>"$CP_TRACE"; PS4='+ $SECONDS '; set -x
fi
p=$CC_POINT
mark=${CC_MARK:-}
bad() { echo "check-point: point $p (mark '${mark}'): $*" >&2; exit 1; }

cp --sparse=always "$CP_CUR" "$CP_WORK" || bad "copy failed"
corr() { # corr FILE: "corruption harmless" (finding lines; "? ?" if check could not run)
	local rc=0
	"$CP_CC" check "$1" > "$CP_WORK.json" 2>&1 || rc=$?
	if [ "$rc" -ge 8 ]; then echo "? ?"; return; fi
	echo "$(grep -c ': corruption: ' "$CP_WORK.json") $(grep -c ': harmless: ' "$CP_WORK.json")"
}
read -r c1 h1 <<< "$(corr "$CP_WORK")"
[ "$c1" = 0 ] || { cat "$CP_WORK.json" >&2; bad "cowchain check finds corruption in the replayed image"; }

loop=$(losetup -f --show "$CP_WORK") || bad "losetup"
anc=0; [ -z "${CP_BASEDEV:-}" ] || anc="1 $CP_BASEDEV"
table="0 $CP_SECTORS cowchain $loop $anc -"
if ! dmsetup create "$CP_NAME" --table "$table" 2>"$CP_WORK.err"; then
	cat "$CP_WORK.err" >&2; dmesg | tail -n 5 >&2
	losetup -d "$loop"; bad "activation refused: $table"
fi
dev=/dev/mapper/$CP_NAME
rc=0
case $CP_MODE in
block)
	"$CP_LOAD" verify --dev "$dev" --snap "$CP_SNAP" --mark "$mark" > "$CP_WORK.v" 2>&1 || rc=1
	;;
fio)
	# shellcheck source=tests/crash/fio-round.sh
	. "$(dirname "$0")/fio-round.sh"
	: > "$CP_WORK.v"
	k=0; [ -z "$mark" ] || k=${mark#f}
	[ "$mark" != dm-log-writes-end ] || k=$CP_ROUNDS
	n=0
	while read -r r h; do
		fio_job "$CP_WORK.fio" "$dev" "$r" "$h" "$CP_ROUNDS" "$CP_MIB" "$CP_SEED"
		fio "$CP_WORK.fio" --verify_only --output="$CP_WORK.fo" > /dev/null 2> "$CP_WORK.fe" ||
			{ { echo "round $r job $h does not verify:"; cat "$CP_WORK.fe" "$CP_WORK.fo"; } >> "$CP_WORK.v"; rc=1; }
		n=$((n + 1))
	done < <(fio_durable "$k" "$CP_ROUNDS")
	echo "fio jobs verified: $n" >> "$CP_WORK.v"
	;;
ext4|xfs)
	m=$CP_WORK.mnt; mkdir -p "$m"
	k=0; [ -z "$mark" ] || k=${mark#f}
	# shellcheck disable=SC2012 # the names are f<number>, ours
	[ "$mark" != dm-log-writes-end ] || k=$(ls "$CP_SNAP" | sed -n 's/^f//p' | sort -n | tail -n 1)
	if mount -t "$CP_MODE" "$dev" "$m" 2>"$CP_WORK.v"; then
		if [ -f "$CP_SNAP/f$k" ]; then
			# files synced by mark k and unchanged by round k+1
			if [ -f "$CP_SNAP/f$((k + 1))" ]; then
				sort "$CP_SNAP/f$k" "$CP_SNAP/f$((k + 1))" | uniq -d > "$CP_WORK.keep"
			else
				cp "$CP_SNAP/f$k" "$CP_WORK.keep"
			fi
			if [ -s "$CP_WORK.keep" ]; then	# md5sum -c refuses an empty list
				(cd "$m" && md5sum --quiet -c "$CP_WORK.keep") >> "$CP_WORK.v" 2>&1 || rc=1
			fi
			echo "files checked: $(wc -l < "$CP_WORK.keep")" >> "$CP_WORK.v"
		fi
		umount "$m" || rc=1
	else
		echo "mount failed" >> "$CP_WORK.v"; rc=1
	fi
	if [ "$CP_MODE" = ext4 ]; then
		e2fsck -fn "$dev" >> "$CP_WORK.v" 2>&1 || { echo "e2fsck: exit $?" >> "$CP_WORK.v"; rc=1; }
	else
		xfs_repair -n "$dev" >> "$CP_WORK.v" 2>&1 || { echo "xfs_repair -n: exit $?" >> "$CP_WORK.v"; rc=1; }
	fi
	;;
esac
dmsetup remove "$CP_NAME" || rc=1
losetup -d "$loop"
[ "$rc" -eq 0 ] || { cat "$CP_WORK.v" >&2; bad "the data check failed"; }
read -r c2 _ <<< "$(corr "$CP_WORK")"
[ "$c2" = 0 ] || { cat "$CP_WORK.json" >&2; bad "cowchain check finds corruption after the target recovered"; }
echo "$p ${mark:--} $h1 $c2" >> "$CP_STATS"
echo "check-point: $p ${CC_FLAGS:-start} mark ${mark:--}: held (leaks: $h1; ${SECONDS}s; $(tail -n 1 "$CP_WORK.v" 2>/dev/null))" >&2
exit 0

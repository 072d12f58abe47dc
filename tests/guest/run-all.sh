#!/bin/bash
# Run the guest tests; inside the guest only (scripts/vm-run.sh).
#
#   tests/guest/run-all.sh [NAME...]     # all t-*.sh, or the named ones
#
# Loads build/kmod/$(uname -r)/dm-cowchain.ko, runs each tests/guest/t-*.sh
# (exit 0 pass, 77 skip, else fail) and unloads the module; loading and
# unloading count as tests.  A test also fails if it leaves a device mapper
# device behind or if the kernel logs a problem while it runs.  Prints one
# "PASS|FAIL|SKIP name seconds" line per test; writes the same lines to
# $COWCHAIN_OUT/results, each test's output to $COWCHAIN_OUT/logs/NAME.log
# and "passed N failed N skipped N" to $COWCHAIN_OUT/counts.
#
# COWCHAIN_TEST_TIMEOUT: seconds per test (default 600).  A test that needs
# more declares it in a line "# test-timeout: SECONDS" of its own; the larger
# of the two applies.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${COWCHAIN_OUT:-/tmp/cowchain-out}
kver=$(uname -r)
ko="$top/build/kmod/$kver/dm-cowchain.ko"
export DM_DISABLE_UDEV=1

[ "$(id -u)" -eq 0 ] || { echo "run-all: must run as root, in the guest" >&2; exit 2; }
mkdir -p "$out/logs"
: > "$out/results"
passed=0 failed=0 skipped=0

bad_dmesg='(^|[^A-Za-z])BUG([^A-Za-z]|$)|WARNING:|Oops|general protection|list_add corruption|list_del corruption|blocked for more than|soft lockup'

result() {  # result PASS|FAIL|SKIP NAME SECONDS [WHY]
	echo "$1 $2 ${3}s${4:+ ($4)}"
	echo "$1 $2" >> "$out/results"
	case $1 in
	PASS) passed=$((passed + 1)) ;;
	FAIL) failed=$((failed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	esac
}
finish() {
	echo "passed $passed failed $failed skipped $skipped" > "$out/counts"
	echo "run-all: $kver: $passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}

# ---- load: dm-mod and whatever else the module depends on, then insmod
if [ -d /sys/module/dm_cowchain ]; then
	rmmod dm-cowchain 2>/dev/null
fi
if [ ! -f "$ko" ]; then
	result FAIL module-insmod 0 "$ko missing: run make first"
	finish
fi
for dep in dm-mod $(modinfo -F depends "$ko" | tr , ' '); do
	modprobe "$dep" || { result FAIL module-insmod 0 "modprobe $dep failed"; finish; }
done
if ! insmod "$ko" > "$out/logs/module-insmod.log" 2>&1; then
	cat "$out/logs/module-insmod.log"
	result FAIL module-insmod 0 "insmod failed"
	finish
fi
result PASS module-insmod 0

# ---- tests
if [ $# -gt 0 ]; then
	tests=()
	for n; do tests+=("$here/${n%.sh}.sh"); done
else
	tests=("$here"/t-*.sh)
fi
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	log="$out/logs/$name.log"
	if [ ! -f "$t" ]; then
		result FAIL "$name" 0 "no such test"
		continue
	fi
	echo "cowchain-test: start $name" > /dev/kmsg
	mark=$(dmesg | wc -l)
	start=$SECONDS
	rc=0
	tmo=${COWCHAIN_TEST_TIMEOUT:-600}
	own=$(sed -n 's/^# test-timeout: \([0-9][0-9]*\)$/\1/p' "$t" | head -n 1)
	[ -z "$own" ] || [ "$own" -le "$tmo" ] || tmo=$own
	timeout -k 10 "$tmo" bash "$t" > "$log" 2>&1 || rc=$?
	secs=$((SECONDS - start))
	echo "cowchain-test: end $name status $rc" > /dev/kmsg
	why=
	if [ "$rc" -eq 124 ]; then
		why="timed out after ${tmo}s"
	elif [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		why="exit $rc"
	fi
	left=$(dmsetup ls 2>/dev/null | grep -v '^No devices found' || true)
	if [ -n "$left" ]; then
		why="${why:+$why, }left devices behind: $(echo "$left" | awk '{print $1}' | tr '\n' ' ')"
		dmsetup remove_all >/dev/null 2>&1
	fi
	if dmesg | tail -n +"$((mark + 1))" | grep -Eq "$bad_dmesg"; then
		why="${why:+$why, }kernel problem in dmesg"
	fi
	if [ -n "$why" ]; then
		sed 's/^/    | /' "$log"
		result FAIL "$name" "$secs" "$why"
	elif [ "$rc" -eq 77 ]; then
		result SKIP "$name" "$secs" "$(tail -n 1 "$log")"
	else
		result PASS "$name" "$secs"
	fi
done

# ---- unload
if rmmod dm-cowchain > "$out/logs/module-rmmod.log" 2>&1; then
	result PASS module-rmmod 0
else
	cat "$out/logs/module-rmmod.log"
	result FAIL module-rmmod 0 "rmmod failed"
fi
finish

#!/bin/bash
# Everything "make check" runs, on the host:
#
#   tests/run-check.sh [--no-unit] [KVER...]    # default: every installed kernel
#
# Builds come first and count: a userspace or module build that fails is a
# failure (and that kernel's guest tests do not run), not the end of the run.
#
# 1. The userspace unit tests, "make -C userspace check", when that target
#    exists.  Its results are counted from its output: "PASS name"/"FAIL name"
#    lines, TAP "ok"/"not ok" lines and cmocka's "[  PASSED  ] N test(s)" /
#    "[  FAILED  ] N test(s)" summaries.  A failing exit with no failure
#    counted is one failure; a clean exit with nothing counted is one pass.
# 2. tests/guest/run-all.sh in a guest on each kernel (scripts/vm-run.sh),
#    output in build/check/KVER/.  A guest that times out, crashes or logs a
#    kernel problem counts as a failure.
#
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
# COWCHAIN_CHECK_TIMEOUT: seconds per guest (default 3000; the two guests
# side by side took 1436-1454 s each on a quiet host and 1833-1894 s beside
# a benchmark guest, 2026-11-27, before t-rel-pressure added ~3 minutes).
# COWCHAIN_CHECK_JOBS: guests run at once (default 2: on 2 host CPUs two TCG
# guests side by side take about 1.5x as long each, so 6.1 and 6.12 together
# finish in ~21 minutes instead of ~28 one after the other).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
unit=1
if [ "${1:-}" = --no-unit ]; then unit=0; shift; fi
if [ $# -gt 0 ]; then kernels=("$@"); else mapfile -t kernels < <(scripts/kernels.sh); fi

passed=0 failed=0 skipped=0
failures=()
fail_one() { failed=$((failed + 1)); failures+=("$1"); }
start=$SECONDS
jobs=${COWCHAIN_CHECK_JOBS:-2}

# ---- userspace unit tests
if [ "$unit" -eq 1 ]; then
	if [ -f userspace/Makefile ] && ! make -C userspace; then
		fail_one "userspace: the build failed"
	elif [ -f userspace/Makefile ] && grep -q "^check:" userspace/Makefile; then
		echo "== userspace unit tests"
		log="$top/build/check/unit.log"
		mkdir -p "$(dirname "$log")"
		rc=0
		make -C userspace check 2>&1 | tee "$log" || rc=$?
		counts=$(sed 's/\r$//' "$log" | awk '
			/^PASS /          { p++ }
			/^FAIL /          { f++ }
			/^ok [0-9]/       { p++ }
			/^not ok [0-9]/   { f++ }
			/^\[  PASSED  \] [0-9]+ test/ { p += $4 }
			/^\[  FAILED  \] [0-9]+ test/ { f += $4 }
			END { print p + 0, f + 0 }')
		read -r p f <<< "$counts"
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			fail_one "userspace: make check exited $rc"
		elif [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
			p=1
		fi
		passed=$((passed + p))
		for ((i = 0; i < f; i++)); do fail_one "userspace unit test (see $log)"; done
	else
		echo "== userspace unit tests: no 'check' target in userspace/Makefile yet, skipped"
	fi
fi

# ---- guest tests: module builds first, then up to $jobs guests at once
[ ${#kernels[@]} -gt 0 ] || fail_one "no kernel with headers installed (scripts/install-deps.sh)"
out="$top/build/check"
mkdir -p "$out"
ready=()
for k in "${kernels[@]}"; do
	if make -s -C "$top" modules KVER="$k"; then
		ready+=("$k")
	else
		fail_one "$k: the module build failed (build/kmod/$k/build.log)"
	fi
done
# guest KVER: one guest run; its output, prefixed with the kernel, live on
# stdout and whole in build/check/KVER.log; its exit status in KVER.rc.
guest() {
	local rc
	scripts/vm-run.sh --kernel "$1" --out "$out" --timeout "${COWCHAIN_CHECK_TIMEOUT:-3000}" \
		-- tests/guest/run-all.sh 2>&1 | tee "$out/$1.log" | sed -u "s/^/[${1%%-*}] /"
	rc=${PIPESTATUS[0]}
	echo "$rc" > "$out/$1.rc"
}
running=0
for k in "${ready[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
	echo "== guest tests on $k"
	rm -f "$out/$k.rc"
	guest "$k" &
	running=$((running + 1))
done
wait
for k in "${ready[@]}"; do
	rc=$(cat "$out/$k.rc" 2>/dev/null || echo 126)
	res="$out/$k/results"
	nfail=0
	if [ -f "$res" ]; then
		while read -r what name; do
			case $what in
			PASS) passed=$((passed + 1)) ;;
			SKIP) skipped=$((skipped + 1)) ;;
			FAIL) fail_one "$k: $name (log: $out/$k/logs/$name.log)"; nfail=$((nfail + 1)) ;;
			esac
		done < "$res"
	fi
	case $rc in
	0) ;;
	124) fail_one "$k: guest timed out (console: $out/$k/console.log)" ;;
	125) fail_one "$k: kernel problem in dmesg ($out/$k/dmesg)" ;;
	126) fail_one "$k: guest died without a result (console: $out/$k/console.log)" ;;
	*) [ "$nfail" -gt 0 ] || fail_one "$k: run-all.sh exited $rc (console: $out/$k/console.log)" ;;
	esac
done

echo "=="
for f in "${failures[@]}"; do echo "FAILED: $f"; done
[ "$skipped" -eq 0 ] || echo "($skipped skipped)"
echo "check took $((SECONDS - start))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

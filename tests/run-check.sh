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
# COWCHAIN_CHECK_TIMEOUT: seconds per guest (default 2400: the full guest
# tier takes 15-25 minutes per kernel under TCG with the debug options on).
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

# ---- userspace unit tests
if [ "$unit" -eq 1 ]; then
	if [ -f userspace/Makefile ] && ! make -C userspace; then
		fail_one "userspace: the build failed"
	elif [ -f userspace/Makefile ] && make -s -C userspace -n check >/dev/null 2>&1; then
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

# ---- guest tests, one kernel after the other
[ ${#kernels[@]} -gt 0 ] || fail_one "no kernel with headers installed (scripts/install-deps.sh)"
for k in "${kernels[@]}"; do
	echo "== guest tests on $k"
	out="$top/build/check"
	if ! make -s -C "$top" modules KVER="$k"; then
		fail_one "$k: the module build failed (build/kmod/$k/build.log)"
		continue
	fi
	rc=0
	scripts/vm-run.sh --kernel "$k" --out "$out" --timeout "${COWCHAIN_CHECK_TIMEOUT:-2400}" \
		-- tests/guest/run-all.sh || rc=$?
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

#!/bin/bash
# The userspace tests beyond the unit tests, run by "make -C userspace check"
# (target check-extra) against the sanitizer build of the tool:
#   tests/images/run.sh   the corrupt-image corpus (docs/check.md)
#   tests/cli/run.sh      the CLI contract battery
#   tests/cli/merge-race.sh  attach, merge, snapshot while a merge runs (paused)
#   tests/crash/torn-run.sh  every metadata write torn at 512-byte boundaries
#   tests/fuzz/run.sh     a short libFuzzer run (skipped visibly without clang)
# Each prints one PASS/FAIL line per test (what tests/run-check.sh counts).
# Ends with "userspace-extra: N passed, N failed"; non-zero on any failure.
#
#   COWCHAIN=path/to/cowchain tests/run-userspace-extra.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
export COWCHAIN=${COWCHAIN:-$here/../userspace/cowchain}
p=0 f=0
for t in images/run.sh cli/run.sh cli/merge-race.sh crash/torn-run.sh fuzz/run.sh; do
	[ -x "$here/$t" ] || continue
	echo "== tests/$t"
	log=$(mktemp)
	"$here/$t" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	p=$((p + $(grep -c '^PASS ' "$log")))
	f=$((f + $(grep -c '^FAIL ' "$log")))
	# A runner that failed without saying what counts once.
	if [ "$rc" != 0 ] && ! grep -q '^FAIL ' "$log"; then f=$((f + 1)); echo "FAIL tests/$t"; fi
	rm -f "$log"
done
echo "userspace-extra: $p passed, $f failed"
[ $f = 0 ]

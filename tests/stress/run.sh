#!/bin/bash
# The long tier, inside the guest (make stress runs it through
# scripts/vm-run.sh on each kernel): the quick tier's reliability tests
# with every point and many more iterations, through tests/guest/run-all.sh
# (same PASS/FAIL lines, logs in $COWCHAIN_OUT/logs).
#
#   tests/stress/run.sh [NAME...]      # default: every tests/stress/s-*.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
names=()
if [ $# -gt 0 ]; then
	for n; do names+=("../stress/${n%.sh}"); done
else
	for t in "$here"/s-*.sh; do names+=("../stress/$(basename "$t" .sh)"); done
fi
export COWCHAIN_TEST_TIMEOUT=${COWCHAIN_TEST_TIMEOUT:-5400}
exec "$here/../guest/run-all.sh" "${names[@]}"

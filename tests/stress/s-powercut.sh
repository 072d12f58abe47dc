#!/bin/bash
# Power cuts, long tier: the block workload over 16 rounds of 96
# operations, replayed to EVERY flush, FUA and mark entry and 200 random
# points (see tests/guest/t-rel-powercut.sh for the criteria).  About 1000
# points of 3 to 6 s each under TCG: longer than run.sh's 5400 s.
# test-timeout: 12600
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc
brd_setup 2 96
powercut_run block 16 96 0 200 48 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

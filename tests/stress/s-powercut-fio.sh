#!/bin/bash
# Power cuts under fio with verify, long tier: 12 rounds over a 48 MiB
# chain, replayed to at most 200 flush, FUA and mark points and 48 random
# ones (see tests/guest/t-rel-powercut-fio.sh for the criteria).  Its late
# points verify up to 12 fio jobs each: more than run.sh's 5400 s beside
# other guests.
# test-timeout: 9000
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc fio
brd_setup 2 192
powercut_run fio 12 0 200 48 48 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

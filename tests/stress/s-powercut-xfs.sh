#!/bin/bash
# Power cuts under xfs, long tier: 10 rounds on a 320 MiB disk (mkfs.xfs's
# minimum), every flush/FUA/mark point and 40 random points; xfs_repair -n
# must be clean at each.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc
require_cmd mkfs.xfs xfs_repair
brd_setup 2 400
powercut_run xfs 10 0 0 40 320 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

#!/bin/bash
# Power cuts under ext4, long tier: 12 rounds, every flush/FUA/mark point
# and 60 random points.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc
require_cmd mkfs.ext4 e2fsck
brd_setup 2 160
powercut_run ext4 12 0 0 60 128 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

#!/bin/bash
# Power cuts under xfs (quick tier): the same file work as
# t-rel-powercut-ext4 on xfs (320 MiB, mkfs.xfs's minimum), a sync and a
# mark per round; replayed to flush/FUA/mark points and random ones: the
# image passes cowchain check and activates, xfs mounts (log recovery),
# every file synced before the last mark (and left alone after) reads back
# exactly, and xfs_repair -n is clean.  The long tier (s-powercut-xfs) does
# every point of 10 rounds.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc mkfs.xfs xfs_repair
brd_setup 2 400
powercut_run xfs 2 0 "${COWCHAIN_REL_POINTS:-4}" "${COWCHAIN_REL_RANDOM:-1}" 320 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

#!/bin/bash
# Power cuts under ext4 (quick tier): file writes, overwrites, deletions,
# hole punching and fstrim on ext4 over a chain of two whose top sits under
# dm-log-writes, a sync and a mark per round; replayed to flush/FUA/mark
# points and random ones: the image passes cowchain check and activates,
# ext4 mounts (journal replay), every file synced before the last mark
# (and left alone after) reads back exactly, and e2fsck -fn is clean.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc mkfs.ext4 e2fsck fstrim
brd_setup 2 96
powercut_run ext4 3 0 "${COWCHAIN_REL_POINTS:-4}" "${COWCHAIN_REL_RANDOM:-1}" 64 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

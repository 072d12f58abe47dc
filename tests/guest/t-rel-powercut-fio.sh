#!/bin/bash
# Power cuts under fio with verify (quick tier): rounds of fio jobs over a
# chain of two whose top sits under dm-log-writes -- first writes, copy-up
# of partial sub-blocks over the parent's data, writes that span clusters,
# overwrites of durable data, write-zeroes and discards of durable data
# before it is written again, fsync every 8 writes and O_DSYNC (FUA) writes,
# each round verified by fio on the live device and marked
# (tests/crash/fio-round.sh) -- replayed to flush/FUA/mark points and
# random ones: the image passes cowchain check and activates, every fio
# job made durable by the last mark and left alone by the next round
# verifies (fio --verify_only), and check is clean after recovery.
# crashload (t-rel-powercut) checks every sector as old or new; this is
# the same cut with fio's own verification.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc fio
brd_setup 2 64
powercut_run fio "${COWCHAIN_REL_ROUNDS:-4}" 0 "${COWCHAIN_REL_POINTS:-5}" "${COWCHAIN_REL_RANDOM:-1}" 16 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

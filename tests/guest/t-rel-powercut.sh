#!/bin/bash
# Power cuts (quick tier): a mixed block workload (first writes, overwrites,
# partial writes, FUA writes, write-zeroes, discards, flushes, 4 threads)
# on a chain of two whose top sits under dm-log-writes; the log is replayed
# to 0, the end, flush/FUA/mark points and random points between, and at
# each one the image passes cowchain check, activates, and reads as at the
# last completed flush (or with the writes after it).  The long tier
# (tests/stress/) replays every point of a longer run.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc
brd_setup 2 32
# mode rounds ops max-points random-points MiB seed
powercut_run block "${COWCHAIN_REL_ROUNDS:-4}" 32 "${COWCHAIN_REL_POINTS:-5}" "${COWCHAIN_REL_RANDOM:-1}" 16 "${COWCHAIN_SEED:-$RANDOM}"
log "ok"

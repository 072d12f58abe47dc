#!/bin/bash
# Torn metadata writes (quick tier): tests/crash/torn.c, linked against the
# library with pwrite wrapped, tears the library's metadata writes
# (superblock, journal transactions, checkpoint home writes) at every
# 512-byte boundary, prefix and suffix, then cuts the power; the chain must
# open, read as at the last completed flush (or the next), check clean but
# for a torn superblock slot, and recover writable.  Every eighth metadata
# write of 3 rounds here; the stress tier tears every one of a longer run.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc pkg-config
[ -f "$TOP/userspace/libcowchain.a" ] || skip "userspace/libcowchain.a not built"
torn_build
"$TORN" "$TEST_TMP" "$CC" --rounds "${COWCHAIN_REL_TORN_ROUNDS:-3}" \
	--stride "${COWCHAIN_REL_TORN_STRIDE:-8}" || fail "torn metadata writes lost data or metadata"
log "ok"

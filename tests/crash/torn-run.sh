#!/bin/bash
# Torn metadata writes (tests/crash/torn.c), on the host: the library's
# every metadata write torn at every 512-byte boundary (prefix and suffix),
# then a power cut; recovery must lose nothing a completed flush covered.
# Pure userspace, so it runs here rather than in the emulated guest.
#
#   TORN=path/to/torn COWCHAIN=path/to/cowchain tests/crash/torn-run.sh
#
# COWCHAIN_REL_TORN_ROUNDS (default 4) and COWCHAIN_REL_TORN_STRIDE
# (default 2: every other metadata write) set the size; make stress runs
# 20 rounds of every write (tests/stress/s-torn.sh).
# Prints "PASS torn" or "FAIL torn".
set -u
here=$(cd "$(dirname "$0")" && pwd)
torn=${TORN:-$here/../../build/crash/torn}
cc=${COWCHAIN:-$here/../../userspace/cowchain}
if [ ! -x "$torn" ] || [ ! -x "$cc" ]; then
	echo "torn-run: $torn or $cc is not built" >&2
	echo "FAIL torn"
	exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if "$torn" "$tmp" "$cc" --rounds "${COWCHAIN_REL_TORN_ROUNDS:-4}" \
	--stride "${COWCHAIN_REL_TORN_STRIDE:-2}"; then
	echo "PASS torn"
else
	echo "FAIL torn"
	exit 1
fi

# shellcheck shell=bash
# Helpers for guest tests (tests/guest/t-*.sh).  Source it first:
#
#   . "$(dirname "$0")/lib.sh"
#
# A test runs as root inside the guest (scripts/vm-run.sh) with
# dm-cowchain loaded by run-all.sh; it exits 0 (pass), 77 (skip) or
# anything else (fail).  Everything it sets up is undone on exit, in reverse
# order, through on_exit; a test must leave no device mapper device behind.

set -euo pipefail

TEST_NAME=$(basename "$0" .sh)
# shellcheck disable=SC2034 # used by the tests
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Scratch space: tmpfs in the guest.
TEST_TMP=$(mktemp -d "/tmp/$TEST_NAME.XXXXXX")
export DM_DISABLE_UDEV=1

_cleanups=()
# on_exit CMD...: run CMD when the test exits, before earlier ones.
on_exit() {
	_cleanups=("$(printf '%q ' "$@")" "${_cleanups[@]}")
}
# umount_if_mounted DIR: for on_exit after a mount the test may have
# undone itself
umount_if_mounted() {
	! mountpoint -q "$1" || umount -l "$1"
}
_run_cleanups() {
	local rc=$? c
	set +e
	for c in "${_cleanups[@]}"; do
		eval "$c" || echo "$TEST_NAME: cleanup failed: $c" >&2
	done
	rm -rf "$TEST_TMP"
	exit "$rc"
}
trap _run_cleanups EXIT

log() { echo "$TEST_NAME: $*"; }
fail() { echo "$TEST_NAME: FAIL: $*" >&2; exit 1; }
skip() { echo "$TEST_NAME: SKIP: $*" >&2; exit 77; }
require_cmd() {
	local c
	for c; do command -v "$c" >/dev/null || skip "$c not installed"; done
}

# assert_eq EXPECTED ACTUAL WHAT
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$1', got '$2'"
}
# assert_ok CMD...: CMD must succeed.
assert_ok() {
	"$@" || fail "command failed (exit $?): $*"
}
# assert_fails CMD...: CMD must fail; its stderr is kept in $ASSERT_ERR.
ASSERT_ERR=
# shellcheck disable=SC2034 # used by the tests
assert_fails() {
	local rc=0
	ASSERT_ERR=$("$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" -ne 0 ] || fail "command succeeded but should have failed: $*"
}

# brd_setup COUNT SIZE_MIB: load brd with COUNT RAM disks of SIZE_MIB each
# (/dev/ram0 ...), removed again on exit.  brd's size is a module parameter,
# so only one brd_setup per test.
brd_setup() {
	local n=$1 mib=$2 i
	if [ -d /sys/module/brd ]; then
		rmmod brd 2>/dev/null || fail "brd is already loaded and busy"
	fi
	modprobe brd rd_nr="$n" rd_size=$((mib * 1024)) max_part=0 ||
		fail "cannot load brd"
	on_exit rmmod brd
	for ((i = 0; i < n; i++)); do
		[ -b "/dev/ram$i" ] || fail "/dev/ram$i did not appear"
	done
}

# dm_create NAME TABLE: create a device, removed on exit.
dm_create() {
	dmsetup create "$1" --table "$2" || fail "dmsetup create $1 '$2' failed"
	on_exit dm_remove "$1"
}
# dm_remove NAME: remove a device if it exists, retrying while it is busy.
dm_remove() {
	local i
	dmsetup info "$1" >/dev/null 2>&1 || return 0
	for i in 1 2 3 4 5; do
		dmsetup remove "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	dmsetup remove "$1"
}
# dm_exists NAME
dm_exists() {
	dmsetup info "$1" >/dev/null 2>&1
}

# size_sectors DEV
size_sectors() {
	blockdev --getsz "$1"
}

# pattern_file PATH MIB: a file of MIB MiB of random data.
pattern_file() {
	head -c $(($2 * 1024 * 1024)) /dev/urandom > "$1"
}

# write_verify DEV FILE [OFFSET_MIB]: write FILE to DEV with O_DIRECT at
# OFFSET_MIB and read it back, comparing.
write_verify() {
	local dev=$1 file=$2 off=${3:-0} mib
	mib=$(( $(stat -c %s "$file") / 1048576 ))
	dd if="$file" of="$dev" bs=1M seek="$off" oflag=direct conv=notrunc status=none ||
		fail "write to $dev failed"
	dd if="$dev" of="$TEST_TMP/readback" bs=1M skip="$off" count="$mib" iflag=direct status=none ||
		fail "read from $dev failed"
	cmp -s "$file" "$TEST_TMP/readback" || fail "$dev: data read back differs from data written"
}

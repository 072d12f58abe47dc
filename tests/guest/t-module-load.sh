#!/bin/bash
# The target is registered, refuses tables it cannot use without leaving a
# device behind, and the harness itself works: dm-linear over brd returns
# what was written.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"

log "cowchain is a registered target"
dmsetup targets | grep -Eq '^cowchain +v[0-9]+\.[0-9]+\.[0-9]+' ||
	fail "dmsetup targets does not list cowchain"

log "bad tables are refused and leave no device"
brd_setup 1 64
for args in "" "bogus" "/dev/nonexistent-cowchain 4096" "/dev/ram0 /dev/ram0 notanumber"; do
	assert_fails dmsetup create cc-bad --table "0 2048 cowchain $args"
	[ -n "$ASSERT_ERR" ] || fail "table '$args': dmsetup failed but said nothing"
	dm_exists cc-bad && { dmsetup remove cc-bad; fail "table '$args': device cc-bad left behind"; }
	[ ! -e /dev/mapper/cc-bad ] || fail "table '$args': /dev/mapper/cc-bad left behind"
done

log "dm-linear over brd reads back what was written"
dm_create cc-linear "0 $(size_sectors /dev/ram0) linear /dev/ram0 0"
assert_eq "$(size_sectors /dev/ram0)" "$(size_sectors /dev/mapper/cc-linear)" "linear size"
pattern_file "$TEST_TMP/pat" 8
write_verify /dev/mapper/cc-linear "$TEST_TMP/pat" 3
cmp -s -n $((8 << 20)) -i 0:$((3 << 20)) "$TEST_TMP/pat" /dev/ram0 ||
	fail "data is not at the right place on /dev/ram0"
log "ok"

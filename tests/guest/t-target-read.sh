#!/bin/bash
# Reads through chains of depth 1, 2, 8 and 64, with data, zero markers and
# partial clusters at every depth, equal the library's reads; dmsetup
# status and table say what they should; a write at each depth reads back
# through the library.  Activation time is logged (make stress: s-depth).
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"

for depth in 1 2 8 64; do
	log "depth $depth"
	d=$TEST_TMP/d$depth
	mkdir -p "$d"
	read -r -a files <<< "$(make_chain "$d" "$depth" 2)"
	table=$(chain_table "${files[@]}")
	t0=$(date +%s%N)
	dm_create cc-read "$table"
	log "depth $depth: activation $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	same_as_library /dev/mapper/cc-read "${files[0]}" "depth $depth"
	st=$(dmsetup status cc-read)
	# shellcheck disable=SC2086 # split into fields on purpose
	set -- $st
	assert_eq cowchain "$3" "status target"
	assert_eq rw "$4" "status mode"
	assert_eq "$depth" "$5" "status depth"
	tbl=$(dmsetup table cc-read)
	dmsetup reload cc-read --table "$tbl" || fail "table does not round-trip: $tbl"
	dmsetup resume cc-read || fail "resume after reload"
	same_as_library /dev/mapper/cc-read "${files[0]}" "depth $depth after reload"
	# a write at this depth (first writes over data of every layer) reads
	# back through the library once the device is gone
	write_removed_library cc-read "${files[0]}" "depth $depth"
done
log "ok"

#!/bin/bash
# Live snapshots under a running fio write+verify job: the job sees no
# error and verifies every block it wrote, across two table swaps.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd fio

d=$TEST_TMP/img
mkdir -p "$d"
cd "$d"
cc_detach() { "$CC" detach "$1" 2>/dev/null || dm_remove "$1"; }
"$CC" create r.cow --size 64M >/dev/null || fail "create"
dev=$("$CC" attach fio r.cow) || fail "attach"
on_exit cc_detach fio

fio --name=snapverify --filename="$dev" --rw=randwrite --bs=16k --size=24M \
	--direct=1 --ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 \
	--randrepeat=1 --output="$TEST_TMP/fio.out" &
pid=$!
sleep 2
"$CC" snapshot fio "$d/s1.cow" >/dev/null || fail "snapshot 1 under fio"
sleep 1
"$CC" snapshot fio "$d/s2.cow" >/dev/null || fail "snapshot 2 under fio"
wait "$pid" || fail "fio failed: $(cat "$TEST_TMP/fio.out")"
grep -q "err= 0" "$TEST_TMP/fio.out" || fail "fio reported errors: $(cat "$TEST_TMP/fio.out")"
dmsetup table fio | grep -q "cowchain [0-9:]* 2 " || fail "table after two snapshots: $(dmsetup table fio)"
dd if="$dev" of="$TEST_TMP/dev" bs=1M iflag=direct status=none
"$CC" detach fio || fail "detach"
"$CC" read s2.cow --offset 0 --length $((64 << 20)) --output "$TEST_TMP/lib" || fail "read"
cmp -s "$TEST_TMP/dev" "$TEST_TMP/lib" || fail "library reads differ from the device"
for f in r.cow s1.cow s2.cow; do "$CC" check "$f" >/dev/null || fail "check $f"; done
log "ok"

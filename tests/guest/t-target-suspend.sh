#!/bin/bash
# Live-device state is checked at resume, and suspend/resume is safe:
#  - the same top in two live tables is refused (the second cannot resume),
#    also when it is the same file through a second loop device; a
#    read_only table may share a read_only top;
#  - a table loaded while the old one still writes the top reads what the
#    old one wrote before it went away (dmsetup load; write; resume);
#  - suspend and resume loops under fio with verification, with repeated
#    suspends, lose nothing and leave a layer that passes check.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"

d=$TEST_TMP
"$CC" create "$d/root.cow" --size 64M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --pattern 5 --length 8388608 >/dev/null
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
top=$(loop_attach "$d/top.cow")
root=$(loop_attach "$d/root.cow" ro)
sectors=$(( $(vsize "$d/top.cow") / 512 ))
table="0 $sectors cowchain $top 1 $root -"
dm_create cc-susp "$table"
dev=/dev/mapper/cc-susp

log "a second live table on the same top is refused"
assert_fails dmsetup create cc-susp2 --table "$table"
dmesg | tail -n 20 | grep -q "is in use by the live device" ||
	fail "no 'in use by the live device' in the kernel log"
dm_remove cc-susp2
log "the same top file through a second loop device is refused"
top2=$(loop_attach "$d/top.cow")
assert_fails dmsetup create cc-susp2 --table "0 $sectors cowchain $top2 1 $root -"
dmesg | tail -n 20 | grep -q "is the layer the live device .* writes (same uuid)" ||
	fail "no 'same uuid' refusal in the kernel log: $(dmesg | tail -n 5)"
dm_remove cc-susp2
log "a second table on the same top may resume once the first is gone"
dmsetup suspend cc-susp || fail "suspend"
dmsetup create cc-susp2 --table "$table" || fail "create while the first is suspended"
dmsetup remove cc-susp2 || fail "remove cc-susp2"
dmsetup resume cc-susp || fail "resume after the second went away"

log "load a table, keep writing through the old one, then resume"
head -c 4M /dev/urandom > "$d/a"
dd if="$d/a" of="$dev" bs=64K seek=16 oflag=direct status=none || fail "write a"
sync "$dev"
dmsetup load cc-susp --table "$table" || fail "load"
head -c 4M /dev/urandom > "$d/b"
dd if="$d/b" of="$dev" bs=64K seek=256 oflag=direct status=none || fail "write b"
dd if="$d/b" of="$dev" bs=4K seek=4096 count=10 oflag=direct status=none || fail "write b2"
sync "$dev"
dmsetup resume cc-susp || fail "resume with the new table"
dd if="$dev" of="$d/ra" bs=64K skip=16 count=64 iflag=direct status=none
dd if="$dev" of="$d/rb" bs=64K skip=256 count=64 iflag=direct status=none
cmp "$d/a" "$d/ra" || fail "data written before the load is lost"
cmp "$d/b" "$d/rb" || fail "data written between load and resume is lost"
# new writes must not land on clusters the old table allocated
head -c 4M /dev/urandom > "$d/c"
dd if="$d/c" of="$dev" bs=64K seek=512 oflag=direct status=none || fail "write c"
dd if="$dev" of="$d/rb" bs=64K skip=256 count=64 iflag=direct status=none
cmp "$d/b" "$d/rb" || fail "a new write overwrote data of the old table"
dd if="$dev" of="$d/shown" bs=1M iflag=direct status=none || fail "read all"

log "suspend and resume twice in a row"
dmsetup suspend cc-susp || fail "suspend"
dmsetup suspend cc-susp 2>/dev/null || true
dmsetup resume cc-susp || fail "resume"
dmsetup resume cc-susp || fail "resume again"

if command -v fio >/dev/null; then
	log "suspend/resume loop under fio"
	fio --name=susp --filename="$dev" --direct=1 --ioengine=libaio --iodepth=16 \
		--verify_state_save=0 \
		--rw=randwrite --bssplit=4k/50:16k/25:64k/25 --offset=16M --size=32M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --output="$d/fio.out" &
	fio_pid=$!
	for i in $(seq 1 20); do
		sleep 0.3
		dmsetup suspend cc-susp || { kill "$fio_pid"; fail "suspend $i"; }
		dmsetup resume cc-susp || { kill "$fio_pid"; fail "resume $i"; }
	done
	wait "$fio_pid" || { cat "$d/fio.out"; fail "fio verify under suspend/resume"; }
	grep -E 'err=' "$d/fio.out" || true
	dd if="$dev" of="$d/shown" bs=1M iflag=direct status=none || fail "read all"
fi
dm_remove cc-susp
"$CC" read "$d/top.cow" --offset 0 --length "$(vsize "$d/top.cow")" --output "$d/lib" ||
	fail "library read"
cmp "$d/shown" "$d/lib" || fail "the library differs from the device"
"$CC" check "$d/top.cow" >/dev/null || fail "check"
log "ok"

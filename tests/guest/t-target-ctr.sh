#!/bin/bash
# Every constructor rejection gives its own error and leaves nothing
# behind: bad arguments, a missing or wrong ancestor, a wrong parent
# generation, a sealed top opened writable, a device twice, an oversized
# table, a layer with no valid superblock, a device whose logical block is
# larger than a sub-block.  A sealed top is accepted with read_only; an
# ancestor with 4096-byte logical blocks makes the device's that large.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd python3

d=$TEST_TMP
"$CC" create "$d/root.cow" --size 2M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --pattern 7 --length 65536 >/dev/null
"$CC" create "$d/child.cow" --parent "$d/root.cow" >/dev/null || fail "create child"
"$CC" create "$d/other.cow" --size 2M >/dev/null || fail "create other"
cp "$d/root.cow" "$d/root-gen.cow"
# root-gen: the same layer at another generation (superblock re-sealed)
python3 - "$d/root-gen.cow" <<'PY' || fail "patching the generation"
import struct, sys
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T.append(c)
def crc(c, b):
    for x in b:
        c = T[(c ^ x) & 0xff] ^ (c >> 8)
    return c
with open(sys.argv[1], "r+b") as f:
    for slot in (0, 1):
        f.seek(slot * 4096)
        b = bytearray(f.read(4096))
        if b[0:4] != b"CCSB":
            continue
        g = struct.unpack_from("<Q", b, 112)[0]
        struct.pack_into("<Q", b, 112, g + 5)
        c = crc(0xFFFFFFFF, struct.pack("<Q", slot))
        c = crc(c, bytes(b[0:4]) + b"\0\0\0\0" + bytes(b[8:]))
        struct.pack_into("<I", b, 4, c ^ 0xFFFFFFFF)
        f.seek(slot * 4096)
        f.write(b)
PY
head -c 1M /dev/zero > "$d/empty.img"

child=$(loop_attach "$d/child.cow")
root=$(loop_attach "$d/root.cow" ro)
rootgen=$(loop_attach "$d/root-gen.cow" ro)
other=$(loop_attach "$d/other.cow" ro)
empty=$(loop_attach "$d/empty.img" ro)
n=$(( $(vsize "$d/child.cow") / 512 ))

# refused TABLE_ARGS EXPECTED_ERROR [LENGTH]
refused() {
	local args=$1 want=$2 len=${3:-$n}
	assert_fails dmsetup create cc-bad --table "0 $len cowchain $args"
	dm_exists cc-bad && { dmsetup remove cc-bad; fail "'$args': device left behind"; }
	dmesg | tail -n 20 | grep -qF "$want" ||
		fail "'$args': expected error '$want' in the kernel log, got: $(dmesg | tail -n 3)"
	log "refused: $args: $want"
}

refused "$child" "not enough arguments"
refused "$child x $root -" "invalid number of ancestors"
refused "$child 2 $root -" "fewer ancestor devices than the ancestor count"
refused "$child 1 $root - 1 bogus" "unknown feature argument"
refused "$child 1 $root - 2 read_only" "invalid number of feature arguments"
refused "$child 1 $root - 1 read_only extra" "too many arguments after the feature arguments"
refused "/dev/nonexistent-cc 1 $root -" "cannot open the top layer device"
refused "$child 0 -" "the last layer has a parent layer"
refused "$child 1 $other -" "parent UUID does not match the next device"
refused "$child 1 $rootgen -" "parent generation does not match the next device"
refused "$child 1 $child -" "the same device appears twice in the table"
refused "$root 0 -" "top layer is sealed"
refused "$child 1 $root $other" "a base device was given but the root layer has none"
refused "$empty 0 -" "layer has no valid superblock"
refused "$child 1 $root -" "table length is larger than the virtual disk" $((n + 8))

log "logical block sizes"
# a device whose logical block is larger than a sub-block is refused; a
# larger one that fits makes the device's logical block that large
"$CC" create "$d/sb512.cow" --size 2M --cluster-size 4K --subblock-size 512 >/dev/null ||
	fail "create a 512-byte sub-block layer"
big=$(losetup -f --show --sector-size 4096 "$d/sb512.cow") || fail "losetup --sector-size"
on_exit losetup -d "$big"
refused "$big 0 -" "a device's logical block size is larger than the sub-block size" \
	$(( $(vsize "$d/sb512.cow") / 512 ))
root4k=$(losetup -f --show --read-only --sector-size 4096 "$d/root.cow") ||
	fail "losetup --sector-size"
on_exit losetup -d "$root4k"
dm_create cc-lbs "0 $n cowchain $child 1 $root4k -"
assert_eq 4096 "$(blockdev --getss /dev/mapper/cc-lbs)" "logical block size over a 4096-byte ancestor"
same_as_library /dev/mapper/cc-lbs "$d/child.cow" "a 4096-byte ancestor"
dm_remove cc-lbs

log "a sealed layer is accepted read-only; a shorter table is fine"
dm_create cc-ro "0 $n cowchain $root 0 - 1 read_only"
dmsetup table cc-ro | grep -Eq ' 0 - 1 read_only$' || fail "read_only table: $(dmsetup table cc-ro)"
# shellcheck disable=SC2046 # split into fields on purpose
set -- $(dmsetup status cc-ro)
assert_eq ro "$4" "read_only mode"
dm_remove cc-ro
dm_create cc-short "0 $((n / 2)) cowchain $child 1 $root -"
dm_remove cc-short
log "ok"

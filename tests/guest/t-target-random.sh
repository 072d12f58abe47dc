#!/bin/bash
# Random differential test: random writes (aligned and unaligned, first
# writes, overwrites, single-sub-block copy-ups), write-zeroes, discards,
# flushes and reads through the device over a chain of depth 4 with data at
# every depth, checked against an in-memory model of the disk; then the
# whole device, the library's read of the live chain after a flush, and the
# library's read after removal must all equal the model, and the layer
# must pass "cowchain check".  Several seeds (COWCHAIN_SEEDS, default
# "1 2 3"), COWCHAIN_OPS operations each (default 300).
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd python3

ops=${COWCHAIN_OPS:-300}
for seed in ${COWCHAIN_SEEDS:-1 2 3}; do
	log "seed $seed: $ops operations"
	d=$TEST_TMP/s$seed
	mkdir -p "$d"
	read -r -a files <<< "$(make_chain "$d" 4 4)"
	dm_create cc-rand "$(chain_table "${files[@]}")"
	dev=/dev/mapper/cc-rand
	size=$(vsize "${files[0]}")
	"$CC" read "${files[0]}" --offset 0 --length "$size" --output "$d/model" ||
		fail "initial library read"
	python3 - "$dev" "$d/model" "$seed" "$ops" 4096 <<'PY' || fail "seed $seed: random I/O"
import fcntl, mmap, os, random, struct, sys

dev, model_path, seed, nops, sbsize = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
BLKDISCARD, BLKZEROOUT = 0x1277, 0x127F
rng = random.Random(seed)
model = bytearray(open(model_path, "rb").read())
size = len(model)
fd = os.open(dev, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
counts = {}

def pick(maxlen):
    kind = rng.random()
    if kind < 0.4:       # sub-block aligned
        off = rng.randrange(size // sbsize) * sbsize
        ln = rng.randint(1, maxlen // sbsize) * sbsize
    else:                # sector aligned, anywhere
        off = rng.randrange(size // 512) * 512
        ln = rng.randint(1, maxlen // 512) * 512
    if rng.random() < 0.5:  # stay near earlier activity: overwrites
        off = (off % (size // 4)) // 512 * 512
    ln = min(ln, size - off)
    return off, ln

def check(off, ln, what):
    mv = memoryview(buf)[:ln]
    n = os.preadv(fd, [mv], off)
    if n != ln or bytes(mv) != bytes(model[off:off + ln]):
        for i in range(ln):
            if mv[i] != model[off + i]:
                break
        sys.exit(f"{what}: read at {off}+{ln} differs from the model at byte {off + i}")

for i in range(nops):
    r = rng.random()
    if r < 0.55:
        off, ln = pick(rng.choice([4096, 16384, 65536, 262144]))
        data = rng.randbytes(ln)
        buf[:ln] = data
        if os.pwritev(fd, [memoryview(buf)[:ln]], off) != ln:
            sys.exit("short write")
        model[off:off + ln] = data
        op = "write"
    elif r < 0.65:
        off, ln = pick(262144)
        fcntl.ioctl(fd, BLKZEROOUT, struct.pack("QQ", off, ln))
        model[off:off + ln] = bytes(ln)
        op = "zeroout"
    elif r < 0.77:
        off, ln = pick(262144)
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", off, ln))
        # whole sub-blocks read zero; partly covered ones keep their data
        a = -(-off // sbsize) * sbsize
        b = (off + ln) // sbsize * sbsize
        if b > a:
            model[a:b] = bytes(b - a)
        op = "discard"
    elif r < 0.85:
        os.fsync(fd)
        op = "flush"
    else:
        off, ln = pick(262144)
        check(off, ln, f"op {i}")
        op = "read"
    counts[op] = counts.get(op, 0) + 1
os.fsync(fd)
for off in range(0, size, 1 << 20):
    check(off, min(1 << 20, size - off), "final")
open(model_path, "wb").write(model)
print("ops:", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
PY
	log "the live chain, read by the library after the flush"
	"$CC" read "${files[0]}" --offset 0 --length "$size" --output "$d/live" ||
		fail "live library read"
	cmp "$d/model" "$d/live" || fail "seed $seed: the library's live read differs"
	dm_remove cc-rand
	"$CC" read "${files[0]}" --offset 0 --length "$size" --output "$d/after" ||
		fail "library read"
	cmp "$d/model" "$d/after" || fail "seed $seed: the library's read after removal differs"
	"$CC" check "${files[0]}" >/dev/null || fail "seed $seed: cowchain check"
	log "seed $seed: status was consistent; $(dmsetup ls | wc -l) devices left"
done

log "fio verify: random writes, a mix of sizes up to 1 MiB, iodepth 16"
if command -v fio >/dev/null; then
	d=$TEST_TMP/fio
	mkdir -p "$d"
	"$CC" create "$d/root.cow" --size 64M >/dev/null || fail "create"
	"$CC" write "$d/root.cow" --offset 0 --pattern 9 --length 33554432 >/dev/null
	"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
	dm_create cc-fio "$(chain_table "$d/top.cow" "$d/root.cow")"
	fio --name=verify --filename=/dev/mapper/cc-fio --direct=1 --ioengine=libaio \
		--verify_state_save=0 \
		--iodepth=16 --rw=randwrite --bssplit=512/10:4k/35:8k/10:64k/25:128k/10:1m/10 \
		--size=48M --verify=crc32c --do_verify=1 --verify_fatal=1 \
		--output="$d/fio.out" || { cat "$d/fio.out"; fail "fio verify"; }
	grep -E 'err=|WRITE:|READ:' "$d/fio.out" || true
	dm_remove cc-fio
	"$CC" check "$d/top.cow" >/dev/null || fail "check after fio"
else
	log "fio not installed: skipped"
fi

log "mkfs.ext4 + file copy + fsck"
d=$TEST_TMP/fs
mkdir -p "$d"
"$CC" create "$d/root.cow" --size 128M >/dev/null || fail "create"
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
dm_create cc-fs "$(chain_table "$d/top.cow" "$d/root.cow")"
mkfs.ext4 -q -F /dev/mapper/cc-fs || fail "mkfs.ext4"
modprobe ext4 || fail "cannot load ext4"
mkdir -p "$d/mnt"
mount /dev/mapper/cc-fs "$d/mnt" || fail "mount"
on_exit umount_if_mounted "$d/mnt"
head -c 20M /dev/urandom > "$d/file"
cp "$d/file" "$d/mnt/file" || fail "copy"
umount "$d/mnt" || fail "umount"
fsck.ext4 -fn /dev/mapper/cc-fs >"$d/fsck.log" 2>&1 || { cat "$d/fsck.log"; fail "fsck while live"; }
mount -o ro /dev/mapper/cc-fs "$d/mnt" || fail "mount again"
cmp "$d/file" "$d/mnt/file" || fail "file differs on the file system"
umount "$d/mnt"
dm_remove cc-fs
"$CC" check "$d/top.cow" >/dev/null || fail "check after ext4"
log "ok"

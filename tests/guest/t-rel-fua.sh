#!/bin/bash
# A FUA write is durable when it completes, with the mapping it reads
# through.  A 512-byte write copies up sub-block 0 of a child over its
# parent's data (no flush: not yet durable), then a 512-byte O_DSYNC (FUA)
# write lands in the same sub-block, now present in memory only; a
# dm-log-writes mark right after it.  Replayed to that mark (a power cut
# right after the FUA write was acknowledged), the chain must activate and
# read the FUA write's data back.  Before the fix the FUA overwrite went
# down by itself: the log held its data but not the copy-up nor the entry,
# so the sector read the parent's data.  Then the same with 8 rounds over
# other sub-blocks, and the whole log replayed must equal the live device
# (the copy-up, a non-FUA write of the same sectors, must come before the
# FUA data in the log).  Part 2 below: a flush during a commit; part 3: a
# FUA write whose entry a commit wrote while its data was still on its way.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
crash_build
modprobe dm-log-writes || skip "no dm-log-writes module"
brd_setup 2 16
d=$TEST_TMP
"$CC" create "$d/base.cow" --size 4M >/dev/null || fail "create base"
"$CC" write "$d/base.cow" --offset 0 --length 1048576 --pattern 0x5a >/dev/null || fail "write base"
"$CC" create "$d/top.cow" --parent "$d/base.cow" >/dev/null || fail "create top"
base=$(loop_attach "$d/base.cow" ro)
sectors=$(( $(vsize "$d/top.cow") / 512 ))
dd if="$d/top.cow" of=/dev/ram0 bs=1M conv=sparse,fsync status=none || fail "copy top"
cp --sparse=always "$d/top.cow" "$d/init.img"
dd if=/dev/zero of=/dev/ram1 bs=4k count=1 conv=fsync status=none
dm_create cc-lw "0 $(blockdev --getsz /dev/ram0) log-writes /dev/ram0 /dev/ram1"
dm_create cc-fua "0 $sectors cowchain /dev/mapper/cc-lw 1 $base -"
sbsize=$(( $("$CC" info "$d/top.cow" | awk '/^sub-block size:/ {print $3}') ))

# round K: copy-up at sub-block 2K (pattern K), FUA write of the next 512
# bytes (pattern 0x80+K), mark mK
for k in 0 1 2 3 4 5 6 7 8; do
	off=$(( 2 * k * sbsize ))
	head -c 512 /dev/zero | tr '\0' "\\$(printf %03o $((k + 1)))" > "$d/a$k"
	head -c 512 /dev/zero | tr '\0' "\\$(printf %03o $((k + 128)))" > "$d/b$k"
	dd if="$d/a$k" of=/dev/mapper/cc-fua bs=512 seek=$((off / 512)) oflag=direct conv=notrunc status=none ||
		fail "copy-up write $k"
	dd if="$d/b$k" of=/dev/mapper/cc-fua bs=512 seek=$((off / 512 + 1)) oflag=direct,dsync conv=notrunc \
		status=none || fail "FUA write $k"
	dmsetup message cc-lw 0 mark "m$k" || fail "mark"
done
dd if=/dev/mapper/cc-fua of="$d/live.img" bs=1M iflag=direct status=none || fail "read live"
dm_remove cc-fua
dm_remove cc-lw
"$REPLAY" --log /dev/ram1 --list > "$d/entries" || fail "list the log"
log "log: $(head -n 1 "$d/entries" | cut -c3-), $(grep -c FUA "$d/entries") fua, $(grep -c FLUSH "$d/entries") flush"

# check_at N WHAT: replay the first N entries onto a copy, activate, read
check_at() {
	cp --sparse=always "$d/init.img" "$d/cut.img"
	"$REPLAY" --log /dev/ram1 --target "$d/cut.img" --limit "$1" 2>/dev/null || fail "replay to $1"
	cut=$(losetup -f --show "$d/cut.img") || fail "losetup"
	if ! dmsetup create cc-cut --table "0 $sectors cowchain $cut 1 $base -"; then
		losetup -d "$cut"; fail "$2: activation refused"
	fi
	dd if=/dev/mapper/cc-cut of="$d/cut.read" bs=1M iflag=direct status=none
	dmsetup remove cc-cut; losetup -d "$cut"
}
for k in 0 4 8; do
	n=$(awk -v m="m$k" '$2 ~ /MARK/ && $5 == m {print $1 + 1}' "$d/entries")
	[ -n "$n" ] || fail "mark m$k not in the log"
	check_at "$n" "mark m$k"
	off=$(( 2 * k * sbsize ))
	cmp -s -n 512 -i $((off + 512)):0 "$d/cut.read" "$d/b$k" ||
		fail "cut at mark m$k (entry $n): the acknowledged FUA write $k does not read back"
	log "cut at mark m$k (entry $n): FUA write $k reads back"
done
check_at "$(grep -vc '^#' "$d/entries")" "the whole log"
cmp -s "$d/cut.read" "$d/live.img" ||
	fail "the whole log replayed differs from the live device: $(cmp "$d/cut.read" "$d/live.img")"
log "the whole log replayed equals the live device"

# reads_back_at MARK BLOCK FILE WHAT: the log replayed to MARK (n: its
# entry) reads FILE's 4 KiB at 4 KiB block BLOCK
reads_back_at() {
	"$REPLAY" --log /dev/ram1 --list > "$d/entries" || fail "list the log"
	n=$(awk -v m="$1" '$2 ~ /MARK/ && $5 == m {print $1 + 1}' "$d/entries")
	[ -n "$n" ] || fail "mark $1 not in the log"
	check_at "$n" "mark $1"
	cmp -s -n 4096 -i $(($2 * 4096)):0 "$d/cut.read" "$3" ||
		fail "cut at mark $1 (entry $n): $4 does not read back"
}

# Part 2: a flush that arrives while a commit is under way.  A commit takes
# the dirty entries (clearing their marks) before it writes the journal;
# the switch commit_delay_ms holds it there.  Writes A and B (first writes,
# their leaf already on disk), an fsync that starts the commit, and during
# it a second fsync and a mark: replayed to the mark, B must read back.
# Before the fix the second flush saw no dirty mark and went straight down.
dd if="$d/top.cow" of=/dev/ram0 bs=1M conv=sparse,fsync status=none || fail "copy top"
dd if=/dev/zero of=/dev/ram1 bs=4k count=1 conv=fsync status=none
dm_create cc-lw "0 $(blockdev --getsz /dev/ram0) log-writes /dev/ram0 /dev/ram1"
dm_create cc-fua "0 $sectors cowchain /dev/mapper/cc-lw 1 $base -"
dd if="$d/b0" of=/dev/mapper/cc-fua bs=512 seek=0 oflag=direct conv=notrunc status=none
sync /dev/mapper/cc-fua	# the leaf gets its home
delay=/sys/module/dm_cowchain/parameters/commit_delay_ms
echo 2000 > "$delay"
on_exit sh -c "echo 0 > $delay"
head -c 4096 /dev/zero | tr '\0' '\101' > "$d/A"
head -c 4096 /dev/zero | tr '\0' '\102' > "$d/B"
dd if="$d/A" of=/dev/mapper/cc-fua bs=4096 seek=64 oflag=direct conv=notrunc status=none || fail "write A"
dd if="$d/B" of=/dev/mapper/cc-fua bs=4096 seek=128 oflag=direct conv=notrunc status=none || fail "write B"
sync /dev/mapper/cc-fua &
sleep 0.5
sync /dev/mapper/cc-fua || fail "the second fsync"
dmsetup message cc-lw 0 mark mB || fail "mark"
wait
echo 0 > "$delay"
dm_remove cc-fua
dm_remove cc-lw
reads_back_at mB 128 "$d/B" "B, synced by the second fsync,"
log "cut at mark mB (entry $n, the second fsync during a commit held ${delay##*/}=2000): B reads back"

# Part 3: a FUA write that waits for a commit, when the commit that writes
# its entry sends its REQ_PREFLUSH before the write's data has landed
# (RELIABILITY.md open failure 7, found by s-powercut-ext4).  C, a first
# write, leaves its entry dirty; a commit starts (held by commit_delay_ms
# after it took C's entry); a FUA overwrite F of C's sub-block goes down
# without FUA to end after a commit.  dm-delay between the target and the
# log holds ordinary writes 3 s and lets flushes through, so the commit's
# flush passes before F's data: when F lands its entry is clean, the next
# commit writes nothing, and F must not end before a flush covers it.
# Userspace's O_DSYNC write sends a flush of its own after the FUA write;
# a second dm-delay above the target holds that flush (60 s at most) until
# the mark is logged, as a file system's FUA commit record has none after it.
modprobe dm-delay || skip "no dm-delay module"
dd if="$d/top.cow" of=/dev/ram0 bs=1M conv=sparse,fsync status=none || fail "copy top"
dd if=/dev/zero of=/dev/ram1 bs=4k count=1 conv=fsync status=none
dm_create cc-lw "0 $(blockdev --getsz /dev/ram0) log-writes /dev/ram0 /dev/ram1"
lw=/dev/mapper/cc-lw
dm_create cc-dl "0 $(blockdev --getsz /dev/ram0) delay $lw 0 0 $lw 0 3000 $lw 0 0"
dm_create cc-fua "0 $sectors cowchain /dev/mapper/cc-dl 1 $base -"
dm_create cc-up "0 $sectors delay /dev/mapper/cc-fua 0 0 /dev/mapper/cc-fua 0 0 /dev/mapper/cc-fua 0 60000"
dd if="$d/b0" of=/dev/mapper/cc-fua bs=512 seek=0 oflag=direct conv=notrunc status=none
sync /dev/mapper/cc-fua	# the generation bump and the leaf's home: no commit below writes the superblock
head -c 4096 /dev/zero | tr '\0' '\103' > "$d/C"
head -c 4096 /dev/zero | tr '\0' '\106' > "$d/F"
dd if="$d/C" of=/dev/mapper/cc-fua bs=4096 seek=192 oflag=direct conv=notrunc status=none || fail "write C"
# F has ended in the target when its device has counted it (field 5 of
# stat: 6.1 counts a write when it starts, 6.12 when it ends) and has no
# write in flight, twice 0.1 s apart (F is held at least 3 s below)
sys=/sys/block/dm-$(dmsetup info -c --noheadings -o minor cc-fua)
writes() { awk '{print $5}' "$sys/stat"; }
ended() { [ "$(writes)" -gt "$before" ] && [ "$(awk '{print $2}' "$sys/inflight")" = 0 ]; }
before=$(writes)
echo 1000 > "$delay"
dmsetup message cc-fua 0 commit &	# returns when the commit has ended
msg=$!
sleep 0.3
dd if="$d/F" of=/dev/mapper/cc-up bs=4096 seek=192 oflag=direct,dsync conv=notrunc status=none &
fua=$!
for _ in $(seq 300); do
	if ended && sleep 0.1 && ended; then break; fi
	sleep 0.1
done
ended || fail "the FUA write F did not end within 30 s"
wait "$msg" || fail "commit message"
echo 0 > "$delay"
dmsetup message cc-lw 0 mark mF || fail "mark"
# a linear table in place of the delay: the suspend sends the held flush
dmsetup load cc-up --table "0 $sectors linear /dev/mapper/cc-fua 0" || fail "load cc-up"
dmsetup resume cc-up || fail "resume cc-up"
wait "$fua" || fail "the FUA write F"
dm_remove cc-up
dm_remove cc-fua
dm_remove cc-dl
dm_remove cc-lw
reads_back_at mF 192 "$d/F" "the acknowledged FUA write F"
# that the arrangement held: before the mark, after the commit's journal
# write (the last FLUSH|FUA), a plain WRITE (F's data, sent without FUA)
awk -v n="$n" '$1 !~ /^#/ && $1 < n - 1 {
	if ($2 == "FLUSH|FUA") w = 0; else if ($2 == "WRITE") w = 1 } END { exit !w }' "$d/entries" ||
	fail "F's data is not a plain write after the commit's flush: the test did not set up the case"
log "cut at mark mF (entry $n; F's data held 3 s under the target, the commit's flush ahead of it, userspace's flush held above): F reads back"
log "ok"

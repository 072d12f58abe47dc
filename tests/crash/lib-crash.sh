# shellcheck shell=bash
# Power-cut helpers for the reliability tests (tests/guest/t-rel-*.sh and
# tests/stress/); source after tests/guest/lib.sh and cc-lib.sh.
#
# The stack: the top layer's image on a RAM disk under dm-log-writes (the
# log on another RAM disk), cowchain over the log-writes device, the
# ancestors on loop devices of their own.  After the workload the log is
# replayed (tests/crash/replay-log.c) onto a copy of the top's initial
# image, and at each chosen point tests/crash/check-point.sh activates a
# copy of the replayed image and checks it.

CRASH_DIR=$TOP/tests/crash
# The C tools: build/crash/ (make crash-tools, on the host) when up to
# date, else built once per guest boot (gcc under TCG is slow).
CRASH_BIN=/tmp/cowchain-crash-bin
crash_build() {
	mkdir -p "$CRASH_BIN"
	crash_tool replay-log; crash_tool crashload; crash_tool mutate; crash_tool memhog
	crash_tool tableload -ldevmapper
	REPLAY=$CRASH_BIN/replay-log
	LOAD=$CRASH_BIN/crashload
	# shellcheck disable=SC2034 # used by images.sh
	MUTATE=$CRASH_BIN/mutate
	# shellcheck disable=SC2034 # used by t-rel-tables.sh
	TABLELOAD=$CRASH_BIN/tableload
}

# crash_tool NAME [LIBS...]: $CRASH_BIN/NAME from build/crash/ or built here.
crash_tool() {
	local t=$1
	shift
	if [ -x "$TOP/build/crash/$t" ] && [ ! "$CRASH_DIR/$t.c" -nt "$TOP/build/crash/$t" ]; then
		ln -sf "$TOP/build/crash/$t" "$CRASH_BIN/$t"
	elif [ ! -x "$CRASH_BIN/$t" ] || [ "$CRASH_DIR/$t.c" -nt "$CRASH_BIN/$t" ]; then
		gcc -O2 -Wall -Wextra -Werror -pthread -o "$CRASH_BIN/$t.tmp" "$CRASH_DIR/$t.c" "$@" ||
			fail "cannot build $t"
		mv "$CRASH_BIN/$t.tmp" "$CRASH_BIN/$t"
	fi
}

# crash_points LIST MAX NRANDOM SEED: the points to check, from a
# "replay-log --list" output: 0, the state after every FLUSH, FUA or MARK
# entry (evenly thinned to MAX when there are more; MAX 0 keeps all), and
# NRANDOM other points, and the end.
crash_points() {
	local list=$1 max=$2 nrand=$3 seed=$4
	awk -v max="$max" -v nrand="$nrand" -v seed="$seed" '
		/^#/ { n = $5; next }
		$2 ~ /FLUSH|FUA|MARK/ { f[nf++] = $1 + 1 }
		END {
			srand(seed)
			print 0; print n
			step = (max > 0 && nf > max) ? nf / max : 1
			for (i = 0; i < nf; i += step) print f[int(i)]
			for (i = 0; i < nrand && n > 1; i++) print 1 + int(rand() * (n - 1))
		}' "$list" | sort -n -u
}

# fs_round DIR K: one round of file system work in mounted DIR: new files,
# an overwrite inside an older file, a deletion, a hole punched, fstrim
# every other round.  Deterministic in K.
fs_round() {
	local d=$1 k=$2 i f
	mkdir -p "$d/r$k"
	for i in 1 2 3 4 5; do
		head -c $(( (k * 7 + i * 13) % 48 * 4096 + 1000 * i )) /dev/urandom > "$d/r$k/f$i"
	done
	if [ "$k" -gt 1 ]; then
		f=$d/r$((k - 1))/f2
		[ ! -f "$f" ] || dd if=/dev/urandom of="$f" bs=1k seek=3 count=9 conv=notrunc status=none
		rm -f "$d/r$((k - 1))/f4"
		f=$d/r$((k - 1))/f1
		[ ! -f "$f" ] || fallocate -p -o 4096 -l 8192 "$f" 2>/dev/null || true
	fi
	if [ $((k % 2)) -eq 0 ]; then fstrim "$d" 2>/dev/null || true; fi
}

# shellcheck source=tests/crash/fio-round.sh
. "$CRASH_DIR/fio-round.sh"

# powercut_run MODE ROUNDS OPS MAXPOINTS NRANDOM SIZE_MIB SEED
#   MODE block: crashload rounds of OPS operations; fio: fio jobs with
#   verify (fio-round.sh; OPS unused); ext4/xfs: fs_round.
# Needs brd_setup 2 (>= image size) done by the caller: /dev/ram0 carries
# the top, /dev/ram1 the log.  Prints what it tried and what held.
powercut_run() {
	local mode=$1 rounds=$2 nops=$3 maxp=$4 nrand=$5 mib=$6 seed=$7
	local d=$TEST_TMP/pc sectors base top k npts st
	crash_build
	mkdir -p "$d/snap"
	modprobe dm-log-writes || skip "no dm-log-writes module"
	# a chain of two: the root with some data on a loop device, the top
	# (empty child) on the RAM disk
	"$CC" create "$d/base.cow" --size "${mib}M" >/dev/null || fail "create base"
	"$CC" write "$d/base.cow" --offset 0 --length $((mib * 262144)) --pattern 0x5a >/dev/null ||
		fail "write base"
	"$CC" write "$d/base.cow" --offset $((mib * 524288)) --length 1048576 --pattern 0xa5 \
		>/dev/null || fail "write base"
	"$CC" create "$d/top.cow" --parent "$d/base.cow" >/dev/null || fail "create top"
	# read-write, so that a write the target sent to the ancestor would
	# reach it and count in the loop device's statistics (checked at the end)
	base=$(loop_attach "$d/base.cow")
	echo 1 > "/sys/block/$(basename "$base")/queue/iostats" 2>/dev/null || true
	# a loop device keeps its counts across detach and attach: from here on
	local io0
	read -r -a io0 < "/sys/block/$(basename "$base")/stat"
	sectors=$(( $(vsize "$d/top.cow") / 512 ))
	if [ "$mode" = ext4 ] || [ "$mode" = xfs ]; then
		modprobe "$mode" 2>/dev/null || true
		grep -qw "$mode" /proc/filesystems || skip "no $mode in this kernel"
		# mkfs before logging: through a loop device on the top file
		top=$(losetup -f --show "$d/top.cow") || fail "losetup top"
		dmsetup create cc-pc-mkfs --table "0 $sectors cowchain $top 1 $base -" ||
			fail "activate for mkfs"
		if [ "$mode" = xfs ]; then
			TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1 mkfs.xfs -q -f /dev/mapper/cc-pc-mkfs ||
				{ dmsetup remove cc-pc-mkfs; losetup -d "$top"; fail "mkfs.xfs"; }
		else
			mkfs.ext4 -q -F /dev/mapper/cc-pc-mkfs ||
				{ dmsetup remove cc-pc-mkfs; losetup -d "$top"; fail "mkfs.ext4"; }
		fi
		dmsetup remove cc-pc-mkfs || fail "remove after mkfs"
		losetup -d "$top"
	fi
	[ "$(stat -c %s "$d/top.cow")" -le "$(blockdev --getsize64 /dev/ram0)" ] ||
		fail "the RAM disk is smaller than the top image"
	dd if="$d/top.cow" of=/dev/ram0 bs=1M conv=sparse,fsync status=none || fail "copy top to ram0"
	cp --sparse=always "$d/top.cow" "$d/init.img"
	dd if=/dev/zero of=/dev/ram1 bs=4k count=1 conv=fsync status=none
	dm_create cc-lw "0 $(blockdev --getsz /dev/ram0) log-writes /dev/ram0 /dev/ram1"
	dm_create cc-pc "0 $sectors cowchain /dev/mapper/cc-lw 1 $base -"
	log "$mode workload: $rounds rounds over a ${mib} MiB chain of 2 (top under dm-log-writes), seed $seed" \
		"(COWCHAIN_SEED=$seed repeats it)"
	if [ "$mode" = block ]; then
		"$LOAD" run --dev /dev/mapper/cc-pc --snap "$d/snap" --seed "$seed" --rounds "$rounds" \
			--ops "$nops" --threads 4 --mark-cmd "dmsetup message cc-lw 0 mark" ||
			fail "the workload failed on the live device"
	elif [ "$mode" = fio ]; then
		local h z
		dmsetup message cc-lw 0 mark f0 || fail "mark"
		: > "$d/zeroes"
		for ((k = 1; k <= rounds; k++)); do
			for h in $(fio_jobs "$k"); do
				if [ "$h" = z ]; then
					z=$(fio_zeroes /dev/mapper/cc-pc "$k" "$rounds" "$mib" "$seed") ||
						fail "round $k: write-zeroes failed on the live device"
					echo "$z" >> "$d/zeroes"
					continue
				fi
				fio_job "$d/r$k$h.fio" /dev/mapper/cc-pc "$k" "$h" "$rounds" "$mib" "$seed"
				fio "$d/r$k$h.fio" --output="$d/r$k$h.out" ||
					{ cat "$d/r$k$h.out"; fail "round $k job $h: fio failed or did not verify on the live device"; }
			done
			dmsetup message cc-lw 0 mark "f$k" || fail "mark"
		done
		log "$rounds rounds of fio: $(cat "$d"/r*.out | grep -o 'issued rwts: total=[0-9]*,[0-9]*,[0-9]*' |
			awk -F'[=,]' '{r += $2; w += $3; t += $4} END {print w " writes, " t " discards, " r " verify reads"}')," \
			"$(awk '{n += $1; b += $2} END {printf "%d write-zeroes (%d KiB)", n, b / 1024}' "$d/zeroes")"
	else
		mkdir -p "$d/mnt"
		mount -t "$mode" /dev/mapper/cc-pc "$d/mnt" || fail "mount $mode"
		on_exit umount_if_mounted "$d/mnt"
		sync
		dmsetup message cc-lw 0 mark f0
		: > "$d/snap/f0"
		for ((k = 1; k <= rounds; k++)); do
			fs_round "$d/mnt" "$k"
			sync
			dmsetup message cc-lw 0 mark "f$k" || fail "mark"
			(cd "$d/mnt" && find . -type f -exec md5sum {} +) > "$d/snap/f$k"
		done
		umount "$d/mnt" || fail "umount"
		log "$rounds rounds: $(wc -l < "$d/snap/f$rounds") files at the end"
	fi
	st=$(dmsetup status cc-pc)
	log "status after the workload: $st"
	dm_remove cc-pc
	dm_remove cc-lw
	"$REPLAY" --log /dev/ram1 --list > "$d/entries" || fail "cannot list the log"
	log "log: $(head -n 1 "$d/entries" | cut -c3-), $(grep -c FLUSH "$d/entries") flush," \
		"$(grep -c FUA "$d/entries") fua, $(grep -c DISCARD "$d/entries") discard, $(grep -c MARK "$d/entries") mark entries"
	crash_points "$d/entries" "$maxp" "$nrand" "$seed" > "$d/points"
	npts=$(wc -l < "$d/points")
	log "replaying to $npts points (0, end, flush/fua/mark points${maxp:+ (at most $maxp)}, $nrand random)"
	cp --sparse=always "$d/init.img" "$d/cur.img"
	: > "$d/stats"
	CP_CUR=$d/cur.img CP_WORK=$d/work.img CP_BASEDEV=$base CP_SECTORS=$sectors \
	CP_SNAP=$d/snap CP_STATS=$d/stats CP_CC=$CC CP_LOAD=$LOAD CP_MODE=$mode CP_NAME=cc-rp \
	CP_ROUNDS=$rounds CP_MIB=$mib CP_SEED=$seed \
		"$REPLAY" --log /dev/ram1 --target "$d/cur.img" --points "$d/points" \
		--exec "$CRASH_DIR/check-point.sh"
	k=$?
	dm_remove cc-rp
	PC_POINTS=$(wc -l < "$d/stats")
	PC_LEAKY=$(awk '$3 > 0' "$d/stats" | wc -l)
	local held
	case $mode in
	block) held="every sector as at the last mark or the next" ;;
	fio) held="every fio job the last mark made durable verifies" ;;
	*) held="fsck clean, every file synced before the last mark that the next round left alone exact" ;;
	esac
	log "held at $PC_POINTS of $npts points: activation, check without corruption" \
		"($PC_LEAKY points with leaks), $held, check after recovery"
	if [ "$k" -ne 0 ] || [ "$PC_POINTS" -ne "$npts" ]; then
		fail "power-cut replay failed (see above)"
	fi
	# the ancestor, through the workload, every activation and journal
	# replay of the checks: /sys/block/X/stat fields 5 and 12 are the
	# writes and the discards completed
	local io rd wr dc
	read -r -a io < "/sys/block/$(basename "$base")/stat"
	rd=$((io[0] - io0[0])) wr=$((io[4] - io0[4])) dc=$((${io[11]:-0} - ${io0[11]:-0}))
	log "the ancestor's device: $rd reads, $wr writes, $dc discards"
	[ "$rd" -gt 0 ] || fail "the ancestor's device counts no reads: its statistics are off"
	if [ "$wr" != 0 ] || [ "$dc" != 0 ]; then
		fail "the target wrote to the ancestor: $wr writes, $dc discards"
	fi
}

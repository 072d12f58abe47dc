#!/bin/bash
# The soak (issue 7): a chain that keeps growing and shrinking under load
# for SOAK_SECONDS (default 1800), in rounds.
#
# The virtual disk (SOAK_SIZE_MB, default 256) is cut in two: the first
# half is a raw block region, the second an ext4 file system on a dm-linear
# slice of the cowchain device (mounted with -o discard).  Each round:
#   - fio on one quarter ("slot") of the raw region, three jobs side by
#     side: random writes of mixed sizes (512 bytes to 256 KiB: partial
#     sub-blocks copy up) with fsync every 16, sequential 1 MiB writes,
#     random trim+write; every job verifies what it wrote (crc32c/md5);
#   - a discard/zero-out worker on its own part of the slot: writes random
#     data, then BLKDISCARD (4 KiB aligned) and BLKZEROOUT (any 512-byte
#     range) over pieces of it, against a model file;
#   - on ext4: fio on four files (buffered, fsync, verify) and a file churn
#     (create, append, truncate, rename, hard links, delete, fsync) in the
#     round's directory; the directory of three rounds ago is deleted;
#   - SOAK_SNAPS (default 2) online `cowchain snapshot`s while that runs.
# At the end of a round: fio and the churn succeeded, the discard model
# reads back exactly, every raw slot not written this round has the
# checksum it had when last written (a model independent of the library),
# and every earlier round's directory has its manifest (sha256 of every
# file).  Every SOAK_MERGE_EVERY rounds (default 2), offline: umount,
# e2fsck -fn clean, the device's checksum taken, detach, `cowchain read` of
# the top gives the same checksum, `cowchain check --chain` clean; then
# SOAK_MERGES (default 2) merges of a middle layer, cycling through into
# the parent, into the children, the tool's own choice and the root into
# its child (more, into the root, while the images use more than
# SOAK_MAX_MB of the guest's tmpfs); after each merge the chain is what
# was expected, check is clean and the library's checksum is unchanged;
# re-attach, the device's checksum unchanged, e2fsck clean, manifests
# unchanged.  At the end the same offline checks.  Prints what it did.
#
# SOAK_SEED (default: the time) seeds the choices; it is printed.
# make stress runs it for the default time (tests/stress/run.sh gives a test
# 5400 s).
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"
require_cmd fio mkfs.ext4 e2fsck sha256sum blkdiscard fstrim mount umount
modprobe ext4 2>/dev/null || true
grep -qw ext4 /proc/filesystems || skip "no ext4 in this kernel"

soak_seconds=${SOAK_SECONDS:-1800}
size_mb=${SOAK_SIZE_MB:-256}
snaps=${SOAK_SNAPS:-2}
merge_every=${SOAK_MERGE_EVERY:-2}
merges_per=${SOAK_MERGES:-2}
max_mb=${SOAK_MAX_MB:-320}
seed=${SOAK_SEED:-$(date +%s)}
RANDOM=$seed
((size_mb % 64 == 0 && size_mb >= 128)) || fail "SOAK_SIZE_MB must be a multiple of 64, at least 128"
log "seed $seed; ${soak_seconds}s; disk ${size_mb} MiB; $snaps snapshots a round;" \
	"$merges_per merges every $merge_every rounds; storage budget ${max_mb} MiB"

d=$TEST_TMP/img
m=$TEST_TMP/mnt
st=$TEST_TMP/state
mkdir -p "$d" "$m" "$st/man"
cd "$TEST_TMP"   # fio writes its verify state files into the current directory
dev=/dev/mapper/soak
fsdev=/dev/mapper/soak-fs
# blkdiscard opens with O_EXCL, which soak-fs's hold on soak refuses: the
# discard/zero-out worker goes through a dm-linear slice of its own
zdev=/dev/mapper/soak-raw
mib=1048576
size=$((size_mb * mib))
raw=$((size / 2))                # the raw region: [0, raw)
nslot=4
slot=$((raw / nslot))            # fio: 1/2 + 1/4 + 1/8 of it; the discard model: 1/8
part_a=$((slot / 2)) part_b=$((slot / 4)) part_c=$((slot / 8)) part_d=$((slot / 8))

# ---------------------------------------------------------------- helpers

teardown() {
	mountpoint -q "$m" && umount "$m"
	dm_remove soak-fs
	dm_remove soak-raw
	if dm_exists soak; then
		"$CC" detach soak 2>/dev/null || dm_remove soak
	fi
}
on_exit teardown

# the chain, top first; depth and merge counters
files=()
nfile=0
# new_file: the next layer's name in $nf (not $(...): the count must stay)
new_file() { nfile=$((nfile + 1)); nf=$d/l$nfile.cow; }
rounds=0 nsnap=0 nsnap_io=0 depth_max=0 storage_max=0
n_parent=0 n_children=0 n_auto=0 n_root=0 n_budget=0 phases=0
bytes_w=0 bytes_disc=0 fsck_runs=0 churn_ops=0

sum_dev() { # sum_dev: sha256 of the whole cowchain device
	dd if="$dev" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1
}
sum_lib() { # sum_lib: sha256 of the virtual disk the library reads from the top
	"$CC" read "${files[0]}" --offset 0 --length "$size" | sha256sum | cut -d' ' -f1
}
sum_range() { # sum_range OFFSET LENGTH: sha256 of bytes of the device (MiB aligned)
	dd if="$dev" bs=1M skip=$(($1 / mib)) count=$(($2 / mib)) iflag=direct status=none |
		sha256sum | cut -d' ' -f1
}
storage() { du -sm "$d" | cut -f1; }
note_storage() {
	local s
	s=$(storage)
	((s > storage_max)) && storage_max=$s
	return 0
}
note_depth() {
	((${#files[@]} > depth_max)) && depth_max=${#files[@]}
	return 0
}
# check_status WHAT: the device is rw and as deep as our chain
check_status() {
	local s
	read -r -a s <<< "$(dmsetup status soak)"
	assert_eq rw "${s[3]}" "$1: mode"
	assert_eq "${#files[@]}" "${s[4]}" "$1: depth"
}
# check_chain WHAT: the tool sees our chain, top first
check_chain() {
	local got want f
	got=$("$CC" info "${files[0]}" --chain | awk '/^layer [0-9]+:/ {print $3}' |
		xargs -n1 basename | tr '\n' ' ')
	want=$(for f in "${files[@]}"; do basename "$f"; done | tr '\n' ' ')
	assert_eq "$want" "$got" "$1: chain"
}
check_clean() { # check_clean WHAT
	"$CC" check --chain "${files[0]}" > "$TEST_TMP/check.out" 2>&1 ||
		fail "$1: cowchain check --chain ${files[0]}: $(cat "$TEST_TMP/check.out")"
}
fsck_clean() { # fsck_clean WHAT
	e2fsck -fn "$fsdev" > "$TEST_TMP/fsck" 2>&1 || fail "$1: e2fsck: $(cat "$TEST_TMP/fsck")"
	fsck_runs=$((fsck_runs + 1))
}
majmin() { # majmin: the cowchain device's MAJOR:MINOR
	local mm
	mm=$(stat -Lc '%t:%T' "$dev")
	echo "$((16#${mm%:*})):$((16#${mm#*:}))"
}
# counts of what went through the device (its stat: sectors written and
# discarded; a bio-based device counts no flushes), added up before each detach
count_io() {
	local s
	read -r -a s < "/sys/dev/block/$(majmin)/stat"
	bytes_w=$((bytes_w + s[6] * 512))
	bytes_disc=$((bytes_disc + ${s[13]:-0} * 512))
}

fs_up() { # fs_up WHAT [new]: the dm-linear slices, (mkfs,) fsck, mount
	local mm
	mm=$(majmin)
	dmsetup create soak-raw --table "0 $((raw / 512)) linear $mm 0" ||
		fail "$1: dmsetup create soak-raw"
	dmsetup create soak-fs --table "0 $(((size - raw) / 512)) linear $mm $((raw / 512))" ||
		fail "$1: dmsetup create soak-fs"
	[ "${2:-}" = new ] && { mkfs.ext4 -q -F -b 4096 "$fsdev" || fail "mkfs.ext4"; }
	fsck_clean "$1"
	mount -o discard "$fsdev" "$m" || fail "$1: mount"
}
fs_down() { # fs_down WHAT: umount, fsck, remove the slices
	umount "$m" || fail "$1: umount"
	fsck_clean "$1"
	dm_remove soak-fs || fail "$1: remove soak-fs"
	dm_remove soak-raw || fail "$1: remove soak-raw"
}
attach() { # attach WHAT
	local got
	got=$("$CC" attach soak "${files[0]}") || fail "$1: attach ${files[0]}"
	assert_eq "$dev" "$got" "$1: attach prints the device"
	check_status "$1"
}

# manifest DIR: sha256 of every file under the mount's DIR
manifest() { (cd "$m" && find "$1" -type f -print0 | sort -z | xargs -0 -r sha256sum); }
# check_manifests WHAT: every kept round directory reads as recorded
check_manifests() {
	local f w
	for f in "$st"/man/w*; do
		[ -e "$f" ] || continue
		w=$(basename "$f")
		manifest "$w" > "$TEST_TMP/now"
		diff -u "$f" "$TEST_TMP/now" >&2 || fail "$1: files of $w changed"
	done
}
# check_slots WHAT [SKIP]: every raw slot but SKIP has its recorded checksum
check_slots() {
	local s
	for ((s = 0; s < nslot; s++)); do
		[ "$s" = "${2:-}" ] && continue
		assert_eq "$(cat "$st/slot$s")" "$(sum_range $((s * slot)) "$slot")" \
			"$1: raw slot $s (last written in round $(cat "$st/slot$s.round"))"
	done
}

# ------------------------------------------------------------- workloads

# raw_fio ROUND SLOT: the block workload, its output in $st/fio-raw.ROUND
raw_fio() {
	local base=$(($2 * slot))
	cat > "$st/raw.fio" <<-EOF
	[global]
	filename=$dev
	direct=1
	ioengine=libaio
	iodepth=4
	verify_fatal=1
	randseed=$((seed + $1))
	[rnd]
	rw=randwrite
	offset=$base
	size=$part_a
	bssplit=512/10:4k/35:16k/25:64k/20:256k/10
	verify=crc32c
	fsync=16
	[seq]
	rw=write
	offset=$((base + part_a))
	size=$part_b
	bs=1M
	verify=md5
	end_fsync=1
	[trimwrite]
	rw=randtrimwrite
	offset=$((base + part_a + part_b))
	size=$part_c
	bsrange=4k-64k
	blockalign=4k
	verify=crc32c
	fdatasync=8
	EOF
	fio "$st/raw.fio" --output="$st/fio-raw.$1"
}

# zero_worker SLOT: random data over the slot's last part, then discards
# (4 KiB aligned: whole sub-blocks) and zero-outs (any 512-byte range)
# over pieces of it; the model file is what must read back
zero_worker() {
	local base=$(($1 * slot + part_a + part_b + part_c)) i off len
	head -c "$part_d" /dev/urandom > "$st/zmodel"
	dd if="$st/zmodel" of="$dev" bs=1M seek=$((base / mib)) oflag=direct conv=fsync \
		status=none || return 1
	for ((i = 0; i < 24; i++)); do
		if ((i % 2)); then
			off=$(( (RANDOM % (part_d / 4096 - 16)) * 4096 ))
			len=$(( (RANDOM % 16 + 1) * 4096 ))
			blkdiscard -o $((base + off)) -l "$len" "$zdev" || return 1
		else
			off=$(( (RANDOM % (part_d / 512 - 256)) * 512 ))
			len=$(( (RANDOM % 256 + 1) * 512 ))
			blkdiscard -z -o $((base + off)) -l "$len" "$zdev" || return 1
		fi
		dd if=/dev/zero of="$st/zmodel" bs=512 seek=$((off / 512)) count=$((len / 512)) \
			conv=notrunc status=none
		echo op >> "$st/zops"
	done
	dd if="$dev" of="$st/zread" bs=1M skip=$((base / mib)) count=$((part_d / mib)) \
		iflag=direct status=none || return 1
	cmp "$st/zmodel" "$st/zread" >&2 || { echo "discard/zero-out model differs" >&2; return 1; }
}

# fs_fio ROUND: four files in the round's directory, O_DIRECT, verified
fs_fio() {
	mkdir -p "$m/w$1/fio"
	fio --name=fsfio --directory="$m/w$1/fio" --nrfiles=4 --size=6M --filesize=1M-2M \
		--rw=randwrite --bssplit=4k/50:32k/30:128k/20 --ioengine=psync --direct=1 --fsync=8 \
		--verify=crc32c --verify_fatal=1 --randseed=$((seed + $1)) \
		--output="$st/fio-fs.$1"
}

# churn ROUND: file operations in the round's directory until $st/stop
churn() {
	local dir=$m/w$1/c n=0 f g
	mkdir -p "$dir"
	rm -rf "$m/w$(($1 - 3))"
	while [ ! -e "$st/stop" ] && ((n < 2000)); do
		f=$dir/f$((RANDOM % 48))
		g=$dir/d$((RANDOM % 6))
		case $((RANDOM % 9)) in
		0 | 1) head -c $((RANDOM * 4 % 150000)) /dev/urandom > "$f" ;;
		2) head -c $((RANDOM % 9000)) /dev/urandom >> "$f" ;;
		3) [ ! -e "$f" ] || truncate -s $((RANDOM * 3)) "$f" ;;
		4) [ ! -e "$f" ] || mv -f "$f" "$dir/f$((RANDOM % 48))" ;;
		5) rm -f "$f" ;;
		6) [ ! -e "$f" ] || ln -f "$f" "$dir/h$((RANDOM % 8))" ;;
		7) mkdir -p "$g" && head -c $((RANDOM)) /dev/urandom > "$g/g$((RANDOM % 8))" ;;
		8) dd if=/dev/urandom of="$f" bs=4k count=$((RANDOM % 8 + 1)) \
			seek=$((RANDOM % 32)) conv=fsync,notrunc status=none ;;
		esac || return 1
		n=$((n + 1))
		((n % 50)) || sync -f "$dir"
	done
	echo "$n" > "$st/churn.$1"
}

# -------------------------------------------------------------- merges

# merge_one MODE: one offline merge (parent, children, auto, root, budget)
merge_one() {
	local mode=$1 n=${#files[@]} i victim args=() gone=-1 k before=() after
	if [ "$mode" = root ]; then
		i=$((n - 1))
	elif [ "$mode" = budget ]; then
		i=$((n - 2))
	else
		i=$((1 + RANDOM % (n - 2)))
	fi
	victim=${files[i]}
	case $mode in
	parent | budget) args=(--direction parent --batch 1M "$victim") ;;
	children | root) args=(--into-children "$victim") ;;
	auto) args=("$victim") ;;
	esac
	"$CC" merge --plan "${args[@]}" > "$TEST_TMP/plan" 2>&1 ||
		fail "merge --plan ${args[*]}: $(cat "$TEST_TMP/plan")"
	"$CC" merge "${args[@]}" > "$TEST_TMP/merge.out" 2>&1 ||
		fail "merge ${args[*]} (depth $n): $(cat "$TEST_TMP/merge.out")"
	# exactly one file went: the victim, or (children, auto) its parent
	for ((k = 0; k < n; k++)); do
		if [ ! -e "${files[k]}" ]; then
			((gone < 0)) || fail "merge ${args[*]}: more than one layer deleted"
			gone=$k
		fi
	done
	if [ "$mode" = auto ]; then
		# into the parent deletes the victim, its parent into its
		# children deletes the parent
		[ "$gone" = "$i" ] || [ "$gone" = $((i + 1)) ] ||
			fail "merge ${args[*]}: deleted layer $gone of $n"
	else
		assert_eq "$i" "$gone" "merge ${args[*]}: the layer deleted"
	fi
	before=("${files[@]}")
	files=("${before[@]:0:gone}" "${before[@]:gone+1}")
	case $mode in
	parent) n_parent=$((n_parent + 1)) ;;
	children) n_children=$((n_children + 1)) ;;
	auto) n_auto=$((n_auto + 1)) ;;
	root) n_root=$((n_root + 1)) ;;
	budget) n_budget=$((n_budget + 1)) ;;
	esac
	log "  merge ${args[*]##*/}: $(basename "${before[gone]}") deleted, depth $n -> ${#files[@]}"
	check_chain "after merge ${args[*]}"
	check_clean "after merge ${args[*]}"
	after=$(sum_lib)
	assert_eq "$want_sum" "$after" "the library's disk after merge ${args[*]}"
}

# merge_phase WHAT: detach, check, merges, re-attach, check
modes=(parent children auto root)
nmerge=0
merge_phase() {
	local k s t0=$SECONDS
	fs_down "$1"
	want_sum=$(sum_dev)
	count_io
	"$CC" detach soak || fail "$1: detach"
	dm_exists soak && fail "$1: soak still exists after detach"
	check_chain "$1"
	check_clean "$1"
	assert_eq "$want_sum" "$(sum_lib)" "$1: the library's disk vs the device's"
	note_storage
	for ((k = 0; k < merges_per && ${#files[@]} >= 3; k++)); do
		merge_one "${modes[nmerge % 4]}"
		nmerge=$((nmerge + 1))
	done
	while s=$(storage) && ((s > max_mb && ${#files[@]} >= 3)); do
		log "  images use $s MiB (budget $max_mb)"
		merge_one budget
	done
	phases=$((phases + 1))
	attach "$1: re-attach"
	assert_eq "$want_sum" "$(sum_dev)" "$1: the device's disk after the merges"
	fs_up "$1: re-attach"
	check_manifests "$1: re-attach"
	log "  offline phase: $((SECONDS - t0))s, depth ${#files[@]}, images $(storage) MiB"
}

# ----------------------------------------------------------------- setup

new_file
files=("$nf")
"$CC" create "${files[0]}" --size "${size_mb}M" >/dev/null || fail "create"
attach "setup"
fs_up "setup" new
zero=$(head -c "$slot" /dev/zero | sha256sum | cut -d' ' -f1)
for ((s = 0; s < nslot; s++)); do echo "$zero" > "$st/slot$s"; echo 0 > "$st/slot$s.round"; done
: > "$st/zops"
note_depth

# ---------------------------------------------------------------- rounds

start=$SECONDS
while ((SECONDS - start < soak_seconds)); do
	rounds=$((rounds + 1))
	r=$rounds
	s=$((r % nslot))
	t0=$SECONDS
	rm -f "$st/stop" "$st/man/w$((r - 3))"   # churn deletes that directory
	raw_fio "$r" "$s" 2> "$st/fio-raw.err.$r" & p_raw=$!
	zero_worker "$s" > "$st/zero.$r" 2>&1 & p_zero=$!
	fs_fio "$r" 2> "$st/fio-fs.err.$r" & p_fsfio=$!
	churn "$r" > "$st/churn.err.$r" 2>&1 & p_churn=$!
	for ((k = 0; k < snaps; k++)); do
		sleep $((1 + RANDOM % 4))
		busy=no
		kill -0 "$p_raw" 2>/dev/null && busy=yes
		new_file
		f=$nf
		got=$("$CC" snapshot soak "$f") || fail "round $r: snapshot $((k + 1)) (busy: $busy)"
		assert_eq "$f" "$(readlink -f "$got")" "round $r: snapshot name"
		files=("$f" "${files[@]}")
		nsnap=$((nsnap + 1))
		[ "$busy" = yes ] && nsnap_io=$((nsnap_io + 1))
		check_status "round $r: snapshot $((k + 1))"
		note_depth
	done
	wait "$p_raw" || fail "round $r: fio on the raw slot $s:" \
		"$(cat "$st/fio-raw.$r" "$st/fio-raw.err.$r")"
	touch "$st/stop"
	wait "$p_zero" || fail "round $r: discard/zero-out worker: $(cat "$st/zero.$r")"
	wait "$p_fsfio" || fail "round $r: fio on ext4: $(cat "$st/fio-fs.$r" "$st/fio-fs.err.$r")"
	for o in "$st"/*.err."$r" "$st/zero.$r"; do
		[ ! -s "$o" ] || log "round $r: $(basename "$o"): $(cat "$o")"
	done
	wait "$p_churn" || fail "round $r: churn: $(cat "$st/churn.err.$r")"
	for o in "$st/fio-raw.$r" "$st/fio-fs.$r"; do
		if ! grep -q 'err= 0' "$o" || grep -q 'err=[ ]*[1-9]' "$o"; then
			fail "round $r: fio reported errors: $(cat "$o")"
		fi
	done
	churn_ops=$((churn_ops + $(cat "$st/churn.$r")))
	sync -f "$m"
	fstrim "$m" >/dev/null || fail "round $r: fstrim"
	# the model: the slot written now, the other slots unchanged
	sum_range $((s * slot)) "$slot" > "$st/slot$s"
	echo "$r" > "$st/slot$s.round"
	check_slots "round $r" "$s"
	check_manifests "round $r"
	manifest "w$r" > "$st/man/w$r"
	note_storage
	log "round $r: $((SECONDS - t0))s, slot $s, depth ${#files[@]}," \
		"$(cat "$st/churn.$r") file ops, images $(storage) MiB"
	if ((r % merge_every == 0)) && ((SECONDS - start < soak_seconds)); then
		merge_phase "round $r"
	fi
done

# ----------------------------------------------------------------- end

log "final checks"
((nmerge > 0)) || merge_phase "final merges"
check_slots "final"
check_manifests "final"
fs_down "final"
want_sum=$(sum_dev)
count_io
"$CC" detach soak || fail "final detach"
check_chain "final"
check_clean "final"
assert_eq "$want_sum" "$(sum_lib)" "final: the library's disk vs the device's"
((nsnap_io > 0)) || fail "no snapshot was taken while fio ran: rounds too short"
((bytes_disc > 0)) || fail "no discard reached the device"
((bytes_w > 0)) || fail "the device's statistics count no write"
log "done in $((SECONDS - start))s: $rounds rounds, $nsnap snapshots ($nsnap_io under fio)," \
	"$nmerge merges in $phases offline phases (into the parent $n_parent, into the children" \
	"$n_children, tool's choice $n_auto, root into its child $n_root; $n_budget more for space)"
log "written $((bytes_w / mib)) MiB, discarded $((bytes_disc / mib)) MiB through the device" \
	"(mkfs and fstrim included); $(wc -l < "$st/zops") discard/zero-out ops checked against the model;" \
	"$churn_ops file ops; $fsck_runs e2fsck runs clean"
log "depth reached $depth_max, final ${#files[@]}; images at most $storage_max MiB;" \
	"final disk sha256 $want_sum"
log "ok"

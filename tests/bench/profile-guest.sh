#!/bin/bash
# Where the time of one workload goes, cowchain against dm-linear, in the
# guest (a profile, not a benchmark: nothing here is a ratio to publish):
#
#   scripts/vm-run.sh --kernel KVER --out DIR -- tests/bench/profile-guest.sh [WORKLOAD...]
#
# WORKLOAD: ow4k (4k random overwrite in the top, QD1), rr4k (4k random
# read in the top, QD1), fw4k-fsync (a 4k first write into each cluster,
# fsync after each: a commit per write), fsync-ow4k (4k overwrite + fsync:
# nothing to commit), rd1m (1 MiB sequential reads in the top, QD4).
# Default: all five.
#
# Per workload and device: fio runs PROFILE_SECONDS (default 8) under
# `perf record -a -g -e cpu-clock`; printed: fio's IOPS, the samples per
# dso, the hottest symbols, the share of the samples in dm_cowchain,
# dm_mod and brd (by their symbols in /proc/kallsyms), and for cowchain
# the target's own symbols.  Kept in $COWCHAIN_OUT/profile/ (perf.data files and reports).
# The devices are as in bench-guest.sh: RAM disks, a chain of two (root
# with data at [0, 8 MiB): no workload here reads the parent; top data at
# [128, 160 MiB)), dm-linear on a pre-filled RAM disk of its own.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$here/../.." && pwd)
OUT=${COWCHAIN_OUT:-/tmp/cowchain-out}/profile
SECS=${PROFILE_SECONDS:-8}
export DM_DISABLE_UDEV=1
W=/tmp/profile
mkdir -p "$OUT" "$W"
log() { echo "profile: $(date +%T) $*"; }
die() { log "FATAL: $*"; exit 1; }
command -v perf >/dev/null || die "perf is not installed (scripts/install-deps.sh installs linux-perf)"
[ $# -gt 0 ] && work=("$@") || work=(ow4k rr4k fw4k-fsync fsync-ow4k rd1m)

cp "$TOP/userspace/cowchain" "$W/cowchain"; CC=$W/cowchain
ko="$TOP/build/kmod/$(uname -r)/dm-cowchain.ko"
[ -f "$ko" ] || die "$ko missing (make modules)"
cp "$ko" "$W/"
modprobe dm-mod
for dep in $(modinfo -F depends "$W/dm-cowchain.ko" | tr , ' '); do modprobe "$dep"; done
insmod "$W/dm-cowchain.ko" || die "insmod"
# kernel symbols for perf
echo 0 > /proc/sys/kernel/kptr_restrict
echo -1 > /proc/sys/kernel/perf_event_paranoid

M=$((1024 * 1024)); V=512
modprobe brd rd_nr=3 rd_size=$(( (V + 64) * 1024 )) max_part=0 || die "brd"
fio --name=fill --filename=/dev/ram0 --rw=write --bs=1M --iodepth=8 --direct=1 --ioengine=libaio \
	--size=${V}M --buffer_pattern=0x5a --output=/dev/null --eta=never || die "prefill"
dmsetup create p-lin --table "0 $((V * 2048)) linear /dev/ram0 0" || die "linear"
"$CC" create "$W/root.cow" --size ${V}M >/dev/null || die "create root"
"$CC" write "$W/root.cow" --offset 0 --pattern 0xa5 --length $((8 * M)) >/dev/null || die "write root"
"$CC" create "$W/top.cow" --parent "$W/root.cow" >/dev/null || die "create top"
dd if=/dev/zero of=/dev/ram1 bs=1M count=200 oflag=direct status=none || die "zerofill top"
python3 "$here/sparse-copy.py" "$W/root.cow" /dev/ram2 "$W/top.cow" /dev/ram1 || die "sparse-copy"
dmsetup create p-cc --table "0 $((V * 2048)) cowchain /dev/ram1 1 /dev/ram2 -" || die "cowchain"
fio --name=td --filename=/dev/mapper/p-cc --rw=write --bs=1M --iodepth=4 --direct=1 --ioengine=libaio \
	--offset=$((128 * M)) --size=$((32 * M)) --output=/dev/null --eta=never || die "top data"
sync

TDR=(--offset=$((128 * M)) --size=$((32 * M)))
slice=0
# args WORKLOAD: fio's options for it (a fresh 8 MiB slice of empty space
# for each first-write run)
args() {
	case $1 in
	ow4k) echo "--rw=randwrite --bs=4k --iodepth=1 ${TDR[*]} --time_based --runtime=$SECS" ;;
	rr4k) echo "--rw=randread --bs=4k --iodepth=1 ${TDR[*]} --time_based --runtime=$SECS" ;;
	fsync-ow4k) echo "--rw=randwrite --bs=4k --iodepth=1 --fsync=1 ${TDR[*]} --time_based --runtime=$SECS" ;;
	rd1m) echo "--rw=read --bs=1M --iodepth=4 ${TDR[*]} --time_based --runtime=$SECS" ;;
	fw4k-fsync)
		slice=$((slice + 1))
		echo "--rw=write:60k --bs=4k --iodepth=1 --fsync=1 --offset=$(( (160 + slice * 8) * M )) --size=$((8 * M))" ;;
	*) die "unknown workload $1" ;;
	esac
}
for w in "${work[@]}"; do
	for pd in linear=/dev/mapper/p-lin cowchain=/dev/mapper/p-cc; do
		p=${pd%%=*}; d=${pd#*=}
		n=$w.$p
		# shellcheck disable=SC2046 # args: fio options, split on purpose
		perf record -q -a -g -e cpu-clock -o "$OUT/$n.data" -- \
			fio --name="$n" --filename="$d" --direct=1 --ioengine=libaio $(args "$w") \
			--output-format=json --output="$OUT/$n.json" > "$OUT/$n.record.log" 2>&1 ||
			die "perf record $n: $(tail -n 5 "$OUT/$n.record.log")"
		iops=$(jq '.jobs[0].read.iops + .jobs[0].write.iops' "$OUT/$n.json")
		perf report -i "$OUT/$n.data" --kallsyms=/proc/kallsyms --no-children --sort dso --stdio -g none 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -n 12 > "$OUT/$n.dso.txt"
		perf report -i "$OUT/$n.data" --kallsyms=/proc/kallsyms --no-children --sort dso,sym --stdio -g none 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -n 40 > "$OUT/$n.sym.txt"
		log "$n: $(printf '%.0f' "$iops") IOPS; samples by module:"
		sed 's/^/    /' "$OUT/$n.dso.txt"
		log "$n: hottest symbols:"
		head -n 25 "$OUT/$n.sym.txt" | sed 's/^/    /'
		# kernel symbols resolve through kallsyms, modules' too, so the
		# module split is made from each module's symbols
		perf report -i "$OUT/$n.data" --kallsyms=/proc/kallsyms --no-children --sort sym --stdio \
			-g none 2>/dev/null | grep '%' > "$OUT/$n.allsym.txt"
		for mod in dm_cowchain dm_mod brd; do
			awk -v m="[$mod]" '$4 == m {print $3}' /proc/kallsyms | sort -u > "$W/$mod.syms"
			printf '%s %s\n' "$mod" "$(awk 'NR == FNR {s[$1] = 1; next} ($NF in s) {t += $1} END {printf "%.2f%%", t}' \
				"$W/$mod.syms" "$OUT/$n.allsym.txt")"
		done > "$OUT/$n.modules.txt"
		log "$n: samples in modules: $(tr '\n' ' ' < "$OUT/$n.modules.txt")"
		if [ "$p" = cowchain ]; then
			log "$n: the target's own symbols:"
			awk 'NR == FNR {s[$1] = 1; next} ($NF in s)' "$W/dm_cowchain.syms" "$OUT/$n.allsym.txt" |
				head -n 15 | sed 's/^/    /'
		fi
	done
done
dmsetup remove p-cc; dmsetup remove p-lin
rmmod dm-cowchain
log "done"

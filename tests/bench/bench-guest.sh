#!/bin/bash
# Benchmark driver; runs inside the guest (scripts/bench.sh starts it through
# scripts/vm-run.sh).  Every cell is fio (direct=1, libaio) on a RAM-backed
# device (brd, pre-filled), run interleaved with dm-linear on the same kind
# of device in the same boot: rep 1 linear, rep 1 peers, rep 2 linear, ...
#
# Writes to $COWCHAIN_OUT/bench/:
#   cells.tsv       row <TAB> peer <TAB> rep <TAB> iops <TAB> MiB/s <TAB> note
#   raw/ROW.json    fio's JSON for every row (a job per cell; a cell run
#                   again by itself: raw/ROW.PEER.REP.json)
#   extra.tsv       key <TAB> value (activation, memory, setup facts)
#   notes.txt       what was skipped and why
#
# BENCH_QUICK=1: the 5-minute subset: 3 reps, 2 s per timed cell, the rows
# that carry a target (QUICK_ROWS below) at depths 2 and 16, no qcow2 and no
# dm-snapshot origin rows, and only the io group unless BENCH_GROUPS says.
# BENCH_GROUPS: which groups of rows run, default all of "io loop ext4 act"
# (io: the RAM-disk rows against every peer, depth rows included; loop;
# ext4; act: activation time and memory).
# BENCH_REPS, BENCH_RUNTIME: override the reps and the seconds per cell.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$here/../.." && pwd)
OUT=${COWCHAIN_OUT:-/tmp/cowchain-out}/bench
QUICK=${BENCH_QUICK:-0}
export DM_DISABLE_UDEV=1
mkdir -p "$OUT/raw"
: > "$OUT/cells.tsv"; : > "$OUT/extra.tsv"; : > "$OUT/notes.txt"
W=/tmp/bench; mkdir -p "$W"

if [ "$QUICK" = 1 ]; then REPS=3; RT=2; else REPS=5; RT=4; fi
REPS=${BENCH_REPS:-$REPS}; RT=${BENCH_RUNTIME:-$RT}
log() { echo "bench: $(date +%T) $*"; }
note() { echo "$*" >> "$OUT/notes.txt"; log "NOTE: $*"; }
extra() { printf '%s\t%s\n' "$1" "$2" >> "$OUT/extra.tsv"; }
die() { log "FATAL: $*"; exit 1; }
if [ "$QUICK" = 1 ]; then GROUPS_RUN=" ${BENCH_GROUPS:-io} "
else GROUPS_RUN=" ${BENCH_GROUPS:-io loop ext4 act} "; fi
# the quick subset: a row for every target of the RAM-disk rows
QUICK_ROWS="rr4k-qd1-top ow4k-qd1 fsync-ow4k fw4k cu4k fsync-fw4k rr4k-depth* cu4k-depth*"
[ "$QUICK" = 1 ] && [ -z "${BENCH_ROWS:-}" ] && BENCH_ROWS=$QUICK_ROWS
want() { [[ $GROUPS_RUN == *" $1 "* ]]; }

# private copies: the host may rebuild these while we run
cp "$TOP/userspace/cowchain" "$W/cowchain"; CC=$W/cowchain
ko="$TOP/build/kmod/$(uname -r)/dm-cowchain.ko"
[ -f "$ko" ] || die "$ko missing (make modules)"
cp "$ko" "$W/"
modprobe dm-mod; modprobe dm-bufio 2>/dev/null
for dep in $(modinfo -F depends "$W/dm-cowchain.ko" | tr , ' '); do modprobe "$dep"; done
insmod "$W/dm-cowchain.ko" || die "insmod"
modprobe dm-thin-pool || note "dm-thin-pool not loadable"
modprobe dm-snapshot || note "dm-snapshot not loadable"
modprobe loop
extra kernel "$(uname -r)"
extra ko_srcversion "$(modinfo -F srcversion "$W/dm-cowchain.ko")"
extra guest_mem_mib $(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 ))
extra guest_cpus "$(nproc)"
extra reps "$REPS"; extra runtime_s "$RT"

M=$((1024 * 1024))
# Layout of every virtual disk (MiB): parent data, top data, empty, never written.
V=512
PD=0;    PDLEN=128     # held by the root layer (the parent)
TD=128;  TDLEN=32      # written in the top before the rows
EM=160                 # empty: first writes, one slice per rep and row
NV=448;  NVLEN=64      # never written anywhere
SL=8                   # slice size (MiB): 128 clusters of 64 KiB
if [ "$QUICK" = 1 ]; then DEPTHS_R="2 16"; DEPTHS_W="16"; SNAPN=""
else DEPTHS_R="2 8 32 64"; DEPTHS_W="4 16 64"; SNAPN="1 4 16"; fi

# ------------------------------------------------------------------ brd
NRAM=216   # every peer, control and layer has its own; the snapshot-origin rows take the last
modprobe brd rd_nr=$NRAM rd_size=$(( (V + 64) * 1024 )) max_part=0 || die "brd"
next_ram=0
# ram: the next unused RAM disk in $R (no command substitution: it must count)
ram() { R=/dev/ram$next_ram; next_ram=$((next_ram + 1)); }
# prefill DEV MIB [FROM_MIB]: write MIB MiB of non-zero data (from FROM_MIB
# on) so brd's pages exist
prefill() {
	fio --name=fill --filename="$1" --rw=write --bs=1M --iodepth=8 --direct=1 \
		--ioengine=libaio --offset="${3:-0}M" --size="${2}M" --buffer_pattern=0x5a \
		--output=/dev/null --eta=never || die "prefill $1"
}
# write_cache DEV: "write back" or "write through", as its queue says
# (by device number: without udev, /dev/mapper/X is a node, not a link)
write_cache() {
	cat "/sys/dev/block/$((0x$(stat -L -c %t "$1"))):$((0x$(stat -L -c %T "$1")))/queue/write_cache"
}
zerofill() {  # DEV MIB: zeroes (for devices that hold layer images)
	dd if=/dev/zero of="$1" bs=1M count="$2" oflag=direct status=none || die "zerofill $1"
}
dmc() { dmsetup create "$1" --table "$2" || die "dmsetup create $1: $2"; }

# ------------------------------------------------------------------ fio cells
T() { echo "--time_based --runtime=$RT"; }
# slice REGION_MIB SLOT REP: offset (bytes) of this rep's 16 MiB slice
slice() { echo $(( ($1 + ($2 + $3 - 1) * SL) * M )); }

# tsv_of JSON ROW-TSV [p50]: a cells.tsv line per job fio reports as done.
# Timed rows: fio's IOPS.  p50, for rows written in slices and not timed
# (QD1, 64 to 128 writes a cell, a few milliseconds on a fast host, where fio's IOPS
# come from a runtime in whole milliseconds and one slow write moves the
# mean): 10^9 / the median latency of a write (submission to completion,
# --lat_percentiles), plus the median fsync latency where the row has
# fsyncs; the note column says "p50".
tsv_of() {
	if [ "${3:-}" = p50 ]; then
		jq -r '.jobs[] | select(.error == 0) | (.jobname | split(".")) as $c |
			(([.read, .write] | map(select(.total_ios > 0) | .lat_ns.percentile["50.000000"]) | add)
			 + (if (.sync.total_ios // 0) > 0 then .sync.lat_ns.percentile["50.000000"] else 0 end)) as $p |
			[$c[0], $c[1], $c[2], (1e9 / $p), ((.read.bw + .write.bw) / 1024), "p50"] | @tsv' \
			"$1" > "$2" 2>/dev/null || : > "$2"
	else
		jq -r '.jobs[] | select(.error == 0) | (.jobname | split(".")) as $c |
			[$c[0], $c[1], $c[2], (.read.iops + .write.iops),
			 ((.read.bw + .write.bw) / 1024), ""] | @tsv' "$1" > "$2" 2>/dev/null || : > "$2"
	fi
}

# row ROW "PEER=DEV ..." FIO-ARGS (with @S@ replaced by the rep's slice
# offset when SLICE is set in the environment as "REGION SLOT").  Every cell
# of the row is a job of one fio run, each started once the one before it
# has ended (--stonewall), in the order rep 1's peers, rep 2's, ...: one fio
# start per row, not per cell (a start costs seconds under TCG).  Appends a
# line per cell to cells.tsv.  When fio fails, the cells it did not report
# run again one fio each (one peer's device failing must not cost the
# others their cells); a cell that fails then too is NA "fio-failed".
row() {
	local r=$1 peers=$2 rep pd p d args g pats ok=1 list i n j k failed=0 metric=""
	local -a cells=() devs=() argv=() jobs=()
	shift 2
	[ -n "${SLICE:-}" ] && [[ " $* " != *" --time_based "* ]] && metric=p50
	if [ -n "${BENCH_ROWS:-}" ]; then	# only the rows asked for (globs)
		read -ra pats <<< "$BENCH_ROWS"
		ok=0
		for g in "${pats[@]}"; do
			# shellcheck disable=SC2053 # a glob on purpose
			[[ $r == $g ]] && ok=1
		done
	fi
	[ $ok = 1 ] || return 0
	log "row $r ($peers)"
	read -ra list <<< "$peers"
	n=${#list[@]}
	for ((rep = 1; rep <= REPS; rep++)); do
		# the order rotates by one each rep: no peer is always first
		for ((i = 0; i < n; i++)); do
			pd=${list[(i + rep - 1) % n]}
			p=${pd%%=*}; d=${pd#*=}
			args=("$@")
			if [ -n "${SLICE:-}" ]; then
				# shellcheck disable=SC2086
				args=("${args[@]//@S@/$(slice $SLICE "$rep")}")
			fi
			[ "$metric" = p50 ] && args+=(--lat_percentiles=1)
			cells+=("$p.$rep"); devs+=("$d"); argv+=("$(printf '%q ' "${args[@]}")")
			jobs+=(--name="$r.$p.$rep" --filename="$d" --stonewall "${args[@]}")
		done
	done
	j="$OUT/raw/$r.json"
	if ! fio --direct=1 --ioengine=libaio --output-format=json --output="$j" "${jobs[@]}" \
		> "$OUT/raw/$r.err" 2>&1; then
		log "fio failed: $r: $(tail -c 300 "$OUT/raw/$r.err")"
		failed=1
	else
		rm -f "$OUT/raw/$r.err"
	fi
	tsv_of "$j" "$W/row.tsv" "$metric"
	for ((k = 0; k < ${#cells[@]}; k++)); do
		p=${cells[k]%.*}; rep=${cells[k]##*.}
		if ! awk -F'\t' -v p="$p" -v n="$rep" '$2 == p && $3 == n {f = 1} END {exit !f}' \
			"$W/row.tsv" && [ $failed = 1 ]; then
			# again by itself
			j="$OUT/raw/$r.$p.$rep.json"
			eval "args=(${argv[k]})"
			fio --direct=1 --ioengine=libaio --output-format=json --output="$j" \
				--name="$r.$p.$rep" --filename="${devs[k]}" "${args[@]}" \
				> "$OUT/raw/$r.$p.$rep.err" 2>&1 &&
				rm -f "$OUT/raw/$r.$p.$rep.err"
			tsv_of "$j" "$W/cell.tsv" "$metric"
			cat "$W/cell.tsv" >> "$W/row.tsv"
		fi
		if awk -F'\t' -v p="$p" -v n="$rep" '$2 == p && $3 == n {f = 1} END {exit !f}' \
			"$W/row.tsv"; then
			awk -F'\t' -v p="$p" -v n="$rep" '$2 == p && $3 == n' "$W/row.tsv" >> "$OUT/cells.tsv"
		else
			log "fio failed: $r $p rep $rep"
			printf '%s\t%s\t%s\tNA\tNA\tfio-failed\n' "$r" "$p" "$rep" >> "$OUT/cells.tsv"
		fi
	done
}

# ------------------------------------------------------------------ baseline
ram; LIN=$R; prefill "$LIN" $V
dmc b-lin "0 $((V * 2048)) linear $LIN 0"
lin=/dev/mapper/b-lin

# ------------------------------------------------------------------ controls
# Peers of the rows in the top (4k and 1M) that tell cowchain's own cost from the
# run's noise and from dm core's, each on its own RAM disk, pre-filled where
# those rows go (top data and never-written space):
#   linear-b   dm-linear again: an A/A control, 1.00 but for the noise
#   flakey     dm-flakey with no faults: the smallest target that, like
#              cowchain, has an end_io and per-bio data
#   linear-wc  (fsync rows) dm-linear over a RAM disk whose queue says it
#              has a write cache, so that an fsync sends a flush through dm
#              as it does through cowchain: cowchain's device has a write
#              cache whatever its layers have (its commits need the
#              flushes), while brd has none and a flush to dm-linear over
#              it ends in the block layer.  6.1 lets the queue be told so;
#              where the kernel refuses, no linear-wc cells.
CTL="" CTL_WC=""
ctl_ram() { ram; prefill "$R" "$TDLEN" "$TD"; prefill "$R" "$NVLEN" "$NV"; }
ctl_ram; dmc b-linb "0 $((V * 2048)) linear $R 0" && CTL="linear-b=/dev/mapper/b-linb"
if modprobe dm-flakey 2>/dev/null; then
	ctl_ram; dmc b-flakey "0 $((V * 2048)) flakey $R 0 3600 0" && CTL="$CTL flakey=/dev/mapper/b-flakey"
else
	note "dm-flakey not loadable: no flakey cells"
fi
ctl_ram
if echo "write back" > "/sys/block/${R#/dev/}/queue/write_cache" 2>/dev/null &&
	dmsetup create b-linwc --table "0 $((V * 2048)) linear $R 0" &&
	[ "$(write_cache /dev/mapper/b-linwc)" = "write back" ]; then
	CTL_WC="linear-wc=/dev/mapper/b-linwc"
else
	note "linear-wc: this kernel does not let brd's queue say it has a write cache: no linear-wc cells"
fi
extra write_cache_linear "$(write_cache "$lin")"

# ------------------------------------------------------------------ cowchain chains
# Root: parent data over PD; a spine of 62 near-empty layers, each holding
# a few clusters and sub-blocks in the top-data range (so the resolved
# index holds entries of every layer); tops of depth 2..64 are children of
# the spine.  Images are built as sparse files with the tool, then copied
# extent by extent onto zero-filled RAM disks.
log "copying chains onto RAM disks"
# The images are built on the host by tests/bench/mkimages.sh (the tool is
# slow under emulation): $BENCH_IMG holds them.
[ -f "${BENCH_IMG:?BENCH_IMG: directory of images from tests/bench/mkimages.sh}.tar" ] || die "no $BENCH_IMG.tar"
IMG=$W/img; mkdir -p "$IMG"
tar -C "$IMG" --sparse -xzf "$BENCH_IMG.tar" || die "untar images"
declare -A SPINE; SPINE[1]=$IMG/root.cow
for ((i = 2; i <= 63; i++)); do SPINE[$i]=$IMG/s$i.cow; done
ALLD=$(echo "$DEPTHS_R $DEPTHS_W 2 4" | tr ' ' '\n' | sort -nu | tr '\n' ' ')
declare -A LDEV   # layer file -> ram device
copies=()
maxd=$(echo "$ALLD" | tr ' ' '\n' | sort -n | tail -1)
for ((i = 1; i < maxd; i++)); do
	# unwritten brd pages read as zeroes: only the image's extents are written
	ram; d=$R; LDEV[${SPINE[$i]}]=$d; copies+=("${SPINE[$i]}" "$d")
done
declare -A TDEV
for d in $ALLD; do
	case $d in 2) zf=200 ;; 4) zf=128 ;; *) zf=96 ;; esac
	ram; td=$R; zerofill "$td" $zf; TDEV[$d]=$td; copies+=("$IMG/t$d.cow" "$td")
done
python3 "$here/sparse-copy.py" "${copies[@]}" || die "sparse-copy"
for d in $ALLD; do
	anc=""
	for ((i = d - 1; i >= 1; i--)); do anc="$anc ${LDEV[${SPINE[$i]}]}"; done
	dmc "b-cc$d" "0 $((V * 2048)) cowchain ${TDEV[$d]} $((d - 1))$anc -"
	extra "status_cc$d" "$(dmsetup status "b-cc$d")"
done
extra write_cache_cowchain "$(write_cache /dev/mapper/b-cc2)"
cc=/dev/mapper/b-cc2
# top data: written through the device
for d in $ALLD; do
	fio --name=td --filename="/dev/mapper/b-cc$d" --rw=write --bs=1M --iodepth=4 --direct=1 \
		--ioengine=libaio --offset=$((TD * M)) --size=$((TDLEN * M)) --output=/dev/null --eta=never || die "td $d"
done
sync

# ------------------------------------------------------------------ dm-thin
PEERS_R="cowchain=$cc"   # peers for read/overwrite rows
PEERS_W="cowchain=$cc"   # peers for first-write / copy-up rows
thin_setup() {  # NAME ZEROING(0|1)
	local n=$1 z=$2 md dd feat=""
	ram; md=$R; prefill "$md" 64; dd if=/dev/zero of="$md" bs=4096 count=1 oflag=direct status=none
	ram; dd=$R; prefill "$dd" 320
	[ "$z" = 0 ] && feat="1 skip_block_zeroing"
	dmc "b-$n-pool" "0 $(( (V + 16) * 2048 )) thin-pool $md $dd 128 0 ${feat:-0}" || return 1
	dmsetup message "b-$n-pool" 0 "create_thin 0" || return 1
	dmc "b-$n-base" "0 $((V * 2048)) thin /dev/mapper/b-$n-pool 0"
	fio --name=pd --filename="/dev/mapper/b-$n-base" --rw=write --bs=1M --iodepth=4 --direct=1 \
		--ioengine=libaio --offset=0 --size=$((PDLEN * M)) --buffer_pattern=0xa5 --output=/dev/null --eta=never
	dmsetup suspend "b-$n-base"
	dmsetup message "b-$n-pool" 0 "create_snap 1 0" || return 1
	dmsetup resume "b-$n-base"
	dmc "b-$n" "0 $((V * 2048)) thin /dev/mapper/b-$n-pool 1"
	fio --name=td --filename="/dev/mapper/b-$n" --rw=write --bs=1M --iodepth=4 --direct=1 \
		--ioengine=libaio --offset=$((TD * M)) --size=$((TDLEN * M)) --output=/dev/null --eta=never
}
if [ -d /sys/module/dm_thin_pool ]; then
	log "dm-thin"
	thin_setup thin 1 && { PEERS_R="$PEERS_R thin=/dev/mapper/b-thin"; PEERS_W="$PEERS_W thin=/dev/mapper/b-thin"; }
	thin_setup thinnz 0 && PEERS_W="$PEERS_W thin-nozero=/dev/mapper/b-thinnz"
fi

# ------------------------------------------------------------------ dm-snapshot
# one snapshot of an origin holding the parent data; the benchmarked device
# is the snapshot (writes to it copy a 64 KiB chunk up from the origin)
if [ -d /sys/module/dm_snapshot ]; then
	log "dm-snapshot"
	ram; so=$R; prefill "$so" $V
	ram; sc=$R; prefill "$sc" 200; dd if=/dev/zero of="$sc" bs=1M count=1 oflag=direct status=none
	dmc b-snap-o "0 $((V * 2048)) snapshot-origin $so"
	dmc b-snap "0 $((V * 2048)) snapshot $so $sc P 128"
	fio --name=td --filename=/dev/mapper/b-snap --rw=write --bs=1M --iodepth=4 --direct=1 \
		--ioengine=libaio --offset=$((TD * M)) --size=$((TDLEN * M)) --output=/dev/null --eta=never
	PEERS_R="$PEERS_R snapshot=/dev/mapper/b-snap"; PEERS_W="$PEERS_W snapshot=/dev/mapper/b-snap"
fi

# ------------------------------------------------------------------ qcow2 over qemu-nbd
declare -A QDEV
NBD_OK=0
# qemu-nbd -c binds a socket in /var/lock (-> /run/lock), which the
# guest's empty tmpfs /run lacks
mkdir -p /run/lock
if command -v qemu-nbd >/dev/null && modprobe nbd nbds_max=16 2>/dev/null; then NBD_OK=1
else note "qcow2: qemu-nbd or the nbd module is missing: no qcow2 cells"; fi
nbd_i=0
# qchain NAME DEPTH EXTL2(on|off): base with parent data + DEPTH-2 empty
# intermediates + top, each on its own RAM disk; exported on /dev/nbdN.
declare -A QBASE
qchain() {
	local n=$1 depth=$2 x=$3 base prev d i nbd
	if [ -z "${QBASE[$x]:-}" ]; then
		ram; base=$R
		qemu-img create -q -f qcow2 -o cluster_size=65536,extended_l2="$x" "$base" "${V}M" \
			2>>"$OUT/notes.txt" || return 1
		# parent data written into the base (shared by every chain) by
		# qemu-io, which has exited, and so dropped its image lock, when
		# the chains above open the base as their backing file (a
		# qemu-nbd server can outlive "qemu-nbd -d" for a moment)
		qemu-io -f qcow2 -t none -c "write -P 0xa5 0 $((PDLEN))M" "$base" >/dev/null \
			2>>"$OUT/notes.txt" || return 1
		QBASE[$x]=$base
	fi
	prev=${QBASE[$x]}
	for ((i = 2; i <= depth; i++)); do
		ram; d=$R
		qemu-img create -q -f qcow2 -o cluster_size=65536,extended_l2="$x" \
			-b "$prev" -F qcow2 "$d" "${V}M" 2>>"$OUT/notes.txt" || return 1
		prev=$d
	done
	nbd=/dev/nbd$nbd_i; nbd_i=$((nbd_i + 1))
	qemu-nbd -f qcow2 --cache=none --aio=native -c "$nbd" "$prev" 2>>"$OUT/notes.txt" || return 1
	sleep 0.5
	fio --name=td --filename=$nbd --rw=write --bs=1M --iodepth=4 --direct=1 --ioengine=libaio \
		--offset=$((TD * M)) --size=$((TDLEN * M)) --output=/dev/null --eta=never || return 1
	QDEV[$n]=$nbd
}
if [ "$QUICK" = 1 ]; then
	log "quick: no qcow2 (its chains take minutes to set up)"; NBD_OK=0
fi
if [ $NBD_OK = 1 ]; then
	log "qcow2"
	if qchain q2 2 off && qchain q2x 2 on; then
		PEERS_R="$PEERS_R qcow2=${QDEV[q2]} qcow2-xl2=${QDEV[q2x]}"
		PEERS_W="$PEERS_W qcow2=${QDEV[q2]} qcow2-xl2=${QDEV[q2x]}"
		# nbd's own cost: qemu-nbd exporting the raw linear device
		nbd=/dev/nbd$nbd_i; nbd_i=$((nbd_i + 1))
		if qemu-nbd -f raw --cache=none --aio=native -c "$nbd" "$lin"; then
			sleep 0.5; PEERS_R="$PEERS_R nbd-raw=$nbd"; PEERS_W="$PEERS_W nbd-raw=$nbd"; QDEV[raw]=$nbd
		fi
	else
		note "qcow2: setting up a qcow2 chain over qemu-nbd failed: no qcow2 cells"; NBD_OK=0
	fi
fi
if [ "$QUICK" = 1 ]; then PEERS_R=$(echo "$PEERS_R" | tr ' ' '\n' | grep -v '^nbd-raw=\|^qcow2-xl2=' | tr '\n' ' '); fi
extra peers_read "$PEERS_R"
extra peers_write "$PEERS_W"
free -m | sed 's/^/bench: /'

# ================================================================== rows
L="linear=$lin"
TDR="--offset=$((TD * M)) --size=$((TDLEN * M))"
if want io; then
# shellcheck disable=SC2046,SC2086
{
row rr4k-qd1-top  "$L $PEERS_R $CTL" --rw=randread --bs=4k --iodepth=1 $TDR $(T)
row rr4k-qd32-top "$L $PEERS_R" --rw=randread --bs=4k --iodepth=32 $TDR $(T)
row rr4k-never    "$L $PEERS_R" --rw=randread --bs=4k --iodepth=1 --offset=$((NV * M)) --size=$((NVLEN * M)) $(T)
row seqread-1m    "$L $PEERS_R $CTL" --rw=read --bs=1M --iodepth=4 $TDR $(T)
row seqwrite-1m   "$L $PEERS_R $CTL" --rw=write --bs=1M --iodepth=4 $TDR $(T)
row ow4k-qd1      "$L $PEERS_R $CTL" --rw=randwrite --bs=4k --iodepth=1 $TDR $(T)
row ow4k-qd32     "$L $PEERS_R $CTL" --rw=randwrite --bs=4k --iodepth=32 $TDR $(T)
row fsync-ow4k    "$L $PEERS_R $CTL $CTL_WC" --rw=randwrite --bs=4k --iodepth=1 --fsync=1 $TDR $(T)
# first writes: one 4 KiB write into each 64 KiB cluster of a fresh slice
SLICE="$EM 0" row fw4k "$L $PEERS_W" --rw=write:60k --bs=4k --iodepth=1 --offset=@S@ --size=$((SL * M))
SLICE="$PD 0" row cu4k "$L $PEERS_W" --rw=write:60k --bs=4k --iodepth=1 --offset=@S@ --size=$((SL * M))
SLICE="$PD 5" row cu64k "$L $PEERS_W" --rw=write --bs=64k --iodepth=1 --offset=@S@ --size=$((SL * M))
SLICE="$EM 5" row fsync-fw4k "$L $PEERS_W" --rw=write:60k --bs=4k --iodepth=1 --fsync=1 --offset=@S@ --size=$((SL * M / 2))
}

# depth rows: cowchain tops of each depth (data in the root); qcow2 chains
# of the same depth; dm-snapshot: origin writes with N snapshots
for d in $DEPTHS_R; do
	p="cowchain=/dev/mapper/b-cc$d"
	if [ $NBD_OK = 1 ] && [ "$d" != 2 ] && { [ "$QUICK" != 1 ] || [ "$d" -le 8 ]; }; then qchain "q$d" "$d" off && p="$p qcow2=${QDEV[q$d]}"; fi
	[ "$d" = 2 ] && [ $NBD_OK = 1 ] && p="$p qcow2=${QDEV[q2]}"
	# shellcheck disable=SC2046 # $(T): fio options, split on purpose
	row "rr4k-depth$d" "$L $p" --rw=randread --bs=4k --iodepth=1 --offset=$((PD * M)) --size=$((PDLEN * M)) $(T)
done
for d in $DEPTHS_W; do
	p="cowchain=/dev/mapper/b-cc$d"
	[ -n "${QDEV[q$d]:-}" ] && p="$p qcow2=${QDEV[q$d]}"
	SLICE="$PD 0" row "cu4k-depth$d" "$L $p" --rw=write:60k --bs=4k --iodepth=1 --offset=@S@ --size=$((SL * M))
done
if [ -d /sys/module/dm_snapshot ] && [ -n "$SNAPN" ]; then
	ram; so=$R; prefill "$so" $PDLEN
	dmc b-sn-o "0 $((V * 2048)) snapshot-origin $so"
	nmax=$(echo "$SNAPN" | tr ' ' '\n' | sort -n | tail -1)
	for ((i = 1; i <= nmax; i++)); do
		ram; sc=$R; zerofill "$sc" 1
		dmc "b-sn$i" "0 $((V * 2048)) snapshot $so $sc P 128"
	done
	slot=0
	for n in $(echo "$SNAPN" | tr ' ' '\n' | sort -rn); do
		for ((i = nmax; i > n; i--)); do dmsetup remove "b-sn$i"; done
		nmax=$n
		SLICE="$PD $slot" row "cu4k-snaporigin$n" "$L snapshot=/dev/mapper/b-sn-o" \
			--rw=write:60k --bs=4k --iodepth=1 --offset=@S@ --size=$((SL * M))
		slot=$((slot + REPS))
	done
fi
# 70/30 mix over a 4-layer chain (a 16 MiB slice of parent data per rep)
p="cowchain=/dev/mapper/b-cc4"
case " $PEERS_W " in *" thin="*) p="$p thin=/dev/mapper/b-thin" ;; esac
# shellcheck disable=SC2046 # $(T): fio options, split on purpose
SLICE="$PD 10" row mix7030-depth4 "$L $p" --rw=randrw --rwmixread=70 --bs=4k --iodepth=16 \
	--offset=@S@ --size=$((SL * M)) $(T)
fi

# ------------------------------------------------------------------ loop devices on files
# (tmpfs files, the loop driver's default buffered mode): cowchain depth 2
# on two loop devices vs dm-linear over a loop device on a same-size file
if want loop; then
log "loop"
LV=256
mkdir -p "$W/loop"
mv "$IMG/loop/r.cow" "$IMG/loop/t.cow" "$W/loop/"
lr=$(losetup -f --show --read-only "$W/loop/r.cow"); lt=$(losetup -f --show "$W/loop/t.cow")
dmc b-lcc "0 $((LV * 2048)) cowchain $lt 1 $lr -"
truncate -s $((LV + 16))M "$W/loop/lin.img"; ll=$(losetup -f --show "$W/loop/lin.img")
prefill "$ll" $((LV + 16))
dmc b-llin "0 $((LV * 2048)) linear $ll 0"
fio --name=td --filename=/dev/mapper/b-lcc --rw=write --bs=1M --iodepth=4 --direct=1 --ioengine=libaio \
	--offset=$((128 * M)) --size=$((32 * M)) --output=/dev/null --eta=never
LL="linear=/dev/mapper/b-llin"; LP="cowchain=/dev/mapper/b-lcc"
# shellcheck disable=SC2046
{
row loop-rr4k-top    "$LL $LP" --rw=randread --bs=4k --iodepth=1 --offset=$((128 * M)) --size=$((32 * M)) $(T)
row loop-rr4k-parent "$LL $LP" --rw=randread --bs=4k --iodepth=1 --offset=0 --size=$((128 * M)) $(T)
row loop-ow4k        "$LL $LP" --rw=randwrite --bs=4k --iodepth=1 --offset=$((128 * M)) --size=$((32 * M)) $(T)
SLICE="0 0" row loop-cu4k "$LL $LP" --rw=write:60k --bs=4k --iodepth=1 --offset=@S@ --size=$((SL * M))
SLICE="160 0" row loop-fw4k "$LL $LP" --rw=write:60k --bs=4k --iodepth=1 --offset=@S@ --size=$((SL * M))
}
fi

# ------------------------------------------------------------------ ext4 on top
if want ext4; then
log "ext4"
modprobe ext4 || die "cannot load ext4"
mkdir -p "$W/e-lin" "$W/e-cc"	# the 9p root is read-only
# a fresh depth-2 chain: a new top over the root (t2's files are in use;
# make a sibling of t2 under the root instead)
ram; ed=$R; zerofill "$ed" 160; python3 "$here/sparse-copy.py" "$IMG/e.cow" "$ed"
dmc b-ecc "0 $((V * 2048)) cowchain $ed 1 ${LDEV[$IMG/root.cow]} -"
dmsetup remove b-lcc b-llin 2>/dev/null
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 /dev/mapper/b-ecc || die "mkfs cc"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$lin" || die "mkfs lin"
{ mount /dev/mapper/b-ecc "$W/e-cc" && mount "$lin" "$W/e-lin"; } || die "mount"
for m in "$W/e-lin" "$W/e-cc"; do
	fio --name=lay --filename=$m/f --rw=write --bs=1M --size=64M --direct=1 --output=/dev/null --eta=never
done
EL="linear=$W/e-lin/f"; EC="cowchain=$W/e-cc/f"
# shellcheck disable=SC2046
{
row ext4-randrw4k "$EL $EC" --rw=randrw --rwmixread=70 --bs=4k --iodepth=16 --size=64M $(T)
row ext4-fsync4k  "$EL $EC" --rw=randwrite --bs=4k --iodepth=1 --fsync=1 --size=64M $(T)
}
# many small files: untar of /usr/include (a kernel-tree-like tarball is not
# available offline), then sync, timed
tar -C / -cf "$W/inc.tar" usr/include 2>/dev/null
extra untar_bytes "$(stat -c %s "$W/inc.tar")"
for ((rep = 1; rep <= REPS; rep++)); do
	for pm in "linear=$W/e-lin" "cowchain=$W/e-cc"; do
		p=${pm%%=*}; m=${pm#*=}
		rm -rf "$m/u"; mkdir "$m/u"; sync
		s=$(date +%s.%N)
		tar -C "$m/u" -xf "$W/inc.tar" && sync
		e=$(date +%s.%N)
		# "iops" column: untars per second
		printf '%s\t%s\t%s\t%s\tNA\t\n' ext4-untar "$p" "$rep" "$(awk -v s="$s" -v e="$e" 'BEGIN {print 1 / (e - s)}')" >> "$OUT/cells.tsv"
	done
done
umount "$W/e-cc" "$W/e-lin"
fi

# ------------------------------------------------------------------ teardown of the rows' devices
for n in "${!QDEV[@]}"; do qemu-nbd -d "${QDEV[$n]}" >/dev/null 2>&1; done
dmsetup remove_all 2>/dev/null || dmsetup remove_all --force
for l in $(losetup -n -O NAME); do losetup -d "$l"; done
free -m | sed 's/^/bench: /'

# ------------------------------------------------------------------ activation and memory
# depth 16; each layer has 10% of its clusters allocated.  Two chains:
#   act-depth16   one 4 KiB sub-block written into each cluster (partial
#                 clusters: the index's worst case; the files stay small)
#   act-full16    whole 64 KiB clusters (the usual case once a guest has
#                 written real data), on a smaller disk: 10% of it per
#                 layer is real data in the guest's RAM
# act_chain PREFIX MIB BS: build the chain, then time dmsetup create
# against dm-linear and measure the kernel memory it takes, REPS times.
act_chain() {
	local pfx=$1 av=$2 bs=$3 ncl per i off rep tbl
	log "activation ($pfx): depth 16, ${av} MiB virtual, 10% per layer, ${bs}-byte writes per cluster"
	extra "${pfx}_virtual_mib" "$av"
	rm -rf "$W/act"; mkdir -p "$W/act"; cd "$W/act" || die cd
	ncl=$(( av * 16 ))             # 64 KiB clusters
	per=$(( ncl / 10 ))
	afio() { # OFFSET_CLUSTERS COUNT
		fio --name=a --filename="$dev" --rw=write:$((65536 - bs)) --bs="$bs" --iodepth=32 --direct=1 \
			--ioengine=libaio --offset=$(($1 * 65536)) --size=$(($2 * 65536)) --output=/dev/null \
			--eta=never || die "act fio"
	}
	"$CC" create l1.cow --size "${av}M" >/dev/null || die "create act"
	dev=$("$CC" attach act l1.cow) || die "attach act"
	for ((i = 1; i <= 16; i++)); do
		off=$(( (i - 1) * ncl / 16 ))
		# clusters off .. off+per (wrapping)
		if (( off + per <= ncl )); then
			afio "$off" "$per"
		else
			afio "$off" $((ncl - off))
			afio 0 $((per - (ncl - off)))
		fi
		[ $i -lt 16 ] && { "$CC" snapshot act "l$((i + 1)).cow" >/dev/null || die "snapshot $i"; }
	done
	extra "${pfx}_status" "$(dmsetup status act)"
	"$CC" detach act >/dev/null || die "detach act"
	extra "${pfx}_files_kib" "$(du -sk . | cut -f1)"
	extra "${pfx}_clusters_per_layer" "$per"
	# devices for the chain: loop devices of our own (attach's are autoclear:
	# they go away with the dm device), then measure create/remove
	# direct I/O where the file system takes it (6.1's loop refuses it on
	# tmpfs with EINVAL; 6.12's falls back to buffered I/O by itself)
	loop_dio() { losetup -f --direct-io=on "$@" 2>/dev/null || losetup -f "$@"; }
	loop_dio l16.cow || die "losetup l16"
	for ((i = 1; i < 16; i++)); do
		loop_dio --read-only "l$i.cow" || die "losetup l$i"
	done
	tbl=$("$CC" table l16.cow) || die "table act"
	for ((rep = 1; rep <= REPS; rep++)); do
		sync; echo 3 > /proc/sys/vm/drop_caches; sleep 1
		s0=$(mi Slab); v0=$(mi VmallocUsed); p0=$(mi Percpu)
		t0=$(date +%s%N)
		dmsetup create act --table "$tbl" || die "create act"
		t1=$(date +%s%N)
		sleep 1
		s1=$(mi Slab); v1=$(mi VmallocUsed); p1=$(mi Percpu)
		printf '%s\t%s\t%s\t%s\tNA\t\n' "$pfx-ms" cowchain "$rep" $(( (t1 - t0) / 1000000 )) >> "$OUT/cells.tsv"
		printf '%s\t%s\t%s\t%s\tNA\t\n' "$pfx-kib" cowchain "$rep" $(( s1 - s0 + v1 - v0 + p1 - p0 )) >> "$OUT/cells.tsv"
		extra "${pfx}_rep$rep" "slab $((s1 - s0)) KiB vmalloc $((v1 - v0)) KiB percpu $((p1 - p0)) KiB time $(( (t1 - t0) / 1000000 )) ms"
		t0=$(date +%s%N)
		dmsetup create act-lin --table "0 $(( av * 2048 )) linear $(awk '{print $4}' <<< "$tbl") 0" || die "lin"
		t1=$(date +%s%N)
		printf '%s\t%s\t%s\t%s\tNA\t\n' "$pfx-ms" linear "$rep" $(( (t1 - t0) / 1000000 )) >> "$OUT/cells.tsv"
		dmsetup remove act-lin; dmsetup remove act
	done
	dmsetup create act --table "$tbl" && { extra "${pfx}_status2" "$(dmsetup status act)"; dmsetup remove act; }
	for l in $(losetup -n -O NAME); do losetup -d "$l"; done
	cd "$W" || die cd
	rm -rf "$W/act"
}
mi() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
if want act; then
	AV=${BENCH_ACT_MIB:-4096}; AFV=${BENCH_ACT_FULL_MIB:-256}
	[ "$QUICK" = 1 ] && AV=1024
	rm -rf "$W/loop"
	act_chain act-depth16 "$AV" 4096
	act_chain act-full16 "$AFV" 65536
fi

# ------------------------------------------------------------------ merge
# (no guest row: an offline merge is a copy between files, measured on
# the host against dd; docs/BENCHMARKS.md)
rmmod dm-cowchain 2>/dev/null
log "done"

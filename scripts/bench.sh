#!/bin/bash
# Run the benchmark suite in a guest and write the report.
#
#   scripts/bench.sh [--kernel KVER|all] [--quick]
#
# Without --kernel: every installed kernel, or with --quick the newest only
# (the quick run is the 5-minute subset: bench-guest.sh says what it runs).
# Per kernel: build/bench/KVER/{results.md,cells.tsv,extra.tsv,notes.txt,raw/}
# (raw/ holds fio's JSON for every cell; the run before is kept as
# build/bench/KVER.prev).  Prints each results.md.
# Environment: BENCH_QUICK=1 (same as --quick), BENCH_KVER (same as --kernel),
# BENCH_GROUPS (which groups of rows; default "io loop ext4 act", quick "io"),
# BENCH_ROWS (only the fio rows whose names match one of these globs, e.g.
# "rr4k-depth* mix*"; the untar and activation rows follow BENCH_GROUPS),
# BENCH_REPS, BENCH_RUNTIME (reps per cell and seconds per timed cell;
# default 5 and 4, quick 3 and 2),
# BENCH_TIMEOUT (seconds per guest; default 3600 quick, 14400 full: a full
# run takes over an hour on a 2-CPU host),
# COWCHAIN_VM_MEM (default here 5120 MiB quick, 8192 full: the RAM disks
# are pre-filled, and a full run's qcow2 chains of every depth left too
# little for the loop rows' tmpfs files in 5 GiB).
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kernel=${BENCH_KVER:-}
quick=${BENCH_QUICK:-0}
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=$2; shift 2 ;;
	--quick) quick=1; shift ;;
	*) echo "usage: scripts/bench.sh [--kernel KVER|all] [--quick]" >&2; exit 2 ;;
	esac
done
if [ "$kernel" = all ] || [ -z "$kernel" ]; then
	mapfile -t kernels < <("$top/scripts/kernels.sh")
	[ ${#kernels[@]} -gt 0 ] || { echo "bench: no kernel to boot (scripts/kernels.sh)" >&2; exit 1; }
	[ -z "$kernel" ] && [ "$quick" = 1 ] && kernels=("${kernels[-1]}")
else
	kernels=("$kernel")
fi
[ -x "$top/userspace/cowchain" ] || make -C "$top" userspace
out=$top/build/bench
mkdir -p "$out"
rc=0
t_start=$(date +%s)
echo "bench: building the layer images on the host"
"$top/tests/bench/mkimages.sh" "$out/img"
for k in "${kernels[@]}"; do
	[ -f "$top/build/kmod/$k/dm-cowchain.ko" ] || make -C "$top" modules KVER="$k"
	# the previous run of this kernel is kept once, as KVER.prev
	if [ -d "$out/$k" ]; then rm -rf "${out:?}/$k.prev"; mv "$out/$k" "$out/$k.prev"; fi
	host_load="$(cut -d' ' -f1-3 /proc/loadavg)"
	host_qemus="$(pgrep -c qemu-system || true)"
	start=$(date -u '+%Y-%m-%d %H:%M UTC')
	s=$(date +%s)
	COWCHAIN_VM_MEM=${COWCHAIN_VM_MEM:-$([ "$quick" = 1 ] && echo 5120 || echo 8192)} \
		COWCHAIN_VM_DEBUGOPTS="" BENCH_QUICK=$quick \
		"$top/scripts/vm-run.sh" --kernel "$k" --out "$out/vm" \
		--timeout "${BENCH_TIMEOUT:-$([ "$quick" = 1 ] && echo 3600 || echo 14400)}" -- \
		env BENCH_QUICK="$quick" BENCH_IMG="$out/img" BENCH_GROUPS="${BENCH_GROUPS:-}" \
		BENCH_ROWS="${BENCH_ROWS:-}" BENCH_ACT_MIB="${BENCH_ACT_MIB:-}" \
		BENCH_REPS="${BENCH_REPS:-}" BENCH_RUNTIME="${BENCH_RUNTIME:-}" \
		BENCH_ACT_FULL_MIB="${BENCH_ACT_FULL_MIB:-}" \
		"$top/tests/bench/bench-guest.sh" || rc=$?
	mkdir -p "$out/$k"
	cp -r "$out/vm/$k/bench/." "$out/$k/" 2>/dev/null || true
	{
		printf 'command\t%s\n' "make bench BENCH_KVER=$k$([ "$quick" = 1 ] && echo ' BENCH_QUICK=1')${BENCH_GROUPS:+ BENCH_GROUPS=\"$BENCH_GROUPS\"}${BENCH_ROWS:+ BENCH_ROWS=\"$BENCH_ROWS\"}${BENCH_REPS:+ BENCH_REPS=$BENCH_REPS}${BENCH_RUNTIME:+ BENCH_RUNTIME=$BENCH_RUNTIME}"
		printf 'date\t%s\n' "$start"
		printf 'wall_s\t%s\n' "$(( $(date +%s) - s ))"
		printf 'host_load_start\t%s\n' "$host_load"
		printf 'host_load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
		printf 'host_other_qemus_start\t%s\n' "$host_qemus"
		printf 'host_cpus\t%s\n' "$(nproc)"
		printf 'accel\t%s\n' "${COWCHAIN_VM_ACCEL:-tcg}"
		printf 'git\t%s%s\n' "$(git -C "$top" rev-parse --short HEAD)" \
			"$(git -C "$top" diff --quiet HEAD -- kernel userspace || echo ' (kernel/ or userspace/ modified in the working tree)')"
	} >> "$out/$k/extra.tsv"
	python3 "$top/tests/bench/report.py" "$out/$k" > "$out/$k/results.md" || rc=1
	command -v gnuplot >/dev/null && gnuplot -e "dir='$out/$k'" "$top/tests/bench/plot.gp" 2>/dev/null || echo "bench: no plots (gnuplot)"
	cat "$out/$k/results.md"
done
echo "bench: took $(( $(date +%s) - t_start )) s"
exit $rc

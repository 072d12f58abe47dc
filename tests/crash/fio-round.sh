# shellcheck shell=bash
# The fio power-cut workload (powercut_run fio, tests/crash/lib-crash.sh),
# shared by the workload and the replay check (check-point.sh), which
# rebuilds the jobs to verify them with fio --verify_only.
#
# ROUNDS rounds over a SIZE_MIB disk cut into ceil(ROUNDS / 2) regions,
# each of two halves.  Odd round k writes both halves of region (k + 1) / 2
# for the first time (job a, then job b); even round k writes its second
# half again (job b: overwrites of what the round before made durable).
# The parent holds data over [0, SIZE/4) and 1 MiB at SIZE/2, so the
# regions start over the parent's data (copy-up of partial sub-blocks and
# clusters) and go on over empty space (first writes).  A job writes every
# block of its half once (fio's random map), in 512-byte, 4 KiB and 64 KiB
# writes at any 512-byte offset (so writes span sub-blocks and clusters),
# 4 in flight, with an fsync every 8 writes (odd rounds) or every write
# O_DSYNC, i.e. FUA (even rounds), and a last fsync; fio verifies it on the
# live device before the round's mark.  Before an even round's job b, step
# z zeroes a quarter of that half (BLKZEROOUT, i.e. write-zeroes bios) in
# pieces of 512 bytes to 128 KiB at any 512-byte offset, then job t discards
# half of it at random in 4 and 64 KiB pieces and syncs (whole and partial
# sub-blocks and clusters of what the round before made durable); job b
# then writes over it all, so the marks' model is unchanged.  One job per
# fio run: fio seeds a job's random numbers from its position in the file
# too.

# fio_region K: the region round K writes
fio_region() { echo $(( ($1 + 1) / 2 )); }

# fio_job FILE DEV K HALF(a|b) ROUNDS SIZE_MIB SEED: write one job file
fio_job() {
	local file=$1 dev=$2 k=$3 half=$4 rounds=$5 mib=$6 seed=$7 nreg slot off sync hb=0
	nreg=$(( (rounds + 1) / 2 ))
	slot=$(( mib * 1024 / nreg / 128 * 128 ))	# KiB: two halves of whole clusters
	off=$(( ($(fio_region "$k") - 1) * slot ))
	[ "$half" = a ] || off=$((off + slot / 2)) hb=1
	if ((k % 2)); then sync="fsync=8"; else sync="sync=dsync"; fi
	if [ "$half" = t ]; then
		cat > "$file" <<EOF
[r${k}t]
filename=$dev
direct=1
ioengine=psync
randseed=$((seed * 100 + k * 2 + 50))
offset=${off}k
size=$((slot / 2))k
io_size=$((slot / 4))k
rw=randtrim
bssplit=4k/50:64k/50
blockalign=4k
end_fsync=1
EOF
		return
	fi
	cat > "$file" <<EOF
[r$k$half]
filename=$dev
direct=1
ioengine=libaio
iodepth=4
verify=crc32c
verify_fatal=1
verify_state_save=0
randseed=$((seed * 100 + k * 2 + hb))
offset=${off}k
size=$((slot / 2))k
rw=randwrite
bssplit=512/20:4k/50:64k/30
blockalign=512
$sync
end_fsync=1
EOF
}

# fio_zeroes DEV K ROUNDS SIZE_MIB SEED: step z of even round K (not a fio
# job: fio has no write-zeroes); prints the pieces and bytes it zeroed
fio_zeroes() {
	local dev=$1 k=$2 rounds=$3 mib=$4 seed=$5 nreg slot off o l n=0 b=0
	nreg=$(( (rounds + 1) / 2 ))
	slot=$(( mib * 1024 / nreg / 128 * 128 ))
	off=$(( ( ($(fio_region "$k") - 1) * slot + slot / 2 ) * 1024 ))
	while read -r o l; do
		blkdiscard -z -o $((off + o)) -l "$l" "$dev" || return 1
		n=$((n + 1)) b=$((b + l))
	done < <(awk -v half=$((slot * 512)) -v seed=$((seed * 100 + k * 2 + 60)) 'BEGIN {
		srand(seed)
		for (t = 0; t < half / 4; t += l) {
			l = 512 * (1 + int(rand() * 256))
			o = 512 * int(rand() * (half - l) / 512)
			print o, l
		}}')
	echo "$n $b"
}

# fio_jobs K: the jobs of round K, in order (z: fio_zeroes)
fio_jobs() { if (($1 % 2)); then echo "a b"; else echo "z t b"; fi; }

# fio_durable M ROUNDS: "K HALF" per line, every job whose data must read
# back exactly once mark fM is reached (rounds 1..M done) while round M+1
# may be under way: the last job of each half written by then, but for a
# half round M+1 writes.
fio_durable() {
	local m=$1 rounds=$2 j o e nreg
	nreg=$(( (rounds + 1) / 2 ))
	for ((j = 1; j <= nreg; j++)); do
		o=$((2 * j - 1)) e=$((2 * j))
		((o <= m)) || continue
		echo "$o a"
		if ((e <= m)); then echo "$e b"
		elif ((e != m + 1 || e > rounds)); then echo "$o b"
		fi
	done
}

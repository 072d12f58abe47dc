#!/bin/bash
# Real memory pressure (quick tier; issue 7).  t-rel-nomem injects
# allocation failures; here nothing is injected: a memory hog
# (tests/crash/memhog.c) takes the guest's memory while fio with verify runs
# on a live chain of two, so the target's allocations (entries at first
# writes in map() without waiting, in the worker and in commits with
# reclaim) meet a system that has none to spare.
# memhog holds MemAvailable near COWCHAIN_REL_PRESSURE_LEAVE_MIB (32), taking more as
# the kernel frees page cache and giving some back when it falls below half
# of that, while COWCHAIN_REL_PRESSURE_ROUNDS (3) rounds of fio run one after another.
# (No OOM phase: a hog growing until the OOM killer ends it made each cycle
# reclaim and free gigabytes, which in a TCG guest with page poisoning took
# minutes, and the guest's watchdog reported soft lockups in kswapd and the
# hog, RCU stalls, nothing in the target.  Allocation failures themselves
# are injected in t-rel-nomem.)
# Each round, in its own part of the disk over the root's data: first writes
# of 4 KiB and 64 KiB with fsyncs (commits), 512-byte writes (copy-up), 64
# KiB discards, and a reader of a range only the root holds, verifying its
# pattern.  Holds when every fio job succeeds and verifies, the device stays
# rw, and after removal: `cowchain check` is clean, the whole re-created
# device reads as the library reads the chain, every round's writes verify
# again (fio --verify_only), its discards read zeros, and unreclaimable slab
# did not grow.  It logs how short memory got (MemAvailable's and MemFree's
# low points, as memhog saw them, against the zones' min watermark) and
# fails if MemAvailable never fell below COWCHAIN_REL_PRESSURE_LEAVE_MIB + 64
# MiB.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd fio timeout
crash_build

rounds=${COWCHAIN_REL_PRESSURE_ROUNDS:-3}
leave=${COWCHAIN_REL_PRESSURE_LEAVE_MIB:-32}
((rounds >= 1 && rounds <= 12)) || fail "COWCHAIN_REL_PRESSURE_ROUNDS must be 1..12"
mem_kb() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
# the zones' min watermarks, in kB
wmark_min_kb() { awk '$1 == "min" {s += $2} END {print s * 4}' /proc/zoneinfo; }

# should the OOM killer come, the test and what it starts are not its choice
echo -1000 > /proc/self/oom_score_adj
d=$TEST_TMP
"$CC" create "$d/root.cow" --size 64M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --pattern 0x5a --length 64M >/dev/null || fail "write root"
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
table=$(chain_table "$d/top.cow" "$d/root.cow")
dm_create cc-pr "$table"
dev=/dev/mapper/cc-pr
sun0=$(mem_kb SUnreclaim)

# job ROUND: writes the round's job file (its part: 8 MiB + 3 MiB per round,
# rounds 0..11 over the root's data up to 44 MiB)
# and its verify-only twin
job() {
	local r=$1 b=$((8 + 3 * $1))
	cat > "$d/r$r.fio" <<EOF
[global]
filename=$dev
direct=1
ioengine=libaio
iodepth=8
verify_fatal=1
verify_state_save=0
randseed=$((100 + r))
[first]
verify=crc32c
offset=${b}M
size=2M
rw=randwrite
bssplit=4k/50:64k/50
fsync=16
end_fsync=1
[partial]
verify=crc32c
offset=$((b * 1024 + 2048))k
size=512k
rw=randwrite
bs=512
fsync=64
end_fsync=1
EOF
	cp "$d/r$r.fio" "$d/r$r.ver"
	cat >> "$d/r$r.fio" <<EOF
[trim]
offset=$((b * 1024 + 2560))k
size=512k
rw=randtrim
bs=64k
[read]
offset=48M
size=16M
rw=randread
bs=4k
number_ios=1500
verify=pattern
verify_pattern=0x5a
EOF
}

run_round() {	# run_round R
	local r=$1 rc=0
	job "$r"
	timeout 600 fio "$d/r$r.fio" --output="$d/r$r.out" || rc=$?
	[ "$rc" -ne 124 ] || fail "round $r: fio hung"
	[ "$rc" -eq 0 ] || { grep -E "err=|error|verify" "$d/r$r.out" | head -n 8; \
		fail "round $r: fio failed (exit $rc)"; }
	[ "$(mode_of cc-pr)" = rw ] || fail "round $r: mode $(mode_of cc-pr)"
}

# ---- under pressure
t1=$SECONDS
"$CRASH_BIN/memhog" --leave "$leave" --seconds 3600 > "$d/hog.out" 2>&1 &
hog=$!
for ((i = 0; i < 600; i++)); do
	(( $(mem_kb MemAvailable) < (leave + 64) * 1024 )) && break
	sleep 0.1
done
(( $(mem_kb MemAvailable) < (leave + 64) * 1024 )) ||
	fail "memhog did not take the memory: MemAvailable $(mem_kb MemAvailable) kB"
for ((r = 0; r < rounds; r++)); do
	run_round "$r"
done
kill "$hog"; wait "$hog" || true
grep -q '^memhog: held_max_mib' "$d/hog.out" || fail "memhog did not last: $(cat "$d/hog.out")"
log "$rounds rounds, $((SECONDS - t1)) s; $(cat "$d/hog.out");" \
	"the zones' min watermark $(wmark_min_kb) kB"

# ---- after: removal, check, the library, every round again
dm_remove cc-pr
"$CC" check "$d/top.cow" > "$d/c.out" 2>&1 || { cat "$d/c.out"; fail "check after the pressure"; }
dm_create cc-pr "$table"
same_as_library "$dev" "$d/top.cow" "after re-creation"
head -c $((512 * 1024)) /dev/zero > "$d/z"
for ((r = 0; r < rounds; r++)); do
	timeout 600 fio "$d/r$r.ver" --verify_only --output="$d/v$r.out" ||
		{ cat "$d/v$r.out"; fail "round $r's data does not verify after re-creation"; }
	dd if="$dev" of="$d/t" bs=64k skip=$(( (8 + 3 * r) * 16 + 40 )) count=8 iflag=direct \
		status=none || fail "read round $r's discards"
	cmp -s "$d/z" "$d/t" || fail "round $r's discarded range does not read zeros"
done
dm_remove cc-pr
sun1=$(mem_kb SUnreclaim)
log "after: check clean, the device is the library's, $rounds rounds verify," \
	"discards read zeros; SUnreclaim $sun0 -> $sun1 kB"
# the chain's entries are freed with the device; 4 MiB would be a leak
((sun1 - sun0 < 4096)) || fail "unreclaimable slab grew by $((sun1 - sun0)) kB"

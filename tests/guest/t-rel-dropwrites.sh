#!/bin/bash
# Lost volatile cache (quick tier): the top's device is dm-flakey; during
# the block workload (tests/crash/crashload.c) it is switched, at a random
# moment, to drop_writes (every later write silently lost, as a cache that
# never reached the media).  Then the chain is reactivated on the real
# device: cowchain check finds no corruption, activation succeeds, and
# every sector reads as after the last round completed before the switch
# or as some later round (nothing a completed flush covered is lost).
# COWCHAIN_REL_DROPS: how many times (stress: more).
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc
modprobe dm-flakey 2>/dev/null || skip "no dm-flakey"
crash_build
drops=${COWCHAIN_REL_DROPS:-1}
d=$TEST_TMP
"$CC" create "$d/root.cow" --size 16M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --length 4M --pattern 0x11 >/dev/null
rl=$(loop_attach "$d/root.cow" ro)
held=0
for ((t = 1; t <= drops; t++)); do
	rm -rf "$d/snap" "$d/top.cow"; mkdir -p "$d/snap"
	"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
	tl=$(losetup -f --show "$d/top.cow") || fail "losetup"
	ts=$(blockdev --getsz "$tl"); n=$(( $(vsize "$d/top.cow") / 512 ))
	dm_create cc-dw-dev "0 $ts flakey $tl 0 3600 0"
	dm_create cc-dw "0 $n cowchain /dev/mapper/cc-dw-dev 1 $rl -"
	: > "$d/marks"
	"$LOAD" run --dev /dev/mapper/cc-dw --snap "$d/snap" --seed "$RANDOM" --rounds 8 --ops 32 \
		--threads 4 --no-live-check --mark-cmd "echo >> $d/marks" > "$d/load.out" 2>&1 &
	pid=$!
	sleep "$(( RANDOM % 4 )).$(( RANDOM % 10 ))"
	k0=$(grep -c . "$d/marks" || true)
	dmsetup suspend --noflush cc-dw-dev
	dmsetup load cc-dw-dev --table "0 $ts flakey $tl 0 0 1 1 drop_writes" || fail "load drop_writes"
	dmsetup resume cc-dw-dev
	wait "$pid" || { cat "$d/load.out"; fail "the workload failed"; }
	k1=$(grep -c . "$d/marks" || true)
	# every state from the last round done before the switch to the end
	dm_remove cc-dw
	dm_remove cc-dw-dev
	"$CC" check "$d/top.cow" > "$d/c.out" 2>&1 || true
	! grep -q ': corruption: ' "$d/c.out" ||
		{ cat "$d/c.out"; fail "drop $t: corruption after the lost cache"; }
	dm_create cc-dw "0 $n cowchain $tl 1 $rl -"
	# marks are "r0".."rK": round k0-1 is the last one seen done before the switch
	"$LOAD" verify --dev /dev/mapper/cc-dw --snap "$d/snap" --mark "r$((k0 > 0 ? k0 - 1 : 0))" \
		--upto "$((k1 - 1))" || fail "drop $t: data lost"
	dm_remove cc-dw
	losetup -d "$tl"
	log "drop $t: switched after $((k0 > 0 ? k0 - 1 : 0)) of 8 rounds; held ($(tail -n 1 "$d/c.out"))"
	held=$((held + 1))
done
log "$held of $drops lost-cache cuts held"
log "ok"

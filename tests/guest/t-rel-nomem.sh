#!/bin/bash
# Allocation failures (quick tier; issue 7), injected with the module's
# testing switch fail_alloc_every (docs/dm-cowchain.rst: setting it to N
# makes the Nth allocation from then on fail, and every Nth after it):
#  1. the constructor, one allocation at a time: fail_alloc_every=N is set
#     just before a `dmsetup create` of a chain of three layers (data in
#     each), for N = 1, 2, 3, ... until three creates in a row succeed (N is
#     then past the constructor's last allocation).  Each create fails with
#     ENOMEM ("Cannot allocate memory", never as a corruption) and leaves no
#     device behind, or succeeds and reads back as the library reads the
#     chain.  Unreclaimable slab and vmalloc do not grow.
#  2. fio with verify on a live chain under fail_alloc_every=31: first
#     writes, 512-byte writes (copy-up), discards, fsyncs: every I/O either
#     succeeds or fails with an error (recorded); when it all succeeded, the
#     data fio wrote verifies again after removal, a clean check and
#     re-creation, and the discarded range reads zeros.
#  3. crashload (tests/crash, --errors-ok) under injection: rounds 1-2 at
#     61, round 3 at 5, where a commit can no longer find all its memory
#     (the waiting flushes fail after 5 s; writes may fail too), rounds 4-5
#     without.  After every round the live device holds what the rounds
#     wrote, a failed operation's sectors their old or new content; the
#     device stays rw.  After removal, a clean check and re-creation, every
#     sector reads exactly as at the end of round 5 (its flush succeeded,
#     so the metadata that stayed dirty through round 3 was committed).
# The module unloads afterwards (run-all's module-rmmod): a leaked entry of
# the tent cache would make kmem_cache_destroy complain in dmesg.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd fio timeout

P=/sys/module/dm_cowchain/parameters
[ -w "$P/fail_alloc_every" ] || fail "dm_cowchain has no fail_alloc_every parameter"
inject() { echo "$1" > "$P/fail_alloc_every"; }
injected() { cat "$P/fail_alloc_failed"; }
# memory counters in kB
mem_kb() { awk -v k="$1:" '$1 == k {print $2}' /proc/meminfo; }
on_exit inject 0
crash_build
# a merged slab cache is not checked for leaks when the module unloads
if [ -L /sys/kernel/slab/cowchain_tent ]; then
	log "the tent cache is merged into $(basename "$(readlink /sys/kernel/slab/cowchain_tent)")"
fi
d=$TEST_TMP
t_start=$SECONDS

# ---- 1. the constructor, one allocation at a time
read -r -a files <<< "$(make_chain "$d" 3 16)"
table=$(chain_table "${files[@]}")
"$CC" read "${files[0]}" --offset 0 --length "$(vsize "${files[0]}")" --output "$d/ref" ||
	fail "cowchain read"
sun0=$(mem_kb SUnreclaim); vm0=$(mem_kb VmallocUsed); f0=$(injected)
ok=0 nomem=0 run=0 n=0
while ((run < 3)); do
	n=$((n + 1))
	((n <= 300)) || fail "creates still fail with fail_alloc_every=$n"
	inject "$n"
	if dmsetup create cc-nm --table "$table" 2>"$d/err"; then
		inject 0
		run=$((run + 1)) ok=$((ok + 1))
		dd if=/dev/mapper/cc-nm of="$d/dev" bs=1M iflag=direct status=none ||
			fail "N=$n: reading the device failed"
		cmp -s "$d/ref" "$d/dev" || fail "N=$n: the device differs from the library"
		dm_remove cc-nm
	else
		inject 0
		run=0 nomem=$((nomem + 1))
		# (a device left behind would fail the next create: "already exists")
		err=$(<"$d/err")
		[[ $err == *"Cannot allocate memory"* ]] ||
			fail "N=$n: the create failed otherwise than ENOMEM: $err"
	fi
done
! dm_exists cc-nm || fail "a failed create left the device behind"
f1=$(injected)
sun1=$(mem_kb SUnreclaim); vm1=$(mem_kb VmallocUsed)
log "constructor: N=1..$n: $nomem creates failed with ENOMEM, $ok succeeded and read back" \
	"($((f1 - f0)) allocations failed); SUnreclaim $sun0 -> $sun1 kB, VmallocUsed $vm0 -> $vm1 kB"
((nomem >= 10)) || fail "only $nomem creates failed: the constructor's sites are not reached"
((f1 - f0 >= nomem)) || fail "fail_alloc_failed counted $((f1 - f0)) for $nomem failed creates"
# a leak of 16 KiB per failed create would show
((sun1 - sun0 < nomem * 16)) || fail "unreclaimable slab grew by $((sun1 - sun0)) kB"
((vm1 - vm0 < nomem * 16)) || fail "vmalloc grew by $((vm1 - vm0)) kB"
"$CC" check "${files[0]}" > "$d/c.out" 2>&1 || { cat "$d/c.out"; fail "check after the creates"; }
log "part 1: $((SECONDS - t_start)) s"

# ---- 2. fio with verify under injection
t2=$SECONDS
"$CC" create "$d/root.cow" --size 32M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --pattern 0x5a --length 16M >/dev/null || fail "write root"
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create top"
tl=$(loop_attach "$d/top.cow"); rl=$(loop_attach "$d/root.cow" ro)
n=$(( $(vsize "$d/top.cow") / 512 ))
table="0 $n cowchain $tl 1 $rl -"
dm_create cc-nm "$table"
dev=/dev/mapper/cc-nm
head -c 1048576 /dev/urandom > "$d/pre"
dd if="$d/pre" of="$dev" bs=64k seek=384 oflag=direct conv=fsync status=none ||
	fail "write before the injection"
# global options, then one section per job; fio.ver: the same without the discards
cat > "$d/fio.job" <<EOF
[global]
filename=$dev
direct=1
ioengine=libaio
iodepth=8
verify=crc32c
verify_fatal=1
verify_state_save=0
end_fsync=1
randseed=7
[first]
offset=16M
size=2M
rw=randwrite
bssplit=4k/50:64k/50
fsync=16
[partial]
offset=4M
size=128k
rw=randwrite
bs=512
fsync=64
EOF
cp "$d/fio.job" "$d/fio.ver"
cat >> "$d/fio.job" <<EOF
[discard]
verify=0
offset=8M
size=2M
rw=randtrim
bs=64k
EOF
f0=$(injected)
inject 31
rc=0
timeout 300 fio "$d/fio.job" --output="$d/fio.out" || rc=$?
inject 0
f1=$(injected)
log "fio under fail_alloc_every=31: exit $rc, $((f1 - f0)) allocations failed;" \
	"status: $(dmsetup status cc-nm)"
((f1 > f0)) || fail "no allocation failed under fio"
case $(mode_of cc-nm) in rw) ;; *) fail "mode $(mode_of cc-nm) after fio" ;; esac
if [ "$rc" -ne 0 ]; then
	grep -E "err=|error" "$d/fio.out" | head -n 5 || true
	[ "$rc" -ne 124 ] || fail "fio hung under injection"
	log "fio saw an error (allowed)"
fi
dm_remove cc-nm
"$CC" check "$d/top.cow" > "$d/c.out" 2>&1 || { cat "$d/c.out"; fail "check after fio"; }
dm_create cc-nm "$table"
dd if="$dev" of="$d/b" bs=64k skip=384 count=16 iflag=direct status=none || fail "read pre"
cmp -s "$d/pre" "$d/b" || fail "data written before the injection changed"
if [ "$rc" -eq 0 ]; then
	timeout 300 fio "$d/fio.ver" --verify_only --output="$d/fiov.out" ||
		{ cat "$d/fiov.out"; fail "fio's data does not verify after re-creation"; }
	head -c 2097152 /dev/zero > "$d/z"
	dd if="$dev" of="$d/b" bs=64k skip=128 count=32 iflag=direct status=none || fail "read discarded"
	cmp -s "$d/z" "$d/b" || fail "the discarded range does not read zeros"
	log "fio: every write verified after re-creation, discards read zeros"
fi
dm_remove cc-nm
log "part 2: $((SECONDS - t2)) s"

# ---- 3. crashload: errors under injection, recovery
t3=$SECONDS
dm_create cc-nm "$table"
mkdir -p "$d/snap"
# rounds 1-2 at 61, round 3 at 5, rounds 4-5 without injection
cat > "$d/mark.sh" <<EOF
#!/bin/sh
echo "\$1" > $d/lastmark
case \$1 in r2) echo 5 > $P/fail_alloc_every ;; r3) echo 0 > $P/fail_alloc_every ;; esac
EOF
chmod +x "$d/mark.sh"
rounds=5
f0=$(injected)
inject 61
rc=0
timeout 300 "$LOAD" run --dev "$dev" --snap "$d/snap" --seed 11 --rounds $rounds --ops 24 \
	--threads 4 --errors-ok --mark-cmd "$d/mark.sh" > "$d/load.out" 2>&1 || rc=$?
inject 0
f1=$(injected)
log "crashload: 2 rounds at fail_alloc_every=61, 1 at 5, 2 without: exit $rc;" \
	"$((f1 - f0)) allocations failed"
sed "s/^/    /" "$d/load.out"
[ "$rc" -eq 0 ] || fail "crashload: the live device is wrong (or hung: exit $rc)"
((f1 > f0)) || fail "no allocation failed under crashload"
nerr=$(sed -n 's/^crashload: \([0-9]*\) operations failed.*/\1/p' "$d/load.out")
((${nerr:-0} > 0)) || fail "no I/O failed at fail_alloc_every=5: the error path is not reached"
m=$(mode_of cc-nm)
log "status: $(dmsetup status cc-nm)"
# out of memory fails I/O, never the device
[ "$m" = rw ] || fail "mode $m after the injection"
dm_remove cc-nm
"$CC" check "$d/top.cow" > "$d/c.out" 2>&1 || { cat "$d/c.out"; fail "check after the injection"; }
dm_create cc-nm "$table"
# rounds 4 and 5 ended with a flush that succeeded: every sector exactly as at r5
"$LOAD" verify --dev "$dev" --snap "$d/snap" --mark r$rounds > "$d/v.out" 2>&1 ||
	{ cat "$d/v.out"; fail "data lost: not every sector as at r$rounds"; }
log "verify: $(tail -n 1 "$d/v.out")"
dm_remove cc-nm
log "part 3: $((SECONDS - t3)) s; total $((SECONDS - t_start)) s"

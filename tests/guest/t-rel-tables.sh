#!/bin/bash
# Hostile tables and messages (quick tier): argument counts 0..max+1,
# huge, negative and junk numbers, missing and wrong devices, bad
# features; messages with every argument count and junk; each refused
# with the target's own error (or accepted where valid), nothing left
# behind, and unreclaimable slab stable over the iterations.
# COWCHAIN_REL_TABLE_ITERS: loops over the whole list after the first
# (stress: many), by tests/crash/tableload.c through libdevmapper.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"

iters=${COWCHAIN_REL_TABLE_ITERS:-0}
# extra table lengths to try each table with (stress: 1)
d=$TEST_TMP
"$CC" create "$d/root.cow" --size 4M >/dev/null || fail "create root"
"$CC" write "$d/root.cow" --offset 0 --pattern 7 --length 65536 >/dev/null
"$CC" create "$d/top.cow" --parent "$d/root.cow" >/dev/null || fail "create child"
top=$(loop_attach "$d/top.cow")
root=$(loop_attach "$d/root.cow" ro)
n=$(( $(vsize "$d/top.cow") / 512 ))
big=18446744073709551615

tables=(
	""
	"$top"
	"$top 1"
	"$top 1 $root"
	"$top 1 $root - 0"
	"$top 1 $root - 1"
	"$top 1 $root - 1 read_only x"
	"$top 1 $root - 1 read_only 1 read_only"
	"$top -1 $root -"
	"$top 99999999999999999999999 $root -"
	"$top 0x1 $root -"
	"$top 1e1 $root -"
	"$top 1x $root -"
	"$top '' $root -"
	"$top 1 $root - -1 read_only"
	"$top 1 $root - 1 read_onlyx"
	"$top 1 /dev/nonexistent -"
	"$top 1 999:999 -"
	"$top 1 0:0 -"
	"/dev/null 1 $root -"
	"$top 1 $root /dev/nonexistent"
	"$top 1 $root $top"
	"$top 1 $root $root"
	"$top 4097 $root -"
	"$(printf 'x%.0s' {1..300}) 1 $root -"
	"$top 1 $root - 1 $(printf 'y%.0s' {1..300})"
)
# Counts past 2^32 (once wrapped by dm_read_arg(), fixed in the target by
# checking the text with kstrtouint()).
tables+=("$top 4294967297 $root -" "$top $big $root -" "$top 1 $root - 4294967296"
	"$top 1 $root - 4294967297 read_only")
lens=("$n" 1 0 $((n + 1)) "$big" "-1" "junk")

slab() { awk '/^SUnreclaim:/ {print $2}' /proc/meminfo; }
refusals=0 accepted=0
declare -A msgs=()
one_round() {
	local t l m
	for t in "${tables[@]}"; do
		for l in "$n" ${COWCHAIN_REL_TABLE_LENS:-}; do
			if dmsetup create cc-tab --table "0 $l cowchain $t" >/dev/null 2>&1; then
				accepted=$((accepted + 1))
				case $t in
				"$top 1 $root - 0"|"$top 0x1 $root -") ;;	# valid forms
				*) dmsetup remove cc-tab; fail "accepted: '0 $l cowchain $t'" ;;
				esac
				dm_remove cc-tab
			else
				refusals=$((refusals + 1))
				dm_exists cc-tab && { dmsetup remove cc-tab; fail "'$t': left behind"; }
				m=$(dmesg | tail -n 2 | grep -o 'cowchain: .*' | tail -n 1 | sed 's/[0-9]\{2,\}/N/g' || true)
				msgs["${m:-<no cowchain message: refused by dm core or dmsetup>}"]=1
			fi
		done
	done
	for l in "${lens[@]}"; do
		if dmsetup create cc-tab --table "0 $l cowchain $top 1 $root -" >/dev/null 2>&1; then
			[ "$l" = "$n" ] || [ "$l" = 1 ] || { dm_remove cc-tab; fail "length $l accepted"; }
			dm_remove cc-tab
		fi
	done
	# messages on a live device
	dmsetup create cc-tab --table "0 $n cowchain $top 1 $root -" || fail "valid table refused"
	for m in "" commit "commit x" checkpoint "checkpoint 1 2" map "map 0" "map $((n - 1))" \
		"map $n" "map -1" "map $big" "map 99999999999999999999999" "map abc" "map 1 2" \
		"bogus" "$(printf 'z%.0s' {1..500})"; do
		# shellcheck disable=SC2086 # split into arguments on purpose
		dmsetup message cc-tab 0 $m >/dev/null 2>&1 || true
	done
	dmsetup message cc-tab 0 map 0 >/dev/null || fail "map 0 refused"
	if ! dmsetup status cc-tab >/dev/null || ! dmsetup table cc-tab >/dev/null; then
		fail "status/table"
	fi
	dm_remove cc-tab
}
# The same steps for tests/crash/tableload.c (the rounds after the first):
# the tables at lengths dmsetup would send (not "junk": dmsetup's own parser
# refuses it; -1 is 2^64-1), then the messages on a live device.
steps() {
	local t l m kind
	for t in "${tables[@]}"; do
		case $t in
		"$top 1 $root - 0"|"$top 0x1 $root -") kind=any ;;
		*) kind=refuse ;;
		esac
		for l in "$n" ${COWCHAIN_REL_TABLE_LENS:-}; do printf '%s\t%s\t%s\n' $kind "$l" "$t"; done
	done
	for l in "$n" 1; do printf 'any\t%s\t%s\n' "$l" "$top 1 $root -"; done
	for l in 0 $((n + 1)) "$big"; do printf 'refuse\t%s\t%s\n' "$l" "$top 1 $root -"; done
	printf 'live\t%s\t%s\n' "$n" "$top 1 $root -"
	for m in "" commit "commit x" checkpoint "checkpoint 1 2" map "map 0" "map $((n - 1))" \
		"map $n" "map -1" "map $big" "map 99999999999999999999999" "map abc" "map 1 2" \
		"bogus" "$(printf 'z%.0s' {1..500})"; do
		printf 'msg\t%s\n' "$m"
	done
	printf 'msgok\tmap 0\nend\n'
}

one_round	# warm the caches
echo 3 > /proc/sys/vm/drop_caches
s0=$(slab)
# per cache: name and bytes in use (active objects x object size)
slabinfo() { awk 'NR > 2 {print $1, $2 * $4}' /proc/slabinfo | sort; }
slabinfo > "$d/slab0"
if [ "$iters" -gt 0 ]; then
	crash_build
	steps > "$d/steps"
	t0=$SECONDS
	"$TABLELOAD" cc-tab "$iters" < "$d/steps" || fail "tableload: a step broke its rule"
	log "tableload: $((SECONDS - t0)) s"
fi
echo 3 > /proc/sys/vm/drop_caches
sleep 1
s1=$(slab)
slabinfo > "$d/slab1"
ntab=${#tables[@]}
log "the first round, by dmsetup: $ntab hostile tables (lengths: $n ${COWCHAIN_REL_TABLE_LENS:-}), ${#lens[@]} lengths and 16 messages:" \
	"$refusals refused, $accepted accepted (valid forms: feature count 0, 0x1 as a count)"
log "refusal messages seen:"
for m in "${!msgs[@]}"; do echo "    $m"; done | sort
log "SUnreclaim: $s0 kB before, $s1 kB after $iters rounds; the caches that grew most (bytes):"
join "$d/slab0" "$d/slab1" | awk '$3 > $2 {print $3 - $2, $1}' | sort -rn | head -n 6 | sed 's/^/    /'
# vmap_area grows with freed vmalloc ranges not yet purged (lazily); the
# allocations still live are in /proc/vmallocinfo with their caller: with
# no cowchain device left, none may come from the target
v=$(grep -c '\[dm_cowchain\]' /proc/vmallocinfo || true)
log "vmalloc areas live: $(wc -l < /proc/vmallocinfo), $v of them allocated by dm_cowchain"
[ "$v" = 0 ] || { grep '\[dm_cowchain\]' /proc/vmallocinfo | head -n 5; fail "vmalloc memory of the target left after every device is gone"; }
# stable: less than 2 KiB per round and 4 MiB in all (measured only when
# there are rounds after the first: the stress tier)
if [ "$iters" -gt 0 ]; then
	[ $((s1 - s0)) -lt $((iters * 2 + 4096)) ] || fail "unreclaimable slab grew by $((s1 - s0)) kB"
fi
log "ok"

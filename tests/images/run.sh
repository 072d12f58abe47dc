#!/bin/bash
# The corrupt-image corpus (e2fsprogs' tests/f_* are the model).
#
#   tests/images/run.sh [--update] [CASE...]
#
# Each tests/images/<case>/ holds:
#   make.sh          builds img.cow (and any other layer) in a scratch dir with
#                    the tool, dd and poke (a byte editor that reseals
#                    checksums, poke.c); sources lib.sh
#   args             optional extra check arguments (e.g. --chain)
#   expected.txt     the transcript of "cowchain check img.cow ARGS"
#   expected.status  its exit status (fsck bitmask, docs/check.md)
#   repair.txt, repair.status   optional: the case is repaired; the transcript
#                    and status of "check --repair"
#   after.txt, after.status     then the second run, which must be these
#                    (default: "img.cow: clean" and 0)
# The first check runs twice and must not change a byte of the file.
# Transcripts are compared after replacing uuids and checksum values
# (random per image) with placeholders.
#
# --update rewrites the expected files from what the tool prints now:
# review the diff before committing it.
#
# Environment: COWCHAIN (default userspace/cowchain), CC (default cc).
# One "PASS images/<case>" or "FAIL images/<case>" line per case (what
# tests/run-check.sh counts); the last line is "images: N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
COWCHAIN=${COWCHAIN:-$top/userspace/cowchain}
CC=${CC:-cc}
update=0
if [ "${1:-}" = --update ]; then update=1; shift; fi

work=$(mktemp -d /tmp/cowchain-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! "$CC" -std=gnu11 -O1 -Wall -Wextra -Werror -I"$top/kernel" -I"$top/userspace/lib" \
	-o "$work/poke" "$here/poke.c" "$top/userspace/lib/crc32c.c" "$top/kernel/format.c"; then
	echo "images: cannot build poke"; echo "images: 0 passed, 1 failed"; exit 1
fi
export COWCHAIN POKE="$work/poke" IMAGES_LIB="$here/lib.sh"

# The case's scratch directory ($d, as the merge code resolves it) is dropped.
normalize() {
	sed -E -e "s|$(realpath "$d")/||g" \
	       -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UUID/g' \
	       -e 's/stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}/stored CSUM, computed CSUM/g'
}

pass=0 fail=0
# compare NAME WHAT got-text got-status expected-file status-file [default-text default-status]
compare() {
	local c=$1 what=$2 out=$3 st=$4 etxt=$5 est=$6 dtxt=${7:-} dst=${8:-}
	if [ $update = 1 ]; then
		if [ -n "$dtxt" ] && [ "$out" = "$dtxt" ] && [ "$st" = "$dst" ]; then
			rm -f "$etxt" "$est"
		else
			printf '%s\n' "$out" >"$etxt"; echo "$st" >"$est"
		fi
		return 0
	fi
	local want wst
	if [ -f "$etxt" ]; then want=$(cat "$etxt"); wst=$(cat "$est"); else want=$dtxt; wst=$dst; fi
	if [ "$out" != "$want" ] || [ "$st" != "$wst" ]; then
		echo "    $c: $what: status $st (expected $wst)"
		diff -u <(printf '%s\n' "$want") <(printf '%s\n' "$out") | sed 's/^/    /'
		return 1
	fi
	return 0
}

cases=("$@")
if [ ${#cases[@]} = 0 ]; then
	for d in "$here"/*/; do [ -f "$d/make.sh" ] && cases+=("$(basename "$d")"); done
fi
for c in "${cases[@]}"; do
	src=$here/$c d=$work/$c ok=1
	mkdir -p "$d"
	if ! (cd "$d" && bash -e "$src/make.sh") >"$d/make.log" 2>&1; then
		echo "    $c: make.sh failed"; sed 's/^/    /' "$d/make.log"
		echo "FAIL images/$c"; fail=$((fail + 1)); continue
	fi
	args=$(cat "$src/args" 2>/dev/null || true)
	sum1=$(sha256sum <"$d/img.cow")
	# shellcheck disable=SC2086
	out=$(cd "$d" && "$COWCHAIN" check img.cow $args 2>&1 | normalize; exit "${PIPESTATUS[0]}"); st=$?
	compare "$c" "check" "$out" "$st" "$src/expected.txt" "$src/expected.status" || ok=0
	# shellcheck disable=SC2086
	out2=$(cd "$d" && "$COWCHAIN" check img.cow $args 2>&1 | normalize; exit "${PIPESTATUS[0]}"); st2=$?
	if [ "$out2" != "$out" ] || [ "$st2" != "$st" ]; then
		echo "    $c: a second check without --repair differs"; ok=0
	fi
	if [ "$(sha256sum <"$d/img.cow")" != "$sum1" ]; then
		echo "    $c: check without --repair changed img.cow"; ok=0
	fi
	if [ -f "$src/repair.status" ] || { [ $update = 1 ] && [ -f "$src/repair" ]; }; then
		# shellcheck disable=SC2086
		out=$(cd "$d" && "$COWCHAIN" check --repair img.cow $args 2>&1 | normalize; exit "${PIPESTATUS[0]}"); st=$?
		compare "$c" "check --repair" "$out" "$st" "$src/repair.txt" "$src/repair.status" || ok=0
		# shellcheck disable=SC2086
		out=$(cd "$d" && "$COWCHAIN" check img.cow $args 2>&1 | normalize; exit "${PIPESTATUS[0]}"); st=$?
		compare "$c" "check after repair" "$out" "$st" "$src/after.txt" "$src/after.status" \
			"img.cow: clean" 0 || ok=0
	fi
	if [ $ok = 1 ]; then pass=$((pass + 1)); echo "PASS images/$c"; else fail=$((fail + 1)); echo "FAIL images/$c"; fi
done
echo "images: $pass passed, $fail failed"
[ $fail = 0 ]

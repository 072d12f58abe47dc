#!/bin/bash
# Build and run the libFuzzer target tests/fuzz/fuzz_layer.c.
#
#   tests/fuzz/run.sh                 short run (FUZZ_SECONDS, default 25 s),
#                                     from "make -C userspace check"
#   tests/fuzz/run.sh --seconds 3600  a long run on demand; the corpus grows in
#                                     build/fuzz/corpus and is reused next time
#   (also: make -C userspace fuzz FUZZ_SECONDS=3600)
#
# Needs clang with libFuzzer (Debian: clang); without it the run is skipped
# visibly.  Seeds are made with the tool ($COWCHAIN): small layers with
# 4 KiB clusters, data, zero markers, a child, a pending journal, trimmed
# to their metadata (the harness extends an input to its capacity).
# A crash leaves its input in build/fuzz/crash-* and prints FAIL.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
COWCHAIN=${COWCHAIN:-$top/userspace/cowchain}
secs=${FUZZ_SECONDS:-25}
if [ "${1:-}" = --seconds ]; then secs=$2; fi
out=$top/build/fuzz
CLANG=${CLANG:-clang}
# The library's pkg-config packages (userspace/Makefile passes its PKGS).
pkgs=${FUZZ_PKGS:-$(sed -n 's/^PKGS *:= *//p' "$top/userspace/Makefile")}

if ! command -v "$CLANG" >/dev/null; then
	echo "SKIP fuzz: $CLANG not installed"; exit 0
fi
mkdir -p "$out/corpus" "$out/seeds"
read -ra pkgv <<< "$pkgs"
read -ra cflags <<< "$(pkg-config --cflags "${pkgv[@]}")"
read -ra libs <<< "$(pkg-config --libs "${pkgv[@]}")"
srcs=("$here/fuzz_layer.c" "$top"/userspace/lib/*.c "$top/kernel/format.c" "$top/kernel/journal.c")
if ! "$CLANG" -g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$top/kernel" -I"$top/userspace/lib" "${cflags[@]}" \
	-o "$out/fuzz_layer" "${srcs[@]}" "${libs[@]}" 2>"$out/build.log"; then
	cat "$out/build.log"; echo "FAIL fuzz/build"; exit 1
fi

# Seeds: trimmed to the last allocated byte (metadata lives at the front).
seed() {	# seed NAME: img.cow in the current dir -> seeds/NAME
	local end
	end=$(du -B1 --apparent-size img.cow | cut -f1)
	# Trim trailing holes: keep up to the end of the last data extent.
	end=$(python3 -c '
import os,sys
fd=os.open("img.cow",os.O_RDONLY); size=os.fstat(fd).st_size; off=0; last=0
while off<size:
    try: d=os.lseek(fd,off,os.SEEK_DATA)
    except OSError: break
    h=os.lseek(fd,d,os.SEEK_HOLE); last=h; off=h
print(last)' 2>/dev/null || echo "$end")
	head -c "$end" img.cow >"$out/seeds/$1"
}
tmp=$(mktemp -d /tmp/cowchain-fuzz.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(
	cd "$tmp" || exit 1
	C=$COWCHAIN
	$C create img.cow --size 256K --cluster-size 4K --journal-size 64K >/dev/null && seed empty
	$C write img.cow --offset 0 --pattern 0xaa --length 20K >/dev/null &&
	$C write img.cow --offset 100K --zero --length 8K >/dev/null &&
	$C write img.cow --offset 200K --pattern 7 --length 1K >/dev/null && seed data
	mv img.cow base.cow
	$C create img.cow --parent base.cow --journal-size 64K >/dev/null &&
	$C write img.cow --offset 4K --pattern 1 --length 4K >/dev/null && seed child
	rm -f img.cow
	$C create img.cow --size 8M --cluster-size 32K --subblock-size 512 --journal-size 64K >/dev/null &&
	$C write img.cow --offset 1M --pattern 3 --length 3K >/dev/null && seed subblocks
) || { echo "FAIL fuzz/seeds: cannot make seed images with $COWCHAIN"; exit 1; }

cd "$out" || exit 1
rm -f crash-* leak-* timeout-* oom-*
"$out/fuzz_layer" -max_total_time="$secs" -max_len=262144 -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 corpus seeds >"$out/fuzz.log" 2>&1
rc=$?
tail -n 12 "$out/fuzz.log"
if [ $rc != 0 ] || ls crash-* leak-* timeout-* oom-* >/dev/null 2>&1; then
	grep -E "ERROR|SUMMARY|fixed twice|Test unit written" "$out/fuzz.log" | head -20
	echo "FAIL fuzz/layer (${secs}s; log and reproducer in $out)"
	exit 1
fi
echo "PASS fuzz/layer (${secs}s, $(find corpus -type f | wc -l) inputs in build/fuzz/corpus)"

#!/bin/bash
# Build the benchmark's layer images (sparse files) on the host, where the
# tool runs at native speed; the guest driver copies them onto RAM disks.
#
#   tests/bench/mkimages.sh DIR
#
# DIR/root.cow   512 MiB virtual, parent data over [0, 128 MiB)
# DIR/sN.cow     N = 2..63: the spine, each a child of the previous one
#                (root = s1), holding one cluster and one sub-block in the
#                top-data range
# DIR/tD.cow     tops of depth D (children of s(D-1)), for D in 2 4 8 16 32 64
# DIR/e.cow      a second child of the root (ext4 row)
# DIR/loop/{r,t}.cow  256 MiB root with 128 MiB of data, and its child
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
CC=$top/userspace/cowchain
d=$1
M=$((1024 * 1024))
rm -rf "$d"; mkdir -p "$d/loop"
"$CC" create "$d/root.cow" --size 512M >/dev/null
"$CC" write "$d/root.cow" --offset 0 --pattern 0xa5 --length $((128 * M)) >/dev/null
prev=$d/root.cow
for ((i = 2; i <= 63; i++)); do
	f=$d/s$i.cow
	"$CC" create "$f" --parent "$prev" >/dev/null
	"$CC" write "$f" --offset $(( (128 + (i % 32)) * M )) --pattern $i --length 65536 >/dev/null
	"$CC" write "$f" --offset $(( (128 + (i % 32)) * M + 131072 + 4096 * (i % 16) )) --pattern $i --length 4096 >/dev/null
	prev=$f
done
for t in 2 4 8 16 32 64; do
	if [ $t = 2 ]; then p=$d/root.cow; else p=$d/s$((t - 1)).cow; fi
	"$CC" create "$d/t$t.cow" --parent "$p" >/dev/null
done
"$CC" create "$d/e.cow" --parent "$d/root.cow" >/dev/null
"$CC" create "$d/loop/r.cow" --size 256M >/dev/null
"$CC" write "$d/loop/r.cow" --offset 0 --pattern 0xa5 --length $((128 * M)) >/dev/null
"$CC" create "$d/loop/t.cow" --parent "$d/loop/r.cow" >/dev/null
# One sparse tar of everything: 9p has no SEEK_DATA, so the guest unpacks
# this onto its tmpfs (reading only the data) and copies from there.
tar -C "$d" --sparse -czf "$d.tar" .

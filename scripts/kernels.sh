#!/bin/sh
# Print, one per line and sorted by version, the release of every installed
# kernel that cowchain can build for and boot: /boot/vmlinuz-$KVER exists and
# /lib/modules/$KVER/build holds its headers.  Nothing is hard-coded: Debian
# moves ABI versions, so this is the only place kernels are discovered.
set -eu
for v in /boot/vmlinuz-*; do
	[ -e "$v" ] || continue
	kver=${v#/boot/vmlinuz-}
	[ -d "/lib/modules/$kver/build" ] && echo "$kver"
done | sort -V

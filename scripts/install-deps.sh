#!/bin/sh
# Install everything cowchain needs to build and test, from Debian's archive.
# Idempotent: when every package is present it only checks and returns.
#
#   scripts/install-deps.sh          # as root (CI, fresh machines)
#
# Kernels: Debian 12's own (6.1) and bookworm-backports' (6.12), each with
# headers, so the module is built and tested on both.
set -eu

PKGS="build-essential pkg-config kmod cpio xz-utils zstd
      qemu-system-x86 busybox-static
      fio dmsetup libdevmapper-dev e2fsprogs xfsprogs util-linux
      libcmocka-dev libjson-c-dev clang
      linux-image-amd64 linux-headers-amd64"
BPO_PKGS="linux-image-amd64 linux-headers-amd64"

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must run as root (apt-get)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

bpo_list=/etc/apt/sources.list.d/bookworm-backports.list
need_update=0
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" > "$bpo_list"
	need_update=1
fi

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done

# A backports kernel is present when some installed linux-image is >= 6.2.
have_bpo=0
for v in /boot/vmlinuz-*; do
	[ -e "$v" ] || continue
	ver=${v#/boot/vmlinuz-}
	major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
	if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 2 ]; }; then
		[ -d "/lib/modules/$ver/build" ] && have_bpo=1
	fi
done

if [ -z "$missing" ] && [ "$have_bpo" -eq 1 ]; then
	echo "install-deps: everything present"
	exit 0
fi

if [ "$need_update" -eq 1 ] || [ -n "$missing" ] || [ "$have_bpo" -eq 0 ]; then
	apt-get update -q
fi
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
if [ "$have_bpo" -eq 0 ]; then
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends -t bookworm-backports $BPO_PKGS
	# The 6.1 image must stay: reinstall the bookworm meta packages'
	# targets if the backports meta package replaced them.
fi
echo "install-deps: done"

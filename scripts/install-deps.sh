#!/bin/sh
# Install everything cowchain needs to build and test, from Debian's archive.
# Idempotent: when every package is present it only checks and returns.
#
#   scripts/install-deps.sh          # as root (CI, fresh machines)
#
# Kernels: Debian 12's own (6.1) and bookworm-backports' (6.12), each with
# headers, so the module is built and tested on both.  ABI versions are never
# named here: they are taken from the archive's linux-image-amd64 packages.
set -eu

PKGS="build-essential pkg-config kmod cpio xz-utils zstd gzip
      qemu-system-x86 busybox-static
      fio dmsetup libdevmapper-dev e2fsprogs xfsprogs util-linux coreutils
      qemu-utils thin-provisioning-tools jq python3 gnuplot-nox linux-perf
      libcmocka-dev libjson-c-dev clang shellcheck
      linux-image-amd64 linux-headers-amd64"
BPO_PKGS="linux-image-amd64 linux-headers-amd64"

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: must run as root (apt-get)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

bpo_list=/etc/apt/sources.list.d/bookworm-backports.list
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	echo "deb http://deb.debian.org/debian bookworm-backports main" > "$bpo_list"
fi

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done

# have_kernel old|new: an installed kernel with headers, 6.1.x (old) or
# newer than 6.1 (new, the backports one).
have_kernel() {
	for v in /boot/vmlinuz-*; do
		[ -e "$v" ] || continue
		ver=${v#/boot/vmlinuz-}
		[ -d "/lib/modules/$ver/build" ] || continue
		major=${ver%%.*}; rest=${ver#*.}; minor=${rest%%.*}
		case $1 in
		old) [ "$major" -eq 6 ] && [ "$minor" -eq 1 ] && return 0 ;;
		new) { [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 2 ]; }; } && return 0 ;;
		esac
	done
	return 1
}

# The ABI package (e.g. linux-image-6.1.0-NN-amd64) that the newest 6.1
# version of meta package $1 depends on.
bookworm_abi_pkg() {
	apt-cache show "$1" | awk '
		/^Version:/ { v = $2 }
		/^Depends:/ && v ~ /^6\.1\./ && !done { print $2; done = 1 }'
}

if [ -z "$missing" ] && have_kernel old && have_kernel new; then
	echo "install-deps: everything present"
	exit 0
fi

apt-get update -q
if [ -n "$missing" ]; then
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi
if ! have_kernel new; then
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends -t bookworm-backports $BPO_PKGS
fi
if ! have_kernel old; then
	# The meta packages now point at backports: install 6.1 by its ABI name.
	img=$(bookworm_abi_pkg linux-image-amd64)
	hdr=$(bookworm_abi_pkg linux-headers-amd64)
	if [ -z "$img" ] || [ -z "$hdr" ]; then
		echo "install-deps: no 6.1 kernel in the archive" >&2
		exit 1
	fi
	apt-get install -y -q --no-install-recommends "$img" "$hdr"
fi
if ! have_kernel old || ! have_kernel new; then
	echo "install-deps: a 6.1 or a backports kernel with headers is still missing" >&2
	exit 1
fi
echo "install-deps: done"

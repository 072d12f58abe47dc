#!/bin/bash
# Run a command inside a QEMU guest booting an installed Debian kernel.
#
#   scripts/vm-run.sh [--kernel KVER|all] [--timeout SECS] [--out DIR] -- CMD [ARGS...]
#
# The guest sees the host's root file system read-only over 9p (so every
# path, binary and module is where it is on the host), with its own devtmpfs,
# proc, sysfs and tmpfs on /tmp and /run.  CMD runs as root in that chroot,
# in the current directory, with DM_DISABLE_UDEV=1 (no udev in the guest).
#
# The console shows CMD's output and only critical kernel messages.
#
# Per kernel, DIR/KVER (default DIR: build/vm) is exported writable and
# mounted in the guest at $COWCHAIN_OUT; the guest writes CMD's exit status
# and its full dmesg there, and the host keeps the serial console in
# DIR/KVER/console.log and the kernel log, streamed live from /dev/kmsg
# over a second serial port, in DIR/KVER/kmsg.log (useful when a hung guest
# had to be killed and wrote no dmesg).
#
# Exit status (of the last failing kernel; 0 when all passed):
#   CMD's own status, or
#   124  the guest did not finish within the timeout (QEMU killed)
#   125  CMD succeeded but the guest's dmesg shows a kernel problem
#   126  the guest died or failed to boot without reporting a status
#   2    usage error, no kernel found, QEMU or busybox missing
#
# Environment:
#   COWCHAIN_VM_ACCEL   tcg (default) or kvm (KVM guests hang on some hosts)
#   COWCHAIN_VM_MEM     guest RAM in MiB (default 3072)
#   COWCHAIN_VM_CPUS    guest CPUs (default 2)
#   COWCHAIN_VM_BOOT_TIMEOUT  seconds for the kernel to start the guest's init
#                       (default 300); a kernel that dies or hangs before it
#                       is booted once more (no test has run then)
#   COWCHAIN_VM_APPEND  extra kernel command line
#   COWCHAIN_VM_WATCHDOG   watchdog_thresh for the guest (default 60 under TCG:
#                       a soft lockup is then reported after 120 s instead of
#                       20 s; TCG runs 10-50x slower than hardware and a
#                       guest starved by other guests on a 2-CPU host would
#                       otherwise report lockups that are only emulation lag)
#   COWCHAIN_VM_9P_CACHE   9p cache mode of the guest's read-only root
#                       (default loose: the host tree must not change while a
#                       guest runs; "none" reads every file from the host)
#   COWCHAIN_VM_DEBUGOPTS  memory debugging options (default
#                       "slub_debug=FZPU page_poison=1"; they add ~15 s to a
#                       TCG boot, set it empty for quick iterations)
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self="$top/scripts/vm-run.sh"

usage() {
	sed -n '4p' "$self" | sed 's/^# *//' >&2
	exit 2
}
die() { echo "vm-run: $*" >&2; exit 2; }

kernel=all
timeout=600
outbase="$top/build/vm"
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) [ $# -ge 2 ] || usage; kernel=$2; shift 2 ;;
	--kernel=*) kernel=${1#*=}; shift ;;
	--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
	--timeout=*) timeout=${1#*=}; shift ;;
	--out) [ $# -ge 2 ] || usage; outbase=$2; shift 2 ;;
	--out=*) outbase=${1#*=}; shift ;;
	-h|--help) sed -n '2,/^set -e/p' "$self" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done
[ $# -gt 0 ] || usage
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive number of seconds, not '$timeout'"
mkdir -p "$outbase"
outbase=$(cd "$outbase" && pwd)

if [ "$kernel" = all ]; then
	mapfile -t kernels < <("$top/scripts/kernels.sh")
	[ ${#kernels[@]} -gt 0 ] || die "no kernel with headers installed (run scripts/install-deps.sh)"
else
	[ -e "/boot/vmlinuz-$kernel" ] || die "no /boot/vmlinuz-$kernel (installed: $("$top/scripts/kernels.sh" | tr '\n' ' '))"
	kernels=("$kernel")
fi

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found (run scripts/install-deps.sh)"
# The initramfs holds nothing but busybox, so it must be the static one.
busybox=/bin/busybox
[ -x "$busybox" ] || die "busybox not found (apt-get install busybox-static)"
! ldd "$busybox" >/dev/null 2>&1 || die "$busybox is dynamically linked (apt-get install busybox-static)"

# ---------------------------------------------------------------- initramfs

# The guest's /init.  Runs under busybox; its job ends at the chroot.
guest_init() {
	cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do
	insmod "/modules/$m" || echo "init: insmod $m failed"
done
fail() { echo "init: $*"; poweroff -f; }
# The whole kernel log, live, on the second serial port (DIR/KVER/kmsg.log):
# it survives a guest that hangs and has to be killed.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
cat /dev/kmsg > /dev/ttyS1 2>/dev/null &
mkdir -p /newroot
# The root is read-only and does not change while the guest runs, so the
# guest may cache it (cache=loose): every exec of bash, dmsetup or the tool
# is then served from the guest's page cache instead of a 9p round trip.
c9p=loose
for a in $(cat /proc/cmdline); do
	case $a in cowchain_vm.9p_cache=*) c9p=${a#*=} ;; esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=$c9p,ro root /newroot ||
	fail "cannot mount the host root over 9p (cache=$c9p)"
for d in proc sys dev tmp run; do [ -d /newroot/$d ] || fail "/$d missing on host"; done
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
# What udev would make: without /dev/fd bash's process substitution
# (cmp <(...) <(...)) hands the command a path that does not exist.
ln -sfn /proc/self/fd /newroot/dev/fd
ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout
ln -sf /proc/self/fd/2 /newroot/dev/stderr
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mkdir -p /out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /out ||
	fail "cannot mount the out export"
: > /out/booted
# Host paths under /tmp or /run that the command needs (the repository, the
# working directory) would vanish under the guest's tmpfs: carry them over.
i=0
while read -r p; do
	i=$((i + 1)); mkdir -p /keep/$i; mount -o bind "/newroot$p" /keep/$i
done < /out/.keep
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=755 tmpfs /newroot/run
i=0
while read -r p; do
	i=$((i + 1)); mkdir -p "/newroot$p"; mount -o bind /keep/$i "/newroot$p"
done < /out/.keep
mkdir -p /newroot/tmp/cowchain-out
mount -o bind /out /newroot/tmp/cowchain-out
chroot /newroot /bin/bash /tmp/cowchain-out/.cmd.sh </dev/null
echo $? > /out/exit-status.tmp
umount /newroot/tmp/cowchain-out
dmesg > /out/dmesg
sync
mv /out/exit-status.tmp /out/exit-status
sync
umount /out
poweroff -f
EOF
}

# Modules the guest needs before it can mount the 9p root, in load order.
boot_modules() {
	local kver=$1 m line
	for m in virtio_pci 9pnet_virtio 9p; do
		modprobe -S "$kver" --show-depends "$m" 2>/dev/null || true
	done | while read -r line; do
		case $line in insmod\ *) line=${line#insmod }; echo "${line%% *}" ;; esac
	done | awk '!seen[$0]++'
}

# Build build/initramfs/KVER.cpio.gz, or keep it if its inputs are unchanged.
build_initramfs() {
	local kver=$1 dir="$top/build/initramfs" img key mods m f dst stage
	img="$dir/$kver.cpio.gz"
	mods=$(boot_modules "$kver")
	key=$( { guest_init; echo "$mods"; for f in $busybox $mods; do stat -L -c '%n %s %Y' "$f"; done; } | sha256sum)
	if [ -f "$img" ] && [ "$(cat "$img.key" 2>/dev/null)" = "$key" ]; then
		return 0
	fi
	echo "vm-run: building initramfs for $kver"
	mkdir -p "$dir"
	stage=$(mktemp -d "$dir/stage.XXXXXX")
	mkdir -p "$stage"/{bin,proc,sys,dev,modules,newroot}
	cp "$busybox" "$stage/bin/busybox"
	guest_init > "$stage/init"
	chmod 755 "$stage/init"
	: > "$stage/modules.list"
	for m in $mods; do
		dst=$(basename "$m"); dst=${dst%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
		case $m in
		*.xz) xz -dc "$m" > "$stage/modules/$dst" ;;
		*.zst) zstd -qdc "$m" > "$stage/modules/$dst" ;;
		*.gz) gzip -dc "$m" > "$stage/modules/$dst" ;;
		*) cp "$m" "$stage/modules/$dst" ;;
		esac
		echo "$dst" >> "$stage/modules.list"
	done
	(cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1) > "$img.tmp"
	rm -rf "$stage"
	mv "$img.tmp" "$img"
	echo "$key" > "$img.key"
}

# ---------------------------------------------------------------- one run

# Lines in dmesg that fail a run, whatever CMD returned.
bad_dmesg='(^|[^A-Za-z])BUG([^A-Za-z]|$)|WARNING:|Oops|general protection|list_add corruption|list_del corruption|blocked for more than|soft lockup'

# report_bad KVER LOG: print LOG's kernel problems; false when there are none.
report_bad() {
	[ -f "$2" ] && grep -Eq "$bad_dmesg" "$2" || return 1
	echo "vm-run: $1: the guest's kernel log shows a problem ($2):" >&2
	grep -E "$bad_dmesg" "$2" | head -n 20 | sed 's/^/    /' >&2
}

# boot_once KVER OUT ACCEL CPU [QEMU ARGS...]: one boot of the guest; QEMU's
# (or timeout's) status, or 200 when the guest's init did not start within
# COWCHAIN_VM_BOOT_TIMEOUT seconds and QEMU was stopped.
boot_once() {
	local kver=$1 out=$2 accel=$3 cpu=$4 pid waited=0 rc=0
	shift 4
	rm -f "$out/qemu.pid"
	( timeout -k 10 "$timeout" qemu-system-x86_64 -pidfile "$out/qemu.pid" \
		-accel "$accel" -cpu "$cpu" -smp "${COWCHAIN_VM_CPUS:-2}" -m "${COWCHAIN_VM_MEM:-3072}" \
		-kernel "/boot/vmlinuz-$kver" -initrd "$top/build/initramfs/$kver.cpio.gz" \
		-append "console=ttyS0 quiet loglevel=3 panic=-1 ${COWCHAIN_VM_DEBUGOPTS-slub_debug=FZPU page_poison=1} watchdog_thresh=$watchdog log_buf_len=16M rdinit=/init cowchain_vm.9p_cache=${COWCHAIN_VM_9P_CACHE:-loose} ${COWCHAIN_VM_APPEND:-}" \
		-virtfs "local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap" \
		-virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap" \
		"$@" -nographic -no-reboot -nic none \
		-monitor none -serial stdio -serial "file:$out/kmsg.log" </dev/null 2>&1 |
		sed -u 's/\r$//' | tee "$out/console.log" ) &
	pid=$!
	while [ ! -f "$out/booted" ] && kill -0 "$pid" 2>/dev/null; do
		if [ "$waited" -ge "${COWCHAIN_VM_BOOT_TIMEOUT:-300}" ]; then
			kill "$(cat "$out/qemu.pid" 2>/dev/null)" 2>/dev/null || true
			wait "$pid" || true
			return 200
		fi
		sleep 1
		waited=$((waited + 1))
	done
	wait "$pid" || rc=$?
	return "$rc"
}


run_one() {
	local kver=$1; shift
	local out="$outbase/$kver" accel cpu status start secs rc bios boot
	build_initramfs "$kver"
	rm -rf "$out"
	mkdir -p "$out"
	# CMD, quoted, for the guest's bash: same directory, same arguments.
	{
		echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		echo "export HOME=/root TERM=dumb DM_DISABLE_UDEV=1 COWCHAIN_OUT=/tmp/cowchain-out"
		echo "export COWCHAIN_KVER=$(printf %q "$kver")"
		echo "cd $(printf %q "$PWD") || exit 126"
		printf 'exec'; printf ' %q' "$@"; echo
	} > "$out/.cmd.sh"
	for p in "$top" "$PWD"; do
		case $p in /tmp/*|/run/*) echo "$p" ;; esac
	done | sort -u > "$out/.keep"

	case ${COWCHAIN_VM_ACCEL:-tcg} in
	kvm) accel="kvm"; cpu=host; watchdog=${COWCHAIN_VM_WATCHDOG:-10} ;;
	tcg) accel="tcg,thread=multi"; cpu=max; watchdog=${COWCHAIN_VM_WATCHDOG:-60} ;;
	*) die "COWCHAIN_VM_ACCEL must be tcg or kvm" ;;
	esac

	# qboot: no BIOS banner and escape codes on the console.
	bios=()
	[ ! -f /usr/share/qemu/qboot.rom ] || bios=(-bios /usr/share/qemu/qboot.rom)

	echo "vm-run: $kver: booting ($accel, timeout ${timeout}s): $*"
	start=$(date +%s%N)
	for boot in 1 2; do
		rc=0
		boot_once "$kver" "$out" "$accel" "$cpu" "${bios[@]}" || rc=$?
		# A kernel that died or hung before the guest's init ran ran no
		# test: boot it once more.  Seen under multi-threaded TCG on a
		# loaded host, no module loaded: an int3 oops in sched_clock_cpu
		# and a soft lockup of PID 1, both during the kernel's own init.
		if [ "$boot" = 2 ] || [ -f "$out/booted" ] || [ -f "$out/exit-status" ] ||
			[ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			break
		fi
		if [ "$rc" = 200 ]; then
			echo "vm-run: $kver: the guest's init did not start within" \
				"${COWCHAIN_VM_BOOT_TIMEOUT:-300}s (no test ran; console: $out/console.boot1.log): booting again" >&2
		else
			echo "vm-run: $kver: the kernel died before the guest's init started (no test ran;" \
				"console: $out/console.boot1.log): booting again" >&2
		fi
		mv "$out/console.log" "$out/console.boot1.log"
		mv "$out/kmsg.log" "$out/kmsg.boot1.log"
	done
	secs=$(( ($(date +%s%N) - start) / 100000000 ))
	secs=$((secs / 10)).$((secs % 10))

	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "vm-run: $kver: TIMEOUT: no result after ${timeout}s, QEMU killed (console: $out/console.log, kernel log: $out/kmsg.log)" >&2
		report_bad "$kver" "$out/kmsg.log" || true
		return 124
	fi
	if [ "$rc" = 200 ]; then
		echo "vm-run: $kver: the guest's init did not start within ${COWCHAIN_VM_BOOT_TIMEOUT:-300}s, twice" \
			"(console: $out/console.log, $out/console.boot1.log)" >&2
		return 126
	fi
	if [ ! -f "$out/exit-status" ]; then
		echo "vm-run: $kver: the guest stopped without reporting a status (QEMU exit $rc; console: $out/console.log, kernel log: $out/kmsg.log)" >&2
		report_bad "$kver" "$out/kmsg.log" || true
		return 126
	fi
	status=$(cat "$out/exit-status")
	if report_bad "$kver" "$out/dmesg"; then
		[ "$status" -ne 0 ] || status=125
	fi
	echo "vm-run: $kver: exit $status after ${secs}s"
	return "$status"
}

final=0
for k in "${kernels[@]}"; do
	rc=0
	# One run at a time per out directory: another vm-run in the same tree
	# (make check twice, say) waits rather than wiping this one's results.
	exec {lock}> "$outbase/.$k.lock"
	if ! flock -n "$lock"; then
		echo "vm-run: $k: $outbase/$k is in use by another vm-run, waiting"
		flock "$lock"
	fi
	run_one "$k" "$@" || rc=$?
	exec {lock}>&-
	[ "$rc" -eq 0 ] || final=$rc
done
exit "$final"

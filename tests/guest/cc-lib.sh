# shellcheck shell=bash
# Helpers for the dm-cowchain target's guest tests; source after lib.sh.
# Chains are built with the userspace tool (the reference model) as files
# under $TEST_TMP, attached through loop devices (ancestors read-only).

[ -x "$TOP/userspace/cowchain" ] || skip "userspace/cowchain not built"
# a private copy: the tool may be rebuilt on the host while we run
cp "$TOP/userspace/cowchain" "$TEST_TMP/cowchain"
CC=$TEST_TMP/cowchain
require_cmd losetup dmsetup cmp
modprobe loop 2>/dev/null || true

# loop_attach FILE [ro]: attach FILE, print the loop device, detach on exit.
loop_attach() {
	local dev
	if [ "${2:-}" = ro ]; then
		dev=$(losetup -f --show --read-only "$1") || fail "losetup $1"
	else
		dev=$(losetup -f --show "$1") || fail "losetup $1"
	fi
	on_exit losetup -d "$dev"
	echo "$dev"
}

# vsize FILE: virtual size in bytes.
vsize() {
	"$CC" info "$1" | awk '/^virtual size:/ {print $3}'
}

# mode_of NAME: a cowchain device's mode (rw, ro, fail, out_of_space: the
# fourth field of its status, docs/dm-cowchain.rst)
mode_of() { dmsetup status "$1" | awk '{print $4}'; }

# await_failed NAME WHAT: after a failed metadata write, wait up to 5 s for
# NAME's mode to become ro or fail, log its status as STATUS and fail the
# test if it does not
await_failed() {
	local i
	for ((i = 0; i < 10; i++)); do
		case $(mode_of "$1") in ro|fail) break ;; esac
		sleep 0.5
	done
	STATUS=$(dmsetup status "$1")
	log "$2status after the fault: $STATUS"
	case $(mode_of "$1") in
	ro|fail) ;;
	*) fail "$2mode '$(mode_of "$1")' after a failed metadata write" ;;
	esac
}

# chain_table TOP [ANCESTOR...] : table line for files, attaching them.
# Sets LOOPS to the loop devices (top first).
chain_table() {
	local top=$1 f dev sectors
	shift
	LOOPS=()
	dev=$(loop_attach "$top")
	LOOPS+=("$dev")
	for f; do
		dev=$(loop_attach "$f" ro)
		LOOPS+=("$dev")
	done
	sectors=$(( $(vsize "$top") / 512 ))
	echo "0 $sectors cowchain ${LOOPS[0]} $# ${LOOPS[*]:1} -"
}

# same_as_library DEV TOPFILE WHAT: the whole device equals the library's read.
same_as_library() {
	local size
	size=$(vsize "$2")
	"$CC" read "$2" --offset 0 --length "$size" --output "$TEST_TMP/ref" ||
		fail "$3: cowchain read failed"
	dd if="$1" of="$TEST_TMP/dev" bs=1M iflag=direct status=none ||
		fail "$3: reading $1 failed"
	cmp "$TEST_TMP/ref" "$TEST_TMP/dev" || fail "$3: device differs from the library"
}

# write_removed_library NAME TOPFILE WHAT: 64 KiB of random data written at
# 12 KiB through /dev/mapper/NAME, which is then removed: the library must
# read the same bytes from TOPFILE (the write landed where it reads).
write_removed_library() {
	head -c 65536 /dev/urandom > "$TEST_TMP/w"
	dd if="$TEST_TMP/w" of="/dev/mapper/$1" bs=4096 seek=3 oflag=direct conv=notrunc \
		status=none || fail "$3: write"
	dm_remove "$1"
	"$CC" read "$2" --offset 12288 --length 65536 --output "$TEST_TMP/r" ||
		fail "$3: cowchain read"
	cmp "$TEST_TMP/w" "$TEST_TMP/r" || fail "$3: the write differs in the library"
}

# make_chain DIR DEPTH SIZE_MIB: root + DEPTH-1 children, each writing
# data, zeroes and discards at depth-dependent places (overlapping).  Prints
# the files, top first.
make_chain() {
	local dir=$1 depth=$2 mib=$3 i f prev="" files=()
	for ((i = 0; i < depth; i++)); do
		f=$dir/l$i.cow
		if [ -z "$prev" ]; then
			"$CC" create "$f" --size "${mib}M" >/dev/null || fail "create $f"
		else
			"$CC" create "$f" --parent "$prev" >/dev/null || fail "create $f"
		fi
		# whole clusters, single sub-blocks, unaligned bytes, zeroes
		"$CC" write "$f" --offset $(( (i * 37 % (mib * 16)) * 65536 )) \
			--pattern $(( (i * 7 + 1) % 256 )) --length 65536 >/dev/null || fail "write $f"
		"$CC" write "$f" --offset $(( (i * 3) * 4096 )) \
			--pattern $(( (i * 11 + 2) % 256 )) --length 4096 >/dev/null || fail "write $f"
		"$CC" write "$f" --offset $(( 131072 + i * 1000 )) \
			--pattern $(( (i * 13 + 3) % 256 )) --length 3000 >/dev/null || fail "write $f"
		if ((i % 3 == 2)); then
			"$CC" write "$f" --offset $(( (i - 1) * 4096 )) --zero --length 8192 \
				>/dev/null || fail "zero $f"
		fi
		prev=$f
		files=("$f" "${files[@]}")
	done
	echo "${files[@]}"
}

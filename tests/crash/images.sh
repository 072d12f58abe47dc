# shellcheck shell=bash
# Hostile images; sourced by tests/guest/t-rel-images.sh and the stress
# tier after lib.sh, cc-lib.sh and lib-crash.sh.
#
# images_run SEED...: one variant of a chain of two per seed (each made by
# tests/crash/mutate.c: one field of one metadata block of the top or of
# its parent changed, the checksum recomputed half of the time), each fed
# to "cowchain check --chain" and to dmsetup create.  Holds when every
# variant is refused with a precise error (the kernel log names the
# problem) or is accepted only if check reports no corruption that matters
# to a reader of the device, and an accepted one reads from end to end
# without error.  Prints the counts and the refusal messages seen, most
# frequent first.
#
# What does not matter to a reader of the device: a damaged superblock
# slot (FORMAT.md 4: the other slot is used), and a parent check cannot
# find by the locator (PARENT_MISSING): the target never reads the locator,
# its table names the parent, whose uuid and generation it checks itself;
# the parent is then checked on its own.
images_run() {
	local count=$# d=$TEST_TMP/img i victim other what cs corr loopt loopb
	local accepted=0 refused=0 both_ok=0 disagree=0 readerr=0 chk_bad=0 n msg
	crash_build
	mkdir -p "$d/p" "$d/w"
	"$CC" create "$d/p/base.cow" --size 4M --cluster-size 64K >/dev/null || fail "create base"
	"$CC" write "$d/p/base.cow" --offset 0 --length 200000 --pattern 0x11 >/dev/null
	"$CC" write "$d/p/base.cow" --offset 3145728 --length 65536 --pattern 0x22 >/dev/null
	"$CC" create "$d/p/top.cow" --parent "$d/p/base.cow" >/dev/null || fail "create top"
	"$CC" write "$d/p/top.cow" --offset 65536 --length 8192 --pattern 0x33 >/dev/null
	"$CC" write "$d/p/top.cow" --offset 1000000 --length 300000 --pattern 0x44 >/dev/null
	"$CC" write "$d/p/top.cow" --offset 2000000 --length 70000 --zero >/dev/null
	"$CC" check --chain "$d/p/top.cow" >/dev/null || fail "the pristine chain does not check clean"
	uuid() { "$CC" info "$1" | awk '/^uuid:/ {print $2}' | tr -d -; }
	local ut ub
	ut=$(uuid "$d/p/top.cow"); ub=$(uuid "$d/p/base.cow")
	n=$(( $(vsize "$d/p/top.cow") / 512 ))
	: > "$d/msgs"
	for i in "$@"; do
		cp --sparse=always "$d/p/base.cow" "$d/p/top.cow" "$d/w/"
		if ((i % 4 == 3)); then victim=base.cow other=$ut; else victim=top.cow other=$ub; fi
		what=$("$MUTATE" "$d/w/$victim" "$i" --other-uuid "$other") || fail "mutate $i"
		cs=0
		"$CC" check --chain "$d/w/top.cow" > "$d/check.out" 2>&1 || cs=$?
		# corruption that matters to a reader: a damaged non-current
		# superblock slot does not (FORMAT.md 4: the other slot is used)
		corr=$(corruption "$d/check.out" "$cs" 'SB_SLOT_INVALID\|PARENT_MISSING')
		if [ "$corr" = 0 ] && grep -q 'PARENT_MISSING' "$d/check.out"; then
			cs=0
			"$CC" check "$d/w/base.cow" > "$d/check.out" 2>&1 || cs=$?
			corr=$(corruption "$d/check.out" "$cs" 'SB_SLOT_INVALID')
		fi
		[ "$corr" = 0 ] || chk_bad=$((chk_bad + 1))
		loopt=$(losetup -f --show "$d/w/top.cow") || fail "losetup"
		loopb=$(losetup -f --show --read-only "$d/w/base.cow") || fail "losetup"
		if dmsetup create cc-img --table "0 $n cowchain $loopt 1 $loopb -" 2>/dev/null; then
			accepted=$((accepted + 1))
			if ! dd if=/dev/mapper/cc-img of=/dev/null bs=1M iflag=direct status=none 2>/dev/null; then
				readerr=$((readerr + 1))
			fi
			dmsetup remove cc-img || fail "remove after image $i"
			if [ "$corr" != 0 ]; then
				disagree=$((disagree + 1))
				log "DISAGREE image $i ($victim: $what): accepted by the target, check: $corr corruption (exit $cs)"
			else
				both_ok=$((both_ok + 1))
			fi
		else
			refused=$((refused + 1))
			msg=$(dmesg | tail -n 3 | grep -o 'cowchain: .*' | tail -n 1 || true)
			[ -n "$msg" ] || { log "image $i ($victim: $what): refused without a cowchain error"; disagree=$((disagree + 1)); }
			# shellcheck disable=SC2001 # a regex: no expansion does {2,}
			echo "${msg:-<none>}" | sed 's/[0-9]\{2,\}/N/g' >> "$d/msgs"
		fi
		losetup -d "$loopt"; losetup -d "$loopb"
	done
	log "$count hostile images (seeds $(seeds_str "$@")): $refused refused by dmsetup create," \
		"$accepted accepted ($both_ok of them clean for check, $readerr with a read error);" \
		"check found problems in $chk_bad; target accepted what check refused: $disagree"
	log "refusals by message:"
	sort "$d/msgs" | uniq -c | sort -rn | head -n 25
	# shellcheck disable=SC2034 # for callers
	IMG_DISAGREE=$disagree
	[ "$disagree" -eq 0 ] || fail "$disagree images accepted by the target that check refuses"
}

# corruption OUT STATUS IGNORE: the corruption findings in check's output
# OUT other than those matching IGNORE, or "error" when check could not run
corruption() {
	if [ "$2" -ge 8 ]; then echo error; return; fi
	grep ': corruption: ' "$1" | grep -vc "$3" || true
}

# seeds_str SEED...: "1..10 1132 1290" for the log.
seeds_str() {
	local out="" first=$1 last=$1 x
	shift
	for x in "$@" ""; do
		if [ -n "$x" ] && [ "$x" -eq $((last + 1)) ]; then last=$x; continue; fi
		if [ "$first" = "$last" ]; then out+=" $first"; else out+=" $first..$last"; fi
		first=$x last=$x
	done
	echo "${out# }"
}

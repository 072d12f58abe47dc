#!/bin/bash
# The end-to-end story on ext4: a root layer with files, a live snapshot,
# files changed and deleted, a second live snapshot, a live restore (back
# to the second snapshot), then the first snapshot brought back as a new
# child of the root; every file's sha256 checked at every step, e2fsck
# clean at every step.  Then the middle snapshot is deleted (issue 6):
# root-snap1.cow streamed into its child (the root, with two children,
# cannot take it); both leaves still hold exactly their files afterwards.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd mkfs.ext4 e2fsck sha256sum mount umount
modprobe ext4 2>/dev/null || true
grep -qw ext4 /proc/filesystems || skip "no ext4 in this kernel"

d=$TEST_TMP/img
m=$TEST_TMP/mnt
mkdir -p "$d" "$m"
cd "$d"
cc_detach() { umount "$m" 2>/dev/null; "$CC" detach "$1" 2>/dev/null || dm_remove "$1"; }

manifest() { (cd "$m" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
fsck_clean() { # fsck_clean DEV WHAT
	e2fsck -fn "$1" >"$TEST_TMP/fsck" 2>&1 || fail "$2: e2fsck: $(cat "$TEST_TMP/fsck")"
}
remount_check() { # remount_check DEV MANIFEST WHAT
	umount "$m"
	fsck_clean "$1" "$3"
	mount "$1" "$m" || fail "$3: mount"
	manifest > "$TEST_TMP/now"
	diff -u "$2" "$TEST_TMP/now" >&2 || fail "$3: files differ"
}

log "root layer, ext4, files"
"$CC" create root.cow --size 128M >/dev/null || fail "create"
dev=$("$CC" attach story root.cow) || fail "attach"
on_exit cc_detach story
mkfs.ext4 -q -F -b 4096 "$dev" || fail "mkfs"
mount "$dev" "$m" || fail "mount"
mkdir -p "$m/etc" "$m/data"
for i in $(seq 1 12); do head -c $((i * 37000)) /dev/urandom > "$m/data/f$i"; done
head -c 3M /dev/urandom > "$m/data/big"
echo "hello" > "$m/etc/motd"
sync
manifest > "$TEST_TMP/m0"
remount_check "$dev" "$TEST_TMP/m0" "installed"

log "snapshot 1 (live, mounted)"
s1=$("$CC" snapshot story) || fail "snapshot 1"
assert_eq "$d/root-snap1.cow" "$(readlink -f "$s1")" "snapshot 1 name"
manifest > "$TEST_TMP/now"
diff -u "$TEST_TMP/m0" "$TEST_TMP/now" >&2 || fail "files changed across snapshot 1"

log "change and delete files"
rm "$m/data/f3" "$m/data/f7"
head -c 200000 /dev/urandom > "$m/data/f5"
dd if=/dev/urandom of="$m/data/big" bs=4096 seek=100 count=50 conv=notrunc status=none
echo "changed" >> "$m/etc/motd"
head -c 1M /dev/urandom > "$m/data/new"
sync
manifest > "$TEST_TMP/m1"
remount_check "$dev" "$TEST_TMP/m1" "changed"

log "snapshot 2"
s2=$("$CC" snapshot story) || fail "snapshot 2"
assert_eq "$d/root-snap2.cow" "$(readlink -f "$s2")" "snapshot 2 name"
remount_check "$dev" "$TEST_TMP/m1" "after snapshot 2"

log "more changes, then restore (live): back to snapshot 2"
rm -rf "$m/data"
echo "lost" > "$m/etc/lost"
sync
umount "$m"
"$CC" restore story || fail "live restore"
fsck_clean "$dev" "restored"
mount "$dev" "$m" || fail "mount restored"
manifest > "$TEST_TMP/now"
diff -u "$TEST_TMP/m1" "$TEST_TMP/now" >&2 || fail "restore did not bring snapshot 2 back"
umount "$m"
"$CC" detach story || fail "detach"

log "the first snapshot: a new child of the root"
"$CC" create back.cow --parent root.cow >/dev/null || fail "create back.cow"
dev=$("$CC" attach story back.cow) || fail "attach back.cow"
fsck_clean "$dev" "first snapshot"
mount "$dev" "$m" || fail "mount first snapshot"
manifest > "$TEST_TMP/now"
diff -u "$TEST_TMP/m0" "$TEST_TMP/now" >&2 || fail "the first snapshot's files differ"
echo "writable" > "$m/etc/new"
sync
manifest > "$TEST_TMP/m2"
umount "$m"
fsck_clean "$dev" "first snapshot written"
"$CC" detach story || fail "detach back.cow"
for f in root.cow root-snap1.cow root-snap2.cow back.cow; do
	"$CC" check "$f" >/dev/null || fail "cowchain check $f"
done
"$CC" tree "$d"

log "delete the middle snapshot: stream root-snap1.cow into its child"
dev=$("$CC" attach story root-snap2.cow) || fail "attach root-snap2.cow"
if "$CC" merge --into-children root-snap1.cow > "$TEST_TMP/merge.out" 2>&1; then
	fail "merge of a layer under an attached device was accepted"
fi
log "refused while attached: $(cat "$TEST_TMP/merge.out")"
"$CC" detach story || fail "detach root-snap2.cow"
"$CC" merge --plan --into-children root-snap1.cow || fail "merge --plan"
"$CC" merge --into-children root-snap1.cow || fail "merge --into-children root-snap1.cow"
[ ! -e root-snap1.cow ] || fail "root-snap1.cow is still there after the merge"
log "into a parent with another child: refused"
if "$CC" merge --direction parent root-snap2.cow > "$TEST_TMP/merge.out" 2>&1; then
	fail "merging root-snap2.cow into root.cow, which back.cow also reads, was accepted"
fi
grep -q "other children" "$TEST_TMP/merge.out" || fail "refusal without its reason: $(cat "$TEST_TMP/merge.out")"
for f in root.cow root-snap2.cow back.cow; do
	"$CC" check "$f" >/dev/null || fail "cowchain check $f after the merge"
done
for pair in "root-snap2.cow m1" "back.cow m2"; do
	read -r f want <<< "$pair"
	dev=$("$CC" attach story "$f") || fail "attach $f after the merge"
	fsck_clean "$dev" "$f after the merge"
	mount -o ro "$dev" "$m" || fail "mount $f after the merge"
	manifest > "$TEST_TMP/now"
	diff -u "$TEST_TMP/$want" "$TEST_TMP/now" >&2 || fail "$f: files differ after the merge"
	umount "$m"
	"$CC" detach story || fail "detach $f"
done
"$CC" tree "$d"
log "ok"

#!/bin/bash
# cowchain tree on three levels with siblings, attached-as, broken links
# (missing parent, wrong generation); resize offline and live.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
require_cmd python3

d=$TEST_TMP/img
mkdir -p "$d"
cd "$d"
cc_detach() { "$CC" detach "$1" 2>/dev/null || dm_remove "$1"; }
"$CC" create root.cow --size 32M >/dev/null || fail "create root"
"$CC" write root.cow --offset 0 --pattern 1 --length 1M >/dev/null || fail "write root"
"$CC" create a.cow --parent root.cow >/dev/null
"$CC" create b.cow --parent root.cow >/dev/null
"$CC" create a1.cow --parent a.cow >/dev/null
"$CC" create a2.cow --parent a.cow --autoreset >/dev/null
"$CC" write a1.cow --offset 0 --pattern 2 --length 256K >/dev/null || fail "write a1"
# a generation mismatch: the parent file replaced by an older copy of itself
"$CC" create g.cow --size 32M >/dev/null
cp g.cow "$TEST_TMP/g.orig"
"$CC" write g.cow --offset 0 --pattern 3 --length 4096 >/dev/null
"$CC" create gc.cow --parent g.cow >/dev/null
cp "$TEST_TMP/g.orig" g.cow
# a missing parent
"$CC" create lost.cow --size 32M >/dev/null
"$CC" create orphan.cow --parent lost.cow >/dev/null
rm lost.cow
dev=$("$CC" attach t-a1 a1.cow) || fail "attach a1"
on_exit cc_detach t-a1

"$CC" tree . > "$TEST_TMP/tree" || fail "tree"
cat "$TEST_TMP/tree"
grep -q '^./root.cow .*sealed' "$TEST_TMP/tree" || fail "root line"
grep -q '^|-- ./a.cow .*sealed' "$TEST_TMP/tree" || fail "a line"
grep -q '^|   |-- ./a1.cow .*attached: t-a1' "$TEST_TMP/tree" || fail "a1 line"
grep -q '^|   `-- ./a2.cow .*autoreset' "$TEST_TMP/tree" || fail "a2 line"
grep -q '^`-- ./b.cow' "$TEST_TMP/tree" || fail "b line"
grep -q 'gc.cow .*!! wrong-generation' "$TEST_TMP/tree" || fail "generation mismatch not flagged"
grep -q '^./orphan.cow .*!! missing-parent' "$TEST_TMP/tree" || fail "missing parent not flagged"
grep -q '^2 problems' "$TEST_TMP/tree" || fail "problem count"
"$CC" tree . --json > "$TEST_TMP/tree.json" || fail "tree --json"
python3 - "$TEST_TMP/tree.json" <<'PY' || fail "tree --json content"
import json, sys
t = json.load(open(sys.argv[1]))
assert t["layers"] == 8 and t["problems"] == 2, t
root = [r for r in t["roots"] if r["file"].endswith("root.cow")][0]
assert [c["file"][-5:] for c in root["children"]] == ["a.cow", "b.cow"], root
a = root["children"][0]
kids = {c["file"][2:]: c for c in a["children"]}
assert set(kids) == {"a1.cow", "a2.cow"}, kids
assert kids["a1.cow"]["attached_as"] == ["t-a1"], kids["a1.cow"]
assert kids["a1.cow"]["allocated"] == 4 * 65536, kids["a1.cow"]
assert "autoreset" in kids["a2.cow"]["flags"]
assert root["allocated"] == 1 << 20 and root["disk_usage"] > 0
PY

log "resize: offline, then live"
"$CC" resize b.cow --size 48M || fail "offline resize"
assert_eq $((48 << 20)) "$(vsize b.cow)" "offline size"
assert_fails "$CC" resize b.cow --size 16M
echo "$ASSERT_ERR" | grep -q "cannot shrink" || fail "shrink refusal: $ASSERT_ERR"
assert_fails "$CC" resize root.cow --size 64M
echo "$ASSERT_ERR" | grep -Eq "sealed|in use by device" || fail "sealed resize refusal: $ASSERT_ERR"
"$CC" resize t-a1 --size 40M || fail "live resize"
assert_eq $((40 * 2048)) "$(size_sectors "$dev")" "live device size"
dd if="$dev" of="$TEST_TMP/rs-dev" bs=1M count=1 iflag=direct status=none || fail "read $dev after live resize"
"$CC" read a1.cow --offset 0 --length 1M --output "$TEST_TMP/rs-lib" || fail "library read after live resize"
if ! cmp -s "$TEST_TMP/rs-dev" "$TEST_TMP/rs-lib"; then
	log "device: table '$(dmsetup table t-a1)'; loops: $(losetup -a | tr '\n' ';')"
	log "a1.cow: $("$CC" info a1.cow 2>&1 | tr '\n' ';')"
	for f in rs-dev rs-lib; do
		log "$f: $(od -An -tx1 -N4 "$TEST_TMP/$f") at 0, $(od -An -tx1 -N4 -j $((256 << 10)) "$TEST_TMP/$f") at 256K, $(sha256sum < "$TEST_TMP/$f" | cut -c1-16)"
	done
	log "first differences (device vs library): $(cmp -l "$TEST_TMP/rs-dev" "$TEST_TMP/rs-lib" | head -3 | tr '\n' ';') ($(cmp -l "$TEST_TMP/rs-dev" "$TEST_TMP/rs-lib" | wc -l) bytes)"
	fail "data after live resize: the device and the library differ"
fi
dd if=/dev/urandom of="$TEST_TMP/tail" bs=1M count=1 status=none
write_verify "$dev" "$TEST_TMP/tail" 39
"$CC" detach t-a1 || fail "detach"
"$CC" check a1.cow >/dev/null || fail "check a1 after resize"
assert_eq $((40 << 20)) "$(vsize a1.cow)" "size on disk after live resize"

log "delete: a leaf goes, the parent stays sealed"
"$CC" delete a2.cow || fail "delete a2"
[ ! -e a2.cow ] || fail "a2.cow still there"
"$CC" info a.cow | grep -q sealed || fail "a.cow unsealed"
log "ok"

# Helpers for tests/images/*/make.sh (sourced; run in the case's scratch dir).
# $COWCHAIN is the tool, $POKE the corruption helper (poke.c).

# The base image most cases start from: a 64 MiB root layer, 64 KiB
# clusters, holding clusters 0-3 (3.125 of them written) and cluster 160.
# Layout, fixed by the allocator: root block 2, journal 3..258, map block
# 272, leaf blocks 273 (clusters 0-127) and 274 (128-255), data clusters
# 18-21 (clusters 0-3) and 22 (cluster 160).  Metadata cluster 17.
base_image() {
	"$COWCHAIN" create "${1:-img.cow}" --size 64M >/dev/null &&
	"$COWCHAIN" write "${1:-img.cow}" --offset 0 --pattern 0xaa --length 200K >/dev/null &&
	"$COWCHAIN" write "${1:-img.cow}" --offset 10M --pattern 0x55 --length 4K >/dev/null
}

# Block number of the superblock slot in use.
cur_sb() { "$POKE" cursb "${1:-img.cow}"; }
other_sb() { echo $((1 - $("$POKE" cursb "${1:-img.cow}"))); }

# Raw hex of the layer uuid of FILE (16 bytes at offset 16 of its superblock).
uuid_hex() {
	local s; s=$(cur_sb "$1")
	od -An -tx1 -v -j $((s * 4096 + 16)) -N 16 "$1" | tr -d ' \n'
}

# Offsets in a superblock (docs/FORMAT.md 4) and in a leaf (5).
SB_FLAGS=80 SB_PARENT_KIND=84 SB_PARENT_UUID=96 SB_PARENT_GEN=120
SB_JHEAD=168 SB_JSEQ=176 SB_LOCATOR_LEN=220 SB_LOCATOR=512
SB_MERGE_CURSOR=208 SB_MERGE_STATE=216 SB_MERGE_PEER=224
HDR_KEY=32 HDR_COUNT=40
leaf_entry() { echo $((64 + 24 * $1)); }	# offset of entry i's phys

# mark_merging FILE STATE PEER: FILE's superblock as a merge leaves it at
# its start (MERGING, merge_state STATE, cursor 0, merge_peer_uuid PEER's
# uuid): a real crash point, right after that superblock write.
mark_merging() {
	local s flags
	s=$(cur_sb "$1")
	flags=$(od -An -tu4 -j $((s * 4096 + SB_FLAGS)) -N 4 "$1" | tr -d ' ')
	"$POKE" set "$1" "$s" $SB_FLAGS 4 $((flags | 8))
	"$POKE" set "$1" "$s" $SB_MERGE_STATE 4 "$2"
	"$POKE" set "$1" "$s" $SB_MERGE_CURSOR 8 0
	"$POKE" bytes "$1" "$s" $SB_MERGE_PEER "$(uuid_hex "$3")"
}

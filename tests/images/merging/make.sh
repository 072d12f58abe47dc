# A root layer marked as the source of a merge into its parent (flag,
# state 1, cursor 7): an interrupted merge is harmless but left
# uncorrected (exit 4); --repair runs the merge code, which cannot finish
# it (a root has no parent), so it stays reported with the reason.
. "$IMAGES_LIB"
base_image
s=$(cur_sb)
"$POKE" set img.cow $s $SB_FLAGS 4 8
"$POKE" set img.cow $s $SB_MERGE_STATE 4 1
"$POKE" set img.cow $s $SB_MERGE_CURSOR 8 7

# What a device that failed a commit leaves: NEEDS_CHECK set and committed
# transactions the journal head has not passed (FORMAT.md 7).  One --repair
# checkpoints the journal and clears the flag in the same superblock write;
# the repair before this case left the flag for a second run.
. "$IMAGES_LIB"
base_image
s=$(cur_sb)
"$POKE" set img.cow $s $SB_FLAGS 4 4
"$POKE" set img.cow $s $SB_JHEAD 8 0
"$POKE" set img.cow $s $SB_JSEQ 8 1

# The superblock's journal head is moved back to the first transaction
# (position 0, sequence 1): the two
# committed transactions are replayed again (harmless); --repair
# checkpoints them.
. "$IMAGES_LIB"
base_image
s=$(cur_sb)
"$POKE" set img.cow $s $SB_JHEAD 8 0
"$POKE" set img.cow $s $SB_JSEQ 8 1

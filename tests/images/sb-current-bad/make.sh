# The superblock slot in use is damaged (one byte of its body flipped):
# the previous slot takes over, with an older journal head, so the
# transactions after it are replayed again.  --repair rewrites the slot.
. "$IMAGES_LIB"
base_image
"$POKE" flip img.cow $(( $(cur_sb) * 4096 + 100 ))

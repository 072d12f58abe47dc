# NEEDS_CHECK set on an otherwise clean layer: --repair clears it.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow $(cur_sb) $SB_FLAGS 4 4

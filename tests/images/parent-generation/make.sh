# The child records generation 99 for its parent.
. "$IMAGES_LIB"
base_image a.cow
"$COWCHAIN" create img.cow --parent a.cow >/dev/null
"$POKE" set img.cow $(cur_sb img.cow) $SB_PARENT_GEN 8 99

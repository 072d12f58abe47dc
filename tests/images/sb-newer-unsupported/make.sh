# A newer writer set an incompatible feature bit (0x80) this build does not
# know, in the slot in use.  That is not damage: check must refuse to judge
# (operational error, 8) rather than fall back to the older slot and, with
# --repair, overwrite the newer state.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow $(cur_sb) 76 4 0x80

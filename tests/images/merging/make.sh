# An offline merge owns the layer (flag, state 1 = into parent, cursor 7):
# reported as info only.
. "$IMAGES_LIB"
base_image
s=$(cur_sb)
"$POKE" set img.cow $s $SB_FLAGS 4 8
"$POKE" set img.cow $s 216 4 1
"$POKE" set img.cow $s 208 8 7

# A leaf entry points past the layer's capacity (1043 clusters).
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 273 $(leaf_entry 0) 8 5000

# Cluster 1's sub-block 0 is marked both present and zero.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 273 $(( $(leaf_entry 1) + 16 )) 8 1

# Cluster 3's data claims physical cluster 17, which holds the map and leaves.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 273 $(leaf_entry 3) 8 17

# Clusters 0 and 1 both claim physical cluster 18.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 273 $(leaf_entry 1) 8 18

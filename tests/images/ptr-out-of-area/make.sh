# Map slot 0 points into the journal (block 5), outside the cluster area.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 272 64 8 5

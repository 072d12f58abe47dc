# Leaf block 274 claims to cover cluster 999 (checksum resealed).
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 274 $HDR_KEY 8 999

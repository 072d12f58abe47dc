# The map block fails its checksum.
. "$IMAGES_LIB"
base_image
"$POKE" flip img.cow $((272 * 4096 + 70))

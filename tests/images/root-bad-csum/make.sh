# The root block fails its checksum: every cluster is lost (reported, not
# repaired), and the data clusters look leaked but are not punched.
. "$IMAGES_LIB"
base_image
"$POKE" flip img.cow $((2 * 4096 + 64))

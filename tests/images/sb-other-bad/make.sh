# The previous superblock slot (not in use) has a bad checksum.
. "$IMAGES_LIB"
base_image
"$POKE" flip img.cow $(( $(other_sb) * 4096 + 300 ))

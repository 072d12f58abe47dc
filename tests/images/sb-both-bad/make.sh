# Both superblock slots damaged: nothing can be trusted; not repairable.
. "$IMAGES_LIB"
base_image
"$POKE" flip img.cow 100
"$POKE" flip img.cow $((4096 + 100))

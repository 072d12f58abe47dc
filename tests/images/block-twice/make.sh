# Map slot 5 also points at leaf block 273 (count fixed up): reached twice.
. "$IMAGES_LIB"
base_image
"$POKE" set img.cow 272 $((64 + 8 * 5)) 8 273
"$POKE" set img.cow 272 $HDR_COUNT 4 2

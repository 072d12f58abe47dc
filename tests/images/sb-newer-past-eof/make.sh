# The slot in use claims one cluster more than the file holds (its checksum
# resealed).  "Fits the device" is one of a slot's checks (FORMAT.md 4), so
# check, the library and the target all skip that slot and use the older
# one, as for any damaged slot; only when neither slot fits is the file
# reported as truncated (see truncated/).
. "$IMAGES_LIB"
base_image
s=$(cur_sb)
cap=$(od -An -tu8 -j $((s * 4096 + 192)) -N 8 img.cow | tr -d ' ')
"$POKE" set img.cow "$s" 192 8 $((cap + 1))

# Two clusters written behind the index's back: allocated, unreferenced.
. "$IMAGES_LIB"
base_image
dd if=/dev/urandom of=img.cow bs=64K seek=500 count=2 conv=notrunc status=none

# The child's parent file is gone.
. "$IMAGES_LIB"
base_image a.cow
"$COWCHAIN" create img.cow --parent a.cow >/dev/null
rm a.cow

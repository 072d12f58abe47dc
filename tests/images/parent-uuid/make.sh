# The locator finds another layer than the one the child was made on.
. "$IMAGES_LIB"
base_image a.cow
"$COWCHAIN" create img.cow --parent a.cow >/dev/null
rm a.cow
base_image a.cow
"$COWCHAIN" create other.cow --parent a.cow >/dev/null

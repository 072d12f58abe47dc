# A healthy two-layer chain with data in both: nothing to report.
. "$IMAGES_LIB"
base_image a.cow
"$COWCHAIN" create img.cow --parent a.cow >/dev/null
"$COWCHAIN" write img.cow --offset 64K --pattern 0x11 --length 8K >/dev/null

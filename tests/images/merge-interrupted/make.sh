# A merge of child c.cow into its parent img.cow killed right after both
# superblocks were marked (c.cow: state 1, img.cow: state 2, cursor 0);
# c.cow has a child g.cow.  Reported (exit 4); --repair finishes it with
# the merge code: c.cow's data goes into img.cow, g.cow is relinked to
# img.cow, c.cow is deleted (exit 1); then img.cow checks clean.
. "$IMAGES_LIB"
base_image
"$COWCHAIN" snapshot img.cow c.cow >/dev/null
"$COWCHAIN" write c.cow --offset 64K --pattern 0x33 --length 256K >/dev/null
"$COWCHAIN" snapshot c.cow g.cow >/dev/null
mark_merging c.cow 1 img.cow
mark_merging img.cow 2 c.cow

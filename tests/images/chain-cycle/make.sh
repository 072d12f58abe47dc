# a.cow <- img.cow, then a.cow is made a child of img.cow: a cycle.
. "$IMAGES_LIB"
base_image a.cow
"$COWCHAIN" create img.cow --parent a.cow >/dev/null
s=$(cur_sb a.cow)
"$POKE" set a.cow $s $SB_PARENT_KIND 4 1
"$POKE" bytes a.cow $s $SB_PARENT_UUID "$(uuid_hex img.cow)"
"$POKE" set a.cow $s $SB_PARENT_GEN 8 1
"$POKE" set a.cow $s $SB_LOCATOR_LEN 4 7
"$POKE" bytes a.cow $s $SB_LOCATOR "$(printf img.cow | od -An -tx1 | tr -d ' \n')"

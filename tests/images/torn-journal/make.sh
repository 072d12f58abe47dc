# A transaction with the expected sequence sits at the journal head but its
# images were never written (a crash mid-commit): ignored, noted as info.
# Made from the first transaction's descriptor (position 0), moved to the
# head (position 7, sequence 3) and resealed there.
. "$IMAGES_LIB"
base_image
"$POKE" copy img.cow 3 10
"$POKE" set img.cow 10 8 8 10
"$POKE" set img.cow 10 $HDR_KEY 8 3

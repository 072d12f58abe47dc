#!/bin/bash
# Hostile images (quick tier): seeds 1..10 and the seeds the long tier once failed
# (docs/RELIABILITY.md, open failure 5), all fixed, so a failure reproduces; the
# stress tier runs thousands more.  See tests/crash/images.sh.
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
# shellcheck source=tests/crash/images.sh
. "$TOP/tests/crash/images.sh"
require_cmd gcc
first=${COWCHAIN_REL_IMAGE_SEED:-1}
# open failure 5: version and incompat (1290 1322 1546 1620 1638), capacity
# and cluster_shift (1132 1660), the parent locator (1706 1788 1806 1861)
regress="1132 1290 1322 1546 1620 1638 1660 1706 1788 1806 1861"
# shellcheck disable=SC2086 # a list of seeds
images_run $(seq "$first" $((first + ${COWCHAIN_REL_IMAGES:-10} - 1))) $regress
log "ok"

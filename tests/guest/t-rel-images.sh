#!/bin/bash
# Hostile images (quick tier): 10 images, fixed seeds, so a failure reproduces; the
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
images_run "${COWCHAIN_REL_IMAGES:-10}" "${COWCHAIN_REL_IMAGE_SEED:-1}"
log "ok"

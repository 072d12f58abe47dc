#!/bin/bash
# Hostile images, long tier: 2000 variants (seeds 1000..2999);
# COWCHAIN_STRESS_IMAGES sets how many (the issue asks for at least 1000).
# 1000 took 2400 to 2800 s under TCG: 2000 need more than run.sh's 5400 s.
# test-timeout: 9000
# shellcheck source=tests/guest/lib.sh
. "$(dirname "$0")/../guest/lib.sh"
# shellcheck source=tests/guest/cc-lib.sh
. "$(dirname "$0")/../guest/cc-lib.sh"
# shellcheck source=tests/crash/lib-crash.sh
. "$TOP/tests/crash/lib-crash.sh"
require_cmd gcc
# shellcheck source=tests/crash/images.sh
. "$TOP/tests/crash/images.sh"
# shellcheck disable=SC2046 # a list of seeds
images_run $(seq 1000 $((1000 + ${COWCHAIN_STRESS_IMAGES:-2000} - 1)))
log "ok"

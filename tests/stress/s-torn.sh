#!/bin/bash
# Torn metadata writes, long tier: every metadata write of 20 rounds.
export COWCHAIN_REL_TORN_ROUNDS=20 COWCHAIN_REL_TORN_STRIDE=1
exec bash "$(dirname "$0")/../crash/torn-run.sh"

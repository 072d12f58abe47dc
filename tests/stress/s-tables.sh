#!/bin/bash
# Hostile tables and messages, long tier: one round by dmsetup, then 170 by
# tests/crash/tableload.c through libdevmapper: 66 table loads and 17
# messages a round, 11,220 loads in all.
export COWCHAIN_REL_TABLE_ITERS=170 COWCHAIN_REL_TABLE_LENS=1
exec bash "$(dirname "$0")/../guest/t-rel-tables.sh"

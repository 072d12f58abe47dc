#!/bin/bash
# Hostile tables and messages, long tier: 10,000+ table loads.
export COWCHAIN_REL_TABLE_ITERS=170 COWCHAIN_REL_TABLE_LENS=1
exec bash "$(dirname "$0")/../guest/t-rel-tables.sh"

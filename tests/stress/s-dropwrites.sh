#!/bin/bash
# Lost volatile cache, long tier: 20 cuts at random moments.
export COWCHAIN_REL_DROPS=20
exec bash "$(dirname "$0")/../guest/t-rel-dropwrites.sh"

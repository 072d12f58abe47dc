#!/usr/bin/python3
"""sparse-copy.py SRC DST [SRC DST...]: copy only each SRC's data extents
(SEEK_DATA/SEEK_HOLE) onto DST (a block device, already zero-filled where
SRC has holes), at the same offsets.  One process for many copies: Python
starts slowly in an emulated guest."""
import os
import sys


def copy(src, dst):
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY)
    end = os.fstat(fi).st_size
    if os.lseek(fo, 0, os.SEEK_END) < end:
        sys.exit(f"sparse-copy: {dst} is smaller than {src} ({end} bytes)")
    pos = 0
    while pos < end:
        try:
            data = os.lseek(fi, pos, os.SEEK_DATA)
        except OSError:
            break
        hole = os.lseek(fi, data, os.SEEK_HOLE)
        off = data
        while off < hole:
            n = min(hole - off, 1 << 20)
            os.pwrite(fo, os.pread(fi, n, off), off)
            off += n
        pos = hole
    os.fsync(fo)
    os.close(fo)
    os.close(fi)


args = sys.argv[1:]
if not args or len(args) % 2:
    sys.exit("usage: sparse-copy.py SRC DST [SRC DST...]")
for i in range(0, len(args), 2):
    copy(args[i], args[i + 1])

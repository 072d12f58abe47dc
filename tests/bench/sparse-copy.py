#!/usr/bin/python3
"""sparse-copy.py SRC DST: copy only SRC's data extents (SEEK_DATA/SEEK_HOLE)
onto DST (a block device, already zero-filled), at the same offsets."""
import os
import sys

src, dst = sys.argv[1], sys.argv[2]
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
        buf = os.pread(fi, n, off)
        os.pwrite(fo, buf, off)
        off += n
    pos = hole
os.fsync(fo)

#!/usr/bin/python3
"""report.py DIR: the markdown results table from DIR/cells.tsv + extra.tsv.

Ratio of a cell = peer IOPS / dm-linear IOPS of the same rep (the runs are
interleaved); the table shows the median ratio and its min-max over reps,
and the absolute medians (emulated guest: only the ratios mean anything)."""
import collections
import statistics
import sys

d = sys.argv[1]
cells = collections.defaultdict(dict)  # (row, peer) -> rep -> iops
order = []
p50_rows = set()  # rows whose figure is 10^9 / the median latency (bench-guest.sh tsv_of)
for line in open(f"{d}/cells.tsv"):
    f = line.rstrip("\n").split("\t")
    if len(f) < 4:
        continue
    row, peer, rep, iops = f[0], f[1], f[2], f[3]
    if len(f) > 5 and f[5] == "p50":
        p50_rows.add(row)
    if row not in order:
        order.append(row)
    try:
        cells[(row, peer)][rep] = float(iops)
    except ValueError:
        cells[(row, peer)][rep] = None
extra = {}
for line in open(f"{d}/extra.tsv"):
    k, _, v = line.rstrip("\n").partition("\t")
    extra[k] = v

PEERS = ["cowchain", "thin", "thin-nozero", "snapshot", "qcow2", "qcow2-xl2", "nbd-raw",
         "linear-b", "flakey", "linear-wc"]
# controls (bench-guest.sh): what their columns say
CONTROLS = {
    "linear-b": "dm-linear on another RAM disk: an A/A control, 1.00 but for the run's noise",
    "flakey": "dm-flakey without faults: the smallest target with an end_io and per-bio data",
    "linear-wc": "dm-linear over a RAM disk whose queue says it has a write cache, so that each "
                 "fsync sends a flush through dm as it does through cowchain",
}


def ratios(row, peer, base="linear"):
    a, b = cells.get((row, peer), {}), cells.get((row, base), {})
    return [a[r] / b[r] for r in a if a[r] and b.get(r)]


def med(row, peer):
    r = ratios(row, peer)
    return statistics.median(r) if r else None


def fmt(row, peer):
    r = ratios(row, peer)
    if not r:
        return ""
    return f"{statistics.median(r):.2f} ({min(r):.2f}–{max(r):.2f})"


def absmed(row, peer):
    v = [x for x in cells.get((row, peer), {}).values() if x]
    return statistics.median(v) if v else None


DESC = {
    "rr4k-qd1-top": "4k randread QD1, data in the top",
    "rr4k-qd32-top": "4k randread QD32, data in the top",
    "rr4k-never": "4k randread QD1, never-written space",
    "seqread-1m": "1M seq read QD4, data in the top",
    "seqwrite-1m": "1M seq write QD4, overwrite in the top",
    "ow4k-qd1": "4k randwrite QD1, overwrite",
    "ow4k-qd32": "4k randwrite QD32, overwrite",
    "fsync-ow4k": "4k write + fsync, overwrite (nothing to commit)",
    "fw4k": "4k first write into an empty cluster, QD1",
    "cu4k": "4k write into a cluster held by the parent (copy-up case), QD1",
    "cu64k": "64k full-cluster write over parent data, QD1",
    "fsync-fw4k": "4k first write + fsync (a commit each)",
    "mix7030-depth4": "4k 70/30 randrw QD16, 4-layer chain over parent data",
    "loop-rr4k-top": "loop: 4k randread QD1, data in the top",
    "loop-rr4k-parent": "loop: 4k randread QD1, data in the parent",
    "loop-ow4k": "loop: 4k randwrite QD1, overwrite",
    "loop-cu4k": "loop: 4k copy-up write QD1",
    "loop-fw4k": "loop: 4k first write QD1",
    "ext4-randrw4k": "ext4: fio 4k 70/30 randrw QD16 on a file",
    "ext4-fsync4k": "ext4: fio 4k randwrite + fsync on a file",
    "ext4-untar": "ext4: untar of /usr/include + sync (untars/s)",
}
for r in order:
    if r.startswith("rr4k-depth"):
        DESC[r] = f"4k randread QD1 served by the root of a depth-{r[10:]} chain"
    if r.startswith("cu4k-depth"):
        DESC[r] = f"4k copy-up write QD1, parent data at the root of a depth-{r[10:]} chain"
    if r.startswith("cu4k-snaporigin"):
        DESC[r] = f"dm-snapshot: 4k write to an origin with {r[15:]} snapshots, QD1"


def target(row):
    """(text, verdict) for cowchain's median ratio m on this row."""
    m = med(row, "cowchain")
    if m is None:
        return "", ""
    checks, text = [], []
    top = ("rr4k-qd1-top", "rr4k-qd32-top", "seqread-1m", "seqwrite-1m", "ow4k-qd1",
           "ow4k-qd32", "loop-rr4k-top", "loop-ow4k", "rr4k-never")
    if row in top:
        text.append("≥0.90"); checks.append(m >= 0.90)
    if row.startswith("rr4k-depth") or row == "loop-rr4k-parent":
        text.append("≥0.85"); checks.append(m >= 0.85)
        m2 = med("rr4k-depth2", "cowchain")
        if row != "rr4k-depth2" and m2 and row.startswith("rr4k-depth"):
            text.append("within 10% of depth 2"); checks.append(m >= 0.9 * m2)
    if row in ("fw4k", "cu4k", "loop-cu4k", "loop-fw4k") or row.startswith("cu4k-depth"):
        text.append("≥0.5"); checks.append(m >= 0.5)
        for p in ("thin", "thin-nozero", "snapshot"):
            mp = med(row, p)
            if mp:
                text.append(f"≥3x {p}"); checks.append(m >= 3 * mp)
        m2 = med("cu4k", "cowchain")
        if row.startswith("cu4k-depth") and m2:
            text.append("≥0.9x depth 2"); checks.append(m >= 0.9 * m2)
    if row == "fsync-ow4k":
        text.append("≥0.9"); checks.append(m >= 0.9)
    if row == "fsync-fw4k":
        text.append("≥0.25"); checks.append(m >= 0.25)
    mt = max([x for x in (med(row, "thin"), med(row, "thin-nozero")) if x] or [0])
    if mt:
        text.append("≥ thin"); checks.append(m >= mt)
    if not checks:
        return "—", ""
    return ", ".join(text), ("pass" if all(checks) else "**MISS**")


present = [p for p in PEERS if any((r, p) in cells for r in order)]
out = []
out.append("| row | " + " | ".join(present) + " | dm-linear abs | cowchain abs | target (cowchain) | |")
out.append("|---|" + "---|" * len(present) + "---|---|---|---|")
for r in order:
    if r.startswith("act-") or r == "ext4-untar":
        continue
    t, v = target(r)
    la, ca = absmed(r, "linear"), absmed(r, "cowchain")
    unit = "MiB/s" if "1m" in r else "IOPS"
    if "1m" in r:
        la, ca = (x and x * 1 for x in (la, ca))
    out.append(f"| {DESC.get(r, r)} | " + " | ".join(fmt(r, p) for p in present) +
               f" | {la:.0f} {unit if '1m' not in r else 'IO/s'} | {ca:.0f} | {t} | {v} |"
               if la and ca else f"| {DESC.get(r, r)} | " + " | ".join(fmt(r, p) for p in present) +
               f" | {la or ''} | {ca or ''} | {t} | {v} |")
if ("ext4-untar", "cowchain") in cells:
    out.append(f"| {DESC['ext4-untar']} | {fmt('ext4-untar', 'cowchain')} |" + " |" * (len(present) - 1) +
               f" {absmed('ext4-untar', 'linear') or 0:.2f}/s | {absmed('ext4-untar', 'cowchain') or 0:.2f}/s | ≥ 0.9 (reads/overwrites) | |")

print(f"### Results: {extra.get('kernel', '?')}, {extra.get('date', '?')}\n")
print("Ratio to dm-linear on the same kind of RAM disk in the same boot: median (min–max) over "
      f"{extra.get('reps', '?')} interleaved reps; higher is better.  Absolute figures are from a "
      "TCG-emulated guest and only indicative.\n")
print("\n".join(out))
print()
if p50_rows:
    print("Rows written in slices (" + ", ".join(sorted(p50_rows)) + "): each cell is 64 to 128 QD1 writes, "
          "so its figure is 10^9 / the median write latency (plus the median fsync latency where the row "
          "fsyncs), not fio's IOPS; the ratio is of those.\n")
ctl = [p for p in CONTROLS if p in present]
if ctl:
    print("Controls (rows in the top only): " + "; ".join(f"**{p}**: {CONTROLS[p]}" for p in ctl) + ".\n")
if ("fsync-ow4k", "linear-wc") in cells and ("fsync-ow4k", "cowchain") in cells:
    a, b = cells[("fsync-ow4k", "cowchain")], cells[("fsync-ow4k", "linear-wc")]
    r = [a[k] / b[k] for k in a if a[k] and b.get(k)]
    if r:
        print(f"4k write + fsync, overwrite, against dm-linear with a write cache (the same flushes): "
              f"cowchain {statistics.median(r):.2f} ({min(r):.2f}–{max(r):.2f}).\n")
ACT = {"act-depth16": "one 4 KiB sub-block written per allocated cluster (partial clusters)",
       "act-full16": "whole clusters written"}
for pfx, what in ACT.items():
    act = [x for x in cells.get((f"{pfx}-ms", "cowchain"), {}).values() if x is not None]
    actl = [x for x in cells.get((f"{pfx}-ms", "linear"), {}).values() if x is not None]
    mem = [x for x in cells.get((f"{pfx}-kib", "cowchain"), {}).values() if x is not None]
    if not act:
        continue
    per = int(extra.get(f"{pfx}_clusters_per_layer", "0") or 0)
    print(f"**Activation, depth 16 ({what})**, {extra.get(f'{pfx}_virtual_mib', '?')} MiB virtual disk, "
          f"{per} clusters (10%) allocated per layer, {16 * per} cluster-layers:")
    print(f"- `dmsetup create` time: median {statistics.median(act):.0f} ms "
          f"(min {min(act):.0f}, max {max(act):.0f}); dm-linear {statistics.median(actl):.0f} ms" if actl else "")
    if mem and per:
        mm = statistics.median(mem)
        print(f"- kernel memory delta (Slab + VmallocUsed + Percpu): median {mm:.0f} KiB = "
              f"{mm * 1024 / (16 * per):.1f} bytes per allocated cluster per layer "
              f"(target ≤ 16: {'pass' if mm * 1024 / (16 * per) <= 16 else '**MISS**'})")
    print()
print("Run facts:\n")
for k in ("command", "date", "wall_s", "kernel", "guest_mem_mib", "guest_cpus", "accel", "reps", "runtime_s",
          "host_cpus", "host_load_start", "host_load_end", "host_other_qemus_start", "git", "ko_srcversion"):
    if k in extra:
        print(f"- {k}: {extra[k]}")
try:
    notes = open(f"{d}/notes.txt").read().strip()
    if notes:
        print("\nNotes from the run:\n")
        for n in notes.splitlines():
            print(f"- {n}")
except OSError:
    pass

# data for the plots (scripts/bench.sh runs gnuplot on them)
with open(f"{d}/depth.dat", "w") as f:
    f.write("# depth cowchain-read qcow2-read cowchain-copyup qcow2-copyup snapshot-origin-write(N snapshots)\n")
    for dep in (1, 2, 4, 8, 16, 32, 64):
        v = [med(f"rr4k-depth{dep}", "cowchain"), med(f"rr4k-depth{dep}", "qcow2"),
             med("cu4k" if dep == 2 else f"cu4k-depth{dep}", "cowchain"),
             med("cu4k" if dep == 2 else f"cu4k-depth{dep}", "qcow2"),
             med(f"cu4k-snaporigin{dep}", "snapshot")]
        if any(x is not None for x in v):
            f.write(f"{dep} " + " ".join("NaN" if x is None else f"{x:.3f}" for x in v) + "\n")
# a column per row the run has (gnuplot refuses a histogram without a point)
FW = [(r, t) for r, t in (("fw4k", "4k first write"), ("cu4k", "4k copy-up"),
                          ("cu64k", "64k full cluster"), ("fsync-fw4k", "4k first write + fsync"))
      if any(med(r, p) is not None for p in present)]
with open(f"{d}/firstwrite.dat", "w") as f:
    f.write("i peer " + " ".join(f'"{t}"' for _, t in FW) + "\n")
    for i, p in enumerate(present):
        v = [med(r, p) for r, _ in FW]
        if any(x is not None for x in v):
            f.write(f"{i} {p} " + " ".join("NaN" if x is None else f"{x:.3f}" for x, _ in zip(v, FW)) + "\n")

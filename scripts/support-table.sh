#!/usr/bin/env bash
# Regenerates the support table in docs/kernels.md from what the tests
# observed: the privileged sensor suite on this host and in every matrix
# kernel, with the loader's choice (BPF-LSM, fentry, or kprobe on 7.x) and with the tracepoint object
# forced, and the cross-load table (every kprobe and fentry object on every kernel at or
# above its own) from the last `make vmtest` logs (VMTEST_OUT, default the
# cache's vmtest/), or a fresh run with --run.
#   scripts/support-table.sh [--run]
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}
out=build/support
mkdir -p "$out"
if [[ "${1:-}" == "--run" ]]; then
	make -s vm-bins >/dev/null
	scripts/vmtest.sh build/vm >/dev/null || true
fi
vmdir=${VMTEST_OUT:-$cache/vmtest}
host_release=$(uname -r)
go test -tags privileged -p 1 -count=1 -v ./pkg/sensor/ >"$out/host.log" 2>&1 || true
python3 - "$out/host.log" "$host_release" "$vmdir" docs/kernels.md <<'PY'
import os, re, sys
host_log, host_release, vmdir, doc = sys.argv[1:5]
kernels = []
for line in open("bpf/matrix"):
    f = line.split()
    if f and not f[0].startswith(("#", "@")) and f[3] != "-":
        kernels.append(f[0])
def results(path):
    res, release = {}, ""
    if not os.path.exists(path):
        return res, release
    for line in open(path, errors="replace"):
        m = re.match(r"\s*--- (PASS|FAIL|SKIP): (\S+)", line)
        if m:
            res[m.group(2)] = m.group(1)
        m = re.match(r"VIGIL-VMTEST-KERNEL (\S+)", line)
        if m:
            release = m.group(1)
    return res, release
cols = [("host", *results(host_log))]
cols[0] = ("host", cols[0][1], host_release)
# The family each auto run loaded: the last column of its summary row (vmtest.sh).
fams = {}
for k in kernels:
    try:
        f = open(os.path.join(vmdir, k, "summary")).read().split()
        if len(f) > 10 and f[3] == "PASS":
            fams[k] = f[-1]
    except OSError:
        pass
for k in kernels:
    cols.append((k, *results(os.path.join(vmdir, k, "results.log"))))
    r, rel = results(os.path.join(vmdir, k, "tracepoint", "results.log"))
    if r:
        cols.append((k + " tp", r, rel))
    r, rel = results(os.path.join(vmdir, k, "lsm", "results.log"))
    if r:
        cols.append((k + " lsm", r, rel))
# What a passing test proves where an object has a documented gap.
gaps = {
    ("host", "TestIOURingWrite"): "not seen (gap, asserted)",
    ("host", "TestRenameFailsOntoWatched"): "failed call not reported (asserted)",
    ("host", "TestUnlinkOtherLink"): "unwatched name not seen (asserted)",
}
names = sorted({n for _, r, _ in cols for n in r
                if n.startswith(("TestContentRecords/", "TestIOURingWrite/", "TestRename", "TestUnlink",
                                 "TestLink", "TestSetattr", "TestCreate", "TestRecursive", "TestActor",
                                 "TestSameInode", "TestRingBuffer", "TestUnwatched", "TestObjectChoice",
                                 "TestWriteRecord", "TestExeAndComm"))
                and not re.match(r"TestContentRecords/[^/]+$", n)})
def cell(col, r, n):
    st = r.get(n)
    if st is None:
        return "–"
    if st != "PASS":
        return st.lower()
    base = n.split("/")[0]
    return gaps.get((col, base), "✓")
def head(c, rel):
    if c == "host":
        return "host %s (tracepoint)" % rel
    if c.endswith(" tp"):
        return "%s (%s, tracepoint forced)" % (c[:-3], rel)
    if c.endswith(" lsm"):
        return "%s (%s, booted with the BPF LSM: the core cases)" % (c[:-4], rel)
    if c in fams:
        return "%s (%s, the loader's choice: %s)" % (c, rel, fams[c])
    return "%s (%s, the loader's choice)" % (c, rel or "not run")
hdr = ["test (operation)"] + [head(c, rel) for c, _, rel in cols]
lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
for n in names:
    lines.append("| `%s` | " % n + " | ".join(cell(c, r, n) for c, r, _ in cols) + " |")
table = "\n".join(lines)
s = open(doc).read()
b, e = "<!-- support-table:begin -->", "<!-- support-table:end -->"
i, j = s.index(b), s.index(e)
s = s[:i + len(b)] + "\n" + table + "\n" + s[j:]
# The cross-load table: object x kernel (vmtest.sh's crossload.tsv).
xl = os.path.join(vmdir, "crossload.tsv")
if os.path.exists(xl):
    cells, rels, reasons = {}, {}, []
    for line in open(xl):
        f = line.rstrip("\n").split("\t")
        if len(f) < 5:
            continue
        o, k, rel, res, why = f[:5]
        cells[(o, k)] = res
        rels[k] = rel
        if res != "PASS":
            reasons.append("- `%s` on %s (%s): %s" % (o, k, rel, why))
    # "6.1", then "fentry-6.1", then "lsm-6.1", line by line
    fam = {"": 0, "fentry": 1, "lsm": 2}
    key = lambda v: tuple(int(x) for x in v.split("-")[-1].split(".")) + (fam.get(v.rpartition("-")[0], 3),)
    objs = sorted({o for o, _ in cells}, key=key)
    ks = sorted({k for _, k in cells}, key=key)
    xlines = ["| object | " + " | ".join("%s (%s)" % (k, rels[k]) for k in ks) + " |",
              "|" + "---|" * (len(ks) + 1)]
    for o in objs:
        row = []
        for k in ks:
            c = cells.get((o, k))
            row.append("–" if c is None else ("✓" if c == "PASS" else "**fail**"))
        xlines.append("| `%s` | " % o + " | ".join(row) + " |")
    xtable = "\n".join(xlines + ([""] + reasons if reasons else []))
    b, e = "<!-- crossload-table:begin -->", "<!-- crossload-table:end -->"
    if b in s:
        i, j = s.index(b), s.index(e)
        s = s[:i + len(b)] + "\n" + xtable + "\n" + s[j:]
    print("support-table: cross-load table, %d objects x %d kernels" % (len(objs), len(ks)))
open(doc, "w").write(s)
print("support-table: %d rows, columns: %s" % (len(names), ", ".join(c for c, _, _ in cols)))
PY

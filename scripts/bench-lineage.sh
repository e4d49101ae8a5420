#!/usr/bin/env bash
# The cost of issue 17's package-manager lineage: every fork, exec and exit
# runs the tp_btf programs sched_process_fork/exec/exit (bpf/common.bpf.h).
# Measures a loop of fork+exec+exit of /bin/true with no agent and with
# vigil running, in alternating pairs in one run, and the lineage programs'
# own average run time from the kernel's BPF statistics. Writes a markdown
# section on stdout (bench.sh appends it to docs/benchmarks.md). Root.
#
#   scripts/bench-lineage.sh [VIGIL_BINARY]
#
# Environment: LINEAGE_N (execs per sample, 3000), LINEAGE_PAIRS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
vigil=${1:-bin/vigil}
n=${LINEAGE_N:-3000}
pairs=${LINEAGE_PAIRS:-5}
((EUID == 0)) || { echo "bench-lineage: needs root" >&2; exit 2; }
[[ -x "$vigil" ]] || { echo "bench-lineage: $vigil missing (make build)" >&2; exit 2; }
export PATH=$PATH:/usr/sbin:/sbin

work=$(mktemp -d)
agent=
cleanup() {
	[[ -n "$agent" ]] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
	[[ -n "${stats_was:-}" ]] && sysctl -qw kernel.bpf_stats_enabled="$stats_was"
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/state" "$work/etc"
echo "root:x:0:0:root:/root:/bin/sh" >"$work/etc/passwd"
cat >"$work/vigil.toml" <<TOML
[agent]
state_dir = "$work/state"
socket = ""
tamper_check = "0s"
heartbeat = "0s"
[output]
stdout = false
file.path = "$work/records.json"
[[watch]]
path = "$work/etc/passwd"
TOML

# One sample: nanoseconds per fork+exec+exit of /bin/true.
sample() {
	local t0 t1 i
	t0=$(date +%s%N)
	for ((i = 0; i < n; i++)); do /bin/true; done
	t1=$(date +%s%N)
	echo $(((t1 - t0) / n))
}

start_agent() {
	"$vigil" run --config "$work/vigil.toml" 2>"$work/agent.log" &
	agent=$!
	for _ in $(seq 300); do
		grep -q agent-ready "$work/records.json" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-lineage: agent not ready: $(tail -3 "$work/agent.log")" >&2
	exit 1
}
stop_agent() { kill "$agent"; wait "$agent" 2>/dev/null || true; agent=; }

base=() with=()
object=
for ((p = 0; p < pairs; p++)); do
	base+=("$(sample)")
	start_agent
	[[ -n "$object" ]] || object=$(grep -o '"object":"[^"]*"' "$work/records.json" | head -1 | cut -d'"' -f4)
	with+=("$(sample)")
	stop_agent
	rm -f "$work/records.json"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mb=$(median "${base[@]}")
mw=$(median "${with[@]}")

# The lineage programs' own cost: the kernel's run-time statistics.
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
# Programs already loaded (another vigil on the host) are not this agent's.
before=$(bpftool -j prog show 2>/dev/null | python3 -c 'import json, sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin)))' || true)
start_agent
sample >/dev/null
progs=""
if command -v bpftool >/dev/null; then
	# Only this agent's programs: the ones loaded since it started.
	progs=$(bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
before = set(sys.argv[1].split())
for p in json.load(sys.stdin):
    name = p.get("name", "")
    if name.startswith("vg_pkg_") and p.get("run_cnt") and str(p["id"]) not in before:
        print("| `%s` | %d | %d |" % (name, p["run_cnt"], p["run_time_ns"] // p["run_cnt"]))
' "$before")
fi
stop_agent

cat <<MD

## Package-manager lineage (issue 17)

Every fork, exec and exit on the host runs one of vigil's three lineage programs (tp_btf
\`sched_process_fork\`, \`sched_process_exec\`, \`sched_process_exit\`: a hash lookup, and a map
update only inside a package manager's tree). \`scripts/bench-lineage.sh\`: $n fork+exec+exit of
\`/bin/true\` from bash per sample, $pairs alternating pairs without and with vigil (object
\`${object:-?}\`), medians:

| | ns per fork+exec+exit |
|---|---|
| no agent | $mb |
| vigil running | $mw |

The difference is everything the agent's programs cost on that path (the syscall-exit hook of the
tracepoint object included), not the lineage alone. The lineage programs' own average run time,
from the kernel's BPF statistics (\`kernel.bpf_stats_enabled\`) over one sample:

| program | runs | ns per run |
|---|---|---|
${progs:-| (bpftool not available) | | |}
MD

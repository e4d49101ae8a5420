#!/usr/bin/env bash
# The cost of issue 17's package-manager lineage: every fork, exec and exit
# runs the tp_btf programs sched_process_fork/exec/exit (bpf/common.bpf.h).
# Measures a loop of fork+exec+exit of /bin/true with no agent and with
# vigil running, in interleaved pairs (the order alternating: A B, B A, ...;
# the agent started afresh for each pair), and reports the median and
# spread of the pairs' ratios; then the lineage programs' own average run
# time from the kernel's BPF statistics, the figure a loaded machine does not
# blur (the loop's times are the scheduler's as much as the kernel's). Writes
# a markdown section on stdout (bench.sh appends it to docs/benchmarks.md),
# with the load average while it measured. Root.
#
#   scripts/bench-lineage.sh [VIGIL_BINARY]
#
# Environment: LINEAGE_N (execs per sample, 500), LINEAGE_PAIRS (15),
# LINEAGE_STATS_N (execs measured with BPF statistics on, 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
vigil=${1:-bin/vigil}
n=${LINEAGE_N:-500}
pairs=${LINEAGE_PAIRS:-15}
stats_n=${LINEAGE_STATS_N:-3000}
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
	rm -f "$work/records.json" # this start's agent-ready, not the last one's
	"$vigil" run --config "$work/vigil.toml" 2>"$work/agent.log" &
	agent=$!
	for _ in $(seq 300); do
		grep -q agent-ready "$work/records.json" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-lineage: agent not ready after 30 s (exit status: $(kill -0 "$agent" 2>/dev/null && echo running || { wait "$agent"; echo $?; })): $(tail -5 "$work/agent.log")" >&2
	exit 1
}
stop_agent() { kill "$agent"; wait "$agent" 2>/dev/null || true; agent=; }

base=() with=() ratio=()
object=
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((p = 0; p < pairs; p++)); do
	start_agent
	[[ -n "$object" ]] || object=$(grep -o '"object":"[^"]*"' "$work/records.json" | head -1 | cut -d'"' -f4)
	sample >/dev/null # warm: the agent's start-up done, the binaries cached
	if ((p % 2 == 0)); then
		w=$(sample)
		stop_agent
		b=$(sample)
	else
		stop_agent
		b=$(sample)
		start_agent
		sample >/dev/null
		w=$(sample)
		stop_agent
	fi
	base+=("$b") with+=("$w")
	ratio+=("$(awk -v w="$w" -v b="$b" 'BEGIN { printf "%.3f", w / b }')")
	echo "bench-lineage: pair $((p + 1))/$pairs: no agent $b ns, vigil $w ns (${ratio[-1]}x)" >&2
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# quartiles and extremes: "min q1 median q3 max"
spread() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[1], a[int((NR + 3) / 4)], a[int((NR + 1) / 2)], a[int((3 * NR + 3) / 4)], a[NR] }'; }
mb=$(median "${base[@]}")
mw=$(median "${with[@]}")
read -r rmin rq1 rmed rq3 rmax <<<"$(spread "${ratio[@]}")"
read -r bmin _ _ _ bmax <<<"$(spread "${base[@]}")"

# The lineage programs' own cost: the kernel's run-time statistics.
stats_was=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
start_agent
sample >/dev/null
progstat() { # "name run_cnt run_time_ns" of this agent's lineage programs (its own fds)
	local id
	for id in $(grep -h '^prog_id:' /proc/"$agent"/fdinfo/* 2>/dev/null | awk '{ print $2 }' | sort -u); do
		bpftool -j prog show id "$id" 2>/dev/null
		echo
	done | python3 -c '
import json, sys
for l in sys.stdin:
    if not l.strip():
        continue
    p = json.loads(l)
    if p.get("name", "").startswith("vg_pkg_"):
        print(p["name"], p.get("run_cnt", 0), p.get("run_time_ns", 0))
'
}
progs="" total=
if command -v bpftool >/dev/null; then
	# Only this agent's programs: the ones loaded since it started; the
	# counts over stats_n execs alone (a difference of two readings).
	s0=$(progstat)
	n_save=$n n=$stats_n
	sample >/dev/null
	n=$n_save
	s1=$(progstat)
	# Each program runs once per fork+exec+exit of the loop (and for every
	# other process of the host meanwhile: the runs column counts all).
	table=$(join <(sort <<<"$s0") <(sort <<<"$s1") | awk '
		{ c = $4 - $2; t = $5 - $3; if (c > 0) { printf "| `%s` | %d | %d |\n", $1, c, t / c; sum += t / c } }
		END { printf "TOTAL %d\n", sum }')
	progs=$(grep -v '^TOTAL' <<<"$table" || true)
	total=$(sed -n 's/^TOTAL //p' <<<"$table")
fi
stop_agent

share=
[[ -n "$total" && "$mb" -gt 0 ]] && share=$(awk -v t="$total" -v b="$mb" 'BEGIN { printf "%.2f", 100 * t / b }')
cat <<MD

## Package-manager lineage (issue 17)

Every fork, exec and exit on the host runs one of vigil's three lineage programs (tp_btf
\`sched_process_fork\`, \`sched_process_exec\`, \`sched_process_exit\`: a hash lookup, and a map
update only inside a package manager's tree). \`scripts/bench-lineage.sh\` (object \`${object:-?}\`):

**The programs' own cost**, from the kernel's BPF statistics (\`kernel.bpf_stats_enabled\`, which adds
its own timing to each run) over $stats_n fork+exec+exit of \`/bin/true\` from bash with vigil running:

| program | runs (every process of the host) | ns per run |
|---|---|---|
${progs:-| (bpftool not available) | | |}

Each runs once per fork+exec+exit: in all **${total:-?} ns per fork+exec+exit**, ${share:-?}% of the ${mb} ns such a loop iteration took with no agent
(median below). This figure is the kernel's own count of the programs' time, so the machine's load does
not blur it.

**The loop, with and without vigil**: $n fork+exec+exit per sample, $pairs interleaved pairs (the order
alternating, no agent first then vigil first; vigil started afresh for each pair and warmed by one
sample), the ratio of each pair's vigil time to its no-agent time:

| | ns per fork+exec+exit, median | ratio vigil / no agent |
|---|---|---|
| no agent | $mb (min $bmin, max $bmax) | |
| vigil running | $mw | median ${rmed}x, quartiles ${rq1}x–${rq3}x, min–max ${rmin}x–${rmax}x |

The ratio is everything the agent costs on that path (the tracepoint object's syscall-exit hook and
the cgroup program included), not the lineage alone. Load average (1, 5, 15 min) when the pairs began:
$load0; when they ended: $load1. On a machine that busy (2 CPUs here) the loop's times are set by
the scheduler as much as by the kernel: read the ratio's spread before its median, and the programs'
own time above as the lineage's cost.
MD

#!/usr/bin/env bash
# Measure vigil against no agent, auditd and inotifywait on this host, and
# the kprobe objects inside the matrix kernels (emulated, ratios only), then
# regenerate docs/benchmarks.md (the fleet run and the package-manager
# lineage's cost, scripts/bench-lineage.sh, are appended to it). Run by `make bench` (root).
#
#   scripts/bench.sh
#
# Environment:
#   BENCH_QUICK=1      small workloads (a development run; the document says so by its numbers)
#   BENCH_ONLY         host sections, comma-separated (overhead,burst,latency,scan,footprint)
#   BENCH_KERNELS      matrix kernels for the emulated ratios (default: every kernel of
#                      scripts/kernels.sh list; "none" skips them)
#   BENCH_OUT          where results and logs go (default build/bench)
#   BENCH_DOC          the document written (default docs/benchmarks.md)
#   BENCH_FLEET=0      skip the fleet run (cmd/vigil's TestFleet: 8 agents and 1,000 simulated
#                      hosts through an rsyslog relay for VIGIL_FLEET_SECONDS, default 60)
#
# The peers are installed with apt-get if missing (auditd, inotify-tools, aide). This
# machine's PID 1 need not be systemd: vigil-bench starts auditd itself with a private
# configuration and log, loads its rules, and on exit removes the rules and puts back the
# kernel's audit "enabled" flag and backlog limit. An audit daemon that already runs is
# left alone and the run stops with an error instead.
#
# Every tool must report a warm-up change of its own (a canary file it also watches) before it
# is measured, or the run stops saying which tool, what was expected and where it looked; the
# measurements run in a process created after auditing was first enabled (vigil-bench host
# enables it once), without which the kernel never audits that process (docs/benchmarks.md).
set -Eeuo pipefail
trap '_erc=$?; ((BASH_SUBSHELL || _erc == 141)) || echo "bench.sh: line $LINENO: \"$BASH_COMMAND\" failed ($_erc)" >&2' ERR

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
cd "$ROOT"
OUT=${BENCH_OUT:-build/bench}
DOC=${BENCH_DOC:-docs/benchmarks.md}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
CACHE_ROOT=${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}
export PATH=$PATH:/usr/sbin:/sbin

die() {
	echo "bench.sh: $*" >&2
	exit 2
}
note() { echo "bench: $*" >&2; }

((EUID == 0)) || die "needs root (BPF programs, auditd)"

start=$(date +%s)
# The peers, and what the matrix guests need.
DEPS_EXTRA="auditd inotify-tools aide ${DEPS_EXTRA:-}" "$HERE/deps.sh" >&2

rm -rf "$OUT"
mkdir -p "$OUT/vm"
make -s build >&2
CGO_ENABLED=0 "$GO" build -trimpath -o "$OUT/vigil-bench" ./cmd/vigil-bench

# The scan tree (about 600 MB for 100,000 files) is kept in the cache between runs.
flags=(-vigil bin/vigil -out "$OUT/host.json" -tree "$CACHE_ROOT/bench-tree")
[[ "${BENCH_QUICK:-0}" == 1 ]] && flags+=(-quick)
[[ -n "${BENCH_ONLY:-}" ]] && flags+=(-only "$BENCH_ONLY")
note "host: vigil-bench host ${flags[*]}"
"$OUT/vigil-bench" host "${flags[@]}" 2> >(tee "$OUT/host.log" >&2)

guests=()
kernels=${BENCH_KERNELS:-$("$HERE/kernels.sh" list | awk '{ print $1 }' | tr '\n' ' ')}
if [[ "$kernels" != none ]]; then
	cp bin/vigil "$OUT/vm/vigil"
	CGO_ENABLED=0 "$GO" test -c -tags benchguest -o "$OUT/vm/bench.test" ./cmd/vigil-bench
	# The kprobe object the loader picks. Not also the tracepoint object (-bench.tracepoint): attaching
	# it after the kprobe object crashed the 5.10 and 6.12 guests under TCG ("Oops: int3" in
	# syscall_exit_to_user_mode_prepare, while the kernel patched the syscall exit path).
	# And the fentry object (-bench.fentry) and, where the kernel runs the BPF LSM, the BPF-LSM
	# object (-bench.lsm), in the same boot: the family comparison.
	args="-test.run ^TestGuestOverhead\$ -bench.pairs=7 -bench.fentry -bench.lsm"
	[[ "${BENCH_QUICK:-0}" == 1 ]] && args+=" -bench.pairs=2 -bench.ops=5000"
	# no_timer_check: an emulated guest starved of CPU by a busy host can fail the kernel's
	# boot-time timer check and panic ("IO-APIC + timer doesn't work"); it measures nothing.
	vmrun() { # kernel...
		VMTEST_OUT="$OUT/vmtest" VMTEST_ARGS="$args" VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-600} VMTEST_RUNS=kprobe VMTEST_FORWARD=0 \
			VMTEST_APPEND="no_timer_check ${VMTEST_APPEND:-}" "$HERE/vmtest.sh" "$OUT/vm" "$@" >&2 ||
			note "vmtest reported a failure: see $OUT/vmtest/<kernel>/results.log"
	}
	result() { tr -d '\r' <"$OUT/vmtest/$1/results.log" 2>/dev/null | sed -n 's/^VIGIL-BENCH-RESULT //p' | tail -n 1; }
	# shellcheck disable=SC2086 # one word per kernel
	vmrun $kernels
	for k in $kernels; do
		line=$(result "$k")
		if [[ -z "$line" ]]; then
			note "$k: no result; trying once more"
			vmrun "$k"
			line=$(result "$k")
		fi
		if [[ -z "$line" ]]; then
			note "$k: no result (see $OUT/vmtest/$k/results.log)"
			continue
		fi
		printf '%s\n' "$line" >"$OUT/guest-$k.json"
		guests+=(-guest "$k=$OUT/guest-$k.json")
	done
fi

notes=()
[[ -f "$HERE/bench-notes.md" ]] && notes=(-notes "$HERE/bench-notes.md")
"$OUT/vigil-bench" report -host "$OUT/host.json" "${guests[@]}" "${notes[@]}" -o "$DOC"
if [[ "${BENCH_FLEET:-1}" != 0 ]]; then
	note "fleet: TestFleet for ${VIGIL_FLEET_SECONDS:-60} s"
	VIGIL_FLEET_SECONDS=${VIGIL_FLEET_SECONDS:-60} VIGIL_FLEET_REPORT="$(realpath "$OUT")/fleet.json" \
		"$GO" test -tags privileged -count=1 -timeout 15m -run '^TestFleet$' -v ./cmd/vigil >"$OUT/fleet.log" 2>&1 ||
		die "TestFleet failed: see $OUT/fleet.log"
	python3 "$HERE/fleet-doc.py" "$OUT/fleet.json" >>"$DOC"
fi
note "lineage: scripts/bench-lineage.sh"
"$HERE/bench-lineage.sh" bin/vigil >>"$DOC" || die "bench-lineage.sh failed"
note "wrote $DOC in $(($(date +%s) - start)) s (results and logs in $OUT)"

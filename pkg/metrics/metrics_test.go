package metrics

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/spool"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// snapshot is what a running agent's Stats look like.
func snapshot() agent.Stats {
	return agent.Stats{
		PID: 42, Started: time.Unix(1700000000, 0),
		Sensor: sensor.Info{Kernel: "6.1.0-28-amd64", Object: "6.1", HookTyp: "kprobe", BTF: "6.1"},
		Watch: agent.WatchStats{Rules: 3, Files: 7, FileTargets: 5, Trees: 1, Anchors: 2, MapEntries: 11,
			MapCapacity: 65536},
		Records: []agent.RecordCount{{Action: "agent-ready", Kind: "state", N: 1},
			{Action: "modified", Kind: "event", N: 5}, {Action: "events-lost", Kind: "alert", N: 1}},
		Live: 9, Recovered: 2, LostKernel: 3, LostQueue: 4,
		Kernel: sensor.Counters{
			Hits:    map[string]uint64{"vfs_write": 1000, "vfs_rename": 10},
			Matched: map[string]uint64{"vfs_write": 20},
			Emitted: map[string]uint64{"vfs_write": 17, "vfs_rename": 0},
			Lost:    map[string]uint64{"vfs_write": 3},
			Gaps:    map[string]uint64{"lineage:vg_pkg_exit": 2},
		},
		RingBuffer: agent.RingStats{Used: 4096, Size: 4 << 20},
		Latency: agent.Histogram{Bounds: []float64{0.001, 0.01, 0.1}, Counts: []uint64{2, 3, 0, 1},
			Sum: 1.5, Count: 6},
		ParseErrors: map[string]uint64{"passwd": 1},
		Reloads:     map[string]uint64{"success": 2, "failure": 1},
		LastReload:  &agent.ReloadResult{OK: false},
		SelfTestOK:  true,
		Packages:    agent.PackageStats{Waiting: 3, Unverified: 8},
		Tamper:      agent.TamperStats{Checks: 30, Errors: 1, Findings: 2, Repaired: 1, Heartbeats: 5},
		Spools: []output.SpoolStats{{Output: "relp:relp://relay:2514",
			Stats:     spool.Stats{Depth: 12, Bytes: 9000, Dropped: 7, DroppedBy: map[string]uint64{"size": 5, "age": 2}},
			OldestAge: 90 * time.Second, Delivered: 100, Retried: 3}},
	}
}

func scrape(t *testing.T, src Source) string {
	t.Helper()
	srv, err := Listen("127.0.0.1:0", src, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v: %s", resp.StatusCode, err, body)
	}
	return string(body)
}

// TestMetricsFromStats: every metric the issue asks for, with the
// snapshot's values.
func TestMetricsFromStats(t *testing.T) {
	out := scrape(t, func() (agent.Stats, bool) { return snapshot(), true })
	for _, want := range []string{
		`vigil_agent_running 1`,
		`vigil_info{built_against="6.1",hook_type="kprobe",kernel="6.1.0-28-amd64",object="6.1",version="v1.2.3"} 1`,
		`vigil_records_total{action="modified",kind="event"} 5`,
		`vigil_records_total{action="events-lost",kind="alert"} 1`,
		`vigil_change_records_total{origin="recovered"} 2`,
		`vigil_lost_records_total{where="kernel"} 3`,
		`vigil_lost_records_total{where="queue"} 4`,
		`vigil_kernel_skipped_runs_total{gap="lineage",program="vg_pkg_exit"} 2`,
		`vigil_kernel_hook_hits_total{hook="vfs_write"} 1000`,
		`vigil_kernel_hook_emitted_total{hook="vfs_write"} 17`,
		`vigil_kernel_hook_emitted_total{hook="vfs_rename"} 0`,
		`vigil_kernel_hook_lost_total{hook="vfs_write"} 3`,
		`vigil_watch_map_entries 11`,
		`vigil_watch_map_capacity 65536`,
		`vigil_watch_targets{type="anchor"} 2`,
		`vigil_ring_buffer_used_bytes 4096`,
		`vigil_ring_buffer_size_bytes 4.194304e+06`,
		`vigil_pipeline_latency_seconds_bucket{le="0.001"} 2`,
		`vigil_pipeline_latency_seconds_bucket{le="0.01"} 5`,
		`vigil_pipeline_latency_seconds_bucket{le="0.1"} 5`,
		`vigil_pipeline_latency_seconds_bucket{le="+Inf"} 6`,
		`vigil_pipeline_latency_seconds_sum 1.5`,
		`vigil_consumer_parse_errors_total{kind="passwd"} 1`,
		`vigil_config_reloads_total{result="failure"} 1`,
		`vigil_config_last_reload_success 0`,
		`vigil_self_test_success 1`,
		`vigil_package_verdict_waiting_records 3`,
		`vigil_package_unverified_records_total 8`,
		`vigil_tamper_checks_total{result="ok"} 29`,
		`vigil_tamper_checks_total{result="error"} 1`,
		`vigil_tamper_findings_total 2`,
		`vigil_tamper_repaired_entries_total 1`,
		`vigil_heartbeats_total 5`,
		`vigil_spool_depth_records{output="relp:relp://relay:2514"} 12`,
		`vigil_spool_bytes{output="relp:relp://relay:2514"} 9000`,
		`vigil_spool_oldest_age_seconds{output="relp:relp://relay:2514"} 90`,
		`vigil_spool_delivered_total{output="relp:relp://relay:2514"} 100`,
		`vigil_spool_retried_total{output="relp:relp://relay:2514"} 3`,
		`vigil_spool_dropped_total{output="relp:relp://relay:2514",reason="size"} 5`,
		`vigil_spool_dropped_total{output="relp:relp://relay:2514",reason="age"} 2`,
		`vigil_spool_dropped_total{output="relp:relp://relay:2514",reason="error"} 0`,
		`vigil_spool_connected{output="relp:relp://relay:2514"} 0`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestMetricsNotRunning: before the agent runs, only that is said.
func TestMetricsNotRunning(t *testing.T) {
	out := scrape(t, func() (agent.Stats, bool) { return agent.Stats{}, false })
	if !strings.Contains(out, "vigil_agent_running 0\n") || strings.Contains(out, "vigil_records_total") {
		t.Errorf("not running:\n%s", out)
	}
}

// TestPromtoolChecksMetrics: Prometheus's own linter accepts the output.
func TestPromtoolChecksMetrics(t *testing.T) {
	testutil.HostOnly(t, "needs promtool (package prometheus)")
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not installed (package prometheus): run scripts/deps.sh")
	}
	for name, src := range map[string]Source{
		"running":     func() (agent.Stats, bool) { return snapshot(), true },
		"not running": func() (agent.Stats, bool) { return agent.Stats{}, false },
	} {
		out := scrape(t, src)
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(out)
		var res bytes.Buffer
		cmd.Stdout, cmd.Stderr = &res, &res
		if err := cmd.Run(); err != nil {
			t.Errorf("%s: promtool check metrics: %v\n%s", name, err, res.String())
		}
	}
}

// Package metrics serves a running agent's Stats as Prometheus metrics, on
// its own registry (never the global one), at /metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-fim/vigil/pkg/agent"
)

// Source gives a snapshot of the agent; ok is false while none runs.
type Source func() (s agent.Stats, ok bool)

const ns = "vigil"

var (
	descRunning = prometheus.NewDesc(ns+"_agent_running",
		"1 when the agent runs (probes attached, watch set seeded), 0 while it starts.", nil, nil)
	descInfo = prometheus.NewDesc(ns+"_info",
		"The vigil version, the BPF object chosen and the kernel it runs on (always 1).",
		[]string{"version", "object", "hook_type", "kernel", "built_against"}, nil)
	descStart = prometheus.NewDesc(ns+"_agent_start_time_seconds",
		"When the agent started, in seconds since the epoch.", nil, nil)
	descRecords = prometheus.NewDesc(ns+"_records_total",
		"Records written, by event.action and event.kind.", []string{"action", "kind"}, nil)
	descChanges = prometheus.NewDesc(ns+"_change_records_total",
		"Change records written, by origin: live (seen in the kernel) or recovered (re-read after a loss).",
		[]string{"origin"}, nil)
	descLost = prometheus.NewDesc(ns+"_lost_records_total",
		"Kernel records lost: in the kernel (ring buffer full) or in vigil's queue.", []string{"where"}, nil)
	descHits = prometheus.NewDesc(ns+"_kernel_hook_hits_total",
		"Times each kernel hook ran.", []string{"hook"}, nil)
	descMatched = prometheus.NewDesc(ns+"_kernel_hook_matched_total",
		"Hook runs that concerned a watched file.", []string{"hook"}, nil)
	descEmitted = prometheus.NewDesc(ns+"_kernel_hook_emitted_total",
		"Records each hook put in the ring buffer.", []string{"hook"}, nil)
	descHookLost = prometheus.NewDesc(ns+"_kernel_hook_lost_total",
		"Records each hook could not put in the ring buffer.", []string{"hook"}, nil)
	descGaps = prometheus.NewDesc(ns+"_kernel_skipped_runs_total",
		"Runs the kernel skipped of the programs that emit no file record, by what they lose "+
			"(lineage: a package manager's mark; cgroup: a container's name) and program.", []string{"gap", "program"}, nil)
	descEntries = prometheus.NewDesc(ns+"_watch_map_entries",
		"Inode entries in the kernel's watch map.", nil, nil)
	descCapacity = prometheus.NewDesc(ns+"_watch_map_capacity",
		"The kernel watch map's capacity (sensor.max_watches).", nil, nil)
	descFiles = prometheus.NewDesc(ns+"_watch_files",
		"Files in the watch set.", nil, nil)
	descTargets = prometheus.NewDesc(ns+"_watch_targets",
		"Watch targets by type: file, tree, anchor.", []string{"type"}, nil)
	descRules = prometheus.NewDesc(ns+"_watch_rules",
		"[[watch]] rules in force, with those added by following includes.", nil, nil)
	descRingUsed = prometheus.NewDesc(ns+"_ring_buffer_used_bytes",
		"Bytes written to the ring buffer and not yet read.", nil, nil)
	descRingSize = prometheus.NewDesc(ns+"_ring_buffer_size_bytes",
		"The ring buffer's size (sensor.ring_buffer_kib).", nil, nil)
	descLatency = prometheus.NewDesc(ns+"_pipeline_latency_seconds",
		"From the kernel's timestamp of a record's last event to the record written "+
			"(coalesced modified records include the coalescing window).", nil, nil)
	descParse = prometheus.NewDesc(ns+"_consumer_parse_errors_total",
		"Files a consumer could not parse, by kind.", []string{"kind"}, nil)
	descDecode = prometheus.NewDesc(ns+"_kernel_record_decode_errors_total",
		"Kernel records that did not decode.", nil, nil)
	descNotWatched = prometheus.NewDesc(ns+"_not_watched_paths_total",
		"Paths that could not be watched, by reason: watch_map_full (sensor.max_watches) or other.", []string{"reason"}, nil)
	descPkgWaiting = prometheus.NewDesc(ns+"_package_verdict_waiting_records",
		"Records waiting for their package verdict, with the records of their files behind them.", nil, nil)
	descPkgUnverified = prometheus.NewDesc(ns+"_package_unverified_records_total",
		"Records written without waiting for their package verdict (the queue was full, or vigil stopped).", nil, nil)
	descOversize = prometheus.NewDesc(ns+"_oversize_files_total",
		"Reads of watched files over the parse limit: hashed, not parsed.", nil, nil)
	descReloads = prometheus.NewDesc(ns+"_config_reloads_total",
		"Configuration reloads, by result.", []string{"result"}, nil)
	descLastReload = prometheus.NewDesc(ns+"_config_last_reload_success",
		"1 if the last reload applied, 0 if it failed; absent before the first.", nil, nil)
	descSelfTest = prometheus.NewDesc(ns+"_self_test_success",
		"1 if the startup self-test saw every operation, else 0.", nil, nil)
	descTamperChecks = prometheus.NewDesc(ns+"_tamper_checks_total",
		"Periodic tamper checks run, by result (ok, error: the check could not run).", []string{"result"}, nil)
	descTamperFindings = prometheus.NewDesc(ns+"_tamper_findings_total",
		"Tamper findings reported in tamper-detected records.", nil, nil)
	descTamperRepaired = prometheus.NewDesc(ns+"_tamper_repaired_entries_total",
		"Watch entries found deleted from the kernel map and put back.", nil, nil)
	descHeartbeats = prometheus.NewDesc(ns+"_heartbeats_total",
		"Heartbeat records written.", nil, nil)
	descSpoolDepth = prometheus.NewDesc(ns+"_spool_depth_records",
		"Records waiting in a network output's spool.", []string{"output"}, nil)
	descSpoolBytes = prometheus.NewDesc(ns+"_spool_bytes",
		"Bytes of the records waiting in a network output's spool.", []string{"output"}, nil)
	descSpoolOldest = prometheus.NewDesc(ns+"_spool_oldest_age_seconds",
		"How long the oldest record in a network output's spool has waited (0 when empty).", []string{"output"}, nil)
	descSpoolDelivered = prometheus.NewDesc(ns+"_spool_delivered_total",
		"Records a network output delivered (RELP: acknowledged; TCP/TLS syslog: written to the socket).", []string{"output"}, nil)
	descSpoolRetried = prometheus.NewDesc(ns+"_spool_retried_total",
		"Records sent on a connection that failed before they were delivered: sent again.", []string{"output"}, nil)
	descSpoolDropped = prometheus.NewDesc(ns+"_spool_dropped_total",
		"Records a network output's spool dropped, by reason: size (spool full), age (output.spool.max_age), error (not written).",
		[]string{"output", "reason"}, nil)
	descSpoolConnected = prometheus.NewDesc(ns+"_spool_connected",
		"1 if the output's last delivery attempt succeeded.", []string{"output"}, nil)
)

// collector turns a Stats snapshot into metrics at each scrape.
type collector struct {
	src     Source
	version string
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descInfo, descStart, descRecords, descChanges, descLost,
		descHits, descMatched, descEmitted, descHookLost, descGaps, descEntries, descCapacity, descFiles, descTargets,
		descRules, descRingUsed, descRingSize, descLatency, descParse, descDecode, descNotWatched, descOversize, descPkgWaiting, descPkgUnverified, descReloads, descLastReload,
		descSelfTest, descTamperChecks, descTamperFindings, descTamperRepaired, descHeartbeats,
		descSpoolDepth, descSpoolBytes, descSpoolOldest, descSpoolDelivered, descSpoolRetried, descSpoolDropped,
		descSpoolConnected} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s, ok := c.src()
	if !ok {
		ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, 0)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descRunning, 1)
	gauge(descInfo, 1, c.version, s.Sensor.Object, s.Sensor.HookTyp, s.Sensor.Kernel, s.Sensor.BTF)
	gauge(descStart, float64(s.Started.UnixNano())/1e9)
	for _, r := range s.Records {
		counter(descRecords, r.N, r.Action, r.Kind)
	}
	counter(descChanges, s.Live, "live")
	counter(descChanges, s.Recovered, "recovered")
	counter(descLost, s.LostKernel, "kernel")
	counter(descLost, s.LostQueue, "queue")
	// Every hook that ran has a hits count; the other series follow it so
	// that hits and emitted can be compared hook by hook.
	for _, h := range sortedKeys(s.Kernel.Hits) {
		counter(descHits, s.Kernel.Hits[h], h)
		counter(descMatched, s.Kernel.Matched[h], h)
		counter(descEmitted, s.Kernel.Emitted[h], h)
		counter(descHookLost, s.Kernel.Lost[h], h)
	}
	for _, k := range sortedKeys(s.Kernel.Gaps) {
		gap, prog, _ := strings.Cut(k, ":")
		counter(descGaps, s.Kernel.Gaps[k], gap, prog)
	}
	if s.Watch.MapEntries >= 0 {
		gauge(descEntries, float64(s.Watch.MapEntries))
	}
	gauge(descCapacity, float64(s.Watch.MapCapacity))
	gauge(descFiles, float64(s.Watch.Files))
	gauge(descTargets, float64(s.Watch.FileTargets), "file")
	gauge(descTargets, float64(s.Watch.Trees), "tree")
	gauge(descTargets, float64(s.Watch.Anchors), "anchor")
	gauge(descRules, float64(s.Watch.Rules))
	gauge(descRingUsed, float64(s.RingBuffer.Used))
	gauge(descRingSize, float64(s.RingBuffer.Size))
	buckets := map[float64]uint64{}
	var cum uint64
	for i, b := range s.Latency.Bounds {
		cum += s.Latency.Counts[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descLatency, s.Latency.Count, s.Latency.Sum, buckets)
	for _, k := range sortedKeys(s.ParseErrors) {
		counter(descParse, s.ParseErrors[k], k)
	}
	counter(descDecode, s.DecodeErrors)
	counter(descNotWatched, s.Limits.WatchMapFull, "watch_map_full")
	counter(descNotWatched, s.Limits.NotWatched-s.Limits.WatchMapFull, "other")
	counter(descOversize, s.Limits.Oversize)
	gauge(descPkgWaiting, float64(s.Packages.Waiting))
	counter(descPkgUnverified, s.Packages.Unverified)
	for _, k := range sortedKeys(s.Reloads) {
		counter(descReloads, s.Reloads[k], k)
	}
	if s.LastReload != nil {
		gauge(descLastReload, b2f(s.LastReload.OK))
	}
	gauge(descSelfTest, b2f(s.SelfTestOK))
	counter(descTamperChecks, s.Tamper.Checks-s.Tamper.Errors, "ok")
	counter(descTamperChecks, s.Tamper.Errors, "error")
	counter(descTamperFindings, s.Tamper.Findings)
	counter(descTamperRepaired, s.Tamper.Repaired)
	counter(descHeartbeats, s.Tamper.Heartbeats)
	for _, sp := range s.Spools {
		gauge(descSpoolDepth, float64(sp.Depth), sp.Output)
		gauge(descSpoolBytes, float64(sp.Bytes), sp.Output)
		gauge(descSpoolOldest, sp.OldestAge.Seconds(), sp.Output)
		counter(descSpoolDelivered, sp.Delivered, sp.Output)
		counter(descSpoolRetried, sp.Retried, sp.Output)
		for _, r := range []string{"size", "age", "error"} {
			counter(descSpoolDropped, sp.DroppedBy[r], sp.Output, r)
		}
		gauge(descSpoolConnected, b2f(sp.Connected), sp.Output)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func sortedKeys(m map[string]uint64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Registry returns a registry with vigil's metrics and the Go runtime's
// and the process's.
func Registry(src Source, version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src, version: version},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves a registry in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Server is the metrics endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
	err chan error
}

// Listen opens the endpoint on addr (host:port) and serves /metrics until
// Close.
func Listen(addr string, src Source, version string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(Registry(src, version)))
	s := &Server{ln: ln, err: make(chan error, 1),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.err <- err
	}()
	return s, nil
}

// Addr is where the endpoint listens (the port chosen for ":0").
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the endpoint.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stopping the metrics endpoint: %w", err)
	}
	return <-s.err
}

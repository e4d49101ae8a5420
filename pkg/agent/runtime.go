package agent

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/expect"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Handle is how the rest of the process talks to a running agent: the
// control socket and the metrics endpoint read its Stats, SIGHUP asks it
// to Reload. Make one with NewHandle and pass it in Options.Handle.
type Handle struct {
	reqs chan reloadReq

	mu sync.Mutex
	a  *Agent
}

type reloadReq struct {
	done chan ReloadResult
}

// NewHandle returns a handle for one agent run.
func NewHandle() *Handle { return &Handle{reqs: make(chan reloadReq)} }

// ErrNotRunning is returned when no agent runs behind a handle.
var ErrNotRunning = errors.New("the agent is not running")

func (h *Handle) attach(a *Agent) {
	h.mu.Lock()
	h.a = a
	h.mu.Unlock()
}

// detach waits for a Stats in progress: after it, nothing reads the
// sensor's maps through the handle.
func (h *Handle) detach() {
	h.mu.Lock()
	h.a = nil
	h.mu.Unlock()
}

// Reload asks the agent to re-read its configuration and waits for the
// result. A reload asked for while the agent starts is done once it runs.
func (h *Handle) Reload(ctx context.Context) (ReloadResult, error) {
	req := reloadReq{done: make(chan ReloadResult, 1)}
	select {
	case h.reqs <- req:
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r, nil
	case <-ctx.Done():
		return ReloadResult{}, ctx.Err()
	}
}

// Stats returns a snapshot of the running agent; ok is false when it is not
// running (yet, or any more).
func (h *Handle) Stats() (s Stats, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.a == nil {
		return Stats{}, false
	}
	return h.a.stats(), true
}

// Stats is a snapshot of a running agent, for `vigil status` and the
// metrics endpoint. Counters count from the agent's start.
type Stats struct {
	PID     int         `json:"pid"`
	Started time.Time   `json:"started"`
	Config  []string    `json:"config"`
	Sensor  sensor.Info `json:"sensor"`
	Watch   WatchStats  `json:"watch"`
	// Records counts the records written, by event.action and event.kind.
	Records []RecordCount `json:"records"`
	// Live and Recovered count change records by origin.
	Live      uint64 `json:"live"`
	Recovered uint64 `json:"recovered"`
	// LostKernel counts records the kernel could not put in the ring
	// buffer; LostQueue those vigil's queue could not take.
	LostKernel uint64 `json:"lost_in_kernel"`
	LostQueue  uint64 `json:"lost_in_queue"`
	// Kernel holds the kernel's per-hook counters (hits, matched, emitted, lost).
	Kernel     sensor.Counters `json:"kernel"`
	RingBuffer RingStats       `json:"ring_buffer"`
	// Latency is the pipeline latency, from the kernel's timestamp of the
	// last event in a record to the record written (for a coalesced
	// modified record it includes the coalescing window).
	Latency Histogram `json:"latency_seconds"`
	// ParseErrors counts files a consumer could not parse, by kind.
	ParseErrors map[string]uint64 `json:"parse_errors"`
	// DecodeErrors counts kernel records that did not decode.
	DecodeErrors uint64 `json:"decode_errors"`
	// Reloads counts configuration reloads by result ("success", "failure").
	Reloads    map[string]uint64 `json:"reloads"`
	LastReload *ReloadResult     `json:"last_reload,omitempty"`
	SelfTestOK bool              `json:"self_test_ok"`
	// Tamper counts heartbeats and the periodic tamper checks.
	Tamper TamperStats `json:"tamper"`
	// Limits counts paths not watched and files too large to parse.
	Limits LimitStats `json:"limits"`
	// Packages is the package verification's queue (held.go).
	Packages PackageStats `json:"packages"`
	// HostID is host.id in the records; Sequence the last event.sequence.
	HostID   string `json:"host_id"`
	Sequence uint64 `json:"sequence"`
	// Spools are the network outputs' spools: depth, oldest, delivered,
	// retried, dropped.
	Spools []output.SpoolStats `json:"spools,omitempty"`
}

// WatchStats sizes the watch set and the kernel's watch map.
type WatchStats struct {
	Rules       int `json:"rules"`
	Files       int `json:"files"`
	FileTargets int `json:"file_targets"`
	Trees       int `json:"trees"`
	Anchors     int `json:"anchors"`
	// MapEntries is the inode entries in the kernel's map (-1 if unread).
	MapEntries  int    `json:"map_entries"`
	MapCapacity uint32 `json:"map_capacity"`
}

// RingStats is the ring buffer's fill: bytes written and not yet read.
type RingStats struct {
	Used int `json:"used_bytes"`
	Size int `json:"size_bytes"`
}

// RecordCount is one (action, kind) pair's count.
type RecordCount struct {
	Action string `json:"action"`
	Kind   string `json:"kind"`
	N      uint64 `json:"n"`
}

// Histogram is a fixed-bucket histogram: Counts[i] counts observations at
// most Bounds[i] (and above Bounds[i-1]); the last count is above every
// bound.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Sum    float64   `json:"sum"`
	Count  uint64    `json:"count"`
}

// latencyBounds are the latency histogram's buckets, in seconds.
var latencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func (h *Histogram) observe(v float64) {
	if h.Counts == nil {
		h.Bounds = latencyBounds
		h.Counts = make([]uint64, len(latencyBounds)+1)
	}
	i := sort.SearchFloat64s(h.Bounds, v)
	h.Counts[i]++
	h.Sum += v
	h.Count++
}

func (h Histogram) clone() Histogram {
	if h.Counts == nil {
		h.Bounds = latencyBounds
		h.Counts = make([]uint64, len(latencyBounds)+1)
		return h
	}
	h.Counts = append([]uint64(nil), h.Counts...)
	return h
}

// runtimeStats are the counters only this file's features keep (under
// Agent.mu).
type runtimeStats struct {
	started      time.Time
	latency      Histogram
	parseErrors  map[string]uint64
	decodeErrors uint64
	reloads      map[string]uint64
	lastReload   *ReloadResult
	// includes are the watches added by following includes: kept across
	// reloads (they are not in the configuration).
	includes []config.Watch
	// packages is the held records' count (held.go).
	packages PackageStats
}

// stats builds the snapshot. The set, the sensor and the counters have
// their own locks: this runs beside the pipeline.
func (a *Agent) stats() Stats {
	s := Stats{PID: os.Getpid(), Sensor: a.sens.Info()}
	files, trees, anchors := a.set.Targets()
	s.Watch = WatchStats{Files: len(a.set.Files()), FileTargets: files, Trees: trees, Anchors: anchors,
		MapEntries: -1, MapCapacity: a.sens.Capacity()}
	if n, err := a.sens.EntryCount(); err == nil {
		s.Watch.MapEntries = n
	}
	if c, err := a.sens.Counters(); err == nil {
		s.Kernel = c
		s.LostKernel = c.TotalLost()
	}
	s.RingBuffer.Used, s.RingBuffer.Size = a.sens.RingFill()
	s.Records = a.rec.counts()
	s.HostID, s.Sequence = a.rec.identity()
	if src, ok := a.opt.Out.(spoolSource); ok {
		s.Spools = src.SpoolStats()
	}
	s.LostQueue, _ = a.loss.totals()

	a.mu.Lock()
	defer a.mu.Unlock()
	s.Config = append([]string(nil), a.cfg.Sources...)
	s.Watch.Rules = len(a.cfg.Watch) + len(a.rt.includes)
	s.Started = a.rt.started
	s.Live, s.Recovered = a.live, a.recovered
	s.Latency = a.rt.latency.clone()
	s.ParseErrors = copyCounts(a.rt.parseErrors)
	s.DecodeErrors = a.rt.decodeErrors
	s.Reloads = copyCounts(a.rt.reloads)
	s.Reloads["success"] += 0
	s.Reloads["failure"] += 0
	if a.rt.lastReload != nil {
		r := *a.rt.lastReload
		s.LastReload = &r
	}
	s.SelfTestOK = a.self.ok
	s.Tamper = a.tamper.snapshot()
	s.Limits = LimitStats{NotWatched: a.lim.notWatched, WatchMapFull: a.lim.watchMapFull, Oversize: a.lim.oversize}
	s.Packages = a.rt.packages
	return s
}

func copyCounts(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// observeLatency records how long the record for an event took, from the
// kernel's boot-time clock at the hook to now.
func (a *Agent) observeLatency(e *sensor.Event) {
	if e == nil || e.BootNS == 0 {
		return
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return
	}
	d := time.Duration(ts.Nano() - int64(e.BootNS))
	if d < 0 {
		d = 0
	}
	a.mu.Lock()
	a.rt.latency.observe(d.Seconds())
	a.mu.Unlock()
}

func (a *Agent) countParseError(kind string) {
	a.mu.Lock()
	if a.rt.parseErrors == nil {
		a.rt.parseErrors = map[string]uint64{}
	}
	a.rt.parseErrors[kind]++
	a.mu.Unlock()
}

func (a *Agent) countDecodeError() {
	a.mu.Lock()
	a.rt.decodeErrors++
	a.mu.Unlock()
}

// ReloadResult is what a reload did.
type ReloadResult struct {
	At time.Time `json:"at"`
	OK bool      `json:"ok"`
	// Config lists the files read.
	Config []string `json:"config,omitempty"`
	// Errors are the configuration's problems (file:line: key: message);
	// on any, the running configuration stays.
	Errors []string `json:"errors,omitempty"`
	// Problems are paths that could not be watched; the rest applies.
	Problems []string `json:"problems,omitempty"`
	// Warnings are the new configuration's warnings (file:line: key:
	// message): it applies all the same.
	Warnings []string `json:"warnings,omitempty"`
	// RestartNeeded names the changed keys that take effect only at the
	// next start (sensor.*, agent.*, output.*, metrics.*).
	RestartNeeded                         []string `json:"restart_needed,omitempty"`
	RulesKept, RulesAdded, RulesRemoved   int      `json:"-"`
	Files, FileTargets, Trees, Anchors    int      `json:"-"`
	CoalesceChanged, DiffChanged, Changed bool     `json:"-"`
	ExpectChanged                         bool     `json:"-"`
	// WatchAdded are the existing files the new rules watch and the old
	// did not: given a baseline, not reported created.
	WatchAdded []string `json:"-"`
}

// reloadable are the configuration's tables that a reload applies; every
// other key needs a restart.
var reloadable = map[string]bool{"watch": true, "coalesce": true, "diff": true, "expect": true}

// restartKeys names the keys whose values differ between two
// configurations and that a reload does not apply.
func restartKeys(old, cur *config.Config) []string {
	var out []string
	var walk func(prefix string, a, b reflect.Value)
	walk = func(prefix string, a, b reflect.Value) {
		if a.Kind() != reflect.Struct {
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				out = append(out, prefix)
			}
			return
		}
		t := a.Type()
		if t == reflect.TypeOf(config.Duration{}) {
			if a.Interface() != b.Interface() {
				out = append(out, prefix)
			}
			return
		}
		for i := 0; i < t.NumField(); i++ {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
			if tag == "" || tag == "-" || !t.Field(i).IsExported() {
				continue
			}
			if prefix == "" && reloadable[tag] {
				continue
			}
			name := tag
			if prefix != "" {
				name = prefix + "." + tag
			}
			walk(name, a.Field(i), b.Field(i))
		}
	}
	walk("", reflect.ValueOf(*old), reflect.ValueOf(*cur))
	return out
}

// configErrors splits a configuration error into its problems.
func configErrors(err error) []string {
	var me *multierror.Error
	if errors.As(err, &me) {
		var out []string
		for _, e := range me.Errors {
			out = append(out, e.Error())
		}
		return out
	}
	return []string{err.Error()}
}

// reload re-reads the configuration and applies it in place. It runs in the
// pipeline goroutine, so no record is handled while the watch set changes,
// and none is lost: the ring buffer reader keeps reading meanwhile.
func (a *Agent) reload(co *coalescer, ticker *time.Ticker) ReloadResult {
	res := ReloadResult{At: time.Now()}
	defer func() {
		a.mu.Lock()
		if a.rt.reloads == nil {
			a.rt.reloads = map[string]uint64{}
		}
		if res.OK {
			a.rt.reloads["success"]++
		} else {
			a.rt.reloads["failure"]++
		}
		r := res
		a.rt.lastReload = &r
		a.mu.Unlock()
		a.rec.reload(&res)
	}()
	if a.opt.LoadConfig == nil {
		res.Errors = []string{"this agent was started without a configuration to re-read"}
		a.opt.Log.Error().Msg("reload refused: no configuration to re-read")
		return res
	}
	cur, err := a.opt.LoadConfig()
	if err == nil {
		err = config.CheckPermissions(cur.Sources)
	}
	if err != nil {
		res.Errors = configErrors(err)
		a.opt.Log.Error().Strs(logKeyErrors, res.Errors).Msg("reload failed: the running configuration stays")
		return res
	}
	res.OK = true
	res.Config = cur.Sources
	res.RestartNeeded = restartKeys(a.cfg, cur)

	prevRules := append(append([]config.Watch(nil), a.cfg.Watch...), a.rt.includes...)
	rules := append(append([]config.Watch(nil), cur.Watch...), a.rt.includes...)
	rr := a.set.Replace(rules)
	res.RulesKept, res.RulesAdded, res.RulesRemoved = rr.Kept, rr.Added, rr.Removed
	for _, e := range rr.Errors {
		res.Problems = append(res.Problems, e.Error())
	}
	for _, e := range a.set.Problems() {
		res.Problems = append(res.Problems, e.Error())
	}
	if !reflect.DeepEqual(a.cfg.Diff, cur.Diff) {
		res.DiffChanged = true
		if cons, err := consumer.NewAll(ConsumerOptions(cur, a.opt.Key)); err != nil {
			res.Problems = append(res.Problems, err.Error())
		} else {
			a.cons = cons
		}
	}
	for _, w := range cur.Warnings {
		res.Warnings = append(res.Warnings, w.Error())
	}
	if !reflect.DeepEqual(a.cfg.Expect, cur.Expect) {
		res.ExpectChanged = true
		a.rec.expect = expect.New(cur.Expect, nil)
	}
	if w := cur.Coalesce.Window.Duration; w != a.cfg.Coalesce.Window.Duration {
		res.CoalesceChanged = true
		co.window = w
		ticker.Reset(coalesceTick(w))
	}
	// The new configuration, with the running values of what needs a restart.
	next := *a.cfg
	next.Watch, next.Coalesce, next.Diff, next.Sources = cur.Watch, cur.Coalesce, cur.Diff, cur.Sources
	next.Expect, next.Warnings = cur.Expect, cur.Warnings
	a.mu.Lock()
	a.cfg = &next
	a.mu.Unlock()

	// Files no longer watched are forgotten; new ones get their baseline,
	// and the ones that exist are named in the record (newly watched).
	watched := map[string]bool{}
	for _, f := range a.set.Files() {
		watched[f.Path] = true
		if _, ok := a.states[f.Path]; !ok {
			f := f
			if sn := a.observe(&f, false); sn.info != nil {
				res.WatchAdded = append(res.WatchAdded, f.Path)
			}
		}
	}
	sort.Strings(res.WatchAdded)
	// The store's records are kept under the new rules from now on: the
	// next start compares with them (docs/baseline.md).
	if a.store != nil {
		if err := scan.SaveRules(a.store.st, cur.Watch, a.cfg.Sensor.MaxDepth); err != nil {
			res.Problems = append(res.Problems, err.Error())
		}
		// The new trees' entries get their baseline (those the watch set
		// observed above have one already).
		added, err := scan.RecordEntries(rules, prevRules, a.cfg.Sensor.MaxDepth, a.store.st, a.opt.Key)
		if err != nil {
			res.Problems = append(res.Problems, err.Error())
		}
		// The watch set observes a tree's directories and symlinks too:
		// each path is named once.
		seen := map[string]bool{}
		for _, p := range res.WatchAdded {
			seen[p] = true
		}
		for _, p := range added {
			if !seen[p] {
				seen[p] = true
				res.WatchAdded = append(res.WatchAdded, p)
			}
		}
		sort.Strings(res.WatchAdded)
	}
	for p := range a.states {
		if !watched[p] {
			delete(a.states, p)
		}
	}
	for p := range a.meta {
		if !watched[p] {
			delete(a.meta, p)
		}
	}
	res.Files = len(watched)
	res.FileTargets, res.Trees, res.Anchors = a.set.Targets()
	res.Changed = rr.Added > 0 || rr.Removed > 0 || res.DiffChanged || res.CoalesceChanged || res.ExpectChanged
	ev := a.opt.Log.Info()
	if len(res.Problems) > 0 {
		ev = a.opt.Log.Warn().Strs(logKeyProblems, res.Problems)
	}
	if len(res.Warnings) > 0 {
		ev = a.opt.Log.Warn().Strs(logKeyWarnings, res.Warnings)
	}
	ev.Int("rules_added", rr.Added).Int("rules_removed", rr.Removed).Int("rules_kept", rr.Kept).
		Strs(logKeyRestartNeeded, res.RestartNeeded).Msg("configuration reloaded")
	return res
}

// Log keys of the reload's log lines.
const (
	logKeyErrors        = "errors"
	logKeyProblems      = "problems"
	logKeyRestartNeeded = "restart_needed"
	logKeyWarnings      = "warnings"
	logKeyConfig        = "config"
)

// coalesceTick is how often the coalescer's windows are checked.
func coalesceTick(window time.Duration) time.Duration {
	tick := window / 4
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	return tick
}

// reload writes the config-reloaded record.
func (r *recorder) reload(res *ReloadResult) {
	outcome, kind := "success", "state"
	if !res.OK {
		outcome, kind = "failure", "alert"
	}
	v := zerolog.Dict()
	if len(res.Config) > 0 {
		v.Strs("config", res.Config)
	}
	if len(res.Errors) > 0 {
		v.Strs("errors", res.Errors)
	}
	if res.OK {
		v.Dict("rules", zerolog.Dict().Int("kept", res.RulesKept).Int("added", res.RulesAdded).
			Int("removed", res.RulesRemoved)).
			Dict("watch", zerolog.Dict().Int("files", res.Files).Int("file_targets", res.FileTargets).
				Int("trees", res.Trees).Int("anchors", res.Anchors))
		var applied []string
		if res.RulesAdded > 0 || res.RulesRemoved > 0 {
			applied = append(applied, "watch")
		}
		if res.CoalesceChanged {
			applied = append(applied, "coalesce")
		}
		if res.DiffChanged {
			applied = append(applied, "diff")
		}
		if res.ExpectChanged {
			applied = append(applied, "expect")
		}
		v.Strs("applied", applied)
		if len(res.WatchAdded) > 0 {
			v.Dict("watch_added", watchAddedDict(res.WatchAdded))
		}
		if len(res.Problems) > 0 {
			v.Strs("problems", res.Problems)
		}
		if len(res.Warnings) > 0 {
			v.Strs("warnings", res.Warnings)
		}
		if len(res.RestartNeeded) > 0 {
			v.Strs("restart_needed", res.RestartNeeded)
		}
	}
	r.begin(time.Now(), "config-reloaded", []string{"configuration"}, []string{"change"}, kind,
		func(d *zerolog.Event) { d.Str("outcome", outcome) }).
		Dict("vigil", zerolog.Dict().Dict("reload", v)).Send()
}

type recordKey struct{ action, kind string }

// count notes one record written (under r.mu).
func (r *recorder) count(action, kind string) {
	if r.written == nil {
		r.written = map[recordKey]uint64{}
	}
	r.written[recordKey{action, kind}]++
}

// counts returns the records written by action and kind, sorted.
func (r *recorder) counts() []RecordCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RecordCount, 0, len(r.written))
	for k, n := range r.written {
		out = append(out, RecordCount{Action: k.action, Kind: k.kind, N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Action != out[j].Action {
			return out[i].Action < out[j].Action
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

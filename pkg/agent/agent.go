// Package agent wires vigil's stages together: the sensor's records go
// through one ordered pipeline (watch set, coalescing, consumers) to the
// outputs. The ring buffer reader never waits for the rest: a full queue is
// counted, reported and recovered by re-reading the files concerned.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/state"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// Options configure a run.
type Options struct {
	Config *config.Config
	// Out receives the records, one JSON object per line.
	Out io.Writer
	// Log receives diagnostics.
	Log zerolog.Logger
	// Key is the host secret for keyed fingerprints (>= 16 bytes).
	Key []byte
	// Ready, if set, is closed once agent-ready is written.
	Ready chan<- struct{}
	// SelfTestOnly stops after the startup self-test; Run then returns
	// ErrSelfTest if it failed.
	SelfTestOnly bool
	// DropCapabilities drops every capability the agent no longer needs
	// once the sensor is loaded (irreversible for the whole process: the
	// vigil command sets it, tests running several agents do not).
	DropCapabilities bool
	// Handle, if set, gives the control socket and the metrics endpoint
	// the agent's Stats and passes reload requests to it.
	Handle *Handle
	// LoadConfig re-reads the configuration for a reload (nil: reloads
	// are refused).
	LoadConfig func() (*config.Config, error)
	// Sequence numbers the records (event.sequence); nil: the agent opens
	// agent.state_dir's own for the run.
	Sequence *state.Sequence
	// HostID is host.id; empty: from agent.host_id (state.HostID).
	HostID string
}

// spoolSource is an output with spools (output.Fanout): their drops are
// reported as spool-dropped records, their counters are in Stats.
type spoolSource interface {
	SpoolStats() []output.SpoolStats
}

// ErrSelfTest is returned when the startup self-test failed.
var ErrSelfTest = errors.New("self-test failed: the kernel did not report operations on a watched file")

// Agent is a running agent.
type Agent struct {
	opt    Options
	cfg    *config.Config
	sens   *sensor.Sensor
	set    *watch.Set
	rec    *recorder
	cons   map[string]consumer.Consumer
	states map[string]consumer.State
	queue  chan *sensor.Event
	store  *state.Store
	// included are paths watched because a sudoers or sshd_config file
	// includes them.
	included map[string]bool

	mu         sync.Mutex
	dropped    uint64              // records the queue could not take
	dirty      map[uint64]struct{} // watch ids whose records were dropped
	lost       uint64              // kernel-reported lost records seen so far
	readErr    chan error
	selfTestCh chan *sensor.Event
	selfTestOK bool
	// received counts the records read per watch id: against the kernel's
	// per-entry match counters it tells which entries lost records.
	received map[uint64]uint64
	// live and recovered count the change records written of each origin.
	live, recovered uint64
	// pending are baseline store entries not yet committed: the store is
	// written one transaction per batch (flushStore), since every bbolt
	// commit waits for two fdatasync calls (per record, they held the
	// pipeline to a few hundred records a second; docs/benchmarks.md).
	pending []state.Entry
	// commits carries batches to the committer goroutine while the loop
	// runs, so that the pipeline does not wait for the disk; nil before
	// and after, when flushStore commits itself.
	commits   chan []state.Entry
	committed chan struct{}
	// droppedTotal counts the records the queue could not take, ever.
	droppedTotal uint64
	// tamper is the periodic tamper check's state (loop goroutine only).
	tamper tamperState
	// rt holds the reload and metrics state (runtime.go).
	rt runtimeStats
	// lim counts what was refused at a limit (limits.go).
	lim limitStats
	// ownSeq is the sequence the agent opened itself (closed by Run).
	ownSeq *state.Sequence
	// spoolDropped is each spool's drop count last reported.
	spoolDropped map[string]uint64
}

// Run loads the sensor, seeds the watch set and writes one record per
// change until ctx ends, then writes agent-stopped.
func Run(ctx context.Context, opt Options) error {
	a, err := start(opt)
	if err != nil {
		return err
	}
	defer a.closeSequence()
	defer a.sens.Close()
	defer a.store.Close()
	if opt.SelfTestOnly {
		if opt.Handle != nil {
			opt.Handle.detach()
		}
		a.sens.Close()
		<-a.readErr
		if !a.selfTestOK {
			return ErrSelfTest
		}
		return nil
	}
	return a.loop(ctx)
}

func start(opt Options) (*Agent, error) {
	cfg := opt.Config
	if cfg == nil {
		return nil, errors.New("no configuration")
	}
	// Whoever can change the configuration can make vigil look away.
	if err := config.CheckPermissions(cfg.Sources); err != nil {
		return nil, fmt.Errorf("refusing the configuration: %w", err)
	}
	if len(opt.Key) < 16 {
		return nil, errors.New("host key too short")
	}
	seq := opt.Sequence
	var ownSeq *state.Sequence
	if seq == nil {
		var err error
		if ownSeq, err = state.OpenSequence(cfg.Agent.StateDir); err != nil {
			return nil, err
		}
		seq = ownSeq
	}
	hostID := opt.HostID
	if hostID == "" {
		var err error
		if hostID, _, err = state.HostID(cfg.Agent.StateDir, cfg.Agent.HostID, MachineIDFile); err != nil {
			if ownSeq != nil {
				ownSeq.Close()
			}
			return nil, err
		}
	}
	a, err := startWith(opt, seq, ownSeq, hostID)
	if err != nil && ownSeq != nil {
		ownSeq.Close()
	}
	return a, err
}

// MachineIDFile is the host's identity that host.id takes by default.
const MachineIDFile = "/etc/machine-id"

func (a *Agent) closeSequence() {
	if a.ownSeq != nil {
		if err := a.ownSeq.Close(); err != nil {
			a.opt.Log.Warn().Err(err).Msg("saving the record sequence")
		}
	}
}

func startWith(opt Options, seq, ownSeq *state.Sequence, hostID string) (*Agent, error) {
	cfg := opt.Config
	a := &Agent{
		opt: opt, cfg: cfg, ownSeq: ownSeq, spoolDropped: map[string]uint64{},
		cons:   map[string]consumer.Consumer{},
		states: map[string]consumer.State{},
		queue:  make(chan *sensor.Event, cfg.Agent.QueueSize),
		dirty:  map[uint64]struct{}{},

		included: map[string]bool{},
		received: map[uint64]uint64{},
		rt:       runtimeStats{started: time.Now()},
	}
	copts := ConsumerOptions(cfg, opt.Key)
	for _, k := range config.Kinds {
		c, err := consumer.New(consumer.Kind(k), copts)
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", k, err)
		}
		a.cons[k] = c
	}
	s, err := sensor.New(loader.Options{
		Object:          cfg.Sensor.Object,
		Hooks:           cfg.Sensor.Hooks,
		RingBufferBytes: uint32(cfg.Sensor.RingBufferKiB) * 1024,
		WatchEntries:    uint32(cfg.Sensor.MaxWatches),
		NameEntries:     uint32(cfg.Sensor.MaxWatches),
		MaxDepth:        uint32(cfg.Sensor.MaxDepth),
		SelfPID:         uint32(os.Getpid()),
		Log:             opt.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("starting sensor: %w", err)
	}
	a.sens = s
	a.rec = newRecorder(opt.Out, cfg.Agent.HostName, hostID, seq)
	// The ring buffer reader runs from now on: nothing the kernel reports
	// while the rest starts up waits in the ring buffer.
	a.selfTestCh = make(chan *sensor.Event, 64)
	a.readErr = make(chan error, 1)
	go func() { a.readErr <- a.read() }()
	a.set = watch.New(s, cfg.Sensor.MaxDepth, kindFor)
	// Paths that cannot be watched (a full watch map, a bad glob match)
	// are one not-watched record, before agent-ready.
	a.notWatched("start", append(a.set.Add(cfg.Watch), a.set.Problems()...))
	// Compare with the baseline store: what changed while vigil was down is
	// reported before agent-ready (origin "startup"). The sensor is already
	// attached, so nothing after this point is missed.
	if err := a.startup(); err != nil {
		s.Close()
		return nil, err
	}
	if opt.DropCapabilities {
		if err := dropCapabilities(); err != nil {
			s.Close()
			a.store.Close()
			return nil, fmt.Errorf("dropping capabilities: %w", err)
		}
	}
	a.selfTestOK = a.selfTest()
	a.flushStore()
	files, trees, anchors := a.set.Targets()
	a.rec.ready(s.Info(), len(a.set.Files()), files, trees, anchors, cfg.Sources)
	if opt.Handle != nil {
		opt.Handle.attach(a)
	}
	if opt.Ready != nil {
		close(opt.Ready)
	}
	return a, nil
}

// ConsumerOptions are the consumers' options for a configuration: the agent
// and `vigil scan` must parse alike, or their stored states would differ.
func ConsumerOptions(cfg *config.Config, key []byte) consumer.Options {
	var redact []*regexp.Regexp
	for _, r := range cfg.Diff.Redact {
		redact = append(redact, regexp.MustCompile(r)) // validated by config
	}
	return consumer.Options{Key: key, DiffMaxBytes: cfg.Diff.MaxBytes,
		Redact: append(append([]*regexp.Regexp(nil), consumer.DefaultRedact...), redact...)}
}

// observe reads a file and stores its consumer state; it returns the
// semantic changes since the last observation and the parse problems.
//
// A file seen for the first time is a baseline (no changes), unless it was
// just created: then it is compared with an absent file, so that a new
// authorized_keys reports its keys.
func (a *Agent) observe(f *watch.File, created bool) ([]consumer.Change, []consumer.Problem, *consumer.FileInfo, string) {
	o := readFile(f.Path)
	in, sum, st := o.in, o.sum, o.st
	c := a.cons[f.Kind]
	if c == nil {
		c = a.cons["hash"]
	}
	if o.oversize || o.symlink {
		// Not parsed: the previous state stays the one compared with
		// next time, and the record says why nothing was compared.
		p := symlinkProblem
		if o.oversize {
			a.countOversize()
			p = oversizeProblem(in.Info.Size)
		}
		return nil, []consumer.Problem{p}, in.Info, sum
	}
	cur, problems, err := c.Parse(in)
	if err != nil {
		a.countParseError(f.Kind)
		a.opt.Log.Warn().Err(err).Str("file.path", f.Path).Msg("parsing")
		return nil, problems, in.Info, sum
	}
	prev, seen := a.states[f.Path]
	a.states[f.Path] = cur
	a.persist(f, cur, sum, st)
	a.followIncludes(f, cur)
	if !seen && created {
		prev, _, err = c.Parse(consumer.Input{Path: f.Path})
		seen = err == nil
	}
	if !seen {
		return nil, problems, in.Info, sum
	}
	changes, err := c.Diff(prev, cur)
	if err != nil {
		a.opt.Log.Warn().Err(err).Str("file.path", f.Path).Msg("diffing")
	}
	return changes, problems, in.Info, sum
}

func (a *Agent) loop(ctx context.Context) error {
	readErr := a.readErr
	window := a.cfg.Coalesce.Window.Duration
	ticker := time.NewTicker(coalesceTick(window))
	defer ticker.Stop()
	health := time.NewTicker(time.Second)
	defer health.Stop()
	started := time.Now()
	heartbeat, tamper := every(a.cfg.Agent.Heartbeat.Duration), every(a.cfg.Agent.TamperCheck.Duration)
	defer heartbeat.Stop()
	defer tamper.Stop()
	co := newCoalescer(window)
	a.startCommitter()
	defer a.stopCommitter()
	var reloads chan reloadReq
	if a.opt.Handle != nil {
		reloads = a.opt.Handle.reqs
		defer a.opt.Handle.detach()
	}
	for {
		select {
		case <-ctx.Done():
			if a.opt.Handle != nil {
				a.opt.Handle.detach()
			}
			a.sens.Close()
			<-readErr
			a.drain(co)
			a.checkSpools()
			a.mu.Lock()
			live, recovered := a.live, a.recovered
			a.mu.Unlock()
			a.rec.stopped(live, recovered)
			return nil
		case err := <-readErr:
			a.drain(co)
			return err
		case e := <-a.queue:
			a.handle(co, e)
		case now := <-ticker.C:
			for _, b := range co.due(now) {
				a.emitBurst(b)
			}
			a.flushStore()
		case req := <-reloads:
			req.done <- a.reload(co, ticker)
		case <-health.C:
			a.checkLoss()
			a.checkSpools()
		case <-heartbeat.C:
			a.heartbeat(started)
		case <-tamper.C:
			a.checkTamper()
		}
	}
}

// read is the ring buffer reader: it never blocks on the pipeline.
func (a *Agent) read() error {
	for {
		e, err := a.sens.Read()
		if errors.Is(err, sensor.ErrClosed) {
			return nil
		}
		if err != nil {
			a.opt.Log.Warn().Err(err).Msg("bad kernel record")
			a.countDecodeError()
			continue
		}
		if e.WatchID == selfTestID {
			select {
			case a.selfTestCh <- e:
			default:
			}
			continue
		}
		a.mu.Lock()
		a.received[e.WatchID]++
		a.mu.Unlock()
		select {
		case a.queue <- e:
		default:
			a.mu.Lock()
			a.dropped++
			a.droppedTotal++
			a.dirty[e.WatchID] = struct{}{}
			a.mu.Unlock()
		}
	}
}

func (a *Agent) drain(co *coalescer) {
	for {
		select {
		case e := <-a.queue:
			a.handle(co, e)
		default:
			for _, b := range co.all() {
				a.emitBurst(b)
			}
			a.flushStore()
			return
		}
	}
}

func (a *Agent) handle(co *coalescer, e *sensor.Event) {
	ch, ok := a.set.Apply(e)
	if p := a.set.Problems(); len(p) > 0 {
		a.notWatched("follow", p) // a new file in a watched tree the kernel map has no room for
	}
	if a.opt.Log.GetLevel() <= zerolog.DebugLevel {
		a.opt.Log.Debug().Str("op", e.Op.String()).Str("match", e.Match.String()).Uint64("id", e.WatchID).
			Stringer("file", e.File).Stringer("file2", e.File2).Str("path", e.Path).Str("path2", e.Path2).
			Uint32("flags", e.Flags).Str("comm", e.Proc.Comm).Bool("kept", ok).Str("action", ch.Action).
			Msg("kernel record")
	}
	if !ok {
		return
	}
	if ch.Action == "modified" {
		if b := co.add(ch, e); b != nil {
			a.emitBurst(b)
		}
		return
	}
	// Never held back: flush what was gathered for the file first.
	if b := co.flush(ch.File.Path); b != nil {
		a.emitBurst(b)
	}
	single := &burst{change: ch, events: []*sensor.Event{e}, last: e, count: 1}
	single.addActor(e)
	a.emit(ch, single)
}

func (a *Agent) emitBurst(b *burst) { a.emit(b.change, b) }

func (a *Agent) emit(ch watch.Change, b *burst) {
	f := ch.File
	var changes []consumer.Change
	var problems []consumer.Problem
	var info *consumer.FileInfo
	var sum string
	if ch.Gone {
		delete(a.states, f.Path)
		a.persistAbsent(f)
	} else {
		changes, problems, info, sum = a.observe(f, ch.Action == "created")
	}
	a.rec.change(ch, b, changes, problems, info, sum)
	a.observeLatency(b.last)
	a.mu.Lock()
	a.live++
	a.mu.Unlock()
	if f.Kind == "passwd" || f.Kind == "group" {
		a.rec.forgetNames()
	}
}

// checkLoss turns records the kernel or the queue could not take into an
// events-lost record, then re-reads the files of just the entries that lost
// some, so that no change goes unreported (their actor is unknown: origin
// "recovered"). The kernel counts, per watch entry, the records it tried to
// emit; an entry whose count exceeds the records read for it lost records.
func (a *Agent) checkLoss() {
	c, err := a.sens.Counters()
	if err != nil {
		return
	}
	kernelLost := c.TotalLost()
	a.mu.Lock()
	dropped := a.dropped
	a.dropped = 0
	dirty := a.dirty
	a.dirty = map[uint64]struct{}{}
	newLost := kernelLost - a.lost
	a.lost = kernelLost
	a.mu.Unlock()
	if newLost == 0 && dropped == 0 {
		return
	}
	all := false
	if newLost > 0 {
		matches := map[uint64]uint64{}
		if ents, err := a.sens.Entries(); err == nil {
			for _, e := range ents {
				matches[e.ID] += e.Matches
			}
		}
		a.mu.Lock()
		found := false
		for id, m := range matches {
			if m > a.received[id] {
				dirty[id] = struct{}{}
				found = true
			}
		}
		a.mu.Unlock()
		// Records matched through a name or a path are counted on no inode
		// entry: when no entry shows the loss, re-read everything.
		all = !found
	}
	var recovered uint64
	for _, f := range a.set.Files() {
		if _, ok := dirty[f.Target]; !ok && !all {
			continue
		}
		f := f
		if a.recoverGone(&f) {
			recovered++
			continue
		}
		changes, problems, info, sum := a.observe(&f, false)
		if len(changes) > 0 {
			a.rec.recovered(&f, "modified", changes, problems, info, sum)
			recovered++
		}
	}
	a.mu.Lock()
	a.recovered += recovered
	a.mu.Unlock()
	a.rec.lost(newLost, dropped, len(dirty), all, recovered)
}

// checkSpools writes a spool-dropped record for each network output whose
// spool dropped records since the last check (full, or too old).
func (a *Agent) checkSpools() {
	src, ok := a.opt.Out.(spoolSource)
	if !ok {
		return
	}
	for _, st := range src.SpoolStats() {
		if last := a.spoolDropped[st.Output]; st.Dropped > last {
			a.spoolDropped[st.Output] = st.Dropped
			a.rec.spoolDropped(st, st.Dropped-last)
		}
	}
}

// recoverGone reports a watched file that no longer exists although its
// deletion was never read (its record was lost): a recovered "deleted"
// record, and the file leaves the watch set and the baseline as a live
// deletion would have it.
func (a *Agent) recoverGone(f *watch.File) bool {
	if _, err := os.Lstat(f.Path); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if _, known := a.states[f.Path]; !known {
		return false
	}
	delete(a.states, f.Path)
	a.persistAbsent(f)
	a.set.Gone(f.Path)
	a.rec.recovered(f, "deleted", nil, nil, nil, "")
	return true
}

// String is for logs.
func (a *Agent) String() string {
	return fmt.Sprintf("agent(%s)", strings.Join(a.cfg.Sources, ","))
}

// identityNames are files whose name alone says what they are, wherever
// they live (a chroot's or a container's /etc, a scratch root).
var identityNames = map[string]string{"passwd": "passwd", "shadow": "shadow", "group": "group",
	"gshadow": "gshadow", "sudoers": "sudoers", "sshd_config": "sshd_config",
	"authorized_keys": "authorized_keys", "authorized_keys2": "authorized_keys"}

// kindFor infers a file's consumer from its path, then from its name.
func kindFor(p string) string {
	if k := consumer.KindFor(p); k != "" {
		return string(k)
	}
	return identityNames[p[strings.LastIndexByte(p, '/')+1:]]
}

// followIncludes watches what a sudoers or sshd_config file includes
// (#include, @includedir, Include), so a rule slipped into an included file
// is seen like one in the main file. New files get their baseline at once.
func (a *Agent) followIncludes(f *watch.File, st consumer.State) {
	if f.Kind != "sudoers" && f.Kind != "sshd_config" {
		return
	}
	var added bool
	for _, inc := range consumer.Includes(st) {
		if a.included[inc] || a.set.Covers(inc) {
			continue
		}
		a.included[inc] = true
		w := config.Watch{Path: inc, Kind: f.Kind, Source: "included by " + f.Path}
		if fi, err := os.Stat(inc); err == nil && fi.IsDir() {
			w.Recursive = true
		}
		a.rt.includes = append(a.rt.includes, w)
		for _, err := range a.set.Add([]config.Watch{w}) {
			a.opt.Log.Warn().Err(err).Str("file.path", f.Path).Msg("not watching an include")
		}
		added = true
	}
	if !added {
		return
	}
	for _, nf := range a.set.Files() {
		if _, ok := a.states[nf.Path]; !ok {
			nf := nf
			a.observe(&nf, false)
		}
	}
}

// persist records a file's observed state in the baseline store, so that a
// restart compares with what was last seen (scan.Scan's record format).
func (a *Agent) persist(f *watch.File, cur consumer.State, sum string, st *syscall.Stat_t) {
	if a.store == nil {
		return
	}
	e := state.Entry{Path: f.Path, Kind: f.Kind, State: cur, UpdatedNS: time.Now().UnixNano()}
	if st == nil {
		e.Absent = true
	} else {
		e.Dev, e.Ino, e.Size, e.Mode, e.UID, e.GID = st.Dev, st.Ino, st.Size, st.Mode, st.Uid, st.Gid
		e.MtimeNS, e.CtimeNS, e.SHA256 = st.Mtim.Nano(), st.Ctim.Nano(), sum
	}
	a.pending = append(a.pending, e)
	if len(a.pending) >= maxPending {
		a.flushStore()
	}
}

// maxPending bounds a batch of store entries.
const maxPending = 4096

// flushStore commits the pending store entries in one transaction. The
// loop calls it at every coalescing tick (not when its queue runs empty:
// under a steady trickle that was still a commit every few records), so a
// crash forgets at most the last tick's states, which the next start then
// reports again (origin startup): reported twice, never lost.
func (a *Agent) flushStore() {
	if len(a.pending) == 0 || a.store == nil {
		return
	}
	if a.commits == nil {
		a.putStates(a.pending)
		a.pending = a.pending[:0]
		return
	}
	if len(a.pending) < maxPending {
		select {
		case a.commits <- a.pending:
		default:
			return // the committer is still writing: keep gathering
		}
	} else {
		a.commits <- a.pending // a full batch waits for the committer
	}
	a.pending = nil
}

func (a *Agent) putStates(es []state.Entry) {
	if err := a.store.PutMany(es); err != nil {
		a.opt.Log.Warn().Err(err).Int("entries", len(es)).Msg("recording state")
	}
}

// startCommitter starts the goroutine that commits batches in order.
func (a *Agent) startCommitter() {
	a.commits, a.committed = make(chan []state.Entry, 1), make(chan struct{})
	go func(in <-chan []state.Entry, done chan<- struct{}) {
		defer close(done)
		for es := range in {
			a.putStates(es)
		}
	}(a.commits, a.committed)
}

// stopCommitter commits what is pending and waits for the committer.
func (a *Agent) stopCommitter() {
	if a.commits == nil {
		return
	}
	if len(a.pending) > 0 {
		a.commits <- a.pending
		a.pending = nil
	}
	close(a.commits)
	<-a.committed
	a.commits = nil
}

func (a *Agent) persistAbsent(f *watch.File) {
	c := a.cons[f.Kind]
	if c == nil || a.store == nil {
		return
	}
	st, _, err := c.Parse(consumer.Input{Path: f.Path})
	if err != nil {
		return
	}
	a.persist(f, st, "", nil)
}

// startup opens the baseline store, reports what changed while vigil was
// not running, and loads the consumers' states.
func (a *Agent) startup() error {
	st, err := state.Open(filepath.Join(a.cfg.Agent.StateDir, state.StoreFile), state.Options{})
	if err != nil {
		return err
	}
	a.store = st
	res, err := scan.Run(context.Background(), a.cfg.Watch, a.cfg.Sensor.MaxDepth, st, a.cons,
		scan.ScanOptions{Update: true})
	if err != nil {
		st.Close()
		return fmt.Errorf("comparing with the baseline: %w", err)
	}
	for _, e := range res.Errors {
		a.opt.Log.Warn().Err(e).Msg("baseline comparison")
	}
	files := a.set.Files()
	rules := make(map[string]*config.Watch, len(files))
	for i := range files {
		rules[files[i].Path] = ruleOf(&files[i])
	}
	for i := range res.Findings {
		a.rec.startup(&res.Findings[i], rules[res.Findings[i].Path])
	}
	for _, f := range files {
		f := f
		if e, ok, err := st.Get(f.Path); err == nil && ok && !e.Absent && e.Kind == f.Kind {
			a.states[f.Path] = e.State
			a.followIncludes(&f, e.State)
			continue
		}
		a.observe(&f, false)
	}
	return nil
}

// selfTestID is the watch id of the self-test's private directory.
const selfTestID = 1 << 62

// selfTest creates, writes, replaces by rename and deletes a file in a
// private watched directory and checks that the kernel reported each
// operation, then writes the result as a record.
func (a *Agent) selfTest() bool {
	dir := filepath.Join(a.cfg.Agent.StateDir, "selftest")
	os.RemoveAll(dir)
	want := []sensor.Op{sensor.OpCreate, sensor.OpWrite, sensor.OpRename, sensor.OpUnlink}
	seen := map[sensor.Op]bool{}
	fail := func(err error) bool {
		a.rec.selfTest(want, seen, err)
		return false
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	defer a.dropSelfTestEntries()
	defer os.RemoveAll(dir)
	key, err := a.sens.WatchTree(dir, selfTestID)
	if err != nil {
		return fail(err)
	}
	defer a.sens.UnwatchDir(dir, key)
	// vigil's own operations are never reported (sensor SelfPID): a shell
	// does them, with the tools an administrator would use.
	f := filepath.Join(dir, "probe")
	script := fmt.Sprintf(selfTestScript, f)
	if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("%v: %s", err, out))
	}
	deadline := time.After(selfTestTimeout)
	for {
		done := true
		for _, op := range want {
			done = done && seen[op]
		}
		if done {
			a.rec.selfTest(want, seen, nil)
			return true
		}
		select {
		case e := <-a.selfTestCh:
			if e.Ret == 0 {
				seen[e.Op] = true
			}
		case <-deadline:
			return fail(fmt.Errorf("no record within %s", selfTestTimeout))
		}
	}
}

// dropSelfTestEntries removes the kernel's entries for the self-test's
// probe files: the kernel added them as it followed the files, and nothing
// reads their records through the watch set, which would drop them. Left
// behind, a later file that reuses a freed probe's inode number (a file
// created in a watched tree, say) would match them and be lost as a
// self-test record.
func (a *Agent) dropSelfTestEntries() {
	ents, err := a.sens.Entries()
	if err != nil {
		a.opt.Log.Warn().Err(err).Msg("clearing the self-test's watch entries")
		return
	}
	for _, e := range ents {
		if e.ID == selfTestID {
			a.sens.UnwatchInode(e.Key)
		}
	}
}

// selfTestScript is what the self-test's shell runs on the probe file (%[1]s).
var selfTestScript = "echo vigil > %[1]s && echo replaced > %[1]s.new && mv %[1]s.new %[1]s && rm %[1]s"

// selfTestTimeout bounds the wait for the self-test's records (generous:
// emulated kernels are slow).
var selfTestTimeout = 20 * time.Second

// every is a ticker for d, or one that never fires when d is 0.
func every(d time.Duration) *time.Ticker {
	if d <= 0 {
		t := time.NewTicker(time.Hour)
		t.Stop()
		return t
	}
	return time.NewTicker(d)
}

func pid() int { return os.Getpid() }

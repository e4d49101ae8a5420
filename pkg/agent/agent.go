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
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/container"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/expect"
	"github.com/vigil-fim/vigil/pkg/loader"
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
	// agent.state_dir's own for the run (spools.go).
	Sequence *state.Sequence
	// HostID is host.id; empty: from agent.host_id (state.HostID).
	HostID string
}

// ErrSelfTest is returned when the startup self-test failed.
var ErrSelfTest = errors.New("self-test failed: the kernel did not report operations on a watched file")

// Agent is a running agent. Its fields follow a record's path: the
// sensor's records are read from the ring buffer (read) into the queue,
// matched against the watch set, coalesced, parsed by the consumers
// (observe) and written as records and as baseline states (handle, emit).
type Agent struct {
	opt Options
	cfg *config.Config

	// The data path, in order.
	sens   *sensor.Sensor
	queue  chan *sensor.Event
	set    *watch.Set
	cons   map[string]consumer.Consumer
	states map[string]consumer.State // each file's last parsed state
	meta   map[string]fileMeta       // each file's attributes and mode last compared
	rec    *recorder
	store  *storeWriter
	// pkgs checks a change made below a package manager against the
	// package databases (package.go), in its own goroutine; held are the
	// records waiting for its verdict (held.go). Both nil when
	// packages.verify is off.
	pkgs *verifier
	held *held

	// Beside the data path.
	readErr chan error   // the ring buffer reader's end
	loss    *lossTracker // what the kernel or the queue lost: which files to re-read
	self    *selfTester  // the startup self-test
	// included are paths watched because a sudoers or sshd_config file
	// includes them.
	included map[string]bool
	// tamper is the periodic tamper check's state (loop goroutine only).
	tamper tamperState
	// rechecks are files just reported created, to be read once more
	// (recheck.go; loop goroutine only).
	rechecks map[string]recheck

	// Counters read beside the pipeline (Stats), under mu.
	mu sync.Mutex
	// live and recovered count the change records written of each origin.
	live, recovered uint64
	// rt holds the reload and metrics state (runtime.go).
	rt runtimeStats
	// lim counts what was refused at a limit (limits.go).
	lim limitStats
	// ownSeq is the sequence the agent opened itself (closed by Run).
	ownSeq *state.Sequence
	// spoolDropped is each spool's drop count last reported (loop only).
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
		if !a.self.ok {
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
	seq, ownSeq, hostID, err := identity(opt)
	if err != nil {
		return nil, err
	}
	a, err := startWith(opt, seq, hostID)
	if err != nil {
		if ownSeq != nil {
			ownSeq.Close()
		}
		return nil, err
	}
	a.ownSeq = ownSeq
	return a, nil
}

func startWith(opt Options, seq *state.Sequence, hostID string) (*Agent, error) {
	cfg := opt.Config
	a := &Agent{
		opt: opt, cfg: cfg, spoolDropped: map[string]uint64{},
		states: map[string]consumer.State{}, meta: map[string]fileMeta{},
		queue: make(chan *sensor.Event, cfg.Agent.QueueSize),

		included: map[string]bool{},
		rt:       runtimeStats{started: time.Now()},
	}
	cons, err := consumer.NewAll(ConsumerOptions(cfg, opt.Key))
	if err != nil {
		return nil, err
	}
	a.cons = cons
	// The baseline store first: its lock is what keeps a second vigil on
	// the same state directory out, and that one must fail before it loads
	// anything into the kernel (a load takes seconds on a slow machine).
	st, err := state.Open(filepath.Join(cfg.Agent.StateDir, state.StoreFile), state.Options{})
	if err != nil {
		return nil, err
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
		st.Close()
		return nil, fmt.Errorf("starting sensor: %w", err)
	}
	a.sens = s
	// A package manager already running (an apt upgrade when vigil
	// starts): the kernel marks a tree at the manager's exec, which came
	// before the sensor. Its tree is marked from /proc, once.
	if marks, err := s.SeedLineage("/proc"); err != nil {
		opt.Log.Warn().Err(err).Msg("marking the package managers already running: their changes may be unmarked")
	} else if len(marks) > 0 {
		var roots []string
		for _, m := range marks {
			if !m.Script {
				roots = append(roots, fmt.Sprintf("%s[%d]", m.Proc.Comm, m.Proc.PID))
			}
		}
		opt.Log.Info().Strs("managers", roots).Int("processes", len(marks)).
			Msg("package managers already running: marked with their descendants")
	}
	a.rec = newRecorder(opt.Out, cfg.Agent.HostName, hostID, seq)
	// Container identity: the cgroup cache is seeded once from cgroupfs,
	// after the sensor is attached so that no cgroup created meanwhile is
	// missed, and kept by the kernel's cgroup records, which the reader
	// hands over before any file record that follows them.
	if cc, err := container.New(""); err != nil {
		opt.Log.Warn().Err(err).Msg("reading cgroupfs: records name no container until the kernel reports cgroups")
		a.rec.containers = &container.Cache{}
	} else {
		a.rec.containers = cc
	}
	s.OnCgroup(func(c *sensor.Cgroup) { a.rec.containers.Add(c.ID, c.Path) })
	a.rec.expect = expect.New(cfg.Expect, nil)
	for _, w := range cfg.Warnings {
		opt.Log.Warn().Str(logKeyConfig, w.Error()).Msg("configuration warning")
	}
	a.pkgs = newVerifier(cfg.Packages, opt.Log)
	if a.pkgs != nil {
		a.held = newHeld(cfg.Packages.Settle.Duration, maxHeld)
	}
	// The ring buffer reader runs from now on: nothing the kernel reports
	// while the rest starts up waits in the ring buffer.
	a.set = watch.New(s, cfg.Sensor.MaxDepth, expand.Infer)
	a.self = newSelfTester(cfg.Agent.StateDir, a.set, a.rec.selfTest, opt.Log)
	a.loss = newLossTracker(s)
	a.readErr = make(chan error, 1)
	go func() { a.readErr <- a.read() }()
	// Paths that cannot be watched (a full watch map, a bad glob match)
	// are one not-watched record, before agent-ready.
	a.notWatched("start", append(a.set.Add(cfg.Watch), a.set.Problems()...))
	// Compare with the baseline store: what changed while vigil was down is
	// reported before agent-ready (origin "startup"). The sensor is already
	// attached, so nothing after this point is missed.
	if err := a.startup(st); err != nil {
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
	a.self.run()
	a.store.flush()
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

// seen is one observation of a watched file: what changed since the last.
type seen struct {
	// changes are the consumer's semantic changes; problems its parse
	// problems.
	changes  []consumer.Change
	problems []consumer.Problem
	info     *consumer.FileInfo
	sum      string
	st       *syscall.Stat_t
	// attrs are the ACL, capability, flag, label and xattr changes since
	// the attributes last compared (nil: none, or nothing to compare with).
	attrs *attrs.Changes
	// target is a symlink's target (never followed).
	target string
	// goneMode is, for a file that is gone, its mode when last seen (0:
	// unknown): its file.type.
	goneMode uint32
	// link is set when a symlink at the path appeared, went or was
	// retargeted since the path was last seen live.
	link *linkChange
	// data is what was read of the file for its consumer (nil when not
	// kept: over maxRead, not a regular file): the package check hashes it
	// without a second read.
	data []byte
	// pkg is the package database's word on the new content (package.go);
	// nil when the writer is below no package manager or it was not checked.
	pkg *verdict
}

// fileMeta is what the agent last compared of a file besides its content:
// its attributes and its mode (type and permissions).
type fileMeta struct {
	attrs *attrs.Set
	mode  uint32
	// target is a symlink's target when seen live (targetKnown).
	target      string
	targetKnown bool
}

// linkChange is a symlink that appeared, went or points elsewhere since
// last seen (vigil.symlink).
type linkChange struct {
	old, new       string
	oldLink, isNew bool
}

// special reports whether a mode is of anything but a regular file.
func special(mode uint32) bool { return mode&syscall.S_IFMT != syscall.S_IFREG }

// observe reads a file and stores its consumer state and its attributes;
// it returns the semantic changes since the last observation, the
// attribute changes since the attributes last compared (at start from the
// baseline store, then live), and the parse problems.
//
// A file seen for the first time is a baseline (no changes), unless it was
// just created: then it is compared with an absent file, so that a new
// authorized_keys reports its keys.
//
// Something else than a regular file (a directory, a symlink, a FIFO, a
// device node or a socket in a watched tree) has no content: its stat and
// attributes are recorded. A watched regular file that became one keeps
// its last content state (the record says why nothing was compared).
func (a *Agent) observe(f *watch.File, created bool) seen {
	o := readFile(f.Path)
	in := o.in
	sn := seen{info: in.Info, sum: o.sum, st: o.st, data: in.Content}
	prevMeta, hadMeta := a.meta[f.Path]
	var curAttrs *attrs.Set
	if o.st != nil {
		curAttrs = readAttrs(f.Path, o.st, a.opt.Key)
		if hadMeta {
			sn.attrs = attrs.Diff(prevMeta.attrs, curAttrs, prevMeta.mode, o.st.Mode)
		}
		isLink := o.st.Mode&syscall.S_IFMT == syscall.S_IFLNK
		if isLink {
			sn.target, _ = os.Readlink(f.Path)
		}
		if hadMeta && prevMeta.targetKnown {
			wasLink := prevMeta.mode&syscall.S_IFMT == syscall.S_IFLNK
			if (wasLink || isLink) && (wasLink != isLink || prevMeta.target != sn.target) {
				sn.link = &linkChange{old: prevMeta.target, new: sn.target, oldLink: wasLink, isNew: isLink}
			}
		}
		m := fileMeta{attrs: curAttrs, mode: o.st.Mode, target: sn.target, targetKnown: true}
		if curAttrs == nil && hadMeta {
			m.attrs = prevMeta.attrs // unreadable now: compare with the last read next time
		}
		a.meta[f.Path] = m
	} else {
		delete(a.meta, f.Path)
	}
	c := a.cons[f.Kind]
	if c == nil {
		c = a.cons["hash"]
	}
	wasSpecial := hadMeta && special(prevMeta.mode)
	if o.st != nil && special(o.st.Mode) && (!hadMeta || wasSpecial || created) && o.st.Mode&syscall.S_IFMT != 0 {
		// A tree's directory, symlink, FIFO, device or socket: nothing to
		// parse; its stat and attributes are its state.
		if o.symlink && o.st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			// The path leads through a symlink: described, not read.
			sn.problems = []consumer.Problem{symlinkProblem}
			return sn
		}
		if empty, _, err := c.Parse(consumer.Input{Path: f.Path}); err == nil {
			a.states[f.Path] = empty
			a.persist(f, empty, "", o.st, curAttrs)
		}
		return sn
	}
	if o.oversize || o.symlink {
		// Not parsed: the previous state stays the one compared with
		// next time, and the record says why nothing was compared.
		p := symlinkProblem
		if o.oversize {
			a.countOversize()
			p = oversizeProblem(in.Info.Size)
		}
		sn.problems = []consumer.Problem{p}
		return sn
	}
	cur, problems, err := c.Parse(in)
	sn.problems = problems
	if err != nil {
		a.countParseError(f.Kind)
		a.opt.Log.Warn().Err(err).Str("file.path", f.Path).Msg("parsing")
		return sn
	}
	prev, seenBefore := a.states[f.Path]
	a.states[f.Path] = cur
	a.persist(f, cur, o.sum, o.st, curAttrs)
	a.followIncludes(f, cur)
	if !seenBefore && created {
		prev, _, err = c.Parse(consumer.Input{Path: f.Path})
		seenBefore = err == nil
	}
	if !seenBefore {
		return sn
	}
	sn.changes, err = c.Diff(prev, cur)
	if err != nil {
		a.opt.Log.Warn().Err(err).Str("file.path", f.Path).Msg("diffing")
	}
	return sn
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
	a.store.start()
	defer a.store.stop()
	var verdicts chan verdictMsg
	if a.held != nil {
		go a.pkgs.run(a.held.jobs, a.held.verdicts)
		verdicts = a.held.verdicts
	}
	var reloads chan reloadReq
	if a.opt.Handle != nil {
		reloads = a.opt.Handle.reqs
		defer a.opt.Handle.detach()
	}
	for {
		select {
		// The data path: each record in order, then the bursts whose
		// coalescing window closed, and the store's batch.
		case e := <-a.queue:
			a.loss.taken(e.WatchID)
			a.handle(co, e)
		case m := <-verdicts:
			a.verdict(m)
		case now := <-ticker.C:
			for _, b := range co.due(now) {
				a.emitBurst(b)
			}
			a.store.flush()
		// Beside it: loss recovery, liveness, tamper checks, reloads.
		case now := <-health.C:
			a.recheckCreated(co, now)
			a.checkLoss(co)
			a.checkSpools()
		case <-heartbeat.C:
			a.heartbeat(started)
		case <-tamper.C:
			a.checkTamper()
		case req := <-reloads:
			req.done <- a.reload(co, ticker)
		// The end: the reader stops once the sensor is closed; what was
		// read is still written.
		case <-ctx.Done():
			if a.opt.Handle != nil {
				a.opt.Handle.detach()
			}
			a.sens.Close()
			<-readErr
			a.drain(co)
			a.finishHeld()
			a.checkSpools()
			a.mu.Lock()
			live, recovered := a.live, a.recovered
			a.mu.Unlock()
			a.rec.stopped(live, recovered)
			return nil
		case err := <-readErr:
			a.drain(co)
			a.finishHeld()
			return err
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
			a.loss.other()
			continue
		}
		if e.WatchID == selfTestID {
			a.self.deliver(e)
			a.loss.other()
			continue
		}
		// The container is read while the writer runs: runc's state
		// directory names its container only until it exits.
		a.rec.containers.Resolve(e.Proc.CgroupID)
		// Counted before the loop can take it (catchUp relies on it).
		a.loss.read(e.WatchID)
		select {
		case a.queue <- e:
		default:
			a.loss.drop(e.WatchID)
		}
	}
}

func (a *Agent) drain(co *coalescer) {
	for {
		select {
		case e := <-a.queue:
			a.loss.taken(e.WatchID)
			a.handle(co, e)
		default:
			for _, b := range co.all() {
				a.emitBurst(b)
			}
			a.store.flush()
			return
		}
	}
}

func (a *Agent) handle(co *coalescer, e *sensor.Event) {
	if e.Ret != 0 {
		// A failed operation (the kprobe objects report them with their
		// error): nothing changed, nothing to report or follow.
		if a.opt.Log.GetLevel() <= zerolog.DebugLevel {
			a.opt.Log.Debug().Str("op", e.Op.String()).Int64("ret", e.Ret).Str("path", e.Path).
				Str("comm", e.Proc.Comm).Msg("failed operation dropped")
		}
		return
	}
	if e.Match == sensor.MatchMount {
		a.handleMount(co, e)
		return
	}
	ch, ok := a.set.Apply(e)
	if p := a.set.Problems(); len(p) > 0 {
		a.notWatched("follow", p) // a new file in a watched tree the kernel map has no room for
	}
	if a.opt.Log.GetLevel() <= zerolog.DebugLevel {
		a.opt.Log.Debug().Str("op", e.Op.String()).Str("match", e.Match.String()).Uint64("id", e.WatchID).
			Stringer("file", e.File).Stringer("file2", e.File2).Str("path", e.Path).Str("path2", e.Path2).
			Uint32("flags", e.Flags).Str("comm", e.Proc.Comm).Bool("kept", ok).Str("action", string(ch.Action)).
			Msg("kernel record")
	}
	if !ok {
		return
	}
	a.recheckSeen(ch)
	if ch.Action == watch.ActionModified {
		if b := co.add(ch, e); b != nil {
			a.emitBurst(b)
		}
		return
	}
	single := &burst{change: ch, events: []*sensor.Event{e}, last: e, count: 1}
	single.addActor(e)
	// Never held back: what was gathered for the file goes first. A rename
	// onto the path is the exception: those writes went to the inode it
	// replaced, whose content can no longer be read, and a record for
	// them would read the new file and give its changes to the old
	// writers. They are folded into the rename's record instead (their
	// writers count for ownership), which compares with the last state
	// read.
	into := e.Op == sensor.OpRename && !ch.Gone
	if b := co.flush(ch.File.Path); b != nil {
		if into {
			single.fold(b)
		} else {
			a.emitBurst(b)
		}
	}
	if ch.SourcePath != "" {
		// Moved within a tree (an editor's or a tool's temporary file
		// renamed to its final name): the writes still gathered under the
		// source name are writes to what now stands here, reported with
		// this record, not as a record for a name that no longer exists.
		if src := co.flush(ch.SourcePath); src != nil {
			single.fold(src)
		}
	}
	a.emit(ch, single)
}

// handleMount writes one record per watched path a mount or umount in
// vigil's mount namespace covers or uncovers (watch.Set.Mount): each is
// compared with its last state, so a file bind-mounted over a watched one
// shows what differs from the baseline.
func (a *Agent) handleMount(co *coalescer, e *sensor.Event) {
	chs := a.set.Mount(e)
	if p := a.set.Problems(); len(p) > 0 {
		a.notWatched("follow", p)
	}
	if a.opt.Log.GetLevel() <= zerolog.DebugLevel {
		source, fsType := e.Path2, e.FSType
		a.opt.Log.Debug().Str("op", e.Op.String()).Str("path", e.Path).Str("source", source).
			Str("fs_type", fsType).Uint32("mnt_ns", e.Proc.MntNS).Int("covers", len(chs)).Msg("mount record")
	}
	for _, ch := range chs {
		single := &burst{change: ch, events: []*sensor.Event{e}, last: e, count: 1}
		single.addActor(e)
		if b := co.flush(ch.File.Path); b != nil {
			a.emitBurst(b) // writes before the mount went to what it hides
		}
		a.emit(ch, single)
	}
}

func (a *Agent) emitBurst(b *burst) { a.emit(b.change, b) }

func (a *Agent) emit(ch watch.Change, b *burst) {
	f := ch.File
	var sn seen
	var job *verifyJob
	if ch.Gone {
		sn.goneMode = a.meta[f.Path].mode
		delete(a.states, f.Path)
		delete(a.meta, f.Path)
		a.persistAbsent(f)
	} else {
		if ch.SourcePath != "" {
			// The source name is gone: its state goes with it, and the
			// file is compared with what this name held before (nothing,
			// for a new name), so that the record for the name that
			// matters carries the changes, whatever the source's records
			// said.
			delete(a.states, ch.SourcePath)
			if m, ok := a.meta[ch.SourcePath]; ok {
				// The attributes moved with the inode.
				a.meta[f.Path] = m
				delete(a.meta, ch.SourcePath)
			}
			src := *f
			src.Path = ch.SourcePath
			a.persistAbsent(&src)
		}
		sn = a.observe(f, ch.Action == watch.ActionCreated || ch.SourcePath != "")
		if pe := markedActor(b); pe != nil && a.pkgs != nil && sn.info != nil && sn.sum != "" {
			// Checked against the package database off the record
			// stream: the record waits for its verdict, no other does.
			job = &verifyJob{mgr: pe.Proc.Package.MgrID, at: wallTimeOf(b.last.BootNS),
				c: content{path: f.Path, data: sn.data, sha256: sn.sum}}
		}
	}
	a.record(ch, b, &sn, job)
	if ch.Action == watch.ActionCreated && ch.SourcePath == "" && sn.st != nil && !special(sn.st.Mode) && sn.st.Size == 0 {
		a.recheckLater(f)
	}
}

// checkLoss turns records the kernel or the queue could not take into an
// events-lost record, then re-reads the files of just the entries that lost
// some, so that no change goes unreported (their actor is unknown: origin
// "recovered"). The kernel counts, per watch entry, the records it tried to
// emit; an entry whose count exceeds the records read for it lost records.
// A file with a record on its way (catchUp: read from the ring buffer and
// queued, not yet handled) or with a burst still gathering is left to that
// record, which compares it with the last state read: a change with a live
// record on its way is not also reported recovered.
func (a *Agent) checkLoss(co *coalescer) {
	l, ok := a.loss.collect()
	if !ok {
		return
	}
	if !l.files() {
		a.rec.lost(l, 0)
		return
	}
	a.catchUp(l.emitted)
	var recovered uint64
	for _, f := range a.set.Files() {
		if !l.concerns(f.Target) {
			continue
		}
		f := f
		if co.pending(f.Path) || a.loss.queuedFor(f.Target) {
			continue
		}
		if a.recoverGone(&f) {
			recovered++
			continue
		}
		sn := a.observe(&f, false)
		if len(sn.changes) > 0 || sn.attrs != nil {
			a.rec.recovered(&f, "modified", &sn)
			recovered++
		}
	}
	a.mu.Lock()
	a.recovered += recovered
	a.mu.Unlock()
	a.rec.lost(l, recovered)
}

// catchUpWait bounds how long a re-read waits for the ring buffer reader.
const catchUpWait = 250 * time.Millisecond

// catchUp waits, at most catchUpWait, until the ring buffer reader has
// queued the first n records the kernel emitted, before files are re-read:
// a file with a record in the queue is then left to it (queuedFor), so a
// change the kernel did see is reported live with its actor, not also
// recovered without one. The queue itself is not handled here: under a
// storm that would hold the loss's record back behind it.
func (a *Agent) catchUp(n uint64) {
	deadline := time.Now().Add(catchUpWait)
	for !a.loss.caughtUp(n) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
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
	delete(a.meta, f.Path)
	a.persistAbsent(f)
	a.set.Gone(f.Path)
	a.rec.recovered(f, "deleted", &seen{})
	return true
}

// String is for logs.
func (a *Agent) String() string {
	return fmt.Sprintf("agent(%s)", strings.Join(a.cfg.Sources, ","))
}

// followIncludes watches what a sudoers or sshd_config file includes
// (#include, @includedir, Include), so a rule slipped into an included file
// is seen like one in the main file. New files get their baseline at once.
func (a *Agent) followIncludes(f *watch.File, st consumer.State) {
	if k := consumer.Kind(f.Kind); k != consumer.KindSudoers && k != consumer.KindSSHDConfig {
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

// persist records a file's observed state in the baseline store.
func (a *Agent) persist(f *watch.File, cur consumer.State, sum string, st *syscall.Stat_t, set *attrs.Set) {
	if a.store != nil {
		a.store.observed(f, cur, sum, st, set)
	}
}

// persistAbsent records a file as absent in the baseline store.
func (a *Agent) persistAbsent(f *watch.File) {
	c := a.cons[f.Kind]
	if c == nil || a.store == nil {
		return
	}
	st, _, err := c.Parse(consumer.Input{Path: f.Path})
	if err != nil {
		return
	}
	a.persist(f, st, "", nil, nil)
}

// startup takes the baseline store, reports what changed while vigil was
// not running, and loads the consumers' states. It closes st on error.
func (a *Agent) startup(st *state.Store) error {
	a.store = newStoreWriter(st, a.opt.Log, a.opt.Key)
	res, err := scan.Run(context.Background(), a.cfg.Watch, a.cfg.Sensor.MaxDepth, st, a.cons,
		scan.ScanOptions{Update: true, Key: a.opt.Key})
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
	if len(res.Added) > 0 {
		a.rec.watchAdded(res.Added)
	}
	for _, f := range files {
		f := f
		if e, ok, err := st.Get(f.Path); err == nil && ok && !e.Absent && e.Kind == f.Kind {
			a.states[f.Path] = e.State
			// The attributes just compared with the baseline (scan.Run
			// updated it): live changes are diffed from these.
			a.meta[f.Path] = fileMeta{attrs: e.Attrs, mode: e.Mode, target: e.Target, targetKnown: true}
			a.followIncludes(&f, e.State)
			continue
		}
		a.observe(&f, false)
	}
	return nil
}

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

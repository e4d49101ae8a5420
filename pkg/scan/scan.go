package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/state"
)

// Actions of a Finding.
const (
	// ActionCreated: the file exists and did not (or was not recorded).
	ActionCreated = "created"
	// ActionModified: same inode, different content (or size, or file type).
	ActionModified = "modified"
	// ActionDeleted: the file is gone.
	ActionDeleted = "deleted"
	// ActionAttributesChanged: same inode and content, different mode,
	// owner, group or mtime.
	ActionAttributesChanged = "attributes-changed"
	// ActionReplaced: the path now names another inode (a rename over it,
	// delete and re-create), or something that is no longer a regular file.
	ActionReplaced = "replaced"
)

// Meta keys of the store.
const (
	// MetaBaselineNS is when the baseline was completed (ns since the epoch).
	MetaBaselineNS = "baseline_ns"
	// metaBaselineRunning marks a baseline under way: a store that holds it
	// was interrupted during its first scan and is baselined again.
	metaBaselineRunning = "baseline_running"
)

// DefaultBatch is how many records one store transaction writes.
const DefaultBatch = 4096

// ScanOptions tune Scan.
type ScanOptions struct {
	// Update writes the new observations to the store (and removes the
	// records of paths no longer watched). Without it the store is only
	// read, except on the first run (an empty store), which is always a
	// baseline.
	Update bool
	// Progress, when set, gets a progress bar redrawn with '\r'. Pass a
	// terminal only; nil is silent.
	Progress io.Writer
	// Workers read and hash files in parallel (runtime.NumCPU() when 0).
	Workers int
	// Rules are the rules the targets came from (Run sets them). With them
	// a stored path that is not a target but that a rule covers (a file
	// deleted from a watched directory, a glob's match gone) is reported
	// deleted; without them, and for paths no rule covers, such records
	// are pruned silently.
	Rules []config.Watch
	// MaxDepth is the recursion bound the targets were expanded with.
	MaxDepth int
	// Batch is the number of records per store transaction (DefaultBatch when 0).
	Batch int
}

// Attrs are a file's attributes as recorded.
type Attrs struct {
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	Mode    uint32 `json:"mode"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	MtimeNS int64  `json:"mtime_ns"`
	CtimeNS int64  `json:"ctime_ns"`
	SHA256  string `json:"sha256,omitempty"`
}

func attrsOf(e *state.Entry) *Attrs {
	if e == nil || e.Absent {
		return nil
	}
	return &Attrs{Dev: e.Dev, Ino: e.Ino, Size: e.Size, Mode: e.Mode, UID: e.UID, GID: e.GID,
		MtimeNS: e.MtimeNS, CtimeNS: e.CtimeNS, SHA256: e.SHA256}
}

// Finding is one changed path.
type Finding struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Action is one of the Action* constants.
	Action string `json:"action"`
	// Fields name what differs between Old and New: "inode", "dev",
	// "type", "content", "size", "mode", "uid", "gid", "mtime" (in this order).
	Fields []string `json:"fields,omitempty"`
	// Changes are the consumer's semantic changes (stored state vs new).
	Changes []consumer.Change `json:"changes,omitempty"`
	// Problems are the consumer's complaints about the new content.
	Problems []consumer.Problem `json:"problems,omitempty"`
	// Old and New are the recorded and the observed attributes (nil when absent).
	Old *Attrs `json:"old,omitempty"`
	New *Attrs `json:"new,omitempty"`
}

// Result is what a scan found.
type Result struct {
	// Findings, sorted by path.
	Findings []Finding
	// Baseline is set when the store was empty (or its first scan was
	// interrupted): everything was recorded and nothing reported.
	Baseline bool
	// Files is the number of targets, Absent how many of them do not exist.
	Files, Absent int
	// Written is the number of records written, Pruned the number of
	// records of paths no longer watched (removed with Update or Baseline).
	Written, Pruned int
	// Errors are per-file problems (unreadable files, consumer errors):
	// the scan went on, and their records were left as they were.
	Errors []error
	// Duration is the scan's wall time.
	Duration time.Duration
}

// Run expands rules (see Expand) and scans the result, telling deleted
// files from unwatched paths with the rules. Expansion problems are
// returned in Result.Errors.
func Run(ctx context.Context, rules []config.Watch, maxDepth int, store *state.Store, cons map[string]consumer.Consumer, opts ScanOptions) (Result, error) {
	targets, errs := Expand(rules, maxDepth)
	opts.Rules, opts.MaxDepth = rules, maxDepth
	res, err := Scan(ctx, targets, store, cons, opts)
	res.Errors = append(errs, res.Errors...)
	return res, err
}

// item is one target's observation, ready to compare.
type item struct {
	e        state.Entry
	problems []consumer.Problem
	err      error // unreadable: nothing to compare or record
	// oversize: too large to parse; State is the last one parsed.
	oversize bool
}

type scanner struct {
	store  *state.Store
	cons   map[string]consumer.Consumer
	opts   ScanOptions
	write  bool
	res    Result
	absent map[string]consumer.State // absent state by kind
}

// Scan reads every target, compares it with its record and reports what
// changed, in path order. Files are read and parsed by a pool of workers;
// records are read and written in batches (one transaction each), and
// records of paths that are no longer targets are pruned (see
// ScanOptions.Rules for the ones reported deleted instead). Without
// opts.Update the store is not modified, unless it is empty: the first
// scan records a baseline and reports nothing (Result.Baseline).
//
// Changes of ctime alone, or of st_dev alone (device numbers may change
// across reboots), are recorded with Update but not reported.
func Scan(ctx context.Context, targets []Target, store *state.Store, cons map[string]consumer.Consumer, opts ScanOptions) (Result, error) {
	start := time.Now()
	s := &scanner{store: store, cons: cons, opts: opts, absent: map[string]consumer.State{}}
	if s.opts.Batch <= 0 {
		s.opts.Batch = DefaultBatch
	}
	workers := s.opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}

	ts := append([]Target(nil), targets...)
	sort.SliceStable(ts, func(i, j int) bool { return ts[i].Path < ts[j].Path })
	ts = dedupe(ts)
	for _, t := range ts {
		if s.cons[t.Kind] == nil {
			return s.res, fmt.Errorf("scan: no consumer for kind %q (%s)", t.Kind, t.Path)
		}
	}
	s.res.Files = len(ts)

	n, err := store.Len()
	if err != nil {
		return s.res, err
	}
	running, err := store.Meta(metaBaselineRunning)
	if err != nil {
		return s.res, err
	}
	s.res.Baseline = n == 0 || running != nil
	s.write = opts.Update || s.res.Baseline
	if s.res.Baseline {
		if err := store.SetMeta(metaBaselineRunning, nowNS()); err != nil {
			return s.res, fmt.Errorf("scan: starting the baseline: %w", err)
		}
	}

	if err := s.targets(ctx, ts, workers); err != nil {
		s.res.Duration = time.Since(start)
		return s.res, err
	}
	if err := s.stale(ts); err != nil {
		s.res.Duration = time.Since(start)
		return s.res, err
	}
	if s.res.Baseline {
		if err := store.SetMeta(MetaBaselineNS, nowNS()); err != nil {
			return s.res, err
		}
		if err := store.DeleteMeta(metaBaselineRunning); err != nil {
			return s.res, err
		}
	}
	sort.SliceStable(s.res.Findings, func(i, j int) bool { return s.res.Findings[i].Path < s.res.Findings[j].Path })
	s.res.Duration = time.Since(start)
	return s.res, nil
}

func nowNS() []byte { return []byte(strconv.FormatInt(time.Now().UnixNano(), 10)) }

func dedupe(ts []Target) []Target {
	out := ts[:0]
	for i, t := range ts {
		if i > 0 && t.Path == ts[i-1].Path {
			continue
		}
		out = append(out, t)
	}
	return out
}

// targets reads the targets with a pool of workers and compares them in
// path order, batch by batch.
func (s *scanner) targets(ctx context.Context, ts []Target, workers int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// At most window observations are read ahead of the comparison: the
	// ones in flight are always a run [next, next+window) of indexes, so
	// they fit a ring.
	window := 2 * s.opts.Batch
	results := make([]item, window)
	arrived := make([]bool, window)
	jobs := make(chan int, workers*4)
	ready := make(chan int, window)
	slots := make(chan struct{}, window)
	go func() {
		defer close(jobs)
		for i := range ts {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	now := time.Now().UnixNano()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newReader()
			for i := range jobs {
				results[i%window] = observe(r, &ts[i], s.cons[ts[i].Kind], now)
				ready <- i
			}
		}()
	}
	go func() { wg.Wait(); close(ready) }()
	defer func() {
		cancel()
		for range ready { // let the workers finish
		}
	}()

	bar := newProgress(s.opts.Progress, len(ts))
	next := 0
	chunk := make([]item, 0, s.opts.Batch)
	for i := range ready {
		arrived[i%window] = true
		for next < len(ts) && arrived[next%window] {
			chunk = append(chunk, results[next%window])
			results[next%window], arrived[next%window] = item{}, false
			next++
			<-slots
			bar.add(1)
			if len(chunk) == cap(chunk) {
				if err := s.flush(chunk); err != nil {
					return err
				}
				chunk = chunk[:0]
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if next < len(ts) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return errors.New("scan: workers stopped early")
	}
	if err := s.flush(chunk); err != nil {
		return err
	}
	bar.finish()
	return nil
}

// observe reads and parses one target.
func observe(r *reader, t *Target, c consumer.Consumer, now int64) (it item) {
	defer func() {
		if p := recover(); p != nil {
			it = item{err: fmt.Errorf("%s: %s consumer panicked: %v", t.Path, t.Kind, p)}
		}
	}()
	var o observation
	if err := r.read(t.Path, &o); err != nil {
		return item{err: err}
	}
	it.e = state.Entry{Path: t.Path, Kind: t.Kind, UpdatedNS: now}
	if o.absent {
		it.e.Absent = true
		st, _, err := c.Parse(consumer.Input{Path: t.Path})
		if err != nil {
			return item{err: fmt.Errorf("%s: %w", t.Path, err)}
		}
		it.e.State = st
		return it
	}
	info := consumer.FileInfo{Size: o.st.Size, Mode: o.st.Mode, UID: o.st.Uid, GID: o.st.Gid,
		MtimeNS: o.st.Mtim.Nano(), CtimeNS: o.st.Ctim.Nano()}
	it.e.Dev, it.e.Ino = o.st.Dev, o.st.Ino
	it.e.Size, it.e.Mode, it.e.UID, it.e.GID = info.Size, info.Mode, info.UID, info.GID
	it.e.MtimeNS, it.e.CtimeNS = info.MtimeNS, info.CtimeNS
	if !o.regular {
		return it // attributes only
	}
	it.e.SHA256 = o.sha256
	if o.oversize {
		// The first MaxContent bytes are not the file: parse nothing, say
		// so, and keep the last state parsed (flush) for the next compare.
		it.oversize = true
		it.problems = []consumer.Problem{{Msg: fmt.Sprintf("file of %d bytes is over the %d-byte parse limit: "+
			"content not compared (the sha256 covers all of it)", o.st.Size, MaxContent)}}
		return it
	}
	content := o.content
	if content == nil {
		content = []byte{}
	}
	st, probs, err := c.Parse(consumer.Input{Path: t.Path, Content: content, Info: &info})
	if err != nil {
		return item{err: fmt.Errorf("%s: %w", t.Path, err)}
	}
	it.e.State, it.problems = st, probs
	return it
}

// flush compares a batch with its records and writes what changed.
func (s *scanner) flush(chunk []item) error {
	if len(chunk) == 0 {
		return nil
	}
	paths := make([]string, 0, len(chunk))
	for i := range chunk {
		if chunk[i].err == nil {
			paths = append(paths, chunk[i].e.Path)
		}
	}
	olds, err := s.store.GetMany(paths)
	if err != nil {
		return err
	}
	var writes []state.Entry
	for i := range chunk {
		it := &chunk[i]
		if it.err != nil {
			s.res.Errors = append(s.res.Errors, it.err)
			continue
		}
		if it.e.Absent {
			s.res.Absent++
		}
		old, had := olds[it.e.Path]
		if it.oversize && had && old.Kind == it.e.Kind && !old.Absent {
			it.e.State = old.State
		}
		var op *state.Entry
		if had {
			op = &old
		}
		if !s.res.Baseline {
			if f := s.finding(op, &it.e, it.problems); f != nil {
				s.res.Findings = append(s.res.Findings, *f)
			}
		}
		if s.write && (!had || !sameEntry(&old, &it.e)) {
			writes = append(writes, it.e)
		}
	}
	if len(writes) > 0 {
		if err := s.store.PutMany(writes); err != nil {
			return err
		}
		s.res.Written += len(writes)
	}
	return nil
}

// sameEntry compares two records but for when they were written.
func sameEntry(a, b *state.Entry) bool {
	return a.Path == b.Path && a.Kind == b.Kind && a.Dev == b.Dev && a.Ino == b.Ino && a.Size == b.Size &&
		a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.MtimeNS == b.MtimeNS && a.CtimeNS == b.CtimeNS &&
		a.SHA256 == b.SHA256 && a.Absent == b.Absent && bytes.Equal(a.State, b.State)
}

// classify says what happened between a record (nil: none) and an
// observation, and which attributes differ.
func classify(old, cur *state.Entry) (action string, fields []string) {
	switch {
	case old == nil || old.Absent:
		if cur.Absent {
			return "", nil
		}
		return ActionCreated, nil
	case cur.Absent:
		return ActionDeleted, nil
	}
	diff := func(cond bool, name string) bool {
		if cond {
			fields = append(fields, name)
		}
		return cond
	}
	inode := diff(old.Ino != cur.Ino, "inode")
	diff(old.Dev != cur.Dev, "dev")
	typ := diff(old.Mode&unix.S_IFMT != cur.Mode&unix.S_IFMT, "type")
	content := diff(old.SHA256 != cur.SHA256, "content")
	size := diff(old.Size != cur.Size, "size")
	attrs := diff(old.Mode&0o7777 != cur.Mode&0o7777, "mode")
	attrs = diff(old.UID != cur.UID, "uid") || attrs
	attrs = diff(old.GID != cur.GID, "gid") || attrs
	attrs = diff(old.MtimeNS != cur.MtimeNS, "mtime") || attrs
	switch {
	case inode:
		return ActionReplaced, fields
	case typ || content || size:
		return ActionModified, fields
	case attrs:
		return ActionAttributesChanged, fields
	}
	return "", nil
}

// finding builds the finding for a record and an observation, if any.
func (s *scanner) finding(old, cur *state.Entry, problems []consumer.Problem) *Finding {
	action, fields := classify(old, cur)
	if action == "" {
		return nil
	}
	f := &Finding{Path: cur.Path, Kind: cur.Kind, Action: action, Fields: fields,
		Old: attrsOf(old), New: attrsOf(cur), Problems: problems}
	var prev consumer.State
	switch action {
	case ActionDeleted:
		return f // the consumer has nothing semantic to add
	case ActionCreated:
		// Diff from the absent file: every user, rule, line... added.
		if old != nil && old.Kind == cur.Kind && len(old.State) > 0 {
			prev = old.State
		} else {
			prev = s.absentState(cur.Kind, cur.Path)
		}
	default:
		if old.Kind == cur.Kind {
			prev = old.State
		}
	}
	if len(prev) == 0 || len(cur.State) == 0 {
		return f
	}
	changes, err := s.cons[cur.Kind].Diff(prev, cur.State)
	if err != nil {
		s.res.Errors = append(s.res.Errors, fmt.Errorf("%s: %w", cur.Path, err))
	}
	f.Changes = changes
	return f
}

func (s *scanner) absentState(kind, path string) consumer.State {
	if st, ok := s.absent[kind]; ok {
		return st
	}
	st, _, err := s.cons[kind].Parse(consumer.Input{Path: path})
	if err != nil {
		st = nil
	}
	s.absent[kind] = st
	return st
}

// stale handles the records of paths that are not targets: a file gone
// from a watched place is reported deleted (or replaced, when something
// that is not a regular file took its name); a path no rule covers any
// more is pruned. With Update (or a baseline) their records go.
func (s *scanner) stale(ts []Target) error {
	stored, err := s.store.Paths()
	if err != nil {
		return err
	}
	var gone []string
	j := 0
	for _, p := range stored {
		for j < len(ts) && ts[j].Path < p {
			j++
		}
		if j < len(ts) && ts[j].Path == p {
			continue
		}
		gone = append(gone, p)
	}
	if len(gone) == 0 {
		return nil
	}
	var sc *expand.Scope
	if len(s.opts.Rules) > 0 && !s.res.Baseline {
		sc = expand.NewScope(s.opts.Rules, s.opts.MaxDepth)
	}
	var remove, covered []string
	for _, p := range gone {
		if sc == nil || !sc.Covers(p) {
			remove = append(remove, p)
			s.res.Pruned++
		} else {
			covered = append(covered, p)
		}
	}
	if len(covered) > 0 {
		olds, err := s.store.GetMany(covered)
		if err != nil {
			return err
		}
		for _, p := range covered {
			old := olds[p]
			var st unix.Stat_t
			err := unix.Lstat(p, &st)
			switch {
			case err == unix.ENOENT || err == unix.ENOTDIR:
				if !old.Absent {
					s.res.Findings = append(s.res.Findings, Finding{Path: p, Kind: old.Kind, Action: ActionDeleted, Old: attrsOf(&old)})
				}
				remove = append(remove, p)
			case err != nil:
				s.res.Errors = append(s.res.Errors, fmt.Errorf("%s: %w", p, err))
			case st.Mode&unix.S_IFMT != unix.S_IFREG:
				cur := state.Entry{Path: p, Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mode: st.Mode, UID: st.Uid, GID: st.Gid,
					MtimeNS: st.Mtim.Nano(), CtimeNS: st.Ctim.Nano()}
				_, fields := classify(&old, &cur)
				s.res.Findings = append(s.res.Findings, Finding{Path: p, Kind: old.Kind, Action: ActionReplaced, Fields: fields,
					Old: attrsOf(&old), New: attrsOf(&cur)})
				remove = append(remove, p)
			default:
				// A regular file the expansion did not list (created
				// since, or under an unreadable directory): leave its
				// record for the next scan.
			}
		}
	}
	if s.write && len(remove) > 0 {
		return s.store.DeleteMany(remove)
	}
	return nil
}

package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/state"
)

// Actions of a Finding.
const (
	// ActionCreated: the file exists and did not (or was not recorded).
	ActionCreated = "created"
	// ActionModified: same inode and type, different content (or size, a
	// symlink's target, a device node's number).
	ActionModified = "modified"
	// ActionDeleted: the file is gone.
	ActionDeleted = "deleted"
	// ActionAttributesChanged: same inode and content, different mode,
	// owner, group or mtime.
	ActionAttributesChanged = "attributes-changed"
	// ActionReplaced: the path now names another inode (a rename over it,
	// delete and re-create), or something that is no longer a regular file.
	ActionReplaced = "replaced"
	// ActionShadowed: the path is now seen through a mount made at or
	// below the mount it was seen through (a bind mount over a watched
	// file, an overlay over a watched directory): Finding.Mount.
	ActionShadowed = "shadowed"
	// ActionUncovered: the mount the path was seen through is gone; the
	// path is seen through the mount below it again.
	ActionUncovered = "uncovered"
	// ActionRemounted: the path is seen through another mount at the same
	// mountpoint (another source, filesystem type or root).
	ActionRemounted = "remounted"
)

// Meta keys of the store.
const (
	// MetaBaselineNS is when the baseline was completed (ns since the epoch).
	MetaBaselineNS = "baseline_ns"
	// metaBaselineRunning marks a baseline under way: a store that holds it
	// was interrupted during its first scan and is baselined again.
	metaBaselineRunning = "baseline_running"
	// MetaRules holds the rules (and depth) the records were last written
	// under (SaveRules): a path with no record that those rules did not
	// cover was not watched then, and joins the watch set quietly.
	MetaRules = "rules"
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
	// Key is the host key: the values of xattrs other than ACLs,
	// capabilities and labels are recorded as keyed fingerprints with it
	// (without it, only their presence is recorded).
	Key []byte
}

// Attrs are a file's attributes as recorded.
type Attrs struct {
	// Type is the file's type: FileType of Mode.
	Type    string `json:"type"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Size    int64  `json:"size"`
	Mode    uint32 `json:"mode"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
	MtimeNS int64  `json:"mtime_ns"`
	CtimeNS int64  `json:"ctime_ns"`
	SHA256  string `json:"sha256,omitempty"`
	// Target is a symlink's target (readlink; never followed).
	Target string `json:"target,omitempty"`
	// Major and Minor are a device node's numbers (nil for other types).
	Major *uint32 `json:"major,omitempty"`
	Minor *uint32 `json:"minor,omitempty"`
}

// File types of Attrs.Type.
const (
	TypeFile        = "file"
	TypeDir         = "dir"
	TypeSymlink     = "symlink"
	TypeFIFO        = "fifo"
	TypeSocket      = "socket"
	TypeCharDevice  = "char-device"
	TypeBlockDevice = "block-device"
)

// FileType names the type in a st_mode: file, dir, symlink, fifo, socket,
// char-device or block-device ("" for none of these).
func FileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return TypeFile
	case unix.S_IFDIR:
		return TypeDir
	case unix.S_IFLNK:
		return TypeSymlink
	case unix.S_IFIFO:
		return TypeFIFO
	case unix.S_IFSOCK:
		return TypeSocket
	case unix.S_IFCHR:
		return TypeCharDevice
	case unix.S_IFBLK:
		return TypeBlockDevice
	}
	return ""
}

func isDevice(mode uint32) bool {
	t := mode & unix.S_IFMT
	return t == unix.S_IFCHR || t == unix.S_IFBLK
}

func attrsOf(e *state.Entry) *Attrs {
	if e == nil || e.Absent {
		return nil
	}
	a := &Attrs{Type: FileType(e.Mode), Dev: e.Dev, Ino: e.Ino, Size: e.Size, Mode: e.Mode, UID: e.UID, GID: e.GID,
		MtimeNS: e.MtimeNS, CtimeNS: e.CtimeNS, SHA256: e.SHA256, Target: e.Target}
	if isDevice(e.Mode) {
		maj, min := unix.Major(e.Rdev), unix.Minor(e.Rdev)
		a.Major, a.Minor = &maj, &min
	}
	return a
}

// Finding is one changed path.
type Finding struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Action is one of the Action* constants.
	Action string `json:"action"`
	// Fields name what differs between Old and New: "inode", "dev",
	// "type", "content", "target", "rdev", "size", "mode", "uid", "gid",
	// "mtime" (in this order), then the attribute parts (attrs.Changes
	// Fields) and "mount".
	Fields []string `json:"fields,omitempty"`
	// Changes are the consumer's semantic changes (stored state vs new).
	Changes []consumer.Change `json:"changes,omitempty"`
	// Attributes are the changes of ACLs, file capability, inode flags,
	// labels and other xattrs (their names are in Fields too).
	Attributes *attrs.Changes `json:"attributes,omitempty"`
	// Mount is the change of the mount the path is seen through, for
	// the shadowed, uncovered and remounted actions.
	Mount *MountChange `json:"mount,omitempty"`
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
	// Added are the existing paths that no rule of the previous scan
	// (MetaRules) covered: newly watched, not new. They are recorded
	// (with Update) and reported here, not as created; sorted.
	Added []string
	// Upgraded counts the entries a store written by an older vigil never
	// kept (a tree's directories, symlinks, FIFOs, sockets and device
	// nodes, before schema 3): recorded quietly (with Update), not
	// reported created.
	Upgraded int
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
	store *state.Store
	cons  map[string]consumer.Consumer
	opts  ScanOptions
	write bool
	res   Result
	// prev is what the rules of the previous scan covered (nil: unknown,
	// a store written before MetaRules, or a baseline).
	prev   *expand.Scope
	absent map[string]consumer.State // absent state by kind
	// upgrading: the store predates records of non-regular entries
	// (state.MetaUpgradeEntries): those without a record are recorded
	// quietly.
	upgrading bool
	// mounts compares the mounts the targets are seen through.
	mounts *mountScan
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
	if !s.res.Baseline {
		if s.prev, err = loadRules(store); err != nil {
			return s.res, err
		}
	}
	if s.res.Baseline {
		if err := store.SetMeta(metaBaselineRunning, nowNS()); err != nil {
			return s.res, fmt.Errorf("scan: starting the baseline: %w", err)
		}
	} else {
		up, err := store.Meta(state.MetaUpgradeEntries)
		if err != nil {
			return s.res, err
		}
		// A writable open marked an older store; a read-only one left it
		// as it was.
		s.upgrading = up != nil || (store.ReadOnly() && store.Schema() < 3)
	}
	if s.mounts, err = newMountScan(store, s.res.Baseline); err != nil {
		// Compared and recorded without mounts; the recorded ones stay.
		s.res.Errors = append(s.res.Errors, err)
	}

	if err := s.targets(ctx, ts, workers); err != nil {
		s.res.Duration = time.Since(start)
		return s.res, err
	}
	if err := s.stale(ts); err != nil {
		s.res.Duration = time.Since(start)
		return s.res, err
	}
	if s.write && opts.Rules != nil {
		if err := SaveRules(store, opts.Rules, opts.MaxDepth); err != nil {
			return s.res, err
		}
	}
	if s.write {
		if err := s.mounts.save(store); err != nil {
			return s.res, err
		}
		if s.upgrading {
			if err := store.DeleteMeta(state.MetaUpgradeEntries); err != nil {
				return s.res, err
			}
		}
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

// savedRules is the MetaRules record.
type savedRules struct {
	MaxDepth int            `json:"max_depth"`
	Rules    []config.Watch `json:"rules"`
}

// SaveRules records the rules the store's records are now kept under, so
// that the next scan tells a newly watched file from a new one.
func SaveRules(store *state.Store, rules []config.Watch, maxDepth int) error {
	b, err := json.Marshal(savedRules{MaxDepth: maxDepth, Rules: rules})
	if err != nil {
		return err
	}
	if err := store.SetMeta(MetaRules, b); err != nil {
		return fmt.Errorf("scan: recording the rules: %w", err)
	}
	return nil
}

// loadRules is the scope of the rules SaveRules recorded (nil: none).
func loadRules(store *state.Store) (*expand.Scope, error) {
	b, err := store.Meta(MetaRules)
	if err != nil || b == nil {
		return nil, err
	}
	var r savedRules
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("scan: the recorded rules: %w", err)
	}
	return expand.NewScope(r.Rules, r.MaxDepth), nil
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
			r := newReader(s.opts.Key)
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
	it.e.Attrs = o.attrs
	it.e.Target = o.target
	if isDevice(o.st.Mode) {
		it.e.Rdev = o.st.Rdev
	}
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
		mc := s.mounts.change(it.e.Path)
		switch {
		case !had && !it.e.Absent && s.prev != nil && !s.prev.Covers(it.e.Path):
			// Newly watched: an existing file the previous rules did not
			// name is given its baseline, not reported created.
			s.res.Added = append(s.res.Added, it.e.Path)
		case !had && !it.e.Absent && s.upgrading && it.e.Mode&unix.S_IFMT != unix.S_IFREG && mc == nil:
			// Never kept by the vigil that wrote the store: recorded now.
			s.res.Upgraded++
		case !s.res.Baseline:
			f := s.finding(op, &it.e, it.problems)
			if mc != nil {
				if f == nil {
					f = &Finding{Path: it.e.Path, Kind: it.e.Kind, Old: attrsOf(op), New: attrsOf(&it.e), Problems: it.problems}
				}
				f.Action, f.Mount = mc.Action, mc
				f.Fields = append(f.Fields, "mount")
			}
			if f != nil {
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
		a.SHA256 == b.SHA256 && a.Absent == b.Absent && bytes.Equal(a.State, b.State) && reflect.DeepEqual(a.Attrs, b.Attrs)
}

// classify says what happened between a record (nil: none) and an
// observation, which attributes differ, and how the ACLs, capability,
// flags, labels and xattrs changed (nil: they did not, or were never
// recorded).
func classify(old, cur *state.Entry) (action string, fields []string, ac *attrs.Changes) {
	switch {
	case old == nil || old.Absent:
		if cur.Absent {
			return "", nil, nil
		}
		return ActionCreated, nil, nil
	case cur.Absent:
		return ActionDeleted, nil, nil
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
	content = diff(old.Target != cur.Target, "target") || content
	content = diff(isDevice(old.Mode) && isDevice(cur.Mode) && old.Rdev != cur.Rdev, "rdev") || content
	// A directory's size and mtime change with every entry added or
	// removed, and each entry has its own record; a symlink's size is its
	// target's length.
	dir := old.Mode&unix.S_IFMT == unix.S_IFDIR && cur.Mode&unix.S_IFMT == unix.S_IFDIR
	link := old.Mode&unix.S_IFMT == unix.S_IFLNK && cur.Mode&unix.S_IFMT == unix.S_IFLNK
	size := diff(old.Size != cur.Size && !dir && !link, "size")
	attrs := diff(old.Mode&0o7777 != cur.Mode&0o7777, "mode")
	attrs = diff(old.UID != cur.UID, "uid") || attrs
	attrs = diff(old.GID != cur.GID, "gid") || attrs
	attrs = diff(old.MtimeNS != cur.MtimeNS && !dir, "mtime") || attrs
	ac = attrsDiff(old, cur)
	if ac != nil {
		fields = append(fields, ac.Fields()...)
		attrs = true
	}
	switch {
	case inode || typ:
		// Another file (a freed inode number can come back at once, as
		// another type).
		return ActionReplaced, fields, ac
	case content || size:
		return ActionModified, fields, ac
	case attrs:
		return ActionAttributesChanged, fields, ac
	}
	return "", nil, nil
}

// attrsDiff compares the recorded and observed extended attributes.
func attrsDiff(old, cur *state.Entry) *attrs.Changes {
	return attrs.Diff(old.Attrs, cur.Attrs, old.Mode, cur.Mode)
}

// finding builds the finding for a record and an observation, if any.
func (s *scanner) finding(old, cur *state.Entry, problems []consumer.Problem) *Finding {
	action, fields, ac := classify(old, cur)
	if action == "" {
		return nil
	}
	f := &Finding{Path: cur.Path, Kind: cur.Kind, Action: action, Fields: fields, Attributes: ac,
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
// from a watched place is reported deleted (so is one whose directory is
// now a symlink or another non-directory: the tree no longer reaches it,
// and the entry that took the directory's name has its own finding); a
// path no rule covers any more is pruned. With Update (or a baseline)
// their records go.
// behindNonDir reports whether a directory above p is a target that is
// not a directory (a symlink that took a directory's name).
func behindNonDir(p string, types map[string]fs.FileMode) bool {
	for d := filepath.Dir(p); d != p && d != "/" && d != "."; p, d = d, filepath.Dir(d) {
		if typ, ok := types[d]; ok {
			return !typ.IsDir()
		}
	}
	return false
}

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
		types := make(map[string]fs.FileMode, len(ts))
		for _, t := range ts {
			types[t.Path] = t.Type
		}
		for _, p := range covered {
			old := olds[p]
			var st unix.Stat_t
			err := unix.Lstat(p, &st)
			switch {
			case err == unix.ENOENT || err == unix.ENOTDIR || behindNonDir(p, types):
				if !old.Absent {
					s.res.Findings = append(s.res.Findings, Finding{Path: p, Kind: old.Kind, Action: ActionDeleted, Old: attrsOf(&old)})
				}
				remove = append(remove, p)
			case err != nil:
				s.res.Errors = append(s.res.Errors, fmt.Errorf("%s: %w", p, err))
			default:
				// A file the expansion did not list (created since, or
				// under an unreadable directory): leave its record for
				// the next scan.
			}
		}
	}
	if s.write && len(remove) > 0 {
		return s.store.DeleteMany(remove)
	}
	return nil
}

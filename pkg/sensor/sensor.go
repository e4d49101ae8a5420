// Package sensor is vigil's kernel side as the rest of vigil sees it: it
// loads the BPF object that fits the kernel, keeps the in-kernel watch set
// (add, remove, list), reads records from the ring buffer and reports the
// kernel's counters.
package sensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/vigil-fim/vigil/pkg/kernel"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/pkgmgr"
)

// The watch entry flags (WatchFile, WatchNames, WatchRecursive,
// WatchReseeded, WatchAnchor) are enum vg_watch_flag: contract_gen.go.
// WatchAnchor marks a directory below which creations and renames (to a
// depth) are reported but not followed: a glob's fixed prefix, or the nearest
// existing ancestor of a path that does not exist yet.

// Entry is one in-kernel watch entry keyed by inode.
type Entry struct {
	Key   Key
	ID    uint64
	Flags uint32
	// Depth bounds a directory entry's reach (0: the sensor's max depth).
	Depth uint32
	// Matches counts the records this entry made the kernel try to emit:
	// compared with the records received, it tells which entries lost some.
	Matches uint64
}

// Info says which object runs and why.
type Info struct {
	Kernel  string           `json:"kernel"`
	Object  string           `json:"object"`
	HookTyp string           `json:"hook_type"`
	Why     string           `json:"why"`
	Hooks   []string         `json:"hooks"`
	Refused []loader.Refusal `json:"refused,omitempty"`
	// Skipped lists the object's hooks left out on this kernel, and why.
	Skipped []loader.Skip `json:"skipped,omitempty"`
	BTF     string        `json:"built_against"`
	// Features names what this object can and cannot see (docs/kernels.md).
	Features []string `json:"features"`
	// MapThread says how the map syscalls are scheduled: "fifo", or why
	// the real-time policy was refused (rtmap.go).
	MapThread string `json:"map_thread"`
}

// features lists, per hook type, what the object sees and its documented gaps.
// The fentry and kprobe objects are one source (bpf/kprobe.bpf.c): they see
// the same.
var features = map[string][]string{
	loader.HooksLSM:    vfsFeatures,
	loader.HooksFentry: vfsFeatures,
	loader.HooksKprobe: vfsFeatures,
	loader.HooksTracepoint: {"content:fd", "rename:user-space-resolve", "create", "attributes",
		"xattrs", "inode-flags", "mkdir", "symlink", "mknod", "fallocate", "mounts", "mmap",
		"gap:io_uring", "gap:failed-ops", "gap:path>255"},
}

var vfsFeatures = []string{"content:vfs", "io_uring", "rename:in-kernel-reseed", "create", "attributes",
	"xattrs", "inode-flags", "mkdir", "symlink", "mknod", "fallocate", "mounts", "mmap", "failed-ops"}

// Sensor is a loaded, attached kernel sensor.
type Sensor struct {
	loaded *loader.Loaded
	info   Info
	rd     *ringbuf.Reader
	// Every map syscall runs at SCHED_FIFO (rtmap.go).
	sys   *rtPolicy
	watch *rtMap
	names *rtMap
	ctrs  *rtMap
	// The tracepoint object's path filters; nil in other objects.
	basenames *rtMap
	dirpaths  *rtMap
	// maxDepth is the loaded object's vg_max_depth: how far the user-space
	// ancestor walk (resolve) goes, as the kernel's does.
	maxDepth int
	// gaps names, per program that emits no file record, what its
	// skipped runs lose (gapOf).
	gaps map[string]string

	mu        sync.Mutex
	closed    bool
	unmatched uint64
	// dirs maps each watched directory's absolute path to its inode.
	dirs map[string]Key
	// onCgroup receives the cgroup records (OnCgroup); cgroups counts them.
	onCgroup func(*Cgroup)
	cgroups  uint64
}

// ErrClosed is returned by Read once the sensor is closed.
var ErrClosed = errors.New("sensor closed")

// New loads and attaches the sensor for the running kernel.
func New(opt loader.Options) (*Sensor, error) {
	facts, err := kernel.Probe()
	if err != nil {
		return nil, err
	}
	return NewWithFacts(facts, opt)
}

// NewWithFacts is New with the kernel's facts already read.
func NewWithFacts(facts *kernel.Facts, opt loader.Options) (*Sensor, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		opt.Log.Debug().Err(err).Msg("raising memlock rlimit")
	}
	l, err := loader.Load(facts, opt)
	if err != nil {
		return nil, err
	}
	sys := newRTPolicy()
	s := &Sensor{
		loaded: l,
		sys:    sys,
		watch:  sys.wrap(l.Coll.Maps[loader.MapWatched]),
		names:  sys.wrap(l.Coll.Maps[loader.MapNames]),
		ctrs:   sys.wrap(l.Coll.Maps[loader.MapCounters]),

		basenames: sys.wrap(l.Coll.Maps[loader.MapBasenames]),
		dirpaths:  sys.wrap(l.Coll.Maps[loader.MapDirpaths]),
		info: Info{
			Kernel: facts.Release, Object: l.Object.Name, HookTyp: l.Object.Hooks,
			Why: l.Why, Hooks: l.Hooks, Refused: l.Refused, Skipped: l.Skipped, BTF: l.Object.BTF,
			Features: features[l.Object.Hooks], MapThread: sys.policy,
		},
	}
	s.gaps = map[string]string{}
	for _, at := range l.Attached {
		if g := gapOf(at.Hook); g != "" {
			s.gaps[at.Program] = g
		}
	}
	if s.watch == nil || s.names == nil || s.ctrs == nil || l.Coll.Maps[loader.MapEvents] == nil {
		l.Close()
		return nil, fmt.Errorf("object %s lacks a map vigil needs", l.Object.Name)
	}
	var depth uint32
	if v := l.Coll.Variables[loader.VarMaxDepth]; v == nil {
		l.Close()
		return nil, fmt.Errorf("object %s lacks %s", l.Object.Name, loader.VarMaxDepth)
	} else if err := v.Get(&depth); err != nil {
		l.Close()
		return nil, fmt.Errorf("object %s: reading %s: %w", l.Object.Name, loader.VarMaxDepth, err)
	}
	s.maxDepth = int(depth)
	if err := seedManagers(sys.wrap(l.Coll.Maps[loader.MapPkgComms])); err != nil {
		l.Close()
		return nil, fmt.Errorf("object %s: %w", l.Object.Name, err)
	}
	s.rd, err = ringbuf.NewReader(l.Coll.Maps[loader.MapEvents])
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("opening ring buffer: %w", err)
	}
	return s, nil
}

// Info returns which object runs and why.
func (s *Sensor) Info() Info { return s.info }

// Read blocks for the next record. It returns ErrClosed after Close.
func (s *Sensor) Read() (*Event, error) {
	var rec ringbuf.Record
	for {
		if err := s.rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("reading ring buffer: %w", err)
		}
		if len(rec.RawSample) >= 2 && binary.LittleEndian.Uint16(rec.RawSample) == typeCgroup {
			c, err := DecodeCgroup(rec.RawSample)
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.cgroups++
			f := s.onCgroup
			s.mu.Unlock()
			if f != nil {
				f(c)
			}
			continue
		}
		e, err := Decode(rec.RawSample)
		if err != nil {
			return nil, err
		}
		// A path record is matched here (resolve: the new ops, mkdir,
		// rmdir, symlink, mknod, setxattr, removexattr and setflags, like the
		// others, by their target path). A mount record (MatchMount) is not
		// matched at all: the watch set decides what a mountpoint covers.
		if e.Match == MatchPath && !s.resolve(e) {
			s.mu.Lock()
			s.unmatched++
			s.mu.Unlock()
			continue
		}
		return e, nil
	}
}

// OnCgroup sets the function that receives the kernel's cgroup records
// (one per cgroup created on the default hierarchy): Read calls it, in the
// reader's goroutine, before it returns any file record read after the
// cgroup record, so that a cache f keeps is never behind a process that
// writes a file right after it was moved into a new cgroup. Read returns
// only file records; without a function the cgroup records are counted
// (CgroupRecords) and passed over.
func (s *Sensor) OnCgroup(f func(*Cgroup)) {
	s.mu.Lock()
	s.onCgroup = f
	s.mu.Unlock()
}

// CgroupRecords counts the cgroup records read.
func (s *Sensor) CgroupRecords() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cgroups
}

// Unmatched counts tracepoint path records that matched no watch entry once
// resolved (another file with a watched file's name) and were dropped.
func (s *Sensor) Unmatched() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unmatched
}

// WatchInode adds or replaces an inode entry.
func (s *Sensor) WatchInode(k Key, id uint64, flags uint32) error {
	v := watchValue{ID: id, Flags: flags}
	if err := s.watch.Update(k, v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("watching inode %s: %w", k, err)
	}
	return nil
}

// UnwatchInode removes an inode entry; a missing entry is not an error.
func (s *Sensor) UnwatchInode(k Key) error {
	if err := s.watch.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unwatching inode %s: %w", k, err)
	}
	return nil
}

// WatchName marks (dir, name) as a watched path. The directory itself must
// also be watched with WatchNames for the kernel to look names up in it.
func (s *Sensor) WatchName(dir Key, name string, id uint64) error {
	k := nameKey{Dev: dir.Dev, DirIno: dir.Ino, Hash: HashName(name)}
	var old watchValue
	existed := s.names.Lookup(k, &old) == nil
	if err := s.names.Update(k, watchValue{ID: id, Flags: WatchFile}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("watching name %q in %s: %w", name, dir, err)
	}
	if !existed {
		if err := refcount(s.basenames, HashName(name), +1); err != nil {
			return fmt.Errorf("watching name %q: %w", name, err)
		}
	}
	return nil
}

// UnwatchName removes a (dir, name) entry.
func (s *Sensor) UnwatchName(dir Key, name string) error {
	k := nameKey{Dev: dir.Dev, DirIno: dir.Ino, Hash: HashName(name)}
	err := s.names.Delete(k)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unwatching name %q in %s: %w", name, dir, err)
	}
	return refcount(s.basenames, HashName(name), -1)
}

// WatchTree watches a directory and everything below it (to the sensor's
// max depth): its inode as a recursive entry and, for the tracepoint
// object's path filter, its absolute path.
func (s *Sensor) WatchTree(dir string, id uint64) (Key, error) {
	return s.watchDir(dir, id, WatchRecursive, 0)
}

// WatchTreeDepth is WatchTree reaching only depth levels below dir (1: its
// direct children).
func (s *Sensor) WatchTreeDepth(dir string, id uint64, depth uint32) (Key, error) {
	return s.watchDir(dir, id, WatchRecursive, depth)
}

// WatchAnchor watches a directory as an anchor: creations and renames up to
// depth levels below it are reported, and nothing is followed.
func (s *Sensor) WatchAnchor(dir string, id uint64, depth uint32) (Key, error) {
	return s.watchDir(dir, id, WatchAnchor, depth)
}

func (s *Sensor) watchDir(dir string, id uint64, flags, depth uint32) (Key, error) {
	abs, err := realPath(dir)
	if err != nil {
		return Key{}, err
	}
	k, _, err := KeyOf(abs, false)
	if err != nil {
		return Key{}, fmt.Errorf("watching directory %s: %w", dir, err)
	}
	v := watchValue{ID: id, Flags: flags, Depth: depth}
	var old watchValue
	if s.watch.Lookup(k, &old) == nil {
		// A directory can be a names holder and a tree at once.
		v.Flags |= old.Flags &^ (WatchRecursive | WatchAnchor)
	}
	if err := s.watch.Update(k, v, ebpf.UpdateAny); err != nil {
		return Key{}, fmt.Errorf("watching directory %s: %w", dir, err)
	}
	if err := refcount(s.dirpaths, HashName(abs), +1); err != nil {
		return Key{}, fmt.Errorf("watching directory %s: %w", dir, err)
	}
	s.mu.Lock()
	if s.dirs == nil {
		s.dirs = map[string]Key{}
	}
	s.dirs[abs] = k
	s.mu.Unlock()
	return k, nil
}

// dirKey is the inode a watched directory had when it was watched: how a
// path record below it is matched once the directory is gone.
func (s *Sensor) dirKey(abs string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.dirs[abs]
	return k, ok
}

// UnwatchDir undoes WatchTree or WatchAnchor.
func (s *Sensor) UnwatchDir(dir string, k Key) error {
	if err := s.UnwatchInode(k); err != nil {
		return err
	}
	abs, err := realPath(dir)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.dirs[abs] == k {
		delete(s.dirs, abs)
	}
	s.mu.Unlock()
	return refcount(s.dirpaths, HashName(abs), -1)
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	return abs, nil
}

// refcount adds d to a hash-keyed counter map, deleting at zero. A nil map
// (an object without path filters) is not an error.
func refcount(m *rtMap, h uint64, d int) error {
	if m == nil {
		return nil
	}
	var n uint32
	if err := m.Lookup(h, &n); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if d < 0 && n <= uint32(-d) {
		if err := m.Delete(h); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		return nil
	}
	return m.Update(h, uint32(int(n)+d), ebpf.UpdateAny)
}

// Lookup returns one inode entry.
func (s *Sensor) Lookup(k Key) (Entry, bool, error) {
	var v watchValue
	if err := s.watch.Lookup(k, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Entry{}, false, nil
		}
		return Entry{}, false, fmt.Errorf("looking up %s: %w", k, err)
	}
	return Entry{Key: k, ID: v.ID, Flags: v.Flags, Depth: v.Depth, Matches: v.Matches}, true, nil
}

// Entries lists every inode entry.
func (s *Sensor) Entries() ([]Entry, error) {
	var out []Entry
	var k Key
	var v watchValue
	if err := s.watch.ForEach(&k, &v, func() {
		out = append(out, Entry{Key: k, ID: v.ID, Flags: v.Flags, Depth: v.Depth, Matches: v.Matches})
	}); err != nil {
		return nil, fmt.Errorf("listing watch entries: %w", err)
	}
	return out, nil
}

// Capacity is the watch map's size.
func (s *Sensor) Capacity() uint32 { return s.watch.MaxEntries() }

// Counters are the kernel's per-hook counts, summed over CPUs.
type Counters struct {
	Hits    map[string]uint64 `json:"hits"`
	Matched map[string]uint64 `json:"matched"`
	Emitted map[string]uint64 `json:"emitted"`
	Lost    map[string]uint64 `json:"lost"`
	// Gaps counts the runs the kernel skipped of the programs that emit
	// no file record, as "<gap>:<program>": "lineage" for the
	// package-manager lineage (a process may lack its mark), "cgroup" for
	// cgroup names (a container may go unnamed). No file record is lost
	// by them: they are not in Lost.
	Gaps map[string]uint64 `json:"gaps"`
}

// TotalGaps sums Gaps.
func (c Counters) TotalGaps() uint64 {
	var n uint64
	for _, v := range c.Gaps {
		n += v
	}
	return n
}

// gapOf names what a skipped run of the program attached at hook loses
// when that is not a file record ("" when it may be one).
func gapOf(hook string) string {
	switch {
	case strings.HasPrefix(hook, "tp_btf/sched_process_"):
		return "lineage"
	case hook == "tp_btf/cgroup_mkdir":
		return "cgroup"
	}
	return ""
}

// TotalLost sums Lost.
func (c Counters) TotalLost() uint64 {
	var n uint64
	for _, v := range c.Lost {
		n += v
	}
	return n
}

// TotalEmitted sums the records put in the ring buffer over all hooks.
func (c Counters) TotalEmitted() uint64 {
	var n uint64
	for _, v := range c.Emitted {
		n += v
	}
	return n
}

// Skipped is the part of TotalLost that the kernel counted as program runs
// it skipped (a tracepoint program already running on the CPU), not as
// records the ring buffer could not take.
func (c Counters) Skipped() uint64 {
	var n uint64
	for k, v := range c.Lost {
		if strings.HasPrefix(k, "skipped:") {
			n += v
		}
	}
	return n
}

// Counters reads the kernel's counters.
func (s *Sensor) Counters() (Counters, error) {
	var per []rawCounters
	if err := s.ctrs.Lookup(uint32(0), &per); err != nil {
		return Counters{}, fmt.Errorf("reading counters: %w", err)
	}
	c := Counters{Hits: map[string]uint64{}, Matched: map[string]uint64{}, Emitted: map[string]uint64{}, Lost: map[string]uint64{},
		Gaps: map[string]uint64{}}
	for _, p := range per {
		for h := 0; h < hookMax; h++ {
			name := Hook(h).String()
			add := func(m map[string]uint64, v uint64) {
				if v != 0 {
					m[name] += v
				}
			}
			add(c.Hits, p.Hits[h])
			add(c.Matched, p.Matched[h])
			add(c.Emitted, p.Emitted[h])
			add(c.Lost, p.Lost[h])
		}
	}
	// Runs the kernel skipped: a program is not run on a CPU where it is
	// already running (or, for a perf-event tracepoint, where any tracing
	// program is), which a preemptible program meets when it is preempted
	// and another task on its CPU reaches the same hook. What a file
	// hook's program skipped is never seen, and is counted here as lost
	// so that the agent reports and recovers it; a skipped run of a
	// program that emits no file record is a gap of its own
	// (docs/kernels.md).
	for name, p := range s.loaded.Coll.Programs {
		st, err := p.Stats()
		if err != nil {
			return Counters{}, fmt.Errorf("reading program %s's statistics: %w", name, err)
		}
		if st.RecursionMisses == 0 {
			continue
		}
		if g := s.gaps[name]; g != "" {
			c.Gaps[g+":"+name] += st.RecursionMisses
		} else {
			c.Lost["skipped:"+name] += st.RecursionMisses
		}
	}
	return c, nil
}

// Close detaches the probes and frees the kernel objects. A Read blocked in
// another goroutine returns ErrClosed.
func (s *Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.rd.Close()
	if cerr := s.loaded.Close(); err == nil {
		err = cerr
	}
	return err
}

// Attached lists the programs and links as loaded (for the tamper check).
func (s *Sensor) Attached() []loader.Attachment { return s.loaded.Attached }

// seedManagers puts every package manager's comm in the kernel's pkg_comms
// map: an exec of one of them starts a marked process tree (lineage).
func seedManagers(m *rtMap) error {
	if m == nil {
		return fmt.Errorf("no map %s", loader.MapPkgComms)
	}
	for _, mg := range pkgmgr.Managers {
		k, err := mg.CommKey()
		if err != nil {
			return err
		}
		if err := m.Update(k, uint32(mg.ID), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("seeding %s with %s: %w", loader.MapPkgComms, mg.Comm, err)
		}
	}
	return nil
}

// Lineage reads the kernel's mark of thread group tgid: the package manager
// it runs below, if any.
func (s *Sensor) Lineage(tgid uint32) (Package, bool, error) {
	lm := s.loaded.Coll.Maps[loader.MapLineage]
	if lm == nil {
		return Package{}, false, fmt.Errorf("no map %s", loader.MapLineage)
	}
	var v lineageValue
	if err := s.sys.wrap(lm).Lookup(tgid, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Package{}, false, nil
		}
		return Package{}, false, err
	}
	p := Package{MgrID: v.Mgr, RootPID: v.Root, Script: v.Flags&pkgScript != 0}
	if mg, ok := pkgmgr.ByID(v.Mgr); ok {
		p.Manager = mg.Name
	}
	return p, true, nil
}

// SeedLineage marks the package managers that were already running when
// the sensor was attached, and their descendants, in the kernel's lineage
// map: the kernel marks a tree at the manager's exec, which it did not
// see. It reads proc ("/proc") at start, the one time vigil reads it; from
// then on the kernel keeps the marks (fork, exec, exit). Parents are
// marked before their children are looked for again: a child forked after
// its parent's mark is the kernel's to mark, one forked before is found by
// the next pass. An entry the kernel made meanwhile is kept. A process
// that ended between the read and its mark loses the mark again (its pid
// could be reused). It returns the processes marked.
func (s *Sensor) SeedLineage(proc string) ([]pkgmgr.Mark, error) {
	lm := s.loaded.Coll.Maps[loader.MapLineage]
	if lm == nil {
		return nil, fmt.Errorf("no map %s", loader.MapLineage)
	}
	m := s.sys.wrap(lm)
	seeded := map[uint32]uint64{} // pid -> start time of the process marked
	var out []pkgmgr.Mark
	for pass := 0; pass < 8; pass++ {
		procs, err := pkgmgr.Procs(proc)
		if err != nil {
			return out, fmt.Errorf("reading %s: %w", proc, err)
		}
		added := 0
		for _, k := range pkgmgr.Marks(procs) {
			pid := k.Proc.PID
			if start, ok := seeded[pid]; ok && start == k.Proc.Start {
				continue
			}
			v := lineageValue{Root: k.Root, Mgr: k.Mgr}
			if k.Script {
				v.Flags = pkgScript
			}
			seeded[pid] = k.Proc.Start
			err := m.Update(pid, v, ebpf.UpdateNoExist)
			if errors.Is(err, ebpf.ErrKeyExist) {
				continue // marked by the kernel since
			}
			if err != nil {
				return out, fmt.Errorf("marking %d (%s) in %s: %w", pid, k.Proc.Comm, loader.MapLineage, err)
			}
			if cur, ok, _ := pkgmgr.ReadProc(proc, pid); !ok || cur.Start != k.Proc.Start {
				// Ended (or ended and reused) since read: its exit is
				// past. The entry goes unless the kernel made it anew
				// (a reused pid forked below a marked process).
				var now lineageValue
				if err := m.Lookup(pid, &now); err == nil && now == v {
					if err := m.Delete(pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
						return out, fmt.Errorf("unmarking %d in %s: %w", pid, loader.MapLineage, err)
					}
				}
				continue
			}
			added++
			out = append(out, k)
		}
		if added == 0 {
			break
		}
	}
	return out, nil
}

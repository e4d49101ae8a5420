// Package watch turns configured paths (files, directories, globs, paths
// that do not exist yet) into the sensor's in-kernel watch set, and keeps it
// in step with what the sensor reports: new files in watched trees, deleted
// files, files replaced by rename, and paths that appear later. It is driven
// by the sensor's records; it never polls.
package watch

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Kernel is the part of the sensor the watch set drives.
type Kernel interface {
	WatchInode(k sensor.Key, id uint64, flags uint32) error
	UnwatchInode(k sensor.Key) error
	WatchName(dir sensor.Key, name string, id uint64) error
	UnwatchName(dir sensor.Key, name string) error
	WatchTree(dir string, id uint64) (sensor.Key, error)
	WatchTreeDepth(dir string, id uint64, depth uint32) (sensor.Key, error)
	WatchAnchor(dir string, id uint64, depth uint32) (sensor.Key, error)
	UnwatchDir(dir string, k sensor.Key) error
}

// Rule is one configured [[watch]] entry (its Kind empty: inferred per
// file).
type Rule struct {
	config.Watch
}

// Target is something the kernel matches by id: one file path, one tree,
// or one anchor (a glob's fixed prefix, or a missing path's nearest
// existing ancestor).
type Target struct {
	ID   uint64
	Rule *Rule
	// Path is the file's path, the tree's root, or the anchor directory.
	Path string
	// Link is the configured path when Path was reached through a symlink.
	Link string
	Kind targetKind
	// Key is the inode now at Path (zero while absent).
	Key sensor.Key
	// Dir is a file's parent directory.
	Dir sensor.Key
	// Pattern is what an anchor waits for (a glob or a missing path).
	Pattern string
	// depth is an anchor's reach below Path.
	depth uint32
}

type targetKind int

const (
	kindFile targetKind = iota
	kindTree
	kindAnchor
)

// File is one watched file as the pipeline sees it.
type File struct {
	Path   string
	Link   string
	Rule   *Rule
	Kind   string // the consumer kind
	Key    sensor.Key
	Target uint64
}

// Set is the watch set.
type Set struct {
	mu       sync.Mutex
	k        Kernel
	maxDepth int
	nextID   uint64
	targets  map[uint64]*Target
	byKey    map[sensor.Key]*File // every watched file's inode
	byPath   map[string]*File
	namesIn  map[sensor.Key]int // directories holding watched names: refcount
	problems []error
	kindFor  func(path string) string
	// rules are the rules in force, in the order they were added.
	rules []*Rule
	// gone are paths Gone forgot: their deletion was reported by a re-read,
	// so a live deletion record still queued for them is not reported again.
	gone map[string]struct{}
	// mntNS is vigil's own mount namespace: only its mounts change what
	// vigil's readers see (Mount).
	mntNS uint32
}

// New returns an empty set driving k. kindFor infers a file's consumer kind
// from its path when its rule names none (expand.Infer; nil infers nothing,
// "" means "hash").
func New(k Kernel, maxDepth int, kindFor func(path string) string) *Set {
	return &Set{k: k, maxDepth: expand.MaxDepth(maxDepth), nextID: 1, targets: map[uint64]*Target{},
		byKey: map[sensor.Key]*File{}, byPath: map[string]*File{}, namesIn: map[sensor.Key]int{},
		kindFor: kindFor, mntNS: ownMountNS()}
}

// Add seeds the set from configured rules. It returns the problems met
// (a path that cannot be watched), but keeps going.
func (s *Set) Add(rules []config.Watch) []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i := range rules {
		r := &Rule{Watch: rules[i]}
		s.rules = append(s.rules, r)
		if err := s.addRule(r); err != nil {
			errs = append(errs, expand.Problem(&r.Watch, err))
		}
	}
	return errs
}

// addRule watches what a rule names now (expand.Roots). A glob's matches
// are watched one by one (a match that cannot be is a problem, the others
// go on), and its fixed prefix is anchored so that later matches are
// reported when they are created.
func (s *Set) addRule(r *Rule) error {
	roots, err := expand.Roots(&r.Watch)
	if err != nil {
		return err
	}
	pattern := filepath.Clean(r.Path)
	if !expand.HasMeta(pattern) {
		return s.addRoot(r, roots[0])
	}
	for _, root := range roots {
		if err := s.addRoot(r, root); err != nil {
			s.problems = append(s.problems, fmt.Errorf("watch %s: %s: %w", r.Path, root.Path, err))
		}
	}
	return s.anchor(r, expand.GlobPrefix(pattern), pattern)
}

// addRoot watches one path a rule names.
func (s *Set) addRoot(r *Rule, root expand.Root) error {
	switch root.Form {
	case expand.Dir:
		return s.addDir(r, root.Path)
	case expand.File:
		return s.addFile(r, root.Path)
	default:
		return s.addMissing(r, root.Path)
	}
}

func (s *Set) newTarget(r *Rule, path string, kind targetKind) *Target {
	t := &Target{ID: s.nextID, Rule: r, Path: path, Kind: kind}
	s.nextID++
	s.targets[t.ID] = t
	return t
}

// addFile watches one file: its inode, and its name in its parent, so a
// replacement by rename is followed in the kernel.
func (s *Set) addFile(r *Rule, path string) error {
	path = filepath.Clean(path)
	if f, ok := s.byPath[path]; ok && f.Rule != nil {
		return nil // already watched (another rule, or a glob matched it)
	}
	if expand.Excluded(&r.Watch, path) {
		return nil
	}
	real, link := expand.Resolve(path)
	t := s.newTarget(r, real, kindFile)
	t.Link = link
	dirKey, _, err := sensor.KeyOf(filepath.Dir(real), false)
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	t.Dir = dirKey
	if err := s.holdNames(dirKey); err != nil {
		return err
	}
	if err := s.k.WatchName(dirKey, filepath.Base(real), t.ID); err != nil {
		return err
	}
	f := &File{Path: real, Link: t.Link, Rule: r, Kind: expand.KindOf(&r.Watch, real, link, s.kindFor), Target: t.ID}
	s.byPath[real] = f
	if k, _, err := sensor.KeyOf(real, true); err == nil {
		t.Key = k
		f.Key = k
		s.byKey[k] = f
		if err := s.k.WatchInode(k, t.ID, sensor.WatchFile); err != nil {
			return err
		}
	}
	return nil
}

func (s *Set) holdNames(dir sensor.Key) error {
	s.namesIn[dir]++
	if s.namesIn[dir] > 1 {
		return nil
	}
	if err := s.k.WatchInode(dir, 0, sensor.WatchNames); err != nil {
		return err
	}
	// WatchInode replaces the directory's entry: a tree or an anchor there
	// (the last one watched holds the entry) is watched again on top of it,
	// which keeps NAMES.
	var last *Target
	for _, t := range s.targets {
		if t.Kind != kindFile && t.Key == dir && (last == nil || t.ID > last.ID) {
			last = t
		}
	}
	if last != nil {
		return s.watchDir(last)
	}
	return nil
}

// watchDir makes a tree's or an anchor's entry in the kernel.
func (s *Set) watchDir(t *Target) (err error) {
	switch {
	case t.Kind == kindTree && t.Rule.Recursive:
		t.Key, err = s.k.WatchTree(t.Path, t.ID)
	case t.Kind == kindTree:
		// A non-recursive directory follows its direct children like a tree.
		t.Key, err = s.k.WatchTreeDepth(t.Path, t.ID, 1)
	default:
		t.Key, err = s.k.WatchAnchor(t.Path, t.ID, t.depth)
	}
	return err
}

func (s *Set) kindOf(r *Rule, path string) string {
	return expand.KindOf(&r.Watch, path, "", s.kindFor)
}

// addDir watches a directory: recursively (to the max depth) or its direct
// children; existing files are seeded, new ones are caught by the kernel's
// ancestor walk.
func (s *Set) addDir(r *Rule, dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	t := s.newTarget(r, real, kindTree)
	if err := s.watchDir(t); err != nil {
		return err
	}
	// Every entry below the root is a member: files, and the directories,
	// symbolic links, FIFOs, sockets and device nodes whose own changes
	// (chmod, xattrs, rmdir, unlink) are reported like a file's.
	for _, err := range expand.Walk(&r.Watch, real, s.maxDepth, func(p string, typ fs.FileMode) {
		if p != real {
			s.seedTreeFile(t, p)
		}
	}) {
		s.problems = append(s.problems, expand.Problem(&r.Watch, err))
	}
	return nil
}

func (s *Set) seedTreeFile(t *Target, p string) *File {
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		return nil
	}
	f := &File{Path: p, Rule: t.Rule, Kind: s.kindOf(t.Rule, p), Key: k, Target: t.ID}
	if old, ok := s.byKey[k]; ok && old.Rule != nil && old.Target != t.ID {
		return old // watched on its own already
	}
	if prev := s.byPath[p]; prev != nil && prev.Key != k && s.byKey[prev.Key] == prev {
		// Another inode now stands at the path (a rename over it seen by
		// ancestry): the replaced one leaves, in the set and in the
		// kernel's map, or a new file given its freed number would be
		// taken for it and its records dropped as stale.
		delete(s.byKey, prev.Key)
		s.k.UnwatchInode(prev.Key)
	}
	s.byKey[k] = f
	s.byPath[p] = f
	if err := s.k.WatchInode(k, t.ID, sensor.WatchFile); err != nil {
		s.problems = append(s.problems, err)
	}
	return f
}

// addMissing watches a path that does not exist yet: its parent's name when
// the parent exists, else an anchor at the nearest existing ancestor.
func (s *Set) addMissing(r *Rule, path string) error {
	parent := filepath.Dir(path)
	if st, err := os.Stat(parent); err == nil && st.IsDir() {
		return s.addFile(r, path)
	}
	return s.anchor(r, parent, path)
}

func (s *Set) anchor(r *Rule, dir, pattern string) error {
	for {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			break
		}
		if dir == "/" {
			return fmt.Errorf("no existing ancestor")
		}
		dir = filepath.Dir(dir)
	}
	rel, err := filepath.Rel(dir, pattern)
	if err != nil {
		return err
	}
	depth := strings.Count(rel, string(filepath.Separator)) + 1
	t := s.newTarget(r, dir, kindAnchor)
	t.Pattern = pattern
	t.depth = uint32(depth)
	return s.watchDir(t)
}

// outside reports whether a path below a tree is not the tree's: excluded,
// or deeper than a direct child of a directory watched without recursion
// (the kernel's entry reaches one level; this holds if it ever does not).
func (s *Set) outside(t *Target, path string) bool {
	if expand.Excluded(&t.Rule.Watch, path) {
		return true
	}
	if t.Rule.Recursive {
		return false
	}
	rel, err := filepath.Rel(t.Path, path)
	return err != nil || strings.Contains(rel, string(filepath.Separator))
}

// Covers reports whether a path is already watched: as a file, or below a
// recursive tree.
func (s *Set) Covers(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	path = filepath.Clean(path)
	if _, ok := s.byPath[path]; ok {
		return true
	}
	for _, t := range s.targets {
		if t.Kind == kindTree && t.Rule.Recursive && expand.Under(t.Path, path) {
			return true
		}
	}
	return false
}

// Problems returns and clears the problems met while seeding.
func (s *Set) Problems() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.problems
	s.problems = nil
	return p
}

// Gone forgets the file at path as a deletion record would (used when the
// record was lost and a re-read found the file missing): its inode entry
// goes; a configured file path stays watched by name, a tree member goes.
func (s *Set) Gone(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.byPath[path]
	if f == nil {
		return false
	}
	s.forget(f)
	if s.gone == nil || len(s.gone) >= maxGone {
		s.gone = map[string]struct{}{} // bounded: a deletion record lost for good leaves its path here
	}
	s.gone[path] = struct{}{}
	return true
}

// maxGone bounds the paths remembered by Gone.
const maxGone = 1 << 16

// Files lists every watched file, sorted by path.
func (s *Set) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.byPath))
	for _, f := range s.byPath {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Targets returns how many targets there are, by kind, for the startup record.
func (s *Set) Targets() (files, trees, anchors int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.targets {
		switch t.Kind {
		case kindFile:
			files++
		case kindTree:
			trees++
		case kindAnchor:
			anchors++
		}
	}
	return
}

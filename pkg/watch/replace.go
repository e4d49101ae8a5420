package watch

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// lister is the part of the sensor that lists the kernel's inode entries;
// Replace uses it, when the kernel has it, to drop the entries the kernel
// made itself for a removed rule (files followed into a tree).
type lister interface {
	Entries() ([]sensor.Entry, error)
}

// ReplaceResult says what Replace changed.
type ReplaceResult struct {
	// Kept, Added and Removed count rules.
	Kept, Added, Removed int
	// Errors are the problems met adding rules (a path that cannot be
	// watched); the rest of the set is in place regardless.
	Errors []error
}

// ruleKey identifies a rule across configurations: the same path, kind,
// recursion, exclusions and expected owner and group is the same rule,
// wherever it was written (a changed owner is a new rule, so that its
// files are checked against the new one).
func ruleKey(w config.Watch) string {
	return fmt.Sprintf("%s\x00%s\x00%t\x00%s\x00%s\x00%s", w.Path, w.Kind, w.Recursive,
		strings.Join(w.Exclude, "\x00"), idKey(w.OwnerID), idKey(w.GroupID))
}

func idKey(id *uint32) string {
	if id == nil {
		return "-"
	}
	return fmt.Sprint(*id)
}

// Replace changes the set in place to watch exactly rules. The targets of
// rules present before and after are not touched, so there is no gap for
// them; the kernel entries of removed rules go unless another target still
// needs them (a directory holding watched names, a file below a kept tree,
// which is handed over to that tree); new rules are added as Add does.
func (s *Set) Replace(rules []config.Watch) ReplaceResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res ReplaceResult

	want := map[string]config.Watch{}
	var order []string
	for _, w := range rules {
		k := ruleKey(w)
		if _, dup := want[k]; !dup {
			order = append(order, k)
		}
		want[k] = w
	}
	// The rules in force now, by key (a rule added twice is there twice).
	have := map[string][]*Rule{}
	removed := map[*Rule]bool{}
	for _, r := range s.rules {
		k := ruleKey(r.Watch)
		if _, ok := want[k]; !ok {
			removed[r] = true
			if len(have[k]) == 0 {
				res.Removed++
			}
		} else if len(have[k]) == 0 {
			res.Kept++
		}
		have[k] = append(have[k], r)
	}
	if len(removed) > 0 {
		s.remove(removed)
	}
	s.rules = s.rules[:0]
	for _, k := range order {
		if rs := have[k]; len(rs) > 0 {
			s.rules = append(s.rules, rs...)
			if len(removed) > 0 {
				s.refill(rs)
			}
			continue
		}
		w := want[k]
		r := &Rule{Watch: w}
		s.rules = append(s.rules, r)
		res.Added++
		if err := s.addRule(r); err != nil {
			res.Errors = append(res.Errors, expand.Problem(&r.Watch, err))
		}
	}
	return res
}

// remove drops every target and file of the removed rules.
func (s *Set) remove(removed map[*Rule]bool) {
	gone := map[uint64]*Target{}
	for id, t := range s.targets {
		if removed[t.Rule] {
			gone[id] = t
		}
	}
	// Files first: a file below a kept tree is handed over to it, anything
	// else loses its inode entry.
	var files []*File
	for _, f := range s.byPath {
		if _, ok := gone[f.Target]; ok || removed[f.Rule] {
			files = append(files, f)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		delete(s.byPath, f.Path)
		if s.byKey[f.Key] == f {
			delete(s.byKey, f.Key)
		}
		if f.Key == (sensor.Key{}) {
			continue
		}
		var err error
		if other := s.byKey[f.Key]; other != nil {
			// Another watched path holds the same inode (a hard link): the
			// entry becomes its own, in place.
			err = s.k.WatchInode(f.Key, other.Target, sensor.WatchFile)
		} else if t := s.coveringTree(f.Path, gone); t != nil {
			nf := &File{Path: f.Path, Rule: t.Rule, Kind: s.kindOf(t.Rule, f.Path), Key: f.Key, Target: t.ID}
			s.byPath[f.Path] = nf
			s.byKey[f.Key] = nf
			// Replaces the entry in place: no gap.
			err = s.k.WatchInode(f.Key, t.ID, sensor.WatchFile)
		} else {
			err = s.k.UnwatchInode(f.Key)
		}
		if err != nil {
			s.problems = append(s.problems, err)
		}
	}
	// File targets: their name entries, and the directories' hold on names.
	ids := make([]uint64, 0, len(gone))
	for id := range gone {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		t := gone[id]
		if t.Kind != kindFile {
			continue
		}
		delete(s.targets, id)
		if err := s.k.UnwatchName(t.Dir, filepath.Base(t.Path)); err != nil {
			s.problems = append(s.problems, err)
		}
		s.releaseNames(t.Dir)
	}
	// Trees and anchors: their directory's entry goes unless it is still
	// needed, in which case it is replaced in place.
	for _, id := range ids {
		t := gone[id]
		if t.Kind == kindFile {
			continue
		}
		delete(s.targets, id)
		if t.Key == (sensor.Key{}) {
			continue
		}
		var err error
		switch last := s.lastDirTarget(t.Key); {
		case last != nil:
			err = s.watchDir(last)
		case s.namesIn[t.Key] > 0:
			// The directory still holds watched names. Its path stays in
			// the tracepoint object's path filter (an over-approximation:
			// those records are dropped in user space as unmatched).
			err = s.k.WatchInode(t.Key, 0, sensor.WatchNames)
		default:
			err = s.k.UnwatchDir(t.Path, t.Key)
		}
		if err != nil {
			s.problems = append(s.problems, err)
		}
	}
	// Entries the kernel made itself for the removed targets (files it
	// followed into a tree) carry their ids.
	if l, ok := s.k.(lister); ok {
		ents, err := l.Entries()
		if err != nil {
			s.problems = append(s.problems, err)
			return
		}
		for _, e := range ents {
			if _, ok := gone[e.ID]; ok && s.byKey[e.Key] == nil {
				if err := s.k.UnwatchInode(e.Key); err != nil {
					s.problems = append(s.problems, err)
				}
			}
		}
	}
}

// releaseNames undoes holdNames: the last watched name in a directory
// releases its entry, unless a tree or an anchor there keeps it (its NAMES
// flag then stays, which costs one lookup that finds nothing).
func (s *Set) releaseNames(dir sensor.Key) {
	if s.namesIn[dir] > 1 {
		s.namesIn[dir]--
		return
	}
	delete(s.namesIn, dir)
	if s.lastDirTarget(dir) != nil {
		return
	}
	if err := s.k.UnwatchInode(dir); err != nil {
		s.problems = append(s.problems, err)
	}
}

// lastDirTarget is the tree or anchor that holds a directory's entry (the
// last one watched there), or nil.
func (s *Set) lastDirTarget(dir sensor.Key) *Target {
	var last *Target
	for _, t := range s.targets {
		if t.Kind != kindFile && t.Key == dir && (last == nil || t.ID > last.ID) {
			last = t
		}
	}
	return last
}

// coveringTree is the deepest tree, not among gone, whose reach holds path.
func (s *Set) coveringTree(path string, gone map[uint64]*Target) *Target {
	var best *Target
	for id, t := range s.targets {
		if _, ok := gone[id]; ok || t.Kind != kindTree {
			continue
		}
		if path == t.Path || !expand.Under(t.Path, path) || expand.Level(t.Path, path) > s.maxDepth || s.outside(t, path) {
			continue
		}
		if best == nil || len(t.Path) > len(best.Path) {
			best = t
		}
	}
	return best
}

// refill re-adds what a kept rule (added once or more) reaches but no
// longer has after others were removed: a path that a removed rule had
// watched first.
func (s *Set) refill(rs []*Rule) {
	r := rs[0]
	if expand.HasMeta(r.Path) {
		roots, _ := expand.Roots(&r.Watch)
		for _, root := range roots {
			if root.Form == expand.Dir && s.hasTarget(r, root.Path, kindTree) {
				continue
			}
			if err := s.addRoot(r, root); err != nil {
				s.problems = append(s.problems, fmt.Errorf("watch %s: %s: %w", r.Path, root.Path, err))
			}
		}
		return
	}
	for _, t := range s.targets {
		for _, r := range rs {
			if t.Rule == r {
				return
			}
		}
	}
	if err := s.addRule(r); err != nil {
		s.problems = append(s.problems, expand.Problem(&r.Watch, err))
	}
}

func (s *Set) hasTarget(r *Rule, path string, kind targetKind) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	for _, t := range s.targets {
		if t.Rule == r && t.Kind == kind && t.Path == real {
			return true
		}
	}
	return false
}

package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Action is what happened to a watched file, in the watch set's terms; the
// records' event.action carries it unchanged.
type Action string

// The actions Apply reports.
const (
	ActionCreated           Action = "created"
	ActionModified          Action = "modified"
	ActionAttributesChanged Action = "attributes-changed"
	ActionReplaced          Action = "replaced"
	ActionRenamed           Action = "renamed"
	ActionDeleted           Action = "deleted"
	ActionLinked            Action = "linked"
	// ActionShadowed: a mount now covers the watched path (on it, or
	// on a directory above it): readers see another file, or none. The
	// baseline comparison names the same change alike (pkg/scan).
	ActionShadowed Action = "shadowed"
	// ActionUncovered: the mount that covered the watched path went;
	// readers see what it hid.
	ActionUncovered Action = "uncovered"
)

// Change is what a sensor record means for the watch set: which file, what
// happened to it, and where it is now.
type Change struct {
	File   *File  // the watched file (a copy)
	Action Action // what happened
	// TargetPath is where a renamed-away file went, or a hard link's new name.
	TargetPath string
	// SourcePath is where a file renamed into place came from, when the
	// set held it (moved within a tree, or replacing a file there).
	SourcePath string
	// Gone is true when the file no longer exists at File.Path.
	Gone bool
}

// Apply interprets one sensor record, updates the watch set (and the
// kernel's map where the kernel did not already), and returns what changed.
// ok is false for a record that concerns nothing watched (an excluded file,
// a creation under an anchor that does not match its glob).
func (s *Set) Apply(e *sensor.Event) (Change, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.targets[e.WatchID]
	if !ok && e.Match == sensor.MatchInode && s.byKey[e.File] != nil {
		// Matched before a Replace removed its target, for a file that
		// another target took over: the file's target now.
		t, ok = s.targets[s.byKey[e.File].Target]
	}
	if !ok {
		// Stale: an inode the kernel still had after its entry went.
		if e.Match == sensor.MatchInode && e.File.Ino != 0 && s.byKey[e.File] == nil {
			s.unwatch(e.File)
		}
		return Change{}, false
	}
	if s.stale(t, e) {
		return Change{}, false
	}
	path := s.pathOf(t, e)
	if path == "" {
		return Change{}, false
	}
	switch e.Op {
	case sensor.OpCreate, sensor.OpMkdir, sensor.OpSymlink, sensor.OpMknod: // creation(e.Op)
		// A new entry of any type: a tree holds directories, symlinks,
		// FIFOs, device nodes and sockets as well as regular files.
		delete(s.gone, path)
		return s.created(t, path, e.File, ActionCreated)
	case sensor.OpRename:
		return s.renamed(t, path, e)
	case sensor.OpLink:
		if t.Kind == kindAnchor || t.Kind == kindTree || e.Match == sensor.MatchName {
			// A new name at a watched path, or below a tree or an anchor.
			return s.created(t, path, e.File2, ActionCreated)
		}
		f := s.byKey[e.File2]
		if f == nil {
			return Change{}, false
		}
		return Change{File: copyFile(f), Action: ActionLinked, TargetPath: s.newLocation(t, e)}, true
	case sensor.OpUnlink, sensor.OpRmdir:
		f := s.byPath[path]
		if _, ok := s.gone[path]; ok && f == nil {
			delete(s.gone, path) // already reported by the re-read
			return Change{}, false
		}
		if f == nil {
			if t.Kind == kindTree && !s.outside(t, path) && absent(path) {
				// The deletion of a file the set never held: one created
				// and removed before its creation record was read.
				return Change{File: s.transient(t, path, e.File), Action: ActionDeleted, Gone: true}, true
			}
			return Change{}, false
		}
		s.forget(f)
		s.sweep(t, sensor.Key{})
		return Change{File: copyFile(f), Action: ActionDeleted, Gone: true}, true
	}
	f := s.byPath[path]
	if f == nil {
		f = s.byKey[e.File]
	}
	if f == nil {
		if t.Kind == kindTree && e.File.Ino != 0 && !s.outside(t, path) {
			// A file in a tree the kernel matched by ancestry but we never saw.
			f = s.seedTreeFile(t, path)
		}
		if f == nil {
			return Change{}, false
		}
	}
	if e.Match == sensor.MatchName && e.File.Ino != 0 && f.Key != e.File {
		// The kernel followed a replacement through the name: follow here
		// too, if the path still holds that inode. A file that a rename
		// replaced since keeps its name while a writer holds it open; a
		// write to it no longer changes the watched path, and following it
		// would put the old inode back in the map in place of the current.
		if cur, _, err := sensor.KeyOf(f.Path, true); err == nil && cur != e.File {
			if s.byKey[e.File] == nil {
				s.unwatch(e.File) // the kernel followed it; the path has moved on
			}
			return Change{}, false
		}
		s.rekey(f, e.File)
	}
	action := ActionModified
	switch e.Op {
	case sensor.OpSetattr, sensor.OpSetxattr, sensor.OpRemovexattr, sensor.OpSetflags:
		action = ActionAttributesChanged
	}
	return Change{File: copyFile(f), Action: action}, true
}

// stale catches a reused inode number: a record matched by an inode the map
// still held although the watch set had already let it go (the file at the
// watched path was replaced or deleted, and the freed number was given to a
// new, unrelated file before the kernel's map caught up — the tracepoint
// object drops replaced inodes only once their record is read), or reached
// under another name while the watched path holds a different inode. The
// kernel's entry is dropped and the record ignored.
func (s *Set) stale(t *Target, e *sensor.Event) bool {
	if e.Match != sensor.MatchInode || e.File.Ino == 0 || e.Op == sensor.OpRename || e.Op == sensor.OpLink {
		return false
	}
	f := s.byKey[e.File]
	if f == nil {
		if t.Kind != kindFile && e.File == t.Key {
			return true // the watched directory itself (chmod, touch): its entry stays
		}
		s.unwatch(e.File)
		return true
	}
	if !creation(e.Op) && (e.Path == "" || filepath.Base(e.Path) == filepath.Base(f.Path)) {
		return false
	}
	cur, _, err := sensor.KeyOf(f.Path, true)
	if err == nil && cur == e.File {
		if creation(e.Op) {
			// Created under another name and renamed onto the watched path
			// since (a replace's temporary file whose record is read late):
			// the rename's own record reports it; the entry stays.
			return true
		}
		return false // another hard link to the watched file
	}
	delete(s.byKey, e.File)
	s.unwatch(e.File)
	if f.Key == e.File {
		f.Key = sensor.Key{}
		if err == nil && cur != e.File {
			s.rekey(f, cur)
		}
	}
	return true
}

// creation reports whether an operation makes a new directory entry.
func creation(op sensor.Op) bool {
	switch op {
	case sensor.OpCreate, sensor.OpMkdir, sensor.OpSymlink, sensor.OpMknod:
		return true
	}
	return false
}

// pathOf turns a record's anchor and relative path into a full path.
func (s *Set) pathOf(t *Target, e *sensor.Event) string {
	switch t.Kind {
	case kindFile:
		if e.Match == sensor.MatchInode && e.Op != sensor.OpRename && e.Op != sensor.OpLink {
			if f := s.byKey[e.File]; f != nil {
				return f.Path
			}
		}
		return t.Path
	default:
		if e.Path == "" {
			if f := s.byKey[e.File]; f != nil {
				return f.Path
			}
			return ""
		}
		if e.Match == sensor.MatchInode {
			if f := s.byKey[e.File]; f != nil && filepath.Base(f.Path) == filepath.Base(e.Path) {
				return f.Path
			}
			if f := s.byKey[e.File2]; f != nil && e.Op == sensor.OpRename {
				return filepath.Join(filepath.Dir(f.Path), filepath.Base(e.Path))
			}
		}
		return filepath.Join(t.Path, e.Path)
	}
}

func (s *Set) created(t *Target, path string, k sensor.Key, action Action) (Change, bool) {
	switch t.Kind {
	case kindAnchor:
		if ok, _ := filepath.Match(t.Pattern, path); !ok {
			return Change{}, false
		}
		if err := s.addFile(t.Rule, path); err != nil {
			s.problems = append(s.problems, err)
			return Change{}, false
		}
	case kindTree:
		if s.outside(t, path) {
			if k.Ino != 0 && s.byKey[k] == nil {
				s.unwatch(k) // the kernel followed it; we do not want it
			}
			return Change{}, false
		}
		// Any type of entry is a member: a directory, a symlink (never
		// followed), a FIFO, a device node or a socket, so that its later
		// removal or change is reported too.
		_, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) && s.byPath[path] == nil {
			// Created and gone again before its record was read (a file
			// dropped into a watched tree and removed at once): still a
			// creation, by its actor; there is nothing left to watch.
			return Change{File: s.transient(t, path, k), Action: action}, true
		}
		s.seedTreeFile(t, path)
	case kindFile:
		if f := s.byPath[path]; f != nil && k.Ino != 0 && f.Key != k {
			s.rekey(f, k)
		}
	}
	f := s.byPath[path]
	if f == nil {
		return Change{}, false
	}
	return Change{File: copyFile(f), Action: action}, true
}

func (s *Set) renamed(t *Target, path string, e *sensor.Event) (Change, bool) {
	if t.Kind == kindFile {
		f := s.byPath[t.Path]
		if f == nil {
			return Change{}, false
		}
		// A rename whose target is the watched path replaced the file, even
		// when the inode it names is the one already known: the tracepoint
		// object reads that inode when it reads the record, after later
		// replaces, and a freed number comes back on ext4.
		intoPath := e.Dir == t.Dir && e.Path == filepath.Base(t.Path)
		if e.File2.Ino != 0 && e.File2 == f.Key && !intoPath {
			// The watched file itself moved: its path is empty now.
			c := Change{File: copyFile(f), Action: ActionRenamed, TargetPath: s.newLocation(t, e), Gone: true}
			s.forget(f)
			return c, true
		}
		// Something else was renamed over the watched path, or into it
		// while it was missing.
		action := ActionReplaced
		if e.File.Ino == 0 && f.Key == (sensor.Key{}) {
			action = ActionCreated
		}
		if e.File2.Ino != 0 {
			s.rekey(f, e.File2)
		}
		s.sweep(t, f.Key)
		return Change{File: copyFile(f), Action: action}, true
	}
	moved := s.byKey[e.File2]
	if f := s.byPath[path]; f != nil && (e.Match == sensor.MatchName || e.Match == sensor.MatchInode && e.File == f.Key) {
		var from string
		if moved != nil && moved != f {
			from = moved.Path
			s.drop(moved) // the source name is gone; its inode now stands here
		}
		if e.File2.Ino != 0 && f.Key != e.File2 {
			s.rekey(f, e.File2)
		}
		return Change{File: copyFile(f), Action: ActionReplaced, SourcePath: from}, true
	}
	if e.Match == sensor.MatchAncestor {
		var from string
		if moved != nil && moved.Path != path {
			from = moved.Path
			s.drop(moved)
		}
		c, ok := s.created(t, path, e.File2, ActionCreated)
		if ok && from != "" {
			c.Action, c.SourcePath = ActionRenamed, from
		}
		return c, ok
	}
	if moved != nil {
		c := Change{File: copyFile(moved), Action: ActionRenamed, TargetPath: s.newLocation(t, e), Gone: true}
		s.forget(moved)
		return c, true
	}
	return Change{}, false
}

// newLocation names where a watched file was renamed to, as far as the
// record tells: the kernel gives the new name and its directory's inode.
func (s *Set) newLocation(t *Target, e *sensor.Event) string {
	if e.Path == "" {
		return ""
	}
	if filepath.IsAbs(e.Path) {
		return e.Path
	}
	if t.Kind == kindFile && e.Dir == t.Dir {
		return filepath.Join(filepath.Dir(t.Path), e.Path)
	}
	if f := s.byKey[e.File2]; f != nil && e.Dir == t.Key {
		return filepath.Join(t.Path, e.Path)
	}
	return e.Path
}

// drop forgets a path whose inode moved elsewhere, without touching the
// kernel's entry for the inode.
func (s *Set) drop(f *File) {
	if s.byKey[f.Key] == f {
		delete(s.byKey, f.Key)
	}
	if t := s.targets[f.Target]; t != nil && t.Kind == kindFile {
		f.Key = sensor.Key{}
		t.Key = sensor.Key{}
		return
	}
	delete(s.byPath, f.Path)
}

// rekey records that f's path now holds inode k: the new inode joins the
// kernel's map before the old one leaves it, so there is no moment when
// neither is watched.
func (s *Set) rekey(f *File, k sensor.Key) {
	if err := s.k.WatchInode(k, f.Target, sensor.WatchFile); err != nil {
		s.problems = append(s.problems, fmt.Errorf("following %s to inode %s: %w", f.Path, k, err))
	}
	if old := f.Key; old != (sensor.Key{}) && old != k && s.byKey[old] == f {
		delete(s.byKey, old)
		s.unwatch(old)
	}
	f.Key = k
	s.byKey[k] = f
	if t := s.targets[f.Target]; t != nil && t.Kind == kindFile {
		t.Key = k
	}
}

// forget drops a file that no longer stands at its path. A file target
// keeps its name entry (it may come back); a tree member goes.
func (s *Set) forget(f *File) {
	if f.Key != (sensor.Key{}) && s.byKey[f.Key] == f {
		delete(s.byKey, f.Key)
		s.unwatch(f.Key)
	}
	f.Key = sensor.Key{}
	if t := s.targets[f.Target]; t != nil && t.Kind == kindFile {
		t.Key = sensor.Key{}
		return
	}
	delete(s.byPath, f.Path)
}

// unwatch drops an inode's kernel entry. The watch set is the only writer of
// the kernel's maps in user space (the sensor only reads them), and every
// failure becomes a problem (a not-watched record), never dropped.
func (s *Set) unwatch(k sensor.Key) {
	if err := s.k.UnwatchInode(k); err != nil {
		s.problems = append(s.problems, err)
	}
}

// sweep drops a file target's other kernel entries, keeping keep: inodes
// that stood at the watched path for a moment and that the kernel followed
// on its own (a write through the watched name reseeds), which the watch set
// never held. The kprobe object drops a replaced inode inside rename() and
// unlink(); the tracepoint object leaves that to user space.
func (s *Set) sweep(t *Target, keep sensor.Key) {
	l, ok := s.k.(lister)
	if t.Kind != kindFile || !ok {
		return
	}
	ents, err := l.Entries()
	if err != nil {
		s.problems = append(s.problems, fmt.Errorf("listing the kernel's entries for %s: %w", t.Path, err))
		return
	}
	for _, e := range ents {
		if e.ID == t.ID && e.Key != keep && e.Flags&sensor.WatchFile != 0 && s.byKey[e.Key] == nil {
			s.unwatch(e.Key)
		}
	}
}

// transient describes a tree member that is already gone: reported, never
// held in the set.
func (s *Set) transient(t *Target, path string, k sensor.Key) *File {
	return &File{Path: path, Rule: t.Rule, Kind: s.kindOf(t.Rule, path), Key: k, Target: t.ID}
}

// absent says that nothing stands at path now.
func absent(path string) bool {
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}

func copyFile(f *File) *File {
	c := *f
	return &c
}

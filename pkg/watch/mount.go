package watch

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// ownMountNS is the inode of vigil's own mount namespace
// (/proc/self/ns/mnt); 0 when it cannot be read.
func ownMountNS() uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/mnt", &st); err != nil {
		return 0
	}
	return uint32(st.Ino)
}

// MountNS is the mount namespace whose mounts Mount applies: vigil's own.
func (s *Set) MountNS() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mntNS
}

// Mount applies a mount or umount record (sensor.MatchMount: the kernel
// sends every mount, unfiltered). A mount in another mount namespace than
// vigil's (a container mounting over its own /etc/passwd) changes nothing
// that vigil's readers see, and is ignored; so is a failed one.
//
// For a mount in vigil's namespace, every watched path at or below the
// mountpoint gets one Change: ActionShadowed for a mount (the path is
// shadowed: readers now see what the mount shows there, or nothing),
// ActionUncovered for an umount (the path is uncovered: readers see again
// what the mount hid). The watch set follows what readers now see: each
// such file is re-keyed to the inode now at its path (so later writes to
// the visible file are seen, and its content is compared with the
// baseline by the consumer), a file target's name entry moves to the
// directory now at its parent, a tree or an anchor at or below the
// mountpoint is watched at the directory now at its root, and the entries
// a mount brings into a tree are seeded (reported with the same action).
// A path that shows nothing any more is Gone.
//
// A mount strictly inside a watched tree (the tree's root not at or below
// the mountpoint) re-keys the tree's files below it, but the kernel's walk
// up from a new file stops at that mount's root: files created below such
// a mountpoint are not seen live (docs/events.md).
func (s *Set) Mount(e *sensor.Event) []Change {
	if (e.Op != sensor.OpMount && e.Op != sensor.OpUmount) || e.Ret != 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mntNS != 0 && e.Proc.MntNS != s.mntNS {
		return nil
	}
	mp := filepath.Clean(e.Path)
	if !filepath.IsAbs(mp) {
		return nil
	}
	action := ActionShadowed
	if e.Op == sensor.OpUmount {
		action = ActionUncovered
	}
	ids := make([]uint64, 0, len(s.targets))
	for id := range s.targets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	// The directories first: trees and anchors at or below the mountpoint,
	// and the parents of file targets.
	for _, id := range ids {
		t := s.targets[id]
		switch {
		case t.Kind != kindFile && expand.Under(mp, t.Path):
			s.rewatchDir(t)
		case t.Kind == kindFile && expand.Under(mp, filepath.Dir(t.Path)):
			s.moveName(t)
		}
	}
	// Then every watched file at or below the mountpoint.
	paths := make([]string, 0)
	for p := range s.byPath {
		if expand.Under(mp, p) {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []Change
	for _, p := range paths {
		f := s.byPath[p]
		k, _, err := sensor.KeyOf(p, true)
		if err != nil {
			c := Change{File: copyFile(f), Action: action, Gone: true}
			s.forget(f)
			out = append(out, c)
			continue
		}
		if k != f.Key {
			s.rekey(f, k)
		}
		out = append(out, Change{File: copyFile(f), Action: action})
	}
	// Entries a mount brings into a tree (an overlay's upper layer, a
	// bind of another directory): members now, reported like the rest.
	for _, id := range ids {
		t := s.targets[id]
		if t.Kind != kindTree {
			continue
		}
		root := t.Path
		switch {
		case expand.Under(mp, t.Path):
		case expand.Under(t.Path, mp) && !s.outside(t, mp):
			root = mp
		default:
			continue
		}
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			if f := s.seedNew(t, root); f != nil {
				out = append(out, Change{File: copyFile(f), Action: action})
			}
			continue
		}
		var found []string
		expand.Walk(&t.Rule.Watch, root, s.maxDepth-expand.Level(t.Path, root), func(p string, typ fs.FileMode) {
			// The entries it brings, as addDir seeds a tree's.
			if p != root && s.byPath[p] == nil && !s.outside(t, p) {
				found = append(found, p)
			}
		})
		for _, p := range found {
			if f := s.seedNew(t, p); f != nil {
				out = append(out, Change{File: copyFile(f), Action: action})
			}
		}
	}
	return out
}

// seedNew makes a path a tree's member if something stands there.
func (s *Set) seedNew(t *Target, p string) *File {
	if s.byPath[p] != nil || p == t.Path {
		return nil
	}
	if _, err := os.Lstat(p); err != nil {
		return nil
	}
	return s.seedTreeFile(t, p)
}

// rewatchDir watches a tree's or an anchor's directory at the inode now at
// its path, after a mount or umount at or above it.
func (s *Set) rewatchDir(t *Target) {
	old := t.Key
	cur, _, err := sensor.KeyOf(t.Path, false)
	if err != nil || cur == old {
		return
	}
	if old != (sensor.Key{}) && s.lastDirTarget(old) == t {
		if s.namesIn[old] > 0 {
			err = s.k.WatchInode(old, 0, sensor.WatchNames)
		} else {
			err = s.k.UnwatchDir(t.Path, old)
		}
		if err != nil {
			s.problems = append(s.problems, err)
		}
	}
	if err := s.watchDir(t); err != nil {
		s.problems = append(s.problems, err)
	}
}

// moveName moves a file target's name entry to the directory now at its
// parent path, after a mount or umount at or above that directory.
func (s *Set) moveName(t *Target) {
	cur, _, err := sensor.KeyOf(filepath.Dir(t.Path), false)
	if err != nil || cur == t.Dir {
		return
	}
	name := filepath.Base(t.Path)
	if err := s.holdNames(cur); err != nil {
		s.problems = append(s.problems, err)
		return
	}
	if err := s.k.WatchName(cur, name, t.ID); err != nil {
		s.problems = append(s.problems, err)
		return
	}
	if err := s.k.UnwatchName(t.Dir, name); err != nil {
		s.problems = append(s.problems, err)
	}
	s.releaseNames(t.Dir)
	t.Dir = cur
}

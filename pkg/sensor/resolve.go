package sensor

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// resolve completes a tracepoint object's path record (MatchPath): the
// kernel could filter the path only by its name's hash and its directory,
// so here the path is matched against the watch set exactly and the inodes
// are read. It only reads the kernel's maps: keeping them in step (the new
// inode at a watched path joins, the replaced or unlinked one leaves) is the
// watch set's (pkg/watch, Set.Apply), as for every other record. It returns
// false for a record that matches nothing (another file with a watched
// file's name).
func (s *Sensor) resolve(e *Event) bool {
	target, source := e.Path, e.Path2
	m, ok := s.matchPath(target)
	switch e.Op {
	case OpRename, OpLink:
		if k, _, err := KeyOf(target, true); err == nil {
			e.File2 = k
		}
		// A file renamed or linked away from a watched place is reported
		// where it went, as the kprobe object does (its directory and name).
		atTarget := ok
		if !ok && source != "" {
			if w, found := s.lookupWatch(e.File2); found && w.Flags&WatchFile != 0 {
				// A watched file renamed or linked away: it is watched by inode.
				m = pathMatch{id: w.ID, dir: parentKey(target), rel: filepath.Base(target), ok: true}
				ok = true
			} else if sm, sok := s.matchPath(source); sok {
				m = pathMatch{id: sm.id, dir: parentKey(target), rel: filepath.Base(target),
					byName: sm.byName, anchor: sm.anchor, ok: true}
				ok = true
			}
		}
		if atTarget && e.Op == OpRename && e.Flags&FlagExchange == 0 && m.byName {
			// The inode the rename replaced: what the map still holds for
			// the entry besides the new one.
			for _, old := range s.keysWithID(m.id) {
				if old != e.File2 {
					e.File = old
				}
			}
		}
		if source != "" {
			e.Dir2 = parentKey(source)
			e.Path2 = filepath.Base(source)
		}
	case OpUnlink, OpRmdir:
		if ok && m.byName {
			// The name is gone; so is its inode unless another name holds it.
			for _, old := range s.keysWithID(m.id) {
				e.File = old
				m.byInode = true
				if !stillLinked(old, filepath.Dir(target)) {
					e.Flags |= FlagGone
				}
			}
		}
	default:
		// Writes, attributes (setattr, setxattr, removexattr, setflags)
		// and creations (create, mkdir, symlink, mknod): the inode now at
		// the target path, never followed. Path2 of a symlink is its target
		// as given (FlagStr2): never resolved.
		k, _, err := KeyOf(target, true)
		if err == nil {
			e.File = k
			if w, found := s.lookupWatch(k); found && w.Flags&(WatchFile|WatchRecursive) != 0 {
				if !ok {
					m = pathMatch{id: w.ID, dir: parentKey(target), rel: filepath.Base(target), ok: true}
					ok = true
				}
				m.byInode = true
			}
		}
	}
	if !ok {
		return false
	}
	e.WatchID = m.id
	e.Dir = m.dir
	e.Path = m.rel
	e.Flags &^= FlagPathAbs
	// Say how it matched, as the kprobe object would have.
	switch {
	case m.byInode:
		e.Match = MatchInode
	case m.byName:
		e.Match = MatchName
	case m.anchor:
		e.Match = MatchAncestor
	default:
		e.Match = MatchInode
	}
	return true
}

type pathMatch struct {
	id      uint64
	dir     Key    // the anchor: parent (name) or watched ancestor (recursive)
	rel     string // the path below the anchor
	byName  bool
	anchor  bool // matched through a directory (recursive or anchor)
	byInode bool // the file's own inode is watched
	ok      bool
}

// matchPath finds the watch entry of an absolute path: a watched name in
// its parent, or a recursively watched ancestor.
func (s *Sensor) matchPath(p string) (pathMatch, bool) {
	if p == "" || p[0] != '/' {
		return pathMatch{}, false
	}
	parent := filepath.Dir(p)
	pk, _, perr := KeyOf(parent, false)
	if err := perr; err == nil {
		var v watchValue
		nk := nameKey{Dev: pk.Dev, DirIno: pk.Ino, Hash: HashName(filepath.Base(p))}
		if err := s.names.Lookup(nk, &v); err == nil {
			return pathMatch{id: v.ID, dir: pk, rel: filepath.Base(p), byName: true, ok: true}, true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return pathMatch{}, false
	}
	// A directory that is gone by now is passed over, or, if it was a
	// watched one, known by the inode it had: a file unlinked, then its
	// directories removed up to and including the watched tree's root (a
	// package manager's removal) before the record is read, is still
	// below the watched tree.
	dir, rel := parent, filepath.Base(p)
	for i := 0; i < s.maxDepth; i++ {
		// The parent was statted just above: its key is not read twice
		// (one stat less per record of a recursive watch: the reader's
		// speed decides how much of a burst the ring buffer must hold).
		k, err := pk, perr
		if i > 0 {
			k, _, err = KeyOf(dir, false)
		}
		known := err == nil
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
			k, known = s.dirKey(dir)
		}
		if !known {
			// passed over
		} else if w, found := s.lookupWatch(k); found && w.Flags&(WatchRecursive|WatchAnchor) != 0 &&
			(w.Depth == 0 || i < int(w.Depth)) {
			return pathMatch{id: w.ID, dir: k, rel: rel, anchor: true, ok: true}, true
		}
		if dir == "/" {
			break
		}
		rel = filepath.Join(filepath.Base(dir), rel)
		dir = filepath.Dir(dir)
	}
	return pathMatch{}, false
}

func (s *Sensor) lookupWatch(k Key) (watchValue, bool) {
	var v watchValue
	if k.Ino == 0 {
		return v, false
	}
	if err := s.watch.Lookup(k, &v); err != nil {
		return v, false
	}
	return v, true
}

// keysWithID lists the file entries of one watch id.
func (s *Sensor) keysWithID(id uint64) []Key {
	var out []Key
	var k Key
	var v watchValue
	s.watch.ForEach(&k, &v, func() {
		if v.ID == id && v.Flags&WatchFile != 0 {
			out = append(out, k)
		}
	})
	return out
}

func parentKey(p string) Key {
	k, _, err := KeyOf(filepath.Dir(p), false)
	if err != nil {
		return Key{}
	}
	return k
}

// stillLinked reports whether an inode still has a name in dir after one
// of its names went. A link in another directory is not seen here, so that
// entry is dropped (the kprobe object reads i_nlink in the kernel instead).
func stillLinked(k Key, dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, d := range ents {
		if kk, _, err := KeyOf(filepath.Join(dir, d.Name()), true); err == nil && kk == k {
			return true
		}
	}
	return false
}

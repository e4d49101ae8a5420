package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// newSet seeds a set from rules over a fake kernel.
func newSet(t *testing.T, maxDepth int, rules ...config.Watch) (*Set, *fakeKernel) {
	t.Helper()
	k := newFakeKernel()
	s := New(k, maxDepth, nil)
	if errs := s.Add(rules); len(errs) > 0 {
		t.Fatal(errs)
	}
	if p := s.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	return s, k
}

// targetOf returns the id of the target of the given kind at path.
func targetOf(t *testing.T, s *Set, kind targetKind, path string) uint64 {
	t.Helper()
	for _, tg := range s.targets {
		if tg.Kind == kind && tg.Path == path {
			return tg.ID
		}
	}
	t.Fatalf("no target of kind %d at %s", kind, path)
	return 0
}

func wantChange(t *testing.T, c Change, ok bool, action Action, path string) {
	t.Helper()
	if !ok {
		t.Fatalf("Apply: not ok, want %s of %s", action, path)
	}
	if c.Action != action || c.File == nil || c.File.Path != path {
		t.Fatalf("Apply = %+v (file %+v), want %s of %s", c, c.File, action, path)
	}
}

func wantIgnored(t *testing.T, c Change, ok bool) {
	t.Helper()
	if ok {
		t.Fatalf("Apply = %+v (file %+v), want it ignored", c, c.File)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// A watched file: the records the kernel sends for what is done to it.
func TestApplyFile(t *testing.T) {
	tests := []struct {
		name string
		// do changes the disk and returns the record the kernel would send.
		do     func(t *testing.T, f fileFixture) *sensor.Event
		action Action
		gone   bool
		target string // Change.TargetPath, relative to the directory
		check  func(t *testing.T, f fileFixture, s *Set, k *fakeKernel)
	}{
		{
			name: "write",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				return &sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					Dir: f.dirKey, Path: "passwd"}
			},
			action: "modified",
			check: func(t *testing.T, f fileFixture, s *Set, k *fakeKernel) {
				wantEntry(t, k, f.key, entry{ID: f.id, Flags: sensor.WatchFile})
			},
		},
		{
			name: "truncate",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				return &sensor.Event{Op: sensor.OpTruncate, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					Dir: f.dirKey, Path: "passwd"}
			},
			action: "modified",
		},
		{
			name: "setattr",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				return &sensor.Event{Op: sensor.OpSetattr, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					Dir: f.dirKey, Path: "passwd"}
			},
			action: "attributes-changed",
		},
		{
			name: "write through another hard link",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				if err := os.Link(f.path, filepath.Join(f.dir, "passwd-hard")); err != nil {
					t.Fatal(err)
				}
				return &sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					Dir: f.dirKey, Path: "passwd-hard"}
			},
			action: "modified",
			check: func(t *testing.T, f fileFixture, s *Set, k *fakeKernel) {
				wantEntry(t, k, f.key, entry{ID: f.id, Flags: sensor.WatchFile})
			},
		},
		{
			name: "rename over it, matched by inode",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				tmp := filepath.Join(f.dir, "passwd.tmp")
				mkfile(t, tmp)
				rename(t, tmp, f.path)
				return &sensor.Event{Op: sensor.OpRename, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					File2: keyOf(t, f.path), Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd", Path2: "passwd.tmp"}
			},
			action: "replaced",
			check:  checkReplaced,
		},
		{
			name: "rename over it, matched by name",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				tmp := filepath.Join(f.dir, "passwd.tmp")
				mkfile(t, tmp)
				rename(t, tmp, f.path)
				return &sensor.Event{Op: sensor.OpRename, Match: sensor.MatchName, WatchID: f.id, File: f.key,
					File2: keyOf(t, f.path), Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd", Path2: "passwd.tmp"}
			},
			action: "replaced",
			check:  checkReplaced,
		},
		{
			// The tracepoint object reads the target's inode when it reads
			// the record: after a burst of replaces, several records name the
			// inode the watch set already moved to. Still a replace, and the
			// file stays watched.
			name: "rename over it naming the inode already known",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				return &sensor.Event{Op: sensor.OpRename, Match: sensor.MatchName, WatchID: f.id, File: f.key,
					File2: f.key, Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd", Path2: "passwd.tmp"}
			},
			action: "replaced",
			check: func(t *testing.T, f fileFixture, s *Set, k *fakeKernel) {
				if got := fileAt(t, s, f.path); got.Key != f.key {
					t.Errorf("key %s, want %s", got.Key, f.key)
				}
				wantEntry(t, k, f.key, entry{ID: f.id, Flags: sensor.WatchFile})
			},
		},
		{
			name: "write through the name after a replace",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				tmp := filepath.Join(f.dir, "passwd.tmp")
				mkfile(t, tmp)
				rename(t, tmp, f.path) // no record: the kernel followed the name
				return &sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchName, WatchID: f.id,
					File: keyOf(t, f.path), Dir: f.dirKey, Path: "passwd", Flags: sensor.FlagReseeded}
			},
			action: "modified",
			check:  checkReplaced,
		},
		{
			name: "renamed away",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				rename(t, f.path, filepath.Join(f.dir, "passwd.bak"))
				return &sensor.Event{Op: sensor.OpRename, Match: sensor.MatchInode, WatchID: f.id,
					File2: f.key, Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd.bak", Path2: "passwd"}
			},
			action: "renamed",
			gone:   true,
			target: "passwd.bak",
			check:  checkGone,
		},
		{
			name: "unlinked",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				if err := os.Remove(f.path); err != nil {
					t.Fatal(err)
				}
				return &sensor.Event{Op: sensor.OpUnlink, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					Dir: f.dirKey, Path: "passwd", Flags: sensor.FlagGone}
			},
			action: "deleted",
			gone:   true,
			check:  checkGone,
		},
		{
			name: "hard linked",
			do: func(t *testing.T, f fileFixture) *sensor.Event {
				if err := os.Link(f.path, filepath.Join(f.dir, "passwd-hard")); err != nil {
					t.Fatal(err)
				}
				return &sensor.Event{Op: sensor.OpLink, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
					File2: f.key, Dir: f.dirKey, Path: "passwd-hard", Path2: "passwd"}
			},
			action: "linked",
			target: "passwd-hard",
			check: func(t *testing.T, f fileFixture, s *Set, k *fakeKernel) {
				wantEntry(t, k, f.key, entry{ID: f.id, Flags: sensor.WatchFile})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFileFixture(t)
			e := tc.do(t, f)
			c, ok := f.s.Apply(e)
			wantChange(t, c, ok, tc.action, f.path)
			if c.Gone != tc.gone {
				t.Fatalf("Gone = %v", c.Gone)
			}
			want := ""
			if tc.target != "" {
				want = filepath.Join(f.dir, tc.target)
			}
			if c.TargetPath != want {
				t.Fatalf("TargetPath = %q, want %q", c.TargetPath, want)
			}
			if tc.check != nil {
				tc.check(t, f, f.s, f.k)
			}
		})
	}
}

type fileFixture struct {
	s           *Set
	k           *fakeKernel
	dir, path   string
	id          uint64
	key, dirKey sensor.Key
}

func newFileFixture(t *testing.T) fileFixture {
	root := tempRoot(t)
	f := fileFixture{dir: filepath.Join(root, "etc")}
	f.path = filepath.Join(f.dir, "passwd")
	mkfile(t, f.path)
	f.s, f.k = newSet(t, 0, config.Watch{Path: f.path})
	f.id = targetOf(t, f.s, kindFile, f.path)
	f.key = keyOf(t, f.path)
	f.dirKey = dirKeyOf(t, f.dir)
	return f
}

// checkReplaced: the set and the kernel follow the new inode at the path.
func checkReplaced(t *testing.T, f fileFixture, s *Set, k *fakeKernel) {
	t.Helper()
	now := keyOf(t, f.path)
	if got := fileAt(t, s, f.path); got.Key != now {
		t.Fatalf("set holds %v, the file is %v", got.Key, now)
	}
	if s.byKey[f.key] != nil {
		t.Fatal("the set still holds the replaced inode")
	}
	wantNoEntry(t, k, f.key)
	wantEntry(t, k, now, entry{ID: f.id, Flags: sensor.WatchFile})
	if k.names[nameKey{f.dirKey, "passwd"}] != f.id {
		t.Fatal("the name is no longer watched")
	}
}

// checkGone: the path stays watched by name, the inode is let go.
func checkGone(t *testing.T, f fileFixture, s *Set, k *fakeKernel) {
	t.Helper()
	if got := fileAt(t, s, f.path); got.Key != (sensor.Key{}) {
		t.Fatalf("a gone file keeps key %v", got.Key)
	}
	if len(s.byKey) != 0 {
		t.Fatalf("byKey = %v", s.byKey)
	}
	wantNoEntry(t, k, f.key)
	if k.names[nameKey{f.dirKey, "passwd"}] != f.id {
		t.Fatal("the name is no longer watched")
	}
}

// A missing file whose directory exists appears: by creation, by a rename
// into its name, or by a hard link.
func TestApplyMissingAppears(t *testing.T) {
	for _, how := range []string{"create", "rename", "link"} {
		t.Run(how, func(t *testing.T) {
			root := tempRoot(t)
			p := filepath.Join(root, "ld.so.preload")
			s, k := newSet(t, 0, config.Watch{Path: p})
			id := targetOf(t, s, kindFile, p)
			src := filepath.Join(root, "src")
			e := &sensor.Event{Match: sensor.MatchName, WatchID: id, Dir: dirKeyOf(t, root),
				Path: "ld.so.preload"}
			switch how {
			case "create":
				mkfile(t, p)
				e.Op, e.File = sensor.OpCreate, keyOf(t, p)
			case "rename":
				mkfile(t, src)
				rename(t, src, p)
				e.Op, e.File2, e.Dir2, e.Path2 = sensor.OpRename, keyOf(t, p), e.Dir, "src"
			case "link":
				mkfile(t, src)
				if err := os.Link(src, p); err != nil {
					t.Fatal(err)
				}
				e.Op, e.File2, e.Path2 = sensor.OpLink, keyOf(t, p), "src"
			}
			c, ok := s.Apply(e)
			wantChange(t, c, ok, "created", p)
			if c.Gone || c.File.Key != keyOf(t, p) {
				t.Fatalf("change = %+v, file %+v", c, c.File)
			}
			if fileAt(t, s, p).Key != keyOf(t, p) {
				t.Fatal("the set does not hold the new inode")
			}
			wantEntry(t, k, keyOf(t, p), entry{ID: id, Flags: sensor.WatchFile})
		})
	}
}

// A missing file below a missing directory: its anchor reports the creation.
func TestApplyMissingParentCreated(t *testing.T) {
	root := tempRoot(t)
	p := filepath.Join(root, "a", "b", ".ssh", "authorized_keys")
	s, k := newSet(t, 0, config.Watch{Path: p})
	anchor := targetOf(t, s, kindAnchor, root)

	other := filepath.Join(root, "a", "b", ".ssh", "other")
	mkfile(t, other)
	c, ok := s.Apply(&sensor.Event{Op: sensor.OpCreate, Match: sensor.MatchAncestor, WatchID: anchor,
		File: keyOf(t, other), Dir: dirKeyOf(t, root), Path: "a/b/.ssh/other"})
	wantIgnored(t, c, ok)

	mkfile(t, p)
	c, ok = s.Apply(&sensor.Event{Op: sensor.OpCreate, Match: sensor.MatchAncestor, WatchID: anchor,
		File: keyOf(t, p), Dir: dirKeyOf(t, root), Path: "a/b/.ssh/authorized_keys"})
	wantChange(t, c, ok, "created", p)
	id := targetOf(t, s, kindFile, p)
	wantEntry(t, k, keyOf(t, p), entry{ID: id, Flags: sensor.WatchFile})
	if k.names[nameKey{dirKeyOf(t, filepath.Dir(p)), "authorized_keys"}] != id {
		t.Fatal("the new file's name is not watched")
	}
	wantNoEntry(t, k, keyOf(t, other))
}

func TestApplyGlob(t *testing.T) {
	root := tempRoot(t)
	home := filepath.Join(root, "home")
	alice := filepath.Join(home, "alice", ".ssh", "authorized_keys")
	mkfile(t, alice)
	pattern := filepath.Join(home, "*", ".ssh", "authorized_keys")
	s, k := newSet(t, 0, config.Watch{Path: pattern, Kind: "authorized_keys"})
	anchor := targetOf(t, s, kindAnchor, home)

	tests := []struct {
		name, rel string
		op        sensor.Op
		want      bool
	}{
		{"create matching", "bob/.ssh/authorized_keys", sensor.OpCreate, true},
		{"rename matching", "carol/.ssh/authorized_keys", sensor.OpRename, true},
		{"other name", "dave/.ssh/authorized_keys2", sensor.OpCreate, false},
		{"too shallow", "authorized_keys", sensor.OpCreate, false},
		{"other directory", "erin/ssh/authorized_keys", sensor.OpCreate, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(home, tc.rel)
			before := len(s.Files())
			e := &sensor.Event{Op: tc.op, Match: sensor.MatchAncestor, WatchID: anchor, Dir: dirKeyOf(t, home),
				Path: tc.rel}
			if tc.op == sensor.OpRename {
				src := filepath.Join(root, "tmp-keys")
				mkfile(t, src)
				mkdir(t, filepath.Dir(p))
				rename(t, src, p)
				e.File2, e.Path2 = keyOf(t, p), "tmp-keys"
			} else {
				mkfile(t, p)
				e.File = keyOf(t, p)
			}
			c, ok := s.Apply(e)
			if !tc.want {
				wantIgnored(t, c, ok)
				wantNoEntry(t, k, keyOf(t, p))
				if len(s.Files()) != before {
					t.Fatalf("watched %v", paths(s))
				}
				return
			}
			wantChange(t, c, ok, "created", p)
			if c.File.Kind != "authorized_keys" {
				t.Fatalf("kind %q", c.File.Kind)
			}
			id := targetOf(t, s, kindFile, p)
			if id == anchor || c.File.Target != id {
				t.Fatalf("new file's target %d (anchor %d, file target %d)", c.File.Target, anchor, id)
			}
			wantEntry(t, k, keyOf(t, p), entry{ID: id, Flags: sensor.WatchFile})
			if k.names[nameKey{dirKeyOf(t, filepath.Dir(p)), "authorized_keys"}] != id {
				t.Fatal("the new file's name is not watched")
			}
		})
	}
	// The anchor stays, for the next user.
	wantEntry(t, k, dirKeyOf(t, home), entry{ID: anchor, Flags: sensor.WatchAnchor, Depth: 3})
}

// treeFixture is a recursive tree with excludes; the kernel follows what is
// created below it (it adds the new inode under the tree's id).
type treeFixture struct {
	s       *Set
	k       *fakeKernel
	root    string
	id      uint64
	rootKey sensor.Key
}

func newTreeFixture(t *testing.T, recursive bool) treeFixture {
	root := tempRoot(t)
	f := treeFixture{root: filepath.Join(root, "srv")}
	mkfile(t, filepath.Join(f.root, "index.html"))
	mkfile(t, filepath.Join(f.root, "sub", "page.html"))
	f.s, f.k = newSet(t, 0, config.Watch{Path: f.root, Recursive: recursive,
		Exclude: []string{"*.swp", filepath.Join(f.root, "cache")}})
	f.id = targetOf(t, f.s, kindTree, f.root)
	f.rootKey = dirKeyOf(t, f.root)
	return f
}

// create makes a file below the tree and returns the kernel's record,
// having followed the new inode as the kernel does.
func (f treeFixture) create(t *testing.T, rel string) *sensor.Event {
	p := filepath.Join(f.root, rel)
	mkfile(t, p)
	k := keyOf(t, p)
	f.k.inodes[k] = entry{ID: f.id, Flags: sensor.WatchFile | sensor.WatchReseeded}
	return &sensor.Event{Op: sensor.OpCreate, Match: sensor.MatchAncestor, WatchID: f.id, File: k,
		Dir: f.rootKey, Path: rel, Flags: sensor.FlagReseeded}
}

func TestApplyTree(t *testing.T) {
	t.Run("nested create", func(t *testing.T) {
		f := newTreeFixture(t, true)
		c, ok := f.s.Apply(f.create(t, "a/b/c"))
		p := filepath.Join(f.root, "a", "b", "c")
		wantChange(t, c, ok, "created", p)
		if c.File.Target != f.id || c.File.Key != keyOf(t, p) {
			t.Fatalf("file %+v", c.File)
		}
		if fileAt(t, f.s, p).Key != keyOf(t, p) {
			t.Fatal("not seeded")
		}
		wantEntry(t, f.k, keyOf(t, p), entry{ID: f.id, Flags: sensor.WatchFile})

		// Its writes are now its own.
		c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: f.id,
			File: keyOf(t, p), Path: "c"})
		wantChange(t, c, ok, "modified", p)
	})
	for _, rel := range []string{"x.swp", "cache/page", "cache/deep/er", "sub/.page.html.swp"} {
		t.Run("excluded "+rel, func(t *testing.T) {
			f := newTreeFixture(t, true)
			before := paths(f.s)
			c, ok := f.s.Apply(f.create(t, rel))
			wantIgnored(t, c, ok)
			wantNoEntry(t, f.k, keyOf(t, filepath.Join(f.root, rel)))
			if got := paths(f.s); len(got) != len(before) {
				t.Fatalf("watched %v", got)
			}
		})
	}
	t.Run("rename within", func(t *testing.T) {
		f := newTreeFixture(t, true)
		from := filepath.Join(f.root, "index.html")
		to := filepath.Join(f.root, "sub", "moved.html")
		k := keyOf(t, from)
		rename(t, from, to)
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRename, Match: sensor.MatchAncestor, WatchID: f.id,
			File2: k, Dir: f.rootKey, Dir2: f.rootKey, Path: "sub/moved.html", Path2: "index.html"})
		wantChange(t, c, ok, "renamed", to)
		if c.SourcePath != from || c.Gone {
			t.Fatalf("change %+v", c)
		}
		want := []string{filepath.Join(f.root, "sub"), filepath.Join(f.root, "sub", "moved.html"), filepath.Join(f.root, "sub", "page.html")}
		if got := paths(f.s); !reflect.DeepEqual(got, want) {
			t.Fatalf("watched %v, want %v", got, want)
		}
		wantEntry(t, f.k, k, entry{ID: f.id, Flags: sensor.WatchFile})
	})
	t.Run("rename over a member", func(t *testing.T) {
		f := newTreeFixture(t, true)
		p := filepath.Join(f.root, "index.html")
		old := keyOf(t, p)
		tmp := filepath.Join(f.root, ".index.tmp")
		mkfile(t, tmp)
		rename(t, tmp, p)
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRename, Match: sensor.MatchInode, WatchID: f.id,
			File: old, File2: keyOf(t, p), Dir: f.rootKey, Dir2: f.rootKey, Path: "index.html", Path2: ".index.tmp"})
		wantChange(t, c, ok, "replaced", p)
		if fileAt(t, f.s, p).Key != keyOf(t, p) {
			t.Fatal("not rekeyed")
		}
		wantNoEntry(t, f.k, old)
		wantEntry(t, f.k, keyOf(t, p), entry{ID: f.id, Flags: sensor.WatchFile})
	})
	t.Run("unlink a member", func(t *testing.T) {
		f := newTreeFixture(t, true)
		p := filepath.Join(f.root, "sub", "page.html")
		k := keyOf(t, p)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpUnlink, Match: sensor.MatchInode, WatchID: f.id,
			File: k, Path: "page.html"})
		wantChange(t, c, ok, "deleted", p)
		if !c.Gone {
			t.Fatal("not gone")
		}
		wantNoEntry(t, f.k, k)
		if f.s.Covers(p) != true || len(f.s.Files()) != 2 { // index.html and the directory sub
			t.Fatalf("watched %v", paths(f.s))
		}
	})
	t.Run("setattr on a member", func(t *testing.T) {
		f := newTreeFixture(t, true)
		p := filepath.Join(f.root, "index.html")
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpSetattr, Match: sensor.MatchInode, WatchID: f.id,
			File: keyOf(t, p), Dir: f.rootKey, Path: "index.html"})
		wantChange(t, c, ok, "attributes-changed", p)
	})
	// chmod or touch on the tree's own directory: its inode matches (the
	// entry is RECURSIVE); the tree must stay watched.
	for _, recursive := range []bool{true, false} {
		t.Run(fmt.Sprintf("setattr on the root/recursive=%v", recursive), func(t *testing.T) {
			f := newTreeFixture(t, recursive)
			before := f.k.inodes[f.rootKey]
			c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpSetattr, Match: sensor.MatchInode, WatchID: f.id,
				File: f.rootKey, Dir: dirKeyOf(t, filepath.Dir(f.root)), Path: "srv"})
			wantIgnored(t, c, ok)
			wantEntry(t, f.k, f.rootKey, before)
		})
	}
}

// A directory watched without recursion takes its direct children only.
func TestApplyDirNotRecursive(t *testing.T) {
	f := newTreeFixture(t, false)
	c, ok := f.s.Apply(f.create(t, "new.html"))
	wantChange(t, c, ok, "created", filepath.Join(f.root, "new.html"))
	wantEntry(t, f.k, keyOf(t, filepath.Join(f.root, "new.html")), entry{ID: f.id, Flags: sensor.WatchFile})

	for _, rel := range []string{"sub/new.html", "a/b/c"} {
		e := f.create(t, rel)
		c, ok := f.s.Apply(e)
		wantIgnored(t, c, ok)
		wantNoEntry(t, f.k, e.File)
	}
	if got := paths(f.s); len(got) != 3 { // index.html, new.html and the directory sub
		t.Fatalf("watched %v", got)
	}
}

func TestApplyUnknownID(t *testing.T) {
	f := newFileFixture(t)
	other := filepath.Join(f.dir, "other")
	mkfile(t, other)
	k := keyOf(t, other)
	f.k.inodes[k] = entry{ID: 99, Flags: sensor.WatchFile}
	c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: 99, File: k,
		Path: "other"})
	wantIgnored(t, c, ok)
	wantNoEntry(t, f.k, k)
	wantEntry(t, f.k, f.key, entry{ID: f.id, Flags: sensor.WatchFile})
}

// The stale-inode guard: a record matched by an inode the set has let go
// (its number reused for an unrelated file before the kernel's map caught
// up) is ignored and the kernel's entry dropped.
func TestApplyStaleInode(t *testing.T) {
	for _, op := range []sensor.Op{sensor.OpWrite, sensor.OpCreate, sensor.OpSetattr} {
		t.Run("after replace/"+op.String(), func(t *testing.T) {
			f := newFileFixture(t)
			tmp := filepath.Join(f.dir, "passwd.tmp")
			mkfile(t, tmp)
			rename(t, tmp, f.path)
			now := keyOf(t, f.path)
			c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRename, Match: sensor.MatchInode, WatchID: f.id,
				File: f.key, File2: now, Dir: f.dirKey, Path: "passwd", Path2: "passwd.tmp"})
			wantChange(t, c, ok, "replaced", f.path)
			// The kernel's map still has the old number under the file's id.
			f.k.inodes[f.key] = entry{ID: f.id, Flags: sensor.WatchFile}

			c, ok = f.s.Apply(&sensor.Event{Op: op, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
				Dir: f.dirKey, Path: "unrelated"})
			wantIgnored(t, c, ok)
			wantNoEntry(t, f.k, f.key)
			wantEntry(t, f.k, now, entry{ID: f.id, Flags: sensor.WatchFile})
			if fileAt(t, f.s, f.path).Key != now {
				t.Fatal("the watched file lost its key")
			}
		})
	}
	t.Run("created elsewhere while still held", func(t *testing.T) {
		// The watched file went without a record reaching the set, and its
		// number went to a file created under another name.
		f := newFileFixture(t)
		if err := os.Remove(f.path); err != nil {
			t.Fatal(err)
		}
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpCreate, Match: sensor.MatchInode, WatchID: f.id,
			File: f.key, Dir: f.dirKey, Path: "unrelated"})
		wantIgnored(t, c, ok)
		wantNoEntry(t, f.k, f.key)
		if fileAt(t, f.s, f.path).Key != (sensor.Key{}) || len(f.s.byKey) != 0 {
			t.Fatal("the set still holds the reused inode")
		}
	})
	t.Run("created under another name and renamed onto the path since", func(t *testing.T) {
		// A replace storm on ext4: the temporary file got the number the
		// set still holds for the watched file, and was renamed onto the
		// watched path before its creation record was read. The record is
		// not the watched file's, and the file keeps its key and entry.
		f := newFileFixture(t)
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpCreate, Match: sensor.MatchInode, WatchID: f.id,
			File: f.key, Dir: f.dirKey, Path: "passwd.new"})
		wantIgnored(t, c, ok)
		wantEntry(t, f.k, f.key, entry{ID: f.id, Flags: sensor.WatchFile})
		if fileAt(t, f.s, f.path).Key != f.key {
			t.Fatal("the watched file lost its key")
		}
	})
	t.Run("written under another name while the path holds another inode", func(t *testing.T) {
		f := newFileFixture(t)
		moved := filepath.Join(f.dir, "moved")
		rename(t, f.path, moved) // no record reached the set
		mkfile(t, f.path)
		now := keyOf(t, f.path)
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchInode, WatchID: f.id,
			File: f.key, Dir: f.dirKey, Path: "moved"})
		wantIgnored(t, c, ok)
		wantNoEntry(t, f.k, f.key)
		// The set follows what its path holds now.
		if fileAt(t, f.s, f.path).Key != now {
			t.Fatal("not rekeyed to the file now at the path")
		}
		wantEntry(t, f.k, now, entry{ID: f.id, Flags: sensor.WatchFile})
	})
}

// A writer that still holds the file a rename replaced writes to it: the
// kernel matches it through its old name (kept by the unhashed dentry on
// kernels without the in-kernel check, and by the tracepoint object's late
// reads). The path holds another inode now: the record is ignored and the
// map keeps the current inode, not the replaced one.
func TestApplyWriteToReplacedFile(t *testing.T) {
	f := newFileFixture(t)
	tmp := filepath.Join(f.dir, "passwd.tmp")
	mkfile(t, tmp)
	rename(t, tmp, f.path)
	cur := keyOf(t, f.path)
	c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRename, Match: sensor.MatchName, WatchID: f.id, File: f.key,
		File2: cur, Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd", Path2: "passwd.tmp"})
	wantChange(t, c, ok, "replaced", f.path)
	c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpWrite, Match: sensor.MatchName, WatchID: f.id,
		File: f.key, Dir: f.dirKey, Path: "passwd"})
	wantIgnored(t, c, ok)
	checkReplaced(t, f, f.s, f.k)
}

// Gone (a deletion found by a re-read, its record lost): a tree member
// leaves the set and the kernel map; a configured file keeps its name entry
// with no inode, so it is seen if it comes back.
func TestGone(t *testing.T) {
	t.Run("tree member", func(t *testing.T) {
		f := newTreeFixture(t, true)
		p := filepath.Join(f.root, "c")
		f.s.Apply(f.create(t, "c"))
		k := keyOf(t, p)
		wantEntry(t, f.k, k, entry{ID: f.id, Flags: sensor.WatchFile})
		if !f.s.Gone(p) {
			t.Fatal("Gone found nothing")
		}
		wantNoEntry(t, f.k, k)
		for _, q := range paths(f.s) {
			if q == p {
				t.Fatalf("%s still in the set", p)
			}
		}
		if f.s.Gone(p) {
			t.Fatal("gone twice")
		}
		// The live deletion record, read after the re-read reported it, is
		// not reported again.
		c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpUnlink, Match: sensor.MatchAncestor, WatchID: f.id,
			File: k, Dir: f.rootKey, Path: "c"})
		wantIgnored(t, c, ok)
	})
	t.Run("configured file", func(t *testing.T) {
		f := newFileFixture(t)
		if !f.s.Gone(f.path) {
			t.Fatal("Gone found nothing")
		}
		checkGone(t, f, f.s, f.k)
	})
}

// A file created in a tree and removed before its records are read: its
// creation and its deletion are both reported (by their actors, in the
// agent), and the set holds nothing for it. An excluded one stays unreported.
func TestApplyTreeTransient(t *testing.T) {
	f := newTreeFixture(t, true)
	p := filepath.Join(f.root, "dropped")
	create := f.create(t, "dropped")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	before := paths(f.s)
	c, ok := f.s.Apply(create)
	wantChange(t, c, ok, "created", p)
	c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpUnlink, Match: sensor.MatchAncestor, WatchID: f.id,
		File: create.File, Dir: f.rootKey, Path: "dropped"})
	wantChange(t, c, ok, "deleted", p)
	if !c.Gone {
		t.Fatal("a deletion that is not Gone")
	}
	if got := paths(f.s); len(got) != len(before) {
		t.Fatalf("watched %v, was %v", got, before)
	}

	x := f.create(t, "x.swp")
	os.Remove(filepath.Join(f.root, "x.swp"))
	c, ok = f.s.Apply(x)
	wantIgnored(t, c, ok)
	c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpUnlink, Match: sensor.MatchAncestor, WatchID: f.id,
		File: x.File, Dir: f.rootKey, Path: "x.swp"})
	wantIgnored(t, c, ok)
}

// failingKernel is the fake kernel whose WatchInode fails.
type failingKernel struct {
	*fakeKernel
	err error
}

func (k failingKernel) WatchInode(key sensor.Key, id uint64, flags uint32) error {
	k.logf("WatchInode %v %d %d: %v", key, id, flags, k.err)
	return k.err
}

// A failed kernel-map update while following a replaced file is a problem
// (the agent reports it as not-watched), not silently dropped; the change
// itself is still reported.
func TestApplyKernelErrorReported(t *testing.T) {
	f := newFileFixture(t)
	f.s.k = failingKernel{fakeKernel: f.k, err: errors.New("map full")}
	tmp := filepath.Join(f.dir, "passwd.tmp")
	mkfile(t, tmp)
	rename(t, tmp, f.path)
	c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRename, Match: sensor.MatchName, WatchID: f.id, File: f.key,
		File2: keyOf(t, f.path), Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd", Path2: "passwd.tmp"})
	wantChange(t, c, ok, "replaced", f.path)
	p := f.s.Problems()
	if len(p) != 1 || !strings.Contains(p[0].Error(), "map full") || !strings.Contains(p[0].Error(), f.path) {
		t.Fatalf("problems %v, want the failed WatchInode for %s", p, f.path)
	}
}

// The tracepoint object leaves a replaced inode, and any inode the kernel
// followed through the watched name on its own, in the map: a file target's
// replace or deletion drops every entry of the target but the inode now at
// the path, and no entry another target holds.
func TestApplySweepsFollowedInodes(t *testing.T) {
	f := newFileFixture(t)
	lk := listingKernel{f.k}
	f.s.k = lk
	otherID := f.id + 100 // another target's entry
	followed := sensor.Key{Dev: f.key.Dev, Ino: f.key.Ino + 1000001}
	foreign := sensor.Key{Dev: f.key.Dev, Ino: f.key.Ino + 1000002}
	lk.inodes[followed] = entry{ID: f.id, Flags: sensor.WatchFile | sensor.WatchReseeded}
	lk.inodes[foreign] = entry{ID: otherID, Flags: sensor.WatchFile}
	tmp := filepath.Join(f.dir, "passwd.tmp")
	mkfile(t, tmp)
	rename(t, tmp, f.path)
	c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRename, Match: sensor.MatchName, WatchID: f.id,
		File2: keyOf(t, f.path), Dir: f.dirKey, Dir2: f.dirKey, Path: "passwd", Path2: "passwd.tmp"})
	wantChange(t, c, ok, "replaced", f.path)
	checkReplaced(t, f, f.s, f.k)
	wantNoEntry(t, f.k, followed)
	wantEntry(t, f.k, foreign, entry{ID: otherID, Flags: sensor.WatchFile})

	lk.inodes[followed] = entry{ID: f.id, Flags: sensor.WatchFile | sensor.WatchReseeded}
	now := keyOf(t, f.path)
	if err := os.Remove(f.path); err != nil {
		t.Fatal(err)
	}
	c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpUnlink, Match: sensor.MatchInode, WatchID: f.id, File: now,
		Dir: f.dirKey, Path: "passwd", Flags: sensor.FlagGone})
	wantChange(t, c, ok, "deleted", f.path)
	wantNoEntry(t, f.k, now)
	wantNoEntry(t, f.k, followed)
	wantEntry(t, f.k, foreign, entry{ID: otherID, Flags: sensor.WatchFile})
	if p := f.s.Problems(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
}

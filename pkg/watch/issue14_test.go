package watch

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// Issue 14's operations on a tree: a directory, a symlink and a FIFO made
// in a watched tree are created members (never followed), their attribute
// changes are reported, and rmdir deletes.
func TestApplyNonRegularMembers(t *testing.T) {
	f := newTreeFixture(t, true)
	makers := map[sensor.Op]func(p string) error{
		sensor.OpMkdir:   func(p string) error { return os.Mkdir(p, 0o700) },
		sensor.OpSymlink: func(p string) error { return os.Symlink("/etc/shadow", p) },
		sensor.OpMknod:   func(p string) error { return unix.Mkfifo(p, 0o600) },
	}
	names := map[sensor.Op]string{sensor.OpMkdir: "d", sensor.OpSymlink: "sub/link", sensor.OpMknod: "fifo"}
	for op, mk := range makers {
		rel := names[op]
		p := filepath.Join(f.root, rel)
		if err := mk(p); err != nil {
			t.Fatal(err)
		}
		k := keyOf(t, p)
		e := &sensor.Event{Op: op, Match: sensor.MatchAncestor, WatchID: f.id, File: k, Dir: f.rootKey, Path: rel}
		if op == sensor.OpSymlink {
			e.Flags, e.Path2 = sensor.FlagStr2, "/etc/shadow"
		}
		c, ok := f.s.Apply(e)
		wantChange(t, c, ok, ActionCreated, p)
		if c.File.Key != k {
			t.Fatalf("%v: key %v, the entry is %v (a symlink is never followed)", op, c.File.Key, k)
		}
		wantEntry(t, f.k, k, entry{ID: f.id, Flags: sensor.WatchFile})
		for _, aop := range []sensor.Op{sensor.OpSetxattr, sensor.OpRemovexattr, sensor.OpSetflags, sensor.OpSetattr} {
			c, ok := f.s.Apply(&sensor.Event{Op: aop, Match: sensor.MatchInode, WatchID: f.id, File: k,
				Path: filepath.Base(rel), Flags: sensor.FlagStr2, Path2: "user.x"})
			wantChange(t, c, ok, ActionAttributesChanged, p)
		}
	}
	// rmdir of the new directory: deleted, gone from the set and the map.
	p := filepath.Join(f.root, "d")
	k := keyOf(t, p)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	c, ok := f.s.Apply(&sensor.Event{Op: sensor.OpRmdir, Match: sensor.MatchInode, WatchID: f.id, File: k,
		Dir: f.rootKey, Path: "d"})
	wantChange(t, c, ok, ActionDeleted, p)
	if !c.Gone {
		t.Fatal("not gone")
	}
	wantNoEntry(t, f.k, k)
	// A directory made and removed before its records were read: both
	// reported, nothing held.
	rel := "brief"
	mkdir(t, filepath.Join(f.root, rel))
	bk := keyOf(t, filepath.Join(f.root, rel))
	os.Remove(filepath.Join(f.root, rel))
	c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpMkdir, Match: sensor.MatchAncestor, WatchID: f.id, File: bk,
		Dir: f.rootKey, Path: rel})
	wantChange(t, c, ok, ActionCreated, filepath.Join(f.root, rel))
	c, ok = f.s.Apply(&sensor.Event{Op: sensor.OpRmdir, Match: sensor.MatchAncestor, WatchID: f.id,
		Dir: f.rootKey, Path: rel})
	wantChange(t, c, ok, ActionDeleted, filepath.Join(f.root, rel))
}

// Attribute operations on a watched file are attributes-changed.
func TestApplyAttributeOps(t *testing.T) {
	f := newFileFixture(t)
	for _, op := range []sensor.Op{sensor.OpSetxattr, sensor.OpRemovexattr, sensor.OpSetflags} {
		c, ok := f.s.Apply(&sensor.Event{Op: op, Match: sensor.MatchInode, WatchID: f.id, File: f.key,
			Dir: f.dirKey, Path: "passwd", Flags: sensor.FlagStr2, Path2: "system.posix_acl_access"})
		wantChange(t, c, ok, ActionAttributesChanged, f.path)
	}
	// A symlink made at a watched path that was missing: created, the link
	// itself watched.
	root := tempRoot(t)
	p := filepath.Join(root, "etc", "sudoers.d", "evil")
	mkdir(t, filepath.Dir(p))
	s, k := newSet(t, 0, config.Watch{Path: p})
	id := targetOf(t, s, kindFile, p)
	if err := os.Symlink("/etc/shadow", p); err != nil {
		t.Fatal(err)
	}
	c, ok := s.Apply(&sensor.Event{Op: sensor.OpSymlink, Match: sensor.MatchName, WatchID: id, File: keyOf(t, p),
		Dir: dirKeyOf(t, filepath.Dir(p)), Path: "evil", Flags: sensor.FlagStr2, Path2: "/etc/shadow"})
	wantChange(t, c, ok, ActionCreated, p)
	wantEntry(t, k, keyOf(t, p), entry{ID: id, Flags: sensor.WatchFile})
}

// mountEvent is a mount or umount record in the set's own namespace.
func mountEvent(s *Set, op sensor.Op, path string) *sensor.Event {
	return &sensor.Event{Op: op, Match: sensor.MatchMount, Path: path, Flags: sensor.FlagPathAbs | sensor.FlagStr2,
		Proc: sensor.Process{MntNS: s.mntNS}}
}

// Mount follows what readers see at the mountpoint. Here a mount is
// simulated by putting another inode at the path (the set reads the path
// as a mount would leave it); the privileged test in pkg/agent mounts.
func TestMountFile(t *testing.T) {
	f := newFileFixture(t)
	fake := filepath.Join(filepath.Dir(f.dir), "fake")
	mkfile(t, fake)
	other := &sensor.Event{}
	*other = *mountEvent(f.s, sensor.OpMount, f.path)
	other.Proc.MntNS = f.s.mntNS + 1
	if c := f.s.Mount(other); c != nil {
		t.Fatalf("a mount in another namespace: %+v", c)
	}
	failed := mountEvent(f.s, sensor.OpMount, f.path)
	failed.Ret = -1
	if c := f.s.Mount(failed); c != nil {
		t.Fatalf("a failed mount: %+v", c)
	}
	if c := f.s.Mount(mountEvent(f.s, sensor.OpMount, filepath.Join(f.dir, "group"))); len(c) != 0 {
		t.Fatalf("a mount elsewhere: %+v", c)
	}
	rename(t, fake, f.path) // what a bind mount of fake on the path shows
	cs := f.s.Mount(mountEvent(f.s, sensor.OpMount, f.path))
	if len(cs) != 1 {
		t.Fatalf("changes %+v", cs)
	}
	wantChange(t, cs[0], true, ActionShadowed, f.path)
	if cs[0].File.Key != keyOf(t, f.path) || cs[0].Gone {
		t.Fatalf("change %+v file %+v", cs[0], cs[0].File)
	}
	checkReplaced(t, f, f.s, f.k)

	// A mount over the parent directory: the name moves to the directory
	// now there; a path it does not show is gone.
	now := keyOf(t, f.path)
	moved := f.dir + ".hidden"
	rename(t, f.dir, moved)
	mkdir(t, f.dir)
	cs = f.s.Mount(mountEvent(f.s, sensor.OpMount, f.dir))
	if len(cs) != 1 || !cs[0].Gone {
		t.Fatalf("changes %+v", cs)
	}
	wantChange(t, cs[0], true, ActionShadowed, f.path)
	newDir := dirKeyOf(t, f.dir)
	if f.k.names[nameKey{newDir, "passwd"}] != f.id {
		t.Fatal("the name did not move to the directory now at the parent")
	}
	if _, ok := f.k.names[nameKey{f.dirKey, "passwd"}]; ok {
		t.Fatal("the shadowed directory still holds the name")
	}
	wantNoEntry(t, f.k, now)
	// Uncovered: back to the old directory and its file.
	os.Remove(f.dir)
	rename(t, moved, f.dir)
	cs = f.s.Mount(mountEvent(f.s, sensor.OpUmount, f.dir))
	if len(cs) != 1 || cs[0].Gone {
		t.Fatalf("changes %+v", cs)
	}
	wantChange(t, cs[0], true, ActionUncovered, f.path)
	if f.k.names[nameKey{f.dirKey, "passwd"}] != f.id || fileAt(t, f.s, f.path).Key != now {
		t.Fatal("not back on the uncovered directory and file")
	}
	wantEntry(t, f.k, now, entry{ID: f.id, Flags: sensor.WatchFile})
}

// A mount over a watched tree's root: the tree is watched at the new root,
// its members are re-keyed or gone, and what the mount shows joins.
func TestMountTree(t *testing.T) {
	f := newTreeFixture(t, true)
	oldIndex := keyOf(t, filepath.Join(f.root, "index.html"))
	hidden := f.root + ".lower"
	rename(t, f.root, hidden)
	mkfile(t, filepath.Join(f.root, "index.html"))
	mkfile(t, filepath.Join(f.root, "planted"))
	cs := f.s.Mount(mountEvent(f.s, sensor.OpMount, f.root))
	got := map[string]Change{}
	for _, c := range cs {
		if c.Action != ActionShadowed {
			t.Fatalf("change %+v", c)
		}
		got[c.File.Path] = c
	}
	if len(got) != 4 || !got[filepath.Join(f.root, "sub", "page.html")].Gone || !got[filepath.Join(f.root, "sub")].Gone ||
		got[filepath.Join(f.root, "index.html")].Gone || got[filepath.Join(f.root, "planted")].File == nil {
		t.Fatalf("changes %+v", cs)
	}
	newRoot := dirKeyOf(t, f.root)
	wantEntry(t, f.k, newRoot, entry{ID: f.id, Flags: sensor.WatchRecursive})
	wantNoEntry(t, f.k, f.rootKey)
	wantNoEntry(t, f.k, oldIndex)
	wantEntry(t, f.k, keyOf(t, filepath.Join(f.root, "planted")), entry{ID: f.id, Flags: sensor.WatchFile})
}

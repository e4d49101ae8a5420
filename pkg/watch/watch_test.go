package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

func TestAddFile(t *testing.T) {
	root := tempRoot(t)
	etc := filepath.Join(root, "etc")
	passwd := filepath.Join(etc, "passwd")
	mkfile(t, passwd)

	k := newFakeKernel()
	s := New(k, 0, nil)
	if errs := s.Add([]config.Watch{{Path: passwd}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	f := fileAt(t, s, passwd)
	if f.Key != keyOf(t, passwd) || f.Kind != "hash" || f.Link != "" || f.Target == 0 {
		t.Fatalf("file = %+v", f)
	}
	wantEntry(t, k, keyOf(t, passwd), entry{ID: f.Target, Flags: sensor.WatchFile})
	wantEntry(t, k, dirKeyOf(t, etc), entry{Flags: sensor.WatchNames})
	if id := k.names[nameKey{dirKeyOf(t, etc), "passwd"}]; id != f.Target {
		t.Fatalf("name entry id = %d, want %d", id, f.Target)
	}
	if files, trees, anchors := s.Targets(); files != 1 || trees != 0 || anchors != 0 {
		t.Fatalf("targets = %d %d %d", files, trees, anchors)
	}
}

func TestAddSymlink(t *testing.T) {
	root := tempRoot(t)
	real := filepath.Join(root, "real", "sshd_config")
	link := filepath.Join(root, "etc", "sshd_config")
	mkfile(t, real)
	mkdir(t, filepath.Dir(link))
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}

	k := newFakeKernel()
	s := New(k, 0, nil)
	if errs := s.Add([]config.Watch{{Path: link}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := paths(s); !reflect.DeepEqual(got, []string{real}) {
		t.Fatalf("watched %v, want the target %s", got, real)
	}
	f := fileAt(t, s, real)
	if f.Link != link || f.Key != keyOf(t, real) {
		t.Fatalf("file = %+v, want Link %s", f, link)
	}
	wantEntry(t, k, keyOf(t, real), entry{ID: f.Target, Flags: sensor.WatchFile})
	wantNoEntry(t, k, keyOf(t, link)) // the symlink's own inode
	if id := k.names[nameKey{dirKeyOf(t, filepath.Dir(real)), "sshd_config"}]; id != f.Target {
		t.Fatalf("the target's name is not watched: %v", k.names)
	}
}

func TestAddMissing(t *testing.T) {
	t.Run("parent exists", func(t *testing.T) {
		root := tempRoot(t)
		p := filepath.Join(root, "ld.so.preload")
		k := newFakeKernel()
		s := New(k, 0, nil)
		if errs := s.Add([]config.Watch{{Path: p}}); len(errs) > 0 {
			t.Fatal(errs)
		}
		f := fileAt(t, s, p)
		if f.Key != (sensor.Key{}) {
			t.Fatalf("a missing file has key %v", f.Key)
		}
		if id := k.names[nameKey{dirKeyOf(t, root), "ld.so.preload"}]; id != f.Target || id == 0 {
			t.Fatalf("names = %v", k.names)
		}
		wantEntry(t, k, dirKeyOf(t, root), entry{Flags: sensor.WatchNames})
		if len(k.inodes) != 1 || k.count("WatchAnchor") != 0 {
			t.Fatalf("unexpected kernel state %v; calls %v", k.inodes, k.calls)
		}
	})
	t.Run("parent missing", func(t *testing.T) {
		root := tempRoot(t)
		p := filepath.Join(root, "a", "b", "c", "authorized_keys")
		k := newFakeKernel()
		s := New(k, 0, nil)
		if errs := s.Add([]config.Watch{{Path: p}}); len(errs) > 0 {
			t.Fatal(errs)
		}
		if got := paths(s); len(got) != 0 {
			t.Fatalf("watched %v", got)
		}
		if files, trees, anchors := s.Targets(); files != 0 || trees != 0 || anchors != 1 {
			t.Fatalf("targets = %d %d %d", files, trees, anchors)
		}
		var id uint64
		for _, tg := range s.targets {
			id = tg.ID
			if tg.Path != root || tg.Pattern != p {
				t.Fatalf("anchor = %+v", tg)
			}
		}
		// a/b/c/authorized_keys: four levels below the root.
		wantEntry(t, k, dirKeyOf(t, root), entry{ID: id, Flags: sensor.WatchAnchor, Depth: 4})
		if len(k.names) != 0 {
			t.Fatalf("names = %v", k.names)
		}
	})
}

func TestAddDir(t *testing.T) {
	root := tempRoot(t)
	for _, p := range []string{"f1", "f2", "sub/f3", "sub/deeper/f4"} {
		mkfile(t, filepath.Join(root, "d", p))
	}
	d := filepath.Join(root, "d")

	k := newFakeKernel()
	s := New(k, 0, nil)
	if errs := s.Add([]config.Watch{{Path: d}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{filepath.Join(d, "f1"), filepath.Join(d, "f2"), filepath.Join(d, "sub")}
	if got := paths(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("watched %v, want the direct children %v", got, want)
	}
	if files, trees, anchors := s.Targets(); files != 0 || trees != 1 || anchors != 0 {
		t.Fatalf("targets = %d %d %d", files, trees, anchors)
	}
	var id uint64
	for _, tg := range s.targets {
		id = tg.ID
	}
	for _, p := range want {
		wantEntry(t, k, keyOf(t, p), entry{ID: id, Flags: sensor.WatchFile})
	}
	// The directory follows its children like a tree, one level deep.
	if k.count("WatchTreeDepth "+d+" 1 1") != 1 {
		t.Fatalf("no depth-1 watch of %s: %v", d, k.calls)
	}
	if e := k.inodes[dirKeyOf(t, d)]; e.ID != id || e.Flags&sensor.WatchRecursive == 0 || e.Depth != 1 {
		t.Fatalf("directory entry %+v", e)
	}
	if s.Covers(filepath.Join(d, "sub", "f3")) {
		t.Fatal("a non-recursive directory covers a nested file")
	}
}

func TestAddTree(t *testing.T) {
	root := tempRoot(t)
	srv := filepath.Join(root, "srv")
	for _, p := range []string{
		"a.conf", "x.log", "cache/c1", "cache/sub/c2", "l1/b.conf", "l1/l2/c.conf",
		"l1/l2/l3/d.conf", "l1/tmp/e.conf",
	} {
		mkfile(t, filepath.Join(srv, p))
	}
	k := newFakeKernel()
	s := New(k, 3, nil)
	rule := config.Watch{Path: srv, Recursive: true,
		Exclude: []string{"*.log", "cache", filepath.Join(srv, "l1", "tmp")}}
	if errs := s.Add([]config.Watch{rule}); len(errs) > 0 {
		t.Fatal(errs)
	}
	// Entries up to three levels below the root (directories too);
	// l1/l2/l3/d.conf is the fourth.
	want := []string{
		filepath.Join(srv, "a.conf"), filepath.Join(srv, "l1"), filepath.Join(srv, "l1", "b.conf"),
		filepath.Join(srv, "l1", "l2"), filepath.Join(srv, "l1", "l2", "c.conf"), filepath.Join(srv, "l1", "l2", "l3"),
	}
	if got := paths(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("watched %v, want %v", got, want)
	}
	var id uint64
	for _, tg := range s.targets {
		id = tg.ID
	}
	wantEntry(t, k, dirKeyOf(t, srv), entry{ID: id, Flags: sensor.WatchRecursive})
	for _, p := range want {
		wantEntry(t, k, keyOf(t, p), entry{ID: id, Flags: sensor.WatchFile})
	}
	for _, p := range []string{"x.log", "cache/c1", "cache/sub/c2", "l1/tmp/e.conf", "l1/l2/l3/d.conf"} {
		wantNoEntry(t, k, keyOf(t, filepath.Join(srv, p)))
	}
	if !s.Covers(filepath.Join(srv, "new", "file")) || s.Covers(filepath.Join(root, "other")) {
		t.Fatal("Covers")
	}
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
}

func TestAddGlob(t *testing.T) {
	root := tempRoot(t)
	home := filepath.Join(root, "home")
	alice := filepath.Join(home, "alice", ".ssh", "authorized_keys")
	bob := filepath.Join(home, "bob", ".ssh", "authorized_keys")
	mkfile(t, alice)
	mkfile(t, bob)
	mkdir(t, filepath.Join(home, "carol"))
	pattern := filepath.Join(home, "*", ".ssh", "authorized_keys")

	k := newFakeKernel()
	s := New(k, 0, nil)
	if errs := s.Add([]config.Watch{{Path: pattern}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := paths(s); !reflect.DeepEqual(got, []string{alice, bob}) {
		t.Fatalf("watched %v", got)
	}
	for _, p := range []string{alice, bob} {
		f := fileAt(t, s, p)
		wantEntry(t, k, keyOf(t, p), entry{ID: f.Target, Flags: sensor.WatchFile})
		if k.names[nameKey{dirKeyOf(t, filepath.Dir(p)), "authorized_keys"}] != f.Target {
			t.Fatalf("name of %s not watched", p)
		}
	}
	files, trees, anchors := s.Targets()
	if files != 2 || trees != 0 || anchors != 1 {
		t.Fatalf("targets = %d %d %d", files, trees, anchors)
	}
	var anchor *Target
	for _, tg := range s.targets {
		if tg.Kind == kindAnchor {
			anchor = tg
		}
	}
	if anchor.Path != home || anchor.Pattern != pattern {
		t.Fatalf("anchor = %+v", anchor)
	}
	// */.ssh/authorized_keys: three levels below the fixed prefix.
	wantEntry(t, k, dirKeyOf(t, home), entry{ID: anchor.ID, Flags: sensor.WatchAnchor, Depth: 3})
}

func TestAddDuplicates(t *testing.T) {
	root := tempRoot(t)
	etc := filepath.Join(root, "etc")
	shadow := filepath.Join(etc, "shadow")
	group := filepath.Join(etc, "group")
	mkfile(t, shadow)
	mkfile(t, group)

	k := newFakeKernel()
	s := New(k, 0, nil)
	errs := s.Add([]config.Watch{
		{Path: shadow, Kind: "shadow"},
		{Path: shadow},
		{Path: filepath.Join(etc, "shad*")},
		{Path: etc}, // the directory's children: shadow and group
		{Path: group},
	})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := paths(s); !reflect.DeepEqual(got, []string{group, shadow}) {
		t.Fatalf("watched %v", got)
	}
	if n := k.count("WatchName "); n != 1 {
		t.Fatalf("%d name watches, want 1 (shadow's): %v", n, k.calls)
	}
	if n := k.count("WatchInode " + keyOf(t, shadow).String()); n != 1 {
		t.Fatalf("shadow's inode watched %d times: %v", n, k.calls)
	}
	// The first rule keeps the file.
	f := fileAt(t, s, shadow)
	if f.Kind != "shadow" || f.Rule.Path != shadow {
		t.Fatalf("shadow = %+v", f)
	}
	wantEntry(t, k, keyOf(t, shadow), entry{ID: f.Target, Flags: sensor.WatchFile})
}

func TestAddKinds(t *testing.T) {
	root := tempRoot(t)
	for _, p := range []string{"etc/passwd", "etc/sudoers.d/admins", "etc/other", "etc/sudoers"} {
		mkfile(t, filepath.Join(root, p))
	}
	kindFor := func(p string) string {
		switch filepath.Base(p) {
		case "passwd":
			return "passwd"
		case "sudoers":
			return "sudoers"
		}
		return ""
	}
	tests := []struct {
		name string
		rule config.Watch
		path string
		want string
	}{
		{"inferred", config.Watch{Path: filepath.Join(root, "etc/passwd")}, "etc/passwd", "passwd"},
		{"default", config.Watch{Path: filepath.Join(root, "etc/other")}, "etc/other", "hash"},
		{"explicit", config.Watch{Path: filepath.Join(root, "etc/sudoers"), Kind: "diff"}, "etc/sudoers", "diff"},
		{"tree explicit", config.Watch{Path: filepath.Join(root, "etc/sudoers.d"), Recursive: true, Kind: "sudoers"},
			"etc/sudoers.d/admins", "sudoers"},
		{"tree inferred", config.Watch{Path: filepath.Join(root, "etc"), Recursive: true}, "etc/passwd", "passwd"},
		{"tree default", config.Watch{Path: filepath.Join(root, "etc"), Recursive: true}, "etc/sudoers.d/admins", "hash"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(newFakeKernel(), 0, kindFor)
			if errs := s.Add([]config.Watch{tc.rule}); len(errs) > 0 {
				t.Fatal(errs)
			}
			if f := fileAt(t, s, filepath.Join(root, tc.path)); f.Kind != tc.want {
				t.Fatalf("kind %q, want %q", f.Kind, tc.want)
			}
		})
	}
}

// A directory that holds a watched name and is also a tree's root keeps both
// roles in the kernel: neither entry may replace the other.
func TestAddNamesInTreeRoot(t *testing.T) {
	for _, recursive := range []bool{true, false} {
		for _, fileFirst := range []bool{false, true} {
			t.Run(fmt.Sprintf("recursive=%v/fileFirst=%v", recursive, fileFirst), func(t *testing.T) {
				root := tempRoot(t)
				d := filepath.Join(root, "cron.d")
				mkfile(t, filepath.Join(d, "job"))
				rules := []config.Watch{{Path: d, Recursive: recursive}, {Path: filepath.Join(d, "not-yet")}}
				if fileFirst {
					rules[0], rules[1] = rules[1], rules[0]
				}
				k := newFakeKernel()
				s := New(k, 0, nil)
				if errs := s.Add(rules); len(errs) > 0 {
					t.Fatal(errs)
				}
				var tree uint64
				for _, tg := range s.targets {
					if tg.Kind == kindTree {
						tree = tg.ID
					}
				}
				e := k.inodes[dirKeyOf(t, d)]
				if e.ID != tree || e.Flags != sensor.WatchRecursive|sensor.WatchNames {
					t.Fatalf("directory entry %+v, want id %d, RECURSIVE|NAMES; calls:\n%s", e, tree,
						strings.Join(k.calls, "\n"))
				}
				if k.names[nameKey{dirKeyOf(t, d), "not-yet"}] == 0 {
					t.Fatal("the missing file's name is not watched")
				}
			})
		}
	}
}

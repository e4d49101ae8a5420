package scan

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expand"
)

func TestExpand(t *testing.T) {
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, rel := range []string{
		"etc/passwd", "etc/group", "etc/conf",
		"tree/a", "tree/l1/b", "tree/l1/l2/c", "tree/l1/l2/l3/d", "tree/tmp/x", "tree/l1/skip.log", "tree/cache/big",
		"flat/one", "flat/sub/two",
		"home/alice/.ssh/authorized_keys", "home/bob/.ssh/authorized_keys", "home/bob/.ssh/id_rsa",
		"globdir/m1/f", "globdir/m2/g",
	} {
		writeFile(t, p(rel), rel)
	}
	if err := os.Symlink(p("etc/conf"), p("etc/conf.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p("etc/conf"), p("flat/link")); err != nil { // not followed in a directory
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p("flat/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules := []config.Watch{
		{Path: p("etc/passwd")},
		{Path: p("etc/group"), Kind: "diff"},   // the rule's kind wins
		{Path: p("etc/conf.link")},             // resolved
		{Path: p("etc/missing"), Kind: "hash"}, // absent
		{Path: p("tree"), Recursive: true, Exclude: []string{"*.log", p("tree/tmp"), p("tree/cache/*")}},
		{Path: p("flat")},
		{Path: p("home/*/.ssh/authorized_keys")},
		{Path: p("globdir/m*")},
		{Path: p("etc/passwd"), Kind: "hash"}, // a second rule: the first wins
		{Path: p("nothing/*")},                // matches nothing: no target, no error
	}
	got, errs := Expand(rules, 3)
	if len(errs) != 0 {
		t.Errorf("errors: %v", errs)
	}
	dir, sym := fs.ModeDir, fs.ModeSymlink
	want := []Target{
		{Path: p("etc/conf"), Kind: "hash", Link: p("etc/conf.link")},
		{Path: p("etc/group"), Kind: "diff"},
		{Path: p("etc/missing"), Kind: "hash"},
		{Path: p("etc/passwd"), Kind: "passwd"},
		// A directory's every entry, itself included, whatever its type.
		{Path: p("flat"), Kind: "hash", Type: dir},
		{Path: p("flat/fifo"), Kind: "hash", Type: fs.ModeNamedPipe},
		{Path: p("flat/link"), Kind: "hash", Type: sym}, // the link, not followed
		{Path: p("flat/one"), Kind: "hash"},
		{Path: p("flat/sub"), Kind: "hash", Type: dir}, // listed, not entered
		{Path: p("globdir/m1"), Kind: "hash", Type: dir},
		{Path: p("globdir/m1/f"), Kind: "hash"},
		{Path: p("globdir/m2"), Kind: "hash", Type: dir},
		{Path: p("globdir/m2/g"), Kind: "hash"},
		{Path: p("home/alice/.ssh/authorized_keys"), Kind: "authorized_keys"},
		{Path: p("home/bob/.ssh/authorized_keys"), Kind: "authorized_keys"},
		{Path: p("tree"), Kind: "hash", Type: dir},
		{Path: p("tree/a"), Kind: "hash"},
		{Path: p("tree/cache"), Kind: "hash", Type: dir}, // its content is excluded, not itself
		{Path: p("tree/l1"), Kind: "hash", Type: dir},
		{Path: p("tree/l1/b"), Kind: "hash"},
		{Path: p("tree/l1/l2"), Kind: "hash", Type: dir},
		{Path: p("tree/l1/l2/c"), Kind: "hash"},
		{Path: p("tree/l1/l2/l3"), Kind: "hash", Type: dir}, // at depth 3: listed, not entered
		// tree/l1/l2/l3/d is at depth 4 > 3
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Expand:\n got %v\nwant %v", strip(root, got), strip(root, want))
	}

	// The scope agrees with the expansion, and covers the places where a
	// deleted file used to be.
	sc := expand.NewScope(rules, 3)
	for _, tg := range got {
		if !sc.Covers(tg.Path) {
			t.Errorf("scope does not cover target %s", tg.Path)
		}
	}
	for rel, want := range map[string]bool{
		"tree/gone": true, "tree/l1/l2/gone": true, "tree/l1/l2/l3/gone": false,
		"tree/x.log": false, "tree/tmp/x": false, "tree/cache/big": false, "tree/l1/cache/ok": true,
		"flat/gone": true, "flat/sub/two": false, "flat/sub": true, "tree/l1/l2/l3": true, "tree": true,
		"home/carol/.ssh/authorized_keys": true, "home/bob/.ssh/id_rsa": false,
		"globdir/m3/h": true, "globdir/m1/sub/h": false, "globdir/other/h": false,
		"etc/passwd": true, "etc/shadow": false, "elsewhere/x": false,
	} {
		if got := sc.Covers(p(rel)); got != want {
			t.Errorf("covers(%s) = %v, want %v", rel, got, want)
		}
	}
}

func strip(root string, ts []Target) []string {
	var out []string
	for _, t := range ts {
		s := strings.TrimPrefix(t.Path, root+"/") + ":" + t.Kind
		if t.Link != "" {
			s += "<-" + strings.TrimPrefix(t.Link, root+"/")
		}
		out = append(out, s)
	}
	return out
}

func TestExpandProblems(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads anything; use a path through a file instead.
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "f"), "x")
		got, errs := Expand([]config.Watch{{Path: filepath.Join(root, "f", "sub"), Source: "test.toml"}}, 0)
		// ENOTDIR: the path cannot exist: reported absent, like a missing one.
		if len(got) != 1 || len(errs) != 0 {
			t.Errorf("got %v, errs %v", got, errs)
		}
		return
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "d", "locked", "f"), "x")
	os.Chmod(filepath.Join(root, "d", "locked"), 0)
	defer os.Chmod(filepath.Join(root, "d", "locked"), 0o755)
	_, errs := Expand([]config.Watch{{Path: filepath.Join(root, "d"), Recursive: true, Source: "test.toml"}}, 0)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "test.toml") {
		t.Errorf("errs %v", errs)
	}
}

package watch

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expand"
	"github.com/vigil-fim/vigil/pkg/scan"
)

// The startup scan and the live watch set expand rules alike (pkg/expand),
// in the three places where their copies once disagreed: a glob match that
// is a dangling symlink is kept as an absent file; a path through a file
// (ENOTDIR) is absent, not an error; a directory that cannot be read is one
// problem and is skipped (nothing below it listed). A symlinked identity
// file takes its kind from the configured name in both.
func TestExpansionShared(t *testing.T) {
	root := tempRoot(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, rel := range []string{"conf.d/a.conf", "etc/file", "real/cfg", "tree/ok/f", "tree/locked/f", "tree/g"} {
		mkfile(t, p(rel))
	}
	if err := os.Symlink(p("nowhere"), p("conf.d/b.conf")); err != nil {
		t.Fatal(err)
	}
	mkdir(t, p("ssh"))
	if err := os.Symlink(p("real/cfg"), p("ssh/sshd_config")); err != nil {
		t.Fatal(err)
	}
	rules := []config.Watch{
		{Path: p("conf.d/*.conf"), Source: "test.toml"},
		{Path: p("etc/file/sub"), Source: "test.toml"},
		{Path: p("ssh/sshd_config"), Source: "test.toml"},
		{Path: p("tree"), Recursive: true, Source: "test.toml"},
	}
	locked := p("tree/locked")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(locked, 0o755)

	var targets []scan.Target
	var scanErrs, setErrs []error
	k := newFakeKernel()
	s := New(k, 0, expand.Infer)
	unprivileged(t, root, func() {
		targets, scanErrs = scan.Expand(rules, 0)
		setErrs = append(s.Add(rules), s.Problems()...)
	})

	type file struct{ Path, Kind, Link string }
	var fromScan, fromSet []file
	// The scan lists every entry of a tree, directories included; the
	// watch set's files are the rest (directories listed here).
	var scanDirs []string
	for _, tg := range targets {
		if tg.Type.IsDir() {
			scanDirs = append(scanDirs, tg.Path)
			continue
		}
		fromScan = append(fromScan, file{tg.Path, tg.Kind, tg.Link})
	}
	if want := []string{p("tree"), p("tree/locked"), p("tree/ok")}; !reflect.DeepEqual(scanDirs, want) {
		t.Errorf("scan lists directories %v, want %v", scanDirs, want)
	}
	// The watch set holds a tree's directories too (their own changes are
	// reported); they are the scan's directories below the tree's root.
	var setDirs []string
	for _, f := range s.Files() {
		if st, err := os.Lstat(f.Path); err == nil && st.IsDir() {
			setDirs = append(setDirs, f.Path)
			continue
		}
		fromSet = append(fromSet, file{f.Path, f.Kind, f.Link})
	}
	sort.Strings(setDirs)
	if want := []string{p("tree/locked"), p("tree/ok")}; !reflect.DeepEqual(setDirs, want) {
		t.Errorf("watch set has directories %v, want %v", setDirs, want)
	}
	// A path whose parent is not a directory is watched by an anchor at
	// its nearest existing ancestor, not as a file.
	for _, tg := range s.targets {
		if tg.Kind == kindAnchor && !expand.HasMeta(tg.Pattern) {
			fromSet = append(fromSet, file{tg.Pattern, expand.KindOf(&tg.Rule.Watch, tg.Pattern, "", expand.Infer), ""})
		}
	}
	sort.Slice(fromSet, func(i, j int) bool { return fromSet[i].Path < fromSet[j].Path })
	want := []file{
		{p("conf.d/a.conf"), "hash", ""},
		{p("conf.d/b.conf"), "hash", ""}, // dangling: absent
		{p("etc/file/sub"), "hash", ""},  // ENOTDIR: absent
		{p("real/cfg"), "sshd_config", p("ssh/sshd_config")},
		{p("tree/g"), "hash", ""},
		{p("tree/ok/f"), "hash", ""},
		// tree/locked/f: its directory cannot be read
	}
	if !reflect.DeepEqual(fromScan, want) {
		t.Errorf("scan lists\n%v\nwant\n%v", fromScan, want)
	}
	if !reflect.DeepEqual(fromSet, want) {
		t.Errorf("watch set has\n%v\nwant\n%v", fromSet, want)
	}
	for name, errs := range map[string][]error{"scan": scanErrs, "watch set": setErrs} {
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), locked) || !strings.Contains(errs[0].Error(), "test.toml") {
			t.Errorf("%s problems %v, want one naming %s and its rule's source", name, errs, locked)
		}
	}
	// The dangling match is watched by its name, as a missing file is.
	f := fileAt(t, s, p("conf.d/b.conf"))
	if id := k.names[nameKey{dirKeyOf(t, p("conf.d")), "b.conf"}]; id == 0 || id != f.Target {
		t.Errorf("dangling match %+v: name entry %d", f, id)
	}
}

// unprivileged runs fn without the capability to read any directory: as
// root, with the effective uid of nobody for the duration (root's reads
// never fail on permissions), so that an unreadable directory is one.
func unprivileged(t *testing.T, root string, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	// nobody must reach root: open its ancestors up to the temp dir.
	for d := root; d != filepath.Dir(d) && strings.HasPrefix(d, os.TempDir()+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Setresuid(-1, 65534, -1); err != nil {
		t.Fatalf("dropping to uid 65534: %v", err)
	}
	defer func() {
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic(err) // the rest of the tests cannot run as nobody
		}
	}()
	fn()
}

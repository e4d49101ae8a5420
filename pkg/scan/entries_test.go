package scan

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/state"
)

// TestTreeEntries: a tree's directories, symlinks, FIFOs and sockets are in
// the baseline; creating, removing, retargeting and chmodding them is
// reported exactly once each, with the type and the symlink's old and new
// target; the directories the changes happen in report nothing.
func TestTreeEntries(t *testing.T) {
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, rel) }
	writeFile(t, p("d/sudoers.d/10-ops"), "ops ALL=(ALL) ALL\n")
	if err := os.Mkdir(p("d/sudoers.d/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("10-ops", p("d/sudoers.d/link")); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	cons := testConsumers(t)
	rules := []config.Watch{{Path: p("d"), Recursive: true}}
	run := func() Result {
		t.Helper()
		res, err := Run(context.Background(), rules, 0, s, cons, ScanOptions{Update: true})
		if err != nil || len(res.Errors) > 0 {
			t.Fatal(err, res.Errors)
		}
		return res
	}
	if res := run(); !res.Baseline || res.Files != 5 { // d, sudoers.d, 10-ops, empty, link
		t.Fatalf("baseline: %+v", res)
	}
	if e, ok, _ := s.Get(p("d/sudoers.d/link")); !ok || e.Target != "10-ops" || e.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Fatalf("symlink record %+v", e)
	}

	summary := func(res Result) []string {
		var out []string
		for _, f := range res.Findings {
			rel, _ := filepath.Rel(root, f.Path)
			typ := ""
			if a := f.New; a != nil {
				typ = a.Type
			} else if f.Old != nil {
				typ = f.Old.Type
			}
			out = append(out, f.Action+" "+rel+" "+typ)
		}
		return out
	}
	for _, step := range []struct {
		name  string
		do    func() error
		want  []string
		check func(t *testing.T, f Finding)
	}{
		{"mkdir", func() error { return os.Mkdir(p("d/sudoers.d/new"), 0o700) },
			[]string{"created d/sudoers.d/new dir"}, nil},
		{"rmdir", func() error { return os.Remove(p("d/sudoers.d/empty")) },
			[]string{"deleted d/sudoers.d/empty dir"}, nil},
		{"ln -s", func() error { return os.Symlink("/tmp/evil", p("d/sudoers.d/99-evil")) },
			[]string{"created d/sudoers.d/99-evil symlink"}, func(t *testing.T, f Finding) {
				if f.New.Target != "/tmp/evil" || f.Old != nil {
					t.Errorf("finding %+v", f.New)
				}
			}},
		{"retarget", func() error {
			// ln -sfn: a new link renamed over the old one.
			if err := os.Symlink("/etc/shadow", p("d/sudoers.d/.tmp")); err != nil {
				return err
			}
			return os.Rename(p("d/sudoers.d/.tmp"), p("d/sudoers.d/link"))
		}, []string{"replaced d/sudoers.d/link symlink"}, func(t *testing.T, f Finding) {
			if f.Old.Target != "10-ops" || f.New.Target != "/etc/shadow" || !slicesContain(f.Fields, "target") {
				t.Errorf("retarget: fields %v, %q -> %q", f.Fields, f.Old.Target, f.New.Target)
			}
			if l := EntryLines(&f); len(l) != 1 || l[0] != "symlink -> /etc/shadow (was -> 10-ops)" {
				t.Errorf("text %q", l)
			}
		}},
		{"mkfifo", func() error { return unix.Mkfifo(p("d/sudoers.d/pipe"), 0o600) },
			[]string{"created d/sudoers.d/pipe fifo"}, nil},
		{"socket", func() error {
			l, err := net.Listen("unix", p("d/sudoers.d/sock"))
			if err != nil {
				return err
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			return l.Close()
		}, []string{"created d/sudoers.d/sock socket"}, nil},
		{"chmod dir", func() error { return os.Chmod(p("d/sudoers.d"), 0o777) },
			[]string{"attributes-changed d/sudoers.d dir"}, func(t *testing.T, f Finding) {
				if !reflect.DeepEqual(f.Fields, []string{"mode"}) {
					t.Errorf("fields %v", f.Fields)
				}
			}},
		{"rm fifo, socket", func() error {
			os.Remove(p("d/sudoers.d/sock"))
			return os.Remove(p("d/sudoers.d/pipe"))
		}, []string{"deleted d/sudoers.d/pipe fifo", "deleted d/sudoers.d/sock socket"}, nil},
		{"symlink over a directory", func() error {
			// sudoers.d/new held a file; the directory is swapped for a
			// symlink: the link replaces it, the file is no longer reached.
			writeFile(t, p("d/sudoers.d/new/f"), "x\n")
			if res := run(); !reflect.DeepEqual(summary(res), []string{"created d/sudoers.d/new/f file"}) {
				t.Errorf("setup: %q", summary(res))
			}
			if err := os.RemoveAll(p("d/sudoers.d/new")); err != nil {
				return err
			}
			return os.Symlink("/etc", p("d/sudoers.d/new"))
		}, []string{"replaced d/sudoers.d/new symlink", "deleted d/sudoers.d/new/f file"}, nil},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			res := run()
			if got := summary(res); !reflect.DeepEqual(got, step.want) {
				t.Fatalf("findings %q, want %q", got, step.want)
			}
			if step.check != nil {
				step.check(t, res.Findings[0])
			}
			if res := run(); len(res.Findings) != 0 {
				t.Errorf("reported again: %q", summary(res))
			}
		})
	}
}

// TestUpgradeFromSchema2: a store written by a vigil that kept only
// regular files (schema 2, no mounts recorded) reports nothing at the next
// comparison: the tree's directories and symlinks are recorded quietly
// (Result.Upgraded), the mark goes, and a directory created afterwards is
// reported created.
func TestUpgradeFromSchema2(t *testing.T) {
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, rel) }
	writeFile(t, p("tree/a/f"), "f\n")
	writeFile(t, p("tree/g"), "g\n")
	if err := os.Symlink("g", p("tree/l")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state", state.StoreFile)
	s, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cons := testConsumers(t)
	rules := []config.Watch{{Path: p("tree"), Recursive: true}}
	if _, err := Run(context.Background(), rules, 0, s, cons, ScanOptions{Update: true}); err != nil {
		t.Fatal(err)
	}
	// What a schema 2 vigil left: the regular files' records only, no
	// mounts, schema "2".
	for _, rel := range []string{"tree", "tree/a", "tree/l"} {
		if err := s.Delete(p(rel)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteMeta(MetaMounts); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("2")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A read-only look first (vigil scan without -update on a store it
	// cannot upgrade): nothing reported either.
	ro, err := state.Open(path, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), rules, 0, ro, cons, ScanOptions{})
	ro.Close()
	if err != nil || len(res.Findings) != 0 || res.Upgraded != 3 {
		t.Fatalf("read-only over schema 2: %v findings %+v upgraded %d", err, res.Findings, res.Upgraded)
	}

	s, err = state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err = Run(context.Background(), rules, 0, s, cons, ScanOptions{Update: true})
	if err != nil || len(res.Errors) > 0 || len(res.Findings) != 0 || res.Upgraded != 3 {
		t.Fatalf("restart over schema 2: %v %v findings %+v upgraded %d", err, res.Errors, res.Findings, res.Upgraded)
	}
	if v, _ := s.Meta(state.MetaUpgradeEntries); v != nil {
		t.Errorf("upgrade mark left: %q", v)
	}
	if v, _ := s.Meta(MetaMounts); v == nil {
		t.Error("mounts not recorded")
	}
	if err := os.Mkdir(p("tree/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = Run(context.Background(), rules, 0, s, cons, ScanOptions{Update: true})
	if err != nil || len(res.Findings) != 1 || res.Findings[0].Path != p("tree/b") || res.Findings[0].Action != ActionCreated || res.Upgraded != 0 {
		t.Fatalf("after the upgrade: %v %+v upgraded %d", err, res.Findings, res.Upgraded)
	}
}

//go:build privileged

package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/mounts"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/state"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// entryStep is one change made while vigil is stopped and what `vigil scan`
// and the next start must report: the findings in want (path relative to
// the test's root -> action), each checked by check. The steps of one
// phase are made in one stopped period, and the scan and the start after
// it must report exactly the union of their wants.
type entryStep struct {
	phase int
	name  string
	tool  []string     // the real tool, run on the host
	do    func() error // the same change by syscalls, in a guest
	want  map[string]string
	check func(t *testing.T, f *scan.Finding, x rec)
}

// TestEntriesChangedWhileStopped: on ext4, each change issue 14 names made
// while vigil is stopped (setfacl, a default ACL on a directory, setcap,
// chattr +i on a file and a directory, setfattr user.* on a directory,
// mkdir, rmdir, ln -s, a symlink retargeted, mknod p, mknod c 1 3,
// fallocate --punch-hole, mount --bind over a watched file and its umount,
// mount -t overlay over a watched directory and its umount) is reported by
// `vigil scan` (scan.Run, as the command calls it) exactly, and by the next
// start exactly, with what it means; a clean restart then reports nothing
// and the user xattr's value appears nowhere. The host runs the real tools;
// a guest (busybox) makes the same syscalls.
func TestEntriesChangedWhileStopped(t *testing.T) {
	needAgent(t)
	root := ext4Dir(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	for rel, c := range map[string]string{
		"tree/f": "f\n", "tree/tool": "\x7fELF tool\n", "tree/imm": "imm\n",
		"tree/sparse": strings.Repeat("sparse content\n", 1200), "etc/passwd": passwd0,
		"ov/conf": "a=1\n", "ov/keep": "keep\n", "up/conf": "a=2\n", "fake/passwd": passwd0 + "mallory:x:0:0::/root:/bin/sh\n",
	} {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(rel), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"tree/sub", "tree/locked", "tree/gone", "work"} {
		if err := os.Mkdir(p(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("f", p("tree/link")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range []string{p("etc/passwd"), p("ov")} {
			unix.Unmount(m, unix.MNT_DETACH) // left mounted by a failed step
		}
		clearFlags(p("tree/imm"), 0x10)
		clearFlags(p("tree/locked"), 0x10)
	})

	stateDir := filepath.Join(t.TempDir(), "state")
	cfg, err := config.Parse("entries.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[output]
stdout = false
[[watch]]
path = %q
recursive = true
[[watch]]
path = %q
[[watch]]
path = %q
recursive = true
`, stateDir, p("tree"), p("etc/passwd"), p("ov"))))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := consumer.NewAll(agent.ConsumerOptions(cfg, testKey))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Fatalf("baseline reported %v", got)
	}

	// The mount the test's files are seen through: the loop-mounted ext4
	// here, the guest's /mnt/ext4 there.
	tb, err := mounts.Read()
	if err != nil {
		t.Fatal(err)
	}
	fsMount := tb.Cover(root)
	if fsMount == nil || fsMount.FSType != "ext4" {
		t.Fatalf("%s is seen through %+v, want an ext4 mount", root, fsMount)
	}
	u := uint32(65534)
	ovOpts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", p("ov"), p("up"), p("work"))
	fileType := func(want string) func(t *testing.T, f *scan.Finding, x rec) {
		return func(t *testing.T, f *scan.Finding, x rec) {
			a := f.New
			if a == nil {
				a = f.Old
			}
			if a.Type != want {
				t.Errorf("finding type %q, want %q", a.Type, want)
			}
			if x.s("file.type") != want {
				t.Errorf("record file.type %q, want %q: %s", x.s("file.type"), want, x)
			}
		}
	}
	changes := func(x rec) *attrs.Changes {
		parts := map[string]any{}
		for _, k := range []string{"acl", "default_acl", "capabilities", "flags", "labels", "xattrs"} {
			if v := x.get("vigil." + k); v != nil {
				parts[k] = v
			}
		}
		b, _ := json.Marshal(parts)
		var a attrs.Changes
		json.Unmarshal(b, &a)
		return &a
	}
	steps := []entryStep{
		{0, "setfacl", []string{"setfacl", "-m", "u:65534:rw", p("tree/f")}, func() error {
			return unix.Setxattr(p("tree/f"), attrs.XattrACLAccess, attrs.EncodeACL([]attrs.ACLEntry{{Tag: attrs.TagUserObj, Perm: "rw-"},
				{Tag: attrs.TagUser, ID: &u, Perm: "rw-"}, {Tag: attrs.TagGroupObj, Perm: "r--"}, {Tag: attrs.TagMask, Perm: "rw-"},
				{Tag: attrs.TagOther, Perm: "r--"}}), 0)
		}, map[string]string{"tree/f": "attributes-changed"}, func(t *testing.T, f *scan.Finding, x rec) {
			for _, a := range []*attrs.Changes{f.Attributes, changes(x)} {
				if a == nil || a.ACL == nil || !reflect.DeepEqual(a.ACL.WriteGranted, []string{"user:65534"}) {
					t.Errorf("acl: %+v", a)
				}
			}
		}},
		{0, "setfacl -d on a directory", []string{"setfacl", "-d", "-m", "u:65534:rwx", p("tree/sub")}, func() error {
			return unix.Setxattr(p("tree/sub"), attrs.XattrACLDefault, attrs.EncodeACL([]attrs.ACLEntry{{Tag: attrs.TagUserObj, Perm: "rwx"},
				{Tag: attrs.TagUser, ID: &u, Perm: "rwx"}, {Tag: attrs.TagGroupObj, Perm: "r-x"}, {Tag: attrs.TagMask, Perm: "rwx"},
				{Tag: attrs.TagOther, Perm: "r-x"}}), 0)
		}, map[string]string{"tree/sub": "attributes-changed"}, func(t *testing.T, f *scan.Finding, x rec) {
			fileType(scan.TypeDir)(t, f, x)
			for _, a := range []*attrs.Changes{f.Attributes, changes(x)} {
				if a == nil || a.DefaultACL == nil || a.ACL != nil || len(a.DefaultACL.Added) != 5 {
					t.Errorf("default acl: %+v", a)
				}
			}
		}},
		{0, "setcap", []string{"setcap", "cap_setuid+ep", p("tree/tool")}, func() error {
			return unix.Setxattr(p("tree/tool"), attrs.XattrCapability, attrs.EncodeCaps(&attrs.Caps{Permitted: 1 << 7, Effective: true}), 0)
		}, map[string]string{"tree/tool": "attributes-changed"}, func(t *testing.T, f *scan.Finding, x rec) {
			for _, a := range []*attrs.Changes{f.Attributes, changes(x)} {
				if a == nil || a.Caps == nil || !reflect.DeepEqual(a.Caps.RootEquivalent, []string{"cap_setuid"}) {
					t.Errorf("capabilities: %+v", a)
				}
			}
		}},
		{0, "chattr +i", []string{"chattr", "+i", p("tree/imm")}, func() error { return setFlags(p("tree/imm"), 0x10) },
			map[string]string{"tree/imm": "attributes-changed"}, func(t *testing.T, f *scan.Finding, x rec) {
				for _, a := range []*attrs.Changes{f.Attributes, changes(x)} {
					if a == nil || a.Flags == nil || !reflect.DeepEqual(a.Flags.Set, []string{"immutable"}) {
						t.Errorf("flags: %+v", a)
					}
				}
			}},
		{0, "chattr +i on a directory", []string{"chattr", "+i", p("tree/locked")}, func() error { return setFlags(p("tree/locked"), 0x10) },
			map[string]string{"tree/locked": "attributes-changed"}, func(t *testing.T, f *scan.Finding, x rec) {
				fileType(scan.TypeDir)(t, f, x)
				for _, a := range []*attrs.Changes{f.Attributes, changes(x)} {
					if a == nil || a.Flags == nil || !reflect.DeepEqual(a.Flags.Set, []string{"immutable"}) {
						t.Errorf("flags: %+v", a)
					}
				}
			}},
		{0, "setfattr user.* on a directory", []string{"setfattr", "-n", "user.token", "-v", testutil.XattrSecret0, p("tree/sub")}, func() error {
			return unix.Setxattr(p("tree/sub"), "user.token", []byte(testutil.XattrSecret0), 0)
		}, map[string]string{"tree/sub": "attributes-changed"}, func(t *testing.T, f *scan.Finding, x rec) {
			for _, a := range []*attrs.Changes{f.Attributes, changes(x)} {
				if a == nil || a.Xattrs == nil || !reflect.DeepEqual(a.Xattrs.Added, []string{"user.token"}) {
					t.Errorf("xattrs: %+v", a)
				}
			}
		}},
		{0, "mkdir", []string{"mkdir", p("tree/new")}, func() error { return os.Mkdir(p("tree/new"), 0o755) },
			map[string]string{"tree/new": "created"}, fileType(scan.TypeDir)},
		{0, "rmdir", []string{"rmdir", p("tree/gone")}, func() error { return os.Remove(p("tree/gone")) },
			map[string]string{"tree/gone": "deleted"}, fileType(scan.TypeDir)},
		{0, "ln -s", []string{"ln", "-s", "/etc/shadow", p("tree/evil")}, func() error { return os.Symlink("/etc/shadow", p("tree/evil")) },
			map[string]string{"tree/evil": "created"}, func(t *testing.T, f *scan.Finding, x rec) {
				fileType(scan.TypeSymlink)(t, f, x)
				if f.New.Target != "/etc/shadow" || x.s("file.target_path") != "/etc/shadow" ||
					x.s("vigil.symlink.new_target") != "/etc/shadow" || x.get("vigil.symlink.old_target") != nil {
					t.Errorf("target: %+v %s", f.New, x)
				}
			}},
		{0, "symlink retargeted", []string{"ln", "-sfn", "/etc/sudoers", p("tree/link")}, func() error {
			if err := os.Symlink("/etc/sudoers", p("tree/.link.tmp")); err != nil {
				return err
			}
			return os.Rename(p("tree/.link.tmp"), p("tree/link"))
		}, map[string]string{"tree/link": "replaced"}, func(t *testing.T, f *scan.Finding, x rec) {
			fileType(scan.TypeSymlink)(t, f, x)
			if f.Old.Target != "f" || f.New.Target != "/etc/sudoers" ||
				x.s("vigil.symlink.old_target") != "f" || x.s("vigil.symlink.new_target") != "/etc/sudoers" {
				t.Errorf("retarget: %+v -> %+v, %s", f.Old, f.New, x)
			}
		}},
		{0, "mknod p", []string{"mknod", p("tree/pipe"), "p"}, func() error { return unix.Mknod(p("tree/pipe"), unix.S_IFIFO|0o644, 0) },
			map[string]string{"tree/pipe": "created"}, fileType(scan.TypeFIFO)},
		{0, "mknod c 1 3", []string{"mknod", p("tree/null"), "c", "1", "3"}, func() error {
			return unix.Mknod(p("tree/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		}, map[string]string{"tree/null": "created"}, func(t *testing.T, f *scan.Finding, x rec) {
			fileType(scan.TypeCharDevice)(t, f, x)
			if f.New.Major == nil || *f.New.Major != 1 || *f.New.Minor != 3 ||
				x.s("vigil.device.type") != "char-device" || x.s("vigil.device.major") != "1" || x.s("vigil.device.minor") != "3" {
				t.Errorf("device: %+v %s", f.New, x)
			}
		}},
		{0, "fallocate --punch-hole", []string{"fallocate", "--punch-hole", "-o", "0", "-l", "4096", p("tree/sparse")}, func() error {
			fd, err := unix.Open(p("tree/sparse"), unix.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
		}, map[string]string{"tree/sparse": "modified"}, func(t *testing.T, f *scan.Finding, x rec) {
			if !strings.Contains(strings.Join(f.Fields, ","), "content") || f.Old.Size != f.New.Size {
				t.Errorf("punch hole: fields %v, size %d -> %d", f.Fields, f.Old.Size, f.New.Size)
			}
		}},
		{0, "mount --bind over a watched file", []string{"mount", "--bind", p("fake/passwd"), p("etc/passwd")}, func() error {
			return unix.Mount(p("fake/passwd"), p("etc/passwd"), "", unix.MS_BIND, "")
		}, map[string]string{"etc/passwd": "shadowed"}, func(t *testing.T, f *scan.Finding, x rec) {
			if m := f.Mount; m == nil || m.New.Mountpoint != p("etc/passwd") || !m.New.Bind || m.New.SourcePath != p("fake/passwd") ||
				m.Old.Mountpoint != fsMount.Mountpoint {
				t.Errorf("mount: %+v", f.Mount)
			}
			if f.Changes == nil || x.s("vigil.mount.change") != "shadowed" || x.s("vigil.mount.new.source_path") != p("fake/passwd") ||
				hasChange(x, "user-added", "mallory") == nil || !strings.Contains(x.s("vigil.mount.description"), "now shadowed by a bind mount of "+p("fake/passwd")) {
				t.Errorf("record: %s", x)
			}
		}},
		{1, "umount the bind mount", []string{"umount", p("etc/passwd")}, func() error { return unix.Unmount(p("etc/passwd"), 0) },
			map[string]string{"etc/passwd": "uncovered"}, func(t *testing.T, f *scan.Finding, x rec) {
				if m := f.Mount; m == nil || m.Old.Mountpoint != p("etc/passwd") || m.New.Mountpoint != fsMount.Mountpoint {
					t.Errorf("mount: %+v", f.Mount)
				}
				if x.s("vigil.mount.change") != "uncovered" || hasChange(x, "user-removed", "mallory") == nil {
					t.Errorf("record: %s", x)
				}
			}},
		{0, "mount -t overlay over a watched directory", []string{"mount", "-t", "overlay", "overlay", "-o", ovOpts, p("ov")}, func() error {
			return unix.Mount("overlay", p("ov"), "overlay", 0, ovOpts)
		}, map[string]string{"ov": "shadowed", "ov/conf": "replaced"}, func(t *testing.T, f *scan.Finding, x rec) {
			if f.Path != p("ov") {
				return
			}
			if m := f.Mount; m == nil || m.New.FSType != "overlay" || m.New.Mountpoint != p("ov") || len(m.New.Layers) == 0 {
				t.Errorf("mount: %+v", f.Mount)
			}
			if x.s("vigil.mount.new.fstype") != "overlay" || x.s("file.type") != "dir" {
				t.Errorf("record: %s", x)
			}
		}},
		{1, "umount the overlay", []string{"umount", p("ov")}, func() error { return unix.Unmount(p("ov"), 0) },
			map[string]string{"ov": "uncovered", "ov/conf": "replaced"}, func(t *testing.T, f *scan.Finding, x rec) {
				if f.Path == p("ov") && (f.Mount == nil || f.Mount.Old.FSType != "overlay" || x.s("vigil.mount.change") != "uncovered") {
					t.Errorf("mount: %+v, %s", f.Mount, x)
				}
			}},
	}

	summary := func(m map[string]string) string {
		var out []string
		for k, v := range m {
			out = append(out, v+" "+k)
		}
		sort.Strings(out)
		return strings.Join(out, ", ")
	}
	// Two stopped periods, each followed by a scan and a start (an agent
	// start is seconds in an emulated guest): every change but the
	// umounts, then the umounts, which undo the mounts of the first.
	for phase := 0; phase <= 1; phase++ {
		want := map[string]string{}
		var made []entryStep
		for _, st := range steps {
			if st.phase != phase {
				continue
			}
			t.Logf("phase %d: %s", phase, st.name)
			run(t, st.tool, st.do)
			for rel, action := range st.want {
				if w, ok := want[rel]; ok && w != action {
					t.Fatalf("steps of phase %d want %s both %s and %s", phase, rel, w, action)
				}
				want[rel] = action
			}
			made = append(made, st)
		}
		ok := t.Run(fmt.Sprintf("phase %d", phase), func(t *testing.T) {
			// vigil scan: exactly this.
			store, err := state.Open(filepath.Join(stateDir, state.StoreFile), state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := scan.Run(context.Background(), cfg.Watch, cfg.Sensor.MaxDepth, store, cons, scan.ScanOptions{Key: testKey})
			store.Close()
			if err != nil || len(res.Errors) > 0 {
				t.Fatalf("scan: %v %v", err, res.Errors)
			}
			got, findings := map[string]string{}, map[string]*scan.Finding{}
			for i := range res.Findings {
				f := &res.Findings[i]
				rel, _ := filepath.Rel(root, f.Path)
				got[rel], findings[rel] = f.Action, f
				b, _ := json.Marshal(f)
				if strings.Contains(string(b), testutil.XattrSecret0) {
					t.Errorf("a finding holds the xattr's value: %s", b)
				}
			}
			if summary(got) != summary(want) {
				t.Errorf("scan found %s, want %s", summary(got), summary(want))
			}
			// The next start: exactly this, before agent-ready.
			r, stop := startAgent(t, agent.Options{Config: cfg, Key: testKey})
			stop()
			recs := map[string]rec{}
			rgot := map[string]string{}
			for _, x := range startupRecs(r) {
				rel, _ := filepath.Rel(root, x.s("file.path"))
				rgot[rel], recs[rel] = x.s("event.action"), x
			}
			if summary(rgot) != summary(want) {
				t.Errorf("restart reported %s, want %s: %v", summary(rgot), summary(want), startupRecs(r))
			}
			if strings.Contains(r.raw(), testutil.XattrSecret0) {
				t.Error("a record holds the xattr's value")
			}
			for _, st := range made {
				t.Run(st.name, func(t *testing.T) {
					for rel := range st.want {
						f, x := findings[rel], recs[rel]
						if f == nil || x == nil {
							t.Errorf("%s: finding %v, record %v", rel, f != nil, x != nil)
							continue
						}
						if st.check != nil {
							st.check(t, f, x)
						}
					}
				})
			}
		})
		if !ok {
			t.Fatalf("phase %d failed: the next builds on it", phase)
		}
	}
	r, stop = startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Errorf("clean restart reported %v", got)
	}
}

// TestRestartOverSchema2Store: a store left by a vigil that kept only a
// tree's regular files and no mounts (schema 2) is upgraded by the next
// start without a report: the directories and symlinks it never kept are
// recorded quietly, and a directory created after that is reported.
func TestRestartOverSchema2Store(t *testing.T) {
	needAgent(t)
	root := t.TempDir()
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, rel := range []string{"tree/a/f", "tree/b/g", "tree/h"} {
		os.MkdirAll(filepath.Dir(p(rel)), 0o755)
		if err := os.WriteFile(p(rel), []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("h", p("tree/l")); err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg, err := config.Parse("schema2.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[output]
stdout = false
[[watch]]
path = %q
recursive = true
`, stateDir, p("tree"))))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Fatalf("baseline reported %v", got)
	}
	// Make it what a schema 2 vigil wrote.
	store, err := state.Open(filepath.Join(stateDir, state.StoreFile), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"tree", "tree/a", "tree/b", "tree/l"} {
		if e, ok, _ := store.Get(p(rel)); !ok || e.Mode&unix.S_IFMT == unix.S_IFREG {
			t.Fatalf("%s: record %+v (%v)", rel, e, ok)
		}
		if err := store.Delete(p(rel)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.DeleteMeta(scan.MetaMounts); err != nil {
		t.Fatal(err)
	}
	store.Close()
	setSchema(t, filepath.Join(stateDir, state.StoreFile), "2")

	r, stop = startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Errorf("restart over a schema 2 store reported %d changes: %v", len(got), got)
	}
	if err := os.Mkdir(p("tree/c"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, stop = startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) != 1 || got[0].s("file.path") != p("tree/c") || got[0].s("event.action") != "created" ||
		got[0].s("file.type") != "dir" {
		t.Errorf("after the upgrade: %v", got)
	}
}

// setSchema writes a store's schema version as an older vigil left it.
func setSchema(t *testing.T, path, version string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte(version))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReloadAddsTreeEntries: a reload that adds a tree gives its
// directories and symlinks a baseline with its files (config-reloaded
// names them as newly watched), so the next start reports none of them
// created; a directory made in the tree while vigil is down is.
func TestReloadAddsTreeEntries(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	p := func(rel string) string { return filepath.Join(dir, rel) }
	for _, rel := range []string{"etc/passwd", "tree/sub/f"} {
		os.MkdirAll(filepath.Dir(p(rel)), 0o755)
		if err := os.WriteFile(p(rel), []byte(passwd0), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sub/f", p("tree/l")); err != nil {
		t.Fatal(err)
	}
	cfgPath := p("vigil.toml")
	head := fmt.Sprintf("[agent]\nstate_dir = %q\n[output]\nstdout = false\n[[watch]]\npath = %q\n", p("state"), p("etc/passwd"))
	tree := fmt.Sprintf("[[watch]]\npath = %q\nrecursive = true\n", p("tree"))
	load := func(text string) *config.Config {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	startupOrAdded := func(r *records) []rec {
		return r.since(0, func(x rec) bool { return x.s("vigil.origin") == "startup" || x.s("event.action") == "watch-added" })
	}
	_, stop := startAgent(t, agent.Options{Config: load(head)})
	stop()

	h := agent.NewHandle()
	r, stop := startAgent(t, agent.Options{Config: load(head), Handle: h,
		LoadConfig: func() (*config.Config, error) { return config.Load(cfgPath) }})
	mark := r.mark()
	load(head + tree)
	if _, err := h.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	cr := r.wait(t, mark, "config-reloaded", func(x rec) bool { return x.s("event.action") == "config-reloaded" })
	stop()
	var names []string
	list, _ := cr.get("vigil.reload.watch_added.paths").([]any)
	for _, x := range list {
		names = append(names, fmt.Sprint(x))
	}
	if want := []string{p("tree"), p("tree/l"), p("tree/sub"), p("tree/sub/f")}; !reflect.DeepEqual(names, want) {
		t.Errorf("config-reloaded names %v as newly watched, want %v", names, want)
	}

	r, stop = startAgent(t, agent.Options{Config: load(head + tree)})
	stop()
	if got := startupOrAdded(r); len(got) > 0 {
		t.Errorf("the start after the reload reported %v", got)
	}
	if err := os.Mkdir(p("tree/sub/new"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, stop = startAgent(t, agent.Options{Config: load(head + tree)})
	stop()
	if got := startupOrAdded(r); len(got) != 1 || got[0].s("file.path") != p("tree/sub/new") || got[0].s("event.action") != "created" {
		t.Errorf("a directory made while stopped: %v", got)
	}
}

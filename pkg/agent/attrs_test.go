//go:build privileged

package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/state"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// tmpfsDir mounts a fresh tmpfs for the test.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(d, 0); err != nil {
			t.Errorf("umount %s: %v", d, err)
		}
	})
	return d
}

// run runs a tool on the host; in a guest (busybox: no setfacl, setcap or
// chattr) the same change is made with the syscalls the tool makes.
func run(t *testing.T, tool []string, syscalls func() error) {
	t.Helper()
	if testutil.InVM() {
		if err := syscalls(); err != nil {
			t.Fatalf("%v (by syscalls): %v", tool, err)
		}
		return
	}
	if out, err := exec.Command(tool[0], tool[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", tool, err, out)
	}
}

func setFlags(path string, set uint32) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(f|set))
}

func clearFlags(path string, clear uint32) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	f, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(f&^clear))
}

// TestAttributesChangedWhileStopped: on ext4 and tmpfs, an ACL write grant,
// a file capability, the immutable flag, a security label and a user.*
// xattr value changed while vigil is stopped are each reported exactly
// once by `vigil scan` (scan.Run, as the command calls it) and once by the
// next start, with their semantic fields; the ACL grant on a file whose
// entry names an owner is drift; the xattr's secret value appears nowhere.
func TestAttributesChangedWhileStopped(t *testing.T) {
	needAgent(t)
	for _, fs := range []struct {
		name string
		dir  func(*testing.T) string
	}{{"ext4", ext4Dir}, {"tmpfs", tmpfsDir}} {
		t.Run(fs.name, func(t *testing.T) { testAttributesChanged(t, fs.dir(t)) })
	}
}

func testAttributesChanged(t *testing.T, dir string) {
	aclF := filepath.Join(dir, "shadow")
	capF := filepath.Join(dir, "tool")
	flagF := filepath.Join(dir, "hosts")
	labelF := filepath.Join(dir, "label")
	xattrF := filepath.Join(dir, "secretx")
	for _, p := range []string{aclF, capF, flagF, labelF, xattrF} {
		if err := os.WriteFile(p, []byte("content of "+filepath.Base(p)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// What this filesystem on this kernel allows: tmpfs has user xattrs
	// since 6.6 and inode flags since 6.0.
	userX := unix.Setxattr(xattrF, "user.token", []byte(testutil.XattrSecret0), 0) == nil
	fd, err := unix.Open(flagF, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, ferr := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	unix.Close(fd)
	flags := ferr == nil
	if err := unix.Setxattr(labelF, attrs.XattrSELinux, []byte("system_u:object_r:etc_t:s0\x00"), 0); err != nil {
		t.Fatalf("setting a security label: %v", err)
	}
	t.Logf("user xattrs %v, inode flags %v (%v)", userX, flags, ferr)

	stateDir := filepath.Join(t.TempDir(), "state")
	cfg, err := config.Parse("attrs.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[output]
stdout = false
[[watch]]
path = %q
owner = "root"
[[watch]]
path = %q
[[watch]]
path = %q
[[watch]]
path = %q
[[watch]]
path = %q
`, stateDir, aclF, capF, flagF, labelF, xattrF)))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Fatalf("baseline reported %v", got)
	}

	// While stopped.
	uid := uint32(65534)
	want := map[string]func(t *testing.T, a *attrs.Changes, x rec){}
	run(t, []string{"setfacl", "-m", "u:65534:rw", aclF}, func() error {
		return unix.Setxattr(aclF, attrs.XattrACLAccess, attrs.EncodeACL([]attrs.ACLEntry{{Tag: attrs.TagUserObj, Perm: "rw-"},
			{Tag: attrs.TagUser, ID: &uid, Perm: "rw-"}, {Tag: attrs.TagGroupObj, Perm: "r--"}, {Tag: attrs.TagMask, Perm: "rw-"},
			{Tag: attrs.TagOther, Perm: "r--"}}), 0)
	})
	want[aclF] = func(t *testing.T, a *attrs.Changes, x rec) {
		if a.ACL == nil || !reflect.DeepEqual(a.ACL.WriteGranted, []string{"user:65534"}) || len(a.ACL.Added) != 5 {
			t.Errorf("acl: %+v", a.ACL)
		}
		if x != nil && (x.s("event.kind") != "alert" || !strings.Contains(x.s("vigil.ownership.reasons"), "acl-write") ||
			!strings.Contains(x.s("vigil.ownership.acl_write"), "user:65534")) {
			t.Errorf("an ACL write grant to another user is not drift: %s", x)
		}
	}
	run(t, []string{"setcap", "cap_setuid,cap_net_raw+ep", capF}, func() error {
		return unix.Setxattr(capF, attrs.XattrCapability, attrs.EncodeCaps(&attrs.Caps{Permitted: 1<<7 | 1<<13, Effective: true}), 0)
	})
	want[capF] = func(t *testing.T, a *attrs.Changes, x rec) {
		if a.Caps == nil || !reflect.DeepEqual(a.Caps.Added, []string{"cap_setuid", "cap_net_raw"}) ||
			!reflect.DeepEqual(a.Caps.RootEquivalent, []string{"cap_setuid"}) || !a.Caps.New.Effective {
			t.Errorf("capabilities: %+v", a.Caps)
		}
	}
	if flags {
		run(t, []string{"chattr", "+i", flagF}, func() error { return setFlags(flagF, 0x10) })
		t.Cleanup(func() { clearFlags(flagF, 0x10) })
		want[flagF] = func(t *testing.T, a *attrs.Changes, x rec) {
			if a.Flags == nil || !reflect.DeepEqual(a.Flags.Set, []string{"immutable"}) || len(a.Flags.Cleared) != 0 {
				t.Errorf("flags: %+v", a.Flags)
			}
		}
	}
	if err := unix.Setxattr(labelF, attrs.XattrSELinux, []byte("system_u:object_r:shadow_t:s0\x00"), 0); err != nil {
		t.Fatal(err)
	}
	want[labelF] = func(t *testing.T, a *attrs.Changes, x rec) {
		if !reflect.DeepEqual(a.Labels, []attrs.LabelChange{{Name: attrs.XattrSELinux, Old: "system_u:object_r:etc_t:s0", New: "system_u:object_r:shadow_t:s0"}}) {
			t.Errorf("labels: %+v", a.Labels)
		}
	}
	if userX {
		if err := unix.Setxattr(xattrF, "user.token", []byte(testutil.XattrSecret1), 0); err != nil {
			t.Fatal(err)
		}
		want[xattrF] = func(t *testing.T, a *attrs.Changes, x rec) {
			if a.Xattrs == nil || !reflect.DeepEqual(a.Xattrs.Changed, []string{"user.token"}) {
				t.Errorf("xattrs: %+v", a.Xattrs)
			}
		}
	}

	// vigil scan: each once.
	cons, err := consumer.NewAll(agent.ConsumerOptions(cfg, testKey))
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Open(filepath.Join(stateDir, state.StoreFile), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := scan.Run(context.Background(), cfg.Watch, cfg.Sensor.MaxDepth, st, cons, scan.ScanOptions{Key: testKey})
	st.Close()
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("scan: %v %v", err, res.Errors)
	}
	if len(res.Findings) != len(want) {
		t.Errorf("scan: %d findings, want %d: %+v", len(res.Findings), len(want), res.Findings)
	}
	for _, f := range res.Findings {
		check := want[f.Path]
		if check == nil || f.Action != scan.ActionAttributesChanged || f.Attributes == nil {
			t.Errorf("scan: unexpected finding %+v", f)
			continue
		}
		check(t, f.Attributes, nil)
		for _, l := range f.Attributes.Lines() {
			if strings.Contains(l, testutil.XattrSecret0) || strings.Contains(l, testutil.XattrSecret1) {
				t.Errorf("scan output holds the xattr's value: %s", l)
			}
		}
	}

	// The restart: each once, before agent-ready, then nothing more.
	r, stop = startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	got := startupRecs(r)
	if len(got) != len(want) {
		t.Errorf("restart: %d startup records, want %d: %v", len(got), len(want), got)
	}
	for _, x := range got {
		p := x.s("file.path")
		check := want[p]
		if check == nil || x.s("event.action") != scan.ActionAttributesChanged {
			t.Errorf("restart: unexpected record %s", x)
			continue
		}
		parts := map[string]any{}
		for _, k := range []string{"acl", "default_acl", "capabilities", "flags", "labels", "xattrs"} {
			if v := x.get("vigil." + k); v != nil {
				parts[k] = v
			}
		}
		b, _ := json.Marshal(parts)
		var a attrs.Changes
		if err := json.Unmarshal(b, &a); err != nil || a.Empty() {
			t.Errorf("restart: %s: no attribute change in %s: %v", p, x, err)
			continue
		}
		check(t, &a, x)
	}
	if raw := r.raw(); strings.Contains(raw, testutil.XattrSecret0) || strings.Contains(raw, testutil.XattrSecret1) {
		t.Error("a record holds the xattr's secret value")
	}
	// The next start reports nothing (a clean restart). Then, while it
	// runs, an ACL set and a live write to the file: a live record carries
	// the ACL change (the setxattr's own, or, on an object that cannot see
	// it, the write's: the attributes are compared at every record), the
	// store takes the new attributes, and the next start reports nothing.
	r, stop = startAgent(t, agent.Options{Config: cfg, Key: testKey})
	if got := startupRecs(r); len(got) > 0 {
		t.Errorf("clean restart reported %v", got)
	}
	mark := r.mark()
	run(t, []string{"setfacl", "-m", "g:27:rw", labelF}, func() error {
		gid := uint32(27)
		return unix.Setxattr(labelF, attrs.XattrACLAccess, attrs.EncodeACL([]attrs.ACLEntry{{Tag: attrs.TagUserObj, Perm: "rw-"},
			{Tag: attrs.TagGroupObj, Perm: "r--"}, {Tag: attrs.TagGroup, ID: &gid, Perm: "rw-"}, {Tag: attrs.TagMask, Perm: "rw-"},
			{Tag: attrs.TagOther, Perm: "r--"}}), 0)
	})
	sh(t, fmt.Sprintf("echo more >> %s", labelF))
	r.wait(t, mark, "live write", func(x rec) bool { return x.s("file.path") == labelF && x.s("event.action") == "modified" })
	stop()
	var carried []rec
	for _, x := range r.since(mark, func(x rec) bool { return x.s("file.path") == labelF }) {
		if strings.Contains(x.s("vigil.acl"), "group:27") {
			carried = append(carried, x)
		}
	}
	if len(carried) != 1 {
		t.Errorf("live records carrying the ACL change: %v, want exactly one", carried)
	}
	r, stop = startAgent(t, agent.Options{Config: cfg, Key: testKey})
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Errorf("restart after a live ACL change reported it again: %v", got)
	}
}

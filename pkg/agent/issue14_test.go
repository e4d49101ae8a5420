//go:build privileged

package agent_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// op14 is one row of the issue 14 table: an operation done with the real
// tool (host, and the guest where busybox has it) or, in a guest whose
// busybox lacks the tool, with the same syscalls from Go; then exactly the
// records it must give.
type op14 struct {
	name string
	// feature is the operation's name in the sensor's features: an object
	// that declares "gap:<feature>" cannot see it (docs/kernels.md), and the
	// test asserts that gap instead of the record.
	feature string
	// tool is the command; guestTool the command in a busybox guest (nil:
	// the same syscalls, made by the test binary run as a child with
	// syscalls as its arguments, childSyscall: the agent runs in this
	// process and does not see this process's own operations).
	tool, guestTool, syscalls []string
	// unsupported says the filesystem refuses the operation (tmpfs without
	// ACLs or user xattrs): then the test asserts the refusal and that no
	// record came.
	unsupported func(err error) bool
	// want are the records, one per path, with their action; check looks at
	// each.
	want  map[string]string
	check func(t *testing.T, x rec)
	// after runs once the records were checked (e.g. a write to the file a
	// mount now shows).
	after func(t *testing.T, r *records)
}

// TestIssue14Live: every way issue 14 lists to change what a file grants,
// done on ext4 and tmpfs with the tools an attacker uses, each expecting
// exactly its record: the action, the operation's own fields, and the
// actor (process.name and process.pid of the tool, or of the test binary's
// child when the syscalls stand in for a tool the guest lacks).
func TestIssue14Live(t *testing.T) {
	testutil.RequireRoot(t)
	for _, fs := range []struct {
		name string
		dir  func(*testing.T) string
	}{{"ext4", ext4Dir}, {"tmpfs", tmpfsDir}} {
		t.Run(fs.name, func(t *testing.T) { testIssue14Live(t, fs.name, fs.dir(t)) })
	}
}

func testIssue14Live(t *testing.T, fsName, dir string) {
	p := func(rel string) string { return filepath.Join(dir, rel) }
	files := map[string]string{
		"etc/passwd":     passwd0,
		"etc/shadow":     "root:*:19700:0:99999:7:::\n",
		"etc/hosts":      "127.0.0.1 localhost\n",
		"etc/data":       strings.Repeat("0123456789abcdef", 4096),
		"tree/bin/tool":  "#!/bin/sh\necho tool\n",
		"tree/notes":     "notes\n",
		"ovl/conf":       "setting = 1\n",
		"ovl-up/planted": "planted by the overlay\n",
		"outside/passwd": passwd0 + "evil:x:0:0::/root:/bin/sh\n",
	}
	for rel, content := range files {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p(rel), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(p("ovl-work"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A directory and a symlink that are in the tree before vigil starts:
	// their own changes are reported as a file's.
	if err := os.Mkdir(p("tree/old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("notes", p("tree/oldlink")); err != nil {
		t.Fatal(err)
	}
	cfgText := fmt.Sprintf(`
[agent]
state_dir = %q
[coalesce]
window = "200ms"
[output]
stdout = false
[[watch]]
path = %q
kind = "passwd"
[[watch]]
path = %q
owner = "0"
[[watch]]
path = %q
[[watch]]
path = %q
[[watch]]
path = %q
recursive = true
[[watch]]
path = %q
recursive = true
`, t.TempDir(), p("etc/passwd"), p("etc/shadow"), p("etc/hosts"), p("etc/data"), p("tree"), p("ovl"))
	cfg, err := config.Parse("issue14.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := startAgent(t, agent.Options{Config: cfg})
	defer stop()
	ready := r.wait(t, 0, "agent-ready", func(x rec) bool { return x.s("event.action") == "agent-ready" })
	features := ready.s("vigil.sensor.features")
	t.Logf("object %s (%s), features %s", ready.s("vigil.sensor.object"), ready.s("vigil.sensor.hook_type"), features)
	gap := func(f string) bool { return strings.Contains(features, `"gap:`+f+`"`) }

	nobody := uint32(65534)
	acl := func(named bool) []byte {
		es := []attrs.ACLEntry{{Tag: attrs.TagUserObj, Perm: "rw-"}}
		if named {
			es = append(es, attrs.ACLEntry{Tag: attrs.TagUser, ID: &nobody, Perm: "rw-"})
		}
		es = append(es, attrs.ACLEntry{Tag: attrs.TagGroupObj, Perm: "r--"})
		if named {
			es = append(es, attrs.ACLEntry{Tag: attrs.TagMask, Perm: "rw-"})
		}
		return attrs.EncodeACL(append(es, attrs.ACLEntry{Tag: attrs.TagOther, Perm: "r--"}))
	}
	notSupported := func(err error) bool { return errors.Is(err, unix.EOPNOTSUPP) }
	xattrName := func(name, op string) func(t *testing.T, x rec) {
		return func(t *testing.T, x rec) {
			if x.s("vigil.xattr.name") != name || x.s("vigil.xattr.operation") != op {
				t.Errorf("vigil.xattr is not %s %s: %s", op, name, x)
			}
		}
	}
	both := func(fs ...func(t *testing.T, x rec)) func(t *testing.T, x rec) {
		return func(t *testing.T, x rec) {
			for _, f := range fs {
				f(t, x)
			}
		}
	}
	shadow, tool, hosts, data := p("etc/shadow"), p("tree/bin/tool"), p("etc/hosts"), p("etc/data")
	passwd, fake, ovl := p("etc/passwd"), p("outside/passwd"), p("ovl")
	ovlOpts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", ovl, p("ovl-up"), p("ovl-work"))
	ops := []op14{
		{name: "setfacl -m u:nobody:rw", feature: "setxattr",
			tool:        []string{"setfacl", "-m", "u:nobody:rw", shadow},
			syscalls:    []string{"setxattr", shadow, attrs.XattrACLAccess, hex.EncodeToString(acl(true))},
			unsupported: notSupported,
			want:        map[string]string{shadow: "attributes-changed"},
			check: both(xattrName(attrs.XattrACLAccess, "set"), func(t *testing.T, x rec) {
				if js(x, "vigil.acl.write_granted") != `["user:65534"]` || x.s("event.kind") != "alert" ||
					!strings.Contains(js(x, "vigil.ownership.reasons"), "acl-write") ||
					js(x, "vigil.ownership.acl_write") != `["user:65534"]` {
					t.Errorf("an ACL write grant to nobody is not reported as drift: %s", x)
				}
			})},
		{name: "setfacl -x u:nobody", feature: "setxattr",
			tool:        []string{"setfacl", "-x", "u:nobody", shadow},
			syscalls:    []string{"setxattr", shadow, attrs.XattrACLAccess, hex.EncodeToString(acl(false))},
			unsupported: notSupported,
			want:        map[string]string{shadow: "attributes-changed"},
			check: both(xattrName(attrs.XattrACLAccess, "set"), func(t *testing.T, x rec) {
				if !strings.Contains(js(x, "vigil.acl.removed"), `"id":65534`) {
					t.Errorf("the entry for nobody is not listed removed: %s", x)
				}
			})},
		{name: "setcap cap_setuid+ep", feature: "setxattr",
			tool: []string{"setcap", "cap_setuid+ep", tool},
			syscalls: []string{"setxattr", tool, attrs.XattrCapability,
				hex.EncodeToString(attrs.EncodeCaps(&attrs.Caps{Permitted: 1 << 7, Effective: true}))},
			want: map[string]string{tool: "attributes-changed"},
			check: both(xattrName(attrs.XattrCapability, "set"), func(t *testing.T, x rec) {
				if js(x, "vigil.capabilities.root_equivalent") != `["cap_setuid"]` || js(x, "vigil.capabilities.added") != `["cap_setuid"]` {
					t.Errorf("cap_setuid is not named root-equivalent: %s", x)
				}
			})},
		{name: "setcap -r", feature: "removexattr",
			tool:     []string{"setcap", "-r", tool},
			syscalls: []string{"removexattr", tool, attrs.XattrCapability},
			want:     map[string]string{tool: "attributes-changed"},
			check: both(xattrName(attrs.XattrCapability, "remove"), func(t *testing.T, x rec) {
				if js(x, "vigil.capabilities.removed") != `["cap_setuid"]` || js(x, "vigil.capabilities.new") != "null" {
					t.Errorf("the capability's removal: %s", x)
				}
			})},
		{name: "chattr +i", feature: "setflags",
			tool: []string{"chattr", "+i", hosts}, syscalls: []string{"setflags", hosts, "16"},
			unsupported: func(err error) bool { return errors.Is(err, unix.ENOTTY) || notSupported(err) },
			want:        map[string]string{hosts: "attributes-changed"},
			check: func(t *testing.T, x rec) {
				if js(x, "vigil.flags.set") != `["immutable"]` || js(x, "vigil.flags.cleared") != `[]` {
					t.Errorf("immutable not set: %s", x)
				}
			}},
		{name: "chattr -i", feature: "setflags",
			tool: []string{"chattr", "-i", hosts}, syscalls: []string{"clearflags", hosts, "16"},
			unsupported: func(err error) bool { return errors.Is(err, unix.ENOTTY) || notSupported(err) },
			want:        map[string]string{hosts: "attributes-changed"},
			check: func(t *testing.T, x rec) {
				if js(x, "vigil.flags.cleared") != `["immutable"]` {
					t.Errorf("immutable not cleared: %s", x)
				}
			}},
		{name: "chattr +a", feature: "setflags",
			tool: []string{"chattr", "+a", hosts}, syscalls: []string{"setflags", hosts, "32"},
			unsupported: func(err error) bool { return errors.Is(err, unix.ENOTTY) || notSupported(err) },
			want:        map[string]string{hosts: "attributes-changed"},
			check: func(t *testing.T, x rec) {
				if js(x, "vigil.flags.set") != `["append-only"]` {
					t.Errorf("append-only not set: %s", x)
				}
			}},
		{name: "setfattr user.token", feature: "setxattr",
			tool:        []string{"setfattr", "-n", "user.token", "-v", testutil.XattrSecret0, p("tree/notes")},
			syscalls:    []string{"setxattr", p("tree/notes"), "user.token", hex.EncodeToString([]byte(testutil.XattrSecret0))},
			unsupported: notSupported,
			want:        map[string]string{p("tree/notes"): "attributes-changed"},
			check: both(xattrName("user.token", "set"), func(t *testing.T, x rec) {
				if js(x, "vigil.xattrs.added") != `["user.token"]` {
					t.Errorf("user.token not listed added: %s", x)
				}
			})},
		{name: "setfattr security.selinux", feature: "setxattr",
			tool: []string{"setfattr", "-n", attrs.XattrSELinux, "-v", "system_u:object_r:shadow_t:s0", p("tree/notes")},
			syscalls: []string{"setxattr", p("tree/notes"), attrs.XattrSELinux,
				hex.EncodeToString([]byte("system_u:object_r:shadow_t:s0"))},
			want: map[string]string{p("tree/notes"): "attributes-changed"},
			check: both(xattrName(attrs.XattrSELinux, "set"), func(t *testing.T, x rec) {
				if !strings.Contains(js(x, "vigil.labels"), `"new":"system_u:object_r:shadow_t:s0"`) {
					t.Errorf("the label's new value is missing: %s", x)
				}
			})},
		{name: "mkdir", feature: "mkdir",
			tool: []string{"mkdir", p("tree/d")}, guestTool: []string{"mkdir", p("tree/d")},
			want: map[string]string{p("tree/d"): "created"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "dir" {
					t.Errorf("file.type: %s", x)
				}
			}},
		{name: "chmod of the new directory", feature: "attributes",
			tool: []string{"chmod", "0700", p("tree/d")}, guestTool: []string{"chmod", "0700", p("tree/d")},
			want: map[string]string{p("tree/d"): "attributes-changed"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "dir" || x.s("file.mode") != "0700" {
					t.Errorf("chmod of a tree's directory: %s", x)
				}
			}},
		{name: "rmdir", feature: "rmdir",
			tool: []string{"rmdir", p("tree/d")}, guestTool: []string{"rmdir", p("tree/d")},
			want: map[string]string{p("tree/d"): "deleted"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "dir" {
					t.Errorf("file.type of a removed directory: %s", x)
				}
			}},
		{name: "chmod of a directory there at start", feature: "attributes",
			tool: []string{"chmod", "0700", p("tree/old")}, guestTool: []string{"chmod", "0700", p("tree/old")},
			want: map[string]string{p("tree/old"): "attributes-changed"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "dir" || x.s("file.mode") != "0700" {
					t.Errorf("chmod of a tree's existing directory: %s", x)
				}
			}},
		{name: "rmdir of a directory there at start", feature: "rmdir",
			tool: []string{"rmdir", p("tree/old")}, guestTool: []string{"rmdir", p("tree/old")},
			want: map[string]string{p("tree/old"): "deleted"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "dir" {
					t.Errorf("file.type of a removed existing directory: %s", x)
				}
			}},
		{name: "rm of a symlink there at start", feature: "unlink",
			tool: []string{"rm", p("tree/oldlink")}, guestTool: []string{"rm", p("tree/oldlink")},
			want: map[string]string{p("tree/oldlink"): "deleted"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "symlink" {
					t.Errorf("file.type of a removed existing symlink: %s", x)
				}
			}},
		{name: "ln -s", feature: "symlink",
			tool: []string{"ln", "-s", "../../etc/shadow", p("tree/evil")}, guestTool: []string{"ln", "-s", "../../etc/shadow", p("tree/evil")},
			want: map[string]string{p("tree/evil"): "created"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "symlink" || x.s("file.target_path") != "../../etc/shadow" || x.s("file.hash.sha256") != "" {
					t.Errorf("the symlink's record: %s", x)
				}
			}},
		{name: "mknod p", feature: "mknod",
			tool: []string{"mknod", p("tree/fifo"), "p"}, guestTool: []string{"mknod", p("tree/fifo"), "p"},
			want: map[string]string{p("tree/fifo"): "created"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "fifo" || x.get("vigil.device") != nil {
					t.Errorf("the FIFO's record: %s", x)
				}
			}},
		{name: "mknod c 1 3", feature: "mknod",
			tool: []string{"mknod", p("tree/null"), "c", "1", "3"}, guestTool: []string{"mknod", p("tree/null"), "c", "1", "3"},
			want: map[string]string{p("tree/null"): "created"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "char-device" || x.s("vigil.device.type") != "char-device" ||
					x.s("vigil.device.major") != "1" || x.s("vigil.device.minor") != "3" {
					t.Errorf("the device node's record: %s", x)
				}
			}},
		{name: "unlink the device node", feature: "unlink",
			tool: []string{"rm", p("tree/null")}, guestTool: []string{"rm", p("tree/null")},
			want: map[string]string{p("tree/null"): "deleted"},
			check: func(t *testing.T, x rec) {
				if x.s("file.type") != "char-device" {
					t.Errorf("file.type of a removed device node, as last seen: %s", x)
				}
			}},
		{name: "fallocate --punch-hole", feature: "fallocate",
			tool:     []string{"fallocate", "--punch-hole", "--offset", "4096", "--length", "8192", data},
			syscalls: []string{"punch", data, "4096", "8192"},
			want:     map[string]string{data: "modified"},
			check: func(t *testing.T, x rec) {
				if js(x, "vigil.fallocate.mode") != `["keep-size","punch-hole"]` || x.s("vigil.fallocate.length") != "8192" {
					t.Errorf("the punched hole: %s", x)
				}
			}},
		{name: "mount --bind over a watched file", feature: "mount",
			tool: []string{"mount", "--bind", fake, passwd}, guestTool: []string{"mount", "-o", "bind", fake, passwd},
			want: map[string]string{passwd: "shadowed"},
			check: func(t *testing.T, x rec) {
				if x.s("vigil.mount.mountpoint") != passwd || x.s("vigil.mount.change") != "shadowed" {
					t.Errorf("vigil.mount: %s", x)
				}
				if op := x.s("vigil.mount.operation"); op == "mount" && (x.s("vigil.mount.source") != fake ||
					!strings.Contains(js(x, "vigil.mount.flags"), `"bind"`)) || op != "mount" && op != "move_mount" {
					t.Errorf("the bind's source and flags: %s", x)
				}
				ch := hasChange(x, "user-added", "evil")
				if ch == nil || !flagged(ch, "uid-0") {
					t.Errorf("the fake passwd's uid-0 user is not reported: %s", x)
				}
			},
			after: func(t *testing.T, r *records) {
				// Writes now go to the file the mount shows, and are seen.
				mark := r.mark()
				sh(t, "echo evil2:x:0:0::/root:/bin/sh >> "+passwd)
				x := r.wait(t, mark, "the write to the bind-mounted passwd", forPath(passwd, "modified"))
				if ch := hasChange(x, "user-added", "evil2"); ch == nil {
					t.Errorf("the write through the mount: %s", x)
				}
			}},
		{name: "umount the bind", feature: "umount",
			tool: []string{"umount", passwd}, guestTool: []string{"umount", passwd},
			want: map[string]string{passwd: "uncovered"},
			check: func(t *testing.T, x rec) {
				if x.s("vigil.mount.change") != "uncovered" || hasChange(x, "user-removed", "evil") == nil ||
					hasChange(x, "user-removed", "evil2") == nil {
					t.Errorf("the uncovered passwd compared with the fake: %s", x)
				}
			}},
		{name: "mount -t overlay over a watched directory", feature: "mount",
			tool:      []string{"mount", "-t", "overlay", "overlay", "-o", ovlOpts, ovl},
			guestTool: []string{"mount", "-t", "overlay", "overlay", "-o", ovlOpts, ovl},
			want:      map[string]string{p("ovl/conf"): "shadowed", p("ovl/planted"): "shadowed"},
			check: func(t *testing.T, x rec) {
				if x.s("vigil.mount.mountpoint") != ovl || x.s("vigil.mount.change") != "shadowed" {
					t.Errorf("vigil.mount: %s", x)
				}
				if x.s("vigil.mount.operation") == "mount" && x.s("vigil.mount.fstype") != "overlay" {
					t.Errorf("the overlay's type: %s", x)
				}
			},
			after: func(t *testing.T, r *records) {
				mark := r.mark()
				sh(t, "echo 'setting = 2' >> "+p("ovl/conf"))
				r.wait(t, mark, "the write through the overlay", forPath(p("ovl/conf"), "modified"))
				sh(t, "echo new > "+p("ovl/new"))
				r.wait(t, mark, "a file created in the overlay", forPath(p("ovl/new"), "created"))
				r.wait(t, mark, "the write to it", forPath(p("ovl/new"), "modified"))
			}},
		{name: "umount the overlay", feature: "umount",
			tool: []string{"umount", ovl}, guestTool: []string{"umount", ovl},
			want: map[string]string{p("ovl/conf"): "uncovered", p("ovl/planted"): "uncovered", p("ovl/new"): "uncovered"},
			check: func(t *testing.T, x rec) {
				if x.s("vigil.mount.change") != "uncovered" {
					t.Errorf("vigil.mount: %s", x)
				}
			}},
	}
	defer unix.Unmount(passwd, unix.MNT_DETACH)
	defer unix.Unmount(ovl, unix.MNT_DETACH)
	defer clearFlags(hosts, 0x30)

	for i, op := range ops {
		mark := r.mark()
		pid, name, err := doOp(op)
		if err != nil && op.unsupported != nil && op.unsupported(err) {
			// The filesystem refuses it: so no record may come.
			t.Logf("%s: %s refuses it (%v): asserting no record", op.name, fsName, err)
			if x := afterSentinel(t, r, mark, dir, i); len(x) > 0 {
				t.Errorf("%s: refused by the filesystem, yet records: %v", op.name, x)
			}
			continue
		} else if err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
		if gap(op.feature) {
			// The object cannot see this operation (docs/kernels.md): no live
			// record for it; the next live record of the file carries it.
			got := afterSentinel(t, r, mark, dir, i)
			for _, x := range got {
				if x.s("vigil.origin") == "live" && x.s("process.pid") == fmt.Sprint(pid) {
					t.Errorf("%s: declared gap:%s, yet a live record: %s", op.name, op.feature, x)
				}
			}
			t.Logf("KNOWN GAP (docs/kernels.md): %s: the object does not see %s", op.name, op.feature)
			if op.feature == "setxattr" || op.feature == "removexattr" || op.feature == "setflags" {
				// The file's next live record carries the attribute change.
				for path := range op.want {
					mark := r.mark()
					if out, err := exec.Command("touch", "-c", path).CombinedOutput(); err != nil {
						t.Logf("%s: touch %s refused (%v: %s): no later record to carry the change", op.name, path, err, out)
						continue
					}
					x := r.wait(t, mark, "the next record of "+path, forPath(path, "attributes-changed"))
					if x.get("vigil.acl") == nil && x.get("vigil.capabilities") == nil && x.get("vigil.flags") == nil &&
						x.get("vigil.labels") == nil && x.get("vigil.xattrs") == nil {
						t.Errorf("%s: the next record does not carry the change: %s", op.name, x)
					}
				}
			}
			continue
		}
		for path, action := range op.want {
			x := r.wait(t, mark, op.name+": "+action+" "+path, func(x rec) bool {
				return x.s("file.path") == path && (x.s("vigil.origin") == "recovered" ||
					x.s("event.action") == action && x.s("vigil.origin") == "live")
			})
			if x.s("vigil.origin") == "recovered" {
				t.Errorf("%s: not the live record of %s (pid %d): %s", op.name, name, pid, x)
				logLost(t, r)
				continue
			}
			if x.s("process.pid") != fmt.Sprint(pid) || x.s("process.name") != name {
				t.Errorf("%s: not the live record of %s (pid %d): %s", op.name, name, pid, x)
			}
			if op.check != nil {
				op.check(t, x)
			}
		}
		// Exactly these: nothing else by this operation's actor under the
		// directory (the sentinel's record follows every record the
		// operation caused; a coalesced write of an earlier operation may
		// still come, by its own actor), and nothing recovered.
		var got []rec
		for _, x := range afterSentinel(t, r, mark, dir, i) {
			if x.s("vigil.origin") == "recovered" {
				got = append(got, x)
			} else if x.s("process.pid") == fmt.Sprint(pid) {
				got = append(got, x)
			}
		}
		if len(got) != len(op.want) {
			var s []string
			for _, x := range got {
				s = append(s, x.String())
			}
			t.Errorf("%s: %d records, want %d:\n%s", op.name, len(got), len(op.want), strings.Join(s, "\n"))
		}
		if op.after != nil {
			op.after(t, r)
		}
	}
	if raw := r.raw(); strings.Contains(raw, testutil.XattrSecret0) {
		t.Error("a record holds the user.* xattr's value")
	}
}

// doOp does an operation: the tool on the host, the guest's tool or the
// syscalls in a guest. It returns the actor's pid and comm.
func doOp(op op14) (int, string, error) {
	argv := op.tool
	var env []string
	if testutil.InVM() {
		argv = op.guestTool
		if argv == nil {
			argv = []string{os.Args[0]}
			env = append(os.Environ(), childSyscallEnv+"="+strings.Join(op.syscalls, "\x1f"))
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if op.unsupported != nil && strings.Contains(string(out), "Operation not supported") {
			err = unix.EOPNOTSUPP
		} else if op.unsupported != nil && strings.Contains(string(out), "Inappropriate ioctl") {
			err = unix.ENOTTY
		} else {
			// Not the whole command line: a value given to setfattr is a
			// secret the audit looks for.
			return 0, "", fmt.Errorf("%s: %v: %s", argv[0], err, out)
		}
	}
	name := filepath.Base(argv[0])
	if len(name) > 15 {
		name = name[:15]
	}
	return cmd.Process.Pid, name, err
}

// afterSentinel writes the sentinel (outside the watch set: a write to a
// watched tree's file instead) and waits for its record; records are
// written in order, so every record the operation caused is out by then.
// It returns the change records since mark for paths under dir, the
// sentinel's aside.
func afterSentinel(t *testing.T, r *records, mark int, dir string, i int) []rec {
	t.Helper()
	s := filepath.Join(dir, "tree", fmt.Sprintf("sentinel-%d", i))
	sh(t, ": > "+s) // by a child: the agent does not see this process's own operations
	r.wait(t, mark, "the sentinel", forPath(s, "created"))
	return r.since(mark, func(x rec) bool {
		p := x.s("file.path")
		return strings.HasPrefix(p, dir+"/") && !strings.Contains(p, "/sentinel-")
	})
}

// childSyscallEnv makes the test binary make one operation's syscalls and
// exit (a guest's stand-in for a tool busybox lacks): the action and its
// arguments, separated by \x1f.
const childSyscallEnv = "VIGIL_ISSUE14_SYSCALL"

func childSyscall(spec string) int {
	a := strings.Split(spec, "\x1f")
	num := func(i int) int64 {
		n, err := strconv.ParseInt(a[i], 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	var err error
	switch a[0] {
	case "setxattr": // the value in hex: an ACL or a capability holds NULs
		var v []byte
		if v, err = hex.DecodeString(a[3]); err == nil {
			err = unix.Setxattr(a[1], a[2], v, 0)
		}
	case "removexattr":
		err = unix.Removexattr(a[1], a[2])
	case "setflags":
		err = setFlags(a[1], uint32(num(2)))
	case "clearflags":
		err = clearFlags(a[1], uint32(num(2)))
	case "punch":
		var fd int
		if fd, err = unix.Open(a[1], unix.O_WRONLY, 0); err == nil {
			err = unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, num(2), num(3))
			unix.Close(fd)
		}
	default:
		err = fmt.Errorf("unknown action %q", a[0])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", a[0], err)
		if errors.Is(err, unix.EOPNOTSUPP) {
			fmt.Fprintln(os.Stderr, "Operation not supported")
		}
		if errors.Is(err, unix.ENOTTY) {
			fmt.Fprintln(os.Stderr, "Inappropriate ioctl")
		}
		return 1
	}
	return 0
}

// js is a record's field as JSON (arrays and objects as written).
func js(x rec, path string) string {
	b, err := json.Marshal(x.get(path))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

package agent

import (
	"bytes"
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// TestIssue14Records: each of issue 14's operations, as a synthetic kernel
// record, gives a record with its own fields (docs/events.md) and its
// actor.
func TestIssue14Records(t *testing.T) {
	uid := uint32(65534)
	aclGrant := attrs.Diff(&attrs.Set{}, &attrs.Set{ACL: []attrs.ACLEntry{{Tag: attrs.TagUserObj, Perm: "rw-"},
		{Tag: attrs.TagUser, ID: &uid, Perm: "rw-"}, {Tag: attrs.TagGroupObj, Perm: "r--"}, {Tag: attrs.TagMask, Perm: "rw-"},
		{Tag: attrs.TagOther, Perm: "r--"}}}, 0o100644, 0o100644)
	owned := &watch.Rule{Watch: config.Watch{Path: "/etc/shadow", OwnerID: u32(0)}}
	proc := sensor.Process{PID: 4321, Comm: "setfacl", Exe: "/usr/bin/setfacl", AUID: ^uint32(0), SessionID: ^uint32(0)}
	for _, tc := range []struct {
		name   string
		action watch.Action
		e      sensor.Event
		sn     seen
		rule   *watch.Rule
		b      []*sensor.Event // more events of a burst
		want   map[string]string
	}{
		{name: "acl grant", action: watch.ActionAttributesChanged, rule: owned,
			e:  sensor.Event{Op: sensor.OpSetxattr, Hook: sensor.HookVFSSetAcl, Flags: sensor.FlagStr2, Path2: attrs.XattrACLAccess},
			sn: seen{attrs: aclGrant},
			want: map[string]string{"vigil.xattr.name": attrs.XattrACLAccess, "vigil.xattr.operation": "set",
				"vigil.acl.write_granted": `["user:65534"]`, "event.kind": "alert",
				"vigil.ownership.acl_write": `["user:65534"]`, "vigil.hook": "vfs_set_acl"}},
		{name: "user xattr removed", action: watch.ActionAttributesChanged,
			e:    sensor.Event{Op: sensor.OpRemovexattr, Flags: sensor.FlagStr2, Path2: "user.token"},
			want: map[string]string{"vigil.xattr.name": "user.token", "vigil.xattr.operation": "remove", "event.kind": "event"}},
		{name: "chattr", action: watch.ActionAttributesChanged,
			e:    sensor.Event{Op: sensor.OpSetflags, Flags: sensor.FlagFlags, Arg1: 0x10 | 0x20},
			want: map[string]string{"vigil.inode_flags.requested": `["immutable","append-only"]`}},
		{name: "mknod c 1 3, gone", action: watch.ActionCreated,
			e:    sensor.Event{Op: sensor.OpMknod, Mode: syscall.S_IFCHR | 0o600, Arg1: 1<<20 | 3},
			want: map[string]string{"file.type": "char-device", "vigil.device.type": "char-device", "vigil.device.major": "1", "vigil.device.minor": "3"}},
		{name: "mknod p", action: watch.ActionCreated,
			e:    sensor.Event{Op: sensor.OpMknod, Mode: syscall.S_IFIFO | 0o600},
			want: map[string]string{"file.type": "fifo", "vigil.device": ""}},
		{name: "symlink, gone", action: watch.ActionCreated,
			e:    sensor.Event{Op: sensor.OpSymlink, Flags: sensor.FlagStr2, Path2: "/etc/shadow"},
			want: map[string]string{"file.type": "symlink", "file.target_path": "/etc/shadow"}},
		{name: "symlink", action: watch.ActionCreated,
			e:    sensor.Event{Op: sensor.OpSymlink, Flags: sensor.FlagStr2, Path2: "x"},
			sn:   seen{target: "../../etc/shadow", info: fileInfo(&syscall.Stat_t{Mode: syscall.S_IFLNK | 0o777})},
			want: map[string]string{"file.type": "symlink", "file.target_path": "../../etc/shadow"}},
		{name: "symlink retargeted", action: watch.ActionReplaced,
			e: sensor.Event{Op: sensor.OpRename},
			sn: seen{target: "/etc/shadow", link: &linkChange{old: "10-ops", new: "/etc/shadow", oldLink: true, isNew: true},
				info: fileInfo(&syscall.Stat_t{Mode: syscall.S_IFLNK | 0o777})},
			want: map[string]string{"file.target_path": "/etc/shadow", "vigil.symlink.old_target": "10-ops",
				"vigil.symlink.new_target": "/etc/shadow"}},
		{name: "symlink replaced by a file", action: watch.ActionReplaced,
			e:    sensor.Event{Op: sensor.OpRename},
			sn:   seen{link: &linkChange{old: "x", oldLink: true}, info: fileInfo(&syscall.Stat_t{Mode: syscall.S_IFREG | 0o644})},
			want: map[string]string{"vigil.symlink.old_target": "x", "vigil.symlink.new_target": "", "file.type": "file"}},
		{name: "mkdir", action: watch.ActionCreated, e: sensor.Event{Op: sensor.OpMkdir, Mode: 0o700},
			want: map[string]string{"file.type": "dir"}},
		{name: "bind mount", action: watch.ActionShadowed,
			e: sensor.Event{Op: sensor.OpMount, Match: sensor.MatchMount, Hook: sensor.HookPathMount, Path: "/etc/passwd",
				Flags: sensor.FlagStr2 | sensor.FlagPathAbs, Path2: "/tmp/fake", Arg1: 0x1000},
			want: map[string]string{"vigil.mount.mountpoint": "/etc/passwd", "vigil.mount.source": "/tmp/fake",
				"vigil.mount.change": "shadowed", "vigil.mount.flags": `["bind"]`, "vigil.mount.operation": "mount",
				"vigil.match": "mount", "event.type": `["change"]`}},
		{name: "overlay", action: watch.ActionShadowed,
			e: sensor.Event{Op: sensor.OpMount, Match: sensor.MatchMount, Path: "/etc/sudoers.d",
				Flags: sensor.FlagStr2, Path2: "overlay", FSType: "overlay"},
			want: map[string]string{"vigil.mount.fstype": "overlay", "vigil.mount.source": "overlay"}},
		{name: "move_mount", action: watch.ActionShadowed,
			e: sensor.Event{Op: sensor.OpMount, Match: sensor.MatchMount, Path: "/etc", Flags: sensor.FlagStr2 | sensor.FlagMoveMount,
				Arg1: 0x4},
			want: map[string]string{"vigil.mount.operation": "move_mount", "vigil.mount.flags": `["f_empty_path"]`}},
		{name: "umount", action: watch.ActionUncovered,
			e:    sensor.Event{Op: sensor.OpUmount, Match: sensor.MatchMount, Path: "/etc/passwd", Arg1: 2},
			want: map[string]string{"vigil.mount.change": "uncovered", "vigil.mount.flags": `["detach"]`, "vigil.mount.source": ""}},
		{name: "punch hole", action: watch.ActionModified,
			e:    sensor.Event{Op: sensor.OpWrite, Hook: sensor.HookVFSFallocate, Arg1: 4096, Arg2: 0x3},
			b:    []*sensor.Event{{Op: sensor.OpWrite, Hook: sensor.HookVFSWrite, Arg1: 10}, {Op: sensor.OpWrite, Hook: sensor.HookSysExit, Arg1: 8192, Arg2: 0x10}},
			want: map[string]string{"vigil.fallocate.mode": `["keep-size","punch-hole","zero-range"]`, "vigil.fallocate.length": "12288"}},
		{name: "plain writes", action: watch.ActionModified,
			e:    sensor.Event{Op: sensor.OpWrite, Hook: sensor.HookSysExit, Arg1: 10},
			want: map[string]string{"vigil.fallocate": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := newRecorder(&buf, "h", "", nil)
			e := tc.e
			e.Proc = proc
			f := &watch.File{Path: "/srv/x", Kind: "hash", Rule: tc.rule}
			b := &burst{change: watch.Change{File: f, Action: tc.action}, events: []*sensor.Event{&e}, last: &e, count: 1}
			b.addActor(&e)
			for _, o := range tc.b {
				b.events = append(b.events, o)
				b.count++
			}
			r.change(b.change, b, &tc.sn)
			var x map[string]any
			if err := json.Unmarshal(buf.Bytes(), &x); err != nil {
				t.Fatal(err)
			}
			get := func(p string) string {
				var v any = x
				for _, k := range strings.Split(p, ".") {
					m, ok := v.(map[string]any)
					if !ok {
						return ""
					}
					v = m[k]
				}
				switch v := v.(type) {
				case nil:
					return ""
				case string:
					return v
				default:
					b, _ := json.Marshal(v)
					return string(b)
				}
			}
			for k, want := range tc.want {
				if got := get(k); got != want {
					t.Errorf("%s = %q, want %q in %s", k, got, want, buf.String())
				}
			}
			if get("event.action") != string(tc.action) || get("process.pid") != "4321" || get("process.name") != "setfacl" {
				t.Errorf("action or actor missing: %s", buf.String())
			}
		})
	}
}

package sensor

import "testing"

// TestDecodeIssue14 decodes the records of the operations issue 14 added:
// with FlagStr2 Path2 is the string as the kernel gave it (never joined,
// never resolved), and a mount record's mountpoint is absolute or, in the
// tracepoint object's user form, joined with its base directory.
func TestDecodeIssue14(t *testing.T) {
	for _, tc := range []struct {
		name              string
		r                 rawEvent
		strs              []string
		path, path2, fsty string
		abs               bool
	}{
		{name: "setxattr by inode", r: rawEvent{Op: uint32(OpSetxattr), Match: uint32(MatchInode), Flags: FlagStr2},
			strs: []string{"shadow\x00", "system.posix_acl_access\x00"}, path: "shadow", path2: "system.posix_acl_access"},
		{name: "removexattr by path", r: rawEvent{Op: uint32(OpRemovexattr), Match: uint32(MatchPath), Flags: FlagStr2},
			strs: []string{"bin/tool\x00srv\x00", "security.capability\x00"}, path: "/srv/bin/tool",
			path2: "security.capability", abs: true},
		{name: "symlink target kept as given", r: rawEvent{Op: uint32(OpSymlink), Match: uint32(MatchAncestor), Flags: FlagStr2},
			strs: []string{"evil\x00", "../../etc/shadow\x00"}, path: "evil", path2: "../../etc/shadow"},
		{name: "symlink by path: only the link is resolved", r: rawEvent{Op: uint32(OpSymlink), Match: uint32(MatchPath), Flags: FlagStr2},
			strs: []string{"l\x00d\x00etc\x00", "a/../b\x00"}, path: "/etc/d/l", path2: "a/../b", abs: true},
		{name: "bind mount, kprobe", r: rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagPathAbs},
			strs: []string{"passwd\x00etc\x00", "/tmp/fake\x00\x00"}, path: "/etc/passwd", path2: "/tmp/fake", abs: true},
		{name: "overlay mount, tracepoint", r: rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagUserPath},
			strs: []string{"sudoers.d\x00etc\x00", "overlay\x00overlay\x00"}, path: "/etc/sudoers.d", path2: "overlay",
			fsty: "overlay", abs: true},
		{name: "relative mountpoint, tracepoint", r: rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagUserPath},
			strs: []string{"../passwd\x00sub\x00etc\x00", "none\x00tmpfs\x00"}, path: "/etc/passwd", path2: "none",
			fsty: "tmpfs", abs: true},
		{name: "umount, kprobe", r: rawEvent{Op: uint32(OpUmount), Match: uint32(MatchMount), Flags: FlagPathAbs},
			strs: []string{"passwd\x00etc\x00"}, path: "/etc/passwd", abs: true},
		{name: "source with no NUL before the end", r: rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagPathAbs},
			strs: []string{"x\x00", "/dev/sda1"}, path: "/x", path2: "/dev/sda1", abs: true},
		{name: "no STR2: path2 is a path", r: rawEvent{Op: uint32(OpRename), Match: uint32(MatchName)},
			strs: []string{"passwd\x00", "passwd+\x00etc\x00"}, path: "passwd", path2: "etc/passwd+"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Decode(record(t, tc.r, tc.strs...))
			if err != nil {
				t.Fatal(err)
			}
			if e.Path != tc.path || e.Path2 != tc.path2 || e.FSType != tc.fsty {
				t.Fatalf("path %q path2 %q fstype %q, want %q %q %q", e.Path, e.Path2, e.FSType, tc.path, tc.path2, tc.fsty)
			}
			if got := e.Flags&FlagPathAbs != 0; got != tc.abs {
				t.Fatalf("absolute %v, want %v", got, tc.abs)
			}
		})
	}
}

//go:build privileged

package sensor_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// grantDir is a directory on ext4 (the guests' scratch disk, the host's /tmp
// or the test's temporary directory): every operation below is one ext4
// allows.
func grantDir(t *testing.T) string {
	t.Helper()
	if os.Getenv("VIGIL_VM") != "" {
		d, err := os.MkdirTemp("/mnt/ext4", "grants-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return t.TempDir()
}

// aclBlob is a POSIX ACL as the system.posix_acl_access xattr holds it:
// owner rw, user uid rw, group r, mask rw, other r.
func aclBlob(uid uint32) []byte {
	type ent struct {
		tag, perm uint16
		id        uint32
	}
	ents := []ent{{0x01, 6, ^uint32(0)}, {0x02, 6, uid}, {0x04, 4, ^uint32(0)}, {0x10, 6, ^uint32(0)}, {0x20, 4, ^uint32(0)}}
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range ents {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return b
}

// TestGrantOperations: every way issue 14 lists to change what a file grants
// gives one record, from whichever object runs, with the operation's own
// fields (docs/events.md): xattrs and POSIX ACLs, inode flags, fallocate on
// a watched file; mkdir, rmdir, symlink and mknod in a watched tree; a bind
// mount over a watched file by mount(2) and by move_mount(2), and its
// unmount. The operations are the syscalls the tools make (setfacl, setcap,
// chattr, ...), so the test runs the same in a busybox guest.
func TestGrantOperations(t *testing.T) {
	needSensor(t)
	dir := grantDir(t)
	// Watched as the watch set does, by inode and by its name in its
	// directory: the tracepoint object filters path syscalls by the name.
	w := nmWatchPath(t, dir, "shadow", true)
	p, k := w.path, w.key
	tree := filepath.Join(dir, "sudoers.d")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	// Unwatched at the end: a stale entry would match a later test's file
	// that gets the same inode number.
	_, tid := nmWatchTree(t, tree)
	src := filepath.Join(dir, "fake")
	if err := os.WriteFile(src, []byte("root::0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	onFile := func(op sensor.Op) func(e *sensor.Event) bool {
		return func(e *sensor.Event) bool { return e.Op == op && e.File == k && e.Ret == 0 }
	}
	inTree := func(op sensor.Op, name string) func(e *sensor.Event) bool {
		return func(e *sensor.Event) bool { return e.Op == op && e.WatchID == tid && e.Path == name && e.Ret == 0 }
	}
	atPath := func(op sensor.Op, path string) func(e *sensor.Event) bool {
		return func(e *sensor.Event) bool { return e.Op == op && e.Path == path && e.Ret == 0 }
	}
	one := func(t *testing.T, do func() error, match func(*sensor.Event) bool) *sensor.Event {
		t.Helper()
		mark := coll.Mark()
		before, _ := sens.Counters()
		if err := do(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				// Which hook ran, matched and emitted: says where a record was lost.
				after, _ := sens.Counters()
				for h, n := range after.Hits {
					if d := n - before.Hits[h]; d > 0 {
						t.Logf("hook %s: %d runs, %d matched, %d emitted", h, d,
							after.Matched[h]-before.Matched[h], after.Emitted[h]-before.Emitted[h])
					}
				}
				for _, e := range coll.Since(mark, func(*sensor.Event) bool { return true }) {
					t.Logf("record: op %v hook %v match %v ret %d path %q path2 %q id %d", e.Op, e.Hook, e.Match, e.Ret, e.Path, e.Path2, e.WatchID)
				}
			}
		})
		e := coll.WaitN(t, mark, 1, match)[0]
		if e.Proc.PID != uint32(os.Getpid()) {
			t.Errorf("%v: pid %d, want %d (the actor)", e.Op, e.Proc.PID, os.Getpid())
		}
		return e
	}
	str2 := func(t *testing.T, e *sensor.Event, want string) {
		t.Helper()
		if e.Flags&sensor.FlagStr2 == 0 || e.Path2 != want {
			t.Errorf("%v: path2 %q (flags %#x), want the string %q", e.Op, e.Path2, e.Flags, want)
		}
	}

	t.Run("setxattr", func(t *testing.T) {
		e := one(t, func() error { return unix.Setxattr(p, "user.vigil", []byte("v"), 0) }, onFile(sensor.OpSetxattr))
		str2(t, e, "user.vigil")
	})
	t.Run("removexattr", func(t *testing.T) {
		e := one(t, func() error { return unix.Removexattr(p, "user.vigil") }, onFile(sensor.OpRemovexattr))
		str2(t, e, "user.vigil")
	})
	t.Run("acl", func(t *testing.T) {
		e := one(t, func() error { return unix.Setxattr(p, "system.posix_acl_access", aclBlob(65534), 0) },
			onFile(sensor.OpSetxattr))
		str2(t, e, "system.posix_acl_access")
	})
	t.Run("acl removed", func(t *testing.T) {
		e := one(t, func() error { return unix.Removexattr(p, "system.posix_acl_access") }, onFile(sensor.OpRemovexattr))
		str2(t, e, "system.posix_acl_access")
	})
	t.Run("inode flags", func(t *testing.T) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const nodump = 0x40 // FS_NODUMP_FL: harmless, and tmpfs has it too
		old, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
		if err != nil {
			t.Fatalf("FS_IOC_GETFLAGS: %v", err)
		}
		e := one(t, func() error { return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, old|nodump) },
			onFile(sensor.OpSetflags))
		if e.Flags&sensor.FlagFlags == 0 || e.Arg1 != uint64(uint32(old|nodump)) {
			t.Errorf("setflags: arg1 %#x flags %#x, want %#x with FlagFlags", e.Arg1, e.Flags, old|nodump)
		}
		unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, old)
	})
	t.Run("fallocate punch hole", func(t *testing.T) {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
		e := one(t, func() error { return unix.Fallocate(int(f.Fd()), mode, 0, 8) }, onFile(sensor.OpWrite))
		if e.Arg2 != mode || e.Arg1 != 8 {
			t.Errorf("fallocate: arg1 %d arg2 %#x, want length 8 and mode %#x", e.Arg1, e.Arg2, mode)
		}
	})
	t.Run("mkdir", func(t *testing.T) {
		e := one(t, func() error { return unix.Mkdir(filepath.Join(tree, "d"), 0o750) }, inTree(sensor.OpMkdir, "d"))
		if e.Mode&0o777 != 0o750&^uint32(umask()) {
			t.Errorf("mkdir: mode %#o, want permissions %#o", e.Mode, 0o750&^umask())
		}
	})
	t.Run("rmdir", func(t *testing.T) {
		one(t, func() error { return unix.Rmdir(filepath.Join(tree, "d")) }, inTree(sensor.OpRmdir, "d"))
	})
	t.Run("symlink", func(t *testing.T) {
		e := one(t, func() error { return unix.Symlink("/etc/shadow", filepath.Join(tree, "l")) }, inTree(sensor.OpSymlink, "l"))
		str2(t, e, "/etc/shadow")
	})
	t.Run("mknod fifo", func(t *testing.T) {
		e := one(t, func() error { return unix.Mknod(filepath.Join(tree, "p"), unix.S_IFIFO|0o600, 0) }, inTree(sensor.OpMknod, "p"))
		if e.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Errorf("mknod: mode %#o, want a FIFO", e.Mode)
		}
	})
	t.Run("mknod char device", func(t *testing.T) {
		e := one(t, func() error {
			return unix.Mknod(filepath.Join(tree, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		}, inTree(sensor.OpMknod, "null"))
		if e.Mode&unix.S_IFMT != unix.S_IFCHR || e.Arg1 != 1<<20|3 {
			t.Errorf("mknod: mode %#o device %#x, want a character device 1:3 (%#x)", e.Mode, e.Arg1, 1<<20|3)
		}
	})
	t.Run("bind mount and unmount", func(t *testing.T) {
		t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
		e := one(t, func() error { return unix.Mount(src, p, "", unix.MS_BIND, "") }, atPath(sensor.OpMount, p))
		if e.Match != sensor.MatchMount || e.Flags&sensor.FlagMoveMount != 0 {
			t.Errorf("mount: match %v flags %#x, want a mount(2) record", e.Match, e.Flags)
		}
		str2(t, e, src)
		if e.Arg1&unix.MS_BIND == 0 {
			t.Errorf("mount: flags %#x, want MS_BIND", e.Arg1)
		}
		e = one(t, func() error { return unix.Unmount(p, 0) }, atPath(sensor.OpUmount, p))
		if e.Match != sensor.MatchMount {
			t.Errorf("umount: match %v, want mount", e.Match)
		}
	})
	t.Run("move_mount", func(t *testing.T) {
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			t.Fatalf("open_tree: %v", err)
		}
		open := true
		t.Cleanup(func() {
			if open {
				unix.Close(fd)
			}
			unix.Unmount(p, unix.MNT_DETACH)
		})
		e := one(t, func() error {
			return unix.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH)
		}, atPath(sensor.OpMount, p))
		unix.Close(fd) // it holds the mount: umount would be EBUSY
		open = false
		if e.Match != sensor.MatchMount || e.Flags&sensor.FlagMoveMount == 0 {
			t.Errorf("move_mount: match %v flags %#x, want a move_mount(2) record", e.Match, e.Flags)
		}
		one(t, func() error { return unix.Unmount(p, 0) }, atPath(sensor.OpUmount, p))
	})
}

func umask() int {
	m := unix.Umask(0)
	unix.Umask(m)
	return m
}

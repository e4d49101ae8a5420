package agent

import (
	"sort"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/scan"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// opFields adds what issue 14's operations tell beyond the file's new
// state (docs/events.md): vigil.xattr (the attribute the kernel reported
// set or removed: its name only, never its value), vigil.inode_flags (the
// flags a chattr asked for), vigil.device (a device node's type and
// numbers), vigil.mount (a mount or umount over the watched path) and
// vigil.fallocate (a content change by fallocate, with its mode).
func opFields(v *zerolog.Event, b *burst, e *sensor.Event, sn *seen) {
	switch e.Op {
	case sensor.OpSetxattr, sensor.OpRemovexattr:
		op := "set"
		if e.Op == sensor.OpRemovexattr {
			op = "remove"
		}
		d := zerolog.Dict().Str("name", e.Path2).Str("operation", op)
		if e.Op == sensor.OpSetxattr {
			var fl []string
			if e.Arg1&unix.XATTR_CREATE != 0 {
				fl = append(fl, "create")
			}
			if e.Arg1&unix.XATTR_REPLACE != 0 {
				fl = append(fl, "replace")
			}
			d.Strs("flags", nonNilStrs(fl))
		}
		v.Dict("xattr", d)
	case sensor.OpSetflags:
		d := zerolog.Dict()
		if e.Flags&sensor.FlagFlags != 0 {
			d.Strs("requested", attrs.FlagNames(uint32(e.Arg1)))
		}
		if e.Flags&sensor.FlagXflags != 0 {
			d.Strs("requested_xflags", xflagNames(uint32(e.Arg2)))
		}
		v.Dict("inode_flags", d)
	case sensor.OpMount, sensor.OpUmount:
		v.Dict("mount", mountDict(e))
	}
	if d := deviceDict(e, sn); d != nil {
		v.Dict("device", d)
	}
	if l := sn.link; l != nil {
		// As the baseline comparison's vigil.symlink has it.
		d := zerolog.Dict()
		if l.oldLink {
			d.Str("old_target", l.old)
		}
		if l.isNew {
			d.Str("new_target", l.new)
		}
		v.Dict("symlink", d)
	}
	if modes, length := fallocated(b); modes != nil {
		v.Dict("fallocate", zerolog.Dict().Strs("mode", modes).Uint64("length", length))
	}
}

func nonNilStrs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// deviceDict is vigil.device for a device node: its type (as file.type)
// and its major and minor numbers, as it is now, or (gone already) as mknod made it.
func deviceDict(e *sensor.Event, sn *seen) *zerolog.Event {
	var mode uint32
	var major, minor uint32
	switch {
	case sn != nil && sn.st != nil:
		mode = sn.st.Mode
		major, minor = unix.Major(sn.st.Rdev), unix.Minor(sn.st.Rdev)
	case e != nil && e.Op == sensor.OpMknod:
		mode = e.Mode
		major, minor = uint32(e.Arg1>>20), uint32(e.Arg1&0xfffff)
	default:
		return nil
	}
	typ := fileType(mode)
	if typ != scan.TypeCharDevice && typ != scan.TypeBlockDevice {
		return nil
	}
	return zerolog.Dict().Str("type", typ).Uint32("major", major).Uint32("minor", minor)
}

// mountDict is vigil.mount: the mountpoint, the mount's source and
// filesystem type, the flags, and what it means for the watched path.
func mountDict(e *sensor.Event) *zerolog.Event {
	d := zerolog.Dict().Str("mountpoint", e.Path)
	switch {
	case e.Op == sensor.OpUmount:
		d.Str("operation", "umount").Str("change", "uncovered").Strs("flags", umountFlagNames(e.Arg1))
	case e.Flags&sensor.FlagMoveMount != 0:
		d.Str("operation", "move_mount").Str("change", "shadowed").Strs("flags", moveMountFlagNames(e.Arg1))
	default:
		d.Str("operation", "mount").Str("change", "shadowed").Strs("flags", mountFlagNames(e.Arg1))
	}
	// The mount made, or (umount, where the object knows it) the one that
	// went.
	if e.Path2 != "" {
		d.Str("source", e.Path2)
	}
	if e.FSType != "" {
		d.Str("fstype", e.FSType)
	}
	return d
}

type bitName struct {
	bit  uint64
	name string
}

func bitNames(v uint64, names []bitName) []string {
	out := []string{}
	for _, n := range names {
		if v&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

var mountFlags = []bitName{
	{unix.MS_RDONLY, "rdonly"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NODEV, "nodev"},
	{unix.MS_NOEXEC, "noexec"}, {unix.MS_SYNCHRONOUS, "sync"}, {unix.MS_REMOUNT, "remount"},
	{unix.MS_MANDLOCK, "mandlock"}, {unix.MS_DIRSYNC, "dirsync"}, {unix.MS_NOATIME, "noatime"},
	{unix.MS_NODIRATIME, "nodiratime"}, {unix.MS_BIND, "bind"}, {unix.MS_MOVE, "move"},
	{unix.MS_REC, "rec"}, {unix.MS_UNBINDABLE, "unbindable"}, {unix.MS_PRIVATE, "private"},
	{unix.MS_SLAVE, "slave"}, {unix.MS_SHARED, "shared"}, {unix.MS_RELATIME, "relatime"},
	{unix.MS_STRICTATIME, "strictatime"}, {unix.MS_LAZYTIME, "lazytime"},
}

func mountFlagNames(f uint64) []string {
	if f&0xffff0000 == unix.MS_MGC_VAL {
		f &^= 0xffff0000 // the old magic in the top half
	}
	return bitNames(f, mountFlags)
}

func moveMountFlagNames(f uint64) []string {
	return bitNames(f, []bitName{
		{unix.MOVE_MOUNT_F_SYMLINKS, "f_symlinks"}, {unix.MOVE_MOUNT_F_AUTOMOUNTS, "f_automounts"},
		{unix.MOVE_MOUNT_F_EMPTY_PATH, "f_empty_path"}, {unix.MOVE_MOUNT_T_SYMLINKS, "t_symlinks"},
		{unix.MOVE_MOUNT_T_AUTOMOUNTS, "t_automounts"}, {unix.MOVE_MOUNT_T_EMPTY_PATH, "t_empty_path"},
		{0x100, "set_group"}, {0x200, "beneath"},
	})
}

func umountFlagNames(f uint64) []string {
	return bitNames(f, []bitName{{unix.MNT_FORCE, "force"}, {unix.MNT_DETACH, "detach"},
		{unix.MNT_EXPIRE, "expire"}, {unix.UMOUNT_NOFOLLOW, "nofollow"}})
}

// xflagNames names FS_XFLAG_* bits (struct fsxattr.fsx_xflags).
func xflagNames(f uint32) []string {
	return bitNames(uint64(f), []bitName{
		{0x1, "realtime"}, {0x2, "prealloc"}, {0x8, "immutable"}, {0x10, "append-only"}, {0x20, "sync"},
		{0x40, "noatime"}, {0x80, "nodump"}, {0x100, "rtinherit"}, {0x200, "projinherit"},
		{0x400, "nosymlinks"}, {0x800, "extsize"}, {0x1000, "extszinherit"}, {0x2000, "nodefrag"},
		{0x4000, "filestream"}, {0x8000, "dax"}, {0x10000, "cowextsize"},
	})
}

// FALLOC_FL_* (linux/falloc.h).
var fallocFlags = []bitName{
	{unix.FALLOC_FL_KEEP_SIZE, "keep-size"}, {unix.FALLOC_FL_PUNCH_HOLE, "punch-hole"},
	{unix.FALLOC_FL_NO_HIDE_STALE, "no-hide-stale"}, {unix.FALLOC_FL_COLLAPSE_RANGE, "collapse-range"},
	{unix.FALLOC_FL_ZERO_RANGE, "zero-range"}, {unix.FALLOC_FL_INSERT_RANGE, "insert-range"},
	{unix.FALLOC_FL_UNSHARE_RANGE, "unshare-range"}, {0x80, "write-zeroes"},
}

// isFallocate tells a write made by fallocate: the kprobe objects' own
// hook, or the tracepoint object's write record with a fallocate mode (a
// plain write's record has none; a mode-0 fallocate, which only allocates,
// reads like a write there).
func isFallocate(e *sensor.Event) bool {
	if e.Op != sensor.OpWrite {
		return false
	}
	return e.Hook == sensor.HookVFSFallocate || (e.Hook == sensor.HookSysExit && e.Arg2 != 0)
}

// fallocated sums a burst's fallocate calls: the modes used ("allocate"
// for mode 0) and the total length; nil when none.
func fallocated(b *burst) ([]string, uint64) {
	if b == nil {
		return nil, 0
	}
	seen := map[string]bool{}
	var length uint64
	any := false
	for _, e := range b.events {
		if !isFallocate(e) {
			continue
		}
		any = true
		length += e.Arg1
		names := bitNames(e.Arg2, fallocFlags)
		if len(names) == 0 {
			names = []string{"allocate"}
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	if !any {
		return nil, 0
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, length
}

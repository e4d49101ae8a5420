package sensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Key names an inode: the kernel's device number (major<<20 | minor, as in
// struct super_block.s_dev) and the inode number.
type Key struct {
	Dev uint64
	Ino uint64
}

func (k Key) String() string {
	return fmt.Sprintf("%d:%d:%d", k.Dev>>20, k.Dev&0xfffff, k.Ino)
}

// KernelDev converts a user-space st_dev to the kernel's s_dev encoding.
func KernelDev(stDev uint64) uint64 {
	return uint64(unix.Major(stDev))<<20 | uint64(unix.Minor(stDev))
}

// KeyOf stats a path (without following a final symlink when nofollow is
// set) and returns its inode key.
func KeyOf(path string, nofollow bool) (Key, *unix.Stat_t, error) {
	var st unix.Stat_t
	var err error
	if nofollow {
		err = unix.Lstat(path, &st)
	} else {
		err = unix.Stat(path, &st)
	}
	if err != nil {
		return Key{}, nil, err
	}
	return Key{Dev: KernelDev(st.Dev), Ino: st.Ino}, &st, nil
}

// Op is what happened to a file (enum vg_op).
type Op uint32

// The operations, as bpf/vigil.h numbers them.
const (
	OpWrite    Op = 1
	OpTruncate Op = 2
	OpMmap     Op = 3
	OpCreate   Op = 4
	OpRename   Op = 5
	OpUnlink   Op = 6
	OpLink     Op = 7
	OpSetattr  Op = 8
	OpMkdir    Op = 9
	OpRmdir    Op = 10
)

var opNames = map[Op]string{
	OpWrite: "write", OpTruncate: "truncate", OpMmap: "mmap", OpCreate: "create",
	OpRename: "rename", OpUnlink: "unlink", OpLink: "link", OpSetattr: "setattr",
	OpMkdir: "mkdir", OpRmdir: "rmdir",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("op(%d)", uint32(o))
}

// Match is how a record's file matched the watch set (enum vg_match).
type Match uint32

// The match kinds.
const (
	MatchInode    Match = 1
	MatchName     Match = 2
	MatchAncestor Match = 3
	MatchPath     Match = 4
)

func (m Match) String() string {
	switch m {
	case MatchInode:
		return "inode"
	case MatchName:
		return "name"
	case MatchAncestor:
		return "ancestor"
	case MatchPath:
		return "path"
	}
	return fmt.Sprintf("match(%d)", uint32(m))
}

// Hook is the kernel hook that emitted a record (enum vg_hook).
type Hook uint32

// HookNames lists the hooks by their enum value.
var HookNames = []string{
	"vfs_write", "vfs_writev", "vfs_iter_write", "copy_file_range", "io_write",
	"notify_change", "vfs_rename", "vfs_unlink", "vfs_link", "file_open", "mmap",
	"vfs_rmdir", "vfs_mkdir", "sys_enter", "sys_exit", "splice_write",
}

func (h Hook) String() string {
	if int(h) < len(HookNames) {
		return HookNames[h]
	}
	return fmt.Sprintf("hook(%d)", uint32(h))
}

// Record flags (VG_F_*).
const (
	FlagPathTrunc = 1 << 0
	FlagExeTrunc  = 1 << 1
	FlagExchange  = 1 << 2
	FlagReseeded  = 1 << 3
	FlagPathAbs   = 1 << 4
	FlagGone      = 1 << 5
)

// Record types (enum vg_type).
const typeFile = 1

// rawHeader mirrors struct vg_hdr.
type rawHeader struct {
	Type uint16
	Size uint16
	CPU  uint32
	TS   uint64
}

// rawEvent mirrors struct vg_event; TestLayout checks it against each
// object's BTF.
type rawEvent struct {
	Hdr       rawHeader
	Op        uint32
	Hook      uint32
	Match     uint32
	Flags     uint32
	WatchID   uint64
	File      Key
	File2     Key
	Dir       Key
	Dir2      Key
	Ret       int64
	Arg1      uint64
	Arg2      uint64
	Mode      uint32
	AttrUID   uint32
	AttrGID   uint32
	Pad1      uint32
	PID       uint32
	TID       uint32
	PPID      uint32
	UID       uint32
	GID       uint32
	EUID      uint32
	EGID      uint32
	AUID      uint32
	SessionID uint32
	MntNS     uint32
	Cgroup    uint64
	Comm      [16]byte
	PathLen   uint16
	Path2Len  uint16
	ExeLen    uint16
	Pad       uint16
}

const rawEventSize = int(unsafe.Sizeof(rawEvent{}))

// Event is one kernel record, decoded.
type Event struct {
	// BootNS is the kernel's boot-time clock at the hook, in nanoseconds.
	BootNS uint64
	CPU    uint32
	Op     Op
	Hook   Hook
	Match  Match
	Flags  uint32
	// WatchID is the id of the watch entry that matched.
	WatchID uint64
	// File is the inode acted on (rename: the target's inode before).
	File Key
	// File2 is, for a rename, the inode that now stands at the target.
	File2 Key
	// Dir anchors Path; Dir2 anchors Path2.
	Dir, Dir2 Key
	Ret       int64
	Arg1      uint64
	Arg2      uint64
	// Mode is, for setattr, the new mode; for create, the new file's mode.
	Mode uint32
	// AttrUID and AttrGID are, for setattr, the new owner.
	AttrUID, AttrGID uint32
	Proc             Process
	// Path is relative to Dir ("passwd", "a/b/file"), absolute when
	// FlagPathAbs is set. Path2 is, for a rename, the source.
	Path, Path2 string
}

// Process is who did it, read in the kernel when the hook ran.
type Process struct {
	PID, TID, PPID       uint32
	UID, GID, EUID, EGID uint32
	// AUID is the login uid; 4294967295 when unset.
	AUID      uint32
	SessionID uint32
	MntNS     uint32
	CgroupID  uint64
	Comm      string
	Exe       string
}

// ErrShort is returned for a record shorter than its header says.
var ErrShort = errors.New("short record")

// Decode parses one ring buffer record.
func Decode(b []byte) (*Event, error) {
	if len(b) < int(unsafe.Sizeof(rawHeader{})) {
		return nil, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	typ := binary.LittleEndian.Uint16(b[0:2])
	if typ != typeFile {
		return nil, fmt.Errorf("unknown record type %d", typ)
	}
	if len(b) < rawEventSize {
		return nil, fmt.Errorf("%w: file record of %d bytes, want at least %d", ErrShort, len(b), rawEventSize)
	}
	var r rawEvent
	if _, err := binary.Decode(b[:rawEventSize], binary.LittleEndian, &r); err != nil {
		return nil, fmt.Errorf("decoding file record: %w", err)
	}
	size := int(r.Hdr.Size)
	if size < rawEventSize || size > len(b) {
		return nil, fmt.Errorf("%w: header says %d bytes, have %d", ErrShort, size, len(b))
	}
	data := b[rawEventSize:size]
	take := func(n uint16) ([]byte, error) {
		if int(n) > len(data) {
			return nil, fmt.Errorf("%w: string of %d bytes, %d left", ErrShort, n, len(data))
		}
		s := data[:n]
		data = data[n:]
		return s, nil
	}
	p1, err := take(r.PathLen)
	if err != nil {
		return nil, err
	}
	p2, err := take(r.Path2Len)
	if err != nil {
		return nil, err
	}
	exe, err := take(r.ExeLen)
	if err != nil {
		return nil, err
	}
	e := &Event{
		BootNS: r.Hdr.TS, CPU: r.Hdr.CPU,
		Op: Op(r.Op), Hook: Hook(r.Hook), Match: Match(r.Match), Flags: r.Flags,
		WatchID: r.WatchID, File: r.File, File2: r.File2, Dir: r.Dir, Dir2: r.Dir2,
		Ret: r.Ret, Arg1: r.Arg1, Arg2: r.Arg2,
		Mode: r.Mode, AttrUID: r.AttrUID, AttrGID: r.AttrGID,
		Proc: Process{
			PID: r.PID, TID: r.TID, PPID: r.PPID, UID: r.UID, GID: r.GID,
			EUID: r.EUID, EGID: r.EGID, AUID: r.AUID, SessionID: r.SessionID,
			MntNS: r.MntNS, CgroupID: r.Cgroup,
			Comm: cstring(r.Comm[:]),
		},
	}
	if e.Match == MatchPath {
		// Tracepoint object: each path is the string the process gave, then
		// the absolute path of the directory it was relative to.
		e.Path = userPath(p1)
		e.Path2 = userPath(p2)
		e.Flags |= FlagPathAbs
	} else {
		e.Path = joinLeafFirst(p1, r.Flags&FlagPathAbs != 0)
		e.Path2 = joinLeafFirst(p2, false)
	}
	if len(exe) > 0 {
		e.Proc.Exe = joinLeafFirst(exe, true)
	}
	return e, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// joinLeafFirst turns the kernel's leaf-first, NUL-terminated components
// into a path.
func joinLeafFirst(b []byte, abs bool) string {
	if len(b) == 0 {
		return ""
	}
	parts := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	p := strings.Join(parts, "/")
	if abs {
		return "/" + p
	}
	return p
}

// userPath joins a path as a process gave it with the absolute path of the
// directory it was relative to (for an absolute path, the process's root).
func userPath(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	user, base, _ := bytes.Cut(b, []byte{0})
	abs := joinLeafFirst(base, true)
	if len(base) == 0 {
		abs = "/"
	}
	// For an absolute path the base is the process's root (a chroot's
	// directory, or "/"), so joining gives the global path either way.
	return path.Join(abs, string(user))
}

// HashName is the name hash the kernel computes (FNV-1a 64).
func HashName(name string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 0x100000001b3
	}
	return h
}

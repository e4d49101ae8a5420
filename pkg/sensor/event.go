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

	"github.com/vigil-fim/vigil/pkg/pkgmgr"
)

// The record layout, the map key and value types, the operations, match
// kinds, hooks and flags are generated from bpf/vigil.h: contract_gen.go.

// String writes a Key (struct vg_key: an inode named by the kernel's device
// number, major<<20 | minor as in struct super_block.s_dev, and its inode
// number) as major:minor:inode.
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

// rawEventSize is the fixed part of a file record; its strings follow.
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
	// FlagPathAbs is set. Path2 is, for a rename, the source; with FlagStr2
	// it is a string, not a path: an xattr's name, a symlink's target, a
	// mount's source.
	Path, Path2 string
	// FSType is, for a mount (FlagStr2), path2's second string: the mounted
	// file system's type, where known.
	FSType string
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
	// Package is the package manager the actor runs below, read in the
	// kernel (the lineage map); zero when none.
	Package Package
}

// Package is an actor's package-manager lineage.
type Package struct {
	// Manager is the manager's name (pkgmgr.Managers); "" when the actor
	// is below none.
	Manager string
	// MgrID is the manager's id in the kernel (pkg_comms).
	MgrID uint8
	// RootPID is the tgid of the manager process at the root of the tree.
	RootPID uint32
	// Script is set when the actor is below the root (a maintainer script
	// or a helper), not the manager itself.
	Script bool
}

// Marked reports whether the actor runs below a package manager.
func (p Package) Marked() bool { return p.RootPID != 0 }

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
	if e.Match == MatchPath || r.Flags&FlagUserPath != 0 {
		// Tracepoint object: each path is the string the process gave, then
		// the absolute path of the directory it was relative to.
		e.Path = userPath(p1)
		e.Path2 = userPath(p2)
		e.Flags |= FlagPathAbs
	} else {
		e.Path = joinLeafFirst(p1, r.Flags&FlagPathAbs != 0)
		e.Path2 = joinLeafFirst(p2, false)
	}
	if r.Flags&FlagStr2 != 0 {
		// Strings, not a path: the first, then (a mount's) the second.
		first, rest, _ := bytes.Cut(p2, []byte{0})
		e.Path2 = string(first)
		e.FSType = cstring(rest)
	}
	if len(exe) > 0 {
		e.Proc.Exe = joinLeafFirst(exe, true)
	}
	if r.PkgRoot != 0 {
		e.Proc.Package = Package{MgrID: r.PkgMgr, RootPID: r.PkgRoot, Script: r.PkgFlags&pkgScript != 0}
		if m, ok := pkgmgr.ByID(r.PkgMgr); ok {
			e.Proc.Package.Manager = m.Name
		} else {
			e.Proc.Package.Manager = fmt.Sprintf("unknown(%d)", r.PkgMgr)
		}
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

// rawCgroupSize is a cgroup record's fixed part; the cgroup's path follows.
const rawCgroupSize = int(unsafe.Sizeof(rawCgroup{}))

// Cgroup is a cgroup the kernel created on the default (v2) hierarchy
// (tp_btf/cgroup_mkdir): a VG_T_CGROUP record, decoded.
type Cgroup struct {
	// BootNS is the kernel's boot-time clock at the creation.
	BootNS uint64
	// ID is the cgroup's id: what a file record's Proc.CgroupID holds for a
	// process in it, and the inode number of its cgroupfs directory.
	ID    uint64
	Level uint32
	// Path is relative to the hierarchy's root and starts with "/".
	Path string
}

// ErrNotCgroup is returned by DecodeCgroup for a record of another type.
var ErrNotCgroup = errors.New("not a cgroup record")

// DecodeCgroup parses one VG_T_CGROUP ring buffer record.
func DecodeCgroup(b []byte) (*Cgroup, error) {
	if len(b) < int(unsafe.Sizeof(rawHeader{})) {
		return nil, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if typ := binary.LittleEndian.Uint16(b[0:2]); typ != typeCgroup {
		return nil, fmt.Errorf("%w: type %d", ErrNotCgroup, typ)
	}
	if len(b) < rawCgroupSize {
		return nil, fmt.Errorf("%w: cgroup record of %d bytes, want at least %d", ErrShort, len(b), rawCgroupSize)
	}
	var r rawCgroup
	if _, err := binary.Decode(b[:rawCgroupSize], binary.LittleEndian, &r); err != nil {
		return nil, fmt.Errorf("decoding cgroup record: %w", err)
	}
	size := int(r.Hdr.Size)
	if size < rawCgroupSize || size > len(b) {
		return nil, fmt.Errorf("%w: header says %d bytes, have %d", ErrShort, size, len(b))
	}
	data := b[rawCgroupSize:size]
	if int(r.PathLen) > len(data) {
		return nil, fmt.Errorf("%w: path of %d bytes, %d left", ErrShort, r.PathLen, len(data))
	}
	return &Cgroup{BootNS: r.Hdr.TS, ID: r.ID, Level: r.Level, Path: cstring(data[:r.PathLen])}, nil
}

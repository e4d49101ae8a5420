package sensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"testing"
)

// record builds a raw record the way the kernel lays it out.
func record(t testing.TB, r rawEvent, strs ...string) []byte {
	t.Helper()
	var data []byte
	lens := []*uint16{&r.PathLen, &r.Path2Len, &r.ExeLen}
	for i, s := range strs {
		*lens[i] = uint16(len(s))
		data = append(data, s...)
	}
	r.Hdr.Type = typeFile
	r.Hdr.Size = uint16(rawEventSize + len(data))
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, r); err != nil {
		t.Fatal(err)
	}
	buf.Write(data)
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	r := rawEvent{Op: uint32(OpRename), Hook: 6, Match: uint32(MatchName), Flags: FlagReseeded,
		WatchID: 7, File: Key{Dev: 8 << 20, Ino: 12}, File2: Key{Dev: 8 << 20, Ino: 99},
		PID: 100, TID: 101, PPID: 1, UID: 1000, EUID: 0, AUID: 1000, Cgroup: 4242,
		Mode: 0o100600, AttrUID: 5, AttrGID: 6}
	copy(r.Comm[:], "useradd")
	b := record(t, r, "passwd\x00", "passwd+\x00", "useradd\x00sbin\x00usr\x00")
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Op != OpRename || e.Match != MatchName || e.WatchID != 7 || e.File2.Ino != 99 {
		t.Errorf("decoded %+v", e)
	}
	if e.Path != "passwd" || e.Path2 != "passwd+" || e.Proc.Exe != "/usr/sbin/useradd" {
		t.Errorf("paths %q %q exe %q", e.Path, e.Path2, e.Proc.Exe)
	}
	if e.Proc.Comm != "useradd" || e.Proc.PID != 100 || e.Proc.AUID != 1000 || e.Proc.CgroupID != 4242 {
		t.Errorf("process %+v", e.Proc)
	}
	if e.Mode != 0o100600 || e.AttrUID != 5 || e.AttrGID != 6 {
		t.Errorf("attrs %o %d %d", e.Mode, e.AttrUID, e.AttrGID)
	}
	if got := e.File.String(); got != "8:0:12" {
		t.Errorf("key string %q", got)
	}
}

func TestDecodeNestedPath(t *testing.T) {
	b := record(t, rawEvent{Op: uint32(OpCreate)}, "f\x00d\x00c\x00b\x00a\x00")
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != "a/b/c/d/f" {
		t.Errorf("path %q", e.Path)
	}
}

func TestDecodeRejectsBadRecords(t *testing.T) {
	good := record(t, rawEvent{Op: uint32(OpWrite)}, "passwd\x00")
	cases := map[string][]byte{
		"empty":        nil,
		"header only":  good[:16],
		"short fixed":  good[:rawEventSize-1],
		"size too big": func() []byte { b := bytes.Clone(good); binary.LittleEndian.PutUint16(b[2:], 4000); return b }(),
		"size too small": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint16(b[2:], 20)
			return b
		}(),
		"string past end": func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint16(b[rawEventSize-8:], 300)
			return b
		}(),
		"unknown type": func() []byte { b := bytes.Clone(good); b[0] = 99; return b }(),
	}
	for name, b := range cases {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else if name != "unknown type" && !errors.Is(err, ErrShort) {
			t.Errorf("%s: %v is not ErrShort", name, err)
		}
	}
}

func TestHashNameIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "passwd", "authorized_keys", "a\xffb"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := HashName(s), h.Sum64(); got != want {
			t.Errorf("HashName(%q) = %x, want %x", s, got, want)
		}
	}
}

func TestKernelDev(t *testing.T) {
	// st_dev 0x801 is 8:1 (sda1); the kernel encodes it as 8<<20 | 1.
	if got := KernelDev(0x801); got != 8<<20|1 {
		t.Errorf("KernelDev(0x801) = %#x", got)
	}
}

// TestDecodeStr2AndUserPath: a plain-string path2 (VG_F_STR2) is never
// joined or resolved, and a mount record's mountpoint in the tracepoint
// object's user form (VG_F_USER_PATH) is joined with its base directory.
func TestDecodeStr2AndUserPath(t *testing.T) {
	b := record(t, rawEvent{Op: uint32(OpSetxattr), Match: uint32(MatchInode), Flags: FlagStr2},
		"passwd\x00", "security.capability\x00")
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Path != "passwd" || e.Path2 != "security.capability" {
		t.Errorf("setxattr: path %q path2 %q", e.Path, e.Path2)
	}
	b = record(t, rawEvent{Op: uint32(OpSymlink), Match: uint32(MatchPath), Flags: FlagStr2},
		"l\x00b\x00a\x00", "../x/y\x00")
	if e, err = Decode(b); err != nil {
		t.Fatal(err)
	}
	if e.Path != "/a/b/l" || e.Path2 != "../x/y" {
		t.Errorf("symlink: path %q path2 %q", e.Path, e.Path2)
	}
	b = record(t, rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagUserPath},
		"mnt\x00tmp\x00", "/tmp/src\x00\x00")
	if e, err = Decode(b); err != nil {
		t.Fatal(err)
	}
	if e.Path != "/tmp/mnt" || e.Path2 != "/tmp/src" || e.FSType != "" {
		t.Errorf("bind mount: path %q path2 %q type %q", e.Path, e.Path2, e.FSType)
	}
	b = record(t, rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagUserPath},
		"/etc\x00", "overlay\x00overlay\x00")
	if e, err = Decode(b); err != nil {
		t.Fatal(err)
	}
	if e.Path != "/etc" || e.Path2 != "overlay" || e.FSType != "overlay" {
		t.Errorf("overlay mount: path %q path2 %q type %q", e.Path, e.Path2, e.FSType)
	}
}

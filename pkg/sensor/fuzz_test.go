package sensor

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
)

// canary is appended after a record's declared size: no decoded field may
// ever contain it, and its presence must change nothing.
const canary = "\xffCANARY-PAST-THE-RECORD\xff"

// FuzzDecode feeds arbitrary ring buffer records to Decode. Properties: no
// panic; a record is either decoded or refused with an error; the bytes past
// the header's size are never read (the result is the same with a canary
// appended, and no string holds it); strings are never longer than the
// lengths the record declares.
func FuzzDecode(f *testing.F) {
	r := rawEvent{Op: uint32(OpRename), Hook: 6, Match: uint32(MatchName), WatchID: 7,
		File: Key{Dev: 8 << 20, Ino: 12}, File2: Key{Dev: 8 << 20, Ino: 99}, PID: 100, AUID: ^uint32(0)}
	copy(r.Comm[:], "useradd")
	f.Add(record(f, r, "passwd\x00", "passwd+\x00", "useradd\x00sbin\x00usr\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpCreate), Flags: FlagPathAbs}, "f\x00d\x00c\x00b\x00a\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpWrite), Match: uint32(MatchPath)}, "../x\x00etc\x00", "", "sh\x00bin\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpUnlink), Match: uint32(MatchPath)}, "/etc/shadow\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpWrite)}, "new\nline\x00\"q\"\x00\xff\xfe\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpSetxattr), Match: uint32(MatchInode), Flags: FlagStr2}, "shadow\x00", "security.capability\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpSymlink), Match: uint32(MatchPath), Flags: FlagStr2}, "l\x00d\x00", "../../etc/shadow\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagPathAbs}, "passwd\x00etc\x00", "/tmp/fake\x00\x00"))
	f.Add(record(f, rawEvent{Op: uint32(OpMount), Match: uint32(MatchMount), Flags: FlagStr2 | FlagUserPath}, "x\x00etc\x00", "overlay\x00overlay\x00"))
	f.Add([]byte{})
	f.Add(make([]byte, rawEventSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if e != nil {
				t.Fatalf("an error and an event: %v, %+v", err, e)
			}
			return
		}
		if e == nil {
			t.Fatal("no error and no event")
		}
		size := int(binary.LittleEndian.Uint16(b[2:4]))
		if size < rawEventSize || size > len(b) {
			t.Fatalf("decoded a record whose header says %d bytes of %d", size, len(b))
		}
		withCanary := append(bytes.Clone(b[:size]), canary...)
		e2, err := Decode(withCanary)
		if err != nil {
			t.Fatalf("the same record with bytes after it: %v", err)
		}
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("bytes past the record changed the result:\n%+v\n%+v", e, e2)
		}
		for _, s := range []string{e.Path, e.Path2, e.Proc.Exe, e.Proc.Comm} {
			if strings.Contains(s, "CANARY-PAST") && !bytes.Contains(b[:size], []byte("CANARY-PAST")) {
				t.Fatalf("a string holds bytes from past the record: %q", s)
			}
		}
		var lens struct{ p1, p2, exe uint16 }
		off := rawEventSize - 8
		lens.p1 = binary.LittleEndian.Uint16(b[off:])
		lens.p2 = binary.LittleEndian.Uint16(b[off+2:])
		lens.exe = binary.LittleEndian.Uint16(b[off+4:])
		if int(lens.p1)+int(lens.p2)+int(lens.exe) > size-rawEventSize {
			t.Fatalf("decoded strings of %d+%d+%d bytes from %d", lens.p1, lens.p2, lens.exe, size-rawEventSize)
		}
		// A path is its bytes with NULs turned into separators, plus a
		// leading root and, for a process's path, one joining separator.
		if len(e.Path2)+len(e.FSType) > int(lens.p2)+2 {
			t.Fatalf("source and type longer than the record declares: %q %q", e.Path2, e.FSType)
		}
		if len(e.Path) > int(lens.p1)+2 || len(e.Path2) > int(lens.p2)+2 || len(e.Proc.Exe) > int(lens.exe)+1 || len(e.Proc.Comm) > 16 {
			t.Fatalf("strings longer than the record declares: %q %q %q %q", e.Path, e.Path2, e.Proc.Exe, e.Proc.Comm)
		}
	})
}

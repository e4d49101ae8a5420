package sensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func cgroupRecord(t *testing.T, id uint64, level uint32, path string, extra int) []byte {
	t.Helper()
	r := rawCgroup{ID: id, Level: level, PathLen: uint16(len(path))}
	r.Hdr.Type = typeCgroup
	r.Hdr.TS = 42
	r.Hdr.Size = uint16(rawCgroupSize + len(path))
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, r); err != nil {
		t.Fatal(err)
	}
	b.WriteString(path)
	b.Write(bytes.Repeat([]byte{0xee}, extra)) // the ring buffer's slack past hdr.size
	return b.Bytes()
}

func TestDecodeCgroup(t *testing.T) {
	c, err := DecodeCgroup(cgroupRecord(t, 1234, 2, "/system.slice/docker-x.scope\x00", 900))
	if err != nil {
		t.Fatal(err)
	}
	if *c != (Cgroup{BootNS: 42, ID: 1234, Level: 2, Path: "/system.slice/docker-x.scope"}) {
		t.Fatalf("decoded %+v", c)
	}
	// Refused: another type, a short record, a path past the size.
	if _, err := DecodeCgroup(make([]byte, rawEventSize)); !errors.Is(err, ErrNotCgroup) {
		t.Errorf("a zero record: %v", err)
	}
	if _, err := DecodeCgroup(cgroupRecord(t, 1, 1, "/a\x00", 0)[:rawCgroupSize-1]); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
	b := cgroupRecord(t, 1, 1, "/a\x00", 0)
	binary.LittleEndian.PutUint16(b[rawCgroupSize-4:], 200) // path_len past the record
	if _, err := DecodeCgroup(b); !errors.Is(err, ErrShort) {
		t.Errorf("path past the record: %v", err)
	}
	// A file record's decoder refuses a cgroup record.
	if _, err := Decode(cgroupRecord(t, 1, 1, "/a\x00", 0)); err == nil {
		t.Error("Decode took a cgroup record")
	}
}

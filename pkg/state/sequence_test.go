package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSequenceSurvivesRestartAndCrash(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSequence(dir)
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		if v, err := s.Next(); v != want || err != nil {
			t.Fatalf("Next = %d, %v; want %d", v, err, want)
		}
	}
	if _, err := OpenSequence(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second OpenSequence = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSequence(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Next(); v != 4 {
		t.Errorf("after a clean stop Next = %d, want 4", v)
	}
	for i := 0; i < sequenceBlock+10; i++ {
		s.Next()
	}
	last, _ := s.Next()
	// A crash: the file is not written at the end, only the lock goes.
	s.f.Close()
	s, err = OpenSequence(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, _ := s.Next()
	if v <= last || v > last+sequenceBlock {
		t.Errorf("after a crash Next = %d, want in (%d, %d]", v, last, last+sequenceBlock)
	}
	if st, err := os.Stat(filepath.Join(dir, SequenceFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("sequence file mode %v %v", st.Mode(), err)
	}
}

func TestHostID(t *testing.T) {
	dir := t.TempDir()
	mid := filepath.Join(dir, "machine-id")
	os.WriteFile(mid, []byte("3d1219c7c4c5404aaa1f6d2a48adfda4\n"), 0o644)
	if id, src, err := HostID(dir, "", mid); id != "3d1219c7c4c5404aaa1f6d2a48adfda4" || src != mid || err != nil {
		t.Errorf("machine-id: %q %q %v", id, src, err)
	}
	gen, src, err := HostID(dir, "", filepath.Join(dir, "missing"))
	if err != nil || len(gen) != 32 || src != filepath.Join(dir, HostIDFile) {
		t.Fatalf("generated: %q %q %v", gen, src, err)
	}
	if again, _, _ := HostID(dir, "generated", mid); again != gen {
		t.Errorf("generated id changed: %q then %q", gen, again)
	}
	if st, _ := os.Stat(filepath.Join(dir, HostIDFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("host.id mode %v", st.Mode())
	}
	if id, src, _ := HostID(dir, "web-01.example", mid); id != "web-01.example" || src != "config" {
		t.Errorf("configured: %q %q", id, src)
	}
}

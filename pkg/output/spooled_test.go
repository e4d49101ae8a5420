package output

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fakeTransport delivers while up; down, it writes the first record of a
// batch to a dead connection (sent, not delivered).
type fakeTransport struct {
	mu   sync.Mutex
	up   bool
	got  []string
	lost int // batches refused
}

func (f *fakeTransport) Send(recs [][]byte) (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		f.lost++
		return 0, 1, errors.New("connection reset")
	}
	for _, r := range recs {
		f.got = append(f.got, string(r))
	}
	return len(recs), len(recs), nil
}
func (f *fakeTransport) Close() error { return nil }
func (f *fakeTransport) Name() string { return "fake" }
func (f *fakeTransport) set(up bool) {
	f.mu.Lock()
	f.up = up
	f.mu.Unlock()
}
func (f *fakeTransport) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSpooledDeliversInOrderOnlyOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spool", "fake.db")
	tr := &fakeTransport{}
	s, err := NewSpooled(tr, SpoolOptions{Path: path, MaxBytes: 1 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(i int) string { return fmt.Sprintf(`{"event":{"sequence":%d}}`, i) }
	for i := 1; i <= 100; i++ {
		s.Write([]byte(rec(i) + "\n"))
	}
	waitFor(t, "100 records spooled while down", func() bool { return s.Stats().Depth == 100 })
	waitFor(t, "a failed attempt", func() bool { return s.Stats().Retried > 0 })
	if st := s.Stats(); st.Delivered != 0 || st.Connected {
		t.Fatalf("delivered while down: %+v", st)
	}
	// Stopped with a backlog, started again: the backlog is still there.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tr = &fakeTransport{up: true}
	s, err = NewSpooled(tr, SpoolOptions{Path: path, MaxBytes: 1 << 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 101; i <= 200; i++ {
		s.Write([]byte(rec(i) + "\n"))
	}
	waitFor(t, "all delivered", func() bool { return len(tr.received()) == 200 })
	got := tr.received()
	for i, r := range got {
		if r != rec(i+1) {
			t.Fatalf("record %d delivered as %s, want %s", i, r, rec(i+1))
		}
	}
	waitFor(t, "the spool emptied", func() bool { return s.Stats().Depth == 0 })
	st := s.Stats()
	if st.Delivered != 200 || st.Dropped != 0 || !st.Connected {
		t.Errorf("stats: %+v", st)
	}
	s.Close()
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

func TestSpooledFullDropsOldestWithSequences(t *testing.T) {
	tr := &fakeTransport{}
	s, err := NewSpooled(tr, SpoolOptions{Path: filepath.Join(t.TempDir(), "s.db"), MaxBytes: 300, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 50; i++ {
		s.Write([]byte(fmt.Sprintf(`{"event":{"sequence":%d}}`, i))) // 25..26 bytes
	}
	waitFor(t, "50 taken", func() bool { st := s.Stats(); return uint64(st.Depth)+st.Dropped == 50 })
	st := s.Stats()
	if st.Depth == 0 || st.FirstDropped != 1 || st.LastDropped != uint64(50-st.Depth) || st.DroppedBy["size"] != st.Dropped {
		t.Fatalf("full spool: %+v", st)
	}
	tr.set(true)
	waitFor(t, "the kept records delivered", func() bool { return len(tr.received()) == st.Depth })
	if first := tr.received()[0]; first != fmt.Sprintf(`{"event":{"sequence":%d}}`, st.LastDropped+1) {
		t.Errorf("first delivered %s, after dropping up to %d", first, st.LastDropped)
	}
}

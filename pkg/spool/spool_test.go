package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func recs(from, n int) [][]byte {
	var out [][]byte
	for i := from; i < from+n; i++ {
		out = append(out, []byte(fmt.Sprintf(`{"n":%04d}`, i))) // 10 bytes each
	}
	return out
}

func TestOrderAckReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s", "relp.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.Append(recs(0, 5), now); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(recs(5, 5), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	items, err := s.Peek(3, 1<<20)
	if err != nil || len(items) != 3 {
		t.Fatalf("Peek = %d items, %v", len(items), err)
	}
	for i, it := range items {
		if string(it.Data) != string(recs(i, 1)[0]) {
			t.Errorf("item %d = %s", i, it.Data)
		}
	}
	if err := s.Ack(items[1].ID); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Depth != 8 || st.Bytes != 80 || !st.Oldest.Equal(now) || st.Dropped != 0 {
		t.Errorf("stats after ack = %+v", st)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("spool file mode %v, %v: want 0600", fi.Mode(), err)
	}
	// A second opener waits for the lock and fails.
	if _, err := Open(path, Options{LockTimeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
	s.Close()
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, _ = s.Peek(100, 1<<20)
	if len(items) != 8 || string(items[0].Data) != `{"n":0002}` || string(items[7].Data) != `{"n":0009}` {
		t.Fatalf("after reopen: %d items, first %s", len(items), items[0].Data)
	}
	if st := s.Stats(); st.Depth != 8 || st.Bytes != 80 || !st.Oldest.Equal(now) {
		t.Errorf("stats after reopen = %+v", st)
	}
	// Ids keep growing after everything was acknowledged.
	s.Ack(items[7].ID)
	s.Append(recs(10, 1), now)
	items, _ = s.Peek(1, 1)
	if len(items) != 1 || items[0].ID <= 10 {
		t.Errorf("after emptying: %+v", items)
	}
}

func TestBoundsDropOldestAndCount(t *testing.T) {
	var got []string
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{MaxBytes: 50, MaxAge: time.Minute,
		OnDrop: func(d []byte, reason string) { got = append(got, reason+":"+string(d)) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Now()
	s.Append(recs(0, 5), t0.Add(-2*time.Minute)) // 50 bytes: full
	s.Append(recs(5, 2), t0)                     // drops 0 and 1
	want := []string{`size:{"n":0000}`, `size:{"n":0001}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dropped %v, want %v", got, want)
	}
	got = nil
	if err := s.Expire(t0); err != nil {
		t.Fatal(err)
	}
	want = []string{`age:{"n":0002}`, `age:{"n":0003}`, `age:{"n":0004}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("expired %v, want %v", got, want)
	}
	st := s.Stats()
	if st.Depth != 2 || st.Bytes != 20 || st.Dropped != 5 || st.DroppedBy[ReasonSize] != 2 || st.DroppedBy[ReasonAge] != 3 {
		t.Errorf("stats = %+v", st)
	}
	// A batch larger than the spool keeps its newest records.
	got = nil
	s.Append(recs(7, 7), t0)
	want = []string{`size:{"n":0005}`, `size:{"n":0006}`, `size:{"n":0007}`, `size:{"n":0008}`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("big batch dropped %v, want %v", got, want)
	}
	if items, _ := s.Peek(10, 1000); len(items) != 5 || string(items[0].Data) != `{"n":0009}` {
		t.Errorf("after a big batch: %d items", len(items))
	}
	if err := s.Append([][]byte{make([]byte, 51)}, t0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize append = %v", err)
	}
}

func TestRefusesOpenModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("a spool readable by others was opened")
	}
}

// BenchmarkAppendAck is what the agent does per batch of records: one
// append transaction, one acknowledging transaction (fdatasync each).
func BenchmarkAppendAck(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "s.db"), Options{MaxBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := make([]byte, 1200) // a typical change record
			batchRecs := make([][]byte, batch)
			for i := range batchRecs {
				batchRecs[i] = rec
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				if err := s.Append(batchRecs, time.Now()); err != nil {
					b.Fatal(err)
				}
				items, err := s.Peek(batch, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Ack(items[len(items)-1].ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package state

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/consumer"
)

// maxStoreBytes is the budget for a 100,000-file baseline.
const maxStoreBytes = 64 << 20

// realisticEntries builds n records as a scan of a /usr-like tree would:
// hash-kind states from the real consumer, paths of typical length.
func realisticEntries(t testing.TB, n int, version int) []Entry {
	hc, err := consumer.New(consumer.KindHash, consumer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dirs := []string{"/usr/lib/x86_64-linux-gnu", "/usr/share/doc", "/usr/lib/python3/dist-packages", "/usr/share/locale", "/usr/include"}
	es := make([]Entry, n)
	now := time.Now().UnixNano()
	for i := range es {
		p := fmt.Sprintf("%s/package-%04d/subdir/file-%03d.ext", dirs[i%len(dirs)], i/100, i%100)
		content := []byte(fmt.Sprintf("content of %s, version %d", p, version))
		info := &consumer.FileInfo{Size: int64(len(content)), Mode: 0o100644, MtimeNS: now - int64(i)*1e9, CtimeNS: now - int64(i)*1e9}
		st, _, err := hc.Parse(consumer.Input{Path: p, Content: content, Info: info})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(content)
		es[i] = Entry{Path: p, Kind: "hash", Dev: 2049, Ino: uint64(1000000 + i), Size: info.Size, Mode: info.Mode,
			MtimeNS: info.MtimeNS, CtimeNS: info.CtimeNS, SHA256: hex.EncodeToString(sum[:]), State: st, UpdatedNS: now}
	}
	return es
}

func putChunks(t testing.TB, s *Store, es []Entry, chunk int) {
	for i := 0; i < len(es); i += chunk {
		if err := s.PutMany(es[i:min(i+chunk, len(es))]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSize100k(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 100,000 records")
	}
	const n = 100_000
	p := filepath.Join(t.TempDir(), StoreFile)
	s := openT(t, p)
	es := realisticEntries(t, n, 1)
	var raw int
	for i := range es {
		b, _ := encode(&es[i])
		raw += len(es[i].Path) + len(b)
	}
	start := time.Now()
	putChunks(t, s, es, 10_000)
	took := time.Since(start)
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records (%.0f bytes each on average, %.1f MB of keys and values): store %.1f MB, written in %s (%.0f records/s)",
		n, float64(raw)/n, float64(raw)/1e6, float64(st.Size())/1e6, took.Round(time.Millisecond), n/took.Seconds())
	if st.Size() >= maxStoreBytes {
		t.Errorf("store is %d bytes for %d records, budget %d", st.Size(), n, maxStoreBytes)
	}
	// A second scan that finds a tenth of the files changed must reuse
	// the freed pages rather than grow the file much.
	changed := realisticEntries(t, n, 2)
	var tenth []Entry
	for i := 0; i < n; i += 10 {
		tenth = append(tenth, changed[i])
	}
	putChunks(t, s, tenth, 2_000)
	st2, _ := os.Stat(p)
	t.Logf("after rewriting %d records: %.1f MB", len(tenth), float64(st2.Size())/1e6)
	if st2.Size() >= maxStoreBytes {
		t.Errorf("store is %d bytes after an update, budget %d", st2.Size(), maxStoreBytes)
	}
	if got, _ := s.Len(); got != n {
		t.Errorf("Len = %d, want %d", got, n)
	}
	e, ok, err := s.Get(changed[50].Path)
	if err != nil || !ok || e.SHA256 != changed[50].SHA256 {
		t.Errorf("Get after update: %v %v %+v", ok, err, e)
	}
}

func BenchmarkPutMany(b *testing.B) {
	es := realisticEntries(b, 10_000, 1)
	s, err := Open(filepath.Join(b.TempDir(), StoreFile), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		putChunks(b, s, es, 5_000)
	}
	b.ReportMetric(float64(len(es)*b.N)/b.Elapsed().Seconds(), "records/s")
}

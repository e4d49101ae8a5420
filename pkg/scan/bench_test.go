package scan

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/state"
)

// makeTree writes n files, 100 to a directory, two levels deep, with
// sizes from 0 to 8 KiB (4 KiB on average), like a /usr tree of small files.
func makeTree(tb testing.TB, root string, n int) {
	tb.Helper()
	buf := make([]byte, 8192)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	for i := 0; i < n; i++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/10000), fmt.Sprintf("e%03d", i/100%100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				tb.Fatal(err)
			}
		}
		size := (i * 7919) % len(buf)
		copy(buf, fmt.Sprintf("file %d\n", i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.dat", i%100)), buf[:size], 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// scanTree baselines a tree in a new store, then scans it again read-only,
// and returns the two rates in files per second.
func scanTree(tb testing.TB, root string, n int) (baseline, rescan float64) {
	tb.Helper()
	s, err := state.Open(filepath.Join(tb.TempDir(), state.StoreFile), state.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	cons := testConsumers(tb)
	rules := []config.Watch{{Path: root, Recursive: true}}
	// Every entry is a target: the n files and the directories.
	entries := 0
	filepath.WalkDir(root, func(string, fs.DirEntry, error) error { entries++; return nil })
	if entries < n {
		tb.Fatalf("%d entries under %s, want at least %d", entries, root, n)
	}
	for i, want := range []bool{true, false} {
		start := time.Now()
		res, err := Run(context.Background(), rules, 16, s, cons, ScanOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		rate := float64(res.Files) / time.Since(start).Seconds()
		if res.Baseline != want || res.Files != entries || len(res.Findings) != 0 || len(res.Errors) != 0 {
			tb.Fatalf("scan %d: baseline=%v files=%d findings=%d errors=%v", i, res.Baseline, res.Files, len(res.Findings), res.Errors)
		}
		if i == 0 {
			baseline = rate
		} else {
			rescan = rate
		}
	}
	return baseline, rescan
}

func TestScanThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 5,000 files")
	}
	const n = 5000
	root := t.TempDir()
	makeTree(t, root, n)
	b, r := scanTree(t, root, n)
	t.Logf("%d files: baseline %.0f files/s, read-only rescan %.0f files/s", n, b, r)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tree100k != "" && os.Getenv("VIGIL_BENCH_TREE") == "" {
		os.RemoveAll(tree100k)
	}
	os.Exit(code)
}

var (
	tree100k     string
	tree100kOnce sync.Once
)

// BenchmarkScan100k baselines a 100,000-file tree (4 KiB on average) and
// rescans it. Compare with aide --init on the same tree (scripts may
// set VIGIL_BENCH_TREE to reuse a tree).
func BenchmarkScan100k(b *testing.B) {
	const n = 100_000
	tree100kOnce.Do(func() {
		if d := os.Getenv("VIGIL_BENCH_TREE"); d != "" {
			tree100k = d
			if _, err := os.Stat(filepath.Join(d, "d009", "e099", "f099.dat")); err == nil {
				return
			}
		} else {
			d, err := os.MkdirTemp("", "vigil-bench-")
			if err != nil {
				b.Fatal(err)
			}
			tree100k = d
		}
		makeTree(b, tree100k, n)
	})
	b.ResetTimer()
	var base, re float64
	for i := 0; i < b.N; i++ {
		x, y := scanTree(b, tree100k, n)
		base += x
		re += y
	}
	b.ReportMetric(base/float64(b.N), "baseline-files/s")
	b.ReportMetric(re/float64(b.N), "rescan-files/s")
}

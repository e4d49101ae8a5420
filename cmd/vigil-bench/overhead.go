package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Overhead is one tool's cost on one write-path workload: the ratio of its
// run time to the no-agent run of the same pair.
type Overhead struct {
	Tool     string `json:"tool"`
	Sensor   string `json:"sensor,omitempty"`
	Workload string `json:"workload"`
	Op       string `json:"op"`
	Ops      int    `json:"ops"`
	Ratio    Spread `json:"ratio"`
	// BaseNs is ns per operation without any agent, over every pair.
	BaseNs Spread `json:"base_ns"`
	ToolNs Spread `json:"tool_ns"`
}

// A loop is run in slices of sliceOps operations (at least minSlices).
const (
	sliceOps  = 2000
	minSlices = 10
)

// measureOverhead runs every loop on an unwatched file under each tool,
// in pairs with no agent, alternating which runs first (A B, B A, ...) so
// that drift of the shared machine cancels. Each tool is started once per
// pair and runs all the loops.
func measureOverhead(file string, tools []tool, loops []loop, pairs int, logf func(string, ...any)) ([]Overhead, error) {
	type key struct{ tool, loop int }
	base := map[key][]float64{}
	with := map[key][]float64{}
	sensors := map[int]string{}
	runAll := func(t tool) ([]float64, error) {
		if err := t.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name(), err)
		}
		ns := make([]float64, len(loops))
		for i, l := range loops {
			// The loop in slices of sliceOps operations; the 10th
			// percentile of the slices counts: other work on the shared
			// machine only ever adds time, and preempts a long slice.
			n := max(l.N/sliceOps, minSlices)
			per := l.N / n
			xs := make([]float64, n)
			for c := range xs {
				d, err := l.run(file, per)
				if err != nil {
					t.Stop()
					return nil, err
				}
				xs[c] = float64(d.Nanoseconds()) / float64(per)
			}
			sort.Float64s(xs)
			ns[i] = xs[n/10]
		}
		if err := t.Stop(); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name(), err)
		}
		return ns, nil
	}
	// Warm the page cache and the binaries once.
	for _, l := range loops {
		if _, err := l.run(file, l.N/10+1); err != nil {
			return nil, err
		}
	}
	for p := 0; p < pairs; p++ {
		for ti, t := range tools {
			order := []tool{noAgent{}, t}
			if p%2 == 1 {
				order = []tool{t, noAgent{}}
			}
			var got [2][]float64
			for _, o := range order {
				ns, err := runAll(o)
				if err != nil {
					return nil, err
				}
				if _, ok := o.(noAgent); ok {
					got[0] = ns
				} else {
					got[1] = ns
				}
			}
			if v, ok := t.(*vigilAgent); ok {
				sensors[ti] = v.Sensor
			}
			for li := range loops {
				base[key{ti, li}] = append(base[key{ti, li}], got[0][li])
				with[key{ti, li}] = append(with[key{ti, li}], got[1][li])
			}
			logf("overhead pair %d/%d %s: %s", p+1, pairs, t.Name(), fmtRatios(got[0], got[1]))
		}
	}
	var out []Overhead
	for ti, t := range tools {
		for li, l := range loops {
			b, w := base[key{ti, li}], with[key{ti, li}]
			r := make([]float64, len(b))
			for i := range b {
				r[i] = w[i] / b[i]
			}
			out = append(out, Overhead{Tool: t.Name(), Sensor: sensors[ti], Workload: l.Name, Op: l.Op, Ops: l.N,
				Ratio: spread(r), BaseNs: spread(b), ToolNs: spread(w)})
		}
	}
	return out, nil
}

func fmtRatios(b, w []float64) string {
	s := ""
	for i := range b {
		s += fmt.Sprintf(" %.3f", w[i]/b[i])
	}
	return s
}

// overheadDirs makes the scratch layout of the overhead run: an unwatched
// file on tmpfs, and two watched paths (a passwd-format file and a tree).
func overheadDirs(root, unwatchedDir string) (file string, watched []string, err error) {
	w := filepath.Join(root, "watched")
	if err := os.MkdirAll(filepath.Join(w, "tree"), 0o755); err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(w, "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(unwatchedDir, 0o755); err != nil {
		return "", nil, err
	}
	return filepath.Join(unwatchedDir, "unwatched.dat"), []string{filepath.Join(w, "passwd"), filepath.Join(w, "tree")}, nil
}

package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// ScanResult is one tool building a baseline of the same tree.
type ScanResult struct {
	Tool    string `json:"tool"`
	Command string `json:"command"`
	Files   int    `json:"files"`
	Seconds Spread `json:"seconds"`
	CPU     Spread `json:"cpu_seconds"`
	Note    string `json:"note,omitempty"`
}

// makeTree writes n files, 100 to a directory, two levels deep, with sizes
// from 0 to 8 KiB (4 KiB on average), like a /usr tree of small files. An
// existing complete tree is kept.
func makeTree(root string, n int) error {
	done := filepath.Join(root, fmt.Sprintf(".complete-%d", n))
	if _, err := os.Stat(done); err == nil {
		return nil
	}
	os.RemoveAll(root)
	buf := make([]byte, 8192)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	for i := 0; i < n; i++ {
		dir := filepath.Join(root, "t", fmt.Sprintf("d%03d", i/10000), fmt.Sprintf("e%03d", i/100%100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		size := (i * 7919) % len(buf)
		copy(buf, fmt.Sprintf("file %d\n", i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.dat", i%100)), buf[:size], 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(done, nil, 0o644)
}

// timed runs a command and returns its wall and CPU (user+system) time.
func timed(cmd *exec.Cmd) (wall, cpu time.Duration, out []byte, err error) {
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return wall, cpu, b.Bytes(), err
}

// measureScan builds a baseline of the tree with `vigil scan` and with
// `aide --init` (sha256 only, as many workers as vigil uses), alternating
// vigil, aide, vigil, aide... after one warm-up of each.
func measureScan(root, treeDir, bin string, n, runs int, logf func(string, ...any)) ([]ScanResult, error) {
	if err := makeTree(treeDir, n); err != nil {
		return nil, fmt.Errorf("making the tree: %w", err)
	}
	tree := filepath.Join(treeDir, "t")
	// vigil's baseline keeps every entry of a tree, its directories too
	// (issue 14): it must record each of them.
	entries := 0
	if err := filepath.WalkDir(tree, func(string, fs.DirEntry, error) error { entries++; return nil }); err != nil {
		return nil, fmt.Errorf("counting the tree: %w", err)
	}
	work := filepath.Join(root, "scan")
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	vcfg := filepath.Join(work, "vigil.toml")
	if err := os.WriteFile(vcfg, []byte(fmt.Sprintf("[agent]\nstate_dir = %q\n\n[[watch]]\npath = %q\nrecursive = true\nkind = \"hash\"\n", filepath.Join(work, "state"), tree)), 0o600); err != nil {
		return nil, err
	}
	workers := runtime.NumCPU()
	acfg := filepath.Join(work, "aide.conf")
	adb := filepath.Join(work, "aide.db.new")
	if err := os.WriteFile(acfg, []byte(fmt.Sprintf("database_out=file:%s\ngzip_dbout=no\nnum_workers=%d\nreport_url=stdout\n%s sha256\n", adb, workers, tree)), 0o600); err != nil {
		return nil, err
	}
	vigilRun := func() (time.Duration, time.Duration, error) {
		st := filepath.Join(work, "scan.db")
		os.Remove(st)
		w, c, out, err := timed(exec.Command(bin, "scan", "-config", vcfg, "-state", st))
		if err != nil {
			return 0, 0, fmt.Errorf("vigil scan: %w: %s", err, lastLines(string(out), 5))
		}
		if !strings.Contains(string(out), fmt.Sprintf("baseline recorded: %d files", entries)) {
			return 0, 0, fmt.Errorf("vigil scan did not record the tree's %d entries (%d files and their directories): %s",
				entries, n, lastLines(string(out), 5))
		}
		return w, c, nil
	}
	aideRun := func() (time.Duration, time.Duration, error) {
		os.Remove(adb)
		w, c, out, err := timed(exec.Command("aide", "--init", "-c", acfg))
		if err != nil {
			return 0, 0, fmt.Errorf("aide --init: %w: %s", err, lastLines(string(out), 8))
		}
		// AIDE counts the directories and the tree root as entries too.
		// Its warm-up check: the database it wrote holds every file of
		// the tree (AIDE's own count, which adds the directories).
		entries := -1
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Number of entries:"); ok {
				fmt.Sscan(strings.TrimSpace(v), &entries)
			}
		}
		if entries < 0 {
			return 0, 0, fmt.Errorf("aide --init: no \"Number of entries:\" in its output: %s", lastLines(string(out), 8))
		}
		if entries < n {
			return 0, 0, fmt.Errorf("aide --init recorded %d entries for a tree of %d files (expected at least the files; its output: %s)", entries, n, lastLines(string(out), 8))
		}
		return w, c, nil
	}
	var vw, vc, aw, ac []float64
	// warm-up: the page cache holds the tree for both from here on
	if _, _, err := vigilRun(); err != nil {
		return nil, err
	}
	if _, _, err := aideRun(); err != nil {
		return nil, err
	}
	for i := 0; i < runs; i++ {
		w, c, err := vigilRun()
		if err != nil {
			return nil, err
		}
		vw, vc = append(vw, w.Seconds()), append(vc, c.Seconds())
		w2, c2, err := aideRun()
		if err != nil {
			return nil, err
		}
		aw, ac = append(aw, w2.Seconds()), append(ac, c2.Seconds())
		logf("scan run %d/%d: vigil %.2fs (cpu %.2fs), aide %.2fs (cpu %.2fs)", i+1, runs, w.Seconds(), c.Seconds(), w2.Seconds(), c2.Seconds())
	}
	return []ScanResult{
		{Tool: "vigil", Command: "vigil scan (new store, kind hash: sha256 + stat)", Files: n, Seconds: spread(vw), CPU: spread(vc),
			Note: fmt.Sprintf("%d workers (NumCPU)", workers)},
		{Tool: "aide", Command: "aide --init (sha256 only)", Files: n, Seconds: spread(aw), CPU: spread(ac),
			Note: fmt.Sprintf("num_workers=%d, uncompressed database", workers)},
	}, nil
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// A loop is one write-path workload on a file nobody watches.
type loop struct {
	Name string `json:"name"`
	// What one operation is, for the tables.
	Op string `json:"op"`
	N  int    `json:"n"`
	// run does N operations on path and returns the elapsed time.
	run func(path string, n int) (time.Duration, error)
}

func writeLoops(n4k, n1, nopen int) []loop {
	return []loop{
		{Name: "write-4k", Op: "pwrite(2) of 4 KiB", N: n4k, run: func(p string, n int) (time.Duration, error) { return writeLoop(p, 4096, n) }},
		{Name: "write-1b", Op: "pwrite(2) of 1 byte", N: n1, run: func(p string, n int) (time.Duration, error) { return writeLoop(p, 1, n) }},
		{Name: "open-close", Op: "open(O_WRONLY) + close", N: nopen, run: openLoop},
	}
}

// writeLoop writes size bytes n times, cycling over the first 1 MiB of the
// file so that it stays in the page cache and does not grow.
func writeLoop(path string, size, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	slots := int64((1 << 20) / size)
	if slots > 4096 {
		slots = 4096
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := unix.Pwrite(fd, buf, (int64(i)%slots)*int64(size)); err != nil {
			return 0, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return time.Since(start), nil
}

// openLoop opens an existing file for writing and closes it n times.
func openLoop(path string, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := os.WriteFile(path, []byte("x\n"), 0o600); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("opening %s: %w", path, err)
		}
		unix.Close(fd)
	}
	return time.Since(start), nil
}

// makeFiles creates n empty files named f0000000.. in dir and returns the
// time it took.
func makeFiles(dir string, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("f%07d", i)), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return 0, fmt.Errorf("creating file %d: %w", i, err)
		}
		unix.Close(fd)
	}
	return time.Since(start), nil
}

// removeFiles unlinks the n files makeFiles made.
func removeFiles(dir string, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := unix.Unlink(filepath.Join(dir, fmt.Sprintf("f%07d", i))); err != nil {
			return 0, fmt.Errorf("deleting file %d: %w", i, err)
		}
	}
	return time.Since(start), nil
}

// rewriteFile rewrites path n times in place: open for writing, one write
// of the whole (same-length, different) content, close. One modification
// per rewrite, so the truth is n for every tool (O_TRUNC would add a
// second one, the truncation, that vigil reports as its own write).
func rewriteFile(path string, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := time.Now()
	buf := make([]byte, 0, 64)
	for i := 0; i < n; i++ {
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, fmt.Errorf("rewrite %d: %w", i, err)
		}
		buf = fmt.Appendf(buf[:0], "rewrite %09d\n", i)
		_, err = unix.Write(fd, buf)
		unix.Close(fd)
		if err != nil {
			return 0, fmt.Errorf("rewrite %d: %w", i, err)
		}
	}
	return time.Since(start), nil
}

// replacePasswd atomically replaces path with a passwd-format file that
// has extra user lines (i differs on every call, so the content does), the
// way passwd tools do: write a temporary file beside it, rename it over.
func replacePasswd(path string, i int) error {
	tmp := path + ".bench-tmp"
	content := fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nbench%d:x:%d:%d::/home/bench:/bin/sh\n", i%2, 2000+i, 2000+i)
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

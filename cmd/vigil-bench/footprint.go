package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Footprint is vigil's memory and CPU in one state.
type Footprint struct {
	State         string  `json:"state"`
	Seconds       float64 `json:"seconds"`
	ChangesPerSec float64 `json:"changes_per_s"` // creates and deletes made
	RecordsPerSec float64 `json:"records_per_s"` // records vigil wrote meanwhile
	CPUPercent    float64 `json:"cpu_percent"`   // of one CPU
	RSSMB         float64 `json:"rss_mb"`        // largest sampled VmRSS
	PeakMB        float64 `json:"peak_mb"`       // VmHWM at the end
	// MapsMB is the part of RSS in BPF map mappings at the end (the ring
	// buffer's pages, mapped twice so that a record can wrap): kernel
	// memory of sensor.ring_buffer_kib, counted twice by VmRSS.
	MapsMB float64 `json:"maps_mb"`
}

// procMapsMB is the resident size of a process's BPF map mappings (the
// ring buffer) in MB, from /proc/PID/smaps.
func procMapsMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0
	}
	var kb float64
	inMap := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			inMap = len(f) >= 6 && f[5] == "anon_inode:bpf-map"
			continue
		}
		if inMap && len(f) >= 2 && f[0] == "Rss:" {
			v, _ := strconv.ParseFloat(f[1], 64)
			kb += v
		}
	}
	return kb / 1024
}

// procCPU is a process's user+system time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// fields after the name start at field 3 (state): utime is 14, stime 15
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	hz := uint64(100) // USER_HZ on Linux
	return time.Duration((ut + st) * uint64(time.Second) / hz), nil
}

// procMem returns VmRSS and VmHWM in MB.
func procMem(pid int) (rss, hwm float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// measureFootprint runs vigil watching a directory (and the embedded
// default's kind of files: a passwd-format file), idle for d, then while
// files are created and deleted there at rate records per second for d.
func measureFootprint(root, bin string, rate int, d time.Duration, logf func(string, ...any)) ([]Footprint, error) {
	dir := filepath.Join(root, "footprint")
	os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	passwd := filepath.Join(dir, "passwd")
	if err := replacePasswd(passwd, 0); err != nil {
		return nil, err
	}
	v := &vigilAgent{label: "vigil", bin: bin, dir: filepath.Join(root, "agent-footprint"),
		watches: []watchSpec{{Path: passwd}, {Path: filepath.Join(dir, "tree"), Recursive: true}}}
	if err := v.Start(); err != nil {
		return nil, err
	}
	defer v.Stop()
	pid := v.Pid()
	var ops int
	sample := func(state string, load func(stop <-chan struct{})) (Footprint, error) {
		ops = 0
		f := Footprint{State: state}
		n0 := len(v.Records())
		c0, err := procCPU(pid)
		if err != nil {
			return f, err
		}
		t0 := time.Now()
		stop := make(chan struct{})
		loadDone := make(chan struct{})
		go func() {
			defer close(loadDone)
			if load != nil {
				load(stop)
			}
		}()
		for time.Since(t0) < d {
			time.Sleep(100 * time.Millisecond)
			if rss, _ := procMem(pid); rss > f.RSSMB {
				f.RSSMB = rss
			}
		}
		close(stop)
		<-loadDone
		el := time.Since(t0)
		c1, err := procCPU(pid)
		if err != nil {
			return f, err
		}
		_, f.PeakMB = procMem(pid)
		f.MapsMB = procMapsMB(pid)
		f.Seconds = el.Seconds()
		f.CPUPercent = 100 * c1.Seconds() / el.Seconds()
		f.CPUPercent -= 100 * c0.Seconds() / el.Seconds()
		f.RecordsPerSec = float64(len(v.Records())-n0) / el.Seconds()
		f.ChangesPerSec = float64(ops) / el.Seconds()
		return f, nil
	}
	time.Sleep(2 * time.Second) // let the start-up settle
	idle, err := sample("idle", nil)
	if err != nil {
		return nil, err
	}
	logf("footprint idle: cpu %.2f%% rss %.1f MB", idle.CPUPercent, idle.RSSMB)
	var loadErr error
	tree := filepath.Join(dir, "tree")
	busy, err := sample(fmt.Sprintf("%d changes/s", rate), func(stop <-chan struct{}) {
		// Paced by the clock (catching up after a late tick): rate/2 files
		// a second are created, and each is deleted 50 ms after it was
		// (a file made and unlinked at once is mostly gone before vigil
		// reads it, and then not reported).
		perSec := float64(rate) / 2
		lagN := int(perSec * 0.05)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		name := func(k int) string { return filepath.Join(tree, fmt.Sprintf("f%d", k)) }
		t0 := time.Now()
		for k := 0; ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for target := int(perSec * time.Since(t0).Seconds()); k < target; k++ {
				fd, err := unix.Open(name(k), unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
				if err != nil {
					loadErr = err
					return
				}
				unix.Close(fd)
				ops++
				if k >= lagN {
					if err := unix.Unlink(name(k - lagN)); err != nil {
						loadErr = err
						return
					}
					ops++
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if loadErr != nil {
		return nil, loadErr
	}
	acts := map[string]int{}
	for _, r := range v.Records() {
		acts[r.Event.Action+"/"+r.Vigil.Origin]++
	}
	logf("footprint records by action/origin so far: %v", acts)
	logf("footprint %s: %.0f changes/s made, %.0f records/s written, cpu %.1f%% rss %.1f MB peak %.1f MB", busy.State, busy.ChangesPerSec, busy.RecordsPerSec, busy.CPUPercent, busy.RSSMB, busy.PeakMB)
	return []Footprint{idle, busy}, nil
}

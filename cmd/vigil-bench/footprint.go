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
	RecordsPerSec float64 `json:"records_per_s"`
	CPUPercent    float64 `json:"cpu_percent"` // of one CPU
	RSSMB         float64 `json:"rss_mb"`      // largest sampled VmRSS
	PeakMB        float64 `json:"peak_mb"`     // VmHWM at the end
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
	sample := func(state string, load func(stop <-chan struct{})) (Footprint, error) {
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
		f.Seconds = el.Seconds()
		f.CPUPercent = 100 * c1.Seconds() / el.Seconds()
		f.CPUPercent -= 100 * c0.Seconds() / el.Seconds()
		f.RecordsPerSec = float64(len(v.Records())-n0) / el.Seconds()
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
	busy, err := sample(fmt.Sprintf("%d records/s", rate), func(stop <-chan struct{}) {
		// every 10 ms: rate/200 files created, then deleted (2 records each)
		per := max(rate/200, 1)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for j := 0; j < per; j++ {
				p := filepath.Join(tree, fmt.Sprintf("f%d-%d", i%2, j))
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
				if err != nil {
					loadErr = err
					return
				}
				unix.Close(fd)
				if err := unix.Unlink(p); err != nil {
					loadErr = err
					return
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
	logf("footprint %s: achieved %.0f records/s, cpu %.1f%% rss %.1f MB peak %.1f MB", busy.State, busy.RecordsPerSec, busy.CPUPercent, busy.RSSMB, busy.PeakMB)
	return []Footprint{idle, busy}, nil
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Latency is the time from the return of rename() (an atomic replace of a
// watched passwd-format file) to the tool's record.
type Latency struct {
	Tool    string  `json:"tool"`
	N       int     `json:"n"`
	Seen    int     `json:"seen"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
	Where   string  `json:"where"`
	Sensor  string  `json:"sensor,omitempty"`
	Timeout float64 `json:"timeout_s"`
}

const latencyTimeout = 2 * time.Second

func summarise(l *Latency, ds []time.Duration) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	l.Seen = len(ds)
	l.P50, l.P90, l.P99 = ms(percentile(ds, 50)), ms(percentile(ds, 90)), ms(percentile(ds, 99))
	if len(ds) > 0 {
		l.Max = ms(ds[len(ds)-1])
	}
	l.Timeout = latencyTimeout.Seconds()
}

// latencyFile makes a fresh scratch directory under root holding the
// passwd file a latency run replaces, and returns its path and a cleanup.
func latencyFile(root, name string) (string, func(), error) {
	dir := filepath.Join(root, name)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	file := filepath.Join(dir, "passwd")
	if err := replacePasswd(file, 0); err != nil {
		cleanup()
		return "", nil, err
	}
	return file, cleanup, nil
}

// vigilLatency runs vigil with the shipped defaults (coalesce.window 200ms)
// watching one passwd file and times each replace to its `replaced`
// record on vigil's stdout.
func vigilLatency(root, bin string, n int) (Latency, error) {
	l := Latency{Tool: "vigil", N: n, Where: "record read from vigil's stdout (a pipe)"}
	file, cleanup, err := latencyFile(root, "latency-vigil")
	if err != nil {
		return l, err
	}
	defer cleanup()
	got := make(chan time.Time, 16)
	v := &vigilAgent{label: "vigil", bin: bin, dir: filepath.Join(root, "agent-latency"),
		watches: []watchSpec{{Path: file}},
		onRec: func(r *vigilRec) {
			if r.Event.Action == "replaced" && r.File.Path == file {
				got <- r.At
			}
		}}
	if err := v.Start(); err != nil {
		return l, err
	}
	l.Sensor = v.Sensor
	var ds []time.Duration
	for i := 1; i <= n; i++ {
		for len(got) > 0 {
			<-got
		}
		if err := replacePasswd(file, i); err != nil {
			v.Stop()
			return l, err
		}
		t0 := time.Now()
		select {
		case t1 := <-got:
			ds = append(ds, max(t1.Sub(t0), 0))
		case <-time.After(latencyTimeout):
		}
	}
	if err := v.Stop(); err != nil {
		return l, err
	}
	summarise(&l, ds)
	return l, nil
}

// auditdLatency times each replace to its event in audit.log.
func auditdLatency(root string, n int) (Latency, error) {
	l := Latency{Tool: "auditd", N: n, Where: "SYSCALL line read from audit.log (polled every 100µs)"}
	file, cleanup, err := latencyFile(root, "latency-auditd")
	if err != nil {
		return l, err
	}
	defer cleanup()
	agentDir := filepath.Join(root, "agent-auditd-latency")
	os.MkdirAll(agentDir, 0o700)
	a := &auditdAgent{dir: agentDir, backlog: 8192, rules: []auditRule{{Path: file, Key: "bench-latency"}}}
	if err := a.Start(); err != nil {
		return l, err
	}
	defer a.Stop()
	f, err := os.Open(a.Log())
	if err != nil {
		return l, err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return l, err
	}
	needle := []byte(`key="bench-latency"`)
	var pending []byte
	buf := make([]byte, 64<<10)
	// wait reads the log until a rename event with the key shows up.
	wait := func() (time.Time, bool) {
		end := time.Now().Add(latencyTimeout)
		for time.Now().Before(end) {
			k, _ := f.Read(buf)
			if k > 0 {
				at := time.Now()
				pending = append(pending, buf[:k]...)
				for {
					i := bytes.IndexByte(pending, '\n')
					if i < 0 {
						break
					}
					line := pending[:i]
					pending = pending[i+1:]
					if bytes.HasPrefix(line, []byte("type=SYSCALL ")) && bytes.Contains(line, needle) && bytes.Contains(line, []byte("SYSCALL=rename")) {
						return at, true
					}
				}
				continue
			}
			time.Sleep(100 * time.Microsecond)
		}
		return time.Time{}, false
	}
	var ds []time.Duration
	for i := 1; i <= n; i++ {
		if err := replacePasswd(file, i); err != nil {
			return l, err
		}
		t0 := time.Now()
		if t1, ok := wait(); ok {
			ds = append(ds, max(t1.Sub(t0), 0))
		}
	}
	summarise(&l, ds)
	if l.Seen == 0 {
		return l, fmt.Errorf("auditd logged none of %d replaces", n)
	}
	return l, nil
}

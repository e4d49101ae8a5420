package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Burst is how many of a burst's changes one tool reported.
type Burst struct {
	Tool     string `json:"tool"`
	Workload string `json:"workload"`
	Truth    int    `json:"truth"`
	// Reported counts the changes the tool reported (for vigil: live and
	// recovered, each path or write once).
	Reported int `json:"reported"`
	// Live counts, for vigil, the changes in live records whose actor is
	// the workload's process (per-actor write counts for coalesced
	// records); Recovered the records of origin recovered.
	Live      int `json:"live"`
	Recovered int `json:"recovered"`
	// Lost is what the tool said it lost: vigil's events-lost total, the
	// kernel audit lost counter's increase, inotify queue overflows.
	Lost uint64 `json:"lost"`
	// vigil's split of Lost: the kernel's ring buffer, its own queue
	LostInKernel uint64 `json:"lost_in_kernel,omitempty"`
	LostInQueue  uint64 `json:"lost_in_queue,omitempty"`
	Records      int    `json:"records"`
	// Seconds is the workload's run time under the tool; Drain how long
	// after it the tool's output went quiet.
	Seconds float64 `json:"seconds"`
	Drain   float64 `json:"drain"`
	Note    string  `json:"note,omitempty"`
}

type burstKind struct {
	name  string
	truth int
	// prepare makes the scratch path before the tool starts; run is the
	// burst; target is what is watched.
	prepare func(target string) error
	run     func(target string) (time.Duration, error)
	dir     bool
}

func burstKinds(files, rewrites int) []burstKind {
	return []burstKind{
		{name: "delete", truth: files, dir: true,
			prepare: func(d string) error {
				if err := os.MkdirAll(d, 0o755); err != nil {
					return err
				}
				_, err := makeFiles(d, files)
				return err
			},
			run: func(d string) (time.Duration, error) { return removeFiles(d, files) }},
		{name: "create", truth: files, dir: true,
			prepare: func(d string) error { return os.MkdirAll(d, 0o755) },
			run:     func(d string) (time.Duration, error) { return makeFiles(d, files) }},
		{name: "rewrite", truth: rewrites,
			prepare: func(f string) error { return os.WriteFile(f, []byte("initial 000000000\n"), 0o644) },
			run:     func(f string) (time.Duration, error) { return rewriteFile(f, rewrites) }},
	}
}

const (
	quietFor   = 2 * time.Second
	vigilQuiet = 15 * time.Second
	quietMax   = 300 * time.Second
)

// lastAt is when the last record about target arrived.
func lastAt(recs []*vigilRec, target string) time.Time {
	var t time.Time
	for _, r := range recs {
		if p := r.File.Path; p == target || strings.HasPrefix(p, target+"/") || r.Event.Action == "events-lost" {
			t = r.At
		}
	}
	return t
}

// ringKiB, when set, is vigil's sensor.ring_buffer_kib in the bursts (an
// experiment: the tables use the default).
var ringKiB int

// burstOnly lists the bursts run (-burst-kinds).
var burstOnly = "delete,create,rewrite"

func measureBursts(root, vigilBin string, files, rewrites int, which []string, logf func(string, ...any)) ([]Burst, error) {
	var out []Burst
	for _, bk := range burstKinds(files, rewrites) {
		if !strings.Contains(","+burstOnly+",", ","+bk.name+",") {
			continue
		}
		for _, tn := range which {
			target := filepath.Join(root, "burst-"+tn+"-"+bk.name)
			os.RemoveAll(target)
			if err := bk.prepare(target); err != nil {
				return nil, fmt.Errorf("burst %s: %w", bk.name, err)
			}
			b, err := burstOne(tn, bk, target, filepath.Join(root, "agent-"+tn), vigilBin, logf)
			os.RemoveAll(target)
			if err != nil {
				return nil, fmt.Errorf("burst %s under %s: %w", bk.name, tn, err)
			}
			logf("burst %s %s: %d/%d reported (live %d, recovered %d, lost %d) in %.2fs + %.2fs", bk.name, tn, b.Reported, b.Truth, b.Live, b.Recovered, b.Lost, b.Seconds, b.Drain)
			out = append(out, b)
		}
	}
	return out, nil
}

func burstOne(tn string, bk burstKind, target, agentDir, vigilBin string, logf func(string, ...any)) (Burst, error) {
	b := Burst{Tool: tn, Workload: bk.name, Truth: bk.truth}
	switch tn {
	case "vigil":
		v := &vigilAgent{label: "vigil", bin: vigilBin, dir: agentDir, ringKiB: ringKiB,
			watches: []watchSpec{{Path: target, Recursive: bk.dir, Kind: "hash"}}}
		if err := v.Start(); err != nil {
			return b, err
		}
		d, err := bk.run(target)
		if err != nil {
			v.Stop()
			return b, err
		}
		b.Seconds = d.Seconds()
		end := time.Now()
		// Wait for every change to be accounted for; vigil may pause
		// its output for seconds (re-reading a tree after a loss), so
		// silence alone ends the wait only after vigilQuiet.
		progress := time.Now()
		for deadline := end.Add(quietMax); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			var c Burst
			countVigil(&c, v.Records(), target, bk)
			if c.Reported+int(c.Lost) >= bk.truth {
				break
			}
			v.mu.Lock()
			last := v.last
			v.mu.Unlock()
			if time.Since(last) > vigilQuiet {
				logf("burst %s vigil: no record for %s, %d of %d so far: stopping it", bk.name, vigilQuiet, c.Reported, bk.truth)
				break
			}
			if time.Since(progress) > 15*time.Second {
				progress = time.Now()
				logf("burst %s vigil: %d of %d so far", bk.name, c.Reported, bk.truth)
			}
		}
		if last := lastAt(v.Records(), target); last.After(end) {
			b.Drain = last.Sub(end).Seconds()
		}
		if err := v.Stop(); err != nil {
			return b, err
		}
		countVigil(&b, v.Records(), target, bk)
		b.Note = v.Sensor
	case "auditd":
		a := &auditdAgent{dir: agentDir, backlog: 8192, rules: []auditRule{{Path: target, Key: "bench-" + bk.name}}}
		os.MkdirAll(agentDir, 0o700)
		if err := a.Start(); err != nil {
			return b, err
		}
		off, lost0 := a.LogSize(), auditLost()
		d, err := bk.run(target)
		if err != nil {
			a.Stop()
			return b, err
		}
		b.Seconds = d.Seconds()
		t0 := time.Now()
		if err := a.settle(quietMax); err != nil {
			a.Stop()
			return b, err
		}
		b.Drain = (time.Since(t0) - quietFor).Seconds()
		b.Lost = auditLost() - lost0
		n, err := a.CountKey("bench-"+bk.name, off)
		a.Stop()
		if err != nil {
			return b, err
		}
		b.Reported, b.Records = n, n
		b.Note = "backlog_limit 8192"
	case "inotifywait":
		in := &inotifyAgent{paths: []string{target}, dir: agentDir}
		if err := in.Start(); err != nil {
			return b, err
		}
		d, err := bk.run(target)
		if err != nil {
			in.Stop()
			return b, err
		}
		b.Seconds = d.Seconds()
		t0 := time.Now()
		in.Quiet(quietFor, quietMax)
		b.Drain = (time.Since(t0) - quietFor).Seconds()
		in.Stop()
		ev := map[string]string{"delete": "DELETE", "create": "CREATE", "rewrite": "CLOSE_WRITE"}[bk.name]
		n, ov := in.Count(ev)
		b.Reported, b.Records, b.Lost = n, n, uint64(ov)
		b.Note = "events " + ev + "; queue overflows counted as lost"
	default:
		return b, fmt.Errorf("unknown tool %q", tn)
	}
	if b.Reported > b.Truth {
		b.Note = strings.TrimSpace(b.Note + fmt.Sprintf("; %d reports for %d changes", b.Reported, b.Truth))
	}
	return b, nil
}

// countVigil counts the burst's changes in vigil's records.
func countVigil(b *Burst, recs []*vigilRec, target string, bk burstKind) {
	me := os.Getpid()
	action := map[string]string{"delete": "deleted", "create": "created", "rewrite": "modified"}[bk.name]
	livePaths, recPaths := map[string]bool{}, map[string]bool{}
	for _, r := range recs {
		switch r.Event.Action {
		case "events-lost":
			b.Lost += r.Vigil.Lost
			b.LostInKernel += r.Vigil.LostInKernel
			b.LostInQueue += r.Vigil.LostInQueue
			continue
		case "agent-ready", "agent-stopped", "self-test":
			continue
		}
		p := r.File.Path
		if p != target && !strings.HasPrefix(p, target+"/") {
			continue
		}
		b.Records++
		switch {
		case r.Vigil.Origin == "live" && r.Event.Action == action && bk.name == "rewrite":
			for _, a := range r.Vigil.Actors {
				if a.PID == me {
					b.Live += a.Writes
				}
			}
		case r.Vigil.Origin == "live" && r.Event.Action == action:
			if r.Process.PID == me && !livePaths[p] {
				livePaths[p] = true
				b.Live++
			}
		case r.Vigil.Origin == "recovered":
			// any action: a recovered record says the file changed
			b.Recovered++
			recPaths[p] = true
		}
	}
	if bk.name == "rewrite" {
		// Lost writes cannot be itemised: a recovered record stands for
		// the file's change, the events-lost count for how many.
		b.Reported = b.Live + b.Recovered
		return
	}
	for p := range recPaths {
		livePaths[p] = true
	}
	b.Reported = len(livePaths)
}

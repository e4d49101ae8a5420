package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A tool is one of the compared monitors, started and stopped around a
// workload.
type tool interface {
	Name() string
	Start() error
	Stop() error
}

// ---- vigil ---------------------------------------------------------------

type watchSpec struct {
	Path      string
	Recursive bool
	Kind      string
}

// vigilRec is the part of a vigil record the benchmarks read.
type vigilRec struct {
	At    time.Time `json:"-"`
	Event struct {
		Action string `json:"action"`
	} `json:"event"`
	File struct {
		Path string `json:"path"`
	} `json:"file"`
	Process struct {
		PID int `json:"pid"`
	} `json:"process"`
	Vigil struct {
		Origin string `json:"origin"`
		Writes int    `json:"writes"`
		Actors []struct {
			PID    int `json:"pid"`
			Writes int `json:"writes"`
		} `json:"actors"`
		Lost         uint64 `json:"lost"`
		LostInKernel uint64 `json:"lost_in_kernel"`
		LostInQueue  uint64 `json:"lost_in_queue"`
		Recovered    int    `json:"recovered"`
		Records      struct {
			Live      uint64 `json:"live"`
			Recovered uint64 `json:"recovered"`
		} `json:"records"`
		Sensor struct {
			Object   string `json:"object"`
			HookType string `json:"hook_type"`
			Kernel   string `json:"kernel"`
		} `json:"sensor"`
	} `json:"vigil"`
}

// vigilAgent runs `vigil run` with a private configuration and state
// directory and reads its records from stdout.
type vigilAgent struct {
	label   string
	bin     string
	dir     string
	watches []watchSpec
	extra   []string // more `vigil run` flags
	ringKiB int      // sensor.ring_buffer_kib; 0: the default
	// onRec, if set, sees every record as it arrives (in the reader).
	onRec func(*vigilRec)

	cmd     *exec.Cmd
	mu      sync.Mutex
	recs    []*vigilRec
	last    time.Time
	ready   chan *vigilRec
	stopped chan struct{}
	done    chan error
	// Sensor is the agent-ready record's sensor choice.
	Sensor string
}

func (v *vigilAgent) Name() string { return v.label }

func (v *vigilAgent) writeConfig() (string, error) {
	if err := os.MkdirAll(v.dir, 0o700); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\nstate_dir = %q\nsocket = %q\n\n[output]\nstdout = true\n",
		filepath.Join(v.dir, "state"), filepath.Join(v.dir, "vigil.sock"))
	if v.ringKiB > 0 {
		fmt.Fprintf(&b, "\n[sensor]\nring_buffer_kib = %d\n", v.ringKiB)
	}
	// the warm-up canary (warmup.go) beside what is measured
	for _, w := range append(v.watches, watchSpec{Path: canaryPath(v.dir)}) {
		fmt.Fprintf(&b, "\n[[watch]]\npath = %q\n", w.Path)
		if w.Recursive {
			b.WriteString("recursive = true\n")
		}
		if w.Kind != "" {
			fmt.Fprintf(&b, "kind = %q\n", w.Kind)
		}
	}
	p := filepath.Join(v.dir, "vigil.toml")
	return p, os.WriteFile(p, []byte(b.String()), 0o600)
}

func (v *vigilAgent) Start() error {
	cfg, err := v.writeConfig()
	if err != nil {
		return fmt.Errorf("vigil config: %w", err)
	}
	// A fresh state directory each start: no baseline carried over.
	if err := os.RemoveAll(filepath.Join(v.dir, "state")); err != nil {
		return err
	}
	v.recs, v.last, v.Sensor = nil, time.Time{}, ""
	if err := makeCanary(canaryPath(v.dir)); err != nil {
		return err
	}
	v.ready = make(chan *vigilRec, 1)
	v.stopped = make(chan struct{})
	v.done = make(chan error, 1)
	v.cmd = exec.Command(v.bin, append([]string{"run", "-config", cfg}, v.extra...)...)
	// vigil's log, for a post-mortem: kept in the agent directory (an
	// *os.File, so vigil writes it directly)
	logFile, err := os.Create(filepath.Join(v.dir, "vigil.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // vigil has its own descriptor once started
	v.cmd.Stderr = logFile
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := v.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", v.bin, err)
	}
	readerDone := make(chan struct{})
	go v.read(out, readerDone)
	go func() {
		<-readerDone
		v.done <- v.cmd.Wait()
	}()
	select {
	case r := <-v.ready:
		v.Sensor = r.Vigil.Sensor.Object + " (" + r.Vigil.Sensor.HookType + ")"
		if err := v.warmup(); err != nil {
			v.Stop()
			return err
		}
		return nil
	case err := <-v.done:
		return fmt.Errorf("vigil exited before agent-ready (%v): %s", err, v.logTail())
	case <-time.After(120 * time.Second):
		v.cmd.Process.Kill()
		return fmt.Errorf("vigil not ready after 120s: %s", v.logTail())
	}
}

func (v *vigilAgent) read(r io.Reader, done chan<- struct{}) {
	defer close(done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		at := time.Now()
		rec := &vigilRec{At: at}
		if err := json.Unmarshal(sc.Bytes(), rec); err != nil {
			continue
		}
		if v.onRec != nil {
			v.onRec(rec)
		}
		v.mu.Lock()
		v.recs = append(v.recs, rec)
		v.last = at
		v.mu.Unlock()
		switch rec.Event.Action {
		case "agent-ready":
			select {
			case v.ready <- rec:
			default:
			}
		case "agent-stopped":
			close(v.stopped)
		}
	}
}

// Quiet waits until no record has arrived for d (at most max).
func (v *vigilAgent) Quiet(d, max time.Duration) {
	end := time.Now().Add(max)
	for time.Now().Before(end) {
		v.mu.Lock()
		last := v.last
		v.mu.Unlock()
		if time.Since(last) >= d {
			return
		}
		time.Sleep(d / 4)
	}
}

// Records returns the records read so far.
func (v *vigilAgent) Records() []*vigilRec {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]*vigilRec(nil), v.recs...)
}

func (v *vigilAgent) Pid() int { return v.cmd.Process.Pid }

func (v *vigilAgent) Stop() error {
	if v.cmd == nil || v.cmd.Process == nil {
		return nil
	}
	v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-v.done:
		if err != nil {
			return fmt.Errorf("vigil: %w: %s", err, v.logTail())
		}
		return nil
	case <-time.After(180 * time.Second):
		v.cmd.Process.Kill()
		<-v.done
		return errors.New("vigil did not stop within 180s of SIGTERM")
	}
}

func (v *vigilAgent) logTail() string {
	b, _ := os.ReadFile(filepath.Join(v.dir, "vigil.log"))
	return lastLines(string(b), 5)
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " | ")
}

// ---- auditd --------------------------------------------------------------

// auditRule is one `auditctl -w PATH -p wa -k KEY`.
type auditRule struct{ Path, Key string }

// auditdAgent runs the audit daemon in the foreground of this process (no
// init system needed) with a private configuration and log, and loads
// watch rules equivalent to vigil's watches.
type auditdAgent struct {
	dir   string
	rules []auditRule
	// backlog is the kernel's audit backlog limit while it runs (Debian's
	// shipped audit.rules sets 8192; the kernel default is 64).
	backlog int

	cmd  *exec.Cmd
	done chan error
	// enabled is the kernel's audit "enabled" flag before Start, put back
	// by Stop: auditd enables auditing and leaves it on when it stops, and
	// the kernel then writes audit records to its log (dmesg) for every
	// process while the other tools are measured.
	enabled string
}

func (a *auditdAgent) Name() string { return "auditd" }

func (a *auditdAgent) Log() string { return filepath.Join(a.dir, "audit.log") }

const auditdConf = `local_events = yes
write_logs = yes
log_file = %s
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 0
max_log_file_action = IGNORE
num_logs = 0
priority_boost = 4
name_format = NONE
space_left = 75
space_left_action = IGNORE
admin_space_left = 50
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
use_libwrap = no
q_depth = 2000
overflow_action = SYSLOG
max_restarts = 10
plugin_dir = %s
end_of_event_timeout = 2
`

// auditStatus is `auditctl -s` as a map.
func auditStatus() (map[string]string, error) {
	out, err := exec.Command("auditctl", "-s").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("auditctl -s: %w: %s", err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			m[k] = v
		}
	}
	return m, nil
}

// auditRules is `auditctl -l`, one rule a line.
func auditRules() ([]string, error) {
	out, err := exec.Command("auditctl", "-l").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("auditctl -l: %w: %s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n"), nil
}

func auditctl(args ...string) error {
	out, err := exec.Command("auditctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("auditctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (a *auditdAgent) Start() error {
	st, err := auditStatus()
	if err != nil {
		return err
	}
	if st["pid"] != "0" && st["pid"] != "" {
		return fmt.Errorf("an audit daemon already runs (pid %s): stop it first", st["pid"])
	}
	a.enabled = st["enabled"]
	if err := makeCanary(canaryPath(a.dir)); err != nil {
		return err
	}
	plugins := filepath.Join(a.dir, "plugins.d")
	if err := os.MkdirAll(plugins, 0o700); err != nil {
		return err
	}
	conf := fmt.Sprintf(auditdConf, a.Log(), plugins)
	if err := os.WriteFile(filepath.Join(a.dir, "auditd.conf"), []byte(conf), 0o640); err != nil {
		return err
	}
	a.cmd = exec.Command("auditd", "-n", "-c", a.dir)
	var errb bytes.Buffer
	a.cmd.Stderr = &errb
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("starting auditd: %w", err)
	}
	a.done = make(chan error, 1)
	go func() { a.done <- a.cmd.Wait() }()
	want := strconv.Itoa(a.cmd.Process.Pid)
	for i := 0; ; i++ {
		st, err := auditStatus()
		if err == nil && st["pid"] == want {
			break
		}
		select {
		case err := <-a.done:
			return fmt.Errorf("auditd exited at start (%v): %s", err, lastLines(errb.String(), 5))
		case <-time.After(50 * time.Millisecond):
		}
		if i > 200 {
			a.Stop()
			return errors.New("auditd did not register with the kernel within 10s")
		}
	}
	if err := auditctl("-b", strconv.Itoa(a.backlog)); err != nil {
		a.Stop()
		return err
	}
	for _, r := range append(a.rules, auditRule{Path: canaryPath(a.dir), Key: warmupKey}) {
		if err := auditctl("-w", r.Path, "-p", "wa", "-k", r.Key); err != nil {
			a.Stop()
			return err
		}
	}
	if err := a.warmup(); err != nil {
		a.Stop()
		return err
	}
	return nil
}

func (a *auditdAgent) Stop() error {
	if a.cmd == nil {
		return nil
	}
	err := auditctl("-D")
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd = nil
	if a.enabled == "0" || a.enabled == "1" {
		if e := auditctl("-e", a.enabled); err == nil {
			err = e
		}
	}
	return err
}

// Quiet waits until the audit log has not grown for d (at most max).
func (a *auditdAgent) Quiet(d, max time.Duration) {
	end := time.Now().Add(max)
	var size int64 = -1
	stable := time.Now()
	for time.Now().Before(end) {
		fi, err := os.Stat(a.Log())
		if err == nil && fi.Size() != size {
			size, stable = fi.Size(), time.Now()
		}
		if time.Since(stable) >= d {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogSize is the audit log's size now, to count from there later.
func (a *auditdAgent) LogSize() int64 {
	fi, err := os.Stat(a.Log())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// CountKey counts the audit events (SYSCALL records) with key after offset.
func (a *auditdAgent) CountKey(key string, offset int64) (int, error) {
	f, err := os.Open(a.Log())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, err
	}
	needle := []byte(`key="` + key + `"`)
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Bytes()
		if bytes.HasPrefix(l, []byte("type=SYSCALL ")) && bytes.Contains(l, needle) {
			n++
		}
	}
	return n, sc.Err()
}

// auditLost is the kernel's lost-record counter.
func auditLost() uint64 {
	st, err := auditStatus()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(st["lost"], 10, 64)
	return n
}

// ---- inotifywait ---------------------------------------------------------

// inotifyAgent runs inotifywait -m on the same paths and counts its events
// by type.
type inotifyAgent struct {
	paths []string
	dir   string // holds the warm-up canary

	canarySeen bool
	cmd        *exec.Cmd
	done       chan error
	mu         sync.Mutex
	counts     map[string]int // event name -> count
	overflow   int
	last       time.Time
}

func (i *inotifyAgent) Name() string { return "inotifywait" }

func (i *inotifyAgent) Start() error {
	i.counts, i.overflow, i.last, i.canarySeen = map[string]int{}, 0, time.Time{}, false
	canary := canaryPath(i.dir)
	if err := makeCanary(canary); err != nil {
		return err
	}
	args := append([]string{"-m", "-r", "--format", "%e %w%f", "-e", "create,delete,close_write,moved_to,moved_from,attrib"}, i.paths...)
	args = append(args, canary)
	i.cmd = exec.Command("inotifywait", args...)
	out, err := i.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	errp, err := i.cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := i.cmd.Start(); err != nil {
		return fmt.Errorf("starting inotifywait: %w", err)
	}
	established := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(errp)
		var all []string
		for sc.Scan() {
			all = append(all, sc.Text())
			if strings.Contains(sc.Text(), "Watches established") {
				established <- ""
			}
		}
		established <- strings.Join(all, " | ")
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			ev, path, _ := strings.Cut(sc.Text(), " ")
			i.mu.Lock()
			if path == canary {
				// the warm-up change: not counted
				i.canarySeen = i.canarySeen || strings.Contains(ev, "CLOSE_WRITE")
				i.mu.Unlock()
				continue
			}
			i.last = time.Now()
			for _, e := range strings.Split(ev, ",") {
				i.counts[e]++
			}
			if strings.Contains(ev, "Q_OVERFLOW") {
				i.overflow++
			}
			i.mu.Unlock()
		}
	}()
	i.done = make(chan error, 1)
	go func() {
		<-readerDone
		i.done <- i.cmd.Wait()
	}()
	select {
	case msg := <-established:
		if msg != "" {
			return fmt.Errorf("inotifywait: %s", msg)
		}
		if err := i.warmup(); err != nil {
			i.Stop()
			return err
		}
		return nil
	case <-time.After(60 * time.Second):
		i.cmd.Process.Kill()
		return errors.New("inotifywait: no watches after 60s")
	}
}

func (i *inotifyAgent) Stop() error {
	if i.cmd == nil {
		return nil
	}
	i.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-i.done:
	case <-time.After(10 * time.Second):
		i.cmd.Process.Kill()
		<-i.done
	}
	i.cmd = nil
	return nil
}

func (i *inotifyAgent) Quiet(d, max time.Duration) {
	end := time.Now().Add(max)
	for time.Now().Before(end) {
		i.mu.Lock()
		last := i.last
		i.mu.Unlock()
		if time.Since(last) >= d {
			return
		}
		time.Sleep(d / 4)
	}
}

func (i *inotifyAgent) Count(ev string) (n, overflow int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.counts[ev], i.overflow
}

// noAgent is the baseline: nothing watching.
type noAgent struct{}

func (noAgent) Name() string { return "none" }
func (noAgent) Start() error { return nil }
func (noAgent) Stop() error  { return nil }

// Command vigil-bench measures vigil side by side with no agent, auditd and
// inotifywait in one run (write-path overhead, burst capture, detection
// latency, baseline scan, footprint) and writes docs/benchmarks.md from the
// results. `make bench` runs it through scripts/bench.sh; see
// docs/benchmarks.md for what each table means.
//
//	vigil-bench host   -vigil bin/vigil -out results.json [-quick] [-only a,b]
//	vigil-bench report -host results.json [-guest guest.json ...] -o docs/benchmarks.md
//
// It is statically linked (CGO_ENABLED=0); the same workloads run inside
// the matrix guests through its test binary (guest_test.go, tag benchguest).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Machine says where the numbers come from.
type Machine struct {
	Date     string            `json:"date"`
	Kernel   string            `json:"kernel"`
	OS       string            `json:"os"`
	CPU      string            `json:"cpu"`
	CPUs     int               `json:"cpus"`
	MemMB    int               `json:"mem_mb"`
	Go       string            `json:"go"`
	Versions map[string]string `json:"versions"`
	Emulated bool              `json:"emulated,omitempty"`
}

// Results are everything one run measured.
type Results struct {
	Machine   Machine      `json:"machine"`
	Settings  Settings     `json:"settings"`
	Overhead  []Overhead   `json:"overhead,omitempty"`
	Burst     []Burst      `json:"burst,omitempty"`
	Latency   []Latency    `json:"latency,omitempty"`
	Scan      []ScanResult `json:"scan,omitempty"`
	Footprint []Footprint  `json:"footprint,omitempty"`
	Seconds   float64      `json:"seconds"`
}

// Settings are the sizes of the workloads.
type Settings struct {
	Pairs      int `json:"pairs"`
	N4k        int `json:"n_4k"`
	N1         int `json:"n_1b"`
	NOpen      int `json:"n_open"`
	BurstFiles int `json:"burst_files"`
	Rewrites   int `json:"rewrites"`
	Replaces   int `json:"replaces"`
	TreeFiles  int `json:"tree_files"`
	ScanRuns   int `json:"scan_runs"`
	Rate       int `json:"rate"`
	FootSecs   int `json:"foot_secs"`
}

var fullSettings = Settings{Pairs: 7, N4k: 300_000, N1: 300_000, NOpen: 200_000,
	BurstFiles: 50_000, Rewrites: 100_000, Replaces: 1000, TreeFiles: 100_000, ScanRuns: 2, Rate: 10_000, FootSecs: 10}

// quickSettings is a development run: every section, smaller.
var quickSettings = Settings{Pairs: 2, N4k: 50_000, N1: 50_000, NOpen: 30_000,
	BurstFiles: 5_000, Rewrites: 10_000, Replaces: 100, TreeFiles: 10_000, ScanRuns: 1, Rate: 10_000, FootSecs: 3}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: vigil-bench host|report [flags] (see the package comment)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "host":
		err = cmdHost(os.Args[2:])
	case "report":
		err = cmdReport(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil-bench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func cmdHost(args []string) error {
	fs := flag.NewFlagSet("host", flag.ContinueOnError)
	bin := fs.String("vigil", "bin/vigil", "the vigil binary")
	out := fs.String("out", "", "write the results (JSON) here")
	quick := fs.Bool("quick", false, "smaller workloads, for development")
	only := fs.String("only", "overhead,burst,latency,scan,footprint", "sections to run")
	work := fs.String("work", "", "scratch directory on a disk filesystem (default: a new one under /var/tmp)")
	shm := fs.String("shm", "/dev/shm", "tmpfs directory for the unwatched file of the overhead loops")
	peers := fs.String("burst-tools", "vigil,auditd,inotifywait", "tools of the burst section")
	fs.IntVar(&ringKiB, "burst-ring-kib", 0, "vigil's sensor.ring_buffer_kib in the bursts (experiments; default: vigil's)")
	fs.StringVar(&burstOnly, "burst-kinds", "delete,create,rewrite", "bursts to run (development)")
	ohTools := fs.String("overhead-tools", "vigil,auditd,inotifywait", "tools of the overhead section")
	tree := fs.String("tree", "", "where scan trees are kept between runs, one per size (default: under -work, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (BPF, auditd)")
	}
	if done, err := hostInChild(args); done || err != nil {
		return err
	}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		return err
	}
	*bin = abs
	s := fullSettings
	if *quick {
		s = quickSettings
	}
	root := *work
	if root == "" {
		if root, err = os.MkdirTemp("/var/tmp", "vigil-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(root)
	}
	shmDir, err := os.MkdirTemp(*shm, "vigil-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(shmDir)
	treeDir := filepath.Join(root, "tree")
	if *tree != "" {
		treeDir = filepath.Join(*tree, fmt.Sprint(s.TreeFiles))
	}

	// The machine's audit state is put back however the run ends.
	restore, err := saveAudit()
	if err != nil {
		return err
	}
	defer restore()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		logf("interrupted: restoring the audit state")
		restore()
		os.RemoveAll(root)
		os.RemoveAll(shmDir)
		os.Exit(130)
	}()

	start := time.Now()
	res := Results{Machine: machine(*bin), Settings: s}
	sections := map[string]bool{}
	for _, x := range strings.Split(*only, ",") {
		sections[strings.TrimSpace(x)] = true
	}
	if sections["overhead"] {
		file, watched, err := overheadDirs(filepath.Join(root, "overhead"), shmDir)
		if err != nil {
			return err
		}
		var rules []auditRule
		var ws []watchSpec
		for i, w := range watched {
			rules = append(rules, auditRule{Path: w, Key: fmt.Sprintf("bench-oh%d", i)})
			ws = append(ws, watchSpec{Path: w, Recursive: i == 1})
		}
		os.MkdirAll(filepath.Join(root, "agent-auditd"), 0o700)
		all := map[string]tool{
			"vigil":       &vigilAgent{label: "vigil", bin: *bin, dir: filepath.Join(root, "agent-vigil"), watches: ws},
			"auditd":      &auditdAgent{dir: filepath.Join(root, "agent-auditd"), backlog: 8192, rules: rules},
			"inotifywait": &inotifyAgent{paths: watched, dir: filepath.Join(root, "agent-inotifywait")},
		}
		var tools []tool
		for _, n := range strings.Split(*ohTools, ",") {
			t, ok := all[n]
			if !ok {
				return fmt.Errorf("-overhead-tools: unknown tool %q", n)
			}
			tools = append(tools, t)
		}
		res.Overhead, err = measureOverhead(file, tools, writeLoops(s.N4k, s.N1, s.NOpen), s.Pairs, logf)
		if err != nil {
			return fmt.Errorf("overhead: %w", err)
		}
	}
	if sections["burst"] {
		res.Burst, err = measureBursts(root, *bin, s.BurstFiles, s.Rewrites, strings.Split(*peers, ","), logf)
		if err != nil {
			return fmt.Errorf("burst: %w", err)
		}
	}
	if sections["latency"] {
		l, err := vigilLatency(root, *bin, s.Replaces)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		logf("latency vigil: p50 %.2f ms p99 %.2f ms (%d/%d)", l.P50, l.P99, l.Seen, l.N)
		a, err := auditdLatency(root, s.Replaces)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		logf("latency auditd: p50 %.2f ms p99 %.2f ms (%d/%d)", a.P50, a.P99, a.Seen, a.N)
		res.Latency = []Latency{l, a}
	}
	if sections["scan"] {
		res.Scan, err = measureScan(root, treeDir, *bin, s.TreeFiles, s.ScanRuns, logf)
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
	}
	if sections["footprint"] {
		res.Footprint, err = measureFootprint(root, *bin, s.Rate, time.Duration(s.FootSecs)*time.Second, logf)
		if err != nil {
			return fmt.Errorf("footprint: %w", err)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = os.Stdout.Write(append(b, '\n'))
		return err
	}
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// saveAudit records the kernel's audit state (enabled, backlog limit) and
// returns a function that puts it back and removes every rule.
func saveAudit() (func(), error) {
	if _, err := exec.LookPath("auditctl"); err != nil {
		return func() {}, nil
	}
	st, err := auditStatus()
	if err != nil {
		return nil, err
	}
	done := false
	return func() {
		if done {
			return
		}
		done = true
		auditctl("-D")
		if st["enabled"] != "" {
			auditctl("-e", st["enabled"])
		}
		if st["backlog_limit"] != "" {
			auditctl("-b", st["backlog_limit"])
		}
	}, nil
}

func machine(vigilBin string) Machine {
	m := Machine{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), CPUs: runtime.NumCPU(), Go: runtime.Version(),
		Versions: map[string]string{}}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = charsToString(u.Release[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(strings.TrimPrefix(strings.Split(string(b), "\n")[0], "MemTotal:"), "%d", &kb)
		m.MemMB = kb / 1024
	}
	if out, err := exec.Command(vigilBin, "version").Output(); err == nil {
		var v struct{ Version, Commit string }
		if json.Unmarshal(out, &v) == nil && v.Version != "" {
			m.Versions["vigil"] = v.Version
		} else {
			m.Versions["vigil"] = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	for _, p := range []string{"auditd", "inotify-tools", "aide"} {
		if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", p).Output(); err == nil {
			m.Versions[p] = strings.TrimSpace(string(out))
		}
	}
	return m
}

func charsToString(ca []int8) string {
	b := make([]byte, 0, len(ca))
	for _, c := range ca {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

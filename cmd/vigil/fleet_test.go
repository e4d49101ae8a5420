//go:build privileged

package main

// TestFleet: the fleet path end to end on the loopback. Eight real `vigil
// run` processes (each its own state directory, so its own generated
// host.id and sequence) and a load generator standing in for 1,000 hosts
// (each host its own spool and RELP session: vigil's own output and spool
// packages) send through one rsyslog relay running docs/operations.md's
// relay snippet, which forwards to a "SIEM" (a second rsyslogd writing a
// file). The relay is killed with SIGKILL for a while in the middle. At the
// end the SIEM's file must hold every record of every sender, once
// duplicates are dropped by (host.id, event.sequence).
//
// VIGIL_FLEET_SECONDS sets the sending time (default 60; make test-host
// uses 30: the assertions are the same). The figures (relay throughput,
// spool depth during the outage) are logged, and written as JSON to
// $VIGIL_FLEET_REPORT when set (make bench, docs/benchmarks.md).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/control"
	"github.com/vigil-fim/vigil/pkg/output"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

const (
	fleetAgents = 8
	fleetHosts  = 1000
	// Each simulated host sends a record every fleetPeriod; each agent's
	// file changes every fleetChange.
	fleetPeriod = 30 * time.Second
	fleetChange = 250 * time.Millisecond
)

// rsyslogd runs one rsyslogd on a configuration until stopped or killed.
type rsyslogd struct {
	t      *testing.T
	bin    string
	conf   string
	dir    string
	port   int
	cmd    *exec.Cmd
	exited chan struct{}
}

func findRsyslog(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("rsyslogd is not installed: run scripts/deps.sh (installs rsyslog and rsyslog-relp)")
	return ""
}

func (r *rsyslogd) start() {
	r.t.Helper()
	r.cmd, r.exited = testutil.StartRsyslogd(r.t, r.bin, r.conf, filepath.Join(r.dir, "rsyslogd.pid"),
		filepath.Join(r.dir, "rsyslogd.log"))
	want := fmt.Sprintf(":%04X 00000000:0000 0A", r.port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/net/tcp")
		if strings.Contains(string(b), want) {
			return
		}
		select {
		case <-r.exited:
			r.cmd = nil
			log, _ := os.ReadFile(filepath.Join(r.dir, "rsyslogd.log"))
			r.t.Fatalf("rsyslogd exited at start: %s", log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd not listening on %d after 10s", r.port)
		}
	}
}

func (r *rsyslogd) signal(sig syscall.Signal) {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

func newRsyslogd(t *testing.T, conf string, port int) *rsyslogd {
	t.Helper()
	r := &rsyslogd{t: t, bin: findRsyslog(t), dir: t.TempDir(), port: port}
	work := filepath.Join(r.dir, "work")
	os.Mkdir(work, 0o700)
	conf = fmt.Sprintf("global(workDirectory=%q maxMessageSize=\"256k\")\n", work) + conf
	r.conf = filepath.Join(r.dir, "rsyslog.conf")
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.signal(syscall.SIGTERM)
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(r.dir, "rsyslogd.log"))
			t.Logf("rsyslogd %s:\n%s\n%s", r.conf, conf, log)
		}
	})
	return r
}

// fleetRelayConf is the docs' relay snippet with the RELP input only (the
// TLS inputs are pkg/output's TestRelayKilled's), forwarding to siemPort.
func fleetRelayConf(t *testing.T, relpPort, siemPort int) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var snip string
	for _, m := range regexp.MustCompile("(?s)```rsyslog\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		if strings.Contains(m[1], `load="imrelp"`) {
			snip = m[1]
		}
	}
	if snip == "" {
		t.Fatal("docs/operations.md has no imrelp snippet")
	}
	// Drop the TLS inputs (each an input(...) spanning lines).
	snip = regexp.MustCompile(`(?s)input\(type="imrelp" port="2515".*?\)\n`).ReplaceAllString(snip, "")
	snip = regexp.MustCompile(`(?s)input\(type="imtcp".*?\)\n`).ReplaceAllString(snip, "")
	for old, nw := range map[string]string{
		`port="2514"`:                          fmt.Sprintf(`port="%d"`, relpPort),
		`target="siem.example.net" port="514"`: fmt.Sprintf(`target="127.0.0.1" port="%d"`, siemPort),
	} {
		if strings.Count(snip, old) != 1 {
			t.Fatalf("the relay snippet no longer has exactly one %s:\n%s", old, snip)
		}
		snip = strings.Replace(snip, old, nw, 1)
	}
	if strings.Contains(snip, "tls") {
		t.Fatalf("TLS left in the fleet's relay configuration:\n%s", snip)
	}
	return snip
}

func fleetPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type hostSeq struct {
	host string
	seq  uint64
}

// siemRecords reads the SIEM's file: each (host.id, event.sequence) and
// how many lines it has.
func siemRecords(t *testing.T, file string) (map[hostSeq]int, int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		return map[hostSeq]int{}, 0
	}
	defer f.Close()
	got := map[hostSeq]int{}
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var v struct {
			Event struct {
				Sequence uint64 `json:"sequence"`
			} `json:"event"`
			Host struct {
				ID string `json:"id"`
			} `json:"host"`
		}
		if json.Unmarshal(sc.Bytes(), &v) != nil {
			continue // a line still being written
		}
		got[hostSeq{v.Host.ID, v.Event.Sequence}]++
		n++
	}
	return got, n
}

func countLines(file string) int {
	b, _ := os.ReadFile(file)
	return strings.Count(string(b), "\n")
}

// fleetAgent is one `vigil run`.
type fleetAgent struct {
	cmd    *exec.Cmd
	exited chan error
	dir    string
	file   string // its own file output: every record it wrote
	sock   string
	change string
}

// FleetReport is what TestFleet measured.
type FleetReport struct {
	Seconds          int     `json:"seconds"`
	Agents           int     `json:"agents"`
	Hosts            int     `json:"hosts"`
	Records          int     `json:"records"`
	Lines            int     `json:"lines"`
	Duplicates       int     `json:"duplicates"`
	SteadyPerSecond  float64 `json:"steady_records_per_second"`
	DrainPerSecond   float64 `json:"drain_records_per_second"`
	PeakPerSecond    int     `json:"peak_records_per_second"`
	OutageSeconds    int     `json:"outage_seconds"`
	MaxDepthHosts    int     `json:"max_spool_depth_hosts"`
	MaxDepthAgent    int     `json:"max_spool_depth_agent"`
	DrainSeconds     float64 `json:"drain_seconds"`
	AgentRecords     int     `json:"agent_records"`
	LoadRecords      int     `json:"load_records"`
	RetriedHosts     uint64  `json:"retried_hosts"`
	DeliveredHosts   uint64  `json:"delivered_hosts"`
	MaxHostSpoolByte int64   `json:"max_host_spool_bytes"`
	SteadyDepth      int     `json:"steady_spool_depth_hosts"`
}

func TestFleet(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.HostOnly(t, "needs rsyslog")
	seconds := 60
	if v := os.Getenv("VIGIL_FLEET_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 20 {
			t.Fatalf("VIGIL_FLEET_SECONDS=%q: want a number of seconds, at least 20", v)
		}
		seconds = n
	}
	dur := time.Duration(seconds) * time.Second
	outageAt, outage := dur/3, dur/6

	// The SIEM: a second rsyslogd writing every message to a file.
	siemPort, relpPort := fleetPort(t), fleetPort(t)
	siemDir := t.TempDir()
	siemFile := filepath.Join(siemDir, "siem.msg")
	siem := newRsyslogd(t, fmt.Sprintf(`module(load="imtcp")
template(name="msg" type="string" string="%%msg%%\n")
input(type="imtcp" address="127.0.0.1" port="%d" ruleset="siem")
ruleset(name="siem") {
	action(type="omfile" file=%q template="msg")
}
`, siemPort, siemFile), siemPort)
	siem.start()
	relay := newRsyslogd(t, fleetRelayConf(t, relpPort, siemPort), relpPort)
	relay.start()
	relpAddr := fmt.Sprintf("relp://127.0.0.1:%d", relpPort)

	// Eight agents.
	var agents []*fleetAgent
	defer func() {
		for _, a := range agents {
			if a.cmd.ProcessState == nil {
				a.cmd.Process.Kill()
				<-a.exited
			}
		}
	}()
	for i := 0; i < fleetAgents; i++ {
		dir := t.TempDir()
		a := &fleetAgent{dir: dir, file: filepath.Join(dir, "out.json"), sock: filepath.Join(dir, "vigil.sock"),
			change: filepath.Join(dir, "watched", "app.conf"), exited: make(chan error, 1)}
		os.MkdirAll(filepath.Dir(a.change), 0o755)
		os.WriteFile(a.change, []byte("start\n"), 0o644)
		cfg := filepath.Join(dir, "vigil.toml")
		os.WriteFile(cfg, []byte(fmt.Sprintf(`[agent]
state_dir = %q
socket = %q
host_id = "generated"
heartbeat = "5s"
[output]
stdout = false
[output.file]
path = %q
[output.relp]
address = %q
[[watch]]
path = %q
kind = "diff"
`, filepath.Join(dir, "state"), a.sock, a.file, relpAddr, a.change)), 0o600)
		a.cmd = exec.Command(os.Args[0], runArgs(cfg)...)
		a.cmd.Env = append(os.Environ(), asVigilEnv+"=1")
		logf, _ := os.Create(filepath.Join(dir, "vigil.log"))
		a.cmd.Stdout, a.cmd.Stderr = logf, logf
		a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := a.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { a.exited <- a.cmd.Wait(); logf.Close() }()
		agents = append(agents, a)
	}
	for i, a := range agents {
		deadline := time.Now().Add(3 * time.Minute)
		for !strings.Contains(readFile(a.file), `"agent-ready"`) {
			select {
			case err := <-a.exited:
				a.exited <- err
				t.Fatalf("agent %d exited at start (%v): %s", i, err, readFile(filepath.Join(a.dir, "vigil.log")))
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("agent %d not ready after 3 minutes: %s", i, readFile(filepath.Join(a.dir, "vigil.log")))
			}
		}
	}
	t.Logf("%d agents ready", fleetAgents)

	// The load generator: 1,000 hosts, each with its own spool and RELP
	// session, a record every fleetPeriod from a random phase.
	type simHost struct {
		id  string
		out *output.Spooled
		seq uint64
	}
	hosts := make([]*simHost, fleetHosts)
	for i := range hosts {
		tr, err := output.NewRELP(output.RELPOptions{Address: relpAddr, Facility: 10, AppName: "vigil",
			HostName: fmt.Sprintf("sim-%04d", i), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		out, err := output.NewSpooled(tr, output.SpoolOptions{Path: filepath.Join(t.TempDir(), "spool.db"), MaxBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		hosts[i] = &simHost{id: fmt.Sprintf("sim-%04d-%08x", i, rand.Uint32()), out: out}
	}
	defer func() {
		for _, h := range hosts {
			h.out.Close()
		}
	}()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func(h *simHost) {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(rand.Int63n(int64(fleetPeriod)))):
			case <-stop:
				return
			}
			tick := time.NewTicker(fleetPeriod)
			defer tick.Stop()
			for {
				h.seq++
				rec := fmt.Sprintf(`{"@timestamp":%q,"event":{"kind":"event","category":["file"],"type":["change"],"action":"modified","sequence":%d,"module":"vigil","dataset":"vigil.file"},"host":{"name":%q,"id":%q},"file":{"path":"/etc/app/app.conf","hash":{"sha256":"%064x"}},"vigil":{"origin":"live","kind":"diff","changes":[{"type":"lines-changed","text":"@@ -1 +1 @@\n-a\n+b %d\n"}]}}`+"\n",
					time.Now().UTC().Format(time.RFC3339Nano), h.seq, h.id[:8], h.id, h.seq, h.seq)
				if _, err := h.out.Write([]byte(rec)); err != nil {
					t.Errorf("%s: %v", h.id, err)
					return
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}(h)
	}
	// The agents' files change at a steady pace.
	for _, a := range agents {
		wg.Add(1)
		go func(a *fleetAgent) {
			defer wg.Done()
			tick := time.NewTicker(fleetChange)
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				sh := exec.Command("/bin/sh", "-c", fmt.Sprintf("echo line%d >> %s", n, a.change))
				if err := sh.Run(); err != nil {
					t.Errorf("changing %s: %v", a.change, err)
					return
				}
			}
		}(a)
	}

	// Sample the SIEM's line count each second; kill the relay for the outage.
	rep := FleetReport{Seconds: seconds, Agents: fleetAgents, Hosts: fleetHosts, OutageSeconds: int(outage.Seconds())}
	began := time.Now()
	var samples []int
	var restartedAt, drainedAt time.Time
	steadyDepth := 0 // the hosts' spools just before the outage
	killed, restarted := false, false
	sampleDepth := func() {
		d := 0
		for _, h := range hosts {
			st := h.out.Stats()
			d += st.Depth
			rep.MaxHostSpoolByte = max(rep.MaxHostSpoolByte, st.Bytes)
		}
		rep.MaxDepthHosts = max(rep.MaxDepthHosts, d)
		for _, a := range agents {
			r, err := control.Query(a.sock, 2*time.Second)
			if err == nil && r.Stats != nil && len(r.Stats.Spools) == 1 {
				rep.MaxDepthAgent = max(rep.MaxDepthAgent, r.Stats.Spools[0].Depth)
			}
		}
	}
	for time.Since(began) < dur {
		time.Sleep(time.Second)
		samples = append(samples, countLines(siemFile))
		el := time.Since(began)

		switch {
		case !killed && el >= outageAt:
			for _, h := range hosts {
				steadyDepth += h.out.Stats().Depth
			}
			relay.signal(syscall.SIGKILL)
			killed = true
			t.Logf("relay killed with SIGKILL at %s", el.Round(time.Second))
		case killed && !restarted && el >= outageAt+outage:
			sampleDepth()
			relay.start()
			restarted, restartedAt = true, time.Now()
			t.Logf("relay restarted at %s; spool depth during the outage: %d records over the 1,000 hosts' spools, at most %d in one agent's",
				el.Round(time.Second), rep.MaxDepthHosts, rep.MaxDepthAgent)
		case killed && !restarted:
			sampleDepth()
		case restarted && drainedAt.IsZero():
			// The backlog is drained when the hosts' spools are back to
			// what a steady second holds.
			d := 0
			for _, h := range hosts {
				d += h.out.Stats().Depth
			}
			if d <= max(steadyDepth*2, 20) {
				drainedAt = time.Now()
			}
		}
	}
	close(stop)
	wg.Wait()
	sent := 0
	for _, h := range hosts {
		sent += int(h.seq)
	}

	// (Not asserted: speed is measured, never a test's verdict. A relay
	// that carries less than the offered load drains after the senders
	// stop, below.)
	if !drainedAt.IsZero() {
		rep.DrainSeconds = drainedAt.Sub(restartedAt).Seconds()
	}
	// Every spool empties.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		d := 0
		for _, h := range hosts {
			d += h.out.Stats().Depth
		}
		for _, a := range agents {
			if r, err := control.Query(a.sock, 2*time.Second); err == nil && r.Stats != nil && len(r.Stats.Spools) == 1 {
				d += r.Stats.Spools[0].Depth
			}
		}
		if d == 0 {
			if rep.DrainSeconds == 0 {
				rep.DrainSeconds = time.Since(restartedAt).Seconds()
				t.Logf("the hosts' spools drained back to their depth before the outage (%d) only after the senders stopped", steadyDepth)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records still in the spools 3 minutes after the end", d)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The agents stop (their agent-stopped records are delivered too).
	for i, a := range agents {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-a.exited:
			if err != nil {
				t.Errorf("agent %d: %v: %s", i, err, readFile(filepath.Join(a.dir, "vigil.log")))
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("agent %d did not stop in 30s", i)
		}
	}

	// What each sender wrote, against what the SIEM received.
	want := map[hostSeq]bool{}
	for _, h := range hosts {
		for q := uint64(1); q <= h.seq; q++ {
			want[hostSeq{h.id, q}] = true
		}
		st := h.out.Stats()
		rep.RetriedHosts += st.Retried
		rep.DeliveredHosts += st.Delivered
		if st.Dropped != 0 {
			t.Errorf("%s: the spool dropped %d records", h.id, st.Dropped)
		}
	}
	rep.LoadRecords = len(want)
	ids := map[string]bool{}
	for i, a := range agents {
		sc := bufio.NewScanner(strings.NewReader(readFile(a.file)))
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		n := 0
		for sc.Scan() {
			var v struct {
				Event struct {
					Sequence uint64 `json:"sequence"`
				} `json:"event"`
				Host struct {
					ID string `json:"id"`
				} `json:"host"`
			}
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v.Host.ID == "" || v.Event.Sequence == 0 {
				t.Fatalf("agent %d wrote a record without host.id or event.sequence: %.300s", i, sc.Text())
			}
			want[hostSeq{v.Host.ID, v.Event.Sequence}] = true
			ids[v.Host.ID] = true
			n++
		}
		rep.AgentRecords += n
	}
	if len(ids) != fleetAgents {
		t.Errorf("the %d agents wrote %d host.id values, want one each", fleetAgents, len(ids))
	}
	var got map[hostSeq]int
	var lines int
	deadline = time.Now().Add(time.Minute)
	for {
		got, lines = siemRecords(t, siemFile)
		missing := 0
		for k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			var some []string
			for k := range want {
				if got[k] == 0 && len(some) < 10 {
					some = append(some, fmt.Sprintf("%s/%d", k.host, k.seq))
				}
			}
			t.Fatalf("%d of %d records never reached the SIEM (e.g. %v)", missing, len(want), some)
		}
		time.Sleep(time.Second)
	}
	for k := range got {
		if !want[k] {
			t.Errorf("the SIEM received a record nobody sent: %v", k)
		}
	}
	rep.Records, rep.Lines, rep.Duplicates = len(want), lines, lines-len(got)

	// Throughput at the relay: the steady rate before the outage, and the
	// rate at which the backlog drained after it.
	if len(samples) > 2 {
		k := int(outageAt.Seconds()) - 1
		rep.SteadyPerSecond = float64(samples[k]-samples[0]) / float64(k)
	}
	for i := 1; i < len(samples); i++ {
		rep.PeakPerSecond = max(rep.PeakPerSecond, samples[i]-samples[i-1])
	}
	rep.SteadyDepth = steadyDepth
	backlog := rep.MaxDepthHosts + rep.MaxDepthAgent*fleetAgents
	if rep.DrainSeconds > 0 {
		// The backlog, plus what arrived meanwhile at the steady rate.
		rep.DrainPerSecond = float64(backlog)/rep.DrainSeconds + rep.SteadyPerSecond
	}
	t.Logf("fleet: %d s, %d agents (%d records) + %d hosts (%d records): the SIEM has all %d (host.id, event.sequence) pairs in %d lines (%d duplicates)",
		seconds, fleetAgents, rep.AgentRecords, fleetHosts, rep.LoadRecords, rep.Records, rep.Lines, rep.Duplicates)
	t.Logf("relay throughput: steady %.0f records/s, peak %d records/s in one second; after a %d s outage the backlog (about %d records) drained in %.1f s (%.0f records/s with the new ones)",
		rep.SteadyPerSecond, rep.PeakPerSecond, rep.OutageSeconds, backlog, rep.DrainSeconds, rep.DrainPerSecond)
	t.Logf("spool depth during the outage: %d records over the 1,000 hosts' spools (%d just before it; largest host spool %d bytes), at most %d in one agent's; load generator: %d delivered, %d retried",
		rep.MaxDepthHosts, steadyDepth, rep.MaxHostSpoolByte, rep.MaxDepthAgent, rep.DeliveredHosts, rep.RetriedHosts)
	if p := os.Getenv("VIGIL_FLEET_REPORT"); p != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Errorf("writing the fleet report: %v", err)
		}
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

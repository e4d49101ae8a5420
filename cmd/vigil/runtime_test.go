//go:build privileged

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/control"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// lines collects a process's JSON records.
type lines struct {
	mu   sync.Mutex
	list []map[string]any
}

func (l *lines) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			l.mu.Lock()
			l.list = append(l.list, m)
			l.mu.Unlock()
		}
	}
}

func field(m map[string]any, path string) string {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	if cur == nil {
		return ""
	}
	return fmt.Sprint(cur)
}

// wait returns the first record after mark that matches.
func (l *lines) wait(t *testing.T, mark int, what string, timeout time.Duration, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		for _, m := range l.list[mark:] {
			if match(m) {
				l.mu.Unlock()
				return m
			}
		}
		n := len(l.list)
		l.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s record within %v (%d records)", what, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (l *lines) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

func action(a string) func(map[string]any) bool {
	return func(m map[string]any) bool { return field(m, "event.action") == a }
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runArgs is `vigil run -config PATH` with the object or hook type the run
// forces (testutil.SensorForce: VIGIL_TEST_OBJECT, VIGIL_TEST_HOOKS) as
// -object and -hooks: every `vigil run` the tests start goes through it.
func runArgs(cfgPath string) []string {
	args := []string{"run", "-config", cfgPath}
	object, hooks := testutil.SensorForce()
	if object != "" {
		args = append(args, "-object", object)
	}
	if hooks != "" {
		args = append(args, "-hooks", hooks)
	}
	return args
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

// TestRunStatusMetricsReload: the vigil command end to end: `vigil run`
// answers `vigil status` on its socket and serves metrics; SIGHUP reloads
// (a new watch reports, a bad file is refused and the running configuration
// stays); after SIGTERM the socket is gone and status says so with exit 3.
func TestRunStatusMetricsReload(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	app := filepath.Join(dir, "etc", "app.conf")
	extra := filepath.Join(dir, "etc", "extra.conf")
	for _, p := range []string{app, extra} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("a = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "run", "vigil.sock")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfgPath := filepath.Join(dir, "vigil.toml")
	base := fmt.Sprintf(`[agent]
state_dir = %q
socket = %q
[metrics]
enabled = true
listen = %q
[[watch]]
path = %q
kind = "diff"
`, filepath.Join(dir, "state"), sock, addr, app)
	if err := os.WriteFile(cfgPath, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], runArgs(cfgPath)...)
	cmd.Env = append(os.Environ(), asVigilEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	recs := &lines{}
	readDone := make(chan struct{})
	go func() { recs.read(out); close(readDone) }()
	exited := make(chan error, 1)
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vigil's log:\n%s", logs.String())
		}
	}()
	go func() { <-readDone; exited <- cmd.Wait() }()
	recs.wait(t, 0, "agent-ready", 90*time.Second, action("agent-ready"))

	// vigil status, in words and in JSON.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-socket", sock}, &stdout, &stderr); code != 0 {
		t.Fatalf("status = %d: %s%s", code, &stdout, &stderr)
	}
	for _, want := range []string{"is running (pid " + fmt.Sprint(cmd.Process.Pid), "1 rules, 1 files", "self-test:    passed"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, &stdout)
		}
	}
	if st, err := os.Lstat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v %v, want mode 0600", st.Mode(), err)
	}
	stdout.Reset()
	if code := run([]string{"status", "-socket", sock, "-json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("status -json = %d: %s", code, &stderr)
	}
	var resp control.Response
	if err := json.Unmarshal(stdout.Bytes(), &resp); err != nil || resp.Stats == nil {
		t.Fatalf("status -json: %v: %s", err, &stdout)
	}
	if resp.Stats.Sensor.Object == "" || resp.Stats.Watch.MapEntries < 1 || resp.Stats.Watch.MapCapacity == 0 {
		t.Errorf("status -json: %+v", resp.Stats)
	}

	// A change, then the metrics count it.
	mark := recs.mark()
	if out, err := exec.Command("sh", "-c", "echo 'b = 2' >> "+app).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	recs.wait(t, mark, "modified app.conf", testutil.Timeout(), func(m map[string]any) bool {
		return field(m, "event.action") == "modified" && field(m, "file.path") == app
	})
	m := scrape(t, addr)
	for _, want := range []string{
		"vigil_agent_running 1",
		fmt.Sprintf(`object=%q`, resp.Stats.Sensor.Object),
		`vigil_records_total{action="modified",kind="event"} 1`,
		`vigil_records_total{action="agent-ready",kind="state"} 1`,
		`vigil_change_records_total{origin="live"} 1`,
		"vigil_pipeline_latency_seconds_count 1",
		"vigil_self_test_success 1",
		"vigil_watch_map_capacity ",
		"vigil_ring_buffer_size_bytes ",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !testutil.InVM() {
		// promtool is on the host only (package prometheus).
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Fatal("promtool not installed (package prometheus): run scripts/deps.sh")
		}
		c := exec.Command(promtool, "check", "metrics")
		c.Stdin = strings.NewReader(m)
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on a live agent's output: %v\n%s", err, out)
		}
	}

	// SIGHUP with a new watch: applied, and the new file reports.
	withExtra := base + fmt.Sprintf("[[watch]]\npath = %q\nkind = \"diff\"\n", extra)
	os.WriteFile(cfgPath, []byte(withExtra), 0o600)
	mark = recs.mark()
	cmd.Process.Signal(syscall.SIGHUP)
	r := recs.wait(t, mark, "config-reloaded", testutil.Timeout(), action("config-reloaded"))
	if field(r, "event.outcome") != "success" || field(r, "vigil.reload.rules.added") != "1" || field(r, "vigil.reload.rules.kept") != "1" {
		t.Errorf("reload record: %v", r)
	}
	mark = recs.mark()
	exec.Command("sh", "-c", "echo 'c = 3' >> "+extra).Run()
	recs.wait(t, mark, "modified extra.conf", testutil.Timeout(), func(m map[string]any) bool {
		return field(m, "event.action") == "modified" && field(m, "file.path") == extra
	})

	// SIGHUP with a broken file: refused with file:line, the watches stay.
	os.WriteFile(cfgPath, []byte(withExtra+"[coalesce]\nwindow = \"forever\"\n"), 0o600)
	mark = recs.mark()
	cmd.Process.Signal(syscall.SIGHUP)
	r = recs.wait(t, mark, "config-reloaded", testutil.Timeout(), action("config-reloaded"))
	if field(r, "event.outcome") != "failure" || !strings.Contains(field(r, "vigil.reload.errors"), cfgPath+":14: coalesce.window") {
		t.Errorf("failed reload record: %v", r)
	}
	stdout.Reset()
	run([]string{"status", "-socket", sock}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "FAILED, the previous configuration runs: "+cfgPath+":14: coalesce.window") ||
		!strings.Contains(stdout.String(), "2 rules") {
		t.Errorf("status after a failed reload:\n%s", &stdout)
	}
	mark = recs.mark()
	exec.Command("sh", "-c", "echo 'd = 4' >> "+extra).Run()
	recs.wait(t, mark, "extra.conf still watched", testutil.Timeout(), func(m map[string]any) bool {
		return field(m, "event.action") == "modified" && field(m, "file.path") == extra
	})
	if m := scrape(t, addr); !strings.Contains(m, `vigil_config_reloads_total{result="failure"} 1`) ||
		!strings.Contains(m, `vigil_config_reloads_total{result="success"} 1`) ||
		!strings.Contains(m, "vigil_config_last_reload_success 0") {
		t.Errorf("reload metrics:\n%s", grepLines(m, "reload"))
	}

	// SIGTERM: a clean stop; the socket goes, and status says no agent runs.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("vigil run exited: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("vigil run did not stop after SIGTERM")
	}
	recs.wait(t, 0, "agent-stopped", time.Second, action("agent-stopped"))
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	stdout.Reset()
	if code := run([]string{"status", "-socket", sock}, &stdout, &stderr); code != 3 {
		t.Errorf("status after stop = %d: %s", code, &stdout)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

//go:build privileged

package agent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/state"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// startAgent runs agent.Run with opt (Out, Ready, Log and, when unset, Key
// filled in) and returns its records and a stop function that waits for the
// agent to end and adds its state directory to the secrets audit.
func startAgent(t *testing.T, opt agent.Options) (*records, func()) {
	t.Helper()
	r := newRecords()
	return startAgentOut(t, opt, r, r)
}

// startAgentOut is startAgent with the records written to out (which must
// pass them to r).
func startAgentOut(t *testing.T, opt agent.Options, out io.Writer, r *records) (*records, func()) {
	t.Helper()
	ready := make(chan struct{})
	opt.Out, opt.Ready = out, ready
	opt.Log = zerolog.New(testutil.AuditWriter("log")).Level(zerolog.InfoLevel)
	if opt.Key == nil {
		opt.Key = []byte("0123456789abcdef0123456789abcdef")
	}
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- runAgentForced(ctx, opt) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("agent did not start: %v", err)
	case <-time.After(5 * time.Minute):
		cancel()
		t.Fatal("agent not ready after 5 minutes")
	}
	return r, func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("agent: %v", err)
		}
		r.close()
		if err := testutil.AuditTree("agent", opt.Config.Agent.StateDir); err != nil {
			t.Error(err)
		}
	}
}

// runAgentForced is agent.Run with the object or hook type the run forces
// (testutil.SensorForce: VIGIL_TEST_OBJECT, VIGIL_TEST_HOOKS) set in the
// configuration and in every configuration a reload reads, so that a forced
// run loads only the forced object and a reload sees no sensor change.
// Every agent the tests start goes through it.
func runAgentForced(ctx context.Context, opt agent.Options) error {
	object, hooks := testutil.SensorForce()
	set := func(c *config.Config) {
		if object != "" {
			c.Sensor.Object = object
		}
		if hooks != "" {
			c.Sensor.Hooks = hooks
		}
	}
	if opt.Config != nil {
		set(opt.Config)
	}
	if load := opt.LoadConfig; load != nil {
		opt.LoadConfig = func() (*config.Config, error) {
			c, err := load()
			if err == nil {
				set(c)
			}
			return c, err
		}
	}
	return agent.Run(ctx, opt)
}

// runAgent starts an agent on cfg and returns its records and a stop
// function that waits for agent-stopped.
func runAgent(t *testing.T, cfg *config.Config) (*records, func()) {
	t.Helper()
	return startAgent(t, agent.Options{Config: cfg})
}

// TestRestartReportsOfflineChanges: what changes while vigil is stopped is
// reported at the next start, before agent-ready, marked origin startup and
// with no actor; a clean restart reports nothing.
func TestRestartReportsOfflineChanges(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "etc/passwd")
	sudo := filepath.Join(dir, "etc/sudoers")
	bin := filepath.Join(dir, "bin/tool")
	for p, c := range map[string]string{pw: passwd0, sudo: sudoers0, bin: "\x7fELF binary"} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("restart.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[output]
stdout = false
[[watch]]
path = %q
[[watch]]
path = %q
[[watch]]
path = %q
`, filepath.Join(dir, "state"), pw, sudo, filepath.Join(dir, "bin"))))
	if err != nil {
		t.Fatal(err)
	}

	// First start: the baseline, nothing reported.
	r, stop := runAgent(t, cfg)
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Fatalf("first start reported %d changes: %v", len(got), got)
	}

	// A second agent on the same store fails fast while one runs.
	_, stop = runAgent(t, cfg)
	begin := time.Now()
	err = runAgentForced(context.Background(), agent.Options{Config: cfg, Out: newRecords(), Log: zerolog.Nop(),
		Key: []byte("0123456789abcdef0123456789abcdef")})
	if err == nil || !errors.Is(err, state.ErrLocked) || time.Since(begin) > 30*time.Second {
		t.Errorf("second agent on the same store: %v after %v, want a fast ErrLocked", err, time.Since(begin))
	}
	stop()

	// While stopped: a user added, a NOPASSWD rule, a setuid binary.
	os.WriteFile(pw, []byte(passwd0+"mallory:x:0:0::/root:/bin/sh\n"), 0o644)
	os.WriteFile(sudo+".new", []byte(sudoers0+"mallory ALL=(ALL) NOPASSWD: ALL\n"), 0o440)
	os.Rename(sudo+".new", sudo)
	os.Chmod(bin, 0o755|os.ModeSetuid)

	r, stop = runAgent(t, cfg)
	stop()
	got := startupRecs(r)
	find := func(p string) rec {
		for _, x := range got {
			if x.s("file.path") == p {
				return x
			}
		}
		t.Errorf("no startup record for %s; got %v", p, got)
		return rec{}
	}
	if x := find(pw); x != nil && hasChange(x, "user-added", "mallory") == nil {
		t.Errorf("passwd: %s", x)
	}
	if x := find(sudo); x != nil && (x.s("event.action") != "replaced" || hasChange(x, "sudo-rule-added", "") == nil) {
		t.Errorf("sudoers: want replaced with a rule added: %s", x)
	}
	if x := find(bin); x != nil && (x.s("event.action") != "attributes-changed" || !strings.Contains(x.String(), "setuid")) {
		t.Errorf("binary: want attributes-changed flagged setuid: %s", x)
	}
	if len(got) != 3 {
		t.Errorf("%d startup records, want 3: %v", len(got), got)
	}
	for _, x := range got {
		if x.get("process") != nil {
			t.Errorf("a startup record claims an actor: %s", x)
		}
	}
	// Reported before agent-ready.
	ready := r.since(0, func(x rec) bool { return x.s("event.action") == "agent-ready" })
	if len(ready) == 1 && len(got) > 0 && ready[0].get("event.sequence").(float64) < got[0].get("event.sequence").(float64) {
		t.Errorf("startup records came after agent-ready")
	}

	// A clean restart: nothing.
	r, stop = runAgent(t, cfg)
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Errorf("clean restart reported %d changes: %v", len(got), got)
	}

	// A live change is recorded in the store too: a restart right after
	// reports nothing more.
	r, stop = runAgent(t, cfg)
	mark := r.mark()
	sh(t, fmt.Sprintf("echo 'carol:x:1001:1001::/home/carol:/bin/sh' >> %s", pw))
	r.wait(t, mark, "live user-added", func(x rec) bool { return x.s("file.path") == pw && hasChange(x, "user-added", "carol") != nil })
	stop()
	r, stop = runAgent(t, cfg)
	stop()
	if got := startupRecs(r); len(got) > 0 {
		t.Errorf("restart after a live change reported it again: %v", got)
	}
}

// TestLostRecordsRecovered: a 4 KiB ring buffer under a write storm loses
// records; the agent reports the loss, re-reads the entries that lost some,
// and every change reaches the output: the last line written is in a live
// or recovered record, and a restart finds nothing left to report.
func TestLostRecordsRecovered(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "app.conf")
	other := filepath.Join(dir, "other.conf")
	os.WriteFile(conf, []byte("start\n"), 0o644)
	os.WriteFile(other, []byte("x\n"), 0o644)
	cfg, err := config.Parse("lost.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[sensor]
ring_buffer_kib = 4
[coalesce]
window = "0s"
[output]
stdout = false
[[watch]]
path = %q
kind = "diff"
[[watch]]
path = %q
kind = "diff"
`, filepath.Join(dir, "state"), conf, other)))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := runAgent(t, cfg)
	// One process appending a line per write(2), as fast as the kernel
	// takes them: far faster than the reader can drain a 4 KiB ring buffer
	// (a shell loop of appends, one open each, sometimes was not).
	n := testutil.Scale(5000, 10)
	sh(t, fmt.Sprintf("yes line | head -n %d | dd of=%s bs=5 iflag=fullblock oflag=append conv=notrunc 2>/dev/null; echo FINAL >> %s", n, conf, conf))
	lost := r.wait(t, 0, "events-lost", func(x rec) bool { return x.s("event.action") == "events-lost" })
	r.wait(t, 0, "the last line", func(x rec) bool {
		return x.s("file.path") == conf && strings.Contains(x.String(), `+FINAL`)
	})
	stop()
	if n, _ := lost.get("vigil.lost").(float64); n == 0 {
		t.Errorf("events-lost without a count: %s", lost)
	}
	if lost.s("vigil.reread") != "the watch entries that lost records" {
		t.Errorf("the re-read should be limited to the entries that lost records: %s", lost)
	}
	// other.conf lost nothing: it is never reported.
	if got := r.since(0, func(x rec) bool { return x.s("file.path") == other }); len(got) > 0 {
		t.Errorf("an entry that lost nothing was reported: %v", got)
	}
	stopped := r.since(0, func(x rec) bool { return x.s("event.action") == "agent-stopped" })
	if len(stopped) != 1 || stopped[0].get("vigil.records.live") == nil || stopped[0].get("vigil.records.recovered") == nil {
		t.Errorf("agent-stopped must count live and recovered records: %v", stopped)
	}
	// Everything was observed: nothing is left for a restart to report.
	r, stop = runAgent(t, cfg)
	stop()
	if got := r.since(0, func(x rec) bool { return x.s("vigil.origin") == "startup" }); len(got) > 0 {
		t.Errorf("changes left unreported after the storm: %v", got)
	}
}

// TestLostDeletionsRecovered: deletions whose records the kernel could not
// deliver (a 4 KiB ring buffer under an rm of a whole tree) are still
// reported, each file exactly once: live with its actor, or, after the
// events-lost record, re-read, found missing and reported with
// vigil.origin=recovered. A restart then finds nothing unreported.
func TestLostDeletionsRecovered(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	n := testutil.Scale(2000, 4)
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%05d", i)), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("lostdel.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
heartbeat = "0s"
[sensor]
ring_buffer_kib = 4
[coalesce]
window = "0s"
[output]
stdout = false
[[watch]]
path = %q
recursive = true
kind = "diff"
`, filepath.Join(dir, "state"), tree)))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := runAgent(t, cfg)
	sh(t, "cd "+tree+" && rm -f f*")
	deleted := func(x rec) bool {
		return x.s("event.action") == "deleted" && strings.HasPrefix(x.s("file.path"), tree+"/")
	}
	deadline := time.Now().Add(testutil.Timeout() * 2)
	for len(r.since(0, deleted)) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a count above n would be a double report
	stop()
	per := map[string]int{}
	origins := map[string]int{}
	for _, x := range r.since(0, deleted) {
		per[x.s("file.path")]++
		origins[x.s("vigil.origin")]++
		if x.s("vigil.origin") == "live" && x.s("process.name") != "rm" {
			t.Errorf("a live deletion without its actor: %s", x)
		}
	}
	t.Logf("%d files deleted: records by origin %v", n, origins)
	if r.find(func(x rec) bool { return x.s("event.action") == "events-lost" }) == nil {
		t.Fatalf("no events-lost record: the ring buffer never overflowed, so recovery was not exercised")
	}
	if origins["recovered"] == 0 {
		t.Errorf("records were lost but no deletion was recovered")
	}
	for i := 0; i < n; i++ {
		p := filepath.Join(tree, fmt.Sprintf("f%05d", i))
		if per[p] != 1 {
			t.Errorf("%s: %d deletion records, want exactly 1", p, per[p])
		}
	}
	r, stop = runAgent(t, cfg)
	stop()
	if got := r.since(0, func(x rec) bool { return x.s("vigil.origin") == "startup" }); len(got) > 0 {
		t.Errorf("deletions left unreported after the burst: %d startup records, first %s", len(got), got[0])
	}
}

// TestSelfTest: the startup self-test's record says success; with an
// operation the kernel cannot have seen, it fails, and SelfTestOnly returns
// ErrSelfTest.
func TestSelfTest(t *testing.T) {
	needAgent(t)
	r := recs.wait(t, 0, "self-test", func(x rec) bool { return x.s("event.action") == "self-test" })
	if r.s("event.outcome") != "success" || len(r.get("vigil.self_test.missing").([]any)) != 0 {
		t.Fatalf("self-test: %s", r)
	}
	dir := t.TempDir()
	cfg, err := config.Parse("selftest.toml", []byte(fmt.Sprintf("[agent]\nstate_dir = %q\n[output]\nstdout = false\n[[watch]]\npath = %q\n",
		filepath.Join(dir, "state"), filepath.Join(dir, "f"))))
	if err != nil {
		t.Fatal(err)
	}
	ok := newRecords()
	if err := runAgentForced(context.Background(), agent.Options{Config: cfg, Out: ok, Log: zerolog.Nop(),
		Key: []byte("0123456789abcdef0123456789abcdef"), SelfTestOnly: true}); err != nil {
		t.Fatalf("self-test only: %v", err)
	}
	ok.close()
	// A script that touches nothing: no record can come back.
	defer agent.SetSelfTest(`true "$1"`, 2*time.Second)()
	bad := newRecords()
	err = runAgentForced(context.Background(), agent.Options{Config: cfg, Out: bad, Log: zerolog.Nop(),
		Key: []byte("0123456789abcdef0123456789abcdef"), SelfTestOnly: true})
	bad.close()
	if !errors.Is(err, agent.ErrSelfTest) {
		t.Fatalf("failing self-test: %v, want ErrSelfTest", err)
	}
	f := bad.find(func(x rec) bool { return x.s("event.action") == "self-test" })
	if f == nil || f.s("event.outcome") != "failure" || f.s("event.kind") != "alert" {
		t.Errorf("failed self-test record: %v", f)
	}
}

// TestSelfTestStateDirSpace: a state_dir with a space (and a quote) in its
// path is one word to the self-test's shell: the self-test passes.
func TestSelfTestStateDirSpace(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	cfg, err := config.Parse("selftest.toml", []byte(fmt.Sprintf("[agent]\nstate_dir = %q\n[output]\nstdout = false\n[[watch]]\npath = %q\n",
		filepath.Join(dir, "state dir's"), filepath.Join(dir, "f"))))
	if err != nil {
		t.Fatal(err)
	}
	out := newRecords()
	err = runAgentForced(context.Background(), agent.Options{Config: cfg, Out: out, Log: zerolog.Nop(),
		Key: []byte("0123456789abcdef0123456789abcdef"), SelfTestOnly: true})
	out.close()
	if err != nil {
		t.Fatalf("self-test with a space in state_dir: %v", err)
	}
	r := out.find(func(x rec) bool { return x.s("event.action") == "self-test" })
	if r == nil || r.s("event.outcome") != "success" {
		t.Fatalf("self-test record: %v", r)
	}
}

// childConfigEnv makes the test binary run an agent on the named config,
// writing records to stdout, until it is killed.
const childConfigEnv = "VIGIL_AGENT_CHILD"

// childDropCapsEnv makes the child agent drop its capabilities as the vigil
// command does.
const childDropCapsEnv = "VIGIL_AGENT_CHILD_DROPCAPS"

func childAgent(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// SIGHUP reloads, as in the vigil command.
	handle := agent.NewHandle()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			handle.Reload(context.Background())
		}
	}()
	err = runAgentForced(context.Background(), agent.Options{Config: cfg, Out: os.Stdout, Log: zerolog.Nop(),
		Key: []byte("0123456789abcdef0123456789abcdef"), DropCapabilities: os.Getenv(childDropCapsEnv) == "1",
		Handle: handle, LoadConfig: func() (*config.Config, error) { return config.Load(path) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestKill9DuringStorm: an agent killed with SIGKILL in the middle of a
// write storm leaves a store that opens, and the next start reports what
// changed since the last record it wrote.
func TestKill9DuringStorm(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	os.WriteFile(pw, []byte(passwd0), 0o644)
	cfgPath := filepath.Join(dir, "vigil.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[agent]\nstate_dir = %q\n[coalesce]\nwindow = \"20ms\"\n[[watch]]\npath = %q\n",
		filepath.Join(dir, "state"), pw)), 0o600)
	exe, _ := os.Executable()
	child := exec.Command(exe)
	child.Env = append(os.Environ(), childConfigEnv+"="+cfgPath)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(testutil.Timeout() * 3)
	for ready := false; !ready; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child agent exited before agent-ready")
			}
			ready = strings.Contains(l, `"agent-ready"`)
		case <-deadline:
			child.Process.Kill()
			t.Fatal("child agent not ready")
		}
	}
	// A storm of user additions; the agent dies in the middle of it.
	n := testutil.Scale(4000, 40)
	storm := exec.Command("sh", "-c", fmt.Sprintf("i=0; while [ $i -lt %d ]; do echo u$i:x:$((2000+i)):100::/:/bin/sh >> %s; i=$((i+1)); done", n, pw))
	if err := storm.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once records are flowing.
	for seen := false; !seen; {
		select {
		case l := <-lines:
			seen = strings.Contains(l, `"user-added"`)
		case <-deadline:
			t.Fatal("no live record before the kill")
		}
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	storm.Wait()
	os.WriteFile(pw+".new", append(must(os.ReadFile(pw)), "zed:x:0:0::/root:/bin/sh\n"...), 0o644)
	os.Rename(pw+".new", pw)

	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Output.Stdout = false
	r, stop := runAgent(t, cfg) // fails the test if the store does not open
	stop()
	got := r.since(0, func(x rec) bool { return x.s("vigil.origin") == "startup" && x.s("file.path") == pw })
	if len(got) != 1 {
		t.Fatalf("want one startup record for passwd, got %v", got)
	}
	if hasChange(got[0], "user-added", "zed") == nil {
		t.Errorf("the change made after the kill is missing: %s", got[0])
	}
	last := fmt.Sprintf("u%d", n-1)
	if hasChange(got[0], "user-added", last) == nil {
		// The agent may have recorded the storm's end before dying: then
		// the last storm user is in the store already, which is fine only
		// if it was reported live; either way nothing may be lost.
		t.Logf("last storm user %s was recorded before the kill", last)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// startupRecs are the records a start wrote for changes made while vigil
// was down (vigil.origin startup).
func startupRecs(r *records) []rec {
	return r.since(0, func(x rec) bool { return x.s("vigil.origin") == "startup" })
}

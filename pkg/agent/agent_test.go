//go:build privileged

package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// One agent per test binary, watching a scratch root: starting the sensor
// under an emulated kernel takes seconds.
var (
	root    string
	recs    *records
	runErr  = make(chan error, 1)
	started error
)

const passwd0 = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/bash
`
const shadow0 = `root:$6$rootsalt$Qq5X0lKk8cJ0qV4jv6W2JtZQy9rQ2n9b9bXJYb9xQ3yQm6Qe1v2zQqQ9w2mQ8yQeQ1wQ2mQeQ1wQ2mQeQ1wQ2mQ:19700:0:99999:7:::
daemon:*:19700:0:99999:7:::
alice:$y$j9T$alicesalt$Zk3PqE0fLz2sXbM1vQ8nW4rT6yU9iO0pA2sD4fG6hJ8:19700:0:99999:7:::
`
const group0 = "root:x:0:\nsudo:x:27:alice\nalice:x:1000:\n"
const gshadow0 = "root:*::\nsudo:*::alice\nalice:!::\n"
const sudoers0 = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir sudoers.local\n"
const sshd0 = "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"

// The two secrets of shadow0: they must never appear in any output.
var secrets = []string{"Qq5X0lKk8cJ0qV4jv6W2JtZQy9rQ2n9b9bXJYb9xQ3yQm6Qe1v2zQqQ9w2mQ8y", "Zk3PqE0fLz2sXbM1vQ8nW4rT6yU9iO0pA2sD4fG6hJ8"}

func TestMain(m *testing.M) {
	if p := os.Getenv(childConfigEnv); p != "" {
		os.Exit(childAgent(p)) // a re-executed agent for the kill -9 test
	}
	if a := os.Getenv(childSyscallEnv); a != "" {
		os.Exit(childSyscall(a)) // a tool a guest lacks, as its syscalls (issue14_test.go)
	}
	if a := os.Getenv(fakeManagerEnv); a != "" {
		os.Exit(fakeManagerMain(a)) // a package manager's stand-in (package_test.go)
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	var err error
	root, err = os.MkdirTemp("", "vigil-agent-")
	if err != nil {
		panic(err)
	}
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			panic(err)
		}
	}
	write("etc/passwd", passwd0, 0o644)
	write("etc/shadow", shadow0, 0o640)
	write("etc/group", group0, 0o644)
	write("etc/gshadow", gshadow0, 0o640)
	write("etc/sudoers", sudoers0, 0o440)
	write("etc/sudoers.d/README", "# drop-ins\n", 0o440)
	write("etc/sudoers.local/10-ops", "%ops ALL=(ALL) /usr/bin/systemctl\n", 0o440)
	write("etc/ssh/sshd_config", sshd0, 0o644)
	write("etc/app/app.conf", "[db]\nhost = db1\n", 0o644)
	os.MkdirAll(filepath.Join(root, "home/alice/.ssh"), 0o700)
	os.MkdirAll(filepath.Join(root, "srv/tree"), 0o755)
	// A scratch dpkg root (package_test.go): its database and the trees
	// its packages install into.
	write("pkgroot/var/lib/dpkg/status", "", 0o644)
	for _, d := range []string{"pkgroot/var/lib/dpkg/info", "pkgroot/var/lib/dpkg/updates", "pkgroot/opt", "pkgroot/etc"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	cfgText := fmt.Sprintf(`
[agent]
state_dir = %[1]q
[coalesce]
window = "300ms"
[output]
stdout = false
[[watch]]
path = "%[2]s/etc/passwd"
[[watch]]
path = "%[2]s/etc/shadow"
[[watch]]
path = "%[2]s/etc/group"
[[watch]]
path = "%[2]s/etc/gshadow"
[[watch]]
path = "%[2]s/etc/sudoers"
[[watch]]
path = "%[2]s/etc/sudoers.d"
recursive = true
kind = "sudoers"
[[watch]]
path = "%[2]s/etc/ssh/sshd_config"
[[watch]]
path = "%[2]s/home/*/.ssh/authorized_keys"
[[watch]]
path = "%[2]s/etc/app/app.conf"
kind = "diff"
[[watch]]
path = "%[2]s/srv/tree"
recursive = true
exclude = ["*.tmp"]
[[expect]]
name = "expected-tool"
executable = "%[2]s/tools/*"
path = "%[2]s/srv/tree/expected/**"
[[watch]]
path = "%[2]s/pkgroot/opt"
recursive = true
[[watch]]
path = "%[2]s/pkgroot/etc"
recursive = true
exclude = ["*.dpkg-new", "*.dpkg-tmp"]
# packages.verify is on by default.
[packages]
# Long enough that a verdict a test keeps pending (TestPackageVerdictPending)
# stays pending however slow the machine; the others settle when dpkg has
# recorded its work.
settle = "40s"
root = "%[2]s/pkgroot"
dpkg_admindir = "%[2]s/pkgroot/var/lib/dpkg"
`, filepath.Join(root, "state"), root)
	cfg, err := config.Parse("agent_test.toml", []byte(cfgText))
	if err != nil {
		panic(err)
	}
	recs = newRecords()
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	log := zerolog.New(io.MultiWriter(os.Stderr, testutil.AuditWriter("log"))).Level(zerolog.WarnLevel)
	go func() {
		runErr <- runAgentForced(ctx, agent.Options{Config: cfg, Out: recs, Log: log, Key: []byte("0123456789abcdef0123456789abcdef"), Ready: ready})
	}()
	select {
	case <-ready:
	case err := <-runErr:
		started = fmt.Errorf("agent did not start: %v", err)
	case <-time.After(60 * time.Second):
		started = fmt.Errorf("agent not ready after 60s")
	}
	code := m.Run()
	cancel()
	if started == nil {
		if err := <-runErr; err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
			code = 1
		}
		recs.close()
		if recs.find(func(r rec) bool { return r.s("event.action") == "agent-stopped" }) == nil {
			fmt.Fprintln(os.Stderr, "no agent-stopped record")
			code = 1
		}
		// Secrets never leave the host: nothing the agent wrote may hold them.
		all := recs.raw()
		for _, s := range secrets {
			if strings.Contains(all, s) {
				fmt.Fprintln(os.Stderr, "a password hash appeared in the records")
				code = 1
			}
		}
	}
	// The secrets audit (make test-host) scans the store the agent left.
	if err := testutil.AuditTree("agent", filepath.Join(root, "state")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.RemoveAll(root)
	os.Exit(code)
}

func needAgent(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if started != nil {
		t.Fatal(started)
	}
}

// rec is one record, parsed.
type rec map[string]any

// get walks a dotted path.
func (r rec) get(path string) any {
	var cur any = map[string]any(r)
	for _, p := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (r rec) s(path string) string {
	v := r.get(path)
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// changes returns vigil.changes.
func (r rec) changes() []map[string]any {
	var out []map[string]any
	list, _ := r.get("vigil.changes").([]any)
	for _, c := range list {
		if m, ok := c.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (r rec) String() string {
	b, _ := json.Marshal(map[string]any(r))
	return string(b)
}

// records collects the agent's output, one JSON object per line.
type records struct {
	mu   sync.Mutex
	cond *sync.Cond
	list []rec
	buf  strings.Builder
	pw   *io.PipeWriter
	done chan struct{}
}

func newRecords() *records {
	r := &records{done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	pr, pw := io.Pipe()
	r.pw = pw
	audit := testutil.AuditWriter("records") // every byte, for the secrets audit
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			line := sc.Text()
			var m map[string]any
			err := json.Unmarshal([]byte(line), &m)
			r.mu.Lock()
			r.buf.WriteString(line + "\n")
			audit.Write([]byte(line + "\n"))
			if err != nil {
				m = map[string]any{"invalid-json": line}
			}
			r.list = append(r.list, rec(m))
			r.cond.Broadcast()
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *records) Write(p []byte) (int, error) { return r.pw.Write(p) }

// close waits until every record written has been parsed.
func (r *records) close() {
	r.pw.Close()
	<-r.done
}

func (r *records) raw() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func (r *records) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.list)
}

func (r *records) find(match func(rec) bool) rec {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.list {
		if match(x) {
			return x
		}
	}
	return nil
}

func (r *records) since(mark int, match func(rec) bool) []rec {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []rec
	for _, x := range r.list[mark:] {
		if match(x) {
			out = append(out, x)
		}
	}
	return out
}

// wait returns the first record after mark that matches, failing the test
// after a timeout.
func (r *records) wait(t *testing.T, mark int, what string, match func(rec) bool) rec {
	t.Helper()
	deadline := time.Now().Add(testutil.Timeout())
	timer := time.AfterFunc(testutil.Timeout(), func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for _, x := range r.list[mark:] {
			if match(x) {
				return x
			}
		}
		if time.Now().After(deadline) {
			var got []string
			for _, x := range r.list[mark:] {
				got = append(got, x.String())
			}
			t.Fatalf("no %s record; after the mark:\n%s", what, strings.Join(got, "\n"))
		}
		r.cond.Wait()
	}
}

func forPath(p, action string) func(rec) bool {
	return func(r rec) bool { return r.s("file.path") == p && r.s("event.action") == action }
}

func sh(t *testing.T, script string) int {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v: %s", script, err, out)
	}
	return cmd.Process.Pid
}

func hasChange(r rec, typ, name string) map[string]any {
	for _, c := range r.changes() {
		if c["type"] == typ && (name == "" || c["name"] == name) {
			return c
		}
	}
	return nil
}

func flagged(c map[string]any, flag string) bool {
	fl, _ := c["flags"].([]any)
	for _, f := range fl {
		if f == flag {
			return true
		}
	}
	return false
}

// TestReady: the startup record names the sensor and the watch set.
func TestReady(t *testing.T) {
	needAgent(t)
	r := recs.wait(t, 0, "agent-ready", func(r rec) bool { return r.s("event.action") == "agent-ready" })
	if r.s("vigil.sensor.object") == "" || r.s("vigil.sensor.why") == "" || r.get("vigil.sensor.hooks") == nil {
		t.Errorf("agent-ready lacks the sensor: %s", r)
	}
	if n, _ := r.get("vigil.watch.files").(float64); n < 8 {
		t.Errorf("agent-ready watches %v files, want at least 8: %s", n, r)
	}
}

// The tool-free subset: shell built-ins and coreutils (busybox in the
// guest), so it runs in every kernel of the matrix.

// TestAtomicReplaceAddsUser: the temp-file-and-rename that passwd tools do.
func TestAtomicReplaceAddsUser(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/passwd")
	mark := recs.mark()
	pid := sh(t, fmt.Sprintf("cp %[1]s %[1]s+ && echo 'mallory:x:0:0::/root:/bin/sh' >> %[1]s+ && mv %[1]s+ %[1]s", p))
	r := recs.wait(t, mark, "replaced passwd", forPath(p, "replaced"))
	c := hasChange(r, "user-added", "mallory")
	if c == nil || !flagged(c, "uid-0") {
		t.Fatalf("want user-added mallory flagged uid-0: %s", r)
	}
	if r.s("vigil.kind") != "passwd" || r.s("vigil.origin") != "live" {
		t.Errorf("kind/origin: %s", r)
	}
	// The actor is mv: a child of the shell this test ran, or the shell
	// itself where it execs its last command (busybox).
	if r.s("process.name") != "mv" || (r.s("process.parent.pid") != fmt.Sprint(pid) && r.s("process.pid") != fmt.Sprint(pid)) {
		t.Errorf("actor: want mv run by %d: %s", pid, r)
	}
	if r.s("user.id") != "0" || r.s("event.type") == "" || r.s("host.name") == "" {
		t.Errorf("ECS fields: %s", r)
	}
	if r.get("vigil.inode.old") == r.get("vigil.inode.new") {
		t.Errorf("a replace must name the old and the new inode: %s", r)
	}
}

// TestAppendIsCoalesced: a burst of appends is one record that counts them.
func TestAppendIsCoalesced(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/app/app.conf")
	mark := recs.mark()
	sh(t, fmt.Sprintf("for i in 1 2 3 4 5 6 7 8 9 10; do echo \"opt$i = $i\" >> %s; done", p))
	r := recs.wait(t, mark, "modified app.conf", forPath(p, "modified"))
	time.Sleep(500 * time.Millisecond) // longer than the window: a second record would be here by now
	all := recs.since(mark, forPath(p, "modified"))
	total := 0
	for _, x := range all {
		n, _ := x.get("vigil.writes").(float64)
		total += int(n)
	}
	if total != 10 {
		t.Errorf("%d records count %d writes, want 10 in all: %v", len(all), total, all)
	}
	if len(all) > 2 {
		t.Errorf("10 appends gave %d records: not coalesced", len(all))
	}
	c := hasChange(r, "lines-changed", "")
	if c == nil || !strings.Contains(fmt.Sprint(c["text"]), "+opt1 = 1") {
		t.Errorf("want a line diff adding opt1: %s", r)
	}
	actors, _ := r.get("vigil.actors").([]any)
	if len(actors) == 0 {
		t.Errorf("no actors: %s", r)
	}
}

// TestSedInPlaceSudoers: sed -i writes a temp file and renames it over.
func TestSedInPlaceSudoers(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/sudoers")
	mark := recs.mark()
	sh(t, fmt.Sprintf("sed -i 's/^%%sudo.*/%%sudo ALL=(ALL:ALL) NOPASSWD: ALL/' %s", p))
	r := recs.wait(t, mark, "replaced sudoers", forPath(p, "replaced"))
	c := hasChange(r, "sudo-rule-added", "")
	if c == nil || !flagged(c, "nopasswd") {
		t.Fatalf("want a NOPASSWD rule added: %s", r)
	}
	if hasChange(r, "sudo-rule-removed", "") == nil {
		t.Errorf("the old rule's removal is missing: %s", r)
	}
	if r.s("process.name") != "sed" {
		t.Errorf("actor %q, want sed", r.s("process.name"))
	}
}

// TestChmodChown: attribute changes are reported at once with the new values.
func TestChmodChown(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/shadow")
	mark := recs.mark()
	sh(t, "chmod 0644 "+p)
	r := recs.wait(t, mark, "chmod shadow", forPath(p, "attributes-changed"))
	if r.s("vigil.attributes.mode") != "0644" || r.s("file.mode") != "0644" || r.s("process.name") != "chmod" {
		t.Errorf("chmod record: %s", r)
	}
	mark = recs.mark()
	sh(t, "chown 1234:5678 "+p)
	r = recs.wait(t, mark, "chown shadow", forPath(p, "attributes-changed"))
	if r.s("vigil.attributes.uid") != "1234" || r.s("vigil.attributes.gid") != "5678" || r.s("file.uid") != "1234" {
		t.Errorf("chown record: %s", r)
	}
	sh(t, "chown 0:0 "+p+" && chmod 0640 "+p)
}

// TestCopyOverSSHDConfig: cp truncates and rewrites in place.
func TestCopyOverSSHDConfig(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/ssh/sshd_config")
	src := filepath.Join(t.TempDir(), "new")
	os.WriteFile(src, []byte("PermitRootLogin yes\nPasswordAuthentication no\n"), 0o644)
	mark := recs.mark()
	sh(t, fmt.Sprintf("cp %s %s", src, p))
	r := recs.wait(t, mark, "sshd_config change", func(r rec) bool {
		return r.s("file.path") == p && hasChange(r, "option-changed", "PermitRootLogin") != nil
	})
	c := hasChange(r, "option-changed", "PermitRootLogin")
	if !flagged(c, "root-login") || fmt.Sprint(c["new"]) != "map[value:yes]" {
		t.Errorf("want PermitRootLogin yes flagged root-login: %s", r)
	}
}

// TestGlobPicksUpNewFile: a new user's authorized_keys, created after start,
// matches the glob and is reported with its key.
func TestGlobPicksUpNewFile(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "home/alice/.ssh/authorized_keys")
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKcHyXhUqEzg5M4MJQ1HjTe0r4Z6CHk8mvwWQj7eA0Ib eve@attacker"
	mark := recs.mark()
	sh(t, fmt.Sprintf("echo '%s' > %s", key, p))
	r := recs.wait(t, mark, "created authorized_keys", forPath(p, "created"))
	if r.s("vigil.kind") != "authorized_keys" {
		t.Errorf("kind %q", r.s("vigil.kind"))
	}
	// The content lands with the create or in the write right after it.
	recs.wait(t, mark, "key-added", func(r rec) bool {
		return r.s("file.path") == p && hasChange(r, "key-added", "") != nil
	})
	mark = recs.mark()
	sh(t, "rm "+p)
	recs.wait(t, mark, "deleted authorized_keys", forPath(p, "deleted"))
}

// TestTreeCreateExclude: a new file deep in a recursive tree is reported;
// an excluded one is not.
func TestTreeCreateExclude(t *testing.T) {
	needAgent(t)
	dir := filepath.Join(root, "srv/tree/a/b/c")
	p := filepath.Join(dir, "index.html")
	mark := recs.mark()
	sh(t, fmt.Sprintf("mkdir -p %s && echo x > %s/skip.tmp && echo hello > %s", dir, dir, p))
	recs.wait(t, mark, "created index.html", forPath(p, "created"))
	mark2 := recs.mark()
	sh(t, "echo more >> "+p)
	recs.wait(t, mark2, "modified index.html", forPath(p, "modified"))
	if got := recs.since(mark, func(r rec) bool { return strings.HasSuffix(r.s("file.path"), "skip.tmp") }); len(got) > 0 {
		t.Errorf("excluded file reported: %v", got)
	}
}

// TestMalformedPasswd: a bad line is reported with its number, never a panic,
// and the other lines still diff.
func TestMalformedPasswd(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/passwd")
	mark := recs.mark()
	sh(t, fmt.Sprintf("echo 'broken:line' >> %s && echo 'carol:x:1001:1001::/home/carol:/bin/sh' >> %s", p, p))
	r := recs.wait(t, mark, "user carol", func(r rec) bool {
		return r.s("file.path") == p && hasChange(r, "user-added", "carol") != nil
	})
	probs, _ := r.get("vigil.problems").([]any)
	if len(probs) == 0 {
		t.Fatalf("no problem reported for the malformed line: %s", r)
	}
}

// Host-only: the shadow suite's own tools against the scratch root.
func TestShadowTools(t *testing.T) {
	needAgent(t)
	testutil.HostOnly(t, "needs useradd, usermod, userdel, groupadd")
	for _, tool := range []string{"useradd", "usermod", "userdel", "groupadd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (package passwd): run scripts/deps.sh", tool)
		}
	}
	pw := filepath.Join(root, "etc/passwd")
	sd := filepath.Join(root, "etc/shadow")
	gr := filepath.Join(root, "etc/group")
	steps := []struct {
		cmd   []string
		file  string
		typ   string
		name  string
		check func(t *testing.T, r rec, c map[string]any)
	}{
		{[]string{"useradd", "--root", root, "-u", "0", "-o", "bob"}, pw, "user-added", "bob", func(t *testing.T, r rec, c map[string]any) {
			if !flagged(c, "second-uid-0") {
				t.Errorf("a second uid 0 must be flagged: %v", c)
			}
		}},
		{[]string{"usermod", "--root", root, "-s", "/bin/false", "bob"}, pw, "user-modified", "bob", func(t *testing.T, r rec, c map[string]any) {
			if fmt.Sprint(c["new"]) != "map[shell:/bin/false]" {
				t.Errorf("shell change: %v", c)
			}
		}},
		{[]string{"usermod", "--root", root, "-p", "$6$newsalt$AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU", "bob"}, sd, "password-changed", "bob", func(t *testing.T, r rec, c map[string]any) {
			if strings.Contains(r.String(), "AbCdEfGhIjKlMnOpQrStUvWxYz") {
				t.Errorf("the hash leaked: %s", r)
			}
		}},
		{[]string{"userdel", "--root", root, "bob"}, pw, "user-removed", "bob", nil},
		{[]string{"groupadd", "--root", root, "ops"}, gr, "group-added", "ops", nil},
	}
	for _, st := range steps {
		mark := recs.mark()
		cmd := exec.Command(st.cmd[0], st.cmd[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", st.cmd, err, out)
		}
		r := recs.wait(t, mark, st.typ+" "+st.name, func(r rec) bool {
			return r.s("file.path") == st.file && hasChange(r, st.typ, st.name) != nil
		})
		if r.s("process.name") != st.cmd[0] || r.s("process.pid") != fmt.Sprint(cmd.Process.Pid) {
			t.Errorf("%s: actor %s (%s), want %s (%d)", st.typ, r.s("process.name"), r.s("process.pid"), st.cmd[0], cmd.Process.Pid)
		}
		if r.s("event.action") != "replaced" {
			t.Errorf("%s: action %s, want replaced (the tools rename a new file over)", st.typ, r.s("event.action"))
		}
		if st.check != nil {
			st.check(t, r, hasChange(r, st.typ, st.name))
		}
	}
	if strings.Contains(recs.raw(), "AbCdEfGhIjKlMnOpQrStUvWxYz") {
		t.Error("a password hash appeared in the records")
	}
}

// TestSudoersIncludeFollowed: a rule slipped into a directory that sudoers
// includes (@includedir), not configured as a watch, is seen.
func TestSudoersIncludeFollowed(t *testing.T) {
	needAgent(t)
	p := filepath.Join(root, "etc/sudoers.local/10-ops")
	mark := recs.mark()
	sh(t, fmt.Sprintf("echo 'eve ALL=(ALL) NOPASSWD: ALL' >> %s", p))
	r := recs.wait(t, mark, "rule in an included file", func(r rec) bool {
		return r.s("file.path") == p && hasChange(r, "sudo-rule-added", "eve") != nil
	})
	if !flagged(hasChange(r, "sudo-rule-added", "eve"), "nopasswd") {
		t.Errorf("want nopasswd: %s", r)
	}
}

// logLost logs the events-lost records written so far: a recovered record
// the test did not cause comes from the loss they report.
func logLost(t *testing.T, r *records) {
	t.Helper()
	for _, l := range strings.Split(r.raw(), "\n") {
		if strings.Contains(l, `"events-lost"`) {
			t.Logf("events-lost: %s", l)
		}
	}
}

// lostFileRecords matches an events-lost record that lost file records. One
// that counts only skipped runs of the programs that emit none (lineage,
// cgroup names: lost 0, docs/events.md) lost no change.
func lostFileRecords(x rec) bool {
	n, _ := x.get("vigil.lost").(float64)
	return x.s("event.action") == "events-lost" && n > 0
}

// logGaps logs the events-lost records that lost no file record.
func logGaps(t *testing.T, r *records) {
	t.Helper()
	for _, x := range r.since(0, func(x rec) bool { return x.s("event.action") == "events-lost" && !lostFileRecords(x) }) {
		t.Logf("a gap, no file record lost: %s", x)
	}
}

//go:build privileged

package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// shEnv runs a shell script with extra environment (paths no shell quoting
// could carry: newlines, quotes, invalid UTF-8).
func shEnv(t *testing.T, script string, env ...string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -c %q: %v: %s", script, err, out)
	}
}

// perByte is s with each invalid UTF-8 byte replaced by U+FFFD, as the
// records escape it (\ufffd) and a JSON decoder reads it.
func perByte(s string) string {
	var b strings.Builder
	for i, r := range s {
		if _, n := utf8.DecodeRuneInString(s[i:]); r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// noInvalidJSON fails if any line the agent wrote is not one JSON object
// in valid UTF-8.
func noInvalidJSON(t *testing.T, r *records) {
	t.Helper()
	if bad := r.find(func(x rec) bool { return x["invalid-json"] != nil }); bad != nil {
		t.Fatalf("a record is not valid JSON: %q", bad["invalid-json"])
	}
	if !utf8.ValidString(r.raw()) {
		t.Fatal("the records hold invalid UTF-8: not JSON for strict readers")
	}
}

// TestHostilePaths: what the people a FIM watches can do to it with names
// and file types. Names with newlines, quotes, escape sequences, invalid
// UTF-8 and a 4,000-byte path give valid JSON records with the path as it
// is; a path through a symlink loop is a not-watched record; a watched
// file replaced by a symlink to a shadow file is reported without reading
// the link's target; one replaced by a FIFO is reported without blocking;
// secrets written to a diff-watched file are redacted; after all of it the
// agent still reports.
func TestHostilePaths(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	app := filepath.Join(dir, "etc/app.conf")
	app2 := filepath.Join(dir, "etc/app2.conf")
	keys := filepath.Join(dir, "etc/keys.conf")
	shadow := filepath.Join(dir, "private/shadow")
	loop := filepath.Join(dir, "loop")
	for p, c := range map[string]string{
		app: "listen = 80\n", app2: "listen = 81\n", keys: "[keys]\n",
		shadow:                        "root:$6$salt$" + testutil.HostileShadowHash + ":19700:0:99999:7:::\nNOT-FOR-RECORDS\n",
		filepath.Join(tree, "README"): "tree\n",
	} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(loop, loop)
	cfg, err := config.Parse("hostile.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[coalesce]
window = "100ms"
[sensor]
max_depth = 32
[output]
stdout = false
[[watch]]
path = %q
recursive = true
kind = "diff"
[[watch]]
path = %q
kind = "diff"
[[watch]]
path = %q
kind = "diff"
[[watch]]
path = %q
kind = "diff"
[[watch]]
path = %q
`, filepath.Join(dir, "state"), tree, app, app2, keys, filepath.Join(loop, "x"))))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := runAgent(t, cfg)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()

	// The path through a symlink loop: one not-watched record at start.
	nw := r.wait(t, 0, "not-watched", func(x rec) bool { return x.s("event.action") == "not-watched" })
	if nw.s("vigil.not_watched.when") != "start" || nw.s("vigil.not_watched.count") != "1" ||
		!strings.Contains(nw.s("vigil.not_watched.errors"), "too many levels of symbolic links") {
		t.Errorf("not-watched record: %s", nw)
	}

	// Hostile names in a watched tree.
	long := tree
	for len(long) < 3900 {
		long = filepath.Join(long, strings.Repeat("d", 190))
	}
	long = filepath.Join(long, "long.conf")
	names := []string{
		filepath.Join(tree, "new\nline.conf"),
		filepath.Join(tree, `q"uo'te\.conf`),
		filepath.Join(tree, "esc\x1b[31mred\ttab.conf"),
		filepath.Join(tree, "bad\xff\xfeutf8.conf"),
		long,
	}
	if len(long) < 3900 || len(long) > 4095 {
		t.Fatalf("long path of %d bytes", len(long))
	}
	for _, p := range names {
		mark := r.mark()
		shEnv(t, `mkdir -p "$(dirname "$P")" && printf 'k = v\n' > "$P"`, "P="+p)
		want := perByte(p)
		got := r.wait(t, mark, fmt.Sprintf("created %q", p), func(x rec) bool {
			return x.s("event.action") == "created" && x.s("file.path") == want
		})
		if got.s("vigil.kind") != "diff" {
			t.Errorf("%q: %s", p, got)
		}
	}

	// A watched file replaced by a symlink to a shadow file: reported,
	// the target never read.
	mark := r.mark()
	shEnv(t, `ln -s "$S" "$P.tmp" && mv "$P.tmp" "$P"`, "S="+shadow, "P="+app)
	got := r.wait(t, mark, "app.conf replaced by a symlink", func(x rec) bool { return x.s("file.path") == app })
	if !strings.Contains(got.s("vigil.problems"), "symbolic link") {
		t.Errorf("no problem says the path is a symlink now: %s", got)
	}
	// A watched file replaced by a FIFO: reported, nothing blocks.
	mark = r.mark()
	shEnv(t, `mkfifo "$P.tmp" && mv "$P.tmp" "$P"`, "P="+app2)
	got = r.wait(t, mark, "app2.conf replaced by a FIFO", func(x rec) bool { return x.s("file.path") == app2 })
	if got.s("file.hash.sha256") != "" || !strings.HasPrefix(got.s("file.size"), "0") {
		t.Errorf("a FIFO read as a file: %s", got)
	}
	// A symlink loop made inside the tree: not a file to follow.
	shEnv(t, `ln -s l1 "$D/l2" && ln -s l2 "$D/l1"`, "D="+tree)

	// Secrets written to a diff-watched file are redacted.
	mark = r.mark()
	shEnv(t, `printf '%s\n' '-----BEGIN OPENSSH PRIVATE KEY-----' "$K" '-----END OPENSSH PRIVATE KEY-----' "password = $W" 'plain = visible' >> "$P"`,
		"K="+testutil.HostileKeyLine, "W="+testutil.HostilePassword, "P="+keys)
	got = r.wait(t, mark, "keys.conf modified", func(x rec) bool {
		return x.s("file.path") == keys && strings.Contains(x.s("vigil.changes"), "plain = visible")
	})
	if !strings.Contains(got.s("vigil.changes"), "REDACTED") {
		t.Errorf("no redaction: %s", got)
	}

	// Still alive and reporting.
	alive := filepath.Join(tree, "alive.conf")
	mark = r.mark()
	shEnv(t, `printf 'x = 1\n' > "$P"`, "P="+alive)
	r.wait(t, mark, "created alive.conf", forPath(alive, "created"))
	stop()
	stopped = true

	noInvalidJSON(t, r)
	raw := r.raw()
	for i, s := range append([]string{"NOT-FOR-RECORDS"}, testutil.Secrets...) {
		if strings.Contains(raw, s) {
			t.Errorf("secret #%d (0: the symlink target's content; then testutil.Secrets) reached the records", i)
		}
	}
}

// runWithHandle starts an agent with a Handle, for its Stats.
func runWithHandle(t *testing.T, cfg *config.Config) (*records, *agent.Handle, func()) {
	t.Helper()
	h := agent.NewHandle()
	r, stop := startAgent(t, agent.Options{Config: cfg, Handle: h})
	return r, h, stop
}

// TestLimits: a configuration of 100,000 paths (scaled in the emulated
// guests) and a watch map of 16 entries. What does not fit is one
// not-watched record at start that counts every path and says the map is
// full; a file created later in a watched tree that does not fit is a
// not-watched record too (and still reported); a 1 GiB (sparse) watched
// file is hashed whole and not parsed, and its record says so; the
// counters in Stats agree.
func TestLimits(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	big := filepath.Join(dir, "big.conf")
	many := filepath.Join(dir, "many")
	os.MkdirAll(many, 0o755)
	for i := 0; i < 40; i++ {
		os.MkdirAll(tree, 0o755)
		os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%02d", i)), []byte("x\n"), 0o644)
	}
	os.WriteFile(big, []byte("a = 1\n"), 0o644)
	n := testutil.Scale(100000, 20)
	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\nstate_dir = %q\n[sensor]\nmax_watches = 16\n[output]\nstdout = false\n", filepath.Join(dir, "state"))
	fmt.Fprintf(&b, "[[watch]]\npath = %q\nkind = \"diff\"\n[[watch]]\npath = %q\nrecursive = true\n", big, tree)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[[watch]]\npath = \"%s/p%06d\"\n", many, i)
	}
	cfg, err := config.Parse("limits.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Watch) != n+2 {
		t.Fatalf("%d watches parsed, want %d", len(cfg.Watch), n+2)
	}
	r, h, stop := runWithHandle(t, cfg)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	nw := r.wait(t, 0, "not-watched at start", func(x rec) bool { return x.s("event.action") == "not-watched" })
	count, _ := nw.get("vigil.not_watched.count").(float64)
	full, _ := nw.get("vigil.not_watched.map_full").(float64)
	listed, _ := nw.get("vigil.not_watched.errors").([]any)
	notListed, _ := nw.get("vigil.not_watched.not_listed").(float64)
	// Each missing path needs a name entry, each tree file an inode entry:
	// all but about 16 of each are refused.
	if int(count) < n-16 || full != count || len(listed) != 10 || int(notListed) != int(count)-10 ||
		nw.s("vigil.not_watched.map_capacity") != "16" || nw.s("event.kind") != "alert" ||
		!strings.Contains(nw.s("vigil.not_watched.remedy"), "sensor.max_watches") {
		t.Errorf("not-watched record at start (count %v of %d paths): %s", count, n, nw)
	}
	ready := r.wait(t, 0, "agent-ready", func(x rec) bool { return x.s("event.action") == "agent-ready" })
	_ = ready

	// A file created in the tree while the map is full.
	mark := r.mark()
	late := filepath.Join(tree, "late")
	shEnv(t, `printf 'y\n' > "$P"`, "P="+late)
	r.wait(t, mark, "not-watched while following", func(x rec) bool {
		return x.s("event.action") == "not-watched" && x.s("vigil.not_watched.when") == "follow"
	})
	// The file watched by its own rule grows to 1 GiB (sparse; scaled in
	// the guests, still over the 16 MiB parse limit).
	size := int64(testutil.Scale(1<<30, 16))
	mark = r.mark()
	shEnv(t, fmt.Sprintf(`printf 'b = 2\n' >> "$P" && truncate -s %d "$P"`, size), "P="+big)
	// Hashing 1 GiB holds the pipeline for seconds (twice: the write and
	// the truncate): wait longer than for other records.
	var got rec
	for deadline := time.Now().Add(2 * time.Minute); got == nil; time.Sleep(100 * time.Millisecond) {
		if l := r.since(mark, func(x rec) bool { return x.s("file.path") == big && x.get("file.size") == float64(size) }); len(l) > 0 {
			got = l[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("no record of big.conf at %d bytes within 2 minutes; its records: %v", size,
				r.since(0, func(x rec) bool { return x.s("file.path") == big }))
		}
	}
	if !strings.Contains(got.s("vigil.problems"), "parse limit") || len(got.s("file.hash.sha256")) != 64 ||
		len(got.changes()) != 0 {
		t.Errorf("a file over the parse limit: %s", got)
	}
	st, ok := h.Stats()
	if !ok {
		t.Fatal("no stats")
	}
	if st.Limits.NotWatched < uint64(count)+1 || st.Limits.WatchMapFull < uint64(full)+1 || st.Limits.Oversize == 0 ||
		st.Watch.MapCapacity != 16 {
		t.Errorf("stats: %+v, capacity %d", st.Limits, st.Watch.MapCapacity)
	}
	stop()
	stopped = true
	noInvalidJSON(t, r)
}

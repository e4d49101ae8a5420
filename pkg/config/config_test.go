package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmbeddedDefaultParses(t *testing.T) {
	c, err := Parse("default.toml", DefaultTOML())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Watch) < 10 {
		t.Fatalf("default watches %d entries", len(c.Watch))
	}
	want := []string{"/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d",
		"/etc/ssh/sshd_config", "/root/.ssh/authorized_keys", "/home/*/.ssh/authorized_keys", "/etc/ld.so.preload",
		"/etc/pam.d", "/etc/crontab", "/var/spool/cron/crontabs"}
	have := map[string]bool{}
	for _, w := range c.Watch {
		have[w.Path] = true
	}
	for _, p := range want {
		if !have[p] {
			t.Errorf("default does not watch %s", p)
		}
	}
	if c.Sensor.MaxDepth != 16 || c.Coalesce.Window.Duration != 200*time.Millisecond || !c.Output.Stdout {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestAllErrorsAtOnceWithLines(t *testing.T) {
	src := `[sensor]
hooks = "uprobe"
ring_buffer_kib = 1000
max_depth = "deep"
bogus = 1

[output.syslog]
address = "http://x"

[[watch]]
path = "/etc/passwd"

[[watch]]
path = "relative/path"
kind = "nope"
recursive = "yes"
extra = true
`
	_, err := Parse("bad.toml", []byte(src))
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"bad.toml:2: sensor.hooks: \"uprobe\" is not one of auto, lsm, fentry, kprobe, tracepoint",
		"bad.toml:3: sensor.ring_buffer_kib: 1000 must be a power of two",
		"bad.toml:4: sensor.max_depth: want an integer, got a string (\"deep\")",
		"bad.toml:5: sensor.bogus: unknown key",
		"bad.toml:8: output.syslog.address:",
		"bad.toml:14: watch.1.path: \"relative/path\" must be absolute",
		"bad.toml:15: watch.1.kind: \"nope\" is not one of",
		"bad.toml:16: watch.1.recursive: want true or false",
		"bad.toml:17: watch.1.extra: unknown key",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

func TestSyntaxErrorNamesLine(t *testing.T) {
	_, err := Parse("syn.toml", []byte("[sensor]\nhooks = \"kprobe\"\nmax_depth = = 3\n"))
	if err == nil || !strings.Contains(err.Error(), "syn.toml:3: TOML syntax") {
		t.Fatalf("got %v", err)
	}
}

func TestDropInsMerge(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "vigil.toml")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(main, "[sensor]\nmax_depth = 8\n[[watch]]\npath = \"/etc/passwd\"\n")
	write(filepath.Join(dir, "conf.d", "20-b.toml"), "[sensor]\nmax_depth = 12\n[[watch]]\npath = \"/etc/b\"\n")
	write(filepath.Join(dir, "conf.d", "10-a.toml"), "[sensor]\nmax_depth = 10\nhooks = \"kprobe\"\n[[watch]]\npath = \"/etc/a\"\n")
	write(filepath.Join(dir, "conf.d", "ignored.conf"), "garbage")
	c, err := Load(main)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sensor.MaxDepth != 12 || c.Sensor.Hooks != "kprobe" {
		t.Errorf("scalars: max_depth %d hooks %s, want 12 kprobe", c.Sensor.MaxDepth, c.Sensor.Hooks)
	}
	var paths []string
	for _, w := range c.Watch {
		paths = append(paths, w.Path)
	}
	if strings.Join(paths, ",") != "/etc/passwd,/etc/a,/etc/b" {
		t.Errorf("watch order %v", paths)
	}
	if !strings.HasSuffix(c.Watch[2].Source, "20-b.toml:3") {
		t.Errorf("source of drop-in entry: %q", c.Watch[2].Source)
	}
	write(filepath.Join(dir, "conf.d", "30-bad.toml"), "[sensor]\nmax_depth = 99\n")
	_, err = Load(main)
	if err == nil || !strings.Contains(err.Error(), "30-bad.toml:2: sensor.max_depth: 99 must be from 1 to 32") {
		t.Fatalf("drop-in error: %v", err)
	}
}

func TestLocateMultiline(t *testing.T) {
	src := "[diff]\nredact = [\n  \"password\\\\s*=\",\n  \"x = y\",\n]\nmax_bytes = 10\n[[watch]]\npath = \"/a\"\n[[watch]]\n  path = \"/b\"\n"
	lines := locate([]byte(src))
	for k, want := range map[string]int{"diff.redact": 2, "diff.max_bytes": 6, "watch.0.path": 8, "watch.1": 9, "watch.1.path": 10} {
		if lines[k] != want {
			t.Errorf("%s at line %d, want %d (all: %v)", k, lines[k], want, lines)
		}
	}
}

// TestWatchOwner: owner and group take a name (resolved on this host) or a
// number; anything else is an error naming its file, line and key.
func TestWatchOwner(t *testing.T) {
	src := `[[watch]]
path = "/srv/a"
owner = "root"
group = "root"

[[watch]]
path = "/srv/b"
owner = "4242"
group = "4343"

[[watch]]
path = "/srv/c"
`
	c, err := Parse("own.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	id := func(p *uint32) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	for i, want := range [][2]string{{"0", "0"}, {"4242", "4343"}, {"nil", "nil"}} {
		w := c.Watch[i]
		if got := [2]string{id(w.OwnerID), id(w.GroupID)}; got != want {
			t.Errorf("watch %d (%s): owner, group ids %v, want %v", i, w.Path, got, want)
		}
	}
	if c.Watch[1].Owner != "4242" || c.Watch[0].Group != "root" {
		t.Errorf("configured names not kept: %+v", c.Watch[:2])
	}
}

func TestWatchOwnerErrors(t *testing.T) {
	src := `[[watch]]
path = "/srv/a"
owner = "no-such-user-vigil"
group = "no-such-group-vigil"

[[watch]]
path = "/srv/b"
owner = 33
group = "-1"

[[watch]]
path = "/srv/c"
owner = "4294967295"
group = " root"
`
	_, err := Parse("own.toml", []byte(src))
	if err == nil {
		t.Fatal("bad owners accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`own.toml:3: watch.0.owner: no user "no-such-user-vigil" on this host (a numeric uid is accepted too)`,
		`own.toml:4: watch.0.group: no group "no-such-group-vigil" on this host (a numeric gid is accepted too)`,
		`own.toml:8: watch.1.owner: want a string, got an integer (33)`,
		`own.toml:9: watch.1.group: "-1" is not a valid gid (0 to 4294967294)`,
		`own.toml:13: watch.2.owner: "4294967295" is not a valid uid (0 to 4294967294)`,
		`own.toml:14: watch.2.group: " root" is not a group name or gid`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n"); n != 6 {
		t.Errorf("%d problems reported, want 6:\n%s", n, msg)
	}
}

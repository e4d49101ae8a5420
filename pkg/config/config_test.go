package config

import (
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
hooks = "fentry"
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
		"bad.toml:2: sensor.hooks: \"fentry\" is not one of auto, kprobe, tracepoint",
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

package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// problemLine is one line of a configuration error after the count line.
var problemLine = regexp.MustCompile(`^  fuzz\.toml(:(\d+))?: `)

// FuzzConfig feeds arbitrary text to the configuration parser, alone and as
// a drop-in over the embedded default. Properties: no panic, no hang (each
// input must finish within seconds); a text is either accepted with every
// validated value in range, or refused with an error that counts its
// problems and names the file (and a line that exists) for each; the same
// text always gives the same answer.
func FuzzConfig(f *testing.F) {
	f.Add(defaultTOML)
	examples, _ := filepath.Glob("../../examples/*.toml")
	for _, e := range examples {
		if b, err := os.ReadFile(e); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"[[watch]]\npath = \"/etc/passwd\"\nkind = \"shadow\"\n",
		"[sensor]\nmax_watches = 15\nring_buffer_kib = 3\n[[watch]]\npath = \"rel\"\n",
		"[diff]\nredact = [\"(\", \"ok\"]\n[[watch]]\npath = \"/a/[\"\nexclude = [\"[\"]\n",
		"[coalesce]\nwindow = \"forever\"\n[output.syslog]\naddress = \"ftp://x\"\nfacility = \"nope\"\n",
		"[[watch]]\npath = \"/x\"\n[[watch]]\npath = 7\nrecursive = \"yes\"\nunknown = 1\n",
		"[agent\nstate_dir = ",
		"a = \"\"\"\n\n\n",
		"[[watch]]\npath = \"/etc/\\u0000\\n\\\"x\"\n",
		"[watch]\npath = \"/x\"\n",
		"[[watch.x]]\n[[watch]]\npath='/a'\n[agent]\nqueue_size=-9223372036854775808\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		timer := time.AfterFunc(10*time.Second, func() {
			select {
			case <-done:
			default:
				panic("config parsing took over 10s: a hang")
			}
		})
		defer timer.Stop()
		defer close(done)
		cfg, err := Parse("fuzz.toml", data)
		checkParsed(t, data, cfg, err)
		cfg2, err2 := Parse("fuzz.toml", data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err == nil && len(cfg.Watch) != len(cfg2.Watch) {
			t.Fatal("not deterministic")
		}
		// As a drop-in over the default: merging must not panic either.
		merged, err := parse([]source{{name: "(embedded default)", data: defaultTOML}, {name: "fuzz.toml", data: data}})
		if err == nil {
			checkValid(t, merged)
		} else if !strings.Contains(err.Error(), "problem(s) in the configuration:") {
			t.Fatalf("merged: unclear error %q", err)
		}
	})
}

func checkParsed(t *testing.T, data []byte, cfg *Config, err error) {
	t.Helper()
	if err == nil {
		if cfg == nil {
			t.Fatal("no error and no configuration")
		}
		checkValid(t, cfg)
		return
	}
	if cfg != nil {
		t.Fatal("an error and a configuration")
	}
	lines := strings.Split(err.Error(), "\n")
	n, convErr := strconv.Atoi(strings.TrimSuffix(lines[0], " problem(s) in the configuration:"))
	if convErr != nil || n != len(lines)-1 || n == 0 {
		t.Fatalf("the error does not count its problems: %q", err)
	}
	maxLine := strings.Count(string(data), "\n") + 1
	for _, l := range lines[1:] {
		if !printableLine(l) {
			t.Fatalf("a problem with raw control bytes or invalid UTF-8: %q", l)
		}
		m := problemLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("a problem that does not name the file: %q", l)
		}
		if m[2] != "" {
			if ln, _ := strconv.Atoi(m[2]); ln < 1 || ln > maxLine {
				t.Fatalf("a problem on line %d of a %d-line file: %q", ln, maxLine, l)
			}
		}
	}
}

// checkValid asserts what validate promises of an accepted configuration.
func checkValid(t *testing.T, c *Config) {
	t.Helper()
	s := c.Sensor
	if s.RingBufferKiB < 4 || s.RingBufferKiB&(s.RingBufferKiB-1) != 0 || s.MaxWatches < 16 || s.MaxWatches > 1<<24 ||
		s.MaxDepth < 1 || s.MaxDepth > 32 || c.Agent.QueueSize < 16 || c.Diff.MaxBytes < 256 ||
		c.Coalesce.Window.Duration < 0 || c.Coalesce.Window.Duration > 10*time.Second {
		t.Fatalf("accepted out-of-range values: %+v", c)
	}
	if len(c.Watch) == 0 {
		t.Fatal("accepted a configuration that watches nothing")
	}
	for _, w := range c.Watch {
		if !filepath.IsAbs(w.Path) {
			t.Fatalf("accepted a relative path %q", w.Path)
		}
	}
	for _, r := range c.Diff.Redact {
		if _, err := regexp.Compile(r); err != nil {
			t.Fatalf("accepted a bad pattern %q", r)
		}
	}
}

func printableLine(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return false
		}
	}
	return true
}

package config

import (
	"strings"
	"testing"
	"time"
)

const expectWatch = `[[watch]]
path = "/etc/passwd"
`

func TestExpectRules(t *testing.T) {
	src := expectWatch + `
[[expect]]
name = "apt window"
package_manager = "dpkg"
path = "/usr/**"
window = "Sat 02:00-04:00"

[[expect]]
name = "builder"
executable = "/usr/local/bin/build-*"
user = "0"
container = "docker"
`
	c, err := Parse("e.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Expect) != 2 || len(c.Warnings) != 0 {
		t.Fatalf("rules %+v warnings %v", c.Expect, c.Warnings)
	}
	a, b := c.Expect[0], c.Expect[1]
	if a.Name != "apt window" || a.PackageManager != "dpkg" || a.Win == nil || a.Win.Start != 120 || a.Win.End != 240 ||
		!a.Win.Days[time.Saturday] || a.Win.Days[time.Sunday] || a.Source != "e.toml:4" {
		t.Errorf("first rule: %+v (window %+v)", a, a.Win)
	}
	if b.UserID == nil || *b.UserID != 0 || b.Container != "docker" || b.Source != "e.toml:10" {
		t.Errorf("second rule: %+v", b)
	}
}

// A malformed rule is an error naming its key and line; every problem at once.
func TestExpectErrors(t *testing.T) {
	src := expectWatch + `
[[expect]]
path = "/etc/*"

[[expect]]
name = "twice"
path = "relative"

[[expect]]
name = "twice"
executable = "/bin/[x"
window = "Someday 02:00-04:00"

[[expect]]
name = "late"
path = "/x"
window = "Sat 25:00-26:00"
user = "no-such-user-vigil"
package_manager = "Not A Manager"
matches = "everything"
`
	_, err := Parse("bad.toml", []byte(src))
	if err == nil {
		t.Fatal("malformed rules accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"bad.toml:4: expect.0.name: missing",
		"bad.toml:9: expect.1.path: \"relative\" must be an absolute path",
		"bad.toml:12: expect.2.name: \"twice\" is already the name of the rule at bad.toml:7",
		"bad.toml:13: expect.2.executable: bad glob",
		"bad.toml:14: expect.2.window: \"Someday 02:00-04:00\": \"Someday\" is not a weekday",
		"bad.toml:19: expect.3.window: \"Sat 25:00-26:00\": \"25:00\" is not a time of day",
		"bad.toml:20: expect.3.user:",
		"bad.toml:21: expect.3.package_manager: \"Not A Manager\"",
		"bad.toml:22: expect.3.matches: unknown key",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

// A rule without a matcher marks every change expected: a warning naming
// its line, not an error.
func TestExpectMatchesEverythingWarns(t *testing.T) {
	src := expectWatch + `
[[expect]]
name = "all"

[[expect]]
name = "weekend"
window = "Sat,Sun 00:00-24:00"

[[expect]]
name = "fine"
path = "/srv/**"
`
	c, err := Parse("w.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.Error())
	}
	want := []string{
		`w.toml:4: expect.0: rule "all" has no matcher (package_manager, executable, user, container, path): it marks every change expected`,
		`w.toml:7: expect.1: rule "weekend" has only a time window (package_manager, executable, user, container, path): it marks every change expected`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseWindow(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse("Mon 2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	// 2026-12-05 is a Saturday.
	for _, c := range []struct {
		window string
		in     []string
		out    []string
	}{
		{"Sat 02:00-04:00", []string{"Sat 2026-12-05 02:00", "Sat 2026-12-05 03:59"},
			[]string{"Sat 2026-12-05 01:59", "Sat 2026-12-05 04:00", "Sun 2026-12-06 03:00", "Fri 2026-12-04 03:00"}},
		{"Mon-Fri 22:00-06:00", []string{"Mon 2026-11-30 22:00", "Tue 2026-12-01 05:59", "Sat 2026-12-05 05:00", "Fri 2026-12-04 23:30"},
			[]string{"Mon 2026-11-30 05:00", "Sat 2026-12-05 22:00", "Wed 2026-12-02 06:00", "Wed 2026-12-02 12:00"}},
		{"Fri-Mon 00:00-24:00", []string{"Fri 2026-12-04 00:00", "Sun 2026-12-06 23:59", "Mon 2026-12-07 12:00"},
			[]string{"Tue 2026-12-01 12:00", "Thu 2026-12-03 23:59"}},
		{"03:00-03:30", []string{"Wed 2026-12-02 03:00", "Sun 2026-12-06 03:29"}, []string{"Wed 2026-12-02 03:30"}},
		{"* 23:00-01:00", []string{"Wed 2026-12-02 00:30", "Wed 2026-12-02 23:30"}, []string{"Wed 2026-12-02 01:00"}},
	} {
		w, err := ParseWindow(c.window)
		if err != nil {
			t.Fatalf("%q: %v", c.window, err)
		}
		for _, s := range c.in {
			if !w.Contains(at(s)) {
				t.Errorf("%q does not contain %s", c.window, s)
			}
		}
		for _, s := range c.out {
			if w.Contains(at(s)) {
				t.Errorf("%q contains %s", c.window, s)
			}
		}
	}
	for _, bad := range []string{"", "Sat", "Sat 02:00", "Sat 2:00-04:00", "Sat 02:00-02:00", "Sat 24:00-02:00",
		"Sat 02:60-03:00", "Sat Sun 02:00-03:00", "Satx 01:00-02:00", "Mon-Xyz 01:00-02:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMatchGlob(t *testing.T) {
	for _, c := range []struct {
		glob, path string
		want       bool
	}{
		{"/etc/**", "/etc/a/b", true},
		{"/etc/**", "/etc/a", true},
		{"/etc/**", "/etc", false},
		{"/etc/**", "/etcx/a", false},
		{"/home/*/**", "/home/bob/.ssh/authorized_keys", true},
		{"/home/*/**", "/home/bob", false},
		{"/etc/*.conf", "/etc/a.conf", true},
		{"/etc/*.conf", "/etc/x/a.conf", false},
		{"/**", "/anything/at/all", true},
	} {
		got, err := MatchGlob(c.glob, c.path)
		if err != nil || got != c.want {
			t.Errorf("MatchGlob(%q, %q) = %v, %v; want %v", c.glob, c.path, got, err, c.want)
		}
	}
}

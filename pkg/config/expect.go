package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Expect is one [[expect]] rule: a change it matches is expected. A match
// lowers the record's event.severity and names the rule
// (vigil.expected.rule); no rule ever suppresses a record. Every matcher
// given must match (and); a rule with none matches every change and is a
// configuration warning.
type Expect struct {
	// Name names the rule in records; required, unique.
	Name string `toml:"name"`
	// PackageManager matches a change made below a package manager (the
	// kernel's lineage mark, vigil.package.manager): a manager's name as
	// records give it ("dpkg", "rpm", "apt", ...: the manager at the root
	// of the writer's process tree), or "any".
	PackageManager string `toml:"package_manager"`
	// Executable is a glob matched against the writer's executable path
	// (process.executable).
	Executable string `toml:"executable"`
	// User is the writer's user (user.id, the real uid): a name, or a
	// numeric uid as a string.
	User string `toml:"user"`
	// Container matches the writer's container (container.id or
	// container.runtime), or "any" for any container.
	Container string `toml:"container"`
	// Path is a glob matched against the changed file's path; a final
	// "/**" matches everything below the directory.
	Path string `toml:"path"`
	// Window limits the rule to a change window (ParseWindow), in the
	// host's local time.
	Window string `toml:"window"`

	// UserID is User resolved on this host when the configuration was
	// read; Win is Window parsed. Nil when not given.
	UserID *uint32 `toml:"-"`
	Win    *Window `toml:"-"`
	// Source is where the rule was defined ("file:line").
	Source string `toml:"-"`
}

// Matchers says whether the rule has any matcher besides its window.
func (e *Expect) Matchers() bool {
	return e.PackageManager != "" || e.Executable != "" || e.User != "" || e.Container != "" || e.Path != ""
}

// Window is a weekly change window: on the given days, from Start to End
// (local time); an End at or before Start runs past midnight into the
// next day.
type Window struct {
	// Days holds the weekdays a window starts on.
	Days [7]bool
	// Start and End are minutes after midnight.
	Start, End int
	text       string
}

func (w *Window) String() string { return w.text }

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow reads "[DAYS ]HH:MM-HH:MM": DAYS is a comma-separated list
// of weekdays (Mon, Tue, ..., Sun) and ranges of them ("Mon-Fri"), or "*"
// or nothing for every day.
//
//	"Sat 02:00-04:00"  "Mon-Fri 22:00-06:00"  "Sat,Sun 00:00-24:00"  "03:00-03:30"
func ParseWindow(s string) (*Window, error) {
	w := &Window{text: s}
	fields := strings.Fields(s)
	var days, span string
	switch len(fields) {
	case 1:
		days, span = "*", fields[0]
	case 2:
		days, span = fields[0], fields[1]
	default:
		return nil, fmt.Errorf("%q: want \"[DAYS ]HH:MM-HH:MM\" (e.g. \"Sat 02:00-04:00\")", s)
	}
	if days == "*" {
		for i := range w.Days {
			w.Days[i] = true
		}
	} else {
		for _, part := range strings.Split(days, ",") {
			from, to, isRange := strings.Cut(part, "-")
			a, ok := weekdays[strings.ToLower(from)]
			if !ok {
				return nil, fmt.Errorf("%q: %q is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", s, from)
			}
			b := a
			if isRange {
				if b, ok = weekdays[strings.ToLower(to)]; !ok {
					return nil, fmt.Errorf("%q: %q is not a weekday (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", s, to)
				}
			}
			for d := a; ; d = (d + 1) % 7 {
				w.Days[d] = true
				if d == b {
					break
				}
			}
		}
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return nil, fmt.Errorf("%q: want a time span HH:MM-HH:MM", s)
	}
	var err error
	if w.Start, err = clock(from, false); err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	if w.End, err = clock(to, true); err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	if w.Start == w.End {
		return nil, fmt.Errorf("%q: an empty window", s)
	}
	return w, nil
}

var clockRE = regexp.MustCompile(`^([0-9]{2}):([0-9]{2})$`)

// clock reads HH:MM as minutes after midnight; 24:00 only as an end.
func clock(s string, end bool) (int, error) {
	m := clockRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	if mi > 59 || h > 24 || h == 24 && (mi != 0 || !end) {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return h*60 + mi, nil
}

// Contains says whether t (in its own location) falls in the window.
func (w *Window) Contains(t time.Time) bool {
	min := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if w.Start < w.End {
		return w.Days[day] && min >= w.Start && min < w.End
	}
	// Past midnight: the evening part on a window day, the morning part
	// on the day after one.
	if w.Days[day] && min >= w.Start {
		return true
	}
	return w.Days[(day+6)%7] && min < w.End
}

var managerName = regexp.MustCompile(`^[a-z][a-z0-9+._-]{0,31}$`)

// validateExpect checks the [[expect]] rules: errors for what cannot work,
// warnings for a rule that matches every change.
func validateExpect(c *Config, root *node, bad func(path []string, format string, args ...any)) {
	names := map[string]string{}
	for i := range c.Expect {
		e := &c.Expect[i]
		p := []string{"expect", strconv.Itoa(i)}
		if e.Name == "" {
			bad(append(p, "name"), "missing: a rule needs a name (records say which rule matched)")
		} else if prev, dup := names[e.Name]; dup {
			bad(append(p, "name"), "%q is already the name of the rule at %s", e.Name, prev)
		} else {
			names[e.Name] = root.where(p)
		}
		if m := e.PackageManager; m != "" && m != "any" && !managerName.MatchString(m) {
			bad(append(p, "package_manager"), "%q: want a package manager's name as records give it (dpkg, rpm, apt, ...) or \"any\"", m)
		}
		for _, g := range []struct{ key, v string }{{"executable", e.Executable}, {"path", e.Path}} {
			if g.v == "" {
				continue
			}
			if !strings.HasPrefix(g.v, "/") {
				bad(append(p, g.key), "%q must be an absolute path or glob", g.v)
			} else if _, err := matchGlob(g.v, ""); err != nil {
				bad(append(p, g.key), "bad glob %q: %v", g.v, err)
			}
		}
		if e.User != "" {
			if id, err := LookupUser(e.User); err != nil {
				bad(append(p, "user"), "%v", err)
			} else {
				e.UserID = &id
			}
		}
		if e.Window != "" {
			if w, err := ParseWindow(e.Window); err != nil {
				bad(append(p, "window"), "%v", err)
			} else {
				e.Win = w
			}
		}
		e.Source = root.where(p)
		if !e.Matchers() {
			what := "no matcher"
			if e.Window != "" {
				what = "only a time window"
			}
			c.Warnings = append(c.Warnings, &Error{Where: root.where(p), Key: strings.Join(p, "."),
				Msg: fmt.Sprintf("rule %q has %s (package_manager, executable, user, container, path): it marks every change expected", e.Name, what)})
		}
	}
}

// MatchGlob matches a path against a glob as filepath.Match does, where a
// final "/**" matches everything below the directory before it.
func MatchGlob(glob, path string) (bool, error) { return matchGlob(glob, path) }

func matchGlob(glob, path string) (bool, error) {
	dir, below := strings.CutSuffix(glob, "/**")
	if !below {
		return filepath.Match(glob, path)
	}
	if _, err := filepath.Match(dir, ""); err != nil {
		return false, err
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] != '/' || i == len(path)-1 {
			continue
		}
		if ok, err := filepath.Match(dir, path[:i]); err != nil || ok {
			return ok, err
		}
	}
	return dir == "" && strings.HasPrefix(path, "/") && len(path) > 1, nil
}

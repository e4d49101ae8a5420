// Package expect decides whether a change is expected: the [[expect]]
// rules of the configuration (config.Expect) against a record's file,
// writer and time. A match lowers the record's severity and names the
// rule; nothing here ever drops a record.
package expect

import (
	"time"

	"github.com/vigil-fim/vigil/pkg/config"
)

// Change is what the rules look at: the changed file and who changed it,
// as the record gives them.
type Change struct {
	Path string
	// Package is the package manager the writer runs below (the root of
	// its lineage, vigil.package.manager); "" when none.
	Package string
	// Exe is the writer's executable path.
	Exe string
	UID uint32
	// ContainerID and Runtime are the writer's container (container.id,
	// container.runtime); "" when not in one.
	ContainerID, Runtime string
	// At is when the change was made.
	At time.Time
}

// Rules are the configuration's rules, in order.
type Rules struct {
	rules []config.Expect
	loc   *time.Location
}

// New returns the rules of a configuration. Windows are read in loc (nil:
// the host's local time).
func New(rules []config.Expect, loc *time.Location) *Rules {
	if loc == nil {
		loc = time.Local
	}
	return &Rules{rules: append([]config.Expect(nil), rules...), loc: loc}
}

// Match returns the first rule the change matches, or nil.
func (r *Rules) Match(c Change) *config.Expect {
	if r == nil {
		return nil
	}
	for i := range r.rules {
		if r.matches(&r.rules[i], c) {
			return &r.rules[i]
		}
	}
	return nil
}

func (r *Rules) matches(e *config.Expect, c Change) bool {
	if m := e.PackageManager; m != "" {
		if c.Package == "" || m != "any" && m != c.Package {
			return false
		}
	}
	if e.Executable != "" {
		if ok, _ := config.MatchGlob(e.Executable, c.Exe); !ok || c.Exe == "" {
			return false
		}
	}
	if e.UserID != nil && *e.UserID != c.UID {
		return false
	}
	if k := e.Container; k != "" {
		if c.ContainerID == "" || k != "any" && k != c.ContainerID && k != c.Runtime {
			return false
		}
	}
	if e.Path != "" {
		if ok, _ := config.MatchGlob(e.Path, c.Path); !ok {
			return false
		}
	}
	if e.Win != nil && !e.Win.Contains(c.At.In(r.loc)) {
		return false
	}
	return true
}

package agent

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/expect"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// The event.severity scale (21, 47, 73, 99: low, medium, high, critical).
// A change record without event.severity is medium; an expected change is
// one step lower than it would be: low, or medium for ownership drift.
const (
	severityLow    = 21
	severityMedium = 47
)

// packageManagerOf is the package manager at the root of the writer's
// process tree (vigil.package.manager, the kernel's lineage mark), "" when
// the writer runs below none: the package_manager matcher of [[expect]]
// rules reads it.
func packageManagerOf(p sensor.Process) string {
	return p.Package.Manager
}

// expectedRule returns the [[expect]] rule a live change matches, or nil.
func (r *recorder) expectedRule(ch watch.Change, e *sensor.Event, cg actorCgroup, at time.Time) *config.Expect {
	if r.expect == nil {
		return nil
	}
	return r.expect.Match(expect.Change{
		Path: ch.File.Path, Package: packageManagerOf(e.Proc), Exe: e.Proc.Exe, UID: e.Proc.UID,
		ContainerID: cg.info.ID, Runtime: cg.info.Runtime, At: at,
	})
}

// expectedSeverity lowers a record's severity one step for an expected
// change (drift: from high to medium; any other change: from medium to low).
func expectedSeverity(drift bool) func(*zerolog.Event) {
	s := severityLow
	if drift {
		s = severityMedium
	}
	return func(d *zerolog.Event) { d.Int("severity", s) }
}

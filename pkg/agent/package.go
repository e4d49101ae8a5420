package agent

import (
	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// markedActor is the record's actor below a package manager, if any: the
// burst's last writer when it is marked, else its first marked actor.
func markedActor(b *burst) *sensor.Event {
	if b == nil {
		return nil
	}
	if b.last != nil && b.last.Proc.Package.Marked() {
		return b.last
	}
	for _, e := range b.actors {
		if e.Proc.Package.Marked() {
			return e
		}
	}
	return nil
}

// packageDict is vigil.package: the package manager the change was made
// under (the kernel's lineage), with what the package database says of
// the new content where it was checked (v is nil when it was not).
func packageDict(e *sensor.Event, v *verdict) *zerolog.Event {
	p := e.Proc.Package
	d := zerolog.Dict().Str("manager", p.Manager).Uint32("root_pid", p.RootPID).Bool("script", p.Script)
	if v != nil {
		if v.name != "" {
			d.Str("name", v.name)
		}
		if v.version != "" {
			d.Str("version", v.version)
		}
		d.Str("verified", string(v.result))
		if v.problem != "" {
			d.Str("problem", v.problem)
		}
	}
	return d
}

// verdict is a package database's word on a file's new content.
type verdict struct {
	name, version string
	result        verifyResult
	problem       string // why it could not be checked, when it could not
}

type verifyResult string

const (
	verifyMatch       verifyResult = "match"
	verifyMismatch    verifyResult = "mismatch"
	verifyNotPackaged verifyResult = "not-packaged"
	verifyConffile    verifyResult = "conffile"
	verifyUnknown     verifyResult = "unknown"
)

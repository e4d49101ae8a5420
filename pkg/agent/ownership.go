package agent

import (
	"github.com/rs/zerolog"

	"github.com/vigil-fim/vigil/pkg/attrs"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/consumer"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/watch"
)

// Why a change is ownership drift (vigil.ownership.reasons).
const (
	driftActor = "actor" // made by a process whose effective uid is not the owner
	driftOwner = "owner" // the file is owned by another uid after the change
	driftGroup = "group" // the file has another gid after the change
	// driftACL: an ACL now grants write to a user other than the owner
	// (or a group other than the entry's group): a chown by other means.
	driftACL = "acl-write"
)

// ownership is a change checked against its [[watch]] entry's owner and
// group (config.Watch.OwnerID, GroupID).
type ownership struct {
	expectedUID, expectedGID *uint32
	// actualUID and actualGID are the file's after the change: nil when it
	// is gone.
	actualUID, actualGID *uint32
	// actorUID is the effective uid of the process that made the change
	// (of the first one not the owner, for a coalesced burst): nil when no
	// actor is known (recovered, startup).
	actorUID *uint32
	reasons  []string
	// aclWrite are the new ACL write grants that are drift ("user:<uid>",
	// "group:<gid>").
	aclWrite []string
}

// aclGrants adds the drift of an ACL change that grants write to a named
// user other than w's owner (when w has one), or to a named group other
// than w's group (when w has one), like a chown to them. o may be nil (w
// names neither).
func (o *ownership) aclGrants(w *config.Watch, c *attrs.Changes) {
	if o == nil || c == nil {
		return
	}
	if g := c.WriteGrants(w.OwnerID, w.GroupID); len(g) > 0 {
		o.aclWrite = g
		o.reasons = append(o.reasons, driftACL)
	}
}

func (o *ownership) drift() bool { return len(o.reasons) > 0 }

// checkOwnership checks a change to a file under w by actors (none when
// unknown) that left the file owned by uid:gid (nil when gone). It returns
// nil when w names no owner and no group.
func checkOwnership(w *config.Watch, actors []sensor.Process, uid, gid *uint32) *ownership {
	if w == nil || (w.OwnerID == nil && w.GroupID == nil) {
		return nil
	}
	o := &ownership{expectedUID: w.OwnerID, expectedGID: w.GroupID, actualUID: uid, actualGID: gid}
	for i := range actors {
		euid := actors[i].EUID
		if o.actorUID == nil || (w.OwnerID != nil && euid != *w.OwnerID && *o.actorUID == *w.OwnerID) {
			o.actorUID = &euid
		}
	}
	if w.OwnerID != nil {
		if o.actorUID != nil && *o.actorUID != *w.OwnerID {
			o.reasons = append(o.reasons, driftActor)
		}
		if uid != nil && *uid != *w.OwnerID {
			o.reasons = append(o.reasons, driftOwner)
		}
	}
	if w.GroupID != nil && gid != nil && *gid != *w.GroupID {
		o.reasons = append(o.reasons, driftGroup)
	}
	return o
}

// dict is vigil.ownership.
func (o *ownership) dict() *zerolog.Event {
	d := zerolog.Dict().Bool("drift", o.drift()).Strs("reasons", append([]string{}, o.reasons...))
	opt := func(key string, v *uint32) {
		if v != nil {
			d.Uint32(key, *v)
		}
	}
	opt("expected_uid", o.expectedUID)
	opt("expected_gid", o.expectedGID)
	opt("actual_uid", o.actualUID)
	opt("actual_gid", o.actualGID)
	opt("actor_uid", o.actorUID)
	if len(o.aclWrite) > 0 {
		d.Strs("acl_write", o.aclWrite)
	}
	return d
}

// ruleOf is the [[watch]] entry a file is watched under.
func ruleOf(f *watch.File) *config.Watch {
	if f == nil || f.Rule == nil {
		return nil
	}
	return &f.Rule.Watch
}

// burstActors are the processes that made a change (every distinct one of
// a coalesced burst).
func burstActors(b *burst) []sensor.Process {
	out := make([]sensor.Process, 0, len(b.actors))
	for _, e := range b.actors {
		out = append(out, e.Proc)
	}
	return out
}

// ownerAfter is the file's owner and group after a change: as read right
// after it, or, when the file could not be read, as a chown set them.
func ownerAfter(info *consumer.FileInfo, e *sensor.Event) (uid, gid *uint32) {
	if info != nil {
		u, g := info.UID, info.GID
		return &u, &g
	}
	if e != nil && e.Op == sensor.OpSetattr {
		if e.Arg1&attrUID != 0 {
			u := e.AttrUID
			uid = &u
		}
		if e.Arg1&attrGID != 0 {
			g := e.AttrGID
			gid = &g
		}
	}
	return uid, gid
}

// driftSeverity is event.severity of a drift record: "high" on the scale
// tamper-detected's 99 ("critical") comes from (21, 47, 73, 99).
const driftSeverity = 73

// driftKind is a change record's event.kind, and its event.severity when
// it is drift.
func driftKind(o *ownership) (string, []func(*zerolog.Event)) {
	if o == nil || !o.drift() {
		return "event", nil
	}
	return "alert", []func(*zerolog.Event){func(d *zerolog.Event) { d.Int("severity", driftSeverity) }}
}

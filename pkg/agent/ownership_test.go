package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

func u32(v uint32) *uint32 { return &v }

// TestCheckOwnership: which changes under an owned entry are drift, and why.
func TestCheckOwnership(t *testing.T) {
	owned := &config.Watch{Path: "/srv/app", Owner: "app", OwnerID: u32(4242), Group: "app", GroupID: u32(4343)}
	ownerOnly := &config.Watch{Path: "/srv/app", Owner: "app", OwnerID: u32(4242)}
	groupOnly := &config.Watch{Path: "/srv/app", Group: "app", GroupID: u32(4343)}
	proc := func(euid uint32) sensor.Process { return sensor.Process{PID: 7, UID: euid, EUID: euid} }
	for _, tc := range []struct {
		name     string
		w        *config.Watch
		actors   []sensor.Process
		uid, gid *uint32
		reasons  []string
		actor    *uint32
	}{
		{"write by the owner", owned, []sensor.Process{proc(4242)}, u32(4242), u32(4343), nil, u32(4242)},
		{"create by root", owned, []sensor.Process{proc(0)}, u32(0), u32(0), []string{"actor", "owner", "group"}, u32(0)},
		{"chown away by the owner's own process", owned, []sensor.Process{proc(4242)}, u32(1), u32(4343), []string{"owner"}, u32(4242)},
		{"chgrp away", owned, []sensor.Process{proc(4242)}, u32(4242), u32(0), []string{"group"}, u32(4242)},
		{"write by root to a file still owned", owned, []sensor.Process{proc(0)}, u32(4242), u32(4343), []string{"actor"}, u32(0)},
		// setuid to the owner: the effective uid decides.
		{"effective uid is the owner", owned, []sensor.Process{{UID: 1000, EUID: 4242}}, u32(4242), u32(4343), nil, u32(4242)},
		{"real uid is the owner", owned, []sensor.Process{{UID: 4242, EUID: 0}}, u32(4242), u32(4343), []string{"actor"}, u32(0)},
		{"burst: the owner then root", owned, []sensor.Process{proc(4242), proc(0), proc(1000)}, u32(4242), u32(4343), []string{"actor"}, u32(0)},
		{"deleted by root (no file after)", owned, []sensor.Process{proc(0)}, nil, nil, []string{"actor"}, u32(0)},
		{"deleted by the owner", owned, []sensor.Process{proc(4242)}, nil, nil, nil, u32(4242)},
		{"no actor known, owned", owned, nil, u32(4242), u32(4343), nil, nil},
		{"no actor known, not owned", owned, nil, u32(0), u32(4343), []string{"owner"}, nil},
		{"owner only: any group", ownerOnly, []sensor.Process{proc(4242)}, u32(4242), u32(0), nil, u32(4242)},
		{"group only: any actor", groupOnly, []sensor.Process{proc(0)}, u32(0), u32(4343), nil, u32(0)},
		{"group only: wrong group", groupOnly, []sensor.Process{proc(0)}, u32(0), u32(0), []string{"group"}, u32(0)},
	} {
		o := checkOwnership(tc.w, tc.actors, tc.uid, tc.gid)
		if o == nil {
			t.Errorf("%s: no check", tc.name)
			continue
		}
		if !reflect.DeepEqual(o.reasons, tc.reasons) || o.drift() != (len(tc.reasons) > 0) {
			t.Errorf("%s: reasons %q drift %t, want %q", tc.name, o.reasons, o.drift(), tc.reasons)
		}
		if !reflect.DeepEqual(o.actorUID, tc.actor) {
			t.Errorf("%s: actor uid %v, want %v", tc.name, o.actorUID, tc.actor)
		}
	}
	if o := checkOwnership(&config.Watch{Path: "/etc/passwd"}, []sensor.Process{proc(0)}, u32(0), u32(0)); o != nil {
		t.Errorf("an entry with no owner checked: %+v", o)
	}
	if o := checkOwnership(nil, nil, nil, nil); o != nil {
		t.Errorf("no entry checked: %+v", o)
	}
}

// TestOwnershipRecord: the vigil.ownership object as a record carries it.
func TestOwnershipRecord(t *testing.T) {
	owned := &config.Watch{Path: "/srv/app", OwnerID: u32(4242), GroupID: u32(4343)}
	var buf bytes.Buffer
	r := newRecorder(&buf, "h", "", nil)
	o := checkOwnership(owned, []sensor.Process{{EUID: 0}}, u32(0), u32(4343))
	r.out.Log().Dict("ownership", o.dict()).Send()
	o = checkOwnership(owned, nil, nil, nil)
	r.out.Log().Dict("ownership", o.dict()).Send()
	dec := json.NewDecoder(&buf)
	for _, want := range []string{
		`{"drift":true,"reasons":["actor","owner"],"expected_uid":4242,"expected_gid":4343,"actual_uid":0,"actual_gid":4343,"actor_uid":0}`,
		`{"drift":false,"reasons":[],"expected_uid":4242,"expected_gid":4343}`,
	} {
		var got struct{ Ownership json.RawMessage }
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if string(got.Ownership) != want {
			t.Errorf("vigil.ownership %s, want %s", got.Ownership, want)
		}
	}
}

// TestOwnerAfter: the file's owner as read, else as a chown set it.
func TestOwnerAfter(t *testing.T) {
	e := &sensor.Event{Op: sensor.OpSetattr, Arg1: attrUID, AttrUID: 5, AttrGID: 6}
	uid, gid := ownerAfter(nil, e)
	if uid == nil || *uid != 5 || gid != nil {
		t.Errorf("chown of uid only, file gone: %v %v", uid, gid)
	}
	e = &sensor.Event{Op: sensor.OpWrite}
	if uid, gid := ownerAfter(nil, e); uid != nil || gid != nil {
		t.Errorf("write, file gone: %v %v", uid, gid)
	}
}

// TestDriftKind: drift is an alert with event.severity 73; the rest are
// plain events.
func TestDriftKind(t *testing.T) {
	owned := &config.Watch{OwnerID: u32(1)}
	var buf bytes.Buffer
	r := newRecorder(&buf, "h", "", nil)
	for _, o := range []*ownership{nil, checkOwnership(owned, nil, u32(1), nil), checkOwnership(owned, nil, u32(0), nil)} {
		kind, more := driftKind(o)
		r.begin(time.Unix(0, 0), "created", []string{"file"}, []string{"creation"}, kind, more...).Send()
	}
	dec := json.NewDecoder(&buf)
	for i, want := range []string{"event/0", "event/0", "alert/73"} {
		var got struct {
			Event struct {
				Kind     string
				Severity int
			}
		}
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprintf("%s/%d", got.Event.Kind, got.Event.Severity); s != want {
			t.Errorf("record %d: kind/severity %s, want %s", i, s, want)
		}
	}
}

package consumer

import (
	"strings"
)

// privilegedGroups are the groups whose membership grants root or root-like
// access; changes to them (and to any group with gid 0) get the "privileged"
// flag.
var privilegedGroups = map[string]bool{
	"root": true, "sudo": true, "wheel": true, "adm": true,
	"shadow": true, "docker": true, "disk": true,
}

// groupConsumer parses /etc/group: name:password:gid:member,member...
//
// Blank lines and '#' comments are skipped; NIS compat lines ('+'/'-') are
// kept with the "nis" flag and not validated. Other lines without exactly 4
// fields or with a non-numeric gid are reported and skipped. Members are a
// set (order and whitespace around commas do not matter). The password
// field of /etc/group is not stored (gshadow covers group passwords).
type groupConsumer struct{}

type groupEntry struct {
	Name    string   `json:"name"`
	GID     string   `json:"gid"`
	Members []string `json:"members"`
	NIS     bool     `json:"nis,omitempty"`
	Line    int      `json:"line"`
}

type groupState struct {
	stateHeader
	Groups []groupEntry `json:"groups"`
}

// Kind implements Consumer.
func (groupConsumer) Kind() Kind { return KindGroup }

// splitMembers splits a comma-separated member list into a trimmed list.
func splitMembers(s string) []string {
	out := []string{}
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (groupConsumer) Parse(in Input) (State, []Problem, error) {
	st := &groupState{Groups: []groupEntry{}}
	if in.Content == nil {
		return absentState(marshalState(KindGroup, true, st))
	}
	var probs problems
	seen := map[string]int{}
	for _, l := range entries(in.Content) {
		probs.checkUTF8(l)
		f := strings.Split(l.text, ":")
		nis := f[0] != "" && (f[0][0] == '+' || f[0][0] == '-')
		g := groupEntry{Name: f[0], NIS: nis, Line: l.num, Members: []string{}}
		switch {
		case nis:
			if len(f) > 2 {
				g.GID = f[2]
			}
			if len(f) > 3 {
				g.Members = splitMembers(f[3])
			}
			if len(f) > 4 {
				probs.add(l.num, "NIS entry has %d colon-separated fields, at most 4 expected", len(f))
			}
		case len(f) != 4:
			probs.add(l.num, "expected 4 colon-separated fields, found %d; line skipped", len(f))
			continue
		case f[0] == "":
			probs.add(l.num, "empty group name; line skipped")
			continue
		default:
			gid, ok := parseID(f[2])
			if !ok {
				probs.add(l.num, "gid is not a decimal number in 0..4294967295; line skipped")
				continue
			}
			g.GID = gid
			g.Members = splitMembers(f[3])
		}
		var dup bool
		if g.Name, dup = uniqueKey(seen, g.Name); dup {
			probs.add(l.num, "duplicate group name; later entry kept as name#N")
		}
		st.Groups = append(st.Groups, g)
	}
	s, err := marshalState(KindGroup, false, st)
	return s, probs, err
}

func groupFlags(name, gid string, nis bool) []string {
	var f []string
	if base, _, _ := strings.Cut(name, "#"); privilegedGroups[base] || (gid == "0" && !nis) {
		f = append(f, "privileged")
	}
	if nis {
		f = append(f, "nis")
	}
	return flagSet(f...)
}

// memberChanges reports one change per added and removed member (or admin).
func memberChanges(group string, line int, flags []string, oldM, newM []string, addType, rmType, field string) []Change {
	var out []Change
	added, removed := setDiff(oldM, newM)
	for _, m := range added {
		out = append(out, Change{Type: addType, Name: group, New: map[string]string{field: m}, Flags: flags, Line: line})
	}
	for _, m := range removed {
		out = append(out, Change{Type: rmType, Name: group, Old: map[string]string{field: m}, Flags: flags, Line: line})
	}
	return out
}

// Diff implements Consumer (see the package documentation for absent files).
func (groupConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[groupState](KindGroup, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	var out []Change
	pairByKey(p.Groups, s.Groups, func(g *groupEntry) string { return g.Name }, func(o, g *groupEntry) {
		flags := groupFlags(g.Name, g.GID, g.NIS)
		if o == nil {
			out = append(out, Change{Type: ChangeGroupAdded, Name: g.Name, New: map[string]string{"gid": g.GID, "members": strings.Join(g.Members, ",")}, Flags: flags, Line: g.Line})
			return
		}
		if o.GID != g.GID {
			out = append(out, Change{Type: ChangeGroupModified, Name: g.Name, Fields: []string{"gid"}, Old: map[string]string{"gid": o.GID}, New: map[string]string{"gid": g.GID}, Flags: flags, Line: g.Line})
		}
		out = append(out, memberChanges(g.Name, g.Line, flags, o.Members, g.Members, ChangeGroupMemberAdded, ChangeGroupMemberRemoved, "member")...)
	}, func(g *groupEntry) {
		out = append(out, Change{Type: ChangeGroupRemoved, Name: g.Name, Old: map[string]string{"gid": g.GID, "members": strings.Join(g.Members, ",")}, Flags: groupFlags(g.Name, g.GID, g.NIS), Line: g.Line})
	})
	return out, nil
}

// gshadowConsumer parses /etc/gshadow: name:password:admin,admin:member,member.
//
// Same line rules as group (4 fields, comments and blank lines skipped,
// duplicates as "name#2"); no NIS handling. The password is kept only as its
// class ("empty", "locked" for '!'/'*' prefixes, "hash") plus a keyed
// fingerprint of a hash.
type gshadowConsumer struct{ key []byte }

type gshadowEntry struct {
	Name    string   `json:"name"`
	PW      string   `json:"pw"`
	PWFP    string   `json:"pwfp,omitempty"`
	Admins  []string `json:"admins"`
	Members []string `json:"members"`
	Line    int      `json:"line"`
}

type gshadowState struct {
	stateHeader
	Groups []gshadowEntry `json:"groups"`
}

// Kind implements Consumer.
func (gshadowConsumer) Kind() Kind { return KindGshadow }

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (c gshadowConsumer) Parse(in Input) (State, []Problem, error) {
	st := &gshadowState{Groups: []gshadowEntry{}}
	if in.Content == nil {
		return absentState(marshalState(KindGshadow, true, st))
	}
	var probs problems
	seen := map[string]int{}
	for _, l := range entries(in.Content) {
		probs.checkUTF8(l)
		f := strings.Split(l.text, ":")
		if len(f) != 4 {
			probs.add(l.num, "expected 4 colon-separated fields, found %d; line skipped", len(f))
			continue
		}
		if f[0] == "" {
			probs.add(l.num, "empty group name; line skipped")
			continue
		}
		if looksLikeHash(f[0]) || anyLooksLikeHash(splitMembers(f[2])) || anyLooksLikeHash(splitMembers(f[3])) {
			probs.add(l.num, "a name field looks like a password hash; line skipped")
			continue
		}
		g := gshadowEntry{Admins: splitMembers(f[2]), Members: splitMembers(f[3]), Line: l.num}
		g.PW, g.PWFP = pwClass(c.key, f[1])
		if g.PW == "x" { // "x" is not a valid hash either
			g.PW, g.PWFP = "hash", fingerprint(c.key, f[1])
		}
		var dup bool
		if g.Name, dup = uniqueKey(seen, f[0]); dup {
			probs.add(l.num, "duplicate group name; later entry kept as name#N")
		}
		st.Groups = append(st.Groups, g)
	}
	s, err := marshalState(KindGshadow, false, st)
	return s, probs, err
}

// Diff implements Consumer (see the package documentation for absent files).
func (c gshadowConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[gshadowState](KindGshadow, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	var out []Change
	pairByKey(p.Groups, s.Groups, func(g *gshadowEntry) string { return g.Name }, func(o, g *gshadowEntry) {
		flags := groupFlags(g.Name, "", false)
		if o == nil {
			out = append(out, Change{Type: ChangeGroupAdded, Name: g.Name, New: map[string]string{"admins": strings.Join(g.Admins, ","), "members": strings.Join(g.Members, ",")}, Flags: flagSet(append(flags, pwFlag(g.PW))...), Line: g.Line})
			return
		}
		if o.PW != g.PW || o.PWFP != g.PWFP {
			out = append(out, Change{Type: ChangeGroupPasswordChanged, Name: g.Name, Fields: []string{"password"}, Flags: flagSet(append(flags, pwFlag(g.PW))...), Line: g.Line})
		}
		out = append(out, memberChanges(g.Name, g.Line, flags, o.Admins, g.Admins, ChangeGroupAdminAdded, ChangeGroupAdminRemoved, "admin")...)
		out = append(out, memberChanges(g.Name, g.Line, flags, o.Members, g.Members, ChangeGroupMemberAdded, ChangeGroupMemberRemoved, "member")...)
	}, func(g *gshadowEntry) {
		out = append(out, Change{Type: ChangeGroupRemoved, Name: g.Name, Old: map[string]string{"admins": strings.Join(g.Admins, ","), "members": strings.Join(g.Members, ",")}, Flags: groupFlags(g.Name, "", false), Line: g.Line})
	})
	return out, nil
}

// pwFlag flags an empty group password (newgrp then lets members in without
// a password; usually a mistake or tampering).
func pwFlag(class string) string {
	if class == "empty" {
		return "empty-password"
	}
	return ""
}

func anyLooksLikeHash(names []string) bool {
	for _, n := range names {
		if looksLikeHash(n) {
			return true
		}
	}
	return false
}

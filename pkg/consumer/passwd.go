package consumer

import (
	"strconv"
	"strings"
)

// passwdConsumer parses /etc/passwd: name:pw:uid:gid:gecos:home:shell.
//
// Blank lines and lines starting with '#' are skipped (glibc ignores them).
// NIS compat lines ("+", "+name", "+@netgroup", "-name"...) are kept as
// entries named by their first field, with the "nis" flag, and are not
// validated (their fields may be empty). Other lines with a field count other
// than 7 or a uid/gid that is not a 32-bit decimal number are reported as
// Problems and skipped. A duplicate user name is reported and kept as
// "name#2" (getpwnam would return the first).
//
// The password field is never stored: only its class ("x", "empty",
// "locked" or "hash") and, for a hash, a keyed fingerprint.
type passwdConsumer struct{ key []byte }

type passwdUser struct {
	Name  string `json:"name"`
	PW    string `json:"pw"`
	PWFP  string `json:"pwfp,omitempty"`
	UID   string `json:"uid"`
	GID   string `json:"gid"`
	Gecos string `json:"gecos"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
	NIS   bool   `json:"nis,omitempty"`
	Line  int    `json:"line"`
}

type passwdState struct {
	stateHeader
	Users []passwdUser `json:"users"`
}

// Kind implements Consumer.
func (passwdConsumer) Kind() Kind { return KindPasswd }

// pwClass classifies a passwd/gshadow password field without keeping it.
func pwClass(key []byte, pw string) (class, fp string) {
	switch {
	case pw == "x":
		return "x", ""
	case pw == "":
		return "empty", ""
	case pw[0] == '!' || pw[0] == '*':
		return "locked", ""
	default:
		return "hash", fingerprint(key, pw)
	}
}

// parseID parses a uid or gid as glibc would accept it, canonicalized.
func parseID(s string) (string, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(n, 10), true
}

func isComment(s string) bool {
	t := strings.TrimLeft(s, " \t")
	return t == "" || t[0] == '#'
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (c passwdConsumer) Parse(in Input) (State, []Problem, error) {
	st := &passwdState{Users: []passwdUser{}}
	if in.Content == nil {
		return absentState(marshalState(KindPasswd, true, st))
	}
	var probs problems
	seen := map[string]int{}
	for _, l := range entries(in.Content) {
		probs.checkUTF8(l)
		f := strings.Split(l.text, ":")
		if f[0] != "" && (f[0][0] == '+' || f[0][0] == '-') {
			u := passwdUser{Name: f[0], NIS: true, Line: l.num}
			get := func(i int) string {
				if i < len(f) {
					return f[i]
				}
				return ""
			}
			u.PW, u.PWFP = pwClass(c.key, get(1))
			u.UID, u.GID, u.Gecos, u.Home, u.Shell = get(2), get(3), get(4), get(5), get(6)
			if len(f) > 7 {
				probs.add(l.num, "NIS entry has %d colon-separated fields, at most 7 expected", len(f))
			}
			var dup bool
			if u.Name, dup = uniqueKey(seen, u.Name); dup {
				probs.add(l.num, "duplicate NIS entry")
			}
			st.Users = append(st.Users, u)
			continue
		}
		if len(f) != 7 {
			probs.add(l.num, "expected 7 colon-separated fields, found %d; line skipped", len(f))
			continue
		}
		if f[0] == "" {
			probs.add(l.num, "empty user name; line skipped")
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			probs.add(l.num, "uid or gid is not a decimal number in 0..4294967295; line skipped")
			continue
		}
		u := passwdUser{UID: uid, GID: gid, Gecos: f[4], Home: f[5], Shell: f[6], Line: l.num}
		u.PW, u.PWFP = pwClass(c.key, f[1])
		var dup bool
		if u.Name, dup = uniqueKey(seen, f[0]); dup {
			probs.add(l.num, "duplicate user name; later entry kept as name#N")
		}
		st.Users = append(st.Users, u)
	}
	s, err := marshalState(KindPasswd, false, st)
	return s, probs, err
}

// absentState adapts marshalState's result to Parse's for an absent file.
func absentState(s State, err error) (State, []Problem, error) { return s, nil, err }

func (u passwdUser) fields() map[string]string {
	return map[string]string{"uid": u.UID, "gid": u.GID, "gecos": u.Gecos, "home": u.Home, "shell": u.Shell}
}

// pwFlags flags the password field; in a NIS compat line an empty field
// means "from NIS", not an empty password.
func (u passwdUser) pwFlags() []string {
	if u.NIS {
		return nil
	}
	switch u.PW {
	case "empty":
		return []string{"empty-password"}
	case "hash":
		return []string{"password-in-passwd"}
	}
	return nil
}

// Diff implements Consumer (see the package documentation for absent files).
func (c passwdConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[passwdState](KindPasswd, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	uid0 := 0
	for _, u := range s.Users {
		if u.UID == "0" && !u.NIS {
			uid0++
		}
	}
	uidFlags := func(u passwdUser) []string {
		if u.UID != "0" || u.NIS {
			return nil
		}
		var f []string
		if u.Name != "root" {
			f = append(f, "uid-0")
		}
		if uid0 > 1 {
			f = append(f, "second-uid-0")
		}
		return f
	}
	nis := func(u passwdUser) string {
		if u.NIS {
			return "nis"
		}
		return ""
	}
	var out []Change
	pairByKey(p.Users, s.Users, func(u *passwdUser) string { return u.Name }, func(o, up *passwdUser) {
		u := *up
		if o == nil {
			flags := append(uidFlags(u), u.pwFlags()...)
			out = append(out, Change{Type: ChangeUserAdded, Name: u.Name, New: u.fields(), Flags: flagSet(append(flags, nis(u))...), Line: u.Line})
			return
		}
		if fields, ov, nv := fieldDiff(o.fields(), u.fields()); fields != nil {
			var flags []string
			if o.UID != "0" {
				flags = uidFlags(u)
			}
			out = append(out, Change{Type: ChangeUserModified, Name: u.Name, Fields: fields, Old: ov, New: nv, Flags: flagSet(append(flags, nis(u))...), Line: u.Line})
		}
		if o.PW != u.PW || o.PWFP != u.PWFP {
			out = append(out, Change{Type: ChangePasswordFieldChanged, Name: u.Name, Fields: []string{"password"}, Flags: flagSet(append(u.pwFlags(), nis(u))...), Line: u.Line})
		}
	}, func(u *passwdUser) {
		out = append(out, Change{Type: ChangeUserRemoved, Name: u.Name, Old: u.fields(), Flags: flagSet(nis(*u)), Line: u.Line})
	})
	return out, nil
}

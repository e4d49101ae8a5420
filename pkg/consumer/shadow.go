package consumer

import (
	"regexp"
	"strings"
)

// shadowConsumer parses /etc/shadow:
// name:hash:lastchg:min:max:warn:inactive:expire:reserved.
//
// Blank lines and '#' comments are skipped. A line with fewer than 2 fields
// is reported and skipped; a line with 2 to 8 or more than 9 fields is
// reported but kept (glibc and PAM accept such lines: the password still
// counts), missing aging fields being empty. A non-numeric aging field is
// reported and recorded as "invalid" (never as written: on a shifted line it
// could be the hash). A line whose name field looks like a hash is reported
// and skipped. Duplicates are kept as "name#2".
//
// The hash is never stored: the state keeps its algorithm, whether it is
// locked ('!' prefix) or empty, and hex(HMAC-SHA256(key, hash))[:16] of the
// hash without its '!' prefixes, so locking does not look like a new password.
type shadowConsumer struct{ key []byte }

var agingFields = []string{"lastchg", "min", "max", "warn", "inactive", "expire"}

type shadowUser struct {
	Name      string            `json:"name"`
	Algorithm string            `json:"algorithm"`
	Locked    bool              `json:"locked,omitempty"`
	Empty     bool              `json:"empty,omitempty"`
	FP        string            `json:"fp,omitempty"`
	Aging     map[string]string `json:"aging"`
	Line      int               `json:"line"`
}

type shadowState struct {
	stateHeader
	Users []shadowUser `json:"users"`
}

// Kind implements Consumer.
func (shadowConsumer) Kind() Kind { return KindShadow }

// hashAlgorithm names the crypt(5) algorithm of a hash (without '!' prefix).
func hashAlgorithm(h string) string {
	prefixes := []struct{ p, name string }{
		{"$y$", "yescrypt"}, {"$gy$", "gost-yescrypt"}, {"$7$", "scrypt"},
		{"$6$", "sha512crypt"}, {"$5$", "sha256crypt"},
		{"$2b$", "bcrypt"}, {"$2y$", "bcrypt"}, {"$2a$", "bcrypt"}, {"$2x$", "bcrypt"},
		{"$1$", "md5crypt"}, {"$sha1$", "sha1crypt"}, {"$md5", "sunmd5"}, {"$3$", "nthash"},
	}
	for _, p := range prefixes {
		if strings.HasPrefix(h, p.p) {
			return p.name
		}
	}
	switch {
	case h == "":
		return "none"
	case h[0] == '*':
		return "none"
	case h[0] == '_' && len(h) == 20:
		return "bsdicrypt"
	case len(h) == 13 && strings.Trim(h, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == "":
		return "descrypt"
	case h[0] == '$':
		return "unknown"
	}
	return "invalid"
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (c shadowConsumer) Parse(in Input) (State, []Problem, error) {
	st := &shadowState{Users: []shadowUser{}}
	if in.Content == nil {
		return absentState(marshalState(KindShadow, true, st))
	}
	var probs problems
	seen := map[string]int{}
	for _, l := range entries(in.Content) {
		probs.checkUTF8(l)
		f := strings.Split(l.text, ":")
		if len(f) < 2 || f[0] == "" {
			probs.add(l.num, "expected 9 colon-separated fields with a user name, found %d; line skipped", len(f))
			continue
		}
		if looksLikeHash(f[0]) {
			probs.add(l.num, "user name field looks like a password hash; line skipped")
			continue
		}
		if len(f) != 9 {
			probs.add(l.num, "expected 9 colon-separated fields, found %d; entry kept", len(f))
		}
		u := shadowUser{Aging: map[string]string{}, Line: l.num}
		var dup bool
		if u.Name, dup = uniqueKey(seen, f[0]); dup {
			probs.add(l.num, "duplicate user name; later entry kept as name#N")
		}
		h := f[1]
		u.Empty = h == ""
		u.Locked = strings.HasPrefix(h, "!")
		bare := strings.TrimLeft(h, "!")
		u.Algorithm = hashAlgorithm(bare)
		if !u.Empty {
			u.FP = fingerprint(c.key, bare)
		}
		bad := false
		for i, name := range agingFields {
			v := ""
			if i+2 < len(f) {
				v = strings.TrimSpace(f[i+2])
			}
			if v != "" {
				if n, ok := parseAging(v); ok {
					v = n
				} else {
					// never keep it as written: a shifted line could put
					// the hash here
					v, bad = "invalid", true
				}
			}
			u.Aging[name] = v
		}
		if bad {
			probs.add(l.num, "non-numeric aging field (recorded as \"invalid\")")
		}
		st.Users = append(st.Users, u)
	}
	s, err := marshalState(KindShadow, false, st)
	return s, probs, err
}

// cryptPrefixRe matches the start of a crypt(5) hash, possibly locked.
var cryptPrefixRe = regexp.MustCompile(`^!*\$[0-9a-z]{1,8}\$`)

// looksLikeHash reports whether a field that should hold a name holds what
// looks like a password hash instead (a shifted or damaged line).
func looksLikeHash(s string) bool {
	if cryptPrefixRe.MatchString(s) {
		return true
	}
	// a DES hash: 13 chars of [./0-9A-Za-z]; user names are rarely mixed case with digits
	return len(s) == 13 && hashAlgorithm(s) == "descrypt" &&
		strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(s, "./0123456789")
}

// parseAging accepts a (possibly negative, as -1 is sometimes written) decimal.
func parseAging(v string) (string, bool) {
	if strings.HasPrefix(v, "-") {
		n, ok := parseID(v[1:])
		return "-" + n, ok
	}
	return parseID(v)
}

func (u shadowUser) summary() map[string]string {
	m := map[string]string{"algorithm": u.Algorithm}
	for k, v := range u.Aging {
		m[k] = v
	}
	return m
}

func (u shadowUser) flags() []string {
	var f []string
	if u.Empty {
		f = append(f, "empty-password")
	}
	if u.Locked {
		f = append(f, "locked")
	}
	return flagSet(f...)
}

// Diff implements Consumer (see the package documentation for absent files).
func (c shadowConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[shadowState](KindShadow, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	var out []Change
	pairByKey(p.Users, s.Users, func(u *shadowUser) string { return u.Name }, func(o, u *shadowUser) {
		if o == nil {
			out = append(out, Change{Type: ChangeUserAdded, Name: u.Name, New: u.summary(), Flags: u.flags(), Line: u.Line})
			return
		}
		switch {
		case u.Empty && !o.Empty:
			out = append(out, Change{Type: ChangePasswordEmptied, Name: u.Name, Old: map[string]string{"algorithm": o.Algorithm}, New: map[string]string{"algorithm": u.Algorithm}, Flags: u.flags(), Line: u.Line})
		case u.FP != o.FP || u.Algorithm != o.Algorithm:
			out = append(out, Change{Type: ChangePasswordChanged, Name: u.Name, Old: map[string]string{"algorithm": o.Algorithm}, New: map[string]string{"algorithm": u.Algorithm}, Flags: u.flags(), Line: u.Line})
		}
		if u.Locked && !o.Locked {
			out = append(out, Change{Type: ChangePasswordLocked, Name: u.Name, Flags: u.flags(), Line: u.Line})
		} else if !u.Locked && o.Locked {
			out = append(out, Change{Type: ChangePasswordUnlocked, Name: u.Name, Flags: u.flags(), Line: u.Line})
		}
		if fields, ov, nv := fieldDiff(o.Aging, u.Aging); fields != nil {
			out = append(out, Change{Type: ChangeAgingChanged, Name: u.Name, Fields: fields, Old: ov, New: nv, Line: u.Line})
		}
	}, func(u *shadowUser) {
		out = append(out, Change{Type: ChangeUserRemoved, Name: u.Name, Old: map[string]string{"algorithm": u.Algorithm}, Line: u.Line})
	})
	return out, nil
}

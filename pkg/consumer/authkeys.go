package consumer

import (
	"strings"

	"golang.org/x/crypto/ssh"
)

// authKeysConsumer parses OpenSSH authorized_keys files with
// golang.org/x/crypto/ssh.ParseAuthorizedKey, one line at a time (every key
// type it knows, including sk-* security keys and certificates).
//
// A key is identified by its SHA256 fingerprint; the same key on a second
// line is kept as "SHA256:...#2". Unparseable lines are Problems that name
// at most the line's key type and never quote key material. Options are
// kept joined with ',' as written.
type authKeysConsumer struct{}

type authKey struct {
	FP      string   `json:"fp"`
	Type    string   `json:"type"`
	Comment string   `json:"comment"`
	Options string   `json:"options"`
	Flags   []string `json:"flags,omitempty"`
	Line    int      `json:"line"`
}

type authKeysState struct {
	stateHeader
	Keys []authKey `json:"keys"`
}

// Kind implements Consumer.
func (authKeysConsumer) Kind() Kind { return KindAuthorizedKeys }

// optionFlags flags the authorized_keys options that restrict or widen what
// the key may do.
func optionFlags(opts []string) []string {
	var f []string
	for _, o := range opts {
		name, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(o)), "=")
		switch name {
		case "command":
			f = append(f, "command")
		case "from":
			f = append(f, "from")
		case "cert-authority":
			f = append(f, "cert-authority")
		case "environment":
			f = append(f, "environment")
		case "principals":
			f = append(f, "principals")
		case "restrict":
			f = append(f, "restrict")
		}
	}
	return f
}

// knownKeyType reports whether s looks like an SSH key type name, so that a
// Problem may mention it.
func knownKeyType(s string) bool {
	switch {
	case strings.HasPrefix(s, "ssh-"), strings.HasPrefix(s, "ecdsa-sha2-"), strings.HasPrefix(s, "sk-"),
		strings.HasPrefix(s, "rsa-sha2-"):
		return len(s) < 64 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-.@") == ""
	}
	return false
}

// Parse implements Consumer; it never panics and reports malformed lines as Problems.
func (authKeysConsumer) Parse(in Input) (State, []Problem, error) {
	st := &authKeysState{Keys: []authKey{}}
	if in.Content == nil {
		return absentState(marshalState(KindAuthorizedKeys, true, st))
	}
	var probs problems
	seen := map[string]int{}
	for _, l := range entries(in.Content) {
		probs.checkUTF8(l)
		pub, comment, opts, _, err := ssh.ParseAuthorizedKey([]byte(l.text))
		if err != nil || pub == nil {
			// Name the key type if one is visible, nothing else.
			typ := ""
			for _, f := range strings.Fields(l.text) {
				if knownKeyType(f) {
					typ = f
					break
				}
			}
			if typ != "" {
				probs.add(l.num, "unparseable %s key; line ignored", typ)
			} else {
				probs.add(l.num, "unparseable authorized_keys line; ignored")
			}
			continue
		}
		k := authKey{Type: pub.Type(), Comment: comment, Options: strings.Join(opts, ","), Line: l.num}
		var flags []string
		if _, ok := pub.(*ssh.Certificate); ok {
			flags = append(flags, "certificate")
		}
		k.Flags = flagSet(append(flags, optionFlags(opts)...)...)
		var dup bool
		if k.FP, dup = uniqueKey(seen, ssh.FingerprintSHA256(pub)); dup {
			probs.add(l.num, "duplicate key %s", k.FP)
		}
		st.Keys = append(st.Keys, k)
	}
	s, err := marshalState(KindAuthorizedKeys, false, st)
	return s, probs, err
}

func (k authKey) fields() map[string]string {
	return map[string]string{"type": k.Type, "comment": k.Comment, "options": k.Options}
}

// Diff implements Consumer (see the package documentation for absent files).
func (authKeysConsumer) Diff(prev, cur State) ([]Change, error) {
	p, s, ok, err := decodePair[authKeysState](KindAuthorizedKeys, prev, cur)
	if !ok || err != nil {
		return nil, err
	}
	var out []Change
	pairByKey(p.Keys, s.Keys, func(k *authKey) string { return k.FP }, func(o, k *authKey) {
		if o == nil {
			out = append(out, Change{Type: ChangeKeyAdded, Name: k.FP, New: k.fields(), Flags: k.Flags, Line: k.Line})
			return
		}
		if o.Options != k.Options {
			out = append(out, Change{Type: ChangeKeyOptionsChanged, Name: k.FP, Fields: []string{"options"},
				Old: map[string]string{"options": o.Options}, New: map[string]string{"options": k.Options}, Flags: k.Flags, Line: k.Line})
		}
		if o.Comment != k.Comment {
			out = append(out, Change{Type: ChangeKeyCommentChanged, Name: k.FP, Fields: []string{"comment"},
				Old: map[string]string{"comment": o.Comment}, New: map[string]string{"comment": k.Comment}, Line: k.Line})
		}
	}, func(k *authKey) {
		out = append(out, Change{Type: ChangeKeyRemoved, Name: k.FP, Old: k.fields(), Flags: k.Flags, Line: k.Line})
	})
	return out, nil
}

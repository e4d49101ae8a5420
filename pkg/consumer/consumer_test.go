package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestKindFor(t *testing.T) {
	for p, want := range map[string]Kind{
		"/etc/passwd": KindPasswd, "/etc/shadow": KindShadow, "/etc/group": KindGroup, "/etc/gshadow": KindGshadow,
		"/etc/sudoers": KindSudoers, "/etc/sudoers.d/90-cloud-init-users": KindSudoers, "/etc//sudoers.d/x": KindSudoers,
		"/root/.ssh/authorized_keys": KindAuthorizedKeys, "/home/bob/.ssh/authorized_keys2": KindAuthorizedKeys,
		"/etc/ssh/sshd_config": KindSSHDConfig, "/etc/ssh/sshd_config.d/50-cloud-init.conf": KindSSHDConfig,
		"/etc/ssh/sshd_config.d/README": "", "/etc/ssh/ssh_config": "", "/etc/passwd-": "", "/etc/hosts": "",
		"/etc/sudoers.d/sub/x": "", "": "", "passwd": "",
	} {
		if got := KindFor(p); got != want {
			t.Errorf("KindFor(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	for _, k := range Kinds {
		c, err := New(k, Options{Key: testKey})
		if err != nil || c.Kind() != k {
			t.Errorf("New(%s) = %v, %v", k, c, err)
		}
	}
	if _, err := New("nope", Options{Key: testKey}); err == nil {
		t.Error("unknown kind accepted")
	}
	for _, k := range []Kind{KindPasswd, KindShadow, KindGshadow, KindDiff} {
		if _, err := New(k, Options{Key: []byte("short")}); err == nil {
			t.Errorf("%s accepted a short key", k)
		}
	}
	for _, k := range []Kind{KindGroup, KindSudoers, KindAuthorizedKeys, KindSSHDConfig, KindHash} {
		if _, err := New(k, Options{}); err != nil {
			t.Errorf("%s needs no key: %v", k, err)
		}
	}
}

// sample is a realistic file per kind.
func sample(t *testing.T, k Kind) string {
	switch k {
	case KindDiff:
		return nginxConf
	case KindHash:
		return "\x7fELF\x02\x01\x01"
	}
	return readTestdata(t, string(k))
}

func TestAbsentRuleAndBadStates(t *testing.T) {
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			c := newC(t, k)
			present, _ := parse(t, c, "/etc/"+string(k), sample(t, k))
			absent := parseAbsent(t, c, "/etc/"+string(k))
			empty, _ := parse(t, c, "/etc/"+string(k), "")
			for name, tc := range map[string]struct{ prev, cur State }{
				"baseline": {nil, present}, "removed": {present, absent}, "same": {present, present}, "absent both": {absent, absent},
			} {
				if ch, err := c.Diff(tc.prev, tc.cur); err != nil || ch != nil {
					t.Errorf("%s: %s, %v", name, js(ch), err)
				}
			}
			fromAbsent, err := c.Diff(absent, present)
			if err != nil || len(fromAbsent) == 0 {
				t.Fatalf("absent -> present: %s, %v", js(fromAbsent), err)
			}
			if k != KindHash {
				fromEmpty, err := c.Diff(empty, present)
				if err != nil || js(fromEmpty) != js(fromAbsent) {
					t.Errorf("absent -> present differs from empty -> present:\n%s\n%s", js(fromAbsent), js(fromEmpty))
				}
			}
			other := KindPasswd
			if k == KindPasswd {
				other = KindGroup
			}
			otherSt := parseAbsent(t, newC(t, other), "/x")
			var bv map[string]any
			_ = json.Unmarshal(present, &bv)
			bv["v"] = 99
			future, _ := json.Marshal(bv)
			for name, tc := range map[string]struct{ prev, cur State }{
				"nil cur": {present, nil}, "garbage cur": {present, State("{\"v\":1,")}, "garbage prev": {State("[1,2"), present},
				"wrong kind": {otherSt, present}, "wrong layout": {State(`{"v":1,"kind":"` + string(k) + `","users":7,"lines":7,"keys":7,"rules":7,"options":7,"groups":7,"sha256":7}`), present},
				"future version": {future, present},
			} {
				if ch, err := c.Diff(tc.prev, tc.cur); err == nil {
					t.Errorf("%s: no error, %s", name, js(ch))
				} else if strings.Contains(err.Error(), "hunter") {
					t.Errorf("error leaks: %v", err)
				}
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, k := range Kinds {
		c := newC(t, k)
		old := sample(t, k)
		cur := strings.Replace(old, "\n", "\nzzz:x:1:1:\n", 3) + "extra:line\n"
		a := js(diffOf(t, c, "/etc/x", old, cur))
		for i := 0; i < 5; i++ {
			if b := js(diffOf(t, c, "/etc/x", old, cur)); a != b {
				t.Fatalf("%s: nondeterministic diff\n%s\n%s", k, a, b)
			}
		}
	}
}

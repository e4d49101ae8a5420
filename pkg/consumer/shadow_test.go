package consumer

import (
	"strings"
	"testing"
)

const (
	sha512Hash   = "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj."
	yescryptHash = "$y$j9T$PaJ5xNrC1sMoYvY2LhP7n1$ZVvxJ0yNmlnzDh3bn6z/yfqxHl8cG0A7ts0mSwr1hQ2"
)

func TestShadowDiff(t *testing.T) {
	base := readTestdata(t, "shadow")
	c := newC(t, KindShadow)
	aliceLine := 11
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"password changed, algorithm upgrade", strings.Replace(base, sha512Hash, yescryptHash, 1),
			[]Change{{Type: "password-changed", Name: "alice", Old: m("algorithm", "sha512crypt"), New: m("algorithm", "yescrypt"), Line: aliceLine}}},
		{"same algorithm, new hash", strings.Replace(base, "8iYtNHx", "9iYtNHx", 1),
			[]Change{{Type: "password-changed", Name: "alice", Old: m("algorithm", "sha512crypt"), New: m("algorithm", "sha512crypt"), Line: aliceLine}}},
		{"locked", strings.Replace(base, "alice:$6$", "alice:!$6$", 1),
			[]Change{{Type: "password-locked", Name: "alice", Flags: []string{"locked"}, Line: aliceLine}}},
		{"emptied", strings.Replace(base, "alice:"+sha512Hash, "alice:", 1),
			[]Change{{Type: "password-emptied", Name: "alice", Old: m("algorithm", "sha512crypt"), New: m("algorithm", "none"), Flags: []string{"empty-password"}, Line: aliceLine}}},
		{"unlocked system account to empty", strings.Replace(base, "sshd:!:", "sshd::", 1),
			[]Change{
				{Type: "password-emptied", Name: "sshd", Old: m("algorithm", "none"), New: m("algorithm", "none"), Flags: []string{"empty-password"}, Line: 10},
				{Type: "password-unlocked", Name: "sshd", Flags: []string{"empty-password"}, Line: 10},
			}},
		{"aging", strings.Replace(base, ":19701:0:99999:7:::", ":19800:0:90:7::20000:", 1),
			[]Change{{Type: "aging-changed", Name: "alice", Fields: []string{"expire", "lastchg", "max"}, Old: m("expire", "", "lastchg", "19701", "max", "99999"), New: m("expire", "20000", "lastchg", "19800", "max", "90"), Line: aliceLine}}},
		{"user added with md5", base + "bob:$1$abc$5ReXP9fMnmOe00UoHByB.0:19702:0:99999:7:::\n",
			[]Change{{Type: "user-added", Name: "bob", New: m("algorithm", "md5crypt", "lastchg", "19702", "min", "0", "max", "99999", "warn", "7", "inactive", "", "expire", ""), Line: 12}}},
		{"user added without password", base + "eve::19702:0:99999:7:::\n",
			[]Change{{Type: "user-added", Name: "eve", New: m("algorithm", "none", "lastchg", "19702", "min", "0", "max", "99999", "warn", "7", "inactive", "", "expire", ""), Flags: []string{"empty-password"}, Line: 12}}},
		{"user removed", replaceLine(base, aliceLine, ""),
			[]Change{{Type: "user-removed", Name: "alice", Old: m("algorithm", "sha512crypt"), Line: aliceLine}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkChanges(t, diffOf(t, c, "/etc/shadow", base, tt.cur), tt.want)
		})
	}
}

func TestHashAlgorithm(t *testing.T) {
	for h, want := range map[string]string{
		yescryptHash: "yescrypt", sha512Hash: "sha512crypt",
		"$5$pepper12$bVn5RYFSfHFZzuAsEUdG7oUJTiLFHujVa7XtMqmPvZ2":      "sha256crypt",
		"$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW": "bcrypt",
		"$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234": "bcrypt",
		"$1$abc$5ReXP9fMnmOe00UoHByB.0":                                "md5crypt",
		"$gy$j9T$salt$hash":                                            "gost-yescrypt",
		"abJnggxhB/yWI":                                                "descrypt",
		"*":                                                            "none",
		"":                                                             "none",
		"$9$whatever":                                                  "unknown",
		"x":                                                            "invalid",
	} {
		if got := hashAlgorithm(h); got != want {
			t.Errorf("hashAlgorithm(%.10q) = %q, want %q", h, got, want)
		}
	}
}

func TestShadowMalformed(t *testing.T) {
	c := newC(t, KindShadow)
	content := "root:" + yescryptHash + ":19700:0:99999:7:::\n" + // 1
		"nocolon\n" + // 2: skipped
		"short:" + sha512Hash + "\n" + // 3: kept, problem
		"\n" + // 4
		"bad:!:abc:0:99999:7:::\n" + // 5: kept, problem
		"u\xff:*:1:2:3:4:::\r\n" + // 6: invalid UTF-8
		":x:1:1:1:1:::\n" // 7: no name
	st, probs := parse(t, c, "/etc/shadow", content)
	checkProblems(t, probs, 2, 3, 5, 6, 7)
	ch, err := c.Diff(parseAbsent(t, c, "/etc/shadow"), st)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 4 || ch[1].Name != "short" || ch[1].New["algorithm"] != "sha512crypt" || ch[2].New["lastchg"] != "invalid" {
		t.Errorf("unexpected changes %s", js(ch))
	}
}

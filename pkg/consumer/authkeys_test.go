package consumer

import (
	"strings"
	"testing"
)

const (
	fpAlice  = "SHA256:uEGQjNR/97FG6j+P6OPdFUYn92SCNAX88naMBmkWOTA"
	fpBob    = "SHA256:TZA9v8bvJcNp6T728kkWfPNF09plZgjDUgE9RTcycLc"
	fpDeploy = "SHA256:oA3gUnXzsoOBZqNH9ZX6uW7WmydOQZ/GGfP+TqW7nmM"
	fpSK     = "SHA256:nX0hpi5mKbTIJ10yBq5/sLQhiI1Y0RBAqN0drDdgJWs"
)

func authKeyLine(t *testing.T, content string, n int) string {
	t.Helper()
	return strings.Split(content, "\n")[n-1]
}

func TestAuthorizedKeysDiff(t *testing.T) {
	base := readTestdata(t, "authorized_keys")
	c := newC(t, KindAuthorizedKeys)
	alice := authKeyLine(t, base, 2)
	deploy := authKeyLine(t, base, 5)
	deployKey := deploy[strings.Index(deploy, "ecdsa-sha2"):]
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"blank lines, comments and CRLF are no change", strings.ReplaceAll(base, "\n", "\r\n\r\n# x\r\n"), nil},
		{"key removed", replaceLine(base, 2, ""),
			[]Change{{Type: "key-removed", Name: fpAlice, Old: m("type", "ssh-ed25519", "comment", "alice@laptop", "options", ""), Line: 2}}},
		{"forced command dropped", replaceLine(base, 5, deployKey),
			[]Change{{Type: "key-options-changed", Name: fpDeploy, Fields: []string{"options"}, Old: m("options", `command="/usr/local/bin/backup",no-port-forwarding,no-X11-forwarding`), New: m("options", ""), Line: 5}}},
		{"key added with from restriction", base + `from="192.0.2.1" ` + strings.Replace(alice, "alice@laptop", "alice@other", 1) + "\n",
			[]Change{{Type: "key-added", Name: fpAlice + "#2", New: m("type", "ssh-ed25519", "comment", "alice@other", "options", `from="192.0.2.1"`), Flags: []string{"from"}, Line: 9}}},
		{"comment changed", strings.Replace(base, "yubikey@dave", "yubikey@eve", 1),
			[]Change{{Type: "key-comment-changed", Name: fpSK, Fields: []string{"comment"}, Old: m("comment", "yubikey@dave"), New: m("comment", "yubikey@eve"), Line: 8}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffOf(t, c, "/home/deploy/.ssh/authorized_keys", base, tt.cur)
			if tt.name == "blank lines, comments and CRLF are no change" {
				for _, x := range got { // only line numbers differ, and they are not compared
					t.Errorf("unexpected %s", js(x))
				}
				return
			}
			checkChanges(t, got, tt.want)
		})
	}
}

func TestAuthorizedKeysAllTypes(t *testing.T) {
	c := newC(t, KindAuthorizedKeys)
	st, probs := parse(t, c, "/root/.ssh/authorized_keys", readTestdata(t, "authorized_keys"))
	checkProblems(t, probs)
	ch, err := c.Diff(parseAbsent(t, c, ""), st)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, x := range ch {
		got[x.New["type"]] = x.Flags
	}
	want := map[string]string{
		"ssh-ed25519":                      "cert-authority,principals", // the CA line wins the map entry
		"ssh-rsa":                          "from",
		"ecdsa-sha2-nistp256":              "command",
		"ssh-ed25519-cert-v01@openssh.com": "certificate",
		"sk-ssh-ed25519@openssh.com":       "",
	}
	for typ, flags := range want {
		f, ok := got[typ]
		if !ok || strings.Join(f, ",") != flags {
			t.Errorf("type %s: flags %q (present %v), want %q", typ, f, ok, flags)
		}
	}
	if ch[0].Name != fpAlice || ch[1].Name != fpBob {
		t.Errorf("fingerprints: %s %s", ch[0].Name, ch[1].Name)
	}
}

func TestAuthorizedKeysMalformed(t *testing.T) {
	c := newC(t, KindAuthorizedKeys)
	base := readTestdata(t, "authorized_keys")
	alice := authKeyLine(t, base, 2)
	truncated := alice[:60]
	content := strings.Join([]string{
		alice,                        // 1
		truncated,                    // 2: broken base64 blob
		"ssh-ed25519",                // 3: type only
		"no-pty,command=\"x ssh-rsa", // 4: unterminated quote
		"\xff\xfe\x00 garbage",       // 5
		strings.Repeat("A", 100000),  // 6: huge
		"ssh-rsa " + alice[12:],      // 7: declared type mismatch
	}, "\n")
	_, probs := parse(t, c, "/root/.ssh/authorized_keys", content)
	checkProblems(t, probs, 2, 3, 4, 5, 5, 6, 7)
	for _, p := range probs {
		if strings.Contains(p.Msg, "AAAA") || len(p.Msg) > 100 {
			t.Errorf("problem leaks key text: %q", p.Msg)
		}
	}
	if probs[0].Msg != "unparseable ssh-ed25519 key; line ignored" {
		t.Errorf("msg %q", probs[0].Msg)
	}
}

package consumer

import (
	"strconv"
	"strings"
	"testing"
)

func TestPasswdDiff(t *testing.T) {
	base := readTestdata(t, "passwd")
	c := newC(t, KindPasswd)
	bobNew := m("uid", "1001", "gid", "1001", "gecos", "Bob,,,", "home", "/home/bob", "shell", "/bin/bash")
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"user added", base + "bob:x:1001:1001:Bob,,,:/home/bob:/bin/bash\n",
			[]Change{{Type: "user-added", Name: "bob", New: bobNew, Line: 23}}},
		{"uid 0 backdoor", base + "toor:x:0:0::/root:/bin/sh\n",
			[]Change{{Type: "user-added", Name: "toor", New: m("uid", "0", "gid", "0", "gecos", "", "home", "/root", "shell", "/bin/sh"), Flags: []string{"second-uid-0", "uid-0"}, Line: 23}}},
		{"uid changed to 0", strings.Replace(base, "alice:x:1000:1000", "alice:x:0:1000", 1),
			[]Change{{Type: "user-modified", Name: "alice", Fields: []string{"uid"}, Old: m("uid", "1000"), New: m("uid", "0"), Flags: []string{"second-uid-0", "uid-0"}, Line: 22}}},
		{"shell and gecos", strings.Replace(base, "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin", "www-data:x:33:33:web:/var/www:/bin/bash", 1),
			[]Change{{Type: "user-modified", Name: "www-data", Fields: []string{"gecos", "shell"}, Old: m("gecos", "www-data", "shell", "/usr/sbin/nologin"), New: m("gecos", "web", "shell", "/bin/bash"), Line: 13}}},
		{"user removed", replaceLine(base, 21, ""),
			[]Change{{Type: "user-removed", Name: "sshd", Old: m("uid", "101", "gid", "65534", "gecos", "", "home", "/run/sshd", "shell", "/usr/sbin/nologin"), Line: 21}}},
		{"password field emptied", strings.Replace(base, "alice:x:", "alice::", 1),
			[]Change{{Type: "password-field-changed", Name: "alice", Fields: []string{"password"}, Flags: []string{"empty-password"}, Line: 22}}},
		{"hash in passwd", strings.Replace(base, "alice:x:", "alice:$1$abc$5ReXP9fMnmOe00UoHByB.0:", 1),
			[]Change{{Type: "password-field-changed", Name: "alice", Fields: []string{"password"}, Flags: []string{"password-in-passwd"}, Line: 22}}},
		{"reordered lines are no change", replaceLine(replaceLine(base, 2, "bin:x:2:2:bin:/bin:/usr/sbin/nologin"), 3, "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin"), nil},
		{"uid leading zeros are the same uid", strings.Replace(base, "alice:x:1000:", "alice:x:01000:", 1), nil},
		{"CRLF is the same file", strings.ReplaceAll(base, "\n", "\r\n"), nil},
		{"NIS compat line kept", base + "+@admins::::::\n",
			[]Change{{Type: "user-added", Name: "+@admins", New: m("uid", "", "gid", "", "gecos", "", "home", "", "shell", ""), Flags: []string{"nis"}, Line: 23}}},
		{"duplicate user visible", base + "root::0:0:root:/root:/bin/bash\n",
			[]Change{{Type: "user-added", Name: "root#2", New: m("uid", "0", "gid", "0", "gecos", "root", "home", "/root", "shell", "/bin/bash"), Flags: []string{"empty-password", "second-uid-0", "uid-0"}, Line: 23}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkChanges(t, diffOf(t, c, "/etc/passwd", base, tt.cur), tt.want)
		})
	}
}

func TestPasswdMalformed(t *testing.T) {
	c := newC(t, KindPasswd)
	huge := "big:x:1002:1002:" + strings.Repeat("A", 1<<20) + ":/home/big:/bin/sh"
	content := strings.Join([]string{
		"root:x:0:0:root:/root:/bin/bash",   // 1
		"short:x:0",                         // 2: too few fields
		"",                                  // 3: blank, skipped
		"# comment",                         // 4: skipped
		"nan:x:abc:1000::/home/nan:/bin/sh", // 5: bad uid
		"neg:x:-1:1000::/home/neg:/bin/sh",  // 6: bad uid
		"big4:x:4294967296:1::/:/bin/sh",    // 7: uid overflow
		"bad\xff\xfeutf:x:1003:1003::/home/x:/bin/sh", // 8: invalid UTF-8, kept
		"crlf:x:1004:1004::/home/crlf:/bin/sh\r",      // 9: fine
		huge,                                          // 10: fine
		":x:1005:1005::/:/bin/sh",                     // 11: empty name
		"too:x:1:1:many:fields:/bin/sh:extra",         // 12: too many
		"",
	}, "\n")
	st, probs := parse(t, c, "/etc/passwd", content)
	checkProblems(t, probs, 2, 5, 6, 7, 8, 11, 12)
	for _, p := range probs {
		if strings.Contains(p.Msg, "short") || strings.Contains(p.Msg, "abc") {
			t.Errorf("problem quotes content: %q", p.Msg)
		}
	}
	// Everything valid shows up as added against an absent file.
	ch, err := c.Diff(parseAbsent(t, c, "/etc/passwd"), st)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range ch {
		names = append(names, x.Name)
	}
	if got := strings.Join(names, ","); got != "root,bad\uFFFDutf,crlf,big" {
		t.Errorf("added users = %q", got)
	}
	if ch[2].New["shell"] != "/bin/sh" {
		t.Errorf("CR not stripped: %q", ch[2].New["shell"])
	}
}

func BenchmarkPasswdDiff(b *testing.B) {
	c := newC(b, KindPasswd)
	var old, cur strings.Builder
	for i := 0; i < 10000; i++ {
		line := "user" + strconv.Itoa(i) + ":x:" + strconv.Itoa(10000+i) + ":" + strconv.Itoa(10000+i) + ":User " + strconv.Itoa(i) + ",,,:/home/user" + strconv.Itoa(i) + ":/bin/bash\n"
		old.WriteString(line)
		if i%100 == 0 {
			line = strings.Replace(line, "/bin/bash", "/bin/zsh", 1)
		}
		if i%1000 != 7 {
			cur.WriteString(line)
		}
	}
	cur.WriteString("evil:x:0:0::/root:/bin/bash\n")
	oldB, curB := []byte(old.String()), []byte(cur.String())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, _, _ := c.Parse(Input{Path: "/etc/passwd", Content: oldB})
		s, _, _ := c.Parse(Input{Path: "/etc/passwd", Content: curB})
		ch, err := c.Diff(p, s)
		if err != nil || len(ch) != 100+10+1 {
			b.Fatalf("got %d changes, %v", len(ch), err)
		}
	}
}

package consumer

import (
	"reflect"
	"strings"
	"testing"
)

func TestSudoersDiff(t *testing.T) {
	base := readTestdata(t, "sudoers")
	c := newC(t, KindSudoers)
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"comments and whitespace are no change", strings.Replace(base, "root\tALL=(ALL:ALL) ALL", "root   ALL=(ALL:ALL)   ALL   # root may", 1) + "# trailing comment\n\n", nil},
		{"nopasswd all added", base + "mallory ALL=(ALL) NOPASSWD: ALL\n",
			[]Change{{Type: "sudo-rule-added", Name: "mallory", Flags: []string{"all", "nopasswd"}, Line: 32, Text: "mallory ALL=(ALL) NOPASSWD: ALL"}}},
		{"continued rule with negation", base + "bob, carol ALL = (root) ALL, \\\n   !/usr/bin/su\n",
			[]Change{{Type: "sudo-rule-added", Name: "bob,carol", Flags: []string{"all", "negation"}, Line: 32, Text: "bob, carol ALL = (root) ALL, !/usr/bin/su"}}},
		{"rule edited is removed then added", strings.Replace(base, "backup\tALL=(root) NOPASSWD: BACKUP", "backup\tALL=(ALL) NOPASSWD: ALL", 1),
			[]Change{
				{Type: "sudo-rule-removed", Name: "backup", Flags: []string{"nopasswd"}, Line: 26, Text: "backup ALL=(root) NOPASSWD: BACKUP"},
				{Type: "sudo-rule-added", Name: "backup", Flags: []string{"all", "nopasswd"}, Line: 26, Text: "backup ALL=(ALL) NOPASSWD: ALL"},
			}},
		{"commented out rule is removed", strings.Replace(base, "%sudo\tALL", "#%sudo\tALL", 1),
			[]Change{{Type: "sudo-rule-removed", Name: "%sudo", Flags: []string{"all"}, Line: 24, Text: "%sudo ALL=(ALL:ALL) ALL"}}},
		{"duplicate rule counted", base + "root ALL=(ALL:ALL) ALL\n",
			[]Change{{Type: "sudo-rule-added", Name: "root", Flags: []string{"all"}, Line: 32, Text: "root ALL=(ALL:ALL) ALL"}}},
		{"defaults !authenticate", base + "Defaults:bob !authenticate\n",
			[]Change{{Type: "sudo-rule-added", Name: "Defaults:bob", Flags: []string{"defaults", "nopasswd"}, Line: 32, Text: "Defaults:bob !authenticate"}}},
		{"alias member added", strings.Replace(base, "\t\tbob", "\t\tbob, mallory", 1),
			[]Change{
				{Type: "sudo-rule-removed", Name: "User_Alias ADMINS", Flags: []string{"alias"}, Line: 14, Text: "User_Alias ADMINS = alice, bob"},
				{Type: "sudo-rule-added", Name: "User_Alias ADMINS", Flags: []string{"alias"}, Line: 14, Text: "User_Alias ADMINS = alice, bob, mallory"},
			}},
		{"include swapped", strings.Replace(base, "@includedir /etc/sudoers.d", "#include extra", 1),
			[]Change{
				{Type: "include-removed", Name: "/etc/sudoers.d", Old: m("directive", "@includedir", "path", "/etc/sudoers.d"), Flags: []string{"include"}, Line: 31},
				{Type: "include-added", Name: "/etc/extra", New: m("directive", "#include", "path", "extra"), Flags: []string{"include"}, Line: 31},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkChanges(t, diffOf(t, c, "/etc/sudoers", base, tt.cur), tt.want)
		})
	}
}

func TestSudoersIncludes(t *testing.T) {
	c := newC(t, KindSudoers)
	st, probs := parse(t, c, "/etc/sudoers.d/admins", strings.Join([]string{
		"#include local",              // relative: /etc/sudoers.d/local
		"@include \"/etc/sudo host\"", // quoted
		"#includedir /etc/sudoers.d",
		"@includedir /etc/sudoers.d", // same directory: listed once
		"#includes not a directive",
		"@include",
		"#include /etc/sudoers.%h",
	}, "\n"))
	checkProblems(t, probs, 6)
	want := []string{"/etc/sudoers.d/local", "/etc/sudo host", "/etc/sudoers.d", "/etc/sudoers.%h"}
	if got := Includes(st); !reflect.DeepEqual(got, want) {
		t.Errorf("Includes = %q, want %q", got, want)
	}
	base := readTestdata(t, "sudoers")
	st2, _ := parse(t, c, "/etc/sudoers", base)
	if got := Includes(st2); !reflect.DeepEqual(got, []string{"/etc/sudoers.d"}) {
		t.Errorf("Includes = %q", got)
	}
	if got := Includes(parseAbsent(t, newC(t, KindPasswd), "/etc/passwd")); got != nil {
		t.Errorf("Includes(passwd) = %q", got)
	}
}

func TestSudoersMalformed(t *testing.T) {
	c := newC(t, KindSudoers)
	content := "root ALL=(ALL) ALL\r\n" + // 1
		"garbage\n" + // 2: not a spec
		"Defaults secure_path=\"/bin # not a comment\n" + // 3: unterminated quote
		"\xff\xfe ALL=ALL\n" + // 4: bad utf-8
		"bob ALL=/bin/ls \\\n" // 5: continuation at EOF
	st, probs := parse(t, c, "/etc/sudoers", content)
	checkProblems(t, probs, 2, 3, 4, 5)
	ch, err := c.Diff(parseAbsent(t, c, "/etc/sudoers"), st)
	if err != nil || len(ch) != 5 {
		t.Fatalf("%v %s", err, js(ch))
	}
	if ch[0].Text != "root ALL=(ALL) ALL" || ch[2].Text != "Defaults secure_path=\"/bin # not a comment" {
		t.Errorf("texts: %q %q", ch[0].Text, ch[2].Text)
	}
}

package consumer

import (
	"reflect"
	"strings"
	"testing"
)

func TestSSHDConfigDiff(t *testing.T) {
	base := readTestdata(t, "sshd_config")
	c := newC(t, KindSSHDConfig)
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"case, '=' and spacing are no change", strings.Replace(base, "PasswordAuthentication no", "passwordauthentication = no", 1), nil},
		{"root login enabled", strings.Replace(base, "PermitRootLogin prohibit-password", "PermitRootLogin yes", 1),
			[]Change{{Type: "option-changed", Name: "PermitRootLogin", Old: m("value", "prohibit-password"), New: m("value", "yes"), Flags: []string{"root-login"}, Line: 15}}},
		{"later duplicate is ignored", strings.Replace(base, "# Example", "PasswordAuthentication yes\n# Example", 1), nil},
		{"same keyword in a Match block is another option", base + "PasswordAuthentication yes\n",
			[]Change{{Type: "option-added", Name: "Match User anoncvs/PasswordAuthentication", New: m("value", "yes"), Flags: []string{"password-auth"}, Line: 44}}},
		{"uncommented default", strings.Replace(base, "#PermitEmptyPasswords no", "PermitEmptyPasswords YES", 1),
			[]Change{{Type: "option-added", Name: "PermitEmptyPasswords", New: m("value", "YES"), Flags: []string{"empty-passwords"}, Line: 23}}},
		{"match block option", base + "Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n",
			[]Change{{Type: "option-added", Name: "Match Address 10.0.0.0/8/PasswordAuthentication", New: m("value", "yes"), Flags: []string{"password-auth"}, Line: 45}}},
		{"option removed", strings.Replace(base, "UsePAM yes", "#UsePAM yes", 1),
			[]Change{{Type: "option-removed", Name: "UsePAM", Old: m("value", "yes"), Line: 27}}},
		{"list keyword accumulates", strings.Replace(base, "# Example", "AcceptEnv EDITOR\n# Example", 1),
			[]Change{{Type: "option-changed", Name: "AcceptEnv", Old: m("value", "LANG LC_*"), New: m("value", "LANG LC_* EDITOR"), Line: 33}}},
		{"include added", "Include extra.conf\n" + base,
			[]Change{{Type: "include-added", Name: "/etc/ssh/extra.conf", New: m("directive", "Include", "path", "extra.conf"), Flags: []string{"include"}, Line: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diffOf(t, c, "/etc/ssh/sshd_config", base, tt.cur)
			if tt.name == "include added" { // every line moved: only compare the include
				got = got[len(got)-1:]
			}
			checkChanges(t, got, tt.want)
		})
	}
}

func TestSSHDConfigParse(t *testing.T) {
	c := newC(t, KindSSHDConfig)
	st, probs := parse(t, c, "/etc/ssh/sshd_config.d/50-local.conf", strings.Join([]string{
		"Port 22",                    // 1
		"port 2222",                  // 2: accumulates
		"PermitRootLogin no",         // 3
		"PermitRootLogin yes",        // 4: ignored, problem
		"Bogus yes",                  // 5: unknown keyword
		"MaxAuthTries",               // 6: no value
		"Include conf.d/*.conf /abs", // 7
		"Subsystem sftp internal-sftp",
		"Subsystem other /bin/x\r",
		"",
	}, "\n"))
	checkProblems(t, probs, 4, 5, 6)
	ch, err := c.Diff(parseAbsent(t, c, ""), st)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range ch {
		names = append(names, x.Name+"="+x.New["value"])
	}
	want := []string{"Port=22 2222", "PermitRootLogin=no", "bogus=yes", "Subsystem sftp=sftp internal-sftp", "Subsystem other=other /bin/x", "/etc/ssh/conf.d/*.conf=", "/abs="}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("got %q\nwant %q", names, want)
	}
	if got := Includes(st); !reflect.DeepEqual(got, []string{"/etc/ssh/conf.d/*.conf", "/abs"}) {
		t.Errorf("Includes = %q", got)
	}
}

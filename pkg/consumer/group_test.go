package consumer

import (
	"strings"
	"testing"
)

func TestGroupDiff(t *testing.T) {
	base := readTestdata(t, "group")
	c := newC(t, KindGroup)
	priv := []string{"privileged"}
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"member added to sudo", strings.Replace(base, "sudo:x:27:alice", "sudo:x:27:alice,mallory", 1),
			[]Change{{Type: "group-member-added", Name: "sudo", New: m("member", "mallory"), Flags: priv, Line: 11}}},
		{"member order and spaces are no change", strings.Replace(base, "audio:x:29:alice", "audio:x:29: alice ,", 1), nil},
		{"member removed and added", strings.Replace(base, "users:x:100:alice", "users:x:100:bob,carol", 1),
			[]Change{
				{Type: "group-member-added", Name: "users", New: m("member", "bob"), Line: 16},
				{Type: "group-member-added", Name: "users", New: m("member", "carol"), Line: 16},
				{Type: "group-member-removed", Name: "users", Old: m("member", "alice"), Line: 16},
			}},
		{"gid changed to 0", strings.Replace(base, "alice:x:1000:", "alice:x:0:", 1),
			[]Change{{Type: "group-modified", Name: "alice", Fields: []string{"gid"}, Old: m("gid", "1000"), New: m("gid", "0"), Flags: priv, Line: 19}}},
		{"group added", base + "wheel:x:10:bob\n",
			[]Change{{Type: "group-added", Name: "wheel", New: m("gid", "10", "members", "bob"), Flags: priv, Line: 21}}},
		{"group removed", replaceLine(base, 20, ""),
			[]Change{{Type: "group-removed", Name: "docker", Old: m("gid", "995", "members", ""), Flags: priv, Line: 20}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkChanges(t, diffOf(t, c, "/etc/group", base, tt.cur), tt.want)
		})
	}
}

func TestGroupMalformed(t *testing.T) {
	c := newC(t, KindGroup)
	_, probs := parse(t, c, "/etc/group", "root:x:0:\nshort:x\nbad:x:zz:\n\n+:::\nu\xff:x:5:\nx:x:1:a:b\n")
	checkProblems(t, probs, 2, 3, 6, 7)
}

func TestGshadowDiff(t *testing.T) {
	base := readTestdata(t, "gshadow")
	c := newC(t, KindGshadow)
	priv := []string{"privileged"}
	tests := []struct {
		name string
		cur  string
		want []Change
	}{
		{"unchanged", base, nil},
		{"password set", strings.Replace(base, "docker:!::", "docker:$6$x$abcdefgh::", 1),
			[]Change{{Type: "group-password-changed", Name: "docker", Fields: []string{"password"}, Flags: priv, Line: 11}}},
		{"password emptied", strings.Replace(base, "alice:!::", "alice:::", 1),
			[]Change{{Type: "group-password-changed", Name: "alice", Fields: []string{"password"}, Flags: []string{"empty-password"}, Line: 10}}},
		{"admin added", strings.Replace(base, "sudo:*::alice", "sudo:*:eve:alice", 1),
			[]Change{{Type: "group-admin-added", Name: "sudo", New: m("admin", "eve"), Flags: priv, Line: 6}}},
		{"member removed", strings.Replace(base, "cdrom:*::alice", "cdrom:*::", 1),
			[]Change{{Type: "group-member-removed", Name: "cdrom", Old: m("member", "alice"), Line: 5}}},
		{"group added", base + "wheel:!:root:bob\n",
			[]Change{{Type: "group-added", Name: "wheel", New: m("admins", "root", "members", "bob"), Flags: priv, Line: 12}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkChanges(t, diffOf(t, c, "/etc/gshadow", base, tt.cur), tt.want)
		})
	}
	_, probs := parse(t, c, "/etc/gshadow", "a:!::\nb:!\n\nc:!:::\n")
	checkProblems(t, probs, 2, 4)
}

package pkgmgr

import (
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 100 18446744073709551615\n"
	p, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if p != (Proc{PID: 4242, PPID: 17, Comm: "a (b) c", Start: 98765}) {
		t.Errorf("got %+v", p)
	}
	for _, bad := range []string{"", "12 no comm", "12 (x) S 1 2", "x (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 1 1 1"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestMarks(t *testing.T) {
	procs := []Proc{
		{PID: 1, PPID: 0, Comm: "systemd"},
		{PID: 10, PPID: 1, Comm: "apt"},
		{PID: 11, PPID: 10, Comm: "dpkg"}, // below apt: apt stays the root
		{PID: 12, PPID: 11, Comm: "sh"},   // a maintainer script
		{PID: 13, PPID: 12, Comm: "sed"},
		{PID: 20, PPID: 1, Comm: "sshd"}, // unrelated
		{PID: 21, PPID: 20, Comm: "bash"},
		{PID: 30, PPID: 1, Comm: "unattended-upgr"}, // a comm cut to 15
		{PID: 31, PPID: 30, Comm: "dpkg"},
	}
	got := Marks(procs)
	want := []Mark{
		{Proc: procs[1], Root: 10, Mgr: 3},
		{Proc: procs[2], Root: 10, Mgr: 3, Script: true},
		{Proc: procs[3], Root: 10, Mgr: 3, Script: true},
		{Proc: procs[4], Root: 10, Mgr: 3, Script: true},
		{Proc: procs[7], Root: 30, Mgr: 9},
		{Proc: procs[8], Root: 30, Mgr: 9, Script: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	// A parent loop (pids reused while read) ends.
	if m := Marks([]Proc{{PID: 5, PPID: 6, Comm: "x"}, {PID: 6, PPID: 5, Comm: "dpkg"}}); len(m) != 2 || m[0].Root != 6 {
		t.Errorf("a loop: %+v", m)
	}
}

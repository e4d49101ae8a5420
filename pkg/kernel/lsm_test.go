package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestActiveLSMs reads securityfs's list (here a file standing in for it),
// and says why when it cannot; HasLSM matches whole names only.
func TestActiveLSMs(t *testing.T) {
	old := lsmFiles
	t.Cleanup(func() { lsmFiles = old })
	dir := t.TempDir()
	lsmFiles.dir, lsmFiles.list = filepath.Join(dir, "absent-dir"), filepath.Join(dir, "lsm")
	if _, err := ActiveLSMs(); err == nil || !strings.Contains(err.Error(), "reading the active LSMs") {
		t.Errorf("no list: error %v, want one saying what could not be read", err)
	}
	if err := os.WriteFile(lsmFiles.list, []byte("lockdown,capability,landlock,bpf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ActiveLSMs()
	if err != nil || l != "lockdown,capability,landlock,bpf" {
		t.Fatalf("ActiveLSMs = %q, %v", l, err)
	}
	for _, c := range []struct {
		list, lsm string
		want      bool
	}{
		{l, "bpf", true}, {l, "lockdown", true}, {"lockdown,bpfilter", "bpf", false}, {"", "bpf", false},
		{"capability,landlock", "bpf", false},
	} {
		if got := HasLSM(c.list, c.lsm); got != c.want {
			t.Errorf("HasLSM(%q, %q) = %v, want %v", c.list, c.lsm, got, c.want)
		}
	}
}

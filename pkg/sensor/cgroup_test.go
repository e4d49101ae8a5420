//go:build privileged

package sensor_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// TestCgroupRecord: every cgroup created on the default hierarchy is one
// VG_T_CGROUP record with its id (the directory's inode number), level and
// path from the hierarchy's root, handed to OnCgroup before the file
// records that follow it; a process moved into the new cgroup right away
// writes a watched file with that id.
func TestCgroupRecord(t *testing.T) {
	needSensor(t)
	root := actorCgroup2Root(t)
	var mu sync.Mutex
	var got []*sensor.Cgroup
	sens.OnCgroup(func(c *sensor.Cgroup) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	})
	t.Cleanup(func() { sens.OnCgroup(nil) })
	before := sens.CgroupRecords()

	parent, err := os.MkdirTemp(root, "vigil-test-")
	if err != nil {
		t.Fatal(err)
	}
	scope := filepath.Join(parent, "docker-"+strings.Repeat("ab", 32)+".scope")
	if err := os.Mkdir(scope, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range []string{scope, parent} {
			for i := 0; ; i++ {
				err := unix.Rmdir(d)
				if err == nil || errors.Is(err, unix.ENOENT) {
					break
				}
				if i == 50 {
					t.Errorf("removing cgroup %s: %v", d, err)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	rootLevel := strings.Count(strings.Trim(root, "/"), "/") + 1
	// The child is moved in and writes at once; its record comes after
	// both cgroup records.
	e, _ := actorWrite(t, "cgroup="+scope)
	mu.Lock()
	defer mu.Unlock()
	for _, d := range []string{parent, scope} {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		rel := "/" + strings.TrimPrefix(d, root+"/")
		level := uint32(strings.Count(strings.Trim(d, "/"), "/") + 1 - rootLevel)
		var found *sensor.Cgroup
		for _, c := range got {
			if c.ID == st.Ino {
				found = c
			}
		}
		if found == nil {
			t.Errorf("no cgroup record for %s (id %d) before the child's write; got %d records", d, st.Ino, len(got))
			continue
		}
		if found.Path != rel || found.Level != level {
			t.Errorf("cgroup record for %s: path %q level %d, want %q level %d", d, found.Path, found.Level, rel, level)
		}
		if found.BootNS == 0 || found.BootNS > e.BootNS {
			t.Errorf("cgroup record for %s at %d, the child's write at %d", d, found.BootNS, e.BootNS)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(scope, &st); err != nil {
		t.Fatal(err)
	}
	if e.Proc.CgroupID != st.Ino {
		t.Errorf("the child's write: cgroup id %d, want %d (%s)", e.Proc.CgroupID, st.Ino, scope)
	}
	if n := sens.CgroupRecords() - before; n < 2 {
		t.Errorf("CgroupRecords grew by %d, want at least 2", n)
	}
}

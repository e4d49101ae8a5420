//go:build privileged

package sensor_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// TestFamiliesAgree: the fentry and kprobe objects of one kernel line are
// one source (bpf/kprobe.bpf.c), each hook's body wrapped per family. Both
// are loaded side by side, watch the same file and tree, see the same
// operations (a write, chmod and chown, an xattr, a rename over the file, a
// create in the tree, an unlink), and must give the same records, field for
// field, but for the time and CPU of each. The line is the running sensor's
// (the one a cross-load run forces), else the loader's first candidate's.
// The tracepoint object is not compared: it sees at the syscall and its
// records differ by design (docs/kernels.md, "What each hook type sees").
func TestFamiliesAgree(t *testing.T) {
	needSensor(t)
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	facts, err := kernel.Probe()
	if err != nil {
		t.Fatal(err)
	}
	line, ok := "", false
	for _, o := range man.Objects {
		if o.Name == sens.Info().Object {
			line, ok = loader.LineOf(o)
		}
	}
	if !ok {
		cands, _ := loader.Order(man.Objects, facts, loader.Options{})
		for _, c := range cands {
			if line, ok = loader.LineOf(c.Object); ok {
				break
			}
		}
	}
	if !ok {
		t.Fatalf("kernel %s: no kernel line object to compare", facts.Release)
	}

	dir := grantDir(t) // ext4 in the guests: user xattrs on every kernel
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "passwd")
	if err := os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fence := filepath.Join(dir, "fence")
	if err := os.WriteFile(fence, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		t.Fatal(err)
	}
	fk, _, err := sensor.KeyOf(fence, true)
	if err != nil {
		t.Fatal(err)
	}
	fileID, treeID, fenceID := newID(), newID(), newID()

	type family struct {
		name string
		s    *sensor.Sensor
		c    *testutil.Collector
	}
	var fams []family
	for _, o := range man.Objects {
		if l, ok := loader.LineOf(o); !ok || l != line {
			continue
		}
		if o.Hooks == loader.HooksLSM && !kernel.HasLSM(facts.LSMs, "bpf") {
			// Its programs would never run (the vmtest lsm run boots
			// with the BPF LSM and compares it).
			t.Logf("kernel %s: object %s not compared: the BPF LSM is not active (%q%s)", facts.Release, o.Name, facts.LSMs, facts.LSMErr)
			continue
		}
		s, err := sensor.New(loader.Options{Log: zerolog.Nop(), Object: o.Name})
		if err != nil {
			if testutil.InVM() {
				// Trampolines and kprobes exist on every matrix kernel,
				// and the BPF LSM where it is active.
				t.Errorf("kernel %s: object %s (%s) did not load: %v", facts.Release, o.Name, o.Hooks, err)
			} else {
				t.Logf("kernel %s: object %s (%s) does not load here: %v", facts.Release, o.Name, o.Hooks, err)
			}
			continue
		}
		t.Cleanup(func() { s.Close() })
		if err := s.WatchInode(k, fileID, sensor.WatchFile); err != nil {
			t.Fatal(err)
		}
		if err := s.WatchInode(fk, fenceID, sensor.WatchFile); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WatchTree(tree, treeID); err != nil {
			t.Fatal(err)
		}
		fams = append(fams, family{o.Name, s, testutil.Collect(s)})
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(fams) < 2 {
		// Only on a kernel that refuses trampolines or has no kprobes (this
		// development host has neither); in the guests both load or the
		// test failed above.
		t.Skipf("kernel %s: %d of line %s's families load here; nothing to compare", facts.Release, len(fams), line)
	}
	marks := make([]int, len(fams))
	for i, f := range fams {
		marks[i] = f.c.Mark()
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	must("open", err)
	_, err = f.Write([]byte("bob:x:1000:1000::/home/bob:/bin/sh\n"))
	must("write", err)
	f.Close()
	must("chmod", os.Chmod(p, 0o600))
	must("chown", os.Chown(p, 1234, 5678))
	must("setxattr", unix.Setxattr(p, "user.vigil", []byte("v"), 0))
	tmp := filepath.Join(dir, "passwd.tmp")
	must("write tmp", os.WriteFile(tmp, []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644))
	must("rename over", os.Rename(tmp, p))
	must("mkdir in tree", os.Mkdir(filepath.Join(tree, "a"), 0o755))
	must("create in tree", os.WriteFile(filepath.Join(tree, "a", "f"), []byte("x\n"), 0o644))
	must("unlink", os.Remove(p))
	ff, err := os.OpenFile(fence, os.O_WRONLY|os.O_APPEND, 0)
	must("open fence", err)
	_, err = ff.Write([]byte("."))
	must("write fence", err)
	ff.Close()

	ours := func(e *sensor.Event) bool { return e.WatchID == fileID || e.WatchID == treeID }
	isFence := func(e *sensor.Event) bool { return e.WatchID == fenceID && e.Op == sensor.OpWrite }
	records := make([][]sensor.Event, len(fams))
	for i, fam := range fams {
		fam.c.WaitN(t, marks[i], 1, isFence)
		for _, e := range fam.c.Since(marks[i], ours) {
			n := *e
			n.BootNS, n.CPU = 0, 0
			records[i] = append(records[i], n)
		}
	}
	// Every operation was seen: the comparison is not of two empty lists.
	seen := map[sensor.Op]bool{}
	for _, e := range records[0] {
		seen[e.Op] = true
	}
	for _, op := range []sensor.Op{sensor.OpWrite, sensor.OpSetattr, sensor.OpSetxattr, sensor.OpRename,
		sensor.OpMkdir, sensor.OpCreate, sensor.OpUnlink} {
		if !seen[op] {
			t.Errorf("object %s: no %s record among %d", fams[0].name, op, len(records[0]))
		}
	}
	for i := 1; i < len(fams); i++ {
		a, b := records[0], records[i]
		if len(a) != len(b) {
			t.Errorf("object %s gave %d records, %s %d:\n%s\n%s", fams[0].name, len(a), fams[i].name, len(b),
				describeAll(a), describeAll(b))
			continue
		}
		for j := range a {
			if !reflect.DeepEqual(a[j], b[j]) {
				t.Errorf("record %d differs:\n  %s: %+v\n  %s: %+v", j, fams[0].name, a[j], fams[i].name, b[j])
			}
		}
	}
	t.Logf("kernel %s, line %s: %d records, the same from %d families", facts.Release, line, len(records[0]), len(fams))
}

func describeAll(es []sensor.Event) string {
	s := ""
	for i := range es {
		s += fmt.Sprintf("    %+v\n", es[i])
	}
	return s
}

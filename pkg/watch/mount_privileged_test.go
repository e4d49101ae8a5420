//go:build privileged

package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// TestMountReal: Mount with real mounts: a bind mount over a watched file
// re-keys it to the bound file, an overlay over a watched tree re-watches
// the tree at the overlay's root and takes in what the upper layer brings,
// and the umounts go back.
func TestMountReal(t *testing.T) {
	testutil.RequireRoot(t)
	root := tempRoot(t)
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(root, unix.MNT_DETACH)
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, f := range []string{"etc/passwd", "fake", "tree/conf", "up/planted"} {
		mkfile(t, p(f))
	}
	mkdir(t, p("work"))
	s, k := newSet(t, 0, config.Watch{Path: p("etc/passwd")}, config.Watch{Path: p("tree"), Recursive: true})
	if s.mntNS == 0 {
		t.Fatal("vigil's mount namespace was not read")
	}
	id := targetOf(t, s, kindTree, p("tree"))
	oldPasswd, oldTree, oldConf := keyOf(t, p("etc/passwd")), dirKeyOf(t, p("tree")), keyOf(t, p("tree/conf"))

	if err := unix.Mount(p("fake"), p("etc/passwd"), "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(p("etc/passwd"), unix.MNT_DETACH)
	cs := s.Mount(mountEvent(s, sensor.OpMount, p("etc/passwd")))
	if len(cs) != 1 || cs[0].Action != ActionShadowed || cs[0].File.Key != keyOf(t, p("fake")) {
		t.Fatalf("bind: %+v", cs)
	}
	wantNoEntry(t, k, oldPasswd)

	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", p("tree"), p("up"), p("work"))
	if err := unix.Mount("overlay", p("tree"), "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(p("tree"), unix.MNT_DETACH)
	cs = s.Mount(mountEvent(s, sensor.OpMount, p("tree")))
	got := map[string]Change{}
	for _, c := range cs {
		got[c.File.Path] = c
	}
	if len(cs) != 2 || got[p("tree/conf")].File == nil || got[p("tree/planted")].File == nil {
		t.Fatalf("overlay: %+v", cs)
	}
	newTree := dirKeyOf(t, p("tree"))
	if newTree == oldTree {
		t.Fatal("the overlay's root has the lower directory's key")
	}
	wantEntry(t, k, newTree, entry{ID: id, Flags: sensor.WatchRecursive})
	wantNoEntry(t, k, oldTree)
	wantEntry(t, k, keyOf(t, p("tree/conf")), entry{ID: id, Flags: sensor.WatchFile})
	wantNoEntry(t, k, oldConf)

	for _, m := range []string{p("tree"), p("etc/passwd")} {
		if err := unix.Unmount(m, 0); err != nil {
			t.Fatal(err)
		}
		cs := s.Mount(mountEvent(s, sensor.OpUmount, m))
		if len(cs) == 0 {
			t.Fatalf("umount %s: no changes", m)
		}
		for _, c := range cs {
			if c.Action != ActionUncovered {
				t.Fatalf("umount %s: %+v", m, c)
			}
		}
	}
	wantEntry(t, k, oldTree, entry{ID: id, Flags: sensor.WatchRecursive})
	wantEntry(t, k, oldConf, entry{ID: id, Flags: sensor.WatchFile})
	wantEntry(t, k, oldPasswd, entry{ID: targetOf(t, s, kindFile, p("etc/passwd")), Flags: sensor.WatchFile})
	if _, err := os.Lstat(p("tree/planted")); err == nil {
		t.Fatal("the upper layer's file is still there after the umount")
	}
	for _, w := range paths(s) {
		if w == p("tree/planted") {
			t.Fatal("the upper layer's file is still held after the umount")
		}
	}
}

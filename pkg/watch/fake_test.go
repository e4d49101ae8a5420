package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/pkg/sensor"
)

// entry is what the kernel's watched map holds for one inode.
type entry struct {
	ID    uint64
	Flags uint32
	Depth uint32
}

type nameKey struct {
	Dir  sensor.Key
	Name string
}

// fakeKernel records every call and keeps the maps as pkg/sensor's Sensor
// would: WatchInode replaces an entry (depth 0), WatchTree and WatchAnchor
// keep an existing entry's flags other than RECURSIVE and ANCHOR, and
// UnwatchDir drops the directory's entry.
type fakeKernel struct {
	calls  []string
	inodes map[sensor.Key]entry
	names  map[nameKey]uint64
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{inodes: map[sensor.Key]entry{}, names: map[nameKey]uint64{}}
}

func (k *fakeKernel) logf(format string, a ...any) {
	k.calls = append(k.calls, fmt.Sprintf(format, a...))
}

func (k *fakeKernel) WatchInode(key sensor.Key, id uint64, flags uint32) error {
	k.logf("WatchInode %v %d %d", key, id, flags)
	k.inodes[key] = entry{ID: id, Flags: flags}
	return nil
}

func (k *fakeKernel) UnwatchInode(key sensor.Key) error {
	k.logf("UnwatchInode %v", key)
	delete(k.inodes, key)
	return nil
}

func (k *fakeKernel) WatchName(dir sensor.Key, name string, id uint64) error {
	k.logf("WatchName %v %s %d", dir, name, id)
	k.names[nameKey{dir, name}] = id
	return nil
}

func (k *fakeKernel) UnwatchName(dir sensor.Key, name string) error {
	k.logf("UnwatchName %v %s", dir, name)
	delete(k.names, nameKey{dir, name})
	return nil
}

func (k *fakeKernel) WatchTree(dir string, id uint64) (sensor.Key, error) {
	k.logf("WatchTree %s %d", dir, id)
	return k.watchDir(dir, id, sensor.WatchRecursive, 0)
}

func (k *fakeKernel) WatchTreeDepth(dir string, id uint64, depth uint32) (sensor.Key, error) {
	k.logf("WatchTreeDepth %s %d %d", dir, id, depth)
	return k.watchDir(dir, id, sensor.WatchRecursive, depth)
}

func (k *fakeKernel) WatchAnchor(dir string, id uint64, depth uint32) (sensor.Key, error) {
	k.logf("WatchAnchor %s %d %d", dir, id, depth)
	return k.watchDir(dir, id, sensor.WatchAnchor, depth)
}

func (k *fakeKernel) watchDir(dir string, id uint64, flags, depth uint32) (sensor.Key, error) {
	key, _, err := sensor.KeyOf(dir, false)
	if err != nil {
		return sensor.Key{}, err
	}
	e := entry{ID: id, Flags: flags, Depth: depth}
	if old, ok := k.inodes[key]; ok {
		e.Flags |= old.Flags &^ (sensor.WatchRecursive | sensor.WatchAnchor)
	}
	k.inodes[key] = e
	return key, nil
}

func (k *fakeKernel) UnwatchDir(dir string, key sensor.Key) error {
	k.logf("UnwatchDir %s %v", dir, key)
	delete(k.inodes, key)
	return nil
}

// count returns how many calls start with prefix.
func (k *fakeKernel) count(prefix string) int {
	n := 0
	for _, c := range k.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

// Helpers shared by the tests.

// tempRoot is a fresh directory with symlinks resolved (the set stores
// resolved paths).
func tempRoot(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mkfile(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func keyOf(t *testing.T, p string) sensor.Key {
	t.Helper()
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func dirKeyOf(t *testing.T, p string) sensor.Key {
	t.Helper()
	k, _, err := sensor.KeyOf(p, false)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// paths lists the watched files' paths, sorted.
func paths(s *Set) []string {
	var out []string
	for _, f := range s.Files() {
		out = append(out, f.Path)
	}
	return out
}

func fileAt(t *testing.T, s *Set, p string) File {
	t.Helper()
	for _, f := range s.Files() {
		if f.Path == p {
			return f
		}
	}
	t.Fatalf("%s is not watched; watched: %v", p, paths(s))
	return File{}
}

// wantEntry checks the kernel's entry for an inode.
func wantEntry(t *testing.T, k *fakeKernel, key sensor.Key, want entry) {
	t.Helper()
	got, ok := k.inodes[key]
	if !ok {
		t.Fatalf("kernel has no entry for %v; calls:\n%s", key, strings.Join(k.calls, "\n"))
	}
	if got != want {
		t.Fatalf("kernel entry for %v = %+v, want %+v", key, got, want)
	}
}

func wantNoEntry(t *testing.T, k *fakeKernel, key sensor.Key) {
	t.Helper()
	if got, ok := k.inodes[key]; ok {
		t.Fatalf("kernel still has %+v for %v; calls:\n%s", got, key, strings.Join(k.calls, "\n"))
	}
}

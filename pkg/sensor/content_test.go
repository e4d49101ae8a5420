//go:build privileged

package sensor_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/loader"
	"github.com/vigil-fim/vigil/pkg/sensor"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// contentSeq numbers the watch entries of this file's tests, apart from the
// other tests' ids.
var contentSeq atomic.Uint64

func contentID() uint64 { return 1<<24 + contentSeq.Add(1) }

// watchIn creates dir/name with some content and watches it in s as the
// watch set does: its inode, and its name in its parent (which the
// tracepoint object's path filter needs).
func watchIn(t *testing.T, s *sensor.Sensor, dir, name string) (string, sensor.Key, uint64) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, _, err := sensor.KeyOf(p, true)
	if err != nil {
		t.Fatal(err)
	}
	id := contentID()
	if err := s.WatchInode(k, id, sensor.WatchFile); err != nil {
		t.Fatal(err)
	}
	dk, _, err := sensor.KeyOf(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WatchInode(dk, 0, sensor.WatchNames); err != nil {
		t.Fatal(err)
	}
	if err := s.WatchName(dk, name, id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.UnwatchInode(k)
		s.UnwatchName(dk, name)
		s.UnwatchInode(dk) // a stale directory entry would match a reused inode number
	})
	return p, k, id
}

// selfComm is this binary's comm as the kernel reports it.
func selfComm(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	comm := filepath.Base(exe)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	return comm
}

// isKprobe: the loaded object hooks the VFS functions (kprobe or fentry
// family, one source), not the syscall tracepoints.
func isKprobe() bool { return sens.Info().HookTyp != loader.HooksTracepoint }

// fence is a watched file whose record marks a point in the stream. The ring
// buffer is consumed in the order records were reserved, so once the fence's
// record has been collected, every record an operation made before the fence
// write has been collected too: "no record" and "no other record" become
// exact checks instead of sleeps.
type fence struct {
	path string
	key  sensor.Key
}

func newFence(t *testing.T) *fence {
	t.Helper()
	p, k, _ := watchIn(t, sens, t.TempDir(), "fence")
	return &fence{path: p, key: k}
}

func (f *fence) wait(t *testing.T) {
	t.Helper()
	mark := coll.Mark()
	fd, err := unix.Open(f.path, unix.O_WRONLY|unix.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("f")); err != nil {
		t.Fatal(err)
	}
	coll.WaitN(t, mark, 1, func(e *sensor.Event) bool { return e.File == f.key && e.Op == sensor.OpWrite })
}

func fsType(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return st.Type
}

// mountTmpfs mounts a fresh tmpfs on a new directory, unmounted at cleanup.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mounting tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// tmpfsBase is a tmpfs directory: t.TempDir() where that is tmpfs (the
// matrix guests), else a fresh tmpfs mount.
func tmpfsBase(t *testing.T) string {
	t.Helper()
	if d := t.TempDir(); fsType(t, d) == unix.TMPFS_MAGIC {
		return d
	}
	return mountTmpfs(t)
}

// diskBase is a directory on a disk filesystem: the guest's ext4 scratch
// disk, or on the host /var/tmp (or the root filesystem) when not tmpfs.
func diskBase(t *testing.T) string {
	t.Helper()
	var cands []string
	if testutil.InVM() {
		if got := fsType(t, "/mnt/ext4"); got != unix.EXT4_SUPER_MAGIC {
			t.Fatalf("/mnt/ext4 is not ext4 in the guest (statfs type %#x)", got)
		}
		cands = []string{"/mnt/ext4"}
	} else {
		cands = []string{"/var/tmp", "/root", "/"}
	}
	for _, c := range cands {
		switch fsType(t, c) {
		case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC:
			continue
		}
		d, err := os.MkdirTemp(c, "vigil-content-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	t.Fatalf("no disk filesystem among %v", cands)
	return ""
}

// contentEnv is what one case acts on.
type contentEnv struct {
	path string // the watched file
	src  string // an unwatched file in the same directory, 16 bytes
}

const srcData = "0123456789abcdef"

// contentCase is one way of changing a file's content or size.
type contentCase struct {
	name string
	op   sensor.Op // 0: the operation must make no record at all
	// hooks are the kprobe object's hooks that may report it (the
	// tracepoint object reports everything at sys_exit).
	hooks []string
	// max is how many records one call may make (0: one).
	max   int
	check func(t *testing.T, e *sensor.Event)
	// run performs the operation on the calling (locked) thread.
	run func(t *testing.T, c contentEnv)
	// after checks the file afterwards: the operation really happened.
	after func(t *testing.T, c contentEnv)
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func openFd(t *testing.T, p string, flags int) int {
	t.Helper()
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
	must(t, "open "+p, err)
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func wantN(t *testing.T, what string, n, want int, err error) {
	t.Helper()
	must(t, what, err)
	if n != want {
		t.Fatalf("%s: %d bytes, want %d", what, n, want)
	}
}

func wantSize(size int64) func(t *testing.T, c contentEnv) {
	return func(t *testing.T, c contentEnv) {
		t.Helper()
		st, err := os.Stat(c.path)
		must(t, "stat", err)
		if st.Size() != size {
			t.Errorf("size after the operation = %d, want %d", st.Size(), size)
		}
	}
}

func wantPrefix(prefix string) func(t *testing.T, c contentEnv) {
	return func(t *testing.T, c contentEnv) {
		t.Helper()
		b, err := os.ReadFile(c.path)
		must(t, "read back", err)
		if !bytes.HasPrefix(b, []byte(prefix)) {
			t.Errorf("file after the operation = %q, want it to start with %q", b, prefix)
		}
	}
}

func truncCheck(size uint64) func(t *testing.T, e *sensor.Event) {
	return func(t *testing.T, e *sensor.Event) {
		t.Helper()
		const attrSize = 1 << 3
		if e.Arg1&attrSize == 0 {
			t.Errorf("arg1 = %#x, want ATTR_SIZE (%#x) set", e.Arg1, attrSize)
		}
		if e.Arg2 != size {
			t.Errorf("arg2 (new size) = %d, want %d", e.Arg2, size)
		}
	}
}

var writeHooks = struct{ write, writev, iter, copy, notify, mmap []string }{
	write:  []string{"vfs_write"},
	writev: []string{"vfs_writev"},
	iter:   []string{"vfs_iter_write", "splice_write"},
	copy:   []string{"copy_file_range", "vfs_iter_write", "splice_write"},
	notify: []string{"notify_change"},
	mmap:   []string{"mmap"},
}

func contentCases() []contentCase {
	data := []byte("bob:x:0:0::/home/bob:/bin/sh\n")
	iovs := [][]byte{[]byte("bob:x:0:0:"), []byte(":/home/bob:/bin/sh\n")}
	iovLen := len(iovs[0]) + len(iovs[1])
	return []contentCase{
		{
			name: "write", op: sensor.OpWrite, hooks: writeHooks.write,
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_WRONLY|unix.O_APPEND)
				n, err := unix.Write(fd, data)
				wantN(t, "write", n, len(data), err)
			},
		},
		{
			name: "pwrite", op: sensor.OpWrite, hooks: writeHooks.write,
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_WRONLY)
				n, err := unix.Pwrite(fd, data, 0)
				wantN(t, "pwrite", n, len(data), err)
			},
			after: wantPrefix(string(data)),
		},
		{
			name: "writev", op: sensor.OpWrite, hooks: writeHooks.writev,
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_WRONLY|unix.O_APPEND)
				n, err := unix.Writev(fd, iovs)
				wantN(t, "writev", n, iovLen, err)
			},
		},
		{
			name: "pwritev", op: sensor.OpWrite, hooks: writeHooks.writev,
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_WRONLY)
				n, err := unix.Pwritev(fd, iovs, 0)
				wantN(t, "pwritev", n, iovLen, err)
			},
			after: wantPrefix(string(data)),
		},
		{
			name: "pwritev2", op: sensor.OpWrite, hooks: writeHooks.writev,
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_WRONLY)
				n, err := unix.Pwritev2(fd, iovs, 0, 0)
				wantN(t, "pwritev2", n, iovLen, err)
			},
			after: wantPrefix(string(data)),
		},
		{
			name: "sendfile", op: sensor.OpWrite, hooks: writeHooks.iter, max: 2,
			run: func(t *testing.T, c contentEnv) {
				in := openFd(t, c.src, unix.O_RDONLY)
				out := openFd(t, c.path, unix.O_WRONLY) // splice refuses O_APPEND
				var off int64
				n, err := unix.Sendfile(out, in, &off, len(srcData))
				wantN(t, "sendfile", n, len(srcData), err)
			},
			after: wantPrefix(srcData),
		},
		{
			name: "splice", op: sensor.OpWrite, hooks: writeHooks.iter, max: 2,
			run: func(t *testing.T, c contentEnv) {
				var p [2]int
				must(t, "pipe", unix.Pipe2(p[:], unix.O_CLOEXEC))
				t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
				n, err := unix.Write(p[1], []byte(srcData))
				wantN(t, "write to pipe", n, len(srcData), err)
				out := openFd(t, c.path, unix.O_WRONLY)
				var off int64
				n64, err := unix.Splice(p[0], nil, out, &off, len(srcData), 0)
				wantN(t, "splice", int(n64), len(srcData), err)
			},
			after: wantPrefix(srcData),
		},
		{
			name: "copy_file_range", op: sensor.OpWrite, hooks: writeHooks.copy, max: 3,
			run: func(t *testing.T, c contentEnv) {
				in := openFd(t, c.src, unix.O_RDONLY)
				out := openFd(t, c.path, unix.O_WRONLY)
				var inOff, outOff int64
				n, err := unix.CopyFileRange(in, &inOff, out, &outOff, len(srcData), 0)
				wantN(t, "copy_file_range", n, len(srcData), err)
			},
			after: wantPrefix(srcData),
		},
		{
			name: "truncate", op: sensor.OpTruncate, hooks: writeHooks.notify, check: truncCheck(7),
			run: func(t *testing.T, c contentEnv) {
				must(t, "truncate", unix.Truncate(c.path, 7))
			},
			after: wantSize(7),
		},
		{
			name: "ftruncate", op: sensor.OpTruncate, hooks: writeHooks.notify, check: truncCheck(3),
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_WRONLY)
				must(t, "ftruncate", unix.Ftruncate(fd, 3))
			},
			after: wantSize(3),
		},
		{
			name: "open_O_TRUNC", op: sensor.OpTruncate, hooks: writeHooks.notify, check: truncCheck(0),
			run: func(t *testing.T, c contentEnv) {
				openFd(t, c.path, unix.O_WRONLY|unix.O_TRUNC)
			},
			after: wantSize(0),
		},
		{
			name: "mmap_shared_writable", op: sensor.OpMmap, hooks: writeHooks.mmap,
			check: func(t *testing.T, e *sensor.Event) {
				if want := uint64(unix.PROT_READ | unix.PROT_WRITE); e.Arg1 != want {
					t.Errorf("arg1 (prot) = %#x, want %#x", e.Arg1, want)
				}
			},
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_RDWR)
				m, err := unix.Mmap(fd, 0, 4, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
				must(t, "mmap", err)
				m[0] = 'X'
				must(t, "munmap", unix.Munmap(m))
			},
			after: wantPrefix("Xoot:"),
		},
		{
			name: "mmap_shared_readonly",
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_RDONLY)
				m, err := unix.Mmap(fd, 0, 4, unix.PROT_READ, unix.MAP_SHARED)
				must(t, "mmap", err)
				if m[0] != 'r' {
					t.Errorf("mapped byte %q, want 'r'", m[0])
				}
				must(t, "munmap", unix.Munmap(m))
			},
		},
		{
			name: "mmap_private_writable",
			run: func(t *testing.T, c contentEnv) {
				fd := openFd(t, c.path, unix.O_RDONLY)
				m, err := unix.Mmap(fd, 0, 4, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
				must(t, "mmap", err)
				m[0] = 'X'
				must(t, "munmap", unix.Munmap(m))
			},
			after: wantPrefix("root:"),
		},
	}
}

// TestContentRecords: every way of changing a watched file's content or
// size, on a tmpfs and on a disk filesystem, makes records of exactly the
// right operation for that file, from the thread that did it, with the
// operation's own fields; read-only and private mappings make none.
func TestContentRecords(t *testing.T) {
	needSensor(t)
	fen := newFence(t)
	comm := selfComm(t)
	for _, fs := range []struct {
		name string
		base func(*testing.T) string
	}{{"tmpfs", tmpfsBase}, {"disk", diskBase}} {
		t.Run(fs.name, func(t *testing.T) {
			base := fs.base(t)
			for _, tc := range contentCases() {
				t.Run(tc.name, func(t *testing.T) {
					dir, err := os.MkdirTemp(base, tc.name+"-")
					must(t, "mkdir", err)
					t.Cleanup(func() { os.RemoveAll(dir) })
					runContentCase(t, tc, dir, fen, comm)
				})
			}
		})
	}
}

func runContentCase(t *testing.T, tc contentCase, dir string, fen *fence, comm string) {
	src := filepath.Join(dir, "src")
	must(t, "writing the source file", os.WriteFile(src, []byte(srcData), 0o644))
	p, k, id := watchIn(t, sens, dir, "passwd")
	dk, _, err := sensor.KeyOf(dir, false)
	must(t, "stat dir", err)
	env := contentEnv{path: p, src: src}

	hitsBefore, err := sens.Counters()
	must(t, "counters", err)
	mark := coll.Mark()
	tid := func() int {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		tc.run(t, env)
		return tid
	}()
	if tc.after != nil {
		tc.after(t, env)
	}
	if tc.op != 0 {
		waitRecord(t, mark, k, tc.op, func() string {
			// Which hooks ran at all during the operation (any file).
			after, err := sens.Counters()
			if err != nil {
				return err.Error()
			}
			d := map[string]uint64{}
			for h, v := range after.Hits {
				if v > hitsBefore.Hits[h] {
					d[h] = v - hitsBefore.Hits[h]
				}
			}
			return fmt.Sprintf("hook hits since the operation began: %v", d)
		})
	}
	fen.wait(t)
	got := coll.Since(mark, func(e *sensor.Event) bool { return e.File == k })
	if tc.op == 0 {
		for _, e := range got {
			t.Errorf("unexpected record: %s", describe(e))
		}
		return
	}
	max := tc.max
	if max == 0 {
		max = 1
	}
	if len(got) > max {
		t.Errorf("%d records for one call, want at most %d", len(got), max)
	}
	hooks := tc.hooks
	if !isKprobe() {
		hooks = []string{"sys_exit"}
	}
	for _, e := range got {
		var bad []string
		if e.Op != tc.op {
			bad = append(bad, fmt.Sprintf("op %v, want %v", e.Op, tc.op))
		}
		if !slices.Contains(hooks, e.Hook.String()) {
			bad = append(bad, fmt.Sprintf("hook %v, want one of %v", e.Hook, hooks))
		}
		if e.Match != sensor.MatchInode || e.WatchID != id {
			bad = append(bad, fmt.Sprintf("match %v id %d, want inode %d", e.Match, e.WatchID, id))
		}
		if e.Dir != dk || e.Path != "passwd" {
			bad = append(bad, fmt.Sprintf("dir %v path %q, want %v passwd", e.Dir, e.Path, dk))
		}
		if e.Proc.PID != uint32(os.Getpid()) || e.Proc.TID != uint32(tid) {
			bad = append(bad, fmt.Sprintf("pid/tid %d/%d, want %d/%d", e.Proc.PID, e.Proc.TID, os.Getpid(), tid))
		}
		if e.Proc.Comm != comm {
			bad = append(bad, fmt.Sprintf("comm %q, want %q", e.Proc.Comm, comm))
		}
		if len(bad) > 0 {
			t.Errorf("record %s: %v", describe(e), bad)
		}
		if tc.check != nil && e.Op == tc.op {
			tc.check(t, e)
		}
	}
}

// waitRecord waits for a record of op on k after mark; on timeout it says
// what did arrive for k.
func waitRecord(t *testing.T, mark int, k sensor.Key, op sensor.Op, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(testutil.Timeout())
	for {
		if len(coll.Since(mark, func(e *sensor.Event) bool { return e.File == k && e.Op == op })) > 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := coll.Since(mark, func(e *sensor.Event) bool { return e.File == k })
	var ds []string
	for _, e := range got {
		ds = append(ds, describe(e))
	}
	t.Fatalf("waited %v for a %v record of %v: none; %d other records for it: %v; %s",
		testutil.Timeout(), op, k, len(got), ds, diag())
}

func describe(e *sensor.Event) string {
	return fmt.Sprintf("{op %v hook %v match %v id %d file %v dir %v path %q arg1 %#x arg2 %d ret %d pid %d tid %d comm %q}",
		e.Op, e.Hook, e.Match, e.WatchID, e.File, e.Dir, e.Path, e.Arg1, e.Arg2, e.Ret,
		e.Proc.PID, e.Proc.TID, e.Proc.Comm)
}

// inodePair finds two files, one in each directory, with the same inode
// number, creating up to 50 in each.
func inodePair(t *testing.T, da, db string) (string, string, bool) {
	t.Helper()
	inos := map[uint64]string{}
	for i := 0; i < 50; i++ {
		p := filepath.Join(da, fmt.Sprintf("a%d", i))
		must(t, "create", os.WriteFile(p, []byte("a\n"), 0o644))
		_, st, err := sensor.KeyOf(p, true)
		must(t, "stat", err)
		inos[st.Ino] = p
	}
	for i := 0; i < 50; i++ {
		p := filepath.Join(db, fmt.Sprintf("b%d", i))
		must(t, "create", os.WriteFile(p, []byte("b\n"), 0o644))
		_, st, err := sensor.KeyOf(p, true)
		must(t, "stat", err)
		if a, ok := inos[st.Ino]; ok {
			return a, p, true
		}
	}
	return "", "", false
}

func appendByte(t *testing.T, p string) {
	t.Helper()
	fd := openFd(t, p, unix.O_WRONLY|unix.O_APPEND)
	n, err := unix.Write(fd, []byte("x"))
	wantN(t, "write "+p, n, 1, err)
}

// TestSameInodeOtherFilesystem: the watch set is keyed by (device, inode),
// so a file on another filesystem with the watched file's inode number is
// not watched.
func TestSameInodeOtherFilesystem(t *testing.T) {
	needSensor(t)
	fen := newFence(t)
	a, b, ok := inodePair(t, mountTmpfs(t), mountTmpfs(t))
	if !ok && testutil.InVM() {
		a, b, ok = inodePair(t, diskBase(t), mountTmpfs(t))
	}
	if !ok {
		t.Fatal("no two files with the same inode number on two fresh tmpfs mounts" +
			" (nor ext4 and tmpfs) within 50 files each")
	}
	ka, _, err := sensor.KeyOf(a, true)
	must(t, "stat", err)
	kb, _, err := sensor.KeyOf(b, true)
	must(t, "stat", err)
	if ka.Ino != kb.Ino || ka.Dev == kb.Dev {
		t.Fatalf("pair %v %v: want the same inode on two devices", ka, kb)
	}
	t.Logf("%s is %v, %s is %v", a, ka, b, kb)
	idA := contentID()
	must(t, "watch", sens.WatchInode(ka, idA, sensor.WatchFile))
	t.Cleanup(func() { sens.UnwatchInode(ka) })
	sameIno := func(e *sensor.Event) bool { return e.File.Ino == ka.Ino }

	mark := coll.Mark()
	appendByte(t, b)
	fen.wait(t)
	for _, e := range coll.Since(mark, sameIno) {
		t.Errorf("a write to the unwatched %v made a record: %s", kb, describe(e))
	}

	mark = coll.Mark()
	appendByte(t, a)
	coll.WaitN(t, mark, 1, func(e *sensor.Event) bool { return e.File == ka })
	fen.wait(t)
	for _, e := range coll.Since(mark, sameIno) {
		if e.File != ka || e.Op != sensor.OpWrite || e.WatchID != idA {
			t.Errorf("writing %v: record %s, want a write of %v with id %d", ka, describe(e), ka, idA)
		}
	}

	// Both watched under different ids: each write names its own entry.
	idB := contentID()
	must(t, "watch", sens.WatchInode(kb, idB, sensor.WatchFile))
	t.Cleanup(func() { sens.UnwatchInode(kb) })
	mark = coll.Mark()
	appendByte(t, b)
	coll.WaitN(t, mark, 1, func(e *sensor.Event) bool { return e.File == kb })
	fen.wait(t)
	for _, e := range coll.Since(mark, sameIno) {
		if e.File != kb || e.WatchID != idB {
			t.Errorf("writing %v: record %s, want file %v id %d", kb, describe(e), kb, idB)
		}
	}
}

// TestRingBufferFullIsCounted: with a one-page ring buffer nobody reads,
// records that do not fit are lost, and every one of them is counted: what
// arrives plus what was lost is what the entry matched, one per write.
func TestRingBufferFullIsCounted(t *testing.T) {
	needSensor(t)
	object, hooks := testutil.SensorForce()
	s2, err := sensor.New(loader.Options{RingBufferBytes: 4096, Log: zerolog.Nop(), Object: object, Hooks: hooks})
	if err != nil {
		t.Fatalf("second sensor with a 4096-byte ring buffer: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	p, k, id := watchIn(t, s2, t.TempDir(), "passwd")
	fen := newFence(t)

	n := testutil.Scale(2000, 4)
	mark := coll.Mark()
	fd := openFd(t, p, unix.O_WRONLY|unix.O_APPEND)
	for i := 0; i < n; i++ {
		if _, err := unix.Write(fd, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	type result struct {
		e   *sensor.Event
		err error
	}
	ch := make(chan result, 64)
	go func() {
		for {
			e, err := s2.Read()
			ch <- result{e, err}
			if err != nil {
				return
			}
		}
	}()
	quiet := 300 * time.Millisecond
	if testutil.InVM() {
		quiet = 2 * time.Second
	}
	var received, others int
	count := func(e *sensor.Event) {
		if e.File == k && e.Op == sensor.OpWrite && e.WatchID == id {
			received++
		} else {
			others++
			t.Errorf("second sensor: unexpected record %s", describe(e))
		}
	}
	timer := time.NewTimer(quiet)
read:
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("reading the second sensor: %v", r.err)
			}
			count(r.e)
			timer.Reset(quiet)
		case <-timer.C:
			break read
		}
	}
	ctr, err := s2.Counters()
	must(t, "counters", err)
	ent, found, err := s2.Lookup(k)
	must(t, "lookup", err)
	s2.Close()
	for r := range ch {
		if r.err != nil {
			if !errors.Is(r.err, sensor.ErrClosed) {
				t.Errorf("read after close: %v", r.err)
			}
			break
		}
		count(r.e) // read just before Close
	}

	// Runs the kernel skipped (a program already running on that CPU:
	// Counters.Skipped, docs/kernels.md) are counted as lost too, but a
	// skipped run need not have been one of these writes.
	skipped := ctr.Skipped()
	lost := ctr.TotalLost() - skipped
	var emitted uint64
	for _, v := range ctr.Emitted {
		emitted += v
	}
	t.Logf("%d writes: received %d, lost %d, emitted %d; counters %+v", n, received, lost, emitted, ctr)
	if received >= n {
		t.Errorf("received all %d records from a one-page ring buffer: nothing was lost", received)
	}
	if got := uint64(received) + lost; got > uint64(n) || got+skipped < uint64(n) {
		t.Errorf("received %d + lost %d = %d (and %d runs skipped), want %d", received, lost, got, skipped, n)
	}
	// The tracepoint object's path filter also emits records for other
	// processes' files of the same name ("passwd"), which Read resolves
	// and drops (Unmatched).
	if unmatched := s2.Unmatched(); emitted != uint64(received+others)+unmatched {
		t.Errorf("kernel says %d emitted, %d received, %d dropped as another file's", emitted, received+others, unmatched)
	}
	if !found {
		t.Fatalf("entry %v gone from the second sensor", k)
	} else if ent.Matches != uint64(n) {
		t.Errorf("entry matches = %d, want %d", ent.Matches, n)
	}
	fen.wait(t)
	for _, e := range coll.Since(mark, func(e *sensor.Event) bool { return e.File == k }) {
		t.Errorf("the first sensor reported a file only the second watches: %s", describe(e))
	}
}

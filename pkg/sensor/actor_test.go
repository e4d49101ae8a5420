//go:build privileged

package sensor_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/container"
	"github.com/vigil-fim/vigil/pkg/sensor"
)

// actorWrite runs a child that takes the given steps and then appends to a
// watched file; it returns the child's write record, with the fields every
// actor shares already checked: pid, tid, ppid (the test) and exe (the test
// binary).
func actorWrite(t *testing.T, steps ...string) (*sensor.Event, actorChildOut) {
	t.Helper()
	needSensor(t)
	p, k, id := watchFile(t, t.TempDir(), "passwd")
	mark := coll.Mark()
	out := actorRunChild(t, append(steps, "write="+p)...)
	e := coll.WaitN(t, mark, 1, func(e *sensor.Event) bool {
		return e.File == k && e.Proc.PID == uint32(out.pid)
	})[0]
	if e.Op != sensor.OpWrite || e.WatchID != id {
		t.Errorf("child's record: %s; want a write of watch %d", nmDescribe(e), id)
	}
	if tid := out.one(t, "tid"); e.Proc.TID != uint32(tid) {
		t.Errorf("tid = %d, want %d (the child's writing thread)", e.Proc.TID, tid)
	}
	if e.Proc.PPID != uint32(os.Getpid()) {
		t.Errorf("ppid = %d, want %d (the test)", e.Proc.PPID, os.Getpid())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if e.Proc.Exe != exe {
		t.Errorf("exe = %q, want %q", e.Proc.Exe, exe)
	}
	return e, out
}

func actorReadProcUint(t *testing.T, p string) uint32 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return uint32(v)
}

func actorNsInode(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// TestActorLoginUID: a child that sets its own login uid is reported with
// it, and with the new audit session that setting it opens.
func TestActorLoginUID(t *testing.T) {
	const auid = 4242
	if own := actorReadProcUint(t, "/proc/self/loginuid"); own == auid {
		t.Fatalf("the test already runs with login uid %d", own)
	}
	ownSession := actorReadProcUint(t, "/proc/self/sessionid")
	e, _ := actorWrite(t, "loginuid="+strconv.Itoa(auid))
	if e.Proc.AUID != auid {
		t.Errorf("auid = %d, want %d", e.Proc.AUID, auid)
	}
	if e.Proc.SessionID == ownSession || e.Proc.SessionID == ^uint32(0) {
		t.Errorf("session id = %d: want a set session other than the test's %d", e.Proc.SessionID, ownSession)
	}
	if own := actorNsInode(t, "/proc/self/ns/mnt"); e.Proc.MntNS != own {
		t.Errorf("mntns = %d, want the test's %d", e.Proc.MntNS, own)
	}
	if e.Proc.UID != 0 || e.Proc.EUID != 0 {
		t.Errorf("uid/euid = %d/%d, want 0/0", e.Proc.UID, e.Proc.EUID)
	}
}

// actorCgroup2Root finds where the cgroup2 hierarchy is mounted.
func actorCgroup2Root(t *testing.T) string {
	t.Helper()
	root, err := container.Cgroup2Mount()
	if err != nil || root == "" {
		t.Fatalf("no cgroup2 mount (%v)", err)
	}
	return root
}

// TestActorCgroup: a child moved into its own cgroup is reported with that
// cgroup's id (the cgroup directory's inode number).
func TestActorCgroup(t *testing.T) {
	needSensor(t)
	dir, err := os.MkdirTemp(actorCgroup2Root(t), "vigil-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The exited child can take a moment to leave the cgroup.
		for i := 0; ; i++ {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				return
			}
			if i == 50 {
				t.Errorf("removing cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	e, _ := actorWrite(t, "cgroup="+dir)
	if e.Proc.CgroupID != st.Ino {
		t.Errorf("cgroup id = %d, want %d (inode of %s)", e.Proc.CgroupID, st.Ino, dir)
	}
}

// TestActorMountNS: a child in its own mount namespace is reported with it.
func TestActorMountNS(t *testing.T) {
	own := actorNsInode(t, "/proc/self/ns/mnt")
	e, out := actorWrite(t, "unshare-mnt")
	child := out.one(t, "mntns")
	if uint64(e.Proc.MntNS) != child || e.Proc.MntNS == own {
		t.Errorf("mntns = %d, want the child's %d (the test's is %d)", e.Proc.MntNS, child, own)
	}
}

// TestActorRealUID: real and effective uid are read separately.
func TestActorRealUID(t *testing.T) {
	e, _ := actorWrite(t, "setresuid=1000,0,0")
	if e.Proc.UID != 1000 || e.Proc.EUID != 0 {
		t.Errorf("uid/euid = %d/%d, want 1000/0", e.Proc.UID, e.Proc.EUID)
	}
	if e.Proc.GID != 0 || e.Proc.EGID != 0 {
		t.Errorf("gid/egid = %d/%d, want 0/0", e.Proc.GID, e.Proc.EGID)
	}
}

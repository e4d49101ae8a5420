//go:build privileged

package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/testutil"
)

// ext4Dir returns a fresh directory on an ext4 filesystem, which reuses
// freed inode numbers (tmpfs does not): the guest's scratch disk in the
// kernel matrix, a loop-mounted image on the host.
func ext4Dir(t *testing.T) string {
	t.Helper()
	if testutil.InVM() {
		var st unix.Statfs_t
		if err := unix.Statfs("/mnt/ext4", &st); err != nil || st.Type != unix.EXT4_SUPER_MAGIC {
			t.Fatalf("/mnt/ext4 is not ext4 in the guest: %v (type %#x)", err, st.Type)
		}
		d, err := os.MkdirTemp("/mnt/ext4", "reuse-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	tmp := t.TempDir()
	img, mnt := filepath.Join(tmp, "ext4.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{{"truncate", "-s", "32M", img}, {"mkfs.ext4", "-F", "-q", img}, {"mount", "-o", "loop", img, mnt}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// TestInodeReuse: a watched file is deleted and an unrelated file gets its
// inode number (looped until the number really is reused). Nothing done to
// the unrelated file is attributed to the deleted file's path or inode.
func TestInodeReuse(t *testing.T) {
	needAgent(t)
	root := ext4Dir(t)
	etc := filepath.Join(root, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	pw, grp := filepath.Join(etc, "passwd"), filepath.Join(etc, "group")
	os.WriteFile(pw, []byte(passwd0), 0o644)
	os.WriteFile(grp, []byte(group0), 0o644)
	r, stop := runAgent(t, parseCfg(t, fmt.Sprintf(
		"[agent]\nstate_dir = %q\nheartbeat = \"0s\"\n[coalesce]\nwindow = \"50ms\"\n[[watch]]\npath = %q\n[[watch]]\npath = %q\n",
		filepath.Join(t.TempDir(), "state"), pw, grp)))
	defer stop()
	old := keyOf(t, pw)

	mark := r.mark()
	sh(t, "rm "+pw)
	r.wait(t, mark, "deleted", forPath(pw, "deleted"))
	after := r.mark()

	// Create unrelated files beside it until one gets the freed number.
	var reused string
	for i := 0; i < 2000 && reused == ""; i++ {
		p := filepath.Join(etc, "unrelated-"+strconv.Itoa(i))
		sh(t, ": > "+p)
		if k := keyOf(t, p); k == old {
			reused = p
		}
	}
	if reused == "" {
		t.Fatalf("ext4 did not reuse inode %s in 2000 creations", old)
	}
	t.Logf("%s reuses inode %s of the deleted %s", reused, old, pw)
	// Write, chmod, truncate and rename the unrelated file.
	sh(t, fmt.Sprintf("echo 'mallory:x:0:0::/:/bin/sh' >> %[1]s && chmod 600 %[1]s && : > %[1]s && mv %[1]s %[1]s.moved", reused))

	// A change to the other watched file, made after, is a barrier: its
	// record comes after any record the unrelated file could have caused.
	sh(t, "echo 'ops:x:2000:' >> "+grp)
	r.wait(t, after, "group modified", forPath(grp, "modified"))
	ino := strconv.FormatUint(old.Ino, 10)
	for _, x := range r.since(after, func(x rec) bool {
		return x.s("file.path") == pw || x.s("file.inode") == ino || x.s("vigil.inode.old") == ino
	}) {
		t.Errorf("record attributed to the deleted file: %s", x)
	}
}

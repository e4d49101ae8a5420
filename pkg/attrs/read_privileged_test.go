//go:build privileged

package attrs

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/testutil"
)

func readFile(t *testing.T, p string) *Set {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	s, err := ReadFd(fd, true, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tool(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
}

// TestReadRealTools: what setfacl, setcap and chattr write reads back as
// the ACL, capability and flags they set, on the host's disk and on tmpfs.
func TestReadRealTools(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.HostOnly(t, "setfacl, setcap and chattr are not in the busybox guests (pkg/agent's attrs test makes the same changes by syscall there)")
	tmpfs := t.TempDir()
	if err := unix.Mount("tmpfs", tmpfs, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(tmpfs, 0) })
	for name, dir := range map[string]string{"disk": t.TempDir(), "tmpfs": tmpfs} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			empty := readFile(t, p)
			if empty.ACL != nil || empty.Caps != nil || len(empty.Xattrs) != 0 {
				t.Fatalf("a new file has attributes: %+v", empty)
			}
			tool(t, "setfacl", "-m", "u:65534:rw,g:27:r", p)
			tool(t, "setcap", "cap_sys_admin,cap_chown+eip", p)
			s := readFile(t, p)
			if len(s.ACL) != 6 || s.ACL[1].Tag != TagUser || *s.ACL[1].ID != 65534 || s.ACL[1].Perm != "rw-" {
				t.Errorf("acl %+v", s.ACL)
			}
			if s.Caps == nil || !reflect.DeepEqual(s.Caps.PermittedNames(), []string{"cap_chown", "cap_sys_admin"}) ||
				!reflect.DeepEqual(s.Caps.InheritableNames(), s.Caps.PermittedNames()) || !s.Caps.Effective {
				t.Errorf("caps %+v", s.Caps)
			}
			if s.Flags != nil {
				tool(t, "chattr", "+a", p)
				f := readFile(t, p).Flags
				tool(t, "chattr", "-a", p)
				if f == nil || !reflect.DeepEqual(FlagNames(*f), []string{"append-only"}) {
					t.Errorf("flags after chattr +a: %v", f)
				}
			} else if name == "disk" {
				t.Error("no inode flags on the host's disk")
			}
			c := Diff(empty, readFile(t, p), 0o644, 0o644)
			if c == nil || c.ACL == nil || c.Caps == nil || !reflect.DeepEqual(c.Caps.RootEquivalent, []string{"cap_chown", "cap_sys_admin"}) {
				t.Errorf("diff %+v", c)
			}
			tool(t, "setfacl", "-b", p)
			tool(t, "setcap", "-r", p)
			if s := readFile(t, p); s.ACL != nil || s.Caps != nil {
				t.Errorf("after setfacl -b, setcap -r: %+v", s)
			}
		})
	}
}

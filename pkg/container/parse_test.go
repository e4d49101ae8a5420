package container

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const (
	hexA = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
	hexB = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid  = "2d5a8c3e-1b4f-4e6a-9c7d-0e1f2a3b4c5d"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		path string
		want Info
	}{
		// Docker: systemd and cgroupfs drivers.
		{"/system.slice/docker-" + hexA + ".scope", Info{ID: hexA, Runtime: Docker}},
		{"/docker/" + hexA, Info{ID: hexA, Runtime: Docker}},
		{"/docker/" + hexA + "/sub", Info{ID: hexA, Runtime: Docker}},
		// containerd's CRI plugin, cri-o.
		{"/system.slice/containerd.service/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") +
			".slice:cri-containerd:" + hexA, Info{}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") +
			".slice/cri-containerd-" + hexA + ".scope", Info{ID: hexA, Runtime: Containerd, PodUID: uid}},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") +
			".slice/crio-" + hexB + ".scope", Info{ID: hexB, Runtime: CRIO, PodUID: uid}},
		// A guaranteed pod's slice has no QoS class; its own cgroup has no container.
		{"/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice", Info{PodUID: uid}},
		// Kubernetes, cgroupfs driver: the runtime is not in the path.
		{"/kubepods/besteffort/pod" + uid + "/" + hexB, Info{ID: hexB, PodUID: uid}},
		// Podman: systemd and cgroupfs; conmon is not the container.
		{"/machine.slice/libpod-" + hexA + ".scope", Info{ID: hexA, Runtime: Podman}},
		{"/machine.slice/libpod-" + hexA + ".scope/container", Info{ID: hexA, Runtime: Podman}},
		{"/machine.slice/libpod-conmon-" + hexA + ".scope", Info{}},
		{"/libpod_parent/libpod-" + hexA, Info{ID: hexA, Runtime: Podman}},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + hexB + ".scope",
			Info{ID: hexB, Runtime: Podman}},
		// systemd-nspawn: registered with machined, or its template unit.
		{"/machine.slice/machine-web.scope", Info{ID: "web", Runtime: Nspawn}},
		{"/machine.slice/machine-web.scope/payload/system.slice/cron.service", Info{ID: "web", Runtime: Nspawn}},
		{`/machine.slice/machine-my\x2dbox.scope`, Info{ID: "my-box", Runtime: Nspawn}},
		{"/machine.slice/systemd-nspawn@db.service", Info{ID: "db", Runtime: Nspawn}},
		{"/machine.slice/systemd-nspawn@db.service/payload", Info{ID: "db", Runtime: Nspawn}},
		// machine-*.scope outside machine.slice is not machined's.
		{"/system.slice/machine-web.scope", Info{}},
		// runc with its systemd driver; with cgroupfs it names the cgroup
		// after the container (Resolve asks runc's state directory).
		{"/system.slice/runc-build42.scope", Info{ID: "build42", Runtime: Runc}},
		{"/" + hexA, Info{ID: hexA}},
		// Nested: the innermost container wins.
		{"/machine.slice/machine-web.scope/payload/system.slice/docker-" + hexB + ".scope",
			Info{ID: hexB, Runtime: Docker}},
		// Not containers.
		{"/", Info{}},
		{"", Info{}},
		{"/system.slice/sshd.service", Info{}},
		{"/user.slice/user-1000.slice/session-3.scope", Info{}},
		{"/system.slice/docker.service", Info{}},
		{"/system.slice/docker-notanid.scope", Info{}},
		{"/docker/" + hexA[:63], Info{}},
		{"/docker/" + strings.ToUpper(hexA), Info{}},
		{"/kubepods/besteffort/podnot-a-uid", Info{}},
		{"/system.slice/systemd-nspawn@.service", Info{}},
	} {
		if got := Parse(c.path); got != c.want {
			t.Errorf("Parse(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}

func TestUnescapeUnit(t *testing.T) {
	for in, want := range map[string]string{
		`a\x2db`: "a-b", `plain`: "plain", `\x2`: `\x2`, `\xzz`: `\xzz`, `x\x2D`: "x-",
	} {
		if got := unescapeUnit(in); got != want {
			t.Errorf("unescapeUnit(%q) = %q, want %q", in, got, want)
		}
	}
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// The cache is seeded by a walk (a directory's inode number is its id),
// kept by Add, walks again on a miss at most once a second, and asks runc's
// state directory about a name only the runtime can claim.
func TestCache(t *testing.T) {
	root := t.TempDir()
	scope := filepath.Join(root, "system.slice", "docker-"+hexA+".scope")
	if err := os.MkdirAll(scope, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	p, info, ok := c.Resolve(ino(t, scope))
	if !ok || p != "/system.slice/docker-"+hexA+".scope" || info != (Info{ID: hexA, Runtime: Docker}) {
		t.Fatalf("walked scope: %q %+v %v", p, info, ok)
	}
	if p, _, ok := c.Resolve(ino(t, root)); !ok || p != "/" {
		t.Fatalf("the root: %q %v", p, ok)
	}
	// A record's cgroup is known without a walk.
	walks := c.Walks()
	c.Add(1<<40, "/machine.slice/machine-web.scope")
	if _, info, ok := c.Resolve(1 << 40); !ok || info != (Info{ID: "web", Runtime: Nspawn}) {
		t.Fatalf("added: %+v %v", info, ok)
	}
	if c.Walks() != walks {
		t.Fatalf("a known id walked cgroupfs")
	}
	// A cgroup made after the walk whose record was lost: found by the
	// next walk, not sooner than a second after the last.
	late := filepath.Join(root, hexB)
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	c.lastWalk = c.lastWalk.Add(-2 * rewalkEvery)
	runc := t.TempDir()
	c.RuncRoots = []string{runc}
	if err := os.MkdirAll(filepath.Join(runc, hexB), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runc, hexB, "state.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, info, ok = c.Resolve(ino(t, late))
	if !ok || p != "/"+hexB || info != (Info{ID: hexB, Runtime: Runc}) {
		t.Fatalf("late cgroup: %q %+v %v", p, info, ok)
	}
	if c.Walks() != walks+1 {
		t.Fatalf("walks %d, want %d", c.Walks(), walks+1)
	}
	// An unknown id right after a walk does not walk again.
	if _, _, ok := c.Resolve(12345678901); ok {
		t.Fatal("an unknown id resolved")
	}
	if c.Walks() != walks+1 {
		t.Fatalf("a miss within a second of a walk walked again")
	}
	// A named runc container (not 64 hex digits) is runc's only by its state.
	named := filepath.Join(root, "build42")
	if err := os.Mkdir(named, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Add(ino(t, named), "/build42")
	if _, info, _ := c.Resolve(ino(t, named)); info != (Info{}) {
		t.Fatalf("no runc state: %+v", info)
	}
	other := filepath.Join(root, "build43")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(runc, "build43"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(runc, "build43", "state.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Add(ino(t, other), "/build43")
	if _, info, _ := c.Resolve(ino(t, other)); info != (Info{ID: "build43", Runtime: Runc}) {
		t.Fatalf("runc state: %+v", info)
	}
}

func TestCgroup2Mount(t *testing.T) {
	if _, err := Cgroup2Mount(); err != nil {
		t.Fatal(err)
	}
}

// The zero Cache (no cgroup2 mount) is filled by the kernel's records alone.
func TestZeroCache(t *testing.T) {
	var c Cache
	if _, _, ok := c.Resolve(7); ok {
		t.Fatal("an empty cache resolved")
	}
	c.Add(7, "/system.slice/docker-"+hexA+".scope")
	if p, info, ok := c.Resolve(7); !ok || p != "/system.slice/docker-"+hexA+".scope" || info.Runtime != Docker {
		t.Fatalf("%q %+v %v", p, info, ok)
	}
	if c.Walks() != 0 {
		t.Fatal("walked without a mount")
	}
}

//go:build privileged

package agent_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-fim/vigil/pkg/container"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// cgroup2Root finds where the cgroup2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	root, err := container.Cgroup2Mount()
	if err != nil || root == "" {
		t.Fatalf("no cgroup2 mount (%v)", err)
	}
	return root
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// rmCgroups removes cgroup directories, innermost first, once their
// processes have left.
func rmCgroups(t *testing.T, dirs ...string) {
	t.Helper()
	for i := len(dirs) - 1; i >= 0; i-- {
		for n := 0; ; n++ {
			err := unix.Rmdir(dirs[i])
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if n == 100 {
				t.Errorf("removing cgroup %s: %v", dirs[i], err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestContainerCgroup does what a runtime does: it creates a container's
// cgroup as the runtime names it, moves a process into it, and the process
// writes a watched file at once. The record names the container, from the
// kernel's record of the cgroup's creation (the cgroup is newer than the
// agent's walk of cgroupfs). No runtime binary is needed: this runs in
// every guest of the matrix.
func TestContainerCgroup(t *testing.T) {
	needAgent(t)
	cg := cgroup2Root(t)
	id := randomHex(t, 32)
	uid := "2d5a8c3e-1b4f-4e6a-9c7d-" + randomHex(t, 6)
	for _, c := range []struct {
		name                    string
		dirs                    []string // below a fresh top-level cgroup
		wantID, wantRT, wantPod string
	}{
		{"docker", []string{"system.slice", "docker-" + id + ".scope"}, id, "docker", ""},
		{"cri", []string{"kubepods.slice", "kubepods-besteffort.slice",
			"kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice",
			"cri-containerd-" + id + ".scope"}, id, "containerd", uid},
		{"podman", []string{"machine.slice", "libpod-" + id + ".scope"}, id, "podman", ""},
		{"nspawn-scope", []string{"machine.slice", `machine-vigil\x2dtest.scope`, "payload"}, "vigil-test", "systemd-nspawn", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			top, err := os.MkdirTemp(cg, "vigil-ctr-")
			if err != nil {
				t.Fatal(err)
			}
			dirs := []string{top}
			cur := top
			for _, d := range c.dirs {
				cur = filepath.Join(cur, d)
				if err := os.Mkdir(cur, 0o755); err != nil {
					t.Fatal(err)
				}
				dirs = append(dirs, cur)
			}
			defer rmCgroups(t, dirs...)
			p := filepath.Join(root, "srv/tree", "ctr-"+c.name+".txt")
			mark := recs.mark()
			// The shell moves itself in, then writes: as a container's
			// first process does after the runtime made its cgroup.
			pid := sh(t, "echo $$ > '"+cur+"/cgroup.procs' && echo hi > '"+p+"'")
			r := recs.wait(t, mark, "created in "+c.name, forPath(p, "created"))
			if got := r.get("process.pid"); got != float64(pid) {
				t.Errorf("process.pid %v, want %d", got, pid)
			}
			wantPath := "/" + strings.TrimPrefix(cur, cg+"/")
			if got := r.s("vigil.process.cgroup"); got != wantPath {
				t.Errorf("vigil.process.cgroup %q, want %q", got, wantPath)
			}
			if r.s("container.id") != c.wantID || r.s("container.runtime") != c.wantRT {
				t.Errorf("container %q/%q, want %q/%q: %s", r.s("container.id"), r.s("container.runtime"), c.wantID, c.wantRT, r)
			}
			if r.s("orchestrator.resource.id") != c.wantPod {
				t.Errorf("orchestrator.resource.id %q, want %q", r.s("orchestrator.resource.id"), c.wantPod)
			}
			if c.wantPod != "" && (r.s("orchestrator.type") != "kubernetes" || r.s("orchestrator.resource.type") != "pod") {
				t.Errorf("orchestrator: %s", r)
			}
		})
	}
	// Outside any container: no container fields, the cgroup path all the same.
	p := filepath.Join(root, "srv/tree", "ctr-none.txt")
	mark := recs.mark()
	sh(t, "echo hi > '"+p+"'")
	r := recs.wait(t, mark, "created outside a container", forPath(p, "created"))
	if r.get("container") != nil || r.get("orchestrator") != nil {
		t.Errorf("a host process's record names a container: %s", r)
	}
	if r.s("vigil.process.cgroup") == "" {
		t.Errorf("no vigil.process.cgroup: %s", r)
	}
}

// runcBundle makes a runc bundle: a static busybox as the root file system,
// `runc spec`'s config with args as the process and dir bind-mounted at
// /watched.
func runcBundle(t *testing.T, dir string, args ...string) string {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (Debian busybox-static): %v", err)
	}
	b := t.TempDir()
	rootfs := filepath.Join(b, "rootfs")
	for _, d := range []string{"bin", "watched", "proc", "dev", "sys", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("runc", "spec")
	cmd.Dir = b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	cfgPath := filepath.Join(b, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	spec["root"].(map[string]any)["readonly"] = false
	spec["mounts"] = append(spec["mounts"].([]any), map[string]any{
		"destination": "/watched", "type": "bind", "source": dir, "options": []string{"rbind", "rw"}})
	if raw, err = json.Marshal(spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContainerRunc: a file written inside a container that runc runs from
// a local bundle carries the container's id and runtime "runc". runc, given
// no cgroupsPath, names the container's cgroup after its id (/<id>); the
// runtime is runc's because runc's state directory holds that container
// while it runs.
func TestContainerRunc(t *testing.T) {
	needAgent(t)
	if _, err := exec.LookPath("runc"); err != nil {
		// Debian's runc is dynamically linked (libseccomp, libc). Laid
		// over the busybox guest's root with its libraries, runc 1.1.5
		// stopped at its cloned-binary step ("could not ensure we are a
		// cloned binary: No such file or directory"), so the guests test
		// what a runtime does instead (TestContainerCgroup).
		testutil.HostOnly(t, "runc is not in the guest (TestContainerCgroup does what runtimes do there)")
		t.Fatalf("runc (Debian runc, scripts/deps.sh): %v", err)
	}
	for _, id := range []string{randomHex(t, 32), "vigil-" + randomHex(t, 4)} {
		dir := filepath.Join(root, "srv/tree")
		name := "runc-" + id[:12] + ".txt"
		b := runcBundle(t, dir, "/bin/sh", "-c", "echo from-runc > /watched/"+name)
		mark := recs.mark()
		cmd := exec.Command("runc", "run", "--bundle", b, id)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("runc run: %v: %s", err, out)
		}
		r := recs.wait(t, mark, "created by runc", forPath(filepath.Join(dir, name), "created"))
		if r.s("container.id") != id || r.s("container.runtime") != "runc" {
			t.Errorf("container %q/%q, want %q/runc: %s", r.s("container.id"), r.s("container.runtime"), id, r)
		}
		if got := r.s("vigil.process.cgroup"); got != "/"+id {
			t.Errorf("vigil.process.cgroup %q, want %q", got, "/"+id)
		}
		if r.s("process.executable") != "/bin/busybox" {
			t.Errorf("process.executable %q, want /bin/busybox (the container's)", r.s("process.executable"))
		}
	}
}

// nspawnEnv is set by scripts/test-nspawn.sh, which runs TestContainerNspawn
// in a guest with systemd as PID 1: systemd-nspawn registers its container
// with systemd-machined, which makes its scope (machine.slice/
// machine-<name>.scope), and needs systemd for it. The host vigil is
// developed on and the matrix guests run no systemd.
const nspawnEnv = "VIGIL_TEST_NSPAWN"

// TestContainerNspawn: a file written inside a container that
// systemd-nspawn runs from a local root (a static busybox) carries the
// machine's name as container.id and runtime systemd-nspawn.
func TestContainerNspawn(t *testing.T) {
	needAgent(t)
	if os.Getenv(nspawnEnv) != "1" {
		t.Skip("HOST-ONLY: needs systemd as PID 1 and systemd-machined (scripts/test-nspawn.sh runs it in a systemd guest)")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox: %v", err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	for _, d := range []string{"bin", "usr", "etc", "watched"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", "sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "os-release"), []byte("ID=busybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := "vigil-" + randomHex(t, 4)
	dir := filepath.Join(root, "srv/tree")
	file := "nspawn-" + name + ".txt"
	mark := recs.mark()
	cmd := exec.Command("systemd-nspawn", "--quiet", "--console=pipe", "-D", rootfs, "-M", name,
		"--bind="+dir+":/watched", "/bin/sh", "-c", "cat /proc/self/cgroup; echo from-nspawn > /watched/"+file)
	out, err := cmd.CombinedOutput()
	t.Logf("systemd-nspawn: %s", out)
	if err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	r := recs.wait(t, mark, "created by systemd-nspawn", forPath(filepath.Join(dir, file), "created"))
	if r.s("container.id") != name || r.s("container.runtime") != "systemd-nspawn" || r.s("container.name") != name {
		t.Errorf("container %q/%q (name %q), want %q/systemd-nspawn: %s", r.s("container.id"), r.s("container.runtime"),
			r.s("container.name"), name, r)
	}
	if cg := r.s("vigil.process.cgroup"); !strings.HasPrefix(cg, "/machine.slice/machine-") {
		t.Errorf("vigil.process.cgroup %q, want machined's scope in machine.slice", cg)
	}
}

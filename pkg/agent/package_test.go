//go:build privileged

package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-fim/vigil/pkg/agent"
	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// buildDeb builds vigiltest_VERSION_all.deb with dpkg-deb: /opt/vigiltest/tool
// (content tool), the conffile /etc/vigiltest/tool.conf (conf), and a
// postinst (script, run with sh; $DPKG_ROOT is the scratch root).
func buildDeb(t *testing.T, dir, version, tool, conf, script string) string {
	t.Helper()
	p := filepath.Join(dir, "vigiltest-"+version)
	files := map[string]string{
		"DEBIAN/control": "Package: vigiltest\nVersion: " + version + "\nArchitecture: all\n" +
			"Maintainer: vigil <vigil@example.org>\nDescription: vigil's package test\n",
		"DEBIAN/conffiles":        "/etc/vigiltest/tool.conf\n",
		"DEBIAN/postinst":         "#!/bin/sh\nset -e\n" + script + "\n",
		"opt/vigiltest/tool":      tool,
		"etc/vigiltest/tool.conf": conf,
	}
	for rel, content := range files {
		f := filepath.Join(p, rel)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if rel == "DEBIAN/postinst" {
			mode = 0o755
		}
		if err := os.WriteFile(f, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	deb := p + ".deb"
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", p, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, out)
	}
	return deb
}

// dpkg runs dpkg on the scratch root: the host's package state is never
// touched (--root: its own database and install tree; maintainer scripts
// run without chroot, with $DPKG_ROOT set).
func dpkg(t *testing.T, args ...string) {
	t.Helper()
	pkgroot := filepath.Join(root, "pkgroot")
	all := append([]string{"--root=" + pkgroot, "--force-script-chrootless", "--force-confold"}, args...)
	if out, err := exec.Command("dpkg", all...).CombinedOutput(); err != nil {
		t.Fatalf("dpkg %v: %v\n%s", all, err, out)
	}
}

// pkgRecord waits for the record of path whose writer was below dpkg with
// the given verdict.
func pkgRecord(t *testing.T, mark int, path, what string, match func(rec) bool) rec {
	t.Helper()
	return recs.wait(t, mark, what, func(r rec) bool {
		return r.s("file.path") == path && r.s("vigil.package.manager") == "dpkg" && match(r)
	})
}

func checkPkg(t *testing.T, r rec, version, verified string, script bool) {
	t.Helper()
	if r.s("vigil.package.name") != "vigiltest" || r.s("vigil.package.version") != version ||
		r.s("vigil.package.verified") != verified || r.get("vigil.package.script") != script ||
		r.s("vigil.package.root_pid") == "" || r.s("vigil.package.root_pid") == "0" {
		t.Errorf("want vigiltest %s %s (script %v): %s", version, verified, script, r)
	}
	wantKind := "event"
	if verified == "mismatch" {
		wantKind = "alert"
	}
	if r.s("event.kind") != wantKind {
		t.Errorf("event.kind %q, want %q: %s", r.s("event.kind"), wantKind, r)
	}
}

// TestDpkgPackage: a .deb built here is installed, upgraded and removed
// with dpkg under the running agent. Every change dpkg and its scripts make
// is marked dpkg and checked against dpkg's database: the package's files
// match, a file its postinst writes is not-packaged, a conffile its postinst
// edits is conffile, a packaged file its postinst overwrites is mismatch
// (an alert); a hand edit afterwards is unmarked; a removal is marked.
func TestDpkgPackage(t *testing.T) {
	needAgent(t)
	testutil.HostOnly(t, "dpkg and dpkg-deb")
	dir := t.TempDir()
	pkgroot := filepath.Join(root, "pkgroot")
	tool := filepath.Join(pkgroot, "opt/vigiltest/tool")
	conf := filepath.Join(pkgroot, "etc/vigiltest/tool.conf")
	state := filepath.Join(pkgroot, "etc/vigiltest/state")
	v1 := buildDeb(t, dir, "1.0", "tool 1\n", "key=1\n", `echo "configured $1" >> "$DPKG_ROOT/etc/vigiltest/state"`)
	v2 := buildDeb(t, dir, "2.0", "tool 2\n", "key=2\n", `echo "configured $1" >> "$DPKG_ROOT/etc/vigiltest/state"`)
	v3 := buildDeb(t, dir, "3.0", "tool 3\n", "key=2\n",
		`echo "tuned=1" >> "$DPKG_ROOT/etc/vigiltest/tool.conf"`+"\n"+
			`printf 'not what the package has\n' > "$DPKG_ROOT/opt/vigiltest/tool"`)

	// Install.
	mark := recs.mark()
	dpkg(t, "-i", v1)
	r := pkgRecord(t, mark, tool, "tool installed", func(r rec) bool { return r.s("vigil.package.version") == "1.0" })
	checkPkg(t, r, "1.0", "match", false)
	r = pkgRecord(t, mark, conf, "conffile installed", func(r rec) bool { return r.s("vigil.package.version") == "1.0" })
	checkPkg(t, r, "1.0", "match", false)
	r = pkgRecord(t, mark, state, "postinst's file", func(r rec) bool { return true })
	if r.s("vigil.package.verified") != "not-packaged" || r.get("vigil.package.script") != true || r.s("event.kind") != "event" {
		t.Errorf("postinst's own file: want not-packaged, script: %s", r)
	}
	if r.s("vigil.package.name") != "" {
		t.Errorf("a file no package owns names a package: %s", r)
	}

	// Upgrade.
	mark = recs.mark()
	dpkg(t, "-i", v2)
	r = pkgRecord(t, mark, tool, "tool upgraded", func(r rec) bool { return r.s("vigil.package.version") == "2.0" })
	checkPkg(t, r, "2.0", "match", false)
	r = pkgRecord(t, mark, conf, "conffile upgraded", func(r rec) bool { return r.s("vigil.package.version") == "2.0" })
	checkPkg(t, r, "2.0", "match", false)

	// A hand edit afterwards: unmarked.
	mark = recs.mark()
	sh(t, "echo 'by hand' >> "+tool)
	r = recs.wait(t, mark, "hand edit", forPath(tool, "modified"))
	if r.get("vigil.package") != nil {
		t.Errorf("a hand edit carries a package mark: %s", r)
	}

	// A postinst that edits the conffile and overwrites the binary.
	mark = recs.mark()
	dpkg(t, "-i", v3)
	r = pkgRecord(t, mark, conf, "conffile edited by postinst", func(r rec) bool {
		return r.get("vigil.package.script") == true
	})
	checkPkg(t, r, "3.0", "conffile", true)
	r = pkgRecord(t, mark, tool, "binary overwritten by postinst", func(r rec) bool {
		return r.get("vigil.package.script") == true
	})
	checkPkg(t, r, "3.0", "mismatch", true)

	// Remove: the deletion is marked. dpkg unlinks the file, then removes
	// its directories up to the watched tree's root: on the tracepoint
	// object the record is resolved after they are gone, through the
	// inode the tree's root had (pkg/sensor, dirKey).
	t.Run("remove", func(t *testing.T) {
		mark := recs.mark()
		dpkg(t, "-r", "vigiltest")
		if out, err := exec.Command("dpkg", "--root="+pkgroot, "-l").CombinedOutput(); err == nil &&
			strings.Contains(string(out), "ii  vigiltest") {
			t.Errorf("still installed after -r:\n%s", out)
		}
		r := pkgRecord(t, mark, tool, "tool removed", func(r rec) bool { return r.s("event.action") == "deleted" })
		if r.get("vigil.package.script") != false || r.get("vigil.package.verified") != nil {
			t.Errorf("removal: want dpkg itself, no verdict on a file that is gone: %s", r)
		}
	})
}

// fakeManagerEnv makes the test binary a package manager's stand-in: run
// as a copy named dpkg, the kernel marks it like the real one. Its value
// is an action and its argument, separated by \x1f: "create PATH" creates
// (and writes nothing to) PATH itself; "sh SCRIPT" runs sh -c SCRIPT as
// its child and exits with its status.
const fakeManagerEnv = "VIGIL_FAKE_MANAGER"

func fakeManagerMain(spec string) int {
	action, arg, _ := strings.Cut(spec, "\x1f")
	switch action {
	case "create":
		f, err := os.OpenFile(arg, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		f.Close()
		return 0
	case "sh":
		cmd := exec.Command("sh", "-c", arg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "%s: unknown action %q\n", fakeManagerEnv, action)
	return 2
}

// fakeManager returns a command that runs the test binary, copied as
// name, as a package manager's stand-in doing action with arg.
func fakeManager(t *testing.T, name, action, arg string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p)
	cmd.Env = append(os.Environ(), fakeManagerEnv+"="+action+"\x1f"+arg)
	return cmd
}

// TestPackageVerdictPending: a package manager's change whose verdict is
// pending (a file no package owns, created while the database has not
// changed since: dpkg may not have recorded it yet) waits for its verdict
// alone. A change made after it, by hand, to another watched file is
// recorded first; a later change to the same file waits behind it; once
// the database changes (dpkg's status touched, no lock held) the pending
// record is written with its verdict, then the one behind it.
func TestPackageVerdictPending(t *testing.T) {
	needAgent(t)
	pkgroot := filepath.Join(root, "pkgroot")
	// Outside the packages' root: no package owns it.
	pending := filepath.Join(root, "srv/tree/pending-"+t.Name())
	other := filepath.Join(root, "srv/tree/unrelated-"+t.Name())
	t.Cleanup(func() { os.Remove(pending); os.Remove(other) })

	mark := recs.mark()
	if out, err := fakeManager(t, "dpkg", "create", pending).CombinedOutput(); err != nil {
		t.Fatalf("fake dpkg: %v: %s", err, out)
	}
	sh(t, "echo 'by hand' > "+other)
	sh(t, "echo 'by hand, after dpkg' >> "+pending)
	first := recs.wait(t, mark, "the unrelated change", forPath(other, "created"))
	if r := recs.find(func(r rec) bool { return r.s("file.path") == pending }); r != nil {
		t.Fatalf("the pending record was written before the database changed: %s", r)
	}
	if first.get("vigil.package") != nil {
		t.Errorf("a hand edit carries a package mark: %s", first)
	}

	// The database changes and no manager holds the lock: the verdict is final.
	now := time.Now()
	if err := os.Chtimes(filepath.Join(pkgroot, "var/lib/dpkg/status"), now, now); err != nil {
		t.Fatal(err)
	}
	r := recs.wait(t, mark, "the pending record", forPath(pending, "created"))
	if r.s("vigil.package.manager") != "dpkg" || r.s("vigil.package.verified") != "not-packaged" ||
		r.get("vigil.package.script") != false {
		t.Errorf("want dpkg's own write, not-packaged: %s", r)
	}
	behind := recs.wait(t, mark, "the change behind it", forPath(pending, "modified"))
	if behind.get("vigil.package") != nil {
		t.Errorf("a hand edit carries a package mark: %s", behind)
	}
	seq := func(r rec) float64 { f, _ := r.get("event.sequence").(float64); return f }
	if !(seq(first) < seq(r) && seq(r) < seq(behind)) {
		t.Errorf("sequence: unrelated %v, pending %v, behind it %v: want them in the order written",
			seq(first), seq(r), seq(behind))
	}
	ts := func(r rec) time.Time { t, _ := time.Parse(time.RFC3339Nano, r.s("@timestamp")); return t }
	if !ts(r).Before(ts(first)) {
		t.Errorf("@timestamp: the pending record's change (%s) was made before the unrelated one (%s)",
			r.s("@timestamp"), first.s("@timestamp"))
	}
}

// TestPackageManagerRunningAtStart: a package manager already running when
// the agent starts (its exec came before the sensor) is marked from /proc
// at start, with its descendants: a change a process below it makes after
// the start carries its mark. The writer is forked after the start, from
// a child the agent found running: the kernel passes the seeded mark on.
func TestPackageManagerRunningAtStart(t *testing.T) {
	needAgent(t)
	dir := t.TempDir()
	watched := filepath.Join(dir, "tree")
	if err := os.MkdirAll(watched, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(watched, "written-by-a-script")
	goFile := filepath.Join(dir, "go")
	// dpkg -> sh (waits for goFile) -> a subshell (the writer, forked
	// after the agent started; "; true": not run in the shell's place).
	script := fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.05; done; (echo from-a-script > %s); true`, goFile, target)
	cmd := fakeManager(t, "dpkg", "sh", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.WriteFile(goFile, nil, 0o644)
		cmd.Wait()
	})
	cfg, err := config.Parse("running.toml", []byte(fmt.Sprintf(`
[agent]
state_dir = %q
[output]
stdout = false
[[watch]]
path = %q
recursive = true
`, filepath.Join(dir, "state"), watched)))
	if err != nil {
		t.Fatal(err)
	}
	r, stop := startAgent(t, agent.Options{Config: cfg})
	defer stop()
	mark := r.mark()
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("fake dpkg: %v", err)
	}
	rec := r.wait(t, mark, "the script's file", forPath(target, "created"))
	if rec.s("vigil.package.manager") != "dpkg" || rec.get("vigil.package.script") != true ||
		rec.s("vigil.package.root_pid") != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("want marked dpkg (root pid %d), script: %s", cmd.Process.Pid, rec)
	}
}

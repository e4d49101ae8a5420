//go:build privileged

package pkgmgr_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vigil-fim/vigil/pkg/pkgmgr"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

const testSpec = `Name: vigiltest
Version: 1.0
Release: 1
Summary: vigil's rpm database test
License: MIT
BuildArch: noarch
%description
A file and a configuration file.
%install
mkdir -p %{buildroot}/opt/vigiltest %{buildroot}/etc/vigiltest
printf 'hello\n' > %{buildroot}/opt/vigiltest/data
printf 'key=1\n' > %{buildroot}/etc/vigiltest/conf
%files
/opt/vigiltest/data
%config(noreplace) /etc/vigiltest/conf
`

// TestRpmDatabase: an rpm built here (rpmbuild) and installed with Debian's
// rpm into a scratch root (rpm --root, its SQLite database) is read by the
// pure-Go reader: owner, version, the file's digest, the conffile flag.
func TestRpmDatabase(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.HostOnly(t, "rpm and rpmbuild are Debian packages the busybox guest lacks; the reader is user space")
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (scripts/deps.sh installs rpm)", tool, err)
		}
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "t.spec")
	if err := os.WriteFile(spec, []byte(testSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("rpmbuild", "--define", "_topdir "+filepath.Join(dir, "top"), "--nodeps", "-bb", spec)
	root := filepath.Join(dir, "root")
	run("rpm", "--root", root, "--initdb")
	rpms, _ := filepath.Glob(filepath.Join(dir, "top", "RPMS", "noarch", "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("built %v", rpms)
	}
	run("rpm", "--root", root, "--nodeps", "-i", rpms[0])
	dbpath := filepath.Join(root, "root", ".rpmdb") // Debian's %_dbpath is ~/.rpmdb
	if out, err := exec.Command("rpm", "--eval", "%_dbpath").Output(); err == nil && len(out) > 1 {
		dbpath = filepath.Join(root, string(out[:len(out)-1]))
	}
	r := pkgmgr.NewRpm(dbpath, root)
	data := filepath.Join(root, "opt/vigiltest/data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	o, err := r.Lookup(data)
	if err != nil {
		t.Fatal(err)
	}
	if o.Package != "vigiltest" || o.Version != "1.0-1" || o.Conffile {
		t.Errorf("data: %+v", o)
	}
	if o.Algo != "sha256" || o.Digest != hex.EncodeToString(sum[:]) {
		t.Errorf("data digest %s:%s, want sha256:%x", o.Algo, o.Digest, sum)
	}
	o, err = r.Lookup(filepath.Join(root, "etc/vigiltest/conf"))
	if err != nil || o.Package != "vigiltest" || !o.Conffile || o.Digest == "" {
		t.Errorf("conf: %+v %v", o, err)
	}
	if o, err := r.Lookup(filepath.Join(root, "etc/other")); err != nil || o.Package != "" {
		t.Errorf("unowned: %+v %v", o, err)
	}
}

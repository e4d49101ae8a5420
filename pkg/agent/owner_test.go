//go:build privileged

package agent_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-fim/vigil/pkg/config"
	"github.com/vigil-fim/vigil/pkg/testutil"
)

// The service user of the ownership test: numbers that need no entry in
// the user database (the matrix guest has only root and nobody).
const (
	svcUID = 4242
	svcGID = 4343
)

// TestOwnershipDrift runs examples/service-owner.toml on a scratch tree
// owned by a test uid: a file created there by root and a file chowned
// away are drift (alerts with the reasons); a write and a create by the
// owner are not.
func TestOwnershipDrift(t *testing.T) {
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "vigil-owner-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "app")
	existing := filepath.Join(tree, "data.txt")
	if err := os.Chmod(dir, 0o755); err != nil { // the owner's shell must reach the tree
		t.Fatal(err)
	}
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(existing, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tree, existing} {
		if err := os.Chown(p, svcUID, svcGID); err != nil {
			t.Fatal(err)
		}
	}

	// The example, moved onto the scratch tree and the test's service user.
	b := readExample(t, "service-owner.toml")
	text := string(b)
	for old, repl := range map[string]string{
		`path = "/srv/app"`:  fmt.Sprintf("path = %q", tree),
		`owner = "www-data"`: fmt.Sprintf("owner = \"%d\"", svcUID),
		`group = "www-data"`: fmt.Sprintf("group = \"%d\"", svcGID),
	} {
		if strings.Count(text, old) != 1 {
			t.Fatalf("examples/service-owner.toml no longer has exactly one %s", old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	cfg, err := config.Parse("service-owner.toml (test)", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Agent.StateDir = filepath.Join(dir, "state")
	r, stop := runAgent(t, cfg)
	defer stop()

	// asOwner runs a shell as the service user.
	asOwner := func(script string) {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: svcUID, Gid: svcGID}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("as uid %d: sh -c %q: %v: %s", svcUID, script, err, out)
		}
	}
	check := func(what string, x rec, drift bool, reasons string, actor, uid, gid int) {
		t.Helper()
		wantKind, wantSev := "event", ""
		if drift {
			wantKind, wantSev = "alert", "73"
		}
		got := fmt.Sprintf("kind=%s severity=%s drift=%s reasons=%s expected=%s:%s actor=%s actual=%s:%s",
			x.s("event.kind"), x.s("event.severity"), x.s("vigil.ownership.drift"), x.s("vigil.ownership.reasons"),
			x.s("vigil.ownership.expected_uid"), x.s("vigil.ownership.expected_gid"),
			x.s("vigil.ownership.actor_uid"), x.s("vigil.ownership.actual_uid"), x.s("vigil.ownership.actual_gid"))
		want := fmt.Sprintf("kind=%s severity=%s drift=%t reasons=%s expected=%d:%d actor=%d actual=%d:%d",
			wantKind, wantSev, drift, reasons, svcUID, svcGID, actor, uid, gid)
		if got != want {
			t.Errorf("%s:\n got  %s\n want %s\nrecord: %s", what, got, want, x)
		}
		t.Logf("%s: %s, reported by hook %s", what, got, x.s("vigil.hook"))
	}

	mark := r.mark()
	asOwner("echo v2 >> " + existing)
	x := r.wait(t, mark, "write by the owner", forPath(existing, "modified"))
	check("write by the owner", x, false, "[]", svcUID, svcUID, svcGID)

	ownerMade := filepath.Join(tree, "owner-made")
	mark = r.mark()
	asOwner("echo mine > " + ownerMade)
	x = r.wait(t, mark, "create by the owner", forPath(ownerMade, "created"))
	check("create by the owner", x, false, "[]", svcUID, svcUID, svcGID)

	rootMade := filepath.Join(tree, "root-made")
	mark = r.mark()
	sh(t, "echo planted > "+rootMade)
	x = r.wait(t, mark, "create by root", forPath(rootMade, "created"))
	check("create by root", x, true, "[actor owner group]", 0, 0, 0)
	if x.s("user.effective.id") != "0" || x.s("process.name") != "sh" {
		t.Errorf("create by root: actor %s", x)
	}

	mark = r.mark()
	sh(t, "chown 1000 "+ownerMade)
	x = r.wait(t, mark, "chown away", forPath(ownerMade, "attributes-changed"))
	check("chown away", x, true, "[actor owner]", 0, 1000, svcGID)

	mark = r.mark()
	sh(t, "chown 0:0 "+existing)
	x = r.wait(t, mark, "chown to root", forPath(existing, "attributes-changed"))
	check("chown to root", x, true, "[actor owner group]", 0, 0, 0)
}

// readExample reads a file of examples/: from the source tree, or in the
// matrix guest from the copy make vm-bins puts beside the test binaries.
func readExample(t *testing.T, name string) []byte {
	t.Helper()
	for _, dir := range []string{"../../examples", "examples"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return b
		}
		if !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("examples/%s not found (in the matrix guest, make vm-bins copies examples/ beside the tests)", name)
	return nil
}

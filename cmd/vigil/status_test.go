package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets a test run this binary as the vigil command (the privileged
// end-to-end test starts `vigil run` that way).
func TestMain(m *testing.M) {
	if os.Getenv(asVigilEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

const asVigilEnv = "VIGIL_TEST_AS_VIGIL"

// TestStatusNoAgent: no agent behind the socket is a clear message and
// exit status 3.
func TestStatusNoAgent(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vigil.sock")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-socket", sock}, &stdout, &stderr); code != 3 {
		t.Fatalf("status = %d, want 3\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	if want := "vigil is not running: no vigil agent is running (nothing answers on " + sock + ")"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout %q lacks %q", stdout.String(), want)
	}
	// The socket named by a configuration; an empty one says there is none.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vigil.toml")
	os.WriteFile(cfg, []byte("[agent]\nsocket = \"\"\n[[watch]]\npath = \"/etc/passwd\"\n"), 0o600)
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"status", "-config", cfg}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "agent.socket is empty") {
		t.Errorf("status with no socket configured = %d: %s%s", code, &stdout, &stderr)
	}
	os.WriteFile(cfg, []byte("[agent]\nsocket = \""+sock+"\"\n[[watch]]\npath = \"/etc/passwd\"\n"), 0o600)
	stdout.Reset()
	if code := run([]string{"status", "-config", cfg}, &stdout, &stderr); code != 3 || !strings.Contains(stdout.String(), sock) {
		t.Errorf("status with the configuration's socket = %d: %s", code, &stdout)
	}
}

//go:build secretsaudit

package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSecretsAudit scans what the privileged suites collected (make
// test-host runs it after them with the same $VIGIL_SECRETS_AUDIT). It
// fails, never skips, when there is nothing to scan: an audit of nothing
// proves nothing.
func TestSecretsAudit(t *testing.T) {
	dir := os.Getenv(AuditEnv)
	if dir == "" {
		t.Fatalf("$%s names no collection: run the privileged suites with it first (make test-host)", AuditEnv)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	states, _ := filepath.Glob(filepath.Join(dir, "*.state"))
	if len(logs) == 0 || len(states) == 0 {
		t.Fatalf("the collection holds %d output files and %d state files: nothing was collected", len(logs), len(states))
	}
	var size int64
	for _, f := range append(logs, states...) {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	leaks, err := ScanSecrets(dir, Secrets)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaks {
		t.Errorf("secret leaked: %s", l)
	}
	t.Logf("scanned %d output files and %d state files (%d bytes) for %d secrets: %d leaks",
		len(logs), len(states), size, len(Secrets), len(leaks))
}

// Package testutil holds what vigil's privileged tests share: the root and
// VM gates, and a collector that waits for sensor records.
package testutil

import (
	"os"
	"testing"
)

// InVM reports whether the test runs inside the kernel matrix guest
// (scripts/guest-init.sh sets VIGIL_VM=1).
func InVM() bool { return os.Getenv("VIGIL_VM") == "1" }

// RequireRoot skips a privileged test when not root: the only reason a
// privileged test may skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run the privileged tier as root (make test-host)")
	}
}

// HostOnly skips a test inside the matrix guest, where the packages it needs
// (real shadow tools, rsyslog, dpkg, ...) are absent. The harness counts
// these as host-only, not as skipped.
func HostOnly(t testing.TB, why string) {
	t.Helper()
	if InVM() {
		t.Skip("HOST-ONLY: " + why)
	}
}

// Scale returns n on the host and n/div (at least 1) in an emulated guest,
// where every instruction is software-emulated.
func Scale(n, div int) int {
	if InVM() {
		n /= div
		if n < 1 {
			n = 1
		}
	}
	return n
}

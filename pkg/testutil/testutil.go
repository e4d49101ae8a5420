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

// ForwardVM reports whether the guest runs the forward-compatibility kernel:
// newer than every object, so no object is its own (scripts/guest-init.sh
// sets VIGIL_VM_FORWARD=1).
func ForwardVM() bool { return InVM() && os.Getenv("VIGIL_VM_FORWARD") == "1" }

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

// Environment variables that force the object or hook type every privileged
// test loads (scripts/vmtest.sh sets them for its tracepoint and cross-load
// runs, from the guest's kernel command line).
const (
	EnvObject = "VIGIL_TEST_OBJECT" // an object name, as `vigil objects` lists it
	EnvHooks  = "VIGIL_TEST_HOOKS"  // a hook type: fentry, kprobe or tracepoint
)

// SensorForce returns the object and hook type the tests must load, from
// VIGIL_TEST_OBJECT and VIGIL_TEST_HOOKS; empty strings leave the choice to
// the loader. Every privileged test that loads a sensor or starts an agent
// passes them on (loader.Options Object/Hooks, config sensor.object/hooks,
// `vigil run -object/-hooks`).
func SensorForce() (object, hooks string) {
	return os.Getenv(EnvObject), os.Getenv(EnvHooks)
}

// Forced reports whether SensorForce forces anything.
func Forced() bool {
	o, h := SensorForce()
	return o != "" || h != ""
}

//go:build privileged

package sensor_test

import (
	"os/exec"
	"testing"
)

var exec_lookPath = exec.LookPath

// runSh runs a shell command and returns the shell's pid.
func runSh(t *testing.T, sh, script string) int {
	t.Helper()
	cmd := exec.Command(sh, "-c", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -c %q: %v: %s", sh, script, err, out)
	}
	return cmd.Process.Pid
}

package kernel

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// lsmFiles are where ActiveLSMs looks; tests point them elsewhere.
var lsmFiles = struct{ dir, list string }{"/sys/kernel/security", "/sys/kernel/security/lsm"}

// ActiveLSMs reads the Linux security modules the running kernel calls, in
// its order ("lockdown,capability,landlock,bpf"), from securityfs. When
// securityfs is not mounted (systemd mounts it at boot; minimal systems and
// initramfs guests may not), it mounts it at /sys/kernel/security and
// leaves it there, as systemd would. The error says why the list is
// unknown.
func ActiveLSMs() (string, error) {
	b, err := os.ReadFile(lsmFiles.list)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(lsmFiles.dir); serr == nil {
			merr := unix.Mount("securityfs", lsmFiles.dir, "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
			if merr != nil && !errors.Is(merr, unix.EBUSY) {
				return "", fmt.Errorf("%s is absent and mounting securityfs at %s failed: %w", lsmFiles.list, lsmFiles.dir, merr)
			}
			b, err = os.ReadFile(lsmFiles.list)
		}
	}
	if err != nil {
		return "", fmt.Errorf("reading the active LSMs: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// HasLSM says whether a comma-separated LSM list (ActiveLSMs) names lsm.
func HasLSM(list, lsm string) bool {
	return slices.Contains(strings.Split(list, ","), lsm)
}

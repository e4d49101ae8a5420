package loader

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tracefsDirs are where cilium/ebpf looks for tracefs, to read a
// tracepoint's id: the standard mount point, then the one under debugfs.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// ensureTracefs mounts tracefs at /sys/kernel/tracing when neither place
// has it (systemd mounts it at boot; minimal systems and containers may
// not). A perf-event tracepoint is attached by its id, which only tracefs
// tells. It reports whether it mounted it; the mount is left in place, as
// systemd's would be.
func ensureTracefs() (bool, error) {
	for _, d := range tracefsDirs {
		if _, err := os.Stat(d + "/events"); err == nil {
			return false, nil
		}
	}
	err := unix.Mount("tracefs", tracefsDirs[0], "tracefs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return false, nil
		}
		return false, fmt.Errorf("mounting tracefs at %s (for the tracepoint's id): %w", tracefsDirs[0], err)
	}
	return true, nil
}

package agent

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootTime is the wall-clock time of boot, to turn the kernel's boot-time
// clock (bpf_ktime_get_boot_ns) into timestamps.
func bootTime() time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Now()
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

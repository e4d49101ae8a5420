package agent

import "github.com/vigil-fim/vigil/pkg/sensor"

// KernelEntries lists the running agent's kernel watch entries, for tests
// that check what a reload did in the kernel.
func KernelEntries(h *Handle) ([]sensor.Entry, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.a == nil {
		return nil, ErrNotRunning
	}
	return h.a.sens.Entries()
}

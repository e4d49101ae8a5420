package agent

import (
	"fmt"
	"strings"

	"kernel.org/pub/linux/libs/security/libcap/cap"
)

// keptCaps are the capabilities vigil keeps once its sensor is loaded
// (docs/security.md, "Least privilege"):
//   - CAP_BPF: every bpf() call, map updates included, on kernels that set
//     kernel.unprivileged_bpf_disabled (Debian's default), which the watch
//     set makes whenever a file is re-seeded, created or reloaded;
//   - CAP_DAC_READ_SEARCH: reading watched files and walking directories
//     that root does not own (a user's 0700 home and 0600 authorized_keys).
var keptCaps = []cap.Value{cap.BPF, cap.DAC_READ_SEARCH}

// dropCapabilities keeps only keptCaps, in the effective and permitted sets
// and in the bounding set, empties the inheritable and ambient sets, and
// locks SECBIT_NOROOT so that a program vigil runs (the self-test's shell)
// gains no capability from being root. It cannot be undone.
func dropCapabilities() error {
	keep := map[cap.Value]bool{}
	for _, v := range keptCaps {
		keep[v] = true
	}
	// The bounding set and the securebits need CAP_SETPCAP: change them
	// first, while it is still held.
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if keep[v] {
			continue
		}
		if err := cap.DropBound(v); err != nil {
			return fmt.Errorf("dropping %s from the bounding set: %w", v, err)
		}
	}
	if err := cap.ResetAmbient(); err != nil {
		return fmt.Errorf("clearing the ambient set: %w", err)
	}
	bits := cap.GetSecbits() | cap.SecbitNoRoot | cap.SecbitNoRootLocked
	if err := bits.Set(); err != nil {
		return fmt.Errorf("setting securebits: %w", err)
	}
	c := cap.NewSet()
	if err := c.SetFlag(cap.Permitted, true, keptCaps...); err != nil {
		return err
	}
	if err := c.SetFlag(cap.Effective, true, keptCaps...); err != nil {
		return err
	}
	if err := c.SetProc(); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	return nil
}

// capNames lists the capabilities in the process's effective set.
func capNames() []string {
	c := cap.GetProc()
	var out []string
	for v := cap.Value(0); v < cap.MaxBits(); v++ {
		if on, err := c.GetFlag(cap.Effective, v); err == nil && on {
			out = append(out, strings.ToUpper(v.String()))
		}
	}
	return out
}

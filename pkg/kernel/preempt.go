package kernel

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"strings"
)

// Preemption models, as the scheduler names them (debugfs sched/preempt).
const (
	PreemptNone      = "none"
	PreemptVoluntary = "voluntary"
	PreemptFull      = "full"
	PreemptLazy      = "lazy"
)

// KernelPreempts reports whether a model preempts tasks in kernel mode at
// any point (not only where the kernel offers to reschedule): then a BPF
// trampoline program, which runs with migration disabled but preemption
// on, can be preempted mid-run. An unknown model ("") counts as one that
// does.
func KernelPreempts(model string) bool {
	return model != PreemptNone && model != PreemptVoluntary
}

// preemptFiles are where PreemptModel looks; tests point them elsewhere.
var preemptFiles = struct{ debugfs, cmdline, config, procConfig, version string }{
	"/sys/kernel/debug/sched/preempt", "/proc/cmdline", "/boot/config-", "/proc/config.gz", "/proc/sys/kernel/version",
}

// PreemptModel reads the running kernel's preemption model, and where it
// read it: debugfs's sched/preempt (the model in force, which a
// PREEMPT_DYNAMIC kernel can change at run time); else the kernel's
// version string (uname -v) when it settles it: a kernel built without
// PREEMPT_DYNAMIC names a preemptible build there ("PREEMPT", "PREEMPT_RT",
// "PREEMPT_LAZY") and names nothing for none or voluntary; else the
// kernel's configuration (in /boot, else the kernel's own
// /proc/config.gz) with the preempt= boot parameter over its default. ""
// when none can be read.
func PreemptModel(release string) (model, source string) {
	if b, err := os.ReadFile(preemptFiles.debugfs); err == nil {
		// "none voluntary (full) lazy": the one in force is bracketed.
		for _, w := range strings.Fields(string(b)) {
			if strings.HasPrefix(w, "(") && strings.HasSuffix(w, ")") {
				return strings.Trim(w, "()"), preemptFiles.debugfs
			}
		}
	}
	if b, err := os.ReadFile(preemptFiles.version); err == nil {
		words := map[string]bool{}
		for _, w := range strings.Fields(string(b)) {
			words[w] = true
		}
		src := preemptFiles.version
		switch {
		case words["PREEMPT_DYNAMIC"]:
			// the model is chosen at boot: the configuration says which
		case words["PREEMPT_RT"], words["PREEMPT"]:
			return PreemptFull, src
		case words["PREEMPT_LAZY"]:
			return PreemptLazy, src
		default:
			// built without kernel-mode preemption: none or voluntary,
			// which preempt alike here (only where the kernel offers to)
			return PreemptVoluntary, src + " (no PREEMPT: none or voluntary)"
		}
	}
	cfg, source := kernelConfig(release)
	if cfg == nil {
		return "", ""
	}
	set := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && v == "y" {
			set[k] = true
		}
	}
	if set["CONFIG_PREEMPT_DYNAMIC"] {
		if b, err := os.ReadFile(preemptFiles.cmdline); err == nil {
			for _, w := range strings.Fields(string(b)) {
				if m, ok := strings.CutPrefix(w, "preempt="); ok {
					switch m {
					case PreemptNone, PreemptVoluntary, PreemptFull, PreemptLazy:
						return m, source + " and " + preemptFiles.cmdline
					}
				}
			}
		}
	}
	switch {
	case set["CONFIG_PREEMPT_RT"], set["CONFIG_PREEMPT"]:
		return PreemptFull, source
	case set["CONFIG_PREEMPT_LAZY"]:
		return PreemptLazy, source
	case set["CONFIG_PREEMPT_VOLUNTARY"]:
		return PreemptVoluntary, source
	case set["CONFIG_PREEMPT_NONE"]:
		return PreemptNone, source
	}
	return "", ""
}

// kernelConfig reads the running kernel's build configuration and says
// from where: /boot/config-<release>, else /proc/config.gz (a kernel built
// with CONFIG_IKCONFIG_PROC carries its own). nil when neither is there.
func kernelConfig(release string) ([]byte, string) {
	if b, err := os.ReadFile(preemptFiles.config + release); err == nil {
		return b, preemptFiles.config + release
	}
	f, err := os.Open(preemptFiles.procConfig)
	if err != nil {
		return nil, ""
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, ""
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, ""
	}
	return b, preemptFiles.procConfig
}

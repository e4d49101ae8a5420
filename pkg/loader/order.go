// Package loader picks the embedded BPF object that fits the running kernel,
// verifies it against the kernel's BTF, loads it and attaches its programs,
// falling back in a fixed, documented order and saying why at each step.
//
// The order (docs/kernels.md):
//  1. the kernel lines' objects: the exact major.minor, else the nearest
//     lower one; then the other lower ones, nearest first; then the higher
//     ones, nearest first. Within a line, the BPF-LSM object (where the
//     kernel runs the BPF LSM), then the fentry object (BPF trampolines),
//     then the kprobe object (when the kernel has kprobes); on a kernel
//     that preempts in kernel mode (or whose preemption model is unknown)
//     the kprobe object first, then the BPF-LSM and fentry objects
//     (preemptedTrampolines).
//  2. the tracepoint object.
package loader

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
)

// Hook types, as named in bpf/matrix and the manifest.
const (
	HooksLSM        = "lsm"
	HooksFentry     = "fentry"
	HooksKprobe     = "kprobe"
	HooksTracepoint = "tracepoint"
)

// linePrefix starts the name of a kernel line's object of a family other
// than kprobe (bpf/matrix, scripts/build-elf.sh): "fentry-6.1".
var linePrefix = map[string]string{
	HooksLSM:    HooksLSM + "-",
	HooksFentry: HooksFentry + "-",
	HooksKprobe: "",
}

// LineOf is the kernel line (bpf/matrix's name, a major.minor) an object
// of a kernel line was built for: "6.1" for both "6.1" and "fentry-6.1".
// ok is false for the tracepoint object and unknown families.
func LineOf(o elf.Object) (line string, ok bool) {
	prefix, ok := linePrefix[o.Hooks]
	if !ok {
		return "", false
	}
	return strings.CutPrefix(o.Name, prefix)
}

// familyRank orders the families of one kernel line: lower is tried first;
// familyRankPreempted on a kernel that preempts in kernel mode.
var (
	familyRank          = map[string]int{HooksLSM: 0, HooksFentry: 1, HooksKprobe: 2}
	familyRankPreempted = map[string]int{HooksKprobe: 0, HooksLSM: 1, HooksFentry: 2}
)

// trampolineFamily says whether a family's programs run from BPF
// trampolines (fentry/fexit and BPF-LSM programs alike).
func trampolineFamily(hooks string) bool { return hooks == HooksFentry || hooks == HooksLSM }

// noBPFLSM is why a BPF-LSM object is refused on a kernel, or "": its
// programs attach wherever trampolines do, but the kernel calls them only
// when "bpf" is among its active LSMs, which some kernels' defaults leave
// out (Debian's 5.10, unless booted with lsm=...,bpf; its 6.1 and later
// name it). Loaded there, they would never run.
func noBPFLSM(f *kernel.Facts) string {
	if f.LSMs == "" {
		return "the active LSMs are unknown (" + f.LSMErr + "): BPF-LSM programs might never run"
	}
	if !kernel.HasLSM(f.LSMs, "bpf") {
		return fmt.Sprintf("the BPF LSM is not active (%s): its programs would never run; boot with lsm=%s,bpf to use it",
			f.LSMs, f.LSMs)
	}
	return ""
}

// preemptedTrampolines is why the fentry family goes after the kprobe
// family on a kernel that preempts in kernel mode: a trampoline program
// runs with preemption on, and one preempted mid-run makes the kernel skip
// that program on its CPU (prog->active) for every other task until it
// runs again. Those runs are lost records. A kprobe program runs with
// preemption off. (7.3 with the fentry object: 2 of 500 replaces of
// TestRenameStorm lost that way, December 2026.)
func preemptedTrampolines(f *kernel.Facts) string {
	if !kernel.KernelPreempts(f.Preempt) {
		return ""
	}
	model := "its preemption model is unknown (debugfs's sched/preempt, the version string, /boot/config-" + f.Release + " and /proc/config.gz did not say)"
	if f.Preempt != "" {
		model = fmt.Sprintf("it preempts in kernel mode (%s, read from %s)", f.Preempt, f.PreemptSource)
	}
	return "after the kprobe object: " + model + ", where a preempted trampoline program makes the kernel skip its runs on that CPU"
}

// familyLabel starts a kernel line object's reason with its family, but
// for the kprobe objects (the plain line names).
var familyLabel = map[string]string{
	HooksLSM:    "BPF-LSM programs on the security hooks (with fentry/fexit), ",
	HooksFentry: "BPF trampolines (fentry/fexit), ",
}

// hookRank orders hook-type groups: lower is tried first.
var hookRank = map[string]int{
	HooksLSM:        10,
	HooksFentry:     10,
	HooksKprobe:     10,
	HooksTracepoint: 100,
}

// Candidate is an object the loader will try, in order.
type Candidate struct {
	Object elf.Object
	Why    string
}

// Refusal says why an object was not used.
type Refusal struct {
	Object string `json:"object"`
	Reason string `json:"reason"`
}

// Order returns the objects to try on a kernel, best first, and the ones
// refused before trying. It reads no files: the facts are given.
func Order(objs []elf.Object, f *kernel.Facts, opt Options) ([]Candidate, []Refusal) {
	var cands []Candidate
	var refused []Refusal
	refuse := func(o elf.Object, format string, args ...any) {
		refused = append(refused, Refusal{Object: o.Name, Reason: fmt.Sprintf(format, args...)})
	}
	type ranked struct {
		Candidate
		group, order int
	}
	var rs []ranked
	for _, o := range objs {
		if opt.Object != "" && opt.Object != "auto" && o.Name != opt.Object {
			refuse(o, "sensor.object forces %q", opt.Object)
			continue
		}
		if opt.Hooks != "" && opt.Hooks != "auto" && o.Hooks != opt.Hooks {
			refuse(o, "sensor.hooks forces %q", opt.Hooks)
			continue
		}
		rank, ok := hookRank[o.Hooks]
		if !ok {
			refuse(o, "unknown hook type %q", o.Hooks)
			continue
		}
		if !f.BTF {
			refuse(o, "kernel %s has no BTF (/sys/kernel/btf/vmlinux): CO-RE objects cannot be relocated", f.Release)
			continue
		}
		switch o.Hooks {
		case HooksLSM, HooksFentry, HooksKprobe:
			if o.Hooks == HooksKprobe && !f.Kprobes {
				refuse(o, "kernel %s has no kprobes", f.Release)
				continue
			}
			if o.Hooks == HooksLSM {
				if why := noBPFLSM(f); why != "" {
					refuse(o, "%s", why)
					continue
				}
			}
			line, ok := LineOf(o)
			if !ok {
				refuse(o, "object name %q does not start with %q", o.Name, linePrefix[o.Hooks])
				continue
			}
			ov, err := kernel.ParseRelease(line)
			if err != nil {
				refuse(o, "object name is not a kernel version: %v", err)
				continue
			}
			kv := kernel.Version{Major: f.Version.Major, Minor: f.Version.Minor}
			r := ranked{Candidate: Candidate{Object: o}, group: rank}
			switch {
			case ov == kv:
				r.order = 0
				r.Why = fmt.Sprintf("exact match for kernel %s", kv.MajorMinor())
			case ov.Less(kv):
				// Nearest lower first: distance in minor steps.
				r.order = 1 + distance(ov, kv)
				r.Why = fmt.Sprintf("built for %s, nearest lower to kernel %s", ov.MajorMinor(), kv.MajorMinor())
			default:
				r.order = 1 << 20
				r.order += distance(kv, ov)
				r.Why = fmt.Sprintf("built for newer kernel %s, tried after every lower one", ov.MajorMinor())
			}
			// The families of a line side by side: the line's order
			// first, then the family's.
			fam := familyRank[o.Hooks]
			if after := preemptedTrampolines(f); after != "" {
				fam = familyRankPreempted[o.Hooks]
				if trampolineFamily(o.Hooks) {
					r.Why += "; " + after
				} else {
					r.Why += "; before the BPF-LSM and fentry objects (" + strings.TrimPrefix(after, "after the kprobe object: ") + ")"
				}
			}
			r.order = r.order*len(familyRank) + fam
			r.Why = familyLabel[o.Hooks] + r.Why
			rs = append(rs, r)
		case HooksTracepoint:
			rs = append(rs, ranked{
				Candidate: Candidate{Object: o, Why: "syscall tracepoints: the last fallback"},
				group:     rank,
			})
		}
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].group != rs[j].group {
			return rs[i].group < rs[j].group
		}
		return rs[i].order < rs[j].order
	})
	// Only the first lower object of a family is "nearest lower"; say so
	// plainly for the others.
	seenLower := map[string]bool{}
	n := len(familyRank)
	for _, r := range rs {
		if line, ok := LineOf(r.Object); ok && r.order >= n && r.order < (1<<20)*n {
			if seenLower[r.Object.Hooks] {
				r.Why = fmt.Sprintf("built for %s, an older kernel: fallback", line)
				if after := preemptedTrampolines(f); after != "" && trampolineFamily(r.Object.Hooks) {
					r.Why += "; " + after
				}
				r.Why = familyLabel[r.Object.Hooks] + r.Why
			}
			seenLower[r.Object.Hooks] = true
		}
		if opt.Object == r.Object.Name {
			r.Why = "forced by sensor.object"
		}
		cands = append(cands, r.Candidate)
	}
	return cands, refused
}

func distance(lo, hi kernel.Version) int {
	return (hi.Major-lo.Major)*1000 + (hi.Minor - lo.Minor)
}

// Check verifies an object against the kernel's BTF before the verifier
// sees it, and prepares spec for this kernel:
//   - every function the object hooks exists;
//   - every argument variable is set to where this kernel's prototype has
//     the argument (args.go);
//   - every CO-RE relocation that the code can reach applies (core.go).
//
// The error names what is missing: a function, a parameter, a type or a
// field.
func Check(o elf.Object, spec *ebpf.CollectionSpec, f *kernel.Facts) error {
	if f.Funcs == nil || f.Spec == nil {
		return fmt.Errorf("kernel %s: no BTF to verify against", f.Release)
	}
	skip, err := Prune(spec, f.Funcs)
	if err != nil {
		return err
	}
	skipFuncs := map[string]bool{}
	for _, s := range skip {
		skipFuncs[s.Func] = true
	}
	hooked, err := HookedFuncs(spec)
	if err != nil {
		return err
	}
	for _, fn := range hooked {
		if _, err := f.Funcs.Func(fn); err != nil {
			return fmt.Errorf("hooked function: %w", err)
		}
	}
	if err := setArgs(spec, f.Funcs, skipFuncs); err != nil {
		return err
	}
	return checkCORE(spec, f.Spec)
}

// Skip is a hook an object has that is left out on the running kernel, and why.
type Skip struct {
	Func   string `json:"func"`
	Reason string `json:"reason"`
}

// optionalFuncs are hooked functions that some supported kernels lack,
// with what stands in for them there. Any other hooked function the
// kernel lacks refuses the object.
var optionalFuncs = map[string]string{
	"vfs_set_acl":         "absent before 6.2: POSIX ACLs are written through vfs_setxattr there (hooked)",
	"vfs_remove_acl":      "absent before 6.2: POSIX ACLs are removed through vfs_removexattr there (hooked)",
	"vfs_fileattr_set":    "absent before 5.13: inode flags are set in each file system's ioctl there (security_file_ioctl is hooked)",
	"security_file_ioctl": "absent: inode flag changes are not seen",
	"__x64_sys_ioctl":     "absent: inode flag changes are not seen",
	// the BPF-LSM objects' hooks of the same operations
	lsmStub + "inode_set_acl":    "absent before 6.2: POSIX ACLs are written through the inode_setxattr hook there (hooked)",
	lsmStub + "inode_remove_acl": "absent before 6.2: POSIX ACLs are removed through the inode_removexattr hook there (hooked)",
	lsmStub + "file_ioctl":       "absent: inode flag changes are not seen",
}

// onlyWithout names hooks used only where another is absent: the ioctl
// hooks stand in for vfs_fileattr_set on kernels before 5.13, and would
// only add a look at every ioctl elsewhere.
var onlyWithout = map[string]string{
	"security_file_ioctl":  "vfs_fileattr_set",
	"__x64_sys_ioctl":      "vfs_fileattr_set",
	lsmStub + "file_ioctl": "vfs_fileattr_set",
}

// Prune removes from spec the programs of the hooks the running kernel
// does without (optionalFuncs, onlyWithout) and says which and why. It is
// idempotent: Check calls it, and so may a caller that wants the list.
func Prune(spec *ebpf.CollectionSpec, funcs kernel.Funcs) ([]Skip, error) {
	has := func(name string) (bool, error) {
		_, err := funcs.Func(name)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, kernel.ErrNoFunc) {
			return false, nil
		}
		return false, err
	}
	var skip []Skip
	table := argTable(spec)
	names := make([]string, 0, len(optionalFuncs))
	for n := range optionalFuncs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, fn := range names {
		ok, err := has(fn)
		if err != nil {
			return nil, err
		}
		reason := ""
		if !ok {
			reason = optionalFuncs[fn]
		} else if other, only := onlyWithout[fn]; only {
			if present, err := has(other); err != nil {
				return nil, err
			} else if present {
				reason = other + " is hooked on this kernel"
			}
		}
		if reason == "" {
			continue
		}
		// The object hooks fn if a program attaches to it or, once pruned,
		// an argument variable still names it.
		mentioned := false
		for name, p := range spec.Programs {
			ap, err := pointOf(p)
			if err != nil {
				return nil, err
			}
			if ap.fn() == fn {
				delete(spec.Programs, name)
				mentioned = true
			}
		}
		for v, a := range table {
			if _, ok := spec.Variables[v]; ok && a.Func == fn {
				mentioned = true
			}
		}
		for _, vars := range []map[string]string{retPosVars, retPtrVars} {
			for v, f := range vars {
				if _, ok := spec.Variables[v]; ok && f == fn {
					mentioned = true
				}
			}
		}
		if mentioned {
			skip = append(skip, Skip{Func: fn, Reason: reason})
		}
	}
	return skip, nil
}

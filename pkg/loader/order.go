// Package loader picks the embedded BPF object that fits the running kernel,
// verifies it against the kernel's BTF, loads it and attaches its programs,
// falling back in a fixed, documented order and saying why at each step.
//
// The order (docs/kernels.md):
//  1. kprobe objects, when the kernel has kprobes: the exact major.minor,
//     else the nearest lower one; then the other lower ones, nearest first;
//     then the higher ones, nearest first.
//  2. the tracepoint object.
//
// A better hook type (fentry, BPF-LSM) joins as a new group before the
// kprobe objects: callers see only Candidate and Refusal.
package loader

import (
	"fmt"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
)

// Hook types, as named in bpf/matrix and the manifest.
const (
	HooksKprobe     = "kprobe"
	HooksTracepoint = "tracepoint"
)

// hookRank orders hook-type groups: lower is tried first.
var hookRank = map[string]int{
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
		case HooksKprobe:
			if !f.Kprobes {
				refuse(o, "kernel %s has no kprobes", f.Release)
				continue
			}
			ov, err := kernel.ParseRelease(o.Name)
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
	// Only the first lower kprobe object is "nearest lower"; say so plainly
	// for the others.
	seenLower := false
	for _, r := range rs {
		if r.Object.Hooks == HooksKprobe && r.order > 0 && r.order < 1<<20 {
			if seenLower {
				r.Why = fmt.Sprintf("built for %s, an older kernel: fallback", r.Object.Name)
			}
			seenLower = true
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
	hooked, err := HookedFuncs(spec)
	if err != nil {
		return err
	}
	for _, fn := range hooked {
		if _, err := f.Funcs.Func(fn); err != nil {
			return fmt.Errorf("hooked function: %w", err)
		}
	}
	if err := setArgs(spec, f.Funcs); err != nil {
		return err
	}
	return checkCORE(spec, f.Spec)
}

// Package kernel reads the facts about the running kernel that decide which
// BPF object vigil loads: its release, whether it has BTF and kprobes, and
// the signatures of the functions vigil hooks.
package kernel

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Version is a kernel release's leading numbers.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// MajorMinor returns "major.minor".
func (v Version) MajorMinor() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less orders versions.
func (v Version) Less(o Version) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// ParseRelease reads the version at the start of a release string such as
// "6.1.0-27-amd64" or "5.10.223". Missing minor or patch numbers are 0.
func ParseRelease(release string) (Version, error) {
	var v Version
	nums := make([]int, 0, 3)
	rest := release
	for len(nums) < 3 && rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			break
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return v, fmt.Errorf("kernel release %q: %w", release, err)
		}
		nums = append(nums, n)
		rest = rest[i:]
		if !strings.HasPrefix(rest, ".") {
			break
		}
		rest = rest[1:]
	}
	if len(nums) < 2 {
		return v, fmt.Errorf("kernel release %q: no major.minor version", release)
	}
	v.Major, v.Minor = nums[0], nums[1]
	if len(nums) == 3 {
		v.Patch = nums[2]
	}
	return v, nil
}

// Func is a kernel function's signature as BTF gives it: each parameter's
// type rendered as C ("struct file *", "long long int").
type Func struct {
	Name   string
	Params []string
	// Ret is the return type, rendered the same way ("int", "struct dentry *").
	Ret string
}

// Funcs looks kernel functions up by name. It returns ErrNoFunc when the
// kernel has no such function.
type Funcs interface {
	Func(name string) (*Func, error)
}

// ErrNoFunc is returned by Funcs for a function the kernel does not have.
var ErrNoFunc = errors.New("no such function in kernel BTF")

// Facts is what vigil knows about a kernel before loading anything.
type Facts struct {
	Release string
	Version Version
	// BTF is true when the kernel describes itself (/sys/kernel/btf/vmlinux).
	BTF bool
	// Kprobes is true when kprobes can be attached.
	Kprobes bool
	// Funcs is nil when BTF is false.
	Funcs Funcs
	// Spec is the kernel's BTF, for loading; nil in tests and without BTF.
	Spec *btf.Spec
	// Preempt is the scheduler's preemption model (PreemptModel: "none",
	// "voluntary", "full", "lazy"; "" unknown), read from PreemptSource.
	Preempt, PreemptSource string
	// LSMs is the comma-separated list of active security modules
	// (ActiveLSMs); LSMErr says why it is unknown when it is "".
	// BPF-LSM programs run only where it names "bpf".
	LSMs, LSMErr string
}

// Probe reads the facts of the running kernel.
func Probe() (*Facts, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	f := &Facts{Release: unix.ByteSliceToString(uts.Release[:])}
	v, err := ParseRelease(f.Release)
	if err != nil {
		return nil, err
	}
	f.Version = v
	f.Kprobes = HaveKprobes()
	f.Preempt, f.PreemptSource = PreemptModel(f.Release)
	if l, err := ActiveLSMs(); err != nil {
		f.LSMErr = err.Error()
	} else {
		f.LSMs = l
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			return nil, fmt.Errorf("reading kernel BTF: %w", err)
		}
		f.BTF = true
		f.Spec = spec
		f.Funcs = SpecFuncs{spec}
	}
	return f, nil
}

// HaveKprobes reports whether the kernel can attach kprobes: the kprobe PMU
// (what cilium/ebpf uses) or tracefs's kprobe_events exists.
func HaveKprobes() bool {
	for _, p := range []string{
		"/sys/bus/event_source/devices/kprobe/type",
		"/sys/kernel/tracing/kprobe_events",
		"/sys/kernel/debug/tracing/kprobe_events",
	} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// SpecFuncs looks functions up in a BTF spec.
type SpecFuncs struct{ Spec *btf.Spec }

// Func implements Funcs.
func (s SpecFuncs) Func(name string) (*Func, error) {
	var fn *btf.Func
	if err := s.Spec.TypeByName(name, &fn); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return nil, fmt.Errorf("%s: %w", name, ErrNoFunc)
		}
		return nil, fmt.Errorf("looking up %s in kernel BTF: %w", name, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return nil, fmt.Errorf("%s: BTF type is %T, not a function prototype", name, fn.Type)
	}
	out := &Func{Name: name, Ret: TypeString(proto.Return)}
	for _, p := range proto.Params {
		out.Params = append(out.Params, TypeString(p.Type))
	}
	return out, nil
}

// TypeString renders a BTF type the way C spells it in a prototype.
func TypeString(t btf.Type) string {
	stars := ""
	for i := 0; i < 8; i++ {
		switch v := t.(type) {
		case *btf.Pointer:
			stars += "*"
			t = v.Target
			continue
		case *btf.Const:
			t = v.Type
			continue
		case *btf.Volatile:
			t = v.Type
			continue
		case *btf.Restrict:
			t = v.Type
			continue
		}
		break
	}
	var base string
	switch v := t.(type) {
	case *btf.Struct:
		base = "struct " + v.Name
	case *btf.Union:
		base = "union " + v.Name
	case *btf.Enum:
		base = "enum " + v.Name
	case *btf.Fwd:
		base = v.Kind.String() + " " + v.Name
	case *btf.Void:
		base = "void"
	case *btf.FuncProto:
		base = "func"
	default:
		base = t.TypeName()
	}
	if stars != "" {
		return base + " " + stars
	}
	return base
}

package sensor

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSyscallFilter checks the tracepoint object's first test of every
// syscall exit (vg_nr_handled) against the syscalls its decoder handles:
// a syscall missing from the filter would never be decoded, one too many
// would only cost time.
func TestSyscallFilter(t *testing.T) {
	if os.Getenv("VIGIL_VM") != "" {
		t.Skip("HOST-ONLY: reads the repository's bpf/ sources, which the guests do not have")
	}
	b, err := os.ReadFile("../../bpf/tracepoint.bpf.c")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	i := strings.Index(src, "static __always_inline bool vg_nr_handled(")
	if i < 0 {
		t.Fatal("bpf/tracepoint.bpf.c has no vg_nr_handled")
	}
	j := strings.Index(src[i:], "\n}\n")
	if j < 0 {
		t.Fatal("vg_nr_handled: no end")
	}
	filter, rest := src[i:i+j], src[:i]+src[i+j:]
	re := regexp.MustCompile(`case (__NR_[a-z0-9_]+):`)
	set := func(s string) []string {
		var out []string
		for _, m := range re.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1])
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	f, d := set(filter), set(rest)
	if len(d) == 0 {
		t.Fatal("no case labels outside vg_nr_handled")
	}
	for _, n := range d {
		if !slices.Contains(f, n) {
			t.Errorf("%s is decoded but not in vg_nr_handled: its exits are never seen", n)
		}
	}
	for _, n := range f {
		if !slices.Contains(d, n) {
			t.Errorf("%s is in vg_nr_handled but decoded nowhere", n)
		}
	}
}

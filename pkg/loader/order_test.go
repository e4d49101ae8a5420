package loader

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
)

// objects is a matrix like elf/manifest.json's, for the ordering rules.
var objects = []elf.Object{
	{Name: "5.10", File: "vigil-5.10.o", Hooks: HooksKprobe},
	{Name: "6.1", File: "vigil-6.1.o", Hooks: HooksKprobe},
	{Name: "6.12", File: "vigil-6.12.o", Hooks: HooksKprobe},
	{Name: "tp", File: "vigil-tp.o", Hooks: HooksTracepoint},
}

func facts(t *testing.T, release string, btf, kprobes bool) *kernel.Facts {
	t.Helper()
	v, err := kernel.ParseRelease(release)
	if err != nil {
		t.Fatal(err)
	}
	return &kernel.Facts{Release: release, Version: v, BTF: btf, Kprobes: kprobes}
}

func TestOrder(t *testing.T) {
	tests := []struct {
		name     string
		release  string
		btf      bool
		kprobes  bool
		opt      Options
		want     []string
		firstWhy string            // substring of the first candidate's Why
		refused  map[string]string // object -> substring of its reason
	}{
		{
			name: "exact match", release: "6.1.0-27-amd64", btf: true, kprobes: true,
			want: []string{"6.1", "5.10", "6.12", "tp"}, firstWhy: "exact match for kernel 6.1",
		},
		{
			name: "exact match 5.10", release: "5.10.0-32-amd64", btf: true, kprobes: true,
			want: []string{"5.10", "6.1", "6.12", "tp"}, firstWhy: "exact match for kernel 5.10",
		},
		{
			name: "exact match 6.12", release: "6.12.117+deb13-amd64", btf: true, kprobes: true,
			want: []string{"6.12", "6.1", "5.10", "tp"}, firstWhy: "exact match for kernel 6.12",
		},
		{
			name: "nearest lower", release: "6.5.3", btf: true, kprobes: true,
			want: []string{"6.1", "5.10", "6.12", "tp"}, firstWhy: "nearest lower to kernel 6.5",
		},
		{
			name: "newer than all", release: "6.18.44-fc-v669", btf: true, kprobes: true,
			want: []string{"6.12", "6.1", "5.10", "tp"}, firstWhy: "nearest lower to kernel 6.18",
		},
		{
			name: "no kprobes", release: "6.18.44-fc-v669", btf: true, kprobes: false,
			want: []string{"tp"}, firstWhy: "tracepoints",
			refused: map[string]string{"5.10": "no kprobes", "6.1": "no kprobes", "6.12": "no kprobes"},
		},
		{
			name: "older than all", release: "4.19.0-27-amd64", btf: true, kprobes: true,
			want: []string{"5.10", "6.1", "6.12", "tp"}, firstWhy: "newer kernel 5.10",
		},
		{
			name: "no BTF", release: "6.1.0", btf: false, kprobes: true,
			want:    nil,
			refused: map[string]string{"5.10": "no BTF", "6.1": "no BTF", "6.12": "no BTF", "tp": "no BTF"},
		},
		{
			name: "force tp", release: "6.1.0", btf: true, kprobes: true, opt: Options{Object: "tp"},
			want: []string{"tp"}, firstWhy: "forced by sensor.object",
			refused: map[string]string{"5.10": `forces "tp"`, "6.1": `forces "tp"`, "6.12": `forces "tp"`},
		},
		{
			name: "force 6.12", release: "6.1.0", btf: true, kprobes: true, opt: Options{Object: "6.12"},
			want: []string{"6.12"}, firstWhy: "forced by sensor.object",
			refused: map[string]string{"5.10": `forces "6.12"`, "6.1": `forces "6.12"`, "tp": `forces "6.12"`},
		},
		{
			name: "object auto", release: "6.1.0", btf: true, kprobes: true, opt: Options{Object: "auto", Hooks: "auto"},
			want: []string{"6.1", "5.10", "6.12", "tp"}, firstWhy: "exact match",
		},
		{
			name: "force tracepoint", release: "6.1.0", btf: true, kprobes: true, opt: Options{Hooks: HooksTracepoint},
			want: []string{"tp"}, firstWhy: "tracepoints",
			refused: map[string]string{"5.10": `forces "tracepoint"`, "6.1": `forces "tracepoint"`, "6.12": `forces "tracepoint"`},
		},
		{
			name: "force kprobe", release: "6.5.0", btf: true, kprobes: true, opt: Options{Hooks: HooksKprobe},
			want: []string{"6.1", "5.10", "6.12"}, firstWhy: "nearest lower",
			refused: map[string]string{"tp": `forces "kprobe"`},
		},
		{
			name: "force kprobe without kprobes", release: "6.1.0", btf: true, kprobes: false, opt: Options{Hooks: HooksKprobe},
			want:    nil,
			refused: map[string]string{"5.10": "no kprobes", "6.1": "no kprobes", "6.12": "no kprobes", "tp": `forces "kprobe"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cands, refused := Order(objects, facts(t, tt.release, tt.btf, tt.kprobes), tt.opt)
			var got []string
			for _, c := range cands {
				got = append(got, c.Object.Name)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("order = %q, want %q (refused %+v)", got, tt.want, refused)
			}
			if len(cands) > 0 && !strings.Contains(cands[0].Why, tt.firstWhy) {
				t.Errorf("first candidate %s: Why = %q, want it to say %q", cands[0].Object.Name, cands[0].Why, tt.firstWhy)
			}
			// Every object is either a candidate or refused, never both.
			if len(cands)+len(refused) != len(objects) {
				t.Errorf("%d candidates + %d refusals, want %d objects", len(cands), len(refused), len(objects))
			}
			gotRefused := map[string]string{}
			for _, r := range refused {
				gotRefused[r.Object] = r.Reason
			}
			if len(gotRefused) != len(tt.refused) {
				t.Errorf("refused %+v, want %d refusals", refused, len(tt.refused))
			}
			for obj, sub := range tt.refused {
				reason, ok := gotRefused[obj]
				if !ok {
					t.Errorf("object %s not refused, want a reason mentioning %q", obj, sub)
				} else if !strings.Contains(reason, sub) {
					t.Errorf("object %s refused with %q, want it to mention %q", obj, reason, sub)
				}
			}
		})
	}
}

// The later lower objects are labelled fallbacks, not "nearest".
func TestOrderWhyLabels(t *testing.T) {
	cands, _ := Order(objects, facts(t, "6.18.1", true, true), Options{})
	want := map[string]string{
		"6.12": "nearest lower to kernel 6.18",
		"6.1":  "older kernel: fallback",
		"5.10": "older kernel: fallback",
		"tp":   "last fallback",
	}
	for _, c := range cands {
		if !strings.Contains(c.Why, want[c.Object.Name]) {
			t.Errorf("%s: Why = %q, want it to say %q", c.Object.Name, c.Why, want[c.Object.Name])
		}
	}
	cands, _ = Order(objects, facts(t, "4.19", true, true), Options{})
	for _, c := range cands {
		if c.Object.Hooks == HooksKprobe && !strings.Contains(c.Why, "newer kernel "+c.Object.Name) {
			t.Errorf("%s on 4.19: Why = %q, want it to say newer kernel", c.Object.Name, c.Why)
		}
	}
}

func TestOrderBadObjects(t *testing.T) {
	objs := []elf.Object{
		{Name: "fentry", Hooks: "fentry"},
		{Name: "latest", Hooks: HooksKprobe},
		{Name: "tp", Hooks: HooksTracepoint},
	}
	cands, refused := Order(objs, facts(t, "6.1.0", true, true), Options{})
	if len(cands) != 1 || cands[0].Object.Name != "tp" {
		t.Errorf("candidates %+v, want only tp", cands)
	}
	want := map[string]string{"fentry": "unknown hook type", "latest": "not a kernel version"}
	if len(refused) != len(want) {
		t.Fatalf("refused %+v, want %d", refused, len(want))
	}
	for _, r := range refused {
		if !strings.Contains(r.Reason, want[r.Object]) {
			t.Errorf("%s refused with %q, want %q", r.Object, r.Reason, want[r.Object])
		}
	}
}

// TestManifestInStep keeps bpf/matrix, elf/manifest.json and the loader in
// step: every embedded kprobe object is named for a kernel version, is the
// first candidate on that kernel, and passes Check against its own kernel
// (the BTF it was built with and that kernel's prototypes).
func TestManifestInStep(t *testing.T) {
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Objects) == 0 {
		t.Fatal("embedded manifest lists no objects")
	}
	// The manifest is bpf/matrix, line for line.
	matrix, err := os.ReadFile("../../bpf/matrix")
	if err != nil {
		t.Fatal(err)
	}
	var lines, names []string
	for _, line := range strings.Split(string(matrix), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "@") {
			lines = append(lines, f[0])
		}
	}
	for _, o := range man.Objects {
		names = append(names, o.Name)
	}
	if !reflect.DeepEqual(names, lines) {
		t.Errorf("embedded objects %q, bpf/matrix lines %q: run make elf", names, lines)
	}
	for _, o := range man.Objects {
		t.Run(o.Name, func(t *testing.T) {
			if _, ok := hookRank[o.Hooks]; !ok {
				t.Errorf("hooks %q is not a known hook type", o.Hooks)
			}
			if _, err := elf.Bytes(o.File); err != nil {
				t.Fatalf("object file %s not embedded: %v", o.File, err)
			}
			if o.Hooks != HooksKprobe {
				return
			}
			v, err := kernel.ParseRelease(o.Name)
			if err != nil {
				t.Fatalf("kprobe object name: %v", err)
			}
			cands, _ := Order(man.Objects, facts(t, o.Name+".0", true, true), Options{})
			if len(cands) == 0 || cands[0].Object.Name != o.Name {
				t.Errorf("kernel %s.0: first candidate is not object %s: %+v", o.Name, o.Name, cands)
			}
			f := kernelOf(t, o, sigsFor(v))
			spec, err := Spec(o)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(o, spec, f); err != nil {
				t.Errorf("object %s on its own kernel: %v", o.Name, err)
			}
		})
	}
}

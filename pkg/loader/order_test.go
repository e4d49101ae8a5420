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
	// A kernel that preempts only where it offers to (Debian's up to 6.12):
	// the fentry family first. TestOrderPreempt covers the others.
	return &kernel.Facts{Release: release, Version: v, BTF: btf, Kprobes: kprobes,
		Preempt: kernel.PreemptVoluntary, PreemptSource: "test"}
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
		{Name: "uprobe", Hooks: "uprobe"},
		{Name: "latest", Hooks: HooksKprobe},
		{Name: "6.1", Hooks: HooksFentry},
		{Name: "tp", Hooks: HooksTracepoint},
	}
	cands, refused := Order(objs, facts(t, "6.1.0", true, true), Options{})
	if len(cands) != 1 || cands[0].Object.Name != "tp" {
		t.Errorf("candidates %+v, want only tp", cands)
	}
	want := map[string]string{"uprobe": "unknown hook type", "latest": "not a kernel version", "6.1": `does not start with "fentry-"`}
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
		if f := strings.Fields(line); len(f) > 1 && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "@") {
			// A line's families: the kprobe object keeps the line's name,
			// the others are <family>-<name>.
			for _, fam := range strings.Split(f[1], ",") {
				if fam == HooksKprobe || fam == HooksTracepoint {
					lines = append(lines, f[0])
				} else {
					lines = append(lines, fam+"-"+f[0])
				}
			}
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
			line, ok := LineOf(o)
			if !ok {
				return
			}
			v, err := kernel.ParseRelease(line)
			if err != nil {
				t.Fatalf("object name %s: %v", o.Name, err)
			}
			// On its own kernel with the BPF LSM active: the line's
			// BPF-LSM object first, then its fentry object, then its
			// kprobe object.
			fs := facts(t, line+".0", true, true)
			fs.LSMs = "lockdown,capability,bpf"
			cands, _ := Order(man.Objects, fs, Options{})
			i := familyRank[o.Hooks]
			if len(cands) <= i || cands[i].Object.Name != o.Name {
				t.Errorf("kernel %s.0: candidate %d is not object %s: %+v", line, i+1, o.Name, cands)
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

// A kernel line's fentry object comes before its kprobe object, line by
// line; without kprobes only the fentry objects and the tracepoint object
// are candidates.
func TestOrderFamilies(t *testing.T) {
	objs := []elf.Object{
		{Name: "5.10", Hooks: HooksKprobe}, {Name: "fentry-5.10", Hooks: HooksFentry},
		{Name: "6.1", Hooks: HooksKprobe}, {Name: "fentry-6.1", Hooks: HooksFentry},
		{Name: "7.3", Hooks: HooksKprobe}, {Name: "fentry-7.3", Hooks: HooksFentry},
		{Name: "tp", Hooks: HooksTracepoint},
	}
	cands, _ := Order(objs, facts(t, "6.1.0", true, true), Options{})
	want := []string{"fentry-6.1", "6.1", "fentry-5.10", "5.10", "fentry-7.3", "7.3", "tp"}
	if got := candNames(cands); !reflect.DeepEqual(got, want) {
		t.Errorf("6.1 with kprobes: %q, want %q", got, want)
	}
	if !strings.Contains(cands[0].Why, "fentry") || !strings.Contains(cands[0].Why, "exact match") {
		t.Errorf("first candidate's reason %q names neither the family nor the match", cands[0].Why)
	}
	cands, refused := Order(objs, facts(t, "6.18.0", true, false), Options{})
	want = []string{"fentry-6.1", "fentry-5.10", "fentry-7.3", "tp"}
	if got := candNames(cands); !reflect.DeepEqual(got, want) {
		t.Errorf("6.18 without kprobes: %q, want %q", got, want)
	}
	if len(refused) != 3 {
		t.Errorf("6.18 without kprobes: refused %+v, want the three kprobe objects", refused)
	}
	cands, _ = Order(objs, facts(t, "6.1.0", true, true), Options{Hooks: HooksKprobe})
	want = []string{"6.1", "5.10", "7.3"}
	if got := candNames(cands); !reflect.DeepEqual(got, want) {
		t.Errorf("kprobe forced: %q, want %q", got, want)
	}
}

// TestOrderPreempt: on a kernel that preempts in kernel mode (7.x's lazy
// model, full, or a model that could not be read), a line's kprobe object
// comes before its fentry object, and the fentry object says why; without
// kprobes the fentry objects stay before the tracepoint object.
func TestOrderPreempt(t *testing.T) {
	objs := []elf.Object{
		{Name: "7.2", Hooks: HooksKprobe}, {Name: "fentry-7.2", Hooks: HooksFentry},
		{Name: "7.3", Hooks: HooksKprobe}, {Name: "fentry-7.3", Hooks: HooksFentry},
		{Name: "tp", Hooks: HooksTracepoint},
	}
	for _, model := range []string{kernel.PreemptLazy, kernel.PreemptFull, ""} {
		f := facts(t, "7.3.0", true, true)
		f.Preempt = model
		cands, _ := Order(objs, f, Options{})
		want := []string{"7.3", "fentry-7.3", "7.2", "fentry-7.2", "tp"}
		if got := candNames(cands); !reflect.DeepEqual(got, want) {
			t.Errorf("model %q: %q, want %q", model, got, want)
		}
		why := cands[1].Why
		if !strings.Contains(why, "after the kprobe object") || (model != "" && !strings.Contains(why, model)) ||
			(model == "" && !strings.Contains(why, "unknown")) {
			t.Errorf("model %q: the fentry object's reason %q does not say why it comes second", model, why)
		}
		f.Kprobes = false
		cands, _ = Order(objs, f, Options{})
		want = []string{"fentry-7.3", "fentry-7.2", "tp"}
		if got := candNames(cands); !reflect.DeepEqual(got, want) {
			t.Errorf("model %q without kprobes: %q, want %q", model, got, want)
		}
	}
	for _, model := range []string{kernel.PreemptNone, kernel.PreemptVoluntary} {
		f := facts(t, "7.3.0", true, true)
		f.Preempt = model
		cands, _ := Order(objs, f, Options{})
		if got := candNames(cands); got[0] != "fentry-7.3" || strings.Contains(cands[0].Why, "after the kprobe") {
			t.Errorf("model %q: %q (%q), want the fentry object first", model, got, cands[0].Why)
		}
	}
}

// candNames lists the candidates' object names, in order.
func candNames(cs []Candidate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Object.Name)
	}
	return out
}

// TestOrderLSM: a line's BPF-LSM object comes first where the kernel runs
// the BPF LSM, after the kprobe object where it preempts in kernel mode,
// and is refused without a try, saying why, where the BPF LSM is not
// active or the active LSMs could not be read.
func TestOrderLSM(t *testing.T) {
	objs := []elf.Object{
		{Name: "6.1", Hooks: HooksKprobe}, {Name: "fentry-6.1", Hooks: HooksFentry}, {Name: "lsm-6.1", Hooks: HooksLSM},
		{Name: "tp", Hooks: HooksTracepoint},
	}
	cases := []struct {
		lsms, lsmErr, preempt string
		want                  []string
		refusal               string
	}{
		{"lockdown,capability,landlock,yama,apparmor,bpf", "", kernel.PreemptVoluntary,
			[]string{"lsm-6.1", "fentry-6.1", "6.1", "tp"}, ""},
		{"lockdown,capability,bpf", "", kernel.PreemptLazy,
			[]string{"6.1", "lsm-6.1", "fentry-6.1", "tp"}, ""},
		{"lockdown,capability,landlock,yama,apparmor", "", kernel.PreemptVoluntary,
			[]string{"fentry-6.1", "6.1", "tp"}, "the BPF LSM is not active (lockdown,capability,landlock,yama,apparmor): its programs would never run; boot with lsm=lockdown,capability,landlock,yama,apparmor,bpf"},
		{"", "reading the active LSMs: open /sys/kernel/security/lsm: permission denied", kernel.PreemptVoluntary,
			[]string{"fentry-6.1", "6.1", "tp"}, "the active LSMs are unknown (reading the active LSMs: open /sys/kernel/security/lsm: permission denied)"},
	}
	for _, c := range cases {
		f := facts(t, "6.1.0", true, true)
		f.LSMs, f.LSMErr, f.Preempt = c.lsms, c.lsmErr, c.preempt
		cands, refused := Order(objs, f, Options{})
		if got := candNames(cands); !reflect.DeepEqual(got, c.want) {
			t.Errorf("LSMs %q, preemption %q: %q, want %q", c.lsms, c.preempt, got, c.want)
		}
		var why string
		for _, r := range refused {
			if r.Object == "lsm-6.1" {
				why = r.Reason
			}
		}
		if !strings.Contains(why, c.refusal) || (c.refusal == "") != (why == "") {
			t.Errorf("LSMs %q: the BPF-LSM object's refusal %q, want %q", c.lsms, why, c.refusal)
		}
		if c.refusal == "" {
			for _, cd := range cands {
				if cd.Object.Name == "lsm-6.1" && !strings.HasPrefix(cd.Why, "BPF-LSM programs") {
					t.Errorf("LSMs %q: the BPF-LSM object's reason %q does not name its family", c.lsms, cd.Why)
				}
			}
		}
	}
}

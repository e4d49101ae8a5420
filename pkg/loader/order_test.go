package loader

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
)

// objects mirrors elf/manifest.json.
var objects = []elf.Object{
	{Name: "5.10", File: "vigil-5.10.o", Hooks: HooksKprobe, Facts: map[string]string{"rename": "renamedata", "idmap": "none"}},
	{Name: "6.1", File: "vigil-6.1.o", Hooks: HooksKprobe, Facts: map[string]string{"rename": "renamedata", "idmap": "userns"}},
	{Name: "6.12", File: "vigil-6.12.o", Hooks: HooksKprobe, Facts: map[string]string{"rename": "renamedata", "idmap": "idmap"}},
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

// fakeFuncs is a kernel.Funcs from a map.
type fakeFuncs map[string]*kernel.Func

func (f fakeFuncs) Func(name string) (*kernel.Func, error) {
	fn, ok := f[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, kernel.ErrNoFunc)
	}
	return fn, nil
}

func funcsOf(sigs map[string][]string) fakeFuncs {
	f := fakeFuncs{}
	for name, params := range sigs {
		f[name] = &kernel.Func{Name: name, Params: params}
	}
	return f
}

// Signatures of the hooked functions as the matrix's kernels have them.
var (
	common = map[string][]string{
		"vfs_write":  {"struct file *", "char *", "size_t", "loff_t *"},
		"vfs_rename": {"struct renamedata *"},
	}
	sigs510 = merge(common, map[string][]string{
		"vfs_unlink":    {"struct inode *", "struct dentry *", "struct inode **"},
		"notify_change": {"struct dentry *", "struct iattr *", "struct inode **"},
		"vfs_link":      {"struct dentry *", "struct inode *", "struct dentry *", "struct inode **"},
	})
	sigs61 = merge(common, map[string][]string{
		"vfs_unlink":    {"struct user_namespace *", "struct inode *", "struct dentry *", "struct inode **"},
		"notify_change": {"struct user_namespace *", "struct dentry *", "struct iattr *", "struct inode **"},
		"vfs_link":      {"struct dentry *", "struct user_namespace *", "struct inode *", "struct dentry *", "struct inode **"},
	})
	sigs612 = merge(common, map[string][]string{
		"vfs_unlink":    {"struct mnt_idmap *", "struct inode *", "struct dentry *", "struct inode **"},
		"notify_change": {"struct mnt_idmap *", "struct dentry *", "struct iattr *", "struct inode **"},
		"vfs_link":      {"struct dentry *", "struct mnt_idmap *", "struct inode *", "struct dentry *", "struct inode **"},
	})
	// Before struct renamedata (upstream 5.11 and older).
	sigsOldRename = merge(sigs510, map[string][]string{
		"vfs_rename": {"struct inode *", "struct dentry *", "struct inode *", "struct dentry *", "struct inode **", "unsigned int"},
	})
)

func merge(ms ...map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestVerify(t *testing.T) {
	obj := func(name string, facts map[string]string) elf.Object {
		return elf.Object{Name: name, Hooks: HooksKprobe, Facts: facts}
	}
	o510 := obj("5.10", map[string]string{"rename": "renamedata", "idmap": "none"})
	o61 := obj("6.1", map[string]string{"rename": "renamedata", "idmap": "userns"})
	o612 := obj("6.12", map[string]string{"rename": "renamedata", "idmap": "idmap"})
	hooked := []string{"notify_change", "vfs_link", "vfs_rename", "vfs_unlink", "vfs_write"}

	tests := []struct {
		name    string
		obj     elf.Object
		hooked  []string
		funcs   kernel.Funcs
		wantErr []string // substrings of the error; nil: no error
		errIs   error
	}{
		{name: "5.10 on 5.10", obj: o510, hooked: hooked, funcs: funcsOf(sigs510)},
		{name: "6.1 on 6.1", obj: o61, hooked: hooked, funcs: funcsOf(sigs61)},
		{name: "6.12 on 6.12", obj: o612, hooked: hooked, funcs: funcsOf(sigs612)},
		{name: "tp without facts", obj: elf.Object{Name: "tp", Hooks: HooksTracepoint}, funcs: funcsOf(nil)},
		{
			name: "5.10 on 6.1", obj: o510, hooked: hooked, funcs: funcsOf(sigs61),
			// notify_change sorts first among idmap=none's functions.
			wantErr: []string{"idmap=none", "notify_change parameter 1", `"struct user_namespace *"`, `"struct dentry *"`},
		},
		{
			name: "5.10 on 6.12", obj: o510, hooked: hooked, funcs: funcsOf(sigs612),
			wantErr: []string{"idmap=none", "notify_change parameter 1", `"struct mnt_idmap *"`, `"struct dentry *"`},
		},
		{
			name: "6.1 on 5.10", obj: o61, hooked: hooked, funcs: funcsOf(sigs510),
			wantErr: []string{"idmap=userns", "notify_change parameter 1", `"struct dentry *"`, `"struct user_namespace *"`},
		},
		{
			name: "6.1 on 6.12", obj: o61, hooked: hooked, funcs: funcsOf(sigs612),
			wantErr: []string{"idmap=userns", "notify_change parameter 1", `"struct mnt_idmap *"`, `"struct user_namespace *"`},
		},
		{
			name: "6.12 on 6.1", obj: o612, hooked: hooked, funcs: funcsOf(sigs61),
			wantErr: []string{"idmap=idmap", "notify_change parameter 1", `"struct user_namespace *"`, `"struct mnt_idmap *"`},
		},
		{
			// Only vfs_link is 6.1-style: the error names it, not the others.
			name: "6.12 vfs_link only differs", obj: o612, hooked: hooked,
			funcs:   funcsOf(merge(sigs612, map[string][]string{"vfs_link": sigs61["vfs_link"]})),
			wantErr: []string{"idmap=idmap", "vfs_link parameter 2", `"struct user_namespace *"`, `"struct mnt_idmap *"`},
		},
		{
			name: "short parameter list", obj: o612, hooked: hooked,
			funcs:   funcsOf(merge(sigs612, map[string][]string{"notify_change": {"struct mnt_idmap *", "struct dentry *"}})),
			wantErr: []string{"notify_change parameter 3", "(absent)", `"struct iattr *"`},
		},
		{
			name: "rename before renamedata", obj: o510, hooked: hooked, funcs: funcsOf(sigsOldRename),
			wantErr: []string{"rename=renamedata", "vfs_rename parameter 1", `"struct inode *"`, `"struct renamedata *"`},
		},
		{
			name: "hooked function missing", obj: o612, hooked: append(hooked, "vfs_fallocate"), funcs: funcsOf(sigs612),
			wantErr: []string{"hooked function", "vfs_fallocate"}, errIs: kernel.ErrNoFunc,
		},
		{
			name: "fact function missing", obj: o612, hooked: nil,
			funcs:   funcsOf(map[string][]string{"vfs_rename": {"struct renamedata *"}}),
			wantErr: []string{"idmap=idmap", "notify_change"}, errIs: kernel.ErrNoFunc,
		},
		{
			name: "unknown fact", obj: obj("x", map[string]string{"frobnicate": "yes"}), funcs: funcsOf(sigs612),
			wantErr: []string{"frobnicate=yes", "unknown fact"},
		},
		{
			name: "unknown value", obj: obj("x", map[string]string{"idmap": "maybe"}), funcs: funcsOf(sigs612),
			wantErr: []string{"idmap=maybe", "unknown value"},
		},
		{
			name: "no BTF", obj: o612, hooked: hooked, funcs: nil,
			wantErr: []string{"no BTF"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &kernel.Facts{Release: "test", BTF: tt.funcs != nil, Kprobes: true, Funcs: tt.funcs}
			// Repeat: Verify walks maps, its answer must not depend on their order.
			for i := 0; i < 20; i++ {
				err := Verify(tt.obj, tt.hooked, f)
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("Verify passed, want an error mentioning %q", tt.wantErr)
				}
				for _, sub := range tt.wantErr {
					if !strings.Contains(err.Error(), sub) {
						t.Fatalf("Verify error %q does not mention %q", err, sub)
					}
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Fatalf("Verify error %q does not wrap %v", err, tt.errIs)
				}
			}
		})
	}
}

// TestManifestInStep keeps bpf/matrix, elf/manifest.json and the loader in
// step: every embedded object's facts are known to Verify, and every kprobe
// object is named for a kernel version.
func TestManifestInStep(t *testing.T) {
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range man.Objects {
		names = append(names, o.Name)
		t.Run(o.Name, func(t *testing.T) {
			if _, ok := hookRank[o.Hooks]; !ok {
				t.Errorf("hooks %q is not a known hook type", o.Hooks)
			}
			if o.Hooks == HooksKprobe {
				if _, err := kernel.ParseRelease(o.Name); err != nil {
					t.Errorf("kprobe object name: %v", err)
				}
			}
			if _, err := elf.Bytes(o.File); err != nil {
				t.Errorf("object file %s not embedded: %v", o.File, err)
			}
			// A kernel that satisfies exactly what the object's facts expect.
			sigs := map[string][]string{}
			for fact, val := range o.Facts {
				for fn, params := range expectations[fact][val] {
					for idx, typ := range params {
						for len(sigs[fn]) <= idx {
							sigs[fn] = append(sigs[fn], "int")
						}
						sigs[fn][idx] = typ
					}
				}
			}
			f := &kernel.Facts{Release: o.Name, BTF: true, Kprobes: true, Funcs: funcsOf(sigs)}
			if err := Verify(o, nil, f); err != nil {
				t.Errorf("facts %v: %v", o.Facts, err)
			}
		})
	}
	// The matrix's kernels, each with its own object: Order picks it first.
	for _, o := range man.Objects {
		if o.Hooks != HooksKprobe {
			continue
		}
		cands, _ := Order(man.Objects, facts(t, o.Name+".0", true, true), Options{})
		if len(cands) == 0 || cands[0].Object.Name != o.Name {
			t.Errorf("kernel %s.0: first candidate is not object %s: %+v", o.Name, o.Name, cands)
		}
	}
	if len(names) == 0 {
		t.Fatal("embedded manifest lists no objects")
	}
}

package loader

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/vigil-fim/vigil/elf"
	"github.com/vigil-fim/vigil/pkg/kernel"
)

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

func merge(ms ...map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// The hooked functions' prototypes as each matrix kernel's BTF has them
// (kernel.SpecFuncs on Debian's 5.10.223, 6.1.176, 6.12.117, 7.2.13, 7.3.4).
var (
	sigsFile = map[string][]string{
		"vfs_write":              {"struct file *", "char *", "size_t", "loff_t *"},
		"vfs_writev":             {"struct file *", "struct iovec *", "long unsigned int", "loff_t *", "rwf_t"},
		"vfs_iter_write":         {"struct file *", "struct iov_iter *", "loff_t *", "rwf_t"},
		"iter_file_splice_write": {"struct pipe_inode_info *", "struct file *", "loff_t *", "size_t", "unsigned int"},
		"vfs_copy_file_range":    {"struct file *", "loff_t", "struct file *", "loff_t", "size_t", "unsigned int"},
		"io_write":               {"struct io_kiocb *", "unsigned int"},
		"security_mmap_file":     {"struct file *", "long unsigned int", "long unsigned int"},
		"security_file_open":     {"struct file *"},
		"vfs_rename":             {"struct renamedata *"},
	}
	sigs510 = merge(sigsFile, map[string][]string{
		"notify_change": {"struct dentry *", "struct iattr *", "struct inode **"},
		"vfs_unlink":    {"struct inode *", "struct dentry *", "struct inode **"},
		"vfs_link":      {"struct dentry *", "struct inode *", "struct dentry *", "struct inode **"},
	})
	sigs61 = merge(sigsFile, map[string][]string{
		"notify_change": {"struct user_namespace *", "struct dentry *", "struct iattr *", "struct inode **"},
		"vfs_unlink":    {"struct user_namespace *", "struct inode *", "struct dentry *", "struct inode **"},
		"vfs_link":      {"struct dentry *", "struct user_namespace *", "struct inode *", "struct dentry *", "struct inode **"},
	})
	sigs612 = merge(sigsFile, map[string][]string{
		"notify_change": {"struct mnt_idmap *", "struct dentry *", "struct iattr *", "struct inode **"},
		"vfs_unlink":    {"struct mnt_idmap *", "struct inode *", "struct dentry *", "struct inode **"},
		"vfs_link":      {"struct dentry *", "struct mnt_idmap *", "struct inode *", "struct dentry *", "struct inode **"},
	})
	sigs7 = merge(sigsFile, map[string][]string{
		"notify_change": {"struct mnt_idmap *", "struct dentry *", "struct iattr *", "struct delegated_inode *"},
		"vfs_unlink":    {"struct mnt_idmap *", "struct inode *", "struct dentry *", "struct delegated_inode *"},
		"vfs_link":      {"struct dentry *", "struct mnt_idmap *", "struct inode *", "struct dentry *", "struct delegated_inode *"},
	})
	// Before struct renamedata (upstream 5.11 and older).
	sigsOldRename = merge(sigs510, map[string][]string{
		"vfs_rename": {"struct inode *", "struct dentry *", "struct inode *", "struct dentry *", "struct inode **", "unsigned int"},
	})
	kernelSigs = []struct {
		v    kernel.Version
		sigs map[string][]string
	}{
		{kernel.Version{Major: 5, Minor: 10}, sigs510},
		{kernel.Version{Major: 6, Minor: 1}, sigs61},
		{kernel.Version{Major: 6, Minor: 12}, sigs612},
		{kernel.Version{Major: 7, Minor: 2}, sigs7},
	}
)

// sigsFor gives a kernel version the prototypes of the newest kernel above
// that the tests know, at or below it: a new matrix line needs nothing here.
func sigsFor(v kernel.Version) map[string][]string {
	out := kernelSigs[0].sigs
	for _, k := range kernelSigs {
		if !v.Less(k.v) {
			out = k.sigs
		}
	}
	return out
}

// kernelBTF stands in for a kernel's BTF: the types an object was compiled
// with, which are the kernel's own (its checked-in header came from that
// kernel's BTF) for every type the C uses, without the object's CO-RE
// flavours (renamedata___dirs), which are the object's, not the kernel's.
func kernelBTF(t *testing.T, o elf.Object) *btf.Spec {
	t.Helper()
	spec, err := Spec(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for typ, err := range spec.Types.All() {
		if err != nil {
			t.Fatal(err)
		}
		if isFlavour(typ) {
			continue
		}
		if _, err := b.Add(typ); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for typ, err := range ks.All() {
		if err == nil && strings.Contains(typ.TypeName(), "___") {
			t.Fatalf("kernel BTF for %s still has the object's flavour %s", o.Name, typ.TypeName())
		}
	}
	return ks
}

// isFlavour: a CO-RE flavour type, or a pointer or qualifier over one.
func isFlavour(t btf.Type) bool {
	for i := 0; i < 8; i++ {
		if strings.Contains(t.TypeName(), "___") {
			return true
		}
		switch v := t.(type) {
		case *btf.Pointer:
			t = v.Target
		case *btf.Const:
			t = v.Type
		case *btf.Volatile:
			t = v.Type
		default:
			return false
		}
	}
	return false
}

// kernelOf is the kernel an object was built for, as Check sees it.
func kernelOf(t *testing.T, o elf.Object, sigs map[string][]string) *kernel.Facts {
	t.Helper()
	v, err := kernel.ParseRelease(o.Name)
	if err != nil {
		t.Fatal(err)
	}
	return &kernel.Facts{Release: o.Name, Version: v, BTF: true, Kprobes: true, Funcs: funcsOf(sigs), Spec: kernelBTF(t, o)}
}

func kprobeObjects(t *testing.T) []elf.Object {
	t.Helper()
	man, err := elf.Load()
	if err != nil {
		t.Fatal(err)
	}
	var out []elf.Object
	for _, o := range man.Objects {
		if o.Hooks == HooksKprobe {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		t.Fatal("no kprobe objects embedded")
	}
	return out
}

// argValue reads an argument variable as Check set it.
func argValue(t *testing.T, spec *ebpf.CollectionSpec, name string) uint32 {
	t.Helper()
	vs, ok := spec.Variables[name]
	if !ok {
		t.Fatalf("object has no variable %s", name)
	}
	var v uint32
	if err := vs.Get(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Every kprobe object on every matrix kernel's types and prototypes, older
// and newer than its own: Check passes, and the argument variables say
// where that kernel has each argument, whatever kernel the object was
// built for.
func TestCheckEveryObjectOnEveryKernel(t *testing.T) {
	objs := kprobeObjects(t)
	want := map[*map[string][]string]map[string]uint32{
		&sigs510: {"vg_arg_unlink_dentry": 1, "vg_arg_notify_dentry": 0, "vg_arg_notify_attr": 1, "vg_arg_link_old": 0, "vg_arg_link_dir": 1, "vg_arg_link_new": 2},
		&sigs61:  {"vg_arg_unlink_dentry": 2, "vg_arg_notify_dentry": 1, "vg_arg_notify_attr": 2, "vg_arg_link_old": 0, "vg_arg_link_dir": 2, "vg_arg_link_new": 3},
		&sigs612: {"vg_arg_unlink_dentry": 2, "vg_arg_notify_dentry": 1, "vg_arg_notify_attr": 2, "vg_arg_link_old": 0, "vg_arg_link_dir": 2, "vg_arg_link_new": 3},
		&sigs7:   {"vg_arg_unlink_dentry": 2, "vg_arg_notify_dentry": 1, "vg_arg_notify_attr": 2, "vg_arg_link_old": 0, "vg_arg_link_dir": 2, "vg_arg_link_new": 3},
	}
	same := map[string]uint32{"vg_arg_write_file": 0, "vg_arg_write_count": 2, "vg_arg_copy_out": 2, "vg_arg_copy_len": 4,
		"vg_arg_splice_out": 1, "vg_arg_mmap_prot": 1, "vg_arg_mmap_flags": 2, "vg_arg_rename_rd": 0}
	for _, ko := range objs {
		kv, _ := kernel.ParseRelease(ko.Name)
		sigs := sigsFor(kv)
		var positions map[string]uint32
		for p, w := range want {
			if fmt.Sprint(*p) == fmt.Sprint(sigs) {
				positions = w
			}
		}
		if positions == nil {
			t.Fatalf("kernel %s: no expected positions", ko.Name)
		}
		f := kernelOf(t, ko, sigs)
		for _, o := range objs {
			t.Run(fmt.Sprintf("object %s on kernel %s", o.Name, ko.Name), func(t *testing.T) {
				spec, err := Spec(o)
				if err != nil {
					t.Fatal(err)
				}
				if err := Check(o, spec, f); err != nil {
					t.Fatalf("Check: %v", err)
				}
				for _, w := range []map[string]uint32{positions, same} {
					for name, pos := range w {
						if got := argValue(t, spec, name); got != pos {
							t.Errorf("%s = %d, want %d", name, got, pos)
						}
					}
				}
			})
		}
	}
}

func TestCheckArgs(t *testing.T) {
	o := kprobeObjects(t)[0]
	tests := []struct {
		name    string
		sigs    map[string][]string
		wantErr []string
		errIs   error
	}{
		{
			name: "rename before renamedata", sigs: sigsOldRename,
			wantErr: []string{"vg_arg_rename_rd", "vfs_rename(struct inode *, struct dentry *,", `no first parameter of type "struct renamedata *"`},
		},
		{
			name:    "second dentry missing",
			sigs:    merge(sigs612, map[string][]string{"vfs_link": {"struct dentry *", "struct mnt_idmap *", "struct inode *"}}),
			wantErr: []string{"vg_arg_link_new", `vfs_link(struct dentry *, struct mnt_idmap *, struct inode *) has no second parameter of type "struct dentry *"`},
		},
		{
			name:    "beyond the registers",
			sigs:    merge(sigs612, map[string][]string{"vfs_link": {"int", "int", "int", "int", "int", "struct dentry *", "struct inode *", "struct dentry *"}}),
			wantErr: []string{"vg_arg_link_dir", `vfs_link: the first "struct inode *" is parameter 7, beyond the 5 a kprobe reads`},
		},
		{
			name: "hooked function missing", sigs: merge(sigs612, map[string][]string{"io_write": nil}),
			wantErr: []string{"hooked function"}, errIs: kernel.ErrNoFunc,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigs := map[string][]string{}
			for k, v := range tt.sigs {
				if v != nil {
					sigs[k] = v
				}
			}
			f := kernelOf(t, o, sigs)
			spec, err := Spec(o)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(o, spec, f)
			if err == nil {
				t.Fatalf("Check passed, want an error mentioning %q", tt.wantErr)
			}
			for _, sub := range tt.wantErr {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("Check error %q does not mention %q", err, sub)
				}
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("Check error %q does not wrap %v", err, tt.errIs)
			}
		})
	}
}

func TestCheckRefusesWithoutBTFOrWithFacts(t *testing.T) {
	o := kprobeObjects(t)[0]
	spec, err := Spec(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(o, spec, &kernel.Facts{Release: "x"}); err == nil || !strings.Contains(err.Error(), "no BTF") {
		t.Errorf("Check without BTF: %v", err)
	}
	f := kernelOf(t, o, sigs510)
	o.Facts = map[string]string{"idmap": "none"}
	if err := Check(o, spec, f); err == nil || !strings.Contains(err.Error(), "idmap=none") {
		t.Errorf("Check of an object with facts: %v", err)
	}
}

// Every argument variable in the kprobe objects has a rule, and every rule
// is used.
func TestArgVarsInStep(t *testing.T) {
	used := map[string]bool{}
	for _, o := range kprobeObjects(t) {
		spec, err := Spec(o)
		if err != nil {
			t.Fatal(err)
		}
		for name := range spec.Variables {
			if !strings.HasPrefix(name, argPrefix) {
				continue
			}
			used[name] = true
			if _, ok := argVars[name]; !ok {
				t.Errorf("object %s: variable %s has no rule in argVars", o.Name, name)
			}
		}
	}
	for name := range argVars {
		if !used[name] {
			t.Errorf("argVars rule %s: no object has the variable", name)
		}
	}
}

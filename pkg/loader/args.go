package loader

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/vigil-fim/vigil/pkg/kernel"
)

// argVar says which parameter of a hooked function an object's argument
// variable (vg_arg_*, bpf/kprobe.bpf.c) stands for: the Nth (from 0)
// parameter whose C type is Type, as BTF spells it. The loader finds it in
// the running kernel's prototype and sets the variable to its position, so
// an object needs no build-time knowledge of where arguments sit: this
// table is the one statement of what each hook reads, and the kernel's BTF
// answers where.
type argVar struct {
	Func string
	Type string
	Nth  int
}

// argPrefix starts the name of every argument variable.
const argPrefix = "vg_arg_"

// maxArgRegs is how many arguments a kprobe reads from registers on x86-64
// (PT_REGS_PARM1..5 in bpf/kprobe.bpf.c).
const maxArgRegs = 5

var argVars = map[string]argVar{
	VarArgWriteFile:    {"vfs_write", "struct file *", 0},
	VarArgWriteCount:   {"vfs_write", "size_t", 0},
	VarArgWritevFile:   {"vfs_writev", "struct file *", 0},
	VarArgIterwFile:    {"vfs_iter_write", "struct file *", 0},
	VarArgSpliceOut:    {"iter_file_splice_write", "struct file *", 0},
	VarArgCopyOut:      {"vfs_copy_file_range", "struct file *", 1},
	VarArgCopyLen:      {"vfs_copy_file_range", "size_t", 0},
	VarArgIOReq:        {"io_write", "struct io_kiocb *", 0},
	VarArgMmapFile:     {"security_mmap_file", "struct file *", 0},
	VarArgMmapProt:     {"security_mmap_file", "long unsigned int", 0},
	VarArgMmapFlags:    {"security_mmap_file", "long unsigned int", 1},
	VarArgOpenFile:     {"security_file_open", "struct file *", 0},
	VarArgNotifyDentry: {"notify_change", "struct dentry *", 0},
	VarArgNotifyAttr:   {"notify_change", "struct iattr *", 0},
	VarArgRenameRd:     {"vfs_rename", "struct renamedata *", 0},
	VarArgUnlinkDentry: {"vfs_unlink", "struct dentry *", 0},
	VarArgLinkOld:      {"vfs_link", "struct dentry *", 0},
	VarArgLinkDir:      {"vfs_link", "struct inode *", 0},
	VarArgLinkNew:      {"vfs_link", "struct dentry *", 1},
}

func ordinal(n int) string {
	switch n {
	case 0:
		return "first"
	case 1:
		return "second"
	case 2:
		return "third"
	}
	return fmt.Sprintf("%dth", n+1)
}

// position finds an argument in a kernel's prototype.
func (a argVar) position(funcs kernel.Funcs) (int, error) {
	fn, err := funcs.Func(a.Func)
	if err != nil {
		return 0, err
	}
	seen := 0
	for i, p := range fn.Params {
		if p != a.Type {
			continue
		}
		if seen == a.Nth {
			if i >= maxArgRegs {
				return 0, fmt.Errorf("%s: the %s %q is parameter %d, beyond the %d a kprobe reads",
					a.Func, ordinal(a.Nth), a.Type, i+1, maxArgRegs)
			}
			return i, nil
		}
		seen++
	}
	return 0, fmt.Errorf("%s(%s) has no %s parameter of type %q",
		a.Func, strings.Join(fn.Params, ", "), ordinal(a.Nth), a.Type)
}

// setArgs sets every argument variable of spec from the kernel's
// prototypes. An object variable that argVars does not describe refuses the
// object: it would run unset.
func setArgs(spec *ebpf.CollectionSpec, funcs kernel.Funcs) error {
	names := make([]string, 0, len(spec.Variables))
	for n := range spec.Variables {
		if strings.HasPrefix(n, argPrefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		a, ok := argVars[n]
		if !ok {
			return fmt.Errorf("object variable %s: pkg/loader/args.go does not say which argument it is", n)
		}
		pos, err := a.position(funcs)
		if err != nil {
			return fmt.Errorf("argument %s: %w", n, err)
		}
		if err := spec.Variables[n].Set(uint32(pos)); err != nil {
			return fmt.Errorf("setting %s: %w", n, err)
		}
	}
	return nil
}

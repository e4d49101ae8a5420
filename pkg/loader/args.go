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
// (rdi, rsi, rdx, rcx, r8, r9: vg_arg in bpf/kprobe.bpf.c).
const maxArgRegs = 6

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

	VarArgSetxattrDentry: {"vfs_setxattr", "struct dentry *", 0},
	VarArgSetxattrName:   {"vfs_setxattr", "char *", 0},
	VarArgSetxattrFlags:  {"vfs_setxattr", "int", 0},
	VarArgRmxattrDentry:  {"vfs_removexattr", "struct dentry *", 0},
	VarArgRmxattrName:    {"vfs_removexattr", "char *", 0},
	VarArgSetaclDentry:   {"vfs_set_acl", "struct dentry *", 0},
	VarArgSetaclName:     {"vfs_set_acl", "char *", 0},
	VarArgRmaclDentry:    {"vfs_remove_acl", "struct dentry *", 0},
	VarArgRmaclName:      {"vfs_remove_acl", "char *", 0},
	VarArgFileattrDentry: {"vfs_fileattr_set", "struct dentry *", 0},
	// struct fileattr became struct file_kattr in 6.17.
	VarArgFileattrFa:    {"vfs_fileattr_set", "struct fileattr *|struct file_kattr *", 0},
	VarArgIoctlFile:     {"security_file_ioctl", "struct file *", 0},
	VarArgIoctlCmd:      {"security_file_ioctl", "unsigned int", 0},
	VarArgIoctlArg:      {"security_file_ioctl", "long unsigned int", 0},
	VarArgMkdirDentry:   {"vfs_mkdir", "struct dentry *", 0},
	VarArgRmdirDentry:   {"security_inode_rmdir", "struct dentry *", 0},
	VarArgDeleteDentry:  {"d_delete", "struct dentry *", 0},
	VarArgSymlinkDentry: {"vfs_symlink", "struct dentry *", 0},
	VarArgSymlinkTarget: {"vfs_symlink", "char *", 0},
	VarArgMknodDentry:   {"vfs_mknod", "struct dentry *", 0},
	VarArgMknodDev:      {"vfs_mknod", "dev_t", 0},
	VarArgCreateDentry:  {"vfs_create", "struct dentry *", 0},
	VarArgFallocFile:    {"vfs_fallocate", "struct file *", 0},
	VarArgFallocMode:    {"vfs_fallocate", "int", 0},
	VarArgFallocLen:     {"vfs_fallocate", "loff_t", 1},
	VarArgMountDev:      {"path_mount", "char *", 0},
	VarArgMountPath:     {"path_mount", "struct path *", 0},
	VarArgMountType:     {"path_mount", "char *", 1},
	VarArgMountFlags:    {"path_mount", "long unsigned int", 0},
	VarArgMoveFrom:      {"security_move_mount", "struct path *", 0},
	VarArgMoveTo:        {"security_move_mount", "struct path *", 1},
	VarArgUmountPath:    {"path_umount", "struct path *", 0},
	VarArgUmountFlags:   {"path_umount", "int", 0},
}

// lsmHooks names, for each function whose entry the BPF-LSM objects hook at
// an LSM hook instead (VG_ON_SECURITY in bpf/kprobe.bpf.c), the BPF LSM's
// stub of that hook, bpf_lsm_<hook>: it has the hook's prototype, where the
// same arguments are found by the same rules (argVars). Only mmap_file
// differs in order: the hook takes the requested protection first, so
// lsmNth moves the protection and flags one unsigned long on.
var (
	lsmHooks = map[string]string{
		"security_mmap_file":   lsmStub + "mmap_file",
		"security_file_open":   lsmStub + "file_open",
		"notify_change":        lsmStub + "inode_setattr",
		"vfs_unlink":           lsmStub + "inode_unlink",
		"vfs_link":             lsmStub + "inode_link",
		"vfs_setxattr":         lsmStub + "inode_setxattr",
		"vfs_removexattr":      lsmStub + "inode_removexattr",
		"vfs_set_acl":          lsmStub + "inode_set_acl",
		"vfs_remove_acl":       lsmStub + "inode_remove_acl",
		"security_file_ioctl":  lsmStub + "file_ioctl",
		"vfs_mkdir":            lsmStub + "inode_mkdir",
		"vfs_symlink":          lsmStub + "inode_symlink",
		"vfs_mknod":            lsmStub + "inode_mknod",
		"security_inode_rmdir": lsmStub + "inode_rmdir",
		"path_mount":           lsmStub + "sb_mount",
		"security_move_mount":  lsmStub + "move_mount",
	}
	lsmNth = map[string]int{VarArgMmapProt: 1, VarArgMmapFlags: 2}
)

// argTable is where spec's argument variables are found: argVars, with
// lsmHooks's stubs in place of the functions for an object with BPF-LSM
// programs.
func argTable(spec *ebpf.CollectionSpec) map[string]argVar {
	lsm := false
	for _, p := range spec.Programs {
		if strings.HasPrefix(p.SectionName, "lsm/") {
			lsm = true
		}
	}
	if !lsm {
		return argVars
	}
	t := make(map[string]argVar, len(argVars))
	for n, a := range argVars {
		if stub, ok := lsmHooks[a.Func]; ok {
			a.Func = stub
			if nth, ok := lsmNth[n]; ok {
				a.Nth = nth
			}
		}
		t[n] = a
	}
	return t
}

// retPtrPrefix starts the name of every variable that says whether a
// hooked function returns a pointer (1) or an int (0).
const retPtrPrefix = "vg_retptr_"

// retPosPrefix starts the name of every variable that says where a
// trampoline (fexit) program finds its function's result: after the
// arguments, at the index that is the function's parameter count.
const retPosPrefix = "vg_retpos_"

// retPosVars names, for each such variable, its function.
var retPosVars = map[string]string{
	"vg_retpos_notify_change":   "notify_change",
	"vg_retpos_vfs_rename":      "vfs_rename",
	"vg_retpos_vfs_unlink":      "vfs_unlink",
	"vg_retpos_vfs_link":        "vfs_link",
	"vg_retpos_vfs_setxattr":    "vfs_setxattr",
	"vg_retpos_vfs_removexattr": "vfs_removexattr",
	"vg_retpos_vfs_set_acl":     "vfs_set_acl",
	"vg_retpos_vfs_remove_acl":  "vfs_remove_acl",
	"vg_retpos_fileattr_set":    "vfs_fileattr_set",
	"vg_retpos_sys_ioctl":       "__x64_sys_ioctl",
	"vg_retpos_vfs_mkdir":       "vfs_mkdir",
	"vg_retpos_vfs_symlink":     "vfs_symlink",
	"vg_retpos_vfs_mknod":       "vfs_mknod",
	"vg_retpos_vfs_create":      "vfs_create",
	"vg_retpos_vfs_rmdir":       "vfs_rmdir",
	"vg_retpos_path_mount":      "path_mount",
	"vg_retpos_move_mount":      "__x64_sys_move_mount",
	"vg_retpos_path_umount":     "path_umount",
}

// retPtrVars names, for each such variable, its function. vfs_mkdir
// returns the new dentry since 6.15.
var retPtrVars = map[string]string{
	VarRetptrMkdir: "vfs_mkdir",
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
		if !a.matches(p) {
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

// matches says whether a parameter's C type is the one a stands for (Type
// may list the spellings of several kernels, separated by "|").
func (a argVar) matches(typ string) bool {
	for _, t := range strings.Split(a.Type, "|") {
		if t == typ {
			return true
		}
	}
	return false
}

// setArgs sets every argument variable of spec from the kernel's
// prototypes, and every return-kind variable. An object variable that
// argVars or retPtrVars does not describe refuses the object: it would run
// unset. Variables of the functions in skip (hooks left out on this kernel,
// whose programs are gone) stay unset.
func setArgs(spec *ebpf.CollectionSpec, funcs kernel.Funcs, skip map[string]bool) error {
	names := make([]string, 0, len(spec.Variables))
	for n := range spec.Variables {
		if strings.HasPrefix(n, argPrefix) || strings.HasPrefix(n, retPtrPrefix) || strings.HasPrefix(n, retPosPrefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	table := argTable(spec)
	for _, n := range names {
		if strings.HasPrefix(n, retPosPrefix) {
			fname, ok := retPosVars[n]
			if !ok {
				return fmt.Errorf("object variable %s: pkg/loader/args.go does not say which function it is", n)
			}
			if skip[fname] {
				continue
			}
			fn, err := funcs.Func(fname)
			if err != nil {
				return fmt.Errorf("result position %s: %w", n, err)
			}
			if len(fn.Params) > maxArgRegs {
				return fmt.Errorf("result position %s: %s has %d parameters, beyond the %d an fexit program reads",
					n, fname, len(fn.Params), maxArgRegs)
			}
			if err := spec.Variables[n].Set(uint32(len(fn.Params))); err != nil {
				return fmt.Errorf("setting %s: %w", n, err)
			}
			continue
		}
		if strings.HasPrefix(n, retPtrPrefix) {
			fname, ok := retPtrVars[n]
			if !ok {
				return fmt.Errorf("object variable %s: pkg/loader/args.go does not say which function it is", n)
			}
			if skip[fname] {
				continue
			}
			fn, err := funcs.Func(fname)
			if err != nil {
				return fmt.Errorf("return kind %s: %w", n, err)
			}
			v := uint32(0)
			if strings.HasSuffix(fn.Ret, "*") {
				v = 1
			}
			if err := spec.Variables[n].Set(v); err != nil {
				return fmt.Errorf("setting %s: %w", n, err)
			}
			continue
		}
		a, ok := table[n]
		if !ok {
			return fmt.Errorf("object variable %s: pkg/loader/args.go does not say which argument it is", n)
		}
		if skip[a.Func] {
			continue
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

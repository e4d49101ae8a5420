// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The kprobe object: VFS functions hooked at entry, and at return where the
 * result decides what the map must hold. Built once per kernel major.minor
 * against that kernel's BTF (bpf/matrix), and written so that one object
 * serves every kernel whose hooked functions exist:
 *  - where each argument sits is read from the running kernel's prototypes
 *    by the loader and set before load (vg_arg_* below);
 *  - a struct member that moved between kernels is read through CO-RE
 *    flavours chosen with bpf_core_field_exists (struct renamedata).
 */
#include "common.bpf.h"

/*
 * Argument positions (0-based), set by the loader before load from the
 * kernel's BTF prototype of each hooked function: pkg/loader/args.go says
 * which parameter each variable stands for (the n-th of a C type, e.g. the
 * first `struct dentry *` of vfs_unlink). They differ between kernels: 5.12
 * put a `struct user_namespace *` in front of vfs_unlink's, notify_change's
 * and vfs_link's, 6.3 made it a `struct mnt_idmap *`. The loader refuses an
 * object whose variables it cannot all set, so VG_ARG_UNSET never runs; the
 * verifier sees each as a constant and keeps only the register it names.
 */
#define VG_ARG_UNSET 0xff
const volatile __u32 vg_arg_write_file = VG_ARG_UNSET;	/* vfs_write */
const volatile __u32 vg_arg_write_count = VG_ARG_UNSET;
const volatile __u32 vg_arg_writev_file = VG_ARG_UNSET; /* vfs_writev */
const volatile __u32 vg_arg_iterw_file = VG_ARG_UNSET;	/* vfs_iter_write */
const volatile __u32 vg_arg_splice_out = VG_ARG_UNSET;	/* iter_file_splice_write */
const volatile __u32 vg_arg_copy_out = VG_ARG_UNSET;	/* vfs_copy_file_range */
const volatile __u32 vg_arg_copy_len = VG_ARG_UNSET;
const volatile __u32 vg_arg_io_req = VG_ARG_UNSET;	/* io_write */
const volatile __u32 vg_arg_mmap_file = VG_ARG_UNSET;	/* security_mmap_file */
const volatile __u32 vg_arg_mmap_prot = VG_ARG_UNSET;
const volatile __u32 vg_arg_mmap_flags = VG_ARG_UNSET;
const volatile __u32 vg_arg_open_file = VG_ARG_UNSET;	/* security_file_open */
const volatile __u32 vg_arg_notify_dentry = VG_ARG_UNSET; /* notify_change */
const volatile __u32 vg_arg_notify_attr = VG_ARG_UNSET;
const volatile __u32 vg_arg_rename_rd = VG_ARG_UNSET;	/* vfs_rename */
const volatile __u32 vg_arg_unlink_dentry = VG_ARG_UNSET; /* vfs_unlink */
const volatile __u32 vg_arg_link_old = VG_ARG_UNSET;	/* vfs_link */
const volatile __u32 vg_arg_link_dir = VG_ARG_UNSET;
const volatile __u32 vg_arg_link_new = VG_ARG_UNSET;
const volatile __u32 vg_arg_setxattr_dentry = VG_ARG_UNSET; /* vfs_setxattr */
const volatile __u32 vg_arg_setxattr_name = VG_ARG_UNSET;
const volatile __u32 vg_arg_setxattr_flags = VG_ARG_UNSET;
const volatile __u32 vg_arg_rmxattr_dentry = VG_ARG_UNSET; /* vfs_removexattr */
const volatile __u32 vg_arg_rmxattr_name = VG_ARG_UNSET;
const volatile __u32 vg_arg_setacl_dentry = VG_ARG_UNSET; /* vfs_set_acl (6.2+) */
const volatile __u32 vg_arg_setacl_name = VG_ARG_UNSET;
const volatile __u32 vg_arg_rmacl_dentry = VG_ARG_UNSET; /* vfs_remove_acl (6.2+) */
const volatile __u32 vg_arg_rmacl_name = VG_ARG_UNSET;
const volatile __u32 vg_arg_fileattr_dentry = VG_ARG_UNSET; /* vfs_fileattr_set (5.13+) */
const volatile __u32 vg_arg_fileattr_fa = VG_ARG_UNSET;
const volatile __u32 vg_arg_ioctl_file = VG_ARG_UNSET; /* security_file_ioctl (before 5.13) */
const volatile __u32 vg_arg_ioctl_cmd = VG_ARG_UNSET;
const volatile __u32 vg_arg_ioctl_arg = VG_ARG_UNSET;
const volatile __u32 vg_arg_mkdir_dentry = VG_ARG_UNSET; /* vfs_mkdir */
const volatile __u32 vg_arg_rmdir_dentry = VG_ARG_UNSET; /* security_inode_rmdir */
const volatile __u32 vg_arg_delete_dentry = VG_ARG_UNSET; /* d_delete */
const volatile __u32 vg_arg_symlink_dentry = VG_ARG_UNSET; /* vfs_symlink */
const volatile __u32 vg_arg_symlink_target = VG_ARG_UNSET;
const volatile __u32 vg_arg_mknod_dentry = VG_ARG_UNSET; /* vfs_mknod */
const volatile __u32 vg_arg_mknod_dev = VG_ARG_UNSET;
const volatile __u32 vg_arg_create_dentry = VG_ARG_UNSET; /* vfs_create */
const volatile __u32 vg_arg_falloc_file = VG_ARG_UNSET; /* vfs_fallocate */
const volatile __u32 vg_arg_falloc_mode = VG_ARG_UNSET;
const volatile __u32 vg_arg_falloc_len = VG_ARG_UNSET;
const volatile __u32 vg_arg_mount_dev = VG_ARG_UNSET; /* path_mount */
const volatile __u32 vg_arg_mount_path = VG_ARG_UNSET;
const volatile __u32 vg_arg_mount_type = VG_ARG_UNSET;
const volatile __u32 vg_arg_mount_flags = VG_ARG_UNSET;
const volatile __u32 vg_arg_move_from = VG_ARG_UNSET; /* security_move_mount */
const volatile __u32 vg_arg_move_to = VG_ARG_UNSET;
const volatile __u32 vg_arg_umount_path = VG_ARG_UNSET; /* path_umount */
const volatile __u32 vg_arg_umount_flags = VG_ARG_UNSET;

/*
 * Whether a hooked function returns a pointer rather than an int, also read
 * from the kernel's prototype by the loader (pkg/loader/args.go): vfs_mkdir
 * returns the new dentry (or ERR_PTR) since 6.15.
 */
const volatile __u32 vg_retptr_mkdir = 0;

#ifndef VG_FENTRY
/*
 * One argument register of the kprobe's pt_regs, with its offset in the load
 * instruction itself. Kernels before 7.x accept only a constant-offset load
 * from the context: left to itself, clang turns vg_arg's switch into one
 * load from ctx plus a computed offset, which they refuse ("dereference of
 * modified ctx ptr").
 */
#define VG_REG(ctx, reg)                                                                   \
	({                                                                                 \
		__u64 __v;                                                                 \
		asm volatile("%0 = *(u64 *)(%1 + %2)"                                      \
			     : "=r"(__v)                                                   \
			     : "r"(ctx), "i"(__builtin_offsetof(struct pt_regs, reg)));    \
		__v;                                                                       \
	})

/* The argument at position pos: the register PT_REGS_PARM<pos+1> reads
 * (x86-64 passes six in registers). */
static __always_inline __u64 vg_arg(struct pt_regs *ctx, __u32 pos)
{
	switch (pos) {
	case 0:
		return VG_REG(ctx, __PT_PARM1_REG);
	case 1:
		return VG_REG(ctx, __PT_PARM2_REG);
	case 2:
		return VG_REG(ctx, __PT_PARM3_REG);
	case 3:
		return VG_REG(ctx, __PT_PARM4_REG);
	case 4:
		return VG_REG(ctx, __PT_PARM5_REG);
	case 5:
		return VG_REG(ctx, r9); /* x86-64's sixth argument register */
	}
	return 0;
}

#define VG_ARG(ctx, name) vg_arg(ctx, vg_arg_##name)
#endif

/*
 * struct renamedata's directories: inodes (old_dir, new_dir) from its start
 * in 5.12 (and Debian's 5.10) until 2025, then the parent dentries
 * (old_parent, new_parent). Whichever the running kernel has is read.
 */
struct renamedata___dirs {
	struct inode *old_dir;
	struct inode *new_dir;
} __attribute__((preserve_access_index));

struct renamedata___parents {
	struct dentry *old_parent;
	struct dentry *new_parent;
} __attribute__((preserve_access_index));

static __always_inline struct inode *vg_rename_dir(struct renamedata *rd, bool new)
{
	if (bpf_core_field_exists(struct renamedata___parents, old_parent)) {
		struct renamedata___parents *r = (void *)rd;
		struct dentry *p = new ? BPF_CORE_READ(r, new_parent) : BPF_CORE_READ(r, old_parent);
		return p ? BPF_CORE_READ(p, d_inode) : NULL;
	}
	struct renamedata___dirs *r = (void *)rd;
	return new ? BPF_CORE_READ(r, new_dir) : BPF_CORE_READ(r, old_dir);
}

/*
 * Each hook's logic is written once, as a static __always_inline body that
 * takes the hooked function's arguments as values (and, at return, its
 * result). A program is a thin wrapper that reads the arguments where the
 * loader said they sit and calls the body:
 *   VG_ON_ENTRY(func, name, body, args...)  at func's entry
 *   VG_ON_RETURN(func, name, type, body, extra...)  at its return, the
 *     result converted to the C type the function returns
 * This file builds two families (scripts/build-elf.sh): kprobe/kretprobe
 * programs kp_<name>/kr_<name>, and with VG_FENTRY defined, BPF trampoline
 * programs fentry/fexit fe_<name>/fx_<name>. Both keep the pending map
 * between entry and return: the entry half must run before the function
 * acts (a rename's source joins the map before the rename can complete),
 * so an fexit alone would come too late.
 */
#ifndef VG_FENTRY
#define VG_ON_ENTRY(func, name, body, ...)                                                         \
	SEC("kprobe/" #func)                                                                       \
	int kp_##name(struct pt_regs *ctx)                                                         \
	{                                                                                          \
		return body(__VA_ARGS__);                                                          \
	}

#define VG_ON_RETURN(func, name, type, body, ...)                                                  \
	SEC("kretprobe/" #func)                                                                    \
	int kr_##name(struct pt_regs *ctx)                                                         \
	{                                                                                          \
		return body((type)PT_REGS_RC(ctx), __VA_ARGS__);                                   \
	}
#else
/*
 * A trampoline program's context is the function's arguments as an array
 * of u64, and at fexit its result after them: at index n for a function of
 * n parameters. n differs between kernels as the positions do, so the
 * loader sets vg_retpos_<name> from the prototype too (pkg/loader/args.go
 * says which function each stands for). As with vg_arg, each
 * position is a load at a constant offset, which is all the verifier
 * accepts from this context.
 */
#define VG_SLOT(ctx, i)                                                                            \
	case i:                                                                                    \
		asm volatile("%0 = *(u64 *)(%1 + %2)" : "=r"(__v) : "r"(ctx), "i"((i) * 8));       \
		break

static __always_inline __u64 vg_slot(void *ctx, __u32 pos)
{
	__u64 __v = 0;
	switch (pos) {
		VG_SLOT(ctx, 0);
		VG_SLOT(ctx, 1);
		VG_SLOT(ctx, 2);
		VG_SLOT(ctx, 3);
		VG_SLOT(ctx, 4);
		VG_SLOT(ctx, 5);
		VG_SLOT(ctx, 6);
	}
	return __v;
}

#define VG_ARG(ctx, name) vg_slot(ctx, vg_arg_##name)

/* The verifier takes only 0 from an fentry or fexit program: the body's
 * value is dropped (the kernel ignores a kprobe's too). */
#define VG_ON_ENTRY(func, name, body, ...)                                                         \
	SEC("fentry/" #func)                                                                       \
	int fe_##name(void *ctx)                                                                   \
	{                                                                                          \
		body(__VA_ARGS__);                                                                 \
		return 0;                                                                          \
	}

/* The result as a plain number: where the function returns a pointer
 * (vfs_mkdir since 6.15), the load from the context gives the verifier a
 * typed pointer, and 7.x's refuses the arithmetic vg_finish does on an
 * ERR_PTR. Copied through the stack by a helper, it is a scalar (and the
 * context is only read at constant offsets, as everywhere). */
static __always_inline long vg_result(void *ctx, __u32 pos)
{
	__u64 slot = vg_slot(ctx, pos);
	long v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &slot);
	return v;
}

#define VG_ON_RETURN(func, name, type, body, ...)                                                  \
	const volatile __u32 vg_retpos_##name = VG_ARG_UNSET;                                      \
	SEC("fexit/" #func)                                                                        \
	int fx_##name(void *ctx)                                                                   \
	{                                                                                          \
		body((type)vg_result(ctx, vg_retpos_##name), __VA_ARGS__);                         \
		return 0;                                                                          \
	}
#endif

/*
 * VG_ON_SECURITY(hook, func, name, body, args...) is VG_ON_ENTRY(func, ...)
 * for an operation that passes an LSM hook before it acts, with the
 * arguments the body reads. With VG_LSM defined (the BPF-LSM family,
 * built on the fentry one) it is a BPF-LSM program ls_<name> on that hook
 * instead: the arguments are read from the same kind of context, at the
 * positions the loader sets from the prototype of bpf_lsm_<hook>
 * (pkg/loader/args.go, lsmHooks). It returns 0, which allows the
 * operation: vigil watches, it never decides. The result is still read at
 * the function's return (fexit): LSM hooks have no "after".
 */
#ifdef VG_LSM
#define VG_ON_SECURITY(hook, func, name, body, ...)                                                \
	SEC("lsm/" #hook)                                                                          \
	int ls_##name(void *ctx)                                                                   \
	{                                                                                          \
		body(__VA_ARGS__);                                                                 \
		return 0;                                                                          \
	}
#else
#define VG_ON_SECURITY(hook, func, name, body, ...) VG_ON_ENTRY(func, name, body, __VA_ARGS__)
#endif

/* Content changes through an open file. */

VG_ON_ENTRY(vfs_write, vfs_write, vg_file_op, (struct file *)VG_ARG(ctx, write_file), VG_OP_WRITE,
	    VG_H_VFS_WRITE, VG_ARG(ctx, write_count))

VG_ON_ENTRY(vfs_writev, vfs_writev, vg_file_op, (struct file *)VG_ARG(ctx, writev_file), VG_OP_WRITE,
	    VG_H_VFS_WRITEV, 0)

/* overlayfs, nfsd and loop writes, and (before 6.7) splice and sendfile. */
VG_ON_ENTRY(vfs_iter_write, vfs_iter_wr, vg_file_op, (struct file *)VG_ARG(ctx, iterw_file),
	    VG_OP_WRITE, VG_H_VFS_ITER_WRITE, 0)

/* splice and sendfile into a file: since 6.7 iter_file_splice_write calls
 * ->write_iter directly, not vfs_iter_write (which older kernels reach from
 * here too, so there a splice may give two records). */
VG_ON_ENTRY(iter_file_splice_write, splice_write, vg_file_op, (struct file *)VG_ARG(ctx, splice_out),
	    VG_OP_WRITE, VG_H_SPLICE_WRITE, 0)

VG_ON_ENTRY(vfs_copy_file_range, copy_range, vg_file_op, (struct file *)VG_ARG(ctx, copy_out),
	    VG_OP_WRITE, VG_H_COPY_FILE_RANGE, VG_ARG(ctx, copy_len))

static __always_inline int vg_on_io_write(struct io_kiocb *req)
{
	return vg_file_op(BPF_CORE_READ(req, file), VG_OP_WRITE, VG_H_IO_WRITE, 0);
}
VG_ON_ENTRY(io_write, io_write, vg_on_io_write, (struct io_kiocb *)VG_ARG(ctx, io_req))

/* A shared writable mapping: every later store is a write nothing sees. */
static __always_inline int vg_on_mmap_file(struct file *file, unsigned long prot, unsigned long flags)
{
	if (!(prot & PROT_WRITE) || !(flags & MAP_SHARED)) {
		vg_count_hit(VG_H_MMAP);
		return 0;
	}
	return vg_file_op(file, VG_OP_MMAP, VG_H_MMAP, prot);
}
VG_ON_SECURITY(mmap_file, security_mmap_file, mmap_file, vg_on_mmap_file, (struct file *)VG_ARG(ctx, mmap_file),
	    VG_ARG(ctx, mmap_prot), VG_ARG(ctx, mmap_flags))

/* Creation: a file opened with O_CREAT that did not exist before. */
static __always_inline int vg_on_file_open(struct file *file)
{
	vg_count_hit(VG_H_FILE_OPEN);
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_CREATED))
		return 0;
	return vg_created(file, VG_H_FILE_OPEN);
}
VG_ON_SECURITY(file_open, security_file_open, file_open, vg_on_file_open, (struct file *)VG_ARG(ctx, open_file))

/* truncate, ftruncate, O_TRUNC, chmod, chown and utimes all end here. */
static __always_inline int vg_on_notify_change(struct dentry *d, struct iattr *attr)
{
	vg_count_hit(VG_H_NOTIFY_CHANGE);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct vg_hit hit = {};
	if (!vg_match_dentry(d, &hit, true, s))
		return 0;
	__u32 valid = BPF_CORE_READ(attr, ia_valid) & VG_ATTR_REPORTED;
	__u32 op = (valid & ATTR_SIZE) ? VG_OP_TRUNCATE : VG_OP_SETATTR;
	/* Reported at return: with the result, and after the change is made,
	 * so what user space reads of the file is the new state. */
	struct vg_pending *p = vg_pend(s, op, VG_H_NOTIFY_CHANGE, &hit);
	p->dentry = (__u64)d;
	p->arg1 = valid;
	if (valid & ATTR_SIZE)
		p->arg2 = BPF_CORE_READ(attr, ia_size);
	if (valid & ATTR_MODE)
		p->mode = BPF_CORE_READ(attr, ia_mode);
	if (valid & ATTR_UID)
		p->uid = BPF_CORE_READ(attr, ia_uid.val);
	if (valid & ATTR_GID)
		p->gid = BPF_CORE_READ(attr, ia_gid.val);
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(inode_setattr, notify_change, notify_change, vg_on_notify_change,
	    (struct dentry *)VG_ARG(ctx, notify_dentry), (struct iattr *)VG_ARG(ctx, notify_attr))
VG_ON_RETURN(notify_change, notify_change, int, vg_finish, VG_H_NOTIFY_CHANGE)

/*
 * Rename. At entry, when the target is watched, the source inode joins the
 * map under the target's entry before the rename can complete, so a write
 * made right after rename() returns is never missed. At return, the
 * replaced inode leaves the map (or, on failure, the source does again).
 */
static __always_inline int vg_on_rename(struct renamedata *rd)
{
	vg_count_hit(VG_H_VFS_RENAME);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct dentry *od = BPF_CORE_READ(rd, old_dentry);
	struct dentry *nd = BPF_CORE_READ(rd, new_dentry);
	__u32 flags = BPF_CORE_READ(rd, flags);
	struct vg_hit th = {}, sh = {};
	bool tmatch = vg_match_dentry(nd, &th, true, s);
	bool smatch = vg_match_dentry(od, &sh, true, s);
	if (!tmatch && !smatch)
		return 0;
	struct vg_pending *p = vg_pend(s, VG_OP_RENAME, VG_H_VFS_RENAME, tmatch ? &th : &sh);
	struct inode *src = BPF_CORE_READ(od, d_inode);
	if (src)
		vg_inode_key(src, &p->file2);
	p->file = th.file; /* the target's inode before, if any */
	struct inode *odir = vg_rename_dir(rd, false);
	struct inode *ndir = vg_rename_dir(rd, true);
	if (odir)
		vg_inode_key(odir, &p->dir2);
	p->arg1 = flags;
	p->dentry = (__u64)od; /* after the rename it carries the target's name */
	if (flags & RENAME_EXCHANGE)
		p->flags |= VG_F_EXCHANGE;
	if (tmatch) {
		if (!(flags & RENAME_EXCHANGE)) {
			if (vg_reseed(&p->file2, th.w)) {
				p->reseeded = 1;
				p->flags |= VG_F_RESEEDED;
			}
			if (th.match == VG_M_INODE || th.match == VG_M_NAME)
				p->drop_file = VG_DROP_ALWAYS;
			p->inode = (__u64)BPF_CORE_READ(nd, d_inode);
		}
	} else {
		/* A watched file renamed away: report where it went. */
		p->depth = 1;
		if (ndir)
			vg_inode_key(ndir, &p->dir);
	}
	bpf_probe_read_kernel_str(p->name2, sizeof(p->name2), BPF_CORE_READ(od, d_name.name));
	vg_pend_store(p);
	return 0;
}
VG_ON_ENTRY(vfs_rename, vfs_rename, vg_on_rename, (struct renamedata *)VG_ARG(ctx, rename_rd))
VG_ON_RETURN(vfs_rename, vfs_rename, int, vg_finish, VG_H_VFS_RENAME) /* the VFS returns int */

static __always_inline int vg_on_unlink(struct dentry *d)
{
	vg_count_hit(VG_H_VFS_UNLINK);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct vg_hit hit = {};
	if (!vg_match_dentry(d, &hit, true, s))
		return 0;
	struct vg_pending *p = vg_pend(s, VG_OP_UNLINK, VG_H_VFS_UNLINK, &hit);
	p->dentry = (__u64)d;
	p->inode = (__u64)BPF_CORE_READ(d, d_inode);
	p->drop_file = VG_DROP_GONE;
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(inode_unlink, vfs_unlink, vfs_unlink, vg_on_unlink, (struct dentry *)VG_ARG(ctx, unlink_dentry))
VG_ON_RETURN(vfs_unlink, vfs_unlink, int, vg_finish, VG_H_VFS_UNLINK)

/* A new name for an inode: a watched file's, or a new name in a watched place. */
static __always_inline int vg_on_link(struct dentry *od, struct inode *ndir, struct dentry *nd)
{
	vg_count_hit(VG_H_VFS_LINK);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct vg_hit th = {}, sh = {};
	bool tmatch = vg_match_dentry(nd, &th, true, s);
	bool smatch = !tmatch && vg_match_dentry(od, &sh, false, s);
	if (!tmatch && !smatch)
		return 0;
	struct vg_pending *p = vg_pend(s, VG_OP_LINK, VG_H_VFS_LINK, tmatch ? &th : &sh);
	struct inode *src = BPF_CORE_READ(od, d_inode);
	if (src)
		vg_inode_key(src, &p->file2);
	if (!tmatch) {
		/* A new name for a watched file: report it under its directory. */
		if (ndir)
			vg_inode_key(ndir, &p->dir);
		p->depth = 1;
	}
	p->dentry = (__u64)nd;
	if (tmatch && vg_reseed(&p->file2, th.w)) {
		p->reseeded = 1;
		p->flags |= VG_F_RESEEDED;
	}
	bpf_probe_read_kernel_str(p->name2, sizeof(p->name2), BPF_CORE_READ(od, d_name.name));
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(inode_link, vfs_link, vfs_link, vg_on_link, (struct dentry *)VG_ARG(ctx, link_old),
	    (struct inode *)VG_ARG(ctx, link_dir), (struct dentry *)VG_ARG(ctx, link_new))
VG_ON_RETURN(vfs_link, vfs_link, int, vg_finish, VG_H_VFS_LINK)

/*
 * Extended attributes: file capabilities (security.capability), SELinux and
 * SMACK labels, user.* and trusted.* values, and (before 6.2) POSIX ACLs.
 * The record names the attribute; user space reads and compares its value.
 * POSIX ACLs since 6.2: setxattr(2) of system.posix_acl_* goes to
 * vfs_set_acl, not vfs_setxattr; reported as the same xattr operations,
 * under the ACL's name (left out by the loader where the kernel lacks them).
 * with_flags says whether flags (XATTR_CREATE, XATTR_REPLACE) are known.
 */
static __always_inline int vg_on_xattr(struct dentry *d, const char *name, __u32 flags, bool with_flags,
				       __u32 op, __u32 hook)
{
	struct vg_pending *p = vg_pend_dentry(d, op, hook);
	if (!p)
		return 0;
	p->flags |= VG_F_STR2;
	if (with_flags)
		p->arg1 = flags;
	bpf_probe_read_kernel_str(p->name2, sizeof(p->name2), name);
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(inode_setxattr, vfs_setxattr, vfs_setxattr, vg_on_xattr, (struct dentry *)VG_ARG(ctx, setxattr_dentry),
	    (const char *)VG_ARG(ctx, setxattr_name), (__u32)VG_ARG(ctx, setxattr_flags), true,
	    VG_OP_SETXATTR, VG_H_VFS_SETXATTR)
VG_ON_RETURN(vfs_setxattr, vfs_setxattr, int, vg_finish, VG_H_VFS_SETXATTR)

VG_ON_SECURITY(inode_removexattr, vfs_removexattr, vfs_removexattr, vg_on_xattr,
	    (struct dentry *)VG_ARG(ctx, rmxattr_dentry), (const char *)VG_ARG(ctx, rmxattr_name), 0,
	    false, VG_OP_REMOVEXATTR, VG_H_VFS_REMOVEXATTR)
VG_ON_RETURN(vfs_removexattr, vfs_removexattr, int, vg_finish, VG_H_VFS_REMOVEXATTR)

VG_ON_SECURITY(inode_set_acl, vfs_set_acl, vfs_set_acl, vg_on_xattr, (struct dentry *)VG_ARG(ctx, setacl_dentry),
	    (const char *)VG_ARG(ctx, setacl_name), 0, false, VG_OP_SETXATTR, VG_H_VFS_SET_ACL)
VG_ON_RETURN(vfs_set_acl, vfs_set_acl, int, vg_finish, VG_H_VFS_SET_ACL)

VG_ON_SECURITY(inode_remove_acl, vfs_remove_acl, vfs_remove_acl, vg_on_xattr, (struct dentry *)VG_ARG(ctx, rmacl_dentry),
	    (const char *)VG_ARG(ctx, rmacl_name), 0, false, VG_OP_REMOVEXATTR, VG_H_VFS_REMOVE_ACL)
VG_ON_RETURN(vfs_remove_acl, vfs_remove_acl, int, vg_finish, VG_H_VFS_REMOVE_ACL)

/*
 * Inode flags (chattr: immutable, append-only, ...). struct fileattr became
 * struct file_kattr in 6.17 with the same members; whichever the kernel has
 * is read. Both ioctls fill both members, so both are reported.
 */
struct fileattr___vg {
	__u32 flags;
	__u32 fsx_xflags;
} __attribute__((preserve_access_index));

struct file_kattr___vg {
	__u32 flags;
	__u32 fsx_xflags;
} __attribute__((preserve_access_index));

static __always_inline int vg_on_fileattr_set(struct dentry *d, void *fa)
{
	struct vg_pending *p = vg_pend_dentry(d, VG_OP_SETFLAGS, VG_H_FILEATTR_SET);
	if (!p)
		return 0;
	if (bpf_core_type_exists(struct file_kattr___vg)) {
		struct file_kattr___vg *k = fa;
		p->arg1 = BPF_CORE_READ(k, flags);
		p->arg2 = BPF_CORE_READ(k, fsx_xflags);
	} else {
		struct fileattr___vg *k = fa;
		p->arg1 = BPF_CORE_READ(k, flags);
		p->arg2 = BPF_CORE_READ(k, fsx_xflags);
	}
	p->flags |= VG_F_FLAGS | VG_F_XFLAGS;
	vg_pend_store(p);
	return 0;
}
VG_ON_ENTRY(vfs_fileattr_set, fileattr_set, vg_on_fileattr_set,
	    (struct dentry *)VG_ARG(ctx, fileattr_dentry), (void *)VG_ARG(ctx, fileattr_fa))
VG_ON_RETURN(vfs_fileattr_set, fileattr_set, int, vg_finish, VG_H_FILEATTR_SET)

/* Before 5.13 each file system sets inode flags in its own ioctl. The
 * ioctl's security hook sees every ioctl with its file, command and
 * argument (vfs_ioctl is inlined into the syscall there), the syscall's
 * return its result: only FS_IOC_SETFLAGS and FS_IOC_FSSETXATTR are looked
 * at. The loader hooks these only where vfs_fileattr_set does not exist. */
#define FS_IOC_SETFLAGS 0x40086602
#define FS_IOC_FSSETXATTR 0x401c5820

static __always_inline int vg_on_file_ioctl(struct file *file, __u32 cmd, unsigned long arg)
{
	if (cmd != FS_IOC_SETFLAGS && cmd != FS_IOC_FSSETXATTR)
		return 0;
	struct vg_pending *p = vg_pend_dentry(BPF_CORE_READ(file, f_path.dentry), VG_OP_SETFLAGS,
					      VG_H_FILEATTR_SET);
	if (!p)
		return 0;
	__u32 v = 0;
	/* int flags, or struct fsxattr whose first member is fsx_xflags */
	if (bpf_probe_read_user(&v, sizeof(v), (void *)arg) == 0) {
		if (cmd == FS_IOC_SETFLAGS) {
			p->arg1 = v;
			p->flags |= VG_F_FLAGS;
		} else {
			p->arg2 = v;
			p->flags |= VG_F_XFLAGS;
		}
	}
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(file_ioctl, security_file_ioctl, file_ioctl, vg_on_file_ioctl, (struct file *)VG_ARG(ctx, ioctl_file),
	    (__u32)VG_ARG(ctx, ioctl_cmd), VG_ARG(ctx, ioctl_arg))
VG_ON_RETURN(__x64_sys_ioctl, sys_ioctl, long, vg_finish, VG_H_FILEATTR_SET)

/*
 * Names created in a watched place other than by open: directories,
 * symbolic links (with their target), FIFOs, sockets, device nodes (with
 * their number) and, from vfs_create, regular files. The new inode and its
 * mode are read at return. mknod(2) of a regular file comes to vfs_create,
 * not to vfs_mknod (an open that creates calls the file system's ->create
 * directly, and is reported by security_file_open); so do nfsd's and
 * overlayfs's creations.
 */
static __always_inline int vg_on_create(struct dentry *d, __u32 op, __u32 hook, bool ret_ptr,
					const char *target, bool with_dev, __u32 dev)
{
	struct vg_pending *p = vg_pend_dentry(d, op, hook);
	if (!p)
		return 0;
	p->fill_file = 1;
	if (ret_ptr)
		p->ret_ptr = 1;
	if (target) {
		p->flags |= VG_F_STR2;
		bpf_probe_read_kernel_str(p->name2, sizeof(p->name2), target);
	}
	if (with_dev)
		p->arg1 = dev;
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(inode_mkdir, vfs_mkdir, vfs_mkdir, vg_on_create, (struct dentry *)VG_ARG(ctx, mkdir_dentry), VG_OP_MKDIR,
	    VG_H_VFS_MKDIR, vg_retptr_mkdir != 0, NULL, false, 0)
VG_ON_RETURN(vfs_mkdir, vfs_mkdir, long, vg_finish, VG_H_VFS_MKDIR)

VG_ON_SECURITY(inode_symlink, vfs_symlink, vfs_symlink, vg_on_create, (struct dentry *)VG_ARG(ctx, symlink_dentry),
	    VG_OP_SYMLINK, VG_H_VFS_SYMLINK, false, (const char *)VG_ARG(ctx, symlink_target), false, 0)
VG_ON_RETURN(vfs_symlink, vfs_symlink, int, vg_finish, VG_H_VFS_SYMLINK)

VG_ON_SECURITY(inode_mknod, vfs_mknod, vfs_mknod, vg_on_create, (struct dentry *)VG_ARG(ctx, mknod_dentry), VG_OP_MKNOD,
	    VG_H_VFS_MKNOD, false, NULL, true, (__u32)VG_ARG(ctx, mknod_dev))
VG_ON_RETURN(vfs_mknod, vfs_mknod, int, vg_finish, VG_H_VFS_MKNOD)

VG_ON_ENTRY(vfs_create, vfs_create, vg_on_create, (struct dentry *)VG_ARG(ctx, create_dentry),
	    VG_OP_MKNOD, VG_H_VFS_CREATE, false, NULL, false, 0)
VG_ON_RETURN(vfs_create, vfs_create, int, vg_finish, VG_H_VFS_CREATE)

/* rmdir: matched at its security hook, which every kernel calls from
 * vfs_rmdir (5.10 inlines vfs_rmdir into do_rmdir, so a probe on it never
 * runs there), and reported when the directory's dentry is deleted, which
 * happens only on success. vfs_rmdir's return, where it is seen, ends a
 * failed one. */
static __always_inline int vg_on_rmdir(struct dentry *d)
{
	struct vg_pending *p = vg_pend_dentry(d, VG_OP_RMDIR, VG_H_VFS_RMDIR);
	if (!p)
		return 0;
	p->inode = (__u64)BPF_CORE_READ(d, d_inode);
	p->drop_file = VG_DROP_GONE;
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(inode_rmdir, security_inode_rmdir, vfs_rmdir, vg_on_rmdir, (struct dentry *)VG_ARG(ctx, rmdir_dentry))

static __always_inline int vg_on_d_delete(struct dentry *d)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct vg_pending *p = bpf_map_lookup_elem(&pending, &id);
	if (!p || p->op != VG_OP_RMDIR || p->dentry != (__u64)d)
		return 0;
	return vg_finish(0, VG_H_VFS_RMDIR);
}
VG_ON_ENTRY(d_delete, d_delete, vg_on_d_delete, (struct dentry *)VG_ARG(ctx, delete_dentry))
VG_ON_RETURN(vfs_rmdir, vfs_rmdir, int, vg_finish, VG_H_VFS_RMDIR)

/* fallocate: punching a hole, zeroing, collapsing or inserting a range
 * changes content without a write. */
VG_ON_ENTRY(vfs_fallocate, vfs_fallocate, vg_file_op_attr, (struct file *)VG_ARG(ctx, falloc_file),
	    VG_OP_WRITE, VG_H_VFS_FALLOCATE, VG_ARG(ctx, falloc_len), (__u32)VG_ARG(ctx, falloc_mode), 0, 0,
	    0)

/*
 * Mounts: a mount over a watched file, or over a directory at or above
 * watched paths, changes what every reader of those paths sees. Every
 * mount change is reported with its mountpoint's absolute path; user space
 * knows which watched paths lie at or below it.
 */
static __always_inline int vg_on_path_mount(const char *dev, struct path *path, const char *type,
					    unsigned long flags)
{
	struct vg_pending *p = vg_pend_mount(VG_OP_MOUNT, VG_H_PATH_MOUNT);
	if (!p)
		return 0;
	p->dentry = (__u64)BPF_CORE_READ(path, dentry);
	p->mnt = (__u64)BPF_CORE_READ(path, mnt);
	p->arg1 = flags;
	if (dev)
		bpf_probe_read_kernel_str(p->name2, sizeof(p->name2), dev);
	if (type)
		bpf_probe_read_kernel_str(p->str3, sizeof(p->str3), type);
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(sb_mount, path_mount, path_mount, vg_on_path_mount, (const char *)VG_ARG(ctx, mount_dev),
	    (struct path *)VG_ARG(ctx, mount_path), (const char *)VG_ARG(ctx, mount_type),
	    VG_ARG(ctx, mount_flags))
VG_ON_RETURN(path_mount, path_mount, int, vg_finish_any, true, VG_H_PATH_MOUNT)

/* move_mount(2), how the new mount API (and util-linux 2.39+'s mount)
 * attaches a mount: the security hook has both paths, the syscall's return
 * the result. The MOVE_MOUNT_* flags are not seen here (arg1 is 0). */
static __always_inline int vg_on_move_mount(struct path *from, struct path *to)
{
	struct vg_pending *p = vg_pend_mount(VG_OP_MOUNT, VG_H_MOVE_MOUNT);
	if (!p)
		return 0;
	p->flags |= VG_F_MOVE_MOUNT;
	p->dentry = (__u64)BPF_CORE_READ(to, dentry);
	p->mnt = (__u64)BPF_CORE_READ(to, mnt);
	vg_mount_source(p, BPF_CORE_READ(from, mnt));
	vg_pend_store(p);
	return 0;
}
VG_ON_SECURITY(move_mount, security_move_mount, move_mount, vg_on_move_mount, (struct path *)VG_ARG(ctx, move_from),
	    (struct path *)VG_ARG(ctx, move_to))
VG_ON_RETURN(__x64_sys_move_mount, move_mount, long, vg_finish_any, true, VG_H_MOVE_MOUNT)

/* An unmount uncovers its mountpoint: reported with the mountpoint's path
 * (read at entry, in the parent mount) and what was mounted there. */
static __always_inline int vg_on_path_umount(struct path *path, int flags)
{
	struct vg_pending *p = vg_pend_mount(VG_OP_UMOUNT, VG_H_PATH_UMOUNT);
	if (!p)
		return 0;
	struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
	struct mount *m = container_of(vfsmnt, struct mount, mnt);
	struct mount *parent = BPF_CORE_READ(m, mnt_parent);
	p->dentry = (__u64)BPF_CORE_READ(m, mnt_mountpoint);
	p->mnt = (__u64)&parent->mnt;
	p->arg1 = (__u32)flags;
	vg_mount_source(p, vfsmnt);
	vg_pend_store(p);
	return 0;
}
VG_ON_ENTRY(path_umount, path_umount, vg_on_path_umount, (struct path *)VG_ARG(ctx, umount_path),
	    (int)VG_ARG(ctx, umount_flags))
VG_ON_RETURN(path_umount, path_umount, int, vg_finish_any, true, VG_H_PATH_UMOUNT)

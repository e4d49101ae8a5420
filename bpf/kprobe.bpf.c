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

/* The argument at position pos: the register PT_REGS_PARM<pos+1> reads. */
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
	}
	return 0;
}

#define VG_ARG(ctx, name) vg_arg(ctx, vg_arg_##name)

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

/* Content changes through an open file. */

SEC("kprobe/vfs_write")
int kp_vfs_write(struct pt_regs *ctx)
{
	return vg_file_op((struct file *)VG_ARG(ctx, write_file), VG_OP_WRITE, VG_H_VFS_WRITE,
			  VG_ARG(ctx, write_count));
}

SEC("kprobe/vfs_writev")
int kp_vfs_writev(struct pt_regs *ctx)
{
	return vg_file_op((struct file *)VG_ARG(ctx, writev_file), VG_OP_WRITE, VG_H_VFS_WRITEV, 0);
}

/* overlayfs, nfsd and loop writes, and (before 6.7) splice and sendfile. */
SEC("kprobe/vfs_iter_write")
int kp_vfs_iter_wr(struct pt_regs *ctx)
{
	return vg_file_op((struct file *)VG_ARG(ctx, iterw_file), VG_OP_WRITE, VG_H_VFS_ITER_WRITE, 0);
}

/* splice and sendfile into a file: since 6.7 iter_file_splice_write calls
 * ->write_iter directly, not vfs_iter_write (which older kernels reach from
 * here too, so there a splice may give two records). */
SEC("kprobe/iter_file_splice_write")
int kp_splice_write(struct pt_regs *ctx)
{
	return vg_file_op((struct file *)VG_ARG(ctx, splice_out), VG_OP_WRITE, VG_H_SPLICE_WRITE, 0);
}

SEC("kprobe/vfs_copy_file_range")
int kp_copy_range(struct pt_regs *ctx)
{
	return vg_file_op((struct file *)VG_ARG(ctx, copy_out), VG_OP_WRITE, VG_H_COPY_FILE_RANGE,
			  VG_ARG(ctx, copy_len));
}

SEC("kprobe/io_write")
int kp_io_write(struct pt_regs *ctx)
{
	struct io_kiocb *req = (struct io_kiocb *)VG_ARG(ctx, io_req);
	return vg_file_op(BPF_CORE_READ(req, file), VG_OP_WRITE, VG_H_IO_WRITE, 0);
}

/* A shared writable mapping: every later store is a write nothing sees. */
SEC("kprobe/security_mmap_file")
int kp_mmap_file(struct pt_regs *ctx)
{
	struct file *file = (struct file *)VG_ARG(ctx, mmap_file);
	unsigned long prot = VG_ARG(ctx, mmap_prot);
	unsigned long flags = VG_ARG(ctx, mmap_flags);
	if (!(prot & PROT_WRITE) || !(flags & MAP_SHARED)) {
		vg_count_hit(VG_H_MMAP);
		return 0;
	}
	return vg_file_op(file, VG_OP_MMAP, VG_H_MMAP, prot);
}

/* Creation: a file opened with O_CREAT that did not exist before. */
SEC("kprobe/security_file_open")
int kp_file_open(struct pt_regs *ctx)
{
	struct file *file = (struct file *)VG_ARG(ctx, open_file);
	vg_count_hit(VG_H_FILE_OPEN);
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_CREATED))
		return 0;
	return vg_created(file, VG_H_FILE_OPEN);
}

/* truncate, ftruncate, O_TRUNC, chmod, chown and utimes all end here. */
SEC("kprobe/notify_change")
int kp_notify_change(struct pt_regs *ctx)
{
	vg_count_hit(VG_H_NOTIFY_CHANGE);
	struct dentry *d = (struct dentry *)VG_ARG(ctx, notify_dentry);
	struct iattr *attr = (struct iattr *)VG_ARG(ctx, notify_attr);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct vg_hit hit = {};
	if (!vg_match_dentry(d, &hit, true, s))
		return 0;
	__u32 valid = BPF_CORE_READ(attr, ia_valid);
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

SEC("kretprobe/notify_change")
int BPF_KRETPROBE(kr_notify_change, int ret)
{
	return vg_finish(ret);
}

/*
 * Rename. At entry, when the target is watched, the source inode joins the
 * map under the target's entry before the rename can complete, so a write
 * made right after rename() returns is never missed. At return, the
 * replaced inode leaves the map (or, on failure, the source does again).
 */
SEC("kprobe/vfs_rename")
int kp_vfs_rename(struct pt_regs *ctx)
{
	struct renamedata *rd = (struct renamedata *)VG_ARG(ctx, rename_rd);
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

SEC("kretprobe/vfs_rename")
int BPF_KRETPROBE(kr_vfs_rename, int ret) /* the VFS returns int */
{
	return vg_finish(ret);
}

SEC("kprobe/vfs_unlink")
int kp_vfs_unlink(struct pt_regs *ctx)
{
	vg_count_hit(VG_H_VFS_UNLINK);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct dentry *d = (struct dentry *)VG_ARG(ctx, unlink_dentry);
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

SEC("kretprobe/vfs_unlink")
int BPF_KRETPROBE(kr_vfs_unlink, int ret) /* the VFS returns int */
{
	return vg_finish(ret);
}

/* A new name for an inode: a watched file's, or a new name in a watched place. */
SEC("kprobe/vfs_link")
int kp_vfs_link(struct pt_regs *ctx)
{
	vg_count_hit(VG_H_VFS_LINK);
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct dentry *od = (struct dentry *)VG_ARG(ctx, link_old);
	struct dentry *nd = (struct dentry *)VG_ARG(ctx, link_new);
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
		struct inode *ndir = (struct inode *)VG_ARG(ctx, link_dir);
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

SEC("kretprobe/vfs_link")
int BPF_KRETPROBE(kr_vfs_link, int ret) /* the VFS returns int */
{
	return vg_finish(ret);
}

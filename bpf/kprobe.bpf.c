// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The kprobe object: VFS functions hooked at entry, and at return where the
 * result decides what the map must hold. Built once per kernel major.minor
 * against that kernel's BTF; per-kernel facts arrive as -D flags from
 * bpf/matrix (VG_IDMAP_NONE, VG_IDMAP_USERNS, VG_IDMAP_IDMAP, ...).
 */
#include "common.bpf.h"

/* Where the dentries sit in the VFS functions' argument lists. */
#if defined(VG_IDMAP_NONE)
#define UNLINK_DENTRY(ctx) ((struct dentry *)PT_REGS_PARM2(ctx))
#define NOTIFY_DENTRY(ctx) ((struct dentry *)PT_REGS_PARM1(ctx))
#define NOTIFY_ATTR(ctx) ((struct iattr *)PT_REGS_PARM2(ctx))
#define LINK_DIR(ctx) ((struct inode *)PT_REGS_PARM2(ctx))
#define LINK_NEW(ctx) ((struct dentry *)PT_REGS_PARM3(ctx))
#elif defined(VG_IDMAP_USERNS) || defined(VG_IDMAP_IDMAP)
#define UNLINK_DENTRY(ctx) ((struct dentry *)PT_REGS_PARM3(ctx))
#define NOTIFY_DENTRY(ctx) ((struct dentry *)PT_REGS_PARM2(ctx))
#define NOTIFY_ATTR(ctx) ((struct iattr *)PT_REGS_PARM3(ctx))
#define LINK_DIR(ctx) ((struct inode *)PT_REGS_PARM3(ctx))
#define LINK_NEW(ctx) ((struct dentry *)PT_REGS_PARM4(ctx))
#else
#error "kprobe object needs an idmap fact (bpf/matrix)"
#endif

/* Content changes through an open file. */

SEC("kprobe/vfs_write")
int BPF_KPROBE(kp_vfs_write, struct file *file, const char *buf, size_t count)
{
	return vg_file_op(file, VG_OP_WRITE, VG_H_VFS_WRITE, count);
}

SEC("kprobe/vfs_writev")
int BPF_KPROBE(kp_vfs_writev, struct file *file)
{
	return vg_file_op(file, VG_OP_WRITE, VG_H_VFS_WRITEV, 0);
}

/* overlayfs, nfsd and loop writes, and (before 6.7) splice and sendfile. */
SEC("kprobe/vfs_iter_write")
int BPF_KPROBE(kp_vfs_iter_wr, struct file *file)
{
	return vg_file_op(file, VG_OP_WRITE, VG_H_VFS_ITER_WRITE, 0);
}

/* splice and sendfile into a file: since 6.7 iter_file_splice_write calls
 * ->write_iter directly, not vfs_iter_write (which older kernels reach from
 * here too, so there a splice may give two records). */
SEC("kprobe/iter_file_splice_write")
int BPF_KPROBE(kp_splice_write, struct pipe_inode_info *pipe, struct file *out)
{
	return vg_file_op(out, VG_OP_WRITE, VG_H_SPLICE_WRITE, 0);
}

SEC("kprobe/vfs_copy_file_range")
int BPF_KPROBE(kp_copy_range, struct file *in, loff_t pos_in, struct file *out, loff_t pos_out,
	       size_t len)
{
	return vg_file_op(out, VG_OP_WRITE, VG_H_COPY_FILE_RANGE, len);
}

SEC("kprobe/io_write")
int BPF_KPROBE(kp_io_write, struct io_kiocb *req)
{
	return vg_file_op(BPF_CORE_READ(req, file), VG_OP_WRITE, VG_H_IO_WRITE, 0);
}

/* A shared writable mapping: every later store is a write nothing sees. */
SEC("kprobe/security_mmap_file")
int BPF_KPROBE(kp_mmap_file, struct file *file, unsigned long prot, unsigned long flags)
{
	if (!(prot & PROT_WRITE) || !(flags & MAP_SHARED)) {
		vg_count_hit(VG_H_MMAP);
		return 0;
	}
	return vg_file_op(file, VG_OP_MMAP, VG_H_MMAP, prot);
}

/* Creation: a file opened with O_CREAT that did not exist before. */
SEC("kprobe/security_file_open")
int BPF_KPROBE(kp_file_open, struct file *file)
{
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
	struct dentry *d = NOTIFY_DENTRY(ctx);
	struct iattr *attr = NOTIFY_ATTR(ctx);
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
int BPF_KPROBE(kp_vfs_rename, struct renamedata *rd)
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
	struct inode *odir = BPF_CORE_READ(rd, old_dir);
	struct inode *ndir = BPF_CORE_READ(rd, new_dir);
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
	struct dentry *d = UNLINK_DENTRY(ctx);
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
	struct dentry *od = (struct dentry *)PT_REGS_PARM1(ctx);
	struct dentry *nd = LINK_NEW(ctx);
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
		struct inode *ndir = LINK_DIR(ctx);
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

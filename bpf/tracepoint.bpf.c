// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tracepoint object, for kernels without kprobes (and the last fallback
 * everywhere): one program on the raw_syscalls/sys_exit tracepoint. At exit the
 * syscall's arguments are still in the user registers and its result is
 * known, so one program serves every operation and failed calls are skipped.
 *
 * File descriptors resolve to the open file in the kernel, and from there
 * the same inode/name/ancestor match as the kprobe object. Path arguments
 * cannot be resolved to a dentry here: they are filtered by the name's hash,
 * by a watched ancestor of the directory they are relative to, or by a
 * watched directory prefix of an absolute path, and sent with the absolute
 * path of the directory they were relative to; user space resolves them.
 */
#include "common.bpf.h"
/* x86_64 syscall numbers (__NR_*): the uapi header of Debian's linux-libc-dev. */
#include <asm/unistd_64.h>
/* Newer than the uapi headers of Debian 12 (6.1), x86_64's numbers. */
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452 /* Linux 6.6 */
#endif
#ifndef __NR_setxattrat
#define __NR_setxattrat 463 /* Linux 6.13 */
#endif
#ifndef __NR_removexattrat
#define __NR_removexattrat 466 /* Linux 6.13 */
#endif
#ifndef __NR_file_setattr
#define __NR_file_setattr 469 /* Linux 6.17 */
#endif

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define AT_EMPTY_PATH 0x1000
#define O_TRUNC 01000
#define FS_IOC_SETFLAGS 0x40086602   /* _IOW('f', 2, long) */
#define FS_IOC_FSSETXATTR 0x401c5820 /* _IOW('X', 32, struct fsxattr) */
#define MOVE_MOUNT_F_EMPTY_PATH 0x04
#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFBLK 0060000
#define S_IFREG 0100000

/* Hashes of watched names (any directory): the path filter's first test. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} basenames SEC(".maps");

/* Hashes of watched directories' absolute paths (no trailing slash). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u32);
} dirpaths SEC(".maps");

static __always_inline struct file *vg_fd_file(long fd)
{
	if (fd < 0)
		return NULL;
	struct task_struct *t = bpf_get_current_task_btf();
	struct fdtable *fdt = t->files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* open, openat, openat2, creat: a file created, or truncated by O_TRUNC. */
static __always_inline int vg_open_exit(long fd, __u64 flags)
{
	struct file *f = vg_fd_file(fd);
	if (!f)
		return 0;
	if (BPF_CORE_READ(f, f_mode) & FMODE_CREATED)
		return vg_created(f, VG_H_SYS_EXIT);
	if (flags & O_TRUNC)
		return vg_file_op_ext(f, VG_OP_TRUNCATE, VG_H_SYS_EXIT, ATTR_SIZE, 0, 0, 0, 0, 0, NULL);
	return 0;
}

/* The directory a path argument is relative to: dirfd's, the cwd, or the root. */
static __always_inline void vg_base(long dirfd, bool absolute, struct dentry **d, struct vfsmount **m)
{
	struct task_struct *t = bpf_get_current_task_btf();
	if (absolute) {
		*d = t->fs->root.dentry;
		*m = t->fs->root.mnt;
	} else if (dirfd == AT_FDCWD) {
		*d = t->fs->pwd.dentry;
		*m = t->fs->pwd.mnt;
	} else {
		struct file *f = vg_fd_file(dirfd);
		*d = f ? BPF_CORE_READ(f, f_path.dentry) : NULL;
		*m = f ? BPF_CORE_READ(f, f_path.mnt) : NULL;
	}
}

struct vg_scan {
	__u64 h;  /* FNV-1a of the whole path so far */
	__u64 bh; /* FNV-1a of the last component */
	bool slash;
	bool found;
	bool absolute;
};

/* One character of the path in scratch->name (a bpf_loop callback, so the
 * verifier checks it once rather than once per character). */
static long vg_scan_char(__u32 i, struct vg_scan *c)
{
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 1;
	char ch = s->name[i & (VG_NAME_MAX - 1)];
	if (!ch)
		return 1;
	if (ch == '/') {
		c->slash = true;
		if (i > 0 && c->absolute && bpf_map_lookup_elem(&dirpaths, &c->h)) {
			c->found = true;
			return 1;
		}
		c->bh = 0xcbf29ce484222325ULL;
	} else {
		c->bh ^= (__u8)ch;
		c->bh *= 0x100000001b3ULL;
	}
	c->h ^= (__u8)ch;
	c->h *= 0x100000001b3ULL;
	return 0;
}

/*
 * Does the user path in scratch->name name something watched? Its name's
 * hash is a watched name, a watched directory is a prefix of it (absolute
 * paths), or the directory it is relative to is watched.
 */
static __always_inline bool vg_path_watched(struct vg_scratch *s, struct dentry *base)
{
	struct vg_scan c = {
		.h = 0xcbf29ce484222325ULL,
		.bh = 0xcbf29ce484222325ULL,
		.absolute = s->name[0] == '/',
	};
	bpf_loop(VG_NAME_MAX, vg_scan_char, &c, 0);
	if (c.found || bpf_map_lookup_elem(&basenames, &c.bh))
		return true;
	if (c.absolute || !base)
		return false;
	/* Relative: a bare name in a directory holding watched names, or the
	 * base directory or one of its ancestors watched recursively. */
	struct vg_key k;
	if (!c.slash) {
		struct inode *inode = BPF_CORE_READ(base, d_inode);
		if (inode) {
			vg_inode_key(inode, &k);
			struct vg_watch *w = bpf_map_lookup_elem(&watched, &k);
			if (w && (w->flags & VG_W_NAMES))
				return true;
		}
	}
	__u32 depth;
	return vg_match_tree(base, &k, &depth) != NULL;
}

/* Put a user path in the record: the string as given, then the absolute
 * path (leaf first) of the directory it is relative to. */
static __always_inline __u16 vg_put_user_path(struct vg_scratch *s, __u32 *off, const char *user,
					      struct dentry *d, struct vfsmount *m, bool *trunc)
{
	__u32 start = *off;
	if (vg_put_any_str(s, off, user, true) < 0)
		return 0;
	if (d && m)
		vg_put_abs(s, off, d, m, trunc);
	return *off - start;
}

/* The same for a path whose base is not known yet: an empty or NULL string
 * (the *_EMPTY_PATH flags) stands for the base itself, dirfd's file. */
static __always_inline __u16 vg_put_user_path_at(struct vg_scratch *s, __u32 *off, const char *user,
						 long dirfd, bool *trunc)
{
	__u32 start = *off;
	vg_put_str0(s, off, user, true);
	struct dentry *d = NULL;
	struct vfsmount *m = NULL;
	vg_base(dirfd, s->data[start & VG_DATA_MASK] == '/', &d, &m);
	if (d && m)
		vg_put_abs(s, off, d, m, trunc);
	return *off - start;
}

struct vg_patharg {
	long dirfd;
	const char *user;
};

/* What one syscall asks of the sensor: filled by the switch below, then
 * handled at one call site per kind, so the verifier sees each body once. */
enum { VG_K_NONE, VG_K_FD, VG_K_OPEN, VG_K_PATH, VG_K_MOUNT };

struct vg_req {
	__u32 kind;
	__u32 op;
	long fd;
	__u64 arg1, arg2;
	__u32 mode, uid, gid, flags;
	struct vg_patharg a, b;
	const char *str2; /* user memory: path2 as a plain string (VG_F_STR2) */
	const char *str3; /* user memory: mount's filesystem type, after str2 */
	bool two;	  /* rename, link: b is the new name; move_mount: the source is
			   * b.dirfd's mount */
};

/* A request for one syscall: every field a case does not set is zero, and
 * both paths are relative to the cwd. Set only once the syscall is known to
 * matter, so that the others cost no stores. */
static __always_inline void vg_req_init(struct vg_req *r, __u32 kind, __u32 op)
{
	*r = (struct vg_req){.kind = kind, .op = op, .a = {.dirfd = AT_FDCWD}, .b = {.dirfd = AT_FDCWD}};
}

/* Is a path argument empty (or NULL)? With AT_EMPTY_PATH such a call acts
 * on dirfd's own file. */
static __always_inline bool vg_empty_path(const char *user)
{
	char c = 0;
	return !user || bpf_probe_read_user(&c, 1, user) || !c;
}

/* A path-based operation that succeeded: filter and emit. */
static __always_inline int vg_path_op(struct vg_req *r)
{
	vg_count_hit(VG_H_SYS_EXIT);
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct dentry *ad = NULL, *bd = NULL;
	struct vfsmount *am = NULL, *bm = NULL;
	struct vg_patharg *a = &r->a, *b = r->two ? &r->b : NULL;
	long n = bpf_probe_read_user_str(s->name, sizeof(s->name), a->user);
	if (n <= 0)
		return 0;
	vg_base(a->dirfd, s->name[0] == '/', &ad, &am);
	bool hit = n >= VG_NAME_MAX || vg_path_watched(s, ad);
	if (b) {
		n = bpf_probe_read_user_str(s->name, sizeof(s->name), b->user);
		if (n > 0) {
			vg_base(b->dirfd, s->name[0] == '/', &bd, &bm);
			if (!hit)
				hit = n >= VG_NAME_MAX || vg_path_watched(s, bd);
		}
	}
	if (!hit || vg_is_self())
		return 0;
	vg_count_match(NULL, VG_H_SYS_EXIT);
	s = vg_begin(r->op, VG_H_SYS_EXIT);
	if (!s)
		return 0;
	struct vg_event *e = &s->ev;
	e->match = VG_M_PATH;
	e->flags = r->flags;
	e->arg1 = r->arg1;
	e->arg2 = r->arg2;
	e->mode = r->mode;
	e->attr_uid = r->uid;
	e->attr_gid = r->gid;
	__u32 off = 0;
	bool trunc = false;
	/* path: the target (rename/link: the new name); path2: the source. */
	if (b) {
		e->path_len = vg_put_user_path(s, &off, b->user, bd, bm, &trunc);
		e->path2_len = vg_put_user_path(s, &off, a->user, ad, am, &trunc);
	} else {
		e->path_len = vg_put_user_path(s, &off, a->user, ad, am, &trunc);
		if (r->str2) {
			/* An attribute's name or a symlink's target, as given. A
			 * target is a path (to 4095 bytes); the record keeps 255. */
			__u32 start = off;
			vg_put_str0(s, &off, r->str2, true);
			e->path2_len = off - start;
			e->flags |= VG_F_STR2;
			char c = 0;
			if (e->path2_len >= VG_NAME_MAX &&
			    !bpf_probe_read_user(&c, 1, r->str2 + VG_NAME_MAX - 1) && c)
				trunc = true;
		}
	}
	if (trunc)
		e->flags |= VG_F_PATH_TRUNC;
	return vg_emit(s, off);
}

/*
 * mount, move_mount and umount2 that succeeded: not matched against the
 * watch set (user space decides what a mount covers), so every one is sent.
 * path: the mountpoint in user form (VG_F_USER_PATH); path2 (mounts): the
 * source, then the filesystem type.
 */
static __always_inline int vg_mount_op(struct vg_req *r)
{
	vg_count_hit(VG_H_SYS_EXIT);
	if (vg_is_self())
		return 0;
	vg_count_match(NULL, VG_H_SYS_EXIT);
	struct vg_scratch *s = vg_begin(r->op, VG_H_SYS_EXIT);
	if (!s)
		return 0;
	struct vg_event *e = &s->ev;
	e->match = VG_M_MOUNT;
	e->flags = r->flags | VG_F_USER_PATH;
	e->arg1 = r->arg1;
	__u32 off = 0;
	bool trunc = false;
	e->path_len = vg_put_user_path_at(s, &off, r->a.user, r->a.dirfd, &trunc);
	if (r->op == VG_OP_MOUNT) {
		__u32 start = off;
		if (r->two) {
			/* move_mount from a file descriptor (a detached tree from
			 * fsmount or open_tree): that mount's device name and
			 * filesystem type. */
			struct dentry *d = NULL;
			struct vfsmount *vm = NULL;
			vg_base(r->b.dirfd, false, &d, &vm);
			const char *dev = NULL, *type = NULL;
			if (vm) {
				struct mount *mnt = container_of(vm, struct mount, mnt);
				dev = BPF_CORE_READ(mnt, mnt_devname);
				type = BPF_CORE_READ(vm, mnt_sb, s_type, name);
			}
			vg_put_str0(s, &off, dev, false);
			vg_put_str0(s, &off, type, false);
		} else {
			vg_put_str0(s, &off, r->str2, true);
			vg_put_str0(s, &off, r->str3, true);
		}
		e->path2_len = off - start;
		e->flags |= VG_F_STR2;
	}
	if (trunc)
		e->flags |= VG_F_PATH_TRUNC;
	return vg_emit(s, off);
}

static __always_inline __u32 vg_owner_valid(__u32 uid, __u32 gid)
{
	return (uid != (__u32)-1 ? ATTR_UID : 0) | (gid != (__u32)-1 ? ATTR_GID : 0);
}

/* Whether a syscall number is one vg_decode handles at all: the first test of
 * every syscall exit, on the tracepoint's own syscall number and result,
 * before any helper call, map lookup or read of the task. Most syscalls of a
 * system are none of these, and leave here. The list is exactly the case
 * labels of the vg_req_* functions below (pkg/sensor's TestSyscallFilter
 * checks it against them). */
static __always_inline bool vg_nr_handled(long nr)
{
	switch (nr) {
	case __NR_chmod:
	case __NR_chown:
	case __NR_copy_file_range:
	case __NR_creat:
	case __NR_fallocate:
	case __NR_fchmod:
	case __NR_fchmodat:
	case __NR_fchmodat2:
	case __NR_fchown:
	case __NR_fchownat:
	case __NR_file_setattr:
	case __NR_fremovexattr:
	case __NR_fsetxattr:
	case __NR_ftruncate:
	case __NR_futimesat:
	case __NR_ioctl:
	case __NR_lchown:
	case __NR_link:
	case __NR_linkat:
	case __NR_lremovexattr:
	case __NR_lsetxattr:
	case __NR_mkdir:
	case __NR_mkdirat:
	case __NR_mknod:
	case __NR_mknodat:
	case __NR_mmap:
	case __NR_mount:
	case __NR_move_mount:
	case __NR_open:
	case __NR_openat:
	case __NR_openat2:
	case __NR_pwrite64:
	case __NR_pwritev:
	case __NR_pwritev2:
	case __NR_removexattr:
	case __NR_removexattrat:
	case __NR_rename:
	case __NR_renameat:
	case __NR_renameat2:
	case __NR_rmdir:
	case __NR_sendfile:
	case __NR_setxattr:
	case __NR_setxattrat:
	case __NR_splice:
	case __NR_symlink:
	case __NR_symlinkat:
	case __NR_truncate:
	case __NR_umount2:
	case __NR_unlink:
	case __NR_unlinkat:
	case __NR_utime:
	case __NR_utimensat:
	case __NR_utimes:
	case __NR_write:
	case __NR_writev:
		return true;
	}
	return false;
}

/* Content, attributes and inode flags through a file descriptor: the write
 * family, fallocate, splice and copy_file_range (by their out fd), shared
 * writable mmap, ftruncate, fchmod, fchown, futimens, fsetxattr,
 * fremovexattr and the inode-flag ioctls. */
static __always_inline bool vg_req_fd(long nr, struct pt_regs *regs, long ret, struct vg_req *r)
{
	switch (nr) {
	case __NR_write:
	case __NR_pwrite64:
	case __NR_writev:
	case __NR_pwritev:
	case __NR_pwritev2:
	case __NR_sendfile:
		vg_req_init(r, VG_K_FD, VG_OP_WRITE);
		r->fd = regs->di;
		r->arg1 = ret;
		return true;
	case __NR_fallocate: /* (fd, mode, offset, len) */
		vg_req_init(r, VG_K_FD, VG_OP_WRITE);
		r->fd = regs->di;
		r->arg1 = regs->r10;
		r->arg2 = (__u32)regs->si;
		return true;
	case __NR_splice:
	case __NR_copy_file_range:
		vg_req_init(r, VG_K_FD, VG_OP_WRITE);
		r->fd = regs->dx;
		r->arg1 = ret;
		return true;
	case __NR_mmap:
		if (!(regs->dx & PROT_WRITE) || !(regs->r10 & MAP_SHARED))
			return false;
		vg_req_init(r, VG_K_FD, VG_OP_MMAP);
		r->fd = regs->r8;
		r->arg1 = regs->dx;
		return true;
	case __NR_ftruncate:
		vg_req_init(r, VG_K_FD, VG_OP_TRUNCATE);
		r->fd = regs->di;
		r->arg1 = ATTR_SIZE;
		r->arg2 = regs->si;
		return true;
	case __NR_fchmod:
		vg_req_init(r, VG_K_FD, VG_OP_SETATTR);
		r->fd = regs->di;
		r->arg1 = ATTR_MODE;
		r->mode = regs->si;
		return true;
	case __NR_fchown:
		vg_req_init(r, VG_K_FD, VG_OP_SETATTR);
		r->fd = regs->di;
		r->uid = regs->si;
		r->gid = regs->dx;
		r->arg1 = vg_owner_valid(r->uid, r->gid);
		return true;
	case __NR_utimensat:
		if (regs->si) /* a path: vg_req_attr */
			return false;
		/* futimens: the dirfd is the file */
		vg_req_init(r, VG_K_FD, VG_OP_SETATTR);
		r->fd = regs->di;
		r->arg1 = ATTR_ATIME | ATTR_MTIME;
		return true;
	case __NR_fsetxattr: /* (fd, name, value, size, flags) */
		vg_req_init(r, VG_K_FD, VG_OP_SETXATTR);
		r->fd = (int)regs->di;
		r->str2 = (const char *)regs->si;
		r->arg1 = (__u32)regs->r8;
		return true;
	case __NR_fremovexattr: /* (fd, name) */
		vg_req_init(r, VG_K_FD, VG_OP_REMOVEXATTR);
		r->fd = (int)regs->di;
		r->str2 = (const char *)regs->si;
		return true;
	case __NR_ioctl: { /* (fd, cmd, arg): chattr's two requests */
		__u32 cmd = regs->si;
		if (cmd != FS_IOC_SETFLAGS && cmd != FS_IOC_FSSETXATTR)
			return false;
		vg_req_init(r, VG_K_FD, VG_OP_SETFLAGS);
		r->fd = (int)regs->di;
		/* SETFLAGS: an int of FS_*_FL; FSSETXATTR: struct fsxattr,
		 * whose first member is fsx_xflags (FS_XFLAG_*). */
		__u32 v;
		if (!bpf_probe_read_user(&v, sizeof(v), (void *)regs->dx)) {
			if (cmd == FS_IOC_SETFLAGS) {
				r->arg1 = v;
				r->flags = VG_F_FLAGS;
			} else {
				r->arg2 = v;
				r->flags = VG_F_XFLAGS;
			}
		}
		return true;
	}
	}
	return false;
}

/* Opens: creation and O_TRUNC, judged on the file the call returned. */
static __always_inline bool vg_req_open(long nr, struct pt_regs *regs, long ret, struct vg_req *r)
{
	switch (nr) {
	case __NR_open:
		vg_req_init(r, VG_K_OPEN, 0);
		r->fd = ret;
		r->arg1 = regs->si;
		return true;
	case __NR_creat:
		vg_req_init(r, VG_K_OPEN, 0);
		r->fd = ret;
		r->arg1 = O_TRUNC;
		return true;
	case __NR_openat:
		vg_req_init(r, VG_K_OPEN, 0);
		r->fd = ret;
		r->arg1 = regs->dx;
		return true;
	case __NR_openat2:
		vg_req_init(r, VG_K_OPEN, 0);
		r->fd = ret;
		bpf_probe_read_user(&r->arg1, sizeof(r->arg1), (void *)regs->dx); /* open_how.flags */
		return true;
	}
	return false;
}

/* Two paths: rename and link (a: the source, b: the new name). */
static __always_inline bool vg_req_rename_link(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_rename:
	case __NR_link:
		vg_req_init(r, VG_K_PATH, nr == __NR_rename ? VG_OP_RENAME : VG_OP_LINK);
		r->a.user = (const char *)regs->di;
		r->b.user = (const char *)regs->si;
		break;
	case __NR_renameat:
	case __NR_renameat2:
	case __NR_linkat:
		vg_req_init(r, VG_K_PATH, nr == __NR_linkat ? VG_OP_LINK : VG_OP_RENAME);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->b.dirfd = (int)regs->dx;
		r->b.user = (const char *)regs->r10;
		if (nr == __NR_renameat2) {
			r->arg1 = regs->r8;
			if (regs->r8 & RENAME_EXCHANGE)
				r->flags = VG_F_EXCHANGE;
		}
		break;
	default:
		return false;
	}
	r->two = true;
	return true;
}

/* One path removed: unlink, rmdir, unlinkat (rmdir with AT_REMOVEDIR). */
static __always_inline bool vg_req_unlink(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_unlink:
	case __NR_rmdir:
		vg_req_init(r, VG_K_PATH, nr == __NR_rmdir ? VG_OP_RMDIR : VG_OP_UNLINK);
		r->a.user = (const char *)regs->di;
		return true;
	case __NR_unlinkat:
		vg_req_init(r, VG_K_PATH, (regs->dx & AT_REMOVEDIR) ? VG_OP_RMDIR : VG_OP_UNLINK);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->arg1 = regs->dx;
		return true;
	}
	return false;
}

/* One path's attributes: chmod, chown, truncate and the utimes family. */
static __always_inline bool vg_req_attr(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_chmod:
		vg_req_init(r, VG_K_PATH, VG_OP_SETATTR);
		r->a.user = (const char *)regs->di;
		r->arg1 = ATTR_MODE;
		r->mode = regs->si;
		return true;
	case __NR_fchmodat:
	case __NR_fchmodat2:
		vg_req_init(r, VG_K_PATH, VG_OP_SETATTR);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->arg1 = ATTR_MODE;
		r->mode = regs->dx;
		return true;
	case __NR_chown:
	case __NR_lchown:
		vg_req_init(r, VG_K_PATH, VG_OP_SETATTR);
		r->a.user = (const char *)regs->di;
		r->uid = regs->si;
		r->gid = regs->dx;
		r->arg1 = vg_owner_valid(r->uid, r->gid);
		return true;
	case __NR_fchownat:
		vg_req_init(r, VG_K_PATH, VG_OP_SETATTR);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->uid = regs->dx;
		r->gid = regs->r10;
		r->arg1 = vg_owner_valid(r->uid, r->gid);
		return true;
	case __NR_truncate:
		vg_req_init(r, VG_K_PATH, VG_OP_TRUNCATE);
		r->a.user = (const char *)regs->di;
		r->arg1 = ATTR_SIZE;
		r->arg2 = regs->si;
		return true;
	case __NR_utimensat: /* with a path (futimens is vg_req_fd's) */
	case __NR_futimesat:
		vg_req_init(r, VG_K_PATH, VG_OP_SETATTR);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->arg1 = ATTR_ATIME | ATTR_MTIME;
		return true;
	case __NR_utime:
	case __NR_utimes:
		vg_req_init(r, VG_K_PATH, VG_OP_SETATTR);
		r->a.user = (const char *)regs->di;
		r->arg1 = ATTR_ATIME | ATTR_MTIME;
		return true;
	}
	return false;
}

/* The *at calls that take AT_EMPTY_PATH act on dirfd's own file when the
 * path is empty: then the request is an fd's. */
static __always_inline void vg_req_empty_path(struct vg_req *r, __u64 at_flags)
{
	if ((at_flags & AT_EMPTY_PATH) && vg_empty_path(r->a.user)) {
		r->kind = VG_K_FD;
		r->fd = r->a.dirfd;
	}
}

/* Extended attributes and inode flags by path: the *xattr calls (the name
 * is path2) and file_setattr. */
static __always_inline bool vg_req_xattr(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_setxattr: /* (path, name, value, size, flags) */
	case __NR_lsetxattr:
		vg_req_init(r, VG_K_PATH, VG_OP_SETXATTR);
		r->a.user = (const char *)regs->di;
		r->str2 = (const char *)regs->si;
		r->arg1 = (__u32)regs->r8;
		return true;
	case __NR_removexattr: /* (path, name) */
	case __NR_lremovexattr:
		vg_req_init(r, VG_K_PATH, VG_OP_REMOVEXATTR);
		r->a.user = (const char *)regs->di;
		r->str2 = (const char *)regs->si;
		return true;
	case __NR_setxattrat: { /* (dirfd, path, at_flags, name, struct xattr_args *, size) */
		vg_req_init(r, VG_K_PATH, VG_OP_SETXATTR);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->str2 = (const char *)regs->r10;
		__u32 flags = 0; /* xattr_args: __u64 value, __u32 size, __u32 flags */
		bpf_probe_read_user(&flags, sizeof(flags), (void *)(regs->r8 + 12));
		r->arg1 = flags;
		vg_req_empty_path(r, regs->dx);
		return true;
	}
	case __NR_removexattrat: /* (dirfd, path, at_flags, name) */
		vg_req_init(r, VG_K_PATH, VG_OP_REMOVEXATTR);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->str2 = (const char *)regs->r10;
		vg_req_empty_path(r, regs->dx);
		return true;
	case __NR_file_setattr: { /* (dirfd, path, struct file_attr *, size, at_flags) */
		vg_req_init(r, VG_K_PATH, VG_OP_SETFLAGS);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		__u64 x; /* file_attr: __u64 fa_xflags first */
		if (!bpf_probe_read_user(&x, sizeof(x), (void *)regs->dx)) {
			r->arg2 = x;
			r->flags = VG_F_XFLAGS;
		}
		vg_req_empty_path(r, regs->r8);
		return true;
	}
	}
	return false;
}

/* A new node's mode: its type, and the permissions asked for less the
 * process's umask (as the kernel applies it where the directory has no
 * default ACL). */
static __always_inline __u32 vg_new_mode(__u32 mode, __u32 perms, __u32 type)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return type | (mode & perms & ~(__u32)t->fs->umask);
}

/* A device number from mknod's encoding (glibc's makedev, the kernel's
 * new_encode_dev) to the kernel's dev_t, major << 20 | minor. */
static __always_inline __u64 vg_decode_dev(__u32 dev)
{
	__u32 major = (dev & 0xfff00) >> 8;
	__u32 minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
	return (__u64)major << 20 | minor;
}

static __always_inline void vg_req_mknod(struct vg_req *r, __u32 mode, __u32 dev)
{
	mode &= 0xffff; /* umode_t */
	__u32 type = mode & S_IFMT;
	if (!type)
		type = S_IFREG;
	r->mode = vg_new_mode(mode, 07777, type);
	if (type == S_IFCHR || type == S_IFBLK)
		r->arg1 = vg_decode_dev(dev);
}

/* New names that are not opened files: mkdir, mknod, symlink (the new name
 * is the path, a symlink's target path2). */
static __always_inline bool vg_req_mk(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_mkdir: /* (path, mode) */
		vg_req_init(r, VG_K_PATH, VG_OP_MKDIR);
		r->a.user = (const char *)regs->di;
		r->mode = vg_new_mode(regs->si, 01777, S_IFDIR);
		return true;
	case __NR_mkdirat: /* (dirfd, path, mode) */
		vg_req_init(r, VG_K_PATH, VG_OP_MKDIR);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->mode = vg_new_mode(regs->dx, 01777, S_IFDIR);
		return true;
	case __NR_mknod: /* (path, mode, dev) */
		vg_req_init(r, VG_K_PATH, VG_OP_MKNOD);
		r->a.user = (const char *)regs->di;
		vg_req_mknod(r, regs->si, regs->dx);
		return true;
	case __NR_mknodat: /* (dirfd, path, mode, dev) */
		vg_req_init(r, VG_K_PATH, VG_OP_MKNOD);
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		vg_req_mknod(r, regs->dx, regs->r10);
		return true;
	case __NR_symlink: /* (target, linkpath) */
		vg_req_init(r, VG_K_PATH, VG_OP_SYMLINK);
		r->str2 = (const char *)regs->di;
		r->a.user = (const char *)regs->si;
		return true;
	case __NR_symlinkat: /* (target, dirfd, linkpath) */
		vg_req_init(r, VG_K_PATH, VG_OP_SYMLINK);
		r->str2 = (const char *)regs->di;
		r->a.dirfd = (int)regs->si;
		r->a.user = (const char *)regs->dx;
		return true;
	}
	return false;
}

#define MS_MGC_MSK 0xffff0000
#define MS_MGC_VAL 0xC0ED0000

/* Mounts and unmounts: mount, move_mount, umount2. */
static __always_inline bool vg_req_mount(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_mount: { /* (source, target, fstype, flags, data) */
		vg_req_init(r, VG_K_MOUNT, VG_OP_MOUNT);
		r->str2 = (const char *)regs->di;
		r->a.user = (const char *)regs->si;
		r->str3 = (const char *)regs->dx;
		__u64 flags = regs->r10;
		if ((flags & MS_MGC_MSK) == MS_MGC_VAL) /* the old magic, which the kernel drops */
			flags &= ~(__u64)MS_MGC_MSK;
		r->arg1 = flags;
		return true;
	}
	case __NR_move_mount: /* (from_dirfd, from_path, to_dirfd, to_path, flags) */
		vg_req_init(r, VG_K_MOUNT, VG_OP_MOUNT);
		r->flags = VG_F_MOVE_MOUNT;
		r->arg1 = (__u32)regs->r8;
		r->a.dirfd = (int)regs->dx;
		r->a.user = (const char *)regs->r10;
		r->b.dirfd = (int)regs->di;
		if ((regs->r8 & MOVE_MOUNT_F_EMPTY_PATH) && vg_empty_path((const char *)regs->si))
			r->two = true; /* the source is from_dirfd's own mount */
		else
			r->str2 = (const char *)regs->si; /* a mounted path, as given */
		return true;
	case __NR_umount2: /* (target, flags) */
		vg_req_init(r, VG_K_MOUNT, VG_OP_UMOUNT);
		r->a.user = (const char *)regs->di;
		r->arg1 = (__u32)regs->si;
		return true;
	}
	return false;
}

/* Carry out one request: one call site per kind, so the verifier sees each
 * body once. */
static __always_inline void vg_handle(struct vg_req *r)
{
	switch (r->kind) {
	case VG_K_FD:
		vg_file_op_ext(vg_fd_file(r->fd), r->op, VG_H_SYS_EXIT, r->arg1, r->arg2, r->mode, r->uid,
			       r->gid, r->flags, r->str2);
		break;
	case VG_K_OPEN:
		vg_open_exit(r->fd, r->arg1);
		break;
	case VG_K_PATH:
		vg_path_op(r);
		break;
	case VG_K_MOUNT:
		vg_mount_op(r);
		break;
	}
}

/* Decode one syscall exit into a request; false when it concerns vigil not
 * (then r is left unset). */
static __always_inline bool vg_decode(struct pt_regs *regs, long ret, struct vg_req *r)
{
	if (ret < 0)
		return false;
	long nr = regs->orig_ax;
	return vg_req_fd(nr, regs, ret, r) || vg_req_open(nr, regs, ret, r) || vg_req_rename_link(nr, regs, r) ||
	       vg_req_unlink(nr, regs, r) || vg_req_attr(nr, regs, r) || vg_req_xattr(nr, regs, r) ||
	       vg_req_mk(nr, regs, r) || vg_req_mount(nr, regs, r);
}

/*
 * The perf-event tracepoint raw_syscalls/sys_exit, not the BTF raw
 * tracepoint: where the kernel runs the syscall tracepoints preemptibly
 * (7.x), a raw tracepoint program preempted mid-run makes the kernel skip
 * it for every other task's syscall exit on that CPU until it resumes. The
 * perf path runs its programs with preemption disabled, so a run is never
 * interrupted by another task's. The syscall's arguments are read from the
 * task's user registers.
 */
SEC("tp/raw_syscalls/sys_exit")
int tp_sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0 || !vg_nr_handled(ctx->id))
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	struct vg_req r;
	if (!vg_decode(regs, ctx->ret, &r))
		return 0;
	vg_handle(&r);
	return 0;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tracepoint object, for kernels without kprobes (and the last fallback
 * everywhere): one BTF-typed raw tracepoint at syscall exit. At exit the
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
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452 /* Linux 6.6: older uapi headers (Debian 12's 6.1) lack it */
#endif

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define O_TRUNC 01000

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
		return vg_file_op_attr(f, VG_OP_TRUNCATE, VG_H_SYS_EXIT, ATTR_SIZE, 0, 0, 0, 0);
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

struct vg_patharg {
	long dirfd;
	const char *user;
};

/* What one syscall asks of the sensor: filled by the switch below, then
 * handled at one call site per kind, so the verifier sees each body once. */
enum { VG_K_NONE, VG_K_FD, VG_K_OPEN, VG_K_PATH };

struct vg_req {
	__u32 kind;
	__u32 op;
	long fd;
	__u64 arg1, arg2;
	__u32 mode, uid, gid, flags;
	struct vg_patharg a, b;
	bool two;
};

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
	}
	if (trunc)
		e->flags |= VG_F_PATH_TRUNC;
	return vg_emit(s, off);
}

static __always_inline __u32 vg_owner_valid(__u32 uid, __u32 gid)
{
	return (uid != (__u32)-1 ? ATTR_UID : 0) | (gid != (__u32)-1 ? ATTR_GID : 0);
}

/* Content through a file descriptor: the write family, splice and
 * copy_file_range (by their out fd), shared writable mmap, ftruncate, fchmod,
 * fchown and futimens. */
static __always_inline bool vg_req_fd(long nr, struct pt_regs *regs, long ret, struct vg_req *r)
{
	switch (nr) {
	case __NR_write:
	case __NR_pwrite64:
	case __NR_writev:
	case __NR_pwritev:
	case __NR_pwritev2:
	case __NR_fallocate:
	case __NR_sendfile:
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_WRITE, .fd = regs->di, .arg1 = ret};
		return true;
	case __NR_splice:
	case __NR_copy_file_range:
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_WRITE, .fd = regs->dx, .arg1 = ret};
		return true;
	case __NR_mmap:
		if (!(regs->dx & PROT_WRITE) || !(regs->r10 & MAP_SHARED))
			return false;
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_MMAP, .fd = regs->r8, .arg1 = regs->dx};
		return true;
	case __NR_ftruncate:
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_TRUNCATE, .fd = regs->di,
				     .arg1 = ATTR_SIZE, .arg2 = regs->si};
		return true;
	case __NR_fchmod:
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_SETATTR, .fd = regs->di,
				     .arg1 = ATTR_MODE, .mode = regs->si};
		return true;
	case __NR_fchown:
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_SETATTR, .fd = regs->di,
				     .arg1 = vg_owner_valid(regs->si, regs->dx), .uid = regs->si, .gid = regs->dx};
		return true;
	case __NR_utimensat:
		if (regs->si) /* a path: vg_req_attr */
			return false;
		/* futimens: the dirfd is the file */
		*r = (struct vg_req){.kind = VG_K_FD, .op = VG_OP_SETATTR, .fd = regs->di,
				     .arg1 = ATTR_ATIME | ATTR_MTIME};
		return true;
	}
	return false;
}

/* Opens: creation and O_TRUNC, judged on the file the call returned. */
static __always_inline bool vg_req_open(long nr, struct pt_regs *regs, long ret, struct vg_req *r)
{
	switch (nr) {
	case __NR_open:
		*r = (struct vg_req){.kind = VG_K_OPEN, .fd = ret, .arg1 = regs->si};
		return true;
	case __NR_creat:
		*r = (struct vg_req){.kind = VG_K_OPEN, .fd = ret, .arg1 = O_TRUNC};
		return true;
	case __NR_openat:
		*r = (struct vg_req){.kind = VG_K_OPEN, .fd = ret, .arg1 = regs->dx};
		return true;
	case __NR_openat2:
		*r = (struct vg_req){.kind = VG_K_OPEN, .fd = ret};
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
		r->op = nr == __NR_rename ? VG_OP_RENAME : VG_OP_LINK;
		r->a.user = (const char *)regs->di;
		r->b.user = (const char *)regs->si;
		break;
	case __NR_renameat:
	case __NR_renameat2:
	case __NR_linkat:
		r->op = nr == __NR_linkat ? VG_OP_LINK : VG_OP_RENAME;
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
	r->kind = VG_K_PATH;
	r->two = true;
	return true;
}

/* One path removed: unlink, unlinkat (rmdir with AT_REMOVEDIR). */
static __always_inline bool vg_req_unlink(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_unlink:
		r->op = VG_OP_UNLINK;
		r->a.user = (const char *)regs->di;
		break;
	case __NR_unlinkat:
		r->op = (regs->dx & AT_REMOVEDIR) ? VG_OP_RMDIR : VG_OP_UNLINK;
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->arg1 = regs->dx;
		break;
	default:
		return false;
	}
	r->kind = VG_K_PATH;
	return true;
}

/* One path's attributes: chmod, chown, truncate and the utimes family. */
static __always_inline bool vg_req_attr(long nr, struct pt_regs *regs, struct vg_req *r)
{
	switch (nr) {
	case __NR_chmod:
		r->a.user = (const char *)regs->di;
		r->arg1 = ATTR_MODE;
		r->mode = regs->si;
		break;
	case __NR_fchmodat:
	case __NR_fchmodat2:
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->arg1 = ATTR_MODE;
		r->mode = regs->dx;
		break;
	case __NR_chown:
	case __NR_lchown:
		r->a.user = (const char *)regs->di;
		r->uid = regs->si;
		r->gid = regs->dx;
		r->arg1 = vg_owner_valid(r->uid, r->gid);
		break;
	case __NR_fchownat:
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->uid = regs->dx;
		r->gid = regs->r10;
		r->arg1 = vg_owner_valid(r->uid, r->gid);
		break;
	case __NR_truncate:
		r->a.user = (const char *)regs->di;
		r->op = VG_OP_TRUNCATE;
		r->arg1 = ATTR_SIZE;
		r->arg2 = regs->si;
		r->kind = VG_K_PATH;
		return true;
	case __NR_utimensat: /* with a path (futimens is vg_req_fd's) */
	case __NR_futimesat:
		r->a.dirfd = (int)regs->di;
		r->a.user = (const char *)regs->si;
		r->arg1 = ATTR_ATIME | ATTR_MTIME;
		break;
	case __NR_utime:
	case __NR_utimes:
		r->a.user = (const char *)regs->di;
		r->arg1 = ATTR_ATIME | ATTR_MTIME;
		break;
	default:
		return false;
	}
	r->kind = VG_K_PATH;
	r->op = VG_OP_SETATTR;
	return true;
}

/* Carry out one request: one call site per kind, so the verifier sees each
 * body once. */
static __always_inline void vg_handle(struct vg_req *r)
{
	switch (r->kind) {
	case VG_K_FD:
		vg_file_op_attr(vg_fd_file(r->fd), r->op, VG_H_SYS_EXIT, r->arg1, r->arg2, r->mode,
				r->uid, r->gid);
		break;
	case VG_K_OPEN:
		vg_open_exit(r->fd, r->arg1);
		break;
	case VG_K_PATH:
		vg_path_op(r);
		break;
	}
}

/* Decode one syscall exit into a request; false when it concerns vigil not. */
static __always_inline bool vg_decode(struct pt_regs *regs, long ret, struct vg_req *r)
{
	if (ret < 0)
		return false;
	long nr = regs->orig_ax;
	return vg_req_fd(nr, regs, ret, r) || vg_req_open(nr, regs, ret, r) || vg_req_rename_link(nr, regs, r) ||
	       vg_req_unlink(nr, regs, r) || vg_req_attr(nr, regs, r);
}

/*
 * Where the kernel runs the syscall tracepoints preemptibly (7.x), a run of a
 * program preempted mid-way makes the kernel skip that program for every
 * other task's syscall exit on the same CPU until it resumes (it never runs
 * a program on a CPU where it is already running). So the program is
 * attached twice: tp_sys_exit, then tp_sys_exit_2 (the loader attaches in
 * name order, and a tracepoint calls its programs in attach order). The
 * second runs a syscall exit only when the first was skipped for it: per
 * task, the first counts the exits it ran and the second remembers the count
 * it last saw. A task loses an exit only when both copies are skipped, and
 * the second copy's skipped runs are counted as lost by the sensor.
 */
struct vg_exit_seq {
	__u64 first; /* relevant exits the first copy ran for this task */
	__u64 seen;  /* first, as the second copy last saw it */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct vg_exit_seq);
} exit_seq SEC(".maps");

static __always_inline struct vg_exit_seq *vg_exit_seq(void)
{
	return bpf_task_storage_get(&exit_seq, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(tp_sys_exit, struct pt_regs *regs, long ret)
{
	struct vg_req r = {.a = {.dirfd = AT_FDCWD}, .b = {.dirfd = AT_FDCWD}};
	if (!vg_decode(regs, ret, &r))
		return 0;
	struct vg_exit_seq *q = vg_exit_seq();
	if (q)
		q->first++;
	vg_handle(&r);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(tp_sys_exit_2, struct pt_regs *regs, long ret)
{
	struct vg_req r = {.a = {.dirfd = AT_FDCWD}, .b = {.dirfd = AT_FDCWD}};
	if (!vg_decode(regs, ret, &r))
		return 0;
	struct vg_exit_seq *q = vg_exit_seq();
	if (!q || q->first != q->seen) {
		if (q)
			q->seen = q->first; /* the first copy ran this exit */
		return 0;
	}
	vg_handle(&r);
	return 0;
}

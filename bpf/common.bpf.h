/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every vigil object shares: the maps, the watch-set match, the actor
 * read and the record emitter. Hook files (kprobe.bpf.c, tracepoint.bpf.c)
 * hold only thin wrappers around these bodies.
 */
#ifndef VIGIL_COMMON_BPF_H
#define VIGIL_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "vigil.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Tunables, set by the loader before load. */
const volatile __u32 vg_max_depth = 16; /* recursive watch depth, <= VG_DEPTH_MAX */
const volatile __u32 vg_self_tgid = 0;	/* vigil's own pid: never reported */

/* Sizes here are defaults; the loader sets max_entries from the config. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_key);
	__type(value, struct vg_watch);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vg_name_key);
	__type(value, struct vg_watch);
} names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vg_counters);
} counters SEC(".maps");

/* ---- Package-manager lineage (issue 17: i17-pkg) ----
 * pkg_comms: the managers' comms (as the kernel sets them at exec, zero
 * padded) to their ids, seeded by user space at start. lineage: the marked
 * process trees, one entry per thread group, written only by the three
 * programs below. A record costs one lookup of the actor's tgid (vg_begin). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, char[VG_COMM_LEN]);
	__type(value, __u32);
} pkg_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct vg_lineage);
} lineage SEC(".maps");

/* An exec: a manager's comm starts a tree, unless the task is already in one
 * (a manager run by another, or by its maintainer script: the outer root
 * stays, and the entry already says VG_P_SCRIPT unless the task is the root
 * itself, which stays the root). Any other exec changes nothing: a script
 * exec'd below a manager keeps the mark its fork gave it. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(vg_pkg_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	char comm[VG_COMM_LEN] = {};
	bpf_get_current_comm(comm, sizeof(comm));
	__u32 *mgr = bpf_map_lookup_elem(&pkg_comms, comm);
	if (!mgr)
		return 0;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&lineage, &tgid))
		return 0;
	struct vg_lineage l = {.root = tgid, .mgr = (__u8)*mgr};
	bpf_map_update_elem(&lineage, &tgid, &l, BPF_NOEXIST);
	return 0;
}

/* A fork: a new thread group below a marked one inherits its mark as a
 * script. A new thread shares its group's entry. Below an unmarked one, an
 * entry the new group's id still has is a dead group's whose exit run the
 * kernel skipped (a preempted run, docs/kernels.md): it goes, so that no
 * process inherits a mark by its reused pid. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(vg_pkg_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ptgid == ctgid)
		return 0;
	struct vg_lineage *pl = bpf_map_lookup_elem(&lineage, &ptgid);
	if (!pl) {
		bpf_map_delete_elem(&lineage, &ctgid);
		return 0;
	}
	struct vg_lineage l = {.root = pl->root, .mgr = pl->mgr, .flags = pl->flags | VG_P_SCRIPT};
	bpf_map_update_elem(&lineage, &ctgid, &l, BPF_ANY);
	return 0;
}

/* An exit: the thread group leader's ends its group's entry. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(vg_pkg_exit, struct task_struct *p)
{
	__u32 pid = BPF_CORE_READ(p, pid);
	__u32 tgid = BPF_CORE_READ(p, tgid);
	if (pid != tgid)
		return 0;
	bpf_map_delete_elem(&lineage, &tgid);
	return 0;
}
/* ---- end of package-manager lineage ---- */

/* Kernel ABI constants both objects test (uapi and include/linux/fs.h;
 * macros are not in BTF). */
#define ATTR_MODE (1 << 0)
#define ATTR_UID (1 << 1)
#define ATTR_GID (1 << 2)
#define ATTR_SIZE (1 << 3)
#define ATTR_ATIME (1 << 4)
#define ATTR_MTIME (1 << 5)
#define ATTR_CTIME (1 << 6)
/* The ia_valid bits a setattr record carries: what the caller asked to
 * change. The others are the VFS's own bookkeeping, which notify_change
 * rewrites before the LSM hook sees it (it drops ATTR_KILL_PRIV when there
 * is no privilege to kill), so each family would see them differently. */
#define VG_ATTR_REPORTED (ATTR_MODE | ATTR_UID | ATTR_GID | ATTR_SIZE | ATTR_ATIME | ATTR_MTIME | ATTR_CTIME)
#define RENAME_EXCHANGE (1 << 1)
#define PROT_WRITE 0x2
#define MAP_SHARED 0x01

#define VG_DATA_SIZE (4 * VG_PATH_MAX)
#define VG_DATA_MASK (VG_DATA_SIZE - 1)

#define VG_DROP_ALWAYS 1
#define VG_DROP_GONE 2

/* An operation matched at a function's entry, finished at its return. */
struct vg_pending {
	__u32 op;
	__u32 hook;
	__u32 match;
	__u32 flags;
	__u64 watch_id;
	struct vg_key file;
	struct vg_key file2;
	struct vg_key dir;
	struct vg_key dir2;
	__u64 dentry; /* reported path: walked at return */
	__u64 inode;  /* the inode whose last link may go */
	__u64 arg1;
	__u64 arg2;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 depth;
	__u32 reseeded; /* file2 was added to the map at entry */
	__u32 drop_file; /* on success, file leaves the map (VG_DROP_*) */
	__u16 ret_ptr;	 /* the function returns a pointer (ERR_PTR on failure), not an int */
	__u16 fill_file; /* a creation: file, and mode, are the new inode's, read at return */
	__u64 mnt;	 /* struct vfsmount * of dentry: the path is walked absolute */
	char name2[VG_NAME_MAX];
	char str3[32]; /* a mount's filesystem type: path2's second string */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct vg_pending);
} pending SEC(".maps");

struct vg_scratch {
	struct vg_event ev;
	char data[VG_DATA_SIZE + VG_NAME_MAX]; /* slack: a read at a masked offset stays inside */
	char name[VG_NAME_MAX];
	struct vg_pending pend;
};
/* A record is ev followed by its strings: emitted as one span. */
_Static_assert(__builtin_offsetof(struct vg_scratch, data) == sizeof(struct vg_event), "scratch layout");

/*
 * One scratch buffer per CPU. A kprobe handler runs with preemption disabled;
 * a tracepoint program may be preempted where the kernel runs syscall
 * tracepoints preemptibly (7.x), but the kernel never runs a program on a CPU
 * where it is already running (it skips the run and counts a recursion miss,
 * which the sensor reports as lost), so no other run can overwrite the
 * buffer mid-record.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vg_scratch);
} scratch SEC(".maps");

/* This CPU's scratch buffer (the record being built). */
static __always_inline struct vg_scratch *vg_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline struct vg_counters *vg_counters(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void vg_count_hit(__u32 hook)
{
	struct vg_counters *c = vg_counters();
	if (c)
		c->hits[hook & (VG_H_SLOTS - 1)]++;
}

static __always_inline bool vg_is_self(void)
{
	return vg_self_tgid && (bpf_get_current_pid_tgid() >> 32) == vg_self_tgid;
}

static __always_inline void vg_inode_key(struct inode *inode, struct vg_key *k)
{
	k->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	k->ino = BPF_CORE_READ(inode, i_ino);
}

/* FNV-1a 64 over a NUL-terminated name; the Go side computes the same. */
static __always_inline __u64 vg_hash_name(const char *buf)
{
	__u64 h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < VG_NAME_MAX; i++) {
		char c = buf[i];
		if (!c)
			break;
		h ^= (__u8)c;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* The result of matching a dentry against the watch set. */
struct vg_hit {
	struct vg_watch *w;
	struct vg_key file;  /* the dentry's inode */
	struct vg_key dir;   /* anchor: parent (name match) or the watched ancestor */
	__u32 match;	     /* enum vg_match, 0 when nothing matched */
	__u32 depth;	     /* ancestor levels walked to the anchor */
};

/* Is (parent, name of d) a watched path? Used when the inode itself is not
 * watched: the file at a watched path was replaced by another inode. */
static __always_inline struct vg_watch *vg_match_name(struct dentry *d, struct vg_key *pkey,
						       struct vg_scratch *s)
{
	/* An unhashed dentry no longer stands at its name: the file that a rename
	 * replaced (or an unlinked one) keeps its parent and name while someone
	 * holds it open. A write to it is not a write to the watched path. */
	if (!BPF_CORE_READ(d, d_hash.pprev))
		return NULL;
	struct dentry *parent = BPF_CORE_READ(d, d_parent);
	struct inode *pinode = BPF_CORE_READ(parent, d_inode);
	if (!pinode)
		return NULL;
	vg_inode_key(pinode, pkey);
	struct vg_watch *pw = bpf_map_lookup_elem(&watched, pkey);
	if (!pw || !(pw->flags & VG_W_NAMES))
		return NULL;
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (bpf_probe_read_kernel_str(s->name, sizeof(s->name), name) < 0)
		return NULL;
	struct vg_name_key nk = {
		.dev = pkey->dev,
		.dir_ino = pkey->ino,
		.hash = vg_hash_name(s->name),
	};
	return bpf_map_lookup_elem(&names, &nk);
}

/* Walk up from the directory cur (included) looking for a recursively
 * watched directory (or an anchor) whose depth reaches that far. */
static __always_inline struct vg_watch *vg_match_tree(struct dentry *cur, struct vg_key *akey,
						       __u32 *depth)
{
	for (__u32 i = 0; i < VG_DEPTH_MAX; i++) {
		if (i >= vg_max_depth)
			break;
		struct inode *inode = BPF_CORE_READ(cur, d_inode);
		if (!inode)
			break;
		vg_inode_key(inode, akey);
		struct vg_watch *w = bpf_map_lookup_elem(&watched, akey);
		if (w && (w->flags & (VG_W_RECURSIVE | VG_W_ANCHOR)) && (!w->depth || i < w->depth)) {
			*depth = i + 1;
			return w;
		}
		struct dentry *up = BPF_CORE_READ(cur, d_parent);
		if (up == cur)
			break;
		cur = up;
	}
	return NULL;
}

/* Walk up from d's parent looking for a recursively watched directory. */
static __always_inline struct vg_watch *vg_match_ancestor(struct dentry *d, struct vg_key *akey,
							   __u32 *depth)
{
	return vg_match_tree(BPF_CORE_READ(d, d_parent), akey, depth);
}

/*
 * Match a dentry: by inode, then by (parent, name), then (when ancestors is
 * set, for creations and renames) by a recursively watched ancestor.
 */
static __always_inline bool vg_match_dentry(struct dentry *d, struct vg_hit *hit, bool ancestors,
					    struct vg_scratch *s)
{
	struct inode *inode = BPF_CORE_READ(d, d_inode);
	if (inode) {
		vg_inode_key(inode, &hit->file);
		hit->w = bpf_map_lookup_elem(&watched, &hit->file);
		if (hit->w && (hit->w->flags & (VG_W_FILE | VG_W_RECURSIVE))) {
			hit->match = VG_M_INODE;
			struct inode *pinode = BPF_CORE_READ(d, d_parent, d_inode);
			if (pinode)
				vg_inode_key(pinode, &hit->dir);
			hit->depth = 1;
			return true;
		}
	}
	hit->w = vg_match_name(d, &hit->dir, s);
	if (hit->w) {
		hit->match = VG_M_NAME;
		hit->depth = 1;
		return true;
	}
	if (ancestors) {
		hit->w = vg_match_ancestor(d, &hit->dir, &hit->depth);
		if (hit->w) {
			hit->match = VG_M_ANCESTOR;
			return true;
		}
	}
	return false;
}

/* Start a record in the per-CPU scratch buffer, with the actor filled in. */
static __always_inline struct vg_scratch *vg_begin(__u32 op, __u32 hook)
{
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return NULL;
	struct vg_event *e = &s->ev;
	__builtin_memset(e, 0, sizeof(*e));
	e->hdr.type = VG_T_FILE;
	e->hdr.cpu = bpf_get_smp_processor_id();
	e->hdr.ts = bpf_ktime_get_boot_ns();
	e->op = op;
	e->hook = hook;

	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->ppid = BPF_CORE_READ(t, real_parent, tgid);
	e->euid = BPF_CORE_READ(t, cred, euid.val);
	e->egid = BPF_CORE_READ(t, cred, egid.val);
	if (bpf_core_field_exists(t->loginuid)) {
		e->auid = BPF_CORE_READ(t, loginuid.val);
		e->sessionid = BPF_CORE_READ(t, sessionid);
	} else {
		e->auid = (__u32)-1;
		e->sessionid = (__u32)-1;
	}
	e->mntns = BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum);
	e->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__u32 tgid = e->pid;
	struct vg_lineage *l = bpf_map_lookup_elem(&lineage, &tgid);
	if (l) {
		e->pkg_root = l->root;
		e->pkg_mgr = l->mgr;
		e->pkg_flags = l->flags;
	}
	return s;
}

/* Append one NUL-terminated string at *off; returns its length with NUL.
 * user says src is in user memory. */
static __always_inline int vg_put_any_str(struct vg_scratch *s, __u32 *off, const void *src, bool user)
{
	__u32 o = *off;
	/* Mask first, then compare, with a barrier between the load and the
	 * mask so the compiler cannot fold the mask into the comparison: the
	 * verifier needs the masked value to bound the write. */
	asm volatile("" : "+r"(o));
	o &= VG_DATA_MASK;
	if (o > VG_DATA_SIZE - VG_NAME_MAX)
		return -1;
	int n = user ? bpf_probe_read_user_str(&s->data[o], VG_NAME_MAX, src)
		     : bpf_probe_read_kernel_str(&s->data[o], VG_NAME_MAX, src);
	if (n <= 0)
		return -1;
	*off = o + n;
	return n;
}

static __always_inline int vg_put_str(struct vg_scratch *s, __u32 *off, const void *src)
{
	return vg_put_any_str(s, off, src, false);
}

/* Append a string, or an empty one (its NUL alone) where src is NULL or
 * cannot be read: a record's string list keeps its shape. */
static __always_inline void vg_put_str0(struct vg_scratch *s, __u32 *off, const void *src, bool user)
{
	if (src && vg_put_any_str(s, off, src, user) > 0)
		return;
	__u32 o = *off;
	asm volatile("" : "+r"(o));
	o &= VG_DATA_MASK;
	if (o > VG_DATA_SIZE - VG_NAME_MAX)
		return;
	s->data[o] = 0;
	*off = o + 1;
}

/*
 * Append the components of d, leaf first, up to `levels` of them (the anchor
 * itself excluded). Returns the bytes written.
 */
static __always_inline __u32 vg_put_rel(struct vg_scratch *s, __u32 *off, struct dentry *d,
					__u32 levels, bool *trunc)
{
	__u32 start = *off;
	struct dentry *cur = d;
	for (__u32 i = 0; i < VG_DEPTH_MAX; i++) {
		if (i >= levels)
			return *off - start;
		if (vg_put_str(s, off, BPF_CORE_READ(cur, d_name.name)) < 0)
			break;
		cur = BPF_CORE_READ(cur, d_parent);
	}
	*trunc = true;
	return *off - start;
}

/* Append the absolute path of (dentry, vfsmount), crossing mounts. */
static __always_inline __u32 vg_put_abs(struct vg_scratch *s, __u32 *off, struct dentry *d,
					struct vfsmount *vfsmnt, bool *trunc)
{
	__u32 start = *off;
	struct mount *mnt = container_of(vfsmnt, struct mount, mnt);
	for (__u32 i = 0; i < VG_DEPTH_MAX; i++) {
		struct dentry *mroot = BPF_CORE_READ(vfsmnt, mnt_root);
		if (d == mroot) {
			struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
			if (parent == mnt)
				return *off - start;
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = parent;
			vfsmnt = &parent->mnt;
			continue;
		}
		struct dentry *up = BPF_CORE_READ(d, d_parent);
		if (up == d)
			return *off - start;
		if (vg_put_str(s, off, BPF_CORE_READ(d, d_name.name)) < 0)
			break;
		d = up;
	}
	*trunc = true;
	return *off - start;
}

static __always_inline void vg_put_exe(struct vg_scratch *s, __u32 *off)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct file *exe = BPF_CORE_READ(t, mm, exe_file);
	if (!exe)
		return;
	bool trunc = false;
	s->ev.exe_len = vg_put_abs(s, off, BPF_CORE_READ(exe, f_path.dentry),
				   BPF_CORE_READ(exe, f_path.mnt), &trunc);
	if (trunc)
		s->ev.flags |= VG_F_EXE_TRUNC;
}

/* Count the match on the entry and in the hook's counters. */
static __always_inline void vg_count_match(struct vg_watch *w, __u32 hook)
{
	if (w)
		__sync_fetch_and_add(&w->matches, 1);
	struct vg_counters *c = vg_counters();
	if (c)
		c->matched[hook & (VG_H_SLOTS - 1)]++;
}

/* Finish the record (exe path last) and hand it to the ring buffer. */
static __always_inline int vg_emit(struct vg_scratch *s, __u32 off)
{
	vg_put_exe(s, &off);
	__u32 size = sizeof(struct vg_event) + (off & VG_DATA_MASK);
	if (size > sizeof(struct vg_event) + VG_DATA_SIZE)
		size = sizeof(struct vg_event) + VG_DATA_SIZE;
	s->ev.hdr.size = size;
	__u32 hook = s->ev.hook;
	struct vg_counters *c = vg_counters();
	if (bpf_ringbuf_output(&events, s, size, 0) == 0) {
		if (c)
			c->emitted[hook & (VG_H_SLOTS - 1)]++;
		return 0;
	}
	if (c)
		c->lost[hook & (VG_H_SLOTS - 1)]++;
	return -1;
}

/* Fill the record's match fields from a hit. */
static __always_inline void vg_set_hit(struct vg_event *e, struct vg_hit *hit)
{
	e->match = hit->match;
	e->watch_id = hit->w ? hit->w->id : 0;
	e->file = hit->file;
	e->dir = hit->dir;
}

/*
 * When a replaced file is seen through its watched name, follow the new
 * inode at once, so that nothing written to it is missed.
 */
static __always_inline bool vg_reseed(struct vg_key *k, struct vg_watch *w)
{
	/* An anchor's matches are only reported: user space decides what to follow. */
	if (!w || !k->ino || (w->flags & VG_W_ANCHOR))
		return false;
	struct vg_watch nw = {
		.id = w->id,
		.flags = VG_W_FILE | VG_W_RESEEDED,
	};
	return bpf_map_update_elem(&watched, k, &nw, BPF_NOEXIST) == 0;
}

/*
 * A change through an open file: the body every write-type hook shares. Only
 * watched files cost more than two map lookups. flags are the record's own
 * (VG_F_*); ustr2, when set, is a string in user memory that becomes path2
 * (VG_F_STR2: an attribute's name).
 */
static __always_inline int vg_file_op_ext(struct file *file, __u32 op, __u32 hook, __u64 arg1,
					  __u64 arg2, __u32 mode, __u32 uid, __u32 gid, __u32 flags,
					  const char *ustr2)
{
	vg_count_hit(hook);
	if (!file)
		return 0;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (!inode)
		return 0;
	struct vg_key k;
	vg_inode_key(inode, &k);
	struct vg_watch *w = bpf_map_lookup_elem(&watched, &k);
	if (w && !(w->flags & VG_W_FILE))
		w = NULL;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct vg_scratch *s = NULL;
	__u32 match = VG_M_INODE;
	struct vg_key dir = {};
	if (!w) {
		/* Cheap pre-check before touching the scratch buffer. */
		struct inode *pinode = BPF_CORE_READ(d, d_parent, d_inode);
		if (!pinode)
			return 0;
		vg_inode_key(pinode, &dir);
		struct vg_watch *pw = bpf_map_lookup_elem(&watched, &dir);
		if (!pw || !(pw->flags & VG_W_NAMES))
			return 0;
		s = vg_scratch();
		if (!s)
			return 0;
		w = vg_match_name(d, &dir, s);
		if (!w)
			return 0;
		match = VG_M_NAME;
	}
	if (vg_is_self())
		return 0;
	vg_count_match(w, hook);
	s = vg_begin(op, hook);
	if (!s)
		return 0;
	struct vg_event *e = &s->ev;
	e->match = match;
	if (flags)
		e->flags = flags;
	e->watch_id = w->id;
	e->file = k;
	e->arg1 = arg1;
	e->arg2 = arg2;
	e->mode = mode;
	e->attr_uid = uid;
	e->attr_gid = gid;
	if (match == VG_M_NAME) {
		e->dir = dir;
		if (vg_reseed(&k, w))
			e->flags |= VG_F_RESEEDED;
	} else {
		struct inode *pinode = BPF_CORE_READ(d, d_parent, d_inode);
		if (pinode)
			vg_inode_key(pinode, &e->dir);
	}
	__u32 off = 0;
	bool trunc = false;
	e->path_len = vg_put_rel(s, &off, d, 1, &trunc);
	if (ustr2) {
		__u32 start = off;
		vg_put_str0(s, &off, ustr2, true);
		e->path2_len = off - start;
		e->flags |= VG_F_STR2;
	}
	return vg_emit(s, off);
}

static __always_inline int vg_file_op_attr(struct file *file, __u32 op, __u32 hook, __u64 arg1,
					   __u64 arg2, __u32 mode, __u32 uid, __u32 gid)
{
	return vg_file_op_ext(file, op, hook, arg1, arg2, mode, uid, gid, 0, NULL);
}

static __always_inline int vg_file_op(struct file *file, __u32 op, __u32 hook, __u64 arg1)
{
	return vg_file_op_attr(file, op, hook, arg1, 0, 0, 0, 0);
}

#define FMODE_CREATED 0x100000

/* A file that an open just created (FMODE_CREATED): matched by name or a
 * watched ancestor, followed at once (reseeded), reported with its path. */
static __always_inline int vg_created(struct file *file, __u32 hook)
{
	if (vg_is_self())
		return 0;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return 0;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct vg_hit hit = {};
	if (!vg_match_dentry(d, &hit, true, s))
		return 0;
	vg_count_match(hit.w, hook);
	bool reseeded = hit.match != VG_M_INODE && vg_reseed(&hit.file, hit.w);
	s = vg_begin(VG_OP_CREATE, hook);
	if (!s)
		return 0;
	struct vg_event *e = &s->ev;
	vg_set_hit(e, &hit);
	if (reseeded)
		e->flags |= VG_F_RESEEDED;
	e->mode = BPF_CORE_READ(file, f_inode, i_mode);
	__u32 off = 0;
	bool trunc = false;
	e->path_len = vg_put_rel(s, &off, d, hit.depth, &trunc);
	if (trunc)
		e->flags |= VG_F_PATH_TRUNC;
	return vg_emit(s, off);
}

/* Start a pending operation from a hit; the caller fills the rest. */
static __always_inline struct vg_pending *vg_pend(struct vg_scratch *s, __u32 op, __u32 hook,
						   struct vg_hit *hit)
{
	struct vg_pending *p = &s->pend;
	__builtin_memset(p, 0, sizeof(*p));
	p->op = op;
	p->hook = hook;
	p->match = hit->match;
	p->watch_id = hit->w ? hit->w->id : 0;
	p->file = hit->file;
	p->dir = hit->dir;
	p->depth = hit->depth;
	vg_count_match(hit->w, hook);
	return p;
}

/*
 * A mount, move_mount or umount pends under its own key (the task's id with
 * a bit no task id has): a mount runs other hooked functions inside it (an
 * overlay's fill_super makes, renames and removes entries and sets xattrs
 * in its work directory), and their ends must neither take nor drop it.
 */
#define VG_PENDING_MOUNT (1ULL << 63)

static __always_inline __u64 vg_pending_key(__u32 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (op == VG_OP_MOUNT || op == VG_OP_UMOUNT)
		id |= VG_PENDING_MOUNT;
	return id;
}

static __always_inline void vg_pend_store(struct vg_pending *p)
{
	__u64 id = vg_pending_key(p->op);
	bpf_map_update_elem(&pending, &id, p, BPF_ANY);
}

#define VG_MAX_ERRNO 4095

/*
 * Finish the calling task's pending operation with the function's result:
 * keep the map in step (drop a replaced or deleted inode, undo a reseed that
 * did not happen) and emit the record. ret is the return register: an int
 * (its low 32 bits count) unless the pending operation says the function
 * returns a pointer (vfs_mkdir since 6.15: the new dentry, or ERR_PTR). abs
 * (a constant at each call site) walks the path absolute through its mount:
 * mounts and unmounts. hook is the operation the caller ends: a pending one
 * of another hook is stale and dropped.
 */
static __always_inline int vg_finish_any(long ret, bool abs, __u32 hook)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (hook == VG_H_PATH_MOUNT || hook == VG_H_MOVE_MOUNT || hook == VG_H_PATH_UMOUNT)
		id |= VG_PENDING_MOUNT; /* vg_pending_key */
	struct vg_pending *p = bpf_map_lookup_elem(&pending, &id);
	if (!p)
		return 0;
	if (p->hook != hook) {
		/* Left by another hook whose end never came (an operation that
		 * failed before it, on a kernel where that end is not seen): stale. */
		bpf_map_delete_elem(&pending, &id);
		return 0;
	}
	struct dentry *d = (struct dentry *)p->dentry;
	if (p->ret_ptr) {
		if ((unsigned long)ret >= (unsigned long)-VG_MAX_ERRNO) {
			/* an error pointer: the errno */
		} else {
			if (ret)
				d = (struct dentry *)ret; /* the dentry the file system made */
			ret = 0;
		}
	} else {
		ret = (int)ret;
	}
	struct vg_scratch *s = vg_begin(p->op, p->hook);
	if (!s) {
		bpf_map_delete_elem(&pending, &id);
		return 0;
	}
	struct vg_event *e = &s->ev;
	e->match = p->match;
	e->flags = p->flags;
	e->watch_id = p->watch_id;
	e->file = p->file;
	e->file2 = p->file2;
	e->dir = p->dir;
	e->dir2 = p->dir2;
	e->arg1 = p->arg1;
	e->arg2 = p->arg2;
	e->mode = p->mode;
	e->attr_uid = p->uid;
	e->attr_gid = p->gid;
	e->ret = ret;
	if (ret != 0) {
		if (p->reseeded)
			bpf_map_delete_elem(&watched, &p->file2);
		e->flags &= ~VG_F_RESEEDED;
	} else {
		struct inode *inode = (struct inode *)p->inode;
		bool gone = inode && BPF_CORE_READ(inode, i_nlink) == 0;
		if (gone)
			e->flags |= VG_F_GONE;
		/* VG_DROP_GONE: only when the last link went (another name may
		 * still be the watched path's). */
		if (p->drop_file && p->file.ino && (p->drop_file != VG_DROP_GONE || gone))
			bpf_map_delete_elem(&watched, &p->file);
	}
	if (p->fill_file && ret == 0 && d) {
		struct inode *inode = BPF_CORE_READ(d, d_inode);
		if (inode) {
			vg_inode_key(inode, &e->file);
			e->mode = BPF_CORE_READ(inode, i_mode);
		}
	}
	__u32 off = 0;
	bool trunc = false;
	if (abs && d && p->mnt) {
		e->path_len = vg_put_abs(s, &off, d, (struct vfsmount *)p->mnt, &trunc);
		e->flags |= VG_F_PATH_ABS;
	} else if (d) {
		e->path_len = vg_put_rel(s, &off, d, p->depth, &trunc);
	}
	if (p->flags & VG_F_STR2) {
		/* A string, not a path: put even when empty (a mount's source may
		 * be), then a mount's filesystem type. */
		int n = vg_put_str(s, &off, p->name2);
		if (n > 0) {
			e->path2_len = n;
			if (p->op == VG_OP_MOUNT || p->op == VG_OP_UMOUNT) {
				n = vg_put_str(s, &off, p->str3);
				if (n > 0)
					e->path2_len += n;
			}
		}
	} else if (p->name2[0]) {
		int n = vg_put_str(s, &off, p->name2);
		if (n > 0)
			e->path2_len = n;
	}
	if (trunc)
		e->flags |= VG_F_PATH_TRUNC;
	bpf_map_delete_elem(&pending, &id);
	return vg_emit(s, off);
}

static __always_inline int vg_finish(long ret, __u32 hook)
{
	return vg_finish_any(ret, false, hook);
}

/*
 * An operation on the file at dentry d (its extended attributes, its inode
 * flags, or a name created or removed in a watched place): matched by inode,
 * by watched name or by a watched ancestor, and left pending for its
 * function's return. NULL when it concerns nothing watched.
 */
static __always_inline struct vg_pending *vg_pend_dentry(struct dentry *d, __u32 op, __u32 hook)
{
	vg_count_hit(hook);
	if (!d || vg_is_self())
		return NULL;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return NULL;
	struct vg_hit hit = {};
	if (!vg_match_dentry(d, &hit, true, s))
		return NULL;
	struct vg_pending *p = vg_pend(s, op, hook, &hit);
	p->dentry = (__u64)d;
	return p;
}

/* A mount change: not matched here (user space knows which watched paths
 * lie at or below a mountpoint), so every one is pending. */
static __always_inline struct vg_pending *vg_pend_mount(__u32 op, __u32 hook)
{
	vg_count_hit(hook);
	if (vg_is_self())
		return NULL;
	struct vg_scratch *s = vg_scratch();
	if (!s)
		return NULL;
	struct vg_hit hit = {.match = VG_M_MOUNT};
	struct vg_pending *p = vg_pend(s, op, hook, &hit);
	p->flags |= VG_F_STR2;
	return p;
}

/* A mount's source (its device name) and filesystem type, as strings. */
static __always_inline void vg_mount_source(struct vg_pending *p, struct vfsmount *vfsmnt)
{
	struct mount *m = container_of(vfsmnt, struct mount, mnt);
	bpf_probe_read_kernel_str(p->name2, sizeof(p->name2), BPF_CORE_READ(m, mnt_devname));
	bpf_probe_read_kernel_str(p->str3, sizeof(p->str3), BPF_CORE_READ(vfsmnt, mnt_sb, s_type, name));
}

/* ---- Container identity: cgroup creation (issue 17: i17-ctr) ----
 * One VG_T_CGROUP record per cgroup created on the default (v2) hierarchy,
 * the one bpf_get_current_cgroup_id() names: its id (the kernfs node id, the
 * directory's inode number in cgroupfs), level and path, relative to the
 * hierarchy's root. User space keeps an id -> path cache from them, so that a
 * record made by a process moved into a new container's cgroup right after
 * its creation finds the path without reading cgroupfs later. cgroup v1
 * hierarchies number their nodes apart (the ids could collide) and are
 * passed over: the default hierarchy's hierarchy_id is 0. */
struct vg_cgroup_rec {
	struct vg_cgroup_event ev;
	char path[VG_PATH_MAX];
};

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(vg_cgroup_mkdir, struct cgroup *cgrp, const char *path)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return 0;
	struct vg_cgroup_rec *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0;
	r->ev.hdr.type = VG_T_CGROUP;
	r->ev.hdr.cpu = bpf_get_smp_processor_id();
	r->ev.hdr.ts = bpf_ktime_get_boot_ns();
	r->ev.id = BPF_CORE_READ(cgrp, kn, id);
	r->ev.level = BPF_CORE_READ(cgrp, level);
	r->ev._pad = 0;
	int n = bpf_probe_read_kernel_str(r->path, sizeof(r->path), path);
	if (n < 0)
		n = 0;
	r->ev.path_len = n;
	r->ev.hdr.size = sizeof(r->ev) + (__u32)n;
	bpf_ringbuf_submit(r, 0);
	return 0;
}
/* ---- end of container identity ---- */

#endif

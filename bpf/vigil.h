/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The contract between every vigil BPF object and the Go side: the record
 * layout, the map key and value types, and every constant Go needs. Fixed-width
 * types and explicit padding only. The Go types and constants are generated
 * from the objects' BTF (cmd/contractgen, `make elf`), and BTF carries structs
 * and enums but not #defines: a constant Go needs is an enumerator here, and
 * each enum is kept in the BTF by the anchors at the end of this file.
 */
#ifndef VIGIL_H
#define VIGIL_H

/* Sizes and bounds. */
enum vg_limit {
	VG_COMM_LEN = 16,
	VG_NAME_MAX = 256,  /* one dentry name, with its NUL */
	VG_PATH_MAX = 1024, /* one path in a record: power of two */
	VG_DEPTH_MAX = 32,  /* compile-time bound of every dentry walk */
};

/* Record types: the first field of every record. */
enum vg_type {
	VG_T_FILE = 1,
	VG_T_CGROUP = 2, /* a cgroup was created: struct vg_cgroup_event */
};

/* What happened to the file. */
enum vg_op {
	VG_OP_WRITE = 1, /* vfs_fallocate and fallocate(2): arg1 the length, arg2 the mode */
	VG_OP_TRUNCATE = 2,
	VG_OP_MMAP = 3,
	VG_OP_CREATE = 4,
	VG_OP_RENAME = 5,
	VG_OP_UNLINK = 6,
	VG_OP_LINK = 7,
	VG_OP_SETATTR = 8, /* chmod, chown, utimes; arg1 holds the ATTR_* mask */
	VG_OP_MKDIR = 9,   /* mode: the new directory's mode */
	VG_OP_RMDIR = 10,
	VG_OP_SETXATTR = 11,	/* path2 (VG_F_STR2): the attribute's name; arg1: XATTR_CREATE/REPLACE */
	VG_OP_REMOVEXATTR = 12, /* path2 (VG_F_STR2): the attribute's name */
	VG_OP_SETFLAGS = 13,	/* inode flags: arg1 the FS_*_FL flags, arg2 the FS_XFLAG_* flags asked
				 * for, where known (VG_F_FLAGS, VG_F_XFLAGS) */
	VG_OP_SYMLINK = 14,	/* path2 (VG_F_STR2): the link's target, as given */
	VG_OP_MKNOD = 15,	/* mode: type and permissions; arg1: the device (major << 20 | minor) */
	VG_OP_MOUNT = 16,	/* path: the mountpoint; path2 (VG_F_STR2): the source, then the
				 * filesystem type when known (two NUL-terminated strings); arg1:
				 * MS_* flags (mount) or MOVE_MOUNT_* flags (move_mount, with
				 * VG_F_MOVE_MOUNT) */
	VG_OP_UMOUNT = 17,	/* path: the mountpoint; arg1: the umount flags */
};

/* How the record's file matched the watch set. */
enum vg_match {
	VG_M_INODE = 1,	   /* the inode is in the watched map */
	VG_M_NAME = 2,	   /* (parent, name) is a watched path: a replaced file */
	VG_M_ANCESTOR = 3, /* a recursively watched directory is an ancestor */
	VG_M_PATH = 4,	   /* tracepoint object: a path string matched */
	VG_M_MOUNT = 5,	   /* mount and umount: not matched in the kernel (any mountpoint;
			    * user space decides what it covers). path is absolute
			    * (VG_F_PATH_ABS) or, with VG_F_USER_PATH, in the tracepoint
			    * object's user form */
};

/* Which hook emitted a record; indexes the counters. The Go side names each
 * hook by its enumerator, lower case without VG_H_ (records, metrics). */
enum vg_hook {
	VG_H_VFS_WRITE = 0,
	VG_H_VFS_WRITEV,
	VG_H_VFS_ITER_WRITE,
	VG_H_COPY_FILE_RANGE,
	VG_H_IO_WRITE,
	VG_H_NOTIFY_CHANGE,
	VG_H_VFS_RENAME,
	VG_H_VFS_UNLINK,
	VG_H_VFS_LINK,
	VG_H_FILE_OPEN,
	VG_H_MMAP,
	VG_H_SYS_EXIT,
	VG_H_SPLICE_WRITE,
	VG_H_VFS_SETXATTR,
	VG_H_VFS_REMOVEXATTR,
	VG_H_VFS_SET_ACL,    /* 6.2+: POSIX ACLs no longer go through vfs_setxattr */
	VG_H_VFS_REMOVE_ACL,
	VG_H_FILEATTR_SET,   /* vfs_fileattr_set (5.13+), or vfs_ioctl's FS_IOC_SET* before */
	VG_H_VFS_MKDIR,
	VG_H_VFS_RMDIR,
	VG_H_VFS_SYMLINK,
	VG_H_VFS_MKNOD,
	VG_H_VFS_FALLOCATE,
	VG_H_PATH_MOUNT,     /* mount(2): new, bind, move, remount */
	VG_H_MOVE_MOUNT,     /* move_mount(2): the new mount API's attach */
	VG_H_PATH_UMOUNT,
	VG_H_VFS_CREATE,     /* mknod(2) of a regular file (open's O_CREAT is security_file_open) */
	VG_H_MAX,
};

/* Package-manager lineage flags (struct vg_event.pkg_flags, struct vg_lineage.flags). */
enum vg_pkg_flag {
	VG_P_SCRIPT = 1 << 0, /* the actor is below the manager's root process (a maintainer
			       * script, a helper), not the root itself */
};

/* Watch entry flags (struct vg_watch.flags). */
enum vg_watch_flag {
	VG_W_FILE = 1 << 0,	 /* a watched file's inode */
	VG_W_NAMES = 1 << 1,	 /* a directory holding watched names */
	VG_W_RECURSIVE = 1 << 2, /* a directory watched at any depth */
	VG_W_RESEEDED = 1 << 3,	 /* added by the kernel after a replace */
	VG_W_ANCHOR = 1 << 4,	 /* a glob's or missing path's existing ancestor: creations
				  * and renames below (to depth) are reported, not followed */
};

/* Record flags (struct vg_event.flags). */
enum vg_flag {
	VG_F_PATH_TRUNC = 1 << 0, /* path walk hit its bound */
	VG_F_EXE_TRUNC = 1 << 1,  /* exe walk hit its bound */
	VG_F_EXCHANGE = 1 << 2,	  /* rename with RENAME_EXCHANGE */
	VG_F_RESEEDED = 1 << 3,	  /* the kernel added file2 to the map */
	VG_F_PATH_ABS = 1 << 4,	  /* path is absolute (from the task's root) */
	VG_F_GONE = 1 << 5,	  /* unlink/rename: the file's last link went */
	VG_F_STR2 = 1 << 6,	  /* path2 is a string (xattr name, symlink target, mount
				   * source), not a path: never joined or resolved */
	VG_F_USER_PATH = 1 << 7,  /* path is in the tracepoint object's user form (the string
				   * as given, then its base directory, leaf first) */
	VG_F_FLAGS = 1 << 8,	  /* setflags: arg1 holds the FS_*_FL flags */
	VG_F_XFLAGS = 1 << 9,	  /* setflags: arg2 holds the FS_XFLAG_* flags */
	VG_F_MOVE_MOUNT = 1 << 10, /* mount: by move_mount(2); arg1 holds MOVE_MOUNT_* */
};

struct vg_key {
	__u64 dev; /* the kernel's s_dev: major << 20 | minor */
	__u64 ino;
};

struct vg_name_key {
	__u64 dev;
	__u64 dir_ino;
	__u64 hash; /* FNV-1a 64 of the name's bytes */
};

struct vg_watch {
	__u64 id;      /* user space's watch entry id */
	__u32 flags;   /* VG_W_* */
	__u32 depth;   /* RECURSIVE/ANCHOR: levels below that match; 0 = vg_max_depth */
	__u64 matches; /* records this entry caused the kernel to try to emit */
};

struct vg_hdr {
	__u16 type; /* enum vg_type */
	__u16 size; /* whole record, header included */
	__u32 cpu;
	__u64 ts; /* bpf_ktime_get_boot_ns() */
};

/* A file operation. Three strings follow the fixed part, in this order:
 * path, path2, exe, with the lengths below (each NUL-terminated and counted
 * with its NUL; 0 when absent). A path is a list of NUL-terminated
 * components, leaf first, ending at the anchor directory (dir/dir2) or, with
 * VG_F_PATH_ABS, at the root. */
struct vg_event {
	struct vg_hdr hdr;
	__u32 op;    /* enum vg_op */
	__u32 hook;  /* enum vg_hook */
	__u32 match; /* enum vg_match */
	__u32 flags; /* VG_F_* */
	__u64 watch_id;
	struct vg_key file;  /* the inode acted on; rename: the target's old inode */
	struct vg_key file2; /* rename: the source inode, now at the target */
	struct vg_key dir;   /* anchor of path */
	struct vg_key dir2;  /* anchor of path2 */
	__s64 ret;	     /* the operation's result where known, else 0 */
	__u64 arg1;	     /* op specific: see docs/events.md */
	__u64 arg2;
	__u32 mode;	     /* setattr: the new mode; create: the new file's mode */
	__u32 attr_uid;	     /* setattr: the new owner */
	__u32 attr_gid;
	__u32 pkg_root;	     /* tgid of the package manager at the root of the actor's
			      * lineage; 0 when the actor is below none */
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 auid;
	__u32 sessionid;
	__u32 mntns;
	__u64 cgroup;
	char comm[VG_COMM_LEN];
	__u16 path_len;
	__u16 path2_len;
	__u16 exe_len;
	__u8 pkg_mgr;	/* which manager: the id user space gave its comm in pkg_comms */
	__u8 pkg_flags; /* VG_P_* */
};

/* A package manager's process tree, kept per tgid by the kernel (map lineage). */
struct vg_lineage {
	__u32 root; /* tgid of the manager process at the root */
	__u8 mgr;   /* pkg_comms id */
	__u8 flags; /* VG_P_* */
	__u16 _pad;
};

/* A cgroup created (tp_btf/cgroup_mkdir): its id and level, then its path
 * (NUL-terminated, relative to its hierarchy's root, starting with "/"),
 * path_len bytes with the NUL. */
struct vg_cgroup_event {
	struct vg_hdr hdr;
	__u64 id;
	__u32 level;
	__u16 path_len;
	__u16 _pad;
};

/* Kernel-side counters, one per-CPU array element, indexed by hook (masked
 * with VG_H_SLOTS - 1, which the verifier can bound). */
#define VG_H_SLOTS 32
_Static_assert(VG_H_MAX <= VG_H_SLOTS, "hook slots");
struct vg_counters {
	__u64 hits[VG_H_SLOTS];	   /* hook ran */
	__u64 matched[VG_H_SLOTS]; /* hook matched the watch set */
	__u64 emitted[VG_H_SLOTS]; /* record reached the ring buffer */
	__u64 lost[VG_H_SLOTS];	   /* ring buffer full: record dropped */
};

/* Anchors: no map or program refers to these types, so without a global of
 * each the compiler would leave them out of the object's BTF, where the Go
 * generator reads them. Nothing reads or writes them. */
const struct vg_event *vg_keep_event __attribute__((unused));
const struct vg_counters *vg_keep_counters __attribute__((unused));
const enum vg_type *vg_keep_type __attribute__((unused));
const enum vg_op *vg_keep_op __attribute__((unused));
const enum vg_match *vg_keep_match __attribute__((unused));
const enum vg_hook *vg_keep_hook __attribute__((unused));
const enum vg_watch_flag *vg_keep_watch_flag __attribute__((unused));
const enum vg_flag *vg_keep_flag __attribute__((unused));
const enum vg_limit *vg_keep_limit __attribute__((unused));
const enum vg_pkg_flag *vg_keep_pkg_flag __attribute__((unused));
const struct vg_lineage *vg_keep_lineage __attribute__((unused));
const struct vg_cgroup_event *vg_keep_cgroup_event __attribute__((unused));

_Static_assert(sizeof(struct vg_key) == 16, "vg_key layout");
_Static_assert(sizeof(struct vg_name_key) == 24, "vg_name_key layout");
_Static_assert(sizeof(struct vg_watch) == 24, "vg_watch layout");
_Static_assert(sizeof(struct vg_hdr) == 16, "vg_hdr layout");
_Static_assert(sizeof(struct vg_event) == 216, "vg_event layout");
_Static_assert(sizeof(struct vg_lineage) == 8, "vg_lineage layout");
_Static_assert(sizeof(struct vg_cgroup_event) == 32, "vg_cgroup_event layout");
#endif

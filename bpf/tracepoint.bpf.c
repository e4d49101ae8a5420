// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tracepoint object, for kernels without kprobes (and the last fallback
 * everywhere): BTF-typed raw syscall tracepoints. File descriptors are
 * resolved to the open file in the kernel at syscall entry.
 */
#include "common.bpf.h"

/* x86_64 syscall numbers. */
#define NR_write 1
#define NR_pwrite64 18
#define NR_writev 20
#define NR_pwritev 296
#define NR_pwritev2 328

static __always_inline struct file *vg_fd_file(struct task_struct *t, long fd)
{
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = t->files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tp_sys_enter, struct pt_regs *regs, long id)
{
	switch (id) {
	case NR_write:
	case NR_pwrite64:
	case NR_writev:
	case NR_pwritev:
	case NR_pwritev2:
		break;
	default:
		return 0;
	}
	struct task_struct *t = bpf_get_current_task_btf();
	struct file *f = vg_fd_file(t, regs->di);
	return vg_file_op(f, VG_OP_WRITE, VG_H_SYS_ENTER, id);
}

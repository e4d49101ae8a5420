// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The kprobe object: VFS functions hooked at entry (and return where the
 * result matters). Built once per kernel major.minor against that kernel's
 * BTF; per-kernel facts come in as -D flags from elf/matrix.
 */
#include "common.bpf.h"

SEC("kprobe/vfs_write")
int BPF_KPROBE(kp_vfs_write, struct file *file)
{
	return vg_file_op(file, VG_OP_WRITE, VG_H_VFS_WRITE, 0);
}

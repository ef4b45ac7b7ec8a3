// SPDX-License-Identifier: GPL-2.0
/*
 * floor.bpf.c: the benchmark's floor on file creation. Two BPF LSM programs that decide nothing, on the
 * two hooks every creation passes with slurm-krsi's programs attached: inode_create (which judges
 * creations on file systems that do not call inode_init_security, or call it too early) and
 * inode_init_security (which judges the final mode on those that do; bpf/krsi.bpf.c says why both). On
 * mdstress slurm-krsi's own programs return after a test or two; what these cost is the price of having a
 * program on those hooks at all on this kernel (the BPF trampoline around each), which no policy that
 * judges creations can avoid. The bench driver loads and attaches them itself, with the agent stopped.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/inode_create")
int BPF_PROG(floor_inode_create, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	return ret;
}

SEC("lsm/inode_init_security")
int BPF_PROG(floor_inode_init_security, struct inode *inode, struct inode *dir, const struct qstr *qstr)
{
	return 0;
}

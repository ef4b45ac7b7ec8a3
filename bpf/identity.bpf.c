// SPDX-License-Identifier: GPL-2.0
/*
 * identity.bpf.c: tells user space how the kernel identifies files. The agent opens each allowlisted
 * file (suid allowlist, ssh clients), then reads this task_file iterator, which reports the reader's own
 * open files as (fd, s_dev, i_ino, mode): exactly the identity bprm_creds_from_file and socket_listen
 * compare against, so no device-number encoding or file-system quirk sits between the two.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "krsi.h"

char LICENSE[] SEC("license") = "GPL";

const struct krsi_file_identity *unused_identity __attribute__((unused));

SEC("iter/task_file")
int krsi_file_identity(struct bpf_iter__task_file *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct krsi_file_identity rec = {};
	struct inode *inode;

	/* the iterator runs in the reader's context: report only the reader's own files */
	if (!task || !file || task->tgid != (bpf_get_current_pid_tgid() >> 32))
		return 0;
	inode = file->f_inode;
	rec.fd = ctx->fd;
	rec.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	rec.ino = BPF_CORE_READ(inode, i_ino);
	rec.mode = BPF_CORE_READ(inode, i_mode);
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * preflight.bpf.c: the smallest BPF LSM program. The preflight loads it (never attaches it) to learn
 * whether this kernel accepts BPF LSM programs at all before anything else is tried, so that a kernel
 * without BPF LSM gets one clear message instead of a verifier or libbpf error from the real object.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/file_open")
int BPF_PROG(krsi_preflight, struct file *file, int ret)
{
	return ret;
}

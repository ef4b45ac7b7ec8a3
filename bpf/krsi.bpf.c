// SPDX-License-Identifier: GPL-2.0
/*
 * krsi.bpf.c: the five policies of slurm-krsi as BPF LSM programs, per job (by the job's cgroup) and
 * per uid.
 *
 * Every program starts with the cheapest test that lets an unrelated action go. Where the hook's own
 * arguments show the action cannot be refused (a chmod or create whose mode has no forbidden bit), it
 * returns before looking at the uid at all. Otherwise a uid is looked up in uid_bits first, a bitmap of
 * the uids that may have a policy (an array map whose lookup the verifier inlines: a few instructions,
 * no hash), and only a uid whose bit is set pays the uid_policy hash lookup. While a job is bound, the
 * task's job cgroup is asked first (current_job). Nothing counts allowed
 * actions, so these early returns change no counter. A matched action is a decision (deny or audit): it is
 * counted in a per-CPU counter whether or not it gets an event. Repeats of an action within a second are
 * folded into the next event of the same action (counted as folded, see krsi.h), and a failed reserve is
 * counted as dropped, so user space can always account for every decision:
 * decisions = events + folded + dropped.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "krsi.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * What this build is (bpf/build.sh): bpftool prog show prints it, and the agent pins this build's programs
 * and maps under a directory named after it, so that an agent of another build knows them for another's.
 */
#ifndef KRSI_BUILD_ID
#error "KRSI_BUILD_ID is defined by bpf/build.sh"
#endif
volatile const char bpf_metadata_build_id[] SEC(".rodata") = KRSI_BUILD_ID;

#define EPERM 1
#define ENOENT 2
#define AF_UNSPEC 0
#define AF_INET 2
#define AF_INET6 10
#define AF_RDS 21
#define AF_SMC 43

#define S_IFMT 00170000
#define S_IFLNK 0120000
#define S_IFDIR 0040000
#define S_IFREG 0100000
#define S_ISUID 0004000
#define S_ISGID 0002000
#define S_IWOTH 00002
/* the bits fileperms keeps users from creating or adding */
#define KRSI_FORBIDDEN_BITS (S_ISUID | S_ISGID | S_IWOTH)

#define PTRACE_MODE_ATTACH 0x02

/* POSIX ACL xattr layout (include/uapi/linux/posix_acl_xattr.h, include/uapi/linux/posix_acl.h) */
#define ACL_OTHER 0x20
#define ACL_WRITE 0x02

#define ATTR_MODE (1 << 0)

/* USER_HZ on every architecture this builds for: /proc/<pid>/stat starttime is in these ticks */
#define KRSI_NSEC_PER_USER_TICK 10000000ULL

/*
 * Signals killtasks stops: every signal whose default action terminates or stops the process. Left
 * through: 0 (existence probe), SIGCHLD(17), SIGCONT(18), SIGURG(23), SIGWINCH(28).
 */
#define KRSI_SIG_ALLOWED ((1ULL << 0) | (1ULL << 17) | (1ULL << 18) | (1ULL << 23) | (1ULL << 28))

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* readers keep a consistent value across an update (RCU) */
	__type(key, __u32);
	__type(value, struct krsi_policy);
} uid_policy SEC(".maps");

/* bound jobs: job cgroup id -> the job's own policy (krsi.h, job scoping) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);	/* readers keep a consistent value across an update (RCU) */
	__type(key, __u64);
	__type(value, struct krsi_job_binding);
} job_cgroups SEC(".maps");

/* how many jobs are bound, and at which cgroup level job cgroups are: an array map, its lookup inlined */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct krsi_job_scope);
} job_scope SEC(".maps");

/*
 * The uids that may have a uid_policy entry: bit (uid & 63) of word (uid >> 6) & (words - 1). Several
 * uids share a bit. User space sets a uid's bit before it writes the uid's policy and clears it only
 * after the entry is deleted and no other uid with a policy shares the bit, so a clear bit always means
 * "no policy" and a set bit means "look it up".
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KRSI_UID_BITMAP_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} uid_bits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct krsi_inode_key);
	__type(value, __u8);
} suid_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct krsi_inode_key);
	__type(value, __u8);
} ssh_clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct krsi_cidr_key);
	__type(value, __u8);
} connect_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct krsi_protect);
} protected SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KRSI_COUNTER_ENTRIES);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);	/* user space may resize before load */
} events SEC(".maps");

/*
 * Fold state per key (krsi.h). An entry the LRU evicts only loses the repeats it held from the log (they
 * stay counted as folded); its key's next decision gets an event of its own.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct krsi_fold_key);
	__type(value, struct krsi_fold_state);
} folds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct krsi_fold_share);
} fold_shares SEC(".maps");

/* keep the shared types in the object's BTF so the layout test can check the TypeScript side */
const struct krsi_event *unused_event __attribute__((unused));
const enum krsi_policy_id *unused_policy_id __attribute__((unused));
const enum krsi_mode *unused_mode __attribute__((unused));
const enum krsi_decision *unused_decision __attribute__((unused));
const enum krsi_counter_slot *unused_counter_slot __attribute__((unused));
const enum krsi_event_type *unused_event_type __attribute__((unused));
const enum krsi_protect_scope *unused_protect_scope __attribute__((unused));
const enum krsi_cidr_verdict *unused_cidr_verdict __attribute__((unused));
const enum krsi_fold_scope *unused_fold_scope __attribute__((unused));
const struct krsi_job_binding *unused_job_binding __attribute__((unused));
const struct krsi_job_scope *unused_job_scope __attribute__((unused));

/*
 * The bound job whose task the current task is, or NULL. Costs one array lookup while no job is bound.
 * Otherwise the task's cgroup depth is tested first (bpf_get_current_ancestor_cgroup_id reads
 * cgrp->ancestors[level], a load, under RCU): a task less than KRSI_JOB_TASK_DEPTH levels below the job
 * level is no job's task (system services, login sessions, slurmstepd in step_<n>/slurm) and costs no hash
 * lookup. A job's task is one whose job-level ancestor is bound, whatever its uid: a subordinate uid taken
 * in a user namespace, or a set-uid helper's, stays in the job's cgroup, which only root may change.
 */
static __always_inline struct krsi_job_binding *current_job(void)
{
	__u32 zero = 0;
	struct krsi_job_scope *scope = bpf_map_lookup_elem(&job_scope, &zero);
	__u64 job_cgroup;

	if (!scope || !scope->bound)
		return NULL;
	if (!bpf_get_current_ancestor_cgroup_id(scope->job_level + KRSI_JOB_TASK_DEPTH))
		return NULL;
	job_cgroup = bpf_get_current_ancestor_cgroup_id(scope->job_level);
	return bpf_map_lookup_elem(&job_cgroups, &job_cgroup);
}

/* the current task's uid's policy: the uid bitmap first, the hash lookup only for a set bit */
static __always_inline struct krsi_policy *current_uid_policy(void)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	__u32 word = (uid >> 6) & (KRSI_UID_BITMAP_WORDS - 1);
	__u64 *bits = bpf_map_lookup_elem(&uid_bits, &word);

	if (!bits || !((*bits >> (uid & 63)) & 1))
		return NULL;
	return bpf_map_lookup_elem(&uid_policy, &uid);
}

/* the policy the current task is held to: its bound job's alone, or else its uid's */
static __always_inline struct krsi_policy *current_policy(void)
{
	struct krsi_job_binding *job = current_job();

	return job ? &job->policy : current_uid_policy();
}

static __always_inline void count(__u32 policy, __u32 slot)
{
	__u32 idx = policy * KRSI_COUNTER_SLOTS + slot;
	__u64 *n = bpf_map_lookup_elem(&counters, &idx);

	if (n)
		*n += 1;
}

/*
 * What makes an action distinct, as one 64-bit fold target: mix each identifying word in. A multiply and a
 * shift per word, no loop. Two distinct actions of one uid, policy, type and decision that collide are
 * folded together for at most one window: the second is counted, and reported only as a repeat of the first.
 */
static __always_inline __u64 krsi_target(__u64 h, __u64 word)
{
	h = (h ^ word) * 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

/* a file by the kernel's identity of its inode */
static __always_inline __u64 inode_target(struct inode *inode)
{
	return krsi_target(BPF_CORE_READ(inode, i_sb, s_dev), BPF_CORE_READ(inode, i_ino));
}

/* a name in a directory: the kernel's hash and length of the name, and its first 16 bytes */
static __always_inline __u64 name_target(__u64 h, struct dentry *dentry)
{
	__u64 head[2] = {};

	bpf_probe_read_kernel(head, sizeof(head), BPF_CORE_READ(dentry, d_name.name));
	h = krsi_target(h, BPF_CORE_READ(dentry, d_name.hash_len));
	h = krsi_target(h, head[0]);
	return krsi_target(h, head[1]);
}

/*
 * Whether the ring buffer is half full and the current uid has had more than its share of the ring's
 * records (1/KRSI_FOLD_SHARE_DIVISOR) in this window, counting this decision: then its decisions fold by
 * kind. Only decisions that would have had an event while the ring was half full count against the share.
 */
static __always_inline bool over_share(__u32 uid, __u64 now)
{
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	struct krsi_fold_share *share, fresh = { .window_ns = now, .events = 1 };

	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) < size / 2)
		return false;
	share = bpf_map_lookup_elem(&fold_shares, &uid);
	if (!share || now - share->window_ns >= KRSI_FOLD_WINDOW_NS) {
		bpf_map_update_elem(&fold_shares, &uid, &fresh, BPF_ANY);
		return false;
	}
	__sync_fetch_and_add(&share->events, 1);
	return share->events > size / (sizeof(struct krsi_event) + 8) / KRSI_FOLD_SHARE_DIVISOR;
}

/* a decision of a key that had an event within the window: count it on the key */
static __always_inline bool fold(struct krsi_fold_state *state, __u32 policy, __u64 now)
{
	if (!state || now - state->last_ns >= KRSI_FOLD_WINDOW_NS)
		return false;
	__sync_fetch_and_add(&state->folded, 1);
	count(policy, KRSI_COUNTER_FOLDED);
	return true;
}

/*
 * Count a decision and start its event, or fold it (see krsi.h). `target` is what makes the action
 * distinct (krsi_target() of its identifying words). Returns true with *ep set to the reserved event,
 * which the caller fills and submits; false when the decision was folded or the ring buffer is full
 * (counted as dropped). Either way the caller applies the decision:
 *
 *	if (decision_begin(&e, KRSI_EV_CHMOD, KRSI_POLICY_FILEPERMS, decision_of(pmode), target)) {
 *		e->ino = ...;
 *		bpf_ringbuf_submit(e, 0);
 *	}
 *
 * The answer is a flag, not the pointer: the 6.1 verifier cannot tell a reserved record from NULL (it
 * prunes a NULL test only for map values and sockets), so a caller's `if (e)` on the returned pointer
 * would leave it a path where the record is never submitted. A flag is a constant on each path.
 */
static __always_inline bool decision_begin(struct krsi_event **ep, __u32 type, __u32 policy, __u32 decision, __u64 target)
{
	__u64 uid_gid = bpf_get_current_uid_gid(), now = bpf_ktime_get_boot_ns(), pid_tgid, repeats = 0;
	struct krsi_job_binding *job = current_job();
	struct krsi_fold_key key = {
		.target = target, .uid = (__u32)uid_gid, .job_id = job ? job->job_id : 0,
		.type = type, .policy = policy, .decision = decision,
	};
	struct krsi_fold_state *state, fresh = { .last_ns = now };
	struct krsi_event *e;
	bool reserved = true;

	count(policy, decision);
	state = bpf_map_lookup_elem(&folds, &key);
	if (fold(state, policy, now))
		return false;
	if (over_share(key.uid, now)) {
		key.target = 0;
		key.scope = KRSI_FOLD_KIND;
		state = bpf_map_lookup_elem(&folds, &key);
		if (fold(state, policy, now))
			return false;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(policy, KRSI_COUNTER_DROPPED);
		return false;
	}
	if (state) {
		/* take what was folded; decisions folded meanwhile on another CPU stay for the next event */
		repeats = state->folded;
		__sync_fetch_and_add(&state->folded, -repeats);
		state->last_ns = now;
	} else {
		bpf_map_update_elem(&folds, &key, &fresh, BPF_ANY);
	}
	__builtin_memset(e, 0, sizeof(*e));
	pid_tgid = bpf_get_current_pid_tgid();
	e->ts_ns = now;
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->type = type;
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->policy = policy;
	e->decision = decision;
	e->fold_scope = key.scope;
	e->repeats = repeats > 0xffffffffULL ? 0xffffffffU : repeats;
	e->job_id = key.job_id;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	*ep = e;
	barrier_var(reserved);	/* keeps the compiler from turning the flag back into a test of e */
	return reserved;
}

static __always_inline int verdict(__u8 mode)
{
	return mode == KRSI_MODE_ENFORCE ? -EPERM : 0;
}

static __always_inline __u32 decision_of(__u8 mode)
{
	return mode == KRSI_MODE_ENFORCE ? KRSI_DECISION_DENY : KRSI_DECISION_AUDIT;
}

static __always_inline void read_name(struct krsi_event *e, const unsigned char *name)
{
	bpf_probe_read_kernel_str(e->name, sizeof(e->name), name);
}

/* ---------------------------------------------------------------- fileperms */

static __always_inline __u8 fileperms_mode(void)
{
	struct krsi_policy *p = current_policy();

	return p ? p->mode[KRSI_POLICY_FILEPERMS] : KRSI_MODE_OFF;
}

/*
 * File systems that call inode_init_security once the new inode's mode is final: the umask or the
 * parent's default ACL applied (posix_acl_create), a set-gid parent's bit inherited (inode_init_owner).
 * Checked in the 6.1 source: ext4_new_inode, shmem_mknod, xfs_generic_create, btrfs_create_new_inode,
 * f2fs_init_inode_metadata, gfs2_create_inode. Their creations are judged there, on the mode the inode
 * really gets, and the create hooks leave them alone. Everywhere else (NFS, FUSE, 9p, CIFS, Lustre,
 * overlayfs' own inodes, ocfs2 and reiserfs, which call it before the ACL code runs) the create hooks
 * judge the requested mode under the umask, as the paper does: exactly one program judges a creation.
 */
#define EXT4_SUPER_MAGIC 0xEF53		/* ext2, ext3, ext4 */
#define TMPFS_MAGIC 0x01021994
#define XFS_SUPER_MAGIC 0x58465342
#define BTRFS_SUPER_MAGIC 0x9123683E
#define F2FS_SUPER_MAGIC 0xF2F52010
#define GFS2_MAGIC 0x01161970

static __always_inline bool creation_judged_on_final_mode(struct super_block *sb)
{
	unsigned long magic = sb->s_magic;

	return magic == EXT4_SUPER_MAGIC || magic == TMPFS_MAGIC || magic == XFS_SUPER_MAGIC ||
	       magic == BTRFS_SUPER_MAGIC || magic == F2FS_SUPER_MAGIC || magic == GFS2_MAGIC;
}

static __always_inline __u32 fileperms_event_type(__u32 mode)
{
	if ((mode & S_IFMT) == S_IFREG)
		return KRSI_EV_CREATE;
	if ((mode & S_IFMT) == S_IFDIR)
		return KRSI_EV_MKDIR;
	return KRSI_EV_MKNOD;
}

/*
 * A new inode on a file system that does not call inode_init_security at the right time: the bits it
 * gets are the requested mode less the umask, as the paper computes it (on file systems without POSIX
 * ACLs the VFS has applied the umask already, and applying it again changes nothing).
 */
static __always_inline int fileperms_new_inode(struct inode *dir, struct dentry *dentry, umode_t mode)
{
	struct krsi_event *e;
	__u32 umask, new_mode;
	__u8 pmode;

	/* the umask only takes bits away: a mode without a forbidden bit cannot get one */
	if (!(mode & KRSI_FORBIDDEN_BITS))
		return 0;
	if (creation_judged_on_final_mode(dir->i_sb))
		return 0;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	umask = bpf_get_current_task_btf()->fs->umask;
	new_mode = mode & ~umask;
	if (!(new_mode & KRSI_FORBIDDEN_BITS))
		return 0;

	if (decision_begin(&e, fileperms_event_type(mode), KRSI_POLICY_FILEPERMS, decision_of(pmode),
			   krsi_target(name_target(inode_target(dir), dentry), new_mode))) {
		e->req_mode = mode;
		e->umask = umask;
		e->new_mode = new_mode;
		read_name(e, dentry->d_name.name);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

SEC("lsm/inode_create")
int BPF_PROG(krsi_inode_create, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return fileperms_new_inode(dir, dentry, mode | S_IFREG);
}

SEC("lsm/inode_mknod")
int BPF_PROG(krsi_inode_mknod, struct inode *dir, struct dentry *dentry, umode_t mode, dev_t dev, int ret)
{
	if (ret)
		return ret;
	return fileperms_new_inode(dir, dentry, mode);
}

SEC("lsm/inode_mkdir")
int BPF_PROG(krsi_inode_mkdir, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return fileperms_new_inode(dir, dentry, mode | S_IFDIR);
}

/*
 * A new inode whose mode is final (see creation_judged_on_final_mode): whichever applied, the umask or
 * a default ACL of the parent (which the kernel applies instead of the umask, so a parent prepared
 * before the job can hand out other-write), the bits it really gets. A set-gid bit a directory inherits
 * from a set-gid parent is the kernel's doing (the usual group project directory) and is not held
 * against the user. An error here makes the file system abort the creation.
 *
 * O_TMPFILE inodes (no name) are left to inode_link: tmpfs calls this before applying the umask to
 * them, and an unnamed inode is reachable by nobody else until it is linked. Symlinks are always 0777
 * and grant nothing.
 *
 * No `ret` argument: its slot moved when the hook changed shape (Linux 6.6), and the BPF trampoline
 * runs the next LSM program only while every earlier one returned 0, so it would always read 0 here.
 */
SEC("lsm/inode_init_security")
int BPF_PROG(krsi_inode_init_security, struct inode *inode, struct inode *dir, const struct qstr *qstr)
{
	struct krsi_event *e;
	__u32 mode = inode->i_mode, forbidden;
	__u8 pmode;

	if (!(mode & KRSI_FORBIDDEN_BITS) || (mode & S_IFMT) == S_IFLNK || !qstr)
		return 0;
	if (!creation_judged_on_final_mode(inode->i_sb))
		return 0;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	forbidden = mode & KRSI_FORBIDDEN_BITS;
	if ((mode & S_IFMT) == S_IFDIR && dir && (dir->i_mode & S_ISGID))
		forbidden &= ~S_ISGID;
	if (!forbidden)
		return 0;

	/* the new inode and the mode it gets */
	if (decision_begin(&e, fileperms_event_type(mode), KRSI_POLICY_FILEPERMS, decision_of(pmode),
			   krsi_target(inode_target(inode), mode))) {
		e->ino = inode->i_ino;
		e->dev = inode->i_sb->s_dev;
		e->umask = bpf_get_current_task_btf()->fs->umask;
		e->new_mode = mode;
		read_name(e, qstr->name);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/*
 * Every mode change: notify_change() calls this hook for chmod, fchmod, fchmodat (chmod_common) and for
 * what the kernel does on a user's behalf with that user's credentials: overlayfs copy-up (ovl_set_attr,
 * under the mounter's credentials, so a user's own overlay in a user namespace is judged as that user),
 * ecryptfs, FAT attribute ioctls. A change is judged on what it adds: keeping a bit the inode already
 * has (chmod 0777 on a file that is 0777) and removing bits are allowed, so users can always make their
 * files safer. Symlinks have no permissions of their own.
 */
static __always_inline int fileperms_setattr(struct dentry *dentry, struct iattr *attr)
{
	struct krsi_event *e;
	struct inode *inode;
	__u32 old_mode, new_mode, added;
	__u8 pmode;

	if (!(attr->ia_valid & ATTR_MODE))
		return 0;
	new_mode = attr->ia_mode;
	/* a mode without a forbidden bit can only keep or remove bits: nothing to decide */
	if (!(new_mode & KRSI_FORBIDDEN_BITS))
		return 0;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	inode = dentry->d_inode;
	old_mode = inode->i_mode;
	if ((old_mode & S_IFMT) == S_IFLNK)
		return 0;
	added = new_mode & KRSI_FORBIDDEN_BITS & ~old_mode;
	if (!added)
		return 0;

	if (decision_begin(&e, KRSI_EV_CHMOD, KRSI_POLICY_FILEPERMS, decision_of(pmode), krsi_target(inode_target(inode), new_mode & 07777))) {
		e->ino = inode->i_ino;
		e->dev = inode->i_sb->s_dev;
		e->old_mode = old_mode;
		e->req_mode = new_mode & 07777;
		e->new_mode = (old_mode & S_IFMT) | (new_mode & 07777);
		read_name(e, dentry->d_name.name);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/*
 * The hook gained an idmap first argument in Linux 6.8 (with inode_post_setattr): the agent loads the
 * variant that matches the running kernel. No `ret` (see krsi_inode_init_security).
 */
SEC("lsm/inode_setattr")
int BPF_PROG(krsi_inode_setattr, struct dentry *dentry, struct iattr *attr)
{
	return fileperms_setattr(dentry, attr);
}

SEC("lsm/inode_setattr")
int BPF_PROG(krsi_inode_setattr_idmap, void *idmap, struct dentry *dentry, struct iattr *attr)
{
	return fileperms_setattr(dentry, attr);
}

/*
 * A hard link to an inode that already carries a forbidden bit. This closes O_TMPFILE: an anonymous
 * file is created without inode_create (and judged by nobody while it has no name), then linked into
 * place. It also covers overlayfs copying up a regular file, which links a temporary file.
 */
SEC("lsm/inode_link")
int BPF_PROG(krsi_inode_link, struct dentry *old_dentry, struct inode *dir, struct dentry *new_dentry, int ret)
{
	struct krsi_event *e;
	struct inode *inode;
	__u32 mode;
	__u8 pmode;

	if (ret)
		return ret;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	inode = old_dentry->d_inode;
	mode = inode->i_mode;
	if ((mode & S_IFMT) == S_IFLNK || !(mode & KRSI_FORBIDDEN_BITS))
		return 0;

	if (decision_begin(&e, KRSI_EV_LINK, KRSI_POLICY_FILEPERMS, decision_of(pmode), name_target(inode_target(inode), new_dentry))) {
		e->ino = inode->i_ino;
		e->dev = inode->i_sb->s_dev;
		e->old_mode = mode;
		e->new_mode = mode;
		read_name(e, new_dentry->d_name.name);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/* granted: S_IWOTH for an ACL that grants other write, 0 for one refused because it cannot be judged */
static __always_inline int fileperms_acl_decision(__u8 pmode, struct dentry *dentry, __u32 granted)
{
	struct krsi_event *e;
	struct inode *inode = BPF_CORE_READ(dentry, d_inode);

	if (decision_begin(&e, KRSI_EV_SETACL, KRSI_POLICY_FILEPERMS, decision_of(pmode), inode_target(inode))) {
		e->ino = BPF_CORE_READ(inode, i_ino);
		e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
		e->old_mode = BPF_CORE_READ(inode, i_mode);
		e->req_mode = granted;
		read_name(e, BPF_CORE_READ(dentry, d_name.name));
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/*
 * What a write of an ACL xattr means to fileperms, from its name (read once, 28 bytes covers the
 * longest name compared).
 */
enum acl_xattr_kind {
	ACL_XATTR_NONE = 0,	/* not an ACL: nothing to judge */
	ACL_XATTR_ACCESS,	/* system.posix_acl_access: its "other" entry becomes the mode's o bits */
	ACL_XATTR_DEFAULT,	/* system.posix_acl_default: inherited by every inode created below */
	ACL_XATTR_OPAQUE,	/* NFSv4 and SMB ACLs (EVERYONE@ / Everyone can be granted write): not parsed */
};

/* s starts with, or is, the string literal `lit` (compared byte by byte, unrolled at compile time) */
#define HAS_PREFIX(s, lit) has_prefix((s), lit, sizeof(lit) - 1)
#define IS_STRING(s, lit) has_prefix((s), lit, sizeof(lit))

static __always_inline bool has_prefix(const char *s, const char *prefix, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] != prefix[i])
			return false;
	return true;
}

static __always_inline enum acl_xattr_kind acl_xattr_kind(const char *name)
{
	char buf[28] = {};

	bpf_probe_read_kernel_str(buf, sizeof(buf), name);
	if (!HAS_PREFIX(buf, "system."))
		return ACL_XATTR_NONE;
	if (IS_STRING(buf, "system.posix_acl_access"))
		return ACL_XATTR_ACCESS;
	if (IS_STRING(buf, "system.posix_acl_default"))
		return ACL_XATTR_DEFAULT;
	if (HAS_PREFIX(buf, "system.nfs4_") || HAS_PREFIX(buf, "system.cifs_") || HAS_PREFIX(buf, "system.smb3_"))
		return ACL_XATTR_OPAQUE;
	return ACL_XATTR_NONE;
}

/*
 * Whether a POSIX ACL with `other_perm` in its "other" entry is refused: a default ACL granting other
 * write hands that bit to every inode created below (the kernel then ignores the umask); an access ACL's
 * "other" entry is the inode's o bits, judged like chmod on what it adds.
 */
static __always_inline bool acl_refused(enum acl_xattr_kind kind, __u16 other_perm, struct dentry *dentry)
{
	if (!(other_perm & ACL_WRITE))
		return false;
	if (kind == ACL_XATTR_DEFAULT)
		return true;
	return !(BPF_CORE_READ(dentry, d_inode, i_mode) & S_IWOTH);
}

/*
 * POSIX ACLs written as xattrs (every ACL write before Linux 6.2): the setxattr and io_uring syscalls,
 * and the kernel on a user's behalf with that user's credentials (overlayfs copying up a directory's
 * ACLs, nfsd, ksmbd), all reach this hook from __vfs_setxattr_locked with a kernel copy of the value, so
 * a racing thread cannot change what is judged.
 *
 * The value is a posix_acl_xattr blob: a 4-byte header, then 8-byte entries (le16 tag, le16 perm, le32
 * id). The kernel accepts only a valid ACL (posix_acl_valid: entries in tag order, exactly one ACL_OTHER,
 * last), so the entry that matters is read directly, whatever the ACL's length: no loop. A value whose
 * shape is not a valid ACL cannot be judged and is refused; an empty one removes the ACL.
 *
 * Written without BPF_PROG: the verifier refuses a load of the `const void *value` argument from the
 * context, so it is fetched with bpf_get_func_arg (the trampoline keeps every argument).
 */
SEC("lsm/inode_setxattr")
int krsi_inode_setxattr(unsigned long long *ctx)
{
	struct dentry *dentry = (struct dentry *)ctx[1];
	const char *name = (const char *)ctx[2];
	__u64 size = ctx[4];
	int ret = (int)ctx[6];
	enum acl_xattr_kind kind;
	struct { __u16 tag; __u16 perm; } other = {};
	__u64 value = 0;
	__u8 pmode;

	if (ret)
		return ret;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	kind = acl_xattr_kind(name);
	if (kind == ACL_XATTR_NONE)
		return 0;
	if (kind == ACL_XATTR_OPAQUE)
		return fileperms_acl_decision(pmode, dentry, 0);
	if (size == 0 || size == 4)
		return 0;
	if (size < 12 || (size - 4) % 8 || bpf_get_func_arg(ctx, 3, &value) ||
	    bpf_probe_read_kernel(&other, sizeof(other), (void *)(value + size - 8)) || other.tag != ACL_OTHER)
		return fileperms_acl_decision(pmode, dentry, 0);
	if (acl_refused(kind, other.perm, dentry))
		return fileperms_acl_decision(pmode, dentry, S_IWOTH);
	return 0;
}

/*
 * Linux >= 6.2: POSIX ACLs have their own hook, with the kernel's parsed ACL (the agent loads this one
 * only where the kernel has it). A valid ACL ends with its ACL_OTHER entry, as above.
 */
SEC("lsm/inode_set_acl")
int BPF_PROG(krsi_inode_set_acl, void *idmap, struct dentry *dentry, const char *acl_name,
	     struct posix_acl *kacl, int ret)
{
	struct posix_acl_entry other = {};
	enum acl_xattr_kind kind;
	unsigned int n;
	__u8 pmode;

	if (ret)
		return ret;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF || !kacl)
		return 0;
	kind = acl_xattr_kind(acl_name);
	if (kind != ACL_XATTR_ACCESS && kind != ACL_XATTR_DEFAULT)
		return 0;
	n = BPF_CORE_READ(kacl, a_count);
	if (n == 0)
		return 0;
	if (bpf_probe_read_kernel(&other, sizeof(other), &kacl->a_entries[n - 1]) || other.e_tag != ACL_OTHER)
		return fileperms_acl_decision(pmode, dentry, 0);
	if (acl_refused(kind, other.e_perm, dentry))
		return fileperms_acl_decision(pmode, dentry, S_IWOTH);
	return 0;
}

/* ---------------------------------------------------------------- suidexec */

/* the permitted capability set, 64 bits on every kernel (two __u32 before Linux 6.3, one __u64 after) */
static __always_inline __u64 permitted_caps(const struct cred *cred)
{
	__u64 caps = 0;

	bpf_probe_read_kernel(&caps, sizeof(caps), __builtin_preserve_access_index(&cred->cap_permitted));
	return caps;
}

/*
 * suidexec judges what the kernel grants, not the file's bits. bprm_creds_from_file runs in
 * begin_new_exec, before the point of no return (an error fails the execve and leaves the caller
 * running), once commoncap (always the first LSM) has computed the new credentials into bprm->cred. An
 * exec that raises them, a new effective uid or gid or permitted capabilities the process did not have,
 * is a set-uid or set-gid file, or file capabilities (setcap): refused unless the file that grants them
 * is allowlisted. Where the kernel grants nothing, nothing is refused: a nosuid mount, no_new_privs, a
 * traced process the kernel downgrades, set-uid scripts (the kernel ignores their bit), a set-uid file
 * owned by the user, set-gid without group execute. `file` is the file the credentials come from (the
 * binary itself, not its interpreter, for binfmt_misc entries with the C flag).
 */
SEC("lsm/bprm_creds_from_file")
int BPF_PROG(krsi_bprm_creds_from_file, struct linux_binprm *bprm, struct file *file, int ret)
{
	struct krsi_inode_key key = {};
	const struct cred *old, *new;
	struct krsi_policy *p;
	struct krsi_event *e;
	struct inode *inode;
	__u8 pmode;

	if (ret)
		return ret;
	p = current_policy();
	if (!p || p->mode[KRSI_POLICY_SUIDEXEC] == KRSI_MODE_OFF)
		return 0;
	pmode = p->mode[KRSI_POLICY_SUIDEXEC];
	old = bpf_get_current_task_btf()->cred;
	new = bprm->cred;
	if (new->euid.val == old->euid.val && new->egid.val == old->egid.val &&
	    !(permitted_caps(new) & ~permitted_caps(old)))
		return 0;

	inode = file->f_inode;
	key.set = p->set;
	key.dev = inode->i_sb->s_dev;
	key.ino = inode->i_ino;
	if (bpf_map_lookup_elem(&suid_allow, &key))
		return 0;

	if (decision_begin(&e, KRSI_EV_EXEC, KRSI_POLICY_SUIDEXEC, decision_of(pmode), krsi_target(key.dev, key.ino))) {
		e->dev = key.dev;
		e->ino = key.ino;
		e->old_mode = inode->i_mode;
		bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(bprm, filename));
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/* ---------------------------------------------------------------- sockets */

/*
 * Socket families whose listen() ends in an IPv4/IPv6 TCP listener: AF_INET and AF_INET6, and AF_SMC,
 * whose listen() and connect() drive a TCP socket of its own without any LSM hook (kernel_listen,
 * kernel_connect): its own socket is the only place to judge it.
 */
static __always_inline bool tcp_listener_family(__u16 family)
{
	return family == AF_INET || family == AF_INET6 || family == AF_SMC;
}

/*
 * Socket families whose destinations are IPv4/IPv6 addresses: those above (TCP, UDP, UDP-Lite, raw,
 * ping, SCTP, MPTCP, L2TP/IP, SMC) and AF_RDS, whose sends name sockaddr_in/sockaddr_in6 peers that its
 * TCP transport then connects to from kernel sockets.
 */
static __always_inline bool ip_destination_family(__u16 family)
{
	return tcp_listener_family(family) || family == AF_RDS;
}

static __always_inline void sock_fields(struct krsi_event *e, struct sock *sk)
{
	e->proto = BPF_CORE_READ(sk, sk_protocol);
	e->sock_type = BPF_CORE_READ(sk, sk_type);
}

/* an IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d), network byte order */
static __always_inline void map_ipv4(__u8 addr[16], __u32 v4)
{
	__builtin_memset(addr, 0, 16);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(addr + 12, &v4, 4);
}

/* the executable of the current task is a registered ssh client (by identity), or calls itself ssh */
static __always_inline bool is_ssh_client(__u32 set)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct krsi_inode_key key = {};
	struct inode *exe;
	char comm[KRSI_COMM_LEN];

	exe = BPF_CORE_READ(task, mm, exe_file, f_inode);
	if (exe) {
		key.set = set;
		key.dev = BPF_CORE_READ(exe, i_sb, s_dev);
		key.ino = BPF_CORE_READ(exe, i_ino);
		if (bpf_map_lookup_elem(&ssh_clients, &key))
			return true;
	}
	bpf_get_current_comm(comm, sizeof(comm));
	return comm[0] == 's' && comm[1] == 's' && comm[2] == 'h' && comm[3] == 0;
}

/*
 * The socket that carries an AF_SMC socket's TCP traffic: struct smc_sock (net/smc/smc.h, a module whose
 * types the object cannot name) starts with its struct sock, then the pointer to that socket. Used
 * for the event's address and port only.
 */
static __always_inline struct sock *smc_tcp_sock(struct sock *sk)
{
	struct socket *clcsock = NULL;

	bpf_probe_read_kernel(&clcsock, sizeof(clcsock), (void *)sk + bpf_core_type_size(struct sock));
	return clcsock ? BPF_CORE_READ(clcsock, sk) : NULL;
}

SEC("lsm/socket_listen")
int BPF_PROG(krsi_socket_listen, struct socket *sock, int backlog, int ret)
{
	struct krsi_policy *p;
	struct krsi_event *e;
	struct sock *sk, *tcp;
	__u16 family;
	__u8 pmode;

	if (ret)
		return ret;
	p = current_policy();
	if (!p || p->mode[KRSI_POLICY_SSHLISTENERS] == KRSI_MODE_OFF)
		return 0;
	pmode = p->mode[KRSI_POLICY_SSHLISTENERS];
	sk = BPF_CORE_READ(sock, sk);
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (!tcp_listener_family(family))
		return 0;
	if (!is_ssh_client(p->set))
		return 0;

	/* the address and port are those of the TCP socket that will listen (AF_SMC: its own) */
	tcp = family == AF_SMC ? smc_tcp_sock(sk) : sk;
	/* the listening port and IPv4 address: a listener on another port is another action */
	if (decision_begin(&e, KRSI_EV_LISTEN, KRSI_POLICY_SSHLISTENERS, decision_of(pmode),
			   tcp ? krsi_target(((__u64)family << 16) | BPF_CORE_READ(tcp, __sk_common.skc_num),
					     BPF_CORE_READ(tcp, __sk_common.skc_rcv_saddr))
			       : family)) {
		if (family == AF_SMC)
			__builtin_memcpy(e->name, "AF_SMC", sizeof("AF_SMC"));
		if (tcp) {
			e->family = BPF_CORE_READ(tcp, __sk_common.skc_family);
			e->port = BPF_CORE_READ(tcp, __sk_common.skc_num);
			if (e->family == AF_INET)
				map_ipv4(e->addr, BPF_CORE_READ(tcp, __sk_common.skc_rcv_saddr));
			else
				BPF_CORE_READ_INTO(&e->addr, tcp, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		}
		sock_fields(e, sk);
		struct task_struct *task = bpf_get_current_task_btf();
		struct inode *exe = BPF_CORE_READ(task, mm, exe_file, f_inode);
		if (exe) {
			e->dev = BPF_CORE_READ(exe, i_sb, s_dev);
			e->ino = BPF_CORE_READ(exe, i_ino);
		}
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/*
 * The start of a destination sockaddr, read in one go: sin6_family, sin6_port, sin6_flowinfo, sin6_addr
 * (the 24 bytes of SIN6_LEN_RFC2133); an AF_INET address uses the first 8 of them. The length the caller
 * gave does not bound the read: the kernel's copy lives in a sockaddr_storage, and a length the protocol
 * would refuse makes the call fail anyway.
 */
struct sockaddr_head {
	__u16 family;
	__u16 port;
	__u32 v4;
	__u8 v6[16];
};

/* what a destination address means to the kernel (see destination()) */
enum destination_kind {
	DEST_NONE,	/* no destination: a disconnect, or the socket's connected peer (judged at connect) */
	DEST_IP,	/* an IPv4 or IPv6 destination, in addr */
	DEST_UNKNOWN,	/* a family the policy cannot judge: refused */
};

#define IPPROTO_UDP 17
#define IPPROTO_UDPLITE 136

/*
 * The address the packet really goes to, judged by the family the kernel will use for it on this
 * socket. AF_INET and AF_INET6 are what they say (an AF_INET6 socket takes AF_INET destinations too).
 * AF_UNSPEC depends on the call and the protocol: connect() with it disconnects (inet_stream_connect,
 * inet_dgram_connect; SCTP and SMC refuse it); a send on an IPv4 socket takes it as AF_INET (udp_sendmsg,
 * raw_sendmsg); on an IPv6 socket raw and L2TP/IP take it as AF_INET6, while UDP takes it as "no address"
 * (udpv6_sendmsg: the connected peer). Any other family is refused rather than waved through, in
 * deny-lists and allow-lists alike. The unspecified address (0.0.0.0, ::, ::ffff:0.0.0.0) connects to
 * the local host: it is judged as loopback, where the kernel sends it.
 */
static __always_inline enum destination_kind destination(struct sock *sk, __u16 sk_family, bool connect,
							 const struct sockaddr_head *sa, __u16 *family, __u8 addr[16])
{
	*family = sa->family;
	if (*family == AF_UNSPEC) {
		__u16 proto = BPF_CORE_READ(sk, sk_protocol);

		if (connect || (sk_family == AF_INET6 && (proto == IPPROTO_UDP || proto == IPPROTO_UDPLITE)))
			return DEST_NONE;
		*family = sk_family == AF_INET6 ? AF_INET6 : AF_INET;
	}
	if (*family == AF_INET)
		map_ipv4(addr, sa->v4);
	else if (*family == AF_INET6)
		__builtin_memcpy(addr, sa->v6, 16);
	else
		return DEST_UNKNOWN;

	__u32 *w = (__u32 *)addr;
	if (w[0] == 0 && w[1] == 0 && w[3] == 0) {
		if (w[2] == 0)
			addr[15] = 1;				/* :: -> ::1 */
		else if (w[2] == bpf_htonl(0xffff))
			w[3] = bpf_htonl(0x7f000001);		/* ::ffff:0.0.0.0 -> 127.0.0.1 */
	}
	return DEST_IP;
}

/* the verdict of the uid's rules for an address: its longest matching prefix, or the policy's default */
static __always_inline bool destination_denied(struct krsi_policy *p, const __u8 addr[16])
{
	struct krsi_cidr_key key = {};
	__u8 *rule;

	key.prefixlen = 32 + 128;
	key.set = bpf_htonl(p->set);
	__builtin_memcpy(key.addr, addr, 16);
	rule = bpf_map_lookup_elem(&connect_cidrs, &key);
	if (rule)
		return *rule == KRSI_CIDR_DENY;
	return p->flags & KRSI_F_CONNECT_DEFAULT_DENY;
}

/*
 * Record and return a skconnections decision. family/port/addr: the destination as judged (family alone
 * for an unknown one); detail: what made it a destination besides the call's own address (an option or
 * an ancillary message), NULL for none.
 */
static __always_inline int skconnections_decision(__u32 type, __u8 pmode, struct sock *sk, __u16 family,
						  __u16 port, const __u8 addr[16], const char *detail)
{
	struct krsi_event *e;
	__u64 a0 = 0, a1 = 0, d = 0, target;

	/*
	 * the destination (family, address, port), the socket type and what made it a destination (connectx,
	 * an extra peer, a routing option: the first bytes of the detail's name): another one is another action
	 */
	if (addr) {
		__builtin_memcpy(&a0, addr, 8);
		__builtin_memcpy(&a1, addr + 8, 8);
	}
	if (detail)
		bpf_probe_read_kernel_str(&d, sizeof(d), detail);
	target = krsi_target(krsi_target(krsi_target(krsi_target(((__u64)family << 16) | port, a0), a1),
				       BPF_CORE_READ(sk, sk_type)), d);
	if (decision_begin(&e, type, KRSI_POLICY_SKCONNECTIONS, decision_of(pmode), target)) {
		e->family = family;
		e->port = bpf_ntohs(port);
		if (addr)
			__builtin_memcpy(e->addr, addr, 16);
		sock_fields(e, sk);
		if (detail)
			bpf_probe_read_kernel_str(e->name, sizeof(e->name), detail);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/* judge one destination sockaddr (a kernel copy) */
static __always_inline int skconnections_judge(__u32 type, struct krsi_policy *p, struct sock *sk, bool connect,
					       const void *address, const char *detail)
{
	struct sockaddr_head sa = {};
	__u8 addr[16] = {};
	__u8 pmode = p->mode[KRSI_POLICY_SKCONNECTIONS];
	__u16 sk_family = BPF_CORE_READ(sk, __sk_common.skc_family), family;

	if (!ip_destination_family(sk_family))
		return 0;
	if (bpf_probe_read_kernel(&sa, sizeof(sa), address))
		return skconnections_decision(type, pmode, sk, 0, 0, NULL, detail);
	switch (destination(sk, sk_family, connect, &sa, &family, addr)) {
	case DEST_NONE:
		return 0;
	case DEST_UNKNOWN:
		return skconnections_decision(type, pmode, sk, family, sa.port, NULL, detail);
	default:
		if (!destination_denied(p, addr))
			return 0;
		return skconnections_decision(type, pmode, sk, family, sa.port, addr,
					      sa.family == AF_UNSPEC && !detail ? "AF_UNSPEC" : detail);
	}
}

static __always_inline struct krsi_policy *skconnections_policy(void)
{
	struct krsi_policy *p = current_policy();

	return p && p->mode[KRSI_POLICY_SKCONNECTIONS] != KRSI_MODE_OFF ? p : NULL;
}

SEC("lsm/socket_connect")
int BPF_PROG(krsi_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct krsi_policy *p;

	if (ret)
		return ret;
	p = skconnections_policy();
	if (!p)
		return 0;
	return skconnections_judge(KRSI_EV_CONNECT, p, sock->sk, true, address, NULL);
}

/*
 * Options that send a socket's packets somewhere other than its destination: an IPv4 source route
 * (IP_OPTIONS with LSRR/SSRR routes to its first hop), an IPv6 routing header (IPV6_RTHDR type 2 or 4,
 * and the RFC 2292 forms; fl6_update_dst routes to its first address). They stay on the socket for
 * every later packet, TCP included, and this hook sees the option's name but not its value: a uid under
 * skconnections may not set them at all.
 */
#define SOL_IP 0
#define SOL_IPV6 41
#define IP_OPTIONS 4
#define IPV6_2292RTHDR 5
#define IPV6_2292PKTOPTIONS 6
#define IPV6_RTHDR 57

static __always_inline const char *routing_sockopt(int level, int optname)
{
	if (level == SOL_IP)
		return optname == IP_OPTIONS ? "IP_OPTIONS" : NULL;
	if (level != SOL_IPV6)
		return NULL;
	if (optname == IPV6_RTHDR)
		return "IPV6_RTHDR";
	if (optname == IPV6_2292RTHDR)
		return "IPV6_2292RTHDR";
	if (optname == IPV6_2292PKTOPTIONS)
		return "IPV6_2292PKTOPTIONS";
	return NULL;
}

SEC("lsm/socket_setsockopt")
int BPF_PROG(krsi_socket_setsockopt, struct socket *sock, int level, int optname, int ret)
{
	const char *option;
	struct krsi_policy *p;
	struct sock *sk;
	__u16 family;

	if (ret)
		return ret;
	option = routing_sockopt(level, optname);
	if (!option)
		return 0;
	p = skconnections_policy();
	if (!p)
		return 0;
	sk = sock->sk;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (!ip_destination_family(family))
		return 0;
	return skconnections_decision(KRSI_EV_SOCKOPT, p->mode[KRSI_POLICY_SKCONNECTIONS], sk, family, 0, NULL, option);
}

/*
 * Ancillary data of a send (msg_control, a kernel copy by the time this hook runs): the per-packet forms
 * of the routing options above (IP_RETOPTS carries IP options, IPV6_RTHDR a routing header) are refused;
 * SCTP_DSTADDRV4/V6 add peer addresses to the association a send sets up (sctp_sendmsg_new_asoc, which
 * no LSM hook sees) and are judged like destinations. The kernel walks the messages while a header fits
 * and fails the send on a malformed one; so does this walk, up to KRSI_CMSG_MAX messages: more cannot be
 * judged and are refused.
 */
#define KRSI_CMSG_MAX 16
#define IP_RETOPTS 7
#define SOL_SCTP 132
#define SCTP_DSTADDRV4 7
#define SCTP_DSTADDRV6 8

struct cmsg_head {
	__u64 len;
	__s32 level;
	__s32 type;
};

/* what the walk over a send's ancillary data found first that it must refuse */
enum cmsg_finding {
	CMSG_NOTHING,		/* every message judged, none refused */
	CMSG_IP_RETOPTS,
	CMSG_IPV6_RTHDR,
	CMSG_SCTP_DSTADDR,	/* an extra peer in a denied network: in sa */
	CMSG_UNJUDGED,		/* unreadable, or more than KRSI_CMSG_MAX messages */
};

/*
 * The walk only finds; the decision is made once, after it: the loop body stays small, so the
 * verifier, which follows each of the KRSI_CMSG_MAX turns, keeps few states.
 */
static __always_inline enum cmsg_finding walk_cmsgs(struct krsi_policy *p, struct sock *sk, __u16 sk_family,
						    struct msghdr *msg, struct sockaddr_head *sa, __u8 addr[16])
{
	__u64 len = BPF_CORE_READ(msg, msg_controllen);
	void *ctl = BPF_CORE_READ(msg, msg_control);
	__u64 off = 0;

	for (int i = 0; i < KRSI_CMSG_MAX; i++) {
		struct cmsg_head h;

		if (off + sizeof(h) > len)
			return CMSG_NOTHING;
		if (bpf_probe_read_kernel(&h, sizeof(h), ctl + off))
			return CMSG_UNJUDGED;
		if (h.len < sizeof(h) || h.len > len - off)
			return CMSG_NOTHING;	/* the kernel fails the send */
		if (h.level == SOL_IP && h.type == IP_RETOPTS)
			return CMSG_IP_RETOPTS;
		if (h.level == SOL_IPV6 && (h.type == IPV6_RTHDR || h.type == IPV6_2292RTHDR))
			return CMSG_IPV6_RTHDR;
		if (h.level == SOL_SCTP && (h.type == SCTP_DSTADDRV4 || h.type == SCTP_DSTADDRV6)) {
			__builtin_memset(sa, 0, sizeof(*sa));
			if (h.type == SCTP_DSTADDRV4) {
				sa->family = AF_INET;
				bpf_probe_read_kernel(&sa->v4, 4, ctl + off + sizeof(h));
			} else {
				sa->family = AF_INET6;
				bpf_probe_read_kernel(sa->v6, 16, ctl + off + sizeof(h));
			}
			if (destination(sk, sk_family, false, sa, &sa->family, addr) == DEST_IP && destination_denied(p, addr))
				return CMSG_SCTP_DSTADDR;
		}
		off += (h.len + 7) & ~7ULL;
	}
	return off + sizeof(struct cmsg_head) > len ? CMSG_NOTHING : CMSG_UNJUDGED;
}

static __always_inline int skconnections_cmsgs(struct krsi_policy *p, struct sock *sk, struct msghdr *msg)
{
	__u8 pmode = p->mode[KRSI_POLICY_SKCONNECTIONS];
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	struct sockaddr_head sa = {};
	__u8 addr[16] = {};

	switch (walk_cmsgs(p, sk, family, msg, &sa, addr)) {
	case CMSG_NOTHING:
		return 0;
	case CMSG_IP_RETOPTS:
		return skconnections_decision(KRSI_EV_SENDMSG, pmode, sk, family, 0, NULL, "IP_RETOPTS");
	case CMSG_IPV6_RTHDR:
		return skconnections_decision(KRSI_EV_SENDMSG, pmode, sk, family, 0, NULL, "IPV6_RTHDR");
	case CMSG_SCTP_DSTADDR:
		return skconnections_decision(KRSI_EV_SENDMSG, pmode, sk, sa.family, 0, addr,
					      sa.family == AF_INET ? "SCTP_DSTADDRV4" : "SCTP_DSTADDRV6");
	default:
		return skconnections_decision(KRSI_EV_SENDMSG, pmode, sk, family, 0, NULL, "msg_control");
	}
}

/*
 * sendmsg/sendto with a destination or ancillary data (TCP fast open's sendto(MSG_FASTOPEN) connects
 * here, not through connect()); a send on a connected socket with neither returns at once.
 */
SEC("lsm/socket_sendmsg")
int BPF_PROG(krsi_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct krsi_policy *p;
	struct sock *sk;
	void *name;
	int r;

	if (ret)
		return ret;
	name = msg->msg_name;
	if (!name && !msg->msg_controllen)
		return 0;
	/* the socket's family first: two loads, where the policy costs every uid a map lookup (unix sends with
	 * SCM_RIGHTS are frequent and never judged) */
	sk = sock->sk;
	if (!ip_destination_family(BPF_CORE_READ(sk, __sk_common.skc_family)))
		return 0;
	p = skconnections_policy();
	if (!p)
		return 0;
	if (msg->msg_controllen) {
		r = skconnections_cmsgs(p, sk, msg);
		if (r)
			return r;
	}
	return name ? skconnections_judge(KRSI_EV_SENDMSG, p, sk, false, name, NULL) : 0;
}

/*
 * SCTP's other ways to name peers: connectx (setsockopt SCTP_SOCKOPT_CONNECTX, a packed list of
 * sockaddr_in and sockaddr_in6) reaches no connect hook, only this one. Every address is judged, up to
 * KRSI_SCTP_ADDRS_MAX; a longer list cannot be judged and is refused. The other calls of this hook name
 * local addresses (bindx, SCTP_SET_PEER_PRIMARY_ADDR), a peer the association already has
 * (SCTP_PRIMARY_ADDR), the address of a send already judged at socket_sendmsg (SCTP_SENDMSG_CONNECT), or
 * come from the peer in softirq context (ASCONF), where the current task is not the caller.
 */
#define SCTP_SOCKOPT_CONNECTX 110
#define KRSI_SCTP_ADDRS_MAX 16

SEC("lsm/sctp_bind_connect")
int BPF_PROG(krsi_sctp_bind_connect, struct sock *sk, int optname, struct sockaddr *address, int addrlen, int ret)
{
	struct sockaddr_head sa;
	struct krsi_policy *p;
	__u16 sk_family, family;
	__u8 addr[16];
	__u32 off = 0;
	int i;

	if (ret)
		return ret;
	if (optname != SCTP_SOCKOPT_CONNECTX)
		return 0;
	p = skconnections_policy();
	if (!p)
		return 0;
	sk_family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* find the first address to refuse (as for ancillary data, the decision comes after the loop) */
	for (i = 0; i < KRSI_SCTP_ADDRS_MAX; i++) {
		if (off >= (__u32)addrlen)
			return 0;
		if (bpf_probe_read_kernel(&sa, sizeof(sa), (void *)address + off))
			break;
		if (sa.family != AF_INET && sa.family != AF_INET6)
			break;
		if (destination(sk, sk_family, true, &sa, &family, addr) == DEST_IP && destination_denied(p, addr))
			break;
		off += sa.family == AF_INET ? 16 : 28;	/* sizeof(struct sockaddr_in), sizeof(struct sockaddr_in6) */
	}
	if (off >= (__u32)addrlen)
		return 0;
	if (i == KRSI_SCTP_ADDRS_MAX)
		return skconnections_decision(KRSI_EV_CONNECT, p->mode[KRSI_POLICY_SKCONNECTIONS], sk, sk_family, 0, NULL,
					      "SCTP_SOCKOPT_CONNECTX");
	/* the address the loop stopped at: judged again, and recorded */
	return skconnections_judge(KRSI_EV_CONNECT, p, sk, true, (void *)address + off, "SCTP_SOCKOPT_CONNECTX");
}

/* ---------------------------------------------------------------- killtasks */

/*
 * The mode to apply when the current task acts on `target`, or OFF. Protection is keyed by the target's
 * tgid, so every thread of a protected process is covered; the stored start time makes a stale entry
 * (the process died, its pid was reused) protect nothing.
 */
static __always_inline __u8 killtasks_mode(struct task_struct *target)
{
	struct krsi_protect *prot;
	struct krsi_policy *p;
	__u32 tgid = target->tgid;
	__u32 self = bpf_get_current_pid_tgid() >> 32;
	__u64 start;

	prot = bpf_map_lookup_elem(&protected, &tgid);
	if (!prot)
		return KRSI_MODE_OFF;
	start = target->group_leader->start_boottime / KRSI_NSEC_PER_USER_TICK;
	if (start != prot->start_ticks)
		return KRSI_MODE_OFF;
	if (self == tgid || self == 1)
		return KRSI_MODE_OFF;
	if (prot->scope == KRSI_PROTECT_ALL)
		return prot->mode;
	p = current_policy();
	return p ? p->mode[KRSI_POLICY_KILLTASKS] : KRSI_MODE_OFF;
}

/* count and log a killtasks decision on an action aimed at `target`; `detail` goes in the signal field */
static __always_inline int killtasks_record(__u32 type, __u8 pmode, struct task_struct *target, __u32 detail)
{
	struct krsi_event *e;

	/* the process and thread aimed at, and the detail (the signal, ptrace mode, resource, policy...) */
	if (decision_begin(&e, type, KRSI_POLICY_KILLTASKS, decision_of(pmode),
			   krsi_target(krsi_target(target->tgid, target->pid), detail))) {
		e->target_pid = BPF_CORE_READ(target, pid);
		e->target_tgid = BPF_CORE_READ(target, tgid);
		e->target_uid = BPF_CORE_READ(target, real_cred, uid.val);
		e->signal = detail;
		BPF_CORE_READ_STR_INTO(&e->name, target, comm);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

static __always_inline int killtasks_decide(__u32 type, struct task_struct *target, __u32 signal)
{
	__u8 pmode = killtasks_mode(target);

	if (pmode == KRSI_MODE_OFF)
		return 0;
	return killtasks_record(type, pmode, target, signal);
}

SEC("lsm/task_kill")
int BPF_PROG(krsi_task_kill, struct task_struct *p, struct kernel_siginfo *info, int sig,
	     const struct cred *cred, int ret)
{
	if (ret)
		return ret;
	if (sig <= 0 || (sig < 64 && (KRSI_SIG_ALLOWED & (1ULL << sig))))
		return 0;
	return killtasks_decide(KRSI_EV_KILL, p, sig);
}

/*
 * The other way to signal a process: F_SETOWN + F_SETSIG on a file, then I/O on it. The kernel sends
 * that signal without task_kill; SIGIO itself terminates by default.
 */
SEC("lsm/file_send_sigiotask")
int BPF_PROG(krsi_file_send_sigiotask, struct task_struct *tsk, struct fown_struct *fown, int sig, int ret)
{
	if (ret)
		return ret;
	if (sig == 0)
		sig = 29; /* F_SETSIG 0 means SIGIO */
	if (sig < 0 || (sig < 64 && (KRSI_SIG_ALLOWED & (1ULL << sig))))
		return 0;
	return killtasks_decide(KRSI_EV_SIGIO, tsk, sig);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(krsi_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return ret;
	/* reading /proc/<pid>/stat and the like is PTRACE_MODE_READ: only attach is stopped */
	if (!(mode & PTRACE_MODE_ATTACH))
		return 0;
	return killtasks_decide(KRSI_EV_PTRACE, child, mode);
}

/* ---------------------------------------------------------------- tamper */

/*
 * The agent guards itself and this set's own objects. While an agent is registered and alive, nobody but
 * that agent and init may:
 *   - change the agent's resource limits (a CPU-time limit makes the kernel send SIGXCPU and SIGKILL
 *     itself, past task_kill), scheduling policy, priority, affinity, timer slack, nice value or I/O
 *     priority (SCHED_IDLE or nice 19 stalls it);
 *   - get a file descriptor on the set's maps, programs or links, by id or by pin (a map fd is enough to
 *     rewrite the map, read-only or not, through a program of one's own; a program fd is enough to replace
 *     the program with an extension);
 *   - make the read-only bpffs that holds the pins writable, unmount it or mount over it (a link whose
 *     last reference, its pin, goes detaches its program).
 * With no live agent (stopped through init, or its last thread exited) nothing here is refused: that is
 * how the next agent opens the pins. Every refusal is a killtasks decision, always a deny.
 */

#define BPF_FS_MAGIC 0xcafe4a11

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct krsi_agent);
} agent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct krsi_guard_key);
	__type(value, __u8);
} guarded SEC(".maps");

const enum krsi_guard_kind *unused_guard_kind __attribute__((unused));

/* the registered agent if it is alive, else NULL */
static __always_inline struct krsi_agent *live_agent(void)
{
	__u32 zero = 0;
	struct krsi_agent *a = bpf_map_lookup_elem(&agent, &zero);

	return a && a->tgid ? a : NULL;
}

/* `task` is the registered agent (any of its threads): its tgid, and its start time against pid reuse */
static __always_inline bool is_agent(struct krsi_agent *a, struct task_struct *task)
{
	return task->tgid == a->tgid &&
	       task->group_leader->start_boottime / KRSI_NSEC_PER_USER_TICK == a->start_ticks;
}

/* the current task may act on what the agent guards: init, or the agent itself */
static __always_inline bool acts_for_agent(struct krsi_agent *a)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return task->tgid == 1 || is_agent(a, task);
}

static __always_inline bool is_guarded(__u32 kind, __u32 dev, __u64 id)
{
	struct krsi_guard_key key = { .kind = kind, .dev = dev, .id = id };

	return bpf_map_lookup_elem(&guarded, &key) != NULL;
}

/* a deny of an action on this set's objects: counted, and its event begun (or folded) as decision_begin does */
static __always_inline bool tamper_begin(struct krsi_event **ep, __u32 type, __u64 target)
{
	return decision_begin(ep, type, KRSI_POLICY_KILLTASKS, KRSI_DECISION_DENY, target);
}

/* ---- the agent's limits and scheduling */

static __always_inline int guard_agent_task(__u32 type, struct task_struct *target, __u32 detail)
{
	struct krsi_agent *a = live_agent();

	if (!a || !is_agent(a, target) || acts_for_agent(a))
		return 0;
	return killtasks_record(type, KRSI_MODE_ENFORCE, target, detail);
}

/* setrlimit and prlimit (do_prlimit), for the caller itself or another process */
SEC("lsm/task_setrlimit")
int BPF_PROG(krsi_task_setrlimit, struct task_struct *p, unsigned int resource, struct rlimit *new_rlim, int ret)
{
	if (ret)
		return ret;
	return guard_agent_task(KRSI_EV_SETRLIMIT, p, resource);
}

/*
 * sched_setscheduler, sched_setparam, sched_setattr, sched_setaffinity, /proc/<pid>/timerslack_ns, and a
 * move into a cgroup with the cpuset controller (cpuset_can_attach asks this hook for every task moved)
 */
SEC("lsm/task_setscheduler")
int BPF_PROG(krsi_task_setscheduler, struct task_struct *p, int ret)
{
	if (ret)
		return ret;
	return guard_agent_task(KRSI_EV_SETSCHED, p, 0);
}

/* setpriority (PRIO_PROCESS, and each process of PRIO_PGRP and PRIO_USER) */
SEC("lsm/task_setnice")
int BPF_PROG(krsi_task_setnice, struct task_struct *p, int nice, int ret)
{
	if (ret)
		return ret;
	return guard_agent_task(KRSI_EV_SETNICE, p, nice);
}

SEC("lsm/task_setioprio")
int BPF_PROG(krsi_task_setioprio, struct task_struct *p, int ioprio, int ret)
{
	if (ret)
		return ret;
	return guard_agent_task(KRSI_EV_SETIOPRIO, p, ioprio);
}

/* the agent's last thread exits (a crash or a stop): the slot no longer names a live agent */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(krsi_agent_exit, struct task_struct *task)
{
	__u32 zero = 0;
	struct krsi_agent *a = bpf_map_lookup_elem(&agent, &zero);

	/* do_exit() counts the thread out of signal->live before this tracepoint */
	if (!a || !a->tgid || !is_agent(a, task) || task->signal->live.counter)
		return 0;
	a->tgid = 0;
	return 0;
}

/* ---- file descriptors on the set's maps, programs and links */

/*
 * By id. The refusal says ENOENT: tools that list every object (bpftool prog/map/link show) skip an id
 * that disappeared between listing and opening and stop at any other error, so they keep working and
 * simply do not show this set's objects.
 */
SEC("lsm/bpf")
int BPF_PROG(krsi_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
{
	struct krsi_agent *a;
	struct krsi_event *e;
	__u32 kind, id;

	if (ret)
		return ret;
	if (cmd == BPF_MAP_GET_FD_BY_ID)
		kind = KRSI_GUARD_MAP;
	else if (cmd == BPF_PROG_GET_FD_BY_ID)
		kind = KRSI_GUARD_PROG;
	else if (cmd == BPF_LINK_GET_FD_BY_ID)
		kind = KRSI_GUARD_LINK;
	else
		return 0;
	a = live_agent();
	if (!a)
		return 0;
	id = attr->map_id;	/* map_id, prog_id and link_id are one field of the kernel's copy of attr */
	if (!is_guarded(kind, 0, id) || acts_for_agent(a))
		return 0;
	if (tamper_begin(&e, KRSI_EV_BPF_ID, krsi_target(id, cmd))) {
		e->ino = id;
		e->signal = cmd;
		bpf_ringbuf_submit(e, 0);
	}
	return -ENOENT;
}

/* any other way to a map fd: BPF_OBJ_GET of its pin (an fd by id was refused above already) */
SEC("lsm/bpf_map")
int BPF_PROG(krsi_bpf_map, struct bpf_map *map, fmode_t fmode, int ret)
{
	struct krsi_agent *a;
	struct krsi_event *e;

	if (ret)
		return ret;
	a = live_agent();
	if (!a || !is_guarded(KRSI_GUARD_MAP, 0, map->id) || acts_for_agent(a))
		return 0;
	if (tamper_begin(&e, KRSI_EV_BPF_MAP, krsi_target(map->id, fmode))) {
		e->ino = map->id;
		e->signal = fmode;
		bpf_probe_read_kernel_str(e->name, sizeof(map->name), map->name);
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

/* any other way to a program fd: BPF_OBJ_GET of a pinned program (the agent pins links, but a migration may pin programs) */
SEC("lsm/bpf_prog")
int BPF_PROG(krsi_bpf_prog, struct bpf_prog *prog, int ret)
{
	struct krsi_agent *a;
	struct krsi_event *e;
	__u32 id;

	if (ret)
		return ret;
	a = live_agent();
	if (!a)
		return 0;
	id = prog->aux->id;
	if (!is_guarded(KRSI_GUARD_PROG, 0, id) || acts_for_agent(a))
		return 0;
	if (tamper_begin(&e, KRSI_EV_BPF_PROG, id)) {
		e->ino = id;
		bpf_probe_read_kernel_str(e->name, sizeof(prog->aux->name), prog->aux->name);
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

/* ---- the pins */

/*
 * The pins live on a bpffs of their own (mounted at the pin directory), which the agent keeps read-only
 * while it runs: the VFS then refuses every unlink, rename, rmdir and new pin on it with EROFS, in every
 * mount namespace and through every mount of it, before any hook, so no program has to sit on the hot
 * unlink or rename paths. What is left to refuse is making it writable again, unmounting it, and mounting
 * something over it, all rare hooks. (An unmount of a file system above it, /sys, does not come here; the
 * agent holds the pin directory open, which keeps the super block and every pin alive while it runs.)
 */

/* a super block of a bpffs that holds this set's pins */
static __always_inline bool is_pin_fs(struct super_block *sb)
{
	return sb->s_magic == BPF_FS_MAGIC && is_guarded(KRSI_GUARD_PIN_FS, sb->s_dev, 0);
}

static __always_inline int guard_pin_fs(__u32 type, struct super_block *sb, __u32 flags)
{
	struct krsi_agent *a = live_agent();
	struct krsi_event *e;

	if (!a || !is_pin_fs(sb) || acts_for_agent(a))
		return 0;
	if (tamper_begin(&e, type, krsi_target(sb->s_dev, flags))) {
		e->dev = sb->s_dev;
		e->signal = flags;
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

/* the last unmount frees the super block, and every pin with it */
SEC("lsm/sb_umount")
int BPF_PROG(krsi_sb_umount, struct vfsmount *mnt, int flags, int ret)
{
	if (ret)
		return ret;
	return guard_pin_fs(KRSI_EV_UMOUNT, mnt->mnt_sb, flags);
}

/* making it writable again: mount(2) MS_REMOUNT (without MS_BIND) and fsconfig(FSCONFIG_CMD_RECONFIGURE) both end here */
SEC("lsm/sb_remount")
int BPF_PROG(krsi_sb_remount, struct super_block *sb, void *mnt_opts, int ret)
{
	if (ret)
		return ret;
	return guard_pin_fs(KRSI_EV_REMOUNT, sb, 0);
}

#define MS_BIND 4096
#define MS_REMOUNT 32
#define MS_PROPAGATION ((1 << 17) | (1 << 18) | (1 << 19) | (1 << 20))	/* UNBINDABLE, PRIVATE, SLAVE, SHARED */

/*
 * mount(2) onto a directory of the pin file system: a file system, a bind or a move laid over the pins.
 * Let through, in path_mount()'s order: a remount (of the super block: sb_remount decides; with MS_BIND:
 * only this mount's flags, and the super block stays read-only, so writes still fail with EROFS; systemd
 * bind-remounts every mount read-only for a service's ProtectSystem=), and a change of propagation.
 */
SEC("lsm/sb_mount")
int BPF_PROG(krsi_sb_mount, const char *dev_name, const struct path *path, const char *type, unsigned long flags,
	     void *data, int ret)
{
	if (ret)
		return ret;
	if ((flags & MS_REMOUNT) || (!(flags & MS_BIND) && (flags & MS_PROPAGATION)))
		return 0;
	return guard_pin_fs(KRSI_EV_MOUNT, path->dentry->d_sb, flags);
}

/* move_mount(2): the pin file system moved away, or a mount moved over it */
SEC("lsm/move_mount")
int BPF_PROG(krsi_move_mount, const struct path *from_path, const struct path *to_path, int ret)
{
	if (ret)
		return ret;
	ret = guard_pin_fs(KRSI_EV_MOVE_MOUNT, from_path->dentry->d_sb, 0);
	if (ret)
		return ret;
	return guard_pin_fs(KRSI_EV_MOVE_MOUNT, to_path->dentry->d_sb, 0);
}

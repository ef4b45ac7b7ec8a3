// SPDX-License-Identifier: GPL-2.0
/*
 * krsi.bpf.c: the five per-uid policies of slurm-krsi as BPF LSM programs.
 *
 * Every program starts with the cheapest test that lets an unrelated action go. Where the hook's own
 * arguments show the action cannot be refused (a chmod or create whose mode has no forbidden bit), it
 * returns before looking at the uid at all. Otherwise a uid is looked up in uid_bits first, a bitmap of
 * the uids that may have a policy (an array map whose lookup the verifier inlines: a few instructions,
 * no hash), and only a uid whose bit is set pays the uid_policy hash lookup. Nothing counts allowed
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
#define AF_INET 2
#define AF_INET6 10

#define S_IFMT 00170000
#define S_IFLNK 0120000
#define S_IFDIR 0040000
#define S_ISUID 0004000
#define S_ISGID 0002000
#define S_IXGRP 00010
#define S_IWOTH 00002
/* the bits fileperms keeps users from creating or adding */
#define KRSI_FORBIDDEN_BITS (S_ISUID | S_ISGID | S_IWOTH)

#define PTRACE_MODE_ATTACH 0x02

/* POSIX ACL xattr layout (include/uapi/linux/posix_acl_xattr.h, include/uapi/linux/posix_acl.h) */
#define ACL_OTHER 0x20
#define ACL_WRITE 0x02
#define KRSI_ACL_MAX_ENTRIES 32

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

static __always_inline struct krsi_policy *current_policy(void)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	__u32 word = (uid >> 6) & (KRSI_UID_BITMAP_WORDS - 1);
	__u64 *bits = bpf_map_lookup_elem(&uid_bits, &word);

	if (!bits || !((*bits >> (uid & 63)) & 1))
		return NULL;
	return bpf_map_lookup_elem(&uid_policy, &uid);
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
	struct krsi_fold_key key = { .target = target, .uid = (__u32)uid_gid, .type = type, .policy = policy, .decision = decision };
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
 * A new inode: the bits it would get are the requested mode less the umask, as the paper computes it.
 * On file systems with POSIX ACLs the kernel has not applied the umask yet when this hook runs; where
 * it has, applying it again changes nothing. A default ACL can only narrow the result further, and
 * ACLs that grant "other" write are themselves refused below.
 */
static __always_inline int fileperms_new_inode(__u32 type, struct dentry *dentry, umode_t mode)
{
	struct krsi_event *e;
	__u32 umask, new_mode;
	__u8 pmode;

	/* the umask only takes bits away: a mode without a forbidden bit cannot get one */
	if (!(mode & KRSI_FORBIDDEN_BITS))
		return 0;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	umask = bpf_get_current_task_btf()->fs->umask;
	new_mode = mode & ~umask;
	if (!(new_mode & KRSI_FORBIDDEN_BITS))
		return 0;

	if (decision_begin(&e, type, KRSI_POLICY_FILEPERMS, decision_of(pmode),
			   krsi_target(name_target(inode_target(BPF_CORE_READ(dentry, d_parent, d_inode)), dentry), new_mode))) {
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
	return fileperms_new_inode(KRSI_EV_CREATE, dentry, mode);
}

SEC("lsm/inode_mknod")
int BPF_PROG(krsi_inode_mknod, struct inode *dir, struct dentry *dentry, umode_t mode, dev_t dev, int ret)
{
	if (ret)
		return ret;
	return fileperms_new_inode(KRSI_EV_MKNOD, dentry, mode);
}

SEC("lsm/inode_mkdir")
int BPF_PROG(krsi_inode_mkdir, struct inode *dir, struct dentry *dentry, umode_t mode, int ret)
{
	if (ret)
		return ret;
	return fileperms_new_inode(KRSI_EV_MKDIR, dentry, mode | S_IFDIR);
}

/*
 * chmod adds a forbidden bit only if the inode does not already carry it: keeping a bit an inode
 * already has (chmod 0777 on a file that is 0777) and removing bits are allowed, so users can always
 * make their files safer. Symlinks have no permissions of their own.
 */
SEC("lsm/path_chmod")
int BPF_PROG(krsi_path_chmod, const struct path *path, umode_t mode, int ret)
{
	struct krsi_event *e;
	struct inode *inode;
	__u32 old_mode, added;
	__u8 pmode;

	if (ret)
		return ret;
	/* a mode without a forbidden bit can only keep or remove bits: nothing to decide */
	if (!(mode & KRSI_FORBIDDEN_BITS))
		return 0;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF)
		return 0;
	inode = path->dentry->d_inode;
	old_mode = inode->i_mode;
	if ((old_mode & S_IFMT) == S_IFLNK)
		return 0;
	added = mode & KRSI_FORBIDDEN_BITS & ~old_mode;
	if (!added)
		return 0;

	if (decision_begin(&e, KRSI_EV_CHMOD, KRSI_POLICY_FILEPERMS, decision_of(pmode), krsi_target(inode_target(inode), mode))) {
		e->ino = inode->i_ino;
		e->dev = inode->i_sb->s_dev;
		e->old_mode = old_mode;
		e->req_mode = mode;
		e->new_mode = (old_mode & S_IFMT) | (mode & 07777);
		read_name(e, path->dentry->d_name.name);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/*
 * A hard link to an inode that already carries a forbidden bit. This closes O_TMPFILE: an anonymous
 * file is created without inode_create, given its mode at creation, then linked into place.
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

static __always_inline int fileperms_acl_decision(__u8 pmode, struct dentry *dentry)
{
	struct krsi_event *e;
	struct inode *inode = BPF_CORE_READ(dentry, d_inode);

	if (decision_begin(&e, KRSI_EV_SETACL, KRSI_POLICY_FILEPERMS, decision_of(pmode), inode_target(inode))) {
		e->ino = BPF_CORE_READ(inode, i_ino);
		e->dev = BPF_CORE_READ(inode, i_sb, s_dev);
		e->old_mode = BPF_CORE_READ(inode, i_mode);
		e->req_mode = S_IWOTH;
		read_name(e, BPF_CORE_READ(dentry, d_name.name));
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/* true for "system.posix_acl_access" and "system.posix_acl_default" */
static __always_inline bool is_posix_acl_xattr(const char *name)
{
	char buf[26] = {};
	static const char prefix[] = "system.posix_acl_";

	bpf_probe_read_kernel_str(buf, sizeof(buf), name);
	for (int i = 0; i < sizeof(prefix) - 1; i++)
		if (buf[i] != prefix[i])
			return false;
	return true;
}

/*
 * Linux < 6.2 writes POSIX ACLs as xattrs, and its verifier will not let an LSM program read the
 * hook's `const void *value`. The value is read one step earlier instead: do_setxattr() (every
 * setxattr syscall and io_uring's) holds the kernel's own copy in struct xattr_ctx, which a tracing
 * program may read. It leaves its finding for the same thread in acl_grants, and inode_setxattr, which
 * runs next in that thread, takes it. The copy is the kernel's, so a racing thread that rewrites the
 * user buffer cannot change what is judged.
 */
struct xattr_ctx___krsi {
	void *kvalue;
	size_t size;
	struct xattr_name *kname;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);	/* pid_tgid */
	__type(value, __u8);	/* 1: the POSIX ACL being written grants "other" write */
} acl_grants SEC(".maps");

/* a posix_acl_xattr blob (4-byte header, 8-byte entries: le16 tag, le16 perm, le32 id) */
static __always_inline bool acl_xattr_grants_other_write(const void *value, __u64 size)
{
	__u64 n = size >= 4 ? (size - 4) / 8 : 0;

	for (__u32 i = 0; i < KRSI_ACL_MAX_ENTRIES && i < n; i++) {
		__u16 entry[2] = {};

		if (bpf_probe_read_kernel(entry, sizeof(entry), value + 4 + i * 8))
			break;
		if (entry[0] == ACL_OTHER && (entry[1] & ACL_WRITE))
			return true;
	}
	return false;
}

SEC("fentry/do_setxattr")
int BPF_PROG(krsi_do_setxattr, void *idmap, struct dentry *dentry, struct xattr_ctx___krsi *xctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct xattr_name *kname;
	__u8 grants;

	if (fileperms_mode() == KRSI_MODE_OFF)
		return 0;
	kname = BPF_CORE_READ(xctx, kname);
	if (!kname || !is_posix_acl_xattr(kname->name)) {
		bpf_map_delete_elem(&acl_grants, &id);
		return 0;
	}
	grants = acl_xattr_grants_other_write(BPF_CORE_READ(xctx, kvalue), BPF_CORE_READ(xctx, size));
	bpf_map_update_elem(&acl_grants, &id, &grants, BPF_ANY);
	return 0;
}

/* written without BPF_PROG: the 6.1 verifier refuses even a load of the `value` argument */
SEC("lsm/inode_setxattr")
int krsi_inode_setxattr(unsigned long long *ctx)
{
	struct dentry *dentry = (struct dentry *)ctx[1];
	const char *name = (const char *)ctx[2];
	int ret = (int)ctx[6];
	__u64 id = bpf_get_current_pid_tgid();
	__u8 *grants, pmode;

	if (ret)
		return ret;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF || !is_posix_acl_xattr(name))
		return 0;
	grants = bpf_map_lookup_elem(&acl_grants, &id);
	if (!grants)
		return 0;
	if (!*grants) {
		bpf_map_delete_elem(&acl_grants, &id);
		return 0;
	}
	bpf_map_delete_elem(&acl_grants, &id);
	return fileperms_acl_decision(pmode, dentry);
}

/* Linux >= 6.2: POSIX ACLs have their own hook; loaded only where the kernel has it */
SEC("lsm/inode_set_acl")
int BPF_PROG(krsi_inode_set_acl, void *idmap, struct dentry *dentry, const char *acl_name,
	     struct posix_acl *kacl, int ret)
{
	unsigned int n;
	__u8 pmode;

	if (ret)
		return ret;
	pmode = fileperms_mode();
	if (pmode == KRSI_MODE_OFF || !kacl)
		return 0;
	n = BPF_CORE_READ(kacl, a_count);
	for (__u32 i = 0; i < KRSI_ACL_MAX_ENTRIES && i < n; i++) {
		struct posix_acl_entry entry = {};

		if (bpf_probe_read_kernel(&entry, sizeof(entry), &kacl->a_entries[i]))
			break;
		if (entry.e_tag == ACL_OTHER && (entry.e_perm & ACL_WRITE))
			return fileperms_acl_decision(pmode, dentry);
	}
	return 0;
}

/* ---------------------------------------------------------------- suidexec */

SEC("lsm/bprm_check_security")
int BPF_PROG(krsi_bprm_check_security, struct linux_binprm *bprm, int ret)
{
	struct krsi_inode_key key = {};
	struct krsi_policy *p;
	struct krsi_event *e;
	struct inode *inode;
	struct file *file;
	__u32 mode;
	__u8 pmode;

	if (ret)
		return ret;
	p = current_policy();
	if (!p || p->mode[KRSI_POLICY_SUIDEXEC] == KRSI_MODE_OFF)
		return 0;
	pmode = p->mode[KRSI_POLICY_SUIDEXEC];
	file = bprm->file;
	inode = file->f_inode;
	mode = inode->i_mode;
	/* set-gid without group exec is the mandatory-locking mark, not a privilege */
	if (!(mode & S_ISUID) && (mode & (S_ISGID | S_IXGRP)) != (S_ISGID | S_IXGRP))
		return 0;
	/* a nosuid mount grants no privilege: nothing to stop */
	if (file->f_path.mnt->mnt_flags & MNT_NOSUID)
		return 0;

	key.set = p->set;
	key.dev = inode->i_sb->s_dev;
	key.ino = inode->i_ino;
	if (bpf_map_lookup_elem(&suid_allow, &key))
		return 0;

	if (decision_begin(&e, KRSI_EV_EXEC, KRSI_POLICY_SUIDEXEC, decision_of(pmode), krsi_target(key.dev, key.ino))) {
		e->dev = key.dev;
		e->ino = key.ino;
		e->old_mode = mode;
		bpf_probe_read_kernel_str(e->name, sizeof(e->name), BPF_CORE_READ(bprm, filename));
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

/* ---------------------------------------------------------------- sockets */

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

SEC("lsm/socket_listen")
int BPF_PROG(krsi_socket_listen, struct socket *sock, int backlog, int ret)
{
	struct krsi_policy *p;
	struct krsi_event *e;
	struct sock *sk;
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
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (!is_ssh_client(p->set))
		return 0;

	/* the listening port (and IPv4 address): a listener on another port is another action */
	if (decision_begin(&e, KRSI_EV_LISTEN, KRSI_POLICY_SSHLISTENERS, decision_of(pmode),
			   krsi_target(((__u64)family << 16) | BPF_CORE_READ(sk, __sk_common.skc_num),
				       BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr)))) {
		e->family = family;
		e->port = BPF_CORE_READ(sk, __sk_common.skc_num);
		if (family == AF_INET)
			map_ipv4(e->addr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		else
			BPF_CORE_READ_INTO(&e->addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
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
 * Decide on a destination address (a kernel copy of the caller's sockaddr). The address family is the
 * address's own, not the socket's: an AF_INET6 UDP socket accepts an AF_INET destination. The length is
 * not trusted to bound what we read: the kernel copy lives in a sockaddr_storage, and a length the
 * protocol would refuse makes the call fail anyway.
 */
static __always_inline int skconnections_decide(__u32 type, struct krsi_policy *p, struct socket *sock,
						struct sockaddr *address)
{
	struct krsi_cidr_key key = {};
	struct krsi_event *e;
	__u16 family, port;
	__u8 *verdict_entry;
	bool deny;
	__u8 pmode = p->mode[KRSI_POLICY_SKCONNECTIONS];

	/*
	 * One read covers both families: sin6_family, sin6_port, sin6_flowinfo, sin6_addr (the 24 bytes of
	 * SIN6_LEN_RFC2133); an AF_INET address uses the first 8 of them.
	 */
	struct { __u16 family; __u16 port; __u32 v4; __u8 addr[16]; } sa = {};

	if (bpf_probe_read_kernel(&sa, sizeof(sa), address))
		return 0;
	family = sa.family;
	port = sa.port;
	if (family == AF_INET)
		map_ipv4(key.addr, sa.v4);
	else if (family == AF_INET6)
		__builtin_memcpy(key.addr, sa.addr, 16);
	else
		return 0;

	/* the unspecified address connects to the local host: judge it as loopback */
	__u32 *w = (__u32 *)key.addr;
	if (w[0] == 0 && w[1] == 0 && w[3] == 0) {
		if (w[2] == 0)
			key.addr[15] = 1;				/* :: -> ::1 */
		else if (w[2] == bpf_htonl(0xffff))
			w[3] = bpf_htonl(0x7f000001);			/* ::ffff:0.0.0.0 -> 127.0.0.1 */
	}

	key.prefixlen = 32 + 128;
	key.set = bpf_htonl(p->set);
	verdict_entry = bpf_map_lookup_elem(&connect_cidrs, &key);
	if (verdict_entry)
		deny = *verdict_entry == KRSI_CIDR_DENY;
	else
		deny = p->flags & KRSI_F_CONNECT_DEFAULT_DENY;
	if (!deny)
		return 0;

	/* the destination (family, address, port) and the socket type */
	__u64 *a64 = (__u64 *)key.addr;
	__u64 target = krsi_target(krsi_target(((__u64)family << 16) | port, a64[0]), a64[1]);

	if (decision_begin(&e, type, KRSI_POLICY_SKCONNECTIONS, decision_of(pmode), krsi_target(target, BPF_CORE_READ(sock, type)))) {
		e->family = family;
		e->port = bpf_ntohs(port);
		__builtin_memcpy(e->addr, key.addr, 16);
		sock_fields(e, sock->sk);
		bpf_ringbuf_submit(e, 0);
	}
	return verdict(pmode);
}

SEC("lsm/socket_connect")
int BPF_PROG(krsi_socket_connect, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct krsi_policy *p;

	if (ret)
		return ret;
	p = current_policy();
	if (!p || p->mode[KRSI_POLICY_SKCONNECTIONS] == KRSI_MODE_OFF)
		return 0;
	return skconnections_decide(KRSI_EV_CONNECT, p, sock, address);
}

/* sendmsg/sendto with a destination; a send on a connected socket without one returns at once */
SEC("lsm/socket_sendmsg")
int BPF_PROG(krsi_socket_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	struct krsi_policy *p;
	void *name;

	if (ret)
		return ret;
	name = msg->msg_name;
	if (!name)
		return 0;
	p = current_policy();
	if (!p || p->mode[KRSI_POLICY_SKCONNECTIONS] == KRSI_MODE_OFF)
		return 0;
	return skconnections_decide(KRSI_EV_SENDMSG, p, sock, name);
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

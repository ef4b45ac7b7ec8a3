/* SPDX-License-Identifier: GPL-2.0 */
/*
 * krsi.h: every struct and constant that crosses between the BPF programs (krsi.bpf.c) and user space
 * (agent/enforcement/layout.ts). Fixed-size fields only, explicit padding, no bitfields: the TypeScript
 * side decodes these by offset, and test/unit/layout.test.ts checks its offsets against the BTF of the
 * built object.
 */
#ifndef KRSI_H
#define KRSI_H

/* policies: index into krsi_policy.mode[] and into the counter array */
enum krsi_policy_id {
	KRSI_POLICY_FILEPERMS = 0,
	KRSI_POLICY_SUIDEXEC = 1,
	KRSI_POLICY_SSHLISTENERS = 2,
	KRSI_POLICY_SKCONNECTIONS = 3,
	KRSI_POLICY_KILLTASKS = 4,
	KRSI_POLICY_COUNT = 5,
};

/* per-policy mode of a uid */
enum krsi_mode {
	KRSI_MODE_OFF = 0,
	KRSI_MODE_AUDIT = 1,	/* log, allow */
	KRSI_MODE_ENFORCE = 2,	/* log, deny with EPERM */
};

/* what happened to an action the policy matched */
enum krsi_decision {
	KRSI_DECISION_DENY = 0,
	KRSI_DECISION_AUDIT = 1,
};

/* counter slots per policy: counters[policy * KRSI_COUNTER_SLOTS + slot] */
enum krsi_counter_slot {
	KRSI_COUNTER_DENY = 0,		/* == KRSI_DECISION_DENY */
	KRSI_COUNTER_AUDIT = 1,		/* == KRSI_DECISION_AUDIT */
	KRSI_COUNTER_DROPPED = 2,	/* event not delivered: ring buffer full */
	KRSI_COUNTER_FOLDED = 3,	/* no event of its own: counted in the repeats of a later event of its key */
	KRSI_COUNTER_SLOTS = 4,
};
#define KRSI_COUNTER_ENTRIES (KRSI_POLICY_COUNT * KRSI_COUNTER_SLOTS)

/* krsi_policy.flags */
#define KRSI_F_CONNECT_DEFAULT_DENY (1U << 0)	/* skconnections: a destination no trie entry matches is denied */

/*
 * Value of a connect_cidrs entry: the verdict for destinations whose longest matching prefix it is.
 * A deny-list is allow-by-default with deny entries; an allow-list is deny-by-default with allow entries,
 * and deny entries inside allowed networks carve holes in it.
 */
enum krsi_cidr_verdict {
	KRSI_CIDR_DENY = 1,
	KRSI_CIDR_ALLOW = 2,
};

/*
 * Value of the uid_policy map (key: __u32 uid). `set` names the generation of per-uid sets (suid
 * allowlist, ssh client identities, CIDR trie entries) this policy uses: user space writes a new set
 * under a fresh id, then swaps this one value, then deletes the old set, so there is no moment where
 * neither the old nor the new policy holds.
 */
struct krsi_policy {
	__u8 mode[8];		/* indexed by enum krsi_policy_id; [5..7] reserved, zero */
	__u32 flags;		/* KRSI_F_* */
	__u32 set;		/* set id, never 0 for a live policy */
};

/*
 * Job scoping (docs/POLICIES.md). Slurm's cgroup/v2 plugin gives each job a cgroup, job_<id>, at one depth
 * (level) on a node; its tasks run three levels below it (job_<id>/step_<n>/user/task_<k>), slurmstepd
 * itself two (job_<id>/step_<n>/slurm). The job_cgroups map (key: __u64 cgroup id of job_<id>) holds each
 * bound job's own policy: a task in a bound job's task subtree is judged by it alone, whatever its uid;
 * every other task by its uid's entry in uid_policy.
 */
#define KRSI_JOB_TASK_DEPTH 3

struct krsi_job_binding {
	struct krsi_policy policy;	/* the job's own policy (its floor and requested profile) */
	__u32 job_id;			/* Slurm's job id, for events */
	__u32 pad;
};

/* value of the job_scope array (key 0) */
struct krsi_job_scope {
	__u32 bound;		/* entries in job_cgroups; 0: the programs skip the cgroup test */
	__u32 job_level;	/* cgroup level of the job_<id> directories (the root is level 0) */
};

/*
 * Key of the suid_allow and ssh_clients hash maps: a file's identity as the kernel sees it,
 * inode->i_sb->s_dev (kernel dev_t encoding: major << 20 | minor, NOT userspace st_dev) and i_ino.
 */
struct krsi_inode_key {
	__u32 set;
	__u32 dev;
	__u64 ino;
};

/*
 * Key of the connect_cidrs LPM trie. The data is the set id followed by an IPv6 address; IPv4 CIDRs
 * are stored as IPv4-mapped IPv6 (::ffff:a.b.c.d/96+len), so one lookup covers AF_INET, AF_INET6 and
 * IPv4-mapped AF_INET6 destinations. prefixlen counts the 32 bits of `set` too.
 */
struct krsi_cidr_key {
	__u32 prefixlen;
	__u32 set;		/* stored in network byte order so LPM compares it whole */
	__u8 addr[16];
};

/*
 * uid_bits: a bitmap of the uids that may have a uid_policy entry, KRSI_UID_BITMAP_WORDS __u64 words
 * (a power of two). uid u is bit (u & 63) of word (u >> 6) & (KRSI_UID_BITMAP_WORDS - 1).
 */
#define KRSI_UID_BITMAP_WORDS 1024

/* killtasks: value of the protected map (key: __u32 tgid) */
enum krsi_protect_scope {
	KRSI_PROTECT_ALL = 0,		/* every sender but init and the process itself (the agent) */
	KRSI_PROTECT_POLICY = 1,	/* senders whose uid has killtasks on, with that uid's mode (listed daemons) */
};

struct krsi_protect {
	__u64 start_ticks;	/* /proc/<pid>/stat starttime (USER_HZ ticks since boot): guards pid reuse */
	__u8 scope;		/* enum krsi_protect_scope */
	__u8 mode;		/* enum krsi_mode, used with KRSI_PROTECT_ALL */
	__u8 pad[6];
};

/*
 * tamper: value of the agent map (key 0). The agent registers itself here; while the slot holds a live
 * process (tgid != 0), only that process and init may get hold of the objects in `guarded` or change the
 * agent's limits and scheduling. The slot is cleared by the agent when it stops, and by the kernel
 * (krsi_agent_exit) when the agent's last thread exits.
 */
struct krsi_agent {
	__u64 start_ticks;	/* the agent's start time, as krsi_protect.start_ticks: guards pid reuse */
	__u32 tgid;		/* 0: no live agent */
	__u32 pad;
};

/* tamper: key of the guarded map, the set's own objects */
enum krsi_guard_kind {
	KRSI_GUARD_MAP = 1,	/* id: map id */
	KRSI_GUARD_PROG = 2,	/* id: program id */
	KRSI_GUARD_LINK = 3,	/* id: link id */
	KRSI_GUARD_PIN_FS = 4,	/* dev: the bpffs of the set's own that holds the pins (kernel s_dev); id 0 */
};

struct krsi_guard_key {
	__u32 kind;		/* enum krsi_guard_kind */
	__u32 dev;		/* PIN_FS; 0 otherwise */
	__u64 id;
};

/* event types: one per hook (and variant) */
enum krsi_event_type {
	KRSI_EV_CREATE = 1,	/* regular file: inode_init_security (final mode) or inode_create */
	KRSI_EV_MKNOD = 2,	/* fifo, socket, device node: inode_init_security or inode_mknod */
	KRSI_EV_MKDIR = 3,	/* inode_init_security or inode_mkdir */
	KRSI_EV_CHMOD = 4,	/* inode_setattr with ATTR_MODE (chmod, overlayfs copy-up, ...) */
	KRSI_EV_SETACL = 5,	/* inode_setxattr / inode_set_acl: an ACL granting other write, or one not judged */
	KRSI_EV_LINK = 6,	/* inode_link of an inode that already carries a forbidden bit (O_TMPFILE) */
	KRSI_EV_EXEC = 7,	/* bprm_creds_from_file of an exec that raises credentials */
	KRSI_EV_LISTEN = 8,	/* socket_listen by an ssh client */
	KRSI_EV_CONNECT = 9,	/* socket_connect, sctp_bind_connect (connectx) */
	KRSI_EV_SENDMSG = 10,	/* socket_sendmsg with a destination address or ancillary data */
	KRSI_EV_KILL = 11,	/* task_kill */
	KRSI_EV_PTRACE = 12,	/* ptrace_access_check (attach) */
	KRSI_EV_SIGIO = 13,	/* file_send_sigiotask: a signal through F_SETOWN/F_SETSIG */
	/* tamper: actions on the agent and on this set's own objects (killtasks decisions, always deny) */
	KRSI_EV_SETRLIMIT = 14,	/* task_setrlimit: setrlimit/prlimit aimed at the agent */
	KRSI_EV_SETSCHED = 15,	/* task_setscheduler: policy, priority, affinity, timer slack, cpuset move */
	KRSI_EV_SETNICE = 16,	/* task_setnice: setpriority */
	KRSI_EV_SETIOPRIO = 17,	/* task_setioprio: ioprio_set */
	KRSI_EV_BPF_ID = 18,	/* bpf: MAP/PROG/LINK_GET_FD_BY_ID of a guarded object */
	KRSI_EV_BPF_MAP = 19,	/* bpf_map: an fd on a guarded map (BPF_OBJ_GET of its pin) */
	KRSI_EV_BPF_PROG = 20,	/* bpf_prog: an fd on a guarded program */
	KRSI_EV_UMOUNT = 21,	/* sb_umount of the bpffs that holds the pins */
	KRSI_EV_REMOUNT = 22,	/* sb_remount of it: made writable again (fsconfig reconfigure, or mount(2)) */
	KRSI_EV_MOUNT = 23,	/* sb_mount onto it: a file system, a bind or a move laid over the pins */
	KRSI_EV_MOVE_MOUNT = 24,	/* move_mount of it, or onto it */
	/* skconnections */
	KRSI_EV_SOCKOPT = 25,	/* socket_setsockopt of an option that reroutes packets (source route, routing header) */
};

/*
 * Folding: a decision whose key had an event less than KRSI_FOLD_WINDOW_NS ago gets no event of its own;
 * it is counted (KRSI_COUNTER_FOLDED) and reported as `repeats` by the key's next event. The key is
 * (uid, job, policy, type, decision, target), target a hash of what makes the action distinct (the inode, the
 * name, the destination, the signalled process). Once the ring buffer is half full, a uid that has had
 * more than its share of events in the window (KRSI_FOLD_SHARE_DIVISOR: 1/16th of the ring's records) is
 * folded by a coarser key, its target left out: one event per (uid, policy, type, decision) and window.
 * So a flood of repeated actions costs one event a second, and a flood of distinct ones cannot take the
 * other half of the ring from other uids, nor from the flooding uid's actions of other kinds.
 */
#define KRSI_FOLD_WINDOW_NS 1000000000ULL
#define KRSI_FOLD_SHARE_DIVISOR 16

enum krsi_fold_scope {
	KRSI_FOLD_EXACT = 0,	/* key with the action's target */
	KRSI_FOLD_KIND = 1,	/* key without it: the uid was over its share while the ring was half full */
};

/* key of the folds LRU map */
struct krsi_fold_key {
	__u64 target;		/* krsi_target() hash; 0 for KRSI_FOLD_KIND */
	__u32 uid;
	__u8 type;		/* enum krsi_event_type */
	__u8 policy;
	__u8 decision;
	__u8 scope;		/* enum krsi_fold_scope */
	__u32 job_id;		/* the bound job whose task acted; 0: outside every bound job */
	__u32 pad;
};

/* value of the folds LRU map */
struct krsi_fold_state {
	__u64 last_ns;		/* when the key's last event was reserved */
	__u64 folded;		/* decisions folded since then */
};

/* value of the fold_shares LRU map (key: __u32 uid): events of a uid while the ring was half full */
struct krsi_fold_share {
	__u64 window_ns;	/* start of the uid's current window */
	__u64 events;
};

#define KRSI_COMM_LEN 16
#define KRSI_NAME_LEN 64

/*
 * One ring buffer record. Fields a hook does not have stay zero. All hooks share this one layout
 * so that the decoder is a single fixed-offset read.
 */
struct krsi_event {
	__u64 ts_ns;		/* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;	/* bpf_get_current_cgroup_id() */
	__u32 type;		/* enum krsi_event_type */
	__u32 uid;
	__u32 gid;
	__u32 pid;		/* tgid */
	__u32 tid;
	__u8 policy;		/* enum krsi_policy_id */
	__u8 decision;		/* enum krsi_decision */
	__u8 fold_scope;	/* enum krsi_fold_scope of the key `repeats` counts for */
	__u8 pad0;
	char comm[KRSI_COMM_LEN];

	/* file hooks: inode identity (kernel dev encoding) and modes */
	__u64 ino;
	__u32 dev;
	__u32 old_mode;		/* mode before (chmod, link, exec) */
	__u32 req_mode;		/* mode asked for (create, mkdir, mknod, chmod) */
	__u32 umask;		/* current->fs->umask (create, mkdir, mknod) */
	__u32 new_mode;		/* mode that would result */

	/* socket hooks */
	__u16 family;		/* AF_INET / AF_INET6 of the address as judged, the given family when unknown */
	__u16 port;		/* host byte order */
	__u16 proto;		/* sk->sk_protocol */
	__u16 sock_type;	/* sk->sk_type */
	__u8 addr[16];		/* IPv6, or IPv4-mapped IPv6 for AF_INET */

	/* signal / ptrace hooks */
	__u32 target_pid;	/* tid the signal or ptrace is aimed at */
	__u32 target_tgid;
	__u32 target_uid;
	__u32 signal;		/* signal number, or ptrace mode for KRSI_EV_PTRACE */

	/*
	 * last path component the hook saw (file created, chmod-ed, executed, ACL target); for skconnections,
	 * what made the destination besides the call's address (AF_UNSPEC, IP_RETOPTS, SCTP_DSTADDRV4, ...)
	 */
	char name[KRSI_NAME_LEN];

	/* decisions of this event's fold key folded since the key's previous event (see KRSI_FOLD_WINDOW_NS) */
	__u32 repeats;
	/* the bound job whose task acted (its policy decided); 0: outside every bound job, the uid's policy decided */
	__u32 job_id;
};

/*
 * One record of the identity iterator (identity.bpf.c): an open file of the reading process as the
 * kernel identifies it, the same (s_dev, i_ino) the LSM programs see, whatever stat() reports
 * (overlayfs and btrfs report other device numbers than the inode's super block).
 */
struct krsi_file_identity {
	__u32 fd;
	__u32 dev;
	__u64 ino;
	__u32 mode;
	__u32 pad;
};

#endif /* KRSI_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * krsi-probe: attempts exactly one action that a slurm-krsi policy judges, by the named syscall, and
 * prints what the kernel answered: "OK" or "ERR <ERRNO-NAME>". Exit status 0 for OK, 1 for ERR, 2 for a
 * usage error. Tests and the adversary emulation use it to try the attacker's variants (the other
 * syscall, the other address family, O_TMPFILE, raw ACL xattrs, thread ids) with a process start cost of
 * a few milliseconds, and to tell "denied by the policy" (EPERM) from "failed for another reason".
 *
 *   krsi-probe [--comm NAME] [--repeat N] COMMAND ARGS...
 *
 * --repeat N attempts the action N times in this one process and prints the last answer only: the same
 * action N times (the fold tests' flood), or N distinct ones where an argument is "%i", which stands for
 * the attempt's number, 1 to N (a port, a file name suffix).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

/* set while an attempt of --repeat other than the last runs: its answer is not printed */
static int quiet;

static int report(int rc)
{
	if (quiet)
		return rc >= 0 ? 0 : 1;
	if (rc >= 0) {
		puts("OK");
		return 0;
	}
	const char *name = strerrorname_np(errno);
	printf("ERR %s\n", name ? name : "UNKNOWN");
	return 1;
}

static int usage(const char *msg)
{
	fprintf(stderr, "krsi-probe: %s\n", msg);
	return 2;
}

static mode_t parse_mode(const char *s)
{
	return (mode_t)strtoul(s, NULL, 8);
}

static void maybe_umask(int argc, char **argv, int idx)
{
	if (argc > idx)
		umask(parse_mode(argv[idx]));
}

/* fill a sockaddr for "4" (AF_INET) or "6" (AF_INET6; an IPv4 literal becomes IPv4-mapped) */
static socklen_t make_addr(int v6, const char *host, const char *port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!v6) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(atoi(port));
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return 0;
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(atoi(port));
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
		struct in_addr v4;
		if (inet_pton(AF_INET, host, &v4) != 1)
			return 0;
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sin6->sin6_addr.s6_addr[12], &v4, 4);
	}
	return sizeof(*sin6);
}

static int sock_type(int argc, char **argv, int idx)
{
	if (argc > idx && !strcmp(argv[idx], "udp"))
		return SOCK_DGRAM;
	return SOCK_STREAM;
}

static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* posix_acl_xattr blob: user::rw-, group::r--, other::<perm> (perm: 0-7) */
static int set_acl(const char *path, const char *attr, int other_perm)
{
	struct { uint32_t version; struct { uint16_t tag, perm; uint32_t id; } e[3]; } acl = {
		.version = 2,
		.e = { { 0x01, 6, (uint32_t)-1 }, { 0x04, 4, (uint32_t)-1 }, { 0x20, (uint16_t)other_perm, (uint32_t)-1 } },
	};
	return setxattr(path, attr, &acl, sizeof(acl), 0);
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* BPF_OBJ_GET of a pin; read-only when `rdonly` (a read-write open of a pin is a write to its file system) */
static int bpf_obj_get_path(const char *path, int rdonly)
{
	union bpf_attr attr = { 0 };

	attr.pathname = (__u64)(unsigned long)path;
	attr.file_flags = rdonly ? BPF_F_RDONLY : 0;
	return sys_bpf(BPF_OBJ_GET, &attr);
}

static int probe_once(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;
	const char *cmd = argv[1];

	/* ---- files */
	if (!strcmp(cmd, "create") && argc >= 4) {		/* create PATH MODE [UMASK] */
		maybe_umask(argc, argv, 4);
		return report(open(argv[2], O_CREAT | O_EXCL | O_WRONLY, parse_mode(argv[3])));
	}
	if (!strcmp(cmd, "mkdir") && argc >= 4) {		/* mkdir PATH MODE [UMASK] */
		maybe_umask(argc, argv, 4);
		return report(mkdir(argv[2], parse_mode(argv[3])));
	}
	if (!strcmp(cmd, "mkfifo") && argc >= 4) {		/* mkfifo PATH MODE [UMASK] */
		maybe_umask(argc, argv, 4);
		return report(mknod(argv[2], S_IFIFO | parse_mode(argv[3]), 0));
	}
	if (!strcmp(cmd, "mknod-reg") && argc >= 4) {		/* mknod-reg PATH MODE [UMASK] */
		maybe_umask(argc, argv, 4);
		return report(mknod(argv[2], S_IFREG | parse_mode(argv[3]), 0));
	}
	if (!strcmp(cmd, "bind-unix") && argc >= 3) {		/* bind-unix PATH [UMASK] */
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		maybe_umask(argc, argv, 3);
		strncpy(sun.sun_path, argv[2], sizeof(sun.sun_path) - 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		return report(bind(fd, (struct sockaddr *)&sun, sizeof(sun)));
	}
	if (!strcmp(cmd, "chmod") && argc >= 4)		/* chmod PATH MODE */
		return report(chmod(argv[2], parse_mode(argv[3])));
	if (!strcmp(cmd, "fchmod") && argc >= 4) {		/* fchmod PATH MODE */
		fd = open(argv[2], O_RDONLY);
		if (fd < 0)
			return report(fd);
		return report(fchmod(fd, parse_mode(argv[3])));
	}
	if (!strcmp(cmd, "fchmodat") && argc >= 4)		/* fchmodat PATH MODE */
		return report(fchmodat(AT_FDCWD, argv[2], parse_mode(argv[3]), 0));
	if (!strcmp(cmd, "tmpfile-link") && argc >= 5) {	/* tmpfile-link DIR MODE LINKPATH [UMASK] */
		char proc[64];
		maybe_umask(argc, argv, 5);
		fd = open(argv[2], O_TMPFILE | O_WRONLY, parse_mode(argv[3]));
		if (fd < 0)
			return report(fd);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		return report(linkat(AT_FDCWD, proc, AT_FDCWD, argv[4], AT_SYMLINK_FOLLOW));
	}
	if (!strcmp(cmd, "link") && argc >= 4)			/* link OLD NEW */
		return report(link(argv[2], argv[3]));
	if (!strcmp(cmd, "setacl") && argc >= 4)		/* setacl PATH OTHERPERM [default] */
		return report(set_acl(argv[2], argc >= 5 && !strcmp(argv[4], "default") ?
				      "system.posix_acl_default" : "system.posix_acl_access", atoi(argv[3])));

	/* ---- exec: prints only on failure; on success the program runs */
	if (!strcmp(cmd, "exec") && argc >= 3) {		/* exec PATH [ARGS...] */
		execv(argv[2], argv + 2);
		return report(-1);
	}

	/* ---- sockets */
	if ((!strcmp(cmd, "listen4") || !strcmp(cmd, "listen6")) && argc >= 4) {	/* listenN ADDR PORT */
		int v6 = cmd[6] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&ss, len) < 0)
			return report(-1);
		return report(listen(fd, 1));
	}
	if ((!strcmp(cmd, "connect4") || !strcmp(cmd, "connect6")) && argc >= 4) {	/* connectN ADDR PORT [tcp|udp] */
		int v6 = cmd[7] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(v6 ? AF_INET6 : AF_INET, sock_type(argc, argv, 4), 0);
		return report(connect(fd, (struct sockaddr *)&ss, len));
	}
	/* connect6-v4addr ADDR PORT: an AF_INET6 UDP socket given an AF_INET destination */
	if (!strcmp(cmd, "connect6-v4addr") && argc >= 4) {
		len = make_addr(0, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(AF_INET6, SOCK_DGRAM, 0);
		return report(connect(fd, (struct sockaddr *)&ss, len));
	}
	if ((!strcmp(cmd, "sendto4") || !strcmp(cmd, "sendto6")) && argc >= 4) {	/* sendtoN ADDR PORT */
		int v6 = cmd[6] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
		return report(sendto(fd, "krsi", 4, 0, (struct sockaddr *)&ss, len));
	}
	if ((!strcmp(cmd, "sendmsg4") || !strcmp(cmd, "sendmsg6")) && argc >= 4) {	/* sendmsgN ADDR PORT */
		int v6 = cmd[7] == '6';
		char data[] = "krsi";
		struct iovec iov = { data, 4 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		msg.msg_name = &ss;
		msg.msg_namelen = len;
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
		return report(sendmsg(fd, &msg, 0));
	}

	/* ---- signals and ptrace */
	if (!strcmp(cmd, "kill") && argc >= 4)			/* kill PID SIG */
		return report(kill(atoi(argv[2]), atoi(argv[3])));
	if (!strcmp(cmd, "tgkill") && argc >= 5)		/* tgkill TGID TID SIG */
		return report(syscall(SYS_tgkill, atoi(argv[2]), atoi(argv[3]), atoi(argv[4])));
	if (!strcmp(cmd, "pidfd-kill") && argc >= 4) {		/* pidfd-kill PID SIG */
		fd = syscall(SYS_pidfd_open, atoi(argv[2]), 0);
		if (fd < 0)
			return report(fd);
		return report(syscall(SYS_pidfd_send_signal, fd, atoi(argv[3]), NULL, 0));
	}
	/* sigio PID SIG: make PID the owner of a pipe with F_SETSIG SIG, then write to it (kernel sends SIG) */
	if (!strcmp(cmd, "sigio") && argc >= 4) {
		int fds[2];
		if (pipe(fds) < 0)
			return report(-1);
		if (fcntl(fds[0], F_SETOWN, atoi(argv[2])) < 0 || fcntl(fds[0], F_SETSIG, atoi(argv[3])) < 0 ||
		    fcntl(fds[0], F_SETFL, O_ASYNC | O_NONBLOCK) < 0)
			return report(-1);
		return report(write(fds[1], "x", 1));
	}
	if (!strcmp(cmd, "pidfd-getfd") && argc >= 4) {		/* pidfd-getfd PID FD: a copy of another process's fd */
		fd = syscall(SYS_pidfd_open, atoi(argv[2]), 0);
		if (fd < 0)
			return report(fd);
		return report(syscall(SYS_pidfd_getfd, fd, atoi(argv[3]), 0));
	}
	if (!strcmp(cmd, "ptrace-attach") && argc >= 3) {	/* ptrace-attach PID */
		long rc = ptrace(PTRACE_ATTACH, atoi(argv[2]), NULL, NULL);
		if (rc == 0)
			ptrace(PTRACE_DETACH, atoi(argv[2]), NULL, NULL);
		return report(rc);
	}
	if (!strcmp(cmd, "ptrace-seize") && argc >= 3) {	/* ptrace-seize PID */
		long rc = ptrace(PTRACE_SEIZE, atoi(argv[2]), NULL, NULL);
		if (rc == 0)
			ptrace(PTRACE_DETACH, atoi(argv[2]), NULL, NULL);
		return report(rc);
	}
	/* ---- limits and scheduling of another process */
	if (!strcmp(cmd, "prlimit") && argc >= 5) {		/* prlimit PID RESOURCE VALUE (RLIMIT_* number; soft = hard) */
		struct rlimit lim = { strtoul(argv[4], NULL, 0), strtoul(argv[4], NULL, 0) };
		return report(prlimit(atoi(argv[2]), atoi(argv[3]), &lim, NULL));
	}
	if (!strcmp(cmd, "getrlimit") && argc >= 4) {		/* getrlimit PID RESOURCE: reading is allowed */
		struct rlimit lim;
		return report(prlimit(atoi(argv[2]), atoi(argv[3]), NULL, &lim));
	}
	if (!strcmp(cmd, "setpriority") && argc >= 4)		/* setpriority PID NICE (PRIO_PROCESS: one thread) */
		return report(setpriority(PRIO_PROCESS, atoi(argv[2]), atoi(argv[3])));
	if (!strcmp(cmd, "setpriority-user") && argc >= 4)	/* setpriority-user UID NICE (every process of UID) */
		return report(setpriority(PRIO_USER, atoi(argv[2]), atoi(argv[3])));
	if (!strcmp(cmd, "sched-idle") && argc >= 3) {		/* sched-idle PID: SCHED_IDLE */
		struct sched_param param = { 0 };
		return report(sched_setscheduler(atoi(argv[2]), SCHED_IDLE, &param));
	}
	if (!strcmp(cmd, "sched-affinity") && argc >= 4) {	/* sched-affinity PID CPU */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(atoi(argv[3]), &set);
		return report(sched_setaffinity(atoi(argv[2]), sizeof(set), &set));
	}
	if (!strcmp(cmd, "ioprio") && argc >= 5)		/* ioprio PID CLASS DATA (IOPRIO_WHO_PROCESS) */
		return report(syscall(SYS_ioprio_set, 1, atoi(argv[2]), (atoi(argv[3]) << 13) | atoi(argv[4])));
	if (!strcmp(cmd, "timerslack") && argc >= 4) {		/* timerslack PID NS: write /proc/PID/timerslack_ns */
		char path[64];
		snprintf(path, sizeof(path), "/proc/%s/timerslack_ns", argv[2]);
		fd = open(path, O_WRONLY);
		if (fd < 0)
			return report(fd);
		return report(write(fd, argv[3], strlen(argv[3])));
	}

	/* ---- bpf(): file descriptors on existing objects */
	/* bpf-get-id map|prog|link ID [PIN]: an fd by id, and with PIN, that fd pinned at PIN */
	if (!strcmp(cmd, "bpf-get-id") && argc >= 4) {
		union bpf_attr attr = { 0 };
		int op = !strcmp(argv[2], "map") ? BPF_MAP_GET_FD_BY_ID : !strcmp(argv[2], "prog") ? BPF_PROG_GET_FD_BY_ID :
			 !strcmp(argv[2], "link") ? BPF_LINK_GET_FD_BY_ID : -1;
		if (op < 0)
			return usage("bpf-get-id: map, prog or link");
		attr.map_id = strtoul(argv[3], NULL, 0);	/* prog_id, map_id, link_id: one field */
		fd = sys_bpf(op, &attr);
		if (fd < 0 || argc < 5)
			return report(fd);
		memset(&attr, 0, sizeof(attr));
		attr.pathname = (__u64)(unsigned long)argv[4];
		attr.bpf_fd = fd;
		return report(sys_bpf(BPF_OBJ_PIN, &attr));
	}
	if (!strcmp(cmd, "bpf-obj-get") && argc >= 3)		/* bpf-obj-get PATH [rdonly] */
		return report(bpf_obj_get_path(argv[2], argc >= 4 && !strcmp(argv[3], "rdonly")));
	if (!strcmp(cmd, "bpf-link-detach") && argc >= 3) {	/* bpf-link-detach PATH: the pinned link, by its fd */
		union bpf_attr attr = { 0 };
		fd = bpf_obj_get_path(argv[2], 0);
		if (fd < 0)
			return report(fd);
		attr.link_detach.link_fd = fd;
		return report(sys_bpf(BPF_LINK_DETACH, &attr));
	}
	if (!strcmp(cmd, "bpf-pin-new") && argc >= 3) {		/* bpf-pin-new PATH: a new array map, pinned at PATH */
		union bpf_attr attr = { 0 };
		attr.map_type = BPF_MAP_TYPE_ARRAY;
		attr.key_size = 4;
		attr.value_size = 4;
		attr.max_entries = 1;
		fd = sys_bpf(BPF_MAP_CREATE, &attr);
		if (fd < 0)
			return report(fd);
		memset(&attr, 0, sizeof(attr));
		attr.pathname = (__u64)(unsigned long)argv[2];
		attr.bpf_fd = fd;
		return report(sys_bpf(BPF_OBJ_PIN, &attr));
	}

	/* ---- file system operations on pins and mounts */
	if (!strcmp(cmd, "unlink") && argc >= 3)		/* unlink PATH */
		return report(unlink(argv[2]));
	if (!strcmp(cmd, "rmdir") && argc >= 3)			/* rmdir PATH */
		return report(rmdir(argv[2]));
	if (!strcmp(cmd, "rename") && argc >= 4)		/* rename OLD NEW */
		return report(rename(argv[2], argv[3]));
	if (!strcmp(cmd, "remount-rw") && argc >= 3)		/* remount-rw PATH: mount(2) MS_REMOUNT */
		return report(mount(NULL, argv[2], NULL, MS_REMOUNT, NULL));
	if (!strcmp(cmd, "bind-remount") && argc >= 4)		/* bind-remount PATH ro|rw: this mount's flags only */
		return report(mount(NULL, argv[2], NULL, MS_BIND | MS_REMOUNT | (!strcmp(argv[3], "ro") ? MS_RDONLY : 0), NULL));
	if (!strcmp(cmd, "make-private") && argc >= 3)		/* make-private PATH: this mount's propagation */
		return report(mount(NULL, argv[2], NULL, MS_PRIVATE, NULL));
	if (!strcmp(cmd, "fsconfig-rw") && argc >= 3) {	/* fsconfig-rw PATH: fspick + fsconfig reconfigure */
		fd = fspick(AT_FDCWD, argv[2], FSPICK_CLOEXEC);
		if (fd < 0)
			return report(fd);
		if (fsconfig(fd, FSCONFIG_SET_FLAG, "rw", NULL, 0) < 0)
			return report(-1);
		return report(fsconfig(fd, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0));
	}
	if (!strcmp(cmd, "umount") && argc >= 3)		/* umount PATH [lazy] */
		return report(umount2(argv[2], argc >= 4 && !strcmp(argv[3], "lazy") ? MNT_DETACH : 0));
	if (!strcmp(cmd, "mount-over") && argc >= 3)		/* mount-over PATH: a tmpfs laid over PATH */
		return report(mount("krsi-probe", argv[2], "tmpfs", 0, NULL));
	if (!strcmp(cmd, "move-mount") && argc >= 4) {		/* move-mount FROM TO [clone]: the mount at FROM (or a clone of FROM) moved onto TO */
		fd = open_tree(AT_FDCWD, argv[2], OPEN_TREE_CLOEXEC | (argc >= 5 && !strcmp(argv[4], "clone") ? OPEN_TREE_CLONE : 0));
		if (fd < 0)
			return report(fd);
		return report(move_mount(fd, "", AT_FDCWD, argv[3], MOVE_MOUNT_F_EMPTY_PATH));
	}

	/* threads N: start N extra threads, print "READY TGID TID...", then wait to be signalled */
	if (!strcmp(cmd, "threads") && argc >= 3) {
		int n = atoi(argv[2]);
		pthread_t t;
		char path[64];
		struct dirent *d;
		DIR *dir;

		for (int i = 0; i < n; i++)
			pthread_create(&t, NULL, idle_thread, NULL);
		usleep(50000);
		snprintf(path, sizeof(path), "/proc/%d/task", getpid());
		dir = opendir(path);
		printf("READY %d", getpid());
		while (dir && (d = readdir(dir)))
			if (d->d_name[0] != '.')
				printf(" %s", d->d_name);
		printf("\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	return usage("unknown command or missing arguments (see the comments in krsi-probe.c)");
}

int main(int argc, char **argv)
{
	long repeat = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 && !strcmp(argv[1], "--comm")) {
		prctl(PR_SET_NAME, argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc > 2 && !strcmp(argv[1], "--repeat")) {
		repeat = strtol(argv[2], NULL, 10);
		argv += 2;
		argc -= 2;
	}
	if (argc < 2 || repeat < 1)
		return usage("usage: krsi-probe [--comm NAME] [--repeat N] COMMAND ARGS...");
	char *args[argc + 1], number[24];
	int rc;

	snprintf(number, sizeof(number), "%ld", 1L);
	for (int i = 0; i <= argc; i++)
		args[i] = argv[i] && !strcmp(argv[i], "%i") ? number : argv[i];
	quiet = 1;
	for (long i = 1; i <= repeat; i++) {
		snprintf(number, sizeof(number), "%ld", i);
		quiet = i < repeat;
		rc = probe_once(argc, args);
		if (rc == 2 || i == repeat)
			return rc;
		close_range(3, ~0U, 0);	/* the attempt's sockets and files: N attempts must not run out of fds */
	}
	return 2;
}

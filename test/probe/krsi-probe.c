// SPDX-License-Identifier: GPL-2.0
/*
 * krsi-probe: attempts exactly one action that a slurm-krsi policy judges, by the named syscall, and
 * prints what the kernel answered: "OK" or "ERR <ERRNO-NAME>". Exit status 0 for OK, 1 for ERR, 2 for a
 * usage error. Tests and the adversary emulation use it to try the attacker's variants (the other
 * syscall, the other address family, O_TMPFILE, raw ACL xattrs, thread ids) with a process start cost of
 * a few milliseconds, and to tell "denied by the policy" (EPERM) from "failed for another reason".
 *
 *   krsi-probe [--comm NAME] [--userns PIDFILE READYFILE] [--repeat N] COMMAND ARGS...
 *
 * --repeat N attempts the action N times in this one process and prints the last answer only: the same
 * action N times (the fold tests' flood), or N distinct ones where an argument is "%i", which stands for
 * the attempt's number, 1 to N (a port, a file name suffix).
 *
 * --userns PIDFILE READYFILE enters a new user namespace, writes its pid to PIDFILE and waits until
 * READYFILE exists, while the test writes the namespace's uid_map and gid_map as newuidmap and newgidmap
 * would (0 -> the user's uid, 1.. -> subordinate ids); then it switches to namespace uid and gid 1, a
 * subordinate kernel uid, without an exec, and attempts the action as that uid.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sctp.h>
#include <linux/seg6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
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

/*
 * posix_acl_xattr blob: user::rw-, `named` entries user:<2000+i>:r-- (then mask::rw-), group::r--,
 * other::<perm> (perm: 0-7). A valid ACL of any length: the kernel wants the entries in tag order.
 */
static int set_acl(const char *path, const char *attr, int other_perm, int named)
{
	struct entry { uint16_t tag, perm; uint32_t id; };
	size_t n = 3 + (size_t)named + (named > 0), i = 0;
	size_t size = 4 + n * sizeof(struct entry);
	unsigned char *buf = calloc(1, size);
	struct entry *e = (struct entry *)(buf + 4);

	if (!buf)
		return -1;
	*(uint32_t *)buf = 2;
	e[i++] = (struct entry){ 0x01, 6, (uint32_t)-1 };
	for (int u = 0; u < named; u++)
		e[i++] = (struct entry){ 0x02, 4, 2000 + (uint32_t)u };
	e[i++] = (struct entry){ 0x04, 4, (uint32_t)-1 };
	if (named > 0)
		e[i++] = (struct entry){ 0x10, 6, (uint32_t)-1 };
	e[i++] = (struct entry){ 0x20, (uint16_t)other_perm, (uint32_t)-1 };
	int rc = setxattr(path, attr, buf, size, 0);
	free(buf);
	return rc;
}

/* an xattr value given as hex digits ("" for an empty value) */
static int set_xattr_hex(const char *path, const char *name, const char *hex)
{
	size_t len = strlen(hex) / 2;
	unsigned char *buf = malloc(len + 1);

	if (!buf)
		return -1;
	for (size_t i = 0; i < len; i++)
		sscanf(hex + 2 * i, "%2hhx", &buf[i]);
	int rc = setxattr(path, name, buf, len, 0);
	free(buf);
	return rc;
}

/* the probe's one datagram */
static int send_one(int fd, const struct sockaddr_storage *ss, socklen_t len, void *ctl, size_t ctl_len)
{
	char data[] = "krsi";
	struct iovec iov = { data, 4 };
	struct msghdr msg = { .msg_name = (void *)ss, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl, .msg_controllen = ctl_len };
	return sendmsg(fd, &msg, 0);
}

/* IPv4 options with a loose source route through `via` (IPOPT_LSRR, pointer 4, one hop), NOP-padded */
static socklen_t lsrr_option(const char *via, unsigned char opt[8])
{
	memset(opt, 0, 8);
	opt[0] = IPOPT_NOP;
	opt[1] = IPOPT_LSRR;
	opt[2] = 7;
	opt[3] = 4;
	return inet_pton(AF_INET, via, opt + 4) == 1 ? 8 : 0;
}

/* an IPv6 segment routing header (type 4) whose first segment is `via`, then `dst` */
static socklen_t srh_header(const char *via, const char *dst, unsigned char buf[40])
{
	struct ipv6_sr_hdr *srh = (struct ipv6_sr_hdr *)buf;
	memset(buf, 0, 40);
	srh->hdrlen = 4;		/* (8 + 2 * 16) / 8 - 1 */
	srh->type = 4;
	srh->segments_left = 1;
	srh->first_segment = 1;
	if (inet_pton(AF_INET6, dst, &srh->segments[0]) != 1 || inet_pton(AF_INET6, via, &srh->segments[1]) != 1)
		return 0;
	return 40;
}

/* an IPv6 type 2 routing header (Mobile IPv6) carrying `home`: the packet goes to its address first */
static socklen_t rthdr2_header(const char *home, unsigned char buf[24])
{
	memset(buf, 0, 24);
	buf[1] = 2;			/* hdrlen */
	buf[2] = 2;			/* type */
	buf[3] = 1;			/* segments left */
	return inet_pton(AF_INET6, home, buf + 8) == 1 ? 24 : 0;
}

/* one cmsg of `len` bytes of data into ctl (large enough), returns the control length */
static size_t one_cmsg(void *ctl, int level, int type, const void *data, size_t len)
{
	struct cmsghdr *c = ctl;
	c->cmsg_level = level;
	c->cmsg_type = type;
	c->cmsg_len = CMSG_LEN(len);
	memcpy(CMSG_DATA(c), data, len);
	return CMSG_SPACE(len);
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

/* --userns: see the top of this file; -1 (reported on stderr) when the namespace cannot be set up */
static int enter_userns(const char *pidfile, const char *readyfile)
{
	char tmp[4096];
	FILE *f;

	if (unshare(CLONE_NEWUSER)) {
		perror("unshare(CLONE_NEWUSER)");
		return -1;
	}
	/* written whole, then renamed: the test never reads half a pid */
	snprintf(tmp, sizeof(tmp), "%s.tmp", pidfile);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", getpid()) < 0 || fclose(f) || rename(tmp, pidfile)) {
		perror(pidfile);
		return -1;
	}
	for (int i = 0; access(readyfile, F_OK); i++) {
		if (i == 3000) {
			fprintf(stderr, "%s did not appear within 300 s\n", readyfile);
			return -1;
		}
		usleep(100000);
	}
	if (setgroups(0, NULL) || setresgid(1, 1, 1) || setresuid(1, 1, 1)) {
		perror("switching to namespace uid and gid 1");
		return -1;
	}
	return 0;
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
	if (!strcmp(cmd, "setacl") && argc >= 4)		/* setacl PATH OTHERPERM [access|default [NAMED]] */
		return report(set_acl(argv[2], argc >= 5 && !strcmp(argv[4], "default") ?
				      "system.posix_acl_default" : "system.posix_acl_access", atoi(argv[3]),
				      argc >= 6 ? atoi(argv[5]) : 0));
	if (!strcmp(cmd, "setxattr") && argc >= 5)		/* setxattr PATH NAME HEXVALUE */
		return report(set_xattr_hex(argv[2], argv[3], argv[4]));

	/* ---- exec: prints only on failure; on success the program runs */
	if (!strcmp(cmd, "exec") && argc >= 3) {		/* exec PATH [ARGS...] */
		execv(argv[2], argv + 2);
		return report(-1);
	}

	/* ---- sockets */
	/* listenN ADDR PORT, smc-listenN ADDR PORT (an AF_SMC socket, whose listen ends in a TCP listener) */
	if ((!strcmp(cmd, "listen4") || !strcmp(cmd, "listen6") || !strcmp(cmd, "smc-listen4") ||
	     !strcmp(cmd, "smc-listen6")) && argc >= 4) {
		int smc = cmd[0] == 's';
		int v6 = cmd[strlen(cmd) - 1] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = smc ? socket(AF_SMC, SOCK_STREAM, v6) : socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return report(fd);
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

	/* sendto4-unspec / sendto6-unspec ADDR PORT: a UDP datagram whose destination's family field is AF_UNSPEC */
	if ((!strcmp(cmd, "sendto4-unspec") || !strcmp(cmd, "sendto6-unspec")) && argc >= 4) {
		int v6 = cmd[6] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		ss.ss_family = AF_UNSPEC;
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
		return report(sendto(fd, "krsi", 4, 0, (struct sockaddr *)&ss, len));
	}
	/* connect-family FAMILY 4|6 tcp|udp ADDR PORT: connect with a sockaddr whose family field is FAMILY */
	if (!strcmp(cmd, "connect-family") && argc >= 7) {
		int v6 = argv[3][0] == '6';
		len = make_addr(v6, argv[5], argv[6], &ss);
		if (!len)
			return usage("bad address");
		ss.ss_family = (sa_family_t)atoi(argv[2]);
		fd = socket(v6 ? AF_INET6 : AF_INET, sock_type(argc, argv, 4), 0);
		return report(connect(fd, (struct sockaddr *)&ss, len));
	}
	/*
	 * raw4 / raw6 ADDR: an ICMP echo on a raw socket, the destination's family field 0 (needs CAP_NET_RAW);
	 * ping4 / ping6 ADDR: an ICMP echo on an unprivileged ping socket (net.ipv4.ping_group_range)
	 */
	if ((!strcmp(cmd, "raw4") || !strcmp(cmd, "raw6") || !strcmp(cmd, "ping4") || !strcmp(cmd, "ping6")) && argc >= 3) {
		int raw = cmd[0] == 'r';
		int v6 = cmd[strlen(cmd) - 1] == '6';
		unsigned char echo[8] = { v6 ? 128 : 8 };
		len = make_addr(v6, argv[2], "0", &ss);
		if (!len)
			return usage("bad address");
		if (raw)
			ss.ss_family = 0;
		fd = socket(v6 ? AF_INET6 : AF_INET, raw ? SOCK_RAW : SOCK_DGRAM, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
		if (fd < 0)
			return report(fd);
		return report(sendto(fd, echo, sizeof(echo), 0, (struct sockaddr *)&ss, len));
	}
	/* tfo4 / tfo6 ADDR PORT: TCP fast open, sendto(MSG_FASTOPEN) connects without connect() */
	if ((!strcmp(cmd, "tfo4") || !strcmp(cmd, "tfo6")) && argc >= 4) {
		int v6 = cmd[3] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		return report(sendto(fd, "krsi", 4, MSG_FASTOPEN, (struct sockaddr *)&ss, len));
	}
	/* smc-connect4 / smc-connect6 ADDR PORT: an AF_SMC socket (falls back to TCP) */
	if ((!strcmp(cmd, "smc-connect4") || !strcmp(cmd, "smc-connect6")) && argc >= 4) {
		int v6 = cmd[11] == '6';
		len = make_addr(v6, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(AF_SMC, SOCK_STREAM, v6 ? 1 : 0);
		if (fd < 0)
			return report(fd);
		return report(connect(fd, (struct sockaddr *)&ss, len));
	}
	/* rds-sendto ADDR PORT: an RDS message (bound to 127.0.0.1) to a peer its transport would connect to */
	if (!strcmp(cmd, "rds-sendto") && argc >= 4) {
		struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		len = make_addr(0, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(AF_RDS, SOCK_SEQPACKET, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0)
			return report(-1);
		return report(sendto(fd, "krsi", 4, 0, (struct sockaddr *)&ss, len));
	}
	/* sctp-connect ADDR PORT, sctp-connectx ADDR,ADDR... PORT (IPv4 addresses; packed sockaddr_in list) */
	if (!strcmp(cmd, "sctp-connect") && argc >= 4) {
		len = make_addr(0, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		fd = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
		if (fd < 0)
			return report(fd);
		return report(connect(fd, (struct sockaddr *)&ss, len));
	}
	if (!strcmp(cmd, "sctp-connectx") && argc >= 4) {
		struct sockaddr_in list[8];
		int n = 0;
		char *save, *tok, *addrs = strdup(argv[2]);
		for (tok = strtok_r(addrs, ",", &save); tok && n < 8; tok = strtok_r(NULL, ",", &save)) {
			if (!make_addr(0, tok, argv[3], &ss))
				return usage("bad address");
			memcpy(&list[n++], &ss, sizeof(list[0]));
		}
		fd = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
		if (fd < 0)
			return report(fd);
		return report(setsockopt(fd, IPPROTO_SCTP, SCTP_SOCKOPT_CONNECTX, list, n * sizeof(list[0])));
	}
	/* sctp-sendmsg ADDR PORT [EXTRA]: a one-to-many SCTP send that sets up an association with ADDR (and EXTRA as a second peer) */
	if (!strcmp(cmd, "sctp-sendmsg") && argc >= 4) {
		unsigned char ctl[64] = {};
		size_t ctl_len = 0;
		struct in_addr extra;
		len = make_addr(0, argv[2], argv[3], &ss);
		if (!len)
			return usage("bad address");
		if (argc >= 5) {
			if (inet_pton(AF_INET, argv[4], &extra) != 1)
				return usage("bad address");
			ctl_len = one_cmsg(ctl, IPPROTO_SCTP, SCTP_DSTADDRV4, &extra, sizeof(extra));
		}
		fd = socket(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP);
		if (fd < 0)
			return report(fd);
		return report(send_one(fd, &ss, len, ctl_len ? ctl : NULL, ctl_len));
	}
	/*
	 * Rerouting options: lsrr-connect VIA ADDR PORT (IP_OPTIONS with a loose source route, then a TCP
	 * connect), srh-connect VIA ADDR PORT (IPV6_RTHDR with a segment routing header, then a TCP connect),
	 * retopts-sendto VIA ADDR PORT (a UDP datagram with an IP_RETOPTS source route),
	 * rthdr-sendto VIA ADDR PORT (a UDP datagram with a type 2 routing header in an IPV6_RTHDR cmsg).
	 * The first step that fails is reported.
	 */
	if ((!strcmp(cmd, "lsrr-connect") || !strcmp(cmd, "srh-connect")) && argc >= 5) {
		int v6 = cmd[0] == 's';
		unsigned char opt[40];
		socklen_t optlen = v6 ? srh_header(argv[2], argv[3], opt) : lsrr_option(argv[2], opt);
		len = make_addr(v6, argv[3], argv[4], &ss);
		if (!len || !optlen)
			return usage("bad address");
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		if (setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RTHDR : IP_OPTIONS, opt, optlen) < 0)
			return report(-1);
		return report(connect(fd, (struct sockaddr *)&ss, len));
	}
	if ((!strcmp(cmd, "retopts-sendto") || !strcmp(cmd, "rthdr-sendto")) && argc >= 5) {
		int v6 = cmd[1] == 't';
		unsigned char opt[40], ctl[96] = {};
		socklen_t optlen = v6 ? rthdr2_header(argv[2], opt) : lsrr_option(argv[2], opt);
		len = make_addr(v6, argv[3], argv[4], &ss);
		if (!len || !optlen)
			return usage("bad address");
		fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
		size_t ctl_len = one_cmsg(ctl, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_RTHDR : IP_RETOPTS, opt, optlen);
		return report(send_one(fd, &ss, len, ctl, ctl_len));
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
	if (argc > 3 && !strcmp(argv[1], "--userns")) {
		if (enter_userns(argv[2], argv[3]))
			return 2;
		argv += 3;
		argc -= 3;
	}
	if (argc > 2 && !strcmp(argv[1], "--repeat")) {
		repeat = strtol(argv[2], NULL, 10);
		argv += 2;
		argc -= 2;
	}
	if (argc < 2 || repeat < 1)
		return usage("usage: krsi-probe [--comm NAME] [--userns PIDFILE READYFILE] [--repeat N] COMMAND ARGS...");
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

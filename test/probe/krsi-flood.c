// SPDX-License-Identifier: GPL-2.0
/*
 * krsi-flood: what a hostile local user can do to the agent's two listeners, as fast as one process can:
 * keep CONNS connections open to the control socket and CONNS to the metrics endpoint, each with
 * requests pipelined (up to 8 outstanding), reconnecting at once whenever the agent closes or refuses
 * one, for SECONDS or until SIGTERM. It prints FLOODING once the first answer came back, and at the end
 * counts what it got, so that a test can show the flood was real:
 *
 *   krsi-flood SOCKET_PATH METRICS_PORT SECONDS CONNS
 *   RESULT <target> sent=N answered=N ok=N forbidden=N limited=N other=N closed=N refused=N
 *
 * one line per target (socket, metrics). answered counts HTTP status lines; ok 2xx, forbidden 403, limited
 * 429 and 503; closed: connections the agent ended; refused: connects that failed. Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define PIPELINE 8

struct stats { long sent, answered, ok, forbidden, limited, other, closed, refused; };

struct conn {
	int fd;
	int target;		/* 0: control socket, 1: metrics */
	long outstanding;
	char tail[16];		/* the end of the previous read: a status line may span two reads */
};

static const char *requests[2] = {
	"GET /v1/status HTTP/1.1\r\nHost: krsi\r\n\r\n",
	"GET /metrics HTTP/1.1\r\nHost: krsi\r\n\r\n",
};
static struct stats stats[2];
static struct sockaddr_un unix_addr;
static struct sockaddr_in tcp_addr;
static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void open_conn(struct conn *c)
{
	int unix_target = c->target == 0;

	c->outstanding = 0;
	c->tail[0] = 0;
	c->fd = socket(unix_target ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		stats[c->target].refused++;
		return;
	}
	if (connect(c->fd, unix_target ? (struct sockaddr *)&unix_addr : (struct sockaddr *)&tcp_addr,
		    unix_target ? sizeof(unix_addr) : sizeof(tcp_addr)) < 0 && errno != EINPROGRESS) {
		stats[c->target].refused++;
		close(c->fd);
		c->fd = -1;
	}
}

static void drop_conn(struct conn *c)
{
	stats[c->target].closed++;
	close(c->fd);
	c->fd = -1;
}

/* count "HTTP/1.x NNN" status lines in what was read (with the previous read's tail in front) */
static void count_answers(struct conn *c, const char *data, ssize_t n)
{
	char buf[65536 + sizeof(c->tail)];
	size_t tail = strlen(c->tail), len = tail + n;
	struct stats *s = &stats[c->target];

	memcpy(buf, c->tail, tail);
	memcpy(buf + tail, data, n);
	for (char *p = buf; (p = memmem(p, len - (p - buf), "HTTP/1.", 7)) && p + 12 <= buf + len; p += 12) {
		int code = atoi(p + 9);

		s->answered++;
		c->outstanding--;
		if (code >= 200 && code < 300)
			s->ok++;
		else if (code == 403)
			s->forbidden++;
		else if (code == 429 || code == 503)
			s->limited++;
		else
			s->other++;
	}
	/* keep the last bytes, minus a whole status line already counted */
	size_t keep = len < sizeof(c->tail) - 1 ? len : sizeof(c->tail) - 1;
	memcpy(c->tail, buf + len - keep, keep);
	c->tail[keep] = 0;
	if (memmem(c->tail, keep, "HTTP/1.", 7))
		c->tail[0] = 0;
}

int main(int argc, char **argv)
{
	static struct conn conns[2 * MAX_CONNS];
	static struct pollfd pfds[2 * MAX_CONNS];
	static char data[65536];
	double end;
	int n;

	if (argc != 5) {
		fprintf(stderr, "usage: krsi-flood SOCKET_PATH METRICS_PORT SECONDS CONNS\n");
		return 2;
	}
	unix_addr.sun_family = AF_UNIX;
	strncpy(unix_addr.sun_path, argv[1], sizeof(unix_addr.sun_path) - 1);
	tcp_addr.sin_family = AF_INET;
	tcp_addr.sin_port = htons(atoi(argv[2]));
	tcp_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	end = now() + atof(argv[3]);
	n = atoi(argv[4]);
	if (n < 1 || n > MAX_CONNS) {
		fprintf(stderr, "krsi-flood: CONNS must be 1 to %d\n", MAX_CONNS);
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < 2 * n; i++) {
		conns[i].target = i % 2;
		open_conn(&conns[i]);
	}
	for (int said = 0; !stop && now() < end;) {
		if (!said && stats[0].answered + stats[1].answered > 0) {
			puts("FLOODING");
			said = 1;
		}
		for (int i = 0; i < 2 * n; i++) {
			struct conn *c = &conns[i];

			if (c->fd < 0)
				open_conn(c);
			pfds[i].fd = c->fd;
			pfds[i].events = POLLIN | (c->outstanding < PIPELINE ? POLLOUT : 0);
			pfds[i].revents = 0;
		}
		if (poll(pfds, 2 * n, 100) < 0)
			continue;
		for (int i = 0; i < 2 * n; i++) {
			struct conn *c = &conns[i];
			const char *req = requests[c->target];

			if (c->fd < 0 || !pfds[i].revents)
				continue;
			if (pfds[i].revents & POLLIN) {
				ssize_t got = read(c->fd, data, sizeof(data));

				if (got <= 0 && !(got < 0 && errno == EAGAIN)) {
					drop_conn(c);
					continue;
				}
				if (got > 0)
					count_answers(c, data, got);
			}
			if (pfds[i].revents & (POLLERR | POLLHUP)) {
				drop_conn(c);
				continue;
			}
			if ((pfds[i].revents & POLLOUT) && c->outstanding < PIPELINE) {
				if (write(c->fd, req, strlen(req)) == (ssize_t)strlen(req)) {
					stats[c->target].sent++;
					c->outstanding++;
				}
			}
		}
	}
	for (int t = 0; t < 2; t++) {
		struct stats *s = &stats[t];

		printf("RESULT %s sent=%ld answered=%ld ok=%ld forbidden=%ld limited=%ld other=%ld closed=%ld refused=%ld\n",
		       t == 0 ? "socket" : "metrics", s->sent, s->answered, s->ok, s->forbidden, s->limited, s->other,
		       s->closed, s->refused);
	}
	return 0;
}

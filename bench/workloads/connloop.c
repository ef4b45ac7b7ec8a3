// SPDX-License-Identifier: GPL-2.0
/*
 * connloop: TCP connect + accept + close over loopback, the tcpkali stand-in (one node, no network).
 *   connloop LOOPS [PORT]
 * Every connect goes through socket_connect; a strict job's skconnections looks the destination up in
 * its CIDR trie (127.0.0.1 is allowed) and lets it through.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	long loops, i, errors = 0;
	long long begin;
	int one = 1, lfd;

	loops = arg_long(argc, argv, 1, 1000);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)arg_long(argc, argv, 2, 40123));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 128) < 0) {
		perror("bind/listen");
		return 1;
	}
	wait_for_quiet_cpu();
	begin = now_ns();
	for (i = 0; i < loops; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0), a;
		struct linger lg = { 1, 0 };

		/* RST on close: no TIME_WAIT pile-up over thousands of loops */
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		if (connect(c, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
			errors++;
			close(c);
			continue;
		}
		a = accept(lfd, NULL, NULL);
		if (a < 0)
			errors++;
		else
			close(a);
		close(c);
	}
	result(loops, now_ns() - begin, errors);
	close(lfd);
	return 0;
}

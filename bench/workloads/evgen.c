// SPDX-License-Identifier: GPL-2.0
/*
 * evgen: decisions at a controlled rate, for the event pipeline and flood benchmarks.
 *   evgen RATE SECONDS [ADDR] [distinct|same] [FIRST]
 * Each operation is one connect(2) of a UDP socket to a documentation address the job's profile lists
 * in connect_deny: with skconnections = audit the program logs and allows it, then the connect fails
 * with ENETUNREACH (the VM has no route); with enforce it is denied. Nothing leaves the machine and no
 * state builds up. One syscall per event keeps the generator cheap enough to reach high rates.
 * distinct (the default): each operation's destination is another one (ADDR's /24, every port), so that
 * no two of them within a second are the same action and the kernel folds none; operation n goes to
 * destination FIRST + n (default 0), so that consecutive runs can go on where the previous one stopped.
 * same: always ADDR port 9, one action repeated. RATE 0 runs unpaced for SECONDS.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "common.h"

/* operation n's destination: port 1 + n % 65535, host (n / 65535) % 256 of the /24 */
static inline void next_destination(struct sockaddr_in *addr, unsigned int net, long n)
{
	addr->sin_port = htons(1 + n % 65535);
	addr->sin_addr.s_addr = htonl(net | ((n / 65535) & 0xff));
}

int main(int argc, char **argv)
{
	long rate = arg_long(argc, argv, 1, 1000), seconds = arg_long(argc, argv, 2, 1), first = arg_long(argc, argv, 5, 0);
	long ops = 0, errors = 0;
	int distinct = argc <= 4 || strcmp(argv[4], "same") != 0;
	struct sockaddr_in addr;
	unsigned int net;
	struct pacer pacer;
	long long begin, end;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons(9);
	inet_pton(AF_INET, argc > 3 ? argv[3] : "192.0.2.1", &addr.sin_addr);
	net = ntohl(addr.sin_addr.s_addr) & 0xffffff00;
	pacer_init(&pacer, rate);
	begin = now_ns();
	end = begin + seconds * 1000000000LL;
	if (rate > 0) {
		for (long i = 0; i < rate * seconds; i++) {
			if (distinct)
				next_destination(&addr, net, first + ops);
			if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
				errors++; /* a connect that succeeded means the address was routable: not expected */
			ops++;
			pacer_wait(&pacer);
		}
	} else {
		while (now_ns() < end) {
			for (int i = 0; i < 100; i++) {
				if (distinct)
					next_destination(&addr, net, first + ops + i);
				if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
					errors++;
			}
			ops += 100;
		}
	}
	result(ops, now_ns() - begin, errors);
	return 0;
}

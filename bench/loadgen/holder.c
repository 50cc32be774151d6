// holder: the one process of a busy-node benchmark pod. It holds n TCP connections open
// until its stdin closes: "listen ip port n" accepts n, "connect ip port n" opens n.
// It prints "ready" once all n are established. Small on purpose: 500 of them must fit in
// a few MiB, which Go helper processes would not.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
	perror(what);
	exit(1);
}

int main(int argc, char **argv) {
	if (argc != 5) {
		fprintf(stderr, "usage: holder listen|connect ip port n\n");
		return 2;
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
	if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1)
		die("address");
	int n = atoi(argv[4]);
	if (strcmp(argv[1], "listen") == 0) {
		int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(l, (struct sockaddr *)&sa, sizeof sa) || listen(l, n + 16))
			die("listen");
		printf("listening\n");
		fflush(stdout);
		for (int i = 0; i < n; i++)
			if (accept(l, NULL, NULL) < 0)
				die("accept");
	} else {
		for (int i = 0; i < n; i++) {
			int s = socket(AF_INET, SOCK_STREAM, 0);
			if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa))
				die("connect");
		}
	}
	printf("ready\n");
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0) {
	}
	return 0;
}

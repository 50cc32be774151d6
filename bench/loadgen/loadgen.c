// SPDX-License-Identifier: Apache-2.0
/* podnet-loadgen: the leanest short-connection load there is, for podnet's full-load tests.
 *
 * One process, run inside a network namespace the harness created: `workers` server threads
 * accept and close at once, `workers` client threads connect, wait for the server's FIN and
 * close, as fast as the machine allows, for `seconds`. The server closes first so the
 * TIME_WAIT state stays on the server side and clients never run out of ephemeral ports. Each
 * connection is one connect, one accept and one close per end: 4 podnet events.
 *
 * The two ends can also run apart, in different namespaces (a client pod, backend pods):
 *   podnet-loadgen ADDR PORT WORKERS SECONDS      both ends, over ADDR
 *   podnet-loadgen -c ADDR PORT WORKERS SECONDS   clients only, to a server elsewhere (a Service VIP)
 *   podnet-loadgen -s ADDR PORT WORKERS           server only: prints "listening" once bound,
 *                                                 serves until its stdin closes
 *
 * Clients print one JSON line: {"connections":N,"errors":N,"elapsed_ns":N}. `connections`
 * counts connects that succeeded; a failed connect (errors) is one podnet event, not four.
 * The address must be loopback or one of the harness's own namespaces: nothing else is a target.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static atomic_long connections, errors;
static atomic_int stop;
static int listener;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(listener, NULL, NULL);

		if (fd < 0) {
			if (atomic_load(&stop) || errno == EINVAL || errno == EBADF)
				return NULL;
			continue;
		}
		close(fd);
	}
}

static void *dial(void *arg)
{
	char buf[16];

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0) {
			atomic_fetch_add(&errors, 1);
			continue;
		}
		if (connect(fd, (struct sockaddr *)&target, sizeof(target)) == 0) {
			atomic_fetch_add_explicit(&connections, 1, memory_order_relaxed);
			while (read(fd, buf, sizeof(buf)) > 0)
				; /* until the server's FIN */
		} else {
			atomic_fetch_add(&errors, 1);
		}
		close(fd);
	}
	return NULL;
}

static int parse(struct sockaddr_in *addr, const char *ip, const char *port, const char *workers)
{
	int n = atoi(workers);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_port = htons(atoi(port));
	if (inet_pton(AF_INET, ip, &addr->sin_addr) != 1) {
		fprintf(stderr, "loadgen: %s is not an IPv4 address\n", ip);
		return -1;
	}
	if (n < 1 || n > 256) {
		fprintf(stderr, "loadgen: WORKERS must be 1-256\n");
		return -1;
	}
	return n;
}

/* start_servers listens on target and starts `workers` accepting threads. */
static pthread_t *start_servers(int workers)
{
	int one = 1;
	pthread_t *servers;

	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(listener, (struct sockaddr *)&target, sizeof(target)) || listen(listener, 4096)) {
		perror("loadgen: listen");
		return NULL;
	}
	servers = calloc(workers, sizeof(*servers));
	for (int i = 0; i < workers; i++)
		pthread_create(&servers[i], NULL, serve, NULL);
	return servers;
}

static void stop_servers(pthread_t *servers, int workers)
{
	atomic_store(&stop, 1);
	shutdown(listener, SHUT_RDWR);
	for (int i = 0; i < workers; i++)
		pthread_join(servers[i], NULL);
	close(listener);
}

/* run_clients connects from `workers` threads for `seconds` and prints the JSON line. */
static void run_clients(int workers, double seconds)
{
	pthread_t *clients = calloc(workers, sizeof(*clients));
	long long start = now_ns(), elapsed;
	struct timespec run;

	for (int i = 0; i < workers; i++)
		pthread_create(&clients[i], NULL, dial, NULL);
	run.tv_sec = (time_t)seconds;
	run.tv_nsec = (long)((seconds - (double)run.tv_sec) * 1e9);
	nanosleep(&run, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < workers; i++)
		pthread_join(clients[i], NULL);
	elapsed = now_ns() - start;
	printf("{\"connections\":%ld,\"errors\":%ld,\"elapsed_ns\":%lld}\n", atomic_load(&connections),
	       atomic_load(&errors), elapsed);
}

int main(int argc, char **argv)
{
	const char *mode = "";
	int workers;
	double seconds = 0;
	pthread_t *servers;
	char c;

	if (argc > 1 && (strcmp(argv[1], "-c") == 0 || strcmp(argv[1], "-s") == 0)) {
		mode = argv[1];
		argc--;
		argv++;
	}
	if (argc != (strcmp(mode, "-s") == 0 ? 4 : 5)) {
		fprintf(stderr, "usage: %s [-c] ADDR PORT WORKERS SECONDS\n       %s -s ADDR PORT WORKERS\n", argv[0],
			argv[0]);
		return 2;
	}
	workers = parse(&target, argv[1], argv[2], argv[3]);
	if (workers < 0)
		return 2;
	if (argc == 5 && (seconds = atof(argv[4])) <= 0) {
		fprintf(stderr, "loadgen: SECONDS must be > 0\n");
		return 2;
	}

	if (strcmp(mode, "-c") == 0) {
		run_clients(workers, seconds);
		return 0;
	}
	servers = start_servers(workers);
	if (servers == NULL)
		return 1;
	if (strcmp(mode, "-s") == 0) {
		printf("listening\n");
		fflush(stdout);
		while (read(0, &c, 1) > 0)
			; /* until the harness closes our stdin */
		stop_servers(servers, workers);
		return 0;
	}
	run_clients(workers, seconds);
	/* Every client has its answer: the servers have accepted all there is. */
	stop_servers(servers, workers);
	return 0;
}

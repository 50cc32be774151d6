// SPDX-License-Identifier: Apache-2.0
/* podnet-loadgen: the leanest short-connection load there is, for podnet's full-load tests.
 *
 * One process, run inside a network namespace the harness created: `workers` server threads
 * accept and close at once, `workers` client threads connect, wait for the server's FIN and
 * close, as fast as the machine allows, for `seconds`. The server closes first so the
 * TIME_WAIT state stays on the server side and clients never run out of ephemeral ports. Each
 * connection is one connect, one accept and one close per end: 4 podnet events.
 *
 * Prints one JSON line: {"connections":N,"errors":N,"elapsed_ns":N}. `connections` counts
 * connects that succeeded; a failed connect (errors) is one podnet event, not four.
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

int main(int argc, char **argv)
{
	int workers, one = 1;
	double seconds;
	pthread_t *servers, *clients;
	long long start, elapsed;
	struct timespec run;

	if (argc != 5) {
		fprintf(stderr, "usage: %s ADDR PORT WORKERS SECONDS\n", argv[0]);
		return 2;
	}
	memset(&target, 0, sizeof(target));
	target.sin_family = AF_INET;
	target.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) {
		fprintf(stderr, "loadgen: %s is not an IPv4 address\n", argv[1]);
		return 2;
	}
	workers = atoi(argv[3]);
	seconds = atof(argv[4]);
	if (workers < 1 || workers > 256 || seconds <= 0) {
		fprintf(stderr, "loadgen: WORKERS must be 1-256 and SECONDS > 0\n");
		return 2;
	}

	listener = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (listener < 0 || bind(listener, (struct sockaddr *)&target, sizeof(target)) ||
	    listen(listener, 4096)) {
		perror("loadgen: listen");
		return 1;
	}
	servers = calloc(workers, sizeof(*servers));
	clients = calloc(workers, sizeof(*clients));
	for (int i = 0; i < workers; i++)
		pthread_create(&servers[i], NULL, serve, NULL);

	start = now_ns();
	for (int i = 0; i < workers; i++)
		pthread_create(&clients[i], NULL, dial, NULL);
	run.tv_sec = (time_t)seconds;
	run.tv_nsec = (long)((seconds - (double)run.tv_sec) * 1e9);
	nanosleep(&run, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < workers; i++)
		pthread_join(clients[i], NULL);
	elapsed = now_ns() - start;

	/* Every client has its answer: the servers have accepted all there is. */
	shutdown(listener, SHUT_RDWR);
	for (int i = 0; i < workers; i++)
		pthread_join(servers[i], NULL);
	close(listener);

	printf("{\"connections\":%ld,\"errors\":%ld,\"elapsed_ns\":%lld}\n", atomic_load(&connections),
	       atomic_load(&errors), elapsed);
	return 0;
}

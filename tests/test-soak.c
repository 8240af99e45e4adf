/*
 * test-soak.c: a million jobs through one broker; its memory, descriptors
 * and children afterwards. Not part of the suite: tests/soak.sh runs it.
 *
 * The real patchbayd runs a pool of four libpatchbay workers
 * (tests/chaos-worker.c, capacity 64, answering at once) and two
 * `patchbay worker --exec cat` workers. Four in-process libpatchbay
 * clients keep 256 jobs each in flight: 99 jobs in 100 go to the library
 * workers, one to the exec workers; one in 100 is cancelled at once, one
 * in 100 has a 1 ms timeout, all have retries 3. Every 250 000 jobs one
 * client submits a burst of 100 000 at once (the broker queues them), every
 * 5 s a random pool process is killed with SIGKILL, and every 50 000 jobs
 * each client connects anew.
 *
 * After the warm-up (PATCHBAY_SOAK_WARMUP jobs, default 100 000) the
 * clients drain, the broker is given two sweeps (it gives memory back from
 * its sweep) and its RSS and descriptors are measured; then the rest of the
 * PATCHBAY_SOAK_JOBS (default 1 000 000) run, drain, and are measured the
 * same way. It must hold that every job got exactly one result (no
 * DISCONNECTED), the RSS is within 10% of the warm-up's, the descriptors
 * are as many, and the broker has no zombie child. The figures are
 * printed on one line.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patchbay.h"
#include "tests/harness.h"

#define SOAK_CLIENTS	4
#define SOAK_INFLIGHT	256
#define SOAK_RECONNECT	50000
#define SOAK_POOL	6
#define SOAK_BURST	100000	/* jobs queued at once... */
#define SOAK_BURST_EVERY 250000	/* ...every this many */

/* What the soak counts. */
static struct {
	struct harness_broker	 broker;
	struct pb_client	*c[SOAK_CLIENTS];
	unsigned long		 submitted, results, status[PB_DISCONNECTED + 1];
	unsigned long		 bad_payload, since_reconnect[SOAK_CLIENTS];
	unsigned		 kills;
} soak;

/* pb_result_fn: counts one result and checks an OK payload. */
static void
soak_result(struct pb_client *c, struct pb_result *r, void *arg)
{
	/* arg: NULL for the library workers ("ok:N"), else `cat` ("0 ok N"). */
	const char	*want = arg == NULL ? "ok:" : "0 ok ";

	(void)c;
	soak.results++;
	if ((unsigned)r->status <= PB_DISCONNECTED)
		soak.status[r->status]++;
	if (r->status == PB_OK && (r->len < strlen(want) ||
	    memcmp(r->payload, want, strlen(want)) != 0))
		soak.bad_payload++;
	pb_result_free(r);
}

/* A value from /proc/PID/status ("VmRSS:"), in kB, or -1. */
static long
soak_status_kb(pid_t pid, const char *key)
{
	char	 path[64], *s, *p;
	long	 v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((s = harness_read_file(path)) == NULL)
		return -1;
	if ((p = strstr(s, key)) != NULL)
		v = strtol(p + strlen(key), NULL, 10);
	free(s);
	return v;
}

/* The broker's children: live ones into pids (at most max), zombies. */
static int
soak_children(pid_t *pids, int max, int *ret_zombies)
{
	DIR		*d = opendir("/proc");
	struct dirent	*e;
	char		 path[300], *s, *paren;
	int		 n = 0, ppid;
	char		 state;

	*ret_zombies = 0;
	ck_assert(d != NULL);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((s = harness_read_file(path)) == NULL)
			continue;
		if ((paren = strrchr(s, ')')) != NULL &&
		    sscanf(paren + 2, "%c %d", &state, &ppid) == 2 &&
		    ppid == soak.broker.pid) {
			if (state == 'Z')
				(*ret_zombies)++;
			else if (n < max)
				pids[n++] = atoi(e->d_name);
		}
		free(s);
	}
	closedir(d);
	return n;
}

/* Connects client i (again). */
static void
soak_connect(int i)
{
	pb_client_free(soak.c[i]);
	soak.c[i] = NULL;
	ck_assert_int_eq(pb_client_connect(i % 2 ? soak.broker.tcp_ep :
	    soak.broker.unix_ep, NULL, &soak.c[i]), 0);
	soak.since_reconnect[i] = 0;
}

/* Submits one job on client i, the n-th of the run. */
static void
soak_submit(int i, unsigned long n)
{
	struct pb_run_options	opts = { .retries = 3 };
	uint8_t			id[PB_ID_LEN];
	char			payload[48];
	const char		*fn = n % 100 == 0 ? "sexec" : "slib";
	int			r;

	snprintf(payload, sizeof(payload), "0 ok %lu", n);
	if (n % 100 == 7)
		opts.timeout_ms = 1;
	r = pb_client_submit(soak.c[i], fn, payload, strlen(payload), &opts,
	    soak_result, NULL, n % 100 == 0 ? (void *)fn : NULL, id);
	ck_assert_msg(r == 0, "submit: %s", strerror(-r));
	if (n % 100 == 13)
		ck_assert_int_eq(pb_client_cancel(soak.c[i], id), 0);
	soak.submitted++;
	soak.since_reconnect[i]++;
}

/* Condition: every pool process is running again. */
static bool
soak_pool_up(void *arg)
{
	const char	*argv[] = { harness_cli(), "ctl", "--broker",
			    soak.broker.unix_ep, "--json", "ps", NULL };
	char		*out = NULL, *p;
	int		 n = 0;

	(void)arg;
	harness_run(argv, NULL, NULL, 0, &out, NULL, 30000);
	for (p = out; p != NULL && (p = strstr(p, "\"running\"")) != NULL;
	    p++)
		n++;
	free(out);
	return n == SOAK_POOL;
}

/*
 * Runs jobs until total were submitted and answered, killing a pool
 * process every 5 s and reconnecting clients every SOAK_RECONNECT jobs.
 */
static void
soak_run(unsigned long total)
{
	unsigned long long	next_kill = harness_now_ms() + 5000;
	unsigned long		burst_end = 0;
	pid_t			pids[64];
	int			n, zombies;

	while (soak.submitted < total || soak.results < soak.submitted) {
		for (int i = 0; i < SOAK_CLIENTS; i++) {
			if (soak.since_reconnect[i] >= SOAK_RECONNECT &&
			    pb_client_pending(soak.c[i]) == 0)
				soak_connect(i);
			/* A burst: one client queues SOAK_BURST at once. */
			if (i == 0 && soak.submitted % SOAK_BURST_EVERY == 0 &&
			    soak.submitted < total && burst_end <= soak.submitted)
				burst_end = soak.submitted + SOAK_BURST;
			while (soak.submitted < total &&
			    soak.since_reconnect[i] < SOAK_RECONNECT &&
			    (pb_client_pending(soak.c[i]) < SOAK_INFLIGHT ||
			    (i == 0 && soak.submitted < burst_end)))
				soak_submit(i, soak.submitted);
			ck_assert_int_ge(pb_client_dispatch(soak.c[i], 0), 0);
		}
		if (harness_now_ms() >= next_kill) {
			n = soak_children(pids, 64, &zombies);
			if (n > 0 && kill(pids[soak.kills % (unsigned)n],
			    SIGKILL) == 0)
				soak.kills++;
			next_kill = harness_now_ms() + 5000;
		}
		/* Wait for something on the first busy client. */
		for (int i = 0; i < SOAK_CLIENTS; i++) {
			if (pb_client_pending(soak.c[i]) > 0) {
				ck_assert_int_ge(pb_client_dispatch(soak.c[i],
				    5), 0);
				break;
			}
		}
	}
}

/* Waits for the pool and two sweeps; the broker's RSS, peak and fds. */
static void
soak_measure(long *rss, long *hwm, int *fds)
{
	ck_assert_msg(harness_wait_until(soak_pool_up, NULL, 30000),
	    "the pool did not come back");
	/* The sweep (every second) gives memory back after a burst. */
	usleep(getenv("PATCHBAY_SOAK_SETTLE_MS") != NULL ?
	    (useconds_t)atoi(getenv("PATCHBAY_SOAK_SETTLE_MS")) * 1000 :
	    2500000);
	*rss = soak_status_kb(soak.broker.pid, "VmRSS:");
	*hwm = soak_status_kb(soak.broker.pid, "VmHWM:");
	*fds = harness_fd_count(soak.broker.pid);
}

START_TEST(soak_million_jobs)
{
	const char		*env_jobs = getenv("PATCHBAY_SOAK_JOBS");
	const char		*env_warm = getenv("PATCHBAY_SOAK_WARMUP");
	unsigned long		 total = env_jobs != NULL ?
				    strtoul(env_jobs, NULL, 10) : 1000000;
	unsigned long		 warm = env_warm != NULL ?
				    strtoul(env_warm, NULL, 10) : 100000;
	char			 dir[256], conf[300], worker[300];
	const char		*extra[] = { "-c", conf, "--log-level", "info",
				    NULL };
	unsigned long long	 t0, t1;
	long			 rss0, rss1, hwm0, hwm1;
	int			 fds0, fds1, zombies = 0;
	pid_t			 pids[64];
	FILE			*f;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(conf, sizeof(conf), "%s/soak.conf", dir);
	snprintf(worker, sizeof(worker), "%s/tests/chaos-worker",
	    getenv("PATCHBAY_BUILDDIR") != NULL ?
	    getenv("PATCHBAY_BUILDDIR") : ".");
	ck_assert((f = fopen(conf, "w")) != NULL);
	fprintf(f, "[pool:slib]\ncommand = %s slib 64\ninstances = 4\n"
	    "max_restarts = -1\nbackoff = 10ms..100ms\n\n"
	    "[pool:sexec]\ncommand = %s worker sexec --exec cat --capacity 8\n"
	    "instances = 2\nmax_restarts = -1\nbackoff = 10ms..100ms\n",
	    worker, harness_cli());
	ck_assert_int_eq(fclose(f), 0);
	/* --log-level info: the last word wins over the harness's debug. */
	harness_broker_start(&soak.broker, extra, false);
	ck_assert(harness_wait_until(soak_pool_up, NULL, 30000));
	for (int i = 0; i < SOAK_CLIENTS; i++)
		soak_connect(i);

	t0 = harness_now_ms();
	soak_run(warm < total ? warm : total);
	soak_measure(&rss0, &hwm0, &fds0);
	t1 = harness_now_ms();
	soak_run(total);
	t1 = harness_now_ms() - t1;
	soak_measure(&rss1, &hwm1, &fds1);
	for (int tries = 0; tries < 100; tries++) {
		soak_children(pids, 64, &zombies);
		if (zombies == 0)
			break;
		usleep(10000);
	}

	printf("soak: %lu jobs in %.1f s (%.0f jobs/s after the warm-up): "
	    "OK %lu, CANCELLED %lu, TIMEOUT %lu, WORKER_LOST %lu, other %lu; "
	    "%u pool processes killed; broker RSS %ld kB after %lu warm-up "
	    "jobs (peak %ld kB), %ld kB at the end (%+.1f%%), peak %ld kB; "
	    "descriptors %d "
	    "-> %d; zombies %d\n", soak.results,
	    (double)(harness_now_ms() - t0) / 1000.0,
	    (double)(total - warm) * 1000.0 / (double)(t1 > 0 ? t1 : 1),
	    soak.status[PB_OK], soak.status[PB_CANCELLED],
	    soak.status[PB_TIMEOUT], soak.status[PB_WORKER_LOST],
	    soak.results - soak.status[PB_OK] - soak.status[PB_CANCELLED] -
	    soak.status[PB_TIMEOUT] - soak.status[PB_WORKER_LOST],
	    soak.kills, rss0, warm, hwm0, rss1,
	    100.0 * (double)(rss1 - rss0) / (double)rss0, hwm1, fds0, fds1,
	    zombies);
	fflush(stdout);

	ck_assert_uint_eq(soak.results, soak.submitted);
	ck_assert_uint_eq(soak.status[PB_DISCONNECTED], 0);
	ck_assert_uint_eq(soak.bad_payload, 0);
	ck_assert_msg(rss1 <= rss0 + rss0 / 10, "RSS %ld kB after the run, "
	    "%ld kB after the warm-up", rss1, rss0);
	ck_assert_int_eq(fds1, fds0);
	ck_assert_int_eq(zombies, 0);
	for (int i = 0; i < SOAK_CLIENTS; i++)
		pb_client_free(soak.c[i]);
	harness_broker_stop(&soak.broker);
}
END_TEST

/* The soak suite: one long test. */
static Suite *
soak_suite(void)
{
	Suite	*s = suite_create("soak");
	TCase	*tc = tcase_create("soak");

	tcase_set_timeout(tc, 7200);
	tcase_add_test(tc, soak_million_jobs);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(soak_suite());
}

/*
 * pbbench.c: patchbay's load generator, the libpatchbay counterpart of
 * gearbench (Gearman) and textbench (beanstalkd, NATS), so that the same
 * scenarios run side by side (bench/run.sh, docs/benchmarks.md).
 *
 *   pbbench worker ENDPOINT FN [MAXJOBS [CAPACITY]]  echo worker; with
 *                                                 MAXJOBS, exits after that
 *                                                 many and prints its rate
 *   pbbench seq  ENDPOINT FN N PAYLOAD            1 job in flight
 *   pbbench pipe ENDPOINT FN N PAYLOAD WIN        WIN jobs in flight
 *   pbbench bg   ENDPOINT FN N PAYLOAD            detached submits
 *   pbbench bgack ENDPOINT FN N PAYLOAD WIN       detached submits, WIN
 *                                                 awaiting their ACCEPTED
 *   pbbench idle ENDPOINT N                       holds N idle clients
 *
 * Client modes print "MODE: n=N ok=OK payload=P time=Ts rate=R jobs/s";
 * pipe adds each job's latency, submit to result, as p50/p99/p99.9 in
 * microseconds (report.c). bg counts what one PING round trip after the
 * last submit finds taken; bgack counts a job only when its own ACCEPTED
 * arrives, which a broker with a store sends once the job is committed
 * (bench/store.sh): the durable enqueue, as beanstalkd's INSERTED after
 * its binlog write. pipe, bg and bgack cork the client (pb_client_cork()):
 * the submits between two waits go out in one write. idle connects N
 * clients (as many as its file limit allows), prints "idle: connected=K"
 * and waits for a signal.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "patchbay.h"
#include "report.h"

static long	 jobs_done, max_jobs, completed, failed;
static enum pb_status	 first_refusal = PB_ACCEPTED;
static double	 t_first, t_last;
static double	*t_submit;		/* per pipelined job, by index */
static struct report_lat	 lat;

/* The echo function: answers every job with its own payload. */
static void
echo(struct pb_worker *w, struct pb_job *job, void *arg)
{
	const void	*p;
	size_t		 len;
	double		 t = report_now();

	(void)arg;
	p = pb_job_payload(job, &len);
	pb_job_complete(job, PB_OK, p, len, NULL);
	if (jobs_done == 0)
		t_first = t;
	t_last = t;
	if (++jobs_done == max_jobs)
		pb_worker_stop(w);
}

/* Counts a pipelined job's result and records its latency. */
static void
on_result(struct pb_client *c, struct pb_result *r, void *arg)
{
	(void)c;
	if (r->status == PB_OK) {
		completed++;
		report_lat_add(&lat, report_now() - t_submit[(intptr_t)arg]);
	} else
		failed++;
	pb_result_free(r);
}

/* Counts a detached job's one answer: ACCEPTED, or what refused it. */
static void
on_accepted(struct pb_client *c, struct pb_result *r, void *arg)
{
	(void)c;
	(void)arg;
	if (r->status == PB_ACCEPTED)
		completed++;
	else if (failed++ == 0)
		first_refusal = r->status;
	pb_result_free(r);
}

/* Runs an echo worker until MAXJOBS (or forever). */
static int
run_worker(const char *ep, const char *fn, int argc, char **argv)
{
	struct pb_worker	*w;
	uint32_t		 capacity = 1;
	int			 r;

	if (argc > 4)
		max_jobs = atol(argv[4]);
	if (argc > 5)
		capacity = (uint32_t)atol(argv[5]);
	if ((r = pb_worker_new(ep, NULL, &w)) != 0) {
		fprintf(stderr, "pbbench worker: %s\n", strerror(-r));
		return 1;
	}
	if ((r = pb_worker_add_function(w, fn, echo, NULL)) != 0 ||
	    (r = pb_worker_set_capacity(w, capacity)) != 0 ||
	    (r = pb_worker_connect(w)) != 0) {
		fprintf(stderr, "pbbench worker: %s\n", strerror(-r));
		pb_worker_free(w);
		return 1;
	}
	pb_worker_run(w);
	report_worker(jobs_done, t_first, t_last);
	pb_worker_free(w);
	return 0;
}

/* Keeps the sliding window of win jobs full until n have answered. */
static long
run_pipe(struct pb_client *c, const char *fn, const char *payload, size_t psz,
    long n, long win)
{
	long	submitted = 0;

	if ((t_submit = calloc((size_t)n + 1, sizeof(*t_submit))) == NULL ||
	    report_lat_init(&lat, (size_t)n) != 0) {
		fprintf(stderr, "pbbench pipe: out of memory\n");
		return 0;
	}
	while (completed + failed < n) {
		while (submitted < n && submitted - completed - failed < win) {
			t_submit[submitted] = report_now();
			if (pb_client_submit(c, fn, payload, psz, NULL,
			    on_result, NULL, (void *)(intptr_t)submitted,
			    NULL) != 0)
				return completed;
			submitted++;
		}
		if (pb_client_dispatch(c, -1) < 0)
			break;
	}
	return completed;
}

/*
 * Keeps win detached jobs awaiting their ACCEPTED until n have answered.
 * A broker that stops answering is a finding, not a slow run: after 60 s
 * without an answer this gives up and says how many are still owed.
 */
static long
run_bgack(struct pb_client *c, const char *fn, const char *payload,
    size_t psz, long n, long win)
{
	struct pb_run_options	 opts;
	long			 submitted = 0, seen = 0;
	double			 t_seen = report_now();
	int			 r;

	memset(&opts, 0, sizeof(opts));
	opts.detach = true;
	while (completed + failed < n) {
		while (submitted < n && submitted - completed - failed < win) {
			if ((r = pb_client_submit(c, fn, payload, psz, &opts,
			    on_accepted, NULL, NULL, NULL)) != 0) {
				fprintf(stderr, "pbbench bgack: submit: %s\n",
				    strerror(-r));
				return completed;
			}
			submitted++;
		}
		if ((r = pb_client_dispatch(c, 1000)) < 0) {
			fprintf(stderr, "pbbench bgack: %s\n", strerror(-r));
			break;
		}
		if (completed + failed != seen) {
			seen = completed + failed;
			t_seen = report_now();
		} else if (report_now() - t_seen > 60) {
			fprintf(stderr, "pbbench bgack: no ACCEPTED for 60 s; "
			    "%ld of %ld submitted still unanswered\n",
			    submitted - seen, submitted);
			break;
		}
	}
	if (failed > 0)
		fprintf(stderr, "pbbench bgack: %ld of %ld refused, the first "
		    "%s\n", failed, n, pb_status_name(first_refusal));
	return completed;
}

/* Does nothing: idle waits for SIGTERM or SIGINT to interrupt pause(). */
static void
on_signal(int sig)
{
	(void)sig;
}

/*
 * Connects up to n clients that then stay idle until a signal, raising the
 * file limit as far as allowed first; prints how many it holds.
 */
static int
run_idle(const char *ep, long n)
{
	struct pb_client	**cs;
	struct rlimit		  rl;
	long			  k;
	int			  r = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((cs = calloc((size_t)n, sizeof(*cs))) == NULL)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	for (k = 0; k < n; k++)
		if ((r = pb_client_connect(ep, NULL, &cs[k])) != 0)
			break;
	printf("idle: connected=%ld", k);
	if (k < n)
		printf(" (stopped: %s)", strerror(-r));
	printf("\n");
	fflush(stdout);
	pause();
	while (k > 0)
		pb_client_free(cs[--k]);
	free(cs);
	return 0;
}

/* Entry point. */
int
main(int argc, char **argv)
{
	struct pb_client	*c;
	struct pb_run_options	 opts;
	const char		*mode, *ep, *fn;
	char			*payload;
	size_t			 psz;
	long			 n, ok = 0, win = 1;
	double			 t0, dt;
	int			 r;

	if (argc < 4) {
		fprintf(stderr, "usage: see the comment at the top of "
		    "bench/pbbench.c\n");
		return 2;
	}
	mode = argv[1];
	ep = argv[2];
	fn = argv[3];
	if (strcmp(mode, "worker") == 0)
		return run_worker(ep, fn, argc, argv);
	if (strcmp(mode, "idle") == 0)
		return run_idle(ep, atol(argv[3]));
	if (argc < 6) {
		fprintf(stderr, "pbbench %s: needs N and PAYLOAD\n", mode);
		return 2;
	}
	n = atol(argv[4]);
	psz = (size_t)atol(argv[5]);
	if (argc > 6)
		win = atol(argv[6]);
	if (n < 1 || win < 1) {
		fprintf(stderr, "pbbench %s: N and WIN must be positive\n",
		    mode);
		return 2;
	}
	if ((payload = malloc(psz + 1)) == NULL)
		return 1;
	memset(payload, 'x', psz);
	if ((r = pb_client_connect(ep, NULL, &c)) != 0) {
		fprintf(stderr, "pbbench: connect %s: %s\n", ep, strerror(-r));
		free(payload);
		return 1;
	}
	memset(&opts, 0, sizeof(opts));
	/*
	 * The submits between two waits go out in one write, as textbench
	 * writes its requests to the peers; seq's one job at a time would
	 * gain nothing.
	 */
	if (strcmp(mode, "seq") != 0)
		(void)pb_client_cork(c, true);
	t0 = report_now();
	if (strcmp(mode, "seq") == 0) {
		for (long i = 0; i < n; i++) {
			struct pb_result *res;

			if (pb_client_run(c, fn, payload, psz, NULL, &res) != 0)
				break;
			if (res->status == PB_OK && res->len == psz)
				ok++;
			pb_result_free(res);
		}
	} else if (strcmp(mode, "pipe") == 0) {
		ok = run_pipe(c, fn, payload, psz, n, win);
	} else if (strcmp(mode, "bgack") == 0) {
		ok = run_bgack(c, fn, payload, psz, n, win);
	} else if (strcmp(mode, "bg") == 0) {
		opts.detach = true;
		for (long i = 0; i < n; i++)
			if (pb_client_submit(c, fn, payload, psz, &opts, NULL,
			    NULL, NULL, NULL) == 0)
				ok++;
		/* Count only what the broker has taken in. */
		if (pb_client_sync(c, 60000) != 0)
			ok = 0;
	} else {
		fprintf(stderr, "pbbench: unknown mode '%s'\n", mode);
		pb_client_free(c);
		free(payload);
		return 2;
	}
	dt = report_now() - t0;
	report_client(mode, n, ok, psz, dt, &lat);
	report_lat_clear(&lat);
	free(t_submit);
	pb_client_free(c);
	free(payload);
	return ok == n ? 0 : 1;
}

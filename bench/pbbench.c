/*
 * pbbench.c: patchbay's load generator, shaped like the peers' programs in
 * ../shared/bench/peers so that the same scenarios run side by side.
 *
 *   pbbench worker ENDPOINT FN [MAXJOBS [CAPACITY]]  echo worker; with
 *                                                 MAXJOBS, exits after that
 *                                                 many and prints its rate
 *   pbbench seq  ENDPOINT FN N PAYLOAD            1 job in flight
 *   pbbench pipe ENDPOINT FN N PAYLOAD WIN        WIN jobs in flight
 *   pbbench bg   ENDPOINT FN N PAYLOAD            detached submits
 *
 * Client modes print "MODE: n=N ok=OK payload=P time=Ts rate=R jobs/s".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "patchbay.h"

static long	 jobs_done, max_jobs, completed, failed;
static double	 t_first, t_last;
static struct pb_worker	*worker;

/* Seconds on the monotonic clock. */
static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The echo function: answers every job with its own payload. */
static void
echo(struct pb_worker *w, struct pb_job *job, void *arg)
{
	const void	*p;
	size_t		 len;
	double		 t = now();

	(void)arg;
	p = pb_job_payload(job, &len);
	pb_job_complete(job, PB_OK, p, len, NULL);
	if (jobs_done == 0)
		t_first = t;
	t_last = t;
	if (++jobs_done == max_jobs)
		pb_worker_stop(w);
}

/* Counts a pipelined job's result. */
static void
on_result(struct pb_client *c, struct pb_result *r, void *arg)
{
	(void)c; (void)arg;
	if (r->status == PB_OK)
		completed++;
	else
		failed++;
	pb_result_free(r);
}

/* Runs an echo worker until MAXJOBS (or forever). */
static int
run_worker(const char *ep, const char *fn, int argc, char **argv)
{
	uint32_t	capacity = 1;
	int		r;

	if (argc > 4)
		max_jobs = atol(argv[4]);
	if (argc > 5)
		capacity = (uint32_t)atol(argv[5]);
	if ((r = pb_worker_new(ep, NULL, &worker)) != 0 ||
	    (r = pb_worker_add_function(worker, fn, echo, NULL)) != 0 ||
	    (r = pb_worker_set_capacity(worker, capacity)) != 0 ||
	    (r = pb_worker_connect(worker)) != 0) {
		fprintf(stderr, "pbbench worker: %s\n", strerror(-r));
		return 1;
	}
	r = pb_worker_run(worker);
	if (jobs_done > 1)
		printf("worker: %ld jobs, first->last %.3fs, rate=%.0f jobs/s\n",
		    jobs_done, t_last - t_first,
		    (double)(jobs_done - 1) / (t_last - t_first));
	pb_worker_free(worker);
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
	if (argc < 6) {
		fprintf(stderr, "pbbench %s: needs N and PAYLOAD\n", mode);
		return 2;
	}
	n = atol(argv[4]);
	psz = (size_t)atol(argv[5]);
	if (argc > 6)
		win = atol(argv[6]);
	payload = malloc(psz + 1);
	memset(payload, 'x', psz);
	if ((r = pb_client_connect(ep, NULL, &c)) != 0) {
		fprintf(stderr, "pbbench: connect %s: %s\n", ep, strerror(-r));
		return 1;
	}
	memset(&opts, 0, sizeof(opts));
	t0 = now();
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
		long submitted = 0;

		while (completed + failed < n) {
			while (submitted < n &&
			    submitted - completed - failed < win) {
				if (pb_client_submit(c, fn, payload, psz, NULL,
				    on_result, NULL, NULL, NULL) != 0)
					goto out;
				submitted++;
			}
			if (pb_client_dispatch(c, -1) < 0)
				break;
		}
		ok = completed;
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
		return 2;
	}
out:
	dt = now() - t0;
	printf("%s: n=%ld ok=%ld payload=%zu time=%.3fs rate=%.0f jobs/s\n",
	    mode, n, ok, psz, dt, (double)ok / dt);
	pb_client_free(c);
	free(payload);
	return ok == n ? 0 : 1;
}

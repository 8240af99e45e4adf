/*
 * gearbench.c: drives gearmand through libgearman in the shapes pbbench
 * drives patchbayd, so that bench/run.sh compares them side by side. It is
 * built only when libgearman is found (Debian: libgearman-dev).
 *
 *   gearbench worker ENDPOINT FN [MAXJOBS]      echo worker; with MAXJOBS,
 *                                               exits after that many and
 *                                               prints its rate
 *   gearbench seq  ENDPOINT FN N PAYLOAD        1 job in flight
 *   gearbench pipe ENDPOINT FN N PAYLOAD WIN    WIN jobs in flight
 *   gearbench bg   ENDPOINT FN N PAYLOAD        background submits
 *
 * ENDPOINT is tcp:HOST:PORT (or HOST:PORT). Output lines as pbbench's
 * (report.c). A Gearman worker takes one job at a time (GRAB_JOB after
 * WORK_COMPLETE), so there is no capacity argument.
 *
 * pipe keeps the window full: each task's completion callback adds the next
 * task, which the running gearman_client_run_tasks() sends on its next
 * pass, rather than waiting for a whole batch of WIN to finish.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libgearman/gearman.h>

#include "report.h"

/* One pipelined run: the client, its job, and where the window stands. */
struct gearbench_pipe {
	gearman_client_st	*client;
	const char		*fn;
	const char		*payload;
	size_t			 psz;
	long			 n;
	long			 submitted;
	long			 completed;
	long			 failed;
	double			*t_submit;	/* by job index */
	struct report_lat	 lat;
};

static long	 jobs_done, max_jobs;
static double	 t_first, t_last;
/* The pipe run in progress; libgearman's callbacks get only the task. */
static struct gearbench_pipe	*pipe_run;

/* Splits ENDPOINT into host (static storage) and port. 0 or -1. */
static int
gearbench_endpoint(const char *ep, const char **ret_host, in_port_t *ret_port)
{
	static char	 host[256];
	const char	*colon;
	long		 port;

	if (strncmp(ep, "tcp:", 4) == 0)
		ep += 4;
	if ((colon = strrchr(ep, ':')) == NULL ||
	    (size_t)(colon - ep) >= sizeof(host))
		return -1;
	port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	*ret_host = host;
	*ret_port = (in_port_t)port;
	return 0;
}

/* The echo function: answers a job with a copy of its workload. */
static void *
gearbench_echo(gearman_job_st *job, void *arg, size_t *ret_size,
    gearman_return_t *ret)
{
	size_t	 len = gearman_job_workload_size(job);
	void	*out;
	double	 t = report_now();

	(void)arg;
	/* libgearman frees the result it is handed. */
	if ((out = malloc(len ? len : 1)) == NULL) {
		*ret = GEARMAN_WORK_FAIL;
		return NULL;
	}
	if (len > 0)
		memcpy(out, gearman_job_workload(job), len);
	*ret_size = len;
	*ret = GEARMAN_SUCCESS;
	if (jobs_done == 0)
		t_first = t;
	t_last = t;
	jobs_done++;
	return out;
}

/* Runs an echo worker until MAXJOBS (or until an error). */
static int
gearbench_worker(const char *host, in_port_t port, const char *fn)
{
	gearman_worker_st	*w;
	gearman_return_t	 r;

	if ((w = gearman_worker_create(NULL)) == NULL)
		return 1;
	if (gearman_failed(gearman_worker_add_server(w, host, port)) ||
	    gearman_failed(gearman_worker_add_function(w, fn, 0,
	    gearbench_echo, NULL))) {
		fprintf(stderr, "gearbench worker: %s\n",
		    gearman_worker_error(w));
		gearman_worker_free(w);
		return 1;
	}
	while (max_jobs == 0 || jobs_done < max_jobs) {
		r = gearman_worker_work(w);
		if (gearman_failed(r)) {
			fprintf(stderr, "gearbench worker: %s\n",
			    gearman_worker_error(w));
			break;
		}
	}
	report_worker(jobs_done, t_first, t_last);
	gearman_worker_free(w);
	return 0;
}

/* Adds the next task of a pipelined run. 0 or -1. */
static int
gearbench_pipe_add(struct gearbench_pipe *p)
{
	gearman_return_t	r;
	long			i = p->submitted;

	p->t_submit[i] = report_now();
	gearman_client_add_task(p->client, NULL, (void *)(intptr_t)i, p->fn,
	    NULL, p->payload, p->psz, &r);
	if (gearman_failed(r)) {
		fprintf(stderr, "gearbench pipe: %s\n", gearman_strerror(r));
		return -1;
	}
	p->submitted++;
	return 0;
}

/* A task completed: count it, record its latency, refill the window. */
static gearman_return_t
gearbench_pipe_complete(gearman_task_st *task)
{
	struct gearbench_pipe	*p = pipe_run;
	intptr_t		 i = (intptr_t)gearman_task_context(task);

	if (gearman_task_data_size(task) == p->psz) {
		p->completed++;
		report_lat_add(&p->lat, report_now() - p->t_submit[i]);
	} else
		p->failed++;
	if (p->submitted < p->n && gearbench_pipe_add(p) != 0)
		return GEARMAN_ERROR;
	return GEARMAN_SUCCESS;
}

/* A task failed (WORK_FAIL or an exception): count it and refill. */
static gearman_return_t
gearbench_pipe_fail(gearman_task_st *task)
{
	(void)task;
	pipe_run->failed++;
	if (pipe_run->submitted < pipe_run->n &&
	    gearbench_pipe_add(pipe_run) != 0)
		return GEARMAN_ERROR;
	return GEARMAN_SUCCESS;
}

/* Keeps win tasks in flight until n have answered; returns the ok count. */
static long
gearbench_pipe(struct gearbench_pipe *p, long win)
{
	gearman_return_t	r;

	pipe_run = p;
	gearman_client_add_options(p->client, GEARMAN_CLIENT_FREE_TASKS);
	gearman_client_set_complete_fn(p->client, gearbench_pipe_complete);
	gearman_client_set_fail_fn(p->client, gearbench_pipe_fail);
	while (p->submitted < p->n && p->submitted < win)
		if (gearbench_pipe_add(p) != 0)
			return p->completed;
	while (p->completed + p->failed < p->n) {
		do
			r = gearman_client_run_tasks(p->client);
		while (gearman_continue(r));
		if (gearman_failed(r)) {
			fprintf(stderr, "gearbench pipe: %s\n",
			    gearman_client_error(p->client));
			break;
		}
	}
	return p->completed;
}

/* Entry point. */
int
main(int argc, char **argv)
{
	struct gearbench_pipe	 p;
	gearman_client_st	*c;
	gearman_return_t	 r;
	gearman_job_handle_t	 handle;
	const char		*mode, *host, *fn;
	char			*payload;
	in_port_t		 port;
	size_t			 psz, len;
	long			 n, ok = 0, win = 1;
	double			 t0, dt;

	if (argc < 4) {
		fprintf(stderr, "usage: see the comment at the top of "
		    "bench/gearbench.c\n");
		return 2;
	}
	mode = argv[1];
	fn = argv[3];
	if (gearbench_endpoint(argv[2], &host, &port) != 0) {
		fprintf(stderr, "gearbench: bad endpoint '%s' (want "
		    "tcp:HOST:PORT)\n", argv[2]);
		return 2;
	}
	if (strcmp(mode, "worker") == 0) {
		if (argc > 4)
			max_jobs = atol(argv[4]);
		return gearbench_worker(host, port, fn);
	}
	if (argc < 6) {
		fprintf(stderr, "gearbench %s: needs N and PAYLOAD\n", mode);
		return 2;
	}
	n = atol(argv[4]);
	psz = (size_t)atol(argv[5]);
	if (argc > 6)
		win = atol(argv[6]);
	if (n < 1 || win < 1) {
		fprintf(stderr, "gearbench %s: N and WIN must be positive\n",
		    mode);
		return 2;
	}
	if ((payload = malloc(psz + 1)) == NULL)
		return 1;
	memset(payload, 'x', psz);
	if ((c = gearman_client_create(NULL)) == NULL ||
	    gearman_failed(gearman_client_add_server(c, host, port))) {
		fprintf(stderr, "gearbench: cannot use %s:%u\n", host,
		    (unsigned)port);
		return 1;
	}
	memset(&p, 0, sizeof(p));
	t0 = report_now();
	if (strcmp(mode, "seq") == 0) {
		for (long i = 0; i < n; i++) {
			void *res = gearman_client_do(c, fn, NULL, payload,
			    psz, &len, &r);

			if (r == GEARMAN_SUCCESS && len == psz)
				ok++;
			else
				fprintf(stderr, "gearbench seq: %s\n",
				    gearman_strerror(r));
			free(res);
		}
	} else if (strcmp(mode, "pipe") == 0) {
		p.client = c;
		p.fn = fn;
		p.payload = payload;
		p.psz = psz;
		p.n = n;
		if ((p.t_submit = calloc((size_t)n, sizeof(double))) == NULL ||
		    report_lat_init(&p.lat, (size_t)n) != 0)
			return 1;
		ok = gearbench_pipe(&p, win);
	} else if (strcmp(mode, "bg") == 0) {
		for (long i = 0; i < n; i++) {
			r = gearman_client_do_background(c, fn, NULL, payload,
			    psz, handle);
			if (r == GEARMAN_SUCCESS)
				ok++;
			else
				fprintf(stderr, "gearbench bg: %s\n",
				    gearman_strerror(r));
		}
	} else {
		fprintf(stderr, "gearbench: unknown mode '%s'\n", mode);
		return 2;
	}
	dt = report_now() - t0;
	report_client(mode, n, ok, psz, dt, &p.lat);
	report_lat_clear(&p.lat);
	free(p.t_submit);
	gearman_client_free(c);
	free(payload);
	return ok == n ? 0 : 1;
}

/*
 * report.c: the clock, latency percentiles and output lines of bench/'s
 * drivers. A client run ends with
 *
 *   MODE: n=N ok=OK payload=P time=Ts rate=R jobs/s [p50=Aus p99=Bus p99.9=Cus]
 *
 * the percentiles being there when the run recorded latencies (submit to
 * result, per job). A worker that stops after MAXJOBS prints
 *
 *   worker: J jobs, first->last Ts, rate=R jobs/s
 *
 * counting from its first job, so that connecting does not count.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "report.h"

/* Seconds on the monotonic clock. */
double
report_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prepares lat for up to cap samples. 0 or -ENOMEM. */
int
report_lat_init(struct report_lat *lat, size_t cap)
{
	lat->n = 0;
	lat->cap = cap;
	if ((lat->v = calloc(cap ? cap : 1, sizeof(*lat->v))) == NULL)
		return -ENOMEM;
	return 0;
}

/* Records one sample; samples beyond the capacity are dropped. */
void
report_lat_add(struct report_lat *lat, double seconds)
{
	if (lat->n < lat->cap)
		lat->v[lat->n++] = seconds;
}

/* Frees the samples. */
void
report_lat_clear(struct report_lat *lat)
{
	free(lat->v);
	lat->v = NULL;
	lat->n = lat->cap = 0;
}

/* qsort order for doubles. */
static int
report_cmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of sorted samples, nearest rank, in microseconds. */
static long
report_quantile(const struct report_lat *lat, double q)
{
	size_t	i = (size_t)(q * (double)lat->n);

	if (i >= lat->n)
		i = lat->n - 1;
	return (long)(lat->v[i] * 1e6 + 0.5);
}

/* Prints a client run's line; lat may be NULL or empty (no percentiles). */
void
report_client(const char *mode, long n, long ok, size_t payload,
    double seconds, struct report_lat *lat)
{
	printf("%s: n=%ld ok=%ld payload=%zu time=%.3fs rate=%.0f jobs/s",
	    mode, n, ok, payload, seconds,
	    seconds > 0 ? (double)ok / seconds : 0.0);
	if (lat != NULL && lat->n > 0) {
		qsort(lat->v, lat->n, sizeof(*lat->v), report_cmp);
		printf(" p50=%ldus p99=%ldus p99.9=%ldus",
		    report_quantile(lat, 0.50), report_quantile(lat, 0.99),
		    report_quantile(lat, 0.999));
	}
	printf("\n");
	fflush(stdout);
}

/* Prints a worker's line when it handled more than one job. */
void
report_worker(long jobs, double t_first, double t_last)
{
	if (jobs > 1 && t_last > t_first)
		printf("worker: %ld jobs, first->last %.3fs, rate=%.0f jobs/s\n",
		    jobs, t_last - t_first,
		    (double)(jobs - 1) / (t_last - t_first));
	fflush(stdout);
}

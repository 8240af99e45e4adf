/*
 * report.h: what bench/'s drivers (pbbench, gearbench, textbench) share, so
 * that every one of them measures and prints a run the same way: the clock,
 * per-job latency samples, and the one output line that bench/run.sh parses.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stddef.h>

/* Latency samples of one run, in seconds. Embedded: _init/_clear. */
struct report_lat {
	double	*v;
	size_t	 n;
	size_t	 cap;
};

/* report.c */
double	 report_now(void);
int	 report_lat_init(struct report_lat *lat, size_t cap);
void	 report_lat_add(struct report_lat *lat, double seconds);
void	 report_lat_clear(struct report_lat *lat);
void	 report_client(const char *mode, long n, long ok, size_t payload,
	    double seconds, struct report_lat *lat);
void	 report_worker(long jobs, double t_first, double t_last);

#endif

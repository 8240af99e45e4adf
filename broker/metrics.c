/*
 * metrics.c: the broker's state in the Prometheus text exposition format.
 *
 * GET /metrics (http.c) calls metrics_write(), which walks one table of
 * metric families: each row has the family's name, type and help, and a
 * function that writes its samples from what the server, the switchboard
 * and the supervisor let be read. Adding a metric is adding a row (and a
 * line to the list frozen by tests/test-http.c, and to docs/operations.md).
 * Nothing here is kept between scrapes and nothing runs per job: a scrape
 * reads the counters the job path keeps anyway.
 *
 * Format 0.0.4: "# HELP" and "# TYPE" before every family, label values
 * escaped (backslash, double quote, newline) and made valid UTF-8, so that
 * a function name a worker chose cannot break the exposition.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "broker/broker.h"
#include "config.h"

/* What /proc/self/stat says, for the process_* families. */
struct metrics_stat {
	double		cpu_seconds;
	double		start_time;	/* seconds since the epoch */
	uint64_t	vsize;
	uint64_t	rss;		/* bytes */
};

/* A scrape being written. */
struct metrics {
	FILE			*f;
	struct server		*srv;
	const char		*name;		/* of the family written */
	uint64_t		 now;		/* monotonic ms */
	struct sb_fn_info	*fns;		/* live functions, by name */
	size_t			 nfns;
	struct sb_fn_info	*kept;		/* every name with outcomes
						   kept, gone ones too */
	size_t			 nkept;
	size_t			 cap;		/* of the array being filled */
	struct metrics_stat	 stat;		/* read once per scrape */
	int			 stat_read;	/* 0: not yet, 1: read, -1:
						   cannot */
};

/* One family: its name, type, help and what writes its samples. */
struct metrics_family {
	const char	*name;
	const char	*type;		/* counter, gauge or histogram */
	const char	*help;
	void		(*collect)(struct metrics *);
};

/* Writes a label value: escaped, invalid UTF-8 as U+FFFD. */
static void
metrics_label_value(FILE *f, const char *s)
{
	const uint8_t	*p = (const uint8_t *)s;
	size_t		 n = strlen(s), i = 0, l, run;

	while (i < n) {
		/* A run of plain ASCII goes out in one write. */
		for (run = 0; i + run < n && p[i + run] < 0x80 &&
		    p[i + run] != '\\' && p[i + run] != '"' &&
		    p[i + run] != '\n'; run++)
			;
		if (run > 0) {
			fwrite(p + i, 1, run, f);
			i += run;
			continue;
		}
		if (p[i] == '\\' || p[i] == '"') {
			fputc('\\', f);
			fputc(p[i++], f);
		} else if (p[i] == '\n') {
			fputs("\\n", f);
			i++;
		} else if ((l = proto_utf8_len(p + i, n - i)) == 0) {
			fputs("\xef\xbf\xbd", f);
			i++;
		} else {
			fwrite(p + i, 1, l, f);
			i += l;
		}
	}
}

/*
 * Writes one sample of the current family: name, suffix, labels (nlabels
 * key/value pairs in kv) and value.
 */
static void
metrics_sample(struct metrics *m, const char *suffix, double value,
    int nlabels, const char *const *kv)
{
	fprintf(m->f, "%s%s", m->name, suffix);
	if (nlabels > 0) {
		fputc('{', m->f);
		for (int i = 0; i < nlabels; i++) {
			fprintf(m->f, "%s%s=\"", i > 0 ? "," : "", kv[2 * i]);
			metrics_label_value(m->f, kv[2 * i + 1]);
			fputc('"', m->f);
		}
		fputc('}', m->f);
	}
	/* Counts and gauges are mostly whole: no float formatting for them. */
	if (value >= 0 && value < 9007199254740992.0 &&
	    value == (double)(uint64_t)value)
		fprintf(m->f, " %llu\n", (unsigned long long)value);
	else
		fprintf(m->f, " %.15g\n", value);
}

/* A sample without labels. */
static void
metrics_value(struct metrics *m, double value)
{
	metrics_sample(m, "", value, 0, NULL);
}

/* A sample with one label. */
static void
metrics_value1(struct metrics *m, const char *key, const char *val,
    double value)
{
	const char	*kv[2] = { key, val };

	metrics_sample(m, "", value, 1, kv);
}

/* patchbay_build_info. */
static void
metrics_build_info(struct metrics *m)
{
	metrics_value1(m, "version", PATCHBAY_VERSION, 1);
}

/* patchbay_uptime_seconds. */
static void
metrics_uptime(struct metrics *m)
{
	metrics_value(m, (double)(m->now - m->srv->started_at) / 1000.0);
}

/* patchbay_connections{role}: peers by role, "handshake" before HELLO. */
static void
metrics_connections(struct metrics *m)
{
	static const enum proto_role roles[] = { ROLE_NONE, ROLE_CLIENT,
	    ROLE_WORKER, ROLE_ADMIN };
	uint64_t	 n[4] = { 0 };
	struct peer	*p;

	TAILQ_FOREACH(p, &m->srv->peers, entry)
		for (size_t i = 0; i < 4; i++)
			if (p->role == roles[i])
				n[i]++;
	for (size_t i = 0; i < 4; i++)
		metrics_value1(m, "role", roles[i] == ROLE_NONE ? "handshake" :
		    proto_role_name(roles[i]), (double)n[i]);
}

/* Counts the switchboard's functions. */
static void
metrics_count_fn(const struct sb_fn_info *fi, void *arg)
{
	(void)fi;
	(*(size_t *)arg)++;
}

/* Copies one function's figures into the next slot of m->fns. */
static void
metrics_add_fn(const struct sb_fn_info *fi, void *arg)
{
	struct metrics	*m = arg;

	if (m->nfns < m->cap)
		m->fns[m->nfns++] = *fi;
}

/* Copies one function's kept figures into the next slot of m->kept. */
static void
metrics_add_kept(const struct sb_fn_info *fi, void *arg)
{
	struct metrics	*m = arg;

	if (m->nkept < m->cap)
		m->kept[m->nkept++] = *fi;
}

/*
 * Gathers the functions' figures once for every per-function family: the
 * live ones (gauges) and every name whose outcomes are kept (counters and
 * histograms, which must not vanish when a function's last worker goes).
 * Their names point into the switchboard, unchanged during the scrape.
 */
static int
metrics_gather_fns(struct metrics *m)
{
	size_t	n = 0;

	switchboard_foreach_fn(m->srv->sb, metrics_count_fn, &n);
	if (n > 0 && (m->fns = calloc(n, sizeof(*m->fns))) == NULL)
		return -ENOMEM;
	m->cap = n;
	switchboard_foreach_fn(m->srv->sb, metrics_add_fn, m);
	n = 0;
	switchboard_foreach_fn_stats(m->srv->sb, metrics_count_fn, &n);
	if (n > 0 && (m->kept = calloc(n, sizeof(*m->kept))) == NULL)
		return -ENOMEM;
	m->cap = n;
	switchboard_foreach_fn_stats(m->srv->sb, metrics_add_kept, m);
	return 0;
}

/* patchbay_workers{fn}. */
static void
metrics_workers(struct metrics *m)
{
	for (size_t i = 0; i < m->nfns; i++)
		metrics_value1(m, "fn", m->fns[i].name, m->fns[i].workers);
}

/* patchbay_capacity{fn}. */
static void
metrics_capacity(struct metrics *m)
{
	for (size_t i = 0; i < m->nfns; i++)
		metrics_value1(m, "fn", m->fns[i].name,
		    (double)m->fns[i].capacity);
}

/* patchbay_in_flight{fn}. */
static void
metrics_in_flight(struct metrics *m)
{
	for (size_t i = 0; i < m->nfns; i++)
		metrics_value1(m, "fn", m->fns[i].name, m->fns[i].running);
}

/* patchbay_queue_depth{fn}. */
static void
metrics_queue_depth(struct metrics *m)
{
	for (size_t i = 0; i < m->nfns; i++)
		metrics_value1(m, "fn", m->fns[i].name, m->fns[i].queued);
}

/* patchbay_queue_oldest_seconds{fn}: 0 when the queue is empty. */
static void
metrics_queue_oldest(struct metrics *m)
{
	for (size_t i = 0; i < m->nfns; i++) {
		uint64_t at = m->fns[i].oldest_queued_at;

		metrics_value1(m, "fn", m->fns[i].name, at == 0 || at > m->now ?
		    0 : (double)(m->now - at) / 1000.0);
	}
}

/* patchbay_jobs_total{fn,status}: outcomes by function and status. */
static void
metrics_jobs(struct metrics *m)
{
	const char	*kv[4] = { "fn", NULL, "status", NULL };

	for (size_t i = 0; i < m->nkept; i++) {
		kv[1] = m->kept[i].name;
		for (int st = 0; st < JOB__MAX; st++) {
			kv[3] = job_status_name((enum job_status)st);
			metrics_sample(m, "", (double)m->kept[i].results[st], 2,
			    kv);
		}
	}
}

/* A histogram of one function: cumulative buckets in seconds, sum, count. */
static void
metrics_histogram(struct metrics *m, const char *fn, const struct sb_hist *h)
{
	static char	 le[SB_HIST_BUCKETS][32];
	const char	*kv[4] = { "fn", fn, "le", NULL };
	uint64_t	 cum = 0;

	/* The bounds in seconds, written once. */
	if (le[0][0] == '\0') {
		for (int i = 0; i < SB_HIST_BUCKETS - 1; i++)
			snprintf(le[i], sizeof(le[i]), "%.15g",
			    (double)sb_hist_bounds_ms[i] / 1000.0);
		snprintf(le[SB_HIST_BUCKETS - 1], sizeof(le[0]), "+Inf");
	}
	for (int i = 0; i < SB_HIST_BUCKETS; i++) {
		cum += h->buckets[i];
		kv[3] = le[i];
		metrics_sample(m, "_bucket", (double)cum, 2, kv);
	}
	metrics_sample(m, "_sum", (double)h->sum_ms / 1000.0, 1, kv);
	metrics_sample(m, "_count", (double)h->count, 1, kv);
}

/* patchbay_job_wait_seconds{fn}: queued until dispatched, per attempt. */
static void
metrics_job_wait(struct metrics *m)
{
	for (size_t i = 0; i < m->nkept; i++)
		metrics_histogram(m, m->kept[i].name, &m->kept[i].wait);
}

/* patchbay_job_run_seconds{fn}: dispatched until the worker's RESULT. */
static void
metrics_job_run(struct metrics *m)
{
	for (size_t i = 0; i < m->nkept; i++)
		metrics_histogram(m, m->kept[i].name, &m->kept[i].run);
}

/* patchbay_messages_received_total{type}. */
static void
metrics_msgs_received(struct metrics *m)
{
	struct msg_stats	ms;

	server_msg_totals(m->srv, &ms);
	for (int k = 0; k < MSG__MAX; k++)
		metrics_value1(m, "type", msg_kind_name((enum msg_kind)k),
		    (double)ms.received[k]);
}

/* patchbay_messages_sent_total{type}. */
static void
metrics_msgs_sent(struct metrics *m)
{
	struct msg_stats	ms;

	server_msg_totals(m->srv, &ms);
	for (int k = 0; k < MSG__MAX; k++)
		metrics_value1(m, "type", msg_kind_name((enum msg_kind)k),
		    (double)ms.sent[k]);
}

/* patchbay_bytes_received_total. */
static void
metrics_bytes_received(struct metrics *m)
{
	struct msg_stats	ms;

	server_msg_totals(m->srv, &ms);
	metrics_value(m, (double)ms.bytes_received);
}

/* patchbay_bytes_sent_total. */
static void
metrics_bytes_sent(struct metrics *m)
{
	struct msg_stats	ms;

	server_msg_totals(m->srv, &ms);
	metrics_value(m, (double)ms.bytes_sent);
}

/*
 * The pool label of a process: its pool's name, or for an ad-hoc process
 * (`ctl spawn`), which is a pool of its own, its id.
 */
static const char *
metrics_pool_of(const struct supervisor_proc *proc)
{
	const char	*pool = supervisor_proc_pool(proc);

	return pool != NULL ? pool : supervisor_proc_id(proc);
}

/* One sample per pool of what count says of each process, summed. */
static void
metrics_pool_sum(struct metrics *m,
    unsigned (*count)(const struct supervisor_proc *))
{
	const struct supervisor		*sv = m->srv->sv;
	const struct supervisor_proc	*p, *q;
	uint64_t			 n;

	if (sv == NULL)
		return;
	for (p = supervisor_proc_next(sv, NULL); p != NULL;
	    p = supervisor_proc_next(sv, p)) {
		/* Once per pool: at its first process. */
		for (q = supervisor_proc_next(sv, NULL); q != p;
		    q = supervisor_proc_next(sv, q))
			if (strcmp(metrics_pool_of(q), metrics_pool_of(p)) == 0)
				break;
		if (q != p)
			continue;
		n = 0;
		for (q = p; q != NULL; q = supervisor_proc_next(sv, q))
			if (strcmp(metrics_pool_of(q), metrics_pool_of(p)) == 0)
				n += count(q);
		metrics_value1(m, "pool", metrics_pool_of(p), (double)n);
	}
}

/* patchbay_process_restarts_total{pool}: summed over a pool's processes. */
static void
metrics_restarts(struct metrics *m)
{
	metrics_pool_sum(m, supervisor_proc_restarts);
}

/* patchbay_process_unhealthy_total{pool}: times found unhealthy. */
static void
metrics_unhealthy(struct metrics *m)
{
	metrics_pool_sum(m, supervisor_proc_times_unhealthy);
}

/* patchbay_process_health{id,health}: 1 for each process's, else 0. */
static void
metrics_process_health(struct metrics *m)
{
	const struct supervisor		*sv = m->srv->sv;
	const struct supervisor_proc	*p;
	enum supervisor_health		 h;
	const char			*kv[4];

	if (sv == NULL)
		return;
	for (p = supervisor_proc_next(sv, NULL); p != NULL;
	    p = supervisor_proc_next(sv, p)) {
		kv[0] = "id";
		kv[1] = supervisor_proc_id(p);
		kv[2] = "health";
		for (h = HEALTH_NONE; h <= HEALTH_UNHEALTHY; h++) {
			kv[3] = supervisor_health_name(h);
			metrics_sample(m, "", supervisor_proc_health(p) == h,
			    2, kv);
		}
	}
}

/* patchbay_process_state{id,state}: 1 for each process's state, else 0. */
static void
metrics_process_state(struct metrics *m)
{
	const struct supervisor		*sv = m->srv->sv;
	const struct supervisor_proc	*p;
	enum supervisor_state		 st;
	const char			*kv[4];

	if (sv == NULL)
		return;
	for (p = supervisor_proc_next(sv, NULL); p != NULL;
	    p = supervisor_proc_next(sv, p)) {
		kv[0] = "id";
		kv[1] = supervisor_proc_id(p);
		kv[2] = "state";
		for (st = SUPERVISOR_STARTING; st <= SUPERVISOR_UNHEALTHY;
		    st++) {
			kv[3] = policy_state_name(st);
			metrics_sample(m, "", supervisor_proc_state(p) == st,
			    2, kv);
		}
	}
}

/* Reads /proc/self/stat (and the boot time); 0 or -errno. */
static int
metrics_read_stat(struct metrics_stat *ret)
{
	char			 buf[2048], *p, line[256];
	unsigned long long	 utime, stime, start, vsize;
	long long		 rss;
	double			 btime = 0;
	long			 tck = sysconf(_SC_CLK_TCK);
	long			 page = sysconf(_SC_PAGESIZE);
	size_t			 n;
	FILE			*f;

	if ((f = fopen("/proc/self/stat", "re")) == NULL)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command may hold blanks and parentheses: skip past the last. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -EINVAL;
	/* Fields 3 on: state ... utime(14) stime(15) ... starttime(22)
	   vsize(23) rss(24). */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
	    "%llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %lld", &utime,
	    &stime, &start, &vsize, &rss) != 5 || tck <= 0)
		return -EINVAL;
	if ((f = fopen("/proc/stat", "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (sscanf(line, "btime %lf", &btime) == 1)
				break;
		fclose(f);
	}
	ret->cpu_seconds = (double)(utime + stime) / (double)tck;
	ret->start_time = btime + (double)start / (double)tck;
	ret->vsize = vsize;
	ret->rss = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
	return 0;
}

/* The process's figures of this scrape (read at the first ask), or NULL. */
static const struct metrics_stat *
metrics_stat(struct metrics *m)
{
	if (m->stat_read == 0)
		m->stat_read = metrics_read_stat(&m->stat) == 0 ? 1 : -1;
	return m->stat_read == 1 ? &m->stat : NULL;
}

/* process_cpu_seconds_total. */
static void
metrics_process_cpu(struct metrics *m)
{
	const struct metrics_stat	*st = metrics_stat(m);

	if (st != NULL)
		metrics_value(m, st->cpu_seconds);
}

/* process_resident_memory_bytes. */
static void
metrics_process_rss(struct metrics *m)
{
	const struct metrics_stat	*st = metrics_stat(m);

	if (st != NULL)
		metrics_value(m, (double)st->rss);
}

/* process_virtual_memory_bytes. */
static void
metrics_process_vsize(struct metrics *m)
{
	const struct metrics_stat	*st = metrics_stat(m);

	if (st != NULL)
		metrics_value(m, (double)st->vsize);
}

/* process_start_time_seconds. */
static void
metrics_process_start(struct metrics *m)
{
	const struct metrics_stat	*st = metrics_stat(m);

	if (st != NULL)
		metrics_value(m, st->start_time);
}

/* process_open_fds: the entries of /proc/self/fd (its own one left out). */
static void
metrics_process_fds(struct metrics *m)
{
	DIR		*d;
	struct dirent	*e;
	uint64_t	 n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	metrics_value(m, (double)(n > 0 ? n - 1 : 0));
}

/* process_max_fds: the soft descriptor limit. */
static void
metrics_process_max_fds(struct metrics *m)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		metrics_value(m, (double)rl.rlim_cur);
}

/* patchbay_store_up: 1 while the store writes, 0 while it fails. */
static void
metrics_store_up(struct metrics *m)
{
	struct jobstore_stats	st;

	if (jobstore_stats(m->srv, &st))
		metrics_value(m, st.failing ? 0 : 1);
}

/* patchbay_store_commits_total{result}. */
static void
metrics_store_commits(struct metrics *m)
{
	struct jobstore_stats	st;

	if (!jobstore_stats(m->srv, &st))
		return;
	metrics_value1(m, "result", "ok", (double)st.commits);
	metrics_value1(m, "result", "failed", (double)st.commit_failures);
}

/*
 * Every family, in exposition order. The names are frozen by
 * tests/test-http.c and explained in docs/operations.md.
 */
static const struct metrics_family metrics_families[] = {
	{ "patchbay_build_info", "gauge",
	    "Always 1; the version label is the broker's version.",
	    metrics_build_info },
	{ "patchbay_uptime_seconds", "gauge",
	    "Seconds since the broker started.", metrics_uptime },
	{ "patchbay_connections", "gauge",
	    "Connections by role (handshake: no HELLO yet).",
	    metrics_connections },
	{ "patchbay_workers", "gauge",
	    "Workers registered for a function, paused ones included.",
	    metrics_workers },
	{ "patchbay_capacity", "gauge",
	    "Job slots of the workers of a function (a worker's slots count "
	    "for each of its functions).", metrics_capacity },
	{ "patchbay_in_flight", "gauge",
	    "Jobs of a function running at workers.", metrics_in_flight },
	{ "patchbay_queue_depth", "gauge",
	    "Jobs of a function waiting for a worker.", metrics_queue_depth },
	{ "patchbay_queue_oldest_seconds", "gauge",
	    "How long the job of a function waiting longest has waited (0: "
	    "none waits).", metrics_queue_oldest },
	{ "patchbay_jobs_total", "counter",
	    "Jobs of a function that ended, by terminal status (refusals on "
	    "arrival included).", metrics_jobs },
	{ "patchbay_job_wait_seconds", "histogram",
	    "Time jobs of a function waited in the queue before each "
	    "dispatch.", metrics_job_wait },
	{ "patchbay_job_run_seconds", "histogram",
	    "Time from dispatch to the worker's result, for jobs of a "
	    "function.", metrics_job_run },
	{ "patchbay_messages_received_total", "counter",
	    "Messages received from peers, by type.", metrics_msgs_received },
	{ "patchbay_messages_sent_total", "counter",
	    "Messages sent to peers, by type.", metrics_msgs_sent },
	{ "patchbay_bytes_received_total", "counter",
	    "Bytes of frames received from peers, headers included.",
	    metrics_bytes_received },
	{ "patchbay_bytes_sent_total", "counter",
	    "Bytes of frames sent to peers, headers included.",
	    metrics_bytes_sent },
	{ "patchbay_process_restarts_total", "counter",
	    "Restarts of the processes of a pool (an ad-hoc process is a pool "
	    "of its own, named by its id).", metrics_restarts },
	{ "patchbay_process_state", "gauge",
	    "1 for the state a supervised process is in, 0 for the others.",
	    metrics_process_state },
	{ "patchbay_process_unhealthy_total", "counter",
	    "Times the processes of a pool were found unhealthy (health_check "
	    "failed, no REGISTER within start_timeout, no answer to PINGs) "
	    "and stopped, to be restarted under the pool's policy.",
	    metrics_unhealthy },
	{ "patchbay_process_health", "gauge",
	    "1 for the health of a supervised process (none, pending, ok, "
	    "failing, unhealthy), 0 for the others.", metrics_process_health },
	{ "patchbay_store_up", "gauge",
	    "1 while the store of detached jobs can write, 0 while it cannot "
	    "(detached jobs are refused STORE_FAILED); none without a store.",
	    metrics_store_up },
	{ "patchbay_store_commits_total", "counter",
	    "Transactions of the store, one per event loop turn with "
	    "changes, by result.", metrics_store_commits },
	{ "process_cpu_seconds_total", "counter",
	    "User and system CPU time spent in seconds.", metrics_process_cpu },
	{ "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.", metrics_process_rss },
	{ "process_virtual_memory_bytes", "gauge",
	    "Virtual memory size in bytes.", metrics_process_vsize },
	{ "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.",
	    metrics_process_start },
	{ "process_open_fds", "gauge",
	    "Number of open file descriptors.", metrics_process_fds },
	{ "process_max_fds", "gauge",
	    "Maximum number of open file descriptors.",
	    metrics_process_max_fds },
};

/* Writes the exposition of srv to f; see broker.h. */
int
metrics_write(struct server *srv, FILE *f)
{
	struct metrics	m = { .f = f, .srv = srv, .now = clock_now_ms() };
	size_t		i;

	if (metrics_gather_fns(&m) != 0) {
		free(m.fns);
		return -ENOMEM;
	}
	for (i = 0; i < sizeof(metrics_families) /
	    sizeof(metrics_families[0]); i++) {
		const struct metrics_family *fam = &metrics_families[i];

		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam->name,
		    fam->help, fam->name, fam->type);
		m.name = fam->name;
		fam->collect(&m);
	}
	free(m.fns);
	free(m.kept);
	return ferror(f) ? -EIO : 0;
}

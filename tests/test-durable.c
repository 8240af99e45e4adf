/*
 * test-durable.c: the broker's durable store of detached jobs (--store).
 *
 * Each test starts the real patchbayd with --store DIR/jobs.db in its own
 * directory and checks what a user of the store relies on: a detached job
 * answered ACCEPTED survives kill -9 of the broker and runs at least once
 * (a second run only for a job that was running, with a higher attempt
 * number); a store that cannot write refuses detached jobs STORE_FAILED
 * (and a refused job never reaches a worker) while attached jobs go on,
 * and loses nothing it had taken; delayed,
 * retrying, dead and queued jobs come back after a restart as they were;
 * and a file patchbayd must not use as its store stops it at start with
 * the path and the reason.
 *
 * Submitters and workers that must outlive a broker are forked children
 * (they die with the test) that write down what they saw, one write(2)
 * per line on an O_APPEND descriptor, into files the test reads
 * afterwards: the ledger (the jobs a submitter heard ACCEPTED for) and the
 * runs file (one "PAYLOAD ATTEMPT WALL_MS" line per job a worker began).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "clients/patchbay.h"
#include "tests/harness.h"
#include "util/util.h"

#define WAIT_MS		10000
#define DRAIN_MS	30000

/*
 * How long a delayed job or a retry's backoff waits: long enough that a
 * restart of the broker (slow under $PATCHBAY_BROKER_WRAPPER, valgrind)
 * comes before it is due.
 */
#define LATER_MS	(harness_broker_wrapped() ? 20000u : 2000u)

/*
 * The kill -9 test: a submitter of up to LEDGER_PER_MS jobs a millisecond,
 * LEDGER_IN_FLIGHT at a time, faster than the workers run them (each job
 * LEDGER_JOB_US, LEDGER_CAPACITY at once per worker), so that jobs queue
 * up; the plug is pulled after LEDGER_STREAM_MS of that.
 */
#define LEDGER_IN_FLIGHT	50
#define LEDGER_PER_MS		2
#define LEDGER_MAX_JOBS		20000
#define LEDGER_WORKERS		2
#define LEDGER_CAPACITY		4
#define LEDGER_JOB_US		5000
#define LEDGER_STREAM_MS	1000
#define LEDGER_MIN_ACCEPTED	300
#define LEDGER_MIN_RAN		100

/* Writes a job id as `patchbay ctl` prints it (a lower-case UUID). */
static void
id_text(const uint8_t *id, char buf[37])
{
	size_t	n = 0;

	for (int i = 0; i < PB_ID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			buf[n++] = '-';
		n += (size_t)snprintf(buf + n, 37 - n, "%02x", id[i]);
	}
	buf[n] = '\0';
}

/* Opens path for lines appended by one write(2) each. */
static int
open_append(const char *path)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_msg(fd != -1, "open %s: %s", path, strerror(errno));
	return fd;
}

/* Appends one formatted line in one write(2); for the forked children,
   which die on an error. */
static void __attribute__((format(printf, 2, 3)))
append_line(int fd, const char *fmt, ...)
{
	char	line[512];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    write(fd, line, (size_t)n) != n)
		_exit(3);
}

/* Counts the lines of a file (0 when it does not exist yet). */
static size_t
count_lines(const char *path)
{
	char	*text = harness_read_file(path);
	size_t	 n = 0;

	for (const char *p = text; p != NULL && *p != '\0'; p++)
		n += *p == '\n';
	free(text);
	return n;
}

/* One job a worker began, as its runs file says. */
struct run {
	char			 payload[64];
	unsigned		 attempt;
	unsigned long long	 at;		/* wall-clock ms */
};

/*
 * Reads a runs file, in the order the lines were written; *ret (caller
 * frees) and the count. A missing file is no run, and a line still being
 * written (no newline yet) is not one either.
 */
static size_t
runs_read(const char *path, struct run **ret)
{
	char		*text = harness_read_file(path);
	char		*line, *save = NULL, *end;
	struct run	*v = NULL;
	size_t		 n = 0, cap = 0;

	if (text != NULL && (end = strrchr(text, '\n')) != NULL)
		end[1] = '\0';
	else if (text != NULL)
		text[0] = '\0';

	for (line = text != NULL ? strtok_r(text, "\n", &save) : NULL;
	    line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			v = realloc(v, cap * sizeof(*v));
			ck_assert_ptr_nonnull(v);
		}
		ck_assert_msg(sscanf(line, "%63s %u %llu", v[n].payload,
		    &v[n].attempt, &v[n].at) == 3, "%s: bad line '%s'", path,
		    line);
		n++;
	}
	free(text);
	*ret = v;
	return n;
}

/* How many runs of payload the runs file has. */
static size_t
runs_of(const struct run *v, size_t n, const char *payload)
{
	size_t	k = 0;

	for (size_t i = 0; i < n; i++)
		k += strcmp(v[i].payload, payload) == 0;
	return k;
}

/* What the handler of a forked test worker does; set in the child. */
static struct {
	int		 fd;		/* its runs file */
	enum pb_status	 status;	/* PB_OK or PB_ERROR */
	unsigned	 sleep_us;	/* before answering */
	bool		 threaded;	/* each job in its own thread */
} hw = { -1, PB_OK, 0, false };

/*
 * Sleeps hw.sleep_us, then answers the job: OK with its payload, or
 * ERROR "boom at attempt N".
 */
static void
job_answer(struct pb_job *job)
{
	const void	*p;
	size_t		 len;
	char		 err[64];

	if (hw.sleep_us > 0)
		usleep(hw.sleep_us);
	if (hw.status == PB_ERROR) {
		snprintf(err, sizeof(err), "boom at attempt %u",
		    pb_job_attempt(job));
		(void)pb_job_complete(job, PB_ERROR, NULL, 0, err);
	} else {
		p = pb_job_payload(job, &len);
		(void)pb_job_complete(job, PB_OK, p, len, NULL);
	}
}

/* A threaded worker's job thread. */
static void *
job_thread(void *arg)
{
	job_answer(arg);
	return NULL;
}

/*
 * Writes "PAYLOAD ATTEMPT WALL_MS" to the runs file as the job begins,
 * then answers it (job_answer()) here or, threaded, from a thread of its
 * own, so that as many jobs run at once as the broker sends. An answer
 * that cannot be sent (the broker is gone) is dropped.
 */
static void
h_log(struct pb_worker *w, struct pb_job *job, void *ud)
{
	const char	*p;
	size_t		 len;
	pthread_attr_t	 attr;
	pthread_t	 t;

	(void)w; (void)ud;
	p = pb_job_payload(job, &len);
	append_line(hw.fd, "%.*s %u %llu\n", (int)len, p, pb_job_attempt(job),
	    (unsigned long long)clock_wall_ms());
	if (!hw.threaded) {
		job_answer(job);
		return;
	}
	if (pthread_attr_init(&attr) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0 ||
	    pthread_create(&t, &attr, job_thread, job) != 0)
		_exit(4);
	pthread_attr_destroy(&attr);
}

/*
 * Forks a libpatchbay worker on ep serving the NULL-terminated fns with
 * h_log (answering status after sleep_us, threaded or not), writing to
 * runs_path. It reconnects by itself when the broker goes away and dies
 * with the test. Returns once it is connected.
 */
static pid_t
worker_fork_with(const char *ep, const char *const *fns, uint32_t capacity,
    const char *runs_path, enum pb_status status, unsigned sleep_us,
    bool threaded)
{
	struct pb_worker	*w;
	pid_t			 pid, parent = getpid();
	int			 pfd[2], fd = open_append(runs_path);
	char			 ok;

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(pfd[0]);
		hw.fd = fd;
		hw.status = status;
		hw.sleep_us = sleep_us;
		hw.threaded = threaded;
		if (pb_worker_new(ep, NULL, &w) != 0)
			_exit(1);
		for (; *fns != NULL; fns++)
			if (pb_worker_add_function(w, *fns, h_log, NULL) != 0)
				_exit(1);
		if (pb_worker_set_capacity(w, capacity) != 0 ||
		    pb_worker_connect(w) != 0)
			_exit(1);
		if (write(pfd[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			if (pb_worker_dispatch(w, 100) < 0)
				_exit(1);
	}
	close(fd);
	close(pfd[1]);
	ck_assert_msg(read(pfd[0], &ok, 1) == 1, "the worker did not connect");
	close(pfd[0]);
	return pid;
}

/* worker_fork_with(), answering at once from the handler. */
static pid_t
worker_fork(const char *ep, const char *const *fns, uint32_t capacity,
    const char *runs_path, enum pb_status status)
{
	return worker_fork_with(ep, fns, capacity, runs_path, status, 0,
	    false);
}

/*
 * Submits a detached job of fn (options from base, may be NULL) and waits
 * for its one answer; returns it (caller frees).
 */
static struct pb_result *
submit_detached(struct pb_client *c, const char *fn, const char *payload,
    const struct pb_run_options *base)
{
	struct pb_run_options	 o = { 0 };
	struct pb_result	*r = NULL;
	int			 rc;

	if (base != NULL)
		o = *base;
	o.detach = true;
	rc = pb_client_run(c, fn, payload, strlen(payload), &o, &r);
	ck_assert_msg(rc == 0, "run %s %s: %s", fn, payload, strerror(-rc));
	return r;
}

/* submit_detached() that must be ACCEPTED; its id text into id (37). */
static void
submit_accepted(struct pb_client *c, const char *fn, const char *payload,
    const struct pb_run_options *base, char *id)
{
	struct pb_result	*r = submit_detached(c, fn, payload, base);

	ck_assert_msg(r->status == PB_ACCEPTED, "%s %s: %s (%s)", fn,
	    payload, pb_status_name(r->status), r->error ? r->error : "");
	if (id != NULL)
		id_text(r->id, id);
	pb_result_free(r);
}

/* The store path in the broker's directory, and the flags that use it. */
static void
store_flags(const struct harness_broker *b, char *path, size_t len,
    const char *argv[3])
{
	snprintf(path, len, "%s/jobs.db", b->dir);
	argv[0] = "--store";
	argv[1] = path;
	argv[2] = NULL;
}

/*
 * Starts b in a new directory with a store there (its path in store, the
 * flags that name it in flags, kept for restarts) and, unless runs is
 * NULL, the path of a workers' log beside it in runs.
 */
static void
stored_broker_start(struct harness_broker *b, char *store, size_t len,
    const char *flags[3], char *runs, size_t runs_len)
{
	harness_tmpdir(b->dir, sizeof(b->dir));
	store_flags(b, store, len, flags);
	if (runs != NULL)
		snprintf(runs, runs_len, "%s/runs", b->dir);
	harness_broker_start(b, flags, true);
}

/* The counts of a "jobs taken back" log line. */
struct taken_back {
	unsigned	n, queued, delayed, dead;
};

/*
 * Reads the broker's last "store PATH: N jobs taken back (Q queued, D
 * delayed, X dead) in T ms" line; fails the test without one.
 */
static struct taken_back
taken_back(const struct harness_broker *b, const char *store)
{
	char			*log = harness_read_file(b->log_path);
	char			*line, *save = NULL, *last = NULL, *p;
	char			 prefix[320];
	struct taken_back	 t;

	ck_assert_ptr_nonnull(log);
	for (line = strtok_r(log, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strstr(line, " jobs taken back (") != NULL)
			last = line;
	ck_assert_msg(last != NULL, "no 'jobs taken back' in the log");
	snprintf(prefix, sizeof(prefix), "store %s: ", store);
	p = strstr(last, prefix);
	ck_assert_msg(p != NULL, "'%s' does not name the store", last);
	ck_assert_msg(sscanf(p + strlen(prefix), "%u jobs taken back (%u "
	    "queued, %u delayed, %u dead) in ", &t.n, &t.queued, &t.delayed,
	    &t.dead) == 4, "cannot read '%s'", last);
	free(log);
	return t;
}

/* True when `ctl status` shows the store failing (or not). */
static bool
store_failing_shown(const struct harness_broker *b, bool failing)
{
	char	*out = NULL;
	bool	 shown;

	shown = harness_ctl(b, false, &out, NULL, "status", NULL) == 0 &&
	    strstr(out, "\nstore:\n") != NULL &&
	    strstr(out, failing ? "\n  failing: true\n" :
	    "\n  failing: false\n") != NULL;
	free(out);
	return shown;
}

/* harness_wait_until condition: the broker has no live job left. */
static bool
cond_idle(void *arg)
{
	char	*out = NULL;
	bool	 idle;

	idle = harness_ctl(arg, false, &out, NULL, "status", NULL) == 0 &&
	    strstr(out, "\nqueued: 0\n") != NULL &&
	    strstr(out, "\ndelayed: 0\n") != NULL &&
	    strstr(out, "\nrunning: 0\n") != NULL;
	free(out);
	return idle;
}

/*
 * `patchbay ctl --json VERB [A1 [A2]]` (NULL ends the arguments), which
 * must succeed; its output (caller frees).
 */
static char *
ctl_json(const struct harness_broker *b, const char *verb, const char *a1,
    const char *a2)
{
	char	*out = NULL, *err = NULL;
	int	 rc = harness_ctl(b, true, &out, &err, verb, a1, a2, NULL);

	ck_assert_msg(rc == 0, "ctl %s: exit %d: %s", verb, rc, err);
	free(err);
	return out;
}

/* The "matched" count of `ctl --json jobs` output. */
static unsigned
jobs_matched(const char *json)
{
	const char	*p = strstr(json, "\"matched\": ");
	unsigned	 n;

	ck_assert_msg(p != NULL && sscanf(p, "\"matched\": %u", &n) == 1,
	    "no matched count in %s", json);
	return n;
}

/* True when `ctl --json` output holds the job id (as "id": "..."). */
static bool
json_has_id(const char *json, const char *id)
{
	char	needle[64];

	snprintf(needle, sizeof(needle), "\"id\": \"%s\"", id);
	return strstr(json, needle) != NULL;
}

/* Waits up to ms for a child to exit by itself; its wait status. */
static int
child_wait(pid_t pid, int ms)
{
	unsigned long long	deadline = harness_now_ms() + (unsigned)ms;
	int			status;

	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		ck_assert_msg(harness_now_ms() < deadline,
		    "child %d did not exit in %d ms", (int)pid, ms);
		usleep(5000);
	}
}

/* Stops the broker with SIGTERM: it must exit 0 (with its store closed). */
static void
broker_stop_ok(struct harness_broker *b)
{
	int	status = harness_broker_stop(b);

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "patchbayd stopped with wait status %d", status);
}

/* ---- kill -9 ------------------------------------------------------------ */

/* The submitter child's files. */
static int	ledger_fd = -1, refused_fd = -1;

/* A submitted job's one answer: its payload into the ledger if ACCEPTED. */
static void
on_ledger_result(struct pb_client *c, struct pb_result *r, void *ud)
{
	unsigned	i = (unsigned)(uintptr_t)ud;

	(void)c;
	if (r->status == PB_ACCEPTED)
		append_line(ledger_fd, "job-%06u\n", i);
	else if (r->status != PB_DISCONNECTED)
		append_line(refused_fd, "job-%06u %s\n", i,
		    pb_status_name(r->status));
	pb_result_free(r);
}

/*
 * The submitter child: streams detached RUNs of "ledger" (payloads
 * job-000000, job-000001...), LEDGER_IN_FLIGHT at a time and at most
 * LEDGER_PER_MS a millisecond, and writes a payload into the ledger when
 * its ACCEPTED arrives. Exits 0 once the connection is gone.
 */
static void __attribute__((noreturn))
submitter_run(const char *ep)
{
	struct pb_run_options	 o = { .detach = true };
	struct pb_client	*c;
	char			 payload[32];
	unsigned long long	 start = harness_now_ms(), allowed;
	unsigned		 next = 0;
	int			 r;

	if (pb_client_connect(ep, NULL, &c) != 0)
		_exit(1);
	for (;;) {
		allowed = (harness_now_ms() - start + 1) * LEDGER_PER_MS;
		while (pb_client_pending(c) < LEDGER_IN_FLIGHT &&
		    next < allowed && next < LEDGER_MAX_JOBS) {
			snprintf(payload, sizeof(payload), "job-%06u", next);
			r = pb_client_submit(c, "ledger", payload,
			    strlen(payload), &o, on_ledger_result, NULL,
			    (void *)(uintptr_t)next, NULL);
			if (r == -ENOMEM)
				break;
			if (r != 0)
				_exit(0);
			next++;
		}
		r = pb_client_dispatch(c, 1);
		if (r < 0 && r != -ENOMEM)
			_exit(r == -ENOTCONN ? 0 : 2);
	}
}

/* The kill -9 test's files and what the ledger holds. */
struct ledger_check {
	char				 ledger[300], runs[300];
	unsigned long long		 start;	/* streaming since */
	unsigned			*accepted;	/* job numbers */
	size_t				 naccepted;
};

/* Condition: enough accepted and enough begun for a crash mid-stream. */
static bool
cond_streaming(void *arg)
{
	struct ledger_check	*lc = arg;

	return harness_now_ms() - lc->start >= LEDGER_STREAM_MS &&
	    count_lines(lc->ledger) >= LEDGER_MIN_ACCEPTED &&
	    count_lines(lc->runs) >= LEDGER_MIN_RAN;
}

/* Marks in seen (LEDGER_MAX_JOBS) the job numbers the runs file has. */
static void
ledger_mark_runs(const char *runs_path, unsigned *seen)
{
	struct run	*v;
	size_t		 n = runs_read(runs_path, &v);
	unsigned	 i;

	memset(seen, 0, LEDGER_MAX_JOBS * sizeof(*seen));
	for (size_t k = 0; k < n; k++)
		if (sscanf(v[k].payload, "job-%u", &i) == 1 &&
		    i < LEDGER_MAX_JOBS)
			seen[i]++;
	free(v);
}

/* Condition: every accepted job has begun at least once. */
static bool
cond_ledger_ran(void *arg)
{
	struct ledger_check	*lc = arg;
	unsigned		*seen = calloc(LEDGER_MAX_JOBS, sizeof(*seen));
	bool			 all = true;

	ck_assert_ptr_nonnull(seen);
	ledger_mark_runs(lc->runs, seen);
	for (size_t k = 0; k < lc->naccepted && all; k++)
		all = seen[lc->accepted[k]] > 0;
	free(seen);
	return all;
}

START_TEST(kill9_loses_no_accepted_job)
{
	static const char *const fns[] = { "ledger", NULL };
	struct harness_broker	 b;
	struct ledger_check	 lc = { .naccepted = 0 };
	const char		*flags[3];
	char			 store[300], refused[300], *text, *line;
	char			*save = NULL;
	pid_t			 workers[LEDGER_WORKERS], sub, parent;
	unsigned		*before, *runs_n, *last_attempt, i;
	struct run		*v;
	struct taken_back	 t;
	size_t			 nv, ran = 0, reruns = 0, late = 0;
	size_t			 not_begun = 0, same = 0, missing = 0;
	char			 example[160] = "";
	int			 status;

	harness_tmpdir(b.dir, sizeof(b.dir));
	store_flags(&b, store, sizeof(store), flags);
	snprintf(lc.ledger, sizeof(lc.ledger), "%s/ledger", b.dir);
	snprintf(lc.runs, sizeof(lc.runs), "%s/runs", b.dir);
	snprintf(refused, sizeof(refused), "%s/refused", b.dir);
	harness_broker_start(&b, flags, true);
	for (int k = 0; k < LEDGER_WORKERS; k++)
		workers[k] = worker_fork_with(b.unix_ep, fns,
		    LEDGER_CAPACITY, lc.runs, PB_OK, LEDGER_JOB_US, true);

	ledger_fd = open_append(lc.ledger);
	refused_fd = open_append(refused);
	parent = getpid();
	lc.start = harness_now_ms();
	sub = fork();
	ck_assert_int_ne(sub, -1);
	if (sub == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		submitter_run(b.unix_ep);
	}
	close(ledger_fd);
	close(refused_fd);

	/* Jobs stream in and run: pull the plug. */
	ck_assert_msg(harness_wait_until(cond_streaming, &lc, 20000),
	    "only %zu accepted and %zu begun in 20 s",
	    count_lines(lc.ledger), count_lines(lc.runs));
	harness_kill(b.pid, SIGKILL);
	b.pid = -1;
	status = child_wait(sub, WAIT_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the submitter ended with wait status %d", status);

	/* The ledger is final: what was ACCEPTED, and nothing refused. */
	text = harness_read_file(refused);
	ck_assert_msg(text == NULL || *text == '\0', "refused: %s", text);
	free(text);
	text = harness_read_file(lc.ledger);
	ck_assert_ptr_nonnull(text);
	lc.accepted = calloc(LEDGER_MAX_JOBS, sizeof(*lc.accepted));
	ck_assert_ptr_nonnull(lc.accepted);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		ck_assert_msg(sscanf(line, "job-%u", &i) == 1 &&
		    i < LEDGER_MAX_JOBS, "ledger line '%s'", line);
		ck_assert_uint_lt(lc.naccepted, LEDGER_MAX_JOBS);
		lc.accepted[lc.naccepted++] = i;
	}
	free(text);

	/*
	 * What had begun by now: the accepted jobs that had not must all be
	 * in the store (nothing could have finished them).
	 */
	before = calloc(LEDGER_MAX_JOBS, sizeof(*before));
	ck_assert_ptr_nonnull(before);
	ledger_mark_runs(lc.runs, before);
	for (size_t k = 0; k < lc.naccepted; k++)
		not_begun += before[lc.accepted[k]] == 0;

	/* The same store again: the workers come back by themselves. */
	harness_broker_start(&b, flags, true);
	t = taken_back(&b, store);
	ck_assert_uint_ge(t.n, 1);
	ck_assert_uint_eq(t.n, t.queued);
	ck_assert_uint_eq(t.delayed, 0);
	ck_assert_uint_eq(t.dead, 0);
	ck_assert_msg(t.n >= not_begun, "%u jobs taken back, but %zu "
	    "accepted jobs had not begun", t.n, not_begun);
	ck_assert_msg(harness_wait_until(cond_ledger_ran, &lc, DRAIN_MS),
	    "not every accepted job ran within %d s", DRAIN_MS / 1000);
	ck_assert_msg(harness_wait_until(cond_idle, &b, DRAIN_MS),
	    "the broker still has jobs after %d s", DRAIN_MS / 1000);
	for (int k = 0; k < LEDGER_WORKERS; k++)
		harness_kill(workers[k], SIGKILL);

	/*
	 * Every accepted job ran; a job ran twice only if it was running at
	 * the crash, each run with a higher attempt than the one before.
	 */
	runs_n = calloc(LEDGER_MAX_JOBS, sizeof(*runs_n));
	last_attempt = calloc(LEDGER_MAX_JOBS, sizeof(*last_attempt));
	ck_assert(runs_n != NULL && last_attempt != NULL);
	nv = runs_read(lc.runs, &v);
	for (size_t k = 0; k < nv; k++) {
		ck_assert_msg(sscanf(v[k].payload, "job-%u", &i) == 1 &&
		    i < LEDGER_MAX_JOBS && v[k].attempt >= 1,
		    "bad run '%s' attempt %u", v[k].payload, v[k].attempt);
		if (runs_n[i] == 0) {
			/* Sent to a worker that lost it unbegun: attempt 2. */
			late += v[k].attempt > 1;
			ran++;
		} else {
			reruns += runs_n[i] == 1;
			if (v[k].attempt <= last_attempt[i] && same++ == 0)
				snprintf(example, sizeof(example), "%s ran "
				    "again at attempt %u after attempt %u",
				    v[k].payload, v[k].attempt,
				    last_attempt[i]);
		}
		last_attempt[i] = v[k].attempt;
		runs_n[i]++;
	}
	for (size_t k = 0; k < lc.naccepted; k++)
		missing += runs_n[lc.accepted[k]] == 0;
	fprintf(stderr, "kill9_loses_no_accepted_job: %zu accepted (%zu not "
	    "begun at the crash), %u taken back; %zu ran (%zu runs, %zu "
	    "first at attempt 2 or more), %zu ran twice, %zu of them again "
	    "at the same attempt; %zu accepted never ran\n", lc.naccepted,
	    not_begun, t.n, ran, nv, late, reruns, same, missing);
	ck_assert_msg(missing == 0, "%zu ACCEPTED jobs never ran", missing);
	ck_assert_msg(same == 0, "%zu jobs ran again at an attempt number "
	    "not above their previous run's, e.g. %s", same, example);
	ck_assert_msg(reruns <= LEDGER_WORKERS * LEDGER_CAPACITY,
	    "%zu jobs ran twice, more than the %d the workers could hold",
	    reruns, LEDGER_WORKERS * LEDGER_CAPACITY);
	free(v);
	free(runs_n);
	free(last_attempt);
	free(before);
	free(lc.accepted);
	broker_stop_ok(&b);
}
END_TEST

/* ---- a store that cannot write ---------------------------------------- */

/* Jobs a worker must have begun: a runs file and the payloads. */
struct ran_wait {
	const char		*runs;
	const char *const	*payloads;	/* NULL-terminated */
};

/* Condition: each payload of the ran_wait has a run. */
static bool
cond_ran(void *arg)
{
	struct ran_wait	*rw = arg;
	struct run	*v;
	size_t		 n = runs_read(rw->runs, &v);
	bool		 all = true;

	for (const char *const *p = rw->payloads; *p != NULL && all; p++)
		all = runs_of(v, n, *p) > 0;
	free(v);
	return all;
}

/* What test store_failed_when_unwritable submitted. */
struct sf_jobs {
	char	payload[16][32];
	char	id[16][37];
	size_t	n;
};

/* Jobs that must all run, and the runs file to look in. */
struct sf_drain {
	const struct sf_jobs	*jobs;
	const char		*runs;
};

/* Condition: every job of the sf_drain has a run. */
static bool
cond_sf_drained(void *arg)
{
	struct sf_drain	*d = arg;
	struct run	*v;
	size_t		 n = runs_read(d->runs, &v);
	bool		 all = true;

	for (size_t k = 0; k < d->jobs->n && all; k++)
		all = runs_of(v, n, d->jobs->payload[k]) > 0;
	free(v);
	return all;
}

START_TEST(store_failed_when_unwritable)
{
	static const char *const side_fns[] = { "attached", "later", NULL };
	static const char *const keep_fns[] = { "keep", NULL };
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r;
	struct rlimit		 old, none;
	struct sf_jobs		 acc = { .n = 0 }, ref = { .n = 0 };
	struct sf_drain		 drain = { &acc, NULL };
	struct taken_back	 t;
	struct run		*v;
	const char		*flags[3];
	char			 store[300], runs[300], keep_runs[300];
	char			*out = NULL, *err = NULL;
	unsigned long long	 deadline;
	pid_t			 side;
	size_t			 nv;
	int			 status, k;

	harness_tmpdir(b.dir, sizeof(b.dir));
	store_flags(&b, store, sizeof(store), flags);
	snprintf(runs, sizeof(runs), "%s/runs", b.dir);
	snprintf(keep_runs, sizeof(keep_runs), "%s/keep-runs", b.dir);
	harness_broker_start(&b, flags, true);
	c = harness_client(b.unix_ep);

	/* Taken before the failure: three to keep, one that runs during it. */
	for (k = 0; k < 3; k++, acc.n++) {
		snprintf(acc.payload[acc.n], 32, "keep-%d", k);
		submit_accepted(c, "keep", acc.payload[acc.n], NULL,
		    acc.id[acc.n]);
	}
	submit_accepted(c, "later", "later-0", NULL, NULL);

	/* The broker can no longer write a byte to any file. */
	ck_assert_int_eq(prlimit(b.pid, RLIMIT_FSIZE, NULL, &old), 0);
	none.rlim_cur = 0;
	none.rlim_max = old.rlim_max;
	ck_assert_int_eq(prlimit(b.pid, RLIMIT_FSIZE, &none, NULL), 0);

	/* The first detached RUN is refused, and every one after it. */
	for (k = 0; k < 2; k++, ref.n++) {
		snprintf(ref.payload[ref.n], 32, "refused-%d", k);
		r = submit_detached(c, "keep", ref.payload[ref.n], NULL);
		ck_assert_msg(r->status == PB_STORE_FAILED, "%s: %s",
		    ref.payload[ref.n], pb_status_name(r->status));
		ck_assert_msg(r->error != NULL && strstr(r->error,
		    "cannot write its store") != NULL, "error: %s",
		    r->error ? r->error : "(none)");
		pb_result_free(r);
	}
	status = harness_run((const char *[]){ harness_cli(), "run", "-b",
	    b.unix_ep, "-d", "keep", "refused-cli", NULL }, NULL, NULL, 0,
	    &out, &err, WAIT_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 12,
	    "patchbay run -d: wait status %d, stderr %s", status, err);
	ck_assert_str_eq(out, "");
	ck_assert_msg(strstr(err, "could not store the job") != NULL &&
	    strstr(err, "(STORE_FAILED)") != NULL, "stderr: %s", err);
	free(out);
	free(err);
	snprintf(ref.payload[ref.n++], 32, "refused-cli");

	/*
	 * Attached jobs go on, and a job taken before the failure runs and
	 * ends meanwhile (its end is written once the store works again).
	 */
	side = worker_fork(b.unix_ep, side_fns, 2, runs, PB_OK);
	ck_assert_int_eq(pb_client_run(c, "attached", "att-0", 5, NULL, &r),
	    0);
	ck_assert_msg(r->status == PB_OK, "attached: %s (%s)",
	    pb_status_name(r->status), r->error ? r->error : "");
	ck_assert_uint_eq(r->len, 5);
	ck_assert_int_eq(memcmp(r->payload, "att-0", 5), 0);
	pb_result_free(r);
	ck_assert(harness_wait_until(cond_ran, &(struct ran_wait){ runs,
	    (const char *[]){ "later-0", NULL } }, WAIT_MS));
	ck_assert_msg(store_failing_shown(&b, true), "ctl status does not "
	    "show the store failing");

	/* The limit lifted, detached RUNs are taken again within seconds. */
	ck_assert_int_eq(prlimit(b.pid, RLIMIT_FSIZE, &old, NULL), 0);
	deadline = harness_now_ms() + WAIT_MS;
	for (k = 0;; k++) {
		char	p[32];

		snprintf(p, sizeof(p), "keep-after-%d", k);
		r = submit_detached(c, "keep", p, NULL);
		if (r->status == PB_ACCEPTED) {
			snprintf(acc.payload[acc.n], 32, "%s", p);
			id_text(r->id, acc.id[acc.n++]);
			pb_result_free(r);
			break;
		}
		ck_assert_msg(r->status == PB_STORE_FAILED, "%s: %s", p,
		    pb_status_name(r->status));
		pb_result_free(r);
		ck_assert_uint_lt(ref.n, 16);
		snprintf(ref.payload[ref.n++], 32, "%s", p);
		ck_assert_msg(harness_now_ms() < deadline, "detached RUNs "
		    "still refused %d s after the limit was lifted",
		    WAIT_MS / 1000);
		usleep(100000);
	}
	for (k = 0; k < 2; k++, acc.n++) {
		snprintf(acc.payload[acc.n], 32, "keep-more-%d", k);
		submit_accepted(c, "keep", acc.payload[acc.n], NULL,
		    acc.id[acc.n]);
	}
	ck_assert(harness_wait_log(&b, "writing again", WAIT_MS));
	ck_assert(store_failing_shown(&b, false));
	harness_kill(side, SIGKILL);
	pb_client_free(c);

	/* After a restart: exactly what was ACCEPTED and is not done. */
	broker_stop_ok(&b);
	harness_broker_start(&b, flags, true);
	t = taken_back(&b, store);
	ck_assert_uint_eq(t.n, acc.n);
	ck_assert_uint_eq(t.queued, acc.n);
	out = ctl_json(&b, "jobs", NULL, NULL);
	ck_assert_uint_eq(jobs_matched(out), acc.n);
	for (size_t j = 0; j < acc.n; j++)
		ck_assert_msg(json_has_id(out, acc.id[j]), "%s (%s) is not "
		    "in ctl jobs: %s", acc.payload[j], acc.id[j], out);
	free(out);

	/* Drained: each accepted job runs once, no refused one at all. */
	side = worker_fork(b.unix_ep, keep_fns, 2, keep_runs, PB_OK);
	drain.runs = keep_runs;
	ck_assert(harness_wait_until(cond_sf_drained, &drain, WAIT_MS));
	ck_assert(harness_wait_until(cond_idle, &b, WAIT_MS));
	harness_kill(side, SIGKILL);
	nv = runs_read(keep_runs, &v);
	ck_assert_uint_eq(nv, acc.n);
	for (size_t j = 0; j < ref.n; j++)
		ck_assert_msg(runs_of(v, nv, ref.payload[j]) == 0,
		    "%s was refused STORE_FAILED but ran", ref.payload[j]);
	free(v);
	nv = runs_read(runs, &v);
	ck_assert_uint_eq(runs_of(v, nv, "later-0"), 1);
	free(v);
	fprintf(stderr, "store_failed_when_unwritable: %zu accepted, %zu "
	    "refused STORE_FAILED\n", acc.n, ref.n);
	broker_stop_ok(&b);
}
END_TEST

START_TEST(store_failed_run_reaches_no_worker)
{
	static const char *const fns[] = { "eager", NULL };
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r;
	struct rlimit		 old, none;
	struct run		*v;
	const char		*flags[3];
	char			 store[300], runs[300];
	unsigned long long	 deadline;
	pid_t			 w;
	size_t			 nv;

	stored_broker_start(&b, store, sizeof(store), flags, runs,
	    sizeof(runs));
	w = worker_fork(b.unix_ep, fns, 1, runs, PB_OK);
	c = harness_client(b.unix_ep);
	submit_accepted(c, "eager", "before", NULL, NULL);
	ck_assert(harness_wait_until(cond_ran, &(struct ran_wait){ runs,
	    (const char *[]){ "before", NULL } }, WAIT_MS));
	ck_assert(harness_wait_until(cond_idle, &b, WAIT_MS));

	/* An idle worker waits for "eager" while the store cannot write. */
	ck_assert_int_eq(prlimit(b.pid, RLIMIT_FSIZE, NULL, &old), 0);
	none.rlim_cur = 0;
	none.rlim_max = old.rlim_max;
	ck_assert_int_eq(prlimit(b.pid, RLIMIT_FSIZE, &none, NULL), 0);
	r = submit_detached(c, "eager", "refused", NULL);
	ck_assert_msg(r->status == PB_STORE_FAILED, "refused: %s",
	    pb_status_name(r->status));
	pb_result_free(r);
	ck_assert_int_eq(prlimit(b.pid, RLIMIT_FSIZE, &old, NULL), 0);

	/* Once the store writes again, the next job runs; the refused not. */
	deadline = harness_now_ms() + WAIT_MS;
	for (;;) {
		r = submit_detached(c, "eager", "after", NULL);
		if (r->status == PB_ACCEPTED)
			break;
		pb_result_free(r);
		ck_assert_msg(harness_now_ms() < deadline, "still refused");
		usleep(100000);
	}
	pb_result_free(r);
	ck_assert(harness_wait_until(cond_ran, &(struct ran_wait){ runs,
	    (const char *[]){ "after", NULL } }, WAIT_MS));
	pb_client_free(c);
	harness_kill(w, SIGKILL);
	nv = runs_read(runs, &v);
	ck_assert_msg(runs_of(v, nv, "refused") == 0, "a detached RUN "
	    "answered STORE_FAILED began on the worker anyway");
	free(v);
	broker_stop_ok(&b);
}
END_TEST

/* ---- restarts ------------------------------------------------------------ */

/* Condition: the runs file (arg) has at least one line. */
static bool
cond_any_run(void *arg)
{
	return count_lines(arg) >= 1;
}

START_TEST(delayed_job_survives_restart)
{
	static const char *const fns[] = { "late", NULL };
	struct harness_broker	 b;
	struct pb_run_options	 o = { .delay_ms = LATER_MS };
	struct pb_client	*c;
	struct taken_back	 t;
	struct run		*v;
	const char		*flags[3];
	char			 store[300], runs[300], id[37], *out;
	unsigned long long	 t0;
	pid_t			 w;
	size_t			 nv;

	stored_broker_start(&b, store, sizeof(store), flags, runs,
	    sizeof(runs));
	c = harness_client(b.unix_ep);
	/* Taken no earlier than t0: due no earlier than t0 + LATER_MS. */
	t0 = clock_wall_ms();
	submit_accepted(c, "late", "late-0", &o, id);
	pb_client_free(c);
	out = ctl_json(&b, "jobs", "--state", "delayed");
	ck_assert_msg(json_has_id(out, id), "not delayed: %s", out);
	free(out);

	broker_stop_ok(&b);
	harness_broker_start(&b, flags, true);
	t = taken_back(&b, store);
	ck_assert_uint_eq(t.n, 1);
	ck_assert_uint_eq(t.delayed, 1);
	out = ctl_json(&b, "jobs", "--state", "delayed");
	ck_assert_msg(json_has_id(out, id), "not delayed after the restart: "
	    "%s", out);
	free(out);

	w = worker_fork(b.unix_ep, fns, 1, runs, PB_OK);
	ck_assert(harness_wait_until(cond_any_run, runs, WAIT_MS + LATER_MS));
	ck_assert(harness_wait_until(cond_idle, &b, WAIT_MS));
	harness_kill(w, SIGKILL);
	nv = runs_read(runs, &v);
	ck_assert_uint_eq(nv, 1);
	ck_assert_str_eq(v[0].payload, "late-0");
	ck_assert_uint_eq(v[0].attempt, 1);
	ck_assert_msg(v[0].at >= t0 + LATER_MS, "the job ran %llu ms before "
	    "it was due", t0 + LATER_MS - v[0].at);
	fprintf(stderr, "delayed_job_survives_restart: ran %llu ms after "
	    "submit + delay\n", v[0].at - (t0 + LATER_MS));
	free(v);
	broker_stop_ok(&b);
}
END_TEST

START_TEST(dead_list_and_retries_survive_restart)
{
	static const char *const fns[] = { "flaky", NULL };
	struct harness_broker	 b;
	struct pb_run_options	 fast = { .retry_on_error = 1,
				    .backoff_ms = 100 };
	struct pb_run_options	 slow = { .retry_on_error = 1,
				    .backoff_ms = LATER_MS };
	struct pb_client	*c;
	struct taken_back	 t;
	struct run		*v;
	const char		*flags[3];
	char			 store[300], runs[300], ok_runs[300];
	char			 dead_id[37], retry_id[37], *out, *err;
	pid_t			 w;
	size_t			 nv;
	int			 rc;

	harness_tmpdir(b.dir, sizeof(b.dir));
	store_flags(&b, store, sizeof(store), flags);
	snprintf(runs, sizeof(runs), "%s/runs", b.dir);
	snprintf(ok_runs, sizeof(ok_runs), "%s/ok-runs", b.dir);
	harness_broker_start(&b, flags, true);
	c = harness_client(b.unix_ep);
	submit_accepted(c, "flaky", "dies", &fast, dead_id);
	submit_accepted(c, "flaky", "retries", &slow, retry_id);
	pb_client_free(c);

	/*
	 * A worker that always fails: "dies" fails twice and is dead,
	 * "retries" fails once and waits LATER_MS for its retry.
	 */
	w = worker_fork(b.unix_ep, fns, 1, runs, PB_ERROR);
	for (unsigned long long deadline = harness_now_ms() + WAIT_MS;;) {
		out = ctl_json(&b, "dead", NULL, NULL);
		if (json_has_id(out, dead_id))
			break;
		free(out);
		ck_assert_msg(harness_now_ms() < deadline, "not dead in %d s",
		    WAIT_MS / 1000);
		usleep(20000);
	}
	free(out);
	harness_kill(w, SIGKILL);
	nv = runs_read(runs, &v);
	ck_assert_uint_eq(runs_of(v, nv, "dies"), 2);
	ck_assert_uint_eq(runs_of(v, nv, "retries"), 1);
	free(v);
	out = ctl_json(&b, "jobs", "--state", "delayed");
	ck_assert_msg(json_has_id(out, retry_id), "retry not waiting: %s",
	    out);
	free(out);

	broker_stop_ok(&b);
	harness_broker_start(&b, flags, true);
	t = taken_back(&b, store);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_uint_eq(t.dead, 1);
	ck_assert_uint_eq(t.delayed, 1);

	/* Still dead, with its last error; the retry still waits. */
	rc = harness_ctl(&b, false, &out, &err, "dead", NULL);
	ck_assert_msg(rc == 0, "ctl dead: %s", err);
	ck_assert_msg(strstr(out, dead_id) != NULL &&
	    strstr(out, "boom at attempt 2") != NULL, "ctl dead: %s", out);
	free(out);
	free(err);
	out = ctl_json(&b, "jobs", "--state", "delayed");
	ck_assert_msg(json_has_id(out, retry_id), "retry lost: %s", out);
	free(out);

	/* Kicked, the dead one runs; the retry runs once due, at attempt 2. */
	w = worker_fork(b.unix_ep, fns, 1, ok_runs, PB_OK);
	rc = harness_ctl(&b, false, &out, &err, "kick", dead_id, NULL);
	ck_assert_msg(rc == 0, "ctl kick: %s", err);
	free(out);
	free(err);
	ck_assert(harness_wait_until(cond_idle, &b, WAIT_MS + 2 * LATER_MS));
	nv = runs_read(ok_runs, &v);
	ck_assert_uint_eq(nv, 2);
	ck_assert_uint_eq(runs_of(v, nv, "dies"), 1);
	ck_assert_uint_eq(runs_of(v, nv, "retries"), 1);
	for (size_t k = 0; k < nv; k++)
		if (strcmp(v[k].payload, "retries") == 0)
			ck_assert_uint_eq(v[k].attempt, 2);
		else
			ck_assert_uint_gt(v[k].attempt, 2);
	free(v);
	harness_kill(w, SIGKILL);
	rc = harness_ctl(&b, false, &out, NULL, "dead", NULL);
	ck_assert_int_eq(rc, 0);
	ck_assert_msg(strstr(out, "no dead jobs") != NULL, "ctl dead: %s",
	    out);
	free(out);

	/* Done means out of the store. */
	broker_stop_ok(&b);
	harness_broker_start(&b, flags, true);
	t = taken_back(&b, store);
	ck_assert_uint_eq(t.n, 0);
	broker_stop_ok(&b);
}
END_TEST

START_TEST(sigterm_keeps_queued_jobs_in_order)
{
	static const struct { const char *payload; int priority; } jobs[] = {
		{ "p0-a", 0 }, { "p5-a", 5 }, { "p0-b", 0 }, { "p10-a", 10 },
		{ "p5-b", 5 }, { "p0-c", 0 }, { "pm5-a", -5 },
	};
	static const char *const order[] = {
		"p10-a", "p5-a", "p5-b", "p0-a", "p0-b", "p0-c", "pm5-a",
	};
	static const char *const fns[] = { "ordered", NULL };
	const size_t		 njobs = sizeof(jobs) / sizeof(jobs[0]);
	struct harness_broker	 b;
	struct pb_client	*c;
	struct taken_back	 t;
	struct run		*v;
	const char		*flags[3];
	char			 store[300], runs[300];
	pid_t			 w;
	size_t			 nv;

	stored_broker_start(&b, store, sizeof(store), flags, runs,
	    sizeof(runs));
	c = harness_client(b.unix_ep);
	for (size_t k = 0; k < njobs; k++) {
		struct pb_run_options o = { .priority = jobs[k].priority };

		submit_accepted(c, "ordered", jobs[k].payload, &o, NULL);
	}
	pb_client_free(c);

	broker_stop_ok(&b);
	harness_broker_start(&b, flags, true);
	t = taken_back(&b, store);
	ck_assert_uint_eq(t.n, njobs);
	ck_assert_uint_eq(t.queued, njobs);

	w = worker_fork(b.unix_ep, fns, 1, runs, PB_OK);
	ck_assert(harness_wait_until(cond_idle, &b, WAIT_MS));
	harness_kill(w, SIGKILL);
	nv = runs_read(runs, &v);
	ck_assert_uint_eq(nv, njobs);
	for (size_t k = 0; k < nv; k++)
		ck_assert_msg(strcmp(v[k].payload, order[k]) == 0,
		    "run %zu is %s, expected %s", k + 1, v[k].payload,
		    order[k]);
	free(v);
	broker_stop_ok(&b);
}
END_TEST

/* ---- refused at start ---------------------------------------------------- */

/* Runs statements on a new or existing SQLite database at path. */
static void
sqlite_do(const char *path, const char *sql)
{
	sqlite3	*db;
	char	*err = NULL;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK,
	    "%s: %s: %s", path, sql, err);
	sqlite3_close(db);
}

/* The number of tables and indexes of the SQLite database at path. */
static int
sqlite_objects(const char *path)
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	int		 n;

	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM "
	    "sqlite_master", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* patchbayd with --store path must stop at start, saying path and why. */
static void
assert_refused(const char *dir, const char *path, const char *why)
{
	char	 ep[320], *err = NULL;
	int	 status;

	snprintf(ep, sizeof(ep), "unix:%s/x.sock", dir);
	status = harness_run((const char *[]){ harness_patchbayd(), "-l", ep,
	    "--store", path, NULL }, NULL, NULL, 0, NULL, &err, WAIT_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0,
	    "patchbayd --store %s (%s): wait status %d (%s %d), stderr '%s'",
	    path, why, status, WIFSIGNALED(status) ? "signal" : "exit",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
	    err);
	ck_assert_msg(strstr(err, path) != NULL && strstr(err, why) != NULL,
	    "patchbayd --store %s: stderr '%s' lacks the path or '%s'", path,
	    err, why);
	free(err);
}

START_TEST(bad_store_refused_at_start)
{
	static const char	 junk[] = "these bytes are no SQLite "
	    "database, and patchbayd must leave them as they are\n";
	struct harness_broker	 b;
	const char		*flags[3];
	char			 dir[256], path[320], store[300], *text;
	struct pb_client	*c;

	harness_tmpdir(dir, sizeof(dir));

	/* A directory that does not exist, and is not made. */
	snprintf(path, sizeof(path), "%s/missing/jobs.db", dir);
	assert_refused(dir, path, "cannot open");
	snprintf(path, sizeof(path), "%s/missing", dir);
	ck_assert_int_eq(access(path, F_OK), -1);

	/* A file that is not an SQLite database: left as it was. */
	harness_write_file(path, sizeof(path), dir, "junk.db", "%s", junk);
	assert_refused(dir, path, "not a database");
	text = harness_read_file(path);
	ck_assert_str_eq(text, junk);
	free(text);

	/* An SQLite database of something else: not touched either. */
	snprintf(path, sizeof(path), "%s/other.db", dir);
	sqlite_do(path, "CREATE TABLE notes (body TEXT); "
	    "INSERT INTO notes VALUES ('mine');");
	assert_refused(dir, path, "not a patchbay store");
	ck_assert_int_eq(sqlite_objects(path), 1);

	/* A store a running patchbayd has open; that one goes on. */
	stored_broker_start(&b, store, sizeof(store), flags, NULL, 0);
	assert_refused(dir, store, "another patchbayd has it open");
	c = harness_client(b.unix_ep);
	submit_accepted(c, "f", "still-taken", NULL, NULL);
	pb_client_free(c);
	broker_stop_ok(&b);

	/* That store, as a newer patchbayd would have left it. */
	sqlite_do(store, "PRAGMA user_version = 99;");
	assert_refused(dir, store, "schema version 99 was written by a "
	    "newer patchbayd");
}
END_TEST

/*
 * A stored row out of range (edited by hand, or a bug) is skipped with a
 * log line naming the job; the others are taken back and run.
 */
START_TEST(bad_row_skipped_at_start)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	const char		*flags[3];
	char			 store[300], id[37], needle[120];

	stored_broker_start(&b, store, sizeof(store), flags, NULL, 0);
	c = harness_client(b.unix_ep);
	submit_accepted(c, "f", "good", NULL, NULL);
	submit_accepted(c, "f", "bad", NULL, id);
	pb_client_free(c);
	broker_stop_ok(&b);

	sqlite_do(store, "UPDATE jobs SET priority = 500 WHERE "
	    "payload = CAST('bad' AS BLOB);");
	harness_broker_start(&b, flags, true);
	snprintf(needle, sizeof(needle), "job %s skipped: a field is out "
	    "of range", id);
	ck_assert_msg(harness_log_contains(&b, needle), "no '%s'", needle);
	ck_assert(harness_log_contains(&b, "1 jobs taken back (1 queued, 0 "
	    "delayed, 0 dead; 1 skipped)"));
	broker_stop_ok(&b);
}
END_TEST

/* The durable store suite. */
static Suite *
durable_suite(void)
{
	Suite	*s = suite_create("durable");
	TCase	*tc;

	tc = tcase_create("crash");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, kill9_loses_no_accepted_job);
	suite_add_tcase(s, tc);

	tc = tcase_create("failing");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, store_failed_when_unwritable);
	tcase_add_test(tc, store_failed_run_reaches_no_worker);
	suite_add_tcase(s, tc);

	tc = tcase_create("restart");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, delayed_job_survives_restart);
	tcase_add_test(tc, dead_list_and_retries_survive_restart);
	tcase_add_test(tc, sigterm_keeps_queued_jobs_in_order);
	suite_add_tcase(s, tc);

	tc = tcase_create("refused");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, bad_store_refused_at_start);
	tcase_add_test(tc, bad_row_skipped_at_start);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite under the harness. */
int
main(void)
{
	return harness_main(durable_suite());
}

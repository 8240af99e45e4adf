/*
 * test-chaos.c: the delivery ledger, kept while workers are killed and
 * clients vanish.
 *
 * The real patchbayd runs two supervised pools: clib, three C-library
 * workers (tests/chaos-worker.c), and cexec, three `patchbay worker
 * --exec` workers whose command is a shell script; both have capacity 4
 * and restart = on-failure. Clients (tests/chaos-client.c, separate
 * processes speaking the protocol themselves) submit jobs with unique ids
 * over a unix and a tcp connection each: retries 0 or 3, some with a
 * timeout, some cancelled at once or a little later, some detached, some
 * failing. Meanwhile a chaos loop kill -9s a random pool process every
 * 60 to 200 ms, kill -9s a client now and then, and some clients drop one
 * of their connections mid-job on their own.
 *
 * Everything is written down: each client writes what it sent and every
 * frame it got back; each worker appends a line when an attempt starts and
 * when it ends (with its pid and the time); the chaos loop keeps its kills.
 * When the clients have all their answers, the chaos stops, the broker
 * drains, the clients are let go (each PINGs its connections first, so a
 * late duplicate would still be seen) and the ledger must balance:
 *
 *   - every RUN of a client that lived to the end has exactly one RESULT,
 *     on the connection that sent it (none for a detached job; none for a
 *     job whose connection the client dropped);
 *   - its status matches what happened to its last attempt: OK with the
 *     right payload and a worker's "ok" end for that attempt; ERROR only for
 *     a job meant to fail; CANCELLED only after a CANCEL (and never run
 *     when attempts is 0); TIMEOUT only for a job with a timeout, not
 *     before it; WORKER_LOST only when no retry was left (or the job had
 *     been cancelled) and the worker of the last attempt was killed; every
 *     earlier attempt lost the same way;
 *     attempts never more than retries + 1; no other status;
 *   - no pool process exited unless it was killed: the broker logged one
 *     exit per kill, each by SIGKILL, and every process is running again;
 *   - the broker's queued and running counts, and every worker's in-flight
 *     count, are back to zero; its descriptors are back to their number
 *     after start-up and it has no zombie child.
 *
 * The CI-sized run (the default) launches 24 clients of 250 jobs, 4 at a
 * time, and stops launching after 20 s. PATCHBAY_CHAOS_SECONDS=N is the
 * long mode: clients are launched for N seconds. The "faults" case runs the
 * same with tests/faultshim.c preloaded into the broker, the workers and
 * the clients: EINTR, EAGAIN, short reads and writes, and rare connection
 * resets, which are then allowed to cost jobs and connections exactly as
 * the protocol says (a reset client connection's jobs are not answered,
 * a reset worker's are retried or WORKER_LOST, a pool process whose
 * connection was reset exits 11 and is restarted).
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <uthash.h>

#include "tests/harness.h"

#define CHAOS_POOL_PROCS	6	/* 3 clib + 3 cexec */
#define CHAOS_MAX_CLIENTS	4096
#define CHAOS_MAX_KILLS		65536
#define CHAOS_MAX_ATTEMPTS	8
#define CHAOS_MAX_REPORT	25	/* violations printed in full */
#define CHAOS_NOTICE_CS		50	/* a worker's death is seen by then */
#define CHAOS_DYING_CS		500	/* a killed worker is gone by then */

/* One attempt of a job, from the workers' ledger. */
struct chaos_attempt {
	unsigned		 attempt;
	int			 pid;
	unsigned long long	 t_start;	/* cs */
	char			 end[8];	/* "" while none */
};

/* One job, from the clients' and the workers' ledgers. */
struct chaos_job {
	UT_hash_handle		 hh;
	char			 id[40];
	int			 client;	/* -1: seen only by workers */
	int			 conn;
	char			 fn[8];
	unsigned		 retries, timeout;
	bool			 ok_mode, detach;
	unsigned long long	 t_sent, t_cancel;	/* ms; 0: none */
	unsigned		 nres;
	char			 status[16];
	unsigned		 attempts;
	unsigned long long	 t_res;
	char			 payok;
	struct chaos_attempt	 att[CHAOS_MAX_ATTEMPTS];
	unsigned		 natt;
};

/* One client process. */
struct chaos_client {
	pid_t			 pid;		/* 0 once reaped */
	int			 ctl_fd;	/* its stdin, -1 once closed */
	int			 out_fd;	/* its stdout, -1 at EOF */
	char			 ledger[300];
	char			 log[300];
	bool			 waiting;	/* said W */
	bool			 done;		/* said D */
	bool			 killed;	/* by the chaos loop */
	bool			 stalled;	/* never had all its answers */
	unsigned long long	 kill_at;	/* ms; 0: to live */
	int			 status;
	unsigned long long	 conn_lost_at[2];	/* ms, X or V */
	bool			 conn_dropped[2];	/* V: on purpose */
};

/* One kill -9 of a pool process. */
struct chaos_kill {
	int			 pid;
	unsigned long long	 start;		/* its start time, in ticks */
	unsigned long long	 t;		/* cs, before kill(2) */
	unsigned long long	 t_after;	/* cs, after kill(2) returned */
};

/* What a run found; violations are counted and the first ones kept. */
struct chaos_run {
	bool			 faults;
	unsigned		 seconds;	/* 0: CI-sized */
	char			 dir[256];
	char			 wledger[300];
	char			 shim_log[300];
	char			 kills_path[300];
	struct harness_broker	 broker;
	struct chaos_client	 clients[CHAOS_MAX_CLIENTS];
	unsigned		 nclients;
	struct chaos_kill	 kills[CHAOS_MAX_KILLS];
	unsigned		 nkills;
	unsigned		 client_kills;
	struct chaos_job	*jobs;
	unsigned		 violations;
	char			 report[CHAOS_MAX_REPORT][512];
	bool			 resets;	/* the shim reset something */
	unsigned long long	 max_late_ms;	/* TIMEOUT after its time */
	unsigned long long	 max_dying_cs;	/* start after its worker's kill */
	uint64_t		 rng;
};

static struct chaos_run	*run;

/* A random number (xorshift64*). */
static uint64_t
chaos_rnd(void)
{
	run->rng ^= run->rng >> 12;
	run->rng ^= run->rng << 25;
	run->rng ^= run->rng >> 27;
	return run->rng * 2685821657736338717ULL;
}

/* CLOCK_BOOTTIME in hundredths of a second, as /proc/uptime. */
static unsigned long long
chaos_uptime_cs(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * 100 + ts.tv_nsec / 10000000;
}

/* Counts a violation and keeps its sentence when there is room. */
static void __attribute__((format(printf, 1, 2)))
chaos_violation(const char *fmt, ...)
{
	va_list	ap;

	if (run->violations < CHAOS_MAX_REPORT) {
		va_start(ap, fmt);
		vsnprintf(run->report[run->violations], sizeof(run->report[0]),
		    fmt, ap);
		va_end(ap);
	}
	run->violations++;
}

/* Writes a file from a printf format. */
static void __attribute__((format(printf, 2, 3)))
chaos_write_file(const char *path, const char *fmt, ...)
{
	FILE	*f = fopen(path, "w");
	va_list	 ap;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	ck_assert_int_eq(fclose(f), 0);
}

/* Appends a line to a file. */
static void
chaos_append(const char *path, const char *line)
{
	FILE	*f = fopen(path, "a");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(line, f);
	fclose(f);
}

/* The build directory's path of a test program. */
static void
chaos_build_path(char *buf, size_t len, const char *name)
{
	const char	*b = getenv("PATCHBAY_BUILDDIR");

	snprintf(buf, len, "%s/tests/%s", b != NULL ? b : ".", name);
}

/* The extra environment of everything run under the fault shim. */
static void
chaos_shim_env(char *preload, size_t plen, char *logv, size_t llen)
{
	const char	*so = getenv("PATCHBAY_FAULTSHIM_SO");

	ck_assert_msg(so != NULL, "PATCHBAY_FAULTSHIM_SO is not set");
	snprintf(preload, plen, "LD_PRELOAD=%s", so);
	snprintf(logv, llen, "FAULTSHIM_LOG=%s", run->shim_log);
}

/*
 * Runs `patchbay ctl --json VERB` on the broker; the output (caller frees).
 * Under the fault shim the broker may reset the ctl's connection too: a
 * failed ctl is tried again, up to five times.
 */
static char *
chaos_ctl(const char *verb)
{
	const char	*argv[] = { harness_cli(), "ctl", "--broker",
			    run->broker.unix_ep, "--json", verb, NULL };
	char		*out = NULL, *err = NULL;
	int		 status, tries = 0;

	for (;;) {
		status = harness_run(argv, NULL, NULL, 0, &out, &err, 30000);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			break;
		ck_assert_msg(run->faults && ++tries < 5, "patchbay ctl %s "
		    "failed (status %d): %s", verb, status, err);
		free(out);
		free(err);
	}
	free(err);
	return out;
}

/* Counts the occurrences of needle in s. */
static unsigned
chaos_count(const char *s, const char *needle)
{
	unsigned	n = 0;

	for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The number after "key": in s (the first one), or -1. */
static long
chaos_json_num(const char *s, const char *key)
{
	char		 needle[64];
	const char	*p;

	snprintf(needle, sizeof(needle), "\"%s\": ", key);
	if ((p = strstr(s, needle)) == NULL)
		return -1;
	return strtol(p + strlen(needle), NULL, 10);
}

/* Sums every "restarts": N of `ctl ps --json`. */
static unsigned long
chaos_restarts(const char *ps)
{
	unsigned long	 n = 0;

	for (const char *p = ps; (p = strstr(p, "\"restarts\": ")) != NULL;
	    p++)
		n += strtoul(p + 12, NULL, 10);
	return n;
}

/* Condition: every pool process is running (registered). */
static bool
chaos_pools_up(void *arg)
{
	char	*ps = chaos_ctl("ps");
	bool	 up;

	(void)arg;
	up = chaos_count(ps, "\"state\": \"running\"") == CHAOS_POOL_PROCS;
	free(ps);
	return up;
}

/* Condition: nothing queued or running, no worker with a job in flight. */
static bool
chaos_drained(void *arg)
{
	char	*st = chaos_ctl("status"), *wk;
	bool	 ok;

	(void)arg;
	ok = chaos_json_num(st, "queued") == 0 &&
	    chaos_json_num(st, "running") == 0;
	free(st);
	if (!ok)
		return false;
	wk = chaos_ctl("workers");
	ok = chaos_count(wk, "\"in_flight\": 0") == CHAOS_POOL_PROCS &&
	    chaos_count(wk, "\"in_flight\": ") == CHAOS_POOL_PROCS;
	free(wk);
	return ok;
}

/*
 * Lists the broker's children (its pool processes) into pids and their
 * start times (in clock ticks since boot: with the pid, a process's
 * identity) into starts (at most max); counts the zombies among them into
 * *ret_zombies.
 */
static int
chaos_pool_pids(int *pids, unsigned long long *starts, int max,
    int *ret_zombies)
{
	DIR		*d = opendir("/proc");
	struct dirent	*e;
	char		 path[300], buf[1024], *paren, *f;
	int		 n = 0, ppid, fd, field;
	ssize_t		 len;
	char		 state;

	*ret_zombies = 0;
	ck_assert(d != NULL);
	while ((e = readdir(d)) != NULL && n < max) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		if ((paren = strrchr(buf, ')')) == NULL ||
		    sscanf(paren + 2, "%c %d", &state, &ppid) != 2 ||
		    ppid != run->broker.pid)
			continue;
		if (state == 'Z') {
			(*ret_zombies)++;
			continue;
		}
		/* Field 22, starttime; field 3 is the state after ") ". */
		for (f = paren + 2, field = 3; f != NULL && field < 22;
		    field++)
			if ((f = strchr(f, ' ')) != NULL)
				f++;
		pids[n] = atoi(e->d_name);
		starts[n++] = f != NULL ? strtoull(f, NULL, 10) : 0;
	}
	closedir(d);
	return n;
}

/* Starts the broker with the two pools and waits for all six workers. */
static void
chaos_start_broker(void)
{
	char		 conf[300], script[300], worker[300], preload[400];
	char		 logv[400], poolenv[1200];
	const char	*extra[] = { "-c", conf, NULL };
	const char	*env[] = { preload, logv, "FAULTSHIM_PERCENT=20",
			    "FAULTSHIM_RESET_PPM=1000",
			    "ASAN_OPTIONS=verify_asan_link_order=0", NULL };

	snprintf(conf, sizeof(conf), "%s/chaos.conf", run->dir);
	snprintf(script, sizeof(script), "%s/job.sh", run->dir);
	snprintf(run->wledger, sizeof(run->wledger), "%s/workers.ledger",
	    run->dir);
	snprintf(run->shim_log, sizeof(run->shim_log), "%s/faultshim.log",
	    run->dir);
	snprintf(run->kills_path, sizeof(run->kills_path), "%s/kills",
	    run->dir);
	chaos_build_path(worker, sizeof(worker), "chaos-worker");
	/*
	 * The job of a `worker --exec`: sourced by its sh -c, so $PPID is
	 * the worker. Start and end lines as chaos-worker writes them.
	 */
	chaos_write_file(script,
	    "read -r secs mode tag || true\n"
	    "read -r up _ < /proc/uptime\n"
	    "echo \"S $PATCHBAY_JOB_ID $PATCHBAY_ATTEMPT $PPID ${up%%.*}${up#*.}\""
	    " >> \"$CHAOS_LEDGER\"\n"
	    "sleep \"$secs\"\n"
	    "read -r up _ < /proc/uptime\n"
	    "if [ \"$mode\" != ok ]; then\n"
	    "  echo \"E $PATCHBAY_JOB_ID $PATCHBAY_ATTEMPT $PPID fail "
	    "${up%%.*}${up#*.}\" >> \"$CHAOS_LEDGER\"\n"
	    "  echo \"fail:$tag\" >&2\n"
	    "  exit 3\n"
	    "fi\n"
	    "echo \"E $PATCHBAY_JOB_ID $PATCHBAY_ATTEMPT $PPID ok "
	    "${up%%.*}${up#*.}\" >> \"$CHAOS_LEDGER\"\n"
	    "printf 'ok:%%s' \"$tag\"\n");
	if (run->faults) {
		chaos_shim_env(preload, sizeof(preload), logv, sizeof(logv));
		snprintf(poolenv, sizeof(poolenv), "environment = %s %s "
		    "FAULTSHIM_PERCENT=20 FAULTSHIM_RESET_PPM=1000 "
		    "ASAN_OPTIONS=verify_asan_link_order=0\n", preload, logv);
	} else
		poolenv[0] = '\0';
	chaos_write_file(conf,
	    "[broker]\n"
	    "no_worker_wait = 1m\n"
	    "\n"
	    "[pool:clib]\n"
	    "command = %s clib 4\n"
	    "instances = 3\n"
	    "restart = on-failure\n"
	    "max_restarts = -1\n"
	    "backoff = 10ms..100ms\n"
	    "environment = CHAOS_LEDGER=%s\n"
	    "%s"
	    "\n"
	    "[pool:cexec]\n"
	    "command = %s worker cexec --exec '. %s' --capacity 4 "
	    "--kill-after 2s\n"
	    "instances = 3\n"
	    "restart = on-failure\n"
	    "max_restarts = -1\n"
	    "backoff = 10ms..100ms\n"
	    "environment = CHAOS_LEDGER=%s\n"
	    "%s",
	    worker, run->wledger, poolenv, harness_cli(), script,
	    run->wledger, poolenv);
	harness_broker_start_env(&run->broker, extra,
	    run->faults ? env : NULL, false);
	ck_assert_msg(harness_wait_until(chaos_pools_up, NULL, 30000),
	    "the pools did not all come up");
}

/* Starts client number i (a chaos-client process). */
static void
chaos_start_client(unsigned i, unsigned jobs)
{
	struct chaos_client	*c = &run->clients[i];
	char			 prog[300], seed[32], idx[16], njobs[16];
	char			 preload[400], logv[400];
	const char		*argv[20];
	const char		*env[] = { preload, logv, "FAULTSHIM_PERCENT=20",
				    "FAULTSHIM_RESET_PPM=1000",
				    "ASAN_OPTIONS=verify_asan_link_order=0",
				    NULL };
	int			 in[2], out[2], logfd, n = 0;
	pid_t			 parent = getpid();

	memset(c, 0, sizeof(*c));
	chaos_build_path(prog, sizeof(prog), "chaos-client");
	snprintf(c->ledger, sizeof(c->ledger), "%s/client-%u.ledger", run->dir,
	    i);
	snprintf(c->log, sizeof(c->log), "%s/client-%u.log", run->dir, i);
	snprintf(seed, sizeof(seed), "%llu",
	    (unsigned long long)(chaos_rnd() >> 1));
	snprintf(idx, sizeof(idx), "%u", i);
	snprintf(njobs, sizeof(njobs), "%u", jobs);
	argv[n++] = prog;
	argv[n++] = "-u";
	argv[n++] = run->broker.unix_ep;
	argv[n++] = "-t";
	argv[n++] = run->broker.tcp_ep;
	argv[n++] = "-n";
	argv[n++] = njobs;
	argv[n++] = "-k";
	argv[n++] = "6";
	argv[n++] = "-s";
	argv[n++] = seed;
	argv[n++] = "-i";
	argv[n++] = idx;
	argv[n++] = "-l";
	argv[n++] = c->ledger;
	if (chaos_rnd() % 4 == 0)
		argv[n++] = "-V";
	argv[n] = NULL;
	if (run->faults)
		chaos_shim_env(preload, sizeof(preload), logv, sizeof(logv));

	ck_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
	logfd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert(logfd >= 0);
	c->pid = fork();
	ck_assert(c->pid != -1);
	if (c->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(logfd, 2);
		if (run->faults)
			for (const char *const *e = env; *e != NULL; e++)
				putenv((char *)*e);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(logfd);
	c->ctl_fd = in[1];
	c->out_fd = out[0];
	if (chaos_rnd() % 6 == 0)
		c->kill_at = harness_now_ms() + 50 + chaos_rnd() % 1000;
	fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
}

/* Reads what client i said on stdout ("W", "D"); reaps it once it ended. */
static void
chaos_poll_client(struct chaos_client *c)
{
	char	buf[64];
	ssize_t	n;

	while (c->out_fd >= 0) {
		n = read(c->out_fd, buf, sizeof(buf));
		if (n < 0)
			break;		/* EAGAIN */
		if (n == 0) {
			close(c->out_fd);
			c->out_fd = -1;
			break;
		}
		for (ssize_t k = 0; k < n; k++) {
			if (buf[k] == 'W')
				c->waiting = true;
			else if (buf[k] == 'D')
				c->done = true;
		}
	}
	if (c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->pid = 0;
}

/*
 * Kills a random pool process with SIGKILL and writes the kill down (in
 * memory and in DIR/kills). A process already killed (its pid and start
 * time) that is not quite dead yet is not killed twice.
 */
static void
chaos_kill_worker(void)
{
	unsigned long long	 starts[64];
	char			 line[96];
	int			 pids[64], n, zombies, i;
	struct chaos_kill	*k;
	bool			 again;

	n = chaos_pool_pids(pids, starts, 64, &zombies);
	if (n == 0 || run->nkills == CHAOS_MAX_KILLS)
		return;
	i = (int)(chaos_rnd() % (unsigned)n);
	again = false;
	for (unsigned m = run->nkills; m-- > 0 && !again; )
		again = run->kills[m].pid == pids[i] &&
		    run->kills[m].start == starts[i];
	if (again)
		return;
	/* Written down first: the kill's effects may be logged at once. */
	k = &run->kills[run->nkills];
	k->pid = pids[i];
	k->start = starts[i];
	k->t = chaos_uptime_cs();
	if (kill(k->pid, SIGKILL) != 0)
		return;
	/* We may have been preempted in between: the kill is in [t, t_after]. */
	k->t_after = chaos_uptime_cs();
	run->nkills++;
	snprintf(line, sizeof(line), "K %d %llu %llu %llu\n", k->pid,
	    k->start, k->t, k->t_after);
	chaos_append(run->kills_path, line);
}

/*
 * Kills the clients whose time has come: one in six is given a time to
 * die when it starts, shortly after, whatever it is doing then. A kill
 * never depends on how the client is doing, so it cannot hide a client
 * that waits for an answer that never comes.
 */
static void
chaos_kill_clients(unsigned long long now)
{
	for (unsigned i = 0; i < run->nclients; i++) {
		struct chaos_client *c = &run->clients[i];

		if (c->kill_at == 0 || c->kill_at > now || c->killed ||
		    c->pid <= 0 || c->waiting)
			continue;
		c->killed = true;
		kill(c->pid, SIGKILL);
		run->client_kills++;
	}
}

/* The job with this id, created when new. */
static struct chaos_job *
chaos_job(const char *id)
{
	struct chaos_job	*j;

	HASH_FIND_STR(run->jobs, id, j);
	if (j != NULL)
		return j;
	j = calloc(1, sizeof(*j));
	ck_assert(j != NULL);
	snprintf(j->id, sizeof(j->id), "%s", id);
	j->client = -1;
	HASH_ADD_STR(run->jobs, id, j);
	return j;
}

/* Reads client i's ledger. */
static void
chaos_read_client(unsigned i)
{
	struct chaos_client	*c = &run->clients[i];
	struct chaos_job	*j;
	FILE			*f = fopen(c->ledger, "r");
	char			 line[512], id[64], fn[16], st[32], mode[8];
	char			 pay[4];
	unsigned		 conn, retries, timeout, detach, att;
	unsigned long long	 t;

	if (f == NULL) {
		chaos_violation("client %u: no ledger", i);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		switch (line[0]) {
		case 'R':
			if (sscanf(line, "R %63s %u %15s %u %u %7s %u %llu", id,
			    &conn, fn, &retries, &timeout, mode, &detach,
			    &t) != 8)
				break;
			j = chaos_job(id);
			if (j->client != -1)
				chaos_violation("job %s: id used twice", id);
			j->client = (int)i;
			j->conn = (int)conn;
			snprintf(j->fn, sizeof(j->fn), "%s", fn);
			j->retries = retries;
			j->timeout = timeout;
			j->ok_mode = strcmp(mode, "ok") == 0;
			j->detach = detach != 0;
			j->t_sent = t;
			break;
		case 'C':
			if (sscanf(line, "C %63s %llu", id, &t) == 2)
				chaos_job(id)->t_cancel = t;
			break;
		case 'S':
			if (sscanf(line, "S %63s %u %31s %u %llu %3s", id, &conn,
			    st, &att, &t, pay) != 6)
				break;
			j = chaos_job(id);
			if (j->nres++ == 0) {
				snprintf(j->status, sizeof(j->status), "%s", st);
				j->attempts = att;
				j->t_res = t;
				j->payok = pay[0];
			}
			break;
		case 'F':
			chaos_violation("client %u: a RESULT not for this "
			    "connection: %.*s", i, (int)strcspn(line + 2, "\n"),
			    line + 2);
			break;
		case 'N':
			if (sscanf(line, "N %63s", id) == 1 &&
			    chaos_job(id)->t_cancel == 0)
				chaos_violation("client %u: NOT_FOUND for %s, "
				    "never cancelled", i, id);
			break;
		case 'E':
			chaos_violation("client %u: ERROR %.*s", i,
			    (int)strcspn(line + 2, "\n"), line + 2);
			break;
		case 'X':
		case 'V':
			if (sscanf(line + 2, "%u %llu", &conn, &t) == 2 &&
			    conn < 2) {
				c->conn_lost_at[conn] = t;
				c->conn_dropped[conn] = line[0] == 'V';
				if (line[0] == 'X' && !run->faults)
					chaos_violation("client %u: connection "
					    "%u lost", i, conn);
			}
			break;
		default:
			break;
		}
	}
	fclose(f);
}

/* Reads the workers' ledger: the start and end of every attempt. */
static void
chaos_read_workers(void)
{
	struct chaos_job	*j;
	struct chaos_attempt	*a;
	FILE			*f = fopen(run->wledger, "r");
	char			 line[256], id[64], how[16];
	unsigned		 att;
	int			 pid;
	unsigned long long	 t;

	ck_assert_msg(f != NULL, "no workers' ledger");
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == 'S' && sscanf(line, "S %63s %u %d %llu", id,
		    &att, &pid, &t) == 4) {
			j = chaos_job(id);
			if (j->natt == CHAOS_MAX_ATTEMPTS) {
				chaos_violation("job %s: more than %d starts",
				    id, CHAOS_MAX_ATTEMPTS);
				continue;
			}
			a = &j->att[j->natt++];
			a->attempt = att;
			a->pid = pid;
			a->t_start = t;
		} else if (line[0] == 'E' && sscanf(line, "E %63s %u %d %15s "
		    "%llu", id, &att, &pid, how, &t) == 5) {
			j = chaos_job(id);
			for (unsigned k = 0; k < j->natt; k++)
				if (j->att[k].attempt == att &&
				    j->att[k].pid == pid)
					snprintf(j->att[k].end,
					    sizeof(j->att[k].end), "%s", how);
		}
	}
	fclose(f);
}

/* True when a pool process was killed between t0 and t1 (cs). */
static bool
chaos_killed_between(unsigned long long t0, unsigned long long t1)
{
	for (unsigned k = 0; k < run->nkills; k++)
		if (run->kills[k].t_after + 1 >= t0 && run->kills[k].t <= t1 + 1)
			return true;
	return false;
}

/*
 * True when attempt a of j was lost the way the protocol allows: the
 * worker that started it was killed after it started, or it never started
 * (the RUN died with its worker) while some worker was killed during the
 * job's life. With connection resets about, any attempt may be lost.
 */
static bool
chaos_attempt_lost(const struct chaos_job *j, unsigned a)
{
	const struct chaos_attempt	*at = NULL;

	if (run->resets)
		return true;
	for (unsigned k = 0; k < j->natt; k++)
		if (j->att[k].attempt == a)
			at = &j->att[k];
	/*
	 * Never started: its RUN went to a worker that was already dead
	 * (killed at most a moment before the job was sent, the broker had
	 * not seen it go yet) or that died before reading it.
	 */
	if (at == NULL)
		return chaos_killed_between(j->t_sent / 10 - CHAOS_NOTICE_CS,
		    j->t_res / 10);
	/*
	 * Started: its worker was killed after it started, or at most
	 * CHAOS_DYING_CS before. A process killed with SIGKILL closes its
	 * descriptors before it is reparented and its PR_SET_PDEATHSIG
	 * children are killed, so on a busy machine a job's shell can still
	 * start (on an empty stdin) after its worker was killed: 440 ms was
	 * seen on two loaded cores. Pids are not reused that soon (one wrap
	 * of pid_max takes a minute here), so the kill is that worker's.
	 */
	for (unsigned k = 0; k < run->nkills; k++) {
		const struct chaos_kill *kl = &run->kills[k];

		if (kl->pid != at->pid ||
		    kl->t_after + CHAOS_DYING_CS < at->t_start)
			continue;
		if (at->t_start > kl->t_after &&
		    at->t_start - kl->t_after > run->max_dying_cs)
			run->max_dying_cs = at->t_start - kl->t_after;
		return true;
	}
	return false;
}

/* A violation about attempt a of j, with what the ledgers say of it. */
static void
chaos_attempt_violation(const struct chaos_job *j, unsigned a,
    const char *what)
{
	const struct chaos_attempt	*at = NULL;
	unsigned long long		 next_kill = 0;

	for (unsigned k = 0; k < j->natt; k++)
		if (j->att[k].attempt == a)
			at = &j->att[k];
	if (at != NULL)
		for (unsigned k = 0; k < run->nkills; k++)
			if (run->kills[k].pid == at->pid)
				next_kill = run->kills[k].t;
	chaos_violation("job %s (%s, %u attempts, %u retries, sent at %llu "
	    "ms, answered %s at %llu ms): attempt %u %s, but its worker was "
	    "not killed: %s pid %d at %llu ms, ended '%s'; last kill of that "
	    "pid at %llu ms", j->id, j->fn, j->attempts, j->retries,
	    j->t_sent, j->status, j->t_res, a, what,
	    at != NULL ? "started by" : "never started", at ? at->pid : 0,
	    at ? at->t_start * 10 : 0, at ? at->end : "", next_kill * 10);
}

/* The end the workers wrote for attempt a of j, or "". */
static const char *
chaos_attempt_end(const struct chaos_job *j, unsigned a)
{
	for (unsigned k = 0; k < j->natt; k++)
		if (j->att[k].attempt == a && j->att[k].end[0] != '\0')
			return j->att[k].end;
	return "";
}

/* Checks one job of a client that lived to the end. */
static void
chaos_check_job(const struct chaos_client *c, struct chaos_job *j)
{
	unsigned long long	 lost_at = c->conn_lost_at[j->conn];
	const char		*st = j->status;
	bool			 cancelled;

	if (j->detach) {
		if (j->nres != 0)
			chaos_violation("job %s (detached): %u RESULT(s)",
			    j->id, j->nres);
		return;
	}
	if (j->nres == 0 && lost_at != 0)
		return;		/* its connection went first */
	if (j->nres != 1) {
		chaos_violation("job %s (%s, client %d conn %d): %u RESULTs",
		    j->id, j->fn, j->client, j->conn, j->nres);
		return;
	}
	if (j->attempts > j->retries + 1)
		chaos_violation("job %s: %u attempts with %u retries", j->id,
		    j->attempts, j->retries);
	for (unsigned a = 1; a < j->attempts; a++)
		if (!chaos_attempt_lost(j, a))
			chaos_attempt_violation(j, a, "was retried");

	if (strcmp(st, "OK") == 0) {
		if (!j->ok_mode || j->payok != '1' ||
		    strcmp(chaos_attempt_end(j, j->attempts), "ok") != 0)
			chaos_violation("job %s: OK but mode %s, payload %s, "
			    "attempt %u ended '%s'", j->id, j->ok_mode ? "ok" :
			    "fail", j->payok == '1' ? "right" : "wrong",
			    j->attempts, chaos_attempt_end(j, j->attempts));
	} else if (strcmp(st, "ERROR") == 0) {
		if (j->ok_mode ||
		    strcmp(chaos_attempt_end(j, j->attempts), "fail") != 0)
			chaos_violation("job %s: ERROR but mode %s, attempt %u "
			    "ended '%s'", j->id, j->ok_mode ? "ok" : "fail",
			    j->attempts, chaos_attempt_end(j, j->attempts));
	} else if (strcmp(st, "CANCELLED") == 0) {
		if (j->t_cancel == 0 || j->t_cancel > j->t_res)
			chaos_violation("job %s: CANCELLED but never cancelled",
			    j->id);
		if (j->attempts == 0 && j->natt > 0)
			chaos_violation("job %s: CANCELLED with attempts 0 but "
			    "a worker started it", j->id);
	} else if (strcmp(st, "TIMEOUT") == 0) {
		if (j->timeout == 0)
			chaos_violation("job %s: TIMEOUT without a timeout",
			    j->id);
		else if (j->t_res + 1 < j->t_sent + j->timeout)
			chaos_violation("job %s: TIMEOUT after %llu ms of its "
			    "%u", j->id, j->t_res - j->t_sent, j->timeout);
		else if (j->t_res - j->t_sent - j->timeout > run->max_late_ms)
			run->max_late_ms = j->t_res - j->t_sent - j->timeout;
	} else if (strcmp(st, "WORKER_LOST") == 0) {
		/* A cancelled job is not dispatched again. */
		cancelled = j->t_cancel != 0 && j->t_cancel <= j->t_res;
		if (j->attempts == 0 || (j->attempts != j->retries + 1 &&
		    !cancelled))
			chaos_violation("job %s: WORKER_LOST after %u attempts "
			    "with %u retries%s", j->id, j->attempts, j->retries,
			    cancelled ? ", cancelled" : "");
		else if (!chaos_attempt_lost(j, j->attempts))
			chaos_attempt_violation(j, j->attempts,
			    "came back WORKER_LOST");
	} else
		chaos_violation("job %s: status %s", j->id, st);
}

/*
 * Checks the broker's log: every pool process that exited was killed by
 * us (or, under the shim, had its connection reset and exited 11).
 * Returns the number of exits.
 */
static unsigned
chaos_check_exits(void)
{
	char		*log = harness_read_file(run->broker.log_path), *p;
	unsigned	 exits = 0;
	int		 pid;
	char		 why[64];
	bool		 killed;

	ck_assert(log != NULL);
	for (p = log; (p = strstr(p, ": pid ")) != NULL; p++) {
		if (sscanf(p, ": pid %d exited (%63[^)])", &pid, why) != 2)
			continue;
		exits++;
		killed = false;
		for (unsigned k = 0; k < run->nkills && !killed; k++)
			killed = run->kills[k].pid == pid;
		if (killed && strcmp(why, "signal KILL") == 0)
			continue;
		if (run->resets && strcmp(why, "exit 11") == 0)
			continue;
		chaos_violation("pool process %d exited (%s) without being "
		    "killed", pid, why);
	}
	free(log);
	return exits;
}

/* Reads the shim's log: whether it reset anything, and its counts. */
static void
chaos_read_shim(unsigned long *calls, unsigned long *resets)
{
	char		*log = harness_read_file(run->shim_log), *p;
	unsigned long	 c, r;

	*calls = *resets = 0;
	if (log == NULL)
		return;
	for (p = log; (p = strstr(p, "calls=")) != NULL; p++)
		if (sscanf(p, "calls=%lu", &c) == 1)
			*calls += c;
	*resets = chaos_count(log, "reset pid=");
	for (p = log; (p = strstr(p, " reset=")) != NULL; p++)
		if (sscanf(p, " reset=%lu", &r) == 1 && r > 0)
			run->resets = true;
	if (*resets > 0)
		run->resets = true;
	free(log);
}

/* The whole run: start, chaos, drain, release, check. */
static void
chaos_run(bool faults)
{
	unsigned long long	 start, stop_launch, next_chaos, deadline;
	unsigned long long	 last_launch = 0;
	unsigned		 total, launched = 0, live, per_client = 250;
	unsigned		 lived = 0, nstatus[16] = { 0 }, exits;
	unsigned long		 shim_calls = 0, shim_resets = 0, restarts;
	static const char *const names[] = { "OK", "ERROR", "CANCELLED",
				    "TIMEOUT", "WORKER_LOST" };
	const char		*secs = getenv("PATCHBAY_CHAOS_SECONDS");
	struct chaos_job	*j, *tmp;
	char			*s;
	int			 fds0, fds1, pids[64], zombies = 0;
	unsigned long long	 starts[64];
	const char		*keep = getenv("PATCHBAY_CHAOS_KEEP");
	unsigned		 jobs_total = 0, answered = 0, dropped = 0;

	run = calloc(1, sizeof(*run));
	ck_assert(run != NULL);
	run->faults = faults;
	run->seconds = secs != NULL ? (unsigned)atoi(secs) : 0;
	run->rng = (uint64_t)harness_now_ms() * 0x9e3779b97f4a7c15ULL + 7;
	harness_tmpdir(run->dir, sizeof(run->dir));
	chaos_start_broker();
	/*
	 * The baseline: the fewest descriptors over half a second, since the
	 * connection of the `ctl ps` that saw the pools up may still be open.
	 */
	fds0 = harness_fd_count(run->broker.pid);
	for (int tries = 0; tries < 50; tries++) {
		usleep(10000);
		if ((fds1 = harness_fd_count(run->broker.pid)) < fds0)
			fds0 = fds1;
	}
	total = run->seconds > 0 ? CHAOS_MAX_CLIENTS : 24;

	start = harness_now_ms();
	stop_launch = start + (run->seconds > 0 ? run->seconds * 1000ULL :
	    20000);
	next_chaos = start + 60;
	for (;;) {
		unsigned long long now = harness_now_ms();

		live = 0;
		for (unsigned i = 0; i < run->nclients; i++) {
			chaos_poll_client(&run->clients[i]);
			if (!run->clients[i].waiting && !run->clients[i].killed &&
			    run->clients[i].pid > 0)
				live++;
			/* A client that died on its own: a failure. */
			if (run->clients[i].pid == 0 &&
			    !run->clients[i].killed && !run->clients[i].waiting) {
				s = harness_read_file(run->clients[i].log);
				ck_abort_msg("client %u ended with status %d "
				    "before its answers: %s", i,
				    run->clients[i].status, s);
			}
		}
		if (launched < total && now < stop_launch && live < 4) {
			chaos_start_client(launched, per_client);
			run->nclients = ++launched;
			last_launch = now;
			continue;
		}
		if (live == 0 && (launched == total || now >= stop_launch))
			break;
		if (now >= stop_launch + 30000 || (launched == total &&
		    now >= last_launch + 30000)) {
			/* Answers that never came: their ledgers will say. */
			for (unsigned i = 0; i < run->nclients; i++) {
				struct chaos_client *c = &run->clients[i];

				if (c->pid > 0 && !c->waiting && !c->killed) {
					c->stalled = true;
					kill(c->pid, SIGKILL);
				}
			}
			break;
		}
		chaos_kill_clients(now);
		if (now >= next_chaos) {
			chaos_kill_worker();
			next_chaos = now + 60 + chaos_rnd() % 140;
		}
		usleep(5000);
	}

	/* No more chaos: the pools come back and the broker drains. */
	if (!harness_wait_until(chaos_pools_up, NULL, 30000)) {
		chaos_check_exits();
		ck_abort_msg("the pools did not all come back after the chaos; "
		    "%u violation(s), the first: %s; ctl ps: %s",
		    run->violations, run->report[0], chaos_ctl("ps"));
	}
	ck_assert_msg(harness_wait_until(chaos_drained, NULL, 30000),
	    "the broker did not drain: status %s workers %s",
	    chaos_ctl("status"), chaos_ctl("workers"));

	/* Let the clients go: each syncs its connections and says D. */
	for (unsigned i = 0; i < run->nclients; i++) {
		close(run->clients[i].ctl_fd);
		run->clients[i].ctl_fd = -1;
	}
	deadline = harness_now_ms() + 60000;
	for (;;) {
		bool busy = false;

		for (unsigned i = 0; i < run->nclients; i++) {
			chaos_poll_client(&run->clients[i]);
			if (run->clients[i].pid > 0)
				busy = true;
		}
		if (!busy)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "clients did not "
		    "finish after their release");
		usleep(10000);
	}

	/* The broker: descriptors back to where they were, no zombie. */
	for (int tries = 0; tries < 300; tries++) {
		fds1 = harness_fd_count(run->broker.pid);
		chaos_pool_pids(pids, starts, 64, &zombies);
		if (fds1 == fds0 && zombies == 0)
			break;
		usleep(10000);
	}
	if (fds1 != fds0)
		chaos_violation("the broker has %d descriptors, %d after "
		    "start-up", fds1, fds0);
	if (zombies != 0)
		chaos_violation("the broker has %d zombie children", zombies);

	/* The ledger. */
	if (faults)
		chaos_read_shim(&shim_calls, &shim_resets);
	chaos_read_workers();
	for (unsigned i = 0; i < run->nclients; i++) {
		struct chaos_client *c = &run->clients[i];

		if (c->killed && !c->done)
			continue;
		if (c->stalled) {
			chaos_violation("client %u never had all its answers",
			    i);
			chaos_read_client(i);
			continue;
		}
		if (!c->done || !WIFEXITED(c->status) ||
		    WEXITSTATUS(c->status) != 0) {
			s = harness_read_file(c->log);
			chaos_violation("client %u did not finish (status %d): "
			    "%.150s", i, c->status, s != NULL ? s : "");
			free(s);
			continue;
		}
		lived++;
		chaos_read_client(i);
	}
	HASH_ITER(hh, run->jobs, j, tmp) {
		if (j->client < 0)
			continue;
		if (run->clients[j->client].killed &&
		    !run->clients[j->client].done)
			continue;
		jobs_total++;
		chaos_check_job(&run->clients[j->client], j);
		if (j->nres == 1) {
			answered++;
			for (unsigned k = 0; k < 5; k++)
				if (strcmp(j->status, names[k]) == 0)
					nstatus[k]++;
		} else if (!j->detach)
			dropped++;
	}
	exits = chaos_check_exits();
	if (exits != run->nkills && !run->resets)
		chaos_violation("%u pool process exits for %u kills", exits,
		    run->nkills);
	s = chaos_ctl("ps");
	restarts = chaos_restarts(s);
	free(s);
	if (restarts != exits)
		chaos_violation("%lu restarts for %u exits", restarts, exits);

	printf("chaos%s: %.1f s, %u clients (%u lived, %u killed), %u jobs: "
	    "%u answered (OK %u, ERROR %u, CANCELLED %u, TIMEOUT %u, "
	    "WORKER_LOST %u), %u unanswered on dropped connections; "
	    "%u workers killed, %u exits, %lu restarts; TIMEOUT at most "
	    "%llu ms late; an attempt started at most %llu ms after its "
	    "worker's kill; broker fds %d -> %d",
	    faults ? " (faults)" : "",
	    (double)(harness_now_ms() - start) / 1000.0, run->nclients, lived,
	    run->client_kills, jobs_total, answered, nstatus[0], nstatus[1],
	    nstatus[2], nstatus[3], nstatus[4], dropped, run->nkills, exits,
	    restarts, run->max_late_ms, run->max_dying_cs * 10, fds0, fds1);
	if (faults)
		printf("; shim: %lu calls interfered with, %lu resets",
		    shim_calls, shim_resets);
	printf("\n");
	for (unsigned v = 0; v < run->violations && v < CHAOS_MAX_REPORT; v++)
		printf("violation: %s\n", run->report[v]);
	fflush(stdout);

	if (run->violations > 0 && keep != NULL) {
		/* The run's files, for a look after the fact. */
		const char *argv[] = { "/bin/cp", "-r", run->dir, keep, NULL };
		const char *argv2[] = { "/bin/cp", run->broker.log_path, keep,
			    NULL };

		harness_run(argv, NULL, NULL, 0, NULL, NULL, 30000);
		harness_run(argv2, NULL, NULL, 0, NULL, NULL, 30000);
		printf("chaos: the run's files are in %s\n", keep);
	}
	ck_assert_msg(run->violations == 0, "%u violation(s) of the ledger, "
	    "the first: %s", run->violations, run->report[0]);
	ck_assert_msg(answered > 0 && run->nkills > 0, "nothing happened");
	if (faults)
		ck_assert_msg(shim_calls > 0, "the fault shim did nothing");
	harness_broker_stop(&run->broker);
	HASH_ITER(hh, run->jobs, j, tmp) {
		HASH_DEL(run->jobs, j);
		free(j);
	}
	free(run);
}

/* The ledger balances while workers are killed and clients vanish. */
START_TEST(chaos_ledger_balances)
{
	chaos_run(false);
}
END_TEST

/* The same with EINTR, EAGAIN, short counts and resets on every socket. */
START_TEST(chaos_ledger_balances_under_faults)
{
	chaos_run(true);
}
END_TEST

/* The suite: one case each, chosen with CK_RUN_CASE by meson. */
static Suite *
chaos_suite(void)
{
	Suite	*s = suite_create("chaos");
	TCase	*tc;
	int	 timeout = 280;
	const char *secs = getenv("PATCHBAY_CHAOS_SECONDS");

	if (secs != NULL)
		timeout += atoi(secs) * 2;
	tc = tcase_create("ledger");
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, chaos_ledger_balances);
	suite_add_tcase(s, tc);

	tc = tcase_create("faults");
	tcase_set_timeout(tc, timeout);
	tcase_add_test(tc, chaos_ledger_balances_under_faults);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(chaos_suite());
}

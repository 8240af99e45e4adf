/*
 * test-pools.c: supervised local worker pools, end to end.
 *
 * Each test writes a config, starts the real patchbayd with -c on it and
 * drives it with the real `patchbay` CLI: jobs with `patchbay run`, the
 * processes with `patchbay ctl`. What is asserted is what an operator
 * would look at: job results, `ctl ps`, refusals' texts, the log, and
 * whether processes are still alive in /proc.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "clients/patchbay.h"
#include "tests/harness.h"

/* Ends the argument lists of ctl(). */
#define END	((const char *)NULL)

static struct harness_broker	broker;
static char			tmp[256];

/* Per test: a fresh directory for its config files. */
static void
pools_setup(void)
{
	memset(&broker, 0, sizeof(broker));
	broker.pid = -1;
	harness_tmpdir(tmp, sizeof(tmp));
}

/* Per test: stops the broker, which stops its processes. */
static void
pools_teardown(void)
{
	harness_broker_stop(&broker);
}

/* A file in the test's directory (harness_write_file()). */
#define write_conf(buf, len, name, ...)					\
	harness_write_file((buf), (len), tmp, (name), __VA_ARGS__)

/* Starts patchbayd on config path. */
static void
start_broker(const char *path)
{
	const char	*extra[] = { "-c", path, NULL };

	harness_broker_start(&broker, extra, false);
}

/* `patchbay ctl` against the test's broker (harness_ctl()). */
#define ctl(json, out, err, ...)					\
	harness_ctl(&broker, (json), (out), (err), __VA_ARGS__)

/*
 * Looks up id in `ctl ps --json` and copies its state into state (may be
 * NULL); returns its pid (0 when it has none), or -1 when id is not listed.
 */
static long
ps_lookup(const char *id, char *state, size_t len, unsigned *ret_restarts)
{
	char	*out = NULL, *err = NULL, needle[128], *m, *next, *s;
	long	 pid = -1;

	if (state != NULL)
		state[0] = '\0';
	ck_assert_int_eq(ctl(true, &out, &err, "ps", END), 0);
	snprintf(needle, sizeof(needle), "\"id\": \"%s\"", id);
	if ((m = strstr(out, needle)) != NULL) {
		/* This map ends where the next one's id starts. */
		next = strstr(m + 1, "\"id\": ");
		if (next != NULL)
			*next = '\0';
		if ((s = strstr(m, "\"pid\": ")) != NULL)
			pid = strtol(s + 7, NULL, 10);	/* null: 0 */
		if ((s = strstr(m, "\"state\": \"")) != NULL && state != NULL)
			snprintf(state, len, "%.*s", (int)strcspn(s + 10, "\""),
			    s + 10);
		if ((s = strstr(m, "\"restarts\": ")) != NULL &&
		    ret_restarts != NULL)
			*ret_restarts = (unsigned)strtoul(s + 12, NULL, 10);
	}
	free(out);
	free(err);
	return pid;
}

/* Polls `ctl ps` until id is in state; fails after ms. Returns its pid. */
static long
wait_state(const char *id, const char *want, int ms)
{
	unsigned long long	deadline = harness_now_ms() + (unsigned)ms;
	char			state[32];
	long			pid;

	for (;;) {
		pid = ps_lookup(id, state, sizeof(state), NULL);
		if (strcmp(state, want) == 0)
			return pid;
		ck_assert_msg(harness_now_ms() < deadline, "%s is '%s', not "
		    "'%s', after %d ms", id, state, want, ms);
		usleep(20000);
	}
}

/* Polls until id is no longer listed. */
static void
wait_unlisted(const char *id, int ms)
{
	unsigned long long	deadline = harness_now_ms() + (unsigned)ms;

	while (ps_lookup(id, NULL, 0, NULL) != -1) {
		ck_assert_msg(harness_now_ms() < deadline, "%s still listed "
		    "after %d ms", id, ms);
		usleep(20000);
	}
}

/* The state letter of pid in /proc, or 0 when it is gone. */
static char
proc_state(long pid)
{
	char	 path[64], buf[512], *paren;
	FILE	*f;
	size_t	 n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((paren = strrchr(buf, ')')) == NULL || paren[1] == '\0')
		return 0;
	return paren[2];
}

/* True when pid is stopped (SIGSTOP has been delivered). */
static bool
proc_stopped_cond(void *arg)
{
	return proc_state(*(long *)arg) == 'T';
}

/* True when pid is gone (or a zombie left for init). */
static bool
proc_gone_cond(void *arg)
{
	char	s = proc_state(*(long *)arg);

	return s == 0 || s == 'Z' || s == 'X';
}

/* Runs `patchbay run FN DATA` with extra options; returns the status. */
static int
run_job(const char *fn, const char *data, char **ret_out, char **ret_err)
{
	const char	*argv[] = { harness_cli(), "run", "--broker",
			    broker.unix_ep, "--timeout", "20s", fn, data, NULL };
	int		 status;

	status = harness_run(argv, NULL, NULL, 0, ret_out, ret_err, 30000);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A config with one pool rev of n `patchbay worker rev --exec rev`. */
static void
rev_conf(char *buf, size_t len, const char *name, int n, const char *extra)
{
	write_conf(buf, len, name,
	    "[pool:rev]\n"
	    "command = %s worker rev --exec rev --capacity 2\n"
	    "instances = %d\n"
	    "backoff = 50ms..1s\n"
	    "stop_timeout = 5s\n"
	    "%s", harness_cli(), n, extra != NULL ? extra : "");
}

START_TEST(pools_answer_jobs)
{
	char	 path[300], *out = NULL, *err = NULL;

	rev_conf(path, sizeof(path), "demo.conf", 2, NULL);
	start_broker(path);
	wait_state("rev/1", "running", 10000);
	wait_state("rev/2", "running", 10000);
	ck_assert_int_eq(run_job("rev", "hello", &out, &err), 0);
	ck_assert_str_eq(out, "olleh");
	free(out);
	free(err);

	/* Local workers are listed beside remote ones. */
	ck_assert_int_eq(ctl(false, &out, &err, "workers", END), 0);
	ck_assert_msg(strstr(out, "local") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "rev/1") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "ps", END), 0);
	ck_assert_msg(strstr(out, "rev/2") != NULL && strstr(out, "running"),
	    "%s", out);
	/* CPU and resident memory, for people: "RSS ... 1.9MiB". */
	ck_assert_msg(strstr(out, " CPU ") != NULL &&
	    strstr(out, " RSS ") != NULL && strstr(out, "MiB ") != NULL,
	    "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(true, &out, &err, "ps", END), 0);
	{
		char *rss = strstr(out, "\"rss_bytes\": ");

		ck_assert_msg(rss != NULL && strtoull(rss + 13, NULL, 10) >
		    100000, "%s", out);
		ck_assert_ptr_nonnull(strstr(out, "\"cpu_ms\": "));
	}
	free(out);
	free(err);

	/* What the workers print lands in the broker's log. */
	ck_assert(harness_wait_log(&broker, "rev/1: patchbay worker: serving",
	    5000));
}
END_TEST

START_TEST(pools_demo_config)
{
	const char	*src = getenv("PATCHBAY_SRCDIR");
	char		 path[600], dir[600], *out = NULL, *err = NULL;
	char		*slash, store[400];
	/* Its store (demo-jobs.db, relative) in the broker's directory. */
	const char	*extra[] = { "-c", path, "--store", store, NULL };
	char		 newpath[1400];

	/* The shipped demo, with `patchbay` found in PATH. */
	snprintf(path, sizeof(path), "%s/docs/examples/demo.conf",
	    src != NULL ? src : ".");
	snprintf(dir, sizeof(dir), "%s", harness_cli());
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		snprintf(newpath, sizeof(newpath), "%s:%s", dir,
		    getenv("PATH") != NULL ? getenv("PATH") : "/usr/bin:/bin");
		setenv("PATH", newpath, 1);
	}
	harness_tmpdir(broker.dir, sizeof(broker.dir));
	snprintf(store, sizeof(store), "%s/demo-jobs.db", broker.dir);
	harness_broker_start(&broker, extra, true);
	wait_state("rev/1", "running", 10000);
	ck_assert_int_eq(run_job("rev", "demo", &out, &err), 0);
	ck_assert_str_eq(out, "omed");
	ck_assert(harness_log_contains(&broker, "demo-jobs.db: 0 jobs taken "
	    "back"));
	free(out);
	free(err);
}
END_TEST

START_TEST(pools_kill9_replaced)
{
	char		 path[300], *out = NULL, *err = NULL;
	long		 pid, pid2;
	unsigned	 restarts = 0;

	rev_conf(path, sizeof(path), "p.conf", 1, NULL);
	start_broker(path);
	pid = wait_state("rev/1", "running", 10000);
	ck_assert_int_gt(pid, 1);
	ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
	ck_assert(harness_wait_log(&broker, "rev/1: restarting in", 5000));
	for (;;) {
		pid2 = wait_state("rev/1", "running", 10000);
		if (pid2 != pid)
			break;
	}
	ps_lookup("rev/1", NULL, 0, &restarts);
	ck_assert_uint_eq(restarts, 1);
	ck_assert_int_eq(run_job("rev", "again", &out, &err), 0);
	ck_assert_str_eq(out, "niaga");
	free(out);
	free(err);
}
END_TEST

START_TEST(pools_crash_loop_fatal)
{
	char		 path[300], *out = NULL, *err = NULL;
	unsigned	 restarts = 0;

	write_conf(path, sizeof(path), "crash.conf",
	    "[pool:crash]\n"
	    "command = sh -c 'echo crashing; exit 3'\n"
	    "max_restarts = 3\n"
	    "backoff = 50ms..1s\n");
	start_broker(path);
	wait_state("crash/1", "fatal", 10000);
	ps_lookup("crash/1", NULL, 0, &restarts);
	ck_assert_uint_eq(restarts, 3);
	ck_assert(harness_log_contains(&broker, "crash/1: crashing"));
	ck_assert(harness_log_contains(&broker, "crash/1: restarting in 50ms"));
	ck_assert(harness_log_contains(&broker, "giving up"));
	ck_assert_int_eq(ctl(false, &out, &err, "ps", END), 0);
	ck_assert_msg(strstr(out, "fatal") != NULL && strstr(out, "exit 3"),
	    "%s", out);
	/* ps says why. */
	ck_assert_msg(strstr(out, "REASON") != NULL &&
	    strstr(out, "fatal after 3 restarts within 1m") != NULL, "%s",
	    out);
	free(out);
	free(err);

	/* Until an operator restarts it. */
	ck_assert_int_eq(ctl(false, NULL, NULL, "restart", "crash", END), 0);
	ck_assert(harness_wait_log(&broker, "crash/1: restarting in", 5000));
}
END_TEST

START_TEST(pools_stop_timeout_kills)
{
	char			 path[300], *out = NULL, *err = NULL;
	long			 pid;
	unsigned long long	 t0;

	write_conf(path, sizeof(path), "stubborn.conf",
	    "[pool:stubborn]\n"
	    "command = sh -c 'trap \"\" TERM; echo ready; "
	    "while :; do sleep 0.1; done'\n"
	    "kill_timeout = 700ms\n");
	start_broker(path);
	ck_assert(harness_wait_log(&broker, "stubborn/1: ready", 10000));
	pid = wait_state("stubborn/1", "starting", 5000);
	t0 = harness_now_ms();
	ck_assert_int_eq(ctl(false, &out, &err, "stop", "stubborn/1", NULL),
	    0);
	/* A success says what it did, once it is done. */
	ck_assert_msg(strncmp(out, "stopped stubborn/1: signal KILL after ",
	    38) == 0 && strstr(out, " (stopped; no job was running)\n") !=
	    NULL, "%s", out);
	free(out);
	free(err);
	wait_state("stubborn/1", "stopped", 10000);
	ck_assert_uint_ge(harness_now_ms() - t0, 650);
	ck_assert(harness_log_contains(&broker, "did not stop within "
	    "kill_timeout"));
	ck_assert(proc_gone_cond(&pid));

	/* Stopped is not restarted; resuming it is refused. */
	ck_assert_int_eq(ctl(false, &out, &err, "resume", "stubborn/1", NULL),
	    1);
	ck_assert_msg(strstr(err, "'stubborn/1' is stopped, not paused"),
	    "%s", err);
	free(out);
	free(err);
}
END_TEST

/* ---- stops that drain ----------------------------------------------------- */

/*
 * How many lines of the broker's log hold needle; "ID: patchbay worker:
 * job" counts the jobs a --verbose pool worker started (its lines saying
 * "attempt N").
 */
static int
log_count(const char *needle)
{
	char	*s = harness_read_file(broker.log_path), *line, *save = NULL;
	bool	 starts = strstr(needle, "patchbay worker: job") != NULL;
	int	 n = 0;

	for (line = s != NULL ? strtok_r(s, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strstr(line, needle) != NULL &&
		    (!starts || strstr(line, " attempt ") != NULL))
			n++;
	free(s);
	return n;
}

/* Waits until needle is in the broker's log at least n times. */
static void
wait_log_count(const char *needle, int n, int ms)
{
	unsigned long long	deadline = harness_now_ms() + (unsigned)ms;

	while (log_count(needle) < n) {
		ck_assert_msg(harness_now_ms() < deadline, "'%s' is in the log "
		    "%d times, not %d, after %d ms", needle, log_count(needle),
		    n, ms);
		usleep(20000);
	}
}

/* True when the file at arg exists and is not empty. */
static bool
file_nonempty(void *arg)
{
	struct stat	st;

	return stat(arg, &st) == 0 && st.st_size > 0;
}

/*
 * Starts `patchbay run slow GATE` in the background, its output to a file:
 * a job of slow_conf()'s pool, which runs until the test opens the gate
 * called name (open_gate()).
 */
static pid_t
spawn_slow(const char *name, char *out, size_t len)
{
	char		 gate[300];
	const char	*argv[] = { harness_cli(), "run", "--broker",
			    broker.unix_ep, "slow", gate, NULL };

	snprintf(gate, sizeof(gate), "%s/gate-%s", tmp, name);
	snprintf(out, len, "%s/run-%s.out", tmp, name);
	return harness_spawn(argv, NULL, out);
}

/* Lets the slow job waiting for the gate called name finish. */
static void
open_gate(const char *name)
{
	char	path[300];
	int	fd;

	snprintf(path, sizeof(path), "%s/gate-%s", tmp, name);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	close(fd);
}

/* Waits for a background run: it must end OK with "done". */
static void
slow_done(pid_t run, const char *out)
{
	char	*text;
	int	 status;

	ck_assert_int_eq(waitpid(run, &status, 0), run);
	text = harness_read_file(out);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "run exited %d: %s", status, text);
	ck_assert_str_eq(text, "done\n");
	free(text);
}

/*
 * A pool of `slow` workers, capacity 1 each: a job (its payload a path)
 * runs until that file exists, then answers "done".
 */
static void
slow_conf(char *buf, size_t len, const char *name, const char *extra)
{
	write_conf(buf, len, name,
	    "[pool:slow]\n"
	    "command = %s worker slow --exec 'g=$(cat); while [ ! -e \"$g\" ]; "
	    "do sleep 0.05; done; echo done' --verbose\n"
	    "stop_timeout = 10s\n"
	    "kill_timeout = 5s\n"
	    "%s", harness_cli(), extra != NULL ? extra : "");
}

/*
 * A stop, a scale-down and a reload each take the process out of dispatch,
 * let its running job finish OK, and then stop it, which exits by itself
 * (nothing is killed). The jobs end when the test says (open_gate()), once
 * the stop is under way.
 */
START_TEST(pools_stop_scale_reload_let_jobs_finish)
{
	char	 path[300], tmppath[300], out1[300], out2[300], ctlout[300];
	char	*out;
	pid_t	 r1, r2, stop;
	int	 status;

	slow_conf(path, sizeof(path), "slow.conf", NULL);
	start_broker(path);
	wait_state("slow/1", "running", 10000);

	/* ctl stop: it returns once the process is down, saying how. */
	r1 = spawn_slow("a", out1, sizeof(out1));
	wait_log_count("slow/1: patchbay worker: job", 1, 10000);
	snprintf(ctlout, sizeof(ctlout), "%s/stop.out", tmp);
	stop = harness_spawn((const char *[]){ harness_cli(), "ctl",
	    "--broker", broker.unix_ep, "stop", "slow/1", NULL }, NULL, ctlout);
	ck_assert(harness_wait_log(&broker, "slow/1: stopping: no new jobs, "
	    "up to 10s for its 1 running", 10000));
	open_gate("a");
	slow_done(r1, out1);
	ck_assert_int_eq(waitpid(stop, &status, 0), stop);
	out = harness_read_file(ctlout);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    strncmp(out, "stopped slow/1: exit 0 after ", 29) == 0 &&
	    strstr(out, "(stopped after its 1 job finished)\n") != NULL,
	    "%s", out);
	free(out);
	wait_state("slow/1", "stopped", 10000);
	ck_assert(harness_log_contains(&broker, "slow/1: its 1 job finished"));
	ck_assert(!harness_log_contains(&broker, "killing it"));
	ck_assert(!harness_log_contains(&broker, "still running when"));

	/* ctl scale down: the second instance drains. */
	ck_assert_int_eq(ctl(false, NULL, NULL, "restart", "slow/1", END), 0);
	ck_assert_int_eq(ctl(false, NULL, NULL, "scale", "slow", "2", END), 0);
	wait_state("slow/1", "running", 10000);
	wait_state("slow/2", "running", 10000);
	r1 = spawn_slow("b", out1, sizeof(out1));
	r2 = spawn_slow("c", out2, sizeof(out2));
	wait_log_count("slow/2: patchbay worker: job", 1, 10000);
	wait_log_count("slow/1: patchbay worker: job", 2, 10000);
	ck_assert_int_eq(ctl(false, NULL, NULL, "scale", "slow", "1", END), 0);
	ck_assert(harness_wait_log(&broker, "slow/2: stopping: no new jobs",
	    10000));
	open_gate("b");
	open_gate("c");
	slow_done(r1, out1);
	slow_done(r2, out2);
	wait_unlisted("slow/2", 10000);
	ck_assert(harness_log_contains(&broker, "slow/2: its 1 job finished"));

	/* ctl reload with changed settings: the process is replaced. */
	r1 = spawn_slow("d", out1, sizeof(out1));
	wait_log_count("slow/1: patchbay worker: job", 3, 10000);
	slow_conf(tmppath, sizeof(tmppath), "slow.conf.new",
	    "environment = CHANGED=1\n");
	ck_assert_int_eq(rename(tmppath, path), 0);
	ck_assert_int_eq(ctl(false, NULL, NULL, "reload", END), 0);
	wait_log_count("slow/1: stopping: no new jobs", 2, 10000);
	open_gate("d");
	slow_done(r1, out1);
	wait_log_count("slow/1: its 1 job finished", 2, 10000);
	wait_state("slow/1", "running", 10000);
	ck_assert(!harness_log_contains(&broker, "killing it"));
}
END_TEST

/*
 * A job longer than stop_timeout: when it runs out the worker gets its stop
 * signal, then SIGKILL after kill_timeout; the job is answered (the
 * worker is lost) and nothing of it is left running.
 */
START_TEST(pools_stop_timeout_ends_a_long_job)
{
	char	 path[300], out[300], pidfile[300], *text;
	long	 wpid, jpid;
	pid_t	 run;
	int	 status;

	snprintf(pidfile, sizeof(pidfile), "%s/job.pid", tmp);
	write_conf(path, sizeof(path), "long.conf",
	    "[pool:slow]\n"
	    "command = %s worker slow --exec 'echo $$ > %s; exec sleep 60' "
	    "--verbose\n"
	    "stop_timeout = 500ms\n"
	    "kill_timeout = 1s\n", harness_cli(), pidfile);
	start_broker(path);
	wpid = wait_state("slow/1", "running", 10000);
	run = spawn_slow("long", out, sizeof(out));
	wait_log_count("slow/1: patchbay worker: job", 1, 10000);
	ck_assert(harness_wait_until(file_nonempty, pidfile, 5000));
	text = harness_read_file(pidfile);
	jpid = strtol(text, NULL, 10);
	free(text);
	ck_assert_int_eq(ctl(false, NULL, NULL, "stop", "slow/1", END), 0);
	ck_assert_int_eq(waitpid(run, &status, 0), run);
	text = harness_read_file(out);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 5,
	    "run exited %d: %s", status, text);
	free(text);
	wait_state("slow/1", "stopped", 10000);
	ck_assert(harness_log_contains(&broker, "slow/1: 1 of its 1 job still "
	    "running when the stop timeout ran out"));
	ck_assert(harness_log_contains(&broker, "did not stop within "
	    "kill_timeout"));
	ck_assert(harness_wait_until(proc_gone_cond, &wpid, 5000));
	ck_assert(harness_wait_until(proc_gone_cond, &jpid, 5000));
}
END_TEST

/* Waits for the broker to exit by itself; returns its wait status. */
static int
broker_exits(int ms)
{
	unsigned long long	deadline = harness_now_ms() + (unsigned)ms;
	int			status;

	while (waitpid(broker.pid, &status, WNOHANG) != broker.pid) {
		ck_assert_msg(harness_now_ms() < deadline, "patchbayd still "
		    "runs after %d ms", ms);
		usleep(20000);
	}
	broker.pid = -1;
	return status;
}

/*
 * ctl drain: new jobs are refused SHUTTING_DOWN, the running job and the
 * queued one both finish OK, then the broker shuts down by itself.
 */
START_TEST(pools_ctl_drain_finishes_jobs_then_stops)
{
	char	 path[300], out1[300], out2[300], *out = NULL, *err = NULL;
	char	*log;
	pid_t	 r1, r2;
	int	 status;

	slow_conf(path, sizeof(path), "slow.conf", NULL);
	start_broker(path);
	wait_state("slow/1", "running", 10000);
	r1 = spawn_slow("a", out1, sizeof(out1));
	wait_log_count("slow/1: patchbay worker: job", 1, 10000);
	r2 = spawn_slow("b", out2, sizeof(out2));
	/* The second one waits in the queue (capacity 1). */
	for (int i = 0; i < 250; i++) {
		ck_assert_int_eq(ctl(false, &out, &err, "status", END), 0);
		if (strstr(out, "\nqueued: 1\n") != NULL)
			break;
		free(out);
		free(err);
		out = err = NULL;
		usleep(20000);
	}
	ck_assert_msg(out != NULL && strstr(out, "\nqueued: 1\n") != NULL,
	    "%s", out);
	free(out);
	free(err);

	ck_assert_int_eq(ctl(false, &out, &err, "drain", END), 0);
	ck_assert_str_eq(out, "patchbayd is draining: new jobs are refused; "
	    "the 1 running and 1 queued have up to 1m, then it shuts down\n");
	free(out);
	free(err);
	ck_assert_int_eq(run_job("slow", "c", &out, &err), 10);
	ck_assert_msg(strstr(err, "the broker is draining") != NULL, "%s",
	    err);
	free(out);
	free(err);
	open_gate("a");
	open_gate("b");
	slow_done(r1, out1);
	slow_done(r2, out2);
	status = broker_exits(15000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "patchbayd ended with %d", status);
	/* The log tells it in the order it happened. */
	log = harness_read_file(broker.log_path);
	ck_assert_ptr_nonnull(strstr(log, "draining: new jobs are refused"));
	ck_assert_msg(strstr(log, "draining: new jobs are refused") <
	    strstr(log, "drained: every job is done, shutting down") &&
	    strstr(log, "drained: every job is done") <
	    strstr(log, "patchbayd: stopped"), "%s", log);
	free(log);
}
END_TEST

/* ctl drain --timeout: what is still running then ends SHUTTING_DOWN. */
/*
 * SIGTERM with a pool worker running a job: new jobs are refused, the
 * running one finishes OK, then the broker stops and exits 0.
 */
START_TEST(pools_sigterm_lets_pool_jobs_finish)
{
	char	 path[300], out1[300], *out = NULL, *err = NULL, *log;
	pid_t	 r1;
	int	 status;

	slow_conf(path, sizeof(path), "slow.conf", NULL);
	start_broker(path);
	wait_state("slow/1", "running", 10000);
	r1 = spawn_slow("a", out1, sizeof(out1));
	wait_log_count("slow/1: patchbay worker: job", 1, 10000);
	ck_assert_int_eq(kill(broker.pid, SIGTERM), 0);
	ck_assert(harness_wait_log(&broker, "letting the jobs of the pools' "
	    "workers finish before stopping", 10000));
	ck_assert_int_eq(run_job("slow", "b", &out, &err), 10);
	ck_assert_msg(strstr(err, "the broker is shutting down") != NULL, "%s",
	    err);
	free(out);
	free(err);
	open_gate("a");
	slow_done(r1, out1);
	status = broker_exits(15000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "patchbayd ended with %d", status);
	log = harness_read_file(broker.log_path);
	ck_assert_msg(strstr(log, "slow/1: its 1 job finished") != NULL &&
	    strstr(log, "slow/1: its 1 job finished") <
	    strstr(log, "patchbayd: stopped"), "%s", log);
	free(log);
}
END_TEST

START_TEST(pools_ctl_drain_timeout)
{
	char	 path[300], out1[300], *out = NULL, *err = NULL, *text;
	pid_t	 r1;
	int	 status;

	write_conf(path, sizeof(path), "long.conf",
	    "[pool:slow]\n"
	    "command = %s worker slow --exec 'exec sleep 60' --verbose\n"
	    "kill_timeout = 1s\n", harness_cli());
	start_broker(path);
	wait_state("slow/1", "running", 10000);
	r1 = spawn_slow("a", out1, sizeof(out1));
	wait_log_count("slow/1: patchbay worker: job", 1, 10000);
	ck_assert_int_eq(ctl(false, &out, &err, "drain", "--timeout", "500ms",
	    END), 0);
	free(out);
	free(err);
	ck_assert_int_eq(waitpid(r1, &status, 0), r1);
	text = harness_read_file(out1);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 10,
	    "run exited %d: %s", status, text);
	free(text);
	broker_exits(15000);
	ck_assert(harness_log_contains(&broker, "drain: 500ms passed with 1 "
	    "jobs running and 0 queued, shutting down"));
}
END_TEST

/*
 * An on-demand pool, instances = 0..3: no process until a job comes; the
 * first job waits for the instance it starts (longer than no_worker_wait,
 * without failing); a queue makes it grow to 3; idle, it shrinks to 0.
 */
START_TEST(pools_on_demand_grows_and_shrinks)
{
	char	 path[300], outs[4][300], *out = NULL, *err = NULL;
	pid_t	 runs[4];
	char	 data[2] = "a";

	write_conf(path, sizeof(path), "od.conf",
	    "[broker]\n"
	    "no_worker_wait = 300ms\n"
	    "[pool:od]\n"
	    "command = %s worker slow --exec 'sleep 4; echo done' --verbose\n"
	    "instances = 0..3\n"
	    "functions = slow\n"
	    "scale_up_after = 500ms\n"
	    "idle_timeout = 1s\n", harness_cli());
	start_broker(path);
	/* Nothing runs until a job comes. */
	usleep(300 * 1000);
	ck_assert_int_eq(ps_lookup("od/1", NULL, 0, NULL), -1);
	ck_assert_int_eq(ctl(false, &out, &err, "scale", "od", "2", END), 1);
	ck_assert_msg(strstr(err, "pool 'od' scales on demand (instances = "
	    "0..3)") != NULL, "%s", err);
	free(out);
	free(err);

	for (int i = 0; i < 4; i++) {
		data[0] = (char)('a' + i);
		runs[i] = spawn_slow(data, outs[i], sizeof(outs[i]));
	}
	wait_state("od/1", "running", 10000);
	wait_state("od/3", "running", 15000);
	ck_assert(harness_log_contains(&broker, "waited 500ms with no free "
	    "slot: starting instance 1 (instances = 0..3)"));
	ck_assert(harness_log_contains(&broker, "waited 500ms with no free "
	    "slot: starting instance 3 (instances = 0..3)"));
	for (int i = 0; i < 4; i++)
		slow_done(runs[i], outs[i]);
	ck_assert(!harness_log_contains(&broker, "NO_WORKER"));
	ck_assert_int_eq(ps_lookup("od/4", NULL, 0, NULL), -1);

	/* Idle: one by one, the highest first, down to none. */
	wait_unlisted("od/3", 10000);
	wait_unlisted("od/2", 10000);
	wait_unlisted("od/1", 10000);
	ck_assert(harness_log_contains(&broker, "pool od: od/3 idle for 1s: "
	    "stopping it"));
	ck_assert(harness_log_contains(&broker, "pool od: od/1 idle for 1s: "
	    "stopping it"));
}
END_TEST

START_TEST(pools_pause_resume)
{
	char		 path[300], runlog[300], *out = NULL, *err = NULL;
	char		*text;
	const char	*argv[] = { harness_cli(), "run", "--broker",
			    broker.unix_ep, "rev", "paused", NULL };
	long		 pid;
	pid_t		 run;
	int		 status;

	rev_conf(path, sizeof(path), "p.conf", 1, NULL);
	start_broker(path);
	pid = wait_state("rev/1", "running", 10000);
	ck_assert_int_eq(ctl(false, NULL, NULL, "pause", "rev", END), 0);
	wait_state("rev/1", "paused", 2000);
	/* The kernel delivers the SIGSTOP when it schedules the process. */
	ck_assert_msg(harness_wait_until(proc_stopped_cond, &pid, 2000),
	    "pid %ld is not stopped: state %c", pid, proc_state(pid));

	/* A job now waits in the queue... */
	snprintf(runlog, sizeof(runlog), "%s/run.out", tmp);
	argv[3] = broker.unix_ep;
	run = harness_spawn(argv, NULL, runlog);
	for (unsigned long long dl = harness_now_ms() + 5000;;) {
		ck_assert_int_eq(ctl(true, &out, &err, "functions", END), 0);
		if (strstr(out, "\"queued\": 1") != NULL)
			break;
		ck_assert(harness_now_ms() < dl);
		free(out);
		free(err);
		usleep(20000);
	}
	free(out);
	free(err);
	ck_assert_int_eq(waitpid(run, &status, WNOHANG), 0);

	/* ...until the worker is resumed. */
	ck_assert_int_eq(ctl(false, &out, &err, "resume", "rev/1", END), 0);
	free(out);
	free(err);
	ck_assert_int_eq(waitpid(run, &status, 0), run);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	text = harness_read_file(runlog);
	ck_assert_str_eq(text, "desuap");
	free(text);
	wait_state("rev/1", "running", 2000);
	ck_assert_int_ne(proc_state(pid), 'T');
}
END_TEST

/*
 * A paused process keeps its job however long the pause: it is not dropped
 * as silent after three heartbeats, and on resume the job finishes OK on
 * it, with no restart.
 */
START_TEST(pools_pause_longer_than_heartbeats_keeps_the_job)
{
	char		 path[300], runlog[300], *text;
	const char	*extra[] = { "-c", path, "--heartbeat", "100", NULL };
	const char	*argv[] = { harness_cli(), "run", "--broker", NULL,
			    "slowrev", "kept", NULL };
	char		 state[32];
	unsigned	 restarts = 99;
	long		 pid;
	pid_t		 run;
	int		 status;

	write_conf(path, sizeof(path), "slow.conf",
	    "[pool:slowrev]\n"
	    "command = %s worker slowrev --exec 'sleep 0.5; rev' --verbose\n",
	    harness_cli());
	harness_broker_start(&broker, extra, false);
	pid = wait_state("slowrev/1", "running", 10000);
	snprintf(runlog, sizeof(runlog), "%s/slow.out", tmp);
	argv[3] = broker.unix_ep;
	run = harness_spawn(argv, NULL, runlog);
	/* --verbose: the worker logs each job it starts. */
	ck_assert(harness_wait_log(&broker, "slowrev/1: patchbay worker: job",
	    10000));
	ck_assert_int_eq(ctl(false, NULL, NULL, "pause", "slowrev/1", END), 0);
	wait_state("slowrev/1", "paused", 2000);
	/* Ten heartbeats of silence: the time, not a condition, is the test. */
	usleep(1000 * 1000);
	ck_assert_int_eq(ctl(false, NULL, NULL, "resume", "slowrev/1", END), 0);
	ck_assert_int_eq(waitpid(run, &status, 0), run);
	text = harness_read_file(runlog);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "run exited %d: %s", status, text);
	ck_assert_str_eq(text, "tpek");
	free(text);
	ck_assert_int_eq(ps_lookup("slowrev/1", state, sizeof(state),
	    &restarts), pid);
	ck_assert_uint_eq(restarts, 0);
	ck_assert(!harness_log_contains(&broker, "silent for"));
}
END_TEST

START_TEST(pools_reload_add_remove)
{
	char	 path[300], tmppath[300], *out = NULL, *err = NULL;
	long	 keep, gone;

	write_conf(path, sizeof(path), "r.conf",
	    "[pool:keep]\ncommand = sleep 60\n"
	    "[pool:gone]\ncommand = sleep 60\n");
	start_broker(path);
	keep = wait_state("keep/1", "starting", 10000);
	gone = wait_state("gone/1", "starting", 10000);

	write_conf(tmppath, sizeof(tmppath), "r.conf.new",
	    "[pool:keep]\ncommand = sleep 60\n"
	    "[pool:added]\ncommand = sleep 60\ninstances = 2\n");
	ck_assert_int_eq(rename(tmppath, path), 0);
	ck_assert_int_eq(ctl(false, &out, &err, "reload", END), 0);
	free(out);
	free(err);
	wait_state("added/2", "starting", 5000);
	wait_unlisted("gone/1", 10000);
	ck_assert(harness_wait_until(proc_gone_cond, &gone, 5000));
	ck_assert_int_eq(ps_lookup("keep/1", NULL, 0, NULL), keep);

	/* A broken file is refused whole: the running config stays. */
	write_conf(tmppath, sizeof(tmppath), "r.conf.new",
	    "[pool:keep]\ncommand = sleep 60\nrestart = sometimes\n");
	ck_assert_int_eq(rename(tmppath, path), 0);
	ck_assert_int_eq(ctl(false, &out, &err, "reload", END), 1);
	ck_assert_msg(strstr(err, "r.conf:3: key 'restart': expected always, "
	    "on-failure or never (got 'sometimes')") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ps_lookup("keep/1", NULL, 0, NULL), keep);
	ck_assert_int_ne(ps_lookup("added/1", NULL, 0, NULL), -1);

	/* SIGHUP does the same as `ctl reload`. */
	write_conf(tmppath, sizeof(tmppath), "r.conf.new",
	    "[pool:keep]\ncommand = sleep 60\n");
	ck_assert_int_eq(rename(tmppath, path), 0);
	ck_assert_int_eq(kill(broker.pid, SIGHUP), 0);
	wait_unlisted("added/1", 10000);
	wait_unlisted("added/2", 10000);
	ck_assert_int_eq(ps_lookup("keep/1", NULL, 0, NULL), keep);
}
END_TEST

START_TEST(pools_broker_kill9_no_orphans)
{
	char	path[300];
	long	pids[3];
	int	status;

	write_conf(path, sizeof(path), "k.conf",
	    "[pool:w]\ncommand = sleep 60\ninstances = 2\n"
	    "[pool:rev]\ncommand = %s worker rev --exec rev\n", harness_cli());
	start_broker(path);
	pids[0] = wait_state("w/1", "starting", 10000);
	pids[1] = wait_state("w/2", "starting", 10000);
	pids[2] = wait_state("rev/1", "running", 10000);
	ck_assert_int_eq(kill(broker.pid, SIGKILL), 0);
	ck_assert_int_eq(waitpid(broker.pid, &status, 0), broker.pid);
	broker.pid = -1;
	for (int i = 0; i < 3; i++)
		ck_assert_msg(harness_wait_until(proc_gone_cond, &pids[i],
		    5000), "pid %ld outlived patchbayd", pids[i]);
}
END_TEST

START_TEST(pools_shutdown_stops_all)
{
	char	path[300], *out = NULL, *err = NULL;
	long	pids[2];
	int	status;

	write_conf(path, sizeof(path), "s.conf",
	    "[pool:a]\ncommand = sleep 60\n"
	    "[pool:b]\ncommand = sleep 60\n");
	start_broker(path);
	pids[0] = wait_state("a/1", "starting", 10000);
	pids[1] = wait_state("b/1", "starting", 10000);
	ck_assert_int_eq(ctl(false, &out, &err, "shutdown", END), 0);
	free(out);
	free(err);
	ck_assert_int_eq(waitpid(broker.pid, &status, 0), broker.pid);
	broker.pid = -1;
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int i = 0; i < 2; i++)
		ck_assert(proc_gone_cond(&pids[i]));
	/* Pools stop in reverse order. */
	{
		char	*log = harness_read_file(broker.log_path);
		char	*sa = strstr(log, "a/1: stopping pid");
		char	*sb = strstr(log, "b/1: stopping pid");

		ck_assert(sa != NULL && sb != NULL && sb < sa);
		free(log);
	}
}
END_TEST

/*
 * `ctl shutdown` takes the path SIGTERM takes, says who asked (not
 * "received Terminated": no signal is involved), and exits 0.
 */
START_TEST(pools_shutdown_by_admin_is_logged)
{
	char	path[300], needle[64], *out = NULL, *err = NULL, *log;
	int	status;

	write_conf(path, sizeof(path), "s.conf",
	    "[pool:a]\ncommand = sleep 60\n");
	start_broker(path);
	wait_state("a/1", "starting", 10000);
	ck_assert_int_eq(ctl(false, &out, &err, "shutdown", END), 0);
	free(out);
	free(err);
	ck_assert_int_eq(waitpid(broker.pid, &status, 0), broker.pid);
	broker.pid = -1;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "patchbayd ended with status %d", status);
	log = harness_read_file(broker.log_path);
	ck_assert_ptr_nonnull(log);
	snprintf(needle, sizeof(needle), ", uid %u)\n", (unsigned)getuid());
	ck_assert_msg(strstr(log, "info patchbayd: shutdown requested by "
	    "admin (conn ") != NULL && strstr(strstr(log, "shutdown requested by admin"),
	    needle) != NULL, "%s", log);
	ck_assert_msg(strstr(log, "received ") == NULL, "%s", log);
	ck_assert_msg(strstr(log, "a/1: stopping pid") != NULL, "%s", log);
	free(log);
}
END_TEST

START_TEST(pools_spawn)
{
	char	path[300], *out = NULL, *err = NULL;
	long	pid;

	write_conf(path, sizeof(path), "empty.conf", "# nothing\n");
	start_broker(path);

	/* A command that cannot be executed is an error, not a process. */
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "x", "--",
	    "/nonexistent/cmd", "arg", END), 1);
	ck_assert_msg(strstr(err, "cannot execute '/nonexistent/cmd': No such "
	    "file or directory") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ps_lookup("x", NULL, 0, NULL), -1);

	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "x", "--restart",
	    "always", "--", "sleep", "60", END), 0);
	free(out);
	free(err);
	/* Not a worker: running once executed, not waiting to register. */
	pid = wait_state("x", "running", 5000);
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "x", "--", "sleep",
	    "60", END), 1);
	ck_assert_msg(strstr(err, "'x' already exists") != NULL, "%s", err);
	free(out);
	free(err);

	/* restart always: killed, it comes back. */
	ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
	ck_assert(harness_wait_log(&broker, "x: restarting in", 5000));
	ck_assert_int_eq(ctl(false, &out, &err, "stop", "x", END), 0);
	free(out);
	free(err);
	wait_state("x", "stopped", 10000);
}
END_TEST

START_TEST(pools_ctl_errors)
{
	char	path[300], *out = NULL, *err = NULL;

	rev_conf(path, sizeof(path), "p.conf", 1, NULL);
	start_broker(path);
	wait_state("rev/1", "running", 10000);

	ck_assert_int_eq(ctl(false, &out, &err, "stop", "nope", END), 1);
	ck_assert_str_eq(err, "patchbay ctl: unknown id 'nope'\n");
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "resume", "rev/1", END), 1);
	ck_assert_str_eq(err, "patchbay ctl: 'rev/1' is running, not paused\n");
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "scale", "nope", "2", END), 1);
	ck_assert_str_eq(err, "patchbay ctl: unknown pool 'nope'\n");
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "rev", "--", "true",
	    NULL), 1);
	ck_assert_str_eq(err, "patchbay ctl: 'rev' is the name of a pool\n");
	free(out);
	free(err);

	/* Scale up and down. */
	ck_assert_int_eq(ctl(false, &out, &err, "scale", "rev", "2", END), 0);
	ck_assert_str_eq(out, "rev: scaling to 2 instances\n");
	free(out);
	free(err);
	wait_state("rev/2", "running", 10000);
	ck_assert_int_eq(ctl(false, &out, &err, "scale", "rev", "1", END), 0);
	free(out);
	free(err);
	wait_unlisted("rev/2", 10000);
}
END_TEST

/* Copies the value of "last_exit" in id's map of `ctl ps --json`. */
static void
ps_last_exit(const char *id, char *buf, size_t len)
{
	char	*out = NULL, *err = NULL, needle[128], *m, *next, *s;

	buf[0] = '\0';
	ck_assert_int_eq(ctl(true, &out, &err, "ps", END), 0);
	snprintf(needle, sizeof(needle), "\"id\": \"%s\"", id);
	if ((m = strstr(out, needle)) != NULL) {
		if ((next = strstr(m + 1, "\"id\": ")) != NULL)
			*next = '\0';
		if ((s = strstr(m, "\"last_exit\": \"")) != NULL)
			snprintf(buf, len, "%.*s", (int)strcspn(s + 14, "\""),
			    s + 14);
	}
	free(out);
	free(err);
}

/* True when /usr/bin/python3 can be run, for the allocating commands. */
static bool
have_python3(const char *test)
{
	if (access("/usr/bin/python3", X_OK) == 0)
		return true;
	fprintf(stderr, "%s: skipped: it needs /usr/bin/python3\n", test);
	return false;
}

/*
 * A process ended by a limit is reported with the limit's name, in `ps`
 * (text and --json), in LAST_EXIT and in the log: an allocation beyond
 * limit_memory fails (Python's MemoryError, exit 1), a busy loop gets
 * SIGXCPU after limit_cpu, and a shell run under limit_nofile sees it.
 * `ctl spawn` takes the same limits as options.
 */
START_TEST(pools_limits_reported)
{
	char	 path[300], stdout_log[300], buf[128], *out = NULL, *err = NULL;
	char	*text;

	if (!have_python3("pools_limits_reported"))
		return;
	snprintf(stdout_log, sizeof(stdout_log), "%s/nf.log", tmp);
	write_conf(path, sizeof(path), "limits.conf",
	    "[pool:mem]\n"
	    "command = python3 -c 'x = bytearray(512 * 1024 * 1024)'\n"
	    "limit_memory = 256MiB\n"
	    "restart = never\n"
	    "[pool:cpu]\n"
	    "command = sh -c 'while :; do :; done'\n"
	    "limit_cpu = 1s\n"
	    "limit_core = 0\n"
	    "restart = never\n"
	    "[pool:nf]\n"
	    "command = sh -c 'ulimit -n; exec sleep 60'\n"
	    "limit_nofile = 64\n"
	    "stdout_log = %s\n", stdout_log);
	start_broker(path);
	wait_state("mem/1", "exited", 20000);
	wait_state("cpu/1", "exited", 20000);
	ps_last_exit("mem/1", buf, sizeof(buf));
	ck_assert_str_eq(buf, "exit 1 (limit_memory 256MiB)");
	ps_last_exit("cpu/1", buf, sizeof(buf));
	ck_assert_str_eq(buf, "SIGXCPU: limit_cpu 1s");
	ck_assert_int_eq(ctl(false, &out, &err, "ps", END), 0);
	ck_assert_msg(strstr(out, "LAST_EXIT") != NULL &&
	    strstr(out, "exit 1 (limit_memory 256MiB)") != NULL &&
	    strstr(out, "SIGXCPU: limit_cpu 1s") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert(harness_log_contains(&broker, "mem/1: MemoryError"));
	ck_assert(harness_log_contains(&broker, " exited: exit 1 "
	    "(limit_memory 256MiB)\n"));
	ck_assert(harness_log_contains(&broker, " exited: SIGXCPU: limit_cpu "
	    "1s\n"));
	/* What the shell itself says. */
	for (unsigned long long dl = harness_now_ms() + 10000;;) {
		text = harness_read_file(stdout_log);
		if (text != NULL && strstr(text, " nf/1: 64\n") != NULL)
			break;
		ck_assert_msg(harness_now_ms() < dl, "%s", text);
		free(text);
		usleep(20000);
	}
	free(text);

	/* The same through ctl spawn. */
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "m",
	    "--limit-memory", "64MiB", "--", "python3", "-c",
	    "x = bytearray(512 * 1024 * 1024)", END), 0);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "n",
	    "--limit-nofile", "99", "--limit-core", "0", "--", "sh", "-c",
	    "ulimit -n", END), 0);
	free(out);
	free(err);
	wait_state("m", "exited", 20000);
	wait_state("n", "exited", 20000);
	ps_last_exit("m", buf, sizeof(buf));
	ck_assert_str_eq(buf, "exit 1 (limit_memory 64MiB)");
	ps_last_exit("n", buf, sizeof(buf));
	ck_assert_str_eq(buf, "exit 0");
	ck_assert(harness_log_contains(&broker, "info patchbayd: n: 99\n"));
}
END_TEST

/* Limit options are checked before anything is sent, as config keys are. */
START_TEST(pools_spawn_limit_options_refused)
{
	char	path[300], *out = NULL, *err = NULL;

	write_conf(path, sizeof(path), "empty.conf", "# nothing\n");
	start_broker(path);
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "x",
	    "--limit-memory", "64", "--", "true", END), 2);
	ck_assert_msg(strstr(err, "patchbay ctl: bad --limit-memory '64': "
	    "expected a size from 1MiB to 65536GiB\n") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "x", "--limit-cpu",
	    "1500ms", "--", "true", END), 2);
	ck_assert_msg(strstr(err, "bad --limit-cpu '1500ms': expected whole "
	    "seconds from 1s to 366d, such as 10s, 5m or 1h") != NULL, "%s",
	    err);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "spawn", "x",
	    "--limit-nofile", "-1", "--", "true", END), 2);
	ck_assert_msg(strstr(err, "bad --limit-nofile '-1': expected an "
	    "integer from 8 to 1048576") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "stop", "x", "--limit-nproc",
	    "10", END), 2);
	ck_assert_msg(strstr(err, "option '--limit-nproc' does not apply to "
	    "'stop'") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ps_lookup("x", NULL, 0, NULL), -1);
}
END_TEST

/*
 * A changed limit is a changed pool: a reload restarts it, and its new
 * process has the new limit.
 */
START_TEST(pools_reload_applies_limits)
{
	char	path[300], tmppath[300], *out = NULL, *err = NULL;
	long	pid, pid2;

	write_conf(path, sizeof(path), "r.conf",
	    "[pool:nf]\ncommand = sh -c 'ulimit -n; exec sleep 60'\n"
	    "limit_nofile = 64\n");
	start_broker(path);
	pid = wait_state("nf/1", "starting", 10000);
	ck_assert(harness_wait_log(&broker, "nf/1: 64\n", 5000));
	write_conf(tmppath, sizeof(tmppath), "r.conf.new",
	    "[pool:nf]\ncommand = sh -c 'ulimit -n; exec sleep 60'\n"
	    "limit_nofile = 128\n");
	ck_assert_int_eq(rename(tmppath, path), 0);
	ck_assert_int_eq(ctl(false, &out, &err, "reload", END), 0);
	free(out);
	free(err);
	ck_assert(harness_wait_log(&broker, "pool nf: changed, restarting it",
	    5000));
	ck_assert(harness_wait_log(&broker, "nf/1: 128\n", 10000));
	pid2 = wait_state("nf/1", "starting", 10000);
	ck_assert_int_ne(pid, pid2);
}
END_TEST

/*
 * Where a cgroup v2 directory can be given to patchbayd alone (root, and
 * the memory, cpu and pids controllers in the hierarchy's root), a pool's
 * memory_max holds its processes: one that allocates beyond it is killed
 * by the OOM killer and reported so; the pool's cgroup has the limits and
 * goes away with patchbayd. Elsewhere patchbayd says why it cannot apply
 * them, the pool runs without them, and the rest of the test is skipped
 * with that reason.
 */
START_TEST(pools_cgroup_limits)
{
	char	 path[300], wrapper[300], cg[600], file[700], buf[128];
	char	 real[300], *mount = NULL, *text, *why, *s;
	FILE	*f;
	char	 line[1024], mp[512], fstype[64];
	bool	 usable = false;

	if (!have_python3("pools_cgroup_limits"))
		return;
	/* The cgroup2 mount, and whether its root offers what we need. */
	if ((f = fopen("/proc/self/mountinfo", "r")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if ((s = strstr(line, " - ")) == NULL ||
			    sscanf(s + 3, "%63s", fstype) != 1 ||
			    strcmp(fstype, "cgroup2") != 0 ||
			    sscanf(line, "%*s %*s %*s %*s %511s", mp) != 1)
				continue;
			mount = strdup(mp);
			break;
		}
		fclose(f);
	}
	if (mount != NULL && geteuid() == 0 && !harness_broker_wrapped()) {
		snprintf(file, sizeof(file), "%s/cgroup.subtree_control",
		    mount);
		text = harness_read_file(file);
		usable = text != NULL && strstr(text, "memory") != NULL &&
		    strstr(text, "pids") != NULL && strstr(text, "cpu") != NULL;
		free(text);
	}
	/* patchbayd alone in a cgroup of its own, as Delegate=yes makes. */
	if (usable) {
		snprintf(cg, sizeof(cg), "%s/patchbay-test-%d", mount,
		    (int)getpid());
		usable = mkdir(cg, 0755) == 0;
	}
	if (usable) {
		snprintf(real, sizeof(real), "%s", harness_patchbayd());
		write_conf(wrapper, sizeof(wrapper), "in-cgroup.sh",
		    "#!/bin/sh\necho $$ > %s/cgroup.procs || exit 1\n"
		    "exec %s \"$@\"\n", cg, real);
		ck_assert_int_eq(chmod(wrapper, 0755), 0);
		setenv("PATCHBAYD", wrapper, 1);
	}
	write_conf(path, sizeof(path), "cg.conf",
	    "[pool:cg]\n"
	    "command = python3 -c \"import sys; '/pool-cg' in "
	    "open('/proc/self/cgroup').read() or sys.exit(0); "
	    "x = b'x' * (512 * 1024 * 1024)\"\n"
	    "memory_max = 64MiB\n"
	    "cpu_max = 50%%\n"
	    "pids_max = 32\n"
	    "restart = never\n");
	start_broker(path);
	if (usable)
		setenv("PATCHBAYD", real, 1);

	if (!harness_log_contains(&broker, "supervisor: pools' cgroups go "
	    "under ")) {
		/* The warning an operator gets, once, naming the keys. */
		ck_assert(harness_wait_log(&broker, "warn patchbayd: pool cg: "
		    "memory_max, cpu_max, pids_max not applied: ", 5000));
		text = harness_read_file(broker.log_path);
		why = strstr(text, "not applied: ") + 13;
		why[strcspn(why, "\n")] = '\0';
		fprintf(stderr, "pools_cgroup_limits: skipped: cgroup v2 "
		    "limits cannot be applied here: %s\n", why);
		free(text);
		wait_state("cg/1", "exited", 20000);
		ps_last_exit("cg/1", buf, sizeof(buf));
		ck_assert_str_eq(buf, "exit 0");
		if (usable)
			rmdir(cg);
		free(mount);
		return;
	}
	ck_assert(usable);
	wait_state("cg/1", "exited", 30000);
	ps_last_exit("cg/1", buf, sizeof(buf));
	ck_assert_str_eq(buf, "killed by the OOM killer: memory_max 64MiB");
	ck_assert(harness_log_contains(&broker, "cg/1: pid "));
	ck_assert(harness_log_contains(&broker, " exited: killed by the OOM "
	    "killer: memory_max 64MiB\n"));
	snprintf(file, sizeof(file), "%s/pool-cg/memory.max", cg);
	text = harness_read_file(file);
	ck_assert_str_eq(text, "67108864\n");
	free(text);
	snprintf(file, sizeof(file), "%s/pool-cg/cpu.max", cg);
	text = harness_read_file(file);
	ck_assert_str_eq(text, "50000 100000\n");
	free(text);
	snprintf(file, sizeof(file), "%s/pool-cg/pids.max", cg);
	text = harness_read_file(file);
	ck_assert_str_eq(text, "32\n");
	free(text);

	/* The pool's cgroup goes with it; patchbayd's leaf is left. */
	harness_broker_stop(&broker);
	snprintf(file, sizeof(file), "%s/pool-cg", cg);
	ck_assert_int_eq(access(file, F_OK), -1);
	snprintf(file, sizeof(file), "%s/broker", cg);
	ck_assert_int_eq(rmdir(file), 0);
	ck_assert_int_eq(rmdir(cg), 0);
	free(mount);
}
END_TEST

START_TEST(pools_bad_config_refused)
{
	char		 path[300], sock[400], *out = NULL, *err = NULL;
	const char	*argv[] = { harness_patchbayd(), "-l", sock, "-c", path,
			    NULL };
	int		 status;

	write_conf(path, sizeof(path), "bad.conf",
	    "[pool:a]\ncommand = true\nstop_timeout = 10x\n");
	snprintf(sock, sizeof(sock), "unix:%s/pb.sock", tmp);
	status = harness_run(argv, NULL, NULL, 0, &out, &err, 10000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	ck_assert_msg(strstr(err, "bad.conf:3: key 'stop_timeout': expected a "
	    "duration such as 250ms, 10s, 5m, 2h or 1d, a bare number being "
	    "milliseconds (got '10x')") != NULL, "%s", err);
	free(out);
	free(err);
}
END_TEST

/* ---- health checks ------------------------------------------------------ */

/*
 * The string field key of id in `ctl ps --json` (or of `ctl health ID
 * --json` when verb is "health") into buf; "" when absent or null.
 */
static void
json_field(const char *verb, const char *id, const char *key, char *buf,
    size_t len)
{
	char	*out = NULL, *err = NULL, needle[128], *m, *next, *s;

	buf[0] = '\0';
	ck_assert_int_eq(ctl(true, &out, &err, verb, END), 0);
	snprintf(needle, sizeof(needle), "\"id\": \"%s\"", id);
	if ((m = strstr(out, needle)) != NULL) {
		next = strstr(m + 1, "\"id\": ");
		if (next != NULL)
			*next = '\0';
		snprintf(needle, sizeof(needle), "\"%s\": \"", key);
		if ((s = strstr(m, needle)) != NULL) {
			s += strlen(needle);
			snprintf(buf, len, "%.*s", (int)strcspn(s, "\""), s);
		}
	}
	free(out);
	free(err);
}

/* Polls `ctl ps` until id has been restarted at least n times. */
static unsigned
wait_restarts(const char *id, unsigned n, int ms)
{
	unsigned long long	deadline = harness_now_ms() + (unsigned)ms;
	unsigned		restarts = 0;

	for (;;) {
		ps_lookup(id, NULL, 0, &restarts);
		if (restarts >= n)
			return restarts;
		ck_assert_msg(harness_now_ms() < deadline, "%s restarted %u "
		    "times, not %u, after %d ms", id, restarts, n, ms);
		usleep(20000);
	}
}

/*
 * A health check that fails twice in a row makes the process unhealthy:
 * it is restarted, `ps` says why, `ctl health` shows what the check
 * printed, and the log tells the story.
 */
START_TEST(pools_health_check_failing_restarts)
{
	char	path[300], field[256], *out = NULL, *err = NULL;
	long	pid;

	rev_conf(path, sizeof(path), "sick.conf", 1,
	    "health_check = sh -c 'echo sick; exit 1'\n"
	    "health_interval = 200ms\n"
	    "health_retries = 2\n"
	    "max_restarts = -1\n");
	start_broker(path);
	pid = wait_state("rev/1", "running", 10000);
	wait_restarts("rev/1", 1, 15000);
	ck_assert(harness_wait_until(proc_gone_cond, &pid, 5000));

	/* ps: why, in the reason; the health stays unhealthy meanwhile. */
	json_field("ps", "rev/1", "reason", field, sizeof(field));
	ck_assert_str_eq(field, "health check failed 2 times in a row: "
	    "exit 1: sick");
	json_field("ps", "rev/1", "health", field, sizeof(field));
	ck_assert_str_eq(field, "unhealthy");
	ck_assert_int_eq(ctl(false, &out, &err, "ps", END), 0);
	ck_assert_msg(strstr(out, "HEALTH") != NULL &&
	    strstr(out, "unhealthy") != NULL &&
	    strstr(out, "health check failed 2 times in a row") != NULL,
	    "%s", out);
	free(out);
	free(err);

	/* ctl health: the check's output, for the process and its pool. */
	ck_assert_int_eq(ctl(false, &out, &err, "health", "rev/1", END), 0);
	ck_assert_msg(strncmp(out, "rev/1: unhealthy (", 18) == 0 &&
	    strstr(out, "  check: sh -c 'echo sick; exit 1'\n") != NULL &&
	    strstr(out, "  last check: exit 1, ") != NULL &&
	    strstr(out, "  output: sick\n") != NULL &&
	    strstr(out, "last: health check failed 2 times in a row") != NULL,
	    "%s", out);
	free(out);
	free(err);
	json_field("health", "rev/1", "output", field, sizeof(field));
	ck_assert_str_eq(field, "sick");
	json_field("health", "rev/1", "result", field, sizeof(field));
	ck_assert_str_eq(field, "exit 1");

	ck_assert(harness_log_contains(&broker, "rev/1: health check failed "
	    "(1 of 2): exit 1: sick"));
	ck_assert(harness_log_contains(&broker, "running -> unhealthy"));
	ck_assert(harness_log_contains(&broker, "unhealthy -> stopping"));
	ck_assert(harness_log_contains(&broker, "rev/1: restarting in"));
}
END_TEST

/* Waits until file has at least n lines. */
static void
wait_lines(const char *file, int n, int ms)
{
	unsigned long long	 deadline = harness_now_ms() + (unsigned)ms;
	char			*text;
	int			 lines;

	for (;;) {
		text = harness_read_file(file);
		lines = 0;
		for (char *c = text; c != NULL && *c != '\0'; c++)
			lines += *c == '\n';
		free(text);
		if (lines >= n)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "%s has %d lines, "
		    "not %d, after %d ms", file, lines, n, ms);
		usleep(20000);
	}
}

/*
 * A check that passes leaves the process alone. It runs with the
 * process's environment, PATCHBAY_PID (its pid) and PATCHBAY_PROCESS.
 */
START_TEST(pools_health_check_passing_leaves_it_alone)
{
	char		path[300], marks[300], field[256];
	char		extra[600], *out = NULL, *err = NULL;
	unsigned	restarts = 99;
	long		pid;

	snprintf(marks, sizeof(marks), "%s/checks", tmp);
	snprintf(extra, sizeof(extra),
	    "environment = MARK=m1\n"
	    "health_check = sh -c 'kill -0 \"$PATCHBAY_PID\" && "
	    "echo \"$MARK $PATCHBAY_PROCESS\" && echo x >> %s'\n"
	    "health_interval = 100ms\n"
	    "health_retries = 1\n", marks);
	rev_conf(path, sizeof(path), "ok.conf", 1, extra);
	start_broker(path);
	pid = wait_state("rev/1", "running", 10000);
	wait_lines(marks, 5, 15000);

	ck_assert_int_eq(ps_lookup("rev/1", NULL, 0, &restarts), pid);
	ck_assert_uint_eq(restarts, 0);
	json_field("ps", "rev/1", "health", field, sizeof(field));
	ck_assert_str_eq(field, "ok");
	json_field("health", "rev/1", "output", field, sizeof(field));
	ck_assert_str_eq(field, "m1 rev/1");
	ck_assert_int_eq(ctl(false, &out, &err, "health", END), 0);
	ck_assert_msg(strstr(out, "rev/1: ok (running)\n") != NULL &&
	    strstr(out, "  last check: exit 0, ") != NULL &&
	    strstr(out, "found unhealthy") == NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(run_job("rev", "fine", &out, &err), 0);
	ck_assert_str_eq(out, "enif");
	free(out);
	free(err);
	ck_assert(!harness_log_contains(&broker, "unhealthy"));
}
END_TEST

/*
 * A check that hangs is killed at health_timeout, with what it started,
 * and counts as a failure.
 */
START_TEST(pools_health_check_timeout_is_a_failure)
{
	char	path[300], pidfile[300], extra[600], field[256], *text;
	long	check;

	snprintf(pidfile, sizeof(pidfile), "%s/check.pid", tmp);
	snprintf(extra, sizeof(extra),
	    "health_check = sh -c 'echo waiting; sleep 60 & echo $! > %s; "
	    "wait'\n"
	    "health_interval = 100ms\n"
	    "health_timeout = 300ms\n"
	    "health_retries = 1\n"
	    "max_restarts = -1\n", pidfile);
	rev_conf(path, sizeof(path), "hang.conf", 1, extra);
	start_broker(path);
	wait_state("rev/1", "running", 10000);
	wait_restarts("rev/1", 1, 15000);
	json_field("ps", "rev/1", "reason", field, sizeof(field));
	ck_assert_str_eq(field, "health check failed: timed out after 300ms: "
	    "waiting");
	json_field("health", "rev/1", "result", field, sizeof(field));
	ck_assert_str_eq(field, "timed out after 300ms");

	/* The sleep the check left behind went with it. */
	text = harness_read_file(pidfile);
	ck_assert_ptr_nonnull(text);
	check = strtol(text, NULL, 10);
	free(text);
	ck_assert_int_gt(check, 1);
	ck_assert(harness_wait_until(proc_gone_cond, &check, 5000));
}
END_TEST

/*
 * A pool's process that never registers is restarted after start_timeout,
 * and ps says why; start_timeout = 0 lets it be.
 */
START_TEST(pools_start_timeout_restarts)
{
	char		path[300], field[256];
	unsigned	restarts = 99;
	long		pid, quiet;

	write_conf(path, sizeof(path), "start.conf",
	    "[pool:mute]\n"
	    "command = sleep 60\n"
	    "start_timeout = 500ms\n"
	    "backoff = 50ms..1s\n"
	    "[pool:free]\n"
	    "command = sleep 60\n"
	    "start_timeout = 0\n");
	start_broker(path);
	pid = wait_state("mute/1", "starting", 10000);
	quiet = wait_state("free/1", "starting", 10000);
	wait_restarts("mute/1", 1, 15000);
	ck_assert(harness_wait_until(proc_gone_cond, &pid, 5000));
	json_field("ps", "mute/1", "reason", field, sizeof(field));
	ck_assert_str_eq(field, "did not register within 500ms");
	json_field("ps", "mute/1", "health", field, sizeof(field));
	ck_assert_str_eq(field, "unhealthy");
	ck_assert(harness_log_contains(&broker, "mute/1: pid "));
	ck_assert(harness_log_contains(&broker, "starting -> unhealthy"));

	/* Not checked: still its first child. */
	ck_assert_int_eq(ps_lookup("free/1", NULL, 0, &restarts), quiet);
	ck_assert_uint_eq(restarts, 0);
	json_field("ps", "free/1", "health", field, sizeof(field));
	ck_assert_str_eq(field, "none");
}
END_TEST

/*
 * A worker that stops answering PINGs (SIGSTOPped behind the broker's
 * back, not paused) is dropped, found unhealthy and restarted.
 */
START_TEST(pools_unresponsive_worker_restarted)
{
	char		 path[300], field[256], *out = NULL, *err = NULL;
	const char	*extra[] = { "-c", path, "--heartbeat", "100", NULL };
	long		 pid;

	rev_conf(path, sizeof(path), "mute.conf", 1, "kill_timeout = 500ms\n");
	harness_broker_start(&broker, extra, false);
	pid = wait_state("rev/1", "running", 10000);
	ck_assert_int_eq(kill((pid_t)pid, SIGSTOP), 0);
	wait_restarts("rev/1", 1, 15000);
	ck_assert(harness_wait_until(proc_gone_cond, &pid, 5000));
	ck_assert(harness_log_contains(&broker, "rev/1: pid "));
	ck_assert(harness_log_contains(&broker, " is unhealthy: stopped "
	    "answering PINGs for "));
	/*
	 * The new worker answers jobs, and is healthy again: ps has no reason
	 * any more, ctl health still says why it was restarted.
	 */
	wait_state("rev/1", "running", 10000);
	ck_assert_int_eq(run_job("rev", "back", &out, &err), 0);
	ck_assert_str_eq(out, "kcab");
	free(out);
	free(err);
	json_field("ps", "rev/1", "health", field, sizeof(field));
	ck_assert_str_eq(field, "ok");
	json_field("ps", "rev/1", "reason", field, sizeof(field));
	ck_assert_str_eq(field, "");
	ck_assert(harness_log_contains(&broker, "rev/1: healthy again"));
	ck_assert_int_eq(ctl(false, &out, &err, "health", "rev", END), 0);
	ck_assert_msg(strstr(out, "found unhealthy: 1 time, last: stopped "
	    "answering PINGs for ") != NULL, "%s", out);
	free(out);
	free(err);
}
END_TEST

/* ctl health's refusals. */
START_TEST(pools_ctl_health_errors)
{
	char	path[300], *out = NULL, *err = NULL;

	rev_conf(path, sizeof(path), "p.conf", 1, NULL);
	start_broker(path);
	wait_state("rev/1", "running", 10000);
	ck_assert_int_eq(ctl(false, &out, &err, "health", "nope", END), 1);
	ck_assert_str_eq(err, "patchbay ctl: unknown id 'nope'\n");
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "health", "rev/1", "x", END),
	    2);
	ck_assert_msg(strstr(err, "health: unexpected 'x' (usage: health "
	    "[ID])") != NULL, "%s", err);
	free(out);
	free(err);
	/* Without a health_check, a registered worker is ok: PINGs. */
	ck_assert_int_eq(ctl(false, &out, &err, "health", END), 0);
	ck_assert_str_eq(out, "rev/1: ok (running)\n");
	free(out);
	free(err);
}
END_TEST

/* ---- what a process gets ------------------------------------------------ */

/*
 * The lines process id printed (each "TIME ID: LINE" in its pool's
 * stdout_log), '\n'-separated, once it has printed "report-end"; NULL
 * before. Caller frees.
 */
static char *
report_read(const char *log, const char *id)
{
	char	*text, *line, *next, *out, needle[128];
	size_t	 n = 0, nlen;
	bool	 done = false;

	if ((text = harness_read_file(log)) == NULL)
		return NULL;
	ck_assert_ptr_nonnull(out = malloc(strlen(text) + 1));
	out[0] = '\0';
	snprintf(needle, sizeof(needle), " %s: ", id);
	nlen = strlen(needle);
	for (line = text; line != NULL && *line != '\0'; line = next) {
		char	*m;

		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((m = strstr(line, needle)) == NULL)
			continue;
		m += nlen;
		if (strcmp(m, "report-end") == 0) {
			done = true;
			break;
		}
		n += (size_t)sprintf(out + n, "%s\n", m);
	}
	free(text);
	if (!done) {
		free(out);
		return NULL;
	}
	return out;
}

/* Compares two strings for qsort(). */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of the "env:NAME=VALUE" lines of report, sorted and joined
 * with commas, leaving out what the shell adds itself (PWD, and SHLVL and
 * _ for a bash): buf gets "HOME,LANG,...,".
 */
static void
report_env_names(const char *report, char *buf, size_t len)
{
	char		*names[64];
	size_t		 n = 0, off = 0;
	const char	*s;

	for (s = report; (s = strstr(s, "env:")) != NULL; s += 4) {
		size_t	k = strcspn(s + 4, "=\n");

		if ((s != report && s[-1] != '\n') ||
		    (k == 3 && strncmp(s + 4, "PWD", 3) == 0) ||
		    (k == 5 && strncmp(s + 4, "SHLVL", 5) == 0) ||
		    (k == 1 && s[4] == '_'))
			continue;
		ck_assert_uint_lt(n, 64);
		ck_assert_ptr_nonnull(names[n++] = strndup(s + 4, k));
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0,
		    "%s,", names[i]);
		free(names[i]);
	}
}

/*
 * The descriptors of the "ls -l /proc/PID/fd" lines of report ("N ->
 * TARGET"), as "0:/dev/null,1:pipe,2:pipe,3:socket," (the kind of a
 * pipe:[...] or socket:[...] target only), in ls's order.
 */
static void
report_fds(const char *report, char *buf, size_t len)
{
	const char	*s, *arrow, *num, *target, *colon;
	size_t		 off = 0, k;

	buf[0] = '\0';
	for (s = report; (arrow = strstr(s, " -> ")) != NULL; s = arrow + 4) {
		for (num = arrow; num > report && num[-1] != ' '; num--)
			;
		target = arrow + 4;
		k = strcspn(target, "\n");
		/* pipe:[INODE], socket:[INODE]: the kind is what matters. */
		if ((colon = memchr(target, ':', k)) != NULL && colon[1] == '[')
			k = (size_t)(colon - target);
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0,
		    "%.*s:%.*s,", (int)(arrow - num), num, (int)k, target);
	}
}

/* The value of the line "key=VALUE" of report into buf ("" if none). */
static void
report_value(const char *report, const char *key, char *buf, size_t len)
{
	char		 needle[64];
	const char	*s;

	snprintf(needle, sizeof(needle), "\n%s=", key);
	buf[0] = '\0';
	if (strncmp(report, needle + 1, strlen(needle + 1)) == 0)
		s = report + strlen(needle + 1);
	else if ((s = strstr(report, needle)) != NULL)
		s += strlen(needle);
	else
		return;
	snprintf(buf, len, "%.*s", (int)strcspn(s, "\n"), s);
}

/*
 * Whether nobody (whose primary group is nogroup) can be the pool's user
 * here: patchbayd must be root, and both must exist. Says why not.
 */
static bool
nobody_usable(const char *test, uid_t *ret_uid, gid_t *ret_gid)
{
	struct passwd	*pw;
	struct group	*gr;

	if (geteuid() != 0) {
		fprintf(stderr, "%s: not run as root: the part with user = "
		    "nobody is skipped (the rest ran)\n", test);
		return false;
	}
	if ((pw = getpwnam("nobody")) == NULL ||
	    (gr = getgrnam("nogroup")) == NULL || pw->pw_gid != gr->gr_gid) {
		fprintf(stderr, "%s: no user nobody whose group is nogroup in "
		    "/etc/passwd and /etc/group: the part with user = nobody "
		    "is skipped (the rest ran)\n", test);
		return false;
	}
	*ret_uid = pw->pw_uid;
	*ret_gid = gr->gr_gid;
	return true;
}

/*
 * A pool's process gets what its pool gives it and nothing else of
 * patchbayd's, whatever patchbayd holds when it starts the process: its
 * environment is exactly PATH, HOME, LANG, the PATCHBAY_ variables, the
 * pool's env_keep names and its environment (which wins), and not a
 * secret of patchbayd's environment; its umask is the pool's; its
 * descriptors are 0, 1, 2 and its connection to the broker (3), not a
 * listener nor another peer's connection, open in patchbayd as the process
 * was started. As root, with user = nobody and group = daemon, it runs
 * as nobody, in group daemon, with the supplementary groups nobody has
 * with daemon as its group, and none of root's. Its
 * health check gets the same environment, umask and user.
 */
START_TEST(pools_process_gets_only_what_its_pool_gives)
{
	static const char	*test = "pools_process_gets_only_what_its_pool_"
				    "gives";
	const char		*env[] = { "PB_SECRET=hunter2", "PB_KEPT=kept",
				    "PB_BOTH=frombroker", "LANG=C", NULL };
	const char		*home = getenv("HOME");
	char			 path[300], tmppath[300], log[300];
	char			 user[64], want[512], got[512], field[256];
	char			*report = NULL, *out = NULL, *err = NULL;
	struct pb_client	*c = NULL;
	unsigned long long	 deadline;
	uid_t			 uid = 0;
	gid_t			 gid = 0, groups[64];
	int			 ngroups = 64;
	bool			 as_nobody;

	as_nobody = nobody_usable(test, &uid, &gid);
	user[0] = '\0';
	if (as_nobody) {
		struct group	*gr = getgrnam("daemon");

		/* Another group than nobody's own, when there is one. */
		if (gr != NULL && gr->gr_gid != gid) {
			gid = gr->gr_gid;
			snprintf(user, sizeof(user), "user = nobody\n"
			    "group = daemon\n");
		} else
			snprintf(user, sizeof(user), "user = nobody\n");
	}
	snprintf(log, sizeof(log), "%s/probe.log", tmp);
	write_conf(path, sizeof(path), "probe.conf", "[broker]\n");
	harness_broker_start_env(&broker, (const char *[]){ "-c", path, NULL },
	    env, false);
	/* Another peer's connection, open in patchbayd when it spawns. */
	ck_assert_int_eq(pb_client_connect(broker.unix_ep, NULL, &c), 0);
	ck_assert(harness_wait_log(&broker, "role=client", 5000));

	/*
	 * The script runs as the pool's user, who may not reach this test's
	 * directory: it prints its report to the pool's stdout_log, which
	 * patchbayd writes. ls lists the shell's descriptors, not its own.
	 * No " ;" in it: that would start an inline comment of the file.
	 */
	write_conf(tmppath, sizeof(tmppath), "probe.conf.new",
	    "[pool:probe]\n"
	    "command = /bin/sh -c 'echo uid=$(id -u);echo gid=$(id -g);"
	    "echo groups=$(id -G);echo umask=$(umask);"
	    "env | sed \"s/^/env:/\";ls -l /proc/$$/fd;echo report-end;"
	    "exec %s worker probe --exec cat'\n"
	    "env_keep = PB_KEPT, PB_BOTH PB_ABSENT\n"
	    "environment = PB_SET=fromconf PB_BOTH=fromconf\n"
	    "umask = 0027\n"
	    "%s"
	    "stdout_log = %s\n"
	    "health_check = /bin/sh -c 'echo \"$(umask) $(id -u) $PB_KEPT "
	    "$PB_BOTH ${PB_SECRET:-nosecret} ${PATCHBAY_FD:-nofd}\"'\n"
	    "health_interval = 100ms\n",
	    harness_cli(), user, log);
	ck_assert_int_eq(rename(tmppath, path), 0);
	ck_assert_int_eq(ctl(false, &out, &err, "reload", END), 0);
	free(out);
	free(err);
	/* Running: its worker registered over descriptor 3. */
	wait_state("probe/1", "running", 10000);
	deadline = harness_now_ms() + 10000;
	while ((report = report_read(log, "probe/1")) == NULL) {
		ck_assert_msg(harness_now_ms() < deadline, "no report in %s:\n"
		    "%s", log, harness_read_file(log));
		usleep(20000);
	}

	/* Exactly the allow-listed variables, and the right values. */
	snprintf(want, sizeof(want), "%sLANG,%sPATCHBAY_FD,PATCHBAY_ID,"
	    "PATCHBAY_INSTANCE,PATCHBAY_POOL,PATH,PB_BOTH,PB_KEPT,PB_SET,%s",
	    as_nobody || home != NULL ? "HOME," : "",
	    as_nobody ? "LOGNAME," : "", as_nobody ? "USER," : "");
	report_env_names(report, got, sizeof(got));
	ck_assert_msg(strcmp(got, want) == 0, "environment %s, not %s:\n%s",
	    got, want, report);
	ck_assert_msg(strstr(report, "hunter2") == NULL, "%s", report);
	report_value(report, "env:PB_KEPT", got, sizeof(got));
	ck_assert_str_eq(got, "kept");
	report_value(report, "env:PB_BOTH", got, sizeof(got));
	ck_assert_str_eq(got, "fromconf");
	report_value(report, "env:PB_SET", got, sizeof(got));
	ck_assert_str_eq(got, "fromconf");
	report_value(report, "env:LANG", got, sizeof(got));
	ck_assert_str_eq(got, "C");
	report_value(report, "env:PATCHBAY_FD", got, sizeof(got));
	ck_assert_str_eq(got, "3");
	report_value(report, "env:PATCHBAY_ID", got, sizeof(got));
	ck_assert_str_eq(got, "probe/1");

	report_value(report, "umask", got, sizeof(got));
	ck_assert_str_eq(got, "0027");

	/* 0, 1, 2 and the broker's connection: no listener, no other peer. */
	report_fds(report, got, sizeof(got));
	ck_assert_msg(strcmp(got, "0:/dev/null,1:pipe,2:pipe,3:socket,") == 0,
	    "descriptors %s:\n%s", got, report);

	if (as_nobody) {
		report_value(report, "uid", got, sizeof(got));
		snprintf(want, sizeof(want), "%u", (unsigned)uid);
		ck_assert_str_eq(got, want);
		report_value(report, "gid", got, sizeof(got));
		snprintf(want, sizeof(want), "%u", (unsigned)gid);
		ck_assert_str_eq(got, want);
		report_value(report, "env:HOME", got, sizeof(got));
		ck_assert_str_eq(got, getpwnam("nobody")->pw_dir);
		report_value(report, "env:USER", got, sizeof(got));
		ck_assert_str_eq(got, "nobody");
		/* nobody's groups, as id -G lists them: primary first. */
		ck_assert_int_ne(getgrouplist("nobody", gid, groups,
		    &ngroups), -1);
		want[0] = '\0';
		snprintf(want, sizeof(want), "%u", (unsigned)gid);
		for (int i = 0; i < ngroups; i++)
			if (groups[i] != gid)
				snprintf(want + strlen(want), sizeof(want) -
				    strlen(want), " %u", (unsigned)groups[i]);
		report_value(report, "groups", got, sizeof(got));
		ck_assert_msg(strcmp(got, want) == 0, "groups '%s', not '%s'",
		    got, want);
		/* Not root's: setgroups() dropped them. */
		ck_assert_msg(strcmp(got, "0") != 0 && strncmp(got, "0 ", 2) !=
		    0 && strstr(got, " 0 ") == NULL, "groups '%s'", got);
	}

	/* The health check is made as the process is (not PATCHBAY_FD). */
	deadline = harness_now_ms() + 10000;
	for (;;) {
		json_field("health", "probe/1", "output", field,
		    sizeof(field));
		if (field[0] != '\0')
			break;
		ck_assert_msg(harness_now_ms() < deadline, "no health check "
		    "output");
		usleep(20000);
	}
	snprintf(want, sizeof(want), "0027 %u kept fromconf nosecret nofd",
	    as_nobody ? (unsigned)uid : (unsigned)geteuid());
	ck_assert_str_eq(field, want);

	/* And it serves jobs. */
	ck_assert_int_eq(run_job("probe", "ok", &out, &err), 0);
	ck_assert_str_eq(out, "ok");
	free(out);
	free(err);
	free(report);
	pb_client_free(c);
}
END_TEST

/* The suite. */
static Suite *
pools_suite(void)
{
	Suite	*s = suite_create("pools");
	TCase	*tc;

	tc = tcase_create("pools");
	tcase_add_checked_fixture(tc, pools_setup, pools_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, pools_answer_jobs);
	tcase_add_test(tc, pools_demo_config);
	tcase_add_test(tc, pools_kill9_replaced);
	tcase_add_test(tc, pools_crash_loop_fatal);
	tcase_add_test(tc, pools_stop_timeout_kills);
	tcase_add_test(tc, pools_stop_scale_reload_let_jobs_finish);
	tcase_add_test(tc, pools_stop_timeout_ends_a_long_job);
	tcase_add_test(tc, pools_ctl_drain_finishes_jobs_then_stops);
	tcase_add_test(tc, pools_ctl_drain_timeout);
	tcase_add_test(tc, pools_sigterm_lets_pool_jobs_finish);
	tcase_add_test(tc, pools_on_demand_grows_and_shrinks);
	tcase_add_test(tc, pools_pause_resume);
	tcase_add_test(tc, pools_pause_longer_than_heartbeats_keeps_the_job);
	tcase_add_test(tc, pools_reload_add_remove);
	tcase_add_test(tc, pools_broker_kill9_no_orphans);
	tcase_add_test(tc, pools_shutdown_stops_all);
	tcase_add_test(tc, pools_shutdown_by_admin_is_logged);
	tcase_add_test(tc, pools_spawn);
	tcase_add_test(tc, pools_ctl_errors);
	tcase_add_test(tc, pools_bad_config_refused);
	tcase_add_test(tc, pools_limits_reported);
	tcase_add_test(tc, pools_spawn_limit_options_refused);
	tcase_add_test(tc, pools_reload_applies_limits);
	tcase_add_test(tc, pools_cgroup_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("health");
	tcase_add_checked_fixture(tc, pools_setup, pools_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, pools_health_check_failing_restarts);
	tcase_add_test(tc, pools_health_check_passing_leaves_it_alone);
	tcase_add_test(tc, pools_health_check_timeout_is_a_failure);
	tcase_add_test(tc, pools_start_timeout_restarts);
	tcase_add_test(tc, pools_unresponsive_worker_restarted);
	tcase_add_test(tc, pools_ctl_health_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("isolation");
	tcase_add_checked_fixture(tc, pools_setup, pools_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, pools_process_gets_only_what_its_pool_gives);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(pools_suite());
}

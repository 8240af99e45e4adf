/*
 * test-cli.c: the patchbay program, run the way a user runs it.
 *
 * Each test starts the real patchbayd on a private Unix socket and an
 * ephemeral TCP port, starts `patchbay worker` processes with shell
 * commands, and drives `patchbay run` and `patchbay ctl` as child
 * processes, checking their stdout, stderr and exit status. Conditions are
 * polled with deadlines, never slept on. Every process started here dies
 * with the test (the harness sets PR_SET_PDEATHSIG), and the fixture's
 * teardown stops the workers and the broker when a test passes.
 *
 * Commands that must wait for the test use a FIFO "gate": `read x < GATE`
 * blocks until gate_open() writes a line, so a job can be held running
 * without a sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "patchbay.h"
#include "tests/harness.h"
#include "proto/proto.h"
#include "util/util.h"

#define RUN_MS		30000	/* longest a CLI run may take */
#define WAIT_MS		10000	/* longest a condition is waited for */
#define MAX_WORKERS	8

/* What one test started; the teardown stops it. */
static struct harness_broker	 broker;
static bool			 broker_up;
static struct harness_broker	 broker2;	/* several-broker tests */
static bool			 broker2_up;
static pid_t			 workers[MAX_WORKERS];
static int			 nworkers;
static char			 dir[256];	/* the test's scratch dir */

/* Checked fixture: a scratch directory and nothing running yet. */
static void
setup(void)
{
	broker_up = false;
	nworkers = 0;
	harness_tmpdir(dir, sizeof dir);
}

/* Checked fixture: stops the workers, then the broker. */
static void
teardown(void)
{
	while (nworkers > 0)
		harness_kill(workers[--nworkers], SIGTERM);
	if (broker_up)
		harness_broker_stop(&broker);
	broker_up = false;
	if (broker2_up)
		harness_broker_stop(&broker2);
	broker2_up = false;
}

/* Starts patchbayd with extra flags (NULL-terminated, may be NULL). */
static void
start_broker(const char *const *extra)
{
	harness_broker_start(&broker, extra, false);
	broker_up = true;
}

/* A scratch file path: DIR/name. */
static char *
path_of(const char *name)
{
	char	*p;

	ck_assert(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/*
 * Runs the patchbay program with args (NULL-terminated) and stdin in,
 * collecting stdout and stderr (caller frees; may be NULL). Returns its
 * exit status; fails the test if it did not exit normally.
 */
static int
cli(const void *in, size_t inlen, char **ret_out, char **ret_err, ...)
{
	const char	*argv[64];
	va_list		 ap;
	char		*err = NULL;
	int		 n = 0, status;

	argv[n++] = harness_cli();
	va_start(ap, ret_err);
	while (n < 63 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	status = harness_run(argv, NULL, in, inlen, ret_out, &err, RUN_MS);
	ck_assert_msg(WIFEXITED(status), "%s %s did not exit (status %d); "
	    "stderr: %s", argv[1], n > 2 ? argv[2] : "", status, err);
	if (ret_err != NULL)
		*ret_err = err;
	else
		free(err);
	return WEXITSTATUS(status);
}

/* Condition: the file at arg contains the text of a finished line. */
static bool
file_has_line(void *arg)
{
	char	*s = harness_read_file(arg);
	bool	 ok = s != NULL && strchr(s, '\n') != NULL;

	free(s);
	return ok;
}

struct needle {
	const char	*path;
	const char	*text;
	int		 count;		/* at least this many occurrences */
};

/* Condition: the file contains the needle at least count times. */
static bool
file_has_needle(void *arg)
{
	struct needle	*n = arg;
	char		*s = harness_read_file(n->path), *p;
	int		 found = 0;

	for (p = s; p != NULL && (p = strstr(p, n->text)) != NULL; p++)
		found++;
	free(s);
	return found >= n->count;
}

/* Waits until path holds text at least count times; fails otherwise. */
static void
wait_file(const char *path, const char *text, int count)
{
	struct needle	n = { path, text, count };
	char		*s;

	if (harness_wait_until(file_has_needle, &n, WAIT_MS))
		return;
	s = harness_read_file(path);
	ck_abort_msg("%s never had '%s' %d time(s); it holds: %s", path, text,
	    count, s != NULL ? s : "(nothing)");
}

/*
 * Starts `patchbay worker FN --exec CMD --capacity N` on the broker's unix
 * socket and waits until the broker has its REGISTER. fns is a
 * space-free list of names separated by commas.
 */
static pid_t
start_worker_env(const char *fns, const char *cmd, int capacity,
    const char *const *env)
{
	const char	*argv[32];
	char		 cap[16], needle[96], *copy, *fn, *save = NULL;
	char		*log;
	int		 n = 0;
	pid_t		 pid;

	ck_assert(nworkers < MAX_WORKERS);
	snprintf(cap, sizeof cap, "%d", capacity);
	ck_assert((copy = strdup(fns)) != NULL);
	argv[n++] = harness_cli();
	argv[n++] = "worker";
	for (fn = strtok_r(copy, ",", &save); fn != NULL && n < 24;
	    fn = strtok_r(NULL, ",", &save))
		argv[n++] = fn;
	argv[n++] = "--exec";
	argv[n++] = cmd;
	argv[n++] = "--capacity";
	argv[n++] = cap;
	argv[n++] = "--broker";
	argv[n++] = broker.unix_ep;
	argv[n++] = "--verbose";
	argv[n] = NULL;
	ck_assert(asprintf(&log, "%s/worker-%d.log", dir, nworkers) > 0);
	pid = harness_spawn(argv, env, log);
	workers[nworkers++] = pid;
	free(copy);
	free(log);

	snprintf(needle, sizeof needle, "pid=%ld uid=%lu: registered",
	    (long)pid, (unsigned long)getuid());
	ck_assert_msg(harness_wait_log(&broker, needle, WAIT_MS),
	    "worker %ld did not register with the broker", (long)pid);
	return pid;
}

/* start_worker_env() with the test's environment as it is. */
static pid_t
start_worker(const char *fns, const char *cmd, int capacity)
{
	return start_worker_env(fns, cmd, capacity, NULL);
}

/* Reads a whole file with its length (binary-safe); caller frees. */
static uint8_t *
read_bytes(const char *path, size_t *ret_len)
{
	struct stat	 st;
	uint8_t		*buf;
	FILE		*f;

	ck_assert_msg((f = fopen(path, "rb")) != NULL, "%s: %s", path,
	    strerror(errno));
	ck_assert(fstat(fileno(f), &st) == 0);
	ck_assert((buf = malloc((size_t)st.st_size + 1)) != NULL);
	ck_assert(fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size);
	fclose(f);
	*ret_len = (size_t)st.st_size;
	return buf;
}

/*
 * Runs `patchbay run FN --broker EP` with in on stdin and its stdout
 * redirected to a file by a shell, so binary output keeps its length.
 * Returns the output; the exit status goes to *ret_status.
 */
static uint8_t *
run_binary(const char *fn, const void *in, size_t inlen, size_t *ret_len,
    int *ret_status)
{
	char		*out = path_of("binary.out"), *err = NULL;
	const char	*argv[] = { "/bin/sh", "-c",
			    "exec \"$0\" run \"$1\" --broker \"$2\" > \"$3\"",
			    harness_cli(), fn, broker.unix_ep, out, NULL };
	uint8_t		*buf;
	int		 status;

	status = harness_run(argv, NULL, in, inlen, NULL, &err, RUN_MS);
	ck_assert_msg(WIFEXITED(status), "run %s did not exit: %s", fn, err);
	*ret_status = WEXITSTATUS(status);
	ck_assert_msg(*ret_status == 0, "run %s exited %d: %s", fn,
	    *ret_status, err);
	buf = read_bytes(out, ret_len);
	free(out);
	free(err);
	return buf;
}

/* Opens the FIFO gate once a reader waits, and lets one line through. */
static void
gate_open(const char *gate)
{
	unsigned long long	deadline = harness_now_ms() + WAIT_MS;
	int			fd;

	for (;;) {
		fd = open(gate, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			break;
		ck_assert_msg(errno == ENXIO, "open %s: %s", gate,
		    strerror(errno));
		ck_assert_msg(harness_now_ms() < deadline, "nobody read the "
		    "gate %s", gate);
		usleep(10000);
	}
	ck_assert(write(fd, "go\n", 3) == 3);
	close(fd);
}

/* Reads a pid that a command wrote to path (waiting for it). */
static pid_t
read_pid(const char *path)
{
	char	*s;
	long	 pid;

	ck_assert_msg(harness_wait_until(file_has_line, (void *)path, WAIT_MS),
	    "the command never wrote its pid to %s", path);
	s = harness_read_file(path);
	pid = strtol(s, NULL, 10);
	free(s);
	ck_assert_msg(pid > 1, "bad pid in %s", path);
	return (pid_t)pid;
}

/* Condition: the process arg points to no longer exists (reaped). */
static bool
pid_gone(void *arg)
{
	return kill(*(pid_t *)arg, 0) == -1 && errno == ESRCH;
}

/* Fails unless the process is gone within the deadline. */
static void
assert_gone(pid_t pid, const char *what)
{
	ck_assert_msg(harness_wait_until(pid_gone, &pid, WAIT_MS),
	    "%s (pid %ld) is still running", what, (long)pid);
}

/* Starts `patchbay run ARGS... --broker unix` in the background. */
static pid_t
spawn_run(const char *log, ...)
{
	const char	*argv[32];
	va_list		 ap;
	int		 n = 0;

	argv[n++] = harness_cli();
	argv[n++] = "run";
	va_start(ap, log);
	while (n < 28 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n++] = "--broker";
	argv[n++] = broker.unix_ep;
	argv[n] = NULL;
	return harness_spawn(argv, NULL, log);
}

/* Waits for a background process and returns its exit status. */
static int
reap(pid_t pid)
{
	int	status = harness_kill(pid, 0);

	ck_assert_msg(status != -1 && WIFEXITED(status), "pid %ld did not "
	    "exit normally (status %d)", (long)pid, status);
	return WEXITSTATUS(status);
}

/* Condition: `patchbay ctl status --json` output contains arg. */
static bool
status_shows(void *arg)
{
	char	*out = NULL;
	bool	 found;

	found = cli(NULL, 0, &out, NULL, "ctl", "status", "--json",
	    "--broker", broker.unix_ep, NULL) == 0 && strstr(out, arg) != NULL;
	free(out);
	return found;
}

/* True when s is a lowercase UUID string (36 characters). */
static bool
is_uuid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/*
 * Parses json with Python's json module and runs the statements check on
 * it as `d` (with re imported); fails the test, quoting both, unless they
 * pass. What a script reading `--json` would do.
 */
static void
check_json(const char *json, const char *check)
{
	const char	*argv[] = { "/usr/bin/env", "python3", "-c", NULL,
			    NULL };
	char		*prog, *err = NULL;
	int		 status;

	ck_assert(asprintf(&prog, "import json, re, sys\n"
	    "d = json.load(sys.stdin)\n%s\n", check) > 0);
	argv[3] = prog;
	status = harness_run(argv, NULL, json, strlen(json), NULL, &err,
	    RUN_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the JSON %s fails the check %s: %s", json, check, err);
	free(err);
	free(prog);
}

/*
 * Runs the patchbay program with extra environment entries (NULL-
 * terminated) and args (NULL-terminated); as cli() otherwise.
 */
static int
cli_env(const char *const *env, char **ret_out, char **ret_err, ...)
{
	const char	*argv[64];
	va_list		 ap;
	char		*err = NULL;
	int		 n = 0, status;

	argv[n++] = harness_cli();
	va_start(ap, ret_err);
	while (n < 63 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	status = harness_run(argv, env, NULL, 0, ret_out, &err, RUN_MS);
	ck_assert_msg(WIFEXITED(status), "%s did not exit (status %d); "
	    "stderr: %s", argv[1], status, err);
	if (ret_err != NULL)
		*ret_err = err;
	else
		free(err);
	return WEXITSTATUS(status);
}

/* ---- run ---------------------------------------------------------------- */

/* The example: a worker on unix, a client on tcp. */
START_TEST(run_example_both_transports)
{
	char	*out, *err;

	start_broker(NULL);
	start_worker("rev", "rev", 4);
	ck_assert_int_eq(cli("hello\n", 6, &out, &err, "run", "rev",
	    "--broker", broker.tcp_ep, NULL), 0);
	ck_assert_str_eq(out, "olleh\n");
	ck_assert_str_eq(err, "");
	free(out);
	free(err);

	ck_assert_int_eq(cli("abc\n", 4, &out, NULL, "run", "rev",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "cba\n");
	free(out);
}
END_TEST

/* DATA on the command line, or stdin without it (or with "-"). */
START_TEST(run_data_argument_or_stdin)
{
	char	*out;

	start_broker(NULL);
	start_worker("cat", "cat", 2);
	ck_assert_int_eq(cli("ignored", 7, &out, NULL, "run", "cat",
	    "hello world", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "hello world");	/* no newline added */
	free(out);
	ck_assert_int_eq(cli("from stdin\n", 11, &out, NULL, "run", "cat",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "from stdin\n");
	free(out);
	ck_assert_int_eq(cli("dash", 4, &out, NULL, "run", "cat", "-",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "dash");
	free(out);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "--broker",
	    broker.unix_ep, "cat", "", NULL), 0);
	ck_assert_str_eq(out, "");
	free(out);
}
END_TEST

/* Every byte value survives the trip through `--exec cat`. */
START_TEST(run_binary_payload_round_trips)
{
	uint8_t	 in[256], *out;
	size_t	 len;
	int	 status;

	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	start_broker(NULL);
	start_worker("cat", "cat", 1);
	out = run_binary("cat", in, sizeof in, &len, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(len, sizeof in);
	ck_assert(memcmp(in, out, sizeof in) == 0);
	free(out);
}
END_TEST

/* 4 MiB through a pipe-bound command: stdin, stdout both bigger than pipes. */
START_TEST(run_large_payload_does_not_deadlock)
{
	static const char *const	 extra[] = { "--max-frame", "16777216",
					    NULL };
	size_t				 size = 4 * 1024 * 1024, len;
	uint8_t				*in, *out;
	uint32_t			 x = 12345;
	int				 status;

	ck_assert((in = malloc(size)) != NULL);
	for (size_t i = 0; i < size; i++) {
		x = x * 1103515245u + 12345u;
		in[i] = (uint8_t)(x >> 16);
	}
	start_broker(extra);
	start_worker("cat", "cat", 1);
	out = run_binary("cat", in, size, &len, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(len, size);
	ck_assert(memcmp(in, out, size) == 0);
	free(in);
	free(out);
}
END_TEST

/* A failing command: exit 1 and the tail of its stderr. */
START_TEST(run_failing_command_reports_stderr)
{
	char	*out, *err;
	size_t	 n;

	start_broker(NULL);
	start_worker("fail", "echo partial; echo oops >&2; "
	    "echo more detail >&2; exit 3", 1);
	start_worker("quiet", "exit 7", 1);
	start_worker("loud", "i=0; while [ $i -lt 300 ]; do "
	    "echo \"line $i of noise\" >&2; i=$((i+1)); done; exit 1", 1);

	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "fail", "x",
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_str_eq(err, "patchbay: fail: oops\nmore detail\n");
	ck_assert_str_eq(out, "");
	free(out);
	free(err);

	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "quiet", "x",
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_str_eq(err, "patchbay: quiet: command exited with status "
	    "7\n");
	free(err);

	/* Only the tail is kept, and it starts at a whole line. */
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "loud", "x",
	    "--broker", broker.unix_ep, NULL), 1);
	n = strlen(err);
	ck_assert_msg(n > 100 && n < 2200, "stderr is %zu bytes", n);
	ck_assert_msg(strncmp(err, "patchbay: loud: line ", 21) == 0, "%s",
	    err);
	ck_assert_msg(strstr(err, "line 299 of noise\n") != NULL, "%s", err);
	ck_assert(strstr(err, "line 0 of noise") == NULL);
	free(err);
}
END_TEST

/* --timeout: exit 4, and the command's process group is killed. */
START_TEST(run_timeout_kills_the_command)
{
	char	*pidfile = path_of("pid"), *cmd, *err;
	pid_t	 pid;

	ck_assert(asprintf(&cmd, "echo $$ > %s; exec sleep 30", pidfile) > 0);
	start_broker(NULL);
	start_worker("slow", cmd, 1);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "slow", "x",
	    "--timeout", "1000", "--broker", broker.unix_ep, NULL), 4);
	ck_assert_str_eq(err, "patchbay: slow: timed out after 1000 ms "
	    "(TIMEOUT)\n");
	pid = read_pid(pidfile);
	assert_gone(pid, "the timed-out command");
	free(err);
	free(cmd);
	free(pidfile);
}
END_TEST

/* SIGINT while waiting: CANCEL, the command is killed, exit 3. */
START_TEST(run_sigint_cancels_the_job)
{
	char	*pidfile = path_of("pid"), *log = path_of("run.log"), *cmd;
	char	*s;
	pid_t	 pid, run;
	int	 status;

	ck_assert(asprintf(&cmd, "echo $$ > %s; exec sleep 30", pidfile) > 0);
	start_broker(NULL);
	start_worker("slow", cmd, 1);
	run = spawn_run(log, "slow", "x", NULL);
	pid = read_pid(pidfile);
	status = harness_kill(run, SIGINT);
	ck_assert_msg(WIFEXITED(status), "run did not exit (status %d)",
	    status);
	s = harness_read_file(log);
	ck_assert_msg(WEXITSTATUS(status) == 3, "run exited %d: %s",
	    WEXITSTATUS(status), s);
	ck_assert_str_eq(s, "patchbay: slow: job cancelled (CANCELLED)\n");
	assert_gone(pid, "the cancelled command");
	free(s);
	free(cmd);
	free(log);
	free(pidfile);
}
END_TEST

/*
 * Starts a worker whose command records its pid and sleeps, a run of it
 * (with extra run arguments, NULL-terminated list of up to two), waits for
 * the command to start, and returns the run's pid; *ret_job is the
 * command's pid and *ret_worker the worker's.
 */
static pid_t
start_held_job(const char *fn, const char *arg1, const char *arg2,
    char *log, pid_t *ret_worker, pid_t *ret_job)
{
	char	*pidfile, *cmd;
	pid_t	 run;

	/* One pid file per function: a stale pid must never be read. */
	ck_assert(asprintf(&pidfile, "%s/%s.pid", dir, fn) > 0);
	ck_assert(asprintf(&cmd, "echo $$ > %s; exec sleep 30", pidfile) > 0);
	*ret_worker = start_worker(fn, cmd, 1);
	run = spawn_run(log, fn, "payload", arg1, arg2, NULL);
	*ret_job = read_pid(pidfile);
	free(cmd);
	free(pidfile);
	return run;
}

/*
 * kill -9 of the worker running a job: with --retries 1 the broker
 * dispatches it again to another worker and the client gets that answer;
 * without, the client gets WORKER_LOST (exit 5).
 */
START_TEST(run_worker_killed_mid_job)
{
	char	*log = path_of("run.log"), *s;
	pid_t	 first, job, run;

	start_broker(NULL);
	run = start_held_job("job", "--retries", "1", log, &first, &job);
	/* A second worker joins while the first holds the job. */
	start_worker("job", "tr a-z A-Z", 1);
	harness_kill(first, SIGKILL);
	ck_assert_int_eq(reap(run), 0);
	s = harness_read_file(log);
	ck_assert_str_eq(s, "PAYLOAD");
	free(s);
	assert_gone(job, "the killed worker's command");

	/* Again without retries: the answer is WORKER_LOST. */
	ck_assert_int_eq(truncate(log, 0), 0);
	run = start_held_job("job2", NULL, NULL, log, &first, &job);
	start_worker("job2", "tr a-z A-Z", 1);
	harness_kill(first, SIGKILL);
	ck_assert_int_eq(reap(run), 5);
	s = harness_read_file(log);
	ck_assert_msg(strstr(s, "WORKER_LOST") != NULL, "stderr: %s", s);
	free(s);
	assert_gone(job, "the killed worker's command");
	free(log);
}
END_TEST

/* kill -9 of a waiting client: the worker is told CANCEL and stops it. */
START_TEST(run_client_killed_worker_sees_cancel)
{
	char	*log = path_of("run.log");
	pid_t	 worker, job, run;

	start_broker(NULL);
	run = start_held_job("slow", NULL, NULL, log, &worker, &job);
	harness_kill(run, SIGKILL);
	assert_gone(job, "the orphaned job's command");
	/* The slot is free again: the next job runs. */
	start_worker("fast", "cat", 1);
	ck_assert_int_eq(cli("hi", 2, NULL, NULL, "run", "fast", "--broker",
	    broker.unix_ep, NULL), 0);
	free(log);
}
END_TEST

/* Capacity 1: a second run waits for the first, then succeeds. */
START_TEST(run_waits_in_the_queue)
{
	char	*gate = path_of("gate"), *trace = path_of("trace");
	char	*log1 = path_of("run1.log"), *log2 = path_of("run2.log");
	char	*cmd, *s;
	pid_t	 r1, r2;

	ck_assert(mkfifo(gate, 0600) == 0);
	ck_assert(asprintf(&cmd, "echo start >> %s; read x < %s; "
	    "echo end >> %s; cat", trace, gate, trace) > 0);
	start_broker(NULL);
	start_worker("q", cmd, 1);

	r1 = spawn_run(log1, "q", "one", NULL);
	wait_file(trace, "start", 1);
	r2 = spawn_run(log2, "q", "two", NULL);
	/* The broker holds the second job: the worker has no free slot. */
	ck_assert_msg(harness_wait_until(status_shows, "\"queued\": 1",
	    WAIT_MS), "the second job never showed as queued");
	gate_open(gate);
	wait_file(trace, "start", 2);
	gate_open(gate);
	ck_assert_int_eq(reap(r1), 0);
	ck_assert_int_eq(reap(r2), 0);

	s = harness_read_file(trace);
	ck_assert_str_eq(s, "start\nend\nstart\nend\n");
	free(s);
	s = harness_read_file(log1);
	ck_assert_str_eq(s, "one");
	free(s);
	s = harness_read_file(log2);
	ck_assert_str_eq(s, "two");
	free(s);
	free(cmd);
	free(gate);
	free(trace);
	free(log1);
	free(log2);
}
END_TEST

/* Queued jobs go by priority: high before low, whatever the order sent. */
START_TEST(run_priority_orders_the_queue)
{
	char	*gate = path_of("gate"), *trace = path_of("trace");
	char	*cmd, *s, *out;

	ck_assert(mkfifo(gate, 0600) == 0);
	ck_assert(asprintf(&cmd, "cat >> %s; echo >> %s; read x < %s",
	    trace, trace, gate) > 0);
	start_broker(NULL);
	start_worker("p", cmd, 1);

	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "p", "block",
	    "--detach", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strlen(out) == 37 && is_uuid(out) && out[36] == '\n',
	    "--detach printed '%s'", out);
	free(out);
	wait_file(trace, "block\n", 1);
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "run", "p", "low",
	    "--priority", "-10", "--detach", "--broker", broker.unix_ep,
	    NULL), 0);
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "run", "p", "high",
	    "--priority", "10", "--detach", "--broker", broker.unix_ep,
	    NULL), 0);
	gate_open(gate);
	wait_file(trace, "\n", 2);
	gate_open(gate);
	wait_file(trace, "\n", 3);
	gate_open(gate);

	s = harness_read_file(trace);
	ck_assert_str_eq(s, "block\nhigh\nlow\n");
	free(s);
	free(cmd);
	free(gate);
	free(trace);
}
END_TEST

/* --nowait with nobody serving the function: NO_WORKER, exit 6. */
START_TEST(run_nowait_without_worker)
{
	char	*out, *err;

	start_broker(NULL);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "nothing", "x",
	    "--nowait", "--broker", broker.unix_ep, NULL), 6);
	ck_assert_str_eq(err, "patchbay: nothing: no worker for 'nothing' "
	    "(NO_WORKER)\n");
	ck_assert_str_eq(out, "");
	free(out);
	free(err);
}
END_TEST

/* No broker there: exit 11 with the endpoint in the message. */
START_TEST(run_cannot_connect)
{
	char	*ep, *err;

	ck_assert(asprintf(&ep, "unix:%s/nobody.sock", dir) > 0);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "rev", "x",
	    "--broker", ep, NULL), 11);
	ck_assert_msg(strstr(err, "patchbay: rev: ") == err &&
	    strstr(err, "nobody.sock") != NULL, "%s", err);
	free(err);
	free(ep);
}
END_TEST

/* A library worker's handler: two PROGRESS messages, then OK "done". */
static void
progress_handler(struct pb_worker *w, struct pb_job *job, void *arg)
{
	(void)w;
	(void)arg;
	pb_job_progress(job, "25%\n", 4);
	pb_job_progress(job, "50%\n", 4);
	pb_job_complete(job, PB_OK, "done", 4, NULL);
}

/* --progress copies each PROGRESS payload to stderr. */
START_TEST(run_progress_goes_to_stderr)
{
	struct pb_worker	*w;
	char			 needle[96], *out, *err;
	pid_t			 pid, parent = getpid();

	start_broker(NULL);
	/* The CLI worker sends no progress: serve "prog" with the library. */
	pid = fork();
	ck_assert(pid != -1);
	if (pid == 0) {
		/* Check's runner handlers would kill its whole group. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (pb_worker_new(broker.unix_ep, NULL, &w) != 0 ||
		    pb_worker_add_function(w, "prog", progress_handler,
		    NULL) != 0 || pb_worker_connect(w) != 0)
			_exit(1);
		pb_worker_run(w);
		_exit(0);
	}
	workers[nworkers++] = pid;
	snprintf(needle, sizeof needle, "pid=%ld uid=%lu: registered",
	    (long)pid, (unsigned long)getuid());
	ck_assert(harness_wait_log(&broker, needle, WAIT_MS));

	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "prog", "x",
	    "--progress", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "done");
	ck_assert_str_eq(err, "25%\n50%\n");
	free(out);
	free(err);
	/* Without --progress, nothing but the result. */
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "prog", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "done");
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
}
END_TEST

/* ---- run --lines -------------------------------------------------------- */

#define SHUFFLE_HOLD	7	/* jobs the shuffling worker holds at most */

/* The shuffling worker's held jobs (in its own process, after fork). */
static struct pb_job	*shuffle_held[SHUFFLE_HOLD];
static int		 shuffle_nheld;
static unsigned long	 shuffle_seen;

/* Answers the held jobs with their own payloads, the newest first. */
static void
shuffle_release(void)
{
	struct pb_job	*job;
	const void	*p;
	size_t		 len;

	while (shuffle_nheld > 0) {
		job = shuffle_held[--shuffle_nheld];
		p = pb_job_payload(job, &len);
		pb_job_complete(job, PB_OK, p, len, NULL);
	}
}

/* Holds each job until SHUFFLE_HOLD are held, then answers them. */
static void
shuffle_handler(struct pb_worker *w, struct pb_job *job, void *arg)
{
	(void)w;
	(void)arg;
	shuffle_seen++;
	shuffle_held[shuffle_nheld++] = job;
	if (shuffle_nheld == SHUFFLE_HOLD)
		shuffle_release();
}

/*
 * Starts a libpatchbay echo worker for fn, capacity 16, whose jobs finish
 * out of order without any sleep: it answers its held jobs newest first,
 * whenever it holds SHUFFLE_HOLD of them or nothing new came for 5 ms.
 */
static void
start_shuffle_worker(const char *fn)
{
	struct pb_worker	*w;
	char			 needle[96];
	unsigned long		 seen;
	pid_t			 pid, parent = getpid();

	ck_assert(nworkers < MAX_WORKERS);
	pid = fork();
	ck_assert(pid != -1);
	if (pid == 0) {
		/* Check's runner handlers would kill its whole group. */
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		if (pb_worker_new(broker.unix_ep, NULL, &w) != 0 ||
		    pb_worker_add_function(w, fn, shuffle_handler,
		    NULL) != 0 || pb_worker_set_capacity(w, 16) != 0 ||
		    pb_worker_connect(w) != 0)
			_exit(1);
		for (;;) {
			seen = shuffle_seen;
			if (pb_worker_dispatch(w, 5) < 0)
				_exit(1);
			if (shuffle_seen == seen)
				shuffle_release();
		}
	}
	workers[nworkers++] = pid;
	snprintf(needle, sizeof needle, "pid=%ld uid=%lu: registered",
	    (long)pid, (unsigned long)getuid());
	ck_assert_msg(harness_wait_log(&broker, needle, WAIT_MS),
	    "the shuffling worker did not register");
}

/* n lines "item-1\n"... of varied lengths (caller frees). */
static char *
batch_input(int n)
{
	char	*s, *p;

	ck_assert((s = malloc((size_t)n * 32 + 1)) != NULL);
	p = s;
	for (int i = 1; i <= n; i++)
		p += sprintf(p, "item-%d-%.*s\n", i, i % 7, "xxxxxxx");
	return s;
}

/*
 * Runs `patchbay run ARGS... --broker unix` with in on stdin and stdout
 * sent to a file by a shell (so NULs survive). Returns the exit status;
 * the output (NUL-terminated too) and its length go to *ret_out and
 * *ret_len, stderr to *ret_err.
 */
static int
run_lines_binary(const void *in, size_t inlen, uint8_t **ret_out,
    size_t *ret_len, char **ret_err, ...)
{
	char		*out = path_of("lines.out");
	const char	*argv[40] = { "/bin/sh", "-c",
			    "out=$1; shift; exec \"$@\" > \"$out\"", "sh", out,
			    harness_cli(), "run" };
	uint8_t		*buf;
	va_list		 ap;
	int		 n = 7, status;

	va_start(ap, ret_err);
	while (n < 36 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n++] = "--broker";
	argv[n++] = broker.unix_ep;
	argv[n] = NULL;
	status = harness_run(argv, NULL, in, inlen, NULL, ret_err, RUN_MS);
	ck_assert_msg(WIFEXITED(status), "run --lines did not exit (%d)",
	    status);
	buf = read_bytes(out, ret_len);
	buf[*ret_len] = '\0';
	*ret_out = buf;
	free(out);
	return WEXITSTATUS(status);
}

/*
 * 2,000 lines, 50 in flight, through a worker that answers out of order:
 * the output is the input, line for line, and nothing is said on stderr.
 */
START_TEST(lines_ordered_output_matches_input)
{
	char	*in = batch_input(2000), *out, *err;

	start_broker(NULL);
	start_shuffle_worker("echo");
	ck_assert_int_eq(cli(in, strlen(in), &out, &err, "run", "echo",
	    "--lines", "--in-flight", "50", "--broker", broker.unix_ep, NULL),
	    0);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(strlen(out), strlen(in));
	ck_assert_msg(strcmp(out, in) == 0, "the output differs from the "
	    "input");
	free(out);
	free(err);
	free(in);
}
END_TEST

/* --unordered: "LINE\tRESULT" as they finish, every line exactly once. */
START_TEST(lines_unordered_numbers_every_line_once)
{
	char		*in = batch_input(500), *out, *err, *line, *save = NULL;
	char		 want[64], *tab;
	bool		 seen[501] = { false };
	int		 n = 0;
	long		 prev = 0, num;
	bool		 reordered = false;

	start_broker(NULL);
	start_shuffle_worker("echo");
	ck_assert_int_eq(cli(in, strlen(in), &out, &err, "run", "echo",
	    "--lines", "--unordered", "-j", "50", "--broker", broker.unix_ep,
	    NULL), 0);
	ck_assert_str_eq(err, "");
	ck_assert_msg(out[strlen(out) - 1] == '\n', "%s", out);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		ck_assert_msg((tab = strchr(line, '\t')) != NULL, "no tab in "
		    "'%s'", line);
		num = strtol(line, NULL, 10);
		ck_assert_msg(num >= 1 && num <= 500 && !seen[num], "bad or "
		    "repeated line number in '%s'", line);
		seen[num] = true;
		snprintf(want, sizeof want, "item-%ld-%.*s", num,
		    (int)(num % 7), "xxxxxxx");
		ck_assert_str_eq(tab + 1, want);
		if (num < prev)
			reordered = true;
		prev = num;
		n++;
	}
	ck_assert_int_eq(n, 500);
	/* The worker answers newest first: printing did not wait for order. */
	ck_assert(reordered);
	free(out);
	free(err);
	free(in);
}
END_TEST

/*
 * Line endings: "\r\n" counts as "\n", an empty line is a job with an empty
 * payload, and a last line without a newline is a job too.
 */
START_TEST(lines_empty_lines_and_last_line)
{
	char	*out, *err;

	start_broker(NULL);
	start_worker("wrap", "printf '[%s]' \"$(cat)\"", 4);
	ck_assert_int_eq(cli("a\n\nb\r\n\r\nlast", 12, &out, &err, "run",
	    "wrap", "--lines", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "[a]\n[]\n[b]\n[]\n[last]\n");
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
}
END_TEST

/* Empty input: no job, no output, exit 0; --verbose still counts. */
START_TEST(lines_empty_input)
{
	char	*out, *err;

	start_broker(NULL);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "nobody", "--lines",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "nobody", "--lines",
	    "--verbose", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "");
	ck_assert_str_eq(err, "patchbay: nobody: 0 jobs: 0 OK\n");
	free(out);
	free(err);
}
END_TEST

/* --null: NUL ends payloads and results, so newlines pass through. */
START_TEST(lines_null_round_trips_newlines)
{
	static const char	 in[] = "one\nline\0two\0\0three\r\n";
	static const char	 want[] = "one\nline\0two\0\0three\r\n";
	uint8_t			*out;
	size_t			 len;
	char			*err;

	start_broker(NULL);
	start_worker("cat", "cat", 4);
	ck_assert_int_eq(run_lines_binary(in, sizeof in - 1, &out, &len, &err,
	    "cat", "--lines", "--null", NULL), 0);
	ck_assert_str_eq(err, "");
	/* Four jobs; the last, unterminated, keeps its "\r\n". */
	ck_assert_uint_eq(len, sizeof want);
	ck_assert(memcmp(out, want, sizeof want) == 0);
	free(out);
	free(err);
}
END_TEST

/*
 * A failed job keeps its line (empty) on stdout, says why on stderr, and
 * the summary counts the outcomes; the exit status is the first failed
 * line's, whatever finished first.
 */
START_TEST(lines_failures_keep_their_lines)
{
	char	*out, *err;

	start_broker(NULL);
	start_worker("fail", "x=$(cat); case \"$x\" in bad*) "
	    "echo \"no $x\" >&2; exit 1;; slow) exec sleep 5;; esac; "
	    "printf %s \"$x\"", 4);

	ck_assert_int_eq(cli("a\nbad1\nb\nbad2\nc\n", 16, &out, &err, "run",
	    "fail", "--lines", "--broker", broker.unix_ep, NULL), 1);
	ck_assert_str_eq(out, "a\n\nb\n\nc\n");
	ck_assert_str_eq(err, "patchbay: fail: line 2: no bad1\n"
	    "patchbay: fail: line 4: no bad2\n"
	    "patchbay: fail: 5 jobs: 3 OK, 2 ERROR\n");
	free(out);
	free(err);

	/* Line 3 fails first, but line 2 (TIMEOUT) comes first: exit 4. */
	ck_assert_int_eq(cli("a\nslow\nbad\n", 11, &out, &err, "run", "fail",
	    "--lines", "--timeout", "500", "--broker", broker.unix_ep, NULL),
	    4);
	ck_assert_str_eq(out, "a\n\n\n");
	ck_assert_str_eq(err, "patchbay: fail: line 2: timed out after "
	    "500 ms (TIMEOUT)\n"
	    "patchbay: fail: line 3: no bad\n"
	    "patchbay: fail: 3 jobs: 1 OK, 1 ERROR, 1 TIMEOUT\n");
	free(out);
	free(err);
}
END_TEST

/* --detach: one job id per line once the broker has them, exit 0. */
START_TEST(lines_detach_prints_ids)
{
	char	*trace = path_of("trace"), *cmd, *in, *out, *err, *p;
	int	 n = 0;

	ck_assert(asprintf(&cmd, "cat >> %s; echo >> %s", trace, trace) > 0);
	in = batch_input(30);
	start_broker(NULL);
	start_worker("bg", cmd, 1);
	ck_assert_int_eq(cli(in, strlen(in), &out, &err, "run", "bg",
	    "--lines", "--detach", "-j", "8", "--broker", broker.unix_ep,
	    NULL), 0);
	ck_assert_str_eq(err, "");
	for (p = out; *p != '\0'; p += 37) {
		ck_assert_msg(strlen(p) >= 37 && is_uuid(p) && p[36] == '\n',
		    "not an id per line: %s", out);
		/* Every id differs from the ones before it. */
		for (char *q = out; q < p; q += 37)
			ck_assert(strncmp(p, q, 36) != 0);
		n++;
	}
	ck_assert_int_eq(n, 30);
	/* The broker has them all: every job runs, without the client. */
	wait_file(trace, "\n", 30);
	p = harness_read_file(trace);
	ck_assert_msg(strstr(p, "item-30-xx\n") != NULL && strstr(p,
	    "item-1-x\n") != NULL, "%s", p);
	free(p);
	free(out);
	free(err);
	free(in);
	free(cmd);
	free(trace);
}
END_TEST

/*
 * run --detach prints a job's id only once the broker has taken it, and a
 * refusal is the exit status and a sentence, in --lines mode too.
 */
START_TEST(run_detach_reports_refusals)
{
	char	*out, *err;

	start_broker((const char *[]){ "--max-queue", "1", NULL });
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "q", "-d", "one",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strlen(out) == 37 && is_uuid(out) && out[36] == '\n',
	    "%s", out);
	free(out);
	free(err);
	/* Queue full: no id, QUEUE_FULL's exit status and the reason. */
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "q", "-d", "two",
	    "--broker", broker.unix_ep, NULL), 7);
	ck_assert_str_eq(out, "");
	ck_assert_msg(strstr(err, "QUEUE_FULL") != NULL, "%s", err);
	free(out);
	free(err);
	/* Three lines for another function: one id, two refusals. */
	ck_assert_int_ne(cli("a\nb\nc\n", 6, &out, &err, "run", "q2",
	    "--lines", "-d", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(err, "3 jobs: 1 submitted, 2 QUEUE_FULL") != NULL,
	    "%s", err);
	ck_assert_msg(is_uuid(out) && out[36] == '\n', "%s", out);
	free(out);
	free(err);
}
END_TEST

/*
 * Delayed jobs: --delay runs no earlier than due, a detached one waits in
 * `ctl jobs --state delayed` with the time until it is due, --at in the
 * past runs at once, and a time without a zone is a usage error.
 */
START_TEST(run_delay_and_at)
{
	unsigned long long	 t0;
	char			*out, *err;

	start_broker(NULL);
	start_worker("echo", "cat", 2);
	t0 = harness_now_ms();
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "echo", "--delay",
	    "1s", "x", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "x");
	ck_assert_msg(harness_now_ms() - t0 >= 1000, "ran after %llu ms",
	    harness_now_ms() - t0);
	free(out);
	free(err);

	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "--delay", "1h",
	    "later", "x", "--broker", broker.unix_ep, NULL), 0);
	ck_assert(is_uuid(out));
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "--json", "jobs",
	    "--state", "delayed", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, "\"function\": \"later\"") != NULL &&
	    strstr(out, "\"state\": \"delayed\"") != NULL &&
	    strstr(out, "\"due_in_ms\": 3") != NULL, "%s", out);
	free(out);
	free(err);

	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "echo", "--at",
	    "2020-01-01T00:00Z", "y", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "y");
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "echo", "--at",
	    "2026-12-24T18:00", "y", "--broker", broker.unix_ep, NULL), 2);
	ck_assert_msg(strstr(err, "has no time zone") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "echo", "--at",
	    "2020-01-01T00:00Z", "--delay", "1s", "y", "--broker",
	    broker.unix_ep, NULL), 8);	/* BAD_REQUEST */
	ck_assert_msg(strstr(err, "give delay_ms or run_at, not both") !=
	    NULL, "%s", err);
	free(out);
	free(err);
}
END_TEST

/*
 * `patchbay job ID`: a detached job's state while it waits (queued,
 * delayed), its result with --wait once a worker ran it (a failure's
 * reason and exit status too), and "unknown" for an id the broker never
 * saw or whose outcome is older than result_ttl.
 */
START_TEST(job_status_and_wait)
{
	char	*out, *err, id[64], bad[64], later[64];

	start_broker((const char *[]){ "--result-ttl", "2s", NULL });
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "up", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	snprintf(id, sizeof(id), "%.36s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", id, "--broker",
	    broker.unix_ep, NULL), 0);
	ck_assert_msg(strncmp(out, id, 36) == 0 && strstr(out, " queued "
	    "fn=up attempts=0 priority=0 age=") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "--delay", "1h",
	    "up", "y", "--broker", broker.unix_ep, NULL), 0);
	snprintf(later, sizeof(later), "%.36s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", later, "--broker",
	    broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, " delayed fn=up ") != NULL, "%s", out);
	free(out);
	free(err);
	/* An admin cancels it (its submitter is long gone): done, CANCELLED. */
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "cancel", later,
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, "was: delayed") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", later, "--broker",
	    broker.unix_ep, NULL), 3);
	ck_assert_msg(strstr(err, "cancelled by an admin") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "cancel", later,
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, "no live job has the id") != NULL, "%s", err);
	free(out);
	free(err);

	start_worker("up", "tr a-z A-Z", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", "--wait", id,
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "X");
	free(out);
	free(err);

	start_worker("bad", "echo oops >&2; exit 1", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "bad", "z",
	    "--broker", broker.unix_ep, NULL), 0);
	snprintf(bad, sizeof(bad), "%.36s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", "-w", bad, "--broker",
	    broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, "oops") != NULL, "%s", err);
	free(out);
	free(err);

	/* Past result_ttl (2 s), the outcome is forgotten. */
	usleep(2200 * 1000);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", id, "--broker",
	    broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, "is unknown to the broker") != NULL, "%s",
	    err);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", "not-an-id",
	    "--broker", broker.unix_ep, NULL), 2);
	free(out);
	free(err);
}
END_TEST

/*
 * run -d --retry-on-error: a job its worker keeps failing is tried again
 * after a backoff, then dead: `job --wait` says so with the last error,
 * `ctl dead` lists it, `ctl kick` runs it again, `ctl drop` removes it.
 */
START_TEST(retry_on_error_dead_kick_drop)
{
	char	*out, *err, id[64];

	start_broker(NULL);
	start_worker("flaky", "echo boom >&2; exit 1", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "flaky", "x",
	    "--retry-on-error", "1", "--broker", broker.unix_ep, NULL), 8);
	ck_assert_msg(strstr(err, "retry_on_error is for detached jobs") !=
	    NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "flaky", "x",
	    "--retry-on-error", "1", "--backoff", "100ms", "--broker",
	    broker.unix_ep, NULL), 0);
	snprintf(id, sizeof(id), "%.36s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", "--wait", id,
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, "is dead (its retries ran out): boom") !=
	    NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "--json", "dead",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, id) != NULL && strstr(out, "\"failures\": 2")
	    != NULL && strstr(out, "boom") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "kick", "--broker",
	    broker.unix_ep, NULL), 2);
	free(out);
	free(err);
	/* Kicked: tried twice more, dead again. */
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "kick", id,
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, "kicked: 1") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", "--wait", id,
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, "is dead") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "drop", "--all",
	    "--fn", "flaky", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, "dropped: 1") != NULL, "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", id, "--broker",
	    broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, "is unknown") != NULL, "%s", err);
	free(out);
	free(err);
}
END_TEST

/*
 * run -d --unique: while the job lives, the same key gives the same job
 * (its id printed again); once it has run, the key makes a new one.
 */
START_TEST(run_unique_detached_joins)
{
	char	*out, *err, first[64], *trace = path_of("trace"), *cmd;

	start_broker(NULL);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "--unique",
	    "nightly", "report", "a", "--broker", broker.unix_ep, NULL), 0);
	snprintf(first, sizeof(first), "%s", out);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "--unique",
	    "nightly", "report", "b", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, first);
	free(out);
	free(err);
	ck_assert(asprintf(&cmd, "cat >> %s; echo >> %s", trace, trace) > 0);
	start_worker("report", cmd, 1);
	wait_file(trace, "\n", 1);
	out = harness_read_file(trace);
	ck_assert_str_eq(out, "a\n");	/* it ran once, with a's payload */
	free(out);
	/* Its worker wrote the trace before it answered: wait for the end. */
	first[strcspn(first, "\n")] = '\0';
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "job", first, "--wait",
	    "--broker", broker.unix_ep, NULL), 0);
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "-d", "--unique",
	    "nightly", "report", "c", "--broker", broker.unix_ep, NULL), 0);
	out[strcspn(out, "\n")] = '\0';
	ck_assert_str_ne(out, first);
	free(out);
	free(err);
	free(cmd);
	free(trace);
}
END_TEST

/* Opens the FIFO path for writing once its reader is there; returns fd. */
static int
fifo_open_writer(const char *path)
{
	unsigned long long	deadline = harness_now_ms() + WAIT_MS;
	int			fd;

	for (;;) {
		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		ck_assert_msg(errno == ENXIO, "open %s: %s", path,
		    strerror(errno));
		ck_assert_msg(harness_now_ms() < deadline, "nobody read %s",
		    path);
		usleep(10000);
	}
}

/*
 * Starts `patchbay run FN --lines` with stdin from the FIFO in (written
 * by the test) and stdout to the file out, stderr to log; returns its pid.
 */
static pid_t
spawn_lines_from_fifo(const char *fn, const char *in, const char *out,
    const char *log)
{
	const char	*argv[] = { "/bin/sh", "-c",
			    "exec \"$0\" run \"$1\" --lines --broker \"$2\" "
			    "< \"$3\" > \"$4\"", harness_cli(), fn,
			    broker.unix_ep, in, out, NULL };

	return harness_spawn(argv, NULL, log);
}

/* Input is streamed: each result is out before stdin has ended. */
START_TEST(lines_streams_before_end_of_input)
{
	char	*in = path_of("in"), *out = path_of("out");
	char	*log = path_of("log"), *s;
	pid_t	 run;
	int	 fd;

	ck_assert(mkfifo(in, 0600) == 0);
	start_broker(NULL);
	start_worker("rev", "rev", 2);
	run = spawn_lines_from_fifo("rev", in, out, log);
	fd = fifo_open_writer(in);
	ck_assert(write(fd, "abc\n", 4) == 4);
	wait_file(out, "cba\n", 1);
	ck_assert(write(fd, "12", 2) == 2);
	ck_assert(write(fd, "3\n", 2) == 2);
	wait_file(out, "321\n", 1);
	close(fd);
	ck_assert_int_eq(reap(run), 0);
	s = harness_read_file(out);
	ck_assert_str_eq(s, "cba\n321\n");
	free(s);
	s = harness_read_file(log);
	ck_assert_str_eq(s, "");
	free(s);
	free(in);
	free(out);
	free(log);
}
END_TEST

/* Ctrl-C: reading stops, running jobs are cancelled, counts, exit 3. */
START_TEST(lines_sigint_cancels_running_jobs)
{
	char	*in = path_of("in"), *out = path_of("out");
	char	*log = path_of("log"), *pids = path_of("pids"), *cmd, *s, *p;
	pid_t	 run, job1, job2;
	int	 fd, status;

	ck_assert(mkfifo(in, 0600) == 0);
	ck_assert(asprintf(&cmd, "echo $$ >> %s; exec sleep 30", pids) > 0);
	start_broker(NULL);
	start_worker("slow", cmd, 2);
	run = spawn_lines_from_fifo("slow", in, out, log);
	fd = fifo_open_writer(in);
	ck_assert(write(fd, "a\nb\n", 4) == 4);
	wait_file(pids, "\n", 2);
	s = harness_read_file(pids);
	job1 = (pid_t)strtol(s, &p, 10);
	job2 = (pid_t)strtol(p, NULL, 10);
	free(s);
	ck_assert(job1 > 1 && job2 > 1);

	status = harness_kill(run, SIGINT);
	close(fd);
	ck_assert_msg(WIFEXITED(status), "run did not exit (status %d)",
	    status);
	s = harness_read_file(log);
	ck_assert_msg(WEXITSTATUS(status) == 3, "run exited %d: %s",
	    WEXITSTATUS(status), s);
	ck_assert_str_eq(s, "patchbay: slow: 2 jobs: 0 OK, 2 CANCELLED "
	    "(interrupted)\n");
	free(s);
	s = harness_read_file(out);
	ck_assert_str_eq(s, "\n\n");
	free(s);
	assert_gone(job1, "the first cancelled command");
	assert_gone(job2, "the second cancelled command");
	free(cmd);
	free(pids);
	free(in);
	free(out);
	free(log);
}
END_TEST

/* The batch options: their values, and what they cannot go with. */
START_TEST(usage_lines_options)
{
	static const char *const	 bad[] = { "0", "65536", "x", "-1",
					    "" };
	char				*err, want[96];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn",
		    "--lines", "--in-flight", bad[i], NULL), 2);
		snprintf(want, sizeof want, "patchbay run: bad --in-flight "
		    "'%s': expected an integer from 1 to 65535\n", bad[i]);
		ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
		free(err);
	}
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn", "--lines",
	    "-j", NULL), 2);
	ck_assert_msg(strstr(err, "option '-j' needs a value") != NULL, "%s",
	    err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn", "data",
	    "--lines", NULL), 2);
	ck_assert_msg(strstr(err, "--lines reads the payloads from stdin: it "
	    "takes no DATA argument (got 'data')") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn", "--unordered",
	    NULL), 2);
	ck_assert_msg(strstr(err, "--unordered only applies with --lines") !=
	    NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn", "x",
	    "--in-flight", "4", NULL), 2);
	ck_assert_msg(strstr(err, "--in-flight only applies with --lines") !=
	    NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn", "--lines",
	    "--detach", "--unordered", NULL), 2);
	ck_assert_msg(strstr(err, "--unordered cannot be used with --detach")
	    != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "fn", "--lines",
	    "--progress", NULL), 2);
	ck_assert_msg(strstr(err, "--progress cannot be used with --lines") !=
	    NULL, "%s", err);
	free(err);
}
END_TEST

/* ---- worker ------------------------------------------------------------- */

/* The command sees the job's id, function and attempt. */
START_TEST(worker_sets_the_environment)
{
	char	*out, *err;

	start_broker(NULL);
	start_worker("env", "printf '%s %s %s' \"$PATCHBAY_FUNCTION\" "
	    "\"$PATCHBAY_ATTEMPT\" \"$PATCHBAY_JOB_ID\"", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "env", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strncmp(out, "env 1 ", 6) == 0 && strlen(out) == 42 &&
	    is_uuid(out + 6), "the command printed '%s' (stderr %s)", out,
	    err);
	free(out);
	free(err);
}
END_TEST

/* --capacity 2: two jobs run at the same time. */
START_TEST(worker_runs_up_to_capacity_at_once)
{
	char	*gate1 = path_of("gate-one"), *gate2 = path_of("gate-two");
	char	*trace = path_of("trace");
	char	*log1 = path_of("run1.log"), *log2 = path_of("run2.log");
	char	*cmd, *s;
	pid_t	 r1, r2;

	/* One gate per job (named by its payload): one reader per FIFO. */
	ck_assert(mkfifo(gate1, 0600) == 0);
	ck_assert(mkfifo(gate2, 0600) == 0);
	ck_assert(asprintf(&cmd, "p=$(cat); echo start >> %s; "
	    "read x < %s/gate-$p; printf %%s \"$p\"", trace, dir) > 0);
	start_broker(NULL);
	start_worker("par", cmd, 2);
	r1 = spawn_run(log1, "par", "one", NULL);
	r2 = spawn_run(log2, "par", "two", NULL);
	/* Both started before either was let go. */
	wait_file(trace, "start", 2);
	gate_open(gate2);
	gate_open(gate1);
	ck_assert_int_eq(reap(r1), 0);
	ck_assert_int_eq(reap(r2), 0);
	s = harness_read_file(log1);
	ck_assert_str_eq(s, "one");
	free(s);
	s = harness_read_file(log2);
	ck_assert_str_eq(s, "two");
	free(s);
	free(cmd);
	free(gate1);
	free(gate2);
	free(trace);
	free(log1);
	free(log2);
}
END_TEST

/*
 * The first SIGTERM drains: the worker takes no new job (a --nowait run
 * gets NO_WORKER although a slot is free), the running one finishes OK,
 * and the worker exits 0 by itself.
 */
START_TEST(worker_sigterm_finishes_running_jobs)
{
	char	*pidfile = path_of("pid"), *log = path_of("run.log"), *cmd;
	char	*wlog, *s, *out;
	pid_t	 run, w;
	int	 status;

	ck_assert(asprintf(&cmd, "echo $$ > %s; sleep 1; echo finished",
	    pidfile) > 0);
	start_broker(NULL);
	w = start_worker("slow", cmd, 2);
	ck_assert(asprintf(&wlog, "%s/worker-0.log", dir) > 0);
	run = spawn_run(log, "slow", "x", NULL);
	(void)read_pid(pidfile);

	kill(w, SIGTERM);
	wait_file(wlog, "finishing 1 running job, taking no new ones", 1);
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "run", "slow", "y",
	    "--nowait", "--broker", broker.unix_ep, NULL), 6);
	ck_assert_int_eq(reap(run), 0);
	s = harness_read_file(log);
	ck_assert_str_eq(s, "finished\n");
	free(s);
	status = harness_kill_within(w, 0, WAIT_MS);
	nworkers--;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the worker ended with status %d", status);
	s = harness_read_file(wlog);
	ck_assert_msg(strstr(s, "the running jobs are done: stopping") != NULL,
	    "%s", s);
	free(s);
	/* Nothing is left serving: a new job has no worker. */
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "slow", "z",
	    "--nowait", "--broker", broker.unix_ep, NULL), 6);
	free(out);
	free(wlog);
	free(cmd);
	free(log);
	free(pidfile);
}
END_TEST

/* A second SIGTERM stops the running commands: the job is WORKER_LOST. */
START_TEST(worker_second_sigterm_stops_running_jobs)
{
	char	*pidfile = path_of("pid"), *log = path_of("run.log"), *cmd;
	char	*s, *wlog;
	pid_t	 pid, run, w;
	int	 status;

	ck_assert(asprintf(&cmd, "echo $$ > %s; exec sleep 30", pidfile) > 0);
	start_broker(NULL);
	w = start_worker("slow", cmd, 1);
	ck_assert(asprintf(&wlog, "%s/worker-0.log", dir) > 0);
	run = spawn_run(log, "slow", "x", NULL);
	pid = read_pid(pidfile);

	kill(w, SIGTERM);
	wait_file(wlog, "a second signal stops them", 1);
	status = harness_kill(w, SIGTERM);
	nworkers--;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the worker ended with status %d", status);
	assert_gone(pid, "the stopped worker's command");
	ck_assert_int_eq(reap(run), 5);
	s = harness_read_file(log);
	ck_assert_msg(strstr(s, "(WORKER_LOST)") != NULL, "%s", s);
	free(s);
	free(wlog);
	free(cmd);
	free(log);
	free(pidfile);
}
END_TEST

/* The broker restarts on the same socket: the worker comes back by itself. */
START_TEST(worker_reconnects_after_broker_restart)
{
	char	*out;

	start_broker(NULL);
	start_worker("rev", "rev", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "rev", "ab",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "ba");
	free(out);

	harness_broker_stop(&broker);
	harness_broker_start(&broker, NULL, true);
	/* Without --nowait the job waits for the worker to be back. */
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "rev", "cd",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "dc");
	free(out);
}
END_TEST

/*
 * However many jobs the worker answered, it is back as soon as a restarted
 * broker listens again: it used to push its reconnect tick 100 ms later per
 * answer, 150 s after 1,500 answers. (It has no polling tick any more: the
 * library says when it next needs a call.)
 */
START_TEST(worker_reconnects_after_many_answers)
{
	char			*in, *out;
	size_t			 len = 0;
	unsigned long long	 t0;

	start_broker(NULL);
	start_worker("cat", "cat", 8);
	ck_assert_ptr_nonnull(in = malloc(1500 * 8));
	for (int i = 0; i < 1500; i++)
		len += (size_t)sprintf(in + len, "%d\n", i);
	ck_assert_int_eq(cli(in, len, &out, NULL, "run", "cat", "--lines",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strstr(out, "1499") != NULL, "%.200s", out);
	free(out);
	free(in);

	harness_broker_stop(&broker);
	harness_broker_start(&broker, NULL, true);
	t0 = harness_now_ms();
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "cat", "back",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "back");
	free(out);
	ck_assert_msg(harness_now_ms() - t0 < 5000, "the worker took %llu ms "
	    "to come back", harness_now_ms() - t0);
}
END_TEST

/*
 * A job command writes progress lines to $PATCHBAY_PROGRESS_FD: each
 * reaches `patchbay run --progress` on stderr, in order, the last one
 * (written just before exiting, without a newline) before the result.
 */
START_TEST(worker_exec_progress_lines)
{
	char	*out, *err;

	start_broker(NULL);
	start_worker("prog", "for i in 1 2 3; do echo \"step $i\" "
	    ">&$PATCHBAY_PROGRESS_FD; sleep 0.1; done; "
	    "printf last >&$PATCHBAY_PROGRESS_FD; echo done", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "prog", "x",
	    "--progress", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "done\n");
	ck_assert_str_eq(err, "step 1\nstep 2\nstep 3\nlast");
	free(out);
	free(err);
	/* Without --progress nothing of it shows. */
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "prog", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
}
END_TEST

/* Condition: the file *arg names says the worker is waiting. */
static bool
file_has_waiting(void *arg)
{
	char	*s = harness_read_file(arg);
	bool	 ok = s != NULL && strstr(s, "waiting for the broker") != NULL;

	free(s);
	return ok;
}

/*
 * A worker started before its broker waits for it (boot order, a
 * container) and serves once it is up; with --connect-timeout it gives up
 * and exits 11 naming the wait; SIGTERM while waiting exits 0.
 */
START_TEST(worker_waits_for_a_broker_not_up_yet)
{
	const char	*argv[] = { harness_cli(), "worker", "rev", "--exec",
			    "rev", "--broker", NULL, NULL, NULL, NULL };
	char		*log = path_of("waiting.log"), *out, *err, *s;
	pid_t		 w;
	int		 status;

	harness_tmpdir(broker.dir, sizeof(broker.dir));
	snprintf(broker.unix_ep, sizeof(broker.unix_ep), "unix:%s/pb.sock",
	    broker.dir);
	argv[6] = broker.unix_ep;
	w = harness_spawn(argv, NULL, log);
	workers[nworkers++] = w;
	ck_assert(harness_wait_until(file_has_waiting, log, 5000));
	usleep(300000);
	ck_assert_int_eq(kill(w, 0), 0);	/* still there */
	harness_broker_start(&broker, NULL, true);
	broker_up = true;
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "rev", "ab",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "ba");
	free(out);
	s = harness_read_file(log);
	ck_assert_msg(strstr(s, "serving rev (capacity 1)") != NULL, "%s", s);
	free(s);

	/* --connect-timeout: a bounded wait, then 11. */
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "worker", "rev", "--exec",
	    "rev", "--broker", "unix:/nonexistent/pb.sock",
	    "--connect-timeout", "300ms", NULL), 11);
	ck_assert_msg(strstr(err, "no broker after 300ms (--connect-timeout)")
	    != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "worker", "rev", "--exec",
	    "rev", "--broker", "unix:/nonexistent/pb.sock",
	    "--connect-timeout", "0", NULL), 11);
	ck_assert_msg(strstr(err, "waiting") == NULL, "%s", err);
	free(err);

	/* SIGTERM while waiting: a clean stop. */
	free(log);
	log = path_of("waiting2.log");
	argv[6] = "unix:/nonexistent/pb.sock";
	w = harness_spawn(argv, NULL, log);
	ck_assert(harness_wait_until(file_has_waiting, log, 5000));
	status = harness_kill(w, SIGTERM);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "status %d", status);
	free(log);
}
END_TEST

/* ---- several brokers ------------------------------------------------------ */

/* The "submitted:" counter of `patchbay ctl status` at ep. */
static long
submitted_at(const char *ep)
{
	char	*out, *at;
	long	 n;

	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "ctl", "--broker", ep,
	    "status", NULL), 0);
	at = strstr(out, "\nsubmitted: ");
	ck_assert_msg(at != NULL, "%s", out);
	n = strtol(at + 12, NULL, 10);
	free(out);
	return n;
}

/*
 * `patchbay worker --broker A,B` serves both brokers; `patchbay run
 * --broker A,B` uses the first that answers, and the next one when the
 * first is gone; --spread spreads runs over both; PATCHBAY_BROKER may hold
 * the list; `run --lines` given a list goes on with the other broker after
 * losing one, its lines in flight reported DISCONNECTED.
 */
START_TEST(several_brokers_from_the_command_line)
{
	char	 list[700], env[720], needle[96], *out, *err, *log, *s;
	char	*in = path_of("in"), *res = path_of("out"), *rlog;
	const char *const envv[] = { env, NULL };
	const char *argv[] = { harness_cli(), "worker", "rev", "--exec", "rev",
			    "--capacity", "2", "--broker", list, NULL };
	const char *lines[] = { "/bin/sh", "-c", "exec \"$0\" run rev --lines "
			    "--broker \"$1\" < \"$2\" > \"$3\"", harness_cli(),
			    list, in, res, NULL };
	long	 a, b;
	pid_t	 w, run;
	int	 fd, st;

	start_broker(NULL);
	harness_broker_start(&broker2, NULL, false);
	broker2_up = true;
	snprintf(list, sizeof(list), "%s,%s", broker.unix_ep, broker2.unix_ep);
	log = path_of("worker.log");
	w = harness_spawn(argv, NULL, log);
	workers[nworkers++] = w;
	snprintf(needle, sizeof needle, "pid=%ld uid=%lu: registered",
	    (long)w, (unsigned long)getuid());
	ck_assert(harness_wait_log(&broker, needle, WAIT_MS));
	ck_assert(harness_wait_log(&broker2, needle, WAIT_MS));

	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "rev", "ab",
	    "--broker", list, NULL), 0);
	ck_assert_str_eq(out, "ba");
	free(out);
	ck_assert_int_eq(submitted_at(broker.unix_ep), 1);
	ck_assert_int_eq(submitted_at(broker2.unix_ep), 0);
	/* --spread: 20 runs land on both brokers (all on one: 2^-19). */
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "rev", "xy",
		    "--spread", "--broker", list, NULL), 0);
		ck_assert_str_eq(out, "yx");
		free(out);
	}
	a = submitted_at(broker.unix_ep);
	b = submitted_at(broker2.unix_ep);
	ck_assert_int_eq(a + b, 21);
	ck_assert_msg(a > 1 && b > 0, "A ran %ld, B ran %ld", a - 1, b);

	/* run --lines over the list: the first broker is lost midway. */
	ck_assert(mkfifo(in, 0600) == 0);
	rlog = path_of("lines.log");
	run = harness_spawn(lines, NULL, rlog);
	fd = fifo_open_writer(in);
	ck_assert(write(fd, "abc\n", 4) == 4);
	wait_file(res, "cba\n", 1);
	kill(broker.pid, SIGKILL);
	harness_broker_stop(&broker);
	broker_up = false;
	ck_assert(write(fd, "123\n", 4) == 4);
	ck_assert(write(fd, "456\n", 4) == 4);
	close(fd);
	st = reap(run);
	s = harness_read_file(res);
	err = harness_read_file(rlog);
	ck_assert_msg(strstr(err, "lost the connection to the broker") !=
	    NULL, "%s", err);
	/*
	 * The lines after the loss were run by the second broker; one sent
	 * before the loss was seen is DISCONNECTED (exit 11), not resent.
	 */
	if (strcmp(s, "cba\n321\n654\n") == 0)
		ck_assert_msg(st == 0, "exit %d: %s", st, err);
	else {
		ck_assert_str_eq(s, "cba\n\n654\n");
		ck_assert_msg(st == 11 && strstr(err, "1 DISCONNECTED") != NULL,
		    "exit %d: %s", st, err);
	}
	free(s);
	free(err);

	/* The first broker is gone: runs go to the second. */
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "rev", "cd",
	    "--broker", list, NULL), 0);
	ck_assert_str_eq(out, "dc");
	free(out);
	free(err);
	snprintf(env, sizeof(env), "PATCHBAY_BROKER=%s", list);
	ck_assert_int_eq(harness_run((const char *[]){ harness_cli(), "run",
	    "rev", "ef", NULL }, envv, NULL, 0, &out, NULL, RUN_MS), 0);
	ck_assert_str_eq(out, "fe");
	free(out);
	s = harness_read_file(log);
	snprintf(needle, sizeof needle, "lost the connection to the broker "
	    "at %s; reconnecting", broker.unix_ep);
	ck_assert_msg(strstr(s, needle) != NULL, "%s", s);
	free(s);
	free(log);
	free(rlog);
	free(in);
	free(res);
}
END_TEST

/*
 * Starts `patchbay worker` (argv) handed a connection to the broker in
 * $PATCHBAY_FD, as patchbayd starts the workers of its pools.
 */
static pid_t
start_inherited_worker(const char *const *argv)
{
	struct endpoint	 ep;
	char		 err[PROTO_ERRLEN], env[32];
	const char	*envv[] = { env, NULL };
	int		 fd;
	pid_t		 w;

	ck_assert_int_eq(endpoint_parse(broker.unix_ep, &ep, err), 0);
	ck_assert_int_eq(endpoint_connect(&ep, 5000, &fd), 0);
	ck_assert(fcntl(fd, F_SETFD, 0) == 0);	/* inherited by the worker */
	snprintf(env, sizeof env, "PATCHBAY_FD=%d", fd);
	w = harness_spawn(argv, envv, NULL);
	workers[nworkers++] = w;
	close(fd);
	return w;
}

/*
 * A worker handed its connection in $PATCHBAY_FD (as patchbayd spawns
 * them) serves on it, and exits 11 when it closes instead of reconnecting.
 */
START_TEST(worker_uses_inherited_descriptor)
{
	const char	*argv[] = { harness_cli(), "worker", "rev", "--exec",
			    "rev", NULL };
	char		*out;
	int		 status;
	pid_t		 w;

	start_broker(NULL);
	w = start_inherited_worker(argv);

	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "rev", "xyz",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "zyx");
	free(out);

	harness_broker_stop(&broker);
	broker_up = false;
	status = harness_kill(w, 0);
	nworkers--;
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 11,
	    "the worker ended with status %d", status);
}
END_TEST

/*
 * A job's command has its three pipes and its progress pipe (3, named by
 * PATCHBAY_PROGRESS_FD) and nothing else: not a descriptor the worker
 * inherited without close-on-exec, not the worker's own.
 */
START_TEST(worker_job_sees_only_its_descriptors)
{
	char	*out, *err;
	int	 stray;

	start_broker(NULL);
	stray = open("/dev/null", O_RDONLY);	/* the worker inherits it */
	ck_assert_int_gt(stray, 2);
	/* The shell's own table, listed by a child of the shell. */
	start_worker("fds", "ls /proc/$$/fd; true", 1);
	close(stray);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "fds", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strcmp(out, "0\n1\n2\n3\n") == 0, "the command had "
	    "descriptors %s(stderr %s)", out, err);
	free(out);
	free(err);
}
END_TEST

/*
 * The command's environment has the job's PATCHBAY_* variables, and not
 * the PATCHBAY_FD the worker itself was started with.
 */
START_TEST(worker_job_environment_is_the_jobs)
{
	const char	*argv[] = { harness_cli(), "worker", "envfn", "--exec",
			    "env | sed -n 's/^\\(PATCHBAY_[A-Z_]*\\)=.*/\\1/p' | "
			    "grep -E '^PATCHBAY_(FD|JOB_ID|FUNCTION|ATTEMPT|"
			    "TIMEOUT_MS)$' | sort; "
			    "t=$PATCHBAY_TIMEOUT_MS; test $t -gt 0 -a $t -le 7000 && "
			    "printf 'timeout ok'", NULL };
	char		*out;

	start_broker(NULL);
	start_inherited_worker(argv);

	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "run", "envfn", "x",
	    "--timeout", "7000", "--broker", broker.unix_ep, NULL), 0);
	/* The time left of the job's 7 s, in ms. */
	ck_assert_str_eq(out, "PATCHBAY_ATTEMPT\nPATCHBAY_FUNCTION\n"
	    "PATCHBAY_JOB_ID\nPATCHBAY_TIMEOUT_MS\ntimeout ok");
	free(out);
}
END_TEST

/* A command that cannot be executed: ERROR naming it and the reason. */
START_TEST(worker_command_cannot_be_executed)
{
	char	*noexec = path_of("not-executable"), *out, *err;
	int	 fd;

	fd = open(noexec, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ne(fd, -1);
	close(fd);
	start_broker(NULL);
	start_worker("missing", "/nonexistent/cmd arg", 1);
	start_worker("noexec", noexec, 1);

	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "missing", "x",
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_str_eq(out, "");
	ck_assert_msg(strncmp(err, "patchbay: missing: ", 19) == 0 &&
	    strstr(err, "/nonexistent/cmd") != NULL &&
	    strstr(err, "not found") != NULL, "%s", err);
	free(out);
	free(err);

	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "noexec", "x",
	    "--broker", broker.unix_ep, NULL), 1);
	ck_assert_msg(strstr(err, noexec) != NULL &&
	    strstr(err, "Permission denied") != NULL, "%s", err);
	free(out);
	free(err);
	free(noexec);
}
END_TEST

/* Counts the statuses of the results of worker_survives_cancel_storm. */
struct storm {
	unsigned	 n[PB_DISCONNECTED + 1];
	unsigned	 total;
};

/* pb_result_fn of worker_survives_cancel_storm: counts one result. */
static void
storm_result(struct pb_client *c, struct pb_result *r, void *arg)
{
	struct storm	*st = arg;

	(void)c;
	if ((unsigned)r->status <= PB_DISCONNECTED)
		st->n[r->status]++;
	st->total++;
	pb_result_free(r);
}

/*
 * A RUN followed at once by its CANCEL, or by a broker TIMEOUT landing just
 * after dispatch, over and over: the SIGTERM meant for the job's process
 * group must never be taken by the worker for its own stop. Each job is
 * answered CANCELLED (or TIMEOUT) and the worker is still serving after.
 */
START_TEST(worker_survives_cancel_storm)
{
	struct pb_run_options	 opts;
	struct pb_client	*c;
	struct pb_result	*r;
	struct storm		 st;
	unsigned long long	 deadline;
	uint8_t			 id[PB_ID_LEN];
	char			*log, *s;
	const int		 ncancel = 300, ntimeout = 100;
	int			 i, status;
	pid_t			 w;

	start_broker(NULL);
	w = start_worker("storm", "read -r x; if [ \"$x\" = hold ]; then "
	    "exec sleep 30; fi; printf done", 4);
	ck_assert_int_eq(pb_client_connect(broker.unix_ep, NULL, &c), 0);
	memset(&st, 0, sizeof(st));
	for (i = 0; i < ncancel + ntimeout; i++) {
		memset(&opts, 0, sizeof(opts));
		if (i >= ncancel)
			opts.timeout_ms = 1 + (uint32_t)(i % 3);
		ck_assert_int_eq(pb_client_submit(c, "storm", "hold", 4, &opts,
		    storm_result, NULL, &st, id), 0);
		if (i < ncancel)
			ck_assert_int_eq(pb_client_cancel(c, id), 0);
		/* Keep the worker busy but let the answers flow. */
		while (pb_client_pending(c) >= 8)
			ck_assert_int_ge(pb_client_dispatch(c, 1000), 0);
	}
	deadline = harness_now_ms() + WAIT_MS;
	while (pb_client_pending(c) > 0 && harness_now_ms() < deadline)
		ck_assert_int_ge(pb_client_dispatch(c, 100), 0);

	ck_assert(asprintf(&log, "%s/worker-0.log", dir) > 0);
	s = harness_read_file(log);
	ck_assert_msg(waitpid(w, &status, WNOHANG) == 0, "the worker exited "
	    "(status %d) during the cancel storm; its log: %s", status, s);
	ck_assert_msg(strstr(s, "stopping") == NULL, "the worker took a job's "
	    "SIGTERM for its own: %s", s);
	ck_assert_uint_eq(st.total, (unsigned)(ncancel + ntimeout));
	ck_assert_msg(st.n[PB_CANCELLED] == (unsigned)ncancel &&
	    st.n[PB_TIMEOUT] == (unsigned)ntimeout, "CANCELLED %u of %d, "
	    "TIMEOUT %u of %d, WORKER_LOST %u, DISCONNECTED %u",
	    st.n[PB_CANCELLED], ncancel, st.n[PB_TIMEOUT], ntimeout,
	    st.n[PB_WORKER_LOST], st.n[PB_DISCONNECTED]);

	/* And it still serves. */
	ck_assert_int_eq(pb_client_run(c, "storm", "quick", 5, NULL, &r), 0);
	ck_assert_int_eq(r->status, PB_OK);
	ck_assert_uint_eq(r->len, 4);
	ck_assert(memcmp(r->payload, "done", 4) == 0);
	pb_result_free(r);
	pb_client_free(c);
	free(s);
	free(log);
}
END_TEST

/* ---- ctl ---------------------------------------------------------------- */

/* `ctl status --json` is JSON that python parses. */
START_TEST(ctl_status_json_parses)
{
	const char	*py[] = { "/usr/bin/env", "python3", "-c",
			    "import json,sys; d=json.load(sys.stdin); "
			    "assert isinstance(d, dict)", NULL };
	char		*out, *err;
	int		 status;

	start_broker(NULL);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "ctl", "status", "--json",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(err, "");
	free(err);
	status = harness_run(py, NULL, out, strlen(out), NULL, &err, RUN_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "not JSON (%s): %s", err, out);
	free(out);
	free(err);
}
END_TEST

/* `ctl workers`: a table whose rows name the worker's functions. */
START_TEST(ctl_workers_table)
{
	char	*out;

	start_broker(NULL);
	start_worker("rev,tac", "rev", 3);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "ctl", "workers",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_msg(strchr(out, '\n') != NULL &&
	    strstr(strchr(out, '\n'), "rev,tac") != NULL,
	    "no row with the functions: %s", out);
	free(out);
}
END_TEST

/* A refusal by the broker: exit 1 and its reason. */
START_TEST(ctl_refusal_exits_1)
{
	char	*err;

	start_broker(NULL);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "pause",
	    "no-such-thing", "--broker", broker.unix_ep, NULL), 1);
	ck_assert_msg(strncmp(err, "patchbay ctl: ", 14) == 0 &&
	    strlen(err) > 15, "%s", err);
	free(err);
}
END_TEST

/* Admin over TCP is refused by the broker: exit 11 with its sentence. */
START_TEST(ctl_over_tcp_is_refused)
{
	char	*err;

	start_broker(NULL);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "status",
	    "--broker", broker.tcp_ep, NULL), 11);
	ck_assert_msg(strstr(err, "unix socket") != NULL, "%s", err);
	free(err);
}
END_TEST

/* Verbs and their arguments are checked before connecting. */
START_TEST(ctl_usage_errors)
{
	char	*err;

	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "frobnicate", NULL),
	    2);
	ck_assert_msg(strncmp(err, "patchbay ctl: unknown verb 'frobnicate' "
	    "(verbs: status", 54) == 0, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "stop", NULL), 2);
	ck_assert_msg(strstr(err, "missing the ID") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "status", "--force",
	    NULL), 2);
	ck_assert_msg(strstr(err, "'--force' does not apply to 'status'") !=
	    NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "stop", "w1",
	    "--timeout", "10x", NULL), 2);
	ck_assert_msg(strstr(err, "bad --timeout '10x'") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "spawn", "w1", "--",
	    NULL), 2);
	ck_assert_msg(strstr(err, "missing the command") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "scale", "pool",
	    "many", NULL), 2);
	ck_assert_msg(strstr(err, "'many'") != NULL, "%s", err);
	free(err);
}
END_TEST

/* ---- usage -------------------------------------------------------------- */

/* Bad values are refused with exit 2 and a sentence naming them. */
/* The sentence every place prints for a duration it cannot read. */
#define BAD_DURATION	"expected a duration such as 250ms, 10s, 5m, 2h or " \
			"1d, a bare number being milliseconds (got '300x')"

/* Fetches `ctl status --json` of the test's broker (caller frees). */
static char *
status_json(void)
{
	char	*out;

	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "ctl", "--json", "status",
	    "--broker", broker.unix_ep, NULL), 0);
	return out;
}

/*
 * One grammar: the same duration and size strings mean the same thing to a
 * patchbayd flag, a config key, a ctl argument and `patchbay run`, and a
 * bad one is refused with the same sentence by all four.
 */
START_TEST(grammar_same_in_flags_config_ctl_and_run)
{
	const char	*flags[] = { "--heartbeat", "300", "--max-frame", "64KiB",
			    NULL };
	const char	*bad_flag[] = { harness_patchbayd(), "--heartbeat",
			    "300x", NULL };
	const char	*bad_conf_argv[] = { harness_patchbayd(), "-c", NULL,
			    NULL };
	char		*conf = path_of("grammar.conf"), *bad = path_of("bad.conf");
	const char	*conf_flags[] = { "-c", conf, NULL };
	char		*out, *err;
	FILE		*f;
	int		 status;

	/* A flag: 300 is 300 ms, 64KiB is 65536 bytes. */
	start_broker(flags);
	out = status_json();
	ck_assert_msg(strstr(out, "\"heartbeat_ms\": 300,") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"max_frame\": 65536,") != NULL, "%s", out);
	free(out);
	harness_broker_stop(&broker);
	broker_up = false;

	/* A config key: the same strings, the same values. */
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	fputs("[broker]\nheartbeat = 300\nmax_frame = 64KiB\n", f);
	ck_assert_int_eq(fclose(f), 0);
	start_broker(conf_flags);
	out = status_json();
	ck_assert_msg(strstr(out, "\"heartbeat_ms\": 300,") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\"max_frame\": 65536,") != NULL, "%s", out);
	free(out);

	/* A ctl argument: stop --timeout 300 and 300ms are both accepted. */
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "ctl", "spawn", "nap",
	    "--broker", broker.unix_ep, "--", "sleep", "100", NULL), 0);
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "ctl", "stop", "nap",
	    "--timeout", "300", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "ctl", "restart", "nap",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_int_eq(cli(NULL, 0, NULL, NULL, "ctl", "stop", "nap",
	    "--timeout", "300ms", "--broker", broker.unix_ep, NULL), 0);

	/* patchbay run: --timeout 300 is 300 ms, not 300 s. */
	start_worker("slow", "exec sleep 5", 1);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "slow", "x",
	    "--timeout", "300", "--broker", broker.unix_ep, NULL), 4);
	ck_assert_str_eq(err, "patchbay: slow: timed out after 300 ms "
	    "(TIMEOUT)\n");
	free(err);

	/* A bad string gets the same sentence from all four. */
	status = harness_run(bad_flag, NULL, NULL, 0, NULL, &err, RUN_MS);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "--heartbeat: " BAD_DURATION) != NULL, "%s",
	    err);
	free(err);
	ck_assert_ptr_nonnull(f = fopen(bad, "w"));
	fputs("[broker]\nheartbeat = 300x\n", f);
	ck_assert_int_eq(fclose(f), 0);
	bad_conf_argv[2] = bad;
	status = harness_run(bad_conf_argv, NULL, NULL, 0, NULL, &err, RUN_MS);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "key 'heartbeat': " BAD_DURATION) != NULL,
	    "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "ctl", "stop", "nap",
	    "--timeout", "300x", "--broker", broker.unix_ep, NULL), 2);
	ck_assert_msg(strstr(err, "bad --timeout '300x': expected a duration "
	    "such as 250ms, 10s, 5m, 2h or 1d, a bare number being "
	    "milliseconds\n") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "slow", "x",
	    "--timeout", "300x", "--broker", broker.unix_ep, NULL), 2);
	ck_assert_msg(strstr(err, "bad --timeout '300x': expected a duration "
	    "such as 250ms, 10s, 5m, 2h or 1d, a bare number being "
	    "milliseconds\n") != NULL, "%s", err);
	free(err);
	free(conf);
	free(bad);
}
END_TEST

START_TEST(usage_bad_values_are_named)
{
	char	*err;

	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "--priority", "500",
	    "rev", "x", NULL), 2);
	ck_assert_msg(strncmp(err, "patchbay run: bad --priority '500': ",
	    36) == 0, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "rev", "--timeout",
	    "soon", NULL), 2);
	ck_assert_msg(strstr(err, "bad --timeout 'soon'") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "rev", "--timeout",
	    NULL), 2);
	ck_assert_msg(strstr(err, "option '--timeout' needs a value") != NULL,
	    "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "--frob", "rev",
	    NULL), 2);
	ck_assert_msg(strstr(err, "unknown option '--frob'") != NULL, "%s",
	    err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", NULL), 2);
	ck_assert_msg(strstr(err, "missing the function name") != NULL, "%s",
	    err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "rev", "x",
	    "--broker", "http://example", NULL), 2);
	ck_assert_msg(strstr(err, "bad --broker 'http://example'") != NULL,
	    "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "worker", "rev", NULL), 2);
	ck_assert_msg(strstr(err, "missing --exec") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "worker", "rev", "--exec",
	    "rev", "--capacity", "0", NULL), 2);
	ck_assert_msg(strstr(err, "bad --capacity '0'") != NULL, "%s", err);
	free(err);
}
END_TEST

/* Unknown commands, --version, --help and `help CMD`. */
START_TEST(usage_commands_and_help)
{
	char	*out, *err;

	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "frob", NULL), 2);
	ck_assert_msg(strncmp(err, "patchbay: unknown command 'frob'", 32) ==
	    0, "%s", err);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "--version", NULL), 0);
	ck_assert_str_eq(out, "patchbay " PATCHBAY_VERSION "\n");
	free(out);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "--help", NULL), 0);
	ck_assert_msg(strstr(out, "Usage: patchbay COMMAND") != NULL, "%s",
	    out);
	free(out);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "help", "run", NULL), 0);
	ck_assert_msg(strncmp(out, "Usage: patchbay run ", 20) == 0, "%s",
	    out);
	free(out);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "worker", "--help", NULL),
	    0);
	ck_assert_msg(strncmp(out, "Usage: patchbay worker ", 23) == 0, "%s",
	    out);
	free(out);
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "ctl", "-h", NULL), 0);
	ck_assert_msg(strncmp(out, "Usage: patchbay ctl ", 20) == 0, "%s",
	    out);
	free(out);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "help", "frob", NULL), 2);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, NULL), 2);
	free(err);
}
END_TEST

/* ---- meta --------------------------------------------------------------- */

#define TP_GIVEN	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/*
 * The example: `run --meta foo=bar --trace --json` against a
 * `worker --exec` whose command echoes its PATCHBAY_META_* and TRACEPARENT:
 * one JSON object with the status, attempts, payload and the meta sent,
 * the generated traceparent among it, and the command saw the same.
 */
START_TEST(meta_run_json_reaches_the_exec_command)
{
	char	*out, *err;

	unsetenv("TRACEPARENT");
	unsetenv("TRACESTATE");
	start_broker(NULL);
	start_worker("m", "printf '%s|%s|%s|%s' \"$PATCHBAY_META_FOO\" "
	    "\"$PATCHBAY_META_REQ_ID\" \"$TRACEPARENT\" "
	    "\"${TRACESTATE-unset}\"", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "m", "--meta",
	    "foo=bar", "--meta", "req.id=r=7", "--trace", "--json", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(err, "");
	ck_assert_msg(strchr(out, '\n') == out + strlen(out) - 1,
	    "not one line: %s", out);
	check_json(out,
	    "assert set(d) == {'id', 'function', 'status', 'attempts', "
	    "'payload', 'payload_encoding', 'meta', 'error'}, d\n"
	    "assert d['status'] == 'OK' and d['attempts'] == 1, d\n"
	    "assert d['function'] == 'm' and d['error'] is None, d\n"
	    "assert re.fullmatch('[0-9a-f-]{36}', d['id']), d\n"
	    "m = d['meta']\n"
	    "assert list(m) == ['foo', 'req.id', 'traceparent'], m\n"
	    "assert m['foo'] == 'bar' and m['req.id'] == 'r=7', m\n"
	    "tp = m['traceparent']\n"
	    "assert re.fullmatch('00-[0-9a-f]{32}-[0-9a-f]{16}-01', tp), tp\n"
	    "assert d['payload_encoding'] == 'utf-8', d\n"
	    "assert d['payload'] == 'bar|r=7|' + tp + '|unset', d");
	free(out);
	free(err);
}
END_TEST

/*
 * The trace context of the environment is passed on, as a traced shell
 * (or a job command running `patchbay run`) expects; a job without one
 * does not get the worker's own; --meta traceparent= wins; a $TRACEPARENT
 * that is no traceparent is ignored with a warning, and --trace then
 * starts a new trace.
 */
START_TEST(meta_environment_trace_context_is_passed_on)
{
	const char	*wenv[] = { "TRACEPARENT=00-11111111111111111111111111"
			    "111111-1111111111111111-01", "TRACESTATE=stale=1",
			    "PATCHBAY_META_OLD=stale", NULL };
	const char	*traced[] = { "TRACEPARENT=" TP_GIVEN,
			    "TRACESTATE=congo=t61rcWkgMzE", NULL };
	const char	*bogus[] = { "TRACEPARENT=garbage",
			    "TRACESTATE=congo=1", NULL };
	char		*out, *err;

	unsetenv("TRACEPARENT");
	unsetenv("TRACESTATE");
	start_broker(NULL);
	start_worker_env("tp", "printf '%s|%s|%s' \"$TRACEPARENT\" "
	    "\"${TRACESTATE-unset}\" \"${PATCHBAY_META_OLD-unset}\"", 1,
	    wenv);

	ck_assert_int_eq(cli_env(traced, &out, &err, "run", "tp", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, TP_GIVEN "|congo=t61rcWkgMzE|unset");
	ck_assert_str_eq(err, "");
	free(out);
	free(err);

	ck_assert_int_eq(cli_env(NULL, &out, NULL, "run", "tp", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "|unset|unset");
	free(out);

	ck_assert_int_eq(cli_env(traced, &out, NULL, "run", "tp", "x",
	    "--meta", "traceparent=00-22222222222222222222222222222222-"
	    "2222222222222222-00", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(out, "00-22222222222222222222222222222222-"
	    "2222222222222222-00|unset|unset");
	free(out);

	ck_assert_int_eq(cli_env(bogus, &out, &err, "run", "tp", "x",
	    "--trace", "--broker", broker.unix_ep, NULL), 0);
	ck_assert_str_eq(err, "patchbay: run: ignoring $TRACEPARENT "
	    "'garbage': not a W3C traceparent\n");
	ck_assert_msg(strlen(out) == 55 + strlen("|unset|unset") &&
	    strncmp(out, "00-", 3) == 0 && strstr(out, "garbage") == NULL &&
	    strcmp(out + 55, "|unset|unset") == 0, "got %s", out);
	free(out);
	free(err);
}
END_TEST

/* Condition: `ctl jobs` (for people) shows the text arg. */
static bool
jobs_show(void *arg)
{
	char	*out = NULL;
	bool	 found;

	found = cli(NULL, 0, &out, NULL, "ctl", "jobs", "--broker",
	    broker.unix_ep, NULL) == 0 && strstr(out, arg) != NULL;
	free(out);
	return found;
}

/* `ctl jobs` shows a running job's meta, in its table and its JSON. */
START_TEST(meta_ctl_jobs_shows_a_running_jobs_meta)
{
	char	*gate = path_of("gate"), *log = path_of("run.log");
	char	*cmd, *out;
	pid_t	 r;

	ck_assert(mkfifo(gate, 0600) == 0);
	ck_assert(asprintf(&cmd, "read x < %s; printf done", gate) > 0);
	start_broker(NULL);
	start_worker("held", cmd, 1);
	r = spawn_run(log, "held", "--meta", "tenant=t1", "--meta",
	    "build.id=b-9", "x", NULL);
	ck_assert_msg(harness_wait_until(jobs_show, "tenant=t1,build.id=b-9",
	    WAIT_MS), "ctl jobs never showed the job's meta");
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "ctl", "jobs", "--json",
	    "--broker", broker.unix_ep, NULL), 0);
	check_json(out,
	    "(j,) = d['jobs']\n"
	    "assert j['state'] == 'running' and j['function'] == 'held', j\n"
	    "assert j['meta'] == {'tenant': 't1', 'build.id': 'b-9'}, j");
	free(out);
	gate_open(gate);
	ck_assert_int_eq(reap(r), 0);
	out = harness_read_file(log);
	ck_assert_str_eq(out, "done");
	free(out);
	/* A job without meta shows an empty map. */
	r = spawn_run(log, "held", "y", NULL);
	ck_assert_msg(harness_wait_until(jobs_show, "running", WAIT_MS),
	    "the second job never ran");
	ck_assert_int_eq(cli(NULL, 0, &out, NULL, "ctl", "jobs", "--json",
	    "--broker", broker.unix_ep, NULL), 0);
	check_json(out, "assert d['jobs'][0]['meta'] == {}, d");
	free(out);
	gate_open(gate);
	ck_assert_int_eq(reap(r), 0);
	free(cmd);
	free(gate);
	free(log);
}
END_TEST

/*
 * --json for a payload that is not UTF-8 (base64, and says so) and for a
 * failed job (its error, the exit status of ERROR, nothing on stderr).
 */
START_TEST(meta_run_json_binary_payload_and_failure)
{
	char	*out, *err;

	start_broker(NULL);
	start_worker("bin", "printf '\\377\\376x'", 1);
	start_worker("boom", "echo boom >&2; exit 3", 1);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "bin", "--json", "x",
	    "--broker", broker.unix_ep, NULL), 0);
	check_json(out, "assert d['payload_encoding'] == 'base64', d\n"
	    "assert d['payload'] == '//54' and d['meta'] == {}, d");
	free(out);
	free(err);
	ck_assert_int_eq(cli(NULL, 0, &out, &err, "run", "boom", "--json",
	    "x", "--broker", broker.unix_ep, NULL), 1);
	ck_assert_str_eq(err, "");
	check_json(out, "assert d['status'] == 'ERROR', d\n"
	    "assert d['error'] == 'boom' and d['payload'] == '', d");
	free(out);
	free(err);
}
END_TEST

/* A --meta the broker would refuse is a usage error, before connecting. */
START_TEST(meta_usage_errors)
{
	static char	 kv[33][8];
	const char	*argv[80];
	char		*err;
	int		 n = 0, status;

	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "f", "--meta",
	    "novalue", "x", "--broker", "unix:/nonexistent", NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "patchbay run: bad --meta "
	    "'novalue': expected KEY=VALUE"));
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "f", "--meta",
	    "a b=1", "x", "--broker", "unix:/nonexistent", NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "patchbay run: bad --meta: meta "
	    "key 'a b' may only hold A-Z a-z 0-9 _ . - (byte 1 is not one)"));
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "f", "--meta",
	    "traceparent=00-1-2-01", "x", NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "is not a W3C traceparent"));
	free(err);
	ck_assert_int_eq(cli(NULL, 0, NULL, &err, "run", "f", "--json",
	    "--detach", "x", NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "--json cannot be used with "
	    "--detach"));
	free(err);

	argv[n++] = harness_cli();
	argv[n++] = "run";
	for (int i = 0; i < 33; i++) {
		snprintf(kv[i], sizeof kv[i], "k%d=v", i);
		argv[n++] = "--meta";
		argv[n++] = kv[i];
	}
	argv[n++] = "f";
	argv[n++] = "x";
	argv[n] = NULL;
	status = harness_run(argv, NULL, NULL, 0, NULL, &err, RUN_MS);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_ptr_nonnull(strstr(err, "meta has 33 keys, more than 32"));
	free(err);
}
END_TEST

/* The suite: one TCase per feature. */
static Suite *
cli_suite(void)
{
	Suite	*s = suite_create("cli");
	TCase	*tc;

	tc = tcase_create("run");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, run_example_both_transports);
	tcase_add_test(tc, run_data_argument_or_stdin);
	tcase_add_test(tc, run_binary_payload_round_trips);
	tcase_add_test(tc, run_large_payload_does_not_deadlock);
	tcase_add_test(tc, run_failing_command_reports_stderr);
	tcase_add_test(tc, run_timeout_kills_the_command);
	tcase_add_test(tc, run_sigint_cancels_the_job);
	tcase_add_test(tc, run_worker_killed_mid_job);
	tcase_add_test(tc, run_client_killed_worker_sees_cancel);
	tcase_add_test(tc, run_waits_in_the_queue);
	tcase_add_test(tc, run_priority_orders_the_queue);
	tcase_add_test(tc, run_progress_goes_to_stderr);
	tcase_add_test(tc, run_nowait_without_worker);
	tcase_add_test(tc, run_cannot_connect);
	suite_add_tcase(s, tc);

	tc = tcase_create("lines");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, lines_ordered_output_matches_input);
	tcase_add_test(tc, lines_unordered_numbers_every_line_once);
	tcase_add_test(tc, lines_empty_lines_and_last_line);
	tcase_add_test(tc, lines_empty_input);
	tcase_add_test(tc, lines_null_round_trips_newlines);
	tcase_add_test(tc, lines_failures_keep_their_lines);
	tcase_add_test(tc, lines_detach_prints_ids);
	tcase_add_test(tc, run_detach_reports_refusals);
	tcase_add_test(tc, run_delay_and_at);
	tcase_add_test(tc, job_status_and_wait);
	tcase_add_test(tc, retry_on_error_dead_kick_drop);
	tcase_add_test(tc, run_unique_detached_joins);
	tcase_add_test(tc, lines_streams_before_end_of_input);
	tcase_add_test(tc, lines_sigint_cancels_running_jobs);
	suite_add_tcase(s, tc);

	tc = tcase_create("worker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, worker_sets_the_environment);
	tcase_add_test(tc, worker_runs_up_to_capacity_at_once);
	tcase_add_test(tc, worker_sigterm_finishes_running_jobs);
	tcase_add_test(tc, worker_second_sigterm_stops_running_jobs);
	tcase_add_test(tc, worker_reconnects_after_broker_restart);
	tcase_add_test(tc, worker_reconnects_after_many_answers);
	tcase_add_test(tc, worker_waits_for_a_broker_not_up_yet);
	tcase_add_test(tc, several_brokers_from_the_command_line);
	tcase_add_test(tc, worker_exec_progress_lines);
	tcase_add_test(tc, worker_uses_inherited_descriptor);
	tcase_add_test(tc, worker_job_sees_only_its_descriptors);
	tcase_add_test(tc, worker_job_environment_is_the_jobs);
	tcase_add_test(tc, worker_command_cannot_be_executed);
	tcase_add_test(tc, worker_survives_cancel_storm);
	suite_add_tcase(s, tc);

	tc = tcase_create("meta");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, meta_run_json_reaches_the_exec_command);
	tcase_add_test(tc, meta_environment_trace_context_is_passed_on);
	tcase_add_test(tc, meta_ctl_jobs_shows_a_running_jobs_meta);
	tcase_add_test(tc, meta_run_json_binary_payload_and_failure);
	tcase_add_test(tc, meta_usage_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("ctl");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, ctl_status_json_parses);
	tcase_add_test(tc, ctl_workers_table);
	tcase_add_test(tc, ctl_refusal_exits_1);
	tcase_add_test(tc, ctl_over_tcp_is_refused);
	tcase_add_test(tc, ctl_usage_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("usage");
	tcase_add_test(tc, usage_bad_values_are_named);
	tcase_add_test(tc, grammar_same_in_flags_config_ctl_and_run);
	tcase_add_test(tc, usage_commands_and_help);
	tcase_add_test(tc, usage_lines_options);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite under the harness's temporary root. */
int
main(void)
{
	return harness_main(cli_suite());
}

/*
 * test-ops.c: what an operator relies on around the broker: its log lines
 * (timestamp and level first, the journal's form under systemd, key=value
 * fields for job failures), the log file and the pools' stdout_log files
 * reopened on SIGUSR1 as logrotate expects, the sd_notify messages a
 * Type=notify unit waits for, and the unit file itself.
 *
 * Every test runs the real patchbayd in a temporary directory, reads the
 * files and sockets an operator (or systemd) would, and kills what it
 * started even when it fails (the harness's PR_SET_PDEATHSIG and
 * temporary root).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "tests/harness.h"

#define WAIT_MS		10000
#define JOURNAL_FIRST	"<6>info patchbayd: listening on "

static struct harness_broker	broker;
static char			tmp[256];

/* Per test: a fresh directory for configs and logs. */
static void
ops_setup(void)
{
	memset(&broker, 0, sizeof(broker));
	broker.pid = -1;
	harness_tmpdir(tmp, sizeof(tmp));
}

/* Per test: stops the broker, which stops its processes. */
static void
ops_teardown(void)
{
	harness_broker_stop(&broker);
}

/* A file in the test's directory (harness_write_file()). */
#define write_file(buf, len, name, ...)					\
	harness_write_file((buf), (len), tmp, (name), __VA_ARGS__)

/* True when a line of text contains both a and b. */
static bool
line_with(const char *text, const char *a, const char *b)
{
	const char	*p, *eol;

	for (p = text; p != NULL && *p != '\0'; p = eol != NULL ? eol + 1 :
	    NULL) {
		eol = strchr(p, '\n');
		size_t n = eol != NULL ? (size_t)(eol - p) : strlen(p);
		char *line = strndup(p, n);
		bool found;

		ck_assert_ptr_nonnull(line);
		found = strstr(line, a) != NULL && strstr(line, b) != NULL;
		free(line);
		if (found)
			return true;
	}
	return false;
}

struct file_wait {
	const char	*path;
	const char	*needle;
};

/* harness_wait_until condition: the file exists and holds the needle. */
static bool
file_has_cond(void *arg)
{
	struct file_wait	*w = arg;
	char			*text = harness_read_file(w->path);
	bool			 found;

	found = text != NULL && strstr(text, w->needle) != NULL;
	free(text);
	return found;
}

/* Waits up to WAIT_MS for needle in the file at path. */
static bool
wait_file(const char *path, const char *needle)
{
	struct file_wait	w = { path, needle };

	return harness_wait_until(file_has_cond, &w, WAIT_MS);
}

/*
 * Reads the broker's stderr log without the lines of a wrapper
 * ($PATCHBAY_BROKER_WRAPPER: valgrind's "==PID== ..."), which are not
 * patchbayd's.
 */
static char *
read_broker_log(const char *path)
{
	char	*text = harness_read_file(path), *in, *out, *eol;
	size_t	 n;

	if (text == NULL || !harness_broker_wrapped())
		return text;
	for (in = out = text; *in != '\0'; in = eol) {
		eol = strchr(in, '\n');
		eol = eol != NULL ? eol + 1 : in + strlen(in);
		n = (size_t)(eol - in);
		if (strncmp(in, "==", 2) == 0 &&
		    strspn(in + 2, "0123456789") > 0)
			continue;
		memmove(out, in, n);
		out += n;
	}
	*out = '\0';
	return text;
}

/* Runs the patchbay CLI with args (NULL-terminated); its wait status. */
static int
cli(char **ret_out, char **ret_err, ...)
{
	const char	*argv[32];
	const char	*a;
	size_t		 n = 0;
	va_list		 ap;

	argv[n++] = harness_cli();
	va_start(ap, ret_err);
	while ((a = va_arg(ap, const char *)) != NULL && n < 31)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return harness_run(argv, NULL, NULL, 0, ret_out, ret_err, WAIT_MS);
}

/*
 * Checks that every line of log starts with an ISO 8601 UTC time with
 * milliseconds, a level and "patchbayd: ", that there are at least
 * min_lines, and that the first time is now (so it is UTC whatever TZ the
 * broker had).
 */
static void
assert_timestamped(const char *log, int min_lines)
{
	regex_t		 re;
	const char	*p, *eol;
	struct tm	 tm;
	time_t		 first;
	int		 lines = 0;

	ck_assert_int_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z (error|warn|info|debug) "
	    "patchbayd: [^ ]", REG_EXTENDED | REG_NOSUB), 0);
	for (p = log; *p != '\0'; p = eol + 1) {
		eol = strchr(p, '\n');
		ck_assert_msg(eol != NULL, "unterminated last line: %s", p);
		char *line = strndup(p, (size_t)(eol - p));

		ck_assert_ptr_nonnull(line);
		ck_assert_msg(regexec(&re, line, 0, NULL, 0) == 0,
		    "line %d has no timestamp and level: '%s'", lines + 1,
		    line);
		free(line);
		lines++;
	}
	regfree(&re);
	ck_assert_int_ge(lines, min_lines);

	memset(&tm, 0, sizeof(tm));
	ck_assert_ptr_nonnull(strptime(log, "%Y-%m-%dT%H:%M:%S", &tm));
	first = timegm(&tm);
	ck_assert_msg(labs((long)(first - time(NULL))) < 300,
	    "the first line's time is not now in UTC: %.24s", log);
}

/* A real broker's stderr: every line starts with the time and the level. */
START_TEST(ops_log_lines_timestamped)
{
	char		 conf[300], ep[320], *log, *out = NULL;
	const char	*extra[] = { "-c", conf, NULL };
	const char	*env[] = { "TZ=Asia/Kolkata", NULL };
	int		 status;

	write_file(conf, sizeof(conf), "p.conf",
	    "[pool:rev]\n"
	    "command = %s worker rev --exec rev --verbose\n", harness_cli());
	harness_broker_start_env(&broker, extra, env, false);
	ck_assert(harness_wait_log(&broker, "registered fn=\"rev\"", WAIT_MS));
	snprintf(ep, sizeof(ep), "%s", broker.unix_ep);
	status = cli(&out, NULL, "run", "-b", ep, "rev", "abc", NULL);
	ck_assert_ptr_nonnull(out);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_str_eq(out, "cba");
	free(out);
	ck_assert_int_eq(harness_broker_stop(&broker), 0);

	log = read_broker_log(broker.log_path);
	ck_assert_ptr_nonnull(log);
	/* Connections, registration, frames, pool output and the stop. */
	ck_assert_msg(strstr(log, " info patchbayd: listening on unix:") !=
	    NULL, "%s", log);
	ck_assert(line_with(log, " info patchbayd: conn=", ": connected via"));
	ck_assert(line_with(log, " debug patchbayd: conn=", ": got RUN id="));
	ck_assert(line_with(log, " info patchbayd: rev/1: ",
	    "patchbay worker: serving rev"));
	ck_assert(line_with(log, " info patchbayd: proc=rev/1 pid=",
	    ": starting -> running"));
	ck_assert(strstr(log, " info patchbayd: stopped\n") != NULL);
	assert_timestamped(log, 10);
	free(log);
}
END_TEST

/*
 * logrotate: rename the file, SIGUSR1, and lines land in a new file at
 * the same path while the old one keeps what came before.
 */
START_TEST(ops_log_file_reopened_on_sigusr1)
{
	char		 path[300], old[310], *text, *err;
	const char	*extra[] = { "--log-file", path, NULL };
	int		 status;

	snprintf(path, sizeof(path), "%s/patchbayd.log", tmp);
	snprintf(old, sizeof(old), "%s.1", path);
	harness_broker_start(&broker, extra, false);
	ck_assert(wait_file(path, "info patchbayd: listening on"));

	ck_assert_int_eq(rename(path, old), 0);
	ck_assert_int_eq(kill(broker.pid, SIGUSR1), 0);
	ck_assert_msg(wait_file(path, "log files opened again"),
	    "no new %s after SIGUSR1", path);
	/* Something happens after the reopen: a refused admin verb. */
	status = cli(NULL, &err, "ctl", "-b", broker.unix_ep, "stop",
	    "nosuch", NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	free(err);
	ck_assert(wait_file(path, "admin stop refused: unknown id 'nosuch'"));
	ck_assert_int_eq(harness_broker_stop(&broker), 0);

	text = harness_read_file(old);
	ck_assert_ptr_nonnull(text);
	ck_assert(strstr(text, "listening on") != NULL);
	ck_assert(strstr(text, "nosuch") == NULL);
	ck_assert(strstr(text, "opened again") == NULL);
	assert_timestamped(text, 2);
	free(text);
	text = harness_read_file(path);
	ck_assert(strstr(text, "listening on") == NULL);
	ck_assert(strstr(text, " info patchbayd: stopped\n") != NULL);
	free(text);
	/* Nothing went to stderr once the file was open. */
	text = read_broker_log(broker.log_path);
	ck_assert_msg(text == NULL || strstr(text, "patchbayd:") == NULL,
	    "%s", text);
	free(text);
}
END_TEST

/* A log_file that cannot be opened stops patchbayd before it listens. */
START_TEST(ops_log_file_unwritable_refused)
{
	char	*err = NULL;
	int	 status;

	status = harness_run((const char *[]){ harness_patchbayd(),
	    "--log-file", "/nonexistent-dir/pb.log", "-l", "unix:/nowhere",
	    NULL }, NULL, NULL, 0, NULL, &err, WAIT_MS);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "patchbayd: cannot open log_file "
	    "/nonexistent-dir/pb.log: No such file or directory") != NULL,
	    "%s", err);
	free(err);
}
END_TEST

/*
 * Under systemd, stderr is the journal's stream ($JOURNAL_STREAM is its
 * device:inode): no timestamp, the sd-daemon priority instead. With a
 * JOURNAL_STREAM that is not stderr, the timestamps stay.
 */
START_TEST(ops_journal_stream_no_timestamp)
{
	char		 env_buf[96], *log;
	const char	*env[] = { env_buf, NULL };
	struct stat	 st;
	FILE		*f;
	regex_t		 re;

	harness_tmpdir(broker.dir, sizeof(broker.dir));
	snprintf(broker.log_path, sizeof(broker.log_path), "%s/broker.log",
	    broker.dir);
	ck_assert_ptr_nonnull(f = fopen(broker.log_path, "w"));
	fclose(f);
	ck_assert_int_eq(stat(broker.log_path, &st), 0);
	snprintf(env_buf, sizeof(env_buf), "JOURNAL_STREAM=%llu:%llu",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	harness_broker_start_env(&broker, NULL, env, true);
	ck_assert_int_eq(harness_broker_stop(&broker), 0);
	log = read_broker_log(broker.log_path);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strncmp(log, JOURNAL_FIRST, strlen(JOURNAL_FIRST)) == 0,
	    "%s", log);
	ck_assert(strstr(log, "\n<6>info patchbayd: stopped\n") != NULL);
	ck_assert_int_eq(regcomp(&re, "^[0-9]{4}-|\n[0-9]{4}-",
	    REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, log, 0, NULL, 0) != 0,
	    "a timestamp in the journal's lines:\n%s", log);
	free(log);

	/* The same inode number on another device is not the journal. */
	snprintf(env_buf, sizeof(env_buf), "JOURNAL_STREAM=%llu:%llu",
	    (unsigned long long)st.st_dev + 1, (unsigned long long)st.st_ino);
	harness_broker_start_env(&broker, NULL, env, false);
	ck_assert_int_eq(harness_broker_stop(&broker), 0);
	log = read_broker_log(broker.log_path);
	ck_assert_ptr_nonnull(log);
	ck_assert(regexec(&re, log, 0, NULL, 0) == 0);
	ck_assert(strstr(log, "<6>") == NULL);
	assert_timestamped(log, 3);
	regfree(&re);
	free(log);
}
END_TEST

/*
 * A pool's stdout_log gets its processes' output instead of the broker's
 * log, one timestamped "pool/instance: line" each, and is reopened on
 * SIGUSR1 with the broker's own log.
 */
START_TEST(ops_pool_stdout_log)
{
	char		 conf[300], path[300], old[310], *text, *out = NULL;
	const char	*extra[] = { "-c", conf, NULL };
	regex_t		 re;
	int		 status;

	snprintf(path, sizeof(path), "%s/rev.log", tmp);
	snprintf(old, sizeof(old), "%s.1", path);
	write_file(conf, sizeof(conf), "p.conf",
	    "[pool:rev]\n"
	    "command = sh -c 'echo to-stderr >&2; exec %s worker rev "
	    "--exec rev --verbose'\n"
	    "stdout_log = %s\n", harness_cli(), path);
	harness_broker_start(&broker, extra, false);
	ck_assert(harness_wait_log(&broker, "registered fn=\"rev\"", WAIT_MS));
	ck_assert(wait_file(path, "rev/1: patchbay worker: serving rev"));
	ck_assert(wait_file(path, "rev/1: to-stderr\n"));

	ck_assert_int_eq(rename(path, old), 0);
	ck_assert_int_eq(kill(broker.pid, SIGUSR1), 0);
	ck_assert(harness_wait_log(&broker, "log files opened again",
	    WAIT_MS));
	status = cli(&out, NULL, "run", "-b", broker.unix_ep, "rev", "xyz",
	    NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_str_eq(out, "zyx");
	free(out);
	/* The worker's --verbose line for that job lands in the new file. */
	ck_assert_msg(wait_file(path, "rev/1: patchbay worker: job "),
	    "no job line in the new %s", path);
	ck_assert_int_eq(harness_broker_stop(&broker), 0);

	text = harness_read_file(old);
	ck_assert_ptr_nonnull(text);
	ck_assert(strstr(text, "serving rev") != NULL);
	ck_assert(strstr(text, "worker: job ") == NULL);
	ck_assert_int_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}"
	    "\\.[0-9]{3}Z rev/1: ", REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "%s", text);
	regfree(&re);
	free(text);
	/* Not in the broker's log. */
	ck_assert(!harness_log_contains(&broker, "rev/1: to-stderr"));
	ck_assert(!harness_log_contains(&broker, "rev/1: patchbay worker"));
}
END_TEST

/*
 * Job failures are logged at info with key=value fields: an ERROR with
 * its text, a TIMEOUT, a WORKER_LOST, and a detached job dropped.
 */
START_TEST(ops_job_failures_logged)
{
	char		 conf[300], *log, *out, *err;
	const char	*extra[] = { "-c", conf, "--log-level", "info",
			    "--no-worker-wait", "0", "--detached-ttl", "1s",
			    NULL };
	int		 status;

	write_file(conf, sizeof(conf), "p.conf",
	    "[pool:fail]\n"
	    "command = %s worker fail --exec 'echo it broke >&2; exit 1'\n"
	    "[pool:slow]\n"
	    "command = %s worker slow --exec 'sleep 30'\n"
	    "[pool:lost]\n"
	    "command = %s worker lost --exec 'kill -9 $PPID; sleep 30'\n",
	    harness_cli(), harness_cli(), harness_cli());
	harness_broker_start(&broker, extra, false);
	ck_assert(harness_wait_log(&broker, "registered fn=\"fail\"", WAIT_MS));
	ck_assert(harness_wait_log(&broker, "registered fn=\"slow\"", WAIT_MS));
	ck_assert(harness_wait_log(&broker, "registered fn=\"lost\"", WAIT_MS));

	status = cli(&out, &err, "run", "-b", broker.unix_ep, "fail", "x",
	    NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	free(out);
	free(err);
	status = cli(&out, &err, "run", "-b", broker.unix_ep, "-t", "100ms",
	    "slow", "x", NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	free(out);
	free(err);
	status = cli(&out, &err, "run", "-b", broker.unix_ep, "lost", "x",
	    NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	free(out);
	free(err);
	status = cli(&out, &err, "run", "-b", broker.unix_ep, "--detach",
	    "nobody", "x", NULL);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(err);
	ck_assert(harness_wait_log(&broker, "detached job dropped", WAIT_MS));

	log = harness_read_file(broker.log_path);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(line_with(log, " info patchbayd: job id=",
	    "fn=\"fail\" conn=") && line_with(log, "fn=\"fail\"",
	    "attempts=1: ERROR: it broke"), "%s", log);
	ck_assert_msg(line_with(log, "fn=\"fail\"", " worker=") &&
	    line_with(log, "fn=\"fail\"", " proc=fail/1"), "%s", log);
	ck_assert_msg(line_with(log, " info patchbayd: job id=",
	    "fn=\"slow\"") && line_with(log, "fn=\"slow\"", ": TIMEOUT"),
	    "%s", log);
	ck_assert_msg(line_with(log, "fn=\"lost\"", ": WORKER_LOST"), "%s",
	    log);
	/* The detached job's id is the one `run --detach` printed. */
	out[strcspn(out, "\n")] = '\0';
	ck_assert_msg(line_with(log, out, "fn=\"nobody\" detached=yes "
	    "attempts=0: detached job dropped: TIMEOUT: waited for a worker "
	    "longer than detached_ttl (1s)"), "%s", log);
	/* Frames are for debug only. */
	ck_assert(strstr(log, "debug patchbayd:") == NULL);
	ck_assert(strstr(log, ": got RUN") == NULL);
	free(out);
	free(log);
}
END_TEST

/* Binds a datagram socket at path (or abstract, "@name"); its fd. */
static int
notify_bind(const char *path)
{
	struct sockaddr_un	sun;
	socklen_t		len;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	ck_assert_msg(bind(fd, (struct sockaddr *)&sun, len) == 0, "bind %s: "
	    "%s", path, strerror(errno));
	return fd;
}

/* Receives one datagram within ms into buf; false on timeout. */
static bool
notify_recv(int fd, char *buf, size_t len, int ms)
{
	struct pollfd	pfd = { fd, POLLIN, 0 };
	ssize_t		n;

	if (poll(&pfd, 1, ms) != 1)
		return false;
	n = recv(fd, buf, len - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	return true;
}

/* True when a Unix stream connection to path succeeds now. */
static bool
unix_connects(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	return r == 0;
}

/*
 * Type=notify: READY=1 comes once the socket accepts connections,
 * WATCHDOG=1 every half of WATCHDOG_USEC, STOPPING=1 on SIGTERM.
 */
START_TEST(ops_sd_notify)
{
	char		 nsock[300], sock[300], ep[310], log[300], buf[256];
	char		 env_sock[320];
	const char	*env[] = { env_sock, "WATCHDOG_USEC=200000", NULL };
	const char	*argv[] = { harness_patchbayd(), "-l", ep, NULL };
	unsigned long long t0, t1;
	int		 fd, watchdogs = 0, status;
	pid_t		 pid;

	snprintf(nsock, sizeof(nsock), "%s/notify", tmp);
	snprintf(sock, sizeof(sock), "%s/pb.sock", tmp);
	snprintf(ep, sizeof(ep), "unix:%s", sock);
	snprintf(log, sizeof(log), "%s/broker.log", tmp);
	snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", nsock);
	fd = notify_bind(nsock);
	pid = harness_spawn(argv, env, log);

	ck_assert_msg(notify_recv(fd, buf, sizeof(buf), WAIT_MS),
	    "no READY=1 from patchbayd");
	ck_assert_str_eq(buf, "READY=1");
	/* Not a moment too soon: the socket takes connections already. */
	ck_assert(unix_connects(sock));

	t0 = harness_now_ms();
	while (watchdogs < 4) {
		ck_assert_msg(notify_recv(fd, buf, sizeof(buf), 2000),
		    "no WATCHDOG=1 within 2 s (after %d)", watchdogs);
		ck_assert_str_eq(buf, "WATCHDOG=1");
		watchdogs++;
	}
	t1 = harness_now_ms();
	/* Four at 100 ms intervals: about 300-400 ms, not 4 at once. */
	ck_assert_msg(t1 - t0 >= 250, "4 WATCHDOG=1 in %llu ms", t1 - t0);

	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	do
		ck_assert_msg(notify_recv(fd, buf, sizeof(buf), WAIT_MS),
		    "no STOPPING=1 after SIGTERM");
	while (strcmp(buf, "WATCHDOG=1") == 0);
	ck_assert_str_eq(buf, "STOPPING=1");
	status = harness_kill(pid, 0);	/* only wait: it is stopping */
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
}
END_TEST

/*
 * An abstract NOTIFY_SOCKET ("@name") works; a WATCHDOG_PID that is not
 * patchbayd's means the watchdog is not ours: no WATCHDOG=1.
 */
START_TEST(ops_sd_notify_abstract_and_watchdog_pid)
{
	char		 nsock[64], ep[310], log[300], buf[256], env_sock[96];
	const char	*env[] = { env_sock, "WATCHDOG_USEC=100000",
			    "WATCHDOG_PID=1", NULL };
	const char	*argv[] = { harness_patchbayd(), "-l", ep, NULL };
	int		 fd, status;
	pid_t		 pid;

	snprintf(nsock, sizeof(nsock), "@patchbay-test-%d", (int)getpid());
	snprintf(ep, sizeof(ep), "unix:%s/pb.sock", tmp);
	snprintf(log, sizeof(log), "%s/broker.log", tmp);
	snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", nsock);
	fd = notify_bind(nsock);
	pid = harness_spawn(argv, env, log);
	ck_assert_msg(notify_recv(fd, buf, sizeof(buf), WAIT_MS),
	    "no READY=1 on the abstract socket");
	ck_assert_str_eq(buf, "READY=1");
	ck_assert_msg(!notify_recv(fd, buf, sizeof(buf), 400),
	    "'%s' with another process's WATCHDOG_PID", buf);
	status = harness_kill(pid, SIGTERM);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(notify_recv(fd, buf, sizeof(buf), 100));
	ck_assert_str_eq(buf, "STOPPING=1");
	close(fd);
}
END_TEST

/* The directory of PATH that holds an executable name, or NULL. */
static char *
find_in_path(const char *name)
{
	const char	*path = getenv("PATH");
	char		*copy, *dir, *save = NULL, *found = NULL;

	if (path == NULL)
		return NULL;
	ck_assert_ptr_nonnull(copy = strdup(path));
	for (dir = strtok_r(copy, ":", &save); dir != NULL && found == NULL;
	    dir = strtok_r(NULL, ":", &save)) {
		char	full[4096];

		snprintf(full, sizeof(full), "%s/%s", dir, name);
		if (access(full, X_OK) == 0)
			found = strdup(full);
	}
	free(copy);
	return found;
}

/*
 * The installed unit passes `systemd-analyze verify` without a word. Its
 * ExecStart names the installed patchbayd, which may not exist yet: a
 * copy names the built one. A copy with a misspelt key must not pass, or
 * the check would prove nothing.
 */
START_TEST(ops_unit_file_verifies)
{
	char		 unit[512], copy[300], bad[300], *text, *analyze;
	char		*out = NULL, *err = NULL, *line, *save = NULL;
	FILE		*f;
	int		 status;

	snprintf(unit, sizeof(unit), "%s/dist/patchbayd.service",
	    getenv("PATCHBAY_BUILDDIR"));
	ck_assert_ptr_nonnull(text = harness_read_file(unit));
	ck_assert(strstr(text, "\nType=notify\n") != NULL);
	ck_assert(strstr(text, "\nExecReload=/bin/kill -HUP $MAINPID\n") !=
	    NULL);
	ck_assert(strstr(text, "\nRuntimeDirectory=patchbay\n") != NULL);
	ck_assert(strstr(text, "\nWatchdogSec=") != NULL);
	ck_assert(strstr(text, "\nProtectSystem=strict\n") != NULL);
	ck_assert(strstr(text, "\nNoNewPrivileges=yes\n") != NULL);
	if ((analyze = find_in_path("systemd-analyze")) == NULL) {
		fprintf(stderr, "ops_unit_file_verifies: skipped: "
		    "systemd-analyze is not installed (Debian package "
		    "systemd)\n");
		free(text);
		return;
	}
	snprintf(copy, sizeof(copy), "%s/patchbayd.service", tmp);
	snprintf(bad, sizeof(bad), "%s/patchbayd-bad.service", tmp);
	ck_assert_ptr_nonnull(f = fopen(copy, "w"));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "ExecStart=", 10) == 0)
			fprintf(f, "ExecStart=%s -c /etc/patchbay/"
			    "patchbay.conf\n", harness_patchbayd());
		else
			fprintf(f, "%s\n", line);
	}
	fclose(f);

	status = harness_run((const char *[]){ analyze, "verify", copy,
	    NULL }, NULL, NULL, 0, &out, &err, 30000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    out[0] == '\0' && err[0] == '\0',
	    "systemd-analyze verify: status %d\n%s%s", status, out, err);
	free(out);
	free(err);

	free(text);
	text = harness_read_file(copy);
	*strstr(text, "ProtectSystem=") = 'p';	/* an unknown key */
	ck_assert_ptr_nonnull(f = fopen(bad, "w"));
	fputs(text, f);
	fclose(f);
	status = harness_run((const char *[]){ analyze, "verify", bad,
	    NULL }, NULL, NULL, 0, &out, &err, 30000);
	ck_assert_msg(strstr(err, "protectSystem") != NULL, "%s%s", out, err);
	free(out);
	free(err);
	free(text);
	free(analyze);
}
END_TEST

/* The suite. */
static Suite *
ops_suite(void)
{
	Suite	*s = suite_create("ops");
	TCase	*tc;

	tc = tcase_create("logs");
	tcase_add_checked_fixture(tc, ops_setup, ops_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, ops_log_lines_timestamped);
	tcase_add_test(tc, ops_log_file_reopened_on_sigusr1);
	tcase_add_test(tc, ops_log_file_unwritable_refused);
	tcase_add_test(tc, ops_journal_stream_no_timestamp);
	tcase_add_test(tc, ops_pool_stdout_log);
	tcase_add_test(tc, ops_job_failures_logged);
	suite_add_tcase(s, tc);

	tc = tcase_create("systemd");
	tcase_add_checked_fixture(tc, ops_setup, ops_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, ops_sd_notify);
	tcase_add_test(tc, ops_sd_notify_abstract_and_watchdog_pid);
	tcase_add_test(tc, ops_unit_file_verifies);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(ops_suite());
}

/*
 * harness.c: processes, temporary files and waiting, for the Check suites.
 *
 * harness_main() makes one temporary root per suite run and exports it as
 * $HARNESS_ROOT; the forked test processes make their directories inside
 * it, and the runner removes the whole root when the suite ends, so even a
 * test killed by its timeout leaves no file behind. Every child started here
 * gets PR_SET_PDEATHSIG, so it dies with the test that started it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/harness.h"

extern char **environ;

/* Milliseconds on the monotonic clock. */
unsigned long long
harness_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* nftw callback removing one entry. */
static int
harness_rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

/* Removes a directory tree. */
static void
harness_rm_rf(const char *path)
{
	nftw(path, harness_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char	harness_root[] = "/tmp/patchbay-test.XXXXXX";
static pid_t	harness_runner;

/*
 * The runner was told to stop (meson's timeout, Ctrl-C): remove the root
 * before dying. Not async-signal-safe, but the runner does nothing else
 * by then, and a left-over directory is the worse outcome.
 */
static void
harness_stop_handler(int sig)
{
	if (getpid() == harness_runner)
		harness_rm_rf(harness_root);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Runs suite s under a private temporary root; returns the exit code. */
int
harness_main(Suite *s)
{
	SRunner	*sr;
	char	*root = harness_root;
	int	 failed;

	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	harness_runner = getpid();
	signal(SIGTERM, harness_stop_handler);
	signal(SIGINT, harness_stop_handler);
	setenv("HARNESS_ROOT", root, 1);
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	harness_rm_rf(root);
	return failed == 0 ? 0 : 1;
}

/* Makes a fresh directory under the root and writes its path to buf. */
void
harness_tmpdir(char *buf, size_t len)
{
	const char	*root = getenv("HARNESS_ROOT");

	if (root == NULL)
		root = "/tmp";
	snprintf(buf, len, "%s/t.XXXXXX", root);
	ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf,
	    strerror(errno));
}

/* $PATCHBAY_CLI: path of the built patchbay program. */
const char *
harness_cli(void)
{
	const char	*p = getenv("PATCHBAY_CLI");

	return p != NULL ? p : "patchbay";
}

/* $PATCHBAYD: path of the built broker. */
const char *
harness_patchbayd(void)
{
	const char	*p = getenv("PATCHBAYD");

	return p != NULL ? p : "patchbayd";
}

/* In a forked child: die with the parent, set up stdio, add env, exec. */
static void __attribute__((noreturn))
harness_child_exec(const char *const *argv, const char *const *env,
    int in_fd, int out_fd, int err_fd, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	if (in_fd != 0) {
		dup2(in_fd, 0);
		close(in_fd);
	}
	if (out_fd != 1) {
		dup2(out_fd, 1);
		if (out_fd != err_fd)
			close(out_fd);
	}
	if (err_fd != 2) {
		dup2(err_fd, 2);
		close(err_fd);
	}
	for (; env != NULL && *env != NULL; env++)
		putenv((char *)*env);
	execvp(argv[0], (char *const *)argv);
	fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* Starts argv with extra env, output appended to log_path. */
pid_t
harness_spawn(const char *const *argv, const char *const *env,
    const char *log_path)
{
	pid_t	pid, parent = getpid();
	int	in_fd, out_fd;

	in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	out_fd = open(log_path != NULL ? log_path : "/dev/null",
	    O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_msg(in_fd != -1 && out_fd != -1, "open: %s",
	    strerror(errno));
	pid = fork();
	ck_assert_msg(pid != -1, "fork: %s", strerror(errno));
	if (pid == 0)
		harness_child_exec(argv, env, in_fd, out_fd, out_fd, parent);
	close(in_fd);
	close(out_fd);
	return pid;
}

/* Sends sig to pid and reaps it (SIGKILL after 10 s). */
int
harness_kill(pid_t pid, int sig)
{
	return harness_kill_within(pid, sig, 10000);
}

/* Whether the last harness_kill_within() had to send SIGKILL itself. */
static bool	harness_last_kill_forced;

/* Sends sig to pid and reaps it, SIGKILL after ms. */
int
harness_kill_within(pid_t pid, int sig, int ms)
{
	unsigned long long	deadline;
	int			status;
	pid_t			r;

	harness_last_kill_forced = false;
	if (pid <= 0)
		return -1;
	kill(pid, sig);
	deadline = harness_now_ms() + (unsigned long long)ms;
	for (;;) {
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return status;
		if (r == -1)
			return -1;
		if (harness_now_ms() > deadline) {
			harness_last_kill_forced = true;
			kill(pid, SIGKILL);
			if (waitpid(pid, &status, 0) == pid)
				return status;
			return -1;
		}
		usleep(5000);
	}
}

/* Writes a file made from a printf format to dir/name; see harness.h. */
void
harness_write_file(char *buf, size_t len, const char *dir, const char *name,
    const char *fmt, ...)
{
	FILE	*f;
	va_list	 ap;

	snprintf(buf, len, "%s/%s", dir, name);
	f = fopen(buf, "w");
	ck_assert_ptr_nonnull(f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	ck_assert_int_eq(fclose(f), 0);
}

/* Runs `patchbay ctl` against b; see harness.h. */
int
harness_ctl(const struct harness_broker *b, bool json, char **ret_out,
    char **ret_err, const char *verb, ...)
{
	const char	*argv[32];
	size_t		 n = 0;
	const char	*a;
	va_list		 ap;
	int		 status;

	argv[n++] = harness_cli();
	argv[n++] = "ctl";
	argv[n++] = "--broker";
	argv[n++] = b->unix_ep;
	if (json)
		argv[n++] = "--json";
	argv[n++] = verb;
	va_start(ap, verb);
	while ((a = va_arg(ap, const char *)) != NULL && n < 31)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	status = harness_run(argv, NULL, NULL, 0, ret_out, ret_err, 40000);
	ck_assert_msg(WIFEXITED(status), "patchbay ctl %s did not exit", verb);
	return WEXITSTATUS(status);
}

/* The number of open descriptors of pid; see harness.h. */
int
harness_fd_count(pid_t pid)
{
	char		 path[64];
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The soft and hard values of a line of /proc/PID/limits; see harness.h. */
void
harness_limits_line(const char *text, const char *name, char *soft,
    char *hard)
{
	const char	*s = strstr(text, name);

	ck_assert_msg(s != NULL, "no '%s' in %s", name, text);
	ck_assert_int_eq(sscanf(s + strlen(name), " %31s %31s", soft, hard),
	    2);
}

/* Reads a whole file, NUL-terminated; NULL when it cannot be read. */
char *
harness_read_file(const char *path)
{
	FILE	*f;
	char	*buf = NULL;
	size_t	 len = 0, cap = 0, n;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4097) {
			cap = cap == 0 ? 8192 : cap * 2;
			buf = realloc(buf, cap);
			ck_assert(buf != NULL);
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Polls cond every 10 ms until it is true or timeout_ms passed. */
bool
harness_wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
	unsigned long long	deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		if (cond(arg))
			return true;
		if (harness_now_ms() > deadline)
			return false;
		usleep(10000);
	}
}

/* True when the broker's log contains needle. */
bool
harness_log_contains(const struct harness_broker *b, const char *needle)
{
	char	*log = harness_read_file(b->log_path);
	bool	 found;

	found = log != NULL && strstr(log, needle) != NULL;
	free(log);
	return found;
}

struct harness_log_wait {
	const struct harness_broker	*b;
	const char			*needle;
};

/* harness_wait_until condition: the needle is in the log. */
static bool
harness_log_cond(void *arg)
{
	struct harness_log_wait	*w = arg;

	return harness_log_contains(w->b, w->needle);
}

/* Waits up to timeout_ms for needle in the broker's log. */
bool
harness_wait_log(const struct harness_broker *b, const char *needle,
    int timeout_ms)
{
	struct harness_log_wait	w = { b, needle };

	return harness_wait_until(harness_log_cond, &w, timeout_ms);
}

/*
 * The words of $PATCHBAY_BROKER_WRAPPER (split at blanks, no quoting), put
 * before patchbayd's own argv so that the broker runs under valgrind or
 * another tool; NULL-terminated, empty when the variable is unset.
 */
static const char *const *
harness_broker_wrapper(void)
{
	static char		*copy;
	static const char	*words[32];
	const char		*env = getenv("PATCHBAY_BROKER_WRAPPER");
	char			*w, *save = NULL;
	size_t			 n = 0;

	if (copy != NULL || env == NULL)
		return words;
	copy = strdup(env);
	ck_assert(copy != NULL);
	for (w = strtok_r(copy, " \t", &save); w != NULL && n < 31;
	    w = strtok_r(NULL, " \t", &save))
		words[n++] = w;
	words[n] = NULL;
	return words;
}

/* True when patchbayd runs under $PATCHBAY_BROKER_WRAPPER. */
bool
harness_broker_wrapped(void)
{
	return harness_broker_wrapper()[0] != NULL;
}

/* harness_wait_until condition: the ready file exists (or pid died). */
static bool
harness_ready_cond(void *arg)
{
	struct harness_broker	*b = arg;
	int			 status;

	if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
		b->pid = -1;
		return true;
	}
	return access(b->ready_path, F_OK) == 0;
}

/* Starts patchbayd and waits until its ready file lists its endpoints. */
void
harness_broker_start(struct harness_broker *b, const char *const *extra,
    bool reuse_dir)
{
	harness_broker_start_env(b, extra, NULL, reuse_dir);
}

/* harness_broker_start() with extra environment entries for patchbayd. */
void
harness_broker_start_env(struct harness_broker *b, const char *const *extra,
    const char *const *env, bool reuse_dir)
{
	const char	*argv[96];
	char		*ready, *line, *save = NULL;
	size_t		 n = 0;
	int		 wait_ms = harness_broker_wrapped() ? 60000 : 10000;

	if (!reuse_dir)
		harness_tmpdir(b->dir, sizeof(b->dir));
	snprintf(b->sock, sizeof(b->sock), "%s/pb.sock", b->dir);
	snprintf(b->unix_ep, sizeof(b->unix_ep), "unix:%s", b->sock);
	snprintf(b->log_path, sizeof(b->log_path), "%s/broker.log", b->dir);
	snprintf(b->ready_path, sizeof(b->ready_path), "%s/ready", b->dir);
	unlink(b->ready_path);
	b->tcp_ep[0] = '\0';
	b->tls_ep[0] = '\0';

	for (const char *const *w = harness_broker_wrapper(); *w != NULL;
	    w++)
		argv[n++] = *w;
	argv[n++] = harness_patchbayd();
	argv[n++] = "-l";
	argv[n++] = b->unix_ep;
	argv[n++] = "-l";
	argv[n++] = "tcp:127.0.0.1:0";
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	argv[n++] = "--ready-file";
	argv[n++] = b->ready_path;
	for (; extra != NULL && *extra != NULL && n < 94; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	b->pid = harness_spawn(argv, env, b->log_path);

	ck_assert_msg(harness_wait_until(harness_ready_cond, b, wait_ms),
	    "patchbayd did not become ready in %d s", wait_ms / 1000);
	if (b->pid == -1) {
		char *log = harness_read_file(b->log_path);

		ck_abort_msg("patchbayd exited at startup: %s",
		    log != NULL ? log : "(no log)");
	}
	ready = harness_read_file(b->ready_path);
	ck_assert(ready != NULL);
	for (line = strtok_r(ready, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "tcp:", 4) == 0 && b->tcp_ep[0] == '\0')
			snprintf(b->tcp_ep, sizeof(b->tcp_ep), "%s", line);
		else if (strncmp(line, "tls:", 4) == 0 && b->tls_ep[0] == '\0')
			snprintf(b->tls_ep, sizeof(b->tls_ep), "%s", line);
	free(ready);
}

/*
 * Copies into buf the lines of the broker's log that the wrapper wrote
 * (valgrind's start with "==PID=="), or the log's tail when there are none.
 */
static void
harness_wrapper_report(const struct harness_broker *b, char *buf, size_t len)
{
	char	*log = harness_read_file(b->log_path), *line, *save = NULL;
	size_t	 off = 0, n;

	buf[0] = '\0';
	if (log == NULL)
		return;
	for (line = strtok_r(log, "\n", &save); line != NULL && off < len - 1;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "==", 2) != 0)
			continue;
		n = (size_t)snprintf(buf + off, len - off, "%s\n", line);
		off += n < len - off ? n : len - off - 1;
	}
	free(log);
	if (off == 0 && (log = harness_read_file(b->log_path)) != NULL) {
		n = strlen(log);
		snprintf(buf, len, "%s", log + (n > len - 1 ? n - (len - 1) : 0));
		free(log);
	}
}

/*
 * Stops the broker with SIGTERM; returns its wait status or -1. Under a
 * wrapper (valgrind) the broker must then exit 0: any other end fails the
 * test with what the wrapper reported.
 */
int
harness_broker_stop(struct harness_broker *b)
{
	static char	report[16384];
	int		status;

	if (b->pid <= 0)
		return -1;
	status = harness_kill_within(b->pid, SIGTERM,
	    harness_broker_wrapped() ? 120000 : 10000);
	b->pid = -1;
	/*
	 * A broker the test itself killed with SIGKILL has nothing to say;
	 * one that ignored SIGTERM for 120 s was killed by harness_kill_within
	 * and fails with the rest.
	 */
	if (harness_broker_wrapped() && WIFSIGNALED(status) &&
	    WTERMSIG(status) == SIGKILL && !harness_last_kill_forced)
		return status;
	if (harness_broker_wrapped() && !(WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0)) {
		harness_wrapper_report(b, report, sizeof(report));
		ck_abort_msg("patchbayd under $PATCHBAY_BROKER_WRAPPER ended "
		    "with wait status %d (exit %d):\n%s", status,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1, report);
	}
	return status;
}

/* Appends what is readable on fd to a growing buffer; false at EOF. */
static bool
harness_drain(int fd, char **buf, size_t *len, size_t *cap)
{
	ssize_t	n;

	if (*cap - *len < 65537) {
		*cap = *cap == 0 ? 65536 * 2 : *cap * 2;
		*buf = realloc(*buf, *cap);
		ck_assert(*buf != NULL);
	}
	n = read(fd, *buf + *len, *cap - *len - 1);
	if (n <= 0)
		return n == -1 && (errno == EINTR || errno == EAGAIN);
	*len += (size_t)n;
	return true;
}

/* Runs argv to completion with stdin and collected stdout/stderr. */
int
harness_run(const char *const *argv, const char *const *env,
    const void *in, size_t inlen, char **ret_out, char **ret_err,
    int timeout_ms)
{
	struct pollfd		 pfd[3];
	unsigned long long	 deadline;
	char			*out = NULL, *err = NULL;
	size_t			 outlen = 0, outcap = 0, errlen = 0, errcap = 0;
	size_t			 inoff = 0;
	int			 pin[2], pout[2], perr[2], status = -1;
	bool			 out_open = true, err_open = true;
	pid_t			 pid, parent = getpid();

	ck_assert(pipe2(pin, O_CLOEXEC) == 0);
	ck_assert(pipe2(pout, O_CLOEXEC) == 0);
	ck_assert(pipe2(perr, O_CLOEXEC) == 0);
	pid = fork();
	ck_assert(pid != -1);
	if (pid == 0) {
		close(pin[1]);
		close(pout[0]);
		close(perr[0]);
		harness_child_exec(argv, env, pin[0], pout[1], perr[1],
		    parent);
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	if (in == NULL || inlen == 0) {
		close(pin[1]);
		pin[1] = -1;
	}
	deadline = harness_now_ms() + (unsigned long long)timeout_ms;
	while (out_open || err_open || pin[1] != -1) {
		long long left = (long long)(deadline - harness_now_ms());

		if (harness_now_ms() > deadline) {
			harness_last_kill_forced = true;
			kill(pid, SIGKILL);
			break;
		}
		pfd[0].fd = out_open ? pout[0] : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = err_open ? perr[0] : -1;
		pfd[1].events = POLLIN;
		pfd[2].fd = pin[1];
		pfd[2].events = POLLOUT;
		if (poll(pfd, 3, (int)(left < 100 ? left + 1 : 100)) < 0 &&
		    errno != EINTR)
			break;
		if (pfd[0].revents != 0)
			out_open = harness_drain(pout[0], &out, &outlen,
			    &outcap);
		if (pfd[1].revents != 0)
			err_open = harness_drain(perr[0], &err, &errlen,
			    &errcap);
		if (pin[1] != -1 && pfd[2].revents != 0) {
			ssize_t n = write(pin[1], (const char *)in + inoff,
			    inlen - inoff);

			if (n > 0)
				inoff += (size_t)n;
			if ((n == -1 && errno != EAGAIN && errno != EINTR) ||
			    inoff == inlen) {
				close(pin[1]);
				pin[1] = -1;
			}
		}
	}
	if (pin[1] != -1)
		close(pin[1]);
	close(pout[0]);
	close(perr[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (out == NULL)
		out = calloc(1, 1);
	else
		out[outlen] = '\0';
	if (err == NULL)
		err = calloc(1, 1);
	else
		err[errlen] = '\0';
	if (ret_out != NULL)
		*ret_out = out;
	else
		free(out);
	if (ret_err != NULL)
		*ret_err = err;
	else
		free(err);
	return status;
}

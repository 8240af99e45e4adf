/*
 * harness.h: shared helpers for the Check suites.
 *
 * Every process a test starts through the harness dies with the test
 * (PR_SET_PDEATHSIG) and every file it makes lives under one temporary root
 * that harness_main() creates before the suite and removes after it, even
 * when a test failed or timed out. Integration tests start the real
 * patchbayd ($PATCHBAYD) on a Unix socket in such a directory and on an
 * ephemeral loopback TCP port.
 */
#ifndef PATCHBAY_HARNESS_H
#define PATCHBAY_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <check.h>

/* Runs suite s under a private temporary root; returns the exit code. */
int	 harness_main(Suite *s);

/* Makes a fresh directory under the root and writes its path to buf. */
void	 harness_tmpdir(char *buf, size_t len);

/* A running patchbayd. */
struct harness_broker {
	pid_t	 pid;
	char	 dir[256];		/* its private directory */
	char	 sock[300];		/* DIR/pb.sock */
	char	 unix_ep[310];		/* "unix:DIR/pb.sock" */
	char	 tcp_ep[80];		/* "tcp:127.0.0.1:PORT" */
	char	 tls_ep[80];		/* the first tls: one, when asked */
	char	 log_path[300];		/* DIR/broker.log (stderr) */
	char	 ready_path[300];	/* DIR/ready */
};

/*
 * Starts patchbayd with -l unix:DIR/pb.sock -l tcp:127.0.0.1:0
 * --log-level debug --ready-file DIR/ready plus extra (NULL-terminated,
 * may be NULL), and waits until it is ready. When reuse_dir is true, b->dir
 * is kept as set by the caller (a restart on the same socket path).
 * Fails the test when the broker does not come up in 10 s.
 */
void	 harness_broker_start(struct harness_broker *b,
	    const char *const *extra, bool reuse_dir);

/* harness_broker_start() with extra "K=V" environment entries (or NULL). */
void	 harness_broker_start_env(struct harness_broker *b,
	    const char *const *extra, const char *const *env, bool reuse_dir);

/*
 * $PATCHBAY_BROKER_WRAPPER, when set, is a command (words split at blanks)
 * that the harness puts before patchbayd: "valgrind --error-exitcode=99
 * --leak-check=full ...". The broker then gets 60 s to become ready and
 * 120 s to stop, and harness_broker_stop() fails the test unless it exits
 * 0, quoting the wrapper's lines of the broker's log.
 */
bool	 harness_broker_wrapped(void);

/*
 * Stops the broker with SIGTERM and waits (SIGKILL after 10 s). Returns its
 * wait status, or -1 when it was not running.
 */
int	 harness_broker_stop(struct harness_broker *b);

/* Sends sig to pid and reaps it (SIGKILL after 10 s). Returns wait status. */
int	 harness_kill(pid_t pid, int sig);

/* harness_kill() with the SIGKILL after ms instead of 10 s. */
int	 harness_kill_within(pid_t pid, int sig, int ms);

/*
 * Starts argv (argv[0] is a path) with extra environment entries
 * ("K=V", NULL-terminated, may be NULL), stdin from /dev/null, stdout and
 * stderr appended to log_path (NULL: /dev/null). It dies with the test.
 */
pid_t	 harness_spawn(const char *const *argv, const char *const *env,
	    const char *log_path);

/*
 * Runs argv to completion with in (inlen bytes) on stdin, collecting
 * stdout and stderr (NUL-terminated, caller frees; ret_* may be NULL).
 * Killed after timeout_ms. Returns the wait status (use WIFEXITED...).
 */
int	 harness_run(const char *const *argv, const char *const *env,
	    const void *in, size_t inlen, char **ret_out, char **ret_err,
	    int timeout_ms);

/* Polls cond every 10 ms until it is true or timeout_ms passed. */
bool	 harness_wait_until(bool (*cond)(void *), void *arg, int timeout_ms);

/* Writes a file made from a printf format to dir/name; its path in buf. */
void	 harness_write_file(char *buf, size_t len, const char *dir,
	    const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 5, 6)));

/*
 * Runs `patchbay ctl --broker UNIX_EP [--json] VERB ARGS...` (ARGS
 * NULL-terminated) against b; returns its exit status, with its output and
 * errors (caller frees; ret_* may be NULL). Fails the test when it does
 * not exit.
 */
int	 harness_ctl(const struct harness_broker *b, bool json,
	    char **ret_out, char **ret_err, const char *verb, ...);

/* The number of open descriptors of pid (from /proc), or -1. */
int	 harness_fd_count(pid_t pid);

/* Reads a whole file (NUL-terminated, caller frees), or NULL. */
char	*harness_read_file(const char *path);

/*
 * The soft and hard values (at most 31 bytes each) of the line of
 * /proc/PID/limits text that starts with name; fails the test without it.
 */
void	 harness_limits_line(const char *text, const char *name, char *soft,
	    char *hard);

/* True when the broker's log contains needle. */
bool	 harness_log_contains(const struct harness_broker *b,
	    const char *needle);

/* Waits up to timeout_ms for needle in the broker's log. */
bool	 harness_wait_log(const struct harness_broker *b, const char *needle,
	    int timeout_ms);

/* $PATCHBAY_CLI and $PATCHBAYD: paths of the built programs. */
const char	*harness_cli(void);
const char	*harness_patchbayd(void);

/* Milliseconds on the monotonic clock. */
unsigned long long	 harness_now_ms(void);

/*
 * A libpatchbay client connected to ep; the test fails, naming ep and the
 * reason, when it cannot connect (harness-client.c: for the suites that
 * link libpatchbay).
 */
struct pb_client;
struct pb_client	*harness_client(const char *ep);

#endif /* PATCHBAY_HARNESS_H */

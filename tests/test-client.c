/*
 * test-client.c: libpatchbay against the real patchbayd.
 *
 * Each test starts its own broker (harness_broker_start) and drives a
 * pb_client and a pb_worker through it. Most tests run both in this one
 * thread, interleaving pb_client_dispatch(c, 0) and
 * pb_worker_dispatch(w, 0) around a poll(2) on both sockets until a
 * condition holds or a deadline passes (pump()). Tests of the blocking
 * pb_client_run() put the worker in a forked child that dies with the test.
 * The tests under "inherited" and "hostile" play the broker themselves on
 * a socketpair or a private listening socket, to check the worker's
 * $PATCHBAY_FD path and what the library does with a broker that
 * misbehaves.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/patchbay.h"
#include "proto/proto.h"
#include "tests/harness.h"
#include "util/util.h"

#define WAIT_MS		10000
#define MANY_JOBS	1000
#define MAX_HELD	64

/* What the test handlers and callbacks saw. */
static struct {
	struct pb_job		*held[MAX_HELD];	/* jobs kept by "hold" */
	int			 nheld;
	int			 ncancel;		/* on_cancel calls */
	int			 nresults;
	struct pb_result	*results[MANY_JOBS];
	int			 nprogress;
	char			 progress[64];		/* concatenated */
	int			 bad;			/* mismatches seen */
} seen;

/* Resets what the handlers recorded, freeing kept results. */
static void
seen_reset(void)
{
	for (int i = 0; i < seen.nresults && i < MANY_JOBS; i++)
		pb_result_free(seen.results[i]);
	memset(&seen, 0, sizeof(seen));
}

/* "rev": answers the payload reversed. */
static void
h_rev(struct pb_worker *w, struct pb_job *job, void *ud)
{
	const uint8_t	*p;
	uint8_t		 buf[4096];
	size_t		 len, i;

	(void)w; (void)ud;
	p = pb_job_payload(job, &len);
	ck_assert_uint_le(len, sizeof(buf));
	for (i = 0; i < len; i++)
		buf[i] = p[len - 1 - i];
	ck_assert_int_eq(pb_job_complete(job, PB_OK, buf, len, NULL), 0);
}

/* "echo": answers the payload as it came. */
static void
h_echo(struct pb_worker *w, struct pb_job *job, void *ud)
{
	const void	*p;
	size_t		 len;

	(void)w; (void)ud;
	p = pb_job_payload(job, &len);
	ck_assert_int_eq(pb_job_complete(job, PB_OK, p, len, NULL), 0);
}

/* "fail": answers ERROR with a sentence. */
static void
h_fail(struct pb_worker *w, struct pb_job *job, void *ud)
{
	(void)w; (void)ud;
	ck_assert_int_eq(pb_job_complete(job, PB_ERROR, NULL, 0,
	    "bad input"), 0);
}

/* "hold": keeps the job for the test to answer later. */
static void
h_hold(struct pb_worker *w, struct pb_job *job, void *ud)
{
	(void)w; (void)ud;
	ck_assert_int_lt(seen.nheld, MAX_HELD);
	seen.held[seen.nheld++] = job;
}

/* "progress": three PROGRESS packets, then OK "done". */
static void
h_progress(struct pb_worker *w, struct pb_job *job, void *ud)
{
	(void)w; (void)ud;
	ck_assert_int_eq(pb_job_progress(job, "1", 1), 0);
	ck_assert_int_eq(pb_job_progress(job, "2", 1), 0);
	ck_assert_int_eq(pb_job_progress(job, "3", 1), 0);
	ck_assert_int_eq(pb_job_complete(job, PB_OK, "done", 4, NULL), 0);
}

/*
 * "meta": answers what the job's meta looks like through each accessor:
 * "[tenant value][value of nope]|key=value;..." ("none" for NULL).
 */
static void
h_meta(struct pb_worker *w, struct pb_job *job, void *ud)
{
	const char	*k, *v, *t = pb_job_meta(job, "tenant");
	char		 out[4096];
	size_t		 n, i;

	(void)w; (void)ud;
	n = (size_t)snprintf(out, sizeof(out), "[%s][%s]|", t ? t : "none",
	    pb_job_meta(job, "nope") ? "found" : "none");
	for (i = 0; (k = pb_job_meta_at(job, i, &v)) != NULL; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s=%s;", k, v);
	ck_assert_uint_eq(i, pb_job_meta_count(job));
	ck_assert_ptr_null(pb_job_meta_at(job, i, &v));
	ck_assert_uint_lt(n, sizeof(out));
	ck_assert_int_eq(pb_job_complete(job, PB_OK, out, n, NULL), 0);
}

/* Counts cancels; the job stays held until the test completes it. */
static void
on_cancel(struct pb_worker *w, struct pb_job *job, void *ud)
{
	(void)w; (void)ud;
	ck_assert(pb_job_cancelled(job));
	seen.ncancel++;
}

/* Keeps every result delivered to a callback. */
static void
on_result(struct pb_client *c, struct pb_result *r, void *ud)
{
	(void)c; (void)ud;
	if (seen.nresults < MANY_JOBS)
		seen.results[seen.nresults] = r;
	else
		pb_result_free(r);
	seen.nresults++;
}

/* Appends each PROGRESS payload, checking it belongs to the job. */
static void
on_progress(struct pb_client *c, const uint8_t *id, const void *data,
    size_t len, void *ud)
{
	(void)c;
	if (memcmp(id, ud, PB_ID_LEN) != 0)
		seen.bad++;
	if (strlen(seen.progress) + len < sizeof(seen.progress))
		strncat(seen.progress, data, len);
	seen.nprogress++;
}

/* A new worker on ep serving rev, echo, fail, hold, progress; connected. */
static struct pb_worker *
worker_start(const char *ep, uint32_t capacity)
{
	struct pb_worker	*w;

	ck_assert_int_eq(pb_worker_new(ep, NULL, &w), 0);
	ck_assert_int_eq(pb_worker_add_function(w, "rev", h_rev, NULL), 0);
	ck_assert_int_eq(pb_worker_add_function(w, "fail", h_fail, NULL), 0);
	ck_assert_int_eq(pb_worker_add_function(w, "echo", h_echo, NULL), 0);
	ck_assert_int_eq(pb_worker_add_function(w, "hold", h_hold, NULL), 0);
	ck_assert_int_eq(pb_worker_add_function(w, "progress", h_progress,
	    NULL), 0);
	ck_assert_int_eq(pb_worker_add_function(w, "meta", h_meta, NULL), 0);
	ck_assert_int_eq(pb_worker_set_capacity(w, capacity), 0);
	pb_worker_on_cancel(w, on_cancel, NULL);
	ck_assert_int_eq(pb_worker_connect(w), 0);
	ck_assert_int_ge(pb_worker_fd(w), 0);
	return w;
}

/*
 * Drives c and w (either may be NULL) from this thread until cond(arg) is
 * true or timeout_ms passed. Returns whether cond became true.
 */
static bool
pump(struct pb_client *c, struct pb_worker *w, bool (*cond)(void *),
    void *arg, int timeout_ms)
{
	unsigned long long	deadline = harness_now_ms() + timeout_ms;
	struct pollfd		pfd[2];
	nfds_t			n;

	while (!cond(arg)) {
		if (harness_now_ms() > deadline)
			return false;
		n = 0;
		if (c != NULL && pb_client_fd(c) >= 0) {
			pfd[n].fd = pb_client_fd(c);
			pfd[n++].events = POLLIN;
		}
		if (w != NULL && pb_worker_fd(w) >= 0) {
			pfd[n].fd = pb_worker_fd(w);
			pfd[n++].events = POLLIN;
		}
		(void)poll(pfd, n, 10);
		if (c != NULL)
			(void)pb_client_dispatch(c, 0);
		if (w != NULL)
			(void)pb_worker_dispatch(w, 0);
	}
	return true;
}

/* Condition: at least *(int *)arg results arrived. */
static bool
cond_results(void *arg)
{
	return seen.nresults >= *(int *)arg;
}

/* Condition: at least *(int *)arg jobs are held. */
static bool
cond_held(void *arg)
{
	return seen.nheld >= *(int *)arg;
}

/* Condition: at least *(int *)arg cancels were seen. */
static bool
cond_cancels(void *arg)
{
	return seen.ncancel >= *(int *)arg;
}

/* Condition: the worker has a connection. */
static bool
cond_worker_connected(void *arg)
{
	return pb_worker_fd(arg) >= 0;
}

/* Condition: the worker lost its connection. */
static bool
cond_worker_disconnected(void *arg)
{
	return pb_worker_fd(arg) < 0;
}

/* A function a forked test worker serves. */
struct fork_fn {
	const char	*name;
	pb_job_fn	 handler;
};

/*
 * Forks a worker child on ep (an endpoint or a list) serving fns (n of
 * them; NULL: worker_start()'s) with capacity, dispatching with no
 * timeout until killed; when kill_on_hold is set, the child SIGKILLs that
 * pid on its first "hold" job. Returns once the child is connected (to at
 * least one broker of a list) and registered.
 */
static pid_t
worker_fork_with(const char *ep, const struct fork_fn *fns, size_t n,
    uint32_t capacity, pid_t kill_on_hold)
{
	struct pb_worker	*w;
	pid_t			 pid, parent = getpid();
	char			 ok;
	int			 pfd[2];

	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(pfd[0]);
		if (fns == NULL)
			w = worker_start(ep, capacity);
		else {
			if (pb_worker_new(ep, NULL, &w) != 0)
				_exit(1);
			for (size_t i = 0; i < n; i++)
				if (pb_worker_add_function(w, fns[i].name,
				    fns[i].handler, NULL) != 0)
					_exit(1);
			if (pb_worker_set_capacity(w, capacity) != 0 ||
			    pb_worker_connect(w) != 0)
				_exit(1);
		}
		if (write(pfd[1], "k", 1) != 1)
			_exit(1);
		for (;;) {
			if (pb_worker_dispatch(w, -1) < 0)
				_exit(1);
			if (kill_on_hold > 0 && seen.nheld > 0) {
				kill(kill_on_hold, SIGKILL);
				kill_on_hold = 0;
			}
		}
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &ok, 1), 1);
	close(pfd[0]);
	return pid;
}

/* A forked worker_start() worker of capacity 4; see worker_fork_with(). */
static pid_t
worker_fork(const char *ep, pid_t kill_on_hold)
{
	return worker_fork_with(ep, NULL, 0, 4, kill_on_hold);
}

/* A forked worker serving fns with capacity; see worker_fork_with(). */
static pid_t
worker_fork_fns(const char *ep, const struct fork_fn *fns, size_t n,
    uint32_t capacity)
{
	return worker_fork_with(ep, fns, n, capacity, 0);
}

/* Kills and reaps a forked worker. */
static void
worker_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

/* ---- args ---------------------------------------------------------------- */

START_TEST(client_bad_arguments)
{
	struct pb_client	*c = NULL;
	struct pb_result	*r = NULL;
	struct pb_run_options	 o = { .priority = 101 };
	char			 longfn[300];
	uint8_t			 id[PB_ID_LEN] = { 0 };

	ck_assert_int_eq(pb_client_connect("unix:/nonexistent", NULL, NULL),
	    -EINVAL);
	ck_assert_int_eq(pb_client_connect("bogus:x", NULL, &c), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(pb_client_last_error(NULL), "bogus:x"));
	ck_assert_int_eq(pb_client_run(NULL, "f", NULL, 0, NULL, &r), -EINVAL);
	ck_assert_int_eq(pb_client_submit(NULL, "f", NULL, 0, NULL, NULL,
	    NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pb_client_cancel(NULL, id), -EINVAL);
	ck_assert_int_eq(pb_client_dispatch(NULL, 0), -EINVAL);
	ck_assert_int_eq(pb_client_sync(NULL, 0), -EINVAL);
	ck_assert_uint_eq(pb_client_pending(NULL), 0);
	ck_assert_int_eq(pb_client_fd(NULL), -1);
	pb_client_free(NULL);
	pb_result_free(NULL);

	/* With a live client: names, sizes and ranges. */
	{
		struct harness_broker	b;

		harness_broker_start(&b, NULL, false);
		c = harness_client(b.unix_ep);
		ck_assert_int_eq(pb_client_submit(c, NULL, NULL, 0, NULL, NULL,
		    NULL, NULL, NULL), -EINVAL);
		ck_assert_int_eq(pb_client_submit(c, "", NULL, 0, NULL, NULL,
		    NULL, NULL, NULL), -EINVAL);
		memset(longfn, 'x', sizeof(longfn) - 1);
		longfn[sizeof(longfn) - 1] = '\0';
		ck_assert_int_eq(pb_client_submit(c, longfn, NULL, 0, NULL,
		    NULL, NULL, NULL, NULL), -EINVAL);
		ck_assert_int_eq(pb_client_submit(c, "f", NULL, 3, NULL, NULL,
		    NULL, NULL, NULL), -EINVAL);
		ck_assert_int_eq(pb_client_submit(c, "f", NULL, 0, &o, NULL,
		    NULL, NULL, NULL), -EINVAL);
		ck_assert_ptr_nonnull(strstr(pb_client_last_error(c),
		    "priority 101"));
		ck_assert_int_eq(pb_client_run(c, "f", NULL, 0, NULL, NULL),
		    -EINVAL);
		/* Detached, its one answer: taken (no worker needed). */
		o = (struct pb_run_options){ .detach = true };
		ck_assert_int_eq(pb_client_run(c, "f", NULL, 0, &o, &r), 0);
		ck_assert_int_eq(r->status, PB_ACCEPTED);
		ck_assert_str_eq(pb_status_name(r->status), "ACCEPTED");
		pb_result_free(r);
		ck_assert_int_eq(pb_client_cancel(c, NULL), -EINVAL);
		ck_assert_int_eq(pb_client_cancel(c, id), -ENOENT);
		ck_assert_int_eq(pb_client_dispatch(c, -2), -EINVAL);
		ck_assert_uint_eq(pb_client_pending(c), 0);
		pb_client_free(c);

		/* A HELLO that cannot fit the broker's 4 KiB limit. */
		{
			static char		 big[5000];
			struct pb_options	 opts = { .name = big };

			memset(big, 'n', sizeof(big) - 1);
			c = NULL;
			ck_assert_int_eq(pb_client_connect(b.unix_ep, &opts,
			    &c), -EINVAL);
			ck_assert_ptr_null(c);
			ck_assert_ptr_nonnull(strstr(pb_client_last_error(NULL),
			    "too long"));
		}
		harness_broker_stop(&b);
	}
}
END_TEST

START_TEST(worker_bad_arguments)
{
	struct pb_worker	*w = NULL;
	char			 name[300], fn[8];
	int			 i;

	ck_assert_int_eq(pb_worker_new(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pb_worker_new("nope", NULL, &w), -EINVAL);
	ck_assert_ptr_null(w);
	ck_assert_int_eq(pb_worker_new("unix:/nonexistent/pb.sock", NULL, &w),
	    0);
	ck_assert_int_eq(pb_worker_add_function(NULL, "f", h_rev, NULL),
	    -EINVAL);
	ck_assert_int_eq(pb_worker_add_function(w, NULL, h_rev, NULL),
	    -EINVAL);
	ck_assert_int_eq(pb_worker_add_function(w, "", h_rev, NULL), -EINVAL);
	ck_assert_int_eq(pb_worker_add_function(w, "f", NULL, NULL), -EINVAL);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(pb_worker_add_function(w, name, h_rev, NULL),
	    -EINVAL);
	name[255] = '\0';
	ck_assert_int_eq(pb_worker_add_function(w, name, h_rev, NULL), 0);
	for (i = 1; i < 256; i++) {
		snprintf(fn, sizeof(fn), "f%d", i);
		ck_assert_int_eq(pb_worker_add_function(w, fn, h_rev, NULL), 0);
	}
	ck_assert_int_eq(pb_worker_add_function(w, "one-too-many", h_rev,
	    NULL), -ENOSPC);
	/* Re-adding a name replaces its handler, it takes no new slot. */
	ck_assert_int_eq(pb_worker_add_function(w, "f1", h_fail, NULL), 0);
	ck_assert_int_eq(pb_worker_set_capacity(w, 0), -EINVAL);
	ck_assert_int_eq(pb_worker_set_capacity(w, 65536), -EINVAL);
	ck_assert_int_eq(pb_worker_set_capacity(w, 65535), 0);
	ck_assert_int_eq(pb_worker_set_capacity(NULL, 1), -EINVAL);
	ck_assert_int_eq(pb_worker_connect(NULL), -EINVAL);
	ck_assert_int_eq(pb_worker_dispatch(NULL, 0), -EINVAL);
	ck_assert_int_eq(pb_worker_dispatch(w, -5), -EINVAL);
	ck_assert_int_eq(pb_worker_run(NULL), -EINVAL);
	ck_assert_int_eq(pb_worker_fd(NULL), -1);
	ck_assert_int_eq(pb_worker_fd(w), -1);
	ck_assert_int_eq(pb_job_complete(NULL, PB_OK, NULL, 0, NULL),
	    -EINVAL);
	ck_assert_int_eq(pb_job_progress(NULL, NULL, 0), -EINVAL);
	ck_assert_ptr_null(pb_job_id(NULL));
	ck_assert_ptr_null(pb_job_function(NULL));
	ck_assert_ptr_null(pb_job_payload(NULL, NULL));
	ck_assert(!pb_job_cancelled(NULL));
	pb_worker_on_cancel(NULL, on_cancel, NULL);
	pb_worker_stop(NULL);
	pb_worker_free(w);
	pb_worker_free(NULL);
}
END_TEST

START_TEST(status_names)
{
	ck_assert_str_eq(pb_status_name(PB_OK), "OK");
	ck_assert_str_eq(pb_status_name(PB_TIMEOUT), "TIMEOUT");
	ck_assert_str_eq(pb_status_name(PB_SHUTTING_DOWN), "SHUTTING_DOWN");
	ck_assert_str_eq(pb_status_name(PB_DISCONNECTED), "DISCONNECTED");
	ck_assert_str_eq(pb_status_name((enum pb_status)99), "UNKNOWN");
}
END_TEST

START_TEST(default_endpoint_rules)
{
	char	buf[512], small[8];

	ck_assert_int_eq(pb_default_endpoint(NULL, 10), -EINVAL);
	setenv("PATCHBAY_BROKER", "tcp:127.0.0.1:7", 1);
	setenv("PATCHBAY_SOCKET", "/tmp/x.sock", 1);
	ck_assert_int_eq(pb_default_endpoint(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "tcp:127.0.0.1:7");
	unsetenv("PATCHBAY_BROKER");
	ck_assert_int_eq(pb_default_endpoint(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "unix:/tmp/x.sock");
	ck_assert_int_eq(pb_default_endpoint(small, sizeof(small)),
	    -ENAMETOOLONG);
	unsetenv("PATCHBAY_SOCKET");
	setenv("XDG_RUNTIME_DIR", "/run/user/5", 1);
	ck_assert_int_eq(pb_default_endpoint(buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "unix:/run/user/5/patchbay.sock");
	unsetenv("XDG_RUNTIME_DIR");
}
END_TEST

START_TEST(client_connect_missing_socket)
{
	struct pb_client	*c = NULL;
	char			 dir[256], ep[300];
	unsigned long long	 t0;
	int			 r;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(ep, sizeof(ep), "unix:%s/none.sock", dir);
	t0 = harness_now_ms();
	r = pb_client_connect(ep, NULL, &c);
	ck_assert_msg(r == -ENOENT || r == -ECONNREFUSED, "got %d", r);
	ck_assert_ptr_null(c);
	ck_assert_uint_lt(harness_now_ms() - t0, 1000);
	ck_assert_ptr_nonnull(strstr(pb_client_last_error(NULL), ep));

	/* Nobody on a TCP port: refused at once. */
	t0 = harness_now_ms();
	r = pb_client_connect("tcp:127.0.0.1:1", NULL, &c);
	ck_assert_int_eq(r, -ECONNREFUSED);
	ck_assert_uint_lt(harness_now_ms() - t0, 1000);
}
END_TEST

START_TEST(client_connect_bad_token)
{
	struct harness_broker	 b;
	struct pb_client	*c = NULL;
	struct pb_options	 o = { .token = "wrong" };
	const char		*extra[] = { "--token-file", NULL, NULL };
	char			 path[300], *msg;
	FILE			*f;

	harness_tmpdir(b.dir, sizeof(b.dir));
	snprintf(path, sizeof(path), "%s/token", b.dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("sesame\n", f);
	fclose(f);
	chmod(path, 0600);
	extra[1] = path;
	harness_broker_start(&b, extra, true);
	ck_assert_int_eq(pb_client_connect(b.unix_ep, &o, &c), -EPROTO);
	ck_assert_ptr_null(c);
	msg = strdup(pb_client_last_error(NULL));
	ck_assert_msg(strstr(msg, "token") != NULL, "error: %s", msg);
	free(msg);
	/* No token at all: refused too. */
	ck_assert_int_eq(pb_client_connect(b.unix_ep, NULL, &c), -EPROTO);
	o.token = "sesame";
	ck_assert_int_eq(pb_client_connect(b.unix_ep, &o, &c), 0);
	pb_client_free(c);
	harness_broker_stop(&b);
}
END_TEST

/* ---- run ----------------------------------------------------------------- */

/* Runs "rev" on ep through a forked worker. */
static void
run_rev_on(const char *(*pick)(struct harness_broker *))
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r = NULL;
	pid_t			 wpid;

	harness_broker_start(&b, NULL, false);
	wpid = worker_fork(pick(&b), 0);
	c = harness_client(pick(&b));
	ck_assert_int_eq(pb_client_run(c, "rev", "hello", 5, NULL, &r), 0);
	ck_assert_int_eq(r->status, PB_OK);
	ck_assert_uint_eq(r->len, 5);
	ck_assert_int_eq(memcmp(r->payload, "olleh", 5), 0);
	ck_assert_uint_eq(r->attempts, 1);
	ck_assert_ptr_null(r->error);
	pb_result_free(r);

	/* An empty payload comes back empty. */
	ck_assert_int_eq(pb_client_run(c, "rev", NULL, 0, NULL, &r), 0);
	ck_assert_int_eq(r->status, PB_OK);
	ck_assert_uint_eq(r->len, 0);
	pb_result_free(r);

	/* A handler's ERROR comes back with its sentence. */
	ck_assert_int_eq(pb_client_run(c, "fail", "x", 1, NULL, &r), 0);
	ck_assert_int_eq(r->status, PB_ERROR);
	ck_assert_str_eq(r->error, "bad input");
	pb_result_free(r);
	ck_assert_uint_eq(pb_client_pending(c), 0);

	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}

/* The broker's unix endpoint. */
static const char *
pick_unix(struct harness_broker *b)
{
	return b->unix_ep;
}

/* The broker's tcp endpoint. */
static const char *
pick_tcp(struct harness_broker *b)
{
	return b->tcp_ep;
}

START_TEST(client_run_unix)
{
	run_rev_on(pick_unix);
}
END_TEST

START_TEST(client_run_tcp)
{
	run_rev_on(pick_tcp);
}
END_TEST

START_TEST(client_run_large_payload)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	struct pb_result	*r = NULL;
	size_t			 big = 900 * 1024, len;
	uint8_t			*buf;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_ptr_nonnull(buf = malloc(big));
	for (size_t i = 0; i < big; i++)
		buf[i] = (uint8_t)(i * 7);
	/* Larger than the frame limit: refused locally, nothing is sent. */
	ck_assert_int_eq(pb_client_submit(c, "hold", buf, 2 * 1024 * 1024,
	    NULL, on_result, NULL, NULL, id), -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(pb_client_last_error(c), "limit"));
	/* Just under it: many reads on both sides. */
	ck_assert_int_eq(pb_client_submit(c, "hold", buf, big, NULL,
	    on_result, NULL, NULL, id), 0);
	ck_assert(pump(c, w, cond_held, &one, WAIT_MS));
	ck_assert_int_eq(memcmp(pb_job_id(seen.held[0]), id, PB_ID_LEN), 0);
	ck_assert_int_eq(memcmp(pb_job_payload(seen.held[0], &len), buf, big),
	    0);
	ck_assert_uint_eq(len, big);
	ck_assert_str_eq(pb_job_function(seen.held[0]), "hold");
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_OK, buf, big, NULL),
	    0);
	ck_assert(pump(c, w, cond_results, &one, WAIT_MS));
	r = seen.results[0];
	ck_assert_int_eq(r->status, PB_OK);
	ck_assert_uint_eq(r->len, big);
	ck_assert_int_eq(memcmp(r->payload, buf, big), 0);
	free(buf);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

/*
 * A RUN that fills the frame limit to the byte: the broker forwards it
 * with an attempt number added, a few bytes over max_frame, and the worker
 * must still take it (PROTO_FRAME_SLACK).
 */
START_TEST(client_run_at_frame_limit_reaches_worker)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	size_t			 len = 1024 * 1024, got;
	uint8_t			*buf;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_ptr_nonnull(buf = calloc(1, len));
	/* The largest payload the library lets through: RUN == max_frame. */
	while (pb_client_submit(c, "hold", buf, len, NULL, on_result, NULL,
	    NULL, id) == -EMSGSIZE)
		len--;
	ck_assert_uint_gt(len, 1024 * 1024 - 64);
	ck_assert(pump(c, w, cond_held, &one, WAIT_MS));
	ck_assert_int_eq(memcmp(pb_job_id(seen.held[0]), id, PB_ID_LEN), 0);
	pb_job_payload(seen.held[0], &got);
	ck_assert_uint_eq(got, len);
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_OK, "ok", 2, NULL),
	    0);
	ck_assert(pump(c, w, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_OK);
	free(buf);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(client_run_no_worker)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r = NULL;
	struct pb_run_options	 o = { .nowait = true };

	harness_broker_start(&b, NULL, false);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_run(c, "nobody", "x", 1, &o, &r), 0);
	ck_assert_int_eq(r->status, PB_NO_WORKER);
	pb_result_free(r);
	pb_client_free(c);
	harness_broker_stop(&b);
}
END_TEST

/* A result callback that runs another job, blocking, from inside. */
static void
on_result_run(struct pb_client *c, struct pb_result *r, void *ud)
{
	struct pb_result	*inner = NULL;

	(void)ud;
	ck_assert_int_eq(r->status, PB_OK);
	pb_result_free(r);
	ck_assert_int_eq(pb_client_run(c, "rev", "abc", 3, NULL, &inner), 0);
	ck_assert_int_eq(inner->status, PB_OK);
	ck_assert_int_eq(memcmp(inner->payload, "cba", 3), 0);
	pb_result_free(inner);
	seen.nresults++;
}

START_TEST(client_run_from_callback)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	pid_t			 wpid;
	int			 i;

	harness_broker_start(&b, NULL, false);
	wpid = worker_fork(b.unix_ep, 0);
	c = harness_client(b.unix_ep);
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(pb_client_submit(c, "rev", "x", 1, NULL,
		    on_result_run, NULL, NULL, NULL), 0);
	while (seen.nresults < 10)
		ck_assert_int_ge(pb_client_dispatch(c, WAIT_MS), 0);
	ck_assert_uint_eq(pb_client_pending(c), 0);
	seen_reset();
	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}
END_TEST

/* A result callback that checks a flood job's payload came back whole. */
static void
on_result_flood(struct pb_client *c, struct pb_result *r, void *ud)
{
	const uint8_t	*p = r->payload;

	(void)c; (void)ud;
	if (r->status != PB_OK || r->len != 128 * 1024 ||
	    p[0] != p[r->len - 1])
		seen.bad++;
	pb_result_free(r);
	seen.nresults++;
}

START_TEST(client_submit_flood)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	uint8_t			*buf;
	size_t			 len = 128 * 1024;
	pid_t			 wpid;
	int			 i, n = 200;

	harness_broker_start(&b, NULL, false);
	wpid = worker_fork(b.unix_ep, 0);
	c = harness_client(b.unix_ep);
	ck_assert_ptr_nonnull(buf = malloc(len));
	/*
	 * 25 MiB each way without a dispatch: the results flow back while the
	 * submits are still being written, and the library must keep reading
	 * them for either side to make progress.
	 */
	for (i = 0; i < n; i++) {
		memset(buf, i, len);
		ck_assert_int_eq(pb_client_submit(c, "echo", buf, len, NULL,
		    on_result_flood, NULL, NULL, NULL), 0);
	}
	free(buf);
	while (seen.nresults < n)
		ck_assert_int_ge(pb_client_dispatch(c, WAIT_MS), 0);
	ck_assert_int_eq(seen.bad, 0);
	seen_reset();
	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}
END_TEST

/* ---- submit -------------------------------------------------------------- */

START_TEST(client_submit_many)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	uint8_t			 ids[MANY_JOBS][PB_ID_LEN];
	char			 payload[32], want[32];
	int			 i, n = MANY_JOBS, k;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 16);
	c = harness_client(b.unix_ep);
	/* The second time corked: the submits leave at the first dispatch. */
	if (_i == 1)
		ck_assert_int_eq(pb_client_cork(c, true), 0);
	for (i = 0; i < n; i++) {
		k = snprintf(payload, sizeof(payload), "job-%d", i);
		ck_assert_int_eq(pb_client_submit(c, "rev", payload, (size_t)k,
		    NULL, on_result, NULL, NULL, ids[i]), 0);
	}
	ck_assert_uint_eq(pb_client_pending(c), (size_t)n);
	ck_assert(pump(c, w, cond_results, &n, 30000));
	ck_assert_int_eq(seen.nresults, n);
	ck_assert_uint_eq(pb_client_pending(c), 0);
	/* Every job answered once, with its own payload reversed. */
	for (i = 0; i < n; i++) {
		struct pb_result *r = NULL;

		for (k = 0; k < n; k++) {
			if (memcmp(seen.results[k]->id, ids[i], PB_ID_LEN) == 0) {
				ck_assert_ptr_null(r);
				r = seen.results[k];
			}
		}
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(r->status, PB_OK);
		k = snprintf(payload, sizeof(payload), "job-%d", i);
		for (int j = 0; j < k; j++)
			want[j] = payload[k - 1 - j];
		ck_assert_uint_eq(r->len, (size_t)k);
		ck_assert_int_eq(memcmp(r->payload, want, (size_t)k), 0);
	}
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(worker_capacity_out_of_order)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	uint8_t			 ids[4][PB_ID_LEN];
	char			 p[2] = "a";
	int			 i, four = 4;
	size_t			 len;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 4);
	c = harness_client(b.unix_ep);
	for (i = 0; i < 4; i++) {
		p[0] = (char)('a' + i);
		ck_assert_int_eq(pb_client_submit(c, "hold", p, 1, NULL,
		    on_result, NULL, NULL, ids[i]), 0);
	}
	/* All four run at once on a worker of capacity 4. */
	ck_assert(pump(c, w, cond_held, &four, WAIT_MS));
	ck_assert_int_eq(seen.nheld, 4);
	ck_assert_uint_eq(pb_job_attempt(seen.held[0]), 1);
	ck_assert_uint_eq(pb_job_timeout_ms(seen.held[0]), 0);
	/* Answered last first, each with its own payload in upper case. */
	for (i = 3; i >= 0; i--) {
		struct pb_job	*j = seen.held[i];
		const char	*in = pb_job_payload(j, &len);
		char		 up = (char)(in[0] - 'a' + 'A');

		pb_job_set_userdata(j, &up);
		ck_assert_ptr_eq(pb_job_get_userdata(j), &up);
		ck_assert_int_eq(pb_job_complete(j, PB_OK, &up, 1, NULL), 0);
	}
	ck_assert(pump(c, w, cond_results, &four, WAIT_MS));
	for (i = 0; i < 4; i++) {
		struct pb_result *r = seen.results[i];
		int k;

		for (k = 0; k < 4; k++)
			if (memcmp(r->id, ids[k], PB_ID_LEN) == 0)
				break;
		ck_assert_int_lt(k, 4);
		ck_assert_uint_eq(r->len, 1);
		ck_assert_int_eq(((char *)r->payload)[0], 'A' + k);
		/* Delivered in the order they were answered: d, c, b, a. */
		ck_assert_int_eq(k, 3 - i);
	}
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(client_progress_delivered)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	/* on_progress checks the id it is given against this one. */
	ck_assert_int_eq(pb_client_submit(c, "progress", NULL, 0, NULL,
	    on_result, on_progress, id, id), 0);
	ck_assert(pump(c, w, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.bad, 0);
	ck_assert_int_eq(seen.nprogress, 3);
	ck_assert_str_eq(seen.progress, "123");
	ck_assert_int_eq(seen.results[0]->status, PB_OK);
	ck_assert_uint_eq(seen.results[0]->len, 4);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* ---- meta ---------------------------------------------------------------- */

/* Submits fn with opts and pumps c and w until its result; returns it. */
static struct pb_result *
meta_run(struct pb_client *c, struct pb_worker *w,
    const struct pb_run_options *opts)
{
	struct pb_result	*r;
	int			 want = seen.nresults + 1, r2;

	r2 = pb_client_submit(c, "meta", NULL, 0, opts, on_result, NULL, NULL,
	    NULL);
	ck_assert_msg(r2 == 0, "submit: %s (%s)", strerror(-r2),
	    pb_client_last_error(c));
	ck_assert(pump(c, w, cond_results, &want, WAIT_MS));
	r = seen.results[want - 1];
	ck_assert_int_eq(r->status, PB_OK);
	return r;
}

/* The payload of a result as a string (it is text here). */
static const char *
result_text(const struct pb_result *r)
{
	static char	buf[4096];

	ck_assert_uint_lt(r->len, sizeof(buf));
	memcpy(buf, r->payload, r->len);
	buf[r->len] = '\0';
	return buf;
}

/*
 * pb_run_options.meta reaches the worker's pb_job_meta*() in order;
 * .trace adds a traceparent unless one is given; a job without meta has
 * none (what an older client sends).
 */
START_TEST(client_meta_reaches_worker)
{
	static const struct pb_meta	 meta[] = {
		{ "tenant", "t1" }, { "req.id", "r-7" },
	};
	const struct pb_meta		 given[] = {
		{ "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"
		    "00f067aa0ba902b7-01" },
		{ "tracestate", "congo=t61rcWkgMzE" },
	};
	struct pb_run_options		 o = { .meta = meta, .nmeta = 2 };
	struct harness_broker		 b;
	struct pb_client		*c;
	struct pb_worker		*w;
	const char			*s, *tp;
	char				 first[64];

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);

	ck_assert_str_eq(result_text(meta_run(c, w, &o)),
	    "[t1][none]|tenant=t1;req.id=r-7;");
	ck_assert_str_eq(result_text(meta_run(c, w, NULL)), "[none][none]|");

	o.trace = true;
	s = result_text(meta_run(c, w, &o));
	ck_assert_msg(strncmp(s, "[t1][none]|tenant=t1;req.id=r-7;"
	    "traceparent=", 44) == 0, "got %s", s);
	tp = s + 44;
	ck_assert_uint_eq(strlen(tp), PB_TRACEPARENT_LEN + 1);
	ck_assert(meta_traceparent_ok((const uint8_t *)tp,
	    PB_TRACEPARENT_LEN));
	ck_assert_int_eq(tp[PB_TRACEPARENT_LEN], ';');
	ck_assert_str_eq(tp + 52, "-01;");
	snprintf(first, sizeof(first), "%s", tp);
	/* Each traced job starts a trace of its own. */
	s = result_text(meta_run(c, w, &o));
	ck_assert_str_ne(s + 44, first);

	/* A traceparent given is kept, and trace adds nothing. */
	o.meta = given;
	s = result_text(meta_run(c, w, &o));
	ck_assert_str_eq(s, "[none][none]|traceparent=00-4bf92f3577b34da6a3c"
	    "e929d0e0e4736-00f067aa0ba902b7-01;tracestate=congo=t61rcWkgMzE;");

	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* Meta the broker would refuse is refused by the library, with its words. */
START_TEST(client_meta_refused_locally)
{
	struct pb_meta		 many[33], bad[] = { { "a b", "1" } };
	struct pb_meta		 null[] = { { "k", NULL } };
	struct pb_run_options	 o = { .meta = bad, .nmeta = 1 };
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	char			 keys[33][8];
	uint8_t			 id[PB_ID_LEN];

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "meta", NULL, 0, &o, on_result,
	    NULL, NULL, id), -EINVAL);
	ck_assert_str_eq(pb_client_last_error(c), "meta key 'a b' may only "
	    "hold A-Z a-z 0-9 _ . - (byte 1 is not one)");
	for (int i = 0; i < 33; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		many[i].key = keys[i];
		many[i].value = "v";
	}
	o.meta = many;
	o.nmeta = 33;
	ck_assert_int_eq(pb_client_submit(c, "meta", NULL, 0, &o, on_result,
	    NULL, NULL, id), -EINVAL);
	ck_assert_str_eq(pb_client_last_error(c),
	    "meta has 33 keys, more than 32");
	o.meta = null;
	o.nmeta = 1;
	ck_assert_int_eq(pb_client_submit(c, "meta", NULL, 0, &o, on_result,
	    NULL, NULL, id), -EINVAL);
	ck_assert_str_eq(pb_client_last_error(c), "meta entry 0 has a NULL "
	    "value");
	o.meta = NULL;
	ck_assert_int_eq(pb_client_submit(c, "meta", NULL, 0, &o, on_result,
	    NULL, NULL, id), -EINVAL);
	/* Nothing was recorded or sent; the client goes on. */
	ck_assert_uint_eq(pb_client_pending(c), 0);
	o.meta = many;
	o.nmeta = 32;
	ck_assert_str_eq(result_text(meta_run(c, w, &o)) + 13,
	    "k0=v;k1=v;k2=v;k3=v;k4=v;k5=v;k6=v;k7=v;k8=v;k9=v;k10=v;k11=v;"
	    "k12=v;k13=v;k14=v;k15=v;k16=v;k17=v;k18=v;k19=v;k20=v;k21=v;"
	    "k22=v;k23=v;k24=v;k25=v;k26=v;k27=v;k28=v;k29=v;k30=v;k31=v;");
	ck_assert_int_eq(seen.nresults, 1);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* pb_traceparent_generate(): the W3C form, new ids each time. */
START_TEST(traceparent_generate_makes_new_ids)
{
	char	a[PB_TRACEPARENT_LEN + 1], b[PB_TRACEPARENT_LEN + 1];

	ck_assert_int_eq(pb_traceparent_generate(a, sizeof(a)), 0);
	ck_assert_int_eq(pb_traceparent_generate(b, sizeof(b)), 0);
	ck_assert_uint_eq(strlen(a), PB_TRACEPARENT_LEN);
	ck_assert(meta_traceparent_ok((const uint8_t *)a, strlen(a)));
	ck_assert(strncmp(a, "00-", 3) == 0 && strcmp(a + 52, "-01") == 0);
	ck_assert(memcmp(a + 3, b + 3, 32) != 0);
	ck_assert(memcmp(a + 36, b + 36, 16) != 0);
	ck_assert_int_eq(pb_traceparent_generate(a, PB_TRACEPARENT_LEN),
	    -EINVAL);
	ck_assert_int_eq(pb_traceparent_generate(NULL, 64), -EINVAL);
}
END_TEST

START_TEST(client_sync_detached)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	struct pb_run_options	 o = { .detach = true };
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "hold", "d", 1, &o, NULL, NULL,
	    NULL, id), 0);
	/* Pending until its ACCEPTED, which comes before the sync's PONG. */
	ck_assert_uint_eq(pb_client_pending(c), 1);
	ck_assert_int_eq(pb_client_sync(c, WAIT_MS), 0);
	ck_assert_uint_eq(pb_client_pending(c), 0);
	/* The broker accepted it: the worker gets it without the client. */
	ck_assert(pump(NULL, w, cond_held, &one, WAIT_MS));
	ck_assert_int_eq(memcmp(pb_job_id(seen.held[0]), id, PB_ID_LEN), 0);
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_OK, NULL, 0, NULL),
	    0);
	/* No result ever comes for a detached job. */
	ck_assert_int_eq(pb_client_sync(c, WAIT_MS), 0);
	ck_assert_int_eq(pb_client_dispatch(c, 0), 0);
	ck_assert_int_eq(seen.nresults, 0);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* ---- cancel -------------------------------------------------------------- */

START_TEST(client_cancel_running)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	uint8_t			 id[PB_ID_LEN], other[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "hold", "x", 1, NULL, on_result,
	    NULL, NULL, id), 0);
	ck_assert(pump(c, w, cond_held, &one, WAIT_MS));
	ck_assert_int_eq(pb_client_cancel(c, id), 0);
	ck_assert(pump(c, w, cond_cancels, &one, WAIT_MS));
	ck_assert(pb_job_cancelled(seen.held[0]));
	ck_assert_int_eq(seen.nresults, 0);
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_CANCELLED, NULL, 0,
	    NULL), 0);
	ck_assert(pump(c, w, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_CANCELLED);
	ck_assert_int_eq(memcmp(seen.results[0]->id, id, PB_ID_LEN), 0);
	/* Not pending any more. */
	ck_assert_int_eq(pb_client_cancel(c, id), -ENOENT);
	memset(other, 0x5a, sizeof(other));
	ck_assert_int_eq(pb_client_cancel(c, other), -ENOENT);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(client_cancel_queued)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	c = harness_client(b.unix_ep);
	/* No worker: the job waits in the queue and is cancelled there. */
	ck_assert_int_eq(pb_client_submit(c, "nobody", NULL, 0, NULL,
	    on_result, NULL, NULL, id), 0);
	ck_assert_int_eq(pb_client_sync(c, WAIT_MS), 0);
	ck_assert_int_eq(pb_client_cancel(c, id), 0);
	ck_assert(pump(c, NULL, cond_results, &one, WAIT_MS));
	r = seen.results[0];
	ck_assert_int_eq(r->status, PB_CANCELLED);
	ck_assert_uint_eq(pb_client_pending(c), 0);
	seen_reset();
	pb_client_free(c);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(client_timeout)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	struct pb_run_options	 o = { .timeout_ms = 300 };
	struct pb_result	*r;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "hold", "t", 1, &o, on_result,
	    NULL, NULL, id), 0);
	ck_assert(pump(c, w, cond_held, &one, WAIT_MS));
	ck_assert_uint_gt(pb_job_timeout_ms(seen.held[0]), 0);
	ck_assert_uint_le(pb_job_timeout_ms(seen.held[0]), 300);
	ck_assert(pump(c, w, cond_results, &one, WAIT_MS));
	r = seen.results[0];
	ck_assert_int_eq(r->status, PB_TIMEOUT);
	/* The worker is told, and its late answer goes nowhere. */
	ck_assert(pump(c, w, cond_cancels, &one, WAIT_MS));
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_OK, "late", 4,
	    NULL), 0);
	ck_assert_int_eq(pb_client_sync(c, WAIT_MS), 0);
	ck_assert_int_eq(seen.nresults, 1);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* ---- disconnect ---------------------------------------------------------- */

START_TEST(client_broker_killed)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	uint8_t			 id[PB_ID_LEN];
	int			 three = 3, r, i;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 2);
	c = harness_client(b.unix_ep);
	/* Two running, one queued. */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(pb_client_submit(c, "hold", "k", 1, NULL,
		    on_result, NULL, NULL, id), 0);
	ck_assert_int_eq(pb_client_sync(c, WAIT_MS), 0);
	ck_assert(pump(NULL, w, cond_held, &(int){ 2 }, WAIT_MS));
	kill(b.pid, SIGKILL);
	ck_assert(pump(c, NULL, cond_results, &three, WAIT_MS));
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(seen.results[i]->status, PB_DISCONNECTED);
		ck_assert_str_eq(seen.results[i]->error,
		    "connection to the broker lost");
	}
	ck_assert_uint_eq(pb_client_pending(c), 0);
	/* Once; a new job tries to reconnect, and there is no broker. */
	r = pb_client_dispatch(c, 100);
	ck_assert_int_eq(r, -ENOTCONN);
	ck_assert_int_eq(seen.nresults, 3);
	ck_assert_str_eq(pb_client_last_error(c),
	    "connection to the broker lost");
	ck_assert_int_eq(pb_client_submit(c, "rev", NULL, 0, NULL, on_result,
	    NULL, NULL, NULL), -ENOTCONN);
	ck_assert_int_eq(pb_client_sync(c, 100), -ENOTCONN);
	ck_assert_msg(strncmp(pb_client_last_error(c), "no broker to fail "
	    "over to: ", 26) == 0, "%s", pb_client_last_error(c));
	ck_assert_int_eq(seen.nresults, 3);

	/* The worker's jobs are abandoned: completing them says so. */
	ck_assert(pump(NULL, w, cond_worker_disconnected, w, WAIT_MS));
	for (i = 0; i < seen.nheld; i++)
		ck_assert_int_eq(pb_job_complete(seen.held[i], PB_OK, NULL, 0,
		    NULL), -ENOTCONN);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(client_run_broker_killed)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r = NULL;
	unsigned long long	 t0;
	pid_t			 wpid;

	harness_broker_start(&b, NULL, false);
	/* The worker kills the broker when the job reaches it. */
	wpid = worker_fork(b.unix_ep, b.pid);
	c = harness_client(b.unix_ep);
	t0 = harness_now_ms();
	ck_assert_int_eq(pb_client_run(c, "hold", "x", 1, NULL, &r), 0);
	ck_assert_uint_lt(harness_now_ms() - t0, 5000);
	ck_assert_int_eq(r->status, PB_DISCONNECTED);
	ck_assert_str_eq(r->error, "connection to the broker lost");
	pb_result_free(r);
	ck_assert_int_eq(pb_client_run(c, "rev", "x", 1, NULL, &r), -ENOTCONN);
	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(client_broker_shutdown)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	harness_broker_start(&b, NULL, false);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "nobody", NULL, 0, NULL,
	    on_result, NULL, NULL, id), 0);
	ck_assert_int_eq(pb_client_sync(c, WAIT_MS), 0);
	/* A graceful stop answers queued jobs before saying goodbye. */
	kill(b.pid, SIGTERM);
	ck_assert(pump(c, NULL, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_SHUTTING_DOWN);
	ck_assert_int_eq(pb_client_dispatch(c, WAIT_MS), -ENOTCONN);
	ck_assert_str_eq(pb_client_last_error(c), "broker shutting down");
	seen_reset();
	pb_client_free(c);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(worker_reconnects)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	struct pb_job		*old;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1, two = 2;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 1);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "hold", "1", 1, NULL, on_result,
	    NULL, NULL, id), 0);
	ck_assert(pump(c, w, cond_held, &one, WAIT_MS));
	old = seen.held[0];
	pb_client_free(c);

	harness_broker_stop(&b);
	ck_assert(pump(NULL, w, cond_worker_disconnected, w, WAIT_MS));
	/* Retries against a missing socket do not make the worker give up. */
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(pb_worker_dispatch(w, 50), 0);

	harness_broker_start(&b, NULL, true);
	ck_assert(pump(NULL, w, cond_worker_connected, w, WAIT_MS));
	/* A job from the old connection cannot be answered on the new one. */
	ck_assert_int_eq(pb_job_complete(old, PB_OK, "x", 1, NULL),
	    -ENOTCONN);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "hold", "2", 1, NULL, on_result,
	    NULL, NULL, id), 0);
	ck_assert(pump(c, w, cond_held, &two, WAIT_MS));
	ck_assert_int_eq(memcmp(pb_job_id(seen.held[1]), id, PB_ID_LEN), 0);
	ck_assert_int_eq(pb_job_complete(seen.held[1], PB_OK, "y", 1, NULL),
	    0);
	ck_assert(pump(c, w, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_OK);
	seen_reset();
	pb_client_free(c);
	pb_worker_free(w);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(worker_free_with_jobs_out)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	uint8_t			 id[PB_ID_LEN];
	int			 two = 2;

	harness_broker_start(&b, NULL, false);
	w = worker_start(b.unix_ep, 2);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "hold", "1", 1, NULL, on_result,
	    NULL, NULL, id), 0);
	ck_assert_int_eq(pb_client_submit(c, "hold", "2", 1, NULL, on_result,
	    NULL, NULL, id), 0);
	ck_assert(pump(c, w, cond_held, &two, WAIT_MS));
	/* Jobs outlive their worker; completing them frees them. */
	pb_worker_free(w);
	ck_assert_int_eq(pb_job_progress(seen.held[0], "p", 1), -ENOTCONN);
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_OK, NULL, 0, NULL),
	    -ENOTCONN);
	ck_assert_int_eq(pb_job_complete(seen.held[1], PB_OK, NULL, 0, NULL),
	    -ENOTCONN);
	/* The broker answers the client for the lost worker. */
	ck_assert(pump(c, NULL, cond_results, &two, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_WORKER_LOST);
	seen_reset();
	pb_client_free(c);
	harness_broker_stop(&b);
}
END_TEST

/* ---- several brokers -------------------------------------------------- */

#define STREAM_JOBS	300
#define STREAM_WINDOW	8
#define STREAM_KILL_AT	100

/* "nap": sleeps 20 ms, then answers the payload as it came. */
static void
h_nap(struct pb_worker *w, struct pb_job *job, void *ud)
{
	const void	*p;
	size_t		 len;

	(void)w; (void)ud;
	usleep(20 * 1000);
	p = pb_job_payload(job, &len);
	(void)pb_job_complete(job, PB_OK, p, len, NULL);
}

/* What each brokers-test callback saw: the state changes, in order. */
static struct {
	char	log[1024];
} states;

/* Records "+EP" or "-EP" for each connection state change. */
static void
on_state(struct pb_worker *w, const char *endpoint, bool connected,
    void *ud)
{
	size_t	len = strlen(states.log);

	(void)w; (void)ud;
	snprintf(states.log + len, sizeof(states.log) - len, "%c%s ",
	    connected ? '+' : '-', endpoint);
}


/* True once "rev" runs on ep without queueing: a worker is registered. */
static bool
cond_serves(void *arg)
{
	struct pb_run_options	 ro = { .nowait = true, .timeout_ms = 2000 };
	struct pb_client	*c;
	struct pb_result	*r;
	bool			 ok = false;

	if (pb_client_connect(arg, NULL, &c) != 0)
		return false;
	if (pb_client_run(c, "rev", "ab", 2, &ro, &r) == 0) {
		ok = r->status == PB_OK && r->len == 2 &&
		    memcmp(r->payload, "ba", 2) == 0;
		pb_result_free(r);
	}
	pb_client_free(c);
	return ok;
}

/* One stream job's outcomes, counted by its index. */
static struct {
	int		 outcomes[STREAM_JOBS];
	enum pb_status	 status[STREAM_JOBS];
	int		 done;
} stream;

/* Counts an outcome of a stream job (userdata: its index + 1). */
static void
on_stream_result(struct pb_client *c, struct pb_result *r, void *ud)
{
	size_t	i = (size_t)(uintptr_t)ud - 1;

	(void)c;
	if (i < STREAM_JOBS) {
		stream.outcomes[i]++;
		stream.status[i] = r->status;
		if (r->status == PB_OK && (r->len != sizeof(i) ||
		    memcmp(r->payload, &i, sizeof(i)) != 0))
			stream.status[i] = PB_ERROR;	/* a wrong answer */
	}
	stream.done++;
	pb_result_free(r);
}

/*
 * Two brokers, a worker registered with both, a client given both: the
 * broker the client uses is killed during a stream of jobs. Every job gets
 * exactly one outcome, OK or (in flight on the lost broker) DISCONNECTED,
 * never resubmitted; the client fails over and new jobs keep succeeding
 * on the other broker.
 */
START_TEST(two_brokers_failover_during_stream)
{
	struct harness_broker	 a, b;
	struct pb_client	*c;
	char			 both[700];
	size_t			 sent = 0, i;
	int			 nok = 0, ndisc = 0, r;
	pid_t			 wpid;

	harness_broker_start(&a, NULL, false);
	harness_broker_start(&b, NULL, false);
	snprintf(both, sizeof(both), "%s,%s", a.unix_ep, b.tcp_ep);
	wpid = worker_fork_fns(both, (const struct fork_fn[]){
	    { "nap", h_nap }, { "rev", h_rev } }, 2, 4);
	ck_assert(harness_wait_until(cond_serves, a.unix_ep, WAIT_MS));
	ck_assert(harness_wait_until(cond_serves, b.tcp_ep, WAIT_MS));
	ck_assert_int_eq(pb_client_connect(both, NULL, &c), 0);
	memset(&stream, 0, sizeof(stream));
	while (stream.done < STREAM_JOBS) {
		while (sent < STREAM_JOBS &&
		    pb_client_pending(c) < STREAM_WINDOW) {
			r = pb_client_submit(c, "nap", &sent, sizeof(sent),
			    NULL, on_stream_result, NULL,
			    (void *)(uintptr_t)(sent + 1), NULL);
			ck_assert_msg(r == 0, "submit %zu: %s (%s)", sent,
			    strerror(-r), pb_client_last_error(c));
			sent++;
		}
		/* -ENOTCONN once, when the loss is found: the next fails over. */
		r = pb_client_dispatch(c, 1000);
		ck_assert_msg(r >= 0 || r == -ENOTCONN, "dispatch: %s",
		    strerror(-r));
		if (stream.done >= STREAM_KILL_AT && a.pid > 0) {
			kill(a.pid, SIGKILL);
			harness_broker_stop(&a);
		}
	}
	for (i = 0; i < STREAM_JOBS; i++) {
		ck_assert_msg(stream.outcomes[i] == 1, "job %zu: %d outcomes",
		    i, stream.outcomes[i]);
		ck_assert_msg(stream.status[i] == PB_OK ||
		    stream.status[i] == PB_DISCONNECTED, "job %zu: %s", i,
		    pb_status_name(stream.status[i]));
		nok += stream.status[i] == PB_OK;
		ndisc += stream.status[i] == PB_DISCONNECTED;
	}
	/* Jobs were in flight on the killed broker, and said so. */
	ck_assert_int_ge(ndisc, 1);
	ck_assert_int_le(ndisc, STREAM_WINDOW * 2);
	ck_assert_int_eq(nok + ndisc, STREAM_JOBS);
	/* After the failover, every job succeeded on the other broker. */
	for (i = STREAM_JOBS - 100; i < STREAM_JOBS; i++)
		ck_assert_msg(stream.status[i] == PB_OK, "job %zu: %s", i,
		    pb_status_name(stream.status[i]));
	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}
END_TEST

/*
 * A worker given two brokers, one of them not up yet: it serves the one
 * that is, registers with the other once it starts, and stays with both
 * while one restarts. The state callback tells each change.
 */
START_TEST(worker_list_connects_to_each_on_its_own)
{
	struct harness_broker	 a, b;
	struct pb_worker	*w;
	struct pb_client	*c;
	char			 both[700], want[800];

	harness_broker_start(&a, NULL, false);
	harness_tmpdir(b.dir, sizeof(b.dir));
	snprintf(both, sizeof(both), "%s,unix:%s/pb.sock", a.unix_ep,
	    b.dir);
	memset(&states, 0, sizeof(states));
	ck_assert_int_eq(pb_worker_new(both, NULL, &w), 0);
	pb_worker_on_state(w, on_state, NULL);
	ck_assert_int_eq(pb_worker_add_function(w, "rev", h_rev, NULL), 0);
	/* One of two is enough to start. */
	ck_assert_int_eq(pb_worker_connect(w), 0);
	ck_assert_int_ge(pb_worker_fd(w), 0);
	ck_assert_int_ge(pb_worker_timeout_ms(w), 0);	/* a retry is due */
	snprintf(want, sizeof(want), "+%s ", a.unix_ep);
	ck_assert_str_eq(states.log, want);
	c = harness_client(a.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "rev", "xy", 2, NULL, on_result,
	    NULL, NULL, NULL), 0);
	ck_assert(pump(c, w, cond_results, &(int){ 1 }, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_OK);
	pb_client_free(c);

	harness_broker_start(&b, NULL, true);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "rev", "ab", 2, NULL, on_result,
	    NULL, NULL, NULL), 0);
	ck_assert(pump(c, w, cond_results, &(int){ 2 }, WAIT_MS));
	ck_assert_int_eq(seen.results[1]->status, PB_OK);
	ck_assert_int_eq(memcmp(seen.results[1]->payload, "ba", 2), 0);
	pb_client_free(c);
	snprintf(want, sizeof(want), "+%s +unix:%s/pb.sock ", a.unix_ep,
	    b.dir);
	ck_assert_str_eq(states.log, want);

	/* A goes away: B is still served, and A is taken back on return. */
	harness_broker_stop(&a);
	c = harness_client(b.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "rev", "cd", 2, NULL, on_result,
	    NULL, NULL, NULL), 0);
	ck_assert(pump(c, w, cond_results, &(int){ 3 }, WAIT_MS));
	ck_assert_int_eq(seen.results[2]->status, PB_OK);
	pb_client_free(c);
	harness_broker_start(&a, NULL, true);
	c = harness_client(a.unix_ep);
	ck_assert_int_eq(pb_client_submit(c, "rev", "ef", 2, NULL, on_result,
	    NULL, NULL, NULL), 0);
	ck_assert(pump(c, w, cond_results, &(int){ 4 }, WAIT_MS));
	ck_assert_int_eq(seen.results[3]->status, PB_OK);
	pb_client_free(c);
	snprintf(want, sizeof(want), "+%s +unix:%s/pb.sock -%s +%s ",
	    a.unix_ep, b.dir, a.unix_ep, a.unix_ep);
	ck_assert_str_eq(states.log, want);
	seen_reset();
	pb_worker_free(w);
	harness_broker_stop(&a);
	harness_broker_stop(&b);
}
END_TEST

/* A client given a list with a dead first broker uses the next one. */
START_TEST(client_list_skips_unreachable_broker)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_worker	*w;
	char			 list[700], dead[300];

	harness_broker_start(&b, NULL, false);
	harness_tmpdir(dead, sizeof(dead));
	snprintf(list, sizeof(list), "unix:%s/nobody.sock,%s", dead,
	    b.tcp_ep);
	w = worker_start(b.unix_ep, 1);
	ck_assert_int_eq(pb_client_connect(list, NULL, &c), 0);
	ck_assert_int_eq(pb_client_submit(c, "rev", "abc", 3, NULL,
	    on_result, NULL, NULL, NULL), 0);
	ck_assert(pump(c, w, cond_results, &(int){ 1 }, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_OK);
	pb_client_free(c);
	/* Nothing reachable: each failure is named. */
	snprintf(list, sizeof(list), "unix:%s/nobody.sock,unix:%s/no2.sock",
	    dead, dead);
	ck_assert_int_eq(pb_client_connect(list, NULL, &c), -ENOENT);
	ck_assert_msg(strstr(pb_client_last_error(NULL), "nobody.sock") !=
	    NULL && strstr(pb_client_last_error(NULL), "no2.sock") != NULL,
	    "%s", pb_client_last_error(NULL));
	/* A bad list is refused before any connection. */
	ck_assert_int_eq(pb_client_connect("unix:/a,,unix:/b", NULL, &c),
	    -EINVAL);
	ck_assert_ptr_nonnull(strstr(pb_client_last_error(NULL),
	    "empty entry"));
	seen_reset();
	pb_worker_free(w);
	ck_assert_int_eq(pb_worker_new("unix:/a,unix:/a", NULL, &w), -EINVAL);
	harness_broker_stop(&b);
}
END_TEST

/* ---- long ---------------------------------------------------------------- */

#define LONG_STEPS	8
#define LONG_STEP_MS	5000

/*
 * "sleepy": blocks its thread for LONG_STEPS x LONG_STEP_MS, sending one
 * PROGRESS ("1".."8") after each step, then answers OK.
 */
static void
h_sleepy(struct pb_worker *w, struct pb_job *job, void *ud)
{
	char	c;

	(void)w; (void)ud;
	for (int i = 0; i < LONG_STEPS; i++) {
		usleep(LONG_STEP_MS * 1000);
		c = (char)('1' + i);
		(void)pb_job_progress(job, &c, 1);
	}
	(void)pb_job_complete(job, PB_OK, "awake", 5, NULL);
}

/* A job handed to another thread, which answers it after a while. */
static void *
thread_answer(void *arg)
{
	struct pb_job	*job = arg;

	usleep(300 * 1000);
	(void)pb_job_progress(job, "t", 1);
	(void)pb_job_complete(job, PB_OK, "threaded", 8, NULL);
	return NULL;
}

/* "thread": hands the job to a new thread and returns at once. */
static void
h_thread(struct pb_worker *w, struct pb_job *job, void *ud)
{
	pthread_t	t;

	(void)w; (void)ud;
	if (pthread_create(&t, NULL, thread_answer, job) == 0)
		pthread_detach(t);
	else
		(void)pb_job_complete(job, PB_ERROR, NULL, 0, "no thread");
}

/* A worker serving "sleepy" and "thread" on ep with capacity 2. */
static pid_t
worker_fork_long(const char *ep)
{
	static const struct fork_fn	fns[] = {
		{ "sleepy", h_sleepy }, { "thread", h_thread },
	};

	return worker_fork_fns(ep, fns, 2, 2);
}

/* When each PROGRESS of the long job arrived, ms since it was submitted. */
static struct {
	unsigned long long	 start;
	unsigned long long	 at[LONG_STEPS + 1];
	int			 n;
} arrivals;

/* Records a PROGRESS arrival time. */
static void
on_progress_time(struct pb_client *c, const uint8_t *id, const void *data,
    size_t len, void *ud)
{
	(void)c; (void)id; (void)data; (void)len; (void)ud;
	if (arrivals.n <= LONG_STEPS)
		arrivals.at[arrivals.n] = harness_now_ms() - arrivals.start;
	arrivals.n++;
}

/*
 * A handler that blocks for 40 s, with a broker that drops peers silent for
 * 1.5 s (--heartbeat 500): the library keeps the connection alive meanwhile,
 * so the job ends OK on its first attempt, and its PROGRESS messages reach
 * the client as they are sent, about 5 s apart, not all at the end.
 */
START_TEST(worker_blocking_handler_kept_alive)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_run_options	 ro = { .timeout_ms = 90000, .retries = 2 };
	unsigned long long	 done;
	pid_t			 wpid;
	int			 one = 1;

	harness_broker_start(&b, (const char *[]){ "--heartbeat", "500",
	    NULL }, false);
	wpid = worker_fork_long(b.unix_ep);
	c = harness_client(b.unix_ep);
	memset(&arrivals, 0, sizeof(arrivals));
	arrivals.start = harness_now_ms();
	ck_assert_int_eq(pb_client_submit(c, "sleepy", NULL, 0, &ro,
	    on_result, on_progress_time, NULL, NULL), 0);
	ck_assert(pump(c, NULL, cond_results, &one,
	    LONG_STEPS * LONG_STEP_MS + 30000));
	done = harness_now_ms() - arrivals.start;
	ck_assert_msg(seen.results[0]->status == PB_OK, "status %s: %s",
	    pb_status_name(seen.results[0]->status),
	    seen.results[0]->error != NULL ? seen.results[0]->error : "");
	ck_assert_uint_eq(seen.results[0]->attempts, 1);
	ck_assert_uint_eq(seen.results[0]->len, 5);
	ck_assert_int_eq(arrivals.n, LONG_STEPS);
	/* Spread over the run: the first arrived long before the result. */
	ck_assert_msg(done - arrivals.at[0] >= (LONG_STEPS - 2) * LONG_STEP_MS,
	    "first progress at %llu ms, result at %llu ms", arrivals.at[0],
	    done);
	for (int i = 1; i < LONG_STEPS; i++)
		ck_assert_msg(arrivals.at[i] - arrivals.at[i - 1] >=
		    LONG_STEP_MS / 2, "progress %d at %llu ms, %d at %llu ms",
		    i, arrivals.at[i - 1], i + 1, arrivals.at[i]);
	seen_reset();
	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}
END_TEST

/*
 * A job answered from another thread while the worker's own thread waits
 * in pb_worker_dispatch(w, -1): the answer leaves at once. The broker's
 * heartbeat is a minute, so an answer stuck behind the waiting thread
 * would miss the client's 10 s wait.
 */
START_TEST(worker_job_answered_from_another_thread)
{
	struct harness_broker	 b;
	struct pb_client	*c;
	struct pb_result	*r;
	struct pb_run_options	 ro = { .timeout_ms = 10000 };
	pid_t			 wpid;

	harness_broker_start(&b, (const char *[]){ "--heartbeat", "60s",
	    NULL }, false);
	wpid = worker_fork_long(b.unix_ep);
	c = harness_client(b.unix_ep);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pb_client_run(c, "thread", NULL, 0, &ro, &r),
		    0);
		ck_assert_msg(r->status == PB_OK, "status %s",
		    pb_status_name(r->status));
		ck_assert_uint_eq(r->len, 8);
		ck_assert_int_eq(memcmp(r->payload, "threaded", 8), 0);
		pb_result_free(r);
	}
	pb_client_free(c);
	worker_kill(wpid);
	harness_broker_stop(&b);
}
END_TEST

/* ---- inherited ----------------------------------------------------------- */

/* Reads exactly len bytes from a blocking fd. */
static void
peer_read_exact(int fd, uint8_t *buf, size_t len)
{
	size_t	got = 0;
	ssize_t	n;

	while (got < len) {
		n = read(fd, buf + got, len - got);
		ck_assert_msg(n > 0, "peer read: %zd (%s)", n, strerror(errno));
		got += (size_t)n;
	}
}

/*
 * Reads one whole frame from a blocking fd into buf and decodes it, never
 * reading past it (the next frame stays in the socket).
 */
static void
peer_recv(int fd, uint8_t *buf, size_t cap, enum proto_dir dir,
    struct packet *p)
{
	char		err[PROTO_ERRLEN];
	uint32_t	len = 0;
	int		r;

	peer_read_exact(fd, buf, PROTO_HEADER_LEN);
	ck_assert_int_eq(frame_header(buf, PROTO_HEADER_LEN,
	    PROTO_MAX_FRAME_DEFAULT, &len), 0);
	ck_assert_uint_le(PROTO_HEADER_LEN + len, cap);
	peer_read_exact(fd, buf + PROTO_HEADER_LEN, len);
	r = packet_decode(buf + PROTO_HEADER_LEN, len, dir, p, err);
	ck_assert_msg(r == 0, "decode: %s", err);
}

/* Encodes p (from the broker) and writes it to a blocking fd. */
static void
peer_send(int fd, const struct packet *p)
{
	msgpack_sbuffer	sb;

	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(packet_encode(p, PROTO_FROM_BROKER, &sb), 0);
	ck_assert_int_eq(write(fd, sb.data, sb.size), (ssize_t)sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Sends WELCOME with the given frame limit and heartbeat. */
static void
peer_welcome(int fd, uint64_t max_frame, uint64_t heartbeat_ms)
{
	struct packet	p;

	packet_init(&p, PKT_WELCOME);
	p.heartbeat_ms = heartbeat_ms;
	p.max_frame = max_frame;
	p.server.ptr = (const uint8_t *)"test";
	p.server.len = 4;
	peer_send(fd, &p);
}

START_TEST(worker_inherited_fd)
{
	struct pb_worker	*w;
	struct packet		 p;
	static uint8_t		 buf[65536];
	char			 num[16];
	int			 sv[2], one = 1, r;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	snprintf(num, sizeof(num), "%d", sv[1]);
	setenv("PATCHBAY_FD", num, 1);
	ck_assert_int_eq(pb_worker_new(NULL, NULL, &w), 0);
	unsetenv("PATCHBAY_FD");
	ck_assert_int_eq(pb_worker_add_function(w, "hold", h_hold, NULL), 0);
	ck_assert_int_eq(pb_worker_set_capacity(w, 3), 0);
	pb_worker_on_cancel(w, on_cancel, NULL);
	/* Close-on-exec from the start. */
	ck_assert_int_eq(fcntl(sv[1], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

	/* Play the broker: the welcome is written before HELLO is read. */
	peer_welcome(sv[0], PROTO_MAX_FRAME_DEFAULT, 10000);
	ck_assert_int_eq(pb_worker_connect(w), 0);
	ck_assert_int_eq(pb_worker_fd(w), sv[1]);
	ck_assert(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
	peer_recv(sv[0], buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_HELLO);
	ck_assert_int_eq(p.role, ROLE_WORKER);
	ck_assert_uint_eq(p.version, 1);
	packet_clear(&p);
	peer_recv(sv[0], buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_REGISTER);
	ck_assert_uint_eq(p.nfns, 1);
	ck_assert_uint_eq(p.capacity, 3);
	packet_clear(&p);

	/* A RUN for a function not registered here: answered ERROR. */
	packet_init(&p, PKT_RUN);
	memset(p.id, 1, sizeof(p.id));
	p.fn.ptr = (const uint8_t *)"other";
	p.fn.len = 5;
	p.payload.ptr = (const uint8_t *)"";
	p.attempt = 1;
	peer_send(sv[0], &p);
	/* And one it serves, twice with a new attempt: two jobs. */
	p.fn.ptr = (const uint8_t *)"hold";
	p.fn.len = 4;
	peer_send(sv[0], &p);
	p.attempt = 2;
	peer_send(sv[0], &p);
	ck_assert(pump(NULL, w, cond_held, &(int){ 2 }, WAIT_MS));
	peer_recv(sv[0], buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_RESULT);
	ck_assert_int_eq(p.status, JOB_ERROR);
	{
		const char *want = "function 'other' is not registered here";

		ck_assert_uint_eq(p.error.len, strlen(want));
		ck_assert_int_eq(memcmp(p.error.ptr, want, strlen(want)), 0);
	}
	packet_clear(&p);
	ck_assert_uint_eq(pb_job_attempt(seen.held[0]), 1);
	ck_assert_uint_eq(pb_job_attempt(seen.held[1]), 2);

	/* CANCEL names the attempt. */
	packet_init(&p, PKT_CANCEL);
	memset(p.id, 1, sizeof(p.id));
	p.attempt = 2;
	peer_send(sv[0], &p);
	ck_assert(pump(NULL, w, cond_cancels, &one, WAIT_MS));
	ck_assert(!pb_job_cancelled(seen.held[0]));
	ck_assert(pb_job_cancelled(seen.held[1]));
	ck_assert_int_eq(pb_job_complete(seen.held[1], PB_CANCELLED, NULL, 0,
	    NULL), 0);
	peer_recv(sv[0], buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_RESULT);
	ck_assert_int_eq(p.status, JOB_CANCELLED);
	ck_assert_uint_eq(p.attempt, 2);
	packet_clear(&p);

	/* PING is answered. */
	packet_init(&p, PKT_PING);
	p.n = 42;
	peer_send(sv[0], &p);
	ck_assert_int_eq(pb_worker_dispatch(w, WAIT_MS), 0);
	peer_recv(sv[0], buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_PONG);
	ck_assert_uint_eq(p.n, 42);
	packet_clear(&p);

	/* The broker goes away: an inherited connection is final. */
	close(sv[0]);
	r = 0;
	for (int i = 0; i < 100 && r == 0; i++)
		r = pb_worker_dispatch(w, 100);
	ck_assert_int_eq(r, -ENOTCONN);
	ck_assert_int_eq(pb_worker_dispatch(w, 0), -ENOTCONN);
	ck_assert_int_eq(pb_worker_connect(w), -ENOTCONN);
	ck_assert_int_eq(pb_job_complete(seen.held[0], PB_OK, NULL, 0, NULL),
	    -ENOTCONN);
	pb_worker_free(w);
	seen_reset();
}
END_TEST

START_TEST(worker_inherited_fd_bad)
{
	struct pb_worker	*w = NULL;

	setenv("PATCHBAY_FD", "seven", 1);
	ck_assert_int_eq(pb_worker_new(NULL, NULL, &w), -EINVAL);
	setenv("PATCHBAY_FD", "999", 1);
	ck_assert_int_eq(pb_worker_new(NULL, NULL, &w), -EBADF);
	ck_assert_ptr_null(w);
	unsetenv("PATCHBAY_FD");
}
END_TEST

/* ---- hostile ------------------------------------------------------------- */

/* A one-connection fake broker: listens on a private unix socket. */
struct fake {
	int	lfd;
	int	fd;
	char	ep[300];
};

/* Listens on a fresh socket path. */
static void
fake_listen(struct fake *f)
{
	struct sockaddr_un	sun;
	char			dir[256];

	harness_tmpdir(dir, sizeof(dir));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/f.sock", dir);
	snprintf(f->ep, sizeof(f->ep), "unix:%s", sun.sun_path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	ck_assert_int_eq(listen(f->lfd, 4), 0);
	f->fd = -1;
}

/*
 * Connects a client to the fake broker. pb_client_connect() blocks until
 * WELCOME, so a helper child accepts, writes WELCOME and hands the
 * accepted socket back over SCM_RIGHTS; the test then reads the HELLO.
 */
static struct pb_client *
fake_client(struct fake *f, uint64_t max_frame, uint64_t heartbeat_ms)
{
	struct pb_client	*c;
	struct packet		 p;
	static uint8_t		 buf[8192];
	pid_t			 pid;
	int			 sv[2];

	/* A helper child accepts and welcomes; the socket comes back here. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		int fd = accept(f->lfd, NULL, NULL);
		struct msghdr mh = { 0 };
		struct cmsghdr *cm;
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { "f", 1 };

		peer_welcome(fd, max_frame, heartbeat_ms);
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		_exit(sendmsg(sv[1], &mh, 0) == 1 ? 0 : 1);
	}
	close(sv[1]);
	c = harness_client(f->ep);
	{
		struct msghdr mh = { 0 };
		struct cmsghdr *cm;
		char cbuf[CMSG_SPACE(sizeof(int))], one;
		struct iovec iov = { &one, 1 };

		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		ck_assert_int_eq(recvmsg(sv[0], &mh, 0), 1);
		cm = CMSG_FIRSTHDR(&mh);
		ck_assert_ptr_nonnull(cm);
		memcpy(&f->fd, CMSG_DATA(cm), sizeof(int));
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	peer_recv(f->fd, buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_HELLO);
	ck_assert_int_eq(p.role, ROLE_CLIENT);
	packet_clear(&p);
	return c;
}

/* Closes the fake broker. */
static void
fake_close(struct fake *f)
{
	if (f->fd >= 0)
		close(f->fd);
	close(f->lfd);
}

/* Reads the client's RUN and returns its id in id. */
static void
fake_read_run(struct fake *f, uint8_t *id)
{
	static uint8_t	buf[8192];
	struct packet	p;

	peer_recv(f->fd, buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_RUN);
	memcpy(id, p.id, PB_ID_LEN);
	packet_clear(&p);
}

START_TEST(client_rejects_large_frame)
{
	struct fake		 f;
	struct pb_client	*c;
	uint8_t			 id[PB_ID_LEN], hdr[4] = { 0, 0, 0x10, 0x41 };
	int			 one = 1;

	fake_listen(&f);
	c = fake_client(&f, 4096, 10000);
	ck_assert_int_eq(pb_client_submit(c, "f", NULL, 0, NULL, on_result,
	    NULL, NULL, NULL), 0);
	fake_read_run(&f, id);
	/* 4161 bytes announced: over the 4096 of WELCOME plus the 64 bytes
	 * the broker may add to a forwarded packet. */
	ck_assert_int_eq(write(f.fd, hdr, 4), 4);
	ck_assert_int_eq(pb_client_dispatch(c, WAIT_MS), -EPROTO);
	ck_assert(pump(c, NULL, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_DISCONNECTED);
	ck_assert_ptr_nonnull(strstr(pb_client_last_error(c), "4161"));
	ck_assert_int_eq(pb_client_dispatch(c, 0), -EPROTO);
	seen_reset();
	pb_client_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(client_ignores_unknown_ids)
{
	struct fake		 f;
	struct pb_client	*c;
	struct packet		 p;
	uint8_t			 id[PB_ID_LEN];
	int			 one = 1;

	fake_listen(&f);
	c = fake_client(&f, PROTO_MAX_FRAME_DEFAULT, 10000);
	ck_assert_int_eq(pb_client_submit(c, "f", NULL, 0, NULL, on_result,
	    NULL, NULL, NULL), 0);
	fake_read_run(&f, id);
	/* A result for someone else's job, then NOT_FOUND for ours. */
	packet_init(&p, PKT_RESULT);
	memset(p.id, 0xee, sizeof(p.id));
	p.status = JOB_OK;
	p.attempts = 1;
	peer_send(f.fd, &p);
	packet_init(&p, PKT_ERROR);
	p.code = PERR_NOT_FOUND;
	p.has |= PF_ID;
	memcpy(p.id, id, PB_ID_LEN);
	p.msg.ptr = (const uint8_t *)"no job with that id";
	p.msg.len = 19;
	peer_send(f.fd, &p);
	packet_init(&p, PKT_PING);
	p.n = 7;
	peer_send(f.fd, &p);
	ck_assert_int_eq(pb_client_dispatch(c, 200), 0);
	ck_assert_int_eq(seen.nresults, 0);
	ck_assert_uint_eq(pb_client_pending(c), 1);
	ck_assert_str_eq(pb_client_last_error(c), "no job with that id");
	/* The real result still arrives. */
	packet_init(&p, PKT_RESULT);
	memcpy(p.id, id, PB_ID_LEN);
	p.status = JOB_OK;
	p.attempts = 2;
	peer_send(f.fd, &p);
	ck_assert(pump(c, NULL, cond_results, &one, WAIT_MS));
	ck_assert_uint_eq(seen.results[0]->attempts, 2);
	ck_assert_uint_eq(pb_client_pending(c), 0);
	seen_reset();
	pb_client_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(client_rejects_bad_packet)
{
	struct fake		 f;
	struct pb_client	*c;
	uint8_t			 id[PB_ID_LEN];
	/* A map {"t": "RESULT"} missing every other key. */
	uint8_t			 bad[] = { 0, 0, 0, 10, 0x81, 0xa1, 't', 0xa6,
				    'R', 'E', 'S', 'U', 'L', 'T' };
	int			 one = 1;

	fake_listen(&f);
	c = fake_client(&f, PROTO_MAX_FRAME_DEFAULT, 10000);
	ck_assert_int_eq(pb_client_submit(c, "f", NULL, 0, NULL, on_result,
	    NULL, NULL, NULL), 0);
	fake_read_run(&f, id);
	ck_assert_int_eq(write(f.fd, bad, sizeof(bad)), (ssize_t)sizeof(bad));
	ck_assert(pump(c, NULL, cond_results, &one, WAIT_MS));
	ck_assert_int_eq(seen.results[0]->status, PB_DISCONNECTED);
	ck_assert_ptr_nonnull(strstr(seen.results[0]->error, "bad packet"));
	seen_reset();
	pb_client_free(c);
	fake_close(&f);
}
END_TEST

/* Bytes the client wrote that the fake broker has not read yet. */
static int
fake_unread(struct fake *f)
{
	int	n = -1;

	ck_assert_int_eq(ioctl(f->fd, FIONREAD, &n), 0);
	return n;
}

START_TEST(client_cork_holds_until_dispatch)
{
	struct fake		 f;
	struct pb_client	*c;
	uint8_t			 ids[3][PB_ID_LEN], id[PB_ID_LEN];
	static uint8_t		 big[1024];
	int			 i;

	fake_listen(&f);
	c = fake_client(&f, PROTO_MAX_FRAME_DEFAULT, 10000);
	ck_assert_int_eq(pb_client_cork(NULL, true), -EINVAL);
	ck_assert_int_eq(pb_client_cork(c, true), 0);
	ck_assert_int_eq(pb_client_cork(c, true), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(pb_client_submit(c, "f", "x", 1, NULL,
		    on_result, NULL, NULL, ids[i]), 0);
	/* Corked: nothing has left. */
	ck_assert_int_eq(fake_unread(&f), 0);
	/*
	 * A dispatch writes them before it waits: all three are there when
	 * it returns (the client runs in this thread only), in order.
	 */
	ck_assert_int_eq(pb_client_dispatch(c, 0), 0);
	ck_assert_int_gt(fake_unread(&f), 0);
	for (i = 0; i < 3; i++) {
		fake_read_run(&f, id);
		ck_assert_int_eq(memcmp(id, ids[i], PB_ID_LEN), 0);
	}
	ck_assert_int_eq(fake_unread(&f), 0);

	/* Still corked until uncorked, which writes what was held. */
	ck_assert_int_eq(pb_client_submit(c, "f", "x", 1, NULL, on_result,
	    NULL, NULL, ids[0]), 0);
	ck_assert_int_eq(fake_unread(&f), 0);
	ck_assert_int_eq(pb_client_cork(c, false), 0);
	fake_read_run(&f, id);
	ck_assert_int_eq(memcmp(id, ids[0], PB_ID_LEN), 0);
	/* Uncorked, a submit is written at once. */
	ck_assert_int_eq(pb_client_submit(c, "f", "x", 1, NULL, on_result,
	    NULL, NULL, ids[1]), 0);
	fake_read_run(&f, id);
	ck_assert_int_eq(memcmp(id, ids[1], PB_ID_LEN), 0);

	/* A cork holds 64 KiB at most: a long batch goes out as it grows. */
	ck_assert_int_eq(pb_client_cork(c, true), 0);
	for (i = 0; i < 80; i++)
		ck_assert_int_eq(pb_client_submit(c, "f", big, sizeof(big),
		    NULL, on_result, NULL, NULL, NULL), 0);
	ck_assert_int_ge(fake_unread(&f), 64 * 1024);
	ck_assert_int_lt(fake_unread(&f), 80 * (int)sizeof(big));
	ck_assert_uint_eq(pb_client_pending(c), 85);
	seen_reset();
	pb_client_free(c);
	fake_close(&f);
}
END_TEST

START_TEST(client_silent_broker)
{
	struct fake		 f;
	struct pb_client	*c;
	static uint8_t		 buf[8192];
	struct packet		 p;
	uint8_t			 id[PB_ID_LEN];
	unsigned long long	 t0;
	int			 one = 1;

	fake_listen(&f);
	/* A 100 ms heartbeat, and a broker that never says anything again. */
	c = fake_client(&f, PROTO_MAX_FRAME_DEFAULT, 100);
	ck_assert_int_eq(pb_client_submit(c, "f", NULL, 0, NULL, on_result,
	    NULL, NULL, NULL), 0);
	fake_read_run(&f, id);
	ck_assert_int_eq(pb_client_sync(c, 50), -ETIMEDOUT);
	peer_recv(f.fd, buf, sizeof(buf), PROTO_TO_BROKER, &p);
	ck_assert_int_eq(p.type, PKT_PING);
	packet_clear(&p);
	t0 = harness_now_ms();
	ck_assert(pump(c, NULL, cond_results, &one, WAIT_MS));
	ck_assert_uint_lt(harness_now_ms() - t0, 2000);
	ck_assert_int_eq(seen.results[0]->status, PB_DISCONNECTED);
	ck_assert_ptr_nonnull(strstr(seen.results[0]->error, "no answer"));
	seen_reset();
	pb_client_free(c);
	fake_close(&f);
}
END_TEST

/* Builds the suite. */
static Suite *
client_suite(void)
{
	Suite	*s = suite_create("client");
	TCase	*tc;

	tc = tcase_create("args");
	tcase_add_test(tc, client_bad_arguments);
	tcase_add_test(tc, worker_bad_arguments);
	tcase_add_test(tc, status_names);
	tcase_add_test(tc, default_endpoint_rules);
	tcase_add_test(tc, client_connect_missing_socket);
	tcase_add_test(tc, client_connect_bad_token);
	suite_add_tcase(s, tc);

	tc = tcase_create("run");
	tcase_add_test(tc, client_run_unix);
	tcase_add_test(tc, client_run_tcp);
	tcase_add_test(tc, client_run_large_payload);
	tcase_add_test(tc, client_run_at_frame_limit_reaches_worker);
	tcase_add_test(tc, client_run_no_worker);
	tcase_add_test(tc, client_run_from_callback);
	suite_add_tcase(s, tc);

	tc = tcase_create("submit");
	tcase_add_loop_test(tc, client_submit_many, 0, 2);
	tcase_add_test(tc, client_submit_flood);
	tcase_add_test(tc, worker_capacity_out_of_order);
	tcase_add_test(tc, client_progress_delivered);
	tcase_add_test(tc, client_sync_detached);
	suite_add_tcase(s, tc);

	tc = tcase_create("meta");
	tcase_add_test(tc, client_meta_reaches_worker);
	tcase_add_test(tc, client_meta_refused_locally);
	tcase_add_test(tc, traceparent_generate_makes_new_ids);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel");
	tcase_add_test(tc, client_cancel_running);
	tcase_add_test(tc, client_cancel_queued);
	tcase_add_test(tc, client_timeout);
	suite_add_tcase(s, tc);

	tc = tcase_create("disconnect");
	tcase_add_test(tc, client_broker_killed);
	tcase_add_test(tc, client_run_broker_killed);
	tcase_add_test(tc, client_broker_shutdown);
	tcase_add_test(tc, worker_reconnects);
	tcase_add_test(tc, worker_free_with_jobs_out);
	suite_add_tcase(s, tc);

	tc = tcase_create("brokers");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, two_brokers_failover_during_stream);
	tcase_add_test(tc, worker_list_connects_to_each_on_its_own);
	tcase_add_test(tc, client_list_skips_unreachable_broker);
	suite_add_tcase(s, tc);

	tc = tcase_create("long");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, worker_blocking_handler_kept_alive);
	tcase_add_test(tc, worker_job_answered_from_another_thread);
	suite_add_tcase(s, tc);

	tc = tcase_create("inherited");
	tcase_add_test(tc, worker_inherited_fd);
	tcase_add_test(tc, worker_inherited_fd_bad);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_test(tc, client_rejects_large_frame);
	tcase_add_test(tc, client_ignores_unknown_ids);
	tcase_add_test(tc, client_rejects_bad_packet);
	tcase_add_test(tc, client_cork_holds_until_dispatch);
	tcase_add_test(tc, client_silent_broker);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite under the harness. */
int
main(void)
{
	return harness_main(client_suite());
}

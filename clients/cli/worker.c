/*
 * worker.c: `patchbay worker FN... --exec CMD`, a worker that runs a shell
 * command per job.
 *
 * One libevent loop drives everything. The broker connections belong to
 * libpatchbay: a read event on pb_worker_fd() and a timer armed with
 * pb_worker_timeout_ms() (when the library next has something to do: a
 * reconnect, a PING) both call pb_worker_dispatch(w, 0), which answers
 * PINGs, reconnects with backoff and calls worker_job_cb() for each RUN;
 * nothing polls. The library tells worker_state_cb() when a broker
 * connection comes or goes; the commands of jobs whose connection went are
 * stopped. Because the library may close and reopen its socket inside any
 * call, the read event is re-armed after every call into the library,
 * before this file creates any descriptor that could take the old number.
 * With a list of brokers the descriptor is the library's epoll set, which
 * stays.
 *
 * Each job is one struct worker_job, owned by the worker's list: the
 * command runs as /bin/sh -c CMD, started by util/spawn.c with a plan made
 * before fork: its own process group, killed if the worker dies, the
 * worker's environment without PATCHBAY_FD and with the job's PATCHBAY_*
 * variables (its meta as PATCHBAY_META_<KEY>, its trace context as
 * TRACEPARENT and TRACESTATE: those the worker inherited are dropped, so a
 * command sees the job's alone), and three pipes as its only descriptors. A command that
 * cannot be started at all is answered ERROR at once with the reason.
 * The parent's ends of the pipes are non-blocking. The payload is written to its stdin as the pipe
 * accepts it while stdout is collected and the last WORKER_TAIL bytes of
 * stderr are kept, so a large payload cannot deadlock against a command
 * that writes before it has read everything. SIGCHLD arrives as a libevent
 * signal event and is reaped in a waitpid(-1, WNOHANG) loop; a job is
 * finished only when its exit status and both output pipes' EOF have
 * arrived, and is then answered OK (stdout), ERROR (the stderr tail) or
 * CANCELLED. A CANCEL sends SIGTERM to the job's process group and SIGKILL
 * --kill-after later. That SIGTERM can only reach the command itself:
 * spawn_start() returns once execve has happened, and the child runs with
 * every signal blocked until it has dropped the worker's handlers, so no
 * signal can run libevent's handler in a child and pass for the worker's
 * own (which once made a RUN+CANCEL storm stop the worker). SIGTERM or SIGINT to the worker closes the broker
 * connection (the broker then retries or reports the jobs as lost), stops
 * every running job the same way and exits 0 once they are all gone.
 */
#include <sys/queue.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clients/cli/cli.h"
#include "proto/proto.h"

#define WORKER_TAIL		2048	/* bytes of stderr kept for ERROR */
#define WORKER_WRITE_CHUNK	65536	/* bytes per write(2) to stdin */
#define WORKER_KILL_AFTER_MS	5000	/* default --kill-after */
#define WORKER_MAX_FN		255
#define WORKER_PROGRESS_FD	3	/* PATCHBAY_PROGRESS_FD in the job */
#define WORKER_PROGRESS_MAX	65536	/* bytes of one PROGRESS at most */

struct worker;

/* One running command. Owned by its worker's job list. */
struct worker_job {
	struct worker		*wk;
	struct pb_job		*job;		/* NULL once answered */
	char			 idstr[CLI_UUID_STRLEN];
	uint32_t		 attempt;
	pid_t			 pid;		/* also its process group */
	bool			 exited;
	int			 wstatus;

	int			 fd_in;		/* -1 once closed */
	int			 fd_out;
	int			 fd_err;
	int			 fd_prog;	/* PATCHBAY_PROGRESS_FD's pipe */
	struct event		*ev_in;
	struct event		*ev_out;
	struct event		*ev_err;
	struct event		*ev_prog;
	struct evbuffer		*prog;		/* a progress line so far */

	const uint8_t		*payload;	/* the pb_job's, while job set */
	size_t			 len;
	size_t			 off;		/* bytes written to stdin */

	struct evbuffer		*out;		/* stdout so far */
	char			 tail[WORKER_TAIL];	/* last stderr bytes */
	size_t			 tail_len;
	bool			 tail_cut;	/* bytes before tail dropped */

	bool			 cancelled;	/* answer CANCELLED */
	bool			 orphaned;	/* its connection is gone */
	bool			 killed;	/* SIGTERM sent to the group */
	struct event		*ev_kill;	/* SIGKILL after kill_after */

	TAILQ_ENTRY(worker_job)	 entry;
};

TAILQ_HEAD(worker_jobs, worker_job);

/* The worker program's state; lives on worker_main()'s stack. */
struct worker {
	struct event_base	*base;
	struct pb_worker	*w;		/* NULL once stopping */
	const char		*cmd;
	uint64_t		 kill_after_ms;
	bool			 verbose;

	int			 fd;		/* the socket ev_sock watches */
	bool			 told_serving;	/* "serving ..." was logged */
	bool			 reconnected;	/* ev_sock must be re-created */
	struct event		*ev_sock;
	struct event		*ev_timer;	/* pb_worker_timeout_ms() */
	struct event		*ev_kick;	/* dispatch on the next turn */
	struct event		*ev_giveup;	/* --connect-timeout */
	bool			 waiting;	/* not connected yet at start */
	uint64_t		 connect_timeout_ms;	/* UINT64_MAX: wait */
	char			 serving[1600];	/* logged once connected */
	struct event		*ev_chld;
	struct event		*ev_int;
	struct event		*ev_term;

	struct worker_jobs	 jobs;
	unsigned		 njobs;
	bool			 stopping;
	bool			 draining;	/* first signal: finish the jobs */
	int			 exit_status;
};

static void	worker_pump(struct worker *);
static void	worker_rearm(struct worker *, bool);
static void	worker_shutdown(struct worker *, int);
static void	worker_job_maybe_finish(struct worker_job *);

/* Prints the usage text of `patchbay worker` to f. */
void
worker_usage(FILE *f)
{
	fprintf(f,
	    "Usage: patchbay worker [OPTIONS] FN... --exec CMD\n"
	    "\n"
	    "Registers the functions FN... with the broker and runs CMD with\n"
	    "/bin/sh -c for every job, in its own process group. The job's\n"
	    "payload is CMD's standard input; its standard output is the\n"
	    "result. A non-zero exit is an ERROR carrying the last 2 KiB of\n"
	    "its standard error. CMD's environment also has PATCHBAY_JOB_ID,\n"
	    "PATCHBAY_FUNCTION, PATCHBAY_ATTEMPT and PATCHBAY_TIMEOUT_MS (0:\n"
	    "none), the job's meta as PATCHBAY_META_<KEY> (the key upper-cased,\n"
	    "'.' and '-' as '_'), and its trace context as TRACEPARENT and\n"
	    "TRACESTATE.\n"
	    "\n"
	    "Options:\n"
	    "  -e, --exec CMD        the shell command to run per job "
	    "(required)\n"
	    "  -c, --capacity N      run up to N jobs at once (1..65535, "
	    "default 1)\n"
	    "  -k, --kill-after D    after a cancel, SIGKILL the job D after\n"
	    "                        SIGTERM (500, 500ms, 10s, 1m; default "
	    "5s)\n"
	    "  -b, --broker EP       broker endpoint (unix:PATH, tcp:HOST:PORT),\n"
	    "                        or a list A,B,...: registers with every\n"
	    "                        broker of it and serves them all\n"
	    "  -N, --name NAME       the name this worker gives the broker\n"
	    "      --token-file F    the HELLO token is F's first line\n"
	    "      --tls-ca F        tls: brokers: trust the CA in F (else\n"
	    "                        $PATCHBAY_TLS_CA, else the system's)\n"
	    "      --tls-cert F      present the client certificate in F, with\n"
	    "      --tls-key F       its key in F ($PATCHBAY_TLS_CERT, _KEY)\n"
	    "  -t, --connect-timeout D  how long to wait for a broker that is\n"
	    "                        not up at start (0: fail at once; default:\n"
	    "                        wait, retrying with backoff)\n"
	    "  -v, --verbose         log every job on stderr\n"
	    "  -h, --help            show this help\n"
	    "\n"
	    "Without --broker, a worker started by patchbayd ($PATCHBAY_FD set)\n"
	    "uses the connection it inherited; otherwise the default endpoint.\n"
	    "The worker waits for a broker that is not up yet, and reconnects by\n"
	    "itself when the broker restarts.\n"
	    "SIGTERM or SIGINT stops it: running jobs get SIGTERM (SIGKILL\n"
	    "after --kill-after) and the worker exits 0 once they are gone.\n"
	    "\n"
	    "Exit status:\n"
	    "   0 stopped by SIGTERM or SIGINT\n"
	    "   2 usage error\n"
	    "  11 cannot connect within --connect-timeout, the broker refused\n"
	    "     the worker, or the inherited connection closed\n");
}

/* Prints a "patchbay worker: " line on stderr. */
static void __attribute__((format(printf, 1, 2)))
worker_log(const char *fmt, ...)
{
	va_list	ap;
	char	line[1024];

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "patchbay worker: %s\n", line);
}

/* Frees an event and clears the pointer to it; NULL is fine. */
static void
worker_event_free(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

/* Closes one of a job's pipes and drops its event. */
static void
worker_job_close(int *fd, struct event **ev)
{
	worker_event_free(ev);
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * Answers the job once (no-op after the first answer or when abandoned),
 * then re-arms the socket event in case the library dropped the connection.
 */
static void
worker_job_answer(struct worker_job *j, enum pb_status status,
    const void *payload, size_t len, const char *error)
{
	struct worker	*wk = j->wk;
	int		 r;

	if (j->job == NULL)
		return;
	/* The payload dies with the pb_job: stop feeding it to stdin. */
	worker_job_close(&j->fd_in, &j->ev_in);
	pb_job_set_userdata(j->job, NULL);
	r = pb_job_complete(j->job, status, payload, len, error);
	j->job = NULL;
	if (r < 0 && wk->verbose && !wk->stopping && !j->orphaned)
		worker_log("job %s: the answer (%s) was not sent: %s",
		    j->idstr, pb_status_name(status), strerror(-r));
	if (wk->w != NULL) {
		worker_rearm(wk, false);
		/*
		 * Writing a big answer reads meanwhile: frames may wait in
		 * the library's buffer with nothing left on the socket to
		 * wake us, so dispatch on the next loop turn.
		 */
		if (wk->ev_kick != NULL)
			event_active(wk->ev_kick, 0, 0);
	}
}

/* Frees a finished job: events, pipes and buffers. */
static void
worker_job_free(struct worker_job *j)
{
	struct worker	*wk = j->wk;

	TAILQ_REMOVE(&wk->jobs, j, entry);
	wk->njobs--;
	worker_job_close(&j->fd_in, &j->ev_in);
	worker_job_close(&j->fd_out, &j->ev_out);
	worker_job_close(&j->fd_err, &j->ev_err);
	worker_job_close(&j->fd_prog, &j->ev_prog);
	worker_event_free(&j->ev_kill);
	if (j->out != NULL)
		evbuffer_free(j->out);
	if (j->prog != NULL)
		evbuffer_free(j->prog);
	free(j);
	if (!TAILQ_EMPTY(&wk->jobs))
		return;
	if (wk->stopping)
		event_base_loopbreak(wk->base);
	else if (wk->draining) {
		worker_log("the running jobs are done: stopping");
		worker_shutdown(wk, CLI_EXIT_OK);
	}
}

/* SIGKILLs a job's process group that ignored SIGTERM for too long. */
static void
worker_job_kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_job	*j = arg;

	(void)fd;
	(void)what;
	if (j->wk->verbose)
		worker_log("job %s: still running %llu ms after SIGTERM, "
		    "sending SIGKILL", j->idstr,
		    (unsigned long long)j->wk->kill_after_ms);
	killpg(j->pid, SIGKILL);
}

/*
 * Stops a job's command: SIGTERM to its process group now, SIGKILL after
 * --kill-after unless everything has gone by then.
 */
static void
worker_job_stop(struct worker_job *j, bool now)
{
	struct timeval	tv;

	worker_job_close(&j->fd_in, &j->ev_in);
	if (now) {
		killpg(j->pid, SIGKILL);
		return;
	}
	if (j->killed)
		return;
	j->killed = true;
	killpg(j->pid, SIGTERM);
	j->ev_kill = evtimer_new(j->wk->base, worker_job_kill_cb, j);
	if (j->ev_kill == NULL) {
		killpg(j->pid, SIGKILL);
		return;
	}
	tv.tv_sec = (time_t)(j->wk->kill_after_ms / 1000);
	tv.tv_usec = (suseconds_t)(j->wk->kill_after_ms % 1000) * 1000;
	evtimer_add(j->ev_kill, &tv);
}

/* Keeps the last WORKER_TAIL bytes of what the command wrote to stderr. */
static void
worker_job_tail_add(struct worker_job *j, const char *buf, size_t n)
{
	size_t	drop;

	if (n >= WORKER_TAIL) {
		j->tail_cut = j->tail_cut || j->tail_len > 0 || n > WORKER_TAIL;
		memcpy(j->tail, buf + n - WORKER_TAIL, WORKER_TAIL);
		j->tail_len = WORKER_TAIL;
		return;
	}
	if (j->tail_len + n > WORKER_TAIL) {
		drop = j->tail_len + n - WORKER_TAIL;
		memmove(j->tail, j->tail + drop, j->tail_len - drop);
		j->tail_len -= drop;
		j->tail_cut = true;
	}
	memcpy(j->tail + j->tail_len, buf, n);
	j->tail_len += n;
}

/*
 * Builds the ERROR text into buf (WORKER_TAIL + 1 bytes): the stderr tail
 * without a partial first line and trimmed, else a sentence about how the
 * command ended.
 */
static void
worker_job_error_text(const struct worker_job *j, char *buf, size_t size)
{
	const char	*s = j->tail, *end = j->tail + j->tail_len, *nl;
	size_t		 n, i;

	if (j->tail_cut && (nl = memchr(s, '\n', (size_t)(end - s))) != NULL &&
	    nl + 1 < end)
		s = nl + 1;
	while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' ||
	    *s == '\r'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\n' || end[-1] == '\r'))
		end--;
	n = (size_t)(end - s);
	if (n > 0 && n < size) {
		memcpy(buf, s, n);
		buf[n] = '\0';
		for (i = 0; i < n; i++) {
			if (buf[i] == '\0')
				buf[i] = '?';
		}
		return;
	}
	if (WIFEXITED(j->wstatus))
		snprintf(buf, size, "command exited with status %d",
		    WEXITSTATUS(j->wstatus));
	else if (WIFSIGNALED(j->wstatus))
		snprintf(buf, size, "command killed by signal %d",
		    WTERMSIG(j->wstatus));
	else
		snprintf(buf, size, "command ended with wait status %d",
		    j->wstatus);
}

/*
 * Sends the whole lines of j->prog as PROGRESS, each with its newline, and
 * at EOF (all) what is left; a line longer than WORKER_PROGRESS_MAX goes in
 * pieces of that size.
 */
static void
worker_job_progress_send(struct worker_job *j, bool all)
{
	struct evbuffer_ptr	 nl;
	size_t			 n, have;
	const void		*data;

	while ((have = evbuffer_get_length(j->prog)) > 0) {
		nl = evbuffer_search(j->prog, "\n", 1, NULL);
		if (nl.pos >= 0)
			n = (size_t)nl.pos + 1;
		else if (have >= WORKER_PROGRESS_MAX || all)
			n = have;
		else
			break;
		if (n > WORKER_PROGRESS_MAX)
			n = WORKER_PROGRESS_MAX;
		data = evbuffer_pullup(j->prog, (ssize_t)n);
		/* After a cancel or a lost connection it goes nowhere. */
		if (data != NULL && j->job != NULL && !j->cancelled &&
		    !j->orphaned && !j->wk->stopping)
			(void)pb_job_progress(j->job, data, n);
		evbuffer_drain(j->prog, n);
	}
}

/*
 * Reads what the command wrote to its progress descriptor; at EOF (or when
 * drain says the job is ending) sends the rest and closes it. Returns true
 * once closed.
 */
static bool
worker_job_progress_read(struct worker_job *j, bool drain)
{
	int	n;

	if (j->fd_prog < 0)
		return true;
	for (;;) {
		n = evbuffer_read(j->prog, j->fd_prog, 65536);
		if (n > 0) {
			worker_job_progress_send(j, false);
			if (drain)
				continue;
			return false;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    !drain)
			return false;
		break;
	}
	worker_job_progress_send(j, true);
	worker_job_close(&j->fd_prog, &j->ev_prog);
	return true;
}

/* The progress descriptor is readable. */
static void
worker_job_progress_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)worker_job_progress_read(arg, false);
}

/* Answers and frees a job once its status and both pipes' EOF are in. */
static void
worker_job_maybe_finish(struct worker_job *j)
{
	char		 err[WORKER_TAIL + 1];
	size_t		 len;
	const void	*out;

	if (!j->exited || j->fd_out != -1 || j->fd_err != -1)
		return;
	/*
	 * Progress written before the command ended goes out before its
	 * answer; a descriptor something in the background keeps open is
	 * not waited for.
	 */
	(void)worker_job_progress_read(j, true);

	if (j->wk->stopping || j->orphaned) {
		/*
		 * Its connection is gone: the answer cannot be sent, but
		 * pb_job_complete() is still what frees the pb_job.
		 */
		if (j->wk->verbose)
			worker_log("job %s: stopped", j->idstr);
		worker_job_answer(j, PB_ERROR, NULL, 0, "worker stopped");
	} else if (j->cancelled) {
		if (j->wk->verbose)
			worker_log("job %s: cancelled", j->idstr);
		worker_job_answer(j, PB_CANCELLED, NULL, 0, NULL);
	} else if (WIFEXITED(j->wstatus) && WEXITSTATUS(j->wstatus) == 0) {
		len = evbuffer_get_length(j->out);
		out = len > 0 ? evbuffer_pullup(j->out, -1) : NULL;
		if (len > 0 && out == NULL) {
			worker_job_answer(j, PB_ERROR, NULL, 0, "worker: out of "
			    "memory collecting the command's output");
		} else {
			if (j->wk->verbose)
				worker_log("job %s: OK, %zu bytes", j->idstr,
				    len);
			worker_job_answer(j, PB_OK, out, len, NULL);
		}
	} else {
		worker_job_error_text(j, err, sizeof err);
		if (j->wk->verbose && WIFSIGNALED(j->wstatus))
			worker_log("job %s: ERROR, killed by signal %d",
			    j->idstr, WTERMSIG(j->wstatus));
		else if (j->wk->verbose)
			worker_log("job %s: ERROR, exit status %d", j->idstr,
			    WEXITSTATUS(j->wstatus));
		worker_job_answer(j, PB_ERROR, NULL, 0, err);
	}
	/* Whatever the group left behind after a stop goes too. */
	if (j->killed)
		killpg(j->pid, SIGKILL);
	worker_job_free(j);
}

/* Feeds the payload to the command's stdin as far as the pipe takes it. */
static void
worker_job_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_job	*j = arg;
	size_t			 n;
	ssize_t			 w;

	(void)what;
	while (j->off < j->len) {
		n = j->len - j->off;
		if (n > WORKER_WRITE_CHUNK)
			n = WORKER_WRITE_CHUNK;
		w = write(fd, j->payload + j->off, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* EPIPE: the command does not want (the rest of) it. */
			break;
		}
		j->off += (size_t)w;
	}
	worker_job_close(&j->fd_in, &j->ev_in);
}

/* Collects the command's stdout until EOF. */
static void
worker_job_stdout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_job	*j = arg;
	int			 n;

	(void)what;
	n = evbuffer_read(j->out, fd, 65536);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n > 0)
		return;
	worker_job_close(&j->fd_out, &j->ev_out);
	worker_job_maybe_finish(j);
}

/* Keeps the tail of the command's stderr until EOF. */
static void
worker_job_stderr_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker_job	*j = arg;
	char			 buf[8192];
	ssize_t			 n;

	(void)what;
	n = read(fd, buf, sizeof buf);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n > 0) {
		worker_job_tail_add(j, buf, (size_t)n);
		return;
	}
	worker_job_close(&j->fd_err, &j->ev_err);
	worker_job_maybe_finish(j);
}

extern char **environ;

#define WORKER_META_PREFIX	"PATCHBAY_META_"

/*
 * Drops what the worker's own environment has that belongs to a job:
 * PATCHBAY_META_* and the trace context. A job's command must see its
 * job's, not whatever the worker was started with.
 */
static void
worker_env_drop_job_vars(struct spawn_plan *plan)
{
	char	name[256];
	size_t	i, n, before, plen = strlen(WORKER_META_PREFIX);

	spawn_env_unset(plan, "TRACEPARENT");
	spawn_env_unset(plan, "TRACESTATE");
	for (i = 0; i < plan->nenv; ) {
		const char *e = plan->envp[i];

		n = strcspn(e, "=");
		if (strncmp(e, WORKER_META_PREFIX, plen) != 0 ||
		    n >= sizeof(name)) {
			i++;
			continue;
		}
		memcpy(name, e, n);
		name[n] = '\0';
		before = plan->nenv;
		spawn_env_unset(plan, name);	/* the next one moves to i */
		if (plan->nenv == before)
			i++;			/* an entry without '=' */
	}
}

/*
 * Adds the job's meta to the plan's environment: PATCHBAY_META_<KEY>, the
 * key upper-cased with '.' and '-' as '_' (meta keys are A-Z a-z 0-9 _ .
 * -, so the name is always valid; two keys that map to one name: the
 * later wins), and traceparent and tracestate also as TRACEPARENT and
 * TRACESTATE, the names W3C tools read. 0 or -ENOMEM.
 */
static int
worker_env_meta(struct spawn_plan *plan, struct pb_job *job)
{
	char		 name[sizeof(WORKER_META_PREFIX) + PROTO_MAX_META_BYTES];
	const char	*key, *value;
	size_t		 i, k, plen = strlen(WORKER_META_PREFIX);

	memcpy(name, WORKER_META_PREFIX, plen);
	for (i = 0; (key = pb_job_meta_at(job, i, &value)) != NULL; i++) {
		for (k = 0; key[k] != '\0' && plen + k + 1 < sizeof(name);
		    k++) {
			char c = key[k];

			if (c >= 'a' && c <= 'z')
				c = (char)(c - 'a' + 'A');
			else if (c == '.' || c == '-')
				c = '_';
			name[plen + k] = c;
		}
		name[plen + k] = '\0';
		if (spawn_env_setf(plan, name, "%s", value) != 0)
			return -ENOMEM;
		if (strcmp(key, "traceparent") == 0 &&
		    spawn_env_setf(plan, "TRACEPARENT", "%s", value) != 0)
			return -ENOMEM;
		if (strcmp(key, "tracestate") == 0 &&
		    spawn_env_setf(plan, "TRACESTATE", "%s", value) != 0)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Makes the plan of a job's command: /bin/sh -c CMD with the job's
 * environment, built here before fork. 0 or -ENOMEM.
 */
static int
worker_job_plan(struct worker_job *j, struct pb_job *job,
    struct spawn_plan *plan, char **argv)
{
	memset(plan, 0, sizeof(*plan));
	argv[0] = "sh";
	argv[1] = "-c";
	argv[2] = (char *)j->wk->cmd;
	argv[3] = NULL;
	plan->argv = argv;
	/* A worker killed with -9 cannot stop its jobs: the kernel does. */
	plan->flags = SPAWN_PROCESS_GROUP | SPAWN_DIE_WITH_PARENT;
	if ((plan->path = strdup("/bin/sh")) == NULL ||
	    spawn_env_copy(plan, environ) != 0)
		goto nomem;
	spawn_env_unset(plan, "PATCHBAY_FD");
	worker_env_drop_job_vars(plan);
	if (worker_env_meta(plan, job) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_JOB_ID", "%s", j->idstr) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_FUNCTION", "%s",
	    pb_job_function(job)) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_ATTEMPT", "%u",
	    pb_job_attempt(job)) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_TIMEOUT_MS", "%u",
	    pb_job_timeout_ms(job)) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_PROGRESS_FD", "%d",
	    WORKER_PROGRESS_FD) != 0)
		goto nomem;
	return 0;
nomem:
	spawn_plan_clear(plan);
	return -ENOMEM;
}

/* Creates a non-blocking, close-on-exec pipe. 0 or a negative errno. */
static int
worker_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	return 0;
}

/* Sets O_NONBLOCK on fd. */
static void
worker_nonblock(int fd)
{
	int	fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * Starts the command for a new job: pipes, the spawn, events. Returns 0,
 * or a negative errno with a sentence in why (len bytes) and nothing left
 * behind but j itself.
 */
static int
worker_job_start(struct worker_job *j, struct pb_job *job, char *why,
    size_t len)
{
	struct worker		*wk = j->wk;
	struct spawn_plan	 plan;
	struct spawn_error	 se;
	char			*argv[4];
	int			 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int			 err[2] = { -1, -1 }, prog[2] = { -1, -1 };
	int			 r;
	pid_t			 pid;

	memset(&plan, 0, sizeof(plan));
	if ((r = worker_pipe(in)) < 0 || (r = worker_pipe(out)) < 0 ||
	    (r = worker_pipe(err)) < 0 || (r = worker_pipe(prog)) < 0 ||
	    (r = worker_job_plan(j, job, &plan, argv)) < 0)
		goto fail;
	if ((j->out = evbuffer_new()) == NULL ||
	    (j->prog = evbuffer_new()) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	plan.fds[STDIN_FILENO] = in[0];
	plan.fds[STDOUT_FILENO] = out[1];
	plan.fds[STDERR_FILENO] = err[1];
	plan.fds[WORKER_PROGRESS_FD] = prog[1];
	plan.nfds = WORKER_PROGRESS_FD + 1;
	if ((r = spawn_start(&plan, &se, &pid)) < 0) {
		spawn_error_text(&plan, &se, wk->cmd, why, len);
		goto fail_spawn;
	}
	spawn_plan_clear(&plan);
	j->pid = pid;
	close(in[0]);
	close(out[1]);
	close(err[1]);
	close(prog[1]);
	j->fd_in = in[1];
	j->fd_out = out[0];
	j->fd_err = err[0];
	j->fd_prog = prog[0];
	worker_nonblock(j->fd_in);
	worker_nonblock(j->fd_out);
	worker_nonblock(j->fd_err);
	worker_nonblock(j->fd_prog);
	j->ev_prog = event_new(wk->base, j->fd_prog, EV_READ | EV_PERSIST,
	    worker_job_progress_cb, j);
	if (j->ev_prog == NULL || event_add(j->ev_prog, NULL) < 0)
		worker_job_close(&j->fd_prog, &j->ev_prog);	/* no progress */

	j->ev_out = event_new(wk->base, j->fd_out, EV_READ | EV_PERSIST,
	    worker_job_stdout_cb, j);
	j->ev_err = event_new(wk->base, j->fd_err, EV_READ | EV_PERSIST,
	    worker_job_stderr_cb, j);
	if (j->ev_out == NULL || j->ev_err == NULL) {
		/* The command runs blind: stop it, it will be reaped. */
		worker_job_close(&j->fd_out, &j->ev_out);
		worker_job_close(&j->fd_err, &j->ev_err);
		worker_job_stop(j, true);
		return 0;
	}
	event_add(j->ev_out, NULL);
	event_add(j->ev_err, NULL);
	if (j->len == 0)
		worker_job_close(&j->fd_in, &j->ev_in);
	else {
		j->ev_in = event_new(wk->base, j->fd_in, EV_WRITE | EV_PERSIST,
		    worker_job_stdin_cb, j);
		if (j->ev_in == NULL)
			worker_job_close(&j->fd_in, &j->ev_in);
		else
			event_add(j->ev_in, NULL);
	}
	return 0;

fail:
	snprintf(why, len, "cannot start the command: %s", strerror(-r));
fail_spawn:
	spawn_plan_clear(&plan);
	if (j->out != NULL) {
		evbuffer_free(j->out);
		j->out = NULL;
	}
	if (j->prog != NULL) {
		evbuffer_free(j->prog);
		j->prog = NULL;
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] != -1)
			close(in[i]);
		if (out[i] != -1)
			close(out[i]);
		if (err[i] != -1)
			close(err[i]);
		if (prog[i] != -1)
			close(prog[i]);
	}
	return r;
}

/* Handles a RUN pushed by the broker: starts the command for it. */
static void
worker_job_cb(struct pb_worker *w, struct pb_job *job, void *userdata)
{
	struct worker		*wk = userdata;
	struct worker_job	*j;
	char			 msg[UTIL_ERRLEN];

	(void)w;
	/* The library may have reconnected: drop a stale socket event first. */
	worker_rearm(wk, false);

	if ((j = calloc(1, sizeof *j)) == NULL) {
		pb_job_complete(job, PB_ERROR, NULL, 0,
		    "worker: out of memory starting the command");
		return;
	}
	j->wk = wk;
	j->job = job;
	j->fd_in = j->fd_out = j->fd_err = j->fd_prog = -1;
	j->attempt = pb_job_attempt(job);
	cli_uuid_string(pb_job_id(job), j->idstr);
	j->payload = pb_job_payload(job, &j->len);

	if (worker_job_start(j, job, msg, sizeof msg) < 0) {
		worker_log("job %s: %s", j->idstr, msg);
		pb_job_complete(job, PB_ERROR, NULL, 0, msg);
		free(j);
		return;
	}
	TAILQ_INSERT_TAIL(&wk->jobs, j, entry);
	wk->njobs++;
	pb_job_set_userdata(job, j);
	if (wk->verbose)
		worker_log("job %s: %s attempt %u, %zu bytes, pid %ld",
		    j->idstr, pb_job_function(job), j->attempt, j->len,
		    (long)j->pid);
}

/* Handles a CANCEL (client cancel or broker timeout) for a running job. */
static void
worker_cancel_cb(struct pb_worker *w, struct pb_job *job, void *userdata)
{
	struct worker_job	*j = pb_job_get_userdata(job);

	(void)w;
	(void)userdata;
	if (j == NULL)
		return;
	if (j->wk->verbose)
		worker_log("job %s: cancel: SIGTERM to process group %ld",
		    j->idstr, (long)j->pid);
	j->cancelled = true;
	worker_job_stop(j, false);
}

/* Reaps every exited child and finishes the jobs that are complete. */
static void
worker_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker		*wk = arg;
	struct worker_job	*j;
	pid_t			 pid;
	int			 status;

	(void)sig;
	(void)what;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		/* maybe_finish() may free j: leave the loop right after. */
		TAILQ_FOREACH(j, &wk->jobs, entry) {
			if (j->pid == pid && !j->exited) {
				j->exited = true;
				j->wstatus = status;
				worker_job_maybe_finish(j);
				break;
			}
		}
	}
}

/*
 * Stops the worker: closes the broker connection (the broker retries or
 * reports the jobs as lost), stops every command, and ends the loop once
 * they are all reaped. A second call SIGKILLs what is left.
 */
static void
worker_shutdown(struct worker *wk, int status)
{
	struct worker_job	*j;

	if (wk->stopping) {
		TAILQ_FOREACH(j, &wk->jobs, entry)
			worker_job_stop(j, true);
		return;
	}
	wk->stopping = true;
	wk->exit_status = status;
	worker_event_free(&wk->ev_sock);
	worker_event_free(&wk->ev_timer);
	worker_event_free(&wk->ev_kick);
	worker_event_free(&wk->ev_giveup);
	/* The pb_jobs outlive the worker; completing them frees them. */
	TAILQ_FOREACH(j, &wk->jobs, entry)
		worker_job_stop(j, false);
	pb_worker_free(wk->w);
	wk->w = NULL;
	if (TAILQ_EMPTY(&wk->jobs))
		event_base_loopbreak(wk->base);
	else
		worker_log("stopping %u running job%s", wk->njobs,
		    wk->njobs == 1 ? "" : "s");
}

/*
 * SIGTERM/SIGINT: the first one stops taking jobs (the broker is told:
 * capacity 0) and lets the running ones finish, then exits 0; the next one
 * (or the first when nothing runs) stops the running commands and exits.
 */
static void
worker_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct worker	*wk = arg;
	int		 r;

	(void)what;
	if (!wk->stopping && !wk->draining && wk->njobs > 0 && wk->w != NULL) {
		wk->draining = true;
		if ((r = pb_worker_drain(wk->w)) < 0 && r != -ENOTCONN)
			worker_log("cannot tell the broker to stop sending jobs: "
			    "%s", strerror(-r));
		worker_log("%s: finishing %u running job%s, taking no new "
		    "ones; a second signal stops them", strsignal((int)sig),
		    wk->njobs, wk->njobs == 1 ? "" : "s");
		worker_rearm(wk, false);
		return;
	}
	if (!wk->stopping)
		worker_log("%s: stopping", strsignal((int)sig));
	worker_shutdown(wk, CLI_EXIT_OK);
}

/* The broker socket is readable. */
static void
worker_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_pump(arg);
}

/*
 * When the library asked for it (ev_timer), and on the turn after an answer
 * (ev_kick): dispatch (liveness, reconnects) and re-arm.
 */
static void
worker_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	worker_pump(arg);
}

/*
 * The library's word that a broker connection came or went. A lost one
 * takes its jobs with it (the broker retries them or reports them lost):
 * their commands are stopped to free the capacity. Called inside the
 * library: nothing here calls back into it but pb_job_abandoned().
 */
static void
worker_state_cb(struct pb_worker *w, const char *endpoint, bool connected,
    void *arg)
{
	struct worker		*wk = arg;
	struct worker_job	*j;
	unsigned		 n = 0;

	(void)w;
	if (connected) {
		wk->reconnected = true;
		if (wk->waiting) {
			wk->waiting = false;
			worker_event_free(&wk->ev_giveup);
			worker_log("%s", wk->serving);
			wk->told_serving = true;
		} else if (wk->told_serving)
			worker_log("connected to the broker at %s", endpoint);
		return;
	}
	TAILQ_FOREACH(j, &wk->jobs, entry) {
		if (!j->orphaned && j->job != NULL &&
		    pb_job_abandoned(j->job)) {
			j->orphaned = true;
			worker_job_stop(j, false);
			n++;
		}
	}
	if (!wk->stopping)
		worker_log("lost the connection to the broker at %s; "
		    "reconnecting", endpoint);
	if (n > 0)
		worker_log("stopping %u job%s of the lost connection", n,
		    n == 1 ? "" : "s");
}

/*
 * Points ev_sock at the library's current descriptor and ev_timer at its
 * next deadline. The library may have closed the old socket (the number
 * may already be reused), so a changed fd drops the old event before
 * anything else; force (or a reconnect) re-creates it anyway, for a new
 * socket that got the old number.
 */
static void
worker_rearm(struct worker *wk, bool force)
{
	struct timeval	tv;
	int		fd = pb_worker_fd(wk->w), fl, ms;

	/* ev_timer is gone once stopping. */
	ms = wk->ev_timer != NULL ? pb_worker_timeout_ms(wk->w) : -1;
	if (ms >= 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
		evtimer_add(wk->ev_timer, &tv);
	} else if (wk->ev_timer != NULL)
		evtimer_del(wk->ev_timer);
	if (fd == wk->fd && !force && !wk->reconnected)
		return;
	wk->reconnected = false;
	worker_event_free(&wk->ev_sock);
	wk->fd = fd;
	if (fd < 0)
		return;
	/* Commands must not inherit the broker connection. */
	if ((fl = fcntl(fd, F_GETFD)) >= 0 && !(fl & FD_CLOEXEC))
		fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	wk->ev_sock = event_new(wk->base, fd, EV_READ | EV_PERSIST,
	    worker_sock_cb, wk);
	if (wk->ev_sock != NULL)
		event_add(wk->ev_sock, NULL);
}

/* Lets the library handle what arrived; stops the worker if it gave up. */
static void
worker_pump(struct worker *wk)
{
	const char	*why;
	int		 r;

	if (wk->w == NULL)
		return;
	r = pb_worker_dispatch(wk->w, 0);
	/* Out of memory is not the broker's fault: the next turn retries. */
	if (r < 0 && r != -EINTR && r != -EAGAIN && r != -ETIMEDOUT &&
	    r != -ENOMEM) {
		if (r == -ENOTCONN)
			why = "the inherited connection closed";
		else if (*pb_client_last_error(NULL) != '\0')
			why = pb_client_last_error(NULL);
		else if (r == -EPROTO)
			why = "the broker refused this worker";
		else
			why = strerror(-r);
		worker_log("giving up on the broker: %s", why);
		worker_shutdown(wk, CLI_EXIT_CONNECTION);
		return;
	}
	worker_rearm(wk, false);
}

/* --connect-timeout passed with no broker: give up. */
static void
worker_giveup_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*wk = arg;
	char		 d[32];

	(void)fd;
	(void)what;
	if (!wk->waiting)
		return;
	format_duration(wk->connect_timeout_ms, d, sizeof(d));
	worker_log("no broker after %s (--connect-timeout): giving up", d);
	worker_shutdown(wk, CLI_EXIT_CONNECTION);
}

/*
 * The first connection failed with an error that waiting can mend: keep
 * going, the tick's dispatch retries with the library's backoff (100 ms
 * doubling to 5 s), and give up after --connect-timeout if one was given.
 * 0, or -errno when the wait cannot be set up.
 */
static int
worker_wait_for_broker(struct worker *wk, const char *ep)
{
	struct timeval	tv;
	char		d[32];

	wk->waiting = true;
	if (wk->connect_timeout_ms == UINT64_MAX) {
		worker_log("waiting for the broker at %s (retrying with "
		    "backoff)", ep);
		return 0;
	}
	tv.tv_sec = (time_t)(wk->connect_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(wk->connect_timeout_ms % 1000) * 1000;
	wk->ev_giveup = evtimer_new(wk->base, worker_giveup_cb, wk);
	if (wk->ev_giveup == NULL || evtimer_add(wk->ev_giveup, &tv) < 0)
		return -ENOMEM;
	format_duration(wk->connect_timeout_ms, d, sizeof(d));
	worker_log("waiting up to %s for the broker at %s (retrying with "
	    "backoff)", d, ep);
	return 0;
}

/* Sets up the libevent base and the worker's own events. 0 or -errno. */
static int
worker_events(struct worker *wk)
{
	if ((wk->base = event_base_new()) == NULL)
		return -ENOMEM;
	wk->ev_chld = evsignal_new(wk->base, SIGCHLD, worker_sigchld_cb, wk);
	wk->ev_int = evsignal_new(wk->base, SIGINT, worker_signal_cb, wk);
	wk->ev_term = evsignal_new(wk->base, SIGTERM, worker_signal_cb, wk);
	wk->ev_timer = evtimer_new(wk->base, worker_timer_cb, wk);
	wk->ev_kick = event_new(wk->base, -1, 0, worker_timer_cb, wk);
	if (wk->ev_chld == NULL || wk->ev_int == NULL || wk->ev_term == NULL ||
	    wk->ev_timer == NULL || wk->ev_kick == NULL)
		return -ENOMEM;
	if (event_add(wk->ev_chld, NULL) < 0 ||
	    event_add(wk->ev_int, NULL) < 0 ||
	    event_add(wk->ev_term, NULL) < 0)
		return -EIO;
	return 0;
}

/* Releases what worker_events() and the run left. */
static void
worker_clear(struct worker *wk)
{
	struct worker_job	*j;

	while ((j = TAILQ_FIRST(&wk->jobs)) != NULL) {
		killpg(j->pid, SIGKILL);
		wk->stopping = true;
		worker_job_answer(j, PB_ERROR, NULL, 0, "worker stopped");
		worker_job_free(j);
	}
	worker_event_free(&wk->ev_sock);
	worker_event_free(&wk->ev_timer);
	worker_event_free(&wk->ev_kick);
	worker_event_free(&wk->ev_giveup);
	worker_event_free(&wk->ev_chld);
	worker_event_free(&wk->ev_int);
	worker_event_free(&wk->ev_term);
	pb_worker_free(wk->w);
	wk->w = NULL;
	if (wk->base != NULL)
		event_base_free(wk->base);
}

/* Entry point of `patchbay worker`. */
int
worker_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "exec", required_argument, NULL, 'e' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "kill-after", required_argument, NULL, 'k' },
		{ "broker", required_argument, NULL, 'b' },
		{ "name", required_argument, NULL, 'N' },
		{ "token-file", required_argument, NULL, 'K' },
		CLI_TLS_LONGOPTS,
		{ "connect-timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct worker		 wk;
	struct pb_options	 popts = { .name = "patchbay worker" };
	const char		*broker = NULL;
	uint64_t		 capacity = 1, u;
	char			 ep[512], fns[1024], err[UTIL_ERRLEN];
	size_t			 off;
	int			 c, i, r, ret;

	memset(&wk, 0, sizeof wk);
	TAILQ_INIT(&wk.jobs);
	wk.fd = -1;
	wk.kill_after_ms = WORKER_KILL_AFTER_MS;
	wk.connect_timeout_ms = UINT64_MAX;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":e:c:k:b:N:t:vh", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'e':
			wk.cmd = optarg;
			break;
		case 'c':
			if (parse_uint(optarg, 1, LIMIT_CAPACITY_MAX, &capacity,
			    err) != 0)
				return cli_bad_value("worker", "--capacity",
				    optarg, err);
			break;
		case 'k':
			if (parse_duration(optarg, 0, LIMIT_STOP_TIMEOUT_MAX_MS,
			    &u, err) != 0)
				return cli_bad_value("worker", "--kill-after",
				    optarg, err);
			wk.kill_after_ms = u;
			break;
		case 'b':
			broker = optarg;
			break;
		case 'N':
			popts.name = optarg;
			break;
		case 'K':
			if (cli_token_file("worker", optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case CLI_O_TLS_CA:
		case CLI_O_TLS_CERT:
		case CLI_O_TLS_KEY:
			if (cli_tls_option("worker", c, optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 't':
			if (parse_duration(optarg, 0, LIMIT_STOP_TIMEOUT_MAX_MS,
			    &wk.connect_timeout_ms, err) != 0)
				return cli_bad_value("worker",
				    "--connect-timeout", optarg, err);
			break;
		case 'v':
			wk.verbose = true;
			break;
		case 'h':
			worker_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_option_error("worker", c, argv, longopts);
		}
	}
	if (optind >= argc)
		return cli_usage_error("worker", "missing the function names "
		    "FN...");
	if (argc - optind > 256)
		return cli_usage_error("worker", "%d functions given, at most "
		    "256", argc - optind);
	if (wk.cmd == NULL)
		return cli_usage_error("worker", "missing --exec CMD, the "
		    "command to run for each job");
	if (*wk.cmd == '\0')
		return cli_usage_error("worker", "the --exec command is empty");
	for (i = optind; i < argc; i++) {
		if (*argv[i] == '\0')
			return cli_usage_error("worker", "a function name is "
			    "empty");
		if (strlen(argv[i]) > WORKER_MAX_FN)
			return cli_usage_error("worker", "function name "
			    "'%.40s...' is %zu bytes long (at most %d)",
			    argv[i], strlen(argv[i]), WORKER_MAX_FN);
	}
	if (broker != NULL && (r = cli_check_endpoint("worker", broker)) != 0)
		return r;

	if (broker != NULL)
		snprintf(ep, sizeof ep, "%s", broker);
	else if (getenv("PATCHBAY_FD") != NULL)
		snprintf(ep, sizeof ep, "the inherited descriptor %s",
		    getenv("PATCHBAY_FD"));
	else if (pb_default_endpoint(ep, sizeof ep) < 0)
		snprintf(ep, sizeof ep, "(the default endpoint)");

	ret = CLI_EXIT_CONNECTION;
	if ((r = worker_events(&wk)) < 0) {
		worker_log("cannot set up the event loop: %s", strerror(-r));
		goto out;
	}
	if ((r = pb_worker_new(broker, &popts, &wk.w)) < 0) {
		worker_log("cannot use %s: %s", ep,
		    *pb_client_last_error(NULL) != '\0' ?
		    pb_client_last_error(NULL) : strerror(-r));
		ret = r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_CONNECTION;
		goto out;
	}
	fns[0] = '\0';
	off = 0;
	for (i = optind; i < argc; i++) {
		if ((r = pb_worker_add_function(wk.w, argv[i], worker_job_cb,
		    &wk)) < 0) {
			worker_log("cannot add function '%s': %s", argv[i],
			    strerror(-r));
			ret = CLI_EXIT_USAGE;
			goto out;
		}
		if (off < sizeof fns)
			off += (size_t)snprintf(fns + off, sizeof fns - off,
			    "%s%s", i > optind ? ", " : "", argv[i]);
	}
	if ((r = pb_worker_set_capacity(wk.w, (uint32_t)capacity)) < 0) {
		worker_log("cannot set capacity %llu: %s",
		    (unsigned long long)capacity, strerror(-r));
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	pb_worker_on_cancel(wk.w, worker_cancel_cb, &wk);
	pb_worker_on_state(wk.w, worker_state_cb, &wk);

	snprintf(wk.serving, sizeof wk.serving, "serving %s (capacity %llu) "
	    "at %s", fns, (unsigned long long)capacity, ep);
	if ((r = pb_worker_connect(wk.w)) < 0) {
		/* The library's sentence names the endpoint and the cause. */
		if (*pb_client_last_error(NULL) != '\0')
			worker_log("%s", pb_client_last_error(NULL));
		else if (r == -EPROTO)
			worker_log("the broker at %s refused this worker", ep);
		else
			worker_log("cannot connect to %s: %s", ep,
			    strerror(-r));
		/*
		 * A broker that is not up yet is waited for; a refusal, a
		 * bad endpoint or a closed inherited descriptor is final
		 * (the library says so by failing its dispatch).
		 */
		if (wk.connect_timeout_ms == 0 || r == -ENOMEM ||
		    pb_worker_dispatch(wk.w, 0) < 0 ||
		    worker_wait_for_broker(&wk, ep) < 0)
			goto out;
	} else {
		worker_log("%s", wk.serving);
		wk.told_serving = true;
	}
	/* The socket's read event, and the timer for the first retry. */
	worker_rearm(&wk, true);

	if (event_base_dispatch(wk.base) < 0) {
		worker_log("the event loop failed");
		goto out;
	}
	ret = wk.exit_status;
out:
	worker_clear(&wk);
	return ret;
}

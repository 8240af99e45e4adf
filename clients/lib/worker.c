/*
 * worker.c: pb_worker, the serving side of libpatchbay.
 *
 * A worker owns one connection at a time (struct bconn, common.c), its
 * function table, and every pb_job it has handed out and not yet seen
 * completed. A RUN becomes a pb_job (one allocation holding the payload,
 * the function name and the job's meta, see meta.c) that goes to the
 * function's handler; the user answers it, now or later, with
 * pb_job_complete(), which sends the RESULT and frees it.
 *
 * Jobs can outlive their connection: a handler may keep a job while a
 * child process runs, and the broker may go away meanwhile. Each
 * connection has a generation number; a job remembers the one it came on,
 * so a late pb_job_complete() after a reconnect is refused (-ENOTCONN)
 * instead of being sent on a connection where that attempt means nothing.
 * Live jobs of the current connection are also in a uthash table keyed by
 * (id, attempt), for CANCEL. All outstanding jobs are on a list so that
 * pb_worker_free() can cut them loose (job->w = NULL).
 *
 * When the connection drops (EOF, BYE, a write error, a silent broker),
 * pb_worker_dispatch() reconnects with exponential backoff, 100 ms doubling
 * to 5 s, with jitter. A connection inherited through $PATCHBAY_FD (a
 * worker the broker spawned) is never reconnected: its loss is final.
 *
 * Handlers may block (a long computation, a blocking call): while one
 * runs, a keepalive thread keeps the connection alive. The worker's lock
 * guards the connection and the job table; the dispatching thread holds it
 * except while a handler runs, and pb_job_progress()/pb_job_complete() take
 * it, so they may be called from any thread. The keepalive thread wakes
 * every quarter heartbeat; when it finds a handler running and nothing
 * written for half a heartbeat, it PINGs the broker (any frame is a sign of
 * life, and the broker answers), and it writes out whatever the handler
 * queued. It never decodes input: RUNs and CANCELs that arrive meanwhile
 * wait for the handler to return. PROGRESS is written when it is sent, not
 * at the end of the batch, so that a client sees a blocking job's progress
 * as it happens.
 *
 * Out of memory, a call returns -ENOMEM and the worker stays usable: a RUN
 * that cannot become a pb_job stays buffered for the next dispatch, an
 * answer that cannot be encoded leaves its job untouched for another
 * pb_job_complete(), and a function or capacity the broker could not be
 * told about is taken back.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "clients/lib/internal.h"
#include "util/util.h"

#define WORKER_BACKOFF_MIN_MS	100
#define WORKER_BACKOFF_MAX_MS	5000
#define WORKER_RUN_SLICE_MS	500	/* pb_worker_run() looks at stop */

/* What identifies one dispatch of a job: CANCEL names both. */
struct worker_key {
	uint8_t		id[PROTO_ID_LEN];
	uint64_t	attempt;
};

/* One job handed to a handler; owned by the user until completed. */
struct pb_job {
	struct pb_worker	*w;		/* NULL once the worker is freed */
	uint64_t		 gen;		/* connection it came on */
	struct worker_key	 key;
	bool			 live;		/* in w->live */
	bool			 cancelled;	/* atomic: read by any thread */
	uint32_t		 timeout_ms;
	void			*userdata;
	const char		*fn;		/* into data, after the payload */
	size_t			 len;
	const char *const	*meta;		/* into data, after fn: key,
						   value, ... (meta.c) */
	uint32_t		 nmeta;
	LIST_ENTRY(pb_job)	 entry;		/* w->jobs */
	UT_hash_handle		 hh;		/* w->live */
	_Alignas(max_align_t) unsigned char data[];	/* payload, fn, meta */
};
LIST_HEAD(worker_jobs, pb_job);

/* A function the worker serves. */
struct worker_fn {
	char		*name;
	size_t		 len;
	pb_job_fn	 handler;
	void		*userdata;
};

/*
 * A worker and its jobs; owned by the caller. lock guards conn, gen, live,
 * jobs and busy (see the top of this file).
 */
struct pb_worker {
	pthread_mutex_t		 lock;
	pthread_cond_t		 ka_cond;	/* wakes the keepalive thread */
	pthread_t		 ka_thread;
	bool			 ka_running;
	bool			 ka_quit;
	bool			 busy;		/* a handler runs */

	struct bconn		 conn;
	char			*endpoint;	/* NULL: the default, each time */
	int			 inherited_fd;	/* $PATCHBAY_FD, or -1 */
	bool			 inherited;	/* serves an inherited fd */
	char			*name;
	char			*token;
	int			 connect_timeout_ms;

	struct worker_fn	 fns[PROTO_MAX_FNS];
	size_t			 nfns;
	uint32_t		 capacity;
	pb_cancel_fn		 on_cancel;
	void			*cancel_userdata;

	uint64_t		 gen;		/* bumped per connection */
	struct pb_job		*live;		/* by (id, attempt) */
	struct worker_jobs	 jobs;		/* every job not completed */
	size_t			 njobs;		/* on jobs */
	bool			 draining;	/* REGISTERs say capacity 0 */

	/*
	 * A worker given a list of brokers is a parent that holds one child
	 * worker per broker (subs) and serves them all: each child has its
	 * own connection, backoff, lock and keepalive thread, and jobs point
	 * to the child they came on. Handlers and callbacks are given the
	 * parent. epfd is readable when any child's socket is.
	 */
	struct pb_worker	*parent;
	struct pb_worker	**subs;
	size_t			 nsubs;
	int			 epfd;
	pb_state_fn		 on_state;	/* the parent's, for all */
	void			*state_userdata;
	bool			 announced;	/* on_state told "connected" */

	uint64_t		 retry_at;	/* next connect attempt, ms */
	uint32_t		 backoff_ms;	/* 0: connected or never tried */
	uint64_t		 rng;		/* jitter */
	int			 fatal;		/* cannot go on: this errno */
	volatile sig_atomic_t	 stop;
};

/* The worker handlers and callbacks are given: the parent of a child. */
static struct pb_worker *
worker_top(struct pb_worker *w)
{
	return w->parent != NULL ? w->parent : w;
}

/* The worker whose lock this thread holds, so that calls nest. */
static _Thread_local struct pb_worker	*worker_held;

/* What worker_lock() did, for worker_unlock(). */
struct worker_hold {
	struct pb_worker	*prev;
	bool			 taken;
};

/*
 * Takes w's lock unless this thread holds it already (a cancel callback
 * that completes its job, a handler that sets the capacity).
 */
static void
worker_lock(struct pb_worker *w, struct worker_hold *h)
{
	h->prev = worker_held;
	h->taken = worker_held != w;
	if (!h->taken)
		return;
	pthread_mutex_lock(&w->lock);
	worker_held = w;
}

/* Undoes worker_lock(). */
static void
worker_unlock(struct pb_worker *w, struct worker_hold *h)
{
	if (!h->taken)
		return;
	worker_held = h->prev;
	pthread_mutex_unlock(&w->lock);
}

/*
 * The keepalive thread (see the top of this file): holds the lock only
 * while it writes, and only while a handler runs.
 */
static void *
worker_keepalive_main(void *arg)
{
	struct pb_worker	*w = arg;
	struct bconn		*b = &w->conn;
	struct timespec		 ts;
	uint64_t		 hb, tick, seen = 0;
	unsigned		 quiet = 0;	/* ticks without a write */

	pthread_mutex_lock(&w->lock);
	while (!w->ka_quit) {
		hb = b->heartbeat_ms;
		tick = hb == 0 ? 1000 : hb / 4 < 10 ? 10 : hb / 4;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(tick / 1000);
		ts.tv_nsec += (long)(tick % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&w->ka_cond, &w->lock, &ts);
		/* Counting writes keeps clock reads off the job path. */
		if (b->writes != seen || !w->busy) {
			seen = b->writes;
			quiet = 0;
		} else
			quiet++;
		if (w->ka_quit || !w->busy || hb == 0 || b->fd < 0 || b->dead)
			continue;
		/* Two quiet quarters: half a heartbeat without a write. */
		if (quiet >= 2) {
			(void)common_ping(b);	/* queued: corked by process */
			quiet = 0;
		}
		if (b->out_off < b->out.size)
			(void)common_push(b);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/*
 * Starts the keepalive thread once the worker has a heartbeat to keep, with
 * every signal blocked in it: signals are the dispatching thread's. Called
 * with the lock held. A thread that cannot be started is not fatal: only
 * handlers that block then lose their connection.
 */
static void
worker_keepalive_start(struct pb_worker *w)
{
	sigset_t	all, old;

	if (w->ka_running || w->conn.heartbeat_ms == 0)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	w->ka_running = pthread_create(&w->ka_thread, NULL,
	    worker_keepalive_main, w) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Stops the keepalive thread; called without the lock. */
static void
worker_keepalive_stop(struct pb_worker *w)
{
	if (!w->ka_running)
		return;
	pthread_mutex_lock(&w->lock);
	w->ka_quit = true;
	pthread_cond_signal(&w->ka_cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->ka_thread, NULL);
	w->ka_running = false;
}

/*
 * Calls into the user's handler without the lock, so that the keepalive
 * thread can write meanwhile and the handler may complete from any thread.
 */
static void
worker_call_handler(struct pb_worker *w, struct worker_fn *f,
    struct pb_job *j)
{
	struct pb_worker	*held = worker_held;

	w->busy = true;
	worker_held = NULL;
	pthread_mutex_unlock(&w->lock);
	f->handler(worker_top(w), j, f->userdata);
	pthread_mutex_lock(&w->lock);
	worker_held = held;
	w->busy = false;
}

/* Next pseudo-random number for jitter (xorshift64). */
static uint64_t
worker_rand(struct pb_worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

/* Reads $PATCHBAY_FD: 0 and the descriptor, 1 when unset, or -errno. */
static int
worker_env_fd(int *ret_fd)
{
	const char	*v = getenv("PATCHBAY_FD");
	char		*end;
	long		 fd;

	if (v == NULL || *v == '\0')
		return 1;
	errno = 0;
	fd = strtol(v, &end, 10);
	if (*end != '\0' || errno != 0 || fd < 0 || fd > INT_MAX) {
		common_set_connect_error("PATCHBAY_FD='%s' is not a file "
		    "descriptor number", v);
		return -EINVAL;
	}
	if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) == -1) {
		common_set_connect_error("PATCHBAY_FD=%ld: %s", fd,
		    strerror(errno));
		return -EBADF;
	}
	*ret_fd = (int)fd;
	return 0;
}

/* Sets up the lock and the keepalive thread's condition; 0 or -errno. */
static int
worker_sync_init(struct pb_worker *w)
{
	pthread_condattr_t	ca;
	int			r;

	if ((r = pthread_mutex_init(&w->lock, NULL)) != 0)
		return -r;
	if ((r = pthread_condattr_init(&ca)) == 0) {
		r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		if (r == 0)
			r = pthread_cond_init(&w->ka_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (r != 0) {
		pthread_mutex_destroy(&w->lock);
		return -r;
	}
	return 0;
}

/*
 * Creates a worker for one endpoint (NULL: the default each time, or the
 * inherited fd when fd >= 0), not connected yet. 0 or -ENOMEM.
 */
static int
worker_new_one(const char *endpoint, int fd, const struct pb_options *opts,
    struct pb_worker **ret)
{
	struct pb_worker	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	if (worker_sync_init(w) != 0) {
		free(w);
		return -ENOMEM;
	}
	common_init(&w->conn);
	w->conn.wait_lock = &w->lock;
	LIST_INIT(&w->jobs);
	w->inherited_fd = -1;
	w->epfd = -1;
	w->capacity = 1;
	w->rng = clock_now_ms() ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(uintptr_t)w;
	if (w->rng == 0)
		w->rng = 0x9e3779b97f4a7c15ULL;
	if (endpoint != NULL && (w->endpoint = strdup(endpoint)) == NULL)
		goto nomem;
	if (opts != NULL) {
		if (opts->name != NULL && (w->name = strdup(opts->name)) == NULL)
			goto nomem;
		if (opts->token != NULL &&
		    (w->token = strdup(opts->token)) == NULL)
			goto nomem;
		w->connect_timeout_ms = opts->connect_timeout_ms;
	}
	if (fd >= 0) {
		w->inherited_fd = fd;
		w->inherited = true;
	}
	*ret = w;
	return 0;
nomem:
	pb_worker_free(w);
	return -ENOMEM;
}

/* Creates a worker, not connected yet; see patchbay.h. */
int
pb_worker_new(const char *endpoint, const struct pb_options *opts,
    struct pb_worker **ret)
{
	struct pb_worker	*w = NULL;
	char			**list = NULL;
	size_t			  n, i;
	int			  fd = -1, r;

	if (ret == NULL)
		return -EINVAL;
	common_set_connect_error("%s", "");
	if (endpoint == NULL) {
		if ((r = worker_env_fd(&fd)) < 0)
			return r;
		if (fd >= 0)
			return worker_new_one(NULL, fd, opts, ret);
	}
	if ((r = common_endpoints(endpoint, &list)) != 0)
		return r;
	n = strv_len(list);
	if (n == 1) {
		/* Without an endpoint, the default is looked up each time. */
		r = worker_new_one(endpoint != NULL ? list[0] : NULL, -1, opts,
		    ret);
		strv_free(list);
		return r;
	}
	if ((r = worker_new_one(NULL, -1, opts, &w)) != 0)
		goto fail;
	r = -ENOMEM;
	if ((w->subs = calloc(n, sizeof(*w->subs))) == NULL)
		goto fail;
	if ((w->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		r = -errno;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((r = worker_new_one(list[i], -1, opts, &w->subs[i])) != 0)
			goto fail;
		w->subs[i]->parent = w;
		w->nsubs++;
	}
	strv_free(list);
	*ret = w;
	return 0;
fail:
	strv_free(list);
	pb_worker_free(w);
	return r;
}

/* Cuts every outstanding job loose, closes and frees w; NULL ok. */
void
pb_worker_free(struct pb_worker *w)
{
	struct pb_job	*j;
	size_t		 i;

	if (w == NULL)
		return;
	for (i = 0; i < w->nsubs; i++)
		pb_worker_free(w->subs[i]);
	free(w->subs);
	if (w->epfd >= 0)
		close(w->epfd);
	worker_keepalive_stop(w);
	HASH_CLEAR(hh, w->live);
	while ((j = LIST_FIRST(&w->jobs)) != NULL) {
		LIST_REMOVE(j, entry);
		j->live = false;
		j->w = NULL;
	}
	common_clear(&w->conn);
	if (w->inherited_fd >= 0)
		close(w->inherited_fd);
	for (i = 0; i < w->nfns; i++)
		free(w->fns[i].name);
	free(w->endpoint);
	free(w->name);
	free(w->token);
	pthread_cond_destroy(&w->ka_cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* The endpoint a worker connects to, for the state callback. */
static const char *
worker_endpoint(struct pb_worker *w, char *buf, size_t len)
{
	if (w->endpoint != NULL)
		return w->endpoint;
	if (w->inherited)
		return "inherited";
	if (endpoint_default(buf, len, true) != 0)
		return "default";
	return buf;
}

/* Tells the state callback, once per change, that w (dis)connected. */
static void
worker_state(struct pb_worker *w, bool connected)
{
	struct pb_worker	*top = worker_top(w);
	char			 buf[PATH_MAX + 64];

	if (w->announced == connected)
		return;
	w->announced = connected;
	if (top->on_state != NULL)
		top->on_state(top, worker_endpoint(w, buf, sizeof(buf)),
		    connected, top->state_userdata);
}

/* True while w has a working connection. */
static bool
worker_connected(const struct pb_worker *w)
{
	return w->conn.fd >= 0 && !w->conn.dead;
}

/* Sends REGISTER with the current functions and capacity. */
static int
worker_register(struct pb_worker *w)
{
	struct packet	p;
	size_t		i;

	if (w->nfns == 0)
		return 0;	/* REGISTER needs a name; it goes with the first */
	packet_init(&p, PKT_REGISTER);
	p.nfns = (uint32_t)w->nfns;
	for (i = 0; i < w->nfns; i++) {
		p.fns[i].ptr = (const uint8_t *)w->fns[i].name;
		p.fns[i].len = (uint32_t)w->fns[i].len;
	}
	p.capacity = w->draining ? 0 : w->capacity;
	return common_send(&w->conn, &p);
}

/*
 * Drops the connection: live jobs become abandoned (their completes get
 * -ENOTCONN), and a reconnect is scheduled, or, for an inherited
 * descriptor, the worker is finished.
 */
static void
worker_disconnect(struct pb_worker *w)
{
	struct pb_job	*j, *tmp;
	uint32_t	 delay;

	HASH_ITER(hh, w->live, j, tmp) {
		HASH_DEL(w->live, j);
		j->live = false;
	}
	w->gen++;
	if (w->parent != NULL && w->conn.fd >= 0)
		(void)epoll_ctl(w->parent->epfd, EPOLL_CTL_DEL, w->conn.fd,
		    NULL);
	common_reset(&w->conn);
	worker_state(w, false);
	if (w->inherited) {
		w->fatal = -ENOTCONN;
		return;
	}
	if (w->backoff_ms == 0)
		w->backoff_ms = WORKER_BACKOFF_MIN_MS;
	delay = w->backoff_ms;
	/* Jitter: anywhere from 3/4 to 5/4 of the delay. */
	delay = delay - delay / 4 + (uint32_t)(worker_rand(w) % (delay / 2 + 1));
	w->retry_at = clock_now_ms() + delay;
}

/* Schedules the next attempt after a failed one, doubling the delay. */
static void
worker_backoff(struct pb_worker *w)
{
	uint32_t	delay;

	if (w->backoff_ms == 0)
		w->backoff_ms = WORKER_BACKOFF_MIN_MS;
	else if (w->backoff_ms < WORKER_BACKOFF_MAX_MS)
		w->backoff_ms = w->backoff_ms * 2 > WORKER_BACKOFF_MAX_MS ?
		    WORKER_BACKOFF_MAX_MS : w->backoff_ms * 2;
	delay = w->backoff_ms;
	delay = delay - delay / 4 + (uint32_t)(worker_rand(w) % (delay / 2 + 1));
	w->retry_at = clock_now_ms() + delay;
}

/* True for a refusal that may go away by itself (busy, restarting). */
static bool
worker_transient(int err_code)
{
	return err_code == PERR_TOO_MANY_CONNECTIONS ||
	    err_code == PERR_SHUTTING_DOWN || err_code == PERR_HELLO_TIMEOUT ||
	    err_code == PERR_SLOW_CONSUMER;
}

/*
 * Adds a child's new socket to its parent's epoll set. Should that fail,
 * the parent's dispatch still reads the child on every turn, and its
 * timeout bounds the wait.
 */
static void
worker_watch(struct pb_worker *w)
{
	struct epoll_event	ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = w;
	(void)epoll_ctl(w->parent->epfd, EPOLL_CTL_ADD, w->conn.fd, &ev);
}

/*
 * One connection attempt: connect (or adopt), HELLO, REGISTER. Errors that
 * retrying cannot mend (a refused handshake, a bad endpoint, a used-up
 * inherited descriptor) make the worker fatal.
 */
static int
worker_try_connect(struct pb_worker *w)
{
	struct pb_options	opts = {
		.name = w->name,
		.token = w->token,
		.connect_timeout_ms = w->connect_timeout_ms,
	};
	int			r, fd;

	w->conn.err_code = -1;
	if (w->inherited) {
		if ((fd = w->inherited_fd) < 0) {
			common_set_connect_error("the inherited connection "
			    "(PATCHBAY_FD) is closed");
			return w->fatal = -ENOTCONN;
		}
		w->inherited_fd = -1;	/* the connection owns it now */
		r = common_adopt(&w->conn, fd, ROLE_WORKER, &opts);
	} else
		r = common_open(&w->conn, w->endpoint, ROLE_WORKER, &opts);
	if (r == 0) {
		w->gen++;
		if ((r = worker_register(w)) == 0) {
			w->backoff_ms = 0;
			worker_keepalive_start(w);
			if (w->parent != NULL)
				worker_watch(w);
			worker_state(w, true);
			return 0;
		}
		common_set_connect_error("REGISTER failed: %s", strerror(-r));
		common_reset(&w->conn);
	}
	if (w->inherited || r == -EINVAL || r == -ENAMETOOLONG ||
	    (r == -EPROTO && !worker_transient(w->conn.err_code)))
		w->fatal = r;
	else
		worker_backoff(w);
	return r;
}

/*
 * pb_worker_connect() for a list: connects every child that is not; 0 when
 * at least one is connected (the others are retried by dispatch), else
 * the first child's error.
 */
static int
worker_connect_all(struct pb_worker *w)
{
	char	why[PROTO_ERRLEN];
	size_t	i, up = 0;
	int	r, first = 0;

	why[0] = '\0';
	for (i = 0; i < w->nsubs; i++) {
		if ((r = pb_worker_connect(w->subs[i])) == 0)
			up++;
		else if (first == 0) {
			first = r;
			snprintf(why, sizeof(why), "%s", common_connect_error());
		}
	}
	if (up > 0) {
		common_set_connect_error("%s", "");
		return 0;
	}
	common_set_connect_error("no broker of the %zu listed is reachable "
	    "(%s)", w->nsubs, why);
	return first;
}

/* Connects now unless connected; see patchbay.h. */
int
pb_worker_connect(struct pb_worker *w)
{
	struct worker_hold	h;
	int			r;

	if (w == NULL)
		return -EINVAL;
	if (w->nsubs > 0)
		return worker_connect_all(w);
	worker_lock(w, &h);
	if (w->fatal != 0)
		r = w->fatal;
	else if (worker_connected(w))
		r = 0;
	else {
		if (w->conn.fd >= 0)
			worker_disconnect(w);
		r = w->fatal != 0 ? w->fatal : worker_try_connect(w);
	}
	worker_unlock(w, &h);
	return r;
}

/* pb_worker_add_function() with the lock held. */
static int
worker_add_function(struct pb_worker *w, const char *fn, pb_job_fn handler,
    void *userdata)
{
	struct worker_fn	*f;
	size_t			 len, i;
	int			 r;

	len = strnlen(fn, PROTO_MAX_FN_LEN + 1);
	if (len == 0 || len > PROTO_MAX_FN_LEN)
		return -EINVAL;
	for (i = 0; i < w->nfns; i++) {
		if (w->fns[i].len == len && memcmp(w->fns[i].name, fn,
		    len) == 0) {
			w->fns[i].handler = handler;
			w->fns[i].userdata = userdata;
			return 0;
		}
	}
	if (w->nfns == PROTO_MAX_FNS)
		return -ENOSPC;
	f = &w->fns[w->nfns];
	if ((f->name = strndup(fn, len)) == NULL)
		return -ENOMEM;
	f->len = len;
	f->handler = handler;
	f->userdata = userdata;
	w->nfns++;
	/* A lost connection shows in dispatch, which registers again. */
	if (worker_connected(w) && (r = worker_register(w)) == -ENOMEM) {
		/* The broker would never hear of it: take it back. */
		w->nfns--;
		free(f->name);
		f->name = NULL;
		return r;
	}
	return 0;
}

/* Adds or replaces a function; re-REGISTERs when connected. */
int
pb_worker_add_function(struct pb_worker *w, const char *fn,
    pb_job_fn handler, void *userdata)
{
	struct worker_hold	 h;
	int			 r;

	size_t			 i;

	if (w == NULL || fn == NULL || handler == NULL)
		return -EINVAL;
	for (i = 0; i < w->nsubs; i++) {
		if ((r = pb_worker_add_function(w->subs[i], fn, handler,
		    userdata)) != 0)
			return r;
	}
	worker_lock(w, &h);
	r = worker_add_function(w, fn, handler, userdata);
	worker_unlock(w, &h);
	return r;
}

/* Sets how many jobs may run at once; re-REGISTERs when connected. */
int
pb_worker_set_capacity(struct pb_worker *w, uint32_t capacity)
{
	struct worker_hold	h;
	uint32_t		old;
	int			r = 0;

	if (w == NULL || capacity < 1 || capacity > PROTO_MAX_CAPACITY)
		return -EINVAL;
	for (size_t i = 0; i < w->nsubs; i++) {
		if ((r = pb_worker_set_capacity(w->subs[i], capacity)) != 0)
			return r;
	}
	worker_lock(w, &h);
	old = w->capacity;
	w->capacity = capacity;
	if (worker_connected(w) && worker_register(w) == -ENOMEM) {
		w->capacity = old;
		r = -ENOMEM;
	}
	worker_unlock(w, &h);
	return r;
}

/* Asks for no new jobs; see patchbay.h. */
int
pb_worker_drain(struct pb_worker *w)
{
	struct worker_hold	h;
	int			r = 0, r2;

	if (w == NULL)
		return -EINVAL;
	for (size_t i = 0; i < w->nsubs; i++) {
		if ((r2 = pb_worker_drain(w->subs[i])) != 0 && r == 0)
			r = r2;
	}
	worker_lock(w, &h);
	if (!w->draining) {
		w->draining = true;
		/* A lost connection shows in dispatch; none takes jobs again. */
		if (worker_connected(w) && (r2 = worker_register(w)) != 0) {
			if (r2 == -ENOMEM)
				w->draining = false;	/* say it again */
			if (r == 0)
				r = r2;
		}
	}
	worker_unlock(w, &h);
	return r;
}

/* How many jobs were handed out and not completed yet. */
size_t
pb_worker_running(struct pb_worker *w)
{
	struct worker_hold	h;
	size_t			n;

	if (w == NULL)
		return 0;
	worker_lock(w, &h);
	n = w->njobs;
	worker_unlock(w, &h);
	for (size_t i = 0; i < w->nsubs; i++)
		n += pb_worker_running(w->subs[i]);
	return n;
}

/* Sets the callback told about cancelled jobs. */
void
pb_worker_on_cancel(struct pb_worker *w, pb_cancel_fn fn, void *userdata)
{
	struct worker_hold	h;

	if (w == NULL)
		return;
	for (size_t i = 0; i < w->nsubs; i++)
		pb_worker_on_cancel(w->subs[i], fn, userdata);
	worker_lock(w, &h);
	w->on_cancel = fn;
	w->cancel_userdata = userdata;
	worker_unlock(w, &h);
}

/* Sets the connection state callback. */
void
pb_worker_on_state(struct pb_worker *w, pb_state_fn fn, void *userdata)
{
	struct worker_hold	h;

	if (w == NULL)
		return;
	worker_lock(w, &h);
	w->on_state = fn;
	w->state_userdata = userdata;
	worker_unlock(w, &h);
}

/* Answers a RUN the worker cannot serve with RESULT ERROR; 0 or -ENOMEM. */
static int
worker_refuse(struct pb_worker *w, const struct packet *p, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Answers a RUN the worker cannot serve with RESULT ERROR; 0 or -ENOMEM. */
static int
worker_refuse(struct pb_worker *w, const struct packet *p, const char *fmt,
    ...)
{
	struct packet	res;
	char		msg[PROTO_ERRLEN + PROTO_MAX_FN_LEN];
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	packet_init(&res, PKT_RESULT);
	memcpy(res.id, p->id, PROTO_ID_LEN);
	res.attempt = p->attempt;
	res.status = JOB_ERROR;
	res.has |= PF_ERROR;
	res.error.ptr = (const uint8_t *)msg;
	res.error.len = (uint32_t)strlen(msg);
	return common_send(&w->conn, &res) == -ENOMEM ? -ENOMEM : 0;
}

/*
 * Turns a RUN into a pb_job and hands it to its function's handler.
 * -ENOMEM: nothing was done, and common_process() keeps the RUN for the
 * next dispatch.
 */
static int
worker_run(struct pb_worker *w, const struct packet *p)
{
	struct worker_fn	*f = NULL;
	struct worker_key	 key;
	struct pb_job		*j;
	size_t			 i, msize, moff;
	char			*fn;
	int			 r;

	for (i = 0; i < w->nfns; i++) {
		if (w->fns[i].len == p->fn.len &&
		    memcmp(w->fns[i].name, p->fn.ptr, p->fn.len) == 0) {
			f = &w->fns[i];
			break;
		}
	}
	if (f == NULL)
		return worker_refuse(w, p, "function '%.*s' is not registered "
		    "here", (int)p->fn.len, (const char *)p->fn.ptr);
	memset(&key, 0, sizeof(key));
	memcpy(key.id, p->id, PROTO_ID_LEN);
	key.attempt = p->attempt;
	HASH_FIND(hh, w->live, &key, sizeof(key), j);
	if (j != NULL)
		return 0;	/* the same dispatch twice: already running */
	/* Meta, when there is some, goes last, aligned for its pointers. */
	moff = p->payload.len + p->fn.len + 1;
	msize = (p->has & PF_META) ? meta_unpack_size(p->meta) : 0;
	if (msize > 0)
		moff = (moff + _Alignof(char *) - 1) & ~(_Alignof(char *) - 1);
	j = malloc(sizeof(*j) + moff + msize);
	if (j == NULL)
		return -ENOMEM;
	memset(j, 0, sizeof(*j));
	j->w = w;
	j->gen = w->gen;
	j->key = key;
	j->timeout_ms = (p->has & PF_TIMEOUT) ? (p->timeout_ms > UINT32_MAX ?
	    UINT32_MAX : (uint32_t)p->timeout_ms) : 0;
	if (p->payload.len > 0) {	/* required: not in p->has */
		memcpy(j->data, p->payload.ptr, p->payload.len);
		j->len = p->payload.len;
	}
	fn = (char *)j->data + j->len;
	memcpy(fn, p->fn.ptr, p->fn.len);
	fn[p->fn.len] = '\0';
	j->fn = fn;
	if (msize > 0) {
		j->nmeta = meta_unpack(p->meta, j->data + moff);
		j->meta = (const char *const *)(void *)(j->data + moff);
	}
	COMMON_HASH_ADD(hh, w->live, key, sizeof(j->key), j, r);
	if (r != 0) {
		free(j);
		return r;
	}
	j->live = true;
	LIST_INSERT_HEAD(&w->jobs, j, entry);
	w->njobs++;
	/* The handler may complete (and free) j: do not touch it after. */
	worker_call_handler(w, f, j);
	return 0;
}

/* Handles one packet from the broker for a worker. */
static int
worker_packet(struct bconn *b, const struct packet *p, void *arg)
{
	struct pb_worker	*w = arg;
	struct worker_key	 key;
	struct pb_job		*j;

	switch (p->type) {
	case PKT_RUN:
		return worker_run(w, p);
	case PKT_CANCEL:
		memset(&key, 0, sizeof(key));
		memcpy(key.id, p->id, PROTO_ID_LEN);
		key.attempt = p->attempt;
		HASH_FIND(hh, w->live, &key, sizeof(key), j);
		if (j == NULL || pb_job_cancelled(j))
			return 0;
		__atomic_store_n(&j->cancelled, true, __ATOMIC_RELAXED);
		/* Called with the lock held: it must not block. */
		if (w->on_cancel != NULL)
			w->on_cancel(worker_top(w), j, w->cancel_userdata);
		return 0;
	case PKT_BYE:
		common_kill(b, -ENOTCONN, "the broker is going away%s%s",
		    b->bye[0] != '\0' ? ": " : "", b->bye);
		return 1;
	default:
		return 0;
	}
}

/*
 * Sleeps until the next connect attempt or the deadline, without the lock
 * (so that other threads may answer their jobs meanwhile); 0 or -EINTR.
 */
static int
worker_sleep(struct pb_worker *w, uint64_t deadline)
{
	uint64_t	now = clock_now_ms(), until = w->retry_at;
	int		ms, r;

	if (deadline != 0 && deadline < until)
		until = deadline;
	if (until <= now)
		return 0;
	ms = until - now > INT32_MAX ? INT32_MAX : (int)(until - now);
	pthread_mutex_unlock(&w->lock);
	r = poll(NULL, 0, ms);
	pthread_mutex_lock(&w->lock);
	return r == -1 && errno == EINTR ? -EINTR : 0;
}

/* pb_worker_dispatch() with the lock held. */
static int
worker_dispatch(struct pb_worker *w, int timeout_ms)
{
	struct bconn	*b = &w->conn;
	uint64_t	 deadline = 0;
	int		 n, ms, r;

	if (timeout_ms > 0)
		deadline = clock_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		if (w->fatal != 0)
			return w->fatal;
		ms = common_wait_ms(timeout_ms, deadline);
		if (b->fd < 0) {
			if (clock_now_ms() >= w->retry_at) {
				r = worker_try_connect(w);
				if (r != 0 && w->fatal != 0)
					return w->fatal;
				if (r == -ENOMEM)
					return r;	/* retried when due */
			} else if (ms != 0 && worker_sleep(w, deadline) != 0)
				return 0;
			if (ms == 0)
				return 0;
			continue;
		}
		if (!b->dead && !common_has_frame(b)) {
			r = common_wait(b, ms);
			if (r == -EINTR)
				return 0;
			if (r == -ENOMEM)
				return r;
		}
		/* On a dead connection, RUNs could not be answered anyway. */
		n = b->dead ? 0 : common_process(b, worker_packet, w);
		if (n == -ENOMEM && !b->dead)
			return n;	/* what was not handled is kept */
		if (b->dead) {
			worker_disconnect(w);
			if (w->fatal != 0)
				return w->fatal;
		}
		if (n != 0 || ms == 0 || w->stop)
			return 0;
	}
}

/* Milliseconds until w needs a dispatch (-1: nothing due); lock held. */
static int
worker_due_ms(struct pb_worker *w)
{
	struct bconn	*b = &w->conn;
	uint64_t	 now = clock_now_ms(), due;

	if (w->fatal != 0)
		return -1;
	if (b->fd < 0)
		due = w->retry_at;
	else if (b->dead || common_has_frame(b) || b->out_off < b->out.size)
		return 0;
	else if (b->heartbeat_ms == 0)
		return -1;
	else
		due = common_liveness_due(b);
	if (due <= now)
		return 0;
	return due - now > INT32_MAX ? INT32_MAX : (int)(due - now);
}

/* The sooner of two waits in poll(2)'s terms (-1: none). */
static int
worker_sooner(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/* When w next needs pb_worker_dispatch(); see patchbay.h. */
int
pb_worker_timeout_ms(struct pb_worker *w)
{
	struct worker_hold	h;
	int			ms = -1;

	if (w == NULL)
		return -1;
	for (size_t i = 0; i < w->nsubs; i++)
		ms = worker_sooner(ms, pb_worker_timeout_ms(w->subs[i]));
	if (w->nsubs > 0)
		return ms;
	worker_lock(w, &h);
	ms = worker_due_ms(w);
	worker_unlock(w, &h);
	return ms;
}

/*
 * pb_worker_dispatch() for a list: each child handles what it has and
 * reconnects when due, then the wait is on the epoll set, bounded by the
 * children's next deadlines. Fatal only when every child is.
 */
static int
worker_dispatch_all(struct pb_worker *w, int timeout_ms)
{
	struct epoll_event	ev[8];
	uint64_t		deadline = 0;
	size_t			i, live;
	int			ms, n, r, first;

	if (timeout_ms > 0)
		deadline = clock_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		live = 0;
		first = 0;
		for (i = 0; i < w->nsubs; i++) {
			r = pb_worker_dispatch(w->subs[i], 0);
			if (r == -ENOMEM)
				return r;
			if (r < 0 && first == 0)
				first = r;
			if (w->subs[i]->fatal == 0)
				live++;
		}
		if (live == 0)
			return first != 0 ? first : -ENOTCONN;
		ms = common_wait_ms(timeout_ms, deadline);
		if (ms == 0 || w->stop)
			return 0;
		ms = worker_sooner(ms, pb_worker_timeout_ms(w));
		n = epoll_wait(w->epfd, ev, 8, ms);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n != 0) {
			/* Input (or a signal): handle it and return. */
			for (i = 0; i < w->nsubs; i++) {
				r = pb_worker_dispatch(w->subs[i], 0);
				if (r == -ENOMEM)
					return r;
			}
			return 0;
		}
	}
}

/* Handles what arrived and reconnects when due; see patchbay.h. */
int
pb_worker_dispatch(struct pb_worker *w, int timeout_ms)
{
	struct worker_hold	h;
	int			r;

	if (w == NULL || timeout_ms < -1)
		return -EINVAL;
	if (w->nsubs > 0)
		return worker_dispatch_all(w, timeout_ms);
	worker_lock(w, &h);
	r = worker_dispatch(w, timeout_ms);
	worker_unlock(w, &h);
	return r;
}

/* Loops in pb_worker_dispatch() until stopped or failed; see patchbay.h. */
int
pb_worker_run(struct pb_worker *w)
{
	int	r;

	if (w == NULL)
		return -EINVAL;
	while (!w->stop) {
		if ((r = pb_worker_dispatch(w, WORKER_RUN_SLICE_MS)) < 0)
			return r;
	}
	w->stop = 0;
	return 0;
}

/* Makes pb_worker_run() return; async-signal-safe. */
void
pb_worker_stop(struct pb_worker *w)
{
	if (w != NULL)
		w->stop = 1;
}

/* The current socket, or -1 while disconnected; a list's epoll fd. */
int
pb_worker_fd(const struct pb_worker *w)
{
	if (w == NULL)
		return -1;
	return w->nsubs > 0 ? w->epfd : w->conn.fd;
}

/* The job's 16-byte id. */
const uint8_t *
pb_job_id(const struct pb_job *job)
{
	return job == NULL ? NULL : job->key.id;
}

/* The function the job was sent to. */
const char *
pb_job_function(const struct pb_job *job)
{
	return job == NULL ? NULL : job->fn;
}

/* The job's payload (may be empty); its length goes to ret_len. */
const void *
pb_job_payload(const struct pb_job *job, size_t *ret_len)
{
	if (job == NULL)
		return NULL;
	if (ret_len != NULL)
		*ret_len = job->len;
	return job->data;
}

/* The value of the job's meta key, or NULL. */
const char *
pb_job_meta(const struct pb_job *job, const char *key)
{
	if (job == NULL || key == NULL)
		return NULL;
	for (uint32_t i = 0; i < job->nmeta; i++) {
		if (strcmp(job->meta[2 * i], key) == 0)
			return job->meta[2 * i + 1];
	}
	return NULL;
}

/* How many meta entries the job has. */
size_t
pb_job_meta_count(const struct pb_job *job)
{
	return job == NULL ? 0 : job->nmeta;
}

/* The key of meta entry i (NULL past the end), its value in *ret_value. */
const char *
pb_job_meta_at(const struct pb_job *job, size_t i, const char **ret_value)
{
	if (job == NULL || i >= job->nmeta)
		return NULL;
	if (ret_value != NULL)
		*ret_value = job->meta[2 * i + 1];
	return job->meta[2 * i];
}

/* Which dispatch of the job this is (1 for the first). */
uint32_t
pb_job_attempt(const struct pb_job *job)
{
	if (job == NULL)
		return 0;
	return job->key.attempt > UINT32_MAX ? UINT32_MAX :
	    (uint32_t)job->key.attempt;
}

/* The job's timeout as the broker sent it, 0 for none. */
uint32_t
pb_job_timeout_ms(const struct pb_job *job)
{
	return job == NULL ? 0 : job->timeout_ms;
}

/* True once a CANCEL arrived for the job. */
bool
pb_job_cancelled(const struct pb_job *job)
{
	return job != NULL && __atomic_load_n(&job->cancelled,
	    __ATOMIC_RELAXED);
}

/* The caller's pointer attached to the job. */
void *
pb_job_get_userdata(const struct pb_job *job)
{
	return job == NULL ? NULL : job->userdata;
}

/* Attaches a caller's pointer to the job. */
void
pb_job_set_userdata(struct pb_job *job, void *userdata)
{
	if (job != NULL)
		job->userdata = userdata;
}

/* True when job came on the worker's current, working connection. */
static bool
worker_job_current(const struct pb_job *job)
{
	return job->w != NULL && job->gen == job->w->gen &&
	    worker_connected(job->w);
}

/* True once the connection the job came on is gone; see patchbay.h. */
bool
pb_job_abandoned(const struct pb_job *job)
{
	struct worker_hold	h;
	bool			gone;

	if (job == NULL || job->w == NULL)
		return true;
	worker_lock(job->w, &h);
	gone = !worker_job_current(job);
	worker_unlock(job->w, &h);
	return gone;
}

/*
 * Sends PROGRESS for a running job, written at once even in the middle of
 * a batch; see patchbay.h.
 */
int
pb_job_progress(struct pb_job *job, const void *data, size_t len)
{
	struct worker_hold	 h;
	struct pb_worker	*w;
	struct packet		 p;
	int			 r;

	if (job == NULL || (data == NULL && len > 0))
		return -EINVAL;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	if ((w = job->w) == NULL)
		return -ENOTCONN;
	packet_init(&p, PKT_PROGRESS);
	memcpy(p.id, job->key.id, PROTO_ID_LEN);
	p.attempt = job->key.attempt;
	/* Required, so no PF_PAYLOAD; never a NULL pointer to msgpack. */
	p.payload.ptr = data != NULL ? data : (const void *)"";
	p.payload.len = (uint32_t)len;
	worker_lock(w, &h);
	if (!worker_job_current(job))
		r = -ENOTCONN;
	else if ((r = common_send(&w->conn, &p)) == 0)
		r = common_push(&w->conn);
	worker_unlock(w, &h);
	return r;
}

/* pb_job_complete() with the lock held (or with the worker gone). */
static int
worker_complete(struct pb_job *job, enum pb_status status,
    const void *payload, size_t len, const char *error)
{
	struct pb_worker	*w = job->w;
	struct packet		 p;
	char			 msg[PROTO_ERRLEN];
	int			 r = -ENOTCONN, r2;

	if (worker_job_current(job)) {
		packet_init(&p, PKT_RESULT);
		memcpy(p.id, job->key.id, PROTO_ID_LEN);
		p.attempt = job->key.attempt;
		p.status = (enum job_status)status;
		if (len > 0) {
			p.has |= PF_PAYLOAD;
			p.payload.ptr = payload;
			p.payload.len = len > UINT32_MAX ? UINT32_MAX :
			    (uint32_t)len;
		}
		if (error != NULL) {
			p.has |= PF_ERROR;
			p.error.ptr = (const uint8_t *)error;
			p.error.len = (uint32_t)strnlen(error, UINT32_MAX);
		}
		r = len > UINT32_MAX ? -EMSGSIZE : common_send(&w->conn, &p);
		if (r == -EMSGSIZE) {
			/* The job must be answered all the same. */
			snprintf(msg, sizeof(msg), "the result (%zu bytes) is "
			    "larger than the broker's frame limit of %lu bytes",
			    len, (unsigned long)w->conn.max_frame);
			p.has &= ~PF_PAYLOAD;
			p.status = JOB_ERROR;
			p.has |= PF_ERROR;
			p.error.ptr = (const uint8_t *)msg;
			p.error.len = (uint32_t)strlen(msg);
			if ((r2 = common_send(&w->conn, &p)) == -ENOMEM)
				r = r2;
		}
		if (r == -ENOMEM)
			return r;	/* nothing was sent: still the user's */
	}
	if (job->live) {
		HASH_DEL(w->live, job);
		job->live = false;
	}
	if (w != NULL) {
		LIST_REMOVE(job, entry);
		w->njobs--;
	}
	free(job);
	return r;
}

/* Answers a job and frees it; see patchbay.h. */
int
pb_job_complete(struct pb_job *job, enum pb_status status,
    const void *payload, size_t len, const char *error)
{
	struct worker_hold	 h;
	struct pb_worker	*w;
	int			 r;

	if (job == NULL || (payload == NULL && len > 0) ||
	    (status != PB_OK && status != PB_ERROR && status != PB_CANCELLED))
		return -EINVAL;
	if ((w = job->w) == NULL)
		return worker_complete(job, status, payload, len, error);
	worker_lock(w, &h);
	r = worker_complete(job, status, payload, len, error);
	worker_unlock(w, &h);
	return r;
}

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
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
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
	bool			 cancelled;
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

/* A worker and its jobs; owned by the caller. */
struct pb_worker {
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

	uint64_t		 retry_at;	/* next connect attempt, ms */
	uint32_t		 backoff_ms;	/* 0: connected or never tried */
	uint64_t		 rng;		/* jitter */
	int			 fatal;		/* cannot go on: this errno */
	volatile sig_atomic_t	 stop;
};

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

/* Creates a worker, not connected yet; see patchbay.h. */
int
pb_worker_new(const char *endpoint, const struct pb_options *opts,
    struct pb_worker **ret)
{
	struct pb_worker	*w;
	struct endpoint		 ep;
	char			 err[PROTO_ERRLEN];
	int			 fd = -1, r;

	if (ret == NULL)
		return -EINVAL;
	common_set_connect_error("%s", "");
	if (endpoint != NULL) {
		if ((r = endpoint_parse(endpoint, &ep, err)) != 0) {
			common_set_connect_error("%s", err);
			return r;
		}
	} else if ((r = worker_env_fd(&fd)) < 0)
		return r;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -ENOMEM;
	common_init(&w->conn);
	LIST_INIT(&w->jobs);
	w->inherited_fd = -1;
	w->capacity = 1;
	w->rng = clock_now_ms() ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(uintptr_t)w;
	if (w->rng == 0)
		w->rng = 0x9e3779b97f4a7c15ULL;
	if (fd >= 0) {
		w->inherited_fd = fd;
		w->inherited = true;
	}
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
	*ret = w;
	return 0;
nomem:
	w->inherited_fd = -1;	/* still the caller's */
	pb_worker_free(w);
	return -ENOMEM;
}

/* Cuts every outstanding job loose, closes and frees w; NULL ok. */
void
pb_worker_free(struct pb_worker *w)
{
	struct pb_job	*j;
	size_t		 i;

	if (w == NULL)
		return;
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
	free(w);
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
	p.capacity = w->capacity;
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
	common_reset(&w->conn);
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

/* Connects now unless connected; see patchbay.h. */
int
pb_worker_connect(struct pb_worker *w)
{
	if (w == NULL)
		return -EINVAL;
	if (w->fatal != 0)
		return w->fatal;
	if (worker_connected(w))
		return 0;
	if (w->conn.fd >= 0)
		worker_disconnect(w);
	if (w->fatal != 0)
		return w->fatal;
	return worker_try_connect(w);
}

/* Adds or replaces a function; re-REGISTERs when connected. */
int
pb_worker_add_function(struct pb_worker *w, const char *fn,
    pb_job_fn handler, void *userdata)
{
	struct worker_fn	*f;
	size_t			 len, i;
	int			 r;

	if (w == NULL || fn == NULL || handler == NULL)
		return -EINVAL;
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

/* Sets how many jobs may run at once; re-REGISTERs when connected. */
int
pb_worker_set_capacity(struct pb_worker *w, uint32_t capacity)
{
	uint32_t	old;

	if (w == NULL || capacity < 1 || capacity > PROTO_MAX_CAPACITY)
		return -EINVAL;
	old = w->capacity;
	w->capacity = capacity;
	if (worker_connected(w) && worker_register(w) == -ENOMEM) {
		w->capacity = old;
		return -ENOMEM;
	}
	return 0;
}

/* Sets the callback told about cancelled jobs. */
void
pb_worker_on_cancel(struct pb_worker *w, pb_cancel_fn fn, void *userdata)
{
	if (w == NULL)
		return;
	w->on_cancel = fn;
	w->cancel_userdata = userdata;
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
	/* The handler may complete (and free) j: do not touch it after. */
	f->handler(w, j, f->userdata);
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
		if (j == NULL || j->cancelled)
			return 0;
		j->cancelled = true;
		if (w->on_cancel != NULL)
			w->on_cancel(w, j, w->cancel_userdata);
		return 0;
	case PKT_BYE:
		common_kill(b, -ENOTCONN, "the broker is going away%s%s",
		    b->bye[0] != '\0' ? ": " : "", b->bye);
		return 1;
	default:
		return 0;
	}
}

/* Sleeps until the next connect attempt or the deadline; 0 or -EINTR. */
static int
worker_sleep(struct pb_worker *w, uint64_t deadline)
{
	uint64_t	now = clock_now_ms(), until = w->retry_at;
	int		ms;

	if (deadline != 0 && deadline < until)
		until = deadline;
	if (until <= now)
		return 0;
	ms = until - now > INT32_MAX ? INT32_MAX : (int)(until - now);
	if (poll(NULL, 0, ms) == -1 && errno == EINTR)
		return -EINTR;
	return 0;
}

/* Handles what arrived and reconnects when due; see patchbay.h. */
int
pb_worker_dispatch(struct pb_worker *w, int timeout_ms)
{
	struct bconn	*b;
	uint64_t	 deadline = 0;
	int		 n, ms, r;

	if (w == NULL || timeout_ms < -1)
		return -EINVAL;
	b = &w->conn;
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

/* The current socket, or -1 while disconnected. */
int
pb_worker_fd(const struct pb_worker *w)
{
	return w == NULL ? -1 : w->conn.fd;
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
	return job != NULL && job->cancelled;
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

/* Sends PROGRESS for a running job; see patchbay.h. */
int
pb_job_progress(struct pb_job *job, const void *data, size_t len)
{
	struct packet	p;

	if (job == NULL || (data == NULL && len > 0))
		return -EINVAL;
	if (!worker_job_current(job))
		return -ENOTCONN;
	if (len > UINT32_MAX)
		return -EMSGSIZE;
	packet_init(&p, PKT_PROGRESS);
	memcpy(p.id, job->key.id, PROTO_ID_LEN);
	p.attempt = job->key.attempt;
	/* Required, so no PF_PAYLOAD; never a NULL pointer to msgpack. */
	p.payload.ptr = data != NULL ? data : (const void *)"";
	p.payload.len = (uint32_t)len;
	return common_send(&job->w->conn, &p);
}

/* Answers a job and frees it; see patchbay.h. */
int
pb_job_complete(struct pb_job *job, enum pb_status status,
    const void *payload, size_t len, const char *error)
{
	struct pb_worker	*w;
	struct packet		 p;
	char			 msg[PROTO_ERRLEN];
	int			 r = -ENOTCONN, r2;

	if (job == NULL || (payload == NULL && len > 0) ||
	    (status != PB_OK && status != PB_ERROR && status != PB_CANCELLED))
		return -EINVAL;
	w = job->w;
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
	if (w != NULL)
		LIST_REMOVE(job, entry);
	free(job);
	return r;
}

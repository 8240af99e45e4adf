/*
 * switchboard.c: routes jobs between clients and workers, with no I/O.
 *
 * A job is born in switchboard_run() as one allocation (the job and a copy
 * of its payload; its function name lives in the struct sb_fn it points
 * to). While live it sits in the route table (sb->routes, keyed by its id),
 * in its client's list (unless detached) and, when it has a timeout, in the
 * deadline min-heap. It is then either QUEUED, in its function's priority
 * heap, or RUNNING, in its worker's job list and holding one of the
 * worker's slots. A terminal answer ends its life, except when the worker
 * still holds the attempt (after a TIMEOUT, a client's disconnect or a
 * shutdown): the job then becomes an ORPHAN, out of the route table and
 * into its worker's orphan table (keyed by id and attempt), and keeps the
 * slot until the worker answers that attempt or goes away.
 *
 * Invariant that keeps dispatch cheap: whenever a function's queue is not
 * empty, none of its unpaused workers has a free slot. Every event that
 * frees a slot (RESULT, REGISTER, resume, an orphan's answer) refills that
 * worker from the heads of its functions' queues, and every event that
 * queues a job on a function checks its workers first.
 *
 * Every packet leaves through sb->send. The callback must not call back
 * into the switchboard (the broker's only encodes); even so, every send is
 * made with the switchboard's lists in a consistent state and iterations
 * never keep a pointer to something a send could have freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

/* uthash must report allocation failures instead of calling exit(). */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "switchboard/switchboard.h"

#define HEAP_NONE	UINT32_MAX

/* Where a job is in its life. */
enum sb_job_state {
	SB_JOB_QUEUED,
	SB_JOB_RUNNING,
	SB_JOB_ORPHAN,
};

/* The two heaps a job can be in, and the index slot it keeps for each. */
enum sb_heap_kind {
	SB_HEAP_QUEUE,		/* a function's queue: priority, then seq */
	SB_HEAP_DEADLINE,	/* the switchboard's timeouts: earliest first */
	SB_HEAP__MAX
};

/* A binary heap of jobs; each job stores its index for O(log n) removal. */
struct sb_heap {
	struct sb_job	**v;
	uint32_t	  n;
	uint32_t	  cap;
};

/*
 * The key of a job: its id for the route table (the first PROTO_ID_LEN
 * bytes), id and attempt for a worker's orphan table (all of it).
 */
struct sb_job_key {
	uint8_t		 id[PROTO_ID_LEN];
	uint64_t	 attempt;
};

/* One job, owned by the switchboard from RUN until it is freed. */
struct sb_job {
	/* In sb->routes while live, in worker->orphans once orphaned. */
	UT_hash_handle		 hh;
	struct sb_job_key	 key;
	TAILQ_ENTRY(sb_job)	 client_entry;	/* client->jobs, while live */
	TAILQ_ENTRY(sb_job)	 worker_entry;	/* worker->jobs, running/orphan */
	struct sb_fn		*fn;		/* holds a reference (njobs) */
	struct sb_client	*client;	/* NULL: detached or orphaned */
	struct sb_worker	*worker;	/* while running or orphaned */
	uint64_t		 seq;		/* arrival order, kept on requeue */
	uint64_t		 deadline;	/* when has_timeout */
	uint32_t		 heap_idx[SB_HEAP__MAX];
	uint32_t		 attempt;	/* dispatches so far */
	uint32_t		 max_attempts;	/* 1 + retries */
	uint32_t		 payload_len;
	int16_t			 priority;
	uint8_t			 state;		/* enum sb_job_state */
	bool			 has_timeout;
	bool			 detached;
	bool			 cancel_requested;
	bool			 hashed;	/* in the orphan table */
	uint8_t			 payload[];
};

TAILQ_HEAD(sb_job_list, sb_job);

/* A worker's registration for one function; lives in worker->regs. */
struct sb_reg {
	TAILQ_ENTRY(sb_reg)	 fn_entry;	/* fn->workers */
	struct sb_fn		*fn;
	struct sb_worker	*worker;
};

/*
 * A function name with its queue and its workers. Owned by the
 * switchboard; freed once nothing refers to it (no worker, no job) and its
 * no-worker clock is not running.
 */
struct sb_fn {
	UT_hash_handle		 hh;		/* sb->fns, keyed by name */
	struct sb_heap		 queue;
	TAILQ_HEAD(, sb_reg)	 workers;
	struct sb_reg		*cursor;	/* round-robin start; NULL: first */
	uint32_t		 nworkers;
	uint32_t		 running;	/* live jobs running */
	uint32_t		 njobs;		/* jobs pointing here, any state */
	bool			 idle;		/* no_worker_since is set */
	bool			 draining;	/* on a worker_remove drain list */
	uint64_t		 no_worker_since;
	TAILQ_ENTRY(sb_fn)	 idle_entry;	/* sb->idle_fns, when idle */
	SLIST_ENTRY(sb_fn)	 drain_entry;
	uint64_t		 reg_gen;	/* de-duplicates a REGISTER */
	uint32_t		 name_len;
	char			 name[];	/* NUL-terminated */
};

SLIST_HEAD(sb_fn_slist, sb_fn);

/* A connected client; owned by the switchboard, freed on remove. */
struct sb_client {
	TAILQ_ENTRY(sb_client)	 entry;		/* sb->clients */
	void			*ctx;
	struct sb_job_list	 jobs;		/* live, non-detached */
};

/* A connected worker; owned by the switchboard, freed on remove. */
struct sb_worker {
	TAILQ_ENTRY(sb_worker)	 entry;		/* sb->workers, as added */
	void			*ctx;
	uint32_t		 capacity;
	uint32_t		 in_flight;	/* running and orphans */
	bool			 paused;
	uint32_t		 nregs;
	struct sb_reg		*regs;
	const char		**fn_names;	/* point into the fns */
	struct sb_job_list	 jobs;		/* running and orphans */
	struct sb_job		*orphans;	/* uthash by (id, attempt) */
	uint64_t		 completed;
};

/* The whole routing state. */
struct switchboard {
	sb_send_cb		 send;
	void			*arg;
	uint32_t		 max_queue;
	uint64_t		 no_worker_wait_ms;
	bool			 shutting_down;

	struct sb_job		*routes;	/* live jobs by id */
	struct sb_fn		*fns;		/* by name */
	struct sb_heap		 deadlines;
	TAILQ_HEAD(, sb_worker)	 workers;
	TAILQ_HEAD(, sb_client)	 clients;
	TAILQ_HEAD(, sb_fn)	 idle_fns;	/* no_worker_since set */

	uint64_t		 next_seq;
	uint64_t		 reg_gen;
	uint32_t		 nqueued;
	uint32_t		 nrunning;
	uint32_t		 nworkers;
	uint32_t		 nclients;
	struct sb_stats		 stats;		/* the counters only */
};

/* Adds b to a, saturating at UINT64_MAX instead of wrapping. */
static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return (b > UINT64_MAX - a) ? UINT64_MAX : a + b;
}

/* Tells whether a must leave its heap of the given kind before b. */
static inline bool
heap_before(enum sb_heap_kind kind, const struct sb_job *a,
    const struct sb_job *b)
{
	if (kind == SB_HEAP_DEADLINE) {
		if (a->deadline != b->deadline)
			return a->deadline < b->deadline;
		return a->seq < b->seq;
	}
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->seq < b->seq;
}

/* Makes room for one more element so that a later heap_push cannot fail. */
static int
heap_reserve(struct sb_heap *h)
{
	struct sb_job	**v;
	uint32_t	  cap;

	if (h->n < h->cap)
		return 0;
	if (h->cap > UINT32_MAX / 2 - 1)
		return -ENOMEM;
	cap = h->cap ? h->cap * 2 : 16;
	v = realloc(h->v, (size_t)cap * sizeof *v);
	if (v == NULL)
		return -ENOMEM;
	h->v = v;
	h->cap = cap;
	return 0;
}

/* Stores job at index i of the heap and records the index in the job. */
static inline void
heap_set(struct sb_heap *h, enum sb_heap_kind kind, uint32_t i,
    struct sb_job *job)
{
	h->v[i] = job;
	job->heap_idx[kind] = i;
}

/* Moves the element at index i up while it goes before its parent. */
static void
heap_sift_up(struct sb_heap *h, enum sb_heap_kind kind, uint32_t i)
{
	struct sb_job	*job = h->v[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!heap_before(kind, job, h->v[parent]))
			break;
		heap_set(h, kind, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, kind, i, job);
}

/* Moves the element at index i down while a child goes before it. */
static void
heap_sift_down(struct sb_heap *h, enum sb_heap_kind kind, uint32_t i)
{
	struct sb_job	*job = h->v[i];

	for (;;) {
		uint32_t l = 2 * i + 1, c;

		if (l >= h->n)
			break;
		c = l;
		if (l + 1 < h->n && heap_before(kind, h->v[l + 1], h->v[l]))
			c = l + 1;
		if (!heap_before(kind, h->v[c], job))
			break;
		heap_set(h, kind, i, h->v[c]);
		i = c;
	}
	heap_set(h, kind, i, job);
}

/* Inserts job; the caller has reserved room with heap_reserve(). */
static void
heap_push(struct sb_heap *h, enum sb_heap_kind kind, struct sb_job *job)
{
	heap_set(h, kind, h->n++, job);
	heap_sift_up(h, kind, h->n - 1);
}

/* Removes job from the heap, wherever it is; a job not in it is ignored. */
static void
heap_remove(struct sb_heap *h, enum sb_heap_kind kind, struct sb_job *job)
{
	uint32_t	 i = job->heap_idx[kind];
	struct sb_job	*last;

	if (i == HEAP_NONE)
		return;
	job->heap_idx[kind] = HEAP_NONE;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	heap_set(h, kind, i, last);
	if (i > 0 && heap_before(kind, last, h->v[(i - 1) / 2]))
		heap_sift_up(h, kind, i);
	else
		heap_sift_down(h, kind, i);
}

/* Returns the element that leaves first, or NULL when the heap is empty. */
static inline struct sb_job *
heap_top(const struct sb_heap *h)
{
	return h->n ? h->v[0] : NULL;
}

/* Sends one packet to a peer through the broker's callback. */
static void
sb_send(struct switchboard *sb, void *ctx, const struct packet *p)
{
	sb->send(ctx, p, sb->arg);
}

/* Sends RESULT {id, status, attempts, error?} to a client. */
static void
sb_send_result(struct switchboard *sb, struct sb_client *c,
    const uint8_t *id, enum job_status status, uint64_t attempts,
    const char *error)
{
	struct packet	 p = {
		.type = PKT_RESULT,
		.status = status,
		.attempts = attempts,
	};

	memcpy(p.id, id, PROTO_ID_LEN);
	if (error != NULL) {
		p.has |= PF_ERROR;
		p.error.ptr = (const uint8_t *)error;
		p.error.len = (uint32_t)strlen(error);
	}
	sb_send(sb, c->ctx, &p);
}

/* Sends CANCEL {id, attempt} for a running job to its worker. */
static void
sb_send_cancel(struct switchboard *sb, struct sb_job *job)
{
	struct packet	 p = {
		.type = PKT_CANCEL,
		.attempt = job->attempt,
	};

	memcpy(p.id, job->key.id, PROTO_ID_LEN);
	sb_send(sb, job->worker->ctx, &p);
}

/* Counts a terminal status and sends it to the job's client, if any. */
static void
job_answer(struct switchboard *sb, struct sb_job *job, enum job_status status,
    const char *error)
{
	sb->stats.results[status]++;
	if (job->client != NULL)
		sb_send_result(sb, job->client, job->key.id, status,
		    job->attempt, error);
}

/* Starts the no-worker clock of fn at now unless it is already running. */
static void
fn_set_idle(struct switchboard *sb, struct sb_fn *fn, uint64_t now)
{
	if (fn->idle)
		return;
	fn->idle = true;
	fn->no_worker_since = now;
	TAILQ_INSERT_TAIL(&sb->idle_fns, fn, idle_entry);
}

/* Stops the no-worker clock of fn. */
static void
fn_clear_idle(struct switchboard *sb, struct sb_fn *fn)
{
	if (!fn->idle)
		return;
	fn->idle = false;
	fn->no_worker_since = 0;
	TAILQ_REMOVE(&sb->idle_fns, fn, idle_entry);
}

/* Looks a function up by name; NULL when unknown. */
static struct sb_fn *
fn_find(struct switchboard *sb, const uint8_t *name, uint32_t len)
{
	struct sb_fn	*fn;

	HASH_FIND(hh, sb->fns, name, len, fn);
	return fn;
}

/* Finds or creates a function; NULL on ENOMEM. */
static struct sb_fn *
fn_get(struct switchboard *sb, const uint8_t *name, uint32_t len)
{
	struct sb_fn	*fn;

	fn = fn_find(sb, name, len);
	if (fn != NULL)
		return fn;
	fn = calloc(1, sizeof *fn + (size_t)len + 1);
	if (fn == NULL)
		return NULL;
	TAILQ_INIT(&fn->workers);
	memcpy(fn->name, name, len);
	fn->name_len = len;
	HASH_ADD_KEYPTR(hh, sb->fns, fn->name, fn->name_len, fn);
	if (fn->hh.tbl == NULL) {
		free(fn);
		return NULL;
	}
	return fn;
}

/* Frees fn when no worker, no job and no no-worker clock refer to it. */
static void
fn_release(struct switchboard *sb, struct sb_fn *fn)
{
	if (fn->nworkers != 0 || fn->njobs != 0 || fn->idle || fn->draining)
		return;
	HASH_DELETE(hh, sb->fns, fn);
	free(fn->queue.v);
	free(fn);
}

/*
 * Picks the unpaused worker of fn with a free slot and the lowest
 * in_flight/capacity, starting from the round-robin cursor so that equals
 * take turns; NULL when every worker is full or paused.
 */
static struct sb_worker *
fn_pick_worker(struct sb_fn *fn)
{
	struct sb_reg	*start, *r, *best = NULL;

	start = fn->cursor != NULL ? fn->cursor : TAILQ_FIRST(&fn->workers);
	if (start == NULL)
		return NULL;
	r = start;
	do {
		struct sb_worker *w = r->worker;

		if (!w->paused && w->in_flight < w->capacity &&
		    (best == NULL ||
		    (uint64_t)w->in_flight * best->worker->capacity <
		    (uint64_t)best->worker->in_flight * w->capacity)) {
			best = r;
			if (w->in_flight == 0)
				break;	/* nobody beats an idle worker */
		}
		r = TAILQ_NEXT(r, fn_entry);
		if (r == NULL)
			r = TAILQ_FIRST(&fn->workers);
	} while (r != start);
	if (best == NULL)
		return NULL;
	fn->cursor = TAILQ_NEXT(best, fn_entry);
	return best->worker;
}

/* Unlinks one registration from its function's worker list. */
static void
reg_unlink(struct switchboard *sb, struct sb_reg *r, uint64_t now)
{
	struct sb_fn	*fn = r->fn;

	if (fn->cursor == r)
		fn->cursor = TAILQ_NEXT(r, fn_entry);
	TAILQ_REMOVE(&fn->workers, r, fn_entry);
	if (--fn->nworkers == 0)
		fn_set_idle(sb, fn, now);
}

/* Links one registration into its function's worker list. */
static void
reg_link(struct switchboard *sb, struct sb_reg *r)
{
	struct sb_fn	*fn = r->fn;

	TAILQ_INSERT_TAIL(&fn->workers, r, fn_entry);
	if (fn->nworkers++ == 0)
		fn_clear_idle(sb, fn);
}

/*
 * Takes a queued job out of its function's queue; it stays live. Queues
 * are not shrunk here: a function's memory goes when the function does.
 */
static void
queue_remove(struct switchboard *sb, struct sb_job *job)
{
	heap_remove(&job->fn->queue, SB_HEAP_QUEUE, job);
	sb->nqueued--;
}

/*
 * Puts a job in its function's queue (room reserved by the caller) and
 * starts the function's no-worker clock when it has no worker.
 */
static void
queue_push(struct switchboard *sb, struct sb_job *job, uint64_t now)
{
	job->state = SB_JOB_QUEUED;
	heap_push(&job->fn->queue, SB_HEAP_QUEUE, job);
	sb->nqueued++;
	if (job->fn->nworkers == 0)
		fn_set_idle(sb, job->fn, now);
}

/* Sends a job to worker w, taking one of its slots. */
static void
job_dispatch(struct switchboard *sb, struct sb_job *job, struct sb_worker *w,
    uint64_t now)
{
	struct packet	 p = {
		.type = PKT_RUN,
		.has = PF_PAYLOAD,
	};

	job->state = SB_JOB_RUNNING;
	job->worker = w;
	job->attempt++;
	job->key.attempt = job->attempt;
	job->cancel_requested = false;
	TAILQ_INSERT_TAIL(&w->jobs, job, worker_entry);
	w->in_flight++;
	job->fn->running++;
	sb->nrunning++;
	sb->stats.dispatched++;
	if (job->attempt > 1)
		sb->stats.retried++;

	memcpy(p.id, job->key.id, PROTO_ID_LEN);
	p.fn.ptr = (const uint8_t *)job->fn->name;
	p.fn.len = job->fn->name_len;
	p.payload.ptr = job->payload;
	p.payload.len = job->payload_len;
	p.attempt = job->attempt;
	if (job->has_timeout) {
		p.has |= PF_TIMEOUT;
		p.timeout_ms = job->deadline > now ? job->deadline - now : 1;
	}
	sb_send(sb, w->ctx, &p);
}

/*
 * Takes a running job off its worker (freeing the slot) and out of the
 * running gauges.
 */
static void
job_leave_worker(struct switchboard *sb, struct sb_job *job)
{
	struct sb_worker	*w = job->worker;

	TAILQ_REMOVE(&w->jobs, job, worker_entry);
	w->in_flight--;
	job->worker = NULL;
	job->fn->running--;
	sb->nrunning--;
}

/*
 * Takes a live job out of everything that makes it live: route table,
 * client list, deadline heap, and its queue or its worker's slot.
 */
static void
job_unlink_live(struct switchboard *sb, struct sb_job *job)
{
	HASH_DELETE(hh, sb->routes, job);
	if (job->client != NULL)
		TAILQ_REMOVE(&job->client->jobs, job, client_entry);
	heap_remove(&sb->deadlines, SB_HEAP_DEADLINE, job);
	if (job->state == SB_JOB_QUEUED)
		queue_remove(sb, job);
	else if (job->state == SB_JOB_RUNNING)
		job_leave_worker(sb, job);
}

/* Frees a job that is in no list or table any more. */
static void
job_free(struct switchboard *sb, struct sb_job *job)
{
	struct sb_fn	*fn = job->fn;

	free(job);
	fn->njobs--;
	fn_release(sb, fn);
}

/* Answers a live job with a terminal status and frees it. */
static void
job_finish(struct switchboard *sb, struct sb_job *job, enum job_status status,
    const char *error)
{
	job_answer(sb, job, status, error);
	job_unlink_live(sb, job);
	job_free(sb, job);
}

/*
 * Turns a running job whose terminal answer is given (or not wanted) into
 * an orphan of its worker: no longer live, but its slot stays taken until
 * the worker answers this attempt. CANCELs it at the worker first unless
 * that was already done. Under ENOMEM the orphan is kept only in the
 * worker's list, so its slot stays taken until the worker goes away.
 */
static void
job_orphan(struct switchboard *sb, struct sb_job *job)
{
	struct sb_worker	*w = job->worker;

	if (!job->cancel_requested) {
		job->cancel_requested = true;
		sb_send_cancel(sb, job);
	}
	HASH_DELETE(hh, sb->routes, job);
	if (job->client != NULL) {
		TAILQ_REMOVE(&job->client->jobs, job, client_entry);
		job->client = NULL;
	}
	heap_remove(&sb->deadlines, SB_HEAP_DEADLINE, job);
	job->state = SB_JOB_ORPHAN;
	job->fn->running--;
	sb->nrunning--;
	HASH_ADD(hh, w->orphans, key, sizeof job->key, job);
	job->hashed = job->hh.tbl != NULL;
}

/* Removes an orphan from its worker, freeing its slot, and frees it. */
static void
orphan_free(struct switchboard *sb, struct sb_job *job)
{
	struct sb_worker	*w = job->worker;

	if (job->hashed)
		HASH_DELETE(hh, w->orphans, job);
	TAILQ_REMOVE(&w->jobs, job, worker_entry);
	w->in_flight--;
	job_free(sb, job);
}

/*
 * Fills w's free slots with the best queued jobs of its functions (highest
 * priority, then oldest), one scan of its functions per dispatch.
 */
static void
worker_fill(struct switchboard *sb, struct sb_worker *w, uint64_t now)
{
	while (!w->paused && w->in_flight < w->capacity) {
		struct sb_job	*best = NULL;
		uint32_t	 i;

		for (i = 0; i < w->nregs; i++) {
			struct sb_job *head = heap_top(&w->regs[i].fn->queue);

			if (head != NULL && (best == NULL ||
			    heap_before(SB_HEAP_QUEUE, head, best)))
				best = head;
		}
		if (best == NULL)
			break;
		queue_remove(sb, best);
		job_dispatch(sb, best, w, now);
	}
}

/* Dispatches fn's queued jobs to its workers while any has a free slot. */
static void
fn_drain(struct switchboard *sb, struct sb_fn *fn, uint64_t now)
{
	struct sb_job		*job;
	struct sb_worker	*w;

	while ((job = heap_top(&fn->queue)) != NULL &&
	    (w = fn_pick_worker(fn)) != NULL) {
		queue_remove(sb, job);
		job_dispatch(sb, job, w, now);
	}
}

/* Creates a switchboard; see switchboard.h. */
struct switchboard *
switchboard_new(const struct switchboard_config *config, sb_send_cb send,
    void *arg)
{
	struct switchboard	*sb;

	if (send == NULL)
		return NULL;
	sb = calloc(1, sizeof *sb);
	if (sb == NULL)
		return NULL;
	sb->send = send;
	sb->arg = arg;
	sb->max_queue = SB_DEFAULT_MAX_QUEUE;
	sb->no_worker_wait_ms = SB_DEFAULT_NO_WORKER_WAIT_MS;
	if (config != NULL && config->max_queue != 0)
		sb->max_queue = config->max_queue;
	if (config != NULL && config->no_worker_wait_ms != 0)
		sb->no_worker_wait_ms = config->no_worker_wait_ms;
	TAILQ_INIT(&sb->workers);
	TAILQ_INIT(&sb->clients);
	TAILQ_INIT(&sb->idle_fns);
	return sb;
}

/* Frees everything without sending anything. */
void
switchboard_free(struct switchboard *sb)
{
	struct sb_worker	*w;
	struct sb_client	*c;
	struct sb_fn		*fn, *tmp;
	struct sb_job		*job;
	uint32_t		 i;

	if (sb == NULL)
		return;
	/* The tables only index jobs; each job is freed once, from its home. */
	HASH_CLEAR(hh, sb->routes);
	while ((w = TAILQ_FIRST(&sb->workers)) != NULL) {
		TAILQ_REMOVE(&sb->workers, w, entry);
		HASH_CLEAR(hh, w->orphans);
		while ((job = TAILQ_FIRST(&w->jobs)) != NULL) {
			TAILQ_REMOVE(&w->jobs, job, worker_entry);
			free(job);
		}
		free(w->regs);
		free(w->fn_names);
		free(w);
	}
	while ((c = TAILQ_FIRST(&sb->clients)) != NULL) {
		TAILQ_REMOVE(&sb->clients, c, entry);
		free(c);
	}
	HASH_ITER(hh, sb->fns, fn, tmp) {
		HASH_DELETE(hh, sb->fns, fn);
		for (i = 0; i < fn->queue.n; i++)
			free(fn->queue.v[i]);
		free(fn->queue.v);
		free(fn);
	}
	free(sb->deadlines.v);
	free(sb);
}

/* Adds a client peer. */
struct sb_client *
switchboard_client_add(struct switchboard *sb, void *ctx)
{
	struct sb_client	*c;

	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->ctx = ctx;
	TAILQ_INIT(&c->jobs);
	TAILQ_INSERT_TAIL(&sb->clients, c, entry);
	sb->nclients++;
	return c;
}

/*
 * Removes a client: queued jobs are dropped, running ones CANCELled and
 * orphaned; both count as CANCELLED in the stats though nothing is sent.
 */
void
switchboard_client_remove(struct switchboard *sb, struct sb_client *c,
    uint64_t now)
{
	struct sb_job	*job;

	(void)now;
	if (c == NULL)
		return;
	while ((job = TAILQ_FIRST(&c->jobs)) != NULL) {
		sb->stats.results[JOB_CANCELLED]++;
		if (job->state == SB_JOB_RUNNING) {
			job_orphan(sb, job);
		} else {
			job_unlink_live(sb, job);
			job_free(sb, job);
		}
	}
	TAILQ_REMOVE(&sb->clients, c, entry);
	sb->nclients--;
	free(c);
}

/* Adds a worker with no functions and no capacity. */
struct sb_worker *
switchboard_worker_add(struct switchboard *sb, void *ctx)
{
	struct sb_worker	*w;

	w = calloc(1, sizeof *w);
	if (w == NULL)
		return NULL;
	w->ctx = ctx;
	TAILQ_INIT(&w->jobs);
	TAILQ_INSERT_TAIL(&sb->workers, w, entry);
	sb->nworkers++;
	return w;
}

/*
 * Removes a worker: its running jobs are requeued (retries left, not
 * cancelled, not shutting down) or answered WORKER_LOST, its orphans
 * vanish, and requeued jobs go to other workers when they have room.
 */
void
switchboard_worker_remove(struct switchboard *sb, struct sb_worker *w,
    uint64_t now)
{
	struct sb_fn_slist	 drain = SLIST_HEAD_INITIALIZER(drain);
	struct sb_job		*job;
	struct sb_fn		*fn;
	uint32_t		 i;

	if (w == NULL)
		return;
	TAILQ_REMOVE(&sb->workers, w, entry);
	sb->nworkers--;
	for (i = 0; i < w->nregs; i++)
		reg_unlink(sb, &w->regs[i], now);
	HASH_CLEAR(hh, w->orphans);

	while ((job = TAILQ_FIRST(&w->jobs)) != NULL) {
		if (job->state == SB_JOB_ORPHAN) {
			TAILQ_REMOVE(&w->jobs, job, worker_entry);
			w->in_flight--;
			job_free(sb, job);
			continue;
		}
		fn = job->fn;
		if (!sb->shutting_down && !job->cancel_requested &&
		    job->attempt < job->max_attempts &&
		    heap_reserve(&fn->queue) == 0) {
			job_leave_worker(sb, job);
			queue_push(sb, job, now);
			if (!fn->draining) {
				fn->draining = true;
				SLIST_INSERT_HEAD(&drain, fn, drain_entry);
			}
		} else
			job_finish(sb, job, JOB_WORKER_LOST, NULL);
	}

	while ((fn = SLIST_FIRST(&drain)) != NULL) {
		SLIST_REMOVE_HEAD(&drain, drain_entry);
		fn->draining = false;
		fn_drain(sb, fn, now);
		fn_release(sb, fn);
	}
	free(w->regs);
	free(w->fn_names);
	free(w);
}

/* Applies a REGISTER: new function set and capacity, then refills w. */
int
switchboard_register(struct switchboard *sb, struct sb_worker *w,
    const struct packet *reg, uint64_t now)
{
	struct sb_reg	 *regs;
	const char	**names;
	uint32_t	  i, n = 0;
	uint64_t	  gen;

	if (reg->nfns == 0 || reg->nfns > PROTO_MAX_FNS ||
	    reg->capacity == 0 || reg->capacity > PROTO_MAX_CAPACITY)
		return -EINVAL;
	for (i = 0; i < reg->nfns; i++)
		if (reg->fns[i].len == 0 || reg->fns[i].len > PROTO_MAX_FN_LEN)
			return -EINVAL;

	regs = calloc(reg->nfns, sizeof *regs);
	names = calloc(reg->nfns + 1, sizeof *names);
	if (regs == NULL || names == NULL)
		goto fail;
	gen = ++sb->reg_gen;
	for (i = 0; i < reg->nfns; i++) {
		struct sb_fn *fn = fn_get(sb, reg->fns[i].ptr, reg->fns[i].len);

		if (fn == NULL)
			goto fail;
		if (fn->reg_gen == gen)
			continue;	/* listed twice */
		fn->reg_gen = gen;
		regs[n].fn = fn;
		regs[n].worker = w;
		names[n] = fn->name;
		n++;
	}

	/* Link the new set before unlinking the old: no clock starts twice. */
	for (i = 0; i < n; i++)
		reg_link(sb, &regs[i]);
	for (i = 0; i < w->nregs; i++)
		reg_unlink(sb, &w->regs[i], now);
	free(w->regs);
	free(w->fn_names);
	w->regs = regs;
	w->fn_names = names;
	w->nregs = n;
	w->capacity = reg->capacity;
	worker_fill(sb, w, now);
	return 0;

fail:
	/* Functions created for this REGISTER have no reference: drop them. */
	for (i = 0; i < n; i++)
		fn_release(sb, regs[i].fn);
	free(regs);
	free(names);
	return -ENOMEM;
}

/* Stops or restarts dispatching to w; a restart refills it. */
void
switchboard_worker_pause(struct switchboard *sb, struct sb_worker *w,
    bool paused, uint64_t now)
{
	if (w->paused == paused)
		return;
	w->paused = paused;
	if (!paused)
		worker_fill(sb, w, now);
}

/* Refuses a RUN: counts the status and answers unless it was detached. */
static void
run_refuse(struct switchboard *sb, struct sb_client *c, bool detached,
    const uint8_t *id, enum job_status status, const char *error)
{
	sb->stats.results[status]++;
	if (!detached && c != NULL)
		sb_send_result(sb, c, id, status, 0, error);
}

/* Takes a RUN from a client; see switchboard.h. */
int
switchboard_run(struct switchboard *sb, struct sb_client *c,
    const struct packet *run, uint64_t now)
{
	char			 err[PROTO_ERRLEN];
	bool			 detached = run->detach;
	struct sb_job		*job;
	struct sb_fn		*fn;
	struct sb_worker	*w;
	int64_t			 priority = 0;

	if (!detached && c == NULL)
		return -EINVAL;
	if (sb->shutting_down) {
		run_refuse(sb, c, detached, run->id, JOB_SHUTTING_DOWN, NULL);
		return 0;
	}
	if (run->fn.len == 0) {
		run_refuse(sb, c, detached, run->id, JOB_BAD_REQUEST,
		    "fn is empty");
		return 0;
	}
	if (run->fn.len > PROTO_MAX_FN_LEN) {
		snprintf(err, sizeof err, "fn is %u bytes long, more than %d",
		    run->fn.len, PROTO_MAX_FN_LEN);
		run_refuse(sb, c, detached, run->id, JOB_BAD_REQUEST, err);
		return 0;
	}
	if (run->has & PF_PRIORITY) {
		priority = run->priority;
		if (priority < PROTO_PRIORITY_MIN ||
		    priority > PROTO_PRIORITY_MAX) {
			snprintf(err, sizeof err,
			    "priority %lld is outside %d..%d",
			    (long long)priority, PROTO_PRIORITY_MIN,
			    PROTO_PRIORITY_MAX);
			run_refuse(sb, c, detached, run->id, JOB_BAD_REQUEST,
			    err);
			return 0;
		}
	}
	HASH_FIND(hh, sb->routes, run->id, PROTO_ID_LEN, job);
	if (job != NULL) {
		run_refuse(sb, c, detached, run->id, JOB_DUPLICATE_ID, NULL);
		return 0;
	}

	fn = fn_find(sb, run->fn.ptr, run->fn.len);
	w = fn != NULL ? fn_pick_worker(fn) : NULL;
	if (w == NULL) {
		if (run->nowait) {
			run_refuse(sb, c, detached, run->id, JOB_NO_WORKER,
			    NULL);
			return 0;
		}
		if (fn != NULL && fn->queue.n >= sb->max_queue) {
			run_refuse(sb, c, detached, run->id, JOB_QUEUE_FULL,
			    NULL);
			return 0;
		}
	}

	/* Every allocation happens before the job touches any structure. */
	if (fn == NULL && (fn = fn_get(sb, run->fn.ptr, run->fn.len)) == NULL)
		goto enomem;
	job = calloc(1, sizeof *job + run->payload.len);
	if (job == NULL)
		goto enomem;
	job->fn = fn;
	fn->njobs++;
	if ((w == NULL && heap_reserve(&fn->queue) != 0) ||
	    ((run->has & PF_TIMEOUT) && run->timeout_ms > 0 &&
	    heap_reserve(&sb->deadlines) != 0)) {
		job_free(sb, job);
		goto enomem_fn_gone;
	}
	memcpy(job->key.id, run->id, PROTO_ID_LEN);
	HASH_ADD(hh, sb->routes, key.id, PROTO_ID_LEN, job);
	if (job->hh.tbl == NULL) {
		job_free(sb, job);
		goto enomem_fn_gone;
	}

	job->seq = sb->next_seq++;
	job->heap_idx[SB_HEAP_QUEUE] = HEAP_NONE;
	job->heap_idx[SB_HEAP_DEADLINE] = HEAP_NONE;
	job->priority = (int16_t)priority;
	job->detached = detached;
	job->max_attempts = 1;
	if (run->has & PF_RETRIES)
		job->max_attempts = run->retries >= UINT32_MAX - 1 ?
		    UINT32_MAX : (uint32_t)run->retries + 1;
	job->payload_len = run->payload.len;
	if (run->payload.len > 0)
		memcpy(job->payload, run->payload.ptr, run->payload.len);
	if (!detached) {
		job->client = c;
		TAILQ_INSERT_TAIL(&c->jobs, job, client_entry);
	}
	if ((run->has & PF_TIMEOUT) && run->timeout_ms > 0) {
		job->has_timeout = true;
		job->deadline = sat_add(now, run->timeout_ms);
		heap_push(&sb->deadlines, SB_HEAP_DEADLINE, job);
	}
	sb->stats.submitted++;

	if (w != NULL)
		job_dispatch(sb, job, w, now);
	else
		queue_push(sb, job, now);
	return 0;

enomem:
	if (fn != NULL)
		fn_release(sb, fn);
enomem_fn_gone:
	run_refuse(sb, c, detached, run->id, JOB_QUEUE_FULL, "out of memory");
	return -ENOMEM;
}

/* CANCEL from client c; see switchboard.h. */
int
switchboard_cancel(struct switchboard *sb, struct sb_client *c,
    const uint8_t id[PROTO_ID_LEN], uint64_t now)
{
	struct sb_job	*job;

	(void)now;
	HASH_FIND(hh, sb->routes, id, PROTO_ID_LEN, job);
	if (job == NULL || c == NULL || job->client != c)
		return -ENOENT;
	if (job->state == SB_JOB_QUEUED) {
		job_finish(sb, job, JOB_CANCELLED, NULL);
		return 0;
	}
	if (!job->cancel_requested) {
		job->cancel_requested = true;
		sb_send_cancel(sb, job);
	}
	return 0;
}

/* Finds w's live running job for (id, attempt); NULL when none. */
static struct sb_job *
worker_find_running(struct switchboard *sb, struct sb_worker *w,
    const uint8_t *id, uint64_t attempt)
{
	struct sb_job	*job;

	HASH_FIND(hh, sb->routes, id, PROTO_ID_LEN, job);
	if (job == NULL || job->state != SB_JOB_RUNNING ||
	    job->worker != w || job->attempt != attempt)
		return NULL;
	return job;
}

/* Finds w's orphan for (id, attempt); NULL when none. */
static struct sb_job *
worker_find_orphan(struct sb_worker *w, const uint8_t *id, uint64_t attempt)
{
	struct sb_job_key	 key;
	struct sb_job		*job;

	memset(&key, 0, sizeof key);
	memcpy(key.id, id, PROTO_ID_LEN);
	key.attempt = attempt;
	HASH_FIND(hh, w->orphans, &key, sizeof key, job);
	return job;
}

/* RESULT from worker w; see switchboard.h. */
int
switchboard_result(struct switchboard *sb, struct sb_worker *w,
    const struct packet *res, uint64_t now)
{
	struct packet	 p = {
		.type = PKT_RESULT,
	};
	struct sb_job	*job;

	if (res->status != JOB_OK && res->status != JOB_ERROR &&
	    res->status != JOB_CANCELLED)
		return -EINVAL;
	job = worker_find_running(sb, w, res->id, res->attempt);
	if (job == NULL) {
		job = worker_find_orphan(w, res->id, res->attempt);
		if (job == NULL) {
			sb->stats.stale++;
			return -ESTALE;
		}
		w->completed++;
		orphan_free(sb, job);
		worker_fill(sb, w, now);
		return 0;
	}

	w->completed++;
	sb->stats.results[res->status]++;
	if (job->client != NULL) {
		memcpy(p.id, job->key.id, PROTO_ID_LEN);
		p.status = res->status;
		p.attempts = job->attempt;
		p.has = res->has & (PF_PAYLOAD | PF_ERROR);
		p.payload = res->payload;
		p.error = res->error;
		sb_send(sb, job->client->ctx, &p);
	}
	job_unlink_live(sb, job);
	job_free(sb, job);
	worker_fill(sb, w, now);
	return 0;
}

/* PROGRESS from worker w; see switchboard.h. */
int
switchboard_progress(struct switchboard *sb, struct sb_worker *w,
    const struct packet *prog, uint64_t now)
{
	struct packet	 p = {
		.type = PKT_PROGRESS,
		.has = PF_PAYLOAD,
	};
	struct sb_job	*job;

	(void)now;
	job = worker_find_running(sb, w, prog->id, prog->attempt);
	if (job == NULL) {
		if (worker_find_orphan(w, prog->id, prog->attempt) != NULL)
			return 0;
		sb->stats.stale++;
		return -ESTALE;
	}
	if (job->client == NULL)
		return 0;
	memcpy(p.id, job->key.id, PROTO_ID_LEN);
	p.payload = prog->payload;
	sb->stats.progress++;
	sb_send(sb, job->client->ctx, &p);
	return 0;
}

/* Expires one live job whose deadline has passed. */
static void
job_expire(struct switchboard *sb, struct sb_job *job)
{
	if (job->state == SB_JOB_QUEUED) {
		job_finish(sb, job, JOB_TIMEOUT, NULL);
		return;
	}
	job_answer(sb, job, JOB_TIMEOUT, NULL);
	job_orphan(sb, job);
}

/* Answers NO_WORKER to every queued job of fn and stops its clock. */
static void
fn_expire(struct switchboard *sb, struct sb_fn *fn)
{
	struct sb_job	*job;

	while ((job = heap_top(&fn->queue)) != NULL)
		job_finish(sb, job, JOB_NO_WORKER, NULL);
	fn_clear_idle(sb, fn);
	fn_release(sb, fn);
}

/* Expires timeouts and no-worker waits that are due at now. */
void
switchboard_tick(struct switchboard *sb, uint64_t now)
{
	struct sb_job	*job;
	struct sb_fn	*fn, *next;

	while ((job = heap_top(&sb->deadlines)) != NULL &&
	    job->deadline <= now)
		job_expire(sb, job);
	for (fn = TAILQ_FIRST(&sb->idle_fns); fn != NULL; fn = next) {
		next = TAILQ_NEXT(fn, idle_entry);
		if (sat_add(fn->no_worker_since, sb->no_worker_wait_ms) <= now)
			fn_expire(sb, fn);
	}
}

/* The earliest time switchboard_tick() has work, or UINT64_MAX. */
uint64_t
switchboard_next_deadline(const struct switchboard *sb)
{
	const struct sb_job	*job = heap_top(&sb->deadlines);
	const struct sb_fn	*fn;
	uint64_t		 t = UINT64_MAX, d;

	if (job != NULL)
		t = job->deadline;
	TAILQ_FOREACH(fn, &sb->idle_fns, idle_entry) {
		d = sat_add(fn->no_worker_since, sb->no_worker_wait_ms);
		if (d < t)
			t = d;
	}
	return t;
}

/*
 * Broker shutdown: queued jobs are answered SHUTTING_DOWN (detached ones
 * only counted), running non-detached ones are answered, CANCELled and
 * orphaned. Detached running jobs are left to finish: nobody waits for
 * them and interrupting them would gain nothing.
 */
void
switchboard_shutdown(struct switchboard *sb, uint64_t now)
{
	struct sb_worker	*w;
	struct sb_job		*job, *next;
	struct sb_fn		*fn, *tmp;

	(void)now;
	sb->shutting_down = true;
	HASH_ITER(hh, sb->fns, fn, tmp) {
		/* Keep fn alive while its last queued job goes. */
		fn->draining = true;
		while ((job = heap_top(&fn->queue)) != NULL)
			job_finish(sb, job, JOB_SHUTTING_DOWN, NULL);
		fn->draining = false;
		fn_release(sb, fn);
	}
	TAILQ_FOREACH(w, &sb->workers, entry) {
		for (job = TAILQ_FIRST(&w->jobs); job != NULL; job = next) {
			next = TAILQ_NEXT(job, worker_entry);
			if (job->state != SB_JOB_RUNNING || job->detached)
				continue;
			job_answer(sb, job, JOB_SHUTTING_DOWN, NULL);
			job_orphan(sb, job);
		}
	}
}

/* Fills *ret with the counters and gauges. */
void
switchboard_stats(const struct switchboard *sb, struct sb_stats *ret)
{
	*ret = sb->stats;
	ret->queued = sb->nqueued;
	ret->running = sb->nrunning;
	ret->workers = sb->nworkers;
	ret->clients = sb->nclients;
	ret->functions = HASH_COUNT(sb->fns);
}

/* Fills *ret for one worker. */
void
switchboard_worker_info(const struct sb_worker *w, struct sb_worker_info *ret)
{
	memset(ret, 0, sizeof *ret);
	ret->ctx = w->ctx;
	ret->capacity = w->capacity;
	ret->in_flight = w->in_flight;
	ret->paused = w->paused;
	ret->nfns = w->nregs;
	ret->fns = w->fn_names;
	ret->completed = w->completed;
}

/* Calls cb for each worker, in the order they were added. */
void
switchboard_foreach_worker(const struct switchboard *sb,
    void (*cb)(const struct sb_worker_info *, void *), void *arg)
{
	const struct sb_worker	*w;
	struct sb_worker_info	 info;

	TAILQ_FOREACH(w, &sb->workers, entry) {
		switchboard_worker_info(w, &info);
		cb(&info, arg);
	}
}

/* Orders functions by name, bytewise, for qsort. */
static int
fn_cmp_name(const void *a, const void *b)
{
	const struct sb_fn	*fa = *(const struct sb_fn * const *)a;
	const struct sb_fn	*fb = *(const struct sb_fn * const *)b;
	uint32_t		 n = fa->name_len < fb->name_len ?
				    fa->name_len : fb->name_len;
	int			 r = memcmp(fa->name, fb->name, n);

	if (r != 0)
		return r;
	return (fa->name_len > fb->name_len) - (fa->name_len < fb->name_len);
}

/* Describes one function for the admin verbs. */
static void
fn_info(const struct sb_fn *fn, struct sb_fn_info *ret)
{
	const struct sb_reg	*r;

	memset(ret, 0, sizeof *ret);
	ret->name = fn->name;
	ret->queued = fn->queue.n;
	ret->running = fn->running;
	ret->workers = fn->nworkers;
	TAILQ_FOREACH(r, &fn->workers, fn_entry)
		if (!r->worker->paused &&
		    r->worker->in_flight < r->worker->capacity)
			ret->free_slots +=
			    r->worker->capacity - r->worker->in_flight;
}

/*
 * Calls cb for each function, sorted by name; if the sort array cannot be
 * allocated, in table order rather than not at all.
 */
void
switchboard_foreach_fn(const struct switchboard *sb,
    void (*cb)(const struct sb_fn_info *, void *), void *arg)
{
	const struct sb_fn	**v, *fn;
	struct sb_fn_info	  info;
	size_t			  i, n = HASH_COUNT(sb->fns);

	if (n == 0)
		return;
	v = calloc(n, sizeof *v);
	if (v == NULL) {
		for (fn = sb->fns; fn != NULL; fn = fn->hh.next) {
			fn_info(fn, &info);
			cb(&info, arg);
		}
		return;
	}
	i = 0;
	for (fn = sb->fns; fn != NULL; fn = fn->hh.next)
		v[i++] = fn;
	qsort(v, n, sizeof *v, fn_cmp_name);
	for (i = 0; i < n; i++) {
		fn_info(v[i], &info);
		cb(&info, arg);
	}
	free(v);
}

/*
 * job.c: a job's life, from queued to running to its terminal answer, and
 * the packets that go out on the way.
 *
 * A job is born in switchboard_run() as one allocation (the job and a copy
 * of its payload, then of its meta when it has one; its function name
 * lives in the struct sb_fn it points to). While live it sits in the route table (sb->routes, keyed by its id),
 * in its client's list (unless detached) and, when it has a timeout, in the
 * deadline min-heap. It is then either QUEUED, in its function's priority
 * heap, or RUNNING, in its worker's job list and holding one of the
 * worker's slots. A terminal answer ends its life, except when the worker
 * still holds the attempt (after a TIMEOUT, a client's disconnect or a
 * shutdown): the job then becomes an ORPHAN, out of the route table and
 * into its worker's orphan table (keyed by id and attempt), and keeps the
 * slot until the worker answers that attempt or goes away.
 *
 * Every packet leaves through sb->send. The callback must not call back
 * into the switchboard (the broker's only encodes); even so, every send is
 * made with the switchboard's lists in a consistent state and iterations
 * never keep a pointer to something a send could have freed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "switchboard/internal.h"

/* Sends RESULT {id, status, attempts, error?} to a client. */
void
sb_send_result(struct switchboard *sb, struct sb_client *c,
    const uint8_t *id, enum job_status status, uint64_t attempts,
    const char *error)
{
	struct packet	 p;

	/* packet_init() leaves REGISTER's big array alone; {...} would not. */
	packet_init(&p, PKT_RESULT);
	p.status = status;
	p.attempts = attempts;
	memcpy(p.id, id, PROTO_ID_LEN);
	if (error != NULL) {
		p.has |= PF_ERROR;
		p.error.ptr = (const uint8_t *)error;
		p.error.len = (uint32_t)strlen(error);
	}
	sb_send(sb, c->ctx, &p);
}

/*
 * Sends ACCEPTED {id, joined?} to a client: its detached RUN is taken, as
 * the live job joined (unique) when that is not NULL.
 */
void
sb_send_accepted(struct switchboard *sb, struct sb_client *c,
    const uint8_t *id, const uint8_t *joined)
{
	struct packet	 p;

	packet_init(&p, PKT_ACCEPTED);
	memcpy(p.id, id, PROTO_ID_LEN);
	if (joined != NULL) {
		p.has |= PF_JOINED;
		memcpy(p.joined, joined, PROTO_ID_LEN);
	}
	sb_send(sb, c->ctx, &p);
}

/* Sends CANCEL {id, attempt} for a running job to its worker. */
void
sb_send_cancel(struct switchboard *sb, struct sb_job *job)
{
	struct packet	 p;

	packet_init(&p, PKT_CANCEL);
	p.attempt = job->attempt;
	memcpy(p.id, job->id, PROTO_ID_LEN);
	sb_send(sb, job->worker->ctx, &p);
}

/* Counts a terminal status and sends it to the job's client, if any. */
void
job_answer(struct switchboard *sb, struct sb_job *job, enum job_status status,
    const char *error)
{
	stats_job_end(sb, job, NULL, status, job->client != NULL, error,
	    error != NULL ? strlen(error) : 0);
	if (job->detached)
		results_keep(sb, job, status, error, error != NULL ?
		    strlen(error) : 0, NULL, 0);
	if (job->has_ext)
		unique_finish(sb, job, status, error, error != NULL ?
		    strlen(error) : 0, NULL, 0);
	if (job->client != NULL)
		sb_send_result(sb, job->client, job->id, status,
		    job->attempt, error);
}

/*
 * Puts a job in its function's queue (its level reserved by the caller)
 * and starts the function's no-worker clock when it has no worker.
 */
void
job_enqueue(struct switchboard *sb, struct sb_job *job, uint64_t now)
{
	job->state = SB_JOB_QUEUED;
	job->stamp = (uint32_t)now;
	queue_insert(&job->fn->queue, job);
	sb->nqueued++;
	/* A detached job waits for a worker (bounded by detached_ttl). */
	if (!job->detached && job->fn->nworkers == 0 && job->fn->standby == 0)
		fn_set_idle(sb, job->fn, now);
}

/* Sends a job to worker w, taking one of its slots. */
void
job_dispatch(struct switchboard *sb, struct sb_job *job, struct sb_worker *w,
    uint64_t now)
{
	struct packet	 p;

	packet_init(&p, PKT_RUN);
	p.has = PF_PAYLOAD;
	/* A job dispatched as it arrives was stamped then: it waited 0. */
	stats_hist_add(&job->fn->st->wait, (uint32_t)now - job->stamp);
	job->stamp = (uint32_t)now;
	job->state = SB_JOB_RUNNING;
	job->worker = w;
	job->attempt++;
	job->cancel_requested = false;
	TAILQ_INSERT_TAIL(&w->jobs, job, worker_entry);
	w->in_flight++;
	job->fn->running++;
	sb->nrunning++;
	sb->stats.dispatched++;
	if (job->attempt > 1)
		sb->stats.retried++;
	job_store_update(sb, job);

	memcpy(p.id, job->id, PROTO_ID_LEN);
	p.fn.ptr = (const uint8_t *)job->fn->name;
	p.fn.len = job->fn->name_len;
	p.payload.ptr = job->payload;
	p.payload.len = job->payload_len;
	p.attempt = job->attempt;
	if (job->meta_len > 0) {
		p.has |= PF_META;
		p.meta.ptr = job->payload + job->payload_len;
		p.meta.len = job->meta_len;
	}
	if (job->has_timeout) {
		p.has |= PF_TIMEOUT;
		uint64_t due = sb->deadlines.v[job->heap_idx].deadline;

		p.timeout_ms = due > now ? due - now : 1;
	}
	sb_send(sb, w->ctx, &p);
}

/*
 * Takes a live job out of everything that makes it live: route table,
 * client list, deadline heap, and its queue or its worker's slot.
 */
void
job_unlink_live(struct switchboard *sb, struct sb_job *job)
{
	job_store_del(sb, job);
	table_remove(&sb->routes, job);
	if (job->client != NULL) {
		TAILQ_REMOVE(&job->client->jobs, job, client_entry);
		job->client->njobs--;
	}
	heap_remove(&sb->deadlines, job);
	if (job->state == SB_JOB_QUEUED)
		job_dequeue(sb, job);
	else if (job->state == SB_JOB_RUNNING)
		job_leave_worker(sb, job);
	else if (job->state == SB_JOB_DELAYED) {
		job->fn->ndelayed--;
		sb->ndelayed--;
	} else if (job->state == SB_JOB_DEAD) {
		TAILQ_REMOVE(&sb->dead, job, client_entry);
		sb->ndead--;
	}
}

/* Answers a live job with a terminal status and frees it. */
void
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
void
job_orphan(struct switchboard *sb, struct sb_job *job)
{
	struct sb_worker	*w = job->worker;

	if (!job->cancel_requested) {
		job->cancel_requested = true;
		sb_send_cancel(sb, job);
	}
	job_store_del(sb, job);
	table_remove(&sb->routes, job);
	if (job->client != NULL) {
		TAILQ_REMOVE(&job->client->jobs, job, client_entry);
		job->client->njobs--;
		job->client = NULL;
	}
	heap_remove(&sb->deadlines, job);
	job->state = SB_JOB_ORPHAN;
	job->fn->running--;
	sb->nrunning--;
	job->hashed = table_reserve(&w->orphans) == 0;
	if (job->hashed)
		table_insert(&w->orphans, job);
}

/* Removes an orphan from its worker, freeing its slot, and frees it. */
void
orphan_free(struct switchboard *sb, struct sb_job *job)
{
	struct sb_worker	*w = job->worker;

	if (job->hashed)
		table_remove(&w->orphans, job);
	TAILQ_REMOVE(&w->jobs, job, worker_entry);
	w->in_flight--;
	job_free(sb, job);
}

/* Expires one live job whose deadline has passed. */
void
job_expire(struct switchboard *sb, struct sb_job *job)
{
	struct sb_job_ext	*x;

	if (job->state == SB_JOB_DELAYED) {
		job_due(sb, job, sb->now);
		return;
	}
	/* A detached job with retry_on_error is tried again after TIMEOUT. */
	if (job->state == SB_JOB_RUNNING && (x = job_ext(sb, job)) != NULL &&
	    x->max_retries > 0 && job_timeout_retry(sb, job, sb->now) == 0)
		return;
	if (job->state == SB_JOB_QUEUED) {
		job_finish(sb, job, JOB_TIMEOUT, NULL);
		return;
	}
	job_answer(sb, job, JOB_TIMEOUT, NULL);
	job_orphan(sb, job);
}

/* The ext record of a job that has one (job->has_ext), or NULL. */
struct sb_job_ext *
job_ext(struct switchboard *sb, const struct sb_job *job)
{
	struct sb_job_ext	*x = NULL;

	if (job->has_ext)
		HASH_FIND_PTR(sb->exts, &job, x);
	return x;
}

/* The ext record of job, made empty when it has none; NULL on ENOMEM. */
struct sb_job_ext *
job_ext_make(struct switchboard *sb, struct sb_job *job)
{
	struct sb_job_ext	*x;

	if ((x = job_ext(sb, job)) != NULL)
		return x;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	x->job = job;
	HASH_ADD_PTR(sb->exts, job, x);
	if (x->hh.tbl == NULL) {
		free(x);
		return NULL;
	}
	job->has_ext = true;
	return x;
}

/* Frees a job's ext record, if it has one. */
static void
job_ext_free(struct switchboard *sb, struct sb_job *job)
{
	struct sb_job_ext	*x = job_ext(sb, job);

	if (x == NULL)
		return;
	if (x->unique != NULL)
		unique_drop(sb, x->unique);
	HASH_DEL(sb->exts, x);
	free(x->last_error);
	free(x);
	job->has_ext = false;
}

/*
 * A delayed job is due: its timeout starts now, and it is dispatched or
 * queued as if it had just arrived.
 */
void
job_due(struct switchboard *sb, struct sb_job *job, uint64_t now)
{
	struct sb_worker	*w = fn_pick_worker(job->fn);
	struct sb_job_ext	*x = job_ext(sb, job);

	/* Counted against max_queue when it came: only memory can fail. */
	if (w == NULL && queue_reserve(&job->fn->queue, job->priority) != 0) {
		job_finish(sb, job, JOB_QUEUE_FULL, "out of memory");
		return;
	}

	heap_remove(&sb->deadlines, job);
	job->has_timeout = false;
	job->fn->ndelayed--;
	sb->ndelayed--;
	/* Out of the heap just now: the push cannot need more room. */
	if (x != NULL && x->timeout_ms > 0) {
		job->has_timeout = true;
		heap_push(&sb->deadlines, job, sat_add(now, x->timeout_ms));
	}
	job->stamp = (uint32_t)now;
	if (w != NULL)
		job_dispatch(sb, job, w, now);
	else
		job_enqueue(sb, job, now);
}

static void	job_retry_or_bury(struct switchboard *, struct sb_job *,
		    const void *, size_t, uint64_t);

/* A retry's delay: backoff_ms doubled per failure, within 20% either way. */
static uint64_t
job_backoff(struct switchboard *sb, const struct sb_job_ext *r)
{
	uint64_t	d = r->backoff_ms, span;
	uint32_t	n = r->failures;

	while (--n > 0 && d < SB_MAX_BACKOFF_MS)
		d *= 2;
	if (d > SB_MAX_BACKOFF_MS)
		d = SB_MAX_BACKOFF_MS;
	/* xorshift64: jitter, so that a burst of failures spreads out. */
	sb->rng ^= sb->rng << 13;
	sb->rng ^= sb->rng >> 7;
	sb->rng ^= sb->rng << 17;
	span = d / 5;
	return d - span + (span > 0 ? sb->rng % (2 * span + 1) : 0);
}

/*
 * A running detached job with retry_on_error got its worker's ERROR:
 * delayed for its next try after a backoff, or, its retries used up (or
 * no room to delay it), moved to the dead list with its last error; the
 * oldest dead job goes when the list is over max_dead.
 */
void
job_failed(struct switchboard *sb, struct sb_job *job, const void *error,
    size_t error_len, uint64_t now)
{
	job_leave_worker(sb, job);
	job_retry_or_bury(sb, job, error, error_len, now);
}

/*
 * A running detached job with retry_on_error timed out: the attempt is
 * CANCELled at its worker, which keeps the slot as an orphan (a record of
 * its own, with the id and attempt) until it answers; the job itself is
 * free to be tried again after its backoff, or goes to the dead list. 0,
 * or -ENOMEM (nothing changed).
 */
int
job_timeout_retry(struct switchboard *sb, struct sb_job *job, uint64_t now)
{
	static const char	 why[] = "timed out";
	struct sb_worker	*w = job->worker;
	struct sb_job		*o;

	if ((o = job_alloc(sb, 0, 0)) == NULL)
		return -ENOMEM;
	memcpy(o->id, job->id, PROTO_ID_LEN);
	o->fn = job->fn;
	o->fn->njobs++;
	o->attempt = job->attempt;
	o->worker = w;
	o->detached = true;
	o->heap_idx = HEAP_NONE;
	o->state = SB_JOB_ORPHAN;
	o->cancel_requested = true;
	/* The orphan takes the job's place, and slot, at the worker. */
	TAILQ_INSERT_BEFORE(job, o, worker_entry);
	TAILQ_REMOVE(&w->jobs, job, worker_entry);
	sb_send_cancel(sb, o);
	o->hashed = table_reserve(&w->orphans) == 0;
	if (o->hashed)
		table_insert(&w->orphans, o);
	job->worker = NULL;
	job->fn->running--;
	sb->nrunning--;
	job_retry_or_bury(sb, job, why, sizeof(why) - 1, now);
	return 0;
}

/* Delays a failed job for its next try, or buries it; see job_failed(). */
static void
job_retry_or_bury(struct switchboard *sb, struct sb_job *job,
    const void *error, size_t error_len, uint64_t now)
{
	struct sb_job_ext	*r = job_ext(sb, job);
	struct sb_job		*old;
	char			*e;

	if (error != NULL && (e = strndup(error, error_len)) != NULL) {
		free(r->last_error);
		r->last_error = e;
	}
	r->failures++;
	heap_remove(&sb->deadlines, job);
	job->has_timeout = false;
	if (r->failures <= r->max_retries &&
	    heap_reserve(&sb->deadlines) == 0) {
		job->state = SB_JOB_DELAYED;
		job->has_timeout = true;
		heap_push(&sb->deadlines, job, sat_add(now,
		    job_backoff(sb, r)));
		job->fn->ndelayed++;
		sb->ndelayed++;
		job_store_update(sb, job);
		return;
	}
	stats_job_end(sb, job, NULL, JOB_ERROR, false, r->last_error,
	    r->last_error != NULL ? strlen(r->last_error) : 0);
	/* Dead is no outcome to wait for: joiners get the ERROR now. */
	unique_finish(sb, job, JOB_ERROR, r->last_error, r->last_error !=
	    NULL ? strlen(r->last_error) : 0, NULL, 0);
	job->state = SB_JOB_DEAD;
	job->stamp = (uint32_t)now;
	TAILQ_INSERT_TAIL(&sb->dead, job, client_entry);
	sb->ndead++;
	job_store_update(sb, job);
	if (sb->ndead > sb->max_dead) {
		old = TAILQ_FIRST(&sb->dead);
		sb->stats.detached_dropped++;
		job_unlink_live(sb, old);
		job_free(sb, old);
	}
}

/* Finds w's live running job for (id, attempt); NULL when none. */
struct sb_job *
worker_find_running(struct switchboard *sb, struct sb_worker *w,
    const uint8_t *id, uint64_t attempt)
{
	struct sb_job	*job;

	job = table_find(&sb->routes, id, 0);
	if (job == NULL || job->state != SB_JOB_RUNNING ||
	    job->worker != w || job->attempt != attempt)
		return NULL;
	return job;
}

/* Finds w's orphan for (id, attempt); NULL when none. */
struct sb_job *
worker_find_orphan(struct sb_worker *w, const uint8_t *id, uint64_t attempt)
{
	if (attempt > UINT32_MAX)
		return NULL;
	return table_find(&w->orphans, id, (uint32_t)attempt);
}

/*
 * Carves a new slab into records on the free list. 0 or -ENOMEM. The
 * first record's room is the slab's header.
 */
static int
job_slab_new(struct switchboard *sb)
{
	struct sb_slab	*slab;
	uint8_t		*r;
	size_t		 off;

	if ((slab = malloc(SB_SLAB_SIZE)) == NULL)
		return -ENOMEM;
	slab->next = sb->slabs;
	sb->slabs = slab;
	for (off = SB_RECORD_SIZE; off + SB_RECORD_SIZE <= SB_SLAB_SIZE;
	    off += SB_RECORD_SIZE) {
		r = (uint8_t *)slab + off;
		*(void **)r = sb->free_records;
		sb->free_records = r;
	}
	return 0;
}

/* A new zeroed job; see internal.h. */
struct sb_job *
job_alloc(struct switchboard *sb, size_t len, size_t meta_len)
{
	struct sb_job	*job;

	if (len + meta_len > SB_SMALL_PAYLOAD) {
		if ((job = calloc(1, sizeof(*job) + len + meta_len)) == NULL)
			return NULL;
	} else {
		if (sb->free_records == NULL && job_slab_new(sb) != 0)
			return NULL;
		job = sb->free_records;
		sb->free_records = *(void **)job;
		sb->live_records++;
		memset(job, 0, sizeof(*job));
	}
	job->payload_len = (uint32_t)len;
	job->meta_len = (uint16_t)meta_len;
	sb->payload_bytes += len + meta_len;
	if (++sb->live_jobs > sb->jobs_peak)
		sb->jobs_peak = sb->live_jobs;
	return job;
}

/* Gives a job's memory back; see internal.h. */
void
job_release(struct switchboard *sb, struct sb_job *job)
{
	size_t	size = (size_t)job->payload_len + job->meta_len;

	sb->payload_bytes -= size;
	sb->live_jobs--;
	job_ext_free(sb, job);
	if (size > SB_SMALL_PAYLOAD) {
		free(job);
		return;
	}
	*(void **)job = sb->free_records;
	sb->free_records = job;
	sb->live_records--;
}

/* Frees every slab, whether or not records are in use. */
size_t
job_slabs_free(struct switchboard *sb)
{
	struct sb_slab	*slab;
	size_t		 freed = 0;

	while ((slab = sb->slabs) != NULL) {
		sb->slabs = slab->next;
		free(slab);
		freed += SB_SLAB_SIZE;
	}
	sb->free_records = NULL;
	sb->live_records = 0;
	return freed;
}

/* Frees every slab when no small job lives in one; see switchboard.h. */
size_t
switchboard_trim(struct switchboard *sb)
{
	sb->jobs_peak = sb->live_jobs;
	return sb->live_records == 0 ? job_slabs_free(sb) : 0;
}

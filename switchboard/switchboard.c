/*
 * switchboard.c: the entry points of switchboard.h, routing jobs between
 * clients and workers with no I/O.
 *
 * Each entry point is one event the broker feeds in (a peer coming or
 * going, a REGISTER, a RUN, a CANCEL, a RESULT or PROGRESS, the clock, a
 * shutdown) or a question it asks (stats, the admin listings). It checks
 * what arrived, then drives the helpers of fn.c (functions, registrations,
 * refilling free slots) and job.c (a job's states and every packet sent);
 * internal.h describes the structures and who owns them. Any event that
 * frees a slot or queues a job keeps fn.c's dispatch invariant.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* The seed of the tables' hash; see internal.h. */
uint64_t		sb_hash_seed;

/* Switchboards alive: the seed changes only when there is none. */
static unsigned		sb_live;

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
	if (config != NULL) {
		sb->max_queue_bytes = config->max_queue_bytes;
		sb->max_memory = config->max_memory;
		sb->max_jobs_per_client = config->max_jobs_per_client;
	}
	sb->detached_ttl_ms = config != NULL && config->detached_ttl_ms != 0 ?
	    config->detached_ttl_ms : SB_DEFAULT_DETACHED_TTL_MS;
	/* One seed per process: tables of a live switchboard depend on it. */
	if (config != NULL && sb_live == 0)
		sb_hash_seed = config->hash_seed;
	sb_live++;
	TAILQ_INIT(&sb->workers);
	TAILQ_INIT(&sb->clients);
	TAILQ_INIT(&sb->idle_fns);
	TAILQ_INIT(&sb->result_list);
	TAILQ_INIT(&sb->dead);
	sb->max_dead = config != NULL && config->max_dead != 0 ?
	    config->max_dead : SB_DEFAULT_MAX_DEAD;
	sb->rng = (config != NULL ? config->hash_seed : 0) ^
	    0x9e3779b97f4a7c15ull;
	sb->result_ttl_ms = config != NULL && config->keep_results ?
	    config->result_ttl_ms : SB_DEFAULT_RESULT_TTL_MS;
	sb->max_result_bytes = config != NULL && config->max_result_bytes != 0 ?
	    config->max_result_bytes : SB_DEFAULT_MAX_RESULT_BYTES;
	if (stats_init(sb) != 0) {
		switchboard_free(sb);
		return NULL;
	}
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

	if (sb == NULL)
		return;
	results_clear(sb);
	/* The tables only index jobs; each job is freed once, from its home. */
	table_clear(&sb->routes);
	while ((w = TAILQ_FIRST(&sb->workers)) != NULL) {
		TAILQ_REMOVE(&sb->workers, w, entry);
		table_clear(&w->orphans);
		while ((job = TAILQ_FIRST(&w->jobs)) != NULL) {
			TAILQ_REMOVE(&w->jobs, job, worker_entry);
			job_release(sb, job);
		}
		free(w->regs);
		free(w->fn_names);
		free(w);
	}
	while ((c = TAILQ_FIRST(&sb->clients)) != NULL) {
		TAILQ_REMOVE(&sb->clients, c, entry);
		unique_client_gone(sb, c);
		free(c);
	}
	while ((job = TAILQ_FIRST(&sb->dead)) != NULL) {
		TAILQ_REMOVE(&sb->dead, job, client_entry);
		job_release(sb, job);
	}
	/* Delayed jobs live in the deadline heap only. */
	for (uint32_t i = 0; i < sb->deadlines.n; i++)
		if (sb->deadlines.v[i].job->state == SB_JOB_DELAYED)
			job_release(sb, sb->deadlines.v[i].job);
	HASH_ITER(hh, sb->fns, fn, tmp) {
		HASH_DELETE(hh, sb->fns, fn);
		while ((job = queue_first(&fn->queue)) != NULL) {
			queue_unlink(&fn->queue, job);
			job_release(sb, job);
		}
		queue_clear(&fn->queue);
		free(fn);
	}
	free(sb->deadlines.v);
	free(sb->fresh);
	job_slabs_free(sb);
	stats_clear(sb);
	free(sb);
	sb_live--;
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
	TAILQ_INIT(&c->joins);
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
	static const char	*gone = "the client that sent it went away";
	struct sb_job		*job;

	if (c == NULL)
		return;
	sb->now = now;
	unique_client_gone(sb, c);
	while ((job = TAILQ_FIRST(&c->jobs)) != NULL) {
		stats_job_end(sb, job, NULL, JOB_CANCELLED, false,
		    "its client went away", 20);
		if (job->has_ext)
			unique_finish(sb, job, JOB_CANCELLED, gone,
			    strlen(gone), NULL, 0);
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
	w->orphans.by_attempt = true;
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

	sb->now = now;
	if (w == NULL)
		return;
	TAILQ_REMOVE(&sb->workers, w, entry);
	sb->nworkers--;
	for (i = 0; i < w->nregs; i++)
		reg_unlink(sb, &w->regs[i], now);
	table_clear(&w->orphans);

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
		    queue_reserve(&fn->queue, job->priority) == 0) {
			job_leave_worker(sb, job);
			job_enqueue(sb, job, now);
			if (!fn->draining) {
				fn->draining = true;
				SLIST_INSERT_HEAD(&drain, fn, drain_entry);
			}
		} else if (sb->shutting_down && job->stored &&
		    !job->cancel_requested)
			job_shelve(sb, job);	/* runs again at the next start */
		else
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

	sb->now = now;
	/* Capacity 0: a draining worker, which keeps its running jobs. */
	if (reg->nfns == 0 || reg->nfns > PROTO_MAX_FNS ||
	    reg->capacity > PROTO_MAX_CAPACITY)
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
	sb->now = now;
	if (w->paused == paused)
		return;
	w->paused = paused;
	if (!paused)
		worker_fill(sb, w, now);
}

/*
 * Refuses a RUN: counts the status (under its function when the name is
 * one), answers unless it was detached, and reports it to the owner.
 */
static void
run_refuse(struct switchboard *sb, struct sb_client *c, const struct packet *run,
    enum job_status status, const char *error)
{
	/* A detached RUN is answered only when it asked (ack). */
	bool	answered = c != NULL && (!run->detach || run->ack);

	stats_job_end(sb, NULL, run, status, answered, error,
	    error != NULL ? strlen(error) : 0);
	if (answered)
		sb_send_result(sb, c, run->id, status, 0, error);
}

/*
 * How long a RUN waits before it is due, from delay_ms or run_at (Unix
 * ms, against the wall clock; one in the past is due now). 0, or -1 with
 * the sentence for its BAD_REQUEST in err: both given, more than
 * SB_MAX_DELAY_MS, or with nowait (there is no worker to look for yet).
 */
static int
run_delay(const struct packet *run, uint64_t *ret, char *err)
{
	uint64_t	delay = 0, wall;

	*ret = 0;
	if ((run->has & PF_DELAY) && (run->has & PF_RUN_AT)) {
		snprintf(err, PROTO_ERRLEN, "give delay_ms or run_at, not both");
		return -1;
	}
	if (run->has & PF_DELAY)
		delay = run->delay_ms;
	else if (run->has & PF_RUN_AT) {
		wall = clock_wall_ms();
		delay = run->run_at > wall ? run->run_at - wall : 0;
	}
	if (delay > SB_MAX_DELAY_MS) {
		snprintf(err, PROTO_ERRLEN, "%s is more than 366 days away",
		    (run->has & PF_DELAY) ? "delay_ms" : "run_at");
		return -1;
	}
	if (delay > 0 && run->nowait) {
		snprintf(err, PROTO_ERRLEN, "nowait and a delay: a delayed job "
		    "looks for its worker when it is due");
		return -1;
	}
	*ret = delay;
	return 0;
}

/* Checks unique: 1 to 255 bytes. 0, or -1 with a sentence in err. */
static int
run_unique(const struct packet *run, char *err)
{
	if (!(run->has & PF_UNIQUE))
		return 0;
	if (run->unique.len == 0) {
		snprintf(err, PROTO_ERRLEN, "unique is empty");
		return -1;
	}
	if (run->unique.len > PROTO_MAX_FN_LEN) {
		snprintf(err, PROTO_ERRLEN, "unique is %u bytes long, more "
		    "than %d", run->unique.len, PROTO_MAX_FN_LEN);
		return -1;
	}
	return 0;
}

/*
 * Checks retry_on_error and backoff_ms: for detached jobs only (an
 * attached job's client sees its ERROR and decides), within their bounds.
 * 0, or -1 with the sentence for its BAD_REQUEST in err.
 */
static int
run_retry(const struct packet *run, char *err)
{
	if ((run->has & PF_RETRY_ON_ERROR) && run->retry_on_error > 0 &&
	    !run->detach) {
		snprintf(err, PROTO_ERRLEN, "retry_on_error is for detached "
		    "jobs: an attached job's client gets the ERROR and decides");
		return -1;
	}
	if ((run->has & PF_RETRY_ON_ERROR) &&
	    run->retry_on_error > SB_MAX_RETRY_ON_ERROR) {
		snprintf(err, PROTO_ERRLEN, "retry_on_error is more than %d",
		    SB_MAX_RETRY_ON_ERROR);
		return -1;
	}
	if ((run->has & PF_BACKOFF) && run->backoff_ms > SB_MAX_BACKOFF_MS) {
		snprintf(err, PROTO_ERRLEN, "backoff_ms is more than a day");
		return -1;
	}
	return 0;
}

/*
 * Checks a RUN against the limits that do not depend on its function:
 * max_jobs_per_client (live attached jobs of this client) and max_memory
 * (payloads held, plus what the owner counts, plus this one). 0, or -1
 * with the sentence for its QUEUE_FULL in err.
 */
static int
run_over_limit(const struct switchboard *sb, const struct sb_client *c,
    const struct packet *run, char *err)
{
	char	size[32];

	if (!run->detach && c != NULL && sb->max_jobs_per_client != 0 &&
	    c->njobs >= sb->max_jobs_per_client) {
		snprintf(err, PROTO_ERRLEN, "this connection already has %u "
		    "live jobs (max_jobs_per_client)", c->njobs);
		return -1;
	}
	if (sb->max_memory != 0 && sb->payload_bytes + sb->external_bytes +
	    run->payload.len + run->meta.len > sb->max_memory) {
		format_size(sb->max_memory, size, sizeof(size));
		snprintf(err, PROTO_ERRLEN, "the broker holds its max_memory "
		    "(%s) in payloads and output already", size);
		return -1;
	}
	return 0;
}

/* Writes why fn's queue takes no more: max_queue or max_queue_bytes. */
static void
run_queue_full(const struct switchboard *sb, const struct sb_fn *fn,
    char *err)
{
	char	size[32];

	if (fn->queue.n >= sb->max_queue) {
		snprintf(err, PROTO_ERRLEN, "the queue of '%s' holds %u jobs "
		    "(max_queue)", fn->name, fn->queue.n);
		return;
	}
	format_size(sb->max_queue_bytes, size, sizeof(size));
	snprintf(err, PROTO_ERRLEN, "the queue of '%s' holds its "
	    "max_queue_bytes (%s) of payloads", fn->name, size);
}

/* Takes a RUN from a client; see switchboard.h. */
int
switchboard_run(struct switchboard *sb, struct sb_client *c,
    const struct packet *run, uint64_t now)
{
	char			 err[PROTO_ERRLEN];
	bool			 detached = run->detach;
	uint64_t		 delay = 0;
	/* Keys most RUNs lack: looked at only when one is there. */
	uint32_t		 rare = run->has & (PF_DELAY | PF_RUN_AT |
				    PF_RETRY_ON_ERROR | PF_BACKOFF | PF_UNIQUE);
	struct sb_job		*job;
	struct sb_job_ext	*x;
	struct sb_unique	*u;
	int			 r;
	struct sb_fn		*fn;
	struct sb_worker	*w;
	int64_t			 priority = 0;
	/* An empty map is no meta: nothing to keep or to send on. */
	size_t			 meta_len = (run->has & PF_META) &&
				    meta_count(run->meta) > 0 ?
				    run->meta.len : 0;

	sb->now = now;
	if (!detached && c == NULL)
		return -EINVAL;
	if (sb->shutting_down || sb->refusing) {
		run_refuse(sb, c, run, JOB_SHUTTING_DOWN,
		    sb->refusing ? sb->refusal : NULL);
		return 0;
	}
	if (detached && sb->store_failing) {
		run_refuse(sb, c, run, JOB_STORE_FAILED, sb->store_why);
		return 0;
	}
	if (run->fn.len == 0) {
		run_refuse(sb, c, run, JOB_BAD_REQUEST,
		    "fn is empty");
		return 0;
	}
	if (run->fn.len > PROTO_MAX_FN_LEN) {
		snprintf(err, sizeof err, "fn is %u bytes long, more than %d",
		    run->fn.len, PROTO_MAX_FN_LEN);
		run_refuse(sb, c, run, JOB_BAD_REQUEST, err);
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
			run_refuse(sb, c, run, JOB_BAD_REQUEST,
			    err);
			return 0;
		}
	}
	if ((run->has & PF_META) && meta_check(run->meta, err) != 0) {
		run_refuse(sb, c, run, JOB_BAD_REQUEST, err);
		return 0;
	}
	if (rare != 0 && (run_delay(run, &delay, err) != 0 ||
	    run_retry(run, err) != 0 || run_unique(run, err) != 0)) {
		run_refuse(sb, c, run, JOB_BAD_REQUEST, err);
		return 0;
	}
	if (table_find(&sb->routes, run->id, 0) != NULL) {
		run_refuse(sb, c, run, JOB_DUPLICATE_ID, NULL);
		return 0;
	}

	if (run_over_limit(sb, c, run, err) != 0) {
		run_refuse(sb, c, run, JOB_QUEUE_FULL, err);
		return 0;
	}
	/* A live job with its function and unique key: joined, not run. */
	if ((rare & PF_UNIQUE) && (u = unique_find(sb, run)) != NULL) {
		if (detached) {
			if (run->ack && c != NULL)
				sb_send_accepted(sb, c, run->id, u->job->id);
			return 0;
		}
		if ((r = unique_join(sb, u, c, run->id)) != 0) {
			run_refuse(sb, c, run, JOB_QUEUE_FULL, r == -ENOBUFS ?
			    "this unique job has as many joiners as max_queue" :
			    "out of memory");
			return r == -ENOBUFS ? 0 : -ENOMEM;
		}
		return 0;
	}

	fn = fn_find(sb, run->fn.ptr, run->fn.len);
	w = fn != NULL && delay == 0 ? fn_pick_worker(fn) : NULL;
	if (w == NULL) {
		if (run->nowait) {
			run_refuse(sb, c, run, JOB_NO_WORKER,
			    NULL);
			return 0;
		}
		if (fn != NULL && (fn->queue.n + fn->ndelayed >= sb->max_queue ||
		    (sb->max_queue_bytes != 0 && fn->queue.bytes +
		    run->payload.len > sb->max_queue_bytes))) {
			run_queue_full(sb, fn, err);
			run_refuse(sb, c, run, JOB_QUEUE_FULL,
			    err);
			return 0;
		}
	}
	/*
	 * A stored job goes to its worker once its PUT is committed: until
	 * then it waits at the head of its queue, the worker free for it
	 * (switchboard_store_committed()).
	 */
	if (detached && sb->store != NULL)
		w = NULL;

	/* Every allocation happens before the job touches any structure. */
	if (fn == NULL && (fn = fn_get(sb, run->fn.ptr, run->fn.len)) == NULL)
		goto enomem;
	job = job_alloc(sb, run->payload.len, meta_len);
	if (job == NULL)
		goto enomem;
	/*
	 * What a delayed job's timeout or a detached job's retries need, kept
	 * beside it (job_free() gives it back with the job from here).
	 */
	if (rare != 0 && (((rare & PF_RETRY_ON_ERROR) &&
	    run->retry_on_error > 0) || (delay > 0 && (run->has & PF_TIMEOUT) &&
	    run->timeout_ms > 0) || (rare & PF_UNIQUE))) {
		if ((x = job_ext_make(sb, job)) == NULL) {
			job->fn = fn;
			fn->njobs++;
			job_free(sb, job);
			goto enomem_fn_gone;
		}
		x->timeout_ms = (run->has & PF_TIMEOUT) ? run->timeout_ms : 0;
		x->max_retries = (run->has & PF_RETRY_ON_ERROR) ?
		    (uint32_t)run->retry_on_error : 0;
		x->backoff_ms = (run->has & PF_BACKOFF) && run->backoff_ms > 0 ?
		    run->backoff_ms : SB_DEFAULT_BACKOFF_MS;
	}
	job->fn = fn;
	fn->njobs++;
	if ((w == NULL && delay == 0 &&
	    queue_reserve(&fn->queue, priority) != 0) ||
	    ((((run->has & PF_TIMEOUT) && run->timeout_ms > 0) ||
	    delay > 0) && heap_reserve(&sb->deadlines) != 0)) {
		job_free(sb, job);
		goto enomem_fn_gone;
	}
	if (table_reserve(&sb->routes) != 0 || (detached && sb->store !=
	    NULL && store_fresh_reserve(sb) != 0)) {
		job_free(sb, job);
		goto enomem_fn_gone;
	}
	memcpy(job->id, run->id, PROTO_ID_LEN);
	table_insert(&sb->routes, job);

	job->seq = sb->next_seq++;
	job->heap_idx = HEAP_NONE;
	job->priority = (int8_t)priority;
	job->detached = detached;
	job->max_attempts = 1;
	if (run->has & PF_RETRIES)
		job->max_attempts = run->retries >= UINT32_MAX - 1 ?
		    UINT32_MAX : (uint32_t)run->retries + 1;
	if (run->payload.len > 0)
		memcpy(job->payload, run->payload.ptr, run->payload.len);
	if (meta_len > 0)
		memcpy(job->payload + run->payload.len, run->meta.ptr, meta_len);
	if (!detached) {
		job->client = c;
		TAILQ_INSERT_TAIL(&c->jobs, job, client_entry);
		c->njobs++;
	}
	if (delay > 0) {
		/* Its timeout, or detached_ttl, starts when it is due. */
		job->state = SB_JOB_DELAYED;
		job->has_timeout = true;
		heap_push(&sb->deadlines, job, sat_add(now, delay));
		fn->ndelayed++;
		sb->ndelayed++;
	} else if ((run->has & PF_TIMEOUT) && run->timeout_ms > 0) {
		job->has_timeout = true;
		heap_push(&sb->deadlines, job, sat_add(now, run->timeout_ms));
	}
	sb->stats.submitted++;
	job->stamp = (uint32_t)now;
	if (detached && sb->store != NULL) {
		job->stored = true;
		store_fresh_add(sb, job);
		job_store(sb, job, SB_STORE_PUT);
	}
	/* Taken: said before anything else can happen to the job. */
	if (detached && run->ack && c != NULL)
		sb_send_accepted(sb, c, job->id, NULL);
	if (rare & PF_UNIQUE)
		unique_register(sb, job, run);

	if (w != NULL)
		job_dispatch(sb, job, w, now);
	else if (delay == 0)
		job_enqueue(sb, job, now);
	return 0;

enomem:
	if (fn != NULL)
		fn_release(sb, fn);
enomem_fn_gone:
	run_refuse(sb, c, run, JOB_QUEUE_FULL, "out of memory");
	return -ENOMEM;
}

/* CANCEL from client c; see switchboard.h. */
int
switchboard_cancel(struct switchboard *sb, struct sb_client *c,
    const uint8_t id[PROTO_ID_LEN], uint64_t now)
{
	struct sb_job	*job;

	sb->now = now;
	job = table_find(&sb->routes, id, 0);
	if (job == NULL || c == NULL || job->client != c)
		return -ENOENT;
	if (job->state == SB_JOB_QUEUED || job->state == SB_JOB_DELAYED) {
		job_finish(sb, job, JOB_CANCELLED, NULL);
		return 0;
	}
	if (!job->cancel_requested) {
		job->cancel_requested = true;
		sb_send_cancel(sb, job);
	}
	return 0;
}

/* True when the dead job matches fn (NULL: any function). */
static bool
dead_matches(const struct sb_job *job, const char *fn)
{
	return fn == NULL || strcmp(job->fn->name, fn) == 0;
}

/* The dead list, oldest first; see switchboard.h. */
void
switchboard_foreach_dead(struct switchboard *sb, const char *fn,
    uint64_t now, void (*cb)(const struct sb_dead_info *, void *),
    void *arg)
{
	const struct sb_job	*job;
	struct sb_job_ext	*x;
	struct sb_dead_info	 info;

	sb->now = now;
	TAILQ_FOREACH(job, &sb->dead, client_entry) {
		if (!dead_matches(job, fn))
			continue;
		memset(&info, 0, sizeof(info));
		info.id = job->id;
		info.fn = job->fn->name;
		info.attempts = job->attempt;
		x = job_ext(sb, job);
		info.failures = x->failures;
		info.priority = job->priority;
		info.age_ms = (uint32_t)((uint32_t)now - job->stamp);
		info.error = x->last_error;
		info.payload_len = job->payload_len;
		cb(&info, arg);
	}
}

/*
 * A dead job back to its queue (or a worker), its retries afresh: made
 * due now and handed to job_due(). 0, or -ENOMEM (it stays dead).
 */
static int
dead_kick(struct switchboard *sb, struct sb_job *job, uint64_t now)
{
	if (heap_reserve(&sb->deadlines) != 0)
		return -ENOMEM;
	TAILQ_REMOVE(&sb->dead, job, client_entry);
	sb->ndead--;
	job_ext(sb, job)->failures = 0;
	job->state = SB_JOB_DELAYED;
	job->has_timeout = true;
	heap_push(&sb->deadlines, job, now);
	job->fn->ndelayed++;
	sb->ndelayed++;
	job_store_update(sb, job);
	job_due(sb, job, now);
	return 0;
}

/* Applies kick (true) or drop to one dead job or to all; see .h. */
static int
dead_apply(struct switchboard *sb, const uint8_t *id, const char *fn,
    uint64_t now, bool kick)
{
	struct sb_job	*job, *next;
	int		 n = 0;

	sb->now = now;
	if (id != NULL) {
		job = table_find(&sb->routes, id, 0);
		if (job == NULL || job->state != SB_JOB_DEAD)
			return -ENOENT;
		if (kick)
			return dead_kick(sb, job, now) == 0 ? 1 : -ENOMEM;
		job_unlink_live(sb, job);
		job_free(sb, job);
		return 1;
	}
	for (job = TAILQ_FIRST(&sb->dead); job != NULL; job = next) {
		next = TAILQ_NEXT(job, client_entry);
		if (!dead_matches(job, fn))
			continue;
		if (kick) {
			if (dead_kick(sb, job, now) != 0)
				break;
		} else {
			job_unlink_live(sb, job);
			job_free(sb, job);
		}
		n++;
	}
	return n;
}

/* Dead jobs back to their queue; see switchboard.h. */
int
switchboard_kick(struct switchboard *sb, const uint8_t *id, const char *fn,
    uint64_t now)
{
	return dead_apply(sb, id, fn, now, true);
}

/* Dead jobs dropped for good; see switchboard.h. */
int
switchboard_drop(struct switchboard *sb, const uint8_t *id, const char *fn,
    uint64_t now)
{
	return dead_apply(sb, id, fn, now, false);
}

/* CANCEL of any live job, as admin; see switchboard.h. */
int
switchboard_cancel_any(struct switchboard *sb, const uint8_t *id,
    uint64_t now, enum sb_state *was)
{
	struct sb_job	*job;

	sb->now = now;
	if ((job = table_find(&sb->routes, id, 0)) == NULL)
		return -ENOENT;
	if (job->state == SB_JOB_QUEUED || job->state == SB_JOB_DELAYED ||
	    job->state == SB_JOB_DEAD) {
		*was = job->state == SB_JOB_QUEUED ? SB_STATE_QUEUED :
		    job->state == SB_JOB_DELAYED ? SB_STATE_DELAYED :
		    SB_STATE_DEAD;
		job_finish(sb, job, JOB_CANCELLED, "cancelled by an admin");
		return 0;
	}
	*was = SB_STATE_RUNNING;
	if (!job->cancel_requested) {
		job->cancel_requested = true;
		sb_send_cancel(sb, job);
	}
	return 0;
}

/* RESULT from worker w; see switchboard.h. */
int
switchboard_result(struct switchboard *sb, struct sb_worker *w,
    const struct packet *res, uint64_t now)
{
	struct packet	 p;
	struct sb_job	*job;

	sb->now = now;
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
	stats_hist_add(&job->fn->st->run, (uint32_t)now - job->stamp);
	if (job->has_ext && res->status == JOB_ERROR &&
	    job_ext(sb, job)->max_retries > 0) {
		job_failed(sb, job, (res->has & PF_ERROR) ? res->error.ptr :
		    NULL, (res->has & PF_ERROR) ? res->error.len : 0, now);
		worker_fill(sb, w, now);
		return 0;
	}
	if (job->detached)
		results_keep(sb, job, res->status, (res->has & PF_ERROR) ?
		    res->error.ptr : NULL, (res->has & PF_ERROR) ?
		    res->error.len : 0, res->payload.ptr, res->payload.len);
	stats_job_end(sb, job, NULL, res->status, job->client != NULL,
	    (res->has & PF_ERROR) ? res->error.ptr : NULL,
	    (res->has & PF_ERROR) ? res->error.len : 0);
	if (job->client != NULL) {
		packet_init(&p, PKT_RESULT);
		memcpy(p.id, job->id, PROTO_ID_LEN);
		p.status = res->status;
		p.attempts = job->attempt;
		p.has = res->has & (PF_PAYLOAD | PF_ERROR);
		p.payload = res->payload;
		p.error = res->error;
		sb_send(sb, job->client->ctx, &p);
	}
	if (job->has_ext)
		unique_finish(sb, job, res->status, (res->has & PF_ERROR) ?
		    res->error.ptr : NULL, (res->has & PF_ERROR) ?
		    res->error.len : 0, res->payload.ptr, res->payload.len);
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
	struct packet	 p;
	struct sb_job	*job;

	sb->now = now;
	job = worker_find_running(sb, w, prog->id, prog->attempt);
	if (job == NULL) {
		if (worker_find_orphan(w, prog->id, prog->attempt) != NULL)
			return 0;
		sb->stats.stale++;
		return -ESTALE;
	}
	if (job->client == NULL)
		return 0;
	packet_init(&p, PKT_PROGRESS);
	p.has = PF_PAYLOAD;
	memcpy(p.id, job->id, PROTO_ID_LEN);
	p.payload = prog->payload;
	sb->stats.progress++;
	sb_send(sb, job->client->ctx, &p);
	return 0;
}

/* Expires timeouts and no-worker waits that are due at now. */
void
switchboard_tick(struct switchboard *sb, uint64_t now)
{
	struct sb_job	*job;
	struct sb_fn	*fn, *next;

	sb->now = now;
	while ((job = heap_top(&sb->deadlines)) != NULL &&
	    heap_top_deadline(&sb->deadlines) <= now)
		job_expire(sb, job);
	for (fn = TAILQ_FIRST(&sb->idle_fns); fn != NULL; fn = next) {
		next = TAILQ_NEXT(fn, idle_entry);
		if (sat_add(fn->no_worker_since, sb->no_worker_wait_ms) <= now)
			fn_expire(sb, fn);
	}
}

/* Drops detached jobs queued longer than detached_ttl; see .h. */
void
switchboard_expire_detached(struct switchboard *sb, uint64_t now)
{
	struct sb_fn	*fn, *tmp;
	struct sb_job	*job, *next;
	char		 ttl[32], why[80];
	bool		 said = false;

	sb->now = now;
	HASH_ITER(hh, sb->fns, fn, tmp) {
		/* Keep fn alive while its last queued job goes. */
		fn->draining = true;
		for (uint32_t i = fn->queue.nlevels; i-- > 0;) {
			/* Oldest first: the rest of a level is younger. */
			for (job = fn->queue.levels[i].first; job != NULL &&
			    (uint32_t)((uint32_t)now - job->stamp) >=
			    sb->detached_ttl_ms; job = next) {
				next = job->q.next;
				if (!job->detached)
					continue;
				if (!said) {
					format_duration(sb->detached_ttl_ms,
					    ttl, sizeof(ttl));
					snprintf(why, sizeof(why), "waited for "
					    "a worker longer than detached_ttl "
					    "(%s)", ttl);
					said = true;
				}
				job_finish(sb, job, JOB_TIMEOUT, why);
			}
		}
		fn->draining = false;
		fn_release(sb, fn);
	}
}

/* The earliest time switchboard_tick() has work, or UINT64_MAX. */
uint64_t
switchboard_next_deadline(const struct switchboard *sb)
{
	const struct sb_fn	*fn;
	uint64_t		 t = UINT64_MAX, d;

	if (heap_top(&sb->deadlines) != NULL)
		t = heap_top_deadline(&sb->deadlines);
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
 * them and interrupting them would gain nothing. Stored jobs that are
 * delayed or queued stay in the store instead (the dead ones too).
 */
void
switchboard_shutdown(struct switchboard *sb, uint64_t now)
{
	struct sb_worker	*w;
	struct sb_job		*job, *next;
	struct sb_fn		*fn, *tmp;

	sb->now = now;
	sb->shutting_down = true;
	/* Delayed jobs first: finishing one moves the last entry to i. */
	for (uint32_t i = 0; i < sb->deadlines.n;) {
		job = sb->deadlines.v[i].job;
		if (job->state != SB_JOB_DELAYED)
			i++;
		else if (job->stored)
			job_shelve(sb, job);
		else
			job_finish(sb, job, JOB_SHUTTING_DOWN, NULL);
	}
	HASH_ITER(hh, sb->fns, fn, tmp) {
		/* Keep fn alive while its last queued job goes. */
		fn->draining = true;
		while ((job = queue_first(&fn->queue)) != NULL) {
			if (job->stored)
				job_shelve(sb, job);
			else
				job_finish(sb, job, JOB_SHUTTING_DOWN, NULL);
		}
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

/* An on-demand pool serves name, or no longer; see switchboard.h. */
int
switchboard_fn_standby(struct switchboard *sb, const char *name, bool on,
    uint64_t now)
{
	size_t		 len = strlen(name);
	struct sb_fn	*fn;

	sb->now = now;
	if (len == 0 || len > PROTO_MAX_FN_LEN)
		return -EINVAL;
	if (on) {
		if ((fn = fn_get(sb, (const uint8_t *)name, (uint32_t)len)) ==
		    NULL)
			return -ENOMEM;
		fn->standby++;
		fn_clear_idle(sb, fn);
		return 0;
	}
	if ((fn = fn_find(sb, (const uint8_t *)name, (uint32_t)len)) == NULL ||
	    fn->standby == 0)
		return 0;
	/* The last pool gone: jobs that wait with no worker start the clock. */
	if (--fn->standby == 0 && fn->nworkers == 0 && fn->queue.n > 0)
		fn_set_idle(sb, fn, now);
	fn_release(sb, fn);
	return 0;
}

/* Describes one function by name; see switchboard.h. */
bool
switchboard_fn_lookup(const struct switchboard *sb, const char *name,
    struct sb_fn_info *ret)
{
	const struct sb_fn	*fn;

	fn = fn_find((struct switchboard *)sb, (const uint8_t *)name,
	    (uint32_t)strlen(name));
	if (fn == NULL)
		return false;
	fn_info(sb, fn, ret);
	return true;
}

/* Refuses every RUN from now on; see switchboard.h. */
void
switchboard_refuse_new(struct switchboard *sb, const char *why)
{
	sb->refusing = true;
	snprintf(sb->refusal, sizeof(sb->refusal), "%s", why);
}

/* Sets the job end callback; see switchboard.h. */
void
switchboard_set_job_end_cb(struct switchboard *sb, sb_job_end_cb cb,
    void *arg)
{
	sb->job_end = cb;
	sb->job_end_arg = arg;
}

/* What the owner holds for max_memory; see switchboard.h. */
void
switchboard_set_external_bytes(struct switchboard *sb, uint64_t bytes)
{
	sb->external_bytes = bytes;
}

/* Fills *ret with the counters and gauges. */
void
switchboard_stats(const struct switchboard *sb, struct sb_stats *ret)
{
	*ret = sb->stats;
	ret->queued = sb->nqueued;
	ret->delayed = sb->ndelayed;
	ret->dead = sb->ndead;
	ret->running = sb->nrunning;
	ret->workers = sb->nworkers;
	ret->clients = sb->nclients;
	ret->functions = HASH_COUNT(sb->fns);
	ret->jobs_peak = sb->jobs_peak;
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
			fn_info(sb, fn, &info);
			cb(&info, arg);
		}
		return;
	}
	i = 0;
	for (fn = sb->fns; fn != NULL; fn = fn->hh.next)
		v[i++] = fn;
	qsort(v, n, sizeof *v, fn_cmp_name);
	for (i = 0; i < n; i++) {
		fn_info(sb, v[i], &info);
		cb(&info, arg);
	}
	free(v);
}

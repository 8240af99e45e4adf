/*
 * fn.c: functions, the workers registered for them, and which queued job
 * goes to which free slot.
 *
 * A struct sb_fn is created by the first REGISTER or RUN that names it and
 * lives while a registration (struct sb_reg, held in its worker's array and
 * linked into the function's worker list) or a job refers to it, or while
 * its no-worker clock runs: a function that loses its last worker, or gets
 * a job without having one, starts that clock, and switchboard_tick()
 * answers its queue NO_WORKER when the clock runs out.
 *
 * Invariant that keeps dispatch cheap: whenever a function's queue is not
 * empty, none of its unpaused workers has a free slot. Every event that
 * frees a slot (RESULT, REGISTER, resume, an orphan's answer) refills that
 * worker from the heads of its functions' queues (worker_fill), and every
 * event that queues a job on a function checks its workers first
 * (fn_pick_worker, fn_drain).
 */
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* Starts the no-worker clock of fn at now unless it is already running. */
void
fn_set_idle(struct switchboard *sb, struct sb_fn *fn, uint64_t now)
{
	if (fn->idle)
		return;
	fn->idle = true;
	fn->no_worker_since = now;
	TAILQ_INSERT_TAIL(&sb->idle_fns, fn, idle_entry);
}

/* Stops the no-worker clock of fn. */
void
fn_clear_idle(struct switchboard *sb, struct sb_fn *fn)
{
	if (!fn->idle)
		return;
	fn->idle = false;
	fn->no_worker_since = 0;
	TAILQ_REMOVE(&sb->idle_fns, fn, idle_entry);
}

/* Looks a function up by name; NULL when unknown. */
struct sb_fn *
fn_find(struct switchboard *sb, const uint8_t *name, uint32_t len)
{
	struct sb_fn	*fn;

	HASH_FIND(hh, sb->fns, name, len, fn);
	return fn;
}

/* Finds or creates a function; NULL on ENOMEM. */
struct sb_fn *
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
	fn->st = stats_fn(sb, name, len);
	HASH_ADD_KEYPTR(hh, sb->fns, fn->name, fn->name_len, fn);
	if (fn->hh.tbl == NULL) {
		free(fn);
		return NULL;
	}
	return fn;
}

/* Frees fn when no worker, no job and no no-worker clock refer to it. */
void
fn_release(struct switchboard *sb, struct sb_fn *fn)
{
	if (fn->nworkers != 0 || fn->njobs != 0 || fn->idle || fn->draining ||
	    fn->standby != 0)
		return;
	HASH_DELETE(hh, sb->fns, fn);
	queue_clear(&fn->queue);
	free(fn);
}

/*
 * Picks the unpaused worker of fn with a free slot and the lowest
 * in_flight/capacity, starting from the round-robin cursor so that equals
 * take turns; NULL when every worker is full or paused.
 */
struct sb_worker *
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
void
reg_unlink(struct switchboard *sb, struct sb_reg *r, uint64_t now)
{
	struct sb_fn	*fn = r->fn;

	if (fn->cursor == r)
		fn->cursor = TAILQ_NEXT(r, fn_entry);
	TAILQ_REMOVE(&fn->workers, r, fn_entry);
	/* An on-demand pool will start a worker: no clock then. */
	if (--fn->nworkers == 0 && fn->standby == 0)
		fn_set_idle(sb, fn, now);
}

/* Links one registration into its function's worker list. */
void
reg_link(struct switchboard *sb, struct sb_reg *r)
{
	struct sb_fn	*fn = r->fn;

	TAILQ_INSERT_TAIL(&fn->workers, r, fn_entry);
	if (fn->nworkers++ == 0)
		fn_clear_idle(sb, fn);
}

/*
 * Fills w's free slots with the best queued jobs of its functions (highest
 * priority, then oldest), one scan of its functions per dispatch.
 */
void
worker_fill(struct switchboard *sb, struct sb_worker *w, uint64_t now)
{
	while (!w->paused && w->in_flight < w->capacity) {
		struct sb_job	*best = NULL;
		uint32_t	 i;

		for (i = 0; i < w->nregs; i++) {
			struct sb_job *head = queue_first(&w->regs[i].fn->queue);

			/* A fresh job waits for its commit, and those after. */
			if (head != NULL && !head->fresh && (best == NULL ||
			    queue_before(head, best)))
				best = head;
		}
		if (best == NULL)
			break;
		job_dequeue(sb, best);
		job_dispatch(sb, best, w, now);
	}
}

/* Dispatches fn's queued jobs to its workers while any has a free slot. */
void
fn_drain(struct switchboard *sb, struct sb_fn *fn, uint64_t now)
{
	struct sb_job		*job;
	struct sb_worker	*w;

	while ((job = queue_first(&fn->queue)) != NULL && !job->fresh &&
	    (w = fn_pick_worker(fn)) != NULL) {
		job_dequeue(sb, job);
		job_dispatch(sb, job, w, now);
	}
}

/* Answers NO_WORKER to every queued job of fn and stops its clock. */
void
fn_expire(struct switchboard *sb, struct sb_fn *fn)
{
	struct sb_job	*job, *next;

	/*
	 * The attached jobs only: detached ones wait for a worker. Levels go
	 * as they empty, so from the last one back; within one, the next job
	 * is taken before this one goes.
	 */
	for (uint32_t i = fn->queue.nlevels; i-- > 0;) {
		for (job = fn->queue.levels[i].first; job != NULL;
		    job = next) {
			next = job->q.next;
			if (!job->detached)
				job_finish(sb, job, JOB_NO_WORKER, NULL);
		}
	}
	fn_clear_idle(sb, fn);
	fn_release(sb, fn);
}

/* Orders functions by name, bytewise, for qsort. */
int
fn_cmp_name(const void *a, const void *b)
{
	const struct sb_fn	*fa = *(const struct sb_fn * const *)a;
	const struct sb_fn	*fb = *(const struct sb_fn * const *)b;

	return sb_name_cmp(fa->name, fa->name_len, fb->name, fb->name_len);
}

/* Describes one function for the admin verbs. */
void
fn_info(const struct switchboard *sb, const struct sb_fn *fn,
    struct sb_fn_info *ret)
{
	const struct sb_reg	*r;
	uint32_t		 waited = 0;

	memset(ret, 0, sizeof *ret);
	ret->name = fn->name;
	ret->queued = fn->queue.n;
	ret->running = fn->running;
	ret->workers = fn->nworkers;
	TAILQ_FOREACH(r, &fn->workers, fn_entry) {
		ret->capacity += r->worker->capacity;
		if (!r->worker->paused &&
		    r->worker->in_flight < r->worker->capacity)
			ret->free_slots +=
			    r->worker->capacity - r->worker->in_flight;
	}
	/* Each level is oldest first; a job queued again keeps its place. */
	for (uint32_t l = 0; l < fn->queue.nlevels; l++) {
		const struct sb_job *job = fn->queue.levels[l].first;

		if (job != NULL && (uint32_t)sb->now - job->stamp >= waited) {
			waited = (uint32_t)sb->now - job->stamp;
			ret->oldest_queued_at = sb->now - waited;
		}
	}
	stats_copy(fn->st, ret);
}

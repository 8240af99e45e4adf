/*
 * stats.c: what the switchboard counts for operators: the outcomes of each
 * function name by status, its wait and run times as histograms, and the
 * last SB_OUTCOMES outcomes.
 *
 * A function's record outlives the function (a pool that scaled to zero
 * still shows what it did), so records are bounded on their own: past
 * SB_MAX_FN_STATS names, a new name is counted under SB_FN_OTHER. On the
 * dispatch path a record is one pointer away (fn->st) and counting is a
 * few additions; the recent outcomes cost one short copy each.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* Upper bounds of the histogram buckets, in ms; the last bucket is +Inf. */
const uint64_t sb_hist_bounds_ms[SB_HIST_BUCKETS - 1] = {
	1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 60000,
};

/* A new record for name; NULL on ENOMEM. */
static struct sb_fn_stats *
stats_new(const uint8_t *name, uint32_t len)
{
	struct sb_fn_stats	*st;

	if ((st = calloc(1, sizeof *st + (size_t)len + 1)) == NULL)
		return NULL;
	memcpy(st->name, name, len);
	st->name_len = len;
	return st;
}

/* Makes the SB_FN_OTHER record. */
int
stats_init(struct switchboard *sb)
{
	sb->fn_other = stats_new((const uint8_t *)SB_FN_OTHER,
	    sizeof(SB_FN_OTHER) - 1);
	return sb->fn_other != NULL ? 0 : -ENOMEM;
}

/* Frees every record. */
void
stats_clear(struct switchboard *sb)
{
	struct sb_fn_stats	*st, *tmp;

	HASH_ITER(hh, sb->fn_stats, st, tmp) {
		HASH_DELETE(hh, sb->fn_stats, st);
		free(st);
	}
	free(sb->fn_other);
	sb->fn_other = NULL;
}

/* The record of a name, found or made; SB_FN_OTHER's when it cannot be. */
struct sb_fn_stats *
stats_fn(struct switchboard *sb, const uint8_t *name, uint32_t len)
{
	struct sb_fn_stats	*st;

	HASH_FIND(hh, sb->fn_stats, name, len, st);
	if (st != NULL)
		return st;
	if (HASH_COUNT(sb->fn_stats) >= SB_MAX_FN_STATS ||
	    (st = stats_new(name, len)) == NULL)
		return sb->fn_other;
	HASH_ADD_KEYPTR(hh, sb->fn_stats, st->name, st->name_len, st);
	if (st->hh.tbl == NULL) {
		free(st);
		return sb->fn_other;
	}
	return st;
}

/* Tells the owner's job end callback how a job ended. */
static void
stats_report(struct switchboard *sb, const struct sb_job *job,
    const struct packet *run, enum job_status status, bool answered,
    const void *error, size_t error_len)
{
	struct sb_job_end	o;

	memset(&o, 0, sizeof(o));
	o.status = status;
	o.answered = answered;
	o.error = error;
	o.error_len = error != NULL ? (uint32_t)error_len : 0;
	if (job != NULL) {
		o.id = job->id;
		o.fn = job->fn->name;
		o.fn_len = job->fn->name_len;
		o.attempts = job->attempt;
		o.detached = job->detached;
		o.client = job->client != NULL ? job->client->ctx : NULL;
		/* A requeued job may still point at a worker that is gone. */
		if (job->state == SB_JOB_RUNNING && job->worker != NULL)
			o.worker = job->worker->ctx;
	} else {
		o.id = run->id;
		o.fn = (const char *)run->fn.ptr;
		o.fn_len = run->fn.len;
		o.detached = run->detach;
	}
	sb->job_end(&o, sb->job_end_arg);
}

/* The record a refused RUN counts under, or NULL for a bad name. */
struct sb_fn_stats *
stats_fn_of_run(struct switchboard *sb, const struct packet *run)
{
	if (run->fn.len == 0 || run->fn.len > PROTO_MAX_FN_LEN)
		return NULL;
	return stats_fn(sb, run->fn.ptr, run->fn.len);
}

/* The rarer half of stats_job_end(): the error text and the report. */
void
stats_job_end_more(struct switchboard *sb, const struct sb_job *job,
    const struct packet *run, struct sb_outcome *o, enum job_status status,
    bool answered, const void *error, size_t error_len)
{
	size_t	n;

	n = error_len < sizeof(o->error) - 1 ? error_len : sizeof(o->error) - 1;
	if (n > 0)
		memcpy(o->error, error, n);
	o->error[n] = '\0';
	if (sb->job_end != NULL && status != JOB_OK)
		stats_report(sb, job, run, status, answered, error, error_len);
}

/* Orders records (struct sb_fn_stats *const *) by name, for qsort. */
static int
stats_cmp_name(const void *a, const void *b)
{
	const struct sb_fn_stats	*x = *(struct sb_fn_stats *const *)a;
	const struct sb_fn_stats	*y = *(struct sb_fn_stats *const *)b;

	return sb_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Copies a record's outcomes and times into info. */
void
stats_copy(const struct sb_fn_stats *st, struct sb_fn_info *info)
{
	memcpy(info->results, st->results, sizeof info->results);
	info->rejected = st->rejected;
	info->wait = st->wait;
	info->run = st->run;
}

/* Fills info from a record and its live function, if any. */
static void
stats_info(const struct switchboard *sb, const struct sb_fn_stats *st,
    struct sb_fn_info *info)
{
	struct sb_fn	*fn;

	HASH_FIND(hh, sb->fns, st->name, st->name_len, fn);
	if (fn != NULL)
		fn_info(sb, fn, info);
	else {
		memset(info, 0, sizeof *info);
		info->name = st->name;
		stats_copy(st, info);
	}
}

/* Every name with outcomes kept, sorted; see switchboard.h. */
void
switchboard_foreach_fn_stats(const struct switchboard *sb,
    void (*cb)(const struct sb_fn_info *, void *), void *arg)
{
	struct sb_fn_stats	**v, *st;
	struct sb_fn_info	  info;
	size_t			  i, n = HASH_COUNT(sb->fn_stats);

	v = n > 0 ? calloc(n, sizeof *v) : NULL;
	i = 0;
	for (st = sb->fn_stats; st != NULL; st = st->hh.next) {
		if (v != NULL)
			v[i++] = st;
		else {
			/* Unsorted rather than nothing. */
			stats_info(sb, st, &info);
			cb(&info, arg);
		}
	}
	if (v != NULL) {
		qsort(v, n, sizeof *v, stats_cmp_name);
		for (i = 0; i < n; i++) {
			stats_info(sb, v[i], &info);
			cb(&info, arg);
		}
		free(v);
	}
	st = sb->fn_other;
	for (i = 0; i < JOB__MAX && st->rejected == 0; i++)
		if (st->results[i] != 0)
			break;
	if (i < JOB__MAX || st->rejected != 0) {
		stats_info(sb, st, &info);
		cb(&info, arg);
	}
}

/* Fills info for one live job. */
static void
stats_job_info(const struct switchboard *sb, const struct sb_job *job,
    struct sb_job_info *info)
{
	memset(info, 0, sizeof *info);
	info->id = job->id;
	info->fn = job->fn->name;
	info->client = job->client != NULL ? job->client->ctx : NULL;
	info->worker = job->state == SB_JOB_RUNNING && job->worker != NULL ?
	    job->worker->ctx : NULL;
	info->attempt = job->attempt;
	info->max_attempts = job->max_attempts;
	info->running = job->state == SB_JOB_RUNNING;
	info->delayed = job->state == SB_JOB_DELAYED;
	info->detached = job->detached;
	info->priority = job->priority;
	info->since = sb->now - (uint32_t)((uint32_t)sb->now - job->stamp);
	if (job->heap_idx != HEAP_NONE)
		info->deadline = sb->deadlines.v[job->heap_idx].deadline;
	info->payload_len = job->payload_len;
	info->meta.ptr = job->meta_len > 0 ? job->payload + job->payload_len :
	    NULL;
	info->meta.len = job->meta_len;
}

/*
 * Every live job: queued ones by function, then running ones by worker,
 * then the delayed ones (in the deadline heap's order).
 */
void
switchboard_foreach_job(const struct switchboard *sb,
    void (*cb)(const struct sb_job_info *, void *), void *arg)
{
	const struct sb_fn	*fn;
	const struct sb_worker	*w;
	const struct sb_job	*job;
	struct sb_job_info	 info;

	for (fn = sb->fns; fn != NULL; fn = fn->hh.next) {
		for (uint32_t l = 0; l < fn->queue.nlevels; l++) {
			for (job = fn->queue.levels[l].first; job != NULL;
			    job = job->q.next) {
				stats_job_info(sb, job, &info);
				cb(&info, arg);
			}
		}
	}
	TAILQ_FOREACH(w, &sb->workers, entry) {
		TAILQ_FOREACH(job, &w->jobs, worker_entry) {
			if (job->state != SB_JOB_RUNNING)
				continue;
			stats_job_info(sb, job, &info);
			cb(&info, arg);
		}
	}
	for (uint32_t i = 0; i < sb->deadlines.n; i++) {
		job = sb->deadlines.v[i].job;
		if (job->state != SB_JOB_DELAYED)
			continue;
		stats_job_info(sb, job, &info);
		cb(&info, arg);
	}
}

/* The recent outcomes, newest first. */
void
switchboard_foreach_outcome(const struct switchboard *sb,
    void (*cb)(const struct sb_outcome *, void *), void *arg)
{
	uint32_t	n = sb->noutcomes < SB_OUTCOMES ? sb->noutcomes :
			    SB_OUTCOMES;

	for (uint32_t i = 1; i <= n; i++)
		cb(&sb->outcomes[(sb->noutcomes - i) % SB_OUTCOMES], arg);
}

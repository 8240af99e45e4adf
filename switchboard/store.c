/*
 * store.c: what the switchboard tells a durable store of its detached
 * jobs, and takes back from it at start.
 *
 * The switchboard does no I/O: it describes each change of a stored job
 * (job->stored, set when a detached job is taken while a store callback
 * is set) as a struct sb_stored and hands it to the owner's callback,
 * which writes it in its own time (the broker: one transaction per event
 * loop turn). The job's whole record goes with SB_STORE_PUT; later
 * changes (SB_STORE_UPDATE) carry the same record, and the store keeps
 * what it needs; SB_STORE_DEL is sent once, when the job leaves the route
 * table with its outcome final (job_unlink_live(), job_orphan()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* Describes a stored job for its store and calls the store back. */
void
job_store(struct switchboard *sb, struct sb_job *job, enum sb_store_op op)
{
	struct sb_stored	 s;
	struct sb_job_ext	*x;
	uint64_t		 at;

	if (sb->store == NULL)
		return;		/* the owner closed its store */
	memset(&s, 0, sizeof(s));
	s.id = job->id;
	if (op == SB_STORE_DEL) {
		sb->store(op, &s, sb->store_arg);
		return;
	}
	s.fn = job->fn->name;
	s.fn_len = job->fn->name_len;
	s.payload = job->payload;
	s.payload_len = job->payload_len;
	s.meta = job->payload + job->payload_len;
	s.meta_len = job->meta_len;
	s.priority = job->priority;
	s.attempts = job->attempt;
	s.max_attempts = job->max_attempts;
	s.dead = job->state == SB_JOB_DEAD;
	/* Only a PUT carries it: it comes as the job is taken. */
	if (op == SB_STORE_PUT)
		s.taken_at = sb->now;
	if (job->has_timeout && job->heap_idx != HEAP_NONE) {
		at = sb->deadlines.v[job->heap_idx].deadline;
		if (job->state == SB_JOB_DELAYED)
			s.due = at;
		else
			s.deadline = at;
	}
	if ((x = job_ext(sb, job)) != NULL) {
		s.timeout_ms = x->timeout_ms;
		s.retry_on_error = x->max_retries;
		s.failures = x->failures;
		s.backoff_ms = x->backoff_ms;
		s.error = x->last_error;
		if (x->unique != NULL) {
			s.unique = x->unique->key + job->fn->name_len + 1;
			s.unique_len = x->unique->keylen - job->fn->name_len - 1;
		}
	}
	sb->store(op, &s, sb->store_arg);
}

/* Shutdown with a store: out of memory, kept in the store; see internal.h. */
void
job_shelve(struct switchboard *sb, struct sb_job *job)
{
	if (job->has_ext)
		unique_finish(sb, job, JOB_SHUTTING_DOWN, NULL, 0, NULL, 0);
	job->stored = false;	/* no SB_STORE_DEL: it stays */
	job_unlink_live(sb, job);
	job_free(sb, job);
}

/* Room for one more fresh id; see internal.h. */
int
store_fresh_reserve(struct switchboard *sb)
{
	return array_grow(&sb->fresh, &sb->fresh_cap, sb->nfresh,
	    PROTO_ID_LEN);
}

/* Notes a fresh job; see internal.h. */
void
store_fresh_add(struct switchboard *sb, struct sb_job *job)
{
	job->fresh = true;
	memcpy(sb->fresh + sb->nfresh++ * PROTO_ID_LEN, job->id,
	    PROTO_ID_LEN);
}

/* The fresh jobs are committed: dispatched; see switchboard.h. */
void
switchboard_store_committed(struct switchboard *sb, uint64_t now)
{
	struct sb_job	*job;
	size_t		 i;

	sb->now = now;
	/* All of them first: a fresh head stops fn_drain() for the rest. */
	for (i = 0; i < sb->nfresh; i++)
		if ((job = table_find(&sb->routes, sb->fresh +
		    i * PROTO_ID_LEN, 0)) != NULL)
			job->fresh = false;
	for (i = 0; i < sb->nfresh; i++)
		if ((job = table_find(&sb->routes, sb->fresh +
		    i * PROTO_ID_LEN, 0)) != NULL &&
		    job->state == SB_JOB_QUEUED)
			fn_drain(sb, job->fn, now);
	sb->nfresh = 0;
}

/* Sets the store callback; see switchboard.h. */
void
switchboard_set_store_cb(struct switchboard *sb, sb_store_cb cb, void *arg)
{
	sb->store = cb;
	sb->store_arg = arg;
}

/* Detached RUNs are refused STORE_FAILED, or taken again; see .h. */
void
switchboard_store_failing(struct switchboard *sb, const char *why)
{
	sb->store_failing = why != NULL;
	snprintf(sb->store_why, sizeof(sb->store_why), "%s",
	    why != NULL ? why : "");
}

/* A job whose PUT was not committed was never taken; see .h. */
int
switchboard_store_lost(struct switchboard *sb, const uint8_t *id,
    const char *why, uint64_t now)
{
	struct sb_job	*job;

	sb->now = now;
	job = table_find(&sb->routes, id, 0);
	if (job == NULL || !job->stored)
		return -ENOENT;
	job->stored = false;	/* not in the store: nothing to delete */
	if (job->state == SB_JOB_RUNNING) {
		job_answer(sb, job, JOB_STORE_FAILED, why);
		job_orphan(sb, job);
	} else
		job_finish(sb, job, JOB_STORE_FAILED, why);
	return 0;
}

/* Checks what a store gave back before it becomes a job. */
static bool
restore_valid(const struct sb_stored *s)
{
	return s->fn_len > 0 && s->fn_len <= PROTO_MAX_FN_LEN &&
	    memchr(s->fn, '\0', s->fn_len) == NULL &&
	    s->priority >= PROTO_PRIORITY_MIN &&
	    s->priority <= PROTO_PRIORITY_MAX &&
	    s->meta_len <= PROTO_MAX_META_RAW &&
	    s->unique_len <= PROTO_MAX_FN_LEN &&
	    s->retry_on_error <= SB_MAX_RETRY_ON_ERROR &&
	    s->backoff_ms <= SB_MAX_BACKOFF_MS;
}

/* Takes back a stored job at start; see switchboard.h. */
int
switchboard_restore(struct switchboard *sb, const struct sb_stored *s,
    uint64_t now)
{
	struct sb_job		*job;
	struct sb_job_ext	*x = NULL;
	struct sb_fn		*fn;
	struct packet		 key;
	bool			 delayed = !s->dead && s->due > now;
	bool			 queued = !s->dead && !delayed;

	sb->now = now;
	if (!restore_valid(s))
		return -EINVAL;
	if (table_find(&sb->routes, s->id, 0) != NULL)
		return -EEXIST;
	if ((fn = fn_get(sb, (const uint8_t *)s->fn, s->fn_len)) == NULL)
		return -ENOMEM;
	if ((job = job_alloc(sb, s->payload_len, s->meta_len)) == NULL) {
		fn_release(sb, fn);
		return -ENOMEM;
	}
	job->fn = fn;
	fn->njobs++;
	if ((s->timeout_ms > 0 || s->retry_on_error > 0 || s->unique_len > 0 ||
	    s->failures > 0 || s->error != NULL || s->dead) &&
	    (x = job_ext_make(sb, job)) == NULL)
		goto enomem;
	if (x != NULL) {
		x->timeout_ms = s->timeout_ms;
		x->max_retries = s->retry_on_error;
		x->failures = s->failures;
		x->backoff_ms = s->backoff_ms > 0 ? s->backoff_ms :
		    SB_DEFAULT_BACKOFF_MS;
		if (s->error != NULL &&
		    (x->last_error = strdup(s->error)) == NULL)
			goto enomem;
	}
	if ((queued && queue_reserve(&fn->queue, s->priority) != 0) ||
	    ((delayed || (queued && s->deadline > 0)) &&
	    heap_reserve(&sb->deadlines) != 0) ||
	    table_reserve(&sb->routes) != 0)
		goto enomem;

	memcpy(job->id, s->id, PROTO_ID_LEN);
	table_insert(&sb->routes, job);
	job->seq = sb->next_seq++;
	job->heap_idx = HEAP_NONE;
	job->priority = (int8_t)s->priority;
	job->detached = true;
	job->stored = true;
	job->attempt = s->attempts;
	/* One that was running with its last attempt runs once more. */
	job->max_attempts = s->max_attempts > s->attempts ? s->max_attempts :
	    s->attempts + 1;
	if (s->payload_len > 0)
		memcpy(job->payload, s->payload, s->payload_len);
	if (s->meta_len > 0)
		memcpy(job->payload + s->payload_len, s->meta, s->meta_len);
	if (s->unique_len > 0) {
		packet_init(&key, PKT_RUN);
		key.has = PF_UNIQUE;
		key.fn.ptr = (const uint8_t *)s->fn;
		key.fn.len = s->fn_len;
		key.unique.ptr = (const uint8_t *)s->unique;
		key.unique.len = s->unique_len;
		if (unique_find(sb, &key) == NULL)
			unique_register(sb, job, &key);
	}
	if (s->dead) {
		job->state = SB_JOB_DEAD;
		job->stamp = (uint32_t)now;
		TAILQ_INSERT_TAIL(&sb->dead, job, client_entry);
		sb->ndead++;
	} else if (delayed) {
		job->state = SB_JOB_DELAYED;
		job->has_timeout = true;
		heap_push(&sb->deadlines, job, s->due);
		fn->ndelayed++;
		sb->ndelayed++;
		job->stamp = (uint32_t)s->taken_at;	/* submitted then */
	} else {
		if (s->deadline > 0) {
			job->has_timeout = true;
			heap_push(&sb->deadlines, job, s->deadline);
		}
		job_enqueue(sb, job, now);
		/* detached_ttl counts from when it was taken. */
		job->stamp = (uint32_t)s->taken_at;
	}
	return 0;

enomem:
	job_free(sb, job);
	return -ENOMEM;
}

/*
 * results.c: the outcomes of finished detached jobs, for STATUS.
 *
 * Nobody waits for a detached job's RESULT, so when it ends its outcome
 * (status, error text and the worker's payload) is kept here, by id, for
 * result_ttl_ms, so that whoever knows the id can ask for it. The records
 * are in a hash by id and a list oldest first; a new record first gives
 * back the records that have expired, then the oldest ones until what
 * they hold (payload, error, the record) fits max_result_bytes. A record
 * that alone is larger than that is not kept. Allocation failure keeps
 * nothing and loses nothing else: the job has ended either way.
 */
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* Gives one record back. */
static void
result_free(struct switchboard *sb, struct sb_result *r)
{
	HASH_DEL(sb->results, r);
	TAILQ_REMOVE(&sb->result_list, r, entry);
	sb->result_bytes -= r->bytes;
	free(r->error);
	free(r);
}

/*
 * Gives back the records older than result_ttl_ms at now, then the oldest
 * ones while the records hold more than limit bytes.
 */
static void
results_trim(struct switchboard *sb, uint64_t now, uint64_t limit)
{
	struct sb_result	*r;

	while ((r = TAILQ_FIRST(&sb->result_list)) != NULL &&
	    (now - r->done_at >= sb->result_ttl_ms ||
	    sb->result_bytes > limit))
		result_free(sb, r);
}

/* Keeps a finished detached job's outcome; see internal.h. */
void
results_keep(struct switchboard *sb, const struct sb_job *job,
    enum job_status status, const void *error, size_t error_len,
    const void *payload, size_t payload_len)
{
	struct sb_result	*r, *old;
	size_t			 bytes = sizeof(*r) + payload_len +
				    (error != NULL ? error_len + 1 : 0);

	if (sb->result_ttl_ms == 0 || bytes > sb->max_result_bytes)
		return;
	results_trim(sb, sb->now, sb->max_result_bytes - bytes);
	if ((r = malloc(sizeof(*r) + payload_len)) == NULL)
		return;
	memset(r, 0, sizeof(*r));
	if (error != NULL && (r->error = malloc(error_len + 1)) == NULL) {
		free(r);
		return;
	}
	if (error != NULL) {
		memcpy(r->error, error, error_len);
		r->error[error_len] = '\0';
	}
	memcpy(r->id, job->id, PROTO_ID_LEN);
	r->fn = job->fn->st->name;
	r->status = (uint8_t)status;
	r->attempts = job->attempt;
	r->priority = job->priority;
	r->done_at = sb->now;
	r->payload_len = (uint32_t)payload_len;
	if (payload_len > 0)
		memcpy(r->payload, payload, payload_len);
	r->bytes = bytes;
	/* An id may be used again once its job has ended: the newest wins. */
	HASH_FIND(hh, sb->results, r->id, PROTO_ID_LEN, old);
	if (old != NULL)
		result_free(sb, old);
	HASH_ADD(hh, sb->results, id, PROTO_ID_LEN, r);
	if (r->hh.tbl == NULL) {
		free(r->error);
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&sb->result_list, r, entry);
	sb->result_bytes += bytes;
}

/* Frees every record (switchboard_free()). */
void
results_clear(struct switchboard *sb)
{
	struct sb_result	*r;

	while ((r = TAILQ_FIRST(&sb->result_list)) != NULL)
		result_free(sb, r);
}

/* Where job id is, and what it came to; see switchboard.h. */
void
switchboard_job_status(struct switchboard *sb, const uint8_t *id,
    uint64_t now, struct sb_job_status *ret)
{
	const struct sb_job	*job;
	struct sb_result	*r;
	struct sb_job_ext	*x;

	sb->now = now;
	memset(ret, 0, sizeof(*ret));
	if ((job = table_find(&sb->routes, id, 0)) != NULL) {
		ret->state = job->state == SB_JOB_QUEUED ? SB_STATE_QUEUED :
		    job->state == SB_JOB_DELAYED ? SB_STATE_DELAYED :
		    job->state == SB_JOB_DEAD ? SB_STATE_DEAD :
		    SB_STATE_RUNNING;
		if ((x = job_ext(sb, job)) != NULL)
			ret->error = x->last_error;
		ret->fn = job->fn->name;
		ret->attempts = job->attempt;
		ret->priority = job->priority;
		/* In its state: since queued, delayed, dispatched, dead. */
		ret->age_ms = (uint32_t)((uint32_t)now - job->stamp);
		return;
	}
	results_trim(sb, now, sb->max_result_bytes);
	HASH_FIND(hh, sb->results, id, PROTO_ID_LEN, r);
	if (r == NULL) {
		ret->state = SB_STATE_UNKNOWN;
		return;
	}
	ret->state = SB_STATE_DONE;
	ret->fn = r->fn;
	ret->attempts = r->attempts;
	ret->priority = r->priority;
	ret->age_ms = now - r->done_at;		/* since it ended */
	ret->status = (enum job_status)r->status;
	ret->error = r->error;
	ret->payload = r->payload;
	ret->payload_len = r->payload_len;
}

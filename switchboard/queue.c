/*
 * queue.c: a function's queue of jobs, by priority then arrival.
 *
 * A queue is a short array of priority levels, highest first, each a
 * doubly-linked list of its jobs in arrival order (seq). A job arrives at
 * the tail of its level and is dispatched from the head of the highest
 * one, so both are O(1) whatever the queue's length; only a job queued
 * again after its worker was lost walks its level from the tail, to go
 * back where its seq puts it. Levels are few (most functions use one), so
 * finding one is a short scan. A level is made before the job that needs
 * it is committed (queue_reserve(), which may fail), and goes when it
 * empties. The queue owns no job.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* The index of the level for priority, or where it would go (-1 - i). */
static long
queue_find(const struct sb_queue *q, int priority)
{
	uint32_t	i;

	for (i = 0; i < q->nlevels; i++) {
		if (q->levels[i].priority == priority)
			return (long)i;
		if (q->levels[i].priority < priority)
			break;
	}
	return -1 - (long)i;
}

/* Makes sure the level for priority exists, so that insert cannot fail. */
int
queue_reserve(struct sb_queue *q, int priority)
{
	struct sb_level	*v;
	long		 at = queue_find(q, priority);
	uint32_t	 i, cap;

	if (at >= 0)
		return 0;
	i = (uint32_t)(-1 - at);
	if (q->nlevels == q->cap) {
		cap = q->cap ? q->cap * 2 : 2;
		if ((v = realloc(q->levels, cap * sizeof(*v))) == NULL)
			return -ENOMEM;
		q->levels = v;
		q->cap = cap;
	}
	memmove(q->levels + i + 1, q->levels + i,
	    (q->nlevels - i) * sizeof(*q->levels));
	q->levels[i].priority = (int16_t)priority;
	q->levels[i].first = q->levels[i].last = NULL;
	q->nlevels++;
	return 0;
}

/* Puts job in its level (reserved), after every job with a smaller seq. */
void
queue_insert(struct sb_queue *q, struct sb_job *job)
{
	struct sb_level	*l = &q->levels[queue_find(q, job->priority)];
	struct sb_job	*after = l->last;

	/* New jobs go last; a requeued one goes back by its seq. */
	while (after != NULL && seq_before(job->seq, after->seq))
		after = after->q.prev;
	job->q.prev = after;
	job->q.next = after != NULL ? after->q.next : l->first;
	if (job->q.next != NULL)
		job->q.next->q.prev = job;
	else
		l->last = job;
	if (after != NULL)
		after->q.next = job;
	else
		l->first = job;
	q->n++;
	q->bytes += job->payload_len;
}

/* Takes job out of its level; a level left empty goes. */
void
queue_unlink(struct sb_queue *q, struct sb_job *job)
{
	long		 i = queue_find(q, job->priority);
	struct sb_level	*l = &q->levels[i];

	if (job->q.prev != NULL)
		job->q.prev->q.next = job->q.next;
	else
		l->first = job->q.next;
	if (job->q.next != NULL)
		job->q.next->q.prev = job->q.prev;
	else
		l->last = job->q.prev;
	q->n--;
	q->bytes -= job->payload_len;
	if (l->first == NULL) {
		memmove(l, l + 1, (q->nlevels - (uint32_t)i - 1) * sizeof(*l));
		q->nlevels--;
	}
}

/* The job to dispatch first: the oldest of the highest level. */
struct sb_job *
queue_first(const struct sb_queue *q)
{
	uint32_t	i;

	/* A level reserved for a job that went elsewhere may be empty. */
	for (i = 0; i < q->nlevels; i++)
		if (q->levels[i].first != NULL)
			return q->levels[i].first;
	return NULL;
}

/* Frees the levels (not the jobs). */
void
queue_clear(struct sb_queue *q)
{
	free(q->levels);
	memset(q, 0, sizeof(*q));
}

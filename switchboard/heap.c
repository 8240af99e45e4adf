/*
 * heap.c: the switchboard's deadlines, a binary min-heap.
 *
 * Each entry is a job with its deadline, ordered by deadline then arrival
 * (seq); the deadline lives in the entry, not in the job, so that only
 * jobs that have a timeout pay for it. A job keeps the index of its entry
 * (job->heap_idx) so that it can be removed from the middle in O(log n).
 * Growing is separate from pushing: callers reserve room first, while
 * failing is still harmless, and push only once the job is committed. The
 * heap owns no job.
 */
#include <errno.h>
#include <stdlib.h>

#include "switchboard/internal.h"

/* Makes room for one more element so that a later heap_push cannot fail. */
int
heap_reserve(struct sb_heap *h)
{
	struct sb_heap_entry	*v;
	uint32_t		 cap;

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

/* True when entry a is due before entry b. */
static inline bool
heap_before(const struct sb_heap_entry *a, const struct sb_heap_entry *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return seq_before(a->job->seq, b->job->seq);
}

/* Stores e at index i of the heap and records the index in its job. */
static inline void
heap_set(struct sb_heap *h, uint32_t i, struct sb_heap_entry e)
{
	h->v[i] = e;
	e.job->heap_idx = i;
}

/* Moves the entry at index i up while it goes before its parent. */
static void
heap_sift_up(struct sb_heap *h, uint32_t i)
{
	struct sb_heap_entry	e = h->v[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!heap_before(&e, &h->v[parent]))
			break;
		heap_set(h, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, i, e);
}

/* Moves the entry at index i down while a child goes before it. */
static void
heap_sift_down(struct sb_heap *h, uint32_t i)
{
	struct sb_heap_entry	e = h->v[i];

	for (;;) {
		uint32_t l = 2 * i + 1, c;

		if (l >= h->n)
			break;
		c = l;
		if (l + 1 < h->n && heap_before(&h->v[l + 1], &h->v[l]))
			c = l + 1;
		if (!heap_before(&h->v[c], &e))
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, e);
}

/* Inserts job due at deadline; the caller has reserved room. */
void
heap_push(struct sb_heap *h, struct sb_job *job, uint64_t deadline)
{
	heap_set(h, h->n++, (struct sb_heap_entry){ deadline, job });
	heap_sift_up(h, h->n - 1);
}

/* Removes job from the heap, wherever it is; a job not in it is ignored. */
void
heap_remove(struct sb_heap *h, struct sb_job *job)
{
	uint32_t		i = job->heap_idx;
	struct sb_heap_entry	last;

	if (i == HEAP_NONE)
		return;
	job->heap_idx = HEAP_NONE;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	heap_set(h, i, last);
	if (i > 0 && heap_before(&last, &h->v[(i - 1) / 2]))
		heap_sift_up(h, i);
	else
		heap_sift_down(h, i);
}

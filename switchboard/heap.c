/*
 * heap.c: the binary min-heap of jobs behind a function's queue and the
 * switchboard's deadlines.
 *
 * A heap holds pointers only and owns no job. The kind of a heap picks its
 * order (heap_before() in internal.h: priority then arrival for a queue,
 * deadline then arrival for the timeouts) and the slot of job->heap_idx
 * where each job keeps its current index, so that a job can be removed
 * from the middle in O(log n) and be in one heap of each kind at once.
 * Growing is separate from pushing: callers reserve room first, while
 * failing is still harmless, and push only once the job is committed.
 */
#include <errno.h>
#include <stdlib.h>

#include "switchboard/internal.h"

/* Makes room for one more element so that a later heap_push cannot fail. */
int
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
void
heap_push(struct sb_heap *h, enum sb_heap_kind kind, struct sb_job *job)
{
	heap_set(h, kind, h->n++, job);
	heap_sift_up(h, kind, h->n - 1);
}

/* Removes job from the heap, wherever it is; a job not in it is ignored. */
void
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

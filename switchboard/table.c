/*
 * table.c: jobs by id (the route table) and by id and attempt (each
 * worker's orphans), in open addressing.
 *
 * A table is an array of job pointers, probed linearly from the slot the
 * hash of the key maps to (a multiply and a shift, so that the size need
 * not be a power of two); a removed entry leaves a tombstone so that
 * probes carry on past it. It holds pointers only (8 bytes a slot, between
 * half and three quarters full: it grows by half when full), so a job
 * costs its table 11 to 16 bytes instead of a 56-byte handle inside the
 * job. It grows before an insert (table_reserve(), which may fail while
 * failing is harmless) and, once large, shrinks as it empties, so that a
 * burst of jobs leaves no large table behind. The table owns no job.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

#define TABLE_MIN	16			/* slots of a table in use */
#define TABLE_KEEP	4096			/* never shrunk below (32 KiB) */
#define TABLE_DEAD	((struct sb_job *)&table_dead)

static const char	table_dead;		/* its address marks a tombstone */

/* The first slot for a key: the id, and the attempt in an orphan table. */
static inline uint32_t
table_home(const struct sb_table *t, uint32_t cap, const uint8_t *id,
    uint32_t attempt)
{
	uint32_t	h = sb_hash(id, PROTO_ID_LEN);

	if (t->by_attempt)
		h ^= attempt * 0x9e3779b9u;
	return (uint32_t)(((uint64_t)h * cap) >> 32);
}

/* True when job has the key. */
static inline bool
table_match(const struct sb_table *t, const struct sb_job *job,
    const uint8_t *id, uint32_t attempt)
{
	uint64_t	a[2], b[2];

	/* Two word compares: memcmp() is a call for 16 bytes. */
	memcpy(a, job->id, PROTO_ID_LEN);
	memcpy(b, id, PROTO_ID_LEN);
	return a[0] == b[0] && a[1] == b[1] &&
	    (!t->by_attempt || job->attempt == attempt);
}

/* Rebuilds t with cap slots. 0 or -ENOMEM. */
static int
table_resize(struct sb_table *t, uint32_t cap)
{
	struct sb_job	**old = t->slots, **slots, *job;
	uint32_t	  oldcap = t->cap, i, j;

	if ((slots = calloc(cap, sizeof(*slots))) == NULL)
		return -ENOMEM;
	for (i = 0; i < oldcap; i++) {
		if ((job = old[i]) == NULL || job == TABLE_DEAD)
			continue;
		j = table_home(t, cap, job->id, job->attempt);
		while (slots[j] != NULL)
			j = j + 1 < cap ? j + 1 : 0;
		slots[j] = job;
	}
	free(old);
	t->slots = slots;
	t->cap = cap;
	t->used = t->n;
	return 0;
}

/* Makes room for one more entry; 0 or -ENOMEM (nothing changed). */
int
table_reserve(struct sb_table *t)
{
	uint32_t	cap = t->cap;

	if (cap != 0 && ((uint64_t)t->used + 1) * 4 <= (uint64_t)cap * 3)
		return 0;
	/* Grow by half when full of entries; rebuild when of tombstones. */
	if (cap == 0)
		cap = TABLE_MIN;
	else if (((uint64_t)t->n + 1) * 2 > cap)
		cap += cap / 2;
	if (cap > UINT32_MAX / 2)
		return -ENOMEM;
	return table_resize(t, cap);
}

/* Adds job (room reserved); its key must not be in t. */
void
table_insert(struct sb_table *t, struct sb_job *job)
{
	uint32_t	j = table_home(t, t->cap, job->id, job->attempt);

	while (t->slots[j] != NULL && t->slots[j] != TABLE_DEAD)
		j = j + 1 < t->cap ? j + 1 : 0;
	if (t->slots[j] == NULL)
		t->used++;
	t->slots[j] = job;
	t->n++;
}

/* The slot of the entry with the key, or -1. */
static long
table_slot(const struct sb_table *t, const uint8_t *id, uint32_t attempt)
{
	struct sb_job	*job;
	uint32_t	 j;

	if (t->n == 0)
		return -1;
	j = table_home(t, t->cap, id, attempt);
	while ((job = t->slots[j]) != NULL) {
		if (job != TABLE_DEAD && table_match(t, job, id, attempt))
			return (long)j;
		j = j + 1 < t->cap ? j + 1 : 0;
	}
	return -1;
}

/* The job with the key (attempt matters for an orphan table), or NULL. */
struct sb_job *
table_find(const struct sb_table *t, const uint8_t *id, uint32_t attempt)
{
	long	j = table_slot(t, id, attempt);

	return j >= 0 ? t->slots[j] : NULL;
}

/* Removes job, which is in t; shrinks a table that has mostly emptied. */
void
table_remove(struct sb_table *t, struct sb_job *job)
{
	long		j = table_slot(t, job->id, job->attempt);
	uint32_t	cap = t->cap;

	if (j < 0 || t->slots[j] != job)
		return;
	t->slots[j] = TABLE_DEAD;
	t->n--;
	/*
	 * Only a big table that has mostly emptied shrinks (to a quarter):
	 * a small one keeps its slots, so that the jobs of a steady stream
	 * coming and going never make it grow and shrink in turn.
	 */
	if (cap > TABLE_KEEP && (uint64_t)t->n * 8 < cap)
		(void)table_resize(t, cap / 4);	/* ENOMEM: stays as is */
	else if (t->n == 0 && t->used > cap / 2) {
		/* Empty: no tombstone needs to stay. */
		memset(t->slots, 0, cap * sizeof(*t->slots));
		t->used = 0;
	}
}

/* Frees the slots (not the jobs) and empties t. */
void
table_clear(struct sb_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->cap = t->n = t->used = 0;
}

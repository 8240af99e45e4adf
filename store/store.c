/*
 * store.c: batches of job changes over a backend, and what survives a
 * failed commit.
 *
 * A batch opens with the first change after a commit (backend begin) and
 * ends with store_commit(). Each change goes to the backend as it comes,
 * so a PUT's payload is copied once, into the backend's statement. Beside
 * it the store keeps a small record of every UPDATE and DEL (the redo
 * log) and the ids of the PUTs: when the commit fails, the backend rolls
 * the batch back; the PUTs are lost (the broker had held their ACCEPTED
 * back and refuses them now) and the redo log is what must still be
 * written, with every later UPDATE and DEL, once the store works again
 * (store_retry()). The log holds no payload: its records are about a
 * hundred bytes, and only jobs taken before the failure make any.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/util.h"

/* One UPDATE or DEL to write again after a failure. */
struct store_redo {
	enum sb_store_op	 op;
	uint8_t			 id[PROTO_ID_LEN];
	uint32_t		 attempts;
	uint32_t		 max_attempts;
	uint32_t		 failures;
	bool			 dead;
	uint64_t		 deadline;
	uint64_t		 due;
	char			*error;		/* or NULL */
};

struct store {
	const struct store_backend	*be;
	void				*state;
	bool				 fsync;		/* the PUTs' commits */
	bool				 open_batch;	/* begun */
	bool				 batch_failed;	/* a change failed */
	bool				 failing;	/* since a failed commit */
	char				 why[STORE_ERRLEN];
	struct store_redo		*redo;
	size_t				 nredo, redo_cap;
	uint8_t				*puts;		/* ids of the batch */
	size_t				 nputs, puts_cap;
	uint8_t				*lost;		/* of the failed one */
	size_t				 nlost;
};

/* Opens the store with the SQLite backend; see store.h. */
struct store *
store_open(const char *path, const struct store_options *o, char *err)
{
	struct store	*st;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, STORE_ERRLEN, "store %s: out of memory", path);
		return NULL;
	}
	st->be = &store_sqlite;
	st->fsync = o->fsync;
	if (st->be->open(path, o, &st->state, err) != 0) {
		free(st);
		return NULL;
	}
	return st;
}

/* Forgets the redo log. */
static void
store_redo_clear(struct store *st)
{
	for (size_t i = 0; i < st->nredo; i++)
		free(st->redo[i].error);
	st->nredo = 0;
}

/* Closes the store; see store.h. */
void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	if (st->open_batch)
		st->be->rollback(st->state);
	st->be->close(st->state);
	store_redo_clear(st);
	free(st->redo);
	free(st->puts);
	free(st->lost);
	free(st);
}

/* Gives back every stored job; see store.h. */
int
store_load(struct store *st, int (*cb)(const struct sb_stored *, void *),
    void *arg, char *err)
{
	return st->be->load(st->state, cb, arg, err);
}

/* How many jobs the store holds. */
int64_t
store_count(struct store *st)
{
	return st->be->count(st->state);
}

/* The batch's first change opens it; a failure fails the whole batch. */
static void
store_fail_batch(struct store *st, const char *why)
{
	if (!st->batch_failed)
		snprintf(st->why, sizeof(st->why), "%s", why);
	st->batch_failed = true;
}

/* Keeps an UPDATE or DEL in the redo log. */
static void
store_log(struct store *st, enum sb_store_op op, const struct sb_stored *job)
{
	struct store_redo	*r;

	if (array_grow(&st->redo, &st->redo_cap, st->nredo,
	    sizeof(*st->redo)) != 0) {
		store_fail_batch(st, "out of memory");
		return;
	}
	r = &st->redo[st->nredo];
	memset(r, 0, sizeof(*r));
	r->op = op;
	memcpy(r->id, job->id, PROTO_ID_LEN);
	if (op == SB_STORE_UPDATE) {
		r->attempts = job->attempts;
		r->max_attempts = job->max_attempts;
		r->failures = job->failures;
		r->dead = job->dead;
		r->deadline = job->deadline;
		r->due = job->due;
		if (job->error != NULL &&
		    (r->error = strdup(job->error)) == NULL) {
			store_fail_batch(st, "out of memory");
			return;
		}
	}
	st->nredo++;
}

/* Sends one change to the backend, opening the batch first. */
static void
store_send(struct store *st, enum sb_store_op op, const struct sb_stored *job)
{
	char	err[STORE_ERRLEN];
	int	r;

	if (st->batch_failed)
		return;		/* rolled back at the commit anyway */
	if (!st->open_batch) {
		if (st->be->begin(st->state, err) != 0) {
			store_fail_batch(st, err);
			return;
		}
		st->open_batch = true;
	}
	switch (op) {
	case SB_STORE_PUT:
		r = st->be->put(st->state, job, err);
		break;
	case SB_STORE_UPDATE:
		r = st->be->update(st->state, job, err);
		break;
	default:
		r = st->be->del(st->state, job->id, err);
		break;
	}
	if (r != 0)
		store_fail_batch(st, err);
}

/* One change in the current batch; see store.h. */
void
store_apply(struct store *st, enum sb_store_op op, const struct sb_stored *job)
{
	if (op == SB_STORE_PUT) {
		if (array_grow(&st->puts, &st->puts_cap, st->nputs,
		    PROTO_ID_LEN) != 0)
			store_fail_batch(st, "out of memory");
		else
			memcpy(st->puts + PROTO_ID_LEN * st->nputs++, job->id,
			    PROTO_ID_LEN);
		/* While failing, a PUT is lost at the next commit. */
		if (st->failing)
			st->batch_failed = true;
	} else
		store_log(st, op, job);
	if (!st->failing)
		store_send(st, op, job);
}

/* True when changes wait for store_commit(). */
bool
store_dirty(const struct store *st)
{
	/* While failing, UPDATEs and DELs only wait for store_retry(). */
	return st->nputs > 0 || st->open_batch || st->batch_failed;
}

/* Ends the batch; see store.h. */
int
store_commit(struct store *st, char *err)
{
	char	e[STORE_ERRLEN];

	if (!st->batch_failed && st->open_batch &&
	    st->be->commit(st->state, e) != 0)
		store_fail_batch(st, e);
	else if (!st->batch_failed && st->open_batch && st->fsync &&
	    st->nputs > 0 && st->be->sync(st->state, e) != 0) {
		/*
		 * Committed but maybe not on the disk: the PUTs are refused
		 * all the same, and deleted again once the store works.
		 */
		st->open_batch = false;
		for (size_t i = 0; i < st->nputs; i++) {
			struct sb_stored d = { .id = st->puts + i *
			    PROTO_ID_LEN };

			store_log(st, SB_STORE_DEL, &d);
		}
		store_fail_batch(st, e);
	} else if (!st->batch_failed && !st->failing) {
		st->open_batch = false;
		st->nputs = 0;
		store_redo_clear(st);
		return 0;
	}
	if (st->open_batch)
		st->be->rollback(st->state);
	st->open_batch = false;
	/* The batch's PUTs are lost; its UPDATEs and DELs wait in the log. */
	free(st->lost);
	st->lost = st->puts;
	st->nlost = st->nputs;
	st->puts = NULL;
	st->nputs = st->puts_cap = 0;
	st->batch_failed = false;
	st->failing = true;
	snprintf(err, STORE_ERRLEN, "%s", st->why);
	return -1;
}

/* The ids of the jobs the failed commit lost; see store.h. */
const uint8_t *
store_lost(const struct store *st, size_t *n)
{
	*n = st->nlost;
	return st->lost;
}

/* True from a failed commit until store_retry() succeeds. */
bool
store_failing(const struct store *st)
{
	return st->failing;
}

/* Writes the redo log again; see store.h. */
int
store_retry(struct store *st, uint64_t now, char *err)
{
	struct sb_stored	 s;
	int			 r = 0;

	if (!st->failing)
		return 0;
	if (st->be->begin(st->state, err) != 0)
		return -1;
	for (size_t i = 0; i < st->nredo && r == 0; i++) {
		const struct store_redo *d = &st->redo[i];

		memset(&s, 0, sizeof(s));
		s.id = d->id;
		if (d->op == SB_STORE_DEL) {
			r = st->be->del(st->state, d->id, err);
			continue;
		}
		s.attempts = d->attempts;
		s.max_attempts = d->max_attempts;
		s.failures = d->failures;
		s.dead = d->dead;
		s.deadline = d->deadline;
		s.due = d->due;
		s.error = d->error;
		r = st->be->update(st->state, &s, err);
	}
	if (r == 0)
		r = st->be->touch(st->state, now, err);
	if (r != 0 || st->be->commit(st->state, err) != 0) {
		st->be->rollback(st->state);
		return -1;
	}
	store_redo_clear(st);
	free(st->lost);
	st->lost = NULL;
	st->nlost = 0;
	st->failing = false;
	return 0;
}

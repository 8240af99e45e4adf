/*
 * unique.c: unique jobs, Gearman's coalescing.
 *
 * A RUN with `unique` names its job by its function and that key: while a
 * live job has the same pair, a new attached RUN joins it (its client gets
 * the job's RESULT under the RUN's own id) and a new detached one is
 * ACCEPTED as that job (the reply names the live job's id). The pairs are
 * in sb->uniques, one struct sb_unique per live job that has one (from its
 * side record, struct sb_job_ext); the joiners hang off it and off their
 * client, so that a client that goes away takes its joins with it. When
 * the job ends, every joiner gets its outcome and the pair is free again;
 * a job that goes to the dead list answers its joiners ERROR and frees the
 * pair (a new RUN then makes a new job).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"

/* Writes fn, a NUL and key into buf; returns the length. */
static size_t
unique_key(const struct pbytes *fn, const struct pbytes *key, char *buf)
{
	memcpy(buf, fn->ptr, fn->len);
	buf[fn->len] = '\0';
	memcpy(buf + fn->len + 1, key->ptr, key->len);
	return (size_t)fn->len + 1 + key->len;
}

/* The live job RUN run would join, or NULL; see internal.h. */
struct sb_unique *
unique_find(struct switchboard *sb, const struct packet *run)
{
	char			 key[2 * PROTO_MAX_FN_LEN + 2];
	struct sb_unique	*u;
	size_t			 len;

	if (!(run->has & PF_UNIQUE))
		return NULL;
	len = unique_key(&run->fn, &run->unique, key);
	HASH_FIND(hh, sb->uniques, key, len, u);
	return u;
}

/*
 * Adds client c, for its RUN id, to u's joiners; see internal.h. A join
 * counts as one of the client's live jobs (max_jobs_per_client), and a job
 * takes at most max_queue joiners.
 */
int
unique_join(struct switchboard *sb, struct sb_unique *u, struct sb_client *c,
    const uint8_t *id)
{
	struct sb_joiner	*j;

	if (u->njoiners >= sb->max_queue)
		return -ENOBUFS;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	u->njoiners++;
	c->njobs++;
	j->client = c;
	j->unique = u;
	memcpy(j->id, id, PROTO_ID_LEN);
	j->next = u->joiners;
	u->joiners = j;
	TAILQ_INSERT_TAIL(&c->joins, j, client_entry);
	return 0;
}

/* Registers job under run's key; see internal.h. */
void
unique_register(struct switchboard *sb, struct sb_job *job,
    const struct packet *run)
{
	struct sb_job_ext	*x;
	struct sb_unique	*u;
	size_t			 len;

	if (!(run->has & PF_UNIQUE) || (x = job_ext(sb, job)) == NULL)
		return;
	len = (size_t)run->fn.len + 1 + run->unique.len;
	if ((u = calloc(1, sizeof(*u) + len)) == NULL)
		return;		/* it runs, just not coalesced */
	u->job = job;
	u->keylen = (uint32_t)unique_key(&run->fn, &run->unique, u->key);
	HASH_ADD(hh, sb->uniques, key[0], u->keylen, u);
	if (u->hh.tbl == NULL) {
		free(u);
		return;
	}
	x->unique = u;
}

/* Frees u, out of the table; its joiners must be gone. */
static void
unique_free(struct switchboard *sb, struct sb_unique *u)
{
	HASH_DEL(sb->uniques, u);
	free(u);
}

/* Tells every joiner of job its outcome and frees the key; see .h. */
void
unique_finish(struct switchboard *sb, struct sb_job *job,
    enum job_status status, const void *error, size_t error_len,
    const void *payload, size_t payload_len)
{
	struct sb_job_ext	*x = job_ext(sb, job);
	struct sb_unique	*u;
	struct sb_joiner	*j;
	struct packet		 p;

	if (x == NULL || (u = x->unique) == NULL)
		return;
	while ((j = u->joiners) != NULL) {
		u->joiners = j->next;
		TAILQ_REMOVE(&j->client->joins, j, client_entry);
		j->client->njobs--;
		packet_init(&p, PKT_RESULT);
		memcpy(p.id, j->id, PROTO_ID_LEN);
		p.status = status;
		p.attempts = job->attempt;
		if (payload_len > 0) {
			p.has |= PF_PAYLOAD;
			p.payload.ptr = payload;
			p.payload.len = (uint32_t)payload_len;
		}
		if (error != NULL) {
			p.has |= PF_ERROR;
			p.error.ptr = error;
			p.error.len = (uint32_t)error_len;
		}
		sb_send(sb, j->client->ctx, &p);
		free(j);
	}
	unique_free(sb, u);
	x->unique = NULL;
}

/* Forgets u and its joiners without a word (the job is being freed). */
void
unique_drop(struct switchboard *sb, struct sb_unique *u)
{
	struct sb_joiner	*j;

	while ((j = u->joiners) != NULL) {
		u->joiners = j->next;
		TAILQ_REMOVE(&j->client->joins, j, client_entry);
		j->client->njobs--;
		free(j);
	}
	unique_free(sb, u);
}

/* A client goes: its joins go with it; see internal.h. */
void
unique_client_gone(struct switchboard *sb, struct sb_client *c)
{
	struct sb_joiner	*j, **pp;

	(void)sb;
	while ((j = TAILQ_FIRST(&c->joins)) != NULL) {
		TAILQ_REMOVE(&c->joins, j, client_entry);
		for (pp = &j->unique->joiners; *pp != j; pp = &(*pp)->next)
			;
		*pp = j->next;
		j->unique->njoiners--;
		c->njobs--;
		free(j);
	}
}

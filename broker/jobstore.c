/*
 * jobstore.c: the broker's side of the durable store (store/store.h).
 *
 * The switchboard tells the store callback here of every change to a
 * detached job; this converts its times from the monotonic clock to Unix
 * ms and hands it to the store, which writes it in the turn's open
 * transaction. The first change (or held ACCEPTED) of an event loop turn
 * makes the commit event active; libevent runs it after the callbacks
 * already active in that turn, so one transaction, one fsync, covers
 * everything that turn read (group commit). Nothing the turn produced
 * leaves before it: the turn's ACCEPTEDs are held here, and every other
 * output waits in its connection (conn_hold_output()), so that a client
 * hears ACCEPTED only for a job that is on disk and a worker starts an
 * attempt only once the store knows of it (a job re-run after a crash
 * always has a higher attempt). A job taken this turn is not dispatched
 * before the commit at all (switchboard_store_committed()): if the commit
 * fails, no worker has it.
 *
 * When a commit fails (a full disk, an I/O error), the jobs PUT in that
 * turn were never taken: the switchboard forgets them
 * (switchboard_store_lost()), their held ACCEPTEDs become RESULT
 * STORE_FAILED, and every later detached RUN is refused STORE_FAILED
 * (switchboard_store_failing()) until the sweep's store_retry() writes
 * what changed meanwhile. Attached jobs never touch the store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <uuid/uuid.h>

#include "broker/broker.h"
#include "store/store.h"

/* A detached RUN's ACCEPTED, waiting for the turn's commit. */
struct jobstore_ack {
	struct peer	*peer;			/* NULL: it went away */
	uint8_t		 id[PROTO_ID_LEN];
	uint8_t		 joined[PROTO_ID_LEN];
	bool		 has_joined;
};

struct jobstore {
	struct server		*srv;
	struct store		*store;
	char			*path;
	struct event		*commit_ev;
	bool			 scheduled;	/* commit_ev is active */
	struct jobstore_ack	*acks;
	size_t			 nacks, acks_cap;
	uint64_t		 commits;	/* with changes in them */
	uint64_t		 commit_failures;
	/* Restore (jobstore_open()): now on both clocks, and counts. */
	uint64_t		 mono_now, wall_now;
	uint64_t		 restored, skipped;
};

/* What a client is told when its detached RUN cannot be stored. */
static const char jobstore_refusal[] =
    "the broker cannot write its store (see its log): detached jobs are "
    "refused until it can";

/*
 * A time t on one clock (0: none) on another, given both read now: past
 * or future, at least 1 (0 would mean none).
 */
static uint64_t
jobstore_convert(uint64_t t, uint64_t from_now, uint64_t to_now)
{
	uint64_t	back;

	if (t == 0)
		return 0;
	if (t >= from_now)
		return to_now + (t - from_now);
	back = from_now - t;
	return back < to_now ? to_now - back : 1;
}

/* Makes the commit event run at the end of this turn. */
static void
jobstore_schedule(struct jobstore *js)
{
	if (!js->scheduled) {
		js->scheduled = true;
		event_active(js->commit_ev, EV_TIMEOUT, 0);
	}
}

/* The switchboard's callback: one change of a stored job. */
static void
jobstore_sb_cb(enum sb_store_op op, const struct sb_stored *job, void *arg)
{
	struct jobstore	*js = arg;
	struct sb_stored w = *job;
	uint64_t	 mono, wall;

	if (op != SB_STORE_DEL && (w.deadline | w.due | w.taken_at) != 0) {
		mono = clock_now_ms();
		wall = clock_wall_ms();
		w.deadline = jobstore_convert(w.deadline, mono, wall);
		w.due = jobstore_convert(w.due, mono, wall);
		w.taken_at = jobstore_convert(w.taken_at, mono, wall);
	}
	store_apply(js->store, op, &w);
	/* Nothing this turn produced leaves before its commit. */
	conn_hold_output(true);
	jobstore_schedule(js);
}

/* Sends RESULT {id, STORE_FAILED} where an ACCEPTED was held. */
static void
jobstore_refuse(struct peer *p, const uint8_t *id)
{
	struct packet	pkt;

	packet_init(&pkt, PKT_RESULT);
	memcpy(pkt.id, id, PROTO_ID_LEN);
	pkt.status = JOB_STORE_FAILED;
	pkt.has = PF_ERROR;
	pkt.error.ptr = (const uint8_t *)jobstore_refusal;
	pkt.error.len = sizeof(jobstore_refusal) - 1;
	conn_send(p->conn, &pkt);
}

/* Sends the held ACCEPTEDs (ok) or their STORE_FAILED, and forgets them. */
static void
jobstore_flush_acks(struct jobstore *js, bool ok)
{
	struct packet	pkt;

	for (size_t i = 0; i < js->nacks; i++) {
		struct jobstore_ack *a = &js->acks[i];

		if (a->peer == NULL)
			continue;
		if (!ok) {
			jobstore_refuse(a->peer, a->id);
			continue;
		}
		packet_init(&pkt, PKT_ACCEPTED);
		memcpy(pkt.id, a->id, PROTO_ID_LEN);
		if (a->has_joined) {
			pkt.has |= PF_JOINED;
			memcpy(pkt.joined, a->joined, PROTO_ID_LEN);
		}
		conn_send(a->peer->conn, &pkt);
	}
	js->nacks = 0;
}

/* The end of a turn: commit, then answer the turn's detached RUNs. */
static void
jobstore_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct jobstore	*js = arg;
	struct server	*srv = js->srv;
	char		 err[STORE_ERRLEN];
	const uint8_t	*lost;
	size_t		 nlost;
	uint64_t	 now;
	bool		 dirty;

	(void)fd; (void)what;
	js->scheduled = false;
	now = clock_now_ms();
	dirty = store_dirty(js->store);
	if (!dirty || store_commit(js->store, err) == 0) {
		js->commits += dirty;
		jobstore_flush_acks(js, true);
	} else {
		js->commit_failures++;
		log_warnx("%s; detached jobs are refused (STORE_FAILED) until "
		    "it can write again", err);
		switchboard_store_failing(srv->sb, jobstore_refusal);
		lost = store_lost(js->store, &nlost);
		for (size_t i = 0; i < nlost; i++)
			switchboard_store_lost(srv->sb, lost + i *
			    PROTO_ID_LEN, jobstore_refusal, now);
		jobstore_flush_acks(js, false);
	}
	/*
	 * The jobs taken this turn go to workers now; their dispatch is the
	 * next turn's change, and holds the output again until committed.
	 */
	switchboard_store_committed(srv->sb, now);
	if (!js->scheduled)
		conn_hold_output(false);
}

/* Holds an ACCEPTED until the turn's commit; see broker.h. */
bool
jobstore_hold_ack(struct server *srv, struct peer *p, const struct packet *pkt)
{
	struct jobstore		*js = srv->js;
	struct jobstore_ack	*a;

	if (js == NULL)
		return false;
	/* No room to hold it: it is not known to be stored. */
	if (array_grow(&js->acks, &js->acks_cap, js->nacks,
	    sizeof(*js->acks)) != 0) {
		jobstore_refuse(p, pkt->id);
		return true;
	}
	a = &js->acks[js->nacks++];
	a->peer = p;
	memcpy(a->id, pkt->id, PROTO_ID_LEN);
	a->has_joined = (pkt->has & PF_JOINED) != 0;
	if (a->has_joined)
		memcpy(a->joined, pkt->joined, PROTO_ID_LEN);
	jobstore_schedule(js);
	return true;
}

/* Peer p is gone; see broker.h. */
void
jobstore_peer_gone(struct server *srv, struct peer *p)
{
	struct jobstore	*js = srv->js;

	if (js == NULL)
		return;
	for (size_t i = 0; i < js->nacks; i++)
		if (js->acks[i].peer == p)
			js->acks[i].peer = NULL;
}

/* Tries a failing store again; see broker.h. */
void
jobstore_sweep(struct server *srv)
{
	struct jobstore	*js = srv->js;
	char		 err[STORE_ERRLEN];

	if (js == NULL || !store_failing(js->store))
		return;
	if (store_retry(js->store, clock_wall_ms(), err) != 0) {
		log_debug("%s", err);
		return;
	}
	log_info("store %s: writing again; detached jobs are taken again",
	    js->path);
	switchboard_store_failing(srv->sb, NULL);
}

/* What the store has done; see broker.h. */
bool
jobstore_stats(const struct server *srv, struct jobstore_stats *ret)
{
	const struct jobstore	*js = srv->js;

	if (js == NULL)
		return false;
	ret->path = js->path;
	ret->failing = store_failing(js->store);
	ret->commits = js->commits;
	ret->commit_failures = js->commit_failures;
	ret->restored = js->restored;
	return true;
}

/* One stored job back into the switchboard (store_load()'s callback). */
static int
jobstore_restore_one(const struct sb_stored *job, void *arg)
{
	struct jobstore	*js = arg;
	struct sb_stored m = *job;
	char		 id[37];
	int		 r;

	m.deadline = jobstore_convert(m.deadline, js->wall_now, js->mono_now);
	m.due = jobstore_convert(m.due, js->wall_now, js->mono_now);
	m.taken_at = jobstore_convert(m.taken_at, js->wall_now, js->mono_now);
	r = switchboard_restore(js->srv->sb, &m, js->mono_now);
	if (r == -ENOMEM)
		return -ENOMEM;
	if (r != 0) {
		uuid_unparse_lower(job->id, id);
		log_warnx("store %s: job %s skipped: %s", js->path, id,
		    r == -EEXIST ? "its id is there twice" :
		    "a field is out of range");
		js->skipped++;
		return 0;
	}
	js->restored++;
	return 0;
}

/* Opens the store and takes its jobs back; see broker.h. */
int
jobstore_open(struct server *srv, const char *path, bool fsync, char *err)
{
	struct store_options	 o = { .fsync = fsync };
	struct jobstore		*js;
	struct sb_stats		 st;
	char			 e[STORE_ERRLEN], skipped[40];
	uint64_t		 t0 = clock_now_ms();
	int			 r;

	if ((js = calloc(1, sizeof(*js))) == NULL ||
	    (js->path = strdup(path)) == NULL) {
		free(js);
		snprintf(err, UTIL_ERRLEN, "store %s: out of memory", path);
		return -1;
	}
	js->srv = srv;
	if ((js->store = store_open(path, &o, e)) == NULL) {
		snprintf(err, UTIL_ERRLEN, "%s", e);
		goto fail;
	}
	if ((js->commit_ev = event_new(srv->base, -1, 0, jobstore_commit_cb,
	    js)) == NULL) {
		snprintf(err, UTIL_ERRLEN, "store %s: out of memory", path);
		goto fail;
	}
	js->mono_now = clock_now_ms();
	js->wall_now = clock_wall_ms();
	if ((r = store_load(js->store, jobstore_restore_one, js, e)) != 0) {
		snprintf(err, UTIL_ERRLEN, "%s", r == -ENOMEM ? "out of "
		    "memory taking the stored jobs back" : e);
		goto fail;
	}
	srv->js = js;
	switchboard_set_store_cb(srv->sb, jobstore_sb_cb, js);
	switchboard_stats(srv->sb, &st);
	skipped[0] = '\0';
	if (js->skipped > 0)
		snprintf(skipped, sizeof(skipped), "; %llu skipped",
		    (unsigned long long)js->skipped);
	log_info("store %s: %llu jobs taken back (%u queued, %u delayed, %u "
	    "dead%s) in %llu ms%s", path, (unsigned long long)js->restored,
	    st.queued, st.delayed, st.dead, skipped,
	    (unsigned long long)(clock_now_ms() - t0),
	    fsync ? "" : "; store_fsync = no: a power loss may lose the last "
	    "jobs taken");
	return 0;

fail:
	if (js->commit_ev != NULL)
		event_free(js->commit_ev);
	store_close(js->store);
	free(js->path);
	free(js);
	return -1;
}

/* Commits what is left and closes; see broker.h. */
void
jobstore_close(struct server *srv)
{
	struct jobstore	*js = srv->js;
	char		 err[STORE_ERRLEN];

	if (js == NULL)
		return;
	if (store_failing(js->store) &&
	    store_retry(js->store, clock_wall_ms(), err) != 0)
		log_warnx("%s: at exit: the jobs that ended since it failed "
		    "are still in it and run again at the next start", err);
	else if (store_dirty(js->store) && store_commit(js->store, err) != 0)
		log_warnx("%s: at exit", err);
	log_info("store %s: %lld jobs kept for the next start", js->path,
	    (long long)store_count(js->store));
	switchboard_set_store_cb(srv->sb, NULL, NULL);
	conn_hold_output(false);
	event_free(js->commit_ev);
	store_close(js->store);
	free(js->acks);
	free(js->path);
	free(js);
	srv->js = NULL;
}

/*
 * internal.h: what the files of switchboard/ share; nothing else includes it.
 *
 * The routing state is one struct switchboard owning clients, workers,
 * functions (struct sb_fn, each with its queue and its registered workers)
 * and jobs. heap.c owns the binary heap that orders a function's queue and
 * the switchboard's deadlines. fn.c owns functions and registrations and
 * matches queued jobs with free worker slots. job.c owns a job's life from
 * queued to running to its terminal answer, and every packet sent. store.c
 * tells a durable store (the owner's callback) of each detached job's
 * changes and takes the stored jobs back at start. The
 * public entry points of switchboard.h, in switchboard.c, drive the rest.
 * Helpers on the dispatch path that are too small to be worth a call are
 * static inline here so that splitting the files costs nothing.
 */
#ifndef PATCHBAY_SWITCHBOARD_INTERNAL_H
#define PATCHBAY_SWITCHBOARD_INTERNAL_H

#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>

#include "util/util.h"

/*
 * The hash of every table (routes by id, orphans by id and attempt,
 * functions by name): a few multiplications per 8 bytes instead of
 * uthash's Jenkins hash, keyed by a per-process seed (switchboard_new()'s
 * config) so that a peer cannot pick ids that all land in one bucket
 * without knowing it.
 */
extern uint64_t	sb_hash_seed;

/* Hashes len bytes at key with sb_hash_seed (util/'s hash_bytes()). */
static inline uint32_t
sb_hash(const void *key, size_t len)
{
	return hash_bytes(key, len, sb_hash_seed);
}

#define HASH_FUNCTION(keyptr, keylen, hashv)				\
	((hashv) = sb_hash((keyptr), (size_t)(keylen)))

/* uthash must report allocation failures instead of calling exit(). */
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "switchboard/switchboard.h"

#define HEAP_NONE	UINT32_MAX

/* Where a job is in its life. */
enum sb_job_state {
	SB_JOB_QUEUED,
	SB_JOB_RUNNING,
	SB_JOB_ORPHAN,
	SB_JOB_DELAYED,		/* in sb->deadlines until it is due */
	SB_JOB_DEAD,		/* on sb->dead: retries used up */
};

/*
 * What few jobs need, kept beside the job rather than in every one
 * (sb->exts, keyed by the job's address, when job->has_ext): the timeout a
 * delayed or retried job starts when it is due, and a detached job's
 * retries after its worker's ERROR (retry_on_error).
 */
struct sb_unique;

struct sb_job_ext {
	UT_hash_handle		 hh;
	struct sb_job		*job;
	struct sb_unique	*unique;	/* its coalescing key, or NULL */
	uint64_t		 timeout_ms;	/* 0: none */
	uint32_t		 max_retries;	/* retry_on_error; 0: none */
	uint32_t		 failures;	/* ERRORs so far */
	uint64_t		 backoff_ms;	/* before the first retry */
	char			*last_error;	/* or NULL */
};

/* A job with a timeout and when it is due: an entry of sb->deadlines. */
struct sb_heap_entry {
	uint64_t		 deadline;
	struct sb_job		*job;
};

/* A binary min-heap of deadlines (heap.c). */
struct sb_heap {
	struct sb_heap_entry	*v;
	uint32_t		 n;
	uint32_t		 cap;
};

/*
 * True when arrival number a came before b. Arrival numbers wrap after
 * 2^32 jobs; two jobs alive at once are never that far apart.
 */
static inline bool
seq_before(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

/* A job whose payload and meta are this small lives in a slab record. */
#define SB_SMALL_PAYLOAD	16
#define SB_RECORD_SIZE		(sizeof(struct sb_job) + SB_SMALL_PAYLOAD)
#define SB_SLAB_SIZE		(64 * 1024)

/* A block of small-job records (job.c). */
struct sb_slab {
	struct sb_slab		*next;
};

/* One job, owned by the switchboard from RUN until it is freed. */
struct sb_job {
	/* Keyed in sb->routes while live, in worker->orphans once an orphan. */
	uint8_t			 id[PROTO_ID_LEN];
	/* client->jobs while live; sb->dead for a dead (detached) one */
	TAILQ_ENTRY(sb_job)	 client_entry;
	union {
		/* worker->jobs, while running or orphaned */
		TAILQ_ENTRY(sb_job) worker_entry;
		/* its level of its function's queue, while queued */
		struct {
			struct sb_job	*next;
			struct sb_job	*prev;
		} q;
	};
	struct sb_fn		*fn;		/* holds a reference (njobs) */
	struct sb_client	*client;	/* NULL: detached or orphaned */
	struct sb_worker	*worker;	/* while running or orphaned */
	uint32_t		 seq;		/* arrival order, kept on requeue */
	uint32_t		 heap_idx;	/* in sb->deadlines, or HEAP_NONE */
	uint32_t		 attempt;	/* dispatches so far */
	uint32_t		 max_attempts;	/* 1 + retries */
	uint32_t		 payload_len;
	uint32_t		 stamp;		/* the clock's low 32 bits when
						   queued, then dispatched */
	/*
	 * The RUN's meta map as it arrived (PROTO_MAX_META_RAW bytes at
	 * most), after the payload in the same allocation; 0: none. It and
	 * priority (-100..100) fit in what was padding, so a job without
	 * meta is no bigger for it.
	 */
	uint16_t		 meta_len;
	int8_t			 priority;
	uint8_t			 state;		/* enum sb_job_state */
	/* One byte of flags: a queued job is a slab record, every byte counts. */
	bool			 has_timeout : 1; /* in sb->deadlines */
	bool			 detached : 1;
	bool			 cancel_requested : 1;
	bool			 hashed : 1;	/* in the orphan table */
	bool			 has_ext : 1;	/* in sb->exts */
	bool			 stored : 1;	/* told to the store (PUT) */
	bool			 fresh : 1;	/* its PUT is not committed:
						   not dispatched yet */
	uint8_t			 payload[];	/* payload_len, then meta_len */
};
_Static_assert(PROTO_MAX_META_RAW <= UINT16_MAX, "meta_len holds any meta");
/* A queued small job is this plus 16 bytes: docs/benchmarks.md, Memory. */
_Static_assert(sizeof(struct sb_job) <= 104 || sizeof(void *) != 8,
    "what few jobs need goes in struct sb_job_ext, not in every job");

TAILQ_HEAD(sb_job_list, sb_job);

/* One priority level of a queue: its jobs, oldest first. */
struct sb_level {
	struct sb_job		*first;
	struct sb_job		*last;
	int16_t			 priority;
};

/* A function's queue (queue.c): levels by priority, highest first. */
struct sb_queue {
	struct sb_level		*levels;
	uint32_t		 nlevels;
	uint32_t		 cap;
	uint32_t		 n;		/* jobs */
	uint64_t		 bytes;		/* their payloads */
};

/*
 * Jobs by id, or by id and attempt (table.c): open addressing over an
 * array of job pointers.
 */
struct sb_table {
	struct sb_job		**slots;
	uint32_t		  cap;		/* slots */
	uint32_t		  n;		/* entries */
	uint32_t		  used;		/* entries and tombstones */
	bool			  by_attempt;	/* key: id and attempt */
};

/* A worker's registration for one function; lives in worker->regs. */
struct sb_reg {
	TAILQ_ENTRY(sb_reg)	 fn_entry;	/* fn->workers */
	struct sb_fn		*fn;
	struct sb_worker	*worker;
};

/*
 * The outcomes and times of one function name (stats.c): made with its
 * first function, kept after it, SB_MAX_FN_STATS at most.
 */
struct sb_fn_stats {
	UT_hash_handle		 hh;		/* sb->fn_stats, keyed by name */
	uint64_t		 results[JOB__MAX];
	uint64_t		 rejected;
	struct sb_hist		 wait;
	struct sb_hist		 run;
	uint32_t		 name_len;
	char			 name[];
};

/*
 * A function name with its queue and its workers. Owned by the
 * switchboard; freed once nothing refers to it (no worker, no job) and its
 * no-worker clock is not running.
 */
struct sb_fn {
	UT_hash_handle		 hh;		/* sb->fns, keyed by name */
	struct sb_queue		 queue;
	TAILQ_HEAD(, sb_reg)	 workers;
	struct sb_reg		*cursor;	/* round-robin start; NULL: first */
	uint32_t		 nworkers;
	uint32_t		 running;	/* live jobs running */
	uint32_t		 njobs;		/* jobs pointing here, any state */
	uint32_t		 standby;	/* on-demand pools that serve it */
	uint32_t		 ndelayed;	/* delayed jobs, not yet due */
	bool			 idle;		/* no_worker_since is set */
	bool			 draining;	/* on a worker_remove drain list */
	uint64_t		 no_worker_since;
	TAILQ_ENTRY(sb_fn)	 idle_entry;	/* sb->idle_fns, when idle */
	SLIST_ENTRY(sb_fn)	 drain_entry;
	uint64_t		 reg_gen;	/* de-duplicates a REGISTER */
	struct sb_fn_stats	*st;		/* its outcomes; never NULL */
	uint32_t		 name_len;
	char			 name[];	/* NUL-terminated */
};

SLIST_HEAD(sb_fn_slist, sb_fn);

/* A finished detached job's outcome, kept for STATUS (results.c). */
struct sb_result {
	UT_hash_handle		 hh;		/* sb->results, keyed by id */
	TAILQ_ENTRY(sb_result)	 entry;		/* sb->result_list, oldest
						   first */
	uint8_t			 id[PROTO_ID_LEN];
	const char		*fn;		/* its stats record's name */
	uint8_t			 status;	/* enum job_status */
	int8_t			 priority;
	uint32_t		 attempts;
	uint64_t		 done_at;
	char			*error;		/* or NULL */
	size_t			 bytes;		/* against max_result_bytes */
	uint32_t		 payload_len;
	uint8_t			 payload[];
};

/* A client waiting for another's job's outcome (unique.c). */
struct sb_joiner {
	struct sb_joiner	*next;		/* in its unique's list */
	TAILQ_ENTRY(sb_joiner)	 client_entry;	/* its client's joins */
	struct sb_client	*client;
	struct sb_unique	*unique;
	uint8_t			 id[PROTO_ID_LEN];	/* its RUN's */
};

/* A live job's function and unique key (sb->uniques), and its joiners. */
struct sb_unique {
	UT_hash_handle		 hh;
	struct sb_job		*job;
	struct sb_joiner	*joiners;
	uint32_t		 njoiners;	/* at most max_queue */
	uint32_t		 keylen;
	char			 key[];		/* fn, NUL, unique */
};

/* A connected client; owned by the switchboard, freed on remove. */
struct sb_client {
	TAILQ_ENTRY(sb_client)	 entry;		/* sb->clients */
	void			*ctx;
	struct sb_job_list	 jobs;		/* live, non-detached */
	uint32_t		 njobs;		/* of them */
	TAILQ_HEAD(, sb_joiner)	 joins;		/* unique jobs it joined */
};

/* A connected worker; owned by the switchboard, freed on remove. */
struct sb_worker {
	TAILQ_ENTRY(sb_worker)	 entry;		/* sb->workers, as added */
	void			*ctx;
	uint32_t		 capacity;
	uint32_t		 in_flight;	/* running and orphans */
	bool			 paused;
	uint32_t		 nregs;
	struct sb_reg		*regs;
	const char		**fn_names;	/* point into the fns */
	struct sb_job_list	 jobs;		/* running and orphans */
	struct sb_table		 orphans;	/* by id and attempt */
	uint64_t		 completed;
};

/* The whole routing state. */
struct switchboard {
	sb_send_cb		 send;
	void			*arg;
	sb_job_end_cb		 job_end;	/* or NULL */
	void			*job_end_arg;
	uint32_t		 max_queue;
	uint64_t		 max_queue_bytes;	/* 0: none */
	uint64_t		 max_memory;		/* 0: none */
	uint32_t		 max_jobs_per_client;	/* 0: none */
	uint64_t		 payload_bytes;	/* of every job not yet freed */
	uint64_t		 external_bytes; /* the owner's, for max_memory */
	uint64_t		 no_worker_wait_ms;
	uint64_t		 detached_ttl_ms;
	uint64_t		 result_ttl_ms;
	uint64_t		 max_result_bytes;
	struct sb_result	*results;	/* by id */
	TAILQ_HEAD(, sb_result)	 result_list;	/* oldest first */
	uint64_t		 result_bytes;
	struct sb_job_ext	*exts;		/* by job address */
	struct sb_unique	*uniques;	/* by fn and unique key */
	struct sb_job_list	 dead;		/* oldest first */
	uint32_t		 ndead;
	uint32_t		 max_dead;
	uint64_t		 rng;		/* backoff jitter */
	bool			 shutting_down;
	bool			 refusing;	/* switchboard_refuse_new() */
	char			 refusal[PROTO_ERRLEN];
	sb_store_cb		 store;		/* or NULL */
	void			*store_arg;
	bool			 store_failing;	/* switchboard_store_failing() */
	char			 store_why[PROTO_ERRLEN];
	uint8_t			*fresh;		/* ids of the fresh jobs */
	size_t			 nfresh, fresh_cap;

	struct sb_table		 routes;	/* live jobs by id */
	struct sb_fn		*fns;		/* by name */
	struct sb_heap		 deadlines;
	TAILQ_HEAD(, sb_worker)	 workers;
	TAILQ_HEAD(, sb_client)	 clients;
	TAILQ_HEAD(, sb_fn)	 idle_fns;	/* no_worker_since set */

	uint32_t		 next_seq;
	uint64_t		 reg_gen;
	uint32_t		 nqueued;
	uint32_t		 nrunning;
	uint32_t		 ndelayed;
	uint32_t		 nworkers;
	uint32_t		 nclients;
	struct sb_stats		 stats;		/* the counters only */
	/* Small jobs' memory (job.c): slabs of equal records, a free list. */
	struct sb_slab		*slabs;
	void			*free_records;
	uint32_t		 live_records;
	uint32_t		 live_jobs;	/* records and malloc'd */
	uint32_t		 jobs_peak;	/* most live_jobs since the
						   last switchboard_trim() */
	/* Outcomes (stats.c): per function name, and the recent ones. */
	struct sb_fn_stats	*fn_stats;	/* by name */
	struct sb_fn_stats	*fn_other;	/* past SB_MAX_FN_STATS */
	struct sb_outcome	 outcomes[SB_OUTCOMES];	/* a ring */
	uint32_t		 noutcomes;	/* ever recorded */
	uint64_t		 now;		/* the last clock reading given */
};

/* heap.c */

/* Makes room for one more entry so that a later heap_push cannot fail. */
int	 heap_reserve(struct sb_heap *h);

/* Inserts job due at deadline; the caller has reserved room. */
void	 heap_push(struct sb_heap *h, struct sb_job *job, uint64_t deadline);

/* Removes job from the heap, wherever it is; no-op when it is not in it. */
void	 heap_remove(struct sb_heap *h, struct sb_job *job);

/* The job due first, or NULL. */
static inline struct sb_job *
heap_top(const struct sb_heap *h)
{
	return h->n ? h->v[0].job : NULL;
}

/* When the job due first is due (the heap must not be empty). */
static inline uint64_t
heap_top_deadline(const struct sb_heap *h)
{
	return h->v[0].deadline;
}

/* True when a queued job goes before b: higher priority, then older. */
static inline bool
queue_before(const struct sb_job *a, const struct sb_job *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return seq_before(a->seq, b->seq);
}

/* table.c */

/* Makes room for one more entry; 0 or -ENOMEM. */
int	 table_reserve(struct sb_table *t);

/* Adds job (room reserved by table_reserve()). */
void	 table_insert(struct sb_table *t, struct sb_job *job);

/* The job with that id (and attempt, in an orphan table), or NULL. */
struct sb_job	*table_find(const struct sb_table *t, const uint8_t *id,
		    uint32_t attempt);

/* Removes job from t (no-op when it is not there). */
void	 table_remove(struct sb_table *t, struct sb_job *job);

/* Frees t's slots (not its jobs). */
void	 table_clear(struct sb_table *t);

/* queue.c */

/* Makes sure q has a level for priority; 0 or -ENOMEM. */
int	 queue_reserve(struct sb_queue *q, int priority);

/* Puts job (priority reserved) in q, in its place by seq. */
void	 queue_insert(struct sb_queue *q, struct sb_job *job);

/* Takes job out of q. */
void	 queue_unlink(struct sb_queue *q, struct sb_job *job);

/* The job q dispatches first, or NULL. */
struct sb_job	*queue_first(const struct sb_queue *q);

/* Frees q's levels (not its jobs) and empties it. */
void	 queue_clear(struct sb_queue *q);

/* fn.c */

/* Starts the no-worker clock of fn at now unless it is already running. */
void		 fn_set_idle(struct switchboard *sb, struct sb_fn *fn,
		    uint64_t now);

/* Stops the no-worker clock of fn. */
void		 fn_clear_idle(struct switchboard *sb, struct sb_fn *fn);

/* Looks a function up by name; NULL when unknown. */
struct sb_fn	*fn_find(struct switchboard *sb, const uint8_t *name,
		    uint32_t len);

/* Finds or creates a function; NULL on ENOMEM. */
struct sb_fn	*fn_get(struct switchboard *sb, const uint8_t *name,
		    uint32_t len);

/* Frees fn when no worker, no job and no no-worker clock refer to it. */
void		 fn_release(struct switchboard *sb, struct sb_fn *fn);

/*
 * Picks the unpaused worker of fn with a free slot and the lowest
 * in_flight/capacity, round-robin among equals; NULL when every worker is
 * full or paused.
 */
struct sb_worker *fn_pick_worker(struct sb_fn *fn);

/* Links one registration into its function's worker list. */
void		 reg_link(struct switchboard *sb, struct sb_reg *r);

/* Unlinks one registration from its function's worker list. */
void		 reg_unlink(struct switchboard *sb, struct sb_reg *r,
		    uint64_t now);

/* Fills w's free slots with the best queued jobs of its functions. */
void		 worker_fill(struct switchboard *sb, struct sb_worker *w,
		    uint64_t now);

/* Dispatches fn's queued jobs to its workers while any has a free slot. */
void		 fn_drain(struct switchboard *sb, struct sb_fn *fn,
		    uint64_t now);

/* Answers NO_WORKER to every queued job of fn and stops its clock. */
void		 fn_expire(struct switchboard *sb, struct sb_fn *fn);

/* Orders two names bytewise, a prefix first (fn and stats records). */
static inline int
sb_name_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	int	r = memcmp(a, b, alen < blen ? alen : blen);

	if (r != 0)
		return r;
	return (alen > blen) - (alen < blen);
}

/* Orders functions (struct sb_fn *const *) by name, bytewise, for qsort. */
int		 fn_cmp_name(const void *a, const void *b);

/* Describes one function for the admin verbs. */
void		 fn_info(const struct switchboard *sb, const struct sb_fn *fn,
		    struct sb_fn_info *ret);

/* stats.c */

/*
 * The outcome record of a function name: found or made (SB_FN_OTHER's
 * past SB_MAX_FN_STATS names or when out of memory). Never NULL once
 * stats_init() succeeded.
 */
struct sb_fn_stats	*stats_fn(struct switchboard *sb, const uint8_t *name,
			    uint32_t len);
/* Copies the outcomes and times of st into info (fn_info() and gone ones). */
void		 stats_copy(const struct sb_fn_stats *st,
		    struct sb_fn_info *info);
/* Makes the SB_FN_OTHER record; 0 or -ENOMEM. */
int		 stats_init(struct switchboard *sb);
/* Frees every record. */
void		 stats_clear(struct switchboard *sb);
/* Adds one duration to a histogram: twice per job, so inline. */
static inline void
stats_hist_add(struct sb_hist *h, uint64_t ms)
{
	unsigned	i = 0;

	while (i < SB_HIST_BUCKETS - 1 && ms > sb_hist_bounds_ms[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum_ms += ms;
}
/* The record a refused RUN counts under, or NULL for a bad name. */
struct sb_fn_stats	*stats_fn_of_run(struct switchboard *sb,
			    const struct packet *run);
/* stats_job_end()'s error text and report, out of line. */
void		 stats_job_end_more(struct switchboard *sb,
		    const struct sb_job *job, const struct packet *run,
		    struct sb_outcome *o, enum job_status status, bool answered,
		    const void *error, size_t error_len);

/*
 * How a job ended, once per job: counted by status (under its function),
 * kept among the recent outcomes and told to the owner's job end callback
 * (but an OK). job is the job, or NULL for a RUN refused before it became
 * one (run); answered says whether its client was sent the RESULT. Inline:
 * an OK with no error text is a few stores.
 */
static inline void
stats_job_end(struct switchboard *sb, const struct sb_job *job,
    const struct packet *run, enum job_status status, bool answered,
    const void *error, size_t error_len)
{
	struct sb_fn_stats	*st;
	struct sb_outcome	*o;

	st = job != NULL ? job->fn->st : stats_fn_of_run(sb, run);
	sb->stats.results[status]++;
	sb->stats.detached_dropped += job != NULL && job->detached &&
	    status != JOB_OK && status != JOB_ERROR;
	if (st != NULL) {
		st->results[status]++;
		st->rejected += job == NULL;
	}
	/* Records live as long as the switchboard: the name is not copied. */
	o = &sb->outcomes[sb->noutcomes++ % SB_OUTCOMES];
	memcpy(o->id, job != NULL ? job->id : run->id, PROTO_ID_LEN);
	o->fn = st != NULL ? st->name : "";
	o->status = (uint8_t)status;
	o->refused = job == NULL;
	o->attempts = job != NULL ? job->attempt : 0;
	o->at = sb->now;
	o->error[0] = '\0';
	if (error_len > 0 || (status != JOB_OK && sb->job_end != NULL))
		stats_job_end_more(sb, job, run, o, status, answered, error,
		    error_len);
}

/* job.c */

/* Sends one packet to a peer through the broker's callback. */
static inline void
sb_send(struct switchboard *sb, void *ctx, const struct packet *p)
{
	sb->send(ctx, p, sb->arg);
}

/* Sends RESULT {id, status, attempts, error?} to a client. */
void		 sb_send_accepted(struct switchboard *sb,
		    struct sb_client *c, const uint8_t *id,
		    const uint8_t *joined);
void		 sb_send_result(struct switchboard *sb, struct sb_client *c,
		    const uint8_t *id, enum job_status status,
		    uint64_t attempts, const char *error);

/* Sends CANCEL {id, attempt} for a running job to its worker. */
void		 sb_send_cancel(struct switchboard *sb, struct sb_job *job);

/* Counts a terminal status and sends it to the job's client, if any. */
void		 job_answer(struct switchboard *sb, struct sb_job *job,
		    enum job_status status, const char *error);

/* Takes a queued job out of its function's queue; it stays live. */
static inline void
job_dequeue(struct switchboard *sb, struct sb_job *job)
{
	queue_unlink(&job->fn->queue, job);
	sb->nqueued--;
}

/*
 * Puts a job in its function's queue (its level reserved by the caller)
 * and starts the function's no-worker clock when it has no worker.
 */
void		 job_enqueue(struct switchboard *sb, struct sb_job *job,
		    uint64_t now);

/* Sends a job to worker w, taking one of its slots. */
void		 job_dispatch(struct switchboard *sb, struct sb_job *job,
		    struct sb_worker *w, uint64_t now);

/*
 * Takes a running job off its worker (freeing the slot) and out of the
 * running gauges.
 */
static inline void
job_leave_worker(struct switchboard *sb, struct sb_job *job)
{
	struct sb_worker	*w = job->worker;

	TAILQ_REMOVE(&w->jobs, job, worker_entry);
	w->in_flight--;
	job->worker = NULL;
	job->fn->running--;
	sb->nrunning--;
}

/*
 * Takes a live job out of everything that makes it live: route table,
 * client list, deadline heap, and its queue or its worker's slot.
 */
void		 job_unlink_live(struct switchboard *sb, struct sb_job *job);

/*
 * A new zeroed job with room for len payload bytes and meta_len bytes of
 * meta after them: small ones come from the switchboard's slabs, others
 * from malloc. NULL on ENOMEM.
 */
struct sb_job	*job_alloc(struct switchboard *sb, size_t len,
		    size_t meta_len);

/* Gives a job's memory back (to the slabs' free list or to malloc). */
void		 job_release(struct switchboard *sb, struct sb_job *job);

/* Frees every slab, in use or not (switchboard_free()); bytes freed. */
size_t		 job_slabs_free(struct switchboard *sb);

/* Frees a job that is in no list or table any more. */
static inline void
job_free(struct switchboard *sb, struct sb_job *job)
{
	struct sb_fn	*fn = job->fn;

	job_release(sb, job);
	fn->njobs--;
	fn_release(sb, fn);
}

/* Adds b to a, saturating at UINT64_MAX instead of wrapping. */
static inline uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return (b > UINT64_MAX - a) ? UINT64_MAX : a + b;
}

/* unique.c */

/* The live job a RUN with `unique` would join, or NULL. */
struct sb_unique *unique_find(struct switchboard *sb, const struct packet *run);
/* Client c joins u for its RUN id. 0 or -ENOMEM. */
int		 unique_join(struct switchboard *sb, struct sb_unique *u,
		    struct sb_client *c, const uint8_t *id);
/* Registers a new job (with a side record) under run's key, if it has one. */
void		 unique_register(struct switchboard *sb, struct sb_job *job,
		    const struct packet *run);
/* The job ends: each joiner gets this outcome, and the key is free. */
void		 unique_finish(struct switchboard *sb, struct sb_job *job,
		    enum job_status status, const void *error, size_t error_len,
		    const void *payload, size_t payload_len);
/* Forgets a key and its joiners without a word. */
void		 unique_drop(struct switchboard *sb, struct sb_unique *u);
/* Client c goes: its joins go with it. */
void		 unique_client_gone(struct switchboard *sb, struct sb_client *c);

/* results.c */

/*
 * Keeps the outcome of a detached job that ends now (its payload, when the
 * worker sent one) for STATUS; drops what expired or does not fit.
 */
void		 results_keep(struct switchboard *sb, const struct sb_job *job,
		    enum job_status status, const void *error,
		    size_t error_len, const void *payload, size_t payload_len);
void		 results_clear(struct switchboard *sb);

/*
 * A delayed job is due: dispatched or queued as if its RUN came now, its
 * timeout (or detached_ttl) starting now.
 */
void		 job_due(struct switchboard *sb, struct sb_job *job,
		    uint64_t now);

/* The ext record of a job (NULL: it has none), or one made for it. */
struct sb_job_ext *job_ext(struct switchboard *sb, const struct sb_job *job);
struct sb_job_ext *job_ext_make(struct switchboard *sb, struct sb_job *job);

/*
 * A detached job with retry_on_error failed (its worker's ERROR): delayed
 * for a retry, or to the dead list.
 */
void		 job_failed(struct switchboard *sb, struct sb_job *job,
		    const void *error, size_t error_len, uint64_t now);

/* A detached job with retry_on_error timed out; see job.c. 0 or -ENOMEM. */
int		 job_timeout_retry(struct switchboard *sb, struct sb_job *job,
		    uint64_t now);

/* store.c */

/* Tells the store of a stored job's change (job->stored). */
void		 job_store(struct switchboard *sb, struct sb_job *job,
		    enum sb_store_op op);

/* A stored job changed in a way a restart must know. */
static inline void
job_store_update(struct switchboard *sb, struct sb_job *job)
{
	if (job->stored)
		job_store(sb, job, SB_STORE_UPDATE);
}

/* A stored job's outcome is final: out of the store. */
static inline void
job_store_del(struct switchboard *sb, struct sb_job *job)
{
	if (job->stored) {
		job_store(sb, job, SB_STORE_DEL);
		job->stored = false;
	}
}

/* Makes room to note one more fresh job; 0 or -ENOMEM. */
int		 store_fresh_reserve(struct switchboard *sb);

/*
 * Notes a new stored job as fresh (room reserved): not dispatched before
 * its PUT is committed.
 */
void		 store_fresh_add(struct switchboard *sb, struct sb_job *job);

/*
 * Shutdown with a store: a stored job leaves memory but stays in the
 * store for the next start (its unique joiners get SHUTTING_DOWN).
 */
void		 job_shelve(struct switchboard *sb, struct sb_job *job);

/* Answers a live job with a terminal status and frees it. */
void		 job_finish(struct switchboard *sb, struct sb_job *job,
		    enum job_status status, const char *error);

/*
 * Turns a running job whose terminal answer is given (or not wanted) into
 * an orphan of its worker, CANCELling it there unless already done; the
 * slot stays taken until the worker answers this attempt.
 */
void		 job_orphan(struct switchboard *sb, struct sb_job *job);

/* Removes an orphan from its worker, freeing its slot, and frees it. */
void		 orphan_free(struct switchboard *sb, struct sb_job *job);

/* Expires one live job whose deadline has passed. */
void		 job_expire(struct switchboard *sb, struct sb_job *job);

/* Finds w's live running job for (id, attempt); NULL when none. */
struct sb_job	*worker_find_running(struct switchboard *sb,
		    struct sb_worker *w, const uint8_t *id, uint64_t attempt);

/* Finds w's orphan for (id, attempt); NULL when none. */
struct sb_job	*worker_find_orphan(struct sb_worker *w, const uint8_t *id,
		    uint64_t attempt);

#endif /* PATCHBAY_SWITCHBOARD_INTERNAL_H */

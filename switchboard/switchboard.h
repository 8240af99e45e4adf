/*
 * switchboard.h: the routing rules of the patchbay contract, with no I/O.
 *
 * The switchboard knows clients and workers only as opaque peers carrying
 * the caller's context pointer. The broker feeds it what arrived (RUN,
 * CANCEL, REGISTER, RESULT, PROGRESS, disconnects, the clock) and the
 * switchboard answers by calling ops->send(ctx, packet) for every packet
 * that must go out: RUN and CANCEL to workers, RESULT and PROGRESS to
 * clients. Time is always a parameter (milliseconds on a monotonic clock)
 * so tests control it; the caller arms one timer for
 * switchboard_next_deadline() and calls switchboard_tick() when it fires.
 *
 * Threading: one switchboard is used from one thread. The send callback
 * must not call back into the switchboard (it encodes and returns).
 *
 * Guarantee: every RUN that is not detached gets exactly one terminal
 * RESULT through ops->send, whatever happens afterwards (worker loss,
 * timeout, cancel, client gone, shutdown). A client that has been removed
 * is never sent anything again.
 */
#ifndef PATCHBAY_SWITCHBOARD_H
#define PATCHBAY_SWITCHBOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct switchboard;
struct sb_client;
struct sb_worker;

/*
 * Called for every packet that must be sent; ctx is the context given to
 * switchboard_client_add() or switchboard_worker_add(). The packet and what
 * it points to are valid only during the call: encode it there. It must
 * not call any switchboard_*() function.
 */
typedef void (*sb_send_cb)(void *ctx, const struct packet *p, void *arg);

/*
 * The end of one job, as switchboard_set_job_end_cb() reports it: every
 * terminal status the stats count (results[]) but OK, attached or
 * detached, answered to a client or not, refused RUNs included (an OK is
 * not reported: it is the common case, and the broker's log only cares
 * about failures; the counters have it). Everything points
 * into the switchboard or the packet being handled and is valid only
 * during the call.
 */
struct sb_job_end {
	const uint8_t	*id;		/* PROTO_ID_LEN bytes */
	const char	*fn;		/* not NUL-terminated: fn_len bytes */
	uint32_t	 fn_len;
	enum job_status	 status;
	uint32_t	 attempts;	/* dispatches so far */
	bool		 detached;
	bool		 answered;	/* a RESULT went to its client */
	void		*client;	/* its client's ctx, or NULL */
	void		*worker;	/* ctx of the worker running it, or NULL */
	const uint8_t	*error;		/* error_len bytes, or NULL */
	uint32_t	 error_len;
};

/*
 * Called for each job's end (for the owner's log); like sb_send_cb it must
 * not call any switchboard_*() function.
 */
typedef void (*sb_job_end_cb)(const struct sb_job_end *e, void *arg);

/* Limits and defaults; zero fields take the documented defaults. */
struct switchboard_config {
	uint32_t	max_queue;		/* per function; default 100000 */
	uint64_t	no_worker_wait_ms;	/* default 10000 */
	uint64_t	hash_seed;		/* random, so that ids cannot
						   be chosen to collide; 0 ok */
	uint64_t	max_queue_bytes;	/* payload bytes queued per
						   function; 0: no limit */
	uint64_t	max_memory;		/* payload bytes of all jobs
						   plus the owner's (see
						   switchboard_set_external_
						   bytes); 0: no limit */
	uint32_t	max_jobs_per_client;	/* live attached jobs of one
						   client; 0: no limit */
	uint64_t	detached_ttl_ms;	/* longest a detached job
						   without a timeout waits in
						   its queue; 0: 7 days */
	uint64_t	result_ttl_ms;		/* a finished detached job's
						   outcome is kept this long;
						   0: not at all */
	uint64_t	max_result_bytes;	/* what those outcomes may
						   hold; 0: 64 MiB */
	bool		keep_results;		/* false: result_ttl_ms is
						   the default (10 min) */
	uint32_t	max_dead;		/* dead jobs kept; 0: 10000 */
};

#define SB_DEFAULT_MAX_QUEUE		100000
#define SB_DEFAULT_NO_WORKER_WAIT_MS	10000
#define SB_DEFAULT_DETACHED_TTL_MS	(7ull * 24 * 3600 * 1000)
#define SB_MAX_DELAY_MS			(366ull * 24 * 3600 * 1000)
#define SB_DEFAULT_RESULT_TTL_MS	(10ull * 60 * 1000)
#define SB_DEFAULT_MAX_RESULT_BYTES	(64ull * 1024 * 1024)
#define SB_DEFAULT_MAX_DEAD		10000
#define SB_MAX_RETRY_ON_ERROR		1000
#define SB_DEFAULT_BACKOFF_MS		1000
#define SB_MAX_BACKOFF_MS		(24ull * 3600 * 1000)

/* Counters since switchboard_new(), and gauges. */
struct sb_stats {
	uint64_t	submitted;		/* RUNs accepted (not refused) */
	uint64_t	dispatched;		/* RUNs sent to workers */
	uint64_t	retried;		/* re-dispatches after worker loss */
	uint64_t	results[JOB__MAX];	/* terminal statuses, by status */
	uint64_t	stale;			/* RESULT/PROGRESS dropped */
	uint64_t	detached_dropped;	/* detached jobs taken, then
						   dropped by the broker (not
						   OK nor a worker's ERROR) */
	uint64_t	progress;		/* PROGRESS forwarded */
	uint32_t	queued;			/* jobs waiting now */
	uint32_t	delayed;		/* jobs not due yet */
	uint32_t	dead;			/* jobs on the dead list */
	uint32_t	running;		/* jobs at workers now */
	uint32_t	workers;
	uint32_t	clients;
	uint32_t	functions;		/* known function names */
	uint32_t	jobs_peak;		/* most jobs alive at once since
						   the last switchboard_trim() */
};

/* One connected worker as the admin verbs show it. */
struct sb_worker_info {
	void		 *ctx;
	uint32_t	  capacity;
	uint32_t	  in_flight;		/* includes slots held after
						   timeout/cancel until answered */
	bool		  paused;
	uint32_t	  nfns;
	const char	**fns;			/* NUL-terminated names */
	uint64_t	  completed;		/* results received */
};

/*
 * A histogram of durations: counts per bucket (not cumulative), bucket i
 * holding the durations up to sb_hist_bounds_ms[i] (and above the bound
 * before it), the last one everything longer. Times are the switchboard's
 * milliseconds, so sum_ms and the first bucket are coarse for sub-
 * millisecond jobs.
 */
#define SB_HIST_BUCKETS		14
extern const uint64_t	sb_hist_bounds_ms[SB_HIST_BUCKETS - 1];
struct sb_hist {
	uint64_t	count;
	uint64_t	sum_ms;
	uint64_t	buckets[SB_HIST_BUCKETS];
};

/*
 * Function names whose outcomes are kept after the function is gone (no
 * worker, no job); the outcomes of any name beyond that many are counted
 * under SB_FN_OTHER, so that a client inventing names cannot grow them.
 */
#define SB_MAX_FN_STATS		1024
#define SB_FN_OTHER		"(other)"

/* One function as the admin verbs show it. */
struct sb_fn_info {
	const char	*name;
	uint32_t	 queued;
	uint32_t	 running;
	uint32_t	 workers;		/* registered, paused or not */
	uint32_t	 free_slots;		/* among unpaused workers */
	uint32_t	 capacity;		/* of its workers, paused too */
	uint64_t	 oldest_queued_at;	/* the job waiting longest was
						   queued then; 0: none */
	/* Kept as long as the switchboard (see SB_MAX_FN_STATS): */
	uint64_t	 results[JOB__MAX];	/* terminal statuses */
	uint64_t	 rejected;		/* RUNs refused on arrival */
	struct sb_hist	 wait;			/* queued until dispatched,
						   each attempt */
	struct sb_hist	 run;			/* dispatched until the
						   worker's RESULT */
};

/* One live job as `ctl jobs` shows it. */
struct sb_job_info {
	const uint8_t	*id;			/* PROTO_ID_LEN bytes */
	const char	*fn;
	void		*client;		/* its client's ctx; NULL when
						   detached */
	void		*worker;		/* its worker's ctx while
						   running, else NULL */
	uint32_t	 attempt;		/* dispatches so far */
	uint32_t	 max_attempts;
	bool		 running;		/* else queued or delayed */
	bool		 delayed;		/* not due yet: since is when
						   it was submitted, deadline
						   when it is due */
	bool		 detached;
	int		 priority;
	uint64_t	 since;			/* queued or dispatched then */
	uint64_t	 deadline;		/* its timeout; 0: none */
	uint32_t	 payload_len;
	struct pbytes	 meta;			/* its meta map as it came;
						   len 0: none */
};

/* A job's terminal outcome, for the recent outcomes. */
#define SB_OUTCOMES		64
struct sb_outcome {
	uint8_t		 id[PROTO_ID_LEN];
	const char	*fn;			/* NUL-terminated; "" for a name
						   that is not one */
	uint8_t		 status;		/* enum job_status */
	bool		 refused;		/* refused on arrival */
	uint32_t	 attempts;
	uint64_t	 at;			/* the switchboard's clock */
	char		 error[120];		/* "" when none */
};

/*
 * Creates a switchboard; config may be NULL for the defaults. send is
 * called with arg as its last argument. Returns NULL on ENOMEM.
 */
struct switchboard	*switchboard_new(const struct switchboard_config *config,
			    sb_send_cb send, void *arg);

/* Frees everything without sending anything. NULL is a no-op. */
void	 switchboard_free(struct switchboard *sb);

/* Adds a client peer; NULL on ENOMEM. */
struct sb_client	*switchboard_client_add(struct switchboard *sb,
			    void *ctx);

/*
 * Removes a client: its queued non-detached jobs are dropped, its running
 * ones are CANCELled at their workers (whose answers are then dropped and
 * whose slots are freed when they answer). Detached jobs carry on. Nothing
 * is sent to the client. Frees c.
 */
void	 switchboard_client_remove(struct switchboard *sb, struct sb_client *c,
	    uint64_t now);

/* Adds a worker with no functions and no capacity yet; NULL on ENOMEM. */
struct sb_worker	*switchboard_worker_add(struct switchboard *sb,
			    void *ctx);

/*
 * Removes a worker (disconnect, silence, stop): each job it was running is
 * queued again when it has retries left and was not cancelled, else
 * answered WORKER_LOST. Frees w.
 */
void	 switchboard_worker_remove(struct switchboard *sb, struct sb_worker *w,
	    uint64_t now);

/*
 * Applies a REGISTER packet (functions and capacity) to w, replacing what
 * it had; jobs already running keep running. Then dispatches queued work.
 * Returns 0, -ENOMEM, or -EINVAL (nothing applied) for 0 or more than
 * PROTO_MAX_FNS names, an empty or too long name, or a capacity outside
 * 1..PROTO_MAX_CAPACITY.
 */
int	 switchboard_register(struct switchboard *sb, struct sb_worker *w,
	    const struct packet *reg, uint64_t now);

/* Stops (paused = true) or restarts dispatching to w. */
void	 switchboard_worker_pause(struct switchboard *sb, struct sb_worker *w,
	    bool paused, uint64_t now);

/*
 * Takes a RUN from client c (c may be NULL only for detached jobs). Every
 * outcome is answered through send: dispatched, queued, or refused with
 * RESULT BAD_REQUEST (fn empty or longer than PROTO_MAX_FN_LEN, priority
 * out of range, meta that meta_check() refuses; the error text names the
 * field), DUPLICATE_ID, QUEUE_FULL,
 * NO_WORKER (nowait and no free slot) or SHUTTING_DOWN. A detached RUN is
 * answered only when it carries ack: with ACCEPTED once it is taken (and
 * nothing after), or with its refusal; without ack it is never answered,
 * not even a refusal (protocol v1's contract). Returns 0; -ENOMEM when the job
 * could not be stored (it was answered QUEUE_FULL, "out of memory"); or
 * -EINVAL, with nothing sent, when c is NULL for a RUN that is not detached.
 */
int	 switchboard_run(struct switchboard *sb, struct sb_client *c,
	    const struct packet *run, uint64_t now);

/*
 * CANCEL from client c for id. A queued job is answered CANCELLED at once;
 * a running one is CANCELled at its worker. Returns 0, or -ENOENT when c
 * has no live job with that id (the caller sends ERROR NOT_FOUND).
 */
int	 switchboard_cancel(struct switchboard *sb, struct sb_client *c,
	    const uint8_t id[PROTO_ID_LEN], uint64_t now);

/*
 * RESULT from worker w (status OK, ERROR or CANCELLED). Forwards it to the
 * client with `attempts`, frees the slot and dispatches queued work.
 * Returns 0, or -ESTALE when no running attempt of w matches (id, attempt):
 * counted in stats.stale and dropped; -EINVAL (nothing applied) for
 * another status.
 */
int	 switchboard_result(struct switchboard *sb, struct sb_worker *w,
	    const struct packet *res, uint64_t now);

/* PROGRESS from worker w: forwarded, or -ESTALE as for a RESULT. */
int	 switchboard_progress(struct switchboard *sb, struct sb_worker *w,
	    const struct packet *prog, uint64_t now);

/*
 * Expires what is due at now: job timeouts (TIMEOUT to the client, CANCEL
 * to the worker, slot kept until the worker answers), detached jobs that
 * have waited detached_ttl_ms in their queue (dropped, TIMEOUT), and
 * functions that have had no worker for no_worker_wait_ms (their queued
 * attached jobs get NO_WORKER; detached ones go on waiting).
 */
void	 switchboard_tick(struct switchboard *sb, uint64_t now);

/* Where a job is, as STATUS tells it. */
enum sb_state {
	SB_STATE_UNKNOWN = 0,	/* never seen, or finished and forgotten */
	SB_STATE_QUEUED,
	SB_STATE_DELAYED,
	SB_STATE_RUNNING,
	SB_STATE_DONE,		/* a detached job's kept outcome */
	SB_STATE_DEAD,		/* retries used up: on the dead list */
};

/* A job's status; pointers into the switchboard, valid until its next call. */
struct sb_job_status {
	enum sb_state	 state;
	const char	*fn;			/* NULL when unknown */
	uint32_t	 attempts;		/* dispatches so far */
	int		 priority;
	uint64_t	 age_ms;		/* in its state; done: since it ended */
	enum job_status	 status;		/* done: how it ended */
	const char	*error;			/* done: or NULL */
	const uint8_t	*payload;		/* done: the worker's */
	size_t		 payload_len;
};

/*
 * The dead list (detached jobs whose retry_on_error ran out): each one
 * matching fn (NULL: any) goes to cb, oldest first, with its last error.
 */
struct sb_dead_info {
	const uint8_t	*id;
	const char	*fn;
	uint32_t	 attempts;
	uint32_t	 failures;
	int		 priority;
	uint64_t	 age_ms;		/* since it was declared dead */
	const char	*error;			/* its last; or NULL */
	uint32_t	 payload_len;
};
void	 switchboard_foreach_dead(struct switchboard *sb, const char *fn,
	    uint64_t now, void (*cb)(const struct sb_dead_info *, void *),
	    void *arg);

/*
 * Dead jobs back to their queue with their retries afresh (kick), or
 * dropped for good (drop): the one with id, or (id NULL) every one of fn
 * (NULL: any). Returns how many, or -ENOENT when id is not a dead job.
 */
int	 switchboard_kick(struct switchboard *sb, const uint8_t *id,
	    const char *fn, uint64_t now);
int	 switchboard_drop(struct switchboard *sb, const uint8_t *id,
	    const char *fn, uint64_t now);

/*
 * Cancels any live job by id, whoever sent it (the admin verb): a queued
 * or delayed one ends CANCELLED at once (its client, if any, is told), a
 * running one is CANCELled at its worker, whose answer ends it. Sets *was
 * to where it was. 0, or -ENOENT when no live job has that id.
 */
int	 switchboard_cancel_any(struct switchboard *sb, const uint8_t *id,
	    uint64_t now, enum sb_state *was);

/*
 * Where job id is: any live job (attached or detached), or a finished
 * detached one whose outcome is still kept (result_ttl_ms,
 * max_result_bytes); else SB_STATE_UNKNOWN.
 */
void	 switchboard_job_status(struct switchboard *sb, const uint8_t *id,
	    uint64_t now, struct sb_job_status *ret);

/*
 * Drops the detached jobs that have waited in their queue for
 * detached_ttl_ms (TIMEOUT, logged through the job end callback). For a
 * periodic sweep: each level of each queue is looked at from its oldest
 * job, and only as far as the jobs are that old.
 */
void	 switchboard_expire_detached(struct switchboard *sb, uint64_t now);

/* The earliest time switchboard_tick() has work, or UINT64_MAX for none. */
uint64_t	 switchboard_next_deadline(const struct switchboard *sb);

/*
 * Broker shutdown: every queued and running non-detached job is answered
 * SHUTTING_DOWN, running jobs are CANCELled at their workers, and any later
 * RUN is answered SHUTTING_DOWN.
 */
void	 switchboard_shutdown(struct switchboard *sb, uint64_t now);

/*
 * From now on every RUN is refused SHUTTING_DOWN with the sentence why
 * (copied, up to PROTO_ERRLEN bytes); the jobs already taken go on.
 */
void	 switchboard_refuse_new(struct switchboard *sb, const char *why);

/*
 * Gives back the memory of small-job records when no job uses any (after
 * a burst has drained), and starts sb_stats.jobs_peak again from the jobs
 * alive now. Returns the bytes freed. Cheap; for a periodic sweep.
 */
size_t	 switchboard_trim(struct switchboard *sb);

/*
 * Tells the switchboard how many bytes its owner holds for the jobs
 * (output waiting to be written): counted against max_memory with the
 * payloads the switchboard holds itself.
 */
void	 switchboard_set_external_bytes(struct switchboard *sb,
	    uint64_t bytes);

/*
 * Sets the callback told of every job's end but an OK one (NULL: none),
 * with arg as its last argument. Once, before any job.
 */
void	 switchboard_set_job_end_cb(struct switchboard *sb, sb_job_end_cb cb,
	    void *arg);

/*
 * A detached job as a store keeps it. With a store callback set
 * (switchboard_set_store_cb()), every detached job the switchboard takes
 * is told to it (SB_STORE_PUT) before its ACCEPTED, each change a restart
 * must know (SB_STORE_UPDATE: a dispatch raises attempts; a retry's
 * backoff sets due; the dead list sets dead and error; a kick clears
 * them) and its end (SB_STORE_DEL: its outcome is final), so that what
 * the store holds is every detached job taken and not finished.
 * switchboard_restore() takes the same record back. Times are on the
 * switchboard's clock: the owner converts them for a store that outlives
 * the process. For SB_STORE_DEL only id is set. Pointers are valid during
 * the call.
 */
struct sb_stored {
	const uint8_t	*id;			/* PROTO_ID_LEN bytes */
	const char	*fn;			/* fn_len bytes */
	uint32_t	 fn_len;
	uint32_t	 payload_len;
	const uint8_t	*payload;
	const uint8_t	*meta;			/* meta_len bytes; 0: none */
	uint32_t	 meta_len;
	uint32_t	 unique_len;		/* 0: not unique */
	const char	*unique;
	int		 priority;
	uint32_t	 attempts;		/* dispatches so far */
	uint32_t	 max_attempts;		/* 1 + retries */
	uint32_t	 retry_on_error;
	uint32_t	 failures;		/* ERRORs and timeouts so far */
	uint64_t	 backoff_ms;
	uint64_t	 timeout_ms;		/* a delayed job's, from when due */
	uint64_t	 deadline;		/* its timeout; 0: none */
	uint64_t	 due;			/* delayed until then; 0: due */
	uint64_t	 taken_at;		/* when it came (detached_ttl);
						   PUT only */
	bool		 dead;			/* on the dead list */
	const char	*error;			/* its last error, or NULL */
};

enum sb_store_op {
	SB_STORE_PUT,
	SB_STORE_UPDATE,
	SB_STORE_DEL,
};

/* Told of each change to a stored job; see struct sb_stored. */
typedef void (*sb_store_cb)(enum sb_store_op op, const struct sb_stored *job,
    void *arg);

/*
 * Sets the store callback (NULL: none), with arg as its last argument;
 * once, before any job. With one set, switchboard_shutdown() leaves the
 * stored jobs that are not running in the store, for the next start,
 * instead of ending them SHUTTING_DOWN.
 */
void	 switchboard_set_store_cb(struct switchboard *sb, sb_store_cb cb,
	    void *arg);

/*
 * Takes back a job the store kept, at start: dead, delayed (due later
 * than now), or queued, in the order the calls come (give them in the
 * order the jobs were taken), whatever the queue limits (the jobs were
 * taken once). A job that was running when the broker stopped comes back
 * queued with its attempts: it runs again (at least once for detached
 * jobs), given one more attempt when it had used its last. Returns 0,
 * -EEXIST (a live job has its id), -EINVAL (a field out of range) or
 * -ENOMEM.
 */
int	 switchboard_restore(struct switchboard *sb, const struct sb_stored *job,
	    uint64_t now);

/*
 * The store committed every change told to it so far: the jobs taken
 * since (which wait in their queue until then, so that no worker starts
 * a job the store may not have) are dispatched. After a failed commit
 * too, once switchboard_store_lost() was called for each job it lost.
 */
void	 switchboard_store_committed(struct switchboard *sb, uint64_t now);

/*
 * The store cannot keep jobs (why: the sentence; NULL: it can again): from
 * now on every detached RUN is refused STORE_FAILED with it. Attached jobs
 * never touch the store and go on.
 */
void	 switchboard_store_failing(struct switchboard *sb, const char *why);

/*
 * The store could not commit the SB_STORE_PUT of job id: the job was never
 * taken. It ends STORE_FAILED (it never reached a worker: see
 * switchboard_store_committed(); one running anyway is CANCELled);
 * its ACCEPTED, which the owner held back until the commit, is the
 * owner's to replace by RESULT STORE_FAILED. 0, or -ENOENT when no live
 * stored job has that id.
 */
int	 switchboard_store_lost(struct switchboard *sb, const uint8_t *id,
	    const char *why, uint64_t now);

/* Fills *ret with the counters and gauges. */
void	 switchboard_stats(const struct switchboard *sb, struct sb_stats *ret);

/* Calls cb for each worker, in the order they were added. */
void	 switchboard_foreach_worker(const struct switchboard *sb,
	    void (*cb)(const struct sb_worker_info *, void *), void *arg);

/*
 * An on-demand pool serves the function name (on) or no longer does (off):
 * while one does, a job for it waits for a worker however long it takes
 * (the no-worker clock does not run; the pool starts one), and the function
 * is known even before any worker registers it. Calls pair up. Returns 0,
 * -EINVAL for a bad name, or -ENOMEM.
 */
int	 switchboard_fn_standby(struct switchboard *sb, const char *name,
	    bool on, uint64_t now);

/* Describes the function name into *ret; false when it is not known. */
bool	 switchboard_fn_lookup(const struct switchboard *sb, const char *name,
	    struct sb_fn_info *ret);

/* Calls cb for each function, sorted by name. */
void	 switchboard_foreach_fn(const struct switchboard *sb,
	    void (*cb)(const struct sb_fn_info *, void *), void *arg);

/*
 * Calls cb for every function name with outcomes kept (those alive and
 * those gone; see SB_MAX_FN_STATS), sorted by name; the gauges of one that
 * is gone are 0.
 */
void	 switchboard_foreach_fn_stats(const struct switchboard *sb,
	    void (*cb)(const struct sb_fn_info *, void *), void *arg);

/* Calls cb for each live job: the queued ones, then the running ones. */
void	 switchboard_foreach_job(const struct switchboard *sb,
	    void (*cb)(const struct sb_job_info *, void *), void *arg);

/* Calls cb for the last SB_OUTCOMES terminal outcomes, newest first. */
void	 switchboard_foreach_outcome(const struct switchboard *sb,
	    void (*cb)(const struct sb_outcome *, void *), void *arg);

/* Fills *ret for one worker (fns point into w, valid until it changes). */
void	 switchboard_worker_info(const struct sb_worker *w,
	    struct sb_worker_info *ret);

#endif /* PATCHBAY_SWITCHBOARD_H */

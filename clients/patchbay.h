/*
 * patchbay.h: libpatchbay, the client and worker library for patchbayd.
 *
 * A pb_client submits jobs (RUN) and receives exactly one result per job; a
 * pb_worker registers functions and answers the jobs the broker pushes to
 * it. Both speak protocol v1 (docs/protocol.md) over a Unix or TCP socket.
 *
 * Threading: an object is used from one thread at a time; distinct objects
 * are independent. Two exceptions make long jobs simple:
 *   - A job handler may block for as long as the job's timeout allows
 *     (compute, sleep, call a blocking service): while one runs, a thread
 *     the library starts keeps the worker's connection alive (it PINGs the
 *     broker and writes out what was queued), so the broker does not take
 *     the worker for dead. CANCELs and new jobs that arrive meanwhile are
 *     read when the handler returns.
 *   - pb_job_progress() and pb_job_complete() may be called from any
 *     thread, also while another thread is in pb_worker_dispatch(): a
 *     handler may hand its job to a thread pool and return. PROGRESS is
 *     written when it is sent, so the client sees it as it happens.
 * The cancel callback runs with the worker's lock held: it must not block
 * (it may call pb_job_complete()). The library never calls exit() or
 * abort() and does not log; it returns errors. Running out of memory is one of them: -ENOMEM,
 * after which the object is still usable and nothing it held was lost.
 *
 * Errors: functions that can fail return 0 or a negative errno:
 *   -EINVAL       a bad argument (NULL, an empty or too long name...)
 *   -ENOMEM       out of memory; the call may be made again (see each call)
 *   -ECONNREFUSED, -ENOENT, -EACCES...  connecting failed (from connect(2))
 *   -ENOTCONN     the connection to the broker is gone
 *   -EPROTO       the broker sent something this library cannot accept, or
 *                 refused the handshake (see pb_client_last_error())
 *   -ETIMEDOUT    a wait ran out
 *   -ENOENT       an unknown job id
 *
 * Ownership: a pb_result is owned by the caller and freed with
 * pb_result_free(); buffers passed in are copied before the call returns.
 *
 * @code
 *   struct pb_client *c;
 *   struct pb_result *r;
 *   if (pb_client_connect(NULL, NULL, &c) == 0 &&
 *       pb_client_run(c, "rev", "hello", 5, NULL, &r) == 0) {
 *           if (r->status == PB_OK)
 *                   fwrite(r->payload, 1, r->len, stdout);
 *           pb_result_free(r);
 *   }
 *   pb_client_free(c);
 * @endcode
 */
#ifndef PATCHBAY_H
#define PATCHBAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PB_ID_LEN	16

/* A job's terminal status, as in the protocol's RESULT. */
enum pb_status {
	PB_OK = 0,
	PB_ERROR,
	PB_CANCELLED,
	PB_TIMEOUT,
	PB_WORKER_LOST,
	PB_NO_WORKER,
	PB_QUEUE_FULL,
	PB_BAD_REQUEST,
	PB_DUPLICATE_ID,
	PB_SHUTTING_DOWN,
	PB_DISCONNECTED,	/* local: the broker went away before a result */
	PB_ACCEPTED,		/* a detached job the broker has taken */
	PB_STORE_FAILED,	/* the broker could not store a detached job
				   (its store is failing): not taken */
};

/* The protocol name of a status ("OK", "TIMEOUT"...; "DISCONNECTED"). */
const char	*pb_status_name(enum pb_status status);

/*
 * The endpoint used when none is given: $PATCHBAY_BROKER if set, else
 * $PATCHBAY_SOCKET, else unix:$XDG_RUNTIME_DIR/patchbay.sock, else
 * unix:/tmp/patchbay-$UID/patchbay.sock. Writes it into buf (size len) and
 * returns 0, or -ENAMETOOLONG.
 */
int	 pb_default_endpoint(char *buf, size_t len);

/* Connection options; a NULL pointer or zero fields mean the defaults. */
struct pb_options {
	const char	*name;		/* HELLO name; default the program name */
	const char	*token;		/* HELLO token; default $PATCHBAY_TOKEN,
					   else $PATCHBAY_TOKEN_FILE's first
					   line */
	int		 connect_timeout_ms;	/* default 5000 */
	bool		 spread;	/* client, list: start at a random broker */
	/*
	 * tls:HOST:PORT endpoints. The broker's certificate must chain to
	 * tls_ca (PEM; default $PATCHBAY_TLS_CA, else the system's CAs) and
	 * name HOST. tls_cert and tls_key (default $PATCHBAY_TLS_CERT and
	 * $PATCHBAY_TLS_KEY) present a client certificate, for brokers that
	 * require one.
	 */
	const char	*tls_ca;
	const char	*tls_cert;
	const char	*tls_key;
};

/* One job's outcome. Owned by the caller: pb_result_free(). */
struct pb_result {
	uint8_t		 id[PB_ID_LEN];
	enum pb_status	 status;
	uint32_t	 attempts;	/* dispatches it took */
	void		*payload;	/* may be NULL when len is 0 */
	size_t		 len;
	char		*error;		/* NUL-terminated, or NULL */
};

/* Frees a result; NULL is a no-op. */
void	 pb_result_free(struct pb_result *r);

/*
 * One entry of a job's metadata: a key of 1 or more of A-Z a-z 0-9 _ . -
 * and a value of UTF-8 text (see pb_run_options.meta).
 */
struct pb_meta {
	const char	*key;
	const char	*value;
};

/* The length of a W3C traceparent of version 00, without its NUL. */
#define PB_TRACEPARENT_LEN	55

/* Per-job options for RUN; NULL or zero fields mean the defaults. */
struct pb_run_options {
	uint32_t	 timeout_ms;	/* 0: none */
	uint32_t	 retries;	/* re-dispatches after worker loss */
	int		 priority;	/* -100..100, higher first */
	/*
	 * Detached: the job outlives this connection and its result is not
	 * sent back. Its one answer is PB_ACCEPTED once the broker has taken
	 * it, or the status that refused it (PB_QUEUE_FULL, ...).
	 */
	bool		 detach;
	bool		 nowait;	/* NO_WORKER instead of queueing */
	/*
	 * Metadata the worker gets with the job, and `ctl jobs` shows:
	 * nmeta entries, copied before the call returns. At most 32 keys,
	 * each once, and 4096 bytes of keys and values; "traceparent" must
	 * be a W3C traceparent and "tracestate" comes only with one. A meta
	 * the broker would refuse is refused here: -EINVAL, the reason in
	 * pb_client_last_error().
	 */
	const struct pb_meta	*meta;
	size_t			 nmeta;
	/*
	 * Adds a new traceparent (random trace-id and parent-id, sampled
	 * flag set) unless meta has one, so that the job starts a trace.
	 */
	bool		 trace;
	/*
	 * A delayed job: due delay_ms from now, or at run_at_ms (Unix time in
	 * ms, by the broker's clock; one in the past is due at once), not
	 * both, at most 366 days away, and not with nowait. Its timeout_ms
	 * counts from when it is due.
	 */
	uint64_t	 delay_ms;
	uint64_t	 run_at_ms;
	/*
	 * Detached jobs only: try again this many times after the worker's
	 * ERROR or a TIMEOUT, backoff_ms (default 1 s) before the first retry, doubling
	 * each time (within 20%), then put the job on the broker's dead
	 * list (`patchbay ctl dead`, `kick`, `drop`).
	 */
	uint32_t	 retry_on_error;
	uint64_t	 backoff_ms;
	/*
	 * A unique job (1 to 255 bytes; NULL: none): while a live job of the
	 * same function has this key, an attached RUN joins it (its result
	 * comes under this RUN's id) and a detached one is PB_ACCEPTED as it
	 * (the result's id is the live job's).
	 */
	const char	*unique;
};

/*
 * Writes a new W3C traceparent, "00-<32 hex trace-id>-<16 hex parent-id>-01"
 * with random ids, and its NUL into buf (len >= PB_TRACEPARENT_LEN + 1).
 * Returns 0, -EINVAL (buf too small) or the errno of the random source.
 */
int	 pb_traceparent_generate(char *buf, size_t len);

/* ---- client ------------------------------------------------------------ */

struct pb_client;

/*
 * Connects to endpoint ("unix:/path", "tcp:host:port", "tcp:[::1]:port";
 * NULL for pb_default_endpoint()) and does the HELLO/WELCOME handshake as a
 * client. On success sets *ret and returns 0.
 *
 * endpoint may be a list of brokers, "A,B,...": the client uses one at a
 * time, the first that takes it (with opts->spread, the list is walked from
 * a random place, so that many clients spread over the brokers). When the
 * connection is lost, its pending jobs are delivered as PB_DISCONNECTED
 * (never resubmitted: the broker may have run them), and the next submit or
 * run fails over to the next broker of the list, or reconnects to the only
 * one; that submit may deliver the lost jobs' results first.
 */
int	 pb_client_connect(const char *endpoint, const struct pb_options *opts,
	    struct pb_client **ret);

/* Closes the connection and frees c; pending jobs are dropped. NULL ok. */
void	 pb_client_free(struct pb_client *c);

/*
 * Runs one job and waits for its result, answering PINGs meanwhile. The
 * wait is bounded by opts->timeout_ms plus a margin when set, else
 * unbounded. Other submitted jobs' callbacks may fire during the wait.
 * Returns 0 with *ret set (any status, including PB_DISCONNECTED), or a
 * negative errno for a local failure. After -ETIMEDOUT, or -ENOMEM while
 * waiting, the job is cancelled and forgotten.
 */
int	 pb_client_run(struct pb_client *c, const char *fn, const void *payload,
	    size_t len, const struct pb_run_options *opts,
	    struct pb_result **ret);

/* Called once per submitted job with its result; takes ownership of r. */
typedef void (*pb_result_fn)(struct pb_client *c, struct pb_result *r,
    void *userdata);
/* Called for each PROGRESS of a submitted job; data valid during the call. */
typedef void (*pb_progress_fn)(struct pb_client *c, const uint8_t *id,
    const void *data, size_t len, void *userdata);

/*
 * Submits a job without waiting. Its result is handed to on_result (which
 * may be NULL for detached jobs) from pb_client_dispatch() or
 * pb_client_run(); on_progress may be NULL. The job id is written to
 * ret_id when that is not NULL. Returns 0 or a negative errno; on -ENOMEM
 * nothing was sent.
 */
int	 pb_client_submit(struct pb_client *c, const char *fn,
	    const void *payload, size_t len, const struct pb_run_options *opts,
	    pb_result_fn on_result, pb_progress_fn on_progress, void *userdata,
	    uint8_t ret_id[PB_ID_LEN]);

/* Asks the broker to cancel a job of this client. 0, -ENOENT or errno. */
int	 pb_client_cancel(struct pb_client *c, const uint8_t id[PB_ID_LEN]);

/*
 * Processes what has arrived, waiting up to timeout_ms (0: do not wait,
 * -1: wait until something was handled). Returns the number of results
 * delivered, or a negative errno. When the connection is lost every pending
 * job is delivered as PB_DISCONNECTED and -ENOTCONN is returned. -ENOMEM
 * loses nothing: what could not be handled is handled by a later call.
 */
int	 pb_client_dispatch(struct pb_client *c, int timeout_ms);

/*
 * Corks the client (on: true) or uncorks it (false). While it is corked,
 * the frames of pb_client_submit() and pb_client_cancel() wait in its
 * buffer and go out together, in one write(2): when the next
 * pb_client_dispatch(), pb_client_sync(), pb_client_run() or
 * pb_client_status() begins, when 64 KiB have gathered, or when it is
 * uncorked. For a program that submits jobs in batches (a loop of
 * submits, then a dispatch): one write per batch instead of one per job.
 * A program that polls pb_client_fd() itself must uncork the client (or
 * call pb_client_dispatch() with timeout 0) before it waits, or what it
 * submitted is still here. Returns 0, -EINVAL, or -ENOTCONN when
 * uncorking finds the connection lost (the next pb_client_dispatch()
 * delivers its jobs as PB_DISCONNECTED).
 */
int	 pb_client_cork(struct pb_client *c, bool on);

/* Jobs submitted whose results have not been delivered yet. */
size_t	 pb_client_pending(const struct pb_client *c);

/*
 * The socket, for poll(2)-style integration (readable: call dispatch); it
 * changes when the client fails over.
 */
int	 pb_client_fd(const struct pb_client *c);

/*
 * Waits until the broker has processed everything sent so far (a PING
 * round trip), so that a detached job is known to be accepted. 0 or errno.
 */
int	 pb_client_sync(struct pb_client *c, int timeout_ms);

/* A job as the broker tells it (pb_client_status()). Owned by the caller. */
struct pb_job_info {
	uint8_t		 id[PB_ID_LEN];
	/* "queued", "delayed", "running", "done" or "unknown" */
	char		 state[16];
	char		*fn;		/* NULL when unknown */
	uint32_t	 attempts;	/* dispatches so far */
	int		 priority;
	uint64_t	 age_ms;	/* in its state (done: since it ended) */
	/* done: a finished detached job's outcome, kept for result_ttl */
	bool		 done;
	enum pb_status	 status;
	char		*error;		/* or NULL */
	void		*payload;	/* may be NULL when len is 0 */
	size_t		 len;
};

/* Frees a job info; NULL is a no-op. */
void	 pb_job_info_free(struct pb_job_info *j);

/*
 * Asks the broker where job id is (any live job, or a finished detached
 * one whose outcome is still kept; else "unknown"), waiting at most
 * timeout_ms (-1: no bound) for the answer. 0 with *ret set, -ETIMEDOUT,
 * -ENOTCONN, -ENOMEM or -EINVAL.
 */
int	 pb_client_status(struct pb_client *c, const uint8_t id[PB_ID_LEN],
	    int timeout_ms, struct pb_job_info **ret);

/*
 * The last error sentence from the broker or the library, or "". With c
 * NULL: why the last connect (client or worker) in this thread failed.
 */
const char	*pb_client_last_error(const struct pb_client *c);

/* ---- worker ------------------------------------------------------------ */

struct pb_worker;
struct pb_job;

/*
 * A job handler: called when the broker pushes a job. Answer it now or
 * later, from this or another thread, exactly once, with pb_job_complete()
 * (the pb_job stays valid until then; a cancelled job must be answered too,
 * typically PB_CANCELLED). It may block: see Threading above.
 */
typedef void (*pb_job_fn)(struct pb_worker *w, struct pb_job *job,
    void *userdata);
/*
 * Told that a running job was cancelled (client cancel, timeout). Called
 * with the worker's lock held: it must not block.
 */
typedef void (*pb_cancel_fn)(struct pb_worker *w, struct pb_job *job,
    void *userdata);

/*
 * Told that the worker's connection to a broker came up (connected true:
 * connected and registered) or went down; endpoint names the broker. Jobs
 * of a lost connection can no longer be answered (pb_job_abandoned()).
 * Called from the worker's calls, with its lock held: it must not block.
 */
typedef void (*pb_state_fn)(struct pb_worker *w, const char *endpoint,
    bool connected, void *userdata);

/*
 * Creates a worker. With endpoint NULL it uses the inherited descriptor in
 * $PATCHBAY_FD when set (a broker-spawned worker), else
 * pb_default_endpoint(). endpoint may be a list, "A,B,...": the worker then
 * registers with every broker in it and serves them all, connecting and
 * reconnecting to each on its own; each broker sees the whole capacity.
 * It does not connect yet. Returns 0 or errno (-EINVAL for a bad endpoint
 * or list, with the reason in pb_client_last_error(NULL)).
 */
int	 pb_worker_new(const char *endpoint, const struct pb_options *opts,
	    struct pb_worker **ret);

/* Closes and frees w; jobs not answered are abandoned. NULL ok. */
void	 pb_worker_free(struct pb_worker *w);

/*
 * Adds a function this worker runs (before or after connecting). 0,
 * -EINVAL, -ENOSPC, or -ENOMEM (the function was not added).
 */
int	 pb_worker_add_function(struct pb_worker *w, const char *fn,
	    pb_job_fn handler, void *userdata);

/*
 * How many jobs may run at once (1..65535; default 1). 0, -EINVAL, or
 * -ENOMEM (the capacity is unchanged).
 */
int	 pb_worker_set_capacity(struct pb_worker *w, uint32_t capacity);

/* Sets the cancel callback (optional). */
void	 pb_worker_on_cancel(struct pb_worker *w, pb_cancel_fn fn,
	    void *userdata);

/* Sets the connection state callback (optional). */
void	 pb_worker_on_state(struct pb_worker *w, pb_state_fn fn,
	    void *userdata);

/*
 * Connects (or reconnects) and REGISTERs. Reconnection after the broker goes
 * away happens inside pb_worker_dispatch() with exponential backoff
 * (100 ms doubling to 5 s, with jitter). Returns 0 or errno; for a list, 0
 * when at least one broker took the worker (the others are retried by
 * pb_worker_dispatch()).
 */
int	 pb_worker_connect(struct pb_worker *w);

/*
 * Handles what arrived, waiting up to timeout_ms (-1: forever, 0: not at
 * all); reconnects when due. Returns 0; -ENOMEM, after which the worker
 * goes on with a later call (a job that could not be taken stays buffered,
 * a connect that failed is retried); or a negative errno when the worker
 * cannot go on (a refused handshake, or an inherited descriptor that closed:
 * a spawned worker exits then).
 */
int	 pb_worker_dispatch(struct pb_worker *w, int timeout_ms);

/*
 * Loops in pb_worker_dispatch() until pb_worker_stop() or an error, which
 * it returns (after -ENOMEM it may be called again).
 */
int	 pb_worker_run(struct pb_worker *w);

/*
 * Starts a graceful stop: tells the broker (every broker of a list) to send
 * no new jobs (REGISTER with capacity 0; the jobs running go on and are
 * answered as usual). Call pb_worker_dispatch() until pb_worker_running()
 * is 0, then free the worker. Reconnects say capacity 0 too. 0, or the
 * first error (-ENOMEM: call again).
 */
int	 pb_worker_drain(struct pb_worker *w);

/* Jobs handed to handlers and not completed yet. */
size_t	 pb_worker_running(struct pb_worker *w);

/* Makes pb_worker_run() return (safe from a handler or signal handler). */
void	 pb_worker_stop(struct pb_worker *w);

/*
 * The descriptor to watch for input, for poll(2) or event loop
 * integration: the current socket (it changes across reconnects, -1 while
 * disconnected), or, for a list of brokers, an epoll descriptor that is
 * readable when any of the worker's sockets is (it does not change).
 */
int	 pb_worker_fd(const struct pb_worker *w);

/*
 * Milliseconds until the worker needs pb_worker_dispatch() even if its
 * descriptor stays quiet (a reconnect attempt, a PING due), or -1 when
 * nothing is due. An event loop arms a timer with it after each dispatch.
 */
int	 pb_worker_timeout_ms(struct pb_worker *w);

/* Accessors valid until the job is completed. */
const uint8_t	*pb_job_id(const struct pb_job *job);
/*
 * The job's metadata, as the client sent it: the value of key (NULL when
 * the job has none), the number of entries, and entry i's key (NULL when i
 * is out of range) with its value in *ret_value (may be NULL). Keys
 * "traceparent" and "tracestate" are the W3C Trace Context of the job.
 */
const char	*pb_job_meta(const struct pb_job *job, const char *key);
size_t		 pb_job_meta_count(const struct pb_job *job);
const char	*pb_job_meta_at(const struct pb_job *job, size_t i,
		    const char **ret_value);
const char	*pb_job_function(const struct pb_job *job);
const void	*pb_job_payload(const struct pb_job *job, size_t *ret_len);
uint32_t	 pb_job_attempt(const struct pb_job *job);
uint32_t	 pb_job_timeout_ms(const struct pb_job *job);	/* 0: none */
bool		 pb_job_cancelled(const struct pb_job *job);
/* True once the connection the job came on is gone: answers are dropped. */
bool		 pb_job_abandoned(const struct pb_job *job);
void		*pb_job_get_userdata(const struct pb_job *job);
void		 pb_job_set_userdata(struct pb_job *job, void *userdata);

/*
 * Sends PROGRESS for a running job, written at once. Any thread. 0,
 * -ENOTCONN, -ENOMEM or errno.
 */
int	 pb_job_progress(struct pb_job *job, const void *data, size_t len);

/*
 * Answers a job (status PB_OK, PB_ERROR or PB_CANCELLED; error is the
 * text for PB_ERROR and may be NULL) and frees it. Returns 0, or -ENOTCONN
 * when the connection it came on is gone (the job is freed all the same).
 * On -EINVAL or -ENOMEM nothing was sent and the job is left as it was:
 * it still must be answered.
 */
int	 pb_job_complete(struct pb_job *job, enum pb_status status,
	    const void *payload, size_t len, const char *error);

#ifdef __cplusplus
}
#endif

#endif /* PATCHBAY_H */

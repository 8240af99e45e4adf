/*
 * client.c: pb_client, the submitting side of libpatchbay.
 *
 * A client owns one connection (struct bconn, common.c) and a uthash table
 * of the jobs it submitted whose results have not been delivered, keyed by
 * their 16-byte id. pb_client_submit() encodes a RUN and writes it; results
 * and progress come back through common_process() into client_packet(),
 * which finds the job, builds a pb_result (copying out of the input buffer)
 * and hands it to the job's callback, or to the slot of the pb_client_run()
 * that is waiting for it. When the connection dies, whatever is still
 * pending is delivered once as PB_DISCONNECTED, never resubmitted: the
 * broker may have run it. The next call that needs the connection (a
 * submit or run) fails over: it connects to the next broker of the list,
 * or to the same one again when there is one, and only new jobs go there.
 *
 * Out of memory, a call returns -ENOMEM and the client stays usable: a
 * submit records the job before it sends the RUN and takes it back if the
 * RUN cannot be encoded, and a RESULT that cannot be turned into a
 * pb_result stays buffered until a later call can.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "clients/lib/internal.h"
#include "util/util.h"

#define CLIENT_IDS_PER_UUID	4096	/* ids made from one uuid_generate() */
#define CLIENT_RUN_MARGIN_MS	2000	/* pb_client_run() waits past timeout */

/* A submitted job waiting for its result; owned by its pb_client. */
struct client_job {
	uint8_t			 id[PB_ID_LEN];
	pb_result_fn		 on_result;
	pb_progress_fn		 on_progress;
	void			*userdata;
	struct pb_result	**slot;		/* pb_client_run() waits on it */
	UT_hash_handle		 hh;
};

/* A connection and its pending jobs; owned by the caller. */
struct pb_client {
	struct bconn		 conn;
	char			**eps;		/* the brokers, in list order */
	size_t			 neps;
	size_t			 cur;		/* eps[cur] is (was) connected */
	char			*name;		/* HELLO name and token, kept */
	char			*token;		/* for failover */
	int			 connect_timeout_ms;
	struct client_job	*jobs;		/* by id */
	/* pb_client_status(): the id it waits for, and what came. */
	bool			 status_wait;
	uint8_t			 status_id[PB_ID_LEN];
	struct pb_job_info	*status_got;
	size_t			 npending;
	uint64_t		 nresults;	/* results delivered so far */
	uint64_t		 nevents;	/* results and progress */
	bool			 lost;		/* the loss was reported */
	bool			 corked;	/* by pb_client_cork() */
	uint8_t			 id_base[PB_ID_LEN];	/* see client_new_id() */
	uint32_t		 id_left;
	uint32_t		 id_next;
	char			 last_error[PROTO_ERRLEN];
};

_Static_assert((int)PB_OK == (int)JOB_OK &&
    (int)PB_ERROR == (int)JOB_ERROR &&
    (int)PB_CANCELLED == (int)JOB_CANCELLED &&
    (int)PB_TIMEOUT == (int)JOB_TIMEOUT &&
    (int)PB_WORKER_LOST == (int)JOB_WORKER_LOST &&
    (int)PB_NO_WORKER == (int)JOB_NO_WORKER &&
    (int)PB_QUEUE_FULL == (int)JOB_QUEUE_FULL &&
    (int)PB_BAD_REQUEST == (int)JOB_BAD_REQUEST &&
    (int)PB_DUPLICATE_ID == (int)JOB_DUPLICATE_ID &&
    (int)PB_SHUTTING_DOWN == (int)JOB_SHUTTING_DOWN &&
    (int)PB_DISCONNECTED == (int)JOB_STORE_FAILED,
    "pb_status mirrors the protocol's job_status up to SHUTTING_DOWN");

/* A protocol status as a pb_status: the same number but STORE_FAILED's. */
static enum pb_status
client_status(enum job_status s)
{
	return s == JOB_STORE_FAILED ? PB_STORE_FAILED : (enum pb_status)s;
}

/* Returns the protocol name of a status, or "UNKNOWN". */
const char *
pb_status_name(enum pb_status status)
{
	/* pb_status mirrors job_status (checked above), plus DISCONNECTED. */
	if (status == PB_DISCONNECTED)
		return "DISCONNECTED";
	if (status == PB_ACCEPTED)
		return "ACCEPTED";
	if (status == PB_STORE_FAILED)
		return "STORE_FAILED";
	if ((unsigned)status >= JOB_STORE_FAILED)
		return "UNKNOWN";
	return job_status_name((enum job_status)status);
}

/* Writes the default endpoint into buf; see patchbay.h. */
int
pb_default_endpoint(char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return -EINVAL;
	return endpoint_default(buf, len, true);
}

/* Frees a result and what it holds; NULL is a no-op. */
void
pb_result_free(struct pb_result *r)
{
	if (r == NULL)
		return;
	free(r->payload);
	free(r->error);
	free(r);
}

/* Records a sentence as the client's last error. */
static void
client_set_error(struct pb_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records a sentence as the client's last error. */
static void
client_set_error(struct pb_client *c, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
}

/* Builds a result; payload and error are copied. NULL on ENOMEM. */
static struct pb_result *
client_result_new(const uint8_t *id, enum pb_status status, uint64_t attempts,
    const void *payload, size_t len, const char *error, size_t errlen)
{
	struct pb_result	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	memcpy(r->id, id, PB_ID_LEN);
	r->status = status;
	r->attempts = attempts > UINT32_MAX ? UINT32_MAX : (uint32_t)attempts;
	if (len > 0) {
		if ((r->payload = malloc(len)) == NULL)
			goto fail;
		memcpy(r->payload, payload, len);
		r->len = len;
	}
	if (error != NULL) {
		if ((r->error = malloc(errlen + 1)) == NULL)
			goto fail;
		memcpy(r->error, error, errlen);
		r->error[errlen] = '\0';
	}
	return r;
fail:
	pb_result_free(r);
	return NULL;
}

/*
 * Takes j out of the table and hands its result to whoever waits for it;
 * takes ownership of r and j.
 */
static void
client_deliver(struct pb_client *c, struct client_job *j, struct pb_result *r)
{
	HASH_DEL(c->jobs, j);
	c->npending--;
	c->nresults++;
	c->nevents++;
	if (j->slot != NULL)
		*j->slot = r;
	else if (j->on_result != NULL)
		j->on_result(c, r, j->userdata);
	else
		pb_result_free(r);
	free(j);
}

/* Removes a pending job, if present, without delivering anything. */
static void
client_forget(struct pb_client *c, const uint8_t *id)
{
	struct client_job	*j;

	HASH_FIND(hh, c->jobs, id, PB_ID_LEN, j);
	if (j == NULL)
		return;
	HASH_DEL(c->jobs, j);
	c->npending--;
	free(j);
}

/*
 * Gives up waiting for a job: forgets it and asks the broker, best effort,
 * to cancel it, since its result would be dropped anyway.
 */
static void
client_abandon(struct pb_client *c, const uint8_t *id)
{
	struct packet	p;

	client_forget(c, id);
	packet_init(&p, PKT_CANCEL);
	memcpy(p.id, id, PB_ID_LEN);
	(void)common_send(&c->conn, &p);
}

static int	client_step(struct pb_client *, int);

/* Frees a job info; see patchbay.h. */
void
pb_job_info_free(struct pb_job_info *j)
{
	if (j == NULL)
		return;
	free(j->fn);
	free(j->error);
	free(j->payload);
	free(j);
}

/* Handles a JOB that pb_client_status() waits for. 0 or -ENOMEM. */
static int
client_job_info(struct pb_client *c, const struct packet *p)
{
	struct pb_job_info	*j;

	if (!c->status_wait || c->status_got != NULL ||
	    memcmp(p->id, c->status_id, PB_ID_LEN) != 0)
		return 0;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;
	memcpy(j->id, p->id, PB_ID_LEN);
	snprintf(j->state, sizeof(j->state), "%.*s", (int)p->state.len,
	    (const char *)p->state.ptr);
	j->attempts = (uint32_t)p->attempts;
	j->priority = (int)p->priority;
	j->age_ms = (p->has & PF_AGE) ? p->age_ms : 0;
	j->done = strcmp(j->state, "done") == 0 && (p->has & PF_STATUS);
	j->status = client_status(p->status);
	if (((p->has & PF_FN) &&
	    (j->fn = strndup((const char *)p->fn.ptr, p->fn.len)) == NULL) ||
	    ((p->has & PF_ERROR) && (j->error = strndup((const char *)
	    p->error.ptr, p->error.len)) == NULL) ||
	    (p->payload.len > 0 && (j->payload = malloc(p->payload.len)) ==
	    NULL)) {
		pb_job_info_free(j);
		return -ENOMEM;
	}
	if (p->payload.len > 0)
		memcpy(j->payload, p->payload.ptr, p->payload.len);
	j->len = p->payload.len;
	c->status_got = j;
	return 0;
}

/* Asks where a job is; see patchbay.h. */
int
pb_client_status(struct pb_client *c, const uint8_t id[PB_ID_LEN],
    int timeout_ms, struct pb_job_info **ret)
{
	struct packet	p;
	uint64_t	deadline = 0;
	int		r;

	if (c == NULL || id == NULL || ret == NULL || timeout_ms < -1)
		return -EINVAL;
	if (c->conn.dead || c->conn.fd < 0)
		return -ENOTCONN;
	packet_init(&p, PKT_STATUS);
	memcpy(p.id, id, PB_ID_LEN);
	memcpy(c->status_id, id, PB_ID_LEN);
	c->status_wait = true;
	c->status_got = NULL;
	if ((r = common_send(&c->conn, &p)) != 0) {
		c->status_wait = false;
		return r;
	}
	if (timeout_ms >= 0)
		deadline = clock_now_ms() + (uint64_t)timeout_ms;
	while (c->status_got == NULL) {
		if (deadline != 0 && common_ms_left(deadline) == 0) {
			r = -ETIMEDOUT;
			break;
		}
		r = client_step(c, deadline != 0 ? common_ms_left(deadline) :
		    -1);
		if (r < 0 && r != -EINTR && c->status_got == NULL &&
		    (c->conn.dead || r == -ENOMEM))
			break;
		r = 0;
	}
	c->status_wait = false;
	if (c->status_got == NULL)
		return r != 0 ? r : -ENOTCONN;
	*ret = c->status_got;
	c->status_got = NULL;
	return 0;
}

/* Handles an ACCEPTED: a detached job's one answer, as PB_ACCEPTED. */
static int
client_accepted(struct pb_client *c, const struct packet *p)
{
	struct client_job	*j;
	struct pb_result	*r;

	HASH_FIND(hh, c->jobs, p->id, PB_ID_LEN, j);
	if (j == NULL)
		return 0;
	/* Joined (unique): the id to know it by is the live job's. */
	if ((r = client_result_new((p->has & PF_JOINED) ? p->joined : p->id,
	    PB_ACCEPTED, 0, NULL, 0, NULL, 0)) == NULL)
		return -ENOMEM;
	client_deliver(c, j, r);
	return 0;
}

/*
 * Handles a RESULT: the job leaves the table and its result is handed on.
 * -ENOMEM leaves everything as it was, for common_process() to retry.
 */
static int
client_result(struct pb_client *c, const struct packet *p)
{
	struct client_job	*j;
	struct pb_result	*r;
	const char		*error = NULL;

	HASH_FIND(hh, c->jobs, p->id, PB_ID_LEN, j);
	if (j == NULL)
		return 0;	/* not ours, detached, or given up on */
	if (p->has & PF_ERROR)
		error = (const char *)p->error.ptr;
	r = client_result_new(p->id, client_status(p->status), p->attempts,
	    p->payload.ptr, p->payload.len, error, p->error.len);
	if (r == NULL)
		return -ENOMEM;
	client_deliver(c, j, r);
	return 0;
}

/* Handles one packet from the broker for a client. */
static int
client_packet(struct bconn *b, const struct packet *p, void *arg)
{
	struct pb_client	*c = arg;
	struct client_job	*j;

	switch (p->type) {
	case PKT_RESULT:
		return client_result(c, p);
	case PKT_ACCEPTED:
		return client_accepted(c, p);
	case PKT_JOB:
		return client_job_info(c, p);
	case PKT_PROGRESS:
		HASH_FIND(hh, c->jobs, p->id, PB_ID_LEN, j);
		if (j != NULL && j->on_progress != NULL) {
			c->nevents++;
			j->on_progress(c, p->id, p->payload.ptr,
			    p->payload.len, j->userdata);
		}
		return 0;
	case PKT_ERROR:
		/* NOT_FOUND for a cancel: the job, if live, still answers. */
		client_set_error(c, "%s", b->err);
		return 0;
	case PKT_BYE:
		client_set_error(c, "the broker is going away%s%s",
		    b->bye[0] != '\0' ? ": " : "", b->bye);
		return 0;
	default:
		return 0;
	}
}

/*
 * Delivers every pending job as PB_DISCONNECTED, once: the connection is
 * dead and everything it brought has been handled. 0 or -ENOMEM.
 */
static int
client_lost(struct pb_client *c)
{
	struct bconn		*b = &c->conn;
	struct client_job	*j;
	struct pb_result	*r;
	const char		*why;

	if (b->got_bye && b->bye[0] != '\0')
		why = b->bye;
	else if (b->why[0] != '\0')
		why = b->why;
	else
		why = "connection to the broker lost";
	if (!c->lost) {
		c->lost = true;
		client_set_error(c, "%s", why);
	}
	while ((j = c->jobs) != NULL) {
		r = client_result_new(j->id, PB_DISCONNECTED, 0, NULL, 0, why,
		    strlen(why));
		if (r == NULL)
			return -ENOMEM;
		client_deliver(c, j, r);
	}
	return 0;
}

/*
 * One round: waits up to wait_ms for input unless a frame is already
 * buffered, then handles every whole frame. When the connection is dead,
 * delivers the pending jobs as PB_DISCONNECTED and returns its error;
 * -EINTR when a signal cut the wait short.
 */
static int
client_step(struct pb_client *c, int wait_ms)
{
	struct bconn	*b = &c->conn;
	int		 r;

	/* What a cork held goes out before anything waits or is handled. */
	if (c->corked && !b->dead && b->out_off < b->out.size)
		(void)common_push(b);
	if (!b->dead && !common_has_frame(b)) {
		r = common_wait(b, wait_ms);
		if (r < 0 && !b->dead)
			return r;
	}
	r = common_process(b, client_packet, c);
	if (r < 0 && !b->dead)
		return r;	/* ENOMEM: try again later */
	if (b->dead) {
		if ((r = client_lost(c)) != 0)
			return r;
		return b->dead_err;
	}
	return 0;
}

/* Connects to the list from eps[start] on; 0 with c->cur set, or errno. */
static int
client_open(struct pb_client *c, size_t start)
{
	struct pb_options	opts = {
		.name = c->name,
		.token = c->token,
		.connect_timeout_ms = c->connect_timeout_ms,
	};

	return common_open_any(&c->conn, c->eps, start, ROLE_CLIENT, &opts,
	    &c->cur);
}

/* Connects and shakes hands as a client; see patchbay.h. */
int
pb_client_connect(const char *endpoint, const struct pb_options *opts,
    struct pb_client **ret)
{
	struct pb_client	*c;
	size_t			 start = 0;
	int			 r;

	if (ret == NULL)
		return -EINVAL;
	common_set_connect_error("%s", "");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -ENOMEM;
	common_init(&c->conn);
	if ((r = common_endpoints(endpoint, &c->eps)) != 0)
		goto fail;
	c->neps = strv_len(c->eps);
	r = -ENOMEM;
	if (opts != NULL) {
		if (opts->name != NULL && (c->name = strdup(opts->name)) == NULL)
			goto fail;
		if (opts->token != NULL &&
		    (c->token = strdup(opts->token)) == NULL)
			goto fail;
		c->connect_timeout_ms = opts->connect_timeout_ms;
		/* Spread clients over the list: each starts somewhere else. */
		if (opts->spread)
			start = (size_t)(clock_now_ms() ^
			    ((uint64_t)getpid() * 2654435761u)) % c->neps;
	}
	if ((r = client_open(c, start)) != 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	pb_client_free(c);
	return r;
}

/*
 * The connection is dead: delivers what was pending on it as
 * PB_DISCONNECTED, then connects to the next broker of the list (the same
 * one when it is the only one). 0, or -ENOTCONN with the reason in
 * last_error, or -ENOMEM (nothing changed; call again).
 */
static int
client_failover(struct pb_client *c)
{
	int	r;

	if ((r = client_lost(c)) != 0)
		return r;
	common_reset(&c->conn);
	if (client_open(c, (c->cur + 1) % c->neps) != 0) {
		client_set_error(c, "no broker to fail over to: %s",
		    common_connect_error());
		return -ENOTCONN;
	}
	c->lost = false;
	return 0;
}

/* Closes the connection and frees c with its pending jobs; NULL ok. */
void
pb_client_free(struct pb_client *c)
{
	struct client_job	*j, *tmp;

	if (c == NULL)
		return;
	HASH_ITER(hh, c->jobs, j, tmp) {
		HASH_DEL(c->jobs, j);
		free(j);
	}
	common_clear(&c->conn);
	strv_free(c->eps);
	free(c->name);
	free(c->token);
	free(c);
}

/*
 * Makes a job id. uuid_generate() costs about 2 us and six system calls
 * (libuuid reseeds on every call), more than the rest of a submit, so one
 * random UUID from it serves CLIENT_IDS_PER_UUID ids: the last two bytes
 * are XORed with a counter. The ids stay unique (a counter under one
 * 122-bit random prefix) and keep the UUID's version and variant bits.
 */
static void
client_new_id(struct pb_client *c, uint8_t *id)
{
	if (c->id_left == 0) {
		uuid_generate(c->id_base);
		c->id_left = CLIENT_IDS_PER_UUID;
		c->id_next = 0;
	}
	memcpy(id, c->id_base, PB_ID_LEN);
	id[PB_ID_LEN - 2] ^= (uint8_t)(c->id_next >> 8);
	id[PB_ID_LEN - 1] ^= (uint8_t)c->id_next;
	c->id_next++;
	c->id_left--;
}

/* Checks the arguments of a RUN; 0 or -EINVAL with a sentence. */
static int
client_check_run(struct pb_client *c, const char *fn, const void *payload,
    size_t len, const struct pb_run_options *opts)
{
	size_t	fnlen;

	if (fn == NULL || (payload == NULL && len > 0))
		return -EINVAL;
	fnlen = strnlen(fn, PROTO_MAX_FN_LEN + 1);
	if (fnlen == 0 || fnlen > PROTO_MAX_FN_LEN) {
		client_set_error(c, "function name must be 1 to %d bytes",
		    PROTO_MAX_FN_LEN);
		return -EINVAL;
	}
	if (opts != NULL && (opts->priority < PROTO_PRIORITY_MIN ||
	    opts->priority > PROTO_PRIORITY_MAX)) {
		client_set_error(c, "priority %d is not in %d..%d",
		    opts->priority, PROTO_PRIORITY_MIN, PROTO_PRIORITY_MAX);
		return -EINVAL;
	}
	return 0;
}

/*
 * Records the job as pending with its callbacks or slot (unless detached),
 * then encodes and sends its RUN. Writes the new id to id. Recording first
 * means a job the broker has is always one we know; a RUN that cannot be
 * encoded takes the record back, so -ENOMEM leaves no trace.
 */
static int
client_submit(struct pb_client *c, const char *fn, const void *payload,
    size_t len, const struct pb_run_options *opts, pb_result_fn on_result,
    pb_progress_fn on_progress, void *userdata, struct pb_result **slot,
    uint8_t id[PB_ID_LEN])
{
	struct bconn		*b = &c->conn;
	struct client_job	*j = NULL;
	struct packet		 p;
	struct meta_buf		 mb;
	struct pbytes		 meta = { NULL, 0 };
	int			 r;

	if ((r = client_check_run(c, fn, payload, len, opts)) != 0)
		return r;
	if (opts != NULL && (opts->nmeta > 0 || opts->trace) &&
	    (r = meta_build(opts, &mb, &meta, c->last_error)) != 0)
		return r;
	if ((b->dead || b->fd < 0) && (r = client_failover(c)) != 0)
		return r;
	if (len > b->max_frame) {
		client_set_error(c, "payload of %zu bytes is larger than the "
		    "broker's frame limit of %lu bytes", len,
		    (unsigned long)b->max_frame);
		return -EMSGSIZE;
	}
	/* A detached job too, until its ACCEPTED or refusal. */
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return -ENOMEM;

	client_new_id(c, id);
	if (j != NULL) {
		memcpy(j->id, id, PB_ID_LEN);
		j->on_result = on_result;
		j->on_progress = on_progress;
		j->userdata = userdata;
		j->slot = slot;
		COMMON_HASH_ADD(hh, c->jobs, id, PB_ID_LEN, j, r);
		if (r != 0) {
			free(j);
			return r;
		}
		c->npending++;
	}
	packet_init(&p, PKT_RUN);
	memcpy(p.id, id, PB_ID_LEN);
	p.fn.ptr = (const uint8_t *)fn;
	p.fn.len = (uint32_t)strlen(fn);
	if (len > 0) {
		p.has |= PF_PAYLOAD;
		p.payload.ptr = payload;
		p.payload.len = (uint32_t)len;
	}
	if (opts != NULL) {
		if (opts->timeout_ms > 0) {
			p.has |= PF_TIMEOUT;
			p.timeout_ms = opts->timeout_ms;
		}
		if (opts->retries > 0) {
			p.has |= PF_RETRIES;
			p.retries = opts->retries;
		}
		if (opts->priority != 0) {
			p.has |= PF_PRIORITY;
			p.priority = opts->priority;
		}
		if (opts->detach) {
			p.has |= PF_DETACH | PF_ACK;
			p.detach = p.ack = true;
		}
		if (opts->nowait) {
			p.has |= PF_NOWAIT;
			p.nowait = true;
		}
		if (opts->delay_ms > 0) {
			p.has |= PF_DELAY;
			p.delay_ms = opts->delay_ms;
		}
		if (opts->run_at_ms > 0) {
			p.has |= PF_RUN_AT;
			p.run_at = opts->run_at_ms;
		}
		if (opts->retry_on_error > 0) {
			p.has |= PF_RETRY_ON_ERROR;
			p.retry_on_error = opts->retry_on_error;
		}
		if (opts->backoff_ms > 0) {
			p.has |= PF_BACKOFF;
			p.backoff_ms = opts->backoff_ms;
		}
		if (opts->unique != NULL) {
			p.has |= PF_UNIQUE;
			p.unique.ptr = (const uint8_t *)opts->unique;
			p.unique.len = (uint32_t)strnlen(opts->unique,
			    PROTO_MAX_FN_LEN + 1);
		}
		if (meta.len > 0) {
			p.has |= PF_META;
			p.meta = meta;
		}
	}
	r = common_send(b, &p);
	if (r != 0 && r != -ENOTCONN) {
		if (j != NULL) {
			HASH_DEL(c->jobs, j);
			c->npending--;
			free(j);
		}
		if (r == -EMSGSIZE)
			client_set_error(c, "a RUN of %zu payload bytes is "
			    "larger than the broker's frame limit of %lu bytes",
			    len, (unsigned long)b->max_frame);
		return r;
	}
	/*
	 * -ENOTCONN here means the write failed: the job may or may not have
	 * reached the broker, so it stays pending and the next dispatch
	 * delivers it as PB_DISCONNECTED.
	 */
	return 0;
}

/* Submits a job without waiting; see patchbay.h. */
int
pb_client_submit(struct pb_client *c, const char *fn, const void *payload,
    size_t len, const struct pb_run_options *opts, pb_result_fn on_result,
    pb_progress_fn on_progress, void *userdata, uint8_t ret_id[PB_ID_LEN])
{
	uint8_t	id[PB_ID_LEN];
	int	r;

	if (c == NULL)
		return -EINVAL;
	r = client_submit(c, fn, payload, len, opts, on_result, on_progress,
	    userdata, NULL, id);
	if (r == 0 && ret_id != NULL)
		memcpy(ret_id, id, PB_ID_LEN);
	return r;
}

/* Runs one job and waits for its result; see patchbay.h. */
int
pb_client_run(struct pb_client *c, const char *fn, const void *payload,
    size_t len, const struct pb_run_options *opts, struct pb_result **ret)
{
	struct pb_result	*res = NULL;
	uint8_t			 id[PB_ID_LEN];
	uint64_t		 deadline = 0;
	int			 r;

	if (c == NULL || ret == NULL)
		return -EINVAL;
	r = client_submit(c, fn, payload, len, opts, NULL, NULL, NULL, &res,
	    id);
	if (r != 0)
		return r;
	/* A delayed job's timeout counts from when it is due. */
	if (opts != NULL && opts->timeout_ms > 0 && !opts->detach) {
		uint64_t	wall = clock_wall_ms(), wait = opts->delay_ms;

		if (opts->run_at_ms > wall)
			wait = opts->run_at_ms - wall;
		deadline = clock_now_ms() + wait + opts->timeout_ms +
		    CLIENT_RUN_MARGIN_MS;
	}
	while (res == NULL) {
		if (deadline != 0 && common_ms_left(deadline) == 0) {
			client_abandon(c, id);
			client_set_error(c, "no result within %lu ms",
			    (unsigned long)opts->timeout_ms + CLIENT_RUN_MARGIN_MS);
			return -ETIMEDOUT;
		}
		r = client_step(c, common_ms_left(deadline));
		if (r < 0 && r != -EINTR && res == NULL) {
			/* Not a lost connection (that fills res): ENOMEM. */
			client_abandon(c, id);
			return r;
		}
	}
	*ret = res;
	return 0;
}

/* Asks the broker to cancel a pending job; see patchbay.h. */
int
pb_client_cancel(struct pb_client *c, const uint8_t id[PB_ID_LEN])
{
	struct client_job	*j;
	struct packet		 p;

	if (c == NULL || id == NULL)
		return -EINVAL;
	HASH_FIND(hh, c->jobs, id, PB_ID_LEN, j);
	if (j == NULL)
		return -ENOENT;
	if (c->conn.dead)
		return -ENOTCONN;
	packet_init(&p, PKT_CANCEL);
	memcpy(p.id, id, PB_ID_LEN);
	return common_send(&c->conn, &p);
}

/* Handles what arrived, waiting up to timeout_ms; see patchbay.h. */
int
pb_client_dispatch(struct pb_client *c, int timeout_ms)
{
	uint64_t	 deadline = 0, results, events;
	int		 r, ms;

	if (c == NULL || timeout_ms < -1)
		return -EINVAL;
	results = c->nresults;
	events = c->nevents;
	if (timeout_ms > 0)
		deadline = clock_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		ms = common_wait_ms(timeout_ms, deadline);
		if ((r = client_step(c, ms)) == -EINTR)
			break;
		if (r < 0)
			return r;
		if (c->nevents != events || ms == 0)
			break;
	}
	return (int)(c->nresults - results > INT32_MAX ? INT32_MAX :
	    c->nresults - results);
}

/* Holds the client's output, or writes what was held; see patchbay.h. */
int
pb_client_cork(struct pb_client *c, bool on)
{
	if (c == NULL)
		return -EINVAL;
	if (on == c->corked)
		return 0;
	c->corked = on;
	if (on) {
		c->conn.cork++;
		return 0;
	}
	c->conn.cork--;
	return common_push(&c->conn);
}

/* The number of jobs whose results have not been delivered. */
size_t
pb_client_pending(const struct pb_client *c)
{
	return c == NULL ? 0 : c->npending;
}

/* The connection's socket, or -1. */
int
pb_client_fd(const struct pb_client *c)
{
	return c == NULL ? -1 : c->conn.fd;
}

/* Waits for a PING round trip; see patchbay.h. */
int
pb_client_sync(struct pb_client *c, int timeout_ms)
{
	uint64_t	deadline = 0;
	int64_t		n;
	int		r;

	if (c == NULL || timeout_ms < -1)
		return -EINVAL;
	if (c->conn.dead)
		return -ENOTCONN;
	if ((n = common_ping(&c->conn)) < 0)
		return (int)n;
	if (timeout_ms >= 0)
		deadline = clock_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		r = client_step(c, common_ms_left(deadline));
		if (r < 0 && r != -EINTR)
			return r;
		if (c->conn.pong_n >= (uint64_t)n)
			return 0;
		if (deadline != 0 && common_ms_left(deadline) == 0)
			return -ETIMEDOUT;
	}
}

/* The last error sentence; with c NULL, why the last connect failed. */
const char *
pb_client_last_error(const struct pb_client *c)
{
	if (c == NULL)
		return common_connect_error();
	return c->last_error;
}

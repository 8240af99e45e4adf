/*
 * test-switchboard.c: the routing rules of switchboard/, driven by calls.
 *
 * Every test builds a switchboard whose send callback copies each outgoing
 * packet into a log; the tests then look at the log the way a client or a
 * worker would see its socket: which peer got what, with which status,
 * attempt and payload, in which order. Time is a plain variable. The last
 * TCase drives thousands of random events and checks the one promise that
 * matters most: every non-detached RUN of a live client gets exactly one
 * terminal RESULT.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/internal.h"
#include "switchboard/switchboard.h"

/* A peer as the test sees it; its address is the switchboard's ctx. */
struct peer {
	const char	*name;
};

/* One packet the switchboard sent, copied out of the callback. */
struct sent {
	const struct peer	*to;
	enum packet_type	 type;
	unsigned		 id;
	uint32_t		 has;
	enum job_status		 status;
	uint64_t		 attempt;
	uint64_t		 attempts;
	uint64_t		 timeout_ms;
	char			 fn[PROTO_MAX_FN_LEN + 1];
	char			 payload[64];
	char			 error[PROTO_ERRLEN];
	uint8_t			 meta[256];	/* PF_META; the tests' are small */
	unsigned		 joined;	/* PF_JOINED: the job's id */
	uint32_t		 meta_len;
};

static struct sent		*sent_log;
static size_t			 nsent, sent_cap;
static struct switchboard	*sb;
static uint64_t			 now;
static struct packet		 pkt;

static struct peer c1 = { "c1" }, c2 = { "c2" };
static struct peer w1p = { "w1" }, w2p = { "w2" }, w3p = { "w3" };

/* Writes test id n into a 16-byte route id. */
static void
mkid(uint8_t id[PROTO_ID_LEN], unsigned n)
{
	memset(id, 0xab, PROTO_ID_LEN);
	id[0] = (uint8_t)(n >> 24);
	id[1] = (uint8_t)(n >> 16);
	id[2] = (uint8_t)(n >> 8);
	id[3] = (uint8_t)n;
}

/* Reads the test id back out of a route id. */
static unsigned
id_num(const uint8_t id[PROTO_ID_LEN])
{
	return (unsigned)id[0] << 24 | (unsigned)id[1] << 16 |
	    (unsigned)id[2] << 8 | id[3];
}

/* Copies a borrowed byte range into a NUL-terminated buffer, truncating. */
static void
copy_bytes(char *dst, size_t size, struct pbytes b)
{
	size_t	 n = b.len < size - 1 ? b.len : size - 1;

	if (n > 0)
		memcpy(dst, b.ptr, n);
	dst[n] = '\0';
}

/* The send callback: records what a peer would receive. */
static void
record(void *ctx, const struct packet *p, void *arg)
{
	struct sent	*s;

	ck_assert_ptr_eq(arg, &sent_log);
	if (nsent == sent_cap) {
		sent_cap = sent_cap ? sent_cap * 2 : 64;
		sent_log = realloc(sent_log, sent_cap * sizeof *sent_log);
		ck_assert_ptr_nonnull(sent_log);
	}
	s = &sent_log[nsent++];
	memset(s, 0, sizeof *s);
	s->to = ctx;
	s->type = p->type;
	s->id = id_num(p->id);
	s->has = p->has;
	s->status = p->status;
	s->attempt = p->attempt;
	s->attempts = p->attempts;
	s->timeout_ms = p->timeout_ms;
	copy_bytes(s->fn, sizeof s->fn, p->fn);
	if (p->has & PF_PAYLOAD)
		copy_bytes(s->payload, sizeof s->payload, p->payload);
	if (p->has & PF_ERROR)
		copy_bytes(s->error, sizeof s->error, p->error);
	if (p->has & PF_JOINED)
		s->joined = id_num(p->joined);
	if (p->has & PF_META) {
		ck_assert_uint_le(p->meta.len, sizeof s->meta);
		memcpy(s->meta, p->meta.ptr, p->meta.len);
		s->meta_len = p->meta.len;
	}
}

/* Replaces the test's switchboard with one built from config. */
static void
sb_reset(const struct switchboard_config *config)
{
	switchboard_free(sb);
	sb = switchboard_new(config, record, &sent_log);
	ck_assert_ptr_nonnull(sb);
}

/* Fixture: a fresh switchboard with the defaults, an empty log, t = 0. */
static void
setup(void)
{
	sb = NULL;
	sb_reset(NULL);
	nsent = 0;
	now = 0;
}

/* Fixture: frees everything, which must send nothing. */
static void
teardown(void)
{
	size_t	 before = nsent;

	switchboard_free(sb);
	sb = NULL;
	ck_assert_uint_eq(nsent, before);
	free(sent_log);
	sent_log = NULL;
	nsent = sent_cap = 0;
}

/* Finds the nth (from 0) packet of type to peer `to` (NULL: anyone) for id
 * (0: any id); NULL when there is none. */
static const struct sent *
find(const struct peer *to, enum packet_type type, unsigned id, int nth)
{
	size_t	 i;

	for (i = 0; i < nsent; i++) {
		const struct sent *s = &sent_log[i];

		if ((to == NULL || s->to == to) && s->type == type &&
		    (id == 0 || s->id == id) && nth-- == 0)
			return s;
	}
	return NULL;
}

/* Counts packets of type to `to` (NULL: anyone) for id (0: any id). */
static int
count(const struct peer *to, enum packet_type type, unsigned id)
{
	size_t	 i;
	int	 n = 0;

	for (i = 0; i < nsent; i++)
		if ((to == NULL || sent_log[i].to == to) &&
		    sent_log[i].type == type &&
		    (id == 0 || sent_log[i].id == id))
			n++;
	return n;
}

/* The RESULT sent for id, which must be the only one. */
static const struct sent *
result_of(unsigned id)
{
	ck_assert_int_eq(count(NULL, PKT_RESULT, id), 1);
	return find(NULL, PKT_RESULT, id, 0);
}

/* Asserts that job id was sent (as RUN) to worker w with this attempt. */
static void
assert_run_at(const struct peer *w, unsigned id, uint64_t attempt)
{
	const struct sent	*s;
	int			 i;

	for (i = 0; (s = find(NULL, PKT_RUN, id, i)) != NULL; i++)
		if (s->attempt == attempt)
			break;
	ck_assert_msg(s != NULL, "job %u attempt %llu was never dispatched",
	    id, (unsigned long long)attempt);
	ck_assert_msg(s->to == w, "job %u attempt %llu went to %s, not %s",
	    id, (unsigned long long)attempt, s->to->name, w->name);
}

/* The worker the last RUN for id went to. */
static const struct peer *
run_target(unsigned id)
{
	const struct sent	*s = NULL, *t;
	int			 i;

	for (i = 0; (t = find(NULL, PKT_RUN, id, i)) != NULL; i++)
		s = t;
	ck_assert_msg(s != NULL, "job %u was never dispatched", id);
	return s->to;
}

/* Fills the shared packet as a RUN for id and fn; callers adjust it. */
static struct packet *
run_packet(unsigned id, const char *fn)
{
	memset(&pkt, 0, sizeof pkt);
	pkt.type = PKT_RUN;
	mkid(pkt.id, id);
	pkt.fn.ptr = (const uint8_t *)fn;
	pkt.fn.len = (uint32_t)strlen(fn);
	return &pkt;
}

/* Submits a plain RUN and expects it accepted by the call. */
static void
run(struct sb_client *c, unsigned id, const char *fn)
{
	ck_assert_int_eq(switchboard_run(sb, c, run_packet(id, fn), now), 0);
}

/* Submits the shared packet as it was adjusted. */
static int
submit(struct sb_client *c)
{
	return switchboard_run(sb, c, &pkt, now);
}

/* Registers w for a comma-separated list of functions with capacity. */
static int
reg(struct sb_worker *w, uint32_t capacity, const char *fns)
{
	static char	 buf[1024];
	char		*p, *save = NULL;

	memset(&pkt, 0, sizeof pkt);
	pkt.type = PKT_REGISTER;
	pkt.capacity = capacity;
	snprintf(buf, sizeof buf, "%s", fns);
	for (p = strtok_r(buf, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save)) {
		pkt.fns[pkt.nfns].ptr = (const uint8_t *)p;
		pkt.fns[pkt.nfns].len = (uint32_t)strlen(p);
		pkt.nfns++;
	}
	return switchboard_register(sb, w, &pkt, now);
}

/* Adds a client for peer p. */
static struct sb_client *
client(struct peer *p)
{
	struct sb_client *c = switchboard_client_add(sb, p);

	ck_assert_ptr_nonnull(c);
	return c;
}

/* Adds a worker for peer p and registers it. */
static struct sb_worker *
worker(struct peer *p, uint32_t capacity, const char *fns)
{
	struct sb_worker *w = switchboard_worker_add(sb, p);

	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(reg(w, capacity, fns), 0);
	return w;
}

/* Worker w answers (id, attempt) with status and an optional payload. */
static int
answer_with(struct sb_worker *w, unsigned id, uint64_t attempt,
    enum job_status status, const char *payload, const char *error)
{
	memset(&pkt, 0, sizeof pkt);
	pkt.type = PKT_RESULT;
	mkid(pkt.id, id);
	pkt.attempt = attempt;
	pkt.status = status;
	if (payload != NULL) {
		pkt.has |= PF_PAYLOAD;
		pkt.payload.ptr = (const uint8_t *)payload;
		pkt.payload.len = (uint32_t)strlen(payload);
	}
	if (error != NULL) {
		pkt.has |= PF_ERROR;
		pkt.error.ptr = (const uint8_t *)error;
		pkt.error.len = (uint32_t)strlen(error);
	}
	return switchboard_result(sb, w, &pkt, now);
}

/* Worker w answers (id, attempt) OK with no payload. */
static int
answer(struct sb_worker *w, unsigned id, uint64_t attempt)
{
	return answer_with(w, id, attempt, JOB_OK, NULL, NULL);
}

/* Worker w sends PROGRESS for (id, attempt). */
static int
progress(struct sb_worker *w, unsigned id, uint64_t attempt, const char *data)
{
	memset(&pkt, 0, sizeof pkt);
	pkt.type = PKT_PROGRESS;
	mkid(pkt.id, id);
	pkt.attempt = attempt;
	pkt.has = PF_PAYLOAD;
	pkt.payload.ptr = (const uint8_t *)data;
	pkt.payload.len = (uint32_t)strlen(data);
	return switchboard_progress(sb, w, &pkt, now);
}

/* Client c cancels id. */
static int
cancel(struct sb_client *c, unsigned id)
{
	uint8_t	 raw[PROTO_ID_LEN];

	mkid(raw, id);
	return switchboard_cancel(sb, c, raw, now);
}

/* The in_flight a worker reports. */
static uint32_t
in_flight(const struct sb_worker *w)
{
	struct sb_worker_info	 info;

	switchboard_worker_info(w, &info);
	return info.in_flight;
}

/* The switchboard's stats. */
static struct sb_stats
stats(void)
{
	struct sb_stats	 st;

	switchboard_stats(sb, &st);
	return st;
}

/* ---- run ---- */

START_TEST(run_dispatches_to_registered_worker)
{
	struct sb_client	*c = client(&c1);
	const struct sent	*s;

	worker(&w1p, 4, "resize");
	run_packet(1, "resize");
	pkt.has |= PF_PAYLOAD;
	pkt.payload.ptr = (const uint8_t *)"cat.png";
	pkt.payload.len = 7;
	ck_assert_int_eq(submit(c), 0);

	s = find(&w1p, PKT_RUN, 1, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s->fn, "resize");
	ck_assert_str_eq(s->payload, "cat.png");
	ck_assert_uint_eq(s->attempt, 1);
	ck_assert(s->has & PF_PAYLOAD);
	ck_assert(!(s->has & PF_TIMEOUT));
	ck_assert_int_eq(count(&c1, PKT_RESULT, 0), 0);
}
END_TEST

START_TEST(run_payload_always_present)
{
	struct sb_client	*c = client(&c1);
	const struct sent	*s;

	worker(&w1p, 1, "f");
	run(c, 1, "f");
	s = find(&w1p, PKT_RUN, 1, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert(s->has & PF_PAYLOAD);
	ck_assert_str_eq(s->payload, "");
}
END_TEST

START_TEST(run_copies_fn_and_payload)
{
	struct sb_client	*c = client(&c1);
	char			 fn[] = "thumb", data[] = "original";

	run_packet(1, fn);
	pkt.has |= PF_PAYLOAD;
	pkt.payload.ptr = (const uint8_t *)data;
	pkt.payload.len = (uint32_t)strlen(data);
	ck_assert_int_eq(submit(c), 0);
	/* The caller's buffers are reused once the call returns. */
	memset(fn, 'x', sizeof fn - 1);
	memset(data, 'y', sizeof data - 1);

	worker(&w1p, 1, "thumb");
	ck_assert_str_eq(find(&w1p, PKT_RUN, 1, 0)->fn, "thumb");
	ck_assert_str_eq(find(&w1p, PKT_RUN, 1, 0)->payload, "original");
}
END_TEST

START_TEST(run_duplicate_id_refused)
{
	struct sb_client	*a = client(&c1), *b = client(&c2);
	struct sb_worker	*w = worker(&w1p, 4, "f");
	const struct sent	*s;

	run(a, 7, "f");
	run(b, 7, "f");
	s = find(&c2, PKT_RESULT, 7, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->status, JOB_DUPLICATE_ID);
	ck_assert_uint_eq(s->attempts, 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 7), 1);

	/* The first job is untouched and still answered to its client. */
	ck_assert_int_eq(answer(w, 7, 1), 0);
	s = find(&c1, PKT_RESULT, 7, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->status, JOB_OK);
	ck_assert_uint_eq(stats().results[JOB_DUPLICATE_ID], 1);

	/* Once answered, the id is free again. */
	run(b, 7, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 7), 2);
}
END_TEST

START_TEST(run_duplicate_id_detached_silent)
{
	struct sb_client	*a = client(&c1);

	worker(&w1p, 4, "f");
	run(a, 7, "f");
	run_packet(7, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 7), 1);
	ck_assert_uint_eq(stats().results[JOB_DUPLICATE_ID], 1);
}
END_TEST

/*
 * A delayed RUN is dispatched no earlier than due; its timeout counts from
 * then; a delayed job counts against max_queue, can be cancelled, goes
 * with its client, and is answered SHUTTING_DOWN at shutdown.
 */
START_TEST(run_delayed_due_then_dispatched)
{
	struct sb_client	*a = client(&c1);
	const struct sent	*s;

	worker(&w1p, 4, "f");
	run_packet(1, "f");
	pkt.has |= PF_DELAY | PF_TIMEOUT;
	pkt.delay_ms = 500;
	pkt.timeout_ms = 100;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(count(NULL, PKT_RUN, 1), 0);
	ck_assert_uint_eq(stats().delayed, 1);
	ck_assert_uint_eq(switchboard_next_deadline(sb), now + 500);
	now += 499;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RUN, 1), 0);
	now += 1;
	switchboard_tick(sb, now);
	assert_run_at(&w1p, 1, 1);
	ck_assert_uint_eq(stats().delayed, 0);
	/* The timeout starts at the due time: 100 ms from now, not gone. */
	s = find(&w1p, PKT_RUN, 1, 0);
	ck_assert_uint_eq(s->timeout_ms, 100);
	now += 100;
	switchboard_tick(sb, now);
	ck_assert_int_eq(result_of(1)->status, JOB_TIMEOUT);

	/* Cancelled while delayed: CANCELLED at once, never dispatched. */
	run_packet(2, "f");
	pkt.has |= PF_DELAY;
	pkt.delay_ms = 1000;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(switchboard_cancel(sb, a, pkt.id, now), 0);
	ck_assert_int_eq(result_of(2)->status, JOB_CANCELLED);
	now += 2000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RUN, 2), 0);
	ck_assert_uint_eq(stats().delayed, 0);

	/* Its client leaves: the delayed job goes with it. */
	run_packet(3, "f");
	pkt.has |= PF_DELAY;
	pkt.delay_ms = 1000;
	ck_assert_int_eq(submit(a), 0);
	switchboard_client_remove(sb, a, now);
	now += 2000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RUN, 3), 0);
	ck_assert_uint_eq(stats().delayed, 0);
}
END_TEST

/* Delays refused, and limits: both keys, too far, nowait, max_queue. */
START_TEST(run_delayed_refusals_and_limits)
{
	struct switchboard_config	 cfg = { .max_queue = 2 };
	struct sb_client		*a;

	sb_reset(&cfg);
	a = client(&c1);
	run_packet(1, "f");
	pkt.has |= PF_DELAY | PF_RUN_AT;
	pkt.delay_ms = 10;
	pkt.run_at = 10;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_BAD_REQUEST);
	ck_assert_str_eq(result_of(1)->error,
	    "give delay_ms or run_at, not both");
	run_packet(2, "f");
	pkt.has |= PF_DELAY;
	pkt.delay_ms = SB_MAX_DELAY_MS + 1;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_str_eq(result_of(2)->error,
	    "delay_ms is more than 366 days away");
	run_packet(3, "f");
	pkt.has |= PF_DELAY | PF_NOWAIT;
	pkt.delay_ms = 10;
	pkt.nowait = true;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(result_of(3)->status, JOB_BAD_REQUEST);
	/* run_at in the past: due at once, queued (no worker). */
	run_packet(4, "f");
	pkt.has |= PF_RUN_AT;
	pkt.run_at = 1;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_uint_eq(stats().delayed, 0);
	/* One queued and one delayed fill max_queue 2. */
	run_packet(5, "f");
	pkt.has |= PF_DELAY;
	pkt.delay_ms = 50;
	ck_assert_int_eq(submit(a), 0);
	run_packet(6, "f");
	pkt.has |= PF_DELAY;
	pkt.delay_ms = 50;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(result_of(6)->status, JOB_QUEUE_FULL);
	/* Shutdown answers the delayed job too. */
	switchboard_shutdown(sb, now);
	ck_assert_int_eq(result_of(5)->status, JOB_SHUTTING_DOWN);
	ck_assert_uint_eq(stats().delayed, 0);
}
END_TEST

/*
 * A detached RUN with ack: ACCEPTED when taken (delayed too), its refusal
 * otherwise, and nothing more about it.
 */
START_TEST(run_detached_ack_accepted_or_refused)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w;

	run_packet(1, "f");
	pkt.has |= PF_DETACH | PF_ACK;
	pkt.detach = pkt.ack = true;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(count(&c1, PKT_ACCEPTED, 1), 1);
	run_packet(2, "f");
	pkt.has |= PF_DETACH | PF_ACK | PF_NOWAIT;
	pkt.detach = pkt.ack = pkt.nowait = true;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(result_of(2)->status, JOB_NO_WORKER);
	ck_assert_int_eq(count(&c1, PKT_ACCEPTED, 2), 0);
	run_packet(3, "f");
	pkt.has |= PF_DETACH | PF_ACK | PF_DELAY;
	pkt.detach = pkt.ack = true;
	pkt.delay_ms = 10;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(count(&c1, PKT_ACCEPTED, 3), 1);
	/* Past no_worker_wait the detached jobs are still there. */
	now += SB_DEFAULT_NO_WORKER_WAIT_MS + 1000;
	switchboard_tick(sb, now);
	w = worker(&w1p, 4, "f");
	assert_run_at(&w1p, 1, 1);
	assert_run_at(&w1p, 3, 1);
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_OK, "done", NULL), 0);
	ck_assert_int_eq(count(&c1, PKT_RESULT, 1), 0);
}
END_TEST

/*
 * STATUS for every state: queued, delayed, running, done (a detached
 * job's kept outcome, with its payload), unknown; outcomes expire after
 * result_ttl_ms and the oldest go when max_result_bytes is reached.
 */
START_TEST(job_status_every_state)
{
	struct switchboard_config	 cfg = { .keep_results = true,
					    .result_ttl_ms = 1000,
					    .max_result_bytes = 2 * 1024 };
	struct sb_client		*a;
	struct sb_worker		*w;
	struct sb_job_status		 st;
	uint8_t				 id[PROTO_ID_LEN];
	static char			 big[1200];

	sb_reset(&cfg);
	a = client(&c1);
	run(a, 1, "f");
	mkid(id, 1);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_QUEUED);
	ck_assert_str_eq(st.fn, "f");
	run_packet(2, "f");
	pkt.has |= PF_DELAY | PF_DETACH;
	pkt.detach = true;
	pkt.delay_ms = 5000;
	ck_assert_int_eq(submit(a), 0);
	mkid(id, 2);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DELAYED);
	/* Detached job 3 runs and ends OK with a payload. */
	run_packet(3, "g");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(a), 0);
	w = worker(&w1p, 1, "g");
	mkid(id, 3);
	now += 30;
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_RUNNING);
	ck_assert_uint_eq(st.attempts, 1);
	ck_assert_uint_eq(st.age_ms, 30);
	ck_assert_int_eq(answer_with(w, 3, 1, JOB_OK, "three", NULL), 0);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DONE);
	ck_assert_int_eq(st.status, JOB_OK);
	ck_assert_uint_eq(st.payload_len, 5);
	ck_assert(memcmp(st.payload, "three", 5) == 0);
	ck_assert_str_eq(st.fn, "g");
	/* An attached job's result went to its client: not kept. */
	run(a, 4, "g");
	ck_assert_int_eq(answer_with(w, 4, 1, JOB_OK, "four", NULL), 0);
	mkid(id, 4);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_UNKNOWN);
	/* Two big outcomes do not fit 2 KiB: the first is forgotten. */
	memset(big, 'b', sizeof(big) - 1);
	for (unsigned n = 5; n <= 6; n++) {
		run_packet(n, "g");
		pkt.has |= PF_DETACH;
		pkt.detach = true;
		ck_assert_int_eq(submit(a), 0);
		ck_assert_int_eq(answer_with(w, n, 1, JOB_OK, big, NULL), 0);
	}
	mkid(id, 3);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_UNKNOWN);
	mkid(id, 6);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DONE);
	/* And after result_ttl_ms, nothing. */
	now += 1000;
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_UNKNOWN);
}
END_TEST

/* Collects the dead list's ids. */
static void
dead_collect(const struct sb_dead_info *d, void *arg)
{
	unsigned	*ids = arg;

	for (int i = 0; i < 8; i++)
		if (ids[i] == 0) {
			ids[i] = id_num(d->id);
			break;
		}
}

/*
 * retry_on_error: a detached job that its worker fails is tried again
 * after a backoff that doubles (within 20%), then goes to the dead list
 * with its last error; kick puts it back with its retries afresh, drop
 * removes it; only detached jobs may ask.
 */
START_TEST(retry_on_error_backoff_then_dead)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	struct sb_job_status	 st;
	uint8_t			 id[PROTO_ID_LEN];
	unsigned		 ids[8] = { 0 };
	uint64_t		 due;

	run_packet(1, "f");
	pkt.has |= PF_RETRY_ON_ERROR;
	pkt.retry_on_error = 2;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_str_eq(result_of(1)->error, "retry_on_error is for "
	    "detached jobs: an attached job's client gets the ERROR and "
	    "decides");

	run_packet(2, "f");
	pkt.has |= PF_DETACH | PF_RETRY_ON_ERROR | PF_BACKOFF;
	pkt.detach = true;
	pkt.retry_on_error = 2;
	pkt.backoff_ms = 1000;
	ck_assert_int_eq(submit(a), 0);
	assert_run_at(&w1p, 2, 1);
	ck_assert_int_eq(answer_with(w, 2, 1, JOB_ERROR, NULL, "first"), 0);
	/* Delayed by 800..1200 ms. */
	due = switchboard_next_deadline(sb);
	ck_assert_msg(due >= now + 800 && due <= now + 1200, "due %llu",
	    (unsigned long long)(due - now));
	ck_assert_uint_eq(stats().delayed, 1);
	now = due;
	switchboard_tick(sb, now);
	assert_run_at(&w1p, 2, 2);
	ck_assert_int_eq(answer_with(w, 2, 2, JOB_ERROR, NULL, "second"), 0);
	due = switchboard_next_deadline(sb);
	ck_assert_msg(due >= now + 1600 && due <= now + 2400, "due %llu",
	    (unsigned long long)(due - now));
	now = due;
	switchboard_tick(sb, now);
	assert_run_at(&w1p, 2, 3);
	ck_assert_int_eq(answer_with(w, 2, 3, JOB_ERROR, NULL, "third"), 0);
	/* Out of retries: dead, with its last error; no RESULT went out. */
	ck_assert_uint_eq(stats().dead, 1);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 2), 0);
	mkid(id, 2);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DEAD);
	ck_assert_str_eq(st.error, "third");
	ck_assert_uint_eq(st.attempts, 3);
	switchboard_foreach_dead(sb, "f", now, dead_collect, ids);
	ck_assert_uint_eq(ids[0], 2);
	/* Kicked: dispatched again, retries afresh; OK this time. */
	ck_assert_int_eq(switchboard_kick(sb, id, NULL, now), 1);
	ck_assert_uint_eq(stats().dead, 0);
	assert_run_at(&w1p, 2, 4);
	ck_assert_int_eq(answer_with(w, 2, 4, JOB_OK, "ok", NULL), 0);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DONE);
	ck_assert_int_eq(switchboard_kick(sb, id, NULL, now), -ENOENT);

	/* Another dies at once (no retry left) and is dropped. */
	run_packet(3, "f");
	pkt.has |= PF_DETACH | PF_RETRY_ON_ERROR;
	pkt.detach = true;
	pkt.retry_on_error = 1;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(answer_with(w, 3, 1, JOB_ERROR, NULL, "x"), 0);
	now = switchboard_next_deadline(sb);
	switchboard_tick(sb, now);
	ck_assert_int_eq(answer_with(w, 3, 2, JOB_ERROR, NULL, "y"), 0);
	ck_assert_uint_eq(stats().dead, 1);
	ck_assert_int_eq(switchboard_drop(sb, NULL, "g", now), 0);
	ck_assert_int_eq(switchboard_drop(sb, NULL, "f", now), 1);
	ck_assert_uint_eq(stats().dead, 0);
	mkid(id, 3);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_UNKNOWN);

	/*
	 * A TIMEOUT too: the attempt is CANCELled and keeps the worker's slot
	 * until the worker answers it; the job is tried again, then dead.
	 */
	run_packet(4, "f");
	pkt.has |= PF_DETACH | PF_RETRY_ON_ERROR | PF_TIMEOUT | PF_BACKOFF;
	pkt.detach = true;
	pkt.retry_on_error = 1;
	pkt.timeout_ms = 100;
	pkt.backoff_ms = 10;
	ck_assert_int_eq(submit(a), 0);
	assert_run_at(&w1p, 4, 1);
	now += 100;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 4), 1);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 4), 0);
	now = switchboard_next_deadline(sb);
	switchboard_tick(sb, now);
	/* Due, but the slot is the orphan's until the worker answers it. */
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_int_eq(answer_with(w, 4, 1, JOB_CANCELLED, NULL, NULL), 0);
	assert_run_at(&w1p, 4, 2);
	now += 100;
	switchboard_tick(sb, now);
	ck_assert_int_eq(answer_with(w, 4, 2, JOB_CANCELLED, NULL, NULL), 0);
	mkid(id, 4);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DEAD);
	ck_assert_str_eq(st.error, "timed out");
}
END_TEST

/*
 * The periodic sweep drops detached jobs queued longer than
 * detached_ttl_ms, and only those: attached ones wait for no_worker_wait.
 */
START_TEST(detached_ttl_expires_queued_detached_only)
{
	struct switchboard_config	 cfg = { .detached_ttl_ms = 1000,
					    .no_worker_wait_ms = 100000 };
	struct sb_client		*a;
	uint8_t				 id[PROTO_ID_LEN];
	struct sb_job_status		 st;

	sb_reset(&cfg);
	a = client(&c1);
	run(a, 1, "f");				/* attached */
	run_packet(2, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(a), 0);
	now += 500;
	run_packet(3, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(a), 0);
	now += 500;
	switchboard_expire_detached(sb, now);
	/* Job 2 waited 1000 ms: dropped; 3 (500 ms) and 1 stay. */
	ck_assert_uint_eq(stats().queued, 2);
	ck_assert_uint_eq(stats().detached_dropped, 1);
	mkid(id, 2);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DONE);
	ck_assert_int_eq(st.status, JOB_TIMEOUT);
	ck_assert_str_eq(st.error, "waited for a worker longer than "
	    "detached_ttl (1s)");
	now += 500;
	switchboard_expire_detached(sb, now);
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 1), 0);
}
END_TEST

/* Fills the shared packet as a RUN for id and fn with a unique key. */
static void
unique_packet(unsigned id, const char *fn, const char *key, bool detach)
{
	run_packet(id, fn);
	pkt.has |= PF_UNIQUE;
	pkt.unique.ptr = (const uint8_t *)key;
	pkt.unique.len = (uint32_t)strlen(key);
	if (detach) {
		pkt.has |= PF_DETACH | PF_ACK;
		pkt.detach = pkt.ack = true;
	}
}

/*
 * Unique jobs: while a job with the same function and key lives, an
 * attached RUN joins it and gets its RESULT under its own id, a detached
 * one is ACCEPTED naming the live job; once it ends the key is free; a
 * joiner that leaves hears nothing; the first client leaving cancels the
 * job for its joiners.
 */
START_TEST(unique_jobs_coalesce)
{
	struct sb_client	*a = client(&c1), *b = client(&c2);
	struct sb_worker	*w;
	const struct sent	*s;

	unique_packet(1, "f", "k", false);
	ck_assert_int_eq(submit(a), 0);
	unique_packet(2, "f", "k", false);
	ck_assert_int_eq(submit(b), 0);
	unique_packet(3, "f", "k", true);
	ck_assert_int_eq(submit(b), 0);
	s = find(&c2, PKT_ACCEPTED, 3, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->joined, 1);
	ck_assert_uint_eq(stats().queued, 1);
	/* Another function, or another key: another job. */
	unique_packet(4, "g", "k", false);
	ck_assert_int_eq(submit(a), 0);
	ck_assert_uint_eq(stats().queued, 2);
	w = worker(&w1p, 1, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 1);
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_OK, "v", NULL), 0);
	ck_assert_str_eq(find(&c1, PKT_RESULT, 1, 0)->payload, "v");
	s = find(&c2, PKT_RESULT, 2, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->status, JOB_OK);
	ck_assert_str_eq(s->payload, "v");
	ck_assert_int_eq(count(NULL, PKT_RESULT, 3), 0);

	/* The key is free again: a new job. */
	unique_packet(5, "f", "k", false);
	ck_assert_int_eq(submit(a), 0);
	assert_run_at(&w1p, 5, 1);
	/* A joiner that leaves hears nothing; the job goes on. */
	unique_packet(6, "f", "k", false);
	ck_assert_int_eq(submit(b), 0);
	switchboard_client_remove(sb, b, now);
	ck_assert_int_eq(answer_with(w, 5, 1, JOB_ERROR, NULL, "no"), 0);
	ck_assert_int_eq(result_of(5)->status, JOB_ERROR);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 6), 0);

	/* The first client leaves: its joiners get CANCELLED. */
	b = client(&c2);
	unique_packet(7, "h", "k", false);
	ck_assert_int_eq(submit(a), 0);
	unique_packet(8, "h", "k", false);
	ck_assert_int_eq(submit(b), 0);
	switchboard_client_remove(sb, a, now);
	s = result_of(8);
	ck_assert_int_eq(s->status, JOB_CANCELLED);
	ck_assert_str_eq(s->error, "the client that sent it went away");

	/* unique is checked. */
	unique_packet(9, "f", "", false);
	ck_assert_int_eq(submit(b), 0);
	ck_assert_str_eq(result_of(9)->error, "unique is empty");
}
END_TEST

/* Joins are bounded: max_queue joiners a job, and max_jobs_per_client. */
START_TEST(unique_joins_bounded)
{
	struct switchboard_config	 cfg = { .max_queue = 1,
					    .max_jobs_per_client = 2 };
	struct sb_client		*a, *b;

	sb_reset(&cfg);
	a = client(&c1);
	b = client(&c2);
	unique_packet(1, "f", "k", false);
	ck_assert_int_eq(submit(a), 0);
	unique_packet(2, "f", "k", false);
	ck_assert_int_eq(submit(b), 0);
	unique_packet(3, "f", "k", false);
	ck_assert_int_eq(submit(b), 0);
	ck_assert_int_eq(result_of(3)->status, JOB_QUEUE_FULL);
	ck_assert_str_eq(result_of(3)->error, "this unique job has as many "
	    "joiners as max_queue");
	/* b's join counts: with one job of its own, it is at its limit. */
	unique_packet(4, "g", "k", false);
	ck_assert_int_eq(submit(b), 0);
	run_packet(5, "h");
	ck_assert_int_eq(submit(b), 0);
	ck_assert_int_eq(result_of(5)->status, JOB_QUEUE_FULL);
	switchboard_client_remove(sb, b, now);
	switchboard_client_remove(sb, a, now);
	ck_assert_uint_eq(stats().queued, 0);
}
END_TEST

START_TEST(run_bad_request_names_field)
{
	struct sb_client	*c = client(&c1);
	char			 longfn[PROTO_MAX_FN_LEN + 2];
	const struct sent	*s;

	worker(&w1p, 4, "f");
	run(c, 1, "");
	s = result_of(1);
	ck_assert_int_eq(s->status, JOB_BAD_REQUEST);
	ck_assert_str_eq(s->error, "fn is empty");

	memset(longfn, 'a', sizeof longfn - 1);
	longfn[sizeof longfn - 1] = '\0';
	run(c, 2, longfn);
	s = result_of(2);
	ck_assert_int_eq(s->status, JOB_BAD_REQUEST);
	ck_assert_str_eq(s->error, "fn is 256 bytes long, more than 255");

	run_packet(3, "f");
	pkt.has |= PF_PRIORITY;
	pkt.priority = 101;
	ck_assert_int_eq(submit(c), 0);
	s = result_of(3);
	ck_assert_int_eq(s->status, JOB_BAD_REQUEST);
	ck_assert_str_eq(s->error, "priority 101 is outside -100..100");

	run_packet(4, "f");
	pkt.has |= PF_PRIORITY;
	pkt.priority = -101;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(result_of(4)->status, JOB_BAD_REQUEST);

	/* The limits themselves are fine. */
	memset(longfn, 'a', sizeof longfn - 1);
	longfn[PROTO_MAX_FN_LEN] = '\0';
	run_packet(5, longfn);
	pkt.has |= PF_PRIORITY;
	pkt.priority = -100;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 5), 0);

	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 0);
	ck_assert_uint_eq(stats().results[JOB_BAD_REQUEST], 4);
	ck_assert_uint_eq(stats().submitted, 1);
}
END_TEST

START_TEST(run_without_client_refused)
{
	worker(&w1p, 4, "f");
	ck_assert_int_eq(switchboard_run(sb, NULL, run_packet(1, "f"), now),
	    -EINVAL);
	ck_assert_int_eq((int)nsent, 0);

	/* A detached job needs no client. */
	run_packet(2, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(NULL), 0);
	assert_run_at(&w1p, 2, 1);
}
END_TEST

/* ---- meta ---- */

/* The RUN meta of the tests: {"user": "al", "traceparent": TP}. */
#define META_TP	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
static const char	meta_raw[] = "\x82\xa4" "user" "\xa2" "al"
			    "\xab" "traceparent" "\xd9\x37" META_TP;
#define META_LEN	((uint32_t)sizeof meta_raw - 1)

/* Fills the shared packet as a RUN for id and fn carrying meta. */
static struct packet *
run_meta_packet(unsigned id, const char *fn, const void *meta, uint32_t len)
{
	run_packet(id, fn);
	pkt.has |= PF_META;
	pkt.meta.ptr = meta;
	pkt.meta.len = len;
	return &pkt;
}

/* Asserts that the RUN of (id, attempt) carried exactly meta_raw. */
static void
assert_run_meta(unsigned id, uint64_t attempt)
{
	const struct sent	*s;
	int			 i;

	for (i = 0; (s = find(NULL, PKT_RUN, id, i)) != NULL; i++)
		if (s->attempt == attempt)
			break;
	ck_assert_ptr_nonnull(s);
	ck_assert_msg(s->has & PF_META, "RUN %u/%llu has no meta", id,
	    (unsigned long long)attempt);
	ck_assert_uint_eq(s->meta_len, META_LEN);
	ck_assert_mem_eq(s->meta, meta_raw, META_LEN);
}

/* The meta of the live job id as the admin listing shows it. */
struct meta_seen {
	unsigned	 id;
	bool		 found;
	uint8_t		 meta[256];
	uint32_t	 len;
};

static void
collect_meta(const struct sb_job_info *ji, void *arg)
{
	struct meta_seen	*ms = arg;

	if (id_num(ji->id) != ms->id)
		return;
	ms->found = true;
	ms->len = ji->meta.len;
	ck_assert_uint_le(ji->meta.len, sizeof ms->meta);
	if (ji->meta.len > 0)
		memcpy(ms->meta, ji->meta.ptr, ji->meta.len);
}

/*
 * The client's meta reaches the worker byte for byte, whether the job is
 * dispatched at once or after waiting, and again on a retry; the admin
 * listing shows it meanwhile. The switchboard keeps its own copy.
 */
START_TEST(meta_goes_to_the_worker_verbatim)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w1, *w;
	struct meta_seen	 ms = { .id = 2 };
	uint8_t			 buf[sizeof meta_raw];

	w1 = worker(&w1p, 1, "f");
	memcpy(buf, meta_raw, sizeof buf);
	run_meta_packet(1, "f", buf, META_LEN);
	ck_assert_int_eq(submit(c), 0);
	assert_run_meta(1, 1);

	/* Queued (w1 is busy), with the caller's buffer gone meanwhile. */
	run_meta_packet(2, "f", buf, META_LEN);
	pkt.has |= PF_RETRIES;
	pkt.retries = 1;
	ck_assert_int_eq(submit(c), 0);
	memset(buf, 0xee, sizeof buf);
	switchboard_foreach_job(sb, collect_meta, &ms);
	ck_assert(ms.found);
	ck_assert_uint_eq(ms.len, META_LEN);
	ck_assert_mem_eq(ms.meta, meta_raw, META_LEN);

	w = worker(&w2p, 1, "f");
	assert_run_at(&w2p, 2, 1);
	assert_run_meta(2, 1);
	/* w2 dies: attempt 2 goes to w1 once it is free, meta and all. */
	switchboard_worker_remove(sb, w, now);
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_int_eq(answer(w1, 1, 1), 0);
	assert_run_at(&w1p, 2, 2);
	assert_run_meta(2, 2);
	ck_assert_int_eq(count(&c1, PKT_RESULT, 2), 0);
}
END_TEST

/* A job without meta, or with an empty map, sends none to its worker. */
START_TEST(meta_absent_or_empty_sends_none)
{
	struct sb_client	*c = client(&c1);
	struct meta_seen	 ms = { .id = 2 };

	worker(&w1p, 4, "f");
	run(c, 1, "f");
	ck_assert(!(find(&w1p, PKT_RUN, 1, 0)->has & PF_META));
	run_meta_packet(2, "f", "\x80", 1);
	ck_assert_int_eq(submit(c), 0);
	ck_assert(!(find(&w1p, PKT_RUN, 2, 0)->has & PF_META));
	switchboard_foreach_job(sb, collect_meta, &ms);
	ck_assert(ms.found);
	ck_assert_uint_eq(ms.len, 0);
}
END_TEST

/* A meta meta_check() refuses is a BAD_REQUEST naming the problem. */
START_TEST(meta_refused_is_bad_request)
{
	struct sb_client	*c = client(&c1);
	const struct sent	*s;

	worker(&w1p, 4, "f");
	run_meta_packet(1, "f", "\x81\xa3" "a b" "\xa1" "v", 7);
	ck_assert_int_eq(submit(c), 0);
	s = result_of(1);
	ck_assert_int_eq(s->status, JOB_BAD_REQUEST);
	ck_assert_str_eq(s->error, "meta key 'a b' may only hold A-Z a-z 0-9 "
	    "_ . - (byte 1 is not one)");
	run_meta_packet(2, "f", "\x81\xab" "traceparent" "\xa1" "x", 15);
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(result_of(2)->status, JOB_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(result_of(2)->error,
	    "meta 'traceparent' is not a W3C traceparent"));
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 0);
	ck_assert_uint_eq(stats().results[JOB_BAD_REQUEST], 2);
	/* The same id is free for a good RUN: nothing was kept. */
	run_meta_packet(1, "f", meta_raw, META_LEN);
	ck_assert_int_eq(submit(c), 0);
	assert_run_meta(1, 1);
}
END_TEST

/* The bytes of meta count against max_memory as a payload's do. */
START_TEST(meta_counts_against_max_memory)
{
	struct switchboard_config cfg = { .max_memory = 200 };
	struct sb_client	*c;

	sb_reset(&cfg);
	c = client(&c1);
	run_meta_packet(1, "f", meta_raw, META_LEN);	/* 78 bytes, queued */
	ck_assert_int_eq(submit(c), 0);
	run_meta_packet(2, "f", meta_raw, META_LEN);
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	run_meta_packet(3, "f", meta_raw, META_LEN);	/* 234 > 200 */
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(result_of(3)->status, JOB_QUEUE_FULL);
	/* Freed with the job: room again. */
	ck_assert_int_eq(cancel(c, 1), 0);
	run_meta_packet(4, "f", meta_raw, META_LEN);
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 4), 0);
}
END_TEST

/* ---- dispatch ---- */

START_TEST(dispatch_prefers_least_loaded)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*a = worker(&w1p, 10, "f");
	struct sb_worker	*b = worker(&w2p, 2, "f");

	/* Load w1 with three jobs while w2 is paused. */
	switchboard_worker_pause(sb, b, true, now);
	run(c, 1, "f");
	run(c, 2, "f");
	run(c, 3, "f");
	switchboard_worker_pause(sb, b, false, now);
	ck_assert_uint_eq(in_flight(a), 3);

	run(c, 4, "f");			/* w1 3/10, w2 0/2 */
	assert_run_at(&w2p, 4, 1);
	run(c, 5, "f");			/* w1 3/10 < w2 1/2, by ratio */
	assert_run_at(&w1p, 5, 1);
	run(c, 6, "f");			/* w1 4/10 < w2 1/2 */
	assert_run_at(&w1p, 6, 1);
	run(c, 7, "f");			/* 5/10 == 1/2: round robin */
	assert_run_at(&w2p, 7, 1);
	run(c, 8, "f");			/* w2 is full */
	assert_run_at(&w1p, 8, 1);
}
END_TEST

START_TEST(dispatch_round_robin_among_equals)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w[3];
	const struct peer	*expect[] = { &w1p, &w2p, &w3p, &w1p, &w2p,
					      &w3p };
	unsigned		 i;

	w[0] = worker(&w1p, 8, "f");
	w[1] = worker(&w2p, 8, "f");
	w[2] = worker(&w3p, 8, "f");
	for (i = 0; i < 6; i++) {
		const struct peer *to;

		run(c, i + 1, "f");
		to = run_target(i + 1);
		ck_assert_ptr_eq(to, expect[i]);
		/* Answer at once so that all three are idle again. */
		ck_assert_int_eq(answer(w[to == &w1p ? 0 : to == &w2p ? 1 : 2],
		    i + 1, 1), 0);
	}
}
END_TEST

START_TEST(dispatch_attempt_counts_from_one)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_RETRIES;
	pkt.retries = 2;
	ck_assert_int_eq(submit(c), 0);
	assert_run_at(&w1p, 1, 1);
	switchboard_worker_remove(sb, w, now);
	w = worker(&w2p, 1, "f");
	assert_run_at(&w2p, 1, 2);
	ck_assert_int_eq(answer(w, 1, 2), 0);
	ck_assert_uint_eq(result_of(1)->attempts, 2);
}
END_TEST

START_TEST(queue_orders_by_priority_then_arrival)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	const int		 prio[] = { 0, 5, 0, 5, -3, 100 };
	const unsigned		 order[] = { 6, 2, 4, 1, 3, 5 };
	unsigned		 i;

	run(c, 100, "f");			/* occupies the only slot */
	for (i = 0; i < 6; i++) {
		run_packet(i + 1, "f");
		pkt.has |= PF_PRIORITY;
		pkt.priority = prio[i];
		ck_assert_int_eq(submit(c), 0);
	}
	ck_assert_uint_eq(stats().queued, 6);
	ck_assert_int_eq(answer(w, 100, 1), 0);
	for (i = 0; i < 6; i++) {
		const struct sent *s = find(&w1p, PKT_RUN, 0, (int)i + 1);

		ck_assert_ptr_nonnull(s);
		ck_assert_uint_eq(s->id, order[i]);
		ck_assert_int_eq(answer(w, s->id, 1), 0);
	}
	ck_assert_uint_eq(stats().queued, 0);
}
END_TEST

START_TEST(dispatch_free_slot_takes_best_head_across_functions)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "a,b");

	run(c, 1, "a");				/* running */
	run(c, 2, "a");				/* queued, prio 0, older */
	run_packet(3, "b");
	pkt.has |= PF_PRIORITY;
	pkt.priority = 1;
	ck_assert_int_eq(submit(c), 0);		/* queued, prio 1 */
	run(c, 4, "b");				/* queued, prio 0, newest */

	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_uint_eq(find(&w1p, PKT_RUN, 0, 1)->id, 3);
	ck_assert_int_eq(answer(w, 3, 1), 0);
	ck_assert_uint_eq(find(&w1p, PKT_RUN, 0, 2)->id, 2);
	ck_assert_int_eq(answer(w, 2, 1), 0);
	ck_assert_uint_eq(find(&w1p, PKT_RUN, 0, 3)->id, 4);
}
END_TEST

START_TEST(register_dispatches_queued_work)
{
	struct sb_client	*c = client(&c1);

	run(c, 1, "a");
	run(c, 2, "b");
	run(c, 3, "c");
	worker(&w1p, 2, "c,a");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 2);
	assert_run_at(&w1p, 1, 1);
	assert_run_at(&w1p, 3, 1);
	ck_assert_uint_eq(stats().queued, 1);
}
END_TEST

START_TEST(register_again_changes_capacity)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run(c, 1, "f");
	run(c, 2, "f");
	run(c, 3, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 1);

	ck_assert_int_eq(reg(w, 3, "f"), 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 3);

	/* Lower: what runs keeps running, new work waits for room. */
	ck_assert_int_eq(reg(w, 1, "f"), 0);
	run(c, 4, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 4), 0);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(answer(w, 2, 1), 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 4), 0);
	ck_assert_int_eq(answer(w, 3, 1), 0);
	assert_run_at(&w1p, 4, 1);
}
END_TEST

START_TEST(register_again_changes_functions)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 2, "a");
	struct sb_worker_info	 info;

	run(c, 1, "a");
	ck_assert_int_eq(reg(w, 2, "b,b,c"), 0);
	switchboard_worker_info(w, &info);
	ck_assert_uint_eq(info.nfns, 2);
	ck_assert_str_eq(info.fns[0], "b");
	ck_assert_str_eq(info.fns[1], "c");

	run(c, 2, "a");				/* no longer served */
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);
	run(c, 3, "b");
	assert_run_at(&w1p, 3, 1);
	/* The job of the dropped function still completes. */
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_OK);
}
END_TEST

START_TEST(register_rejects_bad_packet)
{
	struct sb_worker	*w = switchboard_worker_add(sb, &w1p);

	ck_assert_int_eq(reg(w, PROTO_MAX_CAPACITY + 1, "f"), -EINVAL);
	ck_assert_int_eq(reg(w, 1, ""), -EINVAL);
	ck_assert_uint_eq(stats().functions, 0);
}
END_TEST

START_TEST(register_capacity_zero_drains)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 2, "f");

	run(c, 1, "f");
	assert_run_at(&w1p, 1, 1);
	/* Draining: the running job goes on, nothing new comes. */
	ck_assert_int_eq(reg(w, 0, "f"), 0);
	run(c, 2, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_OK);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);
	/* Another worker takes the queued job. */
	worker(&w2p, 1, "f");
	assert_run_at(&w2p, 2, 1);
}
END_TEST

START_TEST(queue_full)
{
	struct switchboard_config cfg = { .max_queue = 2 };
	struct sb_client	*c;

	sb_reset(&cfg);
	c = client(&c1);
	worker(&w1p, 1, "f");
	run(c, 1, "f");				/* running */
	run(c, 2, "f");
	run(c, 3, "f");
	run(c, 4, "f");
	ck_assert_int_eq(result_of(4)->status, JOB_QUEUE_FULL);
	ck_assert_uint_eq(result_of(4)->attempts, 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 1);
	ck_assert_uint_eq(stats().queued, 2);
	ck_assert_uint_eq(stats().results[JOB_QUEUE_FULL], 1);
}
END_TEST

/* A RUN of id for fn with len payload bytes (of 'x'). */
static int
run_sized(struct sb_client *c, unsigned id, const char *fn, size_t len)
{
	static uint8_t	big[4096];

	memset(big, 'x', sizeof big);
	ck_assert_uint_le(len, sizeof big);
	run_packet(id, fn);
	pkt.payload.ptr = big;
	pkt.payload.len = (uint32_t)len;
	pkt.has |= PF_PAYLOAD;
	return submit(c);
}

/*
 * max_queue_bytes, max_memory and max_jobs_per_client refuse a RUN with
 * QUEUE_FULL naming the limit; what was accepted is kept and runs.
 */
START_TEST(memory_limits_refuse_new_runs_only)
{
	struct switchboard_config cfg = { .max_queue_bytes = 2500,
	    .max_memory = 6000, .max_jobs_per_client = 5 };
	struct sb_client	*c, *d;
	struct sb_worker	*w;

	sb_reset(&cfg);
	c = client(&c1);
	d = client(&c2);
	/* Per function: two 1000-byte jobs fit 2500, the third does not. */
	ck_assert_int_eq(run_sized(c, 1, "f", 1000), 0);
	ck_assert_int_eq(run_sized(c, 2, "f", 1000), 0);
	ck_assert_int_eq(run_sized(c, 3, "f", 1000), 0);
	ck_assert_int_eq(result_of(3)->status, JOB_QUEUE_FULL);
	ck_assert_str_eq(result_of(3)->error, "the queue of 'f' holds its "
	    "max_queue_bytes (2500) of payloads");
	/* Another function's queue is its own. */
	ck_assert_int_eq(run_sized(c, 4, "g", 2000), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 4), 0);
	/* The broker's total: 4000 held, 1000 + the owner's 1500 is over. */
	switchboard_set_external_bytes(sb, 1500);
	ck_assert_int_eq(run_sized(d, 5, "h", 1000), 0);
	ck_assert_int_eq(result_of(5)->status, JOB_QUEUE_FULL);
	ck_assert_str_eq(result_of(5)->error, "the broker holds its "
	    "max_memory (6000) in payloads and output already");
	switchboard_set_external_bytes(sb, 0);
	/* Per client: c has 3 live jobs; 2 more, then refused. */
	ck_assert_int_eq(run_sized(c, 6, "h", 0), 0);
	ck_assert_int_eq(run_sized(c, 7, "h", 0), 0);
	ck_assert_int_eq(run_sized(c, 8, "h", 0), 0);
	ck_assert_int_eq(result_of(8)->status, JOB_QUEUE_FULL);
	ck_assert_str_eq(result_of(8)->error, "this connection already has 5 "
	    "live jobs (max_jobs_per_client)");
	/* Nothing accepted was lost: a worker runs all five. */
	w = worker(&w1p, 8, "f,g,h");
	ck_assert_uint_eq(in_flight(w), 5);
	for (unsigned id = 1; id <= 7; id++)
		if (id != 3 && id != 5)
			assert_run_at(&w1p, id, 1);
}
END_TEST

START_TEST(nowait_no_capacity)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w;

	/* No worker at all. */
	run_packet(1, "f");
	pkt.nowait = true;
	pkt.has |= PF_NOWAIT;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_NO_WORKER);

	/* A worker with room: dispatched. */
	w = worker(&w1p, 1, "f");
	run_packet(2, "f");
	pkt.nowait = true;
	pkt.has |= PF_NOWAIT;
	ck_assert_int_eq(submit(c), 0);
	assert_run_at(&w1p, 2, 1);

	/* Full: NO_WORKER at once rather than waiting. */
	run_packet(3, "f");
	pkt.nowait = true;
	pkt.has |= PF_NOWAIT;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(result_of(3)->status, JOB_NO_WORKER);
	ck_assert_uint_eq(stats().queued, 0);

	/* Paused: no capacity now either. */
	ck_assert_int_eq(answer(w, 2, 1), 0);
	switchboard_worker_pause(sb, w, true, now);
	run_packet(4, "f");
	pkt.nowait = true;
	pkt.has |= PF_NOWAIT;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(result_of(4)->status, JOB_NO_WORKER);
	ck_assert_uint_eq(stats().functions, 1);
}
END_TEST

/* ---- result and progress ---- */

START_TEST(result_forwarded_with_payload_and_error)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 2, "f");
	const struct sent	*s;

	run(c, 1, "f");
	run(c, 2, "f");
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_OK, "42", NULL), 0);
	ck_assert_int_eq(answer_with(w, 2, 1, JOB_ERROR, NULL, "disk full"),
	    0);
	s = result_of(1);
	ck_assert_ptr_eq(s->to, &c1);
	ck_assert_int_eq(s->status, JOB_OK);
	ck_assert_str_eq(s->payload, "42");
	ck_assert_uint_eq(s->attempts, 1);
	ck_assert(!(s->has & PF_ERROR));
	s = result_of(2);
	ck_assert_int_eq(s->status, JOB_ERROR);
	ck_assert_str_eq(s->error, "disk full");
	ck_assert(!(s->has & PF_PAYLOAD));
	ck_assert_uint_eq(in_flight(w), 0);
}
END_TEST

START_TEST(result_error_not_retried)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_RETRIES;
	pkt.retries = 3;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_ERROR, NULL, "boom"), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_ERROR);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 1), 1);
}
END_TEST

START_TEST(stale_result_wrong_attempt_dropped)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run(c, 1, "f");
	ck_assert_int_eq(answer(w, 1, 2), -ESTALE);
	ck_assert_int_eq(answer(w, 1, 0), -ESTALE);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	ck_assert_uint_eq(stats().stale, 2);
	ck_assert_uint_eq(in_flight(w), 1);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_OK);
}
END_TEST

START_TEST(stale_result_unknown_id_or_other_worker)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*a = worker(&w1p, 1, "f");
	struct sb_worker	*b = worker(&w2p, 1, "f");

	run(c, 1, "f");
	assert_run_at(&w1p, 1, 1);
	ck_assert_int_eq(answer(b, 1, 1), -ESTALE);	/* not b's job */
	ck_assert_int_eq(answer(a, 99, 1), -ESTALE);	/* unknown */
	ck_assert_int_eq(answer(a, 1, 1), 0);
	ck_assert_int_eq(answer(a, 1, 1), -ESTALE);	/* already done */
	ck_assert_uint_eq(stats().stale, 3);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 1), 1);
}
END_TEST

START_TEST(result_bad_status_rejected)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run(c, 1, "f");
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_TIMEOUT, NULL, NULL),
	    -EINVAL);
	ck_assert_int_eq(answer_with(w, 1, 1, JOB__MAX, NULL, NULL), -EINVAL);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	ck_assert_uint_eq(in_flight(w), 1);
}
END_TEST

START_TEST(progress_forwarded)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	const struct sent	*s;

	run(c, 1, "f");
	ck_assert_int_eq(progress(w, 1, 1, "10%"), 0);
	ck_assert_int_eq(progress(w, 1, 1, "20%"), 0);
	ck_assert_int_eq(count(&c1, PKT_PROGRESS, 1), 2);
	s = find(&c1, PKT_PROGRESS, 1, 1);
	ck_assert_str_eq(s->payload, "20%");
	ck_assert(s->has & PF_PAYLOAD);
	ck_assert_uint_eq(stats().progress, 2);

	ck_assert_int_eq(progress(w, 1, 2, "stale"), -ESTALE);
	ck_assert_int_eq(progress(w, 9, 1, "stale"), -ESTALE);
	ck_assert_uint_eq(stats().stale, 2);
	ck_assert_int_eq(count(&c1, PKT_PROGRESS, 0), 2);
	/* Progress is not terminal. */
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
}
END_TEST

START_TEST(progress_of_orphan_dropped_silently)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 10;
	ck_assert_int_eq(submit(c), 0);
	now = 10;
	switchboard_tick(sb, now);
	ck_assert_int_eq(progress(w, 1, 1, "late"), 0);
	ck_assert_int_eq(count(NULL, PKT_PROGRESS, 0), 0);
	ck_assert_uint_eq(stats().stale, 0);
}
END_TEST

/* ---- cancel ---- */

START_TEST(cancel_queued_answers_cancelled)
{
	struct sb_client	*c = client(&c1);

	worker(&w1p, 1, "f");
	run(c, 1, "f");
	run(c, 2, "f");				/* queued */
	ck_assert_int_eq(cancel(c, 2), 0);
	ck_assert_int_eq(result_of(2)->status, JOB_CANCELLED);
	ck_assert_uint_eq(result_of(2)->attempts, 0);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 0), 0);
	ck_assert_uint_eq(stats().queued, 0);
	/* It is gone: a second CANCEL finds nothing. */
	ck_assert_int_eq(cancel(c, 2), -ENOENT);
}
END_TEST

START_TEST(cancel_running_sends_cancel_to_worker)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	const struct sent	*s;

	run(c, 1, "f");
	ck_assert_int_eq(cancel(c, 1), 0);
	s = find(&w1p, PKT_CANCEL, 1, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->attempt, 1);
	ck_assert_int_eq(count(&c1, PKT_RESULT, 0), 0);

	/* Repeated: nothing more is sent. */
	ck_assert_int_eq(cancel(c, 1), 0);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 1), 1);

	/* The client gets the worker's answer. */
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_CANCELLED, NULL, NULL), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_CANCELLED);
	ck_assert_uint_eq(result_of(1)->attempts, 1);
}
END_TEST

START_TEST(cancel_other_clients_job_not_found)
{
	struct sb_client	*a = client(&c1), *b = client(&c2);

	worker(&w1p, 1, "f");
	run(a, 1, "f");
	run(a, 2, "f");
	ck_assert_int_eq(cancel(b, 1), -ENOENT);
	ck_assert_int_eq(cancel(b, 2), -ENOENT);
	ck_assert_int_eq(cancel(b, 3), -ENOENT);
	ck_assert_int_eq((int)nsent, 1);		/* only the first RUN */
}
END_TEST

START_TEST(cancel_detached_not_found)
{
	struct sb_client	*c = client(&c1);

	worker(&w1p, 1, "f");
	run_packet(1, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(cancel(c, 1), -ENOENT);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 0), 0);
}
END_TEST

/* ---- clients ---- */

START_TEST(client_remove_cancels_running_at_worker)
{
	struct sb_client	*a = client(&c1), *b = client(&c2);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	size_t			 mark;

	run(a, 1, "f");				/* running */
	run(a, 2, "f");				/* queued */
	run(b, 3, "f");				/* queued */
	switchboard_client_remove(sb, a, now);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 1), 1);
	ck_assert_uint_eq(find(&w1p, PKT_CANCEL, 1, 0)->attempt, 1);
	ck_assert_int_eq(count(&c1, PKT_RESULT, 0), 0);
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_uint_eq(stats().clients, 1);

	/* The slot stays taken until the worker answers, then frees. */
	ck_assert_uint_eq(in_flight(w), 1);
	mark = nsent;
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_CANCELLED, NULL, NULL), 0);
	ck_assert_uint_eq(stats().stale, 0);
	ck_assert_int_eq(count(&c1, PKT_RESULT, 0), 0);
	ck_assert_uint_gt(nsent, mark);
	assert_run_at(&w1p, 3, 1);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);
	/* Its id is free again at once. */
	run(b, 1, "f");
	ck_assert_int_eq(count(&c2, PKT_RESULT, 1), 0);
}
END_TEST

START_TEST(client_remove_keeps_detached)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(c), 0);
	run_packet(2, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(c), 0);		/* queued */
	switchboard_client_remove(sb, c, now);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 0), 0);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	assert_run_at(&w1p, 2, 1);
	ck_assert_int_eq(answer(w, 2, 1), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	ck_assert_uint_eq(stats().results[JOB_OK], 2);
}
END_TEST

/* ---- workers ---- */

START_TEST(worker_remove_retries_then_worker_lost)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	const struct sent	*s;

	run_packet(1, "f");
	pkt.has |= PF_RETRIES;
	pkt.retries = 1;
	ck_assert_int_eq(submit(c), 0);
	run(c, 2, "f");				/* queued, no retries */
	switchboard_worker_remove(sb, w, now);
	ck_assert_int_eq(count(&c1, PKT_RESULT, 0), 0);
	ck_assert_uint_eq(stats().queued, 2);

	w = worker(&w2p, 1, "f");
	assert_run_at(&w2p, 1, 2);		/* ahead of job 2 */
	ck_assert_uint_eq(stats().retried, 1);
	switchboard_worker_remove(sb, w, now);
	s = result_of(1);
	ck_assert_int_eq(s->status, JOB_WORKER_LOST);
	ck_assert_uint_eq(s->attempts, 2);

	/* Job 2 never ran: it waits for a worker, unharmed. */
	ck_assert_int_eq(count(&c1, PKT_RESULT, 2), 0);
	w = worker(&w3p, 1, "f");
	assert_run_at(&w3p, 2, 1);
	switchboard_worker_remove(sb, w, now);
	ck_assert_int_eq(result_of(2)->status, JOB_WORKER_LOST);
	ck_assert_uint_eq(result_of(2)->attempts, 1);
}
END_TEST

START_TEST(worker_remove_retry_goes_ahead_of_later_arrivals)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*a = worker(&w1p, 1, "f");
	struct sb_worker	*b = worker(&w2p, 1, "f");

	run(c, 1, "f");				/* w1 */
	run_packet(2, "f");
	pkt.has |= PF_RETRIES;
	pkt.retries = 1;
	ck_assert_int_eq(submit(c), 0);		/* w2 */
	assert_run_at(&w2p, 2, 1);
	run(c, 3, "f");				/* queued */
	switchboard_worker_remove(sb, b, now);
	ck_assert_int_eq(answer(a, 1, 1), 0);
	assert_run_at(&w1p, 2, 2);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 3), 0);
}
END_TEST

START_TEST(worker_remove_retry_dispatches_to_other_worker)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*a = worker(&w1p, 2, "f");

	run_packet(1, "f");
	pkt.has |= PF_RETRIES;
	pkt.retries = 1;
	ck_assert_int_eq(submit(c), 0);
	assert_run_at(&w1p, 1, 1);
	worker(&w2p, 2, "f");
	switchboard_worker_remove(sb, a, now);
	assert_run_at(&w2p, 1, 2);
	ck_assert_uint_eq(stats().retried, 1);
	ck_assert_uint_eq(stats().dispatched, 2);
}
END_TEST

START_TEST(worker_remove_cancelled_job_is_worker_lost)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_RETRIES;
	pkt.retries = 5;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(cancel(c, 1), 0);
	switchboard_worker_remove(sb, w, now);
	ck_assert_int_eq(result_of(1)->status, JOB_WORKER_LOST);
	ck_assert_uint_eq(stats().queued, 0);
}
END_TEST

START_TEST(worker_remove_orphans_vanish)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_TIMEOUT | PF_RETRIES;
	pkt.timeout_ms = 5;
	pkt.retries = 1;
	ck_assert_int_eq(submit(c), 0);
	now = 5;
	switchboard_tick(sb, now);
	ck_assert_int_eq(result_of(1)->status, JOB_TIMEOUT);
	switchboard_worker_remove(sb, w, now);
	/* No retry after a TIMEOUT, no second RESULT. */
	ck_assert_int_eq(count(NULL, PKT_RESULT, 1), 1);
	ck_assert_uint_eq(stats().queued, 0);
	ck_assert_uint_eq(stats().running, 0);
}
END_TEST

/* ---- timeouts ---- */

START_TEST(timeout_queued)
{
	struct sb_client	*c = client(&c1);

	worker(&w1p, 1, "f");
	run(c, 1, "f");
	now = 100;
	run_packet(2, "f");
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 50;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_uint_eq(switchboard_next_deadline(sb), 150);
	now = 149;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	now = 150;
	switchboard_tick(sb, now);
	ck_assert_int_eq(result_of(2)->status, JOB_TIMEOUT);
	ck_assert_uint_eq(result_of(2)->attempts, 0);
	ck_assert_uint_eq(stats().queued, 0);
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
}
END_TEST

START_TEST(timeout_running_keeps_slot_until_answer)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	const struct sent	*s;

	run_packet(1, "f");
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 100;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_uint_eq(find(&w1p, PKT_RUN, 1, 0)->timeout_ms, 100);
	ck_assert(find(&w1p, PKT_RUN, 1, 0)->has & PF_TIMEOUT);
	run_packet(2, "f");
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 500;
	ck_assert_int_eq(submit(c), 0);		/* queued */

	now = 100;
	switchboard_tick(sb, now);
	s = result_of(1);
	ck_assert_int_eq(s->status, JOB_TIMEOUT);
	ck_assert_uint_eq(s->attempts, 1);
	s = find(&w1p, PKT_CANCEL, 1, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->attempt, 1);
	ck_assert_uint_eq(in_flight(w), 1);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);

	/* The worker's late answer frees the slot, silently. */
	now = 120;
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_uint_eq(stats().stale, 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 1), 1);
	s = find(&w1p, PKT_RUN, 2, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->timeout_ms, 380);	/* what is left of 500 */
	/* A second answer to the same attempt is stale. */
	ck_assert_int_eq(answer(w, 1, 1), -ESTALE);
}
END_TEST

START_TEST(timeout_cancelled_job_not_cancelled_twice)
{
	struct sb_client	*c = client(&c1);

	worker(&w1p, 1, "f");
	run_packet(1, "f");
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 10;
	ck_assert_int_eq(submit(c), 0);
	ck_assert_int_eq(cancel(c, 1), 0);
	now = 10;
	switchboard_tick(sb, now);
	ck_assert_int_eq(result_of(1)->status, JOB_TIMEOUT);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 1), 1);
}
END_TEST

START_TEST(timeout_zero_means_none)
{
	struct sb_client	*c = client(&c1);

	worker(&w1p, 1, "f");
	run_packet(1, "f");
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 0;
	ck_assert_int_eq(submit(c), 0);
	ck_assert(!(find(&w1p, PKT_RUN, 1, 0)->has & PF_TIMEOUT));
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
	now = 1000000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
}
END_TEST

START_TEST(timeout_next_deadline_is_earliest)
{
	struct sb_client	*c = client(&c1);
	const uint64_t		 t[] = { 300, 100, 200 };
	unsigned		 i;

	for (i = 0; i < 3; i++) {
		run_packet(i + 1, "f");
		pkt.has |= PF_TIMEOUT;
		pkt.timeout_ms = t[i];
		ck_assert_int_eq(submit(c), 0);
	}
	ck_assert_uint_eq(switchboard_next_deadline(sb), 100);
	ck_assert_int_eq(cancel(c, 2), 0);
	ck_assert_uint_eq(switchboard_next_deadline(sb), 200);
	now = 1000;
	switchboard_tick(sb, now);
	/* Expired in deadline order; the no-worker wait (10 s) remains. */
	ck_assert_uint_eq(find(&c1, PKT_RESULT, 0, 1)->id, 3);
	ck_assert_uint_eq(find(&c1, PKT_RESULT, 0, 2)->id, 1);
	ck_assert_uint_eq(switchboard_next_deadline(sb),
	    SB_DEFAULT_NO_WORKER_WAIT_MS);
}
END_TEST

/* ---- no worker ---- */

START_TEST(no_worker_wait_expires)
{
	struct switchboard_config cfg = { .no_worker_wait_ms = 1000 };
	struct sb_client	*c;
	const struct sent	*s;

	sb_reset(&cfg);
	c = client(&c1);
	now = 50;
	run(c, 1, "f");
	now = 500;
	run(c, 2, "f");
	ck_assert_uint_eq(switchboard_next_deadline(sb), 1050);
	now = 1049;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	now = 1050;
	switchboard_tick(sb, now);
	s = result_of(1);
	ck_assert_int_eq(s->status, JOB_NO_WORKER);
	ck_assert_uint_eq(s->attempts, 0);
	ck_assert_int_eq(result_of(2)->status, JOB_NO_WORKER);
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
	ck_assert_uint_eq(stats().functions, 0);

	/* A new RUN starts a new wait. */
	run(c, 3, "f");
	ck_assert_uint_eq(switchboard_next_deadline(sb), 2050);
}
END_TEST

START_TEST(standby_function_waits_for_its_pool)
{
	struct switchboard_config cfg = { .no_worker_wait_ms = 1000 };
	struct sb_fn_info	 info;
	struct sb_client	*c;

	sb_reset(&cfg);
	c = client(&c1);
	now = 100;
	/* An on-demand pool serves f: known before any worker. */
	ck_assert_int_eq(switchboard_fn_standby(sb, "f", true, now), 0);
	ck_assert(switchboard_fn_lookup(sb, "f", &info));
	ck_assert_uint_eq(info.workers, 0);
	run(c, 1, "f");
	ck_assert(switchboard_fn_lookup(sb, "f", &info));
	ck_assert_uint_eq(info.queued, 1);
	ck_assert_uint_eq(info.free_slots, 0);
	/* Far past no_worker_wait: the job still waits for its worker. */
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
	now = 60000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
	worker(&w1p, 1, "f");
	assert_run_at(&w1p, 1, 1);

	/* Without its pool a function's jobs wait no_worker_wait again. */
	ck_assert_int_eq(switchboard_fn_standby(sb, "g", true, now), 0);
	run(c, 2, "g");
	ck_assert_int_eq(switchboard_fn_standby(sb, "g", false, now), 0);
	ck_assert_uint_eq(switchboard_next_deadline(sb), now + 1000);
	now += 1000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(result_of(2)->status, JOB_NO_WORKER);
	ck_assert(!switchboard_fn_lookup(sb, "g", &info));
	ck_assert_int_eq(switchboard_fn_standby(sb, "", true, now), -EINVAL);
}
END_TEST

START_TEST(no_worker_wait_cleared_by_register)
{
	struct switchboard_config cfg = { .no_worker_wait_ms = 1000 };
	struct sb_client	*c;

	sb_reset(&cfg);
	c = client(&c1);
	run(c, 1, "f");
	now = 900;
	worker(&w1p, 1, "f");
	assert_run_at(&w1p, 1, 1);
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
	run(c, 2, "f");
	now = 5000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
}
END_TEST

START_TEST(no_worker_wait_starts_when_last_worker_leaves)
{
	struct switchboard_config cfg = { .no_worker_wait_ms = 1000 };
	struct sb_client	*c;
	struct sb_worker	*a, *b;

	sb_reset(&cfg);
	c = client(&c1);
	a = worker(&w1p, 1, "f");
	b = worker(&w2p, 1, "f,g");
	run(c, 1, "f");
	run(c, 2, "f");
	run(c, 3, "f");				/* queued */
	now = 100;
	switchboard_worker_remove(sb, a, now);
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
	now = 200;
	ck_assert_int_eq(reg(b, 1, "g"), 0);	/* f loses its last worker */
	ck_assert_uint_eq(switchboard_next_deadline(sb), 1200);
	now = 1200;
	switchboard_tick(sb, now);
	ck_assert_int_eq(result_of(3)->status, JOB_NO_WORKER);
	ck_assert_int_eq(result_of(1)->status, JOB_WORKER_LOST);
	/* Job 2 still runs on w2 although w2 dropped f. */
	ck_assert_int_eq(count(NULL, PKT_RESULT, 2), 0);
	ck_assert_int_eq(answer(b, 2, 1), 0);
	ck_assert_int_eq(result_of(2)->status, JOB_OK);
}
END_TEST

START_TEST(no_worker_wait_counts_paused_as_registered)
{
	struct switchboard_config cfg = { .no_worker_wait_ms = 1000 };
	struct sb_client	*c;
	struct sb_worker	*w;

	sb_reset(&cfg);
	c = client(&c1);
	w = worker(&w1p, 1, "f");
	switchboard_worker_pause(sb, w, true, now);
	run(c, 1, "f");
	ck_assert_uint_eq(switchboard_next_deadline(sb), UINT64_MAX);
	now = 100000;
	switchboard_tick(sb, now);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 0), 0);
}
END_TEST

/* ---- detached ---- */

START_TEST(detached_gets_no_result)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");

	run_packet(1, "f");
	pkt.has |= PF_DETACH | PF_TIMEOUT;
	pkt.detach = true;
	pkt.timeout_ms = 10;
	ck_assert_int_eq(submit(c), 0);
	assert_run_at(&w1p, 1, 1);
	ck_assert_int_eq(progress(w, 1, 1, "half"), 0);
	run_packet(2, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(c), 0);		/* queued */
	run_packet(3, "");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(c), 0);		/* bad request */
	now = 10;
	switchboard_tick(sb, now);		/* job 1 times out */
	ck_assert_int_eq(answer(w, 1, 1), 0);	/* frees the slot */
	ck_assert_int_eq(answer(w, 2, 1), 0);

	ck_assert_int_eq(count(&c1, PKT_RESULT, 0), 0);
	ck_assert_int_eq(count(&c1, PKT_PROGRESS, 0), 0);
	ck_assert_uint_eq(stats().results[JOB_TIMEOUT], 1);
	ck_assert_uint_eq(stats().results[JOB_OK], 1);
	ck_assert_uint_eq(stats().results[JOB_BAD_REQUEST], 1);
	ck_assert_uint_eq(stats().progress, 0);
}
END_TEST

/* ---- pause ---- */

START_TEST(pause_holds_dispatch_resume_releases)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 2, "f");
	struct sb_worker_info	 info;

	run(c, 1, "f");
	switchboard_worker_pause(sb, w, true, now);
	switchboard_worker_info(w, &info);
	ck_assert(info.paused);
	run(c, 2, "f");
	run(c, 3, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 1);
	/* The running job stays and completes; its slot is not reused. */
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_OK);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 0), 1);

	switchboard_worker_pause(sb, w, false, now);
	assert_run_at(&w1p, 2, 1);
	assert_run_at(&w1p, 3, 1);
	ck_assert_uint_eq(stats().queued, 0);
}
END_TEST

/* ---- shutdown ---- */

START_TEST(shutdown_answers_everything)
{
	struct sb_client	*a = client(&c1), *b = client(&c2);
	struct sb_worker	*w = worker(&w1p, 2, "f");
	unsigned		 id;

	run(a, 1, "f");				/* running */
	run_packet(4, "f");
	pkt.has |= PF_DETACH;
	pkt.detach = true;
	ck_assert_int_eq(submit(a), 0);		/* running, detached */
	run(a, 2, "f");				/* queued */
	run(b, 3, "f");				/* queued */
	run(b, 5, "g");				/* queued, no worker */

	switchboard_shutdown(sb, now);
	for (id = 1; id <= 5; id++) {
		if (id == 4)
			continue;
		ck_assert_int_eq(result_of(id)->status, JOB_SHUTTING_DOWN);
	}
	ck_assert_ptr_eq(result_of(1)->to, &c1);
	ck_assert_ptr_eq(result_of(3)->to, &c2);
	ck_assert_uint_eq(result_of(1)->attempts, 1);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 1), 1);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 4), 0);

	/* Later RUNs are refused; late answers are dropped quietly. */
	run(a, 6, "f");
	ck_assert_int_eq(result_of(6)->status, JOB_SHUTTING_DOWN);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(answer(w, 4, 1), 0);
	ck_assert_int_eq(count(NULL, PKT_RESULT, 1), 1);
	ck_assert_int_eq(count(NULL, PKT_RUN, 0), 2);
	ck_assert_uint_eq(stats().results[JOB_SHUTTING_DOWN], 5);
	ck_assert_uint_eq(stats().queued + stats().running, 0);
}
END_TEST

/* ---- stats and info ---- */

/* Appends each function's name and numbers to a string. */
static void
collect_fn(const struct sb_fn_info *fi, void *arg)
{
	char	*buf = arg;

	snprintf(buf + strlen(buf), 256 - strlen(buf), "%s:%u/%u/%u/%u ",
	    fi->name, fi->queued, fi->running, fi->workers, fi->free_slots);
}

/* Appends each worker's name to a string. */
static void
collect_worker(const struct sb_worker_info *wi, void *arg)
{
	char			*buf = arg;
	const struct peer	*p = wi->ctx;

	snprintf(buf + strlen(buf), 256 - strlen(buf), "%s:%u/%u ", p->name,
	    wi->in_flight, wi->capacity);
}

START_TEST(info_lists_functions_and_workers)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w;
	char			 buf[256] = "";

	worker(&w2p, 3, "zip,alpha");
	w = worker(&w1p, 2, "mid");
	run(c, 1, "zip");
	run(c, 2, "mid");
	run(c, 3, "mid");
	run(c, 4, "mid");
	switchboard_worker_pause(sb, w, true, now);
	switchboard_foreach_fn(sb, collect_fn, buf);
	ck_assert_str_eq(buf, "alpha:0/0/1/2 mid:1/2/1/0 zip:0/1/1/2 ");
	buf[0] = '\0';
	switchboard_foreach_worker(sb, collect_worker, buf);
	ck_assert_str_eq(buf, "w2:1/3 w1:2/2 ");
}
END_TEST

START_TEST(stats_count_outcomes)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	struct sb_stats		 st;

	run(c, 1, "f");
	run(c, 2, "f");
	run(c, 1, "f");				/* duplicate */
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_int_eq(answer_with(w, 2, 1, JOB_ERROR, NULL, "x"), 0);
	ck_assert_int_eq(answer(w, 2, 1), -ESTALE);
	switchboard_stats(sb, &st);
	ck_assert_uint_eq(st.submitted, 2);
	ck_assert_uint_eq(st.dispatched, 2);
	ck_assert_uint_eq(st.results[JOB_OK], 1);
	ck_assert_uint_eq(st.results[JOB_ERROR], 1);
	ck_assert_uint_eq(st.results[JOB_DUPLICATE_ID], 1);
	ck_assert_uint_eq(st.stale, 1);
	ck_assert_uint_eq(st.workers, 1);
	ck_assert_uint_eq(st.clients, 1);
	ck_assert_uint_eq(st.functions, 1);
	ck_assert_uint_eq(st.queued, 0);
	ck_assert_uint_eq(st.running, 0);
}
END_TEST

/* Collects functions' info by name for the stats tests. */
struct fn_seen {
	struct sb_fn_info	 v[8];
	char			 names[8][PROTO_MAX_FN_LEN + 1];
	int			 n;
};

static void
collect_fn_stats(const struct sb_fn_info *fi, void *arg)
{
	struct fn_seen	*fs = arg;

	ck_assert_int_lt(fs->n, 8);
	fs->v[fs->n] = *fi;
	snprintf(fs->names[fs->n], sizeof(fs->names[0]), "%s", fi->name);
	fs->n++;
}

/*
 * Outcomes are counted per function name, by status, with refusals as
 * rejected; wait and run times land in their histogram buckets; and the
 * counts outlive the function (no worker, no job left).
 */
START_TEST(stats_per_function_outcomes_and_times)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	struct fn_seen		 fs = { .n = 0 };

	now = 1000;
	run(c, 1, "f");			/* dispatched at once: waited 0 */
	run(c, 2, "f");			/* queued */
	now = 1007;
	ck_assert_int_eq(answer(w, 1, 1), 0);	/* ran 7 ms; 2 waited 7 */
	run_packet(3, "f")->nowait = true;
	ck_assert_int_eq(submit(c), 0);		/* no free slot: refused */
	now = 1307;
	ck_assert_int_eq(answer_with(w, 2, 1, JOB_ERROR, NULL, "bad"), 0);
	run(c, 4, "g");				/* nobody serves g */

	switchboard_foreach_fn_stats(sb, collect_fn_stats, &fs);
	ck_assert_int_eq(fs.n, 2);
	ck_assert_str_eq(fs.names[0], "f");
	ck_assert_str_eq(fs.names[1], "g");
	ck_assert_uint_eq(fs.v[0].results[JOB_OK], 1);
	ck_assert_uint_eq(fs.v[0].results[JOB_ERROR], 1);
	ck_assert_uint_eq(fs.v[0].results[JOB_NO_WORKER], 1);
	ck_assert_uint_eq(fs.v[0].rejected, 1);
	ck_assert_uint_eq(fs.v[0].wait.count, 2);
	ck_assert_uint_eq(fs.v[0].wait.sum_ms, 7);
	ck_assert_uint_eq(fs.v[0].wait.buckets[0], 1);	/* <= 1 ms */
	ck_assert_uint_eq(fs.v[0].wait.buckets[2], 1);	/* 5 < 7 <= 10 */
	ck_assert_uint_eq(fs.v[0].run.count, 2);
	ck_assert_uint_eq(fs.v[0].run.sum_ms, 307);
	ck_assert_uint_eq(fs.v[0].run.buckets[2], 1);	/* 7 ms */
	ck_assert_uint_eq(fs.v[0].run.buckets[7], 1);	/* 250 < 300 <= 500 */
	ck_assert_uint_eq(fs.v[0].workers, 1);
	ck_assert_uint_eq(fs.v[0].capacity, 1);
	ck_assert_uint_eq(fs.v[1].queued, 1);
	ck_assert_uint_eq(fs.v[1].oldest_queued_at, 1307);
	ck_assert_uint_eq(fs.v[1].workers, 0);

	/* Unregistering f frees the function; its counts stay and grow. */
	ck_assert_int_eq(reg(w, 1, "h"), 0);
	run_packet(5, "f")->nowait = true;
	ck_assert_int_eq(submit(c), 0);
	fs.n = 0;
	switchboard_foreach_fn_stats(sb, collect_fn_stats, &fs);
	ck_assert_int_eq(fs.n, 3);
	ck_assert_str_eq(fs.names[0], "f");
	ck_assert_uint_eq(fs.v[0].workers, 0);
	ck_assert_uint_eq(fs.v[0].results[JOB_OK], 1);
	ck_assert_uint_eq(fs.v[0].results[JOB_NO_WORKER], 2);
	ck_assert_uint_eq(fs.v[0].rejected, 2);
	ck_assert_uint_eq(fs.v[0].run.count, 2);
}
END_TEST

/* Recording one outcome per job id, newest first, the ring bounded. */
struct outcome_seen {
	unsigned	 ids[SB_OUTCOMES + 8];
	uint8_t		 status[SB_OUTCOMES + 8];
	char		 last_error[120];
	char		 first_fn[16];
	int		 n;
};

static void
collect_outcome(const struct sb_outcome *o, void *arg)
{
	struct outcome_seen	*os = arg;

	if (os->n == 0) {
		snprintf(os->last_error, sizeof(os->last_error), "%s",
		    o->error);
		snprintf(os->first_fn, sizeof(os->first_fn), "%s", o->fn);
	}
	os->ids[os->n] = id_num(o->id);
	os->status[os->n] = o->status;
	os->n++;
}

START_TEST(stats_recent_outcomes_newest_first)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	struct outcome_seen	 os = { .n = 0 };

	for (unsigned id = 1; id <= SB_OUTCOMES + 5; id++) {
		run(c, id, "f");
		ck_assert_int_eq(answer(w, id, 1), 0);
	}
	run(c, 1000, "f");
	ck_assert_int_eq(answer_with(w, 1000, 1, JOB_ERROR, NULL,
	    "disk full"), 0);
	switchboard_foreach_outcome(sb, collect_outcome, &os);
	ck_assert_int_eq(os.n, SB_OUTCOMES);
	ck_assert_uint_eq(os.ids[0], 1000);
	ck_assert_uint_eq(os.status[0], JOB_ERROR);
	ck_assert_str_eq(os.last_error, "disk full");
	ck_assert_str_eq(os.first_fn, "f");
	ck_assert_uint_eq(os.ids[1], SB_OUTCOMES + 5);
	ck_assert_uint_eq(os.status[1], JOB_OK);
	ck_assert_uint_eq(os.ids[SB_OUTCOMES - 1], 7);
}
END_TEST

/* Names past SB_MAX_FN_STATS are counted together, not one by one. */
static void
count_fn(const struct sb_fn_info *fi, void *arg)
{
	(void)fi;
	(*(int *)arg)++;
}

/* Keeps only the last function seen, in fs->v[0]. */
static void
last_fn(const struct sb_fn_info *fi, void *arg)
{
	struct fn_seen	*fs = arg;

	fs->v[0] = *fi;
	snprintf(fs->names[0], sizeof(fs->names[0]), "%s", fi->name);
}

START_TEST(stats_function_names_are_bounded)
{
	struct sb_client	*c = client(&c1);
	struct fn_seen		 fs = { .n = 0 };
	char			 name[32];
	unsigned		 id;

	/* A name refused on arrival makes a record too: the bound holds. */
	for (id = 1; id <= SB_MAX_FN_STATS + 10; id++) {
		snprintf(name, sizeof(name), "fn%05u", id);
		run_packet(id, name)->nowait = true;
		ck_assert_int_eq(submit(c), 0);
	}
	switchboard_foreach_fn_stats(sb, count_fn, &fs.n);
	ck_assert_int_eq(fs.n, SB_MAX_FN_STATS + 1);
	fs.n = 0;
	switchboard_foreach_fn_stats(sb, last_fn, &fs);
	ck_assert_str_eq(fs.names[0], SB_FN_OTHER);
	ck_assert_uint_eq(fs.v[0].results[JOB_NO_WORKER], 10);
	ck_assert_uint_eq(fs.v[0].rejected, 10);
}
END_TEST

/* Live jobs are listed with their state, worker, attempt and deadline. */
struct job_seen {
	int	 queued, running, with_deadline;
	void	*worker;
	void	*client;
};

static void
collect_job(const struct sb_job_info *ji, void *arg)
{
	struct job_seen	*js = arg;

	if (ji->running) {
		js->running++;
		js->worker = ji->worker;
		ck_assert_uint_eq(ji->attempt, 1);
	} else {
		js->queued++;
		ck_assert_ptr_null(ji->worker);
		ck_assert_uint_eq(ji->since, 50);
	}
	if (ji->deadline != 0) {
		js->with_deadline++;
		ck_assert_uint_eq(ji->deadline, 50 + 1000);
	}
	js->client = ji->client;
	ck_assert_str_eq(ji->fn, "f");
}

START_TEST(stats_live_jobs_listed)
{
	struct sb_client	*c = client(&c1);
	struct job_seen		 js = { 0 };
	struct packet		*p;

	worker(&w1p, 1, "f");
	now = 50;
	p = run_packet(1, "f");
	p->timeout_ms = 1000;
	p->has |= PF_TIMEOUT;
	ck_assert_int_eq(submit(c), 0);
	run(c, 2, "f");
	run(c, 3, "f");
	switchboard_foreach_job(sb, collect_job, &js);
	ck_assert_int_eq(js.running, 1);
	ck_assert_int_eq(js.queued, 2);
	ck_assert_int_eq(js.with_deadline, 1);
	ck_assert_ptr_eq(js.worker, &w1p);
	ck_assert_ptr_eq(js.client, &c1);
}
END_TEST

/*
 * A burst that came and went between two sweeps still shows in jobs_peak,
 * so the broker knows to give its memory back; trimming frees the records
 * and starts the mark again.
 */
START_TEST(jobs_peak_remembers_a_drained_burst)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	struct sb_stats		 st;

	for (uint8_t id = 1; id <= 3; id++)
		run(c, id, "f");
	for (uint8_t id = 1; id <= 3; id++)
		ck_assert_int_eq(answer(w, id, 1), 0);
	switchboard_stats(sb, &st);
	ck_assert_uint_eq(st.queued + st.running, 0);
	ck_assert_uint_eq(st.jobs_peak, 3);
	ck_assert_uint_gt(switchboard_trim(sb), 0);
	switchboard_stats(sb, &st);
	ck_assert_uint_eq(st.jobs_peak, 0);
	ck_assert_uint_eq(switchboard_trim(sb), 0);

	/* Records come back from fresh slabs after a trim. */
	run(c, 4, "f");
	switchboard_stats(sb, &st);
	ck_assert_uint_eq(st.jobs_peak, 1);
	ck_assert_int_eq(answer(w, 4, 1), 0);
}
END_TEST

/* ---- randomized ---- */

#define R_CLIENTS	4
#define R_WORKERS	4
#define R_FNS		3
#define R_MAXJOBS	6000
#define R_MAXRUN	512

/* A random run's model of one job. */
struct r_job {
	int	 client;	/* -1: detached */
	int	 generation;	/* of that client slot */
	int	 results;
};

/* A random run's model of one worker: what it has been sent. */
struct r_worker {
	struct sb_worker	*w;
	struct peer		 peer;
	uint32_t		 capacity;
	int			 nrun;
	struct { unsigned id; uint64_t attempt; } run[R_MAXRUN];
};

/* A random run's model of one client slot. */
struct r_client {
	struct sb_client	*c;
	struct peer		 peer;
	int			 generation;
};

static struct r_job	 r_jobs[R_MAXJOBS + 1];
static struct r_worker	 r_workers[R_WORKERS];
static struct r_client	 r_clients[R_CLIENTS];
static unsigned		 r_seed;
static uint64_t		 r_results_sent;

/* A small deterministic generator, so a failure replays from its seed. */
static uint32_t
r_rand(void)
{
	r_seed = r_seed * 1103515245u + 12345u;
	return (r_seed >> 16) & 0x7fff;
}

/* The random run's send callback: checks every packet against the model. */
static void
r_send(void *ctx, const struct packet *p, void *arg)
{
	unsigned	 id = id_num(p->id);
	int		 i;

	(void)arg;
	for (i = 0; i < R_WORKERS; i++) {
		struct r_worker *rw = &r_workers[i];

		if (ctx != &rw->peer)
			continue;
		ck_assert_ptr_nonnull(rw->w);
		if (p->type == PKT_RUN) {
			ck_assert_int_lt(rw->nrun, (int)rw->capacity);
			ck_assert_int_lt(rw->nrun, R_MAXRUN);
			rw->run[rw->nrun].id = id;
			rw->run[rw->nrun].attempt = p->attempt;
			rw->nrun++;
		} else
			ck_assert_int_eq(p->type, PKT_CANCEL);
		return;
	}
	for (i = 0; i < R_CLIENTS; i++) {
		struct r_client *rc = &r_clients[i];

		if (ctx != &rc->peer)
			continue;
		ck_assert_msg(rc->c != NULL, "packet sent to a removed client");
		ck_assert_uint_ge(id, 1);
		ck_assert_uint_le(id, R_MAXJOBS);
		if (p->type == PKT_PROGRESS)
			return;
		ck_assert_int_eq(p->type, PKT_RESULT);
		ck_assert(p->status < JOB__MAX);
		r_results_sent++;
		if (p->status == JOB_DUPLICATE_ID)
			return;
		ck_assert_int_eq(r_jobs[id].client, i);
		ck_assert_int_eq(r_jobs[id].generation, rc->generation);
		r_jobs[id].results++;
		ck_assert_msg(r_jobs[id].results == 1,
		    "job %u got %d RESULTs", id, r_jobs[id].results);
		return;
	}
	ck_abort_msg("packet sent to an unknown peer");
}

/* Registers random functions and capacity for model worker i. */
static void
r_register(int i)
{
	static const char	*names[R_FNS] = { "f0", "f1", "f2" };
	struct r_worker		*rw = &r_workers[i];
	int			 k;

	memset(&pkt, 0, sizeof pkt);
	pkt.type = PKT_REGISTER;
	pkt.capacity = 1 + r_rand() % 4;
	for (k = 0; k < R_FNS; k++)
		if (r_rand() % 2 || (k == R_FNS - 1 && pkt.nfns == 0)) {
			pkt.fns[pkt.nfns].ptr = (const uint8_t *)names[k];
			pkt.fns[pkt.nfns].len = 2;
			pkt.nfns++;
		}
	/* The model must know the capacity before REGISTER dispatches. */
	rw->capacity = pkt.capacity;
	ck_assert_int_eq(switchboard_register(sb, rw->w, &pkt, now), 0);
}

/* Model worker i answers one of the attempts it was sent. */
static void
r_answer(int i)
{
	struct r_worker	*rw = &r_workers[i];
	int		 k, rc;

	if (rw->nrun == 0)
		return;
	k = (int)(r_rand() % (uint32_t)rw->nrun);
	memset(&pkt, 0, sizeof pkt);
	pkt.type = PKT_RESULT;
	mkid(pkt.id, rw->run[k].id);
	pkt.attempt = rw->run[k].attempt;
	pkt.status = (enum job_status)(r_rand() % 3);
	rw->run[k] = rw->run[--rw->nrun];
	rc = switchboard_result(sb, rw->w, &pkt, now);
	/* It was sent this attempt and never answered it: never stale. */
	ck_assert_int_eq(rc, 0);
}

/*
 * Sends a random RUN from a random client, usually with the fresh id `id`.
 * Now and then it reuses a recent id whose state the model knows: one
 * still live (the RUN must be refused DUPLICATE_ID) or one already
 * answered (the id is free again and starts a new job).
 */
static void
r_run(unsigned id)
{
	static const char	*fns[] = { "f0", "f1", "f2", "" };
	int			 ci = (int)(r_rand() % R_CLIENTS), rc;
	bool			 detached = r_rand() % 8 == 0;
	unsigned		 use = id;
	struct r_job		*j;

	if (r_clients[ci].c == NULL)
		detached = true;	/* a RUN needs a client unless detached */
	if (r_rand() % 20 == 0 && id > 1) {
		unsigned old = id - 1 - r_rand() % (id - 1 < 20 ? id - 1 : 20);

		j = &r_jobs[old];
		if (j->client >= 0 &&
		    r_clients[j->client].generation == j->generation &&
		    r_clients[j->client].c != NULL && j->results <= 1)
			use = old;
	}
	run_packet(use, use != id || r_rand() % 16 ? fns[r_rand() % 3] :
	    fns[3]);
	if (r_rand() % 2) {
		pkt.has |= PF_PRIORITY;
		pkt.priority = (int)(r_rand() % 7) - 3;
	}
	if (r_rand() % 3 == 0) {
		pkt.has |= PF_TIMEOUT;
		pkt.timeout_ms = r_rand() % 200;
	}
	if (r_rand() % 3 == 0) {
		pkt.has |= PF_RETRIES;
		pkt.retries = r_rand() % 3;
	}
	pkt.nowait = r_rand() % 10 == 0;
	pkt.detach = detached;

	if (use != id && r_jobs[use].results == 0) {
		/* Live: refused, and the live job must be left alone. */
		uint64_t before = r_results_sent;

		r_jobs[id].client = -1;
		ck_assert_int_eq(switchboard_run(sb, r_clients[ci].c, &pkt,
		    now), 0);
		ck_assert_uint_eq(r_results_sent, before + (detached ? 0 : 1));
		return;
	}
	j = &r_jobs[use];
	if (use != id)
		r_jobs[id].client = -1;
	j->client = detached ? -1 : ci;
	j->generation = detached ? 0 : r_clients[ci].generation;
	j->results = 0;
	rc = switchboard_run(sb, detached && r_rand() % 2 ? NULL :
	    r_clients[ci].c, &pkt, now);
	ck_assert_int_eq(rc, 0);
}

/* Checks the model's view of every worker against the switchboard's. */
static void
r_check_workers(void)
{
	int	 i;

	for (i = 0; i < R_WORKERS; i++)
		if (r_workers[i].w != NULL)
			ck_assert_uint_eq(in_flight(r_workers[i].w),
			    (uint32_t)r_workers[i].nrun);
}

START_TEST(exactly_one_terminal_result)
{
	struct switchboard_config cfg = { .max_queue = 8,
					  .no_worker_wait_ms = 300 };
	unsigned	 id = 0, runs = 0, step;
	uint64_t	 total = 0;
	struct sb_stats	 st;
	int		 i, r;

	r_seed = 12345u + (unsigned)_i * 7919u;
	switchboard_free(sb);
	sb = switchboard_new(&cfg, r_send, NULL);
	ck_assert_ptr_nonnull(sb);
	memset(r_jobs, 0, sizeof r_jobs);
	memset(r_workers, 0, sizeof r_workers);
	memset(r_clients, 0, sizeof r_clients);
	r_results_sent = 0;
	for (i = 0; i < R_CLIENTS; i++) {
		r_clients[i].peer.name = "client";
		r_clients[i].c = switchboard_client_add(sb, &r_clients[i].peer);
	}
	for (i = 0; i < R_WORKERS; i++) {
		r_workers[i].peer.name = "worker";
		r_workers[i].w = switchboard_worker_add(sb,
		    &r_workers[i].peer);
		r_register(i);
	}

	for (step = 0; id < R_MAXJOBS; step++) {
		int wi = (int)(r_rand() % R_WORKERS);
		int ci = (int)(r_rand() % R_CLIENTS);

		r = (int)(r_rand() % 100);
		if (r < 35) {
			r_run(++id);
			runs++;
		} else if (r < 70) {
			if (r_workers[wi].w != NULL)
				r_answer(wi);
		} else if (r < 74) {
			if (r_workers[wi].w != NULL && r_workers[wi].nrun) {
				int k = (int)(r_rand() %
				    (uint32_t)r_workers[wi].nrun);

				memset(&pkt, 0, sizeof pkt);
				mkid(pkt.id, r_workers[wi].run[k].id);
				pkt.attempt = r_workers[wi].run[k].attempt;
				pkt.has = PF_PAYLOAD;
				ck_assert_int_eq(switchboard_progress(sb,
				    r_workers[wi].w, &pkt, now), 0);
			}
		} else if (r < 80) {
			if (r_clients[ci].c != NULL && id > 0) {
				uint8_t raw[PROTO_ID_LEN];

				mkid(raw, id - r_rand() % (id < 30 ? id : 30));
				(void)switchboard_cancel(sb, r_clients[ci].c,
				    raw, now);
			}
		} else if (r < 88) {
			now += r_rand() % 60;
			if (r_rand() % 2)
				switchboard_tick(sb, now);
			else if (switchboard_next_deadline(sb) <= now)
				switchboard_tick(sb, now);
		} else if (r < 91) {
			if (r_workers[wi].w != NULL) {
				switchboard_worker_remove(sb, r_workers[wi].w,
				    now);
				r_workers[wi].w = NULL;
				r_workers[wi].nrun = 0;
			} else {
				r_workers[wi].w = switchboard_worker_add(sb,
				    &r_workers[wi].peer);
				r_register(wi);
			}
		} else if (r < 94) {
			if (r_workers[wi].w != NULL)
				r_register(wi);
		} else if (r < 97) {
			if (r_workers[wi].w != NULL) {
				struct sb_worker_info info;

				switchboard_worker_info(r_workers[wi].w,
				    &info);
				switchboard_worker_pause(sb, r_workers[wi].w,
				    !info.paused, now);
			}
		} else if (r < 99) {
			if (r_clients[ci].c != NULL) {
				struct sb_client *gone = r_clients[ci].c;

				/* Nothing may reach it, even during removal. */
				r_clients[ci].c = NULL;
				switchboard_client_remove(sb, gone, now);
			} else {
				r_clients[ci].generation++;
				r_clients[ci].c = switchboard_client_add(sb,
				    &r_clients[ci].peer);
			}
		} else {
			/* A stale answer: an attempt nobody was sent. */
			if (r_workers[wi].w != NULL && id > 0) {
				memset(&pkt, 0, sizeof pkt);
				mkid(pkt.id, id);
				pkt.attempt = 1000;
				pkt.status = JOB_OK;
				ck_assert_int_eq(switchboard_result(sb,
				    r_workers[wi].w, &pkt, now), -ESTALE);
			}
		}
		if (step % 64 == 0)
			r_check_workers();
	}
	r_check_workers();
	/* Odd seeds end with a shutdown: whatever is live is answered. */
	if (_i % 2)
		switchboard_shutdown(sb, now);

	/* Let everything finish: resume, answer, expire. */
	for (i = 0; i < R_WORKERS; i++) {
		if (r_workers[i].w == NULL) {
			r_workers[i].w = switchboard_worker_add(sb,
			    &r_workers[i].peer);
		}
		memset(&pkt, 0, sizeof pkt);
		pkt.type = PKT_REGISTER;
		pkt.capacity = 8;
		pkt.nfns = 3;
		pkt.fns[0] = (struct pbytes){ (const uint8_t *)"f0", 2 };
		pkt.fns[1] = (struct pbytes){ (const uint8_t *)"f1", 2 };
		pkt.fns[2] = (struct pbytes){ (const uint8_t *)"f2", 2 };
		r_workers[i].capacity = 8;
		ck_assert_int_eq(switchboard_register(sb, r_workers[i].w, &pkt,
		    now), 0);
		switchboard_worker_pause(sb, r_workers[i].w, false, now);
	}
	for (;;) {
		bool busy = false;

		for (i = 0; i < R_WORKERS; i++)
			while (r_workers[i].nrun > 0) {
				r_answer(i);
				busy = true;
			}
		switchboard_stats(sb, &st);
		if (!busy && st.queued == 0 && st.running == 0)
			break;
		now += 1000;
		switchboard_tick(sb, now);
	}

	for (i = 1; i <= (int)id; i++) {
		const struct r_job *j = &r_jobs[i];

		if (j->client < 0)
			continue;
		if (r_clients[j->client].c == NULL ||
		    r_clients[j->client].generation != j->generation)
			continue;	/* its client went away */
		ck_assert_msg(j->results == 1, "job %d got %d RESULTs", i,
		    j->results);
	}
	/* Every RUN has exactly one counted outcome. */
	switchboard_stats(sb, &st);
	for (i = 0; i < JOB__MAX; i++)
		total += st.results[i];
	ck_assert_uint_eq(total, runs);
	ck_assert_uint_eq(st.queued, 0);
	ck_assert_uint_eq(st.running, 0);
	ck_assert_uint_ge(st.retried, 1);
	ck_assert_uint_ge(st.results[JOB_TIMEOUT], 1);
	ck_assert_uint_ge(st.results[JOB_WORKER_LOST], 1);
	ck_assert_uint_ge(st.results[JOB_NO_WORKER], 1);
	ck_assert_uint_ge(st.results[JOB_QUEUE_FULL], 1);
	ck_assert_uint_ge(st.results[JOB_CANCELLED], 1);
	ck_assert_uint_ge(st.results[JOB_DUPLICATE_ID], 1);
	if (_i % 2)
		ck_assert_uint_ge(st.results[JOB_SHUTTING_DOWN], 1);
}
END_TEST


/* One job end as the job end callback reported it. */
struct job_end_rec {
	unsigned	 id;
	char		 fn[32];
	enum job_status	 status;
	uint32_t	 attempts;
	bool		 detached, answered;
	void		*client, *worker;
	char		 error[64];
};

static struct job_end_rec	ends[16];
static int			nends;

/* The job end callback of the tests: writes each end down. */
static void
job_end_record(const struct sb_job_end *o, void *arg)
{
	struct job_end_rec	*r = &ends[nends++];

	ck_assert_ptr_eq(arg, &ends);
	ck_assert_int_lt(nends, 16);
	memset(r, 0, sizeof(*r));
	r->id = id_num(o->id);
	snprintf(r->fn, sizeof(r->fn), "%.*s", (int)o->fn_len, o->fn);
	r->status = o->status;
	r->attempts = o->attempts;
	r->detached = o->detached;
	r->answered = o->answered;
	r->client = o->client;
	r->worker = o->worker;
	if (o->error != NULL)
		snprintf(r->error, sizeof(r->error), "%.*s",
		    (int)o->error_len, (const char *)o->error);
}

/*
 * Every end of a job reaches the job end callback, answered or not: an
 * ERROR with its text and worker, a detached job that timed out at its
 * worker, a detached RUN refused, a TIMEOUT in the queue; OK too.
 */
START_TEST(job_end_reports_every_end)
{
	struct sb_client	*c = client(&c1);
	struct sb_worker	*w = worker(&w1p, 2, "f");

	nends = 0;
	switchboard_set_job_end_cb(sb, job_end_record, &ends);
	run(c, 1, "f");
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_ERROR, NULL, "boom"), 0);
	ck_assert_int_eq(nends, 1);
	ck_assert_uint_eq(ends[0].id, 1);
	ck_assert_str_eq(ends[0].fn, "f");
	ck_assert_int_eq(ends[0].status, JOB_ERROR);
	ck_assert_str_eq(ends[0].error, "boom");
	ck_assert_ptr_eq(ends[0].client, &c1);
	ck_assert_ptr_eq(ends[0].worker, &w1p);
	ck_assert(ends[0].answered && !ends[0].detached);

	run_packet(2, "f");
	pkt.detach = true;
	pkt.has |= PF_TIMEOUT;
	pkt.timeout_ms = 10;
	ck_assert_int_eq(switchboard_run(sb, NULL, &pkt, now), 0);
	now = 10;
	switchboard_tick(sb, now);
	ck_assert_int_eq(nends, 2);
	ck_assert_uint_eq(ends[1].id, 2);
	ck_assert_int_eq(ends[1].status, JOB_TIMEOUT);
	ck_assert(ends[1].detached && !ends[1].answered);
	ck_assert_ptr_null(ends[1].client);
	ck_assert_ptr_eq(ends[1].worker, &w1p);
	ck_assert_uint_eq(ends[1].attempts, 1);

	run_packet(3, "");
	pkt.detach = true;
	ck_assert_int_eq(switchboard_run(sb, NULL, &pkt, now), 0);
	ck_assert_int_eq(nends, 3);
	ck_assert_int_eq(ends[2].status, JOB_BAD_REQUEST);
	ck_assert(ends[2].detached && !ends[2].answered);
	ck_assert_str_eq(ends[2].error, "fn is empty");

	/* An OK is counted, not reported. */
	run(c, 4, "f");
	ck_assert_int_eq(answer_with(w, 4, 1, JOB_OK, "x", NULL), 0);
	ck_assert_int_eq(nends, 3);
	ck_assert_int_eq(stats().results[JOB_OK], 1);
}
END_TEST

/* ---- store ---- */

/* A job as the fake store keeps it: a copy of the last sb_stored. */
struct fake_row {
	bool		 used;
	unsigned	 id;
	unsigned	 order;			/* PUT order */
	char		 fn[32];
	char		 payload[32];
	uint32_t	 payload_len;
	char		 unique[32];
	struct sb_stored s;			/* pointers fixed up on load */
	char		 error[64];
	bool		 has_error;
	size_t		 put_at;		/* nsent when PUT */
};

static struct fake_row	 fake[64];
static unsigned		 fake_puts, fake_updates, fake_dels;

/* The fake store's row for id, or NULL. */
static struct fake_row *
fake_find(unsigned id)
{
	for (size_t i = 0; i < 64; i++)
		if (fake[i].used && fake[i].id == id)
			return &fake[i];
	return NULL;
}

/* The store callback: PUT makes a row, UPDATE changes one, DEL ends it. */
static void
fake_store(enum sb_store_op op, const struct sb_stored *j, void *arg)
{
	struct fake_row	*r = fake_find(id_num(j->id));
	size_t		 i;

	ck_assert_ptr_eq(arg, fake);
	if (op == SB_STORE_DEL) {
		ck_assert_msg(r != NULL, "DEL of job %u, not stored",
		    id_num(j->id));
		r->used = false;
		fake_dels++;
		return;
	}
	if (op == SB_STORE_PUT) {
		ck_assert_msg(r == NULL, "PUT of job %u twice", id_num(j->id));
		for (i = 0; i < 64 && fake[i].used; i++)
			;
		ck_assert_uint_lt(i, 64);
		r = &fake[i];
		memset(r, 0, sizeof(*r));
		r->used = true;
		r->id = id_num(j->id);
		r->order = fake_puts++;
		r->put_at = nsent;
		ck_assert_uint_lt(j->fn_len, sizeof(r->fn));
		memcpy(r->fn, j->fn, j->fn_len);
		ck_assert_uint_lt(j->payload_len, sizeof(r->payload));
		memcpy(r->payload, j->payload, j->payload_len);
		r->payload_len = j->payload_len;
		ck_assert_uint_lt(j->unique_len, sizeof(r->unique));
		if (j->unique_len > 0)
			memcpy(r->unique, j->unique, j->unique_len);
		r->s = *j;
	} else {
		ck_assert_msg(r != NULL, "UPDATE of job %u, not stored",
		    id_num(j->id));
		fake_updates++;
		/* What an UPDATE writes; the rest stays as PUT. */
		r->s.attempts = j->attempts;
		r->s.max_attempts = j->max_attempts;
		r->s.failures = j->failures;
		r->s.deadline = j->deadline;
		r->s.due = j->due;
		r->s.dead = j->dead;
	}
	r->has_error = j->error != NULL;
	if (j->error != NULL)
		snprintf(r->error, sizeof(r->error), "%s", j->error);
}

/* Jobs in the fake store. */
static unsigned
fake_count(void)
{
	unsigned	n = 0;

	for (size_t i = 0; i < 64; i++)
		n += fake[i].used;
	return n;
}

/* A fresh switchboard with the fake store, empty. */
static void
fake_setup(void)
{
	setup();
	memset(fake, 0, sizeof(fake));
	fake_puts = fake_updates = fake_dels = 0;
	switchboard_set_store_cb(sb, fake_store, fake);
}

/*
 * "Restarts": a new switchboard with the fake store, given every stored
 * job back in PUT order, as the broker does at start.
 */
static void
fake_restart(void)
{
	struct fake_row	*order[64];
	uint8_t		 ids[64][PROTO_ID_LEN];
	unsigned	 n = 0;

	sb_reset(NULL);
	switchboard_set_store_cb(sb, fake_store, fake);
	nsent = 0;
	for (size_t i = 0; i < 64; i++)
		if (fake[i].used)
			order[n++] = &fake[i];
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = i + 1; k < n; k++)
			if (order[k]->order < order[i]->order) {
				struct fake_row *t = order[i];

				order[i] = order[k];
				order[k] = t;
			}
	for (unsigned i = 0; i < n; i++) {
		struct sb_stored s = order[i]->s;

		mkid(ids[i], order[i]->id);
		s.id = ids[i];
		s.fn = order[i]->fn;
		s.payload = (const uint8_t *)order[i]->payload;
		s.payload_len = order[i]->payload_len;
		s.meta = NULL;
		s.meta_len = 0;
		s.unique = order[i]->unique;
		s.error = order[i]->has_error ? order[i]->error : NULL;
		ck_assert_int_eq(switchboard_restore(sb, &s, now), 0);
	}
}

/*
 * Submits the shared packet, then tells the switchboard the store
 * committed it, as the broker does at the end of the loop turn.
 */
static int
submit_committed(struct sb_client *c)
{
	int	r = submit(c);

	switchboard_store_committed(sb, now);
	return r;
}

/* A detached RUN of id for fn with payload; ack when asked (committed). */
static int
run_detached(struct sb_client *c, unsigned id, const char *fn,
    const char *payload, bool ack)
{
	run_packet(id, fn);
	pkt.has |= PF_DETACH | PF_PAYLOAD | (ack ? PF_ACK : 0);
	pkt.detach = true;
	pkt.ack = ack;
	pkt.payload.ptr = (const uint8_t *)payload;
	pkt.payload.len = (uint32_t)strlen(payload);
	return submit_committed(c);
}

/*
 * Only detached jobs are stored: PUT before their ACCEPTED, UPDATE at
 * each dispatch (attempts), DEL with the outcome. Attached jobs never.
 */
START_TEST(store_detached_jobs_only)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w;

	run(a, 1, "f");
	ck_assert_int_eq(run_detached(a, 2, "f", "two", true), 0);
	ck_assert_int_eq(run_detached(a, 3, "f", "three", false), 0);
	ck_assert_uint_eq(fake_count(), 2);
	ck_assert_ptr_null(fake_find(1));
	ck_assert_str_eq(fake_find(2)->payload, "two");
	ck_assert_str_eq(fake_find(2)->fn, "f");
	ck_assert_uint_eq(fake_find(2)->s.attempts, 0);
	/* Stored before the client hears ACCEPTED. */
	ck_assert_ptr_nonnull(find(&c1, PKT_ACCEPTED, 2, 0));
	ck_assert_uint_eq(fake_find(2)->put_at, nsent - 1);

	w = worker(&w1p, 1, "f");
	assert_run_at(&w1p, 1, 1);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	assert_run_at(&w1p, 2, 1);
	ck_assert_uint_eq(fake_find(2)->s.attempts, 1);
	ck_assert_int_eq(answer(w, 2, 1), 0);
	ck_assert_ptr_null(fake_find(2));
	/* An ERROR without retry_on_error is an outcome too. */
	assert_run_at(&w1p, 3, 1);
	ck_assert_int_eq(answer_with(w, 3, 1, JOB_ERROR, NULL, "no"), 0);
	ck_assert_uint_eq(fake_count(), 0);
	ck_assert_uint_eq(fake_dels, 2);
}
END_TEST

/*
 * After a crash (the switchboard gone, the store kept) the jobs come back
 * by priority, then in the order they were taken; the one that was
 * running comes back queued and runs again with its next attempt.
 */
START_TEST(store_restore_keeps_order_and_raises_attempts)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	static const unsigned	 want[] = { 5, 1, 2, 3, 4 };

	ck_assert_int_eq(run_detached(a, 1, "f", "one", true), 0);
	assert_run_at(&w1p, 1, 1);		/* running at the crash */
	ck_assert_int_eq(run_detached(a, 2, "f", "two", true), 0);
	ck_assert_int_eq(run_detached(a, 3, "f", "three", true), 0);
	ck_assert_int_eq(run_detached(a, 4, "f", "four", true), 0);
	run_packet(5, "f");
	pkt.has |= PF_DETACH | PF_PRIORITY;
	pkt.detach = true;
	pkt.priority = 5;
	ck_assert_int_eq(submit_committed(a), 0);
	run(a, 6, "f");				/* attached: not stored */

	fake_restart();
	ck_assert_uint_eq(stats().queued, 5);
	w = worker(&w1p, 1, "f");
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		uint64_t attempt = want[i] == 1 ? 2 : 1;

		assert_run_at(&w1p, want[i], attempt);
		ck_assert_int_eq(answer(w, want[i], attempt), 0);
	}
	ck_assert_str_eq(find(&w1p, PKT_RUN, 1, 0)->payload, "one");
	ck_assert_uint_eq(fake_count(), 0);
	ck_assert_int_eq(count(NULL, PKT_RUN, 6), 0);
}
END_TEST

/*
 * Shutdown with a store: queued and delayed detached jobs stay stored
 * (not ended SHUTTING_DOWN), a running one too when its worker goes; one
 * that finishes in time leaves the store. Attached jobs end as before.
 */
START_TEST(store_shutdown_leaves_jobs_stored)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w = worker(&w1p, 2, "f");

	ck_assert_int_eq(run_detached(a, 1, "f", "run", true), 0);
	ck_assert_int_eq(run_detached(a, 2, "f", "lost", true), 0);
	ck_assert_int_eq(run_detached(a, 3, "f", "queued", true), 0);
	run_packet(4, "f");
	pkt.has |= PF_DETACH | PF_DELAY;
	pkt.detach = true;
	pkt.delay_ms = 60000;
	ck_assert_int_eq(submit_committed(a), 0);
	run(a, 5, "f");				/* attached, queued */
	ck_assert_uint_eq(fake_count(), 4);

	switchboard_shutdown(sb, now);
	ck_assert_int_eq(result_of(5)->status, JOB_SHUTTING_DOWN);
	ck_assert_uint_eq(stats().results[JOB_SHUTTING_DOWN], 1);
	ck_assert_uint_eq(fake_dels, 0);
	ck_assert_int_eq(answer(w, 1, 1), 0);	/* finishes in time */
	ck_assert_ptr_null(fake_find(1));
	switchboard_worker_remove(sb, w, now);	/* job 2 never finishes */
	ck_assert_uint_eq(stats().results[JOB_WORKER_LOST], 0);
	ck_assert_uint_eq(fake_count(), 3);
	ck_assert_ptr_nonnull(fake_find(2));
	ck_assert_ptr_nonnull(fake_find(3));
	ck_assert_uint_eq(fake_find(4)->s.due, 60000);
}
END_TEST

/*
 * A retry's backoff and the dead list are stored: each survives a
 * restart, with the failures and the last error; a kick is stored too.
 */
START_TEST(store_retries_and_dead_list_restored)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w = worker(&w1p, 1, "f");
	struct sb_job_status	 st;
	uint8_t			 id[PROTO_ID_LEN];
	uint64_t		 due;

	run_packet(1, "f");
	pkt.has |= PF_DETACH | PF_RETRY_ON_ERROR | PF_BACKOFF;
	pkt.detach = true;
	pkt.retry_on_error = 1;
	pkt.backoff_ms = 1000;
	ck_assert_int_eq(submit_committed(a), 0);
	ck_assert_int_eq(answer_with(w, 1, 1, JOB_ERROR, NULL, "first"), 0);
	due = fake_find(1)->s.due;
	ck_assert_msg(due >= now + 800 && due <= now + 1200, "due in %llu",
	    (unsigned long long)(due - now));
	ck_assert_uint_eq(fake_find(1)->s.failures, 1);
	ck_assert_str_eq(fake_find(1)->error, "first");

	fake_restart();
	ck_assert_uint_eq(stats().delayed, 1);
	w = worker(&w1p, 1, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 1), 0);
	now = due;
	switchboard_tick(sb, now);
	assert_run_at(&w1p, 1, 2);
	ck_assert_int_eq(answer_with(w, 1, 2, JOB_ERROR, NULL, "second"), 0);
	ck_assert(fake_find(1)->s.dead);

	fake_restart();
	ck_assert_uint_eq(stats().dead, 1);
	mkid(id, 1);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DEAD);
	ck_assert_str_eq(st.error, "second");
	ck_assert_uint_eq(st.attempts, 2);
	ck_assert_int_eq(switchboard_kick(sb, id, NULL, now), 1);
	ck_assert(!fake_find(1)->s.dead);
	ck_assert_uint_eq(fake_find(1)->s.failures, 0);
	w = worker(&w1p, 1, "f");
	assert_run_at(&w1p, 1, 3);
	ck_assert_int_eq(answer(w, 1, 3), 0);
	ck_assert_uint_eq(fake_count(), 0);
}
END_TEST

/*
 * A delayed job comes back delayed and runs when due; one whose timeout
 * passed while the broker was down ends TIMEOUT at the first tick.
 */
START_TEST(store_restored_delay_and_deadline)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w;

	run_packet(1, "f");
	pkt.has |= PF_DETACH | PF_DELAY;
	pkt.detach = true;
	pkt.delay_ms = 5000;
	ck_assert_int_eq(submit_committed(a), 0);
	run_packet(2, "f");
	pkt.has |= PF_DETACH | PF_TIMEOUT;
	pkt.detach = true;
	pkt.timeout_ms = 3000;
	ck_assert_int_eq(submit_committed(a), 0);
	ck_assert_uint_eq(fake_find(2)->s.deadline, 3000);

	now = 4000;
	fake_restart();
	w = worker(&w1p, 2, "f");
	ck_assert_int_eq(count(&w1p, PKT_RUN, 1), 0);
	switchboard_tick(sb, now);
	ck_assert_ptr_null(fake_find(2));
	now = 5000;
	switchboard_tick(sb, now);
	assert_run_at(&w1p, 1, 1);
	ck_assert_int_eq(answer(w, 1, 1), 0);
	ck_assert_uint_eq(fake_count(), 0);
}
END_TEST

/*
 * A failing store: detached RUNs are refused STORE_FAILED with the reason
 * and are not stored, attached ones go on; a job whose PUT was not
 * committed ends STORE_FAILED without a DEL (CANCELled when running).
 */
START_TEST(store_failing_refuses_detached_only)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w;
	struct sb_job_status	 st;
	uint8_t			 id[PROTO_ID_LEN];

	switchboard_store_failing(sb, "the disk is full");
	ck_assert_int_eq(run_detached(a, 1, "f", "x", true), 0);
	ck_assert_int_eq(result_of(1)->status, JOB_STORE_FAILED);
	ck_assert_str_eq(result_of(1)->error, "the disk is full");
	ck_assert_uint_eq(fake_puts, 0);
	ck_assert_uint_eq(stats().results[JOB_STORE_FAILED], 1);
	run(a, 2, "f");
	w = worker(&w1p, 1, "f");
	assert_run_at(&w1p, 2, 1);
	ck_assert_int_eq(answer(w, 2, 1), 0);
	ck_assert_int_eq(result_of(2)->status, JOB_OK);

	switchboard_store_failing(sb, NULL);
	ck_assert_int_eq(run_detached(a, 3, "f", "running", true), 0);
	ck_assert_int_eq(run_detached(a, 4, "f", "queued", true), 0);
	ck_assert_int_eq(count(&c1, PKT_ACCEPTED, 4), 1);
	assert_run_at(&w1p, 3, 1);
	mkid(id, 4);
	ck_assert_int_eq(switchboard_store_lost(sb, id, "lost", now), 0);
	switchboard_job_status(sb, id, now, &st);
	ck_assert_int_eq(st.state, SB_STATE_DONE);
	ck_assert_int_eq(st.status, JOB_STORE_FAILED);
	mkid(id, 3);
	ck_assert_int_eq(switchboard_store_lost(sb, id, "lost", now), 0);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 3), 1);
	ck_assert_int_eq(switchboard_store_lost(sb, id, "lost", now), -ENOENT);
	ck_assert_uint_eq(fake_dels, 0);
	/* The worker's late answer frees its slot. */
	ck_assert_int_eq(answer(w, 3, 1), 0);
	ck_assert_uint_eq(in_flight(w), 0);
}
END_TEST

/*
 * A new stored job waits for its commit before any worker sees it, even
 * with one idle; one the commit lost never reaches a worker at all.
 */
START_TEST(store_fresh_jobs_wait_for_the_commit)
{
	struct sb_client	*a = client(&c1);
	struct sb_worker	*w = worker(&w1p, 4, "f");
	uint8_t			 id[PROTO_ID_LEN];

	run_packet(1, "f");
	pkt.has |= PF_DETACH | PF_ACK;
	pkt.detach = pkt.ack = true;
	ck_assert_int_eq(submit(a), 0);
	run_packet(2, "f");
	pkt.has |= PF_DETACH | PF_ACK;
	pkt.detach = pkt.ack = true;
	ck_assert_int_eq(submit(a), 0);
	run(a, 3, "f");				/* attached: goes at once */
	assert_run_at(&w1p, 3, 1);
	/* nowait: a worker is free, so it is taken (and waits all the same). */
	run_packet(4, "f");
	pkt.has |= PF_DETACH | PF_ACK | PF_NOWAIT;
	pkt.detach = pkt.ack = pkt.nowait = true;
	ck_assert_int_eq(submit(a), 0);
	ck_assert_int_eq(count(&c1, PKT_ACCEPTED, 4), 1);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 4), 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 1), 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);
	ck_assert_uint_eq(stats().queued, 3);
	/* A slot freed meanwhile does not take them either. */
	ck_assert_int_eq(answer(w, 3, 1), 0);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 1), 0);

	mkid(id, 2);
	ck_assert_int_eq(switchboard_store_lost(sb, id, "lost", now), 0);
	switchboard_store_committed(sb, now);
	assert_run_at(&w1p, 1, 1);
	assert_run_at(&w1p, 4, 1);
	ck_assert_int_eq(count(&w1p, PKT_RUN, 2), 0);
	ck_assert_int_eq(count(&w1p, PKT_CANCEL, 0), 0);
	ck_assert_uint_eq(in_flight(w), 2);
}
END_TEST

/* A row out of range or with a live id is refused, and nothing changes. */
START_TEST(store_restore_refuses_bad_rows)
{
	struct sb_stored	 s;
	uint8_t			 id[PROTO_ID_LEN];

	memset(&s, 0, sizeof(s));
	mkid(id, 1);
	s.id = id;
	s.fn = "f";
	s.fn_len = 0;
	ck_assert_int_eq(switchboard_restore(sb, &s, now), -EINVAL);
	s.fn_len = 1;
	s.priority = 101;
	ck_assert_int_eq(switchboard_restore(sb, &s, now), -EINVAL);
	s.priority = 0;
	s.fn = "a\0b";
	s.fn_len = 3;
	ck_assert_int_eq(switchboard_restore(sb, &s, now), -EINVAL);
	s.fn = "f";
	s.fn_len = 1;
	ck_assert_int_eq(switchboard_restore(sb, &s, now), 0);
	ck_assert_int_eq(switchboard_restore(sb, &s, now), -EEXIST);
	ck_assert_uint_eq(stats().queued, 1);
	ck_assert_uint_eq(fake_puts, 0);
}
END_TEST

/* ---- the job table ------------------------------------------------------ */

#define TABLE_JOBS	6000

/* A xorshift generator: the same sequence every run. */
static uint64_t
table_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Every job is found exactly when the model says it is in t. */
static void
table_check_all(const struct sb_table *t, struct sb_job **jobs,
    const bool *in, uint32_t n)
{
	uint32_t	count = 0;

	for (int i = 0; i < TABLE_JOBS; i++) {
		ck_assert_ptr_eq(table_find(t, jobs[i]->id, jobs[i]->attempt),
		    in[i] ? jobs[i] : NULL);
		count += in[i];
	}
	ck_assert_uint_eq(count, n);
	ck_assert_uint_eq(t->n, n);
}

/*
 * The table against a model: random inserts and removals, with lookups of
 * what is there and what is not after each, through growth to beyond the
 * size it keeps and shrinking back, the tombstones of removed entries
 * rebuilt away on the way. _i 1: an orphan table, keyed by id and attempt,
 * where ids repeat with different attempts.
 */
START_TEST(table_matches_a_model)
{
	static struct sb_job	*jobs[TABLE_JOBS];
	static bool		 in[TABLE_JOBS];
	struct sb_table		 t = { .by_attempt = _i == 1 };
	uint64_t		 x = 88172645463325252ull, r;
	uint32_t		 n = 0;

	memset(in, 0, sizeof(in));
	for (int i = 0; i < TABLE_JOBS; i++) {
		ck_assert_ptr_nonnull(jobs[i] = calloc(1, sizeof(*jobs[i])));
		r = table_rand(&x);
		memcpy(jobs[i]->id, &r, sizeof(r));
		r = table_rand(&x);
		memcpy(jobs[i]->id + 8, &r, sizeof(r));
		if (_i == 1 && i % 3 != 0) {
			/* The id of the job before, another attempt. */
			memcpy(jobs[i]->id, jobs[i - 1]->id, PROTO_ID_LEN);
			jobs[i]->attempt = jobs[i - 1]->attempt + 1;
		}
	}
	/* A steady stream: a few hundred in, coming and going. */
	for (int step = 0; step < 200000; step++) {
		int k = (int)(table_rand(&x) % 400);
		int o = (int)(table_rand(&x) % TABLE_JOBS);

		if (in[k]) {
			table_remove(&t, jobs[k]);
			in[k] = false;
			n--;
		} else {
			ck_assert_int_eq(table_reserve(&t), 0);
			table_insert(&t, jobs[k]);
			in[k] = true;
			n++;
		}
		ck_assert_ptr_eq(table_find(&t, jobs[k]->id, jobs[k]->attempt),
		    in[k] ? jobs[k] : NULL);
		ck_assert_ptr_eq(table_find(&t, jobs[o]->id, jobs[o]->attempt),
		    in[o] ? jobs[o] : NULL);
		if (step % 20000 == 0)
			table_check_all(&t, jobs, in, n);
	}
	/* A burst: every job, past the size a table keeps, then drained. */
	for (int i = 0; i < TABLE_JOBS; i++) {
		if (in[i])
			continue;
		ck_assert_int_eq(table_reserve(&t), 0);
		table_insert(&t, jobs[i]);
		in[i] = true;
		n++;
	}
	table_check_all(&t, jobs, in, n);
	ck_assert_uint_gt(t.cap, 4096);
	for (int i = TABLE_JOBS - 1; i >= 0; i -= 2) {
		table_remove(&t, jobs[i]);
		in[i] = false;
		n--;
		if (i % 500 == 1)
			table_check_all(&t, jobs, in, n);
	}
	for (int i = 0; i < TABLE_JOBS; i++) {
		if (in[i]) {
			table_remove(&t, jobs[i]);
			in[i] = false;
			n--;
		}
	}
	table_check_all(&t, jobs, in, 0);
	/* Emptied, it gave most of its slots back. */
	ck_assert_uint_le(t.cap, 4096);
	table_clear(&t);
	for (int i = 0; i < TABLE_JOBS; i++)
		free(jobs[i]);
}
END_TEST

/* Builds the switchboard suite, one TCase per feature. */
static Suite *
switchboard_suite(void)
{
	Suite	*s = suite_create("switchboard");
	TCase	*tc;

	tc = tcase_create("table");
	tcase_add_loop_test(tc, table_matches_a_model, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("run");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, run_dispatches_to_registered_worker);
	tcase_add_test(tc, run_payload_always_present);
	tcase_add_test(tc, run_copies_fn_and_payload);
	tcase_add_test(tc, run_duplicate_id_refused);
	tcase_add_test(tc, run_duplicate_id_detached_silent);
	tcase_add_test(tc, run_delayed_due_then_dispatched);
	tcase_add_test(tc, run_delayed_refusals_and_limits);
	tcase_add_test(tc, run_detached_ack_accepted_or_refused);
	tcase_add_test(tc, job_status_every_state);
	tcase_add_test(tc, retry_on_error_backoff_then_dead);
	tcase_add_test(tc, detached_ttl_expires_queued_detached_only);
	tcase_add_test(tc, unique_jobs_coalesce);
	tcase_add_test(tc, unique_joins_bounded);
	tcase_add_test(tc, run_bad_request_names_field);
	tcase_add_test(tc, run_without_client_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("meta");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, meta_goes_to_the_worker_verbatim);
	tcase_add_test(tc, meta_absent_or_empty_sends_none);
	tcase_add_test(tc, meta_refused_is_bad_request);
	tcase_add_test(tc, meta_counts_against_max_memory);
	suite_add_tcase(s, tc);

	tc = tcase_create("dispatch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, dispatch_prefers_least_loaded);
	tcase_add_test(tc, dispatch_round_robin_among_equals);
	tcase_add_test(tc, dispatch_attempt_counts_from_one);
	tcase_add_test(tc, dispatch_free_slot_takes_best_head_across_functions);
	tcase_add_test(tc, queue_orders_by_priority_then_arrival);
	tcase_add_test(tc, queue_full);
	tcase_add_test(tc, memory_limits_refuse_new_runs_only);
	tcase_add_test(tc, nowait_no_capacity);
	suite_add_tcase(s, tc);

	tc = tcase_create("register");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, register_dispatches_queued_work);
	tcase_add_test(tc, register_again_changes_capacity);
	tcase_add_test(tc, register_again_changes_functions);
	tcase_add_test(tc, register_rejects_bad_packet);
	tcase_add_test(tc, register_capacity_zero_drains);
	suite_add_tcase(s, tc);

	tc = tcase_create("result");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, result_forwarded_with_payload_and_error);
	tcase_add_test(tc, result_error_not_retried);
	tcase_add_test(tc, stale_result_wrong_attempt_dropped);
	tcase_add_test(tc, stale_result_unknown_id_or_other_worker);
	tcase_add_test(tc, result_bad_status_rejected);
	tcase_add_test(tc, progress_forwarded);
	tcase_add_test(tc, progress_of_orphan_dropped_silently);
	suite_add_tcase(s, tc);

	tc = tcase_create("cancel");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, cancel_queued_answers_cancelled);
	tcase_add_test(tc, cancel_running_sends_cancel_to_worker);
	tcase_add_test(tc, cancel_other_clients_job_not_found);
	tcase_add_test(tc, cancel_detached_not_found);
	suite_add_tcase(s, tc);

	tc = tcase_create("client");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, client_remove_cancels_running_at_worker);
	tcase_add_test(tc, client_remove_keeps_detached);
	suite_add_tcase(s, tc);

	tc = tcase_create("worker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, worker_remove_retries_then_worker_lost);
	tcase_add_test(tc, worker_remove_retry_goes_ahead_of_later_arrivals);
	tcase_add_test(tc, worker_remove_retry_dispatches_to_other_worker);
	tcase_add_test(tc, worker_remove_cancelled_job_is_worker_lost);
	tcase_add_test(tc, worker_remove_orphans_vanish);
	tcase_add_test(tc, pause_holds_dispatch_resume_releases);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeout");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, timeout_queued);
	tcase_add_test(tc, timeout_running_keeps_slot_until_answer);
	tcase_add_test(tc, timeout_cancelled_job_not_cancelled_twice);
	tcase_add_test(tc, timeout_zero_means_none);
	tcase_add_test(tc, timeout_next_deadline_is_earliest);
	suite_add_tcase(s, tc);

	tc = tcase_create("no_worker");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, no_worker_wait_expires);
	tcase_add_test(tc, no_worker_wait_cleared_by_register);
	tcase_add_test(tc, standby_function_waits_for_its_pool);
	tcase_add_test(tc, no_worker_wait_starts_when_last_worker_leaves);
	tcase_add_test(tc, no_worker_wait_counts_paused_as_registered);
	suite_add_tcase(s, tc);

	tc = tcase_create("detached");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, detached_gets_no_result);
	tcase_add_test(tc, job_end_reports_every_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("shutdown");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, shutdown_answers_everything);
	suite_add_tcase(s, tc);

	tc = tcase_create("store");
	tcase_add_checked_fixture(tc, fake_setup, teardown);
	tcase_add_test(tc, store_detached_jobs_only);
	tcase_add_test(tc, store_restore_keeps_order_and_raises_attempts);
	tcase_add_test(tc, store_shutdown_leaves_jobs_stored);
	tcase_add_test(tc, store_retries_and_dead_list_restored);
	tcase_add_test(tc, store_restored_delay_and_deadline);
	tcase_add_test(tc, store_failing_refuses_detached_only);
	tcase_add_test(tc, store_restore_refuses_bad_rows);
	tcase_add_test(tc, store_fresh_jobs_wait_for_the_commit);
	suite_add_tcase(s, tc);

	tc = tcase_create("info");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, info_lists_functions_and_workers);
	tcase_add_test(tc, stats_count_outcomes);
	tcase_add_test(tc, stats_per_function_outcomes_and_times);
	tcase_add_test(tc, stats_recent_outcomes_newest_first);
	tcase_add_test(tc, stats_function_names_are_bounded);
	tcase_add_test(tc, stats_live_jobs_listed);
	tcase_add_test(tc, jobs_peak_remembers_a_drained_burst);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, exactly_one_terminal_result, 0, 8);
	suite_add_tcase(s, tc);

	return s;
}

/* Runs the suite; the exit status says whether everything passed. */
int
main(void)
{
	SRunner	*sr = srunner_create(switchboard_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

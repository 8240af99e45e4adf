/*
 * admin-stats.c: the statistics verbs, for `patchbay ctl stats`, `count`,
 * `jobs` and `queues`.
 *
 * The counting itself happens where things happen (transport/ counts each
 * connection's messages, the server keeps the figures of closed
 * connections for the broker and for each process, the switchboard counts
 * outcomes and times per function); these verbs only read and pack.
 * Times go out as RFC 3339 strings in UTC with milliseconds, durations as
 * milliseconds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uuid/uuid.h>

#include "broker/broker.h"

#define ADMIN_JOBS_LIMIT	1000	/* jobs listed unless asked otherwise */
#define ADMIN_JOBS_MAX		100000

/* Packs a key and a wall-clock time (nil for 0). */
static void
admin_stats_pack_time(msgpack_packer *pk, const char *key, uint64_t wall_ms)
{
	char	buf[FORMAT_TIME_LEN];

	proto_pack_str(pk, key);
	if (wall_ms == 0) {
		msgpack_pack_nil(pk);
		return;
	}
	format_time(wall_ms, buf, sizeof(buf));
	proto_pack_str(pk, buf);
}

/* Packs counts by kind as a map. */
static void
admin_stats_pack_kinds(msgpack_packer *pk, const char *key,
    const uint64_t *v)
{
	proto_pack_str(pk, key);
	msgpack_pack_map(pk, MSG__MAX);
	for (int i = 0; i < MSG__MAX; i++)
		admin_pack_kv_uint(pk, msg_kind_name((enum msg_kind)i), v[i]);
}

/* The number of keys admin_stats_pack_msgs() adds to a map. */
#define ADMIN_STATS_MSG_KEYS	8

/* Adds one set of message statistics to the map being packed. */
static void
admin_stats_pack_msgs(msgpack_packer *pk, const struct msg_stats *s)
{
	uint64_t	sent = 0, received = 0;

	for (int i = 0; i < MSG__MAX; i++) {
		sent += s->sent[i];
		received += s->received[i];
	}
	admin_pack_kv_uint(pk, "total_sent", sent);
	admin_pack_kv_uint(pk, "total_received", received);
	admin_stats_pack_kinds(pk, "sent", s->sent);
	admin_stats_pack_kinds(pk, "received", s->received);
	admin_pack_kv_uint(pk, "bytes_sent", s->bytes_sent);
	admin_pack_kv_uint(pk, "bytes_received", s->bytes_received);
	admin_stats_pack_time(pk, "first_message_time", s->first_ms);
	admin_stats_pack_time(pk, "last_message_time", s->last_ms);
}

/*
 * stats: the broker's messages as a whole, then per connection (live
 * ones) and per supervised process (over all its connections).
 */
int
admin_stats_stats(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	struct supervisor_proc	*proc = NULL;
	struct msg_stats	 ms;
	struct peer		*q;
	uint32_t		 n = 0;

	(void)p; (void)args; (void)err;
	msgpack_pack_map(pk, 3);
	proto_pack_str(pk, "broker");
	server_msg_totals(srv, &ms);
	msgpack_pack_map(pk, ADMIN_STATS_MSG_KEYS + 1);
	admin_pack_kv_uint(pk, "connections_total", srv->conns_total);
	admin_stats_pack_msgs(pk, &ms);

	proto_pack_str(pk, "connections");
	msgpack_pack_array(pk, srv->npeers);
	TAILQ_FOREACH(q, &srv->peers, entry) {
		msgpack_pack_map(pk, ADMIN_STATS_MSG_KEYS + 5);
		admin_pack_kv_uint(pk, "conn", q->id);
		admin_pack_kv_str(pk, "role", q->role == ROLE_NONE ? "none" :
		    proto_role_name(q->role));
		admin_pack_kv_str(pk, "name", q->name[0] ? q->name : "-");
		admin_pack_kv_str(pk, "peer", q->local ? "socketpair" :
		    conn_peer(q->conn)->addr);
		proto_pack_str(pk, "process");
		if (q->proc != NULL)
			proto_pack_str(pk, supervisor_proc_id(q->proc));
		else
			msgpack_pack_nil(pk);
		conn_stats(q->conn, &ms);
		admin_stats_pack_msgs(pk, &ms);
	}

	proto_pack_str(pk, "processes");
	if (srv->sv != NULL)
		while ((proc = supervisor_proc_next(srv->sv, proc)) != NULL)
			n++;
	msgpack_pack_array(pk, n);
	while (srv->sv != NULL &&
	    (proc = supervisor_proc_next(srv->sv, proc)) != NULL) {
		msgpack_pack_map(pk, ADMIN_STATS_MSG_KEYS + 3);
		admin_pack_kv_str(pk, "id", supervisor_proc_id(proc));
		admin_pack_kv_uint(pk, "restarts",
		    supervisor_proc_restarts(proc));
		admin_pack_kv_str(pk, "state",
		    policy_state_name(supervisor_proc_state(proc)));
		server_proc_msgs(srv, proc, &ms);
		admin_stats_pack_msgs(pk, &ms);
	}
	return 0;
}

/* count: the messages the broker has processed, sent plus received. */
int
admin_stats_count(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	struct msg_stats	ms;

	(void)p; (void)args; (void)err;
	server_msg_totals(srv, &ms);
	msgpack_pack_map(pk, 1);
	admin_pack_kv_uint(pk, "count", msg_stats_total(&ms));
	return 0;
}

/* What `jobs` selects and how far it got. */
struct admin_jobs {
	msgpack_packer	*pk;
	const char	*fn;		/* or NULL */
	const char	*client;	/* conn number or name, or NULL */
	int		 state;		/* -1 any, 0 queued, 1 running */
	uint64_t	 limit;
	uint64_t	 matched;
	uint64_t	 now;
	bool		 pack;		/* else count */
};

/* True when a peer is the one named by s: its conn number or its name. */
static bool
admin_stats_peer_is(const struct peer *q, const char *s)
{
	char	num[24];

	snprintf(num, sizeof(num), "%" PRIu64, q->id);
	return strcmp(s, num) == 0 || (q->name[0] && strcmp(s, q->name) == 0);
}

/* Packs a peer as "conn N (name)" or nil. */
static void
admin_stats_pack_peer(msgpack_packer *pk, const char *key,
    const struct peer *q)
{
	char	buf[100];

	proto_pack_str(pk, key);
	if (q == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	snprintf(buf, sizeof(buf), "%" PRIu64 "%s%s", q->id,
	    q->name[0] ? " " : "", q->name);
	proto_pack_str(pk, buf);
}

/* Counts or packs one live job when it matches. */
static void
admin_stats_job(const struct sb_job_info *ji, void *arg)
{
	struct admin_jobs	*aj = arg;
	const struct peer	*client = ji->client, *worker = ji->worker;
	char			 id[37];
	msgpack_packer		*pk = aj->pk;

	if (aj->fn != NULL && strcmp(aj->fn, ji->fn) != 0)
		return;
	if (aj->state >= 0 && aj->state != (ji->delayed ? 2 : (int)ji->running))
		return;
	if (aj->client != NULL &&
	    (client == NULL || !admin_stats_peer_is(client, aj->client)))
		return;
	if (aj->matched++ >= aj->limit || !aj->pack)
		return;
	uuid_unparse_lower(ji->id, id);
	msgpack_pack_map(pk, 13);
	admin_pack_kv_str(pk, "id", id);
	admin_pack_kv_str(pk, "function", ji->fn);
	admin_stats_pack_peer(pk, "client", client);
	admin_stats_pack_peer(pk, "worker", worker);
	admin_pack_kv_uint(pk, "attempt", ji->attempt);
	admin_pack_kv_str(pk, "state", ji->running ? "running" :
	    ji->delayed ? "delayed" : "queued");
	proto_pack_str(pk, "priority");
	msgpack_pack_int64(pk, ji->priority);
	admin_pack_kv_uint(pk, "age_ms", aj->now > ji->since ?
	    aj->now - ji->since : 0);
	/* A delayed job's deadline is when it is due. */
	proto_pack_str(pk, "timeout_left_ms");
	if (ji->deadline == 0 || ji->delayed)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, ji->deadline > aj->now ?
		    ji->deadline - aj->now : 0);
	proto_pack_str(pk, "due_in_ms");
	if (!ji->delayed)
		msgpack_pack_nil(pk);
	else
		msgpack_pack_uint64(pk, ji->deadline > aj->now ?
		    ji->deadline - aj->now : 0);
	proto_pack_str(pk, "detached");
	if (ji->detached)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	admin_pack_kv_uint(pk, "payload_bytes", ji->payload_len);
	/* The map as the client sent it (checked then): copied verbatim. */
	proto_pack_str(pk, "meta");
	if (ji->meta.len > 0)
		pk->callback(pk->data, (const char *)ji->meta.ptr, ji->meta.len);
	else
		msgpack_pack_map(pk, 0);
}

/* Reads an optional string argument of `jobs` into buf; -1 when bad. */
static int
admin_stats_arg(const msgpack_object *args, const char *key, char *buf,
    size_t len, const char **ret, char *err)
{
	const msgpack_object	*o = admin_arg(args, key);

	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
	    o->via.str.size >= len ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
		snprintf(err, PROTO_ERRLEN, "jobs: '%s' must be a non-empty "
		    "string shorter than %zu bytes", key, len);
		return -1;
	}
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	*ret = buf;
	return 0;
}

/*
 * jobs {fn?, client?, state?, limit?}: the live jobs that match, at most
 * limit of them (default ADMIN_JOBS_LIMIT), with how many matched.
 */
int
admin_stats_jobs(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	struct admin_jobs	 aj = { .pk = pk, .state = -1,
				    .limit = ADMIN_JOBS_LIMIT };
	char			 fn[PROTO_MAX_FN_LEN + 1], client[64], st[16];
	const char		*state = NULL;
	const msgpack_object	*o;

	(void)p;
	if (admin_stats_arg(args, "fn", fn, sizeof(fn), &aj.fn, err) != 0 ||
	    admin_stats_arg(args, "client", client, sizeof(client),
	    &aj.client, err) != 0 ||
	    admin_stats_arg(args, "state", st, sizeof(st), &state, err) != 0)
		return -1;
	if (state != NULL) {
		if (strcmp(state, "queued") == 0)
			aj.state = 0;
		else if (strcmp(state, "running") == 0)
			aj.state = 1;
		else if (strcmp(state, "delayed") == 0)
			aj.state = 2;
		else {
			snprintf(err, PROTO_ERRLEN, "jobs: 'state' must be "
			    "queued, running or delayed");
			return -1;
		}
	}
	if ((o = admin_arg(args, "limit")) != NULL) {
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.u64 == 0 || o->via.u64 > ADMIN_JOBS_MAX) {
			snprintf(err, PROTO_ERRLEN, "jobs: 'limit' must be an "
			    "integer from 1 to %d", ADMIN_JOBS_MAX);
			return -1;
		}
		aj.limit = o->via.u64;
	}
	aj.now = clock_now_ms();
	/* Count first, for the array header; then pack. */
	switchboard_foreach_job(srv->sb, admin_stats_job, &aj);
	msgpack_pack_map(pk, 2);
	admin_pack_kv_uint(pk, "matched", aj.matched);
	proto_pack_str(pk, "jobs");
	msgpack_pack_array(pk, aj.matched < aj.limit ? (uint32_t)aj.matched :
	    (uint32_t)aj.limit);
	aj.matched = 0;
	aj.pack = true;
	switchboard_foreach_job(srv->sb, admin_stats_job, &aj);
	return 0;
}

/* What `queues` packs. */
struct admin_queues {
	msgpack_packer	*pk;
	uint32_t	 n;
	uint64_t	 now;
};

/*
 * Packs a histogram as {count, sum_ms, le_ms: {"1": n, ..., "+Inf": n}},
 * the buckets cumulative as Prometheus has them.
 */
static void
admin_stats_pack_hist(msgpack_packer *pk, const char *key,
    const struct sb_hist *h)
{
	char		le[24];
	uint64_t	cum = 0;

	proto_pack_str(pk, key);
	msgpack_pack_map(pk, 3);
	admin_pack_kv_uint(pk, "count", h->count);
	admin_pack_kv_uint(pk, "sum_ms", h->sum_ms);
	proto_pack_str(pk, "le_ms");
	msgpack_pack_map(pk, SB_HIST_BUCKETS);
	for (int i = 0; i < SB_HIST_BUCKETS; i++) {
		cum += h->buckets[i];
		if (i < SB_HIST_BUCKETS - 1)
			snprintf(le, sizeof(le), "%" PRIu64,
			    sb_hist_bounds_ms[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		admin_pack_kv_uint(pk, le, cum);
	}
}

/* Counts or packs one function's queue. */
static void
admin_stats_queue(const struct sb_fn_info *fi, void *arg)
{
	struct admin_queues	*aq = arg;
	msgpack_packer		*pk = aq->pk;
	uint64_t		 done = 0;

	if (pk == NULL) {
		aq->n++;
		return;
	}
	for (int i = 0; i < JOB__MAX; i++)
		done += fi->results[i];
	msgpack_pack_map(pk, 11);
	admin_pack_kv_str(pk, "function", fi->name);
	admin_pack_kv_uint(pk, "queued", fi->queued);
	admin_pack_kv_uint(pk, "oldest_wait_ms", fi->oldest_queued_at == 0 ?
	    0 : aq->now - fi->oldest_queued_at);
	admin_pack_kv_uint(pk, "running", fi->running);
	admin_pack_kv_uint(pk, "workers", fi->workers);
	admin_pack_kv_uint(pk, "capacity", fi->capacity);
	admin_pack_kv_uint(pk, "free_slots", fi->free_slots);
	admin_pack_kv_uint(pk, "rejected", fi->rejected);
	proto_pack_str(pk, "results");
	msgpack_pack_map(pk, JOB__MAX + 1);
	for (int i = 0; i < JOB__MAX; i++)
		admin_pack_kv_uint(pk, job_status_name((enum job_status)i),
		    fi->results[i]);
	admin_pack_kv_uint(pk, "total", done);
	admin_stats_pack_hist(pk, "wait", &fi->wait);
	admin_stats_pack_hist(pk, "run", &fi->run);
}

/*
 * queues: per function name (those alive and those gone whose outcomes
 * are kept), its queue, workers and outcomes.
 */
int
admin_stats_queues(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	struct admin_queues	aq = { .now = clock_now_ms() };

	(void)p; (void)args; (void)err;
	switchboard_foreach_fn_stats(srv->sb, admin_stats_queue, &aq);
	msgpack_pack_array(pk, aq.n);
	aq.pk = pk;
	switchboard_foreach_fn_stats(srv->sb, admin_stats_queue, &aq);
	return 0;
}

/*
 * admin.c: the ADMIN verbs.
 *
 * An admin peer (a trusted unix peer, see server_hello) sends ADMIN {seq,
 * verb, args}; the verb's handler packs its answer into a MessagePack
 * buffer and admin_handle() sends it back as REPLY {seq, ok, data | error}.
 * Verbs are a table, so the supervisor's verbs sit beside the broker's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "config.h"

/*
 * A verb handler: packs data into pk and returns 0, or returns -1 with a
 * sentence in err (PROTO_ERRLEN bytes).
 */
typedef int (*admin_verb_fn)(struct server *srv, const msgpack_object *args,
    msgpack_packer *pk, char *err);

struct admin_verb {
	const char	*name;
	admin_verb_fn	 fn;
	const char	*help;
};

/* Packs a NUL-terminated string. */
static void
admin_pack_str(msgpack_packer *pk, const char *s)
{
	size_t	len = strlen(s);

	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

/* Packs a key and an unsigned value. */
static void
admin_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
	admin_pack_str(pk, key);
	msgpack_pack_uint64(pk, v);
}

/* Packs a key and a string value. */
static void
admin_pack_kv_str(msgpack_packer *pk, const char *key, const char *v)
{
	admin_pack_str(pk, key);
	admin_pack_str(pk, v);
}

/* Looks up key in an args map; NULL when absent. */
const msgpack_object *
admin_arg(const msgpack_object *args, const char *key)
{
	size_t	len = strlen(key);

	if (args == NULL || args->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < args->via.map.size; i++) {
		const msgpack_object_kv *kv = &args->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == len &&
		    memcmp(kv->key.via.str.ptr, key, len) == 0)
			return &kv->val;
	}
	return NULL;
}

/* status: the broker's counters and gauges. */
static int
admin_status(struct server *srv, const msgpack_object *args,
    msgpack_packer *pk, char *err)
{
	struct sb_stats	st;
	uint64_t	total = 0;

	(void)args; (void)err;
	switchboard_stats(srv->sb, &st);
	for (int i = 0; i < JOB__MAX; i++)
		total += st.results[i];
	msgpack_pack_map(pk, 15);
	admin_pack_kv_str(pk, "version", PATCHBAY_VERSION);
	admin_pack_kv_uint(pk, "pid", (uint64_t)getpid());
	admin_pack_kv_uint(pk, "uptime_ms", server_now() - srv->started_at);
	admin_pack_kv_uint(pk, "connections", srv->npeers);
	admin_pack_kv_uint(pk, "connections_total", srv->conns_total);
	admin_pack_kv_uint(pk, "clients", st.clients);
	admin_pack_kv_uint(pk, "workers", st.workers);
	admin_pack_kv_uint(pk, "functions", st.functions);
	admin_pack_kv_uint(pk, "queued", st.queued);
	admin_pack_kv_uint(pk, "running", st.running);
	admin_pack_kv_uint(pk, "submitted", st.submitted);
	admin_pack_kv_uint(pk, "dispatched", st.dispatched);
	admin_pack_kv_uint(pk, "retried", st.retried);
	admin_pack_kv_uint(pk, "stale_dropped", st.stale);
	admin_pack_str(pk, "results");
	msgpack_pack_map(pk, JOB__MAX + 1);
	for (int i = 0; i < JOB__MAX; i++)
		admin_pack_kv_uint(pk, job_status_name((enum job_status)i),
		    st.results[i]);
	admin_pack_kv_uint(pk, "total", total);
	return 0;
}

/* Counts workers for the array header. */
static void
admin_count_worker(const struct sb_worker_info *wi, void *arg)
{
	(void)wi;
	(*(uint32_t *)arg)++;
}

/* Packs one worker as a map. */
static void
admin_pack_worker(const struct sb_worker_info *wi, void *arg)
{
	msgpack_packer		*pk = arg;
	const struct peer	*p = wi->ctx;
	const struct conn_peer	*cp = conn_peer(p->conn);
	char			 peer[160];

	if (cp->is_unix && cp->has_cred)
		snprintf(peer, sizeof(peer), "unix pid %d uid %u", (int)cp->pid,
		    (unsigned)cp->uid);
	else
		snprintf(peer, sizeof(peer), "%s", cp->addr);
	msgpack_pack_map(pk, 9);
	admin_pack_kv_uint(pk, "conn", p->id);
	admin_pack_kv_str(pk, "name", p->name[0] ? p->name : "-");
	admin_pack_kv_str(pk, "kind", p->local ? "local" : "remote");
	admin_pack_kv_str(pk, "peer", p->local ? "socketpair" : peer);
	admin_pack_str(pk, "functions");
	msgpack_pack_array(pk, wi->nfns);
	for (uint32_t i = 0; i < wi->nfns; i++)
		admin_pack_str(pk, wi->fns[i]);
	admin_pack_kv_uint(pk, "capacity", wi->capacity);
	admin_pack_kv_uint(pk, "in_flight", wi->in_flight);
	admin_pack_str(pk, "paused");
	if (wi->paused)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	admin_pack_kv_uint(pk, "completed", wi->completed);
}

/* workers: every connected worker, local and remote side by side. */
static int
admin_workers(struct server *srv, const msgpack_object *args,
    msgpack_packer *pk, char *err)
{
	uint32_t	n = 0;

	(void)args; (void)err;
	switchboard_foreach_worker(srv->sb, admin_count_worker, &n);
	msgpack_pack_array(pk, n);
	switchboard_foreach_worker(srv->sb, admin_pack_worker, pk);
	return 0;
}

/* Counts functions for the array header. */
static void
admin_count_fn(const struct sb_fn_info *fi, void *arg)
{
	(void)fi;
	(*(uint32_t *)arg)++;
}

/* Packs one function as a map. */
static void
admin_pack_fn(const struct sb_fn_info *fi, void *arg)
{
	msgpack_packer	*pk = arg;

	msgpack_pack_map(pk, 5);
	admin_pack_kv_str(pk, "function", fi->name);
	admin_pack_kv_uint(pk, "workers", fi->workers);
	admin_pack_kv_uint(pk, "free_slots", fi->free_slots);
	admin_pack_kv_uint(pk, "running", fi->running);
	admin_pack_kv_uint(pk, "queued", fi->queued);
}

/* functions: every known function with its queue and capacity. */
static int
admin_functions(struct server *srv, const msgpack_object *args,
    msgpack_packer *pk, char *err)
{
	uint32_t	n = 0;

	(void)args; (void)err;
	switchboard_foreach_fn(srv->sb, admin_count_fn, &n);
	msgpack_pack_array(pk, n);
	switchboard_foreach_fn(srv->sb, admin_pack_fn, pk);
	return 0;
}

static const struct admin_verb admin_verbs[] = {
	{ "status", admin_status, "the broker's counters and gauges" },
	{ "workers", admin_workers, "connected workers, local and remote" },
	{ "functions", admin_functions, "functions with queues and capacity" },
};

/* Answers one ADMIN packet with a REPLY. */
void
admin_handle(struct server *srv, struct peer *p, const struct packet *pkt)
{
	const struct admin_verb	*v = NULL;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	struct packet		 reply;
	char			 err[PROTO_ERRLEN] = "";
	char			 verb[64];
	size_t			 n;

	n = pkt->verb.len < sizeof(verb) - 1 ? pkt->verb.len :
	    sizeof(verb) - 1;
	memcpy(verb, pkt->verb.ptr, n);
	verb[n] = '\0';
	for (size_t i = 0; i < sizeof(admin_verbs) / sizeof(admin_verbs[0]);
	    i++)
		if (strlen(admin_verbs[i].name) == pkt->verb.len &&
		    memcmp(admin_verbs[i].name, pkt->verb.ptr,
		    pkt->verb.len) == 0)
			v = &admin_verbs[i];

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	packet_init(&reply, PKT_REPLY);
	reply.seq = pkt->seq;
	if (v == NULL)
		snprintf(err, sizeof(err), "unknown verb '%s'", verb);
	else if (v->fn(srv, pkt->args, &pk, err) != 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "%s failed", verb);
	if (err[0] != '\0') {
		reply.ok = false;
		reply.error.ptr = (const uint8_t *)err;
		reply.error.len = (uint32_t)strlen(err);
		reply.has |= PF_ERROR;
		log_info("%s: admin %s refused: %s", p->name[0] ? p->name :
		    "admin", verb, err);
	} else {
		reply.ok = true;
		reply.data_raw.ptr = (const uint8_t *)sb.data;
		reply.data_raw.len = (uint32_t)sb.size;
		reply.has |= PF_DATA;
		log_debug("admin %s", verb);
	}
	conn_send(p->conn, &reply);
	msgpack_sbuffer_destroy(&sb);
}

/*
 * admin.c: the ADMIN verbs.
 *
 * An admin peer (a trusted unix peer, see server_hello) sends ADMIN {seq,
 * verb, args}; the verb's handler packs its answer into a MessagePack
 * buffer and admin_handle() sends it back as REPLY {seq, ok, data | error}.
 * Verbs are a table, so the supervisor's verbs sit beside the broker's.
 * All the ADMIN packing is here: the switchboard and the supervisor only
 * let their state be read (foreach callbacks, supervisor_proc_next() and
 * getters), and `shutdown` goes through server_stop() as SIGTERM does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "broker/broker.h"
#include "config.h"

/*
 * A verb handler: packs data into pk and returns 0, or returns -1 with a
 * sentence in err (PROTO_ERRLEN bytes).
 */
typedef int (*admin_verb_fn)(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err);

/* Packs a key and an unsigned value. */
void
admin_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
	proto_pack_str(pk, key);
	msgpack_pack_uint64(pk, v);
}

/* Packs a key and a string value. */
void
admin_pack_kv_str(msgpack_packer *pk, const char *key, const char *v)
{
	proto_pack_str(pk, key);
	proto_pack_str(pk, v);
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
	proto_pack_str(pk, "functions");
	msgpack_pack_array(pk, wi->nfns);
	for (uint32_t i = 0; i < wi->nfns; i++)
		proto_pack_str(pk, wi->fns[i]);
	admin_pack_kv_uint(pk, "capacity", wi->capacity);
	admin_pack_kv_uint(pk, "in_flight", wi->in_flight);
	proto_pack_str(pk, "paused");
	if (wi->paused)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	admin_pack_kv_uint(pk, "completed", wi->completed);
}

/* Packs every connected worker as an array of maps. */
static void
admin_pack_workers(struct server *srv, msgpack_packer *pk)
{
	uint32_t	n = 0;

	switchboard_foreach_worker(srv->sb, admin_count_worker, &n);
	msgpack_pack_array(pk, n);
	switchboard_foreach_worker(srv->sb, admin_pack_worker, pk);
}

/* workers: every connected worker, local and remote side by side. */
static int
admin_workers(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	(void)p; (void)args; (void)err;
	admin_pack_workers(srv, pk);
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

	uint64_t	 now = clock_now_ms();

	msgpack_pack_map(pk, 6);
	admin_pack_kv_str(pk, "function", fi->name);
	admin_pack_kv_uint(pk, "workers", fi->workers);
	admin_pack_kv_uint(pk, "free_slots", fi->free_slots);
	admin_pack_kv_uint(pk, "running", fi->running);
	admin_pack_kv_uint(pk, "queued", fi->queued);
	admin_pack_kv_uint(pk, "oldest_wait_ms", fi->oldest_queued_at == 0 ||
	    fi->oldest_queued_at > now ? 0 : now - fi->oldest_queued_at);
}

/* Packs every known function as an array of maps. */
static void
admin_pack_functions(struct server *srv, msgpack_packer *pk)
{
	uint32_t	n = 0;

	switchboard_foreach_fn(srv->sb, admin_count_fn, &n);
	msgpack_pack_array(pk, n);
	switchboard_foreach_fn(srv->sb, admin_pack_fn, pk);
}

/* functions: every known function with its queue and capacity. */
static int
admin_functions(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	(void)p; (void)args; (void)err;
	admin_pack_functions(srv, pk);
	return 0;
}

/* Supervisor verbs. */

/* Copies a supervisor's refusal into err (and frees it); returns -1. */
static int
admin_sv_refused(char *err, char *cause, int error)
{
	snprintf(err, PROTO_ERRLEN, "%s", cause != NULL ? cause :
	    strerror(-error));
	free(cause);
	return -1;
}

/*
 * Copies the string argument key into buf (len bytes). Returns 0, 1 when
 * it is absent and optional, or -1 with a sentence in err.
 */
static int
admin_arg_str(const msgpack_object *args, const char *verb, const char *key,
    bool optional, char *buf, size_t len, char *err)
{
	const msgpack_object	*o = admin_arg(args, key);

	if (o == NULL && optional)
		return 1;
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    o->via.str.size == 0 || o->via.str.size >= len ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
		snprintf(err, PROTO_ERRLEN, "%s: '%s' must be a non-empty "
		    "string shorter than %zu bytes", verb, key, len);
		return -1;
	}
	memcpy(buf, o->via.str.ptr, o->via.str.size);
	buf[o->via.str.size] = '\0';
	return 0;
}

/* Reads an optional integer argument in [min, max] into *ret. */
static int
admin_arg_int(const msgpack_object *args, const char *verb, const char *key,
    int64_t min, int64_t max, int64_t *ret, char *err)
{
	const msgpack_object	*o = admin_arg(args, key);
	int64_t			 v;

	if (o == NULL)
		return 1;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->via.u64 <= (uint64_t)INT64_MAX)
		v = (int64_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		v = o->via.i64;
	else
		v = min - 1;
	if (min > v || v > max) {
		snprintf(err, PROTO_ERRLEN, "%s: '%s' must be an integer from "
		    "%lld to %lld", verb, key, (long long)min, (long long)max);
		return -1;
	}
	*ret = v;
	return 0;
}

/* Fails a verb when patchbayd runs no supervisor (never, in practice). */
static int
admin_no_supervisor(struct server *srv, char *err)
{
	if (srv->sv != NULL)
		return 0;
	snprintf(err, PROTO_ERRLEN, "this broker supervises no process");
	return -1;
}

/* Packs one supervised process as a map. */
static void
admin_pack_proc(msgpack_packer *pk, const struct supervisor_proc *proc,
    uint64_t now)
{
	const char	*last = supervisor_proc_last_exit(proc);
	char		 buf[64];
	uint64_t	 cpu_ms, rss;
	bool		 usage = supervisor_proc_usage(proc, &cpu_ms, &rss);

	msgpack_pack_map(pk, 13);
	admin_pack_kv_str(pk, "id", supervisor_proc_id(proc));
	proto_pack_str(pk, "pool");
	if (supervisor_proc_pool(proc) != NULL)
		proto_pack_str(pk, supervisor_proc_pool(proc));
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "instance");
	if (supervisor_proc_pool(proc) != NULL)
		msgpack_pack_unsigned_int(pk, supervisor_proc_instance(proc));
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "pid");
	if (supervisor_proc_pid(proc) != 0)
		msgpack_pack_int(pk, (int)supervisor_proc_pid(proc));
	else
		msgpack_pack_nil(pk);
	admin_pack_kv_str(pk, "state",
	    policy_state_name(supervisor_proc_state(proc)));
	supervisor_proc_health_text(proc, buf, sizeof(buf));
	admin_pack_kv_str(pk, "health", buf);
	proto_pack_str(pk, "restarts");
	msgpack_pack_unsigned_int(pk, supervisor_proc_restarts(proc));
	admin_pack_kv_uint(pk, "uptime_ms",
	    supervisor_proc_uptime_ms(proc, now));
	proto_pack_str(pk, "cpu_ms");
	if (usage)
		msgpack_pack_uint64(pk, cpu_ms);
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "rss_bytes");
	if (usage)
		msgpack_pack_uint64(pk, rss);
	else
		msgpack_pack_nil(pk);
	admin_pack_kv_str(pk, "command", supervisor_proc_command(proc));
	proto_pack_str(pk, "last_exit");
	if (last != NULL)
		proto_pack_str(pk, last);
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "reason");
	if (supervisor_proc_reason(proc) != NULL)
		proto_pack_str(pk, supervisor_proc_reason(proc));
	else
		msgpack_pack_nil(pk);
}

/* Packs `ps`: pools in config order, then the ad-hoc processes. */
int
admin_pack_ps(const struct supervisor *sv, msgpack_packer *pk)
{
	const struct supervisor_proc	*proc;
	uint32_t			 n = 0;
	uint64_t			 now = clock_now_ms();

	for (proc = sv != NULL ? supervisor_proc_next(sv, NULL) : NULL;
	    proc != NULL; proc = supervisor_proc_next(sv, proc))
		n++;
	msgpack_pack_array(pk, n);
	for (proc = sv != NULL ? supervisor_proc_next(sv, NULL) : NULL;
	    proc != NULL; proc = supervisor_proc_next(sv, proc))
		admin_pack_proc(pk, proc, now);
	return 0;
}

/* Every process of sv, in `ps` order. */
#define SUPERVISOR_PROCS(sv, proc)					\
	for ((proc) = supervisor_proc_next((sv), NULL); (proc) != NULL;	\
	    (proc) = supervisor_proc_next((sv), (proc)))

/* Packs a string, or nil for NULL. */
static void
admin_pack_str_or_nil(msgpack_packer *pk, const char *s)
{
	if (s != NULL)
		proto_pack_str(pk, s);
	else
		msgpack_pack_nil(pk);
}

/* Packs how long ago at was (ms), or nil for 0 (never). */
static void
admin_pack_ago(msgpack_packer *pk, uint64_t at, uint64_t now)
{
	if (at != 0)
		msgpack_pack_uint64(pk, now >= at ? now - at : 0);
	else
		msgpack_pack_nil(pk);
}

/* Packs what the health checks of one process said, as a map. */
static void
admin_pack_health(msgpack_packer *pk, const struct supervisor_proc *proc,
    uint64_t now)
{
	struct supervisor_health_info	hi;
	char				buf[64];

	supervisor_proc_health_info(proc, &hi);
	supervisor_proc_health_text(proc, buf, sizeof(buf));
	msgpack_pack_map(pk, 11);
	admin_pack_kv_str(pk, "id", supervisor_proc_id(proc));
	admin_pack_kv_str(pk, "state",
	    policy_state_name(supervisor_proc_state(proc)));
	admin_pack_kv_str(pk, "health", buf);
	proto_pack_str(pk, "check");
	admin_pack_str_or_nil(pk, hi.check);
	admin_pack_kv_uint(pk, "failures", hi.failures);
	admin_pack_kv_uint(pk, "retries", hi.retries);
	proto_pack_str(pk, "checked_ago_ms");
	admin_pack_ago(pk, hi.checked_at, now);
	proto_pack_str(pk, "result");
	admin_pack_str_or_nil(pk, hi.result);
	proto_pack_str(pk, "output");
	admin_pack_str_or_nil(pk, hi.output);
	admin_pack_kv_uint(pk, "times_unhealthy", hi.times_unhealthy);
	proto_pack_str(pk, "reason");
	admin_pack_str_or_nil(pk, hi.reason);
}

/* The recent outcomes being packed: how many, then the packer. */
struct admin_recent {
	msgpack_packer	*pk;		/* NULL: counting */
	uint32_t	 n;
	uint64_t	 now;
};

/* Counts or packs one recent outcome, up to ADMIN_STATUS_RECENT. */
static void
admin_pack_outcome(const struct sb_outcome *o, void *arg)
{
	struct admin_recent	*ar = arg;
	msgpack_packer		*pk = ar->pk;

	if (ar->n == ADMIN_STATUS_RECENT)
		return;
	ar->n++;
	if (pk == NULL)
		return;
	msgpack_pack_map(pk, 6);
	proto_pack_str(pk, "id");
	msgpack_pack_bin_with_body(pk, o->id, PROTO_ID_LEN);
	admin_pack_kv_str(pk, "function", o->fn);
	admin_pack_kv_str(pk, "status",
	    job_status_name((enum job_status)o->status));
	admin_pack_kv_uint(pk, "attempts", o->attempts);
	admin_pack_kv_uint(pk, "age_ms", o->at <= ar->now ? ar->now - o->at :
	    0);
	proto_pack_str(pk, "error");
	if (o->error[0] != '\0')
		proto_pack_str(pk, o->error);
	else
		msgpack_pack_nil(pk);
}

/* Packs the last ADMIN_STATUS_RECENT outcomes, newest first. */
static void
admin_pack_recent(struct server *srv, msgpack_packer *pk)
{
	struct admin_recent	ar = { .now = clock_now_ms() };

	switchboard_foreach_outcome(srv->sb, admin_pack_outcome, &ar);
	msgpack_pack_array(pk, ar.n);
	ar.pk = pk;
	ar.n = 0;
	switchboard_foreach_outcome(srv->sb, admin_pack_outcome, &ar);
}

/* "store": nil, or the store's path, state and counts. */
static void
admin_pack_store(struct server *srv, msgpack_packer *pk)
{
	struct jobstore_stats	js;

	proto_pack_str(pk, "store");
	if (!jobstore_stats(srv, &js)) {
		msgpack_pack_nil(pk);
		return;
	}
	msgpack_pack_map(pk, 5);
	admin_pack_kv_str(pk, "path", js.path);
	proto_pack_str(pk, "failing");
	if (js.failing)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	admin_pack_kv_uint(pk, "commits", js.commits);
	admin_pack_kv_uint(pk, "commit_failures", js.commit_failures);
	admin_pack_kv_uint(pk, "restored", js.restored);
}

/*
 * Packs the status snapshot: counters, gauges, the limits in force, the
 * lists the status page shows (workers, processes, functions), built by
 * the packers of the `workers`, `ps` and `functions` verbs, and the most
 * recent job outcomes.
 */
int
admin_pack_status(struct server *srv, msgpack_packer *pk)
{
	struct sb_stats	st;
	uint64_t	total = 0;

	switchboard_stats(srv->sb, &st);
	for (int i = 0; i < JOB__MAX; i++)
		total += st.results[i];
	msgpack_pack_map(pk, 24);
	admin_pack_kv_str(pk, "version", PATCHBAY_VERSION);
	admin_pack_kv_uint(pk, "pid", (uint64_t)getpid());
	admin_pack_kv_uint(pk, "uptime_ms", clock_now_ms() - srv->started_at);
	admin_pack_kv_uint(pk, "connections", srv->npeers);
	admin_pack_kv_uint(pk, "connections_total", srv->conns_total);
	admin_pack_kv_uint(pk, "clients", st.clients);
	admin_pack_kv_uint(pk, "workers", st.workers);
	admin_pack_kv_uint(pk, "functions", st.functions);
	admin_pack_kv_uint(pk, "queued", st.queued);
	admin_pack_kv_uint(pk, "delayed", st.delayed);
	admin_pack_kv_uint(pk, "dead", st.dead);
	admin_pack_kv_uint(pk, "running", st.running);
	admin_pack_kv_uint(pk, "submitted", st.submitted);
	admin_pack_kv_uint(pk, "dispatched", st.dispatched);
	admin_pack_kv_uint(pk, "retried", st.retried);
	admin_pack_kv_uint(pk, "stale_dropped", st.stale);
	admin_pack_kv_uint(pk, "detached_dropped", st.detached_dropped);
	admin_pack_store(srv, pk);
	proto_pack_str(pk, "results");
	msgpack_pack_map(pk, JOB__MAX + 1);
	for (int i = 0; i < JOB__MAX; i++)
		admin_pack_kv_uint(pk, job_status_name((enum job_status)i),
		    st.results[i]);
	admin_pack_kv_uint(pk, "total", total);
	/* The limits in force, as the flags and the config file set them. */
	proto_pack_str(pk, "settings");
	msgpack_pack_map(pk, 7);
	admin_pack_kv_uint(pk, "heartbeat_ms", srv->cfg.heartbeat_ms);
	admin_pack_kv_uint(pk, "hello_timeout_ms", srv->cfg.hello_timeout_ms);
	admin_pack_kv_uint(pk, "max_frame", srv->cfg.max_frame);
	admin_pack_kv_uint(pk, "max_output", srv->cfg.out_cap);
	admin_pack_kv_uint(pk, "max_connections", srv->cfg.max_connections);
	admin_pack_kv_uint(pk, "max_connections_per_uid",
	    srv->cfg.max_connections_per_uid);
	admin_pack_kv_uint(pk, "max_queue", srv->cfg.sb.max_queue);
	/* "workers" and "functions" above are counts: the lists are apart. */
	proto_pack_str(pk, "worker_list");
	admin_pack_workers(srv, pk);
	proto_pack_str(pk, "process_list");
	admin_pack_ps(srv->sv, pk);
	proto_pack_str(pk, "function_list");
	admin_pack_functions(srv, pk);
	proto_pack_str(pk, "recent");
	admin_pack_recent(srv, pk);
	return 0;
}

/* status: the status snapshot (admin_pack_status()). */
static int
admin_status(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	(void)p; (void)args; (void)err;
	return admin_pack_status(srv, pk);
}

/* ps: every supervised process. */
static int
admin_ps(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	(void)p; (void)args; (void)err;
	return admin_pack_ps(srv->sv, pk);
}

/* True when proc is id itself or a process of the pool called id. */
static bool
admin_health_match(const struct supervisor_proc *proc, const char *id)
{
	const char	*pool = supervisor_proc_pool(proc);

	return id[0] == '\0' || strcmp(supervisor_proc_id(proc), id) == 0 ||
	    (pool != NULL && strcmp(pool, id) == 0);
}

/*
 * health {id?}: what the health checks of each process (or of the process
 * or pool id) said: an array of maps.
 */
static int
admin_health(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	const struct supervisor_proc	*proc;
	char				 id[LIMIT_NAME_MAX + 16] = "";
	uint32_t			 n = 0;
	uint64_t			 now = clock_now_ms();

	(void)p;
	if (admin_no_supervisor(srv, err) != 0 ||
	    admin_arg_str(args, "health", "id", true, id, sizeof(id),
	    err) < 0)
		return -1;
	SUPERVISOR_PROCS(srv->sv, proc)
		n += admin_health_match(proc, id);
	if (n == 0 && id[0] != '\0') {
		snprintf(err, PROTO_ERRLEN, "unknown id '%s'", id);
		return -1;
	}
	msgpack_pack_array(pk, n);
	SUPERVISOR_PROCS(srv->sv, proc)
		if (admin_health_match(proc, id))
			admin_pack_health(pk, proc, now);
	return 0;
}

/*
 * Reads the limits of spawn's args ("limit_memory": "256MiB", ...), each a
 * string read by util/limits.c as `limit_memory =` in a pool is. Returns
 * 0, or -1 with a sentence in err.
 */
static int
admin_arg_limits(const msgpack_object *args, struct limits *l, char *err)
{
	char	value[64], why[UTIL_ERRLEN];
	int	r;

	memset(l, 0, sizeof(*l));
	for (int k = 0; k < LIMITS__MAX; k++) {
		const char	*name = limits_name((enum limits_key)k);

		if ((r = admin_arg_str(args, "spawn", name, true, value,
		    sizeof(value), err)) < 0)
			return -1;
		if (r == 0 && limits_parse(l, (enum limits_key)k, value,
		    why) != 0) {
			snprintf(err, PROTO_ERRLEN, "spawn: '%s': %s", name,
			    why);
			return -1;
		}
	}
	return 0;
}

/*
 * spawn {id, argv, restart?, max_restarts?, limit_memory?, limit_cpu?,
 * limit_nofile?, limit_nproc?, limit_core?}: an ad-hoc process.
 */
static int
admin_spawn(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	const msgpack_object	*o = admin_arg(args, "argv");
	enum restart_policy	 restart = RESTART_NEVER;
	struct limits		 limits;
	char			 id[LIMIT_NAME_MAX + 1], policy[32];
	char			 why[UTIL_ERRLEN];
	char			**argv = NULL, *cause = NULL;
	int64_t			 max_restarts = 5;
	uint32_t		 n, i;
	int			 r, error;

	if (admin_no_supervisor(srv, err) != 0 ||
	    admin_arg_str(args, "spawn", "id", false, id, sizeof(id),
	    err) != 0)
		return -1;
	if ((r = admin_arg_str(args, "spawn", "restart", true, policy,
	    sizeof(policy), err)) < 0)
		return -1;
	if (r == 0 && parse_restart(policy, &restart, why) != 0) {
		snprintf(err, PROTO_ERRLEN, "spawn: 'restart': %s", why);
		return -1;
	}
	if (admin_arg_int(args, "spawn", "max_restarts", -1,
	    LIMIT_RESTARTS_MAX, &max_restarts, err) < 0 ||
	    admin_arg_limits(args, &limits, err) != 0)
		return -1;
	if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY ||
	    o->via.array.size == 0 || o->via.array.size > 4096) {
		snprintf(err, PROTO_ERRLEN, "spawn: 'argv' must be an array "
		    "of 1 to 4096 strings");
		return -1;
	}
	n = o->via.array.size;
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL)
		goto nomem;
	for (i = 0; i < n; i++) {
		const msgpack_object	*a = &o->via.array.ptr[i];

		if (a->type != MSGPACK_OBJECT_STR ||
		    memchr(a->via.str.ptr, '\0', a->via.str.size) != NULL) {
			snprintf(err, PROTO_ERRLEN, "spawn: argv[%u] must be a "
			    "string without NUL bytes", i);
			goto fail;
		}
		if ((argv[i] = strndup(a->via.str.ptr, a->via.str.size)) ==
		    NULL)
			goto nomem;
	}
	error = supervisor_spawn(srv->sv, id, (const char *const *)argv,
	    restart, (int)max_restarts, &limits, &cause);
	strv_free(argv);
	if (error != 0)
		return admin_sv_refused(err, cause, error);
	msgpack_pack_map(pk, 2);
	admin_pack_kv_str(pk, "id", id);
	admin_pack_kv_uint(pk, "pid",
	    (uint64_t)supervisor_proc_pid(supervisor_find(srv->sv, id)));
	return 0;
nomem:
	snprintf(err, PROTO_ERRLEN, "spawn: out of memory");
fail:
	strv_free(argv);
	return -1;
}

/* stop {id, timeout_ms?, force?}. */
static int
admin_stop(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	const msgpack_object	*f = admin_arg(args, "force");
	char			 id[LIMIT_NAME_MAX + 16], *cause = NULL;
	int64_t			 timeout = 0;
	int			 error;

	if (admin_no_supervisor(srv, err) != 0 ||
	    admin_arg_str(args, "stop", "id", false, id, sizeof(id),
	    err) != 0 ||
	    admin_arg_int(args, "stop", "timeout_ms", 0,
	    LIMIT_STOP_TIMEOUT_MAX_MS, &timeout, err) < 0)
		return -1;
	if (f != NULL && f->type != MSGPACK_OBJECT_BOOLEAN) {
		snprintf(err, PROTO_ERRLEN, "stop: 'force' must be a boolean");
		return -1;
	}
	error = supervisor_stop(srv->sv, id, (uint64_t)timeout,
	    f != NULL && f->via.boolean, &cause);
	if (error != 0)
		return admin_sv_refused(err, cause, error);
	msgpack_pack_nil(pk);
	return 0;
}

/* The shape of restart, pause and resume: {id}. */
typedef int (*admin_id_fn)(struct supervisor *, const char *, char **);

/* Runs fn on args' id. */
static int
admin_id_verb(struct server *srv, const char *verb, admin_id_fn fn,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	char	id[LIMIT_NAME_MAX + 16], *cause = NULL;
	int	error;

	if (admin_no_supervisor(srv, err) != 0 ||
	    admin_arg_str(args, verb, "id", false, id, sizeof(id), err) != 0)
		return -1;
	if ((error = fn(srv->sv, id, &cause)) != 0)
		return admin_sv_refused(err, cause, error);
	msgpack_pack_nil(pk);
	return 0;
}

/* restart {id}. */
static int
admin_restart(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	return admin_id_verb(srv, "restart", supervisor_restart, args, pk,
	    err);
}

/* pause {id}. */
static int
admin_pause(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	return admin_id_verb(srv, "pause", supervisor_pause, args, pk, err);
}

/* resume {id}. */
static int
admin_resume(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	return admin_id_verb(srv, "resume", supervisor_resume, args, pk, err);
}

/* scale {pool, instances}. */
static int
admin_scale(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	char	pool[LIMIT_NAME_MAX + 1], *cause = NULL;
	int64_t	n = -1;
	int	error;

	if (admin_no_supervisor(srv, err) != 0 ||
	    admin_arg_str(args, "scale", "pool", false, pool, sizeof(pool),
	    err) != 0 ||
	    admin_arg_int(args, "scale", "instances", 0, LIMIT_INSTANCES_MAX,
	    &n, err) < 0)
		return -1;
	if (n < 0) {
		snprintf(err, PROTO_ERRLEN, "scale: 'instances' is missing");
		return -1;
	}
	if ((error = supervisor_scale(srv->sv, pool, (unsigned)n,
	    &cause)) != 0)
		return admin_sv_refused(err, cause, error);
	msgpack_pack_nil(pk);
	return 0;
}

/* reload: re-read the config file; a bad one changes nothing. */
static int
admin_reload(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	char	*cause = NULL;
	int	 error;

	(void)args;
	if (admin_no_supervisor(srv, err) != 0)
		return -1;
	/* The token files first: a bad one changes nothing at all. */
	if (server_credentials_reload(srv, err) != 0) {
		log_warnx("reload: keeping the tokens and certificates in "
		    "force: %s", err);
		return -1;
	}
	if (supervisor_config(srv->sv)->path == NULL &&
	    server_has_credential_files(srv)) {
		msgpack_pack_nil(pk);	/* no config file: the tokens were all */
		return 0;
	}
	if ((error = supervisor_reload_file(srv->sv, &cause)) != 0) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", cause != NULL ? cause : "out of memory");
		return admin_sv_refused(err, cause, error);
	}
	msgpack_pack_nil(pk);
	return 0;
}

/*
 * shutdown: the stop path of SIGTERM, server_stop(), which begins from the
 * event loop, so this REPLY goes out before the BYE.
 */
static int
admin_shutdown(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	const struct conn_peer	*cp = conn_peer(p->conn);

	(void)args;
	if (server_stop(srv, "shutdown requested by admin (conn %llu, uid "
	    "%u)", (unsigned long long)p->id, (unsigned)cp->uid) != 0) {
		snprintf(err, PROTO_ERRLEN, "patchbayd is already shutting "
		    "down");
		return -1;
	}
	msgpack_pack_nil(pk);
	return 0;
}

/*
 * drain {timeout_ms?}: refuse new jobs, let the others finish, then shut
 * down (server_drain()). Answers {running, queued, timeout_ms}.
 */
static int
admin_drain(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	const struct conn_peer	*cp = conn_peer(p->conn);
	int64_t			 timeout_ms = 0;
	uint32_t		 running, queued;

	if (admin_arg_int(args, "drain", "timeout_ms", 0,
	    (int64_t)LIMIT_STOP_TIMEOUT_MAX_MS, &timeout_ms, err) < 0)
		return -1;
	if (server_drain(srv, (uint64_t)timeout_ms, &running, &queued) != 0) {
		snprintf(err, PROTO_ERRLEN, "patchbayd is already %s",
		    srv->draining ? "draining" : "shutting down");
		return -1;
	}
	log_info("drain requested by admin (conn %llu, uid %u)",
	    (unsigned long long)p->id, (unsigned)cp->uid);
	msgpack_pack_map(pk, 3);
	admin_pack_kv_uint(pk, "running", running);
	admin_pack_kv_uint(pk, "queued", queued);
	admin_pack_kv_uint(pk, "timeout_ms", timeout_ms != 0 ?
	    (uint64_t)timeout_ms : srv->cfg.drain_timeout_ms);
	return 0;
}

/*
 * cancel {id}: any live job, whoever sent it; answers {id, was: queued,
 * delayed or running} (a running one ends when its worker answers).
 */
static int
admin_cancel(struct server *srv, struct peer *p,
    const msgpack_object *args, msgpack_packer *pk, char *err)
{
	static const char *const names[] = { [SB_STATE_QUEUED] = "queued",
	    [SB_STATE_DELAYED] = "delayed", [SB_STATE_RUNNING] = "running",
	    [SB_STATE_DEAD] = "dead" };
	char		 idstr[64];
	uuid_t		 id;
	enum sb_state	 was = SB_STATE_UNKNOWN;

	(void)p;
	if (admin_arg_str(args, "cancel", "id", false, idstr, sizeof(idstr),
	    err) != 0)
		return -1;
	if (uuid_parse(idstr, id) != 0) {
		snprintf(err, PROTO_ERRLEN, "cancel: '%s' is not a job id (a "
		    "UUID)", idstr);
		return -1;
	}
	if (switchboard_cancel_any(srv->sb, id, clock_now_ms(), &was) != 0) {
		snprintf(err, PROTO_ERRLEN, "cancel: no live job has the id %s",
		    idstr);
		return -1;
	}
	/* No deadline comes sooner: the switchboard's timer stands. */
	msgpack_pack_map(pk, 2);
	admin_pack_kv_str(pk, "id", idstr);
	admin_pack_kv_str(pk, "was", names[was]);
	return 0;
}

/* Packs one dead job for `dead`. */
static void
admin_dead_one(const struct sb_dead_info *d, void *arg)
{
	msgpack_packer	*pk = arg;
	char		 id[37];

	uuid_unparse_lower(d->id, id);
	msgpack_pack_map(pk, 8);
	admin_pack_kv_str(pk, "id", id);
	admin_pack_kv_str(pk, "function", d->fn);
	admin_pack_kv_uint(pk, "attempts", d->attempts);
	admin_pack_kv_uint(pk, "failures", d->failures);
	proto_pack_str(pk, "priority");
	msgpack_pack_int64(pk, d->priority);
	admin_pack_kv_uint(pk, "age_ms", d->age_ms);
	proto_pack_str(pk, "error");
	if (d->error != NULL)
		proto_pack_str(pk, d->error);
	else
		msgpack_pack_nil(pk);
	admin_pack_kv_uint(pk, "payload_bytes", d->payload_len);
}

/* Counts the dead jobs `dead` lists. */
static void
admin_dead_count(const struct sb_dead_info *d, void *arg)
{
	(void)d;
	(*(size_t *)arg)++;
}

/* dead {fn?}: the dead list, oldest first. */
static int
admin_dead(struct server *srv, struct peer *p, const msgpack_object *args,
    msgpack_packer *pk, char *err)
{
	char		 fn[PROTO_MAX_FN_LEN + 1];
	const char	*f = NULL;
	size_t		 n = 0;
	uint64_t	 now = clock_now_ms();
	int		 r;

	(void)p;
	if ((r = admin_arg_str(args, "dead", "fn", true, fn, sizeof(fn),
	    err)) < 0)
		return -1;
	if (r == 0)
		f = fn;
	switchboard_foreach_dead(srv->sb, f, now, admin_dead_count, &n);
	msgpack_pack_array(pk, n);
	switchboard_foreach_dead(srv->sb, f, now, admin_dead_one, pk);
	return 0;
}

/*
 * kick and drop {id? | all: true, fn?}: one dead job by its id, or every
 * one (of fn); answers {kicked|dropped: n}.
 */
static int
admin_dead_verb(struct server *srv, const msgpack_object *args,
    msgpack_packer *pk, char *err, const char *verb, bool kick)
{
	const msgpack_object	*all = admin_arg(args, "all");
	char			 idstr[64], fn[PROTO_MAX_FN_LEN + 1];
	const char		*f = NULL;
	uuid_t			 id;
	int			 r, n;

	if ((r = admin_arg_str(args, verb, "id", true, idstr, sizeof(idstr),
	    err)) < 0 || admin_arg_str(args, verb, "fn", true, fn, sizeof(fn),
	    err) < 0)
		return -1;
	if ((all != NULL && (all->type != MSGPACK_OBJECT_BOOLEAN ||
	    !all->via.boolean)) || (r == 0) == (all != NULL)) {
		snprintf(err, PROTO_ERRLEN, "%s: give 'id' or 'all': true",
		    verb);
		return -1;
	}
	if (r == 0 && uuid_parse(idstr, id) != 0) {
		snprintf(err, PROTO_ERRLEN, "%s: '%s' is not a job id (a "
		    "UUID)", verb, idstr);
		return -1;
	}
	if (all != NULL && admin_arg(args, "fn") != NULL)
		f = fn;
	n = kick ? switchboard_kick(srv->sb, r == 0 ? id : NULL, f,
	    clock_now_ms()) : switchboard_drop(srv->sb, r == 0 ? id : NULL, f,
	    clock_now_ms());
	if (n == -ENOENT) {
		snprintf(err, PROTO_ERRLEN, "%s: %s is not a dead job", verb,
		    idstr);
		return -1;
	}
	if (n < 0) {
		snprintf(err, PROTO_ERRLEN, "%s: out of memory", verb);
		return -1;
	}
	log_info("%s: %d dead job%s %s", verb, n, n == 1 ? "" : "s",
	    kick ? "back to their queues" : "dropped");
	msgpack_pack_map(pk, 1);
	admin_pack_kv_uint(pk, kick ? "kicked" : "dropped", (uint64_t)n);
	return 0;
}

/* kick: dead jobs back to their queue, their retries afresh. */
static int
admin_kick(struct server *srv, struct peer *p, const msgpack_object *args,
    msgpack_packer *pk, char *err)
{
	(void)p;
	return admin_dead_verb(srv, args, pk, err, "kick", true);
}

/* drop: dead jobs gone for good. */
static int
admin_drop(struct server *srv, struct peer *p, const msgpack_object *args,
    msgpack_packer *pk, char *err)
{
	(void)p;
	return admin_dead_verb(srv, args, pk, err, "drop", false);
}

/* The handler of each verb (proto/names.c has their names). */
static const admin_verb_fn admin_verbs[VERB__MAX] = {
	[VERB_STATUS] = admin_status,
	[VERB_WORKERS] = admin_workers,
	[VERB_FUNCTIONS] = admin_functions,
	[VERB_PS] = admin_ps,
	[VERB_SPAWN] = admin_spawn,
	[VERB_STOP] = admin_stop,
	[VERB_RESTART] = admin_restart,
	[VERB_PAUSE] = admin_pause,
	[VERB_RESUME] = admin_resume,
	[VERB_SCALE] = admin_scale,
	[VERB_RELOAD] = admin_reload,
	[VERB_SHUTDOWN] = admin_shutdown,
	[VERB_DRAIN] = admin_drain,
	[VERB_STATS] = admin_stats_stats,
	[VERB_COUNT] = admin_stats_count,
	[VERB_JOBS] = admin_stats_jobs,
	[VERB_QUEUES] = admin_stats_queues,
	[VERB_HEALTH] = admin_health,
	[VERB_CANCEL] = admin_cancel,
	[VERB_DEAD] = admin_dead,
	[VERB_KICK] = admin_kick,
	[VERB_DROP] = admin_drop,
};

/* Answers one ADMIN packet with a REPLY. */
void
admin_handle(struct server *srv, struct peer *p, const struct packet *pkt)
{
	admin_verb_fn		 v = NULL;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	struct packet		 reply;
	char			 err[PROTO_ERRLEN] = "";
	char			 verb[64], safe_verb[64], safe_err[PROTO_ERRLEN];
	size_t			 n;
	int			 i;

	n = pkt->verb.len < sizeof(verb) - 1 ? pkt->verb.len :
	    sizeof(verb) - 1;
	memcpy(verb, pkt->verb.ptr, n);
	verb[n] = '\0';
	if ((i = admin_verb_from_name((const char *)pkt->verb.ptr,
	    pkt->verb.len)) >= 0)
		v = admin_verbs[i];

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	packet_init(&reply, PKT_REPLY);
	reply.seq = pkt->seq;
	if (v == NULL)
		snprintf(err, sizeof(err), "unknown verb '%s'", verb);
	else if (v(srv, p, pkt->args, &pk, err) != 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "%s failed", verb);
	if (err[0] != '\0') {
		reply.ok = false;
		reply.error.ptr = (const uint8_t *)err;
		reply.error.len = (uint32_t)strlen(err);
		reply.has |= PF_ERROR;
		log_info("%s: admin %s refused: %s", p->name[0] ? p->name :
		    "admin", format_escape(verb, strlen(verb), safe_verb,
		    sizeof(safe_verb)), format_escape(err, strlen(err),
		    safe_err, sizeof(safe_err)));
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

/*
 * ctl-stats.c: how `patchbay ctl stats`, `ctl queues` and `ctl jobs` read
 * for people.
 *
 * Their answers are nested (counts by kind, outcomes by status) so that
 * --json carries everything; for a terminal each is folded into one table
 * of flat rows here and printed by print.c like any other table: stats one
 * row per broker, connection and process with "received/sent" pairs,
 * queues one row per function with only the outcomes that happened, jobs
 * the table of jobs and a line when more matched than were listed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "clients/cli/cli.h"
#include "proto/proto.h"

/* The unsigned value of key in m, 0 when absent. */
static uint64_t
ctl_stats_uint(const msgpack_object *m, const char *key)
{
	const msgpack_object	*o = print_get(m, key);

	return o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ?
	    o->via.u64 : 0;
}

/* Packs the string value of key in m (or "-") under name. */
static void
ctl_stats_copy_str(msgpack_packer *pk, const char *name,
    const msgpack_object *m, const char *key)
{
	const msgpack_object	*o = print_get(m, key);

	proto_pack_str(pk, name);
	if (o != NULL && o->type == MSGPACK_OBJECT_STR)
		msgpack_pack_str_with_body(pk, o->via.str.ptr, o->via.str.size);
	else
		proto_pack_str(pk, "-");
}

/* Packs one row of `stats`: what, then received/sent per kind. */
static void
ctl_stats_row(msgpack_packer *pk, const char *what, const msgpack_object *m)
{
	const msgpack_object	*in = print_get(m, "received");
	const msgpack_object	*out = print_get(m, "sent");
	char			 buf[64];

	msgpack_pack_map(pk, 4 + MSG__MAX);
	proto_pack_str(pk, "what");
	proto_pack_str(pk, what);
	snprintf(buf, sizeof(buf), "%" PRIu64 "/%" PRIu64,
	    ctl_stats_uint(m, "total_received"), ctl_stats_uint(m,
	    "total_sent"));
	proto_pack_str(pk, "in/out");
	proto_pack_str(pk, buf);
	for (int i = 0; i < MSG__MAX; i++) {
		const char *kind = msg_kind_name((enum msg_kind)i);

		snprintf(buf, sizeof(buf), "%" PRIu64 "/%" PRIu64,
		    ctl_stats_uint(in, kind), ctl_stats_uint(out, kind));
		proto_pack_str(pk, kind);
		proto_pack_str(pk, buf);
	}
	snprintf(buf, sizeof(buf), "%" PRIu64 "/%" PRIu64,
	    ctl_stats_uint(m, "bytes_received"), ctl_stats_uint(m,
	    "bytes_sent"));
	proto_pack_str(pk, "bytes");
	proto_pack_str(pk, buf);
	ctl_stats_copy_str(pk, "last_message", m, "last_message_time");
}

/* Folds a `stats` answer into rows. */
static void
ctl_stats_fold_stats(msgpack_packer *pk, const msgpack_object *data)
{
	const msgpack_object	*conns = print_get(data, "connections");
	const msgpack_object	*procs = print_get(data, "processes");
	uint32_t		 nc = 0, np = 0;
	char			 what[160];

	if (conns != NULL && conns->type == MSGPACK_OBJECT_ARRAY)
		nc = conns->via.array.size;
	if (procs != NULL && procs->type == MSGPACK_OBJECT_ARRAY)
		np = procs->via.array.size;
	msgpack_pack_array(pk, 1 + nc + np);
	ctl_stats_row(pk, "broker", print_get(data, "broker"));
	for (uint32_t i = 0; i < nc; i++) {
		const msgpack_object *c = &conns->via.array.ptr[i];
		const msgpack_object *name = print_get(c, "name");
		const msgpack_object *role = print_get(c, "role");

		snprintf(what, sizeof(what), "conn %" PRIu64 " %.*s %.*s",
		    ctl_stats_uint(c, "conn"),
		    role != NULL && role->type == MSGPACK_OBJECT_STR ?
		    (int)role->via.str.size : 0,
		    role != NULL ? role->via.str.ptr : "",
		    name != NULL && name->type == MSGPACK_OBJECT_STR ?
		    (int)name->via.str.size : 0,
		    name != NULL ? name->via.str.ptr : "");
		ctl_stats_row(pk, what, c);
	}
	for (uint32_t i = 0; i < np; i++) {
		const msgpack_object *p = &procs->via.array.ptr[i];
		const msgpack_object *id = print_get(p, "id");

		snprintf(what, sizeof(what), "process %.*s",
		    id != NULL && id->type == MSGPACK_OBJECT_STR ?
		    (int)id->via.str.size : 0,
		    id != NULL ? id->via.str.ptr : "");
		ctl_stats_row(pk, what, p);
	}
}

/* True when key is the string s. */
static bool
ctl_stats_key_is(const msgpack_object *key, const char *s)
{
	return key->type == MSGPACK_OBJECT_STR &&
	    key->via.str.size == strlen(s) &&
	    memcmp(key->via.str.ptr, s, key->via.str.size) == 0;
}

/*
 * Folds a `queues` answer: the outcomes that happened, "OK=3 ERROR=1"; the
 * histograms are left to --json and /metrics.
 */
static void
ctl_stats_fold_queues(msgpack_packer *pk, const msgpack_object *data)
{
	msgpack_pack_array(pk, data->via.array.size);
	for (uint32_t i = 0; i < data->via.array.size; i++) {
		const msgpack_object	*q = &data->via.array.ptr[i];
		const msgpack_object	*res = print_get(q, "results");
		char			 buf[512] = "";
		size_t			 off = 0;
		uint32_t		 n = q->type == MSGPACK_OBJECT_MAP ?
					    q->via.map.size : 0, kept = 0;

		for (uint32_t k = 0; k < n; k++)
			kept += !ctl_stats_key_is(&q->via.map.ptr[k].key,
			    "wait") && !ctl_stats_key_is(&q->via.map.ptr[k].key,
			    "run");
		msgpack_pack_map(pk, kept);
		for (uint32_t k = 0; k < n; k++) {
			const msgpack_object_kv *kv = &q->via.map.ptr[k];

			if (ctl_stats_key_is(&kv->key, "wait") ||
			    ctl_stats_key_is(&kv->key, "run"))
				continue;
			if (&kv->val != res) {
				msgpack_pack_object(pk, kv->key);
				msgpack_pack_object(pk, kv->val);
				continue;
			}
			for (uint32_t j = 0; j < res->via.map.size; j++) {
				const msgpack_object_kv *r = &res->via.map.ptr[j];

				if (r->key.type != MSGPACK_OBJECT_STR ||
				    r->val.type !=
				    MSGPACK_OBJECT_POSITIVE_INTEGER ||
				    r->val.via.u64 == 0 ||
				    ctl_stats_key_is(&r->key, "total"))
					continue;
				off += (size_t)snprintf(buf + off,
				    off < sizeof(buf) ? sizeof(buf) - off : 0,
				    "%s%.*s=%" PRIu64, off > 0 ? " " : "",
				    (int)r->key.via.str.size,
				    r->key.via.str.ptr, r->val.via.u64);
				if (off >= sizeof(buf))
					off = sizeof(buf) - 1;
			}
			msgpack_pack_object(pk, kv->key);
			proto_pack_str(pk, off > 0 ? buf : "-");
		}
	}
}

/* Prints a jobs answer: its table, and how many more matched. */
static int
ctl_stats_print_jobs(FILE *f, const msgpack_object *data)
{
	const msgpack_object	*jobs = print_get(data, "jobs");
	uint64_t		 matched = ctl_stats_uint(data, "matched");
	int			 r;

	if (jobs == NULL || jobs->type != MSGPACK_OBJECT_ARRAY)
		return print_text(f, data, NULL);
	if ((r = print_text(f, jobs, "no live jobs")) < 0)
		return r;
	if (matched > jobs->via.array.size)
		fprintf(f, "(%u of %" PRIu64 " jobs shown; see --limit)\n",
		    jobs->via.array.size, matched);
	return r;
}

/* Prints a stats, queues or jobs answer for people; see cli.h. */
int
ctl_stats_print(FILE *f, int verb, const msgpack_object *data,
    const char *empty)
{
	msgpack_sbuffer		sb;
	msgpack_packer		pk;
	msgpack_unpacked	up;
	int			r = -1;

	if (verb == VERB_JOBS)
		return ctl_stats_print_jobs(f, data);
	if (data == NULL || (verb == VERB_STATS ?
	    data->type != MSGPACK_OBJECT_MAP :
	    data->type != MSGPACK_OBJECT_ARRAY))
		return print_text(f, data, empty);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, proto_sbuffer_write);
	if (verb == VERB_STATS)
		ctl_stats_fold_stats(&pk, data);
	else
		ctl_stats_fold_queues(&pk, data);
	msgpack_unpacked_init(&up);
	if (sb.data != NULL && msgpack_unpack_next(&up, sb.data, sb.size,
	    NULL) == MSGPACK_UNPACK_SUCCESS)
		r = print_text(f, &up.data, empty);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

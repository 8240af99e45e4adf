/*
 * packet.c: decoding and encoding of every packet of protocol v1.
 *
 * One table (packet_specs) says, for each direction and packet type, which
 * keys are required and which are optional; both directions of the code
 * read it, so the decoder and the encoder cannot disagree. Another table
 * (packet_keys) holds every key already encoded as a MessagePack fixstr, in
 * the order the encoder emits them (`t` first).
 *
 * Decoding: frame_check() proves the body sane, msgpack_unpack_next() builds
 * the object tree in a zone, and the top-level map is read key by key into
 * a struct packet. msgpack-c 4.0 does not copy str and bin payloads (its
 * template_callback_str/bin point into the input and only flag the buffer
 * as referenced), so every struct pbytes points into the caller's body. The
 * zone is kept (p->zone) only when ADMIN args or REPLY data point into it;
 * otherwise it is freed before packet_decode() returns.
 *
 * Encoding: a msgpack_packer appends straight to the caller's sbuffer: four
 * bytes reserved for the length, the map, then the length patched in. The
 * only allocation is the sbuffer's own growth.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proto/proto.h"

/* Every key of the protocol, in the order packet_encode() writes them. */
enum packet_key {
	K_T, K_V, K_ROLE, K_NAME, K_TOKEN, K_SESSION, K_HEARTBEAT_MS,
	K_MAX_FRAME, K_SERVER, K_FNS, K_CAPACITY, K_ID, K_FN, K_PAYLOAD,
	K_ATTEMPT, K_ATTEMPTS, K_TIMEOUT_MS, K_RETRIES, K_PRIORITY, K_DETACH,
	K_NOWAIT, K_STATUS, K_ERROR, K_N, K_REASON, K_SEQ, K_VERB, K_ARGS,
	K_OK, K_DATA, K_CODE, K_MSG,
	K__MAX
};

#define KB(k)	(1ull << (k))

/*
 * Each key as it goes on the wire: a fixstr header byte, then the name.
 * The literals are split so that a name starting with a hex digit is not
 * read as part of the escape.
 */
static const char *const packet_keys[K__MAX] = {
	[K_T] = "\xa1" "t",
	[K_V] = "\xa1" "v",
	[K_ROLE] = "\xa4" "role",
	[K_NAME] = "\xa4" "name",
	[K_TOKEN] = "\xa5" "token",
	[K_SESSION] = "\xa7" "session",
	[K_HEARTBEAT_MS] = "\xac" "heartbeat_ms",
	[K_MAX_FRAME] = "\xa9" "max_frame",
	[K_SERVER] = "\xa6" "server",
	[K_FNS] = "\xa3" "fns",
	[K_CAPACITY] = "\xa8" "capacity",
	[K_ID] = "\xa2" "id",
	[K_FN] = "\xa2" "fn",
	[K_PAYLOAD] = "\xa7" "payload",
	[K_ATTEMPT] = "\xa7" "attempt",
	[K_ATTEMPTS] = "\xa8" "attempts",
	[K_TIMEOUT_MS] = "\xaa" "timeout_ms",
	[K_RETRIES] = "\xa7" "retries",
	[K_PRIORITY] = "\xa8" "priority",
	[K_DETACH] = "\xa6" "detach",
	[K_NOWAIT] = "\xa6" "nowait",
	[K_STATUS] = "\xa6" "status",
	[K_ERROR] = "\xa5" "error",
	[K_N] = "\xa1" "n",
	[K_REASON] = "\xa6" "reason",
	[K_SEQ] = "\xa3" "seq",
	[K_VERB] = "\xa4" "verb",
	[K_ARGS] = "\xa4" "args",
	[K_OK] = "\xa2" "ok",
	[K_DATA] = "\xa4" "data",
	[K_CODE] = "\xa4" "code",
	[K_MSG] = "\xa3" "msg",
};

#define KEY_NAME(k)	(packet_keys[k] + 1)
#define KEY_LEN(k)	((size_t)((uint8_t)packet_keys[k][0] & 0x1f))

/* Which optional key each PF_* bit stands for. */
static const struct {
	uint32_t		flag;
	enum packet_key		key;
} packet_flags[] = {
	{ PF_NAME, K_NAME },
	{ PF_TOKEN, K_TOKEN },
	{ PF_PAYLOAD, K_PAYLOAD },
	{ PF_TIMEOUT, K_TIMEOUT_MS },
	{ PF_RETRIES, K_RETRIES },
	{ PF_PRIORITY, K_PRIORITY },
	{ PF_DETACH, K_DETACH },
	{ PF_NOWAIT, K_NOWAIT },
	{ PF_ERROR, K_ERROR },
	{ PF_ARGS, K_ARGS },
	{ PF_DATA, K_DATA },
	{ PF_ID, K_ID },
};

/* Required and optional keys of one packet type in one direction. */
struct packet_spec {
	uint64_t	required;	/* with K_T; 0: never sent this way */
	uint64_t	optional;
};

static const struct packet_spec packet_specs[2][PKT__MAX] = {
	[PROTO_TO_BROKER] = {
		[PKT_HELLO] = {
			KB(K_T) | KB(K_V) | KB(K_ROLE),
			KB(K_NAME) | KB(K_TOKEN) },
		[PKT_REGISTER] = {
			KB(K_T) | KB(K_FNS) | KB(K_CAPACITY), 0 },
		[PKT_RUN] = {
			KB(K_T) | KB(K_ID) | KB(K_FN),
			KB(K_PAYLOAD) | KB(K_TIMEOUT_MS) | KB(K_RETRIES) |
			KB(K_PRIORITY) | KB(K_DETACH) | KB(K_NOWAIT) },
		[PKT_CANCEL] = {
			KB(K_T) | KB(K_ID), 0 },
		[PKT_PROGRESS] = {
			KB(K_T) | KB(K_ID) | KB(K_ATTEMPT) | KB(K_PAYLOAD), 0 },
		[PKT_RESULT] = {
			KB(K_T) | KB(K_ID) | KB(K_ATTEMPT) | KB(K_STATUS),
			KB(K_PAYLOAD) | KB(K_ERROR) },
		[PKT_PING] = { KB(K_T) | KB(K_N), 0 },
		[PKT_PONG] = { KB(K_T) | KB(K_N), 0 },
		[PKT_ADMIN] = {
			KB(K_T) | KB(K_SEQ) | KB(K_VERB), KB(K_ARGS) },
	},
	[PROTO_FROM_BROKER] = {
		[PKT_WELCOME] = {
			KB(K_T) | KB(K_V) | KB(K_SESSION) | KB(K_HEARTBEAT_MS) |
			KB(K_MAX_FRAME) | KB(K_SERVER), 0 },
		[PKT_RUN] = {
			KB(K_T) | KB(K_ID) | KB(K_FN) | KB(K_PAYLOAD) |
			KB(K_ATTEMPT), KB(K_TIMEOUT_MS) },
		[PKT_CANCEL] = {
			KB(K_T) | KB(K_ID) | KB(K_ATTEMPT), 0 },
		[PKT_PROGRESS] = {
			KB(K_T) | KB(K_ID) | KB(K_PAYLOAD), 0 },
		[PKT_RESULT] = {
			KB(K_T) | KB(K_ID) | KB(K_STATUS) | KB(K_ATTEMPTS),
			KB(K_PAYLOAD) | KB(K_ERROR) },
		[PKT_PING] = { KB(K_T) | KB(K_N), 0 },
		[PKT_PONG] = { KB(K_T) | KB(K_N), 0 },
		[PKT_BYE] = { KB(K_T) | KB(K_REASON), 0 },
		[PKT_REPLY] = {
			KB(K_T) | KB(K_SEQ) | KB(K_OK),
			KB(K_DATA) | KB(K_ERROR) },
		[PKT_ERROR] = {
			KB(K_T) | KB(K_CODE) | KB(K_MSG), KB(K_ID) },
	},
};

/* Copies peer text into buf, made printable and cut short, for an error. */
static const char *
packet_quote(char *buf, size_t bufsz, const char *s, size_t len)
{
	size_t	i, n = 0, max = bufsz - 4;

	for (i = 0; i < len && n < max; i++)
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (i < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return (buf);
}

/* Names a msgpack object's type for "(got ...)" sentences. */
static const char *
packet_object_type(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return ("nil");
	case MSGPACK_OBJECT_BOOLEAN:
		return ("bool");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return ("unsigned integer");
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return ("negative integer");
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return ("float");
	case MSGPACK_OBJECT_STR:
		return ("str");
	case MSGPACK_OBJECT_BIN:
		return ("bin");
	case MSGPACK_OBJECT_ARRAY:
		return ("array");
	case MSGPACK_OBJECT_MAP:
		return ("map");
	case MSGPACK_OBJECT_EXT:
		return ("ext");
	}
	return ("unknown");
}

/* Returns the key called s[0..len), or -1 for a key this protocol lacks. */
static int
packet_key_find(const char *s, size_t len)
{
	int	k;

	for (k = 0; k < K__MAX; k++) {
		if (KEY_LEN(k) == len && KEY_NAME(k)[0] == s[0] &&
		    memcmp(KEY_NAME(k), s, len) == 0)
			return (k);
	}
	return (-1);
}

/* Fails with "TYPE: key 'k' must be <what> (got <type>)". */
static int
packet_wrong_type(const struct packet *p, enum packet_key k, const char *what,
    const msgpack_object *o, char *err)
{
	return (proto_fail(err, "%s: key '%s' must be %s (got %s)",
	    packet_type_name(p->type), KEY_NAME(k), what,
	    packet_object_type(o)));
}

/* Reads an unsigned integer value. */
static int
packet_get_uint(const struct packet *p, enum packet_key k,
    const msgpack_object *o, uint64_t *ret_v, char *err)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (packet_wrong_type(p, k, "an unsigned integer", o, err));
	*ret_v = o->via.u64;
	return (0);
}

/* Reads a str value as borrowed bytes. */
static int
packet_get_str(const struct packet *p, enum packet_key k,
    const msgpack_object *o, struct pbytes *ret_b, char *err)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return (packet_wrong_type(p, k, "a str", o, err));
	ret_b->ptr = (const uint8_t *)o->via.str.ptr;
	ret_b->len = o->via.str.size;
	return (0);
}

/* Reads a bin value as borrowed bytes. */
static int
packet_get_bin(const struct packet *p, enum packet_key k,
    const msgpack_object *o, struct pbytes *ret_b, char *err)
{
	if (o->type != MSGPACK_OBJECT_BIN)
		return (packet_wrong_type(p, k, "a bin", o, err));
	ret_b->ptr = (const uint8_t *)o->via.bin.ptr;
	ret_b->len = o->via.bin.size;
	return (0);
}

/* Reads a 16-byte bin (an id or a session) into ret_id. */
static int
packet_get_id(const struct packet *p, enum packet_key k,
    const msgpack_object *o, uint8_t *ret_id, char *err)
{
	if (o->type != MSGPACK_OBJECT_BIN)
		return (packet_wrong_type(p, k, "a 16-byte bin", o, err));
	if (o->via.bin.size != PROTO_ID_LEN)
		return (proto_fail(err, "%s: key '%s' must be a 16-byte bin "
		    "(got %u byte%s)", packet_type_name(p->type), KEY_NAME(k),
		    o->via.bin.size, o->via.bin.size == 1 ? "" : "s"));
	memcpy(ret_id, o->via.bin.ptr, PROTO_ID_LEN);
	return (0);
}

/* Reads a bool value. */
static int
packet_get_bool(const struct packet *p, enum packet_key k,
    const msgpack_object *o, bool *ret_v, char *err)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return (packet_wrong_type(p, k, "a bool", o, err));
	*ret_v = o->via.boolean;
	return (0);
}

/* Reads REGISTER's fns: 1..256 names of 1..255 bytes each. */
static int
packet_get_fns(struct packet *p, const msgpack_object *o, char *err)
{
	const msgpack_object	*e;
	uint32_t		 i;

	if (o->type != MSGPACK_OBJECT_ARRAY)
		return (packet_wrong_type(p, K_FNS, "an array of str", o, err));
	if (o->via.array.size < 1 || o->via.array.size > PROTO_MAX_FNS)
		return (proto_fail(err, "REGISTER: key 'fns' must list 1 to "
		    "%d functions (got %u)", PROTO_MAX_FNS,
		    o->via.array.size));
	for (i = 0; i < o->via.array.size; i++) {
		e = &o->via.array.ptr[i];
		if (e->type != MSGPACK_OBJECT_STR)
			return (proto_fail(err, "REGISTER: key 'fns' must be "
			    "an array of str (element %u is %s)", i,
			    packet_object_type(e)));
		if (e->via.str.size < 1 || e->via.str.size > PROTO_MAX_FN_LEN)
			return (proto_fail(err, "REGISTER: element %u of key "
			    "'fns' must be 1 to %d bytes long (got %u)", i,
			    PROTO_MAX_FN_LEN, e->via.str.size));
		p->fns[i].ptr = (const uint8_t *)e->via.str.ptr;
		p->fns[i].len = e->via.str.size;
	}
	p->nfns = o->via.array.size;
	return (0);
}

/* Reads RESULT's status; a worker may only send OK, ERROR or CANCELLED. */
static int
packet_get_status(struct packet *p, const msgpack_object *o,
    enum proto_dir dir, char *err)
{
	char	q[48];
	int	s;

	if (o->type != MSGPACK_OBJECT_STR)
		return (packet_wrong_type(p, K_STATUS, "a str", o, err));
	s = job_status_from_name(o->via.str.ptr, o->via.str.size);
	if (s < 0)
		return (proto_fail(err, "RESULT: unknown status '%s'",
		    packet_quote(q, sizeof q, o->via.str.ptr,
		    o->via.str.size)));
	if (dir == PROTO_TO_BROKER && s != JOB_OK && s != JOB_ERROR &&
	    s != JOB_CANCELLED)
		return (proto_fail(err, "RESULT: a worker may only report OK, "
		    "ERROR or CANCELLED (got '%s')", job_status_name(s)));
	p->status = s;
	return (0);
}

/* Decodes the value o of key k into p, checking its type and range. */
static int
packet_get(struct packet *p, enum packet_key k, const msgpack_object *o,
    enum proto_dir dir, char *err)
{
	char		q[48];
	uint64_t	u = 0;
	int		r, i;

	switch (k) {
	case K_T:
		return (0);
	case K_V:
		return (packet_get_uint(p, k, o, &p->version, err));
	case K_ROLE:
		if (o->type != MSGPACK_OBJECT_STR)
			return (packet_wrong_type(p, k, "a str", o, err));
		r = proto_role_from_name(o->via.str.ptr, o->via.str.size);
		if (r < 0)
			return (proto_fail(err, "HELLO: unknown role '%s' "
			    "(expected client, worker or admin)",
			    packet_quote(q, sizeof q, o->via.str.ptr,
			    o->via.str.size)));
		p->role = r;
		return (0);
	case K_NAME:
		return (packet_get_str(p, k, o, &p->name, err));
	case K_TOKEN:
		return (packet_get_str(p, k, o, &p->token, err));
	case K_SESSION:
		return (packet_get_id(p, k, o, p->session, err));
	case K_HEARTBEAT_MS:
		return (packet_get_uint(p, k, o, &p->heartbeat_ms, err));
	case K_MAX_FRAME:
		return (packet_get_uint(p, k, o, &p->max_frame, err));
	case K_SERVER:
		return (packet_get_str(p, k, o, &p->server, err));
	case K_FNS:
		return (packet_get_fns(p, o, err));
	case K_CAPACITY:
		if ((r = packet_get_uint(p, k, o, &u, err)) != 0)
			return (r);
		if (u < 1 || u > PROTO_MAX_CAPACITY)
			return (proto_fail(err, "REGISTER: key 'capacity' "
			    "must be between 1 and %d (got %llu)",
			    PROTO_MAX_CAPACITY, (unsigned long long)u));
		p->capacity = (uint32_t)u;
		return (0);
	case K_ID:
		return (packet_get_id(p, k, o, p->id, err));
	case K_FN:
		return (packet_get_str(p, k, o, &p->fn, err));
	case K_PAYLOAD:
		return (packet_get_bin(p, k, o, &p->payload, err));
	case K_ATTEMPT:
		return (packet_get_uint(p, k, o, &p->attempt, err));
	case K_ATTEMPTS:
		return (packet_get_uint(p, k, o, &p->attempts, err));
	case K_TIMEOUT_MS:
		return (packet_get_uint(p, k, o, &p->timeout_ms, err));
	case K_RETRIES:
		return (packet_get_uint(p, k, o, &p->retries, err));
	case K_PRIORITY:
		if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			p->priority = o->via.i64;
		else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    o->via.u64 <= INT64_MAX)
			p->priority = (int64_t)o->via.u64;
		else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			return (proto_fail(err, "RUN: key 'priority' is out "
			    "of range (got %llu)",
			    (unsigned long long)o->via.u64));
		else
			return (packet_wrong_type(p, k, "an integer", o, err));
		return (0);
	case K_DETACH:
		return (packet_get_bool(p, k, o, &p->detach, err));
	case K_NOWAIT:
		return (packet_get_bool(p, k, o, &p->nowait, err));
	case K_STATUS:
		return (packet_get_status(p, o, dir, err));
	case K_ERROR:
		return (packet_get_str(p, k, o, &p->error, err));
	case K_N:
		return (packet_get_uint(p, k, o, &p->n, err));
	case K_REASON:
		return (packet_get_str(p, k, o, &p->reason, err));
	case K_SEQ:
		return (packet_get_uint(p, k, o, &p->seq, err));
	case K_VERB:
		return (packet_get_str(p, k, o, &p->verb, err));
	case K_ARGS:
		if (o->type != MSGPACK_OBJECT_MAP)
			return (packet_wrong_type(p, k, "a map", o, err));
		p->args = o;
		return (0);
	case K_OK:
		return (packet_get_bool(p, k, o, &p->ok, err));
	case K_DATA:
		p->data = o;
		return (0);
	case K_CODE:
		if (o->type != MSGPACK_OBJECT_STR)
			return (packet_wrong_type(p, k, "a str", o, err));
		/* An unknown code still carries a readable msg. */
		p->code = PERR__MAX;
		for (i = 0; i < PERR__MAX; i++) {
			const char *name = proto_error_name(i);

			if (strlen(name) == o->via.str.size && memcmp(name,
			    o->via.str.ptr, o->via.str.size) == 0) {
				p->code = i;
				break;
			}
		}
		return (0);
	case K_MSG:
		return (packet_get_str(p, k, o, &p->msg, err));
	case K__MAX:
		break;
	}
	return (0);
}

/* Reads the top-level map into p: `t` first, then the keys of that type. */
static int
packet_read_map(struct packet *p, const msgpack_object_map *map,
    enum proto_dir dir, char *err)
{
	const struct packet_spec	*spec;
	const msgpack_object		*t = NULL, *key;
	char				 q[48];
	uint64_t			 seen, missing;
	uint32_t			 i, f;
	int				 k, r;

	for (i = 0; i < map->size; i++) {
		key = &map->ptr[i].key;
		if (key->type != MSGPACK_OBJECT_STR || key->via.str.size != 1 ||
		    key->via.str.ptr[0] != 't')
			continue;
		if (t != NULL)
			return (proto_fail(err, "key 't' appears twice"));
		t = &map->ptr[i].val;
	}
	if (t == NULL)
		return (proto_fail(err, "missing key 't'"));
	if (t->type != MSGPACK_OBJECT_STR)
		return (proto_fail(err, "key 't' must be a str (got %s)",
		    packet_object_type(t)));
	r = packet_type_from_name(t->via.str.ptr, t->via.str.size);
	if (r < 0)
		return (proto_fail(err, "unknown packet type '%s'",
		    packet_quote(q, sizeof q, t->via.str.ptr,
		    t->via.str.size)));
	p->type = r;
	spec = &packet_specs[dir][p->type];
	if (spec->required == 0)
		return (proto_fail(err, "%s is never sent %s the broker",
		    packet_type_name(p->type),
		    dir == PROTO_TO_BROKER ? "to" : "by"));

	seen = KB(K_T);
	for (i = 0; i < map->size; i++) {
		key = &map->ptr[i].key;
		if (key->type != MSGPACK_OBJECT_STR || key->via.str.size == 0)
			continue;
		k = packet_key_find(key->via.str.ptr, key->via.str.size);
		if (k <= K_T || !((spec->required | spec->optional) & KB(k)))
			continue;	/* unknown to this packet: ignored */
		if (seen & KB(k))
			return (proto_fail(err, "%s: key '%s' appears twice",
			    packet_type_name(p->type), KEY_NAME(k)));
		seen |= KB(k);
		if ((r = packet_get(p, k, &map->ptr[i].val, dir, err)) != 0)
			return (r);
	}

	missing = spec->required & ~seen;
	if (missing != 0)
		return (proto_fail(err, "%s: missing key '%s'",
		    packet_type_name(p->type),
		    KEY_NAME(__builtin_ctzll(missing))));
	/* `has` reports optional keys only, as the encoder reads it. */
	seen &= spec->optional;
	for (f = 0; seen != 0 && f < sizeof(packet_flags) /
	    sizeof(packet_flags[0]); f++) {
		if (seen & KB(packet_flags[f].key))
			p->has |= packet_flags[f].flag;
	}
	return (0);
}

/* Zeroes p and sets its type, and v to PROTO_VERSION for HELLO and WELCOME. */
void
packet_init(struct packet *p, enum packet_type type)
{
	memset(p, 0, sizeof *p);
	p->type = type;
	if (type == PKT_HELLO || type == PKT_WELCOME)
		p->version = PROTO_VERSION;
}

/* Frees p's zone, if any, and zeroes p. */
void
packet_clear(struct packet *p)
{
	if (p == NULL)
		return;
	if (p->zone != NULL)
		msgpack_zone_free(p->zone);
	memset(p, 0, sizeof *p);
}

/* Decodes one frame body travelling in dir into *ret. */
int
packet_decode(const uint8_t *body, size_t len, enum proto_dir dir,
    struct packet *ret, char *err)
{
	msgpack_unpacked	 u;
	msgpack_unpack_return	 ur;
	size_t			 off = 0;
	int			 r;

	memset(ret, 0, sizeof *ret);
	if (dir != PROTO_TO_BROKER && dir != PROTO_FROM_BROKER)
		return (proto_fail(err, "unknown direction %d", (int)dir));
	if ((r = frame_check(body, len, err)) != 0)
		return (r);

	msgpack_unpacked_init(&u);
	ur = msgpack_unpack_next(&u, (const char *)body, len, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
		msgpack_unpacked_destroy(&u);
		if (err != NULL)
			snprintf(err, PROTO_ERRLEN, "out of memory");
		return (-ENOMEM);
	}
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len ||
	    u.data.type != MSGPACK_OBJECT_MAP) {
		/* frame_check() accepted it, so this is not expected. */
		msgpack_unpacked_destroy(&u);
		return (proto_fail(err, "frame body is not valid "
		    "MessagePack"));
	}
	ret->zone = msgpack_unpacked_release_zone(&u);

	if ((r = packet_read_map(ret, &u.data.via.map, dir, err)) != 0) {
		packet_clear(ret);
		return (r);
	}
	if (ret->args == NULL && ret->data == NULL) {
		msgpack_zone_free(ret->zone);
		ret->zone = NULL;
	}
	return (0);
}

/*
 * Checks that raw holds exactly one MessagePack value (a map when want_map).
 * Only ADMIN args and REPLY data are spliced raw, so the zone this costs is
 * never spent on the hot path; a wrong length here would corrupt the stream.
 */
static bool
packet_raw_ok(struct pbytes raw, bool want_map)
{
	msgpack_unpacked	u;
	size_t			off = 0;
	bool			ok;

	msgpack_unpacked_init(&u);
	ok = msgpack_unpack_next(&u, (const char *)raw.ptr, raw.len, &off) ==
	    MSGPACK_UNPACK_SUCCESS && off == raw.len &&
	    (!want_map || u.data.type == MSGPACK_OBJECT_MAP);
	msgpack_unpacked_destroy(&u);
	return (ok);
}

/* Checks that b is either absent or really points at its bytes. */
static inline bool
packet_bytes_ok(struct pbytes b)
{
	return (b.ptr != NULL || b.len == 0);
}

/* Checks that p has what its type needs in dir, before anything is written. */
static int
packet_validate(const struct packet *p, enum proto_dir dir, uint64_t keys)
{
	uint32_t	i;

	if ((keys & KB(K_ROLE)) &&
	    (p->role < ROLE_CLIENT || p->role > ROLE_ADMIN))
		return (-EINVAL);
	if ((keys & KB(K_FNS)) &&
	    (p->nfns < 1 || p->nfns > PROTO_MAX_FNS))
		return (-EINVAL);
	if (keys & KB(K_FNS)) {
		for (i = 0; i < p->nfns; i++) {
			if (p->fns[i].ptr == NULL || p->fns[i].len < 1 ||
			    p->fns[i].len > PROTO_MAX_FN_LEN)
				return (-EINVAL);
		}
	}
	if ((keys & KB(K_CAPACITY)) &&
	    (p->capacity < 1 || p->capacity > PROTO_MAX_CAPACITY))
		return (-EINVAL);
	if ((keys & KB(K_STATUS)) && (unsigned)p->status >= JOB__MAX)
		return (-EINVAL);
	if ((keys & KB(K_STATUS)) && dir == PROTO_TO_BROKER &&
	    p->status != JOB_OK && p->status != JOB_ERROR &&
	    p->status != JOB_CANCELLED)
		return (-EINVAL);
	if ((keys & KB(K_CODE)) && (unsigned)p->code >= PERR__MAX)
		return (-EINVAL);
	/* Required strings must be given, even if empty. */
	if (((keys & KB(K_FN)) && p->fn.ptr == NULL) ||
	    ((keys & KB(K_SERVER)) && p->server.ptr == NULL) ||
	    ((keys & KB(K_REASON)) && p->reason.ptr == NULL) ||
	    ((keys & KB(K_VERB)) && p->verb.ptr == NULL) ||
	    ((keys & KB(K_MSG)) && p->msg.ptr == NULL))
		return (-EINVAL);
	if (!packet_bytes_ok(p->name) || !packet_bytes_ok(p->token) ||
	    !packet_bytes_ok(p->payload) || !packet_bytes_ok(p->error) ||
	    !packet_bytes_ok(p->args_raw) || !packet_bytes_ok(p->data_raw))
		return (-EINVAL);
	if (keys & KB(K_ARGS)) {
		if (p->args_raw.len > 0) {
			if (!packet_raw_ok(p->args_raw, true))
				return (-EINVAL);
		} else if (p->args == NULL ||
		    p->args->type != MSGPACK_OBJECT_MAP)
			return (-EINVAL);
	}
	if (keys & KB(K_DATA)) {
		if (p->data_raw.len > 0) {
			if (!packet_raw_ok(p->data_raw, false))
				return (-EINVAL);
		} else if (p->data == NULL)
			return (-EINVAL);
	}
	return (0);
}

/* Packs the value of key k of p; returns msgpack's 0 or -1. */
static int
packet_put(const struct packet *p, enum packet_key k, msgpack_packer *pk,
    msgpack_sbuffer *sb)
{
	const char	*s;
	uint32_t	 i;
	int		 r;

	switch (k) {
	case K_T:
		s = packet_type_name(p->type);
		return (msgpack_pack_str_with_body(pk, s, strlen(s)));
	case K_V:
		return (msgpack_pack_uint64(pk, p->version));
	case K_ROLE:
		s = proto_role_name(p->role);
		return (msgpack_pack_str_with_body(pk, s, strlen(s)));
	case K_NAME:
		return (msgpack_pack_str_with_body(pk, p->name.ptr,
		    p->name.len));
	case K_TOKEN:
		return (msgpack_pack_str_with_body(pk, p->token.ptr,
		    p->token.len));
	case K_SESSION:
		return (msgpack_pack_bin_with_body(pk, p->session,
		    PROTO_ID_LEN));
	case K_HEARTBEAT_MS:
		return (msgpack_pack_uint64(pk, p->heartbeat_ms));
	case K_MAX_FRAME:
		return (msgpack_pack_uint64(pk, p->max_frame));
	case K_SERVER:
		return (msgpack_pack_str_with_body(pk, p->server.ptr,
		    p->server.len));
	case K_FNS:
		r = msgpack_pack_array(pk, p->nfns);
		for (i = 0; i < p->nfns; i++)
			r |= msgpack_pack_str_with_body(pk, p->fns[i].ptr,
			    p->fns[i].len);
		return (r);
	case K_CAPACITY:
		return (msgpack_pack_uint32(pk, p->capacity));
	case K_ID:
		return (msgpack_pack_bin_with_body(pk, p->id, PROTO_ID_LEN));
	case K_FN:
		return (msgpack_pack_str_with_body(pk, p->fn.ptr, p->fn.len));
	case K_PAYLOAD:
		return (msgpack_pack_bin_with_body(pk, p->payload.ptr,
		    p->payload.len));
	case K_ATTEMPT:
		return (msgpack_pack_uint64(pk, p->attempt));
	case K_ATTEMPTS:
		return (msgpack_pack_uint64(pk, p->attempts));
	case K_TIMEOUT_MS:
		return (msgpack_pack_uint64(pk, p->timeout_ms));
	case K_RETRIES:
		return (msgpack_pack_uint64(pk, p->retries));
	case K_PRIORITY:
		return (msgpack_pack_int64(pk, p->priority));
	case K_DETACH:
		return (p->detach ? msgpack_pack_true(pk) :
		    msgpack_pack_false(pk));
	case K_NOWAIT:
		return (p->nowait ? msgpack_pack_true(pk) :
		    msgpack_pack_false(pk));
	case K_STATUS:
		s = job_status_name(p->status);
		return (msgpack_pack_str_with_body(pk, s, strlen(s)));
	case K_ERROR:
		return (msgpack_pack_str_with_body(pk, p->error.ptr,
		    p->error.len));
	case K_N:
		return (msgpack_pack_uint64(pk, p->n));
	case K_REASON:
		return (msgpack_pack_str_with_body(pk, p->reason.ptr,
		    p->reason.len));
	case K_SEQ:
		return (msgpack_pack_uint64(pk, p->seq));
	case K_VERB:
		return (msgpack_pack_str_with_body(pk, p->verb.ptr,
		    p->verb.len));
	case K_ARGS:
		if (p->args_raw.len > 0)
			return (msgpack_sbuffer_write(sb,
			    (const char *)p->args_raw.ptr, p->args_raw.len));
		return (msgpack_pack_object(pk, *p->args));
	case K_OK:
		return (p->ok ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
	case K_DATA:
		if (p->data_raw.len > 0)
			return (msgpack_sbuffer_write(sb,
			    (const char *)p->data_raw.ptr, p->data_raw.len));
		return (msgpack_pack_object(pk, *p->data));
	case K_CODE:
		s = proto_error_name(p->code);
		return (msgpack_pack_str_with_body(pk, s, strlen(s)));
	case K_MSG:
		return (msgpack_pack_str_with_body(pk, p->msg.ptr, p->msg.len));
	case K__MAX:
		break;
	}
	return (-1);
}

/* Appends p as one whole frame travelling in dir to sb. */
int
packet_encode(const struct packet *p, enum proto_dir dir, msgpack_sbuffer *sb)
{
	const struct packet_spec	*spec;
	msgpack_packer			 pk;
	uint64_t			 keys, todo;
	size_t				 start = sb->size, blen;
	uint32_t			 f;
	int				 k, r = 0;

	if ((unsigned)p->type >= PKT__MAX ||
	    (dir != PROTO_TO_BROKER && dir != PROTO_FROM_BROKER))
		return (-EINVAL);
	spec = &packet_specs[dir][p->type];
	if (spec->required == 0)
		return (-EINVAL);
	keys = spec->required;
	for (f = 0; f < sizeof(packet_flags) / sizeof(packet_flags[0]); f++) {
		if (p->has & packet_flags[f].flag)
			keys |= spec->optional & KB(packet_flags[f].key);
	}
	if ((r = packet_validate(p, dir, keys)) != 0)
		return (r);

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	r = msgpack_sbuffer_write(sb, "\0\0\0\0", PROTO_HEADER_LEN);
	r |= msgpack_pack_map(&pk, (size_t)__builtin_popcountll(keys));
	for (todo = keys; todo != 0 && r == 0; todo &= todo - 1) {
		k = __builtin_ctzll(todo);
		r |= msgpack_sbuffer_write(sb, packet_keys[k], 1 + KEY_LEN(k));
		r |= packet_put(p, k, &pk, sb);
	}
	if (r != 0) {
		sb->size = start;
		return (-ENOMEM);
	}

	blen = sb->size - start - PROTO_HEADER_LEN;
	if (blen > UINT32_MAX) {
		sb->size = start;
		return (-EMSGSIZE);
	}
	/* Spliced or re-packed values may nest deeper than a peer accepts. */
	if ((keys & (KB(K_ARGS) | KB(K_DATA))) &&
	    frame_check((const uint8_t *)sb->data + start + PROTO_HEADER_LEN,
	    blen, NULL) != 0) {
		sb->size = start;
		return (-EINVAL);
	}
	frame_put_header((uint8_t *)sb->data + start, (uint32_t)blen);
	return (0);
}

/* Packs a NUL-terminated string as a MessagePack str. */
void
proto_pack_str(msgpack_packer *pk, const char *s)
{
	size_t	len = strlen(s);

	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

/*
 * decode.c: one frame body into a struct packet, in one walk.
 *
 * The walk reads the MessagePack bytes directly: the top-level map, then
 * each key and the value of the keys the packet's type needs, checking as
 * it goes every rule frame_check() enforces (counts no larger than the bytes
 * left, nesting, no reserved byte, nothing after the map). It allocates
 * nothing and copies nothing: strings and binaries point into the body.
 * Values of keys a packet does not use are skipped, not decoded. Only ADMIN
 * args and REPLY data, which are free-form, are also unpacked with msgpack-c
 * into a zone, after the walk has bounded them.
 *
 * The type comes from `t`, which encoders write first; when it is not
 * first, the keys are scanned for it before the walk. Errors keep the
 * precedence of the rules: a malformed body is reported with
 * frame_check()'s sentence (-EBADMSG, a BAD_FRAME for the broker) even
 * when the walk met a bad value first, and a well-formed body with a bad
 * packet in it gets the walk's sentence (-EPROTO, a BAD_PACKET). Those
 * second looks happen only on the failure path.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "proto/internal.h"

/* A cursor over one frame body. */
struct dec {
	const uint8_t	*p;		/* the next byte */
	const uint8_t	*end;
	uint64_t	 budget;	/* container items it may still walk */
};

/* One value as the walk sees it. */
struct dec_val {
	uint8_t		 b;		/* its first byte */
	enum frame_kind	 kind;
	uint64_t	 n;		/* str/bin/ext bytes, array/map items */
	const uint8_t	*body;		/* str/bin bytes */
	bool		 neg;		/* a negative integer */
	uint64_t	 u;		/* an integer's value (two's complement) */
};

/* Internal results of the walk: the body is malformed; it is too big. */
#define DEC_MALFORMED	(-EBADMSG)
#define DEC_TOO_BIG	(-E2BIG)

/* Copies peer text into buf, made printable and cut short, for an error. */
static const char *
dec_quote(char *buf, size_t bufsz, const uint8_t *s, size_t len)
{
	size_t	i, n = 0, max = bufsz - 4;

	for (i = 0; i < len && n < max; i++)
		buf[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
	if (i < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return (buf);
}

/*
 * Reads the header of the value at the cursor into v and moves the cursor
 * past the whole value, except for arrays and maps (past their header
 * only). Returns 0 or DEC_MALFORMED.
 */
static inline int
dec_next(struct dec *d, struct dec_val *v)
{
	struct frame_item	it;
	size_t			rest;
	uint8_t			b;

	if (d->p >= d->end)
		return (DEC_MALFORMED);
	b = v->b = *d->p;
	v->neg = false;
	v->u = 0;
	/* The forms every packet is made of first: fixint, fixstr, bin8. */
	if (b <= 0x7f) {
		v->kind = FK_SCALAR;
		v->u = b;
		d->p++;
		return (0);
	}
	if (b >= 0xa0 && b <= 0xbf) {
		v->kind = FK_STR;
		v->n = b & 0x1f;
		if (v->n > (size_t)(d->end - d->p) - 1)
			return (DEC_MALFORMED);
		v->body = d->p + 1;
		d->p += 1 + v->n;
		return (0);
	}
	if (b == 0xc4 && d->end - d->p >= 2) {
		v->kind = FK_BIN;
		v->n = d->p[1];
		if (v->n > (size_t)(d->end - d->p) - 2)
			return (DEC_MALFORMED);
		v->body = d->p + 2;
		d->p += 2 + v->n;
		return (0);
	}
	frame_classify(v->b, &it);
	if (it.kind == FK_RESERVED)
		return (DEC_MALFORMED);
	rest = (size_t)(d->end - d->p) - 1;
	if (it.fixed > rest)
		return (DEC_MALFORMED);
	if (it.lenbytes > 0)
		it.n = frame_be(d->p + 1, it.lenbytes);
	rest -= it.fixed;
	v->kind = it.kind;
	v->n = it.n;
	switch (it.kind) {
	case FK_STR:
	case FK_BIN:
	case FK_EXT:
		if (it.n > rest)
			return (DEC_MALFORMED);
		v->body = d->p + 1 + it.fixed;
		d->p += 1 + it.fixed + it.n;
		return (0);
	case FK_ARRAY:
		if (it.n > rest)
			return (DEC_MALFORMED);
		d->p += 1 + it.fixed;
		return (0);
	case FK_MAP:
		if (2 * it.n > rest)
			return (DEC_MALFORMED);
		d->p += 1 + it.fixed;
		return (0);
	default:
		break;
	}
	/* A scalar: integers carry their value; others only their size. */
	if (v->b >= 0xe0) {			/* negative fixint */
		v->neg = true;
		v->u = (uint64_t)(int64_t)(int8_t)v->b;
	} else if (v->b >= 0xcc && v->b <= 0xcf) {
		v->u = frame_be(d->p + 1, it.fixed);
	} else if (v->b >= 0xd0 && v->b <= 0xd3) {
		uint64_t raw = frame_be(d->p + 1, it.fixed);
		unsigned bits = 8u * it.fixed;

		/* Sign-extend; msgpack-c calls a non-negative one unsigned. */
		if (bits < 64 && (raw >> (bits - 1)) != 0)
			raw |= ~0ull << bits;
		v->u = raw;
		v->neg = (int64_t)raw < 0;
	}
	d->p += 1 + it.fixed;
	return (0);
}

/*
 * Skips the value at the cursor, whose container is at depth (the top map
 * is depth 1). Returns 0 or DEC_MALFORMED (truncated, too deep).
 */
static int
dec_skip(struct dec *d, unsigned depth)
{
	struct dec_val	v;
	uint64_t	n;
	int		r;

	if ((r = dec_next(d, &v)) != 0)
		return (r);
	if (v.kind != FK_ARRAY && v.kind != FK_MAP)
		return (0);
	if (depth == PROTO_MAX_DEPTH)
		return (DEC_MALFORMED);
	n = v.kind == FK_MAP ? 2 * v.n : v.n;
	/* Refused before it is walked: see PROTO_MAX_ITEMS. */
	if (n > d->budget)
		return (DEC_TOO_BIG);
	d->budget -= n;
	while (n-- > 0)
		if ((r = dec_skip(d, depth + 1)) != 0)
			return (r);
	return (0);
}

/* Bounds one value at p; see internal.h. */
int
dec_value_len(const uint8_t *p, size_t len, unsigned depth, size_t *ret_len)
{
	struct dec	d = { p, p + len, UINT64_MAX };

	if (dec_skip(&d, depth) != 0)
		return (-EBADMSG);
	*ret_len = (size_t)(d.p - p);
	return (0);
}

/* Names a value's type for "(got ...)" sentences, as msgpack-c would. */
static const char *
dec_type(const struct dec_val *v)
{
	switch (v->kind) {
	case FK_STR:
		return ("str");
	case FK_BIN:
		return ("bin");
	case FK_EXT:
		return ("ext");
	case FK_ARRAY:
		return ("array");
	case FK_MAP:
		return ("map");
	default:
		break;
	}
	if (v->b == 0xc0)
		return ("nil");
	if (v->b == 0xc2 || v->b == 0xc3)
		return ("bool");
	if (v->b == 0xca || v->b == 0xcb)
		return ("float");
	return (v->neg ? "negative integer" : "unsigned integer");
}

/* True when v is an integer (any encoding). */
static bool
dec_is_int(const struct dec_val *v)
{
	return (v->kind == FK_SCALAR && (v->b <= 0x7f || v->b >= 0xe0 ||
	    (v->b >= 0xcc && v->b <= 0xd3)));
}

/* Fails with "TYPE: key 'k' must be <what> (got <type>)". */
static int
dec_wrong_type(const struct packet *p, enum packet_key k, const char *what,
    const struct dec_val *v, char *err)
{
	proto_fail(err, "%s: key '%s' must be %s (got %s)",
	    packet_type_name(p->type), KEY_NAME(k), what, dec_type(v));
	return (-EPROTO);
}

/* Reads an unsigned integer value. */
static int
dec_uint(const struct packet *p, enum packet_key k, const struct dec_val *v,
    uint64_t *ret, char *err)
{
	if (!dec_is_int(v) || v->neg)
		return (dec_wrong_type(p, k, "an unsigned integer", v, err));
	*ret = v->u;
	return (0);
}

/* Reads a str value as borrowed bytes. */
static int
dec_str(const struct packet *p, enum packet_key k, const struct dec_val *v,
    struct pbytes *ret, char *err)
{
	if (v->kind != FK_STR)
		return (dec_wrong_type(p, k, "a str", v, err));
	ret->ptr = v->body;
	ret->len = (uint32_t)v->n;
	return (0);
}

/* Reads a bin value as borrowed bytes. */
static int
dec_bin(const struct packet *p, enum packet_key k, const struct dec_val *v,
    struct pbytes *ret, char *err)
{
	if (v->kind != FK_BIN)
		return (dec_wrong_type(p, k, "a bin", v, err));
	ret->ptr = v->body;
	ret->len = (uint32_t)v->n;
	return (0);
}

/* Reads a 16-byte bin (an id or a session). */
static int
dec_id(const struct packet *p, enum packet_key k, const struct dec_val *v,
    uint8_t *ret, char *err)
{
	if (v->kind != FK_BIN)
		return (dec_wrong_type(p, k, "a 16-byte bin", v, err));
	if (v->n != PROTO_ID_LEN) {
		proto_fail(err, "%s: key '%s' must be a 16-byte bin (got %u "
		    "byte%s)", packet_type_name(p->type), KEY_NAME(k),
		    (unsigned)v->n, v->n == 1 ? "" : "s");
		return (-EPROTO);
	}
	memcpy(ret, v->body, PROTO_ID_LEN);
	return (0);
}

/* Reads a bool value. */
static int
dec_bool(const struct packet *p, enum packet_key k, const struct dec_val *v,
    bool *ret, char *err)
{
	if (v->b != 0xc2 && v->b != 0xc3)
		return (dec_wrong_type(p, k, "a bool", v, err));
	*ret = v->b == 0xc3;
	return (0);
}

/* Reads REGISTER's fns: 1..256 names of 1..255 bytes each. */
static int
dec_fns(struct dec *d, struct packet *p, const struct dec_val *v, char *err)
{
	struct dec_val	e;
	uint32_t	i;
	int		r;

	if (v->kind != FK_ARRAY)
		return (dec_wrong_type(p, K_FNS, "an array of str", v, err));
	if (v->n < 1 || v->n > PROTO_MAX_FNS) {
		proto_fail(err, "REGISTER: key 'fns' must list 1 to %d "
		    "functions (got %u)", PROTO_MAX_FNS, (unsigned)v->n);
		return (-EPROTO);
	}
	for (i = 0; i < v->n; i++) {
		if ((r = dec_next(d, &e)) != 0)
			return (r);
		if (e.kind != FK_STR) {
			proto_fail(err, "REGISTER: key 'fns' must be an array "
			    "of str (element %u is %s)", i, dec_type(&e));
			return (-EPROTO);
		}
		if (e.n < 1 || e.n > PROTO_MAX_FN_LEN) {
			proto_fail(err, "REGISTER: element %u of key 'fns' must "
			    "be 1 to %d bytes long (got %u)", i,
			    PROTO_MAX_FN_LEN, (unsigned)e.n);
			return (-EPROTO);
		}
		p->fns[i].ptr = e.body;
		p->fns[i].len = (uint32_t)e.n;
	}
	p->nfns = (uint32_t)v->n;
	return (0);
}

/*
 * Reads the entries of RUN's meta, whose map header v the cursor is past:
 * every key and value must be a str. Only the shape is the decoder's; the
 * limits are meta_check()'s (a BAD_REQUEST, not a BAD_PACKET). The entries
 * count against the frame's item budget as any map's. err may be NULL.
 * Returns 0, DEC_MALFORMED, DEC_TOO_BIG or -EPROTO.
 */
static int
dec_meta(struct dec *d, const struct dec_val *v, char *err)
{
	struct dec_val	 k, e;
	char		 q[48];
	int		 r;

	if (v->kind != FK_MAP) {
		proto_fail(err, "RUN: key 'meta' must be a map of str to str "
		    "(got %s)", dec_type(v));
		return (-EPROTO);
	}
	if (2 * v->n > d->budget)
		return (DEC_TOO_BIG);
	d->budget -= 2 * v->n;
	for (uint64_t i = 0; i < v->n; i++) {
		if ((r = dec_next(d, &k)) != 0)
			return (r);
		if (k.kind != FK_STR) {
			proto_fail(err, "RUN: key 'meta' must be a map of str "
			    "to str (a key is %s)", dec_type(&k));
			return (-EPROTO);
		}
		if ((r = dec_next(d, &e)) != 0)
			return (r);
		if (e.kind != FK_STR) {
			proto_fail(err, "RUN: key 'meta' must be a map of str "
			    "to str (the value of '%s' is %s)",
			    dec_quote(q, sizeof q, k.body, k.n), dec_type(&e));
			return (-EPROTO);
		}
	}
	return (0);
}

/* True when raw is exactly one map of str to str; see internal.h. */
bool
dec_meta_ok(struct pbytes raw)
{
	struct dec	d = { raw.ptr, raw.ptr + raw.len, UINT64_MAX };
	struct dec_val	v;

	return (raw.len > 0 && dec_next(&d, &v) == 0 &&
	    dec_meta(&d, &v, NULL) == 0 && d.p == d.end);
}

/* Reads RESULT's status; a worker may only send OK, ERROR or CANCELLED. */
static int
dec_status(struct packet *p, const struct dec_val *v, enum proto_dir dir,
    char *err)
{
	char	q[48];
	int	s;

	if (v->kind != FK_STR)
		return (dec_wrong_type(p, K_STATUS, "a str", v, err));
	s = job_status_from_name((const char *)v->body, v->n);
	if (s < 0) {
		proto_fail(err, "RESULT: unknown status '%s'",
		    dec_quote(q, sizeof q, v->body, v->n));
		return (-EPROTO);
	}
	if (dir == PROTO_TO_BROKER && s != JOB_OK && s != JOB_ERROR &&
	    s != JOB_CANCELLED) {
		proto_fail(err, "RESULT: a worker may only report OK, ERROR or "
		    "CANCELLED (got '%s')", job_status_name(s));
		return (-EPROTO);
	}
	p->status = s;
	return (0);
}

/*
 * Unpacks a free-form value (ADMIN args, REPLY data) that the walk has
 * bounded to [start, end) into p's zone. Returns 0 or -ENOMEM.
 */
static int
dec_object(struct packet *p, const uint8_t *start, const uint8_t *end,
    const msgpack_object **ret)
{
	msgpack_object	*o;
	size_t		 off = 0;

	if (p->zone == NULL && (p->zone = msgpack_zone_new(
	    MSGPACK_ZONE_CHUNK_SIZE)) == NULL)
		return (-ENOMEM);
	if ((o = msgpack_zone_malloc(p->zone, sizeof(*o))) == NULL)
		return (-ENOMEM);
	if (msgpack_unpack((const char *)start, (size_t)(end - start), &off,
	    p->zone, o) != MSGPACK_UNPACK_SUCCESS)
		return (-ENOMEM);	/* bounded by the walk: only ENOMEM */
	*ret = o;
	return (0);
}

/* The bytes a fixstr or str8 at s holds, or -1 for another form. */
static inline int
dec_str_len(const uint8_t *s, size_t avail, size_t *ret_hdr)
{
	if (avail >= 1 && s[0] >= 0xa0 && s[0] <= 0xbf) {
		*ret_hdr = 1;
		return (s[0] & 0x1f);
	}
	if (avail >= 2 && s[0] == 0xd9) {
		*ret_hdr = 2;
		return (s[1]);
	}
	return (-1);
}

/*
 * Reads the value of key k when it has the form an encoder writes for it
 * (a 16-byte bin8 id, a fixstr or str8 string, a bin8 or bin16 payload, a
 * fixint number, a bool) and fits in the body: the common case, without
 * the general walk. Returns false, touching nothing, for anything else;
 * the general path then reads it or reports what is wrong with it.
 */
static inline bool
dec_value_fast(struct dec *d, struct packet *p, enum packet_key k)
{
	const uint8_t	*s = d->p;
	size_t		 avail = (size_t)(d->end - s), hdr, n;
	struct pbytes	*str = NULL;
	uint64_t	*num = NULL;
	int		 len;

	switch (k) {
	case K_ID:
		if (avail < 2 + PROTO_ID_LEN || s[0] != 0xc4 ||
		    s[1] != PROTO_ID_LEN)
			return (false);
		memcpy(p->id, s + 2, PROTO_ID_LEN);
		d->p = s + 2 + PROTO_ID_LEN;
		return (true);
	case K_PAYLOAD:
		if (avail >= 2 && s[0] == 0xc4) {
			hdr = 2;
			n = s[1];
		} else if (avail >= 3 && s[0] == 0xc5) {
			hdr = 3;
			n = (size_t)s[1] << 8 | s[2];
		} else
			return (false);
		if (n > avail - hdr)
			return (false);
		p->payload.ptr = s + hdr;
		p->payload.len = (uint32_t)n;
		d->p = s + hdr + n;
		return (true);
	case K_FN:
		str = &p->fn;
		break;
	case K_ERROR:
		str = &p->error;
		break;
	case K_NAME:
		str = &p->name;
		break;
	case K_MSG:
		str = &p->msg;
		break;
	case K_STATE:
		str = &p->state;
		break;
	case K_UNIQUE:
		str = &p->unique;
		break;
	case K_ATTEMPT:
		num = &p->attempt;
		break;
	case K_ATTEMPTS:
		num = &p->attempts;
		break;
	case K_TIMEOUT_MS:
		num = &p->timeout_ms;
		break;
	case K_RETRIES:
		num = &p->retries;
		break;
	case K_DELAY_MS:
		num = &p->delay_ms;
		break;
	case K_AGE_MS:
		num = &p->age_ms;
		break;
	case K_RETRY_ON_ERROR:
		num = &p->retry_on_error;
		break;
	case K_BACKOFF_MS:
		num = &p->backoff_ms;
		break;
	case K_RUN_AT:
		num = &p->run_at;
		break;
	case K_N:
		num = &p->n;
		break;
	case K_SEQ:
		num = &p->seq;
		break;
	case K_DETACH:
	case K_NOWAIT:
	case K_ACK:
		if (avail < 1 || (s[0] != 0xc2 && s[0] != 0xc3))
			return (false);
		*(k == K_DETACH ? &p->detach : k == K_NOWAIT ? &p->nowait :
		    &p->ack) = s[0] == 0xc3;
		d->p = s + 1;
		return (true);
	case K_PRIORITY:
		if (avail < 1 || (s[0] > 0x7f && s[0] < 0xe0))
			return (false);
		p->priority = (int8_t)s[0];
		d->p = s + 1;
		return (true);
	default:
		return (false);
	}
	if (str != NULL) {
		if ((len = dec_str_len(s, avail, &hdr)) < 0 ||
		    (size_t)len > avail - hdr)
			return (false);
		str->ptr = s + hdr;
		str->len = (uint32_t)len;
		d->p = s + hdr + len;
		return (true);
	}
	if (avail < 1 || s[0] > 0x7f)
		return (false);
	*num = s[0];
	d->p = s + 1;
	return (true);
}

/*
 * Reads the value of key k at the cursor into p, checking its type and
 * range; the cursor ends past it. Returns 0, DEC_MALFORMED, -EPROTO with
 * a sentence, or -ENOMEM.
 */
static int
dec_value(struct dec *d, struct packet *p, enum packet_key k,
    enum proto_dir dir, char *err)
{
	struct dec_val	 v;
	const uint8_t	*start = d->p;
	char		 q[48];
	uint64_t	 u = 0;
	int		 r, i;

	if (dec_value_fast(d, p, k))
		return (0);
	if ((r = dec_next(d, &v)) != 0)
		return (r);
	switch (k) {
	case K_V:
		return (dec_uint(p, k, &v, &p->version, err));
	case K_ROLE:
		if (v.kind != FK_STR)
			return (dec_wrong_type(p, k, "a str", &v, err));
		r = proto_role_from_name((const char *)v.body, v.n);
		if (r < 0) {
			proto_fail(err, "HELLO: unknown role '%s' (expected "
			    "client, worker or admin)", dec_quote(q, sizeof q,
			    v.body, v.n));
			return (-EPROTO);
		}
		p->role = r;
		return (0);
	case K_NAME:
		return (dec_str(p, k, &v, &p->name, err));
	case K_TOKEN:
		return (dec_str(p, k, &v, &p->token, err));
	case K_SESSION:
		return (dec_id(p, k, &v, p->session, err));
	case K_HEARTBEAT_MS:
		return (dec_uint(p, k, &v, &p->heartbeat_ms, err));
	case K_MAX_FRAME:
		return (dec_uint(p, k, &v, &p->max_frame, err));
	case K_SERVER:
		return (dec_str(p, k, &v, &p->server, err));
	case K_FNS:
		return (dec_fns(d, p, &v, err));
	case K_CAPACITY:
		if ((r = dec_uint(p, k, &v, &u, err)) != 0)
			return (r);
		/* 0: draining, no new jobs (see docs/protocol.md). */
		if (u > PROTO_MAX_CAPACITY) {
			proto_fail(err, "REGISTER: key 'capacity' must be "
			    "between 0 and %d (got %llu)", PROTO_MAX_CAPACITY,
			    (unsigned long long)u);
			return (-EPROTO);
		}
		p->capacity = (uint32_t)u;
		return (0);
	case K_ID:
		return (dec_id(p, k, &v, p->id, err));
	case K_FN:
		return (dec_str(p, k, &v, &p->fn, err));
	case K_PAYLOAD:
		return (dec_bin(p, k, &v, &p->payload, err));
	case K_ATTEMPT:
		return (dec_uint(p, k, &v, &p->attempt, err));
	case K_ATTEMPTS:
		return (dec_uint(p, k, &v, &p->attempts, err));
	case K_TIMEOUT_MS:
		return (dec_uint(p, k, &v, &p->timeout_ms, err));
	case K_RETRIES:
		return (dec_uint(p, k, &v, &p->retries, err));
	case K_DELAY_MS:
		return (dec_uint(p, k, &v, &p->delay_ms, err));
	case K_AGE_MS:
		return (dec_uint(p, k, &v, &p->age_ms, err));
	case K_RETRY_ON_ERROR:
		return (dec_uint(p, k, &v, &p->retry_on_error, err));
	case K_BACKOFF_MS:
		return (dec_uint(p, k, &v, &p->backoff_ms, err));
	case K_STATE:
		return (dec_str(p, k, &v, &p->state, err));
	case K_UNIQUE:
		return (dec_str(p, k, &v, &p->unique, err));
	case K_JOINED:
		return (dec_id(p, k, &v, p->joined, err));
	case K_RUN_AT:
		return (dec_uint(p, k, &v, &p->run_at, err));
	case K_PRIORITY:
		if (!dec_is_int(&v))
			return (dec_wrong_type(p, k, "an integer", &v, err));
		if (!v.neg && v.u > INT64_MAX) {
			proto_fail(err, "RUN: key 'priority' is out of range "
			    "(got %llu)", (unsigned long long)v.u);
			return (-EPROTO);
		}
		p->priority = (int64_t)v.u;
		return (0);
	case K_DETACH:
		return (dec_bool(p, k, &v, &p->detach, err));
	case K_NOWAIT:
		return (dec_bool(p, k, &v, &p->nowait, err));
	case K_ACK:
		return (dec_bool(p, k, &v, &p->ack, err));
	case K_META:
		if ((r = dec_meta(d, &v, err)) != 0)
			return (r);
		p->meta.ptr = start;
		p->meta.len = (uint32_t)(d->p - start);
		return (0);
	case K_STATUS:
		return (dec_status(p, &v, dir, err));
	case K_ERROR:
		return (dec_str(p, k, &v, &p->error, err));
	case K_N:
		return (dec_uint(p, k, &v, &p->n, err));
	case K_REASON:
		return (dec_str(p, k, &v, &p->reason, err));
	case K_SEQ:
		return (dec_uint(p, k, &v, &p->seq, err));
	case K_VERB:
		return (dec_str(p, k, &v, &p->verb, err));
	case K_ARGS:
	case K_DATA:
		if (k == K_ARGS && v.kind != FK_MAP)
			return (dec_wrong_type(p, k, "a map", &v, err));
		/* Bound it first (the top map is depth 1), then unpack. */
		d->p = start;
		if ((r = dec_skip(d, 1)) != 0)
			return (r);
		if (k == K_ARGS) {
			p->args_raw.ptr = start;
			p->args_raw.len = (uint32_t)(d->p - start);
			return (dec_object(p, start, d->p, &p->args));
		}
		p->data_raw.ptr = start;
		p->data_raw.len = (uint32_t)(d->p - start);
		return (dec_object(p, start, d->p, &p->data));
	case K_OK:
		return (dec_bool(p, k, &v, &p->ok, err));
	case K_CODE:
		if (v.kind != FK_STR)
			return (dec_wrong_type(p, k, "a str", &v, err));
		/* An unknown code still carries a readable msg. */
		p->code = PERR__MAX;
		for (i = 0; i < PERR__MAX; i++) {
			const char *name = proto_error_name(i);

			if (strlen(name) == v.n &&
			    memcmp(name, v.body, v.n) == 0) {
				p->code = i;
				break;
			}
		}
		return (0);
	case K_MSG:
		return (dec_str(p, k, &v, &p->msg, err));
	case K_T:
	case K__MAX:
		break;
	}
	return (0);
}

/* True when the n (1 to 12) bytes at a and b are the same, inline. */
static inline bool
dec_same(const uint8_t *a, const char *b, size_t n)
{
	uint64_t	x, y, u, v;
	uint32_t	x4, y4, u4, v4;

	if (n >= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		memcpy(&u, a + n - 8, 8);
		memcpy(&v, b + n - 8, 8);
		return (x == y && u == v);
	}
	if (n >= 4) {
		memcpy(&x4, a, 4);
		memcpy(&y4, b, 4);
		memcpy(&u4, a + n - 4, 4);
		memcpy(&v4, b + n - 4, 4);
		return (x4 == y4 && u4 == v4);
	}
	return (a[0] == (uint8_t)b[0] && a[n - 1] == (uint8_t)b[n - 1] &&
	    a[n / 2] == (uint8_t)b[n / 2]);
}

/*
 * The packet type called s[0..len), or -1: a switch on the length and
 * the first two bytes, then one comparison (the `t` of every packet).
 */
static int
dec_type_find(const uint8_t *s, size_t len)
{
	const char	*name;
	int		 t;

	if (len < 3 || len > 8)
		return (-1);
	/* The job path's own, RUN and RESULT, before the general switch. */
	if (s[0] == 'R' && (len == 3 || len == 6)) {
		t = len == 3 ? PKT_RUN : PKT_RESULT;
		name = proto_wire_name(packet_type_name(t));
		if (dec_same(s, name + 1, len))
			return (t);
	}
	switch (s[0] << 8 | s[1]) {
	case 'R' << 8 | 'U':
		t = PKT_RUN;
		break;
	case 'R' << 8 | 'E':
		t = len == 6 ? PKT_RESULT : len == 8 ? PKT_REGISTER :
		    PKT_REPLY;
		break;
	case 'P' << 8 | 'I':
		t = PKT_PING;
		break;
	case 'P' << 8 | 'O':
		t = PKT_PONG;
		break;
	case 'P' << 8 | 'R':
		t = PKT_PROGRESS;
		break;
	case 'C' << 8 | 'A':
		t = PKT_CANCEL;
		break;
	case 'H' << 8 | 'E':
		t = PKT_HELLO;
		break;
	case 'W' << 8 | 'E':
		t = PKT_WELCOME;
		break;
	case 'B' << 8 | 'Y':
		t = PKT_BYE;
		break;
	case 'A' << 8 | 'D':
		t = PKT_ADMIN;
		break;
	case 'A' << 8 | 'C':
		t = PKT_ACCEPTED;
		break;
	case 'S' << 8 | 'T':
		t = PKT_STATUS;
		break;
	case 'J' << 8 | 'O':
		t = PKT_JOB;
		break;
	case 'E' << 8 | 'R':
		t = PKT_ERROR;
		break;
	default:
		return (-1);
	}
	name = proto_wire_name(packet_type_name(t));
	if (((uint8_t)name[0] & 0x1f) != len || !dec_same(s, name + 1, len))
		return (-1);
	return (t);
}

/*
 * Reads the value of `t` at the cursor into p->type and checks that the
 * type travels in dir. Returns 0, DEC_MALFORMED or -EPROTO.
 */
static int
dec_type_value(struct dec *d, struct packet *p, enum proto_dir dir, char *err)
{
	struct dec_val	v;
	char		q[48];
	int		r;

	if ((r = dec_next(d, &v)) != 0)
		return (r);
	if (v.kind != FK_STR) {
		proto_fail(err, "key 't' must be a str (got %s)", dec_type(&v));
		return (-EPROTO);
	}
	if ((r = dec_type_find(v.body, v.n)) < 0) {
		proto_fail(err, "unknown packet type '%s'",
		    dec_quote(q, sizeof q, v.body, v.n));
		return (-EPROTO);
	}
	p->type = r;
	if (packet_specs[dir][p->type].required == 0) {
		proto_fail(err, "%s is never sent %s the broker",
		    packet_type_name(p->type),
		    dir == PROTO_TO_BROKER ? "to" : "by");
		return (-EPROTO);
	}
	return (0);
}

/*
 * Reads the key at the cursor: K_T, another key of the protocol, or -1 for
 * one that is not (not a str, empty, unknown). Returns 0 or DEC_MALFORMED.
 */
static int
dec_key(struct dec *d, int *ret)
{
	const uint8_t	*start = d->p;
	struct dec_val	 v;
	size_t		 n;
	int		 r;

	/* Keys are fixstrs: read them without the general walk. */
	if (d->p < d->end && (*d->p & 0xe0) == 0xa0) {
		n = *d->p & 0x1f;
		if (n > (size_t)(d->end - d->p) - 1)
			return (DEC_MALFORMED);
		*ret = packet_key_find(d->p + 1, n);
		d->p += 1 + n;
		return (0);
	}
	if ((r = dec_next(d, &v)) != 0)
		return (r);
	if (v.kind == FK_STR) {
		*ret = packet_key_find(v.body, v.n);
		return (0);
	}
	/* Any other key is ignored, but a container one must be bounded. */
	*ret = -1;
	d->p = start;
	return (dec_skip(d, 1));
}

/*
 * Scans the n entries of the top map (the cursor at the first key) for
 * `t` and reads it. Returns 0, DEC_MALFORMED or -EPROTO ("missing key
 * 't'", "key 't' appears twice", or a bad value).
 */
static int
dec_find_type(struct dec d, uint64_t n, struct packet *p, enum proto_dir dir,
    char *err)
{
	struct dec	at = { NULL, NULL, 0 };
	int		k, r;

	while (n-- > 0) {
		if ((r = dec_key(&d, &k)) != 0)
			return (r);
		if (k == K_T) {
			if (at.p != NULL) {
				proto_fail(err, "key 't' appears twice");
				return (-EPROTO);
			}
			at = d;
		}
		if ((r = dec_skip(&d, 1)) != 0)
			return (r);
	}
	if (at.p == NULL) {
		proto_fail(err, "missing key 't'");
		return (-EPROTO);
	}
	return (dec_type_value(&at, p, dir, err));
}

/*
 * How many container items a frame travelling in dir may make the walk
 * visit: bounded towards the broker (a peer's frame costs the broker
 * work in proportion to what a valid packet can hold, not to its bytes),
 * not from it.
 */
static inline uint64_t
dec_budget(enum proto_dir dir)
{
	return (dir == PROTO_TO_BROKER ? PROTO_MAX_ITEMS : UINT64_MAX);
}

/* A status: a fixstr naming one that the direction allows. */
static inline bool
dec_status_fast(struct dec *d, struct packet *p, enum proto_dir dir)
{
	int	st;

	if (d->p >= d->end || (d->p[0] & 0xe0) != 0xa0 ||
	    (size_t)(d->p[0] & 0x1f) > (size_t)(d->end - d->p) - 1 ||
	    (st = job_status_from_name((const char *)d->p + 1,
	    d->p[0] & 0x1f)) < 0 || (dir == PROTO_TO_BROKER &&
	    st != JOB_OK && st != JOB_ERROR && st != JOB_CANCELLED))
		return (false);
	p->status = st;
	d->p += 1 + (d->p[0] & 0x1f);
	return (true);
}

/*
 * Whether the next bytes are the literal key lit (a fixstr header and the
 * name), with at least a byte after it for the value; skips it if so.
 */
#define DEC_KEY(d, lit)							\
	((size_t)((d)->end - (d)->p) > sizeof(lit) - 1 &&		\
	    memcmp((d)->p, (lit), sizeof(lit) - 1) == 0 &&		\
	    ((d)->p += sizeof(lit) - 1, true))

/*
 * The job path's packets, RUN and RESULT each way, with only the keys they
 * carry there (a payload, a timeout, an error beside the required ones),
 * as encoders write them: `t` and `id` first, then each key compared as a
 * literal in the order of packet_keys, each value read as dec_canonical()
 * reads it. True when the body is exactly that, p then holding what
 * dec_canonical() would have made of it; false, with p in any state, for
 * anything else (other keys, another order, other forms), which the
 * slower paths then read or refuse. test-proto holds it to them.
 */
static bool
dec_job_path(const uint8_t *body, size_t len, enum proto_dir dir,
    struct packet *p)
{
	struct dec	d = { body + 1, body + len, dec_budget(dir) };
	bool		to = dir == PROTO_TO_BROKER;
	unsigned	n;

	if ((body[0] & 0xf0) != 0x80 || (n = body[0] & 0x0f) < 3)
		return (false);
	if (DEC_KEY(&d, "\xa1" "t" "\xa3" "RUN" "\xa2" "id"))
		p->type = PKT_RUN;
	else if (DEC_KEY(&d, "\xa1" "t" "\xa6" "RESULT" "\xa2" "id"))
		p->type = PKT_RESULT;
	else
		return (false);
	if (!dec_value_fast(&d, p, K_ID))
		return (false);
	n -= 2;
	if (p->type == PKT_RUN) {
		if (!DEC_KEY(&d, "\xa2" "fn") || !dec_value_fast(&d, p, K_FN))
			return (false);
		n--;
		/* To a worker the payload and the attempt are required. */
		if (n > 0 && DEC_KEY(&d, "\xa7" "payload")) {
			if (!dec_value_fast(&d, p, K_PAYLOAD))
				return (false);
			if (to)
				p->has |= PF_PAYLOAD;
			n--;
		} else if (!to)
			return (false);
		if (!to) {
			if (n == 0 || !DEC_KEY(&d, "\xa7" "attempt") ||
			    !dec_value_fast(&d, p, K_ATTEMPT))
				return (false);
			n--;
		}
		if (n > 0 && DEC_KEY(&d, "\xaa" "timeout_ms")) {
			if (!dec_value_fast(&d, p, K_TIMEOUT_MS))
				return (false);
			p->has |= PF_TIMEOUT;
			n--;
		}
	} else {
		if (DEC_KEY(&d, "\xa7" "payload")) {
			if (!dec_value_fast(&d, p, K_PAYLOAD))
				return (false);
			p->has |= PF_PAYLOAD;
			n--;
		}
		if (n < 2 || !(to ? DEC_KEY(&d, "\xa7" "attempt") &&
		    dec_value_fast(&d, p, K_ATTEMPT) :
		    DEC_KEY(&d, "\xa8" "attempts") &&
		    dec_value_fast(&d, p, K_ATTEMPTS)) ||
		    !DEC_KEY(&d, "\xa6" "status") || !dec_status_fast(&d, p, dir))
			return (false);
		n -= 2;
		if (n > 0 && DEC_KEY(&d, "\xa5" "error")) {
			if (!dec_value_fast(&d, p, K_ERROR))
				return (false);
			p->has |= PF_ERROR;
			n--;
		}
	}
	return (n == 0 && d.p == d.end);
}

/*
 * The fast path: reads a body written the way encoders write it (a fixmap,
 * `t` first, then the type's keys in the order of packet_keys, each value
 * in its usual form) straight into p, recognising each key by comparing
 * its bytes with the next ones the type may have. Returns true when the
 * body was exactly that and is a valid packet; false, with p in any
 * state, for anything else, which the general walk then reads or refuses
 * with the right sentence.
 */
static bool
dec_canonical(const uint8_t *body, size_t len, enum proto_dir dir,
    struct packet *p)
{
	const struct packet_spec	*spec;
	struct dec			 d = { body, body + len,
					    dec_budget(dir) };
	const uint8_t			*s;
	uint64_t			 seen, cand;
	unsigned			 n;
	int				 t, k;

	if (len < 4 || (body[0] & 0xf0) != 0x80 || body[1] != 0xa1 ||
	    body[2] != 't' || (body[3] & 0xe0) != 0xa0 ||
	    (size_t)(body[3] & 0x1f) > len - 4)
		return (false);
	n = body[0] & 0x0f;
	if (n == 0 || (t = dec_type_find(body + 4, body[3] & 0x1f)) < 0)
		return (false);
	spec = &packet_specs[dir][t];
	if (spec->required == 0)
		return (false);
	p->type = t;
	d.p = body + 4 + (body[3] & 0x1f);
	seen = KB(K_T);
	cand = (spec->required | spec->optional) & ~KB(K_T);
	while (--n > 0) {
		/* The next key is one of those after the last, in order. */
		for (s = d.p; cand != 0; cand &= cand - 1) {
			k = __builtin_ctzll(cand);
			if (d.end - s > (ptrdiff_t)KEY_LEN(k) &&
			    s[0] == (uint8_t)packet_keys[k][0] &&
			    dec_same(s + 1, KEY_NAME(k), KEY_LEN(k)))
				break;
		}
		if (cand == 0)
			return (false);
		d.p = s + 1 + KEY_LEN(k);
		cand &= cand - 1;
		seen |= KB(k);
		if (k == K_STATUS) {
			if (!dec_status_fast(&d, p, dir))
				return (false);
		} else if (k == K_META) {
			/* Any failure: the general walk says what it is. */
			struct dec_val	 v;
			const uint8_t	*start = d.p;

			if (dec_next(&d, &v) != 0 || dec_meta(&d, &v, NULL) != 0)
				return (false);
			p->meta.ptr = start;
			p->meta.len = (uint32_t)(d.p - start);
		} else if (!dec_value_fast(&d, p, k))
			return (false);
	}
	if (d.p != d.end || (spec->required & ~seen) != 0)
		return (false);
	for (seen &= spec->optional; seen != 0; seen &= seen - 1)
		p->has |= packet_key_flags[__builtin_ctzll(seen)];
	return (true);
}

/*
 * The walk: reads the body into p. Returns 0, DEC_MALFORMED (no sentence
 * yet), DEC_TOO_BIG, -EPROTO with a sentence, or -ENOMEM.
 */
static int
dec_packet(const uint8_t *body, size_t len, enum proto_dir dir,
    struct packet *p, char *err)
{
	const struct packet_spec	*spec;
	struct dec			 d = { body, body + len,
					    dec_budget(dir) }, first;
	struct dec_val			 map;
	uint64_t			 n, seen, missing;
	bool				 t_first = false;
	int				 k = -1, r;

	if ((r = dec_next(&d, &map)) != 0 || map.kind != FK_MAP)
		return (DEC_MALFORMED);
	n = map.n;
	if (dir == PROTO_TO_BROKER && n > PROTO_MAX_KEYS)
		return (DEC_TOO_BIG);
	/* `t` first, as encoders write it: the walk starts after it. */
	first = d;
	if (n > 0 && (r = dec_key(&d, &k)) != 0)
		return (r);
	if (n > 0 && k == K_T) {
		if ((r = dec_type_value(&d, p, dir, err)) != 0)
			return (r);
		t_first = true;
		n--;
	} else {
		d = first;
		if ((r = dec_find_type(d, n, p, dir, err)) != 0)
			return (r);
	}
	seen = KB(K_T);
	spec = &packet_specs[dir][p->type];

	while (n-- > 0) {
		if ((r = dec_key(&d, &k)) != 0)
			return (r);
		if (k == K_T && t_first) {
			proto_fail(err, "key 't' appears twice");
			return (-EPROTO);
		}
		if (k <= K_T || !((spec->required | spec->optional) & KB(k))) {
			/* Not a key of this packet: ignored, only bounded. */
			if ((r = dec_skip(&d, 1)) != 0)
				return (r);
			continue;
		}
		if (seen & KB(k)) {
			proto_fail(err, "%s: key '%s' appears twice",
			    packet_type_name(p->type), KEY_NAME(k));
			return (-EPROTO);
		}
		seen |= KB(k);
		if ((r = dec_value(&d, p, k, dir, err)) != 0)
			return (r);
	}
	if (d.p != d.end)
		return (DEC_MALFORMED);
	missing = spec->required & ~seen;
	if (missing != 0) {
		proto_fail(err, "%s: missing key '%s'",
		    packet_type_name(p->type),
		    KEY_NAME(__builtin_ctzll(missing)));
		return (-EPROTO);
	}
	/* `has` reports optional keys only, as the encoder reads it. */
	for (seen &= spec->optional; seen != 0; seen &= seen - 1)
		p->has |= packet_key_flags[__builtin_ctzll(seen)];
	return (0);
}

/* True when the top map of a well-formed body has `t` twice. */
static bool
dec_type_twice(const uint8_t *body, size_t len, enum proto_dir dir)
{
	struct dec	d = { body, body + len, UINT64_MAX };
	struct dec_val	map;
	struct packet	scratch;
	char		err[PROTO_ERRLEN];

	memset(&scratch, 0, offsetof(struct packet, fns));
	return (dec_next(&d, &map) == 0 && map.kind == FK_MAP &&
	    dec_find_type(d, map.n, &scratch, dir, err) == -EPROTO &&
	    strcmp(err, "key 't' appears twice") == 0);
}

/* Decodes one frame body travelling in dir into *ret; see proto.h. */
int
packet_decode(const uint8_t *body, size_t len, enum proto_dir dir,
    struct packet *ret, char *err)
{
	if (body != NULL && len > 0 &&
	    (dir == PROTO_TO_BROKER || dir == PROTO_FROM_BROKER)) {
		memset(ret, 0, offsetof(struct packet, fns));
		if (dec_job_path(body, len, dir, ret))
			return (0);
	}
	/* Anything else, from a cleared packet again. */
	return (packet_decode_general(body, len, dir, ret, err));
}

/* packet_decode() without its job path; see internal.h. */
int
packet_decode_general(const uint8_t *body, size_t len, enum proto_dir dir,
    struct packet *ret, char *err)
{
	int	r;

	memset(ret, 0, offsetof(struct packet, fns));
	if (dir != PROTO_TO_BROKER && dir != PROTO_FROM_BROKER) {
		proto_fail(err, "unknown direction %d", (int)dir);
		return (-EPROTO);
	}
	if (body == NULL || len == 0)
		return (frame_check(body, len, err));
	if (dec_canonical(body, len, dir, ret))
		return (0);
	memset(ret, 0, offsetof(struct packet, fns));
	if ((r = dec_packet(body, len, dir, ret, err)) == 0)
		return (0);
	packet_clear(ret);
	if (r == -ENOMEM) {
		if (err != NULL)
			snprintf(err, PROTO_ERRLEN, "out of memory");
		return (-ENOMEM);
	}
	if (r == DEC_TOO_BIG) {
		/* Said at once: walking the rest is the work it must not cost. */
		proto_fail(err, "a packet holds at most %d keys and %d items in "
		    "all its arrays and maps; this frame holds more",
		    PROTO_MAX_KEYS, PROTO_MAX_ITEMS);
		return (-EPROTO);
	}
	/* A malformed body wins over what the walk met before the flaw. */
	if (frame_check(body, len, err) != 0)
		return (-EBADMSG);
	if (r == DEC_MALFORMED) {
		/* The walk and frame_check() disagree: a bug; say so. */
		proto_fail(err, "frame body is not valid MessagePack");
		return (-EBADMSG);
	}
	/* As does a second `t` over the errors of other keys. */
	if (dec_type_twice(body, len, dir))
		proto_fail(err, "key 't' appears twice");
	return (-EPROTO);
}

/*
 * encode.c: a struct packet into one frame, written in place.
 *
 * The encoder first works out which keys go out (the type's required keys
 * and the optional ones `has` names), checks that the packet has what they
 * need, and bounds the frame's size from the lengths of its strings and
 * binaries (no pass over the values). It then asks the caller for that
 * much room (packet_encode_fn's reserve callback: the broker hands out
 * space in a connection's output buffer, the library grows its own
 * buffer), writes the header, the map and every value straight there in
 * one pass, and says how many bytes it used. Payloads are copied once, from where the packet points to where
 * the frame goes, and so is a RUN's meta map, spliced in as the bytes it
 * arrived as; nothing passes through msgpack-c's packer except ADMIN
 * args and REPLY data given as msgpack_objects instead of raw bytes, which
 * are packed into a scratch buffer first (never on the job path).
 *
 * Integers use their shortest form and strings their shortest header, as
 * msgpack-c does, so frames are byte for byte what they were.
 *
 * The job path's RUN and RESULT, each way, with only a payload, an error
 * or a timeout beside their required keys, skip all that: enc_job_path()
 * writes them as literals and values in a fixed order, the same bytes
 * (test-proto compares the two paths over every combination).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/internal.h"

static void	*enc_sbuffer_reserve(void *, size_t);

/* What one encode needs beyond the packet: its keys and raw parts. */
struct enc {
	uint64_t		 keys;
	struct pbytes		 args;		/* raw ADMIN args */
	struct pbytes		 data;		/* raw REPLY data */
	msgpack_sbuffer		 scratch;	/* packed objects, if any */
};

/* Writes v big-endian in n bytes at o; returns o past them. */
static inline uint8_t *
enc_be(uint8_t *o, uint64_t v, unsigned n)
{
	for (unsigned i = n; i > 0; i--) {
		o[i - 1] = (uint8_t)v;
		v >>= 8;
	}
	return (o + n);
}

/* Writes an unsigned integer in its shortest form. */
static uint8_t *
enc_uint(uint8_t *o, uint64_t v)
{
	if (v < 128) {
		*o++ = (uint8_t)v;
		return (o);
	}
	if (v < 256) {
		*o++ = 0xcc;
		return (enc_be(o, v, 1));
	}
	if (v < 65536) {
		*o++ = 0xcd;
		return (enc_be(o, v, 2));
	}
	if (v <= UINT32_MAX) {
		*o++ = 0xce;
		return (enc_be(o, v, 4));
	}
	*o++ = 0xcf;
	return (enc_be(o, v, 8));
}

/* Writes a signed integer in its shortest form. */
static uint8_t *
enc_int(uint8_t *o, int64_t v)
{
	if (v >= 0)
		return (enc_uint(o, (uint64_t)v));
	if (v >= -32) {
		*o++ = (uint8_t)(int8_t)v;
		return (o);
	}
	if (v >= INT8_MIN) {
		*o++ = 0xd0;
		return (enc_be(o, (uint64_t)v, 1));
	}
	if (v >= INT16_MIN) {
		*o++ = 0xd1;
		return (enc_be(o, (uint64_t)v, 2));
	}
	if (v >= INT32_MIN) {
		*o++ = 0xd2;
		return (enc_be(o, (uint64_t)v, 4));
	}
	*o++ = 0xd3;
	return (enc_be(o, (uint64_t)v, 8));
}

/*
 * Writes a str (tag8 0xd9) or a bin (tag8 0xc4) with a length of 8, 16 or
 * 32 bits: the three tags follow each other.
 */
static uint8_t *
enc_sized(uint8_t *o, const void *s, size_t len, uint8_t tag8)
{
	if (len < 256) {
		*o++ = tag8;
		o = enc_be(o, len, 1);
	} else if (len < 65536) {
		*o++ = (uint8_t)(tag8 + 1);
		o = enc_be(o, len, 2);
	} else {
		*o++ = (uint8_t)(tag8 + 2);
		o = enc_be(o, len, 4);
	}
	if (len > 0)
		memcpy(o, s, len);
	return (o + len);
}

/* Writes a str: a fixstr below 32 bytes. */
static uint8_t *
enc_str(uint8_t *o, const void *s, size_t len)
{
	if (len >= 32)
		return (enc_sized(o, s, len, 0xd9));
	*o++ = (uint8_t)(0xa0 | len);
	if (len > 0)
		memcpy(o, s, len);
	return (o + len);
}

/* Writes a bin. */
static uint8_t *
enc_bin(uint8_t *o, const void *s, size_t len)
{
	return (enc_sized(o, s, len, 0xc4));
}

/* Writes an array (base 0x90, 0xdc) or map (0x80, 0xde) header. */
static uint8_t *
enc_container(uint8_t *o, size_t n, uint8_t fix, uint8_t big)
{
	if (n < 16) {
		*o++ = (uint8_t)(fix | n);
		return (o);
	}
	if (n < 65536) {
		*o++ = big;
		return (enc_be(o, n, 2));
	}
	*o++ = (uint8_t)(big + 1);
	return (enc_be(o, n, 4));
}

/* Bytes of a protocol name (names.c keeps them as fixstrs). */
static inline size_t
enc_wire_size(const char *name)
{
	return (1 + ((uint8_t)proto_wire_name(name)[0] & 0x1f));
}

/* Writes a protocol name: its stored fixstr, copied whole. */
static inline uint8_t *
enc_name(uint8_t *o, const char *name)
{
	size_t	n = enc_wire_size(name);

	memcpy(o, proto_wire_name(name), n);
	return (o + n);
}

/*
 * Checks that raw holds exactly one MessagePack value (a map when want_map)
 * that nests no deeper than it may at its place in the frame: it is
 * spliced in verbatim, so a wrong length would corrupt the stream. Only
 * ADMIN args and REPLY data come this way.
 */
static bool
enc_raw_ok(struct pbytes raw, bool want_map)
{
	size_t	len;

	if (raw.len == 0 || (want_map && (raw.ptr[0] & 0xf0) != 0x80 &&
	    raw.ptr[0] != 0xde && raw.ptr[0] != 0xdf))
		return (false);
	return (dec_value_len(raw.ptr, raw.len, 1, &len) == 0 &&
	    len == raw.len);
}

/* True when b is absent or really points at its bytes. */
static inline bool
enc_bytes_ok(struct pbytes b)
{
	return (b.ptr != NULL || b.len == 0);
}

/*
 * Packs a msgpack_object into e->scratch and returns its bytes; the
 * scratch buffer holds args and data one after the other.
 */
static int
enc_pack_object(struct enc *e, const msgpack_object *o, struct pbytes *ret)
{
	msgpack_packer	pk;
	size_t		start = e->scratch.size;

	msgpack_packer_init(&pk, &e->scratch, proto_sbuffer_write);
	if (msgpack_pack_object(&pk, *o) != 0)
		return (-ENOMEM);
	ret->ptr = (const uint8_t *)e->scratch.data + start;
	ret->len = (uint32_t)(e->scratch.size - start);
	return (0);
}

/*
 * Works out p's keys in dir and checks that p has what they need; fills
 * e (its scratch buffer must be destroyed by the caller). Returns 0,
 * -EINVAL or -ENOMEM.
 */
static int
enc_prepare(const struct packet *p, enum proto_dir dir, struct enc *e)
{
	const struct packet_spec	*spec;
	uint64_t			 keys;
	int				 r;

	if ((unsigned)p->type >= PKT__MAX ||
	    (dir != PROTO_TO_BROKER && dir != PROTO_FROM_BROKER))
		return (-EINVAL);
	spec = &packet_specs[dir][p->type];
	if (spec->required == 0)
		return (-EINVAL);
	keys = spec->required;
	for (uint32_t has = p->has & PF_ALL; has != 0; has &= has - 1)
		keys |= spec->optional &
		    KB(packet_flag_keys[__builtin_ctz(has)]);
	e->keys = keys;

	if ((keys & KB(K_ROLE)) &&
	    (p->role < ROLE_CLIENT || p->role > ROLE_ADMIN))
		return (-EINVAL);
	if ((keys & KB(K_FNS)) &&
	    (p->nfns < 1 || p->nfns > PROTO_MAX_FNS))
		return (-EINVAL);
	if (keys & KB(K_FNS)) {
		for (uint32_t i = 0; i < p->nfns; i++) {
			if (p->fns[i].ptr == NULL || p->fns[i].len < 1 ||
			    p->fns[i].len > PROTO_MAX_FN_LEN)
				return (-EINVAL);
		}
	}
	if ((keys & KB(K_CAPACITY)) && p->capacity > PROTO_MAX_CAPACITY)
		return (-EINVAL);	/* 0 is a draining worker */
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
	if (!enc_bytes_ok(p->name) || !enc_bytes_ok(p->token) ||
	    !enc_bytes_ok(p->payload) || !enc_bytes_ok(p->error) ||
	    !enc_bytes_ok(p->args_raw) || !enc_bytes_ok(p->data_raw) ||
	    !enc_bytes_ok(p->meta))
		return (-EINVAL);
	/* Spliced in verbatim: exactly one map of str to str, or nothing. */
	if ((keys & KB(K_META)) && !dec_meta_ok(p->meta))
		return (-EINVAL);
	if (keys & KB(K_ARGS)) {
		if (p->args_raw.len > 0)
			e->args = p->args_raw;
		else if (p->args == NULL || p->args->type != MSGPACK_OBJECT_MAP)
			return (-EINVAL);
		else if ((r = enc_pack_object(e, p->args, &e->args)) != 0)
			return (r);
		if (!enc_raw_ok(e->args, true))
			return (-EINVAL);
	}
	if (keys & KB(K_DATA)) {
		if (p->data_raw.len > 0)
			e->data = p->data_raw;
		else if (p->data == NULL)
			return (-EINVAL);
		else if ((r = enc_pack_object(e, p->data, &e->data)) != 0)
			return (r);
		if (!enc_raw_ok(e->data, false))
			return (-EINVAL);
	}
	return (0);
}

/* Writes the value of key k of p at o; returns o past it. */
static uint8_t *
enc_value(uint8_t *o, const struct packet *p, const struct enc *e,
    enum packet_key k)
{
	switch (k) {
	case K_T:
		return (enc_name(o, packet_type_name(p->type)));
	case K_V:
		return (enc_uint(o, p->version));
	case K_ROLE:
		return (enc_name(o, proto_role_name(p->role)));
	case K_NAME:
		return (enc_str(o, p->name.ptr, p->name.len));
	case K_TOKEN:
		return (enc_str(o, p->token.ptr, p->token.len));
	case K_SESSION:
		return (enc_bin(o, p->session, PROTO_ID_LEN));
	case K_HEARTBEAT_MS:
		return (enc_uint(o, p->heartbeat_ms));
	case K_MAX_FRAME:
		return (enc_uint(o, p->max_frame));
	case K_SERVER:
		return (enc_str(o, p->server.ptr, p->server.len));
	case K_FNS:
		o = enc_container(o, p->nfns, 0x90, 0xdc);
		for (uint32_t i = 0; i < p->nfns; i++)
			o = enc_str(o, p->fns[i].ptr, p->fns[i].len);
		return (o);
	case K_CAPACITY:
		return (enc_uint(o, p->capacity));
	case K_ID:
		return (enc_bin(o, p->id, PROTO_ID_LEN));
	case K_FN:
		return (enc_str(o, p->fn.ptr, p->fn.len));
	case K_PAYLOAD:
		return (enc_bin(o, p->payload.ptr, p->payload.len));
	case K_ATTEMPT:
		return (enc_uint(o, p->attempt));
	case K_ATTEMPTS:
		return (enc_uint(o, p->attempts));
	case K_TIMEOUT_MS:
		return (enc_uint(o, p->timeout_ms));
	case K_RETRIES:
		return (enc_uint(o, p->retries));
	case K_DELAY_MS:
		return (enc_uint(o, p->delay_ms));
	case K_AGE_MS:
		return (enc_uint(o, p->age_ms));
	case K_RETRY_ON_ERROR:
		return (enc_uint(o, p->retry_on_error));
	case K_BACKOFF_MS:
		return (enc_uint(o, p->backoff_ms));
	case K_STATE:
		return (enc_str(o, p->state.ptr, p->state.len));
	case K_UNIQUE:
		return (enc_str(o, p->unique.ptr, p->unique.len));
	case K_JOINED:
		return (enc_bin(o, p->joined, PROTO_ID_LEN));
	case K_RUN_AT:
		return (enc_uint(o, p->run_at));
	case K_PRIORITY:
		return (enc_int(o, p->priority));
	case K_DETACH:
		*o = p->detach ? 0xc3 : 0xc2;
		return (o + 1);
	case K_NOWAIT:
		*o = p->nowait ? 0xc3 : 0xc2;
		return (o + 1);
	case K_ACK:
		*o = p->ack ? 0xc3 : 0xc2;
		return (o + 1);
	case K_META:
		memcpy(o, p->meta.ptr, p->meta.len);
		return (o + p->meta.len);
	case K_OK:
		*o = p->ok ? 0xc3 : 0xc2;
		return (o + 1);
	case K_STATUS:
		return (enc_name(o, job_status_name(p->status)));
	case K_ERROR:
		return (enc_str(o, p->error.ptr, p->error.len));
	case K_N:
		return (enc_uint(o, p->n));
	case K_REASON:
		return (enc_str(o, p->reason.ptr, p->reason.len));
	case K_SEQ:
		return (enc_uint(o, p->seq));
	case K_VERB:
		return (enc_str(o, p->verb.ptr, p->verb.len));
	case K_ARGS:
		memcpy(o, e->args.ptr, e->args.len);
		return (o + e->args.len);
	case K_DATA:
		memcpy(o, e->data.ptr, e->data.len);
		return (o + e->data.len);
	case K_CODE:
		return (enc_name(o, proto_error_name(p->code)));
	case K_MSG:
		return (enc_str(o, p->msg.ptr, p->msg.len));
	case K__MAX:
		break;
	}
	return (o);
}

/* Bits set in v, without a libgcc call. */
static inline unsigned
enc_popcount(uint64_t v)
{
	v = v - ((v >> 1) & 0x5555555555555555ull);
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return ((unsigned)((v * 0x0101010101010101ull) >> 56));
}

/*
 * An upper bound of the frame's size, without measuring each value: every
 * key with its value's header or number fits in ENC_KEY_MAX bytes, plus
 * the bytes of the strings, binaries and raw values that go out.
 */
#define ENC_KEY_MAX	48	/* 1 + 13 key bytes, a 32-byte name or a
				   9-byte number or a 5-byte header, a
				   16-byte id with its 2 */
static size_t
enc_bound(const struct packet *p, const struct enc *e, unsigned nkeys)
{
	uint64_t	k = e->keys;
	size_t		n = PROTO_HEADER_LEN + 5 + (size_t)nkeys * ENC_KEY_MAX;

	if (k & KB(K_NAME))
		n += p->name.len;
	if (k & KB(K_TOKEN))
		n += p->token.len;
	if (k & KB(K_SERVER))
		n += p->server.len;
	if (k & KB(K_FN))
		n += p->fn.len;
	if (k & KB(K_PAYLOAD))
		n += p->payload.len;
	if (k & KB(K_ERROR))
		n += p->error.len;
	if (k & KB(K_REASON))
		n += p->reason.len;
	if (k & KB(K_VERB))
		n += p->verb.len;
	if (k & KB(K_MSG))
		n += p->msg.len;
	if (k & KB(K_ARGS))
		n += e->args.len;
	if (k & KB(K_DATA))
		n += e->data.len;
	if (k & KB(K_META))
		n += p->meta.len;
	if (k & KB(K_FNS))
		for (uint32_t i = 0; i < p->nfns; i++)
			n += 5 + p->fns[i].len;
	return (n);
}

/* Copies a key (2 to 13 bytes) with a few fixed-size moves. */
static inline void
enc_key(uint8_t *o, enum packet_key k)
{
	const char	*s = packet_keys[k];
	size_t		 n = 1 + KEY_LEN(k);

	if (n >= 8) {
		memcpy(o, s, 8);
		memcpy(o + n - 8, s + n - 8, 8);
	} else if (n >= 4) {
		memcpy(o, s, 4);
		memcpy(o + n - 4, s + n - 4, 4);
	} else {
		o[0] = (uint8_t)s[0];
		o[1] = (uint8_t)s[1];
		o[n - 1] = (uint8_t)s[n - 1];
	}
}

#define ENC_GENERAL	1	/* enc_job_path(): for the general path */

/* Writes a string literal's bytes, its NUL left out; returns o past them. */
#define ENC_LIT(o, lit)	(memcpy((o), (lit), sizeof(lit) - 1), \
			    (o) + sizeof(lit) - 1)

/*
 * The job path's packets, RUN and RESULT each way, with the keys they carry
 * there (a payload, an error, a timeout), written straight: no key set to
 * work out, no table to walk, every key a literal. The same bytes as the
 * general path, to which test-proto holds it for every combination.
 * Anything else (metadata, a RUN's options, a value the general path would
 * refuse) returns ENC_GENERAL, for the general path to write or refuse.
 */
static int
enc_job_path(const struct packet *p, enum proto_dir dir,
    void *(*reserve)(void *ctx, size_t n), void *ctx, size_t *ret_len)
{
	uint32_t	 has = p->has & PF_ALL;
	bool		 to = dir == PROTO_TO_BROKER, pay, tmo = false;
	bool		 err = false;
	unsigned	 nkeys;
	size_t		 bound;
	uint8_t		*start, *o;

	if ((has & ~(PF_PAYLOAD | PF_TIMEOUT | PF_ERROR)) != 0 ||
	    (dir != PROTO_TO_BROKER && dir != PROTO_FROM_BROKER) ||
	    !enc_bytes_ok(p->payload) || !enc_bytes_ok(p->error) ||
	    !enc_bytes_ok(p->name) || !enc_bytes_ok(p->token) ||
	    !enc_bytes_ok(p->args_raw) || !enc_bytes_ok(p->data_raw) ||
	    !enc_bytes_ok(p->meta))
		return (ENC_GENERAL);
	if (p->type == PKT_RUN) {
		if (p->fn.ptr == NULL)
			return (ENC_GENERAL);
		/* To a worker: the payload always, and the attempt. */
		pay = !to || (has & PF_PAYLOAD);
		tmo = (has & PF_TIMEOUT) != 0;
		nkeys = 3 + pay + tmo + !to;
		bound = p->fn.len;
	} else {
		if ((unsigned)p->status >= JOB__MAX || (to &&
		    p->status != JOB_OK && p->status != JOB_ERROR &&
		    p->status != JOB_CANCELLED))
			return (ENC_GENERAL);
		pay = (has & PF_PAYLOAD) != 0;
		err = (has & PF_ERROR) != 0;
		nkeys = 4 + pay + err;
		bound = err ? p->error.len : 0;
	}
	/* enc_bound()'s sum, for the same keys. */
	bound += PROTO_HEADER_LEN + 5 + (size_t)nkeys * ENC_KEY_MAX +
	    (pay ? p->payload.len : 0);
	if (bound > UINT32_MAX)
		return (-EMSGSIZE);
	if ((start = reserve(ctx, bound)) == NULL)
		return (-ENOMEM);
	o = start + PROTO_HEADER_LEN;
	*o++ = (uint8_t)(0x80 | nkeys);
	if (p->type == PKT_RUN)
		o = ENC_LIT(o, "\xa1" "t" "\xa3" "RUN" "\xa2" "id" "\xc4\x10");
	else
		o = ENC_LIT(o, "\xa1" "t" "\xa6" "RESULT" "\xa2" "id" "\xc4\x10");
	memcpy(o, p->id, PROTO_ID_LEN);
	o += PROTO_ID_LEN;
	if (p->type == PKT_RUN) {
		o = ENC_LIT(o, "\xa2" "fn");
		o = enc_str(o, p->fn.ptr, p->fn.len);
	}
	if (pay) {
		o = ENC_LIT(o, "\xa7" "payload");
		o = enc_bin(o, p->payload.ptr, p->payload.len);
	}
	if (p->type == PKT_RUN) {
		if (!to) {
			o = ENC_LIT(o, "\xa7" "attempt");
			o = enc_uint(o, p->attempt);
		}
		if (tmo) {
			o = ENC_LIT(o, "\xaa" "timeout_ms");
			o = enc_uint(o, p->timeout_ms);
		}
	} else {
		if (to) {
			o = ENC_LIT(o, "\xa7" "attempt");
			o = enc_uint(o, p->attempt);
		} else {
			o = ENC_LIT(o, "\xa8" "attempts");
			o = enc_uint(o, p->attempts);
		}
		o = ENC_LIT(o, "\xa6" "status");
		o = enc_name(o, job_status_name(p->status));
		if (err) {
			o = ENC_LIT(o, "\xa5" "error");
			o = enc_str(o, p->error.ptr, p->error.len);
		}
	}
	frame_put_header(start, (uint32_t)(o - start - PROTO_HEADER_LEN));
	*ret_len = (size_t)(o - start);
	return (0);
}

/* Encodes p as one frame into space from reserve; see proto.h. */
int
packet_encode_fn(const struct packet *p, enum proto_dir dir,
    void *(*reserve)(void *ctx, size_t n), void *ctx, size_t *ret_len)
{
	int	r;

	if ((p->type == PKT_RUN || p->type == PKT_RESULT) &&
	    (r = enc_job_path(p, dir, reserve, ctx, ret_len)) != ENC_GENERAL)
		return (r);
	return (packet_encode_general(p, dir, reserve, ctx, ret_len));
}

/* packet_encode_fn() without its job path; see internal.h. */
int
packet_encode_general(const struct packet *p, enum proto_dir dir,
    void *(*reserve)(void *ctx, size_t n), void *ctx, size_t *ret_len)
{
	struct enc	 e;
	uint64_t	 todo;
	size_t		 bound, body;
	unsigned	 nkeys;
	uint8_t		*o, *start;
	int		 k, r;

	e.args.len = e.data.len = 0;
	e.scratch.data = NULL;
	e.scratch.size = e.scratch.alloc = 0;
	if ((r = enc_prepare(p, dir, &e)) != 0)
		goto out;
	nkeys = enc_popcount(e.keys);
	if ((bound = enc_bound(p, &e, nkeys)) > UINT32_MAX) {
		r = -EMSGSIZE;
		goto out;
	}
	if ((start = reserve(ctx, bound)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	o = enc_container(start + PROTO_HEADER_LEN, nkeys, 0x80, 0xde);
	for (todo = e.keys; todo != 0; todo &= todo - 1) {
		k = __builtin_ctzll(todo);
		enc_key(o, k);
		o = enc_value(o + 1 + KEY_LEN(k), p, &e, k);
	}
	body = (size_t)(o - start) - PROTO_HEADER_LEN;
	frame_put_header(start, (uint32_t)body);
	*ret_len = PROTO_HEADER_LEN + body;
out:
	if (e.scratch.data != NULL)
		msgpack_sbuffer_destroy(&e.scratch);
	return (r);
}

/* packet_encode()'s reserve: room for n more bytes after sb's end. */
static void *
enc_sbuffer_reserve(void *ctx, size_t n)
{
	msgpack_sbuffer	*sb = ctx;
	size_t		 want = sb->size + n, alloc;
	char		*d;

	if (n > SIZE_MAX - sb->size)
		return (NULL);
	if (want > sb->alloc) {
		alloc = sb->alloc != 0 ? sb->alloc : MSGPACK_SBUFFER_INIT_SIZE;
		while (alloc < want)
			alloc = alloc > SIZE_MAX / 2 ? want : alloc * 2;
		if ((d = realloc(sb->data, alloc)) == NULL)
			return (NULL);
		sb->data = d;
		sb->alloc = alloc;
	}
	return (sb->data + sb->size);
}

/* Appends p as one whole frame travelling in dir to sb; see proto.h. */
int
packet_encode(const struct packet *p, enum proto_dir dir, msgpack_sbuffer *sb)
{
	size_t	len;
	int	r;

	if ((r = packet_encode_fn(p, dir, enc_sbuffer_reserve, sb,
	    &len)) == 0)
		sb->size += len;
	return (r);
}

/* msgpack_sbuffer_write() without its assert; see proto.h. */
int
proto_sbuffer_write(void *data, const char *buf, size_t len)
{
	msgpack_sbuffer	*sb = data;
	void		*at;

	if ((at = enc_sbuffer_reserve(sb, len)) == NULL)
		return (-1);
	if (len > 0)
		memcpy(at, buf, len);
	sb->size += len;
	return (0);
}

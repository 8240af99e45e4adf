/*
 * test-proto.c: the Check suite of proto/ (framing, packets, names).
 *
 * The golden frames below were written by hand from the MessagePack spec and
 * docs/protocol.md, byte by byte, and not copied from the encoder's output:
 * they pin the wire format, so a change to them is a protocol change. The
 * rest checks that every kind of malformed input is refused with a sentence
 * that names the problem, and that no input at all can crash the decoder.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "proto/internal.h"
#include "proto/proto.h"

/* The id and session every golden packet uses. */
static const uint8_t test_id[PROTO_ID_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
};
static const uint8_t test_session[PROTO_ID_LEN] = {
	0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
	0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
};

#define HEX_ID	"00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"

/* Makes borrowed bytes out of a C string. */
static struct pbytes
str_bytes(const char *s)
{
	struct pbytes	b = { (const uint8_t *)s, (uint32_t)strlen(s) };

	return (b);
}

/* Makes borrowed bytes out of a buffer and a length. */
static struct pbytes
mem_bytes(const void *ptr, uint32_t len)
{
	struct pbytes	b = { ptr, len };

	return (b);
}

/* Parses hex pairs (whitespace ignored) into out; returns the byte count. */
static size_t
unhex(const char *hex, uint8_t *out, size_t outsz)
{
	size_t		n = 0;
	unsigned	v;

	while (*hex != '\0') {
		if (*hex == ' ' || *hex == '\n') {
			hex++;
			continue;
		}
		ck_assert_msg(sscanf(hex, "%2x", &v) == 1, "bad hex at '%s'",
		    hex);
		ck_assert_uint_lt(n, outsz);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return (n);
}

/* Fails showing both byte strings in hex unless they are equal. */
static void
assert_bytes(const uint8_t *got, size_t gotlen, const uint8_t *want,
    size_t wantlen)
{
	char	g[4096], w[4096];
	size_t	i;

	if (gotlen == wantlen && memcmp(got, want, gotlen) == 0)
		return;
	g[0] = w[0] = '\0';
	for (i = 0; i < gotlen && i < 1000; i++)
		snprintf(g + 3 * i, 4, "%02x ", got[i]);
	for (i = 0; i < wantlen && i < 1000; i++)
		snprintf(w + 3 * i, 4, "%02x ", want[i]);
	ck_abort_msg("bytes differ:\n got  %s\n want %s", g, w);
}

/* Fails unless two borrowed byte ranges hold the same bytes. */
static void
assert_pbytes(const char *what, struct pbytes a, struct pbytes b)
{
	ck_assert_msg(a.len == b.len, "%s: length %u != %u", what, a.len,
	    b.len);
	if (a.len > 0)
		ck_assert_msg(memcmp(a.ptr, b.ptr, a.len) == 0,
		    "%s: bytes differ", what);
}

/* Packs a msgpack object and fails unless it gives the bytes raw. */
static void
assert_object(const char *what, const msgpack_object *o, struct pbytes raw)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;

	ck_assert_msg(o != NULL, "%s: missing", what);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	ck_assert_int_eq(msgpack_pack_object(&pk, *o), 0);
	assert_bytes((uint8_t *)sb.data, sb.size, raw.ptr, raw.len);
	msgpack_sbuffer_destroy(&sb);
}

/* Fails unless decoded packet d carries every field of built packet e. */
static void
assert_packet(const struct packet *d, const struct packet *e)
{
	uint32_t	i;

	ck_assert_int_eq(d->type, e->type);
	ck_assert_uint_eq(d->has, e->has);
	ck_assert_uint_eq(d->version, e->version);
	ck_assert_int_eq(d->role, e->role);
	assert_pbytes("name", d->name, e->name);
	assert_pbytes("token", d->token, e->token);
	ck_assert_mem_eq(d->session, e->session, PROTO_ID_LEN);
	ck_assert_uint_eq(d->heartbeat_ms, e->heartbeat_ms);
	ck_assert_uint_eq(d->max_frame, e->max_frame);
	assert_pbytes("server", d->server, e->server);
	ck_assert_uint_eq(d->nfns, e->nfns);
	for (i = 0; i < d->nfns; i++)
		assert_pbytes("fns[]", d->fns[i], e->fns[i]);
	ck_assert_uint_eq(d->capacity, e->capacity);
	ck_assert_mem_eq(d->id, e->id, PROTO_ID_LEN);
	assert_pbytes("fn", d->fn, e->fn);
	assert_pbytes("payload", d->payload, e->payload);
	ck_assert_uint_eq(d->attempt, e->attempt);
	ck_assert_uint_eq(d->attempts, e->attempts);
	ck_assert_uint_eq(d->timeout_ms, e->timeout_ms);
	ck_assert_uint_eq(d->retries, e->retries);
	ck_assert_int_eq(d->priority, e->priority);
	ck_assert_int_eq(d->detach, e->detach);
	ck_assert_int_eq(d->nowait, e->nowait);
	ck_assert_int_eq(d->ack, e->ack);
	/* The keys after fns are set only with their bit (or, JOB's state). */
	if (e->has & PF_DELAY)
		ck_assert_uint_eq(d->delay_ms, e->delay_ms);
	if (e->has & PF_RUN_AT)
		ck_assert_uint_eq(d->run_at, e->run_at);
	if (e->type == PKT_JOB)
		assert_pbytes("state", d->state, e->state);
	if (e->has & PF_RETRY_ON_ERROR)
		ck_assert_uint_eq(d->retry_on_error, e->retry_on_error);
	if (e->has & PF_BACKOFF)
		ck_assert_uint_eq(d->backoff_ms, e->backoff_ms);
	if (e->has & PF_UNIQUE)
		assert_pbytes("unique", d->unique, e->unique);
	if (e->has & PF_JOINED)
		ck_assert_mem_eq(d->joined, e->joined, PROTO_ID_LEN);
	if (e->has & PF_AGE)
		ck_assert_uint_eq(d->age_ms, e->age_ms);
	ck_assert_int_eq(d->status, e->status);
	assert_pbytes("error", d->error, e->error);
	ck_assert_uint_eq(d->n, e->n);
	assert_pbytes("reason", d->reason, e->reason);
	ck_assert_uint_eq(d->seq, e->seq);
	assert_pbytes("verb", d->verb, e->verb);
	ck_assert_int_eq(d->ok, e->ok);
	ck_assert_int_eq(d->code, e->code);
	assert_pbytes("msg", d->msg, e->msg);
	assert_pbytes("meta", d->meta, e->meta);
	if (e->has & PF_ARGS)
		assert_object("args", d->args, e->args_raw);
	else
		ck_assert_ptr_null(d->args);
	if (e->has & PF_DATA)
		assert_object("data", d->data, e->data_raw);
	else
		ck_assert_ptr_null(d->data);
}

/* Encodes p into a fresh sbuffer, failing on any error. */
static void
encode_ok(const struct packet *p, enum proto_dir dir, msgpack_sbuffer *sb)
{
	msgpack_sbuffer_init(sb);
	ck_assert_int_eq(packet_encode(p, dir, sb), 0);
}

/*
 * The code packet_decode() owes a body it refuses: -EBADMSG when the body
 * is malformed (frame_check() says so, a BAD_FRAME), else -EPROTO (a
 * well-formed body that is no valid packet, a BAD_PACKET).
 */
static int
refusal_code(const uint8_t *body, size_t len)
{
	return (frame_check(body, len, NULL) != 0 ? -EBADMSG : -EPROTO);
}

/*
 * As refusal_code(), for a decode that said err: a frame refused for
 * holding too much is refused before it is walked, so -EPROTO whatever
 * follows.
 */
static int
refusal_code_for(const uint8_t *body, size_t len, const char *err)
{
	return (strstr(err, "holds at most") != NULL ? -EPROTO :
	    refusal_code(body, len));
}

/* Decodes a hex body and expects a refusal with err containing want. */
static void
decode_fails(const char *hex, enum proto_dir dir, const char *want)
{
	uint8_t		body[8192];
	struct packet	p;
	char		err[PROTO_ERRLEN] = "";
	size_t		len;

	len = unhex(hex, body, sizeof body);
	ck_assert_int_eq(packet_decode(body, len, dir, &p, err),
	    refusal_code(body, len));
	ck_assert_msg(strstr(err, want) != NULL,
	    "error '%s' does not contain '%s'", err, want);
	ck_assert_int_eq(p.type, PKT_NONE);
	ck_assert_ptr_null(p.zone);
}

/* Decodes a hex body and expects success. */
static void
decode_ok(const char *hex, enum proto_dir dir, struct packet *p,
    uint8_t *body, size_t bodysz)
{
	char	err[PROTO_ERRLEN] = "";
	size_t	len;
	int	r;

	len = unhex(hex, body, bodysz);
	r = packet_decode(body, len, dir, p, err);
	ck_assert_msg(r == 0, "decode failed: %d %s", r, err);
}

/* Runs frame_check on a hex body and expects err to contain want. */
static void
check_fails(const char *hex, const char *want)
{
	uint8_t	body[8192];
	char	err[PROTO_ERRLEN] = "";
	size_t	len;

	len = unhex(hex, body, sizeof body);
	ck_assert_int_eq(frame_check(body, len, err), -EBADMSG);
	ck_assert_msg(strstr(err, want) != NULL,
	    "error '%s' does not contain '%s'", err, want);
}

/* A worker's HELLO with a name and a token. */
static void
build_hello(struct packet *p)
{
	packet_init(p, PKT_HELLO);
	p->role = ROLE_WORKER;
	p->has = PF_NAME | PF_TOKEN;
	p->name = str_bytes("w1");
	p->token = str_bytes("s3cret");
}

/* The broker's WELCOME with a 1 MiB frame limit. */
static void
build_welcome(struct packet *p)
{
	packet_init(p, PKT_WELCOME);
	memcpy(p->session, test_session, PROTO_ID_LEN);
	p->heartbeat_ms = 5000;
	p->max_frame = PROTO_MAX_FRAME_DEFAULT;
	p->server = str_bytes("patchbay/0.1.0");
}

/* A worker registering two functions with capacity 4. */
static void
build_register(struct packet *p)
{
	packet_init(p, PKT_REGISTER);
	p->nfns = 2;
	p->fns[0] = str_bytes("resize");
	p->fns[1] = str_bytes("thumb");
	p->capacity = 4;
}

/* A client's RUN with nothing optional. */
static void
build_run_min(struct packet *p)
{
	packet_init(p, PKT_RUN);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->fn = str_bytes("echo");
}

/* A client's RUN with every optional key. */
static void
build_run_client(struct packet *p)
{
	packet_init(p, PKT_RUN);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->fn = str_bytes("resize");
	p->has = PF_PAYLOAD | PF_TIMEOUT | PF_RETRIES | PF_PRIORITY |
	    PF_DETACH | PF_NOWAIT;
	p->payload = mem_bytes("\x01\x02\x03", 3);
	p->timeout_ms = 30000;
	p->retries = 2;
	p->priority = -5;
	p->detach = false;
	p->nowait = true;
}

/* The broker's RUN to a worker, first attempt, with a timeout. */
static void
build_run_worker(struct packet *p)
{
	packet_init(p, PKT_RUN);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->fn = str_bytes("resize");
	p->payload = mem_bytes("\x01\x02\x03", 3);
	p->attempt = 1;
	p->has = PF_TIMEOUT;
	p->timeout_ms = 30000;
}

/* {"user": "al"}, as a meta map. */
#define META_USER	"\x81\xa4" "user" "\xa2" "al"
#define HEX_META_USER	"a4 6d 65 74 61 81 a4 75 73 65 72 a2 61 6c"

/* A client's RUN with meta and nothing else optional. */
static void
build_run_meta(struct packet *p)
{
	build_run_min(p);
	p->has = PF_META;
	p->meta = mem_bytes(META_USER, 9);
}

/* The broker's RUN to a worker, with the client's meta. */
static void
build_run_worker_meta(struct packet *p)
{
	packet_init(p, PKT_RUN);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->fn = str_bytes("echo");
	p->attempt = 1;
	p->has = PF_META;
	p->meta = mem_bytes(META_USER, 9);
}

/* A client's CANCEL. */
static void
build_cancel_client(struct packet *p)
{
	packet_init(p, PKT_CANCEL);
	memcpy(p->id, test_id, PROTO_ID_LEN);
}

/* The broker's CANCEL of attempt 2 at a worker. */
static void
build_cancel_worker(struct packet *p)
{
	packet_init(p, PKT_CANCEL);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->attempt = 2;
}

/* A worker's PROGRESS for attempt 1. */
static void
build_progress_worker(struct packet *p)
{
	packet_init(p, PKT_PROGRESS);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->attempt = 1;
	p->payload = str_bytes("50%");
}

/* The broker's PROGRESS to a client. */
static void
build_progress_client(struct packet *p)
{
	packet_init(p, PKT_PROGRESS);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->payload = str_bytes("50%");
}

/* A worker's RESULT: OK with a payload. */
static void
build_result_worker(struct packet *p)
{
	packet_init(p, PKT_RESULT);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->attempt = 1;
	p->status = JOB_OK;
	p->has = PF_PAYLOAD;
	p->payload = mem_bytes("\x2a", 1);
}

/* The broker's RESULT to a client: TIMEOUT with an error. */
static void
build_result_client(struct packet *p)
{
	packet_init(p, PKT_RESULT);
	memcpy(p->id, test_id, PROTO_ID_LEN);
	p->status = JOB_TIMEOUT;
	p->has = PF_ERROR;
	p->error = str_bytes("too slow");
	p->attempts = 1;
}

/* A PING, the same either way. */
static void
build_ping(struct packet *p)
{
	packet_init(p, PKT_PING);
	p->n = 7;
}

/* A PONG whose n needs a uint 16. */
static void
build_pong(struct packet *p)
{
	packet_init(p, PKT_PONG);
	p->n = 300;
}

/* The broker's BYE while draining. */
static void
build_bye(struct packet *p)
{
	packet_init(p, PKT_BYE);
	p->reason = str_bytes("draining");
}

/* An admin's ADMIN with pre-packed args. */
static void
build_admin(struct packet *p)
{
	packet_init(p, PKT_ADMIN);
	p->seq = 9;
	p->verb = str_bytes("status");
	p->has = PF_ARGS;
	/* {"fn": "resize"} */
	p->args_raw = mem_bytes("\x81\xa2" "fn" "\xa6" "resize", 11);
}

/* The broker's REPLY with pre-packed data. */
static void
build_reply(struct packet *p)
{
	packet_init(p, PKT_REPLY);
	p->seq = 9;
	p->ok = true;
	p->has = PF_DATA;
	/* {"queued": 3} */
	p->data_raw = mem_bytes("\x81\xa6" "queued" "\x03", 9);
}

/* The broker's ERROR NOT_FOUND carrying the id. */
static void
build_error(struct packet *p)
{
	packet_init(p, PKT_ERROR);
	p->code = PERR_NOT_FOUND;
	p->msg = str_bytes("no such job");
	p->has = PF_ID;
	memcpy(p->id, test_id, PROTO_ID_LEN);
}

/*
 * Each golden frame: header, then map entries in the encoder's key order
 * (t first, then the order of docs/protocol.md's key list).
 */
static const struct golden {
	const char	*name;
	enum proto_dir	 dir;
	void		(*build)(struct packet *);
	const char	*hex;
} goldens[] = {
	{ "HELLO", PROTO_TO_BROKER, build_hello,
	  "00 00 00 2d  85"
	  " a1 74 a5 48 45 4c 4c 4f"			/* t: "HELLO" */
	  " a1 76 01"					/* v: 1 */
	  " a4 72 6f 6c 65 a6 77 6f 72 6b 65 72"	/* role: "worker" */
	  " a4 6e 61 6d 65 a2 77 31"			/* name: "w1" */
	  " a5 74 6f 6b 65 6e a6 73 33 63 72 65 74" },	/* token */
	{ "WELCOME", PROTO_FROM_BROKER, build_welcome,
	  "00 00 00 5d  86"
	  " a1 74 a7 57 45 4c 43 4f 4d 45"
	  " a1 76 01"
	  " a7 73 65 73 73 69 6f 6e c4 10"
	  " a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af"
	  " ac 68 65 61 72 74 62 65 61 74 5f 6d 73 cd 13 88"	/* 5000 */
	  " a9 6d 61 78 5f 66 72 61 6d 65 ce 00 10 00 00"	/* 1 MiB */
	  " a6 73 65 72 76 65 72"
	  " ae 70 61 74 63 68 62 61 79 2f 30 2e 31 2e 30" },
	{ "REGISTER", PROTO_TO_BROKER, build_register,
	  "00 00 00 28  83"
	  " a1 74 a8 52 45 47 49 53 54 45 52"
	  " a3 66 6e 73 92 a6 72 65 73 69 7a 65 a5 74 68 75 6d 62"
	  " a8 63 61 70 61 63 69 74 79 04" },
	{ "RUN (client, minimal)", PROTO_TO_BROKER, build_run_min,
	  "00 00 00 24  83"
	  " a1 74 a3 52 55 4e"
	  " a2 69 64 c4 10 " HEX_ID
	  " a2 66 6e a4 65 63 68 6f" },
	{ "RUN (client, every option)", PROTO_TO_BROKER, build_run_client,
	  "00 00 00 64  89"
	  " a1 74 a3 52 55 4e"
	  " a2 69 64 c4 10 " HEX_ID
	  " a2 66 6e a6 72 65 73 69 7a 65"
	  " a7 70 61 79 6c 6f 61 64 c4 03 01 02 03"
	  " aa 74 69 6d 65 6f 75 74 5f 6d 73 cd 75 30"	/* 30000 */
	  " a7 72 65 74 72 69 65 73 02"
	  " a8 70 72 69 6f 72 69 74 79 fb"		/* -5 */
	  " a6 64 65 74 61 63 68 c2"
	  " a6 6e 6f 77 61 69 74 c3" },
	{ "RUN (client, meta)", PROTO_TO_BROKER, build_run_meta,
	  "00 00 00 32  84"
	  " a1 74 a3 52 55 4e"
	  " a2 69 64 c4 10 " HEX_ID
	  " a2 66 6e a4 65 63 68 6f"
	  " " HEX_META_USER },			/* meta: {"user": "al"} */
	{ "RUN (to worker, meta)", PROTO_FROM_BROKER, build_run_worker_meta,
	  "00 00 00 45  86"
	  " a1 74 a3 52 55 4e"
	  " a2 69 64 c4 10 " HEX_ID
	  " a2 66 6e a4 65 63 68 6f"
	  " a7 70 61 79 6c 6f 61 64 c4 00"		/* empty payload */
	  " a7 61 74 74 65 6d 70 74 01"
	  " " HEX_META_USER },
	{ "RUN (to worker)", PROTO_FROM_BROKER, build_run_worker,
	  "00 00 00 4a  86"
	  " a1 74 a3 52 55 4e"
	  " a2 69 64 c4 10 " HEX_ID
	  " a2 66 6e a6 72 65 73 69 7a 65"
	  " a7 70 61 79 6c 6f 61 64 c4 03 01 02 03"
	  " a7 61 74 74 65 6d 70 74 01"
	  " aa 74 69 6d 65 6f 75 74 5f 6d 73 cd 75 30" },
	{ "CANCEL (client)", PROTO_TO_BROKER, build_cancel_client,
	  "00 00 00 1f  82"
	  " a1 74 a6 43 41 4e 43 45 4c"
	  " a2 69 64 c4 10 " HEX_ID },
	{ "CANCEL (to worker)", PROTO_FROM_BROKER, build_cancel_worker,
	  "00 00 00 28  83"
	  " a1 74 a6 43 41 4e 43 45 4c"
	  " a2 69 64 c4 10 " HEX_ID
	  " a7 61 74 74 65 6d 70 74 02" },
	{ "PROGRESS (worker)", PROTO_TO_BROKER, build_progress_worker,
	  "00 00 00 37  84"
	  " a1 74 a8 50 52 4f 47 52 45 53 53"
	  " a2 69 64 c4 10 " HEX_ID
	  " a7 70 61 79 6c 6f 61 64 c4 03 35 30 25"
	  " a7 61 74 74 65 6d 70 74 01" },
	{ "PROGRESS (to client)", PROTO_FROM_BROKER, build_progress_client,
	  "00 00 00 2e  83"
	  " a1 74 a8 50 52 4f 47 52 45 53 53"
	  " a2 69 64 c4 10 " HEX_ID
	  " a7 70 61 79 6c 6f 61 64 c4 03 35 30 25" },
	{ "RESULT (worker)", PROTO_TO_BROKER, build_result_worker,
	  "00 00 00 3d  85"
	  " a1 74 a6 52 45 53 55 4c 54"
	  " a2 69 64 c4 10 " HEX_ID
	  " a7 70 61 79 6c 6f 61 64 c4 01 2a"
	  " a7 61 74 74 65 6d 70 74 01"
	  " a6 73 74 61 74 75 73 a2 4f 4b" },
	{ "RESULT (to client)", PROTO_FROM_BROKER, build_result_client,
	  "00 00 00 47  85"
	  " a1 74 a6 52 45 53 55 4c 54"
	  " a2 69 64 c4 10 " HEX_ID
	  " a8 61 74 74 65 6d 70 74 73 01"
	  " a6 73 74 61 74 75 73 a7 54 49 4d 45 4f 55 54"
	  " a5 65 72 72 6f 72 a8 74 6f 6f 20 73 6c 6f 77" },
	{ "PING (to broker)", PROTO_TO_BROKER, build_ping,
	  "00 00 00 0b  82 a1 74 a4 50 49 4e 47 a1 6e 07" },
	{ "PING (from broker)", PROTO_FROM_BROKER, build_ping,
	  "00 00 00 0b  82 a1 74 a4 50 49 4e 47 a1 6e 07" },
	{ "PONG (to broker)", PROTO_TO_BROKER, build_pong,
	  "00 00 00 0d  82 a1 74 a4 50 4f 4e 47 a1 6e cd 01 2c" },
	{ "PONG (from broker)", PROTO_FROM_BROKER, build_pong,
	  "00 00 00 0d  82 a1 74 a4 50 4f 4e 47 a1 6e cd 01 2c" },
	{ "BYE", PROTO_FROM_BROKER, build_bye,
	  "00 00 00 17  82"
	  " a1 74 a3 42 59 45"
	  " a6 72 65 61 73 6f 6e a8 64 72 61 69 6e 69 6e 67" },
	{ "ADMIN", PROTO_TO_BROKER, build_admin,
	  "00 00 00 2a  84"
	  " a1 74 a5 41 44 4d 49 4e"
	  " a3 73 65 71 09"
	  " a4 76 65 72 62 a6 73 74 61 74 75 73"
	  " a4 61 72 67 73 81 a2 66 6e a6 72 65 73 69 7a 65" },
	{ "REPLY", PROTO_FROM_BROKER, build_reply,
	  "00 00 00 20  84"
	  " a1 74 a5 52 45 50 4c 59"
	  " a3 73 65 71 09"
	  " a2 6f 6b c3"
	  " a4 64 61 74 61 81 a6 71 75 65 75 65 64 03" },
	{ "ERROR", PROTO_FROM_BROKER, build_error,
	  "00 00 00 3d  84"
	  " a1 74 a5 45 52 52 4f 52"
	  " a2 69 64 c4 10 " HEX_ID
	  " a4 63 6f 64 65 a9 4e 4f 54 5f 46 4f 55 4e 44"
	  " a3 6d 73 67 ab 6e 6f 20 73 75 63 68 20 6a 6f 62" },
};

#define NGOLDENS ((int)(sizeof(goldens) / sizeof(goldens[0])))

/* frame_header */

START_TEST(frame_header_reads_length)
{
	const uint8_t	h[] = { 0x00, 0x01, 0x02, 0x03, 0xff };
	uint32_t	len = 0;

	ck_assert_int_eq(frame_header(h, sizeof h, 0x01000000, &len), 0);
	ck_assert_uint_eq(len, 0x010203);
}
END_TEST

START_TEST(frame_header_accepts_exactly_max)
{
	const uint8_t	h[] = { 0x00, 0x00, 0x10, 0x00 };
	uint32_t	len = 0;

	ck_assert_int_eq(frame_header(h, 4, PROTO_MAX_FRAME_HELLO, &len), 0);
	ck_assert_uint_eq(len, PROTO_MAX_FRAME_HELLO);
}
END_TEST

START_TEST(frame_header_rejects_too_large)
{
	const uint8_t	h[] = { 0x00, 0x00, 0x10, 0x01 };
	const uint8_t	huge[] = { 0xff, 0xff, 0xff, 0xff };
	uint32_t	len = 77;

	ck_assert_int_eq(frame_header(h, 4, PROTO_MAX_FRAME_HELLO, &len),
	    -EMSGSIZE);
	ck_assert_int_eq(frame_header(huge, 4, PROTO_MAX_FRAME_DEFAULT, &len),
	    -EMSGSIZE);
	ck_assert_uint_eq(len, 77);
}
END_TEST

START_TEST(frame_header_rejects_zero_length)
{
	const uint8_t	h[] = { 0x00, 0x00, 0x00, 0x00 };
	uint32_t	len = 77;

	ck_assert_int_eq(frame_header(h, 4, PROTO_MAX_FRAME_DEFAULT, &len),
	    -EBADMSG);
	ck_assert_uint_eq(len, 77);
}
END_TEST

START_TEST(frame_header_waits_for_four_bytes)
{
	const uint8_t	h[] = { 0x00, 0x00, 0x00, 0x05 };
	uint32_t	len = 77;
	size_t		avail;

	for (avail = 0; avail < 4; avail++)
		ck_assert_int_eq(frame_header(h, avail,
		    PROTO_MAX_FRAME_DEFAULT, &len), -EAGAIN);
	ck_assert_uint_eq(len, 77);
}
END_TEST

/* frame_check */

START_TEST(frame_check_accepts_valid_bodies)
{
	uint8_t	body[256];
	char	err[PROTO_ERRLEN];
	size_t	len;

	len = unhex("80", body, sizeof body);
	ck_assert_int_eq(frame_check(body, len, err), 0);
	/* Every scalar kind, str8, bin8, fixext and ext8. */
	len = unhex("8c a1 61 c0 a1 62 c3 a1 63 cb 3f f0 00 00 00 00 00 00"
	    " a1 64 d3 ff ff ff ff ff ff ff ff a1 65 d9 02 68 69"
	    " a1 66 c4 01 00 a1 67 d4 01 7f a1 68 c7 02 05 01 02"
	    " a1 69 ca 00 00 00 00 a1 6a cf 00 00 00 00 00 00 00 01"
	    " a1 6b de 00 01 a1 78 dc 00 01 90 a1 6c ff", body, sizeof body);
	ck_assert_int_eq(frame_check(body, len, err), 0);
}
END_TEST

START_TEST(frame_check_rejects_non_map_body)
{
	check_fails("93 01 02 03", "frame body is not a map (found array)");
	check_fails("a1 74", "frame body is not a map (found str)");
	check_fails("01", "frame body is not a map (found integer)");
	check_fails("c0", "frame body is not a map (found nil)");
	check_fails("c1", "frame body is not a map (found reserved byte 0xc1)");
}
END_TEST

START_TEST(frame_check_rejects_empty_body)
{
	char	err[PROTO_ERRLEN];

	ck_assert_int_eq(frame_check((const uint8_t *)"", 0, err), -EBADMSG);
	ck_assert_str_eq(err, "frame body is empty");
}
END_TEST

START_TEST(frame_check_rejects_trailing_bytes)
{
	check_fails("80 00 00", "2 trailing bytes after the map");
	check_fails("81 a1 74 a3 52 55 4e c0", "1 trailing byte after the map");
	check_fails("80 80", "1 trailing byte after the map");
}
END_TEST

START_TEST(frame_check_rejects_lying_array_count)
{
	check_fails("81 a1 78 dd 00 00 03 e8",
	    "array at offset 3 declares 1000 elements but only 0 bytes remain");
	check_fails("81 a1 78 93 01 02",
	    "array at offset 3 declares 3 elements but only 2 bytes remain");
	/* A count that fits but whose items run past the end. */
	check_fails("81 a1 78 92 a5 61 62 63 64 65",
	    "ends at offset 10 in the middle of a container");
}
END_TEST

START_TEST(frame_check_rejects_lying_map_count)
{
	check_fails("de 03 e8 01 02 03 04 05 06 07 08 09 0a 0b 0c",
	    "map at offset 0 declares 1000 entries but only 12 bytes remain");
	check_fails("81 a1 78 df ff ff ff ff 00",
	    "map at offset 3 declares 4294967295 entries but only 1 bytes "
	    "remain");
	/* Two entries need four bytes: three are not enough. */
	check_fails("82 a1 74 01", "map at offset 0 declares 2 entries");
}
END_TEST

START_TEST(frame_check_rejects_container_cut_short)
{
	/* Three elements announced, the first str eats the rest. */
	check_fails("81 a1 78 93 a2 61 62",
	    "ends at offset 7 in the middle of a container");
}
END_TEST

START_TEST(frame_check_limits_nesting)
{
	uint8_t	body[64];
	char	err[PROTO_ERRLEN];
	size_t	len;

	/* The map is depth 1, arrays 2..8: allowed. */
	len = unhex("81 a1 78 91 91 91 91 91 91 90", body, sizeof body);
	ck_assert_int_eq(frame_check(body, len, err), 0);
	/* One more level is depth 9, even when empty. */
	check_fails("81 a1 78 91 91 91 91 91 91 91 90",
	    "nesting deeper than 8 at offset 10");
	check_fails("81 a1 78 91 91 91 91 91 91 91 80",
	    "nesting deeper than 8");
	check_fails("81 a1 78 81 01 81 01 81 01 81 01 81 01 81 01 81 01"
	    " 81 01 c0", "nesting deeper than 8");
}
END_TEST

START_TEST(frame_check_rejects_reserved_byte)
{
	check_fails("81 a1 78 c1", "reserved byte 0xc1 at offset 3");
	check_fails("81 c1 01", "reserved byte 0xc1 at offset 1");
}
END_TEST

START_TEST(frame_check_rejects_truncated_str_bin_ext)
{
	check_fails("81 a1 78 a5 61 62",
	    "str at offset 3 declares 5 bytes but only 2 remain");
	check_fails("81 a1 78 d9", "str at offset 3 is truncated");
	check_fails("81 a1 78 da 00", "str at offset 3 is truncated");
	check_fails("81 a1 78 db ff ff ff ff 61",
	    "str at offset 3 declares 4294967295 bytes but only 1 remain");
	check_fails("81 a1 78 c4 05 00", "bin at offset 3 declares 5 bytes");
	check_fails("81 a1 78 c6 00 00", "bin at offset 3 is truncated");
	check_fails("81 a1 78 c7 03 01 00", "ext at offset 3 declares 3 bytes");
	check_fails("81 a1 78 c7", "ext at offset 3 is truncated");
	check_fails("81 a1 78 d8 01 00", "ext at offset 3 declares 16 bytes");
	check_fails("81 a1 78 cf 00 00", "integer at offset 3 is truncated");
	check_fails("81 a1 78 cb 00", "float at offset 3 is truncated");
}
END_TEST

/* golden frames */

START_TEST(packet_encode_matches_golden)
{
	const struct golden	*g = &goldens[_i];
	msgpack_sbuffer		 sb;
	struct packet		 p;
	uint8_t			 want[512];
	size_t			 wantlen;

	wantlen = unhex(g->hex, want, sizeof want);
	g->build(&p);
	encode_ok(&p, g->dir, &sb);
	assert_bytes((uint8_t *)sb.data, sb.size, want, wantlen);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(packet_decode_reads_golden)
{
	const struct golden	*g = &goldens[_i];
	struct packet		 want, p;
	uint8_t			 frame[512];
	size_t			 len;
	uint32_t		 blen = 0;
	char			 err[PROTO_ERRLEN] = "";
	int			 r;

	len = unhex(g->hex, frame, sizeof frame);
	ck_assert_int_eq(frame_header(frame, len, PROTO_MAX_FRAME_DEFAULT,
	    &blen), 0);
	ck_assert_uint_eq(blen, len - PROTO_HEADER_LEN);
	r = packet_decode(frame + 4, blen, g->dir, &p, err);
	ck_assert_msg(r == 0, "%s: %s", g->name, err);
	g->build(&want);
	assert_packet(&p, &want);
	packet_clear(&p);
}
END_TEST

/* round trips */

/* Encodes p in dir, decodes the result and compares every field. */
static void
round_trip(const struct packet *p, enum proto_dir dir)
{
	msgpack_sbuffer	sb;
	struct packet	d;
	uint32_t	blen = 0;
	char		err[PROTO_ERRLEN] = "";
	int		r;

	encode_ok(p, dir, &sb);
	ck_assert_int_eq(frame_header((uint8_t *)sb.data, sb.size,
	    UINT32_MAX, &blen), 0);
	ck_assert_uint_eq(blen + PROTO_HEADER_LEN, sb.size);
	r = packet_decode((uint8_t *)sb.data + 4, blen, dir, &d, err);
	ck_assert_msg(r == 0, "round trip: %s", err);
	assert_packet(&d, p);
	packet_clear(&d);
	msgpack_sbuffer_destroy(&sb);
}

START_TEST(packet_round_trip_every_option)
{
	struct packet	p;
	uint32_t	i;
	static char	names[PROTO_MAX_FNS][PROTO_MAX_FN_LEN + 1];
	static uint8_t	big[70000];

	build_hello(&p);
	round_trip(&p, PROTO_TO_BROKER);
	p.role = ROLE_CLIENT;
	p.has = 0;
	p.name = p.token = mem_bytes(NULL, 0);
	round_trip(&p, PROTO_TO_BROKER);
	p.role = ROLE_ADMIN;
	p.version = UINT64_MAX;
	round_trip(&p, PROTO_TO_BROKER);

	build_welcome(&p);
	round_trip(&p, PROTO_FROM_BROKER);

	/* REGISTER at its limits: 256 names of 255 bytes, capacity 65535. */
	packet_init(&p, PKT_REGISTER);
	for (i = 0; i < PROTO_MAX_FNS; i++) {
		memset(names[i], 'a' + i % 26, PROTO_MAX_FN_LEN);
		names[i][0] = (char)('0' + i % 10);
		p.fns[i] = mem_bytes(names[i], PROTO_MAX_FN_LEN);
	}
	p.nfns = PROTO_MAX_FNS;
	p.capacity = PROTO_MAX_CAPACITY;
	round_trip(&p, PROTO_TO_BROKER);
	p.nfns = 1;
	p.fns[0] = str_bytes("x");
	p.capacity = 1;
	round_trip(&p, PROTO_TO_BROKER);
	p.capacity = 0;			/* a draining worker */
	round_trip(&p, PROTO_TO_BROKER);

	/* RUN with every option, a large payload and extreme values. */
	build_run_client(&p);
	memset(big, 0x5a, sizeof big);
	p.payload = mem_bytes(big, sizeof big);
	p.timeout_ms = UINT64_MAX;
	p.retries = 0;
	p.priority = INT64_MIN;
	p.detach = true;
	p.nowait = false;
	round_trip(&p, PROTO_TO_BROKER);
	packet_init(&p, PKT_RUN);
	memcpy(p.id, test_id, PROTO_ID_LEN);
	p.fn = str_bytes("resize");
	p.priority = 100;
	p.has = PF_PAYLOAD | PF_PRIORITY;
	p.payload = mem_bytes("", 0);
	round_trip(&p, PROTO_TO_BROKER);
	p.priority = -100;
	p.fn = str_bytes("");
	round_trip(&p, PROTO_TO_BROKER);
	/* Detached with ack, delayed; then scheduled. */
	p.has = PF_PAYLOAD | PF_DETACH | PF_ACK | PF_DELAY;
	p.priority = 0;
	p.detach = p.ack = true;
	p.delay_ms = UINT64_MAX;
	round_trip(&p, PROTO_TO_BROKER);
	p.has = PF_PAYLOAD | PF_RUN_AT;
	p.detach = p.ack = false;
	p.delay_ms = 0;
	p.run_at = 1798135200000ull;
	round_trip(&p, PROTO_TO_BROKER);

	/* Retries after an ERROR, a unique key. */
	p.has = PF_PAYLOAD | PF_DETACH | PF_RETRY_ON_ERROR | PF_BACKOFF |
	    PF_UNIQUE;
	p.detach = true;
	p.run_at = 0;
	p.retry_on_error = 1000;
	p.backoff_ms = 250;
	p.unique = str_bytes("nightly-report");
	round_trip(&p, PROTO_TO_BROKER);

	/* ACCEPTED (joined or not), STATUS, and JOB bare and full. */
	packet_init(&p, PKT_ACCEPTED);
	memcpy(p.id, test_id, PROTO_ID_LEN);
	round_trip(&p, PROTO_FROM_BROKER);
	p.has = PF_JOINED;
	memset(p.joined, 0x5a, PROTO_ID_LEN);
	round_trip(&p, PROTO_FROM_BROKER);
	packet_init(&p, PKT_STATUS);
	memcpy(p.id, test_id, PROTO_ID_LEN);
	round_trip(&p, PROTO_TO_BROKER);
	packet_init(&p, PKT_JOB);
	memcpy(p.id, test_id, PROTO_ID_LEN);
	p.state = str_bytes("unknown");
	round_trip(&p, PROTO_FROM_BROKER);
	p.state = str_bytes("done");
	p.has = PF_FN | PF_ATTEMPTS | PF_PRIORITY | PF_AGE | PF_STATUS |
	    PF_ERROR | PF_PAYLOAD;
	p.fn = str_bytes("resize");
	p.attempts = 3;
	p.priority = -7;
	p.age_ms = 123456;
	p.status = JOB_ERROR;
	p.error = str_bytes("bad input");
	p.payload = mem_bytes("out", 3);
	round_trip(&p, PROTO_FROM_BROKER);

	build_run_worker(&p);
	round_trip(&p, PROTO_FROM_BROKER);
	p.has = 0;
	p.timeout_ms = 0;
	p.attempt = 3;
	round_trip(&p, PROTO_FROM_BROKER);

	build_cancel_client(&p);
	round_trip(&p, PROTO_TO_BROKER);
	build_cancel_worker(&p);
	round_trip(&p, PROTO_FROM_BROKER);
	build_progress_worker(&p);
	round_trip(&p, PROTO_TO_BROKER);
	build_progress_client(&p);
	round_trip(&p, PROTO_FROM_BROKER);

	build_result_worker(&p);
	p.has = PF_PAYLOAD | PF_ERROR;
	p.status = JOB_ERROR;
	p.error = str_bytes("it broke");
	round_trip(&p, PROTO_TO_BROKER);
	p.status = JOB_CANCELLED;
	p.has = 0;
	p.payload = p.error = mem_bytes(NULL, 0);
	round_trip(&p, PROTO_TO_BROKER);

	/* Every status travels to a client. */
	build_result_client(&p);
	p.has = PF_PAYLOAD | PF_ERROR;
	p.payload = mem_bytes("\x00\x01", 2);
	for (i = 0; i < JOB__MAX; i++) {
		p.status = (enum job_status)i;
		p.attempts = i;
		round_trip(&p, PROTO_FROM_BROKER);
	}

	build_ping(&p);
	p.n = UINT64_MAX;
	round_trip(&p, PROTO_TO_BROKER);
	round_trip(&p, PROTO_FROM_BROKER);
	build_pong(&p);
	p.n = 0;
	round_trip(&p, PROTO_TO_BROKER);
	round_trip(&p, PROTO_FROM_BROKER);
	build_bye(&p);
	round_trip(&p, PROTO_FROM_BROKER);

	build_admin(&p);
	round_trip(&p, PROTO_TO_BROKER);
	p.has = 0;
	p.args_raw = mem_bytes(NULL, 0);
	round_trip(&p, PROTO_TO_BROKER);

	build_reply(&p);
	p.has = PF_DATA | PF_ERROR;
	p.ok = false;
	p.error = str_bytes("unknown verb 'x'");
	p.data_raw = mem_bytes("\x93\x01\xc0\xa1x", 5);	/* [1, nil, "x"] */
	round_trip(&p, PROTO_FROM_BROKER);
	p.data_raw = mem_bytes("\xc0", 1);			/* nil */
	round_trip(&p, PROTO_FROM_BROKER);
	p.has = 0;
	p.error = mem_bytes(NULL, 0);
	round_trip(&p, PROTO_FROM_BROKER);

	/* Every ERROR code, with and without an id. */
	build_error(&p);
	for (i = 0; i < PERR__MAX; i++) {
		p.code = (enum proto_error)i;
		p.has = i % 2 ? PF_ID : 0;
		if (p.has == 0)
			memset(p.id, 0, sizeof p.id);
		else
			memcpy(p.id, test_id, PROTO_ID_LEN);
		round_trip(&p, PROTO_FROM_BROKER);
	}
}
END_TEST

START_TEST(packet_encode_appends_to_buffer)
{
	msgpack_sbuffer	sb;
	struct packet	p;
	uint32_t	blen;
	size_t		first;
	char		err[PROTO_ERRLEN];

	msgpack_sbuffer_init(&sb);
	build_ping(&p);
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), 0);
	first = sb.size;
	build_run_client(&p);
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), 0);
	ck_assert_int_eq(frame_header((uint8_t *)sb.data + first,
	    sb.size - first, PROTO_MAX_FRAME_DEFAULT, &blen), 0);
	ck_assert_uint_eq(first + 4 + blen, sb.size);
	ck_assert_int_eq(frame_check((uint8_t *)sb.data + first + 4, blen,
	    err), 0);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(packet_encode_reencodes_decoded_admin)
{
	uint8_t		body[256];
	msgpack_sbuffer	sb;
	struct packet	p;
	char		err[PROTO_ERRLEN];

	/* A decoded ADMIN (args as an object) encodes back the same. */
	decode_ok("84 a1 74 a5 41 44 4d 49 4e a3 73 65 71 09"
	    " a4 76 65 72 62 a6 73 74 61 74 75 73"
	    " a4 61 72 67 73 81 a2 66 6e a6 72 65 73 69 7a 65",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	encode_ok(&p, PROTO_TO_BROKER, &sb);
	ck_assert_uint_eq(sb.size, 4 + 42);
	assert_bytes((uint8_t *)sb.data + 4, 42, body, 42);
	ck_assert_int_eq(frame_check((uint8_t *)sb.data + 4, 42, err), 0);
	msgpack_sbuffer_destroy(&sb);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_borrows_from_body)
{
	uint8_t		body[256];
	struct packet	p;

	decode_ok("84 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a4 65 63 68 6f a7 70 61 79 6c 6f 61 64 c4 02 68 69",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_ptr_eq(p.fn.ptr, body + 32);
	ck_assert_ptr_eq(p.payload.ptr, body + 46);
	/* Nothing needs the zone once a RUN is read. */
	ck_assert_ptr_null(p.zone);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_keeps_zone_for_args)
{
	uint8_t		body[256];
	struct packet	p;

	decode_ok("84 a1 74 a5 41 44 4d 49 4e a3 73 65 71 09"
	    " a4 76 65 72 62 a6 73 74 61 74 75 73"
	    " a4 61 72 67 73 81 a2 66 6e a6 72 65 73 69 7a 65",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_ptr_nonnull(p.zone);
	ck_assert_ptr_nonnull(p.args);
	ck_assert_int_eq(p.args->type, MSGPACK_OBJECT_MAP);
	ck_assert_uint_eq(p.args->via.map.size, 1);
	/* The strings inside args still point into the body. */
	ck_assert_ptr_eq(p.args->via.map.ptr[0].val.via.str.ptr,
	    (const char *)body + 36);
	packet_clear(&p);
	ck_assert_ptr_null(p.zone);
	ck_assert_ptr_null(p.args);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_accepts_any_key_order)
{
	uint8_t		body[256];
	struct packet	p;

	/* nowait, fn, id, then t last. */
	decode_ok("84 a6 6e 6f 77 61 69 74 c2 a2 66 6e a1 78"
	    " a2 69 64 c4 10 " HEX_ID " a1 74 a3 52 55 4e",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_int_eq(p.type, PKT_RUN);
	ck_assert_uint_eq(p.has, PF_NOWAIT);
	ck_assert_int_eq(p.nowait, false);
	ck_assert_uint_eq(p.fn.len, 1);
	ck_assert_mem_eq(p.id, test_id, PROTO_ID_LEN);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_ignores_unknown_keys)
{
	uint8_t		body[256];
	struct packet	p;

	/*
	 * PING {t, "zzz": [1, {}], 42: "x", "fns": "wrong type but not a
	 * PING key", "t2": 1, n: 5}.
	 */
	decode_ok("86 a1 74 a4 50 49 4e 47 a3 7a 7a 7a 92 01 80 2a a1 78"
	    " a3 66 6e 73 a1 77 a2 74 32 01 a1 6e 05",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_int_eq(p.type, PKT_PING);
	ck_assert_uint_eq(p.n, 5);
	ck_assert_uint_eq(p.nfns, 0);
	ck_assert_uint_eq(p.has, 0);
	packet_clear(&p);

	/* A CANCEL from a client may carry attempt: it is ignored. */
	decode_ok("83 a1 74 a6 43 41 4e 43 45 4c a2 69 64 c4 10 " HEX_ID
	    " a7 61 74 74 65 6d 70 74 a1 78",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_int_eq(p.type, PKT_CANCEL);
	ck_assert_uint_eq(p.attempt, 0);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_accepts_wide_integer_encodings)
{
	uint8_t		body[256];
	struct packet	p;

	/* n as uint64 0x05, then as int8 5 (a signed type, non-negative). */
	decode_ok("82 a1 74 a4 50 49 4e 47 a1 6e cf 00 00 00 00 00 00 00 05",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_uint_eq(p.n, 5);
	packet_clear(&p);
	decode_ok("82 a1 74 a4 50 49 4e 47 a1 6e d0 05",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_uint_eq(p.n, 5);
	packet_clear(&p);
	/* priority as int64 -100 and as uint8 100. */
	decode_ok("84 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a1 78 a8 70 72 69 6f 72 69 74 79"
	    " d3 ff ff ff ff ff ff ff 9c",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_int_eq(p.priority, -100);
	ck_assert_uint_eq(p.has, PF_PRIORITY);
	packet_clear(&p);
	decode_ok("84 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a1 78 a8 70 72 69 6f 72 69 74 79 cc 64",
	    PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_int_eq(p.priority, 100);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_maps_unknown_error_code)
{
	uint8_t		body[256];
	struct packet	p;

	/* ERROR {t, code: "NEW_CODE", msg: "m"} */
	decode_ok("83 a1 74 a5 45 52 52 4f 52 a4 63 6f 64 65"
	    " a8 4e 45 57 5f 43 4f 44 45 a3 6d 73 67 a1 6d",
	    PROTO_FROM_BROKER, &p, body, sizeof body);
	ck_assert_int_eq(p.code, PERR__MAX);
	ck_assert_uint_eq(p.has, 0);
	packet_clear(&p);
}
END_TEST

/* decode errors */

#define RUN_HEAD	"a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID \
			" a2 66 6e a1 78"	/* t, id, fn: "x" */

START_TEST(packet_decode_rejects_missing_t)
{
	decode_fails("81 a1 6e 01", PROTO_TO_BROKER, "missing key 't'");
	decode_fails("80", PROTO_TO_BROKER, "missing key 't'");
}
END_TEST

START_TEST(packet_decode_rejects_unknown_t)
{
	decode_fails("81 a1 74 a3 46 4f 4f", PROTO_TO_BROKER,
	    "unknown packet type 'FOO'");
	decode_fails("81 a1 74 a3 72 75 6e", PROTO_TO_BROKER,
	    "unknown packet type 'run'");
	/* Unprintable bytes are masked in the sentence. */
	decode_fails("81 a1 74 a3 00 0a 41", PROTO_TO_BROKER,
	    "unknown packet type '??A'");
	decode_fails("81 a1 74 01", PROTO_TO_BROKER,
	    "key 't' must be a str (got unsigned integer)");
	decode_fails("82 a1 74 a4 50 49 4e 47 a1 74 a4 50 49 4e 47",
	    PROTO_TO_BROKER, "key 't' appears twice");
}
END_TEST

START_TEST(packet_decode_rejects_wrong_type)
{
	decode_fails("84 " RUN_HEAD
	    " aa 74 69 6d 65 6f 75 74 5f 6d 73 a2 31 30",
	    PROTO_TO_BROKER,
	    "RUN: key 'timeout_ms' must be an unsigned integer (got str)");
	decode_fails("84 " RUN_HEAD " aa 74 69 6d 65 6f 75 74 5f 6d 73 ff",
	    PROTO_TO_BROKER,
	    "RUN: key 'timeout_ms' must be an unsigned integer "
	    "(got negative integer)");
	decode_fails("84 " RUN_HEAD " a6 64 65 74 61 63 68 01",
	    PROTO_TO_BROKER, "RUN: key 'detach' must be a bool (got unsigned");
	decode_fails("84 " RUN_HEAD " a7 70 61 79 6c 6f 61 64 a2 68 69",
	    PROTO_TO_BROKER, "RUN: key 'payload' must be a bin (got str)");
	decode_fails("84 " RUN_HEAD
	    " a8 70 72 69 6f 72 69 74 79 ca 00 00 00 00", PROTO_TO_BROKER,
	    "RUN: key 'priority' must be an integer (got float)");
	decode_fails("84 " RUN_HEAD " a8 70 72 69 6f 72 69 74 79"
	    " cf 80 00 00 00 00 00 00 00", PROTO_TO_BROKER,
	    "RUN: key 'priority' is out of range");
	decode_fails("83 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e c4 01 78", PROTO_TO_BROKER,
	    "RUN: key 'fn' must be a str (got bin)");
	decode_fails("83 a1 74 a3 52 55 4e a2 69 64 a2 68 69 a2 66 6e a1 78",
	    PROTO_TO_BROKER, "RUN: key 'id' must be a 16-byte bin (got str)");
	decode_fails("82 a1 74 a4 50 49 4e 47 a1 6e cb 3f f0 00 00 00 00 00 00",
	    PROTO_TO_BROKER, "PING: key 'n' must be an unsigned integer "
	    "(got float)");
	decode_fails("82 a1 74 a4 50 49 4e 47 a1 6e c0",
	    PROTO_FROM_BROKER, "PING: key 'n' must be an unsigned integer "
	    "(got nil)");
	decode_fails("84 a1 74 a5 48 45 4c 4c 4f a1 76 ff"
	    " a4 72 6f 6c 65 a6 63 6c 69 65 6e 74 a4 6e 61 6d 65 01",
	    PROTO_TO_BROKER, "HELLO: key 'v' must be an unsigned integer");
	decode_fails("83 a1 74 a5 48 45 4c 4c 4f a1 76 01"
	    " a4 72 6f 6c 65 01", PROTO_TO_BROKER,
	    "HELLO: key 'role' must be a str (got unsigned integer)");
	decode_fails("84 a1 74 a5 41 44 4d 49 4e a3 73 65 71 09"
	    " a4 76 65 72 62 a1 78 a4 61 72 67 73 90", PROTO_TO_BROKER,
	    "ADMIN: key 'args' must be a map (got array)");
	decode_fails("83 a1 74 a5 52 45 50 4c 59 a3 73 65 71 09 a2 6f 6b 01",
	    PROTO_FROM_BROKER, "REPLY: key 'ok' must be a bool");
	decode_fails("85 a1 74 a6 52 45 53 55 4c 54 a2 69 64 c4 10 " HEX_ID
	    " a7 61 74 74 65 6d 70 74 01 a6 73 74 61 74 75 73 00"
	    " a5 65 72 72 6f 72 a1 78", PROTO_TO_BROKER,
	    "RESULT: key 'status' must be a str (got unsigned integer)");
	decode_fails("83 a1 74 a5 45 52 52 4f 52 a4 63 6f 64 65 01"
	    " a3 6d 73 67 a1 6d", PROTO_FROM_BROKER,
	    "ERROR: key 'code' must be a str");
}
END_TEST

START_TEST(packet_decode_rejects_missing_keys)
{
	decode_fails("82 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID,
	    PROTO_TO_BROKER, "RUN: missing key 'fn'");
	/* A RUN to a worker needs payload and attempt too. */
	decode_fails("83 " RUN_HEAD, PROTO_FROM_BROKER,
	    "RUN: missing key 'payload'");
	decode_fails("81 a1 74 a4 50 49 4e 47", PROTO_TO_BROKER,
	    "PING: missing key 'n'");
	decode_fails("82 a1 74 a5 48 45 4c 4c 4f a1 76 01", PROTO_TO_BROKER,
	    "HELLO: missing key 'role'");
	decode_fails("81 a1 74 a3 42 59 45", PROTO_FROM_BROKER,
	    "BYE: missing key 'reason'");
	decode_fails("83 a1 74 a6 52 45 53 55 4c 54 a2 69 64 c4 10 " HEX_ID
	    " a6 73 74 61 74 75 73 a2 4f 4b", PROTO_FROM_BROKER,
	    "RESULT: missing key 'attempts'");
}
END_TEST

START_TEST(packet_decode_rejects_bad_id_length)
{
	decode_fails("83 a1 74 a3 52 55 4e a2 69 64 c4 0f"
	    " 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e a2 66 6e a1 78",
	    PROTO_TO_BROKER, "RUN: key 'id' must be a 16-byte bin "
	    "(got 15 bytes)");
	decode_fails("82 a1 74 a6 43 41 4e 43 45 4c a2 69 64 c4 11 " HEX_ID
	    " 10", PROTO_TO_BROKER, "CANCEL: key 'id' must be a 16-byte bin "
	    "(got 17 bytes)");
	decode_fails("82 a1 74 a6 43 41 4e 43 45 4c a2 69 64 c4 00",
	    PROTO_TO_BROKER, "(got 0 bytes)");
}
END_TEST

START_TEST(packet_decode_rejects_bad_register)
{
	uint8_t		body[70000];
	struct packet	p;
	char		err[PROTO_ERRLEN];
	size_t		len, i;

	decode_fails("83 a1 74 a8 52 45 47 49 53 54 45 52 a3 66 6e 73 90"
	    " a8 63 61 70 61 63 69 74 79 04", PROTO_TO_BROKER,
	    "REGISTER: key 'fns' must list 1 to 256 functions (got 0)");
	decode_fails("83 a1 74 a8 52 45 47 49 53 54 45 52 a3 66 6e 73 91 a0"
	    " a8 63 61 70 61 63 69 74 79 04", PROTO_TO_BROKER,
	    "REGISTER: element 0 of key 'fns' must be 1 to 255 bytes long "
	    "(got 0)");
	decode_fails("83 a1 74 a8 52 45 47 49 53 54 45 52 a3 66 6e 73"
	    " 92 a1 61 c4 01 62 a8 63 61 70 61 63 69 74 79 04",
	    PROTO_TO_BROKER, "REGISTER: key 'fns' must be an array of str "
	    "(element 1 is bin)");
	decode_fails("83 a1 74 a8 52 45 47 49 53 54 45 52 a3 66 6e 73 a1 61"
	    " a8 63 61 70 61 63 69 74 79 04", PROTO_TO_BROKER,
	    "REGISTER: key 'fns' must be an array of str (got str)");
	decode_fails("83 a1 74 a8 52 45 47 49 53 54 45 52 a3 66 6e 73 91 a1 61"
	    " a8 63 61 70 61 63 69 74 79 ce 00 01 00 00", PROTO_TO_BROKER,
	    "REGISTER: key 'capacity' must be between 0 and 65535 "
	    "(got 65536)");
	decode_fails("82 a1 74 a8 52 45 47 49 53 54 45 52 a3 66 6e 73 91 a1 61",
	    PROTO_TO_BROKER, "REGISTER: missing key 'capacity'");

	/* 257 names: built by hand, array16 header then "a" x 257. */
	len = unhex("83 a1 74 a8 52 45 47 49 53 54 45 52 a8 63 61 70 61 63 69"
	    " 74 79 04 a3 66 6e 73 dc 01 01", body, sizeof body);
	for (i = 0; i < 257; i++) {
		body[len++] = 0xa1;
		body[len++] = 'a';
	}
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    -EPROTO);
	ck_assert_str_eq(err,
	    "REGISTER: key 'fns' must list 1 to 256 functions (got 257)");

	/* A 256-byte name. */
	len = unhex("83 a1 74 a8 52 45 47 49 53 54 45 52 a8 63 61 70 61 63 69"
	    " 74 79 04 a3 66 6e 73 91 da 01 00", body, sizeof body);
	memset(body + len, 'f', 256);
	len += 256;
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    -EPROTO);
	ck_assert_str_eq(err, "REGISTER: element 0 of key 'fns' must be 1 to "
	    "255 bytes long (got 256)");
}
END_TEST

START_TEST(packet_decode_rejects_worker_result_status)
{
	decode_fails("84 a1 74 a6 52 45 53 55 4c 54 a2 69 64 c4 10 " HEX_ID
	    " a7 61 74 74 65 6d 70 74 01 a6 73 74 61 74 75 73"
	    " a7 54 49 4d 45 4f 55 54", PROTO_TO_BROKER,
	    "RESULT: a worker may only report OK, ERROR or CANCELLED "
	    "(got 'TIMEOUT')");
	decode_fails("84 a1 74 a6 52 45 53 55 4c 54 a2 69 64 c4 10 " HEX_ID
	    " a7 61 74 74 65 6d 70 74 01 a6 73 74 61 74 75 73 a4 44 4f 4e 45",
	    PROTO_TO_BROKER, "RESULT: unknown status 'DONE'");
	decode_fails("84 a1 74 a6 52 45 53 55 4c 54 a2 69 64 c4 10 " HEX_ID
	    " a8 61 74 74 65 6d 70 74 73 01 a6 73 74 61 74 75 73 a2 6f 6b",
	    PROTO_FROM_BROKER, "RESULT: unknown status 'ok'");
}
END_TEST

START_TEST(packet_decode_rejects_unknown_role)
{
	decode_fails("83 a1 74 a5 48 45 4c 4c 4f a1 76 01"
	    " a4 72 6f 6c 65 a4 62 6f 73 73", PROTO_TO_BROKER,
	    "HELLO: unknown role 'boss' (expected client, worker or admin)");
}
END_TEST

START_TEST(packet_decode_rejects_wrong_direction)
{
	uint8_t		frame[512];
	struct packet	p;
	char		err[PROTO_ERRLEN];
	size_t		len;
	int		i;

	decode_fails("82 a1 74 a3 42 59 45 a6 72 65 61 73 6f 6e a0",
	    PROTO_TO_BROKER, "BYE is never sent to the broker");
	decode_fails("83 a1 74 a5 48 45 4c 4c 4f a1 76 01"
	    " a4 72 6f 6c 65 a5 61 64 6d 69 6e", PROTO_FROM_BROKER,
	    "HELLO is never sent by the broker");
	/* Each one-way golden frame is refused the other way. */
	for (i = 0; i < NGOLDENS; i++) {
		const char *t = goldens[i].name;

		if (strncmp(t, "HELLO", 5) != 0 && strncmp(t, "WELCOME", 7) &&
		    strncmp(t, "REGISTER", 8) && strncmp(t, "BYE", 3) &&
		    strncmp(t, "ADMIN", 5) && strncmp(t, "REPLY", 5) &&
		    strncmp(t, "ERROR", 5))
			continue;
		len = unhex(goldens[i].hex, frame, sizeof frame);
		ck_assert_int_eq(packet_decode(frame + 4, len - 4,
		    !goldens[i].dir, &p, err), -EPROTO);
		ck_assert_msg(strstr(err, "is never sent") != NULL, "%s", err);
	}
}
END_TEST

START_TEST(packet_decode_rejects_duplicate_key)
{
	decode_fails("84 " RUN_HEAD " a2 66 6e a1 79", PROTO_TO_BROKER,
	    "RUN: key 'fn' appears twice");
}
END_TEST

START_TEST(packet_decode_rejects_malformed_frame)
{
	/* frame_check() runs first: its sentence comes through. */
	decode_fails("93 01 02 03", PROTO_TO_BROKER,
	    "frame body is not a map (found array)");
	decode_fails("81 a1 74 a3 52 55", PROTO_TO_BROKER,
	    "str at offset 3 declares 3 bytes but only 2 remain");
	decode_fails("82 a1 74 a4 50 49 4e 47 a1 6e 01 00", PROTO_TO_BROKER,
	    "1 trailing byte after the map");
}
END_TEST

/*
 * What a valid packet can hold bounds what a frame from a peer costs: too
 * many keys, or too many items in its arrays and maps, are refused before
 * they are walked, however the rest of the frame looks.
 */
START_TEST(packet_decode_bounds_the_work_of_a_frame)
{
	static uint8_t	body[1100000];
	struct packet	p;
	char		err[PROTO_ERRLEN];
	size_t		len, i;

	/* 65 keys: "t":"PING", "n":1, then 63 unknown ones. */
	len = unhex("de 00 41 a1 74 a4 50 49 4e 47 a1 6e 01", body,
	    sizeof body);
	for (i = 0; i < 63; i++) {
		body[len++] = 0xa2;
		body[len++] = 'k';
		body[len++] = (uint8_t)('0' + i);
		body[len++] = 0xc0;
	}
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    -EPROTO);
	ck_assert_str_eq(err, "a packet holds at most 64 keys and 8192 items "
	    "in all its arrays and maps; this frame holds more");
	/* The same from the broker is only a big PING. */
	ck_assert_int_eq(packet_decode(body, len, PROTO_FROM_BROKER, &p, err),
	    0);
	ck_assert_int_eq(p.type, PKT_PING);
	packet_clear(&p);

	/* A million nils under an unknown key: refused at the header. */
	len = unhex("83 a1 74 a4 50 49 4e 47 a1 6e 01 a1 78 dd 00 0f 42 40",
	    body, sizeof body);
	memset(body + len, 0xc0, 1000000);
	len += 1000000;
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    -EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "8192 items"));

	/* 8192 items in all is still a packet. */
	len = unhex("83 a1 74 a4 50 49 4e 47 a1 6e 01 a1 78 dc 20 00", body,
	    sizeof body);
	memset(body + len, 0xc0, 8192);
	len += 8192;
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    0);
	packet_clear(&p);
}
END_TEST

START_TEST(packet_decode_accepts_null_err)
{
	struct packet	p;

	ck_assert_int_eq(packet_decode((const uint8_t *)"\x80", 1,
	    PROTO_TO_BROKER, &p, NULL), -EPROTO);
	ck_assert_int_eq(packet_decode((const uint8_t *)"\x81", 1,
	    PROTO_TO_BROKER, &p, NULL), -EBADMSG);
	ck_assert_int_eq(frame_check((const uint8_t *)"\x90", 1, NULL),
	    -EBADMSG);
}
END_TEST

/* encode errors */

/* Expects encoding p in dir to fail with want and leave sb as it was. */
static void
encode_fails(const struct packet *p, enum proto_dir dir, int want)
{
	msgpack_sbuffer	sb;

	msgpack_sbuffer_init(&sb);
	msgpack_sbuffer_write(&sb, "prefix", 6);
	ck_assert_int_eq(packet_encode(p, dir, &sb), want);
	ck_assert_uint_eq(sb.size, 6);
	ck_assert_mem_eq(sb.data, "prefix", 6);
	msgpack_sbuffer_destroy(&sb);
}

START_TEST(packet_encode_rejects_incomplete_packets)
{
	struct packet	p;

	build_run_client(&p);
	p.fn = mem_bytes(NULL, 0);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);

	build_run_client(&p);
	p.payload = mem_bytes(NULL, 3);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);

	build_register(&p);
	p.nfns = 0;
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	build_register(&p);
	p.nfns = PROTO_MAX_FNS + 1;
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	build_register(&p);
	p.fns[1] = str_bytes("");
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	build_register(&p);
	p.capacity = 65536;
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);

	build_hello(&p);
	p.role = ROLE_NONE;
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);

	build_result_worker(&p);
	p.status = JOB_TIMEOUT;
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	p.status = JOB__MAX;
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);

	build_error(&p);
	p.code = PERR__MAX;
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);

	build_admin(&p);
	p.args_raw = mem_bytes("\x91\x01", 2);	/* an array: not args */
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	p.args_raw = mem_bytes(NULL, 0);	/* PF_ARGS and nothing */
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);

	build_admin(&p);
	p.args_raw.len--;			/* cut short */
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);

	build_reply(&p);
	p.data_raw = mem_bytes(NULL, 0);
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	p.data_raw = mem_bytes("\x01\x02", 2);	/* two values */
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	p.data_raw = mem_bytes("\xa4" "fns", 4);	/* str one byte short */
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	/* Eight levels inside data: nine with the packet's own map. */
	p.data_raw = mem_bytes("\x91\x91\x91\x91\x91\x91\x91\x90", 8);
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	p.data_raw = mem_bytes("\x91\x91\x91\x91\x91\x91\x90", 7);
	round_trip(&p, PROTO_FROM_BROKER);

	build_bye(&p);
	p.reason = mem_bytes(NULL, 0);
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);

	packet_init(&p, PKT_NONE);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	packet_init(&p, PKT__MAX);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
}
END_TEST

START_TEST(packet_encode_rejects_wrong_direction)
{
	struct packet	p;

	build_welcome(&p);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	build_hello(&p);
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	build_register(&p);
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	build_admin(&p);
	encode_fails(&p, PROTO_FROM_BROKER, -EINVAL);
	build_reply(&p);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	build_error(&p);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
	build_bye(&p);
	encode_fails(&p, PROTO_TO_BROKER, -EINVAL);
}
END_TEST

START_TEST(packet_encode_skips_foreign_flags)
{
	msgpack_sbuffer	sb;
	struct packet	p;
	uint8_t		want[64];
	size_t		wantlen;

	/* PF_* bits that are not optional keys of PING change nothing. */
	build_ping(&p);
	p.has = ~0u;
	encode_ok(&p, PROTO_TO_BROKER, &sb);
	wantlen = unhex("00 00 00 0b 82 a1 74 a4 50 49 4e 47 a1 6e 07", want,
	    sizeof want);
	assert_bytes((uint8_t *)sb.data, sb.size, want, wantlen);
	msgpack_sbuffer_destroy(&sb);

	/* A required payload absent from the struct is sent empty. */
	build_progress_client(&p);
	p.payload = mem_bytes(NULL, 0);
	encode_ok(&p, PROTO_FROM_BROKER, &sb);
	ck_assert_uint_eq(sb.size, 4 + 46 - 3);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* A reserve callback over a fixed buffer, for the comparisons below. */
struct fixed_buf {
	uint8_t	b[70 * 1024 + 256];
};

static void *
fixed_reserve(void *ctx, size_t n)
{
	struct fixed_buf	*f = ctx;

	return (n <= sizeof(f->b) ? f->b : NULL);
}

/*
 * RUN and RESULT take a straight path of their own through the encoder:
 * it must write what the general path writes, byte for byte, and refuse
 * what it refuses, for every combination of keys, flags (the job path's,
 * others that the general path uses or ignores), value widths and bad
 * values.
 */
START_TEST(packet_encode_job_path_matches_general)
{
	static uint8_t			 big[65536 + 10];
	static struct fixed_buf		 fa, fb;
	static const uint32_t		 flags[] = { PF_PAYLOAD, PF_TIMEOUT,
					    PF_ERROR, PF_META, PF_DETACH,
					    PF_ID, PF_STATUS };
	static const uint64_t		 nums[] = { 0, 1, 127, 128, 255, 256,
					    65535, 65536, 4294967295ull,
					    4294967296ull };
	static const uint32_t		 lens[] = { 0, 1, 31, 32, 255, 256,
					    65535, 65536 };
	static const enum packet_type	 types[] = { PKT_RUN, PKT_RESULT };
	struct packet			 p;
	size_t				 la, lb;
	unsigned			 n = 0, fast_ok = 0;
	int				 ra, rb;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	for (int t = 0; t < 2; t++)
	for (int dir = PROTO_TO_BROKER; dir <= PROTO_FROM_BROKER; dir++)
	for (uint32_t set = 0; set < 1u << 7; set++)
	for (int st = 0; st <= JOB__MAX; st++)
	for (unsigned v = 0; v < 4; v++) {
		packet_init(&p, types[t]);
		for (int b = 0; b < 7; b++)
			if (set & (1u << b))
				p.has |= flags[b];
		for (int k = 0; k < PROTO_ID_LEN; k++)
			p.id[k] = (uint8_t)(k + set);
		p.status = (enum job_status)st;
		p.attempt = nums[(set + v) % 10];
		p.attempts = nums[(set + 3 * v + 1) % 10];
		p.timeout_ms = nums[(st + v) % 10];
		/* v 3: the strings are missing, or say more than they hold. */
		p.fn = v == 3 ? mem_bytes(NULL, 0) :
		    mem_bytes(big, lens[(set + v) % 4]);
		p.payload = v == 3 ? mem_bytes(NULL, (set & 1) ? 5 : 0) :
		    mem_bytes(big + 1, lens[(set * 3 + st + v) % 8]);
		p.error = v == 3 && (set & 2) ? mem_bytes(NULL, 3) :
		    mem_bytes(big + 2, lens[(set + st) % 5]);
		ra = packet_encode_fn(&p, (enum proto_dir)dir, fixed_reserve,
		    &fa, &la);
		rb = packet_encode_general(&p, (enum proto_dir)dir,
		    fixed_reserve, &fb, &lb);
		ck_assert_msg(ra == rb, "type %d dir %d flags %#x status %d "
		    "variant %u: %d, general %d", types[t], dir, set, st, v,
		    ra, rb);
		if (ra == 0) {
			ck_assert_uint_eq(la, lb);
			ck_assert_int_eq(memcmp(fa.b, fb.b, la), 0);
			fast_ok++;
		}
		n++;
	}
	/* Both refusals and frames were compared, plenty of each. */
	ck_assert_uint_gt(fast_ok, n / 8);
	ck_assert_uint_lt(fast_ok, n);
}
END_TEST

/* Decodes body both ways and holds the job path to the general one. */
static unsigned
decode_both(const uint8_t *body, size_t len, enum proto_dir dir)
{
	static struct packet	pa, pb;
	char			ea[PROTO_ERRLEN] = "", eb[PROTO_ERRLEN] = "";
	int			ra, rb;

	memset(&pa, 0, sizeof(pa));
	memset(&pb, 0, sizeof(pb));
	ra = packet_decode(body, len, dir, &pa, ea);
	rb = packet_decode_general(body, len, dir, &pb, eb);
	ck_assert_int_eq(ra, rb);
	if (ra == 0)
		ck_assert_int_eq(memcmp(&pa, &pb, sizeof(pa)), 0);
	else
		ck_assert_str_eq(ea, eb);
	packet_clear(&pa);
	packet_clear(&pb);
	return (ra == 0);
}

/*
 * RUN and RESULT also take a straight path through the decoder: for every
 * frame the encoder writes of them (the job path's keys and others), and
 * for each of those cut short or with a byte changed, packet_decode() must
 * make the packet, or the refusal, that the general path makes.
 */
START_TEST(packet_decode_job_path_matches_general)
{
	static uint8_t			 big[300];
	static struct fixed_buf		 f;
	static const uint32_t		 flags[] = { PF_PAYLOAD, PF_TIMEOUT,
					    PF_ERROR, PF_DETACH, PF_PRIORITY };
	static const uint8_t		 bytes[] = { 0x00, 0x01, 0x7f, 0x80,
					    0xa0, 0xc4, 0xcc, 0xff };
	static const enum packet_type	 types[] = { PKT_RUN, PKT_RESULT };
	struct packet			 p;
	uint8_t				 body[sizeof(f.b)];
	size_t				 len;
	unsigned			 frames = 0, ok = 0;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)('a' + i % 26);
	for (int t = 0; t < 2; t++)
	for (int dir = PROTO_TO_BROKER; dir <= PROTO_FROM_BROKER; dir++)
	for (uint32_t set = 0; set < 1u << 5; set++)
	for (int st = 0; st < JOB__MAX; st++) {
		packet_init(&p, types[t]);
		for (int b = 0; b < 5; b++)
			if (set & (1u << b))
				p.has |= flags[b];
		memset(p.id, 0x5a, sizeof(p.id));
		p.status = (enum job_status)st;
		p.attempt = (uint64_t)st * 100;
		p.attempts = 70000 + (uint64_t)set;
		p.timeout_ms = 1000 + (uint64_t)set;
		p.priority = -3;
		p.detach = true;
		p.fn = mem_bytes(big, 1 + (uint32_t)(set + st) % 40);
		p.payload = mem_bytes(big, (uint32_t)(st * 37) % 300);
		p.error = mem_bytes(big, (uint32_t)set % 3);
		if (packet_encode_fn(&p, (enum proto_dir)dir, fixed_reserve,
		    &f, &len) != 0)
			continue;
		frames++;
		len -= PROTO_HEADER_LEN;
		memcpy(body, f.b + PROTO_HEADER_LEN, len);
		ok += decode_both(body, len, (enum proto_dir)dir);
		/* The other direction: often refused, always alike. */
		(void)decode_both(body, len, (enum proto_dir)(1 - dir));
		for (size_t cut = 0; cut < len; cut += 1 + cut / 16)
			(void)decode_both(body, cut, (enum proto_dir)dir);
		for (size_t i = 0; i < len; i += 1 + (set + i) % 3) {
			uint8_t	was = body[i];

			for (size_t b = 0; b < sizeof(bytes); b++) {
				body[i] = bytes[b];
				(void)decode_both(body, len,
				    (enum proto_dir)dir);
			}
			body[i] = was;
		}
	}
	/* What the encoder wrote, the decoder read back. */
	ck_assert_uint_gt(frames, 500);
	ck_assert_uint_eq(ok, frames);
}
END_TEST

/* names */

START_TEST(names_map_both_ways)
{
	int	i;

	for (i = PKT_HELLO; i < PKT__MAX; i++) {
		const char *s = packet_type_name(i);

		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(packet_type_from_name(s, strlen(s)), i);
	}
	for (i = 0; i < JOB__MAX; i++) {
		const char *s = job_status_name(i);

		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(job_status_from_name(s, strlen(s)), i);
	}
	for (i = ROLE_CLIENT; i <= ROLE_ADMIN; i++) {
		const char *s = proto_role_name(i);

		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(proto_role_from_name(s, strlen(s)), i);
	}
	for (i = 0; i < PERR__MAX; i++)
		ck_assert_ptr_nonnull(proto_error_name(i));
	ck_assert_str_eq(proto_error_name(PERR_TOO_MANY_CONNECTIONS),
	    "TOO_MANY_CONNECTIONS");
	ck_assert_str_eq(job_status_name(JOB_WORKER_LOST), "WORKER_LOST");
}
END_TEST

START_TEST(names_reject_unknown)
{
	ck_assert_ptr_null(packet_type_name(PKT_NONE));
	ck_assert_ptr_null(packet_type_name(PKT__MAX));
	ck_assert_ptr_null(packet_type_name((enum packet_type)-1));
	ck_assert_ptr_null(job_status_name(JOB__MAX));
	ck_assert_ptr_null(proto_error_name(PERR__MAX));
	ck_assert_ptr_null(proto_role_name(ROLE_NONE));
	ck_assert_ptr_null(proto_role_name((enum proto_role)9));
	ck_assert_int_eq(packet_type_from_name("RUNX", 4), -1);
	ck_assert_int_eq(packet_type_from_name("RUN", 2), -1);
	ck_assert_int_eq(packet_type_from_name("", 0), -1);
	ck_assert_int_eq(packet_type_from_name("RU\0", 3), -1);
	ck_assert_int_eq(job_status_from_name("ok", 2), -1);
	ck_assert_int_eq(proto_role_from_name("Client", 6), -1);
	ck_assert_int_eq(proto_role_from_name(NULL, 0), -1);
}
END_TEST

/* robustness */

/* Decodes bytes both ways; re-encodes what decodes; never fails oddly. */
static void
decode_anything(const uint8_t *body, size_t len)
{
	msgpack_sbuffer	sb;
	struct packet	p;
	char		err[PROTO_ERRLEN];
	int		dir, r;

	for (dir = PROTO_TO_BROKER; dir <= PROTO_FROM_BROKER; dir++) {
		err[0] = '\0';
		r = packet_decode(body, len, dir, &p, err);
		ck_assert_msg(r == 0 || r == refusal_code_for(body, len, err),
		    "decode returned %d", r);
		if (r != 0) {
			ck_assert_msg(err[0] != '\0', "no error sentence");
			ck_assert_ptr_null(p.zone);
			continue;
		}
		msgpack_sbuffer_init(&sb);
		r = packet_encode(&p, dir, &sb);
		/* An ERROR code this version does not know cannot be sent. */
		ck_assert_int_eq(r, p.type == PKT_ERROR &&
		    p.code == PERR__MAX ? -EINVAL : 0);
		msgpack_sbuffer_destroy(&sb);
		packet_clear(&p);
	}
}

START_TEST(packet_decode_survives_every_truncation)
{
	const struct golden	*g = &goldens[4];	/* RUN, every option */
	uint8_t			 frame[512], *copy;
	struct packet		 p;
	char			 err[PROTO_ERRLEN];
	size_t			 len, cut;

	len = unhex(g->hex, frame, sizeof frame) - 4;
	for (cut = 0; cut <= len; cut++) {
		/* A copy of exactly cut bytes, so ASan sees any overread. */
		copy = malloc(cut + 1);
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, frame + 4, cut);
		ck_assert_int_eq(packet_decode(copy, cut, PROTO_TO_BROKER, &p,
		    err), cut == len ? 0 : refusal_code(copy, cut));
		packet_clear(&p);
		decode_anything(copy, cut);
		free(copy);
	}
}
END_TEST

/* A small deterministic generator (xorshift32). */
static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return (*s);
}

START_TEST(packet_decode_survives_garbage)
{
	uint8_t		*buf;
	uint32_t	 seed = 0x2545f491;
	size_t		 len, i;
	int		 n;

	for (n = 0; n < 4000; n++) {
		len = 1 + next_rand(&seed) % 96;
		buf = malloc(len);
		ck_assert_ptr_nonnull(buf);
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)next_rand(&seed);
		/* Half the time, start like a map so the walker goes deeper. */
		if (n % 2 == 0)
			buf[0] = 0x80 | (buf[0] & 0x0f);
		decode_anything(buf, len);
		free(buf);
	}
}
END_TEST

START_TEST(packet_decode_survives_mutations)
{
	uint8_t		 frame[512], *buf;
	uint32_t	 seed = 0x9e3779b9;
	size_t		 len, i;
	int		 n, g, flips;

	for (n = 0; n < 8000; n++) {
		g = n % NGOLDENS;
		len = unhex(goldens[g].hex, frame, sizeof frame) - 4;
		buf = malloc(len);
		ck_assert_ptr_nonnull(buf);
		memcpy(buf, frame + 4, len);
		flips = 1 + next_rand(&seed) % 3;
		for (i = 0; i < (size_t)flips; i++)
			buf[next_rand(&seed) % len] = (uint8_t)next_rand(&seed);
		decode_anything(buf, len);
		free(buf);
	}
}
END_TEST

/* Runs proto_json_write() on what pack packed; the text (caller frees). */
static char *
json_of(void (*pack)(msgpack_packer *), int flags)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 u;
	size_t			 off = 0, len = 0;
	char			*text = NULL;
	FILE			*f;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack(&pk);
	msgpack_unpacked_init(&u);
	ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off),
	    MSGPACK_UNPACK_SUCCESS);
	ck_assert_ptr_nonnull(f = open_memstream(&text, &len));
	proto_json_write(f, &u.data, flags);
	ck_assert_int_eq(fclose(f), 0);
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	return text;
}

/* A map with every kind of value the JSON writer has a rule for. */
static void
json_pack_everything(msgpack_packer *pk)
{
	static const uint8_t	id[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
				    0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89,
				    0xab, 0xcd, 0xef };

	msgpack_pack_map(pk, 8);
	proto_pack_str(pk, "s");
	msgpack_pack_str_with_body(pk, "q\"b\\n\n\x01\xff", 8);
	proto_pack_str(pk, "id");
	msgpack_pack_bin_with_body(pk, id, sizeof(id));
	proto_pack_str(pk, "b64");
	msgpack_pack_bin_with_body(pk, "abcd", 4);
	proto_pack_str(pk, "nan");
	msgpack_pack_double(pk, 0.0 / 0.0);
	proto_pack_str(pk, "neg");
	msgpack_pack_int64(pk, -5);
	proto_pack_str(pk, "list");
	msgpack_pack_array(pk, 3);
	msgpack_pack_nil(pk);
	msgpack_pack_true(pk);
	msgpack_pack_array(pk, 0);
	msgpack_pack_uint64(pk, 7);		/* a key that is not a string */
	msgpack_pack_map(pk, 0);
	msgpack_pack_nil(pk);			/* and another */
	msgpack_pack_false(pk);
}

/* proto_json_write(): escapes, UUIDs, base64, null for NaN, keys as text. */
START_TEST(json_writes_every_kind)
{
	char	*text = json_of(json_pack_everything, 0);

	ck_assert_str_eq(text, "{\"s\":\"q\\\"b\\\\n\\n\\u0001\\ufffd\","
	    "\"id\":\"12345678-9abc-def0-0123-456789abcdef\","
	    "\"b64\":\"YWJjZA==\",\"nan\":null,\"neg\":-5,"
	    "\"list\":[null,true,[]],\"7\":{},\"null\":false}");
	free(text);
	text = json_of(json_pack_everything, PROTO_JSON_PRETTY);
	ck_assert_ptr_nonnull(strstr(text, "{\n  \"s\": \"q"));
	ck_assert_ptr_nonnull(strstr(text, "\"list\": [\n    null,\n"));
	free(text);
}
END_TEST

/* Builds the suite: one TCase per feature. */
/* Every packet type has a statistics kind; adding stats adds up. */
START_TEST(msg_kinds_and_stats_add)
{
	struct msg_stats	a = { 0 }, b = { 0 };

	ck_assert_int_eq(msg_kind_of(PKT_RUN), MSG_REQUESTS);
	ck_assert_int_eq(msg_kind_of(PKT_CANCEL), MSG_REQUESTS);
	ck_assert_int_eq(msg_kind_of(PKT_RESULT), MSG_RESULTS);
	ck_assert_int_eq(msg_kind_of(PKT_PROGRESS), MSG_PROGRESS);
	ck_assert_int_eq(msg_kind_of(PKT_ERROR), MSG_ERRORS);
	ck_assert_int_eq(msg_kind_of(PKT_PING), MSG_HEARTBEATS);
	ck_assert_int_eq(msg_kind_of(PKT_PONG), MSG_HEARTBEATS);
	ck_assert_int_eq(msg_kind_of(PKT_ADMIN), MSG_ADMIN);
	ck_assert_int_eq(msg_kind_of(PKT_REPLY), MSG_ADMIN);
	ck_assert_int_eq(msg_kind_of(PKT_HELLO), MSG_CONTROL);
	ck_assert_int_eq(msg_kind_of(PKT__MAX), MSG_CONTROL);
	ck_assert_str_eq(msg_kind_name(MSG_HEARTBEATS), "heartbeats");
	ck_assert_ptr_null(msg_kind_name(MSG__MAX));

	a.sent[MSG_REQUESTS] = 2;
	a.bytes_received = 10;
	a.first_ms = 500;
	a.last_ms = 900;
	b.received[MSG_RESULTS] = 3;
	b.bytes_received = 5;
	b.first_ms = 400;
	b.last_ms = 800;
	msg_stats_add(&a, &b);
	ck_assert_uint_eq(msg_stats_total(&a), 5);
	ck_assert_uint_eq(a.bytes_received, 15);
	ck_assert_uint_eq(a.first_ms, 400);
	ck_assert_uint_eq(a.last_ms, 900);
	/* Nothing yet (0) does not move the first time. */
	memset(&b, 0, sizeof(b));
	msg_stats_add(&a, &b);
	ck_assert_uint_eq(a.first_ms, 400);
}
END_TEST

/* meta */

/*
 * Packs a map of n entries into sb: "k0".."k<n-1>" (or the keys given)
 * with value v each. Returns its bytes.
 */
static struct pbytes
pack_meta_n(msgpack_sbuffer *sb, unsigned n, const char *v)
{
	msgpack_packer	pk;
	char		k[16];

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (unsigned i = 0; i < n; i++) {
		snprintf(k, sizeof k, "k%u", i);
		proto_pack_str(&pk, k);
		proto_pack_str(&pk, v);
	}
	return (mem_bytes(sb->data, (uint32_t)sb->size));
}

/* Packs {key: value} (value len bytes) into sb and returns its bytes. */
static struct pbytes
pack_meta_kv(msgpack_sbuffer *sb, const char *key, const void *value,
    size_t len)
{
	msgpack_packer	pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	proto_pack_str(&pk, key);
	msgpack_pack_str(&pk, len);
	msgpack_pack_str_body(&pk, value, len);
	return (mem_bytes(sb->data, (uint32_t)sb->size));
}

/* Expects meta_check() to refuse raw with a sentence containing want. */
static void
meta_fails(struct pbytes raw, const char *want)
{
	char	err[PROTO_ERRLEN] = "";

	ck_assert_int_eq(meta_check(raw, err), -EINVAL);
	ck_assert_msg(strstr(err, want) != NULL,
	    "error '%s' does not contain '%s'", err, want);
}

/* Checks {key: value} and expects 0, or a refusal containing want. */
static void
meta_kv(const char *key, const char *value, const char *want)
{
	msgpack_sbuffer	sb;
	struct pbytes	raw = pack_meta_kv(&sb, key, value, strlen(value));
	char		err[PROTO_ERRLEN] = "";

	if (want == NULL)
		ck_assert_msg(meta_check(raw, err) == 0, "{%s: %s}: %s", key,
		    value, err);
	else
		meta_fails(raw, want);
	msgpack_sbuffer_destroy(&sb);
}

START_TEST(meta_decode_reads_the_map_in_place)
{
	uint8_t		 body[256];
	struct packet	 p;
	struct meta_iter it;
	struct pbytes	 k, v;

	/* The fast path (golden order) and the general walk (t last). */
	decode_ok("84 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a4 65 63 68 6f " HEX_META_USER, PROTO_TO_BROKER, &p,
	    body, sizeof body);
	ck_assert_uint_eq(p.has, PF_META);
	ck_assert_ptr_eq(p.meta.ptr, body + 41);	/* borrowed */
	assert_pbytes("meta", p.meta, mem_bytes(META_USER, 9));
	decode_ok("84 " HEX_META_USER " a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a4 65 63 68 6f a1 74 a3 52 55 4e", PROTO_TO_BROKER, &p,
	    body, sizeof body);
	assert_pbytes("meta", p.meta, mem_bytes(META_USER, 9));
	ck_assert_uint_eq(meta_count(p.meta), 1);
	meta_iter_init(&it, p.meta);
	ck_assert(meta_iter_next(&it, &k, &v));
	assert_pbytes("key", k, str_bytes("user"));
	assert_pbytes("value", v, str_bytes("al"));
	ck_assert(!meta_iter_next(&it, &k, &v));
	ck_assert(meta_find(p.meta, "user", &v));
	assert_pbytes("found", v, str_bytes("al"));
	ck_assert(!meta_find(p.meta, "use", &v));
	ck_assert_int_eq(meta_check(p.meta, NULL), 0);

	/* Wide headers (map16, str8, str16) are a map of str all the same. */
	decode_ok("84 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a4 65 63 68 6f a4 6d 65 74 61"
	    " de 00 01 d9 01 6b da 00 02 76 76", PROTO_TO_BROKER, &p, body,
	    sizeof body);
	ck_assert(meta_find(p.meta, "k", &v));
	assert_pbytes("wide", v, str_bytes("vv"));
	ck_assert_int_eq(meta_check(p.meta, NULL), 0);

	/* meta is not a key of RESULT: ignored there, whatever it holds. */
	decode_ok("85 a1 74 a6 52 45 53 55 4c 54 a2 69 64 c4 10 " HEX_ID
	    " a7 61 74 74 65 6d 70 74 01 a6 73 74 61 74 75 73 a2 4f 4b"
	    " a4 6d 65 74 61 01", PROTO_TO_BROKER, &p, body, sizeof body);
	ck_assert_uint_eq(p.has, 0);
	ck_assert_uint_eq(p.meta.len, 0);
}
END_TEST

START_TEST(meta_decode_wants_a_map_of_str)
{
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 92 a1 61 a1 62",
	    PROTO_TO_BROKER,
	    "RUN: key 'meta' must be a map of str to str (got array)");
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 81 a1 61 01",
	    PROTO_TO_BROKER, "RUN: key 'meta' must be a map of str to str "
	    "(the value of 'a' is unsigned integer)");
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 81 a1 61 c4 01 62",
	    PROTO_TO_BROKER, "(the value of 'a' is bin)");
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 81 a1 61 81 a1 62 a1 63",
	    PROTO_TO_BROKER, "(the value of 'a' is map)");
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 81 01 a1 62",
	    PROTO_TO_BROKER, "(a key is unsigned integer)");
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 c0", PROTO_TO_BROKER,
	    "RUN: key 'meta' must be a map of str to str (got nil)");
	/* A worker's library is as strict with the broker's RUN. */
	decode_fails("86 a1 74 a3 52 55 4e a2 69 64 c4 10 " HEX_ID
	    " a2 66 6e a4 65 63 68 6f a7 70 61 79 6c 6f 61 64 c4 00"
	    " a7 61 74 74 65 6d 70 74 01 a4 6d 65 74 61 81 a1 61 c3",
	    PROTO_FROM_BROKER, "(the value of 'a' is bool)");
	/* A map whose count lies is malformed, not a bad packet. */
	decode_fails("84 " RUN_HEAD " a4 6d 65 74 61 83 a1 61 a1 62",
	    PROTO_TO_BROKER, "declares 3 entries");
	decode_fails("85 " RUN_HEAD " a4 6d 65 74 61 80 a4 6d 65 74 61 80",
	    PROTO_TO_BROKER, "RUN: key 'meta' appears twice");
}
END_TEST

/* A meta map's entries count against the items a frame may make us walk. */
START_TEST(meta_decode_is_bounded_by_the_item_budget)
{
	static uint8_t	body[70000];
	struct packet	p;
	char		err[PROTO_ERRLEN];
	size_t		len, i;

	/* 4097 entries of "" to "": 8194 items, in canonical order. */
	len = unhex("84 " RUN_HEAD " a4 6d 65 74 61 de 10 01", body,
	    sizeof body);
	for (i = 0; i < 4097; i++) {
		body[len++] = 0xa0;
		body[len++] = 0xa0;
	}
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    -EPROTO);
	ck_assert_ptr_nonnull(strstr(err, "8192 items"));
	/* 4096 entries decode (and meta_check() then refuses them). */
	len = unhex("84 " RUN_HEAD " a4 6d 65 74 61 de 10 00", body,
	    sizeof body);
	for (i = 0; i < 4096; i++) {
		body[len++] = 0xa0;
		body[len++] = 0xa0;
	}
	ck_assert_int_eq(packet_decode(body, len, PROTO_TO_BROKER, &p, err),
	    0);
	meta_fails(p.meta, "meta has 4096 keys, more than 32");
}
END_TEST

START_TEST(meta_round_trips_both_ways)
{
	msgpack_sbuffer	 sb, raw;
	struct packet	 p, q;
	char		 err[PROTO_ERRLEN];
	uint32_t	 len;

	for (int dir = PROTO_TO_BROKER; dir <= PROTO_FROM_BROKER; dir++) {
		packet_init(&p, PKT_RUN);
		memcpy(p.id, test_id, PROTO_ID_LEN);
		p.fn = str_bytes("f");
		p.attempt = 1;
		p.has = PF_META | PF_TIMEOUT;
		p.timeout_ms = 5;
		p.meta = pack_meta_n(&raw, 20, "v");	/* a map16 */
		encode_ok(&p, dir, &sb);
		ck_assert_int_eq(frame_header((uint8_t *)sb.data, sb.size,
		    UINT32_MAX, &len), 0);
		ck_assert_int_eq(packet_decode((uint8_t *)sb.data + 4, len,
		    dir, &q, err), 0);
		assert_pbytes("meta", q.meta, p.meta);
		ck_assert_uint_eq(q.has & PF_META, PF_META);
		ck_assert_uint_eq(meta_count(q.meta), 20);
		msgpack_sbuffer_destroy(&sb);
		msgpack_sbuffer_destroy(&raw);
	}
}
END_TEST

START_TEST(meta_encode_refuses_what_is_no_map_of_str)
{
	msgpack_sbuffer	sb;
	struct packet	p;

	msgpack_sbuffer_init(&sb);
	build_run_meta(&p);
	p.meta = mem_bytes("\x81\xa1" "a" "\x01", 4);		/* value int */
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), -EINVAL);
	p.meta = mem_bytes("\x92\xa1" "a" "\xa1" "b", 5);	/* an array */
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), -EINVAL);
	p.meta = mem_bytes(META_USER "\xc0", 10);		/* trailing */
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), -EINVAL);
	p.meta = mem_bytes(META_USER, 8);			/* cut short */
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), -EINVAL);
	p.meta = mem_bytes(NULL, 0);				/* nothing */
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), -EINVAL);
	ck_assert_uint_eq(sb.size, 0);
	/* Without PF_META the bytes are not looked at. */
	p.has = 0;
	p.meta = mem_bytes("\x01", 1);
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), 0);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(meta_check_bounds_keys_and_bytes)
{
	msgpack_sbuffer	 sb;
	char		 big[PROTO_MAX_META_BYTES + 2], v127[128];

	ck_assert_int_eq(meta_check(pack_meta_n(&sb, 32, "v"), NULL), 0);
	msgpack_sbuffer_destroy(&sb);
	meta_fails(pack_meta_n(&sb, 33, "v"), "meta has 33 keys, more than 32");
	msgpack_sbuffer_destroy(&sb);
	ck_assert_int_eq(meta_check(pack_meta_n(&sb, 0, "v"), NULL), 0);
	msgpack_sbuffer_destroy(&sb);

	/* "k" and 4095 bytes: 4096, the most; one more byte is too many. */
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(meta_check(pack_meta_kv(&sb, "k", big,
	    PROTO_MAX_META_BYTES - 1), NULL), 0);
	msgpack_sbuffer_destroy(&sb);
	meta_fails(pack_meta_kv(&sb, "k", big, PROTO_MAX_META_BYTES),
	    "meta holds 4097 bytes of keys and values, more than 4096");
	msgpack_sbuffer_destroy(&sb);
	/* The sum over every entry, keys included: 86 + 32 * 127. */
	memset(v127, 'x', 127);
	v127[127] = '\0';
	meta_fails(pack_meta_n(&sb, 32, v127), "meta holds 4150 bytes");
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(meta_check_keys_and_values)
{
	msgpack_sbuffer	sb;
	struct pbytes	raw;

	meta_kv("Tenant_ID.v-2", "any text: caf\xc3\xa9 \xe2\x9c\x93", NULL);
	meta_kv("", "x", "meta has an empty key");
	meta_kv("a b", "x",
	    "meta key 'a b' may only hold A-Z a-z 0-9 _ . - (byte 1 is not one)");
	meta_kv("a=b", "x", "meta key 'a=b' may only hold");
	meta_kv("a/b", "x", "may only hold");
	meta_kv("caf\xc3\xa9", "x", "meta key 'caf?" "?' may only hold");
	meta_kv("k", "\xff", "meta 'k' has a value that is not UTF-8 (byte 0)");
	meta_kv("k", "ok\xc3", "not UTF-8 (byte 2)");
	meta_kv("k", "\xed\xa0\x80", "not UTF-8");	/* a surrogate */
	raw = pack_meta_kv(&sb, "k", "a\0b", 3);
	meta_fails(raw, "meta 'k' has a NUL byte in its value");
	msgpack_sbuffer_destroy(&sb);
	/* A key twice (which msgpack allows) is refused, as packet keys are. */
	meta_fails(mem_bytes("\x82\xa1" "a" "\xa1" "1" "\xa1" "a" "\xa1" "2",
	    9), "meta key 'a' appears twice");
	/* Not a map of str: what the decoder would never have let through. */
	meta_fails(mem_bytes("\x81\xa1" "a" "\x01", 4),
	    "meta is not a map of str to str");
}
END_TEST

START_TEST(meta_check_trace_context)
{
	const char	*ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-"
			    "00f067aa0ba902b7-01";
	msgpack_sbuffer	 sb;
	msgpack_packer	 pk;

	meta_kv("traceparent", ok, NULL);
	meta_kv("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-00", NULL);		/* not sampled */
	meta_kv("traceparent", "cc-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01-what-the-future-holds", NULL);
	meta_kv("traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-"
	    "00f067aa0ba902b7-01", "meta 'traceparent' is not a W3C "
	    "traceparent (00-<32 hex>-<16 hex>-<2 hex>, ids not all zero)");
	meta_kv("traceparent", "00-00000000000000000000000000000000-"
	    "00f067aa0ba902b7-01", "not a W3C traceparent");
	meta_kv("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "0000000000000000-01", "not a W3C traceparent");
	meta_kv("traceparent", "ff-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01", "not a W3C traceparent");
	meta_kv("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01-", "not a W3C traceparent");
	meta_kv("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-1", "not a W3C traceparent");
	meta_kv("traceparent", "00_4bf92f3577b34da6a3ce929d0e0e4736-"
	    "00f067aa0ba902b7-01", "not a W3C traceparent");
	meta_kv("traceparent", "", "not a W3C traceparent");
	meta_kv("tracestate", "congo=t61rcWkgMzE",
	    "meta has a 'tracestate' without a 'traceparent'");

	/* With its traceparent, a tracestate of printable ASCII. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	proto_pack_str(&pk, "tracestate");
	proto_pack_str(&pk, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
	proto_pack_str(&pk, "traceparent");
	proto_pack_str(&pk, ok);
	ck_assert_int_eq(meta_check(mem_bytes(sb.data, (uint32_t)sb.size),
	    NULL), 0);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	proto_pack_str(&pk, "traceparent");
	proto_pack_str(&pk, ok);
	proto_pack_str(&pk, "tracestate");
	proto_pack_str(&pk, "a=\n");
	meta_fails(mem_bytes(sb.data, (uint32_t)sb.size),
	    "meta 'tracestate' must be at most 512 bytes of printable ASCII");
	msgpack_sbuffer_destroy(&sb);
	ck_assert(meta_traceparent_ok((const uint8_t *)ok, strlen(ok)));
	ck_assert(!meta_traceparent_ok((const uint8_t *)ok, strlen(ok) - 1));
}
END_TEST

START_TEST(meta_buf_builds_what_msgpack_packs)
{
	static struct meta_buf	mb;
	msgpack_sbuffer		sb;
	struct pbytes		raw;
	char			err[PROTO_ERRLEN], big[300];

	/* Empty, then 20 entries (a map16), byte for byte msgpack-c's. */
	meta_buf_init(&mb);
	ck_assert_int_eq(meta_buf_finish(&mb, &raw, err), 0);
	assert_bytes(raw.ptr, raw.len, (const uint8_t *)"\x80", 1);
	meta_buf_init(&mb);
	for (unsigned i = 0; i < 20; i++) {
		char k[16];

		snprintf(k, sizeof k, "k%u", i);
		meta_buf_add(&mb, k, strlen(k), "v", 1);
	}
	ck_assert_int_eq(meta_buf_finish(&mb, &raw, err), 0);
	pack_meta_n(&sb, 20, "v");
	assert_bytes(raw.ptr, raw.len, (uint8_t *)sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	ck_assert(meta_buf_has(&mb, "k19"));
	ck_assert(!meta_buf_has(&mb, "k20"));

	/* str8 and str16 values. */
	memset(big, 'y', sizeof big);
	meta_buf_init(&mb);
	meta_buf_add(&mb, "a", 1, big, 40);
	meta_buf_add(&mb, "b", 1, big, 300);
	ck_assert_int_eq(meta_buf_finish(&mb, &raw, err), 0);
	ck_assert_uint_eq(raw.len, 1 + 2 + 2 + 40 + 2 + 3 + 300);
	ck_assert_uint_eq(raw.ptr[3], 0xd9);
	ck_assert_uint_eq(raw.ptr[3 + 2 + 40 + 2], 0xda);

	/* Past the limits, counted: the sentence says by how much. */
	meta_buf_init(&mb);
	for (unsigned i = 0; i < 40; i++)
		meta_buf_add(&mb, "k", 1, "v", 1);
	ck_assert_int_eq(meta_buf_finish(&mb, &raw, err), -EINVAL);
	ck_assert_str_eq(err, "meta has 40 keys, more than 32");
	meta_buf_init(&mb);
	for (unsigned i = 0; i < 20; i++)
		meta_buf_add(&mb, "k", 1, big, 299);
	ck_assert_int_eq(meta_buf_finish(&mb, &raw, err), -EINVAL);
	ck_assert_str_eq(err,
	    "meta holds 6000 bytes of keys and values, more than 4096");
	/* Within them, the rest of meta_check(). */
	meta_buf_init(&mb);
	meta_buf_add(&mb, "k", 1, "1", 1);
	meta_buf_add(&mb, "k", 1, "2", 1);
	ck_assert_int_eq(meta_buf_finish(&mb, &raw, err), -EINVAL);
	ck_assert_str_eq(err, "meta key 'k' appears twice");
}
END_TEST

static Suite *
proto_suite(void)
{
	Suite	*s = suite_create("proto");
	TCase	*tc;

	tc = tcase_create("frame_header");
	tcase_add_test(tc, frame_header_reads_length);
	tcase_add_test(tc, frame_header_accepts_exactly_max);
	tcase_add_test(tc, frame_header_rejects_too_large);
	tcase_add_test(tc, frame_header_rejects_zero_length);
	tcase_add_test(tc, frame_header_waits_for_four_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("frame_check");
	tcase_add_test(tc, frame_check_accepts_valid_bodies);
	tcase_add_test(tc, frame_check_rejects_non_map_body);
	tcase_add_test(tc, frame_check_rejects_empty_body);
	tcase_add_test(tc, frame_check_rejects_trailing_bytes);
	tcase_add_test(tc, frame_check_rejects_lying_array_count);
	tcase_add_test(tc, frame_check_rejects_lying_map_count);
	tcase_add_test(tc, frame_check_rejects_container_cut_short);
	tcase_add_test(tc, frame_check_limits_nesting);
	tcase_add_test(tc, frame_check_rejects_reserved_byte);
	tcase_add_test(tc, frame_check_rejects_truncated_str_bin_ext);
	suite_add_tcase(s, tc);

	tc = tcase_create("golden");
	tcase_add_loop_test(tc, packet_encode_matches_golden, 0, NGOLDENS);
	tcase_add_loop_test(tc, packet_decode_reads_golden, 0, NGOLDENS);
	suite_add_tcase(s, tc);

	tc = tcase_create("round_trip");
	tcase_add_test(tc, packet_round_trip_every_option);
	tcase_add_test(tc, packet_encode_appends_to_buffer);
	tcase_add_test(tc, packet_encode_reencodes_decoded_admin);
	tcase_add_test(tc, packet_decode_borrows_from_body);
	tcase_add_test(tc, packet_decode_keeps_zone_for_args);
	tcase_add_test(tc, packet_decode_accepts_any_key_order);
	tcase_add_test(tc, packet_decode_ignores_unknown_keys);
	tcase_add_test(tc, packet_decode_accepts_wide_integer_encodings);
	tcase_add_test(tc, packet_decode_maps_unknown_error_code);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode_errors");
	tcase_add_test(tc, packet_decode_rejects_missing_t);
	tcase_add_test(tc, packet_decode_rejects_unknown_t);
	tcase_add_test(tc, packet_decode_rejects_wrong_type);
	tcase_add_test(tc, packet_decode_rejects_missing_keys);
	tcase_add_test(tc, packet_decode_rejects_bad_id_length);
	tcase_add_test(tc, packet_decode_rejects_bad_register);
	tcase_add_test(tc, packet_decode_rejects_worker_result_status);
	tcase_add_test(tc, packet_decode_rejects_unknown_role);
	tcase_add_test(tc, packet_decode_rejects_wrong_direction);
	tcase_add_test(tc, packet_decode_rejects_duplicate_key);
	tcase_add_test(tc, packet_decode_rejects_malformed_frame);
	tcase_add_test(tc, packet_decode_accepts_null_err);
	tcase_add_test(tc, packet_decode_bounds_the_work_of_a_frame);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode_errors");
	tcase_add_test(tc, packet_encode_rejects_incomplete_packets);
	tcase_add_test(tc, packet_encode_rejects_wrong_direction);
	tcase_add_test(tc, packet_encode_skips_foreign_flags);
	tcase_add_test(tc, packet_encode_job_path_matches_general);
	tcase_add_test(tc, packet_decode_job_path_matches_general);
	suite_add_tcase(s, tc);

	tc = tcase_create("meta");
	tcase_add_test(tc, meta_decode_reads_the_map_in_place);
	tcase_add_test(tc, meta_decode_wants_a_map_of_str);
	tcase_add_test(tc, meta_decode_is_bounded_by_the_item_budget);
	tcase_add_test(tc, meta_round_trips_both_ways);
	tcase_add_test(tc, meta_encode_refuses_what_is_no_map_of_str);
	tcase_add_test(tc, meta_check_bounds_keys_and_bytes);
	tcase_add_test(tc, meta_check_keys_and_values);
	tcase_add_test(tc, meta_check_trace_context);
	tcase_add_test(tc, meta_buf_builds_what_msgpack_packs);
	suite_add_tcase(s, tc);

	tc = tcase_create("names");
	tcase_add_test(tc, names_map_both_ways);
	tcase_add_test(tc, names_reject_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("json");
	tcase_add_test(tc, json_writes_every_kind);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_add_test(tc, packet_decode_survives_every_truncation);
	tcase_add_test(tc, packet_decode_survives_garbage);
	tcase_add_test(tc, packet_decode_survives_mutations);
	tcase_add_test(tc, msg_kinds_and_stats_add);
	suite_add_tcase(s, tc);

	return (s);
}

/* Runs the suite and exits non-zero when a test failed. */
int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(proto_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}

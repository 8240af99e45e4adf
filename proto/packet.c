/*
 * packet.c: the tables of protocol v1, and the life of a struct packet.
 *
 * One table (packet_specs) says, for each direction and packet type, which
 * keys are required and which are optional; the decoder (decode.c) and the
 * encoder (encode.c) both read it, so they cannot disagree. Another table
 * (packet_keys) holds every key already encoded as a MessagePack fixstr, in
 * the order the encoder emits them (`t` first).
 *
 * A struct packet ends with REGISTER's array of function names, which is
 * large and only meaningful for REGISTER: packet_init() and the decoder
 * zero everything before it and set nfns, so no packet costs its zeroing.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "proto/internal.h"

/*
 * Each key as it goes on the wire: a fixstr header byte, then the name.
 * The literals are split so that a name starting with a hex digit is not
 * read as part of the escape.
 */
const char *const packet_keys[K__MAX] = {
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
	[K_ACK] = "\xa3" "ack",
	[K_DELAY_MS] = "\xa8" "delay_ms",
	[K_RUN_AT] = "\xa6" "run_at",
	[K_RETRY_ON_ERROR] = "\xae" "retry_on_error",
	[K_BACKOFF_MS] = "\xaa" "backoff_ms",
	[K_UNIQUE] = "\xa6" "unique",
	[K_JOINED] = "\xa6" "joined",
	[K_META] = "\xa4" "meta",
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
	[K_STATE] = "\xa5" "state",
	[K_AGE_MS] = "\xa6" "age_ms",
};

/* The PF_* bit of each optional key; 0 for keys that have none. */
const uint32_t packet_key_flags[K__MAX] = {
	[K_NAME] = PF_NAME,
	[K_TOKEN] = PF_TOKEN,
	[K_PAYLOAD] = PF_PAYLOAD,
	[K_TIMEOUT_MS] = PF_TIMEOUT,
	[K_RETRIES] = PF_RETRIES,
	[K_PRIORITY] = PF_PRIORITY,
	[K_DETACH] = PF_DETACH,
	[K_NOWAIT] = PF_NOWAIT,
	[K_ACK] = PF_ACK,
	[K_DELAY_MS] = PF_DELAY,
	[K_RUN_AT] = PF_RUN_AT,
	[K_FN] = PF_FN,
	[K_ATTEMPTS] = PF_ATTEMPTS,
	[K_AGE_MS] = PF_AGE,
	[K_STATUS] = PF_STATUS,
	[K_RETRY_ON_ERROR] = PF_RETRY_ON_ERROR,
	[K_BACKOFF_MS] = PF_BACKOFF,
	[K_UNIQUE] = PF_UNIQUE,
	[K_JOINED] = PF_JOINED,
	[K_ERROR] = PF_ERROR,
	[K_ARGS] = PF_ARGS,
	[K_DATA] = PF_DATA,
	[K_ID] = PF_ID,
	[K_META] = PF_META,
};

/* The key of each PF_* bit, by the bit's position (K_T: no such bit). */
const uint8_t packet_flag_keys[32] = {
	[0] = K_NAME,		/* PF_NAME */
	[1] = K_TOKEN,		/* PF_TOKEN */
	[2] = K_PAYLOAD,	/* PF_PAYLOAD */
	[3] = K_TIMEOUT_MS,	/* PF_TIMEOUT */
	[4] = K_RETRIES,	/* PF_RETRIES */
	[5] = K_PRIORITY,	/* PF_PRIORITY */
	[6] = K_DETACH,		/* PF_DETACH */
	[7] = K_NOWAIT,		/* PF_NOWAIT */
	[8] = K_ERROR,		/* PF_ERROR */
	[9] = K_ARGS,		/* PF_ARGS */
	[10] = K_DATA,		/* PF_DATA */
	[11] = K_ID,		/* PF_ID */
	[12] = K_META,		/* PF_META */
	[13] = K_ACK,		/* PF_ACK */
	[14] = K_DELAY_MS,	/* PF_DELAY */
	[15] = K_RUN_AT,	/* PF_RUN_AT */
	[16] = K_FN,		/* PF_FN */
	[17] = K_ATTEMPTS,	/* PF_ATTEMPTS */
	[18] = K_AGE_MS,	/* PF_AGE */
	[19] = K_STATUS,	/* PF_STATUS */
	[20] = K_RETRY_ON_ERROR, /* PF_RETRY_ON_ERROR */
	[21] = K_BACKOFF_MS,	/* PF_BACKOFF */
	[22] = K_UNIQUE,	/* PF_UNIQUE */
	[23] = K_JOINED,	/* PF_JOINED */
};
_Static_assert(PF_ID == 1u << 11 && PF_META == 1u << 12 &&
    PF_ACK == 1u << 13 && PF_DELAY == 1u << 14 && PF_RUN_AT == 1u << 15,
    "packet_flag_keys follows the PF_* bits");

/* Required and optional keys of each packet type in each direction. */
const struct packet_spec packet_specs[2][PKT__MAX] = {
	[PROTO_TO_BROKER] = {
		[PKT_HELLO] = {
			KB(K_T) | KB(K_V) | KB(K_ROLE),
			KB(K_NAME) | KB(K_TOKEN) },
		[PKT_REGISTER] = {
			KB(K_T) | KB(K_FNS) | KB(K_CAPACITY), 0 },
		[PKT_RUN] = {
			KB(K_T) | KB(K_ID) | KB(K_FN),
			KB(K_PAYLOAD) | KB(K_TIMEOUT_MS) | KB(K_RETRIES) |
			KB(K_PRIORITY) | KB(K_DETACH) | KB(K_NOWAIT) |
			KB(K_ACK) | KB(K_DELAY_MS) | KB(K_RUN_AT) |
			KB(K_RETRY_ON_ERROR) | KB(K_BACKOFF_MS) |
			KB(K_UNIQUE) | KB(K_META) },
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
		[PKT_STATUS] = { KB(K_T) | KB(K_ID), 0 },
	},
	[PROTO_FROM_BROKER] = {
		[PKT_WELCOME] = {
			KB(K_T) | KB(K_V) | KB(K_SESSION) | KB(K_HEARTBEAT_MS) |
			KB(K_MAX_FRAME) | KB(K_SERVER), 0 },
		[PKT_RUN] = {
			KB(K_T) | KB(K_ID) | KB(K_FN) | KB(K_PAYLOAD) |
			KB(K_ATTEMPT), KB(K_TIMEOUT_MS) | KB(K_META) },
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
		[PKT_ACCEPTED] = { KB(K_T) | KB(K_ID), KB(K_JOINED) },
		[PKT_JOB] = {
			KB(K_T) | KB(K_ID) | KB(K_STATE),
			KB(K_FN) | KB(K_ATTEMPTS) | KB(K_PRIORITY) |
			KB(K_AGE_MS) | KB(K_STATUS) | KB(K_ERROR) |
			KB(K_PAYLOAD) },
	},
};

/*
 * Returns the key called s[0..len), or -1 for a key this protocol lacks:
 * a switch on the length, then on the first byte, then one comparison.
 */
int
packet_key_find(const uint8_t *s, size_t len)
{
	int	k;

	switch (len) {
	case 1:
		switch (s[0]) {
		case 'n':
			k = K_N;
			break;
		case 't':
			k = K_T;
			break;
		case 'v':
			k = K_V;
			break;
		default:
			return (-1);
		}
		break;
	case 2:
		switch (s[0]) {
		case 'f':
			k = K_FN;
			break;
		case 'i':
			k = K_ID;
			break;
		case 'o':
			k = K_OK;
			break;
		default:
			return (-1);
		}
		break;
	case 3:
		switch (s[0]) {
		case 'a':
			k = K_ACK;
			break;
		case 'f':
			k = K_FNS;
			break;
		case 'm':
			k = K_MSG;
			break;
		case 's':
			k = K_SEQ;
			break;
		default:
			return (-1);
		}
		break;
	case 4:
		switch (s[0]) {
		case 'a':
			k = K_ARGS;
			break;
		case 'c':
			k = K_CODE;
			break;
		case 'd':
			k = K_DATA;
			break;
		case 'm':
			k = K_META;
			break;
		case 'n':
			k = K_NAME;
			break;
		case 'r':
			k = K_ROLE;
			break;
		case 'v':
			k = K_VERB;
			break;
		default:
			return (-1);
		}
		break;
	case 5:
		switch (s[0]) {
		case 'e':
			k = K_ERROR;
			break;
		case 's':
			k = K_STATE;
			break;
		case 't':
			k = K_TOKEN;
			break;
		default:
			return (-1);
		}
		break;
	case 6:
		switch (s[0]) {
		case 'a':
			k = K_AGE_MS;
			break;
		case 'd':
			k = K_DETACH;
			break;
		case 'j':
			k = K_JOINED;
			break;
		case 'n':
			k = K_NOWAIT;
			break;
		case 'u':
			k = K_UNIQUE;
			break;
		case 'r':
			if (s[1] == 'e')
				k = K_REASON;
			else if (s[1] == 'u')
				k = K_RUN_AT;
			else
				return (-1);
			break;
		case 's':
			if (s[1] == 'e')
				k = K_SERVER;
			else if (s[1] == 't')
				k = K_STATUS;
			else
				return (-1);
			break;
		default:
			return (-1);
		}
		break;
	case 7:
		switch (s[0]) {
		case 'a':
			k = K_ATTEMPT;
			break;
		case 'p':
			k = K_PAYLOAD;
			break;
		case 'r':
			k = K_RETRIES;
			break;
		case 's':
			k = K_SESSION;
			break;
		default:
			return (-1);
		}
		break;
	case 8:
		switch (s[0]) {
		case 'a':
			k = K_ATTEMPTS;
			break;
		case 'd':
			k = K_DELAY_MS;
			break;
		case 'c':
			k = K_CAPACITY;
			break;
		case 'p':
			k = K_PRIORITY;
			break;
		default:
			return (-1);
		}
		break;
	case 9:
		switch (s[0]) {
		case 'm':
			k = K_MAX_FRAME;
			break;
		default:
			return (-1);
		}
		break;
	case 10:
		switch (s[0]) {
		case 'b':
			k = K_BACKOFF_MS;
			break;
		case 't':
			k = K_TIMEOUT_MS;
			break;
		default:
			return (-1);
		}
		break;
	case 12:
		switch (s[0]) {
		case 'h':
			k = K_HEARTBEAT_MS;
			break;
		default:
			return (-1);
		}
		break;
	case 14:
		if (s[0] != 'r')
			return (-1);
		k = K_RETRY_ON_ERROR;
		break;
	default:
		return (-1);
	}
	/* Short names: a byte loop beats a call to memcmp(). */
	for (size_t i = 1; i < len; i++)
		if ((uint8_t)KEY_NAME(k)[i] != s[i])
			return (-1);
	return (k);
}

/* Zeroes p and sets its type, and v to PROTO_VERSION for HELLO and WELCOME. */
void
packet_init(struct packet *p, enum packet_type type)
{
	memset(p, 0, offsetof(struct packet, fns));
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
	memset(p, 0, offsetof(struct packet, fns));
}

/* Packs a NUL-terminated string as a MessagePack str. */
void
proto_pack_str(msgpack_packer *pk, const char *s)
{
	size_t	len = strlen(s);

	msgpack_pack_str(pk, len);
	msgpack_pack_str_body(pk, s, len);
}

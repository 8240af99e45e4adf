/*
 * internal.h: what frame.c, packet.c, decode.c and encode.c share inside
 * proto/.
 *
 * packet.c owns the protocol's tables: every key as it goes on the wire,
 * and for each direction and packet type the keys that are required and
 * optional. decode.c reads frames against them in one walk; encode.c writes
 * frames from them. frame.c classifies MessagePack header bytes for both and
 * holds the structural check whose sentences every decoding failure of a
 * malformed body reports.
 */
#ifndef PATCHBAY_PROTO_INTERNAL_H
#define PATCHBAY_PROTO_INTERNAL_H

#include <stdint.h>

#include "proto/proto.h"

/* Every key of the protocol, in the order the encoder writes them. */
enum packet_key {
	K_T, K_V, K_ROLE, K_NAME, K_TOKEN, K_SESSION, K_HEARTBEAT_MS,
	K_MAX_FRAME, K_SERVER, K_FNS, K_CAPACITY, K_ID, K_FN, K_PAYLOAD,
	K_ATTEMPT, K_ATTEMPTS, K_TIMEOUT_MS, K_RETRIES, K_PRIORITY, K_DETACH,
	K_NOWAIT, K_ACK, K_DELAY_MS, K_RUN_AT, K_RETRY_ON_ERROR, K_BACKOFF_MS,
	K_UNIQUE, K_JOINED, K_META, K_STATUS, K_ERROR, K_N, K_REASON, K_SEQ, K_VERB, K_ARGS,
	K_OK, K_DATA, K_CODE, K_MSG, K_STATE, K_AGE_MS,
	K__MAX
};

#define KB(k)	(1ull << (k))

/* Required and optional keys of one packet type in one direction. */
struct packet_spec {
	uint64_t	required;	/* with K_T; 0: never sent this way */
	uint64_t	optional;
};

/* packet.c */

/* Each key as on the wire: a fixstr header byte, then the name. */
extern const char *const		packet_keys[K__MAX];
extern const struct packet_spec		packet_specs[2][PKT__MAX];
/* The PF_* bit of each optional key (0 for the others), and its inverse. */
extern const uint32_t			packet_key_flags[K__MAX];
extern const uint8_t			packet_flag_keys[32];

#define KEY_NAME(k)	(packet_keys[k] + 1)
#define KEY_LEN(k)	((size_t)((uint8_t)packet_keys[k][0] & 0x1f))

/* The key called s[0..len), or -1 for a key this protocol lacks. */
int	 packet_key_find(const uint8_t *s, size_t len);

/* decode.c */

/*
 * packet_decode() without the straight path it takes for the job path's
 * RUN and RESULT: what test-proto holds that path to.
 */
int	 packet_decode_general(const uint8_t *body, size_t len,
	    enum proto_dir dir, struct packet *ret, char *err);

/* encode.c */

/*
 * packet_encode_fn() without the straight path it takes for the job path's
 * RUN and RESULT: what test-proto holds that path to, byte for byte.
 */
int	 packet_encode_general(const struct packet *p, enum proto_dir dir,
	    void *(*reserve)(void *ctx, size_t n), void *ctx, size_t *ret_len);

/* names.c */

/*
 * The wire form of a name from packet_type_name(), job_status_name(),
 * proto_error_name() or proto_role_name(): a MessagePack fixstr (header
 * byte, then the name), as the names are stored.
 */
const char	*proto_wire_name(const char *name);

/* decode.c */

/*
 * Bounds the one MessagePack value at p (len bytes available) that sits in
 * a container at depth (the top map is 1): sets *ret_len to its size and
 * returns 0, or -EBADMSG when it is truncated or nests too deep.
 */
int	 dec_value_len(const uint8_t *p, size_t len, unsigned depth,
	    size_t *ret_len);

/* True when raw is exactly one map of str to str (a RUN's meta). */
bool	 dec_meta_ok(struct pbytes raw);

/* frame.c */

/* What a MessagePack header byte starts. */
enum frame_kind {
	FK_SCALAR,	/* nil, bool, int, float: fixed size */
	FK_STR,
	FK_BIN,
	FK_EXT,
	FK_ARRAY,
	FK_MAP,
	FK_RESERVED,	/* 0xc1, never used */
};

/* One decoded header: its kind, its size and what it announces. */
struct frame_item {
	enum frame_kind	 kind;
	uint8_t		 fixed;		/* header bytes after the first */
	uint8_t		 lenbytes;	/* of them, the length/count field */
	uint64_t	 n;		/* str/bin/ext bytes, or items */
};

/* Reads an n-byte big-endian unsigned integer (n <= 8). */
uint64_t frame_be(const uint8_t *p, unsigned n);

/*
 * Classifies header byte b: what it starts and how long its header is.
 * Inline: the decoder calls it for every value.
 */
static inline void
frame_classify(uint8_t b, struct frame_item *it)
{
	it->kind = FK_SCALAR;
	it->fixed = 0;
	it->lenbytes = 0;
	it->n = 0;

	if (b <= 0x7f || b >= 0xe0)
		return;				/* fixint */
	if (b <= 0x8f) {
		it->kind = FK_MAP;
		it->n = b & 0x0f;
		return;
	}
	if (b <= 0x9f) {
		it->kind = FK_ARRAY;
		it->n = b & 0x0f;
		return;
	}
	if (b <= 0xbf) {
		it->kind = FK_STR;
		it->n = b & 0x1f;
		return;
	}
	switch (b) {
	case 0xc0: case 0xc2: case 0xc3:
		return;
	case 0xc1:
		it->kind = FK_RESERVED;
		return;
	case 0xc4: case 0xc5: case 0xc6:	/* bin 8/16/32 */
		it->kind = FK_BIN;
		it->lenbytes = 1u << (b - 0xc4);
		it->fixed = it->lenbytes;
		return;
	case 0xc7: case 0xc8: case 0xc9:	/* ext 8/16/32, then a type */
		it->kind = FK_EXT;
		it->lenbytes = 1u << (b - 0xc7);
		it->fixed = it->lenbytes + 1;
		return;
	case 0xca:
		it->fixed = 4;
		return;
	case 0xcb:
		it->fixed = 8;
		return;
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		it->fixed = 1u << (b - 0xcc);
		return;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		it->fixed = 1u << (b - 0xd0);
		return;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		it->kind = FK_EXT;		/* fixext: a type, then data */
		it->fixed = 1;
		it->n = 1u << (b - 0xd4);
		return;
	case 0xd9: case 0xda: case 0xdb:
		it->kind = FK_STR;
		it->lenbytes = 1u << (b - 0xd9);
		it->fixed = it->lenbytes;
		return;
	case 0xdc: case 0xdd:
		it->kind = FK_ARRAY;
		it->lenbytes = 2u << (b - 0xdc);
		it->fixed = it->lenbytes;
		return;
	default:				/* 0xde, 0xdf */
		it->kind = FK_MAP;
		it->lenbytes = 2u << (b - 0xde);
		it->fixed = it->lenbytes;
		return;
	}
}

#endif /* PATCHBAY_PROTO_INTERNAL_H */

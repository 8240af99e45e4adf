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
	K_NOWAIT, K_STATUS, K_ERROR, K_N, K_REASON, K_SEQ, K_VERB, K_ARGS,
	K_OK, K_DATA, K_CODE, K_MSG,
	K__MAX
};

#define KB(k)	(1ull << (k))

/* Required and optional keys of one packet type in one direction. */
struct packet_spec {
	uint64_t	required;	/* with K_T; 0: never sent this way */
	uint64_t	optional;
};

/* Which optional key a PF_* bit stands for. */
struct packet_flag {
	uint32_t		flag;
	enum packet_key		key;
};

/* packet.c */

/* Each key as on the wire: a fixstr header byte, then the name. */
extern const char *const		packet_keys[K__MAX];
extern const struct packet_spec		packet_specs[2][PKT__MAX];
extern const struct packet_flag		packet_flags[];
extern const unsigned			packet_nflags;

#define KEY_NAME(k)	(packet_keys[k] + 1)
#define KEY_LEN(k)	((size_t)((uint8_t)packet_keys[k][0] & 0x1f))

/* The key called s[0..len), or -1 for a key this protocol lacks. */
int	 packet_key_find(const uint8_t *s, size_t len);

/* decode.c */

/*
 * Bounds the one MessagePack value at p (len bytes available) that sits in
 * a container at depth (the top map is 1): sets *ret_len to its size and
 * returns 0, or -EBADMSG when it is truncated or nests too deep.
 */
int	 dec_value_len(const uint8_t *p, size_t len, unsigned depth,
	    size_t *ret_len);

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

/* Classifies header byte b: what it starts and how long its header is. */
void	 frame_classify(uint8_t b, struct frame_item *it);

/* Reads an n-byte big-endian unsigned integer (n <= 8). */
uint64_t frame_be(const uint8_t *p, unsigned n);

#endif /* PATCHBAY_PROTO_INTERNAL_H */

/*
 * proto.h: the patchbay wire format, version 1 (docs/protocol.md).
 *
 * This folder owns framing (a 4-byte big-endian length, then one MessagePack
 * map), strict validation of untrusted bytes, and the encoding and decoding
 * of every packet. It does no I/O, no logging and never aborts on input: a
 * caller hands it bytes and gets a packet or a negative errno plus a human
 * sentence naming the problem.
 *
 * Decoding is one walk over the frame that allocates nothing and copies
 * nothing: strings and binaries in a decoded struct packet point into the
 * caller's frame buffer, which must outlive the packet. Only ADMIN args and
 * REPLY data, which are free-form, are also unpacked into msgpack_objects
 * that live in the packet's own zone until packet_clear().
 */
#ifndef PATCHBAY_PROTO_H
#define PATCHBAY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#define PROTO_VERSION		1
#define PROTO_HEADER_LEN	4		/* big-endian uint32 length */
#define PROTO_MAX_FRAME_DEFAULT	(1024 * 1024)	/* after HELLO */
#define PROTO_MAX_FRAME_HELLO	4096		/* until HELLO accepted */
#define PROTO_MAX_DEPTH		8		/* nesting limit */
#define PROTO_ID_LEN		16		/* route id: a binary UUID */
#define PROTO_MAX_FNS		256		/* REGISTER fns per packet */
/*
 * Bounds on what the broker walks in one frame from a peer, whatever its
 * size: keys of the top map, and items of all its arrays and maps (a
 * REGISTER's 256 names or an ADMIN spawn's argv fit many times over).
 */
#define PROTO_MAX_KEYS		64
#define PROTO_MAX_ITEMS		8192
#define PROTO_MAX_FN_LEN	255		/* bytes in a function name */
#define PROTO_MAX_CAPACITY	65535
#define PROTO_PRIORITY_MIN	(-100)
#define PROTO_PRIORITY_MAX	100
/*
 * A RUN's meta: at most this many keys, and this many bytes of keys and
 * values together (headers not counted). The map itself then takes at most
 * PROTO_MAX_META_RAW bytes however it is encoded (a map32 header, str32
 * headers), which is what a job stores and the library builds on its stack.
 */
#define PROTO_MAX_META		32
#define PROTO_MAX_META_BYTES	4096
#define PROTO_MAX_META_RAW	(5 + 2 * PROTO_MAX_META * 5 + \
				    PROTO_MAX_META_BYTES)
#define PROTO_TRACEPARENT_LEN	55	/* a version 00 traceparent */
#define PROTO_MAX_TRACESTATE	512	/* bytes of a tracestate */
#define PROTO_ERRLEN		256		/* size of an error sentence */
/*
 * The broker forwards a packet with a few keys of its own (attempt,
 * attempts, timeout_ms), so peers accept frames from it this much larger
 * than max_frame.
 */
#define PROTO_FRAME_SLACK	64

/* Packet types, the `t` key. */
enum packet_type {
	PKT_NONE = 0,
	PKT_HELLO,
	PKT_WELCOME,
	PKT_REGISTER,
	PKT_RUN,
	PKT_CANCEL,
	PKT_PROGRESS,
	PKT_RESULT,
	PKT_PING,
	PKT_PONG,
	PKT_BYE,
	PKT_ADMIN,
	PKT_REPLY,
	PKT_ERROR,
	PKT_ACCEPTED,		/* a detached RUN with ack: taken */
	PKT_STATUS,		/* where is job id? */
	PKT_JOB,		/* STATUS's answer */
	PKT__MAX
};

/*
 * Which way a packet travels. The same type (RUN, CANCEL, PROGRESS, RESULT)
 * has different required keys towards the broker and from it, so decoding
 * needs to know.
 */
enum proto_dir {
	PROTO_TO_BROKER,	/* client, worker or admin -> broker */
	PROTO_FROM_BROKER,	/* broker -> client, worker or admin */
};

/* HELLO roles. */
enum proto_role {
	ROLE_NONE = 0,
	ROLE_CLIENT,
	ROLE_WORKER,
	ROLE_ADMIN,
};

/* Terminal statuses of a RESULT. */
enum job_status {
	JOB_OK = 0,
	JOB_ERROR,
	JOB_CANCELLED,
	JOB_TIMEOUT,
	JOB_WORKER_LOST,
	JOB_NO_WORKER,
	JOB_QUEUE_FULL,
	JOB_BAD_REQUEST,
	JOB_DUPLICATE_ID,
	JOB_SHUTTING_DOWN,
	JOB_STORE_FAILED,	/* the broker could not store a detached job */
	JOB__MAX
};

/* ERROR codes. */
enum proto_error {
	PERR_BAD_FRAME = 0,
	PERR_FRAME_TOO_LARGE,
	PERR_BAD_PACKET,
	PERR_UNSUPPORTED_VERSION,
	PERR_AUTH_FAILED,
	PERR_NOT_ALLOWED,
	PERR_NOT_FOUND,
	PERR_TOO_MANY_CONNECTIONS,
	PERR_HELLO_TIMEOUT,
	PERR_SLOW_CONSUMER,
	PERR_SHUTTING_DOWN,
	PERR__MAX
};

/* ADMIN verbs, the `verb` key (docs/cli.md lists their arguments). */
enum admin_verb {
	VERB_STATUS = 0,
	VERB_WORKERS,
	VERB_FUNCTIONS,
	VERB_PS,
	VERB_SPAWN,
	VERB_STOP,
	VERB_RESTART,
	VERB_PAUSE,
	VERB_RESUME,
	VERB_SCALE,
	VERB_RELOAD,
	VERB_SHUTDOWN,
	VERB_STATS,
	VERB_COUNT,
	VERB_JOBS,
	VERB_QUEUES,
	VERB_DRAIN,
	VERB_HEALTH,
	VERB_CANCEL,
	VERB_DEAD,
	VERB_KICK,
	VERB_DROP,
	VERB__MAX
};

/*
 * Kinds of message, for the broker's statistics: requests (RUN, CANCEL),
 * results (RESULT), progress (PROGRESS), errors (ERROR), heartbeats (PING,
 * PONG), admin (ADMIN, REPLY) and control (HELLO, WELCOME, REGISTER, BYE).
 */
enum msg_kind {
	MSG_REQUESTS = 0,
	MSG_RESULTS,
	MSG_PROGRESS,
	MSG_ERRORS,
	MSG_HEARTBEATS,
	MSG_ADMIN,
	MSG_CONTROL,
	MSG__MAX
};

/* Messages and bytes one way or the other, over one or more connections. */
struct msg_stats {
	uint64_t	 sent[MSG__MAX];	/* by kind, from the broker */
	uint64_t	 received[MSG__MAX];	/* by kind, to the broker */
	uint64_t	 bytes_sent;		/* frames, headers included */
	uint64_t	 bytes_received;
	uint64_t	 first_ms;		/* wall clock, ms since the
						   epoch; 0: none yet */
	uint64_t	 last_ms;
};

/* A borrowed byte range: not NUL-terminated, not owned. */
struct pbytes {
	const uint8_t	*ptr;
	uint32_t	 len;
};

/*
 * One decoded (or to-be-encoded) packet. Only the fields of its type are
 * meaningful; `has` says which optional keys were present (PF_* bits).
 * Owned by the caller; strings and bins are borrowed (see file comment).
 */
struct packet {
	enum packet_type	 type;
	uint32_t		 has;		/* PF_* bits of optional keys */

	/* HELLO, WELCOME */
	uint64_t		 version;	/* v */
	enum proto_role		 role;
	struct pbytes		 name;		/* HELLO name (PF_NAME) */
	struct pbytes		 token;		/* HELLO token (PF_TOKEN) */
	uint8_t			 session[PROTO_ID_LEN];
	uint64_t		 heartbeat_ms;
	uint64_t		 max_frame;
	struct pbytes		 server;

	/* REGISTER (the names are fns[], at the end) */
	uint32_t		 nfns;
	uint32_t		 capacity;

	/* RUN, CANCEL, PROGRESS, RESULT (both directions) */
	uint8_t			 id[PROTO_ID_LEN];
	struct pbytes		 fn;
	struct pbytes		 payload;	/* PF_PAYLOAD */
	uint64_t		 attempt;	/* worker side */
	uint64_t		 attempts;	/* RESULT to client */
	uint64_t		 timeout_ms;	/* PF_TIMEOUT */
	uint64_t		 retries;	/* PF_RETRIES */
	int64_t			 priority;	/* PF_PRIORITY */
	bool			 detach;	/* PF_DETACH */
	bool			 nowait;	/* PF_NOWAIT */
	bool			 ack;		/* PF_ACK: answer a detached RUN */
	/*
	 * RUN meta (PF_META): the whole encoded map, a map of str to str as
	 * the decoder checked it; spliced in verbatim by the encoder. Its
	 * limits are meta_check()'s, not the decoder's.
	 */
	struct pbytes		 meta;
	enum job_status		 status;
	struct pbytes		 error;		/* RESULT error (PF_ERROR) */

	/* PING, PONG */
	uint64_t		 n;

	/* BYE */
	struct pbytes		 reason;

	/* ADMIN, REPLY */
	uint64_t		 seq;
	struct pbytes		 verb;
	bool			 ok;
	/* Decoded: point into the packet's zone. NULL when absent. */
	const msgpack_object	*args;		/* ADMIN args (a map) */
	const msgpack_object	*data;		/* REPLY data (any) */
	/* Encoding: pre-packed MessagePack spliced in verbatim when set. */
	struct pbytes		 args_raw;
	struct pbytes		 data_raw;

	/* ERROR: code, msg, and id when PF_ID is set (NOT_FOUND). */
	enum proto_error	 code;
	struct pbytes		 msg;

	/* Private: the zone ADMIN args / REPLY data were unpacked into. */
	msgpack_zone		*zone;

	/*
	 * REGISTER's function names, last: only the first nfns are set, and
	 * packet_init() and packet_decode() do not spend time zeroing it.
	 */
	struct pbytes		 fns[PROTO_MAX_FNS];

	/*
	 * Keys few packets carry, after fns so that packet_init() and
	 * packet_decode() do not zero them either: each is set, and may be
	 * read, only when its PF_* bit is in has (JOB's state: always, in a
	 * JOB).
	 */
	uint64_t		 delay_ms;	/* PF_DELAY: due this much later */
	uint64_t		 run_at;	/* PF_RUN_AT: due then (Unix ms) */
	uint64_t		 retry_on_error; /* PF_RETRY_ON_ERROR */
	uint64_t		 backoff_ms;	/* PF_BACKOFF: the first retry's */
	struct pbytes		 unique;	/* PF_UNIQUE: coalescing key */
	uint8_t			 joined[PROTO_ID_LEN]; /* PF_JOINED: ACCEPTED
						   as this live job */
	struct pbytes		 state;		/* JOB: "queued", ..., "unknown" */
	uint64_t		 age_ms;	/* JOB: PF_AGE */
};

/* Optional-key presence bits for packet.has. */
#define PF_NAME		(1u << 0)
#define PF_TOKEN	(1u << 1)
#define PF_PAYLOAD	(1u << 2)
#define PF_TIMEOUT	(1u << 3)
#define PF_RETRIES	(1u << 4)
#define PF_PRIORITY	(1u << 5)
#define PF_DETACH	(1u << 6)
#define PF_NOWAIT	(1u << 7)
#define PF_ERROR	(1u << 8)
#define PF_ARGS		(1u << 9)
#define PF_DATA		(1u << 10)
#define PF_ID		(1u << 11)	/* ERROR carries an id */
#define PF_META		(1u << 12)
#define PF_ACK		(1u << 13)
#define PF_DELAY	(1u << 14)
#define PF_RUN_AT	(1u << 15)
#define PF_FN		(1u << 16)	/* JOB: fn, attempts, age_ms and */
#define PF_ATTEMPTS	(1u << 17)	/* status are optional there */
#define PF_AGE		(1u << 18)
#define PF_STATUS	(1u << 19)
#define PF_RETRY_ON_ERROR (1u << 20)
#define PF_BACKOFF	(1u << 21)
#define PF_UNIQUE	(1u << 22)
#define PF_JOINED	(1u << 23)
#define PF_ALL		((PF_JOINED << 1) - 1)	/* every bit above */

/* frame.c */

/*
 * Reads the frame header at the start of buf. Returns 0 and sets
 * *ret_len to the body length when a whole header is there and
 * 1 <= length <= max_frame; -EAGAIN when fewer than 4 bytes are available;
 * -EMSGSIZE when the length exceeds max_frame; -EBADMSG for length 0.
 */
int	 frame_header(const uint8_t *buf, size_t avail, uint32_t max_frame,
	    uint32_t *ret_len);

/* The length a whole 4-byte header announces, unchecked (for messages). */
uint32_t frame_header_len(const uint8_t *hdr);

/* Writes a body length as the 4-byte big-endian frame header at hdr. */
void	 frame_put_header(uint8_t *hdr, uint32_t len);

/*
 * Walks one MessagePack body without allocating: exactly one map, every
 * array/map count no larger than the bytes left, nesting <= PROTO_MAX_DEPTH,
 * no reserved byte (0xc1), no trailing bytes. Returns 0 or -EBADMSG with a
 * sentence in err (PROTO_ERRLEN bytes).
 */
int	 frame_check(const uint8_t *body, size_t len, char *err);

/*
 * Writes a sentence into err (PROTO_ERRLEN bytes; may be NULL) and returns
 * -EBADMSG: how every decoding failure in proto/ reports itself.
 */
int	 proto_fail(char *err, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* packet.c */

/* Zeroes a packet for filling in before packet_encode(). */
void	 packet_init(struct packet *p, enum packet_type type);

/* Frees what decoding attached to p (its zone); p may be reused after. */
void	 packet_clear(struct packet *p);

/*
 * Decodes one frame body (without its 4-byte header) travelling in
 * direction dir, in one walk that checks everything frame_check() does.
 * On success fills *ret (which borrows from body) and returns 0. On
 * failure *ret is cleared, a sentence naming the problem goes into err,
 * and the return says whose fault it is: -EBADMSG for a malformed body
 * (what frame_check() refuses: an ERROR BAD_FRAME), -EPROTO for a
 * well-formed body that is not a valid packet (wrong type for a known key,
 * a value out of range, a missing required key, unknown `t`: BAD_PACKET),
 * or -ENOMEM (only for ADMIN args and REPLY data).
 */
int	 packet_decode(const uint8_t *body, size_t len, enum proto_dir dir,
	    struct packet *ret, char *err);

/*
 * Appends one whole frame (header and body) for p travelling in dir to sb.
 * Returns 0, -EINVAL for a packet missing what its type requires,
 * -EMSGSIZE when the body would exceed UINT32_MAX, or -ENOMEM. On failure
 * sb is left as it was.
 */
int	 packet_encode(const struct packet *p, enum proto_dir dir,
	    msgpack_sbuffer *sb);

/*
 * Encodes p travelling in dir as one whole frame into memory the caller
 * provides: reserve(ctx, n) is called once with an upper bound of the
 * frame's size and returns where at least n bytes may be written (or NULL:
 * -ENOMEM); the frame's real size goes to *ret_len, and the caller keeps
 * that many bytes. Nothing is reserved when p cannot be encoded. Returns
 * as packet_encode().
 */
int	 packet_encode_fn(const struct packet *p, enum proto_dir dir,
	    void *(*reserve)(void *ctx, size_t n), void *ctx, size_t *ret_len);

/* Packs a NUL-terminated string as a MessagePack str. */
void	 proto_pack_str(msgpack_packer *pk, const char *s);

/*
 * A msgpack_packer writer for a msgpack_sbuffer, as msgpack_sbuffer_write()
 * but without its assert (libpatchbay never aborts): 0, or -1 on ENOMEM.
 */
int	 proto_sbuffer_write(void *sbuf, const char *buf, size_t len);

/* names.c */

/* Wire names ("RUN", "OK", "NOT_FOUND", "worker"...) and their inverses. */
const char	*packet_type_name(enum packet_type);
const char	*job_status_name(enum job_status);
const char	*proto_error_name(enum proto_error);
const char	*proto_role_name(enum proto_role);
/* Return -1 when the name is unknown. */
int		 job_status_from_name(const char *s, size_t len);
int		 proto_role_from_name(const char *s, size_t len);
int		 packet_type_from_name(const char *s, size_t len);

/* stats.c */

/* The kind of each packet type; msg_kind_of() reads it. */
extern const uint8_t	msg_kinds[PKT__MAX];

/* The kind of a packet type (MSG_REQUESTS for RUN): once per message. */
static inline enum msg_kind
msg_kind_of(enum packet_type type)
{
	return (unsigned)type < PKT__MAX ? (enum msg_kind)msg_kinds[type] :
	    MSG_CONTROL;
}
/* "requests", "results", ... */
const char	*msg_kind_name(enum msg_kind kind);
/* Adds src to dst: counts add up, times widen. */
void		 msg_stats_add(struct msg_stats *dst,
		    const struct msg_stats *src);
/* Messages sent plus received. */
uint64_t	 msg_stats_total(const struct msg_stats *s);

/* An ADMIN verb's name ("status") and one line saying what it does. */
const char	*admin_verb_name(enum admin_verb);
const char	*admin_verb_help(enum admin_verb);
/* The verb called s[0..len), or -1. */
int		 admin_verb_from_name(const char *s, size_t len);

/* json.c */

/* proto_json_write() flags. */
#define PROTO_JSON_PRETTY	0x1	/* two-space indents, one item a line */

/*
 * Writes o as JSON to f: strings escaped (invalid UTF-8 as U+FFFD),
 * numbers as numbers (non-finite floats as null), a 16-byte binary as a
 * UUID string and other binaries as base64 strings, a map key that is not
 * a string as the text of its JSON. No newline at the end. NULL o is null.
 */
void	 proto_json_write(FILE *f, const msgpack_object *o, int flags);

/* Writes s (n bytes) as a JSON string, quotes included. */
void	 proto_json_str(FILE *f, const char *s, size_t n);

/* Writes binary data as text: a lowercase UUID for 16 bytes, else base64. */
void	 proto_bin_text(FILE *f, const void *data, size_t n);

/* Writes binary data as padded base64, whatever its length. */
void	 proto_base64(FILE *f, const void *data, size_t n);

/* The length of the valid UTF-8 sequence at s (n bytes left, n > 0), or 0. */
size_t	 proto_utf8_len(const uint8_t *s, size_t n);

/* meta.c */

/*
 * Checks a RUN's meta (a map of str to str, as packet_decode() leaves it)
 * against the protocol's limits: at most PROTO_MAX_META keys and
 * PROTO_MAX_META_BYTES bytes of keys and values, each key non-empty, made
 * of A-Z a-z 0-9 _ . - and present once, each value UTF-8 without NUL, a
 * `traceparent` in the W3C format and a `tracestate` only with one.
 * Returns 0, or -EINVAL with a sentence naming the problem in err
 * (PROTO_ERRLEN bytes; may be NULL): what the broker answers BAD_REQUEST.
 */
int	 meta_check(struct pbytes raw, char *err);

/* True when s (len bytes) is a valid W3C traceparent. */
bool	 meta_traceparent_ok(const uint8_t *s, size_t len);

/*
 * Walks the entries of a meta map that packet_decode() or meta_check()
 * accepted: meta_iter_init(), then meta_iter_next() until it returns false.
 * The key and value point into raw.
 */
struct meta_iter {
	const uint8_t	*p;
	const uint8_t	*end;
	uint32_t	 left;		/* entries not read yet */
};
void	 meta_iter_init(struct meta_iter *it, struct pbytes raw);
bool	 meta_iter_next(struct meta_iter *it, struct pbytes *ret_key,
	    struct pbytes *ret_value);

/* The number of entries of a meta map (0 for an empty or absent one). */
uint32_t meta_count(struct pbytes raw);

/*
 * The value of key in a meta map, or false when it has none. Linear: a
 * map holds at most PROTO_MAX_META keys.
 */
bool	 meta_find(struct pbytes raw, const char *key,
	    struct pbytes *ret_value);

/*
 * A meta map built from key/value strings into its own buffer, for
 * senders: meta_buf_init(), meta_buf_add() for each entry, then
 * meta_buf_finish(), which encodes the map header and checks the whole
 * with meta_check(). Entries beyond what meta may hold are counted, not
 * stored, so that the check names the limit they break.
 */
struct meta_buf {
	uint32_t	 n;		/* entries added */
	size_t		 bytes;		/* of their keys and values */
	size_t		 len;		/* of buf used, header room included */
	uint8_t		 buf[3 + PROTO_MAX_META_RAW];
};
void	 meta_buf_init(struct meta_buf *mb);
void	 meta_buf_add(struct meta_buf *mb, const char *key, size_t klen,
	    const char *value, size_t vlen);
/* True when an entry called key was added (and stored). */
bool	 meta_buf_has(const struct meta_buf *mb, const char *key);
/*
 * Ends the map: sets *ret to its bytes (in mb) and returns 0, or -EINVAL
 * with meta_check()'s sentence in err. An empty map is valid.
 */
int	 meta_buf_finish(struct meta_buf *mb, struct pbytes *ret, char *err);

#endif /* PATCHBAY_PROTO_H */

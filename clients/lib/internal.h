/*
 * internal.h: what client.c and worker.c share inside libpatchbay.
 *
 * struct bconn is one connection to the broker, driven with poll(2) and no
 * event library: a non-blocking socket, an input buffer that frames are
 * decoded from in place, and an output msgpack_sbuffer that sends append to.
 * common.c owns the mechanics every role needs: the HELLO/WELCOME
 * handshake, incremental frame reading, flushing without ever refusing to
 * read (a broker writing to us while we write to it cannot deadlock us),
 * PING/PONG, liveness, and recording ERROR and BYE. client.c and worker.c
 * own the role's packets. None of these names leave the library: the linker
 * version script exports pb_* only.
 *
 * Out of memory: nothing in the library may exit or abort, so every
 * allocation is checked and its failure returned as -ENOMEM with the object
 * still usable. uthash is included here only, in its non-fatal mode (see
 * COMMON_HASH_ADD); a frame that cannot be decoded or handled for want of
 * memory stays in the input buffer and is handled again by the next call.
 */
#ifndef PATCHBAY_LIB_INTERNAL_H
#define PATCHBAY_LIB_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "patchbay.h"
#include "proto/proto.h"
#include "util/util.h"

/*
 * uthash's default answer to a failed allocation is exit(-1). In its
 * non-fatal mode a failed HASH_ADD rolls the table back, leaves the element
 * out of it (elt->hh.tbl == NULL) and calls uthash_nonfatal_oom(elt) once,
 * which records the failure for COMMON_HASH_ADD(). Both modes must not be
 * mixed in one file, hence the include here and the check.
 */
#ifdef UTHASH_H
#error "include clients/lib/internal.h before uthash.h"
#endif
#define HASH_NONFATAL_OOM	1
#define uthash_nonfatal_oom(elt)	((void)(elt), common_hash_oom = true)
/* util/'s hash: cheaper than uthash's Jenkins hash for 16-byte ids. */
#define HASH_FUNCTION(keyptr, keylen, hashv)				\
	((hashv) = hash_bytes((keyptr), (size_t)(keylen), 0))
#include <uthash.h>

/* Set by uthash_nonfatal_oom(); read by COMMON_HASH_ADD(). */
extern _Thread_local bool	common_hash_oom;

/*
 * HASH_ADD(hh, head, field, keylen, add) that sets ret to 0, or to -ENOMEM
 * when the table could not grow (add is then not in the table; the caller
 * still owns it and must unwind).
 */
#define COMMON_HASH_ADD(hh, head, field, keylen, add, ret) do {	\
	common_hash_oom = false;					\
	HASH_ADD(hh, head, field, keylen, add);				\
	(ret) = common_hash_oom ? -ENOMEM : 0;				\
} while (0)

#define COMMON_READ_CHUNK	(64 * 1024)	/* bytes asked of one read(2) */
#define COMMON_CORK_MS		1	/* longest a batch holds its output */
#define COMMON_CORK_BYTES	(64 * 1024)	/* most a cork holds */

/*
 * An input buffer. Its link is part of the allocation so that retiring it
 * while decoded packets still point into it needs no memory.
 */
struct bconn_inbuf {
	struct bconn_inbuf	*next;		/* on bconn.retired */
	uint8_t			 data[];
};

/*
 * One connection to the broker, embedded in a pb_client or pb_worker (its
 * owner). fd is -1 when closed. Decoded packets borrow from in[]; while
 * pinned is non-zero the buffer is never moved or freed, only retired.
 */
struct bconn {
	int			 fd;
	struct ssl_st		*ssl;		/* tls: endpoints, else NULL */
	bool			 use_send;	/* a socket: send(MSG_NOSIGNAL) */
	bool			 dead;		/* EOF, error or protocol error */
	int			 dead_err;	/* -ENOTCONN or -EPROTO */
	bool			 got_bye;

	struct bconn_inbuf	*in;		/* NULL until the first read */
	size_t			 in_start;	/* first unconsumed byte */
	size_t			 in_end;	/* one past the last byte read */
	size_t			 in_cap;	/* bytes of in->data */
	unsigned		 pinned;
	struct bconn_inbuf	*retired;

	msgpack_sbuffer		 out;
	size_t			 out_off;	/* bytes of out already written */
	unsigned		 cork;		/* >0: sends wait for uncork */
	uint64_t		 cork_since;	/* ms the held output began */

	uint32_t		 max_frame;
	uint64_t		 heartbeat_ms;	/* 0: no liveness checks */
	uint64_t		 last_rx;	/* ms of the last byte read */
	uint64_t		 writes;	/* successful writes, ever */
	uint64_t		 ping_sent;	/* ms of our unanswered PING, or 0 */
	uint64_t		 ping_n;	/* last PING n we sent */
	uint64_t		 pong_n;	/* last PONG n received */

	/* Released while common_wait() sleeps in poll(2), if not NULL. */
	pthread_mutex_t		*wait_lock;

	int			 err_code;	/* last ERROR code, or -1 */
	char			 why[PROTO_ERRLEN];	/* why it died */
	char			 bye[PROTO_ERRLEN];	/* BYE reason */
	char			 err[PROTO_ERRLEN];	/* last ERROR msg */
};

/*
 * Handles one role-specific packet: returns 0 to go on, 1 to stop after
 * it, or a negative errno to stop. -ENOMEM means it did nothing at all (no
 * callback ran, nothing was sent or changed): the frame is then kept and
 * handled again by the next common_process().
 */
typedef int (*bconn_packet_fn)(struct bconn *b, const struct packet *p,
    void *arg);

/* tls.c */

struct ssl_st;

/*
 * Starts TLS on b->fd, a socket connected to ep (a tls: endpoint), with
 * opts' files (else $PATCHBAY_TLS_CA, _CERT, _KEY), and checks the
 * broker's certificate and name. 0 with b->ssl set, or a negative errno
 * with the reason recorded for pb_client_last_error(NULL).
 */
int		 tls_start(struct bconn *b, const struct endpoint *ep,
		    const struct pb_options *opts, uint64_t deadline);
/* read(2) and write(2) over b->ssl, with their return conventions. */
ssize_t		 tls_read(struct bconn *b, void *buf, size_t len);
ssize_t		 tls_write(struct bconn *b, const void *buf, size_t len);
/* True when decrypted bytes wait inside OpenSSL (poll(2) cannot tell). */
bool		 tls_pending(const struct bconn *b);
/* Frees the session, if any. */
void		 tls_end(struct bconn *b);

/* common.c */

/* The thread's last connect failure, for pb_client_last_error(NULL). */
void		 common_set_connect_error(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2)));
const char	*common_connect_error(void);

/* Prepares b for common_open() or common_adopt(). */
void		 common_init(struct bconn *b);

/*
 * Closes the socket and forgets the connection's state, ready for another
 * common_open(); safe while packets are being handled (pinned, corked).
 */
void		 common_reset(struct bconn *b);

/* Frees everything b holds; b must not be in use (not pinned). */
void		 common_clear(struct bconn *b);

/* Connects to endpoint (NULL: the default) and does the handshake. */
int		 common_open(struct bconn *b, const char *endpoint,
		    enum proto_role role, const struct pb_options *opts);

/*
 * The brokers of endpoint (a list; NULL: the default endpoint, which may
 * be one) into *ret, NULL-terminated, not empty. 0, or -EINVAL,
 * -ENAMETOOLONG or -ENOMEM with the reason for pb_client_last_error(NULL).
 */
int		 common_endpoints(const char *endpoint, char ***ret);

/*
 * Tries the brokers of a list (NULL-terminated, not empty) in order from
 * eps[start], wrapping around, until one takes b. 0 with *ret_at set, or
 * the first refusal's error (else the first failure's), with a sentence
 * naming every failure for pb_client_last_error(NULL).
 */
int		 common_open_any(struct bconn *b, char *const *eps,
		    size_t start, enum proto_role role,
		    const struct pb_options *opts, size_t *ret_at);

/* Takes ownership of an inherited descriptor and does the handshake. */
int		 common_adopt(struct bconn *b, int fd, enum proto_role role,
		    const struct pb_options *opts);

/* Marks b dead with a reason, shutting the socket down; first reason wins. */
void		 common_kill(struct bconn *b, int err, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

/*
 * Encodes p onto the output and writes it unless corked. Returns 0 (the
 * frame is queued, and written unless corked or out of memory to read
 * meanwhile: the next wait writes the rest), -ENOTCONN, or with nothing
 * queued -ENOMEM, -EMSGSIZE (larger than the broker's max_frame) or -EINVAL.
 */
int		 common_send(struct bconn *b, const struct packet *p);

/*
 * Writes what is queued now, even while corked (PROGRESS that must not
 * wait for the end of a batch). 0 or -ENOTCONN; what a blocked write could
 * not finish for want of memory to read meanwhile goes out with the next
 * wait.
 */
int		 common_push(struct bconn *b);

/*
 * Decodes and handles every complete frame in the input buffer: PING,
 * PONG, ERROR and BYE here, each packet then to fn. Output is held (corked)
 * meanwhile and written at the end. Returns the number of frames handled,
 * or a negative errno from fn or for a protocol error (b is then dead), or
 * -ENOMEM with the frame that could not be decoded or handled kept.
 */
int		 common_process(struct bconn *b, bconn_packet_fn fn, void *arg);

/*
 * Waits up to timeout_ms (-1: no bound) for input, reads once, and keeps
 * the connection alive (PINGs an idle broker, gives up on a silent one).
 * Returns 0, -EINTR when a signal cut the wait short, -ENOMEM when the read
 * or the PING found no memory (nothing is lost; call again), or the dead
 * connection's error.
 */
int		 common_wait(struct bconn *b, int timeout_ms);

/*
 * When b's liveness needs a look (a PING due, or an unanswered one given
 * up on), in clock_now_ms() terms; 0 when it has no heartbeat.
 */
uint64_t	 common_liveness_due(const struct bconn *b);

/* True when the input buffer holds at least one whole frame. */
bool		 common_has_frame(const struct bconn *b);

/* Milliseconds until deadline (0 when past; -1 when deadline is 0). */
int		 common_ms_left(uint64_t deadline);

/* A wait's bound for a call's timeout_ms (-1: none, 0: poll) and deadline. */
int		 common_wait_ms(int timeout_ms, uint64_t deadline);

/* Sends a PING with a fresh n and returns that n, or a negative errno. */
int64_t		 common_ping(struct bconn *b);

/* meta.c */

/*
 * Builds the RUN's meta map from opts (its meta entries, and a new
 * traceparent when opts->trace and they have none) into mb, and points
 * *ret at it. Returns 0, or -EINVAL (or the random source's errno) with a
 * sentence in err (PROTO_ERRLEN bytes): what the broker would refuse is
 * refused here, with its words.
 */
int		 meta_build(const struct pb_run_options *opts,
		    struct meta_buf *mb, struct pbytes *ret, char *err);

/*
 * The bytes meta_unpack() needs for a RUN's meta map (0 for none or an
 * empty one), and the unpacking into mem (that many bytes, aligned for a
 * pointer): 2 * n pointers, key then value for each entry, then the
 * NUL-terminated strings they point to. Returns n.
 */
size_t		 meta_unpack_size(struct pbytes raw);
uint32_t	 meta_unpack(struct pbytes raw, void *mem);

/* admin.c */

/* A REPLY to one ADMIN, owned by the caller: admin_reply_clear(). */
struct admin_reply {
	bool			 ok;		/* false: refused */
	char			*error;		/* the refusal, or NULL */
	msgpack_unpacked	 data;		/* valid when has_data */
	bool			 has_data;
	char			*raw;		/* the bytes data points into */
};

/*
 * Connects to endpoint (NULL: the default) as an admin, sends ADMIN
 * {verb, args} (args_len bytes of a packed msgpack map) and waits up to
 * timeout_ms for its REPLY. Returns 0 with *ret filled (accepted or
 * refused), or a negative errno with a sentence in err (PROTO_ERRLEN):
 * -EINVAL for a bad endpoint, the connect error, -EPERM when the broker
 * answered ERROR, -ESHUTDOWN after BYE, -ETIMEDOUT, -ENOMEM.
 */
int	 admin_call(const char *endpoint, const struct pb_options *opts,
	    const char *verb, const void *args, size_t args_len,
	    uint64_t timeout_ms, struct admin_reply *ret, char *err);

/* Frees what r holds (it may be cleared again). */
void	 admin_reply_clear(struct admin_reply *r);

#endif /* PATCHBAY_LIB_INTERNAL_H */

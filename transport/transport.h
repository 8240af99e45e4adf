/*
 * transport.h: listeners and per-peer connections.
 *
 * Endpoints ("unix:PATH", "tcp:HOST:PORT", "tls:HOST:PORT") are parsed by
 * util/, which the client library shares. listener.c and conn.c are the
 * broker's side: libevent listeners, one struct conn per peer with its
 * own buffering (and OpenSSL for TLS), an incremental frame reader, an
 * output cap and the peer's credentials. Decoded packets go up through
 * conn_ops; nothing here knows about roles or jobs.
 */
#ifndef PATCHBAY_TRANSPORT_H
#define PATCHBAY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/proto.h"
#include "util/util.h"

/* listener.c, conn.c: broker side, need libevent. */

struct event_base;
struct listener;
struct conn;
struct ssl_ctx_st;	/* OpenSSL's SSL_CTX */
struct ssl_st;		/* OpenSSL's SSL */

/* Called for each accepted descriptor (non-blocking, close-on-exec). */
typedef void (*listener_accept_cb)(struct listener *l, int fd,
    const struct endpoint *ep, void *arg);

/* Who may reach a unix socket: its mode, and its group (-1: unchanged). */
struct listener_perms {
	unsigned	 mode;		/* 0600 by default */
	long		 gid;
};

/*
 * Binds and listens on ep. For unix: creates the parent directory when
 * missing (0700, plus search permission for the group or others when
 * perms gives them access to the socket, and perms' group), replaces a
 * stale socket file (nobody answers a connect), refuses a live one with
 * -EADDRINUSE, and sets the socket's mode and group from perms (NULL:
 * 0600). For tcp: SO_REUSEADDR, IPv4 or IPv6 by the host's form; port 0
 * picks a free port (see listener_endpoint()). On failure returns a
 * negative errno with a sentence in err naming the endpoint.
 */
int	 listener_new(struct event_base *base, const struct endpoint *ep,
	    const struct listener_perms *perms, listener_accept_cb cb,
	    void *arg, struct listener **ret, char *err);

/* Closes the socket and, for unix, removes the socket file. NULL ok. */
void	 listener_free(struct listener *l);

/* The bound endpoint (with the real port when 0 was asked). */
const struct endpoint	*listener_endpoint(const struct listener *l);

/* Stops or resumes accepting (EMFILE back-off, shutdown). */
void	 listener_set_enabled(struct listener *l, bool enabled);

/* What a connection reports upward. */
struct conn_ops {
	/* A whole, decoded packet arrived; p is valid during the call. */
	void	(*packet)(struct conn *c, const struct packet *p, void *arg);
	/*
	 * The connection is finished (EOF, error, or closed by the broker after
	 * its output drained). Called once; the conn is freed after it returns.
	 */
	void	(*closed)(struct conn *c, const char *why, void *arg);
};

/* Peer identity, as far as the socket tells it. */
struct conn_peer {
	bool	 is_unix;
	bool	 is_tls;	/* made by conn_new_tls() */
	bool	 has_cred;	/* SO_PEERCRED worked */
	pid_t	 pid;
	uid_t	 uid;
	gid_t	 gid;
	gid_t	 groups[16];	/* supplementary groups (SO_PEERGROUPS) */
	int	 ngroups;	/* -1: more than fit, or unknown */
	char	 addr[128];	/* "unix" or "127.0.0.1:53122" */
};

/*
 * Wraps an accepted or inherited descriptor (takes ownership of fd).
 * max_frame starts at PROTO_MAX_FRAME_HELLO; out_cap bounds the pending
 * output (0: 16 MiB): a packet that would take it past that drops the
 * peer as SLOW_CONSUMER (closed with the reason "slow consumer: ...").
 * Returns NULL on ENOMEM (fd closed).
 */
struct conn	*conn_new(struct event_base *base, int fd, uint64_t id,
		    const struct conn_ops *ops, void *arg, size_t out_cap);

/*
 * The same over TLS, as the server, with a new session of ctx: the
 * handshake runs before any frame, within the same deadlines (the broker's
 * hello timeout covers a peer that never finishes it). A failed handshake
 * closes the conn with a reason that says why ("TLS handshake failed:
 * wrong version number" when the peer speaks something else). ctx may be
 * freed or replaced afterwards (OpenSSL counts its references).
 */
struct conn	*conn_new_tls(struct event_base *base, int fd, uint64_t id,
		    const struct conn_ops *ops, void *arg, size_t out_cap,
		    struct ssl_ctx_st *ctx);

/* The TLS session of c (its peer's certificate), or NULL when plain. */
struct ssl_st	*conn_tls(const struct conn *c);

/* Frees a connection now; never call from inside its own callbacks. */
void	 conn_free(struct conn *c);

/*
 * Encodes p (travelling from the broker) onto the output. Returns 0,
 * -EPIPE when the conn is closing, or -ENOBUFS when it would take the
 * output past its cap (the packet is dropped and the conn is closed with
 * ERROR SLOW_CONSUMER, queued behind what the peer has not read).
 */
int	 conn_send(struct conn *c, const struct packet *p);

/*
 * Sends ERROR{code, msg[, id]}; id may be NULL. Counted against the output
 * cap as conn_send() (returns as it does), except SLOW_CONSUMER itself.
 */
int	 conn_send_error(struct conn *c, enum proto_error code,
	    const uint8_t *id, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/*
 * Stops reading and closes once the output has drained (bounded by a
 * 2-second linger); the closed callback then reports why.
 */
void	 conn_close(struct conn *c, const char *why);

/*
 * Gives back the output buffer of a conn that has nothing waiting to be
 * written (an idle connection then holds no buffer). For a periodic sweep.
 */
void	 conn_trim(struct conn *c);

/* Bytes of output waiting to be written, over every conn. */
size_t	 conn_output_total(void);

/*
 * Holds every conn's output in its buffer (on) until released (off),
 * which writes what waited. For a group commit: what a loop turn produced
 * goes out only once the turn's changes are on disk. Output still queues
 * while held; a conn that closes meanwhile still sends it all first.
 */
void	 conn_hold_output(bool on);

/* Sets the time of the last read to now (a peer that could not speak). */
void	 conn_touch(struct conn *c);

/* Raises the frame limit once HELLO is accepted. */
void	 conn_set_max_frame(struct conn *c, uint32_t max_frame);

uint64_t		 conn_id(const struct conn *c);
const struct conn_peer	*conn_peer(const struct conn *c);
bool			 conn_closing(const struct conn *c);
/*
 * The messages and bytes of c since it was made, with wall-clock times: a
 * packet sent is counted when it is queued, its bytes (and the time) when
 * they are written to the socket.
 */
void			 conn_stats(const struct conn *c,
			    struct msg_stats *ret);
/* Milliseconds (monotonic) when the last frame arrived. */
uint64_t		 conn_last_read(const struct conn *c);
size_t			 conn_output_len(const struct conn *c);
void			*conn_get_data(const struct conn *c);
void			 conn_set_data(struct conn *c, void *data);

#endif /* PATCHBAY_TRANSPORT_H */

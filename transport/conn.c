/*
 * conn.c: one connection per peer.
 *
 * A conn owns a non-blocking descriptor and two libevent events on it, and
 * does its own buffering, so that the job path costs as few calls as it
 * can.
 *
 * Input: the read event reads into one buffer shared by every conn (the
 * broker is single-threaded and handles a read to the end before the next
 * one), whole frames are decoded in place and handed to conn_ops.packet,
 * and only the tail of a frame that has not fully arrived is kept in the
 * conn's own buffer, allocated for that frame and freed once it is whole.
 * An idle conn holds no input buffer at all. Anything malformed gets an
 * ERROR packet naming the problem and the conn closes after its output
 * drains.
 *
 * Output: packets are encoded straight into the conn's output buffer (one
 * contiguous array, grown on demand) and written once the work that
 * produced them is done: at the end of the read callback that caused
 * them (every conn it gave output to, in one pass), or, for output made
 * elsewhere (timers, the supervisor), by a deferred event that runs once
 * per loop turn. One write(2) carries every packet of that turn. Only when
 * the socket cannot take it all is a write event armed, until the output
 * drains. Output is bounded: a peer that stops reading while we owe it
 * more than out_limit bytes is dropped as SLOW_CONSUMER. conn_trim(),
 * called from the broker's periodic sweep, gives back the buffers of
 * connections that have nothing pending.
 *
 * TLS: a conn made by conn_new_tls() is the same conn with SSL_read() and
 * SSL_write() where a plain one calls read(2) and write(2), on the same
 * events, so that TLS keeps the batching above: one read brings every
 * record that arrived (read-ahead), one write carries every packet of
 * the turn as few records. The handshake runs on those events first
 * (output waits for it, counted against the cap); OpenSSL's wants are
 * followed: a read that needs the socket writable arms the write event,
 * a write that needs it readable waits for the next read event. This
 * does what libevent's bufferevent_openssl would, without the bufferevent
 * between: through one, every write waited a loop turn and two
 * epoll_ctl(2) calls, and the job path over TLS ran at a sixth of TCP's
 * rate (bench/tls.sh).
 *
 * A conn is never freed inside its own callbacks. Closing marks it, stops
 * reading and, once the output has drained (or the linger timer fired),
 * activates a deferred event which reports ops.closed and frees the conn
 * from a fresh stack.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "transport/transport.h"

#define CONN_DEFAULT_OUT_CAP	(16u * 1024 * 1024)
#define CONN_LINGER_MS		2000
#define CONN_READ_SIZE		(128 * 1024)	/* one read(2) at most */
#define CONN_KEEP_MIN		4096		/* first buffer of a partial frame */
#define CONN_OUT_MIN		1024		/* first output buffer */

/* One peer's connection; owned by the broker, freed by itself on close. */
struct conn {
	uint64_t		 id;
	int			 fd;
	struct event		*rev;		/* readable */
	struct event		*wev;		/* writable; armed on EAGAIN */
	struct event		*flush;		/* deferred: write the output */
	struct event		*finish;	/* deferred close + free */
	struct event		*linger;	/* bound on draining output */
	SSL			*ssl;		/* TLS: the session, else NULL */
	uint8_t			*out;		/* pending output, or NULL */
	size_t			 out_start;	/* first byte not yet written */
	size_t			 out_end;
	size_t			 out_cap;	/* allocated */
	uint8_t			*in;		/* an incomplete frame, or NULL */
	size_t			 in_len;
	size_t			 in_cap;
	const struct conn_ops	*ops;
	void			*arg;
	void			*data;		/* the broker's peer state */
	uint32_t		 max_frame;
	size_t			 out_limit;	/* SLOW_CONSUMER beyond */
	bool			 closing;
	bool			 flushing;	/* flush asked: active or dirty */
	bool			 dirty;		/* on conn_dirty */
	bool			 writing;	/* wev is added */
	bool			 tls_up;	/* TLS: the handshake is done */
	bool			 tls_read_wants_write; /* SSL_read: retry when
						   writable */
	bool			 tls_write_wants_read; /* SSL_write: retry when
						   readable */
	TAILQ_ENTRY(conn)	 dirty_entry;
	char			 why[160];
	uint64_t		 last_read;
	struct conn_peer	 peer;
	struct msg_stats	 stats;		/* times monotonic here */
};

/* Where every conn reads; only an incomplete frame is copied out of it. */
static uint8_t	conn_scratch[CONN_READ_SIZE];

/*
 * Conns given output while a read callback runs: they are written when it
 * returns, all at once, without a deferred event each.
 */
static TAILQ_HEAD(, conn)	conn_dirty = TAILQ_HEAD_INITIALIZER(conn_dirty);
static unsigned			conn_reading;
/*
 * The clock when the read callback running began, and whether it still
 * holds: while the read callbacks run and while what they produced is
 * written, so that the statistics' times cost no clock read of their own.
 */
static uint64_t			conn_read_now;
static bool			conn_read_turn;
/* conn_hold_output(): conns with output wait on conn_dirty. */
static bool			conn_held;

/* Output waiting to be written, over every conn (for max_memory). */
static size_t			conn_out_total;

static void	conn_tls_read(struct conn *);
static void	conn_reading_begin(void);
static void	conn_reading_end(void);

/* Records who is at the other end: credentials or address. */
static void
conn_fill_peer(struct conn *c, int fd)
{
	struct sockaddr_storage	ss;
	socklen_t		sslen = sizeof(ss);
	char			host[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 &&
	    ss.ss_family == AF_UNIX) {
		struct ucred	cred;
		socklen_t	len = sizeof(cred);

		c->peer.is_unix = true;
		snprintf(c->peer.addr, sizeof(c->peer.addr), "unix");
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
			c->peer.has_cred = true;
			c->peer.pid = cred.pid;
			c->peer.uid = cred.uid;
			c->peer.gid = cred.gid;
		}
		/* Its groups too, for the per-role lists (Linux 4.13). */
		len = sizeof(c->peer.groups);
		c->peer.ngroups = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS,
		    c->peer.groups, &len) == 0 ? (int)(len / sizeof(gid_t)) : -1;
		return;
	}
	/* Frames are small and latency matters more than packet count. */
	{
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	sslen = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		snprintf(c->peer.addr, sizeof(c->peer.addr), "unknown");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(c->peer.addr, sizeof(c->peer.addr), "[%s]:%u", host,
		    ntohs(s6->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(c->peer.addr, sizeof(c->peer.addr), "%s:%u", host,
		    ntohs(s4->sin_port));
	}
}

/* Deferred: reports the close upward and frees the conn. */
static void
conn_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd; (void)what;
	if (c->ops->closed != NULL)
		c->ops->closed(c, c->why, c->arg);
	conn_free(c);
}

/* Stops all I/O and schedules conn_finish_cb for the next loop turn. */
static void
conn_schedule_finish(struct conn *c)
{
	event_del(c->rev);
	event_del(c->wev);
	c->writing = false;
	event_active(c->finish, EV_TIMEOUT, 0);
}

/* Marks the conn closing with a reason; the first reason wins. */
static void
conn_mark_closing(struct conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	snprintf(c->why, sizeof(c->why), "%s", why);
}

/* The socket failed or the peer went away: finish with the reason. */
static void
conn_lost(struct conn *c, const char *why)
{
	conn_mark_closing(c, why);
	conn_schedule_finish(c);
}

/* n bytes of output went to the socket (or into TLS records). */
static inline void
conn_wrote(struct conn *c, size_t n)
{
	c->out_start += n;
	conn_out_total -= n;
	c->stats.bytes_sent += n;
	c->stats.last_ms = conn_read_turn ? conn_read_now : clock_now_ms();
	if (c->stats.first_ms == 0)
		c->stats.first_ms = c->stats.last_ms;
}

/*
 * TLS: why a session failed, from OpenSSL's first queued error ("wrong
 * version number" for a peer that speaks something else) or the
 * socket's; empties the thread's error queue, which SSL_get_error() needs
 * empty before the next call on any conn.
 */
static void
conn_tls_why(struct conn *c, int err, char *why, size_t len)
{
	unsigned long	 e = ERR_peek_error();
	char		 reason[160];
	const char	*r = reason, *what = c->tls_up ? "TLS error" :
			    "TLS handshake failed";

	if (e != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
		/* "error:0A00010B:SSL routines::wrong version number" */
		if (strrchr(reason, ':') != NULL)
			r = strrchr(reason, ':') + 1;
	} else if (err == SSL_ERROR_SYSCALL && errno != 0)
		r = strerror(errno);
	else
		r = "the peer closed the connection";
	snprintf(why, len, "%s: %s", what, r);
	ERR_clear_error();
}

/*
 * Arms the write event, once: output the socket could not take yet, or,
 * over TLS, a handshake or a read that waits for the socket to be writable.
 */
static void
conn_want_write(struct conn *c)
{
	if (!c->writing && event_add(c->wev, NULL) == 0)
		c->writing = true;
}

/*
 * TLS: goes on with the handshake. 0 once it is done, 1 while it waits for
 * the socket, -1 when it failed (the conn is lost).
 */
static int
conn_tls_handshake(struct conn *c)
{
	char	why[200];
	int	r, e;

	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		c->tls_up = true;
		return 0;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		return 1;
	if (e == SSL_ERROR_WANT_WRITE) {
		conn_want_write(c);
		return 1;
	}
	conn_tls_why(c, e, why, sizeof(why));
	conn_lost(c, why);
	return -1;
}

/*
 * TLS: writes as much output as the session takes, as conn_write_out()
 * does for a plain conn. 0 when all is out, 1 when some waits for the
 * socket (or the handshake), -1 when the conn is lost.
 */
static int
conn_tls_write(struct conn *c)
{
	char	why[200];
	size_t	len;
	int	n, e;

	if (!c->tls_up || c->tls_write_wants_read)
		return 1;
	while (c->out_end > c->out_start) {
		len = c->out_end - c->out_start;
		n = SSL_write(c->ssl, c->out + c->out_start, len > INT32_MAX ?
		    INT32_MAX : (int)len);
		if (n > 0) {
			conn_wrote(c, (size_t)n);
			continue;
		}
		e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_WRITE) {
			conn_want_write(c);
			return 1;
		}
		if (e == SSL_ERROR_WANT_READ) {
			c->tls_write_wants_read = true;
			return 1;
		}
		conn_tls_why(c, e, why, sizeof(why));
		conn_lost(c, why);
		return -1;
	}
	return 0;
}

/*
 * Writes as much output as the socket takes. Arms the write event while
 * some is left; finishes a closing conn once it is all out.
 */
static void
conn_write_out(struct conn *c)
{
	char	why[160];
	ssize_t	n;

	if (conn_held) {
		if (!c->dirty) {
			c->dirty = true;
			TAILQ_INSERT_TAIL(&conn_dirty, c, dirty_entry);
		}
		return;
	}
	if (c->ssl != NULL) {
		if (conn_tls_write(c) != 0)
			return;
	}
	while (c->out_end > c->out_start) {
		n = write(c->fd, c->out + c->out_start,
		    c->out_end - c->out_start);
		if (n > 0) {
			conn_wrote(c, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			conn_want_write(c);
			return;
		}
		snprintf(why, sizeof(why), "socket error: %s",
		    n < 0 ? strerror(errno) : "nothing written");
		conn_lost(c, why);
		return;
	}
	c->out_start = c->out_end = 0;
	if (c->writing) {
		event_del(c->wev);
		c->writing = false;
	}
	if (c->closing)
		conn_schedule_finish(c);
}

/* Deferred, once per loop turn with output: one write for all of it. */
static void
conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd; (void)what;
	c->flushing = false;
	conn_write_out(c);
}

/*
 * The socket takes more output; over TLS it may be the handshake or a
 * read that waited for it.
 */
static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd; (void)what;
	if (c->ssl != NULL && (!c->tls_up || c->tls_read_wants_write)) {
		if (c->writing) {
			event_del(c->wev);
			c->writing = false;
		}
		conn_reading_begin();
		conn_tls_read(c);
		conn_reading_end();
		if (!c->tls_up || c->closing)
			return;
	}
	conn_write_out(c);
}

/*
 * Asks for a flush (once): at the end of the read callback that is
 * running, else at the end of this loop turn.
 */
static void
conn_want_flush(struct conn *c)
{
	if (c->flushing || c->writing)
		return;
	c->flushing = true;
	if (conn_reading > 0) {
		c->dirty = true;
		TAILQ_INSERT_TAIL(&conn_dirty, c, dirty_entry);
	} else
		event_active(c->flush, EV_WRITE, 0);
}

/* Writes every conn that was given output during a read callback. */
static void
conn_flush_dirty(void)
{
	struct conn	*c;

	if (conn_held)
		return;
	while ((c = TAILQ_FIRST(&conn_dirty)) != NULL) {
		TAILQ_REMOVE(&conn_dirty, c, dirty_entry);
		c->dirty = false;
		c->flushing = false;
		conn_write_out(c);
	}
}

/* Holds or releases every conn's output; see transport.h. */
void
conn_hold_output(bool on)
{
	conn_held = on;
	if (!on && conn_reading == 0)
		conn_flush_dirty();
}

/* The linger bound ran out: finish with whatever is left unsent. */
static void
conn_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd; (void)what;
	conn_schedule_finish(c);
}

/* Counts one message received, of len bytes, at now (monotonic). */
static inline void
conn_count(struct conn *c, enum msg_kind kind, size_t len, uint64_t now)
{
	c->stats.received[kind]++;
	c->stats.bytes_received += len;
	if (c->stats.first_ms == 0)
		c->stats.first_ms = now;
	c->stats.last_ms = now;
}

/*
 * Decodes the whole frames at the start of buf (len bytes) and hands each
 * up. Returns the bytes consumed; stops early once the conn is closing.
 */
static size_t
conn_frames(struct conn *c, const uint8_t *buf, size_t len)
{
	struct packet	 p;
	char		 err[PROTO_ERRLEN];
	size_t		 off = 0;
	uint32_t	 flen;
	int		 r;

	while (!c->closing && len - off >= PROTO_HEADER_LEN) {
		r = frame_header(buf + off, len - off, c->max_frame, &flen);
		if (r == -EMSGSIZE) {
			conn_send_error(c, PERR_FRAME_TOO_LARGE, NULL,
			    "frame of %u bytes exceeds the limit of %u bytes",
			    frame_header_len(buf + off), c->max_frame);
			conn_close(c, "frame too large");
			break;
		}
		if (r != 0) {
			conn_send_error(c, PERR_BAD_FRAME, NULL,
			    "frame length 0: a frame holds one MessagePack map");
			conn_close(c, "bad frame");
			break;
		}
		if (len - off - PROTO_HEADER_LEN < flen)
			break;
		if ((r = packet_decode(buf + off + PROTO_HEADER_LEN, flen,
		    PROTO_TO_BROKER, &p, err)) != 0) {
			/* -EBADMSG: not MessagePack as a frame must be. */
			conn_send_error(c, r == -EBADMSG ? PERR_BAD_FRAME :
			    PERR_BAD_PACKET, NULL, "%s", err);
			conn_close(c, r == -EBADMSG ? "bad frame" :
			    "bad packet");
			break;
		}
		off += PROTO_HEADER_LEN + flen;
		conn_count(c, msg_kind_of(p.type), PROTO_HEADER_LEN + flen,
		    c->last_read);
		c->ops->packet(c, &p, c->arg);
		if (p.zone != NULL)
			packet_clear(&p);
	}
	return off;
}

/*
 * Keeps the incomplete frame at data (n bytes) in the conn's own buffer.
 * The buffer grows with what arrives, to twice that (4 KiB at least) and
 * never past the frame's length once its header is there and within
 * max_frame: what a peer makes the broker hold is bounded by what it has
 * sent, not by the length it declares. 0 or -ENOMEM.
 */
static int
conn_keep(struct conn *c, const uint8_t *data, size_t n)
{
	size_t	need = c->in_len + n, full = need, want;
	uint8_t	*nb;
	uint32_t flen;

	if (need >= PROTO_HEADER_LEN) {
		uint8_t hdr[PROTO_HEADER_LEN];
		size_t	k = c->in_len < PROTO_HEADER_LEN ? c->in_len :
			    PROTO_HEADER_LEN;

		if (k > 0)
			memcpy(hdr, c->in, k);
		memcpy(hdr + k, data, PROTO_HEADER_LEN - k);
		/* A length past the limit is refused by conn_frames(). */
		if (frame_header(hdr, PROTO_HEADER_LEN, c->max_frame,
		    &flen) == 0 && PROTO_HEADER_LEN + (size_t)flen > need)
			full = PROTO_HEADER_LEN + (size_t)flen;
	}
	want = need < CONN_KEEP_MIN / 2 ? CONN_KEEP_MIN : need * 2;
	if (want > full)
		want = full;
	if (need > c->in_cap) {
		if ((nb = realloc(c->in, want)) == NULL)
			return -ENOMEM;
		c->in = nb;
		c->in_cap = want;
	}
	memcpy(c->in + c->in_len, data, n);
	c->in_len += n;
	return 0;
}

/*
 * Where the next bytes read should go: straight after the start of an
 * incomplete frame when its buffer has room, else the shared scratch.
 */
static uint8_t *
conn_read_room(struct conn *c, size_t *room)
{
	if (c->in_len > 0 && c->in_cap > c->in_len) {
		*room = c->in_cap - c->in_len;
		return c->in + c->in_len;
	}
	*room = sizeof(conn_scratch);
	return conn_scratch;
}

/*
 * Hands every whole frame up after n bytes arrived at buf (from
 * conn_read_room()), keeping the tail of an incomplete one.
 */
static void
conn_input(struct conn *c, uint8_t *buf, ssize_t n)
{
	size_t	used;

	conn_read_now = c->last_read = clock_now_ms();
	if (buf != conn_scratch) {
		c->in_len += (size_t)n;
		used = conn_frames(c, c->in, c->in_len);
		if (used > 0) {
			memmove(c->in, c->in + used, c->in_len - used);
			c->in_len -= used;
		}
		if (c->in_len == 0 || c->closing) {
			free(c->in);
			c->in = NULL;
			c->in_len = c->in_cap = 0;
		}
		return;
	}
	if (c->in_len > 0) {
		/* A header that was cut short: join it to what came. */
		if (conn_keep(c, conn_scratch, (size_t)n) != 0) {
			conn_close(c, "out of memory");
			return;
		}
		used = conn_frames(c, c->in, c->in_len);
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
		if (c->in_len == 0 || c->closing) {
			free(c->in);
			c->in = NULL;
			c->in_len = c->in_cap = 0;
		}
		return;
	}
	used = conn_frames(c, conn_scratch, (size_t)n);
	if (used < (size_t)n && !c->closing &&
	    conn_keep(c, conn_scratch + used, (size_t)n - used) != 0)
		conn_close(c, "out of memory");
}

/* Reads what arrived and hands every whole frame up. */
static void
conn_read(struct conn *c)
{
	size_t		 room;
	ssize_t		 n;
	char		 why[160];
	uint8_t		*buf;

	if (c->ssl != NULL) {
		conn_tls_read(c);
		return;
	}
	buf = conn_read_room(c, &room);
	n = read(c->fd, buf, room);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	if (n <= 0) {
		if (n == 0)
			snprintf(why, sizeof(why), "peer closed the "
			    "connection");
		else
			snprintf(why, sizeof(why), "socket error: %s",
			    strerror(errno));
		conn_lost(c, why);
		return;
	}
	conn_input(c, buf, n);
}

/*
 * TLS: reads what arrived, every whole record of it (read-ahead may have
 * brought several in one read(2)), and hands every whole frame up.
 */
static void
conn_tls_read(struct conn *c)
{
	size_t		 room;
	char		 why[200];
	uint8_t		*buf;
	int		 n, e;

	if (!c->tls_up) {
		if (conn_tls_handshake(c) != 0)
			return;
		/* What was sent before it is written now. */
		if (c->out_end > c->out_start)
			conn_want_flush(c);
	}
	c->tls_read_wants_write = false;
	if (c->tls_write_wants_read) {
		c->tls_write_wants_read = false;
		conn_want_flush(c);
	}
	do {
		buf = conn_read_room(c, &room);
		n = SSL_read(c->ssl, buf, room > INT32_MAX ? INT32_MAX :
		    (int)room);
		if (n <= 0)
			break;
		conn_input(c, buf, n);
	} while (!c->closing && SSL_has_pending(c->ssl));
	if (n > 0 || c->closing)
		return;
	e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_WANT_READ)
		return;
	if (e == SSL_ERROR_WANT_WRITE) {
		c->tls_read_wants_write = true;
		conn_want_write(c);
		return;
	}
	if (e == SSL_ERROR_ZERO_RETURN) {
		ERR_clear_error();
		conn_lost(c, "peer closed the connection");
		return;
	}
	conn_tls_why(c, e, why, sizeof(why));
	conn_lost(c, why);
}

/*
 * Around every read callback: what the frames produced is written at once
 * for every conn, before the loop goes back to waiting.
 */
static void
conn_reading_begin(void)
{
	conn_reading++;
	conn_read_turn = true;
}

static void
conn_reading_end(void)
{
	if (--conn_reading == 0) {
		conn_flush_dirty();
		conn_read_turn = false;
	}
}

/*
 * The read event: handles what arrived, then writes at once what that
 * produced for every conn, before the loop goes back to waiting.
 */
static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	conn_reading_begin();
	conn_read(arg);
	conn_reading_end();
}

/*
 * The part of a conn that does not depend on how it carries bytes: the
 * deferred events and the peer's identity. NULL on ENOMEM (fd closed).
 */
static struct conn *
conn_alloc(struct event_base *base, int fd, uint64_t id,
    const struct conn_ops *ops, void *arg, size_t out_cap)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return NULL;
	}
	c->id = id;
	c->fd = fd;
	c->ops = ops;
	c->arg = arg;
	c->max_frame = PROTO_MAX_FRAME_HELLO;
	c->out_limit = out_cap != 0 ? out_cap : CONN_DEFAULT_OUT_CAP;
	c->last_read = clock_now_ms();
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	conn_fill_peer(c, fd);
	/* Persistent: only ever activated, and so never deleted after. */
	c->flush = event_new(base, -1, EV_PERSIST, conn_flush_cb, c);
	c->finish = event_new(base, -1, 0, conn_finish_cb, c);
	c->linger = evtimer_new(base, conn_linger_cb, c);
	if (c->flush == NULL || c->finish == NULL || c->linger == NULL) {
		conn_free(c);
		return NULL;
	}
	return c;
}

/* Wraps fd in a conn; see transport.h. */
struct conn *
conn_new(struct event_base *base, int fd, uint64_t id,
    const struct conn_ops *ops, void *arg, size_t out_cap)
{
	return conn_new_tls(base, fd, id, ops, arg, out_cap, NULL);
}

/*
 * Wraps fd in a conn, speaking TLS as the server when ctx is not NULL;
 * see transport.h.
 */
struct conn *
conn_new_tls(struct event_base *base, int fd, uint64_t id,
    const struct conn_ops *ops, void *arg, size_t out_cap,
    struct ssl_ctx_st *ctx)
{
	struct conn	*c;

	if ((c = conn_alloc(base, fd, id, ops, arg, out_cap)) == NULL)
		return NULL;
	if (ctx != NULL) {
		c->peer.is_tls = true;
		if ((c->ssl = SSL_new(ctx)) == NULL ||
		    SSL_set_fd(c->ssl, fd) != 1) {
			ERR_clear_error();
			conn_free(c);
			return NULL;
		}
		SSL_set_accept_state(c->ssl);
	}
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) != 0) {
		conn_free(c);
		return NULL;
	}
	return c;
}

/* The TLS session of c, or NULL for a plain conn; see transport.h. */
struct ssl_st *
conn_tls(const struct conn *c)
{
	return c->ssl;
}

/* Frees a connection now; never from inside its own callbacks. */
void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->dirty)
		TAILQ_REMOVE(&conn_dirty, c, dirty_entry);
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	if (c->flush != NULL)
		event_free(c->flush);
	if (c->finish != NULL)
		event_free(c->finish);
	if (c->linger != NULL)
		event_free(c->linger);
	conn_out_total -= c->out_end - c->out_start;
	if (c->ssl != NULL) {
		/* close_notify, when the socket takes it now; no wait. */
		if (c->tls_up)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	free(c->out);
	free(c->in);
	close(c->fd);
	free(c);
}

/*
 * packet_encode_fn()'s reserve: room for n bytes at the end of the output,
 * growing the buffer (or moving what is left of it to the front) when
 * needed. conn_append() then keeps what was written.
 */
static void *
conn_reserve(void *arg, size_t n)
{
	struct conn	*c = arg;
	size_t		 pending = c->out_end - c->out_start, cap;
	uint8_t		*nb;

	if (c->out_cap - c->out_end < n) {
		if (c->out_start > 0 && c->out_cap - pending >= n) {
			memmove(c->out, c->out + c->out_start, pending);
		} else {
			cap = c->out_cap != 0 ? c->out_cap : CONN_OUT_MIN;
			while (cap - pending < n)
				cap *= 2;
			if ((nb = malloc(cap)) == NULL)
				return NULL;
			if (pending > 0)
				memcpy(nb, c->out + c->out_start, pending);
			free(c->out);
			c->out = nb;
			c->out_cap = cap;
		}
		c->out_start = 0;
		c->out_end = pending;
	}
	return c->out + c->out_end;
}

/*
 * Encodes p straight into the output buffer, whatever the output's size:
 * no intermediate copy, the payload copied once from where p points. The
 * write happens when the work of this turn is done.
 */
static int
conn_append(struct conn *c, const struct packet *p, bool capped)
{
	char	why[160];
	size_t	len;
	int	r;

	if ((r = packet_encode_fn(p, PROTO_FROM_BROKER, conn_reserve, c,
	    &len)) != 0)
		return r;
	/*
	 * Every byte counts against the cap, whatever the packet: a peer that
	 * does not read is dropped (not committed, the frame is forgotten).
	 */
	if (capped && c->out_end + len - c->out_start > c->out_limit) {
		snprintf(why, sizeof(why), "slow consumer: more than %zu bytes "
		    "of output waiting to be read (max_output)", c->out_limit);
		conn_send_error(c, PERR_SLOW_CONSUMER, NULL, "more than %zu "
		    "bytes of output are waiting to be read", c->out_limit);
		conn_close(c, why);
		return -ENOBUFS;
	}
	c->out_end += len;
	conn_out_total += len;
	/* Its bytes and time are counted as they are written. */
	c->stats.sent[msg_kind_of(p->type)]++;
	conn_want_flush(c);
	return 0;
}

/* Encodes p onto the output; see transport.h. */
int
conn_send(struct conn *c, const struct packet *p)
{
	if (c->closing)
		return -EPIPE;
	return conn_append(c, p, true);
}

/*
 * Sends ERROR{code, msg[, id]}. It counts against the output cap like any
 * packet, except SLOW_CONSUMER itself, which is queued (behind whatever
 * the peer has not read) as the conn closes.
 */
int
conn_send_error(struct conn *c, enum proto_error code, const uint8_t *id,
    const char *fmt, ...)
{
	struct packet	p;
	char		msg[512];
	va_list		ap;

	if (c->closing)
		return -EPIPE;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	packet_init(&p, PKT_ERROR);
	p.code = code;
	p.msg.ptr = (const uint8_t *)msg;
	p.msg.len = (uint32_t)strlen(msg);
	if (id != NULL) {
		memcpy(p.id, id, PROTO_ID_LEN);
		p.has |= PF_ID;
	}
	return conn_append(c, &p, code != PERR_SLOW_CONSUMER);
}

/* Stops reading; closes once the output drains (bounded by linger). */
void
conn_close(struct conn *c, const char *why)
{
	struct timeval	tv = { CONN_LINGER_MS / 1000,
			    (CONN_LINGER_MS % 1000) * 1000 };

	if (c->closing)
		return;
	conn_mark_closing(c, why);
	event_del(c->rev);
	/* Before the TLS handshake nothing can be said: no linger. */
	if (c->out_end == c->out_start || (c->ssl != NULL && !c->tls_up)) {
		conn_schedule_finish(c);
		return;
	}
	evtimer_add(c->linger, &tv);
	/* The flush already asked for, or the write event, finishes it. */
	if (!c->flushing && !c->writing) {
		c->flushing = true;
		event_active(c->flush, EV_WRITE, 0);
	}
}

/* Raises the frame limit once HELLO is accepted. */
void
conn_set_max_frame(struct conn *c, uint32_t max_frame)
{
	c->max_frame = max_frame;
}

/* The broker-assigned connection number. */
uint64_t
conn_id(const struct conn *c)
{
	return c->id;
}

/* Who is at the other end. */
const struct conn_peer *
conn_peer(const struct conn *c)
{
	return &c->peer;
}

/* True once the conn is closing. */
bool
conn_closing(const struct conn *c)
{
	return c->closing;
}

/* Monotonic milliseconds of the last whole frame received. */
void
conn_stats(const struct conn *c, struct msg_stats *ret)
{
	uint64_t	mono = clock_now_ms(), wall = clock_wall_ms();

	*ret = c->stats;
	if (ret->first_ms != 0)
		ret->first_ms = clock_to_wall(ret->first_ms, mono, wall);
	if (ret->last_ms != 0)
		ret->last_ms = clock_to_wall(ret->last_ms, mono, wall);
}

uint64_t
conn_last_read(const struct conn *c)
{
	return c->last_read;
}

/* Bytes waiting to be written. */
size_t
conn_output_len(const struct conn *c)
{
	return c->out_end - c->out_start;
}

/* The broker's state attached to this conn. */
void *
conn_get_data(const struct conn *c)
{
	return c->data;
}

/* Attaches the broker's state to this conn. */
void
conn_set_data(struct conn *c, void *data)
{
	c->data = data;
}

/* Output waiting over every conn; see transport.h. */
size_t
conn_output_total(void)
{
	return conn_out_total;
}

/* Counts the conn's silence from now; see transport.h. */
void
conn_touch(struct conn *c)
{
	c->last_read = clock_now_ms();
}

/* Gives back the buffers of a conn that has nothing pending; see .h. */
void
conn_trim(struct conn *c)
{
	if (c->out_end == c->out_start && c->out != NULL && !c->writing) {
		free(c->out);
		c->out = NULL;
		c->out_start = c->out_end = c->out_cap = 0;
	}
}

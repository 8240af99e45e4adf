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
 * TLS: a conn made by conn_new_tls() runs the same frame reader and output
 * buffer over a bufferevent_openssl (libevent_openssl) instead of read(2)
 * and write(2) on the socket. The bufferevent does the handshake and the
 * records; its read callback hands the plaintext to the same code, and
 * the output buffer is moved into the bufferevent's at the same points
 * where a plain conn writes. The bytes the bufferevent holds count as
 * output waiting (for the cap, the linger, max_memory) until it has
 * encrypted them onto the socket.
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

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
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
	struct bufferevent	*bev;		/* TLS: the stream, else NULL */
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

/* Output waiting to be written, over every conn (for max_memory). */
static size_t			conn_out_total;

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
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	else {
		event_del(c->rev);
		event_del(c->wev);
	}
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

/* TLS: the plaintext the bufferevent has not yet encrypted and sent. */
static inline size_t
conn_tls_pending(const struct conn *c)
{
	return c->bev != NULL ?
	    evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

/*
 * TLS: moves the output into the bufferevent, which writes it as the
 * socket takes it (conn_tls_out_cb() counts it then); a closing conn
 * finishes once the bufferevent has nothing left (conn_tls_write_cb()).
 */
static void
conn_tls_write_out(struct conn *c)
{
	size_t	n = c->out_end - c->out_start;

	if (n > 0) {
		if (bufferevent_write(c->bev, c->out + c->out_start, n) != 0) {
			conn_lost(c, "out of memory");
			return;
		}
		c->out_start = c->out_end = 0;
	}
	if (c->closing && conn_tls_pending(c) == 0)
		conn_schedule_finish(c);
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

	if (c->bev != NULL) {
		conn_tls_write_out(c);
		return;
	}
	while (c->out_end > c->out_start) {
		n = write(c->fd, c->out + c->out_start,
		    c->out_end - c->out_start);
		if (n > 0) {
			c->out_start += (size_t)n;
			conn_out_total -= (size_t)n;
			c->stats.bytes_sent += (size_t)n;
			c->stats.last_ms = conn_read_turn ? conn_read_now :
			    clock_now_ms();
			if (c->stats.first_ms == 0)
				c->stats.first_ms = c->stats.last_ms;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->writing && event_add(c->wev, NULL) == 0)
				c->writing = true;
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

/* The socket takes more output. */
static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	conn_write_out(arg);
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

	while ((c = TAILQ_FIRST(&conn_dirty)) != NULL) {
		TAILQ_REMOVE(&conn_dirty, c, dirty_entry);
		c->dirty = false;
		c->flushing = false;
		conn_write_out(c);
	}
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
	uint8_t		*buf = conn_read_room(c, &room);

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

/* TLS: plaintext arrived; every byte of it goes through conn_input(). */
static void
conn_tls_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	uint8_t		*buf;
	size_t		 room;
	int		 n;

	conn_reading_begin();
	while (!c->closing && evbuffer_get_length(in) > 0) {
		buf = conn_read_room(c, &room);
		if ((n = evbuffer_remove(in, buf, room)) <= 0)
			break;
		conn_input(c, buf, n);
	}
	if (c->closing)
		evbuffer_drain(in, evbuffer_get_length(in));
	conn_reading_end();
}

/* TLS: the bufferevent's output is empty; a closing conn is done. */
static void
conn_tls_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	(void)bev;
	if (c->closing && c->out_end == c->out_start)
		conn_schedule_finish(c);
}

/* TLS: the bufferevent took n plaintext bytes off its output. */
static void
conn_tls_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn	*c = arg;

	(void)buf;
	if (info->n_deleted == 0)
		return;
	conn_out_total -= info->n_deleted;
	c->stats.bytes_sent += info->n_deleted;
	c->stats.last_ms = conn_read_turn ? conn_read_now : clock_now_ms();
	if (c->stats.first_ms == 0)
		c->stats.first_ms = c->stats.last_ms;
}

/*
 * TLS: the handshake finished, or the stream ended. A failed handshake
 * is reported with OpenSSL's reason ("certificate verify failed", "wrong
 * version number" for a peer that does not speak TLS).
 */
static void
conn_tls_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;
	unsigned long	 e;
	char		 why[160], reason[120];

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_up = true;
		return;
	}
	if ((e = bufferevent_get_openssl_error(bev)) != 0) {
		ERR_error_string_n(e, reason, sizeof(reason));
		/* "error:0A00010B:SSL routines::wrong version number" */
		snprintf(why, sizeof(why), "TLS %s: %s", c->tls_up ?
		    "error" : "handshake failed", strrchr(reason, ':') != NULL ?
		    strrchr(reason, ':') + 1 : reason);
	} else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), c->tls_up ? "peer closed the "
		    "connection" : "TLS handshake failed: the peer closed "
		    "the connection");
	else
		snprintf(why, sizeof(why), "socket error: %s",
		    errno != 0 ? strerror(errno) : "unknown");
	/* Whatever else OpenSSL queued for this stream is not ours. */
	ERR_clear_error();
	conn_lost(c, why);
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
	struct conn	*c;

	if ((c = conn_alloc(base, fd, id, ops, arg, out_cap)) == NULL)
		return NULL;
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c);
	if (c->rev == NULL || c->wev == NULL || event_add(c->rev, NULL) != 0) {
		conn_free(c);
		return NULL;
	}
	return c;
}

/* Wraps fd in a conn that speaks TLS as the server; see transport.h. */
struct conn *
conn_new_tls(struct event_base *base, int fd, uint64_t id,
    const struct conn_ops *ops, void *arg, size_t out_cap,
    struct ssl_ctx_st *ctx)
{
	struct conn	*c;
	SSL		*ssl;

	if ((c = conn_alloc(base, fd, id, ops, arg, out_cap)) == NULL)
		return NULL;
	c->peer.is_tls = true;
	if ((ssl = SSL_new(ctx)) == NULL) {
		ERR_clear_error();
		conn_free(c);
		return NULL;
	}
	/* From here the bufferevent owns the SSL and the socket. */
	c->bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		SSL_free(ssl);
		conn_free(c);
		return NULL;
	}
	c->fd = -1;
	/* A peer that closes without close_notify has just gone away. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_tls_read_cb, conn_tls_write_cb,
	    conn_tls_event_cb, c);
	/* What a peer makes us hold is bounded as a plain conn's is. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_READ_SIZE);
	if (evbuffer_add_cb(bufferevent_get_output(c->bev), conn_tls_out_cb,
	    c) == NULL || bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0) {
		conn_free(c);
		return NULL;
	}
	return c;
}

/* The TLS session of c, or NULL for a plain conn; see transport.h. */
struct ssl_st *
conn_tls(const struct conn *c)
{
	return c->bev != NULL ? bufferevent_openssl_get_ssl(c->bev) : NULL;
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
	if (c->bev != NULL) {
		conn_out_total -= conn_tls_pending(c);
		evbuffer_remove_cb(bufferevent_get_output(c->bev),
		    conn_tls_out_cb, c);
		bufferevent_free(c->bev);	/* and the SSL and socket */
	}
	free(c->out);
	free(c->in);
	if (c->fd >= 0)
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
	if (capped && c->out_end + len - c->out_start + conn_tls_pending(c) >
	    c->out_limit) {
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
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ);
	else
		event_del(c->rev);
	if (c->out_end == c->out_start && conn_tls_pending(c) == 0) {
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
	return c->out_end - c->out_start + conn_tls_pending(c);
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

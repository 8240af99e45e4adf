/*
 * conn.c: one connection per peer.
 *
 * A conn wraps a descriptor in a bufferevent. Input is cut into frames as it
 * arrives (a frame may span many reads, a read may hold many frames); each
 * whole frame is checked, decoded and handed to conn_ops.packet. Anything
 * malformed gets an ERROR packet naming the problem and the conn closes
 * after its output drains. Output is bounded: a peer that stops reading
 * while we owe it more than out_cap bytes is dropped as SLOW_CONSUMER.
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
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "transport/transport.h"

#define CONN_DEFAULT_OUT_CAP	(64u * 1024 * 1024)
#define CONN_LINGER_MS		2000
#define CONN_MAX_READ		(256 * 1024)

/* One peer's connection; owned by the broker, freed by itself on close. */
struct conn {
	uint64_t		 id;
	struct bufferevent	*bev;
	struct event		*finish;	/* deferred close + free */
	struct event		*linger;	/* bound on draining output */
	const struct conn_ops	*ops;
	void			*arg;
	void			*data;		/* the broker's peer state */
	uint32_t		 max_frame;
	size_t			 out_cap;
	bool			 closing;
	char			 why[160];
	uint64_t		 last_read;
	struct conn_peer	 peer;
};

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

/* Schedules conn_finish_cb for the next loop turn. */
static void
conn_schedule_finish(struct conn *c)
{
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_active(c->finish, EV_TIMEOUT, 0);
}

/* The output drained while closing: finish now. */
static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;

	(void)bev;
	if (c->closing)
		conn_schedule_finish(c);
}

/* The linger bound ran out: finish with whatever is left unsent. */
static void
conn_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn	*c = arg;

	(void)fd; (void)what;
	conn_schedule_finish(c);
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

/* EOF or a socket error: nothing more can be sent, finish soon. */
static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn	*c = arg;
	char		 why[160];

	(void)bev;
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "peer closed the connection");
	else
		snprintf(why, sizeof(why), "socket error: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_mark_closing(c, why);
	conn_schedule_finish(c);
}

/* Cuts whole frames out of the input and hands each up, decoded. */
static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	struct packet	 p;
	uint8_t		 hdr[PROTO_HEADER_LEN];
	const uint8_t	*body;
	uint32_t	 len;
	char		 err[PROTO_ERRLEN];
	int		 r;

	while (!c->closing) {
		if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
			break;
		r = frame_header(hdr, sizeof(hdr), c->max_frame, &len);
		if (r == -EMSGSIZE) {
			conn_send_error(c, PERR_FRAME_TOO_LARGE, NULL,
			    "frame of %u bytes exceeds the limit of %u bytes",
			    frame_header_len(hdr), c->max_frame);
			conn_close(c, "frame too large");
			break;
		}
		if (r != 0) {
			conn_send_error(c, PERR_BAD_FRAME, NULL,
			    "frame length 0: a frame holds one MessagePack map");
			conn_close(c, "bad frame");
			break;
		}
		if (evbuffer_get_length(in) < PROTO_HEADER_LEN + (size_t)len)
			break;
		body = evbuffer_pullup(in, PROTO_HEADER_LEN + (ssize_t)len);
		if (body == NULL) {
			conn_close(c, "out of memory");
			break;
		}
		body += PROTO_HEADER_LEN;
		c->last_read = clock_now_ms();
		if ((r = packet_decode(body, len, PROTO_TO_BROKER, &p,
		    err)) != 0) {
			/* -EBADMSG: not MessagePack as a frame must be. */
			conn_send_error(c, r == -EBADMSG ? PERR_BAD_FRAME :
			    PERR_BAD_PACKET, NULL, "%s", err);
			conn_close(c, r == -EBADMSG ? "bad frame" :
			    "bad packet");
			break;
		}
		c->ops->packet(c, &p, c->arg);
		packet_clear(&p);
		evbuffer_drain(in, PROTO_HEADER_LEN + (size_t)len);
	}
}

/* Wraps fd in a conn; see transport.h. */
struct conn *
conn_new(struct event_base *base, int fd, uint64_t id,
    const struct conn_ops *ops, void *arg, size_t out_cap)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return NULL;
	}
	c->id = id;
	c->ops = ops;
	c->arg = arg;
	c->max_frame = PROTO_MAX_FRAME_HELLO;
	c->out_cap = out_cap != 0 ? out_cap : CONN_DEFAULT_OUT_CAP;
	c->last_read = clock_now_ms();
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	conn_fill_peer(c, fd);
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->finish = event_new(base, -1, 0, conn_finish_cb, c);
	c->linger = evtimer_new(base, conn_linger_cb, c);
	if (c->bev == NULL || c->finish == NULL || c->linger == NULL) {
		if (c->bev == NULL)
			close(fd);
		conn_free(c);
		return NULL;
	}
	bufferevent_set_max_single_read(c->bev, CONN_MAX_READ);
	bufferevent_set_max_single_write(c->bev, CONN_MAX_READ);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
	    c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return c;
}

/* Frees a connection now; never from inside its own callbacks. */
void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->finish != NULL)
		event_free(c->finish);
	if (c->linger != NULL)
		event_free(c->linger);
	free(c);
}

/* Where packet_encode_fn() writes: space reserved in the output buffer. */
struct conn_space {
	struct evbuffer		*out;
	struct evbuffer_iovec	 vec;
};

/* packet_encode_fn()'s reserve: n contiguous bytes at the output's end. */
static void *
conn_reserve(void *arg, size_t n)
{
	struct conn_space	*s = arg;

	if (evbuffer_reserve_space(s->out, (ev_ssize_t)n, &s->vec, 1) != 1)
		return NULL;
	s->vec.iov_len = n;
	return s->vec.iov_base;
}

/*
 * Encodes p straight into the output buffer, whatever the output's size:
 * no intermediate copy, the payload copied once from where p points.
 */
static int
conn_append(struct conn *c, const struct packet *p)
{
	struct conn_space	s = { .out = bufferevent_get_output(c->bev) };
	int			r;

	if ((r = packet_encode_fn(p, PROTO_FROM_BROKER, conn_reserve,
	    &s)) != 0)
		return r;
	if (evbuffer_commit_space(s.out, &s.vec, 1) != 0)
		return -ENOMEM;
	return 0;
}

/* Encodes p onto the output; see transport.h. */
int
conn_send(struct conn *c, const struct packet *p)
{
	if (c->closing)
		return -EPIPE;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > c->out_cap) {
		conn_send_error(c, PERR_SLOW_CONSUMER, NULL,
		    "more than %zu bytes of output are waiting to be read",
		    c->out_cap);
		conn_close(c, "slow consumer");
		return -ENOBUFS;
	}
	return conn_append(c, p);
}

/* Sends ERROR{code, msg[, id]} even when the output is over its cap. */
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
	return conn_append(c, &p);
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
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
		conn_schedule_finish(c);
		return;
	}
	evtimer_add(c->linger, &tv);
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
uint64_t
conn_last_read(const struct conn *c)
{
	return c->last_read;
}

/* Bytes waiting to be written. */
size_t
conn_output_len(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
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

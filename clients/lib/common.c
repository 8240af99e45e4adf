/*
 * common.c: one connection to the broker, shared by pb_client and pb_worker.
 *
 * Bytes come in through common_fill(), one read(2) of up to 64 KiB into
 * bconn.in; common_process() then cuts every complete frame off the front,
 * decodes it in place (packets borrow from the buffer), handles what any
 * role must (PING, PONG, ERROR, BYE) and hands the packet to the role's
 * function. While packets are out, the buffer is pinned: a read that needs
 * more room copies into a new buffer and retires the old one until the
 * last packet is done with it, so a handler may send, and so read, freely.
 *
 * Bytes go out through common_send(), which appends a frame to bconn.out,
 * and common_flush(), which writes until the buffer is empty and reads
 * whatever the broker sends meanwhile, so neither side can block the
 * other. While frames are being handled, output is corked and written once
 * at the end of the batch (or every COMMON_CORK_MS), one write(2) for many
 * RESULTs and RUNs.
 *
 * Liveness: the broker PINGs a silent peer; we answer. On our side, when
 * nothing has been heard for heartbeat_ms we PING, and when that PING is
 * not answered within twice heartbeat_ms the connection is declared dead,
 * so a vanished TCP peer cannot hang a wait forever.
 *
 * Memory: a failed allocation is returned as -ENOMEM and loses nothing. A
 * frame that cannot be decoded, or that the role's function could not
 * handle, is put back at the front of the input; a PING whose PONG could
 * not be encoded too. A retired buffer carries its own link, so dropping
 * input never allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clients/lib/internal.h"
#include "util/util.h"

/* Why the last connect in this thread failed, for pb_client_last_error(). */
static _Thread_local char common_connect_err[PROTO_ERRLEN];

/* uthash's non-fatal OOM flag; see COMMON_HASH_ADD() in internal.h. */
_Thread_local bool common_hash_oom;

/* Records the sentence of a failed connect for this thread. */
void
common_set_connect_error(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(common_connect_err, sizeof(common_connect_err), fmt, ap);
	va_end(ap);
}

/* Returns the sentence of this thread's last failed connect, or "". */
const char *
common_connect_error(void)
{
	return common_connect_err;
}

/*
 * How long one wait of a call given timeout_ms may last: -1 (no bound)
 * for a negative timeout, 0 for 0, else what is left until deadline.
 */
int
common_wait_ms(int timeout_ms, uint64_t deadline)
{
	if (timeout_ms <= 0)
		return timeout_ms < 0 ? -1 : 0;
	return common_ms_left(deadline);
}

/* Milliseconds until deadline: 0 when past, -1 for no deadline (0). */
int
common_ms_left(uint64_t deadline)
{
	uint64_t	now;

	if (deadline == 0)
		return -1;
	now = clock_now_ms();
	if (now >= deadline)
		return 0;
	if (deadline - now > INT32_MAX)
		return INT32_MAX;
	return (int)(deadline - now);
}

/* Prepares b, not connected, for common_open() or common_adopt(). */
void
common_init(struct bconn *b)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->err_code = -1;
	b->max_frame = PROTO_MAX_FRAME_DEFAULT;
	msgpack_sbuffer_init(&b->out);
}

/* Frees the input buffer now, or retires it while packets point into it. */
static void
common_drop_input(struct bconn *b)
{
	if (b->in != NULL && b->pinned > 0) {
		b->in->next = b->retired;
		b->retired = b->in;
	} else
		free(b->in);
	b->in = NULL;
	b->in_cap = b->in_start = b->in_end = 0;
}

/* Frees the buffers retired while pinned; called when the pin drops. */
static void
common_free_retired(struct bconn *b)
{
	struct bconn_inbuf	*old;

	while ((old = b->retired) != NULL) {
		b->retired = old->next;
		free(old);
	}
}

/* Closes the socket and resets the connection state; see internal.h. */
void
common_reset(struct bconn *b)
{
	tls_end(b);
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	common_drop_input(b);
	b->out.size = 0;
	b->out_off = 0;
	b->dead = false;
	b->dead_err = 0;
	b->got_bye = false;
	b->max_frame = PROTO_MAX_FRAME_DEFAULT;
	b->heartbeat_ms = 0;
	b->ping_sent = 0;
	b->why[0] = b->bye[0] = '\0';
}

/* Frees everything; see internal.h. */
void
common_clear(struct bconn *b)
{
	common_reset(b);
	common_free_retired(b);
	msgpack_sbuffer_destroy(&b->out);
	msgpack_sbuffer_init(&b->out);
}

/* Marks b dead with a reason; see internal.h. */
void
common_kill(struct bconn *b, int err, const char *fmt, ...)
{
	va_list	ap;

	if (b->dead)
		return;
	b->dead = true;
	b->dead_err = err;
	va_start(ap, fmt);
	vsnprintf(b->why, sizeof(b->why), fmt, ap);
	va_end(ap);
	if (b->fd >= 0)
		(void)shutdown(b->fd, SHUT_RDWR);
	/* After a protocol error nothing more from this peer is believed. */
	if (err == -EPROTO)
		b->in_start = b->in_end;
	b->out.size = 0;
	b->out_off = 0;
	b->ping_sent = 0;
}

/* Makes room for one read of COMMON_READ_CHUNK bytes at in_end. */
static int
common_reserve(struct bconn *b)
{
	struct bconn_inbuf	*nbuf;
	size_t			 ncap;

	if (b->pinned == 0) {
		if (b->in_start == b->in_end)
			b->in_start = b->in_end = 0;
		else if (b->in_start > 0 &&
		    b->in_cap - b->in_end < COMMON_READ_CHUNK) {
			memmove(b->in->data, b->in->data + b->in_start,
			    b->in_end - b->in_start);
			b->in_end -= b->in_start;
			b->in_start = 0;
		}
	}
	if (b->in_cap - b->in_end >= COMMON_READ_CHUNK)
		return 0;
	ncap = b->in_cap == 0 ? 2 * COMMON_READ_CHUNK : b->in_cap * 2;
	while (ncap - b->in_end < COMMON_READ_CHUNK)
		ncap *= 2;
	if (b->pinned == 0) {
		if ((nbuf = realloc(b->in, sizeof(*nbuf) + ncap)) == NULL)
			return -ENOMEM;
	} else {
		/* Decoded packets point into the old buffer: keep it. */
		if ((nbuf = malloc(sizeof(*nbuf) + ncap)) == NULL)
			return -ENOMEM;
		if (b->in != NULL) {
			if (b->in_end > 0)
				memcpy(nbuf->data, b->in->data, b->in_end);
			b->in->next = b->retired;
			b->retired = b->in;
		}
	}
	nbuf->next = NULL;
	b->in = nbuf;
	b->in_cap = ncap;
	return 0;
}

/*
 * Reads once into the input buffer. Returns the byte count, -EAGAIN when
 * nothing was there, -ENOMEM when the buffer could not grow (nothing was
 * read), or the dead connection's error (EOF, read error).
 */
static int
common_fill(struct bconn *b)
{
	ssize_t	n;
	int	r;

	if (b->dead || b->fd < 0)
		return b->dead ? b->dead_err : -ENOTCONN;
	if ((r = common_reserve(b)) != 0)
		return r;
	for (;;) {
		n = b->ssl != NULL ? tls_read(b, b->in->data + b->in_end,
		    b->in_cap - b->in_end) : read(b->fd, b->in->data +
		    b->in_end, b->in_cap - b->in_end);
		if (n > 0)
			break;
		if (n == 0) {
			common_kill(b, -ENOTCONN, "connection to the broker "
			    "lost");
			return -ENOTCONN;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		common_kill(b, -ENOTCONN, "connection to the broker lost (%s)",
		    strerror(errno));
		return -ENOTCONN;
	}
	b->in_end += (size_t)n;
	b->last_rx = clock_now_ms();
	b->ping_sent = 0;
	return (int)n;
}

/*
 * Writes all pending output, reading meanwhile, until done or until
 * deadline (monotonic ms; 0: none). 0, -ENOTCONN, -ETIMEDOUT, or -ENOMEM
 * when reading meanwhile found no memory (the rest stays queued).
 */
static int
common_flush(struct bconn *b, uint64_t deadline)
{
	struct pollfd	pfd;
	ssize_t		n;
	int		r;

	while (b->out_off < b->out.size) {
		if (b->dead || b->fd < 0) {
			b->out.size = b->out_off = 0;
			return -ENOTCONN;
		}
		if (b->ssl != NULL)
			n = tls_write(b, b->out.data + b->out_off,
			    b->out.size - b->out_off);
		else if (b->use_send)
			n = send(b->fd, b->out.data + b->out_off,
			    b->out.size - b->out_off, MSG_NOSIGNAL);
		else
			n = write(b->fd, b->out.data + b->out_off,
			    b->out.size - b->out_off);
		if (n >= 0) {
			b->out_off += (size_t)n;
			b->writes++;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == ENOTSOCK && b->use_send) {
			/* An inherited pipe-like descriptor. */
			b->use_send = false;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			common_kill(b, -ENOTCONN, "connection to the broker "
			    "lost (%s)", strerror(errno));
			continue;
		}
		/* Full: wait to write, but keep reading what comes. */
		pfd.fd = b->fd;
		pfd.events = POLLOUT | POLLIN;
		r = poll(&pfd, 1, common_ms_left(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			r = common_fill(b);
			if (r < 0 && r != -EAGAIN && !b->dead)
				return r;	/* ENOMEM */
		}
	}
	b->out.size = 0;
	b->out_off = 0;
	return 0;
}

/* Encodes p and writes it unless corked; see internal.h. */
int
common_send(struct bconn *b, const struct packet *p)
{
	size_t	old = b->out.size;
	int	r;

	if (b->dead || b->fd < 0)
		return -ENOTCONN;
	if ((r = packet_encode(p, PROTO_TO_BROKER, &b->out)) != 0)
		return r;
	if (b->out.size - old - PROTO_HEADER_LEN > b->max_frame) {
		b->out.size = old;
		return -EMSGSIZE;
	}
	if (b->cork > 0) {
		if (old == b->out_off)
			b->cork_since = clock_now_ms();
		if (b->out.size - b->out_off < COMMON_CORK_BYTES)
			return 0;
	}
	/*
	 * The frame is queued now: saying ENOMEM would make the caller think
	 * it was not sent. What a blocked write could not finish because a
	 * read found no memory goes out with the next wait.
	 */
	if ((r = common_flush(b, 0)) == -ENOMEM)
		return 0;
	return r;
}

/* Writes what is queued, corked or not; see internal.h. */
int
common_push(struct bconn *b)
{
	int	r;

	if (b->dead || b->fd < 0)
		return -ENOTCONN;
	r = common_flush(b, 0);
	return r == -ENOMEM ? 0 : r;
}

/* Sends a PING with a fresh n; see internal.h. */
int64_t
common_ping(struct bconn *b)
{
	struct packet	p;
	int		r;

	packet_init(&p, PKT_PING);
	p.n = ++b->ping_n;
	if ((r = common_send(b, &p)) != 0)
		return r;
	if (b->ping_sent == 0)
		b->ping_sent = clock_now_ms();
	return (int64_t)p.n;
}

/* Reads the body length of the frame at the front of the input, if any. */
static int
common_peek(const struct bconn *b, uint32_t *ret_len)
{
	size_t	avail = b->in_end - b->in_start;

	if (avail < PROTO_HEADER_LEN)
		return -EAGAIN;
	/* The broker may add a few keys to what a peer sent at the limit. */
	return frame_header(b->in->data + b->in_start, avail,
	    b->max_frame + PROTO_FRAME_SLACK, ret_len);
}

/* True when a whole frame is buffered; see internal.h. */
bool
common_has_frame(const struct bconn *b)
{
	uint32_t	len;
	int		r;

	r = common_peek(b, &len);
	if (r == -EAGAIN)
		return false;
	if (r != 0)
		return true;	/* a bad header: processing reports it */
	return b->in_end - b->in_start - PROTO_HEADER_LEN >= len;
}

/*
 * Cuts the next complete frame off the input and decodes it into *p, which
 * then borrows from the (pinned) buffer. Returns 1, 0 when no whole frame
 * is there, -ENOMEM (the frame stays in the input), or -EPROTO (b is then
 * dead).
 */
static int
common_next(struct bconn *b, struct packet *p)
{
	const uint8_t	*body;
	char		 err[PROTO_ERRLEN];
	uint32_t	 len;
	int		 r;

	r = common_peek(b, &len);
	if (r == -EAGAIN)
		return 0;
	if (r == -EMSGSIZE) {
		common_kill(b, -EPROTO, "the broker sent a frame of %lu bytes, "
		    "more than the limit of %lu",
		    (unsigned long)frame_header_len(b->in->data + b->in_start),
		    (unsigned long)b->max_frame);
		return -EPROTO;
	}
	if (r != 0) {
		common_kill(b, -EPROTO, "the broker sent an empty frame");
		return -EPROTO;
	}
	if (b->in_end - b->in_start - PROTO_HEADER_LEN < len)
		return 0;
	body = b->in->data + b->in_start + PROTO_HEADER_LEN;
	/* Consume before handling, so a nested dispatch never sees it again. */
	b->in_start += PROTO_HEADER_LEN + (size_t)len;
	r = packet_decode(body, len, PROTO_FROM_BROKER, p, err);
	if (r == -ENOMEM) {
		/* Not the broker's fault: the next call decodes it again. */
		b->in_start -= PROTO_HEADER_LEN + (size_t)len;
		return -ENOMEM;
	}
	if (r != 0) {
		common_kill(b, -EPROTO, "the broker sent a bad packet: %s",
		    err);
		return -EPROTO;
	}
	return 1;
}

/* Copies a borrowed wire string into a sentence buffer. */
static void
common_copy_text(char *dst, size_t size, const struct pbytes *src)
{
	size_t	n = src->len < size - 1 ? src->len : size - 1;

	if (n > 0)
		memcpy(dst, src->ptr, n);
	dst[n] = '\0';
}

/*
 * Handles what every role handles the same way: PING, PONG, ERROR, BYE.
 * Returns 0, or -ENOMEM when a PING's PONG could not be encoded.
 */
static int
common_generic(struct bconn *b, const struct packet *p)
{
	struct packet	pong;
	const char	*name;

	switch (p->type) {
	case PKT_PING:
		packet_init(&pong, PKT_PONG);
		pong.n = p->n;
		if (common_send(b, &pong) == -ENOMEM)
			return -ENOMEM;
		break;
	case PKT_PONG:
		if (p->n > b->pong_n)
			b->pong_n = p->n;
		break;
	case PKT_ERROR:
		b->err_code = (int)p->code;
		if (p->msg.len > 0)
			common_copy_text(b->err, sizeof(b->err), &p->msg);
		else {
			name = proto_error_name(p->code);
			snprintf(b->err, sizeof(b->err), "%s",
			    name != NULL ? name : "ERROR");
		}
		break;
	case PKT_BYE:
		b->got_bye = true;
		common_copy_text(b->bye, sizeof(b->bye), &p->reason);
		break;
	default:
		break;
	}
	return 0;
}

/* Handles every complete frame; see internal.h. */
int
common_process(struct bconn *b, bconn_packet_fn fn, void *arg)
{
	struct packet	p;
	size_t		at;
	int		n = 0, r = 0;

	b->pinned++;
	b->cork++;
	for (;;) {
		if (b->out_off < b->out.size &&
		    clock_now_ms() - b->cork_since >= COMMON_CORK_MS) {
			/* A long batch: let what it produced so far go. */
			(void)common_flush(b, 0);
			b->cork_since = clock_now_ms();
		}
		at = b->in_start;
		if ((r = common_next(b, &p)) <= 0)
			break;
		if ((r = common_generic(b, &p)) == 0)
			r = fn(b, &p, arg);
		packet_clear(&p);
		if (r == -ENOMEM && !b->dead && b->in != NULL) {
			/* Nothing was done with it: the next call retries. */
			b->in_start = at;
			break;
		}
		n++;
		if (r != 0)
			break;
	}
	if (--b->cork == 0 && b->out_off < b->out.size)
		(void)common_flush(b, 0);
	if (--b->pinned == 0)
		common_free_retired(b);
	return r < 0 ? r : n;
}

/*
 * Keeps the connection alive: PING when idle, give up when unanswered.
 * Returns 0, or -ENOMEM when the PING could not be encoded (the next call
 * tries again).
 */
static int
common_liveness(struct bconn *b)
{
	uint64_t	now, hb = b->heartbeat_ms;

	if (hb == 0 || b->dead || b->fd < 0)
		return 0;
	now = clock_now_ms();
	if (b->ping_sent != 0) {
		if (now - b->ping_sent >= 2 * hb)
			common_kill(b, -ENOTCONN, "connection to the broker "
			    "lost (no answer for %llu ms)",
			    (unsigned long long)(now - b->last_rx));
	} else if (now - b->last_rx >= hb && common_ping(b) == -ENOMEM)
		return -ENOMEM;
	return 0;
}

/* When b's liveness next needs a look; see internal.h. */
uint64_t
common_liveness_due(const struct bconn *b)
{
	if (b->heartbeat_ms == 0)
		return 0;
	return b->ping_sent != 0 ? b->ping_sent + 2 * b->heartbeat_ms :
	    b->last_rx + b->heartbeat_ms;
}

/* Waits for input and reads once; see internal.h. */
int
common_wait(struct bconn *b, int timeout_ms)
{
	struct pollfd	pfd;
	uint64_t	now, due;
	int		ms = timeout_ms, r;

	if (b->fd < 0)
		return -ENOTCONN;
	if (!b->dead && b->out_off < b->out.size)
		(void)common_flush(b, timeout_ms < 0 ? 0 :
		    clock_now_ms() + (uint64_t)timeout_ms);
	if (b->dead)
		return b->dead_err;
	if (b->heartbeat_ms > 0) {
		now = clock_now_ms();
		due = common_liveness_due(b);
		due = due > now ? due - now : 0;
		if (ms < 0 || due < (uint64_t)ms)
			ms = due > INT32_MAX ? INT32_MAX : (int)due;
	}
	/* What OpenSSL already decrypted is there to read without a wait. */
	if (ms != 0 && !tls_pending(b)) {
		pfd.fd = b->fd;
		pfd.events = POLLIN;
		if (b->wait_lock != NULL)
			pthread_mutex_unlock(b->wait_lock);
		r = poll(&pfd, 1, ms);
		if (r < 0)
			r = -errno;
		if (b->wait_lock != NULL)
			pthread_mutex_lock(b->wait_lock);
		if (r < 0)
			return r;	/* EINTR: let the caller look around */
		if (b->fd < 0 || b->dead)
			return b->fd < 0 ? -ENOTCONN : b->dead_err;
		r = r > 0 ? common_fill(b) : 0;
	} else
		r = common_fill(b);
	if (r == -ENOMEM || (r = common_liveness(b)) == -ENOMEM)
		return -ENOMEM;
	return b->dead ? b->dead_err : 0;
}

/* What the handshake learned from WELCOME. */
struct common_welcome {
	bool	done;
};

/* Handles packets until WELCOME: ERROR and BYE refuse, others are wrong. */
static int
common_handshake_packet(struct bconn *b, const struct packet *p, void *arg)
{
	struct common_welcome	*w = arg;
	const char		*name;

	switch (p->type) {
	case PKT_WELCOME:
		if (p->version != PROTO_VERSION) {
			common_kill(b, -EPROTO, "the broker speaks protocol "
			    "version %llu, not %d",
			    (unsigned long long)p->version, PROTO_VERSION);
			return -EPROTO;
		}
		if (p->max_frame >= 1)
			b->max_frame = p->max_frame >
			    UINT32_MAX - PROTO_FRAME_SLACK ?
			    UINT32_MAX - PROTO_FRAME_SLACK :
			    (uint32_t)p->max_frame;
		b->heartbeat_ms = p->heartbeat_ms;
		w->done = true;
		return 1;	/* what follows belongs to the role */
	case PKT_PING:
		return 0;
	case PKT_ERROR:
		common_kill(b, -EPROTO, "%s", b->err);
		return -EPROTO;
	case PKT_BYE:
		common_kill(b, -ENOTCONN, "the broker is going away%s%s",
		    b->bye[0] != '\0' ? ": " : "", b->bye);
		return -ENOTCONN;
	default:
		name = packet_type_name(p->type);
		common_kill(b, -EPROTO, "the broker sent %s before WELCOME",
		    name != NULL ? name : "a packet");
		return -EPROTO;
	}
}

/*
 * Reads the first non-empty line of a token file into buf. 0, or a
 * negative errno with the reason for pb_client_last_error(NULL).
 */
static int
common_token_file(const char *path, char *buf, size_t len)
{
	FILE	*f;
	char	 line[512];
	int	 r = -EINVAL;

	if ((f = fopen(path, "re")) == NULL) {
		r = -errno;
		common_set_connect_error("PATCHBAY_TOKEN_FILE %s: %s", path,
		    strerror(errno));
		return r;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (strlen(line) < len) {
			memcpy(buf, line, strlen(line) + 1);
			r = 0;
		}
		break;
	}
	fclose(f);
	explicit_bzero(line, sizeof(line));
	if (r != 0)
		common_set_connect_error("PATCHBAY_TOKEN_FILE %s holds no token "
		    "(of at most %zu bytes)", path, len - 1);
	return r;
}

/*
 * Says HELLO on b->fd and waits for WELCOME until deadline. On failure the
 * socket is closed and the reason recorded for pb_client_last_error(NULL).
 */
static int
common_handshake(struct bconn *b, enum proto_role role,
    const struct pb_options *opts, uint64_t deadline, const char *where)
{
	struct common_welcome	 w = { false };
	struct packet		 p;
	const char		*name, *token;
	char			 from_file[256];
	int			 r;

	packet_init(&p, PKT_HELLO);
	p.version = PROTO_VERSION;
	p.role = role;
	name = opts != NULL && opts->name != NULL ? opts->name :
	    program_invocation_short_name;
	token = opts != NULL && opts->token != NULL ? opts->token :
	    getenv("PATCHBAY_TOKEN");
	if (token == NULL && getenv("PATCHBAY_TOKEN_FILE") != NULL) {
		if ((r = common_token_file(getenv("PATCHBAY_TOKEN_FILE"),
		    from_file, sizeof(from_file))) != 0)
			goto fail;
		token = from_file;
	}
	if (name != NULL && *name != '\0') {
		p.has |= PF_NAME;
		p.name.ptr = (const uint8_t *)name;
		p.name.len = (uint32_t)strnlen(name, PROTO_MAX_FRAME_HELLO + 1);
	}
	if (token != NULL && *token != '\0') {
		p.has |= PF_TOKEN;
		p.token.ptr = (const uint8_t *)token;
		p.token.len = (uint32_t)strnlen(token,
		    PROTO_MAX_FRAME_HELLO + 1);
	}
	b->max_frame = PROTO_MAX_FRAME_HELLO;
	r = common_send(b, &p);
	b->max_frame = PROTO_MAX_FRAME_DEFAULT;
	if (r == -EMSGSIZE || r == -EINVAL) {
		common_set_connect_error("HELLO to %s is too large: the name "
		    "or the token is too long", where);
		r = -EINVAL;
		goto fail;
	}
	while (r == 0) {
		if ((r = common_process(b, common_handshake_packet, &w)) < 0)
			break;
		r = 0;
		if (w.done) {
			b->last_rx = clock_now_ms();
			return 0;
		}
		if (b->dead) {
			/* process() consumed every whole frame before this. */
			r = b->dead_err;
			if (r == -ENOTCONN)
				snprintf(b->why, sizeof(b->why), "%s closed the "
				    "connection during the handshake", where);
			break;
		}
		if (common_ms_left(deadline) == 0) {
			common_kill(b, -ETIMEDOUT, "no WELCOME from %s within "
			    "the connect timeout", where);
			r = -ETIMEDOUT;
			break;
		}
		if ((r = common_wait(b, common_ms_left(deadline))) == -ENOMEM)
			break;
		r = 0;
	}
	common_set_connect_error("%s", b->why[0] != '\0' ? b->why :
	    strerror(-r));
fail:
	common_reset(b);
	return r;
}

/* Connects to endpoint and does the handshake; see internal.h. */
int
common_open(struct bconn *b, const char *endpoint, enum proto_role role,
    const struct pb_options *opts)
{
	struct endpoint	 ep;
	char		 buf[sizeof(ep.text)], err[PROTO_ERRLEN];
	uint64_t	 deadline;
	int		 fd, r, timeout_ms;

	common_set_connect_error("%s", "");
	if (endpoint == NULL) {
		if (endpoint_default(buf, sizeof(buf), true) != 0) {
			common_set_connect_error("the default endpoint is too "
			    "long");
			return -ENAMETOOLONG;
		}
		endpoint = buf;
	}
	if ((r = endpoint_parse(endpoint, &ep, err)) != 0) {
		common_set_connect_error("%s", err);
		return r;
	}
	timeout_ms = opts != NULL && opts->connect_timeout_ms > 0 ?
	    opts->connect_timeout_ms : 5000;
	if ((r = endpoint_connect(&ep, timeout_ms, &fd)) != 0) {
		common_set_connect_error("cannot connect to %s: %s", ep.text,
		    strerror(-r));
		return r;
	}
	b->fd = fd;
	b->use_send = true;
	deadline = clock_now_ms() + (uint64_t)timeout_ms;
	if (ep.kind == ENDPOINT_TLS && (r = tls_start(b, &ep, opts,
	    deadline)) != 0) {
		common_reset(b);
		return r;
	}
	return common_handshake(b, role, opts, deadline, ep.text);
}

/* The brokers of an endpoint list or of the default; see internal.h. */
int
common_endpoints(const char *endpoint, char ***ret)
{
	char	def[PATH_MAX + 64], err[PROTO_ERRLEN];
	int	r;

	if (endpoint == NULL) {
		if (endpoint_default(def, sizeof(def), true) != 0) {
			common_set_connect_error("the default endpoint is too "
			    "long");
			return -ENAMETOOLONG;
		}
		endpoint = def;
	}
	if ((r = endpoint_list_split(endpoint, ret, err)) != 0)
		common_set_connect_error("%s", err);
	return r;
}

/* Connects to the first broker of a list that takes b; see internal.h. */
int
common_open_any(struct bconn *b, char *const *eps, size_t start,
    enum proto_role role, const struct pb_options *opts, size_t *ret_at)
{
	char	why[PROTO_ERRLEN];
	size_t	n = strv_len(eps), i, at, len = 0;
	int	r, first = 0;

	why[0] = '\0';
	for (i = 0; i < n; i++) {
		at = (start + i) % n;
		if ((r = common_open(b, eps[at], role, opts)) == 0) {
			*ret_at = at;
			return 0;
		}
		/* A refusal says more than an unreachable broker. */
		if (first == 0 || r == -EPROTO || r == -EINVAL)
			first = r;
		if (len < sizeof(why))
			len += (size_t)snprintf(why + len, sizeof(why) - len,
			    "%s%s", len > 0 ? "; " : "", common_connect_error());
	}
	common_set_connect_error("%s", why);
	return first != 0 ? first : -EINVAL;
}

/* Takes an inherited descriptor and does the handshake; see internal.h. */
int
common_adopt(struct bconn *b, int fd, enum proto_role role,
    const struct pb_options *opts)
{
	int	flags, timeout_ms, r;

	common_set_connect_error("%s", "");
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		r = -errno;
		common_set_connect_error("inherited descriptor %d: %s", fd,
		    strerror(-r));
		close(fd);
		return r;
	}
	timeout_ms = opts != NULL && opts->connect_timeout_ms > 0 ?
	    opts->connect_timeout_ms : 5000;
	b->fd = fd;
	b->use_send = true;
	return common_handshake(b, role, opts,
	    clock_now_ms() + (uint64_t)timeout_ms, "the broker");
}

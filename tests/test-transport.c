/*
 * test-transport.c: listeners and connections (endpoints: test-util.c).
 *
 * Connection tests put a conn on one end of a socketpair and play the peer
 * on the other end with raw bytes, running the event loop until what we
 * wait for has happened (or a deadline passed).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "tests/harness.h"
#include "transport/transport.h"

/* ---- listeners --------------------------------------------------------- */

static int	accepted_fd = -1;

/* Accept callback: keeps the last accepted descriptor. */
static void
test_accept(struct listener *l, int fd, const struct endpoint *ep, void *arg)
{
	(void)l; (void)ep;
	if (accepted_fd >= 0)
		close(accepted_fd);
	accepted_fd = fd;
	event_base_loopbreak(arg);
}

/* Runs base until it breaks or ms pass. */
static void
run_loop(struct event_base *base, int ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

START_TEST(listener_unix_socket_private_and_removed)
{
	struct event_base	*base = event_base_new();
	struct listener		*l;
	struct endpoint		 ep;
	struct stat		 st;
	char			 dir[256], sub[300], s[320], err[PROTO_ERRLEN];
	int			 fd;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/new/dir", dir);
	snprintf(s, sizeof(s), "unix:%s/pb.sock", sub);
	ck_assert_int_eq(endpoint_parse(s, &ep, err), 0);
	ck_assert_int_eq(listener_new(base, &ep, NULL, test_accept, base, &l, err),
	    0);
	ck_assert_int_eq(stat(sub, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(ep.path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);

	ck_assert_int_eq(endpoint_connect(&ep, 1000, &fd), 0);
	run_loop(base, 2000);
	ck_assert_int_ge(accepted_fd, 0);
	close(fd);
	close(accepted_fd);
	accepted_fd = -1;

	listener_free(l);
	ck_assert_int_eq(stat(ep.path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
	event_base_free(base);
}
END_TEST

START_TEST(listener_replaces_stale_refuses_live)
{
	struct event_base	*base = event_base_new();
	struct listener		*l, *l2;
	struct endpoint		 ep;
	struct sockaddr_un	 sun;
	char			 dir[256], s[320], err[PROTO_ERRLEN];
	int			 fd;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(s, sizeof(s), "unix:%s/pb.sock", dir);
	ck_assert_int_eq(endpoint_parse(s, &ep, err), 0);

	/* A socket file nobody listens on: what a killed broker leaves. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ep.path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	ck_assert_int_eq(access(ep.path, F_OK), 0);

	ck_assert_int_eq(listener_new(base, &ep, NULL, test_accept, base, &l, err),
	    0);

	/* A second broker on the same live socket is refused, clearly. */
	err[0] = '\0';
	ck_assert_int_eq(listener_new(base, &ep, NULL, test_accept, base, &l2, err),
	    -EADDRINUSE);
	ck_assert_ptr_nonnull(strstr(err, "another broker is listening on"));
	ck_assert_ptr_nonnull(strstr(err, ep.path));
	/* ...and the refusal did not remove the live broker's socket. */
	ck_assert_int_eq(access(ep.path, F_OK), 0);
	listener_free(l);
	event_base_free(base);
}
END_TEST

START_TEST(listener_refuses_non_socket_file)
{
	struct event_base	*base = event_base_new();
	struct listener		*l;
	struct endpoint		 ep;
	char			 dir[256], s[320], err[PROTO_ERRLEN];
	FILE			*f;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(s, sizeof(s), "unix:%s/pb.sock", dir);
	ck_assert_int_eq(endpoint_parse(s, &ep, err), 0);
	f = fopen(ep.path, "w");
	fputs("precious", f);
	fclose(f);
	ck_assert_int_eq(listener_new(base, &ep, NULL, test_accept, base, &l, err),
	    -EEXIST);
	ck_assert_ptr_nonnull(strstr(err, "is not a socket"));
	ck_assert_int_eq(access(ep.path, F_OK), 0);
	event_base_free(base);
}
END_TEST

START_TEST(listener_tcp_ephemeral_port_v4_and_v6)
{
	static const char *const specs[] = { "tcp:127.0.0.1:0", "tcp:[::1]:0" };
	struct event_base	*base = event_base_new();
	struct listener		*l;
	struct endpoint		 ep, bound;
	char			 err[PROTO_ERRLEN];
	int			 fd;

	for (size_t i = 0; i < 2; i++) {
		ck_assert_int_eq(endpoint_parse(specs[i], &ep, err), 0);
		if (listener_new(base, &ep, NULL, test_accept, base, &l, err) != 0) {
			/* No IPv6 on this host: only that case may fail. */
			ck_assert_uint_eq(i, 1);
			continue;
		}
		bound = *listener_endpoint(l);
		ck_assert_str_ne(bound.port, "0");
		ck_assert_int_eq(endpoint_parse(bound.text, &ep, err), 0);
		ck_assert_int_eq(endpoint_connect(&ep, 1000, &fd), 0);
		run_loop(base, 2000);
		ck_assert_int_ge(accepted_fd, 0);
		close(fd);
		close(accepted_fd);
		accepted_fd = -1;
		listener_free(l);
	}
	event_base_free(base);
}
END_TEST

/* ---- connections ------------------------------------------------------- */

struct conn_log {
	struct event_base	*base;
	int			 npackets;
	uint64_t		 pings[64];
	bool			 closed;
	char			 why[160];
	int			 want;		/* break after this many */
};

/* Records a PING's n (the test peer sends PINGs as its frames). */
static void
log_packet(struct conn *c, const struct packet *p, void *arg)
{
	struct conn_log	*lg = arg;

	(void)c;
	if (p->type == PKT_PING && lg->npackets < 64)
		lg->pings[lg->npackets] = p->n;
	lg->npackets++;
	if (lg->npackets == lg->want)
		event_base_loopbreak(lg->base);
}

/* Records the close. */
static void
log_closed(struct conn *c, const char *why, void *arg)
{
	struct conn_log	*lg = arg;

	(void)c;
	lg->closed = true;
	snprintf(lg->why, sizeof(lg->why), "%s", why);
	event_base_loopbreak(lg->base);
}

static const struct conn_ops log_ops = { log_packet, log_closed };

/* Appends one encoded PING{n} frame (to the broker) to buf. */
static size_t
ping_frame(uint8_t *buf, uint64_t n)
{
	msgpack_sbuffer	sb;
	struct packet	p;
	size_t		len;

	msgpack_sbuffer_init(&sb);
	packet_init(&p, PKT_PING);
	p.n = n;
	ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), 0);
	memcpy(buf, sb.data, sb.size);
	len = sb.size;
	msgpack_sbuffer_destroy(&sb);
	return len;
}

/* Reads one frame from fd (blocking, with a poll bound) and decodes it. */
static int
read_packet(int fd, struct packet *p, uint8_t *buf, size_t cap)
{
	size_t	 got = 0;
	uint32_t len = 0;
	char	 err[PROTO_ERRLEN];

	fcntl(fd, F_SETFL, 0);
	while (got < 4) {
		ssize_t n = read(fd, buf + got, 4 - got);

		if (n <= 0)
			return -EIO;
		got += (size_t)n;
	}
	ck_assert_int_eq(frame_header(buf, 4, (uint32_t)cap - 4, &len), 0);
	while (got < 4 + len) {
		ssize_t n = read(fd, buf + got, 4 + len - got);

		if (n <= 0)
			return -EIO;
		got += (size_t)n;
	}
	return packet_decode(buf + 4, len, PROTO_FROM_BROKER, p, err);
}

START_TEST(conn_reassembles_split_and_batched_frames)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	uint8_t			 buf[4096];
	size_t			 len = 0;
	int			 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 0);
	ck_assert_ptr_nonnull(c);
	for (uint64_t i = 1; i <= 20; i++)
		len += ping_frame(buf + len, i);
	lg.want = 20;
	/* The first half byte by byte, with the loop running in between. */
	for (size_t i = 0; i < len / 2; i++) {
		ck_assert_int_eq(write(sv[1], buf + i, 1), 1);
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	/* The rest in one write: several frames in one read. */
	ck_assert_int_eq(write(sv[1], buf + len / 2, len - len / 2),
	    (ssize_t)(len - len / 2));
	run_loop(base, 3000);
	ck_assert_int_eq(lg.npackets, 20);
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(lg.pings[i], (uint64_t)i + 1);
	ck_assert(!lg.closed);
	conn_free(c);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

/*
 * conn_hold_output(): output queues but nothing reaches the peer until it
 * is released, whether it was sent from a read callback or not; then all
 * of it goes, in order.
 */
START_TEST(conn_hold_output_until_released)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	struct packet		 p;
	uint8_t			 buf[256];
	int			 sv[2], avail = -1;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 0);
	ck_assert_ptr_nonnull(c);
	conn_hold_output(true);
	for (uint64_t i = 1; i <= 3; i++) {
		packet_init(&p, PKT_PONG);
		p.n = i;
		ck_assert_int_eq(conn_send(c, &p), 0);
	}
	run_loop(base, 100);
	ck_assert_int_eq(ioctl(sv[1], FIONREAD, &avail), 0);
	ck_assert_int_eq(avail, 0);
	conn_hold_output(false);
	run_loop(base, 100);
	for (uint64_t i = 1; i <= 3; i++) {
		ck_assert_int_eq(read_packet(sv[1], &p, buf, sizeof(buf)), 0);
		ck_assert_int_eq(p.type, PKT_PONG);
		ck_assert_uint_eq(p.n, i);
	}
	conn_free(c);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

START_TEST(conn_oversized_frame_gets_error_and_close)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	struct packet		 p;
	uint8_t			 hdr[4] = { 0, 0, 0x10, 0x01 }; /* 4097 */
	uint8_t			 buf[1024];
	int			 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 0);
	ck_assert_int_eq(write(sv[1], hdr, 4), 4);
	run_loop(base, 3000);
	ck_assert(lg.closed);
	ck_assert_str_eq(lg.why, "frame too large");
	ck_assert_int_eq(read_packet(sv[1], &p, buf, sizeof(buf)), 0);
	ck_assert_int_eq(p.type, PKT_ERROR);
	ck_assert_int_eq(p.code, PERR_FRAME_TOO_LARGE);
	ck_assert_ptr_nonnull(memmem(p.msg.ptr, p.msg.len, "4097", 4));
	ck_assert_ptr_nonnull(memmem(p.msg.ptr, p.msg.len, "4096", 4));
	packet_clear(&p);
	(void)c;	/* freed by itself after the closed callback */
	close(sv[1]);
	event_base_free(base);
}
END_TEST

/* Bytes malloc has handed out now, from the heap and from mmap. */
static size_t
heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/*
 * A frame that arrives slowly holds broker memory in proportion to what
 * has arrived, not to the length its header declares; a header split
 * across reads is checked against the limit like any other; the frame,
 * once whole, is read intact.
 */
START_TEST(conn_partial_frame_holds_what_arrived)
{
	enum { BIG = 600 * 1000 };
	static uint8_t		 frame[BIG + 64];
	static const uint8_t	 head[] = { 0x83, 0xa1, 't', 0xa4, 'P', 'I',
	    'N', 'G', 0xa1, 'n', 0x07, 0xa1, 'x', 0xc6 };
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base }, lg2 = { .base = base };
	struct conn		*c, *c2;
	struct packet		 p;
	uint8_t			 buf[1024];
	size_t			 len = 4, before, off;
	int			 sv[2], sv2[2];

	/* {t:"PING", n:7, x:<bin of BIG bytes>}: x is skipped. */
	memcpy(frame + len, head, sizeof(head));
	len += sizeof(head);
	frame[len++] = (uint8_t)(BIG >> 24);
	frame[len++] = (uint8_t)(BIG >> 16);
	frame[len++] = (uint8_t)(BIG >> 8);
	frame[len++] = (uint8_t)BIG;
	memset(frame + len, 'b', BIG);
	len += BIG;
	frame[0] = (uint8_t)((len - 4) >> 24);
	frame[1] = (uint8_t)((len - 4) >> 16);
	frame[2] = (uint8_t)((len - 4) >> 8);
	frame[3] = (uint8_t)(len - 4);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 0);
	ck_assert_ptr_nonnull(c);
	conn_set_max_frame(c, 1024 * 1024);
	lg.want = 1;
	before = heap_in_use();
	/* The header in two halves, then a little of the body. */
	ck_assert_int_eq(write(sv[1], frame, 2), 2);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(write(sv[1], frame + 2, 98), 98);
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_loop(base, EVLOOP_NONBLOCK);
#ifndef __SANITIZE_ADDRESS__	/* ASan's malloc does not fill mallinfo */
	ck_assert_msg(heap_in_use() < before + 64 * 1024,
	    "%zu bytes held for 100 bytes of a frame",
	    heap_in_use() - before);
#endif
	(void)before;
	/* The rest in pieces. */
	for (off = 100; off < len; off += 50000) {
		size_t	n = len - off < 50000 ? len - off : 50000;

		ck_assert_int_eq(write(sv[1], frame + off, n), (ssize_t)n);
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	run_loop(base, 3000);
	ck_assert_int_eq(lg.npackets, 1);
	ck_assert_uint_eq(lg.pings[0], 7);
	ck_assert(!lg.closed);
	conn_free(c);
	close(sv[1]);

	/*
	 * A header declaring 2^32 - 4 bytes, split 3 + 1 (the length once
	 * wrapped to 0 in 32 bits and the second read overflowed the kept
	 * 3 bytes): refused, and nothing else.
	 */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv2), 0);
	c2 = conn_new(base, sv2[0], 1, &log_ops, &lg2, 0);
	ck_assert_ptr_nonnull(c2);
	ck_assert_int_eq(write(sv2[1], "\xff\xff\xff", 3), 3);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(write(sv2[1], "\xfc\x80\x80\x80", 4), 4);
	run_loop(base, 3000);
	ck_assert(lg2.closed);
	ck_assert_str_eq(lg2.why, "frame too large");
	ck_assert_int_eq(read_packet(sv2[1], &p, buf, sizeof(buf)), 0);
	ck_assert_int_eq(p.code, PERR_FRAME_TOO_LARGE);
	ck_assert_ptr_nonnull(memmem(p.msg.ptr, p.msg.len, "4294967292",
	    10));
	packet_clear(&p);
	close(sv2[1]);
	event_base_free(base);
}
END_TEST

START_TEST(conn_bad_body_gets_bad_frame)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct packet		 p;
	/* length 2: fixarray of 1 element, 0x01: not a map. */
	uint8_t			 frame[] = { 0, 0, 0, 2, 0x91, 0x01 };
	uint8_t			 buf[1024];
	int			 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_ptr_nonnull(conn_new(base, sv[0], 1, &log_ops, &lg, 0));
	ck_assert_int_eq(write(sv[1], frame, sizeof(frame)),
	    (ssize_t)sizeof(frame));
	run_loop(base, 3000);
	ck_assert(lg.closed);
	ck_assert_int_eq(read_packet(sv[1], &p, buf, sizeof(buf)), 0);
	ck_assert_int_eq(p.type, PKT_ERROR);
	ck_assert_int_eq(p.code, PERR_BAD_FRAME);
	ck_assert_ptr_nonnull(memmem(p.msg.ptr, p.msg.len, "not a map", 9));
	packet_clear(&p);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

START_TEST(conn_records_peer_credentials)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	int			 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 7, &log_ops, &lg, 0);
	ck_assert(conn_peer(c)->is_unix);
	ck_assert(conn_peer(c)->has_cred);
	ck_assert_int_eq(conn_peer(c)->uid, getuid());
	ck_assert_int_eq(conn_peer(c)->pid, getpid());
	ck_assert_uint_eq(conn_id(c), 7);
	conn_free(c);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

START_TEST(conn_output_cap_drops_slow_consumer)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	struct packet		 p;
	static uint8_t		 payload[64 * 1024];
	uint8_t			 id[PROTO_ID_LEN] = { 1 };
	int			 sv[2], r = 0, sent = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 256 * 1024);
	packet_init(&p, PKT_PROGRESS);
	memcpy(p.id, id, sizeof(id));
	p.payload.ptr = payload;
	p.payload.len = sizeof(payload);
	p.has |= PF_PAYLOAD;
	/* The peer never reads: the output grows past the cap. */
	while (sent < 100 && (r = conn_send(c, &p)) == 0)
		sent++;
	ck_assert_int_eq(r, -ENOBUFS);
	ck_assert(conn_closing(c));
	ck_assert_int_eq(conn_send(c, &p), -EPIPE);
	run_loop(base, 5000);
	ck_assert(lg.closed);
	/* The reason gives the limit in force, not an unset value. */
	ck_assert_str_eq(lg.why, "slow consumer: more than 262144 bytes of "
	    "output waiting to be read (max_output)");
	close(sv[1]);
	event_base_free(base);
}
END_TEST

/*
 * Over TLS, output waits for the handshake: a peer that never even
 * finishes it (so nothing can be written) is dropped at the cap, and the
 * broker-wide total of pending output comes back to what it was once the
 * conn is gone.
 */
START_TEST(conn_tls_output_cap_drops_slow_consumer)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	struct packet		 p;
	SSL_CTX			*ctx = SSL_CTX_new(TLS_server_method());
	static uint8_t		 payload[64 * 1024];
	uint8_t			 id[PROTO_ID_LEN] = { 1 };
	size_t			 before = conn_output_total();
	int			 sv[2], r = 0, sent = 0;

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new_tls(base, sv[0], 1, &log_ops, &lg, 256 * 1024, ctx);
	ck_assert_ptr_nonnull(c);
	ck_assert(conn_peer(c)->is_tls);
	ck_assert_ptr_nonnull(conn_tls(c));
	SSL_CTX_free(ctx);	/* the session keeps its reference */
	packet_init(&p, PKT_PROGRESS);
	memcpy(p.id, id, sizeof(id));
	p.payload.ptr = payload;
	p.payload.len = sizeof(payload);
	p.has |= PF_PAYLOAD;
	while (sent < 100 && (r = conn_send(c, &p)) == 0) {
		sent++;
		event_base_loop(base, EVLOOP_NONBLOCK);
	}
	ck_assert_int_eq(r, -ENOBUFS);
	ck_assert_int_lt(sent, 10);
	ck_assert(conn_closing(c));
	ck_assert_uint_le(conn_output_len(c), 256 * 1024 + 1024);
	run_loop(base, 5000);
	ck_assert(lg.closed);
	ck_assert_str_eq(lg.why, "slow consumer: more than 262144 bytes of "
	    "output waiting to be read (max_output)");
	ck_assert_uint_eq(conn_output_total(), before);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

/*
 * Error replies count against the cap too: a peer that never reads and
 * keeps asking for errors is dropped instead of growing the output.
 */
START_TEST(conn_output_cap_counts_error_replies)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { 0 };
	struct conn		*c;
	uint8_t			 id[PROTO_ID_LEN] = { 7 };
	int			 sv[2], r = 0, sent = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 64 * 1024);
	/* About 100 bytes each: far more than socket buffer and cap hold. */
	while (sent < 100000 && (r = conn_send_error(c, PERR_NOT_FOUND, id,
	    "CANCEL: no live job of this connection has that id")) == 0)
		sent++;
	ck_assert_int_eq(r, -ENOBUFS);
	ck_assert_int_lt(sent, 100000);
	ck_assert(conn_closing(c));
	ck_assert_uint_le(conn_output_len(c), 64 * 1024 + 512);
	run_loop(base, 5000);
	ck_assert(lg.closed);
	ck_assert_ptr_nonnull(strstr(lg.why, "slow consumer"));
	close(sv[1]);
	event_base_free(base);
}
END_TEST

/* The transport suite. */
/*
 * A conn counts what it received and sent by kind, with the frames'
 * bytes (sent ones once written), and the times of its first and last
 * message on the wall clock.
 */
START_TEST(conn_counts_messages_and_bytes)
{
	struct event_base	*base = event_base_new();
	struct conn_log		 lg = { .base = base };
	struct conn		*c;
	struct msg_stats	 ms;
	struct packet		 p;
	uint8_t			 buf[4096];
	size_t			 len = 0;
	uint64_t		 before = clock_wall_ms();
	int			 sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	c = conn_new(base, sv[0], 1, &log_ops, &lg, 0);
	ck_assert_ptr_nonnull(c);
	conn_stats(c, &ms);
	ck_assert_uint_eq(msg_stats_total(&ms), 0);
	ck_assert_uint_eq(ms.first_ms, 0);
	for (uint64_t i = 1; i <= 3; i++)
		len += ping_frame(buf + len, i);
	lg.want = 3;
	ck_assert_int_eq(write(sv[1], buf, len), (ssize_t)len);
	run_loop(base, 3000);
	packet_init(&p, PKT_PONG);
	ck_assert_int_eq(conn_send(c, &p), 0);
	ck_assert_int_eq(conn_send_error(c, PERR_NOT_FOUND, NULL, "no"), 0);
	conn_stats(c, &ms);
	ck_assert_uint_eq(ms.received[MSG_HEARTBEATS], 3);
	ck_assert_uint_eq(ms.bytes_received, len);
	ck_assert_uint_eq(ms.sent[MSG_HEARTBEATS], 1);
	ck_assert_uint_eq(ms.sent[MSG_ERRORS], 1);
	ck_assert_uint_eq(msg_stats_total(&ms), 5);
	/* Bytes sent are counted as they are written: not yet. */
	ck_assert_uint_eq(ms.bytes_sent, 0);
	run_loop(base, 200);
	conn_stats(c, &ms);
	/* What was sent is what the peer reads. */
	ck_assert_int_eq(read_packet(sv[1], &p, buf, sizeof(buf)), 0);
	len = 4 + frame_header_len(buf);
	packet_clear(&p);
	ck_assert_int_eq(read_packet(sv[1], &p, buf, sizeof(buf)), 0);
	len += 4 + frame_header_len(buf);
	packet_clear(&p);
	ck_assert_uint_eq(ms.bytes_sent, len);
	ck_assert_uint_ge(ms.first_ms, before - 1);
	ck_assert_uint_le(ms.first_ms, ms.last_ms);
	ck_assert_uint_le(ms.last_ms, clock_wall_ms() + 1);
	conn_free(c);
	close(sv[1]);
	event_base_free(base);
}
END_TEST

static Suite *
transport_suite(void)
{
	Suite	*s = suite_create("transport");
	TCase	*tc;

	tc = tcase_create("listener");
	tcase_add_test(tc, listener_unix_socket_private_and_removed);
	tcase_add_test(tc, listener_replaces_stale_refuses_live);
	tcase_add_test(tc, listener_refuses_non_socket_file);
	tcase_add_test(tc, listener_tcp_ephemeral_port_v4_and_v6);
	suite_add_tcase(s, tc);

	tc = tcase_create("conn");
	tcase_add_test(tc, conn_reassembles_split_and_batched_frames);
	tcase_add_test(tc, conn_hold_output_until_released);
	tcase_add_test(tc, conn_counts_messages_and_bytes);
	tcase_add_test(tc, conn_oversized_frame_gets_error_and_close);
	tcase_add_test(tc, conn_partial_frame_holds_what_arrived);
	tcase_add_test(tc, conn_bad_body_gets_bad_frame);
	tcase_add_test(tc, conn_records_peer_credentials);
	tcase_add_test(tc, conn_output_cap_drops_slow_consumer);
	tcase_add_test(tc, conn_tls_output_cap_drops_slow_consumer);
	tcase_add_test(tc, conn_output_cap_counts_error_replies);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(transport_suite());
}

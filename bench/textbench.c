/*
 * textbench.c: drives beanstalkd and NATS over their raw text protocols in
 * the shapes pbbench drives patchbayd (bench/run.sh). libc only.
 *
 *   textbench PEER worker ENDPOINT              echo worker, until killed
 *   textbench PEER seq  ENDPOINT N PAYLOAD      1 job in flight
 *   textbench PEER pipe ENDPOINT N PAYLOAD WIN  WIN jobs in flight
 *   textbench beanstalkd bg    ENDPOINT N PAYLOAD [WIN]  put, no consumer
 *   textbench beanstalkd drain ENDPOINT N       reserve+delete N jobs
 *
 * PEER is beanstalkd or nats; ENDPOINT is tcp:HOST:PORT (or HOST:PORT).
 * Output lines as pbbench's (report.c).
 *
 * beanstalkd has no request/reply, so a job is emulated with two tubes: the
 * client puts into "jobs" and reserves its answers from its own tube
 * "r<pid>"; the worker reserves from "jobs", puts the echo into the tube
 * named in the payload, and deletes the job. NATS does request/reply
 * natively: the worker is in queue group "workers" on subject "job", and
 * each request carries the reply subject _INBOX.<pid>.<seq>.
 *
 * Each RPC payload starts with a 16-byte stamp, the client's pid (7
 * digits) and the job's sequence number (9 digits), so that results find
 * their client and their submit time without adding bytes: PAYLOAD must be
 * at least 16 for seq and pipe.
 *
 * Every side keeps its commands pipelined: a reply is written together
 * with the next request (beanstalkd: put + delete + reserve in one write),
 * and replies are flushed only once nothing complete is left to read.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "report.h"

#define STAMP_LEN	16
#define FLUSH_AT	(1 << 20)	/* bytes buffered before a forced write */

/* The one connection of this process: its socket and both buffers. */
struct tconn {
	int	 fd;
	char	*rbuf;
	size_t	 rpos;		/* first unread byte */
	size_t	 rlen;		/* bytes in rbuf */
	size_t	 rcap;
	char	*wbuf;
	size_t	 wlen;
	size_t	 wcap;
};

/* One client run: its payload, window and results. */
struct trun {
	struct tconn		*c;
	char			*payload;
	size_t			 psz;
	long			 n;
	long			 win;
	long			 submitted;
	long			 ok;
	long			 bad;
	double			*t_submit;	/* by sequence number */
	struct report_lat	 lat;
};

/* Prints why the run cannot go on and exits: a benchmark has no recovery. */
static void __attribute__((noreturn, format(printf, 1, 2)))
tfail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fprintf(stderr, "textbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* Connects to tcp:HOST:PORT with Nagle off. */
static void
tconn_open(struct tconn *c, const char *ep)
{
	struct addrinfo	 hints, *res;
	char		 host[256];
	const char	*colon;
	int		 one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (strncmp(ep, "tcp:", 4) == 0)
		ep += 4;
	if ((colon = strrchr(ep, ':')) == NULL ||
	    (size_t)(colon - ep) >= sizeof(host))
		tfail("bad endpoint '%s' (want tcp:HOST:PORT)", ep);
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		tfail("cannot resolve '%s'", ep);
	if ((c->fd = socket(res->ai_family, SOCK_STREAM, 0)) == -1 ||
	    connect(c->fd, res->ai_addr, res->ai_addrlen) == -1)
		tfail("connect %s: %s", ep, strerror(errno));
	freeaddrinfo(res);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rcap = c->wcap = 1 << 16;
	if ((c->rbuf = malloc(c->rcap)) == NULL ||
	    (c->wbuf = malloc(c->wcap)) == NULL)
		tfail("out of memory");
}

/* Closes the connection and frees its buffers. */
static void
tconn_clear(struct tconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Makes room for len more bytes in the write buffer. */
static void
tconn_reserve(struct tconn *c, size_t len)
{
	while (c->wlen + len > c->wcap) {
		c->wcap *= 2;
		if ((c->wbuf = realloc(c->wbuf, c->wcap)) == NULL)
			tfail("out of memory");
	}
}

/* Appends bytes to the write buffer. */
static void
tconn_put(struct tconn *c, const void *data, size_t len)
{
	tconn_reserve(c, len);
	memcpy(c->wbuf + c->wlen, data, len);
	c->wlen += len;
}

/* Appends formatted text to the write buffer. */
static void __attribute__((format(printf, 2, 3)))
tconn_printf(struct tconn *c, const char *fmt, ...)
{
	va_list	ap;
	size_t	room;
	int	len;

	for (;;) {
		room = c->wcap - c->wlen;
		va_start(ap, fmt);
		len = vsnprintf(c->wbuf + c->wlen, room, fmt, ap);
		va_end(ap);
		if (len < 0)
			tfail("bad format '%s'", fmt);
		if ((size_t)len < room)
			break;
		tconn_reserve(c, (size_t)len + 1);
	}
	c->wlen += (size_t)len;
}

/* Writes out everything buffered. */
static void
tconn_flush(struct tconn *c)
{
	size_t	off = 0;
	ssize_t	k;

	while (off < c->wlen) {
		if ((k = write(c->fd, c->wbuf + off, c->wlen - off)) == -1) {
			if (errno == EINTR)
				continue;
			tfail("write: %s", strerror(errno));
		}
		off += (size_t)k;
	}
	c->wlen = 0;
}

/* Reads more; moves what is unread to the front first (pointers die). */
static void
tconn_fill(struct tconn *c)
{
	ssize_t	k;

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	if (c->rlen == c->rcap) {
		c->rcap *= 2;
		if ((c->rbuf = realloc(c->rbuf, c->rcap)) == NULL)
			tfail("out of memory");
	}
	do
		k = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	while (k == -1 && errno == EINTR);
	if (k <= 0)
		tfail("read: %s", k == 0 ? "the server closed" :
		    strerror(errno));
	c->rlen += (size_t)k;
}

/* Whether a whole line is already buffered. */
static bool
tconn_has_line(const struct tconn *c)
{
	return memmem(c->rbuf + c->rpos, c->rlen - c->rpos, "\r\n", 2) != NULL;
}

/* The next line without its CRLF, valid until the next read. */
static char *
tconn_line(struct tconn *c)
{
	char	*end, *line;

	while ((end = memmem(c->rbuf + c->rpos, c->rlen - c->rpos, "\r\n",
	    2)) == NULL)
		tconn_fill(c);
	*end = '\0';
	line = c->rbuf + c->rpos;
	c->rpos = (size_t)(end - c->rbuf) + 2;
	return line;
}

/* The next len bytes of data and their CRLF, valid until the next read. */
static char *
tconn_data(struct tconn *c, size_t len)
{
	char	*data;

	while (c->rlen - c->rpos < len + 2)
		tconn_fill(c);
	data = c->rbuf + c->rpos;
	c->rpos += len + 2;
	return data;
}

/* Reads a line and fails unless it starts with want. */
static void
tconn_expect(struct tconn *c, const char *want)
{
	const char	*line = tconn_line(c);

	if (strncmp(line, want, strlen(want)) != 0)
		tfail("got '%s', expected %s", line, want);
}

/* Writes the stamp of job seq into the payload. */
static void
trun_stamp(struct trun *t, long seq)
{
	char	buf[STAMP_LEN + 1];

	snprintf(buf, sizeof(buf), "%07u%09lu", (unsigned)getpid() % 10000000u,
	    (unsigned long)seq % 1000000000ul);
	memcpy(t->payload, buf, STAMP_LEN);
	if (seq < t->n)
		t->t_submit[seq] = report_now();
}

/* Counts a result whose payload is data (len bytes). */
static void
trun_result(struct trun *t, const char *data, size_t len)
{
	char	buf[10];
	long	seq;

	if (len != t->psz || len < STAMP_LEN) {
		t->bad++;
		return;
	}
	memcpy(buf, data + 7, 9);
	buf[9] = '\0';
	seq = strtol(buf, NULL, 10);
	if (seq < 0 || seq >= t->n) {
		t->bad++;
		return;
	}
	t->ok++;
	report_lat_add(&t->lat, report_now() - t->t_submit[seq]);
}

/* ---- beanstalkd --------------------------------------------------------- */

/* Appends a put of the run's payload, stamped as the next job. */
static void
bs_put_next(struct trun *t)
{
	trun_stamp(t, t->submitted++);
	tconn_printf(t->c, "put 0 0 60 %zu\r\n", t->psz);
	tconn_put(t->c, t->payload, t->psz);
	tconn_put(t->c, "\r\n", 2);
}

/* Reads a RESERVED line; sets the job id and its length. */
static void
bs_reserved(struct tconn *c, unsigned long long *ret_id, size_t *ret_len)
{
	const char	*line = tconn_line(c);

	if (sscanf(line, "RESERVED %llu %zu", ret_id, ret_len) != 2)
		tfail("got '%s', expected RESERVED", line);
}

/*
 * The echo worker: reserve a job from "jobs", put its payload back into the
 * tube its stamp names, delete it, and ask for the next, in one write.
 */
static void
bs_worker(struct tconn *c)
{
	unsigned long long	 id;
	size_t			 len;
	char			*data;
	char			 tube[16] = "";

	tconn_printf(c, "watch jobs\r\nignore default\r\nreserve\r\n");
	tconn_flush(c);
	tconn_expect(c, "WATCHING");
	tconn_expect(c, "WATCHING");
	for (;;) {
		bool	use = false;

		bs_reserved(c, &id, &len);
		data = tconn_data(c, len);
		if (len >= STAMP_LEN && strncmp(tube + 1, data, 7) != 0) {
			tube[0] = 'r';
			memcpy(tube + 1, data, 7);
			tube[8] = '\0';
			tconn_printf(c, "use %s\r\n", tube);
			use = true;
		}
		tconn_printf(c, "put 0 0 60 %zu\r\n", len);
		tconn_put(c, data, len);
		tconn_printf(c, "\r\ndelete %llu\r\nreserve\r\n", id);
		tconn_flush(c);
		if (use)
			tconn_expect(c, "USING");
		tconn_expect(c, "INSERTED");
		tconn_expect(c, "DELETED");
	}
}

/*
 * A client: puts up to win jobs, then for each answer reserved from its own
 * tube deletes it and puts the next job, keeping one reserve outstanding.
 */
static void
bs_rpc(struct trun *t)
{
	struct tconn		*c = t->c;
	unsigned long long	 id;
	size_t			 len;
	char			*data;

	tconn_printf(c, "use jobs\r\nwatch r%07u\r\nignore default\r\n",
	    (unsigned)getpid() % 10000000u);
	tconn_flush(c);
	tconn_expect(c, "USING");
	tconn_expect(c, "WATCHING");
	tconn_expect(c, "WATCHING");
	while (t->submitted < t->n && t->submitted < t->win)
		bs_put_next(t);
	tconn_printf(c, "reserve\r\n");
	tconn_flush(c);
	for (long i = 0; i < t->submitted; i++)
		tconn_expect(c, "INSERTED");
	while (t->ok + t->bad < t->n) {
		bool	put = false;

		bs_reserved(c, &id, &len);
		data = tconn_data(c, len);
		trun_result(t, data, len);
		tconn_printf(c, "delete %llu\r\n", id);
		if (t->submitted < t->n) {
			bs_put_next(t);
			put = true;
		}
		if (t->ok + t->bad < t->n)
			tconn_printf(c, "reserve\r\n");
		tconn_flush(c);
		tconn_expect(c, "DELETED");
		if (put)
			tconn_expect(c, "INSERTED");
	}
}

/* Puts n jobs into tube "bg" with win in flight; nobody consumes them. */
static void
bs_bg(struct trun *t)
{
	struct tconn	*c = t->c;
	long		 inflight = 0;

	tconn_printf(c, "use bg\r\n");
	tconn_flush(c);
	tconn_expect(c, "USING");
	while (t->ok < t->n) {
		while (t->submitted < t->n && inflight < t->win) {
			tconn_printf(c, "put 0 0 60 %zu\r\n", t->psz);
			tconn_put(c, t->payload, t->psz);
			tconn_put(c, "\r\n", 2);
			t->submitted++;
			inflight++;
		}
		tconn_flush(c);
		do {
			tconn_expect(c, "INSERTED");
			t->ok++;
			inflight--;
		} while (tconn_has_line(c));
	}
}

/* Reserves and deletes n jobs from tube "bg", asking for the next early. */
static void
bs_drain(struct trun *t)
{
	struct tconn		*c = t->c;
	unsigned long long	 id;
	size_t			 len;

	tconn_printf(c, "watch bg\r\nignore default\r\nreserve\r\n");
	tconn_flush(c);
	tconn_expect(c, "WATCHING");
	tconn_expect(c, "WATCHING");
	while (t->ok < t->n) {
		bs_reserved(c, &id, &len);
		tconn_data(c, len);
		t->psz = len;
		t->ok++;
		tconn_printf(c, "delete %llu\r\n", id);
		if (t->ok < t->n)
			tconn_printf(c, "reserve\r\n");
		tconn_flush(c);
		tconn_expect(c, "DELETED");
	}
}

/* ---- NATS --------------------------------------------------------------- */

/* One MSG as read: the reply subject (copied) and the data. */
struct nats_msg {
	char	 subject[128];
	char	 reply[128];
	char	*data;
	size_t	 len;
};

/* Reads INFO, sends CONNECT and waits for the PONG that confirms it. */
static void
nats_hello(struct tconn *c)
{
	tconn_expect(c, "INFO");
	tconn_printf(c, "CONNECT {\"verbose\":false,\"pedantic\":false,"
	    "\"protocol\":1}\r\nPING\r\n");
	tconn_flush(c);
	tconn_expect(c, "PONG");
}

/* Copies a token into a fixed buffer, failing when it does not fit. */
static void
nats_copy(char *dst, size_t size, const char *src)
{
	if (strlen(src) >= size)
		tfail("subject too long: %s", src);
	strcpy(dst, src);
}

/* Reads up to the next MSG, answering the server's PINGs on the way. */
static void
nats_read(struct tconn *c, struct nats_msg *m)
{
	char	*line, *tok[5], *save;
	int	 k;

	for (;;) {
		line = tconn_line(c);
		if (strcmp(line, "PING") == 0) {
			tconn_printf(c, "PONG\r\n");
			tconn_flush(c);
			continue;
		}
		if (strcmp(line, "PONG") == 0 || strncmp(line, "+OK", 3) == 0 ||
		    strncmp(line, "INFO", 4) == 0)
			continue;
		if (strncmp(line, "MSG ", 4) != 0)
			tfail("nats: %s", line);
		/* MSG <subject> <sid> [reply-to] <#bytes> */
		k = 0;
		for (char *s = strtok_r(line + 4, " ", &save); s != NULL &&
		    k < 5; s = strtok_r(NULL, " ", &save))
			tok[k++] = s;
		if (k != 3 && k != 4)
			tfail("nats: bad MSG line");
		nats_copy(m->subject, sizeof(m->subject), tok[0]);
		if (k == 4)
			nats_copy(m->reply, sizeof(m->reply), tok[2]);
		else
			m->reply[0] = '\0';
		m->len = strtoul(tok[k - 1], NULL, 10);
		m->data = tconn_data(c, m->len);
		return;
	}
}

/* The echo worker: answers each request on its reply subject. */
static void
nats_worker(struct tconn *c)
{
	struct nats_msg	m;

	nats_hello(c);
	tconn_printf(c, "SUB job workers 1\r\n");
	tconn_flush(c);
	for (;;) {
		nats_read(c, &m);
		if (m.reply[0] == '\0')
			continue;
		tconn_printf(c, "PUB %s %zu\r\n", m.reply, m.len);
		tconn_put(c, m.data, m.len);
		tconn_put(c, "\r\n", 2);
		if (!tconn_has_line(c) || c->wlen > FLUSH_AT)
			tconn_flush(c);
	}
}

/* Appends the request for the next job. */
static void
nats_pub_next(struct trun *t)
{
	long	seq = t->submitted++;

	trun_stamp(t, seq);
	tconn_printf(t->c, "PUB job _INBOX.%d.%ld %zu\r\n", (int)getpid(), seq,
	    t->psz);
	tconn_put(t->c, t->payload, t->psz);
	tconn_put(t->c, "\r\n", 2);
}

/* A client: win requests in flight, each answer sending the next. */
static void
nats_rpc(struct trun *t)
{
	struct tconn	*c = t->c;
	struct nats_msg	 m;

	nats_hello(c);
	tconn_printf(c, "SUB _INBOX.%d.* 1\r\nPING\r\n", (int)getpid());
	tconn_flush(c);
	tconn_expect(c, "PONG");
	while (t->submitted < t->n && t->submitted < t->win)
		nats_pub_next(t);
	tconn_flush(c);
	while (t->ok + t->bad < t->n) {
		nats_read(c, &m);
		trun_result(t, m.data, m.len);
		if (t->submitted < t->n)
			nats_pub_next(t);
		if (!tconn_has_line(c) || c->wlen > FLUSH_AT)
			tconn_flush(c);
	}
}

/* Entry point. */
int
main(int argc, char **argv)
{
	struct tconn	 c;
	struct trun	 t;
	const char	*peer, *mode;
	bool		 bs;
	double		 t0;

	if (argc < 4) {
		fprintf(stderr, "usage: see the comment at the top of "
		    "bench/textbench.c\n");
		return 2;
	}
	peer = argv[1];
	mode = argv[2];
	if (strcmp(peer, "beanstalkd") == 0)
		bs = true;
	else if (strcmp(peer, "nats") == 0)
		bs = false;
	else {
		fprintf(stderr, "textbench: unknown peer '%s'\n", peer);
		return 2;
	}
	memset(&t, 0, sizeof(t));
	t.c = &c;
	if (strcmp(mode, "worker") != 0) {
		if (argc < 5 || (strcmp(mode, "drain") != 0 && argc < 6)) {
			fprintf(stderr, "textbench %s: needs N and PAYLOAD\n",
			    mode);
			return 2;
		}
		t.n = atol(argv[4]);
		t.psz = argc > 5 ? (size_t)atol(argv[5]) : 0;
		t.win = argc > 6 ? atol(argv[6]) :
		    strcmp(mode, "bg") == 0 ? 100 : 1;
		if (t.n < 1 || t.win < 1 || (strcmp(mode, "seq") == 0 &&
		    t.win != 1)) {
			fprintf(stderr, "textbench %s: bad N or WIN\n", mode);
			return 2;
		}
		if ((strcmp(mode, "seq") == 0 || strcmp(mode, "pipe") == 0) &&
		    t.psz < STAMP_LEN) {
			fprintf(stderr, "textbench %s: PAYLOAD must be at "
			    "least %d bytes\n", mode, STAMP_LEN);
			return 2;
		}
		if ((t.payload = malloc(t.psz + 1)) == NULL ||
		    (t.t_submit = calloc((size_t)t.n, sizeof(double))) ==
		    NULL || report_lat_init(&t.lat, (size_t)t.n) != 0)
			tfail("out of memory");
		memset(t.payload, 'x', t.psz);
	}
	tconn_open(&c, argv[3]);
	t0 = report_now();
	if (strcmp(mode, "worker") == 0) {
		if (bs)
			bs_worker(&c);
		else
			nats_worker(&c);
	} else if (strcmp(mode, "seq") == 0 || strcmp(mode, "pipe") == 0) {
		if (bs)
			bs_rpc(&t);
		else
			nats_rpc(&t);
	} else if (bs && strcmp(mode, "bg") == 0) {
		bs_bg(&t);
	} else if (bs && strcmp(mode, "drain") == 0) {
		bs_drain(&t);
	} else {
		fprintf(stderr, "textbench %s: unknown mode '%s'\n", peer,
		    mode);
		return 2;
	}
	report_client(mode, t.n, t.ok, t.psz, report_now() - t0,
	    strcmp(mode, "pipe") == 0 ? &t.lat : NULL);
	report_lat_clear(&t.lat);
	free(t.t_submit);
	free(t.payload);
	tconn_clear(&c);
	return t.ok == t.n ? 0 : 1;
}

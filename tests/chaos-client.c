/*
 * chaos-client.c: a client of test-chaos that writes down everything it
 * sends and everything the broker answers.
 *
 * Usage: chaos-client -u UNIX-EP -t TCP-EP -n JOBS -k INFLIGHT -s SEED
 *                     -i INDEX -l LEDGER [-V]
 *
 * It speaks the protocol itself (proto/ over plain sockets) rather than
 * through libpatchbay, because the library hands one result per job to
 * its caller and silently drops a second one or one for an id it does not
 * know: the ledger must see every RESULT frame, on the connection it came
 * on. It opens two connections (unix and tcp) and keeps up to INFLIGHT
 * jobs running across them, each with a unique id (INDEX, the job number
 * and random bytes), a random function (clib or cexec), retries 0 or 3,
 * sometimes a timeout, sometimes a CANCEL right after the RUN or a little
 * later, sometimes detached. With -V it closes its tcp connection
 * abruptly in the middle of the run. When every job is answered it prints
 * "W" on stdout and waits for its stdin to close; then it sends a PING on
 * each open connection, reads until the PONG (so that a late duplicate
 * would still be seen), prints "D" and exits 0.
 *
 * Ledger lines (times are CLOCK_BOOTTIME in ms):
 *   R ID CONN FN RETRIES TIMEOUT_MS MODE DETACH T      a RUN sent
 *   C ID T                                             its CANCEL sent
 *   S ID CONN STATUS ATTEMPTS T PAYOK                  a RESULT
 *   F ID CONN STATUS                                   a RESULT not ours
 *   N ID                                               NOT_FOUND for a cancel
 *   E CONN CODE                                        any other ERROR
 *   X CONN T                                           connection lost
 *   V CONN T                                           connection dropped
 *   W T / D T                                          all answered / done
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "proto/proto.h"
#include "util/util.h"

#define CHAOS_CONNS	2
#define CHAOS_IN_CAP	(4 * 1024 * 1024)

/* One connection to the broker. */
struct cconn {
	int		 fd;		/* -1 once closed */
	const char	*ep;
	uint8_t		*in;
	size_t		 in_len;
	char		*out;
	size_t		 out_len, out_off, out_cap;
	bool		 pong;		/* the final PONG came */
};

/* One job of this client. */
struct cjob {
	uint8_t		 id[PROTO_ID_LEN];
	char		 idstr[40];
	int		 conn;
	bool		 sent;
	bool		 detach;
	bool		 ok;
	unsigned	 tag;
	unsigned	 nresults;
	unsigned long long cancel_at;	/* 0: no cancel planned */
	bool		 cancel_sent;
};

static struct cconn	 conns[CHAOS_CONNS];
static struct cjob	*jobs;
static unsigned		 njobs, index_no;
static unsigned		 inflight;	/* sent, not detached, unanswered */
static FILE		*ledger;
static uint64_t		 rng;

/* CLOCK_BOOTTIME in ms: the clock of every ledger. */
static unsigned long long
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A random number (xorshift64*). */
static uint64_t
rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

/* Fails the client: a message on stderr and exit 3. */
static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "chaos-client %u: ", index_no);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ledger != NULL)
		fflush(ledger);
	exit(3);
}

/* Closes connection i: lost (X) or dropped on purpose (V). */
static void
conn_drop(int i, bool on_purpose)
{
	struct cconn	*c = &conns[i];

	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	fprintf(ledger, "%c %d %llu\n", on_purpose ? 'V' : 'X', i, now_ms());
	/* Jobs of a closed connection get no answer any more. */
	for (unsigned j = 0; j < njobs; j++)
		if (jobs[j].sent && jobs[j].conn == i && !jobs[j].detach &&
		    jobs[j].nresults == 0)
			inflight--;
}

/* Appends one encoded packet to connection i's output. */
static void
conn_queue(int i, const struct packet *p)
{
	struct cconn	*c = &conns[i];
	msgpack_sbuffer	 sb;

	if (c->fd < 0)
		return;
	msgpack_sbuffer_init(&sb);
	if (packet_encode(p, PROTO_TO_BROKER, &sb) != 0)
		die("cannot encode %s", packet_type_name(p->type));
	if (c->out_len + sb.size > c->out_cap) {
		c->out_cap = (c->out_len + sb.size) * 2;
		if ((c->out = realloc(c->out, c->out_cap)) == NULL)
			die("out of memory");
	}
	memcpy(c->out + c->out_len, sb.data, sb.size);
	c->out_len += sb.size;
	msgpack_sbuffer_destroy(&sb);
}

/* Writes what connection i can take now. */
static void
conn_flush(int i)
{
	struct cconn	*c = &conns[i];
	ssize_t		 n;

	while (c->fd >= 0 && c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			conn_drop(i, false);
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
}

/* Handles one packet from the broker on connection i. */
static void
conn_packet(int i, const struct packet *p)
{
	struct packet	 pong;
	struct cjob	*j = NULL;
	unsigned	 k, slen;
	char		 idstr[40], want[32];
	const char	*payok = "-";

	switch (p->type) {
	case PKT_PING:
		packet_init(&pong, PKT_PONG);
		pong.n = p->n;
		conn_queue(i, &pong);
		return;
	case PKT_PONG:
		conns[i].pong = true;
		return;
	case PKT_RESULT:
		uuid_unparse_lower(p->id, idstr);
		k = (unsigned)p->id[4] << 24 | (unsigned)p->id[5] << 16 |
		    (unsigned)p->id[6] << 8 | p->id[7];
		if (k < njobs && memcmp(jobs[k].id, p->id, PROTO_ID_LEN) == 0 &&
		    jobs[k].sent && jobs[k].conn == i)
			j = &jobs[k];
		if (j == NULL) {
			fprintf(ledger, "F %s %d %s\n", idstr, i,
			    job_status_name(p->status));
			return;
		}
		if (p->status == JOB_OK) {
			slen = (unsigned)snprintf(want, sizeof(want), "ok:%u",
			    j->tag);
			payok = p->payload.len == slen && memcmp(p->payload.ptr,
			    want, slen) == 0 ? "1" : "0";
		}
		fprintf(ledger, "S %s %d %s %llu %llu %s\n", idstr, i,
		    job_status_name(p->status),
		    (unsigned long long)p->attempts, now_ms(), payok);
		if (j->nresults++ == 0 && !j->detach)
			inflight--;
		return;
	case PKT_ERROR:
		if (p->code == PERR_NOT_FOUND && (p->has & PF_ID)) {
			uuid_unparse_lower(p->id, idstr);
			fprintf(ledger, "N %s\n", idstr);
		} else
			fprintf(ledger, "E %d %s\n", i,
			    proto_error_name(p->code));
		return;
	default:
		return;
	}
}

/* Reads what connection i has and handles every whole frame. */
static void
conn_read(int i)
{
	struct cconn	*c = &conns[i];
	struct packet	 p;
	char		 err[PROTO_ERRLEN];
	uint32_t	 len;
	size_t		 off = 0;
	ssize_t		 n;
	int		 r;

	n = read(c->fd, c->in + c->in_len, CHAOS_IN_CAP - c->in_len);
	if (n < 0 && (errno == EINTR || errno == EAGAIN ||
	    errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		conn_drop(i, false);
		return;
	}
	c->in_len += (size_t)n;
	for (;;) {
		r = frame_header(c->in + off, c->in_len - off,
		    CHAOS_IN_CAP - PROTO_HEADER_LEN, &len);
		if (r == -EAGAIN || (r == 0 &&
		    c->in_len - off < PROTO_HEADER_LEN + len))
			break;
		if (r != 0)
			die("conn %d: bad frame header (%d)", i, r);
		if (packet_decode(c->in + off + PROTO_HEADER_LEN, len,
		    PROTO_FROM_BROKER, &p, err) != 0)
			die("conn %d: undecodable packet: %s", i, err);
		conn_packet(i, &p);
		packet_clear(&p);
		off += PROTO_HEADER_LEN + len;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

/*
 * Connects connection i and does the handshake (bounded). A connection
 * lost on the way (a reset) is left closed, with an X line.
 */
static void
conn_open(int i)
{
	struct cconn	*c = &conns[i];
	struct endpoint	 ep;
	struct packet	 p;
	char		 err[UTIL_ERRLEN];
	unsigned long long deadline = now_ms() + 10000;
	uint32_t	 len;
	ssize_t		 n;
	int		 r;

	if ((c->in = malloc(CHAOS_IN_CAP)) == NULL)
		die("out of memory");
	if (endpoint_parse(c->ep, &ep, err) != 0)
		die("%s: %s", c->ep, err);
	if ((r = endpoint_connect(&ep, 5000, &c->fd)) != 0)
		die("connect %s: %s", c->ep, strerror(-r));
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	packet_init(&p, PKT_HELLO);
	p.version = PROTO_VERSION;
	p.role = ROLE_CLIENT;
	conn_queue(i, &p);
	while (c->fd >= 0 && c->out_len > 0 && now_ms() < deadline) {
		conn_flush(i);
		poll(&(struct pollfd){ c->fd, POLLOUT, 0 }, 1, 10);
	}
	/* WELCOME: the first frame; anything else fails below. */
	while (c->fd >= 0 && now_ms() < deadline) {
		if (c->in_len >= PROTO_HEADER_LEN &&
		    frame_header(c->in, c->in_len, CHAOS_IN_CAP, &len) == 0 &&
		    c->in_len >= PROTO_HEADER_LEN + len) {
			if (packet_decode(c->in + PROTO_HEADER_LEN, len,
			    PROTO_FROM_BROKER, &p, err) != 0 ||
			    p.type != PKT_WELCOME)
				die("%s: no WELCOME", c->ep);
			packet_clear(&p);
			memmove(c->in, c->in + PROTO_HEADER_LEN + len,
			    c->in_len - PROTO_HEADER_LEN - len);
			c->in_len -= PROTO_HEADER_LEN + len;
			return;
		}
		poll(&(struct pollfd){ c->fd, POLLIN, 0 }, 1, 10);
		n = read(c->fd, c->in + c->in_len, CHAOS_IN_CAP - c->in_len);
		if (n > 0)
			c->in_len += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EINTR &&
		    errno != EWOULDBLOCK))
			conn_drop(i, false);
	}
	if (c->fd >= 0)
		die("%s: no WELCOME in 10 s", c->ep);
}

/* Sends job j's RUN (and its CANCEL at once when so planned). */
static void
job_send(struct cjob *j, unsigned k)
{
	static const char *const	 fns[] = { "clib", "cexec" };
	struct packet			 p;
	char				 payload[64];
	unsigned			 ms = (unsigned)(rnd() % 60);
	unsigned			 fn = (unsigned)(rnd() % 2);
	uint32_t			 retries = rnd() % 2 ? 3 : 0;
	uint32_t			 timeout = 0;
	uint64_t			 r;
	int				 open[CHAOS_CONNS], nopen = 0;

	for (int i = 0; i < CHAOS_CONNS; i++)
		if (conns[i].fd >= 0)
			open[nopen++] = i;
	j->conn = open[rnd() % (unsigned)nopen];
	j->tag = k;
	j->ok = rnd() % 10 != 0;
	j->detach = rnd() % 20 == 0;
	if (rnd() % 7 == 0)
		timeout = 5 + (uint32_t)(rnd() % 120);
	j->id[0] = (uint8_t)(index_no >> 24);
	j->id[1] = (uint8_t)(index_no >> 16);
	j->id[2] = (uint8_t)(index_no >> 8);
	j->id[3] = (uint8_t)index_no;
	j->id[4] = (uint8_t)(k >> 24);
	j->id[5] = (uint8_t)(k >> 16);
	j->id[6] = (uint8_t)(k >> 8);
	j->id[7] = (uint8_t)k;
	r = rnd();
	memcpy(j->id + 8, &r, 8);
	uuid_unparse_lower(j->id, j->idstr);
	snprintf(payload, sizeof(payload), "0.%03u %s %u", ms,
	    j->ok ? "ok" : "fail", k);

	packet_init(&p, PKT_RUN);
	memcpy(p.id, j->id, PROTO_ID_LEN);
	p.fn.ptr = (const uint8_t *)fns[fn];
	p.fn.len = (uint32_t)strlen(fns[fn]);
	p.payload.ptr = (const uint8_t *)payload;
	p.payload.len = (uint32_t)strlen(payload);
	p.has |= PF_PAYLOAD;
	if (timeout > 0) {
		p.timeout_ms = timeout;
		p.has |= PF_TIMEOUT;
	}
	if (retries > 0) {
		p.retries = retries;
		p.has |= PF_RETRIES;
	}
	p.priority = (int64_t)(rnd() % 11) - 5;
	p.has |= PF_PRIORITY;
	if (j->detach) {
		p.detach = true;
		p.has |= PF_DETACH;
	}
	conn_queue(j->conn, &p);
	j->sent = true;
	if (!j->detach)
		inflight++;
	fprintf(ledger, "R %s %d %s %u %u %s %d %llu\n", j->idstr, j->conn,
	    fns[fn], retries, timeout, j->ok ? "ok" : "fail", j->detach,
	    now_ms());

	/* Cancels: one in seven at once, one in ten a little later. */
	if (j->detach)
		return;
	r = rnd() % 70;
	if (r < 10)
		j->cancel_at = 1;
	else if (r < 17)
		j->cancel_at = now_ms() + 1 + rnd() % 80;
}

/* Sends the CANCELs that are due. */
static void
jobs_cancel_due(unsigned long long now)
{
	struct packet	p;

	for (unsigned k = 0; k < njobs; k++) {
		struct cjob *j = &jobs[k];

		if (!j->sent || j->cancel_sent || j->cancel_at == 0 ||
		    j->cancel_at > now || j->nresults > 0 ||
		    conns[j->conn].fd < 0)
			continue;
		packet_init(&p, PKT_CANCEL);
		memcpy(p.id, j->id, PROTO_ID_LEN);
		conn_queue(j->conn, &p);
		j->cancel_sent = true;
		fprintf(ledger, "C %s %llu\n", j->idstr, now);
	}
}

/* One turn of the loop: poll the connections (and stdin when asked). */
static bool
turn(int timeout, bool watch_stdin)
{
	struct pollfd	pfd[CHAOS_CONNS + 1];
	bool		stdin_closed = false;
	char		buf[64];

	for (int i = 0; i < CHAOS_CONNS; i++) {
		conn_flush(i);
		pfd[i].fd = conns[i].fd;
		pfd[i].events = POLLIN | (conns[i].out_len > 0 ? POLLOUT : 0);
		pfd[i].revents = 0;
	}
	pfd[CHAOS_CONNS].fd = watch_stdin ? 0 : -1;
	pfd[CHAOS_CONNS].events = POLLIN;
	pfd[CHAOS_CONNS].revents = 0;
	if (poll(pfd, CHAOS_CONNS + 1, timeout) < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	for (int i = 0; i < CHAOS_CONNS; i++) {
		if (conns[i].fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP |
		    POLLERR)))
			conn_read(i);
		if (conns[i].fd >= 0 && (pfd[i].revents & POLLOUT))
			conn_flush(i);
	}
	if (pfd[CHAOS_CONNS].revents != 0)
		stdin_closed = read(0, buf, sizeof(buf)) <= 0;
	/* Whatever happens next (kill -9), the ledger so far is written. */
	fflush(ledger);
	return stdin_closed;
}

/* Runs the jobs, waits to be released, syncs, and reports. */
int
main(int argc, char **argv)
{
	const char		*ledger_path = NULL;
	unsigned long long	 deadline;
	unsigned		 next = 0, limit = 8, vanish_at = 0;
	bool			 vanish = false, released = false;
	struct packet		 ping;
	int			 c;

	signal(SIGPIPE, SIG_IGN);
	conns[0].fd = conns[1].fd = -1;
	while ((c = getopt(argc, argv, "u:t:n:k:s:i:l:V")) != -1) {
		switch (c) {
		case 'u': conns[0].ep = optarg; break;
		case 't': conns[1].ep = optarg; break;
		case 'n': njobs = (unsigned)atoi(optarg); break;
		case 'k': limit = (unsigned)atoi(optarg); break;
		case 's': rng = strtoull(optarg, NULL, 10) * 0x9e3779b97f4a7c15ULL
			      + 1; break;
		case 'i': index_no = (unsigned)atoi(optarg); break;
		case 'l': ledger_path = optarg; break;
		case 'V': vanish = true; break;
		default: die("bad usage");
		}
	}
	if (conns[0].ep == NULL || conns[1].ep == NULL || ledger_path == NULL ||
	    njobs == 0)
		die("usage: chaos-client -u EP -t EP -n JOBS -k INFLIGHT -s SEED "
		    "-i INDEX -l LEDGER [-V]");
	if ((ledger = fopen(ledger_path, "w")) == NULL)
		die("%s: %s", ledger_path, strerror(errno));
	if ((jobs = calloc(njobs, sizeof(*jobs))) == NULL)
		die("out of memory");
	for (int i = 0; i < CHAOS_CONNS; i++)
		conn_open(i);
	if (conns[0].fd < 0 && conns[1].fd < 0)
		die("both connections were lost during the handshake");
	if (vanish)
		vanish_at = njobs / 4 + (unsigned)(rnd() % (njobs / 2 + 1));

	/* The run: keep up to limit jobs in flight until all are answered. */
	while (next < njobs || inflight > 0) {
		while (next < njobs && inflight < limit &&
		    (conns[0].fd >= 0 || conns[1].fd >= 0)) {
			job_send(&jobs[next], next);
			next++;
			if (jobs[next - 1].cancel_at == 1)
				jobs_cancel_due(now_ms());
			if (vanish && next == vanish_at) {
				/* Out with the tcp connection, mid-job. */
				conn_flush(1);
				conn_drop(1, true);
			}
		}
		if (conns[0].fd < 0 && conns[1].fd < 0)
			break;
		turn(10, false);
		jobs_cancel_due(now_ms());
	}
	fprintf(ledger, "W %llu\n", now_ms());
	fflush(ledger);
	printf("W\n");
	fflush(stdout);

	/* Held until the test has drained the broker: late frames count. */
	while (!released)
		released = turn(100, true);
	packet_init(&ping, PKT_PING);
	ping.n = 424242;
	for (int i = 0; i < CHAOS_CONNS; i++)
		conn_queue(i, &ping);
	deadline = now_ms() + 20000;
	for (;;) {
		bool waiting = false;

		for (int i = 0; i < CHAOS_CONNS; i++)
			if (conns[i].fd >= 0 && !conns[i].pong)
				waiting = true;
		if (!waiting)
			break;
		if (now_ms() > deadline)
			die("no PONG in 20 s");
		turn(50, false);
	}
	fprintf(ledger, "D %llu\n", now_ms());
	fclose(ledger);
	printf("D\n");
	fflush(stdout);
	return 0;
}

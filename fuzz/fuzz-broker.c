/*
 * fuzz-broker.c: a whole broker core in-process, driven by several fake
 * peers, for libFuzzer (and, with fuzz/standalone.c, as a plain program).
 *
 * Each input builds a fresh broker: an event base, the server (broker/
 * server.c with the switchboard and transport/ underneath) listening on a
 * private unix socket, and a supervisor without pools, as patchbayd has.
 * Six fake peers connect to it over that socket: two clients, two workers,
 * an admin and one whose role the input picks. The input is a program:
 *
 *   byte 0       the broker's settings (bits): 0 heartbeat 50 ms (else
 *                10 s), 1 max_frame 4 KiB (else 64 KiB), 2 max_queue 2,
 *                3 output cap 4 KiB, 4 a token, 5 no_worker_wait 1 ms,
 *                6 HELLO deadline 20 ms, 7 a store (store_fsync no;
 *                removed after the input)
 *   then ops     one byte each: peer = b % 6, op = b / 6 % 16, followed
 *                by the op's own bytes: connect, HELLO, raw bytes, RUN
 *                (an id byte whose bit 3 adds one of fb_metas, then flags),
 *                CANCEL (or STATUS: the id byte's top bit), REGISTER, RESULT, PROGRESS, PING, PONG, ADMIN,
 *                close (or half-close), advance the clock, stop or start
 *                reading (a slow consumer), server_stop(), pump.
 *
 * Packets are built from the input and encoded by proto/, so that most of
 * them are valid and reach the switchboard; "raw" writes the input's bytes
 * as they are. Job ids come from a set of eight, shared by the clients, so
 * that duplicates, foreign cancels and late results happen; a worker
 * answers the RUNs it was really sent (or an id and attempt from the
 * input, stale or not).
 *
 * The clock: util/clock.c is left out and clock_now_ms() is defined here
 * as a counter that only the "advance" op moves. libevent's own timers run
 * on real time, so the server's two timers (the switchboard's deadline and
 * the heartbeat sweep) are taken off libevent after every step and run by
 * hand (event_active) when the input advances the clock: what happens at
 * a given fake time does not depend on how fast the input runs. After
 * each op the event loop runs without blocking until nothing moves.
 *
 * What must hold, besides no crash, leak or undefined behaviour (the
 * sanitizers): every frame the broker sends decodes; a client gets a
 * RESULT or PROGRESS only for an id it sent a RUN for, and never more
 * RESULTs for an id than RUNs (a peer that wrote raw bytes is no longer
 * checked). ADMIN spawn cannot start anything: spawn_start() is wrapped
 * (-Wl,--wrap=spawn_start) to refuse.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/broker.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	__wrap_spawn_start(const struct spawn_plan *, struct spawn_error *,
	    pid_t *);

#define FB_PEERS	6
#define FB_IDS		8
#define FB_HELD		64
#define FB_IN_CAP	(2 * 1024 * 1024 + 128)

/* Stops the run: a broken invariant is a bug the fuzzer must report. */
#define FB_FAIL()	__builtin_trap()

/* One fake peer. */
struct fb_peer {
	int		 fd;		/* -1: not connected */
	enum proto_role	 role;		/* the role its HELLO asked for */
	bool		 tainted;	/* wrote raw bytes: not checked */
	bool		 hello_sent;	/* its role is the first HELLO's */
	bool		 stalled;	/* not reading */
	unsigned	 runs[FB_IDS];	/* RUNs sent per id */
	unsigned	 results[FB_IDS];	/* RESULTs received per id */
	struct {
		uint8_t		 id[PROTO_ID_LEN];
		uint64_t	 attempt;
	}		 held[FB_HELD];	/* RUNs received (workers) */
	unsigned	 nheld;
	uint64_t	 seq;
	size_t		 in_len;
	uint8_t		*in;
};

/* One input's broker and peers. */
static struct {
	const uint8_t		*p, *end;	/* the input left */
	struct event_base	*base;
	struct server		*srv;
	struct supervisor	*sv;
	struct fb_peer		 peers[FB_PEERS];
	char			 path[128];
	char			 store[128];
	uint32_t		 max_frame;
	bool			 token;
	bool			 stopped;
} fb;

static uint64_t	fb_now;

/* The broker's clock: moved by the input only. */
uint64_t
clock_now_ms(void)
{
	return fb_now;
}

/* The wall clock, for the statistics' times: as fake as the other. */
uint64_t
clock_wall_ms(void)
{
	return 1700000000000ull + fb_now;
}

/* ADMIN spawn and pools: nothing is ever started. */
int
__wrap_spawn_start(const struct spawn_plan *plan, struct spawn_error *err,
    pid_t *ret_pid)
{
	(void)plan;
	(void)ret_pid;
	err->stage = SPAWN_STAGE_EXEC;
	err->error = EPERM;
	err->index = -1;
	return -EPERM;
}

/* The next input byte, or 0 when the input is used up. */
static uint8_t
fb_byte(void)
{
	return fb.p < fb.end ? *fb.p++ : 0;
}

/* Up to n bytes of input (fewer at its end); their count in *ret_len. */
static const uint8_t *
fb_bytes(size_t n, uint32_t *ret_len)
{
	const uint8_t	*s = fb.p;

	if (n > (size_t)(fb.end - fb.p))
		n = (size_t)(fb.end - fb.p);
	fb.p += n;
	*ret_len = (uint32_t)n;
	return s;
}

/* Job id number k (0..7). */
static void
fb_id(uint8_t *id, unsigned k)
{
	memset(id, 0, PROTO_ID_LEN);
	id[0] = 0xab;
	id[15] = (uint8_t)k;
}

/* The slot of a job id, or -1 when it is not one of ours. */
static int
fb_id_slot(const uint8_t *id)
{
	uint8_t	want[PROTO_ID_LEN];

	fb_id(want, id[15]);
	if (id[15] >= FB_IDS || memcmp(id, want, PROTO_ID_LEN) != 0)
		return -1;
	return id[15];
}

/* Closes peer i's socket. */
static void
fb_close(struct fb_peer *pe)
{
	if (pe->fd >= 0)
		close(pe->fd);
	pe->fd = -1;
	pe->in_len = 0;
	pe->nheld = 0;
}

/* FUZZ_BROKER_TRACE=1: every packet the peers get, on descriptor 2. */
static bool	fb_trace;

/* Checks and records one packet the broker sent to peer pe. */
static void
fb_packet(struct fb_peer *pe, const struct packet *p)
{
	int	k;

	if (fb_trace)
		dprintf(2, "fuzz-broker: peer %d (%s) <- %s%s%s id %02x attempt "
		    "%llu\n", (int)(pe - fb.peers), proto_role_name(pe->role),
		    packet_type_name(p->type), p->type == PKT_RESULT ? " " : "",
		    p->type == PKT_RESULT ? job_status_name(p->status) : "",
		    p->id[15], (unsigned long long)p->attempt);
	if (fb_trace && p->type == PKT_ERROR)
		dprintf(2, "fuzz-broker:   %s: %.*s\n", proto_error_name(p->code),
		    (int)p->msg.len, (const char *)p->msg.ptr);

	switch (p->type) {
	case PKT_RESULT:
	case PKT_PROGRESS:
		if (pe->tainted || pe->role != ROLE_CLIENT)
			return;
		k = fb_id_slot(p->id);
		/* Never for a job this connection did not send. */
		if (k < 0 || pe->runs[k] == 0)
			FB_FAIL();
		/* Never more answers than RUNs. */
		if (p->type == PKT_RESULT && ++pe->results[k] > pe->runs[k])
			FB_FAIL();
		return;
	case PKT_RUN:
		if (pe->nheld == FB_HELD) {
			memmove(&pe->held[0], &pe->held[1],
			    sizeof(pe->held[0]) * (FB_HELD - 1));
			pe->nheld--;
		}
		memcpy(pe->held[pe->nheld].id, p->id, PROTO_ID_LEN);
		pe->held[pe->nheld].attempt = p->attempt;
		pe->nheld++;
		return;
	default:
		return;
	}
}

/* Reads what the broker sent peer pe; true when bytes came. */
static bool
fb_read(struct fb_peer *pe)
{
	struct packet	 p;
	char		 err[PROTO_ERRLEN];
	uint32_t	 len;
	size_t		 off = 0;
	ssize_t		 n;
	bool		 moved = false;
	int		 r;

	if (pe->fd < 0 || pe->stalled)
		return false;
	for (;;) {
		n = read(pe->fd, pe->in + pe->in_len, FB_IN_CAP - pe->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				fb_close(pe);
			return moved;
		}
		moved = true;
		pe->in_len += (size_t)n;
		off = 0;
		for (;;) {
			r = frame_header(pe->in + off, pe->in_len - off,
			    fb.max_frame + PROTO_FRAME_SLACK, &len);
			if (r == -EAGAIN || (r == 0 && pe->in_len - off <
			    PROTO_HEADER_LEN + (size_t)len))
				break;
			/* The broker never sends a frame a peer must refuse. */
			if (r != 0 || packet_decode(pe->in + off +
			    PROTO_HEADER_LEN, len, PROTO_FROM_BROKER, &p,
			    err) != 0)
				FB_FAIL();
			fb_packet(pe, &p);
			packet_clear(&p);
			off += PROTO_HEADER_LEN + len;
		}
		memmove(pe->in, pe->in + off, pe->in_len - off);
		pe->in_len -= off;
	}
}

/*
 * Runs the event loop without blocking, and the peers' reads, until
 * nothing moves (bounded); the server's timers are kept off libevent. A
 * turn may leave work (a deferred close) for the next: the next op's pump
 * runs it, and the teardown pumps too.
 */
static void
fb_pump(void)
{
	struct pollfd	pfd[FB_PEERS];
	bool		moved = true;

	for (int round = 0; round < 32 && moved; round++) {
		event_base_loop(fb.base, EVLOOP_NONBLOCK);
		moved = false;
		for (int i = 0; i < FB_PEERS; i++) {
			pfd[i].fd = fb.peers[i].stalled ? -1 : fb.peers[i].fd;
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		if (poll(pfd, FB_PEERS, 0) <= 0)
			continue;
		for (int i = 0; i < FB_PEERS; i++)
			if (pfd[i].revents != 0)
				moved |= fb_read(&fb.peers[i]);
	}
	event_del(fb.srv->sb_timer);
	event_del(fb.srv->hb_timer);
}

/* Writes bytes to peer pe, pumping while the socket is full (bounded). */
static void
fb_write(struct fb_peer *pe, const void *buf, size_t len)
{
	const uint8_t	*b = buf;
	ssize_t		 n;
	int		 tries = 0;

	while (pe->fd >= 0 && len > 0) {
		n = write(pe->fd, b, len);
		if (n > 0) {
			b += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    ++tries < 16) {
			fb_pump();
			continue;
		}
		/* Refused or full for good: the rest is lost, stop checking. */
		pe->tainted = true;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			fb_close(pe);
		return;
	}
}

/* Encodes p towards the broker and writes it on peer pe. */
static void
fb_send(struct fb_peer *pe, const struct packet *p)
{
	msgpack_sbuffer	sb;

	msgpack_sbuffer_init(&sb);
	if (packet_encode(p, PROTO_TO_BROKER, &sb) == 0)
		fb_write(pe, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Connects peer pe (again). */
static void
fb_connect(struct fb_peer *pe, int i)
{
	struct sockaddr_un	sun;

	fb_close(pe);
	memset(pe->runs, 0, sizeof(pe->runs));
	memset(pe->results, 0, sizeof(pe->results));
	pe->tainted = false;
	pe->stalled = false;
	pe->hello_sent = false;
	pe->role = i < 2 ? ROLE_CLIENT : i < 4 ? ROLE_WORKER : ROLE_ADMIN;
	if ((pe->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fb.path);
	if (connect(pe->fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		fb_close(pe);
}

/* HELLO for the peer's role (the sixth picks one), token as asked. */
static void
fb_hello(struct fb_peer *pe, int i)
{
	static const char	 token[] = "fuzz-token";
	struct packet		 p;
	uint8_t			 b = fb_byte();

	packet_init(&p, PKT_HELLO);
	p.version = (b & 0x80) ? b & 3 : PROTO_VERSION;
	p.role = i == FB_PEERS - 1 ? (enum proto_role)(1 + (b >> 2) % 3) :
	    pe->role;
	/* A second HELLO is refused and changes nothing: the first counts. */
	if (!pe->hello_sent)
		pe->role = p.role;
	pe->hello_sent = true;
	if (b & 0x40) {
		p.name.ptr = fb_bytes(fb_byte() % 32, &p.name.len);
		p.has |= PF_NAME;
	}
	if (fb.token && !(b & 0x20)) {
		p.token.ptr = (const uint8_t *)token;
		p.token.len = (b & 0x10) ? 3 : (uint32_t)strlen(token);
		p.has |= PF_TOKEN;
	}
	fb_send(pe, &p);
}

/*
 * Meta maps a RUN may carry (bit 3 of its id byte; bits 4-6 pick one):
 * good ones, with and without a trace context, and ones the broker must
 * refuse BAD_REQUEST. All are maps of str to str, or proto/ would not
 * encode them.
 */
#define FB_TP	"\xd9\x37" "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
static const struct {
	const char	*raw;
	uint32_t	 len;
} fb_metas[8] = {
	{ "\x81\xa1" "k" "\xa1" "v", 5 },
	{ "\x80", 1 },
	{ "\x82\xab" "traceparent" FB_TP "\xaa" "tracestate" "\xa3" "a=b",
	  1 + 12 + 57 + 11 + 4 },
	{ "\x81\xa3" "a b" "\xa1" "v", 7 },			/* bad key */
	{ "\x82\xa1" "k" "\xa1" "1" "\xa1" "k" "\xa1" "2", 9 },	/* twice */
	{ "\x81\xa1" "k" "\xa1" "\xff", 5 },			/* not UTF-8 */
	{ "\x81\xaa" "tracestate" "\xa1" "x", 14 },		/* no parent */
	{ "\x81\xab" "traceparent" "\xa2" "00", 16 },		/* bad */
};

/* A RUN from a client, built from the input. */
static void
fb_run(struct fb_peer *pe)
{
	static const char *const	 fns[] = { "a", "b", "c", "" };
	struct packet			 p;
	uint8_t				 kb = fb_byte();
	unsigned			 k = kb % FB_IDS;
	uint8_t				 f = fb_byte();

	packet_init(&p, PKT_RUN);
	fb_id(p.id, k);
	if (kb & 0x08) {
		p.meta.ptr = (const uint8_t *)fb_metas[(kb >> 4) & 7].raw;
		p.meta.len = fb_metas[(kb >> 4) & 7].len;
		p.has |= PF_META;
	}
	p.fn.ptr = (const uint8_t *)fns[f & 3];
	p.fn.len = (uint32_t)strlen(fns[f & 3]);
	if (f & 0x04) {
		p.payload.ptr = fb_bytes(fb_byte() % 16, &p.payload.len);
		p.has |= PF_PAYLOAD;
		/* An odd first byte makes it a unique job, of two keys. */
		if (p.payload.len > 0 && (p.payload.ptr[0] & 1)) {
			p.unique.ptr = (const uint8_t *)((p.payload.ptr[0] &
			    2) ? "u" : "v");
			p.unique.len = 1;
			p.has |= PF_UNIQUE;
		}
	}
	if (f & 0x08) {
		p.timeout_ms = (uint64_t)fb_byte() * 4;
		p.has |= PF_TIMEOUT;
		/* Some are delayed too, by as long (the timeout then counts). */
		if (p.timeout_ms & 4) {
			p.delay_ms = p.timeout_ms;
			p.has |= PF_DELAY;
		}
	}
	if (f & 0x10) {
		p.retries = fb_byte() & 3;
		p.has |= PF_RETRIES;
		/* Detached ones retry after an ERROR too, soon. */
		if (f & 0x40) {
			p.retry_on_error = p.retries;
			p.backoff_ms = 1 + p.retries;
			p.has |= PF_RETRY_ON_ERROR | PF_BACKOFF;
		}
	}
	if (f & 0x20) {
		p.priority = (int8_t)fb_byte();
		p.has |= PF_PRIORITY;
	}
	if (f & 0x40) {
		p.detach = true;
		p.has |= PF_DETACH;
		/* Asks for its ACCEPTED or refusal: the id byte's top bit. */
		if (kb & 0x80) {
			p.ack = true;
			p.has |= PF_ACK;
		}
	}
	if (f & 0x80) {
		p.nowait = true;
		p.has |= PF_NOWAIT;
	}
	if (pe->role == ROLE_CLIENT)
		pe->runs[k]++;
	fb_send(pe, &p);
}

/* CANCEL or STATUS of one of the ids (another client's, or not live). */
static void
fb_cancel(struct fb_peer *pe)
{
	struct packet	p;
	uint8_t		k = fb_byte();

	/* The id byte's top bit asks where the job is instead. */
	packet_init(&p, (k & 0x80) ? PKT_STATUS : PKT_CANCEL);
	fb_id(p.id, k % FB_IDS);
	fb_send(pe, &p);
}

/* REGISTER for a subset of the functions with a small capacity. */
static void
fb_register(struct fb_peer *pe)
{
	static const char *const	 fns[] = { "a", "b", "c" };
	struct packet			 p;
	uint8_t				 b = fb_byte();

	packet_init(&p, PKT_REGISTER);
	for (int f = 0; f < 3; f++) {
		if (!(b & (1 << f)))
			continue;
		p.fns[p.nfns].ptr = (const uint8_t *)fns[f];
		p.fns[p.nfns].len = 1;
		p.nfns++;
	}
	if (p.nfns == 0) {
		p.fns[0].ptr = (const uint8_t *)"a";
		p.fns[0].len = 1;
		p.nfns = 1;
	}
	p.capacity = 1 + ((b >> 3) & 3);
	fb_send(pe, &p);
}

/*
 * RESULT or PROGRESS from a worker: for a RUN it was sent (which then
 * leaves its list when answered), or for an id and attempt of the input.
 */
static void
fb_answer(struct fb_peer *pe, enum packet_type type)
{
	struct packet	p;
	uint8_t		b = fb_byte();
	unsigned	h;

	packet_init(&p, type);
	if (pe->nheld > 0 && !(b & 0x80)) {
		h = fb_byte() % pe->nheld;
		memcpy(p.id, pe->held[h].id, PROTO_ID_LEN);
		p.attempt = pe->held[h].attempt;
		if (type == PKT_RESULT) {
			memmove(&pe->held[h], &pe->held[h + 1],
			    sizeof(pe->held[0]) * (pe->nheld - h - 1));
			pe->nheld--;
		}
	} else {
		fb_id(p.id, fb_byte() % FB_IDS);
		p.attempt = fb_byte() & 3;
	}
	if (type == PKT_RESULT) {
		p.status = (enum job_status)((b & 3) % 3);	/* OK, ERROR,
								   CANCELLED */
		if (b & 0x04) {
			p.payload.ptr = fb_bytes(fb_byte() % 16,
			    &p.payload.len);
			p.has |= PF_PAYLOAD;
		}
		if (b & 0x08) {
			p.error.ptr = fb_bytes(fb_byte() % 16, &p.error.len);
			p.has |= PF_ERROR;
		}
	} else
		p.payload.ptr = fb_bytes(fb_byte() % 16, &p.payload.len);
	fb_send(pe, &p);
}

/* An ADMIN with a verb (or not one) and maybe an id argument. */
static void
fb_admin(struct fb_peer *pe)
{
	static const char *const	 verbs[] = { "status", "workers",
					    "functions", "ps", "spawn", "stop",
					    "restart", "pause", "resume", "scale",
					    "reload", "shutdown", "stats",
					    "count", "jobs", "queues", "nope" };
	struct packet			 p;
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	const char			*verb = verbs[fb_byte() %
					    (sizeof(verbs) / sizeof(verbs[0]))];
	uint8_t				 b = fb_byte();

	packet_init(&p, PKT_ADMIN);
	p.seq = ++pe->seq;
	p.verb.ptr = (const uint8_t *)verb;
	p.verb.len = (uint32_t)strlen(verb);
	msgpack_sbuffer_init(&sb);
	if (b & 0x10) {
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 8);
		proto_pack_str(&pk, "id");
		proto_pack_str(&pk, (b & 0x20) ? "p/1" : "p");
		proto_pack_str(&pk, "pool");
		proto_pack_str(&pk, "p");
		proto_pack_str(&pk, "instances");
		msgpack_pack_uint8(&pk, fb_byte() & 3);
		proto_pack_str(&pk, "argv");
		msgpack_pack_array(&pk, 1);
		proto_pack_str(&pk, "/nonexistent/fuzz");
		/* jobs' filters: a function, a client, a state, a limit. */
		proto_pack_str(&pk, "fn");
		proto_pack_str(&pk, (b & 0x40) ? "a" : "");
		proto_pack_str(&pk, "client");
		proto_pack_str(&pk, (b & 0x80) ? "1" : "c");
		proto_pack_str(&pk, "state");
		proto_pack_str(&pk, (b & 1) ? "queued" : (b & 2) ? "running" :
		    "x");
		proto_pack_str(&pk, "limit");
		msgpack_pack_uint8(&pk, b & 3);
		p.args_raw.ptr = (const uint8_t *)sb.data;
		p.args_raw.len = (uint32_t)sb.size;
		p.has |= PF_ARGS;
	}
	fb_send(pe, &p);
	msgpack_sbuffer_destroy(&sb);
}

/* Moves the clock and runs the server's timers as they would run. */
static void
fb_advance(void)
{
	uint8_t	b = fb_byte();

	fb_now += (b & 0x80) ? (uint64_t)(b & 0x7f) * 1000 : b;
	event_active(fb.srv->sb_timer, EV_TIMEOUT, 0);
	event_active(fb.srv->hb_timer, EV_TIMEOUT, 0);
}

/* Builds a fresh broker with the settings of byte b. 0 or -1. */
static int
fb_setup(uint8_t b)
{
	struct server_config	cfg;
	struct endpoint		ep;
	char			err[PROTO_ERRLEN], text[160];
	static bool		once;

	if (!once) {
		FILE	*null;

		/*
		 * Every log line is formatted (peer names, reasons) but goes
		 * to /dev/null: log.c writes to the stderr variable, while
		 * libFuzzer and the sanitizers keep the real descriptor 2.
		 * FUZZ_BROKER_LOG=1 keeps the log.
		 */
		log_set_level(LOG_LEVEL_DEBUG);
		if (getenv("FUZZ_BROKER_LOG") == NULL &&
		    (null = fopen("/dev/null", "w")) != NULL)
			stderr = null;
		signal(SIGPIPE, SIG_IGN);
		fb_trace = getenv("FUZZ_BROKER_TRACE") != NULL;
		once = true;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.heartbeat_ms = (b & 0x01) ? 50 : 10000;
	/*
	 * Not the default 1 MiB: a frame's header makes the broker reserve
	 * the whole declared length, and 1 MiB per input is most of the
	 * fuzzer's time under ASan. fuzz-proto covers the 1 MiB framing.
	 */
	cfg.max_frame = (b & 0x02) ? PROTO_MAX_FRAME_HELLO : 65536;
	cfg.sb.max_queue = (b & 0x04) ? 2 : 100000;
	cfg.out_cap = (b & 0x08) ? 4096 : 0;
	fb.token = (b & 0x10) != 0;
	cfg.tokens = NULL;
	if (fb.token) {
		size_t	n = 0;

		(void)strv_push(&cfg.tokens, &n, "fuzz-token");
	}
	cfg.sb.no_worker_wait_ms = (b & 0x20) ? 1 : 10000;
	cfg.hello_timeout_ms = (b & 0x40) ? 20 : 5000;
	cfg.sb.hash_seed = 12345;
	fb.max_frame = cfg.max_frame;
	fb_now = 1000000;

	snprintf(fb.path, sizeof(fb.path), "/tmp/fuzz-broker.%d/pb.sock",
	    (int)getpid());
	snprintf(text, sizeof(text), "unix:%s", fb.path);
	if ((fb.base = event_base_new()) == NULL ||
	    (fb.srv = server_new(fb.base, &cfg)) == NULL) {
		strv_free(cfg.tokens);
		return -1;
	}
	snprintf(fb.store, sizeof(fb.store), "/tmp/fuzz-broker.%d/store.db",
	    (int)getpid());
	if ((b & 0x80) && jobstore_open(fb.srv, fb.store, false, err) != 0)
		return -1;
	if (endpoint_parse(text, &ep, err) != 0 ||
	    server_listen(fb.srv, &ep, err) != 0 ||
	    supervisor_new(fb.base, NULL, &fb.sv) != 0)
		return -1;
	server_set_supervisor(fb.srv, fb.sv);
	supervisor_start(fb.sv);
	event_del(fb.srv->hb_timer);
	for (int i = 0; i < FB_PEERS; i++) {
		fb.peers[i].fd = -1;
		fb_connect(&fb.peers[i], i);
	}
	fb_pump();
	return 0;
}

/* Closes every peer, lets the broker see it, and frees everything. */
static void
fb_teardown(void)
{
	for (int i = 0; i < FB_PEERS; i++)
		fb_close(&fb.peers[i]);
	if (fb.srv != NULL)
		fb_pump();
	supervisor_free(fb.sv);
	server_free(fb.srv);
	if (fb.base != NULL)
		event_base_free(fb.base);
	/*
	 * Each input starts with no store, and the directory goes (the
	 * socket file went with its listener).
	 */
	for (int i = 0; i < 3; i++) {
		char	 p[sizeof(fb.store) + 8];

		snprintf(p, sizeof(p), "%s%s", fb.store,
		    (const char *[]){ "", "-wal", "-shm" }[i]);
		unlink(p);
	}
	{
		char	dir[128];

		snprintf(dir, sizeof(dir), "/tmp/fuzz-broker.%d",
		    (int)getpid());
		(void)rmdir(dir);
	}
	fb.sv = NULL;
	fb.srv = NULL;
	fb.base = NULL;
}

/* Runs one input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fb_peer	*pe;
	struct packet	 p;
	uint32_t	 len;
	const uint8_t	*raw;
	uint8_t		 b;
	int		 i;

	if (size == 0)
		return 0;
	for (i = 0; i < FB_PEERS; i++) {
		uint8_t *in = fb.peers[i].in;

		memset(&fb.peers[i], 0, sizeof(fb.peers[i]));
		if (in == NULL && (in = malloc(FB_IN_CAP)) == NULL)
			return 0;
		fb.peers[i].in = in;
	}
	fb.stopped = false;
	fb.p = data + 1;
	fb.end = data + size;
	{
		char dir[128];

		snprintf(dir, sizeof(dir), "/tmp/fuzz-broker.%d",
		    (int)getpid());
		(void)mkdir(dir, 0700);
	}
	if (fb_setup(data[0]) != 0) {
		fb_teardown();
		return 0;
	}
	while (fb.p < fb.end) {
		b = fb_byte();
		i = b % FB_PEERS;
		pe = &fb.peers[i];
		switch (b / FB_PEERS % 16) {
		case 0:
			fb_connect(pe, i);
			break;
		case 1:
			fb_hello(pe, i);
			break;
		case 2:
			raw = fb_bytes(fb_byte(), &len);
			pe->tainted = true;
			fb_write(pe, raw, len);
			break;
		case 3:
			fb_run(pe);
			break;
		case 4:
			fb_cancel(pe);
			break;
		case 5:
			fb_register(pe);
			break;
		case 6:
			fb_answer(pe, PKT_RESULT);
			break;
		case 7:
			fb_answer(pe, PKT_PROGRESS);
			break;
		case 8:
		case 9:
			packet_init(&p, b / FB_PEERS % 16 == 8 ? PKT_PING :
			    PKT_PONG);
			p.n = fb_byte();
			fb_send(pe, &p);
			break;
		case 10:
			fb_admin(pe);
			break;
		case 11:
			if (fb_byte() & 1)
				fb_close(pe);
			else if (pe->fd >= 0)
				shutdown(pe->fd, SHUT_WR);
			break;
		case 12:
			fb_advance();
			break;
		case 13:
			pe->stalled = !pe->stalled;
			break;
		case 14:
			if (!fb.stopped)
				server_stop(fb.srv, "fuzz: stop");
			fb.stopped = true;
			break;
		default:
			break;
		}
		fb_pump();
	}
	fb_teardown();
	return 0;
}

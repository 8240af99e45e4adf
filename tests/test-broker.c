/*
 * test-broker.c: patchbayd as a peer sees it, frame by frame.
 *
 * Each test starts the real broker on a private Unix socket and an
 * ephemeral TCP port and talks to it with hand-built packets: handshake
 * rules, what each role may send, malformed input (answered with ERROR,
 * while other peers keep being served), heartbeats, admin trust, shutdown,
 * and the command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/patchbay.h"
#include "tests/harness.h"
#include "proto/proto.h"
#include "util/util.h"

#define RECV_MS	5000

/* A raw protocol peer: a blocking socket and a frame buffer. */
struct raw {
	int	fd;
	uint8_t	buf[2 * 1024 * 1024];
};

/* Connects to endpoint text ep. */
static struct raw *
raw_connect(const char *ep_text)
{
	struct endpoint	 ep;
	struct raw	*r = calloc(1, sizeof(*r));
	char		 err[PROTO_ERRLEN];

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(endpoint_parse(ep_text, &ep, err), 0);
	ck_assert_int_eq(endpoint_connect(&ep, 2000, &r->fd), 0);
	fcntl(r->fd, F_SETFL, 0);
	return r;
}

/* Closes and frees a raw peer. */
static void
raw_free(struct raw *r)
{
	if (r == NULL)
		return;
	close(r->fd);
	free(r);
}

/* Writes bytes fully. */
static void
raw_write(struct raw *r, const void *buf, size_t len)
{
	const uint8_t	*p = buf;

	while (len > 0) {
		ssize_t n = write(r->fd, p, len);

		ck_assert_msg(n > 0, "write: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* Encodes p towards the broker and sends it. */
static void
raw_send(struct raw *r, const struct packet *p)
{
	msgpack_sbuffer	sb;

	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(packet_encode(p, PROTO_TO_BROKER, &sb), 0);
	raw_write(r, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Reads exactly len bytes within the deadline; false on EOF or timeout. */
static bool
raw_read_full(struct raw *r, uint8_t *buf, size_t len,
    unsigned long long deadline)
{
	size_t	got = 0;

	while (got < len) {
		struct pollfd	pfd = { r->fd, POLLIN, 0 };
		long long	left = (long long)(deadline - harness_now_ms());
		ssize_t		n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = read(r->fd, buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/*
 * Receives one packet (skipping PINGs unless want_ping). Returns 0, or
 * -EIO on EOF/timeout.
 */
static int
raw_recv_opt(struct raw *r, struct packet *p, bool want_ping)
{
	unsigned long long	deadline = harness_now_ms() + RECV_MS;
	uint32_t		len;
	char			err[PROTO_ERRLEN];

	for (;;) {
		if (!raw_read_full(r, r->buf, 4, deadline))
			return -EIO;
		ck_assert_int_eq(frame_header(r->buf, 4, sizeof(r->buf) - 4,
		    &len), 0);
		if (!raw_read_full(r, r->buf + 4, len, deadline))
			return -EIO;
		ck_assert_msg(packet_decode(r->buf + 4, len, PROTO_FROM_BROKER,
		    p, err) == 0, "broker sent an undecodable packet: %s", err);
		if (p->type != PKT_PING || want_ping)
			return 0;
		packet_clear(p);
	}
}

/* Receives one packet other than PING; fails the test on EOF/timeout. */
static void
raw_recv(struct raw *r, struct packet *p)
{
	ck_assert_int_eq(raw_recv_opt(r, p, false), 0);
}

/* True when the broker closed the connection (EOF within the deadline). */
static bool
raw_eof(struct raw *r)
{
	struct packet	p;

	for (;;) {
		if (raw_recv_opt(r, &p, true) != 0)
			return true;
		packet_clear(&p);
	}
}

/* Sends HELLO with role and expects WELCOME. */
static void
raw_hello(struct raw *r, enum proto_role role)
{
	struct packet	p;

	packet_init(&p, PKT_HELLO);
	p.version = 1;
	p.role = role;
	raw_send(r, &p);
	raw_recv(r, &p);
	ck_assert_msg(p.type == PKT_WELCOME, "expected WELCOME, got %s",
	    packet_type_name(p.type));
	packet_clear(&p);
}

/* Expects an ERROR with code whose msg contains needle. */
static void
raw_expect_error(struct raw *r, enum proto_error code, const char *needle)
{
	struct packet	p;

	raw_recv(r, &p);
	ck_assert_msg(p.type == PKT_ERROR, "expected ERROR, got %s",
	    packet_type_name(p.type));
	ck_assert_msg(p.code == code, "expected %s, got %s",
	    proto_error_name(code), proto_error_name(p.code));
	ck_assert_msg(memmem(p.msg.ptr, p.msg.len, needle, strlen(needle)),
	    "ERROR msg '%.*s' lacks '%s'", (int)p.msg.len, p.msg.ptr, needle);
	packet_clear(&p);
}

/* Registers a raw worker for fn with capacity. */
static void
raw_register(struct raw *r, const char *fn, uint32_t capacity)
{
	struct packet	p;

	packet_init(&p, PKT_REGISTER);
	p.nfns = 1;
	p.fns[0].ptr = (const uint8_t *)fn;
	p.fns[0].len = (uint32_t)strlen(fn);
	p.capacity = capacity;
	raw_send(r, &p);
}

/* Sends RUN {id: [tag]*16, fn, payload} from a raw client. */
static void
raw_run(struct raw *r, uint8_t tag, const char *fn, const char *payload,
    uint64_t timeout_ms, uint64_t retries)
{
	struct packet	p;

	packet_init(&p, PKT_RUN);
	memset(p.id, tag, PROTO_ID_LEN);
	p.fn.ptr = (const uint8_t *)fn;
	p.fn.len = (uint32_t)strlen(fn);
	p.payload.ptr = (const uint8_t *)payload;
	p.payload.len = (uint32_t)strlen(payload);
	p.has |= PF_PAYLOAD;
	if (timeout_ms != 0) {
		p.timeout_ms = timeout_ms;
		p.has |= PF_TIMEOUT;
	}
	if (retries != 0) {
		p.retries = retries;
		p.has |= PF_RETRIES;
	}
	raw_send(r, &p);
}

/* A worker receives RUN and answers OK with the payload uppercased. */
static void
raw_serve_one(struct raw *w)
{
	struct packet	p, res;
	char		up[256];

	raw_recv(w, &p);
	ck_assert_int_eq(p.type, PKT_RUN);
	ck_assert_uint_lt(p.payload.len, sizeof(up));
	for (uint32_t i = 0; i < p.payload.len; i++)
		up[i] = (char)(p.payload.ptr[i] >= 'a' && p.payload.ptr[i] <=
		    'z' ? p.payload.ptr[i] - 32 : p.payload.ptr[i]);
	packet_init(&res, PKT_RESULT);
	memcpy(res.id, p.id, PROTO_ID_LEN);
	res.attempt = p.attempt;
	res.status = JOB_OK;
	res.payload.ptr = (const uint8_t *)up;
	res.payload.len = p.payload.len;
	res.has |= PF_PAYLOAD;
	raw_send(w, &res);
	packet_clear(&p);
}

/* Expects RESULT for tag with status (and payload when not NULL). */
static void
raw_expect_result(struct raw *c, uint8_t tag, enum job_status status,
    const char *payload)
{
	struct packet	p;
	uint8_t		id[PROTO_ID_LEN];

	memset(id, tag, sizeof(id));
	raw_recv(c, &p);
	ck_assert_msg(p.type == PKT_RESULT, "expected RESULT, got %s",
	    packet_type_name(p.type));
	ck_assert_msg(memcmp(p.id, id, sizeof(id)) == 0, "RESULT for another "
	    "job (tag %u, want %u)", p.id[0], tag);
	ck_assert_msg(p.status == status, "expected %s, got %s",
	    job_status_name(status), job_status_name(p.status));
	if (payload != NULL) {
		ck_assert_uint_eq(p.payload.len, strlen(payload));
		ck_assert(memcmp(p.payload.ptr, payload, p.payload.len) == 0);
	}
	packet_clear(&p);
}

/* ---- handshake --------------------------------------------------------- */

START_TEST(hello_gets_welcome_with_limits)
{
	struct harness_broker	b;
	struct raw		*r;
	struct packet		 p;

	harness_broker_start(&b, NULL, false);
	r = raw_connect(b.unix_ep);
	packet_init(&p, PKT_HELLO);
	p.version = 1;
	p.role = ROLE_CLIENT;
	raw_send(r, &p);
	raw_recv(r, &p);
	ck_assert_int_eq(p.type, PKT_WELCOME);
	ck_assert_uint_eq(p.version, 1);
	ck_assert_uint_eq(p.heartbeat_ms, 10000);
	ck_assert_uint_eq(p.max_frame, 1024 * 1024);
	ck_assert(p.server.len > 9 && memcmp(p.server.ptr, "patchbayd", 9) == 0);
	packet_clear(&p);
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(hello_must_come_first)
{
	struct harness_broker	b;
	struct raw		*r;

	harness_broker_start(&b, NULL, false);
	r = raw_connect(b.tcp_ep);
	raw_run(r, 1, "rev", "x", 0, 0);
	raw_expect_error(r, PERR_BAD_PACKET, "first packet must be HELLO");
	ck_assert(raw_eof(r));
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(hello_wrong_version_refused)
{
	struct harness_broker	b;
	struct raw		*r;
	struct packet		 p;

	harness_broker_start(&b, NULL, false);
	r = raw_connect(b.unix_ep);
	packet_init(&p, PKT_HELLO);
	p.version = 2;
	p.role = ROLE_CLIENT;
	raw_send(r, &p);
	raw_expect_error(r, PERR_UNSUPPORTED_VERSION, "version 2");
	ck_assert(raw_eof(r));
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(hello_timeout_closes_silent_peer)
{
	struct harness_broker	b;
	struct raw		*r;

	harness_broker_start(&b, (const char *[]){ "--hello-timeout", "200",
	    NULL }, false);
	r = raw_connect(b.unix_ep);
	raw_expect_error(r, PERR_HELLO_TIMEOUT, "no HELLO within 200 ms");
	ck_assert(raw_eof(r));
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(hello_token_required_when_configured)
{
	struct harness_broker	b;
	struct raw		*r;
	struct packet		 p;
	char			 dir[256], path[300];
	FILE			*f;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "w");
	fputs("s3cret\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0600), 0);
	harness_broker_start(&b, (const char *[]){ "--token-file", path,
	    NULL }, false);

	r = raw_connect(b.tcp_ep);
	packet_init(&p, PKT_HELLO);
	p.version = 1;
	p.role = ROLE_CLIENT;
	raw_send(r, &p);
	raw_expect_error(r, PERR_AUTH_FAILED, "missing token");
	raw_free(r);

	r = raw_connect(b.tcp_ep);
	p.token.ptr = (const uint8_t *)"guess";
	p.token.len = 5;
	p.has |= PF_TOKEN;
	raw_send(r, &p);
	raw_expect_error(r, PERR_AUTH_FAILED, "wrong token");
	raw_free(r);

	r = raw_connect(b.tcp_ep);
	p.token.ptr = (const uint8_t *)"s3cret";
	p.token.len = 6;
	raw_send(r, &p);
	raw_recv(r, &p);
	ck_assert_int_eq(p.type, PKT_WELCOME);
	packet_clear(&p);
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

/* ---- roles ------------------------------------------------------------- */

/*
 * A token that cannot be copied stops patchbayd at start, naming the file:
 * it used to leave the token NULL, which turned the check off.
 */
START_TEST(token_copy_failure_stops_the_broker)
{
	char		 dir[256], path[300], sock[320], preload[600], *err = NULL;
	const char	*so = getenv("PATCHBAY_FAIL_STRDUP_SO");
	const char	*env[] = { preload, "PATCHBAY_FAIL_STRDUP=s3cret",
			    "ASAN_OPTIONS=verify_asan_link_order=0", NULL };
	FILE		*f;
	int		 status;

	ck_assert_ptr_nonnull(so);
	harness_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
	snprintf(sock, sizeof(sock), "unix:%s/pb.sock", dir);
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", so);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("s3cret\n", f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0600), 0);
	status = harness_run((const char *[]){ harness_patchbayd(), "-l", sock,
	    "--token-file", path, NULL }, env, NULL, 0, NULL, &err, 5000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 2,
	    "patchbayd status %d, stderr: %s", status, err);
	ck_assert_msg(strstr(err, "token file") != NULL &&
	    strstr(err, "out of memory") != NULL, "%s", err);
	free(err);
}
END_TEST

/* Sends PING n and expects PONG n: the connection is open and served. */
static void
raw_ping_pong(struct raw *r, uint64_t n)
{
	struct packet	p;

	packet_init(&p, PKT_PING);
	p.n = n;
	raw_send(r, &p);
	raw_recv(r, &p);
	ck_assert_msg(p.type == PKT_PONG, "expected PONG, got %s",
	    packet_type_name(p.type));
	ck_assert_uint_eq(p.n, n);
	packet_clear(&p);
}

/* Sends CANCEL {id: [tag]*16}. */
static void
raw_cancel(struct raw *r, uint8_t tag)
{
	struct packet	p;

	packet_init(&p, PKT_CANCEL);
	memset(p.id, tag, PROTO_ID_LEN);
	raw_send(r, &p);
}

/* Sends ADMIN verb without waiting for anything. */
static void
raw_admin_send(struct raw *r, const char *verb)
{
	struct packet	p;

	packet_init(&p, PKT_ADMIN);
	p.seq = 7;
	p.verb.ptr = (const uint8_t *)verb;
	p.verb.len = (uint32_t)strlen(verb);
	raw_send(r, &p);
}

/*
 * Each role sends its own packets only: a client may not REGISTER or send
 * ADMIN, a worker may not RUN or CANCEL (without worker_may_run) or send
 * ADMIN. Every refusal is NOT_ALLOWED, naming the role and the packet, and
 * the connection goes on being served.
 */
START_TEST(role_not_allowed_keeps_connection)
{
	struct harness_broker	b;
	struct raw		*r, *w;
	struct packet		 p;

	harness_broker_start(&b, NULL, false);
	r = raw_connect(b.unix_ep);
	raw_hello(r, ROLE_CLIENT);
	raw_register(r, "rev", 1);
	raw_expect_error(r, PERR_NOT_ALLOWED, "a client may not send REGISTER");
	/* Still open and served. */
	raw_ping_pong(r, 42);
	raw_admin_send(r, "status");
	raw_expect_error(r, PERR_NOT_ALLOWED, "a client may not send ADMIN");
	raw_ping_pong(r, 43);
	/* A second HELLO is refused the same way. */
	packet_init(&p, PKT_HELLO);
	p.version = 1;
	p.role = ROLE_WORKER;
	raw_send(r, &p);
	raw_expect_error(r, PERR_NOT_ALLOWED, "may not send HELLO");
	raw_ping_pong(r, 44);

	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "rev", 1);
	raw_run(w, 1, "rev", "x", 0, 0);
	raw_expect_error(w, PERR_NOT_ALLOWED, "a worker may not send RUN");
	raw_ping_pong(w, 45);
	raw_cancel(w, 1);
	raw_expect_error(w, PERR_NOT_ALLOWED, "a worker may not send CANCEL");
	raw_ping_pong(w, 46);
	raw_admin_send(w, "status");
	raw_expect_error(w, PERR_NOT_ALLOWED, "a worker may not send ADMIN");
	/* Still a worker: it is given the client's job. */
	raw_run(r, 2, "rev", "abc", 0, 0);
	raw_serve_one(w);
	raw_expect_result(r, 2, JOB_OK, "ABC");
	raw_free(w);
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

/*
 * Receives one packet and checks its type and its job's tag; returns the
 * attempt it carries (RUN's).
 */
static uint64_t
raw_expect_job(struct raw *r, enum packet_type type, uint8_t tag)
{
	struct packet	p;
	uint64_t	attempt;

	raw_recv(r, &p);
	ck_assert_msg(p.type == type, "expected %s, got %s",
	    packet_type_name(type), packet_type_name(p.type));
	ck_assert_msg(p.id[0] == tag, "%s for tag %u, want %u",
	    packet_type_name(type), p.id[0], tag);
	attempt = p.attempt;
	packet_clear(&p);
	return attempt;
}

/* A worker answers job tag (attempt) with status and no payload. */
static void
raw_answer(struct raw *w, uint8_t tag, uint64_t attempt,
    enum job_status status)
{
	struct packet	p;

	packet_init(&p, PKT_RESULT);
	memset(p.id, tag, PROTO_ID_LEN);
	p.attempt = attempt;
	p.status = status;
	raw_send(w, &p);
}

/*
 * worker_may_run = yes: a worker connection (a pipeline stage) RUNs a job
 * that another worker answers and gets its RESULT, may CANCEL its own jobs,
 * may even be given its own job, and what it submitted is cleaned up as a
 * client's is when it goes: the job it left running is CANCELled at the
 * worker running it, and the broker exits cleanly (no leak under the
 * sanitizers). Without the setting, the same RUN is NOT_ALLOWED.
 */
START_TEST(worker_may_run_lets_a_worker_submit_jobs)
{
	struct harness_broker	 b;
	struct raw		*w1, *w2, *c;
	uint64_t		 attempt;
	int			 status;

	harness_broker_start(&b, NULL, false);
	w1 = raw_connect(b.unix_ep);
	raw_hello(w1, ROLE_WORKER);
	raw_register(w1, "upper", 1);
	w2 = raw_connect(b.unix_ep);
	raw_hello(w2, ROLE_WORKER);
	raw_run(w2, 1, "upper", "hello", 0, 0);
	raw_expect_error(w2, PERR_NOT_ALLOWED, "a worker may not send RUN");
	raw_ping_pong(w2, 1);
	raw_free(w2);
	raw_free(w1);
	harness_broker_stop(&b);

	harness_broker_start(&b, (const char *[]){ "--worker-may-run", "yes",
	    NULL }, false);
	w1 = raw_connect(b.unix_ep);
	raw_hello(w1, ROLE_WORKER);
	raw_register(w1, "upper", 1);
	w2 = raw_connect(b.tcp_ep);
	raw_hello(w2, ROLE_WORKER);
	raw_register(w2, "self", 1);
	/* Before its first RUN it has no job to cancel. */
	raw_cancel(w2, 9);
	raw_expect_error(w2, PERR_NOT_FOUND, "no live job");

	raw_run(w2, 1, "upper", "hello", 0, 0);
	raw_serve_one(w1);
	raw_expect_result(w2, 1, JOB_OK, "HELLO");
	raw_cancel(w2, 9);
	raw_expect_error(w2, PERR_NOT_FOUND, "no live job");

	/* Its own job comes to it as a worker, its RESULT as a client. */
	raw_run(w2, 2, "self", "abc", 0, 0);
	raw_serve_one(w2);
	raw_expect_result(w2, 2, JOB_OK, "ABC");

	/* A job of its own it cancels: CANCEL at w1, CANCELLED to w2. */
	raw_run(w2, 3, "upper", "slow", 0, 0);
	attempt = raw_expect_job(w1, PKT_RUN, 3);
	raw_cancel(w2, 3);
	raw_expect_job(w1, PKT_CANCEL, 3);
	raw_answer(w1, 3, attempt, JOB_CANCELLED);
	raw_expect_result(w2, 3, JOB_CANCELLED, NULL);

	/* Clients are served as before. */
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 4, "self", "def", 0, 0);
	raw_serve_one(w2);
	raw_expect_result(c, 4, JOB_OK, "DEF");

	/*
	 * It goes with a job running at w1 and one running at itself: the
	 * first is CANCELled at w1, the second ends with it.
	 */
	raw_run(w2, 5, "upper", "left", 0, 0);
	attempt = raw_expect_job(w1, PKT_RUN, 5);
	raw_run(w2, 6, "self", "mine", 0, 0);
	raw_expect_job(w2, PKT_RUN, 6);
	raw_free(w2);
	raw_expect_job(w1, PKT_CANCEL, 5);
	raw_ping_pong(w1, 2);
	/* Its answer frees w1's slot; nobody is left to hear it. */
	raw_answer(w1, 5, attempt, JOB_CANCELLED);
	raw_run(c, 7, "upper", "still", 0, 0);
	raw_serve_one(w1);
	raw_expect_result(c, 7, JOB_OK, "STILL");
	raw_free(c);
	raw_free(w1);
	status = harness_broker_stop(&b);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "patchbayd wait status %d; log:\n%s", status,
	    harness_read_file(b.log_path));
}
END_TEST

START_TEST(cancel_unknown_id_not_found)
{
	struct harness_broker	b;
	struct raw		*r;
	struct packet		 p;

	harness_broker_start(&b, NULL, false);
	r = raw_connect(b.unix_ep);
	raw_hello(r, ROLE_CLIENT);
	packet_init(&p, PKT_CANCEL);
	memset(p.id, 0xab, PROTO_ID_LEN);
	raw_send(r, &p);
	raw_recv(r, &p);
	ck_assert_int_eq(p.type, PKT_ERROR);
	ck_assert_int_eq(p.code, PERR_NOT_FOUND);
	ck_assert(p.has & PF_ID);
	ck_assert_uint_eq(p.id[0], 0xab);
	packet_clear(&p);
	raw_free(r);
	harness_broker_stop(&b);
}
END_TEST

/*
 * A client that never reads and keeps asking for error replies is dropped
 * as a slow consumer once max_output is reached: the errors count against
 * the cap like any packet, and the broker goes on serving others.
 */
START_TEST(error_replies_count_against_max_output)
{
	struct harness_broker	 b;
	struct raw		*r, *w, *c;
	struct packet		 p;
	msgpack_sbuffer		 sb;
	size_t			 off = 0;
	ssize_t			 n;
	int			 i;

	harness_broker_start(&b, (const char *[]){ "--max-output", "64KiB",
	    NULL }, false);
	r = raw_connect(b.unix_ep);
	raw_hello(r, ROLE_CLIENT);
	msgpack_sbuffer_init(&sb);
	packet_init(&p, PKT_CANCEL);
	for (i = 0; i < 30000; i++) {
		memcpy(p.id, &i, sizeof(i));
		ck_assert_int_eq(packet_encode(&p, PROTO_TO_BROKER, &sb), 0);
	}
	/* Never read; stop writing when the broker hangs up. */
	while (off < sb.size && (n = send(r->fd, sb.data + off, sb.size - off,
	    MSG_NOSIGNAL)) > 0)
		off += (size_t)n;
	msgpack_sbuffer_destroy(&sb);
	ck_assert_msg(harness_wait_log(&b, "dropped: slow consumer: more than "
	    "65536 bytes of output waiting to be read (max_output)", 10000),
	    "no slow-consumer drop; log:\n%s", harness_read_file(b.log_path));

	/* Others are served as before. */
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "upper", 1);
	c = raw_connect(b.tcp_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 9, "upper", "hi", 0, 0);
	raw_serve_one(w);
	raw_expect_result(c, 9, JOB_OK, "HI");
	raw_free(r);
	raw_free(w);
	raw_free(c);
	harness_broker_stop(&b);
}
END_TEST

/* Reads the first packet a raw peer gets: an ERROR with that code. */
static void
raw_expect_refused(struct raw *r, const char *needle)
{
	raw_expect_error(r, PERR_TOO_MANY_CONNECTIONS, needle);
	ck_assert(raw_eof(r));
}

/*
 * max_connections and max_connections_per_uid: the next peer is told
 * TOO_MANY_CONNECTIONS, naming the limit, and closed; the others carry on,
 * and a place that frees up is taken again.
 */
START_TEST(connection_limits_refuse_the_next_peer)
{
	struct harness_broker	 b;
	struct raw		*r[4];

	harness_broker_start(&b, (const char *[]){ "--max-connections", "3",
	    NULL }, false);
	for (int i = 0; i < 3; i++) {
		r[i] = raw_connect(i % 2 ? b.tcp_ep : b.unix_ep);
		raw_hello(r[i], ROLE_CLIENT);
	}
	r[3] = raw_connect(b.tcp_ep);
	raw_expect_refused(r[3], "the broker already has 3 connections "
	    "(max_connections)");
	raw_free(r[3]);
	raw_free(r[0]);
	/* The freed place is taken again (once the broker saw it go). */
	ck_assert(harness_wait_log(&b, "closed: peer closed", 5000));
	r[0] = raw_connect(b.unix_ep);
	raw_hello(r[0], ROLE_CLIENT);
	for (int i = 0; i < 3; i++)
		raw_free(r[i]);
	harness_broker_stop(&b);

	harness_broker_start(&b, (const char *[]){ "--max-connections-per-uid",
	    "2", NULL }, false);
	r[0] = raw_connect(b.unix_ep);
	raw_hello(r[0], ROLE_CLIENT);
	r[1] = raw_connect(b.unix_ep);
	raw_hello(r[1], ROLE_WORKER);
	r[2] = raw_connect(b.unix_ep);
	raw_expect_refused(r[2], "already has 2 connections "
	    "(max_connections_per_uid)");
	/* TCP peers have no uid to count. */
	r[3] = raw_connect(b.tcp_ep);
	raw_hello(r[3], ROLE_CLIENT);
	for (int i = 0; i < 4; i++)
		raw_free(r[i]);
	harness_broker_stop(&b);
}
END_TEST

/* The broker's resident memory in KiB, from /proc. */
static long
broker_rss_kib(pid_t pid)
{
	char	 path[64], *s, *m;
	long	 kib = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((s = harness_read_file(path)) != NULL &&
	    (m = strstr(s, "VmRSS:")) != NULL)
		kib = strtol(m + 6, NULL, 10);
	free(s);
	return kib;
}

#ifdef __SANITIZE_ADDRESS__
#define RSS_MEANS_USE	false	/* freed memory waits in ASan's quarantine */
#else
#define RSS_MEANS_USE	true
#endif

/*
 * max_memory bounds what queued payloads cost: RUNs of 1 MiB with no
 * worker are queued until the limit, then refused QUEUE_FULL naming it,
 * and the broker's memory stays near the limit however many come.
 */
START_TEST(max_memory_refuses_runs_past_it)
{
	static char		 payload[1024 * 1024];
	struct harness_broker	 b;
	struct raw		*c;
	struct packet		 p;
	int			 i, full = 0;
	long			 rss;

	harness_broker_start(&b, (const char *[]){ "--max-memory", "8MiB",
	    "--max-frame", "2MiB", "--no-worker-wait", "1h", NULL }, false);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	memset(payload, 'p', sizeof(payload) - 1);
	for (i = 0; i < 40; i++)
		raw_run(c, (uint8_t)(i + 1), "nobody", payload, 0, 0);
	/*
	 * Only refusals come back: eight payloads of 1 MiB less a byte fit in
	 * 8 MiB and wait for a worker.
	 */
	for (i = 0; i < 40 - 8; i++) {
		raw_recv(c, &p);
		ck_assert_int_eq(p.type, PKT_RESULT);
		ck_assert_int_eq(p.status, JOB_QUEUE_FULL);
		ck_assert_msg(memmem(p.error.ptr, p.error.len, "max_memory "
		    "(8MiB)", 16) != NULL, "%.*s", (int)p.error.len,
		    p.error.ptr);
		full++;
		packet_clear(&p);
	}
	ck_assert_int_eq(full, 32);
	/*
	 * RSS says something only of a plain build: AddressSanitizer keeps
	 * freed memory in quarantine, and a wrapper (valgrind) is the process
	 * measured.
	 */
	if (RSS_MEANS_USE && getenv("PATCHBAY_BROKER_WRAPPER") == NULL) {
		rss = broker_rss_kib(b.pid);
		ck_assert_msg(rss > 0 && rss < 32 * 1024, "broker RSS %ld KiB",
		    rss);
	}
	raw_free(c);
	harness_broker_stop(&b);
}
END_TEST

/* Counts the occurrences of needle in the broker's log. */
static int
log_count(const struct harness_broker *b, const char *needle)
{
	char		*s = harness_read_file(b->log_path);
	const char	*m = s;
	int		 n = 0;

	while (m != NULL && (m = strstr(m, needle)) != NULL) {
		n++;
		m += strlen(needle);
	}
	free(s);
	return n;
}

/*
 * Out of descriptors, the broker stops accepting, says so at most once a
 * second, and resumes by itself once descriptors are free again; no busy
 * loop, and the peers it has keep being served.
 */
START_TEST(accept_pauses_on_emfile_and_resumes)
{
	struct harness_broker	 b;
	struct raw		*r[80];
	struct rlimit		 rl, low;
	unsigned long long	 t0;
	int			 i, n = 0, pauses;

	/* The broker inherits a low descriptor limit; the test keeps its own. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 48;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	harness_broker_start(&b, (const char *[]){ "--max-connections", "500",
	    NULL }, false);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);

	t0 = harness_now_ms();
	for (i = 0; i < 80; i++)
		r[n++] = raw_connect(b.tcp_ep);	/* the kernel queues them */
	ck_assert_msg(harness_wait_log(&b, "accept: Too many open files; "
	    "pausing for 1 s", 5000), "no EMFILE pause; log:\n%s",
	    harness_read_file(b.log_path));
	/* The first peers are served all along. */
	raw_hello(r[0], ROLE_CLIENT);
	usleep(1500 * 1000);	/* a stretch at the limit: count the lines */
	pauses = log_count(&b, "pausing for 1 s");
	ck_assert_msg(pauses <= 1 + (int)((harness_now_ms() - t0) / 1000),
	    "%d pause lines in %llu ms", pauses, harness_now_ms() - t0);
	for (i = 1; i < n; i++)
		raw_free(r[i]);
	/* Descriptors are back: the broker accepts again by itself. */
	r[1] = raw_connect(b.tcp_ep);
	raw_hello(r[1], ROLE_CLIENT);
	raw_free(r[0]);
	raw_free(r[1]);
	harness_broker_stop(&b);
}
END_TEST

START_TEST(job_round_trip_over_both_transports)
{
	struct harness_broker	b;
	struct raw		*w, *c;

	harness_broker_start(&b, NULL, false);
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "upper", 1);
	c = raw_connect(b.tcp_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 1, "upper", "hello", 0, 0);
	raw_serve_one(w);
	raw_expect_result(c, 1, JOB_OK, "HELLO");
	raw_free(c);
	raw_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* --no-worker-wait 0: a job for a function nobody serves fails at once. */
START_TEST(no_worker_wait_zero_answers_at_once)
{
	struct harness_broker	b;
	struct raw		*c;
	char			 dir[256], conf[300];
	FILE			*f;

	/* With the 10 s default, the answer would miss raw_recv's 5 s. */
	harness_broker_start(&b, (const char *[]){ "--no-worker-wait", "0",
	    NULL }, false);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 3, "nobody", "x", 0, 0);
	raw_expect_result(c, 3, JOB_NO_WORKER, NULL);
	raw_free(c);
	harness_broker_stop(&b);

	/* The same from the config file's key. */
	harness_tmpdir(dir, sizeof(dir));
	snprintf(conf, sizeof(conf), "%s/pb.conf", dir);
	f = fopen(conf, "w");
	ck_assert_ptr_nonnull(f);
	fputs("[broker]\nno_worker_wait = 0\n", f);
	fclose(f);
	harness_broker_start(&b, (const char *[]){ "-c", conf, NULL }, false);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 4, "nobody", "x", 0, 0);
	raw_expect_result(c, 4, JOB_NO_WORKER, NULL);
	raw_free(c);
	harness_broker_stop(&b);
}
END_TEST

/* ---- malformed input --------------------------------------------------- */

START_TEST(malformed_frames_get_errors_others_still_served)
{
	static const struct {
		const uint8_t	*bytes;
		size_t		 len;
		enum proto_error code;
		const char	*needle;
		bool		 after_hello;
	} cases[] = {
		/* A map declaring 1000 entries in a 3-byte body. */
		{ (const uint8_t *)"\0\0\0\3\xde\x03\xe8", 7, PERR_BAD_FRAME,
		    "1000", false },
		/* An array, not a map. */
		{ (const uint8_t *)"\0\0\0\1\x90", 5, PERR_BAD_FRAME,
		    "not a map", false },
		/* Two maps: trailing bytes. */
		{ (const uint8_t *)"\0\0\0\2\x80\x80", 6, PERR_BAD_FRAME,
		    "trailing", false },
		/* Zero length. */
		{ (const uint8_t *)"\0\0\0\0", 4, PERR_BAD_FRAME, "length 0",
		    false },
		/* 8 KiB before HELLO: over the 4 KiB limit. */
		{ (const uint8_t *)"\0\0\x20\0", 4, PERR_FRAME_TOO_LARGE,
		    "8192", false },
		/* 2 MiB after HELLO: over the 1 MiB limit. */
		{ (const uint8_t *)"\0\x20\0\0", 4, PERR_FRAME_TOO_LARGE,
		    "2097152", true },
		/* {t:"PING", n:"x"}: wrong type for a known key. */
		{ (const uint8_t *)"\0\0\0\x0c\x82\xa1t\xa4PING\xa1n\xa1x", 16,
		    PERR_BAD_PACKET, "'n'", true },
		/* {t:"NOPE"}: unknown packet type. */
		{ (const uint8_t *)"\0\0\0\x08\x81\xa1t\xa4NOPE", 12,
		    PERR_BAD_PACKET, "NOPE", true },
		/* Nesting 9 deep. */
		{ (const uint8_t *)"\0\0\0\x12\x81\xa1x\x91\x91\x91\x91\x91\x91"
		    "\x91\x91\x91\x91\x91\x91\x91\x91\xc0", 22, PERR_BAD_FRAME,
		    "deep", true },
	};
	struct harness_broker	b;
	struct raw		*w, *c, *bad;

	harness_broker_start(&b, NULL, false);
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "upper", 1);
	c = raw_connect(b.tcp_ep);
	raw_hello(c, ROLE_CLIENT);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bad = raw_connect(i % 2 ? b.tcp_ep : b.unix_ep);
		if (cases[i].after_hello)
			raw_hello(bad, ROLE_CLIENT);
		raw_write(bad, cases[i].bytes, cases[i].len);
		raw_expect_error(bad, cases[i].code, cases[i].needle);
		ck_assert_msg(raw_eof(bad), "case %zu: still open", i);
		raw_free(bad);

		/* The good peers are still served after every bad one. */
		raw_run(c, (uint8_t)(i + 1), "upper", "ok", 0, 0);
		raw_serve_one(w);
		raw_expect_result(c, (uint8_t)(i + 1), JOB_OK, "OK");
	}
	raw_free(c);
	raw_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* ---- heartbeats --------------------------------------------------------- */

START_TEST(heartbeat_pings_silent_peer_and_drops_dead_worker)
{
	struct harness_broker	b;
	struct raw		*w, *c;
	struct packet		 p;
	unsigned long long	 t0;
	int			 pings = 0;

	harness_broker_start(&b, (const char *[]){ "--heartbeat", "100",
	    NULL }, false);
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "upper", 1);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);

	/* The worker takes a job and then never answers anything: it is
	 * dropped after 3 x 100 ms and its job is answered WORKER_LOST. The
	 * client answers every PING and stays connected meanwhile. */
	t0 = harness_now_ms();
	raw_run(c, 9, "upper", "x", 0, 0);
	raw_recv(w, &p);
	ck_assert_int_eq(p.type, PKT_RUN);
	packet_clear(&p);
	for (;;) {
		ck_assert_int_eq(raw_recv_opt(c, &p, true), 0);
		if (p.type == PKT_PING) {
			pings++;
			p.type = PKT_PONG;
			raw_send(c, &p);
			packet_clear(&p);
			continue;
		}
		break;
	}
	ck_assert_int_ge(pings, 1);
	ck_assert_int_eq(p.type, PKT_RESULT);
	ck_assert_int_eq(p.status, JOB_WORKER_LOST);
	ck_assert_uint_eq(p.attempts, 1);
	ck_assert_uint_ge(harness_now_ms() - t0, 250);
	packet_clear(&p);
	ck_assert(harness_wait_log(&b, "silent for", 2000));
	raw_free(c);
	raw_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* ---- detached jobs ----------------------------------------------------- */

/* Sends a detached RUN {id: [tag]*16, fn, detach, ack?, nowait?}. */
static void
raw_run_detached(struct raw *r, uint8_t tag, const char *fn, bool ack,
    bool nowait, int64_t priority)
{
	struct packet	p;

	packet_init(&p, PKT_RUN);
	memset(p.id, tag, PROTO_ID_LEN);
	p.fn.ptr = (const uint8_t *)fn;
	p.fn.len = (uint32_t)strlen(fn);
	p.payload.ptr = (const uint8_t *)"bg";
	p.payload.len = 2;
	p.has |= PF_PAYLOAD | PF_DETACH;
	p.detach = true;
	if (ack) {
		p.has |= PF_ACK;
		p.ack = true;
	}
	if (nowait) {
		p.has |= PF_NOWAIT;
		p.nowait = true;
	}
	if (priority != 0) {
		p.has |= PF_PRIORITY;
		p.priority = priority;
	}
	raw_send(r, &p);
}

/* Expects ACCEPTED for tag. */
static void
raw_expect_accepted(struct raw *c, uint8_t tag)
{
	struct packet	p;
	uint8_t		id[PROTO_ID_LEN];

	memset(id, tag, sizeof(id));
	raw_recv(c, &p);
	ck_assert_msg(p.type == PKT_ACCEPTED, "expected ACCEPTED for tag %u, "
	    "got %s", tag, packet_type_name(p.type));
	ck_assert_msg(memcmp(p.id, id, sizeof(id)) == 0, "ACCEPTED for "
	    "another job (tag %u, want %u)", p.id[0], tag);
	packet_clear(&p);
}

/*
 * A detached RUN that asks (ack) gets exactly one answer: ACCEPTED once
 * taken, or the RESULT that refuses it; one that does not ask gets none,
 * as in protocol v1. A detached job outlives no_worker_wait, which still
 * ends an attached job, and runs when a worker comes; its client hears
 * nothing more of it.
 */
START_TEST(detached_run_answered_once_and_waits_for_a_worker)
{
	struct harness_broker	 b;
	struct raw		*c, *w;
	struct packet		 p;

	harness_broker_start(&b, (const char *[]){ "--max-queue", "2",
	    "--no-worker-wait", "300ms", NULL }, false);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 7, "gone", "x", 0, 0);	/* attached, no worker */
	raw_run_detached(c, 1, "later", true, false, 0);
	raw_expect_accepted(c, 1);
	raw_run_detached(c, 2, "later", true, false, 0);
	raw_expect_accepted(c, 2);
	raw_run_detached(c, 3, "later", true, false, 0);
	raw_expect_result(c, 3, JOB_QUEUE_FULL, NULL);
	raw_run_detached(c, 1, "other", true, false, 0);
	raw_expect_result(c, 1, JOB_DUPLICATE_ID, NULL);
	raw_run_detached(c, 4, "none", true, true, 0);
	raw_expect_result(c, 4, JOB_NO_WORKER, NULL);
	raw_run_detached(c, 5, "later", true, false, 101);
	raw_expect_result(c, 5, JOB_BAD_REQUEST, NULL);
	/* Without ack: nothing, neither for a refusal nor for a job taken. */
	raw_run_detached(c, 6, "later", false, false, 0);	/* full */
	raw_run_detached(c, 8, "quiet", false, false, 0);
	raw_ping_pong(c, 1);

	/* The attached job ends after no_worker_wait; the detached wait. */
	raw_expect_result(c, 7, JOB_NO_WORKER, NULL);
	usleep(400 * 1000);
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "later", 4);
	raw_serve_one(w);
	raw_serve_one(w);
	/* Job 8 waited too. */
	raw_register(w, "quiet", 1);
	raw_recv(w, &p);
	ck_assert_int_eq(p.type, PKT_RUN);
	ck_assert_uint_eq(p.id[0], 8);
	packet_clear(&p);
	/* Its client hears nothing of jobs it left: the next is the PONG. */
	raw_ping_pong(c, 2);
	raw_free(w);
	raw_free(c);
	ck_assert_int_eq(harness_broker_stop(&b) & 0xff7f, 0);
}
END_TEST

/*
 * A detached job that no worker takes within detached_ttl is dropped,
 * logged at info with its id and counted (detached_dropped).
 */
START_TEST(detached_ttl_drops_logged_and_counted)
{
	struct harness_broker	 b;
	struct raw		*c;
	char			*out = NULL;

	harness_broker_start(&b, (const char *[]){ "--detached-ttl", "1s",
	    NULL }, false);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run_detached(c, 9, "nobody-serves", true, false, 0);
	raw_expect_accepted(c, 9);
	ck_assert(harness_wait_log(&b, "job id=09090909-0909-0909-0909-"
	    "090909090909 fn=\"nobody-serves\" detached=yes attempts=0: "
	    "detached job dropped: TIMEOUT: waited for a worker longer than "
	    "detached_ttl (1s)", 10000));
	ck_assert_int_eq(harness_ctl(&b, true, &out, NULL, "status", NULL), 0);
	ck_assert_msg(strstr(out, "\"detached_dropped\": 1,") != NULL, "%s",
	    out);
	free(out);
	raw_free(c);
	ck_assert_int_eq(harness_broker_stop(&b) & 0xff7f, 0);
}
END_TEST

/* ---- admin ------------------------------------------------------------- */

/* Sends ADMIN verb with no args and receives the REPLY. */
static void
raw_admin(struct raw *r, const char *verb, struct packet *ret)
{
	struct packet	p;

	packet_init(&p, PKT_ADMIN);
	p.seq = 5;
	p.verb.ptr = (const uint8_t *)verb;
	p.verb.len = (uint32_t)strlen(verb);
	raw_send(r, &p);
	raw_recv(r, ret);
	ck_assert_int_eq(ret->type, PKT_REPLY);
	ck_assert_uint_eq(ret->seq, 5);
}

START_TEST(admin_status_and_unknown_verb)
{
	struct harness_broker	 b;
	struct raw		*a, *w;
	struct packet		 p;
	const msgpack_object	*d;
	bool			 seen_workers = false;

	harness_broker_start(&b, NULL, false);
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "upper", 3);
	a = raw_connect(b.unix_ep);
	raw_hello(a, ROLE_ADMIN);

	raw_admin(a, "status", &p);
	ck_assert(p.ok);
	d = p.data;
	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(d->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < d->via.map.size; i++) {
		const msgpack_object_kv *kv = &d->via.map.ptr[i];

		if (kv->key.via.str.size == 7 &&
		    memcmp(kv->key.via.str.ptr, "workers", 7) == 0) {
			ck_assert_uint_eq(kv->val.via.u64, 1);
			seen_workers = true;
		}
	}
	ck_assert(seen_workers);
	packet_clear(&p);

	raw_admin(a, "workers", &p);
	ck_assert(p.ok);
	ck_assert_int_eq(p.data->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(p.data->via.array.size, 1);
	packet_clear(&p);

	raw_admin(a, "frobnicate", &p);
	ck_assert(!p.ok);
	ck_assert(p.has & PF_ERROR);
	ck_assert_ptr_nonnull(memmem(p.error.ptr, p.error.len,
	    "unknown verb 'frobnicate'", 25));
	packet_clear(&p);
	raw_free(a);
	raw_free(w);
	harness_broker_stop(&b);
}
END_TEST

/* True when some line of text starts with prefix. */
static bool
has_line_starting(const char *text, const char *prefix)
{
	for (const char *l = text; l != NULL && *l != '\0';
	    l = strchr(l, '\n') != NULL ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

START_TEST(peer_strings_escaped_in_log)
{
	static const char	 name[] = "evil\nFORGED: admin granted\x1b[2J";
	struct harness_broker	 b;
	struct raw		*c, *a;
	struct packet		 p;
	char			*log;

	harness_broker_start(&b, NULL, false);
	c = raw_connect(b.unix_ep);
	packet_init(&p, PKT_HELLO);
	p.version = 1;
	p.role = ROLE_CLIENT;
	p.name.ptr = (const uint8_t *)name;
	p.name.len = sizeof(name) - 1;
	p.has |= PF_NAME;
	raw_send(c, &p);
	raw_recv(c, &p);
	ck_assert_int_eq(p.type, PKT_WELCOME);
	packet_clear(&p);
	raw_free(c);

	a = raw_connect(b.unix_ep);
	raw_hello(a, ROLE_ADMIN);
	raw_admin(a, "x\nFORGED: verb", &p);
	ck_assert(!p.ok);
	packet_clear(&p);
	raw_free(a);
	harness_broker_stop(&b);

	log = harness_read_file(b.log_path);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, "evil\\nFORGED: admin granted\\x1b[2J") !=
	    NULL, "escaped name missing from log:\n%s", log);
	ck_assert_msg(strstr(log, "x\\nFORGED: verb") != NULL,
	    "escaped verb missing from log:\n%s", log);
	ck_assert_msg(!has_line_starting(log, "FORGED"), "a peer forged a "
	    "log line:\n%s", log);
	ck_assert_ptr_null(strchr(log, '\x1b'));
	free(log);
}
END_TEST

START_TEST(admin_refused_over_tcp)
{
	struct harness_broker	b;
	struct raw		*a;
	struct packet		 p;

	harness_broker_start(&b, NULL, false);
	a = raw_connect(b.tcp_ep);
	packet_init(&p, PKT_HELLO);
	p.version = 1;
	p.role = ROLE_ADMIN;
	raw_send(a, &p);
	raw_expect_error(a, PERR_AUTH_FAILED, "only over a unix socket");
	ck_assert(raw_eof(a));
	raw_free(a);
	harness_broker_stop(&b);
}
END_TEST

/* ---- shutdown and the command line ------------------------------------- */

START_TEST(shutdown_answers_queued_and_removes_socket)
{
	struct harness_broker	b;
	struct raw		*c, *w, *early;
	struct packet		 p;
	int			 status;

	harness_broker_start(&b, NULL, false);
	w = raw_connect(b.unix_ep);
	raw_hello(w, ROLE_WORKER);
	raw_register(w, "upper", 1);
	c = raw_connect(b.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_run(c, 1, "upper", "running", 0, 0);
	raw_run(c, 2, "upper", "queued", 0, 0);
	raw_recv(w, &p);	/* job 1 is running at the worker */
	ck_assert_int_eq(p.type, PKT_RUN);
	packet_clear(&p);
	/* A peer still before its HELLO when the broker stops. */
	early = raw_connect(b.unix_ep);
	ck_assert(harness_wait_log(&b, "conn=3 role=none transport=unix",
	    RECV_MS));

	kill(b.pid, SIGTERM);
	raw_expect_error(early, PERR_SHUTTING_DOWN, "shutting down");
	ck_assert(raw_eof(early));
	raw_free(early);
	/* Both jobs are answered SHUTTING_DOWN (in some order), then BYE. */
	for (int i = 0; i < 2; i++) {
		raw_recv(c, &p);
		ck_assert_int_eq(p.type, PKT_RESULT);
		ck_assert_int_eq(p.status, JOB_SHUTTING_DOWN);
		packet_clear(&p);
	}
	raw_recv(c, &p);
	ck_assert_int_eq(p.type, PKT_BYE);
	packet_clear(&p);
	/* The worker hears CANCEL for its running job, then BYE. */
	raw_recv(w, &p);
	ck_assert_int_eq(p.type, PKT_CANCEL);
	packet_clear(&p);
	raw_recv(w, &p);
	ck_assert_int_eq(p.type, PKT_BYE);
	packet_clear(&p);
	ck_assert(raw_eof(c));

	status = harness_broker_stop(&b);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "patchbayd wait status %d; log:\n%s", status,
	    harness_read_file(b.log_path));
	ck_assert_int_eq(access(b.sock, F_OK), -1);
	raw_free(c);
	raw_free(w);
}
END_TEST

START_TEST(restart_replaces_stale_socket_refuses_live)
{
	struct harness_broker	b, b2;
	struct raw		*c;
	char			*out = NULL, *err = NULL;
	int			 status;

	harness_broker_start(&b, NULL, false);
	/* A second broker on the same live socket refuses to start. */
	status = harness_run((const char *[]){ harness_patchbayd(), "-l",
	    b.unix_ep, NULL }, NULL, NULL, 0, &out, &err, 5000);
	ck_assert(WIFEXITED(status));
	ck_assert_int_ne(WEXITSTATUS(status), 0);
	ck_assert_msg(strstr(err, "another broker is listening on") != NULL,
	    "stderr: %s", err);
	free(out);
	free(err);

	/* kill -9 leaves the socket file; the next broker replaces it. */
	harness_kill(b.pid, SIGKILL);
	ck_assert_int_eq(access(b.sock, F_OK), 0);
	b2 = b;
	harness_broker_start(&b2, NULL, true);
	c = raw_connect(b2.unix_ep);
	raw_hello(c, ROLE_CLIENT);
	raw_free(c);
	harness_broker_stop(&b2);
}
END_TEST

START_TEST(bad_flags_exit_2_naming_the_problem)
{
	static const struct { const char *a, *b, *needle; } cases[] = {
		{ "--log-level", "loud", "--log-level: expected error, warn, "
		    "info or debug (got 'loud')" },
		{ "-l", "udp:1.2.3.4:5",
		    "expected unix:PATH, tcp:HOST:PORT or tls:HOST:PORT" },
		{ "--heartbeat", "fast", "--heartbeat: expected a duration "
		    "such as 250ms, 10s" },
		{ "--heartbeat", "2h", "--heartbeat: expected a duration from "
		    "10ms to 1h (got '2h')" },
		{ "--max-frame", "1GiB", "--max-frame: expected a size from "
		    "4KiB to 64MiB (got '1GiB')" },
		{ "--config", "/nonexistent/patchbay.conf",
		    "No such file or directory" },
	};
	char	*err = NULL;
	int	 status;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		status = harness_run((const char *[]){ harness_patchbayd(),
		    cases[i].a, cases[i].b, NULL }, NULL, NULL, 0, NULL, &err,
		    5000);
		ck_assert(WIFEXITED(status));
		ck_assert_int_eq(WEXITSTATUS(status), 2);
		ck_assert_msg(strstr(err, cases[i].needle) != NULL,
		    "%s %s: stderr '%s' lacks '%s'", cases[i].a, cases[i].b,
		    err, cases[i].needle);
		free(err);
	}
}
END_TEST

START_TEST(default_endpoint_from_environment)
{
	char			 dir[256], env[300], sock[300], ready[300];
	char			 renv[320];
	struct stat		 st;
	struct harness_broker	 b;
	struct raw		*c;
	char			 ep[320];

	harness_tmpdir(dir, sizeof(dir));
	snprintf(sock, sizeof(sock), "%s/sub/default.sock", dir);
	snprintf(env, sizeof(env), "PATCHBAY_SOCKET=%s", sock);
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	snprintf(renv, sizeof(renv), "%s", ready);
	memset(&b, 0, sizeof(b));
	snprintf(b.ready_path, sizeof(b.ready_path), "%s", ready);
	snprintf(b.log_path, sizeof(b.log_path), "%s/log", dir);
	b.pid = harness_spawn((const char *[]){ harness_patchbayd(),
	    "--ready-file", renv, NULL }, (const char *[]){ env, NULL },
	    b.log_path);
	for (int i = 0; i < 500 && access(ready, F_OK) != 0; i++)
		usleep(10000);
	ck_assert_int_eq(access(ready, F_OK), 0);
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	snprintf(ep, sizeof(ep), "unix:%s", sock);
	c = raw_connect(ep);
	raw_hello(c, ROLE_CLIENT);
	raw_free(c);
	harness_broker_stop(&b);
	ck_assert_int_eq(access(sock, F_OK), -1);
}
END_TEST

/* qsort comparator for an array of strings. */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Collects the words that start with "--" (up to a blank, ')' or '`') from
 * text into a sorted, comma-separated list: "--a,--b,".
 */
static char *
flag_list(const char *text, const char *start, const char *end)
{
	char		*words[64], *list;
	size_t		 n = 0, len = 1;
	const char	*s = start != NULL ? strstr(text, start) : text;
	const char	*stop = s != NULL && end != NULL ? strstr(s, end) : NULL;

	ck_assert_ptr_nonnull(s);
	for (; (s = strstr(s, "--")) != NULL && (stop == NULL || s < stop);
	    s += 2) {
		size_t	k = strcspn(s, " )`,\n[=");
		bool	dup = false;

		if (k <= 2 || s[2] == '-' || (s[2] >= 'A' && s[2] <= 'Z'))
			continue;
		for (size_t i = 0; i < n; i++)
			dup |= strlen(words[i]) == k &&
			    strncmp(words[i], s, k) == 0;
		if (!dup && n < 64) {
			words[n++] = strndup(s, k);
			len += k + 1;
		}
	}
	qsort(words, n, sizeof(words[0]), cmp_str);
	ck_assert_ptr_nonnull(list = calloc(1, len));
	for (size_t i = 0; i < n; i++) {
		strcat(list, words[i]);
		strcat(list, ",");
		free(words[i]);
	}
	return list;
}

/* patchbayd --help and configuration.md's [broker] table list one set. */
/*
 * In a forked child as nobody (with group gid among its groups when
 * with_group), connects to ep in role ("client", "worker" or "admin"):
 * 0 taken, 13 refused by the file system (EACCES), 3 refused by the broker
 * (EPROTO: AUTH_FAILED), 1 otherwise.
 */
static int
connect_as_nobody(const char *ep, gid_t gid, bool with_group,
    const char *role)
{
	struct pb_client	*c;
	struct pb_worker	*w;
	pid_t			 pid;
	int			 status, r;

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		if (setgroups(with_group ? 1 : 0, &gid) != 0 ||
		    setgid(65534) != 0 || setuid(65534) != 0)
			_exit(1);
		if (strcmp(role, "client") == 0) {
			if ((r = pb_client_connect(ep, NULL, &c)) == 0)
				pb_client_free(c);
		} else if (strcmp(role, "worker") == 0) {
			if ((r = pb_worker_new(ep, NULL, &w)) == 0) {
				r = pb_worker_connect(w);
				pb_worker_free(w);
			}
		} else {
			r = harness_run((const char *[]){ harness_cli(), "ctl",
			    "--broker", ep, "status", NULL }, NULL, NULL, 0,
			    NULL, NULL, 5000);
			r = WIFEXITED(r) && WEXITSTATUS(r) == 0 ? 0 : -EPROTO;
		}
		_exit(r == 0 ? 0 : r == -EACCES ? 13 : r == -EPROTO ? 3 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * Who may connect over a unix socket: socket_mode and socket_group open the
 * file (and the directory the broker makes for it) to a group; the per-role
 * lists say who of those may take which role. The default lists hold the
 * broker's own user and root only.
 */
START_TEST(unix_socket_access_by_mode_group_and_role_lists)
{
	struct harness_broker	 b, b2;
	struct stat		 st;
	char			 dir[256], base[256], sock[300], ep[310];
	char			 sub[280], ep2[310];
	gid_t			 gid = 1;	/* daemon */

	if (geteuid() != 0) {
		printf("unix_socket_access_by_mode_group_and_role_lists: "
		    "skipped, acting as another user needs root\n");
		return;
	}
	harness_tmpdir(dir, sizeof(dir));
	/* nobody must get there: the scratch directories, searchable. */
	snprintf(base, sizeof(base), "%s", dir);
	*strrchr(base, '/') = '\0';
	ck_assert_int_eq(chmod(base, 0711), 0);
	ck_assert_int_eq(chmod(dir, 0711), 0);
	snprintf(sub, sizeof(sub), "%s/run", dir);
	snprintf(sock, sizeof(sock), "%s/pb.sock", sub);
	snprintf(ep, sizeof(ep), "unix:%s", sock);
	harness_broker_start(&b, (const char *[]){ "-l", ep, "--socket-mode",
	    "0660", "--socket-group", "daemon", "--client-gids", "daemon",
	    "--worker-uids", "nobody", NULL }, false);
	ck_assert_int_eq(stat(sock, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	ck_assert_uint_eq(st.st_gid, gid);
	ck_assert_int_eq(stat(sub, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0710);
	ck_assert_uint_eq(st.st_gid, gid);
	/* In the group: a client (client_gids) and a worker (worker_uids). */
	ck_assert_int_eq(connect_as_nobody(ep, gid, true, "client"), 0);
	ck_assert_int_eq(connect_as_nobody(ep, gid, true, "worker"), 0);
	/* Not admin: refused, and the refusal is logged with who it was. */
	ck_assert_int_eq(connect_as_nobody(ep, gid, true, "admin"), 3);
	ck_assert(harness_wait_log(&b, "refused the admin role: uid 65534 gid "
	    "65534 pid ", 5000));
	/* Not in the group: the file system says no. */
	ck_assert_int_eq(connect_as_nobody(ep, gid, false, "client"), 13);
	harness_broker_stop(&b);

	/* The same socket mode without lists: only its own user and root. */
	snprintf(ep2, sizeof(ep2), "unix:%s/run2/pb.sock", dir);
	harness_broker_start(&b2, (const char *[]){ "-l", ep2, "--socket-mode",
	    "0660", "--socket-group", "1", NULL }, false);
	ck_assert_int_eq(connect_as_nobody(ep2, gid, true, "client"), 3);
	ck_assert(harness_wait_log(&b2, "refused the client role: uid 65534",
	    5000));
	harness_broker_stop(&b2);
	ck_assert_int_eq(chmod(base, 0700), 0);

	/* Bad values are named before anything is bound. */
	{
		char	*err = NULL;
		int	 status;

		status = harness_run((const char *[]){ harness_patchbayd(),
		    "--socket-mode", "0999", NULL }, NULL, NULL, 0, NULL, &err,
		    5000);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
		ck_assert_msg(strstr(err, "expected an octal mode such as "
		    "0660, at most 0777 (got '0999')") != NULL, "%s", err);
		free(err);
		status = harness_run((const char *[]){ harness_patchbayd(),
		    "--socket-group", "no-such-group", NULL }, NULL, NULL, 0,
		    NULL, &err, 5000);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
		ck_assert_msg(strstr(err, "no group 'no-such-group'") != NULL,
		    "%s", err);
		free(err);
		status = harness_run((const char *[]){ harness_patchbayd(),
		    "--worker-uids", "root,no-such-user", NULL }, NULL, NULL,
		    0, NULL, &err, 5000);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
		ck_assert_msg(strstr(err, "no user 'no-such-user'") != NULL,
		    "%s", err);
		free(err);
	}
}
END_TEST

/* Writes text to path, mode 0600 (a token file). */
static void
write_secret(const char *path, const char *text)
{
	FILE	*f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, 0600), 0);
}

/* Runs the CLI with "PATCHBAY_TOKEN=token" (NULL: none); its exit status. */
static int
cli_with_token(const char *token, char **ret_err, const char *const *argv)
{
	char		 env[128];
	const char	*envv[] = { env, NULL };
	int		 status;

	snprintf(env, sizeof(env), "PATCHBAY_TOKEN=%s", token != NULL ? token :
	    "");
	status = harness_run(argv, envv, NULL, 0, NULL, ret_err, 10000);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * Tokens per role: token_file for every role (two lines: an old and a new
 * one, both good during a rotation), client_token_file for clients only,
 * admin_token_file, which also lets an admin in over TCP. `ctl reload`
 * reads the files again; a file others may read is refused; no token ever
 * reaches the log, even at debug level.
 */
START_TEST(tokens_per_role_rotation_and_reload)
{
	struct harness_broker	 b;
	char			 dir[256], all[300], cli[300], adm[300];
	char			*err = NULL, *log;
	int			 status;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(all, sizeof(all), "%s/all", dir);
	snprintf(cli, sizeof(cli), "%s/client", dir);
	snprintf(adm, sizeof(adm), "%s/admin", dir);
	write_secret(all, "tok-old-7f3a\n\ntok-new-91c2\n");
	write_secret(cli, "tok-cli-5d0e\n");
	write_secret(adm, "tok-adm-c4b8\n");
	harness_broker_start(&b, (const char *[]){ "--token-file", all,
	    "--client-token-file", cli, "--admin-token-file", adm, NULL },
	    false);

	/* Clients: their own token; token_file's is not theirs. */
	ck_assert_int_eq(cli_with_token("tok-cli-5d0e", NULL, (const char *[]){
	    harness_cli(), "run", "--nowait", "--broker", b.tcp_ep, "rev", "x",
	    NULL }), 6);
	ck_assert_int_eq(cli_with_token("tok-old-7f3a", &err, (const char *[]){
	    harness_cli(), "run", "--broker", b.tcp_ep, "rev", "x", NULL }),
	    11);
	ck_assert_msg(strstr(err, "wrong token") != NULL, "%s", err);
	free(err);
	/* Workers: either line of token_file (a rotation). */
	for (int i = 0; i < 2; i++) {
		struct pb_worker	*w;
		struct pb_options	 o = { .token = i == 0 ? "tok-old-7f3a" :
					    "tok-new-91c2" };

		ck_assert_int_eq(pb_worker_new(b.tcp_ep, &o, &w), 0);
		ck_assert_int_eq(pb_worker_add_function(w, "rev",
		    (pb_job_fn)abort, NULL), 0);
		ck_assert_int_eq(pb_worker_connect(w), 0);
		pb_worker_free(w);
	}
	/* Admin over TCP: only with the admin token, from a file too. */
	ck_assert_int_eq(cli_with_token(NULL, &err, (const char *[]){
	    harness_cli(), "ctl", "--broker", b.tcp_ep, "status", NULL }), 11);
	ck_assert_msg(strstr(err, "or with an admin token") != NULL ||
	    strstr(err, "missing token") != NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli_with_token(NULL, NULL, (const char *[]){
	    harness_cli(), "ctl", "--token-file", adm, "--broker", b.tcp_ep,
	    "status", NULL }), 0);

	/* A new client token, read again by `ctl reload`. */
	write_secret(cli, "tok-cli2-e61f\n");
	ck_assert_int_eq(cli_with_token("tok-adm-c4b8", NULL, (const char *[]){
	    harness_cli(), "ctl", "--broker", b.unix_ep, "reload", NULL }), 0);
	ck_assert_int_eq(cli_with_token("tok-cli-5d0e", NULL, (const char *[]){
	    harness_cli(), "run", "--broker", b.tcp_ep, "rev", "x", NULL }),
	    11);
	ck_assert_int_eq(cli_with_token("tok-cli2-e61f", NULL, (const char *[]){
	    harness_cli(), "run", "--nowait", "--broker", b.tcp_ep, "rev", "x",
	    NULL }), 6);
	/* One others may read: the reload says so and keeps what it had. */
	ck_assert_int_eq(chmod(cli, 0644), 0);
	ck_assert_int_eq(cli_with_token("tok-adm-c4b8", &err, (const char *[]){
	    harness_cli(), "ctl", "--broker", b.unix_ep, "reload", NULL }), 1);
	ck_assert_msg(strstr(err, "is readable by other users (mode 0644)") !=
	    NULL, "%s", err);
	free(err);
	ck_assert_int_eq(cli_with_token("tok-cli2-e61f", NULL, (const char *[]){
	    harness_cli(), "run", "--nowait", "--broker", b.tcp_ep, "rev", "x",
	    NULL }), 6);
	harness_broker_stop(&b);

	log = harness_read_file(b.log_path);
	ck_assert_ptr_nonnull(strstr(log, "debug"));
	ck_assert(strstr(log, "tok-") == NULL);
	free(log);

	/* At start, such a file stops patchbayd, naming it. */
	status = harness_run((const char *[]){ harness_patchbayd(),
	    "--worker-token-file", cli, NULL }, NULL, NULL, 0, NULL, &err,
	    5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "is readable by other users") != NULL, "%s",
	    err);
	free(err);
}
END_TEST

/*
 * Plaintext TCP off loopback without a token is refused at start, unless
 * allow_insecure_tcp says so. 192.0.2.1 (TEST-NET-1) is no address of this
 * machine: with the flag, patchbayd gets as far as bind(2) and fails there.
 */
START_TEST(insecure_tcp_refused_unless_allowed)
{
	char	*err = NULL;
	int	 status;

	status = harness_run((const char *[]){ harness_patchbayd(), "-l",
	    "tcp:192.0.2.1:0", NULL }, NULL, NULL, 0, NULL, &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "listen tcp:192.0.2.1:0: plaintext TCP on an "
	    "address that is not loopback needs a token") != NULL, "%s", err);
	free(err);
	status = harness_run((const char *[]){ harness_patchbayd(), "-l",
	    "tcp:192.0.2.1:0", "--allow-insecure-tcp", "yes", NULL }, NULL,
	    NULL, 0, NULL, &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0);
	ck_assert_msg(strstr(err, "plaintext TCP") == NULL &&
	    strstr(err, "192.0.2.1") != NULL, "%s", err);
	free(err);
	status = harness_run((const char *[]){ harness_patchbayd(),
	    "--allow-insecure-tcp", "maybe", NULL }, NULL, NULL, 0, NULL, &err,
	    5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_msg(strstr(err, "allow-insecure-tcp") != NULL &&
	    strstr(err, "maybe") != NULL, "%s", err);
	free(err);
}
END_TEST

START_TEST(help_and_docs_list_the_same_settings)
{
	char	 path[512], *help = NULL, *doc, *from_help, *from_doc;
	int	 status;

	status = harness_run((const char *[]){ harness_patchbayd(), "--help",
	    NULL }, NULL, NULL, 0, &help, NULL, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(path, sizeof(path), "%s/docs/configuration.md",
	    getenv("PATCHBAY_SRCDIR"));
	ck_assert_ptr_nonnull(doc = harness_read_file(path));
	from_help = flag_list(help, NULL, NULL);
	from_doc = flag_list(doc, "| key (flag) |", "\n\n");
	/* -c, --version and --help are flags only, as the docs say. */
	ck_assert_str_eq(from_help, "--admin-gids,--admin-token-file,"
	    "--admin-uids,--allow-insecure-tcp,--client-gids,--client-token-file,--client-uids,"
	    "--config,--detached-ttl,--drain-timeout,--heartbeat,"
	    "--hello-timeout,"
	    "--help,--http,--http-timeout,--listen,--log-file,--log-level,"
	    "--max-connections,--max-connections-per-uid,--max-dead,"
	    "--max-frame,"
	    "--max-jobs-per-client,--max-memory,--max-output,--max-queue,"
	    "--max-queue-bytes,--max-result-bytes,--no-worker-wait,--ready-file,"
	    "--result-ttl,--socket-group,"
	    "--socket-mode,--store,--store-fsync,--tls-cert,--tls-client-ca,"
	    "--tls-client-roles,--tls-key,--token-file,--version,"
	    "--worker-gids,"
	    "--worker-may-run,--worker-token-file,--worker-uids,");
	ck_assert_str_eq(from_doc, "--admin-gids,--admin-token-file,"
	    "--admin-uids,--allow-insecure-tcp,--client-gids,--client-token-file,--client-uids,"
	    "--detached-ttl,--drain-timeout,--heartbeat,"
	    "--hello-timeout,--http,"
	    "--http-timeout,--listen,--log-file,"
	    "--log-level,--max-connections,--max-connections-per-uid,"
	    "--max-dead,--max-frame,--max-jobs-per-client,--max-memory,--max-output,"
	    "--max-queue,--max-queue-bytes,--max-result-bytes,--no-worker-wait,"
	    "--ready-file,--result-ttl,--socket-group,--socket-mode,"
	    "--store,--store-fsync,--tls-cert,--tls-client-ca,"
	    "--tls-client-roles,--tls-key,--token-file,--worker-gids,"
	    "--worker-may-run,--worker-token-file,--worker-uids,");
	/* And each flag's key is in the table as key = flag with '_'. */
	for (char *f = from_doc; *f != '\0'; f = strchr(f, ',') + 1) {
		char key[64], row[80];
		size_t k = strcspn(f + 2, ",");

		snprintf(key, sizeof(key), "%.*s", (int)k, f + 2);
		for (char *c = key; *c != '\0'; c++)
			if (*c == '-')
				*c = '_';
		snprintf(row, sizeof(row), "| `%s` (", key);
		ck_assert_msg(strstr(doc, row) != NULL, "no row '%s'", row);
	}
	free(from_help);
	free(from_doc);
	free(help);
	free(doc);
}
END_TEST

START_TEST(version_and_help)
{
	char	*out = NULL;
	int	 status;

	status = harness_run((const char *[]){ harness_patchbayd(),
	    "--version", NULL }, NULL, NULL, 0, &out, NULL, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_ptr_nonnull(strstr(out, "patchbayd 0."));
	free(out);
	status = harness_run((const char *[]){ harness_patchbayd(), "--help",
	    NULL }, NULL, NULL, 0, &out, NULL, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_ptr_nonnull(strstr(out, "--listen"));
	free(out);
}
END_TEST

/* The broker suite. */
static Suite *
broker_suite(void)
{
	Suite	*s = suite_create("broker");
	TCase	*tc;

	tc = tcase_create("handshake");
	tcase_add_test(tc, hello_gets_welcome_with_limits);
	tcase_add_test(tc, hello_must_come_first);
	tcase_add_test(tc, hello_wrong_version_refused);
	tcase_add_test(tc, hello_timeout_closes_silent_peer);
	tcase_add_test(tc, hello_token_required_when_configured);
	tcase_add_test(tc, token_copy_failure_stops_the_broker);
	suite_add_tcase(s, tc);

	tc = tcase_create("roles");
	tcase_add_test(tc, role_not_allowed_keeps_connection);
	tcase_add_test(tc, worker_may_run_lets_a_worker_submit_jobs);
	tcase_add_test(tc, cancel_unknown_id_not_found);
	tcase_add_test(tc, error_replies_count_against_max_output);
	tcase_add_test(tc, connection_limits_refuse_the_next_peer);
	tcase_add_test(tc, max_memory_refuses_runs_past_it);
	tcase_add_test(tc, accept_pauses_on_emfile_and_resumes);
	tcase_add_test(tc, job_round_trip_over_both_transports);
	tcase_add_test(tc, no_worker_wait_zero_answers_at_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_test(tc, malformed_frames_get_errors_others_still_served);
	suite_add_tcase(s, tc);

	tc = tcase_create("heartbeat");
	tcase_add_test(tc, heartbeat_pings_silent_peer_and_drops_dead_worker);
	suite_add_tcase(s, tc);

	tc = tcase_create("admin");
	tcase_add_test(tc, admin_status_and_unknown_verb);
	tcase_add_test(tc, admin_refused_over_tcp);
	tcase_add_test(tc, peer_strings_escaped_in_log);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, shutdown_answers_queued_and_removes_socket);
	tcase_add_test(tc, restart_replaces_stale_socket_refuses_live);
	tcase_add_test(tc, bad_flags_exit_2_naming_the_problem);
	tcase_add_test(tc, default_endpoint_from_environment);
	tcase_add_test(tc, version_and_help);
	tcase_add_test(tc, help_and_docs_list_the_same_settings);
	tcase_add_test(tc, unix_socket_access_by_mode_group_and_role_lists);
	tcase_add_test(tc, tokens_per_role_rotation_and_reload);
	tcase_add_test(tc, insecure_tcp_refused_unless_allowed);
	tcase_add_test(tc, detached_run_answered_once_and_waits_for_a_worker);
	tcase_add_test(tc, detached_ttl_drops_logged_and_counted);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(broker_suite());
}

/*
 * admin.c: one ADMIN request and its REPLY, for tools such as `patchbay
 * ctl`.
 *
 * admin_call() opens a connection with role admin (common.c does the
 * handshake, PINGs, ERROR and BYE), sends ADMIN {seq, verb, args}, waits
 * for the REPLY with that seq and hands back a copy of it that outlives
 * the connection. Every way the exchange can fail becomes a sentence that
 * names the broker. It is internal to the library (not exported): the
 * public API has no admin calls.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/lib/internal.h"
#include "util/util.h"

#define ADMIN_SEQ	1

/* What the packet handler fills in while the REPLY's data is alive. */
struct admin_wait {
	struct admin_reply	*reply;
	int			 status;	/* 1 once the REPLY arrived */
	int			 error;		/* copying it failed */
};

/* Copies a REPLY into r: the refusal, or its data re-unpacked. */
static int
admin_copy(struct admin_reply *r, const struct packet *p)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;
	int		error = 0;

	r->ok = p->ok;
	if (!p->ok) {
		if ((p->has & PF_ERROR) && p->error.len > 0 &&
		    (r->error = strndup((const char *)p->error.ptr,
		    p->error.len)) == NULL)
			return -ENOMEM;
		return 0;
	}
	if (p->data == NULL)
		return 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, proto_sbuffer_write);
	if (msgpack_pack_object(&pk, *p->data) != 0)
		error = -ENOMEM;
	else if (msgpack_unpack_next(&r->data, sb.data, sb.size, NULL) !=
	    MSGPACK_UNPACK_SUCCESS)
		error = -ENOMEM;
	else {
		/* The unpacked strings point into the buffer: keep it. */
		r->has_data = true;
		r->raw = msgpack_sbuffer_release(&sb);
	}
	msgpack_sbuffer_destroy(&sb);
	return error;
}

/* The connection's packet handler: copies our REPLY. */
static int
admin_packet(struct bconn *b, const struct packet *p, void *arg)
{
	struct admin_wait	*w = arg;

	(void)b;
	if (p->type != PKT_REPLY || p->seq != ADMIN_SEQ || w->status != 0)
		return 0;
	w->status = 1;
	w->error = admin_copy(w->reply, p);
	return 0;
}

/*
 * Connects b as an admin to the first broker of endpoint (a list; NULL:
 * the default) that takes it, and writes which one into ret_ep. 0 or errno.
 */
static int
admin_open(struct bconn *b, const char *endpoint,
    const struct pb_options *opts, char *ret_ep, size_t len)
{
	char	**eps;
	size_t	  at;
	int	  r;

	if ((r = common_endpoints(endpoint, &eps)) != 0)
		return r;
	if ((r = common_open_any(b, eps, 0, ROLE_ADMIN, opts, &at)) == 0)
		snprintf(ret_ep, len, "%s", eps[at]);
	strv_free(eps);
	return r;
}

/* Sends one ADMIN and waits for its REPLY; see internal.h. */
int
admin_call(const char *endpoint, const struct pb_options *opts,
    const char *verb, const void *args, size_t args_len, uint64_t timeout_ms,
    struct admin_reply *ret, char *err)
{
	struct admin_wait	 w = { .reply = ret };
	const char		*ep;
	char			 ret_ep[PATH_MAX + 64];
	struct bconn		 b;
	struct packet		 p;
	uint64_t		 deadline;
	int			 r;

	memset(ret, 0, sizeof(*ret));
	msgpack_unpacked_init(&ret->data);
	common_init(&b);
	r = admin_open(&b, endpoint, opts, ret_ep, sizeof(ret_ep));
	if (r != 0) {
		snprintf(err, PROTO_ERRLEN, "%s", common_connect_error());
		common_clear(&b);
		return r;
	}
	ep = ret_ep;
	packet_init(&p, PKT_ADMIN);
	p.seq = ADMIN_SEQ;
	p.verb.ptr = (const uint8_t *)verb;
	p.verb.len = (uint32_t)strlen(verb);
	p.args_raw.ptr = args;
	p.args_raw.len = (uint32_t)args_len;
	p.has |= PF_ARGS;
	r = common_send(&b, &p);

	deadline = clock_now_ms() + timeout_ms;
	while (r >= 0 || r == -EINTR) {
		if ((r = common_process(&b, admin_packet, &w)) < 0 ||
		    w.status != 0 || b.err_code >= 0 || b.got_bye || b.dead)
			break;
		if (clock_now_ms() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		r = common_wait(&b, common_ms_left(deadline));
	}
	if (w.status != 0 && w.error == 0)
		r = 0;
	else if (w.status != 0) {
		r = w.error;
		snprintf(err, PROTO_ERRLEN, "out of memory copying the reply");
	} else if (b.err_code >= 0) {
		r = -EPERM;
		snprintf(err, PROTO_ERRLEN, "%s refused: %s", ep, b.err);
	} else if (b.got_bye) {
		r = -ESHUTDOWN;
		snprintf(err, PROTO_ERRLEN, "%s is going away: %s", ep, b.bye);
	} else if (r == -ETIMEDOUT)
		snprintf(err, PROTO_ERRLEN, "no answer from %s", ep);
	else {
		r = r < 0 ? r : -ECONNRESET;
		snprintf(err, PROTO_ERRLEN, "%s: %s", ep, b.why[0] != '\0' ?
		    b.why : strerror(-r));
	}
	common_clear(&b);
	if (r != 0)
		admin_reply_clear(ret);
	return r;
}

/* Frees what a reply holds. */
void
admin_reply_clear(struct admin_reply *r)
{
	free(r->error);
	r->error = NULL;
	free(r->raw);
	r->raw = NULL;
	msgpack_unpacked_destroy(&r->data);
	msgpack_unpacked_init(&r->data);
	r->has_data = false;
}

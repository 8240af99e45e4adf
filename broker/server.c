/*
 * server.c: peers, roles and the wiring between transport and switchboard.
 *
 * Every accepted descriptor becomes a struct conn (transport) and a struct
 * peer (here). The first frame must be HELLO; until it is accepted the
 * frame limit is 4 KiB and a deadline runs. After WELCOME, each role may
 * send its own packets only: clients RUN and CANCEL, workers REGISTER,
 * RESULT and PROGRESS (and RUN and CANCEL with worker_may_run, through a
 * client side of the switchboard made at their first RUN), admins ADMIN;
 * anyone PING and PONG. Job packets go to the switchboard, whose answers
 * come back through server_sb_send() and are encoded onto the right peer's
 * connection.
 *
 * One timer follows the switchboard's next deadline; another sweeps the
 * peers for heartbeats (PING after heartbeat_ms of silence, drop after three
 * times that) and for HELLO deadlines.
 *
 * server_set_supervisor() is where the supervisor and the server meet: the
 * supervisor's children's sockets become worker peers through the
 * supervisor_ops at the end of this file, and those peers report their
 * REGISTER and their end to the supervisor. server_stop() is the one stop
 * path: the supervisor's processes and the peers go together, then the
 * event loop ends.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <uuid/uuid.h>

#include "broker/broker.h"
#include "config.h"

static void	server_peer_packet(struct conn *, const struct packet *,
		    void *);
static void	server_peer_closed(struct conn *, const char *, void *);
static void	server_stop_cb(evutil_socket_t, short, void *);

static const struct conn_ops server_conn_ops = {
	.packet = server_peer_packet,
	.closed = server_peer_closed,
};

/* The peer's role for log lines; "none" before HELLO. */
static const char *
server_role(const struct peer *p)
{
	return p->role == ROLE_NONE ? "none" : proto_role_name(p->role);
}

/*
 * A peer as the key=value fields that open its log lines: "conn=12
 * role=client name=\"x\" transport=unix pid=4242 uid=1000", "conn=13
 * role=worker addr=10.0.0.7:53122", "conn=14 role=worker proc=rev/1" for
 * a spawned process. The name is escaped (format_escape) and quoted.
 */
static const char *
server_peer_desc(const struct peer *p)
{
	static char		 buf[256];
	const struct conn_peer	*cp = conn_peer(p->conn);
	int			 n;

	if (p->local) {
		snprintf(buf, sizeof(buf), "conn=%llu role=%s proc=%s",
		    (unsigned long long)p->id, server_role(p), p->name);
		return buf;
	}
	n = snprintf(buf, sizeof(buf), "conn=%llu role=%s",
	    (unsigned long long)p->id, server_role(p));
	if (p->name[0] != '\0')
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, " name=\"%s\"",
		    p->name);
	if (cp->is_unix && cp->has_cred)
		snprintf(buf + n, sizeof(buf) - (size_t)n, " transport=unix "
		    "pid=%d uid=%u", (int)cp->pid, (unsigned)cp->uid);
	else if (cp->is_unix)
		snprintf(buf + n, sizeof(buf) - (size_t)n, " transport=unix");
	else
		snprintf(buf + n, sizeof(buf) - (size_t)n, " transport=%s "
		    "addr=%s", cp->is_tls ? "tls" : "tcp", cp->addr);
	return buf;
}

/*
 * A job's end, from the switchboard: failures are logged at info (ERROR,
 * TIMEOUT, WORKER_LOST, NO_WORKER, and any end of a detached job other
 * than OK, since nobody else hears of it), refusals and cancels at debug;
 * OK is not logged.
 */
static void
server_sb_job_end(const struct sb_job_end *o, void *arg)
{
	const struct peer	*client = o->client, *worker = o->worker;
	enum log_level		 level;
	char			 id[37], fn[4 * PROTO_MAX_FN_LEN + 1];
	char			 err[512], who[96];
	int			 n = 0;

	(void)arg;
	switch (o->status) {
	case JOB_OK:
		return;
	case JOB_ERROR:
	case JOB_TIMEOUT:
	case JOB_WORKER_LOST:
	case JOB_NO_WORKER:
		level = LOG_LEVEL_INFO;
		break;
	default:
		level = o->detached ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
		break;
	}
	if (level > log_get_level())
		return;
	uuid_unparse_lower(o->id, id);
	format_escape(o->fn, o->fn_len, fn, sizeof(fn));
	who[0] = '\0';
	if (client != NULL)
		n = snprintf(who, sizeof(who), " conn=%llu",
		    (unsigned long long)client->id);
	if (worker != NULL)
		snprintf(who + n, sizeof(who) - (size_t)n, " worker=%llu%s%s",
		    (unsigned long long)worker->id, worker->local ?
		    " proc=" : "", worker->local ? worker->name : "");
	err[0] = '\0';
	if (o->error != NULL) {
		err[0] = ':';
		err[1] = ' ';
		format_escape((const char *)o->error, o->error_len, err + 2,
		    sizeof(err) - 2);
	}
	if (level == LOG_LEVEL_INFO)
		log_info("job id=%s fn=\"%s\"%s%s attempts=%u: %s%s%s", id, fn,
		    o->detached ? " detached=yes" : "", who, o->attempts,
		    !o->detached ? "" : o->status == JOB_ERROR ?
		    "detached job failed: " : "detached job dropped: ",
		    job_status_name(o->status), err);
	else
		log_debug("job id=%s fn=\"%s\"%s attempts=%u: %s%s", id, fn,
		    who, o->attempts, job_status_name(o->status), err);
}

/*
 * Logs one frame at debug: its direction, type and, for job packets, the
 * job's id, function, attempt and status.
 */
static void
server_log_frame(const struct peer *p, const char *dir,
    const struct packet *pkt)
{
	char	id[37], fn[4 * PROTO_MAX_FN_LEN + 1], more[64];

	switch (pkt->type) {
	case PKT_RUN:
	case PKT_RESULT:
	case PKT_CANCEL:
	case PKT_PROGRESS:
		uuid_unparse_lower(pkt->id, id);
		fn[0] = more[0] = '\0';
		if (pkt->type == PKT_RUN)
			format_escape(pkt->fn.ptr, pkt->fn.len, fn, sizeof(fn));
		if (pkt->type == PKT_RESULT)
			snprintf(more, sizeof(more), " status=%s",
			    job_status_name(pkt->status));
		log_debug("%s: %s %s id=%s%s%s%s%s", server_peer_desc(p), dir,
		    packet_type_name(pkt->type), id, fn[0] != '\0' ?
		    " fn=\"" : "", fn, fn[0] != '\0' ? "\"" : "", more);
		break;
	default:
		log_debug("%s: %s %s", server_peer_desc(p), dir,
		    packet_type_name(pkt->type));
		break;
	}
}

/* The switchboard's output: encode p onto the peer it names. */
static void
server_sb_send(void *ctx, const struct packet *pkt, void *arg)
{
	struct peer	*p = ctx;
	int		 r;

	(void)arg;
	/* With a store, a job is ACCEPTED once its turn is committed. */
	if (pkt->type == PKT_ACCEPTED && jobstore_hold_ack(p->srv, p, pkt))
		return;
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		server_log_frame(p, "sent", pkt);
	/* -ENOBUFS: dropped as a slow consumer, logged when it closes. */
	r = conn_send(p->conn, pkt);
	if (r != 0 && r != -EPIPE && r != -ENOBUFS)
		log_warnx("%s: cannot send %s: %s", server_peer_desc(p),
		    packet_type_name(pkt->type), strerror(-r));
}

/* Re-arms the switchboard timer for its next deadline when that moved. */
static void
server_rearm(struct server *srv)
{
	uint64_t	at = switchboard_next_deadline(srv->sb), now;
	struct timeval	tv;

	if (at == srv->sb_timer_at)
		return;
	srv->sb_timer_at = at;
	if (at == UINT64_MAX) {
		evtimer_del(srv->sb_timer);
		return;
	}
	now = clock_now_ms();
	clock_timer_tv(at > now ? at - now : 0, &tv);
	evtimer_add(srv->sb_timer, &tv);
}

/* The switchboard's deadline came: let it expire what is due. */
static void
server_sb_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;

	(void)fd; (void)what;
	srv->sb_timer_at = UINT64_MAX;
	switchboard_tick(srv->sb, clock_now_ms());
	server_rearm(srv);
}

/* Sends a PING with a fresh number. */
static void
server_ping(struct peer *p, uint64_t now)
{
	struct packet	pkt;

	packet_init(&pkt, PKT_PING);
	pkt.n = ++p->ping_n;
	p->ping_sent = now;
	conn_send(p->conn, &pkt);
}

/*
 * After a burst has drained, gives its memory back: the switchboard's job
 * records, then whatever malloc holds free (malloc_trim), so that the
 * broker's RSS returns near where it was. Runs from the sweep, and only
 * when the jobs alive, or the connections, fell well below their peak
 * since the last time. The peaks are high-water marks kept as jobs and
 * peers come, so a burst that comes and goes between two sweeps counts.
 * When jobs were still alive at a give-back (the tail of a burst), it
 * runs once more when none is left, for the records they held.
 */
static void
server_give_back(struct server *srv)
{
	struct sb_stats	st;
	uint64_t	live;

	switchboard_stats(srv->sb, &st);
	live = (uint64_t)st.queued + st.running;
	/* Jobs or connections by the thousand came and mostly went. */
	if ((st.jobs_peak < SERVER_TRIM_JOBS || live > st.jobs_peak / 4) &&
	    (srv->peers_peak < SERVER_TRIM_PEERS ||
	    srv->npeers > srv->peers_peak / 4) &&
	    !(srv->trim_tail && live == 0))
		return;
	switchboard_trim(srv->sb);
	malloc_trim(0);
	srv->peers_peak = srv->npeers;
	srv->trim_tail = live > 0;
}

/* Sweeps peers: HELLO deadlines, PINGs to the silent, drops the dead. */
static void
server_hb_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;
	struct peer	*p;
	uint64_t	 now = clock_now_ms(), hb = srv->cfg.heartbeat_ms;
	uint64_t	 silent;

	(void)fd; (void)what;
	server_give_back(srv);
	jobstore_sweep(srv);
	switchboard_expire_detached(srv->sb, now);
	TAILQ_FOREACH(p, &srv->peers, entry) {
		if (conn_closing(p->conn))
			continue;
		/* A connection with nothing pending holds no buffer. */
		conn_trim(p->conn);
		if (p->paused)
			continue;	/* stopped: cannot answer PINGs */
		if (p->role == ROLE_NONE) {
			if (now - p->connected_at >= srv->cfg.hello_timeout_ms) {
				log_info("%s: no HELLO within %llu ms, closing",
				    server_peer_desc(p),
				    (unsigned long long)srv->cfg.hello_timeout_ms);
				conn_send_error(p->conn, PERR_HELLO_TIMEOUT,
				    NULL, "no HELLO within %llu ms",
				    (unsigned long long)
				    srv->cfg.hello_timeout_ms);
				conn_close(p->conn, "hello timeout");
			}
			continue;
		}
		silent = now - conn_last_read(p->conn);
		if (silent >= 3 * hb) {
			log_warnx("%s: silent for %llu ms, dropping",
			    server_peer_desc(p), (unsigned long long)silent);
			conn_close(p->conn, "heartbeat timeout");
			/*
			 * Its process is restarted, and ps says why; closing
			 * first, its jobs are not waited for.
			 */
			if (p->proc != NULL)
				supervisor_proc_unresponsive(srv->sv, p->proc,
				    silent);
		} else if (silent >= hb &&
		    (p->ping_sent == 0 || now - p->ping_sent >= hb))
			server_ping(p, now);
	}
}

/* Creates a peer around a new conn, over TLS when tls is true. */
static struct peer *
server_peer_new(struct server *srv, int fd, bool tls)
{
	struct peer	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		close(fd);
		return NULL;
	}
	p->srv = srv;
	p->id = ++srv->next_id;
	p->connected_at = clock_now_ms();
	p->conn = tls ? conn_new_tls(srv->base, fd, p->id, &server_conn_ops,
	    p, srv->cfg.out_cap, srv->cfg.tls_ctx) : conn_new(srv->base, fd,
	    p->id, &server_conn_ops, p, srv->cfg.out_cap);
	if (p->conn == NULL) {
		free(p);
		return NULL;
	}
	conn_set_data(p->conn, p);
	TAILQ_INSERT_TAIL(&srv->peers, p, entry);
	if (++srv->npeers > srv->peers_peak)
		srv->peers_peak = srv->npeers;
	srv->conns_total++;
	return p;
}

/* The count of connections of uid, created at 0 when missing; NULL: ENOMEM. */
static struct uid_count *
server_uid_count(struct server *srv, uid_t uid)
{
	struct uid_count	*u;

	HASH_FIND(hh, srv->uids, &uid, sizeof(uid), u);
	if (u != NULL)
		return u;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	u->uid = uid;
	HASH_ADD(hh, srv->uids, uid, sizeof(u->uid), u);
	if (u->hh.tbl == NULL) {
		free(u);
		return NULL;
	}
	return u;
}

/*
 * Refuses a new peer beyond max_connections, or beyond
 * max_connections_per_uid for its uid (Unix peers): it gets ERROR
 * TOO_MANY_CONNECTIONS naming the limit and is closed. Returns true when
 * refused. A counted Unix peer's uid is remembered for its close.
 */
static bool
server_over_limit(struct server *srv, struct peer *p)
{
	const struct conn_peer	*cp = conn_peer(p->conn);
	struct uid_count	*u = NULL;

	if (srv->cfg.max_connections != 0 &&
	    srv->npeers > srv->cfg.max_connections) {
		conn_send_error(p->conn, PERR_TOO_MANY_CONNECTIONS, NULL,
		    "the broker already has %u connections "
		    "(max_connections)", srv->cfg.max_connections);
		conn_close(p->conn, "too many connections");
		return true;
	}
	if (!cp->is_unix || !cp->has_cred ||
	    srv->cfg.max_connections_per_uid == 0)
		return false;
	if ((u = server_uid_count(srv, cp->uid)) == NULL ||
	    u->n >= srv->cfg.max_connections_per_uid) {
		conn_send_error(p->conn, PERR_TOO_MANY_CONNECTIONS, NULL,
		    "uid %u already has %u connections "
		    "(max_connections_per_uid)", (unsigned)cp->uid,
		    srv->cfg.max_connections_per_uid);
		conn_close(p->conn, "too many connections for its uid");
		return true;
	}
	u->n++;
	p->uid_counted = true;
	return false;
}

/* A new connection on a listener (or fd < 0: accept is out of fds). */
static void
server_accept_cb(struct listener *l, int fd, const struct endpoint *ep,
    void *arg)
{
	struct server	*srv = arg;
	struct peer	*p;

	(void)l;
	if (fd < 0) {
		log_warnx("listener %s: accept: %s; pausing for 1 s", ep->text,
		    strerror(-fd));
		return;
	}
	if (srv->stopping) {
		close(fd);
		return;
	}
	if ((p = server_peer_new(srv, fd, ep->kind == ENDPOINT_TLS)) == NULL) {
		log_warnx("listener %s: out of memory for a new connection",
		    ep->text);
		return;
	}
	if (server_over_limit(srv, p))
		return;
	log_info("%s: connected via %s", server_peer_desc(p), ep->text);
}

/*
 * Compares a HELLO token with ours in a time that does not depend on where
 * they first differ.
 */
static bool
server_token_equal(const char *want, const struct pbytes *got)
{
	size_t		len = strlen(want);
	unsigned char	diff = got->len != len;

	for (size_t i = 0; i < len; i++)
		diff |= (unsigned char)want[i] ^
		    (i < got->len ? got->ptr[i] : 0);
	return diff == 0;
}

/*
 * True when got is one of tokens: each compared in constant time, all of
 * them whatever the answer, so that timing tells nothing.
 */
static bool
server_token_any(char *const *tokens, const struct pbytes *got)
{
	bool	ok = false;

	for (size_t i = 0; tokens[i] != NULL; i++)
		ok |= server_token_equal(tokens[i], got);
	return ok;
}

/* Refuses a secret file other users may read; see broker.h. */
int
server_secret_private(const char *what, const char *path, mode_t mode,
    char *err)
{
	if ((mode & S_IROTH) == 0)
		return 0;
	snprintf(err, UTIL_ERRLEN, "%s %s is readable by other users "
	    "(mode %04o): chmod o-r it", what, path, (unsigned)(mode & 07777));
	return -1;
}

/* Reads a token file; see broker.h. */
int
server_tokens_read(const char *path, char ***ret, char *err)
{
	char		 buf[4096], **v = NULL;
	struct stat	 st;
	size_t		 n = 0, len;
	ssize_t		 got;
	int		 fd;
	char		*line, *save = NULL;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, UTIL_ERRLEN, "token file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(err, UTIL_ERRLEN, "token file %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	if (server_secret_private("token file", path, st.st_mode, err) != 0) {
		close(fd);
		return -1;
	}
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got < 0 || got == (ssize_t)sizeof(buf) - 1) {
		snprintf(err, UTIL_ERRLEN, "token file %s: %s", path, got < 0 ?
		    strerror(errno) : "larger than 4 KiB");
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	buf[got] = '\0';
	for (line = strtok_r(buf, "\r\n", &save); line != NULL;
	    line = strtok_r(NULL, "\r\n", &save)) {
		if ((len = strlen(line)) == 0)
			continue;
		if (len > 255 || n == 16 || strv_push(&v, &n, line) != 0) {
			snprintf(err, UTIL_ERRLEN, "token file %s: %s", path,
			    len > 255 ? "a token longer than 255 bytes" :
			    n == 16 ? "more than 16 tokens" : "out of memory");
			server_tokens_free(v);
			explicit_bzero(buf, sizeof(buf));
			return -1;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (n == 0) {
		snprintf(err, UTIL_ERRLEN, "token file %s holds no token", path);
		return -1;
	}
	*ret = v;
	return 0;
}

/* Wipes and frees a token vector; see broker.h. */
void
server_tokens_free(char **tokens)
{
	for (size_t i = 0; tokens != NULL && tokens[i] != NULL; i++)
		explicit_bzero(tokens[i], strlen(tokens[i]));
	strv_free(tokens);
}

/* True when a token file or a TLS certificate is in use; see broker.h. */
bool
server_has_credential_files(const struct server *srv)
{
	for (int r = ROLE_CLIENT; r <= ROLE_ADMIN; r++)
		if (srv->cfg.role_token_path[r] != NULL)
			return true;
	return srv->cfg.token_path != NULL || srv->cfg.tls_ctx != NULL;
}

/* Reads every token file again, all or nothing; see broker.h. */
int
server_credentials_reload(struct server *srv, char *err)
{
	char		**all = NULL, **roles[ROLE_ADMIN + 1] = { NULL };
	struct ssl_ctx_st *ctx = NULL;
	int		  r;

	if (srv->cfg.token_path != NULL &&
	    server_tokens_read(srv->cfg.token_path, &all, err) != 0)
		return -1;
	for (r = ROLE_CLIENT; r <= ROLE_ADMIN; r++) {
		if (srv->cfg.role_token_path[r] != NULL &&
		    server_tokens_read(srv->cfg.role_token_path[r],
		    &roles[r], err) != 0) {
			server_tokens_free(all);
			while (--r >= ROLE_CLIENT)
				server_tokens_free(roles[r]);
			return -1;
		}
	}
	/* Connections already up keep the session they have. */
	if (srv->cfg.tls_ctx != NULL && tls_ctx_new(srv->cfg.tls_cert,
	    srv->cfg.tls_key, srv->cfg.tls_client_ca, &ctx, err) != 0) {
		server_tokens_free(all);
		for (r = ROLE_CLIENT; r <= ROLE_ADMIN; r++)
			server_tokens_free(roles[r]);
		return -1;
	}
	server_tokens_free(srv->cfg.tokens);
	srv->cfg.tokens = all;
	for (r = ROLE_CLIENT; r <= ROLE_ADMIN; r++) {
		server_tokens_free(srv->cfg.role_tokens[r]);
		srv->cfg.role_tokens[r] = roles[r];
	}
	if (all != NULL || roles[ROLE_CLIENT] != NULL ||
	    roles[ROLE_WORKER] != NULL || roles[ROLE_ADMIN] != NULL)
		log_info("tokens read again");
	if (ctx != NULL) {
		tls_ctx_free(srv->cfg.tls_ctx);
		srv->cfg.tls_ctx = ctx;
		log_info("TLS certificate %s read again", srv->cfg.tls_cert);
	}
	return 0;
}

/*
 * True when a unix peer with credentials cp may take role: root,
 * patchbayd's own user, or one in the role's lists (its uid, its primary
 * group, or one of its supplementary groups).
 */
static bool
server_role_allowed(const struct server *srv, const struct conn_peer *cp,
    enum proto_role role)
{
	const struct id_list	*gids;

	if (!cp->has_cred || role < ROLE_CLIENT || role > ROLE_ADMIN)
		return false;
	if (cp->uid == 0 || cp->uid == geteuid() ||
	    id_list_has(&srv->cfg.role_uids[role], cp->uid))
		return true;
	gids = &srv->cfg.role_gids[role];
	if (id_list_has(gids, cp->gid))
		return true;
	for (int i = 0; i < cp->ngroups; i++)
		if (id_list_has(gids, cp->groups[i]))
			return true;
	return false;
}

/*
 * Over TLS with tls_client_roles: the peer's verified certificate must map
 * to role (else AUTH_FAILED, closed, and false). Sets *roles to what the
 * certificate maps to (0 without a certificate or a map).
 */
static bool
server_tls_role_ok(struct peer *p, enum proto_role role, unsigned *roles)
{
	const struct server_config	*cfg = &p->srv->cfg;
	char				 who[320];

	*roles = 0;
	if (cfg->ntls_roles == 0)
		return true;
	*roles = tls_peer_roles(conn_tls(p->conn), cfg->tls_roles,
	    cfg->ntls_roles, who, sizeof(who));
	if (role >= ROLE_CLIENT && role <= ROLE_ADMIN &&
	    (*roles & (1u << role)))
		return true;
	log_warnx("%s: refused the %s role: its %s is not given it by "
	    "tls_client_roles", server_peer_desc(p), proto_role_name(role),
	    who);
	conn_send_error(p->conn, PERR_AUTH_FAILED, NULL, "the %s may not "
	    "take the %s role here (tls_client_roles)", who,
	    proto_role_name(role));
	conn_close(p->conn, "role refused");
	return false;
}

/* Answers HELLO: version, role, token, admin trust; then WELCOME. */
static void
server_hello(struct peer *p, const struct packet *pkt)
{
	struct server		*srv = p->srv;
	const struct conn_peer	*cp = conn_peer(p->conn);
	struct packet		 w;
	uuid_t			 session;
	const char		*server_name = "patchbayd " PATCHBAY_VERSION;
	char *const		*want;
	unsigned		 cert_roles = 0;

	if (pkt->version != PROTO_VERSION) {
		conn_send_error(p->conn, PERR_UNSUPPORTED_VERSION, NULL,
		    "protocol version %llu is not supported (this broker "
		    "speaks 1)", (unsigned long long)pkt->version);
		conn_close(p->conn, "unsupported version");
		return;
	}
	want = pkt->role >= ROLE_CLIENT && pkt->role <= ROLE_ADMIN &&
	    srv->cfg.role_tokens[pkt->role] != NULL ?
	    srv->cfg.role_tokens[pkt->role] : srv->cfg.tokens;
	if (want != NULL && !p->local &&
	    (!(pkt->has & PF_TOKEN) || !server_token_any(want, &pkt->token))) {
		conn_send_error(p->conn, PERR_AUTH_FAILED, NULL,
		    "HELLO: %s token", (pkt->has & PF_TOKEN) ? "wrong" :
		    "missing");
		conn_close(p->conn, "authentication failed");
		return;
	}
	if (cp->is_tls && !server_tls_role_ok(p, pkt->role, &cert_roles))
		return;
	/*
	 * Over TCP or TLS an admin is who holds an admin token (checked
	 * above) or a client certificate mapped to the admin role.
	 */
	if (pkt->role == ROLE_ADMIN && (cp->is_unix ? !cp->has_cred :
	    srv->cfg.role_tokens[ROLE_ADMIN] == NULL &&
	    !(cert_roles & (1u << ROLE_ADMIN)))) {
		conn_send_error(p->conn, PERR_AUTH_FAILED, NULL,
		    "the admin role is allowed only over a unix socket, with "
		    "an admin token (admin_token_file), or with a client "
		    "certificate mapped to admin (tls_client_roles)");
		conn_close(p->conn, "admin refused");
		return;
	}
	if (cp->is_unix && !p->local && !server_role_allowed(srv, cp,
	    pkt->role)) {
		log_warnx("%s: refused the %s role: uid %u gid %u pid %d is not "
		    "in %s_uids or %s_gids", server_peer_desc(p),
		    proto_role_name(pkt->role), (unsigned)cp->uid,
		    (unsigned)cp->gid, (int)cp->pid,
		    proto_role_name(pkt->role), proto_role_name(pkt->role));
		conn_send_error(p->conn, PERR_AUTH_FAILED, NULL,
		    "uid %u (gid %u) may not connect as a %s here (%s_uids, "
		    "%s_gids)", (unsigned)cp->uid, (unsigned)cp->gid,
		    proto_role_name(pkt->role), proto_role_name(pkt->role),
		    proto_role_name(pkt->role));
		conn_close(p->conn, "role refused");
		return;
	}
	if (p->local && pkt->role != ROLE_WORKER) {
		conn_send_error(p->conn, PERR_NOT_ALLOWED, NULL,
		    "a spawned process's connection is for a worker");
		conn_close(p->conn, "local role");
		return;
	}
	/* Kept escaped: it goes into log lines and ctl tables as it is. */
	if ((pkt->has & PF_NAME) && !p->local)
		format_escape(pkt->name.ptr, pkt->name.len, p->name,
		    sizeof(p->name));
	p->role = pkt->role;
	if (p->role == ROLE_CLIENT)
		p->client = switchboard_client_add(srv->sb, p);
	else if (p->role == ROLE_WORKER)
		p->worker = switchboard_worker_add(srv->sb, p);
	if ((p->role == ROLE_CLIENT && p->client == NULL) ||
	    (p->role == ROLE_WORKER && p->worker == NULL)) {
		conn_close(p->conn, "out of memory");
		return;
	}
	conn_set_max_frame(p->conn, srv->cfg.max_frame);

	packet_init(&w, PKT_WELCOME);
	w.version = PROTO_VERSION;
	uuid_generate(session);
	memcpy(w.session, session, sizeof(w.session));
	w.heartbeat_ms = srv->cfg.heartbeat_ms;
	w.max_frame = srv->cfg.max_frame;
	w.server.ptr = (const uint8_t *)server_name;
	w.server.len = (uint32_t)strlen(server_name);
	conn_send(p->conn, &w);
	log_info("%s: hello", server_peer_desc(p));
}

/*
 * Logs a worker's REGISTER at info: its functions (escaped, comma
 * separated) and capacity.
 */
static void
server_log_register(const struct peer *p, const struct packet *pkt)
{
	char	fns[1024], one[4 * PROTO_MAX_FN_LEN + 1];
	size_t	len = 0;

	fns[0] = '\0';
	for (uint32_t i = 0; i < pkt->nfns && len < sizeof(fns) - 1; i++) {
		format_escape((const char *)pkt->fns[i].ptr, pkt->fns[i].len,
		    one, sizeof(one));
		len += (size_t)snprintf(fns + len, sizeof(fns) - len, "%s%s",
		    i > 0 ? "," : "", one);
	}
	if (len >= sizeof(fns))
		memcpy(fns + sizeof(fns) - 4, "...", 4);
	log_info("%s: registered fn=\"%s\" capacity=%u", server_peer_desc(p),
	    fns, pkt->capacity);
}

/* Refuses a packet the peer's role may not send; the conn stays open. */
static void
server_not_allowed(struct peer *p, const struct packet *pkt)
{
	if (p->role == ROLE_NONE) {
		conn_send_error(p->conn, PERR_BAD_PACKET, NULL,
		    "the first packet must be HELLO (got %s)",
		    packet_type_name(pkt->type));
		conn_close(p->conn, "no hello");
		return;
	}
	conn_send_error(p->conn, PERR_NOT_ALLOWED, NULL,
	    "%s %s may not send %s", p->role == ROLE_ADMIN ? "an" : "a",
	    proto_role_name(p->role), packet_type_name(pkt->type));
}

/*
 * Whether p may send RUN and CANCEL: a client may; a worker may when
 * worker_may_run says so (a pipeline stage submitting the next stage's job
 * on its own connection). A worker's client side, through which its jobs'
 * RESULTs and ERRORs come back, is made when create is set (at its first
 * RUN); it goes when the connection does, as a client's.
 * Returns 0, -EPERM (not allowed), or -ENOMEM with the connection closed.
 */
static int
server_peer_may_run(struct peer *p, bool create)
{
	struct server	*srv = p->srv;

	if (p->role == ROLE_CLIENT)
		return 0;
	if (p->role != ROLE_WORKER || !srv->cfg.worker_may_run)
		return -EPERM;
	if (create && p->client == NULL &&
	    (p->client = switchboard_client_add(srv->sb, p)) == NULL) {
		log_warnx("%s: out of memory for its first RUN, closing",
		    server_peer_desc(p));
		conn_close(p->conn, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* STATUS: answers JOB with where the job is and, when done, its outcome. */
static void
server_job_status(struct peer *p, const uint8_t *id, uint64_t now)
{
	static const char *const states[] = {
		[SB_STATE_UNKNOWN] = "unknown", [SB_STATE_QUEUED] = "queued",
		[SB_STATE_DELAYED] = "delayed", [SB_STATE_RUNNING] = "running",
		[SB_STATE_DONE] = "done", [SB_STATE_DEAD] = "dead",
	};
	struct sb_job_status	 st;
	struct packet		 j;

	switchboard_job_status(p->srv->sb, id, now, &st);
	packet_init(&j, PKT_JOB);
	memcpy(j.id, id, PROTO_ID_LEN);
	j.state.ptr = (const uint8_t *)states[st.state];
	j.state.len = (uint32_t)strlen(states[st.state]);
	if (st.state != SB_STATE_UNKNOWN) {
		j.has |= PF_FN | PF_ATTEMPTS | PF_PRIORITY | PF_AGE;
		j.fn.ptr = (const uint8_t *)st.fn;
		j.fn.len = (uint32_t)strlen(st.fn);
		j.attempts = st.attempts;
		j.priority = st.priority;
		j.age_ms = st.age_ms;
	}
	if (st.state == SB_STATE_DONE) {
		j.has |= PF_STATUS | PF_PAYLOAD;
		j.status = st.status;
		j.payload.ptr = st.payload;
		j.payload.len = (uint32_t)st.payload_len;
	}
	/* A done job's, or a retried or dead one's last error. */
	if (st.error != NULL) {
		j.has |= PF_ERROR;
		j.error.ptr = (const uint8_t *)st.error;
		j.error.len = (uint32_t)strlen(st.error);
	}
	conn_send(p->conn, &j);
}

/* One decoded packet from a peer. */
static void
server_peer_packet(struct conn *c, const struct packet *pkt, void *arg)
{
	struct peer	*p = arg;
	struct server	*srv = p->srv;
	struct packet	 pong;
	/* The read that brought this frame just set it: no clock call. */
	uint64_t	 now = conn_last_read(c);
	int		 r;

	p->ping_sent = 0;
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		server_log_frame(p, "got", pkt);
	switch (pkt->type) {
	case PKT_HELLO:
		if (p->role != ROLE_NONE) {
			server_not_allowed(p, pkt);
			return;
		}
		server_hello(p, pkt);
		return;
	case PKT_PING:
		if (p->role == ROLE_NONE)
			break;
		packet_init(&pong, PKT_PONG);
		pong.n = pkt->n;
		conn_send(p->conn, &pong);
		return;
	case PKT_PONG:
		if (p->role == ROLE_NONE)
			break;
		return;
	case PKT_RUN:
		if ((r = server_peer_may_run(p, true)) == -EPERM)
			break;
		if (r != 0)
			return;
		/* max_memory counts the output waiting too. */
		switchboard_set_external_bytes(srv->sb, conn_output_total());
		switchboard_run(srv->sb, p->client, pkt, now);
		server_rearm(srv);
		return;
	case PKT_CANCEL:
		if (server_peer_may_run(p, false) != 0)
			break;
		/* A worker that never sent RUN has no job to cancel. */
		if (p->client == NULL ||
		    switchboard_cancel(srv->sb, p->client, pkt->id, now) != 0)
			conn_send_error(p->conn, PERR_NOT_FOUND, pkt->id,
			    "CANCEL: no live job of this connection has that "
			    "id");
		server_rearm(srv);
		return;
	case PKT_STATUS:
		if (server_peer_may_run(p, false) != 0)
			break;
		server_job_status(p, pkt->id, now);
		return;
	case PKT_REGISTER:
		if (p->role != ROLE_WORKER)
			break;
		if ((r = switchboard_register(srv->sb, p->worker, pkt,
		    now)) != 0) {
			conn_send_error(p->conn, PERR_BAD_PACKET, NULL,
			    "REGISTER refused: %s", r == -ENOMEM ?
			    "the broker is out of memory" :
			    "invalid functions or capacity");
			return;
		}
		if (!p->registered) {
			p->registered = true;
			if (p->proc != NULL)
				supervisor_proc_registered(srv->sv, p->proc);
		}
		server_log_register(p, pkt);
		server_rearm(srv);
		return;
	case PKT_RESULT:
		if (p->role != ROLE_WORKER)
			break;
		r = switchboard_result(srv->sb, p->worker, pkt, now);
		if (r == -ESTALE)
			log_debug("%s: stale RESULT (attempt %llu) dropped",
			    server_peer_desc(p),
			    (unsigned long long)pkt->attempt);
		server_rearm(srv);
		return;
	case PKT_PROGRESS:
		if (p->role != ROLE_WORKER)
			break;
		if (switchboard_progress(srv->sb, p->worker, pkt, now) ==
		    -ESTALE)
			log_debug("%s: stale PROGRESS dropped",
			    server_peer_desc(p));
		return;
	case PKT_ADMIN:
		if (p->role != ROLE_ADMIN)
			break;
		admin_handle(srv, p, pkt);
		return;
	default:
		break;
	}
	server_not_allowed(p, pkt);
}

/* The conn is gone: tell the switchboard and the supervisor, free. */
static void
server_peer_closed(struct conn *c, const char *why, void *arg)
{
	struct peer	*p = arg;
	struct server	*srv = p->srv;
	uint64_t	 now = clock_now_ms();
	char		 safe[256];

	/* A decode error's reason may quote what the peer sent. */
	format_escape(why, strlen(why), safe, sizeof(safe));
	/* A peer dropped for not reading is a warning; any other end is news. */
	if (strncmp(why, "slow consumer", 13) == 0)
		log_warnx("%s: dropped: %s", server_peer_desc(p), safe);
	else
		log_info("%s: closed: %s", server_peer_desc(p), safe);
	/*
	 * A worker that sent RUN (worker_may_run) has both sides: its own
	 * jobs go as a client's do, then the ones it was running.
	 */
	if (p->client != NULL)
		switchboard_client_remove(srv->sb, p->client, now);
	if (p->worker != NULL)
		switchboard_worker_remove(srv->sb, p->worker, now);
	{
		struct msg_stats	ms;

		conn_stats(c, &ms);
		msg_stats_add(&srv->msgs_closed, &ms);
		if (p->proc != NULL)
			supervisor_proc_count(p->proc, &ms);
	}
	if (p->proc != NULL)
		supervisor_proc_detached(srv->sv, p->proc);
	jobstore_peer_gone(srv, p);
	if (p->uid_counted) {
		struct uid_count	*u;
		uid_t			 uid = conn_peer(p->conn)->uid;

		HASH_FIND(hh, srv->uids, &uid, sizeof(uid), u);
		if (u != NULL && --u->n == 0) {
			HASH_DEL(srv->uids, u);
			free(u);
		}
	}
	TAILQ_REMOVE(&srv->peers, p, entry);
	srv->npeers--;
	free(p);
	server_rearm(srv);
	if (srv->stopping && srv->npeers == 0 && srv->stopped_cb != NULL) {
		void (*cb)(struct server *, void *) = srv->stopped_cb;

		srv->stopped_cb = NULL;
		evtimer_del(srv->stop_timer);
		cb(srv, srv->stopped_arg);
	}
}

/* Creates a server; see broker.h. */
struct server *
server_new(struct event_base *base, const struct server_config *cfg)
{
	struct server	*srv;
	struct timeval	 tv;
	uint64_t	 sweep;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return NULL;
	srv->base = base;
	srv->cfg = *cfg;
	/* A config that says nothing of the socket files: 0600, its group. */
	if (srv->cfg.socket_perms.mode == 0) {
		srv->cfg.socket_perms.mode = 0600;
		srv->cfg.socket_perms.gid = -1;
	}
	if (srv->cfg.heartbeat_ms == 0)
		srv->cfg.heartbeat_ms = SERVER_DEFAULT_HEARTBEAT_MS;
	if (srv->cfg.hello_timeout_ms == 0)
		srv->cfg.hello_timeout_ms = SERVER_DEFAULT_HELLO_MS;
	if (srv->cfg.max_frame == 0)
		srv->cfg.max_frame = PROTO_MAX_FRAME_DEFAULT;
	TAILQ_INIT(&srv->peers);
	srv->started_at = clock_now_ms();
	srv->sb_timer_at = UINT64_MAX;
	srv->sb = switchboard_new(&srv->cfg.sb, server_sb_send, srv);
	if (srv->sb != NULL)
		switchboard_set_job_end_cb(srv->sb, server_sb_job_end, srv);
	srv->sb_timer = evtimer_new(base, server_sb_timer_cb, srv);
	srv->hb_timer = event_new(base, -1, EV_PERSIST, server_hb_timer_cb,
	    srv);
	srv->stop_timer = evtimer_new(base, NULL, NULL);
	srv->stop_ev = event_new(base, -1, 0, server_stop_cb, srv);
	if (srv->sb == NULL || srv->sb_timer == NULL || srv->hb_timer == NULL ||
	    srv->stop_timer == NULL || srv->stop_ev == NULL) {
		server_free(srv);
		return NULL;
	}
	/* Sweep often enough to honour both the heartbeat and HELLO bounds. */
	sweep = srv->cfg.heartbeat_ms < srv->cfg.hello_timeout_ms ?
	    srv->cfg.heartbeat_ms : srv->cfg.hello_timeout_ms;
	sweep = sweep / 4 > 0 ? sweep / 4 : 1;
	if (sweep > 1000)
		sweep = 1000;
	tv.tv_sec = (time_t)(sweep / 1000);
	tv.tv_usec = (suseconds_t)(sweep % 1000) * 1000;
	event_add(srv->hb_timer, &tv);
	return srv;
}

/* Frees everything; see broker.h. */
void
server_free(struct server *srv)
{
	struct peer	*p;

	if (srv == NULL)
		return;
	jobstore_close(srv);
	while ((p = TAILQ_FIRST(&srv->peers)) != NULL) {
		TAILQ_REMOVE(&srv->peers, p, entry);
		conn_free(p->conn);
		free(p);
	}
	for (size_t i = 0; i < srv->nlisteners; i++)
		listener_free(srv->listeners[i]);
	switchboard_free(srv->sb);
	if (srv->sb_timer != NULL)
		event_free(srv->sb_timer);
	if (srv->hb_timer != NULL)
		event_free(srv->hb_timer);
	if (srv->stop_timer != NULL)
		event_free(srv->stop_timer);
	if (srv->stop_ev != NULL)
		event_free(srv->stop_ev);
	if (srv->drain_ev != NULL)
		event_free(srv->drain_ev);
	free(srv->cfg.token_path);
	server_tokens_free(srv->cfg.tokens);
	free(srv->cfg.tls_cert);
	free(srv->cfg.tls_key);
	free(srv->cfg.tls_client_ca);
	tls_ctx_free(srv->cfg.tls_ctx);
	tls_roles_free(srv->cfg.tls_roles, srv->cfg.ntls_roles);
	for (int r = ROLE_CLIENT; r <= ROLE_ADMIN; r++) {
		free(srv->cfg.role_token_path[r]);
		server_tokens_free(srv->cfg.role_tokens[r]);
	}
	{
		struct uid_count *u, *tmp;

		HASH_ITER(hh, srv->uids, u, tmp) {
			HASH_DEL(srv->uids, u);
			free(u);
		}
	}
	free(srv);
}

/* Listens on one more endpoint; see broker.h. */
int
server_listen(struct server *srv, const struct endpoint *ep, char *err)
{
	struct listener	*l;
	int		 r;

	if (srv->nlisteners == SERVER_MAX_LISTENERS) {
		snprintf(err, PROTO_ERRLEN, "more than %d listeners",
		    SERVER_MAX_LISTENERS);
		return -E2BIG;
	}
	r = listener_new(srv->base, ep, &srv->cfg.socket_perms,
	    server_accept_cb, srv, &l, err);
	if (r != 0)
		return r;
	srv->listeners[srv->nlisteners++] = l;
	log_info("listening on %s", listener_endpoint(l)->text);
	return 0;
}

/* Every connection's messages; see broker.h. */
void
server_msg_totals(const struct server *srv, struct msg_stats *ret)
{
	struct peer		*p;
	struct msg_stats	 ms;

	*ret = srv->msgs_closed;
	TAILQ_FOREACH(p, &srv->peers, entry) {
		conn_stats(p->conn, &ms);
		msg_stats_add(ret, &ms);
	}
}

/* One process's messages; see broker.h. */
void
server_proc_msgs(const struct server *srv, const struct supervisor_proc *proc,
    struct msg_stats *ret)
{
	struct peer		*p;
	struct msg_stats	 ms;

	*ret = *supervisor_proc_msgs(proc);
	TAILQ_FOREACH(p, &srv->peers, entry) {
		if (p->proc == proc) {
			conn_stats(p->conn, &ms);
			msg_stats_add(ret, &ms);
		}
	}
}

/* Writes the bound endpoints to path, via a temporary file and rename. */
int
server_write_ready_file(const struct server *srv, const char *path)
{
	char	 tmp[4096];
	FILE	*f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "w")) == NULL)
		return -errno;
	for (size_t i = 0; i < srv->nlisteners; i++)
		fprintf(f, "%s\n", listener_endpoint(srv->listeners[i])->text);
	/* "tcp:HOST:PORT" becomes "http:HOST:PORT": http://HOST:PORT/. */
	if (srv->http != NULL)
		fprintf(f, "http:%s\n", http_endpoint(srv->http) + 4);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		int r = -errno;

		unlink(tmp);
		return r;
	}
	return 0;
}

/* The shutdown bound ran out: report done with whatever is left. */
static void
server_stop_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;
	void		(*cb)(struct server *, void *) = srv->stopped_cb;

	(void)fd; (void)what;
	srv->stopped_cb = NULL;
	if (cb != NULL) {
		log_info("%u connection(s) did not close in time", srv->npeers);
		cb(srv, srv->stopped_arg);
	}
}

/*
 * Graceful stop of the peers: close the listeners, answer what is queued,
 * BYE to every peer, let output drain, then call done (bounded by
 * SERVER_SHUTDOWN_GRACE_MS).
 */
static void
server_shutdown(struct server *srv, void (*done)(struct server *, void *),
    void *arg)
{
	struct peer	*p;
	struct packet	 bye;
	struct timeval	 tv = { SERVER_SHUTDOWN_GRACE_MS / 1000,
			    (SERVER_SHUTDOWN_GRACE_MS % 1000) * 1000 };
	const char	*reason = "broker shutting down";

	if (srv->stopping)
		return;
	srv->stopping = true;
	srv->stopped_cb = done;
	srv->stopped_arg = arg;
	for (size_t i = 0; i < srv->nlisteners; i++)
		listener_free(srv->listeners[i]);
	srv->nlisteners = 0;
	switchboard_shutdown(srv->sb, clock_now_ms());
	packet_init(&bye, PKT_BYE);
	bye.reason.ptr = (const uint8_t *)reason;
	bye.reason.len = (uint32_t)strlen(reason);
	TAILQ_FOREACH(p, &srv->peers, entry) {
		/* BYE is for peers past HELLO; the others get an ERROR. */
		if (p->role != ROLE_NONE)
			conn_send(p->conn, &bye);
		else
			conn_send_error(p->conn, PERR_SHUTTING_DOWN, NULL,
			    "the broker is shutting down");
		conn_close(p->conn, "broker shutting down");
	}
	if (srv->npeers == 0) {
		srv->stopped_cb = NULL;
		done(srv, arg);
		return;
	}
	event_assign(srv->stop_timer, srv->base, -1, 0, server_stop_timer_cb,
	    srv);
	evtimer_add(srv->stop_timer, &tv);
}

/* A draining broker: shuts down once no job is left, or in time. */
static void
server_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server		*srv = arg;
	struct sb_stats		 st;
	struct timeval		 tv = { 0, SERVER_DRAIN_POLL_MS * 1000 };
	char			 d[32];

	(void)fd; (void)what;
	if (srv->stop_requested)
		return;
	switchboard_stats(srv->sb, &st);
	if (st.queued == 0 && st.running == 0)
		(void)server_stop(srv, "drained: every job is done, shutting "
		    "down");
	else if (clock_now_ms() >= srv->drain_until) {
		format_duration(srv->drain_until - srv->drain_started, d,
		    sizeof(d));
		(void)server_stop(srv, "drain: %s passed with %u jobs running "
		    "and %u queued, shutting down", d, st.running, st.queued);
	} else
		evtimer_add(srv->drain_ev, &tv);
}

/* Refuses new RUNs, lets the others finish, then stops; see broker.h. */
int
server_drain(struct server *srv, uint64_t timeout_ms, uint32_t *ret_running,
    uint32_t *ret_queued)
{
	struct sb_stats	st;
	char		d[32];

	if (srv->stop_requested || srv->draining)
		return -EALREADY;
	if (srv->drain_ev == NULL &&
	    (srv->drain_ev = evtimer_new(srv->base, server_drain_cb,
	    srv)) == NULL)
		return -ENOMEM;
	if (timeout_ms == 0)
		timeout_ms = srv->cfg.drain_timeout_ms;
	srv->draining = true;
	srv->drain_started = clock_now_ms();
	srv->drain_until = srv->drain_started + timeout_ms;
	switchboard_refuse_new(srv->sb, "the broker is draining: it takes no "
	    "new jobs");
	switchboard_stats(srv->sb, &st);
	format_duration(timeout_ms, d, sizeof(d));
	log_info("draining: new jobs are refused; the %u running and %u "
	    "queued have up to %s", st.running, st.queued, d);
	notify_send(srv->notify, "STATUS=draining");
	/* From the event loop, so that the answer goes out first. */
	event_active(srv->drain_ev, EV_TIMEOUT, 0);
	*ret_running = st.running;
	*ret_queued = st.queued;
	return 0;
}

/* Leaves the event loop once both the peers and the processes are gone. */
static void
server_stopped_check(struct server *srv)
{
	if (srv->peers_down && srv->sv_down)
		event_base_loopexit(srv->base, NULL);
}

/* server_shutdown() is done with the peers. */
static void
server_peers_down_cb(struct server *srv, void *arg)
{
	(void)arg;
	srv->peers_down = true;
	server_stopped_check(srv);
}

/* The stop asked by server_stop() begins, from the event loop. */
static void
server_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;

	(void)fd; (void)what;
	if (srv->sv == NULL) {
		srv->sv_down = true;
		server_shutdown(srv, server_peers_down_cb, NULL);
		return;
	}
	/*
	 * Pool workers running jobs: those jobs finish first (each process
	 * drains within its stop_timeout), while new RUNs are refused; the
	 * peers are sent away once every process is down. After `ctl
	 * drain`, which waited already, what is left ends now.
	 */
	if (!srv->draining && supervisor_running_jobs(srv->sv) > 0) {
		srv->stop_after_sv = true;
		switchboard_refuse_new(srv->sb, "the broker is shutting down");
		log_info("letting the jobs of the pools' workers finish "
		    "before stopping");
		supervisor_shutdown(srv->sv);
		return;
	}
	supervisor_shutdown(srv->sv);
	server_shutdown(srv, server_peers_down_cb, NULL);
}

/* The one stop path; see broker.h. */
int
server_stop(struct server *srv, const char *fmt, ...)
{
	char	reason[512];
	va_list	ap;

	if (srv->stop_requested)
		return -EALREADY;
	srv->stop_requested = true;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_info("%s", reason);
	notify_send(srv->notify, "STOPPING=1");
	event_active(srv->stop_ev, EV_TIMEOUT, 0);
	return 0;
}

/* The supervisor's side of a spawned worker. */

/* A new child's socket becomes a local worker connection (no token). */
static struct peer *
server_sv_attach(struct server *srv, struct supervisor_proc *proc, int fd)
{
	struct peer	*p;

	if ((p = server_peer_new(srv, fd, false)) == NULL)
		return NULL;
	p->local = true;
	p->proc = proc;
	snprintf(p->name, sizeof(p->name), "%s", supervisor_proc_id(proc));
	return p;
}

/*
 * Stops or restarts dispatching to a paused process's worker. A paused
 * (SIGSTOPped) process cannot answer PINGs: it is left out of the liveness
 * sweep until resumed, and its silence is counted from the resume.
 */
static void
server_sv_set_paused(struct server *srv, struct peer *p, bool paused)
{
	p->paused = paused;
	if (!paused) {
		conn_touch(p->conn);
		p->ping_sent = 0;
	}
	if (p->worker != NULL)
		switchboard_worker_pause(srv->sb, p->worker, paused,
		    clock_now_ms());
	server_rearm(srv);
}

/* Its process is stopping: no new jobs, the running ones go on. */
static void
server_sv_drain(struct server *srv, struct peer *p)
{
	if (p->worker != NULL)
		switchboard_worker_pause(srv->sb, p->worker, true,
		    clock_now_ms());
}

/* The jobs a process's worker holds. */
static unsigned
server_sv_running(struct server *srv, struct peer *p)
{
	struct sb_worker_info	info;

	(void)srv;
	if (p->worker == NULL || conn_closing(p->conn))
		return 0;
	switchboard_worker_info(p->worker, &info);
	return info.in_flight;
}

/* An on-demand pool serves fn, or no longer does. */
static void
server_sv_standby(struct server *srv, const char *fn, bool on)
{
	if (switchboard_fn_standby(srv->sb, fn, on, clock_now_ms()) != 0)
		log_warnx("function %s: cannot %s its on-demand pool: out of "
		    "memory", fn, on ? "register" : "unregister");
	server_rearm(srv);
}

/* Jobs waiting for fn and free slots for it. */
static void
server_sv_load(struct server *srv, const char *fn, uint32_t *ret_queued,
    uint32_t *ret_free)
{
	struct sb_fn_info	info;

	*ret_queued = *ret_free = 0;
	if (switchboard_fn_lookup(srv->sb, fn, &info)) {
		*ret_queued = info.queued;
		*ret_free = info.free_slots;
	}
}

/* The process is finished: its connection goes with it. */
static void
server_sv_detach(struct server *srv, struct peer *p)
{
	(void)srv;
	p->proc = NULL;
	conn_close(p->conn, "its process is finished");
}

/* Every process is down after supervisor_shutdown(). */
static void
server_sv_stopped_all(struct server *srv)
{
	srv->sv_down = true;
	if (srv->stop_after_sv && !srv->stopping) {
		server_shutdown(srv, server_peers_down_cb, NULL);
		return;
	}
	server_stopped_check(srv);
}

static const struct supervisor_ops server_sv_ops = {
	.attach = server_sv_attach,
	.set_paused = server_sv_set_paused,
	.drain = server_sv_drain,
	.running = server_sv_running,
	.standby = server_sv_standby,
	.load = server_sv_load,
	.detach = server_sv_detach,
	.stopped_all = server_sv_stopped_all,
};

/* Links the supervisor and the server both ways; see broker.h. */
void
server_set_supervisor(struct server *srv, struct supervisor *sv)
{
	srv->sv = sv;
	supervisor_set_ops(sv, &server_sv_ops, srv);
}

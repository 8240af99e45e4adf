/*
 * http.c: the HTTP endpoint (libevent's evhttp), off unless `http =`.
 *
 * It serves what an operator or a monitoring system reads: /healthz,
 * /readyz, /metrics (metrics.c), /status.json (admin_pack_status(), the
 * same snapshot as `patchbay ctl status --json`, written by proto/json.c),
 * /history.json and the status page at / (status.html, compiled into the
 * binary). Every answer is built at once from the state the broker keeps
 * anyway; nothing here runs per job. A timer samples the completed jobs
 * and the queue once a second into a ring of HTTP_HISTORY samples, which
 * /history.json serves so that the page's chart has its last minutes at
 * once.
 *
 * The endpoint must never disturb the job path, whoever talks to it. It
 * has its own limits: at most HTTP_MAX_CONNECTIONS connections (beyond
 * that the listener stops accepting and newcomers wait in the kernel's
 * backlog), HTTP_MAX_HEADERS bytes of headers and HTTP_MAX_BODY of body
 * (libevent answers 413 past them), http_timeout of inactivity on a
 * connection (evhttp's own timeouts), and http_timeout for a whole
 * request: a client that trickles its headers a byte at a time is closed
 * by the sweep of the same one-second timer. Unknown paths get 404, other
 * methods than GET and HEAD 405.
 *
 * evhttp 2.1 has no hook for a new connection, so connections are counted
 * through the bufferevent callback: evhttp asks http_bev_cb() for each new
 * connection's bufferevent, and http_adopt_cb(), run from the event loop
 * before any of that connection's I/O, finds its evhttp_connection (the
 * bufferevent's callback argument, checked with
 * evhttp_connection_get_bufferevent()) and sets a close callback on it. A
 * reference on the bufferevent bridges the two, so that a connection that
 * evhttp dropped in between is noticed, not touched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "broker/broker.h"

/* One connection to the endpoint; owned by its struct http. */
struct http_conn {
	TAILQ_ENTRY(http_conn)	 entry;
	struct http		*http;
	struct bufferevent	*bev;		/* referenced until adopted */
	struct evhttp_connection *evcon;	/* NULL until adopted */
	uint64_t		 since;		/* monotonic ms: waiting for a
						   request since */
};
TAILQ_HEAD(http_conns, http_conn);

/* One second of history. */
struct http_sample {
	uint64_t	at;		/* wall-clock ms */
	uint64_t	completed;	/* jobs finished, any status, so far */
	uint32_t	queued;
	uint32_t	running;
};

/* The endpoint; owned by main(). */
struct http {
	struct server			*srv;
	struct event_base		*base;
	struct evhttp			*evh;
	struct evhttp_bound_socket	*bound;
	char				 endpoint[UTIL_ERRLEN];	/* as bound */
	uint64_t			 timeout_ms;
	bool				 started;	/* http_set_started() */
	bool				 pools_up;	/* none starting once */
	struct http_conns		 pending;	/* not adopted yet */
	struct http_conns		 conns;
	uint32_t			 nconns;	/* both lists */
	bool				 listener_off;	/* disabled */
	uint64_t			 accept_paused;	/* EMFILE: resume
							   then (monotonic
							   ms); 0: not */
	bool				 untracked_warned;
	struct event			*adopt_ev;
	struct event			*tick_ev;
	struct http_sample		 ring[HTTP_HISTORY];
	size_t				 ring_start, ring_n;
};

/*
 * The endpoint whose listener http_accept_error_cb() pauses: a listener's
 * error callback gets evhttp's argument, and patchbayd has one endpoint.
 */
static struct http	*http_current;

/* Parses an http endpoint; see broker.h. */
int
http_endpoint_parse(const char *s, struct endpoint *ret, char *err)
{
	char		text[64], why[UTIL_ERRLEN];
	uint64_t	port;

	if (strncmp(s, "tcp:", 4) != 0) {
		if (parse_uint(s, 0, 65535, &port, why) != 0) {
			snprintf(err, UTIL_ERRLEN, "expected tcp:HOST:PORT or "
			    "a port number (got '%s')", s);
			return -EINVAL;
		}
		snprintf(text, sizeof(text), "tcp:127.0.0.1:%u",
		    (unsigned)port);
		s = text;
	}
	return endpoint_parse(s, ret, err);
}

/* The wall clock in ms, for the history's time axis. */
static uint64_t
http_wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* True when host is a loopback address. */
static bool
http_is_loopback(const char *host)
{
	struct in_addr	a4;
	struct in6_addr	a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/*
 * Stops accepting while the connections are at the cap or accept() is out
 * of descriptors, and starts again when neither holds.
 */
static void
http_update_listener(struct http *http)
{
	struct evconnlistener	*l;
	bool			 full = http->nconns >= HTTP_MAX_CONNECTIONS;
	bool			 off = full || http->accept_paused != 0;

	/* bound is NULL while http_free() closes everything. */
	if (off == http->listener_off || http->bound == NULL)
		return;
	http->listener_off = off;
	l = evhttp_bound_socket_get_listener(http->bound);
	if (off) {
		if (full)
			log_info("http %s: %u connections, not accepting more "
			    "until one closes", http->endpoint, http->nconns);
		evconnlistener_disable(l);
	} else
		evconnlistener_enable(l);
}

/*
 * accept() failed with something other than EAGAIN or EINTR: out of
 * descriptors, most likely. Pause accepting for a second (the tick
 * resumes it) rather than spin on a listener that stays readable.
 */
static void
http_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct http	*http = http_current;
	int		 error = EVUTIL_SOCKET_ERROR();

	/* arg is evhttp's (its listener's callback argument), not ours. */
	(void)l; (void)arg;
	if (http == NULL || error == ECONNABORTED)
		return;
	log_warnx("http %s: accept: %s; pausing for 1 s", http->endpoint,
	    strerror(error));
	http->accept_paused = clock_now_ms() + 1000;
	http_update_listener(http);
}

/* Forgets a connection (its close, or evhttp dropped it unadopted). */
static void
http_conn_forget(struct http *http, struct http_conns *list,
    struct http_conn *c)
{
	TAILQ_REMOVE(list, c, entry);
	http->nconns--;
	free(c);
	http_update_listener(http);
}

/* evhttp closes an adopted connection. */
static void
http_conn_closed_cb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn	*c = arg;

	(void)evcon;
	http_conn_forget(c->http, &c->http->conns, c);
}

/*
 * evhttp wants the bufferevent of a new connection: make it, keep a
 * reference until http_adopt_cb() has seen its connection, and count it.
 * Its descriptor is evhttp's to close (flags 0, as evhttp's own).
 */
static struct bufferevent *
http_bev_cb(struct event_base *base, void *arg)
{
	struct http		*http = arg;
	struct http_conn	*c;
	struct bufferevent	*bev;

	if ((bev = bufferevent_socket_new(base, -1, 0)) == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return bev;	/* served, but not counted */
	c->http = http;
	c->bev = bev;
	c->since = clock_now_ms();
	bufferevent_incref(bev);
	TAILQ_INSERT_TAIL(&http->pending, c, entry);
	http->nconns++;
	event_active(http->adopt_ev, EV_TIMEOUT, 0);
	http_update_listener(http);
	return bev;
}

/*
 * Runs after new connections were accepted, before their first read:
 * sets each one's close callback, drops the reference of http_bev_cb(),
 * and closes any that is over the cap.
 */
static void
http_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http			*http = arg;
	struct http_conn		*c;
	struct evhttp_connection	*evcon;
	bufferevent_data_cb		 readcb;
	void				*cbarg;

	(void)fd; (void)what;
	while ((c = TAILQ_FIRST(&http->pending)) != NULL) {
		struct bufferevent *bev = c->bev;

		bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
		evcon = cbarg;
		if (readcb == NULL || evcon == NULL ||
		    evhttp_connection_get_bufferevent(evcon) != bev) {
			/* Dropped already (readcb cleared by its free), or a
			   libevent that does not work this way: uncounted. */
			if (readcb != NULL && !http->untracked_warned) {
				http->untracked_warned = true;
				log_warnx("http %s: cannot follow connections "
				    "with this libevent; the connection limit "
				    "is not enforced", http->endpoint);
			}
			http_conn_forget(http, &http->pending, c);
			bufferevent_decref(bev);
			continue;
		}
		TAILQ_REMOVE(&http->pending, c, entry);
		TAILQ_INSERT_TAIL(&http->conns, c, entry);
		c->evcon = evcon;
		c->bev = NULL;
		evhttp_connection_set_closecb(evcon, http_conn_closed_cb, c);
		bufferevent_decref(bev);
		if (http->nconns > HTTP_MAX_CONNECTIONS)
			evhttp_connection_free(evcon);
	}
}

/* The adopted connection of evcon, or NULL. */
static struct http_conn *
http_conn_find(struct http *http, struct evhttp_connection *evcon)
{
	struct http_conn	*c;

	TAILQ_FOREACH(c, &http->conns, entry)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

/* Sends an answer: status, content type, body (len bytes, may be 0). */
static void
http_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, const void *body, size_t len)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	/* HEAD: the length the body would have, and no body. */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char	n[32];

		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(h, "Content-Length", n);
	} else if (len > 0)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	evhttp_send_reply(req, code, reason, NULL);
}

/* Sends a short plain-text answer. */
static void
http_reply_text(struct evhttp_request *req, int code, const char *reason,
    const char *text)
{
	http_reply(req, code, reason, "text/plain; charset=utf-8", text,
	    strlen(text));
}

/*
 * Sends what fn writes to a memory stream, or 500 when it fails. fn
 * returns 0 or a negative errno.
 */
static void
http_reply_stream(struct evhttp_request *req, const char *type,
    int (*fn)(struct http *, FILE *), struct http *http)
{
	char	*buf = NULL;
	size_t	 len = 0;
	FILE	*f;
	int	 r;

	if ((f = open_memstream(&buf, &len)) == NULL) {
		http_reply_text(req, 500, "Internal Server Error",
		    "out of memory\n");
		return;
	}
	r = fn(http, f);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r != 0)
		http_reply_text(req, 500, "Internal Server Error",
		    "out of memory\n");
	else
		http_reply(req, 200, "OK", type, buf, len);
	free(buf);
}

/* True when no pool's process is still starting for the first time. */
static bool
http_pools_up(struct http *http)
{
	const struct supervisor		*sv = http->srv->sv;
	const struct supervisor_proc	*p;

	if (http->pools_up)
		return true;
	if (!http->started)
		return false;
	for (p = sv != NULL ? supervisor_proc_next(sv, NULL) : NULL;
	    p != NULL; p = supervisor_proc_next(sv, p))
		if (supervisor_proc_pool(p) != NULL &&
		    supervisor_proc_state(p) == SUPERVISOR_STARTING)
			return false;
	/* Once up, restarts later on do not make the broker unready. */
	http->pools_up = true;
	return true;
}

/* Writes the status snapshot as JSON. */
static int
http_write_status(struct http *http, FILE *f)
{
	msgpack_sbuffer		sb;
	msgpack_packer		pk;
	msgpack_unpacked	u;
	size_t			off = 0;
	int			r = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	admin_pack_status(http->srv, &pk);
	msgpack_unpacked_init(&u);
	if (sb.data == NULL || msgpack_unpack_next(&u, sb.data, sb.size,
	    &off) != MSGPACK_UNPACK_SUCCESS)
		r = -ENOMEM;
	else {
		proto_json_write(f, &u.data, 0);
		fputc('\n', f);
	}
	msgpack_unpacked_destroy(&u);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

/* Writes the history ring as JSON, oldest sample first. */
static int
http_write_history(struct http *http, FILE *f)
{
	fprintf(f, "{\"interval_ms\":1000,\"columns\":[\"time_ms\","
	    "\"completed\",\"queued\",\"running\"],\"samples\":[");
	for (size_t i = 0; i < http->ring_n; i++) {
		const struct http_sample *s =
		    &http->ring[(http->ring_start + i) % HTTP_HISTORY];

		fprintf(f, "%s[%llu,%llu,%u,%u]", i > 0 ? "," : "",
		    (unsigned long long)s->at,
		    (unsigned long long)s->completed, s->queued, s->running);
	}
	fputs("]}\n", f);
	return 0;
}

/* Writes the metrics. */
static int
http_write_metrics(struct http *http, FILE *f)
{
	return metrics_write(http->srv, f);
}

/* Every request: method, then path. */
static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http		*http = arg;
	struct http_conn	*c;
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = uri != NULL ?
				    evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type	 cmd = evhttp_request_get_command(req);
	char			 safe[256];

	if ((c = http_conn_find(http, evhttp_request_get_connection(req))) !=
	    NULL)
		c->since = clock_now_ms();
	if (path == NULL || *path == '\0')
		path = "/";
	/* The path is the peer's: escaped before it reaches the log. */
	if (log_get_level() >= LOG_LEVEL_DEBUG)
		log_debug("http %s: %s %s", http->endpoint,
		    cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_HEAD ?
		    "HEAD" : "other", format_escape(path, strlen(path), safe,
		    sizeof(safe)));
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		http_reply_text(req, 405, "Method Not Allowed",
		    "method not allowed: use GET\n");
		return;
	}
	if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Security-Policy", "default-src 'none'; "
		    "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
		    "connect-src 'self'; img-src data:");
		http_reply(req, 200, "OK", "text/html; charset=utf-8",
		    http_status_html, http_status_html_len);
	} else if (strcmp(path, "/healthz") == 0)
		http_reply_text(req, 200, "OK", "ok\n");
	else if (strcmp(path, "/readyz") == 0) {
		if (http->srv->stop_requested || http->srv->stopping)
			http_reply_text(req, 503, "Service Unavailable",
			    "stopping\n");
		else if (http->srv->draining)
			http_reply_text(req, 503, "Service Unavailable",
			    "draining\n");
		else if (!http_pools_up(http))
			http_reply_text(req, 503, "Service Unavailable",
			    "starting\n");
		else
			http_reply_text(req, 200, "OK", "ready\n");
	} else if (strcmp(path, "/status.json") == 0)
		http_reply_stream(req, "application/json", http_write_status,
		    http);
	else if (strcmp(path, "/history.json") == 0)
		http_reply_stream(req, "application/json", http_write_history,
		    http);
	else if (strcmp(path, "/metrics") == 0)
		http_reply_stream(req,
		    "text/plain; version=0.0.4; charset=utf-8",
		    http_write_metrics, http);
	else
		http_reply_text(req, 404, "Not Found", "not found\n");
}

/* Adds one sample to the ring, dropping the oldest when it is full. */
static void
http_sample(struct http *http)
{
	struct sb_stats		 st;
	struct http_sample	*s;
	uint64_t		 completed = 0;

	switchboard_stats(http->srv->sb, &st);
	for (int i = 0; i < JOB__MAX; i++)
		completed += st.results[i];
	if (http->ring_n == HTTP_HISTORY) {
		http->ring_start = (http->ring_start + 1) % HTTP_HISTORY;
		http->ring_n--;
	}
	s = &http->ring[(http->ring_start + http->ring_n++) % HTTP_HISTORY];
	s->at = http_wall_ms();
	s->completed = completed;
	s->queued = st.queued;
	s->running = st.running;
}

/*
 * Once a second: a sample for the history, and the sweep that closes
 * connections that did not complete a request within http_timeout.
 */
static void
http_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http		*http = arg;
	struct http_conn	*c, *next;
	uint64_t		 now = clock_now_ms();

	(void)fd; (void)what;
	http_sample(http);
	if (http->accept_paused != 0 && now >= http->accept_paused) {
		http->accept_paused = 0;
		http_update_listener(http);
	}
	for (c = TAILQ_FIRST(&http->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (now - c->since < http->timeout_ms)
			continue;
		log_debug("http %s: no whole request within %llu ms, closing",
		    http->endpoint, (unsigned long long)http->timeout_ms);
		/* Its close callback forgets c. */
		evhttp_connection_free(c->evcon);
	}
}

/* Starts the endpoint; see broker.h. */
int
http_new(struct server *srv, const char *endpoint, uint64_t timeout_ms,
    struct http **ret, char *err)
{
	struct http		*http;
	struct endpoint		 ep;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	struct timeval		 tv = { 1, 0 };
	char			 host[INET6_ADDRSTRLEN];
	unsigned		 port;
	evutil_socket_t		 fd;
	int			 r;

	if ((r = http_endpoint_parse(endpoint, &ep, err)) != 0)
		return r;
	if ((http = calloc(1, sizeof(*http))) == NULL) {
		snprintf(err, UTIL_ERRLEN, "http: out of memory");
		return -ENOMEM;
	}
	http->srv = srv;
	http->base = srv->base;
	http->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	TAILQ_INIT(&http->pending);
	TAILQ_INIT(&http->conns);
	http->evh = evhttp_new(srv->base);
	http->adopt_ev = event_new(srv->base, -1, 0, http_adopt_cb, http);
	http->tick_ev = event_new(srv->base, -1, EV_PERSIST, http_tick_cb,
	    http);
	if (http->evh == NULL || http->adopt_ev == NULL ||
	    http->tick_ev == NULL) {
		snprintf(err, UTIL_ERRLEN, "http: out of memory");
		http_free(http);
		return -ENOMEM;
	}
	evhttp_set_max_headers_size(http->evh, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http->evh, HTTP_MAX_BODY);
	tv.tv_sec = (time_t)(http->timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(http->timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(http->evh, &tv);
	/* Every method reaches http_request_cb(), which answers 405. */
	evhttp_set_allowed_methods(http->evh, EVHTTP_REQ_GET |
	    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http->evh, http_request_cb, http);
	evhttp_set_bevcb(http->evh, http_bev_cb, http);
	http->bound = evhttp_bind_socket_with_handle(http->evh, ep.host,
	    (uint16_t)atoi(ep.port));
	if (http->bound == NULL) {
		snprintf(err, UTIL_ERRLEN, "http: cannot listen on %s: %s",
		    ep.text, strerror(errno != 0 ? errno : EADDRINUSE));
		http_free(http);
		return -EADDRINUSE;
	}
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(
	    http->bound), http_accept_error_cb);
	fd = evhttp_bound_socket_get_fd(http->bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
		r = -errno;
		snprintf(err, UTIL_ERRLEN, "http: %s: getsockname: %s",
		    ep.text, strerror(errno));
		http_free(http);
		return r;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (void *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(http->endpoint, sizeof(http->endpoint),
		    "tcp:[%s]:%u", host, port);
	} else {
		const struct sockaddr_in *s4 = (void *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(http->endpoint, sizeof(http->endpoint), "tcp:%s:%u",
		    host, port);
	}
	if (!http_is_loopback(ep.host))
		log_warnx("http %s: reachable from other hosts; it has no "
		    "authentication", http->endpoint);
	http_current = http;
	http_sample(http);
	tv.tv_sec = 1;
	tv.tv_usec = 0;
	event_add(http->tick_ev, &tv);
	log_info("http: serving on %s", http->endpoint);
	*ret = http;
	return 0;
}

/* Stops serving and frees everything; see broker.h. */
void
http_free(struct http *http)
{
	struct http_conn	*c;

	if (http == NULL)
		return;
	if (http_current == http)
		http_current = NULL;
	/* Closes every connection: the close callbacks forget them. */
	http->bound = NULL;
	if (http->evh != NULL)
		evhttp_free(http->evh);
	while ((c = TAILQ_FIRST(&http->pending)) != NULL) {
		TAILQ_REMOVE(&http->pending, c, entry);
		bufferevent_decref(c->bev);
		free(c);
	}
	while ((c = TAILQ_FIRST(&http->conns)) != NULL) {
		TAILQ_REMOVE(&http->conns, c, entry);
		free(c);
	}
	if (http->adopt_ev != NULL)
		event_free(http->adopt_ev);
	if (http->tick_ev != NULL)
		event_free(http->tick_ev);
	free(http);
}

/* The bound endpoint; see broker.h. */
const char *
http_endpoint(const struct http *http)
{
	return http->endpoint;
}

/* The broker has started; see broker.h. */
void
http_set_started(struct http *http)
{
	http->started = true;
}

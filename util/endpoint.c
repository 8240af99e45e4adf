/*
 * endpoint.c: endpoint strings and outgoing connections.
 *
 * An endpoint is "unix:/path/to.sock", "tcp:HOST:PORT" or "tcp:[V6]:PORT".
 * This file turns the text into a struct endpoint, computes the default
 * socket path, and connects with a deadline. It depends on libc only, so
 * the broker, libpatchbay and the CLI share it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

/* Parses the part after "tcp:": HOST:PORT or [V6]:PORT. */
static int
endpoint_parse_tcp(const char *s, struct endpoint *ep, char *err)
{
	const char	*colon, *host = s;
	size_t		 hostlen;
	uint64_t	 port;
	char		 why[UTIL_ERRLEN];

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':') {
			snprintf(err, UTIL_ERRLEN, "tcp endpoint '%s': expected "
			    "[ADDRESS]:PORT", s);
			return -EINVAL;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			snprintf(err, UTIL_ERRLEN, "tcp endpoint '%s': missing "
			    ":PORT", s);
			return -EINVAL;
		}
		hostlen = (size_t)(colon - s);
		if (memchr(s, ':', hostlen) != NULL) {
			snprintf(err, UTIL_ERRLEN, "tcp endpoint '%s': an IPv6 "
			    "address must be written in brackets, as [::1]:PORT",
			    s);
			return -EINVAL;
		}
	}
	if (hostlen == 0 || hostlen >= sizeof(ep->host)) {
		snprintf(err, UTIL_ERRLEN, "tcp endpoint '%s': %s host", s,
		    hostlen == 0 ? "empty" : "too long a");
		return -EINVAL;
	}
	if (parse_uint(colon + 1, 0, 65535, &port, why) != 0) {
		snprintf(err, UTIL_ERRLEN, "tcp endpoint '%s': port '%s' is not "
		    "a number from 0 to 65535", s, colon + 1);
		return -EINVAL;
	}
	memcpy(ep->host, host, hostlen);
	ep->host[hostlen] = '\0';
	snprintf(ep->port, sizeof(ep->port), "%u", (unsigned)port);
	return 0;
}

/* Parses s into *ret; see util.h. */
int
endpoint_parse(const char *s, struct endpoint *ret, char *err)
{
	struct endpoint	ep;
	int		r;

	memset(&ep, 0, sizeof(ep));
	if (s == NULL || *s == '\0') {
		snprintf(err, UTIL_ERRLEN, "empty endpoint");
		return -EINVAL;
	}
	if (strncmp(s, "tcp://", 6) == 0 ||
	    strncmp(s, "unix://", 7) == 0) {
		/* A URL habit; say the right spelling before any lookup. */
		snprintf(err, UTIL_ERRLEN, "endpoint '%s': write %s:%s, not "
		    "%.*s//", s, s[0] == 't' ? "tcp" : "unix",
		    s[0] == 't' ? "HOST:PORT" : "PATH", s[0] == 't' ? 4 : 5,
		    s);
		return -EINVAL;
	}
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;

		if (*path == '\0') {
			snprintf(err, UTIL_ERRLEN, "endpoint '%s': empty socket "
			    "path", s);
			return -EINVAL;
		}
		if (strlen(path) >= sizeof(ep.path)) {
			snprintf(err, UTIL_ERRLEN, "endpoint '%s': socket path "
			    "longer than %zu bytes", s, sizeof(ep.path) - 1);
			return -EINVAL;
		}
		ep.kind = ENDPOINT_UNIX;
		strcpy(ep.path, path);
		snprintf(ep.text, sizeof(ep.text), "unix:%s", ep.path);
	} else if (strncmp(s, "tcp:", 4) == 0 || strncmp(s, "tls:", 4) == 0) {
		if ((r = endpoint_parse_tcp(s + 4, &ep, err)) != 0)
			return r;
		ep.kind = s[1] == 'c' ? ENDPOINT_TCP : ENDPOINT_TLS;
		if (strchr(ep.host, ':') != NULL)
			snprintf(ep.text, sizeof(ep.text), "%.3s:[%s]:%s", s,
			    ep.host, ep.port);
		else
			snprintf(ep.text, sizeof(ep.text), "%.3s:%s:%s", s,
			    ep.host, ep.port);
	} else {
		snprintf(err, UTIL_ERRLEN, "endpoint '%s': expected unix:PATH, "
		    "tcp:HOST:PORT or tls:HOST:PORT", s);
		return -EINVAL;
	}
	*ret = ep;
	return 0;
}

/* Splits and checks a list of endpoints; see util.h. */
int
endpoint_list_split(const char *s, char ***ret, char *err)
{
	struct endpoint	 ep;
	const char	*p, *end, *comma;
	char		**v = NULL, one[sizeof(ep.text)], why[UTIL_ERRLEN];
	size_t		 n = 0, len, i;
	int		 r;

	if (s == NULL || *s == '\0') {
		snprintf(err, UTIL_ERRLEN, "empty endpoint");
		return -EINVAL;
	}
	for (p = s;; p = comma + 1) {
		comma = strchr(p, ',');
		end = comma != NULL ? comma : p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		len = (size_t)(end - p);
		r = -EINVAL;
		if (len == 0)
			snprintf(err, UTIL_ERRLEN, "the broker list has an "
			    "empty entry");
		else if (n == ENDPOINT_LIST_MAX)
			snprintf(err, UTIL_ERRLEN, "the broker list has more "
			    "than %d brokers", ENDPOINT_LIST_MAX);
		else if (len >= sizeof(one))
			snprintf(err, UTIL_ERRLEN, "the broker list has an "
			    "entry longer than %zu bytes", sizeof(one) - 1);
		else {
			memcpy(one, p, len);
			one[len] = '\0';
			r = endpoint_parse(one, &ep, why);
			if (r != 0)
				snprintf(err, UTIL_ERRLEN, "%s", why);
			for (i = 0; r == 0 && i < n; i++) {
				if (strcmp(v[i], one) == 0) {
					snprintf(err, UTIL_ERRLEN, "the broker "
					    "list has %s twice", one);
					r = -EINVAL;
				}
			}
			if (r == 0)
				r = strv_push(&v, &n, one);
		}
		if (r != 0) {
			strv_free(v);
			return r;
		}
		if (comma == NULL)
			break;
	}
	*ret = v;
	return 0;
}

/* Writes the default endpoint; see util.h. */
int
endpoint_default(char *buf, size_t len, bool use_broker_env)
{
	const char	*v;
	int		 n;

	if (use_broker_env && (v = getenv("PATCHBAY_BROKER")) != NULL &&
	    *v != '\0')
		n = snprintf(buf, len, "%s", v);
	else if ((v = getenv("PATCHBAY_SOCKET")) != NULL && *v != '\0')
		n = snprintf(buf, len, "unix:%s", v);
	else if ((v = getenv("XDG_RUNTIME_DIR")) != NULL && *v != '\0')
		n = snprintf(buf, len, "unix:%s/patchbay.sock", v);
	else
		n = snprintf(buf, len, "unix:/tmp/patchbay-%u/patchbay.sock",
		    (unsigned)getuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Milliseconds left until deadline (monotonic), at least 0. */
static int
endpoint_ms_left(uint64_t deadline)
{
	uint64_t now = clock_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Connects one socket to one address with a deadline. */
static int
endpoint_connect_addr(int family, const struct sockaddr *sa, socklen_t salen,
    uint64_t deadline, int *ret_fd)
{
	struct pollfd	pfd;
	socklen_t	errlen;
	int		fd, one = 1, soerr, r;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	if (connect(fd, sa, salen) == 0)
		goto done;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		r = -errno;
		goto fail;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	for (;;) {
		r = poll(&pfd, 1, endpoint_ms_left(deadline));
		if (r == 1)
			break;
		if (r == 0) {
			r = -ETIMEDOUT;
			goto fail;
		}
		if (errno != EINTR) {
			r = -errno;
			goto fail;
		}
	}
	errlen = sizeof(soerr);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &errlen) == -1) {
		r = -errno;
		goto fail;
	}
	if (soerr != 0) {
		r = -soerr;
		goto fail;
	}
done:
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* Connects to ep; see util.h. */
int
endpoint_connect(const struct endpoint *ep, int timeout_ms, int *ret_fd)
{
	struct addrinfo		 hints, *res, *ai;
	struct sockaddr_un	 sun;
	uint64_t		 deadline;
	int			 r = -ECONNREFUSED;

	if (timeout_ms <= 0)
		timeout_ms = 5000;
	deadline = clock_now_ms() + (uint64_t)timeout_ms;
	if (ep->kind == ENDPOINT_UNIX) {
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, ep->path, sizeof(sun.sun_path));
		return endpoint_connect_addr(AF_UNIX,
		    (struct sockaddr *)&sun, sizeof(sun), deadline, ret_fd);
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(ep->host, ep->port, &hints, &res) != 0)
		return -EHOSTUNREACH;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		r = endpoint_connect_addr(ai->ai_family, ai->ai_addr,
		    ai->ai_addrlen, deadline, ret_fd);
		if (r == 0 || r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return r;
}

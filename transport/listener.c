/*
 * listener.c: listening sockets for unix: and tcp: endpoints.
 *
 * A listener owns one bound socket and an evconnlistener on it. Unix socket
 * files get the mode and group asked (0600 by default) in a directory
 * created when missing (0700, or 0710/0711 with that group when the
 * socket is open to the group or others); a file left
 * by a dead broker (nobody answers a connect) is replaced, a live one is
 * refused. The file is removed again by listener_free(). When accept(2)
 * runs out of descriptors the listener pauses for a second rather than
 * spin, and tells its owner once through the accept callback (fd < 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "transport/transport.h"

/* One listening socket; owned by the broker. */
struct listener {
	struct endpoint		 ep;		/* as bound (real port) */
	struct evconnlistener	*evl;
	struct event		*resume;	/* EMFILE back-off timer */
	listener_accept_cb	 cb;
	void			*arg;
	struct listener_perms	 perms;
	bool			 unlink_on_free;
	dev_t			 dev;		/* the socket file we made */
	ino_t			 ino;
};

/* Accepts one connection and hands the descriptor up. */
static void
listener_accept(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener	*l = arg;

	(void)evl; (void)sa; (void)salen;
	l->cb(l, fd, &l->ep, l->arg);
}

/* Re-enables accepting after an EMFILE pause. */
static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener	*l = arg;

	(void)fd; (void)what;
	evconnlistener_enable(l->evl);
}

/* accept(2) failed: pause on descriptor exhaustion, ignore the rest. */
static void
listener_error(struct evconnlistener *evl, void *arg)
{
	struct listener	*l = arg;
	struct timeval	 tv = { 1, 0 };
	int		 err = EVUTIL_SOCKET_ERROR();

	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		evconnlistener_disable(evl);
		evtimer_add(l->resume, &tv);
		l->cb(l, -err, &l->ep, l->arg);
	}
}

/*
 * Creates every missing directory of path's parent, mode 0700; the last
 * one also gets search permission for whom perms lets use the socket, and
 * perms' group.
 */
static int
listener_mkdirs(const char *path, const struct listener_perms *perms)
{
	mode_t	 last = 0700 | ((perms->mode & 0060) ? 0010 : 0) |
		    ((perms->mode & 0006) ? 0001 : 0);
	char	 dir[sizeof(((struct endpoint *)0)->path)];
	char	*p;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) == -1 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, last) == 0) {
		/* mkdir() takes the umask off: set what was asked. */
		if (chmod(dir, last) == -1 || (perms->gid >= 0 &&
		    chown(dir, (uid_t)-1, (gid_t)perms->gid) == -1))
			return -errno;
	} else if (errno != EEXIST)
		return -errno;
	return 0;
}

/* Removes a stale socket file at path, or refuses a live one. */
static int
listener_clear_stale(const struct endpoint *ep, char *err)
{
	struct stat	st;
	int		fd, r;

	if (lstat(ep->path, &st) == -1)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, PROTO_ERRLEN, "%s exists and is not a socket; "
		    "refusing to replace it", ep->path);
		return -EEXIST;
	}
	r = endpoint_connect(ep, 1000, &fd);
	if (r == 0) {
		close(fd);
		snprintf(err, PROTO_ERRLEN, "another broker is listening on "
		    "%s", ep->text);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED) {
		snprintf(err, PROTO_ERRLEN, "cannot tell whether %s is in use: "
		    "%s", ep->path, strerror(-r));
		return r;
	}
	if (unlink(ep->path) == -1 && errno != ENOENT) {
		r = -errno;
		snprintf(err, PROTO_ERRLEN, "cannot remove stale socket %s: %s",
		    ep->path, strerror(errno));
		return r;
	}
	return 0;
}

/* Binds a unix socket for ep; see listener_new(). */
static int
listener_bind_unix(struct listener *l, char *err)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	mode_t			 old;
	int			 fd, r;

	if ((r = listener_mkdirs(l->ep.path, &l->perms)) != 0) {
		snprintf(err, PROTO_ERRLEN, "cannot create the directory of %s: "
		    "%s", l->ep.path, strerror(-r));
		return r;
	}
	if ((r = listener_clear_stale(&l->ep, err)) != 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", l->ep.path);
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r == -1 || (l->perms.gid >= 0 && chown(l->ep.path, (uid_t)-1,
	    (gid_t)l->perms.gid) == -1) ||
	    chmod(l->ep.path, (mode_t)l->perms.mode) == -1 ||
	    stat(l->ep.path, &st) == -1) {
		r = -errno;
		snprintf(err, PROTO_ERRLEN, "cannot bind %s: %s", l->ep.text,
		    strerror(errno));
		close(fd);
		return r;
	}
	l->unlink_on_free = true;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	return fd;
}

/* Binds a tcp socket for ep and learns the real port; see listener_new(). */
static int
listener_bind_tcp(struct listener *l, char *err)
{
	struct addrinfo		 hints, *res;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen = sizeof(ss);
	char			 host[INET6_ADDRSTRLEN];
	int			 fd, one = 1, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((r = getaddrinfo(l->ep.host, l->ep.port, &hints, &res)) != 0) {
		snprintf(err, PROTO_ERRLEN, "cannot resolve %s: %s", l->ep.text,
		    gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		r = -errno;
		freeaddrinfo(res);
		return r;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1) {
		r = -errno;
		snprintf(err, PROTO_ERRLEN, "cannot bind %s: %s", l->ep.text,
		    strerror(errno));
		freeaddrinfo(res);
		close(fd);
		return r;
	}
	freeaddrinfo(res);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
		int port;

		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
			snprintf(l->ep.text, sizeof(l->ep.text), "%s:[%s]:%d",
			    l->ep.kind == ENDPOINT_TLS ? "tls" : "tcp", host,
			    port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
			snprintf(l->ep.text, sizeof(l->ep.text), "%s:%s:%d",
			    l->ep.kind == ENDPOINT_TLS ? "tls" : "tcp", host,
			    port);
		}
		snprintf(l->ep.port, sizeof(l->ep.port), "%d", port);
	}
	return fd;
}

/* Binds and listens on ep; see transport.h. */
int
listener_new(struct event_base *base, const struct endpoint *ep,
    const struct listener_perms *perms, listener_accept_cb cb, void *arg,
    struct listener **ret, char *err)
{
	struct listener	*l;
	int		 fd;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return -ENOMEM;
	l->ep = *ep;
	l->perms.mode = perms != NULL ? perms->mode : 0600;
	l->perms.gid = perms != NULL ? perms->gid : -1;
	l->cb = cb;
	l->arg = arg;
	if (ep->kind == ENDPOINT_UNIX)
		fd = listener_bind_unix(l, err);
	else
		fd = listener_bind_tcp(l, err);
	if (fd < 0) {
		free(l);
		return fd;
	}
	l->evl = evconnlistener_new(base, listener_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
	l->resume = evtimer_new(base, listener_resume_cb, l);
	if (l->evl == NULL || l->resume == NULL) {
		snprintf(err, PROTO_ERRLEN, "cannot listen on %s: %s",
		    l->ep.text, strerror(errno));
		if (l->evl == NULL)
			close(fd);
		listener_free(l);
		return -EIO;
	}
	evconnlistener_set_error_cb(l->evl, listener_error);
	*ret = l;
	return 0;
}

/* Closes the socket and removes the socket file we created. */
void
listener_free(struct listener *l)
{
	struct stat	st;

	if (l == NULL)
		return;
	if (l->evl != NULL)
		evconnlistener_free(l->evl);
	if (l->resume != NULL)
		event_free(l->resume);
	/* Only remove the file if it is still ours (not a newer broker's). */
	if (l->unlink_on_free && stat(l->ep.path, &st) == 0 &&
	    st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->ep.path);
	free(l);
}

/* The bound endpoint. */
const struct endpoint *
listener_endpoint(const struct listener *l)
{
	return &l->ep;
}

/* Stops or resumes accepting. */
void
listener_set_enabled(struct listener *l, bool enabled)
{
	if (enabled)
		evconnlistener_enable(l->evl);
	else
		evconnlistener_disable(l->evl);
}

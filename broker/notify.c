/*
 * notify.c: the sd_notify protocol, spoken by patchbayd itself.
 *
 * systemd (Type=notify) passes $NOTIFY_SOCKET, the path of an AF_UNIX
 * datagram socket ('@' at its start meaning the abstract namespace), and
 * reads one datagram of "KEY=VALUE" lines per notification
 * (sd_notify(3)). With WatchdogSec= it also passes $WATCHDOG_USEC, and
 * $WATCHDOG_PID when the watchdog is meant for one process only: we then
 * send WATCHDOG=1 every half of that interval from a timer of the event
 * loop, so that a loop stuck for longer gets the broker restarted. No
 * libsystemd: the protocol is a sendto(2).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/broker.h"

/* Where notifications go; owned by main(). */
struct notify {
	int			 fd;		/* SOCK_DGRAM, unconnected */
	struct sockaddr_un	 addr;
	socklen_t		 addrlen;
	uint64_t		 watchdog_usec;	/* 0: none */
	struct event		*watchdog;
};

/* The watchdog timer: tell systemd the event loop still turns. */
static void
notify_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	notify_send(arg, "WATCHDOG=1");
}

/*
 * Reads $WATCHDOG_USEC and $WATCHDOG_PID: the interval when the watchdog
 * is ours, else 0.
 */
static uint64_t
notify_watchdog_env(void)
{
	const char		*usec = getenv("WATCHDOG_USEC");
	const char		*pid = getenv("WATCHDOG_PID");
	char			*end;
	unsigned long long	 v;

	if (usec == NULL || *usec == '\0')
		return 0;
	if (pid != NULL && *pid != '\0') {
		errno = 0;
		v = strtoull(pid, &end, 10);
		if (errno != 0 || *end != '\0' || v != (unsigned long long)getpid())
			return 0;
	}
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return 0;
	return v;
}

/* Reads the environment and arms the watchdog; see broker.h. */
int
notify_new(struct event_base *base, struct notify **ret)
{
	const char	*path = getenv("NOTIFY_SOCKET");
	struct notify	*n;
	struct timeval	 tv;
	size_t		 len;
	uint64_t	 half;

	*ret = NULL;
	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return 0;
	len = strlen(path);
	if (len >= sizeof(n->addr.sun_path)) {
		log_warnx("NOTIFY_SOCKET %s: path too long, not notifying "
		    "systemd", path);
		return 0;
	}
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return -ENOMEM;
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@')
		n->addr.sun_path[0] = '\0';	/* abstract namespace */
	n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd == -1) {
		log_warn("NOTIFY_SOCKET %s: socket", path);
		free(n);
		return 0;
	}
	n->watchdog_usec = notify_watchdog_env();
	if (n->watchdog_usec != 0) {
		n->watchdog = event_new(base, -1, EV_PERSIST,
		    notify_watchdog_cb, n);
		if (n->watchdog == NULL) {
			notify_free(n);
			return -ENOMEM;
		}
		half = n->watchdog_usec / 2 > 0 ? n->watchdog_usec / 2 : 1;
		tv.tv_sec = (time_t)(half / 1000000);
		tv.tv_usec = (suseconds_t)(half % 1000000);
		event_add(n->watchdog, &tv);
	}
	*ret = n;
	return 0;
}

/* Sends one state to systemd; see broker.h. */
int
notify_send(struct notify *n, const char *state)
{
	ssize_t	r;

	if (n == NULL)
		return 0;
	do
		r = sendto(n->fd, state, strlen(state), MSG_NOSIGNAL,
		    (struct sockaddr *)&n->addr, n->addrlen);
	while (r == -1 && errno == EINTR);
	if (r == -1) {
		log_debug("NOTIFY_SOCKET: cannot send %s: %s", state,
		    strerror(errno));
		return -errno;
	}
	return 0;
}

/* The watchdog interval; see broker.h. */
uint64_t
notify_watchdog_usec(const struct notify *n)
{
	return n != NULL ? n->watchdog_usec : 0;
}

/* Stops the watchdog and frees n; see broker.h. */
void
notify_free(struct notify *n)
{
	if (n == NULL)
		return;
	if (n->watchdog != NULL)
		event_free(n->watchdog);
	close(n->fd);
	free(n);
}

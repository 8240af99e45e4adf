/*
 * broker.h: patchbayd's internal interfaces.
 *
 * main.c parses flags and the config, builds a struct server and runs the
 * event loop. server.c owns the peers: it accepts connections, runs the
 * handshake and heartbeats, checks what each role may send, and wires
 * transport to the switchboard (decoded packets in, the switchboard's
 * packets out). admin.c answers ADMIN packets. log.c (log.h) logs.
 */
#ifndef PATCHBAY_BROKER_H
#define PATCHBAY_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <msgpack.h>

#include "broker/log.h"
#include "proto/proto.h"
#include "switchboard/switchboard.h"
#include "transport/transport.h"

#define SERVER_MAX_LISTENERS		16
#define SERVER_DEFAULT_HEARTBEAT_MS	10000
#define SERVER_DEFAULT_HELLO_MS		5000
#define SERVER_SHUTDOWN_GRACE_MS	3000

struct event_base;
struct event;
struct peer;
struct supervisor;

/* Settings of a server, from flags and the config file. */
struct server_config {
	uint64_t	 heartbeat_ms;		/* PING after this much silence */
	uint64_t	 hello_timeout_ms;	/* HELLO must come this soon */
	uint32_t	 max_frame;		/* after HELLO */
	uint32_t	 max_connections;	/* 0: unlimited */
	size_t		 out_cap;		/* per-peer pending output */
	char		*token;			/* HELLO token required, or NULL */
	struct switchboard_config sb;
};

/* A connected peer; owned by the server, lives as long as its conn. */
struct peer {
	TAILQ_ENTRY(peer)	 entry;
	struct server		*srv;
	struct conn		*conn;
	uint64_t		 id;
	enum proto_role		 role;		/* ROLE_NONE until HELLO */
	char			 name[64];
	uint64_t		 connected_at;
	uint64_t		 ping_sent;	/* last PING time, 0: none since
						   the last frame */
	uint64_t		 ping_n;
	struct sb_client	*client;
	struct sb_worker	*worker;
	void			*proc;		/* supervised process, or NULL */
	bool			 local;		/* spawned by this broker */
	bool			 registered;	/* worker sent REGISTER */
};
TAILQ_HEAD(peer_list, peer);

/* What the supervisor wants to hear about its processes' connections. */
struct server_hooks {
	/* A spawned process's worker sent its first REGISTER. */
	void	(*registered)(void *proc, void *arg);
	/* A spawned process's connection closed. */
	void	(*detached)(void *proc, void *arg);
	void	*arg;
};

/* The broker: listeners, peers, switchboard, timers. */
struct server {
	struct event_base	*base;
	struct server_config	 cfg;
	struct switchboard	*sb;
	struct listener		*listeners[SERVER_MAX_LISTENERS];
	size_t			 nlisteners;
	struct peer_list	 peers;
	uint32_t		 npeers;
	uint64_t		 next_id;
	uint64_t		 started_at;	/* monotonic ms */
	struct event		*sb_timer;	/* switchboard deadline */
	uint64_t		 sb_timer_at;	/* UINT64_MAX: not armed */
	struct event		*hb_timer;	/* heartbeat and HELLO sweep */
	struct event		*stop_timer;	/* shutdown bound */
	bool			 stopping;
	void			(*stopped_cb)(struct server *, void *);
	void			*stopped_arg;
	struct supervisor	*sv;		/* local pools, or NULL */
	struct server_hooks	 hooks;
	uint64_t		 conns_total;
	uint64_t		 protocol_errors;
};

/* server.c */

/* Creates a server on base; NULL on ENOMEM. */
struct server	*server_new(struct event_base *base,
		    const struct server_config *cfg);

/* Frees everything (connections dropped without goodbye). NULL ok. */
void	 server_free(struct server *srv);

/* Listens on one more endpoint. 0 or -errno with a sentence in err. */
int	 server_listen(struct server *srv, const struct endpoint *ep,
	    char *err);

/*
 * Adopts fd as a worker connection that needs no token (a process this
 * broker spawned). proc is the supervisor's handle, passed back through
 * supervisor_proc_registered() and supervisor_proc_detached(). Returns the
 * peer, or NULL (fd closed).
 */
struct peer	*server_adopt_worker_fd(struct server *srv, int fd, void *proc,
		    const char *name);

/* Stops or restarts dispatching to a local worker's connection. */
void	 server_peer_pause(struct server *srv, struct peer *p, bool paused);

/*
 * Graceful stop: close the listeners (removing socket files), answer queued
 * and running jobs SHUTTING_DOWN, send BYE to every peer, let output drain,
 * then call done (bounded by SERVER_SHUTDOWN_GRACE_MS).
 */
void	 server_shutdown(struct server *srv,
	    void (*done)(struct server *, void *), void *arg);

/* Writes the bound endpoints, one per line, to path (atomically). */
int	 server_write_ready_file(const struct server *srv, const char *path);

/* Milliseconds on the monotonic clock. */
uint64_t	 server_now(void);

/* admin.c */

/* Answers one ADMIN packet from an admin peer with a REPLY. */
void	 admin_handle(struct server *srv, struct peer *p,
	    const struct packet *pkt);

/*
 * Looks up key in an ADMIN args map (NULL when absent or args is NULL).
 * Helpers for verbs to read typed arguments.
 */
const msgpack_object	*admin_arg(const msgpack_object *args,
			    const char *key);

#endif /* PATCHBAY_BROKER_H */

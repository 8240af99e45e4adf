/*
 * broker.h: patchbayd's internal interfaces.
 *
 * main.c parses flags and the config, builds a struct server and a struct
 * supervisor, links them with server_set_supervisor() and runs the event
 * loop until server_stop(). server.c owns the peers: it accepts
 * connections, runs the handshake and heartbeats, checks what each role
 * may send, and wires transport to the switchboard (decoded packets in,
 * the switchboard's packets out); it is also the one stop path
 * (server_stop(), for signals and `ctl shutdown`). admin.c answers ADMIN
 * packets and does all their packing. settings.c and config.c read flags
 * and the config file. log.c logs (stderr, a file or the journal) and
 * writes pools' stdout_log files; notify.c speaks sd_notify to systemd.
 * http.c serves the optional HTTP endpoint (health, readiness, the status
 * snapshot as JSON, the status page) and metrics.c its Prometheus
 * metrics, both reading what the server, the switchboard and the
 * supervisor keep, never on the job path.
 *
 * config.c turns an INI file into a struct config: the [broker] settings
 * and one struct config_pool per [pool:NAME] section, in file order. Every
 * error is a sentence naming the file, the line, the key and what was
 * expected.
 *
 * The supervisor owns the processes: the instances of each pool and the
 * ad-hoc processes of `ctl spawn`. Each process is a slot that survives
 * its children (supervisor.c: slots, pools, SIGCHLD, timers, deferred
 * frees, shutdown). A child is started by supervisor-child.c through
 * util/spawn.c with one end of a socketpair (handed to the server through
 * ops->attach as a pre-authenticated worker connection), a session of its
 * own, a clean descriptor table and environment, and its stdout and stderr
 * logged line by line. When a child is finished (exit status reaped from
 * SIGCHLD and its output at EOF) the restart policy, the backoff and the
 * intensity limit of policy.c decide what comes next; that arithmetic is
 * pure (time and randomness are parameters) so that it is unit-testable.
 * supervisor-verbs.c holds what an operator can do (spawn, stop, restart,
 * pause, resume, scale, reload). supervisor-health.c finds a process
 * unhealthy (start_timeout, PINGs through supervisor_proc_unresponsive(),
 * its pool's health_check) and has it stopped and restarted by its policy.
 * Those four files share supervisor-int.h, which nothing else includes. A
 * pool's setrlimit() limits are part of its children's spawn plan; its
 * cgroup v2 limits live in a cgroup of its own under patchbayd's
 * (cgroup.c).
 */
#ifndef PATCHBAY_BROKER_H
#define PATCHBAY_BROKER_H

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <msgpack.h>
#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "proto/proto.h"
#include "switchboard/switchboard.h"
#include "transport/transport.h"
#include "util/util.h"

/* log.c */

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Sets the level; messages above it are dropped. */
void	 log_set_level(enum log_level level);
/* The level in force: checked before building a debug line per frame. */
extern enum log_level	log_threshold;
static inline enum log_level
log_get_level(void)
{
	return log_threshold;
}
/* Parses "error", "warn", "info", "debug"; -1 when unknown. */
int	 log_level_from_name(const char *name);
const char	*log_level_name(enum log_level level);

/*
 * Sends the lines to path, opened for appending (NULL: back to stderr).
 * Returns 0, or a negative errno (nothing changed).
 */
int	 log_open(const char *path);
/*
 * Opens the log file again at its path, for logrotate (SIGUSR1): lines
 * written after it land in a new file when the old one was renamed.
 * Returns 0 (also when logging to stderr), or a negative errno with the
 * old file kept.
 */
int	 log_reopen(void);
/* The log file's path, or NULL when logging to stderr. */
const char	*log_get_path(void);
/* Closes the log file; later lines go to stderr. */
void	 log_close(void);
/*
 * True when the lines go to the journal: no log file, and stderr is the
 * stream $JOURNAL_STREAM names (its "DEVICE:INODE"). Lines then have no
 * timestamp and start with the sd-daemon priority ("<6>").
 */
bool	 log_to_journal(void);
/* Writes the time now as "2026-12-01T18:03:04.123Z" (at least 25 bytes). */
void	 log_timestamp(char *buf, size_t len);

void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/*
 * A file of timestamped lines, for a pool's stdout_log; owned by whoever
 * opened it.
 */
struct log_file;

/* Opens path for appending. 0, -ENOMEM or the negative errno of open(2). */
int	 log_file_open(const char *path, struct log_file **ret);
/* Opens lf's path again (SIGUSR1). 0, or a negative errno (old file kept). */
int	 log_file_reopen(struct log_file *lf);
/* The path lf was opened with. */
const char	*log_file_path(const struct log_file *lf);
/* Appends "TIME tag: text" as one line (one write). */
void	 log_file_line(struct log_file *lf, const char *tag, const char *text);
/* Closes and frees lf. NULL is a no-op. */
void	 log_file_free(struct log_file *lf);

/* tls.c */

struct ssl_ctx_st;
struct ssl_st;

#define TLS_ROLES_MAX	64

/* One entry of tls_client_roles: a certificate name and its roles. */
struct tls_role_map {
	char		*name;		/* a CN, DNS or email SAN, or "*" */
	unsigned	 roles;		/* 1u << ROLE_* */
};

/*
 * Parses tls_client_roles: "NAME=ROLE[+ROLE]" entries, commas or blanks
 * between (NAME "*" is any certificate tls_client_ca signed). 0 with a
 * vector of *ret_n entries, -EINVAL with a sentence in err, or -ENOMEM.
 */
int	 tls_roles_parse(const char *s, struct tls_role_map **ret,
	    size_t *ret_n, char *err);
void	 tls_roles_free(struct tls_role_map *v, size_t n);

/*
 * Makes a server context from PEM files: cert (the chain, leaf first),
 * key (which must not be readable by other users) and, when client_ca is
 * not NULL, the CA whose certificates clients must present. 0, or -1 with
 * a sentence in err naming the file and what is wrong with it.
 */
int	 tls_ctx_new(const char *cert, const char *key, const char *client_ca,
	    struct ssl_ctx_st **ret, char *err);
void	 tls_ctx_free(struct ssl_ctx_st *ctx);

/*
 * The roles (1u << ROLE_*) the verified client certificate of ssl maps to
 * through map (its CN, DNS and email names, and "*"); 0 for none or no
 * certificate. who gets a description for messages ("certificate
 * CN=worker-1").
 */
unsigned tls_peer_roles(struct ssl_st *ssl, const struct tls_role_map *map,
	    size_t n, char *who, size_t wholen);

/* notify.c */

/*
 * The sd_notify protocol (sd_notify(3)) without libsystemd: datagrams to
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
 * READY=1 once patchbayd listens and its pools are started, STOPPING=1
 * when it begins to shut down, and WATCHDOG=1 every half of
 * $WATCHDOG_USEC when that is set (and $WATCHDOG_PID is unset or ours).
 * Everything is a no-op without $NOTIFY_SOCKET.
 */
struct notify;
struct event_base;

/*
 * Reads the environment and, with a watchdog, arms its timer on base.
 * Returns 0 and *ret (NULL when there is nothing to notify), or -ENOMEM.
 */
int	 notify_new(struct event_base *base, struct notify **ret);
/* Sends one state string ("READY=1"); 0 or a negative errno. NULL ok. */
int	 notify_send(struct notify *n, const char *state);
/* The watchdog interval in microseconds, 0 when none. NULL ok. */
uint64_t	 notify_watchdog_usec(const struct notify *n);
/* Stops the watchdog and frees n. NULL is a no-op. */
void	 notify_free(struct notify *n);

/* settings.c */

/* The [broker] settings, each also a flag of the same name. */
enum settings_id {
	SETTINGS_LISTEN,
	SETTINGS_LOG_LEVEL,
	SETTINGS_HEARTBEAT,
	SETTINGS_HELLO_TIMEOUT,
	SETTINGS_MAX_FRAME,
	SETTINGS_MAX_CONNECTIONS,
	SETTINGS_MAX_CONNECTIONS_PER_UID,
	SETTINGS_MAX_OUTPUT,
	SETTINGS_MAX_QUEUE,
	SETTINGS_MAX_QUEUE_BYTES,
	SETTINGS_MAX_MEMORY,
	SETTINGS_MAX_JOBS_PER_CLIENT,
	SETTINGS_NO_WORKER_WAIT,
	SETTINGS_TOKEN_FILE,
	SETTINGS_READY_FILE,
	SETTINGS_LOG_FILE,
	SETTINGS_HTTP,
	SETTINGS_HTTP_TIMEOUT,
	SETTINGS_SOCKET_MODE,
	SETTINGS_SOCKET_GROUP,
	SETTINGS_CLIENT_UIDS,
	SETTINGS_CLIENT_GIDS,
	SETTINGS_WORKER_UIDS,
	SETTINGS_WORKER_GIDS,
	SETTINGS_ADMIN_UIDS,
	SETTINGS_ADMIN_GIDS,
	SETTINGS_CLIENT_TOKEN_FILE,
	SETTINGS_WORKER_TOKEN_FILE,
	SETTINGS_ADMIN_TOKEN_FILE,
	SETTINGS_ALLOW_INSECURE_TCP,
	SETTINGS_TLS_CERT,
	SETTINGS_TLS_KEY,
	SETTINGS_TLS_CLIENT_CA,
	SETTINGS_TLS_CLIENT_ROLES,
	SETTINGS_WORKER_MAY_RUN,
	SETTINGS_DETACHED_TTL,
	SETTINGS_RESULT_TTL,
	SETTINGS_MAX_RESULT_BYTES,
	SETTINGS_MAX_DEAD,
	SETTINGS_DRAIN_TIMEOUT,
	SETTINGS_STORE,
	SETTINGS_STORE_FSYNC,
	SETTINGS_COUNT
};
_Static_assert(SETTINGS_COUNT <= 64, "settings.given has a bit each");

/* Values of the [broker] settings; embedded, cleared by settings_clear(). */
struct settings {
	char		**listen;		/* endpoints as written,
						   NULL-terminated */
	size_t		  nlisten;
	int		  log_level;		/* enum log_level */
	uint64_t	  heartbeat_ms;
	uint64_t	  hello_timeout_ms;
	uint64_t	  max_frame;
	uint64_t	  max_connections;
	uint64_t	  max_connections_per_uid;
	uint64_t	  max_output;
	uint64_t	  max_queue;
	uint64_t	  max_queue_bytes;
	uint64_t	  max_memory;
	uint64_t	  max_jobs_per_client;
	uint64_t	  no_worker_wait_ms;
	char		 *token_file;
	char		 *ready_file;
	char		 *log_file;
	char		 *http;			/* canonical endpoint, or NULL:
						   no HTTP endpoint */
	uint64_t	  http_timeout_ms;
	uint64_t	  socket_mode;		/* unix socket files */
	uint64_t	  socket_gid;		/* when given */
	char		 *client_uids;		/* as written (parse_ids()), */
	char		 *client_gids;		/* or NULL */
	char		 *worker_uids;
	char		 *worker_gids;
	char		 *admin_uids;
	char		 *admin_gids;
	char		 *client_token_file;
	char		 *worker_token_file;
	char		 *admin_token_file;
	uint64_t	  allow_insecure_tcp;	/* 1: yes */
	char		 *tls_cert;
	char		 *tls_key;
	char		 *tls_client_ca;
	char		 *tls_client_roles;	/* as written, or NULL */
	uint64_t	  worker_may_run;	/* 1: yes */
	uint64_t	  detached_ttl_ms;
	uint64_t	  result_ttl_ms;
	uint64_t	  max_result_bytes;
	uint64_t	  max_dead;
	uint64_t	  drain_timeout_ms;
	char		 *store;		/* path, or NULL: none */
	uint64_t	  store_fsync;		/* 1: yes */
	uint64_t	  given;		/* 1 << SETTINGS_* when set */
};

/*
 * Sets the setting whose config key is name ("hello_timeout"; its flag is
 * --hello-timeout) from value, with the grammar of util/. Returns 0,
 * -ENOENT for an unknown name, -EINVAL or -ERANGE with a sentence
 * "expected ... (got '...')" in err (UTIL_ERRLEN bytes), or -ENOMEM.
 */
int	 settings_set(struct settings *s, const char *name, const char *value,
	    char *err);

/* The id of the setting whose config key is key, or -1. */
int	 settings_find(const char *key);

/* True when the setting was given (by settings_set or settings_merge). */
bool	 settings_given(const struct settings *s, enum settings_id id);

/*
 * Copies into dst every setting that from has and dst was not given (flags
 * first, then the config file); endpoints add up instead. 0, -E2BIG for
 * more than SERVER_MAX_LISTENERS endpoints in all, or -ENOMEM.
 */
int	 settings_merge(struct settings *dst, const struct settings *from);

/* Gives every setting that was not given its default value. */
void	 settings_apply_defaults(struct settings *s);

/* Frees what s holds and zeroes it. */
void	 settings_clear(struct settings *s);

/* Prints each setting as a flag with its help, for `patchbayd --help`. */
void	 settings_usage(FILE *f);

/* The number of settings, and the key and short flag of setting i. */
size_t	 settings_count(void);
const char	*settings_key(size_t i, char *short_flag);

/* config.c */

#define CONFIG_MAX_LINE			4096	/* bytes in one line */
#define CONFIG_MAX_SUCCESS_CODES	16

/* One [pool:NAME] section; owned by its struct config. */
struct config_pool {
	TAILQ_ENTRY(config_pool) entry;
	char		 *name;
	char		 *command;		/* as written */
	char		**argv;			/* command split in words,
						   NULL-terminated */
	int		  instances;		/* default 1; MIN of MIN..MAX */
	int		  instances_max;	/* > instances: on demand */
	char		**functions;		/* what an on-demand pool
						   serves, NULL-terminated,
						   never NULL */
	uint64_t	  scale_up_after_ms;	/* default 200 ms */
	uint64_t	  idle_timeout_ms;	/* default 60 s */
	enum restart_policy restart;		/* default on-failure */
	int		  success_codes[CONFIG_MAX_SUCCESS_CODES];
	int		  nsuccess;		/* default 1: {0} */
	int		  max_restarts;		/* default 5; -1 unlimited */
	uint64_t	  restart_window_ms;	/* default 60 s */
	uint64_t	  backoff_min_ms;	/* default 100 ms */
	uint64_t	  backoff_max_ms;	/* default 30 s */
	uint64_t	  healthy_after_ms;	/* default 10 s */
	int		  stop_signal;		/* default SIGTERM */
	uint64_t	  stop_timeout_ms;	/* drain, default 10 s */
	uint64_t	  kill_timeout_ms;	/* signal to KILL, default 5 s */
	char		 *directory;		/* or NULL */
	char		**environment;		/* "K=V", NULL-terminated,
						   never NULL */
	char		**env_keep;		/* names copied from
						   patchbayd's environment,
						   NULL-terminated, never
						   NULL */
	int		  umask;		/* 0 to 0777, or -1:
						   patchbayd's own */
	char		 *user;			/* or NULL */
	char		 *group;		/* as written, or NULL: the
						   user's own */
	char		 *stdout_log;		/* or NULL: the broker's log */
	struct limits	  limits;		/* limit_*, memory_max, cpu_max,
						   pids_max; none by default */
	char		 *health_check;		/* as written, or NULL: none */
	char		**health_argv;		/* health_check in words, or
						   NULL */
	uint64_t	  health_interval_ms;	/* default 10 s */
	uint64_t	  health_timeout_ms;	/* default 5 s */
	int		  health_retries;	/* default 3 */
	uint64_t	  start_timeout_ms;	/* REGISTER within, default
						   30 s; 0: no limit */
	int		  line;			/* of the section header */
};
TAILQ_HEAD(config_pools, config_pool);

/* A whole config file. Owned by whoever loaded it (then the supervisor). */
struct config {
	char		 *path;
	struct settings	  broker;		/* [broker] */
	struct config_pools pools;
};

/*
 * Loads path. Returns 0 and sets *ret, or a negative errno (-ENOENT,
 * -EINVAL for a parse error, -ENOMEM) with a malloc'ed sentence in *cause
 * such as "FILE:LINE: key 'restart': expected always, on-failure or never
 * (got 'sometimes')".
 */
int	 config_load(const char *path, struct config **ret, char **cause);

/* Frees a config and its pools. NULL is a no-op. */
void	 config_free(struct config *config);

/* An empty config (no listen, no pools, everything unset); NULL on ENOMEM. */
struct config	*config_new(void);

/* A pool with every default and the given name; NULL on ENOMEM. */
struct config_pool	*config_pool_new(const char *name);

/* A deep copy of p (not linked into any list); NULL on ENOMEM. */
struct config_pool	*config_pool_dup(const struct config_pool *p);

/* Frees a pool that is not in a list. NULL is a no-op. */
void	 config_pool_free(struct config_pool *p);

/* The pool called name, or NULL. */
struct config_pool	*config_pool_find(const struct config *config,
			    const char *name);

/* True when every setting of a and b is the same. */
bool	 config_pool_equal(const struct config_pool *a,
	    const struct config_pool *b);

/* True when a and b differ at most in instances. */
bool	 config_pool_equal_but_instances(const struct config_pool *a,
	    const struct config_pool *b);

/* cgroup.c */

/* The broker's delegated cgroup v2 directory; see cgroup.c. */
struct cgroup_root;

/*
 * Finds the cgroup v2 directory patchbayd runs in, from a mountinfo file
 * and a /proc/PID/cgroup file (/proc/self/mountinfo and /proc/self/cgroup
 * but in tests). Returns 0 and sets *ret, or a negative errno with a
 * malloc'ed sentence in *cause saying why cgroup limits cannot be applied
 * ("no cgroup v2 hierarchy is mounted ...").
 */
int	 cgroup_root_open(const char *mountinfo, const char *self,
	    struct cgroup_root **ret, char **cause);

/* Frees a root (nothing on disk changes); NULL is a no-op. */
void	 cgroup_root_free(struct cgroup_root *root);

/* The broker's cgroup directory ("/sys/fs/cgroup/system.slice/x"). */
const char	*cgroup_root_path(const struct cgroup_root *root);

/*
 * Enables the controllers of the cgroup limits in need (LIMITS_* bits) for
 * the children of the root's cgroup, moving patchbayd and its children
 * into the leaf ROOT/broker first when the root's cgroup holds processes.
 * Returns 0, or a negative errno with a sentence in *cause: -ENOTSUP (the
 * controller is not offered: "... offers no memory controller to ... (it
 * offers: hugetlb)"), -EACCES/-EPERM/-EROFS (not writable: "... run it in
 * a cgroup delegated to it (systemd: Delegate=yes)"), -EBUSY (other
 * processes share it).
 */
int	 cgroup_root_enable(struct cgroup_root *root, unsigned need,
	    char **cause);

/*
 * Creates ROOT/pool-NAME when missing and writes l's cgroup limits into
 * it (memory.max, cpu.max, pids.max; "max" for those not set) for each
 * controller enabled. 0, or a negative errno with a sentence in *cause.
 */
int	 cgroup_pool_apply(struct cgroup_root *root, const char *pool,
	    const struct limits *l, char **cause);

/*
 * Opens ROOT/pool-NAME/cgroup.procs for writing (close-on-exec), for a
 * spawn plan's cgroup_fd. 0 and *ret_fd, or a negative errno with a
 * sentence in *cause.
 */
int	 cgroup_pool_open_procs(const struct cgroup_root *root,
	    const char *pool, int *ret_fd, char **cause);

/* The oom_kill count of ROOT/pool-NAME/memory.events (0 if unreadable). */
uint64_t	 cgroup_pool_oom_kills(const struct cgroup_root *root,
		    const char *pool);

/*
 * Removes ROOT/pool-NAME: 0 (also when it was not there), or a negative
 * errno (-EBUSY while a process is still in it).
 */
int	 cgroup_pool_remove(const struct cgroup_root *root, const char *pool);

/* policy.c */

enum supervisor_state {
	SUPERVISOR_STARTING,	/* forked, its worker has not registered */
	SUPERVISOR_RUNNING,	/* its worker has REGISTERed */
	SUPERVISOR_BACKOFF,	/* exited, waiting to be started again */
	SUPERVISOR_PAUSED,	/* SIGSTOPped, no dispatch */
	SUPERVISOR_STOPPING,	/* stop signal sent, waiting for it */
	SUPERVISOR_STOPPED,	/* stopped by an operator (or never started) */
	SUPERVISOR_EXITED,	/* exited and not to be restarted */
	SUPERVISOR_FATAL,	/* gave up: intensity limit or cannot exec */
	SUPERVISOR_UNHEALTHY,	/* failed its health checks: to be stopped,
				   then restarted by the policy */
};

/* Restart bookkeeping of one process, kept by policy_exit_decide(). */
struct policy_history {
	unsigned	 failures;	/* restarts since the last healthy run */
	uint64_t	*times;		/* restarts inside the window, oldest
					   first; room for cap entries */
	unsigned	 ntimes;
	unsigned	 cap;		/* >= max_restarts */
};

/*
 * The delay before restart number failures (1 for the first): the minimum
 * doubled failures - 1 times, capped at the maximum, then jittered down by
 * up to a quarter but never below the minimum. random is uniform.
 */
uint64_t	 policy_backoff_delay(const struct config_pool *cfg,
		    unsigned failures, uint32_t random);

/* True when an exit status is a success for cfg (an exit code listed). */
bool	 policy_exit_success(const struct config_pool *cfg, int wstatus);

/*
 * Counts one restart at now in h: drops the ones older than window_ms and
 * returns false (nothing recorded) when max_restarts are already inside
 * the window. max_restarts -1 never refuses.
 */
bool	 policy_intensity_allow(struct policy_history *h, int max_restarts,
	    uint64_t window_ms, uint64_t now);

/*
 * What follows a child's own exit (not a stop): SUPERVISOR_EXITED when the
 * policy does not restart it, SUPERVISOR_FATAL when the intensity limit is
 * reached, else SUPERVISOR_BACKOFF with the delay in *ret_delay_ms. A run
 * that lasted healthy_after resets the backoff first. Updates h.
 */
enum supervisor_state	 policy_exit_decide(const struct config_pool *cfg,
			    struct policy_history *h, int wstatus,
			    uint64_t uptime_ms, uint64_t now, uint32_t random,
			    uint64_t *ret_delay_ms);

/* What an on-demand pool (instances = MIN..MAX) looks like at one moment. */
struct autoscale_view {
	unsigned	 min, max;
	unsigned	 instances;	/* wanted now */
	unsigned	 starting;	/* started, not registered yet */
	uint32_t	 queued;	/* jobs waiting for its functions */
	uint32_t	 free_slots;	/* free capacity for them, any worker */
	bool		 last_idle;	/* its highest instance runs no job */
	uint64_t	 scale_up_after_ms;
	uint64_t	 idle_timeout_ms;
};

/* What a pool remembers between two decisions; starts zeroed. */
struct autoscale_state {
	uint64_t	 backlog_since;	/* jobs waiting, no free slot: since */
	uint64_t	 idle_since;	/* the highest instance idle: since */
};

enum autoscale_step {
	AUTOSCALE_KEEP,
	AUTOSCALE_UP,		/* start one more instance */
	AUTOSCALE_DOWN,		/* stop the highest instance */
};

/*
 * The next step of an on-demand pool at now: up to MIN at once; one more
 * (up to MAX) once jobs have waited with no free slot for scale_up_after
 * and no instance is still starting; the highest instance stopped (down to
 * MIN) once it has been idle for idle_timeout with nothing waiting. A step
 * restarts the clock it was taken on. Updates st.
 */
enum autoscale_step	 policy_autoscale(struct autoscale_state *st,
			    const struct autoscale_view *v, uint64_t now);

/* True when old -> new is a transition the supervisor may make. */
bool	 policy_transition_valid(enum supervisor_state old,
	    enum supervisor_state new);

/* "starting", "running", ... */
const char	*policy_state_name(enum supervisor_state state);

/* Empties h and sizes it for max_restarts. 0 or -ENOMEM. */
int	 policy_history_init(struct policy_history *h, int max_restarts);

/* Frees what h holds and zeroes it. */
void	 policy_history_clear(struct policy_history *h);

/* supervisor.c, supervisor-child.c, supervisor-verbs.c */

struct supervisor;
struct supervisor_proc;
struct event_base;
struct server;
struct peer;

/*
 * How the supervisor reaches the connections of its processes. The server
 * installs its own with server_set_supervisor(); the unit tests install
 * stubs. Every callback is optional; srv is what supervisor_set_ops() was
 * given.
 */
struct supervisor_ops {
	/*
	 * A child was started: fd (ownership passes) is the broker's end of
	 * its socketpair. Returns the peer of its worker connection, or
	 * NULL when the broker could not take it (fd closed, the child is
	 * then killed as a failed start).
	 */
	struct peer	*(*attach)(struct server *srv,
			    struct supervisor_proc *proc, int fd);
	/*
	 * Stops (paused true) or restarts dispatching to peer. May come
	 * before the worker's REGISTER; it is repeated after it when the
	 * process is still paused.
	 */
	void	 (*set_paused)(struct server *srv, struct peer *peer,
		    bool paused);
	/*
	 * The child of peer is finished: close its connection and never
	 * pass its proc to supervisor_proc_*() for that connection again.
	 * Not called when supervisor_proc_detached() came first.
	 */
	void	 (*detach)(struct server *srv, struct peer *peer);
	/*
	 * Stops dispatching to peer for good (its process is stopping) while
	 * its running jobs go on; unlike set_paused the peer stays under the
	 * liveness checks.
	 */
	void	 (*drain)(struct server *srv, struct peer *peer);
	/* Jobs peer's worker holds (running, or answered but not yet back). */
	unsigned (*running)(struct server *srv, struct peer *peer);
	/*
	 * An on-demand pool serves fn (on: its jobs wait for a worker however
	 * long it takes) or no longer does. Calls pair up.
	 */
	void	 (*standby)(struct server *srv, const char *fn, bool on);
	/* Jobs waiting for fn, and free worker slots for it. */
	void	 (*load)(struct server *srv, const char *fn,
		    uint32_t *ret_queued, uint32_t *ret_free);
	/* Every process is down after supervisor_shutdown(). */
	void	 (*stopped_all)(struct server *srv);
	/* A state change (for tests and metrics). */
	void	 (*changed)(struct server *srv, struct supervisor_proc *proc,
		    enum supervisor_state old, enum supervisor_state new);
};

/* Jobs the workers of the supervised processes are running now. */
unsigned	 supervisor_running_jobs(const struct supervisor *sv);

/*
 * Creates a supervisor on base for config (ownership passes; NULL means no
 * pools). Installs the SIGCHLD event; nothing is started before
 * supervisor_start(). Returns 0 or -ENOMEM.
 */
int	 supervisor_new(struct event_base *base, struct config *config,
	    struct supervisor **ret);

/*
 * Sets what the supervisor calls (a copy of ops) and the server passed to
 * each callback. Once, before supervisor_start(); server_set_supervisor()
 * does it for patchbayd.
 */
void	 supervisor_set_ops(struct supervisor *sv,
	    const struct supervisor_ops *ops, struct server *srv);

/* Starts every instance of every pool, in config order. */
void	 supervisor_start(struct supervisor *sv);

/*
 * Frees everything. Children still alive are killed with SIGKILL (their
 * process groups) and reaped; no callback is called (the broker drops its
 * connections itself). NULL is a no-op.
 */
void	 supervisor_free(struct supervisor *sv);

/*
 * Stops everything for good: ad-hoc processes first, then the pools in
 * reverse config order, each waited for (bounded by its stop_timeout)
 * before the previous one. ops->stopped_all is called (from the event
 * loop) when no child is left. Later verbs are refused.
 */
void	 supervisor_shutdown(struct supervisor *sv);

/* The config in force (replaced by supervisor_reload()). */
const struct config	*supervisor_config(const struct supervisor *sv);

/* The process with that id ("pool/instance" or an ad-hoc id), or NULL. */
struct supervisor_proc	*supervisor_find(const struct supervisor *sv,
			    const char *id);

/*
 * The process after p, or the first when p is NULL: the pools' processes
 * in config and instance order, then the ad-hoc ones in spawn order; NULL
 * after the last. Read-only iteration: nothing may change in between.
 */
struct supervisor_proc	*supervisor_proc_next(const struct supervisor *sv,
			    const struct supervisor_proc *p);

/* Number of processes with a child alive. */
unsigned	 supervisor_nalive(const struct supervisor *sv);

const char	*supervisor_proc_id(const struct supervisor_proc *proc);
/* The pool's name, or NULL for an ad-hoc process. */
const char	*supervisor_proc_pool(const struct supervisor_proc *proc);
/* The instance number (from 1); 0 for an ad-hoc process. */
unsigned	 supervisor_proc_instance(const struct supervisor_proc *proc);
/* The child's pid, 0 when there is none. */
pid_t		 supervisor_proc_pid(const struct supervisor_proc *proc);
enum supervisor_state	 supervisor_proc_state(
			    const struct supervisor_proc *proc);
/* Restarts since the slot was created (operator restarts included). */
unsigned	 supervisor_proc_restarts(const struct supervisor_proc *proc);
/*
 * The messages of the connections of the process's children that are
 * finished (kept, across restarts, as long as the process); the server
 * adds each one as it closes with supervisor_proc_count().
 */
const struct msg_stats	*supervisor_proc_msgs(
			    const struct supervisor_proc *proc);
void		 supervisor_proc_count(struct supervisor_proc *proc,
		    const struct msg_stats *s);
/*
 * Why the process is fatal ("restarted 5 times within 1m", "cannot execute
 * 'x': ..."), or unhealthy ("health check failed 3 times in a row: exit
 * 1", "did not register within 30s"; kept through its restart until a
 * new child is healthy), or NULL when it is neither.
 */
const char	*supervisor_proc_reason(const struct supervisor_proc *proc);
/* The wait status of the last child, or -1 when none finished yet. */
int		 supervisor_proc_last_status(const struct supervisor_proc *proc);
/*
 * How the last child ended, for people: "exit 3", "signal KILL", or with
 * the limit that ended it, "SIGXCPU: limit_cpu 10s", "killed by the OOM
 * killer: memory_max 256MiB", "exit 1 (limit_memory 64MiB)"; NULL when
 * none finished yet.
 */
const char	*supervisor_proc_last_exit(const struct supervisor_proc *proc);
/* The command line, as written in the config or given to spawn. */
const char	*supervisor_proc_command(const struct supervisor_proc *proc);
/* How long its child has been running at now (ms); 0 without a child. */
/*
 * The CPU time (user + system) and resident memory of proc's child, from
 * /proc/PID/stat; false when it has none or /proc does not say.
 */
bool	 supervisor_proc_usage(const struct supervisor_proc *proc,
	    uint64_t *ret_cpu_ms, uint64_t *ret_rss_bytes);

uint64_t	 supervisor_proc_uptime_ms(const struct supervisor_proc *proc,
		    uint64_t now);

/* Describes a wait status for people: "exit 3", "signal KILL". */
void	 supervisor_status_text(int wstatus, char *buf, size_t len);

/* From the broker: the process's worker sent REGISTER. */
void	 supervisor_proc_registered(struct supervisor *sv,
	    struct supervisor_proc *proc);

/* From the broker: the process's connection closed. */
void	 supervisor_proc_detached(struct supervisor *sv,
	    struct supervisor_proc *proc);

/*
 * From the broker: the process's worker did not answer PINGs for
 * silent_ms and its connection is being closed. A process that runs is
 * found unhealthy and restarted by its policy.
 */
void	 supervisor_proc_unresponsive(struct supervisor *sv,
	    struct supervisor_proc *proc, uint64_t silent_ms);

/* supervisor-health.c: what the checks of a process say. */

enum supervisor_health {
	HEALTH_NONE,		/* nothing checks it (or no child) */
	HEALTH_PENDING,		/* checked, no verdict yet for this child */
	HEALTH_OK,		/* every check it has passed */
	HEALTH_FAILING,		/* health_check failed, fewer times than
				   health_retries in a row */
	HEALTH_UNHEALTHY,	/* found unhealthy; until a new child is
				   ok again */
};

/* What `ctl health` shows of a process; strings live in the slot. */
struct supervisor_health_info {
	enum supervisor_health	 health;
	const char		*check;		/* health_check, or NULL */
	unsigned		 failures;	/* in a row */
	unsigned		 retries;	/* health_retries */
	uint64_t		 checked_at;	/* last check's end, ms; 0:
						   never */
	const char		*result;	/* "exit 1", or NULL */
	const char		*output;	/* its output, or NULL */
	unsigned		 times_unhealthy;
	uint64_t		 unhealthy_at;	/* ms, 0: never */
	const char		*reason;	/* why, the last time; NULL:
						   never */
};

/* The health of a process. */
enum supervisor_health	 supervisor_proc_health(
			    const struct supervisor_proc *proc);

/* "none", "pending", "ok", "failing", "unhealthy". */
const char	*supervisor_health_name(enum supervisor_health health);

/* The health for people: its name, or "failing 1 of 3". */
void	 supervisor_proc_health_text(const struct supervisor_proc *proc,
	    char *buf, size_t len);

/* Fills *ret with what the checks of proc said. */
void	 supervisor_proc_health_info(const struct supervisor_proc *proc,
	    struct supervisor_health_info *ret);

/* Times the process was found unhealthy since its slot was created. */
unsigned	 supervisor_proc_times_unhealthy(
		    const struct supervisor_proc *proc);

/*
 * Operator verbs (supervisor-verbs.c). Each returns 0, or a negative errno
 * with a malloc'ed sentence in *cause: -ENOENT "unknown id 'x'", -EINVAL
 * for a bad argument, -EBUSY for a wrong state ("'x' is running, not
 * paused"), -EEXIST, -ESHUTDOWN after supervisor_shutdown(), -EPERM, or
 * the errno of a command that cannot be executed. An id is
 * "pool/instance", an ad-hoc id or a whole pool's name.
 */

/*
 * Starts an ad-hoc process id running argv (argv[0] searched in PATH),
 * with the setrlimit() limits of limits (NULL: none; cgroup limits are
 * refused, they are a pool's). Refused when id is in use by a live
 * process (a finished one is replaced) or names a pool; a command that
 * cannot be executed, or a limit above patchbayd's own hard limit, is an
 * error and leaves nothing behind.
 */
int	 supervisor_spawn(struct supervisor *sv, const char *id,
	    const char *const *argv, enum restart_policy restart,
	    int max_restarts, const struct limits *limits, char **cause);

/*
 * Stops id: no new jobs for its worker, which gets up to timeout_ms (0:
 * the pool's stop_timeout) to finish the running ones; then its stop
 * signal to the process group, SIGKILL after the pool's kill_timeout.
 * force: SIGKILL at once. A stopped process is not restarted until
 * supervisor_restart().
 */
int	 supervisor_stop(struct supervisor *sv, const char *id,
	    uint64_t timeout_ms, bool force, char **cause);

/* Stops id if it runs and starts it again; clears fatal and backoff. */
int	 supervisor_restart(struct supervisor *sv, const char *id,
	    char **cause);

/* SIGSTOP to the group and no more dispatch to its worker. */
int	 supervisor_pause(struct supervisor *sv, const char *id, char **cause);

/* SIGCONT to the group and dispatch again. */
int	 supervisor_resume(struct supervisor *sv, const char *id,
	    char **cause);

/* Sets the number of instances of pool (0 to LIMIT_INSTANCES_MAX). */
int	 supervisor_scale(struct supervisor *sv, const char *pool,
	    unsigned n, char **cause);

/*
 * Applies a newly loaded config (ownership passes on success only): new
 * pools start, removed pools stop, changed pools restart, pools that
 * changed only in instances are scaled, unchanged pools are not touched.
 */
int	 supervisor_reload(struct supervisor *sv, struct config *config,
	    char **cause);

/*
 * Opens every pool's stdout_log file again at its path (SIGUSR1, for
 * logrotate). A file that cannot be opened is reported and the old one
 * kept.
 */
void	 supervisor_reopen_logs(struct supervisor *sv);

/*
 * Reads the config file in force again (its path) and applies it with
 * supervisor_reload(); on any error the running config stays. When the
 * file's log_level changed, it is applied. For SIGHUP and `ctl reload`.
 */
int	 supervisor_reload_file(struct supervisor *sv, char **cause);

/* server.c, admin.c */

#define SERVER_MAX_LISTENERS		16
#define SERVER_DEFAULT_HEARTBEAT_MS	10000
#define SERVER_DEFAULT_HELLO_MS		5000
#define SERVER_SHUTDOWN_GRACE_MS	3000
#define SERVER_DRAIN_POLL_MS		100	/* `ctl drain` looks again */
#define SERVER_TRIM_JOBS		1000	/* a burst worth giving back */
#define SERVER_TRIM_PEERS		1000	/* likewise, in connections */
#define SERVER_FD_RESERVE		64	/* descriptors kept back from
						   connections */

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
	uint32_t	 max_connections_per_uid; /* 0: unlimited */
	size_t		 out_cap;		/* per-peer pending output */
	/*
	 * HELLO tokens (owned; see server_tokens_read()): token_file's, for
	 * every role, and each role's own file's, which wins for its role.
	 * A file may hold several (one per line), for rotation. NULL: none.
	 */
	char		*token_path;
	char	       **tokens;
	char		*role_token_path[ROLE_ADMIN + 1];
	char	       **role_tokens[ROLE_ADMIN + 1];
	uint64_t	 drain_timeout_ms;	/* `ctl drain`'s default bound */
	bool		 worker_may_run;	/* workers may RUN and CANCEL */
	struct listener_perms socket_perms;	/* unix socket files */
	/*
	 * Who may take each role over a unix socket (index: enum proto_role),
	 * besides patchbayd's own user and root.
	 */
	struct id_list	 role_uids[ROLE_ADMIN + 1];
	struct id_list	 role_gids[ROLE_ADMIN + 1];
	/*
	 * TLS (tls: endpoints): the files, read again on reload, the context
	 * made from them (owned; NULL without a tls: endpoint), and which
	 * roles a client certificate's names may take (none: client or
	 * worker for any certificate tls_client_ca signed).
	 */
	char		*tls_cert;
	char		*tls_key;
	char		*tls_client_ca;
	struct ssl_ctx_st *tls_ctx;
	struct tls_role_map *tls_roles;
	size_t		 ntls_roles;
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
	struct sb_client	*client;	/* a client's, or a worker's
						   once it RUNs (worker_may_run) */
	struct sb_worker	*worker;
	struct supervisor_proc	*proc;		/* its process, when spawned */
	bool			 local;		/* spawned by this broker */
	bool			 registered;	/* worker sent REGISTER */
	bool			 uid_counted;	/* in its uid's count */
	bool			 paused;	/* its process is SIGSTOPped */
};

/* Connections of one uid, for max_connections_per_uid. */
struct uid_count {
	UT_hash_handle		 hh;
	uid_t			 uid;
	uint32_t		 n;
};
TAILQ_HEAD(peer_list, peer);

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
	struct event		*stop_ev;	/* begins server_stop() */
	struct event		*drain_ev;	/* polls a draining broker */
	bool			 draining;	/* server_drain() */
	uint64_t		 drain_started;	/* ms */
	uint64_t		 drain_until;
	bool			 stop_requested;	/* server_stop() */
	bool			 stopping;	/* peers being sent away */
	bool			 stop_after_sv;	/* ...once the processes are */
	bool			 peers_down;	/* every peer gone (or timed
						   out) */
	bool			 sv_down;	/* every process stopped */
	void			(*stopped_cb)(struct server *, void *);
	void			*stopped_arg;
	struct supervisor	*sv;		/* from server_set_supervisor() */
	struct notify		*notify;	/* main()'s, or NULL: told
						   STOPPING=1 by server_stop() */
	uint64_t		 conns_total;
	uint32_t		 peers_peak;	/* most connections since the
						   last give-back */
	bool			 trim_tail;	/* jobs were alive at it */
	struct msg_stats	 msgs_closed;	/* connections gone */
	struct uid_count	*uids;		/* Unix peers by uid */
	struct http		*http;		/* main()'s, or NULL: for the
						   ready file */
	struct jobstore		*js;		/* the store, or NULL */
};

/* jobstore.c */

/*
 * Opens the store of detached jobs at path (`store`), takes back the jobs
 * it holds into srv's switchboard (logged with their count and the time
 * it took) and from then on writes every detached job to it, one
 * transaction per event loop turn; a detached RUN's ACCEPTED goes out
 * only once that turn's transaction is committed. Before server_listen().
 * 0, or -1 with a sentence naming the path and the reason in err
 * (UTIL_ERRLEN bytes).
 */
int	 jobstore_open(struct server *srv, const char *path, bool fsync,
	    char *err);

/* Commits what is left and closes the store; server_free() calls it. */
void	 jobstore_close(struct server *srv);

/*
 * The switchboard's ACCEPTED for peer p: sent once the turn's transaction
 * is committed, or replaced by RESULT STORE_FAILED when it fails. True
 * when held (a store is open), false: send it now.
 */
bool	 jobstore_hold_ack(struct server *srv, struct peer *p,
	    const struct packet *pkt);

/* Peer p is gone: its held ACCEPTEDs with it. */
void	 jobstore_peer_gone(struct server *srv, struct peer *p);

/* The sweep: a failing store is tried again (about once a second). */
void	 jobstore_sweep(struct server *srv);

/* What the store has done, for `status` and /metrics. */
struct jobstore_stats {
	const char	*path;
	bool		 failing;		/* cannot write now */
	uint64_t	 commits;		/* transactions committed */
	uint64_t	 commit_failures;
	uint64_t	 restored;		/* jobs taken back at start */
};

/* Fills *ret; false (and nothing filled) when there is no store. */
bool	 jobstore_stats(const struct server *srv, struct jobstore_stats *ret);

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
 * Makes sv the supervisor of srv's local workers, both ways at once, and
 * is the only link between them: sv's children's sockets become worker
 * connections that need no token (named after the process, paused with
 * it, closed when it is finished), and srv tells sv when such a worker
 * registers or its connection closes (supervisor_proc_registered() and
 * supervisor_proc_detached()). Once, before supervisor_start(); sv stays
 * the caller's to free, after server_stop() or before server_free().
 */
void	 server_set_supervisor(struct server *srv, struct supervisor *sv);

/*
 * The one way patchbayd stops, for SIGINT, SIGTERM and `ctl shutdown`:
 * logs the reason (a printf format) at info, tells systemd STOPPING=1
 * (srv->notify), then, from the event loop (so
 * that an answer to whoever asked goes out first), stops the supervisor's
 * processes and the server together: close the listeners (removing socket
 * files), answer queued and running jobs SHUTTING_DOWN, send BYE to every
 * peer and let output drain (bounded by SERVER_SHUTDOWN_GRACE_MS). When
 * both the peers and the processes are gone it leaves the event loop.
 * Returns 0, or -EALREADY (nothing logged) when a stop was already asked.
 */
int	 server_stop(struct server *srv, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/*
 * `ctl drain`: refuses new RUNs (SHUTTING_DOWN, "the broker is draining")
 * while the jobs already taken, queued or running, go on; once none is
 * left, or after timeout_ms (0: drain_timeout), server_stop(). Writes
 * the jobs left now to ret_running and ret_queued. Returns 0, -EALREADY
 * when stopping or draining already, or -ENOMEM.
 */
int	 server_drain(struct server *srv, uint64_t timeout_ms,
	    uint32_t *ret_running, uint32_t *ret_queued);

/*
 * Reads a token file: one token per line (empty lines skipped; several for
 * a rotation), at most 16 of at most 255 bytes. A file that other users
 * may read, or that holds none, is refused. Returns 0 with a
 * NULL-terminated vector in *ret, or -1 with a sentence in err (which
 * names the file, never a token).
 */
int	 server_tokens_read(const char *path, char ***ret, char *err);

/* Frees a token vector, wiping the tokens first. NULL ok. */
void	 server_tokens_free(char **tokens);

/*
 * Refuses a secret file (what names its setting: "token file", "tls_key")
 * at path whose mode lets other users read it: -1 with a sentence in err
 * that says how to mend it, else 0.
 */
int	 server_secret_private(const char *what, const char *path, mode_t mode,
	    char *err);

/*
 * Reads every token file of srv's config again (`ctl reload`, SIGHUP),
 * and the TLS certificate, key and client CA: all or nothing. 0, or -1
 * with a sentence in err (the old tokens and certificates stay).
 */
int	 server_credentials_reload(struct server *srv, char *err);

/* True when srv's config names a token file or serves TLS. */
bool	 server_has_credential_files(const struct server *srv);

/* The messages of every connection since the start, closed or not. */
void	 server_msg_totals(const struct server *srv, struct msg_stats *ret);

/*
 * The messages of one process: its finished connections and the live one.
 */
void	 server_proc_msgs(const struct server *srv,
	    const struct supervisor_proc *proc, struct msg_stats *ret);

/*
 * Writes the bound endpoints, one per line, to path (atomically), and the
 * HTTP endpoint's as "http:HOST:PORT" when srv->http is set.
 */
int	 server_write_ready_file(const struct server *srv, const char *path);

/* admin.c */

/* Answers one ADMIN packet from an admin peer with a REPLY. */
void	 admin_handle(struct server *srv, struct peer *p,
	    const struct packet *pkt);

/*
 * Packs the status snapshot, for the `status` verb and the HTTP endpoint's
 * /status.json: a map of counters and gauges (version, pid, uptime_ms,
 * connections, ..., results by status, settings) and the lists
 * worker_list, process_list and function_list as the `workers`, `ps` and
 * `functions` verbs pack them, and recent: the last ADMIN_STATUS_RECENT
 * job outcomes, newest first, {id, function, status, attempts, age_ms,
 * error}. Returns 0.
 */
#define ADMIN_STATUS_RECENT	20
int	 admin_pack_status(struct server *srv, msgpack_packer *pk);

/*
 * Packs `ps`: an array with one map per process of sv (NULL: none), {id,
 * pool, instance, pid, state, restarts, uptime_ms, command, last_exit,
 * reason}; pool, instance, pid, last_exit and reason (why it is fatal)
 * are nil when they do not apply.
 * Returns 0, as a verb does.
 */
int	 admin_pack_ps(const struct supervisor *sv, msgpack_packer *pk);

/* Pack a key and its value, for the verbs' maps. */
void	 admin_pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v);
void	 admin_pack_kv_str(msgpack_packer *pk, const char *key,
	    const char *v);

/*
 * Looks up key in an ADMIN args map (NULL when absent or args is NULL).
 * Helpers for verbs to read typed arguments.
 */
const msgpack_object	*admin_arg(const msgpack_object *args,
			    const char *key);

/*
 * admin-stats.c: the statistics verbs; each packs its answer into pk and
 * returns 0, or returns -1 with a sentence in err (PROTO_ERRLEN bytes).
 */
int	 admin_stats_stats(struct server *srv, struct peer *p,
	    const msgpack_object *args, msgpack_packer *pk, char *err);
int	 admin_stats_count(struct server *srv, struct peer *p,
	    const msgpack_object *args, msgpack_packer *pk, char *err);
int	 admin_stats_jobs(struct server *srv, struct peer *p,
	    const msgpack_object *args, msgpack_packer *pk, char *err);
int	 admin_stats_queues(struct server *srv, struct peer *p,
	    const msgpack_object *args, msgpack_packer *pk, char *err);

/* http.c, metrics.c, status_html.c (generated from status.html) */

#define HTTP_MAX_CONNECTIONS	32		/* at once; more wait */
#define HTTP_MAX_HEADERS	8192		/* bytes; more: 413 */
#define HTTP_MAX_BODY		4096		/* bytes; more: 413 */
#define HTTP_HISTORY		600		/* seconds of /history.json */

struct http;

/*
 * Parses the `http` setting: tcp:HOST:PORT, tcp:[V6]:PORT, or a port
 * alone for 127.0.0.1:PORT. Returns 0, or -EINVAL with a sentence in err
 * (UTIL_ERRLEN bytes).
 */
int	 http_endpoint_parse(const char *s, struct endpoint *ret, char *err);

/*
 * Serves the HTTP endpoint for srv on endpoint (as http_endpoint_parse()
 * reads it; port 0 for any), closing connections that are idle, or do not
 * send a whole request, for timeout_ms. Returns 0 and sets *ret, or a
 * negative errno with a sentence in err (UTIL_ERRLEN bytes).
 */
int	 http_new(struct server *srv, const char *endpoint,
	    uint64_t timeout_ms, struct http **ret, char *err);

/* Closes every HTTP connection and frees everything. NULL is a no-op. */
void	 http_free(struct http *http);

/* The endpoint as bound: "tcp:127.0.0.1:9464" (the real port for 0). */
const char	*http_endpoint(const struct http *http);

/*
 * The broker has started (listeners bound, pools started): /readyz says
 * ready once no pool's process is starting any more.
 */
void	 http_set_started(struct http *http);

/*
 * Writes srv's metrics to f in the Prometheus text format 0.0.4. Returns
 * 0, -ENOMEM or -EIO.
 */
int	 metrics_write(struct server *srv, FILE *f);

/* The status page (broker/status.html), embedded at build time. */
extern const char	 http_status_html[];
extern const size_t	 http_status_html_len;

#endif /* PATCHBAY_BROKER_H */

/*
 * supervisor-int.h: the supervisor's own structures, shared by its three
 * files and by nobody else (the rest of the broker goes through the
 * supervisor_* functions of broker.h).
 *
 * supervisor.c owns the slots, the pools, SIGCHLD, the timers, the
 * deferred frees and the shutdown; supervisor-child.c starts one child of
 * a slot through util/spawn.c and logs its output; supervisor-verbs.c
 * holds the operator verbs (spawn, stop, restart, pause, resume, scale,
 * reload); supervisor-health.c runs the health checks and start_timeout,
 * and finds a process unhealthy.
 */
#ifndef PATCHBAY_SUPERVISOR_INT_H
#define PATCHBAY_SUPERVISOR_INT_H

#include <sys/queue.h>

#include "broker/broker.h"

struct event;
struct evbuffer;

#ifndef TAILQ_FOREACH_SAFE	/* BSD has it, glibc does not */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

/* What happens when a stopping child is finished. */
enum supervisor_after {
	AFTER_NONE,		/* stays stopped */
	AFTER_RESTART,		/* started again at once */
	AFTER_REMOVE,		/* the slot is freed */
	AFTER_UNHEALTHY,	/* the restart policy decides, as for a
				   failure */
};

/* What the one timer of a process is armed for. */
enum supervisor_timer {
	TIMER_NONE,
	TIMER_BACKOFF,		/* start again */
	TIMER_DRAIN,		/* stopping: are its jobs done yet? */
	TIMER_KILL,		/* kill_timeout ran out: SIGKILL */
	TIMER_EOF,		/* exited, output still open: give up on it */
};

/* What the health timer of a process is armed for. */
enum supervisor_health_timer {
	HEALTH_TIMER_NONE,
	HEALTH_TIMER_START,	/* start_timeout: it has not registered */
	HEALTH_TIMER_NEXT,	/* health_interval: run the next check */
	HEALTH_TIMER_CHECK,	/* health_timeout: the check is too slow */
};

#define SUPERVISOR_HEALTH_OUT_HALF	256	/* output kept: head, tail */

/*
 * The health of a slot: its timer, the check running (a child of its
 * own), and what the last checks said. Embedded in the slot; owned by
 * supervisor-health.c.
 */
struct supervisor_checks {
	struct event		*timer;
	enum supervisor_health_timer timer_kind;

	/* The check running; pid is 0 when there is none. */
	pid_t			 pid;
	bool			 abandoned;	/* killed: it does not count */
	bool			 timed_out;
	int			 out_fd;	/* -1: closed */
	struct event		*out_ev;
	char			 head[SUPERVISOR_HEALTH_OUT_HALF];
	char			 tail[SUPERVISOR_HEALTH_OUT_HALF];
	size_t			 nhead, ntail;
	uint64_t		 nout;		/* bytes it printed */

	/* The current child's. */
	unsigned		 failures;	/* checks failed in a row */
	bool			 passed;	/* a check passed */
	bool			 lost_conn;	/* its connection closed */

	/* Kept across children. */
	bool			 unhealthy;	/* until a new child is ok */
	unsigned		 times_unhealthy;
	uint64_t		 unhealthy_at;	/* ms */
	char			 reason[200];	/* why, the last time */
	uint64_t		 checked_at;	/* last check's end, 0: never */
	char			 result[96];	/* "exit 1", "timed out..." */
	char			 output[2 * SUPERVISOR_HEALTH_OUT_HALF + 32];
};

TAILQ_HEAD(supervisor_procs, supervisor_proc);

/*
 * A slot and its current child; owned by its pool or the ad-hoc list,
 * then (once removed) by the supervisor's list of slots to free.
 */
struct supervisor_proc {
	TAILQ_ENTRY(supervisor_proc) entry;
	struct supervisor	*sv;
	struct supervisor_pool	*pool;		/* NULL: ad-hoc */
	struct config_pool	*own_cfg;	/* ad-hoc only */
	char			 id[LIMIT_NAME_MAX + 16];
	unsigned		 instance;	/* from 1; 0 for ad-hoc */
	enum supervisor_state	 state;
	enum supervisor_after	 after;
	struct policy_history	 hist;
	unsigned		 restarts;
	int			 last_status;	/* -1: none yet */
	char			 last_exit[160]; /* last_status for people,
						   with the limit that
						   ended it */
	bool			 removed;	/* unlinked, waiting to be freed */
	struct msg_stats	 msgs;		/* its finished connections */
	char			 reason[200];	/* why it is fatal; "" else */

	/* The current child; pid is 0 when there is none. */
	pid_t			 pid;
	uint64_t		 started_at;
	bool			 exited;	/* status reaped */
	int			 wstatus;
	char			 exit_text[160]; /* wstatus for people */
	bool			 in_cgroup;	/* joined its pool's cgroup */
	uint64_t		 oom_kills;	/* of that cgroup at start */
	uint64_t		 exited_at;
	int			 out_fd;	/* -1 once at EOF */
	struct event		*out_ev;
	struct evbuffer		*out_buf;
	struct peer		*peer;		/* from ops->attach */
	bool			 registered;

	struct event		*timer;
	enum supervisor_timer	 timer_kind;
	uint64_t		 drain_until;	/* TIMER_DRAIN's deadline, ms */
	unsigned		 drained;	/* jobs it had when asked to stop */
	unsigned		 drain_left;	/* of those, running at its signal */

	struct supervisor_checks health;
};

/* One pool of the config; owned by the supervisor. */
struct supervisor_pool {
	TAILQ_ENTRY(supervisor_pool) entry;
	struct supervisor	*sv;
	struct config_pool	*cfg;		/* owned copy */
	struct config_pool	*next_cfg;	/* reload: used once all are
						   gone */
	bool			 removing;	/* reload removed it */
	unsigned		 instances;	/* wanted now (scale) */
	struct supervisor_procs	 procs;		/* by instance */
	struct log_file		*out_log;	/* cfg->stdout_log, opened
						   when a child starts; NULL:
						   the broker's log */
	struct autoscale_state	 scale;		/* on demand: its clocks */
	bool			 standby;	/* ops->standby(on) was told */
	bool			 cg_made;	/* its cgroup exists */
	bool			 cg_warned;	/* said why it has none */
};
TAILQ_HEAD(supervisor_pools, supervisor_pool);

/* The supervisor; owned by the broker. */
struct supervisor {
	struct event_base	*base;
	struct config		*config;
	struct supervisor_ops	 ops;
	struct server		*srv;		/* passed to ops */
	struct event		*sigchld;
	struct event		*done_ev;	/* deferred ops->stopped_all */
	struct event		*free_ev;	/* frees the removed slots */
	struct event		*scale_ev;	/* on-demand pools' tick */
	struct supervisor_pools	 pools;		/* config order */
	struct supervisor_procs	 adhoc;		/* spawn order */
	struct supervisor_procs	 removed;	/* to free from free_ev */
	bool			 shutting_down;
	unsigned		 shutdown_alive;	/* alive when it began */
	bool			 done_sent;
	uint64_t		 rng;
	struct cgroup_root	*cg;		/* once a pool needed it */
	char			*cg_error;	/* why there is no sv->cg */
	bool			 cg_ready;	/* said where the cgroups go */
};

#define SUPERVISOR_FOREACH(sv, p)					\
	for ((p) = supervisor_proc_next((sv), NULL); (p) != NULL;	\
	    (p) = supervisor_proc_next((sv), (p)))

/* supervisor.c */

/* Sets *cause from a printf format (when cause is not NULL). */
void	 supervisor_cause(char **cause, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* The settings of a process: its pool's, or its own for ad-hoc ones. */
const struct config_pool	*supervisor_proc_cfg(
				    const struct supervisor_proc *p);

/* The one place a process changes state; logs old -> new at info. */
void	 supervisor_set_state(struct supervisor_proc *p,
	    enum supervisor_state new);

/* Sends sig to the child's process group (it leads its own session). */
void	 supervisor_signal(struct supervisor_proc *p, int sig);

/* The pool called name, or NULL. */
struct supervisor_pool	*supervisor_pool_find(const struct supervisor *sv,
			    const char *name);

/* A new slot (not linked, stopped, no child); NULL on ENOMEM. */
struct supervisor_proc	*supervisor_proc_new(struct supervisor *sv,
			    struct supervisor_pool *pool, unsigned instance,
			    const char *id, struct config_pool *own_cfg);

/* Frees a slot that was never linked and has no child. */
void	 supervisor_proc_free(struct supervisor_proc *p);

/* Unlinks a slot that has no child; it is freed from the event loop. */
void	 supervisor_proc_remove(struct supervisor_proc *p);

/* Starts p's child; a failure is fatal or a failed run, as it deserves. */
void	 supervisor_proc_start(struct supervisor_proc *p);

/* Sends the stop signal to p (or settles it when it has no child). */
void	 supervisor_proc_stop(struct supervisor_proc *p, uint64_t timeout_ms,
	    bool force, enum supervisor_after after);

/* Tells the broker to stop or resume dispatching to p's worker. */
void	 supervisor_proc_set_paused(struct supervisor_proc *p, bool paused);

/* Creates the missing slots up to pool->instances and trims the rest. */
int	 supervisor_pool_sync(struct supervisor_pool *pool);

/* A new pool for cfg (ownership passes), linked at the tail. */
struct supervisor_pool	*supervisor_pool_new(struct supervisor *sv,
			    struct config_pool *cfg);

/* Once a retiring pool's slots are gone: free it, or start its new self. */
void	 supervisor_pool_check(struct supervisor_pool *pool);

/*
 * Tells the broker that pool serves its cfg's functions on demand (their
 * jobs wait for the instance it will start), or no longer (on false).
 */
void	 supervisor_pool_standby(struct supervisor_pool *pool, bool on);

/* True for a pool of instances = MIN..MAX. */
bool	 supervisor_pool_on_demand(const struct supervisor_pool *pool);

/* Runs the on-demand pools' tick while there is one (after a reload). */
void	 supervisor_scale_arm(struct supervisor *sv);

/* Stops every slot of a pool for good (reload). */
void	 supervisor_pool_retire(struct supervisor_pool *pool);

/* Finishes p's child when both its status and its output's EOF are in. */
void	 supervisor_check_done(struct supervisor_proc *p);

/* supervisor-child.c */

/*
 * Starts a child for p, watches its output and hands its socket to the
 * broker. Returns 0, or a negative errno with a sentence in *cause; on
 * failure *permanent tells whether trying again cannot help (the command
 * cannot be executed) rather than a lack of resources.
 */
int	 supervisor_child_start(struct supervisor_proc *p, char **cause,
	    bool *permanent);

/*
 * Opens, changes or closes pool->out_log to match its config's
 * stdout_log (a failure is logged: the output then goes to the broker's
 * log).
 */
void	 supervisor_child_sync_out_log(struct supervisor_pool *pool);

/* Closes the child's output pipe, after logging what is left of it. */
void	 supervisor_child_output_close(struct supervisor_proc *p);

/*
 * Prepares patchbayd's cgroup before any child is started, when a pool of
 * the config has cgroup limits (a failure is left for each such pool to
 * report when it starts).
 */
void	 supervisor_child_cgroup_setup(struct supervisor *sv);

/* Removes a pool's cgroup, if it has one (a failure is logged). */
void	 supervisor_child_cgroup_remove(struct supervisor_pool *pool);

/*
 * Describes how p's child ended (wstatus, having used cpu_ms of CPU) into
 * buf, naming the limit that ended it when one did. Returns true when a
 * limit is named.
 */
bool	 supervisor_child_exit_text(struct supervisor_proc *p, int wstatus,
	    uint64_t cpu_ms, char *buf, size_t len);

/* RUNNING, or STARTING for a pool's worker that has not registered. */
enum supervisor_state	 supervisor_proc_up_state(
			    const struct supervisor_proc *p);

/*
 * Prepares to start the command of p: its user, its environment, and the
 * program found in its PATH. Returns 0, or a negative errno with a
 * sentence in *cause (plan and user cleared).
 */
int	 supervisor_child_plan(struct supervisor_proc *p,
	    struct spawn_plan *plan, struct spawn_user *user, char **cause);

/* supervisor-health.c */

/* Sets up p's health (its timer); 0 or -ENOMEM. */
int	 supervisor_health_init(struct supervisor_proc *p);

/* Kills p's check if it runs and frees what its health holds. */
void	 supervisor_health_clear(struct supervisor_proc *p);

/* A new child of p was started: its own checks begin from nothing. */
void	 supervisor_health_child_started(struct supervisor_proc *p);

/*
 * p went from old to new (supervisor_set_state()): arms start_timeout
 * for a pool's process that waits to register, runs the checks while it
 * is running, and stops both otherwise.
 */
void	 supervisor_health_state(struct supervisor_proc *p,
	    enum supervisor_state old, enum supervisor_state new);

/*
 * The process whose health check has pid, or NULL: SIGCHLD's reaper
 * then calls supervisor_health_exited() with its status.
 */
struct supervisor_proc	*supervisor_health_find_pid(struct supervisor *sv,
			    pid_t pid);

/* p's health check exited with wstatus (reaped). */
void	 supervisor_health_exited(struct supervisor_proc *p, int wstatus);

/* Kills p's health check and reaps it at once, for supervisor_free(). */
void	 supervisor_health_kill_now(struct supervisor_proc *p);

#endif /* PATCHBAY_SUPERVISOR_INT_H */

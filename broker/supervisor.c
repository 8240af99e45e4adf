/*
 * supervisor.c: patchbayd's local worker processes.
 *
 * The supervisor owns one struct supervisor_pool per [pool:NAME] of the
 * config (with its own copy of the pool's settings) and a list of ad-hoc
 * processes started by `ctl spawn`. A struct supervisor_proc is a slot
 * ("thumbs/3" or an ad-hoc id) that outlives its children: it keeps the
 * state, the restart history and at most one child at a time.
 *
 * A child is started synchronously: fork, then in the child a new session
 * (so a process group of its own), PR_SET_PDEATHSIG, a clean descriptor
 * table (0: /dev/null, 1 and 2: a pipe to us, 3: its end of a socketpair),
 * a fixed environment, chdir, the user, execve. A close-on-exec pipe tells
 * the parent whether execve happened, so a command that cannot be run is
 * an error at once and not a process that dies later. The broker's end of
 * the socketpair goes to ops->attach, which makes it a worker connection.
 *
 * A child is finished when both its exit status (SIGCHLD through libevent,
 * then a wait loop) and the EOF of its output pipe have arrived, as tmux's
 * job.c does. Then, unless an operator stopped it, the restart policy, the
 * backoff and the intensity limit (pure functions at the top of this file)
 * pick the next state. Every state change goes through
 * supervisor_set_state().
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/broker.h"

#ifndef TAILQ_FOREACH_SAFE	/* BSD has it, glibc does not */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#define SUPERVISOR_CHILD_FD		3	/* PATCHBAY_FD in children */
#define SUPERVISOR_EOF_GRACE_MS		2000	/* output after exit */
#define SUPERVISOR_MAX_LOG_LINE		8192
#define SUPERVISOR_DEFAULT_PATH		"/usr/local/bin:/usr/bin:/bin"

/* What happens when a stopping child is finished. */
enum supervisor_after {
	AFTER_NONE,		/* stays stopped */
	AFTER_RESTART,		/* started again at once */
	AFTER_REMOVE,		/* the slot is freed */
};

/* What the one timer of a process is armed for. */
enum supervisor_timer {
	TIMER_NONE,
	TIMER_BACKOFF,		/* start again */
	TIMER_KILL,		/* stop_timeout ran out: SIGKILL */
	TIMER_EOF,		/* exited, output still open: give up on it */
};

TAILQ_HEAD(supervisor_procs, supervisor_proc);

/* A slot and its current child; owned by its pool or the ad-hoc list. */
struct supervisor_proc {
	TAILQ_ENTRY(supervisor_proc) entry;
	struct supervisor	*sv;
	struct supervisor_pool	*pool;		/* NULL: ad-hoc */
	struct config_pool	*own_cfg;	/* ad-hoc only */
	char			 id[LIMIT_NAME_MAX + 16];
	unsigned		 instance;	/* from 1; 0 for ad-hoc */
	enum supervisor_state	 state;
	enum supervisor_after	 after;
	struct supervisor_history hist;
	unsigned		 restarts;
	int			 last_status;	/* -1: none yet */

	/* The current child; pid is 0 when there is none. */
	pid_t			 pid;
	uint64_t		 started_at;
	bool			 exited;	/* status reaped */
	int			 wstatus;
	uint64_t		 exited_at;
	int			 out_fd;	/* -1 once at EOF */
	struct event		*out_ev;
	struct evbuffer		*out_buf;
	void			*ctx;		/* from ops->attach */
	bool			 registered;

	struct event		*timer;
	enum supervisor_timer	 timer_kind;
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
};
TAILQ_HEAD(supervisor_pools, supervisor_pool);

/* The supervisor; owned by the broker. */
struct supervisor {
	struct event_base	*base;
	struct config		*config;
	struct supervisor_ops	 ops;
	void			*arg;
	struct event		*sigchld;
	struct event		*done_ev;	/* deferred ops->stopped_all */
	struct supervisor_pools	 pools;		/* config order */
	struct supervisor_procs	 adhoc;		/* spawn order */
	bool			 shutting_down;
	unsigned		 shutdown_alive;	/* alive when it began */
	bool			 done_sent;
	uint64_t		 rng;
};

/* What a child reports on its exec-error pipe before it gives up. */
enum supervisor_stage {
	STAGE_SETUP,
	STAGE_CHDIR,
	STAGE_USER,
	STAGE_EXEC,
};

struct supervisor_child_error {
	int	stage;
	int	error;
};

/* Everything a child needs, prepared before fork (no malloc after it). */
struct supervisor_plan {
	char		 *path;		/* resolved program */
	char		**argv;		/* borrowed */
	char		**envp;
	const char	 *dir;
	bool		  setuser;
	uid_t		  uid;
	gid_t		  gid;
	gid_t		 *groups;
	int		  ngroups;
};

static void	supervisor_proc_start(struct supervisor_proc *);
static void	supervisor_pool_check(struct supervisor_pool *);
static void	supervisor_shutdown_step(struct supervisor *);

/* Pure arithmetic. */

/* The delay before restart number failures. */
uint64_t
supervisor_backoff_delay(const struct config_pool *cfg, unsigned failures,
    uint32_t random)
{
	uint64_t	d = cfg->backoff_min_ms, max = cfg->backoff_max_ms;
	uint64_t	spread, delay;

	if (max < d)
		max = d;
	for (unsigned i = 1; i < failures && d < max; i++)
		d = d > max / 2 ? max : d * 2;
	if (d > max)
		d = max;
	/* Down by up to a quarter: instances that died together spread out. */
	spread = d / 4;
	delay = d - (spread > 0 ? (uint64_t)random % (spread + 1) : 0);
	if (delay < cfg->backoff_min_ms)
		delay = cfg->backoff_min_ms;
	return delay;
}

/* True when an exit status is a success for cfg. */
bool
supervisor_exit_success(const struct config_pool *cfg, int wstatus)
{
	if (!WIFEXITED(wstatus))
		return false;
	for (int i = 0; i < cfg->nsuccess; i++)
		if (cfg->success_codes[i] == WEXITSTATUS(wstatus))
			return true;
	return false;
}

/* Counts one restart at now unless max_restarts are inside the window. */
bool
supervisor_intensity_allow(struct supervisor_history *h, int max_restarts,
    uint64_t window_ms, uint64_t now)
{
	unsigned	keep = 0;

	if (max_restarts < 0)
		return true;
	for (unsigned i = 0; i < h->ntimes; i++)
		if (h->times[i] > now || now - h->times[i] < window_ms)
			h->times[keep++] = h->times[i];
	h->ntimes = keep;
	if (keep >= (unsigned)max_restarts || keep >= h->cap)
		return false;
	h->times[h->ntimes++] = now;
	return true;
}

/* What follows a child's own exit. */
enum supervisor_state
supervisor_exit_decide(const struct config_pool *cfg,
    struct supervisor_history *h, int wstatus, uint64_t uptime_ms,
    uint64_t now, uint32_t random, uint64_t *ret_delay_ms)
{
	bool	success = supervisor_exit_success(cfg, wstatus);

	if (cfg->restart == RESTART_NEVER ||
	    (cfg->restart == RESTART_ON_FAILURE && success))
		return SUPERVISOR_EXITED;
	if (uptime_ms >= cfg->healthy_after_ms)
		h->failures = 0;
	if (!supervisor_intensity_allow(h, cfg->max_restarts,
	    cfg->restart_window_ms, now))
		return SUPERVISOR_FATAL;
	h->failures++;
	*ret_delay_ms = supervisor_backoff_delay(cfg, h->failures, random);
	return SUPERVISOR_BACKOFF;
}

/* True when old -> new is a transition the supervisor may make. */
bool
supervisor_transition_valid(enum supervisor_state old,
    enum supervisor_state new)
{
	/* One bit per target state, by source state. */
#define B(s) (1u << (s))
	static const unsigned	valid[] = {
		[SUPERVISOR_STARTING] = B(SUPERVISOR_RUNNING) |
		    B(SUPERVISOR_PAUSED) | B(SUPERVISOR_STOPPING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_EXITED) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_RUNNING] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_PAUSED) | B(SUPERVISOR_STOPPING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_EXITED) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_PAUSED] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_RUNNING) | B(SUPERVISOR_STOPPING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_EXITED) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_BACKOFF] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_STOPPING] = B(SUPERVISOR_STOPPED) |
		    B(SUPERVISOR_STARTING) | B(SUPERVISOR_BACKOFF) |
		    B(SUPERVISOR_FATAL),
		[SUPERVISOR_STOPPED] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_EXITED] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_FATAL] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_BACKOFF),
	};
#undef B

	if ((unsigned)old >= sizeof(valid) / sizeof(valid[0]) ||
	    (unsigned)new > SUPERVISOR_FATAL)
		return false;
	return (valid[old] & (1u << new)) != 0;
}

/* The name of a state. */
const char *
supervisor_state_name(enum supervisor_state state)
{
	switch (state) {
	case SUPERVISOR_STARTING:
		return "starting";
	case SUPERVISOR_RUNNING:
		return "running";
	case SUPERVISOR_BACKOFF:
		return "backoff";
	case SUPERVISOR_PAUSED:
		return "paused";
	case SUPERVISOR_STOPPING:
		return "stopping";
	case SUPERVISOR_STOPPED:
		return "stopped";
	case SUPERVISOR_EXITED:
		return "exited";
	case SUPERVISOR_FATAL:
		return "fatal";
	}
	return "?";
}

/* Helpers. */

/* A pseudo-random number for the jitter (xorshift64*). */
static uint32_t
supervisor_random(struct supervisor *sv)
{
	sv->rng ^= sv->rng >> 12;
	sv->rng ^= sv->rng << 25;
	sv->rng ^= sv->rng >> 27;
	return (uint32_t)((sv->rng * 2685821657736338717ULL) >> 32);
}

/* Sets *cause from a printf format (when cause is not NULL). */
static void __attribute__((format(printf, 2, 3)))
supervisor_cause(char **cause, const char *fmt, ...)
{
	va_list	ap;

	if (cause == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) == -1)
		*cause = NULL;
	va_end(ap);
}

/* Describes a wait status: "exit 3", "signal KILL". */
static void
supervisor_describe_status(int wstatus, char *buf, size_t len)
{
	const char	*name;

	if (WIFEXITED(wstatus))
		snprintf(buf, len, "exit %d", WEXITSTATUS(wstatus));
	else if (WIFSIGNALED(wstatus)) {
		name = format_signal(WTERMSIG(wstatus));
		if (name == NULL)
			name = sigabbrev_np(WTERMSIG(wstatus));
		if (name != NULL)
			snprintf(buf, len, "signal %s", name);
		else
			snprintf(buf, len, "signal %d", WTERMSIG(wstatus));
	} else
		snprintf(buf, len, "status %#x", (unsigned)wstatus);
}

/* The settings of a process: its pool's, or its own for ad-hoc ones. */
static const struct config_pool *
supervisor_proc_cfg(const struct supervisor_proc *p)
{
	return p->pool != NULL ? p->pool->cfg : p->own_cfg;
}

/* Sizes the restart history for max_restarts; 0 or -ENOMEM. */
static int
supervisor_history_init(struct supervisor_history *h, int max_restarts)
{
	unsigned	cap = max_restarts > 0 ? (unsigned)max_restarts : 0;

	free(h->times);
	memset(h, 0, sizeof(*h));
	if (cap == 0)
		return 0;
	if ((h->times = calloc(cap, sizeof(*h->times))) == NULL)
		return -ENOMEM;
	h->cap = cap;
	return 0;
}

/* The one place a process changes state; logs old -> new. */
static void
supervisor_set_state(struct supervisor_proc *p, enum supervisor_state new)
{
	enum supervisor_state	old = p->state;

	if (old == new)
		return;
	if (!supervisor_transition_valid(old, new))
		log_error("%s: %s: invalid transition %s -> %s", __func__,
		    p->id, supervisor_state_name(old),
		    supervisor_state_name(new));
	log_debug("proc %s: %s -> %s", p->id, supervisor_state_name(old),
	    supervisor_state_name(new));
	p->state = new;
	if (p->sv->ops.changed != NULL)
		p->sv->ops.changed(p, old, new, p->sv->arg);
}

/* Arms the process's timer for kind in ms. */
static void
supervisor_timer_arm(struct supervisor_proc *p, enum supervisor_timer kind,
    uint64_t ms)
{
	struct timeval	tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	p->timer_kind = kind;
	/* From now, not from when this loop iteration began. */
	event_base_update_cache_time(p->sv->base);
	evtimer_add(p->timer, &tv);
}

/* Disarms the process's timer. */
static void
supervisor_timer_cancel(struct supervisor_proc *p)
{
	evtimer_del(p->timer);
	p->timer_kind = TIMER_NONE;
}

/* Sends sig to the child's process group (it leads its own session). */
static void
supervisor_signal(struct supervisor_proc *p, int sig)
{
	if (p->pid <= 0)
		return;
	if (kill(-p->pid, sig) == -1 && errno != ESRCH)
		log_warn("%s: kill(-%d, %d)", p->id, (int)p->pid, sig);
}

/* The first process of a pool at or after pool, for the iteration. */
static struct supervisor_proc *
supervisor_first_from(const struct supervisor *sv,
    const struct supervisor_pool *pool)
{
	for (; pool != NULL; pool = TAILQ_NEXT(pool, entry))
		if (!TAILQ_EMPTY(&pool->procs))
			return TAILQ_FIRST(&pool->procs);
	return TAILQ_FIRST(&sv->adhoc);
}

/*
 * The process after p (the first when p is NULL), pools in config order
 * then the ad-hoc ones, or NULL. p must still be linked.
 */
static struct supervisor_proc *
supervisor_proc_next(const struct supervisor *sv,
    const struct supervisor_proc *p)
{
	if (p == NULL)
		return supervisor_first_from(sv, TAILQ_FIRST(&sv->pools));
	if (TAILQ_NEXT(p, entry) != NULL)
		return TAILQ_NEXT(p, entry);
	if (p->pool != NULL)
		return supervisor_first_from(sv, TAILQ_NEXT(p->pool, entry));
	return NULL;
}

#define SUPERVISOR_FOREACH(sv, p)					\
	for ((p) = supervisor_proc_next((sv), NULL); (p) != NULL;	\
	    (p) = supervisor_proc_next((sv), (p)))

/* The process whose child has pid, or NULL. */
static struct supervisor_proc *
supervisor_find_pid(struct supervisor *sv, pid_t pid)
{
	struct supervisor_proc	*p;

	SUPERVISOR_FOREACH(sv, p)
		if (p->pid == pid)
			return p;
	return NULL;
}

/* The pool called name, or NULL. */
static struct supervisor_pool *
supervisor_pool_find(const struct supervisor *sv, const char *name)
{
	struct supervisor_pool	*pool;

	TAILQ_FOREACH(pool, &sv->pools, entry)
		if (strcmp(pool->cfg->name, name) == 0)
			return pool;
	return NULL;
}

/* The process with that id, or NULL. */
struct supervisor_proc *
supervisor_find(const struct supervisor *sv, const char *id)
{
	struct supervisor_proc	*p;

	SUPERVISOR_FOREACH(sv, p)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

/* Number of processes with a child alive. */
unsigned
supervisor_nalive(const struct supervisor *sv)
{
	struct supervisor_proc	*p;
	unsigned		 n = 0;

	SUPERVISOR_FOREACH(sv, p)
		if (p->pid != 0)
			n++;
	return n;
}

/* Output of children. */

/* Logs the complete lines of the child's output (all of it at EOF). */
static void
supervisor_log_output(struct supervisor_proc *p, bool eof)
{
	char	*line;
	size_t	 len;

	while ((line = evbuffer_readln(p->out_buf, &len,
	    EVBUFFER_EOL_CRLF)) != NULL) {
		log_info("%s: %s", p->id, line);
		free(line);
	}
	while (evbuffer_get_length(p->out_buf) >= SUPERVISOR_MAX_LOG_LINE ||
	    (eof && evbuffer_get_length(p->out_buf) > 0)) {
		char	chunk[SUPERVISOR_MAX_LOG_LINE + 1];
		int	n;

		n = evbuffer_remove(p->out_buf, chunk, SUPERVISOR_MAX_LOG_LINE);
		if (n <= 0)
			break;
		chunk[n] = '\0';
		log_info("%s: %s", p->id, chunk);
	}
}

/* Closes the output pipe (after logging what is left). */
static void
supervisor_output_close(struct supervisor_proc *p)
{
	if (p->out_ev != NULL) {
		event_free(p->out_ev);
		p->out_ev = NULL;
	}
	if (p->out_buf != NULL) {
		supervisor_log_output(p, true);
		evbuffer_free(p->out_buf);
		p->out_buf = NULL;
	}
	if (p->out_fd != -1) {
		close(p->out_fd);
		p->out_fd = -1;
	}
}

static void	supervisor_check_done(struct supervisor_proc *);

/* The child's stdout or stderr has something (or EOF). */
static void
supervisor_output_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor_proc	*p = arg;
	int			 n;

	(void)what;
	n = evbuffer_read(p->out_buf, fd, 16384);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		supervisor_log_output(p, false);
		return;
	}
	if (n == -1)
		log_warn("%s: reading its output", p->id);
	supervisor_output_close(p);
	supervisor_check_done(p);
}

/* Spawning. */

/* Sets "NAME=VALUE" in an environment vector, replacing NAME. */
static int
supervisor_env_set(char ***envp, size_t *n, const char *entry)
{
	size_t	  klen = strcspn(entry, "=") + 1;
	char	 *copy, **nv;

	if ((copy = strdup(entry)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*envp)[i], entry, klen) == 0) {
			free((*envp)[i]);
			(*envp)[i] = copy;
			return 0;
		}
	}
	if ((nv = realloc(*envp, (*n + 2) * sizeof(*nv))) == NULL) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*n)++] = copy;
	nv[*n] = NULL;
	*envp = nv;
	return 0;
}

/* Sets NAME to a formatted value in an environment vector. */
static int __attribute__((format(printf, 4, 5)))
supervisor_env_setf(char ***envp, size_t *n, const char *name,
    const char *fmt, ...)
{
	char	*value, *entry;
	va_list	 ap;
	int	 error;

	va_start(ap, fmt);
	if (vasprintf(&value, fmt, ap) == -1) {
		va_end(ap);
		return -ENOMEM;
	}
	va_end(ap);
	if (asprintf(&entry, "%s=%s", name, value) == -1) {
		free(value);
		return -ENOMEM;
	}
	error = supervisor_env_set(envp, n, entry);
	free(entry);
	free(value);
	return error;
}

/* Frees what a plan allocated. */
static void
supervisor_plan_clear(struct supervisor_plan *plan)
{
	free(plan->path);
	strv_free(plan->envp);
	free(plan->groups);
	memset(plan, 0, sizeof(*plan));
}

/* Finds name in the directories of path; 0 or -ENOENT (or -ENOMEM). */
static int
supervisor_find_program(const char *name, const char *path, char **ret)
{
	const char	*dir = path, *end;
	char		*candidate;
	struct stat	 st;
	size_t		 len;
	int		 error = -ENOENT;

	if (strchr(name, '/') != NULL)
		return (*ret = strdup(name)) == NULL ? -ENOMEM : 0;
	for (;;) {
		end = strchrnul(dir, ':');
		len = (size_t)(end - dir);
		if (asprintf(&candidate, "%.*s%s%s", (int)len, dir,
		    len == 0 ? "" : "/", name) == -1)
			return -ENOMEM;
		if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(candidate, X_OK) == 0) {
				*ret = candidate;
				return 0;
			}
			error = -EACCES;
		}
		free(candidate);
		if (*end == '\0')
			break;
		dir = end + 1;
	}
	return error;
}

/*
 * Prepares a child of p: user, program, environment. Returns 0, or a
 * negative errno with a sentence in *cause.
 */
static int
supervisor_plan(struct supervisor_proc *p, struct supervisor_plan *plan,
    char **cause)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	const char			*path, *v;
	struct passwd			 pw, *pwp = NULL;
	char				 pwbuf[4096];
	size_t				 n = 0;
	int				 error;

	memset(plan, 0, sizeof(*plan));
	plan->argv = cfg->argv;
	plan->dir = cfg->directory;

	if (cfg->user != NULL) {
		if (geteuid() != 0) {
			supervisor_cause(cause, "user=%s needs patchbayd to "
			    "run as root", cfg->user);
			return -EPERM;
		}
		error = getpwnam_r(cfg->user, &pw, pwbuf, sizeof(pwbuf), &pwp);
		if (pwp == NULL) {
			supervisor_cause(cause, "user '%s' does not exist",
			    cfg->user);
			return error != 0 ? -error : -ENOENT;
		}
		plan->setuser = true;
		plan->uid = pw.pw_uid;
		plan->gid = pw.pw_gid;
		plan->ngroups = 16;
		for (;;) {
			int	ngroups = plan->ngroups;

			free(plan->groups);
			plan->groups = calloc((size_t)ngroups,
			    sizeof(*plan->groups));
			if (plan->groups == NULL)
				goto nomem;
			if (getgrouplist(pw.pw_name, pw.pw_gid, plan->groups,
			    &plan->ngroups) != -1)
				break;
			if (plan->ngroups <= ngroups)
				plan->ngroups = ngroups * 2;
		}
	}

	if ((path = getenv("PATH")) == NULL || *path == '\0')
		path = SUPERVISOR_DEFAULT_PATH;
	if ((error = supervisor_env_setf(&plan->envp, &n, "PATH", "%s",
	    path)) != 0)
		goto nomem;
	if ((v = getenv("HOME")) != NULL &&
	    supervisor_env_setf(&plan->envp, &n, "HOME", "%s", v) != 0)
		goto nomem;
	if ((v = getenv("LANG")) != NULL &&
	    supervisor_env_setf(&plan->envp, &n, "LANG", "%s", v) != 0)
		goto nomem;
	if (plan->setuser &&
	    (supervisor_env_setf(&plan->envp, &n, "HOME", "%s",
	    pw.pw_dir) != 0 ||
	    supervisor_env_setf(&plan->envp, &n, "USER", "%s",
	    pw.pw_name) != 0 ||
	    supervisor_env_setf(&plan->envp, &n, "LOGNAME", "%s",
	    pw.pw_name) != 0))
		goto nomem;
	if (supervisor_env_setf(&plan->envp, &n, "PATCHBAY_FD", "%d",
	    SUPERVISOR_CHILD_FD) != 0 ||
	    supervisor_env_setf(&plan->envp, &n, "PATCHBAY_POOL", "%s",
	    cfg->name) != 0 ||
	    supervisor_env_setf(&plan->envp, &n, "PATCHBAY_INSTANCE", "%u",
	    p->instance != 0 ? p->instance : 1) != 0 ||
	    supervisor_env_setf(&plan->envp, &n, "PATCHBAY_ID", "%s",
	    p->id) != 0)
		goto nomem;
	for (size_t i = 0; cfg->environment[i] != NULL; i++)
		if (supervisor_env_set(&plan->envp, &n,
		    cfg->environment[i]) != 0)
			goto nomem;

	/* Search the PATH the child will have. */
	for (size_t i = 0; i < n; i++)
		if (strncmp(plan->envp[i], "PATH=", 5) == 0)
			path = plan->envp[i] + 5;
	error = supervisor_find_program(cfg->argv[0], path, &plan->path);
	if (error == -ENOMEM)
		goto nomem;
	if (error != 0) {
		supervisor_cause(cause, "cannot execute '%s': %s",
		    cfg->argv[0], strerror(-error));
		supervisor_plan_clear(plan);
		return error;
	}
	return 0;

nomem:
	supervisor_cause(cause, "out of memory");
	supervisor_plan_clear(plan);
	return -ENOMEM;
}

/* In the child: reports stage and errno to the parent, then exits. */
static void __attribute__((noreturn))
supervisor_child_fail(int fd, enum supervisor_stage stage)
{
	struct supervisor_child_error	ce = { (int)stage, errno };
	ssize_t				n;

	do
		n = write(fd, &ce, sizeof(ce));
	while (n == -1 && errno == EINTR);
	_exit(127);
}

/* Closes every descriptor from first up (close_range, or a loop). */
static void
supervisor_child_closefrom(int first)
{
	long	max;

	if (close_range((unsigned)first, ~0U, 0) == 0)
		return;
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = first; fd < max; fd++)
		close(fd);
}

/*
 * The child between fork and execve: only async-signal-safe calls. The
 * descriptors are first moved above 4 so that the dup2s into 0..4 cannot
 * clobber one another.
 */
static void __attribute__((noreturn))
supervisor_child(const struct supervisor_plan *plan, pid_t parent, int sock,
    int outw, int devnull, int errw)
{
	struct sigaction	sa;
	sigset_t		none;
	int			s, o, n, e;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if ((e = fcntl(errw, F_DUPFD_CLOEXEC, 5)) == -1)
		_exit(127);
	if (setsid() == -1)
		supervisor_child_fail(e, STAGE_SETUP);
	/* Die with the broker, even if it died before this line. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		supervisor_child_fail(e, STAGE_SETUP);
	if (getppid() != parent)
		_exit(127);

	if ((s = fcntl(sock, F_DUPFD, 5)) == -1 ||
	    (o = fcntl(outw, F_DUPFD, 5)) == -1 ||
	    (n = fcntl(devnull, F_DUPFD, 5)) == -1)
		supervisor_child_fail(e, STAGE_SETUP);
	if (dup2(n, 0) == -1 || dup2(o, 1) == -1 || dup2(o, 2) == -1 ||
	    dup2(s, SUPERVISOR_CHILD_FD) == -1 ||
	    dup3(e, 4, O_CLOEXEC) == -1)
		supervisor_child_fail(e, STAGE_SETUP);
	e = 4;
	supervisor_child_closefrom(5);

	if (plan->dir != NULL && chdir(plan->dir) == -1)
		supervisor_child_fail(e, STAGE_CHDIR);
	if (plan->setuser) {
		if (setgroups((size_t)plan->ngroups, plan->groups) == -1 ||
		    setgid(plan->gid) == -1 || setuid(plan->uid) == -1)
			supervisor_child_fail(e, STAGE_USER);
	}
	execve(plan->path, plan->argv, plan->envp);
	supervisor_child_fail(e, STAGE_EXEC);
}

/*
 * Starts a child for p. Returns 0, or a negative errno with a sentence in
 * *cause; *ret_permanent tells whether trying again cannot help (the
 * command cannot be executed) rather than a lack of resources.
 */
static int
supervisor_spawn_child(struct supervisor_proc *p, char **cause,
    bool *ret_permanent)
{
	struct supervisor		*sv = p->sv;
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct supervisor_plan		 plan;
	struct supervisor_child_error	 ce;
	int				 sp[2] = { -1, -1 };
	int				 out[2] = { -1, -1 };
	int				 ep[2] = { -1, -1 };
	int				 devnull = -1, error, status;
	pid_t				 pid, parent = getpid();
	ssize_t				 n;
	size_t				 got = 0;

	*ret_permanent = true;
	if ((error = supervisor_plan(p, &plan, cause)) != 0) {
		*ret_permanent = error != -ENOMEM;
		return error;
	}
	*ret_permanent = false;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1 ||
	    pipe2(out, O_CLOEXEC) == -1 || pipe2(ep, O_CLOEXEC) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		error = -errno;
		supervisor_cause(cause, "cannot start '%s': %s",
		    cfg->command, strerror(errno));
		goto fail;
	}
	if ((pid = fork()) == -1) {
		error = -errno;
		supervisor_cause(cause, "cannot start '%s': fork: %s",
		    cfg->command, strerror(errno));
		goto fail;
	}
	if (pid == 0)
		supervisor_child(&plan, parent, sp[1], out[1], devnull, ep[1]);

	close(sp[1]);
	close(out[1]);
	close(ep[1]);
	close(devnull);
	sp[1] = out[1] = ep[1] = devnull = -1;

	/* EOF: execve happened. A record: it did not, and why. */
	while (got < sizeof(ce)) {
		n = read(ep[0], (char *)&ce + got, sizeof(ce) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(ep[0]);
	ep[0] = -1;
	if (got > 0) {
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		if (got < sizeof(ce)) {
			ce.stage = STAGE_SETUP;
			ce.error = EIO;
		}
		error = -ce.error;
		*ret_permanent = true;
		switch (ce.stage) {
		case STAGE_CHDIR:
			supervisor_cause(cause, "cannot change directory to "
			    "'%s': %s", plan.dir, strerror(ce.error));
			break;
		case STAGE_USER:
			supervisor_cause(cause, "cannot switch to user '%s': "
			    "%s", cfg->user, strerror(ce.error));
			break;
		case STAGE_EXEC:
			supervisor_cause(cause, "cannot execute '%s': %s",
			    plan.path, strerror(ce.error));
			break;
		default:
			*ret_permanent = false;
			supervisor_cause(cause, "cannot start '%s': %s",
			    cfg->command, strerror(ce.error));
			break;
		}
		if (error == 0)
			error = -EIO;
		goto fail;
	}

	p->pid = pid;
	p->started_at = clock_now_ms();
	p->exited = false;
	p->wstatus = 0;
	p->registered = false;
	p->out_fd = out[0];
	out[0] = -1;
	evutil_make_socket_nonblocking(p->out_fd);
	p->out_buf = evbuffer_new();
	p->out_ev = event_new(sv->base, p->out_fd, EV_READ | EV_PERSIST,
	    supervisor_output_cb, p);
	if (p->out_buf == NULL || p->out_ev == NULL) {
		/* Without its output the child cannot be watched: drop it. */
		log_warnx("%s: out of memory, killing pid %d", p->id,
		    (int)pid);
		supervisor_signal(p, SIGKILL);
		supervisor_output_close(p);
	} else
		event_add(p->out_ev, NULL);
	log_info("%s: started pid %d: %s", p->id, (int)pid, cfg->command);

	if (sv->ops.attach != NULL) {
		p->ctx = sv->ops.attach(p, sp[0], sv->arg);
		if (p->ctx == NULL) {
			log_warnx("%s: the broker could not take its "
			    "connection, killing pid %d", p->id, (int)pid);
			supervisor_signal(p, SIGKILL);
		}
	} else
		close(sp[0]);
	sp[0] = -1;
	supervisor_plan_clear(&plan);
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		if (sp[i] != -1)
			close(sp[i]);
		if (out[i] != -1)
			close(out[i]);
		if (ep[i] != -1)
			close(ep[i]);
	}
	if (devnull != -1)
		close(devnull);
	supervisor_plan_clear(&plan);
	return error;
}

/* Process lifecycle. */

/* Starts p's child; a failure is fatal or a failed run, as it deserves. */
static void
supervisor_proc_start(struct supervisor_proc *p)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	enum supervisor_state		 next;
	char				*cause = NULL;
	bool				 permanent;
	uint64_t			 delay = 0;
	char				 buf[32];

	supervisor_timer_cancel(p);
	p->after = AFTER_NONE;
	if (supervisor_spawn_child(p, &cause, &permanent) == 0) {
		supervisor_set_state(p, SUPERVISOR_STARTING);
		return;
	}
	log_warnx("%s: %s", p->id, cause != NULL ? cause : "cannot start");
	free(cause);
	if (permanent) {
		supervisor_set_state(p, SUPERVISOR_FATAL);
		return;
	}
	next = supervisor_exit_decide(cfg, &p->hist, 127 << 8, 0,
	    clock_now_ms(), supervisor_random(p->sv), &delay);
	if (next == SUPERVISOR_BACKOFF) {
		format_duration(delay, buf, sizeof(buf));
		log_info("%s: trying again in %s", p->id, buf);
		supervisor_set_state(p, SUPERVISOR_BACKOFF);
		supervisor_timer_arm(p, TIMER_BACKOFF, delay);
	} else
		supervisor_set_state(p, SUPERVISOR_FATAL);
}

/* Frees a slot that has no child. */
static void
supervisor_proc_free(struct supervisor_proc *p)
{
	if (p == NULL)
		return;
	if (p->timer != NULL)
		event_free(p->timer);
	supervisor_output_close(p);
	free(p->hist.times);
	config_pool_free(p->own_cfg);
	free(p);
}

/* Unlinks and frees a slot that has no child. */
static void
supervisor_proc_remove(struct supervisor_proc *p)
{
	if (p->pool != NULL)
		TAILQ_REMOVE(&p->pool->procs, p, entry);
	else
		TAILQ_REMOVE(&p->sv->adhoc, p, entry);
	log_debug("proc %s: removed", p->id);
	supervisor_proc_free(p);
}

/* The backoff, kill or EOF timer of a process fired. */
static void
supervisor_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor_proc	*p = arg;
	enum supervisor_timer	 kind = p->timer_kind;

	(void)fd;
	(void)what;
	p->timer_kind = TIMER_NONE;
	switch (kind) {
	case TIMER_BACKOFF:
		p->restarts++;
		supervisor_proc_start(p);
		break;
	case TIMER_KILL:
		log_warnx("%s: pid %d did not stop in time, killing it",
		    p->id, (int)p->pid);
		supervisor_signal(p, SIGKILL);
		break;
	case TIMER_EOF:
		log_warnx("%s: pid %d exited but its output is still open "
		    "(a process outside its group?), closing it", p->id,
		    (int)p->pid);
		supervisor_output_close(p);
		supervisor_check_done(p);
		break;
	case TIMER_NONE:
		break;
	}
}

/* A new slot (not linked, stopped, no child); NULL on ENOMEM. */
static struct supervisor_proc *
supervisor_proc_new(struct supervisor *sv, struct supervisor_pool *pool,
    unsigned instance, const char *id, struct config_pool *own_cfg)
{
	struct supervisor_proc		*p;
	const struct config_pool	*cfg;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->sv = sv;
	p->pool = pool;
	p->own_cfg = own_cfg;
	p->instance = instance;
	p->state = SUPERVISOR_STOPPED;
	p->last_status = -1;
	p->out_fd = -1;
	if (pool != NULL)
		snprintf(p->id, sizeof(p->id), "%s/%u", pool->cfg->name,
		    instance);
	else
		snprintf(p->id, sizeof(p->id), "%s", id);
	cfg = supervisor_proc_cfg(p);
	p->timer = evtimer_new(sv->base, supervisor_timer_cb, p);
	if (p->timer == NULL ||
	    supervisor_history_init(&p->hist, cfg->max_restarts) != 0) {
		p->own_cfg = NULL;
		supervisor_proc_free(p);
		return NULL;
	}
	return p;
}

/* Sends the stop signal to p (or settles it when it has no child). */
static void
supervisor_proc_stop(struct supervisor_proc *p, uint64_t timeout_ms,
    bool force, enum supervisor_after after)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	int				 sig = force ? SIGKILL : cfg->stop_signal;
	const char			*name;

	if (p->pid != 0) {
		if (p->state == SUPERVISOR_STOPPING) {
			if (force)
				supervisor_signal(p, SIGKILL);
			if (after == AFTER_REMOVE || p->after != AFTER_REMOVE)
				p->after = after;
			return;
		}
		name = format_signal(sig);
		log_info("%s: stopping pid %d with SIG%s", p->id, (int)p->pid,
		    name != NULL ? name : "?");
		supervisor_signal(p, sig);
		/* A stopped process could not act on its signal. */
		if (p->state == SUPERVISOR_PAUSED)
			supervisor_signal(p, SIGCONT);
		p->after = after;
		supervisor_set_state(p, SUPERVISOR_STOPPING);
		if (!p->exited)
			supervisor_timer_arm(p, TIMER_KILL, timeout_ms != 0 ?
			    timeout_ms : cfg->stop_timeout_ms);
		return;
	}
	if (p->state == SUPERVISOR_BACKOFF) {
		supervisor_timer_cancel(p);
		supervisor_set_state(p, SUPERVISOR_STOPPED);
	}
	if (after == AFTER_REMOVE)
		supervisor_proc_remove(p);
	else if (after == AFTER_RESTART) {
		p->restarts++;
		supervisor_proc_start(p);
	}
}

/* p's child is finished (exit status and output EOF): what next. */
static void
supervisor_child_done(struct supervisor_proc *p)
{
	struct supervisor		*sv = p->sv;
	struct supervisor_pool		*pool = p->pool;
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	enum supervisor_after		 after = p->after;
	enum supervisor_state		 next;
	uint64_t			 uptime, delay = 0;
	void				*ctx = p->ctx;
	char				 buf[32];

	supervisor_timer_cancel(p);
	supervisor_output_close(p);
	uptime = p->exited_at - p->started_at;
	p->ctx = NULL;
	p->pid = 0;
	p->registered = false;
	p->last_status = p->wstatus;
	p->after = AFTER_NONE;
	if (ctx != NULL && sv->ops.detach != NULL)
		sv->ops.detach(ctx, sv->arg);

	if (after == AFTER_REMOVE) {
		supervisor_set_state(p, SUPERVISOR_STOPPED);
		supervisor_proc_remove(p);
		if (pool != NULL)
			supervisor_pool_check(pool);
	} else if (after == AFTER_RESTART && !sv->shutting_down) {
		supervisor_history_init(&p->hist, cfg->max_restarts);
		p->restarts++;
		supervisor_proc_start(p);
	} else if (p->state == SUPERVISOR_STOPPING || sv->shutting_down)
		supervisor_set_state(p, SUPERVISOR_STOPPED);
	else {
		next = supervisor_exit_decide(cfg, &p->hist, p->wstatus,
		    uptime, clock_now_ms(), supervisor_random(sv), &delay);
		if (next == SUPERVISOR_BACKOFF) {
			format_duration(delay, buf, sizeof(buf));
			log_info("%s: restarting in %s", p->id, buf);
		} else if (next == SUPERVISOR_FATAL) {
			format_duration(cfg->restart_window_ms, buf,
			    sizeof(buf));
			log_warnx("%s: restarted %d times within %s, giving up "
			    "until an operator restarts it", p->id,
			    cfg->max_restarts, buf);
		}
		supervisor_set_state(p, next);
		if (next == SUPERVISOR_BACKOFF)
			supervisor_timer_arm(p, TIMER_BACKOFF, delay);
	}
	if (sv->shutting_down)
		supervisor_shutdown_step(sv);
}

/* Finishes p's child when both its status and its output's EOF are in. */
static void
supervisor_check_done(struct supervisor_proc *p)
{
	if (p->pid != 0 && p->exited && p->out_fd == -1)
		supervisor_child_done(p);
}

/*
 * SIGCHLD: reaps every child that exited. waitid(WNOWAIT) first leaves the
 * zombie in place while what is left of its process group is killed, so
 * that the group's id cannot have been reused by then.
 */
static void
supervisor_sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor	*sv = arg;
	struct supervisor_proc	*p;
	siginfo_t		 si;
	pid_t			 pid;
	int			 status;
	char			 buf[64];

	(void)fd;
	(void)what;
	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((pid = si.si_pid) == 0)
			break;
		p = supervisor_find_pid(sv, pid);
		if (p != NULL && !p->exited)
			supervisor_signal(p, SIGKILL);
		while (waitpid(pid, &status, 0) == -1) {
			if (errno != EINTR)
				break;
		}
		if (p == NULL || p->exited) {
			log_debug("%s: reaped unknown child %d", __func__,
			    (int)pid);
			continue;
		}
		p->exited = true;
		p->wstatus = status;
		p->exited_at = clock_now_ms();
		supervisor_describe_status(status, buf, sizeof(buf));
		if (p->state == SUPERVISOR_STOPPING)
			log_info("%s: pid %d stopped (%s)", p->id, (int)pid,
			    buf);
		else
			log_info("%s: pid %d exited (%s)", p->id, (int)pid,
			    buf);
		supervisor_timer_cancel(p);
		if (p->out_fd != -1)
			supervisor_timer_arm(p, TIMER_EOF,
			    SUPERVISOR_EOF_GRACE_MS);
		supervisor_check_done(p);
	}
}

/* Pools. */

/* Creates the missing slots up to pool->instances and trims the rest. */
static int
supervisor_pool_sync(struct supervisor_pool *pool)
{
	struct supervisor	*sv = pool->sv;
	struct supervisor_proc	*p, *next, *q;
	unsigned		 i;

	TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next) {
		if (p->instance > pool->instances)
			supervisor_proc_stop(p, 0, false, AFTER_REMOVE);
		else if (p->after == AFTER_REMOVE)
			p->after = AFTER_RESTART;	/* wanted again */
	}
	for (i = 1; i <= pool->instances; i++) {
		TAILQ_FOREACH(q, &pool->procs, entry)
			if (q->instance >= i)
				break;
		if (q != NULL && q->instance == i)
			continue;
		if ((p = supervisor_proc_new(sv, pool, i, NULL, NULL)) == NULL)
			return -ENOMEM;
		if (q != NULL)
			TAILQ_INSERT_BEFORE(q, p, entry);
		else
			TAILQ_INSERT_TAIL(&pool->procs, p, entry);
		if (!sv->shutting_down)
			supervisor_proc_start(p);
	}
	return 0;
}

/* A new pool for cfg (ownership passes), linked at the tail. */
static struct supervisor_pool *
supervisor_pool_new(struct supervisor *sv, struct config_pool *cfg)
{
	struct supervisor_pool	*pool;

	if ((pool = calloc(1, sizeof(*pool))) == NULL)
		return NULL;
	pool->sv = sv;
	pool->cfg = cfg;
	pool->instances = (unsigned)cfg->instances;
	TAILQ_INIT(&pool->procs);
	TAILQ_INSERT_TAIL(&sv->pools, pool, entry);
	return pool;
}

/* Frees a pool whose slots are all gone (or are being dropped). */
static void
supervisor_pool_free(struct supervisor_pool *pool)
{
	struct supervisor_proc	*p;

	while ((p = TAILQ_FIRST(&pool->procs)) != NULL) {
		TAILQ_REMOVE(&pool->procs, p, entry);
		supervisor_proc_free(p);
	}
	TAILQ_REMOVE(&pool->sv->pools, pool, entry);
	config_pool_free(pool->cfg);
	config_pool_free(pool->next_cfg);
	free(pool);
}

/* Once a retiring pool's slots are gone: free it, or start its new self. */
static void
supervisor_pool_check(struct supervisor_pool *pool)
{
	if (!TAILQ_EMPTY(&pool->procs))
		return;
	if (pool->removing) {
		log_info("pool %s: removed", pool->cfg->name);
		supervisor_pool_free(pool);
	} else if (pool->next_cfg != NULL) {
		log_info("pool %s: starting with its new settings",
		    pool->cfg->name);
		config_pool_free(pool->cfg);
		pool->cfg = pool->next_cfg;
		pool->next_cfg = NULL;
		pool->instances = (unsigned)pool->cfg->instances;
		if (supervisor_pool_sync(pool) != 0)
			log_warnx("pool %s: out of memory starting it",
			    pool->cfg->name);
	}
}

/* Stops every slot of a pool for good (reload). */
static void
supervisor_pool_retire(struct supervisor_pool *pool)
{
	struct supervisor_proc	*p, *next;

	TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next)
		supervisor_proc_stop(p, 0, false, AFTER_REMOVE);
	supervisor_pool_check(pool);
}

/* The supervisor. */

/* Creates a supervisor. */
int
supervisor_new(struct event_base *base, struct config *config,
    const struct supervisor_ops *ops, void *arg, struct supervisor **ret)
{
	struct supervisor	*sv;
	struct config_pool	*cp, *copy;

	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return -ENOMEM;
	sv->base = base;
	if (ops != NULL)
		sv->ops = *ops;
	sv->arg = arg;
	TAILQ_INIT(&sv->pools);
	TAILQ_INIT(&sv->adhoc);
	sv->rng = clock_now_ms() ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(uintptr_t)sv;
	if (sv->rng == 0)
		sv->rng = 1;
	sv->sigchld = evsignal_new(base, SIGCHLD, supervisor_sigchld_cb, sv);
	if (sv->sigchld == NULL || event_add(sv->sigchld, NULL) != 0)
		goto nomem;
	if (config == NULL && (config = config_new()) == NULL)
		goto nomem;
	sv->config = config;
	TAILQ_FOREACH(cp, &config->pools, entry) {
		if ((copy = config_pool_dup(cp)) == NULL)
			goto nomem;
		if (supervisor_pool_new(sv, copy) == NULL) {
			config_pool_free(copy);
			goto nomem;
		}
	}
	*ret = sv;
	return 0;
nomem:
	if (sv->config == NULL)
		sv->config = config;	/* ownership passed all the same */
	supervisor_free(sv);
	return -ENOMEM;
}

/* Starts every instance of every pool. */
void
supervisor_start(struct supervisor *sv)
{
	struct supervisor_pool	*pool;

	TAILQ_FOREACH(pool, &sv->pools, entry) {
		if (supervisor_pool_sync(pool) != 0)
			log_warnx("pool %s: out of memory starting it",
			    pool->cfg->name);
	}
}

/* Kills and reaps p's child at once, for supervisor_free(). */
static void
supervisor_proc_kill_now(struct supervisor_proc *p)
{
	int	status;

	if (p->pid == 0)
		return;
	supervisor_signal(p, SIGKILL);
	if (!p->exited) {
		while (waitpid(p->pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	p->pid = 0;
}

/* Frees everything. */
void
supervisor_free(struct supervisor *sv)
{
	struct supervisor_pool	*pool;
	struct supervisor_proc	*p;

	if (sv == NULL)
		return;
	SUPERVISOR_FOREACH(sv, p)
		supervisor_proc_kill_now(p);
	while ((pool = TAILQ_FIRST(&sv->pools)) != NULL)
		supervisor_pool_free(pool);
	while ((p = TAILQ_FIRST(&sv->adhoc)) != NULL) {
		TAILQ_REMOVE(&sv->adhoc, p, entry);
		supervisor_proc_free(p);
	}
	if (sv->sigchld != NULL)
		event_free(sv->sigchld);
	if (sv->done_ev != NULL)
		event_free(sv->done_ev);
	config_free(sv->config);
	free(sv);
}

/* Deferred ops->stopped_all. */
static void
supervisor_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor	*sv = arg;

	(void)fd;
	(void)what;
	if (sv->shutdown_alive > 0)
		log_info("supervisor: every process is down");
	if (sv->ops.stopped_all != NULL)
		sv->ops.stopped_all(sv->arg);
}

/* Stops the processes group by group: ad-hoc, then pools last first. */
static void
supervisor_shutdown_step(struct supervisor *sv)
{
	struct supervisor_pool	*pool;
	struct supervisor_proc	*p, *next;
	bool			 alive = false;

	TAILQ_FOREACH_SAFE(p, &sv->adhoc, entry, next) {
		if (p->state != SUPERVISOR_STOPPING)
			supervisor_proc_stop(p, 0, false, AFTER_NONE);
		if (p->pid != 0)
			alive = true;
	}
	if (alive)
		return;
	TAILQ_FOREACH_REVERSE(pool, &sv->pools, supervisor_pools, entry) {
		TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next) {
			if (p->state != SUPERVISOR_STOPPING)
				supervisor_proc_stop(p, 0, false, AFTER_NONE);
			else if (p->after == AFTER_RESTART)
				p->after = AFTER_NONE;
			if (p->pid != 0)
				alive = true;
		}
		if (alive)
			return;
	}
	if (!sv->done_sent) {
		sv->done_sent = true;
		if (sv->done_ev == NULL)
			sv->done_ev = event_new(sv->base, -1, 0,
			    supervisor_done_cb, sv);
		if (sv->done_ev != NULL)
			event_active(sv->done_ev, 0, 0);
		else
			supervisor_done_cb(-1, 0, sv);
	}
}

/* Stops everything for good. */
void
supervisor_shutdown(struct supervisor *sv)
{
	if (sv->shutting_down)
		return;
	/* Without pools there is nothing worth a line at info level. */
	sv->shutdown_alive = supervisor_nalive(sv);
	if (sv->shutdown_alive > 0)
		log_info("supervisor: stopping %u processes",
		    sv->shutdown_alive);
	sv->shutting_down = true;
	supervisor_shutdown_step(sv);
}

/* The config in force. */
const struct config *
supervisor_config(const struct supervisor *sv)
{
	return sv->config;
}

/* Accessors. */

/* The id: "pool/instance" or the ad-hoc id. */
const char *
supervisor_proc_id(const struct supervisor_proc *p)
{
	return p->id;
}

/* The pool's name, or NULL. */
const char *
supervisor_proc_pool(const struct supervisor_proc *p)
{
	return p->pool != NULL ? p->pool->cfg->name : NULL;
}

/* The instance number. */
unsigned
supervisor_proc_instance(const struct supervisor_proc *p)
{
	return p->instance;
}

/* The child's pid, 0 when there is none. */
pid_t
supervisor_proc_pid(const struct supervisor_proc *p)
{
	return p->pid;
}

/* The state. */
enum supervisor_state
supervisor_proc_state(const struct supervisor_proc *p)
{
	return p->state;
}

/* Restarts so far. */
unsigned
supervisor_proc_restarts(const struct supervisor_proc *p)
{
	return p->restarts;
}

/* The last child's wait status, or -1. */
int
supervisor_proc_last_status(const struct supervisor_proc *p)
{
	return p->last_status;
}

/* From the broker: the worker sent REGISTER. */
void
supervisor_proc_registered(struct supervisor *sv, struct supervisor_proc *p)
{
	if (p->pid == 0 || p->registered)
		return;
	p->registered = true;
	log_debug("proc %s: worker registered", p->id);
	if (p->state == SUPERVISOR_STARTING)
		supervisor_set_state(p, SUPERVISOR_RUNNING);
	else if (p->state == SUPERVISOR_PAUSED && p->ctx != NULL &&
	    sv->ops.set_paused != NULL)
		sv->ops.set_paused(p->ctx, true, sv->arg);
}

/* From the broker: the connection closed. */
void
supervisor_proc_detached(struct supervisor *sv, struct supervisor_proc *p)
{
	(void)sv;
	if (p->ctx == NULL)
		return;
	p->ctx = NULL;
	p->registered = false;
	if (p->pid != 0 && !p->exited)
		log_info("%s: worker connection closed", p->id);
	if (p->state == SUPERVISOR_RUNNING)
		supervisor_set_state(p, SUPERVISOR_STARTING);
}

/* Admin verbs. */

/* Refuses verbs during shutdown. */
static int
supervisor_check_live(struct supervisor *sv, char **cause)
{
	if (!sv->shutting_down)
		return 0;
	supervisor_cause(cause, "patchbayd is shutting down");
	return -ESHUTDOWN;
}

/* Refuses verbs on a pool that a reload is replacing or removing. */
static int
supervisor_check_pool(struct supervisor_pool *pool, char **cause)
{
	if (pool == NULL)
		return 0;
	if (pool->removing) {
		supervisor_cause(cause, "pool '%s' is being removed",
		    pool->cfg->name);
		return -EBUSY;
	}
	if (pool->next_cfg != NULL) {
		supervisor_cause(cause, "pool '%s' is restarting with new "
		    "settings", pool->cfg->name);
		return -EBUSY;
	}
	return 0;
}

/*
 * Resolves id to one process (*ret_proc) or a whole pool (*ret_pool).
 * Returns 0, or -ENOENT / -EBUSY / -ESHUTDOWN with a sentence.
 */
static int
supervisor_resolve(struct supervisor *sv, const char *id,
    struct supervisor_proc **ret_proc, struct supervisor_pool **ret_pool,
    char **cause)
{
	struct supervisor_proc	*p;
	struct supervisor_pool	*pool;
	int			 error;

	*ret_proc = NULL;
	*ret_pool = NULL;
	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	if ((p = supervisor_find(sv, id)) != NULL) {
		if ((error = supervisor_check_pool(p->pool, cause)) != 0)
			return error;
		*ret_proc = p;
		return 0;
	}
	if ((pool = supervisor_pool_find(sv, id)) != NULL) {
		if ((error = supervisor_check_pool(pool, cause)) != 0)
			return error;
		*ret_pool = pool;
		return 0;
	}
	supervisor_cause(cause, "unknown id '%s'", id);
	return -ENOENT;
}

/* Joins argv into one line, quoting words that need it. */
static char *
supervisor_join_argv(const char *const *argv)
{
	char	*s = NULL, *w;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&s, &len)) == NULL)
		return NULL;
	for (size_t i = 0; argv[i] != NULL; i++) {
		if (i > 0)
			fputc(' ', f);
		if (argv[i][0] != '\0' &&
		    strpbrk(argv[i], " \t'\"\\") == NULL) {
			fputs(argv[i], f);
			continue;
		}
		fputc('"', f);
		for (w = (char *)argv[i]; *w != '\0'; w++) {
			if (*w == '"' || *w == '\\')
				fputc('\\', f);
			fputc(*w, f);
		}
		fputc('"', f);
	}
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Packs one process as a map. */
static void
supervisor_pack_proc(msgpack_packer *pk, const struct supervisor_proc *p,
    uint64_t now)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	char				 buf[64];

	msgpack_pack_map(pk, 9);
	proto_pack_str(pk, "id");
	proto_pack_str(pk, p->id);
	proto_pack_str(pk, "pool");
	if (p->pool != NULL)
		proto_pack_str(pk, p->pool->cfg->name);
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "instance");
	if (p->pool != NULL)
		msgpack_pack_unsigned_int(pk, p->instance);
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "pid");
	if (p->pid != 0)
		msgpack_pack_int(pk, (int)p->pid);
	else
		msgpack_pack_nil(pk);
	proto_pack_str(pk, "state");
	proto_pack_str(pk, supervisor_state_name(p->state));
	proto_pack_str(pk, "restarts");
	msgpack_pack_unsigned_int(pk, p->restarts);
	proto_pack_str(pk, "uptime_ms");
	msgpack_pack_uint64(pk, p->pid != 0 && now >= p->started_at ?
	    now - p->started_at : 0);
	proto_pack_str(pk, "command");
	proto_pack_str(pk, cfg->command);
	proto_pack_str(pk, "last_exit");
	if (p->last_status != -1) {
		supervisor_describe_status(p->last_status, buf, sizeof(buf));
		proto_pack_str(pk, buf);
	} else
		msgpack_pack_nil(pk);
}

/* ps: every process, pools in config order then ad-hoc ones. */
int
supervisor_ps(struct supervisor *sv, msgpack_packer *pk)
{
	struct supervisor_proc	*p;
	uint32_t		 n = 0;
	uint64_t		 now = clock_now_ms();

	SUPERVISOR_FOREACH(sv, p)
		n++;
	msgpack_pack_array(pk, n);
	SUPERVISOR_FOREACH(sv, p)
		supervisor_pack_proc(pk, p, now);
	return 0;
}

/* Starts an ad-hoc process. */
int
supervisor_spawn(struct supervisor *sv, const char *id,
    const char *const *argv, enum restart_policy restart, int max_restarts,
    char **cause)
{
	struct supervisor_proc	*old, *p;
	struct config_pool	*cfg;
	size_t			 n = 0;
	bool			 permanent;
	int			 error;

	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	if (*id == '\0' || strlen(id) > LIMIT_NAME_MAX ||
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_.") != strlen(id)) {
		supervisor_cause(cause, "bad id '%s': an id is 1 to 64 "
		    "letters, digits, '-', '_' or '.'", id);
		return -EINVAL;
	}
	if (supervisor_pool_find(sv, id) != NULL) {
		supervisor_cause(cause, "'%s' is the name of a pool", id);
		return -EEXIST;
	}
	TAILQ_FOREACH(old, &sv->adhoc, entry)
		if (strcmp(old->id, id) == 0)
			break;
	if (old != NULL && (old->pid != 0 ||
	    old->state == SUPERVISOR_BACKOFF)) {
		supervisor_cause(cause, "'%s' already exists (%s)", id,
		    supervisor_state_name(old->state));
		return -EEXIST;
	}
	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
		supervisor_cause(cause, "spawn '%s': no command given", id);
		return -EINVAL;
	}
	if (max_restarts < -1 || max_restarts > LIMIT_RESTARTS_MAX) {
		supervisor_cause(cause, "spawn '%s': max_restarts must be "
		    "from 0 to %d, or -1 for unlimited (got %d)", id,
		    LIMIT_RESTARTS_MAX, max_restarts);
		return -EINVAL;
	}

	if ((cfg = config_pool_new(id)) == NULL)
		goto nomem;
	cfg->restart = restart;
	cfg->max_restarts = max_restarts;
	while (argv[n] != NULL)
		n++;
	if ((cfg->argv = calloc(n + 1, sizeof(*cfg->argv))) == NULL)
		goto nomem_cfg;
	for (size_t i = 0; i < n; i++)
		if ((cfg->argv[i] = strdup(argv[i])) == NULL)
			goto nomem_cfg;
	if ((cfg->command = supervisor_join_argv(argv)) == NULL)
		goto nomem_cfg;
	if ((p = supervisor_proc_new(sv, NULL, 0, id, cfg)) == NULL)
		goto nomem_cfg;

	if ((error = supervisor_spawn_child(p, cause, &permanent)) != 0) {
		supervisor_proc_free(p);
		return error;
	}
	if (old != NULL) {
		TAILQ_INSERT_AFTER(&sv->adhoc, old, p, entry);
		supervisor_proc_remove(old);
	} else
		TAILQ_INSERT_TAIL(&sv->adhoc, p, entry);
	supervisor_set_state(p, SUPERVISOR_STARTING);
	return 0;

nomem_cfg:
	config_pool_free(cfg);
nomem:
	supervisor_cause(cause, "out of memory");
	return -ENOMEM;
}

/* True when p has a child that an operator may stop. */
static bool
supervisor_proc_stoppable(const struct supervisor_proc *p)
{
	return p->pid != 0 || p->state == SUPERVISOR_BACKOFF;
}

/* Stops a process or a pool. */
int
supervisor_stop(struct supervisor *sv, const char *id, uint64_t timeout_ms,
    bool force, char **cause)
{
	struct supervisor_proc	*p, *next;
	struct supervisor_pool	*pool;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		if (!supervisor_proc_stoppable(p)) {
			supervisor_cause(cause, "'%s' is not running (%s)", id,
			    supervisor_state_name(p->state));
			return -EBUSY;
		}
		supervisor_proc_stop(p, timeout_ms, force, AFTER_NONE);
		return 0;
	}
	TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next)
		if (supervisor_proc_stoppable(p))
			supervisor_proc_stop(p, timeout_ms, force, AFTER_NONE);
	return 0;
}

/* Restarts one process: clears its history and starts it (again). */
static void
supervisor_proc_restart(struct supervisor_proc *p)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);

	if (p->pid != 0) {
		supervisor_proc_stop(p, 0, false, AFTER_RESTART);
		return;
	}
	supervisor_history_init(&p->hist, cfg->max_restarts);
	p->restarts++;
	supervisor_proc_start(p);
}

/* Restarts a process or a pool. */
int
supervisor_restart(struct supervisor *sv, const char *id, char **cause)
{
	struct supervisor_proc	*p, *next;
	struct supervisor_pool	*pool;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		supervisor_proc_restart(p);
		return 0;
	}
	TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next)
		supervisor_proc_restart(p);
	return 0;
}

/* Pauses one process that runs; false when it does not. */
static bool
supervisor_proc_pause(struct supervisor_proc *p)
{
	struct supervisor	*sv = p->sv;

	if ((p->state != SUPERVISOR_STARTING &&
	    p->state != SUPERVISOR_RUNNING) || p->pid == 0 || p->exited)
		return false;
	supervisor_signal(p, SIGSTOP);
	supervisor_set_state(p, SUPERVISOR_PAUSED);
	if (p->ctx != NULL && sv->ops.set_paused != NULL)
		sv->ops.set_paused(p->ctx, true, sv->arg);
	log_info("%s: paused pid %d", p->id, (int)p->pid);
	return true;
}

/* Resumes one paused process; false when it is not paused. */
static bool
supervisor_proc_resume(struct supervisor_proc *p)
{
	struct supervisor	*sv = p->sv;

	if (p->state != SUPERVISOR_PAUSED)
		return false;
	supervisor_signal(p, SIGCONT);
	supervisor_set_state(p, p->registered ? SUPERVISOR_RUNNING :
	    SUPERVISOR_STARTING);
	if (p->ctx != NULL && sv->ops.set_paused != NULL)
		sv->ops.set_paused(p->ctx, false, sv->arg);
	log_info("%s: resumed pid %d", p->id, (int)p->pid);
	return true;
}

/* Pauses a process or a pool. */
int
supervisor_pause(struct supervisor *sv, const char *id, char **cause)
{
	struct supervisor_proc	*p;
	struct supervisor_pool	*pool;
	bool			 any = false;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		if (p->state == SUPERVISOR_PAUSED) {
			supervisor_cause(cause, "'%s' is already paused", id);
			return -EBUSY;
		}
		if (!supervisor_proc_pause(p)) {
			if (p->pid != 0 && p->exited)
				supervisor_cause(cause, "'%s' has just exited",
				    id);
			else
				supervisor_cause(cause, "'%s' is %s, not "
				    "running", id,
				    supervisor_state_name(p->state));
			return -EBUSY;
		}
		return 0;
	}
	TAILQ_FOREACH(p, &pool->procs, entry)
		any |= supervisor_proc_pause(p);
	if (!any) {
		supervisor_cause(cause, "pool '%s' has no running process",
		    id);
		return -EBUSY;
	}
	return 0;
}

/* Resumes a process or a pool. */
int
supervisor_resume(struct supervisor *sv, const char *id, char **cause)
{
	struct supervisor_proc	*p;
	struct supervisor_pool	*pool;
	bool			 any = false;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		if (!supervisor_proc_resume(p)) {
			supervisor_cause(cause, "'%s' is %s, not paused", id,
			    supervisor_state_name(p->state));
			return -EBUSY;
		}
		return 0;
	}
	TAILQ_FOREACH(p, &pool->procs, entry)
		any |= supervisor_proc_resume(p);
	if (!any) {
		supervisor_cause(cause, "pool '%s' has no paused process", id);
		return -EBUSY;
	}
	return 0;
}

/* Sets the number of instances of a pool. */
int
supervisor_scale(struct supervisor *sv, const char *name, unsigned n,
    char **cause)
{
	struct supervisor_pool	*pool;
	int			 error;

	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	if ((pool = supervisor_pool_find(sv, name)) == NULL) {
		supervisor_cause(cause, "unknown pool '%s'", name);
		return -ENOENT;
	}
	if ((error = supervisor_check_pool(pool, cause)) != 0)
		return error;
	if (n > LIMIT_INSTANCES_MAX) {
		supervisor_cause(cause, "pool '%s': instances must be from 0 "
		    "to %d (got %u)", name, LIMIT_INSTANCES_MAX, n);
		return -EINVAL;
	}
	log_info("pool %s: scaling from %u to %u instances", name,
	    pool->instances, n);
	pool->instances = n;
	if (supervisor_pool_sync(pool) != 0) {
		supervisor_cause(cause, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Applies a newly loaded config. */
int
supervisor_reload(struct supervisor *sv, struct config *config,
    char **cause)
{
	struct supervisor_pools	 order;
	struct supervisor_pool	*pool, *next;
	struct supervisor_proc	*p;
	struct config_pool	*np, **copies = NULL;
	size_t			 ncopies = 0, i;
	int			 error;

	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	TAILQ_FOREACH(np, &config->pools, entry) {
		TAILQ_FOREACH(p, &sv->adhoc, entry) {
			if (strcmp(p->id, np->name) == 0) {
				supervisor_cause(cause, "%s:%d: pool '%s' has "
				    "the id of a spawned process; stop it "
				    "first or rename the pool", config->path,
				    np->line, np->name);
				return -EEXIST;
			}
		}
		ncopies++;
	}
	/* Copy everything first so that nothing is half-applied. */
	if ((copies = calloc(ncopies + 1, sizeof(*copies))) == NULL)
		goto nomem;
	i = 0;
	TAILQ_FOREACH(np, &config->pools, entry)
		if ((copies[i++] = config_pool_dup(np)) == NULL)
			goto nomem;

	TAILQ_INIT(&order);
	i = 0;
	TAILQ_FOREACH(np, &config->pools, entry) {
		struct config_pool	*copy = copies[i++];

		pool = supervisor_pool_find(sv, np->name);
		if (pool == NULL) {
			log_info("pool %s: added", np->name);
			pool = supervisor_pool_new(sv, copy);
			if (pool == NULL) {
				config_pool_free(copy);
				log_warnx("pool %s: out of memory", np->name);
				continue;
			}
			TAILQ_REMOVE(&sv->pools, pool, entry);
			TAILQ_INSERT_TAIL(&order, pool, entry);
			if (supervisor_pool_sync(pool) != 0)
				log_warnx("pool %s: out of memory starting "
				    "it", np->name);
			continue;
		}
		TAILQ_REMOVE(&sv->pools, pool, entry);
		TAILQ_INSERT_TAIL(&order, pool, entry);
		if (pool->removing || pool->next_cfg != NULL) {
			/* Still going away: come back with these settings. */
			pool->removing = false;
			config_pool_free(pool->next_cfg);
			pool->next_cfg = copy;
			supervisor_pool_check(pool);
		} else if (config_pool_equal(pool->cfg, copy)) {
			config_pool_free(copy);
		} else if (config_pool_equal_but_instances(pool->cfg, copy)) {
			log_info("pool %s: instances changed", np->name);
			config_pool_free(pool->cfg);
			pool->cfg = copy;
			pool->instances = (unsigned)copy->instances;
			if (supervisor_pool_sync(pool) != 0)
				log_warnx("pool %s: out of memory scaling it",
				    np->name);
		} else {
			log_info("pool %s: changed, restarting it", np->name);
			pool->next_cfg = copy;
			supervisor_pool_retire(pool);
		}
	}
	free(copies);

	/* What is left in sv->pools is not in the new config. */
	TAILQ_FOREACH_SAFE(pool, &sv->pools, entry, next) {
		TAILQ_REMOVE(&sv->pools, pool, entry);
		TAILQ_INSERT_TAIL(&order, pool, entry);
		if (!pool->removing) {
			log_info("pool %s: removed from the config, stopping "
			    "it", pool->cfg->name);
			pool->removing = true;
			config_pool_free(pool->next_cfg);
			pool->next_cfg = NULL;
		}
	}
	TAILQ_CONCAT(&sv->pools, &order, entry);
	TAILQ_FOREACH_SAFE(pool, &sv->pools, entry, next)
		if (pool->removing)
			supervisor_pool_retire(pool);

	config_free(sv->config);
	sv->config = config;
	return 0;

nomem:
	for (i = 0; copies != NULL && i < ncopies; i++)
		config_pool_free(copies[i]);
	free(copies);
	supervisor_cause(cause, "out of memory");
	return -ENOMEM;
}

/* Reads the config file again and applies it. */
int
supervisor_reload_file(struct supervisor *sv, char **cause)
{
	struct config	*config;
	int		 error, old_level = sv->config->broker.log_level;

	if (sv->config->path == NULL) {
		supervisor_cause(cause, "there is no config file to reload "
		    "(patchbayd was started without -c)");
		return -ENOENT;
	}
	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	log_info("supervisor: reloading %s", sv->config->path);
	if ((error = config_load(sv->config->path, &config, cause)) != 0)
		return error;
	if ((error = supervisor_reload(sv, config, cause)) != 0) {
		config_free(config);
		return error;
	}
	if (settings_given(&config->broker, SETTINGS_LOG_LEVEL) &&
	    config->broker.log_level != old_level)
		log_set_level((enum log_level)config->broker.log_level);
	return 0;
}

/*
 * supervisor-child.c: starting one child of a supervised slot, and its
 * output.
 *
 * A child's plan is made from its pool's settings before anything is
 * forked: the user (looked up, and only when patchbayd is root), the
 * pool's umask, a fixed environment (PATH, HOME, LANG, the variables of
 * env_keep, the PATCHBAY_* variables, then the pool's own environment;
 * nothing else of patchbayd's), the program found in the PATH the child
 * will have, and its descriptors: 0 from /dev/null, 1 and 2 a pipe to us,
 * 3 (PATCHBAY_FD) its end of a socketpair, and no other (util/spawn.c
 * closes the rest: listeners, other peers' connections). util/spawn.c
 * forks it into a session of its own that dies with patchbayd, and says at
 * once when it could not be executed.
 *
 * The pool's setrlimit() limits are part of the plan (checked against
 * patchbayd's own hard limits first: a limit it could not give is a fatal
 * error with its reason, never a silent clamp). A pool with cgroup limits
 * gets a cgroup of its own (cgroup.c) that the child joins before execve,
 * so that its whole process tree is held; when patchbayd's cgroup cannot
 * take them, the pool runs without them and the log says why, once. When
 * a child ends, supervisor_child_exit_text() names the limit that ended
 * it, if one did, for the log, `ps` and LAST_EXIT.
 *
 * The broker's end of the socketpair goes to ops->attach, which makes it a
 * worker connection. The output pipe (stdout and stderr both) is read from
 * the event loop and logged line by line ("thumbs/2: a line") at info, or
 * written to the pool's stdout_log file instead when it has one; its EOF
 * is one of the two halves of a child's end (supervisor_check_done()).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/supervisor-int.h"

#define SUPERVISOR_CHILD_FD		3	/* PATCHBAY_FD in children */
#define SUPERVISOR_MAX_LOG_LINE		8192
#define SUPERVISOR_DEFAULT_PATH		"/usr/local/bin:/usr/bin:/bin"
#define SUPERVISOR_PWBUF		4096	/* first getpwnam_r buffer */
#define SUPERVISOR_MOUNTINFO		"/proc/self/mountinfo"
#define SUPERVISOR_SELF_CGROUP		"/proc/self/cgroup"

/* Output. */

/*
 * Logs one line of a child's output: to its pool's stdout_log when it has
 * one, else to the broker's log at info.
 */
static void
supervisor_child_log_line(struct supervisor_proc *p, const char *line)
{
	if (p->pool != NULL && !p->removed && p->pool->out_log != NULL)
		log_file_line(p->pool->out_log, p->id, line);
	else
		log_info("%s: %s", p->id, line);
}

/* Logs the complete lines of the child's output (all of it at EOF). */
static void
supervisor_child_log_output(struct supervisor_proc *p, bool eof)
{
	char	*line;
	size_t	 len;

	while ((line = evbuffer_readln(p->out_buf, &len,
	    EVBUFFER_EOL_CRLF)) != NULL) {
		supervisor_child_log_line(p, line);
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
		supervisor_child_log_line(p, chunk);
	}
}

/* Makes pool->out_log match the pool's stdout_log; see supervisor-int.h. */
void
supervisor_child_sync_out_log(struct supervisor_pool *pool)
{
	const char	*path = pool->cfg->stdout_log;
	int		 r;

	if (pool->out_log != NULL && (path == NULL ||
	    strcmp(log_file_path(pool->out_log), path) != 0)) {
		log_file_free(pool->out_log);
		pool->out_log = NULL;
	}
	if (path == NULL || pool->out_log != NULL)
		return;
	if ((r = log_file_open(path, &pool->out_log)) != 0)
		log_warnx("pool %s: cannot open stdout_log %s, its output "
		    "goes to this log: %s", pool->cfg->name, path,
		    strerror(-r));
}

/* Closes the output pipe (after logging what is left). */
void
supervisor_child_output_close(struct supervisor_proc *p)
{
	if (p->out_ev != NULL) {
		event_free(p->out_ev);
		p->out_ev = NULL;
	}
	if (p->out_buf != NULL) {
		supervisor_child_log_output(p, true);
		evbuffer_free(p->out_buf);
		p->out_buf = NULL;
	}
	if (p->out_fd != -1) {
		close(p->out_fd);
		p->out_fd = -1;
	}
}

/* The child's stdout or stderr has something (or EOF). */
static void
supervisor_child_output_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor_proc	*p = arg;
	int			 n;

	(void)what;
	n = evbuffer_read(p->out_buf, fd, 16384);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		supervisor_child_log_output(p, false);
		return;
	}
	if (n == -1)
		log_warn("%s: reading its output", p->id);
	supervisor_child_output_close(p);
	supervisor_check_done(p);
}

/* The plan. */

/*
 * Looks up the pool's user (and group, which replaces the user's own) for
 * plan. Returns 0, or a negative errno with a sentence in *cause.
 */
static int
supervisor_child_user(const struct config_pool *cfg, struct spawn_user *user,
    char **cause)
{
	char		err[UTIL_ERRLEN];
	unsigned	gid;
	int		error;

	if (geteuid() != 0) {
		supervisor_cause(cause, "user=%s needs patchbayd to run as root",
		    cfg->user);
		return -EPERM;
	}
	error = spawn_user_lookup(cfg->user, SUPERVISOR_PWBUF, user);
	if (error == 0 && cfg->group != NULL) {
		if (parse_group(cfg->group, &gid, err) != 0) {
			supervisor_cause(cause, "group=%s: %s", cfg->group, err);
			spawn_user_clear(user);
			return -ENOENT;
		}
		if ((error = spawn_user_set_group(user, gid)) != 0)
			spawn_user_clear(user);
	}
	if (error == -ENOENT)
		supervisor_cause(cause, "user '%s' does not exist", cfg->user);
	else if (error == -ENOMEM)
		supervisor_cause(cause, "out of memory");
	else if (error != 0)
		supervisor_cause(cause, "cannot look up user '%s': %s",
		    cfg->user, strerror(-error));
	return error;
}

/*
 * Prepares a child of p: user, umask, environment, program. Returns 0, or
 * a negative errno with a sentence in *cause (plan and user cleared).
 * supervisor-health.c starts its checks from the same plan, so that they
 * run with the same environment, umask and user.
 */
int
supervisor_child_plan(struct supervisor_proc *p, struct spawn_plan *plan,
    struct spawn_user *user, char **cause)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	const char			*path, *v;
	char				 err[UTIL_ERRLEN];
	int				 error;

	memset(plan, 0, sizeof(*plan));
	memset(user, 0, sizeof(*user));
	plan->argv = cfg->argv;
	plan->dir = cfg->directory;
	plan->flags = SPAWN_SESSION | SPAWN_DIE_WITH_PARENT;
	if (cfg->umask >= 0) {
		plan->flags |= SPAWN_UMASK;
		plan->umask = (mode_t)cfg->umask;
	}
	if (cfg->user != NULL) {
		if ((error = supervisor_child_user(cfg, user, cause)) != 0)
			return error;
		plan->user = user;
	}

	if ((path = getenv("PATH")) == NULL || *path == '\0')
		path = SUPERVISOR_DEFAULT_PATH;
	if (spawn_env_setf(plan, "PATH", "%s", path) != 0)
		goto nomem;
	if ((v = getenv("HOME")) != NULL &&
	    spawn_env_setf(plan, "HOME", "%s", v) != 0)
		goto nomem;
	if ((v = getenv("LANG")) != NULL &&
	    spawn_env_setf(plan, "LANG", "%s", v) != 0)
		goto nomem;
	/*
	 * Nothing else of ours is passed on unless the pool names it: our
	 * environment may hold what its processes have no business seeing.
	 * Before the user's and the PATCHBAY_ variables, which must hold.
	 */
	for (size_t i = 0; cfg->env_keep[i] != NULL; i++)
		if ((v = getenv(cfg->env_keep[i])) != NULL &&
		    spawn_env_setf(plan, cfg->env_keep[i], "%s", v) != 0)
			goto nomem;
	if (plan->user != NULL &&
	    (spawn_env_setf(plan, "HOME", "%s", user->home) != 0 ||
	    spawn_env_setf(plan, "USER", "%s", user->name) != 0 ||
	    spawn_env_setf(plan, "LOGNAME", "%s", user->name) != 0))
		goto nomem;
	if (spawn_env_setf(plan, "PATCHBAY_FD", "%d",
	    SUPERVISOR_CHILD_FD) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_POOL", "%s", cfg->name) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_INSTANCE", "%u",
	    p->instance != 0 ? p->instance : 1) != 0 ||
	    spawn_env_setf(plan, "PATCHBAY_ID", "%s", p->id) != 0 ||
	    spawn_env_copy(plan, cfg->environment) != 0)
		goto nomem;

	/* Root may raise its hard limits; anyone else cannot. */
	if ((error = limits_plan(&cfg->limits, geteuid() == 0, plan,
	    err)) != 0) {
		supervisor_cause(cause, "%s", err);
		spawn_plan_clear(plan);
		spawn_user_clear(user);
		return error;
	}

	/* Search the PATH the child will have. */
	error = spawn_find_program(cfg->argv[0], spawn_env_get(plan, "PATH"),
	    &plan->path);
	if (error == -ENOMEM)
		goto nomem;
	if (error != 0) {
		supervisor_cause(cause, "cannot execute '%s': %s",
		    cfg->argv[0], strerror(-error));
		spawn_plan_clear(plan);
		spawn_user_clear(user);
		return error;
	}
	return 0;

nomem:
	supervisor_cause(cause, "out of memory");
	spawn_plan_clear(plan);
	spawn_user_clear(user);
	return -ENOMEM;
}

/* Cgroups. */

/*
 * Makes sure sv->cg exists and gives the controllers of need to its
 * children. Returns 0, or -1 with a sentence in *cause; a root that cannot
 * be found is not looked for again.
 */
static int
supervisor_cgroup_root(struct supervisor *sv, unsigned need, char **cause)
{
	if (sv->cg == NULL) {
		if (sv->cg_error != NULL) {
			supervisor_cause(cause, "%s", sv->cg_error);
			return -1;
		}
		if (cgroup_root_open(SUPERVISOR_MOUNTINFO,
		    SUPERVISOR_SELF_CGROUP, &sv->cg, cause) != 0) {
			sv->cg_error = strdup(*cause != NULL ? *cause :
			    "out of memory");
			return -1;
		}
	}
	if (cgroup_root_enable(sv->cg, need, cause) != 0)
		return -1;
	if (!sv->cg_ready)
		log_info("supervisor: pools' cgroups go under %s",
		    cgroup_root_path(sv->cg));
	sv->cg_ready = true;
	return 0;
}

/* Writes the names of the cgroup limits of l ("memory_max, pids_max"). */
static void
supervisor_cgroup_keys(const struct limits *l, char *buf, size_t len)
{
	size_t	n = 0;

	buf[0] = '\0';
	for (int k = LIMITS_NRLIMITS; k < LIMITS__MAX && n < len; k++) {
		if (!limits_has(l, (enum limits_key)k))
			continue;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 0 ? ", " :
		    "", limits_name((enum limits_key)k));
	}
}

/* Prepares patchbayd's cgroup before any child; see supervisor-int.h. */
void
supervisor_child_cgroup_setup(struct supervisor *sv)
{
	struct supervisor_pool	*pool;
	unsigned		 need = 0;
	char			*cause = NULL;

	TAILQ_FOREACH(pool, &sv->pools, entry)
		need |= pool->cfg->limits.set & LIMITS_CGROUP_MASK;
	if (need == 0)
		return;
	/* Each pool says why when it starts. */
	if (supervisor_cgroup_root(sv, need, &cause) != 0)
		log_debug("supervisor: cgroups: %s", cause != NULL ? cause :
		    "out of memory");
	free(cause);
}

/*
 * Puts p's child in its pool's cgroup, when its pool has cgroup limits:
 * creates the cgroup, writes the limits, and opens its cgroup.procs.
 * Returns that descriptor for the plan, or -1 when the child is to stay
 * where patchbayd is: no such limit, or they cannot be applied (the pool
 * says why once).
 */
static int
supervisor_child_cgroup(struct supervisor_proc *p)
{
	struct supervisor		*sv = p->sv;
	struct supervisor_pool		*pool = p->pool;
	const struct config_pool	*cfg;
	unsigned			 need;
	char				*cause = NULL, keys[128];
	int				 fd = -1;

	p->in_cgroup = false;
	if (pool == NULL)
		return -1;
	cfg = pool->cfg;
	if ((need = cfg->limits.set & LIMITS_CGROUP_MASK) == 0) {
		/* A reload took its limits away: so goes its cgroup. */
		if (pool->cg_made)
			supervisor_child_cgroup_remove(pool);
		return -1;
	}
	if (supervisor_cgroup_root(sv, need, &cause) == 0) {
		/* Made, even when a limit cannot be written into it. */
		pool->cg_made = true;
		if (cgroup_pool_apply(sv->cg, cfg->name, &cfg->limits,
		    &cause) == 0)
			cgroup_pool_open_procs(sv->cg, cfg->name, &fd, &cause);
	}
	if (fd == -1) {
		if (!pool->cg_warned) {
			supervisor_cgroup_keys(&cfg->limits, keys,
			    sizeof(keys));
			log_warnx("pool %s: %s not applied: %s", cfg->name,
			    keys, cause != NULL ? cause : "out of memory");
			pool->cg_warned = true;
		}
		free(cause);
		return -1;
	}
	p->oom_kills = cgroup_pool_oom_kills(sv->cg, cfg->name);
	p->in_cgroup = true;
	return fd;
}

/* Removes a pool's cgroup; see supervisor-int.h. */
void
supervisor_child_cgroup_remove(struct supervisor_pool *pool)
{
	int	r;

	if (!pool->cg_made || pool->sv->cg == NULL)
		return;
	if ((r = cgroup_pool_remove(pool->sv->cg, pool->cfg->name)) != 0)
		log_warnx("pool %s: cannot remove its cgroup %s/pool-%s: %s",
		    pool->cfg->name, cgroup_root_path(pool->sv->cg),
		    pool->cfg->name, strerror(-r));
	else
		pool->cg_made = false;
}

/* Exits. */

/*
 * True when wstatus may be what an allocation refused under RLIMIT_AS
 * leads to: a failing exit code, or a crash (abort, a NULL pointer).
 */
static bool
supervisor_child_memory_failure(const struct config_pool *cfg, int wstatus)
{
	int	sig;

	if (WIFEXITED(wstatus))
		return !policy_exit_success(cfg, wstatus);
	if (!WIFSIGNALED(wstatus))
		return false;
	sig = WTERMSIG(wstatus);
	return sig == SIGABRT || sig == SIGSEGV || sig == SIGBUS;
}

/* Describes how p's child ended; see supervisor-int.h. */
bool
supervisor_child_exit_text(struct supervisor_proc *p, int wstatus,
    uint64_t cpu_ms, char *buf, size_t len)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	const struct limits		*l = &cfg->limits;
	char				 status[64], what[64], mem[64];
	char				 oom_by[96];
	int				 sig = 0;
	bool				 oom = false;

	supervisor_status_text(wstatus, status, sizeof(status));
	snprintf(buf, len, "%s", status);
	/* An operator's stop is no limit's doing. */
	if (p->state == SUPERVISOR_STOPPING)
		return false;
	if (WIFSIGNALED(wstatus))
		sig = WTERMSIG(wstatus);
	if (p->in_cgroup && p->pool != NULL && p->sv->cg != NULL)
		oom = cgroup_pool_oom_kills(p->sv->cg, p->pool->cfg->name) >
		    p->oom_kills;
	/* The OOM killer also counts there when the whole host is short. */
	if (limits_has(l, LIMITS_MEMORY_MAX)) {
		limits_describe(l, LIMITS_MEMORY_MAX, mem, sizeof(mem));
		snprintf(oom_by, sizeof(oom_by), "the OOM killer: %s", mem);
	} else
		snprintf(oom_by, sizeof(oom_by), "the OOM killer");

	if (sig == SIGXCPU && limits_has(l, LIMITS_CPU)) {
		limits_describe(l, LIMITS_CPU, what, sizeof(what));
		snprintf(buf, len, "SIGXCPU: %s", what);
	} else if (sig == SIGKILL && oom) {
		snprintf(buf, len, "killed by %s", oom_by);
	} else if (sig == SIGKILL && limits_has(l, LIMITS_CPU) &&
	    cpu_ms >= l->value[LIMITS_CPU] * 1000) {
		/* It outlived its SIGXCPU: the hard limit's SIGKILL. */
		limits_describe(l, LIMITS_CPU, what, sizeof(what));
		snprintf(buf, len, "SIGKILL: %s (its hard limit)", what);
	} else if (oom && !policy_exit_success(cfg, wstatus)) {
		snprintf(buf, len, "%s (one of its processes was killed by "
		    "%s)", status, oom_by);
	} else if (limits_has(l, LIMITS_MEMORY) &&
	    supervisor_child_memory_failure(cfg, wstatus)) {
		limits_describe(l, LIMITS_MEMORY, what, sizeof(what));
		snprintf(buf, len, "%s (%s)", status, what);
	} else
		return false;
	return true;
}

/* Starting. */

/* Watches the output pipe of p's new child (ownership of fd passes). */
static void
supervisor_child_watch(struct supervisor_proc *p, int fd)
{
	p->out_fd = fd;
	evutil_make_socket_nonblocking(p->out_fd);
	p->out_buf = evbuffer_new();
	p->out_ev = event_new(p->sv->base, p->out_fd, EV_READ | EV_PERSIST,
	    supervisor_child_output_cb, p);
	if (p->out_buf == NULL || p->out_ev == NULL) {
		/* Without its output the child cannot be watched: drop it. */
		log_warnx("%s: out of memory, killing pid %d", p->id,
		    (int)p->pid);
		supervisor_signal(p, SIGKILL);
		supervisor_child_output_close(p);
	} else
		event_add(p->out_ev, NULL);
}

/* Starts a child for p; see supervisor-int.h. */
int
supervisor_child_start(struct supervisor_proc *p, char **cause,
    bool *permanent)
{
	struct supervisor		*sv = p->sv;
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct spawn_plan		 plan;
	struct spawn_user		 user;
	struct spawn_error		 se;
	char				 text[UTIL_ERRLEN];
	int				 sp[2] = { -1, -1 };
	int				 out[2] = { -1, -1 };
	int				 devnull = -1, cgfd, error;
	pid_t				 pid;

	if ((error = supervisor_child_plan(p, &plan, &user, cause)) != 0) {
		*permanent = error != -ENOMEM;
		return error;
	}
	if (p->pool != NULL)
		supervisor_child_sync_out_log(p->pool);
	if ((cgfd = supervisor_child_cgroup(p)) != -1) {
		plan.flags |= SPAWN_CGROUP;
		plan.cgroup_fd = cgfd;
	}
	*permanent = false;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1 ||
	    pipe2(out, O_CLOEXEC) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		error = -errno;
		supervisor_cause(cause, "cannot start '%s': %s",
		    cfg->command, strerror(errno));
		goto fail;
	}
	plan.fds[0] = devnull;
	plan.fds[1] = out[1];
	plan.fds[2] = out[1];
	plan.fds[SUPERVISOR_CHILD_FD] = sp[1];
	plan.nfds = SUPERVISOR_CHILD_FD + 1;
	if ((error = spawn_start(&plan, &se, &pid)) != 0) {
		*permanent = se.stage == SPAWN_STAGE_CHDIR ||
		    se.stage == SPAWN_STAGE_USER ||
		    se.stage == SPAWN_STAGE_EXEC ||
		    se.stage == SPAWN_STAGE_CGROUP ||
		    se.stage == SPAWN_STAGE_RLIMIT;
		spawn_error_text(&plan, &se, cfg->command, text, sizeof(text));
		supervisor_cause(cause, "%s", text);
		goto fail;
	}
	close(sp[1]);
	close(out[1]);
	close(devnull);
	if (cgfd != -1)
		close(cgfd);

	p->pid = pid;
	p->started_at = clock_now_ms();
	p->exited = false;
	p->wstatus = 0;
	p->registered = false;
	supervisor_health_child_started(p);
	supervisor_child_watch(p, out[0]);
	log_info("%s: started pid %d: %s", p->id, (int)pid, cfg->command);

	if (sv->ops.attach != NULL) {
		p->peer = sv->ops.attach(sv->srv, p, sp[0]);
		if (p->peer == NULL) {
			log_warnx("%s: the broker could not take its "
			    "connection, killing pid %d", p->id, (int)pid);
			supervisor_signal(p, SIGKILL);
		}
	} else
		close(sp[0]);
	spawn_plan_clear(&plan);
	spawn_user_clear(&user);
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		if (sp[i] != -1)
			close(sp[i]);
		if (out[i] != -1)
			close(out[i]);
	}
	if (devnull != -1)
		close(devnull);
	if (cgfd != -1)
		close(cgfd);
	spawn_plan_clear(&plan);
	spawn_user_clear(&user);
	return error;
}

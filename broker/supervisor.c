/*
 * supervisor.c: patchbayd's local worker processes, their slots and their
 * lifecycle.
 *
 * The supervisor owns one struct supervisor_pool per [pool:NAME] of the
 * config (with its own copy of the pool's settings) and a list of ad-hoc
 * processes started by `ctl spawn`. A struct supervisor_proc is a slot
 * ("thumbs/3" or an ad-hoc id) that outlives its children: it keeps the
 * state, the restart history and at most one child at a time. Its child
 * is started by supervisor-child.c; the operator verbs that act on slots
 * are in supervisor-verbs.c; the restart arithmetic is in policy.c; the
 * health checks, which may find a process unhealthy and have it
 * restarted, are in supervisor-health.c.
 *
 * A child is finished when both its exit status (SIGCHLD through libevent,
 * then a wait loop) and the EOF of its output pipe have arrived, as tmux's
 * job.c does. Then, unless an operator stopped it, the restart policy, the
 * backoff and the intensity limit pick the next state. Every state change
 * goes through supervisor_set_state(). A slot that goes away is unlinked
 * at once but freed from an event of its own, never inside one of its own
 * callbacks.
 *
 * The broker hears about the children through the struct supervisor_ops
 * that server_set_supervisor() installs: a new child's socket becomes a
 * worker connection, a paused child's worker gets no jobs, a finished
 * child's connection is closed.
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/supervisor-int.h"

#define SUPERVISOR_EOF_GRACE_MS		2000	/* output after exit */
#define SUPERVISOR_DRAIN_POLL_MS	50	/* a stopping worker's jobs */
#define SUPERVISOR_SCALE_TICK_MS	100	/* on-demand pools look */

/*
 * The wait status the restart policy is given for a process stopped for
 * being unhealthy: a failure (killed), whatever status it exited with,
 * since a worker that drains exits 0 on its stop signal.
 */
#define SUPERVISOR_UNHEALTHY_WSTATUS	SIGKILL

static void	supervisor_shutdown_step(struct supervisor *);
static void	supervisor_proc_drain_check(struct supervisor_proc *);

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
void
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
void
supervisor_status_text(int wstatus, char *buf, size_t len)
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
const struct config_pool *
supervisor_proc_cfg(const struct supervisor_proc *p)
{
	return p->pool != NULL ? p->pool->cfg : p->own_cfg;
}

/* The one place a process changes state; logs old -> new at info. */
void
supervisor_set_state(struct supervisor_proc *p, enum supervisor_state new)
{
	enum supervisor_state	old = p->state;

	if (old == new)
		return;
	if (new != SUPERVISOR_FATAL)
		p->reason[0] = '\0';
	if (!policy_transition_valid(old, new))
		log_error("%s: %s: invalid transition %s -> %s", __func__,
		    p->id, policy_state_name(old), policy_state_name(new));
	/* Operators follow these: at info, with the process as fields. */
	if (p->pid != 0)
		log_info("proc=%s pid=%d: %s -> %s", p->id, (int)p->pid,
		    policy_state_name(old), policy_state_name(new));
	else
		log_info("proc=%s: %s -> %s", p->id, policy_state_name(old),
		    policy_state_name(new));
	p->state = new;
	supervisor_health_state(p, old, new);
	if (p->sv->ops.changed != NULL)
		p->sv->ops.changed(p->sv->srv, p, old, new);
}

/* Arms the process's timer for kind in ms. */
static void
supervisor_timer_arm(struct supervisor_proc *p, enum supervisor_timer kind,
    uint64_t ms)
{
	struct timeval	tv;

	clock_timer_tv(ms, &tv);
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
void
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

/* The process after p (the first when p is NULL); see broker.h. */
struct supervisor_proc *
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
struct supervisor_pool *
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

/* Process lifecycle. */

/* Starts p's child; a failure is fatal or a failed run, as it deserves. */
void
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
	if (supervisor_child_start(p, &cause, &permanent) == 0) {
		supervisor_set_state(p, SUPERVISOR_STARTING);
		supervisor_set_state(p, supervisor_proc_up_state(p));
		return;
	}
	log_warnx("%s: %s", p->id, cause != NULL ? cause : "cannot start");
	if (permanent) {
		supervisor_set_state(p, SUPERVISOR_FATAL);
		snprintf(p->reason, sizeof(p->reason), "%s", cause != NULL ?
		    cause : "cannot start");
		free(cause);
		return;
	}
	free(cause);
	next = policy_exit_decide(cfg, &p->hist, 127 << 8, 0,
	    clock_now_ms(), supervisor_random(p->sv), &delay);
	if (next == SUPERVISOR_BACKOFF) {
		format_duration(delay, buf, sizeof(buf));
		log_info("%s: trying again in %s", p->id, buf);
		supervisor_set_state(p, SUPERVISOR_BACKOFF);
		supervisor_timer_arm(p, TIMER_BACKOFF, delay);
	} else {
		supervisor_set_state(p, SUPERVISOR_FATAL);
		format_duration(cfg->restart_window_ms, buf, sizeof(buf));
		snprintf(p->reason, sizeof(p->reason), "could not be started "
		    "%d times within %s", cfg->max_restarts, buf);
	}
}

/*
 * The state of a process whose child runs (not paused): a pool's process
 * is a worker, running once it has registered; an ad-hoc command may be
 * anything, running once it was executed (spawn_start() waited for that),
 * whether or not it ever speaks to the broker.
 */
enum supervisor_state
supervisor_proc_up_state(const struct supervisor_proc *p)
{
	return p->pool == NULL || p->registered ? SUPERVISOR_RUNNING :
	    SUPERVISOR_STARTING;
}

/* Frees a slot that is in no list and has no child. */
void
supervisor_proc_free(struct supervisor_proc *p)
{
	if (p == NULL)
		return;
	if (p->timer != NULL)
		event_free(p->timer);
	supervisor_health_clear(p);
	supervisor_child_output_close(p);
	policy_history_clear(&p->hist);
	config_pool_free(p->own_cfg);
	free(p);
}

/* Frees the slots removed since the last time, from the event loop. */
static void
supervisor_free_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor	*sv = arg;
	struct supervisor_proc	*p;

	(void)fd;
	(void)what;
	while ((p = TAILQ_FIRST(&sv->removed)) != NULL) {
		TAILQ_REMOVE(&sv->removed, p, entry);
		supervisor_proc_free(p);
	}
}

/*
 * Unlinks a slot that has no child. It is freed from sv->free_ev, since
 * this may run inside one of its own callbacks (its timer, its output
 * event) or while a caller still holds it.
 */
void
supervisor_proc_remove(struct supervisor_proc *p)
{
	struct supervisor	*sv = p->sv;

	if (p->pool != NULL)
		TAILQ_REMOVE(&p->pool->procs, p, entry);
	else
		TAILQ_REMOVE(&sv->adhoc, p, entry);
	log_debug("proc %s: removed", p->id);
	evtimer_del(p->timer);
	p->timer_kind = TIMER_NONE;
	supervisor_child_output_close(p);
	/* Its pool may be freed before it is: it must not look there. */
	p->pool = NULL;
	p->removed = true;
	TAILQ_INSERT_TAIL(&sv->removed, p, entry);
	event_active(sv->free_ev, EV_TIMEOUT, 0);
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
	case TIMER_DRAIN:
		supervisor_proc_drain_check(p);
		break;
	case TIMER_KILL:
		log_warnx("%s: pid %d did not stop within kill_timeout, "
		    "killing it", p->id, (int)p->pid);
		supervisor_signal(p, SIGKILL);
		break;
	case TIMER_EOF:
		log_warnx("%s: pid %d exited but its output is still open "
		    "(a process outside its group?), closing it", p->id,
		    (int)p->pid);
		supervisor_child_output_close(p);
		supervisor_check_done(p);
		break;
	case TIMER_NONE:
		break;
	}
}

/* A new slot (not linked, stopped, no child); NULL on ENOMEM. */
struct supervisor_proc *
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
	p->health.out_fd = -1;
	if (pool != NULL)
		snprintf(p->id, sizeof(p->id), "%s/%u", pool->cfg->name,
		    instance);
	else
		snprintf(p->id, sizeof(p->id), "%s", id);
	cfg = supervisor_proc_cfg(p);
	p->timer = evtimer_new(sv->base, supervisor_timer_cb, p);
	if (p->timer == NULL || supervisor_health_init(p) != 0 ||
	    policy_history_init(&p->hist, cfg->max_restarts) != 0) {
		p->own_cfg = NULL;
		supervisor_proc_free(p);
		return NULL;
	}
	return p;
}

/* Jobs p's worker holds now: 0 without a registered worker. */
static unsigned
supervisor_proc_running(const struct supervisor_proc *p)
{
	struct supervisor	*sv = p->sv;

	if (p->peer == NULL || !p->registered || sv->ops.running == NULL)
		return 0;
	return sv->ops.running(sv->srv, p->peer);
}

/* Sends sig to a stopping p, then SIGKILL after kill_timeout. */
static void
supervisor_proc_signal_stop(struct supervisor_proc *p, int sig)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	const char			*name = format_signal(sig);

	log_info("%s: stopping pid %d with SIG%s", p->id, (int)p->pid,
	    name != NULL ? name : "?");
	supervisor_signal(p, sig);
	if (!p->exited && sig != SIGKILL)
		supervisor_timer_arm(p, TIMER_KILL, cfg->kill_timeout_ms);
}

/*
 * A stopping p drains: once its worker's jobs are done, or stop_timeout
 * ran out, it gets its stop signal.
 */
static void
supervisor_proc_drain_check(struct supervisor_proc *p)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	unsigned			 n = supervisor_proc_running(p);

	if (n == 0) {
		log_info("%s: its %u job%s finished", p->id, p->drained,
		    p->drained == 1 ? "" : "s");
		supervisor_proc_signal_stop(p, cfg->stop_signal);
	} else if (clock_now_ms() >= p->drain_until) {
		log_warnx("%s: %u of its %u job%s still running when the stop "
		    "timeout ran out", p->id, n, p->drained,
		    p->drained == 1 ? "" : "s");
		p->drain_left = n;
		supervisor_proc_signal_stop(p, cfg->stop_signal);
	} else
		supervisor_timer_arm(p, TIMER_DRAIN, SUPERVISOR_DRAIN_POLL_MS);
}

/*
 * Stops p (or settles it when it has no child). A worker first gets no
 * new jobs and up to timeout_ms (0: stop_timeout) to finish its running
 * ones; then the stop signal, and SIGKILL after kill_timeout.
 */
void
supervisor_proc_stop(struct supervisor_proc *p, uint64_t timeout_ms,
    bool force, enum supervisor_after after)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct supervisor		*sv = p->sv;
	char				 d[32];
	bool				 paused;

	if (p->pid != 0) {
		if (p->state == SUPERVISOR_STOPPING) {
			if (force)
				supervisor_signal(p, SIGKILL);
			if (after == AFTER_REMOVE || p->after != AFTER_REMOVE)
				p->after = after;
			return;
		}
		paused = p->state == SUPERVISOR_PAUSED;
		p->after = after;
		supervisor_set_state(p, SUPERVISOR_STOPPING);
		if (p->peer != NULL && sv->ops.drain != NULL)
			sv->ops.drain(sv->srv, p->peer);
		/* A paused process cannot finish anything: no waiting. */
		p->drained = force || paused ? 0 : supervisor_proc_running(p);
		p->drain_left = 0;
		if (p->drained > 0) {
			p->drain_until = clock_now_ms() + (timeout_ms != 0 ?
			    timeout_ms : cfg->stop_timeout_ms);
			format_duration(timeout_ms != 0 ? timeout_ms :
			    cfg->stop_timeout_ms, d, sizeof(d));
			log_info("%s: stopping: no new jobs, up to %s for its "
			    "%u running", p->id, d, p->drained);
			supervisor_timer_arm(p, TIMER_DRAIN,
			    SUPERVISOR_DRAIN_POLL_MS);
			return;
		}
		supervisor_proc_signal_stop(p, force ? SIGKILL :
		    cfg->stop_signal);
		/* A stopped process could not act on its signal. */
		if (paused)
			supervisor_signal(p, SIGCONT);
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
	struct peer			*peer = p->peer;
	char				 buf[32];

	supervisor_timer_cancel(p);
	supervisor_child_output_close(p);
	uptime = p->exited_at - p->started_at;
	p->peer = NULL;
	p->pid = 0;
	p->registered = false;
	p->last_status = p->wstatus;
	snprintf(p->last_exit, sizeof(p->last_exit), "%s", p->exit_text);
	p->after = AFTER_NONE;
	if (peer != NULL && sv->ops.detach != NULL)
		sv->ops.detach(sv->srv, peer);

	if (after == AFTER_REMOVE) {
		supervisor_set_state(p, SUPERVISOR_STOPPED);
		supervisor_proc_remove(p);
		if (pool != NULL)
			supervisor_pool_check(pool);
	} else if (after == AFTER_RESTART && !sv->shutting_down) {
		policy_history_init(&p->hist, cfg->max_restarts);
		p->restarts++;
		supervisor_proc_start(p);
	} else if ((p->state == SUPERVISOR_STOPPING &&
	    after != AFTER_UNHEALTHY) || sv->shutting_down) {
		supervisor_set_state(p, SUPERVISOR_STOPPED);
		/* What the stop did to its jobs, for ps and ctl stop. */
		if (p->drained == 0)
			snprintf(p->reason, sizeof(p->reason), "stopped; no job "
			    "was running");
		else if (p->drain_left == 0)
			snprintf(p->reason, sizeof(p->reason), "stopped after "
			    "its %u job%s finished", p->drained,
			    p->drained == 1 ? "" : "s");
		else
			snprintf(p->reason, sizeof(p->reason), "stopped with %u "
			    "of its %u job%s still running at stop_timeout",
			    p->drain_left, p->drained,
			    p->drained == 1 ? "" : "s");
	} else {
		next = policy_exit_decide(cfg, &p->hist,
		    after == AFTER_UNHEALTHY ? SUPERVISOR_UNHEALTHY_WSTATUS :
		    p->wstatus, uptime, clock_now_ms(), supervisor_random(sv),
		    &delay);
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
		else if (next == SUPERVISOR_FATAL)
			snprintf(p->reason, sizeof(p->reason), "fatal after "
			    "%d restart%s within %s", cfg->max_restarts,
			    cfg->max_restarts == 1 ? "" : "s", buf);
	}
	if (sv->shutting_down)
		supervisor_shutdown_step(sv);
}

/* Finishes p's child when both its status and its output's EOF are in. */
void
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
	struct rusage		 ru;
	siginfo_t		 si;
	pid_t			 pid;
	int			 status;
	uint64_t		 cpu_ms;
	bool			 limit;

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
		if ((p = supervisor_health_find_pid(sv, pid)) != NULL) {
			/* What its check left in its group goes with it. */
			if (kill(-pid, SIGKILL) == -1 && errno != ESRCH)
				log_warn("%s: kill(-%d, KILL)", p->id,
				    (int)pid);
			while (waitpid(pid, &status, 0) == -1 &&
			    errno == EINTR)
				;
			supervisor_health_exited(p, status);
			continue;
		}
		p = supervisor_find_pid(sv, pid);
		if (p != NULL && !p->exited)
			supervisor_signal(p, SIGKILL);
		memset(&ru, 0, sizeof(ru));
		while (wait4(pid, &status, 0, &ru) == -1) {
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
		cpu_ms = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) *
		    1000 + (uint64_t)(ru.ru_utime.tv_usec +
		    ru.ru_stime.tv_usec) / 1000;
		limit = supervisor_child_exit_text(p, status, cpu_ms,
		    p->exit_text, sizeof(p->exit_text));
		if (p->state == SUPERVISOR_STOPPING)
			log_info("%s: pid %d stopped (%s)", p->id, (int)pid,
			    p->exit_text);
		else if (limit)
			log_warnx("%s: pid %d exited: %s", p->id, (int)pid,
			    p->exit_text);
		else
			log_info("%s: pid %d exited (%s)", p->id, (int)pid,
			    p->exit_text);
		supervisor_timer_cancel(p);
		if (p->out_fd != -1)
			supervisor_timer_arm(p, TIMER_EOF,
			    SUPERVISOR_EOF_GRACE_MS);
		supervisor_check_done(p);
	}
}

/* Pools. */

/* Creates the missing slots up to pool->instances and trims the rest. */
int
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
struct supervisor_pool *
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
	supervisor_pool_standby(pool, false);
	TAILQ_REMOVE(&pool->sv->pools, pool, entry);
	supervisor_child_cgroup_remove(pool);
	log_file_free(pool->out_log);
	config_pool_free(pool->cfg);
	config_pool_free(pool->next_cfg);
	free(pool);
}

/* Opens every pool's stdout_log again; see broker.h. */
void
supervisor_reopen_logs(struct supervisor *sv)
{
	struct supervisor_pool	*pool;
	int			 r;

	TAILQ_FOREACH(pool, &sv->pools, entry) {
		if (pool->out_log == NULL)
			continue;
		if ((r = log_file_reopen(pool->out_log)) != 0)
			log_warnx("pool %s: cannot open stdout_log %s again, "
			    "still writing to the old file: %s",
			    pool->cfg->name, log_file_path(pool->out_log),
			    strerror(-r));
	}
}

/* Once a retiring pool's slots are gone: free it, or start its new self. */
void
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
		supervisor_pool_standby(pool, false);	/* the old functions */
		config_pool_free(pool->cfg);
		pool->cfg = pool->next_cfg;
		pool->next_cfg = NULL;
		pool->instances = (unsigned)pool->cfg->instances;
		if (supervisor_pool_sync(pool) != 0)
			log_warnx("pool %s: out of memory starting it",
			    pool->cfg->name);
	}
}

/* True for a pool of instances = MIN..MAX. */
bool
supervisor_pool_on_demand(const struct supervisor_pool *pool)
{
	return pool->cfg->instances_max > pool->cfg->instances;
}

/* Tells the broker whether pool serves its functions on demand. */
void
supervisor_pool_standby(struct supervisor_pool *pool, bool on)
{
	struct supervisor	*sv = pool->sv;

	if (pool->standby == on || sv->ops.standby == NULL)
		return;
	pool->standby = on;
	for (char **fn = pool->cfg->functions; *fn != NULL; fn++)
		sv->ops.standby(sv->srv, *fn, on);
}

/* The on-demand step of one pool, at now. */
static void
supervisor_pool_scale(struct supervisor_pool *pool, uint64_t now)
{
	struct supervisor		*sv = pool->sv;
	const struct config_pool	*cfg = pool->cfg;
	struct supervisor_proc		*p, *last = NULL;
	struct autoscale_view		 v;
	uint32_t			 q, f;
	char				 d[32];

	memset(&v, 0, sizeof(v));
	v.min = (unsigned)cfg->instances;
	v.max = (unsigned)cfg->instances_max;
	v.instances = pool->instances;
	v.scale_up_after_ms = cfg->scale_up_after_ms;
	v.idle_timeout_ms = cfg->idle_timeout_ms;
	TAILQ_FOREACH(p, &pool->procs, entry) {
		if (p->state == SUPERVISOR_STARTING)
			v.starting++;
		if (p->instance <= pool->instances)
			last = p;
	}
	v.last_idle = last != NULL && last->state == SUPERVISOR_RUNNING &&
	    supervisor_proc_running(last) == 0;
	for (char **fn = cfg->functions; *fn != NULL; fn++) {
		if (sv->ops.load == NULL)
			break;
		sv->ops.load(sv->srv, *fn, &q, &f);
		v.queued += q;
		v.free_slots += f;
	}
	switch (policy_autoscale(&pool->scale, &v, now)) {
	case AUTOSCALE_UP:
		if (v.instances < v.min)
			log_info("pool %s: starting instance %u (instances = "
			    "%u..%u)", cfg->name, v.instances + 1, v.min,
			    v.max);
		else {
			format_duration(cfg->scale_up_after_ms, d, sizeof(d));
			log_info("pool %s: %u job%s waited %s with no free "
			    "slot: starting instance %u (instances = %u..%u)",
			    cfg->name, v.queued, v.queued == 1 ? "" : "s", d,
			    v.instances + 1, v.min, v.max);
		}
		pool->instances++;
		break;
	case AUTOSCALE_DOWN:
		format_duration(cfg->idle_timeout_ms, d, sizeof(d));
		log_info("pool %s: %s idle for %s: stopping it (instances = "
		    "%u..%u)", cfg->name, last->id, d, v.min, v.max);
		pool->instances--;
		break;
	case AUTOSCALE_KEEP:
		return;
	}
	if (supervisor_pool_sync(pool) != 0)
		log_warnx("pool %s: out of memory scaling it", cfg->name);
}

/* Every SUPERVISOR_SCALE_TICK_MS while an on-demand pool exists. */
static void
supervisor_scale_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor	*sv = arg;
	struct supervisor_pool	*pool;
	uint64_t		 now = clock_now_ms();
	bool			 any = false;

	(void)fd;
	(void)what;
	TAILQ_FOREACH(pool, &sv->pools, entry) {
		if (!supervisor_pool_on_demand(pool) || pool->removing ||
		    pool->next_cfg != NULL) {
			supervisor_pool_standby(pool, false);
			continue;
		}
		any = true;
		supervisor_pool_standby(pool, true);
		if (!sv->shutting_down)
			supervisor_pool_scale(pool, now);
	}
	if (!any && sv->scale_ev != NULL)
		evtimer_del(sv->scale_ev);
}

/* Runs the on-demand tick while an on-demand pool exists; see above. */
void
supervisor_scale_arm(struct supervisor *sv)
{
	struct timeval		 tv = { 0, SUPERVISOR_SCALE_TICK_MS * 1000 };
	struct supervisor_pool	*pool;

	TAILQ_FOREACH(pool, &sv->pools, entry)
		if (supervisor_pool_on_demand(pool))
			break;
	if (pool == NULL)
		return;
	if (sv->scale_ev == NULL && (sv->scale_ev = event_new(sv->base, -1,
	    EV_PERSIST, supervisor_scale_cb, sv)) == NULL) {
		log_warnx("supervisor: out of memory: on-demand pools will not "
		    "scale");
		return;
	}
	evtimer_add(sv->scale_ev, &tv);
	/* Register their functions now, before the first job comes. */
	supervisor_scale_cb(-1, 0, sv);
}

/* Stops every slot of a pool for good (reload). */
void
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
    struct supervisor **ret)
{
	struct supervisor	*sv;
	struct config_pool	*cp, *copy;

	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return -ENOMEM;
	sv->base = base;
	TAILQ_INIT(&sv->pools);
	TAILQ_INIT(&sv->adhoc);
	TAILQ_INIT(&sv->removed);
	sv->rng = clock_now_ms() ^ ((uint64_t)getpid() << 32) ^
	    (uint64_t)(uintptr_t)sv;
	if (sv->rng == 0)
		sv->rng = 1;
	sv->free_ev = event_new(base, -1, 0, supervisor_free_cb, sv);
	sv->sigchld = evsignal_new(base, SIGCHLD, supervisor_sigchld_cb, sv);
	if (sv->free_ev == NULL || sv->sigchld == NULL ||
	    event_add(sv->sigchld, NULL) != 0)
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

/* Installs the broker's side; see broker.h. */
void
supervisor_set_ops(struct supervisor *sv, const struct supervisor_ops *ops,
    struct server *srv)
{
	if (ops != NULL)
		sv->ops = *ops;
	else
		memset(&sv->ops, 0, sizeof(sv->ops));
	sv->srv = srv;
}

/* Starts every instance of every pool. */
void
supervisor_start(struct supervisor *sv)
{
	struct supervisor_pool	*pool;

	supervisor_child_cgroup_setup(sv);
	TAILQ_FOREACH(pool, &sv->pools, entry) {
		if (supervisor_pool_sync(pool) != 0)
			log_warnx("pool %s: out of memory starting it",
			    pool->cfg->name);
	}
	supervisor_scale_arm(sv);
}

/* Kills and reaps p's child at once, for supervisor_free(). */
static void
supervisor_proc_kill_now(struct supervisor_proc *p)
{
	int	status;

	supervisor_health_kill_now(p);
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
	/* The server may be gone already: no callback from here on. */
	memset(&sv->ops, 0, sizeof(sv->ops));
	SUPERVISOR_FOREACH(sv, p)
		supervisor_proc_kill_now(p);
	while ((pool = TAILQ_FIRST(&sv->pools)) != NULL)
		supervisor_pool_free(pool);
	while ((p = TAILQ_FIRST(&sv->adhoc)) != NULL) {
		TAILQ_REMOVE(&sv->adhoc, p, entry);
		supervisor_proc_free(p);
	}
	supervisor_free_cb(-1, 0, sv);
	if (sv->sigchld != NULL)
		event_free(sv->sigchld);
	if (sv->done_ev != NULL)
		event_free(sv->done_ev);
	if (sv->free_ev != NULL)
		event_free(sv->free_ev);
	if (sv->scale_ev != NULL)
		event_free(sv->scale_ev);
	cgroup_root_free(sv->cg);
	free(sv->cg_error);
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
		sv->ops.stopped_all(sv->srv);
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

/* Jobs the supervised workers run now; see broker.h. */
unsigned
supervisor_running_jobs(const struct supervisor *sv)
{
	const struct supervisor_proc	*p;
	unsigned			 n = 0;

	SUPERVISOR_FOREACH(sv, p)
		n += supervisor_proc_running(p);
	return n;
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

/* Adds a finished connection's messages to the process's. */
void
supervisor_proc_count(struct supervisor_proc *p, const struct msg_stats *s)
{
	msg_stats_add(&p->msgs, s);
}

/* The messages of the process's finished connections. */
const struct msg_stats *
supervisor_proc_msgs(const struct supervisor_proc *p)
{
	return &p->msgs;
}

/* Why the process is fatal or unhealthy, or NULL; see broker.h. */
const char *
supervisor_proc_reason(const struct supervisor_proc *p)
{
	if ((p->state == SUPERVISOR_FATAL || p->state == SUPERVISOR_STOPPED) &&
	    p->reason[0] != '\0')
		return p->reason;
	if (p->health.unhealthy && p->health.reason[0] != '\0')
		return p->health.reason;
	return NULL;
}

/* The last child's wait status, or -1. */
int
supervisor_proc_last_status(const struct supervisor_proc *p)
{
	return p->last_status;
}

/* How the last child ended, for people, or NULL. */
const char *
supervisor_proc_last_exit(const struct supervisor_proc *p)
{
	return p->last_status != -1 ? p->last_exit : NULL;
}

/* The command as written in the config or given to spawn. */
const char *
supervisor_proc_command(const struct supervisor_proc *p)
{
	return supervisor_proc_cfg(p)->command;
}

/* How long the current child has run at now; 0 without one. */
bool
supervisor_proc_usage(const struct supervisor_proc *p, uint64_t *ret_cpu_ms,
    uint64_t *ret_rss_bytes)
{
	char			 path[64], buf[1024], *s;
	unsigned long long	 utime, stime;
	long long		 rss;
	long			 hz = sysconf(_SC_CLK_TCK);
	long			 page = sysconf(_SC_PAGESIZE);
	ssize_t			 n;
	int			 fd, field;

	if (p->pid == 0 || p->exited || hz <= 0 || page <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* The name may hold anything: the fields start after its last ')'. */
	if ((s = strrchr(buf, ')')) == NULL)
		return false;
	/* Field 3 is the state; utime and stime are 14 and 15, rss 24. */
	for (field = 3; field <= 14 && s != NULL; field++)
		s = strchr(s + 1, ' ');		/* the blank before field */
	if (s == NULL || sscanf(s, " %llu %llu", &utime, &stime) != 2)
		return false;
	for (field = 15; field <= 24 && s != NULL; field++)
		s = strchr(s + 1, ' ');
	if (s == NULL || sscanf(s, " %lld", &rss) != 1 || rss < 0)
		return false;
	*ret_cpu_ms = (utime + stime) * 1000 / (unsigned long long)hz;
	*ret_rss_bytes = (uint64_t)rss * (uint64_t)page;
	return true;
}

uint64_t
supervisor_proc_uptime_ms(const struct supervisor_proc *p, uint64_t now)
{
	return p->pid != 0 && now >= p->started_at ? now - p->started_at : 0;
}

/* Tells the broker to stop or resume dispatching to p's worker. */
void
supervisor_proc_set_paused(struct supervisor_proc *p, bool paused)
{
	struct supervisor	*sv = p->sv;

	if (p->peer != NULL && sv->ops.set_paused != NULL)
		sv->ops.set_paused(sv->srv, p->peer, paused);
}

/* From the broker: the worker sent REGISTER. */
void
supervisor_proc_registered(struct supervisor *sv, struct supervisor_proc *p)
{
	(void)sv;
	if (p->pid == 0 || p->registered)
		return;
	p->registered = true;
	log_debug("proc %s: worker registered", p->id);
	if (p->state == SUPERVISOR_STARTING)
		supervisor_set_state(p, SUPERVISOR_RUNNING);
	else if (p->state == SUPERVISOR_PAUSED)
		supervisor_proc_set_paused(p, true);
}

/* From the broker: the connection closed. */
void
supervisor_proc_detached(struct supervisor *sv, struct supervisor_proc *p)
{
	(void)sv;
	if (p->peer == NULL)
		return;
	p->peer = NULL;
	/* A worker gone: it may not register again (start_timeout). */
	p->health.lost_conn = p->registered;
	p->registered = false;
	if (p->pid != 0 && !p->exited)
		log_info("%s: worker connection closed", p->id);
	if (p->state == SUPERVISOR_RUNNING)
		supervisor_set_state(p, supervisor_proc_up_state(p));
}


/*
 * policy.c: the restart policy of supervised processes, as pure functions.
 *
 * Whether an exit is a success, how long the backoff before the next start
 * is, whether the intensity limit (max_restarts within restart_window) is
 * reached, what state follows a child's own exit, which state changes are
 * legal, the states' names, and when an on-demand pool grows or shrinks
 * (policy_autoscale()). Time and randomness are parameters and
 * nothing here touches a process, a timer or a log, so that the
 * supervisor's arithmetic is unit-testable on its own (test-supervisor's
 * "arithmetic" cases). supervisor.c keeps one struct policy_history per
 * process and asks policy_exit_decide() when a child is finished.
 */
#include <sys/wait.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

/* The delay before restart number failures. */
uint64_t
policy_backoff_delay(const struct config_pool *cfg, unsigned failures,
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
policy_exit_success(const struct config_pool *cfg, int wstatus)
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
policy_intensity_allow(struct policy_history *h, int max_restarts,
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
policy_exit_decide(const struct config_pool *cfg,
    struct policy_history *h, int wstatus, uint64_t uptime_ms,
    uint64_t now, uint32_t random, uint64_t *ret_delay_ms)
{
	bool	success = policy_exit_success(cfg, wstatus);

	if (cfg->restart == RESTART_NEVER ||
	    (cfg->restart == RESTART_ON_FAILURE && success))
		return SUPERVISOR_EXITED;
	if (uptime_ms >= cfg->healthy_after_ms)
		h->failures = 0;
	if (!policy_intensity_allow(h, cfg->max_restarts,
	    cfg->restart_window_ms, now))
		return SUPERVISOR_FATAL;
	h->failures++;
	*ret_delay_ms = policy_backoff_delay(cfg, h->failures, random);
	return SUPERVISOR_BACKOFF;
}

/* True when old -> new is a transition the supervisor may make. */
bool
policy_transition_valid(enum supervisor_state old,
    enum supervisor_state new)
{
	/* One bit per target state, by source state. */
#define B(s) (1u << (s))
	static const unsigned	valid[] = {
		[SUPERVISOR_STARTING] = B(SUPERVISOR_RUNNING) |
		    B(SUPERVISOR_PAUSED) | B(SUPERVISOR_STOPPING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_EXITED) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL) |
		    B(SUPERVISOR_UNHEALTHY),
		[SUPERVISOR_RUNNING] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_PAUSED) | B(SUPERVISOR_STOPPING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_EXITED) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL) |
		    B(SUPERVISOR_UNHEALTHY),
		[SUPERVISOR_PAUSED] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_RUNNING) | B(SUPERVISOR_STOPPING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_EXITED) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_BACKOFF] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_STOPPED) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_STOPPING] = B(SUPERVISOR_STOPPED) |
		    B(SUPERVISOR_STARTING) | B(SUPERVISOR_BACKOFF) |
		    B(SUPERVISOR_FATAL) | B(SUPERVISOR_EXITED),
		[SUPERVISOR_STOPPED] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_EXITED] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_BACKOFF) | B(SUPERVISOR_FATAL),
		[SUPERVISOR_FATAL] = B(SUPERVISOR_STARTING) |
		    B(SUPERVISOR_BACKOFF),
		/* Unhealthy is where a stop begins, nothing else. */
		[SUPERVISOR_UNHEALTHY] = B(SUPERVISOR_STOPPING),
	};
#undef B

	if ((unsigned)old >= sizeof(valid) / sizeof(valid[0]) ||
	    (unsigned)new > SUPERVISOR_UNHEALTHY)
		return false;
	return (valid[old] & (1u << new)) != 0;
}

/* The name of a state. */
const char *
policy_state_name(enum supervisor_state state)
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
	case SUPERVISOR_UNHEALTHY:
		return "unhealthy";
	}
	return "?";
}

/* Sizes (and empties) a restart history for max_restarts. */
int
policy_history_init(struct policy_history *h, int max_restarts)
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

/* Frees what a restart history holds. */
void
policy_history_clear(struct policy_history *h)
{
	free(h->times);
	memset(h, 0, sizeof(*h));
}

/* The next step of an on-demand pool; see broker.h. */
enum autoscale_step
policy_autoscale(struct autoscale_state *st, const struct autoscale_view *v,
    uint64_t now)
{
	bool	backlog = v->queued > 0 && v->free_slots == 0;

	if (!backlog)
		st->backlog_since = 0;
	else if (st->backlog_since == 0)
		st->backlog_since = now;
	if (!v->last_idle || backlog || v->starting > 0)
		st->idle_since = 0;
	else if (st->idle_since == 0)
		st->idle_since = now;

	if (v->instances < v->min)
		return AUTOSCALE_UP;
	if (backlog && v->starting == 0 && v->instances < v->max &&
	    now - st->backlog_since >= v->scale_up_after_ms) {
		st->backlog_since = now;
		return AUTOSCALE_UP;
	}
	if (v->instances > v->min && st->idle_since != 0 &&
	    now - st->idle_since >= v->idle_timeout_ms) {
		st->idle_since = 0;
		return AUTOSCALE_DOWN;
	}
	return AUTOSCALE_KEEP;
}

/*
 * supervisor-health.c: whether a supervised process is healthy, and what
 * happens when it is not.
 *
 * Three things find a process unhealthy. A pool's process must REGISTER
 * within its pool's start_timeout: a timer runs while it is starting. A
 * worker must keep answering the broker's PINGs: server.c's heartbeat
 * sweep calls supervisor_proc_unresponsive() when it drops a silent one.
 * And a pool's health_check command, when it has one, runs every
 * health_interval while the process is running: a child of its own,
 * started through util/spawn.c from the plan of the process's own command
 * (its user, directory and environment, plus PATCHBAY_PID and
 * PATCHBAY_PROCESS), in a session of its own, reaped by supervisor.c's
 * SIGCHLD loop, and killed with its group when health_timeout passes.
 * Exit 0 passes; health_retries failures in a row make the process
 * unhealthy. The first and the last bytes of its output are kept for
 * `ctl health`.
 *
 * An unhealthy process goes unhealthy -> stopping (its running jobs
 * finish within stop_timeout, then its stop signal) and, once it is
 * finished, its restart policy decides as for a failure: backoff, then
 * starting, counted by the intensity limit like any restart. Why it was
 * found unhealthy stays in its slot, and `ps` shows it until a new child
 * is healthy.
 *
 * The start timer belongs to the starting state and the checks to the
 * running state: supervisor_set_state() calls supervisor_health_state()
 * at every change, which arms what the new state needs and cancels the
 * rest (a check that runs is killed and its result ignored). So nothing
 * is checked while a process is paused, stopping or down, and the start
 * timer of a resumed process begins again. A pool with start_timeout = 0
 * may run a command that never registers: its checks run from its start.
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/supervisor-int.h"

#define HEALTH_READ_CHUNK	4096
#define HEALTH_READS_PER_EVENT	16	/* then back to the loop */
#define HEALTH_REASON_LINE	100	/* output quoted in a reason */

/* Timer. */

/* Arms p's health timer for kind in ms. */
static void
supervisor_health_arm(struct supervisor_proc *p,
    enum supervisor_health_timer kind, uint64_t ms)
{
	struct timeval	tv;

	clock_timer_tv(ms, &tv);
	p->health.timer_kind = kind;
	event_base_update_cache_time(p->sv->base);
	evtimer_add(p->health.timer, &tv);
}

/* Disarms p's health timer. */
static void
supervisor_health_disarm(struct supervisor_proc *p)
{
	if (p->health.timer != NULL)
		evtimer_del(p->health.timer);
	p->health.timer_kind = HEALTH_TIMER_NONE;
}

/* The check's output. */

/* Closes the output pipe of p's check. */
static void
supervisor_health_output_close(struct supervisor_proc *p)
{
	struct supervisor_checks	*h = &p->health;

	if (h->out_ev != NULL) {
		event_free(h->out_ev);
		h->out_ev = NULL;
	}
	if (h->out_fd != -1) {
		close(h->out_fd);
		h->out_fd = -1;
	}
}

/* Keeps n bytes of output: the first ones, and a window of the last. */
static void
supervisor_health_keep(struct supervisor_checks *h, const char *buf,
    size_t n)
{
	size_t	take, drop;

	h->nout += n;
	take = sizeof(h->head) - h->nhead;
	if (take > n)
		take = n;
	memcpy(h->head + h->nhead, buf, take);
	h->nhead += take;
	buf += take;
	n -= take;
	if (n == 0)
		return;
	if (n >= sizeof(h->tail)) {
		memcpy(h->tail, buf + n - sizeof(h->tail), sizeof(h->tail));
		h->ntail = sizeof(h->tail);
		return;
	}
	if (h->ntail + n > sizeof(h->tail)) {
		drop = h->ntail + n - sizeof(h->tail);
		memmove(h->tail, h->tail + drop, h->ntail - drop);
		h->ntail -= drop;
	}
	memcpy(h->tail + h->ntail, buf, n);
	h->ntail += n;
}

/*
 * Reads what p's check printed, at most max chunks. Returns false at EOF
 * or on an error (the pipe is then of no more use), true otherwise.
 */
static bool
supervisor_health_read(struct supervisor_proc *p, int max)
{
	struct supervisor_checks	*h = &p->health;
	char				 buf[HEALTH_READ_CHUNK];
	ssize_t				 n;

	while (max-- > 0) {
		n = read(h->out_fd, buf, sizeof(buf));
		if (n > 0) {
			supervisor_health_keep(h, buf, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		return n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK);
	}
	return true;
}

/* The check's output pipe has something (or EOF). */
static void
supervisor_health_output_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor_proc	*p = arg;

	(void)fd;
	(void)what;
	if (!supervisor_health_read(p, HEALTH_READS_PER_EVENT))
		supervisor_health_output_close(p);
}

/* Appends n bytes of s to buf (at *off), NULs shown as '?'. */
static void
supervisor_health_put(char *buf, size_t len, size_t *off, const char *s,
    size_t n)
{
	for (size_t i = 0; i < n && *off + 1 < len; i++)
		buf[(*off)++] = s[i] == '\0' ? '?' : s[i];
	buf[*off] = '\0';
}

/* Makes h->output from what was kept: head, what was left out, tail. */
static void
supervisor_health_output_text(struct supervisor_checks *h)
{
	uint64_t	 omitted = h->nout - h->nhead - h->ntail;
	size_t		 off = 0, len = sizeof(h->output);
	char		 gap[64];

	h->output[0] = '\0';
	supervisor_health_put(h->output, len, &off, h->head, h->nhead);
	if (omitted > 0) {
		snprintf(gap, sizeof(gap), "\n[... %llu bytes ...]\n",
		    (unsigned long long)omitted);
		supervisor_health_put(h->output, len, &off, gap, strlen(gap));
	}
	supervisor_health_put(h->output, len, &off, h->tail, h->ntail);
	while (off > 0 && (h->output[off - 1] == '\n' ||
	    h->output[off - 1] == '\r' || h->output[off - 1] == ' ' ||
	    h->output[off - 1] == '\t'))
		h->output[--off] = '\0';
}

/* The last line of the check's output, for a reason: at most len - 1. */
static void
supervisor_health_last_line(const struct supervisor_checks *h, char *buf,
    size_t len)
{
	const char	*s = strrchr(h->output, '\n');
	size_t		 i;

	s = s != NULL ? s + 1 : h->output;
	for (i = 0; s[i] != '\0' && i + 1 < len; i++)
		buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
	buf[i] = '\0';
}

/* Verdicts. */

/* p passed every check it has: it is no longer unhealthy. */
static void
supervisor_health_ok(struct supervisor_proc *p)
{
	if (!p->health.unhealthy)
		return;
	p->health.unhealthy = false;
	log_info("%s: healthy again", p->id);
}

/*
 * Finds p unhealthy for reason: it is stopped, and its restart policy
 * then decides as for a failure (supervisor_child_done()).
 */
static void
supervisor_health_unhealthy(struct supervisor_proc *p, const char *reason)
{
	struct supervisor_checks	*h = &p->health;

	h->unhealthy = true;
	h->times_unhealthy++;
	h->unhealthy_at = clock_now_ms();
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
	log_warnx("%s: pid %d is unhealthy: %s; stopping it", p->id,
	    (int)p->pid, reason);
	supervisor_set_state(p, SUPERVISOR_UNHEALTHY);
	supervisor_proc_stop(p, 0, false, AFTER_UNHEALTHY);
}

/* True when p's health_check runs in state (see the file's comment). */
static bool
supervisor_health_checks_run(const struct supervisor_proc *p,
    enum supervisor_state state)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);

	if (cfg->health_argv == NULL || p->pid == 0 || p->exited)
		return false;
	return state == SUPERVISOR_RUNNING || (state == SUPERVISOR_STARTING &&
	    p->pool != NULL && cfg->start_timeout_ms == 0);
}

/* p's check ended: passed, or failed with result; counts it. */
static void
supervisor_health_result(struct supervisor_proc *p, bool passed,
    const char *result)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct supervisor_checks	*h = &p->health;
	char				 line[HEALTH_REASON_LINE];
	char				 reason[sizeof(h->reason)];

	h->checked_at = clock_now_ms();
	snprintf(h->result, sizeof(h->result), "%s", result);
	supervisor_health_output_text(h);
	if (passed) {
		if (h->failures > 0)
			log_info("%s: health check passed after %u failure%s",
			    p->id, h->failures, h->failures == 1 ? "" : "s");
		h->failures = 0;
		h->passed = true;
		supervisor_health_ok(p);
		supervisor_health_arm(p, HEALTH_TIMER_NEXT,
		    cfg->health_interval_ms);
		return;
	}
	h->failures++;
	supervisor_health_last_line(h, line, sizeof(line));
	log_warnx("%s: health check failed (%u of %d): %s%s%s", p->id,
	    h->failures, cfg->health_retries, result, line[0] != '\0' ?
	    ": " : "", line);
	if (h->failures < (unsigned)cfg->health_retries) {
		supervisor_health_arm(p, HEALTH_TIMER_NEXT,
		    cfg->health_interval_ms);
		return;
	}
	if (h->failures == 1)
		snprintf(reason, sizeof(reason), "health check failed: %s%s%s",
		    result, line[0] != '\0' ? ": " : "", line);
	else
		snprintf(reason, sizeof(reason), "health check failed %u times "
		    "in a row: %s%s%s", h->failures, result, line[0] != '\0' ?
		    ": " : "", line);
	supervisor_health_unhealthy(p, reason);
}

/* The check. */

/*
 * Starts p's health check. A check that cannot be started fails, as one
 * that ran and failed would.
 */
static void
supervisor_health_run(struct supervisor_proc *p)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct supervisor_checks	*h = &p->health;
	struct spawn_plan		 plan;
	struct spawn_user		 user;
	struct spawn_error		 se;
	char				 text[UTIL_ERRLEN], *cause = NULL;
	int				 out[2] = { -1, -1 }, devnull = -1;
	int				 error;
	pid_t				 pid;

	/* A killed check that is not reaped yet is reaped as unknown. */
	h->pid = 0;
	h->abandoned = false;
	h->timed_out = false;
	h->nhead = h->ntail = 0;
	h->nout = 0;
	if (supervisor_child_plan(p, &plan, &user, &cause) != 0) {
		snprintf(text, sizeof(text), "%s", cause != NULL ? cause :
		    "out of memory");
		free(cause);
		supervisor_health_result(p, false, text);
		return;
	}
	/* The command's plan, for another program, without the socket. */
	spawn_env_unset(&plan, "PATCHBAY_FD");
	plan.argv = cfg->health_argv;
	free(plan.path);
	plan.path = NULL;
	if (spawn_env_setf(&plan, "PATCHBAY_PID", "%d", (int)p->pid) != 0 ||
	    spawn_env_setf(&plan, "PATCHBAY_PROCESS", "%s", p->id) != 0) {
		snprintf(text, sizeof(text), "out of memory");
		goto fail;
	}
	error = spawn_find_program(cfg->health_argv[0],
	    spawn_env_get(&plan, "PATH"), &plan.path);
	if (error != 0) {
		snprintf(text, sizeof(text), "cannot execute '%s': %s",
		    cfg->health_argv[0], strerror(-error));
		goto fail;
	}
	if (pipe2(out, O_CLOEXEC) == -1 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(text, sizeof(text), "cannot start '%s': %s",
		    cfg->health_check, strerror(errno));
		goto fail;
	}
	plan.fds[0] = devnull;
	plan.fds[1] = out[1];
	plan.fds[2] = out[1];
	plan.nfds = 3;
	if (spawn_start(&plan, &se, &pid) != 0) {
		spawn_error_text(&plan, &se, cfg->health_check, text,
		    sizeof(text));
		goto fail;
	}
	close(out[1]);
	close(devnull);
	spawn_plan_clear(&plan);
	spawn_user_clear(&user);

	h->pid = pid;
	h->out_fd = out[0];
	evutil_make_socket_nonblocking(h->out_fd);
	h->out_ev = event_new(p->sv->base, h->out_fd, EV_READ | EV_PERSIST,
	    supervisor_health_output_cb, p);
	if (h->out_ev == NULL) {
		/* It runs all the same; its output is lost. */
		log_warnx("%s: out of memory reading its health check's "
		    "output", p->id);
		supervisor_health_output_close(p);
	} else
		event_add(h->out_ev, NULL);
	log_debug("%s: health check pid %d: %s", p->id, (int)pid,
	    cfg->health_check);
	supervisor_health_arm(p, HEALTH_TIMER_CHECK, cfg->health_timeout_ms);
	return;

fail:
	for (int i = 0; i < 2; i++)
		if (out[i] != -1)
			close(out[i]);
	if (devnull != -1)
		close(devnull);
	spawn_plan_clear(&plan);
	spawn_user_clear(&user);
	supervisor_health_result(p, false, text);
}

/* Kills p's check, if one runs; its result will not count. */
static void
supervisor_health_cancel(struct supervisor_proc *p)
{
	struct supervisor_checks	*h = &p->health;

	supervisor_health_disarm(p);
	if (h->pid != 0 && !h->abandoned) {
		log_debug("%s: health check pid %d cancelled", p->id,
		    (int)h->pid);
		if (kill(-h->pid, SIGKILL) == -1 && errno != ESRCH)
			log_warn("%s: kill(-%d, KILL)", p->id, (int)h->pid);
		h->abandoned = true;
	}
	supervisor_health_output_close(p);
}

/* p's health timer fired: start timeout, next check, or check timeout. */
static void
supervisor_health_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct supervisor_proc		*p = arg;
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct supervisor_checks	*h = &p->health;
	enum supervisor_health_timer	 kind = h->timer_kind;
	char				 d[32], reason[sizeof(h->reason)];

	(void)fd;
	(void)what;
	h->timer_kind = HEALTH_TIMER_NONE;
	switch (kind) {
	case HEALTH_TIMER_START:
		if (p->state != SUPERVISOR_STARTING || p->pid == 0 ||
		    p->exited || p->registered)
			break;
		format_duration(cfg->start_timeout_ms, d, sizeof(d));
		if (h->lost_conn)
			snprintf(reason, sizeof(reason), "its connection to "
			    "the broker closed and it did not exit within %s",
			    d);
		else
			snprintf(reason, sizeof(reason), "did not register "
			    "within %s", d);
		supervisor_health_unhealthy(p, reason);
		break;
	case HEALTH_TIMER_NEXT:
		if (supervisor_health_checks_run(p, p->state))
			supervisor_health_run(p);
		break;
	case HEALTH_TIMER_CHECK:
		if (h->pid == 0 || h->abandoned)
			break;
		format_duration(cfg->health_timeout_ms, d, sizeof(d));
		log_debug("%s: health check pid %d still runs after %s, "
		    "killing it", p->id, (int)h->pid, d);
		h->timed_out = true;
		if (kill(-h->pid, SIGKILL) == -1 && errno != ESRCH)
			log_warn("%s: kill(-%d, KILL)", p->id, (int)h->pid);
		break;
	case HEALTH_TIMER_NONE:
		break;
	}
}

/* Lifecycle (supervisor-int.h). */

/* Sets up p's health. */
int
supervisor_health_init(struct supervisor_proc *p)
{
	p->health.out_fd = -1;
	p->health.timer = evtimer_new(p->sv->base, supervisor_health_timer_cb,
	    p);
	return p->health.timer != NULL ? 0 : -ENOMEM;
}

/* Kills p's check if it runs and frees what its health holds. */
void
supervisor_health_clear(struct supervisor_proc *p)
{
	supervisor_health_cancel(p);
	if (p->health.timer != NULL) {
		event_free(p->health.timer);
		p->health.timer = NULL;
	}
}

/* A new child of p: its own checks begin from nothing. */
void
supervisor_health_child_started(struct supervisor_proc *p)
{
	p->health.failures = 0;
	p->health.passed = false;
	p->health.lost_conn = false;
}

/* p went from old to new; see supervisor-int.h. */
void
supervisor_health_state(struct supervisor_proc *p, enum supervisor_state old,
    enum supervisor_state new)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);

	if (supervisor_health_checks_run(p, new)) {
		/* Starting to running: the checks go on as they were. */
		if (!supervisor_health_checks_run(p, old)) {
			supervisor_health_cancel(p);
			supervisor_health_arm(p, HEALTH_TIMER_NEXT,
			    cfg->health_interval_ms);
		}
	} else if (new == SUPERVISOR_STARTING && p->pool != NULL &&
	    cfg->start_timeout_ms > 0 && p->pid != 0 && !p->exited) {
		supervisor_health_cancel(p);
		supervisor_health_arm(p, HEALTH_TIMER_START,
		    cfg->start_timeout_ms);
	} else
		supervisor_health_cancel(p);
	/* Without a health_check, running is all there is to pass. */
	if (new == SUPERVISOR_RUNNING && cfg->health_argv == NULL)
		supervisor_health_ok(p);
}

/* The process whose health check has pid, or NULL. */
struct supervisor_proc *
supervisor_health_find_pid(struct supervisor *sv, pid_t pid)
{
	struct supervisor_proc	*p;

	SUPERVISOR_FOREACH(sv, p)
		if (p->health.pid == pid)
			return p;
	return NULL;
}

/*
 * p's check exited (and was reaped). What it printed before it exited is
 * in the pipe already: it is read now, without waiting for an EOF that
 * something it left behind could hold back.
 */
void
supervisor_health_exited(struct supervisor_proc *p, int wstatus)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	struct supervisor_checks	*h = &p->health;
	char				 text[sizeof(h->result)], d[32];
	bool				 passed;

	h->pid = 0;
	if (h->out_fd != -1)
		supervisor_health_read(p, (2 * 65536) / HEALTH_READ_CHUNK);
	supervisor_health_output_close(p);
	if (h->abandoned) {
		h->abandoned = false;
		return;
	}
	supervisor_health_disarm(p);
	if (h->timed_out) {
		format_duration(cfg->health_timeout_ms, d, sizeof(d));
		snprintf(text, sizeof(text), "timed out after %s", d);
		passed = false;
	} else {
		supervisor_status_text(wstatus, text, sizeof(text));
		passed = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
	}
	supervisor_health_result(p, passed, text);
}

/* Kills p's health check and reaps it at once, for supervisor_free(). */
void
supervisor_health_kill_now(struct supervisor_proc *p)
{
	struct supervisor_checks	*h = &p->health;
	int				 status;

	supervisor_health_disarm(p);
	if (h->pid != 0) {
		kill(-h->pid, SIGKILL);
		while (waitpid(h->pid, &status, 0) == -1 && errno == EINTR)
			;
		h->pid = 0;
	}
	supervisor_health_output_close(p);
}

/* From the broker. */

/* p's worker stopped answering PINGs; see broker.h. */
void
supervisor_proc_unresponsive(struct supervisor *sv, struct supervisor_proc *p,
    uint64_t silent_ms)
{
	char	d[32], reason[sizeof(p->health.reason)];

	(void)sv;
	if (p->pid == 0 || p->exited || (p->state != SUPERVISOR_RUNNING &&
	    p->state != SUPERVISOR_STARTING))
		return;
	format_duration_human(silent_ms, d, sizeof(d));
	snprintf(reason, sizeof(reason), "stopped answering PINGs for %s", d);
	supervisor_health_unhealthy(p, reason);
}

/* Accessors (broker.h). */

/* The health of a process. */
enum supervisor_health
supervisor_proc_health(const struct supervisor_proc *p)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	const struct supervisor_checks	*h = &p->health;
	bool				 check, waits;

	if (h->unhealthy)
		return HEALTH_UNHEALTHY;
	if (p->pid == 0)
		return HEALTH_NONE;
	if (h->failures > 0)
		return HEALTH_FAILING;
	check = cfg->health_argv != NULL;
	waits = p->pool != NULL && cfg->start_timeout_ms > 0;
	/* A registered worker is checked all the same: PINGs. */
	if (!check && !waits && !p->registered)
		return HEALTH_NONE;
	if ((check && !h->passed) || (waits && !p->registered))
		return HEALTH_PENDING;
	return HEALTH_OK;
}

/* The name of a health. */
const char *
supervisor_health_name(enum supervisor_health health)
{
	switch (health) {
	case HEALTH_NONE:
		return "none";
	case HEALTH_PENDING:
		return "pending";
	case HEALTH_OK:
		return "ok";
	case HEALTH_FAILING:
		return "failing";
	case HEALTH_UNHEALTHY:
		return "unhealthy";
	}
	return "?";
}

/* The health for people: its name, or "failing 1 of 3". */
void
supervisor_proc_health_text(const struct supervisor_proc *p, char *buf,
    size_t len)
{
	enum supervisor_health	health = supervisor_proc_health(p);

	if (health == HEALTH_FAILING)
		snprintf(buf, len, "failing %u of %d", p->health.failures,
		    supervisor_proc_cfg(p)->health_retries);
	else
		snprintf(buf, len, "%s", supervisor_health_name(health));
}

/* What the checks of p said. */
void
supervisor_proc_health_info(const struct supervisor_proc *p,
    struct supervisor_health_info *ret)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);
	const struct supervisor_checks	*h = &p->health;

	memset(ret, 0, sizeof(*ret));
	ret->health = supervisor_proc_health(p);
	ret->check = cfg->health_check;
	ret->failures = h->failures;
	ret->retries = (unsigned)cfg->health_retries;
	ret->checked_at = h->checked_at;
	if (h->checked_at != 0) {
		ret->result = h->result;
		ret->output = h->output;
	}
	ret->times_unhealthy = h->times_unhealthy;
	ret->unhealthy_at = h->unhealthy_at;
	ret->reason = h->reason[0] != '\0' ? h->reason : NULL;
}

/* Times the process was found unhealthy. */
unsigned
supervisor_proc_times_unhealthy(const struct supervisor_proc *p)
{
	return p->health.times_unhealthy;
}

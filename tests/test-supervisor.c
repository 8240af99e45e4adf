/*
 * test-supervisor.c: the supervisor (broker/policy.c, supervisor.c,
 * supervisor-child.c, supervisor-verbs.c) and its `ps` listing (admin.c).
 *
 * The restart arithmetic is tested as pure functions with time and
 * randomness injected. The process side is tested with real children on a
 * real event_base: the tests run the loop until a condition holds or a
 * deadline passes, never sleeping for a fixed time. A child that must
 * report on itself is this very test program, run again with
 * --child-report: it writes its descriptor table, environment and process
 * identity to a file, so what is checked is what the exec'd program got.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <msgpack.h>

#include "broker/broker.h"
#include "tests/harness.h"

extern char **environ;

/*
 * The broker's side of a child's connection, as the tests keep it: a peer
 * that no server owns (the supervisor only passes it back).
 */
struct conn_stub {
	struct peer	 peer;		/* first: the stub is its peer */
	int	 fd;
	bool	 paused;
	int	 npaused;	/* set_paused calls */
	bool	 detached;
};

struct transition {
	char			id[96];
	enum supervisor_state	old, new;
	unsigned long long	at;
};

/* What a test has: one loop, one supervisor, what the callbacks saw. */
struct fixture {
	struct event_base	*base;
	struct event		*ticker;
	struct supervisor	*sv;
	struct transition	 log[512];
	size_t			 nlog;
	struct conn_stub	*conns[64];
	size_t			 nconns;
	int			 ndetach;
	bool			 all_stopped;
	char			 dir[256];
};

static struct fixture	fx;

/* ops->attach: keeps the fd. */
static struct peer *
fx_attach(struct server *srv, struct supervisor_proc *proc, int fd)
{
	struct conn_stub	*c = calloc(1, sizeof(*c));

	(void)proc;
	(void)srv;
	ck_assert_ptr_nonnull(c);
	c->fd = fd;
	ck_assert_uint_lt(fx.nconns, 64);
	fx.conns[fx.nconns++] = c;
	return &c->peer;
}

/* ops->set_paused: counts. */
static void
fx_set_paused(struct server *srv, struct peer *peer, bool paused)
{
	struct conn_stub	*c = (struct conn_stub *)peer;

	(void)srv;
	c->paused = paused;
	c->npaused++;
}

/* ops->detach: counts (the fd stays readable until the teardown). */
static void
fx_detach(struct server *srv, struct peer *peer)
{
	struct conn_stub	*c = (struct conn_stub *)peer;

	(void)srv;
	ck_assert(!c->detached);
	c->detached = true;
	fx.ndetach++;
}

/* ops->stopped_all. */
static void
fx_stopped_all(struct server *srv)
{
	(void)srv;
	fx.all_stopped = true;
}

/* ops->changed: records, and checks the transition is a legal one. */
static void
fx_changed(struct server *srv, struct supervisor_proc *proc,
    enum supervisor_state old, enum supervisor_state new)
{
	struct transition	*t;

	(void)srv;
	ck_assert_msg(policy_transition_valid(old, new),
	    "%s: invalid transition %s -> %s", supervisor_proc_id(proc),
	    policy_state_name(old), policy_state_name(new));
	if (fx.nlog == sizeof(fx.log) / sizeof(fx.log[0]))
		return;
	t = &fx.log[fx.nlog++];
	snprintf(t->id, sizeof(t->id), "%s", supervisor_proc_id(proc));
	t->old = old;
	t->new = new;
	t->at = harness_now_ms();
}

static const struct supervisor_ops fx_ops = {
	.attach = fx_attach,
	.set_paused = fx_set_paused,
	.detach = fx_detach,
	.stopped_all = fx_stopped_all,
	.changed = fx_changed,
};

/* Wakes the loop up every 10 ms so that conditions are polled. */
static void
fx_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* A failed test skips the teardown: still kill what it started. */
static void
fx_atexit(void)
{
	supervisor_free(fx.sv);
	fx.sv = NULL;
}

/* Per test: a loop with a ticker, a directory, the exit cleanup. */
static void
fx_setup(void)
{
	struct timeval	tv = { 0, 10000 };

	memset(&fx, 0, sizeof(fx));
	if (getenv("PB_TEST_DEBUG") != NULL)
		log_set_level(LOG_LEVEL_DEBUG);
	/* As patchbayd's: libevent's coarse clock, not its precise timers. */
	fx.base = event_base_new();
	ck_assert_ptr_nonnull(fx.base);
	fx.ticker = event_new(fx.base, -1, EV_PERSIST, fx_tick, NULL);
	event_add(fx.ticker, &tv);
	harness_tmpdir(fx.dir, sizeof(fx.dir));
	atexit(fx_atexit);
}

/* Per test: frees the supervisor (killing its children) and the loop. */
static void
fx_teardown(void)
{
	supervisor_free(fx.sv);
	fx.sv = NULL;
	for (size_t i = 0; i < fx.nconns; i++) {
		if (fx.conns[i]->fd != -1)
			close(fx.conns[i]->fd);
		free(fx.conns[i]);
	}
	event_free(fx.ticker);
	event_base_free(fx.base);
}

/* Creates the supervisor for config (may be NULL) and starts it. */
static void
fx_start(struct config *config)
{
	ck_assert_int_eq(supervisor_new(fx.base, config, &fx.sv), 0);
	supervisor_set_ops(fx.sv, &fx_ops, NULL);
	supervisor_start(fx.sv);
}

/* Runs the loop until cond holds; fails the test after ms. */
#define WAIT_FOR(cond, ms) do {						\
	unsigned long long deadline_ = harness_now_ms() + (ms);		\
	while (!(cond)) {						\
		ck_assert_msg(harness_now_ms() < deadline_,		\
		    "timed out waiting for %s", #cond);			\
		event_base_loop(fx.base, EVLOOP_ONCE);			\
	}								\
} while (0)

/* The state of id, or -1 when there is no such process. */
static int
state_of(const char *id)
{
	struct supervisor_proc	*p = supervisor_find(fx.sv, id);

	return p != NULL ? (int)supervisor_proc_state(p) : -1;
}

/* The pid of id's child, or 0. */
static pid_t
pid_of(const char *id)
{
	struct supervisor_proc	*p = supervisor_find(fx.sv, id);

	return p != NULL ? supervisor_proc_pid(p) : 0;
}

/* The state letter of pid in /proc/PID/stat, or 0 when it is gone. */
static char
proc_state(pid_t pid)
{
	char	 path[64], buf[512], *paren;
	FILE	*f;
	size_t	 n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((paren = strrchr(buf, ')')) == NULL || paren[1] == '\0')
		return 0;
	return paren[2];
}

/* True when pid has gone (or is a zombie nobody reaped yet). */
static bool
proc_gone(pid_t pid)
{
	char	s = proc_state(pid);

	return s == 0 || s == 'Z' || s == 'X';
}

/* True when path exists and is not empty. */
static bool
file_ready(const char *path)
{
	struct stat	st;

	return stat(path, &st) == 0 && st.st_size > 0;
}

/* Reads a pid written to path. */
static pid_t
read_pid(const char *path)
{
	char	*s = harness_read_file(path);
	pid_t	 pid;

	ck_assert_ptr_nonnull(s);
	pid = (pid_t)atoi(s);
	free(s);
	ck_assert_int_gt(pid, 1);
	return pid;
}

/* A pool with small durations for tests, appended to c. */
static struct config_pool *
add_pool(struct config *c, const char *name, const char *command)
{
	struct config_pool	*p = config_pool_new(name);
	char			 err[UTIL_ERRLEN];

	ck_assert_ptr_nonnull(p);
	p->command = strdup(command);
	ck_assert_int_eq(strv_split(command, &p->argv, err), 0);
	p->backoff_min_ms = 20;
	p->backoff_max_ms = 1000;
	p->stop_timeout_ms = 5000;
	TAILQ_INSERT_TAIL(&c->pools, p, entry);
	return p;
}

/* A new config for tests. */
static struct config *
new_config(void)
{
	struct config	*c = config_new();

	ck_assert_ptr_nonnull(c);
	c->path = strdup("test.conf");
	return c;
}

/* Index of the first transition of id to state at or after from, or -1. */
static int
find_transition(const char *id, enum supervisor_state state, size_t from)
{
	for (size_t i = from; i < fx.nlog; i++)
		if (strcmp(fx.log[i].id, id) == 0 && fx.log[i].new == state)
			return (int)i;
	return -1;
}

/* Pure arithmetic. */

/* A pool config for the arithmetic tests. */
static struct config_pool *
arith_pool(void)
{
	struct config_pool	*p = config_pool_new("a");

	ck_assert_ptr_nonnull(p);
	return p;
}

START_TEST(supervisor_autoscale_decisions)
{
	struct autoscale_state	st = { 0, 0 };
	struct autoscale_view	v = {
		.min = 0, .max = 3, .instances = 0, .queued = 1,
		.scale_up_after_ms = 200, .idle_timeout_ms = 1000,
	};

	/* A job waits with no worker at all: the first one after 200 ms. */
	ck_assert_int_eq(policy_autoscale(&st, &v, 1000), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 1199), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 1200), AUTOSCALE_UP);
	/* Not another while that one is starting. */
	v.instances = 1;
	v.starting = 1;
	ck_assert_int_eq(policy_autoscale(&st, &v, 1500), AUTOSCALE_KEEP);
	/* Up and busy, jobs still waiting: one more, 200 ms after the last. */
	v.starting = 0;
	ck_assert_int_eq(policy_autoscale(&st, &v, 1500), AUTOSCALE_UP);
	v.instances = 2;
	ck_assert_int_eq(policy_autoscale(&st, &v, 1600), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 1700), AUTOSCALE_UP);
	/* A free slot somewhere: the queue drains without growing. */
	v.instances = 3;
	v.free_slots = 1;
	ck_assert_int_eq(policy_autoscale(&st, &v, 5000), AUTOSCALE_KEEP);
	/* Never above MAX. */
	v.free_slots = 0;
	ck_assert_int_eq(policy_autoscale(&st, &v, 6000), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 9000), AUTOSCALE_KEEP);

	/* Idle for idle_timeout with nothing waiting: the highest goes. */
	v.queued = 0;
	v.last_idle = true;
	ck_assert_int_eq(policy_autoscale(&st, &v, 10000), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 10999), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 11000), AUTOSCALE_DOWN);
	/* The next one gets its own idle_timeout. */
	v.instances = 2;
	ck_assert_int_eq(policy_autoscale(&st, &v, 11500), AUTOSCALE_KEEP);
	/* A job in between starts the wait over. */
	v.last_idle = false;
	ck_assert_int_eq(policy_autoscale(&st, &v, 11600), AUTOSCALE_KEEP);
	v.last_idle = true;
	ck_assert_int_eq(policy_autoscale(&st, &v, 12000), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 12999), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 13000), AUTOSCALE_DOWN);

	/* Never below MIN, and up to MIN at once. */
	v.min = 1;
	v.instances = 1;
	ck_assert_int_eq(policy_autoscale(&st, &v, 20000), AUTOSCALE_KEEP);
	ck_assert_int_eq(policy_autoscale(&st, &v, 90000), AUTOSCALE_KEEP);
	v.instances = 0;
	ck_assert_int_eq(policy_autoscale(&st, &v, 90001), AUTOSCALE_UP);
}
END_TEST

START_TEST(supervisor_backoff_growth_and_cap)
{
	struct config_pool	*p = arith_pool();
	uint64_t		 expect = 100;

	/* random 0: no jitter, the plain doubling. */
	for (unsigned f = 1; f <= 20; f++) {
		ck_assert_uint_eq(policy_backoff_delay(p, f, 0), expect);
		expect = expect * 2 > 30000 ? 30000 : expect * 2;
	}
	ck_assert_uint_eq(policy_backoff_delay(p, 9, 0), 25600);
	ck_assert_uint_eq(policy_backoff_delay(p, 10, 0), 30000);
	ck_assert_uint_eq(policy_backoff_delay(p, 1000000, 0), 30000);
	ck_assert_uint_eq(policy_backoff_delay(p, UINT_MAX, 0), 30000);
	/* failures 0 is treated as the first. */
	ck_assert_uint_eq(policy_backoff_delay(p, 0, 0), 100);

	p->backoff_min_ms = 2000;
	p->backoff_max_ms = 2000;
	ck_assert_uint_eq(policy_backoff_delay(p, 7, 12345), 2000);
	config_pool_free(p);
}
END_TEST

START_TEST(supervisor_backoff_jitter_bounds)
{
	struct config_pool	*p = arith_pool();
	static const uint32_t	 randoms[] = { 0, 1, 7, 24, 25, 26, 99, 1000,
	    123456789, 0x7fffffff, 0xfffffffe, 0xffffffff };
	uint64_t		 lo, hi, prev_hi = 0, d;
	bool			 spread = false;

	for (unsigned f = 1; f <= 12; f++) {
		uint64_t	base = policy_backoff_delay(p, f, 0);

		lo = UINT64_MAX;
		hi = 0;
		for (size_t i = 0; i < sizeof(randoms) / sizeof(randoms[0]);
		    i++) {
			d = policy_backoff_delay(p, f, randoms[i]);
			ck_assert_uint_le(d, base);
			ck_assert_uint_ge(d, base - base / 4);
			ck_assert_uint_ge(d, p->backoff_min_ms);
			ck_assert_uint_le(d, p->backoff_max_ms);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
		}
		if (hi != lo)
			spread = true;
		/* Below the cap, the delays never shrink, jitter or not. */
		if (base < p->backoff_max_ms)
			ck_assert_uint_ge(lo, prev_hi);
		prev_hi = hi;
	}
	ck_assert(spread);
	config_pool_free(p);
}
END_TEST

START_TEST(supervisor_backoff_reset_after_healthy)
{
	struct config_pool		*p = arith_pool();
	struct policy_history	 h = { 0 };
	uint64_t			 d = 0, now = 1000000;
	int				 failed = 3 << 8;	/* exit 3 */

	p->max_restarts = -1;
	for (unsigned i = 1; i <= 4; i++) {
		ck_assert_int_eq(policy_exit_decide(p, &h, failed, 500,
		    now += 1000, 0, &d), SUPERVISOR_BACKOFF);
		ck_assert_uint_eq(h.failures, i);
	}
	ck_assert_uint_eq(d, 800);
	/* A run of healthy_after or more: back to the minimum. */
	ck_assert_int_eq(policy_exit_decide(p, &h, failed, 10000,
	    now += 1000, 0, &d), SUPERVISOR_BACKOFF);
	ck_assert_uint_eq(h.failures, 1);
	ck_assert_uint_eq(d, 100);
	ck_assert_int_eq(policy_exit_decide(p, &h, failed, 9999,
	    now += 1000, 0, &d), SUPERVISOR_BACKOFF);
	ck_assert_uint_eq(d, 200);
	config_pool_free(p);
}
END_TEST

START_TEST(supervisor_intensity_limit)
{
	struct config_pool		*p = arith_pool();
	struct policy_history	 h = { 0 };
	uint64_t			 times[3], d = 0, t = 5000;
	int				 failed = 3 << 8;

	p->max_restarts = 3;
	p->restart_window_ms = 60000;
	h.times = times;
	h.cap = 3;
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(policy_exit_decide(p, &h, failed, 10,
		    t += 1000, 0, &d), SUPERVISOR_BACKOFF);
	/* The fourth failure inside the window is one too many. */
	ck_assert_int_eq(policy_exit_decide(p, &h, failed, 10, t += 1000,
	    0, &d), SUPERVISOR_FATAL);
	/* Once the first restart is out of the window, one more fits. */
	ck_assert(policy_intensity_allow(&h, 3, 60000, 6000 + 60000));
	ck_assert(!policy_intensity_allow(&h, 3, 60000, 6000 + 60001));
	ck_assert_uint_eq(h.ntimes, 3);
	ck_assert(policy_intensity_allow(&h, 3, 60000, 200000));
	ck_assert_uint_eq(h.ntimes, 1);

	/* 0: never restarted; -1: always. */
	h.ntimes = 0;
	ck_assert(!policy_intensity_allow(&h, 0, 60000, 1));
	for (int i = 0; i < 1000; i++)
		ck_assert(policy_intensity_allow(&h, -1, 60000, 1));
	config_pool_free(p);
}
END_TEST

START_TEST(supervisor_exit_policies)
{
	struct config_pool		*p = arith_pool();
	struct policy_history	 h = { 0 };
	uint64_t			 d = 0;
	int				 ok = 0, code3 = 3 << 8;
	int				 killed = SIGKILL;	/* signalled */

	p->max_restarts = -1;
	ck_assert(WIFSIGNALED(killed));
	ck_assert(policy_exit_success(p, ok));
	ck_assert(!policy_exit_success(p, code3));
	ck_assert(!policy_exit_success(p, killed));

	p->restart = RESTART_ON_FAILURE;
	ck_assert_int_eq(policy_exit_decide(p, &h, ok, 0, 1, 0, &d),
	    SUPERVISOR_EXITED);
	ck_assert_int_eq(policy_exit_decide(p, &h, code3, 0, 1, 0, &d),
	    SUPERVISOR_BACKOFF);
	ck_assert_int_eq(policy_exit_decide(p, &h, killed, 0, 1, 0, &d),
	    SUPERVISOR_BACKOFF);
	p->success_codes[1] = 3;
	p->nsuccess = 2;
	ck_assert_int_eq(policy_exit_decide(p, &h, code3, 0, 1, 0, &d),
	    SUPERVISOR_EXITED);

	p->restart = RESTART_NEVER;
	ck_assert_int_eq(policy_exit_decide(p, &h, killed, 0, 1, 0, &d),
	    SUPERVISOR_EXITED);

	p->restart = RESTART_ALWAYS;
	ck_assert_int_eq(policy_exit_decide(p, &h, ok, 0, 1, 0, &d),
	    SUPERVISOR_BACKOFF);
	config_pool_free(p);
}
END_TEST

START_TEST(supervisor_transitions)
{
	/* The life of a process, step by step. */
	ck_assert(policy_transition_valid(SUPERVISOR_STOPPED,
	    SUPERVISOR_STARTING));
	ck_assert(policy_transition_valid(SUPERVISOR_STARTING,
	    SUPERVISOR_RUNNING));
	ck_assert(policy_transition_valid(SUPERVISOR_RUNNING,
	    SUPERVISOR_PAUSED));
	ck_assert(policy_transition_valid(SUPERVISOR_PAUSED,
	    SUPERVISOR_RUNNING));
	ck_assert(policy_transition_valid(SUPERVISOR_RUNNING,
	    SUPERVISOR_BACKOFF));
	ck_assert(policy_transition_valid(SUPERVISOR_BACKOFF,
	    SUPERVISOR_STARTING));
	ck_assert(policy_transition_valid(SUPERVISOR_STARTING,
	    SUPERVISOR_FATAL));
	ck_assert(policy_transition_valid(SUPERVISOR_FATAL,
	    SUPERVISOR_STARTING));
	ck_assert(policy_transition_valid(SUPERVISOR_RUNNING,
	    SUPERVISOR_STOPPING));
	ck_assert(policy_transition_valid(SUPERVISOR_STOPPING,
	    SUPERVISOR_STOPPED));
	ck_assert(policy_transition_valid(SUPERVISOR_BACKOFF,
	    SUPERVISOR_STOPPED));
	ck_assert(policy_transition_valid(SUPERVISOR_RUNNING,
	    SUPERVISOR_EXITED));

	/* Only a live child can run, pause or be stopping. */
	ck_assert(!policy_transition_valid(SUPERVISOR_STOPPED,
	    SUPERVISOR_RUNNING));
	ck_assert(!policy_transition_valid(SUPERVISOR_BACKOFF,
	    SUPERVISOR_RUNNING));
	ck_assert(!policy_transition_valid(SUPERVISOR_FATAL,
	    SUPERVISOR_RUNNING));
	ck_assert(!policy_transition_valid(SUPERVISOR_EXITED,
	    SUPERVISOR_PAUSED));
	ck_assert(!policy_transition_valid(SUPERVISOR_BACKOFF,
	    SUPERVISOR_PAUSED));
	ck_assert(!policy_transition_valid(SUPERVISOR_STOPPED,
	    SUPERVISOR_STOPPING));
	ck_assert(!policy_transition_valid(SUPERVISOR_STOPPING,
	    SUPERVISOR_RUNNING));
	ck_assert(!policy_transition_valid(SUPERVISOR_STOPPING,
	    SUPERVISOR_PAUSED));
	ck_assert(!policy_transition_valid(SUPERVISOR_FATAL,
	    SUPERVISOR_STOPPED));
	ck_assert(!policy_transition_valid(SUPERVISOR_RUNNING,
	    SUPERVISOR_RUNNING));
	ck_assert(!policy_transition_valid(SUPERVISOR_RUNNING,
	    (enum supervisor_state)42));

	/* Unhealthy: from a live child, and only to be stopped. */
	ck_assert(policy_transition_valid(SUPERVISOR_STARTING,
	    SUPERVISOR_UNHEALTHY));
	ck_assert(policy_transition_valid(SUPERVISOR_RUNNING,
	    SUPERVISOR_UNHEALTHY));
	ck_assert(policy_transition_valid(SUPERVISOR_UNHEALTHY,
	    SUPERVISOR_STOPPING));
	ck_assert(policy_transition_valid(SUPERVISOR_STOPPING,
	    SUPERVISOR_EXITED));
	ck_assert(!policy_transition_valid(SUPERVISOR_PAUSED,
	    SUPERVISOR_UNHEALTHY));
	ck_assert(!policy_transition_valid(SUPERVISOR_BACKOFF,
	    SUPERVISOR_UNHEALTHY));
	ck_assert(!policy_transition_valid(SUPERVISOR_UNHEALTHY,
	    SUPERVISOR_RUNNING));
	ck_assert(!policy_transition_valid(SUPERVISOR_UNHEALTHY,
	    SUPERVISOR_BACKOFF));
	ck_assert_str_eq(policy_state_name(SUPERVISOR_UNHEALTHY),
	    "unhealthy");

	ck_assert_str_eq(policy_state_name(SUPERVISOR_BACKOFF),
	    "backoff");
	ck_assert_str_eq(policy_state_name(SUPERVISOR_FATAL), "fatal");
}
END_TEST

/* Processes. */

START_TEST(supervisor_crash_loop_fatal)
{
	struct config		*c = new_config();
	struct config_pool	*p = add_pool(c, "crash", "sh -c 'exit 3'");
	unsigned long long	 delays[3];
	size_t			 from = 0;
	int			 b, s;

	p->max_restarts = 3;
	p->backoff_min_ms = 40;
	fx_start(c);
	WAIT_FOR(state_of("crash/1") == SUPERVISOR_FATAL, 10000);
	ck_assert_uint_eq(supervisor_proc_restarts(supervisor_find(fx.sv,
	    "crash/1")), 3);
	ck_assert_int_eq(supervisor_proc_last_status(supervisor_find(fx.sv,
	    "crash/1")), 3 << 8);
	ck_assert_int_eq(pid_of("crash/1"), 0);

	/* Three waits in backoff, each longer than the one before. */
	for (int i = 0; i < 3; i++) {
		b = find_transition("crash/1", SUPERVISOR_BACKOFF, from);
		ck_assert_int_ge(b, 0);
		s = find_transition("crash/1", SUPERVISOR_STARTING, (size_t)b);
		ck_assert_int_ge(s, 0);
		delays[i] = fx.log[s].at - fx.log[b].at;
		from = (size_t)s;
	}
	ck_assert_int_lt(find_transition("crash/1", SUPERVISOR_BACKOFF,
	    from), 0);
	/* The clock is read in whole ms: allow 2 ms of rounding. */
	ck_assert_uint_ge(delays[0], 40 - 2);
	ck_assert_uint_ge(delays[1], 60 - 2);	/* 80 less a quarter */
	ck_assert_uint_ge(delays[2], 120 - 2);	/* 160 less a quarter */
	/* Lower bounds, not neighbours: a loaded machine may stretch any. */
	ck_assert_uint_gt(delays[2], delays[0]);

	/* An operator's restart clears fatal. */
	ck_assert_int_eq(supervisor_restart(fx.sv, "crash/1", NULL), 0);
	ck_assert_int_eq(state_of("crash/1"), SUPERVISOR_STARTING);
	WAIT_FOR(state_of("crash/1") == SUPERVISOR_BACKOFF, 5000);
	WAIT_FOR(state_of("crash/1") == SUPERVISOR_FATAL, 10000);
}
END_TEST

START_TEST(supervisor_exit_not_restarted)
{
	struct config		*c = new_config();
	struct config_pool	*p;

	add_pool(c, "ok", "true");
	p = add_pool(c, "never", "false");
	p->restart = RESTART_NEVER;
	p = add_pool(c, "three", "sh -c 'exit 3'");
	p->success_codes[1] = 3;
	p->nsuccess = 2;
	fx_start(c);
	WAIT_FOR(state_of("ok/1") == SUPERVISOR_EXITED &&
	    state_of("never/1") == SUPERVISOR_EXITED &&
	    state_of("three/1") == SUPERVISOR_EXITED, 5000);
	ck_assert_uint_eq(supervisor_proc_restarts(supervisor_find(fx.sv,
	    "never/1")), 0);
	/* Its connection was handed over, then dropped when it finished. */
	ck_assert_int_eq(fx.ndetach, 3);
}
END_TEST

START_TEST(supervisor_kill9_replaced)
{
	struct config	*c = new_config();
	pid_t		 pid, pid2;

	add_pool(c, "w", "sleep 30");
	fx_start(c);
	WAIT_FOR(state_of("w/1") == SUPERVISOR_STARTING, 1000);
	pid = pid_of("w/1");
	ck_assert_int_gt(pid, 0);
	supervisor_proc_registered(fx.sv, supervisor_find(fx.sv, "w/1"));
	ck_assert_int_eq(state_of("w/1"), SUPERVISOR_RUNNING);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	WAIT_FOR(state_of("w/1") == SUPERVISOR_BACKOFF, 5000);
	ck_assert_int_eq(fx.ndetach, 1);
	WAIT_FOR(state_of("w/1") == SUPERVISOR_STARTING, 5000);
	pid2 = pid_of("w/1");
	ck_assert_int_gt(pid2, 0);
	ck_assert_int_ne(pid2, pid);
	ck_assert_uint_eq(supervisor_proc_restarts(supervisor_find(fx.sv,
	    "w/1")), 1);
	ck_assert_int_eq(supervisor_proc_last_status(supervisor_find(fx.sv,
	    "w/1")), SIGKILL);
}
END_TEST

START_TEST(supervisor_stop_timeout_kills)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	char			 cmd[512], ready[300];
	unsigned long long	 t0;
	pid_t			 pid;

	snprintf(ready, sizeof(ready), "%s/ready", fx.dir);
	snprintf(cmd, sizeof(cmd), "sh -c 'trap \"\" TERM; echo $$ > %s; "
	    "while :; do sleep 0.05; done'", ready);
	p = add_pool(c, "stubborn", cmd);
	p->kill_timeout_ms = 300;	/* nothing to drain: TERM, then KILL */
	fx_start(c);
	WAIT_FOR(file_ready(ready), 5000);
	pid = pid_of("stubborn/1");
	ck_assert_int_eq(read_pid(ready), pid);

	t0 = harness_now_ms();
	ck_assert_int_eq(supervisor_stop(fx.sv, "stubborn", 0, false, NULL),
	    0);
	ck_assert_int_eq(state_of("stubborn/1"), SUPERVISOR_STOPPING);
	WAIT_FOR(state_of("stubborn/1") == SUPERVISOR_STOPPED, 5000);
	/* libevent may round its timer down by a few ms. */
	ck_assert_uint_ge(harness_now_ms() - t0, 290);
	ck_assert_int_eq(supervisor_proc_last_status(supervisor_find(fx.sv,
	    "stubborn/1")), SIGKILL);
	ck_assert(proc_gone(pid));
	/* Stopped stays stopped. */
	ck_assert_int_eq(pid_of("stubborn/1"), 0);
}
END_TEST

START_TEST(supervisor_stop_force_and_timeout_arg)
{
	struct config		*c = new_config();
	char			 cmd[512], ready[300];
	unsigned long long	 t0;
	char			*cause = NULL;

	snprintf(ready, sizeof(ready), "%s/ready", fx.dir);
	snprintf(cmd, sizeof(cmd), "sh -c 'trap \"\" TERM; echo $$ > %s; "
	    "while :; do sleep 0.05; done'", ready);
	add_pool(c, "s", cmd)->kill_timeout_ms = 200;
	fx_start(c);
	WAIT_FOR(file_ready(ready), 5000);

	/* No worker, no jobs: the drain timeout given is not waited for. */
	t0 = harness_now_ms();
	ck_assert_int_eq(supervisor_stop(fx.sv, "s/1", 60000, false, NULL),
	    0);
	WAIT_FOR(state_of("s/1") == SUPERVISOR_STOPPED, 3000);
	ck_assert_uint_ge(harness_now_ms() - t0, 190);
	ck_assert_int_eq(supervisor_stop(fx.sv, "s/1", 0, false, &cause),
	    -EBUSY);
	ck_assert_str_eq(cause, "'s/1' is not running (stopped)");
	free(cause);

	/* --force: SIGKILL at once. */
	unlink(ready);
	ck_assert_int_eq(supervisor_restart(fx.sv, "s", NULL), 0);
	WAIT_FOR(file_ready(ready), 5000);
	t0 = harness_now_ms();
	ck_assert_int_eq(supervisor_stop(fx.sv, "s/1", 0, true, NULL), 0);
	WAIT_FOR(state_of("s/1") == SUPERVISOR_STOPPED, 3000);
	ck_assert_uint_lt(harness_now_ms() - t0, 2000);
}
END_TEST

START_TEST(supervisor_stop_kills_group)
{
	struct config	*c = new_config();
	char		 cmd[512], gfile[300];
	pid_t		 grandchild;

	/* The grandchild ignores TERM; the shell does not. */
	snprintf(gfile, sizeof(gfile), "%s/grandchild", fx.dir);
	snprintf(cmd, sizeof(cmd), "sh -c '(trap \"\" TERM; exec sleep 30) & "
	    "echo $! > %s; wait'", gfile);
	add_pool(c, "g", cmd);
	fx_start(c);
	WAIT_FOR(file_ready(gfile), 5000);
	grandchild = read_pid(gfile);
	ck_assert(!proc_gone(grandchild));

	ck_assert_int_eq(supervisor_stop(fx.sv, "g/1", 0, false, NULL), 0);
	WAIT_FOR(state_of("g/1") == SUPERVISOR_STOPPED, 4000);
	WAIT_FOR(proc_gone(grandchild), 2000);
}
END_TEST

START_TEST(supervisor_exit_kills_leftovers)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	char			 cmd[512], gfile[300];
	pid_t			 grandchild;

	/* The main process exits and leaves a child holding its output. */
	snprintf(gfile, sizeof(gfile), "%s/grandchild", fx.dir);
	snprintf(cmd, sizeof(cmd), "sh -c 'sleep 30 & echo $! > %s; "
	    "sleep 0.2; exit 0'", gfile);
	p = add_pool(c, "left", cmd);
	p->restart = RESTART_NEVER;
	fx_start(c);
	WAIT_FOR(file_ready(gfile), 5000);
	grandchild = read_pid(gfile);
	WAIT_FOR(state_of("left/1") == SUPERVISOR_EXITED, 1500);
	WAIT_FOR(proc_gone(grandchild), 2000);
}
END_TEST

START_TEST(supervisor_pause_resume)
{
	struct config		*c = new_config();
	struct supervisor_proc	*proc;
	struct conn_stub	*conn;
	char			 cmd[700], ready[300], gfile[300];
	char			*cause = NULL;
	pid_t			 pid, grandchild;

	/*
	 * Neither process forks once ready is written: a shell stopped in
	 * vfork() shows 'D', not 'T'.
	 */
	snprintf(ready, sizeof(ready), "%s/ready", fx.dir);
	snprintf(gfile, sizeof(gfile), "%s/grandchild", fx.dir);
	snprintf(cmd, sizeof(cmd), "sh -c 'sleep 30 & echo $! > %s; "
	    "echo $$ > %s; exec sleep 30'", gfile, ready);
	add_pool(c, "p", cmd);
	fx_start(c);
	WAIT_FOR(file_ready(ready), 5000);
	grandchild = read_pid(gfile);
	proc = supervisor_find(fx.sv, "p/1");
	pid = supervisor_proc_pid(proc);
	conn = fx.conns[0];
	supervisor_proc_registered(fx.sv, proc);
	ck_assert_int_eq(state_of("p/1"), SUPERVISOR_RUNNING);

	ck_assert_int_eq(supervisor_resume(fx.sv, "p/1", &cause), -EBUSY);
	ck_assert_str_eq(cause, "'p/1' is running, not paused");
	free(cause);

	ck_assert_int_eq(supervisor_pause(fx.sv, "p/1", NULL), 0);
	ck_assert_int_eq(state_of("p/1"), SUPERVISOR_PAUSED);
	ck_assert(conn->paused);
	WAIT_FOR(proc_state(pid) == 'T' && proc_state(grandchild) == 'T',
	    2000);
	ck_assert_int_eq(supervisor_pause(fx.sv, "p/1", &cause), -EBUSY);
	ck_assert_str_eq(cause, "'p/1' is already paused");
	free(cause);

	ck_assert_int_eq(supervisor_resume(fx.sv, "p", NULL), 0);
	ck_assert_int_eq(state_of("p/1"), SUPERVISOR_RUNNING);
	ck_assert(!conn->paused);
	ck_assert_int_eq(conn->npaused, 2);
	WAIT_FOR(proc_state(pid) == 'S' && proc_state(grandchild) == 'S',
	    2000);
	ck_assert(!proc_gone(pid));
	ck_assert_int_eq(supervisor_resume(fx.sv, "p", &cause), -EBUSY);
	ck_assert_str_eq(cause, "pool 'p' has no paused process");
	free(cause);

	/* A paused process can be stopped: it gets SIGCONT with its signal. */
	ck_assert_int_eq(supervisor_pause(fx.sv, "p", NULL), 0);
	WAIT_FOR(proc_state(pid) == 'T', 2000);
	ck_assert_int_eq(supervisor_stop(fx.sv, "p", 0, false, NULL), 0);
	WAIT_FOR(state_of("p/1") == SUPERVISOR_STOPPED, 3000);
	ck_assert_int_eq(supervisor_proc_last_status(proc), SIGTERM);
	WAIT_FOR(proc_gone(grandchild), 2000);
}
END_TEST

START_TEST(supervisor_registered_detached)
{
	struct config		*c = new_config();
	struct supervisor_proc	*proc;
	char			 cmd[512], ready[300];

	snprintf(ready, sizeof(ready), "%s/ready", fx.dir);
	snprintf(cmd, sizeof(cmd), "sh -c 'echo $$ > %s; exec sleep 30'",
	    ready);
	add_pool(c, "r", cmd);
	fx_start(c);
	WAIT_FOR(file_ready(ready), 5000);
	proc = supervisor_find(fx.sv, "r/1");
	ck_assert_int_eq(supervisor_proc_state(proc), SUPERVISOR_STARTING);
	supervisor_proc_registered(fx.sv, proc);
	ck_assert_int_eq(supervisor_proc_state(proc), SUPERVISOR_RUNNING);

	/* The broker saw the connection close: no detach call later. */
	close(fx.conns[0]->fd);
	fx.conns[0]->fd = -1;
	supervisor_proc_detached(fx.sv, proc);
	ck_assert_int_eq(supervisor_proc_state(proc), SUPERVISOR_STARTING);
	ck_assert_int_eq(supervisor_stop(fx.sv, "r/1", 0, false, NULL), 0);
	WAIT_FOR(state_of("r/1") == SUPERVISOR_STOPPED, 3000);
	ck_assert_int_eq(fx.ndetach, 0);
}
END_TEST

/* Path of this test program. */
static void
self_path(char *buf, size_t len)
{
	ssize_t	n = readlink("/proc/self/exe", buf, len - 1);

	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
}

START_TEST(supervisor_child_environment)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	char			 exe[PATH_MAX], cmd[PATH_MAX + 512];
	char			 report[300], *text, line[600], buf[16];
	const char		*lang = getenv("LANG");
	ssize_t			 n;

	self_path(exe, sizeof(exe));
	snprintf(report, sizeof(report), "%s/report", fx.dir);
	snprintf(cmd, sizeof(cmd), "%s --child-report %s", exe, report);
	p = add_pool(c, "envtest", cmd);
	p->directory = strdup(fx.dir);
	p->restart = RESTART_NEVER;
	p->environment[0] = strdup("QUALITY=80");
	p->environment = realloc(p->environment, 4 * sizeof(char *));
	p->environment[1] = strdup("MODE=fast");
	p->environment[2] = strdup("HOME=/nonexistent-home");
	p->environment[3] = NULL;

	/* Descriptors of ours that must not leak into the child. */
	ck_assert_int_ne(open("/dev/null", O_RDONLY), -1);
	ck_assert_int_ne(dup(2), -1);
	setenv("PB_SECRET_OF_THE_TEST", "leak", 1);

	fx_start(c);
	WAIT_FOR(state_of("envtest/1") == SUPERVISOR_EXITED, 10000);
	ck_assert_int_eq(supervisor_proc_last_status(supervisor_find(fx.sv,
	    "envtest/1")), 0);
	text = harness_read_file(report);
	ck_assert_ptr_nonnull(text);

	ck_assert_msg(strstr(text, "fds: 0 1 2 3\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "fd3: socket\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "stdin: /dev/null\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "group leader: yes\n") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "session leader: yes\n") != NULL, "%s",
	    text);
	snprintf(line, sizeof(line), "cwd: %s\n", fx.dir);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);

	ck_assert_msg(strstr(text, "env: PATCHBAY_FD=3\n") != NULL, "%s", text);
	ck_assert(strstr(text, "env: PATCHBAY_POOL=envtest\n") != NULL);
	ck_assert(strstr(text, "env: PATCHBAY_INSTANCE=1\n") != NULL);
	ck_assert(strstr(text, "env: PATCHBAY_ID=envtest/1\n") != NULL);
	ck_assert(strstr(text, "env: QUALITY=80\n") != NULL);
	ck_assert(strstr(text, "env: MODE=fast\n") != NULL);
	/* The pool's setting replaces the inherited one. */
	ck_assert(strstr(text, "env: HOME=/nonexistent-home\n") != NULL);
	snprintf(line, sizeof(line), "env: PATH=%s\n", getenv("PATH"));
	ck_assert(strstr(text, line) != NULL);
	if (lang != NULL) {
		snprintf(line, sizeof(line), "env: LANG=%s\n", lang);
		ck_assert(strstr(text, line) != NULL);
	}
	ck_assert_msg(strstr(text, "PB_SECRET_OF_THE_TEST") == NULL, "%s",
	    text);
	ck_assert(strstr(text, "HARNESS_ROOT") == NULL);
	/* PATH, HOME, LANG?, 4 PATCHBAY_*, QUALITY, MODE: nothing else. */
	snprintf(line, sizeof(line), "env count: %d\n", lang != NULL ? 9 : 8);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	free(text);

	/* What the child wrote on PATCHBAY_FD reached our end. */
	n = read(fx.conns[0]->fd, buf, sizeof(buf));
	ck_assert_int_eq(n, 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
}
END_TEST

/* --child-report FILE: describes this process to FILE, for the test above. */
static int
child_report(const char *path)
{
	FILE		*f = fopen(path, "w");
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 buf[PATH_MAX];
	int		 fds[64], nfds = 0, n;
	ssize_t		 len;

	if (f == NULL)
		return 1;
	/* The table as exec left it (minus our own two descriptors). */
	if ((d = opendir("/proc/self/fd")) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL && nfds < 64) {
		if (de->d_name[0] == '.')
			continue;
		n = atoi(de->d_name);
		if (n != dirfd(d) && n != fileno(f))
			fds[nfds++] = n;
	}
	closedir(d);
	for (int i = 0; i < nfds; i++)
		for (int j = i + 1; j < nfds; j++)
			if (fds[j] < fds[i]) {
				n = fds[i];
				fds[i] = fds[j];
				fds[j] = n;
			}
	fputs("fds:", f);
	for (int i = 0; i < nfds; i++)
		fprintf(f, " %d", fds[i]);
	fputc('\n', f);
	if (fstat(3, &st) == 0 && S_ISSOCK(st.st_mode))
		fputs("fd3: socket\n", f);
	if ((len = readlink("/proc/self/fd/0", buf, sizeof(buf) - 1)) > 0) {
		buf[len] = '\0';
		fprintf(f, "stdin: %s\n", buf);
	}
	fprintf(f, "group leader: %s\n", getpgrp() == getpid() ? "yes" : "no");
	fprintf(f, "session leader: %s\n", getsid(0) == getpid() ? "yes" :
	    "no");
	if (getcwd(buf, sizeof(buf)) != NULL)
		fprintf(f, "cwd: %s\n", buf);
	n = 0;
	for (char **e = environ; *e != NULL; e++, n++)
		fprintf(f, "env: %s\n", *e);
	fprintf(f, "env count: %d\n", n);
	if (fclose(f) != 0)
		return 1;
	if (write(3, "hello", 5) != 5)
		return 1;
	return 0;
}

START_TEST(supervisor_user)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	struct passwd		*pw = getpwnam("nobody");
	char			 logpath[300], line[600], *text;
	int			 fd;

	if (pw == NULL)
		return;
	/* The child tells who it is on stdout, which goes to our log. */
	snprintf(logpath, sizeof(logpath), "%s/log", fx.dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_ne(dup2(fd, 2), -1);
	close(fd);
	p = add_pool(c, "u", "sh -c 'echo who: $(id -u) $(id -g) $HOME $USER'");
	p->user = strdup("nobody");
	p->restart = RESTART_NEVER;
	fx_start(c);
	if (geteuid() != 0) {
		/* Only root may switch users: the pool cannot start. */
		ck_assert_int_eq(state_of("u/1"), SUPERVISOR_FATAL);
		text = harness_read_file(logpath);
		ck_assert(strstr(text, "user=nobody needs patchbayd to run as "
		    "root") != NULL);
		free(text);
		return;
	}
	WAIT_FOR(state_of("u/1") == SUPERVISOR_EXITED, 5000);
	text = harness_read_file(logpath);
	ck_assert_ptr_nonnull(text);
	snprintf(line, sizeof(line), "u/1: who: %u %u %s nobody\n",
	    (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, pw->pw_dir);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	free(text);
}
END_TEST

START_TEST(supervisor_output_logged)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	char			 logpath[300], *text;
	int			 fd;

	/* The log goes to stderr: send it to a file for this test. */
	snprintf(logpath, sizeof(logpath), "%s/log", fx.dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_ne(dup2(fd, 2), -1);
	close(fd);
	p = add_pool(c, "talk", "sh -c 'echo out line; echo err line >&2; "
	    "printf \"no newline\"'");
	p->restart = RESTART_NEVER;
	fx_start(c);
	WAIT_FOR(state_of("talk/1") == SUPERVISOR_EXITED, 5000);
	text = harness_read_file(logpath);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strstr(text, "info patchbayd: talk/1: out line\n") != NULL, "%s",
	    text);
	ck_assert(strstr(text, "info patchbayd: talk/1: err line\n") != NULL);
	ck_assert(strstr(text, "info patchbayd: talk/1: no newline\n") != NULL);
	ck_assert(strstr(text, "talk/1: pid ") != NULL);
	free(text);
}
END_TEST

START_TEST(supervisor_exec_failure)
{
	char			 path[300], *cause = NULL;
	const char		*missing[] = { "/nonexistent/prog", NULL };
	const char		*nopath[] = { "no-such-command-pb", "x", NULL };
	const char		*noexec[] = { path, NULL };
	const char		*sleeper[] = { "sleep", "30", NULL };
	struct config		*c = new_config();
	struct config_pool	*p;
	int			 fd;

	p = add_pool(c, "baddir", "true");
	p->directory = strdup("/nonexistent/dir");
	fx_start(c);
	/* A pool that cannot start at all is fatal at once. */
	ck_assert_int_eq(state_of("baddir/1"), SUPERVISOR_FATAL);
	ck_assert_uint_eq(fx.nconns, 0);

	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", missing, RESTART_NEVER,
	    0, NULL, &cause), -ENOENT);
	ck_assert_str_eq(cause, "cannot execute '/nonexistent/prog': No such "
	    "file or directory");
	free(cause);
	ck_assert_ptr_null(supervisor_find(fx.sv, "x"));

	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", nopath, RESTART_NEVER,
	    0, NULL, &cause), -ENOENT);
	ck_assert_str_eq(cause, "cannot execute 'no-such-command-pb': No such "
	    "file or directory");
	free(cause);

	snprintf(path, sizeof(path), "%s/not-executable", fx.dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ne(fd, -1);
	close(fd);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", noexec, RESTART_NEVER,
	    0, NULL, &cause), -EACCES);
	ck_assert_msg(strstr(cause, "Permission denied") != NULL, "%s", cause);
	free(cause);
	ck_assert_ptr_null(supervisor_find(fx.sv, "x"));
	ck_assert_uint_eq(fx.nconns, 0);

	/* Ids: bad, taken by a pool, taken by a live process. */
	ck_assert_int_eq(supervisor_spawn(fx.sv, "a/b", sleeper,
	    RESTART_NEVER, 0, NULL, &cause), -EINVAL);
	ck_assert_msg(strstr(cause, "bad id 'a/b'") != NULL, "%s", cause);
	free(cause);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "baddir", sleeper,
	    RESTART_NEVER, 0, NULL, &cause), -EEXIST);
	ck_assert_str_eq(cause, "'baddir' is the name of a pool");
	free(cause);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", sleeper, RESTART_NEVER,
	    0, NULL, NULL), 0);
	/* An ad-hoc command is running once executed. */
	ck_assert_int_eq(state_of("x"), SUPERVISOR_RUNNING);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", sleeper, RESTART_NEVER,
	    0, NULL, &cause), -EEXIST);
	ck_assert_str_eq(cause, "'x' already exists (running)");
	free(cause);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "y", sleeper, RESTART_NEVER,
	    -2, NULL, &cause), -EINVAL);
	free(cause);
}
END_TEST

/* Sets key to value in l, which must parse. */
static void
set_limit(struct limits *l, enum limits_key key, const char *value)
{
	char	err[UTIL_ERRLEN];

	ck_assert_msg(limits_parse(l, key, value, err) == 0, "%s", err);
}

/*
 * A pool's setrlimit() limits are what its executed command has (its
 * /proc/self/limits, in its stdout_log); a pool without them has
 * patchbayd's own; an ad-hoc process gets those it was spawned with.
 */
START_TEST(supervisor_limits_reach_the_child)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	const char		*argv[] = { "cat", "/proc/self/limits", NULL };
	struct limits		 l;
	struct rlimit		 own;
	char			 logpath[300], freepath[300], errpath[300];
	char			*text, soft[32], hard[32], want[32], nproc[32];
	int			 fd;

	/*
	 * RLIMIT_NPROC counts all the processes of our user: when we are not
	 * root, no fewer than we may have now, or `cat` could not start.
	 */
	ck_assert_int_eq(getrlimit(RLIMIT_NPROC, &own), 0);
	snprintf(nproc, sizeof(nproc), "%llu", own.rlim_cur == RLIM_INFINITY ||
	    own.rlim_cur > LIMIT_PROC_PIDS_MAX ? 50000ULL :
	    (unsigned long long)own.rlim_cur);

	/* The supervisor's log (an ad-hoc process's output) to a file. */
	snprintf(errpath, sizeof(errpath), "%s/log", fx.dir);
	fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_ne(dup2(fd, 2), -1);
	close(fd);
	snprintf(logpath, sizeof(logpath), "%s/limits.log", fx.dir);
	snprintf(freepath, sizeof(freepath), "%s/free.log", fx.dir);
	p = add_pool(c, "lim", "cat /proc/self/limits");
	p->restart = RESTART_NEVER;
	p->stdout_log = strdup(logpath);
	set_limit(&p->limits, LIMITS_MEMORY, "256MiB");
	set_limit(&p->limits, LIMITS_CPU, "10s");
	set_limit(&p->limits, LIMITS_NOFILE, "100");
	set_limit(&p->limits, LIMITS_NPROC, nproc);
	set_limit(&p->limits, LIMITS_CORE, "0");
	p = add_pool(c, "free", "cat /proc/self/limits");
	p->restart = RESTART_NEVER;
	p->stdout_log = strdup(freepath);
	fx_start(c);
	WAIT_FOR(state_of("lim/1") == SUPERVISOR_EXITED, 5000);
	WAIT_FOR(state_of("free/1") == SUPERVISOR_EXITED, 5000);
	ck_assert_str_eq(supervisor_proc_last_exit(supervisor_find(fx.sv,
	    "lim/1")), "exit 0");
	text = harness_read_file(logpath);
	ck_assert_ptr_nonnull(text);
	harness_limits_line(text, "Max address space", soft, hard);
	ck_assert_str_eq(soft, "268435456");
	ck_assert_str_eq(hard, "268435456");
	/* SIGXCPU at the limit, SIGKILL a few seconds later. */
	harness_limits_line(text, "Max cpu time", soft, hard);
	ck_assert_str_eq(soft, "10");
	ck_assert_str_eq(hard, "15");
	harness_limits_line(text, "Max open files", soft, hard);
	ck_assert_str_eq(soft, "100");
	ck_assert_str_eq(hard, "100");
	harness_limits_line(text, "Max processes", soft, hard);
	ck_assert_str_eq(soft, nproc);
	ck_assert_str_eq(hard, nproc);
	harness_limits_line(text, "Max core file size", soft, hard);
	ck_assert_str_eq(soft, "0");
	ck_assert_str_eq(hard, "0");
	free(text);

	/* Without limits, patchbayd's own. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &own), 0);
	snprintf(want, sizeof(want), "%llu", (unsigned long long)own.rlim_cur);
	text = harness_read_file(freepath);
	ck_assert_ptr_nonnull(text);
	harness_limits_line(text, "Max open files", soft, hard);
	ck_assert_str_eq(soft, want);
	free(text);

	/* An ad-hoc process: those it was spawned with. */
	memset(&l, 0, sizeof(l));
	set_limit(&l, LIMITS_NOFILE, "77");
	ck_assert_int_eq(supervisor_spawn(fx.sv, "adhoc", argv, RESTART_NEVER,
	    0, &l, NULL), 0);
	WAIT_FOR(state_of("adhoc") == SUPERVISOR_EXITED, 5000);
	text = harness_read_file(errpath);
	ck_assert_ptr_nonnull(text);
	harness_limits_line(text, "adhoc: Max open files", soft, hard);
	ck_assert_str_eq(soft, "77");
	ck_assert_str_eq(hard, "77");
	free(text);
}
END_TEST

/*
 * How a process ended names the limit that ended it, in LAST_EXIT and the
 * log: SIGXCPU under limit_cpu, a failure under limit_memory (the kernel
 * says nothing about a refused allocation: the process fails, exits or
 * aborts); a success, an ordinary signal, or a limit that was not set
 * name none.
 */
START_TEST(supervisor_exit_names_the_limit)
{
	static const struct {
		const char	*name, *command, *limit, *value, *want;
	} cases[] = {
		{ "xcpu", "sh -c 'kill -s XCPU $$'", "limit_cpu", "10s",
		    "SIGXCPU: limit_cpu 10s" },
		{ "xcpunolimit", "sh -c 'kill -s XCPU $$'", NULL, NULL,
		    "signal XCPU" },
		{ "memexit", "sh -c 'exit 1'", "limit_memory", "64MiB",
		    "exit 1 (limit_memory 64MiB)" },
		{ "memabrt", "sh -c 'kill -s ABRT $$'", "limit_memory", "64MiB",
		    "signal ABRT (limit_memory 64MiB)" },
		{ "memok", "sh -c 'exit 0'", "limit_memory", "64MiB",
		    "exit 0" },
		{ "memterm", "sh -c 'kill -s TERM $$'", "limit_memory", "64MiB",
		    "signal TERM" },
		{ "nofile", "sh -c 'exit 1'", "limit_nofile", "64",
		    "exit 1" },
	};
	struct config		*c = new_config();
	struct config_pool	*p;
	char			 id[64], logpath[300], *text;
	int			 fd;
	size_t			 i;

	/* The supervisor's log is our stderr: keep it in a file. */
	snprintf(logpath, sizeof(logpath), "%s/log", fx.dir);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_ne(dup2(fd, 2), -1);
	close(fd);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p = add_pool(c, cases[i].name, cases[i].command);
		p->restart = RESTART_NEVER;
		p->directory = strdup(fx.dir);
		/* No core file, whatever the signal. */
		set_limit(&p->limits, LIMITS_CORE, "0");
		if (cases[i].limit != NULL)
			set_limit(&p->limits, (enum limits_key)limits_find(
			    cases[i].limit), cases[i].value);
	}
	fx_start(c);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(id, sizeof(id), "%s/1", cases[i].name);
		WAIT_FOR(state_of(id) == SUPERVISOR_EXITED, 5000);
		ck_assert_str_eq(supervisor_proc_last_exit(supervisor_find(
		    fx.sv, id)), cases[i].want);
	}
	text = harness_read_file(logpath);
	ck_assert_ptr_nonnull(text);
	/* A limit is worth a warning; the rest is told at info. */
	ck_assert_msg(strstr(text, "warn patchbayd: xcpu/1: pid ") != NULL,
	    "%s", text);
	ck_assert_msg(strstr(text, " exited: SIGXCPU: limit_cpu 10s\n") !=
	    NULL, "%s", text);
	ck_assert_msg(strstr(text, " exited: exit 1 (limit_memory 64MiB)\n")
	    != NULL, "%s", text);
	ck_assert_msg(strstr(text, "info patchbayd: memok/1: pid ") != NULL,
	    "%s", text);
	free(text);
}
END_TEST

/*
 * A limit above patchbayd's own hard limit cannot be given by a process
 * that is not root: the pool is fatal with that reason, a spawn is
 * refused with it, and nothing is clamped. cgroup limits are a pool's.
 */
START_TEST(supervisor_limit_above_own_hard_limit)
{
	struct config		*c = new_config();
	struct config_pool	*p;
	const char		*argv[] = { "true", NULL };
	struct rlimit		 rl = { 256, 256 };
	struct limits		 l;
	char			*cause = NULL;
	const char		*fork_mode = getenv("CK_FORK");

	if (fork_mode != NULL && strcmp(fork_mode, "no") == 0) {
		fprintf(stderr, "supervisor_limit_above_own_hard_limit: "
		    "skipped: it changes its process's uid (CK_FORK=no)\n");
		return;
	}
	/* This test runs in a process of its own: lower, then drop root. */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	if (geteuid() == 0) {
		ck_assert_int_eq(setgroups(0, NULL), 0);
		ck_assert_int_eq(setresgid(65534, 65534, 65534), 0);
		ck_assert_int_eq(setresuid(65534, 65534, 65534), 0);
	}
	p = add_pool(c, "greedy", "true");
	set_limit(&p->limits, LIMITS_NOFILE, "1024");
	fx_start(c);
	ck_assert_int_eq(state_of("greedy/1"), SUPERVISOR_FATAL);
	ck_assert_str_eq(supervisor_proc_reason(supervisor_find(fx.sv,
	    "greedy/1")), "limit_nofile 1024 is above the hard limit of "
	    "test-supervisor (256), which only root can raise");
	ck_assert_uint_eq(fx.nconns, 0);

	memset(&l, 0, sizeof(l));
	set_limit(&l, LIMITS_NOFILE, "512");
	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", argv, RESTART_NEVER, 0,
	    &l, &cause), -EPERM);
	ck_assert_str_eq(cause, "limit_nofile 512 is above the hard limit of "
	    "test-supervisor (256), which only root can raise");
	free(cause);
	ck_assert_ptr_null(supervisor_find(fx.sv, "x"));

	/* Within it, fine. */
	memset(&l, 0, sizeof(l));
	set_limit(&l, LIMITS_NOFILE, "128");
	ck_assert_int_eq(supervisor_spawn(fx.sv, "x", argv, RESTART_NEVER, 0,
	    &l, NULL), 0);

	memset(&l, 0, sizeof(l));
	set_limit(&l, LIMITS_MEMORY_MAX, "64MiB");
	ck_assert_int_eq(supervisor_spawn(fx.sv, "y", argv, RESTART_NEVER, 0,
	    &l, &cause), -EINVAL);
	ck_assert_str_eq(cause, "spawn 'y': memory_max, cpu_max and pids_max "
	    "are a pool's settings; a spawned process takes the limit_* ones");
	free(cause);
}
END_TEST

/* Makes dir/name (and its parents) as a directory. */
static void
make_dirs(const char *dir, const char *name)
{
	char	path[PATH_MAX], *s;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (s = path + strlen(dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		ck_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
		*s = '/';
	}
	ck_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
}

/*
 * cgroup.c on a tree of plain files laid out as cgroup v2 is: where its
 * cgroup is (mountinfo and /proc/self/cgroup as the kernel writes them),
 * the controllers it enables, the files of a pool's limits, the OOM
 * counter, and each refusal's sentence. (The kernel's own refusals, such
 * as the no-internal-processes rule, need a real delegated cgroup:
 * test-pools tries that when it has one.)
 */
START_TEST(supervisor_cgroup_files)
{
	struct cgroup_root	*root = NULL;
	struct limits		 l;
	char			 mountinfo[PATH_MAX], self[PATH_MAX];
	char			 path[PATH_MAX + 64], want[PATH_MAX + 300];
	char			 mnt[PATH_MAX], *text, *cause = NULL;
	unsigned		 mem_pids = (1u << LIMITS_MEMORY_MAX) |
				    (1u << LIMITS_PIDS_MAX);
	int			 fd;

	/* A mount point with a blank, as mountinfo escapes it. */
	snprintf(mnt, sizeof(mnt), "%s/cg root", fx.dir);
	make_dirs(fx.dir, "cg root/system.slice/pb.service/pool-thumbs");
	harness_write_file(mountinfo, sizeof(mountinfo), fx.dir, "mountinfo",
	    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	    "35 24 0:30 / %s/cg\\040root rw,nosuid shared:9 - cgroup2 cgroup2 "
	    "rw,nsdelegate\n", fx.dir);
	harness_write_file(self, sizeof(self), fx.dir, "self",
	    "12:memory:/user.slice\n0::/system.slice/pb.service\n");
	harness_write_file(path, sizeof(path), mnt,
	    "system.slice/pb.service/cgroup.controllers",
	    "cpuset cpu io memory pids\n");
	harness_write_file(path, sizeof(path), mnt,
	    "system.slice/pb.service/cgroup.subtree_control", "%s", "");
	ck_assert_msg(cgroup_root_open(mountinfo, self, &root, &cause) == 0,
	    "%s", cause);
	snprintf(want, sizeof(want), "%s/system.slice/pb.service", mnt);
	ck_assert_str_eq(cgroup_root_path(root), want);

	ck_assert_msg(cgroup_root_enable(root, mem_pids, &cause) == 0, "%s",
	    cause);
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", want);
	text = harness_read_file(path);
	ck_assert_str_eq(text, "+memory +pids");
	free(text);

	/* A pool's files: its limits, "max" for the others. */
	for (const char *const *f = (const char *const[]){ "memory.max",
	    "pids.max", "cgroup.procs", NULL }; *f != NULL; f++)
		harness_write_file(path, sizeof(path), want,
		    *f[0] == 'c' ? "pool-thumbs/cgroup.procs" : *f[0] == 'm' ?
		    "pool-thumbs/memory.max" : "pool-thumbs/pids.max", "%s",
		    "");
	memset(&l, 0, sizeof(l));
	set_limit(&l, LIMITS_MEMORY_MAX, "256MiB");
	ck_assert_msg(cgroup_pool_apply(root, "thumbs", &l, &cause) == 0, "%s",
	    cause);
	snprintf(path, sizeof(path), "%s/pool-thumbs/memory.max", want);
	text = harness_read_file(path);
	ck_assert_str_eq(text, "268435456");
	free(text);
	snprintf(path, sizeof(path), "%s/pool-thumbs/pids.max", want);
	text = harness_read_file(path);
	ck_assert_str_eq(text, "max");
	free(text);
	/* cpu was not enabled: no cpu.max was written. */
	snprintf(path, sizeof(path), "%s/pool-thumbs/cpu.max", want);
	ck_assert_int_eq(access(path, F_OK), -1);

	/* cpu_max 50%: 50 ms of every 100 ms. */
	ck_assert_int_eq(cgroup_root_enable(root, 1u << LIMITS_CPU_MAX,
	    &cause), 0);
	harness_write_file(path, sizeof(path), want, "pool-thumbs/cpu.max",
	    "%s", "");
	set_limit(&l, LIMITS_CPU_MAX, "50%");
	ck_assert_int_eq(cgroup_pool_apply(root, "thumbs", &l, &cause), 0);
	text = harness_read_file(path);
	ck_assert_str_eq(text, "50000 100000");
	free(text);

	ck_assert_int_eq(cgroup_pool_open_procs(root, "thumbs", &fd, &cause),
	    0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	close(fd);
	ck_assert_uint_eq(cgroup_pool_oom_kills(root, "thumbs"), 0);
	harness_write_file(path, sizeof(path), want,
	    "pool-thumbs/memory.events", "low 0\nhigh 0\nmax 9\noom 3\n"
	    "oom_kill 2\noom_group_kill 0\n");
	ck_assert_uint_eq(cgroup_pool_oom_kills(root, "thumbs"), 2);
	ck_assert_int_eq(cgroup_pool_remove(root, "thumbs"), -ENOTEMPTY);
	ck_assert_int_eq(cgroup_pool_remove(root, "gone"), 0);

	/* A controller that is not offered. */
	harness_write_file(path, sizeof(path), want, "cgroup.controllers",
	    "cpu memory\n");
	cgroup_root_free(root);
	root = NULL;
	ck_assert_int_eq(cgroup_root_open(mountinfo, self, &root, &cause), 0);
	ck_assert_int_eq(cgroup_root_enable(root, mem_pids, &cause), -ENOTSUP);
	snprintf(want, sizeof(want), "the cgroup v2 hierarchy at %s offers no "
	    "pids controller to %s/system.slice/pb.service (it offers: cpu "
	    "memory)", mnt, mnt);
	ck_assert_str_eq(cause, want);
	free(cause);
	cgroup_root_free(root);
	root = NULL;

	/* A mount that shows a subtree: paths are relative to its root. */
	harness_write_file(mountinfo, sizeof(mountinfo), fx.dir, "mountinfo",
	    "35 24 0:30 /system.slice %s/cg\\040root rw - cgroup2 cgroup2 "
	    "rw\n", fx.dir);
	ck_assert_int_eq(cgroup_root_open(mountinfo, self, &root, &cause), 0);
	snprintf(want, sizeof(want), "%s/pb.service", mnt);
	ck_assert_str_eq(cgroup_root_path(root), want);
	cgroup_root_free(root);
	root = NULL;

	/* No cgroup2 mount; no "0::" line. */
	harness_write_file(mountinfo, sizeof(mountinfo), fx.dir, "mountinfo",
	    "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
	ck_assert_int_eq(cgroup_root_open(mountinfo, self, &root, &cause),
	    -ENOENT);
	snprintf(want, sizeof(want), "no cgroup v2 hierarchy is mounted (no "
	    "cgroup2 file system in %s)", mountinfo);
	ck_assert_str_eq(cause, want);
	free(cause);
	harness_write_file(mountinfo, sizeof(mountinfo), fx.dir, "mountinfo",
	    "35 24 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
	harness_write_file(self, sizeof(self), fx.dir, "self",
	    "4:memory:/x\n");
	ck_assert_int_eq(cgroup_root_open(mountinfo, self, &root, &cause),
	    -ENOENT);
	snprintf(want, sizeof(want), "patchbayd is in no cgroup v2 (no '0::' "
	    "line in %s)", self);
	ck_assert_str_eq(cause, want);
	free(cause);
	ck_assert_ptr_null(root);
	cgroup_root_free(NULL);
}
END_TEST

START_TEST(supervisor_spawn_restart_policy)
{
	const char	*crash[] = { "sh", "-c", "exit 7", NULL };
	const char	*sleeper[] = { "sleep", "30", NULL };

	fx_start(NULL);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "c", crash,
	    RESTART_ON_FAILURE, 1, NULL, NULL), 0);
	/* Default backoff is 100ms: one restart, then fatal. */
	WAIT_FOR(state_of("c") == SUPERVISOR_FATAL, 5000);
	ck_assert_uint_eq(supervisor_proc_restarts(supervisor_find(fx.sv,
	    "c")), 1);
	/* A finished ad-hoc process may be replaced. */
	ck_assert_int_eq(supervisor_spawn(fx.sv, "c", sleeper, RESTART_NEVER,
	    0, NULL, NULL), 0);
	ck_assert_int_eq(state_of("c"), SUPERVISOR_RUNNING);
	ck_assert_uint_eq(supervisor_proc_restarts(supervisor_find(fx.sv,
	    "c")), 0);
	ck_assert_ptr_null(supervisor_proc_pool(supervisor_find(fx.sv, "c")));
}
END_TEST

START_TEST(supervisor_admin_errors)
{
	struct config	*c = new_config();
	char		*cause = NULL;

	add_pool(c, "w", "sleep 30");
	fx_start(c);

	ck_assert_int_eq(supervisor_stop(fx.sv, "nope", 0, false, &cause),
	    -ENOENT);
	ck_assert_str_eq(cause, "unknown id 'nope'");
	free(cause);
	ck_assert_int_eq(supervisor_restart(fx.sv, "w/2", &cause), -ENOENT);
	ck_assert_str_eq(cause, "unknown id 'w/2'");
	free(cause);
	ck_assert_int_eq(supervisor_pause(fx.sv, "", &cause), -ENOENT);
	free(cause);
	ck_assert_int_eq(supervisor_resume(fx.sv, "w/1", &cause), -EBUSY);
	ck_assert_str_eq(cause, "'w/1' is starting, not paused");
	free(cause);
	ck_assert_int_eq(supervisor_scale(fx.sv, "nope", 2, &cause), -ENOENT);
	ck_assert_str_eq(cause, "unknown pool 'nope'");
	free(cause);
	ck_assert_int_eq(supervisor_scale(fx.sv, "w", 5000, &cause), -EINVAL);
	free(cause);

	supervisor_shutdown(fx.sv);
	ck_assert_int_eq(supervisor_restart(fx.sv, "w", &cause), -ESHUTDOWN);
	ck_assert_str_eq(cause, "patchbayd is shutting down");
	free(cause);
	WAIT_FOR(fx.all_stopped, 5000);
}
END_TEST

START_TEST(supervisor_scale_pool)
{
	struct config	*c = new_config();
	pid_t		 first;

	add_pool(c, "w", "sleep 30");
	fx_start(c);
	first = pid_of("w/1");
	ck_assert_int_gt(first, 0);
	ck_assert_int_eq(supervisor_scale(fx.sv, "w", 3, NULL), 0);
	ck_assert_int_eq(state_of("w/2"), SUPERVISOR_STARTING);
	ck_assert_int_eq(state_of("w/3"), SUPERVISOR_STARTING);
	ck_assert_int_eq(pid_of("w/1"), first);

	ck_assert_int_eq(supervisor_scale(fx.sv, "w", 1, NULL), 0);
	ck_assert_int_eq(state_of("w/3"), SUPERVISOR_STOPPING);
	WAIT_FOR(state_of("w/2") == -1 && state_of("w/3") == -1, 3000);
	ck_assert_int_eq(pid_of("w/1"), first);

	/* Down to none and back. */
	ck_assert_int_eq(supervisor_scale(fx.sv, "w", 0, NULL), 0);
	ck_assert_int_eq(supervisor_scale(fx.sv, "w", 2, NULL), 0);
	WAIT_FOR(state_of("w/1") == SUPERVISOR_STARTING &&
	    state_of("w/2") == SUPERVISOR_STARTING && pid_of("w/1") != first,
	    3000);
}
END_TEST

START_TEST(supervisor_reload_diff)
{
	struct config		*c = new_config(), *c2;
	struct config_pool	*p;
	pid_t			 keep, change, gone, scaled;
	char			*cause = NULL;

	add_pool(c, "keep", "sleep 30");
	add_pool(c, "change", "sleep 30");
	add_pool(c, "gone", "sleep 30");
	add_pool(c, "scaled", "sleep 30");
	fx_start(c);
	keep = pid_of("keep/1");
	change = pid_of("change/1");
	gone = pid_of("gone/1");
	scaled = pid_of("scaled/1");
	ck_assert(keep > 0 && change > 0 && gone > 0 && scaled > 0);
	supervisor_proc_registered(fx.sv, supervisor_find(fx.sv, "keep/1"));

	c2 = new_config();
	add_pool(c2, "new", "sleep 30");
	add_pool(c2, "keep", "sleep 30");
	p = add_pool(c2, "change", "sleep 31");
	p = add_pool(c2, "scaled", "sleep 30");
	p->instances = 2;
	ck_assert_int_eq(supervisor_reload(fx.sv, c2, &cause), 0);
	ck_assert_ptr_eq(supervisor_config(fx.sv), c2);

	ck_assert_int_eq(state_of("new/1"), SUPERVISOR_STARTING);
	ck_assert_int_eq(pid_of("keep/1"), keep);
	ck_assert_int_eq(state_of("keep/1"), SUPERVISOR_RUNNING);
	ck_assert_int_eq(pid_of("scaled/1"), scaled);
	ck_assert_int_eq(state_of("scaled/2"), SUPERVISOR_STARTING);
	ck_assert_int_eq(state_of("gone/1"), SUPERVISOR_STOPPING);
	ck_assert_int_eq(state_of("change/1"), SUPERVISOR_STOPPING);
	/* Verbs on a pool in transition are refused, not half-done. */
	ck_assert_int_eq(supervisor_scale(fx.sv, "gone", 3, &cause), -EBUSY);
	ck_assert_str_eq(cause, "pool 'gone' is being removed");
	free(cause);

	WAIT_FOR(state_of("gone/1") == -1, 3000);
	WAIT_FOR(state_of("change/1") == SUPERVISOR_STARTING &&
	    pid_of("change/1") != change, 3000);
	ck_assert(proc_gone(gone));
	ck_assert(proc_gone(change));
	ck_assert_str_eq(TAILQ_FIRST(&supervisor_config(fx.sv)->pools)->name,
	    "new");

	/* A pool that clashes with a spawned process is refused whole. */
	{
		const char	*argv[] = { "sleep", "30", NULL };
		struct config	*c3 = new_config();

		ck_assert_int_eq(supervisor_spawn(fx.sv, "adhoc", argv,
		    RESTART_NEVER, 0, NULL, NULL), 0);
		add_pool(c3, "adhoc", "sleep 30");
		ck_assert_int_eq(supervisor_reload(fx.sv, c3, &cause),
		    -EEXIST);
		ck_assert_msg(strstr(cause, "pool 'adhoc'") != NULL, "%s",
		    cause);
		free(cause);
		config_free(c3);
		ck_assert_int_eq(pid_of("keep/1"), keep);
		ck_assert_ptr_eq(supervisor_config(fx.sv), c2);
	}
}
END_TEST

/* Writes text to fx.dir/sv.conf; its path in buf. */
static void
write_file(char *buf, size_t len, const char *text)
{
	FILE	*f;

	snprintf(buf, len, "%s/sv.conf", fx.dir);
	ck_assert_ptr_nonnull(f = fopen(buf, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(supervisor_reload_from_file)
{
	struct config	*c = NULL;
	char		 path[300], *cause = NULL;
	pid_t		 a;

	write_file(path, sizeof(path), "[pool:a]\ncommand = sleep 30\n");
	ck_assert_int_eq(config_load(path, &c, &cause), 0);
	fx_start(c);
	a = pid_of("a/1");
	ck_assert_int_gt(a, 0);

	write_file(path, sizeof(path), "[broker]\nlog_level = debug\n"
	    "[pool:a]\ncommand = sleep 30\n[pool:b]\ncommand = sleep 30\n");
	ck_assert_int_eq(supervisor_reload_file(fx.sv, &cause), 0);
	ck_assert_int_eq(state_of("b/1"), SUPERVISOR_STARTING);
	ck_assert_int_eq(pid_of("a/1"), a);
	ck_assert_int_eq(log_get_level(), LOG_LEVEL_DEBUG);
	log_set_level(LOG_LEVEL_INFO);

	/* A broken file changes nothing. */
	write_file(path, sizeof(path), "[pool:a]\ncommand = sleep 30\n"
	    "instances = 0\n");
	ck_assert_int_eq(supervisor_reload_file(fx.sv, &cause), -EINVAL);
	ck_assert_msg(strstr(cause, "sv.conf:3: key 'instances'") != NULL,
	    "%s", cause);
	free(cause);
	ck_assert_int_eq(state_of("b/1"), SUPERVISOR_STARTING);
	ck_assert_int_eq(pid_of("a/1"), a);
}
END_TEST

START_TEST(supervisor_reload_without_file)
{
	char	*cause = NULL;

	fx_start(NULL);
	ck_assert_int_eq(supervisor_reload_file(fx.sv, &cause), -ENOENT);
	ck_assert_msg(strstr(cause, "started without -c") != NULL, "%s",
	    cause);
	free(cause);
}
END_TEST

START_TEST(supervisor_shutdown_order)
{
	struct config	*c = new_config();
	const char	*argv[] = { "sleep", "30", NULL };
	int		 i;

	add_pool(c, "a", "sleep 30");
	add_pool(c, "b", "sleep 30");
	fx_start(c);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "c", argv, RESTART_ALWAYS,
	    -1, NULL, NULL), 0);
	ck_assert_uint_eq(supervisor_nalive(fx.sv), 3);
	fx.nlog = 0;
	supervisor_shutdown(fx.sv);
	WAIT_FOR(fx.all_stopped, 10000);
	ck_assert_uint_eq(supervisor_nalive(fx.sv), 0);

	/* Ad-hoc first, then the pools, last one first, one after another. */
	i = find_transition("c", SUPERVISOR_STOPPING, 0);
	ck_assert_int_eq(i, 0);
	i = find_transition("c", SUPERVISOR_STOPPED, (size_t)i);
	ck_assert_int_eq(i, 1);
	i = find_transition("b/1", SUPERVISOR_STOPPING, (size_t)i);
	ck_assert_int_eq(i, 2);
	i = find_transition("b/1", SUPERVISOR_STOPPED, (size_t)i);
	ck_assert_int_eq(i, 3);
	i = find_transition("a/1", SUPERVISOR_STOPPING, (size_t)i);
	ck_assert_int_eq(i, 4);
	i = find_transition("a/1", SUPERVISOR_STOPPED, (size_t)i);
	ck_assert_int_eq(i, 5);
	ck_assert_uint_eq(fx.nlog, 6);
}
END_TEST

START_TEST(supervisor_shutdown_nothing)
{
	fx_start(NULL);
	supervisor_shutdown(fx.sv);
	/* Called from the loop, not from inside supervisor_shutdown(). */
	ck_assert(!fx.all_stopped);
	WAIT_FOR(fx.all_stopped, 1000);
}
END_TEST

/* Finds key in a msgpack map; NULL when absent. */
static const msgpack_object *
map_get(const msgpack_object *map, const char *key)
{
	ck_assert_int_eq(map->type, MSGPACK_OBJECT_MAP);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv	*kv = &map->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == strlen(key) &&
		    memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
			return &kv->val;
	}
	return NULL;
}

/* True when o is the string s. */
static bool
obj_is_str(const msgpack_object *o, const char *s)
{
	return o != NULL && o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size == strlen(s) &&
	    memcmp(o->via.str.ptr, s, strlen(s)) == 0;
}

START_TEST(supervisor_ps_listing)
{
	struct config		*c = new_config();
	const char		*argv[] = { "sleep", "30", NULL };
	msgpack_sbuffer		 sbuf;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	const msgpack_object	*arr, *m, *v;
	size_t			 off = 0;

	add_pool(c, "w", "sleep 30");
	fx_start(c);
	ck_assert_int_eq(supervisor_spawn(fx.sv, "solo", argv, RESTART_NEVER,
	    0, NULL, NULL), 0);
	supervisor_proc_registered(fx.sv, supervisor_find(fx.sv, "w/1"));

	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	ck_assert_int_eq(admin_pack_ps(fx.sv, &pk), 0);
	msgpack_unpacked_init(&up);
	ck_assert_int_eq(msgpack_unpack_next(&up, sbuf.data, sbuf.size, &off),
	    MSGPACK_UNPACK_SUCCESS);
	ck_assert_uint_eq(off, sbuf.size);
	arr = &up.data;
	ck_assert_int_eq(arr->type, MSGPACK_OBJECT_ARRAY);
	ck_assert_uint_eq(arr->via.array.size, 2);

	m = &arr->via.array.ptr[0];
	ck_assert(obj_is_str(map_get(m, "id"), "w/1"));
	ck_assert(obj_is_str(map_get(m, "pool"), "w"));
	v = map_get(m, "instance");
	ck_assert(v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    v->via.u64 == 1);
	v = map_get(m, "pid");
	ck_assert(v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    v->via.u64 == (uint64_t)pid_of("w/1"));
	ck_assert(obj_is_str(map_get(m, "state"), "running"));
	/* Registered within start_timeout, answering PINGs: ok. */
	ck_assert(obj_is_str(map_get(m, "health"), "ok"));
	ck_assert(map_get(m, "restarts") != NULL);
	ck_assert(map_get(m, "uptime_ms") != NULL);
	ck_assert(obj_is_str(map_get(m, "command"), "sleep 30"));
	v = map_get(m, "last_exit");
	ck_assert(v != NULL && v->type == MSGPACK_OBJECT_NIL);

	m = &arr->via.array.ptr[1];
	ck_assert(obj_is_str(map_get(m, "id"), "solo"));
	v = map_get(m, "pool");
	ck_assert(v != NULL && v->type == MSGPACK_OBJECT_NIL);
	ck_assert(obj_is_str(map_get(m, "state"), "running"));
	/* A command that is no worker: nothing checks it. */
	ck_assert(obj_is_str(map_get(m, "health"), "none"));
	ck_assert(obj_is_str(map_get(m, "command"), "sleep 30"));
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sbuf);
}
END_TEST

/* Health. */

/* Runs the loop for ms: for what must not happen meanwhile. */
static void
fx_run_for(int ms)
{
	unsigned long long	until = harness_now_ms() + (unsigned)ms;

	WAIT_FOR(harness_now_ms() >= until, ms + 1000);
}

/*
 * A pool's process that does not register within start_timeout goes
 * unhealthy -> stopping -> backoff -> starting, even when it exits 0 on
 * its stop signal (as a draining worker does): unhealthy is a failure.
 */
START_TEST(supervisor_start_timeout_restarts)
{
	struct config		*c = new_config();
	struct config_pool	*p = add_pool(c, "w",
				    "sh -c 'trap \"exit 0\" TERM; sleep 30 & "
				    "wait'");
	struct supervisor_proc	*proc;
	pid_t			 pid;
	int			 u, st, b;

	p->start_timeout_ms = 200;
	fx_start(c);
	proc = supervisor_find(fx.sv, "w/1");
	pid = pid_of("w/1");
	ck_assert_int_eq(supervisor_proc_health(proc), HEALTH_PENDING);
	WAIT_FOR(supervisor_proc_restarts(proc) == 1, 5000);
	u = find_transition("w/1", SUPERVISOR_UNHEALTHY, 0);
	ck_assert_int_ge(u, 0);
	ck_assert_int_eq(fx.log[u].old, SUPERVISOR_STARTING);
	st = find_transition("w/1", SUPERVISOR_STOPPING, (size_t)u);
	ck_assert_int_eq(st, u + 1);
	b = find_transition("w/1", SUPERVISOR_BACKOFF, (size_t)st);
	ck_assert_int_ge(b, 0);
	ck_assert_int_ge(find_transition("w/1", SUPERVISOR_STARTING,
	    (size_t)b), 0);
	ck_assert_int_eq(supervisor_proc_last_status(proc), 0);
	ck_assert_int_ne(pid_of("w/1"), pid);
	ck_assert_str_eq(supervisor_proc_reason(proc),
	    "did not register within 200ms");
	ck_assert_int_eq(supervisor_proc_health(proc), HEALTH_UNHEALTHY);
	ck_assert_uint_eq(supervisor_proc_times_unhealthy(proc), 1);

	/* The new child registers: healthy, the reason is gone from ps. */
	WAIT_FOR(state_of("w/1") == SUPERVISOR_STARTING, 5000);
	supervisor_proc_registered(fx.sv, proc);
	ck_assert_int_eq(supervisor_proc_health(proc), HEALTH_OK);
	ck_assert_ptr_null(supervisor_proc_reason(proc));
}
END_TEST

/* restart = never: an unhealthy process is stopped and stays down. */
START_TEST(supervisor_unhealthy_policy_never)
{
	struct config		*c = new_config();
	struct config_pool	*p = add_pool(c, "w", "sleep 30");

	p->start_timeout_ms = 100;
	p->restart = RESTART_NEVER;
	fx_start(c);
	WAIT_FOR(state_of("w/1") == SUPERVISOR_EXITED, 5000);
	ck_assert_uint_eq(supervisor_proc_restarts(supervisor_find(fx.sv,
	    "w/1")), 0);
	ck_assert_int_eq(pid_of("w/1"), 0);
}
END_TEST

/* A paused process is not held to start_timeout; resumed, it is again. */
START_TEST(supervisor_start_timeout_paused)
{
	struct config		*c = new_config();
	struct config_pool	*p = add_pool(c, "w", "sleep 30");

	p->start_timeout_ms = 300;
	fx_start(c);
	ck_assert_int_eq(supervisor_pause(fx.sv, "w/1", NULL), 0);
	fx_run_for(600);
	ck_assert_int_eq(state_of("w/1"), SUPERVISOR_PAUSED);
	ck_assert_int_lt(find_transition("w/1", SUPERVISOR_UNHEALTHY, 0), 0);
	ck_assert_int_eq(supervisor_resume(fx.sv, "w/1", NULL), 0);
	WAIT_FOR(find_transition("w/1", SUPERVISOR_UNHEALTHY, 0) >= 0, 5000);
}
END_TEST

/*
 * health_check runs while the process runs; retries failures in a row
 * make it unhealthy, and what the check said is kept.
 */
START_TEST(supervisor_health_check_fails)
{
	struct config			*c = new_config();
	struct config_pool		*p = add_pool(c, "w", "sleep 30");
	struct supervisor_proc		*proc;
	struct supervisor_health_info	 hi;
	char				 err[UTIL_ERRLEN], text[64];

	p->health_check = strdup("sh -c 'echo \"$PATCHBAY_PROCESS\" down; "
	    "exit 2'");
	ck_assert_int_eq(strv_split(p->health_check, &p->health_argv, err),
	    0);
	p->health_interval_ms = 50;
	p->health_retries = 3;
	fx_start(c);
	proc = supervisor_find(fx.sv, "w/1");
	supervisor_proc_registered(fx.sv, proc);
	ck_assert_int_eq(supervisor_proc_health(proc), HEALTH_PENDING);
	WAIT_FOR(supervisor_proc_health(proc) == HEALTH_FAILING, 5000);
	supervisor_proc_health_text(proc, text, sizeof(text));
	ck_assert_str_eq(text, "failing 1 of 3");
	WAIT_FOR(find_transition("w/1", SUPERVISOR_UNHEALTHY, 0) >= 0, 5000);
	ck_assert_int_eq(fx.log[find_transition("w/1", SUPERVISOR_UNHEALTHY,
	    0)].old, SUPERVISOR_RUNNING);
	supervisor_proc_health_info(proc, &hi);
	ck_assert_int_eq(hi.health, HEALTH_UNHEALTHY);
	ck_assert_uint_eq(hi.failures, 3);
	ck_assert_uint_eq(hi.retries, 3);
	ck_assert_str_eq(hi.result, "exit 2");
	ck_assert_str_eq(hi.output, "w/1 down");
	ck_assert_str_eq(hi.reason, "health check failed 3 times in a row: "
	    "exit 2: w/1 down");
	ck_assert_uint_gt(hi.checked_at, 0);
	WAIT_FOR(supervisor_proc_restarts(proc) == 1, 5000);
}
END_TEST

/* The suite. */
static Suite *
supervisor_suite(void)
{
	Suite	*s = suite_create("supervisor");
	TCase	*tc;

	tc = tcase_create("arithmetic");
	tcase_add_test(tc, supervisor_backoff_growth_and_cap);
	tcase_add_test(tc, supervisor_backoff_jitter_bounds);
	tcase_add_test(tc, supervisor_backoff_reset_after_healthy);
	tcase_add_test(tc, supervisor_intensity_limit);
	tcase_add_test(tc, supervisor_exit_policies);
	tcase_add_test(tc, supervisor_transitions);
	tcase_add_test(tc, supervisor_autoscale_decisions);
	suite_add_tcase(s, tc);

	tc = tcase_create("processes");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, supervisor_crash_loop_fatal);
	tcase_add_test(tc, supervisor_exit_not_restarted);
	tcase_add_test(tc, supervisor_kill9_replaced);
	tcase_add_test(tc, supervisor_stop_timeout_kills);
	tcase_add_test(tc, supervisor_stop_force_and_timeout_arg);
	tcase_add_test(tc, supervisor_stop_kills_group);
	tcase_add_test(tc, supervisor_exit_kills_leftovers);
	tcase_add_test(tc, supervisor_pause_resume);
	tcase_add_test(tc, supervisor_registered_detached);
	tcase_add_test(tc, supervisor_child_environment);
	tcase_add_test(tc, supervisor_output_logged);
	tcase_add_test(tc, supervisor_user);
	tcase_add_test(tc, supervisor_exec_failure);
	tcase_add_test(tc, supervisor_spawn_restart_policy);
	tcase_add_test(tc, supervisor_limits_reach_the_child);
	tcase_add_test(tc, supervisor_exit_names_the_limit);
	tcase_add_test(tc, supervisor_limit_above_own_hard_limit);
	tcase_add_test(tc, supervisor_cgroup_files);
	suite_add_tcase(s, tc);

	tc = tcase_create("health");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, supervisor_start_timeout_restarts);
	tcase_add_test(tc, supervisor_unhealthy_policy_never);
	tcase_add_test(tc, supervisor_start_timeout_paused);
	tcase_add_test(tc, supervisor_health_check_fails);
	suite_add_tcase(s, tc);

	tc = tcase_create("admin");
	tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, supervisor_admin_errors);
	tcase_add_test(tc, supervisor_scale_pool);
	tcase_add_test(tc, supervisor_reload_diff);
	tcase_add_test(tc, supervisor_reload_from_file);
	tcase_add_test(tc, supervisor_reload_without_file);
	tcase_add_test(tc, supervisor_shutdown_order);
	tcase_add_test(tc, supervisor_shutdown_nothing);
	tcase_add_test(tc, supervisor_ps_listing);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite, or reports on itself when run as a child. */
int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--child-report") == 0)
		return child_report(argv[2]);
	return harness_main(supervisor_suite());
}

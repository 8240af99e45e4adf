/*
 * test-alloc.c: libpatchbay when memory runs out, against the real
 * patchbayd.
 *
 * This executable is linked with -Wl,--wrap= for malloc, calloc, realloc,
 * strdup, strndup, free and msgpack_unpack_next, so every call that the
 * objects linked into it make (libpatchbay's, proto's, but also Check's and
 * these tests') goes through the wrappers below; __real_malloc is whatever
 * malloc the process has, AddressSanitizer's included. Only allocations
 * made inside a library call count: the tests make each call through LIB(),
 * and the callbacks the library makes into the tests step out again
 * (CALLBACK_BEGIN/END), so that Check's own allocations never fail. Armed,
 * the wrappers number those allocations and make the Nth one fail: NULL
 * with errno ENOMEM, or MSGPACK_UNPACK_NOMEM_ERROR for
 * msgpack_unpack_next(), which allocates inside libmsgpackc where no
 * wrapper reaches. They also keep the library's blocks that are still
 * allocated, so a leak shows without a sanitizer.
 *
 * Two ways of walking the failure points:
 *  - a whole sequence (client connect, submit, run, dispatch, sync; worker
 *    new, add functions, capacity, connect, a job with meta, progress and
 *    a large answer; free) is replayed with N = 1, 2, 3... until an N that
 *    it never reaches. Each call must succeed or return -ENOMEM; after
 *    -ENOMEM the call is made again and must succeed (the object stayed
 *    usable), or, in the give-up variant, everything is freed at once
 *    (the objects failed cleanly);
 *  - one call at a time (600 submits, so that uthash grows its table; 40
 *    functions, so that REGISTER outgrows its buffer; the dispatches that
 *    collect 600 results): its 1st, 2nd... allocation fails in turn until
 *    it runs clean.
 * A "rev" worker runs in a forked child, unarmed, for pb_client_run().
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <msgpack.h>

#include "clients/patchbay.h"
#include "tests/harness.h"

#define WAIT_MS		10000
#define MAX_PASSES	5000	/* the sequence has far fewer allocations */
#define MIN_POINTS	20	/* it has more (36 when this was written) */
#define BIG_LEN		20000	/* outgrows every buffer's first size */
#define MANY_JOBS	600	/* enough for uthash to grow its buckets */
#define MANY_FNS	40	/* names of 255 bytes: REGISTER > 8 KiB */

/* ---- the failing allocator ---------------------------------------------- */

void	*__real_malloc(size_t size);
void	*__real_calloc(size_t n, size_t size);
void	*__real_realloc(void *p, size_t size);
char	*__real_strdup(const char *s);
char	*__real_strndup(const char *s, size_t n);
void	 __real_free(void *p);
msgpack_unpack_return __real_msgpack_unpack_next(msgpack_unpacked *result,
	    const char *data, size_t len, size_t *off);

void	*__wrap_malloc(size_t size);
void	*__wrap_calloc(size_t n, size_t size);
void	*__wrap_realloc(void *p, size_t size);
char	*__wrap_strdup(const char *s);
char	*__wrap_strndup(const char *s, size_t n);
void	 __wrap_free(void *p);
msgpack_unpack_return __wrap_msgpack_unpack_next(msgpack_unpacked *result,
	    const char *data, size_t len, size_t *off);

#define ALLOC_MAX_LIVE	8192	/* library blocks tracked at once */

/* The allocator's state: one process, one thread. */
static struct {
	bool		 in_lib;	/* inside a library call */
	bool		 armed;		/* numbering allocations */
	unsigned long	 fail_at;	/* the one that fails; 0: none */
	unsigned long	 count;		/* numbered since armed */
	unsigned long	 failed;	/* failures injected since armed */
	void		*live[ALLOC_MAX_LIVE];	/* the library's blocks */
	size_t		 nlive;
	bool		 overflow;	/* live[] was too small */
} alloc;

/* The value of the last LIB() call. */
static int	lib_ret;

/* Makes a library call, numbering its allocations. */
#define LIB(call)	(alloc.in_lib = true, lib_ret = (call),		\
			    alloc.in_lib = false, lib_ret)
/* Brackets a callback: the library called back into the test. */
#define CALLBACK_BEGIN()	(alloc.in_lib = false)
#define CALLBACK_END()		(alloc.in_lib = true)

/* Remembers a block the library allocated. */
static void
alloc_keep(void *p)
{
	if (alloc.nlive == ALLOC_MAX_LIVE)
		alloc.overflow = true;
	else
		alloc.live[alloc.nlive++] = p;
}

/* Forgets a block when it is one of the library's; true if it was. */
static bool
alloc_forget(void *p)
{
	size_t	i;

	for (i = alloc.nlive; i-- > 0; ) {
		if (alloc.live[i] == p) {
			alloc.live[i] = alloc.live[--alloc.nlive];
			return true;
		}
	}
	return false;
}

/* Starts numbering allocations; the nth fails (0: none does). */
static void
alloc_arm(unsigned long n)
{
	alloc.armed = true;
	alloc.fail_at = n;
	alloc.count = 0;
	alloc.failed = 0;
}

/* Stops numbering: every allocation succeeds again. */
static void
alloc_disarm(void)
{
	alloc.armed = false;
	alloc.fail_at = 0;
}

/* Numbers one allocation; true when it is the one that must fail. */
static bool
alloc_fails(void)
{
	if (!alloc.armed || !alloc.in_lib)
		return false;
	if (++alloc.count != alloc.fail_at)
		return false;
	alloc.failed++;
	errno = ENOMEM;
	return true;
}

/* malloc(3), failing when told to. */
void *
__wrap_malloc(size_t size)
{
	void	*p;

	if (alloc_fails())
		return NULL;
	if ((p = __real_malloc(size)) != NULL && alloc.in_lib)
		alloc_keep(p);
	return p;
}

/* calloc(3), failing when told to. */
void *
__wrap_calloc(size_t n, size_t size)
{
	void	*p;

	if (alloc_fails())
		return NULL;
	if ((p = __real_calloc(n, size)) != NULL && alloc.in_lib)
		alloc_keep(p);
	return p;
}

/* realloc(3), failing when told to (the old block is then untouched). */
void *
__wrap_realloc(void *p, size_t size)
{
	void	*np;

	if (alloc_fails())
		return NULL;
	np = __real_realloc(p, size);
	if (np == NULL && size > 0)
		return NULL;
	if (p != NULL ? alloc_forget(p) : alloc.in_lib) {
		if (np != NULL)
			alloc_keep(np);
	}
	return np;
}

/* strdup(3), failing when told to. */
char *
__wrap_strdup(const char *s)
{
	char	*p;

	if (alloc_fails())
		return NULL;
	if ((p = __real_strdup(s)) != NULL && alloc.in_lib)
		alloc_keep(p);
	return p;
}

/* strndup(3), failing when told to. */
char *
__wrap_strndup(const char *s, size_t n)
{
	char	*p;

	if (alloc_fails())
		return NULL;
	if ((p = __real_strndup(s, n)) != NULL && alloc.in_lib)
		alloc_keep(p);
	return p;
}

/* free(3), forgetting the block. */
void
__wrap_free(void *p)
{
	if (p != NULL)
		(void)alloc_forget(p);
	__real_free(p);
}

/* msgpack_unpack_next(), whose zone allocation fails when told to. */
msgpack_unpack_return
__wrap_msgpack_unpack_next(msgpack_unpacked *result, const char *data,
    size_t len, size_t *off)
{
	if (alloc_fails())
		return MSGPACK_UNPACK_NOMEM_ERROR;
	return __real_msgpack_unpack_next(result, data, len, off);
}

/* ---- a broker and a forked "rev" worker ---------------------------------- */

/* What every test starts with. */
struct fixture {
	struct harness_broker	b;
	pid_t			rev;	/* forked worker serving "rev" */
};

/* "rev": answers the payload reversed (in the forked child). */
static void
h_rev(struct pb_worker *w, struct pb_job *job, void *ud)
{
	const uint8_t	*p;
	uint8_t		 buf[256];
	size_t		 len, i;

	(void)w; (void)ud;
	p = pb_job_payload(job, &len);
	if (len > sizeof(buf)) {
		(void)pb_job_complete(job, PB_ERROR, NULL, 0, "too long");
		return;
	}
	for (i = 0; i < len; i++)
		buf[i] = p[len - 1 - i];
	(void)pb_job_complete(job, PB_OK, buf, len, NULL);
}

/*
 * Starts a broker and a child process serving "rev" on it, unarmed; returns
 * once the child has registered.
 */
static void
fixture_start(struct fixture *f)
{
	struct pb_worker	*w;
	pid_t			 parent = getpid();
	char			 ok;
	int			 pfd[2];

	alloc_disarm();
	harness_broker_start(&f->b, NULL, false);
	ck_assert_int_eq(pipe(pfd), 0);
	f->rev = fork();
	ck_assert_int_ne(f->rev, -1);
	if (f->rev == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close(pfd[0]);
		if (pb_worker_new(f->b.unix_ep, NULL, &w) != 0 ||
		    pb_worker_add_function(w, "rev", h_rev, NULL) != 0 ||
		    pb_worker_set_capacity(w, 4) != 0 ||
		    pb_worker_connect(w) != 0 ||
		    write(pfd[1], "k", 1) != 1)
			_exit(1);
		for (;;)
			if (pb_worker_dispatch(w, -1) < 0)
				_exit(1);
	}
	close(pfd[1]);
	ck_assert_int_eq(read(pfd[0], &ok, 1), 1);
	close(pfd[0]);
}

/* Kills the child and the broker. */
static void
fixture_stop(struct fixture *f)
{
	alloc_disarm();
	kill(f->rev, SIGKILL);
	while (waitpid(f->rev, NULL, 0) == -1 && errno == EINTR)
		;
	harness_broker_stop(&f->b);
}

/* ---- one pass over the sequence ------------------------------------------ */

/* What one pass saw. */
struct pass {
	unsigned long		 n;		/* the allocation made to fail */
	bool			 give_up;	/* stop at the first -ENOMEM */
	bool			 stopped;	/* it did */
	int			 nomem;		/* -ENOMEM returns seen */
	int			 nresults;	/* results to callbacks */
	struct pb_result	*results[2];
	int			 nprogress;
	struct pb_job		*held;		/* a job given up on */
	uint8_t			 big[BIG_LEN];	/* the "upper" payload */
};

/*
 * Checks one call's return: 0, or -ENOMEM after a failure was injected.
 * Returns true for -ENOMEM.
 */
static bool
pass_nomem(struct pass *ps, const char *what, int r)
{
	if (r >= 0)
		return false;
	ck_assert_msg(r == -ENOMEM, "N=%lu: %s returned %d (%s), not 0 or "
	    "-ENOMEM", ps->n, what, r, strerror(-r));
	ck_assert_msg(alloc.failed > 0, "N=%lu: %s returned -ENOMEM, but no "
	    "allocation had failed", ps->n, what);
	ps->nomem++;
	return true;
}

/*
 * Makes a call; on -ENOMEM either gives the pass up (to the cleanup label
 * out) or makes it again, when it must succeed: only one allocation fails
 * in a pass.
 */
#define PASS_CALL(ps, what, call) do {					\
	if (pass_nomem((ps), (what), LIB(call))) {			\
		if ((ps)->give_up) {					\
			(ps)->stopped = true;				\
			goto out;					\
		}							\
		ck_assert_msg(!pass_nomem((ps), (what), LIB(call)),	\
		    "N=%lu: %s failed again", (ps)->n, (what));		\
	}								\
} while (0)

/* Keeps a result delivered to a callback. */
static void
pass_on_result(struct pb_client *c, struct pb_result *r, void *ud)
{
	struct pass	*ps = ud;

	CALLBACK_BEGIN();
	(void)c;
	ck_assert_int_lt(ps->nresults, 2);
	ps->results[ps->nresults++] = r;
	CALLBACK_END();
}

/* Counts PROGRESS of the "upper" job. */
static void
pass_on_progress(struct pb_client *c, const uint8_t *id, const void *data,
    size_t len, void *ud)
{
	struct pass	*ps = ud;

	CALLBACK_BEGIN();
	(void)c; (void)id;
	ck_assert_uint_eq(len, 4);
	ck_assert_int_eq(memcmp(data, "half", 4), 0);
	ps->nprogress++;
	CALLBACK_END();
}

/*
 * "upper": streams one PROGRESS and answers the payload in upper case,
 * retrying what ran out of memory, or keeping the job for the cleanup when
 * the pass gives up.
 */
static void
h_upper(struct pb_worker *w, struct pb_job *job, void *ud)
{
	struct pass	*ps = ud;
	static uint8_t	 out[BIG_LEN];
	const uint8_t	*in;
	size_t		 len, i;
	int		 r;

	CALLBACK_BEGIN();
	(void)w;
	in = pb_job_payload(job, &len);
	ck_assert_uint_eq(len, BIG_LEN);
	/* Its meta came in the pb_job's one allocation. */
	ck_assert_str_eq(pb_job_meta(job, "tenant"), "t1");
	ck_assert_uint_eq(strlen(pb_job_meta(job, "traceparent")),
	    PB_TRACEPARENT_LEN);
	for (i = 0; i < len; i++)
		out[i] = (uint8_t)(in[i] - 'a' + 'A');
	r = LIB(pb_job_progress(job, "half", 4));
	if (pass_nomem(ps, "pb_job_progress", r)) {
		if (ps->give_up)
			goto give_up;
		ck_assert_int_eq(LIB(pb_job_progress(job, "half", 4)), 0);
	}
	r = LIB(pb_job_complete(job, PB_OK, out, len, NULL));
	if (pass_nomem(ps, "pb_job_complete", r)) {
		if (ps->give_up)
			goto give_up;
		/* -ENOMEM: nothing was sent and the job is still ours. */
		ck_assert_int_eq(LIB(pb_job_complete(job, PB_OK, out, len,
		    NULL)), 0);
	}
	CALLBACK_END();
	return;
give_up:
	ps->stopped = true;
	ps->held = job;
	CALLBACK_END();
}

/*
 * Dispatches c and w until the pass has want results or gave up; each
 * dispatch may return -ENOMEM (what it could not handle stays buffered).
 */
static void
pass_pump(struct pass *ps, struct pb_client *c, struct pb_worker *w, int want)
{
	unsigned long long	deadline = harness_now_ms() + WAIT_MS;
	struct pollfd		pfd[2];
	nfds_t			n;
	int			r;

	while (ps->nresults < want && !ps->stopped) {
		ck_assert_msg(harness_now_ms() < deadline, "N=%lu: only %d of "
		    "%d results", ps->n, ps->nresults, want);
		n = 0;
		if (pb_client_fd(c) >= 0) {
			pfd[n].fd = pb_client_fd(c);
			pfd[n++].events = POLLIN;
		}
		if (w != NULL && pb_worker_fd(w) >= 0) {
			pfd[n].fd = pb_worker_fd(w);
			pfd[n++].events = POLLIN;
		}
		(void)poll(pfd, n, 5);
		r = LIB(pb_client_dispatch(c, 0));
		if (pass_nomem(ps, "pb_client_dispatch", r) && ps->give_up) {
			ps->stopped = true;
			break;
		}
		if (w == NULL)
			continue;
		r = LIB(pb_worker_dispatch(w, 0));
		if (pass_nomem(ps, "pb_worker_dispatch", r) && ps->give_up)
			ps->stopped = true;
	}
}

/*
 * One pass over the sequence with the allocator as armed by the caller.
 * Everything is freed at the end, whatever happened.
 */
static void
pass_run(struct fixture *f, struct pass *ps)
{
	static const struct pb_meta meta[] = { { "tenant", "t1" } };
	struct pb_options	 wo = { .name = "alloc-worker" };
	struct pb_run_options	 ro = { .timeout_ms = WAIT_MS };
	struct pb_run_options	 mo = { .meta = meta, .nmeta = 1,
				    .trace = true };
	struct pb_client	*c = NULL;
	struct pb_worker	*w = NULL;
	struct pb_result	*res = NULL;
	uint8_t			 id[PB_ID_LEN];
	size_t			 i;

	/* A client: connect, a job to collect later, one to wait for. */
	PASS_CALL(ps, "pb_client_connect",
	    pb_client_connect(f->b.unix_ep, NULL, &c));
	PASS_CALL(ps, "pb_client_submit", pb_client_submit(c, "rev", "hello",
	    5, NULL, pass_on_result, NULL, ps, id));
	PASS_CALL(ps, "pb_client_run",
	    pb_client_run(c, "rev", "abc", 3, &ro, &res));
	ck_assert_int_eq(res->status, PB_OK);
	ck_assert_mem_eq(res->payload, "cba", 3);
	pass_pump(ps, c, NULL, 1);
	if (ps->stopped)
		goto out;
	ck_assert_mem_eq(ps->results[0]->id, id, PB_ID_LEN);
	ck_assert_mem_eq(ps->results[0]->payload, "olleh", 5);
	PASS_CALL(ps, "pb_client_sync", pb_client_sync(c, WAIT_MS));

	/* A worker in this process, serving a large job of c's. */
	PASS_CALL(ps, "pb_worker_new", pb_worker_new(f->b.unix_ep, &wo, &w));
	PASS_CALL(ps, "pb_worker_add_function",
	    pb_worker_add_function(w, "upper", h_upper, ps));
	PASS_CALL(ps, "pb_worker_connect", pb_worker_connect(w));
	PASS_CALL(ps, "pb_worker_add_function",
	    pb_worker_add_function(w, "upper2", h_upper, ps));
	PASS_CALL(ps, "pb_worker_set_capacity", pb_worker_set_capacity(w, 2));
	for (i = 0; i < BIG_LEN; i++)
		ps->big[i] = (uint8_t)('a' + i % 26);
	PASS_CALL(ps, "pb_client_submit", pb_client_submit(c, "upper",
	    ps->big, BIG_LEN, &mo, pass_on_result, pass_on_progress, ps, id));
	pass_pump(ps, c, w, 2);
	if (ps->stopped)
		goto out;
	ck_assert_int_eq(ps->results[1]->status, PB_OK);
	ck_assert_uint_eq(ps->results[1]->len, BIG_LEN);
	for (i = 0; i < BIG_LEN; i++)
		ck_assert_int_eq(((uint8_t *)ps->results[1]->payload)[i],
		    'A' + i % 26);
	ck_assert_int_eq(ps->nprogress, 1);
	ck_assert_uint_eq(pb_client_pending(c), 0);
out:
	pb_worker_free(w);
	/* A job held past its worker is still freed by its answer. */
	if (ps->held != NULL)
		ck_assert_int_eq(pb_job_complete(ps->held, PB_OK, NULL, 0,
		    NULL), -ENOTCONN);
	pb_client_free(c);
	pb_result_free(res);
	for (i = 0; i < (size_t)ps->nresults; i++)
		pb_result_free(ps->results[i]);
}

/*
 * Replays the sequence failing allocation 1, 2, 3... until it runs
 * clean, then checks that the walk meant something.
 */
static void
walk_sequence(bool give_up)
{
	struct fixture	 f;
	struct pass	*ps;
	unsigned long	 n, injected, count;
	size_t		 live;

	fixture_start(&f);
	ps = calloc(1, sizeof(*ps));
	ck_assert_ptr_nonnull(ps);
	for (n = 1; ; n++) {
		ck_assert_msg(n < MAX_PASSES, "the sequence never ran clean");
		memset(ps, 0, sizeof(*ps));
		ps->n = n;
		ps->give_up = give_up;
		live = alloc.nlive;
		alloc_arm(n);
		pass_run(&f, ps);
		injected = alloc.failed;
		count = alloc.count;
		alloc_disarm();
		ck_assert(!alloc.overflow);
		ck_assert_msg(alloc.nlive == live, "N=%lu: %zu blocks leaked",
		    n, alloc.nlive - live);
		if (injected == 0) {
			/* Fewer than n allocations: nothing failed. */
			ck_assert_int_eq(ps->nomem, 0);
			ck_assert(!ps->stopped);
			break;
		}
		/* Every failure reached a caller as -ENOMEM. */
		ck_assert_msg(ps->nomem > 0, "N=%lu: the failed allocation "
		    "was never reported", n);
	}
	printf("alloc: sequence (%s): %lu allocation points, each failed "
	    "once; the clean pass made %lu\n", give_up ? "give up" : "retry",
	    n - 1, count);
	/* Not vacuous: many passes failed, and each saw -ENOMEM. */
	ck_assert_uint_ge(n - 1, MIN_POINTS);
	free(ps);
	fixture_stop(&f);
}

START_TEST(alloc_sequence_retries)
{
	walk_sequence(false);
}
END_TEST

START_TEST(alloc_sequence_gives_up)
{
	walk_sequence(true);
}
END_TEST

/* ---- one call at a time -------------------------------------------------- */

/* The jobs of alloc_submit_many and what came back for them. */
static struct {
	uint8_t		ids[MANY_JOBS][PB_ID_LEN];
	int		got[MANY_JOBS];
	int		nresults;
} many;

/* Checks a NO_WORKER result against the id its job was given. */
static void
many_on_result(struct pb_client *c, struct pb_result *r, void *ud)
{
	int	i = (int)(intptr_t)ud;

	CALLBACK_BEGIN();
	(void)c;
	ck_assert_int_eq(r->status, PB_NO_WORKER);
	ck_assert_mem_eq(r->id, many.ids[i], PB_ID_LEN);
	many.got[i]++;
	many.nresults++;
	pb_result_free(r);
	CALLBACK_END();
}

START_TEST(alloc_submit_many)
{
	struct fixture		 f;
	struct pb_run_options	 o = { .nowait = true };
	struct pb_client	*c;
	unsigned long long	 deadline;
	unsigned long		 k, points = 0, nomem = 0, calls = 0;
	size_t			 live;
	int			 i, r, grew = 0;

	fixture_start(&f);
	memset(&many, 0, sizeof(many));
	live = alloc.nlive;
	ck_assert_int_eq(LIB(pb_client_connect(f.b.unix_ep, NULL, &c)), 0);

	/* Every allocation of every submit fails once, then it succeeds. */
	for (i = 0; i < MANY_JOBS; i++) {
		for (k = 1; ; k++) {
			alloc_arm(k);
			r = LIB(pb_client_submit(c, "nobody", NULL, 0, &o,
			    many_on_result, NULL, (void *)(intptr_t)i,
			    many.ids[i]));
			alloc_disarm();
			if (alloc.failed == 0) {
				ck_assert_int_eq(r, 0);
				break;
			}
			ck_assert_int_eq(r, -ENOMEM);
			ck_assert_uint_eq(pb_client_pending(c), (size_t)i);
			points++;
		}
		/*
		 * More points than the job's calloc (after the first, which
		 * makes the table): uthash tried to grow its buckets, the
		 * failure was rolled back, and the job went in on a retry.
		 */
		if (i > 0 && k > 2)
			grew++;
	}
	ck_assert_uint_eq(pb_client_pending(c), MANY_JOBS);
	ck_assert_int_gt(grew, 0);

	/* The results, through dispatches that fail their kth allocation. */
	deadline = harness_now_ms() + WAIT_MS;
	for (k = 1; many.nresults < MANY_JOBS; k = k % 5 + 1) {
		ck_assert_msg(harness_now_ms() < deadline, "%d of %d results",
		    many.nresults, MANY_JOBS);
		alloc_arm(k);
		r = LIB(pb_client_dispatch(c, 5));
		alloc_disarm();
		calls++;
		if (alloc.failed > 0) {
			ck_assert_int_eq(r, -ENOMEM);
			nomem++;
		} else
			ck_assert_int_ge(r, 0);
	}
	for (i = 0; i < MANY_JOBS; i++)
		ck_assert_int_eq(many.got[i], 1);
	ck_assert_uint_eq(pb_client_pending(c), 0);
	/* Results allocate (decoding itself does not): many failed. */
	ck_assert_uint_gt(nomem, MANY_JOBS / 4);
	pb_client_free(c);
	ck_assert(!alloc.overflow);
	ck_assert_uint_eq(alloc.nlive, live);
	printf("alloc: %d submits: %lu failure points, %d of them growing "
	    "the table; %lu of %lu dispatches saw -ENOMEM\n", MANY_JOBS,
	    points, grew, nomem, calls);
	fixture_stop(&f);
}
END_TEST

/* "fnN": answers OK with the function's name (in this process). */
static void
h_name(struct pb_worker *w, struct pb_job *job, void *ud)
{
	CALLBACK_BEGIN();
	(void)w; (void)ud;
	ck_assert_int_eq(LIB(pb_job_complete(job, PB_OK, pb_job_function(job),
	    strlen(pb_job_function(job)), NULL)), 0);
	CALLBACK_END();
}

/* Counts OK results whose payload is the job's function name. */
static void
fns_on_result(struct pb_client *c, struct pb_result *r, void *ud)
{
	int	*n = ud;

	CALLBACK_BEGIN();
	(void)c;
	ck_assert_int_eq(r->status, PB_OK);
	ck_assert_uint_eq(r->len, 255);
	(*n)++;
	pb_result_free(r);
	CALLBACK_END();
}

START_TEST(alloc_add_functions)
{
	struct fixture		 f;
	struct pb_worker	*w;
	struct pb_client	*c;
	struct pollfd		 pfd[2];
	char			 names[MANY_FNS][256];
	unsigned long long	 deadline;
	unsigned long		 k, points = 0;
	int			 i, r, grew = 0, nok = 0;

	fixture_start(&f);
	ck_assert_int_eq(LIB(pb_worker_new(f.b.unix_ep, NULL, &w)), 0);
	ck_assert_int_eq(LIB(pb_worker_add_function(w, "first", h_name,
	    NULL)), 0);
	ck_assert_int_eq(LIB(pb_worker_connect(w)), 0);

	/* Each add re-REGISTERs; one of them outgrows the output buffer. */
	for (i = 0; i < MANY_FNS; i++) {
		memset(names[i], 'a' + i % 26, 255);
		names[i][0] = (char)('A' + i / 26);
		names[i][255] = '\0';
		for (k = 1; ; k++) {
			alloc_arm(k);
			r = LIB(pb_worker_add_function(w, names[i], h_name,
			    NULL));
			alloc_disarm();
			if (alloc.failed == 0) {
				ck_assert_int_eq(r, 0);
				break;
			}
			ck_assert_int_eq(r, -ENOMEM);
			points++;
		}
		if (k > 2)
			grew++;
		for (k = 1; ; k++) {
			alloc_arm(k);
			r = LIB(pb_worker_set_capacity(w, (uint32_t)i + 1));
			alloc_disarm();
			if (alloc.failed == 0) {
				ck_assert_int_eq(r, 0);
				break;
			}
			ck_assert_int_eq(r, -ENOMEM);
			points++;
		}
	}
	ck_assert_int_gt(grew, 0);

	/* The broker knows every function: each job is answered. */
	ck_assert_int_eq(LIB(pb_client_connect(f.b.unix_ep, NULL, &c)), 0);
	for (i = 0; i < MANY_FNS; i++)
		ck_assert_int_eq(LIB(pb_client_submit(c, names[i], NULL, 0,
		    NULL, fns_on_result, NULL, &nok, NULL)), 0);
	deadline = harness_now_ms() + WAIT_MS;
	while (nok < MANY_FNS) {
		ck_assert_msg(harness_now_ms() < deadline, "%d of %d answered",
		    nok, MANY_FNS);
		pfd[0].fd = pb_client_fd(c);
		pfd[1].fd = pb_worker_fd(w);
		pfd[0].events = pfd[1].events = POLLIN;
		(void)poll(pfd, 2, 5);
		ck_assert_int_ge(LIB(pb_client_dispatch(c, 0)), 0);
		ck_assert_int_eq(LIB(pb_worker_dispatch(w, 0)), 0);
	}
	printf("alloc: %d functions: %lu failure points, %d REGISTERs "
	    "outgrowing their buffer\n", MANY_FNS, points, grew);
	pb_client_free(c);
	pb_worker_free(w);
	fixture_stop(&f);
}
END_TEST

/* The suite: sequences, then single calls. */
static Suite *
alloc_suite(void)
{
	Suite	*s = suite_create("alloc");
	TCase	*tc;

	tc = tcase_create("sequence");
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, alloc_sequence_retries);
	tcase_add_test(tc, alloc_sequence_gives_up);
	suite_add_tcase(s, tc);

	tc = tcase_create("calls");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, alloc_submit_many);
	tcase_add_test(tc, alloc_add_functions);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(alloc_suite());
}

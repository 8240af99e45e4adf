/*
 * test-store.c: the durable store (store/) on real SQLite files: what is
 * written comes back in order with every field, a failed commit loses
 * only its batch's new jobs and keeps the rest for the retry, and files
 * that are not a store this build may use are refused with the reason.
 */
#include <sys/resource.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/harness.h"

static char	dir[256], path[300];

/* Fixture: a fresh directory; the store file in it does not exist yet. */
static void
setup(void)
{
	harness_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/jobs.db", dir);
}

/* A job record of test number n, with every field set. */
static void
job_of(struct sb_stored *s, uint8_t id[PROTO_ID_LEN], unsigned n)
{
	static char	payload[32];

	memset(id, 0, PROTO_ID_LEN);
	id[0] = (uint8_t)n;
	id[15] = 0xee;
	snprintf(payload, sizeof(payload), "payload %u", n);
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->fn = "resize";
	s->fn_len = 6;
	s->payload = (const uint8_t *)payload;
	s->payload_len = (uint32_t)strlen(payload);
	s->meta = (const uint8_t *)"\x81\xa1k\xa1v";
	s->meta_len = 5;
	s->unique = "key";
	s->unique_len = 3;
	s->priority = -(int)n;
	s->attempts = n;
	s->max_attempts = n + 2;
	s->retry_on_error = 3;
	s->failures = 1;
	s->backoff_ms = 250;
	s->timeout_ms = 9000;
	s->deadline = 1800000000000ull + n;
	s->due = 1800000001000ull + n;
	s->taken_at = 1700000000000ull + n;
	s->dead = n % 2 == 1;
	s->error = n % 2 == 1 ? "it broke" : NULL;
}

/* What store_load() gave back, copied. */
struct loaded {
	unsigned	 n;
	unsigned	 ids[16];
	char		 payload[16][32];
	struct sb_stored s[16];
	char		 error[16][32];
	bool		 ok[16];		/* every constant field right */
};

static int
collect(const struct sb_stored *s, void *arg)
{
	struct loaded	*l = arg;
	unsigned	 i = l->n++;

	ck_assert_uint_lt(i, 16);
	l->ids[i] = s->id[0];
	snprintf(l->payload[i], sizeof(l->payload[i]), "%.*s",
	    (int)s->payload_len, (const char *)s->payload);
	l->s[i] = *s;
	snprintf(l->error[i], sizeof(l->error[i]), "%s",
	    s->error != NULL ? s->error : "(none)");
	l->ok[i] = s->fn_len == 6 && memcmp(s->fn, "resize", 6) == 0 &&
	    s->meta_len == 5 && memcmp(s->meta, "\x81\xa1k\xa1v", 5) == 0 &&
	    s->unique_len == 3 && memcmp(s->unique, "key", 3) == 0 &&
	    s->id[15] == 0xee && s->retry_on_error == 3 &&
	    s->backoff_ms == 250 && s->timeout_ms == 9000 &&
	    s->taken_at == 1700000000000ull + s->id[0];
	return 0;
}

/* Opens the store at path, failing the test with the reason. */
static struct store *
open_ok(bool fsync)
{
	struct store_options	 o = { .fsync = fsync };
	struct store		*st;
	char			 err[STORE_ERRLEN];

	st = store_open(path, &o, err);
	ck_assert_msg(st != NULL, "%s", err);
	return st;
}

/* Loads everything into l. */
static void
load(struct store *st, struct loaded *l)
{
	char	err[STORE_ERRLEN];

	memset(l, 0, sizeof(*l));
	ck_assert_int_eq(store_load(st, collect, l, err), 0);
}

/*
 * PUT, UPDATE and DEL in batches, closed and opened again: the jobs left
 * come back in the order they were PUT, every field as last written.
 */
START_TEST(store_round_trip_in_order)
{
	struct store	*st = open_ok(true);
	struct sb_stored s;
	struct loaded	 l;
	uint8_t		 id[PROTO_ID_LEN];
	char		 err[STORE_ERRLEN];

	for (unsigned n = 1; n <= 4; n++) {
		job_of(&s, id, n);
		store_apply(st, SB_STORE_PUT, &s);
	}
	ck_assert(store_dirty(st));
	ck_assert_int_eq(store_commit(st, err), 0);
	ck_assert(!store_dirty(st));
	job_of(&s, id, 2);
	s.attempts = 7;
	s.failures = 2;
	s.dead = true;
	s.error = "second error";
	s.due = 0;
	store_apply(st, SB_STORE_UPDATE, &s);
	job_of(&s, id, 3);
	store_apply(st, SB_STORE_DEL, &s);
	job_of(&s, id, 5);
	store_apply(st, SB_STORE_PUT, &s);
	ck_assert_int_eq(store_commit(st, err), 0);
	ck_assert_int_eq(store_count(st), 4);
	store_close(st);

	st = open_ok(false);
	load(st, &l);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_uint_eq(l.ids[0], 1);
	ck_assert_uint_eq(l.ids[1], 2);
	ck_assert_uint_eq(l.ids[2], 4);
	ck_assert_uint_eq(l.ids[3], 5);
	for (unsigned i = 0; i < 4; i++)
		ck_assert_msg(l.ok[i], "job %u came back changed", l.ids[i]);
	ck_assert_str_eq(l.payload[0], "payload 1");
	ck_assert_str_eq(l.payload[3], "payload 5");
	ck_assert_uint_eq(l.s[1].attempts, 7);
	ck_assert_uint_eq(l.s[1].max_attempts, 4);
	ck_assert_uint_eq(l.s[1].failures, 2);
	ck_assert(l.s[1].dead);
	ck_assert_uint_eq(l.s[1].due, 0);
	ck_assert_uint_eq(l.s[1].deadline, 1800000000002ull);
	ck_assert_str_eq(l.error[1], "second error");
	ck_assert_int_eq(l.s[2].priority, -4);
	ck_assert(!l.s[2].dead);
	ck_assert_str_eq(l.error[2], "(none)");
	ck_assert_uint_eq(l.s[2].due, 1800000001004ull);
	/* New jobs go after the ones taken back, even after a restart. */
	job_of(&s, id, 6);
	store_apply(st, SB_STORE_PUT, &s);
	ck_assert_int_eq(store_commit(st, err), 0);
	store_close(st);
	st = open_ok(true);
	load(st, &l);
	ck_assert_uint_eq(l.n, 5);
	ck_assert_uint_eq(l.ids[4], 6);
	store_close(st);
}
END_TEST

/* Sets this process's soft file size limit; returns the old one. */
static rlim_t
fsize_limit(rlim_t soft)
{
	struct rlimit	rl;
	rlim_t		old;

	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
	old = rl.rlim_cur;
	rl.rlim_cur = soft;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	return old;
}

/*
 * A commit that cannot write (the file size limit, as a full disk would):
 * the batch's new jobs are lost and listed, its UPDATE and DEL of jobs
 * committed before are written by the retry once writes work again.
 * Nothing asserts while the limit is on: Check's own messages are files.
 */
START_TEST(store_failed_commit_loses_only_new_jobs)
{
	struct store	*st = open_ok(true);
	struct sb_stored s;
	struct loaded	 l;
	uint8_t		 id[PROTO_ID_LEN], lost_id0 = 0;
	char		 err[STORE_ERRLEN], err2[STORE_ERRLEN];
	const uint8_t	*lost;
	size_t		 nlost = 0;
	rlim_t		 old;
	int		 r1, r2, r3;
	bool		 failing1, dirty2;

	signal(SIGXFSZ, SIG_IGN);
	for (unsigned n = 1; n <= 3; n++) {
		job_of(&s, id, n);
		store_apply(st, SB_STORE_PUT, &s);
	}
	ck_assert_int_eq(store_commit(st, err), 0);

	old = fsize_limit(0);
	job_of(&s, id, 1);
	s.attempts = 9;
	store_apply(st, SB_STORE_UPDATE, &s);
	job_of(&s, id, 2);
	store_apply(st, SB_STORE_DEL, &s);
	for (unsigned n = 10; n < 12; n++) {
		job_of(&s, id, n);
		store_apply(st, SB_STORE_PUT, &s);
	}
	r1 = store_commit(st, err);
	failing1 = store_failing(st);
	lost = store_lost(st, &nlost);
	if (nlost > 0)
		lost_id0 = lost[0];
	/* Still failing: UPDATEs wait, a retry fails too. */
	job_of(&s, id, 3);
	store_apply(st, SB_STORE_DEL, &s);
	dirty2 = store_dirty(st);
	r2 = store_retry(st, 1, err2);
	fsize_limit(old);

	ck_assert_int_eq(r1, -1);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	ck_assert(failing1);
	ck_assert_uint_eq(nlost, 2);
	ck_assert_uint_eq(lost_id0, 10);
	ck_assert(!dirty2);
	ck_assert_int_eq(r2, -1);
	r3 = store_retry(st, 1, err2);
	ck_assert_msg(r3 == 0, "%s", err2);
	ck_assert(!store_failing(st));
	store_close(st);

	st = open_ok(true);
	load(st, &l);
	ck_assert_uint_eq(l.n, 1);
	ck_assert_uint_eq(l.ids[0], 1);
	ck_assert_uint_eq(l.s[0].attempts, 9);
	store_close(st);
}
END_TEST

/*
 * A retry with nothing to write again still writes: it must not call a
 * disk that takes no writes a working one.
 */
START_TEST(store_empty_retry_proves_writes)
{
	struct store	*st = open_ok(true);
	struct sb_stored s;
	uint8_t		 id[PROTO_ID_LEN];
	char		 err[STORE_ERRLEN];
	rlim_t		 old;
	int		 r1, r2, r3;
	size_t		 nlost = 0;

	signal(SIGXFSZ, SIG_IGN);
	old = fsize_limit(0);
	job_of(&s, id, 1);
	store_apply(st, SB_STORE_PUT, &s);
	r1 = store_commit(st, err);
	(void)store_lost(st, &nlost);
	r2 = store_retry(st, 1, err);
	fsize_limit(old);
	r3 = store_retry(st, 2, err);

	ck_assert_int_eq(r1, -1);
	ck_assert_uint_eq(nlost, 1);
	ck_assert_int_eq(r2, -1);
	ck_assert_msg(r3 == 0, "%s", err);
	ck_assert(!store_failing(st));
	store_close(st);
}
END_TEST

/* Opens path expecting a refusal whose sentence contains want. */
static void
open_refused(const char *p, const char *want)
{
	struct store_options	 o = { .fsync = true };
	char			 err[STORE_ERRLEN];

	ck_assert_ptr_null(store_open(p, &o, err));
	ck_assert_msg(strstr(err, p) != NULL, "no path in: %s", err);
	ck_assert_msg(strstr(err, want) != NULL, "'%s' not in: %s", want,
	    err);
}

/* Runs SQL on a database file of the test's own. */
static void
sql_on(const char *p, const char *sql)
{
	sqlite3	*db;

	ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK,
	    "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/*
 * Refused, with the path and why: a missing directory, a file that is no
 * database, someone else's database, a newer schema, a store in use.
 */
START_TEST(store_refuses_what_it_cannot_use)
{
	struct store	*st;
	char		 p[400];
	int		 fd;

	snprintf(p, sizeof(p), "%s/missing/jobs.db", dir);
	open_refused(p, "cannot open");

	snprintf(p, sizeof(p), "%s/garbage.db", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(write(fd, "not a database, just text. ", 27),
		    27);
	close(fd);
	open_refused(p, "not a database");

	snprintf(p, sizeof(p), "%s/other.db", dir);
	sql_on(p, "CREATE TABLE songs (title TEXT)");
	open_refused(p, "not a patchbay store");

	st = open_ok(true);
	store_close(st);
	sql_on(path, "PRAGMA user_version = 99");
	open_refused(path, "schema version 99 was written by a newer "
	    "patchbayd");
	sql_on(path, "PRAGMA user_version = 1");

	st = open_ok(true);
	open_refused(path, "another patchbayd has it open");
	store_close(st);
	st = open_ok(true);
	store_close(st);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite	*s = suite_create("store");
	TCase	*tc = tcase_create("sqlite");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, store_round_trip_in_order);
	tcase_add_test(tc, store_failed_commit_loses_only_new_jobs);
	tcase_add_test(tc, store_empty_retry_proves_writes);
	tcase_add_test(tc, store_refuses_what_it_cannot_use);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_main(store_suite());
}

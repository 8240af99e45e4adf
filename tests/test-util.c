/*
 * test-util.c: the one grammar (numbers, durations, sizes, booleans,
 * restart policies, signals), its error sentences, the formatters, string
 * vectors and word splitting, and endpoints.
 *
 * Every parser is tried with good and bad input, and a refusal must say
 * what was expected and what was given, because that sentence is what a
 * user reads after a flag, a config key, an ADMIN argument or a CLI option.
 *
 * The spawner is tested with real children: what they report about
 * themselves on a pipe is what execve gave them.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "tests/harness.h"
#include "util/util.h"

/* Asserts that err contains needle. */
#define ASSERT_HAS(err, needle)						\
	ck_assert_msg(strstr((err), (needle)) != NULL,			\
	    "'%s' lacks '%s'", (err), (needle))

/* ---- numbers ----------------------------------------------------------- */

START_TEST(util_uint_accepts_digits_in_range)
{
	char		err[UTIL_ERRLEN];
	uint64_t	n = 7;

	ck_assert_int_eq(parse_uint("0", 0, 10, &n, err), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(parse_uint("1024", 1, 1024, &n, err), 0);
	ck_assert_uint_eq(n, 1024);
	ck_assert_int_eq(parse_uint("18446744073709551615", 0, UINT64_MAX, &n,
	    err), 0);
	ck_assert_uint_eq(n, UINT64_MAX);
}
END_TEST

START_TEST(util_uint_refuses_with_sentence)
{
	static const struct { const char *s; int error; } cases[] = {
		{ "", -EINVAL }, { "four", -EINVAL }, { "2x", -EINVAL },
		{ " 2", -EINVAL }, { "2 ", -EINVAL }, { "-1", -EINVAL },
		{ "+1", -EINVAL }, { "1.5", -EINVAL }, { "0x10", -EINVAL },
		{ "1025", -ERANGE }, { "0", -ERANGE },
		{ "18446744073709551616", -ERANGE },
		{ "99999999999999999999999", -ERANGE },
	};
	char		err[UTIL_ERRLEN], want[UTIL_ERRLEN];
	uint64_t	n = 7;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(parse_uint(cases[i].s, 1, 1024, &n, err) ==
		    cases[i].error, "'%s'", cases[i].s);
		snprintf(want, sizeof(want), "expected an integer from 1 to "
		    "1024 (got '%s')", cases[i].s);
		ck_assert_str_eq(err, want);
		ck_assert_uint_eq(n, 7);
	}
}
END_TEST

START_TEST(util_int_takes_a_sign)
{
	char	err[UTIL_ERRLEN];
	int64_t	n = 7;

	ck_assert_int_eq(parse_int("-100", -100, 100, &n, err), 0);
	ck_assert_int_eq(n, -100);
	ck_assert_int_eq(parse_int("+5", -100, 100, &n, err), 0);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(parse_int("-9223372036854775808", INT64_MIN, 0, &n,
	    err), 0);
	ck_assert(n == INT64_MIN);
	ck_assert_int_eq(parse_int("-101", -100, 100, &n, err), -ERANGE);
	ck_assert_str_eq(err, "expected an integer from -100 to 100 (got "
	    "'-101')");
	ck_assert_int_eq(parse_int("-", -100, 100, &n, err), -EINVAL);
	ck_assert_int_eq(parse_int("--1", -100, 100, &n, err), -EINVAL);
	ck_assert_int_eq(parse_int("9223372036854775808", INT64_MIN,
	    INT64_MAX, &n, err), -ERANGE);
	ck_assert_int_eq(n, INT64_MIN);
}
END_TEST

/* ---- durations --------------------------------------------------------- */

START_TEST(util_duration_units_and_bare_ms)
{
	static const struct { const char *s; uint64_t ms; } cases[] = {
		{ "0", 0 }, { "0ms", 0 }, { "500", 500 }, { "250ms", 250 },
		{ "10s", 10000 }, { "5m", 300000 }, { "2h", 7200000 },
		{ "1d", 86400000 }, { "366d", 366ULL * 86400000 },
	};
	char		err[UTIL_ERRLEN];
	uint64_t	ms;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(parse_duration(cases[i].s, 0,
		    LIMIT_DURATION_MAX_MS, &ms, err) == 0, "'%s': %s",
		    cases[i].s, err);
		ck_assert_uint_eq(ms, cases[i].ms);
	}
}
END_TEST

START_TEST(util_duration_refuses_with_sentence)
{
	static const char *const bad[] = {
		"", "s", "-1s", "1.5s", "10 s", "10S", "1w", "ms10", "1h30m",
		" 5s",
	};
	char		err[UTIL_ERRLEN], want[UTIL_ERRLEN];
	uint64_t	ms = 12345;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(parse_duration(bad[i], 0,
		    LIMIT_DURATION_MAX_MS, &ms, err), -EINVAL);
		snprintf(want, sizeof(want), "expected a duration such as "
		    "250ms, 10s, 5m, 2h or 1d, a bare number being "
		    "milliseconds (got '%s')", bad[i]);
		ck_assert_str_eq(err, want);
		ck_assert_uint_eq(ms, 12345);
	}
	ck_assert_int_eq(parse_duration("2h", 10, 3600000, &ms, err), -ERANGE);
	ck_assert_str_eq(err, "expected a duration from 10ms to 1h (got '2h')");
	ck_assert_int_eq(parse_duration("5", 10, 3600000, &ms, err), -ERANGE);
	ck_assert_int_eq(parse_duration("99999999999999999999ms", 0,
	    LIMIT_DURATION_MAX_MS, &ms, err), -ERANGE);
	ck_assert_int_eq(parse_duration("9999999999999999h", 0,
	    LIMIT_DURATION_MAX_MS, &ms, err), -ERANGE);
	ck_assert_uint_eq(ms, 12345);
}
END_TEST

/* Points in time: ISO 8601 with a zone, or @SECONDS; no zone refused. */
START_TEST(util_time_iso8601_with_zone)
{
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "2026-12-24T18:00Z", 1798135200000ull },
		{ "2026-12-24T18:00:30Z", 1798135230000ull },
		{ "2026-12-24T18:00:30.25Z", 1798135230250ull },
		{ "2026-12-24 19:00+01:00", 1798135200000ull },
		{ "2026-12-24T13:00-0500", 1798135200000ull },
		{ "1970-01-01T00:00Z", 0 },
		{ "@1798135200", 1798135200000ull },
	};
	static const char *const bad[] = {
		"2026-12-24", "2026-13-01T00:00Z", "2026-02-30T00:00Z",
		"2026-12-24T24:00Z", "2026-12-24T18:00Zjunk", "18:00Z",
		"2026-12-24T18:00:30.Z", "@", "@x", "",
	};
	uint64_t	ms;
	char		err[UTIL_ERRLEN];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse_time(ok[i].s, &ms, err) == 0, "%s: %s",
		    ok[i].s, err);
		ck_assert_msg(ms == ok[i].ms, "%s: %llu, not %llu", ok[i].s,
		    (unsigned long long)ms, (unsigned long long)ok[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse_time(bad[i], &ms, err) == -EINVAL,
		    "'%s' was taken", bad[i]);
	ck_assert_int_eq(parse_time("2026-12-24T18:00", &ms, err), -EINVAL);
	ck_assert_str_eq(err, "'2026-12-24T18:00' has no time zone: add Z "
	    "for UTC, or +HH:MM");
	ck_assert_int_eq(parse_time("soon", &ms, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "2026-12-24T18:00Z"));
	ck_assert_ptr_nonnull(strstr(err, "(got 'soon')"));
}
END_TEST

START_TEST(util_duration_formats_round_trip)
{
	static const uint64_t values[] = {
		0, 1, 100, 1500, 30000, 120000, 3600000, 86400000, 90061001,
	};
	char		buf[32], err[UTIL_ERRLEN];
	uint64_t	ms;

	format_duration(100, buf, sizeof(buf));
	ck_assert_str_eq(buf, "100ms");
	format_duration(30000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "30s");
	format_duration(120000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2m");
	format_duration(1500, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1500ms");
	format_duration(2 * 86400000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2d");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		format_duration(values[i], buf, sizeof(buf));
		ck_assert_int_eq(parse_duration(buf, 0, UINT64_MAX, &ms, err),
		    0);
		ck_assert_uint_eq(ms, values[i]);
	}
}
END_TEST

START_TEST(util_duration_for_people)
{
	static const struct { uint64_t ms; const char *s; } cases[] = {
		{ 0, "0ms" }, { 450, "450ms" }, { 12345, "12.3s" },
		{ 192000, "3m12s" }, { 7500000, "2h5m" },
		{ 3 * 86400000 + 4 * 3600000 + 5, "3d4h" },
	};
	char	buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		format_duration_human(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].s);
	}
}
END_TEST

START_TEST(util_size_for_people)
{
	static const struct { uint64_t n; const char *s; } cases[] = {
		{ 0, "0B" }, { 900, "900B" }, { 1024, "1KiB" },
		{ 1536, "1.5KiB" }, { 12 * 1048576 + 314573, "12.3MiB" },
		{ 512 * 1048576ULL, "512MiB" }, { 150 * 1048576ULL + 1, "150MiB" },
		{ 3ULL << 40, "3TiB" },
	};
	char	buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		format_size_human(cases[i].n, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].s);
	}
}
END_TEST

/* ---- sizes ------------------------------------------------------------- */

START_TEST(util_size_units_and_bare_bytes)
{
	static const struct { const char *s; uint64_t n; } cases[] = {
		{ "0", 0 }, { "4000", 4000 }, { "64KiB", 65536 },
		{ "16MiB", 16777216 }, { "1GiB", 1073741824 },
	};
	char		err[UTIL_ERRLEN], buf[32];
	uint64_t	n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(parse_size(cases[i].s, 0, UINT64_MAX, &n,
		    err), 0);
		ck_assert_uint_eq(n, cases[i].n);
		format_size(n, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].s);
	}
	format_size(1000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1000");
	format_size(1536, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1536");
}
END_TEST

START_TEST(util_size_refuses_with_sentence)
{
	static const char *const bad[] = {
		"", "KiB", "64kib", "64K", "64 KiB", "1.5MiB", "-1", "1TiB",
		"64KB",
	};
	char		err[UTIL_ERRLEN], want[UTIL_ERRLEN];
	uint64_t	n = 3;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(parse_size(bad[i], 0, UINT64_MAX, &n, err),
		    -EINVAL);
		snprintf(want, sizeof(want), "expected a size such as 64KiB, "
		    "16MiB or 1GiB, a bare number being bytes (got '%s')",
		    bad[i]);
		ck_assert_str_eq(err, want);
	}
	ck_assert_int_eq(parse_size("1GiB", 4096, 64 << 20, &n, err), -ERANGE);
	ck_assert_str_eq(err, "expected a size from 4KiB to 64MiB (got "
	    "'1GiB')");
	ck_assert_int_eq(parse_size("99999999999GiB", 0, UINT64_MAX, &n, err),
	    -ERANGE);
	ck_assert_uint_eq(n, 3);
}
END_TEST

/* ---- limits ------------------------------------------------------------ */

START_TEST(util_percent_parses_and_refuses)
{
	char		err[UTIL_ERRLEN];
	uint64_t	n = 7;

	ck_assert_int_eq(parse_percent("50%", 1, 100000, &n, err), 0);
	ck_assert_uint_eq(n, 50);
	ck_assert_int_eq(parse_percent("250%", 1, 100000, &n, err), 0);
	ck_assert_uint_eq(n, 250);
	ck_assert_int_eq(parse_percent("50", 1, 100000, &n, err), -EINVAL);
	ck_assert_str_eq(err, "expected a percentage such as 50% or 200% "
	    "(got '50')");
	ck_assert_int_eq(parse_percent("0.5%", 1, 100000, &n, err), -EINVAL);
	ck_assert_int_eq(parse_percent("%", 1, 100000, &n, err), -EINVAL);
	ck_assert_int_eq(parse_percent("50 %", 1, 100000, &n, err), -EINVAL);
	ck_assert_int_eq(parse_percent("0%", 1, 100000, &n, err), -ERANGE);
	ck_assert_str_eq(err, "expected a percentage from 1% to 100000% (got "
	    "'0%')");
	ck_assert_int_eq(parse_percent("99999999999999999999%", 1, 100000, &n,
	    err), -ERANGE);
	ck_assert_uint_eq(n, 250);
}
END_TEST

/*
 * Every limit is read by its own grammar with its own range, and written
 * back the same way, as `limit_cpu = 2m`, `--limit-cpu 2m` and the ADMIN
 * argument "limit_cpu": "2m" all are.
 */
START_TEST(util_limits_parse_each_key)
{
	static const struct {
		const char	*key, *value;
		uint64_t	 stored;
		const char	*written;
	} good[] = {
		{ "limit_memory", "256MiB", 256 << 20, "256MiB" },
		{ "limit_memory", "1048576", 1 << 20, "1MiB" },
		{ "limit_cpu", "10s", 10, "10s" },
		{ "limit_cpu", "2m", 120, "2m" },
		{ "limit_cpu", "1000", 1, "1s" },
		{ "limit_nofile", "64", 64, "64" },
		{ "limit_nproc", "1", 1, "1" },
		{ "limit_core", "0", 0, "0" },
		{ "limit_core", "1GiB", 1 << 30, "1GiB" },
		{ "memory_max", "64MiB", 64 << 20, "64MiB" },
		{ "cpu_max", "50%", 50, "50%" },
		{ "cpu_max", "200%", 200, "200%" },
		{ "pids_max", "4194304", 4194304, "4194304" },
	};
	static const struct {
		const char	*key, *value, *err;
	} bad[] = {
		{ "limit_memory", "64", "expected a size from 1MiB to 65536GiB "
		    "(got '64')" },
		{ "limit_memory", "lots", "expected a size such as 64KiB, 16MiB "
		    "or 1GiB, a bare number being bytes (got 'lots')" },
		{ "limit_cpu", "1500ms", "expected whole seconds from 1s to "
		    "366d, such as 10s, 5m or 1h (got '1500ms')" },
		{ "limit_cpu", "500", "expected a duration from 1s to 366d "
		    "(got '500')" },
		{ "limit_cpu", "0", "expected a duration from 1s to 366d "
		    "(got '0')" },
		{ "limit_nofile", "4", "expected an integer from 8 to 1048576 "
		    "(got '4')" },
		{ "limit_nofile", "-1", "expected an integer from 8 to 1048576 "
		    "(got '-1')" },
		{ "limit_nproc", "0", "expected an integer from 1 to 4194304 "
		    "(got '0')" },
		{ "limit_core", "1TiB", "expected a size such as 64KiB, 16MiB "
		    "or 1GiB, a bare number being bytes (got '1TiB')" },
		{ "memory_max", "0", "expected a size from 1MiB to 65536GiB "
		    "(got '0')" },
		{ "cpu_max", "0.5", "expected a percentage such as 50% or 200% "
		    "(got '0.5')" },
		{ "cpu_max", "100001%", "expected a percentage from 1% to "
		    "100000% (got '100001%')" },
		{ "pids_max", "4194305", "expected an integer from 1 to 4194304 "
		    "(got '4194305')" },
	};
	struct limits	l, a, b;
	char		err[UTIL_ERRLEN], buf[64];
	int		k;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		memset(&l, 0, sizeof(l));
		k = limits_find(good[i].key);
		ck_assert_int_ge(k, 0);
		ck_assert_str_eq(limits_name((enum limits_key)k), good[i].key);
		ck_assert_msg(limits_parse(&l, (enum limits_key)k,
		    good[i].value, err) == 0, "%s: %s", good[i].key, err);
		ck_assert(limits_has(&l, (enum limits_key)k));
		ck_assert_uint_eq(l.set, 1u << k);
		ck_assert_uint_eq(l.value[k], good[i].stored);
		limits_format(&l, (enum limits_key)k, buf, sizeof(buf));
		ck_assert_str_eq(buf, good[i].written);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&l, 0, sizeof(l));
		k = limits_find(bad[i].key);
		ck_assert_int_lt(limits_parse(&l, (enum limits_key)k,
		    bad[i].value, err), 0);
		ck_assert_str_eq(err, bad[i].err);
		/* Nothing half-set. */
		ck_assert_uint_eq(l.set, 0);
	}
	ck_assert_int_eq(limits_find("limit_memry"), -1);
	ck_assert_ptr_null(limits_name(LIMITS__MAX));

	/* What reports say, and what a reload compares. */
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	ck_assert_int_eq(limits_parse(&a, LIMITS_CPU, "10s", err), 0);
	limits_describe(&a, LIMITS_CPU, buf, sizeof(buf));
	ck_assert_str_eq(buf, "limit_cpu 10s");
	ck_assert(!limits_equal(&a, &b));
	ck_assert_int_eq(limits_parse(&b, LIMITS_CPU, "10000", err), 0);
	ck_assert(limits_equal(&a, &b));
	ck_assert_int_eq(limits_parse(&b, LIMITS_CORE, "0", err), 0);
	ck_assert(!limits_equal(&a, &b));
}
END_TEST

/*
 * limits_plan() turns the setrlimit() limits into the spawn plan, and
 * refuses one above the caller's own hard limit (which an unprivileged
 * child could not raise) instead of clamping it; only the grace between
 * SIGXCPU and SIGKILL is shortened to fit.
 */
START_TEST(util_limits_plan_checks_the_own_hard_limit)
{
	struct spawn_plan	plan;
	struct limits		l;
	struct rlimit		rl = { 0, 0 };
	char			err[UTIL_ERRLEN];

	/* This test runs in a process of its own: lower our hard limits. */
	ck_assert_int_eq(setrlimit(RLIMIT_CORE, &rl), 0);
	rl.rlim_cur = rl.rlim_max = 12;
	ck_assert_int_eq(setrlimit(RLIMIT_CPU, &rl), 0);

	memset(&l, 0, sizeof(l));
	memset(&plan, 0, sizeof(plan));
	ck_assert_int_eq(limits_parse(&l, LIMITS_CORE, "1MiB", err), 0);
	ck_assert_int_eq(limits_plan(&l, false, &plan, err), -EPERM);
	ck_assert_str_eq(err, "limit_core 1MiB is above the hard limit of "
	    "test-util (0), which only root can raise");
	ck_assert_int_eq(plan.nrlimits, 0);
	/* Root can: the child raises it. */
	ck_assert_int_eq(limits_plan(&l, true, &plan, err), 0);
	ck_assert_int_eq(plan.nrlimits, 1);
	ck_assert_int_eq(plan.rlimits[0].resource, RLIMIT_CORE);
	ck_assert_uint_eq(plan.rlimits[0].soft, 1 << 20);
	ck_assert_uint_eq(plan.rlimits[0].hard, 1 << 20);
	ck_assert_str_eq(plan.rlimits[0].name, "limit_core");

	memset(&l, 0, sizeof(l));
	memset(&plan, 0, sizeof(plan));
	ck_assert_int_eq(limits_parse(&l, LIMITS_CPU, "10s", err), 0);
	ck_assert_int_eq(limits_parse(&l, LIMITS_NOFILE, "64", err), 0);
	ck_assert_int_eq(limits_plan(&l, true, &plan, err), 0);
	ck_assert_int_eq(plan.nrlimits, 2);
	ck_assert_int_eq(plan.rlimits[0].resource, RLIMIT_CPU);
	ck_assert_uint_eq(plan.rlimits[0].soft, 10);
	ck_assert_uint_eq(plan.rlimits[0].hard, 10 + LIMITS_CPU_GRACE_S);
	ck_assert_int_eq(plan.rlimits[1].resource, RLIMIT_NOFILE);
	ck_assert_uint_eq(plan.rlimits[1].soft, 64);
	ck_assert_uint_eq(plan.rlimits[1].hard, 64);
	/* Under our hard limit of 12 s: SIGXCPU at 10 s, SIGKILL at 12 s. */
	memset(&plan, 0, sizeof(plan));
	ck_assert_int_eq(limits_plan(&l, false, &plan, err), 0);
	ck_assert_uint_eq(plan.rlimits[0].soft, 10);
	ck_assert_uint_eq(plan.rlimits[0].hard, 12);
	memset(&plan, 0, sizeof(plan));
	ck_assert_int_eq(limits_parse(&l, LIMITS_CPU, "20s", err), 0);
	ck_assert_int_eq(limits_plan(&l, false, &plan, err), -EPERM);
	ck_assert_str_eq(err, "limit_cpu 20s is above the hard limit of "
	    "test-util (12s), which only root can raise");
}
END_TEST

/* ---- names ------------------------------------------------------------- */

START_TEST(util_bool_restart_signal)
{
	char			err[UTIL_ERRLEN];
	bool			b = false;
	enum restart_policy	r = RESTART_NEVER;
	int			sig = 0;

	ck_assert_int_eq(parse_bool("yes", &b, err), 0);
	ck_assert(b);
	ck_assert_int_eq(parse_bool("off", &b, err), 0);
	ck_assert(!b);
	ck_assert_int_eq(parse_bool("maybe", &b, err), -EINVAL);
	ck_assert_str_eq(err, "expected yes or no (got 'maybe')");

	ck_assert_int_eq(parse_restart("always", &r, err), 0);
	ck_assert_int_eq(r, RESTART_ALWAYS);
	ck_assert_int_eq(parse_restart("on-failure", &r, err), 0);
	ck_assert_int_eq(r, RESTART_ON_FAILURE);
	ck_assert_str_eq(format_restart(r), "on-failure");
	ck_assert_int_eq(parse_restart("sometimes", &r, err), -EINVAL);
	ck_assert_str_eq(err, "expected always, on-failure or never (got "
	    "'sometimes')");
	ck_assert_int_eq(r, RESTART_ON_FAILURE);

	ck_assert_int_eq(parse_signal("TERM", &sig, err), 0);
	ck_assert_int_eq(sig, SIGTERM);
	ck_assert_int_eq(parse_signal("SIGTERM", &sig, err), 0);
	ck_assert_int_eq(parse_signal("hup", &sig, err), 0);
	ck_assert_int_eq(sig, SIGHUP);
	ck_assert_int_eq(parse_signal("KILL", &sig, err), 0);
	ck_assert_int_eq(sig, SIGKILL);
	ck_assert_int_eq(parse_signal("STOP", &sig, err), -EINVAL);
	ck_assert_int_eq(parse_signal("15", &sig, err), -EINVAL);
	ck_assert_int_eq(parse_signal("", &sig, err), -EINVAL);
	ASSERT_HAS(err, "signal name");
	ASSERT_HAS(err, "(got '')");
	ck_assert_str_eq(format_signal(SIGUSR1), "USR1");
	ck_assert_ptr_null(format_signal(SIGSTOP));

	ck_assert(parse_name_valid("y.2_z-w"));
	ck_assert(!parse_name_valid(""));
	ck_assert(!parse_name_valid("a/b"));
	ck_assert(!parse_name_valid("a b"));
	ck_assert(!parse_name_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaa"));
}
END_TEST

/* ---- escaping ---------------------------------------------------------- */

START_TEST(util_escape_keeps_one_line)
{
	char	buf[32];

	ck_assert_str_eq(format_escape("plain", 5, buf, sizeof(buf)), "plain");
	ck_assert_str_eq(format_escape("a\nb\r\t\\", 6, buf, sizeof(buf)),
	    "a\\nb\\r\\t\\\\");
	ck_assert_str_eq(format_escape("\x1b[31m\x00\xff", 7, buf,
	    sizeof(buf)), "\\x1b[31m\\x00\\xff");
	/* Too long: cut, marked, always terminated, never mid-escape. */
	ck_assert_str_eq(format_escape("0123456789abcdef", 16, buf, 10),
	    "012345...");
	ck_assert_str_eq(format_escape("\n\n\n\n\n", 5, buf, 10),
	    "\\n\\n\\n...");
	ck_assert_str_eq(format_escape("abc", 3, buf, 4), "abc");
	ck_assert(strchr(format_escape("x\ny", 3, buf, 3), '\n') == NULL);
}
END_TEST

/* ---- string vectors ---------------------------------------------------- */

/* array_grow: room for one more, the elements kept, doubling. */
START_TEST(util_array_grow_keeps_elements)
{
	uint32_t	*v = NULL;
	size_t		 n = 0, cap = 0;

	for (uint32_t i = 0; i < 1000; i++) {
		ck_assert_int_eq(array_grow(&v, &cap, n, sizeof(*v)), 0);
		ck_assert_uint_gt(cap, n);
		v[n++] = i * 7;
	}
	ck_assert_uint_eq(cap, 1024);
	for (uint32_t i = 0; i < 1000; i++)
		ck_assert_uint_eq(v[i], i * 7);
	/* Room left: nothing moves. */
	ck_assert_int_eq(array_grow(&v, &cap, 10, sizeof(*v)), 0);
	ck_assert_uint_eq(cap, 1024);
	free(v);
}
END_TEST

START_TEST(util_strv_split_quotes)
{
	char	**w, err[UTIL_ERRLEN];

	ck_assert_int_eq(strv_split("  a  'b c'  \"d \\\"e\\\\\"f ", &w, err),
	    0);
	ck_assert_uint_eq(strv_len(w), 3);
	ck_assert_str_eq(w[0], "a");
	ck_assert_str_eq(w[1], "b c");
	ck_assert_str_eq(w[2], "d \"e\\f");
	ck_assert_ptr_null(w[3]);
	strv_free(w);
	ck_assert_int_eq(strv_split("", &w, err), 0);
	ck_assert_ptr_null(w[0]);
	strv_free(w);
	ck_assert_int_eq(strv_split("a \"b", &w, err), -EINVAL);
	ck_assert_str_eq(err, "unterminated double quote");
	ck_assert_int_eq(strv_split("a 'b", &w, err), -EINVAL);
	ck_assert_str_eq(err, "unterminated single quote");
}
END_TEST

START_TEST(util_strv_push_dup_equal)
{
	char	**v = NULL, **copy;
	size_t	  n = 0;

	ck_assert_int_eq(strv_push(&v, &n, "a"), 0);
	ck_assert_int_eq(strv_push(&v, &n, "b"), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_null(v[2]);
	copy = strv_dup(v);
	ck_assert(strv_equal(v, copy));
	ck_assert_ptr_ne(copy[0], v[0]);
	free(copy[1]);
	copy[1] = strdup("c");
	ck_assert(!strv_equal(v, copy));
	ck_assert(strv_equal(NULL, NULL));
	ck_assert_uint_eq(strv_len(NULL), 0);
	strv_free(v);
	strv_free(copy);
	strv_free(NULL);
}
END_TEST

START_TEST(util_clock_is_monotonic)
{
	uint64_t	a = clock_now_ms(), b;

	usleep(20 * 1000);
	b = clock_now_ms();
	ck_assert_uint_ge(b, a + 19);
}
END_TEST

/* ---- endpoints --------------------------------------------------------- */

START_TEST(endpoint_parses_unix_and_tcp)
{
	struct endpoint	ep;
	char		err[UTIL_ERRLEN];

	ck_assert_int_eq(endpoint_parse("unix:/tmp/x/pb.sock", &ep, err), 0);
	ck_assert_int_eq(ep.kind, ENDPOINT_UNIX);
	ck_assert_str_eq(ep.path, "/tmp/x/pb.sock");
	ck_assert_str_eq(ep.text, "unix:/tmp/x/pb.sock");

	ck_assert_int_eq(endpoint_parse("tcp:127.0.0.1:7400", &ep, err), 0);
	ck_assert_int_eq(ep.kind, ENDPOINT_TCP);
	ck_assert_str_eq(ep.host, "127.0.0.1");
	ck_assert_str_eq(ep.port, "7400");

	ck_assert_int_eq(endpoint_parse("tcp:[::1]:0", &ep, err), 0);
	ck_assert_str_eq(ep.host, "::1");
	ck_assert_str_eq(ep.port, "0");
	ck_assert_str_eq(ep.text, "tcp:[::1]:0");

	ck_assert_int_eq(endpoint_parse("tls:broker.example:7401", &ep, err),
	    0);
	ck_assert_int_eq(ep.kind, ENDPOINT_TLS);
	ck_assert_str_eq(ep.host, "broker.example");
	ck_assert_str_eq(ep.port, "7401");
	ck_assert_str_eq(ep.text, "tls:broker.example:7401");
	ck_assert_int_eq(endpoint_parse("tls:[::1]:7401", &ep, err), 0);
	ck_assert_str_eq(ep.text, "tls:[::1]:7401");
}
END_TEST

START_TEST(endpoint_rejects_bad_strings_with_reason)
{
	static const struct { const char *in, *needle; } cases[] = {
		{ "", "empty endpoint" },
		{ "udp:1.2.3.4:5",
		    "expected unix:PATH, tcp:HOST:PORT or tls:HOST:PORT" },
		{ "unix:", "empty socket path" },
		{ "tcp:localhost", "missing :PORT" },
		{ "tcp:localhost:http", "port 'http'" },
		{ "tcp:localhost:70000", "port '70000'" },
		{ "tcp::1:80", "brackets" },
		{ "tcp:[::1]80", "[ADDRESS]:PORT" },
		{ "tcp::80", "empty host" },
		{ "tcp://localhost:7400", "write tcp:HOST:PORT, not tcp://" },
		{ "unix:///tmp/pb.sock", "write unix:PATH, not unix://" },
	};
	struct endpoint	ep;
	char		err[UTIL_ERRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(endpoint_parse(cases[i].in, &ep, err),
		    -EINVAL);
		ck_assert_msg(strstr(err, cases[i].needle) != NULL,
		    "'%s': error '%s' lacks '%s'", cases[i].in, err,
		    cases[i].needle);
	}
	ck_assert_int_eq(endpoint_parse("unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaa", &ep, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "longer than"));
}
END_TEST

START_TEST(endpoint_list_splits_and_checks_each)
{
	static const struct { const char *in, *needle; } bad[] = {
		{ "", "empty endpoint" },
		{ "unix:/a,", "empty entry" },
		{ ",unix:/a", "empty entry" },
		{ "unix:/a, ,unix:/b", "empty entry" },
		{ "unix:/a,tcp:host", "tcp endpoint 'host': missing :PORT" },
		{ "unix:/a, unix:/a", "has unix:/a twice" },
	};
	char	err[UTIL_ERRLEN], **v, many[1024];
	size_t	off = 0;

	ck_assert_int_eq(endpoint_list_split("unix:/tmp/pb.sock", &v, err), 0);
	ck_assert_uint_eq(strv_len(v), 1);
	ck_assert_str_eq(v[0], "unix:/tmp/pb.sock");
	strv_free(v);
	ck_assert_int_eq(endpoint_list_split(" unix:/a ,tcp:[::1]:7400,\t"
	    "tcp:127.0.0.1:1 ", &v, err), 0);
	ck_assert_uint_eq(strv_len(v), 3);
	ck_assert_str_eq(v[0], "unix:/a");
	ck_assert_str_eq(v[1], "tcp:[::1]:7400");
	ck_assert_str_eq(v[2], "tcp:127.0.0.1:1");
	strv_free(v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(endpoint_list_split(bad[i].in, &v, err),
		    -EINVAL);
		ck_assert_msg(strstr(err, bad[i].needle) != NULL,
		    "'%s': error '%s' lacks '%s'", bad[i].in, err,
		    bad[i].needle);
	}
	/* ENDPOINT_LIST_MAX brokers are fine, one more is not. */
	for (int i = 0; i <= ENDPOINT_LIST_MAX; i++)
		off += (size_t)snprintf(many + off, sizeof(many) - off,
		    "%sunix:/b%d", i > 0 ? "," : "", i);
	ck_assert_int_eq(endpoint_list_split(many, &v, err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "more than 16 brokers"));
	*strrchr(many, ',') = '\0';
	ck_assert_int_eq(endpoint_list_split(many, &v, err), 0);
	ck_assert_uint_eq(strv_len(v), ENDPOINT_LIST_MAX);
	strv_free(v);
}
END_TEST

START_TEST(endpoint_default_follows_environment)
{
	char	buf[512];

	unsetenv("PATCHBAY_BROKER");
	unsetenv("PATCHBAY_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	ck_assert_int_eq(endpoint_default(buf, sizeof(buf), true), 0);
	{
		char want[64];

		snprintf(want, sizeof(want), "unix:/tmp/patchbay-%u/"
		    "patchbay.sock", (unsigned)getuid());
		ck_assert_str_eq(buf, want);
	}
	setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
	ck_assert_int_eq(endpoint_default(buf, sizeof(buf), true), 0);
	ck_assert_str_eq(buf, "unix:/run/user/7/patchbay.sock");
	setenv("PATCHBAY_SOCKET", "/srv/pb.sock", 1);
	ck_assert_int_eq(endpoint_default(buf, sizeof(buf), true), 0);
	ck_assert_str_eq(buf, "unix:/srv/pb.sock");
	setenv("PATCHBAY_BROKER", "tcp:10.0.0.1:7400", 1);
	ck_assert_int_eq(endpoint_default(buf, sizeof(buf), true), 0);
	ck_assert_str_eq(buf, "tcp:10.0.0.1:7400");
	/* The broker itself ignores PATCHBAY_BROKER. */
	ck_assert_int_eq(endpoint_default(buf, sizeof(buf), false), 0);
	ck_assert_str_eq(buf, "unix:/srv/pb.sock");
	ck_assert_int_eq(endpoint_default(buf, 8, true), -ENAMETOOLONG);
}
END_TEST

START_TEST(endpoint_connect_missing_socket_fails_fast)
{
	struct endpoint	ep;
	char		err[UTIL_ERRLEN], dir[256], s[300];
	int		fd, r;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(s, sizeof(s), "unix:%s/nobody.sock", dir);
	ck_assert_int_eq(endpoint_parse(s, &ep, err), 0);
	r = endpoint_connect(&ep, 1000, &fd);
	ck_assert_int_eq(r, -ENOENT);
}
END_TEST

/* ---- spawn ------------------------------------------------------------- */

/*
 * Runs /bin/sh -c script through the spawner with stdin from /dev/null and
 * stdout to a pipe, whose contents go to out (len bytes, NUL-terminated).
 * Returns the child's wait status.
 */
static int
spawn_sh(struct spawn_plan *plan, const char *script, char *out, size_t len)
{
	char *const		 argv[] = { "sh", "-c", (char *)script, NULL };
	struct spawn_error	 e;
	int			 p[2], null, status;
	size_t			 got = 0;
	ssize_t			 n;
	pid_t			 pid;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ne(null, -1);
	plan->path = strdup("/bin/sh");
	plan->argv = argv;
	plan->fds[0] = null;
	plan->fds[1] = p[1];
	plan->fds[2] = p[1];
	plan->nfds = 3;
	ck_assert_int_eq(spawn_start(plan, &e, &pid), 0);
	close(p[1]);
	close(null);
	while (got < len - 1 && (n = read(p[0], out + got,
	    len - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

START_TEST(spawn_child_gets_only_its_descriptors)
{
	struct spawn_plan	plan;
	char			out[256];
	int			stray;

	/* Neither close-on-exec nor planned: the child must not see it. */
	stray = open("/dev/null", O_RDONLY);
	ck_assert_int_gt(stray, 2);
	memset(&plan, 0, sizeof(plan));
	plan.flags = SPAWN_PROCESS_GROUP | SPAWN_DIE_WITH_PARENT;
	/* The shell's own table, listed by a child of it. */
	ck_assert_int_eq(spawn_sh(&plan, "ls /proc/$$/fd; "
	    "set -- $(cat /proc/$$/stat); test \"$5\" = $$ && echo own group",
	    out, sizeof(out)), 0);
	ck_assert_str_eq(out, "0\n1\n2\nown group\n");
	spawn_plan_clear(&plan);
	close(stray);
}
END_TEST

START_TEST(spawn_child_gets_only_its_environment)
{
	struct spawn_plan	plan;
	char			out[512];

	setenv("PB_TEST_SECRET", "leak", 1);
	memset(&plan, 0, sizeof(plan));
	ck_assert_int_eq(spawn_env_set(&plan, "A=1"), 0);
	ck_assert_int_eq(spawn_env_setf(&plan, "B", "%d", 2), 0);
	ck_assert_int_eq(spawn_env_set(&plan, "A=3"), 0);
	ck_assert_int_eq(spawn_env_set(&plan, "C=gone"), 0);
	spawn_env_unset(&plan, "C");
	spawn_env_unset(&plan, "NOT_THERE");
	ck_assert_int_eq(spawn_env_set(&plan, "no-equals-sign"), -EINVAL);
	ck_assert_str_eq(spawn_env_get(&plan, "A"), "3");
	ck_assert_ptr_null(spawn_env_get(&plan, "C"));
	ck_assert_int_eq(spawn_sh(&plan, "env | sort", out, sizeof(out)), 0);
	/* dash adds PWD to what it was given. */
	ck_assert_msg(strcmp(out, "A=3\nB=2\n") == 0 ||
	    strncmp(out, "A=3\nB=2\nPWD=", 12) == 0, "%s", out);
	spawn_plan_clear(&plan);
	unsetenv("PB_TEST_SECRET");
}
END_TEST

/*
 * SPAWN_UMASK gives the child the plan's umask; without it the child keeps
 * ours (a zeroed plan must not mean umask 0).
 */
START_TEST(spawn_child_gets_its_umask)
{
	struct spawn_plan	plan;
	char			out[64];
	mode_t			old = umask(022);

	memset(&plan, 0, sizeof(plan));
	plan.flags = SPAWN_UMASK;
	plan.umask = 027;
	ck_assert_int_eq(spawn_sh(&plan, "umask", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "0027\n");
	spawn_plan_clear(&plan);

	memset(&plan, 0, sizeof(plan));
	ck_assert_int_eq(spawn_sh(&plan, "umask", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "0022\n");
	spawn_plan_clear(&plan);
	umask(old);
}
END_TEST

START_TEST(spawn_exec_failure_is_reported_at_once)
{
	char *const		 argv[] = { "prog", NULL };
	struct spawn_plan	 plan;
	struct spawn_error	 e;
	char			 text[UTIL_ERRLEN], *found = NULL;
	pid_t			 pid = 0;

	memset(&plan, 0, sizeof(plan));
	plan.path = strdup("/nonexistent/prog");
	plan.argv = argv;
	ck_assert_int_eq(spawn_start(&plan, &e, &pid), -ENOENT);
	ck_assert_int_eq(pid, 0);
	ck_assert_int_eq(e.stage, SPAWN_STAGE_EXEC);
	spawn_error_text(&plan, &e, "prog", text, sizeof(text));
	ck_assert_str_eq(text, "cannot execute '/nonexistent/prog': No such "
	    "file or directory");
	/* Reaped already: no child is left. */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);

	plan.dir = "/nonexistent/dir";
	ck_assert_int_eq(spawn_start(&plan, &e, &pid), -ENOENT);
	spawn_error_text(&plan, &e, "prog", text, sizeof(text));
	ck_assert_str_eq(text, "cannot change directory to '/nonexistent/dir': "
	    "No such file or directory");
	spawn_plan_clear(&plan);

	ck_assert_int_eq(spawn_find_program("sh", "/nonexistent:/bin", &found),
	    0);
	ck_assert_str_eq(found, "/bin/sh");
	free(found);
	ck_assert_int_eq(spawn_find_program("no-such-program-pb", "/bin",
	    &found), -ENOENT);
}
END_TEST

/*
 * The plan's rlimits are what the executed program has; one the kernel
 * refuses, or a cgroup that cannot be joined, is reported as the step
 * that failed, before execve.
 */
START_TEST(spawn_child_gets_its_rlimits)
{
	char *const		 argv[] = { "sh", NULL };
	struct spawn_plan	 plan;
	struct spawn_error	 e;
	struct limits		 l;
	char			 out[4096], err[UTIL_ERRLEN], soft[32], hard[32];
	char			 text[UTIL_ERRLEN];
	int			 fd;
	pid_t			 pid = 0;

	memset(&plan, 0, sizeof(plan));
	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(limits_parse(&l, LIMITS_MEMORY, "256MiB", err), 0);
	ck_assert_int_eq(limits_parse(&l, LIMITS_CPU, "10s", err), 0);
	ck_assert_int_eq(limits_parse(&l, LIMITS_NOFILE, "64", err), 0);
	ck_assert_int_eq(limits_parse(&l, LIMITS_CORE, "0", err), 0);
	ck_assert_int_eq(limits_plan(&l, true, &plan, err), 0);
	ck_assert_int_eq(spawn_sh(&plan, "cat /proc/self/limits", out,
	    sizeof(out)), 0);
	harness_limits_line(out, "Max address space", soft, hard);
	ck_assert_str_eq(soft, "268435456");
	ck_assert_str_eq(hard, "268435456");
	harness_limits_line(out, "Max cpu time", soft, hard);
	ck_assert_str_eq(soft, "10");
	ck_assert_str_eq(hard, "15");
	harness_limits_line(out, "Max open files", soft, hard);
	ck_assert_str_eq(soft, "64");
	ck_assert_str_eq(hard, "64");
	harness_limits_line(out, "Max core file size", soft, hard);
	ck_assert_str_eq(soft, "0");
	ck_assert_str_eq(hard, "0");
	spawn_plan_clear(&plan);

	/* A soft limit above its hard one: setrlimit() says EINVAL. */
	memset(&plan, 0, sizeof(plan));
	plan.path = strdup("/bin/sh");
	plan.argv = argv;
	plan.rlimits[0] = (struct spawn_rlimit){ RLIMIT_NOFILE, 64, 32,
	    "limit_nofile" };
	plan.nrlimits = 1;
	ck_assert_int_eq(spawn_start(&plan, &e, &pid), -EINVAL);
	ck_assert_int_eq(e.stage, SPAWN_STAGE_RLIMIT);
	ck_assert_int_eq(e.index, 0);
	spawn_error_text(&plan, &e, "sh", text, sizeof(text));
	ck_assert_str_eq(text, "cannot start 'sh': cannot set limit_nofile: "
	    "Invalid argument");

	/* A cgroup.procs that cannot be written. */
	plan.nrlimits = 0;
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ne(fd, -1);
	plan.flags = SPAWN_CGROUP;
	plan.cgroup_fd = fd;
	ck_assert_int_eq(spawn_start(&plan, &e, &pid), -EBADF);
	ck_assert_int_eq(e.stage, SPAWN_STAGE_CGROUP);
	spawn_error_text(&plan, &e, "sh", text, sizeof(text));
	ck_assert_str_eq(text, "cannot start 'sh': cannot join its cgroup: "
	    "Bad file descriptor");
	close(fd);
	ck_assert_int_eq(pid, 0);
	spawn_plan_clear(&plan);
}
END_TEST

/* A buffer too small for the entry is retried bigger, not "no such user". */
START_TEST(spawn_user_lookup_grows_its_buffer)
{
	struct spawn_user	u;

	ck_assert_int_eq(spawn_user_lookup("root", 1, &u), 0);
	ck_assert_str_eq(u.name, "root");
	ck_assert_uint_eq(u.uid, 0);
	ck_assert_int_ge(u.ngroups, 1);
	spawn_user_clear(&u);
	ck_assert_int_eq(spawn_user_lookup("no-such-user-pb", 1, &u), -ENOENT);
}
END_TEST

/* Where spawn_storm_handler() reports, and who installed it. */
static int	spawn_storm_fd = -1;
static pid_t	spawn_storm_owner;

/* SIGUSR1 handler: a write on the pipe when it runs in any other process. */
static void
spawn_storm_handler(int sig)
{
	int	saved = errno;
	char	c = 'X';

	(void)sig;
	if (getpid() != spawn_storm_owner && write(spawn_storm_fd, &c, 1) < 0)
		_exit(99);
	errno = saved;
}

/*
 * In a forked child: spawns /bin/true n times under a stream of signals,
 * after saying on ready that its handler is in place.
 */
static void __attribute__((noreturn))
spawn_storm_child(int fd, int ready, int n)
{
	char *const		 argv[] = { "true", NULL };
	struct spawn_plan	 plan;
	struct spawn_error	 e;
	struct sigaction	 sa;
	int			 status;
	pid_t			 pid;

	setpgid(0, 0);
	spawn_storm_owner = getpid();
	spawn_storm_fd = fd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = spawn_storm_handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR1, &sa, NULL);
	close(ready);
	memset(&plan, 0, sizeof(plan));
	plan.argv = argv;
	plan.flags = SPAWN_PROCESS_GROUP;
	if ((plan.path = strdup("/bin/true")) == NULL)
		_exit(98);
	for (int i = 0; i < n; i++) {
		if (spawn_start(&plan, &e, &pid) != 0)
			continue;
		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	spawn_plan_clear(&plan);
	_exit(0);
}

/*
 * A child is in its parent's process group from fork until setpgid, and
 * has its parent's signal handlers until it resets them: a signal to that
 * group in between must never run the parent's handler in the child (in
 * `patchbay worker`, libevent's handler would pass a job's SIGTERM on to
 * the worker as its own). A process spawns children while its group is
 * sent SIGUSR1 without pause; its handler reports any run in a child.
 */
START_TEST(spawn_child_never_runs_the_parents_handlers)
{
	int	p[2], ready[2], status;
	size_t	bad = 0;
	char	c;
	pid_t	t;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	t = fork();
	ck_assert_int_ne(t, -1);
	if (t == 0) {
		close(p[0]);
		close(ready[0]);
		spawn_storm_child(p[1], ready[1], 400);
	}
	close(p[1]);
	close(ready[1]);
	/* EOF: the handler is installed and the child leads its group. */
	while (read(ready[0], &c, 1) == -1 && errno == EINTR)
		;
	close(ready[0]);
	while (waitpid(t, &status, WNOHANG) == 0)
		kill(-t, SIGUSR1);
	while (read(p[0], &c, 1) == 1)
		bad++;
	close(p[0]);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the spawning process ended with status %d", status);
	ck_assert_msg(bad == 0, "the parent's SIGUSR1 handler ran %zu time(s) "
	    "in a spawned child before its execve", bad);
}
END_TEST

/* The util suite. */
/* Times for people: RFC 3339, UTC, milliseconds. */
START_TEST(format_time_is_rfc3339_utc_ms)
{
	char	buf[FORMAT_TIME_LEN];

	format_time(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
	format_time(1796148184123ull, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-12-01T18:03:04.123Z");
	/* A time kept on the monotonic clock, shown on the wall clock. */
	ck_assert_uint_eq(clock_to_wall(900, 1000, 50000), 49900);
	ck_assert_uint_eq(clock_to_wall(1200, 1000, 50000), 50000);
	ck_assert_uint_eq(clock_to_wall(0, 1000, 500), 0);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc;

	tc = tcase_create("grammar");
	tcase_add_test(tc, util_uint_accepts_digits_in_range);
	tcase_add_test(tc, util_uint_refuses_with_sentence);
	tcase_add_test(tc, util_int_takes_a_sign);
	tcase_add_test(tc, util_duration_units_and_bare_ms);
	tcase_add_test(tc, util_duration_refuses_with_sentence);
	tcase_add_test(tc, util_time_iso8601_with_zone);
	tcase_add_test(tc, util_duration_formats_round_trip);
	tcase_add_test(tc, util_duration_for_people);
	tcase_add_test(tc, util_size_for_people);
	tcase_add_test(tc, util_size_units_and_bare_bytes);
	tcase_add_test(tc, util_size_refuses_with_sentence);
	tcase_add_test(tc, util_bool_restart_signal);
	tcase_add_test(tc, util_escape_keeps_one_line);
	tcase_add_test(tc, util_percent_parses_and_refuses);
	tcase_add_test(tc, util_limits_parse_each_key);
	tcase_add_test(tc, util_limits_plan_checks_the_own_hard_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("strv");
	tcase_add_test(tc, util_strv_split_quotes);
	tcase_add_test(tc, util_strv_push_dup_equal);
	tcase_add_test(tc, util_clock_is_monotonic);
	tcase_add_test(tc, util_array_grow_keeps_elements);
	suite_add_tcase(s, tc);

	tc = tcase_create("endpoint");
	tcase_add_test(tc, endpoint_parses_unix_and_tcp);
	tcase_add_test(tc, endpoint_rejects_bad_strings_with_reason);
	tcase_add_test(tc, endpoint_list_splits_and_checks_each);
	tcase_add_test(tc, endpoint_default_follows_environment);
	tcase_add_test(tc, endpoint_connect_missing_socket_fails_fast);
	suite_add_tcase(s, tc);

	tc = tcase_create("spawn");
	tcase_add_test(tc, spawn_child_gets_only_its_descriptors);
	tcase_add_test(tc, spawn_child_gets_only_its_environment);
	tcase_add_test(tc, spawn_child_gets_its_umask);
	tcase_add_test(tc, spawn_exec_failure_is_reported_at_once);
	tcase_add_test(tc, spawn_user_lookup_grows_its_buffer);
	tcase_add_test(tc, spawn_child_gets_its_rlimits);
	tcase_add_test(tc, spawn_child_never_runs_the_parents_handlers);
	tcase_add_test(tc, format_time_is_rfc3339_utc_ms);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(util_suite());
}

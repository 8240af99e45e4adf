/*
 * limits.c: the resource limits of a supervised process.
 *
 * One table names each limit, its grammar and its range, so that
 * `limit_memory = 256MiB` in a pool, `--limit-memory 256MiB` of `patchbay
 * ctl spawn` and the "limit_memory" argument of the ADMIN spawn verb are
 * read by the same function and refused with the same sentence. The
 * setrlimit() limits become part of a spawn plan here (limits_plan()),
 * checked against this process's own hard limits before anything is
 * forked; the cgroup ones are the broker's business (broker/cgroup.c).
 */
#include <sys/resource.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util/util.h"

/* How a limit's value is written. */
enum limits_grammar {
	LIMITS_SIZE,		/* parse_size(): bytes */
	LIMITS_SECONDS,		/* parse_duration(), whole seconds */
	LIMITS_COUNT,		/* parse_uint() */
	LIMITS_PERCENT,		/* parse_percent() */
};

/* One limit: its key, grammar, range and rlimit resource (-1: none). */
static const struct {
	const char		*name;
	enum limits_grammar	 grammar;
	uint64_t		 min, max;	/* in the stored unit */
	int			 resource;
} limits_table[LIMITS__MAX] = {
	[LIMITS_MEMORY] = { "limit_memory", LIMITS_SIZE,
	    LIMIT_PROC_MEMORY_MIN, LIMIT_PROC_MEMORY_MAX, RLIMIT_AS },
	[LIMITS_CPU] = { "limit_cpu", LIMITS_SECONDS, 1,
	    LIMIT_PROC_CPU_MAX_S, RLIMIT_CPU },
	[LIMITS_NOFILE] = { "limit_nofile", LIMITS_COUNT,
	    LIMIT_PROC_NOFILE_MIN, LIMIT_PROC_NOFILE_MAX, RLIMIT_NOFILE },
	[LIMITS_NPROC] = { "limit_nproc", LIMITS_COUNT, 1,
	    LIMIT_PROC_PIDS_MAX, RLIMIT_NPROC },
	[LIMITS_CORE] = { "limit_core", LIMITS_SIZE, 0,
	    LIMIT_PROC_CORE_MAX, RLIMIT_CORE },
	[LIMITS_MEMORY_MAX] = { "memory_max", LIMITS_SIZE,
	    LIMIT_PROC_MEMORY_MIN, LIMIT_PROC_MEMORY_MAX, -1 },
	[LIMITS_CPU_MAX] = { "cpu_max", LIMITS_PERCENT, 1,
	    LIMIT_PROC_CPU_PCT_MAX, -1 },
	[LIMITS_PIDS_MAX] = { "pids_max", LIMITS_COUNT, 1,
	    LIMIT_PROC_PIDS_MAX, -1 },
};

/* The key's name; NULL when out of range. */
const char *
limits_name(enum limits_key key)
{
	if ((unsigned)key >= LIMITS__MAX)
		return NULL;
	return limits_table[key].name;
}

/* The key called name, or -1. */
int
limits_find(const char *name)
{
	for (int k = 0; k < LIMITS__MAX; k++)
		if (strcmp(limits_table[k].name, name) == 0)
			return k;
	return -1;
}

/* Parses value for key into l; see util.h. */
int
limits_parse(struct limits *l, enum limits_key key, const char *value,
    char *err)
{
	uint64_t	v, ms, max_ms;
	char		lo[32], hi[32];
	int		r;

	if ((unsigned)key >= LIMITS__MAX) {
		snprintf(err, UTIL_ERRLEN, "no such limit");
		return -EINVAL;
	}
	switch (limits_table[key].grammar) {
	case LIMITS_SIZE:
		r = parse_size(value, limits_table[key].min,
		    limits_table[key].max, &v, err);
		break;
	case LIMITS_SECONDS:
		max_ms = limits_table[key].max * 1000;
		r = parse_duration(value, limits_table[key].min * 1000,
		    max_ms, &ms, err);
		if (r == 0 && ms % 1000 != 0) {
			format_duration(limits_table[key].min * 1000, lo,
			    sizeof(lo));
			format_duration(max_ms, hi, sizeof(hi));
			snprintf(err, UTIL_ERRLEN, "expected whole seconds "
			    "from %s to %s, such as 10s, 5m or 1h (got '%s')",
			    lo, hi, value);
			r = -EINVAL;
		}
		v = ms / 1000;
		break;
	case LIMITS_PERCENT:
		r = parse_percent(value, limits_table[key].min,
		    limits_table[key].max, &v, err);
		break;
	case LIMITS_COUNT:
	default:
		r = parse_uint(value, limits_table[key].min,
		    limits_table[key].max, &v, err);
		break;
	}
	if (r != 0)
		return r;
	l->value[key] = v;
	l->set |= 1u << key;
	return 0;
}

/* Writes a value of key (in its stored unit) as it is parsed. */
static void
limits_format_value(enum limits_key key, uint64_t v, char *buf, size_t len)
{
	switch (limits_table[key].grammar) {
	case LIMITS_SIZE:
		format_size(v, buf, len);
		break;
	case LIMITS_SECONDS:
		format_duration(v * 1000, buf, len);
		break;
	case LIMITS_PERCENT:
		snprintf(buf, len, "%" PRIu64 "%%", v);
		break;
	case LIMITS_COUNT:
	default:
		snprintf(buf, len, "%" PRIu64, v);
		break;
	}
}

/* Writes key's value in l; see util.h. */
void
limits_format(const struct limits *l, enum limits_key key, char *buf,
    size_t len)
{
	limits_format_value(key, l->value[key], buf, len);
}

/* Writes "NAME VALUE"; see util.h. */
void
limits_describe(const struct limits *l, enum limits_key key, char *buf,
    size_t len)
{
	char	v[32];

	limits_format(l, key, v, sizeof(v));
	snprintf(buf, len, "%s %s", limits_table[key].name, v);
}

/* True when a and b hold the same limits. */
bool
limits_equal(const struct limits *a, const struct limits *b)
{
	if (a->set != b->set)
		return false;
	for (int k = 0; k < LIMITS__MAX; k++)
		if ((a->set & (1u << k)) && a->value[k] != b->value[k])
			return false;
	return true;
}

/* Adds l's rlimits to plan, checked against our own; see util.h. */
int
limits_plan(const struct limits *l, bool privileged, struct spawn_plan *plan,
    char *err)
{
	struct spawn_rlimit	*r;
	struct rlimit		 own;
	uint64_t		 soft, hard;
	char			 want[32], have[32];

	for (int k = 0; k < LIMITS_NRLIMITS; k++) {
		if (!limits_has(l, (enum limits_key)k))
			continue;
		soft = hard = l->value[k];
		if (k == LIMITS_CPU)
			hard = soft + LIMITS_CPU_GRACE_S;
		if (!privileged && getrlimit(limits_table[k].resource,
		    &own) == 0 && own.rlim_max != RLIM_INFINITY &&
		    hard > (uint64_t)own.rlim_max) {
			/* The grace after SIGXCPU is ours to shorten. */
			if (k == LIMITS_CPU && soft <= (uint64_t)own.rlim_max)
				hard = (uint64_t)own.rlim_max;
			else {
				limits_format(l, (enum limits_key)k, want,
				    sizeof(want));
				limits_format_value((enum limits_key)k,
				    (uint64_t)own.rlim_max, have, sizeof(have));
				snprintf(err, UTIL_ERRLEN, "%s %s is above the "
				    "hard limit of %s (%s), which only root "
				    "can raise", limits_table[k].name, want,
				    program_invocation_short_name, have);
				return -EPERM;
			}
		}
		if (plan->nrlimits == SPAWN_MAX_RLIMITS) {
			snprintf(err, UTIL_ERRLEN, "too many limits");
			return -E2BIG;
		}
		r = &plan->rlimits[plan->nrlimits++];
		r->resource = limits_table[k].resource;
		r->soft = soft;
		r->hard = hard;
		r->name = limits_table[k].name;
	}
	return 0;
}

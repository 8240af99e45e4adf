/*
 * parse.c: the one grammar for values written by people.
 *
 * Flags, config keys, ADMIN arguments and CLI options all come through
 * here, so "10s" means the same thing to `patchbayd --heartbeat`, to
 * `heartbeat =` in the config file, to `patchbay ctl stop --timeout` and to
 * `patchbay run --timeout`. Each parser checks the whole string (no
 * blanks, no trailing junk), the range the caller gives, and writes a
 * sentence "expected ... (got '...')" that the caller prefixes with the
 * name of the option or key.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/util.h"

/* One unit of a duration or a size. */
struct parse_unit {
	const char	*suffix;
	uint64_t	 mult;
};

static const struct parse_unit parse_duration_units[] = {
	{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
	{ "h", 3600 * 1000 }, { "d", 24 * 3600 * 1000 }, { NULL, 0 },
};

static const struct parse_unit parse_size_units[] = {
	{ "", 1 }, { "KiB", 1024 }, { "MiB", 1024 * 1024 },
	{ "GiB", 1024 * 1024 * 1024 }, { NULL, 0 },
};

/*
 * Reads the leading digits of s into *ret and points *end past them.
 * Returns 0, -EINVAL when s does not start with a digit, or -ERANGE when
 * the digits do not fit 64 bits (*end is still past them, so that the
 * caller can tell "too large" from "not a number").
 */
static int
parse_digits(const char *s, uint64_t *ret, const char **end)
{
	uint64_t	n = 0;
	int		r = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			r = -ERANGE;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*ret = n;
	*end = s;
	return r;
}

/* Parses a whole number in [min, max]; see util.h. */
int
parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
    char *err)
{
	const char	*end;
	uint64_t	 n;
	int		 r;

	if ((r = parse_digits(s, &n, &end)) == 0 && *end != '\0')
		r = -EINVAL;
	if (r == 0 && (n < min || n > max))
		r = -ERANGE;
	if (r != 0) {
		snprintf(err, UTIL_ERRLEN, "expected an integer from %"
		    PRIu64 " to %" PRIu64 " (got '%s')", min, max, s);
		return r;
	}
	*ret = n;
	return 0;
}

/* Parses a signed whole number in [min, max]; see util.h. */
int
parse_int(const char *s, int64_t min, int64_t max, int64_t *ret, char *err)
{
	const char	*end, *digits = s;
	uint64_t	 n;
	int64_t		 v = 0;
	bool		 neg = false;
	int		 r;

	if (*digits == '-' || *digits == '+')
		neg = *digits++ == '-';
	if ((r = parse_digits(digits, &n, &end)) == 0 && *end != '\0')
		r = -EINVAL;
	if (r == 0 && n > (uint64_t)INT64_MAX + neg)
		r = -ERANGE;
	if (r == 0) {
		/* -(INT64_MAX + 1) without overflowing on the way. */
		v = neg ? -(int64_t)(n - 1) - 1 : (int64_t)n;
		if (v < min || v > max)
			r = -ERANGE;
	}
	if (r != 0) {
		snprintf(err, UTIL_ERRLEN, "expected an integer from %"
		    PRId64 " to %" PRId64 " (got '%s')", min, max, s);
		return r;
	}
	*ret = v;
	return 0;
}

/* A kind of value with units: its table, its name and how to write it. */
struct parse_kind {
	const struct parse_unit	*units;
	const char		*name;		/* "duration" */
	const char		*examples;	/* "such as ..., a bare ..." */
	void			(*format)(uint64_t, char *, size_t);
};

static const struct parse_kind parse_duration_kind = {
	parse_duration_units, "duration", "such as 250ms, 10s, 5m, 2h or 1d, "
	"a bare number being milliseconds", format_duration,
};

static const struct parse_kind parse_size_kind = {
	parse_size_units, "size", "such as 64KiB, 16MiB or 1GiB, a bare number "
	"being bytes", format_size,
};

/*
 * Parses digits and a unit of kind (the first unit, "", is the bare
 * number) into *ret, in [min, max]. Returns 0, or -EINVAL for a bad
 * spelling or -ERANGE for an overflow or a value outside the range, with
 * the sentence in err.
 */
static int
parse_with_units(const char *s, const struct parse_kind *kind, uint64_t min,
    uint64_t max, uint64_t *ret, char *err)
{
	const struct parse_unit	*u;
	const char		*end = s;
	char			 lo[32], hi[32];
	uint64_t		 n;
	int			 r;

	if ((r = parse_digits(s, &n, &end)) == -EINVAL)
		goto bad;
	for (u = kind->units; u->suffix != NULL; u++) {
		if (strcmp(end, u->suffix) != 0)
			continue;
		if (r == 0 && n <= UINT64_MAX / u->mult && n * u->mult >= min &&
		    n * u->mult <= max) {
			*ret = n * u->mult;
			return 0;
		}
		kind->format(min, lo, sizeof(lo));
		kind->format(max, hi, sizeof(hi));
		snprintf(err, UTIL_ERRLEN, "expected a %s from %s to %s (got "
		    "'%s')", kind->name, lo, hi, s);
		return -ERANGE;
	}
bad:
	snprintf(err, UTIL_ERRLEN, "expected a %s %s (got '%s')", kind->name,
	    kind->examples, s);
	return -EINVAL;
}

/*
 * Reads exactly n digits at *p into *ret and moves past them; false when
 * they are not all digits.
 */
static bool
parse_ndigits(const char **p, int n, int *ret)
{
	int	v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

/* Parses a point in time; see util.h. */
int
parse_time(const char *s, uint64_t *ret_ms, char *err)
{
	static const char	*const want = "expected a time with its zone, "
				    "as 2026-12-24T18:00Z or "
				    "2026-12-24T18:00:30+01:00, or @SECONDS";
	struct tm		 tm;
	const char		*p = s;
	int			 y, mo, d, h, mi, sec = 0, ms = 0, zh = 0, zm = 0;
	int			 sign = 0, digits;
	uint64_t		 secs;
	time_t			 t;

	if (*p == '@') {
		if (parse_uint(p + 1, 0, UINT64_MAX / 1000, &secs, err) != 0)
			return -EINVAL;
		*ret_ms = secs * 1000;
		return 0;
	}
	if (!parse_ndigits(&p, 4, &y) || *p++ != '-' ||
	    !parse_ndigits(&p, 2, &mo) || *p++ != '-' ||
	    !parse_ndigits(&p, 2, &d))
		goto bad;
	if (*p != 'T' && *p != 't' && *p != ' ')
		goto bad;
	p++;
	if (!parse_ndigits(&p, 2, &h) || *p++ != ':' ||
	    !parse_ndigits(&p, 2, &mi))
		goto bad;
	if (*p == ':') {
		p++;
		if (!parse_ndigits(&p, 2, &sec))
			goto bad;
		if (*p == '.') {
			for (p++, digits = 0; isdigit((unsigned char)*p);
			    p++, digits++)
				if (digits < 3)
					ms = ms * 10 + (*p - '0');
			if (digits == 0)
				goto bad;
			for (; digits < 3; digits++)
				ms *= 10;
		}
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (!parse_ndigits(&p, 2, &zh))
			goto bad;
		if (*p == ':')
			p++;
		if (!parse_ndigits(&p, 2, &zm))
			goto bad;
	} else {
		snprintf(err, UTIL_ERRLEN, "'%s' has no time zone: add Z for "
		    "UTC, or +HH:MM", s);
		return -EINVAL;
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || zh > 23 || zm > 59 || y < 1970)
		goto bad;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1 || tm.tm_mday != d)
		goto bad;
	t -= sign * (zh * 3600 + zm * 60);
	if (t < 0)
		goto bad;
	*ret_ms = (uint64_t)t * 1000 + (uint64_t)ms;
	return 0;
bad:
	snprintf(err, UTIL_ERRLEN, "%s (got '%s')", want, s);
	return -EINVAL;
}

/* Parses a duration; see util.h. */
int
parse_duration(const char *s, uint64_t min_ms, uint64_t max_ms,
    uint64_t *ret_ms, char *err)
{
	return parse_with_units(s, &parse_duration_kind, min_ms, max_ms,
	    ret_ms, err);
}

/* Parses a size; see util.h. */
int
parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
    char *err)
{
	return parse_with_units(s, &parse_size_kind, min, max, ret, err);
}

/* Parses a percentage ("50%"); see util.h. */
int
parse_percent(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
    char *err)
{
	const char	*end;
	uint64_t	 n;
	int		 r;

	if ((r = parse_digits(s, &n, &end)) == 0 && strcmp(end, "%") != 0)
		r = -EINVAL;
	else if (r == -ERANGE && strcmp(end, "%") != 0)
		r = -EINVAL;
	if (r == -EINVAL) {
		snprintf(err, UTIL_ERRLEN, "expected a percentage such as 50%% "
		    "or 200%% (got '%s')", s);
		return r;
	}
	if (r != 0 || n < min || n > max) {
		snprintf(err, UTIL_ERRLEN, "expected a percentage from %" PRIu64
		    "%% to %" PRIu64 "%% (got '%s')", min, max, s);
		return -ERANGE;
	}
	*ret = n;
	return 0;
}

/* Parses a boolean; see util.h. */
int
parse_bool(const char *s, bool *ret, char *err)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	snprintf(err, UTIL_ERRLEN, "expected yes or no (got '%s')", s);
	return -EINVAL;
}

/* Parses a restart policy; see util.h. */
int
parse_restart(const char *s, enum restart_policy *ret, char *err)
{
	static const enum restart_policy all[] = {
		RESTART_ALWAYS, RESTART_ON_FAILURE, RESTART_NEVER,
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, format_restart(all[i])) == 0) {
			*ret = all[i];
			return 0;
		}
	}
	snprintf(err, UTIL_ERRLEN, "expected always, on-failure or never "
	    "(got '%s')", s);
	return -EINVAL;
}

/* The signals a process may be stopped with, by their short names. */
static const struct {
	const char	*name;
	int		 sig;
} parse_signals[] = {
	{ "HUP", SIGHUP },
	{ "INT", SIGINT },
	{ "QUIT", SIGQUIT },
	{ "ABRT", SIGABRT },
	{ "KILL", SIGKILL },
	{ "USR1", SIGUSR1 },
	{ "USR2", SIGUSR2 },
	{ "ALRM", SIGALRM },
	{ "TERM", SIGTERM },
	{ "WINCH", SIGWINCH },
};

#define PARSE_NSIGNALS	(sizeof(parse_signals) / sizeof(parse_signals[0]))

/* Parses a signal name; see util.h. */
int
parse_signal(const char *s, int *ret, char *err)
{
	const char	*name = s;

	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < PARSE_NSIGNALS; i++) {
		if (strcasecmp(name, parse_signals[i].name) == 0) {
			*ret = parse_signals[i].sig;
			return 0;
		}
	}
	snprintf(err, UTIL_ERRLEN, "expected a signal name such as TERM, INT, "
	    "QUIT, HUP, USR1 or KILL (got '%s')", s);
	return -EINVAL;
}

/* The short name of a signal parse_signal() knows, or NULL. */
const char *
format_signal(int sig)
{
	for (size_t i = 0; i < PARSE_NSIGNALS; i++)
		if (parse_signals[i].sig == sig)
			return parse_signals[i].name;
	return NULL;
}

/* True when s is a usable pool name or spawn id. */
bool
parse_name_valid(const char *s)
{
	size_t	len = strlen(s);

	if (len == 0 || len > LIMIT_NAME_MAX)
		return false;
	for (; *s != '\0'; s++) {
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '-' && *s != '_' &&
		    *s != '.')
			return false;
	}
	return true;
}

/* Parses an octal file mode; see util.h. */
int
parse_mode(const char *s, unsigned *ret, char *err)
{
	unsigned	v = 0;
	size_t		n = strlen(s);

	if (n < 3 || n > 4 || (n == 4 && s[0] != '0'))
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			goto bad;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	*ret = v;
	return 0;
bad:
	snprintf(err, UTIL_ERRLEN, "expected an octal mode such as 0660, at "
	    "most 0777 (got '%s')", s);
	return -EINVAL;
}

/* Parses a group name or number; see util.h. */
int
parse_group(const char *s, unsigned *ret, char *err)
{
	struct group	 gr, *res = NULL;
	char		 buf[4096];
	uint64_t	 n;
	char		 why[UTIL_ERRLEN];

	if (*s == '\0') {
		snprintf(err, UTIL_ERRLEN, "expected a group name or number "
		    "(got '')");
		return -EINVAL;
	}
	if (s[0] >= '0' && s[0] <= '9') {
		if (parse_uint(s, 0, UINT32_MAX - 1, &n, why) != 0) {
			snprintf(err, UTIL_ERRLEN, "expected a group name or "
			    "number (got '%s')", s);
			return -EINVAL;
		}
		*ret = (unsigned)n;
		return 0;
	}
	if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
		snprintf(err, UTIL_ERRLEN, "no group '%s'", s);
		return -EINVAL;
	}
	*ret = (unsigned)res->gr_gid;
	return 0;
}

/* Parses a list of user or group names or numbers; see util.h. */
int
parse_ids(const char *s, bool groups, struct id_list *ret, char *err)
{
	struct id_list	 l = { 0, { 0 } };
	struct passwd	 pw, *pres;
	char		 buf[4096], one[256], why[UTIL_ERRLEN];
	const char	*p = s, *end;
	size_t		 len;
	uint64_t	 n;

	for (;;) {
		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		end = p + strcspn(p, ", \t");
		len = (size_t)(end - p);
		if (len >= sizeof(one) || l.n == ID_LIST_MAX) {
			snprintf(err, UTIL_ERRLEN, "expected at most %d %s "
			    "(got '%s')", ID_LIST_MAX, groups ? "groups" :
			    "users", s);
			return -EINVAL;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		p = end;
		if (groups) {
			if (parse_group(one, &l.id[l.n], err) != 0)
				return -EINVAL;
		} else if (one[0] >= '0' && one[0] <= '9') {
			if (parse_uint(one, 0, UINT32_MAX - 1, &n, why) != 0) {
				snprintf(err, UTIL_ERRLEN, "expected a user name "
				    "or number (got '%s')", one);
				return -EINVAL;
			}
			l.id[l.n] = (unsigned)n;
		} else {
			pres = NULL;
			if (getpwnam_r(one, &pw, buf, sizeof(buf), &pres) != 0 ||
			    pres == NULL) {
				snprintf(err, UTIL_ERRLEN, "no user '%s'", one);
				return -EINVAL;
			}
			l.id[l.n] = (unsigned)pres->pw_uid;
		}
		l.n++;
	}
	if (l.n == 0) {
		snprintf(err, UTIL_ERRLEN, "expected %s names or numbers (got "
		    "'%s')", groups ? "group" : "user", s);
		return -EINVAL;
	}
	*ret = l;
	return 0;
}

/* True when id is in l. */
bool
id_list_has(const struct id_list *l, unsigned id)
{
	for (unsigned i = 0; i < l->n; i++)
		if (l->id[i] == id)
			return true;
	return false;
}

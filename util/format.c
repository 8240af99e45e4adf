/*
 * format.c: values written back for config files, for people and for logs.
 *
 * format_duration() and format_size() are exact: parse_duration() and
 * parse_size() read their output back to the same number. The human form
 * rounds to two units for tables ("3m12s"). format_escape() makes text
 * that came from a peer (a HELLO name, a function name, an error string)
 * safe to put in a log line: it can never start a new line or carry a
 * terminal escape sequence.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "util/util.h"

#define MS_SECOND	((uint64_t)1000)
#define MS_MINUTE	(60 * MS_SECOND)
#define MS_HOUR		(60 * MS_MINUTE)
#define MS_DAY		(24 * MS_HOUR)

/* Writes ms as the shortest exact duration. */
void
format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % MS_DAY == 0)
		snprintf(buf, len, "%" PRIu64 "d", ms / MS_DAY);
	else if (ms % MS_HOUR == 0)
		snprintf(buf, len, "%" PRIu64 "h", ms / MS_HOUR);
	else if (ms % MS_MINUTE == 0)
		snprintf(buf, len, "%" PRIu64 "m", ms / MS_MINUTE);
	else if (ms % MS_SECOND == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / MS_SECOND);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/* Writes ms for people, at most two units, rounded down. */
void
format_duration_human(uint64_t ms, char *buf, size_t len)
{
	if (ms < MS_SECOND)
		snprintf(buf, len, "%" PRIu64 "ms", ms);
	else if (ms < MS_MINUTE)
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "s", ms / MS_SECOND,
		    ms % MS_SECOND / 100);
	else if (ms < MS_HOUR)
		snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", ms / MS_MINUTE,
		    ms % MS_MINUTE / MS_SECOND);
	else if (ms < MS_DAY)
		snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", ms / MS_HOUR,
		    ms % MS_HOUR / MS_MINUTE);
	else
		snprintf(buf, len, "%" PRIu64 "d%" PRIu64 "h", ms / MS_DAY,
		    ms % MS_DAY / MS_HOUR);
}

/* Writes a size as the shortest exact form. */
void
format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "GiB", "MiB", "KiB" };
	uint64_t		 mult = 1024ULL * 1024 * 1024;

	for (size_t i = 0; i < 3; i++, mult /= 1024) {
		if (bytes != 0 && bytes % mult == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", bytes / mult,
			    units[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, bytes);
}

/* A size for people; see util.h. */
void
format_size_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	uint64_t		 div = 1024;
	size_t			 i;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 "B", bytes);
		return;
	}
	for (i = 0; i < 3 && bytes / div >= 1024; i++)
		div *= 1024;
	if (bytes / div >= 100 || bytes % div == 0)
		snprintf(buf, len, "%" PRIu64 "%s", bytes / div, units[i]);
	else
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%s", bytes / div,
		    bytes % div * 10 / div, units[i]);
}

/* RFC 3339 in UTC with milliseconds; see util.h. */
void
format_time(uint64_t wall_ms, char *buf, size_t len)
{
	time_t		t = (time_t)(wall_ms / 1000);
	struct tm	tm;

	if (gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000));
}

/* The name of a restart policy. */
const char *
format_restart(enum restart_policy r)
{
	switch (r) {
	case RESTART_ALWAYS:
		return "always";
	case RESTART_ON_FAILURE:
		return "on-failure";
	case RESTART_NEVER:
		return "never";
	}
	return "?";
}

/* Writes the escaped form of byte c into esc (5 bytes); returns its length. */
static size_t
format_escape_byte(unsigned char c, char *esc)
{
	switch (c) {
	case '\\':
		return (size_t)snprintf(esc, 5, "\\\\");
	case '\n':
		return (size_t)snprintf(esc, 5, "\\n");
	case '\r':
		return (size_t)snprintf(esc, 5, "\\r");
	case '\t':
		return (size_t)snprintf(esc, 5, "\\t");
	}
	if (c < 0x20 || c >= 0x7f)
		return (size_t)snprintf(esc, 5, "\\x%02x", c);
	esc[0] = (char)c;
	esc[1] = '\0';
	return 1;
}

/* Escapes untrusted text for one log line; see util.h. */
char *
format_escape(const void *s, size_t n, char *buf, size_t len)
{
	const unsigned char	*p = s;
	char			 esc[5];
	size_t			 o = 0, total = 0, room, elen;

	if (len == 0)
		return buf;
	for (size_t i = 0; i < n; i++)
		total += format_escape_byte(p[i], esc);
	/* When it does not all fit, keep room for "...". */
	room = total < len ? len - 1 : (len > 4 ? len - 4 : 0);
	for (size_t i = 0; i < n; i++) {
		elen = format_escape_byte(p[i], esc);
		if (o + elen > room)
			break;
		memcpy(buf + o, esc, elen);
		o += elen;
	}
	if (total >= len && len > 4) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

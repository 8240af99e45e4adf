/*
 * log.c: leveled logging to stderr.
 *
 * Each line is "patchbayd: LEVEL: message" so that journald and a tail -f
 * both read well; the level names match --log-level.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

static enum log_level	log_level = LOG_LEVEL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

/* Sets the level; messages above it are dropped. */
void
log_set_level(enum log_level level)
{
	log_level = level;
}

/* Returns the current level. */
enum log_level
log_get_level(void)
{
	return log_level;
}

/* Parses a level name; -1 when unknown. */
int
log_level_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(name, log_names[i]) == 0)
			return (int)i;
	return -1;
}

/* The name of a level. */
const char *
log_level_name(enum log_level level)
{
	return log_names[level];
}

/* Writes one line at level, with strerror(saved) appended when saved >= 0. */
static void
log_vwrite(enum log_level level, int saved, const char *fmt, va_list ap)
{
	char	buf[4096];

	if (level > log_level)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (saved >= 0)
		fprintf(stderr, "patchbayd: %s: %s: %s\n", log_names[level], buf,
		    strerror(saved));
	else
		fprintf(stderr, "patchbayd: %s: %s\n", log_names[level], buf);
}

#define LOG_FN(name, level, witherr)					\
void									\
name(const char *fmt, ...)						\
{									\
	int	saved = errno;						\
	va_list	ap;							\
									\
	va_start(ap, fmt);						\
	log_vwrite(level, witherr ? saved : -1, fmt, ap);		\
	va_end(ap);							\
	errno = saved;							\
}

/* A warning with strerror(errno) appended. */
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
/* A warning. */
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
/* Normal operational information. */
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
/* Detail for debugging. */
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)
/* An error the broker survives. */
LOG_FN(log_error, LOG_LEVEL_ERROR, 0)

/* Logs with strerror(errno) and exits 1: startup failures only. */
void
fatal(const char *fmt, ...)
{
	int	saved = errno;
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Logs and exits 1: startup failures and broken invariants only. */
void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, -1, fmt, ap);
	va_end(ap);
	exit(1);
}

/*
 * log.h: the broker's logging (OpenBSD log.c style), to stderr with levels.
 *
 * Messages are lowercase and start with their object ("conn 12 (unix, uid
 * 1000): frame too large"). log_warn appends strerror(errno); fatal and
 * fatalx exit(1) and are for startup and broken invariants only.
 */
#ifndef PATCHBAY_LOG_H
#define PATCHBAY_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Sets the level; messages above it are dropped. */
void	 log_set_level(enum log_level level);
enum log_level	 log_get_level(void);
/* Parses "error", "warn", "info", "debug"; -1 when unknown. */
int	 log_level_from_name(const char *name);
const char	*log_level_name(enum log_level level);

void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 log_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif /* PATCHBAY_LOG_H */

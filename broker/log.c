/*
 * log.c: leveled logging to stderr, a log file or the journal, and the
 * files of pools' output.
 *
 * Each line is "TIME LEVEL patchbayd: message", TIME being ISO 8601 UTC
 * with milliseconds (2026-12-01T18:03:04.123Z) and LEVEL one of the names
 * --log-level takes, so that a file, a terminal and grep all read well.
 * Under systemd, when stderr is the journal's stream ($JOURNAL_STREAM names
 * its device and inode), the journal stamps each line itself: the time is
 * left out and replaced by the sd-daemon priority prefix ("<6>info
 * patchbayd: message"), which journald turns into the entry's priority.
 *
 * Lines go to stderr until log_open() names a file (log_file, --log-file);
 * log_reopen() opens that path again for logrotate (SIGUSR1). Every line
 * is one write(2) to a descriptor opened with O_APPEND, so that lines are
 * never interleaved or lost between a rename and the reopen.
 *
 * struct log_file is the same for a pool's stdout_log: a path, a
 * descriptor, timestamped lines, reopened on SIGUSR1 as well.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker.h"

#define LOG_LINE_MAX	8192	/* bytes of one line, prefix included */

/* The level in force; read by log_get_level() inline. */
enum log_level		log_threshold = LOG_LEVEL_INFO;
static int		log_fd = STDERR_FILENO;
static char		*log_path;	/* NULL: stderr */
static int		log_journal = -1; /* -1: not checked yet */

static const char *const log_names[] = { "error", "warn", "info", "debug" };
/* sd-daemon(3) priorities of the levels: LOG_ERR, LOG_WARNING, ... */
static const char *const log_prio[] = { "<3>", "<4>", "<6>", "<7>" };

/* A file of lines, for a pool's stdout_log; owned by whoever opened it. */
struct log_file {
	char	*path;
	int	 fd;
};

/* Sets the level; messages above it are dropped. */
void
log_set_level(enum log_level level)
{
	log_threshold = level;
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

/* Writes now as ISO 8601 UTC with milliseconds; see broker.h. */
void
log_timestamp(char *buf, size_t len)
{
	struct timespec	ts;
	struct tm	tm;
	char		secs[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03ldZ", secs, ts.tv_nsec / 1000000);
}

/*
 * True when fd is the stream $JOURNAL_STREAM names ("DEV:INODE", as
 * systemd.exec(5) describes): then the journal reads it.
 */
static bool
log_fd_is_journal(int fd)
{
	const char		*env = getenv("JOURNAL_STREAM");
	unsigned long long	 dev, ino;
	struct stat		 st;
	char			 end;

	if (env == NULL || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return false;
	if (fstat(fd, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/* True when lines go to the journal; see broker.h. */
bool
log_to_journal(void)
{
	if (log_journal == -1)
		log_journal = log_path == NULL &&
		    log_fd_is_journal(STDERR_FILENO);
	return log_journal == 1;
}

/* Writes all of buf to fd, retrying short writes and EINTR. */
static void
log_write_all(int fd, const char *buf, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* nowhere left to say it */
		buf += n;
		len -= (size_t)n;
	}
}

/* Opens path for appending lines; the descriptor, or -errno. */
static int
log_open_fd(const char *path)
{
	int	fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
	    0640);
	return fd == -1 ? -errno : fd;
}

/* Sends lines to path (NULL: stderr); see broker.h. */
int
log_open(const char *path)
{
	char	*copy = NULL;
	int	 fd = STDERR_FILENO;

	if (path != NULL) {
		if ((copy = strdup(path)) == NULL)
			return -ENOMEM;
		if ((fd = log_open_fd(path)) < 0) {
			free(copy);
			return fd;
		}
	}
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	free(log_path);
	log_fd = fd;
	log_path = copy;
	log_journal = -1;
	return 0;
}

/* Opens the log file again at its path; see broker.h. */
int
log_reopen(void)
{
	int	fd;

	if (log_path == NULL)
		return 0;
	if ((fd = log_open_fd(log_path)) < 0)
		return fd;
	close(log_fd);
	log_fd = fd;
	return 0;
}

/* The log file's path, or NULL for stderr. */
const char *
log_get_path(void)
{
	return log_path;
}

/* Closes the log file; later lines go to stderr. */
void
log_close(void)
{
	log_open(NULL);
}

/*
 * Writes one line at level, with strerror(saved) appended when saved >= 0:
 * the time (or the journal's priority), the level, the program, the text.
 */
static void
log_vwrite(enum log_level level, int saved, const char *fmt, va_list ap)
{
	char	msg[LOG_LINE_MAX - 256], head[64], stamp[40];
	char	buf[LOG_LINE_MAX];
	int	n;

	if (level > log_threshold)
		return;
	if (log_to_journal())
		snprintf(head, sizeof(head), "%s%s", log_prio[level],
		    log_names[level]);
	else {
		log_timestamp(stamp, sizeof(stamp));
		snprintf(head, sizeof(head), "%s %s", stamp, log_names[level]);
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = snprintf(buf, sizeof(buf), "%s patchbayd: %s%s%s\n", head, msg,
	    saved >= 0 ? ": " : "", saved >= 0 ? strerror(saved) : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		n = (int)sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	log_write_all(log_fd, buf, (size_t)n);
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

/* Files of lines (pools' stdout_log). */

/* Opens path for appending timestamped lines; see broker.h. */
int
log_file_open(const char *path, struct log_file **ret)
{
	struct log_file	*lf;
	int		 fd;

	if ((lf = calloc(1, sizeof(*lf))) == NULL ||
	    (lf->path = strdup(path)) == NULL) {
		free(lf);
		return -ENOMEM;
	}
	if ((fd = log_open_fd(path)) < 0) {
		free(lf->path);
		free(lf);
		return fd;
	}
	lf->fd = fd;
	*ret = lf;
	return 0;
}

/* Opens lf's path again, keeping the old file on failure; see broker.h. */
int
log_file_reopen(struct log_file *lf)
{
	int	fd;

	if ((fd = log_open_fd(lf->path)) < 0)
		return fd;
	close(lf->fd);
	lf->fd = fd;
	return 0;
}

/* The path lf was opened with. */
const char *
log_file_path(const struct log_file *lf)
{
	return lf->path;
}

/* Appends "TIME tag: text" to lf as one line; see broker.h. */
void
log_file_line(struct log_file *lf, const char *tag, const char *text)
{
	char	stamp[64], buf[LOG_LINE_MAX];
	int	n;

	log_timestamp(stamp, sizeof(stamp));
	n = snprintf(buf, sizeof(buf), "%s %s: %s\n", stamp, tag, text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		n = (int)sizeof(buf) - 1;
		buf[n - 1] = '\n';
	}
	log_write_all(lf->fd, buf, (size_t)n);
}

/* Closes and frees lf. NULL is a no-op. */
void
log_file_free(struct log_file *lf)
{
	if (lf == NULL)
		return;
	close(lf->fd);
	free(lf->path);
	free(lf);
}

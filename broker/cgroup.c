/*
 * cgroup.c: the cgroup v2 subtree that holds each pool's processes.
 *
 * A pool's memory_max, cpu_max and pids_max are cgroup v2 limits: they
 * hold the pool's whole process tree, which setrlimit() cannot. patchbayd
 * applies them when it runs in a cgroup it may write (under systemd, a
 * unit with Delegate=yes). It finds its own cgroup in /proc/self/cgroup
 * ("0::/PATH") under the cgroup2 mount of /proc/self/mountinfo
 * (/sys/fs/cgroup, or /sys/fs/cgroup/unified in a hybrid setup), checks
 * that the controllers it needs are offered there, and enables them for
 * its children. cgroup v2 does not let a cgroup that holds processes give
 * controllers to its children (the no-internal-processes rule), so
 * patchbayd first moves itself, and the children it may already have,
 * into a leaf of its cgroup, OWN/broker. Each pool then has OWN/pool-NAME,
 * with its limits in memory.max, cpu.max and pids.max; a child joins it
 * between fork and execve through the cgroup.procs opened here (see
 * util/spawn.c), and the oom_kill counter of its memory.events tells
 * whether the OOM killer acted. A pool's cgroup is removed with the pool.
 *
 * Nothing here logs: a failure is a negative errno and a sentence saying
 * why the limits cannot be applied, which the supervisor logs once per
 * pool.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"

#define CGROUP_PERIOD_US	100000	/* cpu.max's period: 100 ms */
#define CGROUP_FILE_MAX		4096	/* bytes read from a cgroup file */

/* The broker's delegated cgroup; owned by the supervisor. */
struct cgroup_root {
	char		*mount;		/* where cgroup2 is mounted */
	char		*path;		/* the broker's cgroup, absolute */
	unsigned	 enabled;	/* LIMITS_* bits whose controller is
					   in path's cgroup.subtree_control */
};

/* The controller of each cgroup limit. */
static const struct {
	enum limits_key	 key;
	const char	*controller;
	const char	*file;
} cgroup_controllers[] = {
	{ LIMITS_MEMORY_MAX, "memory", "memory.max" },
	{ LIMITS_CPU_MAX, "cpu", "cpu.max" },
	{ LIMITS_PIDS_MAX, "pids", "pids.max" },
};

#define CGROUP_NCONTROLLERS \
	(sizeof(cgroup_controllers) / sizeof(cgroup_controllers[0]))

/* Sets *cause from a printf format. */
static void __attribute__((format(printf, 2, 3)))
cgroup_cause(char **cause, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	if (vasprintf(cause, fmt, ap) == -1)
		*cause = NULL;
	va_end(ap);
}

/* Reads a small file into buf (NUL-terminated); 0 or a negative errno. */
static int
cgroup_read(const char *path, char *buf, size_t len)
{
	ssize_t	n;
	size_t	got = 0;
	int	fd, error = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -errno;
	while (got < len - 1) {
		n = read(fd, buf + got, len - 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			error = -errno;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return error;
}

/* Writes s to a cgroup file in one write(); 0 or a negative errno. */
static int
cgroup_write(const char *path, const char *s)
{
	ssize_t	n;
	int	fd, error = 0;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -errno;
	do
		n = write(fd, s, strlen(s));
	while (n == -1 && errno == EINTR);
	if (n == -1)
		error = -errno;
	else if ((size_t)n != strlen(s))
		error = -EIO;
	close(fd);
	return error;
}

/* True when word is one of the blank-separated words of list. */
static bool
cgroup_has_word(const char *list, const char *word)
{
	size_t	len = strlen(word), n;

	for (const char *s = list; *s != '\0'; s += n) {
		s += strspn(s, " \t\n");
		n = strcspn(s, " \t\n");
		if (n == len && strncmp(s, word, len) == 0)
			return true;
	}
	return false;
}

/* Undoes mountinfo's octal escapes (\040 for a blank) in place. */
static void
cgroup_unescape(char *s)
{
	char	*d = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
			    (s[3] - '0'));
			s += 3;
		} else
			*d++ = *s;
	}
	*d = '\0';
}

/*
 * Finds the first cgroup2 mount in mountinfo: its mount point and the
 * root of the hierarchy it shows. 0, -ENOENT (none) or -ENOMEM.
 */
static int
cgroup_find_mount(FILE *f, char **ret_mount, char **ret_root)
{
	char	*line = NULL, *sep, *field[5], *save, *s;
	size_t	 size = 0;
	int	 i, error = -ENOENT;

	while (getline(&line, &size, f) != -1) {
		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - FSTYPE ..." */
		if ((sep = strstr(line, " - ")) == NULL ||
		    strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		*sep = '\0';
		s = line;
		for (i = 0; i < 5; i++, s = NULL)
			if ((field[i] = strtok_r(s, " ", &save)) == NULL)
				break;
		if (i < 5)
			continue;
		cgroup_unescape(field[3]);
		cgroup_unescape(field[4]);
		*ret_mount = strdup(field[4]);
		*ret_root = strdup(field[3]);
		error = 0;
		if (*ret_mount == NULL || *ret_root == NULL) {
			free(*ret_mount);
			free(*ret_root);
			*ret_mount = *ret_root = NULL;
			error = -ENOMEM;
		}
		break;
	}
	free(line);
	return error;
}

/* Finds "0::PATH" in a /proc/PID/cgroup file. 0, -ENOENT or -ENOMEM. */
static int
cgroup_find_own(FILE *f, char **ret)
{
	char	*line = NULL, *s;
	size_t	 size = 0;
	ssize_t	 n;
	int	 error = -ENOENT;

	while ((n = getline(&line, &size, f)) != -1) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		if (n > 0 && line[n - 1] == '\n')
			line[n - 1] = '\0';
		s = line + 3;
		/* A cgroup removed under us; not one to write to. */
		if (strstr(s, " (deleted)") != NULL)
			break;
		error = (*ret = strdup(s)) == NULL ? -ENOMEM : 0;
		break;
	}
	free(line);
	return error;
}

/* Finds the broker's cgroup v2 directory; see broker.h. */
int
cgroup_root_open(const char *mountinfo, const char *self,
    struct cgroup_root **ret, char **cause)
{
	struct cgroup_root	*root;
	FILE			*f;
	char			*mount = NULL, *mroot = NULL, *own = NULL;
	const char		*rel;
	size_t			 len;
	int			 error;

	if ((f = fopen(mountinfo, "re")) == NULL) {
		error = -errno;
		cgroup_cause(cause, "cannot read %s: %s", mountinfo,
		    strerror(-error));
		return error;
	}
	error = cgroup_find_mount(f, &mount, &mroot);
	fclose(f);
	if (error == -ENOENT) {
		cgroup_cause(cause, "no cgroup v2 hierarchy is mounted (no "
		    "cgroup2 file system in %s)", mountinfo);
		return error;
	}
	if (error != 0)
		goto nomem;

	if ((f = fopen(self, "re")) == NULL) {
		error = -errno;
		cgroup_cause(cause, "cannot read %s: %s", self,
		    strerror(-error));
		goto fail;
	}
	error = cgroup_find_own(f, &own);
	fclose(f);
	if (error == -ENOENT) {
		cgroup_cause(cause, "patchbayd is in no cgroup v2 (no '0::' "
		    "line in %s)", self);
		goto fail;
	}
	if (error != 0)
		goto nomem;

	/* own is seen from the namespace root; the mount shows mroot. */
	len = strlen(mroot);
	if (strcmp(mroot, "/") == 0)
		rel = own;
	else if (strncmp(own, mroot, len) == 0 &&
	    (own[len] == '/' || own[len] == '\0'))
		rel = own + len;
	else {
		cgroup_cause(cause, "its cgroup %s is not under the cgroup2 "
		    "mount at %s (which shows %s)", own, mount, mroot);
		error = -ENOENT;
		goto fail;
	}
	if ((root = calloc(1, sizeof(*root))) == NULL)
		goto nomem;
	root->mount = mount;
	if (asprintf(&root->path, "%s%s", mount, strcmp(rel, "/") == 0 ? "" :
	    rel) == -1) {
		free(root);
		goto nomem;
	}
	free(mroot);
	free(own);
	*ret = root;
	return 0;

nomem:
	error = -ENOMEM;
	cgroup_cause(cause, "out of memory");
fail:
	free(mount);
	free(mroot);
	free(own);
	return error;
}

/* Frees a root; NULL is a no-op. */
void
cgroup_root_free(struct cgroup_root *root)
{
	if (root == NULL)
		return;
	free(root->mount);
	free(root->path);
	free(root);
}

/* The broker's cgroup directory. */
const char *
cgroup_root_path(const struct cgroup_root *root)
{
	return root->path;
}

/* The parent pid of pid from /proc, or -1. */
static pid_t
cgroup_ppid(pid_t pid)
{
	char	path[64], buf[512], *paren;
	int	ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (cgroup_read(path, buf, sizeof(buf)) != 0 ||
	    (paren = strrchr(buf, ')')) == NULL ||
	    sscanf(paren + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/*
 * Moves patchbayd and its own children from the root's cgroup into the
 * leaf OWN/broker, so that the root's cgroup holds no process. Returns 0
 * or a negative errno (of the move of patchbayd itself).
 */
static int
cgroup_move_to_leaf(struct cgroup_root *root)
{
	char	path[PATH_MAX], procs[PATH_MAX], buf[CGROUP_FILE_MAX];
	char	pid[32], *s, *end;
	pid_t	self = getpid();
	long	n;
	int	error;

	snprintf(path, sizeof(path), "%s/broker", root->path);
	if (mkdir(path, 0755) == -1 && errno != EEXIST)
		return -errno;
	snprintf(procs, sizeof(procs), "%s/broker/cgroup.procs", root->path);
	if ((error = cgroup_write(procs, "0")) != 0)
		return error;
	snprintf(path, sizeof(path), "%s/cgroup.procs", root->path);
	if (cgroup_read(path, buf, sizeof(buf)) != 0)
		return 0;
	for (s = buf; *s != '\0'; s = end) {
		n = strtol(s, &end, 10);
		if (end == s)
			break;
		if (n > 0 && cgroup_ppid((pid_t)n) == self) {
			snprintf(pid, sizeof(pid), "%ld", n);
			cgroup_write(procs, pid);	/* it may be gone */
		}
	}
	return 0;
}

/* Enables the controllers of need for the root's children; broker.h. */
int
cgroup_root_enable(struct cgroup_root *root, unsigned need, char **cause)
{
	char	path[PATH_MAX], offered[CGROUP_FILE_MAX], enabled[CGROUP_FILE_MAX];
	char	add[64] = "";
	size_t	i;
	int	error;

	need &= LIMITS_CGROUP_MASK;
	if ((need & ~root->enabled) == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/cgroup.controllers", root->path);
	if ((error = cgroup_read(path, offered, sizeof(offered))) != 0) {
		cgroup_cause(cause, "cannot read %s: %s", path,
		    strerror(-error));
		return error;
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", root->path);
	if ((error = cgroup_read(path, enabled, sizeof(enabled))) != 0) {
		cgroup_cause(cause, "cannot read %s: %s", path,
		    strerror(-error));
		return error;
	}
	for (i = 0; i < CGROUP_NCONTROLLERS; i++) {
		const char	*c = cgroup_controllers[i].controller;

		if (!(need & (1u << cgroup_controllers[i].key)))
			continue;
		if (!cgroup_has_word(offered, c)) {
			offered[strcspn(offered, "\n")] = '\0';
			cgroup_cause(cause, "the cgroup v2 hierarchy at %s "
			    "offers no %s controller to %s (it offers: %s)%s",
			    root->mount, c, root->path, offered[0] != '\0' ?
			    offered : "none", strstr(root->mount,
			    "unified") != NULL ? "; in this hybrid setup cgroup "
			    "v1 holds it" : "");
			return -ENOTSUP;
		}
		if (!cgroup_has_word(enabled, c)) {
			strcat(add, add[0] != '\0' ? " +" : "+");
			strcat(add, c);
		}
	}
	if (add[0] != '\0') {
		error = cgroup_write(path, add);
		/* The no-internal-processes rule: move to a leaf first. */
		if (error == -EBUSY && (error = cgroup_move_to_leaf(root)) == 0)
			error = cgroup_write(path, add);
		if (error == -EBUSY) {
			cgroup_cause(cause, "%s holds processes that are not "
			    "patchbayd's, so it cannot give controllers to its "
			    "children: run patchbayd in a cgroup of its own "
			    "(systemd: Delegate=yes)", root->path);
			return error;
		}
		if (error == -EACCES || error == -EPERM || error == -EROFS) {
			cgroup_cause(cause, "%s is not writable by patchbayd "
			    "(uid %u: %s): run it in a cgroup delegated to it "
			    "(systemd: Delegate=yes)", root->path,
			    (unsigned)geteuid(), strerror(-error));
			return error;
		}
		if (error != 0) {
			cgroup_cause(cause, "cannot write '%s' to %s: %s", add,
			    path, strerror(-error));
			return error;
		}
	}
	root->enabled |= need;
	return 0;
}

/* Writes the path of the pool's cgroup (or a file in it) into buf. */
static void
cgroup_pool_path(const struct cgroup_root *root, const char *pool,
    const char *file, char *buf, size_t len)
{
	snprintf(buf, len, "%s/pool-%s%s%s", root->path, pool,
	    file != NULL ? "/" : "", file != NULL ? file : "");
}

/* Creates the pool's cgroup and writes its limits; see broker.h. */
int
cgroup_pool_apply(struct cgroup_root *root, const char *pool,
    const struct limits *l, char **cause)
{
	char	path[PATH_MAX], value[64];
	size_t	i;
	int	error;

	cgroup_pool_path(root, pool, NULL, path, sizeof(path));
	if (mkdir(path, 0755) == -1 && errno != EEXIST) {
		error = -errno;
		cgroup_cause(cause, "cannot create the cgroup %s: %s", path,
		    strerror(errno));
		return error;
	}
	for (i = 0; i < CGROUP_NCONTROLLERS; i++) {
		enum limits_key	key = cgroup_controllers[i].key;
		bool		has = limits_has(l, key);

		/* A controller not enabled has no file (and no limit). */
		if (!(root->enabled & (1u << key)))
			continue;
		if (key == LIMITS_CPU_MAX && has)
			snprintf(value, sizeof(value), "%" PRIu64 " %d",
			    l->value[key] * (CGROUP_PERIOD_US / 100),
			    CGROUP_PERIOD_US);
		else if (key == LIMITS_CPU_MAX)
			snprintf(value, sizeof(value), "max %d",
			    CGROUP_PERIOD_US);
		else if (has)
			snprintf(value, sizeof(value), "%" PRIu64,
			    l->value[key]);
		else
			snprintf(value, sizeof(value), "max");
		cgroup_pool_path(root, pool, cgroup_controllers[i].file, path,
		    sizeof(path));
		if ((error = cgroup_write(path, value)) != 0) {
			cgroup_cause(cause, "cannot write '%s' to %s: %s",
			    value, path, strerror(-error));
			return error;
		}
	}
	return 0;
}

/* Opens the pool's cgroup.procs for a child to join; see broker.h. */
int
cgroup_pool_open_procs(const struct cgroup_root *root, const char *pool,
    int *ret_fd, char **cause)
{
	char	path[PATH_MAX];
	int	fd, error;

	cgroup_pool_path(root, pool, "cgroup.procs", path, sizeof(path));
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		error = -errno;
		cgroup_cause(cause, "cannot open %s: %s", path,
		    strerror(errno));
		return error;
	}
	*ret_fd = fd;
	return 0;
}

/* The oom_kill counter of the pool's memory.events; see broker.h. */
uint64_t
cgroup_pool_oom_kills(const struct cgroup_root *root, const char *pool)
{
	char		path[PATH_MAX], buf[CGROUP_FILE_MAX], *s;
	uint64_t	n = 0;

	cgroup_pool_path(root, pool, "memory.events", path, sizeof(path));
	if (cgroup_read(path, buf, sizeof(buf)) != 0)
		return 0;
	for (s = buf; s != NULL && *s != '\0'; s = strchr(s, '\n')) {
		s += strspn(s, "\n");
		if (strncmp(s, "oom_kill ", 9) == 0) {
			n = strtoull(s + 9, NULL, 10);
			break;
		}
	}
	return n;
}

/* Removes the pool's cgroup; see broker.h. */
int
cgroup_pool_remove(const struct cgroup_root *root, const char *pool)
{
	char	path[PATH_MAX];

	cgroup_pool_path(root, pool, NULL, path, sizeof(path));
	if (rmdir(path) == -1 && errno != ENOENT)
		return -errno;
	return 0;
}

/*
 * spawn.c: starting a child process safely, for the broker's supervisor
 * and for `patchbay worker --exec`.
 *
 * A caller fills a struct spawn_plan before fork: the program, argv, a
 * whole environment (built here with spawn_env_*, never with setenv in the
 * child), the directory, the user, which of its own descriptors become the
 * child's 0, 1, 2, ..., and whether the child gets a session or a process
 * group of its own. spawn_start() forks with every signal blocked; between
 * fork and execve the child makes only async-signal-safe calls and
 * allocates nothing: it resets the signal handlers and only then unblocks
 * signals (so no handler of the parent ever runs in it), asks the kernel
 * for SIGKILL when its parent dies (checking that the parent did not die
 * first), joins its cgroup (the plan holds cgroup.procs open), moves the
 * planned descriptors into place, closes every other one, sets its
 * rlimits (after the descriptors, which RLIMIT_NOFILE bounds, and before
 * the user, who could not raise them), sets its umask when the plan has
 * one, changes directory and user and executes. A close-on-exec pipe
 * carries {stage, errno} back when any step fails, so the parent knows at
 * once, before spawn_start() returns, whether execve happened, and can say
 * "cannot execute 'x': No such file or directory".
 *
 * Nothing here knows about event loops: reaping the child is the caller's
 * business (except for a child that failed before execve, which
 * spawn_start() reaps itself).
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

/* Bound on the getpwnam_r() buffer when it keeps saying ERANGE. */
#define SPAWN_PWBUF_MAX		(1024 * 1024)

/* What a child writes on its error pipe before it gives up. */
struct spawn_report {
	int	stage;
	int	error;
	int	index;		/* SPAWN_STAGE_RLIMIT: which one */
};

/* Environment. */

/* The index of NAME= in plan's environment, or -1. */
static ssize_t
spawn_env_find(const struct spawn_plan *plan, const char *name, size_t len)
{
	for (size_t i = 0; i < plan->nenv; i++)
		if (strncmp(plan->envp[i], name, len) == 0 &&
		    plan->envp[i][len] == '=')
			return (ssize_t)i;
	return -1;
}

/* Sets "NAME=VALUE" in the plan's environment, replacing NAME. */
int
spawn_env_set(struct spawn_plan *plan, const char *entry)
{
	size_t	  klen = strcspn(entry, "=");
	ssize_t	  i;
	char	 *copy;

	if (entry[klen] != '=' || klen == 0)
		return -EINVAL;
	if ((i = spawn_env_find(plan, entry, klen)) == -1)
		return strv_push(&plan->envp, &plan->nenv, entry);
	if ((copy = strdup(entry)) == NULL)
		return -ENOMEM;
	free(plan->envp[i]);
	plan->envp[i] = copy;
	return 0;
}

/* Sets NAME to a printf-formatted value in the plan's environment. */
int
spawn_env_setf(struct spawn_plan *plan, const char *name, const char *fmt,
    ...)
{
	char	*value, *entry;
	va_list	 ap;
	int	 error;

	va_start(ap, fmt);
	if (vasprintf(&value, fmt, ap) == -1) {
		va_end(ap);
		return -ENOMEM;
	}
	va_end(ap);
	if (asprintf(&entry, "%s=%s", name, value) == -1) {
		free(value);
		return -ENOMEM;
	}
	error = spawn_env_set(plan, entry);
	free(entry);
	free(value);
	return error;
}

/* Removes NAME from the plan's environment (absent is fine). */
void
spawn_env_unset(struct spawn_plan *plan, const char *name)
{
	ssize_t	i = spawn_env_find(plan, name, strlen(name));

	if (i == -1)
		return;
	free(plan->envp[i]);
	memmove(&plan->envp[i], &plan->envp[i + 1],
	    (plan->nenv - (size_t)i) * sizeof(*plan->envp));
	plan->nenv--;
}

/* The value of NAME in the plan's environment, or NULL. */
const char *
spawn_env_get(const struct spawn_plan *plan, const char *name)
{
	size_t	len = strlen(name);
	ssize_t	i = spawn_env_find(plan, name, len);

	return i == -1 ? NULL : plan->envp[i] + len + 1;
}

/* Copies every entry of env (NULL-terminated) into the plan's. */
int
spawn_env_copy(struct spawn_plan *plan, char *const *env)
{
	int	error;

	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		if (strchr(env[i], '=') != NULL &&
		    (error = spawn_env_set(plan, env[i])) != 0)
			return error;
	return 0;
}

/* Programs and users. */

/* Finds name in the directories of path; 0, -ENOENT, -EACCES, -ENOMEM. */
int
spawn_find_program(const char *name, const char *path, char **ret)
{
	const char	*dir = path, *end;
	char		*candidate;
	struct stat	 st;
	size_t		 len;
	int		 error = -ENOENT;

	if (strchr(name, '/') != NULL)
		return (*ret = strdup(name)) == NULL ? -ENOMEM : 0;
	for (;;) {
		end = strchrnul(dir, ':');
		len = (size_t)(end - dir);
		if (asprintf(&candidate, "%.*s%s%s", (int)len, dir,
		    len == 0 ? "" : "/", name) == -1)
			return -ENOMEM;
		if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(candidate, X_OK) == 0) {
				*ret = candidate;
				return 0;
			}
			error = -EACCES;
		}
		free(candidate);
		if (*end == '\0')
			break;
		dir = end + 1;
	}
	return error;
}

/* Fills u->groups with the supplementary groups of u; 0 or -ENOMEM. */
static int
spawn_user_groups(struct spawn_user *u)
{
	int	ngroups = 16, want;

	for (;;) {
		free(u->groups);
		if ((u->groups = calloc((size_t)ngroups,
		    sizeof(*u->groups))) == NULL)
			return -ENOMEM;
		want = ngroups;
		if (getgrouplist(u->name, u->gid, u->groups, &want) != -1) {
			u->ngroups = want;
			return 0;
		}
		ngroups = want > ngroups ? want : ngroups * 2;
	}
}

/* Looks a user up, growing the buffer from bufsize while it is short. */
int
spawn_user_lookup(const char *name, size_t bufsize, struct spawn_user *ret)
{
	struct spawn_user	 u;
	struct passwd		 pw, *pwp = NULL;
	char			*buf = NULL, *nbuf;
	size_t			 size = bufsize > 0 ? bufsize : 1;
	int			 error;

	for (;;) {
		if ((nbuf = realloc(buf, size)) == NULL) {
			free(buf);
			return -ENOMEM;
		}
		buf = nbuf;
		error = getpwnam_r(name, &pw, buf, size, &pwp);
		/* Short buffer: not an answer about the user. */
		if (error != ERANGE || size >= SPAWN_PWBUF_MAX)
			break;
		size *= 2;
	}
	if (pwp == NULL) {
		free(buf);
		/* getpwnam_r(3) lists these for "not found" too. */
		if (error == 0 || error == ENOENT || error == ESRCH ||
		    error == EBADF || error == EPERM)
			return -ENOENT;
		return -error;
	}
	memset(&u, 0, sizeof(u));
	u.uid = pw.pw_uid;
	u.gid = pw.pw_gid;
	u.name = strdup(pw.pw_name);
	u.home = strdup(pw.pw_dir);
	free(buf);
	if (u.name == NULL || u.home == NULL ||
	    (error = spawn_user_groups(&u)) != 0) {
		spawn_user_clear(&u);
		return -ENOMEM;
	}
	*ret = u;
	return 0;
}

/* Makes gid u's group and its supplementary groups those of u in gid. */
int
spawn_user_set_group(struct spawn_user *u, gid_t gid)
{
	u->gid = gid;
	return spawn_user_groups(u);
}

/* Frees what a looked-up user holds and zeroes it. */
void
spawn_user_clear(struct spawn_user *u)
{
	free(u->name);
	free(u->home);
	free(u->groups);
	memset(u, 0, sizeof(*u));
}

/* Plans. */

/* Frees what a plan owns and zeroes it. */
void
spawn_plan_clear(struct spawn_plan *plan)
{
	free(plan->path);
	strv_free(plan->envp);
	memset(plan, 0, sizeof(*plan));
}

/* Describes a failed spawn_start() as one sentence. */
void
spawn_error_text(const struct spawn_plan *plan, const struct spawn_error *e,
    const char *command, char *buf, size_t len)
{
	const char	*why = strerror(e->error);

	switch (e->stage) {
	case SPAWN_STAGE_CHDIR:
		snprintf(buf, len, "cannot change directory to '%s': %s",
		    plan->dir != NULL ? plan->dir : "?", why);
		break;
	case SPAWN_STAGE_USER:
		snprintf(buf, len, "cannot switch to user '%s': %s",
		    plan->user != NULL ? plan->user->name : "?", why);
		break;
	case SPAWN_STAGE_EXEC:
		snprintf(buf, len, "cannot execute '%s': %s",
		    plan->path != NULL ? plan->path : "?", why);
		break;
	case SPAWN_STAGE_FORK:
		snprintf(buf, len, "cannot start '%s': fork: %s", command, why);
		break;
	case SPAWN_STAGE_CGROUP:
		snprintf(buf, len, "cannot start '%s': cannot join its cgroup: "
		    "%s", command, why);
		break;
	case SPAWN_STAGE_RLIMIT:
		if (e->index >= 0 && e->index < plan->nrlimits)
			snprintf(buf, len, "cannot start '%s': cannot set %s: "
			    "%s", command, plan->rlimits[e->index].name, why);
		else
			snprintf(buf, len, "cannot start '%s': cannot set a "
			    "resource limit: %s", command, why);
		break;
	case SPAWN_STAGE_SETUP:
	default:
		snprintf(buf, len, "cannot start '%s': %s", command, why);
		break;
	}
}

/* The child. */

/* In the child: reports stage, index and errno, then exits. */
static void __attribute__((noreturn))
spawn_child_fail_at(int fd, enum spawn_stage stage, int index)
{
	struct spawn_report	r = { (int)stage, errno, index };
	ssize_t			n;

	do
		n = write(fd, &r, sizeof(r));
	while (n == -1 && errno == EINTR);
	_exit(127);
}

/* In the child: reports stage and errno to the parent, then exits. */
static void __attribute__((noreturn))
spawn_child_fail(int fd, enum spawn_stage stage)
{
	spawn_child_fail_at(fd, stage, -1);
}

/* In the child: closes every descriptor from first up. */
static void
spawn_child_closefrom(int first)
{
	long	max;

	if (close_range((unsigned)first, ~0U, 0) == 0)
		return;
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = first; fd < max; fd++)
		close(fd);
}

/*
 * The child between fork and execve: async-signal-safe calls only, no
 * allocation. The planned descriptors are first copied above nfds so that
 * the dup2s into 0..nfds-1 cannot clobber one another (and so that dup2
 * never meets a descriptor already in place, which would leave it
 * close-on-exec); the error pipe ends up at nfds, close-on-exec.
 */
static void __attribute__((noreturn))
spawn_child(const struct spawn_plan *plan, pid_t parent, int errw)
{
	struct sigaction	sa;
	sigset_t		none;
	struct rlimit		rl;
	int			moved[SPAWN_MAX_FDS], top = plan->nfds + 1;
	int			e;
	ssize_t			n;

	/* Every signal is blocked (spawn_start): no handler of ours can run. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if ((e = fcntl(errw, F_DUPFD_CLOEXEC, top)) == -1)
		_exit(127);
	if ((plan->flags & SPAWN_SESSION) && setsid() == -1)
		spawn_child_fail(e, SPAWN_STAGE_SETUP);
	if ((plan->flags & SPAWN_PROCESS_GROUP) && setpgid(0, 0) == -1)
		spawn_child_fail(e, SPAWN_STAGE_SETUP);
	if (plan->flags & SPAWN_DIE_WITH_PARENT) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
			spawn_child_fail(e, SPAWN_STAGE_SETUP);
		/* The parent may have died before prctl: then go now. */
		if (getppid() != parent)
			_exit(127);
	}
	/* "0" is the writer itself; before the user, who may not move. */
	if (plan->flags & SPAWN_CGROUP) {
		do
			n = write(plan->cgroup_fd, "0", 1);
		while (n == -1 && errno == EINTR);
		if (n != 1)
			spawn_child_fail(e, SPAWN_STAGE_CGROUP);
	}

	for (int i = 0; i < plan->nfds; i++)
		if ((moved[i] = fcntl(plan->fds[i], F_DUPFD, top)) == -1)
			spawn_child_fail(e, SPAWN_STAGE_SETUP);
	for (int i = 0; i < plan->nfds; i++)
		if (dup2(moved[i], i) == -1)
			spawn_child_fail(e, SPAWN_STAGE_SETUP);
	if (dup3(e, plan->nfds, O_CLOEXEC) == -1)
		spawn_child_fail(e, SPAWN_STAGE_SETUP);
	e = plan->nfds;
	spawn_child_closefrom(plan->nfds + 1);

	for (int i = 0; i < plan->nrlimits; i++) {
		rl.rlim_cur = (rlim_t)plan->rlimits[i].soft;
		rl.rlim_max = (rlim_t)plan->rlimits[i].hard;
		if (setrlimit(plan->rlimits[i].resource, &rl) == -1)
			spawn_child_fail_at(e, SPAWN_STAGE_RLIMIT, i);
	}
	/* umask() cannot fail; it holds across the user switch and execve. */
	if (plan->flags & SPAWN_UMASK)
		umask(plan->umask & 0777);

	if (plan->dir != NULL && chdir(plan->dir) == -1)
		spawn_child_fail(e, SPAWN_STAGE_CHDIR);
	if (plan->user != NULL) {
		if (setgroups((size_t)plan->user->ngroups,
		    plan->user->groups) == -1 ||
		    setgid(plan->user->gid) == -1 ||
		    setuid(plan->user->uid) == -1)
			spawn_child_fail(e, SPAWN_STAGE_USER);
	}
	execve(plan->path, plan->argv, plan->envp != NULL ? plan->envp :
	    (char *const[]){ NULL });
	spawn_child_fail(e, SPAWN_STAGE_EXEC);
}

/* Forks and executes a plan; see util.h. */
int
spawn_start(const struct spawn_plan *plan, struct spawn_error *err,
    pid_t *ret_pid)
{
	struct spawn_report	r;
	sigset_t		all, saved;
	int			ep[2], status, error;
	pid_t			pid, parent = getpid();
	ssize_t			n;
	size_t			got = 0;

	err->index = -1;
	if (plan->path == NULL || plan->argv == NULL || plan->nfds < 0 ||
	    plan->nfds > SPAWN_MAX_FDS || plan->nrlimits < 0 ||
	    plan->nrlimits > SPAWN_MAX_RLIMITS) {
		err->stage = SPAWN_STAGE_SETUP;
		err->error = EINVAL;
		return -EINVAL;
	}
	if (pipe2(ep, O_CLOEXEC) == -1) {
		err->stage = SPAWN_STAGE_SETUP;
		err->error = errno;
		return -errno;
	}
	/*
	 * Until it has reset them, the child has our signal handlers, and
	 * until setpgid it is in our process group: a signal meant for us
	 * (or for the group) would run our handler in the child, and
	 * libevent's handler would pass it on to our event loop as ours. So
	 * the child starts with every signal blocked and unblocks them only
	 * once the handlers are SIG_DFL.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &saved);
	if ((pid = fork()) == -1) {
		error = errno;
		sigprocmask(SIG_SETMASK, &saved, NULL);
		close(ep[0]);
		close(ep[1]);
		err->stage = SPAWN_STAGE_FORK;
		err->error = error;
		return -error;
	}
	if (pid == 0)
		spawn_child(plan, parent, ep[1]);
	sigprocmask(SIG_SETMASK, &saved, NULL);
	close(ep[1]);
	/* Both sides set the group, so no signal to it can come too early. */
	if (plan->flags & SPAWN_PROCESS_GROUP)
		setpgid(pid, pid);

	/* EOF: execve happened. A record: it did not, and why. */
	while (got < sizeof(r)) {
		n = read(ep[0], (char *)&r + got, sizeof(r) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(ep[0]);
	if (got == 0) {
		*ret_pid = pid;
		return 0;
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	if (got < sizeof(r) || r.error == 0) {
		r.stage = SPAWN_STAGE_SETUP;
		r.error = EIO;
		r.index = -1;
	}
	err->stage = (enum spawn_stage)r.stage;
	err->error = r.error;
	err->index = r.index;
	return -r.error;
}

/*
 * util.h: the small libc-only library that every other part links.
 *
 * It holds what the broker, the client library, the CLI and the tests must
 * agree on, so that each exists once:
 *
 * - limits.h-style constants: every limit that a daemon flag, a config key,
 *   an ADMIN argument or a CLI option can meet (LIMIT_*);
 * - parse.c: one grammar for whole numbers, durations, sizes, booleans,
 *   restart policies and signal names. A bare number is milliseconds for a
 *   duration and bytes for a size, wherever the value is written. Every
 *   parser fills an error sentence "expected ... (got '...')" that the
 *   caller prefixes with the option or key it was parsing;
 * - format.c: the inverse, for config round trips and for people
 *   ("3m12s"), and the escaping of untrusted text for log lines;
 * - strv.c: NULL-terminated string vectors and shell-like word splitting;
 * - endpoint.c: "unix:PATH" and "tcp:HOST:PORT" endpoints, the default
 *   socket path and connecting with a deadline;
 * - clock.c: the monotonic clock in milliseconds;
 * - timer.c: libevent timers that never fire early on the coarse clock;
 * - spawn.c: starting a child process (the broker's supervised processes,
 *   the CLI's job commands): a plan made before fork, an async-signal-safe
 *   child, and execve's failure reported at once;
 * - limits.c: the resource limits of a supervised process (limit_memory,
 *   cpu_max, ...): their names, grammars and ranges, and the setrlimit()
 *   part of a spawn plan.
 *
 * Nothing here logs, exits or keeps global state.
 */
#ifndef PATCHBAY_UTIL_H
#define PATCHBAY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Size of an error sentence written by the parsers. */
#define UTIL_ERRLEN			256

/*
 * Limits. Each is the one definition used by every place that accepts the
 * value: flags, config keys, ADMIN arguments and CLI options.
 */
#define LIMIT_DURATION_MAX_MS	(366ULL * 24 * 3600 * 1000) /* a year */
#define LIMIT_TIMEOUT_MAX_MS	UINT32_MAX	/* a job's timeout_ms */
#define LIMIT_HEARTBEAT_MIN_MS	10
#define LIMIT_HEARTBEAT_MAX_MS	(3600ULL * 1000)
#define LIMIT_HELLO_MIN_MS	10
#define LIMIT_HELLO_MAX_MS	(3600ULL * 1000)
#define LIMIT_HTTP_TIMEOUT_MIN_MS 100		/* http_timeout */
#define LIMIT_HTTP_TIMEOUT_MAX_MS (3600ULL * 1000)
#define LIMIT_NO_WORKER_WAIT_MAX_MS (24ULL * 3600 * 1000)
#define LIMIT_STOP_TIMEOUT_MAX_MS (24ULL * 3600 * 1000)
#define LIMIT_FRAME_MIN		4096		/* PROTO_MAX_FRAME_HELLO */
#define LIMIT_FRAME_MAX		(64ULL * 1024 * 1024)
#define LIMIT_QUEUE_MAX		100000000ULL	/* jobs per function */
#define LIMIT_OUTPUT_MAX	(1ULL << 30)	/* max_output */
#define LIMIT_CONNECTIONS_MAX	1000000		/* max_connections */
#define LIMIT_MEMORY_MAX	(1ULL << 40)	/* max_memory, max_queue_bytes */
#define LIMIT_INSTANCES_MAX	1024		/* per pool */
#define LIMIT_RESTARTS_MAX	10000		/* max_restarts */
#define LIMIT_HEALTH_RETRIES_MAX 1000		/* health_retries */
#define LIMIT_NAME_MAX		64		/* pool names, spawn ids */
#define LIMIT_CAPACITY_MAX	65535		/* PROTO_MAX_CAPACITY */
#define LIMIT_RETRIES_MAX	UINT32_MAX
#define LIMIT_PRIORITY_MIN	(-100)		/* PROTO_PRIORITY_MIN */
#define LIMIT_PRIORITY_MAX	100		/* PROTO_PRIORITY_MAX */
#define LIMIT_PROC_MEMORY_MIN	(1ULL << 20)	/* limit_memory, memory_max */
#define LIMIT_PROC_MEMORY_MAX	(1ULL << 46)	/* 64 TiB */
#define LIMIT_PROC_CORE_MAX	(1ULL << 46)	/* limit_core */
#define LIMIT_PROC_CPU_MAX_S	(366ULL * 24 * 3600) /* limit_cpu */
#define LIMIT_PROC_NOFILE_MIN	8		/* 0-3 are taken at start */
#define LIMIT_PROC_NOFILE_MAX	1048576		/* Linux's default nr_open */
#define LIMIT_PROC_PIDS_MAX	4194304		/* Linux's PID_MAX_LIMIT */
#define LIMIT_PROC_CPU_PCT_MAX	100000		/* cpu_max: 1000 CPUs */

/* parse.c */

/*
 * What a pool does when its process exits by itself. The names are
 * "always", "on-failure" and "never".
 */
enum restart_policy {
	RESTART_ALWAYS,
	RESTART_ON_FAILURE,
	RESTART_NEVER,
};

/*
 * Parses a whole decimal number in [min, max]: digits only, no sign, no
 * blanks. Returns 0 and sets *ret, or -EINVAL (not a number) or -ERANGE
 * (outside the range) with a sentence in err (UTIL_ERRLEN bytes):
 * "expected an integer from 1 to 1024 (got 'x')".
 */
int	 parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
	    char *err);

/* Like parse_uint() for a signed number (an optional '-' or '+'). */
int	 parse_int(const char *s, int64_t min, int64_t max, int64_t *ret,
	    char *err);

/*
 * Parses a duration into milliseconds: a whole number followed by ms, s,
 * m, h or d, or a bare number of milliseconds ("250ms", "10s", "5m", "2h",
 * "1d", "500"). Returns 0 and sets *ret_ms, or -EINVAL / -ERANGE with a sentence
 * in err.
 */
int	 parse_duration(const char *s, uint64_t min_ms, uint64_t max_ms,
	    uint64_t *ret_ms, char *err);

/*
 * Parses a size into bytes: a whole number followed by KiB, MiB or GiB, or
 * a bare number of bytes ("64KiB", "16MiB", "1GiB", "4096"). Same returns
 * as parse_duration().
 */
int	 parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *ret,
	    char *err);

/*
 * Parses a percentage: a whole number followed by '%' ("50%", "200%"), in
 * [min, max]. Same returns as parse_uint().
 */
int	 parse_percent(const char *s, uint64_t min, uint64_t max,
	    uint64_t *ret, char *err);

/*
 * Parses a point in time into Unix milliseconds: ISO 8601 with its zone,
 * "2026-12-24T18:00Z", "2026-12-24T18:00:30.250+01:00" (seconds and their
 * fraction optional, 'T' or a blank between date and time), or "@SECONDS"
 * since the epoch. A time without a zone is refused (whose 18:00?).
 * Returns 0 and sets *ret_ms, or -EINVAL with a sentence in err.
 */
int	 parse_time(const char *s, uint64_t *ret_ms, char *err);

/* Parses yes/no, true/false, on/off or 1/0. 0, or -EINVAL with err set. */
int	 parse_bool(const char *s, bool *ret, char *err);

/* Parses a restart policy name. 0, or -EINVAL with err set. */
int	 parse_restart(const char *s, enum restart_policy *ret, char *err);

/*
 * Parses a signal name that a process may be stopped with ("TERM",
 * "SIGTERM", "term"; HUP INT QUIT ABRT KILL USR1 USR2 ALRM TERM WINCH).
 * 0, or -EINVAL with err set.
 */
int	 parse_signal(const char *s, int *ret, char *err);

/*
 * Parses a file mode in octal, "0660" or "660", at most 0777 (no setuid,
 * setgid or sticky bit). 0 or -EINVAL with a sentence in err.
 */
int	 parse_mode(const char *s, unsigned *ret, char *err);

/*
 * Parses a group: a name from the group database, or a number. 0, or
 * -EINVAL with a sentence in err ("no group 'x'").
 */
int	 parse_group(const char *s, unsigned *ret, char *err);

#define ID_LIST_MAX	32

/* A list of user or group ids. Embedded by value, nothing to free. */
struct id_list {
	unsigned	 n;
	unsigned	 id[ID_LIST_MAX];
};

/*
 * Parses users (groups false) or groups: names or numbers separated by
 * commas or blanks, at most ID_LIST_MAX. 0, or -EINVAL with a sentence in
 * err naming the one that is not known.
 */
int	 parse_ids(const char *s, bool groups, struct id_list *ret, char *err);

/* True when id is in l. */
bool	 id_list_has(const struct id_list *l, unsigned id);

/* True when s is a usable pool name or spawn id: 1 to LIMIT_NAME_MAX of
 * letters, digits, '-', '_' and '.'. */
bool	 parse_name_valid(const char *s);

/* format.c */

/*
 * Writes ms as the shortest exact duration that parse_duration() reads
 * back ("100ms", "10s", "2m", "1h", "1d", "1500ms", "0").
 */
void	 format_duration(uint64_t ms, char *buf, size_t len);

/*
 * Writes ms for people, at most two units, rounded down: "450ms", "12.3s",
 * "3m12s", "2h5m", "3d4h".
 */
void	 format_duration_human(uint64_t ms, char *buf, size_t len);

/* Writes a size as the shortest exact form ("64KiB", "1GiB", "1000"). */
void	 format_size(uint64_t bytes, char *buf, size_t len);

/* Writes a size for people, rounded down: "900B", "512KiB", "12.3MiB". */
void	 format_size_human(uint64_t bytes, char *buf, size_t len);

/*
 * Writes a wall-clock time (ms since the epoch) as RFC 3339 in UTC with
 * milliseconds: "2026-12-01T18:03:04.123Z". len >= FORMAT_TIME_LEN.
 */
#define FORMAT_TIME_LEN	32
void	 format_time(uint64_t wall_ms, char *buf, size_t len);

/* The name of a policy: "always", "on-failure" or "never". */
const char	*format_restart(enum restart_policy r);

/* The short name of a signal parse_signal() knows ("TERM"), or NULL. */
const char	*format_signal(int sig);

/*
 * Copies the n bytes of untrusted text s into buf (len bytes, always
 * NUL-terminated) so that it is safe in one log line: backslash, control
 * characters and bytes >= 0x7f become \\, \n, \r, \t or \xHH; text that does
 * not fit ends in "...". Returns buf.
 */
char	*format_escape(const void *s, size_t n, char *buf, size_t len);

/* strv.c */

/* Frees a NULL-terminated vector of strings. NULL is a no-op. */
void	 strv_free(char **v);

/* The number of strings in a NULL-terminated vector (NULL: 0). */
size_t	 strv_len(char *const *v);

/* A deep copy of v (NULL-terminated); NULL on ENOMEM. */
char	**strv_dup(char *const *v);

/* True when a and b hold the same strings in the same order. */
bool	 strv_equal(char *const *a, char *const *b);

/*
 * Makes room in *v (an array of *cap elements of size bytes, n in use) for
 * one more: doubles it, 64 at first. 0 or -ENOMEM (*v unchanged).
 */
int	 array_grow(void *v, size_t *cap, size_t n, size_t size);

/*
 * Appends a copy of s to *v, which holds *n strings and a NULL (both may
 * start as NULL and 0). Returns 0 or -ENOMEM (v unchanged).
 */
int	 strv_push(char ***v, size_t *n, const char *s);

/*
 * Splits s into words: blanks separate words, '...' quotes literally,
 * "..." quotes with \" and \\ as escapes. Returns 0 and a NULL-terminated
 * malloc'ed vector, -EINVAL with a sentence in err ("unterminated double
 * quote"), or -ENOMEM.
 */
int	 strv_split(const char *s, char ***ret, char *err);

/* endpoint.c */

enum endpoint_kind {
	ENDPOINT_UNIX,
	ENDPOINT_TCP,
	ENDPOINT_TLS,		/* TCP carrying TLS */
};

/* A parsed endpoint. Embedded by value, nothing to free. */
struct endpoint {
	enum endpoint_kind	kind;
	char			path[108];	/* sun_path for unix */
	char			host[256];	/* tcp, tls: without brackets */
	char			port[8];
	char			text[384];	/* the canonical spelling */
};

/*
 * Parses "unix:PATH", "tcp:HOST:PORT", "tcp:[V6]:PORT" or the same with
 * "tls:" into *ret.
 * Returns 0, or -EINVAL with a sentence in err (UTIL_ERRLEN bytes) naming
 * what is wrong with s.
 */
int	 endpoint_parse(const char *s, struct endpoint *ret, char *err);

#define ENDPOINT_LIST_MAX	16	/* brokers in one list */

/*
 * Splits a list of endpoints, "A,B,..." (blanks around the commas are
 * ignored; one endpoint is a list of one), checking each with
 * endpoint_parse(). Returns 0 and a NULL-terminated malloc'ed vector of the
 * endpoints as written, -EINVAL with a sentence in err naming the bad entry
 * (an empty one, more than ENDPOINT_LIST_MAX, the same one twice, or what
 * endpoint_parse() says), or -ENOMEM.
 */
int	 endpoint_list_split(const char *s, char ***ret, char *err);

/*
 * Writes the default endpoint ("unix:" + path) into buf: $PATCHBAY_SOCKET,
 * else $XDG_RUNTIME_DIR/patchbay.sock, else /tmp/patchbay-$UID/patchbay.sock.
 * When use_broker_env is true, $PATCHBAY_BROKER (an endpoint or a list) wins over
 * all of them (the client side's rule). Returns 0 or -ENAMETOOLONG.
 */
int	 endpoint_default(char *buf, size_t len, bool use_broker_env);

/*
 * Connects a stream socket to ep, waiting at most timeout_ms (<= 0: 5000).
 * The returned descriptor is non-blocking and close-on-exec, with
 * TCP_NODELAY for TCP. Returns 0 and sets *ret_fd, or a negative errno
 * (-ETIMEDOUT, -ECONNREFUSED, -ENOENT, -EHOSTUNREACH when the host does not
 * resolve, ...).
 */
int	 endpoint_connect(const struct endpoint *ep, int timeout_ms,
	    int *ret_fd);

/* hash (inline: every hash table's hot path) */

/*
 * Hashes len bytes at key with a seed: each 8-byte word is folded in with
 * a multiply and a rotation, then murmur3's finalizer spreads every bit
 * into the low ones a table uses (ids made by one client often differ
 * only in their last bytes). Not cryptographic: with a secret seed a peer
 * cannot aim keys at one bucket without trying many.
 */
static inline uint32_t
hash_bytes(const void *key, size_t len, uint64_t seed)
{
	const uint8_t	*p = key;
	uint64_t	 h = seed ^ (len * 0x9e3779b97f4a7c15ull), v;

	for (; len >= 8; p += 8, len -= 8) {
		__builtin_memcpy(&v, p, 8);
		h = (h ^ v) * 0x9e3779b97f4a7c15ull;
		h = h << 31 | h >> 33;
	}
	for (v = 0; len > 0; len--)
		v = v << 8 | p[len - 1];
	h ^= v;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return (uint32_t)h;
}

/* clock.c */

/* The monotonic clock in milliseconds. */
uint64_t	 clock_now_ms(void);
/* The wall clock in milliseconds since the epoch. */
uint64_t	 clock_wall_ms(void);

/*
 * The wall-clock time of mono (a clock_now_ms() reading) given both clocks
 * read now: for timestamps kept on the cheap clock and shown to people.
 */
static inline uint64_t
clock_to_wall(uint64_t mono, uint64_t mono_now, uint64_t wall_now)
{
	uint64_t	ago = mono_now > mono ? mono_now - mono : 0;

	return wall_now > ago ? wall_now - ago : 0;
}

/* timer.c */

/*
 * Sets *tv to arm a libevent timer with so that it fires no sooner than ms
 * later by clock_now_ms(), on an event base without precise timers.
 */
struct timeval;
void		 clock_timer_tv(uint64_t ms, struct timeval *tv);

/* spawn.c */

#define SPAWN_MAX_FDS		8	/* descriptors a child is given */

/* How a child is set apart (flags of a struct spawn_plan). */
#define SPAWN_SESSION		0x1	/* setsid(): its own session and
					   process group */
#define SPAWN_PROCESS_GROUP	0x2	/* setpgid(): its own process group */
#define SPAWN_DIE_WITH_PARENT	0x4	/* SIGKILL when the parent dies */
#define SPAWN_CGROUP		0x8	/* join the cgroup of cgroup_fd */
#define SPAWN_UMASK		0x10	/* umask(umask); without it the
					   child keeps its parent's */

#define SPAWN_MAX_RLIMITS	8	/* setrlimit()s in one plan */

/* The step a child could not take, as reported by spawn_start(). */
enum spawn_stage {
	SPAWN_STAGE_SETUP,	/* pipes, session, descriptors */
	SPAWN_STAGE_FORK,
	SPAWN_STAGE_CHDIR,
	SPAWN_STAGE_USER,
	SPAWN_STAGE_EXEC,
	SPAWN_STAGE_CGROUP,	/* writing to cgroup_fd */
	SPAWN_STAGE_RLIMIT,	/* one of the plan's rlimits */
};

/* Why spawn_start() failed: the step, its errno and, for
 * SPAWN_STAGE_RLIMIT, the index of the limit in the plan. */
struct spawn_error {
	enum spawn_stage	 stage;
	int			 error;
	int			 index;
};

/* One setrlimit() of a plan, made before execve. */
struct spawn_rlimit {
	int			 resource;	/* RLIMIT_* */
	uint64_t		 soft;		/* RLIM_INFINITY or a value */
	uint64_t		 hard;
	const char		*name;		/* for messages ("limit_cpu");
						   borrowed, static */
};

/* A user to run a child as. Embedded; cleared by spawn_user_clear(). */
struct spawn_user {
	char		*name;
	char		*home;
	uid_t		 uid;
	gid_t		 gid;
	gid_t		*groups;		/* supplementary, with gid */
	int		 ngroups;
};

/*
 * Everything a child needs, prepared before fork so that nothing is
 * allocated between fork and execve. Embedded (zero it first); cleared by
 * spawn_plan_clear(), which frees path and envp only.
 */
struct spawn_plan {
	char			 *path;		/* the program; owned */
	char *const		 *argv;		/* borrowed */
	char			**envp;		/* the whole environment;
						   owned, from spawn_env_* */
	size_t			  nenv;
	const char		 *dir;		/* chdir there, or NULL */
	const struct spawn_user	 *user;		/* switch to it, or NULL */
	int			  fds[SPAWN_MAX_FDS];	/* fds[i] becomes the
							   child's i */
	int			  nfds;		/* every other one is closed */
	int			  flags;	/* SPAWN_* */
	int			  cgroup_fd;	/* with SPAWN_CGROUP: an open
						   cgroup.procs the child
						   writes itself into first */
	mode_t			  umask;	/* with SPAWN_UMASK */
	struct spawn_rlimit	  rlimits[SPAWN_MAX_RLIMITS];
	int			  nrlimits;	/* set after the descriptors
						   are in place, before the
						   user is switched */
};

/*
 * Sets "NAME=VALUE" in the plan's environment, replacing NAME. Returns 0,
 * -EINVAL (no '=') or -ENOMEM.
 */
int	 spawn_env_set(struct spawn_plan *plan, const char *entry);

/* Sets NAME to a printf-formatted value. 0 or -ENOMEM. */
int	 spawn_env_setf(struct spawn_plan *plan, const char *name,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Removes NAME from the plan's environment; absent is fine. */
void	 spawn_env_unset(struct spawn_plan *plan, const char *name);

/* The value of NAME in the plan's environment, or NULL. */
const char	*spawn_env_get(const struct spawn_plan *plan, const char *name);

/* Copies each "K=V" of env (NULL-terminated, e.g. environ). 0 or -ENOMEM. */
int	 spawn_env_copy(struct spawn_plan *plan, char *const *env);

/*
 * Finds the program name in path (colon-separated directories), as execvp
 * would; a name with a '/' is taken as it is. Returns 0 and a malloc'ed
 * path in *ret, -ENOENT, -EACCES (found, not executable) or -ENOMEM.
 */
int	 spawn_find_program(const char *name, const char *path, char **ret);

/*
 * Looks up user name with getpwnam_r(), starting with a buffer of bufsize
 * bytes and doubling it while the answer is ERANGE, and gets its groups.
 * Returns 0 and fills *ret, -ENOENT when there is no such user, -ENOMEM or
 * another negative errno from the lookup.
 */
int	 spawn_user_lookup(const char *name, size_t bufsize,
	    struct spawn_user *ret);

/*
 * Gives a looked-up user another group (a pool's group =): gid, and the
 * supplementary groups getgrouplist(3) gives the user with gid as its
 * group. 0 or -ENOMEM.
 */
int	 spawn_user_set_group(struct spawn_user *u, gid_t gid);

/* Frees what a looked-up user holds and zeroes it. */
void	 spawn_user_clear(struct spawn_user *u);

/* Frees what a plan owns (path, envp) and zeroes it. */
void	 spawn_plan_clear(struct spawn_plan *plan);

/*
 * Forks and runs plan: a session or group of its own as flagged, its
 * cgroup, the descriptors fds[0..nfds-1] as 0..nfds-1 and no other,
 * signals reset, the rlimits, the umask when flagged, then chdir, the
 * user, execve. Returns 0 with the child's pid once execve has happened,
 * or a negative errno with the failed step in *err (a child that failed is
 * reaped). The caller reaps the child.
 */
int	 spawn_start(const struct spawn_plan *plan, struct spawn_error *err,
	    pid_t *ret_pid);

/*
 * Writes one sentence about a failed spawn_start() into buf: "cannot
 * execute 'PATH': No such file or directory", "cannot change directory to
 * ...", "cannot switch to user ...", "cannot set limit_nofile to 64: ...",
 * "cannot join its cgroup: ..." or "cannot start 'COMMAND': ...".
 */
void	 spawn_error_text(const struct spawn_plan *plan,
	    const struct spawn_error *e, const char *command, char *buf,
	    size_t len);

/* limits.c */

/*
 * The resource limits a supervised process may be given, by their config
 * key. The first LIMITS_NRLIMITS are setrlimit() limits, set in the child
 * between fork and execve (limits_plan()); the others are cgroup v2 limits
 * of a whole pool, which the broker writes into its pool's cgroup.
 */
enum limits_key {
	LIMITS_MEMORY,		/* limit_memory: RLIMIT_AS, a size */
	LIMITS_CPU,		/* limit_cpu: RLIMIT_CPU, whole seconds */
	LIMITS_NOFILE,		/* limit_nofile: RLIMIT_NOFILE, a count */
	LIMITS_NPROC,		/* limit_nproc: RLIMIT_NPROC, a count */
	LIMITS_CORE,		/* limit_core: RLIMIT_CORE, a size */
	LIMITS_MEMORY_MAX,	/* memory_max: memory.max, a size */
	LIMITS_CPU_MAX,		/* cpu_max: cpu.max, a percentage of a CPU */
	LIMITS_PIDS_MAX,	/* pids_max: pids.max, a count */
	LIMITS__MAX,
};
#define LIMITS_NRLIMITS		(LIMITS_CORE + 1)
#define LIMITS_RLIMIT_MASK	((1u << LIMITS_NRLIMITS) - 1)
#define LIMITS_CGROUP_MASK	(((1u << LIMITS__MAX) - 1) & \
				    ~LIMITS_RLIMIT_MASK)

/* Seconds from limit_cpu's SIGXCPU to the SIGKILL of its hard limit. */
#define LIMITS_CPU_GRACE_S	5

/* A set of limits, embedded by value; all zero is none. */
struct limits {
	unsigned	set;			/* 1u << key for each given */
	uint64_t	value[LIMITS__MAX];	/* bytes, seconds, a count or
						   a percentage */
};

/* The key's name ("limit_memory", "cpu_max"); NULL when out of range. */
const char	*limits_name(enum limits_key key);

/* The key called name, or -1. */
int	 limits_find(const char *name);

/* True when l has key. */
static inline bool
limits_has(const struct limits *l, enum limits_key key)
{
	return (l->set & (1u << key)) != 0;
}

/*
 * Parses value by key's grammar and range into l (a size 1MiB to 64TiB for
 * limit_memory and memory_max, whole seconds for limit_cpu, a count for
 * limit_nofile, limit_nproc and pids_max, a size from 0 for limit_core, a
 * percentage for cpu_max). Returns 0, or -EINVAL / -ERANGE with a sentence
 * in err (l unchanged).
 */
int	 limits_parse(struct limits *l, enum limits_key key, const char *value,
	    char *err);

/* Writes key's value in l as limits_parse() reads it ("64MiB", "10s"). */
void	 limits_format(const struct limits *l, enum limits_key key, char *buf,
	    size_t len);

/* Writes "NAME VALUE" ("limit_cpu 10s"), for reports. */
void	 limits_describe(const struct limits *l, enum limits_key key,
	    char *buf, size_t len);

/* True when a and b hold the same limits. */
bool	 limits_equal(const struct limits *a, const struct limits *b);

/*
 * Adds l's setrlimit() limits to plan (limit_cpu: the soft limit sends
 * SIGXCPU, the hard one LIMITS_CPU_GRACE_S later SIGKILL). Unless
 * privileged, each is checked against this process's own hard limit, which
 * the child could not raise: returns -EPERM with a sentence in err
 * ("limit_nofile 100000 is above the hard limit of patchbayd (65536),
 * which only root can raise"). Returns 0, or -E2BIG when the plan is full.
 */
int	 limits_plan(const struct limits *l, bool privileged,
	    struct spawn_plan *plan, char *err);

#endif /* PATCHBAY_UTIL_H */

/*
 * names.c: the wire names of packet types, job statuses, ERROR codes,
 * HELLO roles and ADMIN verbs, and their inverses.
 *
 * Each enum of proto.h has one table here indexed by its value, so the name
 * of a value is an array lookup and the value of a name is a short scan that
 * compares lengths before bytes. The inverses take a length because names
 * arrive from the wire unterminated.
 */
#include <string.h>

#include "proto/proto.h"

static const char *const packet_type_names[PKT__MAX] = {
	[PKT_NONE] = NULL,
	[PKT_HELLO] = "HELLO",
	[PKT_WELCOME] = "WELCOME",
	[PKT_REGISTER] = "REGISTER",
	[PKT_RUN] = "RUN",
	[PKT_CANCEL] = "CANCEL",
	[PKT_PROGRESS] = "PROGRESS",
	[PKT_RESULT] = "RESULT",
	[PKT_PING] = "PING",
	[PKT_PONG] = "PONG",
	[PKT_BYE] = "BYE",
	[PKT_ADMIN] = "ADMIN",
	[PKT_REPLY] = "REPLY",
	[PKT_ERROR] = "ERROR",
};

static const char *const job_status_names[JOB__MAX] = {
	[JOB_OK] = "OK",
	[JOB_ERROR] = "ERROR",
	[JOB_CANCELLED] = "CANCELLED",
	[JOB_TIMEOUT] = "TIMEOUT",
	[JOB_WORKER_LOST] = "WORKER_LOST",
	[JOB_NO_WORKER] = "NO_WORKER",
	[JOB_QUEUE_FULL] = "QUEUE_FULL",
	[JOB_BAD_REQUEST] = "BAD_REQUEST",
	[JOB_DUPLICATE_ID] = "DUPLICATE_ID",
	[JOB_SHUTTING_DOWN] = "SHUTTING_DOWN",
};

static const char *const proto_error_names[PERR__MAX] = {
	[PERR_BAD_FRAME] = "BAD_FRAME",
	[PERR_FRAME_TOO_LARGE] = "FRAME_TOO_LARGE",
	[PERR_BAD_PACKET] = "BAD_PACKET",
	[PERR_UNSUPPORTED_VERSION] = "UNSUPPORTED_VERSION",
	[PERR_AUTH_FAILED] = "AUTH_FAILED",
	[PERR_NOT_ALLOWED] = "NOT_ALLOWED",
	[PERR_NOT_FOUND] = "NOT_FOUND",
	[PERR_TOO_MANY_CONNECTIONS] = "TOO_MANY_CONNECTIONS",
	[PERR_HELLO_TIMEOUT] = "HELLO_TIMEOUT",
	[PERR_SLOW_CONSUMER] = "SLOW_CONSUMER",
	[PERR_SHUTTING_DOWN] = "SHUTTING_DOWN",
};

static const char *const proto_role_names[] = {
	[ROLE_NONE] = NULL,
	[ROLE_CLIENT] = "client",
	[ROLE_WORKER] = "worker",
	[ROLE_ADMIN] = "admin",
};

#define NROLES (sizeof(proto_role_names) / sizeof(proto_role_names[0]))

/* The ADMIN verbs: the broker answers them, `patchbay ctl` sends them. */
static const struct {
	const char	*name;
	const char	*help;
} admin_verbs[VERB__MAX] = {
	[VERB_STATUS] = { "status", "the broker's counters, gauges and limits" },
	[VERB_WORKERS] = { "workers", "connected workers, local and remote" },
	[VERB_FUNCTIONS] = { "functions",
	    "known functions with their queues and capacity" },
	[VERB_PS] = { "ps", "supervised processes: pools and spawned" },
	[VERB_SPAWN] = { "spawn", "start a supervised worker process" },
	[VERB_STOP] = { "stop", "stop a supervised process or pool" },
	[VERB_RESTART] = { "restart", "restart a supervised process or pool" },
	[VERB_PAUSE] = { "pause",
	    "SIGSTOP a process or pool; no jobs are dispatched to it" },
	[VERB_RESUME] = { "resume", "SIGCONT it and dispatch to it again" },
	[VERB_SCALE] = { "scale", "run N instances of a pool" },
	[VERB_RELOAD] = { "reload", "re-read the configuration file" },
	[VERB_SHUTDOWN] = { "shutdown", "stop the broker gracefully" },
};

/* Returns the index of the name s[0..len) in table, or -1. */
static int
names_find(const char *const *table, size_t n, const char *s, size_t len)
{
	size_t	i;

	if (s == NULL || len == 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (table[i] != NULL && table[i][0] == s[0] &&
		    strlen(table[i]) == len && memcmp(table[i], s, len) == 0)
			return ((int)i);
	}
	return (-1);
}

/* Returns the wire name of a packet type, or NULL for PKT_NONE or junk. */
const char *
packet_type_name(enum packet_type type)
{
	if ((unsigned)type >= PKT__MAX)
		return (NULL);
	return (packet_type_names[type]);
}

/* Returns the wire name of a job status, or NULL when out of range. */
const char *
job_status_name(enum job_status status)
{
	if ((unsigned)status >= JOB__MAX)
		return (NULL);
	return (job_status_names[status]);
}

/* Returns the wire name of an ERROR code, or NULL when out of range. */
const char *
proto_error_name(enum proto_error code)
{
	if ((unsigned)code >= PERR__MAX)
		return (NULL);
	return (proto_error_names[code]);
}

/* Returns the wire name of a HELLO role, or NULL for ROLE_NONE or junk. */
const char *
proto_role_name(enum proto_role role)
{
	if ((unsigned)role >= NROLES)
		return (NULL);
	return (proto_role_names[role]);
}

/* Returns the job status called s[0..len), or -1. */
int
job_status_from_name(const char *s, size_t len)
{
	return (names_find(job_status_names, JOB__MAX, s, len));
}

/* Returns the HELLO role called s[0..len), or -1 (never ROLE_NONE). */
int
proto_role_from_name(const char *s, size_t len)
{
	return (names_find(proto_role_names, NROLES, s, len));
}

/* Returns the packet type called s[0..len), or -1 (never PKT_NONE). */
int
packet_type_from_name(const char *s, size_t len)
{
	return (names_find(packet_type_names, PKT__MAX, s, len));
}

/* Returns the name of an ADMIN verb, or NULL when out of range. */
const char *
admin_verb_name(enum admin_verb verb)
{
	if ((unsigned)verb >= VERB__MAX)
		return (NULL);
	return (admin_verbs[verb].name);
}

/* Returns what an ADMIN verb does, in one line, or NULL. */
const char *
admin_verb_help(enum admin_verb verb)
{
	if ((unsigned)verb >= VERB__MAX)
		return (NULL);
	return (admin_verbs[verb].help);
}

/* Returns the ADMIN verb called s[0..len), or -1. */
int
admin_verb_from_name(const char *s, size_t len)
{
	for (int i = 0; s != NULL && i < VERB__MAX; i++)
		if (strlen(admin_verbs[i].name) == len &&
		    memcmp(admin_verbs[i].name, s, len) == 0)
			return (i);
	return (-1);
}

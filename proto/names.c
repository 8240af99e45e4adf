/*
 * names.c: the wire names of packet types, job statuses, ERROR codes,
 * HELLO roles and ADMIN verbs, and their inverses.
 *
 * Each enum of proto.h has one table here indexed by its value, so the name
 * of a value is an array lookup and the value of a name is a short scan that
 * compares lengths before bytes. The inverses take a length because names
 * arrive from the wire unterminated. Each name is stored as it goes on the
 * wire, a MessagePack fixstr (a header byte 0xa0 | length, then the
 * name), so that the encoder copies it whole and never measures it.
 */
#include <stdint.h>
#include <string.h>

#include "proto/internal.h"

static const char *const packet_type_names[PKT__MAX] = {
	[PKT_NONE] = NULL,
	[PKT_HELLO] = "\xa5" "HELLO",
	[PKT_WELCOME] = "\xa7" "WELCOME",
	[PKT_REGISTER] = "\xa8" "REGISTER",
	[PKT_RUN] = "\xa3" "RUN",
	[PKT_CANCEL] = "\xa6" "CANCEL",
	[PKT_PROGRESS] = "\xa8" "PROGRESS",
	[PKT_RESULT] = "\xa6" "RESULT",
	[PKT_PING] = "\xa4" "PING",
	[PKT_PONG] = "\xa4" "PONG",
	[PKT_BYE] = "\xa3" "BYE",
	[PKT_ADMIN] = "\xa5" "ADMIN",
	[PKT_REPLY] = "\xa5" "REPLY",
	[PKT_ERROR] = "\xa5" "ERROR",
	[PKT_ACCEPTED] = "\xa8" "ACCEPTED",
	[PKT_STATUS] = "\xa6" "STATUS",
	[PKT_JOB] = "\xa3" "JOB",
};

static const char *const job_status_names[JOB__MAX] = {
	[JOB_OK] = "\xa2" "OK",
	[JOB_ERROR] = "\xa5" "ERROR",
	[JOB_CANCELLED] = "\xa9" "CANCELLED",
	[JOB_TIMEOUT] = "\xa7" "TIMEOUT",
	[JOB_WORKER_LOST] = "\xab" "WORKER_LOST",
	[JOB_NO_WORKER] = "\xa9" "NO_WORKER",
	[JOB_QUEUE_FULL] = "\xaa" "QUEUE_FULL",
	[JOB_BAD_REQUEST] = "\xab" "BAD_REQUEST",
	[JOB_DUPLICATE_ID] = "\xac" "DUPLICATE_ID",
	[JOB_SHUTTING_DOWN] = "\xad" "SHUTTING_DOWN",
	[JOB_STORE_FAILED] = "\xac" "STORE_FAILED",
};

static const char *const proto_error_names[PERR__MAX] = {
	[PERR_BAD_FRAME] = "\xa9" "BAD_FRAME",
	[PERR_FRAME_TOO_LARGE] = "\xaf" "FRAME_TOO_LARGE",
	[PERR_BAD_PACKET] = "\xaa" "BAD_PACKET",
	[PERR_UNSUPPORTED_VERSION] = "\xb3" "UNSUPPORTED_VERSION",
	[PERR_AUTH_FAILED] = "\xab" "AUTH_FAILED",
	[PERR_NOT_ALLOWED] = "\xab" "NOT_ALLOWED",
	[PERR_NOT_FOUND] = "\xa9" "NOT_FOUND",
	[PERR_TOO_MANY_CONNECTIONS] = "\xb4" "TOO_MANY_CONNECTIONS",
	[PERR_HELLO_TIMEOUT] = "\xad" "HELLO_TIMEOUT",
	[PERR_SLOW_CONSUMER] = "\xad" "SLOW_CONSUMER",
	[PERR_SHUTTING_DOWN] = "\xad" "SHUTTING_DOWN",
};

static const char *const proto_role_names[] = {
	[ROLE_NONE] = NULL,
	[ROLE_CLIENT] = "\xa6" "client",
	[ROLE_WORKER] = "\xa6" "worker",
	[ROLE_ADMIN] = "\xa5" "admin",
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
	[VERB_STATS] = { "stats",
	    "messages and bytes: the broker, each connection, each process" },
	[VERB_COUNT] = { "count", "messages processed (sent + received)" },
	[VERB_JOBS] = { "jobs", "live jobs: queued, delayed and running" },
	[VERB_QUEUES] = { "queues",
	    "per function: queue depth, oldest wait, rejected, workers" },
	[VERB_DRAIN] = { "drain",
	    "refuse new jobs, finish the others, then shut down" },
	[VERB_HEALTH] = { "health",
	    "health checks of a supervised process, or of all" },
	[VERB_CANCEL] = { "cancel", "cancel any live job by its id" },
	[VERB_DEAD] = { "dead",
	    "detached jobs whose retries ran out, with their last error" },
	[VERB_KICK] = { "kick", "dead jobs back to their queue" },
	[VERB_DROP] = { "drop", "dead jobs dropped for good" },
};

/* Returns the index of the name s[0..len) in a table of fixstrs, or -1. */
static int
names_find(const char *const *table, size_t n, const char *s, size_t len)
{
	size_t	i;

	if (s == NULL || len == 0)
		return (-1);
	for (i = 0; i < n; i++) {
		if (table[i] != NULL && table[i][1] == s[0] &&
		    ((uint8_t)table[i][0] & 0x1f) == len &&
		    memcmp(table[i] + 1, s, len) == 0)
			return ((int)i);
	}
	return (-1);
}

/* The fixstr of a name, or NULL; see proto.h. */
const char *
proto_wire_name(const char *name)
{
	return (name != NULL ? name - 1 : NULL);
}

/* Returns the wire name of a packet type, or NULL for PKT_NONE or junk. */
const char *
packet_type_name(enum packet_type type)
{
	if ((unsigned)type >= PKT__MAX)
		return (NULL);
	return (packet_type_names[type] != NULL ? packet_type_names[type] + 1 :
	    NULL);
}

/* Returns the wire name of a job status, or NULL when out of range. */
const char *
job_status_name(enum job_status status)
{
	if ((unsigned)status >= JOB__MAX)
		return (NULL);
	return (job_status_names[status] + 1);
}

/* Returns the wire name of an ERROR code, or NULL when out of range. */
const char *
proto_error_name(enum proto_error code)
{
	if ((unsigned)code >= PERR__MAX)
		return (NULL);
	return (proto_error_names[code] + 1);
}

/* Returns the wire name of a HELLO role, or NULL for ROLE_NONE or junk. */
const char *
proto_role_name(enum proto_role role)
{
	if ((unsigned)role >= NROLES)
		return (NULL);
	return (proto_role_names[role] != NULL ? proto_role_names[role] + 1 :
	    NULL);
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

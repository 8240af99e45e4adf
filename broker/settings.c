/*
 * settings.c: the [broker] settings, one table for flags and config keys.
 *
 * Every setting of the broker has one row here: its config key, the flag
 * of the same name (underscores become dashes), how its value is parsed
 * and its range. patchbayd's getopt loop and the config file's [broker]
 * section both call settings_set(), so a flag and its key accept exactly
 * the same values and report errors in the same words, and `patchbayd
 * --help` is printed from the same rows. A flag wins over the config file
 * (settings_merge()); settings_apply_defaults() fills what neither gave.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"

/* How a setting's value is read. */
enum settings_kind {
	KIND_ENDPOINT,	/* appended to a vector; repeatable */
	KIND_LOG_LEVEL,
	KIND_DURATION,
	KIND_SIZE,
	KIND_NUMBER,
	KIND_PATH,
	KIND_HTTP,	/* http_endpoint_parse(), kept as its canonical text */
	KIND_MODE,	/* parse_mode(): an octal file mode */
	KIND_GROUP,	/* parse_group(): a group name or number, as a gid */
	KIND_USERS,	/* parse_ids(): users, kept as written */
	KIND_GROUPS,	/* parse_ids(): groups, kept as written */
	KIND_BOOL,	/* parse_bool(): yes/no, as 1/0 */
	KIND_TLS_ROLES,	/* tls_roles_parse(), kept as written */
};

/* One row: a config key and its flag. */
struct settings_row {
	enum settings_id	 id;
	const char		*key;
	char			 short_flag;	/* or 0 */
	enum settings_kind	 kind;
	size_t			 offset;	/* of the value in settings */
	uint64_t		 min, max, def;
	const char		*metavar;
	const char		*help;
};

#define SETTINGS_AT(field)	offsetof(struct settings, field)

static const struct settings_row settings_rows[] = {
	{ SETTINGS_LISTEN, "listen", 'l', KIND_ENDPOINT,
	    SETTINGS_AT(listen), 0, 0, 0, "ENDPOINT",
	    "listen on unix:PATH, tcp:HOST:PORT, tcp:[V6ADDR]:PORT or "
	    "tls:HOST:PORT (repeatable; default $PATCHBAY_SOCKET, else "
	    "$XDG_RUNTIME_DIR/"
	    "patchbay.sock, else /tmp/patchbay-$UID/patchbay.sock)" },
	{ SETTINGS_LOG_LEVEL, "log_level", 0, KIND_LOG_LEVEL,
	    SETTINGS_AT(log_level), 0, 0, LOG_LEVEL_INFO, "LEVEL",
	    "error, warn, info or debug" },
	{ SETTINGS_HEARTBEAT, "heartbeat", 0, KIND_DURATION,
	    SETTINGS_AT(heartbeat_ms), LIMIT_HEARTBEAT_MIN_MS,
	    LIMIT_HEARTBEAT_MAX_MS, 10000, "DURATION",
	    "PING peers silent this long, drop them after three times "
	    "that" },
	{ SETTINGS_HELLO_TIMEOUT, "hello_timeout", 0, KIND_DURATION,
	    SETTINGS_AT(hello_timeout_ms), LIMIT_HELLO_MIN_MS,
	    LIMIT_HELLO_MAX_MS, 5000, "DURATION",
	    "close connections that send no HELLO this soon" },
	{ SETTINGS_MAX_FRAME, "max_frame", 0, KIND_SIZE,
	    SETTINGS_AT(max_frame), LIMIT_FRAME_MIN, LIMIT_FRAME_MAX,
	    1024 * 1024, "SIZE",
	    "largest frame a peer may send after HELLO" },
	{ SETTINGS_MAX_CONNECTIONS, "max_connections", 0, KIND_NUMBER,
	    SETTINGS_AT(max_connections), 0, LIMIT_CONNECTIONS_MAX, 0, "N",
	    "connections at once, beyond which a new one is refused with "
	    "TOO_MANY_CONNECTIONS; 0 is the descriptor limit less a reserve "
	    "for pools and listeners" },
	{ SETTINGS_MAX_CONNECTIONS_PER_UID, "max_connections_per_uid", 0,
	    KIND_NUMBER, SETTINGS_AT(max_connections_per_uid), 0,
	    LIMIT_CONNECTIONS_MAX, 0, "N",
	    "connections at once from one uid over a Unix socket; 0: no "
	    "limit" },
	{ SETTINGS_MAX_OUTPUT, "max_output", 0, KIND_SIZE,
	    SETTINGS_AT(max_output), 64 * 1024, LIMIT_OUTPUT_MAX,
	    16 * 1024 * 1024, "SIZE",
	    "output waiting for one peer to read it, beyond which the peer "
	    "is dropped as a slow consumer" },
	{ SETTINGS_MAX_QUEUE, "max_queue", 0, KIND_NUMBER,
	    SETTINGS_AT(max_queue), 1, LIMIT_QUEUE_MAX, 100000, "N",
	    "queued jobs per function" },
	{ SETTINGS_MAX_QUEUE_BYTES, "max_queue_bytes", 0, KIND_SIZE,
	    SETTINGS_AT(max_queue_bytes), 0, LIMIT_MEMORY_MAX, 0, "SIZE",
	    "payload bytes queued per function, beyond which a RUN is "
	    "refused QUEUE_FULL; 0: no limit" },
	{ SETTINGS_MAX_MEMORY, "max_memory", 0, KIND_SIZE,
	    SETTINGS_AT(max_memory), 0, LIMIT_MEMORY_MAX, 0, "SIZE",
	    "payload bytes of all jobs plus output waiting to be written, "
	    "beyond which a RUN is refused QUEUE_FULL; 0: no limit" },
	{ SETTINGS_MAX_JOBS_PER_CLIENT, "max_jobs_per_client", 0, KIND_NUMBER,
	    SETTINGS_AT(max_jobs_per_client), 0, LIMIT_QUEUE_MAX, 0, "N",
	    "live attached jobs of one connection, beyond which a RUN is "
	    "refused QUEUE_FULL; 0: no limit" },
	{ SETTINGS_NO_WORKER_WAIT, "no_worker_wait", 0, KIND_DURATION,
	    SETTINGS_AT(no_worker_wait_ms), 0, LIMIT_NO_WORKER_WAIT_MAX_MS,
	    10000, "DURATION",
	    "how long a job waits for a function that has no worker at "
	    "all" },
	{ SETTINGS_TOKEN_FILE, "token_file", 0, KIND_PATH,
	    SETTINGS_AT(token_file), 0, 0, 0, "FILE",
	    "require the token in the first line of FILE in every HELLO "
	    "(spawned pool processes need none)" },
	{ SETTINGS_READY_FILE, "ready_file", 0, KIND_PATH,
	    SETTINGS_AT(ready_file), 0, 0, 0, "FILE",
	    "once listening, write the endpoints to FILE, one per line" },
	{ SETTINGS_LOG_FILE, "log_file", 0, KIND_PATH,
	    SETTINGS_AT(log_file), 0, 0, 0, "FILE",
	    "log to FILE (appended to, opened again on SIGUSR1 for "
	    "logrotate) instead of stderr" },
	{ SETTINGS_HTTP, "http", 0, KIND_HTTP, SETTINGS_AT(http), 0, 0, 0,
	    "ENDPOINT",
	    "serve /metrics, /healthz, /readyz, /status.json and the status "
	    "page over HTTP on tcp:HOST:PORT, or PORT alone for "
	    "127.0.0.1:PORT (default: off)" },
	{ SETTINGS_HTTP_TIMEOUT, "http_timeout", 0, KIND_DURATION,
	    SETTINGS_AT(http_timeout_ms), LIMIT_HTTP_TIMEOUT_MIN_MS,
	    LIMIT_HTTP_TIMEOUT_MAX_MS, 10000, "DURATION",
	    "an HTTP connection that does not send a whole request, or read "
	    "its answer, this soon is closed" },
	{ SETTINGS_SOCKET_MODE, "socket_mode", 0, KIND_MODE,
	    SETTINGS_AT(socket_mode), 0, 0, 0600, "MODE",
	    "the mode of unix socket files, in octal (default 0600: the "
	    "broker's own user and root only); see docs/operations.md, "
	    "\"Who may connect\"" },
	{ SETTINGS_SOCKET_GROUP, "socket_group", 0, KIND_GROUP,
	    SETTINGS_AT(socket_gid), 0, 0, 0, "GROUP",
	    "the group of unix socket files, and of the directory the broker "
	    "creates for one (default: the broker's own)" },
	{ SETTINGS_CLIENT_UIDS, "client_uids", 0, KIND_USERS,
	    SETTINGS_AT(client_uids), 0, 0, 0, "USERS",
	    "users (names or numbers) who may connect as clients over a unix "
	    "socket, besides the broker's own user and root" },
	{ SETTINGS_CLIENT_GIDS, "client_gids", 0, KIND_GROUPS,
	    SETTINGS_AT(client_gids), 0, 0, 0, "GROUPS",
	    "groups whose members may connect as clients over a unix "
	    "socket" },
	{ SETTINGS_WORKER_UIDS, "worker_uids", 0, KIND_USERS,
	    SETTINGS_AT(worker_uids), 0, 0, 0, "USERS",
	    "users who may connect as workers over a unix socket" },
	{ SETTINGS_WORKER_GIDS, "worker_gids", 0, KIND_GROUPS,
	    SETTINGS_AT(worker_gids), 0, 0, 0, "GROUPS",
	    "groups whose members may connect as workers over a unix socket" },
	{ SETTINGS_ADMIN_UIDS, "admin_uids", 0, KIND_USERS,
	    SETTINGS_AT(admin_uids), 0, 0, 0, "USERS",
	    "users who may use the admin role over a unix socket" },
	{ SETTINGS_ADMIN_GIDS, "admin_gids", 0, KIND_GROUPS,
	    SETTINGS_AT(admin_gids), 0, 0, 0, "GROUPS",
	    "groups whose members may use the admin role over a unix "
	    "socket" },
	{ SETTINGS_CLIENT_TOKEN_FILE, "client_token_file", 0, KIND_PATH,
	    SETTINGS_AT(client_token_file), 0, 0, 0, "FILE",
	    "clients must give one of the tokens in FILE (one per line), "
	    "instead of token_file's" },
	{ SETTINGS_WORKER_TOKEN_FILE, "worker_token_file", 0, KIND_PATH,
	    SETTINGS_AT(worker_token_file), 0, 0, 0, "FILE",
	    "workers must give one of the tokens in FILE" },
	{ SETTINGS_ADMIN_TOKEN_FILE, "admin_token_file", 0, KIND_PATH,
	    SETTINGS_AT(admin_token_file), 0, 0, 0, "FILE",
	    "admins must give one of the tokens in FILE; with it the admin "
	    "role is also allowed over TCP" },
	{ SETTINGS_ALLOW_INSECURE_TCP, "allow_insecure_tcp", 0, KIND_BOOL,
	    SETTINGS_AT(allow_insecure_tcp), 0, 0, 0, "yes|no",
	    "listen on a tcp: endpoint that is not loopback without any "
	    "token (default no: patchbayd refuses to start)" },
	{ SETTINGS_TLS_CERT, "tls_cert", 0, KIND_PATH,
	    SETTINGS_AT(tls_cert), 0, 0, 0, "FILE",
	    "the certificate chain (PEM, leaf first) tls: endpoints present" },
	{ SETTINGS_TLS_KEY, "tls_key", 0, KIND_PATH,
	    SETTINGS_AT(tls_key), 0, 0, 0, "FILE",
	    "its private key (PEM; must not be readable by other users)" },
	{ SETTINGS_TLS_CLIENT_CA, "tls_client_ca", 0, KIND_PATH,
	    SETTINGS_AT(tls_client_ca), 0, 0, 0, "FILE",
	    "require a client certificate signed by a CA in FILE (mutual "
	    "TLS)" },
	{ SETTINGS_TLS_CLIENT_ROLES, "tls_client_roles", 0, KIND_TLS_ROLES,
	    SETTINGS_AT(tls_client_roles), 0, 0, 0, "NAME=ROLE,...",
	    "the roles a client certificate may take, by its CN or a DNS or "
	    "email name (ROLE: client, worker, admin, joined with +; NAME * "
	    "is any)" },
	{ SETTINGS_WORKER_MAY_RUN, "worker_may_run", 0, KIND_BOOL,
	    SETTINGS_AT(worker_may_run), 0, 0, 0, "yes|no",
	    "workers may also send RUN and CANCEL on their connection, as "
	    "clients do (default no)" },
	{ SETTINGS_DETACHED_TTL, "detached_ttl", 0, KIND_DURATION,
	    SETTINGS_AT(detached_ttl_ms), 1000, 49ull * 24 * 3600 * 1000,
	    7ull * 24 * 3600 * 1000, "DURATION",
	    "how long a detached job may wait in its queue for a worker "
	    "before it is dropped (logged)" },
	{ SETTINGS_RESULT_TTL, "result_ttl", 0, KIND_DURATION,
	    SETTINGS_AT(result_ttl_ms), 0, 7ull * 24 * 3600 * 1000,
	    10 * 60 * 1000, "DURATION",
	    "how long the outcome of a finished detached job is kept for "
	    "STATUS (patchbay job); 0: not at all" },
	{ SETTINGS_MAX_RESULT_BYTES, "max_result_bytes", 0, KIND_SIZE,
	    SETTINGS_AT(max_result_bytes), 4096, 1ull << 40,
	    64 * 1024 * 1024, "SIZE",
	    "what those outcomes may hold in all (the oldest go first)" },
	{ SETTINGS_MAX_DEAD, "max_dead", 0, KIND_NUMBER,
	    SETTINGS_AT(max_dead), 1, 10000000, 10000, "N",
	    "dead jobs kept (detached jobs whose retry_on_error ran out); "
	    "the oldest is dropped beyond" },
	{ SETTINGS_DRAIN_TIMEOUT, "drain_timeout", 0, KIND_DURATION,
	    SETTINGS_AT(drain_timeout_ms), 0, LIMIT_STOP_TIMEOUT_MAX_MS,
	    60000, "DURATION",
	    "`ctl drain`: how long the jobs already taken may take before "
	    "the broker shuts down anyway" },
	{ SETTINGS_STORE, "store", 0, KIND_PATH,
	    SETTINGS_AT(store), 0, 0, 0, "FILE",
	    "keep detached jobs in this SQLite file, so that they survive a "
	    "restart or a crash (default: none, in memory only)" },
	{ SETTINGS_STORE_FSYNC, "store_fsync", 0, KIND_BOOL,
	    SETTINGS_AT(store_fsync), 0, 0, 1, "yes|no",
	    "each commit of the store reaches the disk, surviving a power "
	    "loss (default yes); no: it survives the broker's crash only" },
};

#define SETTINGS_NROWS	(sizeof(settings_rows) / sizeof(settings_rows[0]))

/* Rows are in enum settings_id order: settings_rows[id].id == id. */
_Static_assert(SETTINGS_NROWS == SETTINGS_COUNT, "one row per setting");

/* True for the kinds kept as text (a char * that settings own). */
static bool
settings_is_text(enum settings_kind kind)
{
	return kind == KIND_PATH || kind == KIND_HTTP || kind == KIND_USERS ||
	    kind == KIND_GROUPS || kind == KIND_TLS_ROLES;
}

/* The id of the setting whose config key is key, or -1. */
int
settings_find(const char *key)
{
	for (size_t i = 0; i < SETTINGS_NROWS; i++)
		if (strcmp(settings_rows[i].key, key) == 0)
			return (int)i;
	return -1;
}

/* Sets one setting from text; see broker.h. */
int
settings_set(struct settings *s, const char *name, const char *value,
    char *err)
{
	const struct settings_row	*row;
	struct endpoint			 ep;
	uint64_t			*u;
	char				**str;
	struct id_list			 ids;
	unsigned			 n = 0;
	bool				 yes = false;
	int				 id, level, r = 0;

	if ((id = settings_find(name)) < 0) {
		snprintf(err, UTIL_ERRLEN, "unknown setting '%s'", name);
		return -ENOENT;
	}
	row = &settings_rows[id];
	u = (uint64_t *)(void *)((char *)s + row->offset);
	str = (char **)(void *)((char *)s + row->offset);
	switch (row->kind) {
	case KIND_ENDPOINT:
		if (endpoint_parse(value, &ep, err) != 0)
			return -EINVAL;
		if (s->nlisten == SERVER_MAX_LISTENERS) {
			snprintf(err, UTIL_ERRLEN, "at most %d endpoints "
			    "(got '%s')", SERVER_MAX_LISTENERS, value);
			return -EINVAL;
		}
		if (strv_push(&s->listen, &s->nlisten, value) != 0)
			return -ENOMEM;
		break;
	case KIND_LOG_LEVEL:
		if ((level = log_level_from_name(value)) < 0) {
			snprintf(err, UTIL_ERRLEN, "expected error, warn, info "
			    "or debug (got '%s')", value);
			return -EINVAL;
		}
		s->log_level = level;
		break;
	case KIND_DURATION:
		r = parse_duration(value, row->min, row->max, u, err);
		break;
	case KIND_SIZE:
		r = parse_size(value, row->min, row->max, u, err);
		break;
	case KIND_BOOL:
		r = parse_bool(value, &yes, err);
		*u = yes;
		break;
	case KIND_NUMBER:
		r = parse_uint(value, row->min, row->max, u, err);
		break;
	case KIND_HTTP:
		if (http_endpoint_parse(value, &ep, err) != 0)
			return -EINVAL;
		free(*str);
		if ((*str = strdup(ep.text)) == NULL)
			return -ENOMEM;
		break;
	case KIND_MODE:
		r = parse_mode(value, &n, err);
		*u = n;
		break;
	case KIND_GROUP:
		r = parse_group(value, &n, err);
		*u = n;
		break;
	case KIND_USERS:
	case KIND_GROUPS:
		if (parse_ids(value, row->kind == KIND_GROUPS, &ids, err) != 0)
			return -EINVAL;
		free(*str);
		if ((*str = strdup(value)) == NULL)
			return -ENOMEM;
		break;
	case KIND_TLS_ROLES: {
		struct tls_role_map	*map;
		size_t			 nmap;

		if ((r = tls_roles_parse(value, &map, &nmap, err)) != 0)
			return r;
		tls_roles_free(map, nmap);
		free(*str);
		if ((*str = strdup(value)) == NULL)
			return -ENOMEM;
		break;
	}
	case KIND_PATH:
		if (*value == '\0') {
			snprintf(err, UTIL_ERRLEN, "expected a file name (got "
			    "'')");
			return -EINVAL;
		}
		free(*str);
		if ((*str = strdup(value)) == NULL)
			return -ENOMEM;
		break;
	}
	if (r != 0)
		return r;
	s->given |= UINT64_C(1) << row->id;
	return 0;
}

/* True when a setting was given. */
bool
settings_given(const struct settings *s, enum settings_id id)
{
	return (s->given & (UINT64_C(1) << id)) != 0;
}

/* Takes from `from` every setting that dst was not given; see broker.h. */
int
settings_merge(struct settings *dst, const struct settings *from)
{
	for (size_t i = 0; i < SETTINGS_NROWS; i++) {
		const struct settings_row *row = &settings_rows[i];
		void *d = (char *)dst + row->offset;
		const void *f = (const char *)from + row->offset;

		if (!settings_given(from, row->id))
			continue;
		/* Endpoints add up: the flags' and then the file's. */
		if (row->kind == KIND_ENDPOINT) {
			if (dst->nlisten + from->nlisten > SERVER_MAX_LISTENERS)
				return -E2BIG;
			for (size_t j = 0; j < from->nlisten; j++)
				if (strv_push(&dst->listen, &dst->nlisten,
				    from->listen[j]) != 0)
					return -ENOMEM;
			dst->given |= UINT64_C(1) << row->id;
			continue;
		}
		if (settings_given(dst, row->id))
			continue;
		if (row->kind == KIND_LOG_LEVEL)
			dst->log_level = from->log_level;
		else if (settings_is_text(row->kind)) {
			if ((*(char **)d = strdup(*(char *const *)f)) == NULL)
				return -ENOMEM;
		} else
			*(uint64_t *)d = *(const uint64_t *)f;
		dst->given |= UINT64_C(1) << row->id;
	}
	return 0;
}

/* Sets every numeric setting that was not given to its default. */
void
settings_apply_defaults(struct settings *s)
{
	for (size_t i = 0; i < SETTINGS_NROWS; i++) {
		const struct settings_row *row = &settings_rows[i];

		if (settings_given(s, row->id))
			continue;
		if (row->kind == KIND_LOG_LEVEL)
			s->log_level = (int)row->def;
		else if (row->kind == KIND_DURATION ||
		    row->kind == KIND_SIZE || row->kind == KIND_NUMBER ||
		    row->kind == KIND_MODE || row->kind == KIND_BOOL)
			*(uint64_t *)(void *)((char *)s + row->offset) =
			    row->def;
	}
}

/* Frees what a settings holds and zeroes it. */
void
settings_clear(struct settings *s)
{
	strv_free(s->listen);
	for (size_t i = 0; i < SETTINGS_NROWS; i++)
		if (settings_is_text(settings_rows[i].kind))
			free(*(char **)(void *)((char *)s +
			    settings_rows[i].offset));
	memset(s, 0, sizeof(*s));
}

/* Writes a setting's value of row's kind for help text. */
static void
settings_format(const struct settings_row *row, uint64_t v, char *buf,
    size_t len)
{
	if (row->kind == KIND_DURATION)
		format_duration(v, buf, len);
	else if (row->kind == KIND_SIZE)
		format_size(v, buf, len);
	else if (row->kind == KIND_LOG_LEVEL)
		snprintf(buf, len, "%s", log_level_name((enum log_level)v));
	else if (row->kind == KIND_MODE)
		snprintf(buf, len, "%04" PRIo64, v);
	else
		snprintf(buf, len, "%" PRIu64, v);
}

/* Prints words of text from column col, wrapped at 79 with indent 31. */
static void
settings_wrap(FILE *f, const char *text, int col)
{
	const char	*h, *sp;

	for (h = text; *h != '\0'; h = *sp == ' ' ? sp + 1 : sp) {
		if ((sp = strchr(h, ' ')) == NULL)
			sp = h + strlen(h);
		if (col + 1 + (sp - h) > 79) {
			fprintf(f, "\n%30s", "");
			col = 30;
		}
		fprintf(f, " %.*s", (int)(sp - h), h);
		col += 1 + (int)(sp - h);
	}
	fputc('\n', f);
}

/* Prints each setting as a flag with its help, range and default. */
void
settings_usage(FILE *f)
{
	char	flag[64], help[512], lo[32], hi[32], def[32];

	for (size_t i = 0; i < SETTINGS_NROWS; i++) {
		const struct settings_row *row = &settings_rows[i];

		if (row->short_flag != 0)
			snprintf(flag, sizeof(flag), "-%c, --%s %s",
			    row->short_flag, row->key, row->metavar);
		else
			snprintf(flag, sizeof(flag), "    --%s %s", row->key,
			    row->metavar);
		for (char *c = flag; *c != '\0'; c++)
			if (*c == '_')
				*c = '-';
		settings_format(row, row->def, def, sizeof(def));
		settings_format(row, row->min, lo, sizeof(lo));
		settings_format(row, row->max, hi, sizeof(hi));
		if (row->kind == KIND_LOG_LEVEL)
			snprintf(help, sizeof(help), "%s (default %s)",
			    row->help, def);
		else if (row->max != 0)
			snprintf(help, sizeof(help), "%s (%s to %s, default %s)",
			    row->help, lo, hi, def);
		else
			snprintf(help, sizeof(help), "%s", row->help);
		/* A long flag gets its help on the next line. */
		if (fprintf(f, "  %-28s", flag) > 30) {
			fprintf(f, "\n%30s", "");
		}
		settings_wrap(f, help, 30);
	}
}

/* The number of settings (for building getopt's table). */
size_t
settings_count(void)
{
	return SETTINGS_NROWS;
}

/* The config key of setting i (for building getopt's table). */
const char *
settings_key(size_t i, char *short_flag)
{
	*short_flag = settings_rows[i].short_flag;
	return settings_rows[i].key;
}

/*
 * config.c: the INI config file, parsed with libinih.
 *
 * libinih calls our reader for every line and our handler for every
 * "key = value". The reader does the work libinih cannot: it counts lines
 * (for the error sentences), rejects lines that are too long instead of
 * letting them be split, strips leading blanks so that an indented line is
 * never taken as the continuation of the previous value, and handles the
 * [section] headers itself so that duplicate, unknown and empty sections
 * are seen. The handler looks the key up in the table of its section and
 * parses the value into the struct config being built. The first error
 * stops the parse; its sentence names the file, the line, the key and what
 * was expected.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "broker/broker.h"
#include "transport/transport.h"

enum config_section {
	SECTION_NONE,
	SECTION_BROKER,
	SECTION_POOL,
};

struct config_parser;

/* Parses value for key into the config; 0, or -1 with the error set. */
typedef int (*config_key_fn)(struct config_parser *cp, const char *key,
    const char *value);

struct config_key {
	const char	*name;
	config_key_fn	 fn;
	bool		 repeat;	/* may appear more than once */
};

#define CONFIG_MAX_KEYS	32

/* The state of one config_load(); lives on its stack. */
struct config_parser {
	const char		*path;
	FILE			*f;
	struct config		*config;
	int			 lineno;
	char			*buf;		/* getline's */
	size_t			 bufsize;
	enum config_section	 section;
	struct config_pool	*pool;		/* SECTION_POOL */
	int			 broker_line;	/* first [broker], 0: none */
	int			 seen[CONFIG_MAX_KEYS]; /* line of each key */
	int			 error;		/* negative errno, 0: none */
	char			*cause;
};

/* Sets the parse error (the first one wins) from a printf format. */
static void __attribute__((format(printf, 3, 4)))
config_error(struct config_parser *cp, int error, const char *fmt, ...)
{
	char	 msg[1024];
	va_list	 ap;

	if (cp->error != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cp->error = error;
	if (asprintf(&cp->cause, "%s:%d: %s", cp->path, cp->lineno, msg) == -1)
		cp->cause = NULL;
}

/* Sets the error for a key whose value is not what was expected. */
static int
config_bad_value(struct config_parser *cp, const char *key,
    const char *expected, const char *value)
{
	config_error(cp, -EINVAL, "key '%s': expected %s (got '%s')", key,
	    expected, value);
	return -1;
}

/* Frees a NULL-terminated vector of strings. */
void
config_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Counts the strings of a NULL-terminated vector. */
static size_t
config_strv_len(char *const *v)
{
	size_t	n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/* Copies a NULL-terminated vector; NULL on ENOMEM. */
static char **
config_strv_dup(char *const *v)
{
	size_t	  n = config_strv_len(v);
	char	**copy;

	copy = calloc(n + 1, sizeof(*copy));
	if (copy == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((copy[i] = strdup(v[i])) == NULL) {
			config_strv_free(copy);
			return NULL;
		}
	}
	return copy;
}

/* True when two NULL-terminated vectors hold the same strings. */
static bool
config_strv_equal(char *const *a, char *const *b)
{
	size_t	n = config_strv_len(a);

	if (n != config_strv_len(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Appends a copy of s to *v (NULL-terminated); 0 or -ENOMEM. */
static int
config_strv_push(char ***v, size_t *n, const char *s)
{
	char	**nv;
	char	 *copy;

	if ((copy = strdup(s)) == NULL)
		return -ENOMEM;
	nv = realloc(*v, (*n + 2) * sizeof(*nv));
	if (nv == NULL) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*n)++] = copy;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

/* Splits s into words with '...' and "..." quoting. */
int
config_split_words(const char *s, char ***ret, char **cause)
{
	char	**words = NULL;
	size_t	  nwords = 0;
	char	 *word;
	size_t	  len;
	int	  error = 0;

	if ((word = malloc(strlen(s) + 1)) == NULL)
		return -ENOMEM;
	if ((words = calloc(1, sizeof(*words))) == NULL) {
		free(word);
		return -ENOMEM;
	}
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		len = 0;
		while (*s != '\0' && *s != ' ' && *s != '\t') {
			if (*s == '\'') {
				const char *end = strchr(s + 1, '\'');

				if (end == NULL) {
					error = -EINVAL;
					if (asprintf(cause,
					    "unterminated single quote") == -1)
						*cause = NULL;
					goto out;
				}
				memcpy(word + len, s + 1, (size_t)(end - s - 1));
				len += (size_t)(end - s - 1);
				s = end + 1;
			} else if (*s == '"') {
				s++;
				while (*s != '"') {
					if (*s == '\0') {
						error = -EINVAL;
						if (asprintf(cause, "unterminated "
						    "double quote") == -1)
							*cause = NULL;
						goto out;
					}
					if (*s == '\\' && (s[1] == '"' ||
					    s[1] == '\\'))
						s++;
					word[len++] = *s++;
				}
				s++;
			} else
				word[len++] = *s++;
		}
		word[len] = '\0';
		if ((error = config_strv_push(&words, &nwords, word)) != 0)
			goto out;
	}
out:
	free(word);
	if (error != 0) {
		config_strv_free(words);
		return error;
	}
	*ret = words;
	return 0;
}

/* Parses a duration: digits and a unit (ms, s, m, h), or a bare 0. */
int
config_parse_duration(const char *s, uint64_t *ret_ms)
{
	uint64_t	 n = 0, unit;
	const char	*p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	while (isdigit((unsigned char)*p)) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (*p == '\0') {
		if (n != 0)
			return -EINVAL;
		*ret_ms = 0;
		return 0;
	}
	if (strcmp(p, "ms") == 0)
		unit = 1;
	else if (strcmp(p, "s") == 0)
		unit = 1000;
	else if (strcmp(p, "m") == 0)
		unit = 60 * 1000;
	else if (strcmp(p, "h") == 0)
		unit = 3600 * 1000;
	else
		return -EINVAL;
	/* Nothing sensible lasts longer than a year; this also stops overflow. */
	if (n > (uint64_t)366 * 24 * 3600 * 1000 / unit)
		return -EINVAL;
	*ret_ms = n * unit;
	return 0;
}

/* Writes ms as the shortest exact duration. */
void
config_format_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0");
	else if (ms % (3600 * 1000) == 0)
		snprintf(buf, len, "%" PRIu64 "h", ms / (3600 * 1000));
	else if (ms % (60 * 1000) == 0)
		snprintf(buf, len, "%" PRIu64 "m", ms / (60 * 1000));
	else if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ms", ms);
}

static const struct {
	const char	*name;
	int		 sig;
} config_signals[] = {
	{ "HUP", SIGHUP },
	{ "INT", SIGINT },
	{ "QUIT", SIGQUIT },
	{ "ABRT", SIGABRT },
	{ "KILL", SIGKILL },
	{ "USR1", SIGUSR1 },
	{ "USR2", SIGUSR2 },
	{ "ALRM", SIGALRM },
	{ "TERM", SIGTERM },
	{ "WINCH", SIGWINCH },
};

/* The signal called name, with or without "SIG", any case; or -1. */
int
config_signal_from_name(const char *name)
{
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < sizeof(config_signals) /
	    sizeof(config_signals[0]); i++)
		if (strcasecmp(name, config_signals[i].name) == 0)
			return config_signals[i].sig;
	return -1;
}

/* The short name of a signal, or NULL. */
const char *
config_signal_name(int sig)
{
	for (size_t i = 0; i < sizeof(config_signals) /
	    sizeof(config_signals[0]); i++)
		if (config_signals[i].sig == sig)
			return config_signals[i].name;
	return NULL;
}

/* The name of a restart policy. */
const char *
config_restart_name(enum restart_policy r)
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

/* Parses a whole decimal integer in [min, max]; 0 or -EINVAL. */
static int
config_parse_int(const char *s, long long min, long long max,
    long long *ret)
{
	char		*end;
	long long	 n;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -EINVAL;
	*ret = n;
	return 0;
}

/* True when s is a usable pool name or spawn id. */
static bool
config_valid_name(const char *s)
{
	size_t	len = strlen(s);

	if (len == 0 || len > CONFIG_MAX_NAME)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.')
			return false;
	return true;
}

/* An empty config. */
struct config *
config_new(void)
{
	struct config	*config;

	if ((config = calloc(1, sizeof(*config))) == NULL)
		return NULL;
	config->log_level = -1;
	config->no_worker_wait_ms = -1;
	TAILQ_INIT(&config->pools);
	return config;
}

/* A pool with every default. */
struct config_pool *
config_pool_new(const char *name)
{
	struct config_pool	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->name = strdup(name);
	p->environment = calloc(1, sizeof(*p->environment));
	if (p->name == NULL || p->environment == NULL) {
		config_pool_free(p);
		return NULL;
	}
	p->instances = 1;
	p->restart = RESTART_ON_FAILURE;
	p->success_codes[0] = 0;
	p->nsuccess = 1;
	p->max_restarts = 5;
	p->restart_window_ms = 60 * 1000;
	p->backoff_min_ms = 100;
	p->backoff_max_ms = 30 * 1000;
	p->healthy_after_ms = 10 * 1000;
	p->stop_signal = SIGTERM;
	p->stop_timeout_ms = 10 * 1000;
	return p;
}

/* Frees a pool that is not in a list. */
void
config_pool_free(struct config_pool *p)
{
	if (p == NULL)
		return;
	free(p->name);
	free(p->command);
	config_strv_free(p->argv);
	free(p->directory);
	config_strv_free(p->environment);
	free(p->user);
	free(p);
}

/* Copies a string that may be NULL; false on ENOMEM. */
static bool
config_strdup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (src == NULL)
		return true;
	return (*dst = strdup(src)) != NULL;
}

/* A deep copy of p. */
struct config_pool *
config_pool_dup(const struct config_pool *p)
{
	struct config_pool	*c;

	if ((c = malloc(sizeof(*c))) == NULL)
		return NULL;
	*c = *p;
	c->name = c->command = c->directory = c->user = NULL;
	c->argv = c->environment = NULL;
	if (!config_strdup_opt(&c->name, p->name) ||
	    !config_strdup_opt(&c->command, p->command) ||
	    !config_strdup_opt(&c->directory, p->directory) ||
	    !config_strdup_opt(&c->user, p->user) ||
	    (p->argv != NULL && (c->argv = config_strv_dup(p->argv)) == NULL) ||
	    (c->environment = config_strv_dup(p->environment)) == NULL) {
		config_pool_free(c);
		return NULL;
	}
	return c;
}

/* Frees a config and its pools. */
void
config_free(struct config *config)
{
	struct config_pool	*p;

	if (config == NULL)
		return;
	while ((p = TAILQ_FIRST(&config->pools)) != NULL) {
		TAILQ_REMOVE(&config->pools, p, entry);
		config_pool_free(p);
	}
	for (size_t i = 0; i < config->nlisten; i++)
		free(config->listen[i]);
	free(config->listen);
	free(config->token);
	free(config->path);
	free(config);
}

/* The pool called name, or NULL. */
struct config_pool *
config_pool_find(const struct config *config, const char *name)
{
	struct config_pool	*p;

	TAILQ_FOREACH(p, &config->pools, entry)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

/* Compares two optional strings. */
static bool
config_str_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* True when a and b differ at most in instances. */
bool
config_pool_equal_but_instances(const struct config_pool *a,
    const struct config_pool *b)
{
	if (!config_str_equal(a->name, b->name) ||
	    !config_str_equal(a->command, b->command) ||
	    a->restart != b->restart ||
	    a->nsuccess != b->nsuccess ||
	    memcmp(a->success_codes, b->success_codes,
	    (size_t)a->nsuccess * sizeof(a->success_codes[0])) != 0 ||
	    a->max_restarts != b->max_restarts ||
	    a->restart_window_ms != b->restart_window_ms ||
	    a->backoff_min_ms != b->backoff_min_ms ||
	    a->backoff_max_ms != b->backoff_max_ms ||
	    a->healthy_after_ms != b->healthy_after_ms ||
	    a->stop_signal != b->stop_signal ||
	    a->stop_timeout_ms != b->stop_timeout_ms ||
	    !config_str_equal(a->directory, b->directory) ||
	    !config_strv_equal(a->environment, b->environment) ||
	    !config_str_equal(a->user, b->user))
		return false;
	return true;
}

/* True when every setting of a and b is the same. */
bool
config_pool_equal(const struct config_pool *a, const struct config_pool *b)
{
	return a->instances == b->instances &&
	    config_pool_equal_but_instances(a, b);
}

/* [broker] keys. */

/* listen = unix:PATH | tcp:HOST:PORT (may repeat). */
static int
config_key_listen(struct config_parser *cp, const char *key,
    const char *value)
{
	struct config	 *c = cp->config;
	struct endpoint	  ep;
	char		**nv, err[PROTO_ERRLEN];

	if (endpoint_parse(value, &ep, err) != 0) {
		config_error(cp, -EINVAL, "key '%s': %s", key, err);
		return -1;
	}
	nv = realloc(c->listen, (c->nlisten + 1) * sizeof(*nv));
	if (nv == NULL)
		goto nomem;
	c->listen = nv;
	if ((c->listen[c->nlisten] = strdup(value)) == NULL)
		goto nomem;
	c->nlisten++;
	return 0;
nomem:
	config_error(cp, -ENOMEM, "out of memory");
	return -1;
}

/* log_level = error | warn | info | debug. */
static int
config_key_log_level(struct config_parser *cp, const char *key,
    const char *value)
{
	int	level = log_level_from_name(value);

	if (level < 0)
		return config_bad_value(cp, key,
		    "error, warn, info or debug", value);
	cp->config->log_level = level;
	return 0;
}

/* Parses a duration value into *ret, at least min. */
static int
config_duration_value(struct config_parser *cp, const char *key,
    const char *value, uint64_t min, uint64_t *ret)
{
	uint64_t	ms;

	if (config_parse_duration(value, &ms) != 0)
		return config_bad_value(cp, key,
		    "a duration such as 500ms, 10s or 2m", value);
	if (ms < min)
		return config_bad_value(cp, key,
		    "a duration greater than 0", value);
	*ret = ms;
	return 0;
}

/* heartbeat = DURATION. */
static int
config_key_heartbeat(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 1,
	    &cp->config->heartbeat_ms);
}

/* max_frame = BYTES. */
static int
config_key_max_frame(struct config_parser *cp, const char *key,
    const char *value)
{
	long long	n;

	if (config_parse_int(value, 4096, 64 * 1024 * 1024, &n) != 0)
		return config_bad_value(cp, key,
		    "a number of bytes from 4096 to 67108864", value);
	cp->config->max_frame = (uint32_t)n;
	return 0;
}

/* max_queue = N. */
static int
config_key_max_queue(struct config_parser *cp, const char *key,
    const char *value)
{
	long long	n;

	if (config_parse_int(value, 1, 100000000, &n) != 0)
		return config_bad_value(cp, key,
		    "an integer from 1 to 100000000", value);
	cp->config->max_queue = (uint32_t)n;
	return 0;
}

/* no_worker_wait = DURATION. */
static int
config_key_no_worker_wait(struct config_parser *cp, const char *key,
    const char *value)
{
	uint64_t	ms;

	if (config_duration_value(cp, key, value, 0, &ms) != 0)
		return -1;
	cp->config->no_worker_wait_ms = (int64_t)ms;
	return 0;
}

/* token = STRING. */
static int
config_key_token(struct config_parser *cp, const char *key,
    const char *value)
{
	if (*value == '\0')
		return config_bad_value(cp, key, "a non-empty token", value);
	free(cp->config->token);
	if ((cp->config->token = strdup(value)) == NULL) {
		config_error(cp, -ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

static const struct config_key config_broker_keys[] = {
	{ "listen", config_key_listen, true },
	{ "log_level", config_key_log_level, false },
	{ "heartbeat", config_key_heartbeat, false },
	{ "max_frame", config_key_max_frame, false },
	{ "max_queue", config_key_max_queue, false },
	{ "no_worker_wait", config_key_no_worker_wait, false },
	{ "token", config_key_token, false },
	{ NULL, NULL, false },
};

/* [pool:NAME] keys. */

/* command = WORDS. */
static int
config_key_command(struct config_parser *cp, const char *key,
    const char *value)
{
	struct config_pool	 *p = cp->pool;
	char			**argv, *why = NULL;
	int			  error;

	error = config_split_words(value, &argv, &why);
	if (error == -EINVAL) {
		config_error(cp, error, "key '%s': %s (got '%s')", key,
		    why != NULL ? why : "bad quoting", value);
		free(why);
		return -1;
	}
	if (error != 0) {
		config_error(cp, error, "out of memory");
		return -1;
	}
	if (argv[0] == NULL) {
		config_strv_free(argv);
		return config_bad_value(cp, key, "a command", value);
	}
	config_strv_free(p->argv);
	free(p->command);
	p->argv = argv;
	if ((p->command = strdup(value)) == NULL) {
		config_error(cp, -ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/* instances = N. */
static int
config_key_instances(struct config_parser *cp, const char *key,
    const char *value)
{
	long long	n;

	if (config_parse_int(value, 1, CONFIG_MAX_INSTANCES, &n) != 0)
		return config_bad_value(cp, key, "an integer from 1 to 1024",
		    value);
	cp->pool->instances = (int)n;
	return 0;
}

/* restart = always | on-failure | never. */
static int
config_key_restart(struct config_parser *cp, const char *key,
    const char *value)
{
	if (strcmp(value, "always") == 0)
		cp->pool->restart = RESTART_ALWAYS;
	else if (strcmp(value, "on-failure") == 0)
		cp->pool->restart = RESTART_ON_FAILURE;
	else if (strcmp(value, "never") == 0)
		cp->pool->restart = RESTART_NEVER;
	else
		return config_bad_value(cp, key,
		    "always, on-failure or never", value);
	return 0;
}

/* success_exit_codes = CODE [CODE...] (blanks or commas between). */
static int
config_key_success_exit_codes(struct config_parser *cp, const char *key,
    const char *value)
{
	static const char	*expected =
	    "exit codes from 0 to 255, separated by blanks or commas";
	int			 codes[CONFIG_MAX_SUCCESS_CODES], n = 0;
	char			 word[32];
	const char		*s = value;
	size_t			 len;
	long long		 code;

	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		len = strcspn(s, " \t,");
		if (len >= sizeof(word))
			return config_bad_value(cp, key, expected, value);
		memcpy(word, s, len);
		word[len] = '\0';
		s += len;
		if (config_parse_int(word, 0, 255, &code) != 0)
			return config_bad_value(cp, key, expected, value);
		if (n == CONFIG_MAX_SUCCESS_CODES)
			return config_bad_value(cp, key,
			    "at most 16 exit codes", value);
		codes[n++] = (int)code;
	}
	if (n == 0)
		return config_bad_value(cp, key, expected, value);
	memcpy(cp->pool->success_codes, codes, (size_t)n * sizeof(codes[0]));
	cp->pool->nsuccess = n;
	return 0;
}

/* max_restarts = N | -1. */
static int
config_key_max_restarts(struct config_parser *cp, const char *key,
    const char *value)
{
	long long	n;

	if (config_parse_int(value, -1, CONFIG_MAX_RESTARTS, &n) != 0)
		return config_bad_value(cp, key,
		    "an integer from 0 to 10000, or -1 for unlimited", value);
	cp->pool->max_restarts = (int)n;
	return 0;
}

/* restart_window = DURATION. */
static int
config_key_restart_window(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 1,
	    &cp->pool->restart_window_ms);
}

/* backoff = MIN..MAX, or one duration for both. */
static int
config_key_backoff(struct config_parser *cp, const char *key,
    const char *value)
{
	static const char	*expected =
	    "MIN..MAX durations such as 100ms..30s";
	const char		*dots = strstr(value, "..");
	char			 first[64], a[32], b[32];
	uint64_t		 min, max;
	size_t			 len;

	if (dots == NULL) {
		if (config_parse_duration(value, &min) != 0)
			return config_bad_value(cp, key, expected, value);
		max = min;
	} else {
		len = (size_t)(dots - value);
		if (len >= sizeof(first))
			return config_bad_value(cp, key, expected, value);
		memcpy(first, value, len);
		first[len] = '\0';
		if (config_parse_duration(first, &min) != 0 ||
		    config_parse_duration(dots + 2, &max) != 0)
			return config_bad_value(cp, key, expected, value);
	}
	if (min == 0)
		return config_bad_value(cp, key,
		    "a minimum greater than 0", value);
	if (min > max) {
		config_format_duration(min, a, sizeof(a));
		config_format_duration(max, b, sizeof(b));
		config_error(cp, -EINVAL, "key '%s': minimum %s is greater "
		    "than maximum %s (got '%s')", key, a, b, value);
		return -1;
	}
	cp->pool->backoff_min_ms = min;
	cp->pool->backoff_max_ms = max;
	return 0;
}

/* healthy_after = DURATION. */
static int
config_key_healthy_after(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 0,
	    &cp->pool->healthy_after_ms);
}

/* stop_signal = NAME. */
static int
config_key_stop_signal(struct config_parser *cp, const char *key,
    const char *value)
{
	int	sig = config_signal_from_name(value);

	if (sig < 0)
		return config_bad_value(cp, key, "a signal name: HUP, INT, "
		    "QUIT, ABRT, KILL, USR1, USR2, ALRM, TERM or WINCH", value);
	cp->pool->stop_signal = sig;
	return 0;
}

/* stop_timeout = DURATION. */
static int
config_key_stop_timeout(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 0,
	    &cp->pool->stop_timeout_ms);
}

/* Sets a string key that must not be empty. */
static int
config_string_value(struct config_parser *cp, const char *key,
    const char *value, const char *expected, char **dst)
{
	if (*value == '\0')
		return config_bad_value(cp, key, expected, value);
	free(*dst);
	if ((*dst = strdup(value)) == NULL) {
		config_error(cp, -ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/* directory = PATH. */
static int
config_key_directory(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_string_value(cp, key, value, "a directory",
	    &cp->pool->directory);
}

/* user = NAME. */
static int
config_key_user(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_string_value(cp, key, value, "a user name",
	    &cp->pool->user);
}

/* True when the name part of "NAME=VALUE" is a valid variable name. */
static bool
config_env_name_valid(const char *s)
{
	const char	*eq = strchr(s, '=');

	if (eq == NULL || eq == s || isdigit((unsigned char)*s))
		return false;
	for (; s < eq; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* environment = NAME=VALUE ... (may repeat; adds to the list). */
static int
config_key_environment(struct config_parser *cp, const char *key,
    const char *value)
{
	struct config_pool	 *p = cp->pool;
	char			**words, *why = NULL;
	size_t			  n = config_strv_len(p->environment);
	int			  error;

	error = config_split_words(value, &words, &why);
	if (error == -EINVAL) {
		config_error(cp, error, "key '%s': %s (got '%s')", key,
		    why != NULL ? why : "bad quoting", value);
		free(why);
		return -1;
	}
	if (error != 0) {
		config_error(cp, error, "out of memory");
		return -1;
	}
	for (size_t i = 0; words[i] != NULL; i++) {
		if (!config_env_name_valid(words[i])) {
			config_error(cp, -EINVAL, "key '%s': expected "
			    "NAME=VALUE words (got '%s' in '%s')", key,
			    words[i], value);
			goto fail;
		}
		if (strncmp(words[i], "PATCHBAY_", 9) == 0) {
			config_error(cp, -EINVAL, "key '%s': PATCHBAY_ "
			    "variables are set by patchbayd (got '%s')", key,
			    words[i]);
			goto fail;
		}
		if (config_strv_push(&p->environment, &n, words[i]) != 0) {
			config_error(cp, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	config_strv_free(words);
	return 0;
fail:
	config_strv_free(words);
	return -1;
}

static const struct config_key config_pool_keys[] = {
	{ "command", config_key_command, false },
	{ "instances", config_key_instances, false },
	{ "restart", config_key_restart, false },
	{ "success_exit_codes", config_key_success_exit_codes, false },
	{ "max_restarts", config_key_max_restarts, false },
	{ "restart_window", config_key_restart_window, false },
	{ "backoff", config_key_backoff, false },
	{ "healthy_after", config_key_healthy_after, false },
	{ "stop_signal", config_key_stop_signal, false },
	{ "stop_timeout", config_key_stop_timeout, false },
	{ "directory", config_key_directory, false },
	{ "environment", config_key_environment, true },
	{ "user", config_key_user, false },
	{ NULL, NULL, false },
};

/* Checks the section being left: a pool needs a command. */
static int
config_section_end(struct config_parser *cp)
{
	struct config_pool	*p = cp->pool;
	int			 saved;

	if (cp->section == SECTION_POOL && p->command == NULL) {
		saved = cp->lineno;
		cp->lineno = p->line;
		config_error(cp, -EINVAL, "key 'command': missing in section "
		    "[pool:%s], which needs a command to run", p->name);
		cp->lineno = saved;
		return -1;
	}
	return 0;
}

/* Handles a "[name]" header line (s starts at '['). */
static int
config_section_begin(struct config_parser *cp, const char *s)
{
	const char		*end = strchr(s, ']');
	const char		*after, *name;
	char			 section[CONFIG_MAX_LINE];
	struct config_pool	*p;
	size_t			 len;

	if (end == NULL) {
		config_error(cp, -EINVAL, "section header '%s' is missing "
		    "its ']'", s);
		return -1;
	}
	for (after = end + 1; *after == ' ' || *after == '\t'; after++)
		;
	if (*after != '\0' && *after != ';' && *after != '#') {
		config_error(cp, -EINVAL, "unexpected '%s' after section "
		    "header", after);
		return -1;
	}
	len = (size_t)(end - s - 1);
	memcpy(section, s + 1, len);
	section[len] = '\0';

	if (config_section_end(cp) != 0)
		return -1;
	memset(cp->seen, 0, sizeof(cp->seen));
	cp->pool = NULL;

	if (strcmp(section, "broker") == 0) {
		if (cp->broker_line != 0) {
			config_error(cp, -EINVAL, "section [broker] appears "
			    "twice (first on line %d)", cp->broker_line);
			return -1;
		}
		cp->broker_line = cp->lineno;
		cp->section = SECTION_BROKER;
		return 0;
	}
	if (strncmp(section, "pool:", 5) != 0) {
		config_error(cp, -EINVAL, "unknown section [%s]: expected "
		    "[broker] or [pool:NAME]", section);
		return -1;
	}
	name = section + 5;
	if (!config_valid_name(name)) {
		config_error(cp, -EINVAL, "section [%s]: a pool name is 1 to "
		    "64 letters, digits, '-', '_' or '.' (got '%s')", section,
		    name);
		return -1;
	}
	if ((p = config_pool_find(cp->config, name)) != NULL) {
		config_error(cp, -EINVAL, "section [%s] appears twice (first "
		    "on line %d)", section, p->line);
		return -1;
	}
	if ((p = config_pool_new(name)) == NULL) {
		config_error(cp, -ENOMEM, "out of memory");
		return -1;
	}
	p->line = cp->lineno;
	TAILQ_INSERT_TAIL(&cp->config->pools, p, entry);
	cp->pool = p;
	cp->section = SECTION_POOL;
	return 0;
}

/*
 * libinih's reader: one line into str (num bytes), or NULL at EOF or after
 * the first error. See the file's comment for what it checks.
 */
static char *
config_reader(char *str, int num, void *stream)
{
	struct config_parser	*cp = stream;
	ssize_t			 n;
	char			*s;
	size_t			 len;

	if (cp->error != 0)
		return NULL;
	errno = 0;
	n = getline(&cp->buf, &cp->bufsize, cp->f);
	if (n == -1) {
		if (errno == ENOMEM)
			config_error(cp, -ENOMEM, "out of memory");
		else if (ferror(cp->f))
			config_error(cp, -EIO, "read error: %s",
			    strerror(errno != 0 ? errno : EIO));
		return NULL;
	}
	cp->lineno++;
	s = cp->buf;
	len = (size_t)n;
	if (memchr(s, '\0', len) != NULL) {
		config_error(cp, -EINVAL, "the line holds a NUL byte");
		return NULL;
	}
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = '\0';
	if (cp->lineno == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		len -= 3;
	}
	/* libinih needs room for "\r\n\0" beyond the line. */
	if (num < 4 || len > (size_t)num - 3) {
		config_error(cp, -EINVAL, "line is longer than %d bytes",
		    num - 3);
		return NULL;
	}
	while (*s == ' ' || *s == '\t') {
		s++;
		len--;
	}
	if (*s == '[') {
		if (config_section_begin(cp, s) != 0)
			return NULL;
	} else if (*s != '\0' && *s != ';' && *s != '#') {
		size_t	 eq = strcspn(s, "=:");

		/* libinih also takes "key: value"; we do not. */
		if (s[eq] != '=') {
			config_error(cp, -EINVAL, "expected 'key = value' "
			    "(got '%s')", s);
			return NULL;
		}
	}
	memcpy(str, s, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

/* libinih's handler: one "key = value" of the current section. */
static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct config_parser	*cp = user;
	const struct config_key	*keys;
	const char		*where;
	char			 sec[CONFIG_MAX_NAME + 16];
	size_t			 i;

	(void)section;	/* ours is in cp; libinih truncates long ones */
	if (cp->error != 0)
		return 0;
	switch (cp->section) {
	case SECTION_NONE:
		config_error(cp, -EINVAL, "key '%s' is outside any section: "
		    "put it under [broker] or [pool:NAME]", name);
		return 0;
	case SECTION_BROKER:
		keys = config_broker_keys;
		where = "[broker]";
		break;
	case SECTION_POOL:
	default:
		keys = config_pool_keys;
		snprintf(sec, sizeof(sec), "[pool:%s]", cp->pool->name);
		where = sec;
		break;
	}
	for (i = 0; keys[i].name != NULL; i++)
		if (strcmp(keys[i].name, name) == 0)
			break;
	if (keys[i].name == NULL) {
		config_error(cp, -EINVAL, "unknown key '%s' in section %s",
		    name, where);
		return 0;
	}
	if (!keys[i].repeat && cp->seen[i] != 0) {
		config_error(cp, -EINVAL, "key '%s' is set twice in section "
		    "%s (first on line %d)", name, where, cp->seen[i]);
		return 0;
	}
	cp->seen[i] = cp->lineno;
	if (keys[i].fn(cp, name, value) != 0)
		return 0;
	return 1;
}

/* Loads path. */
int
config_load(const char *path, struct config **ret, char **cause)
{
	struct config_parser	cp;
	int			r, error;

	memset(&cp, 0, sizeof(cp));
	cp.path = path;
	if ((cp.f = fopen(path, "re")) == NULL) {
		error = errno;
		if (asprintf(cause, "cannot open %s: %s", path,
		    strerror(error)) == -1)
			*cause = NULL;
		return -error;
	}
	if ((cp.config = config_new()) == NULL ||
	    (cp.config->path = strdup(path)) == NULL) {
		config_error(&cp, -ENOMEM, "out of memory");
		goto out;
	}

	/*
	 * Debian's libinih reads its options at run time: lines up to our
	 * limit, no multi-line values (the reader strips indentation too).
	 */
	ini_max_line = CONFIG_MAX_LINE + 3;
	ini_allow_multiline = false;
	r = ini_parse_stream(config_reader, &cp, config_handler, &cp);
	if (cp.error == 0 && r > 0) {
		/* A line that our reader passed but libinih refused. */
		cp.lineno = r;
		config_error(&cp, -EINVAL, "syntax error");
	} else if (cp.error == 0 && r < 0)
		config_error(&cp, -ENOMEM, "out of memory");
	if (cp.error == 0)
		config_section_end(&cp);
out:
	fclose(cp.f);
	free(cp.buf);
	if (cp.error != 0) {
		config_free(cp.config);
		*cause = cp.cause;
		if (*cause == NULL)
			*cause = strdup("out of memory");
		return cp.error;
	}
	*ret = cp.config;
	return 0;
}

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

#define CONFIG_MAX_KEYS	48

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
	int			 broker_seen[SETTINGS_COUNT]; /* line of each */
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

/* An empty config. */
struct config *
config_new(void)
{
	struct config	*config;

	if ((config = calloc(1, sizeof(*config))) == NULL)
		return NULL;
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
	p->env_keep = calloc(1, sizeof(*p->env_keep));
	p->functions = calloc(1, sizeof(*p->functions));
	if (p->name == NULL || p->environment == NULL || p->env_keep == NULL ||
	    p->functions == NULL) {
		config_pool_free(p);
		return NULL;
	}
	p->instances = 1;
	p->instances_max = 1;
	p->scale_up_after_ms = 200;
	p->idle_timeout_ms = 60 * 1000;
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
	p->kill_timeout_ms = 5 * 1000;
	p->health_interval_ms = 10 * 1000;
	p->health_timeout_ms = 5 * 1000;
	p->health_retries = 3;
	p->start_timeout_ms = 30 * 1000;
	p->umask = -1;
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
	strv_free(p->argv);
	free(p->directory);
	strv_free(p->environment);
	strv_free(p->env_keep);
	strv_free(p->functions);
	free(p->user);
	free(p->group);
	free(p->stdout_log);
	free(p->health_check);
	strv_free(p->health_argv);
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
	c->name = c->command = c->directory = c->user = c->stdout_log = NULL;
	c->group = NULL;
	c->health_check = NULL;
	c->argv = c->environment = c->env_keep = c->functions = NULL;
	c->health_argv = NULL;
	if (!config_strdup_opt(&c->name, p->name) ||
	    !config_strdup_opt(&c->command, p->command) ||
	    !config_strdup_opt(&c->directory, p->directory) ||
	    !config_strdup_opt(&c->user, p->user) ||
	    !config_strdup_opt(&c->group, p->group) ||
	    !config_strdup_opt(&c->stdout_log, p->stdout_log) ||
	    !config_strdup_opt(&c->health_check, p->health_check) ||
	    (p->argv != NULL && (c->argv = strv_dup(p->argv)) == NULL) ||
	    (p->health_argv != NULL &&
	    (c->health_argv = strv_dup(p->health_argv)) == NULL) ||
	    (c->environment = strv_dup(p->environment)) == NULL ||
	    (c->env_keep = strv_dup(p->env_keep)) == NULL ||
	    (c->functions = strv_dup(p->functions)) == NULL) {
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
	settings_clear(&config->broker);
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
	    a->kill_timeout_ms != b->kill_timeout_ms ||
	    /* An on-demand pool's range is not a scale: it restarts. */
	    (a->instances_max > a->instances) !=
	    (b->instances_max > b->instances) ||
	    (a->instances_max > a->instances &&
	    (a->instances != b->instances ||
	    a->instances_max != b->instances_max)) ||
	    !strv_equal(a->functions, b->functions) ||
	    a->scale_up_after_ms != b->scale_up_after_ms ||
	    a->idle_timeout_ms != b->idle_timeout_ms ||
	    !config_str_equal(a->directory, b->directory) ||
	    !strv_equal(a->environment, b->environment) ||
	    !strv_equal(a->env_keep, b->env_keep) ||
	    a->umask != b->umask ||
	    !config_str_equal(a->user, b->user) ||
	    !config_str_equal(a->group, b->group) ||
	    !config_str_equal(a->stdout_log, b->stdout_log) ||
	    !limits_equal(&a->limits, &b->limits) ||
	    !config_str_equal(a->health_check, b->health_check) ||
	    a->health_interval_ms != b->health_interval_ms ||
	    a->health_timeout_ms != b->health_timeout_ms ||
	    a->health_retries != b->health_retries ||
	    a->start_timeout_ms != b->start_timeout_ms)
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

/* [broker] keys: the settings table of settings.c, shared with the flags. */

/* Sets one [broker] key; a key other than listen may appear once. */
static int
config_broker_key(struct config_parser *cp, const char *key,
    const char *value)
{
	char	err[UTIL_ERRLEN];
	int	id, r;

	if ((id = settings_find(key)) < 0) {
		config_error(cp, -EINVAL, "unknown key '%s' in section "
		    "[broker]", key);
		return -1;
	}
	if (id != SETTINGS_LISTEN && cp->broker_seen[id] != 0) {
		config_error(cp, -EINVAL, "key '%s' is set twice in section "
		    "[broker] (first on line %d)", key, cp->broker_seen[id]);
		return -1;
	}
	cp->broker_seen[id] = cp->lineno;
	if ((r = settings_set(&cp->config->broker, key, value, err)) != 0) {
		if (r == -ENOMEM)
			config_error(cp, r, "out of memory");
		else
			config_error(cp, -EINVAL, "key '%s': %s", key, err);
		return -1;
	}
	return 0;
}

/* [pool:NAME] keys. */

/* Splits a command or word list; -1 with the error set on failure. */
static int
config_words(struct config_parser *cp, const char *key, const char *value,
    char ***ret)
{
	char	err[UTIL_ERRLEN];
	int	r;

	if ((r = strv_split(value, ret, err)) == -EINVAL)
		config_error(cp, r, "key '%s': %s (got '%s')", key, err, value);
	else if (r != 0)
		config_error(cp, r, "out of memory");
	return r != 0 ? -1 : 0;
}

/*
 * A command key (command, health_check): value split in words into *argv,
 * as written into *text, both replacing what they held.
 */
static int
config_command_value(struct config_parser *cp, const char *key,
    const char *value, char **text, char ***argv)
{
	char	**words;

	if (config_words(cp, key, value, &words) != 0)
		return -1;
	if (words[0] == NULL) {
		strv_free(words);
		return config_bad_value(cp, key, "a command", value);
	}
	strv_free(*argv);
	free(*text);
	*argv = words;
	if ((*text = strdup(value)) == NULL) {
		config_error(cp, -ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

/* command = WORDS. */
static int
config_key_command(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_command_value(cp, key, value, &cp->pool->command,
	    &cp->pool->argv);
}

/* Reports a util/ parser's error for key; returns -1. */
static int
config_parse_error(struct config_parser *cp, const char *key, const char *err)
{
	config_error(cp, -EINVAL, "key '%s': %s", key, err);
	return -1;
}

/* Parses a duration of at least min_ms into *ret; -1 with the error set. */
static int
config_duration_value(struct config_parser *cp, const char *key,
    const char *value, uint64_t min_ms, uint64_t *ret)
{
	char	err[UTIL_ERRLEN];

	if (parse_duration(value, min_ms, LIMIT_DURATION_MAX_MS, ret, err) != 0)
		return config_parse_error(cp, key, err);
	return 0;
}

/* instances = N, or MIN..MAX for a pool that scales on demand. */
static int
config_key_instances(struct config_parser *cp, const char *key,
    const char *value)
{
	const char	*dots = strstr(value, "..");
	char		 first[32], err[UTIL_ERRLEN];
	uint64_t	 min, max;
	size_t		 len;

	if (dots == NULL) {
		if (parse_uint(value, 1, LIMIT_INSTANCES_MAX, &min, err) != 0)
			return config_parse_error(cp, key, err);
		max = min;
	} else {
		len = (size_t)(dots - value);
		if (len >= sizeof(first))
			return config_bad_value(cp, key, "N, or MIN..MAX such "
			    "as 0..8", value);
		memcpy(first, value, len);
		first[len] = '\0';
		if (parse_uint(first, 0, LIMIT_INSTANCES_MAX, &min, err) != 0 ||
		    parse_uint(dots + 2, 1, LIMIT_INSTANCES_MAX, &max,
		    err) != 0)
			return config_bad_value(cp, key, "N, or MIN..MAX such "
			    "as 0..8", value);
		if (min > max) {
			config_error(cp, -EINVAL, "key '%s': minimum %llu is "
			    "greater than maximum %llu (got '%s')", key,
			    (unsigned long long)min, (unsigned long long)max,
			    value);
			return -1;
		}
	}
	cp->pool->instances = (int)min;
	cp->pool->instances_max = (int)max;
	return 0;
}

/*
 * Splits value at commas and blanks into *ret, a NULL-terminated vector
 * (NULL when there is no word). 0, or -1 after config_error() (ENOMEM).
 */
static int
config_names(struct config_parser *cp, const char *value, char ***ret)
{
	char	**v = NULL, *copy, *word, *save = NULL;
	size_t	  n = 0;

	if ((copy = strdup(value)) == NULL)
		goto enomem;
	for (word = strtok_r(copy, ", \t", &save); word != NULL;
	    word = strtok_r(NULL, ", \t", &save))
		if (strv_push(&v, &n, word) != 0)
			goto enomem;
	free(copy);
	*ret = v;
	return 0;
enomem:
	free(copy);
	strv_free(v);
	config_error(cp, -ENOMEM, "out of memory");
	return -1;
}

/* functions = NAME[,NAME...]: what an on-demand pool serves. */
static int
config_key_functions(struct config_parser *cp, const char *key,
    const char *value)
{
	char	**v;
	size_t	  i;

	if (config_names(cp, value, &v) != 0)
		return -1;
	for (i = 0; v != NULL && v[i] != NULL; i++) {
		if (strlen(v[i]) > PROTO_MAX_FN_LEN) {
			strv_free(v);
			return config_bad_value(cp, key, "function names of 1 "
			    "to 255 bytes", value);
		}
	}
	if (i == 0)
		return config_bad_value(cp, key, "function names separated by "
		    "commas", value);
	strv_free(cp->pool->functions);
	cp->pool->functions = v;
	return 0;
}

/* scale_up_after = DURATION. */
static int
config_key_scale_up_after(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 0,
	    &cp->pool->scale_up_after_ms);
}

/* idle_timeout = DURATION. */
static int
config_key_idle_timeout(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 1,
	    &cp->pool->idle_timeout_ms);
}

/* restart = always | on-failure | never. */
static int
config_key_restart(struct config_parser *cp, const char *key,
    const char *value)
{
	char	err[UTIL_ERRLEN];

	if (parse_restart(value, &cp->pool->restart, err) != 0)
		return config_parse_error(cp, key, err);
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
	uint64_t		 code;
	char			 err[UTIL_ERRLEN];

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
		if (parse_uint(word, 0, 255, &code, err) != 0)
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

/* max_restarts = N | -1 (LIMIT_RESTARTS_MAX is 10000). */
static int
config_key_max_restarts(struct config_parser *cp, const char *key,
    const char *value)
{
	char	err[UTIL_ERRLEN];
	int64_t	n;

	if (parse_int(value, -1, LIMIT_RESTARTS_MAX, &n, err) != 0)
		return config_bad_value(cp, key, "an integer from 0 to "
		    "10000, or -1 for unlimited", value);
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
	char			 err[UTIL_ERRLEN];
	uint64_t		 min, max;
	size_t			 len;

	if (dots == NULL) {
		if (parse_duration(value, 0, LIMIT_DURATION_MAX_MS, &min,
		    err) != 0)
			return config_parse_error(cp, key, err);
		max = min;
	} else {
		len = (size_t)(dots - value);
		if (len >= sizeof(first))
			return config_bad_value(cp, key, expected, value);
		memcpy(first, value, len);
		first[len] = '\0';
		if (parse_duration(first, 0, LIMIT_DURATION_MAX_MS, &min,
		    err) != 0 || parse_duration(dots + 2, 0,
		    LIMIT_DURATION_MAX_MS, &max, err) != 0)
			return config_bad_value(cp, key, expected, value);
	}
	if (min == 0)
		return config_bad_value(cp, key,
		    "a minimum greater than 0", value);
	if (min > max) {
		format_duration(min, a, sizeof(a));
		format_duration(max, b, sizeof(b));
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
	char	err[UTIL_ERRLEN];

	if (parse_signal(value, &cp->pool->stop_signal, err) != 0)
		return config_parse_error(cp, key, err);
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

/* kill_timeout = DURATION. */
static int
config_key_kill_timeout(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 0,
	    &cp->pool->kill_timeout_ms);
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

/*
 * group = NAME or number: checked now (parse_group()), kept as written and
 * looked up again when a process starts.
 */
static int
config_key_group(struct config_parser *cp, const char *key,
    const char *value)
{
	char		err[UTIL_ERRLEN];
	unsigned	gid;

	if (parse_group(value, &gid, err) != 0) {
		config_error(cp, -EINVAL, "key '%s' of [pool:%s]: %s", key,
		    cp->pool->name, err);
		return -1;
	}
	return config_string_value(cp, key, value, "a group name",
	    &cp->pool->group);
}

/* stdout_log = PATH. */
static int
config_key_stdout_log(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_string_value(cp, key, value, "a file name",
	    &cp->pool->stdout_log);
}

/*
 * limit_memory, limit_cpu, limit_nofile, limit_nproc, limit_core,
 * memory_max, cpu_max, pids_max: each by its grammar in util/limits.c,
 * which `ctl spawn` and the ADMIN spawn verb share.
 */
static int
config_key_limit(struct config_parser *cp, const char *key,
    const char *value)
{
	char	err[UTIL_ERRLEN];
	int	k = limits_find(key);

	if (k < 0 || limits_parse(&cp->pool->limits, (enum limits_key)k,
	    value, err) != 0)
		return config_parse_error(cp, key, k < 0 ? "no such limit" :
		    err);
	return 0;
}

/* True when s[0..len) is a variable name: [A-Za-z_][A-Za-z0-9_]*. */
static bool
config_var_name_valid(const char *s, size_t len)
{
	if (len == 0 || isdigit((unsigned char)*s))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

/* True when the name part of "NAME=VALUE" is a valid variable name. */
static bool
config_env_name_valid(const char *s)
{
	const char	*eq = strchr(s, '=');

	return eq != NULL && config_var_name_valid(s, (size_t)(eq - s));
}

/* environment = NAME=VALUE ... (may repeat; adds to the list). */
static int
config_key_environment(struct config_parser *cp, const char *key,
    const char *value)
{
	struct config_pool	 *p = cp->pool;
	char			**words;
	size_t			  n = strv_len(p->environment);

	if (config_words(cp, key, value, &words) != 0)
		return -1;
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
		if (strv_push(&p->environment, &n, words[i]) != 0) {
			config_error(cp, -ENOMEM, "out of memory");
			goto fail;
		}
	}
	strv_free(words);
	return 0;
fail:
	strv_free(words);
	return -1;
}

/*
 * env_keep = NAME[,NAME...]: variables of patchbayd's own environment that
 * its processes get too. Only names: the values are read when a process
 * starts, so that the file never holds them.
 */
static int
config_key_env_keep(struct config_parser *cp, const char *key,
    const char *value)
{
	char	**v;
	size_t	  i;

	if (config_names(cp, value, &v) != 0)
		return -1;
	for (i = 0; v != NULL && v[i] != NULL; i++) {
		if (!config_var_name_valid(v[i], strlen(v[i]))) {
			config_error(cp, -EINVAL, "key '%s' of [pool:%s]: "
			    "expected variable names (letters, digits and "
			    "'_', not starting with a digit) separated by "
			    "commas or blanks (got '%s')", key, cp->pool->name,
			    v[i]);
			strv_free(v);
			return -1;
		}
		if (strncmp(v[i], "PATCHBAY_", 9) == 0) {
			config_error(cp, -EINVAL, "key '%s' of [pool:%s]: "
			    "PATCHBAY_ variables are set by patchbayd (got "
			    "'%s')", key, cp->pool->name, v[i]);
			strv_free(v);
			return -1;
		}
	}
	if (i == 0) {
		config_error(cp, -EINVAL, "key '%s' of [pool:%s]: expected "
		    "variable names separated by commas or blanks (got '%s')",
		    key, cp->pool->name, value);
		return -1;
	}
	strv_free(cp->pool->env_keep);
	cp->pool->env_keep = v;
	return 0;
}

/* umask = MODE: octal, as socket_mode is read (parse_mode()). */
static int
config_key_umask(struct config_parser *cp, const char *key,
    const char *value)
{
	char		err[UTIL_ERRLEN];
	unsigned	mode;

	if (parse_mode(value, &mode, err) != 0) {
		config_error(cp, -EINVAL, "key '%s' of [pool:%s]: %s", key,
		    cp->pool->name, err);
		return -1;
	}
	cp->pool->umask = (int)mode;
	return 0;
}

/* health_check = WORDS: split as command is. */
static int
config_key_health_check(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_command_value(cp, key, value, &cp->pool->health_check,
	    &cp->pool->health_argv);
}

/* health_interval = DURATION, at least 1ms. */
static int
config_key_health_interval(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 1,
	    &cp->pool->health_interval_ms);
}

/* health_timeout = DURATION, at least 1ms. */
static int
config_key_health_timeout(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 1,
	    &cp->pool->health_timeout_ms);
}

/* health_retries = N, failures in a row that make a process unhealthy. */
static int
config_key_health_retries(struct config_parser *cp, const char *key,
    const char *value)
{
	char		err[UTIL_ERRLEN];
	uint64_t	n;

	if (parse_uint(value, 1, LIMIT_HEALTH_RETRIES_MAX, &n, err) != 0)
		return config_parse_error(cp, key, err);
	cp->pool->health_retries = (int)n;
	return 0;
}

/* start_timeout = DURATION; 0 turns the check off. */
static int
config_key_start_timeout(struct config_parser *cp, const char *key,
    const char *value)
{
	return config_duration_value(cp, key, value, 0,
	    &cp->pool->start_timeout_ms);
}

static const struct config_key config_pool_keys[] = {
	{ "command", config_key_command, false },
	{ "instances", config_key_instances, false },
	{ "functions", config_key_functions, false },
	{ "scale_up_after", config_key_scale_up_after, false },
	{ "idle_timeout", config_key_idle_timeout, false },
	{ "restart", config_key_restart, false },
	{ "success_exit_codes", config_key_success_exit_codes, false },
	{ "max_restarts", config_key_max_restarts, false },
	{ "restart_window", config_key_restart_window, false },
	{ "backoff", config_key_backoff, false },
	{ "healthy_after", config_key_healthy_after, false },
	{ "stop_signal", config_key_stop_signal, false },
	{ "stop_timeout", config_key_stop_timeout, false },
	{ "kill_timeout", config_key_kill_timeout, false },
	{ "directory", config_key_directory, false },
	{ "environment", config_key_environment, true },
	{ "env_keep", config_key_env_keep, false },
	{ "umask", config_key_umask, false },
	{ "user", config_key_user, false },
	{ "group", config_key_group, false },
	{ "stdout_log", config_key_stdout_log, false },
	{ "limit_memory", config_key_limit, false },
	{ "limit_cpu", config_key_limit, false },
	{ "limit_nofile", config_key_limit, false },
	{ "limit_nproc", config_key_limit, false },
	{ "limit_core", config_key_limit, false },
	{ "memory_max", config_key_limit, false },
	{ "cpu_max", config_key_limit, false },
	{ "pids_max", config_key_limit, false },
	{ "health_check", config_key_health_check, false },
	{ "health_interval", config_key_health_interval, false },
	{ "health_timeout", config_key_health_timeout, false },
	{ "health_retries", config_key_health_retries, false },
	{ "start_timeout", config_key_start_timeout, false },
	{ NULL, NULL, false },
};

/* config_parser.seen has a slot for each key. */
_Static_assert(sizeof(config_pool_keys) / sizeof(config_pool_keys[0]) - 1 <=
    CONFIG_MAX_KEYS, "CONFIG_MAX_KEYS is too small");

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
	if (cp->section == SECTION_POOL && p->instances_max > p->instances &&
	    p->functions[0] == NULL) {
		saved = cp->lineno;
		cp->lineno = p->line;
		config_error(cp, -EINVAL, "key 'functions': missing in section "
		    "[pool:%s], whose instances = %d..%d scale on demand: name "
		    "the functions its workers serve", p->name, p->instances,
		    p->instances_max);
		cp->lineno = saved;
		return -1;
	}
	if (cp->section == SECTION_POOL && p->group != NULL &&
	    p->user == NULL) {
		saved = cp->lineno;
		cp->lineno = p->line;
		config_error(cp, -EINVAL, "key 'group': section [pool:%s] "
		    "needs a user too (group replaces the user's own group)",
		    p->name);
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
	if (!parse_name_valid(name)) {
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
	char			 sec[LIMIT_NAME_MAX + 16];
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
		return config_broker_key(cp, name, value) == 0;
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

/*
 * test-config.c: the config file parser (broker/config.c).
 *
 * Every error path is checked for what a user reads: the sentence must
 * name the file, the line and the key (or section) and show the value that
 * was refused. The example config of the issue and the shipped examples
 * must parse into the documented values.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "broker/broker.h"
#include "tests/harness.h"

/* Ends the fragment lists of load_fails(). */
#define END	((const char *)NULL)

/* Writes text to a fresh file and returns its path in buf. */
static void
write_config(const char *text, char *buf, size_t len)
{
	char	 dir[256];
	FILE	*f;

	harness_tmpdir(dir, sizeof(dir));
	snprintf(buf, len, "%s/patchbay.conf", dir);
	f = fopen(buf, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Loads text, which must parse; the caller frees the result. */
static struct config *
load_ok(const char *text)
{
	char		 path[300];
	struct config	*config = NULL;
	char		*cause = NULL;
	int		 error;

	write_config(text, path, sizeof(path));
	error = config_load(path, &config, &cause);
	ck_assert_msg(error == 0, "config_load failed: %s", cause);
	ck_assert_ptr_nonnull(config);
	ck_assert_str_eq(config->path, path);
	return config;
}

/*
 * Loads text, which must fail with -EINVAL and a sentence that starts with
 * "PATH:line: " and holds every fragment (NULL-terminated list).
 */
static void
load_fails(const char *text, int line, ...)
{
	char		 path[300], prefix[320];
	struct config	*config = NULL;
	char		*cause = NULL;
	const char	*frag;
	va_list		 ap;
	int		 error;

	write_config(text, path, sizeof(path));
	error = config_load(path, &config, &cause);
	ck_assert_int_eq(error, -EINVAL);
	ck_assert_ptr_null(config);
	ck_assert_ptr_nonnull(cause);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	ck_assert_msg(strncmp(cause, prefix, strlen(prefix)) == 0,
	    "'%s' does not start with '%s'", cause, prefix);
	va_start(ap, line);
	while ((frag = va_arg(ap, const char *)) != NULL)
		ck_assert_msg(strstr(cause, frag) != NULL,
		    "'%s' does not contain '%s'", cause, frag);
	va_end(ap);
	free(cause);
}

/* The example of the issue, verbatim. */
static const char issue_example[] =
    "[broker]\n"
    "listen = unix:/run/patchbay/patchbay.sock\n"
    "listen = tcp:127.0.0.1:7400\n"
    "log_level = info\n"
    "\n"
    "[pool:thumbs]\n"
    "command = /usr/local/bin/thumb-worker --quality 80\n"
    "instances = 4\n"
    "restart = on-failure          ; always | on-failure | never\n"
    "success_exit_codes = 0\n"
    "max_restarts = 5              ; within restart_window; -1 = unlimited\n"
    "restart_window = 60s\n"
    "backoff = 100ms..30s          ; exponential with jitter, reset after "
    "healthy_after\n"
    "healthy_after = 10s\n"
    "stop_signal = TERM\n"
    "stop_timeout = 10s\n"
    "directory = /srv/thumbs\n"
    "environment = QUALITY=80 MODE=\"fast\"\n"
    "user = thumbs                 ; only when patchbayd runs as root\n";

START_TEST(config_issue_example)
{
	struct config		*c = load_ok(issue_example);
	struct config_pool	*p;

	ck_assert_uint_eq(c->broker.nlisten, 2);
	ck_assert_str_eq(c->broker.listen[0],
	    "unix:/run/patchbay/patchbay.sock");
	ck_assert_str_eq(c->broker.listen[1], "tcp:127.0.0.1:7400");
	ck_assert_int_eq(c->broker.log_level, LOG_LEVEL_INFO);
	ck_assert(!settings_given(&c->broker, SETTINGS_HEARTBEAT));
	ck_assert(!settings_given(&c->broker, SETTINGS_MAX_FRAME));
	ck_assert(!settings_given(&c->broker, SETTINGS_MAX_QUEUE));
	ck_assert(!settings_given(&c->broker, SETTINGS_NO_WORKER_WAIT));
	ck_assert_ptr_null(c->broker.token_file);

	p = TAILQ_FIRST(&c->pools);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_null(TAILQ_NEXT(p, entry));
	ck_assert_ptr_eq(config_pool_find(c, "thumbs"), p);
	ck_assert_ptr_null(config_pool_find(c, "nope"));
	ck_assert_str_eq(p->name, "thumbs");
	ck_assert_str_eq(p->command,
	    "/usr/local/bin/thumb-worker --quality 80");
	ck_assert_str_eq(p->argv[0], "/usr/local/bin/thumb-worker");
	ck_assert_str_eq(p->argv[1], "--quality");
	ck_assert_str_eq(p->argv[2], "80");
	ck_assert_ptr_null(p->argv[3]);
	ck_assert_int_eq(p->instances, 4);
	ck_assert_int_eq(p->restart, RESTART_ON_FAILURE);
	ck_assert_int_eq(p->nsuccess, 1);
	ck_assert_int_eq(p->success_codes[0], 0);
	ck_assert_int_eq(p->max_restarts, 5);
	ck_assert_uint_eq(p->restart_window_ms, 60000);
	ck_assert_uint_eq(p->backoff_min_ms, 100);
	ck_assert_uint_eq(p->backoff_max_ms, 30000);
	ck_assert_uint_eq(p->healthy_after_ms, 10000);
	ck_assert_int_eq(p->stop_signal, SIGTERM);
	ck_assert_uint_eq(p->stop_timeout_ms, 10000);
	ck_assert_str_eq(p->directory, "/srv/thumbs");
	ck_assert_str_eq(p->environment[0], "QUALITY=80");
	ck_assert_str_eq(p->environment[1], "MODE=fast");
	ck_assert_ptr_null(p->environment[2]);
	ck_assert_str_eq(p->user, "thumbs");
	ck_assert_int_eq(p->line, 6);
	config_free(c);
}
END_TEST

START_TEST(config_defaults)
{
	struct config		*c = load_ok("[pool:a]\ncommand = true\n");
	struct config_pool	*p = TAILQ_FIRST(&c->pools);

	ck_assert_uint_eq(c->broker.nlisten, 0);
	ck_assert(!settings_given(&c->broker, SETTINGS_LOG_LEVEL));
	ck_assert(!settings_given(&c->broker, SETTINGS_NO_WORKER_WAIT));
	ck_assert_int_eq(p->instances, 1);
	ck_assert_int_eq(p->restart, RESTART_ON_FAILURE);
	ck_assert_int_eq(p->nsuccess, 1);
	ck_assert_int_eq(p->success_codes[0], 0);
	ck_assert_int_eq(p->max_restarts, 5);
	ck_assert_uint_eq(p->restart_window_ms, 60000);
	ck_assert_uint_eq(p->backoff_min_ms, 100);
	ck_assert_uint_eq(p->backoff_max_ms, 30000);
	ck_assert_uint_eq(p->healthy_after_ms, 10000);
	ck_assert_int_eq(p->stop_signal, SIGTERM);
	ck_assert_uint_eq(p->stop_timeout_ms, 10000);
	ck_assert_ptr_null(p->directory);
	ck_assert_ptr_nonnull(p->environment);
	ck_assert_ptr_null(p->environment[0]);
	ck_assert_ptr_nonnull(p->env_keep);
	ck_assert_ptr_null(p->env_keep[0]);
	ck_assert_int_eq(p->umask, -1);
	ck_assert_ptr_null(p->user);
	ck_assert(!settings_given(&c->broker, SETTINGS_WORKER_MAY_RUN));
	config_free(c);

	/* An empty file is a valid config with nothing in it. */
	c = load_ok("");
	ck_assert(TAILQ_EMPTY(&c->pools));
	config_free(c);
}
END_TEST

START_TEST(config_broker_keys)
{
	struct config	*c = load_ok(
	    "# a comment\n"
	    "; another\n"
	    "[broker]   ; trailing comment\n"
	    "heartbeat = 5s\n"
	    "max_frame = 65536\n"
	    "max_queue = 1000\n"
	    "no_worker_wait = 0\n"
	    "token_file = /etc/patchbay/token#not-a-comment\n"
	    "hello_timeout = 2s\n"
	    "ready_file = /run/patchbay/ready\n"
	    "log_level = debug\n");

	ck_assert_uint_eq(c->broker.heartbeat_ms, 5000);
	ck_assert_uint_eq(c->broker.max_frame, 65536);
	ck_assert_uint_eq(c->broker.max_queue, 1000);
	ck_assert(settings_given(&c->broker, SETTINGS_NO_WORKER_WAIT));
	ck_assert_uint_eq(c->broker.no_worker_wait_ms, 0);
	ck_assert_str_eq(c->broker.token_file,
	    "/etc/patchbay/token#not-a-comment");
	ck_assert_uint_eq(c->broker.hello_timeout_ms, 2000);
	ck_assert_str_eq(c->broker.ready_file, "/run/patchbay/ready");
	ck_assert_int_eq(c->broker.log_level, LOG_LEVEL_DEBUG);
	config_free(c);
}
END_TEST

START_TEST(config_pool_values)
{
	struct config		*c = load_ok(
	    "[pool:x]\n"
	    "command = sh -c 'echo \"hi there\"; exit 3' \"two words\"\n"
	    "restart = always\n"
	    "success_exit_codes = 0, 3 4,5\n"
	    "max_restarts = -1\n"
	    "backoff = 2s\n"
	    "stop_signal = sigint\n"
	    "stop_timeout = 0\n"
	    "healthy_after = 1h\n"
	    "environment = A=1\n"
	    "environment = B=\"x \\\"y\\\" z\" C='$HOME'\n"
	    "  instances = 3\n"
	    "[pool:y.2_z-w]\n"
	    "command = true\n");
	struct config_pool	*p = TAILQ_FIRST(&c->pools);

	ck_assert_str_eq(p->argv[0], "sh");
	ck_assert_str_eq(p->argv[1], "-c");
	ck_assert_str_eq(p->argv[2], "echo \"hi there\"; exit 3");
	ck_assert_str_eq(p->argv[3], "two words");
	ck_assert_ptr_null(p->argv[4]);
	ck_assert_int_eq(p->restart, RESTART_ALWAYS);
	ck_assert_int_eq(p->nsuccess, 4);
	ck_assert_int_eq(p->success_codes[1], 3);
	ck_assert_int_eq(p->success_codes[3], 5);
	ck_assert_int_eq(p->max_restarts, -1);
	ck_assert_uint_eq(p->backoff_min_ms, 2000);
	ck_assert_uint_eq(p->backoff_max_ms, 2000);
	ck_assert_int_eq(p->stop_signal, SIGINT);
	ck_assert_uint_eq(p->stop_timeout_ms, 0);
	ck_assert_uint_eq(p->healthy_after_ms, 3600000);
	ck_assert_str_eq(p->environment[0], "A=1");
	ck_assert_str_eq(p->environment[1], "B=x \"y\" z");
	ck_assert_str_eq(p->environment[2], "C=$HOME");
	ck_assert_ptr_null(p->environment[3]);
	/* An indented line is a line of its own, not a continuation. */
	ck_assert_int_eq(p->instances, 3);
	p = TAILQ_NEXT(p, entry);
	ck_assert_str_eq(p->name, "y.2_z-w");
	config_free(c);
}
END_TEST

START_TEST(config_on_demand_pool)
{
	struct config		*c = load_ok(
	    "[pool:od]\n"
	    "command = true\n"
	    "instances = 0..8\n"
	    "functions = resize, thumb,crop\n"
	    "scale_up_after = 1s\n"
	    "idle_timeout = 5m\n"
	    "kill_timeout = 2s\n"
	    "[pool:fixed]\n"
	    "command = true\n"
	    "instances = 2\n");
	struct config_pool	*p = TAILQ_FIRST(&c->pools);

	ck_assert_int_eq(p->instances, 0);
	ck_assert_int_eq(p->instances_max, 8);
	ck_assert_str_eq(p->functions[0], "resize");
	ck_assert_str_eq(p->functions[1], "thumb");
	ck_assert_str_eq(p->functions[2], "crop");
	ck_assert_ptr_null(p->functions[3]);
	ck_assert_uint_eq(p->scale_up_after_ms, 1000);
	ck_assert_uint_eq(p->idle_timeout_ms, 300000);
	ck_assert_uint_eq(p->kill_timeout_ms, 2000);
	p = TAILQ_NEXT(p, entry);
	ck_assert_int_eq(p->instances, 2);
	ck_assert_int_eq(p->instances_max, 2);
	ck_assert_uint_eq(p->scale_up_after_ms, 200);
	ck_assert_uint_eq(p->idle_timeout_ms, 60000);
	config_free(c);

	load_fails("[pool:a]\ncommand = true\ninstances = 0..4\n", 1,
	    "key 'functions': missing in section [pool:a], whose instances = "
	    "0..4 scale on demand", END);
	load_fails("[pool:a]\ncommand = true\ninstances = 5..2\n"
	    "functions = f\n", 3, "minimum 5 is greater than maximum 2", END);
	load_fails("[pool:a]\ncommand = true\ninstances = 0..x\n", 3,
	    "expected N, or MIN..MAX such as 0..8 (got '0..x')", END);
	load_fails("[pool:a]\ncommand = true\ninstances = 0\n", 3,
	    "key 'instances'", END);
	load_fails("[pool:a]\ncommand = true\nfunctions = ,\n", 3,
	    "key 'functions'", END);
	load_fails("[pool:a]\ncommand = true\nidle_timeout = 0\n", 3,
	    "key 'idle_timeout'", END);
}
END_TEST

START_TEST(config_long_line)
{
	char		*text, *cmd;
	struct config	*c;
	size_t		 n = 3000;

	/* Longer than libinih's 200-byte default. */
	cmd = malloc(n + 1);
	memset(cmd, 'a', n);
	cmd[n] = '\0';
	ck_assert_int_ne(asprintf(&text, "[pool:x]\ncommand = %s\n", cmd), -1);
	c = load_ok(text);
	ck_assert_str_eq(TAILQ_FIRST(&c->pools)->command, cmd);
	config_free(c);
	free(text);

	n = CONFIG_MAX_LINE + 10;
	free(cmd);
	cmd = malloc(n + 1);
	ck_assert_ptr_nonnull(cmd);
	memset(cmd, 'a', n);
	cmd[n] = '\0';
	ck_assert_int_ne(asprintf(&text, "[pool:x]\ncommand = %s\n", cmd), -1);
	load_fails(text, 2, "line is longer than", END);
	free(text);
	free(cmd);
}
END_TEST

START_TEST(config_error_unknown_section)
{
	load_fails("[broker]\n\n[poool:x]\ncommand = true\n", 3,
	    "unknown section [poool:x]", "[broker] or [pool:NAME]", END);
	load_fails("[pool:]\n", 1, "pool name", "got ''", END);
	load_fails("[pool:a/b]\n", 1, "pool name", "got 'a/b'", END);
	load_fails("[broker\n", 1, "missing its ']'", END);
	load_fails("[broker] junk\n", 1, "after section header", END);
	load_fails("[broker]\n[broker]\n", 2, "[broker] appears twice",
	    "first on line 1", END);
}
END_TEST

START_TEST(config_error_unknown_key)
{
	load_fails("[broker]\nlisten = unix:/x\nlissen = unix:/y\n", 3,
	    "unknown key 'lissen'", "[broker]", END);
	load_fails("[pool:a]\ncommand = true\ninstance = 2\n", 3,
	    "unknown key 'instance'", "[pool:a]", END);
	load_fails("command = true\n", 1, "key 'command'",
	    "outside any section", END);
	load_fails("[pool:a]\ncommand = true\ninstances = 2\ninstances = 3\n",
	    4, "key 'instances'", "set twice", "first on line 3", END);
}
END_TEST

START_TEST(config_error_syntax)
{
	load_fails("[broker]\nlisten unix:/x\n", 2, "expected 'key = value'",
	    "listen unix:/x", END);
	load_fails("[broker]\nlisten: unix:/x\n", 2, "expected 'key = value'",
	    END);
	/* What libinih would have merged into the previous value. */
	load_fails("[broker]\nlisten = unix:/a\n    tcp:127.0.0.1:1\n", 3,
	    "expected 'key = value'", "tcp:127.0.0.1:1", END);
}
END_TEST

START_TEST(config_error_bad_duration)
{
	load_fails("[pool:a]\ncommand = true\nstop_timeout = 10x\n", 3,
	    "key 'stop_timeout'", "250ms, 10s, 5m, 2h or 1d",
	    "a bare number being milliseconds", "(got '10x')", END);
	load_fails("[pool:a]\ncommand = true\nhealthy_after = 1.5s\n", 3,
	    "key 'healthy_after'", "(got '1.5s')", END);
	load_fails("[pool:a]\ncommand = true\nrestart_window = 0\n", 3,
	    "key 'restart_window'", "from 1ms to 366d", END);
	load_fails("[pool:a]\ncommand = true\nbackoff = 1s..x\n", 3,
	    "key 'backoff'", "(got '1s..x')", END);
	load_fails("[broker]\nheartbeat = 5 s\n", 2, "key 'heartbeat'",
	    "(got '5 s')", END);
	load_fails("[broker]\nno_worker_wait = -1s\n", 2,
	    "key 'no_worker_wait'", END);
	load_fails("[broker]\nhello_timeout = 2h\n", 2,
	    "key 'hello_timeout'", "from 10ms to 1h", "(got '2h')", END);
}
END_TEST

/* A bare number is milliseconds in the config file too. */
START_TEST(config_bare_duration_is_ms)
{
	struct config		*c = load_ok("[broker]\nheartbeat = 500\n"
	    "max_frame = 64KiB\n[pool:a]\ncommand = true\n"
	    "stop_timeout = 10\n");
	struct config_pool	*p = TAILQ_FIRST(&c->pools);

	ck_assert_uint_eq(c->broker.heartbeat_ms, 500);
	ck_assert_uint_eq(c->broker.max_frame, 65536);
	ck_assert_uint_eq(p->stop_timeout_ms, 10);
	config_free(c);
}
END_TEST

START_TEST(config_error_bad_restart)
{
	load_fails("[pool:a]\ncommand = true\nrestart = sometimes\n", 3,
	    "key 'restart': expected always, on-failure or never "
	    "(got 'sometimes')", END);
}
END_TEST

START_TEST(config_error_bad_signal)
{
	load_fails("[pool:a]\ncommand = true\nstop_signal = SIGFOO\n", 3,
	    "key 'stop_signal'", "signal name", "(got 'SIGFOO')", END);
	load_fails("[pool:a]\ncommand = true\nstop_signal = STOP\n", 3,
	    "key 'stop_signal'", "(got 'STOP')", END);
	load_fails("[pool:a]\ncommand = true\nstop_signal = 15\n", 3,
	    "key 'stop_signal'", "(got '15')", END);
}
END_TEST

START_TEST(config_error_bad_number)
{
	load_fails("[pool:a]\ncommand = true\ninstances = four\n", 3,
	    "key 'instances'", "integer from 1 to 1024", "(got 'four')",
	    END);
	load_fails("[pool:a]\ncommand = true\ninstances = 2x\n", 3,
	    "key 'instances'", "(got '2x')", END);
	load_fails("[pool:a]\ncommand = true\ninstances = 99999999999999999"
	    "999\n", 3, "key 'instances'", END);
	load_fails("[pool:a]\ncommand = true\nmax_restarts = -2\n", 3,
	    "key 'max_restarts'", "-1 for unlimited", "(got '-2')", END);
	load_fails("[pool:a]\ncommand = true\nsuccess_exit_codes = 0 256\n", 3,
	    "key 'success_exit_codes'", "(got '0 256')", END);
	load_fails("[pool:a]\ncommand = true\nsuccess_exit_codes =\n", 3,
	    "key 'success_exit_codes'", END);
	load_fails("[pool:a]\ncommand = true\nsuccess_exit_codes = 1 2 3 4 5 6 "
	    "7 8 9 10 11 12 13 14 15 16 17\n", 3, "key 'success_exit_codes'",
	    "at most 16", END);
	load_fails("[broker]\nmax_frame = 100\n", 2, "key 'max_frame'",
	    "(got '100')", END);
	load_fails("[broker]\nmax_queue = 0\n", 2, "key 'max_queue'", END);
	load_fails("[broker]\nlog_level = loud\n", 2, "key 'log_level'",
	    "error, warn, info or debug", "(got 'loud')", END);
	load_fails("[broker]\nlisten = http://x\n", 2, "key 'listen'",
	    "'http://x'", "unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", END);
	load_fails("[broker]\nlisten = tcp:127.0.0.1\n", 2, "key 'listen'",
	    END);
	load_fails("[broker]\ntoken_file =\n", 2, "key 'token_file'",
	    "expected a file name", END);
	load_fails("[broker]\ntoken = s3cret\n", 2, "unknown key 'token' in "
	    "section [broker]", END);
	load_fails("[broker]\nmax_frame = 1GiB\n", 2, "key 'max_frame'",
	    "from 4KiB to 64MiB", "(got '1GiB')", END);
}
END_TEST

START_TEST(config_error_instances_zero)
{
	load_fails("[pool:a]\ncommand = true\ninstances = 0\n", 3,
	    "key 'instances'", "integer from 1 to 1024", "(got '0')", END);
}
END_TEST

START_TEST(config_error_backoff_order)
{
	load_fails("[pool:a]\ncommand = true\nbackoff = 30s..100ms\n", 3,
	    "key 'backoff'", "minimum 30s is greater than maximum 100ms",
	    "(got '30s..100ms')", END);
	load_fails("[pool:a]\ncommand = true\nbackoff = 0..1s\n", 3,
	    "key 'backoff'", "minimum greater than 0", END);
}
END_TEST

START_TEST(config_error_missing_command)
{
	/* Reported at the pool's header, whether another section follows... */
	load_fails("[broker]\n\n[pool:a]\ninstances = 2\n[pool:b]\n"
	    "command = true\n", 3, "key 'command'", "[pool:a]", END);
	/* ...or the file ends. */
	load_fails("[pool:b]\ncommand = true\n\n[pool:a]\ninstances = 2\n", 4,
	    "key 'command'", "[pool:a]", END);
	load_fails("[pool:a]\ncommand =\n", 2, "key 'command'",
	    "expected a command", END);
	load_fails("[pool:a]\ncommand = \"unterminated\n", 2, "key 'command'",
	    "unterminated double quote", END);
}
END_TEST

START_TEST(config_error_duplicate_pool)
{
	load_fails("[pool:a]\ncommand = true\n\n[pool:b]\ncommand = true\n"
	    "[pool:a]\ncommand = true\n", 6, "[pool:a] appears twice",
	    "first on line 1", END);
}
END_TEST

START_TEST(config_error_missing_file)
{
	struct config	*c = NULL;
	char		*cause = NULL;
	char		 dir[256], path[300], expected[400];

	harness_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/nope.conf", dir);
	ck_assert_int_eq(config_load(path, &c, &cause), -ENOENT);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(cause);
	snprintf(expected, sizeof(expected), "cannot open %s: No such file or "
	    "directory", path);
	ck_assert_str_eq(cause, expected);
	free(cause);
}
END_TEST

START_TEST(config_error_environment)
{
	load_fails("[pool:a]\ncommand = true\nenvironment = QUALITY=80 "
	    "MODE=\"fast\n", 3, "key 'environment'",
	    "unterminated double quote", "(got 'QUALITY=80 MODE=\"fast')",
	    END);
	load_fails("[pool:a]\ncommand = true\nenvironment = A='x\n", 3,
	    "key 'environment'", "unterminated single quote", END);
	load_fails("[pool:a]\ncommand = true\nenvironment = QUALITY\n", 3,
	    "key 'environment'", "NAME=VALUE", "'QUALITY'", END);
	load_fails("[pool:a]\ncommand = true\nenvironment = 1A=x\n", 3,
	    "key 'environment'", "NAME=VALUE", END);
	load_fails("[pool:a]\ncommand = true\nenvironment = PATCHBAY_FD=9\n",
	    3, "key 'environment'", "PATCHBAY_", END);
}
END_TEST

/*
 * env_keep names variables (commas or blanks between) and umask is an
 * octal mode; a bad one is an error naming the pool, the key and the
 * value. worker_may_run is a [broker] yes/no.
 */
START_TEST(config_env_keep_umask_worker_may_run)
{
	struct config		*c;
	struct config_pool	*p;

	c = load_ok("[broker]\nworker_may_run = yes\n"
	    "[pool:a]\ncommand = true\nenv_keep = TZ, http_proxy _X1\n"
	    "umask = 0027\n");
	p = TAILQ_FIRST(&c->pools);
	ck_assert(settings_given(&c->broker, SETTINGS_WORKER_MAY_RUN));
	ck_assert_uint_eq(c->broker.worker_may_run, 1);
	ck_assert_str_eq(p->env_keep[0], "TZ");
	ck_assert_str_eq(p->env_keep[1], "http_proxy");
	ck_assert_str_eq(p->env_keep[2], "_X1");
	ck_assert_ptr_null(p->env_keep[3]);
	ck_assert_int_eq(p->umask, 027);
	config_free(c);
	c = load_ok("[pool:a]\ncommand = true\numask = 000\n");
	ck_assert_int_eq(TAILQ_FIRST(&c->pools)->umask, 0);
	config_free(c);

	load_fails("[pool:a]\ncommand = true\nenv_keep = TZ 1BAD\n", 3,
	    "key 'env_keep' of [pool:a]", "variable names", "(got '1BAD')",
	    END);
	load_fails("[pool:a]\ncommand = true\nenv_keep = A-B\n", 3,
	    "key 'env_keep' of [pool:a]", "(got 'A-B')", END);
	load_fails("[pool:a]\ncommand = true\nenv_keep = A=1\n", 3,
	    "key 'env_keep' of [pool:a]", "(got 'A=1')", END);
	load_fails("[pool:a]\ncommand = true\nenv_keep = PATCHBAY_FD\n", 3,
	    "key 'env_keep' of [pool:a]", "PATCHBAY_", END);
	load_fails("[pool:a]\ncommand = true\nenv_keep = ,\n", 3,
	    "key 'env_keep' of [pool:a]", "variable names", "(got ',')", END);
	load_fails("[pool:a]\ncommand = true\numask = 0800\n", 3,
	    "key 'umask' of [pool:a]", "octal", "(got '0800')", END);
	load_fails("[pool:a]\ncommand = true\numask = 1777\n", 3,
	    "key 'umask' of [pool:a]", "at most 0777", "(got '1777')", END);
	load_fails("[pool:b]\ncommand = true\numask = u=rwx\n", 3,
	    "key 'umask' of [pool:b]", "(got 'u=rwx')", END);
	load_fails("[broker]\nworker_may_run = maybe\n", 2,
	    "key 'worker_may_run'", "(got 'maybe')", END);

	/* group: a group that exists, and only with a user. */
	c = load_ok("[pool:a]\ncommand = true\nuser = root\ngroup = 0\n");
	ck_assert_str_eq(TAILQ_FIRST(&c->pools)->group, "0");
	config_free(c);
	load_fails("[pool:a]\ncommand = true\nuser = root\n"
	    "group = no-such-group-x\n", 4, "key 'group' of [pool:a]",
	    "no group 'no-such-group-x'", END);
	load_fails("[pool:a]\ncommand = true\ngroup = 0\n", 1,
	    "key 'group': section [pool:a] needs a user too", END);
}
END_TEST

/* Loads one shipped example, which must parse. */
static struct config *
load_example(const char *name)
{
	const char	*src = getenv("PATCHBAY_SRCDIR");
	char		 path[512];
	struct config	*c = NULL;
	char		*cause = NULL;

	snprintf(path, sizeof(path), "%s/docs/examples/%s", src != NULL ? src :
	    ".", name);
	ck_assert_msg(config_load(path, &c, &cause) == 0, "%s", cause);
	return c;
}

START_TEST(config_examples_parse)
{
	struct config		*c;
	struct config_pool	*p;

	c = load_example("demo.conf");
	p = config_pool_find(c, "rev");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->instances, 2);
	ck_assert_str_eq(p->argv[0], "patchbay");
	ck_assert_str_eq(p->argv[1], "worker");
	config_free(c);

	c = load_example("patchbay.conf");
	p = config_pool_find(c, "rev");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->command, "patchbay worker rev --exec rev");
	config_free(c);
}
END_TEST

/*
 * log_file in [broker] and stdout_log in a pool: read, copied, compared
 * (a changed stdout_log is a changed pool), and refused empty. The
 * example config that `meson install` ships uses both.
 */
START_TEST(config_log_keys)
{
	struct config		*c;
	struct config_pool	*p, *dup;
	char			 path[512];
	char			*cause = NULL;

	c = load_ok("[broker]\nlog_file = /var/log/pb.log\n"
	    "[pool:a]\ncommand = true\nstdout_log = /var/log/a.log\n");
	ck_assert(settings_given(&c->broker, SETTINGS_LOG_FILE));
	ck_assert_str_eq(c->broker.log_file, "/var/log/pb.log");
	p = config_pool_find(c, "a");
	ck_assert_str_eq(p->stdout_log, "/var/log/a.log");
	dup = config_pool_dup(p);
	ck_assert_str_eq(dup->stdout_log, "/var/log/a.log");
	ck_assert_ptr_ne(dup->stdout_log, p->stdout_log);
	ck_assert(config_pool_equal(p, dup));
	free(dup->stdout_log);
	dup->stdout_log = NULL;
	ck_assert(!config_pool_equal_but_instances(p, dup));
	config_pool_free(dup);
	config_free(c);

	load_fails("[pool:a]\ncommand = true\nstdout_log =\n", 3,
	    "key 'stdout_log': expected a file name (got '')", NULL);
	load_fails("[broker]\nlog_file =\n", 2, "log_file",
	    "expected a file name (got '')", NULL);

	snprintf(path, sizeof(path), "%s/dist/patchbay.conf",
	    getenv("PATCHBAY_SRCDIR"));
	ck_assert_msg(config_load(path, &c, &cause) == 0, "%s", cause);
	ck_assert_str_eq(c->broker.listen[0],
	    "unix:/run/patchbay/patchbay.sock");
	p = config_pool_find(c, "rev");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->stdout_log, "/var/log/patchbay/rev.log");
	config_free(c);
}
END_TEST

START_TEST(config_health_keys)
{
	struct config		*c = load_ok(
	    "[pool:a]\n"
	    "command = true\n"
	    "health_check = sh -c 'curl -fs \"$URL\" >/dev/null' --\n"
	    "health_interval = 2s\n"
	    "health_timeout = 500ms\n"
	    "health_retries = 5\n"
	    "start_timeout = 0\n"
	    "[pool:b]\n"
	    "command = true\n");
	struct config_pool	*p = config_pool_find(c, "a"), *dup;

	ck_assert_str_eq(p->health_check,
	    "sh -c 'curl -fs \"$URL\" >/dev/null' --");
	ck_assert_str_eq(p->health_argv[0], "sh");
	ck_assert_str_eq(p->health_argv[1], "-c");
	ck_assert_str_eq(p->health_argv[2], "curl -fs \"$URL\" >/dev/null");
	ck_assert_str_eq(p->health_argv[3], "--");
	ck_assert_ptr_null(p->health_argv[4]);
	ck_assert_uint_eq(p->health_interval_ms, 2000);
	ck_assert_uint_eq(p->health_timeout_ms, 500);
	ck_assert_int_eq(p->health_retries, 5);
	ck_assert_uint_eq(p->start_timeout_ms, 0);

	/* A copy is deep and equal; each health key makes a difference. */
	dup = config_pool_dup(p);
	ck_assert_ptr_ne(dup->health_check, p->health_check);
	ck_assert_ptr_ne(dup->health_argv, p->health_argv);
	ck_assert_str_eq(dup->health_argv[2], p->health_argv[2]);
	ck_assert(config_pool_equal(p, dup));
	dup->health_retries = 3;
	ck_assert(!config_pool_equal_but_instances(p, dup));
	dup->health_retries = 5;
	dup->start_timeout_ms = 30000;
	ck_assert(!config_pool_equal_but_instances(p, dup));
	config_pool_free(dup);

	/* The defaults: no check, 10s, 5s, 3, and 30s to register. */
	p = config_pool_find(c, "b");
	ck_assert_ptr_null(p->health_check);
	ck_assert_ptr_null(p->health_argv);
	ck_assert_uint_eq(p->health_interval_ms, 10000);
	ck_assert_uint_eq(p->health_timeout_ms, 5000);
	ck_assert_int_eq(p->health_retries, 3);
	ck_assert_uint_eq(p->start_timeout_ms, 30000);
	dup = config_pool_dup(p);
	ck_assert_ptr_null(dup->health_argv);
	dup->health_check = strdup("true");
	ck_assert(!config_pool_equal(p, dup));
	config_pool_free(dup);
	config_free(c);
}
END_TEST

/*
 * The resource limits of a pool: each key by its grammar, none by
 * default, refusals naming the file, the line, the key and the value.
 */
START_TEST(config_limit_keys)
{
	struct config		*c = load_ok(
	    "[pool:a]\n"
	    "command = true\n"
	    "limit_memory = 256MiB\n"
	    "limit_cpu = 2m\n"
	    "limit_nofile = 1024\n"
	    "limit_nproc = 64\n"
	    "limit_core = 0\n"
	    "memory_max = 1GiB\n"
	    "cpu_max = 50%\n"
	    "pids_max = 128\n"
	    "[pool:b]\n"
	    "command = true\n");
	struct config_pool	*p = config_pool_find(c, "a");

	ck_assert_uint_eq(p->limits.set, (1u << LIMITS__MAX) - 1);
	ck_assert_uint_eq(p->limits.value[LIMITS_MEMORY], 256 << 20);
	ck_assert_uint_eq(p->limits.value[LIMITS_CPU], 120);
	ck_assert_uint_eq(p->limits.value[LIMITS_NOFILE], 1024);
	ck_assert_uint_eq(p->limits.value[LIMITS_NPROC], 64);
	ck_assert(limits_has(&p->limits, LIMITS_CORE));
	ck_assert_uint_eq(p->limits.value[LIMITS_CORE], 0);
	ck_assert_uint_eq(p->limits.value[LIMITS_MEMORY_MAX], 1 << 30);
	ck_assert_uint_eq(p->limits.value[LIMITS_CPU_MAX], 50);
	ck_assert_uint_eq(p->limits.value[LIMITS_PIDS_MAX], 128);
	/* None by default: the child has patchbayd's own limits. */
	ck_assert_uint_eq(config_pool_find(c, "b")->limits.set, 0);
	config_free(c);

	load_fails("[pool:a]\ncommand = true\nlimit_memory = 256M\n", 3,
	    "key 'limit_memory': expected a size such as 64KiB, 16MiB or "
	    "1GiB, a bare number being bytes (got '256M')", END);
	load_fails("[pool:a]\ncommand = true\nlimit_memory = 4096\n", 3,
	    "key 'limit_memory': expected a size from 1MiB to 65536GiB (got "
	    "'4096')", END);
	load_fails("[pool:a]\ncommand = true\nlimit_cpu = 1500ms\n", 3,
	    "key 'limit_cpu': expected whole seconds from 1s to 366d, such as "
	    "10s, 5m or 1h (got '1500ms')", END);
	load_fails("[pool:a]\ncommand = true\nlimit_cpu = ten\n", 3,
	    "key 'limit_cpu': expected a duration", "(got 'ten')", END);
	load_fails("[pool:a]\ncommand = true\nlimit_nofile = 2\n", 3,
	    "key 'limit_nofile': expected an integer from 8 to 1048576 (got "
	    "'2')", END);
	load_fails("[pool:a]\ncommand = true\nlimit_nproc = many\n", 3,
	    "key 'limit_nproc': expected an integer from 1 to 4194304 (got "
	    "'many')", END);
	load_fails("[pool:a]\ncommand = true\nlimit_core = -1\n", 3,
	    "key 'limit_core'", "(got '-1')", END);
	load_fails("[pool:a]\ncommand = true\nmemory_max = 0\n", 3,
	    "key 'memory_max': expected a size from 1MiB to 65536GiB (got "
	    "'0')", END);
	load_fails("[pool:a]\ncommand = true\ncpu_max = 0.5\n", 3,
	    "key 'cpu_max': expected a percentage such as 50% or 200% (got "
	    "'0.5')", END);
	load_fails("[pool:a]\ncommand = true\ncpu_max = 0%\n", 3,
	    "key 'cpu_max': expected a percentage from 1% to 100000% (got "
	    "'0%')", END);
	load_fails("[pool:a]\ncommand = true\npids_max = 0\n", 3,
	    "key 'pids_max': expected an integer from 1 to 4194304 (got '0')",
	    END);
	load_fails("[pool:a]\ncommand = true\nlimit_cpu = 1s\n"
	    "limit_cpu = 2s\n", 4, "key 'limit_cpu' is set twice in section "
	    "[pool:a] (first on line 3)", END);
	load_fails("[broker]\nlimit_cpu = 1s\n", 2, "unknown key 'limit_cpu' "
	    "in section [broker]", END);
}
END_TEST

/* The pool example of configuration.md parses into what it says. */
START_TEST(config_docs_example_parses)
{
	char			 path[512], *doc, *start, *end;
	struct config		*c;
	struct config_pool	*p;

	snprintf(path, sizeof(path), "%s/docs/configuration.md",
	    getenv("PATCHBAY_SRCDIR") != NULL ? getenv("PATCHBAY_SRCDIR") :
	    ".");
	doc = harness_read_file(path);
	ck_assert_ptr_nonnull(doc);
	start = strstr(doc, "### Example\n\n```ini\n");
	ck_assert_ptr_nonnull(start);
	start += strlen("### Example\n\n```ini\n");
	end = strstr(start, "```\n");
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	c = load_ok(start);
	free(doc);
	p = config_pool_find(c, "thumbs");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->limits.set, (1u << LIMITS__MAX) - 1);
	ck_assert_uint_eq(p->limits.value[LIMITS_MEMORY], 512 << 20);
	ck_assert_uint_eq(p->limits.value[LIMITS_CPU], 600);
	ck_assert_uint_eq(p->limits.value[LIMITS_NOFILE], 4096);
	ck_assert_uint_eq(p->limits.value[LIMITS_NPROC], 256);
	ck_assert_uint_eq(p->limits.value[LIMITS_CORE], 0);
	ck_assert_uint_eq(p->limits.value[LIMITS_MEMORY_MAX], 2ULL << 30);
	ck_assert_uint_eq(p->limits.value[LIMITS_CPU_MAX], 150);
	ck_assert_uint_eq(p->limits.value[LIMITS_PIDS_MAX], 128);
	config_free(c);
}
END_TEST

START_TEST(config_equal)
{
	struct config		*a = load_ok(issue_example);
	struct config		*b = load_ok(issue_example);
	struct config_pool	*pa = TAILQ_FIRST(&a->pools);
	struct config_pool	*pb = TAILQ_FIRST(&b->pools);
	struct config_pool	*dup;

	ck_assert(config_pool_equal(pa, pb));
	dup = config_pool_dup(pa);
	ck_assert(config_pool_equal(pa, dup));
	ck_assert_ptr_ne(dup->environment, pa->environment);

	pb->instances = 5;
	ck_assert(!config_pool_equal(pa, pb));
	ck_assert(config_pool_equal_but_instances(pa, pb));
	pb->instances = pa->instances;

	free(dup->environment[1]);
	dup->environment[1] = strdup("MODE=slow");
	ck_assert(!config_pool_equal(pa, dup));
	ck_assert(!config_pool_equal_but_instances(pa, dup));
	config_pool_free(dup);

	pb->success_codes[0] = 1;
	ck_assert(!config_pool_equal(pa, pb));
	pb->success_codes[0] = 0;

	/* A changed limit restarts the pool on reload. */
	dup = config_pool_dup(pb);
	ck_assert(config_pool_equal(pa, dup));
	dup->limits.set |= 1u << LIMITS_CPU;
	dup->limits.value[LIMITS_CPU] = 10;
	ck_assert(!config_pool_equal_but_instances(pa, dup));
	pa->limits = dup->limits;
	ck_assert(config_pool_equal(pa, dup));
	dup->limits.value[LIMITS_CPU] = 11;
	ck_assert(!config_pool_equal(pa, dup));
	pa->limits = dup->limits;
	dup->limits.set |= 1u << LIMITS_PIDS_MAX;
	dup->limits.value[LIMITS_PIDS_MAX] = 64;
	ck_assert(!config_pool_equal(pa, dup));
	config_pool_free(dup);
	memset(&pa->limits, 0, sizeof(pa->limits));
	/* So do env_keep and umask, which the processes start with. */
	dup = config_pool_dup(pa);
	ck_assert_ptr_ne(dup->env_keep, pa->env_keep);
	dup->umask = 027;
	ck_assert(!config_pool_equal_but_instances(pa, dup));
	dup->umask = pa->umask;
	strv_free(dup->env_keep);
	dup->env_keep = strv_dup((char *[]){ "TZ", NULL });
	ck_assert(!config_pool_equal_but_instances(pa, dup));
	config_pool_free(dup);
	free(pb->user);
	pb->user = NULL;
	ck_assert(!config_pool_equal(pa, pb));
	config_free(a);
	config_free(b);
	config_free(NULL);
	config_pool_free(NULL);
}
END_TEST

/* The suite. */
static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, config_issue_example);
	tcase_add_test(tc, config_defaults);
	tcase_add_test(tc, config_broker_keys);
	tcase_add_test(tc, config_pool_values);
	tcase_add_test(tc, config_on_demand_pool);
	tcase_add_test(tc, config_long_line);
	tcase_add_test(tc, config_examples_parse);
	tcase_add_test(tc, config_log_keys);
	tcase_add_test(tc, config_limit_keys);
	tcase_add_test(tc, config_health_keys);
	tcase_add_test(tc, config_docs_example_parses);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, config_error_unknown_section);
	tcase_add_test(tc, config_error_unknown_key);
	tcase_add_test(tc, config_error_syntax);
	tcase_add_test(tc, config_error_bad_duration);
	tcase_add_test(tc, config_bare_duration_is_ms);
	tcase_add_test(tc, config_error_bad_restart);
	tcase_add_test(tc, config_error_bad_signal);
	tcase_add_test(tc, config_error_bad_number);
	tcase_add_test(tc, config_error_instances_zero);
	tcase_add_test(tc, config_error_backoff_order);
	tcase_add_test(tc, config_error_missing_command);
	tcase_add_test(tc, config_error_duplicate_pool);
	tcase_add_test(tc, config_error_missing_file);
	tcase_add_test(tc, config_error_environment);
	tcase_add_test(tc, config_env_keep_umask_worker_may_run);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_add_test(tc, config_equal);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(config_suite());
}

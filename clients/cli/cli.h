/*
 * cli.h: the patchbay command-line program's internal header.
 *
 * main.c picks the subcommand and holds the helpers every subcommand shares
 * (option errors, endpoint checks, the exit statuses); values are parsed
 * with util/'s grammar, the same as the broker's flags and config. Each
 * subcommand lives in its own file: run.c submits one job (and hands
 * `run --lines` to batch.c, one job per input line), worker.c serves
 * functions by running a shell command per job, ctl.c talks the admin
 * protocol. Nothing here is part of libpatchbay's public API.
 */
#ifndef PATCHBAY_CLI_H
#define PATCHBAY_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <msgpack.h>

#include "patchbay.h"
#include "util/util.h"

/*
 * Exit statuses, shared by every subcommand and documented in docs/cli.md.
 * 1 and 3..10 mirror a job's terminal status (run); ctl uses 1 for a
 * refusal by the broker.
 */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_CANCELLED = 3,
	CLI_EXIT_TIMEOUT = 4,
	CLI_EXIT_WORKER_LOST = 5,
	CLI_EXIT_NO_WORKER = 6,
	CLI_EXIT_QUEUE_FULL = 7,
	CLI_EXIT_BAD_REQUEST = 8,
	CLI_EXIT_DUPLICATE_ID = 9,
	CLI_EXIT_SHUTTING_DOWN = 10,
	CLI_EXIT_CONNECTION = 11,
	CLI_EXIT_STORE_FAILED = 12,
};

/* The longest UUID string plus its NUL. */
#define CLI_UUID_STRLEN	37

/* main.c */

/* Maps a job's terminal status to the program's exit status. */
int	 cli_exit_for_status(enum pb_status status);

/*
 * Prints "patchbay CMD: bad OPT 'VALUE': " and the sentence err of a util/
 * parser, with the --help hint, and returns CLI_EXIT_USAGE.
 */
int	 cli_bad_value(const char *cmd, const char *opt, const char *value,
	    const char *err);

/*
 * Prints "patchbay CMD: MESSAGE" and a hint to run --help on stderr, and
 * returns CLI_EXIT_USAGE.
 */
int	 cli_usage_error(const char *cmd, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

struct option;

/*
 * Reports what getopt_long() complained about (c is '?' or ':') naming the
 * offending option, and returns CLI_EXIT_USAGE. argv, longopts and optind
 * are the parser's.
 */
int	 cli_option_error(const char *cmd, int c, char *const *argv,
	    const struct option *longopts);

/*
 * Checks that s is an endpoint the library can use. Returns 0, or prints
 * why not and returns CLI_EXIT_USAGE.
 */
int	 cli_check_endpoint(const char *cmd, const char *s);

/* Writes the text form of a 16-byte id into buf (CLI_UUID_STRLEN). */
void	 cli_uuid_string(const uint8_t *id, char *buf);

/* Writes all of buf to fd, retrying on EINTR. 0 or a negative errno. */
int	 cli_write_all(int fd, const void *buf, size_t len);

/* print.c */

/*
 * Prints o (NULL: null) as pretty JSON followed by a newline: numbers stay
 * numbers (durations in ms), binary ids become UUID strings.
 */
void	 print_json(FILE *f, const msgpack_object *o);

/* The value of the string key in the map m (may be NULL), or NULL. */
const msgpack_object	*print_get(const msgpack_object *m, const char *key);

/*
 * Prints o for people: a map as "key: value" lines, an array of maps as a
 * table, other arrays one item a line, "empty" (when not NULL) for an empty
 * array. Keys ending in "_ms" are shown without it and their values as
 * durations ("3m12s"). Returns 0 or -ENOMEM.
 */
int	 print_text(FILE *f, const msgpack_object *o, const char *empty);

/* ctl-stats.c */

/*
 * Prints the answer of `ctl stats` (verb is VERB_STATS), `ctl queues`
 * (VERB_QUEUES) or `ctl jobs` (VERB_JOBS) for people, as one table; returns
 * as print_text().
 */
int	 ctl_stats_print(FILE *f, int verb,
	    const msgpack_object *data, const char *empty);

/* ctl-health.c */

/*
 * Prints the answer of `ctl health` for people: a line per process, then
 * what its last check printed and why it was last found unhealthy,
 * indented; "empty" for an empty array.
 */
void	 ctl_health_print(FILE *f, const msgpack_object *data,
	    const char *empty);

/* run.c */

int	 run_main(int argc, char **argv);
void	 run_usage(FILE *f);

/* job.c */
int	 job_main(int argc, char **argv);
void	 job_usage(FILE *f);

/* Installs SIGINT/SIGTERM handlers that only count (no SA_RESTART). */
void	 run_catch_signals(void);

/* How many SIGINT/SIGTERM arrived since run_catch_signals(): 0, 1 or 2. */
int	 run_signal_count(void);

/*
 * --token-file FILE: the HELLO token is the first line of FILE, for every
 * connection this program makes (as PATCHBAY_TOKEN_FILE; it wins over
 * $PATCHBAY_TOKEN). 0, or -1 having said why.
 */
int	 cli_token_file(const char *cmd, const char *path);

/* --tls-ca, --tls-cert and --tls-key, the same in run, worker and ctl. */
enum { CLI_O_TLS_CA = 0x200, CLI_O_TLS_CERT, CLI_O_TLS_KEY };
#define CLI_TLS_LONGOPTS \
	{ "tls-ca", required_argument, NULL, CLI_O_TLS_CA }, \
	{ "tls-cert", required_argument, NULL, CLI_O_TLS_CERT }, \
	{ "tls-key", required_argument, NULL, CLI_O_TLS_KEY }

/*
 * Takes one of them (opt: CLI_O_TLS_*): checks that the file is readable
 * and sets $PATCHBAY_TLS_CA, _CERT or _KEY for the library. 0, or -1 after
 * saying why on stderr.
 */
int	 cli_tls_option(const char *cmd, int opt, const char *path);

/* How many brokers broker (NULL: the default) lists; 0 when it is bad. */
size_t	 run_broker_count(const char *broker);

/*
 * Connects to broker (NULL: the default) as `patchbay run`. Returns
 * CLI_EXIT_OK with *ret set, or says why on stderr and returns
 * CLI_EXIT_CONNECTION (CLI_EXIT_CANCELLED when a signal came meanwhile).
 */
int	 run_connect(const char *fn, const char *broker, bool spread,
	    struct pb_client **ret);

/*
 * Prints why a job did not succeed on stderr: "patchbay: FN: ... (STATUS)",
 * or "patchbay: FN: line N: ..." when line is not 0. timeout_ms is the
 * job's --timeout (0: none), for the TIMEOUT sentence.
 */
void	 run_explain(const char *fn, uint32_t timeout_ms, uint64_t line,
	    const struct pb_result *r);

/* batch.c */

#define BATCH_IN_FLIGHT_DEFAULT	64
#define BATCH_IN_FLIGHT_MAX	65535

/* The command line of `patchbay run --lines`, parsed by run.c. */
struct batch_opts {
	const char		*fn;
	const char		*broker;	/* NULL: the default endpoint */
	bool			 spread;	/* start at a random broker */
	struct pb_run_options	 ro;		/* every job's options */
	uint32_t		 in_flight;	/* jobs running at once */
	bool			 unordered;	/* print as they finish */
	bool			 null;		/* NUL, not newline, ends lines */
	bool			 verbose;	/* always print the summary */
};

/* Runs one job per line of stdin; returns the exit status. */
int	 batch_main(const struct batch_opts *o);

/* worker.c */

int	 worker_main(int argc, char **argv);
void	 worker_usage(FILE *f);

/* ctl.c */

int	 ctl_main(int argc, char **argv);
void	 ctl_usage(FILE *f);

#endif /* PATCHBAY_CLI_H */

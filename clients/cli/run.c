/*
 * run.c: `patchbay run FN [DATA]`, one job from the command line.
 *
 * The payload is DATA, or all of standard input (read to EOF before
 * connecting, binary-safe); with --lines the parsed command line goes to
 * batch.c instead, which runs one job per input line. The job is submitted
 * with pb_client_submit() and the result awaited with pb_client_dispatch()
 * in 100 ms slices, so a SIGINT or SIGTERM (which only set a flag) is
 * noticed promptly: the first one sends CANCEL and waits up to 2 s for the
 * broker's answer, a second one gives up at once. The result payload goes
 * to stdout byte for byte; every other outcome is one line on stderr and an
 * exit status (cli.h) that names the job's terminal status. The connection,
 * the signal flag and the explanation of a failed job are shared with
 * batch.c.
 *
 * The job's meta is every --meta KEY=VALUE, plus a W3C Trace Context: the
 * traceparent (and tracestate) of the environment, which a traced shell or
 * a job command (`patchbay worker --exec` sets them) hands down, or with
 * --trace a new one when there is none. All of it is checked here with the
 * broker's own rules (proto/meta.c), so a bad key is a usage error. With
 * --json the outcome is one JSON object on stdout, meta included.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clients/cli/cli.h"
#include "proto/proto.h"
#include "util/util.h"

/* Long options without a short one. */
enum { RUN_O_DELAY = 0x300, RUN_O_AT, RUN_O_RETRY_ON_ERROR, RUN_O_BACKOFF,
    RUN_O_UNIQUE };

#define RUN_CANCEL_WAIT_MS	2000	/* how long to wait for CANCEL's answer */
#define RUN_SLICE_MS		100	/* how often a signal is looked at */
#define RUN_MAX_FN		255	/* bytes in a function name */

/* The command line of one `patchbay run`. */
struct run_opts {
	const char		*fn;
	const char		*data;		/* NULL: read stdin */
	const char		*broker;	/* NULL: the default endpoint */
	bool			 spread;	/* start at a random broker */
	struct pb_run_options	 ro;
	bool			 progress;
	bool			 lines;		/* --lines: batch.c runs it */
	struct batch_opts	 batch;		/* --in-flight, --null... */
	const char		*batch_only;	/* a batch option given */
	bool			 json;		/* --json */
	bool			 trace;		/* --trace */
	struct pb_meta		*meta;		/* --meta, then the trace's;
						   owned, argc + 2 entries */
	size_t			 nmeta;
	char			 traceparent[PB_TRACEPARENT_LEN + 1];
};

/* What the result callback hands back to the wait loop. */
struct run_state {
	struct pb_result	*result;	/* owned once set */
};

/* SIGINT/SIGTERM seen while waiting: 0, 1 (cancel) or 2+ (give up). */
static volatile sig_atomic_t	run_signalled;

/* Prints the usage text of `patchbay run` to f. */
void
run_usage(FILE *f)
{
	fprintf(f,
	    "Usage: patchbay run [OPTIONS] FN [DATA]\n"
	    "       patchbay run [OPTIONS] FN --lines < INPUT\n"
	    "\n"
	    "Submits a job for function FN and prints its result payload on\n"
	    "stdout exactly as the worker returned it. The payload is DATA, or\n"
	    "all of standard input when DATA is omitted or '-'.\n"
	    "\n"
	    "Options:\n"
	    "  -t, --timeout D      give up after D (500, 500ms, 10s, 1m;\n"
	    "                       bare numbers are ms; 0: no timeout)\n"
	    "  -r, --retries N      re-dispatch up to N times if the worker "
	    "is lost\n"
	    "  -p, --priority P     -100..100, higher runs first (default 0)\n"
	    "  -d, --detach         do not wait: print the job id once the\n"
	    "                       broker has taken it and exit 0 (a refusal\n"
	    "                       exits with its status); it waits for a\n"
	    "                       worker (detached_ttl)\n"
	    "      --delay D        run no earlier than D from now (10s, 5m,\n"
	    "                       2h, 1d; the timeout counts from then)\n"
	    "      --at TIME        run no earlier than TIME, with its zone:\n"
	    "                       2026-12-24T18:00Z, ...+01:00, @SECONDS\n"
	    "      --retry-on-error N  with -d: try again N times after the\n"
	    "                       worker's ERROR, then the dead list\n"
	    "      --backoff D      before the first retry (default 1s),\n"
	    "                       doubling each time\n"
	    "      --unique KEY     while a job of FN with KEY lives, join it\n"
	    "                       (its result; with -d, its id)\n"
	    "  -n, --nowait         fail with NO_WORKER instead of queueing\n"
	    "  -P, --progress       copy the job's progress messages to stderr\n"
	    "  -m, --meta KEY=VALUE metadata for the worker (repeatable; keys\n"
	    "                       of A-Z a-z 0-9 _ . -, at most 32 and 4 KiB)\n"
	    "  -T, --trace          start a W3C trace (a new traceparent) unless\n"
	    "                       $TRACEPARENT, which is always passed on, is "
	    "set\n"
	    "      --json           print the outcome as one JSON object:\n"
	    "                       id, status, attempts, payload, meta, error\n"
	    "  -b, --broker EP      broker endpoint (unix:PATH, tcp:HOST:PORT),\n"
	    "                       or a list A,B,...: the first that answers,\n"
	    "                       the next one when it is lost (--lines)\n"
	    "  -s, --spread         with a list, start at a random broker so\n"
	    "                       that many clients spread over them\n"
	    "      --token-file F   the HELLO token is F's first line\n"
	    "                       (else $PATCHBAY_TOKEN, $PATCHBAY_TOKEN_FILE)\n"
	    "      --tls-ca F       tls: brokers: trust the CA in F (else\n"
	    "                       $PATCHBAY_TLS_CA, else the system's)\n"
	    "      --tls-cert F     present the client certificate in F, with\n"
	    "      --tls-key F      its key in F ($PATCHBAY_TLS_CERT, _KEY)\n"
	    "  -h, --help           show this help\n"
	    "\n"
	    "Batch mode, one job per line of standard input:\n"
	    "  -l, --lines          each line (without its \\n or \\r\\n) is a "
	    "job's\n"
	    "                       payload, an empty line too; each result is\n"
	    "                       printed on its own line, in input order\n"
	    "  -j, --in-flight N    keep up to N jobs in flight, 1..65535 "
	    "(default %d)\n"
	    "  -u, --unordered      print results as they finish, as "
	    "\"LINE<tab>RESULT\"\n"
	    "  -0, --null           lines and results end with NUL, not newline\n"
	    "                       (for payloads that may hold newlines)\n"
	    "  -v, --verbose        print the summary of outcomes even when all "
	    "are OK\n"
	    "\n"
	    "A failed job still gets its (empty) output line; its reason goes to\n"
	    "stderr as \"patchbay: FN: line N: ...\", with a summary of the\n"
	    "outcomes at the end. With --detach each line's job id is printed.\n"
	    "The exit status is 0 when every job was OK, else that of the first\n"
	    "line that failed (3 after Ctrl-C, 11 when the broker is lost).\n"
	    "\n"
	    "Ctrl-C (or SIGTERM) while waiting cancels the job (with --lines:\n"
	    "stops reading and cancels the running jobs) and waits up to 2 s for\n"
	    "the answer; a second Ctrl-C exits at once.\n"
	    "\n"
	    "Exit status:\n"
	    "   0 OK               1 ERROR (the worker's error on stderr)\n"
	    "   2 usage error      3 CANCELLED\n"
	    "   4 TIMEOUT          5 WORKER_LOST\n"
	    "   6 NO_WORKER        7 QUEUE_FULL\n"
	    "   8 BAD_REQUEST      9 DUPLICATE_ID\n"
	    "  10 SHUTTING_DOWN   11 cannot connect, connection lost, or a\n"
	    "                        protocol error\n"
	    "  12 STORE_FAILED (-d: the broker could not store the job)\n", BATCH_IN_FLIGHT_DEFAULT);
}

/* How many SIGINT/SIGTERM arrived since run_catch_signals(), at most 2. */
int
run_signal_count(void)
{
	return (int)run_signalled;
}

/* Notes a SIGINT or SIGTERM for the wait loop. */
static void
run_signal(int sig)
{
	(void)sig;
	if (run_signalled < 2)
		run_signalled++;
}

/* Reads fd to EOF into a new buffer. 0 or a negative errno. */
static int
run_read_all(int fd, uint8_t **ret, size_t *ret_len)
{
	uint8_t	*buf = NULL, *nbuf;
	size_t	 len = 0, cap = 0;
	ssize_t	 n;

	for (;;) {
		if (len == cap) {
			cap = cap == 0 ? 65536 : cap * 2;
			if ((nbuf = realloc(buf, cap)) == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* Keeps the job's result for the wait loop; takes ownership of r. */
static void
run_result_cb(struct pb_client *c, struct pb_result *r, void *userdata)
{
	struct run_state	*st = userdata;

	(void)c;
	if (st->result != NULL)
		pb_result_free(st->result);
	st->result = r;
}

/* Copies one PROGRESS payload to stderr as it is. */
static void
run_progress_cb(struct pb_client *c, const uint8_t *id, const void *data,
    size_t len, void *userdata)
{
	(void)c;
	(void)id;
	(void)userdata;
	(void)cli_write_all(STDERR_FILENO, data, len);
}

/* True when o's meta has an entry called key. */
static bool
run_has_meta(const struct run_opts *o, const char *key)
{
	for (size_t i = 0; i < o->nmeta; i++) {
		if (strcmp(o->meta[i].key, key) == 0)
			return true;
	}
	return false;
}

/* Appends key=value to o's meta (room for it was made by run_parse()). */
static void
run_add_meta(struct run_opts *o, const char *key, const char *value)
{
	o->meta[o->nmeta].key = key;
	o->meta[o->nmeta].value = value;
	o->nmeta++;
}

/*
 * Completes the job's meta with its trace context and checks the whole
 * with the broker's rules. An explicit --meta traceparent wins; else a
 * valid $TRACEPARENT is passed on, with $TRACESTATE; else --trace makes a
 * new one. A $TRACEPARENT or $TRACESTATE that is not valid is ignored
 * with a warning (W3C: a bad traceparent restarts the trace). Returns -1
 * to go on, else an exit status, having said why.
 */
static int
run_meta(struct run_opts *o)
{
	const char	*tp = getenv("TRACEPARENT"), *ts = getenv("TRACESTATE");
	struct meta_buf	 mb;
	struct pbytes	 raw;
	char		 err[PROTO_ERRLEN];
	size_t		 i;
	int		 r;

	if (!run_has_meta(o, "traceparent") && tp != NULL && *tp != '\0') {
		if (!meta_traceparent_ok((const uint8_t *)tp, strlen(tp))) {
			fprintf(stderr, "patchbay: run: ignoring $TRACEPARENT "
			    "'%.60s': not a W3C traceparent\n", tp);
		} else {
			run_add_meta(o, "traceparent", tp);
			if (ts != NULL && *ts != '\0' &&
			    !run_has_meta(o, "tracestate")) {
				meta_buf_init(&mb);
				meta_buf_add(&mb, "traceparent", 11, tp,
				    strlen(tp));
				meta_buf_add(&mb, "tracestate", 10, ts,
				    strlen(ts));
				if (meta_buf_finish(&mb, &raw, err) != 0)
					fprintf(stderr, "patchbay: run: "
					    "ignoring $TRACESTATE: %s\n", err);
				else
					run_add_meta(o, "tracestate", ts);
			}
		}
	}
	if (o->trace && !run_has_meta(o, "traceparent")) {
		if ((r = pb_traceparent_generate(o->traceparent,
		    sizeof(o->traceparent))) != 0) {
			fprintf(stderr, "patchbay: run: cannot make a "
			    "traceparent: %s\n", strerror(-r));
			return CLI_EXIT_ERROR;
		}
		run_add_meta(o, "traceparent", o->traceparent);
	}
	meta_buf_init(&mb);
	for (i = 0; i < o->nmeta; i++)
		meta_buf_add(&mb, o->meta[i].key, strlen(o->meta[i].key),
		    o->meta[i].value, strlen(o->meta[i].value));
	if (meta_buf_finish(&mb, &raw, err) != 0)
		return cli_usage_error("run", "bad --meta: %s", err);
	o->ro.meta = o->meta;
	o->ro.nmeta = o->nmeta;
	return -1;
}

/* Parses the command line into *o; returns -1 to go on, else an exit. */
static int
run_parse(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ "retries", required_argument, NULL, 'r' },
		{ "priority", required_argument, NULL, 'p' },
		{ "detach", no_argument, NULL, 'd' },
		{ "nowait", no_argument, NULL, 'n' },
		{ "progress", no_argument, NULL, 'P' },
		{ "broker", required_argument, NULL, 'b' },
		{ "spread", no_argument, NULL, 's' },
		{ "token-file", required_argument, NULL, 'K' },
		{ "delay", required_argument, NULL, RUN_O_DELAY },
		{ "at", required_argument, NULL, RUN_O_AT },
		{ "retry-on-error", required_argument, NULL,
		    RUN_O_RETRY_ON_ERROR },
		{ "backoff", required_argument, NULL, RUN_O_BACKOFF },
		{ "unique", required_argument, NULL, RUN_O_UNIQUE },
		CLI_TLS_LONGOPTS,
		{ "help", no_argument, NULL, 'h' },
		{ "lines", no_argument, NULL, 'l' },
		{ "in-flight", required_argument, NULL, 'j' },
		{ "unordered", no_argument, NULL, 'u' },
		{ "null", no_argument, NULL, '0' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "meta", required_argument, NULL, 'm' },
		{ "trace", no_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 }
	};
	char		*eq;
	uint64_t	u;
	int64_t		i;
	char		err[UTIL_ERRLEN];
	int		c, r;

	memset(o, 0, sizeof *o);
	o->batch.in_flight = BATCH_IN_FLIGHT_DEFAULT;
	/* Every argument could be a --meta; the trace adds two. */
	if ((o->meta = calloc((size_t)argc + 2, sizeof(*o->meta))) == NULL) {
		fprintf(stderr, "patchbay: run: out of memory\n");
		return CLI_EXIT_ERROR;
	}
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":t:r:p:dnPb:shlj:u0vm:T", longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'm':
			/* KEY=VALUE: the key ends at the first '='. */
			if ((eq = strchr(optarg, '=')) == NULL)
				return cli_bad_value("run", "--meta", optarg,
				    "expected KEY=VALUE");
			*eq = '\0';
			o->meta[o->nmeta].key = optarg;
			o->meta[o->nmeta].value = eq + 1;
			o->nmeta++;
			break;
		case 'T':
			o->trace = true;
			break;
		case 'J':
			o->json = true;
			break;
		case 'l':
			o->lines = true;
			break;
		case 'j':
			if (parse_uint(optarg, 1, BATCH_IN_FLIGHT_MAX, &u,
			    err) != 0)
				return cli_bad_value("run", "--in-flight",
				    optarg, err);
			o->batch.in_flight = (uint32_t)u;
			o->batch_only = "--in-flight";
			break;
		case 'u':
			o->batch.unordered = true;
			o->batch_only = "--unordered";
			break;
		case '0':
			o->batch.null = true;
			o->batch_only = "--null";
			break;
		case 'v':
			o->batch.verbose = true;
			o->batch_only = "--verbose";
			break;
		case 't':
			if (parse_duration(optarg, 0, LIMIT_TIMEOUT_MAX_MS, &u,
			    err) != 0)
				return cli_bad_value("run", "--timeout", optarg,
				    err);
			o->ro.timeout_ms = (uint32_t)u;
			break;
		case 'r':
			if (parse_uint(optarg, 0, LIMIT_RETRIES_MAX, &u,
			    err) != 0)
				return cli_bad_value("run", "--retries", optarg,
				    err);
			o->ro.retries = (uint32_t)u;
			break;
		case 'p':
			if (parse_int(optarg, LIMIT_PRIORITY_MIN,
			    LIMIT_PRIORITY_MAX, &i, err) != 0)
				return cli_bad_value("run", "--priority",
				    optarg, err);
			o->ro.priority = (int)i;
			break;
		case 'd':
			o->ro.detach = true;
			break;
		case RUN_O_DELAY:
			if (parse_duration(optarg, 1, 366ull * 24 * 3600 * 1000,
			    &u, err) != 0)
				return cli_bad_value("run", "--delay", optarg,
				    err);
			o->ro.delay_ms = u;
			break;
		case RUN_O_RETRY_ON_ERROR:
			if (parse_uint(optarg, 1, 1000, &u, err) != 0)
				return cli_bad_value("run", "--retry-on-error",
				    optarg, err);
			o->ro.retry_on_error = (uint32_t)u;
			break;
		case RUN_O_BACKOFF:
			if (parse_duration(optarg, 1, 24 * 3600 * 1000, &u,
			    err) != 0)
				return cli_bad_value("run", "--backoff", optarg,
				    err);
			o->ro.backoff_ms = u;
			break;
		case RUN_O_UNIQUE:
			if (*optarg == '\0' || strlen(optarg) > 255)
				return cli_bad_value("run", "--unique", optarg,
				    "expected 1 to 255 bytes");
			o->ro.unique = optarg;
			break;
		case RUN_O_AT:
			if (parse_time(optarg, &u, err) != 0)
				return cli_bad_value("run", "--at", optarg, err);
			/* 0 means "none" to the library: the epoch is past. */
			o->ro.run_at_ms = u > 0 ? u : 1;
			break;
		case 'n':
			o->ro.nowait = true;
			break;
		case 'P':
			o->progress = true;
			break;
		case 'b':
			o->broker = optarg;
			break;
		case 's':
			o->spread = true;
			break;
		case 'K':
			if (cli_token_file("run", optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case CLI_O_TLS_CA:
		case CLI_O_TLS_CERT:
		case CLI_O_TLS_KEY:
			if (cli_tls_option("run", c, optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 'h':
			run_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_option_error("run", c, argv, longopts);
		}
	}
	if (optind >= argc)
		return cli_usage_error("run", "missing the function name FN");
	o->fn = argv[optind++];
	if (optind < argc)
		o->data = argv[optind++];
	if (optind < argc)
		return cli_usage_error("run", "unexpected argument '%s' (DATA "
		    "is one argument; quote it, or pipe it on stdin)",
		    argv[optind]);
	if (o->data != NULL && strcmp(o->data, "-") == 0)
		o->data = NULL;
	if (*o->fn == '\0')
		return cli_usage_error("run", "the function name is empty");
	if (strlen(o->fn) > RUN_MAX_FN)
		return cli_usage_error("run", "function name '%.40s...' is "
		    "%zu bytes long (at most %d)", o->fn, strlen(o->fn),
		    RUN_MAX_FN);
	if (o->ro.detach && o->progress)
		return cli_usage_error("run", "--progress cannot be used with "
		    "--detach (a detached job reports nothing)");
	if (o->batch_only != NULL && !o->lines)
		return cli_usage_error("run", "%s only applies with --lines",
		    o->batch_only);
	if (o->lines && o->data != NULL)
		return cli_usage_error("run", "--lines reads the payloads from "
		    "stdin: it takes no DATA argument (got '%s')", o->data);
	if (o->lines && o->progress)
		return cli_usage_error("run", "--progress cannot be used with "
		    "--lines");
	if (o->lines && o->ro.detach && o->batch.unordered)
		return cli_usage_error("run", "--unordered cannot be used with "
		    "--detach (job ids are printed in input order)");
	if (o->json && (o->lines || o->ro.detach))
		return cli_usage_error("run", "--json cannot be used with %s",
		    o->lines ? "--lines" : "--detach");
	if (o->broker != NULL && (r = cli_check_endpoint("run",
	    o->broker)) != 0)
		return r;
	if ((r = run_meta(o)) >= 0)
		return r;
	o->batch.fn = o->fn;
	o->batch.broker = o->broker;
	o->batch.spread = o->spread;
	o->batch.ro = o->ro;
	return -1;
}

/*
 * Prints the one-line explanation of a result that is not OK, "patchbay:
 * FN: ..." or, when line is not 0, "patchbay: FN: line N: ...".
 */
void
run_explain(const char *fn, uint32_t timeout_ms, uint64_t line,
    const struct pb_result *r)
{
	char		 what[512], idstr[CLI_UUID_STRLEN], where[32] = "";
	const char	*err = r->error != NULL && *r->error != '\0' ?
			    r->error : NULL;
	size_t		 elen;

	if (line != 0)
		snprintf(where, sizeof where, "line %llu: ",
		    (unsigned long long)line);
	if (r->status == PB_ERROR) {
		if (err == NULL) {
			fprintf(stderr, "patchbay: %s: %sthe worker reported "
			    "an error without a message (ERROR)\n", fn, where);
			return;
		}
		elen = strlen(err);
		fprintf(stderr, "patchbay: %s: %s%s%s", fn, where, err,
		    err[elen - 1] == '\n' ? "" : "\n");
		return;
	}

	switch (r->status) {
	case PB_CANCELLED:
		snprintf(what, sizeof what, "job cancelled");
		break;
	case PB_TIMEOUT:
		if (timeout_ms != 0)
			snprintf(what, sizeof what, "timed out after %u ms",
			    timeout_ms);
		else
			snprintf(what, sizeof what, "timed out");
		break;
	case PB_WORKER_LOST:
		snprintf(what, sizeof what, "the worker running it was lost "
		    "(%u attempt%s)", r->attempts, r->attempts == 1 ? "" : "s");
		break;
	case PB_NO_WORKER:
		snprintf(what, sizeof what, "no worker for '%s'", fn);
		break;
	case PB_QUEUE_FULL:
		snprintf(what, sizeof what, "the queue for '%s' is full", fn);
		break;
	case PB_BAD_REQUEST:
		snprintf(what, sizeof what, "the broker refused the request");
		break;
	case PB_DUPLICATE_ID:
		cli_uuid_string(r->id, idstr);
		snprintf(what, sizeof what, "job id %s is already in use",
		    idstr);
		break;
	case PB_SHUTTING_DOWN:
		snprintf(what, sizeof what, "the broker is shutting down");
		break;
	case PB_STORE_FAILED:
		snprintf(what, sizeof what, "the broker could not store the "
		    "job (its store is failing)");
		break;
	case PB_DISCONNECTED:
		snprintf(what, sizeof what, "lost the connection to the broker "
		    "before the result");
		break;
	default:
		snprintf(what, sizeof what, "unexpected status");
		break;
	}
	fprintf(stderr, "patchbay: %s: %s%s%s%s (%s)\n", fn, where, what,
	    err != NULL ? ": " : "", err != NULL ? err : "",
	    pb_status_name(r->status));
}

/* True when the n bytes at s are all valid UTF-8. */
static bool
run_is_utf8(const uint8_t *s, size_t n)
{
	size_t	i, l;

	for (i = 0; i < n; i += l) {
		if ((l = proto_utf8_len(s + i, n - i)) == 0)
			return false;
	}
	return true;
}

/*
 * --json: writes the outcome as one JSON object on one line: id, function,
 * status, attempts, payload (a string when it is UTF-8, else base64, as
 * payload_encoding says), meta (what was sent) and error (null for none).
 * Returns the exit status.
 */
static int
run_report_json(const struct run_opts *o, const struct pb_result *r)
{
	char	idstr[CLI_UUID_STRLEN];
	bool	utf8 = run_is_utf8(r->payload, r->len);

	cli_uuid_string(r->id, idstr);
	printf("{\"id\":\"%s\",\"function\":", idstr);
	proto_json_str(stdout, o->fn, strlen(o->fn));
	printf(",\"status\":\"%s\",\"attempts\":%u,\"payload\":",
	    pb_status_name(r->status), r->attempts);
	if (utf8)
		proto_json_str(stdout, r->payload, r->len);
	else {
		putchar('"');
		proto_base64(stdout, r->payload, r->len);
		putchar('"');
	}
	printf(",\"payload_encoding\":\"%s\",\"meta\":{",
	    utf8 ? "utf-8" : "base64");
	for (size_t i = 0; i < o->nmeta; i++) {
		if (i > 0)
			putchar(',');
		proto_json_str(stdout, o->meta[i].key, strlen(o->meta[i].key));
		putchar(':');
		proto_json_str(stdout, o->meta[i].value,
		    strlen(o->meta[i].value));
	}
	fputs("},\"error\":", stdout);
	if (r->error != NULL)
		proto_json_str(stdout, r->error, strlen(r->error));
	else
		fputs("null", stdout);
	fputs("}\n", stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "patchbay: %s: cannot write the result to "
		    "stdout: %s\n", o->fn, strerror(errno));
		return CLI_EXIT_ERROR;
	}
	return cli_exit_for_status(r->status);
}

/* Writes the result out and returns the exit status it stands for. */
static int
run_report(const struct run_opts *o, const struct pb_result *r)
{
	int	e;

	if (o->json)
		return run_report_json(o, r);
	if (r->status == PB_ACCEPTED) {
		char	idstr[CLI_UUID_STRLEN];

		cli_uuid_string(r->id, idstr);
		printf("%s\n", idstr);
		return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
	}
	if (r->len > 0 && (e = cli_write_all(STDOUT_FILENO, r->payload,
	    r->len)) < 0) {
		fprintf(stderr, "patchbay: %s: cannot write the result (%zu "
		    "bytes) to stdout: %s\n", o->fn, r->len, strerror(-e));
		return CLI_EXIT_ERROR;
	}
	if (r->status != PB_OK)
		run_explain(o->fn, o->ro.timeout_ms, 0, r);
	return cli_exit_for_status(r->status);
}

/* Installs the flag-setting SIGINT/SIGTERM handlers (no SA_RESTART). */
void
run_catch_signals(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = run_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/*
 * Waits for the job's result, cancelling it on the first signal. Returns
 * the exit status.
 */
static int
run_wait(struct pb_client *c, const struct run_opts *o, struct run_state *st,
    const uint8_t *id)
{
	uint64_t	deadline = 0;
	bool		cancelled = false;
	int		r;

	while (st->result == NULL) {
		if (run_signalled >= 2) {
			fprintf(stderr, "patchbay: %s: cancel sent, not waiting "
			    "for its answer (CANCELLED)\n", o->fn);
			return CLI_EXIT_CANCELLED;
		}
		if (run_signalled > 0 && !cancelled) {
			cancelled = true;
			deadline = clock_now_ms() + RUN_CANCEL_WAIT_MS;
			r = pb_client_cancel(c, id);
			if (r < 0 && r != -ENOENT) {
				fprintf(stderr, "patchbay: %s: cannot send the "
				    "cancel: %s\n", o->fn, strerror(-r));
				return CLI_EXIT_CONNECTION;
			}
		}
		if (cancelled && clock_now_ms() >= deadline) {
			fprintf(stderr, "patchbay: %s: no answer to the cancel "
			    "within %d s; disconnecting cancels the job "
			    "(CANCELLED)\n", o->fn, RUN_CANCEL_WAIT_MS / 1000);
			return CLI_EXIT_CANCELLED;
		}
		r = pb_client_dispatch(c, RUN_SLICE_MS);
		if (r < 0 && r != -EINTR && r != -ETIMEDOUT && r != -EAGAIN) {
			if (st->result != NULL)
				break;
			fprintf(stderr, "patchbay: %s: lost the connection to "
			    "the broker: %s%s%s\n", o->fn, strerror(-r),
			    *pb_client_last_error(c) != '\0' ? ": " : "",
			    pb_client_last_error(c));
			return CLI_EXIT_CONNECTION;
		}
	}
	return run_report(o, st->result);
}

/* How many brokers broker (NULL: the default endpoint) lists; 0 if bad. */
size_t
run_broker_count(const char *broker)
{
	char	def[PATH_MAX + 64], err[UTIL_ERRLEN], **eps;
	size_t	n;

	if (broker == NULL) {
		if (pb_default_endpoint(def, sizeof(def)) != 0)
			return 0;
		broker = def;
	}
	if (endpoint_list_split(broker, &eps, err) != 0)
		return 0;
	n = strv_len(eps);
	strv_free(eps);
	return n;
}

/*
 * Connects to broker (NULL: the default endpoint) as `patchbay run`.
 * Returns CLI_EXIT_OK with *ret set, or, having said why on stderr,
 * CLI_EXIT_CONNECTION, or CLI_EXIT_CANCELLED when a signal came meanwhile.
 */
int
run_connect(const char *fn, const char *broker, bool spread,
    struct pb_client **ret)
{
	struct pb_options	 popts = {
		.name = "patchbay run",
		.spread = spread,
	};
	struct pb_client	*c;
	char			 ep[512];
	int			 r;

	if (broker != NULL)
		snprintf(ep, sizeof ep, "%s", broker);
	else if (pb_default_endpoint(ep, sizeof ep) < 0)
		snprintf(ep, sizeof ep, "(the default endpoint)");
	if ((r = pb_client_connect(broker, &popts, &c)) < 0) {
		if (run_signalled > 0) {
			fprintf(stderr, "patchbay: %s: interrupted before the "
			    "job was submitted\n", fn);
			return CLI_EXIT_CANCELLED;
		}
		/* The library's sentence names the endpoint and the cause. */
		if (*pb_client_last_error(NULL) != '\0')
			fprintf(stderr, "patchbay: %s: %s\n", fn,
			    pb_client_last_error(NULL));
		else if (r == -EPROTO)
			fprintf(stderr, "patchbay: %s: the broker at %s "
			    "refused the handshake\n", fn, ep);
		else
			fprintf(stderr, "patchbay: %s: cannot connect to %s: "
			    "%s\n", fn, ep, strerror(-r));
		return CLI_EXIT_CONNECTION;
	}
	*ret = c;
	return CLI_EXIT_OK;
}

/* Entry point of `patchbay run`. */
int
run_main(int argc, char **argv)
{
	struct run_opts		 o;
	struct run_state	 st = { NULL };
	struct pb_client	*c = NULL;
	uint8_t			*buf = NULL, id[PB_ID_LEN];
	const void		*payload;
	size_t			 len = 0;
	int			 r, ret;

	if ((ret = run_parse(argc, argv, &o)) >= 0) {
		free(o.meta);
		return ret;
	}
	if (o.lines) {
		ret = batch_main(&o.batch);
		free(o.meta);
		return ret;
	}

	if (o.data != NULL) {
		payload = o.data;
		len = strlen(o.data);
	} else {
		if ((r = run_read_all(STDIN_FILENO, &buf, &len)) < 0) {
			fprintf(stderr, "patchbay: %s: cannot read the payload "
			    "from stdin: %s\n", o.fn, strerror(-r));
			return CLI_EXIT_USAGE;
		}
		payload = buf;
	}

	/*
	 * From here a signal only sets the flag: once the job is submitted
	 * it may start at once, and a Ctrl-C must become a CANCEL, however
	 * early it comes.
	 */
	run_catch_signals();

	if ((ret = run_connect(o.fn, o.broker, o.spread, &c)) != CLI_EXIT_OK)
		goto out;

	if (run_signalled > 0) {
		fprintf(stderr, "patchbay: %s: interrupted before the job was "
		    "submitted\n", o.fn);
		ret = CLI_EXIT_CANCELLED;
		goto out;
	}
	r = pb_client_submit(c, o.fn, payload, len, &o.ro, run_result_cb,
	    o.progress ? run_progress_cb : NULL, &st, id);
	if (r < 0) {
		if (r == -EMSGSIZE) {
			if (*pb_client_last_error(c) != '\0')
				fprintf(stderr, "patchbay: %s: %s "
				    "(BAD_REQUEST)\n", o.fn,
				    pb_client_last_error(c));
			else
				fprintf(stderr, "patchbay: %s: the payload "
				    "(%zu bytes) is larger than the broker "
				    "accepts (BAD_REQUEST)\n", o.fn, len);
			ret = CLI_EXIT_BAD_REQUEST;
		} else {
			fprintf(stderr, "patchbay: %s: cannot submit the job: "
			    "%s\n", o.fn, r == -EINVAL &&
			    *pb_client_last_error(c) != '\0' ?
			    pb_client_last_error(c) : strerror(-r));
			ret = r == -EINVAL ? CLI_EXIT_BAD_REQUEST :
			    CLI_EXIT_CONNECTION;
		}
		goto out;
	}
	free(buf);
	buf = NULL;

	/* Detached: the wait is for ACCEPTED, or the refusal. */
	ret = run_wait(c, &o, &st, id);
out:
	pb_result_free(st.result);
	pb_client_free(c);
	free(buf);
	free(o.meta);
	return ret;
}

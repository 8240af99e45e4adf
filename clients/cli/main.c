/*
 * main.c: the patchbay program's entry point.
 *
 * It makes sure descriptors 0-2 exist (the worker hands pipes to children
 * and must not have one land on them), ignores SIGPIPE (a write to a closed
 * socket or pipe is an error to report, not a reason to die), then hands
 * argv, minus the program name, to the subcommand. It also owns the small
 * parsing and reporting helpers the subcommands share, so that every
 * option error reads the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "config.h"
#include "clients/cli/cli.h"
#include "util/util.h"

/* One subcommand: its name, entry point, usage text and summary. */
struct main_cmd {
	const char	*name;
	int		(*run)(int, char **);
	void		(*usage)(FILE *);
	const char	*summary;
};

static const struct main_cmd main_cmds[] = {
	{ "run", run_main, run_usage, "submit a job and print its result" },
	{ "worker", worker_main, worker_usage,
	    "serve functions by running a shell command per job" },
	{ "job", job_main, job_usage,
	    "where a job is, and a finished detached job's result" },
	{ "ctl", ctl_main, ctl_usage, "query and control the broker" },
};

#define MAIN_NCMDS	(sizeof(main_cmds) / sizeof(main_cmds[0]))

/* Prints the top-level usage text to f. */
static void
main_usage(FILE *f)
{
	size_t	i;

	fprintf(f,
	    "Usage: patchbay COMMAND [OPTIONS] [ARGS]\n"
	    "       patchbay help COMMAND\n"
	    "       patchbay --version\n"
	    "\n"
	    "Commands:\n");
	for (i = 0; i < MAIN_NCMDS; i++)
		fprintf(f, "  %-8s %s\n", main_cmds[i].name,
		    main_cmds[i].summary);
	fprintf(f,
	    "\n"
	    "The broker endpoint is --broker ENDPOINT (unix:PATH, tcp:HOST:PORT,\n"
	    "tls:HOST:PORT, or a list A,B,... of brokers), else $PATCHBAY_BROKER\n"
	    "(the same),\n"
	    "else unix:$PATCHBAY_SOCKET, else\n"
	    "unix:$XDG_RUNTIME_DIR/patchbay.sock, else\n"
	    "unix:/tmp/patchbay-$UID/patchbay.sock.\n"
	    "Run 'patchbay COMMAND --help' for a command's options and exit "
	    "statuses.\n");
}

/* Finds a subcommand by name, or NULL. */
static const struct main_cmd *
main_find(const char *name)
{
	size_t	i;

	for (i = 0; i < MAIN_NCMDS; i++) {
		if (strcmp(main_cmds[i].name, name) == 0)
			return &main_cmds[i];
	}
	return NULL;
}

/* Opens /dev/null on any of descriptors 0, 1 and 2 that is closed. */
static void
main_fix_stdio(void)
{
	int	fd;

	for (;;) {
		fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			return;
		if (fd > 2) {
			close(fd);
			return;
		}
	}
}

/* Prints that name is no command, with the list, and returns usage. */
static int
main_unknown(const char *name)
{
	size_t	i;

	fprintf(stderr, "patchbay: unknown command '%s' (commands:", name);
	for (i = 0; i < MAIN_NCMDS; i++)
		fprintf(stderr, " %s", main_cmds[i].name);
	fprintf(stderr, ")\nTry 'patchbay --help'.\n");
	return CLI_EXIT_USAGE;
}

/* Picks the subcommand from argv[1] and runs it. */
int
main(int argc, char **argv)
{
	const struct main_cmd	*cmd;
	struct sigaction	 sa;

	main_fix_stdio();
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);

	if (argc < 2) {
		main_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		main_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("patchbay %s\n", PATCHBAY_VERSION);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			main_usage(stdout);
			return CLI_EXIT_OK;
		}
		if (argc > 3) {
			fprintf(stderr, "patchbay: help expects one command "
			    "name, got %d\nTry 'patchbay --help'.\n", argc - 2);
			return CLI_EXIT_USAGE;
		}
		if ((cmd = main_find(argv[2])) == NULL)
			return main_unknown(argv[2]);
		cmd->usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argv[1][0] == '-') {
		fprintf(stderr, "patchbay: unknown option '%s' before the "
		    "command\nTry 'patchbay --help'.\n", argv[1]);
		return CLI_EXIT_USAGE;
	}
	if ((cmd = main_find(argv[1])) == NULL)
		return main_unknown(argv[1]);
	return cmd->run(argc - 1, argv + 1);
}

/* Maps a job's terminal status to the program's exit status. */
int
cli_exit_for_status(enum pb_status status)
{
	switch (status) {
	case PB_OK:
	case PB_ACCEPTED:
		return CLI_EXIT_OK;
	case PB_ERROR:
		return CLI_EXIT_ERROR;
	case PB_CANCELLED:
		return CLI_EXIT_CANCELLED;
	case PB_TIMEOUT:
		return CLI_EXIT_TIMEOUT;
	case PB_WORKER_LOST:
		return CLI_EXIT_WORKER_LOST;
	case PB_NO_WORKER:
		return CLI_EXIT_NO_WORKER;
	case PB_QUEUE_FULL:
		return CLI_EXIT_QUEUE_FULL;
	case PB_BAD_REQUEST:
		return CLI_EXIT_BAD_REQUEST;
	case PB_DUPLICATE_ID:
		return CLI_EXIT_DUPLICATE_ID;
	case PB_SHUTTING_DOWN:
		return CLI_EXIT_SHUTTING_DOWN;
	case PB_DISCONNECTED:
		return CLI_EXIT_CONNECTION;
	case PB_STORE_FAILED:
		return CLI_EXIT_STORE_FAILED;
	}
	return CLI_EXIT_CONNECTION;
}

/*
 * Reports a value that util/'s grammar refused: "bad --OPT 'VALUE':
 * expected ...", without the parser's "(got ...)" that would say VALUE
 * twice. Returns CLI_EXIT_USAGE.
 */
int
cli_bad_value(const char *cmd, const char *opt, const char *value,
    const char *err)
{
	const char	*got = strstr(err, " (got '");
	int		 n = got != NULL ? (int)(got - err) : (int)strlen(err);

	return cli_usage_error(cmd, "bad %s '%s': %.*s", opt, value, n, err);
}

/* Prints a usage error for cmd and returns CLI_EXIT_USAGE. */
int
cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list	ap;

	fprintf(stderr, "patchbay %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'patchbay %s --help'.\n", cmd);
	return CLI_EXIT_USAGE;
}

/* Reports getopt_long()'s complaint about the option it just looked at. */
int
cli_option_error(const char *cmd, int c, char *const *argv,
    const struct option *longopts)
{
	const char	*opt = argv[optind - 1], *eq;
	char		 shortopt[3] = { '-', (char)optopt, '\0' };
	size_t		 n;

	/*
	 * argv[optind - 1] is the offending word for a long option; for a
	 * short one inside a cluster ("-xq") optopt names it better.
	 */
	if (optopt != 0 && (opt[0] != '-' || opt[1] != '-'))
		opt = shortopt;
	if (c == ':')
		return cli_usage_error(cmd, "option '%s' needs a value", opt);
	if (opt[0] == '-' && opt[1] == '-' && (eq = strchr(opt, '=')) != NULL) {
		/* "--flag=value": a known flag given a value, or unknown. */
		n = (size_t)(eq - opt - 2);
		for (; longopts->name != NULL; longopts++) {
			if (strlen(longopts->name) == n &&
			    strncmp(longopts->name, opt + 2, n) == 0)
				return cli_usage_error(cmd, "option '%.*s' "
				    "takes no value", (int)(n + 2), opt);
		}
		return cli_usage_error(cmd, "unknown option '%.*s'",
		    (int)(n + 2), opt);
	}
	return cli_usage_error(cmd, "unknown option '%s'", opt);
}

/* --token-file: see cli.h. */
int
cli_token_file(const char *cmd, const char *path)
{
	if (access(path, R_OK) != 0) {
		fprintf(stderr, "patchbay %s: --token-file %s: %s\n", cmd, path,
		    strerror(errno));
		return -1;
	}
	if (setenv("PATCHBAY_TOKEN_FILE", path, 1) != 0 ||
	    unsetenv("PATCHBAY_TOKEN") != 0) {
		fprintf(stderr, "patchbay %s: out of memory\n", cmd);
		return -1;
	}
	return 0;
}

/* --tls-ca, --tls-cert, --tls-key: see cli.h. */
int
cli_tls_option(const char *cmd, int opt, const char *path)
{
	static const char *const	 vars[][2] = {
		{ "tls-ca", "PATCHBAY_TLS_CA" },
		{ "tls-cert", "PATCHBAY_TLS_CERT" },
		{ "tls-key", "PATCHBAY_TLS_KEY" },
	};
	const char *const		*v = vars[opt - CLI_O_TLS_CA];

	if (access(path, R_OK) != 0) {
		fprintf(stderr, "patchbay %s: --%s %s: %s\n", cmd, v[0], path,
		    strerror(errno));
		return -1;
	}
	if (setenv(v[1], path, 1) != 0) {
		fprintf(stderr, "patchbay %s: out of memory\n", cmd);
		return -1;
	}
	return 0;
}

/* Checks an endpoint's (or a list's) spelling before connecting. */
int
cli_check_endpoint(const char *cmd, const char *s)
{
	char	err[UTIL_ERRLEN], **eps;
	int	r;

	if ((r = endpoint_list_split(s, &eps, err)) == -ENOMEM)
		return cli_usage_error(cmd, "out of memory");
	if (r < 0)
		return cli_usage_error(cmd, "bad --broker '%s': %s", s, err);
	strv_free(eps);
	return 0;
}

/* Writes the lowercase UUID form of id into buf. */
void
cli_uuid_string(const uint8_t *id, char *buf)
{
	uuid_unparse_lower(id, buf);
}

/* Writes all of buf to fd, retrying on EINTR and short writes. */
int
cli_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

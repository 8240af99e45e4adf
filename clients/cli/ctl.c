/*
 * ctl.c: `patchbay ctl VERB [ARGS]`, the admin command.
 *
 * libpatchbay has no public admin API; this file packs the verb's
 * arguments and sends them with the library's internal admin_call()
 * (clients/lib/admin.c), which does the connection, the handshake and the
 * wait for the REPLY. Verbs are a table checked before connecting: a verb
 * this program does not know, a missing argument or an option that does
 * not apply is a usage error, never a round trip. The REPLY's data is
 * printed by print.c, as JSON (--json) or for people.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "clients/cli/cli.h"
#include "clients/lib/internal.h"
#include "proto/proto.h"
#include "util/util.h"

#define CTL_CONNECT_MS		5000	/* connect and handshake */
#define CTL_REPLY_MS		30000	/* REPLY wait, plus stop's timeout */
#define CTL_FOLLOW_MS		100	/* stop: how often ps is asked */

/* Options that only some verbs take. */
#define CTL_OPT_RESTART		(1u << 0)
#define CTL_OPT_MAX_RESTARTS	(1u << 1)
#define CTL_OPT_TIMEOUT		(1u << 2)
#define CTL_OPT_FORCE		(1u << 3)
#define CTL_OPT_FN		(1u << 4)
#define CTL_OPT_CLIENT		(1u << 5)
#define CTL_OPT_STATE		(1u << 6)
#define CTL_OPT_LIMIT		(1u << 7)
/* --limit-memory, --limit-cpu, ...: one bit per setrlimit() limit. */
#define CTL_OPT_RLIMIT(k)	(1u << (8 + (k)))
#define CTL_OPT_RLIMITS		(((1u << LIMITS_NRLIMITS) - 1) << 8)
#define CTL_OPT_ALL		(CTL_OPT_RLIMIT(LIMITS_NRLIMITS - 1) << 1)
#define CTL_OPT_LAST		CTL_OPT_ALL

/* How a verb's arguments become the ADMIN args map. */
enum ctl_args {
	CTL_ARGS_NONE,		/* {} */
	CTL_ARGS_ID,		/* {id} */
	CTL_ARGS_SPAWN,		/* {id, argv, restart?, max_restarts?,
				   limit_memory?, ...} */
	CTL_ARGS_STOP,		/* {id, timeout_ms?, force?} */
	CTL_ARGS_SCALE,		/* {pool, instances} */
	CTL_ARGS_JOBS,		/* {fn?, client?, state?, limit?} */
	CTL_ARGS_DRAIN,		/* {timeout_ms?} */
	CTL_ARGS_OPT_ID,	/* {id?} */
	CTL_ARGS_DEAD,		/* {id?, all?, fn?} */
};

/* How `patchbay ctl` takes one verb's arguments (names: proto/names.c). */
struct ctl_verb {
	enum admin_verb	 verb;
	enum ctl_args	 args;
	unsigned	 opts;		/* CTL_OPT_* it accepts */
	const char	*synopsis;
	const char	*empty;		/* printed for an empty array */
};

static const struct ctl_verb ctl_verbs[VERB__MAX] = {
	[VERB_STATUS] = { VERB_STATUS, CTL_ARGS_NONE, 0, "status", NULL },
	[VERB_WORKERS] = { VERB_WORKERS, CTL_ARGS_NONE, 0, "workers",
	    "no workers connected" },
	[VERB_FUNCTIONS] = { VERB_FUNCTIONS, CTL_ARGS_NONE, 0, "functions",
	    "no functions" },
	[VERB_PS] = { VERB_PS, CTL_ARGS_NONE, 0, "ps",
	    "no supervised processes" },
	[VERB_SPAWN] = { VERB_SPAWN, CTL_ARGS_SPAWN,
	    CTL_OPT_RESTART | CTL_OPT_MAX_RESTARTS | CTL_OPT_RLIMITS,
	    "spawn ID [--restart always|on-failure|never] [--max-restarts N] "
	    "[--limit-memory SIZE] [--limit-cpu D] [--limit-nofile N] "
	    "[--limit-nproc N] [--limit-core SIZE] -- CMD [ARGS...]", NULL },
	[VERB_STOP] = { VERB_STOP, CTL_ARGS_STOP,
	    CTL_OPT_TIMEOUT | CTL_OPT_FORCE, "stop ID [--timeout D] [--force]",
	    NULL },
	[VERB_RESTART] = { VERB_RESTART, CTL_ARGS_ID, 0, "restart ID", NULL },
	[VERB_PAUSE] = { VERB_PAUSE, CTL_ARGS_ID, 0, "pause ID", NULL },
	[VERB_RESUME] = { VERB_RESUME, CTL_ARGS_ID, 0, "resume ID", NULL },
	[VERB_SCALE] = { VERB_SCALE, CTL_ARGS_SCALE, 0, "scale POOL N", NULL },
	[VERB_RELOAD] = { VERB_RELOAD, CTL_ARGS_NONE, 0, "reload", NULL },
	[VERB_SHUTDOWN] = { VERB_SHUTDOWN, CTL_ARGS_NONE, 0, "shutdown",
	    NULL },
	[VERB_STATS] = { VERB_STATS, CTL_ARGS_NONE, 0, "stats", NULL },
	[VERB_COUNT] = { VERB_COUNT, CTL_ARGS_NONE, 0, "count", NULL },
	[VERB_JOBS] = { VERB_JOBS, CTL_ARGS_JOBS,
	    CTL_OPT_FN | CTL_OPT_CLIENT | CTL_OPT_STATE | CTL_OPT_LIMIT,
	    "jobs [--fn F] [--client CONN|NAME] [--state queued|running|delayed] "
	    "[--limit N]", NULL },
	[VERB_QUEUES] = { VERB_QUEUES, CTL_ARGS_NONE, 0, "queues",
	    "no functions" },
	[VERB_DRAIN] = { VERB_DRAIN, CTL_ARGS_DRAIN, CTL_OPT_TIMEOUT,
	    "drain [--timeout D]", NULL },
	[VERB_HEALTH] = { VERB_HEALTH, CTL_ARGS_OPT_ID, 0, "health [ID]",
	    "no supervised processes" },
	[VERB_CANCEL] = { VERB_CANCEL, CTL_ARGS_ID, 0, "cancel JOB-ID", NULL },
	[VERB_DEAD] = { VERB_DEAD, CTL_ARGS_DEAD, CTL_OPT_FN, "dead [--fn F]",
	    "no dead jobs" },
	[VERB_KICK] = { VERB_KICK, CTL_ARGS_DEAD, CTL_OPT_FN | CTL_OPT_ALL,
	    "kick JOB-ID | kick --all [--fn F]", NULL },
	[VERB_DROP] = { VERB_DROP, CTL_ARGS_DEAD, CTL_OPT_FN | CTL_OPT_ALL,
	    "drop JOB-ID | drop --all [--fn F]", NULL },
};

#define CTL_NVERBS	VERB__MAX

/* A parsed `patchbay ctl` command line. */
struct ctl_cmd {
	const struct ctl_verb	*verb;
	const char		*name;		/* the verb's */
	const char		*broker;	/* NULL: the default endpoint */
	bool			 json;
	unsigned		 given;		/* CTL_OPT_* present */
	const char		*restart;
	const char		*fn;		/* jobs' filters */
	const char		*client;
	const char		*state;
	uint64_t		 limit;
	int64_t			 max_restarts;
	const char		*rlimits[LIMITS_NRLIMITS]; /* as given */
	uint64_t		 timeout_ms;
	const char		*id;		/* ID or POOL */
	uint64_t		 instances;
	char *const		*argv;		/* spawn's command */
	int			 argc;
};

/* Prints the usage text of `patchbay ctl` to f. */
void
ctl_usage(FILE *f)
{
	size_t	i;

	fprintf(f,
	    "Usage: patchbay ctl [--json] [--broker EP] VERB [ARGS]\n"
	    "\n"
	    "Sends one admin request to the broker and prints its answer.\n"
	    "The admin role is only accepted over the broker's unix socket,\n"
	    "from the broker's own user or root.\n"
	    "\n"
	    "Verbs:\n");
	for (i = 0; i < CTL_NVERBS; i++)
		fprintf(f, "  %-10s %s\n", admin_verb_name(i), admin_verb_help(i));
	fprintf(f, "\nSynopses:\n");
	for (i = 0; i < CTL_NVERBS; i++)
		fprintf(f, "  patchbay ctl %s\n", ctl_verbs[i].synopsis);
	fprintf(f,
	    "\n"
	    "Options:\n"
	    "  -j, --json              print the answer as JSON\n"
	    "  -b, --broker EP         broker endpoint (unix:PATH; a list A,B:\n"
	    "                          the first that answers)\n"
	    "      --restart POLICY    spawn: always, on-failure or never\n"
	    "      --max-restarts N    spawn: give up after N restarts\n"
	    "      --limit-memory SIZE spawn: address space (RLIMIT_AS)\n"
	    "      --limit-cpu D       spawn: CPU time in whole seconds, then\n"
	    "                          SIGXCPU (RLIMIT_CPU)\n"
	    "      --limit-nofile N    spawn: open files (RLIMIT_NOFILE)\n"
	    "      --limit-nproc N     spawn: processes of its user\n"
	    "                          (RLIMIT_NPROC)\n"
	    "      --limit-core SIZE   spawn: core dump size (RLIMIT_CORE)\n"
	    "      --timeout D         stop, drain: how long the running jobs\n"
	    "                          may take (500ms, 10s, 1m;\n"
	    "                          bare numbers are ms)\n"
	    "      --force             stop: SIGKILL at once\n"
	    "      --token-file F      the HELLO token is F's first line\n"
	    "      --tls-ca F          tls: brokers: trust the CA in F (else\n"
	    "                          $PATCHBAY_TLS_CA, else the system's)\n"
	    "      --tls-cert F        present the client certificate in F,\n"
	    "      --tls-key F         with its key in F ($PATCHBAY_TLS_CERT,\n"
	    "                          $PATCHBAY_TLS_KEY)\n"
	    "      --fn F              jobs, dead, kick --all, drop --all: only\n"
	    "                          those of function F\n"
	    "      --all               kick, drop: every dead job (of --fn)\n"
	    "      --client C          jobs: only those of client C (its\n"
	    "                          connection number or HELLO name)\n"
	    "      --state S           jobs: queued, running or delayed\n"
	    "      --limit N           jobs: list at most N (default 1000)\n"
	    "  -h, --help              show this help\n"
	    "\n"
	    "Exit status:\n"
	    "   0 done\n"
	    "   1 the broker refused (its reason is printed)\n"
	    "   2 usage error (unknown verb, missing argument, bad option)\n"
	    "  11 cannot connect, connection lost, or a protocol error\n");
}

/* Finds a verb by name, or NULL. */
static const struct ctl_verb *
ctl_verb_find(const char *name)
{
	int	v = admin_verb_from_name(name, strlen(name));

	return v >= 0 ? &ctl_verbs[v] : NULL;
}

/* The long name of a CTL_OPT_* bit, for messages. */
static const char *
ctl_opt_name(unsigned bit)
{
	switch (bit) {
	case CTL_OPT_RESTART:
		return "--restart";
	case CTL_OPT_MAX_RESTARTS:
		return "--max-restarts";
	case CTL_OPT_TIMEOUT:
		return "--timeout";
	case CTL_OPT_FORCE:
		return "--force";
	case CTL_OPT_FN:
		return "--fn";
	case CTL_OPT_CLIENT:
		return "--client";
	case CTL_OPT_STATE:
		return "--state";
	case CTL_OPT_LIMIT:
		return "--limit";
	case CTL_OPT_ALL:
		return "--all";
	case CTL_OPT_RLIMIT(LIMITS_MEMORY):
		return "--limit-memory";
	case CTL_OPT_RLIMIT(LIMITS_CPU):
		return "--limit-cpu";
	case CTL_OPT_RLIMIT(LIMITS_NOFILE):
		return "--limit-nofile";
	case CTL_OPT_RLIMIT(LIMITS_NPROC):
		return "--limit-nproc";
	case CTL_OPT_RLIMIT(LIMITS_CORE):
		return "--limit-core";
	}
	return "?";
}

/* Prints that name is no verb, with the list, and returns usage. */
static int
ctl_unknown_verb(const char *name)
{
	size_t	i;

	fprintf(stderr, "patchbay ctl: unknown verb '%s' (verbs:", name);
	for (i = 0; i < CTL_NVERBS; i++)
		fprintf(stderr, " %s", admin_verb_name(i));
	fprintf(stderr, ")\nTry 'patchbay ctl --help'.\n");
	return CLI_EXIT_USAGE;
}

/*
 * getopt would take a negative number among the arguments ("scale rev -1")
 * for an option; find one first and say what is wrong with it. Returns -1
 * when there is none, else CLI_EXIT_USAGE.
 */
static int
ctl_negative_arg(int argc, char **argv)
{
	static const char *const takes_value[] = { "-b", "--broker",
	    "--restart", "--max-restarts", "--timeout", "--fn", "--client",
	    "--state", "--limit", "--limit-memory", "--limit-cpu",
	    "--limit-nofile", "--limit-nproc", "--limit-core" };
	const char	*verb = NULL;
	char		 err[UTIL_ERRLEN];
	uint64_t	 n;
	bool		 value;

	for (int i = 1; i < argc; i++) {
		value = false;
		for (size_t k = 0; k < sizeof(takes_value) /
		    sizeof(takes_value[0]); k++)
			value |= strcmp(argv[i - 1], takes_value[k]) == 0;
		if (value)
			continue;
		if (argv[i][0] != '-') {
			if (verb == NULL)
				verb = argv[i];
			continue;
		}
		if (argv[i][1] < '0' || argv[i][1] > '9' ||
		    argv[i][1 + strspn(argv[i] + 1, "0123456789")] != '\0')
			continue;
		if (verb != NULL && strcmp(verb, "scale") == 0) {
			parse_uint(argv[i], 0, LIMIT_INSTANCES_MAX, &n, err);
			return cli_bad_value("ctl", "instance count",
			    argv[i], err);
		}
		return cli_usage_error("ctl", "unexpected negative number "
		    "'%s'", argv[i]);
	}
	return -1;
}

/*
 * Parses the command line into *cmd; returns -1 to go on, else an exit
 * status. Everything after the first "--" is left to the verb (spawn's
 * command), so the command's own options are never taken for ours.
 */
static int
ctl_parse(int argc, char **argv, struct ctl_cmd *cmd)
{
	enum { O_RESTART = 256, O_MAX_RESTARTS, O_TIMEOUT, O_FORCE, O_FN,
	    O_CLIENT, O_STATE, O_LIMIT, O_TOKEN_FILE, O_ALL,
	    O_RLIMIT };	/* O_RLIMIT + key */
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "broker", required_argument, NULL, 'b' },
		{ "restart", required_argument, NULL, O_RESTART },
		{ "max-restarts", required_argument, NULL, O_MAX_RESTARTS },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "force", no_argument, NULL, O_FORCE },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		CLI_TLS_LONGOPTS,
		{ "fn", required_argument, NULL, O_FN },
		{ "all", no_argument, NULL, O_ALL },
		{ "client", required_argument, NULL, O_CLIENT },
		{ "state", required_argument, NULL, O_STATE },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "limit-memory", required_argument, NULL,
		    O_RLIMIT + LIMITS_MEMORY },
		{ "limit-cpu", required_argument, NULL, O_RLIMIT + LIMITS_CPU },
		{ "limit-nofile", required_argument, NULL,
		    O_RLIMIT + LIMITS_NOFILE },
		{ "limit-nproc", required_argument, NULL,
		    O_RLIMIT + LIMITS_NPROC },
		{ "limit-core", required_argument, NULL, O_RLIMIT + LIMITS_CORE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *const	*pos, *const *rest = NULL;
	enum restart_policy policy;
	struct limits	 limits;
	char		 err[UTIL_ERRLEN];
	int		 dd, npos, nrest = 0, c, r;
	unsigned	 bit;

	memset(cmd, 0, sizeof *cmd);
	for (dd = 1; dd < argc; dd++) {
		if (strcmp(argv[dd], "--") == 0)
			break;
	}
	if (dd < argc) {
		rest = argv + dd + 1;
		nrest = argc - dd - 1;
	}

	if ((r = ctl_negative_arg(dd, argv)) >= 0)
		return r;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(dd, argv, ":jb:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			cmd->json = true;
			break;
		case 'b':
			cmd->broker = optarg;
			break;
		case 'h':
			ctl_usage(stdout);
			return CLI_EXIT_OK;
		case O_RESTART:
			if (parse_restart(optarg, &policy, err) != 0)
				return cli_bad_value("ctl", "--restart", optarg,
				    err);
			cmd->restart = optarg;
			cmd->given |= CTL_OPT_RESTART;
			break;
		case O_MAX_RESTARTS:
			if (parse_int(optarg, -1, LIMIT_RESTARTS_MAX,
			    &cmd->max_restarts, err) != 0)
				return cli_bad_value("ctl", "--max-restarts",
				    optarg, err);
			cmd->given |= CTL_OPT_MAX_RESTARTS;
			break;
		case O_TIMEOUT:
			if (parse_duration(optarg, 0, LIMIT_STOP_TIMEOUT_MAX_MS,
			    &cmd->timeout_ms, err) != 0)
				return cli_bad_value("ctl", "--timeout", optarg,
				    err);
			cmd->given |= CTL_OPT_TIMEOUT;
			break;
		case O_FORCE:
			cmd->given |= CTL_OPT_FORCE;
			break;
		case O_TOKEN_FILE:
			if (cli_token_file("ctl", optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case CLI_O_TLS_CA:
		case CLI_O_TLS_CERT:
		case CLI_O_TLS_KEY:
			if (cli_tls_option("ctl", c, optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case O_ALL:
			cmd->given |= CTL_OPT_ALL;
			break;
		case O_FN:
			if (*optarg == '\0')
				return cli_usage_error("ctl", "--fn: the "
				    "function name is empty");
			cmd->fn = optarg;
			cmd->given |= CTL_OPT_FN;
			break;
		case O_CLIENT:
			if (*optarg == '\0')
				return cli_usage_error("ctl", "--client: "
				    "the client is empty");
			cmd->client = optarg;
			cmd->given |= CTL_OPT_CLIENT;
			break;
		case O_STATE:
			if (strcmp(optarg, "queued") != 0 &&
			    strcmp(optarg, "running") != 0 &&
			    strcmp(optarg, "delayed") != 0)
				return cli_bad_value("ctl", "--state", optarg,
				    "expected queued, running or delayed");
			cmd->state = optarg;
			cmd->given |= CTL_OPT_STATE;
			break;
		case O_LIMIT:
			if (parse_uint(optarg, 1, 100000, &cmd->limit,
			    err) != 0)
				return cli_bad_value("ctl", "--limit", optarg,
				    err);
			cmd->given |= CTL_OPT_LIMIT;
			break;
		case O_RLIMIT + LIMITS_MEMORY:
		case O_RLIMIT + LIMITS_CPU:
		case O_RLIMIT + LIMITS_NOFILE:
		case O_RLIMIT + LIMITS_NPROC:
		case O_RLIMIT + LIMITS_CORE:
			/* The broker reads the text again, the same way. */
			memset(&limits, 0, sizeof(limits));
			if (limits_parse(&limits, (enum limits_key)(c -
			    O_RLIMIT), optarg, err) != 0)
				return cli_bad_value("ctl", ctl_opt_name(
				    CTL_OPT_RLIMIT(c - O_RLIMIT)), optarg, err);
			cmd->rlimits[c - O_RLIMIT] = optarg;
			cmd->given |= CTL_OPT_RLIMIT(c - O_RLIMIT);
			break;
		default:
			/* spawn's command given without "--" lands here. */
			for (r = 1; r < dd; r++) {
				if (c == '?' && strcmp(argv[r], "spawn") == 0)
					return cli_usage_error("ctl", "unknown "
					    "option '%s' (spawn's command goes "
					    "after '--': spawn ID -- CMD "
					    "[ARGS...])", argv[optind - 1]);
			}
			return cli_option_error("ctl", c, argv, longopts);
		}
	}
	pos = argv + optind;
	npos = dd - optind;

	if (npos < 1)
		return cli_usage_error("ctl", "missing the VERB");
	if ((cmd->verb = ctl_verb_find(pos[0])) == NULL)
		return ctl_unknown_verb(pos[0]);
	cmd->name = admin_verb_name(cmd->verb->verb);
	for (bit = 1; bit <= CTL_OPT_LAST; bit <<= 1) {
		if ((cmd->given & bit) && !(cmd->verb->opts & bit))
			return cli_usage_error("ctl", "option '%s' does not "
			    "apply to '%s'", ctl_opt_name(bit),
			    cmd->name);
	}
	if (cmd->broker != NULL && (r = cli_check_endpoint("ctl",
	    cmd->broker)) != 0)
		return r;
	pos++;
	npos--;

	if (cmd->verb->args == CTL_ARGS_SPAWN) {
		if (npos < 1)
			return cli_usage_error("ctl", "spawn: missing the ID");
		cmd->id = pos[0];
		if (rest != NULL) {
			if (npos > 1)
				return cli_usage_error("ctl", "spawn: "
				    "unexpected '%s' before '--' (usage: %s)",
				    pos[1], cmd->verb->synopsis);
			cmd->argv = rest;
			cmd->argc = nrest;
		} else {
			cmd->argv = pos + 1;
			cmd->argc = npos - 1;
		}
		if (cmd->argc < 1)
			return cli_usage_error("ctl", "spawn: missing the "
			    "command (usage: %s)", cmd->verb->synopsis);
		if (*cmd->id == '\0')
			return cli_usage_error("ctl", "spawn: the ID is empty");
		return -1;
	}

	/* Elsewhere "--" only ends the options. */
	if (rest != NULL) {
		if (nrest > 0 && npos == 0) {
			pos = rest;
			npos = nrest;
		} else if (nrest > 0)
			return cli_usage_error("ctl", "%s: unexpected '%s' "
			    "(usage: %s)", cmd->name, rest[0],
			    cmd->verb->synopsis);
	}
	switch (cmd->verb->args) {
	case CTL_ARGS_NONE:
	case CTL_ARGS_JOBS:
	case CTL_ARGS_DRAIN:
		if (npos > 0)
			return cli_usage_error("ctl", "%s takes no argument, "
			    "got '%s'", cmd->name, pos[0]);
		break;
	case CTL_ARGS_DEAD:
		if (cmd->verb->verb == VERB_DEAD) {
			if (npos > 0)
				return cli_usage_error("ctl", "dead takes no "
				    "argument, got '%s'", pos[0]);
			break;
		}
		if ((npos == 1) == ((cmd->given & CTL_OPT_ALL) != 0) ||
		    npos > 1)
			return cli_usage_error("ctl", "%s: give one JOB-ID or "
			    "--all (usage: %s)", cmd->name,
			    cmd->verb->synopsis);
		if (npos == 1 && (cmd->given & CTL_OPT_FN))
			return cli_usage_error("ctl", "%s: --fn goes with --all",
			    cmd->name);
		cmd->id = npos == 1 ? pos[0] : NULL;
		break;
	case CTL_ARGS_OPT_ID:
		if (npos > 1)
			return cli_usage_error("ctl", "%s: unexpected '%s' "
			    "(usage: %s)", cmd->name, pos[1],
			    cmd->verb->synopsis);
		if (npos == 1 && *pos[0] == '\0')
			return cli_usage_error("ctl", "%s: the ID is empty",
			    cmd->name);
		cmd->id = npos == 1 ? pos[0] : NULL;
		break;
	case CTL_ARGS_ID:
	case CTL_ARGS_STOP:
		if (npos < 1)
			return cli_usage_error("ctl", "%s: missing the ID "
			    "(usage: %s)", cmd->name,
			    cmd->verb->synopsis);
		if (npos > 1)
			return cli_usage_error("ctl", "%s: unexpected '%s' "
			    "(usage: %s)", cmd->name, pos[1],
			    cmd->verb->synopsis);
		cmd->id = pos[0];
		if (*cmd->id == '\0')
			return cli_usage_error("ctl", "%s: the ID is empty",
			    cmd->name);
		break;
	case CTL_ARGS_SCALE:
		if (npos != 2)
			return cli_usage_error("ctl", "scale: expected POOL "
			    "and N, got %d argument%s", npos,
			    npos == 1 ? "" : "s");
		cmd->id = pos[0];
		if (*cmd->id == '\0')
			return cli_usage_error("ctl", "scale: the POOL is "
			    "empty");
		if (parse_uint(pos[1], 0, LIMIT_INSTANCES_MAX,
		    &cmd->instances, err) != 0)
			return cli_bad_value("ctl", "instance count",
			    pos[1], err);
		break;
	case CTL_ARGS_SPAWN:
		break;
	}
	return -1;
}

/* Packs the verb's ADMIN args map into pk. */
static void
ctl_pack_args(const struct ctl_cmd *cmd, msgpack_packer *pk)
{
	size_t	n;
	int	i;

	switch (cmd->verb->args) {
	case CTL_ARGS_NONE:
		msgpack_pack_map(pk, 0);
		break;
	case CTL_ARGS_ID:
		msgpack_pack_map(pk, 1);
		proto_pack_str(pk, "id");
		proto_pack_str(pk, cmd->id);
		break;
	case CTL_ARGS_OPT_ID:
		msgpack_pack_map(pk, cmd->id != NULL);
		if (cmd->id != NULL) {
			proto_pack_str(pk, "id");
			proto_pack_str(pk, cmd->id);
		}
		break;
	case CTL_ARGS_SPAWN:
		n = 2 + ((cmd->given & CTL_OPT_RESTART) != 0) +
		    ((cmd->given & CTL_OPT_MAX_RESTARTS) != 0);
		for (i = 0; i < LIMITS_NRLIMITS; i++)
			n += cmd->rlimits[i] != NULL;
		msgpack_pack_map(pk, n);
		proto_pack_str(pk, "id");
		proto_pack_str(pk, cmd->id);
		proto_pack_str(pk, "argv");
		msgpack_pack_array(pk, (size_t)cmd->argc);
		for (i = 0; i < cmd->argc; i++)
			proto_pack_str(pk, cmd->argv[i]);
		if (cmd->given & CTL_OPT_RESTART) {
			proto_pack_str(pk, "restart");
			proto_pack_str(pk, cmd->restart);
		}
		if (cmd->given & CTL_OPT_MAX_RESTARTS) {
			proto_pack_str(pk, "max_restarts");
			msgpack_pack_int64(pk, cmd->max_restarts);
		}
		for (i = 0; i < LIMITS_NRLIMITS; i++) {
			if (cmd->rlimits[i] == NULL)
				continue;
			proto_pack_str(pk, limits_name((enum limits_key)i));
			proto_pack_str(pk, cmd->rlimits[i]);
		}
		break;
	case CTL_ARGS_STOP:
		n = 1 + ((cmd->given & CTL_OPT_TIMEOUT) != 0) +
		    ((cmd->given & CTL_OPT_FORCE) != 0);
		msgpack_pack_map(pk, n);
		proto_pack_str(pk, "id");
		proto_pack_str(pk, cmd->id);
		if (cmd->given & CTL_OPT_TIMEOUT) {
			proto_pack_str(pk, "timeout_ms");
			msgpack_pack_uint64(pk, cmd->timeout_ms);
		}
		if (cmd->given & CTL_OPT_FORCE) {
			proto_pack_str(pk, "force");
			msgpack_pack_true(pk);
		}
		break;
	case CTL_ARGS_DRAIN:
		msgpack_pack_map(pk, (cmd->given & CTL_OPT_TIMEOUT) != 0);
		if (cmd->given & CTL_OPT_TIMEOUT) {
			proto_pack_str(pk, "timeout_ms");
			msgpack_pack_uint64(pk, cmd->timeout_ms);
		}
		break;
	case CTL_ARGS_SCALE:
		msgpack_pack_map(pk, 2);
		proto_pack_str(pk, "pool");
		proto_pack_str(pk, cmd->id);
		proto_pack_str(pk, "instances");
		msgpack_pack_uint64(pk, cmd->instances);
		break;
	case CTL_ARGS_DEAD:
		n = (cmd->id != NULL) + (cmd->fn != NULL) +
		    ((cmd->given & CTL_OPT_ALL) != 0);
		msgpack_pack_map(pk, n);
		if (cmd->id != NULL) {
			proto_pack_str(pk, "id");
			proto_pack_str(pk, cmd->id);
		}
		if (cmd->given & CTL_OPT_ALL) {
			proto_pack_str(pk, "all");
			msgpack_pack_true(pk);
		}
		if (cmd->fn != NULL) {
			proto_pack_str(pk, "fn");
			proto_pack_str(pk, cmd->fn);
		}
		break;
	case CTL_ARGS_JOBS:
		n = (cmd->fn != NULL) + (cmd->client != NULL) +
		    (cmd->state != NULL) + ((cmd->given & CTL_OPT_LIMIT) != 0);
		msgpack_pack_map(pk, n);
		if (cmd->fn != NULL) {
			proto_pack_str(pk, "fn");
			proto_pack_str(pk, cmd->fn);
		}
		if (cmd->client != NULL) {
			proto_pack_str(pk, "client");
			proto_pack_str(pk, cmd->client);
		}
		if (cmd->state != NULL) {
			proto_pack_str(pk, "state");
			proto_pack_str(pk, cmd->state);
		}
		if (cmd->given & CTL_OPT_LIMIT) {
			proto_pack_str(pk, "limit");
			msgpack_pack_uint64(pk, cmd->limit);
		}
		break;
	}
}

/* ---- the exchange ------------------------------------------------------ */

/*
 * What a verb that answers nothing did, for people: a line, so that a
 * success is not silence.
 */
static void
ctl_print_done(FILE *f, const struct ctl_cmd *cmd)
{
	switch (cmd->verb->verb) {
	case VERB_STOP:
		break;		/* ctl_follow_stop() says how it ended */
	case VERB_RESTART:
		fprintf(f, "%s: restarting\n", cmd->id);
		break;
	case VERB_PAUSE:
		fprintf(f, "%s: paused\n", cmd->id);
		break;
	case VERB_RESUME:
		fprintf(f, "%s: resumed\n", cmd->id);
		break;
	case VERB_SCALE:
		fprintf(f, "%s: scaling to %llu instance%s\n", cmd->id,
		    (unsigned long long)cmd->instances,
		    cmd->instances == 1 ? "" : "s");
		break;
	case VERB_RELOAD:
		fprintf(f, "configuration reloaded\n");
		break;
	case VERB_SHUTDOWN:
		fprintf(f, "patchbayd is shutting down\n");
		break;
	default:
		break;
	}
}

/* The unsigned integer at key in the map o, or 0. */
static uint64_t
ctl_map_uint(const msgpack_object *o, const char *key)
{
	const msgpack_object	*v = print_get(o, key);

	return v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ?
	    v->via.u64 : 0;
}

/* Copies the string at key in the map o into buf, or "-"; NULL for none. */
static const char *
ctl_map_str(const msgpack_object *o, const char *key, char *buf, size_t len)
{
	const msgpack_object	*v = print_get(o, key);

	snprintf(buf, len, "-");
	if (v == NULL || v->type != MSGPACK_OBJECT_STR)
		return NULL;
	snprintf(buf, len, "%.*s", (int)v->via.str.size, v->via.str.ptr);
	return buf;
}

/* True when the ps entry m is ID's process or one of pool ID's. */
static bool
ctl_ps_matches(const msgpack_object *m, const char *id)
{
	char	buf[256];

	return strcmp(ctl_map_str(m, "id", buf, sizeof(buf)) != NULL ? buf :
	    "", id) == 0 || (ctl_map_str(m, "pool", buf, sizeof(buf)) !=
	    NULL && strcmp(buf, id) == 0);
}

/* Asks the broker for `ps` (an empty args map) into *reply; 0 or errno. */
static int
ctl_ps(const char *ep, struct admin_reply *reply, char *err)
{
	struct pb_options	opts = { .name = "patchbay ctl",
				    .connect_timeout_ms = CTL_CONNECT_MS };

	return admin_call(ep, &opts, "ps", "\x80", 1, CTL_REPLY_MS, reply,
	    err);
}

/*
 * The processes of ID (a process or a pool) that are already down, before
 * a stop: ctl_follow_stop() does not report them. NULL-terminated, NULL on
 * any failure (then every one is reported).
 */
static char **
ctl_down_before(const char *ep, const char *id)
{
	struct admin_reply	 reply;
	const msgpack_object	*a, *m;
	char			 err[PROTO_ERRLEN], buf[256], state[32];
	char			**v = NULL;
	size_t			 n = 0;

	if (ctl_ps(ep, &reply, err) != 0)
		return NULL;
	a = reply.has_data ? &reply.data.data : NULL;
	for (uint32_t i = 0; a != NULL && a->type == MSGPACK_OBJECT_ARRAY &&
	    i < a->via.array.size; i++) {
		m = &a->via.array.ptr[i];
		ctl_map_str(m, "state", state, sizeof(state));
		if (ctl_ps_matches(m, id) && strcmp(state, "running") != 0 &&
		    strcmp(state, "starting") != 0 &&
		    strcmp(state, "paused") != 0 &&
		    strcmp(state, "backoff") != 0 &&
		    ctl_map_str(m, "id", buf, sizeof(buf)) != NULL &&
		    strv_push(&v, &n, buf) != 0)
			break;
	}
	admin_reply_clear(&reply);
	return v;
}

/*
 * After `ctl stop ID` (a process or a pool): follows `ps` until none of
 * its processes is stopping any more, then says for each one it stopped
 * (not those in down, already down before) what the stop did: "stopped
 * rev/1: exit 0 after 2.1s (stopped after its 2 jobs finished)". The
 * broker bounds the wait (stop_timeout, kill_timeout).
 */
static int
ctl_follow_stop(const char *ep, const struct ctl_cmd *cmd, uint64_t t0,
    char *const *down)
{
	struct admin_reply	 reply;
	const msgpack_object	*a, *m;
	char			 err[PROTO_ERRLEN], id[256];
	char			 state[32], last[64], reason[256], d[32];
	bool			 busy;
	unsigned		 told = 0;
	int			 r;

	for (;;) {
		r = ctl_ps(ep, &reply, err);
		if (r != 0) {
			fprintf(stderr, "patchbay ctl: %s: stopping; cannot "
			    "follow it: %s\n", cmd->id, err);
			return CLI_EXIT_CONNECTION;
		}
		a = reply.has_data ? &reply.data.data : NULL;
		busy = false;
		for (uint32_t i = 0; a != NULL && a->type ==
		    MSGPACK_OBJECT_ARRAY && i < a->via.array.size; i++) {
			m = &a->via.array.ptr[i];
			ctl_map_str(m, "state", state, sizeof(state));
			if (ctl_ps_matches(m, cmd->id) &&
			    strcmp(state, "stopping") == 0)
				busy = true;
		}
		if (!busy)
			break;
		admin_reply_clear(&reply);
		usleep(CTL_FOLLOW_MS * 1000);
	}
	format_duration_human(clock_now_ms() - t0, d, sizeof(d));
	for (uint32_t i = 0; a != NULL && a->type == MSGPACK_OBJECT_ARRAY &&
	    i < a->via.array.size; i++) {
		m = &a->via.array.ptr[i];
		ctl_map_str(m, "id", id, sizeof(id));
		if (!ctl_ps_matches(m, cmd->id))
			continue;
		for (size_t k = 0; down != NULL && down[k] != NULL; k++)
			if (strcmp(down[k], id) == 0)
				goto next;
		ctl_map_str(m, "state", state, sizeof(state));
		ctl_map_str(m, "last_exit", last, sizeof(last));
		if (ctl_map_str(m, "reason", reason, sizeof(reason)) != NULL)
			printf("%s %s: %s after %s (%s)\n", state, id, last, d,
			    reason);
		else
			printf("%s %s: %s after %s\n", state, id, last, d);
		told++;
next:
		;
	}
	if (told == 0)
		printf("%s: nothing was running\n", cmd->id);
	admin_reply_clear(&reply);
	return CLI_EXIT_OK;
}

/* drain's answer, for people. */
static void
ctl_print_drain(FILE *f, const msgpack_object *data)
{
	char	d[32];

	format_duration(ctl_map_uint(data, "timeout_ms"), d, sizeof(d));
	fprintf(f, "patchbayd is draining: new jobs are refused; the %llu "
	    "running and %llu queued have up to %s, then it shuts down\n",
	    (unsigned long long)ctl_map_uint(data, "running"),
	    (unsigned long long)ctl_map_uint(data, "queued"), d);
}

/* Prints a REPLY's data or refusal; returns the exit status. */
static int
ctl_print_reply(const struct ctl_cmd *cmd, const struct admin_reply *r)
{
	const msgpack_object	*data = r->has_data ? &r->data.data : NULL;

	if (!r->ok) {
		if (r->error != NULL)
			fprintf(stderr, "patchbay ctl: %s\n", r->error);
		else
			fprintf(stderr, "patchbay ctl: the broker refused "
			    "'%s' without saying why\n", cmd->name);
		return CLI_EXIT_ERROR;
	}
	if (cmd->json)
		print_json(stdout, data);
	else if (data == NULL || data->type == MSGPACK_OBJECT_NIL)
		ctl_print_done(stdout, cmd);
	else if (cmd->verb->verb == VERB_DRAIN)
		ctl_print_drain(stdout, data);
	else if (cmd->verb->verb == VERB_HEALTH)
		ctl_health_print(stdout, data, cmd->verb->empty);
	else if ((cmd->verb->verb == VERB_STATS ||
	    cmd->verb->verb == VERB_QUEUES || cmd->verb->verb == VERB_JOBS ?
	    ctl_stats_print(stdout,
	    cmd->verb->verb, data, cmd->verb->empty) : print_text(stdout,
	    data, cmd->verb->empty)) < 0) {
		fprintf(stderr, "patchbay ctl: out of memory printing the "
		    "reply\n");
		return CLI_EXIT_ERROR;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "patchbay ctl: cannot write the reply to "
		    "stdout: %s\n", strerror(errno));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/*
 * Sends the command's ADMIN through the library's admin call and prints
 * the REPLY. Returns the exit status.
 */
static int
ctl_exchange(const char *ep, const struct ctl_cmd *cmd)
{
	struct pb_options	 opts = { .name = "patchbay ctl",
				    .connect_timeout_ms = CTL_CONNECT_MS };
	struct admin_reply	 reply;
	msgpack_sbuffer		 args;
	msgpack_packer		 pk;
	char			 err[PROTO_ERRLEN];
	uint64_t		 t0;
	char			**down = NULL;
	bool			 follow;
	int			 r, status;

	msgpack_sbuffer_init(&args);
	msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
	ctl_pack_args(cmd, &pk);
	follow = cmd->verb->verb == VERB_STOP && !cmd->json;
	if (follow)
		down = ctl_down_before(ep, cmd->id);
	t0 = clock_now_ms();
	r = admin_call(ep, &opts, cmd->name, args.data, args.size,
	    CTL_REPLY_MS + cmd->timeout_ms, &reply, err);
	msgpack_sbuffer_destroy(&args);
	if (r != 0) {
		fprintf(stderr, "patchbay ctl: %s\n", err);
		strv_free(down);
		return r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_CONNECTION;
	}
	status = ctl_print_reply(cmd, &reply);
	if (status == CLI_EXIT_OK && follow)
		status = ctl_follow_stop(ep, cmd, t0, down);
	admin_reply_clear(&reply);
	strv_free(down);
	return status;
}

/* Entry point of `patchbay ctl`. */
int
ctl_main(int argc, char **argv)
{
	struct ctl_cmd	cmd;
	int		ret;

	if ((ret = ctl_parse(argc, argv, &cmd)) >= 0)
		return ret;
	/* cmd.broker NULL: the library's default endpoint. */
	return ctl_exchange(cmd.broker, &cmd);
}

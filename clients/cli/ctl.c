/*
 * ctl.c: `patchbay ctl VERB [ARGS]`, the admin command.
 *
 * libpatchbay has no public admin API; this file uses the library's
 * internal connection (clients/lib/internal.h) with role "admin": the
 * handshake, PINGs, ERROR and BYE are the library's, and this file sends
 * one ADMIN {seq, verb, args} and prints the REPLY with that seq. Verbs are a table checked before
 * connecting: a verb this program does not know, a missing argument or an
 * option that does not apply is a usage error, never a round trip.
 *
 * The REPLY's data is printed as JSON (--json) or for people: a map as
 * "key: value" lines, an array of maps as a table whose columns are the
 * first map's keys in the order the broker sent them. A 16-byte binary is
 * a job or session id and is shown as a UUID; other binaries as base64.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "clients/cli/cli.h"
#include "clients/lib/internal.h"
#include "proto/proto.h"
#include "util/util.h"

#define CTL_CONNECT_MS		5000	/* connect and handshake */
#define CTL_REPLY_MS		30000	/* REPLY wait, plus stop's timeout */
#define CTL_SEQ			1

/* Options that only some verbs take. */
#define CTL_OPT_RESTART		(1u << 0)
#define CTL_OPT_MAX_RESTARTS	(1u << 1)
#define CTL_OPT_TIMEOUT		(1u << 2)
#define CTL_OPT_FORCE		(1u << 3)

/* How a verb's arguments become the ADMIN args map. */
enum ctl_args {
	CTL_ARGS_NONE,		/* {} */
	CTL_ARGS_ID,		/* {id} */
	CTL_ARGS_SPAWN,		/* {id, argv, restart?, max_restarts?} */
	CTL_ARGS_STOP,		/* {id, timeout_ms?, force?} */
	CTL_ARGS_SCALE,		/* {pool, instances} */
};

/* One verb: its name, arguments, options and help. */
struct ctl_verb {
	const char	*name;
	enum ctl_args	 args;
	unsigned	 opts;		/* CTL_OPT_* it accepts */
	const char	*synopsis;
	const char	*help;
	const char	*empty;		/* printed for an empty array */
};

static const struct ctl_verb ctl_verbs[] = {
	{ "status", CTL_ARGS_NONE, 0, "status",
	    "the broker's counters and gauges", NULL },
	{ "workers", CTL_ARGS_NONE, 0, "workers",
	    "connected workers, local and remote", "no workers connected" },
	{ "functions", CTL_ARGS_NONE, 0, "functions",
	    "known functions with their queues", "no functions" },
	{ "ps", CTL_ARGS_NONE, 0, "ps",
	    "supervised processes: pools and spawned",
	    "no supervised processes" },
	{ "spawn", CTL_ARGS_SPAWN, CTL_OPT_RESTART | CTL_OPT_MAX_RESTARTS,
	    "spawn ID [--restart always|on-failure|never] [--max-restarts N] "
	    "-- CMD [ARGS...]",
	    "start a supervised worker process", NULL },
	{ "stop", CTL_ARGS_STOP, CTL_OPT_TIMEOUT | CTL_OPT_FORCE,
	    "stop ID [--timeout D] [--force]",
	    "stop a supervised process", NULL },
	{ "restart", CTL_ARGS_ID, 0, "restart ID",
	    "restart a supervised process", NULL },
	{ "pause", CTL_ARGS_ID, 0, "pause ID",
	    "SIGSTOP a process or pool; no jobs are dispatched to it", NULL },
	{ "resume", CTL_ARGS_ID, 0, "resume ID",
	    "SIGCONT it and dispatch to it again", NULL },
	{ "scale", CTL_ARGS_SCALE, 0, "scale POOL N",
	    "run N instances of a pool", NULL },
	{ "reload", CTL_ARGS_NONE, 0, "reload",
	    "re-read the configuration file", NULL },
	{ "shutdown", CTL_ARGS_NONE, 0, "shutdown",
	    "stop the broker gracefully", NULL },
};

#define CTL_NVERBS	(sizeof(ctl_verbs) / sizeof(ctl_verbs[0]))

/* A parsed `patchbay ctl` command line. */
struct ctl_cmd {
	const struct ctl_verb	*verb;
	const char		*broker;	/* NULL: the default endpoint */
	bool			 json;
	unsigned		 given;		/* CTL_OPT_* present */
	const char		*restart;
	int64_t			 max_restarts;
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
		fprintf(f, "  %-10s %s\n", ctl_verbs[i].name, ctl_verbs[i].help);
	fprintf(f, "\nSynopses:\n");
	for (i = 0; i < CTL_NVERBS; i++)
		fprintf(f, "  patchbay ctl %s\n", ctl_verbs[i].synopsis);
	fprintf(f,
	    "\n"
	    "Options:\n"
	    "  -j, --json              print the answer as JSON\n"
	    "  -b, --broker EP         broker endpoint (unix:PATH)\n"
	    "      --restart POLICY    spawn: always, on-failure or never\n"
	    "      --max-restarts N    spawn: give up after N restarts\n"
	    "      --timeout D         stop: SIGKILL after D (500ms, 10s, 1m;\n"
	    "                          bare numbers are ms)\n"
	    "      --force             stop: SIGKILL at once\n"
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
	size_t	i;

	for (i = 0; i < CTL_NVERBS; i++) {
		if (strcmp(ctl_verbs[i].name, name) == 0)
			return &ctl_verbs[i];
	}
	return NULL;
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
		fprintf(stderr, " %s", ctl_verbs[i].name);
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
	    "--restart", "--max-restarts", "--timeout" };
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
			return cli_bad_value("ctl", "scale: instance count",
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
	enum { O_RESTART = 256, O_MAX_RESTARTS, O_TIMEOUT, O_FORCE };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "broker", required_argument, NULL, 'b' },
		{ "restart", required_argument, NULL, O_RESTART },
		{ "max-restarts", required_argument, NULL, O_MAX_RESTARTS },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "force", no_argument, NULL, O_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *const	*pos, *const *rest = NULL;
	enum restart_policy policy;
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
	for (bit = 1; bit <= CTL_OPT_FORCE; bit <<= 1) {
		if ((cmd->given & bit) && !(cmd->verb->opts & bit))
			return cli_usage_error("ctl", "option '%s' does not "
			    "apply to '%s'", ctl_opt_name(bit),
			    cmd->verb->name);
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
			    "(usage: %s)", cmd->verb->name, rest[0],
			    cmd->verb->synopsis);
	}
	switch (cmd->verb->args) {
	case CTL_ARGS_NONE:
		if (npos > 0)
			return cli_usage_error("ctl", "%s takes no argument, "
			    "got '%s'", cmd->verb->name, pos[0]);
		break;
	case CTL_ARGS_ID:
	case CTL_ARGS_STOP:
		if (npos < 1)
			return cli_usage_error("ctl", "%s: missing the ID "
			    "(usage: %s)", cmd->verb->name,
			    cmd->verb->synopsis);
		if (npos > 1)
			return cli_usage_error("ctl", "%s: unexpected '%s' "
			    "(usage: %s)", cmd->verb->name, pos[1],
			    cmd->verb->synopsis);
		cmd->id = pos[0];
		if (*cmd->id == '\0')
			return cli_usage_error("ctl", "%s: the ID is empty",
			    cmd->verb->name);
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
			return cli_bad_value("ctl", "scale: instance count",
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
	case CTL_ARGS_SPAWN:
		n = 2 + ((cmd->given & CTL_OPT_RESTART) != 0) +
		    ((cmd->given & CTL_OPT_MAX_RESTARTS) != 0);
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
	case CTL_ARGS_SCALE:
		msgpack_pack_map(pk, 2);
		proto_pack_str(pk, "pool");
		proto_pack_str(pk, cmd->id);
		proto_pack_str(pk, "instances");
		msgpack_pack_uint64(pk, cmd->instances);
		break;
	}
}

/* ---- output ------------------------------------------------------------ */

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
ctl_utf8_len(const uint8_t *s, size_t n)
{
	size_t	len, i;
	uint8_t	lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

/* Writes s as a JSON string: escaped, invalid UTF-8 as U+FFFD. */
static void
ctl_json_str(FILE *f, const char *s, size_t n)
{
	const uint8_t	*p = (const uint8_t *)s;
	size_t		 i = 0, l;

	fputc('"', f);
	while (i < n) {
		if (p[i] == '"' || p[i] == '\\') {
			fputc('\\', f);
			fputc(p[i++], f);
		} else if (p[i] == '\n') {
			fputs("\\n", f);
			i++;
		} else if (p[i] == '\t') {
			fputs("\\t", f);
			i++;
		} else if (p[i] == '\r') {
			fputs("\\r", f);
			i++;
		} else if (p[i] < 0x20) {
			fprintf(f, "\\u%04x", p[i++]);
		} else if ((l = ctl_utf8_len(p + i, n - i)) == 0) {
			fputs("\\ufffd", f);
			i++;
		} else {
			fwrite(p + i, 1, l, f);
			i += l;
		}
	}
	fputc('"', f);
}

/* Writes bin data as text: a UUID for 16 bytes, else base64. */
static void
ctl_bin_text(FILE *f, const char *data, size_t n)
{
	static const char	 b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t		*p = (const uint8_t *)data;
	char			 uuid[CLI_UUID_STRLEN];
	uint32_t		 v;
	size_t			 i;

	if (n == PB_ID_LEN) {
		cli_uuid_string(p, uuid);
		fputs(uuid, f);
		return;
	}
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(b64[(v >> 6) & 63], f);
		fputc(b64[v & 63], f);
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputs("==", f);
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(b64[(v >> 6) & 63], f);
		fputc('=', f);
	}
}

static void	ctl_cell(FILE *, const msgpack_object *);

/* Writes a number the way both printers show it. */
static bool
ctl_number(FILE *f, const msgpack_object *o, bool json)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)o->via.u64);
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)o->via.i64);
		return true;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(o->via.f64))
			fprintf(f, "%.*g", json ? 17 : 6, o->via.f64);
		else
			fputs(json ? "null" : "-", f);
		return true;
	default:
		return false;
	}
}

/* Writes a newline and indentation for pretty JSON. */
static void
ctl_json_indent(FILE *f, int depth)
{
	fputc('\n', f);
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

/* Writes o as pretty-printed JSON. */
static void
ctl_json(FILE *f, const msgpack_object *o, int depth)
{
	char		*key;
	size_t		 keylen;
	FILE		*kf;
	uint32_t	 i;

	if (ctl_number(f, o, true))
		return;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_STR:
		ctl_json_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		fputc('"', f);
		ctl_bin_text(f, o->via.bin.ptr, o->via.bin.size);
		fputc('"', f);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0) {
			fputs("[]", f);
			break;
		}
		fputc('[', f);
		for (i = 0; i < o->via.array.size; i++) {
			ctl_json_indent(f, depth + 1);
			ctl_json(f, &o->via.array.ptr[i], depth + 1);
			if (i + 1 < o->via.array.size)
				fputc(',', f);
		}
		ctl_json_indent(f, depth);
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 0) {
			fputs("{}", f);
			break;
		}
		fputc('{', f);
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];

			ctl_json_indent(f, depth + 1);
			if (kv->key.type == MSGPACK_OBJECT_STR)
				ctl_json_str(f, kv->key.via.str.ptr,
				    kv->key.via.str.size);
			else {
				/* JSON keys are strings: use the cell text. */
				key = NULL;
				keylen = 0;
				if ((kf = open_memstream(&key, &keylen)) !=
				    NULL) {
					ctl_cell(kf, &kv->key);
					fclose(kf);
				}
				ctl_json_str(f, key != NULL ? key : "",
				    key != NULL ? keylen : 0);
				free(key);
			}
			fputs(": ", f);
			ctl_json(f, &kv->val, depth + 1);
			if (i + 1 < o->via.map.size)
				fputc(',', f);
		}
		ctl_json_indent(f, depth);
		fputc('}', f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

/* Writes a string for people: control characters shown as '?'. */
static void
ctl_text_str(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i],
		    f);
}

/*
 * Writes o compactly, for a table cell or after "key: ": nil as "-",
 * arrays joined with ",", maps as k=v pairs.
 */
static void
ctl_cell(FILE *f, const msgpack_object *o)
{
	uint32_t	i;

	if (ctl_number(f, o, false))
		return;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputc('-', f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_STR:
		ctl_text_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		ctl_bin_text(f, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0)
			fputc('-', f);
		for (i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				fputc(',', f);
			ctl_cell(f, &o->via.array.ptr[i]);
		}
		break;
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 0)
			fputc('-', f);
		for (i = 0; i < o->via.map.size; i++) {
			if (i > 0)
				fputc(',', f);
			ctl_cell(f, &o->via.map.ptr[i].key);
			fputc('=', f);
			ctl_cell(f, &o->via.map.ptr[i].val);
		}
		break;
	default:
		fputc('-', f);
		break;
	}
}

/* The cell text of o in a new string (caller frees), or NULL. */
static char *
ctl_cell_string(const msgpack_object *o)
{
	char	*s = NULL;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&s, &len)) == NULL)
		return NULL;
	ctl_cell(f, o);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Columns s takes on a terminal: UTF-8 lead bytes counted. */
static size_t
ctl_width(const char *s)
{
	size_t	w = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	}
	return w;
}

/* True when two map keys are the same (strings compared by bytes). */
static bool
ctl_key_equal(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == MSGPACK_OBJECT_STR)
		return a->via.str.size == b->via.str.size &&
		    memcmp(a->via.str.ptr, b->via.str.ptr,
		    a->via.str.size) == 0;
	return msgpack_object_equal(*a, *b);
}

/* Finds key in map m, or NULL. */
static const msgpack_object *
ctl_map_get(const msgpack_object *m, const msgpack_object *key)
{
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		if (ctl_key_equal(&m->via.map.ptr[i].key, key))
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

/*
 * Prints an array of maps as a table: columns from the first map's keys,
 * upper-cased headers, two spaces between columns. 0 or -ENOMEM.
 */
static int
ctl_print_table(FILE *f, const msgpack_object *arr)
{
	const msgpack_object	*first = &arr->via.array.ptr[0], *v;
	uint32_t		 ncols = first->via.map.size;
	uint32_t		 nrows = arr->via.array.size, r, c;
	char			**cells;
	size_t			*width, w, i;
	int			 ret = 0;

	if (ncols == 0)
		return 0;
	cells = calloc((size_t)(nrows + 1) * ncols, sizeof *cells);
	width = calloc(ncols, sizeof *width);
	if (cells == NULL || width == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (c = 0; c < ncols; c++) {
		if ((cells[c] = ctl_cell_string(&first->via.map.ptr[c].key)) ==
		    NULL) {
			ret = -ENOMEM;
			goto out;
		}
		for (i = 0; cells[c][i] != '\0'; i++) {
			if (cells[c][i] >= 'a' && cells[c][i] <= 'z')
				cells[c][i] = (char)(cells[c][i] - 'a' + 'A');
		}
		width[c] = ctl_width(cells[c]);
	}
	for (r = 0; r < nrows; r++) {
		const msgpack_object *row = &arr->via.array.ptr[r];

		for (c = 0; c < ncols; c++) {
			static const msgpack_object nil = {
				.type = MSGPACK_OBJECT_NIL };

			v = NULL;
			if (row->type == MSGPACK_OBJECT_MAP)
				v = ctl_map_get(row,
				    &first->via.map.ptr[c].key);
			cells[(size_t)(r + 1) * ncols + c] =
			    ctl_cell_string(v != NULL ? v : &nil);
			if (cells[(size_t)(r + 1) * ncols + c] == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			w = ctl_width(cells[(size_t)(r + 1) * ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (r = 0; r <= nrows; r++) {
		for (c = 0; c < ncols; c++) {
			const char *s = cells[(size_t)r * ncols + c];

			fputs(s, f);
			if (c + 1 < ncols) {
				for (w = ctl_width(s); w < width[c] + 2; w++)
					fputc(' ', f);
			}
		}
		fputc('\n', f);
	}
out:
	if (cells != NULL) {
		for (i = 0; i < (size_t)(nrows + 1) * ncols; i++)
			free(cells[i]);
	}
	free(cells);
	free(width);
	return ret;
}

/* True when o is a map or an array (something that needs its own lines). */
static bool
ctl_is_nested(const msgpack_object *o)
{
	return (o->type == MSGPACK_OBJECT_MAP && o->via.map.size > 0) ||
	    (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0 &&
	    (o->via.array.ptr[0].type == MSGPACK_OBJECT_MAP ||
	    o->via.array.ptr[0].type == MSGPACK_OBJECT_ARRAY));
}

/* Prints a map as "key: value" lines, nested maps indented. */
static void
ctl_print_map(FILE *f, const msgpack_object *m, int depth)
{
	uint32_t	i, j;

	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		for (int d = 0; d < depth; d++)
			fputs("  ", f);
		ctl_cell(f, &kv->key);
		fputc(':', f);
		if (!ctl_is_nested(&kv->val)) {
			fputc(' ', f);
			ctl_cell(f, &kv->val);
			fputc('\n', f);
			continue;
		}
		fputc('\n', f);
		if (kv->val.type == MSGPACK_OBJECT_MAP) {
			ctl_print_map(f, &kv->val, depth + 1);
			continue;
		}
		for (j = 0; j < kv->val.via.array.size; j++) {
			for (int d = 0; d <= depth; d++)
				fputs("  ", f);
			fputs("- ", f);
			ctl_cell(f, &kv->val.via.array.ptr[j]);
			fputc('\n', f);
		}
	}
}

/* Prints a REPLY's data for people, by its shape. 0 or -ENOMEM. */
static int
ctl_print_text(FILE *f, const struct ctl_verb *verb, const msgpack_object *o)
{
	uint32_t	i;

	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type == MSGPACK_OBJECT_MAP) {
		ctl_print_map(f, o, 0);
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		if (o->via.array.size == 0) {
			if (verb->empty != NULL)
				fprintf(f, "%s\n", verb->empty);
			return 0;
		}
		if (o->via.array.ptr[0].type == MSGPACK_OBJECT_MAP)
			return ctl_print_table(f, o);
		for (i = 0; i < o->via.array.size; i++) {
			ctl_cell(f, &o->via.array.ptr[i]);
			fputc('\n', f);
		}
		return 0;
	}
	ctl_cell(f, o);
	fputc('\n', f);
	return 0;
}

/* ---- the exchange ------------------------------------------------------ */

/* What the REPLY handler reports back to ctl_exchange(). */
struct ctl_reply {
	const struct ctl_cmd	*cmd;
	int			 status;	/* exit status; -1: no REPLY yet */
};

/* Prints a REPLY's data or refusal; returns the exit status. */
static int
ctl_print_reply(const struct ctl_cmd *cmd, const struct packet *p)
{
	static const msgpack_object	nil = { .type = MSGPACK_OBJECT_NIL };

	if (!p->ok) {
		if ((p->has & PF_ERROR) && p->error.len > 0)
			fprintf(stderr, "patchbay ctl: %.*s\n",
			    (int)p->error.len, (const char *)p->error.ptr);
		else
			fprintf(stderr, "patchbay ctl: the broker refused "
			    "'%s' without saying why\n", cmd->verb->name);
		return CLI_EXIT_ERROR;
	}
	if (cmd->json) {
		ctl_json(stdout, p->data != NULL ? p->data : &nil, 0);
		fputc('\n', stdout);
	} else if (ctl_print_text(stdout, cmd->verb, p->data) < 0) {
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

/* The library's packet handler: prints our REPLY while its data lives. */
static int
ctl_packet(struct bconn *b, const struct packet *p, void *arg)
{
	struct ctl_reply	*cr = arg;

	(void)b;
	if (p->type == PKT_REPLY && p->seq == CTL_SEQ && cr->status < 0)
		cr->status = ctl_print_reply(cr->cmd, p);
	return 0;
}

/*
 * Connects as an admin (the library's connection does the handshake,
 * PINGs, ERROR and BYE), sends the ADMIN and prints the REPLY. Returns the
 * exit status.
 */
static int
ctl_exchange(const char *ep, const struct ctl_cmd *cmd)
{
	struct pb_options	 opts = { .name = "patchbay ctl",
				    .connect_timeout_ms = CTL_CONNECT_MS };
	struct ctl_reply	 cr = { .cmd = cmd, .status = -1 };
	struct bconn		 b;
	msgpack_sbuffer		 args;
	msgpack_packer		 pk;
	struct packet		 p;
	uint64_t		 deadline;
	int			 r;

	common_init(&b);
	if ((r = common_open(&b, ep, ROLE_ADMIN, &opts)) != 0) {
		fprintf(stderr, "patchbay ctl: %s\n", common_connect_error());
		common_clear(&b);
		return r == -EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_CONNECTION;
	}

	msgpack_sbuffer_init(&args);
	msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
	ctl_pack_args(cmd, &pk);
	packet_init(&p, PKT_ADMIN);
	p.seq = CTL_SEQ;
	p.verb.ptr = (const uint8_t *)cmd->verb->name;
	p.verb.len = (uint32_t)strlen(cmd->verb->name);
	p.args_raw.ptr = (const uint8_t *)args.data;
	p.args_raw.len = (uint32_t)args.size;
	p.has |= PF_ARGS;
	r = common_send(&b, &p);
	msgpack_sbuffer_destroy(&args);

	deadline = clock_now_ms() + CTL_REPLY_MS + cmd->timeout_ms;
	while (r >= 0 || r == -EINTR) {
		if ((r = common_process(&b, ctl_packet, &cr)) < 0 ||
		    cr.status >= 0 || b.err_code >= 0 || b.got_bye || b.dead)
			break;
		if (clock_now_ms() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		r = common_wait(&b, common_ms_left(deadline));
	}
	if (cr.status < 0) {
		if (b.err_code >= 0)
			fprintf(stderr, "patchbay ctl: %s refused: %s\n", ep,
			    b.err);
		else if (b.got_bye)
			fprintf(stderr, "patchbay ctl: %s is going away: %s\n",
			    ep, b.bye);
		else if (r == -ETIMEDOUT)
			fprintf(stderr, "patchbay ctl: no answer from %s\n", ep);
		else
			fprintf(stderr, "patchbay ctl: %s: %s\n", ep,
			    b.why[0] != '\0' ? b.why : strerror(-r));
		cr.status = CLI_EXIT_CONNECTION;
	}
	common_clear(&b);
	return cr.status;
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

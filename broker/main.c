/*
 * main.c: patchbayd, the patchbay broker.
 *
 * Parses the flags, sets up one event loop with its listeners and signal
 * events, runs until SIGINT or SIGTERM, then shuts down gracefully: stop
 * accepting, answer what is queued, say BYE, drain, remove socket files,
 * exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker/broker.h"
#include "config.h"

/* Everything main() sets up, for the signal callbacks. */
struct patchbayd {
	struct event_base	*base;
	struct server		*srv;
	struct supervisor	*sv;
	const char		*ready_file;
	int			 signals;
	bool			 srv_down;	/* server_shutdown() done */
	bool			 sv_down;	/* every process stopped */
};

/* Prints usage to f. */
static void
usage(FILE *f)
{
	fprintf(f,
"usage: patchbayd [-l ENDPOINT]... [-c FILE] [--log-level LEVEL]\n"
"\n"
"The patchbay job broker: clients RUN jobs, workers run them.\n"
"\n"
"  -l, --listen ENDPOINT    listen on unix:PATH, tcp:HOST:PORT or\n"
"                           tcp:[V6ADDR]:PORT (repeatable; default\n"
"                           $PATCHBAY_SOCKET, else $XDG_RUNTIME_DIR/\n"
"                           patchbay.sock, else /tmp/patchbay-$UID/\n"
"                           patchbay.sock)\n"
"  -c, --config FILE        read the configuration file: broker settings\n"
"                           and worker pools (docs/configuration.md)\n"
"      --log-level LEVEL    error, warn, info (default) or debug\n"
"      --heartbeat MS       PING peers silent this long, drop them after\n"
"                           three times that (default 10000)\n"
"      --hello-timeout MS   close connections without HELLO (default 5000)\n"
"      --max-frame BYTES    largest frame after HELLO (default 1048576)\n"
"      --max-queue N        queued jobs per function (default 100000)\n"
"      --no-worker-wait MS  how long a job waits for a function that has\n"
"                           no worker at all (default 10000)\n"
"      --token-file FILE    require the token in FILE in every HELLO\n"
"      --ready-file FILE    once listening, write the endpoints to FILE\n"
"  -V, --version            print the version and exit\n"
"  -h, --help               print this help and exit\n");
}

/* Parses a whole non-negative number for option opt, or exits 2. */
static uint64_t
parse_number(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < min ||
	    v > max) {
		fprintf(stderr, "patchbayd: %s: '%s' is not a number from %llu "
		    "to %llu\n", opt, s, (unsigned long long)min,
		    (unsigned long long)max);
		exit(2);
	}
	return v;
}

/* Reads the first line of a token file, or exits 2. */
static char *
read_token(const char *path)
{
	FILE	*f;
	char	 buf[512];
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "patchbayd: --token-file %s: %s\n", path,
		    strerror(errno));
		exit(2);
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "patchbayd: --token-file %s: empty token\n",
		    path);
		exit(2);
	}
	return strdup(buf);
}

/* Checks that the default socket's directory is private to us. */
static void
check_default_dir(const struct endpoint *ep)
{
	char		 dir[sizeof(ep->path)];
	char		*slash;
	struct stat	 st;

	snprintf(dir, sizeof(dir), "%s", ep->path);
	if ((slash = strrchr(dir, '/')) == NULL)
		return;
	*slash = '\0';
	if (strncmp(dir, "/tmp/patchbay-", 14) != 0)
		return;
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		fatal("cannot create %s", dir);
	if (lstat(dir, &st) == -1)
		fatal("%s", dir);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077) != 0)
		fatalx("%s must be a directory owned by uid %u with mode 0700",
		    dir, (unsigned)geteuid());
}

/* Leaves the loop once the server and the supervisor are both down. */
static void
maybe_exit(struct patchbayd *d)
{
	if (d->srv_down && d->sv_down)
		event_base_loopexit(d->base, NULL);
}

/* The server finished its graceful stop. */
static void
stopped_cb(struct server *srv, void *arg)
{
	struct patchbayd	*d = arg;

	(void)srv;
	d->srv_down = true;
	maybe_exit(d);
}

/* Supervisor: a new child's socket becomes a local worker connection. */
static void *
sv_attach(struct supervisor_proc *proc, int fd, void *arg)
{
	struct patchbayd	*d = arg;

	return server_adopt_worker_fd(d->srv, fd, proc,
	    supervisor_proc_id(proc));
}

/* Supervisor: stop or restart dispatching to a paused process's worker. */
static void
sv_set_paused(void *ctx, bool paused, void *arg)
{
	struct patchbayd	*d = arg;

	server_peer_pause(d->srv, ctx, paused);
}

/* Supervisor: the process is finished; its connection goes with it. */
static void
sv_detach(void *ctx, void *arg)
{
	struct peer	*p = ctx;

	(void)arg;
	p->proc = NULL;
	conn_close(p->conn, "its process is finished");
}

/* Supervisor: every process is down after supervisor_shutdown(). */
static void
sv_stopped_all(void *arg)
{
	struct patchbayd	*d = arg;

	d->sv_down = true;
	maybe_exit(d);
}

/* Server hook: a spawned process's worker sent REGISTER. */
static void
hook_registered(void *proc, void *arg)
{
	struct patchbayd	*d = arg;

	supervisor_proc_registered(d->sv, proc);
}

/* Server hook: a spawned process's connection closed. */
static void
hook_detached(void *proc, void *arg)
{
	struct patchbayd	*d = arg;

	supervisor_proc_detached(d->sv, proc);
}

/*
 * Takes the [broker] settings of the config file that no flag gave, and
 * appends its listen endpoints (checked by config_load) to eps. Exits 2
 * when there are too many.
 */
static void
apply_config(const struct config *c, struct server_config *cfg,
    bool level_given, int64_t *no_worker_wait, struct endpoint *eps,
    size_t *neps)
{
	char	err[PROTO_ERRLEN];

	for (size_t i = 0; i < c->nlisten; i++) {
		if (*neps == SERVER_MAX_LISTENERS ||
		    endpoint_parse(c->listen[i], &eps[*neps], err) != 0) {
			fprintf(stderr, "patchbayd: %s: at most %d listen "
			    "endpoints\n", c->path, SERVER_MAX_LISTENERS);
			exit(2);
		}
		(*neps)++;
	}
	if (!level_given && c->log_level >= 0)
		log_set_level((enum log_level)c->log_level);
	if (cfg->heartbeat_ms == 0)
		cfg->heartbeat_ms = c->heartbeat_ms;
	if (cfg->max_frame == 0)
		cfg->max_frame = c->max_frame;
	if (cfg->sb.max_queue == 0)
		cfg->sb.max_queue = c->max_queue;
	if (*no_worker_wait < 0)
		*no_worker_wait = c->no_worker_wait_ms;
	if (cfg->token == NULL && c->token != NULL &&
	    (cfg->token = strdup(c->token)) == NULL)
		fatalx("out of memory");
}

/* SIGINT/SIGTERM: graceful stop; a second one stops at once. */
static void
signal_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct patchbayd	*d = arg;

	(void)what;
	if (d->signals++ > 0) {
		log_info("second signal, exiting now");
		event_base_loopexit(d->base, NULL);
		return;
	}
	log_info("received %s, shutting down", strsignal((int)sig));
	supervisor_shutdown(d->sv);
	server_shutdown(d->srv, stopped_cb, d);
}

/* SIGHUP: reload the configuration file; a bad one changes nothing. */
static void
signal_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct patchbayd	*d = arg;
	char			*cause = NULL;

	(void)sig; (void)what;
	log_info("received SIGHUP, reloading the configuration");
	if (supervisor_reload_file(d->sv, &cause) != 0)
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", cause != NULL ? cause : "out of memory");
	free(cause);
}

/* Entry point. */
int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "heartbeat", required_argument, NULL, 'H' },
		{ "hello-timeout", required_argument, NULL, 'T' },
		{ "max-frame", required_argument, NULL, 'F' },
		{ "max-queue", required_argument, NULL, 'Q' },
		{ "no-worker-wait", required_argument, NULL, 'W' },
		{ "token-file", required_argument, NULL, 'k' },
		{ "ready-file", required_argument, NULL, 'R' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct patchbayd	 d;
	struct server_config	 cfg;
	struct endpoint		 eps[SERVER_MAX_LISTENERS];
	static const struct supervisor_ops sv_ops = {
		.attach = sv_attach,
		.set_paused = sv_set_paused,
		.detach = sv_detach,
		.stopped_all = sv_stopped_all,
	};
	struct event		*ev_int, *ev_term, *ev_hup;
	sigset_t		 stopsigs;
	struct event_config	*evcfg;
	struct config		*config = NULL;
	size_t			 neps = 0;
	const char		*config_path = NULL;
	char			 err[PROTO_ERRLEN], def[PATH_MAX], *cause = NULL;
	int			 ch, level;
	bool			 level_given = false;
	int64_t			 no_worker_wait = -1;	/* -1: not given */

	memset(&d, 0, sizeof(d));
	memset(&cfg, 0, sizeof(cfg));
	while ((ch = getopt_long(argc, argv, "l:c:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (neps == SERVER_MAX_LISTENERS) {
				fprintf(stderr, "patchbayd: at most %d "
				    "listeners\n", SERVER_MAX_LISTENERS);
				return 2;
			}
			if (endpoint_parse(optarg, &eps[neps], err) != 0) {
				fprintf(stderr, "patchbayd: --listen: %s\n",
				    err);
				return 2;
			}
			neps++;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'L':
			if ((level = log_level_from_name(optarg)) < 0) {
				fprintf(stderr, "patchbayd: --log-level: '%s' "
				    "is not one of error, warn, info, debug\n",
				    optarg);
				return 2;
			}
			log_set_level((enum log_level)level);
			level_given = true;
			break;
		case 'H':
			cfg.heartbeat_ms = parse_number("--heartbeat", optarg,
			    10, 3600000);
			break;
		case 'T':
			cfg.hello_timeout_ms = parse_number("--hello-timeout",
			    optarg, 10, 3600000);
			break;
		case 'F':
			cfg.max_frame = (uint32_t)parse_number("--max-frame",
			    optarg, PROTO_MAX_FRAME_HELLO, 256u << 20);
			break;
		case 'Q':
			cfg.sb.max_queue = (uint32_t)parse_number(
			    "--max-queue", optarg, 1, 100000000);
			break;
		case 'W':
			no_worker_wait = (int64_t)parse_number(
			    "--no-worker-wait", optarg, 0, 86400000);
			break;
		case 'k':
			free(cfg.token);
			cfg.token = read_token(optarg);
			break;
		case 'R':
			d.ready_file = optarg;
			break;
		case 'V':
			printf("patchbayd %s\n", PATCHBAY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "patchbayd: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_path != NULL) {
		if (config_load(config_path, &config, &cause) != 0) {
			fprintf(stderr, "patchbayd: %s\n", cause != NULL ?
			    cause : "out of memory");
			free(cause);
			return 2;
		}
		apply_config(config, &cfg, level_given, &no_worker_wait, eps,
		    &neps);
	}
	/* The switchboard reads 0 as its default, so "at once" is 1 ms. */
	if (no_worker_wait >= 0)
		cfg.sb.no_worker_wait_ms = no_worker_wait > 0 ?
		    (uint64_t)no_worker_wait : 1;
	if (neps == 0) {
		if (endpoint_default(def, sizeof(def), false) != 0 ||
		    endpoint_parse(def, &eps[0], err) != 0) {
			fprintf(stderr, "patchbayd: default endpoint: %s\n",
			    err);
			return 2;
		}
		check_default_dir(&eps[0]);
		neps = 1;
	}

	signal(SIGPIPE, SIG_IGN);
	/*
	 * Precise timers: with libevent's default coarse clock a 40 ms backoff
	 * or a 100 ms job timeout can fire a few ms early.
	 */
	if ((evcfg = event_config_new()) == NULL ||
	    event_config_set_flag(evcfg, EVENT_BASE_FLAG_PRECISE_TIMER) != 0 ||
	    (d.base = event_base_new_with_config(evcfg)) == NULL)
		fatalx("cannot create the event loop");
	event_config_free(evcfg);
	if ((d.srv = server_new(d.base, &cfg)) == NULL)
		fatalx("cannot create the server: out of memory");
	for (size_t i = 0; i < neps; i++)
		if (server_listen(d.srv, &eps[i], err) != 0)
			fatalx("%s", err);
	/* The supervisor owns SIGCHLD and the config from here on. */
	if (supervisor_new(d.base, config, &sv_ops, &d, &d.sv) != 0)
		fatalx("cannot create the supervisor: out of memory");
	d.srv->sv = d.sv;
	d.srv->hooks.registered = hook_registered;
	d.srv->hooks.detached = hook_detached;
	d.srv->hooks.arg = &d;
	supervisor_start(d.sv);
	if (d.ready_file != NULL &&
	    server_write_ready_file(d.srv, d.ready_file) != 0)
		fatal("cannot write %s", d.ready_file);

	ev_int = evsignal_new(d.base, SIGINT, signal_stop_cb, &d);
	ev_term = evsignal_new(d.base, SIGTERM, signal_stop_cb, &d);
	ev_hup = evsignal_new(d.base, SIGHUP, signal_hup_cb, &d);
	if (ev_int == NULL || ev_term == NULL || ev_hup == NULL ||
	    evsignal_add(ev_int, NULL) != 0 || evsignal_add(ev_term, NULL) != 0 ||
	    evsignal_add(ev_hup, NULL) != 0)
		fatalx("cannot install signal handlers");

	log_info("patchbayd %s ready (pid %d)", PATCHBAY_VERSION, (int)getpid());
	event_base_dispatch(d.base);

	/*
	 * A late signal must not kill us mid-cleanup. Freeing a libevent signal
	 * event restores the handler it replaced (SIG_DFL), so block the
	 * signals first, free the events, then ignore them.
	 */
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGINT);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &stopsigs, NULL);
	event_free(ev_int);
	event_free(ev_term);
	event_free(ev_hup);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	/* Whatever is still running (a second signal) is killed now. */
	supervisor_free(d.sv);
	server_free(d.srv);
	if (d.ready_file != NULL)
		unlink(d.ready_file);
	event_base_free(d.base);
	log_info("stopped");
	return 0;
}

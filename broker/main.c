/*
 * main.c: patchbayd, the patchbay broker.
 *
 * Parses the flags and the config, sets up one event loop with the server
 * (its listeners), the HTTP endpoint when `http` is set, the supervisor
 * (its pools) linked to the server by server_set_supervisor(), and the
 * signal events. It runs until SIGINT,
 * SIGTERM or `ctl shutdown` asks server_stop() for a graceful stop: stop
 * accepting, answer what is queued, say BYE, stop the processes, drain,
 * remove socket files, exit 0. SIGHUP reloads the config, SIGUSR1 opens
 * the log files again (logrotate). Under systemd it says READY=1 once it
 * listens and its pools are started (notify.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
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
	struct notify		*notify;
	struct http		*http;		/* NULL: no `http =` */
	const char		*ready_file;
};

/* Prints usage to f: the settings' flags, then the program's own. */
static void
usage(FILE *f)
{
	fprintf(f,
"usage: patchbayd [-c FILE] [-l ENDPOINT]... [--SETTING VALUE]...\n"
"\n"
"The patchbay job broker: clients RUN jobs, workers run them.\n"
"\n"
"  -c, --config FILE            read the configuration file: [broker]\n"
"                               settings and worker pools\n"
"                               (docs/configuration.md)\n");
	settings_usage(f);
	fprintf(f,
"  -V, --version                print the version and exit\n"
"  -h, --help                   print this help and exit\n"
"\n"
"Every --SETTING is also a [broker] key of the config file, with '_' for\n"
"'-'; a flag wins over the file (listen endpoints of both are used). A\n"
"DURATION is a whole number with ms, s, m, h or d (250ms, 10s, 5m, 2h), a\n"
"bare number being milliseconds; a SIZE is a whole number with KiB, MiB or\n"
"GiB, a bare number being bytes.\n");
}

/*
 * True unless ep is a tcp: endpoint off loopback that anyone could use:
 * no token configured for clients and workers, and allow_insecure_tcp
 * not given.
 */
static bool
insecure_tcp_ok(const struct settings *s, const struct endpoint *ep)
{
	struct in_addr	 a4;
	struct in6_addr	 a6;

	if (ep->kind != ENDPOINT_TCP || s->allow_insecure_tcp != 0 ||
	    s->token_file != NULL || (s->client_token_file != NULL &&
	    s->worker_token_file != NULL))
		return true;
	if (strcmp(ep->host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, ep->host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, ep->host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;	/* a name: it may be anything */
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

/*
 * The connections the broker takes at once: max_connections, or by
 * default the descriptor limit less a reserve (listeners, logs, the
 * config, three descriptors per process of the pools, and the HTTP
 * endpoint's when it is on), so that at the limit the broker can still
 * refuse a peer politely and spawn its pools.
 * A max_connections above that is kept, with a warning.
 */
static uint32_t
server_max_connections(const struct settings *s, const struct config *config)
{
	const struct config_pool	*p;
	struct rlimit			 rl;
	uint64_t			 reserve = SERVER_FD_RESERVE, room;

	if (config != NULL)
		TAILQ_FOREACH(p, &config->pools, entry)
			reserve += 3 * (uint64_t)p->instances;
	/* The HTTP endpoint's listener and connections. */
	if (s->http != NULL)
		reserve += 1 + HTTP_MAX_CONNECTIONS;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		rl.rlim_cur = LIMIT_CONNECTIONS_MAX;
	room = rl.rlim_cur > reserve + 1 ? rl.rlim_cur - reserve : 1;
	if (s->max_connections == 0)
		return (uint32_t)(room < LIMIT_CONNECTIONS_MAX ? room :
		    LIMIT_CONNECTIONS_MAX);
	if (s->max_connections > room)
		log_warnx("max_connections %llu is more than the descriptor "
		    "limit (%llu) leaves after its reserve (%llu): at the "
		    "limit, new peers may wait unanswered",
		    (unsigned long long)s->max_connections,
		    (unsigned long long)rl.rlim_cur,
		    (unsigned long long)reserve);
	return (uint32_t)s->max_connections;
}

/*
 * The TLS part of the server's config: the files and, when a tls:
 * endpoint is listened on, the context made from them (whose failure
 * names the file and the reason). Exits 2 on a bad one.
 */
static void
server_config_tls(const struct settings *s, const struct endpoint *eps,
    size_t neps, struct server_config *cfg)
{
	char	err[UTIL_ERRLEN];
	bool	tls = false;

	for (size_t i = 0; i < neps; i++)
		tls |= eps[i].kind == ENDPOINT_TLS;
	if (!tls) {
		if (s->tls_cert != NULL || s->tls_client_ca != NULL)
			log_warnx("tls_cert and tls_client_ca are used only by "
			    "tls: endpoints, and none is listened on");
		return;
	}
	if ((s->tls_cert != NULL &&
	    (cfg->tls_cert = strdup(s->tls_cert)) == NULL) ||
	    (s->tls_key != NULL &&
	    (cfg->tls_key = strdup(s->tls_key)) == NULL) ||
	    (s->tls_client_ca != NULL &&
	    (cfg->tls_client_ca = strdup(s->tls_client_ca)) == NULL))
		fatalx("out of memory");
	/* Checked by settings_set() already. */
	if (s->tls_client_roles != NULL &&
	    tls_roles_parse(s->tls_client_roles, &cfg->tls_roles,
	    &cfg->ntls_roles, err) != 0)
		fatalx("%s: %s", __func__, err);
	if (tls_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca,
	    &cfg->tls_ctx, err) != 0) {
		fprintf(stderr, "patchbayd: %s\n", err);
		exit(2);
	}
}

/*
 * Turns the settings in force into the server's: their values, the token
 * read from its file, and the endpoints. Exits 2 on a bad value.
 */
static void
server_config_from(const struct settings *s, const struct config *config,
    struct server_config *cfg, struct endpoint *eps, size_t *neps)
{
	char	err[UTIL_ERRLEN];

	for (size_t i = 0; i < s->nlisten; i++) {
		/* Checked by settings_set() already. */
		if (endpoint_parse(s->listen[i], &eps[i], err) != 0)
			fatalx("%s: %s", __func__, err);
	}
	*neps = s->nlisten;
	for (size_t i = 0; i < *neps; i++) {
		if (insecure_tcp_ok(s, &eps[i]))
			continue;
		fprintf(stderr, "patchbayd: listen %s: plaintext TCP on an "
		    "address that is not loopback needs a token (token_file, "
		    "client_token_file, worker_token_file) or "
		    "allow_insecure_tcp = yes\n", eps[i].text);
		exit(2);
	}
	cfg->heartbeat_ms = s->heartbeat_ms;
	cfg->drain_timeout_ms = s->drain_timeout_ms;
	cfg->worker_may_run = s->worker_may_run != 0;
	cfg->socket_perms.mode = (unsigned)s->socket_mode;
	/* Checked by settings_set() already: parse_ids() is the grammar. */
	{
		const char	*lists[][2] = {
			[ROLE_CLIENT] = { s->client_uids, s->client_gids },
			[ROLE_WORKER] = { s->worker_uids, s->worker_gids },
			[ROLE_ADMIN] = { s->admin_uids, s->admin_gids },
		};

		for (int r = ROLE_CLIENT; r <= ROLE_ADMIN; r++) {
			if ((lists[r][0] != NULL && parse_ids(lists[r][0],
			    false, &cfg->role_uids[r], err) != 0) ||
			    (lists[r][1] != NULL && parse_ids(lists[r][1],
			    true, &cfg->role_gids[r], err) != 0))
				fatalx("%s: %s", __func__, err);
		}
	}
	cfg->socket_perms.gid = settings_given(s, SETTINGS_SOCKET_GROUP) ?
	    (long)s->socket_gid : -1;
	cfg->hello_timeout_ms = s->hello_timeout_ms;
	cfg->max_frame = (uint32_t)s->max_frame;
	cfg->out_cap = (size_t)s->max_output;
	cfg->sb.max_queue = (uint32_t)s->max_queue;
	cfg->sb.max_queue_bytes = s->max_queue_bytes;
	cfg->sb.max_memory = s->max_memory;
	cfg->sb.max_jobs_per_client = (uint32_t)s->max_jobs_per_client;
	cfg->sb.detached_ttl_ms = s->detached_ttl_ms;
	cfg->sb.result_ttl_ms = s->result_ttl_ms;
	cfg->sb.max_result_bytes = s->max_result_bytes;
	cfg->sb.keep_results = true;
	cfg->sb.max_dead = (uint32_t)s->max_dead;
	/* Job ids come from peers: hash them with a seed they cannot know. */
	if (getrandom(&cfg->sb.hash_seed, sizeof(cfg->sb.hash_seed), 0) !=
	    (ssize_t)sizeof(cfg->sb.hash_seed))
		cfg->sb.hash_seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^
		    clock_now_ms();
	/* The switchboard reads 0 as its default, so "at once" is 1 ms. */
	cfg->sb.no_worker_wait_ms = s->no_worker_wait_ms > 0 ?
	    s->no_worker_wait_ms : 1;
	cfg->max_connections = server_max_connections(s, config);
	cfg->max_connections_per_uid = (uint32_t)s->max_connections_per_uid;
	err[0] = '\0';
	server_config_tls(s, eps, *neps, cfg);
	{
		const char	*paths[ROLE_ADMIN + 1] = {
			[ROLE_CLIENT] = s->client_token_file,
			[ROLE_WORKER] = s->worker_token_file,
			[ROLE_ADMIN] = s->admin_token_file,
		};

		if (s->token_file != NULL &&
		    ((cfg->token_path = strdup(s->token_file)) == NULL ||
		    server_tokens_read(s->token_file, &cfg->tokens, err) != 0))
			goto bad_token;
		for (int r = ROLE_CLIENT; r <= ROLE_ADMIN; r++)
			if (paths[r] != NULL &&
			    ((cfg->role_token_path[r] = strdup(paths[r])) ==
			    NULL || server_tokens_read(paths[r],
			    &cfg->role_tokens[r], err) != 0))
				goto bad_token;
		return;
bad_token:
		fprintf(stderr, "patchbayd: %s\n", err[0] != '\0' ? err :
		    "out of memory");
		exit(2);
	}
}

/*
 * SIGINT/SIGTERM: graceful stop; a signal after any stop was asked (a
 * signal or `ctl shutdown`) stops at once.
 */
static void
signal_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct patchbayd	*d = arg;

	(void)what;
	if (server_stop(d->srv, "received %s, shutting down",
	    strsignal((int)sig)) == -EALREADY) {
		log_info("second signal, exiting now");
		event_base_loopexit(d->base, NULL);
	}
}

/* SIGHUP: reload the configuration file; a bad one changes nothing. */
static void
signal_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct patchbayd	*d = arg;
	char			*cause = NULL, err[UTIL_ERRLEN];

	(void)sig; (void)what;
	log_info("received SIGHUP, reloading the configuration");
	if (supervisor_reload_file(d->sv, &cause) != 0)
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", cause != NULL ? cause : "out of memory");
	free(cause);
	if (server_credentials_reload(d->srv, err) != 0)
		log_warnx("reload: keeping the tokens and certificates in "
		    "force: %s", err);
}

/*
 * SIGUSR1: open the log file and the pools' stdout_log files again at
 * their paths, for logrotate: lines after this land in the new files.
 */
static void
signal_usr1_cb(evutil_socket_t sig, short what, void *arg)
{
	struct patchbayd	*d = arg;
	int			 r;

	(void)sig; (void)what;
	if ((r = log_reopen()) != 0)
		log_warnx("cannot open the log file %s again, still writing "
		    "to the old one: %s", log_get_path(), strerror(-r));
	supervisor_reopen_logs(d->sv);
	log_info("received SIGUSR1, log files opened again");
}

/* Entry point. */
int
main(int argc, char *argv[])
{
	enum { OPT_SETTING = 256 };
	struct option		 longopts[SETTINGS_COUNT + 4];
	char			 shortopts[16] = "c:Vh", shortflag;
	char			 names[SETTINGS_COUNT][32];
	struct patchbayd	 d;
	struct server_config	 cfg;
	struct settings		 set;
	struct endpoint		 eps[SERVER_MAX_LISTENERS];
	struct event		*ev_int, *ev_term, *ev_hup, *ev_usr1;
	sigset_t		 stopsigs;
	struct config		*config = NULL;
	size_t			 neps = 0, nopts = 0;
	const char		*config_path = NULL, *key;
	char			 err[UTIL_ERRLEN], def[PATH_MAX], *cause = NULL;
	int			 ch, r;

	memset(&d, 0, sizeof(d));
	memset(&cfg, 0, sizeof(cfg));
	memset(&set, 0, sizeof(set));
	/* One flag per setting: its key with '-' for '_'. */
	for (size_t i = 0; i < SETTINGS_COUNT; i++) {
		key = settings_key(i, &shortflag);
		snprintf(names[i], sizeof(names[i]), "%s", key);
		for (char *c = names[i]; *c != '\0'; c++)
			if (*c == '_')
				*c = '-';
		longopts[nopts++] = (struct option){ names[i],
		    required_argument, NULL, shortflag != 0 ? shortflag :
		    OPT_SETTING + (int)i };
		if (shortflag != 0) {
			size_t n = strlen(shortopts);

			shortopts[n] = shortflag;
			shortopts[n + 1] = ':';
			shortopts[n + 2] = '\0';
		}
	}
	longopts[nopts++] = (struct option){ "config", required_argument, NULL,
	    'c' };
	longopts[nopts++] = (struct option){ "version", no_argument, NULL, 'V' };
	longopts[nopts++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[nopts] = (struct option){ NULL, 0, NULL, 0 };

	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) !=
	    -1) {
		size_t	i;

		switch (ch) {
		case 'c':
			config_path = optarg;
			continue;
		case 'V':
			printf("patchbayd %s\n", PATCHBAY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		case '?':
		case ':':
			usage(stderr);
			return 2;
		}
		for (i = 0; i < SETTINGS_COUNT; i++)
			if (longopts[i].val == ch)
				break;
		if (i == SETTINGS_COUNT) {
			usage(stderr);
			return 2;
		}
		if (settings_set(&set, settings_key(i, &shortflag), optarg,
		    err) != 0) {
			fprintf(stderr, "patchbayd: --%s: %s\n", names[i], err);
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
		/* Flags win; the file fills in what they did not say. */
		if ((r = settings_merge(&set, &config->broker)) == -E2BIG) {
			fprintf(stderr, "patchbayd: %s: at most %d listen "
			    "endpoints in all\n", config_path,
			    SERVER_MAX_LISTENERS);
			return 2;
		} else if (r != 0)
			fatalx("out of memory");
	}
	settings_apply_defaults(&set);
	log_set_level((enum log_level)set.log_level);
	if (set.log_file != NULL && (r = log_open(set.log_file)) != 0) {
		fprintf(stderr, "patchbayd: cannot open log_file %s: %s\n",
		    set.log_file, strerror(-r));
		settings_clear(&set);
		config_free(config);
		return 2;
	}
	server_config_from(&set, config, &cfg, eps, &neps);
	d.ready_file = set.ready_file;
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
	/* A file size limit fails the store's writes, not the broker. */
	signal(SIGXFSZ, SIG_IGN);
	/*
	 * libevent's coarse clock, not its precise timers (a syscall in every
	 * loop turn): the timers that must not fire early are armed through
	 * clock_timer_tv(), and the switchboard's deadlines are checked on
	 * the precise clock when its timer fires.
	 */
	if ((d.base = event_base_new()) == NULL)
		fatalx("cannot create the event loop");
	if (notify_new(d.base, &d.notify) != 0)
		fatalx("cannot set up NOTIFY_SOCKET: out of memory");
	if ((d.srv = server_new(d.base, &cfg)) == NULL)
		fatalx("cannot create the server: out of memory");
	/* Its jobs are back before anyone can connect. */
	if (set.store != NULL &&
	    jobstore_open(d.srv, set.store, set.store_fsync != 0, err) != 0)
		fatalx("%s", err);
	for (size_t i = 0; i < neps; i++)
		if (server_listen(d.srv, &eps[i], err) != 0)
			fatalx("%s", err);
	/* Before the pools, so that /readyz can say "starting". */
	if (set.http != NULL) {
		if (http_new(d.srv, set.http, set.http_timeout_ms, &d.http,
		    err) != 0)
			fatalx("%s", err);
		d.srv->http = d.http;
	}
	/* The supervisor owns SIGCHLD and the config from here on. */
	if (supervisor_new(d.base, config, &d.sv) != 0)
		fatalx("cannot create the supervisor: out of memory");
	server_set_supervisor(d.srv, d.sv);
	d.srv->notify = d.notify;
	supervisor_start(d.sv);
	if (d.http != NULL)
		http_set_started(d.http);
	if (d.ready_file != NULL &&
	    server_write_ready_file(d.srv, d.ready_file) != 0)
		fatal("cannot write %s", d.ready_file);

	ev_int = evsignal_new(d.base, SIGINT, signal_stop_cb, &d);
	ev_term = evsignal_new(d.base, SIGTERM, signal_stop_cb, &d);
	ev_hup = evsignal_new(d.base, SIGHUP, signal_hup_cb, &d);
	ev_usr1 = evsignal_new(d.base, SIGUSR1, signal_usr1_cb, &d);
	if (ev_int == NULL || ev_term == NULL || ev_hup == NULL ||
	    ev_usr1 == NULL || evsignal_add(ev_int, NULL) != 0 ||
	    evsignal_add(ev_term, NULL) != 0 ||
	    evsignal_add(ev_hup, NULL) != 0 || evsignal_add(ev_usr1, NULL) != 0)
		fatalx("cannot install signal handlers");

	log_info("patchbayd %s ready (pid %d)", PATCHBAY_VERSION, (int)getpid());
	if (d.notify != NULL) {
		notify_send(d.notify, "READY=1");
		log_info("told systemd READY=1%s", notify_watchdog_usec(d.notify)
		    != 0 ? ", watchdog on" : "");
	}
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
	sigaddset(&stopsigs, SIGUSR1);
	sigprocmask(SIG_BLOCK, &stopsigs, NULL);
	event_free(ev_int);
	event_free(ev_term);
	event_free(ev_hup);
	event_free(ev_usr1);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);

	/* Whatever is still running (a second signal) is killed now. */
	http_free(d.http);
	d.srv->http = NULL;
	supervisor_free(d.sv);
	server_free(d.srv);
	if (d.ready_file != NULL)
		unlink(d.ready_file);
	notify_free(d.notify);
	event_base_free(d.base);
	settings_clear(&set);
	log_info("stopped");
	log_close();
	return 0;
}

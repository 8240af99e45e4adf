/*
 * supervisor-verbs.c: what an operator can do to supervised processes.
 *
 * `patchbay ctl` and SIGHUP end up here through admin.c and main.c: spawn
 * an ad-hoc process, stop, restart, pause or resume a process or a whole
 * pool, scale a pool, reload the config file. Each verb checks everything
 * first (the supervisor is not shutting down, the id exists, the pool is
 * not being replaced by a reload, the state allows it) and answers a
 * refusal with a negative errno and a sentence for the operator; then it
 * acts through the slot lifecycle of supervisor.c. A reload copies the
 * whole new config before it changes anything, so a failure leaves the
 * running one untouched.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/supervisor-int.h"

/* Refuses verbs during shutdown. */
static int
supervisor_check_live(struct supervisor *sv, char **cause)
{
	if (!sv->shutting_down)
		return 0;
	supervisor_cause(cause, "patchbayd is shutting down");
	return -ESHUTDOWN;
}

/* Refuses verbs on a pool that a reload is replacing or removing. */
static int
supervisor_check_pool(struct supervisor_pool *pool, char **cause)
{
	if (pool == NULL)
		return 0;
	if (pool->removing) {
		supervisor_cause(cause, "pool '%s' is being removed",
		    pool->cfg->name);
		return -EBUSY;
	}
	if (pool->next_cfg != NULL) {
		supervisor_cause(cause, "pool '%s' is restarting with new "
		    "settings", pool->cfg->name);
		return -EBUSY;
	}
	return 0;
}

/*
 * Resolves id to one process (*ret_proc) or a whole pool (*ret_pool).
 * Returns 0, or -ENOENT / -EBUSY / -ESHUTDOWN with a sentence.
 */
static int
supervisor_resolve(struct supervisor *sv, const char *id,
    struct supervisor_proc **ret_proc, struct supervisor_pool **ret_pool,
    char **cause)
{
	struct supervisor_proc	*p;
	struct supervisor_pool	*pool;
	int			 error;

	*ret_proc = NULL;
	*ret_pool = NULL;
	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	if ((p = supervisor_find(sv, id)) != NULL) {
		if ((error = supervisor_check_pool(p->pool, cause)) != 0)
			return error;
		*ret_proc = p;
		return 0;
	}
	if ((pool = supervisor_pool_find(sv, id)) != NULL) {
		if ((error = supervisor_check_pool(pool, cause)) != 0)
			return error;
		*ret_pool = pool;
		return 0;
	}
	supervisor_cause(cause, "unknown id '%s'", id);
	return -ENOENT;
}

/* Joins argv into one line, quoting words that need it. */
static char *
supervisor_join_argv(const char *const *argv)
{
	char	*s = NULL, *w;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&s, &len)) == NULL)
		return NULL;
	for (size_t i = 0; argv[i] != NULL; i++) {
		if (i > 0)
			fputc(' ', f);
		if (argv[i][0] != '\0' &&
		    strpbrk(argv[i], " \t'\"\\") == NULL) {
			fputs(argv[i], f);
			continue;
		}
		fputc('"', f);
		for (w = (char *)argv[i]; *w != '\0'; w++) {
			if (*w == '"' || *w == '\\')
				fputc('\\', f);
			fputc(*w, f);
		}
		fputc('"', f);
	}
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Starts an ad-hoc process. */
int
supervisor_spawn(struct supervisor *sv, const char *id,
    const char *const *argv, enum restart_policy restart, int max_restarts,
    const struct limits *limits, char **cause)
{
	struct supervisor_proc	*old, *p;
	struct config_pool	*cfg;
	size_t			 n = 0;
	bool			 permanent;
	int			 error;

	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	if (*id == '\0' || strlen(id) > LIMIT_NAME_MAX ||
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_.") != strlen(id)) {
		supervisor_cause(cause, "bad id '%s': an id is 1 to 64 "
		    "letters, digits, '-', '_' or '.'", id);
		return -EINVAL;
	}
	if (supervisor_pool_find(sv, id) != NULL) {
		supervisor_cause(cause, "'%s' is the name of a pool", id);
		return -EEXIST;
	}
	TAILQ_FOREACH(old, &sv->adhoc, entry)
		if (strcmp(old->id, id) == 0)
			break;
	if (old != NULL && (old->pid != 0 ||
	    old->state == SUPERVISOR_BACKOFF)) {
		supervisor_cause(cause, "'%s' already exists (%s)", id,
		    policy_state_name(old->state));
		return -EEXIST;
	}
	if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0') {
		supervisor_cause(cause, "spawn '%s': no command given", id);
		return -EINVAL;
	}
	if (max_restarts < -1 || max_restarts > LIMIT_RESTARTS_MAX) {
		supervisor_cause(cause, "spawn '%s': max_restarts must be "
		    "from 0 to %d, or -1 for unlimited (got %d)", id,
		    LIMIT_RESTARTS_MAX, max_restarts);
		return -EINVAL;
	}
	if (limits != NULL && (limits->set & LIMITS_CGROUP_MASK) != 0) {
		supervisor_cause(cause, "spawn '%s': memory_max, cpu_max and "
		    "pids_max are a pool's settings; a spawned process takes "
		    "the limit_* ones", id);
		return -EINVAL;
	}

	if ((cfg = config_pool_new(id)) == NULL)
		goto nomem;
	cfg->restart = restart;
	cfg->max_restarts = max_restarts;
	if (limits != NULL)
		cfg->limits = *limits;
	while (argv[n] != NULL)
		n++;
	if ((cfg->argv = calloc(n + 1, sizeof(*cfg->argv))) == NULL)
		goto nomem_cfg;
	for (size_t i = 0; i < n; i++)
		if ((cfg->argv[i] = strdup(argv[i])) == NULL)
			goto nomem_cfg;
	if ((cfg->command = supervisor_join_argv(argv)) == NULL)
		goto nomem_cfg;
	if ((p = supervisor_proc_new(sv, NULL, 0, id, cfg)) == NULL)
		goto nomem_cfg;

	if ((error = supervisor_child_start(p, cause, &permanent)) != 0) {
		supervisor_proc_free(p);
		return error;
	}
	if (old != NULL) {
		TAILQ_INSERT_AFTER(&sv->adhoc, old, p, entry);
		supervisor_proc_remove(old);
	} else
		TAILQ_INSERT_TAIL(&sv->adhoc, p, entry);
	supervisor_set_state(p, SUPERVISOR_STARTING);
	supervisor_set_state(p, supervisor_proc_up_state(p));
	return 0;

nomem_cfg:
	config_pool_free(cfg);
nomem:
	supervisor_cause(cause, "out of memory");
	return -ENOMEM;
}

/* True when p has a child that an operator may stop. */
static bool
supervisor_proc_stoppable(const struct supervisor_proc *p)
{
	return p->pid != 0 || p->state == SUPERVISOR_BACKOFF;
}

/* Stops a process or a pool. */
int
supervisor_stop(struct supervisor *sv, const char *id, uint64_t timeout_ms,
    bool force, char **cause)
{
	struct supervisor_proc	*p, *next;
	struct supervisor_pool	*pool;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		if (!supervisor_proc_stoppable(p)) {
			supervisor_cause(cause, "'%s' is not running (%s)", id,
			    policy_state_name(p->state));
			return -EBUSY;
		}
		supervisor_proc_stop(p, timeout_ms, force, AFTER_NONE);
		return 0;
	}
	TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next)
		if (supervisor_proc_stoppable(p))
			supervisor_proc_stop(p, timeout_ms, force, AFTER_NONE);
	return 0;
}

/* Restarts one process: clears its history and starts it (again). */
static void
supervisor_proc_restart(struct supervisor_proc *p)
{
	const struct config_pool	*cfg = supervisor_proc_cfg(p);

	if (p->pid != 0) {
		supervisor_proc_stop(p, 0, false, AFTER_RESTART);
		return;
	}
	policy_history_init(&p->hist, cfg->max_restarts);
	p->restarts++;
	supervisor_proc_start(p);
}

/* Restarts a process or a pool. */
int
supervisor_restart(struct supervisor *sv, const char *id, char **cause)
{
	struct supervisor_proc	*p, *next;
	struct supervisor_pool	*pool;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		supervisor_proc_restart(p);
		return 0;
	}
	TAILQ_FOREACH_SAFE(p, &pool->procs, entry, next)
		supervisor_proc_restart(p);
	return 0;
}

/* Pauses one process that runs; false when it does not. */
static bool
supervisor_proc_pause(struct supervisor_proc *p)
{
	if ((p->state != SUPERVISOR_STARTING &&
	    p->state != SUPERVISOR_RUNNING) || p->pid == 0 || p->exited)
		return false;
	supervisor_signal(p, SIGSTOP);
	supervisor_set_state(p, SUPERVISOR_PAUSED);
	supervisor_proc_set_paused(p, true);
	log_info("%s: paused pid %d", p->id, (int)p->pid);
	return true;
}

/* Resumes one paused process; false when it is not paused. */
static bool
supervisor_proc_resume(struct supervisor_proc *p)
{
	if (p->state != SUPERVISOR_PAUSED)
		return false;
	supervisor_signal(p, SIGCONT);
	supervisor_set_state(p, supervisor_proc_up_state(p));
	supervisor_proc_set_paused(p, false);
	log_info("%s: resumed pid %d", p->id, (int)p->pid);
	return true;
}

/*
 * Pauses (pause true) or resumes a process or each process of a pool that
 * can be; refused when none can.
 */
static int
supervisor_pause_or_resume(struct supervisor *sv, const char *id,
    bool pause, char **cause)
{
	struct supervisor_proc	*p;
	struct supervisor_pool	*pool;
	bool			 any = false;
	int			 error;

	if ((error = supervisor_resolve(sv, id, &p, &pool, cause)) != 0)
		return error;
	if (p != NULL) {
		if (pause && p->state == SUPERVISOR_PAUSED) {
			supervisor_cause(cause, "'%s' is already paused", id);
			return -EBUSY;
		}
		if (pause ? supervisor_proc_pause(p) :
		    supervisor_proc_resume(p))
			return 0;
		if (!pause)
			supervisor_cause(cause, "'%s' is %s, not paused", id,
			    policy_state_name(p->state));
		else if (p->pid != 0 && p->exited)
			supervisor_cause(cause, "'%s' has just exited", id);
		else
			supervisor_cause(cause, "'%s' is %s, not running", id,
			    policy_state_name(p->state));
		return -EBUSY;
	}
	TAILQ_FOREACH(p, &pool->procs, entry)
		any |= pause ? supervisor_proc_pause(p) :
		    supervisor_proc_resume(p);
	if (!any) {
		supervisor_cause(cause, "pool '%s' has no %s process", id,
		    pause ? "running" : "paused");
		return -EBUSY;
	}
	return 0;
}

/* Pauses a process or a pool. */
int
supervisor_pause(struct supervisor *sv, const char *id, char **cause)
{
	return supervisor_pause_or_resume(sv, id, true, cause);
}

/* Resumes a process or a pool. */
int
supervisor_resume(struct supervisor *sv, const char *id, char **cause)
{
	return supervisor_pause_or_resume(sv, id, false, cause);
}

/* Sets the number of instances of a pool. */
int
supervisor_scale(struct supervisor *sv, const char *name, unsigned n,
    char **cause)
{
	struct supervisor_pool	*pool;
	int			 error;

	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	if ((pool = supervisor_pool_find(sv, name)) == NULL) {
		supervisor_cause(cause, "unknown pool '%s'", name);
		return -ENOENT;
	}
	if ((error = supervisor_check_pool(pool, cause)) != 0)
		return error;
	if (supervisor_pool_on_demand(pool)) {
		supervisor_cause(cause, "pool '%s' scales on demand (instances "
		    "= %d..%d): change instances in its config and reload",
		    name, pool->cfg->instances, pool->cfg->instances_max);
		return -EINVAL;
	}
	if (n > LIMIT_INSTANCES_MAX) {
		supervisor_cause(cause, "pool '%s': instances must be from 0 "
		    "to %d (got %u)", name, LIMIT_INSTANCES_MAX, n);
		return -EINVAL;
	}
	log_info("pool %s: scaling from %u to %u instances", name,
	    pool->instances, n);
	pool->instances = n;
	if (supervisor_pool_sync(pool) != 0) {
		supervisor_cause(cause, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* Applies a newly loaded config. */
int
supervisor_reload(struct supervisor *sv, struct config *config,
    char **cause)
{
	struct supervisor_pools	 order;
	struct supervisor_pool	*pool, *next;
	struct supervisor_proc	*p;
	struct config_pool	*np, **copies = NULL;
	size_t			 ncopies = 0, i;
	int			 error;

	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	TAILQ_FOREACH(np, &config->pools, entry) {
		TAILQ_FOREACH(p, &sv->adhoc, entry) {
			if (strcmp(p->id, np->name) == 0) {
				supervisor_cause(cause, "%s:%d: pool '%s' has "
				    "the id of a spawned process; stop it "
				    "first or rename the pool", config->path,
				    np->line, np->name);
				return -EEXIST;
			}
		}
		ncopies++;
	}
	/* Copy everything first so that nothing is half-applied. */
	if ((copies = calloc(ncopies + 1, sizeof(*copies))) == NULL)
		goto nomem;
	i = 0;
	TAILQ_FOREACH(np, &config->pools, entry)
		if ((copies[i++] = config_pool_dup(np)) == NULL)
			goto nomem;

	TAILQ_INIT(&order);
	i = 0;
	TAILQ_FOREACH(np, &config->pools, entry) {
		struct config_pool	*copy = copies[i++];

		pool = supervisor_pool_find(sv, np->name);
		if (pool == NULL) {
			log_info("pool %s: added", np->name);
			pool = supervisor_pool_new(sv, copy);
			if (pool == NULL) {
				config_pool_free(copy);
				log_warnx("pool %s: out of memory", np->name);
				continue;
			}
			TAILQ_REMOVE(&sv->pools, pool, entry);
			TAILQ_INSERT_TAIL(&order, pool, entry);
			if (supervisor_pool_sync(pool) != 0)
				log_warnx("pool %s: out of memory starting "
				    "it", np->name);
			continue;
		}
		TAILQ_REMOVE(&sv->pools, pool, entry);
		TAILQ_INSERT_TAIL(&order, pool, entry);
		if (pool->removing || pool->next_cfg != NULL) {
			/* Still going away: come back with these settings. */
			pool->removing = false;
			config_pool_free(pool->next_cfg);
			pool->next_cfg = copy;
			supervisor_pool_check(pool);
		} else if (config_pool_equal(pool->cfg, copy)) {
			config_pool_free(copy);
		} else if (config_pool_equal_but_instances(pool->cfg, copy)) {
			log_info("pool %s: instances changed", np->name);
			supervisor_pool_standby(pool, false);
			config_pool_free(pool->cfg);
			pool->cfg = copy;
			pool->instances = (unsigned)copy->instances;
			if (supervisor_pool_sync(pool) != 0)
				log_warnx("pool %s: out of memory scaling it",
				    np->name);
		} else {
			log_info("pool %s: changed, restarting it", np->name);
			pool->next_cfg = copy;
			supervisor_pool_retire(pool);
		}
	}
	free(copies);

	/* What is left in sv->pools is not in the new config. */
	TAILQ_FOREACH_SAFE(pool, &sv->pools, entry, next) {
		TAILQ_REMOVE(&sv->pools, pool, entry);
		TAILQ_INSERT_TAIL(&order, pool, entry);
		if (!pool->removing) {
			log_info("pool %s: removed from the config, stopping "
			    "it", pool->cfg->name);
			pool->removing = true;
			config_pool_free(pool->next_cfg);
			pool->next_cfg = NULL;
		}
	}
	TAILQ_CONCAT(&sv->pools, &order, entry);
	TAILQ_FOREACH_SAFE(pool, &sv->pools, entry, next)
		if (pool->removing)
			supervisor_pool_retire(pool);

	config_free(sv->config);
	sv->config = config;
	supervisor_scale_arm(sv);
	return 0;

nomem:
	for (i = 0; copies != NULL && i < ncopies; i++)
		config_pool_free(copies[i]);
	free(copies);
	supervisor_cause(cause, "out of memory");
	return -ENOMEM;
}

/* Reads the config file again and applies it. */
int
supervisor_reload_file(struct supervisor *sv, char **cause)
{
	struct config	*config;
	int		 error, old_level = sv->config->broker.log_level;

	if (sv->config->path == NULL) {
		supervisor_cause(cause, "there is no config file to reload "
		    "(patchbayd was started without -c)");
		return -ENOENT;
	}
	if ((error = supervisor_check_live(sv, cause)) != 0)
		return error;
	log_info("supervisor: reloading %s", sv->config->path);
	if ((error = config_load(sv->config->path, &config, cause)) != 0)
		return error;
	if ((error = supervisor_reload(sv, config, cause)) != 0) {
		config_free(config);
		return error;
	}
	if (settings_given(&config->broker, SETTINGS_LOG_LEVEL) &&
	    config->broker.log_level != old_level)
		log_set_level((enum log_level)config->broker.log_level);
	return 0;
}

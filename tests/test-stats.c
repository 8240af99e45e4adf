/*
 * test-stats.c: what `patchbay ctl stats`, `count`, `jobs` and `queues`
 * tell an operator, checked against a known sequence of jobs.
 *
 * A pool of one `patchbay worker --exec` runs a script that answers by its
 * payload: "ok" succeeds, "err" fails, "slow" outlives its timeout and
 * "die" kills the worker itself (kill -9 $PPID). Clients are the real
 * `patchbay run`. The answers are read with `ctl --json` and picked apart
 * by python3's json module, as a monitoring script would.
 */
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "tests/harness.h"

#define END	((const char *)NULL)

static struct harness_broker	broker;
static char			tmp[256];

/* Per test: a fresh directory. */
static void
stats_setup(void)
{
	memset(&broker, 0, sizeof(broker));
	broker.pid = -1;
	harness_tmpdir(tmp, sizeof(tmp));
}

/* Per test: stops the broker, which stops its processes. */
static void
stats_teardown(void)
{
	harness_broker_stop(&broker);
}

/*
 * Starts a broker with the pool "mix": one worker of capacity 4 running
 * the script described above.
 */
static void
start_mix(void)
{
	char		 conf[300], script[300];
	const char	*extra[] = { "-c", conf, "--http", "tcp:127.0.0.1:0",
			    NULL };
	FILE		*f;

	snprintf(script, sizeof(script), "%s/mix.sh", tmp);
	ck_assert_ptr_nonnull(f = fopen(script, "w"));
	fprintf(f,
	    "case \"$(cat)\" in\n"
	    "ok) echo fine ;;\n"
	    "err) echo broken >&2; exit 3 ;;\n"
	    "slow) exec sleep 30 ;;\n"
	    "die) kill -9 $PPID; sleep 5 ;;\n"
	    "esac\n");
	ck_assert_int_eq(fclose(f), 0);
	snprintf(conf, sizeof(conf), "%s/pb.conf", tmp);
	ck_assert_ptr_nonnull(f = fopen(conf, "w"));
	/* ". SCRIPT": the job's shell runs it, so $PPID is the worker. */
	fprintf(f,
	    "[pool:mix]\n"
	    "command = %s worker mix --capacity 4 --kill-after 1s "
	    "--exec \". %s\"\n"
	    "backoff = 50ms..1s\n",
	    harness_cli(), script);
	ck_assert_int_eq(fclose(f), 0);
	harness_broker_start(&broker, extra, false);
}

/* `patchbay ctl` against the test's broker (harness_ctl()). */
#define ctl(json, out, err, ...)					\
	harness_ctl(&broker, (json), (out), (err), __VA_ARGS__)

/* The Python that reads a /metrics text into d: {"name{labels}": value}. */
#define METRICS_LOAD							\
	"d = {l.rsplit(' ', 1)[0]: float(l.rsplit(' ', 1)[1]) "		\
	"for l in sys.stdin.read().splitlines() "				\
	"if l and not l.startswith('#')}"

/*
 * Evaluates a Python expression over a document read from in by load (a
 * statement that binds d) and returns what it prints (caller frees).
 */
static char *
py_eval(const char *in, const char *load, const char *expr)
{
	char		 prog[1024], *out = NULL, *err = NULL;
	const char	*argv[] = { "python3", "-c", prog, NULL };
	int		 status;

	snprintf(prog, sizeof(prog), "import json, sys\n"
	    "%s\n"
	    "print(%s)\n", load, expr);
	argv[0] = "/usr/bin/python3";
	status = harness_run(argv, NULL, in, strlen(in), &out, &err, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "python3 on '%s': %s", expr, err);
	free(err);
	return out;
}

/* py_eval() of a JSON document (bound to d). */
static char *
json_eval(const char *json, const char *expr)
{
	char	*out = py_eval(json, "d = json.load(sys.stdin)", expr);

	out[strcspn(out, "\n")] = '\0';
	return out;
}

/* GETs path from the broker's HTTP endpoint (caller frees the body). */
static char *
http_get(const char *path)
{
	char	*ready, *line, *save = NULL, url[128] = "", expr[256];

	ck_assert_ptr_nonnull(ready = harness_read_file(broker.ready_path));
	for (line = strtok_r(ready, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "http:", 5) == 0)
			snprintf(url, sizeof(url), "http://%s%s", line + 5,
			    path);
	free(ready);
	ck_assert_msg(url[0] != '\0', "no http: line in the ready file");
	snprintf(expr, sizeof(expr), "urllib.request.urlopen('%s', "
	    "timeout=10).read().decode(), end=''", url);
	return py_eval("", "import urllib.request", expr);
}

/* The value of one sample of a /metrics text. */
static long long
metric(const char *text, const char *sample)
{
	char		 expr[256], *s;
	long long	 v;

	snprintf(expr, sizeof(expr), "int(d.get('%s', -1))", sample);
	s = py_eval(text, METRICS_LOAD, expr);
	v = strtoll(s, NULL, 10);
	free(s);
	return v;
}

/* json_eval() of an integer. */
static long long
json_int(const char *json, const char *expr)
{
	char		*s = json_eval(json, expr);
	long long	 v = strtoll(s, NULL, 10);

	free(s);
	return v;
}

/* `ctl --json VERB` as a string (caller frees). */
static char *
ctl_json(const char *verb)
{
	char	*out = NULL, *err = NULL;

	ck_assert_msg(ctl(true, &out, &err, verb, END) == 0, "ctl %s: %s",
	    verb, err);
	free(err);
	return out;
}

/* Runs `patchbay run mix PAYLOAD` with a timeout; returns its status. */
static int
run_mix(const char *payload, const char *timeout)
{
	const char	*argv[] = { harness_cli(), "run", "--broker",
			    broker.unix_ep, "--timeout", timeout, "mix",
			    payload, NULL };
	int		 status;

	status = harness_run(argv, NULL, NULL, 0, NULL, NULL, 30000);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The process mix/1 is running with its worker registered. */
static bool
mix_running(void *arg)
{
	char	*out = NULL, *err = NULL;
	bool	 ok;

	(void)arg;
	if (ctl(false, &out, &err, "ps", END) != 0) {
		free(out);
		free(err);
		return false;
	}
	ok = strstr(out, "running") != NULL;
	free(out);
	free(err);
	return ok;
}

/* The worker is back after a kill: restarted once and registered. */
static bool
mix_restarted(void *arg)
{
	char		*ps = ctl_json("ps");
	long long	 restarts = json_int(ps, "d[0]['restarts']");
	char		*state = json_eval(ps, "d[0]['state']");
	bool		 ok = restarts == 1 && strcmp(state, "running") == 0;

	(void)arg;
	free(ps);
	free(state);
	return ok;
}

START_TEST(stats_count_a_known_sequence)
{
	char		*q, *st, *out;
	long long	 count, total;
	int		 i;

	start_mix();
	ck_assert(harness_wait_until(mix_running, NULL, 10000));

	/* 5 OK, 3 ERROR, 2 TIMEOUT, then 1 WORKER_LOST (exit statuses of
	 * `patchbay run`: 0, 4, 5, 6; see docs/cli.md). */
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(run_mix("ok", "20s"), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_ne(run_mix("err", "20s"), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_ne(run_mix("slow", "300ms"), 0);
	/* The worker answers the timeouts' CANCELs: wait for both. */
	for (i = 0; i < 500; i++) {
		st = ctl_json("stats");
		count = json_int(st, "d['processes'][0]['received']"
		    "['results']");
		free(st);
		if (count == 10)
			break;
		usleep(20000);
	}
	ck_assert_int_eq(count, 10);
	ck_assert_int_ne(run_mix("die", "20s"), 0);
	ck_assert(harness_wait_until(mix_restarted, NULL, 10000));

	/* Outcomes by function and status. */
	q = ctl_json("queues");
	out = json_eval(q, "[f['function'] for f in d]");
	ck_assert_str_eq(out, "['mix']");
	free(out);
	ck_assert_int_eq(json_int(q, "d[0]['results']['OK']"), 5);
	ck_assert_int_eq(json_int(q, "d[0]['results']['ERROR']"), 3);
	ck_assert_int_eq(json_int(q, "d[0]['results']['TIMEOUT']"), 2);
	ck_assert_int_eq(json_int(q, "d[0]['results']['WORKER_LOST']"), 1);
	ck_assert_int_eq(json_int(q, "d[0]['results']['total']"), 11);
	ck_assert_int_eq(json_int(q, "d[0]['rejected']"), 0);
	/* Every dispatch waited; 8 jobs ran to the worker's answer. */
	ck_assert_int_eq(json_int(q, "d[0]['wait']['count']"), 11);
	ck_assert_int_eq(json_int(q, "d[0]['run']['count']"), 8);
	ck_assert_int_eq(json_int(q, "d[0]['run']['le_ms']['+Inf']"), 8);
	free(q);

	/*
	 * Messages: the clients sent 11 RUNs and got 11 RESULTs; the worker
	 * process, over both its connections, got 11 RUNs and 2 CANCELs and
	 * sent back 10 RESULTs (5 OK, 3 ERROR, 2 CANCELLED); its first
	 * connection's figures survived the restart.
	 */
	st = ctl_json("stats");
	ck_assert_int_eq(json_int(st, "d['processes'][0]['sent']"
	    "['requests']"), 13);
	ck_assert_int_eq(json_int(st, "d['processes'][0]['received']"
	    "['results']"), 10);
	ck_assert_int_eq(json_int(st, "d['processes'][0]['restarts']"), 1);
	/* Two REGISTERs and two HELLOs: one per connection. */
	ck_assert_int_eq(json_int(st, "d['processes'][0]['received']"
	    "['control']"), 4);
	ck_assert_int_eq(json_int(st, "d['broker']['received']['requests']"),
	    11);
	ck_assert_int_eq(json_int(st, "d['broker']['sent']['results']"), 11);
	/* Requests sent = RUNs and CANCELs to the worker. */
	ck_assert_int_eq(json_int(st, "d['broker']['sent']['requests']"), 13);
	ck_assert_int_eq(json_int(st, "d['broker']['received']['results']"),
	    10);
	/* Bytes are counted both ways and add up over the connections. */
	ck_assert_int_gt(json_int(st, "d['broker']['bytes_received']"),
	    json_int(st, "d['processes'][0]['bytes_received']"));
	out = json_eval(st, "d['broker']['last_message_time']");
	ck_assert_msg(strlen(out) == 24 && out[10] == 'T' && out[23] == 'Z',
	    "not RFC 3339 with ms: %s", out);
	free(out);
	total = json_int(st, "d['broker']['total_sent'] + "
	    "d['broker']['total_received']");
	free(st);

	/*
	 * count is the same total, later: plus the stats call's REPLY and
	 * the count call's HELLO, WELCOME and ADMIN (the REPLY is not sent
	 * yet when it is counted).
	 */
	out = ctl_json("count");
	count = json_int(out, "d['count']");
	free(out);
	ck_assert_int_eq(count, total + 4);

	/* /status.json and /metrics say the same. */
	st = http_get("/status.json");
	ck_assert_int_eq(json_int(st, "d['results']['OK']"), 5);
	ck_assert_int_eq(json_int(st, "d['results']['ERROR']"), 3);
	ck_assert_int_eq(json_int(st, "d['results']['TIMEOUT']"), 2);
	ck_assert_int_eq(json_int(st, "d['results']['WORKER_LOST']"), 1);
	ck_assert_int_eq(json_int(st, "len([o for o in d['recent'] "
	    "if o['status'] == 'WORKER_LOST'])"), 1);
	free(st);
	out = http_get("/metrics");
	ck_assert_int_eq(metric(out, "patchbay_jobs_total{fn=\"mix\","
	    "status=\"OK\"}"), 5);
	ck_assert_int_eq(metric(out, "patchbay_jobs_total{fn=\"mix\","
	    "status=\"ERROR\"}"), 3);
	ck_assert_int_eq(metric(out, "patchbay_jobs_total{fn=\"mix\","
	    "status=\"TIMEOUT\"}"), 2);
	ck_assert_int_eq(metric(out, "patchbay_jobs_total{fn=\"mix\","
	    "status=\"WORKER_LOST\"}"), 1);
	ck_assert_int_eq(metric(out, "patchbay_job_run_seconds_count"
	    "{fn=\"mix\"}"), 8);
	ck_assert_int_eq(metric(out, "patchbay_messages_received_total"
	    "{type=\"results\"}"), 10);
	ck_assert_int_eq(metric(out, "patchbay_messages_sent_total"
	    "{type=\"results\"}"), 11);
	ck_assert_int_eq(metric(out, "patchbay_process_restarts_total"
	    "{pool=\"mix\"}"), 1);
	free(out);
}
END_TEST

START_TEST(stats_jobs_and_queues_show_live_jobs)
{
	const char	*argv[] = { harness_cli(), "run", "--broker", NULL,
			    "--timeout", "20s", "mix", "slow", NULL };
	char		*j, *q, *out = NULL, *err = NULL;
	pid_t		 c[6];
	int		 i, n;

	argv[3] = broker.unix_ep;
	start_mix();
	ck_assert(harness_wait_until(mix_running, NULL, 10000));
	/* Capacity 4: four run, two wait. */
	for (i = 0; i < 6; i++)
		c[i] = harness_spawn(argv, NULL, NULL);
	for (i = 0; i < 500; i++) {
		j = ctl_json("jobs");
		n = (int)json_int(j, "d['matched']");
		free(j);
		if (n == 6)
			break;
		usleep(20000);
	}
	ck_assert_int_eq(n, 6);
	usleep(100000);

	j = ctl_json("jobs");
	ck_assert_int_eq(json_int(j, "len([x for x in d['jobs'] "
	    "if x['state'] == 'running' and x['worker'].endswith('mix/1') "
	    "and x['attempt'] == 1])"), 4);
	ck_assert_int_eq(json_int(j, "len([x for x in d['jobs'] "
	    "if x['state'] == 'queued' and x['worker'] is None])"), 2);
	ck_assert_int_eq(json_int(j, "len([x for x in d['jobs'] "
	    "if 15000 < x['timeout_left_ms'] <= 20000 and x['age_ms'] >= 100 "
	    "and x['function'] == 'mix' and len(x['id']) == 36])"), 6);
	free(j);

	/* Filters, as the operator types them. */
	ck_assert_int_eq(ctl(true, &out, &err, "jobs", "--state", "queued",
	    END), 0);
	ck_assert_int_eq(json_int(out, "d['matched']"), 2);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(true, &out, &err, "jobs", "--fn", "other",
	    END), 0);
	ck_assert_int_eq(json_int(out, "d['matched']"), 0);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(true, &out, &err, "jobs", "--client",
	    "patchbay run", "--limit", "1", END), 0);
	ck_assert_int_eq(json_int(out, "d['matched']"), 6);
	ck_assert_int_eq(json_int(out, "len(d['jobs'])"), 1);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "jobs", "--limit", "2", END),
	    0);
	ck_assert_msg(strstr(out, "(2 of 6 jobs shown") != NULL, "%s", out);
	free(out);
	free(err);

	q = ctl_json("queues");
	ck_assert_int_eq(json_int(q, "d[0]['queued']"), 2);
	ck_assert_int_eq(json_int(q, "d[0]['running']"), 4);
	ck_assert_int_eq(json_int(q, "d[0]['workers']"), 1);
	ck_assert_int_eq(json_int(q, "d[0]['capacity']"), 4);
	ck_assert_int_eq(json_int(q, "d[0]['free_slots']"), 0);
	ck_assert_int_ge(json_int(q, "d[0]['oldest_wait_ms']"), 100);
	free(q);
	ck_assert_int_eq(ctl(false, &out, &err, "queues", END), 0);
	ck_assert_msg(strstr(out, "OLDEST_WAIT") != NULL &&
	    strstr(out, "mix") != NULL, "%s", out);
	free(out);
	free(err);
	for (i = 0; i < 6; i++)
		harness_kill(c[i], SIGKILL);
}
END_TEST

START_TEST(stats_bad_arguments_are_usage_errors)
{
	char	*out = NULL, *err = NULL;

	start_mix();
	ck_assert_int_eq(ctl(false, &out, &err, "jobs", "--state", "done",
	    END), 2);
	ck_assert_msg(strstr(err, "expected queued, running or delayed") != NULL,
	    "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "jobs", "--limit", "0", END),
	    2);
	ck_assert_msg(strstr(err, "--limit") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "stats", "--fn", "x", END), 2);
	ck_assert_msg(strstr(err, "does not apply") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_int_eq(ctl(false, &out, &err, "count", "extra", END), 2);
	free(out);
	free(err);
	/* An empty broker answers with zeros and empty tables. */
	ck_assert_int_eq(ctl(false, &out, &err, "jobs", END), 0);
	ck_assert_msg(strstr(out, "no live jobs") != NULL, "%s", out);
	free(out);
	free(err);
}
END_TEST

/* The suite. */
static Suite *
stats_suite(void)
{
	Suite	*s = suite_create("stats");
	TCase	*tc = tcase_create("stats");

	tcase_add_checked_fixture(tc, stats_setup, stats_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, stats_count_a_known_sequence);
	tcase_add_test(tc, stats_jobs_and_queues_show_live_jobs);
	tcase_add_test(tc, stats_bad_arguments_are_usage_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return harness_main(stats_suite());
}

/*
 * test-http.c: patchbayd's HTTP endpoint, end to end.
 *
 * Each test starts the real patchbayd with --http tcp:127.0.0.1:0, finds
 * the bound port in the ready file's "http:" line, and talks plain HTTP/1.1
 * to it over a socket of its own (http_get() below), as curl or Prometheus
 * would. Jobs run through the real `patchbay` CLI, so what is checked is
 * what an operator sees: status codes, bodies, `promtool check metrics`
 * (skipped with a message when /usr/bin/promtool is missing) and the page
 * as headless Chromium renders it (skipped likewise without
 * /usr/bin/chromium). Whatever a test starts dies with it (harness.h).
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "tests/harness.h"
#include "util/util.h"

#define PROMTOOL	"/usr/bin/promtool"
#define CHROMIUM	"/usr/bin/chromium"

static struct harness_broker	broker;
static char			tmp[256];
static char			http_ep[128];	/* "tcp:127.0.0.1:PORT" */
static char			http_url[128];	/* "http://127.0.0.1:PORT" */

/*
 * The metric families /metrics must always have, with HELP and TYPE: a
 * dashboard or an alert written against these names keeps working. A
 * family may be added to the list; none may leave it.
 */
static const char *const frozen_families[] = {
	"patchbay_build_info",
	"patchbay_uptime_seconds",
	"patchbay_connections",
	"patchbay_workers",
	"patchbay_capacity",
	"patchbay_in_flight",
	"patchbay_queue_depth",
	"patchbay_queue_oldest_seconds",
	"patchbay_jobs_total",
	"patchbay_job_wait_seconds",
	"patchbay_job_run_seconds",
	"patchbay_messages_received_total",
	"patchbay_messages_sent_total",
	"patchbay_bytes_received_total",
	"patchbay_bytes_sent_total",
	"patchbay_process_restarts_total",
	"patchbay_process_state",
	"patchbay_process_unhealthy_total",
	"patchbay_process_health",
	"patchbay_store_up",
	"patchbay_store_commits_total",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"process_virtual_memory_bytes",
	"process_start_time_seconds",
	"process_open_fds",
	"process_max_fds",
};

/* An HTTP answer. */
struct http_resp {
	int	 status;		/* 0: no answer (closed, timed out) */
	char	*head;			/* status line and headers */
	char	*body;
	size_t	 len;			/* of body */
};

/* Per test: a fresh directory, nothing running. */
static void
http_setup(void)
{
	memset(&broker, 0, sizeof(broker));
	broker.pid = -1;
	http_ep[0] = '\0';
	harness_tmpdir(tmp, sizeof(tmp));
}

/* Per test: stops the broker, which stops its processes. */
static void
http_teardown(void)
{
	harness_broker_stop(&broker);
}

/* Frees what an answer holds. */
static void
resp_clear(struct http_resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* A file in the test's directory (harness_write_file()). */
#define write_conf(buf, len, name, ...)					\
	harness_write_file((buf), (len), tmp, (name), __VA_ARGS__)

/*
 * Starts patchbayd with --http tcp:127.0.0.1:0, extra flags
 * (NULL-terminated, may be NULL), and reads its HTTP endpoint from the
 * ready file.
 */
static void
start_broker(const char *const *extra)
{
	const char	*argv[24];
	char		*ready, *line, *save = NULL;
	size_t		 n = 0;

	argv[n++] = "--http";
	argv[n++] = "tcp:127.0.0.1:0";
	for (; extra != NULL && *extra != NULL && n < 23; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	harness_broker_start(&broker, argv, false);
	ck_assert_ptr_nonnull(ready = harness_read_file(broker.ready_path));
	for (line = strtok_r(ready, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strncmp(line, "http:", 5) == 0) {
			snprintf(http_ep, sizeof(http_ep), "tcp:%s", line + 5);
			snprintf(http_url, sizeof(http_url), "http://%s",
			    line + 5);
		}
	free(ready);
	ck_assert_msg(http_ep[0] != '\0', "no http: line in the ready file");
}

/* Connects to the HTTP endpoint; returns the descriptor. */
static int
http_connect(void)
{
	struct endpoint	ep;
	char		err[UTIL_ERRLEN];
	int		fd;

	ck_assert_int_eq(endpoint_parse(http_ep, &ep, err), 0);
	ck_assert_int_eq(endpoint_connect(&ep, 2000, &fd), 0);
	return fd;
}

/* Writes all of buf to a non-blocking socket, waiting as needed. */
static void
send_all(int fd, const char *buf, size_t len)
{
	struct pollfd	pfd = { .fd = fd, .events = POLLOUT };
	ssize_t		n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			ck_assert_int_gt(poll(&pfd, 1, 5000), 0);
			continue;
		}
		if (n < 0)
			return;	/* closed by the broker: its answer tells */
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * Reads from fd until EOF (or timeout_ms of silence); returns what came,
 * NUL-terminated (caller frees), its length in *ret_len.
 */
static char *
read_all(int fd, int timeout_ms, size_t *ret_len)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	char		*buf = NULL;
	size_t		 len = 0, cap = 0;
	ssize_t		 n;

	for (;;) {
		if (cap - len < 4096) {
			cap = cap * 2 + 8192;
			ck_assert_ptr_nonnull(buf = realloc(buf, cap));
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			break;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			break;
	}
	if (buf == NULL)
		ck_assert_ptr_nonnull(buf = malloc(1));
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

/* Splits a raw answer into r: status, head, body. */
static void
resp_parse(char *raw, size_t len, struct http_resp *r)
{
	char	*sep = strstr(raw, "\r\n\r\n");

	memset(r, 0, sizeof(*r));
	if (strncmp(raw, "HTTP/1.", 7) == 0 && len > 12)
		r->status = atoi(raw + 9);
	if (sep == NULL) {
		r->head = raw;
		ck_assert_ptr_nonnull(r->body = strdup(""));
		return;
	}
	*sep = '\0';
	r->len = len - (size_t)(sep + 4 - raw);
	ck_assert_ptr_nonnull(r->body = malloc(r->len + 1));
	memcpy(r->body, sep + 4, r->len);
	r->body[r->len] = '\0';
	r->head = raw;
}

/*
 * Sends "METHOD PATH HTTP/1.1" with extra header lines (each ending in
 * \r\n, may be "") and Connection: close, and reads the whole answer.
 */
static void
http_request(const char *method, const char *path, const char *headers,
    struct http_resp *r)
{
	char	*req = NULL, *raw;
	size_t	 len;
	int	 fd = http_connect();

	ck_assert_int_ge(asprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\n"
	    "%sConnection: close\r\n\r\n", method, path, headers), 0);
	send_all(fd, req, strlen(req));
	free(req);
	raw = read_all(fd, 5000, &len);
	close(fd);
	resp_parse(raw, len, r);
}

/* GET path; the answer in r. */
static void
http_get(const char *path, struct http_resp *r)
{
	http_request("GET", path, "", r);
}

/* GET path and the answer's status only. */
static int
http_status(const char *path)
{
	struct http_resp	r;
	int			status;

	http_get(path, &r);
	status = r.status;
	resp_clear(&r);
	return status;
}

/* True when the answer's head has the header line "name: value". */
static bool
resp_has_header(const struct http_resp *r, const char *line)
{
	return strcasestr(r->head, line) != NULL;
}

/* Runs `patchbay run FN` with input; fails the test unless it exits 0. */
static void
run_job(const char *fn, const char *input)
{
	char	*out = NULL, *err = NULL;
	int	 status;

	status = harness_run((const char *[]){ harness_cli(), "run", fn,
	    "--broker", broker.unix_ep, NULL }, NULL, input, strlen(input),
	    &out, &err, 20000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "run %s: status %d: %s", fn, status, err);
	free(out);
	free(err);
}

/* Starts `patchbay worker FN --exec CMD --name NAME` against the broker. */
static pid_t
start_worker(const char *fn, const char *cmd, const char *name)
{
	char	log[300];

	snprintf(log, sizeof(log), "%s/worker.log", tmp);
	return harness_spawn((const char *[]){ harness_cli(), "worker", fn,
	    "--exec", cmd, "--name", name, "--broker", broker.unix_ep,
	    NULL }, NULL, log);
}

/* Condition: `ctl status --json` has the string arg. */
static bool
status_has(void *arg)
{
	char	*out = NULL;
	bool	 found;

	harness_run((const char *[]){ harness_cli(), "ctl", "status",
	    "--json", "--broker", broker.unix_ep, NULL }, NULL, NULL, 0, &out,
	    NULL, 5000);
	found = out != NULL && strstr(out, (const char *)arg) != NULL;
	free(out);
	return found;
}

/* Waits until the worker named name is registered for fn. */
static void
wait_worker(const char *fn)
{
	char	needle[300];

	snprintf(needle, sizeof(needle), "\"function\": \"%s\"", fn);
	ck_assert_msg(harness_wait_until(status_has, needle, 10000),
	    "function %s never appeared", fn);
}

/* Condition: /readyz answers the status *arg. */
static bool
readyz_is(void *arg)
{
	return http_status("/readyz") == *(int *)arg;
}

/* Condition: /history.json holds at least *arg samples. */
static bool
history_has(void *arg)
{
	struct http_resp	 r;
	int			 n = 0;
	const char		*s;

	http_get("/history.json", &r);
	for (s = strstr(r.body, "\"samples\""); s != NULL &&
	    (s = strchr(s + 1, '[')) != NULL; )
		n++;
	resp_clear(&r);
	/* The first '[' opens the array. */
	return n - 1 >= *(int *)arg;
}

/* Writes s to DIR/name; the path in buf. */
static void
save_file(char *buf, size_t len, const char *name, const char *s,
    size_t n)
{
	FILE	*f;

	snprintf(buf, len, "%s/%s", tmp, name);
	ck_assert_ptr_nonnull(f = fopen(buf, "w"));
	ck_assert_uint_eq(fwrite(s, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

/* A bound in ms, ten times as long under a broker wrapper (valgrind). */
static unsigned long long
slack(unsigned long long ms)
{
	return harness_broker_wrapped() ? 10 * ms : ms;
}

/* ---- tests ------------------------------------------------------------ */

/* The basic paths: health, 404, 405, HEAD, and the ready file's line. */
START_TEST(http_paths_and_errors)
{
	struct http_resp	r;

	start_broker(NULL);
	ck_assert(harness_log_contains(&broker, "http: serving on tcp:"
	    "127.0.0.1:"));

	http_get("/healthz", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ok\n");
	resp_clear(&r);

	http_get("/no/such/path", &r);
	ck_assert_int_eq(r.status, 404);
	resp_clear(&r);

	http_request("POST", "/metrics", "Content-Length: 0\r\n", &r);
	ck_assert_int_eq(r.status, 405);
	ck_assert(resp_has_header(&r, "Allow: GET, HEAD"));
	resp_clear(&r);

	http_request("DELETE", "/healthz", "", &r);
	ck_assert_int_eq(r.status, 405);
	resp_clear(&r);

	http_request("HEAD", "/healthz", "", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(resp_has_header(&r, "Content-Length: 3"));
	ck_assert_uint_eq(r.len, 0);
	resp_clear(&r);

	http_get("/", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(resp_has_header(&r, "Content-Type: text/html"));
	ck_assert_ptr_nonnull(strstr(r.body, "<svg id=\"chart\""));
	/* Self-contained: nothing is loaded from elsewhere. */
	ck_assert_ptr_null(strstr(r.body, "src=\"http"));
	ck_assert_ptr_null(strstr(r.body, "href=\"http"));
	resp_clear(&r);
}
END_TEST

/* An http setting that is not tcp: or a port is refused at start. */
START_TEST(http_bad_setting_refused)
{
	char	*err = NULL;
	int	 status;

	status = harness_run((const char *[]){ harness_patchbayd(), "--http",
	    "unix:/tmp/x.sock", NULL }, NULL, NULL, 0, NULL, &err, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	ck_assert_ptr_nonnull(strstr(err, "--http: expected tcp:HOST:PORT or "
	    "a port number (got 'unix:/tmp/x.sock')"));
	free(err);
}
END_TEST

/*
 * /readyz is 503 "starting" while a pool's worker has not registered,
 * then 200; /healthz is 200 all along.
 */
START_TEST(http_readyz_starting_then_ready)
{
	char			conf[300];
	struct http_resp	r;
	int			want = 200;

	write_conf(conf, sizeof(conf), "slow.conf",
	    "[pool:slowstart]\n"
	    "command = sh -c 'sleep 1.5; exec \"$0\" worker slow --exec cat' "
	    "%s\n", harness_cli());
	start_broker((const char *[]){ "-c", conf, NULL });
	http_get("/readyz", &r);
	ck_assert_int_eq(r.status, 503);
	ck_assert_str_eq(r.body, "starting\n");
	resp_clear(&r);
	ck_assert_int_eq(http_status("/healthz"), 200);
	ck_assert_msg(harness_wait_until(readyz_is, &want, 10000),
	    "/readyz never said ready");
}
END_TEST

/* /readyz is 503 "stopping" while the broker drains its processes. */
START_TEST(http_readyz_stopping_while_draining)
{
	char			conf[300];
	struct http_resp	r;
	int			want = 200;

	/*
	 * The worker registers; the shell (and the sleep after it) ignore
	 * SIGTERM, so the stop takes stop_timeout.
	 */
	write_conf(conf, sizeof(conf), "stubborn.conf",
	    "[pool:stubborn]\n"
	    "command = sh -c 'trap \"\" TERM; \"$0\" worker stub --exec cat; "
	    "sleep 30' %s\n"
	    "stop_timeout = 3s\n", harness_cli());
	start_broker((const char *[]){ "-c", conf, NULL });
	ck_assert_msg(harness_wait_until(readyz_is, &want, 10000),
	    "/readyz never said ready");
	ck_assert_int_eq(kill(broker.pid, SIGTERM), 0);
	want = 503;
	ck_assert_msg(harness_wait_until(readyz_is, &want, (int)slack(2000)),
	    "/readyz did not say 503 while stopping");
	http_get("/readyz", &r);
	ck_assert_str_eq(r.body, "stopping\n");
	resp_clear(&r);
	ck_assert_int_eq(http_status("/healthz"), 200);
}
END_TEST

/*
 * /status.json is the snapshot of `ctl status --json`: after a known run
 * of jobs the two agree on every counter (python3 compares them).
 */
START_TEST(http_status_json_matches_ctl_status)
{
	static const char	 script[] =
	    "import json, sys\n"
	    "a = json.load(open(sys.argv[1]))\n"
	    "b = json.load(open(sys.argv[2]))\n"
	    "assert sorted(a) == sorted(b), (sorted(a), sorted(b))\n"
	    "for k in ('results', 'submitted', 'dispatched', 'retried',\n"
	    "          'workers', 'functions', 'queued', 'running',\n"
	    "          'version', 'pid', 'settings', 'function_list'):\n"
	    "    assert a[k] == b[k], (k, a[k], b[k])\n"
	    "assert a['results']['OK'] == 3 and a['results']['ERROR'] == 1, a\n"
	    "w = [x['name'] for x in a['worker_list']]\n"
	    "assert 'echoer' in w and 'failer' in w, w\n"
	    "r = [(x['function'], x['status']) for x in a['recent']]\n"
	    "assert r == [('fail', 'ERROR')] + [('echo', 'OK')] * 3, r\n"
	    "print('same')\n";
	struct http_resp	 r;
	char			 path_http[300], path_ctl[300], *out = NULL;
	char			*err = NULL;
	pid_t			 w1, w2;
	int			 status;

	start_broker(NULL);
	w1 = start_worker("echo", "cat", "echoer");
	w2 = start_worker("fail", "exit 3", "failer");
	wait_worker("echo");
	wait_worker("fail");
	run_job("echo", "one");
	run_job("echo", "two");
	run_job("echo", "three");
	status = harness_run((const char *[]){ harness_cli(), "run", "fail",
	    "--broker", broker.unix_ep, NULL }, NULL, "x", 1, NULL, NULL,
	    20000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);

	/* /metrics counts the same outcomes. */
	http_get("/metrics", &r);
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_jobs_total{fn=\"echo\",status=\"OK\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_jobs_total{fn=\"fail\",status=\"ERROR\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_job_run_seconds_count{fn=\"echo\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_job_run_seconds_bucket{fn=\"echo\",le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_messages_received_total{type=\"requests\"} 4\n"));
	resp_clear(&r);

	http_get("/status.json", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(resp_has_header(&r, "Content-Type: application/json"));
	save_file(path_http, sizeof(path_http), "http.json", r.body, r.len);
	resp_clear(&r);
	status = harness_run((const char *[]){ harness_cli(), "ctl", "status",
	    "--json", "--broker", broker.unix_ep, NULL }, NULL, NULL, 0, &out,
	    NULL, 5000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	save_file(path_ctl, sizeof(path_ctl), "ctl.json", out, strlen(out));
	free(out);
	out = NULL;
	status = harness_run((const char *[]){ "python3", "-c", script,
	    path_http, path_ctl, NULL }, NULL, NULL, 0, &out, &err, 10000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the two snapshots differ: %s", err);
	ck_assert_str_eq(out, "same\n");
	free(out);
	free(err);
	harness_kill(w1, SIGTERM);
	harness_kill(w2, SIGTERM);
}
END_TEST

/*
 * /metrics: the content type of format 0.0.4, every frozen family with
 * HELP and TYPE, figures that follow the jobs, and `promtool check
 * metrics` without a word, even with function names that are not valid
 * label values as they are.
 */
START_TEST(http_metrics_promtool_and_frozen_names)
{
	/* A double quote, a backslash, braces, a comma, a blank, bad UTF-8. */
	static const char	 odd[] = "we\"ird\\fn {a=b}, \xff\xfe end";
	struct http_resp	 r;
	char			 conf[300], path[300], needle[256];
	char			 sdir[256], store[300];
	char			*out = NULL, *err = NULL, *p;
	pid_t			 w1, w2;
	int			 status;

	write_conf(conf, sizeof(conf), "m.conf",
	    "[pool:metricpool]\ncommand = %s worker mfn --exec cat\n"
	    "instances = 2\n", harness_cli());
	harness_tmpdir(sdir, sizeof(sdir));
	snprintf(store, sizeof(store), "%s/jobs.db", sdir);
	start_broker((const char *[]){ "-c", conf, "--store", store, NULL });
	w1 = start_worker(odd, "cat", "odd-one");
	w2 = start_worker("plain", "cat", "plain-one");
	wait_worker("plain");
	wait_worker("mfn");
	run_job(odd, "x");
	run_job("mfn", "y");
	/* A detached job: one commit of the store. */
	status = harness_run((const char *[]){ harness_cli(), "run", "-d",
	    "mfn", "z", "--broker", broker.unix_ep, NULL }, NULL, NULL, 0,
	    NULL, NULL, 20000);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	http_get("/metrics", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert(resp_has_header(&r, "Content-Type: text/plain; "
	    "version=0.0.4; charset=utf-8"));
	for (size_t i = 0; i < sizeof(frozen_families) /
	    sizeof(frozen_families[0]); i++) {
		snprintf(needle, sizeof(needle), "# HELP %s ",
		    frozen_families[i]);
		ck_assert_msg(strstr(r.body, needle) != NULL, "no '%s'",
		    needle);
		snprintf(needle, sizeof(needle), "\n# TYPE %s ",
		    frozen_families[i]);
		ck_assert_msg(strstr(r.body, needle) != NULL, "no '%s'",
		    needle);
	}
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_workers{fn=\"we\\\"ird\\\\fn {a=b}, "
	    "\xef\xbf\xbd\xef\xbf\xbd end\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_workers{fn=\"mfn\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_process_state{id=\"metricpool/1\",state=\"running\"} "
	    "1\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_process_restarts_total{pool=\"metricpool\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_process_unhealthy_total{pool=\"metricpool\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_process_health{id=\"metricpool/1\",health=\"ok\"} "
	    "1\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_process_health{id=\"metricpool/1\",health=\"unhealthy\"} "
	    "0\n"));
	ck_assert_ptr_nonnull(strstr(r.body,
	    "patchbay_connections{role=\"worker\"} 4\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "patchbay_build_info{version=\""));
	ck_assert_ptr_nonnull(strstr(r.body, "\npatchbay_store_up 1\n"));
	p = strstr(r.body, "\npatchbay_store_commits_total{result=\"ok\"} ");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_ge(atoi(strchr(p, '}') + 2), 1);
	ck_assert_ptr_nonnull(strstr(r.body,
	    "\npatchbay_store_commits_total{result=\"failed\"} 0\n"));
	save_file(path, sizeof(path), "metrics.txt", r.body, r.len);
	resp_clear(&r);

	if (access(PROMTOOL, X_OK) != 0) {
		fprintf(stderr, "test-http: %s is missing (Debian package "
		    "prometheus): skipping `promtool check metrics`\n",
		    PROMTOOL);
	} else {
		char	*cmd = NULL;

		ck_assert_int_ge(asprintf(&cmd, "%s check metrics < %s 2>&1",
		    PROMTOOL, path), 0);
		status = harness_run((const char *[]){ "/bin/sh", "-c", cmd,
		    NULL }, NULL, NULL, 0, &out, &err, 20000);
		free(cmd);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
		    out[0] == '\0', "promtool check metrics: status %d: %s",
		    status, out);
	}
	free(out);
	free(err);
	harness_kill(w1, SIGTERM);
	harness_kill(w2, SIGTERM);
}
END_TEST

/*
 * Bad HTTP clients get errors or are closed, and jobs keep flowing while
 * they try: a 100 KB header, a huge body, and a client that trickles its
 * headers and never finishes (closed after --http-timeout).
 */
START_TEST(http_bad_clients_do_not_disturb_jobs)
{
	struct http_resp	 r;
	char			*big, *raw;
	size_t			 len;
	pid_t			 w;
	int			 fd, status = 0;
	unsigned long long	 t0, closed_at = 0;
	struct pollfd		 pfd;

	start_broker((const char *[]){ "--http-timeout", "1s", NULL });
	w = start_worker("echo", "cat", "echoer");
	wait_worker("echo");

	/* 100 KB of one header. */
	ck_assert_ptr_nonnull(big = malloc(100 * 1024 + 32));
	strcpy(big, "X-Big: ");
	memset(big + 7, 'a', 100 * 1024);
	strcpy(big + 7 + 100 * 1024, "\r\n");
	http_request("GET", "/metrics", big, &r);
	ck_assert_msg(r.status >= 400 && r.status < 500, "100 KB header: "
	    "status %d", r.status);
	resp_clear(&r);
	free(big);
	run_job("echo", "after the big header");

	/* A body larger than any request needs. */
	http_request("POST", "/metrics", "Content-Length: 1000000\r\n", &r);
	ck_assert_msg(r.status >= 400 && r.status < 500, "big body: status "
	    "%d", r.status);
	resp_clear(&r);

	/* A slowloris: a byte every 100 ms, never a whole request. */
	fd = http_connect();
	send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 32);
	t0 = harness_now_ms();
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (harness_now_ms() - t0 < slack(6000)) {
		char	c;

		if (send(fd, "X", 1, MSG_NOSIGNAL) < 0 ||
		    (poll(&pfd, 1, 100) > 0 && recv(fd, &c, 1, 0) <= 0)) {
			closed_at = harness_now_ms();
			break;
		}
		/* Jobs flow meanwhile. */
		if (status++ % 5 == 0)
			run_job("echo", "during the slow client");
	}
	ck_assert_msg(closed_at != 0, "the slow client was not closed");
	ck_assert_msg(closed_at - t0 < slack(4000), "the slow client was "
	    "closed only after %llu ms", closed_at - t0);
	close(fd);

	/* A client that connects and says nothing is closed too. */
	fd = http_connect();
	t0 = harness_now_ms();
	raw = read_all(fd, slack(6000), &len);
	ck_assert_msg(harness_now_ms() - t0 < slack(3500), "a silent client "
	    "was kept %llu ms", harness_now_ms() - t0);
	ck_assert_uint_eq(len, 0);
	close(fd);
	free(raw);

	ck_assert_int_eq(http_status("/healthz"), 200);
	run_job("echo", "at the end");
	harness_kill(w, SIGTERM);
}
END_TEST

/* Condition: a GET /healthz on fd *arg has been answered. */
static bool
answered(void *arg)
{
	char	buf[256];
	ssize_t	n = recv(*(int *)arg, buf, sizeof(buf), MSG_PEEK);

	return n > 0;
}

/*
 * At most 32 HTTP connections are served at once; the next one waits to
 * be accepted (it is not refused, nor is anything else disturbed), and is
 * served as soon as one of the others closes.
 */
START_TEST(http_connection_limit)
{
	int		 fds[32], extra;
	const char	 req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
			    "Connection: close\r\n\r\n";
	struct pollfd	 pfd;
	char		*raw;
	size_t		 len;
	pid_t		 w;

	start_broker(NULL);
	w = start_worker("echo", "cat", "echoer");
	wait_worker("echo");
	for (int i = 0; i < 32; i++)
		fds[i] = http_connect();
	/* The broker has accepted them all before the next one. */
	ck_assert(harness_wait_log(&broker, "32 connections, not accepting "
	    "more until one closes", 5000));
	extra = http_connect();
	send_all(extra, req, sizeof(req) - 1);
	pfd.fd = extra;
	pfd.events = POLLIN;
	ck_assert_int_eq(poll(&pfd, 1, 500), 0);
	run_job("echo", "while HTTP is full");
	close(fds[0]);
	ck_assert_msg(harness_wait_until(answered, &extra, 5000),
	    "the waiting connection was not served after one closed");
	raw = read_all(extra, 5000, &len);
	ck_assert_int_eq(strncmp(raw, "HTTP/1.1 200", 12), 0);
	free(raw);
	close(extra);
	for (int i = 1; i < 32; i++)
		close(fds[i]);
	harness_kill(w, SIGTERM);
}
END_TEST

/* Counts the lines of the broker's log that contain needle. */
static int
log_count(const char *needle)
{
	char	*log = harness_read_file(broker.log_path), *s;
	int	 n = 0;

	for (s = log; s != NULL && (s = strstr(s, needle)) != NULL; s++)
		n++;
	free(log);
	return n;
}

/* Condition: /healthz answers 200. */
static bool
healthz_ok(void *arg)
{
	(void)arg;
	return http_status("/healthz") == 200;
}

/*
 * Out of descriptors, the endpoint pauses accepting for a second at a
 * time (one log line each, no busy loop), serves what it has, and accepts
 * again by itself once descriptors are back.
 */
START_TEST(http_accept_pauses_on_emfile)
{
	struct rlimit		 rl, low;
	int			 fds[40], n = 0, pauses;
	unsigned long long	 t0;

	/* The broker inherits a low descriptor limit; the test keeps its
	   own. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	low.rlim_cur = 24;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	start_broker(NULL);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);

	t0 = harness_now_ms();
	while (n < 40)
		fds[n++] = http_connect();	/* the kernel queues them */
	ck_assert_msg(harness_wait_log(&broker, "accept: Too many open files; "
	    "pausing for 1 s", 5000), "no EMFILE pause");
	ck_assert_int_eq(kill(broker.pid, 0), 0);
	pauses = log_count("pausing for 1 s");
	ck_assert_msg(pauses <= 2 + (int)((harness_now_ms() - t0) / 1000),
	    "%d pause lines in %llu ms", pauses, harness_now_ms() - t0);
	while (n > 0)
		close(fds[--n]);
	/*
	 * Descriptors are back: it accepts again by itself (after working
	 * through the backlog of the closed ones, which takes a while in a
	 * slow build: poll).
	 */
	ck_assert(harness_wait_until(healthz_ok, NULL, 10000));
}
END_TEST

/* Counts the polyline points of the chart's rate line in a dumped DOM. */
static int
chart_points(const char *dom)
{
	const char	*s = strstr(dom, "data-points=\"");

	return s != NULL ? atoi(s + 13) : -1;
}

/*
 * The status page in headless Chromium: the pool's processes and the
 * remote worker are rendered side by side, and the chart has points.
 */
START_TEST(http_page_renders_in_chromium)
{
	char		 conf[300], url[200], *dom = NULL, *err = NULL;
	pid_t		 w;
	int		 status, want = 3;

	if (access(CHROMIUM, X_OK) != 0) {
		fprintf(stderr, "test-http: %s is missing (Debian package "
		    "chromium): skipping the page test\n", CHROMIUM);
		return;
	}
	write_conf(conf, sizeof(conf), "page.conf",
	    "[pool:pagepool]\ncommand = %s worker pagefn --exec cat\n"
	    "instances = 2\n", harness_cli());
	start_broker((const char *[]){ "-c", conf, NULL });
	w = start_worker("remotefn", "cat", "remote-<b>one</b>");
	wait_worker("remotefn");
	wait_worker("pagefn");
	run_job("pagefn", "a");
	run_job("remotefn", "b");
	/* Three samples of history: at least two points in the chart. */
	ck_assert(harness_wait_until(history_has, &want, 10000));

	snprintf(url, sizeof(url), "%s/", http_url);
	status = harness_run((const char *[]){ CHROMIUM, "--headless",
	    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
	    "--virtual-time-budget=5000", "--dump-dom", url, NULL }, NULL,
	    NULL, 0, &dom, &err, 60000);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "chromium: status %d: %s", status, err);
	ck_assert_msg(strstr(dom, "pagepool/1") != NULL &&
	    strstr(dom, "pagepool/2") != NULL, "no pool process in: %s", dom);
	/* The worker's name is text, not markup. */
	ck_assert_msg(strstr(dom, "remote-&lt;b&gt;one&lt;/b&gt;") != NULL,
	    "no remote worker in: %s", dom);
	ck_assert_msg(strstr(dom, "remotefn") != NULL, "no remotefn");
	ck_assert_msg(chart_points(dom) >= 2, "the chart has %d points",
	    chart_points(dom));
	ck_assert_ptr_nonnull(strstr(dom, "<polyline id=\"rate\""));
	/* Its last poll worked (the script writes "cannot reach" else). */
	ck_assert_msg(strstr(dom, "id=\"live\">updated ") != NULL,
	    "the page's last poll failed: %.200s", strstr(dom, "id=\"live\""));
	free(dom);
	free(err);
	harness_kill(w, SIGTERM);
}
END_TEST

/* The HTTP suite. */
static Suite *
http_suite(void)
{
	Suite	*s = suite_create("http");
	TCase	*tc;

	tc = tcase_create("endpoints");
	tcase_add_checked_fixture(tc, http_setup, http_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, http_paths_and_errors);
	tcase_add_test(tc, http_bad_setting_refused);
	tcase_add_test(tc, http_readyz_starting_then_ready);
	tcase_add_test(tc, http_readyz_stopping_while_draining);
	tcase_add_test(tc, http_status_json_matches_ctl_status);
	suite_add_tcase(s, tc);

	tc = tcase_create("metrics");
	tcase_add_checked_fixture(tc, http_setup, http_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, http_metrics_promtool_and_frozen_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("robustness");
	tcase_add_checked_fixture(tc, http_setup, http_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, http_bad_clients_do_not_disturb_jobs);
	tcase_add_test(tc, http_connection_limit);
	tcase_add_test(tc, http_accept_pauses_on_emfile);
	suite_add_tcase(s, tc);

	tc = tcase_create("page");
	tcase_add_checked_fixture(tc, http_setup, http_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, http_page_renders_in_chromium);
	suite_add_tcase(s, tc);
	return s;
}

/* Runs the suite. */
int
main(void)
{
	return harness_main(http_suite());
}

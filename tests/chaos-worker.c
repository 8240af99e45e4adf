/*
 * chaos-worker.c: a libpatchbay worker for test-chaos, started by the
 * broker as a pool process (it uses the connection in $PATCHBAY_FD).
 *
 * Usage: chaos-worker FN CAPACITY
 *
 * A job's payload is "SECONDS MODE TAG": the job is answered after SECONDS
 * (a decimal such as 0.040), with OK "ok:TAG" when MODE is ok and ERROR
 * "fail:TAG" otherwise. A cancelled job is answered CANCELLED at once.
 * Every start and end is appended to $CHAOS_LEDGER, one write(2) per line,
 * in the same form as the job script of the `patchbay worker --exec` pool:
 *
 *   S JOB-ID ATTEMPT PID UPTIME_CS
 *   E JOB-ID ATTEMPT PID ok|fail|cancel UPTIME_CS
 *
 * where UPTIME_CS is CLOCK_BOOTTIME in hundredths of a second, as in
 * /proc/uptime. The worker exits 11 when its connection closes, like
 * `patchbay worker`.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "patchbay.h"

#define CHAOS_MAX_JOBS	256

/* One job waiting for its time. */
struct chaos_job {
	struct pb_job	*job;		/* NULL: free slot */
	unsigned long long due_ms;
	int		 ok;
	char		 tag[64];
	char		 id[40];
	unsigned	 attempt;
};

static struct chaos_job	 jobs[CHAOS_MAX_JOBS];
static int		 ledger_fd = -1;

/* Milliseconds on the monotonic clock. */
static unsigned long long
chaos_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_BOOTTIME in hundredths of a second, the unit of /proc/uptime. */
static unsigned long long
chaos_uptime_cs(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (unsigned long long)ts.tv_sec * 100 + ts.tv_nsec / 10000000;
}

/* Appends one line to the ledger with a single write. */
static void
chaos_ledger(const char *line)
{
	size_t	len = strlen(line);

	if (ledger_fd >= 0 && write(ledger_fd, line, len) != (ssize_t)len)
		fprintf(stderr, "chaos-worker: ledger write: %s\n",
		    strerror(errno));
}

/* Answers job slot j and records how it ended. */
static void
chaos_finish(struct chaos_job *j, const char *how)
{
	char	line[160], out[80];
	int	r;

	snprintf(line, sizeof(line), "E %s %u %d %s %llu\n", j->id,
	    j->attempt, (int)getpid(), how, chaos_uptime_cs());
	chaos_ledger(line);
	if (strcmp(how, "cancel") == 0)
		r = pb_job_complete(j->job, PB_CANCELLED, NULL, 0, NULL);
	else if (j->ok) {
		snprintf(out, sizeof(out), "ok:%s", j->tag);
		r = pb_job_complete(j->job, PB_OK, out, strlen(out), NULL);
	} else {
		snprintf(out, sizeof(out), "fail:%s", j->tag);
		r = pb_job_complete(j->job, PB_ERROR, NULL, 0, out);
	}
	if (r < 0 && r != -ENOTCONN)
		fprintf(stderr, "chaos-worker: job %s: answer: %s\n", j->id,
		    strerror(-r));
	j->job = NULL;
}

/* A RUN: parse the payload, record the start, schedule the answer. */
static void
chaos_job_cb(struct pb_worker *w, struct pb_job *job, void *arg)
{
	struct chaos_job	*j = NULL;
	const char		*p;
	char			 buf[128], mode[16], line[160];
	double			 secs = 0;
	size_t			 len;

	(void)w;
	(void)arg;
	for (int i = 0; i < CHAOS_MAX_JOBS && j == NULL; i++)
		if (jobs[i].job == NULL)
			j = &jobs[i];
	if (j == NULL) {
		pb_job_complete(job, PB_ERROR, NULL, 0, "chaos-worker: full");
		return;
	}
	p = pb_job_payload(job, &len);
	if (len >= sizeof(buf))
		len = sizeof(buf) - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	mode[0] = '\0';
	j->tag[0] = '\0';
	if (sscanf(buf, "%lf %15s %63s", &secs, mode, j->tag) < 2)
		secs = 0;
	j->job = job;
	j->ok = strcmp(mode, "ok") == 0;
	j->due_ms = chaos_now_ms() + (unsigned long long)(secs * 1000);
	j->attempt = pb_job_attempt(job);
	uuid_unparse_lower(pb_job_id(job), j->id);
	pb_job_set_userdata(job, j);
	snprintf(line, sizeof(line), "S %s %u %d %llu\n", j->id, j->attempt,
	    (int)getpid(), chaos_uptime_cs());
	chaos_ledger(line);
}

/* A CANCEL (client cancel or timeout): answered at once. */
static void
chaos_cancel_cb(struct pb_worker *w, struct pb_job *job, void *arg)
{
	struct chaos_job	*j = pb_job_get_userdata(job);

	(void)w;
	(void)arg;
	if (j != NULL && j->job == job)
		chaos_finish(j, "cancel");
}

/* Serves until the connection closes. */
int
main(int argc, char **argv)
{
	struct pb_options	 opts = { .name = "chaos-worker" };
	struct pb_worker	*w = NULL;
	const char		*path = getenv("CHAOS_LEDGER");
	unsigned long long	 now, next;
	struct pollfd		 pfd;
	int			 r, timeout;

	if (argc != 3) {
		fprintf(stderr, "usage: chaos-worker FN CAPACITY\n");
		return 2;
	}
	if (path != NULL && (ledger_fd = open(path, O_WRONLY | O_APPEND |
	    O_CREAT | O_CLOEXEC, 0600)) < 0) {
		fprintf(stderr, "chaos-worker: %s: %s\n", path,
		    strerror(errno));
		return 1;
	}
	if ((r = pb_worker_new(NULL, &opts, &w)) < 0 ||
	    (r = pb_worker_add_function(w, argv[1], chaos_job_cb, NULL)) < 0 ||
	    (r = pb_worker_set_capacity(w, (uint32_t)atoi(argv[2]))) < 0) {
		fprintf(stderr, "chaos-worker: setup: %s\n", strerror(-r));
		pb_worker_free(w);
		return 1;
	}
	pb_worker_on_cancel(w, chaos_cancel_cb, NULL);
	if ((r = pb_worker_connect(w)) < 0) {
		/* A reset the shim made during the handshake: as the loop's. */
		fprintf(stderr, "chaos-worker: connect: %s\n", strerror(-r));
		pb_worker_free(w);
		return 11;
	}
	for (;;) {
		now = chaos_now_ms();
		next = now + 100;
		for (int i = 0; i < CHAOS_MAX_JOBS; i++) {
			if (jobs[i].job == NULL)
				continue;
			if (jobs[i].due_ms <= now)
				chaos_finish(&jobs[i], jobs[i].ok ? "ok" :
				    "fail");
			else if (jobs[i].due_ms < next)
				next = jobs[i].due_ms;
		}
		timeout = (int)(next - now);
		pfd.fd = pb_worker_fd(w);
		pfd.events = POLLIN;
		if (pfd.fd < 0)
			usleep((useconds_t)timeout * 1000);
		else if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
			break;
		r = pb_worker_dispatch(w, 0);
		if (r < 0 && r != -ENOMEM && r != -EINTR && r != -EAGAIN) {
			fprintf(stderr, "chaos-worker: %s\n", strerror(-r));
			break;
		}
	}
	/* Abandoned jobs are still freed by their answer (-ENOTCONN). */
	for (int i = 0; i < CHAOS_MAX_JOBS; i++)
		if (jobs[i].job != NULL)
			pb_job_complete(jobs[i].job, PB_ERROR, NULL, 0, "gone");
	pb_worker_free(w);
	return 11;
}

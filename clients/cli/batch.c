/*
 * batch.c: `patchbay run FN --lines`, one job per line of standard input.
 *
 * Input is read in chunks into one buffer (in[]) whenever there is room
 * for another job and no whole line is buffered; each line is cut off the
 * front and handed to pb_client_submit(), which copies it, so the input
 * streams through in bounded memory. Results come back through
 * pb_client_dispatch() into batch_result_cb().
 *
 * Each line owns a struct batch_slot from its submit until its result is
 * printed. In input order (the default) the slots are a ring indexed by
 * line number: a result that arrives early waits in its slot until every
 * line before it has been printed, and no line is submitted more than
 * BATCH_WINDOW x --in-flight lines ahead of the oldest unprinted one, so a
 * slow job holds back memory, not correctness. With --unordered a result
 * is printed as soon as it arrives and its slot goes back to a free list.
 * With --detach a line's result is its job's ACCEPTED, printed as its id,
 * or the refusal, printed as any failure is.
 *
 * One loop drives it all: submit what fits, dispatch what arrived, print
 * what is due, and only then wait, in poll(2), on the broker's socket and
 * (when a line is wanted) stdin together, so neither side can block the
 * other. The client is corked: the submits before a dispatch, which
 * writes them first, leave in one write(2). Output goes through stdout's
 * buffer and is flushed before every wait. SIGINT/SIGTERM (run.c's
 * counting handlers) stop the reading and cancel the running jobs; a
 * second signal, or BATCH_CANCEL_WAIT_MS without their answers, gives up
 * on them.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clients/cli/cli.h"
#include "util/util.h"

#define BATCH_READ_CHUNK	(64 * 1024)	/* bytes asked of one read(2) */
#define BATCH_OUT_BUF		(64 * 1024)	/* stdout's buffer */
#define BATCH_WINDOW		4	/* in order: lines ahead, x in-flight */
#define BATCH_MAX_LINE		LIMIT_FRAME_MAX	/* no broker takes more */
#define BATCH_SLICE_MS		100	/* how often a signal is looked at */
#define BATCH_CANCEL_WAIT_MS	2000	/* how long cancels are waited for */

struct batch;

/* One line's job, from its submit until its result is printed. */
struct batch_slot {
	struct batch		*batch;
	uint64_t		 line;		/* 1-based; 0: free */
	uint8_t			 id[PB_ID_LEN];
	bool			 running;	/* submitted, no result yet */
	bool			 local;		/* failed here, never submitted */
	struct pb_result	*result;	/* in order: waiting its turn */
	struct batch_slot	*next_free;	/* --unordered: the free list */
};

/* The state of one `patchbay run --lines`; owned by batch_main(). */
struct batch {
	const struct batch_opts	*o;
	struct pb_client	*c;
	char			 sep;		/* '\n', or '\0' with --null */

	/* Bytes in[in_start, in_end) are unread; in_scan: searched up to. */
	uint8_t			*in;
	size_t			 in_start;
	size_t			 in_end;
	size_t			 in_scan;
	size_t			 in_cap;
	bool			 eof;
	bool			 skipping;	/* the rest of a too long line */
	bool			 need_input;	/* room for a job, no whole line */
	bool			 stop_reading;	/* no more lines will be taken */

	struct batch_slot	*slots;
	size_t			 nslots;
	struct batch_slot	*free;		/* --unordered */
	uint64_t		 nlines;	/* lines taken so far */
	uint64_t		 next_print;	/* in order: oldest not printed */
	size_t			 running;

	uint64_t		 counts[PB_DISCONNECTED + 1];
	uint64_t		 first_failed;	/* its line, or 0 */
	enum pb_status		 first_status;
	bool			 interrupted;	/* SIGINT or SIGTERM */
	bool			 lost;		/* the broker connection */
	bool			 failover;	/* a list: go on after a loss */
	bool			 adrift;	/* lost; the next submit fails over */
	bool			 saw_loss;	/* a DISCONNECTED result came */
	bool			 read_failed;
	bool			 out_failed;
	bool			 dirty;		/* stdout holds unflushed bytes */
};

/* Says that stdout cannot be written to, once, and stops the batch. */
static void
batch_out_error(struct batch *b, int err)
{
	if (b->out_failed)
		return;
	b->out_failed = true;
	b->stop_reading = true;
	fprintf(stderr, "patchbay: %s: cannot write the results to stdout: "
	    "%s\n", b->o->fn, strerror(err));
}

/* Writes what stdout's buffer holds, before a wait and at the end. */
static void
batch_flush(struct batch *b)
{
	if (!b->dirty || b->out_failed)
		return;
	b->dirty = false;
	if (fflush(stdout) != 0)
		batch_out_error(b, errno);
}

/*
 * Prints one line's record on stdout ("RESULT" or "LINE\tRESULT", then the
 * separator) and, for a failure, why on stderr: a cancel after Ctrl-C and
 * a lost connection are told once for all, in the summary and by the loop.
 */
static void
batch_print(struct batch *b, const struct batch_slot *s,
    const struct pb_result *r)
{
	const char	*err = r->error != NULL ? r->error : "";

	if (b->out_failed)
		return;
	if (b->o->unordered)
		printf("%" PRIu64 "\t", s->line);
	if (r->len > 0)
		fwrite(r->payload, 1, r->len, stdout);
	putchar(b->sep);
	b->dirty = true;
	if (ferror(stdout)) {
		batch_out_error(b, errno);
		return;
	}

	if (r->status == PB_OK || r->status == PB_DISCONNECTED ||
	    (r->status == PB_CANCELLED && b->interrupted))
		return;
	if (s->local)
		fprintf(stderr, "patchbay: %s: line %" PRIu64 ": %s (%s)\n",
		    b->o->fn, s->line, err, pb_status_name(r->status));
	else
		run_explain(b->o->fn, b->o->ro.timeout_ms, s->line, r);
}

/*
 * Counts a line's outcome and passes it on: printed now with --unordered
 * (and the slot freed), else kept in the slot until its turn. Takes
 * ownership of r.
 */
static void
batch_finish(struct batch *b, struct batch_slot *s, struct pb_result *r)
{
	if ((unsigned)r->status <= PB_DISCONNECTED)
		b->counts[r->status]++;
	if (r->status != PB_OK && (b->first_failed == 0 ||
	    s->line < b->first_failed)) {
		b->first_failed = s->line;
		b->first_status = r->status;
	}
	if (!b->o->unordered) {
		s->result = r;
		return;
	}
	batch_print(b, s, r);
	pb_result_free(r);
	s->line = 0;
	s->local = false;
	s->next_free = b->free;
	b->free = s;
}

/* Prints, in input order, every result whose turn has come. */
static void
batch_print_ready(struct batch *b)
{
	struct batch_slot	*s;

	if (b->o->unordered)
		return;
	while (b->next_print <= b->nlines) {
		s = &b->slots[(b->next_print - 1) % b->nslots];
		if (s->result == NULL)
			break;
		batch_print(b, s, s->result);
		pb_result_free(s->result);
		s->result = NULL;
		s->line = 0;
		s->local = false;
		b->next_print++;
	}
}

/*
 * Makes a result here, for a line that got none from the broker (payload
 * and error are copied; either may be NULL). Exits on ENOMEM: there is no
 * way to go on without losing a line's outcome.
 */
static struct pb_result *
batch_result_new(struct batch *b, enum pb_status status, const void *payload,
    size_t len, const char *error)
{
	struct pb_result	*r;

	if ((r = calloc(1, sizeof *r)) == NULL ||
	    (len > 0 && (r->payload = malloc(len)) == NULL) ||
	    (error != NULL && (r->error = strdup(error)) == NULL)) {
		fprintf(stderr, "patchbay: %s: out of memory\n", b->o->fn);
		exit(CLI_EXIT_ERROR);
	}
	if (len > 0)
		memcpy(r->payload, payload, len);
	r->len = len;
	r->status = status;
	return r;
}

/* Gives a line that could not be submitted its outcome: status, error. */
static void
batch_fail_local(struct batch *b, struct batch_slot *s, enum pb_status status,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Gives a line that could not be submitted its outcome: status, error. */
static void
batch_fail_local(struct batch *b, struct batch_slot *s, enum pb_status status,
    const char *fmt, ...)
{
	char	err[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(err, sizeof err, fmt, ap);
	va_end(ap);
	s->local = true;
	batch_finish(b, s, batch_result_new(b, status, NULL, 0, err));
}

/* Takes a job's result from the library; takes ownership of r. */
static void
batch_result_cb(struct pb_client *c, struct pb_result *r, void *userdata)
{
	struct batch_slot	*s = userdata;
	struct batch		*b = s->batch;

	(void)c;
	s->running = false;
	b->running--;
	if (r->status == PB_DISCONNECTED)
		b->saw_loss = true;
	if (r->status == PB_ACCEPTED) {
		char	idstr[CLI_UUID_STRLEN];

		/* Taken: the line's output is its job's id. */
		cli_uuid_string(r->id, idstr);
		pb_result_free(r);
		r = batch_result_new(b, PB_OK, idstr, strlen(idstr), NULL);
	}
	batch_finish(b, s, r);
}

/* True when one more line may be taken now. */
static bool
batch_has_room(const struct batch *b)
{
	if (b->running >= b->o->in_flight)
		return false;
	if (b->o->unordered)
		return b->free != NULL;
	/* The lines from next_print to nlines all hold a slot. */
	return b->nlines + 1 - b->next_print < b->nslots;
}

/* Numbers the next line and gives it a slot (batch_has_room() said so). */
static struct batch_slot *
batch_slot_take(struct batch *b)
{
	struct batch_slot	*s;

	b->nlines++;
	if (b->o->unordered) {
		s = b->free;
		b->free = s->next_free;
	} else
		s = &b->slots[(b->nlines - 1) % b->nslots];
	s->line = b->nlines;
	s->running = false;
	s->local = false;
	s->result = NULL;
	return s;
}

/*
 * Reads one chunk of stdin into the buffer, making room first: the unread
 * bytes move to the front, and the buffer grows only while one line does
 * not fit (up to a little over BATCH_MAX_LINE).
 */
static void
batch_read(struct batch *b)
{
	uint8_t	*in;
	size_t	 cap;
	ssize_t	 n;

	if (b->in_start == b->in_end)
		b->in_start = b->in_end = b->in_scan = 0;
	else if (b->in_start > 0 && b->in_cap - b->in_end <
	    BATCH_READ_CHUNK / 2) {
		memmove(b->in, b->in + b->in_start, b->in_end - b->in_start);
		b->in_end -= b->in_start;
		b->in_scan -= b->in_start;
		b->in_start = 0;
	}
	if (b->in_cap - b->in_end < BATCH_READ_CHUNK / 2) {
		cap = b->in_cap == 0 ? BATCH_READ_CHUNK : b->in_cap * 2;
		if (cap > BATCH_MAX_LINE + BATCH_READ_CHUNK)
			cap = BATCH_MAX_LINE + BATCH_READ_CHUNK;
		if ((in = realloc(b->in, cap)) == NULL) {
			fprintf(stderr, "patchbay: %s: out of memory reading "
			    "line %" PRIu64 "\n", b->o->fn, b->nlines + 1);
			b->read_failed = true;
			b->stop_reading = true;
			return;
		}
		b->in = in;
		b->in_cap = cap;
	}
	n = read(STDIN_FILENO, b->in + b->in_end, b->in_cap - b->in_end);
	if (n > 0)
		b->in_end += (size_t)n;
	else if (n == 0)
		b->eof = true;
	else if (errno != EINTR && errno != EAGAIN) {
		fprintf(stderr, "patchbay: %s: cannot read line %" PRIu64
		    " from stdin: %s\n", b->o->fn, b->nlines + 1,
		    strerror(errno));
		b->read_failed = true;
		b->stop_reading = true;
	}
}

/*
 * Cuts the next line off the input, without its separator (and a '\r'
 * before a '\n'). Returns 1 with *ret_p and *ret_len (valid until the next
 * read), 2 for a line longer than BATCH_MAX_LINE (*ret_len: its length so
 * far; the rest of it is skipped as it comes), or 0 when no whole line is
 * buffered. At end of file, a last line without a separator is a line.
 */
static int
batch_take_line(struct batch *b, const uint8_t **ret_p, size_t *ret_len)
{
	uint8_t	*start, *p;
	size_t	 len;

	if (b->in == NULL)
		return 0;
	for (;;) {
		start = b->in + b->in_start;
		if (b->in_scan < b->in_start)
			b->in_scan = b->in_start;
		p = NULL;
		if (b->in_scan < b->in_end)
			p = memchr(b->in + b->in_scan, b->sep,
			    b->in_end - b->in_scan);
		if (b->skipping) {
			if (p == NULL) {
				b->in_start = b->in_scan = b->in_end;
				return 0;
			}
			b->in_start = b->in_scan = (size_t)(p - b->in) + 1;
			b->skipping = false;
			continue;
		}
		if (p != NULL) {
			len = (size_t)(p - start);
			b->in_start = b->in_scan = (size_t)(p - b->in) + 1;
			if (!b->o->null && len > 0 && start[len - 1] == '\r')
				len--;
			*ret_p = start;
			*ret_len = len;
			return 1;
		}
		b->in_scan = b->in_end;
		len = b->in_end - b->in_start;
		if (len > BATCH_MAX_LINE) {
			b->in_start = b->in_scan = b->in_end;
			b->skipping = !b->eof;
			*ret_len = len;
			return 2;
		}
		if (b->eof && len > 0) {
			b->in_start = b->in_scan = b->in_end;
			*ret_p = start;
			*ret_len = len;
			return 1;
		}
		return 0;
	}
}

/*
 * Says on stderr that the broker connection was lost, with the library's
 * reason, and what happens next.
 */
static void
batch_tell_loss(const struct batch *b)
{
	fprintf(stderr, "patchbay: %s: lost the connection to the broker%s%s"
	    "%s\n", b->o->fn, *pb_client_last_error(b->c) != '\0' ? ": " : "",
	    pb_client_last_error(b->c), b->failover ?
	    "; jobs in flight are DISCONNECTED, the next go to the next broker" :
	    "");
}

/*
 * Submits buffered lines while there is room. Sets need_input when it
 * stopped for want of a whole line, stop_reading when the input is done.
 * A submit on a lost connection fails over (a list of brokers): said
 * here when the loop has not said it yet.
 */
static void
batch_submit_ready(struct batch *b)
{
	const struct batch_opts	*o = b->o;
	struct batch_slot	*s;
	const uint8_t		*p = NULL;
	size_t			 len;
	int			 r;

	b->need_input = false;
	while (!b->stop_reading && batch_has_room(b)) {
		if ((r = batch_take_line(b, &p, &len)) == 0) {
			if (b->eof)
				b->stop_reading = true;
			else
				b->need_input = true;
			return;
		}
		s = batch_slot_take(b);
		if (r == 2) {
			batch_fail_local(b, s, PB_BAD_REQUEST, "the line is "
			    "longer than %llu bytes, more than any broker "
			    "accepts", (unsigned long long)BATCH_MAX_LINE);
			continue;
		}
		b->saw_loss = false;
		r = pb_client_submit(b->c, o->fn, p, len, &o->ro,
		    batch_result_cb, NULL, s, s->id);
		/* A failover delivers the lost jobs first, from the submit. */
		if (r == 0 && b->saw_loss && !b->adrift)
			batch_tell_loss(b);
		if (r == 0) {
			b->adrift = false;
			s->running = true;
			b->running++;
		} else if (r == -EMSGSIZE || r == -EINVAL)
			batch_fail_local(b, s, PB_BAD_REQUEST, "%s",
			    *pb_client_last_error(b->c) != '\0' ?
			    pb_client_last_error(b->c) : strerror(-r));
		else {
			/*
			 * The connection is gone and so is every broker to
			 * fail over to: dispatch says so, or this does.
			 */
			batch_fail_local(b, s, PB_DISCONNECTED, "%s",
			    *pb_client_last_error(b->c) != '\0' ?
			    pb_client_last_error(b->c) : strerror(-r));
			b->stop_reading = true;
			if (r == -ENOTCONN && !b->lost) {
				fprintf(stderr, "patchbay: %s: %s\n", o->fn,
				    pb_client_last_error(b->c));
				b->lost = true;
			}
		}
	}
}

/* Asks the broker to cancel every running job (after Ctrl-C). */
static void
batch_cancel_all(struct batch *b)
{
	size_t	i;

	for (i = 0; i < b->nslots; i++) {
		/* A dead connection is reported by the next dispatch. */
		if (b->slots[i].running)
			(void)pb_client_cancel(b->c, b->slots[i].id);
	}
}

/*
 * Stops waiting for the running jobs: each counts as CANCELLED (closing
 * the connection makes the broker cancel it) and keeps its line.
 */
static void
batch_give_up(struct batch *b)
{
	struct batch_slot	*s;
	size_t			 i;

	for (i = 0; i < b->nslots && b->running > 0; i++) {
		s = &b->slots[i];
		if (!s->running)
			continue;
		s->running = false;
		b->running--;
		batch_finish(b, s, batch_result_new(b, PB_CANCELLED, NULL, 0,
		    NULL));
	}
}

/*
 * Flushes stdout when about to block, then waits up to ms for the broker's
 * socket or, when a line is wanted, stdin, and reads a chunk of stdin if
 * it is ready. A signal ends the wait early (the caller looks at it).
 */
static void
batch_wait(struct batch *b, int ms)
{
	struct pollfd	pfd[2];
	nfds_t		n = 0, in = 2;

	if (ms != 0)
		batch_flush(b);
	if (b->out_failed)
		return;
	/* Adrift, the dead socket would only say so, at once. */
	if (!b->adrift) {
		pfd[n].fd = pb_client_fd(b->c);
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	if (b->need_input) {
		in = n;
		pfd[n].fd = STDIN_FILENO;
		pfd[n].events = POLLIN;
		pfd[n++].revents = 0;
	}
	if (poll(pfd, n, ms) <= 0)
		return;
	if (in < n && pfd[in].revents != 0)
		batch_read(b);
}

/* The loop: submit, dispatch, print, wait, until every line is done. */
static void
batch_loop(struct batch *b)
{
	uint64_t	deadline = 0, now;
	int		r, ms;

	for (;;) {
		if (run_signal_count() > 0 && !b->interrupted) {
			b->interrupted = true;
			b->stop_reading = true;
			deadline = clock_now_ms() + BATCH_CANCEL_WAIT_MS;
			batch_cancel_all(b);
		}
		if (b->out_failed || b->lost) {
			batch_give_up(b);
			break;
		}
		if (b->interrupted && b->running > 0 &&
		    (run_signal_count() >= 2 || clock_now_ms() >= deadline)) {
			if (run_signal_count() >= 2)
				fprintf(stderr, "patchbay: %s: cancels sent, "
				    "not waiting for their answers\n",
				    b->o->fn);
			else
				fprintf(stderr, "patchbay: %s: no answer to "
				    "the cancels within %d s; disconnecting "
				    "cancels the jobs\n", b->o->fn,
				    BATCH_CANCEL_WAIT_MS / 1000);
			batch_give_up(b);
			break;
		}

		batch_submit_ready(b);
		batch_print_ready(b);
		if (b->stop_reading && b->running == 0)
			break;

		/* Adrift, the connection has nothing more to say. */
		r = b->adrift ? 0 : pb_client_dispatch(b->c, 0);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -ETIMEDOUT) {
			/* Every running job was delivered as DISCONNECTED. */
			batch_tell_loss(b);
			/* With a list, the next submit fails over. */
			if (!b->failover) {
				b->lost = true;
				b->stop_reading = true;
			}
			b->adrift = b->failover;
			continue;
		}
		if (r > 0 && !b->need_input)
			continue;
		ms = 0;
		if (r <= 0) {
			ms = BATCH_SLICE_MS;
			now = clock_now_ms();
			if (deadline != 0 && deadline > now &&
			    deadline - now < (uint64_t)ms)
				ms = (int)(deadline - now);
		}
		batch_wait(b, ms);
	}
	batch_print_ready(b);
	batch_flush(b);
}

/*
 * Prints the count of each outcome on stderr when anything went wrong, or
 * always with --verbose: "patchbay: FN: 10 jobs: 8 OK, 2 ERROR".
 */
static void
batch_summary(const struct batch *b)
{
	char		 buf[512];
	uint64_t	 total = 0;
	size_t		 n;
	int		 s;

	for (s = PB_OK; s <= PB_DISCONNECTED; s++)
		total += b->counts[s];
	if (!b->o->verbose && total == b->counts[PB_OK] && !b->interrupted &&
	    !b->lost && !b->read_failed && !b->out_failed)
		return;
	n = (size_t)snprintf(buf, sizeof buf, "%" PRIu64 " job%s: %" PRIu64
	    " %s", total, total == 1 ? "" : "s", b->counts[PB_OK],
	    b->o->ro.detach ? "submitted" : "OK");
	for (s = PB_ERROR; s <= PB_DISCONNECTED && n < sizeof buf; s++) {
		if (b->counts[s] > 0)
			n += (size_t)snprintf(buf + n, sizeof buf - n,
			    ", %" PRIu64 " %s", b->counts[s],
			    pb_status_name((enum pb_status)s));
	}
	fprintf(stderr, "patchbay: %s: %s%s\n", b->o->fn, buf,
	    b->interrupted ? " (interrupted)" : "");
}

/* The exit status of a finished batch (see docs/cli.md). */
static int
batch_exit(const struct batch *b)
{
	if (b->interrupted)
		return CLI_EXIT_CANCELLED;
	if (b->lost)
		return CLI_EXIT_CONNECTION;
	if (b->out_failed)
		return CLI_EXIT_ERROR;
	if (b->read_failed)
		return CLI_EXIT_USAGE;	/* as run's unreadable stdin */
	if (b->first_failed != 0)
		return cli_exit_for_status(b->first_status);
	return CLI_EXIT_OK;
}

/* Entry point of `patchbay run FN --lines`. */
int
batch_main(const struct batch_opts *o)
{
	struct batch	b;
	size_t		i;
	int		ret;

	memset(&b, 0, sizeof b);
	b.o = o;
	b.sep = o->null ? '\0' : '\n';
	b.next_print = 1;
	b.nslots = o->unordered ? o->in_flight :
	    (size_t)o->in_flight * BATCH_WINDOW;
	if ((b.slots = calloc(b.nslots, sizeof *b.slots)) == NULL) {
		fprintf(stderr, "patchbay: %s: out of memory\n", o->fn);
		return CLI_EXIT_ERROR;
	}
	for (i = b.nslots; i-- > 0;) {
		b.slots[i].batch = &b;
		if (o->unordered) {
			b.slots[i].next_free = b.free;
			b.free = &b.slots[i];
		}
	}
	/* One write(2) per buffer or per wait, not per result. */
	setvbuf(stdout, NULL, _IOFBF, BATCH_OUT_BUF);

	run_catch_signals();
	b.failover = run_broker_count(o->broker) > 1;
	ret = run_connect(o->fn, o->broker, o->spread, &b.c);
	if (ret != CLI_EXIT_OK)
		goto out;
	/* The lines submitted before a dispatch go out in one write. */
	(void)pb_client_cork(b.c, true);
	batch_loop(&b);
	batch_summary(&b);
	ret = batch_exit(&b);
out:
	pb_client_free(b.c);
	for (i = 0; i < b.nslots; i++)
		pb_result_free(b.slots[i].result);
	free(b.slots);
	free(b.in);
	return ret;
}

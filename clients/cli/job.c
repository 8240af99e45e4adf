/*
 * job.c: `patchbay job ID [--wait]`, where a job is and what it came to.
 *
 * One STATUS to the broker (pb_client_status()) and its answer printed: a
 * live job's state on stdout, "ID queued fn=resize attempts=0 priority=0
 * age=1.2s"; a finished detached job's outcome as `patchbay run` prints a
 * result (the payload on stdout, the reason on stderr, the status's exit
 * code). With --wait it asks again every JOB_POLL_MS until the job is done
 * or unknown, so that a script can pick up the result of a job it sent
 * with `run -d`. An id the broker does not know (never submitted, or
 * finished longer ago than result_ttl) exits 1 with a sentence saying so.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "clients/cli/cli.h"
#include "util/util.h"

#define JOB_POLL_MS	200	/* --wait: how often to ask again */
#define JOB_ANSWER_MS	10000	/* how long one STATUS may take */

/* Prints the usage of `patchbay job`. */
void
job_usage(FILE *f)
{
	fprintf(f,
	    "usage: patchbay job [options] ID\n"
	    "\n"
	    "Asks the broker where job ID is: queued, delayed, running, dead\n"
	    "(its retries ran out), done (a detached job's outcome, kept for\n"
	    "result_ttl) or unknown.\n"
	    "A done job prints its result as `patchbay run` does and exits\n"
	    "with its status; an unknown one exits 1.\n"
	    "\n"
	    "  -w, --wait           ask again until the job is done (or\n"
	    "                       unknown), then print its result\n"
	    "  -b, --broker EP      broker endpoint (default as for run)\n"
	    "      --token-file F   the HELLO token is F's first line\n"
	    "  -h, --help           show this help\n");
}

/* Prints a live job's state on stdout. */
static int
job_print_live(const char *idstr, const struct pb_job_info *j)
{
	char	age[32];

	format_duration(j->age_ms, age, sizeof(age));
	printf("%s %s fn=%s attempts=%u priority=%d age=%s%s%s\n", idstr,
	    j->state, j->fn != NULL ? j->fn : "", j->attempts, j->priority,
	    age, j->error != NULL ? " last_error=" : "",
	    j->error != NULL ? j->error : "");
	return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}

/* Prints a finished job's outcome as `patchbay run` prints a result. */
static int
job_print_done(const struct pb_job_info *j)
{
	struct pb_result	r = {
		.status = j->status, .attempts = j->attempts,
		.payload = j->payload, .len = j->len, .error = j->error,
	};
	int			e;

	memcpy(r.id, j->id, PB_ID_LEN);
	if (j->len > 0 && (e = cli_write_all(STDOUT_FILENO, j->payload,
	    j->len)) < 0) {
		fprintf(stderr, "patchbay: %s: cannot write the result: %s\n",
		    j->fn, strerror(-e));
		return CLI_EXIT_ERROR;
	}
	if (j->status != PB_OK)
		run_explain(j->fn != NULL ? j->fn : "job", 0, 0, &r);
	return cli_exit_for_status(j->status);
}

/* `patchbay job`: see job_usage(). */
int
job_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ "broker", required_argument, NULL, 'b' },
		{ "token-file", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct pb_client	*c = NULL;
	struct pb_job_info	*j = NULL;
	const char		*broker = NULL;
	char			 idstr[CLI_UUID_STRLEN];
	uuid_t			 id;
	bool			 wait = false;
	int			 ch, r, ret;

	while ((ch = getopt_long(argc, argv, ":wb:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'w':
			wait = true;
			break;
		case 'b':
			broker = optarg;
			break;
		case 'K':
			if (cli_token_file("job", optarg) != 0)
				return CLI_EXIT_USAGE;
			break;
		case 'h':
			job_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_option_error("job", ch, argv, longopts);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("job", "give one job ID");
	if (uuid_parse(argv[optind], id) != 0)
		return cli_usage_error("job", "'%s' is not a job id (a UUID, "
		    "as run -d prints it)", argv[optind]);
	uuid_unparse_lower(id, idstr);
	if (broker != NULL && cli_check_endpoint("job", broker) != 0)
		return CLI_EXIT_USAGE;
	if ((ret = run_connect("job", broker, false, &c)) != CLI_EXIT_OK)
		return ret;
	for (;;) {
		if ((r = pb_client_status(c, id, JOB_ANSWER_MS, &j)) < 0) {
			fprintf(stderr, "patchbay: job: no answer from the "
			    "broker: %s%s%s\n", strerror(-r),
			    *pb_client_last_error(c) != '\0' ? ": " : "",
			    pb_client_last_error(c));
			ret = CLI_EXIT_CONNECTION;
			break;
		}
		if (strcmp(j->state, "unknown") == 0) {
			fprintf(stderr, "patchbay: job: %s is unknown to the "
			    "broker: never submitted there, or it ended longer "
			    "ago than result_ttl (an attached job's result went "
			    "to its client)\n", idstr);
			ret = CLI_EXIT_ERROR;
			break;
		}
		if (j->done) {
			ret = job_print_done(j);
			break;
		}
		/* Dead: nothing more happens until an admin kicks it. */
		if (wait && strcmp(j->state, "dead") == 0) {
			fprintf(stderr, "patchbay: job: %s is dead (its retries "
			    "ran out): %s\n", idstr, j->error != NULL ?
			    j->error : "no error text");
			ret = CLI_EXIT_ERROR;
			break;
		}
		if (!wait) {
			ret = job_print_live(idstr, j);
			break;
		}
		pb_job_info_free(j);
		j = NULL;
		usleep(JOB_POLL_MS * 1000);
	}
	pb_job_info_free(j);
	pb_client_free(c);
	return ret;
}

/*
 * ctl-health.c: how `patchbay ctl health` reads for people.
 *
 * The answer is an array of maps, one per process (--json prints it as
 * it is). A check's output may hold several lines, which a table cell
 * cannot show, so each process is a block here: a line with its id, its
 * health and its state, then indented lines for what applies to it: its
 * health_check, the last check's result and age, what the check printed,
 * and how often and why it was found unhealthy.
 */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "clients/cli/cli.h"
#include "util/util.h"

/* The string at key in m, or NULL when absent, nil or not a string. */
static const msgpack_object *
ctl_health_str(const msgpack_object *m, const char *key)
{
	const msgpack_object	*o = print_get(m, key);

	return o != NULL && o->type == MSGPACK_OBJECT_STR ? o : NULL;
}

/* Writes a string, control characters but newlines shown as '?'. */
static void
ctl_health_put(FILE *f, const msgpack_object *s, const char *indent)
{
	for (uint32_t i = 0; i < s->via.str.size; i++) {
		unsigned char	c = (unsigned char)s->via.str.ptr[i];

		if (c == '\n')
			fprintf(f, "\n%s", indent);
		else
			fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
	}
}

/* Prints one process's block. */
static void
ctl_health_print_one(FILE *f, const msgpack_object *m)
{
	const msgpack_object	*id = ctl_health_str(m, "id");
	const msgpack_object	*health = ctl_health_str(m, "health");
	const msgpack_object	*state = ctl_health_str(m, "state");
	const msgpack_object	*check = ctl_health_str(m, "check");
	const msgpack_object	*result = ctl_health_str(m, "result");
	const msgpack_object	*output = ctl_health_str(m, "output");
	const msgpack_object	*reason = ctl_health_str(m, "reason");
	const msgpack_object	*ago = print_get(m, "checked_ago_ms");
	const msgpack_object	*times = print_get(m, "times_unhealthy");
	char			 d[32];

	if (id == NULL)
		return;
	ctl_health_put(f, id, "");
	fputs(": ", f);
	if (health != NULL)
		ctl_health_put(f, health, "");
	if (state != NULL) {
		fputs(" (", f);
		ctl_health_put(f, state, "");
		fputc(')', f);
	}
	fputc('\n', f);
	if (check != NULL) {
		fputs("  check: ", f);
		ctl_health_put(f, check, "");
		fputc('\n', f);
	}
	if (result != NULL) {
		fputs("  last check: ", f);
		ctl_health_put(f, result, "");
		if (ago != NULL &&
		    ago->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
			format_duration_human(ago->via.u64, d, sizeof(d));
			fprintf(f, ", %s ago", d);
		}
		fputc('\n', f);
	}
	if (output != NULL && output->via.str.size > 0) {
		if (memchr(output->via.str.ptr, '\n', output->via.str.size)) {
			fputs("  output:\n    ", f);
			ctl_health_put(f, output, "    ");
		} else {
			fputs("  output: ", f);
			ctl_health_put(f, output, "");
		}
		fputc('\n', f);
	}
	if (times != NULL && times->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    times->via.u64 > 0) {
		fprintf(f, "  found unhealthy: %llu time%s",
		    (unsigned long long)times->via.u64,
		    times->via.u64 == 1 ? "" : "s");
		if (reason != NULL) {
			fputs(", last: ", f);
			ctl_health_put(f, reason, "");
		}
		fputc('\n', f);
	}
}

/* Prints the answer of `ctl health` for people; see cli.h. */
void
ctl_health_print(FILE *f, const msgpack_object *data, const char *empty)
{
	if (data == NULL || data->type != MSGPACK_OBJECT_ARRAY)
		return;
	if (data->via.array.size == 0 && empty != NULL)
		fprintf(f, "%s\n", empty);
	for (uint32_t i = 0; i < data->via.array.size; i++)
		ctl_health_print_one(f, &data->via.array.ptr[i]);
}

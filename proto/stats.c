/*
 * stats.c: message statistics, the kinds the broker counts packets by.
 */
#include "proto/internal.h"

const uint8_t msg_kinds[PKT__MAX] = {
	[PKT_NONE] = MSG_CONTROL,
	[PKT_HELLO] = MSG_CONTROL,
	[PKT_WELCOME] = MSG_CONTROL,
	[PKT_REGISTER] = MSG_CONTROL,
	[PKT_RUN] = MSG_REQUESTS,
	[PKT_CANCEL] = MSG_REQUESTS,
	[PKT_PROGRESS] = MSG_PROGRESS,
	[PKT_RESULT] = MSG_RESULTS,
	[PKT_PING] = MSG_HEARTBEATS,
	[PKT_PONG] = MSG_HEARTBEATS,
	[PKT_BYE] = MSG_CONTROL,
	[PKT_ADMIN] = MSG_ADMIN,
	[PKT_REPLY] = MSG_ADMIN,
	[PKT_ERROR] = MSG_ERRORS,
	[PKT_ACCEPTED] = MSG_RESULTS,
	[PKT_STATUS] = MSG_REQUESTS,
	[PKT_JOB] = MSG_RESULTS,
};

static const char *const msg_kind_names[MSG__MAX] = {
	[MSG_REQUESTS] = "requests",
	[MSG_RESULTS] = "results",
	[MSG_PROGRESS] = "progress",
	[MSG_ERRORS] = "errors",
	[MSG_HEARTBEATS] = "heartbeats",
	[MSG_ADMIN] = "admin",
	[MSG_CONTROL] = "control",
};

/* The name of a kind, or NULL. */
const char *
msg_kind_name(enum msg_kind kind)
{
	if ((unsigned)kind >= MSG__MAX)
		return (NULL);
	return (msg_kind_names[kind]);
}

/* Adds src to dst. */
void
msg_stats_add(struct msg_stats *dst, const struct msg_stats *src)
{
	for (int i = 0; i < MSG__MAX; i++) {
		dst->sent[i] += src->sent[i];
		dst->received[i] += src->received[i];
	}
	dst->bytes_sent += src->bytes_sent;
	dst->bytes_received += src->bytes_received;
	if (src->first_ms != 0 &&
	    (dst->first_ms == 0 || src->first_ms < dst->first_ms))
		dst->first_ms = src->first_ms;
	if (src->last_ms > dst->last_ms)
		dst->last_ms = src->last_ms;
}

/* Messages sent plus received. */
uint64_t
msg_stats_total(const struct msg_stats *s)
{
	uint64_t	n = 0;

	for (int i = 0; i < MSG__MAX; i++)
		n += s->sent[i] + s->received[i];
	return (n);
}

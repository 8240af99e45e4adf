/*
 * clock.c: the monotonic clock every timer and deadline is measured on,
 * and the wall clock for times shown to people.
 */
#include <time.h>

#include "util/util.h"

/* Monotonic clock in milliseconds. */
uint64_t
clock_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wall clock in milliseconds since the epoch. */
uint64_t
clock_wall_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

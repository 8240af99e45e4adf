/*
 * timer.c: arming libevent timers on the precise clock. Apart from
 * clock.c, which test harnesses replace with a clock of their own.
 */
#include <sys/time.h>

#include <time.h>

#include "util/util.h"

/*
 * libevent times its loop on Linux with CLOCK_MONOTONIC_COARSE, which lags
 * the precise clock by up to one kernel tick (4 ms with HZ=250): a timer
 * armed for ms can fire up to a tick early by clock_now_ms(). One tick
 * more makes up for it; a timer then fires at most two ticks and a
 * millisecond late. patchbayd does not ask for libevent's precise timers
 * (EVENT_BASE_FLAG_PRECISE_TIMER) instead: on epoll they cost a
 * timerfd_settime() syscall in every turn of the loop, a fifth of the
 * broker's syscalls when a worker of capacity 1 takes a job per turn.
 */
void
clock_timer_tv(uint64_t ms, struct timeval *tv)
{
	static long	tick_us = -1;
	struct timespec	ts;

	if (tick_us < 0) {
		tick_us = 0;
#ifdef CLOCK_MONOTONIC_COARSE
		if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) == 0 &&
		    ts.tv_sec == 0)
			tick_us = (ts.tv_nsec + 999) / 1000;
#endif
	}
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000 + (uint64_t)tick_us);
	if (tv->tv_usec >= 1000000) {
		tv->tv_sec++;
		tv->tv_usec -= 1000000;
	}
}

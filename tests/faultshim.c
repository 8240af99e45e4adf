/*
 * faultshim.c: an LD_PRELOAD module that makes socket I/O fail the ways
 * the kernel is allowed to make it fail, at random.
 *
 * It wraps read, write, readv, writev, send, recv, sendto, recvfrom,
 * sendmsg and recvmsg. For each call it first draws whether to interfere;
 * only then does it look at the descriptor (so calls left alone cost one
 * random number): it must be a socket whose peer is another process (a
 * socketpair made by the process itself, such as libevent's signal pair,
 * is left alone). An interfering call then gets, at random among those
 * that apply:
 *
 *   - EINTR, without doing anything;
 *   - EAGAIN, without doing anything, when the descriptor is non-blocking
 *     (or the call has MSG_DONTWAIT);
 *   - a short count: the real call with fewer bytes asked (at least 1).
 *
 * Rarely, and only when FAULTSHIM_RESET_PPM is set, a call gets
 * ECONNRESET instead: the socket is shut down both ways first, so the
 * connection really is gone for both ends, as after a reset.
 *
 * Environment:
 *   FAULTSHIM_PERCENT    calls interfered with, in percent (default 20)
 *   FAULTSHIM_RESET_PPM  calls reset, per million (default 0: never)
 *   FAULTSHIM_SEED       seed, mixed with the pid (default the time)
 *   FAULTSHIM_LOG        a file that gets one line per reset and, at exit,
 *                        one line of counts per process
 *
 * The broker's end of a pool process's socketpair was made by the broker
 * itself, so only the pool process's end of it is interfered with.
 * sendto and recvfrom take glibc's own types for the address (the
 * __SOCKADDR_ARG transparent unions), so that the definitions match.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What the shim did in this process. */
static struct {
	bool		 init;
	unsigned	 percent;
	unsigned	 reset_ppm;
	uint64_t	 rng;
	unsigned long	 calls, eintr, eagain, shorts, resets;
} fs;

static ssize_t	(*real_read)(int, void *, size_t);
static ssize_t	(*real_write)(int, const void *, size_t);
static ssize_t	(*real_readv)(int, const struct iovec *, int);
static ssize_t	(*real_writev)(int, const struct iovec *, int);
static ssize_t	(*real_send)(int, const void *, size_t, int);
static ssize_t	(*real_recv)(int, void *, size_t, int);
static ssize_t	(*real_sendto)(int, const void *, size_t, int,
		    __CONST_SOCKADDR_ARG, socklen_t);
static ssize_t	(*real_recvfrom)(int, void *, size_t, int, __SOCKADDR_ARG,
		    socklen_t *);
static ssize_t	(*real_sendmsg)(int, const struct msghdr *, int);
static ssize_t	(*real_recvmsg)(int, struct msghdr *, int);

/* What a call is to get. */
enum faultshim_fault {
	FAULT_NONE,
	FAULT_EINTR,
	FAULT_EAGAIN,
	FAULT_SHORT,
	FAULT_RESET,
};

/* A number from the shim's own generator (xorshift64*). */
static uint64_t
faultshim_random(void)
{
	fs.rng ^= fs.rng >> 12;
	fs.rng ^= fs.rng << 25;
	fs.rng ^= fs.rng >> 27;
	return fs.rng * 2685821657736338717ULL;
}

/* Reads an unsigned number from the environment, or def. */
static unsigned long
faultshim_env(const char *name, unsigned long def)
{
	const char	*s = getenv(name);

	return s != NULL && *s != '\0' ? strtoul(s, NULL, 10) : def;
}

/* Finds the real functions and reads the settings, once. */
static void
faultshim_init(void)
{
	struct timespec	ts;

	if (fs.init)
		return;
	/* POSIX's way to store dlsym()'s answer in a function pointer. */
	*(void **)&real_read = dlsym(RTLD_NEXT, "read");
	*(void **)&real_write = dlsym(RTLD_NEXT, "write");
	*(void **)&real_readv = dlsym(RTLD_NEXT, "readv");
	*(void **)&real_writev = dlsym(RTLD_NEXT, "writev");
	*(void **)&real_send = dlsym(RTLD_NEXT, "send");
	*(void **)&real_recv = dlsym(RTLD_NEXT, "recv");
	*(void **)&real_sendto = dlsym(RTLD_NEXT, "sendto");
	*(void **)&real_recvfrom = dlsym(RTLD_NEXT, "recvfrom");
	*(void **)&real_sendmsg = dlsym(RTLD_NEXT, "sendmsg");
	*(void **)&real_recvmsg = dlsym(RTLD_NEXT, "recvmsg");
	fs.percent = (unsigned)faultshim_env("FAULTSHIM_PERCENT", 20);
	fs.reset_ppm = (unsigned)faultshim_env("FAULTSHIM_RESET_PPM", 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fs.rng = faultshim_env("FAULTSHIM_SEED", (unsigned long)ts.tv_nsec) ^
	    ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
	if (fs.rng == 0)
		fs.rng = 1;
	fs.init = true;
}

/* Appends one line to $FAULTSHIM_LOG, if set, with one write(2). */
static void __attribute__((format(printf, 1, 2)))
faultshim_log(const char *fmt, ...)
{
	const char	*path = getenv("FAULTSHIM_LOG");
	char		 line[256];
	va_list		 ap;
	int		 fd, n, saved = errno;

	if (path == NULL)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (real_write(fd, line, (size_t)n) < 0)
			(void)0;
		close(fd);
	}
	errno = saved;
}

/* At exit: what this process went through. */
static void __attribute__((destructor))
faultshim_fini(void)
{
	char	comm[32] = "?";
	int	fd;
	ssize_t	n;

	if (!fs.init || fs.calls == 0)
		return;
	if ((fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC)) >= 0) {
		if ((n = real_read(fd, comm, sizeof(comm) - 1)) > 0)
			comm[n - (comm[n - 1] == '\n')] = '\0';
		close(fd);
	}
	faultshim_log("stats pid=%d comm=%s calls=%lu eintr=%lu eagain=%lu "
	    "short=%lu reset=%lu\n", (int)getpid(), comm, fs.calls, fs.eintr,
	    fs.eagain, fs.shorts, fs.resets);
}

/*
 * Decides what a call on fd gets: count is the bytes it asks for, dontwait
 * whether it is non-blocking by its flags.
 */
static enum faultshim_fault
faultshim_pick(int fd, size_t count, bool dontwait)
{
	struct stat	st;
	struct ucred	cred;
	socklen_t	len = sizeof(cred);
	enum faultshim_fault	choice[3];
	int		saved = errno, n = 0, fl;
	uint64_t	r;

	faultshim_init();
	r = faultshim_random();
	if (fs.reset_ppm > 0 && r % 1000000 < fs.reset_ppm)
		choice[n++] = FAULT_RESET;
	else if ((r >> 20) % 100 >= fs.percent)
		return FAULT_NONE;
	/* Only now: is this a socket to another process? */
	if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
	    cred.pid == getpid())) {
		errno = saved;
		return FAULT_NONE;
	}
	fs.calls++;
	if (n == 1) {
		errno = saved;
		return FAULT_RESET;
	}
	choice[n++] = FAULT_EINTR;
	if (dontwait || ((fl = fcntl(fd, F_GETFL)) != -1 && (fl & O_NONBLOCK)))
		choice[n++] = FAULT_EAGAIN;
	if (count > 1)
		choice[n++] = FAULT_SHORT;
	errno = saved;
	return choice[(r >> 40) % (uint64_t)n];
}

/*
 * Applies a fault that does not call through: sets errno and returns true,
 * or returns false for FAULT_NONE and FAULT_SHORT.
 */
static bool
faultshim_fail(int fd, enum faultshim_fault f, const char *op)
{
	switch (f) {
	case FAULT_EINTR:
		fs.eintr++;
		errno = EINTR;
		return true;
	case FAULT_EAGAIN:
		fs.eagain++;
		errno = EAGAIN;
		return true;
	case FAULT_RESET:
		fs.resets++;
		shutdown(fd, SHUT_RDWR);
		faultshim_log("reset pid=%d fd=%d op=%s\n", (int)getpid(), fd,
		    op);
		errno = ECONNRESET;
		return true;
	default:
		return false;
	}
}

/* A shorter count for FAULT_SHORT: 1 to count - 1. */
static size_t
faultshim_shorter(size_t count)
{
	fs.shorts++;
	return 1 + (size_t)(faultshim_random() % (count - 1));
}

/* Total bytes of an iovec array. */
static size_t
faultshim_iov_len(const struct iovec *iov, int n)
{
	size_t	len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

/*
 * Copies iov into out (at most 64 entries) trimmed to a shorter total;
 * returns the new count of entries.
 */
static int
faultshim_iov_trim(const struct iovec *iov, int n, struct iovec *out,
    size_t total)
{
	size_t	keep = faultshim_shorter(total);
	int	m = 0;

	for (int i = 0; i < n && m < 64 && keep > 0; i++) {
		out[m] = iov[i];
		if (out[m].iov_len > keep)
			out[m].iov_len = keep;
		keep -= out[m].iov_len;
		m++;
	}
	return m;
}

ssize_t
read(int fd, void *buf, size_t count)
{
	enum faultshim_fault	f = faultshim_pick(fd, count, false);

	if (faultshim_fail(fd, f, "read"))
		return -1;
	if (f == FAULT_SHORT)
		count = faultshim_shorter(count);
	return real_read(fd, buf, count);
}

ssize_t
write(int fd, const void *buf, size_t count)
{
	enum faultshim_fault	f = faultshim_pick(fd, count, false);

	if (faultshim_fail(fd, f, "write"))
		return -1;
	if (f == FAULT_SHORT)
		count = faultshim_shorter(count);
	return real_write(fd, buf, count);
}

ssize_t
readv(int fd, const struct iovec *iov, int n)
{
	size_t			total = faultshim_iov_len(iov, n);
	enum faultshim_fault	f = faultshim_pick(fd, total, false);
	struct iovec		trimmed[64];

	if (faultshim_fail(fd, f, "readv"))
		return -1;
	if (f == FAULT_SHORT)
		return real_readv(fd, trimmed,
		    faultshim_iov_trim(iov, n, trimmed, total));
	return real_readv(fd, iov, n);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
	size_t			total = faultshim_iov_len(iov, n);
	enum faultshim_fault	f = faultshim_pick(fd, total, false);
	struct iovec		trimmed[64];

	if (faultshim_fail(fd, f, "writev"))
		return -1;
	if (f == FAULT_SHORT)
		return real_writev(fd, trimmed,
		    faultshim_iov_trim(iov, n, trimmed, total));
	return real_writev(fd, iov, n);
}

ssize_t
send(int fd, const void *buf, size_t count, int flags)
{
	enum faultshim_fault	f = faultshim_pick(fd, count,
				    (flags & MSG_DONTWAIT) != 0);

	if (faultshim_fail(fd, f, "send"))
		return -1;
	if (f == FAULT_SHORT)
		count = faultshim_shorter(count);
	return real_send(fd, buf, count, flags);
}

ssize_t
recv(int fd, void *buf, size_t count, int flags)
{
	enum faultshim_fault	f = faultshim_pick(fd, count,
				    (flags & MSG_DONTWAIT) != 0);

	if (faultshim_fail(fd, f, "recv"))
		return -1;
	if (f == FAULT_SHORT)
		count = faultshim_shorter(count);
	return real_recv(fd, buf, count, flags);
}

ssize_t
sendto(int fd, const void *buf, size_t count, int flags,
    __CONST_SOCKADDR_ARG to, socklen_t tolen)
{
	enum faultshim_fault	f = faultshim_pick(fd, count,
				    (flags & MSG_DONTWAIT) != 0);

	if (faultshim_fail(fd, f, "sendto"))
		return -1;
	if (f == FAULT_SHORT)
		count = faultshim_shorter(count);
	return real_sendto(fd, buf, count, flags, to, tolen);
}

ssize_t
recvfrom(int fd, void *buf, size_t count, int flags, __SOCKADDR_ARG from,
    socklen_t *fromlen)
{
	enum faultshim_fault	f = faultshim_pick(fd, count,
				    (flags & MSG_DONTWAIT) != 0);

	if (faultshim_fail(fd, f, "recvfrom"))
		return -1;
	if (f == FAULT_SHORT)
		count = faultshim_shorter(count);
	return real_recvfrom(fd, buf, count, flags, from, fromlen);
}

ssize_t
sendmsg(int fd, const struct msghdr *msg, int flags)
{
	size_t			total = faultshim_iov_len(msg->msg_iov,
				    (int)msg->msg_iovlen);
	enum faultshim_fault	f;
	struct iovec		trimmed[64];
	struct msghdr		m;

	/* Descriptors passed along are never split from their bytes. */
	f = faultshim_pick(fd, msg->msg_controllen > 0 ? 1 : total,
	    (flags & MSG_DONTWAIT) != 0);
	if (faultshim_fail(fd, f, "sendmsg"))
		return -1;
	if (f == FAULT_SHORT) {
		m = *msg;
		m.msg_iov = trimmed;
		m.msg_iovlen = (size_t)faultshim_iov_trim(msg->msg_iov,
		    (int)msg->msg_iovlen, trimmed, total);
		return real_sendmsg(fd, &m, flags);
	}
	return real_sendmsg(fd, msg, flags);
}

ssize_t
recvmsg(int fd, struct msghdr *msg, int flags)
{
	size_t			total = faultshim_iov_len(msg->msg_iov,
				    (int)msg->msg_iovlen);
	enum faultshim_fault	f;
	struct iovec		trimmed[64], *iov = msg->msg_iov;
	size_t			iovlen = msg->msg_iovlen;
	ssize_t			r;

	f = faultshim_pick(fd, msg->msg_controllen > 0 ? 1 : total,
	    (flags & MSG_DONTWAIT) != 0);
	if (faultshim_fail(fd, f, "recvmsg"))
		return -1;
	if (f != FAULT_SHORT)
		return real_recvmsg(fd, msg, flags);
	msg->msg_iov = trimmed;
	msg->msg_iovlen = (size_t)faultshim_iov_trim(iov, (int)iovlen,
	    trimmed, total);
	r = real_recvmsg(fd, msg, flags);
	msg->msg_iov = iov;
	msg->msg_iovlen = iovlen;
	return r;
}

/*
 * meta.c: a job's metadata on both sides of libpatchbay.
 *
 * A client's pb_run_options.meta becomes the RUN's `meta` map here
 * (meta_build(), into a proto/ meta_buf on the caller's stack, checked
 * with the very rules the broker applies), with a fresh W3C traceparent
 * when the caller asks for a trace and gave none. A worker's RUN carries
 * the map back, which meta_unpack() turns into NUL-terminated strings
 * inside the pb_job's own allocation, so that the pb_job_meta*()
 * accessors (worker.c) hand out plain C strings and a job without meta
 * costs nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clients/lib/internal.h"

/* Fills buf with n random bytes from the kernel. 0 or a negative errno. */
static int
meta_random(uint8_t *buf, size_t n)
{
	ssize_t	r;
	size_t	got = 0;
	int	fd, err;

	while (got < n) {
		r = getrandom(buf + got, n - got, 0);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != ENOSYS)
			return -errno;
		break;
	}
	if (got == n)
		return 0;
	/* A kernel without getrandom(2): the device has the same bytes. */
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	while (got < n) {
		r = read(fd, buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		err = r < 0 ? -errno : -EIO;
		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

/* Writes a new traceparent into buf; see patchbay.h. */
int
pb_traceparent_generate(char *buf, size_t len)
{
	static const char	hex[] = "0123456789abcdef";
	uint8_t			id[24];
	char			*o = buf;
	int			 r;

	if (buf == NULL || len < PB_TRACEPARENT_LEN + 1)
		return -EINVAL;
	/* W3C: ids of all zeros are invalid; 2^-64 odds, but cheap to avoid. */
	do {
		if ((r = meta_random(id, sizeof(id))) != 0)
			return r;
	} while (memcmp(id, "\0\0\0\0\0\0\0\0", 8) == 0 ||
	    memcmp(id + 16, "\0\0\0\0\0\0\0\0", 8) == 0);
	memcpy(o, "00-", 3);
	o += 3;
	for (size_t i = 0; i < 24; i++) {
		if (i == 16)
			*o++ = '-';
		*o++ = hex[id[i] >> 4];
		*o++ = hex[id[i] & 15];
	}
	memcpy(o, "-01", 4);
	return 0;
}

/* Builds the RUN's meta map from opts into mb; see internal.h. */
int
meta_build(const struct pb_run_options *opts, struct meta_buf *mb,
    struct pbytes *ret, char *err)
{
	char	tp[PB_TRACEPARENT_LEN + 1];
	size_t	i;
	int	r;

	if (opts->nmeta > 0 && opts->meta == NULL) {
		snprintf(err, PROTO_ERRLEN, "nmeta is %zu but meta is NULL",
		    opts->nmeta);
		return -EINVAL;
	}
	meta_buf_init(mb);
	for (i = 0; i < opts->nmeta; i++) {
		const struct pb_meta *m = &opts->meta[i];

		if (m->key == NULL || m->value == NULL) {
			snprintf(err, PROTO_ERRLEN, "meta entry %zu has a NULL "
			    "%s", i, m->key == NULL ? "key" : "value");
			return -EINVAL;
		}
		meta_buf_add(mb, m->key, strlen(m->key), m->value,
		    strlen(m->value));
	}
	if (opts->trace && !meta_buf_has(mb, "traceparent")) {
		if ((r = pb_traceparent_generate(tp, sizeof(tp))) != 0) {
			snprintf(err, PROTO_ERRLEN, "cannot make a traceparent: "
			    "%s", strerror(-r));
			return r;
		}
		meta_buf_add(mb, "traceparent", strlen("traceparent"), tp,
		    PB_TRACEPARENT_LEN);
	}
	return meta_buf_finish(mb, ret, err) == 0 ? 0 : -EINVAL;
}

/* Bytes meta_unpack() needs for raw; see internal.h. */
size_t
meta_unpack_size(struct pbytes raw)
{
	struct meta_iter	it;
	struct pbytes		k, v;
	size_t			n = 0, bytes = 0;

	meta_iter_init(&it, raw);
	while (meta_iter_next(&it, &k, &v)) {
		n++;
		bytes += (size_t)k.len + 1 + v.len + 1;
	}
	return n == 0 ? 0 : 2 * n * sizeof(char *) + bytes;
}

/* Unpacks raw into mem as pointers, then strings; see internal.h. */
uint32_t
meta_unpack(struct pbytes raw, void *mem)
{
	struct meta_iter	 it;
	struct pbytes		 k, v;
	const char		**ptrs = mem;
	char			*s;
	uint32_t		 n = 0;

	meta_iter_init(&it, raw);
	while (meta_iter_next(&it, &k, &v))
		n++;
	s = (char *)(ptrs + 2 * (size_t)n);
	meta_iter_init(&it, raw);
	for (uint32_t i = 0; i < n && meta_iter_next(&it, &k, &v); i++) {
		ptrs[2 * i] = s;
		memcpy(s, k.ptr, k.len);
		s[k.len] = '\0';
		s += k.len + 1;
		ptrs[2 * i + 1] = s;
		memcpy(s, v.ptr, v.len);
		s[v.len] = '\0';
		s += v.len + 1;
	}
	return n;
}

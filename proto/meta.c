/*
 * meta.c: a job's metadata, the `meta` map of a RUN.
 *
 * A client may attach a small map of str to str to a RUN; the broker keeps
 * the encoded map with the job and hands it, byte for byte, to the worker
 * in the job's RUN (docs/protocol.md, "meta"). The decoder only checks its
 * shape (a map whose keys and values are all str) and records where it
 * lies in the frame. What a meta map may hold is meta_check()'s to say, in
 * one place for the broker (which answers a violation BAD_REQUEST) and for
 * the senders that build one (meta_buf_*: the library, the CLI), so that
 * both refuse the same things with the same sentence. Two keys have a
 * meaning: `traceparent` and `tracestate`, a W3C Trace Context carried from
 * the client to the worker.
 *
 * Everything here reads or writes the encoded map in place: no allocation.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/internal.h"

/* Reads a map header at p (an entry count), or returns false. */
static bool
meta_map_header(const uint8_t **p, const uint8_t *end, uint32_t *ret_n)
{
	const uint8_t	*s = *p;

	if (s >= end)
		return false;
	if ((s[0] & 0xf0) == 0x80) {
		*ret_n = s[0] & 0x0f;
		*p = s + 1;
		return true;
	}
	if (s[0] == 0xde && end - s >= 3) {
		*ret_n = (uint32_t)frame_be(s + 1, 2);
		*p = s + 3;
		return true;
	}
	if (s[0] == 0xdf && end - s >= 5) {
		*ret_n = (uint32_t)frame_be(s + 1, 4);
		*p = s + 5;
		return true;
	}
	return false;
}

/* Reads a str at *p into ret and moves past it, or returns false. */
static bool
meta_str(const uint8_t **p, const uint8_t *end, struct pbytes *ret)
{
	const uint8_t	*s = *p;
	size_t		 hdr, n;

	if (s >= end)
		return false;
	if ((s[0] & 0xe0) == 0xa0) {
		hdr = 1;
		n = s[0] & 0x1f;
	} else if (s[0] >= 0xd9 && s[0] <= 0xdb) {
		hdr = 1 + (1u << (s[0] - 0xd9));
		if ((size_t)(end - s) < hdr)
			return false;
		n = (size_t)frame_be(s + 1, (unsigned)hdr - 1);
	} else
		return false;
	if (n > (size_t)(end - s) - hdr)
		return false;
	ret->ptr = s + hdr;
	ret->len = (uint32_t)n;
	*p = s + hdr + n;
	return true;
}

/* Starts walking the entries of a checked meta map. */
void
meta_iter_init(struct meta_iter *it, struct pbytes raw)
{
	it->p = raw.ptr;
	it->end = raw.ptr + raw.len;
	it->left = 0;
	if (raw.len == 0 || !meta_map_header(&it->p, it->end, &it->left))
		it->left = 0;
}

/* The next entry, or false at the end (or at anything that is no entry). */
bool
meta_iter_next(struct meta_iter *it, struct pbytes *ret_key,
    struct pbytes *ret_value)
{
	if (it->left == 0)
		return false;
	if (!meta_str(&it->p, it->end, ret_key) ||
	    !meta_str(&it->p, it->end, ret_value)) {
		it->left = 0;
		return false;
	}
	it->left--;
	return true;
}

/* The number of entries of a meta map. */
uint32_t
meta_count(struct pbytes raw)
{
	const uint8_t	*p = raw.ptr;
	uint32_t	 n;

	if (raw.len == 0 || !meta_map_header(&p, raw.ptr + raw.len, &n))
		return 0;
	return n;
}

/* True when the n bytes at s are the NUL-terminated string key. */
static bool
meta_is(const uint8_t *s, size_t n, const char *key)
{
	return strlen(key) == n && memcmp(s, key, n) == 0;
}

/* The value of key in a meta map; see proto.h. */
bool
meta_find(struct pbytes raw, const char *key, struct pbytes *ret_value)
{
	struct meta_iter	it;
	struct pbytes		k, v;

	meta_iter_init(&it, raw);
	while (meta_iter_next(&it, &k, &v)) {
		if (meta_is(k.ptr, k.len, key)) {
			*ret_value = v;
			return true;
		}
	}
	return false;
}

/* True for a byte a meta key may hold: it becomes part of an env name. */
static bool
meta_key_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* True when the n bytes at s are lowercase hex digits, not all '0'. */
static bool
meta_hex(const uint8_t *s, size_t n, bool nonzero)
{
	bool	zero = true;

	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		zero = zero && s[i] == '0';
	}
	return !(nonzero && zero);
}

/*
 * True when s is a W3C traceparent (Trace Context level 1):
 * VERSION-TRACEID-PARENTID-FLAGS in lowercase hex, 2-32-16-2 digits, the
 * ids not all zero, version ff invalid. A version 00 value is exactly 55
 * bytes; a later version may carry more after a '-', which is kept.
 */
bool
meta_traceparent_ok(const uint8_t *s, size_t len)
{
	if (len < PROTO_TRACEPARENT_LEN)
		return false;
	if (!meta_hex(s, 2, false) || (s[0] == 'f' && s[1] == 'f'))
		return false;
	if (s[0] == '0' && s[1] == '0' && len != PROTO_TRACEPARENT_LEN)
		return false;
	if (len > PROTO_TRACEPARENT_LEN && s[PROTO_TRACEPARENT_LEN] != '-')
		return false;
	return s[2] == '-' && meta_hex(s + 3, 32, true) && s[35] == '-' &&
	    meta_hex(s + 36, 16, true) && s[52] == '-' &&
	    meta_hex(s + 53, 2, false);
}

/* Copies s (n bytes) into buf for a sentence: printable, cut short. */
static const char *
meta_quote(char *buf, size_t size, const uint8_t *s, size_t n)
{
	size_t	i, o = 0;

	for (i = 0; i < n && o + 4 < size; i++)
		buf[o++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	if (i < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* Checks one value: UTF-8 without NUL. 0 or -EINVAL with a sentence. */
static int
meta_check_value(struct pbytes k, struct pbytes v, char *err)
{
	char	q[48];
	size_t	i, l;

	for (i = 0; i < v.len; i += l) {
		if (v.ptr[i] == '\0') {
			proto_fail(err, "meta '%s' has a NUL byte in its value",
			    meta_quote(q, sizeof(q), k.ptr, k.len));
			return -EINVAL;
		}
		if ((l = proto_utf8_len(v.ptr + i, v.len - i)) == 0) {
			proto_fail(err, "meta '%s' has a value that is not "
			    "UTF-8 (byte %zu)", meta_quote(q, sizeof(q), k.ptr,
			    k.len), i);
			return -EINVAL;
		}
	}
	return 0;
}

/* Checks a RUN's meta against the protocol's limits; see proto.h. */
int
meta_check(struct pbytes raw, char *err)
{
	struct meta_iter	 it, jt;
	struct pbytes		 k, v, k2, v2, tp = { NULL, 0 };
	uint32_t		 n, i, j;
	size_t			 bytes = 0;
	bool			 has_ts = false;
	char			 q[48];

	n = meta_count(raw);
	if (n > PROTO_MAX_META) {
		proto_fail(err, "meta has %u keys, more than %d", n,
		    PROTO_MAX_META);
		return -EINVAL;
	}
	/* The sum first: each later check then walks a bounded map. */
	meta_iter_init(&it, raw);
	for (i = 0; meta_iter_next(&it, &k, &v); i++)
		bytes += (size_t)k.len + v.len;
	if (i != n) {
		proto_fail(err, "meta is not a map of str to str");
		return -EINVAL;
	}
	if (bytes > PROTO_MAX_META_BYTES) {
		proto_fail(err, "meta holds %zu bytes of keys and values, more "
		    "than %d", bytes, PROTO_MAX_META_BYTES);
		return -EINVAL;
	}
	meta_iter_init(&it, raw);
	for (i = 0; meta_iter_next(&it, &k, &v); i++) {
		if (k.len == 0) {
			proto_fail(err, "meta has an empty key");
			return -EINVAL;
		}
		for (j = 0; j < k.len; j++) {
			if (!meta_key_char(k.ptr[j])) {
				proto_fail(err, "meta key '%s' may only hold "
				    "A-Z a-z 0-9 _ . - (byte %u is not one)",
				    meta_quote(q, sizeof(q), k.ptr, k.len), j);
				return -EINVAL;
			}
		}
		/* At most 32 keys: comparing each with those after is fine. */
		jt = it;
		while (meta_iter_next(&jt, &k2, &v2)) {
			if (k2.len == k.len &&
			    memcmp(k2.ptr, k.ptr, k.len) == 0) {
				proto_fail(err, "meta key '%s' appears twice",
				    meta_quote(q, sizeof(q), k.ptr, k.len));
				return -EINVAL;
			}
		}
		if (meta_check_value(k, v, err) != 0)
			return -EINVAL;
		if (meta_is(k.ptr, k.len, "traceparent"))
			tp = v;
		else if (meta_is(k.ptr, k.len, "tracestate")) {
			has_ts = true;
			for (j = 0; j < v.len; j++) {
				if (v.ptr[j] < 0x20 || v.ptr[j] > 0x7e)
					break;
			}
			if (v.len > PROTO_MAX_TRACESTATE || j < v.len) {
				proto_fail(err, "meta 'tracestate' must be at "
				    "most %d bytes of printable ASCII",
				    PROTO_MAX_TRACESTATE);
				return -EINVAL;
			}
		}
	}
	if (tp.ptr != NULL && !meta_traceparent_ok(tp.ptr, tp.len)) {
		proto_fail(err, "meta 'traceparent' is not a W3C traceparent "
		    "(00-<32 hex>-<16 hex>-<2 hex>, ids not all zero): '%s'",
		    meta_quote(q, sizeof(q), tp.ptr, tp.len));
		return -EINVAL;
	}
	if (has_ts && tp.ptr == NULL) {
		proto_fail(err, "meta has a 'tracestate' without a "
		    "'traceparent'");
		return -EINVAL;
	}
	return 0;
}

/* Starts an empty meta map in mb. */
void
meta_buf_init(struct meta_buf *mb)
{
	mb->n = 0;
	mb->bytes = 0;
	mb->len = 3;		/* room for a map16 header */
}

/* Writes a str header for n bytes at o (n < 65536); returns o past it. */
static uint8_t *
meta_put_str_header(uint8_t *o, size_t n)
{
	if (n < 32) {
		*o++ = (uint8_t)(0xa0 | n);
	} else if (n < 256) {
		*o++ = 0xd9;
		*o++ = (uint8_t)n;
	} else {
		*o++ = 0xda;
		*o++ = (uint8_t)(n >> 8);
		*o++ = (uint8_t)n;
	}
	return o;
}

/* Adds one entry; past the limits it is only counted. */
void
meta_buf_add(struct meta_buf *mb, const char *key, size_t klen,
    const char *value, size_t vlen)
{
	uint8_t	*o;

	mb->n++;
	if (klen > PROTO_MAX_META_BYTES || vlen > PROTO_MAX_META_BYTES ||
	    mb->bytes + klen + vlen > PROTO_MAX_META_BYTES ||
	    mb->n > PROTO_MAX_META) {
		/* Counted so that the sentence says by how much. */
		mb->bytes += klen < PROTO_MAX_META_RAW ? klen :
		    PROTO_MAX_META_RAW;
		mb->bytes += vlen < PROTO_MAX_META_RAW ? vlen :
		    PROTO_MAX_META_RAW;
		return;
	}
	mb->bytes += klen + vlen;
	/* Within the limits, the entries always fit (PROTO_MAX_META_RAW). */
	o = meta_put_str_header(mb->buf + mb->len, klen);
	memcpy(o, key, klen);
	o = meta_put_str_header(o + klen, vlen);
	memcpy(o, value, vlen);
	mb->len = (size_t)(o + vlen - mb->buf);
}

/* True when an entry called key was stored. */
bool
meta_buf_has(const struct meta_buf *mb, const char *key)
{
	const uint8_t	*p = mb->buf + 3, *end = mb->buf + mb->len;
	struct pbytes	 k, v;

	while (meta_str(&p, end, &k) && meta_str(&p, end, &v)) {
		if (meta_is(k.ptr, k.len, key))
			return true;
	}
	return false;
}

/* Ends the map and checks it; see proto.h. */
int
meta_buf_finish(struct meta_buf *mb, struct pbytes *ret, char *err)
{
	uint8_t	*start;

	if (mb->n > PROTO_MAX_META) {
		proto_fail(err, "meta has %u keys, more than %d", mb->n,
		    PROTO_MAX_META);
		return -EINVAL;
	}
	if (mb->bytes > PROTO_MAX_META_BYTES) {
		proto_fail(err, "meta holds %zu bytes of keys and values, more "
		    "than %d", mb->bytes, PROTO_MAX_META_BYTES);
		return -EINVAL;
	}
	/* The shortest header, just before the entries. */
	if (mb->n < 16) {
		start = mb->buf + 2;
		start[0] = (uint8_t)(0x80 | mb->n);
	} else {
		start = mb->buf;
		start[0] = 0xde;
		start[1] = (uint8_t)(mb->n >> 8);
		start[2] = (uint8_t)mb->n;
	}
	ret->ptr = start;
	ret->len = (uint32_t)(mb->buf + mb->len - start);
	return meta_check(*ret, err);
}

/*
 * frame.c: framing and the structural check of untrusted frame bodies.
 *
 * A frame is a 4-byte big-endian length and a body holding exactly one
 * MessagePack map. frame_header() bounds the length before anything is
 * buffered or unpacked; frame_check() then walks the body once, without
 * allocating, so that msgpack-c only ever sees bodies whose every declared
 * count fits in the bytes that are really there (msgpack-c allocates
 * count * sizeof(msgpack_object) on a container's header alone), whose
 * nesting is bounded and which hold nothing after the map.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "proto/internal.h"

static const char *const frame_kind_names[] = {
	[FK_SCALAR] = "scalar",
	[FK_STR] = "str",
	[FK_BIN] = "bin",
	[FK_EXT] = "ext",
	[FK_ARRAY] = "array",
	[FK_MAP] = "map",
	[FK_RESERVED] = "reserved byte 0xc1",
};

/* Writes a sentence into err (when there is one) and returns -EBADMSG. */
int
proto_fail(char *err, const char *fmt, ...)
{
	va_list	ap;

	if (err != NULL) {
		va_start(ap, fmt);
		vsnprintf(err, PROTO_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return (-EBADMSG);
}

/* Reads an n-byte big-endian unsigned integer (n <= 8). */
uint64_t
frame_be(const uint8_t *p, unsigned n)
{
	uint64_t	v = 0;

	while (n-- > 0)
		v = (v << 8) | *p++;
	return (v);
}

/* Names the type a header byte starts, for "found ..." sentences. */
static const char *
frame_type_name(uint8_t b)
{
	if (b == 0xc0)
		return ("nil");
	if (b == 0xc2 || b == 0xc3)
		return ("bool");
	if (b == 0xca || b == 0xcb)
		return ("float");
	if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
		return ("integer");
	return (NULL);
}

/* Validates the 4-byte frame header at buf and returns the body length. */
int
frame_header(const uint8_t *buf, size_t avail, uint32_t max_frame,
    uint32_t *ret_len)
{
	uint32_t	len;

	if (buf == NULL || avail < PROTO_HEADER_LEN)
		return (-EAGAIN);
	len = (uint32_t)frame_be(buf, PROTO_HEADER_LEN);
	if (len == 0)
		return (-EBADMSG);
	if (len > max_frame)
		return (-EMSGSIZE);
	*ret_len = len;
	return (0);
}

/* The body length a 4-byte frame header announces, checked or not. */
uint32_t
frame_header_len(const uint8_t *hdr)
{
	return ((uint32_t)frame_be(hdr, PROTO_HEADER_LEN));
}

/* Writes the 4-byte big-endian frame header. */
void
frame_put_header(uint8_t *hdr, uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

/* Walks one frame body and checks its structure without allocating. */
int
frame_check(const uint8_t *body, size_t len, char *err)
{
	uint64_t		left[PROTO_MAX_DEPTH];	/* items owed */
	struct frame_item	it;
	size_t			pos = 0, rest;
	unsigned		depth = 0;
	const char		*found;

	if (body == NULL || len == 0)
		return (proto_fail(err, "frame body is empty"));
	frame_classify(body[0], &it);
	if (it.kind != FK_MAP) {
		found = frame_type_name(body[0]);
		if (found == NULL)
			found = frame_kind_names[it.kind];
		return (proto_fail(err, "frame body is not a map (found %s)",
		    found));
	}

	do {
		if (pos >= len)
			return (proto_fail(err, "frame body ends at offset %zu "
			    "in the middle of a container", pos));
		frame_classify(body[pos], &it);
		if (it.kind == FK_RESERVED)
			return (proto_fail(err, "reserved byte 0xc1 at offset "
			    "%zu", pos));
		rest = len - pos - 1;
		if (it.fixed > rest)
			return (proto_fail(err, "%s at offset %zu is truncated "
			    "(its header needs %u more byte%s, %zu remain)",
			    frame_type_name(body[pos]) != NULL ?
			    frame_type_name(body[pos]) :
			    frame_kind_names[it.kind], pos, it.fixed,
			    it.fixed == 1 ? "" : "s", rest));
		if (it.lenbytes > 0)
			it.n = frame_be(body + pos + 1, it.lenbytes);
		rest -= it.fixed;

		switch (it.kind) {
		case FK_STR:
		case FK_BIN:
		case FK_EXT:
			if (it.n > rest)
				return (proto_fail(err, "%s at offset %zu "
				    "declares %llu bytes but only %zu remain",
				    frame_kind_names[it.kind], pos,
				    (unsigned long long)it.n, rest));
			break;
		case FK_ARRAY:
			if (it.n > rest)
				return (proto_fail(err, "array at offset %zu "
				    "declares %llu elements but only %zu bytes "
				    "remain", pos, (unsigned long long)it.n,
				    rest));
			break;
		case FK_MAP:
			if (2 * it.n > rest)
				return (proto_fail(err, "map at offset %zu "
				    "declares %llu entries but only %zu bytes "
				    "remain", pos, (unsigned long long)it.n,
				    rest));
			it.n *= 2;
			break;
		default:
			break;
		}

		/* This item is one of those its container owes. */
		if (depth > 0)
			left[depth - 1]--;
		if (it.kind == FK_ARRAY || it.kind == FK_MAP) {
			if (depth == PROTO_MAX_DEPTH)
				return (proto_fail(err, "nesting deeper than "
				    "%d at offset %zu", PROTO_MAX_DEPTH, pos));
			left[depth++] = it.n;
			pos += 1 + it.fixed;
		} else
			pos += 1 + it.fixed + it.n;
		while (depth > 0 && left[depth - 1] == 0)
			depth--;
	} while (depth > 0);

	if (pos != len)
		return (proto_fail(err, "%zu trailing byte%s after the map",
		    len - pos, len - pos == 1 ? "" : "s"));
	return (0);
}

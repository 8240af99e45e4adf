/*
 * json.c: MessagePack objects as JSON.
 *
 * The one writer of JSON in patchbay: `patchbay ctl --json` prints an ADMIN
 * REPLY's data with it, and patchbayd's HTTP endpoint serves the status
 * snapshot (/status.json) with it, so that both say the same thing the
 * same way. It only writes to a FILE (a terminal, or an open_memstream()
 * buffer) and never fails on odd input: invalid UTF-8 becomes U+FFFD,
 * binaries become text, a non-finite float becomes null.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
size_t
proto_utf8_len(const uint8_t *s, size_t n)
{
	size_t	len, i;
	uint8_t	lo = 0x80, hi = 0xbf;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

/* Writes s as a JSON string: escaped, invalid UTF-8 as U+FFFD. */
void
proto_json_str(FILE *f, const char *s, size_t n)
{
	const uint8_t	*p = (const uint8_t *)s;
	size_t		 i = 0, l, run;

	fputc('"', f);
	while (i < n) {
		/* A run of printable ASCII goes out in one write. */
		for (run = 0; i + run < n && p[i + run] >= 0x20 &&
		    p[i + run] < 0x80 && p[i + run] != '"' &&
		    p[i + run] != '\\'; run++)
			;
		if (run > 0) {
			fwrite(p + i, 1, run, f);
			i += run;
			continue;
		}
		if (p[i] == '"' || p[i] == '\\') {
			fputc('\\', f);
			fputc(p[i++], f);
		} else if (p[i] == '\n') {
			fputs("\\n", f);
			i++;
		} else if (p[i] == '\t') {
			fputs("\\t", f);
			i++;
		} else if (p[i] == '\r') {
			fputs("\\r", f);
			i++;
		} else if (p[i] < 0x20) {
			fprintf(f, "\\u%04x", p[i++]);
		} else if ((l = proto_utf8_len(p + i, n - i)) == 0) {
			fputs("\\ufffd", f);
			i++;
		} else {
			fwrite(p + i, 1, l, f);
			i += l;
		}
	}
	fputc('"', f);
}

/* Writes binary data as text: a UUID for 16 bytes, else base64. */
void
proto_bin_text(FILE *f, const void *data, size_t n)
{
	const uint8_t	*p = data;
	size_t		 i;

	if (n == PROTO_ID_LEN) {
		for (i = 0; i < n; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				fputc('-', f);
			fprintf(f, "%02x", p[i]);
		}
		return;
	}
	proto_base64(f, data, n);
}

/* Writes binary data as base64 (RFC 4648, padded), whatever its length. */
void
proto_base64(FILE *f, const void *data, size_t n)
{
	static const char	 b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t		*p = data;
	uint32_t		 v;
	size_t			 i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(b64[(v >> 6) & 63], f);
		fputc(b64[v & 63], f);
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputs("==", f);
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		fputc(b64[v >> 18], f);
		fputc(b64[(v >> 12) & 63], f);
		fputc(b64[(v >> 6) & 63], f);
		fputc('=', f);
	}
}

/* Writes a newline and indentation when pretty, nothing otherwise. */
static void
json_indent(FILE *f, int depth, int flags)
{
	if (!(flags & PROTO_JSON_PRETTY))
		return;
	fputc('\n', f);
	for (int i = 0; i < depth; i++)
		fputs("  ", f);
}

static void	json_at(FILE *, const msgpack_object *, int, int);

/* Writes a map key: a string as it is, anything else as its JSON text. */
static void
json_key(FILE *f, const msgpack_object *key)
{
	char	*text = NULL;
	size_t	 len = 0;
	FILE	*kf;

	if (key->type == MSGPACK_OBJECT_STR) {
		proto_json_str(f, key->via.str.ptr, key->via.str.size);
		return;
	}
	if ((kf = open_memstream(&text, &len)) != NULL) {
		json_at(kf, key, 0, 0);
		if (fclose(kf) != 0) {
			free(text);
			text = NULL;
		}
	}
	if (text != NULL && len > 0 && text[0] == '"')
		fputs(text, f);
	else
		proto_json_str(f, text != NULL ? text : "",
		    text != NULL ? len : 0);
	free(text);
}

/* Writes o as JSON at nesting depth. */
static void
json_at(FILE *f, const msgpack_object *o, int depth, int flags)
{
	const char	*sep = (flags & PROTO_JSON_PRETTY) ? ": " : ":";
	uint32_t	 i;

	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(o->via.f64))
			fprintf(f, "%.17g", o->via.f64);
		else
			fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_STR:
		proto_json_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		fputc('"', f);
		proto_bin_text(f, o->via.bin.ptr, o->via.bin.size);
		fputc('"', f);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0) {
			fputs("[]", f);
			break;
		}
		fputc('[', f);
		for (i = 0; i < o->via.array.size; i++) {
			json_indent(f, depth + 1, flags);
			json_at(f, &o->via.array.ptr[i], depth + 1, flags);
			if (i + 1 < o->via.array.size)
				fputc(',', f);
		}
		json_indent(f, depth, flags);
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 0) {
			fputs("{}", f);
			break;
		}
		fputc('{', f);
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];

			json_indent(f, depth + 1, flags);
			json_key(f, &kv->key);
			fputs(sep, f);
			json_at(f, &kv->val, depth + 1, flags);
			if (i + 1 < o->via.map.size)
				fputc(',', f);
		}
		json_indent(f, depth, flags);
		fputc('}', f);
		break;
	case MSGPACK_OBJECT_NIL:
	default:
		fputs("null", f);
		break;
	}
}

/* Writes o as JSON; see proto.h. */
void
proto_json_write(FILE *f, const msgpack_object *o, int flags)
{
	static const msgpack_object	nil = { .type = MSGPACK_OBJECT_NIL };

	json_at(f, o != NULL ? o : &nil, 0, flags);
}

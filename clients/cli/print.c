/*
 * print.c: how the patchbay program shows structured answers.
 *
 * Every subcommand that prints a broker's answer (a msgpack object) comes
 * through here, so they all look the same: --json prints pretty JSON
 * with proto/json.c, the writer patchbayd's /status.json uses too
 * (strings escaped, invalid UTF-8 as U+FFFD, numbers as numbers); for
 * people, a map becomes "key: value" lines, an array of maps a table whose
 * columns are the first map's keys in the order the broker sent them, with
 * upper-cased headers. A 16-byte binary is a job or session id and is
 * shown as a UUID, other binaries as base64. A key ending in "_ms" is a
 * duration: people see "uptime: 3m12s" (the suffix dropped, the value
 * from format_duration_human()), JSON keeps "uptime_ms": 192000; one
 * ending in "_bytes" is a size ("rss: 12.3MiB").
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "clients/cli/cli.h"
#include "proto/proto.h"


/* Writes a number for people. */
static bool
print_number(FILE *f, const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%llu", (unsigned long long)o->via.u64);
		return true;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%lld", (long long)o->via.i64);
		return true;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (isfinite(o->via.f64))
			fprintf(f, "%.6g", o->via.f64);
		else
			fputc('-', f);
		return true;
	default:
		return false;
	}
}

/* Writes a string for people: control characters shown as '?'. */
static void
print_text_str(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fputc((unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i],
		    f);
}

/*
 * Writes o compactly, for a table cell or after "key: ": nil as "-",
 * arrays joined with ",", maps as k=v pairs.
 */
static void
print_cell(FILE *f, const msgpack_object *o)
{
	uint32_t	i;

	if (print_number(f, o))
		return;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputc('-', f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_STR:
		print_text_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		proto_bin_text(f, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		if (o->via.array.size == 0)
			fputc('-', f);
		for (i = 0; i < o->via.array.size; i++) {
			if (i > 0)
				fputc(',', f);
			print_cell(f, &o->via.array.ptr[i]);
		}
		break;
	case MSGPACK_OBJECT_MAP:
		if (o->via.map.size == 0)
			fputc('-', f);
		for (i = 0; i < o->via.map.size; i++) {
			if (i > 0)
				fputc(',', f);
			print_cell(f, &o->via.map.ptr[i].key);
			fputc('=', f);
			print_cell(f, &o->via.map.ptr[i].val);
		}
		break;
	default:
		fputc('-', f);
		break;
	}
}

/* Columns s takes on a terminal: UTF-8 lead bytes counted. */
static size_t
print_width(const char *s)
{
	size_t	w = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	}
	return w;
}

/* True when two map keys are the same (strings compared by bytes). */
static bool
print_key_equal(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return false;
	if (a->type == MSGPACK_OBJECT_STR)
		return a->via.str.size == b->via.str.size &&
		    memcmp(a->via.str.ptr, b->via.str.ptr,
		    a->via.str.size) == 0;
	return msgpack_object_equal(*a, *b);
}

/* The value of the string key in map m, or NULL; see cli.h. */
const msgpack_object *
print_get(const msgpack_object *m, const char *key)
{
	size_t	len = strlen(key);

	if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
		    memcmp(k->via.str.ptr, key, len) == 0)
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

/* Finds key in map m, or NULL. */
static const msgpack_object *
print_map_get(const msgpack_object *m, const msgpack_object *key)
{
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		if (print_key_equal(&m->via.map.ptr[i].key, key))
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

/* True when o is a string key naming a duration ("uptime_ms"). */
static bool
print_is_duration_key(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 3 &&
	    memcmp(o->via.str.ptr + o->via.str.size - 3, "_ms", 3) == 0;
}

/* True when o is a string key naming a size ("rss_bytes"). */
static bool
print_is_size_key(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size > 6 &&
	    memcmp(o->via.str.ptr + o->via.str.size - 6, "_bytes", 6) == 0;
}

/* Writes a key for people: a duration's "_ms", a size's "_bytes" dropped. */
static void
print_key(FILE *f, const msgpack_object *key)
{
	if (print_is_duration_key(key))
		print_text_str(f, key->via.str.ptr, key->via.str.size - 3);
	else if (print_is_size_key(key))
		print_text_str(f, key->via.str.ptr, key->via.str.size - 6);
	else
		print_cell(f, key);
}

/* Writes the value of key for people: durations as "3m12s". */
static void
print_value(FILE *f, const msgpack_object *key, const msgpack_object *v)
{
	char	buf[32];

	if (print_is_duration_key(key) &&
	    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		format_duration_human(v->via.u64, buf, sizeof(buf));
		fputs(buf, f);
	} else if (print_is_size_key(key) &&
	    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		format_size_human(v->via.u64, buf, sizeof(buf));
		fputs(buf, f);
	} else
		print_cell(f, v);
}

/* Runs fn(f, a, b) into a new string (caller frees), or NULL. */
static char *
print_to_string(void (*fn)(FILE *, const msgpack_object *,
    const msgpack_object *), const msgpack_object *a,
    const msgpack_object *b)
{
	char	*s = NULL;
	size_t	 len = 0;
	FILE	*f;

	if ((f = open_memstream(&s, &len)) == NULL)
		return NULL;
	fn(f, a, b);
	if (fclose(f) != 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* print_key() with the signature print_to_string() takes. */
static void
print_key_cb(FILE *f, const msgpack_object *key, const msgpack_object *unused)
{
	(void)unused;
	print_key(f, key);
}

/*
 * Prints an array of maps as a table: columns from the first map's keys,
 * upper-cased headers, two spaces between columns, each line indented by
 * indent spaces. 0 or -ENOMEM.
 */
static int
print_table(FILE *f, const msgpack_object *arr, int indent)
{
	const msgpack_object	*first = &arr->via.array.ptr[0], *v;
	uint32_t		 ncols = first->via.map.size;
	uint32_t		 nrows = arr->via.array.size, r, c;
	char			**cells;
	size_t			*width, w, i;
	int			 ret = 0;

	if (ncols == 0)
		return 0;
	cells = calloc((size_t)(nrows + 1) * ncols, sizeof *cells);
	width = calloc(ncols, sizeof *width);
	if (cells == NULL || width == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (c = 0; c < ncols; c++) {
		if ((cells[c] = print_to_string(print_key_cb,
		    &first->via.map.ptr[c].key, NULL)) == NULL) {
			ret = -ENOMEM;
			goto out;
		}
		for (i = 0; cells[c][i] != '\0'; i++) {
			if (cells[c][i] >= 'a' && cells[c][i] <= 'z')
				cells[c][i] = (char)(cells[c][i] - 'a' + 'A');
		}
		width[c] = print_width(cells[c]);
	}
	for (r = 0; r < nrows; r++) {
		const msgpack_object *row = &arr->via.array.ptr[r];

		for (c = 0; c < ncols; c++) {
			static const msgpack_object nil = {
				.type = MSGPACK_OBJECT_NIL };

			v = NULL;
			if (row->type == MSGPACK_OBJECT_MAP)
				v = print_map_get(row,
				    &first->via.map.ptr[c].key);
			cells[(size_t)(r + 1) * ncols + c] =
			    print_to_string(print_value,
			    &first->via.map.ptr[c].key, v != NULL ? v : &nil);
			if (cells[(size_t)(r + 1) * ncols + c] == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			w = print_width(cells[(size_t)(r + 1) * ncols + c]);
			if (w > width[c])
				width[c] = w;
		}
	}
	for (r = 0; r <= nrows; r++) {
		fprintf(f, "%*s", indent, "");
		for (c = 0; c < ncols; c++) {
			const char *s = cells[(size_t)r * ncols + c];

			fputs(s, f);
			if (c + 1 < ncols) {
				for (w = print_width(s); w < width[c] + 2; w++)
					fputc(' ', f);
			}
		}
		fputc('\n', f);
	}
out:
	if (cells != NULL) {
		for (i = 0; i < (size_t)(nrows + 1) * ncols; i++)
			free(cells[i]);
	}
	free(cells);
	free(width);
	return ret;
}

/* True when o is a map or an array (something that needs its own lines). */
static bool
print_is_nested(const msgpack_object *o)
{
	return (o->type == MSGPACK_OBJECT_MAP && o->via.map.size > 0) ||
	    (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0 &&
	    (o->via.array.ptr[0].type == MSGPACK_OBJECT_MAP ||
	    o->via.array.ptr[0].type == MSGPACK_OBJECT_ARRAY));
}

/* Prints a map as "key: value" lines, nested maps indented. */
static void
print_map(FILE *f, const msgpack_object *m, int depth)
{
	uint32_t	i, j;

	for (i = 0; i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		for (int d = 0; d < depth; d++)
			fputs("  ", f);
		print_key(f, &kv->key);
		fputc(':', f);
		if (!print_is_nested(&kv->val)) {
			fputc(' ', f);
			print_value(f, &kv->key, &kv->val);
			fputc('\n', f);
			continue;
		}
		fputc('\n', f);
		if (kv->val.type == MSGPACK_OBJECT_MAP) {
			print_map(f, &kv->val, depth + 1);
			continue;
		}
		/* A list of records (status's workers): an indented table. */
		if (kv->val.via.array.ptr[0].type == MSGPACK_OBJECT_MAP &&
		    print_table(f, &kv->val, 2 * (depth + 1)) == 0)
			continue;
		for (j = 0; j < kv->val.via.array.size; j++) {
			for (int d = 0; d <= depth; d++)
				fputs("  ", f);
			fputs("- ", f);
			print_cell(f, &kv->val.via.array.ptr[j]);
			fputc('\n', f);
		}
	}
}

/* Prints o as pretty JSON and a newline; see cli.h. */
void
print_json(FILE *f, const msgpack_object *o)
{
	proto_json_write(f, o, PROTO_JSON_PRETTY);
	fputc('\n', f);
}

/* Prints o for people, by its shape; see cli.h. */
int
print_text(FILE *f, const msgpack_object *o, const char *empty)
{
	uint32_t	i;

	if (o == NULL || o->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (o->type == MSGPACK_OBJECT_MAP) {
		print_map(f, o, 0);
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_ARRAY) {
		if (o->via.array.size == 0) {
			if (empty != NULL)
				fprintf(f, "%s\n", empty);
			return 0;
		}
		if (o->via.array.ptr[0].type == MSGPACK_OBJECT_MAP)
			return print_table(f, o, 0);
		for (i = 0; i < o->via.array.size; i++) {
			print_cell(f, &o->via.array.ptr[i]);
			fputc('\n', f);
		}
		return 0;
	}
	print_cell(f, o);
	fputc('\n', f);
	return 0;
}
